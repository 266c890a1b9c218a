//! IPv6 Neighbour Discovery (RFC 4861): the v6 counterpart of [`super::arp`], over the same
//! neighbour table ([`NeighTable`] with `Ipv6Addr` addresses).
//!
//! [`handle_nd`] is the worker's single entry for a received Neighbour Solicitation or
//! Advertisement (an Ethernet frame whose IPv6 next header is ICMPv6, type 135 or 136). It first
//! validates the message as RFC 4861 7.1.1 / 7.1.2 require: hop limit 255 (so it cannot have
//! been routed), code 0, a valid checksum, at least 24 bytes, a target that is not multicast,
//! well-formed options (see `wire::icmpv6`); a solicitation from the unspecified address
//! (duplicate address detection) must go to the target's solicited-node group and carry no
//! source link-layer address option; an advertisement to a multicast group must not have the
//! S flag. Then:
//! - A solicitation for an address that is ours on the receiving port (`is_ours` decides, so
//!   the worker can include the VIPs it answers for) is turned, in place, into the solicited
//!   advertisement (S and O flags, target link-layer address option with our MAC), sent to the
//!   solicitor at the MAC of its source link-layer address option, or at the frame's Ethernet
//!   source when it gave none. A duplicate address detection probe (source `::`) for our
//!   address is answered to all-nodes `ff02::1` with S clear (RFC 4861 7.2.4): the address is
//!   defended. The solicitor's link-layer address is learnt as `Stale` (7.2.3).
//! - A solicitation for another address is dropped (`NotForUs`) and teaches nothing.
//! - An advertisement updates an existing entry by RFC 4861 7.2.5 ([`NeighTable::update_nd`])
//!   and is consumed; one whose target is ours is another node claiming our address, counted as
//!   [`NdDrop::AddressConflict`].
//!
//! Frames we sent ourselves (Ethernet source = our MAC) are never learnt from. Drops carry an
//! [`NdDrop`], whose label is the drop counter the worker will add beside `arp_malformed` and
//! `arp_not_for_us` when IPv6 is wired in.
//!
//! The builders write what the director sends: the multicast solicitation that resolves a
//! neighbour ([`build_solicit`], to the solicited-node group), the unicast one that re-probes a
//! known neighbour (the same function with a MAC, as a [`Solicit`] asks), and the unsolicited
//! advertisement announcing an address at start ([`build_unsolicited_na`], to `ff02::1`, O set).

use super::addr::PortId;
use super::neigh::{NdUpdate, NeighTable, Solicit};
use crate::packet::{NoRoom, PacketBuf};
use crate::time::Instant;
use crate::wire::ethernet::{self, EtherType, EthernetRepr, Frame};
use crate::wire::icmpv6::{self, NaFlags, NdRepr};
use crate::wire::ipv6::{self, Ipv6Repr, next_header};
use crate::wire::{Error, MacAddr};
use std::net::Ipv6Addr;

/// The hop limit every ND message carries (RFC 4861: proof it was not forwarded).
pub const ND_HOP_LIMIT: u8 = 255;
/// The all-nodes link-local multicast group.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Frame length of an NS or NA we build: Ethernet, IPv6, 24 bytes of message, one 8-byte
/// link-layer address option.
pub const FRAME_LEN: usize =
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmpv6::ND_LEN + icmpv6::LLADDR_OPT_LEN;

/// Why an ND frame was dropped. [`NdDrop::label`] names the drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdDrop {
    /// Fails a check of RFC 4861 7.1 (module doc) or does not parse.
    Malformed,
    /// The ICMPv6 checksum does not verify.
    BadChecksum,
    /// A solicitation for an address that is not ours, or our own frame coming back.
    NotForUs,
    /// An advertisement from another node for an address that is ours.
    AddressConflict,
}

impl NdDrop {
    /// The metric label of this reason (snake_case, stable; `l4_bad_checksum` is the existing
    /// counter of bad upper-layer checksums).
    pub const fn label(self) -> &'static str {
        match self {
            NdDrop::Malformed => "nd_malformed",
            NdDrop::BadChecksum => "l4_bad_checksum",
            NdDrop::NotForUs => "nd_not_for_us",
            NdDrop::AddressConflict => "nd_address_conflict",
        }
    }
}

/// What became of a received ND frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdVerdict {
    /// The buffer now holds our advertisement: transmit it on the port it arrived on.
    Reply,
    /// An advertisement, learnt from; free the buffer (not a drop).
    Consumed,
    /// Drop the buffer and count this reason.
    Drop(NdDrop),
}

/// The solicited-node multicast group of `addr`: `ff02::1:ff00:0/104` plus its low 24 bits
/// (RFC 4291 2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// True when `addr` is a solicited-node multicast group (`ff02::1:ffXX:XXXX`).
pub fn is_solicited_node(addr: Ipv6Addr) -> bool {
    let o = addr.octets();
    o[..13] == solicited_node(Ipv6Addr::UNSPECIFIED).octets()[..13]
}

/// The Ethernet address of IPv6 multicast group `group`: `33:33` and its low 32 bits
/// (RFC 2464 7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The link-local address `fe80::/64` with the modified EUI-64 interface identifier of `mac`
/// (RFC 4291 appendix A: `ff:fe` in the middle, universal/local bit inverted).
pub fn link_local_from_mac(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    let mut o = [0u8; 16];
    o[0] = 0xfe;
    o[1] = 0x80;
    o[8..16].copy_from_slice(&[m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    Ipv6Addr::from(o)
}

/// An ND message and what of its envelope the rules need.
#[derive(Debug, Clone, Copy)]
struct Received {
    eth_src: MacAddr,
    src: Ipv6Addr,
    repr: NdRepr,
}

/// Parse and validate (RFC 4861 7.1, module doc) the ND frame in `frame`.
fn parse(frame: &[u8]) -> Result<Received, NdDrop> {
    let f = Frame::new_checked(frame).map_err(|_| NdDrop::Malformed)?;
    if f.ethertype() != EtherType::IPV6 {
        return Err(NdDrop::Malformed);
    }
    let ip = ipv6::Packet::new_checked(f.payload()).map_err(|_| NdDrop::Malformed)?;
    if ip.next_header() != next_header::ICMPV6 || ip.hop_limit() != ND_HOP_LIMIT {
        return Err(NdDrop::Malformed);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let m = icmpv6::Packet::new_checked(ip.payload()).map_err(|_| NdDrop::Malformed)?;
    if m.msg_code() != 0 || src.is_multicast() {
        return Err(NdDrop::Malformed);
    }
    let repr = NdRepr::parse(&m).map_err(|_| NdDrop::Malformed)?;
    if !m.verify_checksum(src, dst) {
        return Err(NdDrop::BadChecksum);
    }
    if repr.target().is_multicast() {
        return Err(NdDrop::Malformed);
    }
    match repr {
        NdRepr::Solicit {
            target,
            source_lladdr,
        } if src.is_unspecified() && (dst != solicited_node(target) || source_lladdr.is_some()) => {
            return Err(NdDrop::Malformed);
        }
        NdRepr::Advert { flags, .. } if dst.is_multicast() && flags.solicited => {
            return Err(NdDrop::Malformed);
        }
        NdRepr::Advert { .. } if src.is_unspecified() => return Err(NdDrop::Malformed),
        _ => {}
    }
    Ok(Received {
        eth_src: f.src_addr(),
        src,
        repr,
    })
}

/// Teach the table what a validated message says (module doc).
fn learn<Q>(
    now: Instant,
    port: PortId,
    r: &Received,
    for_us: bool,
    neigh: &mut NeighTable<Q, Ipv6Addr>,
    release: impl FnMut(Q),
) {
    match r.repr {
        NdRepr::Solicit {
            source_lladdr: Some(mac),
            ..
        } if for_us && !r.src.is_unspecified() => {
            let u = NdUpdate {
                create: true,
                reachable: false,
                override_: true,
            };
            neigh.update_nd(now, port, r.src, Some(mac), u, release);
        }
        NdRepr::Advert {
            flags,
            target,
            target_lladdr,
        } if !for_us => {
            let u = NdUpdate {
                create: false,
                reachable: flags.solicited,
                override_: flags.override_,
            };
            neigh.update_nd(now, port, target, target_lladdr, u, release);
        }
        _ => {}
    }
}

/// Handle the ND frame in `buf` (starting at its Ethernet header) received on `port`, whose
/// MAC is `our_mac` (module doc). Packets released by a learnt neighbour go to `release`.
pub fn handle_nd<B: PacketBuf, Q>(
    now: Instant,
    port: PortId,
    our_mac: MacAddr,
    buf: &mut B,
    is_ours: impl Fn(Ipv6Addr) -> bool,
    neigh: &mut NeighTable<Q, Ipv6Addr>,
    release: impl FnMut(Q),
) -> NdVerdict {
    let r = match parse(buf.data()) {
        Ok(r) => r,
        Err(d) => return NdVerdict::Drop(d),
    };
    if r.eth_src == our_mac {
        return NdVerdict::Drop(NdDrop::NotForUs);
    }
    let for_us = is_ours(r.repr.target());
    learn(now, port, &r, for_us, neigh, release);
    match r.repr {
        NdRepr::Solicit { .. } if for_us => match advertise_in_place(buf, our_mac, &r) {
            Ok(()) => NdVerdict::Reply,
            Err(NoRoom) => NdVerdict::Drop(NdDrop::Malformed),
        },
        NdRepr::Solicit { .. } => NdVerdict::Drop(NdDrop::NotForUs),
        NdRepr::Advert { .. } if for_us => NdVerdict::Drop(NdDrop::AddressConflict),
        NdRepr::Advert { .. } => NdVerdict::Consumed,
    }
}

/// Learn from an ND frame exactly as [`handle_nd`] does, without answering it: for the workers
/// that get a copy of a frame another worker handled.
pub fn learn_only<B: PacketBuf, Q>(
    now: Instant,
    port: PortId,
    our_mac: MacAddr,
    buf: &B,
    is_ours: impl Fn(Ipv6Addr) -> bool,
    neigh: &mut NeighTable<Q, Ipv6Addr>,
    release: impl FnMut(Q),
) {
    let Ok(r) = parse(buf.data()) else {
        return;
    };
    if r.eth_src == our_mac {
        return;
    }
    learn(now, port, &r, is_ours(r.repr.target()), neigh, release);
}

/// Rewrite `buf` (holding the solicitation `r`) into our solicited advertisement.
fn advertise_in_place<B: PacketBuf>(
    buf: &mut B,
    our_mac: MacAddr,
    r: &Received,
) -> Result<(), NoRoom> {
    let NdRepr::Solicit {
        target,
        source_lladdr,
    } = r.repr
    else {
        return Err(NoRoom);
    };
    let dad = r.src.is_unspecified();
    let (ip_dst, eth_dst) = if dad {
        (ALL_NODES, multicast_mac(ALL_NODES))
    } else {
        (r.src, source_lladdr.unwrap_or(r.eth_src))
    };
    let na = NdRepr::Advert {
        flags: NaFlags {
            router: false,
            solicited: !dad,
            override_: true,
        },
        target,
        target_lladdr: Some(our_mac),
    };
    write_nd(buf, our_mac, eth_dst, target, ip_dst, &na)
}

/// Write Ethernet + IPv6 + `msg` (with its checksum) into `buf`, replacing its content.
fn write_nd<B: PacketBuf>(
    buf: &mut B,
    eth_src: MacAddr,
    eth_dst: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg: &NdRepr,
) -> Result<(), NoRoom> {
    let mlen = msg.buffer_len();
    buf.set_len(ethernet::HEADER_LEN + ipv6::HEADER_LEN + mlen)?;
    let data = buf.data_mut();
    let mut f = Frame::new_unchecked(&mut data[..]);
    EthernetRepr {
        src: eth_src,
        dst: eth_dst,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut f);
    let ip = f.payload_mut();
    Ipv6Repr {
        src,
        dst,
        next_header: next_header::ICMPV6,
        payload_len: mlen as u16,
        hop_limit: ND_HOP_LIMIT,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(ip)
    .map_err(|_| NoRoom)?;
    let m = &mut ip[ipv6::HEADER_LEN..];
    msg.emit(m).map_err(|_| NoRoom)?;
    icmpv6::Packet::new_unchecked(&mut m[..mlen]).fill_checksum(src, dst);
    Ok(())
}

/// Write into `buf` (previous content discarded) the solicitation for `target` from `our_ip`
/// with our link-layer address: to `target`'s solicited-node group, or unicast to `target` at
/// `unicast` when re-probing a known neighbour (as a [`Solicit`] says).
pub fn build_solicit<B: PacketBuf>(
    buf: &mut B,
    our_mac: MacAddr,
    our_ip: Ipv6Addr,
    target: Ipv6Addr,
    unicast: Option<MacAddr>,
) -> Result<(), NoRoom> {
    let (dst, eth_dst) = match unicast {
        Some(mac) => (target, mac),
        None => {
            let g = solicited_node(target);
            (g, multicast_mac(g))
        }
    };
    let ns = NdRepr::Solicit {
        target,
        source_lladdr: Some(our_mac),
    };
    write_nd(buf, our_mac, eth_dst, our_ip, dst, &ns)
}

/// [`build_solicit`] for what the neighbour table asks.
pub fn build_solicit_for<B: PacketBuf>(
    buf: &mut B,
    our_mac: MacAddr,
    our_ip: Ipv6Addr,
    s: &Solicit<Ipv6Addr>,
) -> Result<(), NoRoom> {
    build_solicit(buf, our_mac, our_ip, s.ip, s.unicast)
}

/// Write into `buf` the unsolicited advertisement of `addr` (sent when the address comes up):
/// to all-nodes `ff02::1`, S clear, O set, our link-layer address.
pub fn build_unsolicited_na<B: PacketBuf>(
    buf: &mut B,
    our_mac: MacAddr,
    addr: Ipv6Addr,
) -> Result<(), NoRoom> {
    let na = NdRepr::Advert {
        flags: NaFlags {
            router: false,
            solicited: false,
            override_: true,
        },
        target: addr,
        target_lladdr: Some(our_mac),
    };
    write_nd(buf, our_mac, multicast_mac(ALL_NODES), addr, ALL_NODES, &na)
}

/// `Error` of the wire layer, for callers that parse ND frames themselves.
pub fn wire_error(e: Error) -> NdDrop {
    match e {
        Error::BadChecksum => NdDrop::BadChecksum,
        _ => NdDrop::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l3::neigh::{NeighConfig, NeighState, Resolve};
    use crate::packet::HeapBuf;
    use crate::wire::fixtures_v6;
    use proptest::prelude::*;

    const OUR: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const PEER: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ours(x: Ipv6Addr) -> bool {
        x == a("2001:2::1") || x == a("2001:2::100")
    }

    fn table() -> NeighTable<u32, Ipv6Addr> {
        NeighTable::new(NeighConfig::default())
    }

    /// Everything of an ND frame: Ethernet dst/src, IPv6 src/dst/hop limit, the repr, and
    /// whether its checksum verifies.
    fn decode(frame: &[u8]) -> (MacAddr, MacAddr, Ipv6Addr, Ipv6Addr, u8, NdRepr, bool) {
        let f = Frame::new_checked(frame).unwrap();
        let ip = ipv6::Packet::new_checked(f.payload()).unwrap();
        let m = icmpv6::Packet::new_checked(ip.payload()).unwrap();
        (
            f.dst_addr(),
            f.src_addr(),
            ip.src_addr(),
            ip.dst_addr(),
            ip.hop_limit(),
            NdRepr::parse(&m).unwrap(),
            m.verify_checksum(ip.src_addr(), ip.dst_addr()),
        )
    }

    #[test]
    fn helpers() {
        assert_eq!(solicited_node(a("2001:2::1")), a("ff02::1:ff00:1"));
        assert_eq!(
            solicited_node(a("2001:2::abcd:1234:5678")),
            a("ff02::1:ff34:5678")
        );
        assert!(is_solicited_node(a("ff02::1:ff34:5678")));
        assert!(!is_solicited_node(a("ff02::1")));
        assert!(!is_solicited_node(a("ff02::2:ff34:5678")));
        assert_eq!(
            multicast_mac(a("ff02::1:ff00:1")),
            MacAddr([0x33, 0x33, 0xff, 0, 0, 1])
        );
        assert_eq!(multicast_mac(ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        // RFC 4291 appendix A's example shape: 52:54:00:12:34:56 -> 5054:00ff:fe12:3456.
        assert_eq!(link_local_from_mac(PEER), a("fe80::5054:ff:fe12:3456"));
        assert_eq!(link_local_from_mac(OUR), a("fe80::ff:fe00:1"));
    }

    #[test]
    fn solicitation_for_us_is_answered_in_place_and_learnt() {
        let mut n = table();
        let mut b = HeapBuf::from_bytes(&fixtures_v6::NS);
        let v = handle_nd(Instant::ZERO, 0, OUR, &mut b, ours, &mut n, |_| {});
        assert_eq!(v, NdVerdict::Reply);
        // The reply is byte for byte the python-built NA.
        assert_eq!(b.data(), &fixtures_v6::NA[..]);
        let (edst, esrc, src, dst, hops, repr, ok) = decode(b.data());
        assert_eq!(
            (edst, esrc, src, dst, hops),
            (PEER, OUR, a("2001:2::1"), a("2001:2::2"), 255)
        );
        assert!(ok);
        assert!(
            matches!(repr, NdRepr::Advert { flags, .. } if flags.solicited && flags.override_ && !flags.router)
        );
        // The solicitor is learnt as stale (RFC 4861 7.2.3).
        let e = n.get(0, a("2001:2::2")).unwrap();
        assert_eq!((e.state, e.mac), (NeighState::Stale, Some(PEER)));
    }

    #[test]
    fn dad_probe_for_our_address_is_defended() {
        let mut n = table();
        let mut b = HeapBuf::from_bytes(&fixtures_v6::DAD_NS);
        let v = handle_nd(Instant::ZERO, 0, OUR, &mut b, ours, &mut n, |_| {});
        assert_eq!(v, NdVerdict::Reply);
        assert_eq!(b.len(), FRAME_LEN);
        let (edst, esrc, src, dst, hops, repr, ok) = decode(b.data());
        assert_eq!(
            (edst, esrc, src, dst, hops),
            (
                MacAddr([0x33, 0x33, 0, 0, 0, 1]),
                OUR,
                a("2001:2::1"),
                ALL_NODES,
                255
            )
        );
        assert!(ok);
        assert_eq!(
            repr,
            NdRepr::Advert {
                flags: NaFlags {
                    router: false,
                    solicited: false,
                    override_: true
                },
                target: a("2001:2::1"),
                target_lladdr: Some(OUR)
            }
        );
        // The unspecified source is not learnt.
        assert!(n.is_empty());
    }

    #[test]
    fn solicitation_not_for_us_is_dropped_and_not_learnt() {
        let mut n = table();
        let mut b = HeapBuf::from_bytes(&fixtures_v6::NS);
        let v = handle_nd(Instant::ZERO, 0, OUR, &mut b, |_| false, &mut n, |_| {});
        assert_eq!(v, NdVerdict::Drop(NdDrop::NotForUs));
        assert_eq!(b.data(), &fixtures_v6::NS[..]);
        assert!(n.is_empty());
        // Our own frame reflected back.
        let mut own = fixtures_v6::NS;
        own[6..12].copy_from_slice(&OUR.0);
        let v = handle_nd(
            Instant::ZERO,
            0,
            OUR,
            &mut HeapBuf::from_bytes(&own),
            ours,
            &mut n,
            |_| {},
        );
        assert_eq!(v, NdVerdict::Drop(NdDrop::NotForUs));
    }

    #[test]
    fn resolution_round_trip_releases_queue() {
        // We resolve 2001:2::2: the table asks, we build the NS, the peer (played by handle_nd
        // with the peer's MAC and address) answers, and its NA releases our queue.
        let mut n = table();
        n.queue(Instant::ZERO, 0, a("2001:2::2"), 42, 86).unwrap();
        let mut sol = Vec::new();
        n.drain_solicits(|s| sol.push(s));
        assert_eq!(sol.len(), 1);
        let mut b = HeapBuf::new();
        build_solicit_for(&mut b, OUR, a("2001:2::1"), &sol[0]).unwrap();
        let (edst, _, src, dst, hops, repr, ok) = decode(b.data());
        assert_eq!(
            (edst, src, dst, hops),
            (
                MacAddr([0x33, 0x33, 0xff, 0, 0, 2]),
                a("2001:2::1"),
                a("ff02::1:ff00:2"),
                255
            )
        );
        assert!(ok);
        assert_eq!(
            repr,
            NdRepr::Solicit {
                target: a("2001:2::2"),
                source_lladdr: Some(OUR)
            }
        );
        let mut peer_table = table();
        let v = handle_nd(
            Instant::ZERO,
            0,
            PEER,
            &mut b,
            |x| x == a("2001:2::2"),
            &mut peer_table,
            |_| {},
        );
        assert_eq!(v, NdVerdict::Reply);
        assert_eq!(
            peer_table.resolve(Instant::ZERO, 0, a("2001:2::1")),
            Resolve::Known(OUR)
        );
        let mut out = Vec::new();
        let v = handle_nd(Instant::ZERO, 0, OUR, &mut b, ours, &mut n, |q| out.push(q));
        assert_eq!(v, NdVerdict::Consumed);
        assert_eq!(out, [42]);
        assert_eq!(
            n.get(0, a("2001:2::2")).unwrap().state,
            NeighState::Reachable
        );
        assert_eq!(
            n.resolve(Instant::ZERO, 0, a("2001:2::2")),
            Resolve::Known(PEER)
        );
    }

    #[test]
    fn unicast_probe_and_unsolicited_na() {
        let mut b = HeapBuf::new();
        build_solicit(&mut b, OUR, a("2001:2::1"), a("2001:2::2"), Some(PEER)).unwrap();
        let (edst, _, _, dst, _, _, ok) = decode(b.data());
        assert_eq!((edst, dst), (PEER, a("2001:2::2")));
        assert!(ok);

        build_unsolicited_na(&mut b, OUR, a("2001:2::100")).unwrap();
        let (edst, esrc, src, dst, hops, repr, ok) = decode(b.data());
        assert_eq!(
            (edst, esrc, src, dst, hops),
            (
                multicast_mac(ALL_NODES),
                OUR,
                a("2001:2::100"),
                ALL_NODES,
                255
            )
        );
        assert!(ok);
        assert!(
            matches!(repr, NdRepr::Advert { flags, target_lladdr: Some(OUR), .. }
            if !flags.solicited && flags.override_)
        );
        // Another node receiving it updates an existing entry (O set: the new MAC is taken)...
        let mut n = table();
        n.update_nd(
            Instant::ZERO,
            0,
            a("2001:2::100"),
            Some(PEER),
            NdUpdate {
                create: true,
                reachable: true,
                override_: true,
            },
            |_| {},
        );
        let v = handle_nd(Instant::ZERO, 0, PEER, &mut b, |_| false, &mut n, |_| {});
        assert_eq!(v, NdVerdict::Consumed);
        let e = n.get(0, a("2001:2::100")).unwrap();
        assert_eq!((e.state, e.mac), (NeighState::Stale, Some(OUR)));
        // ...and we, receiving an NA for our own address from someone else, count a conflict.
        let mut theirs = HeapBuf::new();
        build_unsolicited_na(&mut theirs, PEER, a("2001:2::100")).unwrap();
        let v = handle_nd(Instant::ZERO, 0, OUR, &mut theirs, ours, &mut n, |_| {});
        assert_eq!(v, NdVerdict::Drop(NdDrop::AddressConflict));
        let mut tiny = HeapBuf::with_capacity(0, 20);
        assert_eq!(
            build_unsolicited_na(&mut tiny, OUR, a("2001:2::1")),
            Err(NoRoom)
        );
    }

    #[test]
    fn learn_only_learns_without_answering() {
        let mut n = table();
        let b = HeapBuf::from_bytes(&fixtures_v6::NS);
        learn_only(Instant::ZERO, 0, OUR, &b, ours, &mut n, |_| {});
        assert_eq!(b.data(), &fixtures_v6::NS[..]);
        assert_eq!(n.get(0, a("2001:2::2")).unwrap().mac, Some(PEER));
    }

    /// Recompute the ICMPv6 checksum of an ND frame after a test edited it.
    fn refill(frame: &mut [u8]) {
        let ip = ipv6::Packet::new_checked(&frame[14..]).unwrap();
        let (s, d, plen) = (ip.src_addr(), ip.dst_addr(), usize::from(ip.payload_len()));
        icmpv6::Packet::new_checked(&mut frame[54..54 + plen])
            .unwrap()
            .fill_checksum(s, d);
    }

    #[test]
    fn rfc4861_validation() {
        let run = |frame: &[u8]| {
            let mut n = table();
            let v = handle_nd(
                Instant::ZERO,
                0,
                OUR,
                &mut HeapBuf::from_bytes(frame),
                ours,
                &mut n,
                |_| {},
            );
            (v, n.len())
        };
        let drop = |d| (NdVerdict::Drop(d), 0);
        // Hop limit below 255: possibly routed.
        let mut f = fixtures_v6::NS;
        f[21] = 254;
        assert_eq!(run(&f), drop(NdDrop::Malformed));
        // Code 1.
        let mut f = fixtures_v6::NS;
        f[55] = 1;
        refill(&mut f);
        assert_eq!(run(&f), drop(NdDrop::Malformed));
        // Bad checksum.
        let mut f = fixtures_v6::NS;
        f[56] ^= 0x10;
        assert_eq!(run(&f), drop(NdDrop::BadChecksum));
        // Multicast target.
        let mut f = fixtures_v6::NS;
        f[62..78].copy_from_slice(&ALL_NODES.octets());
        refill(&mut f);
        assert_eq!(run(&f), drop(NdDrop::Malformed));
        // Option of length 0.
        let mut f = fixtures_v6::NS;
        f[79] = 0;
        refill(&mut f);
        assert_eq!(run(&f), drop(NdDrop::Malformed));
        // DAD probe to a unicast address, or with an SLLA option.
        let mut f = fixtures_v6::DAD_NS;
        f[38..54].copy_from_slice(&a("2001:2::1").octets());
        refill(&mut f);
        assert_eq!(run(&f), drop(NdDrop::Malformed));
        let mut f = fixtures_v6::NS;
        f[22..38].fill(0);
        refill(&mut f);
        assert_eq!(run(&f), drop(NdDrop::Malformed));
        // A solicited NA to a multicast group.
        let mut f = fixtures_v6::NA;
        f[38..54].copy_from_slice(&ALL_NODES.octets());
        refill(&mut f);
        assert_eq!(run(&f), drop(NdDrop::Malformed));
        // Truncated below 24 bytes of message; not IPv6; short frame.
        assert_eq!(run(&fixtures_v6::NS[..70]), drop(NdDrop::Malformed));
        let mut f = fixtures_v6::NS;
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(run(&f), drop(NdDrop::Malformed));
        assert_eq!(run(&fixtures_v6::NS[..10]), drop(NdDrop::Malformed));
        // The unedited frames pass.
        assert_eq!(run(&fixtures_v6::NS), (NdVerdict::Reply, 1));
        assert_eq!(run(&fixtures_v6::DAD_NS), (NdVerdict::Reply, 0));
        assert_eq!(wire_error(Error::BadChecksum), NdDrop::BadChecksum);
        assert_eq!(NdDrop::AddressConflict.label(), "nd_address_conflict");
    }

    proptest! {
        #[test]
        fn random_frames_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..120), fix in any::<bool>()) {
            if fix && data.len() >= 62 {
                // Ethernet IPv6, version 6, payload length to the end, ICMPv6, hop limit 255.
                let plen = (data.len() - 54) as u16;
                data[12..14].copy_from_slice(&[0x86, 0xdd]);
                data[14] = 0x60;
                data[18..20].copy_from_slice(&plen.to_be_bytes());
                data[20] = 58;
                data[21] = 255;
                data[54] = 135 + (data[54] & 1);
                data[55] = 0;
                refill(&mut data);
            }
            let mut n = NeighTable::<u32, Ipv6Addr>::new(NeighConfig { max_entries: 4, ..NeighConfig::default() });
            let mut b = HeapBuf::from_bytes(&data);
            if handle_nd(Instant::ZERO, 0, OUR, &mut b, |_| true, &mut n, |_| {}) == NdVerdict::Reply {
                let (_, _, _, _, hops, _, ok) = decode(b.data());
                prop_assert!(ok && hops == 255);
            }
            learn_only(Instant::ZERO, 0, OUR, &HeapBuf::from_bytes(&data), |_| false, &mut n, |_| {});
        }
    }
}
