//! ICMP the director originates: echo replies for its own addresses (rewritten in place) and
//! errors about packets it cannot forward (built into a fresh buffer).
//!
//! Echo replies go back to the Ethernet sender of the request (source and destination MACs are
//! swapped), which is the right next hop for any directly attached or symmetric-routed client;
//! the worker may rewrite the Ethernet destination after a route lookup where that is not so.
//!
//! Errors follow RFC 1122 3.2.2 / RFC 1812 4.3.2.7: never about an ICMP error, a non-initial
//! fragment, or a packet whose source is not a unicast host or whose destination is broadcast or
//! multicast. They quote the offending IP header (options included) and the first 8 bytes after
//! it. Rate limiting is the caller's: each worker holds one token bucket for the errors and one
//! for echo replies ([`super::ratelimit`]).

use crate::drop::DropReason;
use crate::packet::{NoRoom, PacketBuf};
use crate::wire::ethernet::{self, EtherType, Frame};
use crate::wire::icmp::{self, IcmpType, time_exceeded, unreachable};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Repr};
use crate::wire::{Error, MacAddr, checksum};
use std::net::Ipv4Addr;

/// TTL of packets the director originates (Linux's default `ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;
/// TOS of ICMP errors (`IPTOS_PREC_INTERNETCONTROL`, as Linux sends them).
pub const ERROR_TOS: u8 = 0xc0;

fn ip_reason(e: Error) -> DropReason {
    match e {
        Error::BadLength => DropReason::Ipv4BadLength,
        _ => DropReason::Ipv4Malformed,
    }
}

/// Rewrite the ICMP echo request in `buf` (Ethernet + IPv4 + ICMP, addressed to us) into the
/// echo reply in place. IP options are echoed back as received. Errors say why to drop it (the
/// buffer may then be partly rewritten: it is only fit for dropping).
pub fn echo_reply_in_place<B: PacketBuf>(buf: &mut B) -> Result<(), DropReason> {
    let frame = Frame::new_checked(buf.data_mut()).map_err(|_| DropReason::EthTruncated)?;
    let mut frame = frame;
    frame.swap_addrs();
    let mut ip = ipv4::Packet::new_checked(frame.payload_mut()).map_err(ip_reason)?;
    if ip.is_fragment() {
        return Err(DropReason::Ipv4Fragment);
    }
    if ip.protocol() != IpProtocol::ICMP {
        return Err(DropReason::IcmpMalformed);
    }
    {
        let mut m =
            icmp::Packet::new_checked(ip.payload_mut()).map_err(|_| DropReason::IcmpMalformed)?;
        if m.msg_type() != IcmpType::ECHO_REQUEST || m.msg_code() != 0 {
            return Err(DropReason::IcmpMalformed);
        }
        if !m.verify_checksum() {
            return Err(DropReason::L4BadChecksum);
        }
        let c = checksum::update_u16(m.checksum(), u16::from(IcmpType::ECHO_REQUEST.0) << 8, 0);
        m.set_msg_type(IcmpType::ECHO_REPLY);
        m.set_checksum(c);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(DEFAULT_TTL);
    ip.fill_checksum();
    Ok(())
}

/// The ICMP error to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination unreachable with this code (see `wire::icmp::unreachable`).
    DestUnreachable(u8),
    /// Destination unreachable, fragmentation needed and DF set, with the next-hop MTU.
    FragNeeded { mtu: u16 },
    /// Time exceeded in transit (TTL reached zero).
    TimeExceeded,
}

/// Why no ICMP error was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The rules of the module doc forbid an error about this packet (not a drop of ours).
    #[error("an ICMP error about this packet is not allowed")]
    Suppressed,
    /// The offending packet's IP header is unreadable.
    #[error("offending packet unreadable: {0}")]
    Offending(Error),
    /// The output buffer is too small.
    #[error("no room in the output buffer")]
    NoRoom,
}

impl From<NoRoom> for BuildError {
    fn from(_: NoRoom) -> Self {
        BuildError::NoRoom
    }
}

/// Build in `out` (previous content discarded) an Ethernet frame carrying the ICMP error `kind`
/// from `src` about `offending` (an IPv4 packet, starting at its header), addressed to the
/// offending packet's source. The Ethernet addresses are left zero for the transmit path, which
/// routes the error and resolves its next hop like any packet; `ident` is the IP identification
/// to use. Returns the destination (the offending source) for that route lookup.
pub fn build_error<B: PacketBuf>(
    out: &mut B,
    offending: &[u8],
    kind: IcmpError,
    src: Ipv4Addr,
    ident: u16,
) -> Result<Ipv4Addr, BuildError> {
    let off = ipv4::Packet::new_checked_quoted(offending).map_err(BuildError::Offending)?;
    let (osrc, odst) = (off.src_addr(), off.dst_addr());
    let unicast_src = !(osrc.is_unspecified()
        || osrc.is_broadcast()
        || osrc.is_multicast()
        || osrc.is_loopback());
    if !unicast_src || odst.is_broadcast() || odst.is_multicast() || off.frag_offset() != 0 {
        return Err(BuildError::Suppressed);
    }
    if off.protocol() == IpProtocol::ICMP
        && let Some(&t) = off.payload().first()
        && IcmpType(t).is_error()
    {
        return Err(BuildError::Suppressed);
    }
    let after = off.payload().len().min(icmp::QUOTED_PAYLOAD_LEN);
    let quote = &off.as_bytes()[..usize::from(off.header_len()) + after];
    let icmp_len = icmp::HEADER_LEN + quote.len();
    let total = ethernet::HEADER_LEN + ipv4::HEADER_LEN + icmp_len;

    out.set_len(total)?;
    let data = out.data_mut();
    let mut f = Frame::new_unchecked(&mut data[..]);
    f.set_dst_addr(MacAddr::ZERO);
    f.set_src_addr(MacAddr::ZERO);
    f.set_ethertype(EtherType::IPV4);
    let (ty, code, mtu) = match kind {
        IcmpError::DestUnreachable(c) => (IcmpType::DEST_UNREACHABLE, c, None),
        IcmpError::FragNeeded { mtu } => (
            IcmpType::DEST_UNREACHABLE,
            unreachable::FRAG_NEEDED,
            Some(mtu),
        ),
        IcmpError::TimeExceeded => (IcmpType::TIME_EXCEEDED, time_exceeded::TTL, None),
    };
    let ip_part = f.payload_mut();
    Ipv4Repr {
        src,
        dst: osrc,
        protocol: IpProtocol::ICMP,
        payload_len: icmp_len as u16,
        ttl: DEFAULT_TTL,
        tos: ERROR_TOS,
        ident,
        dont_frag: false,
    }
    .emit(ip_part)
    .map_err(|_| BuildError::NoRoom)?;
    let mut m = icmp::Packet::new_unchecked(&mut ip_part[ipv4::HEADER_LEN..]);
    m.set_msg_type(ty);
    m.set_msg_code(code);
    m.clear_rest_of_header();
    if let Some(mtu) = mtu {
        m.set_next_hop_mtu(mtu);
    }
    m.data_mut()[..quote.len()].copy_from_slice(quote);
    m.fill_checksum();
    Ok(osrc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::wire::fixtures;
    use proptest::prelude::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn echo_reply_round_trip() {
        let mut b = HeapBuf::from_bytes(&fixtures::ICMP_ECHO);
        echo_reply_in_place(&mut b).unwrap();
        let f = Frame::new_checked(b.data()).unwrap();
        assert_eq!(f.dst_addr(), MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_eq!(f.src_addr(), MacAddr([0x02, 0, 0, 0, 0, 0x01]));
        let p = ipv4::Packet::new_checked(f.payload()).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(checksum::checksum(p.header()), 0);
        assert_eq!(
            (p.src_addr(), p.dst_addr()),
            (ip("198.18.0.1"), ip("198.18.0.2"))
        );
        assert_eq!(p.ttl(), DEFAULT_TTL);
        let m = icmp::Packet::new_checked(p.payload()).unwrap();
        assert_eq!(m.msg_type(), IcmpType::ECHO_REPLY);
        assert_eq!((m.echo_ident(), m.echo_seq_no()), (0x1234, 1));
        assert!(m.verify_checksum());
        // Incremental equals full.
        let mut full = p.payload().to_vec();
        icmp::Packet::new_checked(&mut full[..])
            .unwrap()
            .fill_checksum();
        assert_eq!(
            m.checksum(),
            icmp::Packet::new_checked(&full[..]).unwrap().checksum()
        );
        assert_eq!(&p.payload()[8..], &fixtures::ICMP_ECHO[42..]);
    }

    #[test]
    fn echo_reply_refusals() {
        let mut bad = fixtures::ICMP_ECHO;
        bad[40] ^= 1; // ICMP checksum
        assert_eq!(
            echo_reply_in_place(&mut HeapBuf::from_bytes(&bad)),
            Err(DropReason::L4BadChecksum)
        );
        let mut reply = fixtures::ICMP_ECHO;
        reply[34] = 0; // already an echo reply
        assert_eq!(
            echo_reply_in_place(&mut HeapBuf::from_bytes(&reply)),
            Err(DropReason::IcmpMalformed)
        );
        let mut frag = fixtures::ICMP_ECHO;
        frag[20] |= 0x20; // MF
        assert_eq!(
            echo_reply_in_place(&mut HeapBuf::from_bytes(&frag)),
            Err(DropReason::Ipv4Fragment)
        );
        assert_eq!(
            echo_reply_in_place(&mut HeapBuf::from_bytes(&fixtures::ICMP_ECHO[..60])),
            Err(DropReason::Ipv4BadLength)
        );
        assert_eq!(
            echo_reply_in_place(&mut HeapBuf::from_bytes(&fixtures::ICMP_ECHO[..30])),
            Err(DropReason::Ipv4Malformed)
        );
        assert_eq!(
            echo_reply_in_place(&mut HeapBuf::from_bytes(&fixtures::TCP_SYN)),
            Err(DropReason::IcmpMalformed)
        );
    }

    #[test]
    fn frag_needed_quotes_header_and_8_bytes() {
        let offending = &fixtures::TCP_SYN[14..];
        let mut out = HeapBuf::new();
        let dst = build_error(
            &mut out,
            offending,
            IcmpError::FragNeeded { mtu: 1480 },
            ip("198.18.0.1"),
            9,
        )
        .unwrap();
        assert_eq!(dst, ip("198.18.0.2"));
        assert_eq!(out.len(), 14 + 20 + 8 + 28);
        let f = Frame::new_checked(out.data()).unwrap();
        assert_eq!(f.ethertype(), EtherType::IPV4);
        let p = ipv4::Packet::new_checked(f.payload()).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.src_addr(), p.dst_addr()),
            (ip("198.18.0.1"), ip("198.18.0.2"))
        );
        assert_eq!(
            (p.protocol(), p.ttl(), p.ident()),
            (IpProtocol::ICMP, 64, 9)
        );
        let m = icmp::Packet::new_checked(p.payload()).unwrap();
        assert!(m.verify_checksum());
        assert_eq!(
            (m.msg_type(), m.msg_code()),
            (IcmpType::DEST_UNREACHABLE, 4)
        );
        assert_eq!(m.next_hop_mtu(), 1480);
        let q = m.quoted_ipv4().unwrap();
        assert_eq!(q.dst_addr(), ip("198.18.1.1"));
        assert_eq!(m.data(), &offending[..28]);

        build_error(
            &mut out,
            offending,
            IcmpError::TimeExceeded,
            ip("198.18.0.1"),
            1,
        )
        .unwrap();
        let f = Frame::new_checked(out.data()).unwrap();
        let p = ipv4::Packet::new_checked(f.payload()).unwrap();
        let m = icmp::Packet::new_checked(p.payload()).unwrap();
        assert_eq!((m.msg_type(), m.msg_code()), (IcmpType::TIME_EXCEEDED, 0));
        assert!(m.verify_checksum());
        assert_eq!(&m.data()[..4], &[0x45, 0x00, 0x00, 0x3c]);
    }

    #[test]
    fn error_suppression() {
        let src = ip("198.18.0.1");
        let mut out = HeapBuf::new();
        // About an ICMP error: no.
        build_error(
            &mut out,
            &fixtures::TCP_SYN[14..],
            IcmpError::DestUnreachable(unreachable::PORT),
            src,
            0,
        )
        .unwrap();
        let err = out.data()[14..].to_vec();
        assert_eq!(
            build_error(&mut out, &err, IcmpError::TimeExceeded, src, 0),
            Err(BuildError::Suppressed)
        );
        // About an echo request: yes.
        assert!(
            build_error(
                &mut out,
                &fixtures::ICMP_ECHO[14..],
                IcmpError::TimeExceeded,
                src,
                0
            )
            .is_ok()
        );
        // Non-initial fragment, broadcast destination: no.
        let mut frag = fixtures::TCP_SYN[14..].to_vec();
        frag[7] = 1;
        assert_eq!(
            build_error(&mut out, &frag, IcmpError::TimeExceeded, src, 0),
            Err(BuildError::Suppressed)
        );
        let mut bcast = fixtures::TCP_SYN[14..].to_vec();
        bcast[16..20].copy_from_slice(&[255; 4]);
        assert_eq!(
            build_error(&mut out, &bcast, IcmpError::TimeExceeded, src, 0),
            Err(BuildError::Suppressed)
        );
        assert_eq!(
            build_error(&mut out, &[0x45; 10], IcmpError::TimeExceeded, src, 0),
            Err(BuildError::Offending(Error::Truncated))
        );
        let mut tiny = HeapBuf::with_capacity(0, 40);
        assert_eq!(
            build_error(
                &mut tiny,
                &fixtures::TCP_SYN[14..],
                IcmpError::TimeExceeded,
                src,
                0
            ),
            Err(BuildError::NoRoom)
        );
    }

    proptest! {
        #[test]
        fn random_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..120), ipfix in any::<bool>()) {
            let mut d = data.clone();
            if ipfix && d.len() > 14 {
                d[14] = 0x45;
            }
            let _ = echo_reply_in_place(&mut HeapBuf::from_bytes(&d));
            let mut out = HeapBuf::new();
            if build_error(&mut out, &d, IcmpError::FragNeeded { mtu: 1400 }, ip("198.18.0.1"), 0).is_ok() {
                let f = Frame::new_checked(out.data()).unwrap();
                let p = ipv4::Packet::new_checked(f.payload()).unwrap();
                prop_assert!(p.verify_checksum());
                prop_assert!(icmp::Packet::new_checked(p.payload()).unwrap().verify_checksum());
            }
        }
    }
}
