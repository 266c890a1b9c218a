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

use std::net::Ipv4Addr;

use crate::drop::DropReason;
use crate::l3::icmp::DEFAULT_TTL;
use crate::packet::PacketBuf;
use crate::wire::{IpProtocol, ethernet, ipv4};

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
}
