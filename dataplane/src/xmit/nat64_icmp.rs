//! NAT64's ICMP: an ICMPv4 error about a NAT64 connection, sent to the director's IPv4 local
//! address by the real server or a router on the IPv4 side, rewritten as the ICMPv6 error the
//! IPv6 client understands (RFC 7915 section 4.2, with the addresses of the connection).
//!
//! The quoted packet is one the director sent the server (LIP4:lport -> RIP4:rport); the client
//! gets a quote of what it sent itself (CIP6:cport -> VIP6:vport, as an IPv6 header followed by
//! the quoted upper-layer bytes), from the VIP, so its stack finds the socket the error is
//! about. Types and codes (RFC 7915 4.2; anything else is not translated and dropped,
//! `icmp_not_translated`):
//!
//! | ICMPv4 | ICMPv6 |
//! |---|---|
//! | destination unreachable, net/host (0, 1), source route failed (5), net/host unknown (6, 7), isolated (8), TOS (11, 12) | destination unreachable, no route (1, 0) |
//! | destination unreachable, protocol (2) | parameter problem, unrecognised next header (4, 1), pointer 6 |
//! | destination unreachable, port (3) | destination unreachable, port (1, 4) |
//! | destination unreachable, fragmentation needed (4) | packet too big (2), MTU + 20, at least 1280 |
//! | destination unreachable, administratively prohibited (9, 10, 13) | destination unreachable, administratively prohibited (1, 1) |
//! | time exceeded (11), either code | time exceeded (3), same code |
//!
//! Fragmentation needed with an MTU of 0 (routers older than RFC 1191) becomes 1280, the IPv6
//! minimum. The quote is cut so the whole ICMPv6 message fits the IPv6 minimum MTU (RFC 4443
//! 2.4(c)). The quoted upper-layer checksum is left as the server saw it (no stack checks a
//! quote's checksum; Linux's translator does the same). The hop limit is the ICMPv4 packet's
//! TTL; the worker decrements it as it routes the error.

use std::net::Ipv6Addr;

use crate::conn::ConnKey6;
use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::parse::L3;
use crate::wire::checksum::l4_checksum_v6;
use crate::wire::ipv6::{self, next_header};
use crate::wire::{EtherType, IpProtocol, icmp, ipv4};

/// Longest ICMPv6 message written: what fits the IPv6 minimum MTU with its header.
const MAX_ICMP6: usize = ipv6::MIN_MTU - ipv6::HEADER_LEN;

/// The ICMPv6 type, code and 32-bit field (MTU or pointer) for an ICMPv4 error, or `None`
/// when RFC 7915 4.2 drops it.
pub fn map_type(v4_type: u8, v4_code: u8, next_hop_mtu: u16) -> Option<(u8, u8, u32)> {
    match (v4_type, v4_code) {
        (3, 0 | 1 | 5..=8 | 11 | 12) => Some((1, 0, 0)),
        (3, 2) => Some((4, 1, 6)),
        (3, 3) => Some((1, 4, 0)),
        (3, 4) => {
            let mtu = if next_hop_mtu == 0 {
                ipv6::MIN_MTU as u32
            } else {
                (u32::from(next_hop_mtu) + 20).max(ipv6::MIN_MTU as u32)
            };
            Some((2, 0, mtu))
        }
        (3, 9 | 10 | 13) => Some((1, 1, 0)),
        (11, c @ (0 | 1)) => Some((3, c, 0)),
        _ => None,
    }
}

/// Rewrite the ICMPv4 error in `buf` (Ethernet, IPv4 at [`L3`], ICMP at `icmp_at`, checked by
/// the worker: its checksum verified, its quote one of the connection's packets) as the
/// ICMPv6 error for the client of the NAT64 connection whose in-key is `client` (CIP6:cport ->
/// VIP6:vport). The frame becomes Ethernet + IPv6 + ICMPv6 in place.
pub fn to_icmp6<B: PacketBuf>(
    buf: &mut B,
    icmp_at: usize,
    client: &ConnKey6,
) -> Result<(), DropReason> {
    let frame = buf.data();
    let outer = ipv4::Packet::new_checked(frame.get(L3..).ok_or(DropReason::EthTruncated)?)
        .map_err(|_| DropReason::Ipv4Malformed)?;
    let (tos, ttl) = (outer.as_bytes()[1], outer.ttl());
    let end = (L3 + usize::from(outer.total_len())).min(frame.len());
    let msg = frame.get(icmp_at..end).ok_or(DropReason::IcmpMalformed)?;
    let m = icmp::Packet::new_checked(msg).map_err(|_| DropReason::IcmpMalformed)?;
    let (ty, code, field) = map_type(m.msg_type().0, m.msg_code(), m.next_hop_mtu())
        .ok_or(DropReason::IcmpNotTranslated)?;
    let q = m.quoted_ipv4().map_err(|_| DropReason::IcmpMalformed)?;
    let qproto = q.protocol();
    let qihl = usize::from(q.header_len());
    let qlen = usize::from(q.total_len()).saturating_sub(qihl);
    let (qttl, qtos) = (q.ttl(), q.as_bytes()[1]);
    let ql4 = q.as_bytes().get(qihl..).ok_or(DropReason::IcmpMalformed)?;
    // The new message: ICMPv6 header, the client's packet's IPv6 header, the quoted bytes.
    let mut out = [0u8; MAX_ICMP6];
    let keep = ql4.len().min(MAX_ICMP6 - 8 - ipv6::HEADER_LEN);
    let icmp6_len = 8 + ipv6::HEADER_LEN + keep;
    out[0] = ty;
    out[1] = code;
    out[4..8].copy_from_slice(&field.to_be_bytes());
    let qh = &mut out[8..8 + ipv6::HEADER_LEN];
    qh[0] = 0x60 | (qtos >> 4);
    qh[1] = qtos << 4;
    qh[4..6].copy_from_slice(&u16::try_from(qlen).unwrap_or(u16::MAX).to_be_bytes());
    qh[6] = qproto.0;
    qh[7] = qttl;
    qh[8..24].copy_from_slice(&client.src.octets());
    qh[24..40].copy_from_slice(&client.dst.octets());
    let body = &mut out[8 + ipv6::HEADER_LEN..icmp6_len];
    body.copy_from_slice(&ql4[..keep]);
    if (qproto == IpProtocol::TCP || qproto == IpProtocol::UDP) && keep >= 4 {
        body[0..2].copy_from_slice(&client.sport.to_be_bytes());
        body[2..4].copy_from_slice(&client.dport.to_be_bytes());
    }
    let (src, dst): (Ipv6Addr, Ipv6Addr) = (client.dst, client.src);
    let sum = l4_checksum_v6(src, dst, next_header::ICMPV6.0, &out[..icmp6_len]);
    out[2..4].copy_from_slice(&sum.to_be_bytes());
    // Write the frame: Ethernet header kept (its type changed), IPv6 header, the message.
    buf.set_len(L3 + ipv6::HEADER_LEN + icmp6_len)
        .map_err(|_| DropReason::NoBuffer)?;
    let data = buf.data_mut();
    data[12..14].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
    let h = &mut data[L3..L3 + ipv6::HEADER_LEN];
    h.fill(0);
    h[0] = 0x60 | (tos >> 4);
    h[1] = tos << 4;
    h[4..6].copy_from_slice(&(icmp6_len as u16).to_be_bytes());
    h[6] = next_header::ICMPV6.0;
    h[7] = ttl;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    data[L3 + ipv6::HEADER_LEN..L3 + ipv6::HEADER_LEN + icmp6_len]
        .copy_from_slice(&out[..icmp6_len]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::wire::checksum;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);
    const LIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 5);
    const RIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 254);

    fn client() -> ConnKey6 {
        ConnKey6::new(6, CIP6, 40000, VIP6, 80)
    }

    /// An Ethernet frame with the ICMPv4 error `ty`/`code` (next-hop MTU `mtu`) from ROUTER to
    /// LIP4, quoting a TCP segment LIP4:1030 -> RIP4:80 of `quoted_payload` bytes after a
    /// 20-byte TCP header (all of it quoted). Built byte by byte.
    fn icmp4_error(ty: u8, code: u8, mtu: u16, quoted_payload: usize) -> Vec<u8> {
        let mut q = vec![0u8; 20 + 20 + quoted_payload];
        q[0] = 0x45;
        q[1] = 0x10;
        let qtotal = q.len() as u16;
        q[2..4].copy_from_slice(&qtotal.to_be_bytes());
        q[6] = 0x40;
        q[8] = 63;
        q[9] = 6;
        q[12..16].copy_from_slice(&LIP4.octets());
        q[16..20].copy_from_slice(&RIP4.octets());
        let c = checksum::sum(&q[..20]);
        q[10..12].copy_from_slice(&(!c).to_be_bytes());
        q[20..22].copy_from_slice(&1030u16.to_be_bytes());
        q[22..24].copy_from_slice(&80u16.to_be_bytes());
        q[32] = 0x50;
        q[33] = 0x18;
        for (i, b) in q[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut m = vec![ty, code, 0, 0, 0, 0, 0, 0];
        m[6..8].copy_from_slice(&mtu.to_be_bytes());
        m.extend_from_slice(&q);
        let c = checksum::sum(&m);
        m[2..4].copy_from_slice(&(!c).to_be_bytes());
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[1] = 0xb8;
        ip[2..4].copy_from_slice(&((20 + m.len()) as u16).to_be_bytes());
        ip[8] = 61;
        ip[9] = 1;
        ip[12..16].copy_from_slice(&ROUTER.octets());
        ip[16..20].copy_from_slice(&LIP4.octets());
        let c = checksum::sum(&ip);
        ip[10..12].copy_from_slice(&(!c).to_be_bytes());
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&m);
        f
    }

    fn translate(frame: &[u8]) -> Result<Vec<u8>, DropReason> {
        let mut b = HeapBuf::from_bytes(frame);
        to_icmp6(&mut b, L3 + 20, &client())?;
        Ok(b.data().to_vec())
    }

    #[test]
    fn fragmentation_needed_becomes_packet_too_big_for_the_client() {
        let out = translate(&icmp4_error(3, 4, 1400, 100)).unwrap();
        assert_eq!(&out[12..14], &[0x86, 0xdd]);
        let ip = ipv6::Packet::new_checked(&out[L3..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP6, CIP6));
        assert_eq!(ip.next_header(), next_header::ICMPV6);
        assert_eq!(ip.hop_limit(), 61);
        assert_eq!(ip.traffic_class(), 0xb8);
        let m = ip.payload();
        assert_eq!(usize::from(ip.payload_len()), m.len());
        assert_eq!((m[0], m[1]), (2, 0));
        assert_eq!(u32::from_be_bytes([m[4], m[5], m[6], m[7]]), 1420);
        // Checksum over the IPv6 pseudo header, recomputed in full.
        assert_eq!(l4_checksum_v6(VIP6, CIP6, 58, m), 0);
        // The quote: the client's own packet, as it sent it.
        let q = ipv6::Packet::new_checked_quoted(&m[8..]).unwrap();
        assert_eq!((q.src_addr(), q.dst_addr()), (CIP6, VIP6));
        assert_eq!(q.next_header(), IpProtocol::TCP);
        assert_eq!(q.payload_len(), 120);
        assert_eq!(q.traffic_class(), 0x10);
        let l4 = &m[48..];
        assert_eq!(u16::from_be_bytes([l4[0], l4[1]]), 40000);
        assert_eq!(u16::from_be_bytes([l4[2], l4[3]]), 80);
        assert_eq!(l4.len(), 120);
        assert_eq!(l4[20..], (0..100u8).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn types_and_codes_as_rfc7915_says() {
        for (t, c, want) in [
            (3, 0, Some((1, 0, 0))),
            (3, 1, Some((1, 0, 0))),
            (3, 2, Some((4, 1, 6))),
            (3, 3, Some((1, 4, 0))),
            (3, 4, Some((2, 0, 1280))),
            (3, 9, Some((1, 1, 0))),
            (3, 13, Some((1, 1, 0))),
            (3, 14, None),
            (11, 0, Some((3, 0, 0))),
            (11, 1, Some((3, 1, 0))),
            (12, 0, None),
            (5, 0, None),
        ] {
            assert_eq!(map_type(t, c, 0), want, "{t}/{c}");
        }
        // A small announced MTU is raised to the IPv6 minimum.
        assert_eq!(map_type(3, 4, 576), Some((2, 0, 1280)));
        assert_eq!(
            translate(&icmp4_error(12, 0, 0, 8)),
            Err(DropReason::IcmpNotTranslated)
        );
    }

    #[test]
    fn a_long_quote_is_cut_to_fit_the_ipv6_minimum_mtu() {
        let out = translate(&icmp4_error(11, 0, 0, 1400)).unwrap();
        assert_eq!(out.len() - L3, ipv6::MIN_MTU);
        let ip = ipv6::Packet::new_checked(&out[L3..]).unwrap();
        assert_eq!(l4_checksum_v6(VIP6, CIP6, 58, ip.payload()), 0);
        // The quoted header still says how long the client's packet was.
        let q = ipv6::Packet::new_checked_quoted(&ip.payload()[8..]).unwrap();
        assert_eq!(q.payload_len(), 1420);
    }

    proptest! {
        #[test]
        fn random_bytes_after_the_ethernet_header_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            at in 0usize..80,
        ) {
            let mut f = vec![0u8; 14];
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&bytes);
            let mut b = HeapBuf::from_bytes(&f);
            let _ = to_icmp6(&mut b, L3 + at, &client());
        }
    }
}
