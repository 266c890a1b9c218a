//! ARP handling: answer requests for our addresses in place, learn neighbours, build requests.
//!
//! [`handle_arp`] is the worker's single entry for a received ARP frame. It answers a request
//! whose target is ours on the receiving port (`is_ours` decides, so the worker can include the
//! service VIPs it answers for) by rewriting the frame into the reply, feeds the neighbour table
//! by the rules of [`super::neigh`], and otherwise says why the frame is dropped. Requests from
//! an unspecified sender (address conflict probes, RFC 5227) are answered but teach nothing.

use super::addr::PortId;
use super::neigh::{Learn, NeighTable};
use crate::drop::DropReason;
use crate::packet::{NoRoom, PacketBuf};
use crate::time::Instant;
use crate::wire::arp::{self, ArpOp, ArpRepr};
use crate::wire::ethernet::{self, EtherType, EthernetRepr, Frame};
use crate::wire::{Error, MacAddr};
use std::net::Ipv4Addr;

/// What became of a received ARP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpVerdict {
    /// The buffer now holds our reply: transmit it on the port it arrived on.
    Reply,
    /// A reply or announcement for us, learnt; free the buffer (not a drop).
    Consumed,
    /// Drop the buffer and count this reason.
    Drop(DropReason),
}

/// Frame length of a request we build (the Ethernet minimum without FCS: 42 bytes + padding).
pub const REQUEST_FRAME_LEN: usize = 60;

/// Handle the ARP frame in `buf` (starting at its Ethernet header) received on `port`, whose
/// MAC is `our_mac`. Packets released by a learnt neighbour go to `release`.
pub fn handle_arp<B: PacketBuf, Q>(
    now: Instant,
    port: PortId,
    our_mac: MacAddr,
    buf: &mut B,
    is_ours: impl Fn(Ipv4Addr) -> bool,
    neigh: &mut NeighTable<Q>,
    release: impl FnMut(Q),
) -> ArpVerdict {
    let repr = match parse(buf.data()) {
        Ok(r) => r,
        Err(Error::Truncated) if buf.len() < ethernet::HEADER_LEN => {
            return ArpVerdict::Drop(DropReason::EthTruncated);
        }
        Err(_) => return ArpVerdict::Drop(DropReason::ArpMalformed),
    };
    if !repr.sha.is_unicast() {
        return ArpVerdict::Drop(DropReason::ArpMalformed);
    }
    if repr.sha == our_mac {
        // Our own frame reflected back (or a MAC conflict): never learn from it.
        return ArpVerdict::Drop(DropReason::ArpNotForUs);
    }
    let for_us = is_ours(repr.tpa);
    learn(now, port, &repr, for_us, neigh, release);
    match repr.op {
        ArpOp::REQUEST if for_us && !repr.is_gratuitous() => match reply_in_place(buf, our_mac) {
            Ok(()) => ArpVerdict::Reply,
            Err(_) => ArpVerdict::Drop(DropReason::ArpMalformed),
        },
        ArpOp::REQUEST | ArpOp::REPLY if repr.is_gratuitous() => ArpVerdict::Consumed,
        ArpOp::REPLY if for_us => ArpVerdict::Consumed,
        ArpOp::REQUEST | ArpOp::REPLY => ArpVerdict::Drop(DropReason::ArpNotForUs),
        _ => ArpVerdict::Drop(DropReason::ArpMalformed),
    }
}

/// Teach the neighbour table what a received ARP message says: a request for us creates (or
/// confirms) the sender's entry, anything else only updates an existing one.
fn learn<Q>(
    now: Instant,
    port: PortId,
    repr: &ArpRepr,
    for_us: bool,
    neigh: &mut NeighTable<Q>,
    release: impl FnMut(Q),
) {
    let how = if repr.op == ArpOp::REQUEST && for_us && !repr.is_gratuitous() {
        Learn::Create
    } else {
        Learn::UpdateOnly
    };
    if !repr.spa.is_unspecified() {
        neigh.learn(now, port, repr.spa, repr.sha, how, release);
    }
}

/// Learn from an ARP frame exactly as [`handle_arp`] does, without answering it: for the
/// workers that get a copy of a frame another worker handled (each worker has its own
/// neighbour table; the request is answered once, by the receiving worker).
pub fn learn_only<B: PacketBuf, Q>(
    now: Instant,
    port: PortId,
    our_mac: MacAddr,
    buf: &B,
    is_ours: impl Fn(Ipv4Addr) -> bool,
    neigh: &mut NeighTable<Q>,
    release: impl FnMut(Q),
) {
    let Ok(repr) = parse(buf.data()) else {
        return;
    };
    if !repr.sha.is_unicast() || repr.sha == our_mac {
        return;
    }
    learn(now, port, &repr, is_ours(repr.tpa), neigh, release);
}

fn parse(frame: &[u8]) -> Result<ArpRepr, Error> {
    let f = Frame::new_checked(frame)?;
    if f.ethertype() != EtherType::ARP {
        return Err(Error::Unsupported);
    }
    ArpRepr::parse(&arp::Packet::new_checked(f.payload())?)
}

/// Turn the ARP request in `buf` into our reply, in place: Ethernet to the requester from
/// `our_mac`, op reply, sender = (`our_mac`, the requested address), target = the requester.
/// Frame length (padding included) is kept.
pub fn reply_in_place<B: PacketBuf>(buf: &mut B, our_mac: MacAddr) -> Result<(), Error> {
    let req = parse(buf.data())?;
    let mut f = Frame::new_checked(buf.data_mut())?;
    f.set_dst_addr(req.sha);
    f.set_src_addr(our_mac);
    let mut p = arp::Packet::new_checked(f.payload_mut())?;
    ArpRepr {
        op: ArpOp::REPLY,
        sha: our_mac,
        spa: req.tpa,
        tha: req.sha,
        tpa: req.spa,
    }
    .emit(&mut p);
    Ok(())
}

/// Write a broadcast "who has `target_ip`, tell `our_ip`" into `buf` (its previous content is
/// discarded; the frame is [`REQUEST_FRAME_LEN`] bytes, zero padded).
pub fn build_request<B: PacketBuf>(
    buf: &mut B,
    our_mac: MacAddr,
    our_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
) -> Result<(), NoRoom> {
    build_request_to(buf, our_mac, our_ip, target_ip, None)
}

/// [`build_request`], unicast to `dst` when given (re-probing a known neighbour, as a
/// [`super::neigh::Solicit`] asks).
pub fn build_request_to<B: PacketBuf>(
    buf: &mut B,
    our_mac: MacAddr,
    our_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
    dst: Option<MacAddr>,
) -> Result<(), NoRoom> {
    buf.set_len(REQUEST_FRAME_LEN)?;
    let data = buf.data_mut();
    data.fill(0);
    let mut f = Frame::new_unchecked(data);
    EthernetRepr {
        src: our_mac,
        dst: dst.unwrap_or(MacAddr::BROADCAST),
        ethertype: EtherType::ARP,
    }
    .emit(&mut f);
    let mut p = arp::Packet::new_unchecked(f.payload_mut());
    ArpRepr {
        op: ArpOp::REQUEST,
        sha: our_mac,
        spa: our_ip,
        tha: MacAddr::ZERO,
        tpa: target_ip,
    }
    .emit(&mut p);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l3::neigh::{NeighConfig, Resolve};
    use crate::packet::HeapBuf;
    use crate::wire::arp::tests::ARP_REQUEST;
    use proptest::prelude::*;

    const OUR: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const PEER: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn ours(a: Ipv4Addr) -> bool {
        a == ip("198.18.0.1") || a == ip("198.18.0.100")
    }

    #[test]
    fn request_for_us_is_answered_in_place_and_learnt() {
        let mut n = NeighTable::<u32>::new(NeighConfig::default());
        let mut b = HeapBuf::from_bytes(&ARP_REQUEST);
        let v = handle_arp(Instant::ZERO, 0, OUR, &mut b, ours, &mut n, |_| {});
        assert_eq!(v, ArpVerdict::Reply);
        assert_eq!(b.len(), 60);
        let f = Frame::new_checked(b.data()).unwrap();
        assert_eq!((f.dst_addr(), f.src_addr()), (PEER, OUR));
        let r = ArpRepr::parse(&arp::Packet::new_checked(f.payload()).unwrap()).unwrap();
        assert_eq!(
            r,
            ArpRepr {
                op: ArpOp::REPLY,
                sha: OUR,
                spa: ip("198.18.0.1"),
                tha: PEER,
                tpa: ip("198.18.0.2"),
            }
        );
        assert_eq!(
            n.resolve(Instant::ZERO, 0, ip("198.18.0.2")),
            Resolve::Known(PEER)
        );
    }

    #[test]
    fn request_not_for_us_is_dropped_and_not_learnt() {
        let mut n = NeighTable::<u32>::new(NeighConfig::default());
        let mut b = HeapBuf::from_bytes(&ARP_REQUEST);
        let v = handle_arp(Instant::ZERO, 0, OUR, &mut b, |_| false, &mut n, |_| {});
        assert_eq!(v, ArpVerdict::Drop(DropReason::ArpNotForUs));
        assert_eq!(b.data(), &ARP_REQUEST[..]);
        assert!(n.is_empty());
    }

    #[test]
    fn reply_to_our_request_releases_queue() {
        let mut n = NeighTable::<u32>::new(NeighConfig::default());
        n.queue(Instant::ZERO, 0, ip("198.18.0.2"), 42, 60).unwrap();
        let mut sol = Vec::new();
        n.drain_solicits(|s| sol.push(s));
        // Our request, then the peer's answer built by turning it around.
        let mut req = HeapBuf::new();
        build_request(&mut req, OUR, ip("198.18.0.1"), sol[0].ip).unwrap();
        reply_in_place(&mut req, PEER).unwrap();
        let mut out = Vec::new();
        let v = handle_arp(Instant::ZERO, 0, OUR, &mut req, ours, &mut n, |q| {
            out.push(q)
        });
        assert_eq!(v, ArpVerdict::Consumed);
        assert_eq!(out, [42]);
        // The same reply on another port teaches that port nothing.
        assert_eq!(
            n.resolve(Instant::ZERO, 1, ip("198.18.0.2")),
            Resolve::Pending
        );
    }

    #[test]
    fn built_request_fields() {
        let mut b = HeapBuf::new();
        build_request(&mut b, OUR, ip("198.18.0.1"), ip("198.18.0.2")).unwrap();
        let f = Frame::new_checked(b.data()).unwrap();
        assert!(f.dst_addr().is_broadcast());
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(&b.data()[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
        let r = ArpRepr::parse(&arp::Packet::new_checked(f.payload()).unwrap()).unwrap();
        assert_eq!(
            (r.spa, r.tpa, r.sha),
            (ip("198.18.0.1"), ip("198.18.0.2"), OUR)
        );
        assert!(b.data()[42..].iter().all(|&x| x == 0));
        build_request_to(&mut b, OUR, ip("198.18.0.1"), ip("198.18.0.2"), Some(PEER)).unwrap();
        assert_eq!(Frame::new_checked(b.data()).unwrap().dst_addr(), PEER);
        let mut tiny = HeapBuf::with_capacity(0, 20);
        assert_eq!(
            build_request(&mut tiny, OUR, ip("198.18.0.1"), ip("198.18.0.2")),
            Err(NoRoom)
        );
    }

    #[test]
    fn gratuitous_and_malformed() {
        let mut n = NeighTable::<u32>::new(NeighConfig::default());
        let mut g = ARP_REQUEST;
        g[38..42].copy_from_slice(&[198, 18, 0, 2]); // tpa = spa
        let mut b = HeapBuf::from_bytes(&g);
        // Gratuitous: consumed, no entry created.
        assert_eq!(
            handle_arp(Instant::ZERO, 0, OUR, &mut b, ours, &mut n, |_| {}),
            ArpVerdict::Consumed
        );
        assert!(n.is_empty());
        let mut b = HeapBuf::from_bytes(&ARP_REQUEST[..41]);
        assert_eq!(
            handle_arp(Instant::ZERO, 0, OUR, &mut b, ours, &mut n, |_| {}),
            ArpVerdict::Drop(DropReason::ArpMalformed)
        );
        let mut b = HeapBuf::from_bytes(&ARP_REQUEST[..10]);
        assert_eq!(
            handle_arp(Instant::ZERO, 0, OUR, &mut b, ours, &mut n, |_| {}),
            ArpVerdict::Drop(DropReason::EthTruncated)
        );
        let mut bad = ARP_REQUEST;
        bad[21] = 9; // op 9
        let mut b = HeapBuf::from_bytes(&bad);
        assert_eq!(
            handle_arp(Instant::ZERO, 0, OUR, &mut b, ours, &mut n, |_| {}),
            ArpVerdict::Drop(DropReason::ArpMalformed)
        );
    }

    proptest! {
        #[test]
        fn random_frames_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..70), fix in any::<bool>()) {
            if fix && data.len() >= 22 {
                data[12..22].copy_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
            }
            let mut n = NeighTable::<u32>::new(NeighConfig { max_entries: 4, ..NeighConfig::default() });
            let mut b = HeapBuf::from_bytes(&data);
            let _ = handle_arp(Instant::ZERO, 0, OUR, &mut b, |_| true, &mut n, |_| {});
        }
    }
}
