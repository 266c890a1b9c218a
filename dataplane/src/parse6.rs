//! Parse once, IPv6: an Ethernet/IPv6 frame validated one time into a [`Parsed6`], the IPv6
//! counterpart of [`crate::parse::Parsed`] for the connection path (not used by the worker yet).
//!
//! [`parse6`] takes a frame [`crate::parse::parse`] classified as [`crate::parse::Class::Ipv6`]
//! (so the destination MAC was accepted) and checks, in this order, the first failure being the
//! frame's one drop reason:
//! - an Ethernet header with ethertype `0x86dd` (`eth_truncated`, `unknown_ethertype`);
//! - the fixed header: 40 bytes and version 6 (`ipv6_malformed`), the payload length within the
//!   frame (`ipv6_bad_length`; bytes past it are Ethernet padding and ignored);
//! - the extension-header chain under an [`ExtPolicy`] (`wire::ipv6`): `ipv6_ext_malformed`,
//!   `ipv6_ext_headers_too_many`, `ipv6_fragment`, `ipv6_routing_header`. A packet whose next
//!   header is TCP or UDP has no chain and is not walked;
//! - a TCP header that fits in the payload with a sound data offset (`tcp_malformed`), a UDP
//!   header whose length field is at least 8 and within the payload (`udp_malformed`): the
//!   checks of `wire::tcp::Packet::new_checked` and `wire::udp::Packet::new_checked`.
//!
//! A valid frame is [`Class6::Flow`] (TCP, UDP: the tuple as on the wire), [`Class6::Icmp`]
//! (ICMPv6, ports 0) or [`Class6::Other`] (another upper layer, or ESP / no next header where
//! the walk stops; ports 0). The L4 checksum is not verified here, as for IPv4.

use std::net::Ipv6Addr;

use crate::conn::ConnKey6;
use crate::drop::DropReason;
use crate::parse::L3;
use crate::wire::ipv6::{self, ExtDrop, ExtPolicy, next_header};
use crate::wire::{EtherType, IpProtocol, ethernet, tcp, udp};

/// What kind of IPv6 packet it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class6 {
    /// TCP or UDP with sound headers: the connection path ([`Parsed6::key`] is its tuple).
    Flow,
    /// ICMPv6 ([`Parsed6::key`] has the addresses, ports 0).
    Icmp,
    /// Another upper-layer protocol ([`Parsed6::key`] has the protocol and addresses).
    Other,
}

/// One IPv6 frame, validated. Offsets are from the start of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed6 {
    pub class: Class6,
    /// The tuple as on the wire (Flow), or the upper-layer protocol and addresses, ports 0.
    pub key: ConnKey6,
    /// Offset of the upper-layer header.
    pub l4: u16,
    /// Offset of the end of the IPv6 packet (fixed header + payload length); what follows is
    /// padding.
    pub end: u16,
    /// The TCP flag byte (0 otherwise).
    pub tcp_flags: u8,
    pub hop_limit: u8,
    /// Extension headers between the fixed header and the upper layer.
    pub ext_headers: u8,
}

impl Parsed6 {
    /// A TCP SYN without ACK, RST or FIN: the only TCP packet that opens a connection.
    pub const fn is_plain_syn(&self) -> bool {
        self.key.proto == IpProtocol::TCP.0 && self.tcp_flags & 0x17 == 0x02
    }
}

/// The drop reason of an extension-header policy verdict.
pub const fn ext_reason(e: ExtDrop) -> DropReason {
    match e {
        ExtDrop::Malformed(_) => DropReason::Ipv6ExtMalformed,
        ExtDrop::TooMany => DropReason::Ipv6ExtHeadersTooMany,
        ExtDrop::Fragment => DropReason::Ipv6Fragment,
        ExtDrop::RoutingHeader => DropReason::Ipv6RoutingHeader,
    }
}

/// Validate the IPv6 frame `frame` (module doc). Never panics, whatever the bytes.
pub fn parse6(frame: &[u8], policy: &ExtPolicy) -> Result<Parsed6, DropReason> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| DropReason::EthTruncated)?;
    if eth.ethertype() != EtherType::IPV6 {
        return Err(DropReason::UnknownEthertype);
    }
    let l3 = frame.get(L3..).unwrap_or_default();
    let h = l3
        .first_chunk::<{ ipv6::HEADER_LEN }>()
        .ok_or(DropReason::Ipv6Malformed)?;
    if h[0] >> 4 != 6 {
        return Err(DropReason::Ipv6Malformed);
    }
    let end = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([h[4], h[5]]));
    if end > l3.len() {
        return Err(DropReason::Ipv6BadLength);
    }
    let first = h[6];
    let (proto, l4_off, count) = if first == IpProtocol::TCP.0 || first == IpProtocol::UDP.0 {
        // No extension headers: nothing for the walk or the policy to see.
        (first, ipv6::HEADER_LEN, 0)
    } else {
        let ext = policy
            .classify(&ipv6::Packet::new_unchecked(&l3[..end]))
            .map_err(ext_reason)?;
        (ext.protocol.0, ext.l4_offset, ext.count)
    };
    let addr = |at: usize| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&h[at..at + 16]);
        Ipv6Addr::from(o)
    };
    let mut p = Parsed6 {
        class: Class6::Other,
        key: ConnKey6::new(proto, addr(8), 0, addr(24), 0),
        l4: (L3 + l4_off) as u16,
        end: (L3 + end) as u16,
        tcp_flags: 0,
        hop_limit: h[7],
        ext_headers: count,
    };
    // The walk keeps l4_off within the payload.
    let l4 = l3.get(l4_off..end).unwrap_or_default();
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    if proto == IpProtocol::TCP.0 {
        let ok = l4.len() >= tcp::HEADER_LEN && {
            let off = usize::from(l4[12] >> 4) * 4;
            off >= tcp::HEADER_LEN && off <= l4.len()
        };
        if !ok {
            return Err(DropReason::TcpMalformed);
        }
        p.class = Class6::Flow;
        (p.key.sport, p.key.dport) = (port(0), port(2));
        p.tcp_flags = l4[13];
    } else if proto == IpProtocol::UDP.0 {
        let ok = l4.len() >= udp::HEADER_LEN && {
            let len = usize::from(port(4));
            len >= udp::HEADER_LEN && len <= l4.len()
        };
        if !ok {
            return Err(DropReason::UdpMalformed);
        }
        p.class = Class6::Flow;
        (p.key.sport, p.key.dport) = (port(0), port(2));
    } else if proto == next_header::ICMPV6.0 {
        p.class = Class6::Icmp;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error as WireError;
    use crate::wire::fixtures_v6;
    use crate::wire::ipv6::Ipv6Repr;
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const CIP: &str = "2001:2::2";
    const VIP: &str = "2001:2::100";

    /// An Ethernet/IPv6 frame: `exts` (next header, bytes) chained before the upper layer
    /// `proto` carrying `l4`.
    fn frame(exts: &[(u8, Vec<u8>)], proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        for (i, (_, bytes)) in exts.iter().enumerate() {
            let mut b = bytes.clone();
            b[0] = exts.get(i + 1).map_or(proto, |e| e.0);
            payload.extend_from_slice(&b);
        }
        payload.extend_from_slice(l4);
        let mut f = vec![0u8; L3 + ipv6::HEADER_LEN];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        Ipv6Repr {
            src: a(CIP),
            dst: a(VIP),
            next_header: IpProtocol(exts.first().map_or(proto, |e| e.0)),
            payload_len: payload.len() as u16,
            hop_limit: 61,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut f[L3..])
        .unwrap();
        f.extend_from_slice(&payload);
        f
    }

    /// An IPv6 packet behind an Ethernet header.
    fn with_eth(ip: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
        f.extend_from_slice(ip);
        f
    }

    fn tcp_hdr(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 0x50;
        t[13] = flags;
        t
    }

    fn udp_hdr(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let mut u = vec![0u8; 8];
        u[..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u[4..6].copy_from_slice(&(8 + data.len() as u16).to_be_bytes());
        u.extend_from_slice(data);
        u
    }

    fn opts() -> (u8, Vec<u8>) {
        (60, vec![0, 0, 1, 4, 0, 0, 0, 0]) // destination options: PadN
    }

    const POLICY: ExtPolicy = ExtPolicy { max_headers: 8 };

    #[test]
    fn tcp_and_udp_tuples_offsets_and_flags() {
        let f = frame(&[], 6, &tcp_hdr(40000, 80, 0x02));
        let p = parse6(&f, &POLICY).unwrap();
        assert_eq!(p.class, Class6::Flow);
        assert_eq!(p.key, ConnKey6::new(6, a(CIP), 40000, a(VIP), 80));
        assert_eq!((p.l4, p.end, p.tcp_flags, p.hop_limit), (54, 74, 0x02, 61));
        assert_eq!(p.ext_headers, 0);
        assert!(p.is_plain_syn());
        // Behind a hop-by-hop and a destination options header; Ethernet padding ignored.
        let hbh = (0u8, vec![0, 0, 1, 4, 0, 0, 0, 0]);
        let mut f = frame(&[hbh, opts()], 17, &udp_hdr(5353, 53, b"q"));
        f.extend_from_slice(&[0xee; 6]);
        let p = parse6(&f, &POLICY).unwrap();
        assert_eq!(p.key, ConnKey6::new(17, a(CIP), 5353, a(VIP), 53));
        assert_eq!((p.l4, p.tcp_flags, p.ext_headers), (54 + 16, 0, 2));
        assert_eq!(usize::from(p.end), f.len() - 6);
        assert!(!p.is_plain_syn());
        // The committed vector: UDP behind three extension headers.
        let p = parse6(&with_eth(&fixtures_v6::IPV6_UDP_EXT), &POLICY).unwrap();
        assert_eq!((p.class, p.key.proto, p.ext_headers), (Class6::Flow, 17, 3));
        // ICMPv6 and other protocols.
        let p = parse6(&fixtures_v6::ICMPV6_ECHO, &POLICY).unwrap();
        assert_eq!((p.class, p.key.proto, p.key.sport), (Class6::Icmp, 58, 0));
        let p = parse6(&frame(&[], 47, &[0; 8]), &POLICY).unwrap();
        assert_eq!((p.class, p.key.proto), (Class6::Other, 47));
        let p = parse6(&frame(&[], 50, &[0; 8]), &POLICY).unwrap();
        assert_eq!((p.class, p.key.proto), (Class6::Other, 50));
    }

    #[test]
    fn each_check_has_its_reason() {
        let good = frame(&[], 6, &tcp_hdr(40000, 80, 0x10));
        assert!(parse6(&good, &POLICY).is_ok());
        let r = |f: &[u8]| parse6(f, &POLICY).err();
        assert_eq!(r(&good[..10]), Some(DropReason::EthTruncated));
        let mut f = good.clone();
        f[12] = 0x08;
        f[13] = 0x00;
        assert_eq!(r(&f), Some(DropReason::UnknownEthertype));
        assert_eq!(r(&good[..L3 + 39]), Some(DropReason::Ipv6Malformed));
        let mut f = good.clone();
        f[L3] = 0x45;
        assert_eq!(r(&f), Some(DropReason::Ipv6Malformed));
        assert_eq!(r(&good[..good.len() - 1]), Some(DropReason::Ipv6BadLength));
        // TCP: data offset below 5 or past the payload; a cut header.
        let mut f = good.clone();
        f[L3 + 40 + 12] = 0x40;
        assert_eq!(r(&f), Some(DropReason::TcpMalformed));
        let mut f = good.clone();
        f[L3 + 40 + 12] = 0x60;
        assert_eq!(r(&f), Some(DropReason::TcpMalformed));
        let cut = frame(&[], 6, &tcp_hdr(1, 2, 0)[..19]);
        assert_eq!(r(&cut), Some(DropReason::TcpMalformed));
        // UDP: a length past the payload, or below 8.
        let mut u = frame(&[], 17, &udp_hdr(1, 2, b"ab"));
        u[L3 + 40 + 5] = 11;
        assert_eq!(r(&u), Some(DropReason::UdpMalformed));
        u[L3 + 40 + 5] = 7;
        assert_eq!(r(&u), Some(DropReason::UdpMalformed));
        // The extension-header policy, each with its reason.
        let frag = |off_m: u16| {
            (
                44u8,
                [[0u8, 0].as_slice(), &off_m.to_be_bytes(), &[0; 4]].concat(),
            )
        };
        let f = frame(&[frag(1)], 6, &tcp_hdr(1, 2, 0));
        assert_eq!(r(&f), Some(DropReason::Ipv6Fragment));
        let f = frame(&[frag(8)], 6, &tcp_hdr(1, 2, 0));
        assert_eq!(r(&f), Some(DropReason::Ipv6Fragment));
        // An atomic fragment is a whole packet.
        let f = frame(&[frag(0)], 6, &tcp_hdr(1, 2, 0));
        assert_eq!(parse6(&f, &POLICY).map(|p| p.key.sport), Ok(1));
        let rh = |left: u8| (43u8, vec![0, 0, 4, left, 0, 0, 0, 0]);
        assert_eq!(
            r(&frame(&[rh(1)], 6, &tcp_hdr(1, 2, 0))),
            Some(DropReason::Ipv6RoutingHeader)
        );
        assert!(parse6(&frame(&[rh(0)], 6, &tcp_hdr(1, 2, 0)), &POLICY).is_ok());
        let nine = vec![opts(); 9];
        assert_eq!(
            r(&frame(&nine, 6, &tcp_hdr(1, 2, 0))),
            Some(DropReason::Ipv6ExtHeadersTooMany)
        );
        let mut f = frame(&[opts()], 6, &[]);
        f[L3 + 40 + 1] = 1; // 16 bytes, 8 present
        assert_eq!(r(&f), Some(DropReason::Ipv6ExtMalformed));
        // A header behind the extension chain is read within the payload only.
        let mut f = frame(&[opts()], 6, &tcp_hdr(1, 2, 0));
        let n = f.len();
        f[L3 + 5] -= 1;
        f.truncate(n);
        assert_eq!(r(&f), Some(DropReason::TcpMalformed));
    }

    /// What the checked views of `wire` say about an IPv6 frame, written the long way: the
    /// reference [`parse6`] must agree with.
    fn reference(frame: &[u8]) -> Result<(Class6, ConnKey6, usize, u8), DropReason> {
        let eth = ethernet::Frame::new_checked(frame).map_err(|_| DropReason::EthTruncated)?;
        if eth.ethertype() != EtherType::IPV6 {
            return Err(DropReason::UnknownEthertype);
        }
        let ip = ipv6::Packet::new_checked(&frame[L3..]).map_err(|e| match e {
            WireError::BadLength => DropReason::Ipv6BadLength,
            _ => DropReason::Ipv6Malformed,
        })?;
        let ext = match ip.ext_headers(8) {
            Ok(ext) => ext,
            Err(ipv6::ExtError::TooMany) => return Err(DropReason::Ipv6ExtHeadersTooMany),
            Err(_) => return Err(DropReason::Ipv6ExtMalformed),
        };
        if let Some(f) = ext.fragment {
            if f.offset != 0 || f.more {
                return Err(DropReason::Ipv6Fragment);
            }
        }
        if ext.routing.is_some_and(|r| r.segments_left != 0) {
            return Err(DropReason::Ipv6RoutingHeader);
        }
        let upper = &ip.as_bytes()[ext.l4_offset..ip.total_len()];
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let l4 = L3 + ext.l4_offset;
        let flow = |sport, dport| ConnKey6::new(ext.protocol.0, src, sport, dst, dport);
        match ext.protocol {
            IpProtocol::TCP => {
                let t = tcp::Packet::new_checked(upper).map_err(|_| DropReason::TcpMalformed)?;
                let flags = upper[13];
                Ok((Class6::Flow, flow(t.src_port(), t.dst_port()), l4, flags))
            }
            IpProtocol::UDP => {
                let u = udp::Packet::new_checked(upper).map_err(|_| DropReason::UdpMalformed)?;
                Ok((Class6::Flow, flow(u.src_port(), u.dst_port()), l4, 0))
            }
            next_header::ICMPV6 => Ok((Class6::Icmp, flow(0, 0), l4, 0)),
            _ => Ok((Class6::Other, flow(0, 0), l4, 0)),
        }
    }

    fn seed_frame(kind: u8) -> Vec<u8> {
        let frag0 = (44u8, vec![0, 0, 0, 0, 0, 0, 0, 7]);
        match kind % 5 {
            0 => frame(&[], 6, &tcp_hdr(40000, 80, 0x02)),
            1 => frame(&[], 17, &udp_hdr(5353, 53, b"abcd")),
            2 => frame(&[opts(), frag0], 6, &tcp_hdr(1, 443, 0x12)),
            3 => with_eth(&fixtures_v6::IPV6_UDP_EXT),
            _ => fixtures_v6::ICMPV6_ECHO.to_vec(),
        }
    }

    proptest! {
        /// The fast parser and the checked views agree on every IPv6 frame: valid ones with any
        /// bytes flipped or cut, with or without extension headers.
        #[test]
        fn agrees_with_the_checked_views(
            kind in any::<u8>(),
            flips in proptest::collection::vec((0usize..90, any::<u8>()), 0..4),
            cut in proptest::option::of(14usize..110),
            pad in 0usize..8,
        ) {
            let mut f = seed_frame(kind);
            f.extend(std::iter::repeat_n(0xa5, pad));
            for (at, x) in flips {
                if let Some(b) = f.get_mut(L3 + at) {
                    *b ^= x;
                }
            }
            if let Some(n) = cut {
                f.truncate(n);
            }
            let got = parse6(&f, &POLICY).map(|p| (p.class, p.key, usize::from(p.l4), p.tcp_flags));
            prop_assert_eq!(got, reference(&f));
            if let Ok(p) = parse6(&f, &POLICY) {
                prop_assert_eq!(p.hop_limit, f[L3 + 7]);
                prop_assert!(usize::from(p.l4) <= usize::from(p.end));
                prop_assert!(usize::from(p.end) <= f.len());
            }
        }

        /// Any bytes behind an IPv6 ethertype: a verdict, never a panic; a Flow's header lies
        /// inside the packet.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..160), v6 in any::<bool>()) {
            let mut bytes = bytes;
            if v6 && bytes.len() > L3 {
                bytes[12] = 0x86;
                bytes[13] = 0xdd;
                bytes[L3] = 0x60 | (bytes[L3] & 0x0f);
            }
            if let Ok(p) = parse6(&bytes, &POLICY) {
                prop_assert_eq!(Ok((p.class, p.key, usize::from(p.l4), p.tcp_flags)), reference(&bytes));
                if p.class == Class6::Flow {
                    prop_assert!(usize::from(p.l4) + 8 <= usize::from(p.end));
                }
            }
        }
    }
}
