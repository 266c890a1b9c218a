//! NAT (`-m`, Masq): requests get their destination rewritten to the real server (DNAT),
//! replies their source rewritten back to the virtual service (SNAT). Only addresses and ports
//! change; the IPv4 header checksum and the TCP/UDP checksum are updated incrementally
//! (RFC 1624), so a packet that arrived with a bad L4 checksum leaves with a bad one and the
//! endpoint drops it, as it would without the director.
//!
//! IPv6 (NAT6): [`rewrite_parsed6`], the same rewrite on a [`Parsed6`] frame, with no header
//! checksum to update and a UDP checksum that must never be zero.
//!
//! Input: a frame whose IPv4 header and L4 header the worker has already checked (a frame that
//! fails the checks again is refused with a drop reason, never a panic).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::parse::{L3, Parsed};
use crate::parse6::Parsed6;
use crate::wire::checksum::{
    udp_fixup, update_addr, update_addr_v6, update_u16, update_udp_u16, update_udp_u32,
};
use crate::wire::{IpProtocol, ethernet, ipv4, ipv6, tcp, udp};

/// Which end of the packet to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Src,
    Dst,
}

/// DNAT a request: destination becomes `addr:port` (the dest's RIP and port).
pub fn to_dest<B: PacketBuf>(buf: &mut B, addr: Ipv4Addr, port: u16) -> Result<(), DropReason> {
    rewrite(buf, End::Dst, addr, port)
}

/// SNAT a reply: source becomes `addr:port` (the VIP and virtual port).
pub fn to_client<B: PacketBuf>(buf: &mut B, addr: Ipv4Addr, port: u16) -> Result<(), DropReason> {
    rewrite(buf, End::Src, addr, port)
}

/// Rewrite the source address and port (FULLNAT's SNAT to LIP:lport, or back to VIP:vport).
pub fn set_src<B: PacketBuf>(buf: &mut B, addr: Ipv4Addr, port: u16) -> Result<(), DropReason> {
    rewrite(buf, End::Src, addr, port)
}

/// Rewrite the destination address and port.
pub fn set_dst<B: PacketBuf>(buf: &mut B, addr: Ipv4Addr, port: u16) -> Result<(), DropReason> {
    rewrite(buf, End::Dst, addr, port)
}

/// Rewrite the source and/or destination address and port of the frame `p` describes (the
/// parse-once description of it), in place, without validating the headers again: `p` says where
/// they are. Both checksums are updated in one pass (RFC 1624 eqn. 3 over all the changed
/// words at once), which gives the same bytes as [`set_src`] then [`set_dst`].
#[inline]
pub fn rewrite_parsed(
    frame: &mut [u8],
    p: &Parsed,
    src: Option<(Ipv4Addr, u16)>,
    dst: Option<(Ipv4Addr, u16)>,
) -> Result<(), DropReason> {
    let l4 = usize::from(p.l4);
    let tcp = p.key.proto == IpProtocol::TCP.0;
    if !tcp && p.key.proto != IpProtocol::UDP.0 {
        return Err(DropReason::MethodUnsupported);
    }
    let l4_sum_at = l4 + if tcp { 16 } else { 6 };
    if frame.len() < l4_sum_at + 2 || l4 < L3 + 20 {
        return Err(DropReason::Ipv4Malformed);
    }
    // Sums of (~old + new) over the changed 16-bit words: addresses (IP and pseudo header) and
    // addresses + ports (L4).
    let (mut d_addr, mut d_port) = (0u32, 0u32);
    let word_delta = |old: u32, new: u32| {
        u32::from(!(old >> 16) as u16) + u32::from(!old as u16) + (new >> 16) + (new & 0xffff)
    };
    if let Some((a, port)) = src {
        frame[L3 + 12..L3 + 16].copy_from_slice(&a.octets());
        frame[l4..l4 + 2].copy_from_slice(&port.to_be_bytes());
        d_addr += word_delta(p.key.src.to_bits(), a.to_bits());
        d_port += u32::from(!p.key.sport) + u32::from(port);
    }
    if let Some((a, port)) = dst {
        frame[L3 + 16..L3 + 20].copy_from_slice(&a.octets());
        frame[l4 + 2..l4 + 4].copy_from_slice(&port.to_be_bytes());
        d_addr += word_delta(p.key.dst.to_bits(), a.to_bits());
        d_port += u32::from(!p.key.dport) + u32::from(port);
    }
    let adjust = |sum: u16, delta: u32| -> u16 {
        let mut acc = u32::from(!sum) + delta;
        acc = (acc & 0xffff) + (acc >> 16);
        acc = (acc & 0xffff) + (acc >> 16);
        !(acc as u16)
    };
    let ip_sum = adjust(be16(frame, L3 + 10), d_addr);
    frame[L3 + 10..L3 + 12].copy_from_slice(&ip_sum.to_be_bytes());
    let l4_sum = be16(frame, l4_sum_at);
    // A zero UDP checksum means "none" and stays zero; a computed zero is sent as 0xffff.
    if tcp || l4_sum != 0 {
        let mut new = adjust(l4_sum, d_addr + d_port);
        if !tcp && new == 0 {
            new = 0xffff;
        }
        frame[l4_sum_at..l4_sum_at + 2].copy_from_slice(&new.to_be_bytes());
    }
    Ok(())
}

/// The IPv6 counterpart of [`rewrite_parsed`] (NAT6, FULLNAT6): rewrite the source and/or
/// destination address and port of the TCP/UDP packet `p` describes, in place. IPv6 has no
/// header checksum; the L4 checksum covers the addresses through the pseudo header (RFC 8200
/// 8.1), so it takes the 128-bit address change and the port change, incrementally
/// ([`update_addr_v6`]). Extension headers stay as they are (`p.l4` says where the upper layer
/// is; a routing header reaching here has no segments left, so the header's destination is the
/// final one the pseudo header uses).
///
/// UDP checksum 0: over IPv6 it is not "no checksum" but invalid (RFC 8200 8.1: a receiver
/// discards it; the RFC 6935/6936 exception is for tunnel protocols, not for services behind a
/// director). It is dropped as `l4_bad_checksum` rather than computed: computing it would make
/// a packet the endpoint must refuse look good, and costs a pass over the payload for a packet
/// no conforming sender produces.
#[inline]
pub fn rewrite_parsed6(
    frame: &mut [u8],
    p: &Parsed6,
    src: Option<(Ipv6Addr, u16)>,
    dst: Option<(Ipv6Addr, u16)>,
) -> Result<(), DropReason> {
    let l4 = usize::from(p.l4);
    let tcp = p.key.proto == IpProtocol::TCP.0;
    if !tcp && p.key.proto != IpProtocol::UDP.0 {
        return Err(DropReason::MethodUnsupported);
    }
    let sum_at = l4 + if tcp { 16 } else { 6 };
    if frame.len() < sum_at + 2 || l4 < L3 + ipv6::HEADER_LEN {
        return Err(DropReason::Ipv6Malformed);
    }
    let mut c = be16(frame, sum_at);
    if !tcp && c == 0 {
        return Err(DropReason::L4BadChecksum);
    }
    if let Some((a, port)) = src {
        frame[L3 + 8..L3 + 24].copy_from_slice(&a.octets());
        frame[l4..l4 + 2].copy_from_slice(&port.to_be_bytes());
        c = update_u16(update_addr_v6(c, p.key.src, a), p.key.sport, port);
    }
    if let Some((a, port)) = dst {
        frame[L3 + 24..L3 + 40].copy_from_slice(&a.octets());
        frame[l4 + 2..l4 + 4].copy_from_slice(&port.to_be_bytes());
        c = update_u16(update_addr_v6(c, p.key.dst, a), p.key.dport, port);
    }
    if !tcp {
        c = udp_fixup(c);
    }
    frame[sum_at..sum_at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn rewrite<B: PacketBuf>(
    buf: &mut B,
    end: End,
    addr: Ipv4Addr,
    port: u16,
) -> Result<(), DropReason> {
    let frame = buf.data_mut();
    let l3 = frame
        .get_mut(ethernet::HEADER_LEN..)
        .ok_or(DropReason::EthTruncated)?;
    let mut ip = ipv4::Packet::new_checked(l3).map_err(|_| DropReason::Ipv4Malformed)?;
    let old = match end {
        End::Src => ip.src_addr(),
        End::Dst => ip.dst_addr(),
    };
    match end {
        End::Src => ip.set_src_addr(addr),
        End::Dst => ip.set_dst_addr(addr),
    }
    ip.set_checksum(update_addr(ip.checksum(), old, addr));
    let proto = ip.protocol();
    let l4 = ip.payload_mut();
    if proto == IpProtocol::TCP {
        let mut t = tcp::Packet::new_checked(l4).map_err(|_| DropReason::TcpMalformed)?;
        let old_port = match end {
            End::Src => t.src_port(),
            End::Dst => t.dst_port(),
        };
        match end {
            End::Src => t.set_src_port(port),
            End::Dst => t.set_dst_port(port),
        }
        let c = update_u16(update_addr(t.checksum(), old, addr), old_port, port);
        t.set_checksum(c);
    } else if proto == IpProtocol::UDP {
        let mut u = udp::Packet::new_checked(l4).map_err(|_| DropReason::UdpMalformed)?;
        let old_port = match end {
            End::Src => u.src_port(),
            End::Dst => u.dst_port(),
        };
        match end {
            End::Src => u.set_src_port(port),
            End::Dst => u.set_dst_port(port),
        }
        // A zero UDP checksum means "none" and stays zero; the helpers keep 0 -> 0xffff right.
        if u.checksum() != 0 {
            let c = update_udp_u16(
                update_udp_u32(u.checksum(), old.to_bits(), addr.to_bits()),
                old_port,
                port,
            );
            u.set_checksum(c);
        }
    } else {
        return Err(DropReason::MethodUnsupported);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::testutil::{FrameSpec, tcp_frame, udp_frame, verify_frame};
    use proptest::prelude::*;

    /// The parse-once rewrite writes exactly what the checked one writes, both ends, TCP and
    /// UDP (with and without a UDP checksum).
    #[test]
    fn parsed_rewrite_matches_the_checked_one() {
        let spec = FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80);
        let lip: Ipv4Addr = "198.18.1.50".parse().unwrap();
        let rip: Ipv4Addr = "198.18.1.11".parse().unwrap();
        let mut udp_nosum = udp_frame(&spec, b"abc");
        udp_nosum[14 + 20 + 6] = 0;
        udp_nosum[14 + 20 + 7] = 0;
        for orig in [
            tcp_frame(&spec, crate::wire::tcp::TcpFlags::SYN, b"payload"),
            udp_frame(&spec, b"abc"),
            udp_nosum,
        ] {
            let p = crate::parse::parse(
                &orig,
                crate::testutil::PORT0_MAC,
                crate::parse::RxChecksum::default(),
            );
            let mut a = HeapBuf::from_bytes(&orig);
            set_src(&mut a, lip, 1025).unwrap();
            set_dst(&mut a, rip, 8080).unwrap();
            let mut b = orig.clone();
            rewrite_parsed(&mut b, &p, Some((lip, 1025)), Some((rip, 8080))).unwrap();
            assert_eq!(a.data(), &b[..]);
            let mut a = HeapBuf::from_bytes(&orig);
            to_dest(&mut a, rip, 8080).unwrap();
            let mut b = orig.clone();
            rewrite_parsed(&mut b, &p, None, Some((rip, 8080))).unwrap();
            assert_eq!(a.data(), &b[..]);
        }
    }

    proptest! {
        /// One-pass and step-by-step checksum updates agree on every byte, for any addresses,
        /// ports and starting checksums, TCP and UDP, one end or both.
        #[test]
        fn one_pass_rewrite_is_the_stepwise_one(
            udp in any::<bool>(),
            sum in any::<u16>(),
            ip_sum in any::<u16>(),
            a in any::<u32>(), ap in any::<u16>(),
            b in any::<u32>(), bp in any::<u16>(),
            which in 0u8..3,
        ) {
            let spec = FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80);
            let mut orig = if udp {
                udp_frame(&spec, b"abc")
            } else {
                tcp_frame(&spec, crate::wire::tcp::TcpFlags::ACK, b"x")
            };
            let at = if udp { 14 + 20 + 6 } else { 14 + 20 + 16 };
            orig[at..at + 2].copy_from_slice(&sum.to_be_bytes());
            orig[24..26].copy_from_slice(&ip_sum.to_be_bytes());
            let p = crate::parse::parse(
                &orig,
                crate::testutil::PORT0_MAC,
                crate::parse::RxChecksum {
                    ipv4: crate::parse::Verdict::Good,
                    l4: crate::parse::Verdict::Unknown,
                },
            );
            prop_assert_eq!(p.class, crate::parse::Class::Flow);
            let (a, b) = ((Ipv4Addr::from(a), ap), (Ipv4Addr::from(b), bp));
            let (src, dst) = match which {
                0 => (Some(a), None),
                1 => (None, Some(b)),
                _ => (Some(a), Some(b)),
            };
            let mut step = HeapBuf::from_bytes(&orig);
            if let Some((ip, port)) = src {
                set_src(&mut step, ip, port).unwrap();
            }
            if let Some((ip, port)) = dst {
                set_dst(&mut step, ip, port).unwrap();
            }
            let mut once = orig.clone();
            rewrite_parsed(&mut once, &p, src, dst).unwrap();
            prop_assert_eq!(step.data(), &once[..]);
        }
    }

    #[test]
    fn dnat_then_snat_restores_the_original_tuple() {
        let spec = FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80);
        let orig = tcp_frame(&spec, crate::wire::tcp::TcpFlags::SYN, b"");
        let mut b = HeapBuf::from_bytes(&orig);
        to_dest(&mut b, "198.18.1.11".parse().unwrap(), 8080).unwrap();
        let v = verify_frame(b.data()).unwrap();
        assert_eq!((v.dst, v.dport), ("198.18.1.11".parse().unwrap(), 8080));
        rewrite(&mut b, End::Dst, "198.18.0.100".parse().unwrap(), 80).unwrap();
        assert_eq!(b.data(), &orig[..]);
    }

    proptest! {
        /// Incremental updates agree with a full recompute for any addresses, ports, payloads.
        #[test]
        fn checksums_stay_valid(src in any::<u32>(), dst in any::<u32>(), sp in any::<u16>(), dp in any::<u16>(),
                                na in any::<u32>(), np in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..64),
                                is_udp in any::<bool>(), snat in any::<bool>()) {
            let spec = FrameSpec::new(Ipv4Addr::from_bits(src), sp, Ipv4Addr::from_bits(dst), dp);
            let f = if is_udp { udp_frame(&spec, &payload) } else { tcp_frame(&spec, crate::wire::tcp::TcpFlags::ACK, &payload) };
            let mut b = HeapBuf::from_bytes(&f);
            let (na, np) = (Ipv4Addr::from_bits(na), np);
            if snat { to_client(&mut b, na, np).unwrap() } else { to_dest(&mut b, na, np).unwrap() }
            let v = verify_frame(b.data()).unwrap();
            if snat { prop_assert_eq!((v.src, v.sport), (na, np)); } else { prop_assert_eq!((v.dst, v.dport), (na, np)); }
        }
    }

    mod v6 {
        use super::super::*;
        use crate::packet::HeapBuf;
        use crate::parse6::parse6;
        use crate::testutil::{tcp6_frame, udp6_frame, verify_frame6};
        use crate::wire::ipv6::ExtPolicy;
        use proptest::prelude::*;

        fn a(s: &str) -> Ipv6Addr {
            s.parse().unwrap()
        }

        #[test]
        fn dnat6_then_snat6_rewrites_exactly_and_keeps_checksums_valid() {
            let (cip, vip, rip) = (a("2001:2::2"), a("2001:2::100"), a("2001:3::11"));
            for udp in [false, true] {
                let f = if udp {
                    udp6_frame(cip, 40000, vip, 80, b"query")
                } else {
                    tcp6_frame(cip, 40000, vip, 80, 0x02, &[2, 4, 5, 0xa0], b"")
                };
                let mut b = HeapBuf::from_bytes(&f);
                let p = parse6(b.data(), &ExtPolicy::default()).unwrap();
                rewrite_parsed6(b.data_mut(), &p, None, Some((rip, 8080))).unwrap();
                let v = verify_frame6(b.data()).unwrap();
                assert_eq!((v.src, v.sport, v.dst, v.dport), (cip, 40000, rip, 8080));
                assert_eq!(b.data().len(), f.len());
                let at = if udp { 62 } else { 78 };
                assert_eq!(&b.data()[at..], &f[at..], "payload untouched");
                // The reply: RS -> client, source back to the VIP.
                let r = if udp {
                    udp6_frame(rip, 8080, cip, 40000, b"answer")
                } else {
                    tcp6_frame(rip, 8080, cip, 40000, 0x12, &[], b"")
                };
                let mut b = HeapBuf::from_bytes(&r);
                let p = parse6(b.data(), &ExtPolicy::default()).unwrap();
                rewrite_parsed6(b.data_mut(), &p, Some((vip, 80)), None).unwrap();
                let v = verify_frame6(b.data()).unwrap();
                assert_eq!((v.src, v.sport, v.dst, v.dport), (vip, 80, cip, 40000));
            }
        }

        #[test]
        fn udp6_checksum_zero_is_dropped() {
            let mut f = udp6_frame(a("2001:2::2"), 1, a("2001:2::100"), 53, b"x");
            f[54 + 6] = 0;
            f[54 + 7] = 0;
            let p = parse6(&f, &ExtPolicy::default()).unwrap();
            let orig = f.clone();
            assert_eq!(
                rewrite_parsed6(&mut f, &p, None, Some((a("::1"), 1))),
                Err(DropReason::L4BadChecksum)
            );
            assert_eq!(f, orig);
        }

        proptest! {
            /// Any addresses, ports, payloads: the incremental update equals a full recompute.
            #[test]
            fn checksums_stay_valid(s in any::<u128>(), d in any::<u128>(), sp in any::<u16>(),
                                    dp in any::<u16>(), na in any::<u128>(), np in any::<u16>(),
                                    nb in any::<u128>(), nq in any::<u16>(), which in 0u8..3,
                                    payload in proptest::collection::vec(any::<u8>(), 0..200),
                                    udp in any::<bool>()) {
                let (s, d) = (Ipv6Addr::from(s), Ipv6Addr::from(d));
                let f = if udp { udp6_frame(s, sp, d, dp, &payload) }
                        else { tcp6_frame(s, sp, d, dp, 0x18, &[], &payload) };
                let mut f2 = f.clone();
                let p = parse6(&f, &ExtPolicy::default()).unwrap();
                let (na, nb) = ((Ipv6Addr::from(na), np), (Ipv6Addr::from(nb), nq));
                let (src, dst) = match which { 0 => (Some(na), None), 1 => (None, Some(nb)), _ => (Some(na), Some(nb)) };
                rewrite_parsed6(&mut f2, &p, src, dst).unwrap();
                let v = verify_frame6(&f2).unwrap();
                let want_src = src.unwrap_or((s, sp));
                let want_dst = dst.unwrap_or((d, dp));
                prop_assert_eq!((v.src, v.sport), want_src);
                prop_assert_eq!((v.dst, v.dport), want_dst);
                let at = if udp { 62 } else { 74 };
                prop_assert_eq!(&f2[at..], &f[at..]);
            }
        }
    }
}
