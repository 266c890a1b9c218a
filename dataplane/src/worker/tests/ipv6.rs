//! IPv6 at layer 3 (`worker::v6`): Neighbour Discovery answered and learnt, duplicate address
//! detection defended, echo answered and routed back through the IPv6 neighbour table (which
//! solicits an unknown next hop and holds the reply meanwhile), the extension-header policy's
//! drops counted, and what rvs does not serve dropped or given to the kernel twin.
//!
//! Frames are built here byte by byte and every ICMPv6 checksum rvs writes is checked with the
//! plain RFC 1071 sum of `testutil::ones_sum` over the RFC 8200 pseudo header, not with the
//! crate's checksum code.

use std::net::Ipv6Addr;

use super::*;
use crate::l3::neigh::NeighState;
use crate::worker::StaticNeigh;

const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x99);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// The harness with 2001:2::1/64 owned on the client port.
fn v6_harness() -> Harness {
    let mut h = Harness::new();
    let mut t = (*tables(&mut h.services, h.timeouts)).clone();
    t.addrs.add6(CLIENT_NET, DIP6, 64).unwrap();
    t.v6.routes = RouteTable::with_connected6(&t.addrs);
    h.worker.set_tables(Arc::new(t));
    h
}

/// The solicited-node group of `a` and its MAC.
fn solicited(a: Ipv6Addr) -> (Ipv6Addr, [u8; 6]) {
    let o = a.octets();
    let g = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    );
    (g, [0x33, 0x33, 0xff, o[13], o[14], o[15]])
}

/// The ICMPv6 checksum of `msg` (checksum field zero) between `src` and `dst`.
fn icmp6_sum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    ones_sum(&[&pseudo, msg])
}

/// Ethernet + IPv6 (+ `ext` raw extension headers, whose first next header is `first`) +
/// `payload`.
#[allow(clippy::too_many_arguments)]
fn v6_frame(
    eth_dst: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    first: u8,
    hop_limit: u8,
    ext: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&CLIENT_MAC.0);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((ext.len() + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[first, hop_limit]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(ext);
    f.extend_from_slice(payload);
    f
}

/// An ICMPv6 message with its checksum.
fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(body);
    let c = icmp6_sum(src, dst, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// The client's Neighbour Solicitation for `target` (from `src`, with its link-layer address
/// unless `src` is `::`).
fn client_ns(src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let (group, gmac) = solicited(target);
    let mut body = vec![0; 4];
    body.extend_from_slice(&target.octets());
    if !src.is_unspecified() {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&CLIENT_MAC.0);
    }
    v6_frame(
        gmac,
        src,
        group,
        58,
        255,
        &[],
        &icmp6(src, group, 135, &body),
    )
}

/// The client's solicited advertisement of its own address to `to` (S and O, its MAC).
fn client_na(to: Ipv6Addr) -> Vec<u8> {
    let mut body = vec![0x60, 0, 0, 0];
    body.extend_from_slice(&CIP6.octets());
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&CLIENT_MAC.0);
    v6_frame(
        PORT0_MAC.0,
        CIP6,
        to,
        58,
        255,
        &[],
        &icmp6(CIP6, to, 136, &body),
    )
}

fn echo_request(src: Ipv6Addr, dst: Ipv6Addr, seq: u16) -> Vec<u8> {
    let mut body = vec![0x12, 0x34];
    body.extend_from_slice(&seq.to_be_bytes());
    body.extend_from_slice(b"rvs ping6 payload");
    v6_frame(
        PORT0_MAC.0,
        src,
        dst,
        58,
        64,
        &[],
        &icmp6(src, dst, 128, &body),
    )
}

/// An ICMPv6 frame rvs sent, read and checked independently.
#[derive(Debug)]
struct Sent6 {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    hop_limit: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg: Vec<u8>,
}

fn read6(f: &[u8]) -> Sent6 {
    assert_eq!(&f[12..14], &[0x86, 0xdd], "ethertype");
    assert_eq!(f[14] >> 4, 6, "version");
    let plen = usize::from(u16::from_be_bytes([f[18], f[19]]));
    assert_eq!(f.len(), 54 + plen, "payload length matches the frame");
    assert_eq!(f[20], 58, "next header ICMPv6");
    let ip = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap());
    let (src, dst) = (ip(22), ip(38));
    let msg = f[54..].to_vec();
    assert_eq!(
        {
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 58]);
            ones_sum(&[&pseudo, &msg])
        },
        0,
        "ICMPv6 checksum verifies"
    );
    Sent6 {
        eth_dst: f[0..6].try_into().unwrap(),
        eth_src: f[6..12].try_into().unwrap(),
        hop_limit: f[21],
        src,
        dst,
        msg,
    }
}

#[test]
fn solicitation_for_an_owned_address_is_answered_and_teaches_the_solicitor() {
    let mut h = v6_harness();
    let out = h.rx(CLIENT_NET, client_ns(CIP6, DIP6));
    assert_eq!(out.len(), 1, "{out:?}");
    let (port, f) = &out[0];
    assert_eq!(*port, CLIENT_NET);
    let na = read6(f);
    assert_eq!(na.eth_dst, CLIENT_MAC.0);
    assert_eq!(na.eth_src, PORT0_MAC.0);
    assert_eq!((na.src, na.dst, na.hop_limit), (DIP6, CIP6, 255));
    assert_eq!(na.msg.len(), 32);
    assert_eq!(
        (na.msg[0], na.msg[1]),
        (136, 0),
        "a neighbour advertisement"
    );
    assert_eq!(na.msg[4], 0x60, "solicited and override, not router");
    assert_eq!(&na.msg[8..24], &DIP6.octets());
    assert_eq!(&na.msg[24..26], &[2, 1], "target link-layer address option");
    assert_eq!(&na.msg[26..32], &PORT0_MAC.0);
    // The solicitor is learnt, stale until used (RFC 4861 7.2.3).
    let n: Vec<_> = h.worker.neighs6().collect();
    assert_eq!(n.len(), 1);
    assert_eq!(
        (n[0].port, n[0].ip, n[0].mac, n[0].state),
        (CLIENT_NET, CIP6, Some(CLIENT_MAC), NeighState::Stale)
    );
    assert_eq!(h.worker.drops().total(), 0);
}

#[test]
fn duplicate_address_detection_probe_is_defended() {
    let mut h = v6_harness();
    let out = h.rx(CLIENT_NET, client_ns(Ipv6Addr::UNSPECIFIED, DIP6));
    assert_eq!(out.len(), 1, "{out:?}");
    let na = read6(&out[0].1);
    assert_eq!(na.eth_dst, ALL_NODES_MAC);
    assert_eq!(na.dst, "ff02::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(na.src, DIP6);
    assert_eq!(na.msg[0], 136);
    assert_eq!(na.msg[4], 0x20, "override only: not solicited");
    assert_eq!(&na.msg[8..24], &DIP6.octets());
    assert_eq!(&na.msg[26..32], &PORT0_MAC.0);
    // The prober has no address yet: nothing learnt.
    assert_eq!(h.worker.neighs6().count(), 0);
}

#[test]
fn solicitations_not_for_us_and_conflicting_advertisements_are_counted() {
    let mut h = v6_harness();
    h.expect_drop(CLIENT_NET, client_ns(CIP6, OTHER6), DropReason::NdNotForUs);
    // The same solicitation on the other port: the address is not owned there.
    let mut f = client_ns(CIP6, DIP6);
    f[..6].copy_from_slice(&solicited(DIP6).1);
    h.expect_drop(SERVER_NET, f, DropReason::NdNotForUs);
    // Routed ND (hop limit below 255) is malformed.
    let mut f = client_ns(CIP6, DIP6);
    f[21] = 64;
    h.expect_drop(CLIENT_NET, f, DropReason::NdMalformed);
    // A bad checksum.
    let mut f = client_ns(CIP6, DIP6);
    let last = f.len() - 1;
    f[last] ^= 0x55;
    h.expect_drop(CLIENT_NET, f, DropReason::L4BadChecksum);
    // Another node claims our address.
    let mut body = vec![0x20, 0, 0, 0];
    body.extend_from_slice(&DIP6.octets());
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&CLIENT_MAC.0);
    let all: Ipv6Addr = "ff02::1".parse().unwrap();
    let na = v6_frame(
        ALL_NODES_MAC,
        CIP6,
        all,
        58,
        255,
        &[],
        &icmp6(CIP6, all, 136, &body),
    );
    h.expect_drop(CLIENT_NET, na, DropReason::NdAddressConflict);
}

#[test]
fn echo_to_an_unresolved_client_solicits_it_and_the_reply_waits_for_the_advertisement() {
    let mut h = v6_harness();
    let req = echo_request(CIP6, DIP6, 1);
    let out = h.rx(CLIENT_NET, req.clone());
    // The reply waits; a solicitation for the client goes out to its solicited-node group.
    assert_eq!(out.len(), 1, "{out:?}");
    let ns = read6(&out[0].1);
    let (group, gmac) = solicited(CIP6);
    assert_eq!((ns.eth_dst, ns.eth_src), (gmac, PORT0_MAC.0));
    assert_eq!((ns.src, ns.dst, ns.hop_limit), (DIP6, group, 255));
    assert_eq!(ns.msg[0], 135);
    assert_eq!(&ns.msg[8..24], &CIP6.octets());
    assert_eq!(&ns.msg[24..26], &[1, 1], "source link-layer address option");
    assert_eq!(&ns.msg[26..32], &PORT0_MAC.0);
    let n = h.worker.neighs6().next().unwrap();
    assert_eq!((n.state, n.queued), (NeighState::Incomplete, 1));
    // The client answers: the reply leaves, to the MAC just learnt.
    let out = h.rx(CLIENT_NET, client_na(DIP6));
    assert_eq!(out.len(), 1, "{out:?}");
    let reply = read6(&out[0].1);
    assert_eq!((reply.eth_dst, reply.eth_src), (CLIENT_MAC.0, PORT0_MAC.0));
    assert_eq!((reply.src, reply.dst), (DIP6, CIP6));
    assert_eq!(reply.msg[0], 129, "echo reply");
    assert_eq!(
        &reply.msg[4..],
        &req[58..],
        "identifier, sequence and data echoed"
    );
    let n = h.worker.neighs6().next().unwrap();
    assert_eq!((n.state, n.queued), (NeighState::Reachable, 0));
    // The next request is answered at once.
    let out = h.rx(CLIENT_NET, echo_request(CIP6, DIP6, 2));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(read6(&out[0].1).msg[0], 129);
    assert_eq!(h.worker.drops().total(), 0, "{:?}", h.worker.drops());
}

#[test]
fn unresolved_next_hop_is_solicited_again_then_fails() {
    let mut h = v6_harness();
    let out = h.rx(CLIENT_NET, echo_request(CIP6, DIP6, 1));
    assert_eq!(out.len(), 1);
    // Nobody answers: the solicitation is retransmitted, then the waiting reply is dropped.
    let mut solicits = 1;
    for _ in 0..10 {
        h.advance(1);
        solicits += h
            .tick()
            .iter()
            .filter(|(_, f)| read6(f).msg[0] == 135)
            .count();
    }
    assert_eq!(solicits, 3, "mcast_solicit (3) solicitations");
    assert_eq!(h.drops(DropReason::NeighTimeout), 1);
}

#[test]
fn echo_replies_share_the_echo_budget() {
    let mut h = v6_harness();
    h.rx(CLIENT_NET, client_ns(CIP6, DIP6));
    // The default budget: a burst of 50 at one instant, then nothing until time passes.
    let burst = crate::l3::ratelimit::IcmpLimits::default().burst as u16;
    for seq in 0..burst {
        assert_eq!(h.rx(CLIENT_NET, echo_request(CIP6, DIP6, seq)).len(), 1);
    }
    h.expect_drop(
        CLIENT_NET,
        echo_request(CIP6, DIP6, burst),
        DropReason::IcmpRateLimited,
    );
    h.advance(1);
    assert_eq!(h.rx(CLIENT_NET, echo_request(CIP6, DIP6, 0)).len(), 1);
}

#[test]
fn echo_to_an_address_we_do_not_own_is_not_answered() {
    let mut h = v6_harness();
    h.expect_drop(
        CLIENT_NET,
        echo_request(CIP6, OTHER6, 1),
        DropReason::NotForUs,
    );
    // From a multicast source: never answered.
    h.expect_drop(
        CLIENT_NET,
        echo_request("ff02::1".parse().unwrap(), DIP6, 1),
        DropReason::MartianSource,
    );
}

#[test]
fn extension_header_policy_drops_are_counted() {
    let mut h = v6_harness();
    let udp = [0x13, 0x89, 0, 53, 0, 8, 0, 0];
    // A first fragment (offset 0, M set).
    let frag = [17, 0, 0, 1, 0xca, 0xfe, 0xf0, 0x0d];
    h.expect_drop(
        CLIENT_NET,
        v6_frame(PORT0_MAC.0, CIP6, DIP6, 44, 64, &frag, &udp),
        DropReason::Ipv6Fragment,
    );
    // An atomic fragment passes the policy (then: not served).
    let atomic = [17, 0, 0, 0, 0xca, 0xfe, 0xf0, 0x0d];
    h.expect_drop(
        CLIENT_NET,
        v6_frame(PORT0_MAC.0, CIP6, DIP6, 44, 64, &atomic, &udp),
        DropReason::Ipv6NotServed,
    );
    // A routing header with one segment left.
    let mut rh = vec![17, 2, 0, 1, 0, 0, 0, 0];
    rh.extend_from_slice(&OTHER6.octets());
    h.expect_drop(
        CLIENT_NET,
        v6_frame(PORT0_MAC.0, CIP6, DIP6, 43, 64, &rh, &udp),
        DropReason::Ipv6RoutingHeader,
    );
    // Nine destination options headers.
    let mut chain = Vec::new();
    for i in 0..9 {
        chain.extend_from_slice(&[if i == 8 { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    h.expect_drop(
        CLIENT_NET,
        v6_frame(PORT0_MAC.0, CIP6, DIP6, 60, 64, &chain, &udp),
        DropReason::Ipv6ExtHeadersTooMany,
    );
    // A destination options header running past the payload.
    h.expect_drop(
        CLIENT_NET,
        v6_frame(PORT0_MAC.0, CIP6, DIP6, 60, 64, &[17, 4, 1, 4], &[]),
        DropReason::Ipv6ExtMalformed,
    );
    // Hop-by-hop options not first.
    let chain = [0, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
    h.expect_drop(
        CLIENT_NET,
        v6_frame(PORT0_MAC.0, CIP6, DIP6, 60, 64, &chain, &udp),
        DropReason::Ipv6ExtMalformed,
    );
    // The fixed header: a wrong version, a payload length beyond the frame.
    let mut f = echo_request(CIP6, DIP6, 1);
    f[14] = 0x40;
    h.expect_drop(CLIENT_NET, f, DropReason::Ipv6Malformed);
    let mut f = echo_request(CIP6, DIP6, 1);
    f[19] += 1;
    h.expect_drop(CLIENT_NET, f, DropReason::Ipv6BadLength);
    h.expect_drop(
        CLIENT_NET,
        echo_request(CIP6, DIP6, 1)[..40].to_vec(),
        DropReason::Ipv6Malformed,
    );
}

#[test]
fn other_ipv6_traffic_is_not_served_or_not_ours_and_the_twin_gets_the_directors() {
    let mut h = v6_harness();
    let udp = [0x13, 0x89, 0, 53, 0, 8, 0, 0];
    let to_us = v6_frame(PORT0_MAC.0, CIP6, DIP6, 17, 64, &[], &udp);
    let link_local = v6_frame(
        PORT0_MAC.0,
        "fe80::2".parse().unwrap(),
        "fe80::1".parse().unwrap(),
        6,
        64,
        &[],
        &[0; 20],
    );
    let mld = v6_frame(
        [0x33, 0x33, 0, 0, 0, 0x16],
        CIP6,
        "ff02::16".parse().unwrap(),
        58,
        1,
        &[],
        &icmp6(CIP6, "ff02::16".parse().unwrap(), 143, &[0; 4]),
    );
    let transit = v6_frame(PORT0_MAC.0, CIP6, OTHER6, 17, 64, &[], &udp);
    h.expect_drop(CLIENT_NET, to_us.clone(), DropReason::Ipv6NotServed);
    h.expect_drop(CLIENT_NET, link_local.clone(), DropReason::Ipv6NotServed);
    h.expect_drop(CLIENT_NET, mld.clone(), DropReason::Ipv6NotServed);
    h.expect_drop(CLIENT_NET, transit.clone(), DropReason::NotForUs);
    // With a kernel twin, the director's own go to it unchanged, as do solicitations for
    // targets rvs does not own (the twin's link-local address); advertisements are learnt and
    // copied; transit stays dropped.
    h.io.twins = vec![CLIENT_NET];
    let ns_other = client_ns(CIP6, "fe80::1".parse().unwrap());
    for f in [to_us, link_local, mld, ns_other] {
        let drops = h.worker.drops().total();
        assert!(h.rx(CLIENT_NET, f.clone()).is_empty());
        assert_eq!(h.worker.drops().total(), drops);
        assert_eq!(h.io.kernel.pop(), Some((CLIENT_NET, f)));
    }
    h.expect_drop(CLIENT_NET, transit, DropReason::NotForUs);
    let na = client_na(DIP6);
    assert!(h.rx(CLIENT_NET, na.clone()).is_empty());
    assert_eq!(h.io.kernel.pop(), Some((CLIENT_NET, na)));
    // Solicitations for our address and echo requests stay rvs's.
    assert_eq!(h.rx(CLIENT_NET, client_ns(CIP6, DIP6)).len(), 1);
    assert_eq!(h.rx(CLIENT_NET, echo_request(CIP6, DIP6, 1)).len(), 1);
    assert!(h.io.kernel.is_empty());
}

#[test]
fn addresses_are_announced_once_and_static_neighbours_installed() {
    let mut h = v6_harness();
    let mut t = (**h.worker.tables()).clone();
    t.v6.static_neighs.push(StaticNeigh {
        port: CLIENT_NET,
        ip: CIP6,
        mac: CLIENT_MAC,
    });
    h.worker.set_tables(Arc::new(t));
    let out = h.tick();
    assert_eq!(out.len(), 1, "{out:?}");
    let na = read6(&out[0].1);
    assert_eq!(
        (na.eth_dst, na.src, na.hop_limit),
        (ALL_NODES_MAC, DIP6, 255)
    );
    assert_eq!((na.msg[0], na.msg[4]), (136, 0x20), "unsolicited, override");
    assert_eq!(&na.msg[8..24], &DIP6.octets());
    assert!(h.tick().is_empty(), "announced once");
    // The static neighbour answers at once: the echo reply leaves without a solicitation.
    let out = h.rx(CLIENT_NET, echo_request(CIP6, DIP6, 1));
    assert_eq!(out.len(), 1);
    assert_eq!(read6(&out[0].1).eth_dst, CLIENT_MAC.0);
    let n = h.worker.neighs6().next().unwrap();
    assert_eq!(n.state, NeighState::Permanent);
    assert!(h.worker.del_neigh6(CLIENT_NET, CIP6));
    assert_eq!(h.worker.neighs6().count(), 0);
}

#[test]
fn the_ipv4_path_is_unchanged_beside_ipv6() {
    let mut h = v6_harness();
    h.learn_all();
    let v = h.client_to_rs(40000, SYN, b"");
    assert_eq!(v.dport, 80);
    // IPv4 to an IPv6 multicast MAC is not ours.
    let mut f = client_syn(40001);
    f[..6].copy_from_slice(&ALL_NODES_MAC);
    h.expect_drop(CLIENT_NET, f, DropReason::NotOurMac);
}
