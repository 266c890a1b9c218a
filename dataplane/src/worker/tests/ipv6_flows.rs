//! IPv6 connections through the in-memory harness (`worker::flow6`, `worker::v6`, `xmit::apply6`):
//! NAT6, DR6, TUN6, FULLNAT6 with the TOA, NAT64 to IPv4 servers, persistence by /64, ICMPv6
//! errors about connections, the drops of the IPv6 connection path, two workers steering both
//! directions, and random IPv6 frames.
//!
//! Every frame that leaves is read here byte by byte: addresses and ports, hop limit or TTL,
//! the Ethernet addresses the neighbour table gives, and every checksum by full recompute with
//! the plain RFC 1071 sum of `testutil` (never with the crate's checksum code).
//!
//! Addresses: the client network 2001:2::/64 on port 0, the real-server network 2001:2:1::/64
//! on port 1 (IPv4 198.18.0.0/24 and 198.18.1.0/24 beside them for NAT64's IPv4 side).

use std::net::{IpAddr, Ipv6Addr};

use super::*;
use crate::laddr::{LPORT_MIN, Laddr, LaddrStats, LaddrTable};
use crate::persist::PersistTable;
use crate::steer::Owner;
use crate::worker::StaticNeigh;

const fn v6(s: [u16; 8]) -> Ipv6Addr {
    Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
}

const DIP6_0: Ipv6Addr = v6([0x2001, 2, 0, 0, 0, 0, 0, 1]);
const DIP6_1: Ipv6Addr = v6([0x2001, 2, 1, 0, 0, 0, 0, 1]);
const CIP6: Ipv6Addr = v6([0x2001, 2, 0, 0, 0, 0, 0, 2]);
/// A second client in the same /64.
const CIP6_B: Ipv6Addr = v6([0x2001, 2, 0, 0, 0, 0, 0xbeef, 3]);
const VIP6: Ipv6Addr = v6([0x2001, 2, 0, 0, 0, 0, 0, 0x100]);
const RIP6_1: Ipv6Addr = v6([0x2001, 2, 1, 0, 0, 0, 0, 0x11]);
const RIP6_2: Ipv6Addr = v6([0x2001, 2, 1, 0, 0, 0, 0, 0x12]);
const LIP6: Ipv6Addr = v6([0x2001, 2, 1, 0, 0, 0, 0, 5]);
/// NAT64's IPv4 server (RIP1) and local address.
const RIP4: Ipv4Addr = RIP1;
const LIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 5);
const CLIENT_B_MAC: MacAddr = MacAddr([0x02, 0xc0, 0, 0, 0, 0x03]);

const NAT_PORT: u16 = 80;
const UDP_PORT: u16 = 53;
const TUN_PORT: u16 = 8081;
const FNAT_PORT: u16 = 8082;
const DR_PORT: u16 = 8083;
const NAT64_PORT: u16 = 8085;
const PERSIST_PORT: u16 = 8086;

const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];

fn key6(protocol: Protocol, vport: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        vip: VIP6.into(),
        vport,
    }
}

fn rs_mac6(rip: Ipv6Addr) -> MacAddr {
    match rip {
        RIP6_1 => RS1_MAC,
        RIP6_2 => RS2_MAC,
        other => panic!("not a real server: {other}"),
    }
}

/// rr services on VIP6: NAT6 TCP :80 and UDP :53, TUN6, DR6, FULLNAT6 (to port 80), NAT64 (one
/// IPv4 dest, port 80) and a persistent NAT6 service (`-p 300 -M 64`), two IPv6 dests each.
fn services6(workers: usize) -> ServiceTable {
    let mut s = ServiceTable::new(workers);
    let svcs = [
        (key6(Protocol::Tcp, NAT_PORT), NAT_PORT, ForwardMethod::Masq),
        (key6(Protocol::Udp, UDP_PORT), UDP_PORT, ForwardMethod::Masq),
        (
            key6(Protocol::Tcp, TUN_PORT),
            TUN_PORT,
            ForwardMethod::Tunnel,
        ),
        (key6(Protocol::Tcp, DR_PORT), DR_PORT, ForwardMethod::Route),
        (key6(Protocol::Tcp, FNAT_PORT), 80, ForwardMethod::FullNat),
    ];
    for (k, rport, m) in svcs {
        s.add_service(ServiceConfig::new(k, "rr")).unwrap();
        for rip in [RIP6_1, RIP6_2] {
            s.add_dest(&k, DestConfig::new(rip, rport, m)).unwrap();
        }
    }
    let k = key6(Protocol::Tcp, NAT64_PORT);
    s.add_service(ServiceConfig::new(k, "rr")).unwrap();
    s.add_dest(&k, DestConfig::new(RIP4, 80, ForwardMethod::FullNat))
        .unwrap();
    let k = key6(Protocol::Tcp, PERSIST_PORT);
    let mut c = ServiceConfig::new(k, "rr");
    c.persistence = Some(300);
    c.prefix6 = 64;
    s.add_service(c).unwrap();
    for rip in [RIP6_1, RIP6_2] {
        s.add_dest(&k, DestConfig::new(rip, PERSIST_PORT, ForwardMethod::Masq))
            .unwrap();
    }
    s
}

/// The harness tables plus: an IPv6 address on each port and their connected routes, static
/// IPv6 neighbours for both clients and both servers and a static IPv4 one for RIP4, LIP6 for
/// the FULLNAT6 service and LIP4 for the NAT64 one, with the local ports partitioned among
/// `lport_workers`.
fn tables6(
    services: &mut ServiceTable,
    timeouts: Timeouts,
    workers: usize,
    lport_workers: usize,
) -> Arc<Tables> {
    let mut t = (*tables_n(services, timeouts, workers)).clone();
    t.addrs.add6(CLIENT_NET, DIP6_0, 64).unwrap();
    t.addrs.add6(SERVER_NET, DIP6_1, 64).unwrap();
    t.v6.routes = RouteTable::with_connected6(&t.addrs);
    t.v6.static_neighs = vec![
        StaticNeigh {
            port: CLIENT_NET,
            ip: CIP6,
            mac: CLIENT_MAC,
        },
        StaticNeigh {
            port: CLIENT_NET,
            ip: CIP6_B,
            mac: CLIENT_B_MAC,
        },
        StaticNeigh {
            port: SERVER_NET,
            ip: RIP6_1,
            mac: RS1_MAC,
        },
        StaticNeigh {
            port: SERVER_NET,
            ip: RIP6_2,
            mac: RS2_MAC,
        },
    ];
    t.static_neighs = vec![StaticNeigh {
        port: SERVER_NET,
        ip: RIP4,
        mac: RS1_MAC,
    }];
    let mut laddrs = LaddrTable::new(lport_workers);
    for (k, ip) in [
        (key6(Protocol::Tcp, FNAT_PORT), IpAddr::V6(LIP6)),
        (key6(Protocol::Tcp, NAT64_PORT), IpAddr::V4(LIP4)),
    ] {
        let id = services.service(&k).unwrap().id();
        let l = Laddr {
            ip,
            port: SERVER_NET,
            ifname: "dp1".into(),
            stats: Arc::new(LaddrStats::new(lport_workers)),
        };
        laddrs.set(id, vec![l]);
    }
    t.laddrs = Arc::new(laddrs);
    t.persist = Arc::new(PersistTable::new(1024, workers));
    Arc::new(t)
}

fn worker_config(id: usize, workers: usize) -> WorkerConfig {
    WorkerConfig {
        id,
        ports: vec![
            PortSetup {
                mac: PORT0_MAC,
                mtu: 1500,
            },
            PortSetup {
                mac: PORT1_MAC,
                mtu: 1500,
            },
        ],
        conn_capacity: 1024,
        conn_capacity6: 1024,
        neigh: NeighConfig::default(),
        icmp: Default::default(),
        workers,
    }
}

/// One worker on the IPv6 tables (local ports partitioned among `lport_workers`).
fn harness6_with(lport_workers: usize) -> Harness {
    let mut services = services6(1);
    let timeouts = Timeouts::default();
    let tables = tables6(&mut services, timeouts, 1, lport_workers);
    let stats = Arc::new(WorkerStats::default());
    Harness {
        worker: Worker::new(worker_config(0, 1), tables, stats.clone(), 0x5eed),
        io: MockIo::default(),
        now: Instant::from_secs(1_000),
        services,
        timeouts,
        stats,
    }
}

fn harness6() -> Harness {
    harness6_with(1)
}

// ---- Frames ----------------------------------------------------------------------------

/// The plain IPv6 pseudo header.
fn pseudo6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p
}

/// A client TCP segment (CLIENT_MAC -> PORT0_MAC, hop limit 64).
fn c_tcp(
    src: Ipv6Addr,
    sport: u16,
    dport: u16,
    flags: TcpFlags,
    opts: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let mut f = tcp6_frame(src, sport, VIP6, dport, flags.0 as u8, opts, data);
    if src == CIP6_B {
        f[6..12].copy_from_slice(&CLIENT_B_MAC.0);
    }
    f
}

/// The same frame as a server's: `mac` -> PORT1_MAC.
fn on_server(mut f: Vec<u8>, mac: MacAddr) -> Vec<u8> {
    f[0..6].copy_from_slice(&PORT1_MAC.0);
    f[6..12].copy_from_slice(&mac.0);
    f
}

/// A server TCP segment `src:sport -> dst:dport`.
#[allow(clippy::too_many_arguments)]
fn s_tcp(
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    flags: TcpFlags,
    opts: &[u8],
    data: &[u8],
) -> Vec<u8> {
    on_server(
        tcp6_frame(src, sport, dst, dport, flags.0 as u8, opts, data),
        rs_mac6(src),
    )
}

/// An ICMPv6 error (`ty`, `code`, the 4-byte field `word`) quoting `quoted` (an IP packet).
fn icmp6_error(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ty: u8,
    code: u8,
    word: u32,
    quoted: &[u8],
) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&word.to_be_bytes());
    m.extend_from_slice(quoted);
    let c = ones_sum(&[&pseudo6(src, dst, 58, m.len()), &m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ip6_frame(src, dst, 58, &m)
}

/// The TCP options of a segment (header first): `(kind, whole option)`.
fn tcp_options(seg: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let thl = usize::from(seg[12] >> 4) * 4;
    let opts = &seg[20..thl];
    let mut v = Vec::new();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            k => {
                let len = usize::from(opts[i + 1]).max(2);
                v.push((k, opts[i..i + len].to_vec()));
                i += len;
            }
        }
    }
    v
}

/// The TOA option of a segment, in the IPv6 layout (kind 254, length 20): (port, address).
fn toa6(seg: &[u8]) -> Option<(u16, Ipv6Addr)> {
    let all: Vec<_> = tcp_options(seg)
        .into_iter()
        .filter(|o| o.0 == 254)
        .collect();
    assert!(all.len() <= 1, "one TOA at most: {all:?}");
    let o = &all.first()?.1;
    assert_eq!(o.len(), 20, "the IPv6 TOA is 20 bytes: {o:?}");
    Some((
        u16::from_be_bytes([o[2], o[3]]),
        Ipv6Addr::from(<[u8; 16]>::try_from(&o[4..20]).unwrap()),
    ))
}

fn mss(seg: &[u8]) -> Option<u16> {
    tcp_options(seg)
        .into_iter()
        .find(|o| o.0 == 2 && o.1.len() == 4)
        .map(|o| u16::from_be_bytes([o.1[2], o.1[3]]))
}

/// The TCP payload of a segment.
fn tcp_payload(seg: &[u8]) -> &[u8] {
    &seg[usize::from(seg[12] >> 4) * 4..]
}

/// A frame that left: port, Ethernet addresses and the verified IPv6 packet.
fn left6(out: &(PortId, Vec<u8>), port: PortId, eth_dst: MacAddr) -> Verified6 {
    assert_eq!(out.0, port, "left on the wrong port");
    let f = &out.1;
    assert_eq!(&f[0..6], &eth_dst.0, "Ethernet destination");
    let mac = if port == CLIENT_NET {
        PORT0_MAC
    } else {
        PORT1_MAC
    };
    assert_eq!(&f[6..12], &mac.0, "Ethernet source");
    verify_frame6(f).unwrap()
}

impl Harness {
    /// [`Harness::rx`] for an IPv6 frame that must be forwarded: the one frame sent.
    fn rx6(&mut self, port: PortId, frame: Vec<u8>) -> (PortId, Vec<u8>) {
        let mut out = self.rx(port, frame);
        assert_eq!(
            out.len(),
            1,
            "not forwarded: {:?} {out:?}",
            self.worker.drops()
        );
        out.pop().unwrap()
    }

    /// Tick, dropping the unsolicited advertisements of our own addresses.
    fn tick6(&mut self) -> Vec<(PortId, Vec<u8>)> {
        let mut out = self.tick();
        out.retain(|(_, f)| !(f.len() > 54 && f[20] == 58 && f[54] == 136));
        out
    }

    /// `(ActiveConn, InActConn)` of a dest, as `ipvsadm -Ln` shows them.
    fn counts6(&mut self, k: ServiceKey, rip: IpAddr, rport: u16) -> (u64, u64) {
        let snap = self.services.snapshot();
        let svc = snap.services().iter().find(|s| s.key() == k).unwrap();
        let d = svc.find_dest(rip, rport).unwrap();
        (d.active_conns(), d.inactive_conns())
    }

    fn views(&self) -> Vec<crate::worker::ConnView> {
        let mut v: Vec<_> = self.worker.conns(self.now).collect();
        v.sort_by_key(|c| c.client.1);
        v
    }
}

// ---- NAT6 ------------------------------------------------------------------------------

/// NAT6 both ways: the request to a real server with the client's tuple kept, the reply from
/// the VIP; hop limits decremented; the state machine and ActiveConn/InActConn to TIME_WAIT,
/// then expiry on the tick.
#[test]
fn nat6_rewrites_both_directions_and_counts_through_expiry() {
    let mut h = harness6();
    let syn = c_tcp(CIP6, 1000, NAT_PORT, SYN, &MSS_1460, b"");
    let out = h.rx6(CLIENT_NET, syn.clone());
    let rip = Ipv6Addr::from(<[u8; 16]>::try_from(&out.1[38..54]).unwrap());
    let v = left6(&out, SERVER_NET, rs_mac6(rip));
    assert_eq!((v.src, v.sport, v.dst, v.dport), (CIP6, 1000, rip, 80));
    assert_eq!((v.hop_limit, v.proto), (63, 6));
    // Only the destination address changed (and the checksum with it): the segment is the
    // client's but for its checksum.
    let (mut a, mut b) = (v.l4.clone(), syn[54..].to_vec());
    a[16..18].fill(0);
    b[16..18].fill(0);
    assert_eq!(a, b);
    assert_eq!(out.1.len(), syn.len());
    let views = h.views();
    assert_eq!(views.len(), 1);
    let c = &views[0];
    assert_eq!(
        (c.proto, c.state, c.client, c.virt, c.dest),
        (
            6,
            "SYN_RECV",
            (CIP6.into(), 1000),
            (VIP6.into(), NAT_PORT),
            (rip.into(), 80)
        )
    );
    let k = key6(Protocol::Tcp, NAT_PORT);
    let other = if rip == RIP6_1 { RIP6_2 } else { RIP6_1 };
    // As the IPv4 path counts a new connection (see `a_client_port_reused_…`).
    assert_eq!(h.counts6(k, rip.into(), 80), (1, 0));
    assert_eq!(h.counts6(k, other.into(), 80), (0, 0));

    // The SYN-ACK: from the VIP to the client.
    let sa = s_tcp(rip, 80, CIP6, 1000, SYN_ACK, &MSS_1460, b"");
    let out = h.rx6(SERVER_NET, sa.clone());
    let v = left6(&out, CLIENT_NET, CLIENT_MAC);
    assert_eq!((v.src, v.sport, v.dst, v.dport), (VIP6, 80, CIP6, 1000));
    assert_eq!(v.hop_limit, 63);
    assert_eq!(mss(&v.l4), Some(1460), "NAT6 leaves the MSS alone");

    let out = h.rx6(CLIENT_NET, c_tcp(CIP6, 1000, NAT_PORT, ACK, &[], b""));
    assert_eq!(left6(&out, SERVER_NET, rs_mac6(rip)).dst, rip);
    let out = h.rx6(
        CLIENT_NET,
        c_tcp(CIP6, 1000, NAT_PORT, PSH_ACK, &[], b"GET /"),
    );
    assert_eq!(
        tcp_payload(&left6(&out, SERVER_NET, rs_mac6(rip)).l4),
        b"GET /"
    );
    assert_eq!(h.state(1000), "ESTABLISHED");
    assert_eq!(h.counts6(k, rip.into(), 80), (1, 0));

    h.rx6(CLIENT_NET, c_tcp(CIP6, 1000, NAT_PORT, FIN_ACK, &[], b""));
    assert_eq!(h.state(1000), "CLOSE_WAIT");
    assert_eq!(h.counts6(k, rip.into(), 80), (0, 1));
    let out = h.rx6(SERVER_NET, s_tcp(rip, 80, CIP6, 1000, FIN_ACK, &[], b""));
    assert_eq!(left6(&out, CLIENT_NET, CLIENT_MAC).src, VIP6);
    assert_eq!(h.state(1000), "TIME_WAIT");
    assert_eq!(h.counts6(k, rip.into(), 80), (0, 1));

    // Expiry: TIME_WAIT lasts 120 s.
    let tw = h.views()[0].expires_in;
    assert!((119..=120).contains(&tw), "TIME_WAIT expires in {tw}");
    h.advance(tw + 2);
    assert!(h.tick6().is_empty());
    assert_eq!(h.worker.conn_count(), 0);
    assert_eq!(h.views().len(), 0);
    assert_eq!(h.counts6(k, rip.into(), 80), (0, 0));
    // A late segment of the gone connection opens nothing.
    h.expect_drop(
        CLIENT_NET,
        c_tcp(CIP6, 1000, NAT_PORT, ACK, &[], b""),
        DropReason::TcpNoConnection,
    );
    assert_eq!(h.worker.drops().total(), 1, "{:?}", h.worker.drops());
}

/// A UDP datagram over NAT6 both ways.
#[test]
fn nat6_udp_both_ways() {
    let mut h = harness6();
    let q = udp6_frame(CIP6, 5353, VIP6, UDP_PORT, b"query");
    let out = h.rx6(CLIENT_NET, q);
    let rip = Ipv6Addr::from(<[u8; 16]>::try_from(&out.1[38..54]).unwrap());
    let v = left6(&out, SERVER_NET, rs_mac6(rip));
    assert_eq!((v.src, v.sport, v.dport, v.proto), (CIP6, 5353, 53, 17));
    assert_eq!(&v.l4[8..], b"query");
    let r = on_server(udp6_frame(rip, 53, CIP6, 5353, b"answer"), rs_mac6(rip));
    let v = left6(&h.rx6(SERVER_NET, r), CLIENT_NET, CLIENT_MAC);
    assert_eq!((v.src, v.sport, v.dst, v.dport), (VIP6, 53, CIP6, 5353));
    assert_eq!(&v.l4[8..], b"answer");
    assert_eq!(h.state(5353), "UDP");
}

// ---- DR6 and TUN6 ----------------------------------------------------------------------

#[test]
fn dr6_changes_only_the_ethernet_destination() {
    let mut h = harness6();
    let mut rips = Vec::new();
    for cport in [100, 101] {
        let f = c_tcp(CIP6, cport, DR_PORT, SYN, &[], b"");
        let out = h.rx6(CLIENT_NET, f.clone());
        assert_eq!(out.0, SERVER_NET);
        assert_eq!(
            &out.1[14..],
            &f[14..],
            "IPv6 packet untouched, hop limit included"
        );
        assert_eq!(out.1[21], 64);
        assert_eq!(&out.1[6..12], &PORT1_MAC.0);
        let rip = if out.1[0..6] == RS1_MAC.0 {
            RIP6_1
        } else {
            assert_eq!(&out.1[0..6], &RS2_MAC.0);
            RIP6_2
        };
        rips.push(rip);
    }
    assert_ne!(rips[0], rips[1], "rr alternates");
    let v = h.views();
    assert_eq!(v[0].dest, (rips[0].into(), DR_PORT));
    assert_eq!(v[0].virt, (VIP6.into(), DR_PORT));
    // Input-only states: the client's ACK establishes.
    h.rx6(CLIENT_NET, c_tcp(CIP6, 100, DR_PORT, ACK, &[], b""));
    assert_eq!(h.state(100), "ESTABLISHED");
    assert_eq!(
        h.counts6(key6(Protocol::Tcp, DR_PORT), rips[0].into(), DR_PORT),
        (1, 0)
    );
}

#[test]
fn tun6_encapsulates_from_the_port_address_and_answers_too_big() {
    let mut h = harness6();
    let f = c_tcp(CIP6, 200, TUN_PORT, SYN, &[], b"");
    let out = h.rx6(CLIENT_NET, f.clone());
    assert_eq!(out.0, SERVER_NET);
    let o = &out.1;
    assert_eq!(&o[12..14], &[0x86, 0xdd]);
    assert_eq!(o[14] >> 4, 6);
    assert_eq!(o[20], 41, "next header: IPv6");
    assert_eq!(
        usize::from(u16::from_be_bytes([o[18], o[19]])),
        f.len() - 14
    );
    assert_eq!(o.len(), f.len() + 40);
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&o[22..38]).unwrap());
    let rip = Ipv6Addr::from(<[u8; 16]>::try_from(&o[38..54]).unwrap());
    assert_eq!(
        src, DIP6_1,
        "from the director's address on the server port"
    );
    assert!(rip == RIP6_1 || rip == RIP6_2);
    assert_eq!(
        (&o[0..6], &o[6..12]),
        (&rs_mac6(rip).0[..], &PORT1_MAC.0[..])
    );
    assert_eq!(
        &o[54..],
        &f[14..],
        "the inner packet unchanged, hop limit included"
    );
    assert_eq!(h.views()[0].dest, (rip.into(), TUN_PORT));

    // An inner packet of 1500 bytes does not fit with 40 more on a 1500-byte link: Packet Too
    // Big with MTU 1460, from the VIP to the client, quoting as much as fits in 1280 bytes.
    let big = c_tcp(CIP6, 200, TUN_PORT, PSH_ACK, &[], &[7; 1440]);
    assert_eq!(big.len(), 14 + 1500);
    let out = h.rx6(CLIENT_NET, big.clone());
    let v = left6(&out, CLIENT_NET, CLIENT_MAC);
    assert_eq!((v.src, v.dst, v.proto), (VIP6, CIP6, 58));
    assert_eq!(out.1.len(), 14 + 1280);
    assert_eq!((v.l4[0], v.l4[1]), (2, 0), "Packet Too Big");
    assert_eq!(u32::from_be_bytes(v.l4[4..8].try_into().unwrap()), 1460);
    assert_eq!(&v.l4[8..], &big[14..14 + 1280 - 48]);
    assert_eq!(h.drops(DropReason::TunTooBig), 1);
    // An inner packet of exactly 1460 bytes fits; one byte more does not.
    let fits = c_tcp(CIP6, 200, TUN_PORT, PSH_ACK, &[], &[7; 1400]);
    let out = h.rx6(CLIENT_NET, fits);
    assert_eq!((out.0, out.1.len()), (SERVER_NET, 14 + 1500));
    let over = c_tcp(CIP6, 200, TUN_PORT, PSH_ACK, &[], &[7; 1401]);
    assert_eq!(h.rx6(CLIENT_NET, over).0, CLIENT_NET);
    assert_eq!(h.drops(DropReason::TunTooBig), 2);
}

// ---- FULLNAT6 --------------------------------------------------------------------------

/// Client -> VIP6:FNAT_PORT, forwarded from LIP6: (segment out, lport, rip).
fn fnat6_in(
    h: &mut Harness,
    cport: u16,
    flags: TcpFlags,
    opts: &[u8],
    data: &[u8],
) -> (Vec<u8>, u16, Ipv6Addr) {
    let f = c_tcp(CIP6, cport, FNAT_PORT, flags, opts, data);
    let out = h.rx6(CLIENT_NET, f);
    let rip = Ipv6Addr::from(<[u8; 16]>::try_from(&out.1[38..54]).unwrap());
    let v = left6(&out, SERVER_NET, rs_mac6(rip));
    assert_eq!((v.src, v.dport, v.hop_limit), (LIP6, 80, 63));
    assert!(v.sport >= LPORT_MIN);
    assert_eq!(v.l4[13], flags.0 as u8);
    assert_eq!(tcp_payload(&v.l4), data);
    (v.l4, v.sport, rip)
}

/// Real server -> LIP6:lport, forwarded to the client from the VIP: the segment out.
fn fnat6_out(
    h: &mut Harness,
    rip: Ipv6Addr,
    lport: u16,
    cport: u16,
    flags: TcpFlags,
    opts: &[u8],
) -> Vec<u8> {
    let out = h.rx6(SERVER_NET, s_tcp(rip, 80, LIP6, lport, flags, opts, b""));
    let v = left6(&out, CLIENT_NET, CLIENT_MAC);
    assert_eq!(
        (v.src, v.sport, v.dst, v.dport, v.hop_limit),
        (VIP6, FNAT_PORT, CIP6, cport, 63)
    );
    v.l4
}

#[test]
fn fullnat6_translates_both_tuples_carries_the_toa_and_shrinks_the_mss() {
    let mut h = harness6();
    let (syn, lport, rip) = fnat6_in(&mut h, 40000, SYN, &MSS_1460, b"");
    assert_eq!(toa6(&syn), Some((40000, CIP6)), "TOA on the SYN");
    assert_eq!(mss(&syn), Some(1460), "the client's MSS kept");
    assert_eq!(syn.len(), 20 + 4 + 20);
    let sa = fnat6_out(&mut h, rip, lport, 40000, SYN_ACK, &MSS_1460);
    assert_eq!(mss(&sa), Some(1440), "room for the 20-byte TOA");
    assert_eq!(toa6(&sa), None);
    let (ack, ..) = fnat6_in(&mut h, 40000, ACK, &[], b"");
    assert_eq!(toa6(&ack), None, "not on a pure ACK");
    let (data, ..) = fnat6_in(&mut h, 40000, PSH_ACK, &[], b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        toa6(&data),
        Some((40000, CIP6)),
        "on the first data segment"
    );
    let (data2, ..) = fnat6_in(&mut h, 40000, PSH_ACK, &[], b"more");
    assert_eq!(toa6(&data2), None, "only once");
    assert_eq!(h.state(40000), "ESTABLISHED");
    let v = h.views();
    assert_eq!(
        (v[0].client, v[0].virt, v[0].dest),
        (
            (CIP6.into(), 40000),
            (VIP6.into(), FNAT_PORT),
            (rip.into(), 80)
        )
    );
    let t = h.worker.tables().clone();
    assert_eq!(t.laddrs.stats6(LIP6).unwrap().conns(), 1);

    fnat6_in(&mut h, 40000, FIN_ACK, &[], b"");
    fnat6_out(&mut h, rip, lport, 40000, FIN_ACK, &[]);
    assert_eq!(h.state(40000), "TIME_WAIT");
    h.advance(200);
    h.tick6();
    assert_eq!(h.worker.conn_count(), 0);
    assert_eq!(t.laddrs.stats6(LIP6).unwrap().conns(), 0);
    assert_eq!(
        h.counts6(key6(Protocol::Tcp, FNAT_PORT), rip.into(), 80),
        (0, 0)
    );
    // A stray reply to the released LIP6:lport is nobody's.
    let stray = s_tcp(rip, 80, LIP6, lport, ACK, &[], b"");
    let before = h.worker.drops().total();
    assert!(h.rx(SERVER_NET, stray).is_empty());
    assert_eq!(h.worker.drops().total(), before + 1);
}

/// With the local ports shared by 60000 workers this worker owns one port per (LIP, RS): the
/// port is held while its connection lives and given back when it expires.
#[test]
fn fullnat6_local_port_is_released_when_the_connection_expires() {
    let mut h = harness6_with(60_000);
    let (_, p1, r1) = fnat6_in(&mut h, 1, SYN, &[], b"");
    let (_, p2, r2) = fnat6_in(&mut h, 2, SYN, &[], b"");
    assert_eq!((p1, p2), (60_000, 60_000));
    assert_ne!(r1, r2);
    h.expect_drop(
        CLIENT_NET,
        c_tcp(CIP6, 3, FNAT_PORT, SYN, &[], b""),
        DropReason::LportExhausted,
    );
    // Both expire (SYN_RECV lasts 60 s); the ports come back.
    h.advance(61);
    h.tick6();
    assert_eq!(h.worker.conn_count(), 0);
    let (_, p3, _) = fnat6_in(&mut h, 4, SYN, &[], b"");
    let (_, p4, _) = fnat6_in(&mut h, 5, SYN, &[], b"");
    assert_eq!((p3, p4), (60_000, 60_000));
}

// ---- NAT64 -----------------------------------------------------------------------------

/// The IPv4 TCP segment of a frame whose headers `verify_frame` checked.
fn seg4(f: &[u8]) -> &[u8] {
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    &f[14 + ihl..14 + total]
}

#[test]
fn nat64_translates_to_ipv4_and_the_ipv4_reply_back_to_ipv6() {
    let mut h = harness6();
    let syn = c_tcp(CIP6, 6464, NAT64_PORT, SYN, &MSS_1460, b"");
    let out = h.rx6(CLIENT_NET, syn);
    assert_eq!(out.0, SERVER_NET);
    let f = &out.1;
    assert_eq!(&f[12..14], &[0x08, 0x00], "IPv4");
    let v = verify_frame(f).unwrap();
    assert_eq!((v.dst_mac, v.src_mac), (RS1_MAC, PORT1_MAC));
    assert_eq!((v.src, v.dst, v.dport, v.ttl), (LIP4, RIP4, 80, 63));
    let lport = v.sport;
    assert!(lport >= LPORT_MIN);
    assert_eq!(f[14], 0x45, "no IPv4 options");
    let seg = seg4(f);
    assert_eq!(
        toa6(seg),
        Some((6464, CIP6)),
        "the client's address, IPv6 TOA"
    );
    assert_eq!(mss(seg), Some(1460));
    assert_eq!(f.len(), 14 + 20 + 20 + 4 + 20);
    let views = h.views();
    assert_eq!(
        (views[0].client, views[0].virt, views[0].dest),
        (
            (CIP6.into(), 6464),
            (VIP6.into(), NAT64_PORT),
            (RIP4.into(), 80)
        )
    );
    assert_eq!((h.worker.st.conns.len(), h.worker.st.conns6.len()), (0, 1));

    // The server's IPv4 SYN-ACK to LIP4:lport: not in the IPv4 table, found by its mapped tuple,
    // leaves as IPv6 from the VIP with the MSS 20 smaller.
    let sa = tcp_frame_opts(
        &FrameSpec::new(RIP4, 80, LIP4, lport).macs(RS1_MAC, PORT1_MAC),
        SYN_ACK,
        &MSS_1460,
        b"",
    );
    let out = h.rx6(SERVER_NET, sa);
    let v = left6(&out, CLIENT_NET, CLIENT_MAC);
    assert_eq!(
        (v.src, v.sport, v.dst, v.dport, v.hop_limit, v.proto),
        (VIP6, NAT64_PORT, CIP6, 6464, 63, 6)
    );
    assert_eq!(mss(&v.l4), Some(1440));
    assert_eq!(v.l4[13], SYN_ACK.0 as u8);

    // Data both ways.
    let out = h.rx6(CLIENT_NET, c_tcp(CIP6, 6464, NAT64_PORT, ACK, &[], b""));
    assert_eq!(toa6(seg4(&out.1)), None);
    let out = h.rx6(
        CLIENT_NET,
        c_tcp(CIP6, 6464, NAT64_PORT, PSH_ACK, &[], b"hi"),
    );
    let v = verify_frame(&out.1).unwrap();
    assert_eq!((v.src, v.sport, v.dst), (LIP4, lport, RIP4));
    assert_eq!(
        toa6(seg4(&out.1)),
        Some((6464, CIP6)),
        "on the first data segment"
    );
    assert_eq!(tcp_payload(seg4(&out.1)), b"hi");
    let r = tcp_frame(
        &FrameSpec::new(RIP4, 80, LIP4, lport).macs(RS1_MAC, PORT1_MAC),
        PSH_ACK,
        b"hello",
    );
    let v = left6(&h.rx6(SERVER_NET, r), CLIENT_NET, CLIENT_MAC);
    assert_eq!(tcp_payload(&v.l4), b"hello");
    assert_eq!(h.state(6464), "ESTABLISHED");
    assert_eq!(
        h.counts6(key6(Protocol::Tcp, NAT64_PORT), RIP4.into(), 80),
        (1, 0)
    );
    // An IPv4 packet to LIP4 on a port no connection holds is nobody's.
    let stray = tcp_frame(
        &FrameSpec::new(RIP4, 80, LIP4, lport.wrapping_add(1)).macs(RS1_MAC, PORT1_MAC),
        ACK,
        b"",
    );
    let before = h.worker.drops().total();
    assert!(h.rx(SERVER_NET, stray).is_empty());
    assert_eq!(h.worker.drops().total(), before + 1);
}

// ---- Persistence -----------------------------------------------------------------------

#[test]
fn persistence_by_prefix_64_keeps_a_slash_64_on_one_server() {
    let mut h = harness6();
    // Without persistence rr alternates between the two clients.
    let mut plain = Vec::new();
    for (cip, cport) in [(CIP6, 1), (CIP6_B, 2)] {
        let out = h.rx6(CLIENT_NET, c_tcp(cip, cport, NAT_PORT, SYN, &[], b""));
        plain.push(verify_frame6(&out.1).unwrap().dst);
    }
    assert_ne!(plain[0], plain[1]);
    // `-p 300 -M 64`: both clients of 2001:2::/64 on one server, whatever rr would do.
    let mut rips = Vec::new();
    for (cip, cport) in [(CIP6, 11), (CIP6_B, 12), (CIP6_B, 13), (CIP6, 14)] {
        let out = h.rx6(CLIENT_NET, c_tcp(cip, cport, PERSIST_PORT, SYN, &[], b""));
        let rip = Ipv6Addr::from(<[u8; 16]>::try_from(&out.1[38..54]).unwrap());
        let v = left6(&out, SERVER_NET, rs_mac6(rip));
        assert_eq!((v.src, v.sport, v.dport), (cip, cport, PERSIST_PORT));
        rips.push(v.dst);
    }
    assert!(rips.iter().all(|r| *r == rips[0]), "{rips:?}");
    // The template is listed: the /64 (masked client, port 0) -> that server.
    let templates: Vec<_> = h
        .worker
        .conns(h.now)
        .filter(|c| c.virt == (VIP6.into(), PERSIST_PORT) && c.client.1 == 0)
        .collect();
    assert_eq!(templates.len(), 1, "{templates:?}");
    assert_eq!(
        templates[0].client.0,
        IpAddr::V6(v6([0x2001, 2, 0, 0, 0, 0, 0, 0]))
    );
    assert_eq!(templates[0].dest, (rips[0].into(), PERSIST_PORT));
}

// ---- ICMPv6 errors ---------------------------------------------------------------------

/// The real server's side says the request NAT6 sent it was too big: the client hears it from
/// the VIP, about its own packet (the quote translated back, its checksum still right).
#[test]
fn packet_too_big_from_the_server_side_is_translated_for_the_client() {
    let mut h = harness6();
    let syn = c_tcp(CIP6, 500, NAT_PORT, SYN, &MSS_1460, b"");
    let (_, req) = h.rx6(CLIENT_NET, syn.clone());
    let rip = verify_frame6(&req).unwrap().dst;
    let e = on_server(icmp6_error(rip, CIP6, 2, 0, 1400, &req[14..]), rs_mac6(rip));
    let out = h.rx6(SERVER_NET, e);
    let v = left6(&out, CLIENT_NET, CLIENT_MAC);
    assert_eq!((v.src, v.dst, v.proto, v.hop_limit), (VIP6, CIP6, 58, 63));
    assert_eq!((v.l4[0], v.l4[1]), (2, 0));
    assert_eq!(u32::from_be_bytes(v.l4[4..8].try_into().unwrap()), 1400);
    // The quote is the client's own SYN as the director sent it on (hop limit 63).
    let mut own = syn[14..].to_vec();
    own[7] = 63;
    assert_eq!(&v.l4[8..], &own[..]);
    let q = &v.l4[8..];
    let qs = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&q[at..at + 16]).unwrap());
    assert_eq!(
        ones_sum(&[&pseudo6(qs(8), qs(24), 6, q.len() - 40), &q[40..]]),
        0,
        "quoted TCP checksum"
    );
    // Bad ICMPv6 checksum: dropped.
    let mut e = on_server(icmp6_error(rip, CIP6, 2, 0, 1400, &req[14..]), rs_mac6(rip));
    e[56] ^= 0x40;
    h.expect_drop(SERVER_NET, e, DropReason::L4BadChecksum);
}

// ---- Drops -----------------------------------------------------------------------------

#[test]
fn the_ipv6_connection_path_drops_what_it_must() {
    let mut h = harness6();
    h.expect_drop(
        CLIENT_NET,
        c_tcp(CIP6, 1, NAT_PORT, ACK, &[], b"x"),
        DropReason::TcpNoConnection,
    );
    let mut f = c_tcp(CIP6, 2, NAT_PORT, SYN, &[], b"");
    f[54 + 17] ^= 0x01;
    h.expect_drop(CLIENT_NET, f, DropReason::L4BadChecksum);
    let mut f = udp6_frame(CIP6, 3, VIP6, UDP_PORT, b"q");
    f[60..62].fill(0);
    h.expect_drop(CLIENT_NET, f, DropReason::L4BadChecksum);
    let mut f = c_tcp(CIP6, 4, NAT_PORT, SYN, &[], b"");
    f[21] = 1;
    h.expect_drop(CLIENT_NET, f, DropReason::TtlExceeded);
    for src in [
        VIP6,
        DIP6_0,
        Ipv6Addr::LOCALHOST,
        "ff02::1".parse().unwrap(),
        "::ffff:198.18.0.2".parse().unwrap(),
    ] {
        for dport in [NAT_PORT, FNAT_PORT, DR_PORT] {
            let f = tcp6_frame(src, 5, VIP6, dport, SYN.0 as u8, &[], b"");
            h.expect_drop(CLIENT_NET, f, DropReason::MartianSource);
        }
    }
    assert_eq!(h.worker.conn_count(), 0);
    // The same packets done right open connections.
    for f in [
        c_tcp(CIP6, 2, NAT_PORT, SYN, &[], b""),
        udp6_frame(CIP6, 3, VIP6, UDP_PORT, b"q"),
        c_tcp(CIP6, 4, NAT_PORT, SYN, &[], b""),
    ] {
        h.rx6(CLIENT_NET, f);
    }
    assert_eq!(h.worker.conn_count(), 3);
    // A known connection's packet with hop limit 1 is not forwarded either.
    let mut f = c_tcp(CIP6, 4, NAT_PORT, ACK, &[], b"");
    f[21] = 1;
    h.expect_drop(CLIENT_NET, f, DropReason::TtlExceeded);
}

// ---- Two workers -----------------------------------------------------------------------

/// Two workers on the same tables; each frame is given to the worker `steer` names.
struct Pair {
    workers: Vec<Worker<HeapBuf>>,
    io: MockIo,
    now: Instant,
    services: ServiceTable,
}

impl Pair {
    fn new() -> Pair {
        let mut services = services6(2);
        let tables = tables6(&mut services, Timeouts::default(), 2, 2);
        let workers = (0..2)
            .map(|id| {
                Worker::new(
                    worker_config(id, 2),
                    tables.clone(),
                    Arc::new(WorkerStats::default()),
                    0x5eed + id as u64,
                )
            })
            .collect();
        Pair {
            workers,
            io: MockIo::default(),
            now: Instant::from_secs(1_000),
            services,
        }
    }

    /// The owner both workers name for `frame`.
    fn owner(&self, frame: &[u8]) -> usize {
        let o: Vec<_> = self.workers.iter().map(|w| w.steer(frame)).collect();
        assert_eq!(o[0], o[1], "the workers disagree");
        match o[0] {
            Owner::Worker(w) => usize::from(w),
            other => panic!("not steered to a worker: {other:?}"),
        }
    }

    /// Process on worker `w`; the one frame sent.
    fn rx_on(&mut self, w: usize, port: PortId, frame: Vec<u8>) -> (PortId, Vec<u8>) {
        self.workers[w].process(self.now, port, HeapBuf::from_bytes(&frame), &mut self.io);
        let mut out = std::mem::take(&mut self.io.sent);
        assert_eq!(out.len(), 1, "worker {w}: {:?}", self.workers[w].drops());
        out.pop().unwrap()
    }
}

#[test]
fn two_workers_steer_both_directions_of_nat6_to_the_connections_owner() {
    let mut p = Pair::new();
    let mut owners = [0; 2];
    for cport in 1000..1040 {
        let syn = c_tcp(CIP6, cport, NAT_PORT, SYN, &[], b"");
        let w = p.owner(&syn);
        owners[w] += 1;
        let (_, out) = p.rx_on(w, CLIENT_NET, syn);
        let rip = verify_frame6(&out).unwrap().dst;
        assert_eq!(p.workers[w].conns(p.now).count(), 1 + (owners[w] - 1));
        let reply = s_tcp(rip, 80, CIP6, cport, SYN_ACK, &[], b"");
        assert_eq!(p.owner(&reply), w, "client port {cport}");
        let (port, out) = p.rx_on(w, SERVER_NET, reply);
        assert_eq!(port, CLIENT_NET);
        assert_eq!(verify_frame6(&out).unwrap().src, VIP6);
        // An ICMPv6 error about the request goes to the same worker.
        let e = on_server(
            icmp6_error(rip, CIP6, 2, 0, 1400, &out_req(&rip, cport)),
            rs_mac6(rip),
        );
        assert_eq!(p.owner(&e), w);
    }
    assert!(
        owners.iter().all(|&n| n > 0),
        "both workers own some: {owners:?}"
    );
    let k = key6(Protocol::Tcp, NAT_PORT);
    let snap = p.services.snapshot();
    let svc = snap.services().iter().find(|s| s.key() == k).unwrap();
    let total: u64 = [RIP6_1, RIP6_2]
        .iter()
        .map(|r| svc.find_dest((*r).into(), 80).unwrap().active_conns())
        .sum();
    assert_eq!(total, 40);
}

/// The IPv6 packet NAT6 sends a server for client port `cport` (what a server's error quotes).
fn out_req(rip: &Ipv6Addr, cport: u16) -> Vec<u8> {
    let mut f = tcp6_frame(CIP6, cport, *rip, 80, SYN.0 as u8, &[], b"");
    f[21] = 63;
    f[14..].to_vec()
}

#[test]
fn two_workers_steer_fullnat6_and_nat64_replies_by_local_port() {
    let mut p = Pair::new();
    let mut owners = [0; 2];
    for cport in 2000..2020 {
        let syn = c_tcp(CIP6, cport, FNAT_PORT, SYN, &[], b"");
        let w = p.owner(&syn);
        owners[w] += 1;
        let (_, out) = p.rx_on(w, CLIENT_NET, syn);
        let v = verify_frame6(&out).unwrap();
        assert_eq!(v.src, LIP6);
        assert_eq!(
            usize::from(v.sport) % 2,
            w,
            "the lport is of the owner's partition"
        );
        let reply = s_tcp(v.dst, 80, LIP6, v.sport, SYN_ACK, &[], b"");
        assert_eq!(p.owner(&reply), w);
        let (port, out) = p.rx_on(w, SERVER_NET, reply);
        assert_eq!(port, CLIENT_NET);
        let r = verify_frame6(&out).unwrap();
        assert_eq!((r.src, r.dst, r.dport), (VIP6, CIP6, cport));

        let syn = c_tcp(CIP6, cport, NAT64_PORT, SYN, &[], b"");
        let w = p.owner(&syn);
        let (_, out) = p.rx_on(w, CLIENT_NET, syn);
        let v = verify_frame(&out).unwrap();
        assert_eq!((v.src, v.dst), (LIP4, RIP4));
        assert_eq!(usize::from(v.sport) % 2, w);
        let reply = tcp_frame(
            &FrameSpec::new(RIP4, 80, LIP4, v.sport).macs(RS1_MAC, PORT1_MAC),
            SYN_ACK,
            b"",
        );
        assert_eq!(p.owner(&reply), w);
        let (port, out) = p.rx_on(w, SERVER_NET, reply);
        assert_eq!(port, CLIENT_NET);
        let r = verify_frame6(&out).unwrap();
        assert_eq!(
            (r.src, r.sport, r.dst, r.dport),
            (VIP6, NAT64_PORT, CIP6, cport)
        );
    }
    assert!(owners.iter().all(|&n| n > 0), "{owners:?}");
}

// ---- Anything at all -------------------------------------------------------------------

/// Valid IPv6 frames of every kind the connection path handles, to be mutated.
fn templates6() -> Vec<(PortId, Vec<u8>)> {
    let rs = |f| on_server(f, RS1_MAC);
    vec![
        (CLIENT_NET, c_tcp(CIP6, 1, NAT_PORT, SYN, &MSS_1460, b"")),
        (CLIENT_NET, c_tcp(CIP6, 1, NAT_PORT, PSH_ACK, &[], b"data")),
        (
            SERVER_NET,
            rs(tcp6_frame(RIP6_1, 80, CIP6, 1, SYN_ACK.0 as u8, &[], b"")),
        ),
        (CLIENT_NET, c_tcp(CIP6, 2, FNAT_PORT, SYN, &[], b"")),
        (CLIENT_NET, c_tcp(CIP6, 2, FNAT_PORT, PSH_ACK, &[], b"x")),
        (
            SERVER_NET,
            rs(tcp6_frame(
                RIP6_1,
                80,
                LIP6,
                1029,
                SYN_ACK.0 as u8,
                &[],
                b"",
            )),
        ),
        (CLIENT_NET, c_tcp(CIP6, 3, TUN_PORT, SYN, &[], b"")),
        (CLIENT_NET, c_tcp(CIP6, 4, DR_PORT, SYN, &[], b"")),
        (CLIENT_NET, c_tcp(CIP6, 5, NAT64_PORT, SYN, &[], b"")),
        (CLIENT_NET, c_tcp(CIP6_B, 6, PERSIST_PORT, SYN, &[], b"")),
        (CLIENT_NET, udp6_frame(CIP6, 7, VIP6, UDP_PORT, b"q")),
        (
            SERVER_NET,
            rs(icmp6_error(RIP6_1, CIP6, 2, 0, 1280, &out_req(&RIP6_1, 1))),
        ),
        (
            SERVER_NET,
            tcp_frame(
                &FrameSpec::new(RIP4, 80, LIP4, 1025).macs(RS1_MAC, PORT1_MAC),
                SYN_ACK,
                b"",
            ),
        ),
    ]
}

#[derive(Debug, Clone)]
enum Input6 {
    /// Random bytes behind an Ethernet header with the IPv6 ethertype and version 6.
    Random(u16, Vec<u8>),
    Mutated {
        template: usize,
        flips: Vec<(usize, u8)>,
        keep: Option<usize>,
    },
    Tick(u8),
    AllocFails(bool),
}

fn input6() -> impl Strategy<Value = Input6> {
    prop_oneof![
        3 => (0u16..2, proptest::collection::vec(any::<u8>(), 0..160))
            .prop_map(|(p, b)| Input6::Random(p, b)),
        6 => (
            0usize..13,
            proptest::collection::vec((0usize..100, 1u8..=255), 0..4),
            proptest::option::weighted(0.2, 0usize..100),
        )
            .prop_map(|(template, flips, keep)| Input6::Mutated { template, flips, keep }),
        1 => (0u8..130).prop_map(Input6::Tick),
        1 => any::<bool>().prop_map(Input6::AllocFails),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever IPv6 arrives, the worker never panics and accounts for every frame:
    /// `rx_packets + alloc attempts == tx_packets + rx_consumed + drops` once nothing waits for
    /// a neighbour (all are static here), at most one drop per frame.
    #[test]
    fn ipv6_frames_never_panic_and_are_accounted_once(
        inputs in proptest::collection::vec(input6(), 1..32),
    ) {
        let mut h = harness6();
        let templates = templates6();
        h.worker.publish_stats();
        let mut sent = h.stats.tx_packets.load(Ordering::Relaxed);
        for i in inputs {
            let frame = match i {
                Input6::Random(port, bytes) => {
                    let mac = if port == CLIENT_NET { PORT0_MAC } else { PORT1_MAC };
                    let mut f = mac.0.to_vec();
                    f.extend_from_slice(&CLIENT_MAC.0);
                    f.extend_from_slice(&[0x86, 0xdd]);
                    f.extend_from_slice(&bytes);
                    if let Some(b) = f.get_mut(14) {
                        *b = 0x60 | (*b & 0x0f);
                    }
                    Some((port, f))
                }
                // Port 0: the template's own port (see `mutated`).
                Input6::Mutated { template, flips, keep } => {
                    Some(mutated(&templates, 0, template, &flips, keep))
                }
                Input6::Tick(secs) => {
                    h.advance(u64::from(secs));
                    sent += h.tick().len() as u64;
                    None
                }
                Input6::AllocFails(fail) => {
                    h.io.fail_alloc = fail;
                    None
                }
            };
            if let Some((port, f)) = frame {
                rx_counted(&mut h, port, f, &mut sent)?;
            }
        }
        h.io.fail_alloc = false;
        h.advance(1);
        sent += h.tick().len() as u64;
        all_accounted(&mut h, sent)?;
    }
}

// ---- NAT64's ICMP, IPv6 admission ------------------------------------------------------

/// An ICMPv4 "fragmentation needed" from a router on the IPv4 side, about the packet a NAT64
/// connection sent its server, reaches the IPv6 client as Packet Too Big (MTU + 20) from the
/// VIP, quoting the client's own tuple; a type RFC 7915 does not translate is dropped.
#[test]
fn nat64_icmpv4_errors_reach_the_client_as_icmpv6() {
    use crate::l3::icmp::{IcmpError, build_error};
    let mut h = harness6();
    let sent4 = h
        .rx6(
            CLIENT_NET,
            c_tcp(CIP6, 6465, NAT64_PORT, SYN, &MSS_1460, b""),
        )
        .1;
    let router = Ipv4Addr::new(198, 18, 1, 254);
    let error_about = |kind| {
        let mut b = HeapBuf::new();
        build_error(&mut b, &sent4[14..], kind, router, 7).unwrap();
        let mut f = b.data().to_vec();
        f[0..6].copy_from_slice(&PORT1_MAC.0);
        f[6..12].copy_from_slice(&RS1_MAC.0);
        f
    };
    let out = h.rx6(SERVER_NET, error_about(IcmpError::FragNeeded { mtu: 1400 }));
    let v = left6(&out, CLIENT_NET, CLIENT_MAC);
    assert_eq!((v.src, v.dst, v.proto), (VIP6, CIP6, 58));
    let m = &v.l4;
    assert_eq!((m[0], m[1]), (2, 0), "packet too big");
    assert_eq!(u32::from_be_bytes([m[4], m[5], m[6], m[7]]), 1420);
    let q = crate::wire::ipv6::Packet::new_checked_quoted(&m[8..]).unwrap();
    assert_eq!((q.src_addr(), q.dst_addr()), (CIP6, VIP6));
    let ports = &m[48..52];
    assert_eq!(u16::from_be_bytes([ports[0], ports[1]]), 6465);
    assert_eq!(u16::from_be_bytes([ports[2], ports[3]]), NAT64_PORT);
    // Port unreachable becomes ICMPv6 destination unreachable, port (1, 4).
    let out = h.rx6(SERVER_NET, error_about(IcmpError::DestUnreachable(3)));
    let v = left6(&out, CLIENT_NET, CLIENT_MAC);
    assert_eq!((v.l4[0], v.l4[1]), (1, 4));
    // Source route failed is translated too (1, 0); an unknown code is dropped and counted.
    let before = h.drops(DropReason::IcmpNotTranslated);
    assert!(
        h.rx(SERVER_NET, error_about(IcmpError::DestUnreachable(14)))
            .is_empty()
    );
    assert_eq!(h.drops(DropReason::IcmpNotTranslated), before + 1);
}

/// Admission applies to IPv6 clients: the lists hold IPv4 prefixes, so a deny list lets an
/// IPv6 client through and an allow list refuses it; the connection limit counts IPv6
/// connections as any.
#[test]
fn ipv6_clients_go_through_admission() {
    use crate::service::{ListKind, Prefix};
    let mut h = harness6();
    let k = key6(Protocol::Tcp, NAT_PORT);
    let republish = |h: &mut Harness| {
        let t = tables6(&mut h.services, h.timeouts, 1, 1);
        h.worker.set_tables(t);
    };
    h.services
        .add_list_entry(
            &k,
            ListKind::Deny,
            "198.18.0.0/16".parse::<Prefix>().unwrap(),
        )
        .unwrap();
    republish(&mut h);
    h.rx6(CLIENT_NET, c_tcp(CIP6, 7001, NAT_PORT, SYN, &[], b""));
    h.services
        .add_list_entry(
            &k,
            ListKind::Allow,
            "198.18.0.0/16".parse::<Prefix>().unwrap(),
        )
        .unwrap();
    republish(&mut h);
    h.expect_drop(
        CLIENT_NET,
        c_tcp(CIP6, 7002, NAT_PORT, SYN, &[], b""),
        DropReason::AclNotAllowed,
    );
    h.services
        .del_list_entry(
            &k,
            ListKind::Allow,
            "198.18.0.0/16".parse::<Prefix>().unwrap(),
        )
        .unwrap();
    h.services
        .del_list_entry(
            &k,
            ListKind::Deny,
            "198.18.0.0/16".parse::<Prefix>().unwrap(),
        )
        .unwrap();
    let mut c = h.services.service(&k).unwrap().config().clone();
    c.limits.max_conns = 2;
    h.services.edit_service(c).unwrap();
    republish(&mut h);
    // One connection open already (7001): one more fits, the third is refused.
    h.rx6(CLIENT_NET, c_tcp(CIP6, 7003, NAT_PORT, SYN, &[], b""));
    h.expect_drop(
        CLIENT_NET,
        c_tcp(CIP6, 7004, NAT_PORT, SYN, &[], b""),
        DropReason::SvcConnLimit,
    );
}

/// In a burst, IPv6 frames and NAT64's IPv4 replies take the staged path (described and
/// prefetched in the first stages): the same frames leave as when each is processed alone.
#[test]
fn a_burst_of_ipv6_frames_and_nat64_replies_is_forwarded_as_frames_one_by_one() {
    let run = |burst: bool| {
        let mut h = harness6();
        let syn6 = c_tcp(CIP6, 6470, NAT_PORT, SYN, &MSS_1460, b"");
        let syn64 = c_tcp(CIP6, 6471, NAT64_PORT, SYN, &MSS_1460, b"");
        let mut out = Vec::new();
        let lport = if burst {
            let mut b = vec![HeapBuf::from_bytes(&syn6), HeapBuf::from_bytes(&syn64)];
            h.worker.process_burst(h.now, CLIENT_NET, &mut b, &mut h.io);
            let sent: Vec<_> = h.io.sent.drain(..).collect();
            out.extend(sent);
            verify_frame(&out[1].1).unwrap().sport
        } else {
            out.push(h.rx6(CLIENT_NET, syn6));
            out.push(h.rx6(CLIENT_NET, syn64));
            verify_frame(&out[1].1).unwrap().sport
        };
        // The IPv4 server's SYN-ACK and an IPv6 server's, together.
        let sa4 = tcp_frame_opts(
            &FrameSpec::new(RIP4, 80, LIP4, lport).macs(RS1_MAC, PORT1_MAC),
            SYN_ACK,
            &MSS_1460,
            b"",
        );
        let nat_rip = verify_frame6(&out[0].1).unwrap().dst;
        let sa6 = on_server(
            tcp6_frame(
                nat_rip,
                NAT_PORT,
                CIP6,
                6470,
                SYN_ACK.0 as u8,
                &MSS_1460,
                b"",
            ),
            rs_mac6(nat_rip),
        );
        if burst {
            let mut b = vec![HeapBuf::from_bytes(&sa4), HeapBuf::from_bytes(&sa6)];
            h.worker.process_burst(h.now, SERVER_NET, &mut b, &mut h.io);
            let sent: Vec<_> = h.io.sent.drain(..).collect();
            out.extend(sent);
        } else {
            out.push(h.rx6(SERVER_NET, sa4));
            out.push(h.rx6(SERVER_NET, sa6));
        }
        assert_eq!(h.worker.drops().total(), 0, "{:?}", h.worker.drops());
        out
    };
    let (one, burst) = (run(false), run(true));
    assert_eq!(one.len(), 4);
    // The IPv4 identification of the translated SYN comes from the worker's counter, as in
    // the other run: the frames are equal byte for byte.
    assert_eq!(one, burst);
    assert_eq!(&burst[2].1[12..14], &[0x86, 0xdd], "NAT64 reply as IPv6");
}
