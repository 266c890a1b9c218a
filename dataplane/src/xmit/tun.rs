//! IP tunnelling (`-i`, Tunnel): the request is wrapped, unchanged, in an outer IPv4 header
//! (IPIP, protocol 4, RFC 2003) from the director's address on the egress port to the RIP. The
//! real server decapsulates it, finds the VIP local, and replies straight to the client.
//!
//! Outer header, as IPVS's `ip_vs_tunnel_xmit` builds it: TOS and DF copied from the inner
//! header, TTL 64 (the default hop limit of a packet the director originates), a fresh
//! identification from the worker's counter, no options. The inner header is not touched (no TTL
//! change: the director takes the packet as its own, like DR). Size: the worker checks the
//! encapsulated length against the egress MTU first; with DF set it answers the client with ICMP
//! fragmentation-needed quoting the inner packet and announcing `MTU - 20`, without DF the packet
//! is dropped (`too_big`): rvs does not fragment.
//!
//! TUN6 (IPv6-in-IPv6, RFC 2473): an IPv6 request is wrapped in an outer IPv6 header, next
//! header 41, from the director's IPv6 address on the egress port to the RIP6. The outer fields
//! are the ones Linux's `ip_vs_tunnel_xmit_v6` writes (through `ip_vs_prepare_tunneled_skb`):
//! payload length = the whole inner packet (40 + its payload length), hop limit copied from the
//! inner packet, flow label 0, traffic class = the inner one's DSCP with its ECN field copied
//! except that CE becomes ECT(0) (`INET_ECN_encapsulate`, RFC 6040's normal mode). No
//! extension headers in the outer header; the inner packet is untouched, extension headers and
//! all. Size: IPv6 routers never fragment, so an inner packet of more than `MTU - 40` bytes is
//! refused and the client gets ICMPv6 Packet Too Big announcing `MTU - 40` (whatever the
//! packet's flags: IPv6 has no DF). If `MTU - 40` is below the IPv6 minimum of 1280 the tunnel
//! link cannot carry IPv6 as RFC 8200 requires: announcing less than 1280 would not help (a
//! source never goes below it), so the too-big packet is dropped (`tun_too_big`) without an
//! answer, as IPVS refuses such a route (`__ip_vs_get_out_rt_v6`).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::drop::DropReason;
use crate::l3::icmp::DEFAULT_TTL;
use crate::packet::PacketBuf;
use crate::parse::L3;
use crate::parse6::Parsed6;
use crate::wire::{IpProtocol, ethernet, ipv4, ipv6};

/// Bytes the encapsulation adds.
pub const OVERHEAD: usize = ipv4::HEADER_LEN;

/// The outer header's fields the worker chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ident: u16,
}

/// The inner packet's length and DF bit, to check against the egress MTU before encapsulating,
/// read from a frame whose IPv4 header was checked when it was parsed.
pub fn inner_len_df(frame: &[u8]) -> Result<(usize, bool), DropReason> {
    let h = frame
        .get(ethernet::HEADER_LEN..ethernet::HEADER_LEN + ipv4::HEADER_LEN)
        .ok_or(DropReason::Ipv4Malformed)?;
    Ok((
        usize::from(u16::from_be_bytes([h[2], h[3]])),
        h[6] & 0x40 != 0,
    ))
}

/// Encapsulate the IPv4 packet in `buf` (an Ethernet frame; any Ethernet padding is dropped).
/// The Ethernet header is kept in front (the worker rewrites its addresses on send).
pub fn encapsulate<B: PacketBuf>(buf: &mut B, outer: Outer) -> Result<(), DropReason> {
    let (inner_len, df, tos) = {
        let l3 = buf
            .data()
            .get(ethernet::HEADER_LEN..)
            .ok_or(DropReason::EthTruncated)?;
        let ip = ipv4::Packet::new_checked(l3).map_err(|_| DropReason::Ipv4Malformed)?;
        (
            usize::from(ip.total_len()),
            ip.dont_frag(),
            (ip.dscp() << 2) | ip.ecn(),
        )
    };
    let payload_len = u16::try_from(inner_len).map_err(|_| DropReason::TooBig)?;
    if usize::from(payload_len) + OVERHEAD > usize::from(u16::MAX) {
        return Err(DropReason::TooBig);
    }
    buf.set_len(ethernet::HEADER_LEN + inner_len)
        .map_err(|_| DropReason::Ipv4BadLength)?;
    buf.prepend(OVERHEAD).map_err(|_| DropReason::NoBuffer)?;
    let data = buf.data_mut();
    data.copy_within(OVERHEAD..OVERHEAD + ethernet::HEADER_LEN, 0);
    ipv4::Ipv4Repr {
        src: outer.src,
        dst: outer.dst,
        protocol: IpProtocol(4),
        payload_len,
        ttl: DEFAULT_TTL,
        tos,
        ident: outer.ident,
        dont_frag: df,
    }
    .emit(&mut data[ethernet::HEADER_LEN..])
    .map_err(|_| DropReason::NoBuffer)
}

/// Bytes TUN6's outer header adds.
pub const OVERHEAD6: usize = ipv6::HEADER_LEN;

/// The outer IPv6 header's addresses the worker chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

/// What TUN6 answers an inner packet of `inner` bytes (fixed header included) going out on a
/// link of `mtu` bytes: `Ok(None)` it fits, `Ok(Some(m))` refuse it with Packet Too Big
/// announcing `m`, `Err` drop it without an answer (module doc).
pub fn too_big6(inner: usize, mtu: usize) -> Result<Option<u32>, DropReason> {
    if inner + OVERHEAD6 <= mtu {
        return Ok(None);
    }
    let room = mtu.saturating_sub(OVERHEAD6);
    if room < ipv6::MIN_MTU {
        return Err(DropReason::TunTooBig);
    }
    Ok(Some(u32::try_from(room).unwrap_or(u32::MAX)))
}

/// Encapsulate the IPv6 packet `p` describes (any Ethernet padding is dropped) in an outer IPv6
/// header (module doc). The Ethernet header is kept in front.
pub fn encapsulate6<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed6,
    outer: Outer6,
) -> Result<(), DropReason> {
    let end = usize::from(p.end);
    let h = buf
        .data()
        .get(L3..L3 + ipv6::HEADER_LEN)
        .ok_or(DropReason::Ipv6Malformed)?;
    if end > buf.len() || end < L3 + ipv6::HEADER_LEN {
        return Err(DropReason::Ipv6BadLength);
    }
    let tc = (h[0] << 4) | (h[1] >> 4);
    // INET_ECN_encapsulate: DSCP and ECN copied, CE (0b11) becomes ECT(0) (0b10).
    let tc = if tc & 0x03 == 0x03 { tc & !0x01 } else { tc };
    let hop = h[7];
    let payload_len = u16::try_from(end - L3).map_err(|_| DropReason::TooBig)?;
    buf.set_len(end).map_err(|_| DropReason::Ipv6BadLength)?;
    buf.prepend(OVERHEAD6).map_err(|_| DropReason::NoBuffer)?;
    let data = buf.data_mut();
    data.copy_within(OVERHEAD6..OVERHEAD6 + L3, 0);
    ipv6::Ipv6Repr {
        src: outer.src,
        dst: outer.dst,
        next_header: IpProtocol(41),
        payload_len,
        hop_limit: hop,
        traffic_class: tc,
        flow_label: 0,
    }
    .emit(&mut data[L3..])
    .map_err(|_| DropReason::NoBuffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::testutil::{FrameSpec, ones_sum, tcp_frame, verify_frame};

    #[test]
    fn prepends_a_valid_outer_header_and_keeps_the_inner_packet() {
        let mut f = tcp_frame(
            &FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80),
            crate::wire::tcp::TcpFlags::SYN,
            b"hello",
        );
        let inner = f[14..].to_vec();
        f.extend_from_slice(&[0; 6]); // Ethernet padding is not carried into the tunnel
        let mut b = HeapBuf::from_bytes(&f);
        let outer = Outer {
            src: "198.18.1.1".parse().unwrap(),
            dst: "198.18.1.11".parse().unwrap(),
            ident: 0x4321,
        };
        encapsulate(&mut b, outer).unwrap();
        let o = b.data();
        assert_eq!(&o[..14], &f[..14]);
        assert_eq!(o.len(), 14 + 20 + inner.len());
        let h = &o[14..34];
        assert_eq!(ones_sum(&[h]), 0);
        assert_eq!(h[0], 0x45);
        assert_eq!(
            usize::from(u16::from_be_bytes([h[2], h[3]])),
            20 + inner.len()
        );
        assert_eq!(u16::from_be_bytes([h[4], h[5]]), 0x4321);
        assert_eq!(h[6] & 0x40, 0x40, "DF copied");
        assert_eq!((h[8], h[9]), (64, 4));
        assert_eq!(&h[12..16], &[198, 18, 1, 1]);
        assert_eq!(&h[16..20], &[198, 18, 1, 11]);
        assert_eq!(&o[34..], &inner[..]);
        let mut inner_frame = f[..14].to_vec();
        inner_frame.extend_from_slice(&o[34..]);
        verify_frame(&inner_frame).unwrap();
    }

    #[test]
    fn tun6_prepends_the_outer_header_ipvs_writes() {
        let (cip, vip) = ("2001:2::2".parse().unwrap(), "2001:2::100".parse().unwrap());
        let mut f = crate::testutil::tcp6_frame(cip, 40000, vip, 80, 0x02, &[], b"hi");
        // Traffic class 0xbb (DSCP 46, ECN CE), flow label 0x12345, hop limit 61.
        f[14] = 0x6b;
        f[15] = 0xb1;
        f[16..18].copy_from_slice(&[0x23, 0x45]);
        f[21] = 61;
        let inner = f[14..].to_vec();
        f.extend_from_slice(&[0; 4]); // padding, not tunnelled
        let mut b = HeapBuf::from_bytes(&f);
        let p = crate::parse6::parse6(b.data(), &Default::default()).unwrap();
        let outer = Outer6 {
            src: "2001:3::1".parse().unwrap(),
            dst: "2001:3::11".parse().unwrap(),
        };
        encapsulate6(&mut b, &p, outer).unwrap();
        let o = b.data();
        assert_eq!(&o[..14], &f[..14]);
        assert_eq!(o.len(), 14 + 40 + inner.len());
        let h = &o[14..54];
        assert_eq!(h[0], 0x6b, "version 6, DSCP copied");
        assert_eq!(h[1], 0xa0, "CE became ECT(0), flow label 0");
        assert_eq!(&h[2..4], &[0, 0]);
        assert_eq!(usize::from(u16::from_be_bytes([h[4], h[5]])), inner.len());
        assert_eq!((h[6], h[7]), (41, 61));
        assert_eq!(&h[8..24], &outer.src.octets());
        assert_eq!(&h[24..40], &outer.dst.octets());
        assert_eq!(&o[54..], &inner[..]);
    }

    #[test]
    fn tun6_size_check() {
        assert_eq!(too_big6(1460, 1500), Ok(None));
        assert_eq!(too_big6(1461, 1500), Ok(Some(1460)));
        assert_eq!(too_big6(1280, 1320), Ok(None));
        assert_eq!(too_big6(1281, 1320), Ok(Some(1280)));
        assert_eq!(too_big6(1300, 1319), Err(DropReason::TunTooBig));
    }
}
