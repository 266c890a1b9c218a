//! ICMPv6 errors about IPv6 connections' packets: the counterpart of [`super::icmp`] for NAT6
//! and FULLNAT6. An error (destination unreachable, packet too big, time exceeded, parameter
//! problem; RFC 4443 types 1 to 4) whose quoted packet belongs to a known connection is
//! rewritten as if the other side's own packet had caused it, and sent there.
//!
//! The worker finds the connection with [`quoted_tuple6`]: the quoted packet is one the
//! director sent, so its tuple reversed is the tuple the peer's packets carry (the in-key for
//! an error from the client side, the out-key for one from the real-server side).
//! [`translation6`] says what to rewrite for the connection's method and the error's direction,
//! [`translate6`] rewrites the outer addresses, the quoted header's addresses and ports, the
//! quoted TCP/UDP checksum when it is inside the quote (incrementally: it covers the quoted
//! addresses through the pseudo header; a quoted UDP checksum of 0 stays 0), and recomputes the
//! ICMPv6 checksum in full over the new pseudo header (the worker verified it first, so nothing
//! bad is made good). Lengths do not change, so neither does anything else.
//!
//! Quotes whose IPv6 header is followed by extension headers before TCP/UDP are not
//! translated ([`quoted_tuple6`] gives `None`): the director's own packets carry none (NAT6
//! keeps the client's, but a client sending extension headers through a load balancer is rare
//! enough not to walk a possibly truncated chain here). NAT64 connections' errors are not
//! translated yet (see [`super::nat64`]); [`translation6`] refuses them.

use std::net::Ipv6Addr;

use crate::conn::{Conn, ConnKey6, Dir};
use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::parse::L3;
use crate::parse6::Parsed6;
use crate::service::ForwardMethod;
use crate::wire::IpProtocol;
use crate::wire::checksum::{l4_checksum_v6, udp_fixup, update_addr_v6, update_u16};
use crate::wire::icmpv6::{self, Icmpv6Type};
use crate::wire::ipv6::{self, next_header};

/// The tuple of the packet an ICMPv6 error quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted6 {
    pub proto: u8,
    pub src: Ipv6Addr,
    pub sport: u16,
    pub dst: Ipv6Addr,
    pub dport: u16,
}

impl From<ConnKey6> for Quoted6 {
    fn from(k: ConnKey6) -> Self {
        Quoted6 {
            proto: k.proto,
            src: k.src,
            sport: k.sport,
            dst: k.dst,
            dport: k.dport,
        }
    }
}

/// The rewrite to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation6 {
    pub outer_src: Option<Ipv6Addr>,
    pub outer_dst: Option<Ipv6Addr>,
    /// The quoted packet's new tuple (protocol unchanged).
    pub quoted: Quoted6,
}

/// Whether the ICMPv6 type is one translated for connections (RFC 4443 errors 1 to 4).
pub fn is_translated_error6(t: Icmpv6Type) -> bool {
    matches!(
        t,
        Icmpv6Type::DEST_UNREACHABLE
            | Icmpv6Type::PACKET_TOO_BIG
            | Icmpv6Type::TIME_EXCEEDED
            | Icmpv6Type::PARAM_PROBLEM
    )
}

/// Offset of the quoted IPv6 header in the frame of the ICMPv6 message `p` describes.
fn quote_at(p: &Parsed6) -> usize {
    usize::from(p.l4) + icmpv6::HEADER_LEN
}

/// The quoted TCP/UDP tuple of the ICMPv6 error `p` describes (a [`crate::parse6::Class6::Icmp`]
/// frame), or `None` when it is not a translated error quoting a TCP/UDP header right after the
/// quoted IPv6 header (module doc).
pub fn quoted_tuple6(frame: &[u8], p: &Parsed6) -> Option<Quoted6> {
    if p.key.proto != next_header::ICMPV6.0 {
        return None;
    }
    let msg = frame.get(usize::from(p.l4)..usize::from(p.end))?;
    if !is_translated_error6(Icmpv6Type(*msg.first()?)) {
        return None;
    }
    let q = msg.get(icmpv6::HEADER_LEN..)?;
    let h = q.get(..ipv6::HEADER_LEN + 4)?;
    let proto = h[6];
    if h[0] >> 4 != 6 || (proto != IpProtocol::TCP.0 && proto != IpProtocol::UDP.0) {
        return None;
    }
    let addr = |at: usize| -> Option<Ipv6Addr> {
        Some(Ipv6Addr::from(<[u8; 16]>::try_from(&h[at..at + 16]).ok()?))
    };
    let port = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    Some(Quoted6 {
        proto,
        src: addr(8)?,
        sport: port(40),
        dst: addr(24)?,
        dport: port(42),
    })
}

/// What to rewrite in an ICMPv6 error about connection `conn`, found by its quote in direction
/// `dir` (`Original`: the error came from the client side, about a reply the director sent;
/// `Reply`: from the real-server side, about a request). NAT6 and FULLNAT6 only: DR/TUN errors
/// and NAT64 ones are `method_unsupported` here.
pub fn translation6(conn: &Conn<ConnKey6>, dir: Dir) -> Result<Translation6, DropReason> {
    let (i, o) = (*conn.in_key(), *conn.out_key());
    let fullnat = conn.method() == ForwardMethod::FullNat;
    if fullnat && o.src.to_ipv4_mapped().is_some() {
        return Err(DropReason::MethodUnsupported);
    }
    match (conn.method(), dir) {
        (ForwardMethod::Masq | ForwardMethod::FullNat, Dir::Original) => Ok(Translation6 {
            outer_src: fullnat.then_some(o.dst),
            outer_dst: Some(o.src),
            quoted: o.into(),
        }),
        (ForwardMethod::Masq | ForwardMethod::FullNat, Dir::Reply) => Ok(Translation6 {
            outer_src: Some(i.dst),
            outer_dst: fullnat.then_some(i.src),
            quoted: i.into(),
        }),
        _ => Err(DropReason::MethodUnsupported),
    }
}

/// Apply `t` to the ICMPv6 error `p` describes (checked by [`quoted_tuple6`] first).
pub fn translate6<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed6,
    t: &Translation6,
) -> Result<(), DropReason> {
    let (l4, end) = (usize::from(p.l4), usize::from(p.end));
    let q = quote_at(p);
    let data = buf.data_mut();
    if end > data.len() || q + ipv6::HEADER_LEN + 4 > end {
        return Err(DropReason::IcmpMalformed);
    }
    if let Some(a) = t.outer_src {
        data[L3 + 8..L3 + 24].copy_from_slice(&a.octets());
    }
    if let Some(a) = t.outer_dst {
        data[L3 + 24..L3 + 40].copy_from_slice(&a.octets());
    }
    let get = |d: &[u8], at: usize| {
        Ipv6Addr::from(<[u8; 16]>::try_from(&d[at..at + 16]).unwrap_or([0; 16]))
    };
    let (old_src, old_dst) = (get(data, q + 8), get(data, q + 24));
    let proto = data[q + 6];
    data[q + 8..q + 24].copy_from_slice(&t.quoted.src.octets());
    data[q + 24..q + 40].copy_from_slice(&t.quoted.dst.octets());
    let ql4 = q + ipv6::HEADER_LEN;
    let old_sport = u16::from_be_bytes([data[ql4], data[ql4 + 1]]);
    let old_dport = u16::from_be_bytes([data[ql4 + 2], data[ql4 + 3]]);
    data[ql4..ql4 + 2].copy_from_slice(&t.quoted.sport.to_be_bytes());
    data[ql4 + 2..ql4 + 4].copy_from_slice(&t.quoted.dport.to_be_bytes());
    let tcp = proto == IpProtocol::TCP.0;
    let at = ql4 + if tcp { 16 } else { 6 };
    if at + 2 <= end {
        let old = u16::from_be_bytes([data[at], data[at + 1]]);
        if tcp || old != 0 {
            let mut c = update_addr_v6(old, old_src, t.quoted.src);
            c = update_addr_v6(c, old_dst, t.quoted.dst);
            c = update_u16(c, old_sport, t.quoted.sport);
            c = update_u16(c, old_dport, t.quoted.dport);
            if !tcp {
                c = udp_fixup(c);
            }
            data[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
    let (src, dst) = (get(data, L3 + 8), get(data, L3 + 24));
    data[l4 + 2..l4 + 4].copy_from_slice(&[0, 0]);
    let c = l4_checksum_v6(src, dst, next_header::ICMPV6.0, &data[l4..end]);
    data[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::conn::{ConnState, ConnTable, NewConn, TcpState};
    use crate::packet::HeapBuf;
    use crate::parse6::parse6;
    use crate::service::{DestId, ServiceId};
    use crate::testutil::{ones_sum, tcp6_frame, udp6_frame, verify_frame6};
    use crate::time::Instant;
    use crate::wire::ipv6::ExtPolicy;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    pub(crate) fn conn6(method: ForwardMethod, i: ConnKey6, o: ConnKey6) -> Conn<ConnKey6> {
        let mut t = ConnTable::<ConnKey6>::new(16, 1).unwrap();
        let id = t
            .insert(NewConn {
                in_key: i,
                out_key: o,
                service: ServiceId(1),
                dest: DestId(1),
                method,
                state: ConnState::Tcp(TcpState::None),
                deadline: Instant::from_secs(60),
                template: false,
            })
            .unwrap();
        *t.get(id).unwrap()
    }

    /// An ICMPv6 error frame `from -> to`, type/code/word, quoting `quote` (an IPv6 packet),
    /// built byte by byte with its checksum from the plain RFC 1071 sum.
    fn icmp6_error(from: Ipv6Addr, to: Ipv6Addr, ty: u8, word: u32, quote: &[u8]) -> Vec<u8> {
        let mut m = vec![ty, 0, 0, 0];
        m.extend_from_slice(&word.to_be_bytes());
        m.extend_from_slice(quote);
        let mut ps = Vec::new();
        ps.extend_from_slice(&from.octets());
        ps.extend_from_slice(&to.octets());
        ps.extend_from_slice(&(m.len() as u32).to_be_bytes());
        ps.extend_from_slice(&[0, 0, 0, 58]);
        let c = ones_sum(&[&ps, &m]);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        crate::testutil::ip6_frame(from, to, 58, &m)
    }

    #[test]
    fn fullnat6_error_from_the_server_goes_to_the_client() {
        let (cip, vip, lip, rip) = (
            a("2001:2::2"),
            a("2001:2::100"),
            a("2001:3::1"),
            a("2001:3::11"),
        );
        let i = ConnKey6::new(6, cip, 40000, vip, 80);
        let o = ConnKey6::new(6, rip, 8080, lip, 5000);
        for udp in [false, true] {
            let proto = if udp { 17 } else { 6 };
            let (i, o) = (ConnKey6 { proto, ..i }, ConnKey6 { proto, ..o });
            let conn = conn6(ForwardMethod::FullNat, i, o);
            // The request as the director sent it: LIP:lport -> RIP:rport; quote all of it.
            let sent = if udp {
                udp6_frame(lip, 5000, rip, 8080, b"hello")
            } else {
                tcp6_frame(lip, 5000, rip, 8080, 0x18, &[], b"hello")
            };
            let f = icmp6_error(rip, lip, 1, 0, &sent[14..]);
            let p = parse6(&f, &ExtPolicy::default()).unwrap();
            let q = quoted_tuple6(&f, &p).unwrap();
            assert_eq!(
                ConnKey6::new(q.proto, q.dst, q.dport, q.src, q.sport),
                *conn.out_key()
            );
            let t = translation6(&conn, Dir::Reply).unwrap();
            let mut b = HeapBuf::from_bytes(&f);
            translate6(&mut b, &p, &t).unwrap();
            let v = verify_frame6(b.data()).unwrap();
            assert_eq!((v.src, v.dst, v.proto), (vip, cip, 58));
            // The quote is now the client's own request, checksum valid by full recompute.
            let client = if udp {
                udp6_frame(cip, 40000, vip, 80, b"hello")
            } else {
                tcp6_frame(cip, 40000, vip, 80, 0x18, &[], b"hello")
            };
            assert_eq!(&v.l4[8..], &client[14..]);
            verify_frame6(&[&f[..14], &v.l4[8..]].concat()).unwrap();
        }
    }

    #[test]
    fn nat6_packet_too_big_from_the_client_side_goes_to_the_server() {
        let (cip, vip, rip) = (a("2001:2::2"), a("2001:2::100"), a("2001:3::11"));
        let i = ConnKey6::new(6, cip, 40000, vip, 80);
        let o = ConnKey6::new(6, rip, 8080, cip, 40000);
        let conn = conn6(ForwardMethod::Masq, i, o);
        // A reply the director sent: VIP:80 -> CIP; a router on the client side quotes its
        // first 48 bytes (TCP checksum not in the quote).
        let sent = tcp6_frame(vip, 80, cip, 40000, 0x10, &[], &[7; 1400]);
        let router = a("2001:2::fe");
        let f = icmp6_error(router, vip, 2, 1280, &sent[14..14 + 48]);
        let p = parse6(&f, &ExtPolicy::default()).unwrap();
        let q = quoted_tuple6(&f, &p).unwrap();
        assert_eq!(ConnKey6::new(q.proto, q.dst, q.dport, q.src, q.sport), i);
        let t = translation6(&conn, Dir::Original).unwrap();
        assert_eq!(t.outer_src, None, "NAT keeps the router as the source");
        let mut b = HeapBuf::from_bytes(&f);
        translate6(&mut b, &p, &t).unwrap();
        let v = verify_frame6(b.data()).unwrap();
        assert_eq!((v.src, v.dst), (router, rip));
        assert_eq!(u32::from_be_bytes(v.l4[4..8].try_into().unwrap()), 1280);
        let quote = &v.l4[8..];
        assert_eq!(&quote[8..24], &rip.octets());
        assert_eq!(&quote[24..40], &cip.octets());
        assert_eq!(&quote[40..44], &[0x1f, 0x90, 0x9c, 0x40]);
    }

    #[test]
    fn other_messages_and_quotes_are_not_translated() {
        let sent = tcp6_frame(a("::1"), 1, a("::2"), 2, 0x10, &[], b"");
        let echo = icmp6_error(a("::3"), a("::1"), 128, 0, &sent[14..]);
        let p = parse6(&echo, &ExtPolicy::default()).unwrap();
        assert_eq!(quoted_tuple6(&echo, &p), None);
        let short = icmp6_error(a("::3"), a("::1"), 1, 0, &sent[14..14 + 42]);
        let p = parse6(&short, &ExtPolicy::default()).unwrap();
        assert_eq!(quoted_tuple6(&short, &p), None);
    }
}
