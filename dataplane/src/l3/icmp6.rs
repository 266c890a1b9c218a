//! ICMPv6 the director originates: echo replies for its own addresses (rewritten in place) and
//! errors about packets it cannot forward (built into a fresh buffer). The v6 counterpart of
//! [`super::icmp`].
//!
//! Echo replies go back to the Ethernet sender of the request (MACs swapped), as for IPv4. The
//! request's extension headers are walked under the worker's [`ExtPolicy`] and not echoed: the
//! ICMPv6 message is moved up behind the fixed header (what Linux's reply looks like too). Only
//! a request to a unicast address is answered here; a ping to a multicast group would need a
//! source address chosen by the caller.
//!
//! Errors follow RFC 4443 2.4: they quote as much of the offending packet as fits in the
//! minimum MTU of 1280 bytes (2.4(c)), and are never sent (2.4(e)) about an ICMPv6 error (or an
//! ICMPv6 message whose type cannot be read), about a packet whose source does not identify one
//! node (unspecified or multicast), or about a packet sent to a multicast group or as link-layer
//! multicast or broadcast, except a Packet Too Big, which is allowed for those so that path MTU
//! discovery works for multicast. (The parameter-problem exception for unrecognised options
//! does not arise: rvs sends no parameter problem about options.) As Linux's `is_ineligible`
//! does, a packet whose extension-header chain cannot be walked is still eligible. Rate
//! limiting is the caller's, with the same token buckets as ICMPv4 ([`super::ratelimit`]).

use super::icmp::BuildError;
use crate::packet::PacketBuf;
use crate::wire::ethernet::{self, EtherType, Frame};
use crate::wire::icmpv6::{self, Icmpv6Type, time_exceeded};
use crate::wire::ipv6::{self, ExtDrop, ExtPolicy, Ipv6Repr, next_header};
use crate::wire::{Error, MacAddr, checksum};
use std::net::Ipv6Addr;

/// Hop limit of packets the director originates (Linux's default `hop_limit`).
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// Traffic class of ICMPv6 errors (0, as Linux sends them).
pub const ERROR_TRAFFIC_CLASS: u8 = 0;
/// The largest quote an error carries: the minimum MTU less the IPv6 and ICMPv6 headers.
pub const MAX_QUOTE: usize = ipv6::MIN_MTU - ipv6::HEADER_LEN - icmpv6::HEADER_LEN;

/// Why an echo request was not answered. [`EchoDrop::label`] is the drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoDrop {
    /// Shorter than an Ethernet header.
    EthTruncated,
    /// The IPv6 header does not parse (not IPv6, wrong version, bad length).
    Ipv6(Error),
    /// The extension headers fail the policy.
    Ext(ExtDrop),
    /// Not an ICMPv6 echo request with code 0 and at least 8 bytes, or sent to a multicast group.
    NotEchoRequest,
    /// The ICMPv6 checksum does not verify.
    BadChecksum,
}

impl EchoDrop {
    /// The metric label of this reason (snake_case, stable; the existing IPv4 counters where the
    /// meaning is the same).
    pub const fn label(self) -> &'static str {
        match self {
            EchoDrop::EthTruncated => "eth_truncated",
            EchoDrop::Ipv6(Error::BadLength) => "ipv6_bad_length",
            EchoDrop::Ipv6(_) => "ipv6_malformed",
            EchoDrop::Ext(e) => e.label(),
            EchoDrop::NotEchoRequest => "icmp_malformed",
            EchoDrop::BadChecksum => "l4_bad_checksum",
        }
    }
}

/// Rewrite the ICMPv6 echo request in `buf` (Ethernet + IPv6 [+ extension headers] + ICMPv6,
/// addressed to us) into the echo reply in place (module doc). Errors say why to drop it (the
/// buffer may then be partly rewritten: it is only fit for dropping).
pub fn echo_reply_in_place<B: PacketBuf>(buf: &mut B, policy: &ExtPolicy) -> Result<(), EchoDrop> {
    let (l4, total, src, dst) = {
        let f = Frame::new_checked(buf.data()).map_err(|_| EchoDrop::EthTruncated)?;
        if f.ethertype() != EtherType::IPV6 {
            return Err(EchoDrop::Ipv6(Error::Unsupported));
        }
        let ip = ipv6::Packet::new_checked(f.payload()).map_err(EchoDrop::Ipv6)?;
        let ext = policy.classify(&ip).map_err(EchoDrop::Ext)?;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if ext.protocol != next_header::ICMPV6 || dst.is_multicast() {
            return Err(EchoDrop::NotEchoRequest);
        }
        let m = icmpv6::Packet::new_checked(&ip.as_bytes()[ext.l4_offset..ip.total_len()])
            .map_err(|_| EchoDrop::NotEchoRequest)?;
        if m.msg_type() != Icmpv6Type::ECHO_REQUEST || m.msg_code() != 0 {
            return Err(EchoDrop::NotEchoRequest);
        }
        if !m.verify_checksum(src, dst) {
            return Err(EchoDrop::BadChecksum);
        }
        (ext.l4_offset, ip.total_len(), src, dst)
    };
    let eth = ethernet::HEADER_LEN;
    let mlen = total - l4;
    {
        let data = buf.data_mut();
        // Drop the extension headers: the message moves up behind the fixed header.
        data.copy_within(eth + l4..eth + total, eth + ipv6::HEADER_LEN);
        let mut f = Frame::new_unchecked(&mut data[..]);
        f.swap_addrs();
        let mut ip = ipv6::Packet::new_unchecked(f.payload_mut());
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_hop_limit(DEFAULT_HOP_LIMIT);
        ip.set_next_header(next_header::ICMPV6);
        ip.set_payload_len(mlen as u16);
        let mut m = icmpv6::Packet::new_unchecked(ip.payload_mut());
        // The pseudo header sums the same (addresses swapped, same length): only the type word
        // changes.
        let c = checksum::update_u16(
            m.checksum(),
            u16::from(Icmpv6Type::ECHO_REQUEST.0) << 8,
            u16::from(Icmpv6Type::ECHO_REPLY.0) << 8,
        );
        m.set_msg_type(Icmpv6Type::ECHO_REPLY);
        m.set_checksum(c);
    }
    buf.set_len(eth + ipv6::HEADER_LEN + mlen)
        .map_err(|_| EchoDrop::NotEchoRequest)
}

/// The ICMPv6 error to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmp6Error {
    /// Destination unreachable with this code (see `wire::icmpv6::unreachable`).
    DestUnreachable(u8),
    /// Packet too big, with the MTU of the next link.
    PacketTooBig { mtu: u32 },
    /// Time exceeded in transit (hop limit reached zero).
    TimeExceeded,
    /// Parameter problem with this code, pointing at this offset of the offending packet.
    ParamProblem { code: u8, pointer: u32 },
}

/// Build in `out` (previous content discarded) an Ethernet frame carrying the ICMPv6 error
/// `kind` from `src` about `offending` (an IPv6 packet, starting at its header), addressed to
/// the offending packet's source. `link_multicast` says the offending frame was sent to an
/// Ethernet multicast or broadcast address. The Ethernet addresses are left zero for the
/// transmit path, which routes the error and resolves its next hop like any packet. Returns the
/// destination (the offending source) for that route lookup. Refusals: module doc.
pub fn build_error<B: PacketBuf>(
    out: &mut B,
    offending: &[u8],
    link_multicast: bool,
    kind: Icmp6Error,
    src: Ipv6Addr,
) -> Result<Ipv6Addr, BuildError> {
    let off = ipv6::Packet::new_checked_quoted(offending).map_err(BuildError::Offending)?;
    let (osrc, odst) = (off.src_addr(), off.dst_addr());
    if osrc.is_unspecified() || osrc.is_multicast() {
        return Err(BuildError::Suppressed);
    }
    let too_big = matches!(kind, Icmp6Error::PacketTooBig { .. });
    if (odst.is_multicast() || link_multicast) && !too_big {
        return Err(BuildError::Suppressed);
    }
    if let Ok(ext) = off.ext_headers(ExtPolicy::default().max_headers)
        && ext.protocol == next_header::ICMPV6
    {
        // An error, or a message whose type is not in the quote: never answered. (A non-first
        // fragment's data is not a header: it is eligible, as in Linux.)
        let first_fragment = ext.fragment.is_none_or(|f| f.offset == 0);
        match off.as_bytes().get(ext.l4_offset) {
            Some(&t) if Icmpv6Type(t).is_error() && first_fragment => {
                return Err(BuildError::Suppressed);
            }
            None if first_fragment => return Err(BuildError::Suppressed),
            _ => {}
        }
    }
    let whole = off.total_len().min(off.as_bytes().len());
    let quote = &off.as_bytes()[..whole.min(MAX_QUOTE)];
    let icmp_len = icmpv6::HEADER_LEN + quote.len();
    out.set_len(ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmp_len)?;
    let data = out.data_mut();
    let mut f = Frame::new_unchecked(&mut data[..]);
    f.set_dst_addr(MacAddr::ZERO);
    f.set_src_addr(MacAddr::ZERO);
    f.set_ethertype(EtherType::IPV6);
    let ip = f.payload_mut();
    Ipv6Repr {
        src,
        dst: osrc,
        next_header: next_header::ICMPV6,
        payload_len: icmp_len as u16,
        hop_limit: DEFAULT_HOP_LIMIT,
        traffic_class: ERROR_TRAFFIC_CLASS,
        flow_label: 0,
    }
    .emit(ip)
    .map_err(|_| BuildError::NoRoom)?;
    let (ty, code, word) = match kind {
        Icmp6Error::DestUnreachable(c) => (Icmpv6Type::DEST_UNREACHABLE, c, 0),
        Icmp6Error::PacketTooBig { mtu } => (Icmpv6Type::PACKET_TOO_BIG, 0, mtu),
        Icmp6Error::TimeExceeded => (Icmpv6Type::TIME_EXCEEDED, time_exceeded::HOP_LIMIT, 0),
        Icmp6Error::ParamProblem { code, pointer } => (Icmpv6Type::PARAM_PROBLEM, code, pointer),
    };
    let mut m = icmpv6::Packet::new_unchecked(&mut ip[ipv6::HEADER_LEN..]);
    m.set_msg_type(ty);
    m.set_msg_code(code);
    m.set_word(word);
    m.data_mut()[..quote.len()].copy_from_slice(quote);
    m.fill_checksum(src, osrc);
    Ok(osrc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::wire::icmpv6::{param_problem, unreachable};
    use crate::wire::{IpProtocol, fixtures_v6};
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// The ICMPv6 message of a frame built by these functions, with the IPv6 header.
    fn parts(frame: &[u8]) -> (ipv6::Packet<&[u8]>, icmpv6::Packet<&[u8]>) {
        let ip = ipv6::Packet::new_checked(&frame[ethernet::HEADER_LEN..]).unwrap();
        let end = ethernet::HEADER_LEN + ip.total_len();
        let m = icmpv6::Packet::new_checked(&frame[ethernet::HEADER_LEN + ipv6::HEADER_LEN..end])
            .unwrap();
        (ip, m)
    }

    #[test]
    fn echo_reply_round_trip() {
        let mut b = HeapBuf::from_bytes(&fixtures_v6::ICMPV6_ECHO);
        echo_reply_in_place(&mut b, &ExtPolicy::default()).unwrap();
        let f = Frame::new_checked(b.data()).unwrap();
        assert_eq!(f.dst_addr(), MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_eq!(f.src_addr(), MacAddr([0x02, 0, 0, 0, 0, 0x01]));
        let (ip, m) = parts(b.data());
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            (a("2001:2::1"), a("2001:2::2"))
        );
        assert_eq!(ip.hop_limit(), DEFAULT_HOP_LIMIT);
        assert_eq!(m.msg_type(), Icmpv6Type::ECHO_REPLY);
        assert_eq!((m.echo_ident(), m.echo_seq_no()), (0x1234, 1));
        assert!(m.verify_checksum(ip.src_addr(), ip.dst_addr()));
        // Incremental equals full.
        let mut full = ip.payload().to_vec();
        let mut p = icmpv6::Packet::new_checked(&mut full[..]).unwrap();
        p.fill_checksum(ip.src_addr(), ip.dst_addr());
        assert_eq!(m.checksum(), p.checksum());
        assert_eq!(&ip.payload()[8..], &fixtures_v6::ICMPV6_ECHO[62..]);
        assert_eq!(b.len(), fixtures_v6::ICMPV6_ECHO.len());
    }

    /// The echo fixture with a hop-by-hop and a destination options header inserted.
    fn echo_with_ext_headers() -> Vec<u8> {
        let e = &fixtures_v6::ICMPV6_ECHO;
        let mut v = e[..54].to_vec();
        v[20] = 0; // next header: hop-by-hop
        let plen = u16::from_be_bytes([v[18], v[19]]) + 16;
        v[18..20].copy_from_slice(&plen.to_be_bytes());
        v.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        v.extend_from_slice(&[58, 0, 1, 4, 0, 0, 0, 0]);
        v.extend_from_slice(&e[54..]);
        v.extend_from_slice(&[0; 6]); // Ethernet padding
        v
    }

    #[test]
    fn echo_reply_strips_extension_headers() {
        let mut b = HeapBuf::from_bytes(&echo_with_ext_headers());
        echo_reply_in_place(&mut b, &ExtPolicy::default()).unwrap();
        assert_eq!(b.len(), fixtures_v6::ICMPV6_ECHO.len());
        let (ip, m) = parts(b.data());
        assert_eq!(ip.next_header(), next_header::ICMPV6);
        assert_eq!(usize::from(ip.payload_len()), 64);
        assert_eq!(m.msg_type(), Icmpv6Type::ECHO_REPLY);
        assert!(m.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert_eq!(&ip.payload()[8..], &fixtures_v6::ICMPV6_ECHO[62..]);
        // One header allowed: too many.
        let mut b = HeapBuf::from_bytes(&echo_with_ext_headers());
        assert_eq!(
            echo_reply_in_place(&mut b, &ExtPolicy { max_headers: 1 }),
            Err(EchoDrop::Ext(ExtDrop::TooMany))
        );
    }

    #[test]
    fn echo_reply_refusals() {
        let p = ExtPolicy::default();
        let run = |f: &[u8]| echo_reply_in_place(&mut HeapBuf::from_bytes(f), &p);
        let mut bad = fixtures_v6::ICMPV6_ECHO;
        bad[56] ^= 1; // checksum
        assert_eq!(run(&bad), Err(EchoDrop::BadChecksum));
        let mut reply = fixtures_v6::ICMPV6_ECHO;
        reply[54] = 129;
        assert_eq!(run(&reply), Err(EchoDrop::NotEchoRequest));
        let mut mcast = fixtures_v6::ICMPV6_ECHO;
        mcast[38..54].copy_from_slice(&a("ff02::1").octets());
        assert_eq!(run(&mcast), Err(EchoDrop::NotEchoRequest));
        assert_eq!(
            run(&fixtures_v6::ICMPV6_ECHO[..100]),
            Err(EchoDrop::Ipv6(Error::BadLength))
        );
        assert_eq!(
            run(&fixtures_v6::ICMPV6_ECHO[..10]),
            Err(EchoDrop::EthTruncated)
        );
        assert_eq!(run(&fixtures_v6::NS), Err(EchoDrop::NotEchoRequest));
        let mut frag = echo_with_ext_headers();
        frag[54] = 44; // hop-by-hop's next header: a fragment header (M set, offset 0)
        frag[62..70].copy_from_slice(&[58, 0, 0, 1, 0, 0, 0, 9]);
        assert_eq!(run(&frag), Err(EchoDrop::Ext(ExtDrop::Fragment)));
        assert_eq!(EchoDrop::Ext(ExtDrop::Fragment).label(), "ipv6_fragment");
        assert_eq!(EchoDrop::Ipv6(Error::BadLength).label(), "ipv6_bad_length");
    }

    /// An IPv6 + UDP packet of `len` bytes in all, 2001:2::2 -> 2001:2::1.
    fn udp_packet(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        Ipv6Repr {
            src: a("2001:2::2"),
            dst: a("2001:2::1"),
            next_header: IpProtocol::UDP,
            payload_len: (len - 40) as u16,
            hop_limit: 1,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut v)
        .unwrap();
        for (i, b) in v[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        v
    }

    #[test]
    fn packet_too_big_quotes_up_to_the_minimum_mtu() {
        let off = udp_packet(1500);
        let mut out = HeapBuf::new();
        let src = a("2001:2::1");
        let dst = build_error(
            &mut out,
            &off,
            false,
            Icmp6Error::PacketTooBig { mtu: 1400 },
            src,
        )
        .unwrap();
        assert_eq!(dst, a("2001:2::2"));
        assert_eq!(out.len(), ethernet::HEADER_LEN + ipv6::MIN_MTU);
        let (ip, m) = parts(out.data());
        assert_eq!(ip.total_len(), ipv6::MIN_MTU);
        assert_eq!((ip.src_addr(), ip.dst_addr()), (src, dst));
        assert_eq!(ip.hop_limit(), DEFAULT_HOP_LIMIT);
        assert_eq!(m.msg_type(), Icmpv6Type::PACKET_TOO_BIG);
        assert_eq!((m.msg_code(), m.mtu()), (0, 1400));
        assert!(m.verify_checksum(src, dst));
        assert_eq!(m.data(), &off[..MAX_QUOTE]);
        let q = m.quoted_ipv6().unwrap();
        assert_eq!(q.dst_addr(), a("2001:2::1"));
        // A short packet is quoted whole (without Ethernet padding past its length).
        let mut short = udp_packet(60);
        short.extend_from_slice(&[0; 4]);
        build_error(&mut out, &short, false, Icmp6Error::TimeExceeded, src).unwrap();
        let (ip, m) = parts(out.data());
        assert_eq!(usize::from(ip.payload_len()), 8 + 60);
        assert_eq!(
            (m.msg_type(), m.msg_code()),
            (Icmpv6Type::TIME_EXCEEDED, time_exceeded::HOP_LIMIT)
        );
        assert_eq!(m.data(), &short[..60]);
        assert!(m.verify_checksum(src, dst));
        build_error(
            &mut out,
            &short,
            false,
            Icmp6Error::DestUnreachable(unreachable::PORT),
            src,
        )
        .unwrap();
        let (_, m) = parts(out.data());
        assert_eq!(
            (m.msg_type(), m.msg_code()),
            (Icmpv6Type::DEST_UNREACHABLE, 4)
        );
        build_error(
            &mut out,
            &short,
            false,
            Icmp6Error::ParamProblem {
                code: param_problem::HEADER_FIELD,
                pointer: 7,
            },
            src,
        )
        .unwrap();
        let (_, m) = parts(out.data());
        assert_eq!((m.msg_type(), m.pointer()), (Icmpv6Type::PARAM_PROBLEM, 7));
        assert!(m.verify_checksum(src, dst));
    }

    #[test]
    fn rfc4443_suppressions() {
        let src = a("2001:2::1");
        let mut out = HeapBuf::new();
        let te = Icmp6Error::TimeExceeded;
        let ptb = Icmp6Error::PacketTooBig { mtu: 1280 };
        // About an ICMPv6 error: never.
        let mut err = HeapBuf::new();
        build_error(&mut err, &udp_packet(100), false, te, a("2001:2::9")).unwrap();
        let quoted_err = &err.data()[ethernet::HEADER_LEN..];
        assert_eq!(
            build_error(&mut out, quoted_err, false, ptb, src),
            Err(BuildError::Suppressed)
        );
        // About an echo request: allowed.
        assert!(build_error(&mut out, &fixtures_v6::ICMPV6_ECHO[14..], false, te, src).is_ok());
        // An ICMPv6 message whose type is not there: suppressed.
        let mut cut = udp_packet(40);
        cut[6] = 58;
        assert_eq!(
            build_error(&mut out, &cut, false, te, src),
            Err(BuildError::Suppressed)
        );
        // Multicast destination or link-layer multicast: only packet too big.
        let mut m = udp_packet(100);
        m[24..40].copy_from_slice(&a("ff0e::1").octets());
        assert_eq!(
            build_error(&mut out, &m, false, te, src),
            Err(BuildError::Suppressed)
        );
        assert!(build_error(&mut out, &m, false, ptb, src).is_ok());
        let u = udp_packet(100);
        assert_eq!(
            build_error(&mut out, &u, true, te, src),
            Err(BuildError::Suppressed)
        );
        assert!(build_error(&mut out, &u, true, ptb, src).is_ok());
        // A source that is not one node.
        for bad in ["::", "ff02::1"] {
            let mut s = udp_packet(100);
            s[8..24].copy_from_slice(&a(bad).octets());
            assert_eq!(
                build_error(&mut out, &s, false, ptb, src),
                Err(BuildError::Suppressed)
            );
        }
        // Unreadable offending header; no room.
        assert_eq!(
            build_error(&mut out, &u[..39], false, te, src),
            Err(BuildError::Offending(Error::Truncated))
        );
        let mut tiny = HeapBuf::with_capacity(0, 60);
        assert_eq!(
            build_error(&mut tiny, &u, false, te, src),
            Err(BuildError::NoRoom)
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200), mc in any::<bool>(), fix in any::<bool>()) {
            let mut data = data;
            if fix && data.len() >= 40 {
                data[0] = 0x60;
                let plen = (data.len() - 40) as u16;
                data[4..6].copy_from_slice(&plen.to_be_bytes());
            }
            let mut out = HeapBuf::new();
            if let Ok(d) = build_error(&mut out, &data, mc, Icmp6Error::TimeExceeded, Ipv6Addr::LOCALHOST) {
                let (ip, m) = parts(out.data());
                prop_assert!(ip.total_len() <= ipv6::MIN_MTU);
                prop_assert!(m.verify_checksum(Ipv6Addr::LOCALHOST, d));
            }
            let mut frame = fixtures_v6::ICMPV6_ECHO[..14].to_vec();
            frame.extend_from_slice(&data);
            let _ = echo_reply_in_place(&mut HeapBuf::from_bytes(&frame), &ExtPolicy::default());
        }
    }
}
