//! NAT (`-m`, Masq): requests get their destination rewritten to the real server (DNAT),
//! replies their source rewritten back to the virtual service (SNAT). Only addresses and ports
//! change; the IPv4 header checksum and the TCP/UDP checksum are updated incrementally
//! (RFC 1624), so a packet that arrived with a bad L4 checksum leaves with a bad one and the
//! endpoint drops it, as it would without the director.
//!
//! Input: a frame whose IPv4 header and L4 header the worker has already checked (a frame that
//! fails the checks again is refused with a drop reason, never a panic).

use std::net::Ipv4Addr;

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::parse::{L3, Parsed};
use crate::wire::checksum::{update_addr, update_u16, update_udp_u16, update_udp_u32};
use crate::wire::{IpProtocol, ethernet, ipv4, tcp, udp};

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
/// they are. The checksum updates are the same, step for step, as [`set_src`] then [`set_dst`].
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
    if frame.len() < l4_sum_at + 2 {
        return Err(DropReason::Ipv4Malformed);
    }
    let mut ip_sum = be16(frame, L3 + 10);
    let mut l4_sum = be16(frame, l4_sum_at);
    let mut step = |frame: &mut [u8],
                    addr_at: usize,
                    port_at: usize,
                    old: (Ipv4Addr, u16),
                    new: (Ipv4Addr, u16)| {
        frame[addr_at..addr_at + 4].copy_from_slice(&new.0.octets());
        frame[port_at..port_at + 2].copy_from_slice(&new.1.to_be_bytes());
        ip_sum = update_addr(ip_sum, old.0, new.0);
        if tcp {
            l4_sum = update_u16(update_addr(l4_sum, old.0, new.0), old.1, new.1);
        } else if l4_sum != 0 {
            // A zero UDP checksum means "none" and stays zero.
            l4_sum = update_udp_u16(
                update_udp_u32(l4_sum, old.0.to_bits(), new.0.to_bits()),
                old.1,
                new.1,
            );
        }
    };
    if let Some(new) = src {
        step(frame, L3 + 12, l4, (p.key.src, p.key.sport), new);
    }
    if let Some(new) = dst {
        step(frame, L3 + 16, l4 + 2, (p.key.dst, p.key.dport), new);
    }
    frame[L3 + 10..L3 + 12].copy_from_slice(&ip_sum.to_be_bytes());
    frame[l4_sum_at..l4_sum_at + 2].copy_from_slice(&l4_sum.to_be_bytes());
    Ok(())
}

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
}
