//! IPv6 headers (RFC 8200): the fixed header view and the extension-header walk.
//!
//! [`Packet::new_checked`] enforces, in this order: the 40-byte fixed header fits (`Truncated`),
//! version is 6 (`Malformed`), and the header plus payload length fits in the buffer
//! (`BadLength`). A buffer longer than that is fine: Ethernet pads short frames, and
//! [`Packet::payload`] ends at the payload length. Jumbograms (payload length 0 and a Jumbo
//! Payload option, RFC 2675) are not supported: their payload reads as empty, and the walk of
//! their hop-by-hop header fails with [`ExtError::Truncated`]. [`Packet::new_checked_quoted`] is
//! the lenient variant for a header quoted inside an ICMPv6 error.
//!
//! # Extension headers
//!
//! [`walk`] follows the next-header chain from the fixed header to the upper-layer header. It
//! knows hop-by-hop options (0, allowed only first, RFC 8200 4.1), routing (43), fragment (44),
//! destination options (60) and AH (51, whose length counts 4-byte units minus 2, RFC 4302);
//! anything else, including no-next-header (59) and ESP (50), ends the walk as the upper-layer
//! protocol. Every length is checked against the payload before it is used, at most
//! `max_headers` are walked, and the walk stops after a non-first fragment's header (what
//! follows is the middle of the original packet, not a header). Options inside hop-by-hop and
//! destination options headers are not interpreted: rvs forwards, it is not their destination.
//!
//! [`ExtPolicy::classify`] turns the walk into what the worker does, one [`ExtDrop`] per reason
//! to count. The policy, compared with what the others do:
//! - Fragments are dropped, first or not (`ipv6_fragment`): rvs does not reassemble, exactly as
//!   for IPv4. DPVS does not reassemble for forwarding either (its `ip_vs_core.c` drops IPv4
//!   fragments, since RSS cannot steer a flow's fragments to the core owning its connection, and
//!   IPv6 fragments in its ICMPv6 path); Linux IPVS relies on netfilter's reassembly
//!   (`nf_defrag_ipv6`), which a kernel-bypass director does not have. An *atomic* fragment (offset 0, M clear, RFC 6946) is
//!   not a fragment and is processed as an unfragmented packet.
//! - A routing header with segments left > 0 is dropped (`ipv6_routing_header`): the packet's
//!   destination is an intermediate hop and the final one is elsewhere, so a VIP lookup on it
//!   would be wrong (DPVS's translation of the destination for routing headers carries a FIXME
//!   for exactly that). With segments left 0 the header is ignored, as RFC 8200 4.4 says.
//! - More than [`ExtPolicy::max_headers`] headers (default 8, the default of Linux's
//!   `max_dst_opts_number` and `max_hbh_opts_number`) is dropped (`ipv6_ext_headers_too_many`).
//! - A chain that runs past the payload, a hop-by-hop header that is not first, or a second
//!   fragment or routing header is malformed (`ipv6_ext_malformed`; Linux answers a parameter
//!   problem for the first two, rvs drops and counts).

use super::{Error, IpProtocol, Result, be16, be32, put16};
use std::net::Ipv6Addr;

mod field {
    pub const VER_TC_FL: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// The minimum link MTU every IPv6 link supports (RFC 8200 section 5).
pub const MIN_MTU: usize = 1280;

/// Next-header values of the extension headers and the other IPv6-specific protocols.
pub mod next_header {
    use super::IpProtocol;
    pub const HOP_BY_HOP: IpProtocol = IpProtocol(0);
    pub const ROUTING: IpProtocol = IpProtocol(43);
    pub const FRAGMENT: IpProtocol = IpProtocol(44);
    pub const ESP: IpProtocol = IpProtocol(50);
    pub const AH: IpProtocol = IpProtocol(51);
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    pub const NO_NEXT_HEADER: IpProtocol = IpProtocol(59);
    pub const DEST_OPTS: IpProtocol = IpProtocol(60);
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

#[inline]
fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Wrap a header quoted in an ICMPv6 error: checks that the fixed header fits and the
    /// version, not the payload length (the quote may be cut short).
    pub fn new_checked_quoted(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_header()?;
        Ok(p)
    }

    fn check_header(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// The checks of the module doc.
    pub fn check_len(&self) -> Result<()> {
        self.check_header()?;
        if HEADER_LEN + usize::from(self.payload_len()) > self.buffer.as_ref().len() {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole underlying buffer (may extend past the payload).
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FL] >> 4
    }

    /// The traffic class byte (DSCP << 2 | ECN).
    pub fn traffic_class(&self) -> u8 {
        (be32(self.buffer.as_ref(), field::VER_TC_FL) >> 20) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FL) & 0x000f_ffff
    }

    /// Bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Header plus payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The first next header: an extension header or the upper-layer protocol.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), field::SRC)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), field::DST)
    }

    /// The payload (extension headers and upper layer): from the fixed header's end to the
    /// payload length, clamped to the buffer (for a quoted header, whatever was quoted).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = self.total_len().min(b.len());
        &b[HEADER_LEN.min(end)..end]
    }

    /// Walk the extension headers of this packet (see [`walk`]).
    pub fn ext_headers(&self, max_headers: usize) -> core::result::Result<ExtHeaders, ExtError> {
        walk(self.next_header(), self.payload(), max_headers)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Write version 6, the traffic class and the flow label (its top 12 bits are dropped).
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FL..field::VER_TC_FL + 4]
            .copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_payload_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::PAYLOAD_LEN, len);
    }

    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = p.0;
    }

    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    /// Decrement the hop limit (no checksum to patch in IPv6). The caller has checked
    /// `hop_limit() > 1`; at 0 it stays 0.
    pub fn decrement_hop_limit(&mut self) {
        let h = self.hop_limit().saturating_sub(1);
        self.set_hop_limit(h);
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }

    /// Writable payload, bounds as [`Packet::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let total = self.total_len();
        let b = self.buffer.as_mut();
        let end = total.min(b.len());
        &mut b[HEADER_LEN.min(end)..end]
    }
}

/// An IPv6 fixed header as plain data, for emitting new packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The first next header (the upper-layer protocol when there are no extension headers).
    pub next_header: IpProtocol,
    /// Bytes after the fixed header.
    pub payload_len: u16,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parse from a checked view; extension headers are the walk's business, not the repr's.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    /// Bytes `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the 40-byte fixed header. The buffer must hold at least [`HEADER_LEN`] bytes
    /// (`Truncated` otherwise).
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let mut p = Packet::new_unchecked(buf);
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        Ok(())
    }
}

/// The fragment header of a packet, as the walk saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// Offset of this fragment's data in the original packet, in bytes (a multiple of 8).
    pub offset: u16,
    /// The M flag: more fragments follow.
    pub more: bool,
    pub ident: u32,
}

impl FragInfo {
    /// An atomic fragment (offset 0, M clear; RFC 6946): a whole packet in one fragment.
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// The routing header of a packet, as the walk saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingInfo {
    pub routing_type: u8,
    pub segments_left: u8,
}

/// What the walk found between the fixed header and the upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtHeaders {
    /// The upper-layer protocol (TCP, UDP, ICMPv6, or one the walk does not enter: ESP, 59).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the IPv6 header. For a non-first
    /// fragment this is where its data starts, not a header.
    pub l4_offset: usize,
    /// Extension headers walked.
    pub count: u8,
    pub hop_by_hop: bool,
    pub fragment: Option<FragInfo>,
    pub routing: Option<RoutingInfo>,
}

impl ExtHeaders {
    /// A fragment that is not atomic: part of a packet rvs would have to reassemble.
    pub fn is_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| !f.is_atomic())
    }
}

/// Why the walk could not reach the upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExtError {
    #[error("an IPv6 extension header runs past the payload")]
    Truncated,
    #[error("IPv6 hop-by-hop options header not directly after the fixed header")]
    HopByHopNotFirst,
    #[error("a second IPv6 {0} header")]
    Duplicate(&'static str),
    #[error("more IPv6 extension headers than the limit")]
    TooMany,
}

/// Walk the extension headers of an IPv6 payload whose first next header is `first` (module
/// doc). Never reads past `payload`, never walks more than `max_headers` headers (at most 255).
pub fn walk(
    first: IpProtocol,
    payload: &[u8],
    max_headers: usize,
) -> core::result::Result<ExtHeaders, ExtError> {
    let max_headers = max_headers.min(usize::from(u8::MAX));
    let mut r = ExtHeaders {
        protocol: first,
        l4_offset: HEADER_LEN,
        count: 0,
        hop_by_hop: false,
        fragment: None,
        routing: None,
    };
    let mut off = 0usize;
    loop {
        let nh = r.protocol;
        if !matches!(
            nh,
            next_header::HOP_BY_HOP
                | next_header::ROUTING
                | next_header::FRAGMENT
                | next_header::DEST_OPTS
                | next_header::AH
        ) {
            break;
        }
        if nh == next_header::HOP_BY_HOP && r.count != 0 {
            return Err(ExtError::HopByHopNotFirst);
        }
        if usize::from(r.count) >= max_headers {
            return Err(ExtError::TooMany);
        }
        // Every extension header is at least 8 bytes.
        let h = payload.get(off..off + 8).ok_or(ExtError::Truncated)?;
        let len = match nh {
            next_header::FRAGMENT => 8,
            next_header::AH => (usize::from(h[1]) + 2) * 4,
            _ => (usize::from(h[1]) + 1) * 8,
        };
        if off + len > payload.len() {
            return Err(ExtError::Truncated);
        }
        let mut stop = false;
        match nh {
            next_header::HOP_BY_HOP => r.hop_by_hop = true,
            next_header::FRAGMENT => {
                if r.fragment.is_some() {
                    return Err(ExtError::Duplicate("fragment"));
                }
                let v = be16(h, 2);
                let f = FragInfo {
                    offset: v & 0xfff8,
                    more: v & 1 != 0,
                    ident: be32(h, 4),
                };
                stop = f.offset != 0;
                r.fragment = Some(f);
            }
            next_header::ROUTING => {
                if r.routing.is_some() {
                    return Err(ExtError::Duplicate("routing"));
                }
                r.routing = Some(RoutingInfo {
                    routing_type: h[2],
                    segments_left: h[3],
                });
            }
            _ => {}
        }
        r.count += 1;
        r.protocol = IpProtocol(h[0]);
        off += len;
        r.l4_offset = HEADER_LEN + off;
        if stop {
            break;
        }
    }
    Ok(r)
}

/// Why [`ExtPolicy::classify`] drops a packet; [`ExtDrop::label`] is the drop-counter label the
/// worker will use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtDrop {
    /// The chain is malformed ([`ExtError`] other than `TooMany`).
    Malformed(ExtError),
    /// More extension headers than the policy allows.
    TooMany,
    /// A fragment (not atomic): rvs does not reassemble.
    Fragment,
    /// A routing header with segments left: the destination is not the final one.
    RoutingHeader,
}

impl ExtDrop {
    /// The metric label of this reason (snake_case, stable).
    pub const fn label(self) -> &'static str {
        match self {
            ExtDrop::Malformed(_) => "ipv6_ext_malformed",
            ExtDrop::TooMany => "ipv6_ext_headers_too_many",
            ExtDrop::Fragment => "ipv6_fragment",
            ExtDrop::RoutingHeader => "ipv6_routing_header",
        }
    }
}

/// What the worker accepts in the extension-header chain (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtPolicy {
    /// Extension headers walked before the packet is dropped.
    pub max_headers: usize,
}

impl Default for ExtPolicy {
    fn default() -> Self {
        ExtPolicy { max_headers: 8 }
    }
}

impl ExtPolicy {
    /// Walk `p`'s extension headers and apply the policy: `Ok` with where the upper layer is,
    /// or the reason to drop.
    pub fn classify<T: AsRef<[u8]>>(
        &self,
        p: &Packet<T>,
    ) -> core::result::Result<ExtHeaders, ExtDrop> {
        let r = p.ext_headers(self.max_headers).map_err(|e| match e {
            ExtError::TooMany => ExtDrop::TooMany,
            e => ExtDrop::Malformed(e),
        })?;
        if r.is_fragment() {
            return Err(ExtDrop::Fragment);
        }
        if r.routing.is_some_and(|rt| rt.segments_left > 0) {
            return Err(ExtDrop::RoutingHeader);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{checksum, fixtures_v6, udp};
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn bare(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN];
        Ipv6Repr {
            src: a("2001:2::2"),
            dst: a("2001:2::1"),
            next_header: IpProtocol(nh),
            payload_len: payload.len() as u16,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut v)
        .unwrap();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn parse_fixture_with_extension_headers() {
        let b = &fixtures_v6::IPV6_UDP_EXT[..];
        let p = Packet::new_checked(b).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!((p.traffic_class(), p.flow_label()), (0, 0));
        assert_eq!(p.payload_len() as usize, b.len() - HEADER_LEN);
        assert_eq!(p.next_header(), next_header::HOP_BY_HOP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), a("2001:2::2"));
        assert_eq!(p.dst_addr(), a("2001:2::1"));
        let e = p.ext_headers(8).unwrap();
        assert_eq!(e.protocol, IpProtocol::UDP);
        assert_eq!(e.l4_offset, HEADER_LEN + 24);
        assert_eq!(e.count, 3);
        assert!(e.hop_by_hop);
        let f = e.fragment.unwrap();
        assert_eq!(
            f,
            FragInfo {
                offset: 0,
                more: false,
                ident: 0xcafe_f00d
            }
        );
        assert!(f.is_atomic() && !e.is_fragment());
        assert_eq!(e.routing, None);
        // The UDP header found there verifies over the v6 pseudo header (python's checksum).
        let seg = &b[e.l4_offset..];
        let u = udp::Packet::new_checked(seg).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (5353, 53));
        assert_eq!(
            checksum::l4_checksum_v6(p.src_addr(), p.dst_addr(), 17, seg),
            0
        );
        // An atomic fragment passes the policy.
        assert_eq!(ExtPolicy::default().classify(&p), Ok(e));
        // Two headers allowed: too many.
        assert_eq!(
            ExtPolicy { max_headers: 2 }.classify(&p),
            Err(ExtDrop::TooMany)
        );
    }

    #[test]
    fn fixed_header_checks() {
        let b = bare(59, &[0xab; 8]);
        assert!(Packet::new_checked(&b[..]).is_ok());
        assert_eq!(Packet::new_checked(&b[..39]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&b[..47]), Err(Error::BadLength));
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(Packet::new_checked(&v4[..]), Err(Error::Malformed));
        // Ethernet padding after the payload is not payload.
        let mut padded = b.clone();
        padded.extend_from_slice(&[0; 10]);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &[0xab; 8]);
        // A quoted header needs only its 40 bytes.
        assert!(Packet::new_checked_quoted(&b[..40]).is_ok());
        assert_eq!(Packet::new_checked_quoted(&b[..39]), Err(Error::Truncated));
        // No next header: nothing walked, protocol 59.
        let e = Packet::new_checked(&b[..]).unwrap().ext_headers(8).unwrap();
        assert_eq!(
            (e.protocol, e.count, e.l4_offset),
            (next_header::NO_NEXT_HEADER, 0, 40)
        );
    }

    #[test]
    fn setters_and_repr_round_trip() {
        let r = Ipv6Repr {
            src: a("2001:2::10"),
            dst: a("2001:2:0:1::20"),
            next_header: IpProtocol::TCP,
            payload_len: 20,
            hop_limit: 2,
            traffic_class: 0xb8,
            flow_label: 0xabcde,
        };
        let mut buf = vec![0u8; 60];
        r.emit(&mut buf).unwrap();
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p), r);
        p.decrement_hop_limit();
        p.decrement_hop_limit();
        p.decrement_hop_limit();
        assert_eq!(p.hop_limit(), 0);
        p.set_version_tc_flow(0x01, 0xfff_fffff);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 1, 0xfffff)
        );
        // A setter that lies about the length cannot make accessors panic.
        p.set_payload_len(u16::MAX);
        assert_eq!(p.payload().len(), 20);
        assert_eq!(p.payload_mut().len(), 20);
        assert_eq!(r.emit(&mut [0u8; 39]), Err(Error::Truncated));
    }

    /// An extension header of `len` bytes (a multiple of 8) with next header `nh`.
    fn ext(nh: u8, len: usize) -> Vec<u8> {
        let mut h = vec![0u8; len];
        h[0] = nh;
        h[1] = (len / 8 - 1) as u8;
        h
    }

    fn frag(nh: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
        let mut h = vec![nh, 0];
        h.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h
    }

    fn classify(first: u8, payload: &[u8]) -> core::result::Result<ExtHeaders, ExtDrop> {
        let b = bare(first, payload);
        ExtPolicy::default().classify(&Packet::new_checked(&b[..]).unwrap())
    }

    #[test]
    fn fragments_are_dropped_first_or_not() {
        let mut first = frag(17, 0, true, 7);
        first.extend_from_slice(&[0; 16]);
        assert_eq!(classify(44, &first), Err(ExtDrop::Fragment));
        let b = bare(44, &first);
        let e = Packet::new_checked(&b[..]).unwrap().ext_headers(8).unwrap();
        assert_eq!(e.protocol, IpProtocol::UDP);
        assert_eq!(
            e.fragment,
            Some(FragInfo {
                offset: 0,
                more: true,
                ident: 7
            })
        );
        // A non-first fragment: the walk stops at its data, even if the data look like headers.
        let mut later = frag(0, 1232, false, 7);
        later.extend_from_slice(&ext(60, 8));
        let b = bare(44, &later);
        let e = Packet::new_checked(&b[..]).unwrap().ext_headers(8).unwrap();
        assert_eq!(
            (e.protocol, e.count, e.l4_offset),
            (next_header::HOP_BY_HOP, 1, 48)
        );
        assert_eq!(e.fragment.unwrap().offset, 1232);
        assert_eq!(classify(44, &later), Err(ExtDrop::Fragment));
        assert_eq!(ExtDrop::Fragment.label(), "ipv6_fragment");
    }

    #[test]
    fn routing_header_policy() {
        // Type 4 (segment routing), segments left 1: dropped.
        let mut rh = ext(6, 24);
        rh[2] = 4;
        rh[3] = 1;
        rh.extend_from_slice(&[0; 20]);
        assert_eq!(classify(43, &rh), Err(ExtDrop::RoutingHeader));
        // Segments left 0: ignored.
        rh[3] = 0;
        let e = classify(43, &rh).unwrap();
        assert_eq!(
            e.routing,
            Some(RoutingInfo {
                routing_type: 4,
                segments_left: 0
            })
        );
        assert_eq!((e.protocol, e.l4_offset), (IpProtocol::TCP, 64));
        // Two routing headers.
        let mut two = ext(43, 8);
        two.extend_from_slice(&ext(6, 8));
        assert_eq!(
            classify(43, &two),
            Err(ExtDrop::Malformed(ExtError::Duplicate("routing")))
        );
    }

    #[test]
    fn malformed_chains() {
        // Hop-by-hop after a destination options header.
        let mut c = ext(0, 8);
        c.extend_from_slice(&ext(59, 8));
        assert_eq!(
            classify(60, &c),
            Err(ExtDrop::Malformed(ExtError::HopByHopNotFirst))
        );
        // A header whose length runs past the payload.
        let mut long = ext(17, 8);
        long[1] = 3; // 32 bytes claimed, 16 present
        long.extend_from_slice(&[0; 8]);
        assert_eq!(
            classify(60, &long),
            Err(ExtDrop::Malformed(ExtError::Truncated))
        );
        // Fewer than 8 bytes for a header.
        assert_eq!(
            classify(0, &[17, 0, 0, 0]),
            Err(ExtDrop::Malformed(ExtError::Truncated))
        );
        // Two fragment headers.
        let mut ff = frag(44, 0, false, 1);
        ff.extend_from_slice(&frag(17, 0, false, 1));
        assert_eq!(
            classify(44, &ff),
            Err(ExtDrop::Malformed(ExtError::Duplicate("fragment")))
        );
        // Nine destination options headers: over the default bound of 8.
        let mut many = Vec::new();
        for _ in 0..8 {
            many.extend_from_slice(&ext(60, 8));
        }
        many.extend_from_slice(&ext(6, 8));
        assert_eq!(classify(60, &many), Err(ExtDrop::TooMany));
        assert_eq!(
            classify(60, &many[8..]).map(|e| (e.count, e.protocol)),
            Ok((8, IpProtocol::TCP))
        );
        // 300 headers against a bound above what the count can hold: stopped at 255.
        let mut huge = Vec::new();
        for _ in 0..300 {
            huge.extend_from_slice(&ext(60, 8));
        }
        assert_eq!(
            walk(next_header::DEST_OPTS, &huge, 1000),
            Err(ExtError::TooMany)
        );
    }

    #[test]
    fn ah_length_counts_four_byte_units() {
        // AH with payload length 4: (4 + 2) * 4 = 24 bytes, then UDP.
        let mut ah = vec![17u8, 4, 0, 0];
        ah.extend_from_slice(&[0; 20]);
        ah.extend_from_slice(&[0; 8]);
        let e = classify(51, &ah).unwrap();
        assert_eq!((e.protocol, e.l4_offset, e.count), (IpProtocol::UDP, 64, 1));
        // ESP ends the walk: its contents are encrypted.
        let e = classify(50, &[0; 16]).unwrap();
        assert_eq!((e.protocol, e.count), (next_header::ESP, 0));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..160), fix in any::<bool>()) {
            let mut data = data;
            if fix && data.len() >= HEADER_LEN {
                data[0] = 0x60;
                let plen = (data.len() - HEADER_LEN) as u16;
                data[4..6].copy_from_slice(&plen.to_be_bytes());
            }
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = (Ipv6Repr::parse(&p), p.payload().len());
                prop_assert!(p.total_len() <= data.len());
                for max in [0, 1, 8, 100] {
                    if let Ok(e) = p.ext_headers(max) {
                        prop_assert!(e.l4_offset <= p.total_len());
                        prop_assert!(usize::from(e.count) <= max);
                    }
                }
                let _ = ExtPolicy::default().classify(&p);
            }
            if let Ok(p) = Packet::new_checked_quoted(&data[..]) {
                let _ = (p.payload().len(), p.ext_headers(8));
            }
        }

        #[test]
        fn random_chains_never_panic(first in prop::sample::select(vec![0u8, 43, 44, 51, 60]), payload in proptest::collection::vec(any::<u8>(), 0..120)) {
            // Bias toward valid next-header values inside the chain.
            let mut payload = payload;
            for (i, b) in payload.iter_mut().enumerate() {
                if i % 8 == 0 {
                    *b = [0u8, 43, 44, 51, 60, 6, 17][usize::from(*b) % 7];
                }
            }
            if let Ok(e) = walk(IpProtocol(first), &payload, 8) {
                prop_assert!(e.l4_offset <= HEADER_LEN + payload.len());
            }
        }
    }
}
