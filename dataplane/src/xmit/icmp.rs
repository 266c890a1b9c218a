//! ICMP errors about a connection's packets (IPVS's `ip_vs_in_icmp` / `ip_vs_out_icmp`):
//! destination unreachable (fragmentation needed included) and time exceeded, whose quoted packet
//! belongs to a known NAT or FULLNAT connection, are translated and sent to the other side, as if
//! the other side's own packet had caused them.
//!
//! The worker finds the connection with [`quoted_tuple`]: the quoted packet is one the director
//! sent, so its tuple reversed is the tuple the peer's packets carry into the director (the
//! in-tuple for an error from the client side, the out-tuple for one from the real-server side).
//! [`translate`] then rewrites the outer addresses it is told to, the quoted header's addresses
//! and ports (with its header checksum, and the quoted TCP/UDP checksum when it is inside the
//! quote, incrementally), and recomputes the ICMP checksum in full (the worker verified it first,
//! so nothing bad is made good).

use std::net::Ipv4Addr;

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::wire::checksum::{update_addr, update_u16, update_udp_u16, update_udp_u32};
use crate::wire::icmp::{self, IcmpType};
use crate::wire::{IpProtocol, ethernet, ipv4};

/// The tuple of the packet an ICMP error quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// The rewrite to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub outer_src: Option<Ipv4Addr>,
    pub outer_dst: Option<Ipv4Addr>,
    /// The quoted packet's new tuple (protocol unchanged).
    pub quoted: Quoted,
}

/// Whether the ICMP message type is one translated for connections.
pub fn is_translated_error(t: IcmpType) -> bool {
    t == IcmpType::DEST_UNREACHABLE || t == IcmpType::TIME_EXCEEDED
}

/// The quoted TCP/UDP tuple of the ICMP error in `frame` (Ethernet + IPv4 + ICMP, checked by
/// the caller up to the ICMP header), or `None` when it is not a translated error about a
/// first fragment of a TCP/UDP packet.
pub fn quoted_tuple(frame: &[u8]) -> Option<Quoted> {
    let ip = ipv4::Packet::new_checked(frame.get(ethernet::HEADER_LEN..)?).ok()?;
    let m = icmp::Packet::new_checked(ip.payload()).ok()?;
    if !is_translated_error(m.msg_type()) {
        return None;
    }
    let q = m.quoted_ipv4().ok()?;
    let proto = q.protocol();
    if (proto != IpProtocol::TCP && proto != IpProtocol::UDP) || q.frag_offset() != 0 {
        return None;
    }
    let l4 = q.as_bytes().get(usize::from(q.header_len())..)?;
    let ports = l4.get(..4)?;
    Some(Quoted {
        proto: proto.0,
        src: q.src_addr(),
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dst: q.dst_addr(),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
    })
}

/// Apply `t` to the ICMP error in `buf`.
pub fn translate<B: PacketBuf>(buf: &mut B, t: &Translation) -> Result<(), DropReason> {
    let l3 = buf
        .data_mut()
        .get_mut(ethernet::HEADER_LEN..)
        .ok_or(DropReason::EthTruncated)?;
    let mut ip = ipv4::Packet::new_checked(l3).map_err(|_| DropReason::Ipv4Malformed)?;
    if let Some(a) = t.outer_src {
        ip.set_src_addr(a);
    }
    if let Some(a) = t.outer_dst {
        ip.set_dst_addr(a);
    }
    ip.fill_checksum();
    let mut m =
        icmp::Packet::new_checked(ip.payload_mut()).map_err(|_| DropReason::IcmpMalformed)?;
    {
        let quote = m.data_mut();
        let mut q =
            ipv4::Packet::new_checked_quoted(&mut *quote).map_err(|_| DropReason::IcmpMalformed)?;
        let (old_src, old_dst) = (q.src_addr(), q.dst_addr());
        let proto = q.protocol();
        q.set_src_addr(t.quoted.src);
        q.set_dst_addr(t.quoted.dst);
        q.fill_checksum();
        let hl = usize::from(q.header_len());
        let l4 = quote.get_mut(hl..).ok_or(DropReason::IcmpMalformed)?;
        if l4.len() < 4 {
            return Err(DropReason::IcmpMalformed);
        }
        let old_sport = u16::from_be_bytes([l4[0], l4[1]]);
        let old_dport = u16::from_be_bytes([l4[2], l4[3]]);
        l4[0..2].copy_from_slice(&t.quoted.sport.to_be_bytes());
        l4[2..4].copy_from_slice(&t.quoted.dport.to_be_bytes());
        if proto == IpProtocol::UDP && l4.len() >= 8 {
            let mut c = u16::from_be_bytes([l4[6], l4[7]]);
            c = update_udp_u32(c, old_src.to_bits(), t.quoted.src.to_bits());
            c = update_udp_u32(c, old_dst.to_bits(), t.quoted.dst.to_bits());
            c = update_udp_u16(c, old_sport, t.quoted.sport);
            c = update_udp_u16(c, old_dport, t.quoted.dport);
            l4[6..8].copy_from_slice(&c.to_be_bytes());
        } else if proto == IpProtocol::TCP && l4.len() >= 18 {
            let mut c = u16::from_be_bytes([l4[16], l4[17]]);
            c = update_addr(c, old_src, t.quoted.src);
            c = update_addr(c, old_dst, t.quoted.dst);
            c = update_u16(c, old_sport, t.quoted.sport);
            c = update_u16(c, old_dport, t.quoted.dport);
            l4[16..18].copy_from_slice(&c.to_be_bytes());
        }
    }
    m.fill_checksum();
    Ok(())
}
