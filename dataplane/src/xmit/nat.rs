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
