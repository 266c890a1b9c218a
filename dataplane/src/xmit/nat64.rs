//! NAT64 through FULLNAT (DPVS's `fnat64`): an IPv6 client reaches an IPv6 VIP served by an
//! IPv4 real server. The director translates the IP header between the families (RFC 7915, the
//! stateless IP/ICMP translation algorithm; the addresses come from the connection, not from an
//! address-mapping prefix) and, as FULLNAT, rewrites both ends:
//!
//! | direction | source | destination | frame |
//! |---|---|---|---|
//! | request (v6 client -> VIP6) | CIP6:cport -> LIP4:lport | VIP6:vport -> RIP4:rport | 20 bytes shorter (plus any extension headers) |
//! | reply (v4 RS -> LIP4) | RIP4:rport -> VIP6:vport | LIP4:lport -> CIP6:cport | 20 bytes longer (less any IPv4 options) |
//!
//! The connection lives in the worker's IPv6 table: its in-key is the v6 tuple, its out-key
//! holds the IPv4 server and local addresses as IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`,
//! [`mapped_key`]), which is how [`super::apply6`] tells NAT64 from FULLNAT6 and how the
//! worker finds the connection of an IPv4 reply ([`mapped_key`] of its tuple).
//!
//! IPv6 -> IPv4 ([`to_v4`], RFC 7915 section 5.1): version 4, no options; TOS = the traffic
//! class; total length = the upper-layer length + 20; identification from the worker's counter
//! for every packet (5.1 allows zero, but a packet without DF may be fragmented further on and
//! needs a real one; DPVS takes it from its counter too); MF 0 and DF set only when the IPv4
//! packet is longer than 1260 bytes (5.1: a smaller one may meet an IPv4 link whose MTU forces
//! fragmenting it, which the IPv6 sender cannot have expected); TTL = the hop limit, which the
//! worker decrements afterwards as for any routed IPv4 packet ([`super::Fwd::ROUTED`]: one
//! place decrements, and a hop limit of 1 was refused before the method ran); protocol = the
//! upper layer's next header. Extension headers are skipped, not translated (5.1: "If any IPv6
//! extension headers are present, they are skipped"): a hop-by-hop or destination options
//! header, a routing header with no segments left and an atomic fragment header are what the
//! worker's extension-header policy lets through, and none of them means anything to the IPv4
//! server. The TCP/UDP checksum is updated incrementally: the pseudo headers of both families
//! sum the same length and protocol, so only the addresses (128 bits out, 32 in) and the ports
//! change. A UDP checksum of 0 from the IPv6 client is invalid and dropped (`l4_bad_checksum`,
//! as NAT6 does).
//!
//! IPv4 -> IPv6 ([`to_v6`], RFC 7915 section 4.1): traffic class = TOS, flow label 0, payload
//! length = the upper-layer length, next header = protocol, hop limit = TTL (decremented by the
//! worker, [`super::Fwd6::V6`] with `dec_hop`), IPv4 options dropped. A UDP checksum of 0 from
//! the server ("none" in IPv4) is computed in full, since IPv6 requires one (4.5); otherwise the
//! update is incremental as above. Fragments are not translated (the worker drops IPv4
//! fragments before any method; here they are refused as `ipv4_fragment` again).
//!
//! TCP: the client's address goes to the server in the 20-byte IPv6 TOA option on the SYN and
//! the first data segment (DPVS sends the client's family's form, see [`super::toa`]). MSS: the
//! server announces `MTU4 - 40` in its SYN-ACK. A client segment of `m` payload bytes is
//! `60 + m` bytes as IPv6, `40 + m` once translated, `60 + m` with the TOA: to fit the server's
//! link, `m <= MTU4 - 60`; and the same `m` must fit the client side, where the IPv6 header is
//! 20 bytes larger than the IPv4 one the server counted (`60 + m <= MTU6`, so with equal MTUs
//! again `m <= MTU - 60`). The SYN-ACK's MSS is therefore reduced by [`MSS_DELTA`] = 20, with or
//! without the TOA (the same 20 DPVS takes off, `tcp_out_adjust_mss` with the IPv6 in-side
//! family). The other way needs nothing: the client announces `MTU6 - 60`, the server sends
//! `40 + m <= MTU6 - 20` bytes of IPv4, `60 + m <= MTU6` once translated.
//!
//! Still to do (not in this module yet): ICMPv4 errors from the server about a NAT64 connection
//! (fragmentation needed, unreachable, time exceeded) translated to ICMPv6 toward the client
//! (RFC 7915 4.2 and its quoted-packet rules); they are dropped by the worker for now.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::conn::{ConnKey, ConnKey6};
use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::parse::{L3, Parsed};
use crate::parse6::Parsed6;
use crate::wire::checksum::{l4_checksum_v6, udp_fixup, update_addr_v6, update_u16};
use crate::wire::{EtherType, IpProtocol, ipv4, ipv6};

/// How much smaller the frame gets v6 -> v4 (without extension headers), and larger v4 -> v6
/// (without IPv4 options).
pub const HEADER_DELTA: usize = ipv6::HEADER_LEN - ipv4::HEADER_LEN;
/// What a NAT64 connection takes off the MSS of the server's SYN-ACK (module doc).
pub const MSS_DELTA: u16 = 20;
/// RFC 7915 5.1: DF is set on translated packets longer than this.
pub const DF_ABOVE: usize = 1260;

/// The IPv6 key of an IPv4 tuple, with both addresses IPv4-mapped: how a NAT64 connection's
/// out-key is written and how an IPv4 reply is looked up in the IPv6 table.
pub fn mapped_key(proto: u8, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> ConnKey6 {
    ConnKey6::new(
        proto,
        src.to_ipv6_mapped(),
        sport,
        dst.to_ipv6_mapped(),
        dport,
    )
}

/// The IPv4 tuple of a [`mapped_key`], or `None` when either address is not IPv4-mapped (not
/// a NAT64 out-key).
pub fn unmapped(k: &ConnKey6) -> Option<ConnKey> {
    Some(ConnKey::new(
        k.proto,
        k.src.to_ipv4_mapped()?,
        k.sport,
        k.dst.to_ipv4_mapped()?,
        k.dport,
    ))
}

/// An IPv4 address as an IPv6 address with the same pseudo-header sum (`::a.b.c.d`): what
/// lets [`update_addr_v6`] move a checksum between the families' pseudo headers.
fn same_sum(a: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(a.to_bits()))
}

/// Offset of the TCP/UDP checksum in the upper-layer header, and whether it is TCP.
fn sum_field(proto: u8) -> Result<(usize, bool), DropReason> {
    match IpProtocol(proto) {
        IpProtocol::TCP => Ok((16, true)),
        IpProtocol::UDP => Ok((6, false)),
        _ => Err(DropReason::MethodUnsupported),
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Translate the IPv6 TCP/UDP packet `p` describes into IPv4 from `src` to `dst` (addresses
/// and ports), in place: the IPv4 header replaces the IPv6 one and its extension headers, the
/// Ethernet header moves up with it (module doc for the fields).
pub fn to_v4<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed6,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ident: u16,
) -> Result<(), DropReason> {
    let (l4, end) = (usize::from(p.l4), usize::from(p.end));
    let (at, tcp) = sum_field(p.key.proto)?;
    if l4 < L3 + ipv6::HEADER_LEN || end > buf.len() || l4 + at + 2 > end {
        return Err(DropReason::Ipv6Malformed);
    }
    let seg_len = end - l4;
    let total = u16::try_from(ipv4::HEADER_LEN + seg_len).map_err(|_| DropReason::TooBig)?;
    let data = buf.data_mut();
    let tos = (data[L3] << 4) | (data[L3 + 1] >> 4);
    let ttl = data[L3 + 7];
    let mut c = be16(data, l4 + at);
    if !tcp && c == 0 {
        return Err(DropReason::L4BadChecksum);
    }
    c = update_addr_v6(c, p.key.src, same_sum(src.0));
    c = update_addr_v6(c, p.key.dst, same_sum(dst.0));
    c = update_u16(c, p.key.sport, src.1);
    c = update_u16(c, p.key.dport, dst.1);
    if !tcp {
        c = udp_fixup(c);
    }
    data[l4 + at..l4 + at + 2].copy_from_slice(&c.to_be_bytes());
    data[l4..l4 + 2].copy_from_slice(&src.1.to_be_bytes());
    data[l4 + 2..l4 + 4].copy_from_slice(&dst.1.to_be_bytes());
    let ip_at = l4 - ipv4::HEADER_LEN;
    ipv4::Ipv4Repr {
        src: src.0,
        dst: dst.0,
        protocol: IpProtocol(p.key.proto),
        payload_len: seg_len as u16,
        ttl,
        tos,
        ident,
        dont_frag: usize::from(total) > DF_ABOVE,
    }
    .emit(&mut data[ip_at..l4])
    .map_err(|_| DropReason::NoBuffer)?;
    let eth_at = ip_at - L3;
    data.copy_within(0..L3 - 2, eth_at);
    data[ip_at - 2..ip_at].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
    buf.set_len(end).map_err(|_| DropReason::Ipv6BadLength)?;
    buf.adj(eth_at).map_err(|_| DropReason::NoBuffer)
}

/// Translate the IPv4 TCP/UDP packet `p` describes into IPv6 from `src` to `dst` (addresses
/// and ports), in place: the IPv6 header replaces the IPv4 one and its options, the frame grows
/// at the front (module doc for the fields).
pub fn to_v6<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed,
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
) -> Result<(), DropReason> {
    let l4 = usize::from(p.l4);
    let (at, tcp) = sum_field(p.key.proto)?;
    let h = buf
        .data()
        .get(L3..L3 + ipv4::HEADER_LEN)
        .ok_or(DropReason::Ipv4Malformed)?;
    let (ihl, total) = (usize::from(h[0] & 0x0f) * 4, usize::from(be16(h, 2)));
    let (tos, ttl) = (h[1], h[8]);
    if be16(h, 6) & 0x3fff != 0 {
        return Err(DropReason::Ipv4Fragment);
    }
    let end = L3 + total;
    if ihl < ipv4::HEADER_LEN || l4 != L3 + ihl || end > buf.len() || l4 + at + 2 > end {
        return Err(DropReason::Ipv4Malformed);
    }
    let seg_len = end - l4;
    let data = buf.data_mut();
    let old = be16(data, l4 + at);
    let compute = !tcp && old == 0;
    if !compute {
        let mut c = update_addr_v6(old, same_sum(p.key.src), src.0);
        c = update_addr_v6(c, same_sum(p.key.dst), dst.0);
        c = update_u16(c, p.key.sport, src.1);
        c = update_u16(c, p.key.dport, dst.1);
        if !tcp {
            c = udp_fixup(c);
        }
        data[l4 + at..l4 + at + 2].copy_from_slice(&c.to_be_bytes());
    }
    data[l4..l4 + 2].copy_from_slice(&src.1.to_be_bytes());
    data[l4 + 2..l4 + 4].copy_from_slice(&dst.1.to_be_bytes());
    buf.set_len(end).map_err(|_| DropReason::Ipv4BadLength)?;
    // Where the frame must start for the IPv6 header to end at the upper layer.
    let new_l4 = L3 + ipv6::HEADER_LEN;
    if new_l4 > l4 {
        let grow = new_l4 - l4;
        buf.prepend(grow).map_err(|_| DropReason::NoBuffer)?;
        buf.data_mut().copy_within(grow..grow + L3, 0);
    } else if l4 > new_l4 {
        let shrink = l4 - new_l4;
        buf.data_mut().copy_within(0..L3, shrink);
        buf.adj(shrink).map_err(|_| DropReason::NoBuffer)?;
    }
    let data = buf.data_mut();
    data[L3 - 2..L3].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
    ipv6::Ipv6Repr {
        src: src.0,
        dst: dst.0,
        next_header: IpProtocol(p.key.proto),
        payload_len: seg_len as u16,
        hop_limit: ttl,
        traffic_class: tos,
        flow_label: 0,
    }
    .emit(&mut data[L3..new_l4])
    .map_err(|_| DropReason::NoBuffer)?;
    if compute {
        let seg = &mut data[new_l4..new_l4 + seg_len];
        let c = udp_fixup(l4_checksum_v6(src.0, dst.0, p.key.proto, seg));
        seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}

/// The TCP segment of a frame [`to_v6`] wrote (no extension headers), for the MSS reduction.
pub fn segment6_mut(frame: &mut [u8]) -> Option<&mut [u8]> {
    let plen = usize::from(be16(frame.get(L3..L3 + ipv6::HEADER_LEN)?, 4));
    let l4 = L3 + ipv6::HEADER_LEN;
    frame.get_mut(l4..l4 + plen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::parse::{RxChecksum, parse};
    use crate::parse6::parse6;
    use crate::testutil::{
        FrameSpec, PORT0_MAC, tcp_frame, tcp6_frame, udp_frame, udp6_frame, verify_frame,
        verify_frame6,
    };
    use crate::wire::ipv6::ExtPolicy;
    use crate::wire::tcp::TcpFlags;
    use proptest::prelude::*;

    fn a6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    fn a4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_map_and_unmap() {
        let k = mapped_key(6, a4("198.18.1.11"), 8080, a4("198.18.1.1"), 5000);
        assert_eq!(k.src, a6("::ffff:198.18.1.11"));
        assert_eq!(
            unmapped(&k),
            Some(ConnKey::new(
                6,
                a4("198.18.1.11"),
                8080,
                a4("198.18.1.1"),
                5000
            ))
        );
        let v6 = ConnKey6::new(6, a6("2001:2::2"), 1, a6("::ffff:1.2.3.4"), 2);
        assert_eq!(unmapped(&v6), None);
    }

    #[test]
    fn v6_to_v4_builds_the_rfc7915_header() {
        let (cip, vip) = (a6("2001:2::2"), a6("2001:2::100"));
        let payload = vec![0x5a; 1300];
        for (udp, len) in [(false, 10), (true, 10), (false, 1300)] {
            let mut f = if udp {
                udp6_frame(cip, 40000, vip, 80, &payload[..len])
            } else {
                tcp6_frame(cip, 40000, vip, 80, 0x18, &[], &payload[..len])
            };
            f[14] = 0x6b; // traffic class 0xb8
            f[15] = 0x80;
            f[21] = 57;
            let mut b = HeapBuf::from_bytes(&f);
            let p = parse6(b.data(), &ExtPolicy::default()).unwrap();
            let (lip, rip) = (a4("198.18.1.1"), a4("198.18.1.11"));
            to_v4(&mut b, &p, (lip, 5000), (rip, 8080), 0x4242).unwrap();
            let o = b.data();
            assert_eq!(o.len(), f.len() - 20);
            assert_eq!(&o[..12], &f[..12]);
            let v = verify_frame(o).unwrap();
            assert_eq!(
                (v.src, v.sport, v.dst, v.dport, v.ttl, v.proto),
                (lip, 5000, rip, 8080, 57, if udp { 17 } else { 6 })
            );
            let ip = &o[14..34];
            assert_eq!((ip[0], ip[1]), (0x45, 0xb8));
            assert_eq!(usize::from(be16(ip, 2)), f.len() - 54 + 20);
            assert_eq!(be16(ip, 4), 0x4242);
            let df = if f.len() - 54 + 20 > 1260 { 0x4000 } else { 0 };
            assert_eq!(be16(ip, 6), df, "DF only above 1260 bytes, never MF");
            let hl = if udp { 8 } else { 20 };
            assert_eq!(&o[34 + hl..], &f[54 + hl..]);
        }
    }

    #[test]
    fn v6_extension_headers_are_skipped() {
        let (cip, vip) = (a6("2001:2::2"), a6("2001:2::100"));
        let plain = udp6_frame(cip, 1, vip, 53, b"dns?");
        // Insert a destination options header (8 bytes of PadN) before the UDP header.
        let mut f = plain[..54].to_vec();
        f[20] = 60;
        f[18..20].copy_from_slice(&(be16(&plain, 18) + 8).to_be_bytes());
        f.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&plain[54..]);
        let mut b = HeapBuf::from_bytes(&f);
        let p = parse6(b.data(), &ExtPolicy::default()).unwrap();
        assert_eq!(p.ext_headers, 1);
        to_v4(&mut b, &p, (a4("10.0.0.1"), 2), (a4("10.0.0.2"), 3), 1).unwrap();
        assert_eq!(b.len(), plain.len() - 20);
        let v = verify_frame(b.data()).unwrap();
        assert_eq!((v.proto, v.sport, v.dport), (17, 2, 3));
        assert_eq!(&b.data()[42..], b"dns?");
    }

    #[test]
    fn v6_udp_zero_checksum_is_dropped() {
        let mut f = udp6_frame(a6("2001:2::2"), 1, a6("2001:2::100"), 53, b"x");
        f[60] = 0;
        f[61] = 0;
        let mut b = HeapBuf::from_bytes(&f);
        let p = parse6(b.data(), &ExtPolicy::default()).unwrap();
        let r = to_v4(&mut b, &p, (a4("10.0.0.1"), 2), (a4("10.0.0.2"), 3), 1);
        assert_eq!(r, Err(DropReason::L4BadChecksum));
    }

    #[test]
    fn v4_to_v6_builds_the_rfc7915_header() {
        let (rip, lip) = ("198.18.1.11", "198.18.1.1");
        let (vip, cip) = (a6("2001:2::100"), a6("2001:2::2"));
        for (udp, zero) in [(false, false), (true, false), (true, true)] {
            let mut spec = FrameSpec::tcp(rip, 8080, lip, 5000);
            spec.ttl = 33;
            let mut f = if udp {
                udp_frame(&spec, b"answer")
            } else {
                tcp_frame(&spec, TcpFlags::ACK, b"answer")
            };
            if zero {
                f[40] = 0;
                f[41] = 0;
            }
            f[15] = 0x2e; // TOS
            f[24..26].copy_from_slice(&[0, 0]);
            let c = crate::testutil::ones_sum(&[&f[14..34]]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&[0; 6]); // Ethernet padding
            let mut b = HeapBuf::from_bytes(&f);
            let p = parse(&f, PORT0_MAC, RxChecksum::default());
            to_v6(&mut b, &p, (vip, 80), (cip, 40000)).unwrap();
            let o = b.data();
            assert_eq!(o.len(), f.len() - 6 + 20);
            assert_eq!(&o[..12], &f[..12]);
            let v = verify_frame6(o).unwrap();
            assert_eq!(
                (v.src, v.sport, v.dst, v.dport, v.hop_limit, v.traffic_class),
                (vip, 80, cip, 40000, 33, 0x2e)
            );
            assert_eq!((v.flow_label, v.proto), (0, if udp { 17 } else { 6 }));
            assert_eq!(&v.l4[v.l4.len() - 6..], b"answer");
        }
    }

    #[test]
    fn v4_options_are_dropped() {
        let spec = FrameSpec::tcp("198.18.1.11", 8080, "198.18.1.1", 5000);
        let f = tcp_frame(&spec, TcpFlags::ACK, b"data");
        // The same packet with 4 bytes of options (NOPs ending in EOL), IHL 6.
        let mut g = f[..34].to_vec();
        g[14] = 0x46;
        g[16..18].copy_from_slice(&(be16(&f, 16) + 4).to_be_bytes());
        g.extend_from_slice(&[1, 1, 1, 0]);
        g[24..26].copy_from_slice(&[0, 0]);
        let c = crate::testutil::ones_sum(&[&g[14..38]]);
        g[24..26].copy_from_slice(&c.to_be_bytes());
        g.extend_from_slice(&f[34..]);
        let p = parse(&g, PORT0_MAC, RxChecksum::default());
        assert!(p.options);
        let mut b = HeapBuf::from_bytes(&g);
        to_v6(&mut b, &p, (a6("2001:2::100"), 80), (a6("2001:2::2"), 1)).unwrap();
        assert_eq!(b.len(), f.len() + 20);
        let v = verify_frame6(b.data()).unwrap();
        assert_eq!(&v.l4[20..], b"data");
    }

    proptest! {
        /// v6 -> v4 -> v6 with the tuple mapped back: payload and ports as sent, every
        /// checksum verifying by full recompute on the way.
        #[test]
        fn round_trip(c in any::<u128>(), v in any::<u128>(), l in any::<u32>(), r in any::<u32>(),
                      cp in any::<u16>(), vp in any::<u16>(), lp in any::<u16>(), rp in any::<u16>(),
                      udp in any::<bool>(), hop in 2u8.., tc in any::<u8>(),
                      payload in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let (c, v) = (Ipv6Addr::from(c), Ipv6Addr::from(v));
            let (l, r) = (Ipv4Addr::from(l), Ipv4Addr::from(r));
            let mut f = if udp { udp6_frame(c, cp, v, vp, &payload) }
                        else { tcp6_frame(c, cp, v, vp, 0x18, &[], &payload) };
            f[14] = 0x60 | (tc >> 4);
            f[15] = tc << 4;
            f[21] = hop;
            let mut b = HeapBuf::from_bytes(&f);
            let p = parse6(b.data(), &ExtPolicy::default()).unwrap();
            to_v4(&mut b, &p, (l, lp), (r, rp), 7).unwrap();
            let v4 = verify_frame(b.data()).unwrap();
            prop_assert_eq!((v4.src, v4.sport, v4.dst, v4.dport, v4.ttl), (l, lp, r, rp, hop));
            let p4 = parse(b.data(), PORT0_MAC, RxChecksum::default());
            prop_assert_eq!(p4.class, crate::parse::Class::Flow);
            to_v6(&mut b, &p4, (c, cp), (v, vp)).unwrap();
            prop_assert_eq!(b.data(), &f[..]);
            prop_assert!(verify_frame6(b.data()).is_ok());
        }
    }
}
