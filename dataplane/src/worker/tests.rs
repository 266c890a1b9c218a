//! The in-memory harness (as quinn tests its state machines): one [`Worker`] on two ports, a
//! client network on port 0 and a real-server network on port 1, driven by frames built byte by byte
//! (`testutil`) and a hand-advanced clock. The test plays the client, the real servers and the
//! runtime ([`MockIo`]); every frame the worker sends is checked with the independent verifier.

use core::time::Duration;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use proptest::prelude::*;

use super::{Io, PortSetup, Tables, Worker, WorkerConfig, WorkerStats};
use crate::conn::Timeouts;
use crate::drop::DropReason;
use crate::l3::addr::{OwnedAddrs, PortId};
use crate::l3::neigh::NeighConfig;
use crate::l3::route::RouteTable;
use crate::packet::{HeapBuf, PacketBuf};
use crate::service::{
    Dest, DestConfig, ForwardMethod, Protocol, ServiceConfig, ServiceKey, ServiceTable,
};
use crate::testutil::*;
use crate::time::Instant;
use crate::wire::MacAddr;
use crate::wire::tcp::TcpFlags;

const CLIENT_NET: PortId = 0;
const SERVER_NET: PortId = 1;
const DIP0: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const DIP1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const RIP1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
const RIP2: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 12);
const ROUTE_PORT: u16 = 8080;

const SYN: TcpFlags = TcpFlags(0x02);
const SYN_ACK: TcpFlags = TcpFlags(0x12);
const ACK: TcpFlags = TcpFlags(0x10);
const PSH_ACK: TcpFlags = TcpFlags(0x18);
const FIN_ACK: TcpFlags = TcpFlags(0x11);
const SYN_FIN: TcpFlags = TcpFlags(0x03);

fn tcp_service() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        vport: 80,
    }
}

fn udp_service() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Udp,
        vip: VIP.into(),
        vport: 53,
    }
}

fn route_service() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        vport: ROUTE_PORT,
    }
}

fn rs_mac(rip: Ipv4Addr) -> MacAddr {
    if rip == RIP1 { RS1_MAC } else { RS2_MAC }
}

/// The runtime as the worker sees it: records every transmitted frame, hands out heap buffers
/// (or none, when told to fail).
#[derive(Debug, Default)]
struct MockIo {
    sent: Vec<(PortId, Vec<u8>)>,
    fail_alloc: bool,
    /// Calls to `alloc`, failed ones included.
    allocs: u64,
    /// Ports with a kernel twin (`kernel` tests), and the frames handed to it.
    twins: Vec<PortId>,
    kernel: Vec<(PortId, Vec<u8>)>,
    /// Frames a steered burst shared with the other workers (ARP).
    shared: Vec<(PortId, Vec<u8>)>,
}

impl Io<HeapBuf> for MockIo {
    fn transmit(&mut self, port: PortId, buf: HeapBuf) {
        self.sent.push((port, buf.data().to_vec()));
    }

    fn alloc(&mut self) -> Option<HeapBuf> {
        self.allocs += 1;
        (!self.fail_alloc).then(HeapBuf::new)
    }

    fn prefetch<T>(&self, r: &T) {
        std::hint::black_box(r);
    }

    fn has_kernel(&self, port: PortId) -> bool {
        self.twins.contains(&port)
    }

    fn to_kernel(&mut self, port: PortId, buf: HeapBuf) {
        self.kernel.push((port, buf.data().to_vec()));
    }

    fn share(&mut self, port: PortId, frame: &[u8]) {
        self.shared.push((port, frame.to_vec()));
    }
}

struct Harness {
    worker: Worker<HeapBuf>,
    io: MockIo,
    now: Instant,
    services: ServiceTable,
    timeouts: Timeouts,
    stats: Arc<WorkerStats>,
}

impl Harness {
    fn new() -> Harness {
        Harness::build(1024, Timeouts::default())
    }

    /// As [`Harness::new`], with this neighbour-table configuration.
    fn with_neigh(neigh: NeighConfig) -> Harness {
        Harness::build_with(1024, Timeouts::default(), neigh)
    }

    /// TCP VIP:80 wrr (RS1 weight 3, RS2 weight 1), UDP VIP:53 rr (RS1, RS2), and TCP
    /// VIP:8080 with one direct-routing dest (no data path yet).
    fn build(conn_capacity: usize, timeouts: Timeouts) -> Harness {
        Harness::build_with(conn_capacity, timeouts, NeighConfig::default())
    }

    fn build_with(conn_capacity: usize, timeouts: Timeouts, neigh: NeighConfig) -> Harness {
        let mut services = ServiceTable::new(1);
        let add =
            |s: &mut ServiceTable, key, sched, dests: &[(Ipv4Addr, u16, ForwardMethod, u32)]| {
                s.add_service(ServiceConfig::new(key, sched)).unwrap();
                for &(addr, port, method, weight) in dests {
                    let mut d = DestConfig::new(addr, port, method);
                    d.weight = weight;
                    s.add_dest(&key, d).unwrap();
                }
            };
        let masq = ForwardMethod::Masq;
        add(
            &mut services,
            tcp_service(),
            "wrr",
            &[(RIP1, 80, masq, 3), (RIP2, 80, masq, 1)],
        );
        add(
            &mut services,
            udp_service(),
            "rr",
            &[(RIP1, 53, masq, 1), (RIP2, 53, masq, 1)],
        );
        add(
            &mut services,
            route_service(),
            "rr",
            &[(RIP1, ROUTE_PORT, ForwardMethod::Route, 1)],
        );
        methods::add_services(&mut services);
        let tables = tables(&mut services, timeouts);
        let cfg = WorkerConfig {
            id: 0,
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
            conn_capacity,
            conn_capacity6: conn_capacity,
            neigh,
            icmp: Default::default(),
            workers: 1,
        };
        let stats = Arc::new(WorkerStats::default());
        Harness {
            worker: Worker::new(cfg, tables, stats.clone(), 0x5eed),
            io: MockIo::default(),
            now: Instant::from_secs(1_000),
            services,
            timeouts,
            stats,
        }
    }

    /// Publish the service table (after a change) as new worker tables.
    fn publish(&mut self) {
        self.worker
            .set_tables(tables(&mut self.services, self.timeouts));
    }

    /// Receive one frame on `port`; return what the worker transmitted meanwhile.
    fn rx(&mut self, port: PortId, frame: Vec<u8>) -> Vec<(PortId, Vec<u8>)> {
        self.worker
            .process(self.now, port, HeapBuf::from_bytes(&frame), &mut self.io);
        std::mem::take(&mut self.io.sent)
    }

    /// [`Harness::rx`] for a frame that must be forwarded: the one non-ARP frame sent, after
    /// checking that anything else sent is an ARP request (a neighbour re-probe).
    fn rx_forwarded(&mut self, port: PortId, frame: Vec<u8>) -> (PortId, Vec<u8>) {
        let out = self.rx(port, frame);
        let (arp, other): (Vec<_>, Vec<_>) =
            out.into_iter().partition(|(_, f)| parse_arp(f).is_ok());
        for (_, f) in &arp {
            assert_eq!(parse_arp(f).unwrap().op, ARP_REQUEST);
        }
        assert_eq!(other.len(), 1, "not forwarded: {:?}", self.worker.drops());
        other.into_iter().next().unwrap()
    }

    fn advance(&mut self, secs: u64) {
        self.now = self.now + Duration::from_secs(secs);
    }

    fn tick(&mut self) -> Vec<(PortId, Vec<u8>)> {
        self.worker.on_tick(self.now, &mut self.io);
        std::mem::take(&mut self.io.sent)
    }

    fn drops(&self, reason: DropReason) -> u64 {
        self.worker.drops().get(reason)
    }

    fn dest(&mut self, key: ServiceKey, rip: Ipv4Addr) -> Dest {
        let snap = self.services.snapshot();
        let svc = snap.services().iter().find(|s| s.key() == key).unwrap();
        let port = match key {
            ServiceKey::Addr { vport, .. } => vport,
            ServiceKey::Fwmark(_) => 0,
        };
        svc.find_dest(rip.into(), port).unwrap().clone()
    }

    /// `(active, inactive)` of a dest of the TCP service, as ipvsadm -L shows them.
    fn counts(&mut self, rip: Ipv4Addr) -> (u64, u64) {
        let d = self.dest(tcp_service(), rip);
        (d.active_conns(), d.inactive_conns())
    }

    /// The state of the only connection from client port `cport`.
    fn state(&self, cport: u16) -> &'static str {
        let v: Vec<_> = self
            .worker
            .conns(self.now)
            .filter(|c| c.client.1 == cport)
            .collect();
        assert_eq!(v.len(), 1, "connections from port {cport}: {v:?}");
        v[0].state
    }

    /// Teach the worker a neighbour: the host asks for the DIP of its network, we reply.
    fn learn(&mut self, port: PortId, ip: Ipv4Addr, mac: MacAddr) {
        let dip = if port == CLIENT_NET { DIP0 } else { DIP1 };
        let req = arp_frame(MacAddr::BROADCAST, ARP_REQUEST, mac, ip, MacAddr::ZERO, dip);
        let out = self.rx(port, req);
        assert_eq!(out.len(), 1);
    }

    /// Client and both real servers resolved.
    fn learn_all(&mut self) {
        self.learn(CLIENT_NET, CIP, CLIENT_MAC);
        self.learn(SERVER_NET, RIP1, RS1_MAC);
        self.learn(SERVER_NET, RIP2, RS2_MAC);
    }

    /// Send a client segment to the VIP; expect it on port 1 at a real server (returned).
    fn client_to_rs(&mut self, cport: u16, flags: TcpFlags, payload: &[u8]) -> Verified {
        let f = tcp_frame(&FrameSpec::new(CIP, cport, VIP, 80), flags, payload);
        let (port, out) = self.rx_forwarded(CLIENT_NET, f);
        assert_eq!(port, SERVER_NET);
        let v = verify_frame(&out).unwrap();
        assert_eq!((v.src, v.sport, v.dport), (CIP, cport, 80));
        assert_eq!(v.dst_mac, rs_mac(v.dst));
        assert_eq!(v.src_mac, PORT1_MAC);
        assert_eq!(v.ttl, 63);
        assert_eq!(v.tcp_flags, flags.0 as u8);
        v
    }

    /// Send a real server's segment to the client; expect it on port 0 from the VIP.
    fn rs_to_client(&mut self, rip: Ipv4Addr, cport: u16, flags: TcpFlags, payload: &[u8]) {
        let f = tcp_frame(
            &FrameSpec::new(rip, 80, CIP, cport).macs(rs_mac(rip), PORT1_MAC),
            flags,
            payload,
        );
        let (port, out) = self.rx_forwarded(SERVER_NET, f);
        assert_eq!(port, CLIENT_NET);
        let v = verify_frame(&out).unwrap();
        assert_eq!((v.src, v.sport, v.dst, v.dport), (VIP, 80, CIP, cport));
        assert_eq!((v.dst_mac, v.src_mac), (CLIENT_MAC, PORT0_MAC));
        assert_eq!(v.ttl, 63);
    }

    /// Open a TCP connection from `cport` (neighbours already known); returns the chosen RIP.
    fn syn(&mut self, cport: u16) -> Ipv4Addr {
        self.client_to_rs(cport, SYN, b"").dst
    }

    /// Feed a frame that must be dropped for `reason` and nothing else.
    fn expect_drop(&mut self, port: PortId, frame: Vec<u8>, reason: DropReason) {
        let (before, total) = (self.drops(reason), self.worker.drops().total());
        let out = self.rx(port, frame);
        assert!(out.is_empty(), "{reason:?}: sent {out:?}");
        assert_eq!(
            self.drops(reason),
            before + 1,
            "{reason:?}: {:?}",
            self.worker.drops()
        );
        assert_eq!(self.worker.drops().total(), total + 1, "{reason:?}");
    }
}

fn tables(services: &mut ServiceTable, timeouts: Timeouts) -> Arc<Tables> {
    tables_n(services, timeouts, 1)
}

/// [`tables`] for `workers` workers (the local-port partition depends on it).
fn tables_n(services: &mut ServiceTable, timeouts: Timeouts, workers: usize) -> Arc<Tables> {
    let mut addrs = OwnedAddrs::new();
    addrs.add(CLIENT_NET, DIP0, 24).unwrap();
    addrs.add(SERVER_NET, DIP1, 24).unwrap();
    // The FULLNAT services' local addresses (see `methods`), on the real-server network.
    let mut laddrs = crate::laddr::LaddrTable::new(workers);
    for key in methods::fullnat_services() {
        if let Some(svc) = services.service(&key) {
            let l = methods::LIPS
                .iter()
                .map(|&ip| crate::laddr::Laddr {
                    ip: ip.into(),
                    port: SERVER_NET,
                    ifname: "dp1".into(),
                    stats: Arc::new(crate::laddr::LaddrStats::new(workers)),
                })
                .collect();
            laddrs.set(svc.id(), l);
        }
    }
    Arc::new(Tables {
        services: services.snapshot(),
        routes: RouteTable::with_connected(&addrs),
        addrs,
        static_neighs: Vec::new(),
        v6: Default::default(),
        timeouts,
        laddrs: Arc::new(laddrs),
        persist: Arc::new(crate::persist::PersistTable::new(1024, 1)),
        fwmarks: Arc::new(crate::fwmark::Classifier::default()),
        sloppy_tcp: false,
        synproxy: crate::synproxy::SynProxyConf::new(crate::synproxy::cookie::Secrets::from_bytes(
            [7; 32],
        )),
    })
}

/// The client's broadcast ARP request for `target`.
fn client_arp_request(target: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        MacAddr::BROADCAST,
        ARP_REQUEST,
        CLIENT_MAC,
        CIP,
        MacAddr::ZERO,
        target,
    )
}

fn client_syn(cport: u16) -> Vec<u8> {
    tcp_frame(&FrameSpec::new(CIP, cport, VIP, 80), SYN, b"")
}

// ---- 1. ARP and ICMP echo ----------------------------------------------------------------

#[test]
fn arp_requests_for_dip_and_vip_are_answered() {
    let mut h = Harness::new();
    for target in [DIP0, VIP] {
        let req = client_arp_request(target);
        let out = h.rx(CLIENT_NET, req);
        assert_eq!(out.len(), 1, "no reply for {target}");
        assert_eq!(out[0].0, CLIENT_NET);
        let a = parse_arp(&out[0].1).unwrap();
        assert_eq!(
            a,
            Arp {
                eth_dst: CLIENT_MAC,
                eth_src: PORT0_MAC,
                op: ARP_REPLY,
                sha: PORT0_MAC,
                spa: target,
                tha: CLIENT_MAC,
                tpa: CIP,
            }
        );
    }
    // The DIP of the server network, asked from there.
    let req = arp_frame(
        MacAddr::BROADCAST,
        ARP_REQUEST,
        RS1_MAC,
        RIP1,
        MacAddr::ZERO,
        DIP1,
    );
    let out = h.rx(SERVER_NET, req);
    let a = parse_arp(&out[0].1).unwrap();
    assert_eq!(
        (out[0].0, a.op, a.sha, a.spa),
        (SERVER_NET, ARP_REPLY, PORT1_MAC, DIP1)
    );
    assert_eq!(h.worker.drops().total(), 0);
}

#[test]
fn arp_for_addresses_we_do_not_own_is_dropped() {
    let mut h = Harness::new();
    let other = Ipv4Addr::new(198, 18, 0, 77);
    let req = client_arp_request(other);
    h.expect_drop(CLIENT_NET, req, DropReason::ArpNotForUs);
    // The VIP is answered only on the port whose network holds it, the DIPs only on their own.
    for (port, target) in [(SERVER_NET, VIP), (SERVER_NET, DIP0), (CLIENT_NET, DIP1)] {
        let req = arp_frame(
            MacAddr::BROADCAST,
            ARP_REQUEST,
            RS1_MAC,
            RIP1,
            MacAddr::ZERO,
            target,
        );
        h.expect_drop(port, req, DropReason::ArpNotForUs);
    }
}

#[test]
fn icmp_echo_to_dip_and_vip_is_answered() {
    let mut h = Harness::new();
    for target in [DIP0, VIP] {
        let spec = FrameSpec::new(CIP, 0, target, 0);
        let req = icmp_echo_frame(&spec, 8, 0x4242, 7, b"ping payload");
        let out = h.rx(CLIENT_NET, req);
        assert_eq!(out.len(), 1, "no echo reply from {target}");
        assert_eq!(out[0].0, CLIENT_NET);
        let e = verify_icmp_echo(&out[0].1).unwrap();
        assert_eq!((e.dst_mac, e.src_mac), (CLIENT_MAC, PORT0_MAC));
        assert_eq!((e.src, e.dst), (target, CIP));
        assert_eq!((e.icmp_type, e.code, e.id, e.seq), (0, 0, 0x4242, 7));
        assert_eq!(e.payload, b"ping payload");
    }
    // An echo reply to us, or an echo request for an address of the other network, is not ours
    // to answer.
    let spec = FrameSpec::new(CIP, 0, DIP0, 0);
    h.expect_drop(
        CLIENT_NET,
        icmp_echo_frame(&spec, 0, 1, 1, b""),
        DropReason::LocalNotService,
    );
    let spec = FrameSpec::new(CIP, 0, DIP1, 0);
    h.expect_drop(
        CLIENT_NET,
        icmp_echo_frame(&spec, 8, 1, 1, b""),
        DropReason::LocalNotService,
    );
}

// ---- 2. A whole NAT connection -----------------------------------------------------------

#[test]
fn nat_connection_resolves_neighbours_and_walks_the_tcp_states() {
    let mut h = Harness::new();
    let cport = 40_000;

    // SYN: the real server is unknown, so the worker asks for it and holds the SYN.
    let out = h.rx(CLIENT_NET, client_syn(cport));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, SERVER_NET);
    let a = parse_arp(&out[0].1).unwrap();
    let rip = a.tpa;
    assert_eq!(rip, RIP1, "wrr starts with the heaviest dest");
    assert_eq!(
        a,
        Arp {
            eth_dst: MacAddr::BROADCAST,
            eth_src: PORT1_MAC,
            op: ARP_REQUEST,
            sha: PORT1_MAC,
            spa: DIP1,
            tha: MacAddr::ZERO,
            tpa: rip,
        }
    );
    assert_eq!(h.state(cport), "SYN_RECV");
    assert_eq!(h.counts(rip), (1, 0));

    // The real server answers: the SYN leaves, rewritten to it.
    let reply = arp_frame(PORT1_MAC, ARP_REPLY, RS1_MAC, rip, PORT1_MAC, DIP1);
    let out = h.rx(SERVER_NET, reply);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, SERVER_NET);
    let v = verify_frame(&out[0].1).unwrap();
    assert_eq!((v.dst_mac, v.src_mac), (RS1_MAC, PORT1_MAC));
    assert_eq!((v.src, v.sport, v.dst, v.dport), (CIP, cport, rip, 80));
    assert_eq!((v.ttl, v.tcp_flags), (63, 0x02));

    // SYN-ACK: translated back, held while the client is resolved, released by its reply.
    let f = tcp_frame(
        &FrameSpec::new(rip, 80, CIP, cport).macs(RS1_MAC, PORT1_MAC),
        SYN_ACK,
        b"",
    );
    let out = h.rx(SERVER_NET, f);
    assert_eq!(out.len(), 1);
    let a = parse_arp(&out[0].1).unwrap();
    assert_eq!(out[0].0, CLIENT_NET);
    assert_eq!(
        (a.eth_dst, a.op, a.sha, a.spa, a.tpa),
        (MacAddr::BROADCAST, ARP_REQUEST, PORT0_MAC, DIP0, CIP)
    );
    assert_eq!(h.state(cport), "SYN_RECV");
    let out = h.rx(
        CLIENT_NET,
        arp_frame(PORT0_MAC, ARP_REPLY, CLIENT_MAC, CIP, PORT0_MAC, DIP0),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, CLIENT_NET);
    let v = verify_frame(&out[0].1).unwrap();
    assert_eq!((v.dst_mac, v.src_mac), (CLIENT_MAC, PORT0_MAC));
    assert_eq!((v.src, v.sport, v.dst, v.dport), (VIP, 80, CIP, cport));
    assert_eq!((v.ttl, v.tcp_flags), (63, 0x12));
    assert_eq!(h.counts(rip), (1, 0));

    // Handshake done, data both ways.
    h.client_to_rs(cport, ACK, b"");
    assert_eq!(h.state(cport), "ESTABLISHED");
    assert_eq!(h.counts(rip), (1, 0));
    h.client_to_rs(cport, PSH_ACK, b"GET / HTTP/1.0\r\n\r\n");
    h.rs_to_client(rip, cport, PSH_ACK, b"HTTP/1.0 200 OK\r\n\r\nhello");
    assert_eq!(h.state(cport), "ESTABLISHED");
    let c = h.worker.conns(h.now).next().unwrap();
    assert_eq!(
        (c.client, c.virt, c.dest),
        ((CIP.into(), cport), (VIP.into(), 80), (rip.into(), 80))
    );
    assert_eq!(c.expires_in, 900);

    // The client closes first: CLOSE_WAIT (inactive from now on), then TIME_WAIT.
    h.client_to_rs(cport, FIN_ACK, b"");
    assert_eq!(h.state(cport), "CLOSE_WAIT");
    assert_eq!(h.counts(rip), (0, 1));
    h.rs_to_client(rip, cport, ACK, b"");
    assert_eq!(h.state(cport), "CLOSE_WAIT");
    h.rs_to_client(rip, cport, FIN_ACK, b"");
    assert_eq!(h.state(cport), "TIME_WAIT");
    h.client_to_rs(cport, ACK, b"");
    assert_eq!(h.state(cport), "TIME_WAIT");
    assert_eq!(h.counts(rip), (0, 1));
    assert_eq!(h.worker.conns(h.now).next().unwrap().expires_in, 120);

    // 3. TIME_WAIT runs out.
    h.advance(119);
    assert!(h.tick().is_empty());
    assert_eq!(h.worker.conn_count(), 1);
    h.advance(2);
    h.tick();
    assert_eq!(h.worker.conn_count(), 0);
    assert_eq!(h.counts(rip), (0, 0));
    assert_eq!(h.worker.drops().total(), 0);
    let d = h.dest(tcp_service(), rip);
    let t = d.stats().sum();
    assert_eq!((t.conns, t.inpkts, t.outpkts), (1, 5, 4));
}

#[test]
fn server_closes_first_goes_through_fin_wait() {
    let mut h = Harness::new();
    h.learn_all();
    let rip = h.syn(1);
    h.rs_to_client(rip, 1, SYN_ACK, b"");
    h.client_to_rs(1, ACK, b"");
    assert_eq!((h.state(1), h.counts(rip)), ("ESTABLISHED", (1, 0)));
    h.rs_to_client(rip, 1, FIN_ACK, b"");
    assert_eq!((h.state(1), h.counts(rip)), ("FIN_WAIT", (0, 1)));
    h.client_to_rs(1, ACK, b"");
    assert_eq!(h.state(1), "FIN_WAIT");
    h.client_to_rs(1, FIN_ACK, b"");
    assert_eq!((h.state(1), h.counts(rip)), ("TIME_WAIT", (0, 1)));
    h.advance(121);
    h.tick();
    assert_eq!((h.worker.conn_count(), h.counts(rip)), (0, (0, 0)));
}

// ---- 3. Timeouts ---------------------------------------------------------------------------

#[test]
fn half_open_connection_expires_after_syn_recv_timeout() {
    let mut h = Harness::new();
    h.learn_all();
    let rip = h.syn(5);
    assert_eq!(h.counts(rip), (1, 0));
    h.advance(59);
    h.tick();
    assert_eq!(h.worker.conn_count(), 1);
    h.advance(2);
    h.tick();
    assert_eq!((h.worker.conn_count(), h.counts(rip)), (0, (0, 0)));
}

fn udp_to_vip(h: &mut Harness, cport: u16) -> Verified {
    let f = udp_frame(&FrameSpec::new(CIP, cport, VIP, 53), b"query");
    let (port, out) = h.rx_forwarded(CLIENT_NET, f);
    let v = verify_frame(&out).unwrap();
    assert_eq!(
        (port, v.proto, v.src, v.sport, v.dport),
        (SERVER_NET, 17, CIP, cport, 53)
    );
    v
}

#[test]
fn udp_connection_lives_300_seconds_after_its_last_packet() {
    let mut h = Harness::new();
    h.learn_all();
    let rip = udp_to_vip(&mut h, 5353).dst;
    let d = h.dest(udp_service(), rip);
    assert_eq!((d.active_conns(), d.inactive_conns()), (0, 1));
    assert_eq!(h.state(5353), "UDP");

    // The reply comes back from the VIP.
    let f = udp_frame(
        &FrameSpec::new(rip, 53, CIP, 5353).macs(rs_mac(rip), PORT1_MAC),
        b"answer",
    );
    let out = h.rx(SERVER_NET, f);
    let v = verify_frame(&out[0].1).unwrap();
    assert_eq!(
        (out[0].0, v.src, v.sport, v.dst, v.dport),
        (CLIENT_NET, VIP, 53, CIP, 5353)
    );

    h.advance(200);
    udp_to_vip(&mut h, 5353);
    h.advance(299);
    h.tick();
    assert_eq!(h.worker.conn_count(), 1);
    h.advance(2);
    h.tick();
    assert_eq!(h.worker.conn_count(), 0);
    assert_eq!((d.active_conns(), d.inactive_conns()), (0, 0));
}

#[test]
fn shortened_timeouts_apply() {
    let mut t = Timeouts::default();
    t.set(30, 5, 7).unwrap();
    let mut h = Harness::build(1024, t);
    h.learn_all();
    let rip = udp_to_vip(&mut h, 9).dst;
    assert_eq!(h.worker.conns(h.now).next().unwrap().expires_in, 7);
    let trip = h.syn(10);
    h.rs_to_client(trip, 10, SYN_ACK, b"");
    h.client_to_rs(10, ACK, b"");
    assert_eq!(
        h.worker
            .conns(h.now)
            .find(|c| c.client.1 == 10)
            .unwrap()
            .expires_in,
        30
    );
    h.rs_to_client(trip, 10, FIN_ACK, b"");
    assert_eq!(h.state(10), "FIN_WAIT");
    h.advance(6);
    h.tick();
    assert_eq!(
        h.worker.conn_count(),
        1,
        "only the FIN_WAIT one (5 s) is gone"
    );
    assert_eq!(h.state(9), "UDP");
    h.advance(2);
    h.tick();
    assert_eq!(h.worker.conn_count(), 0);
    let d = h.dest(udp_service(), rip);
    assert_eq!((d.active_conns(), d.inactive_conns()), (0, 0));
    assert_eq!(h.counts(trip), (0, 0));
}

// ---- 4. Scheduling ---------------------------------------------------------------------------

#[test]
fn wrr_3_to_1_splits_40_connections_30_10() {
    let mut h = Harness::new();
    h.learn_all();
    let mut per_rs = [0u32; 2];
    for i in 0..40 {
        match h.syn(20_000 + i) {
            RIP1 => per_rs[0] += 1,
            RIP2 => per_rs[1] += 1,
            other => panic!("scheduled to {other}"),
        }
    }
    assert_eq!(per_rs, [30, 10]);
    assert_eq!(h.counts(RIP1), (30, 0));
    assert_eq!(h.counts(RIP2), (10, 0));
    assert_eq!(h.worker.conn_count(), 40);
}

// ---- 5. Bad input ----------------------------------------------------------------------------

#[test]
fn malformed_frames_are_dropped_with_their_reason() {
    let mut h = Harness::new();
    h.learn_all();
    let good = client_syn(1);
    let ip = 14;
    let tcp = ip + 20;

    h.expect_drop(CLIENT_NET, good[..10].to_vec(), DropReason::EthTruncated);
    h.expect_drop(CLIENT_NET, Vec::new(), DropReason::EthTruncated);
    let mut f = good.clone();
    f[12..14].copy_from_slice(&[0x88, 0xcc]);
    h.expect_drop(CLIENT_NET, f, DropReason::UnknownEthertype);
    let mut f = good.clone();
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    h.expect_drop(CLIENT_NET, f, DropReason::Ipv6Malformed);
    let mut f = good.clone();
    f[0..6].copy_from_slice(&RS2_MAC.0);
    h.expect_drop(CLIENT_NET, f, DropReason::NotOurMac);
    // A frame for port 0's MAC arriving on port 1 is not for port 1.
    h.expect_drop(SERVER_NET, good.clone(), DropReason::NotOurMac);
    h.expect_drop(
        CLIENT_NET,
        good[..ip + 12].to_vec(),
        DropReason::Ipv4Malformed,
    );
    let mut f = good.clone();
    f[ip] = 0x44;
    fix_ipv4_checksum(&mut f);
    h.expect_drop(CLIENT_NET, f, DropReason::Ipv4Malformed);
    let mut f = good.clone();
    f[ip] = 0x65;
    h.expect_drop(CLIENT_NET, f, DropReason::Ipv4Malformed);
    let mut f = good.clone();
    f[ip + 2..ip + 4].copy_from_slice(&100u16.to_be_bytes());
    fix_ipv4_checksum(&mut f);
    h.expect_drop(CLIENT_NET, f, DropReason::Ipv4BadLength);
    let mut f = good.clone();
    f[ip + 2..ip + 4].copy_from_slice(&10u16.to_be_bytes());
    fix_ipv4_checksum(&mut f);
    h.expect_drop(CLIENT_NET, f, DropReason::Ipv4BadLength);
    let mut f = good.clone();
    f[ip + 10] ^= 0x01;
    h.expect_drop(CLIENT_NET, f, DropReason::Ipv4BadChecksum);
    for frag in [[0x20, 0x00], [0x00, 0x10]] {
        let mut f = good.clone();
        f[ip + 6..ip + 8].copy_from_slice(&frag);
        fix_ipv4_checksum(&mut f);
        h.expect_drop(CLIENT_NET, f, DropReason::Ipv4Fragment);
    }
    for offset in [0xf0, 0x40, 0x00] {
        let mut f = good.clone();
        f[tcp + 12] = offset;
        h.expect_drop(CLIENT_NET, f, DropReason::TcpMalformed);
    }
    h.expect_drop(
        CLIENT_NET,
        good[..tcp + 10].to_vec(),
        DropReason::Ipv4BadLength,
    );
    let udp = udp_frame(&FrameSpec::new(CIP, 1, VIP, 53), b"x");
    let mut f = udp[..tcp + 4].to_vec();
    f[ip + 2..ip + 4].copy_from_slice(&24u16.to_be_bytes());
    fix_ipv4_checksum(&mut f);
    h.expect_drop(CLIENT_NET, f, DropReason::UdpMalformed);
    assert_eq!(h.worker.conn_count(), 0);
}

#[test]
fn segments_that_may_not_open_a_connection_are_dropped() {
    let mut h = Harness::new();
    h.learn_all();
    let spec = FrameSpec::new(CIP, 7, VIP, 80);
    h.expect_drop(
        CLIENT_NET,
        tcp_frame(&spec, ACK, b""),
        DropReason::TcpNoConnection,
    );
    h.expect_drop(
        CLIENT_NET,
        tcp_frame(&spec, SYN_FIN, b""),
        DropReason::TcpNoConnection,
    );
    h.expect_drop(
        CLIENT_NET,
        tcp_frame(&spec, SYN_ACK, b""),
        DropReason::TcpNoConnection,
    );
    h.expect_drop(
        CLIENT_NET,
        tcp_frame(&spec, TcpFlags(0x06), b""),
        DropReason::TcpNoConnection,
    );
    let mut f = tcp_frame(&spec, SYN, b"");
    f[14 + 20 + 16] ^= 0xff;
    h.expect_drop(CLIENT_NET, f, DropReason::L4BadChecksum);
    let mut f = udp_frame(&FrameSpec::new(CIP, 7, VIP, 53), b"q");
    f[14 + 20 + 6] ^= 0xff;
    h.expect_drop(CLIENT_NET, f, DropReason::L4BadChecksum);
    assert_eq!(h.worker.conn_count(), 0);
    assert_eq!(h.counts(RIP1), (0, 0));
}

#[test]
fn ttl_1_is_dropped_without_opening_or_changing_a_connection() {
    let mut h = Harness::new();
    h.learn_all();
    let mut spec = FrameSpec::new(CIP, 8, VIP, 80);
    spec.ttl = 1;
    h.expect_drop(
        CLIENT_NET,
        tcp_frame(&spec, SYN, b""),
        DropReason::TtlExceeded,
    );
    assert_eq!(h.worker.conn_count(), 0);
    assert_eq!(h.counts(RIP1), (0, 0));

    let rip = h.syn(8);
    h.expect_drop(
        CLIENT_NET,
        tcp_frame(&spec, FIN_ACK, b""),
        DropReason::TtlExceeded,
    );
    assert_eq!((h.state(8), h.counts(rip)), ("SYN_RECV", (1, 0)));
    // TTL 2 still goes through, leaving with 1.
    spec.ttl = 2;
    let out = h.rx(CLIENT_NET, tcp_frame(&spec, ACK, b""));
    assert_eq!(verify_frame(&out[0].1).unwrap().ttl, 1);
    assert_eq!(h.state(8), "ESTABLISHED");
}

#[test]
fn traffic_for_others_or_for_no_service_is_dropped() {
    let mut h = Harness::new();
    h.learn_all();
    let elsewhere = Ipv4Addr::new(198, 18, 0, 200);
    let f = tcp_frame(&FrameSpec::new(CIP, 9, elsewhere, 80), SYN, b"");
    h.expect_drop(CLIENT_NET, f, DropReason::NotForUs);
    let f = udp_frame(&FrameSpec::new(CIP, 9, elsewhere, 53), b"");
    h.expect_drop(CLIENT_NET, f, DropReason::NotForUs);
    let f = tcp_frame(&FrameSpec::new(CIP, 9, VIP, 443), SYN, b"");
    h.expect_drop(CLIENT_NET, f, DropReason::LocalNotService);
    let f = tcp_frame(&FrameSpec::new(CIP, 9, DIP0, 22), SYN, b"");
    h.expect_drop(CLIENT_NET, f, DropReason::LocalNotService);
    // A stray reply from a real server without a connection.
    let f = tcp_frame(
        &FrameSpec::new(RIP1, 80, CIP, 9).macs(RS1_MAC, PORT1_MAC),
        SYN_ACK,
        b"",
    );
    h.expect_drop(SERVER_NET, f, DropReason::NotForUs);
    assert_eq!(h.worker.conn_count(), 0);
}

#[test]
fn direct_routing_dest_takes_connections() {
    let mut h = Harness::new();
    h.learn_all();
    let f = tcp_frame(&FrameSpec::new(CIP, 11, VIP, ROUTE_PORT), SYN, b"");
    let (port, out) = h.rx_forwarded(CLIENT_NET, f.clone());
    assert_eq!(port, SERVER_NET);
    assert_eq!(&out[14..], &f[14..]);
    assert_eq!(h.worker.conn_count(), 1);
    let d = h.dest(route_service(), RIP1);
    assert_eq!((d.active_conns(), d.inactive_conns()), (1, 0));
}

#[test]
fn full_table_refuses_new_connections_and_keeps_old_ones() {
    let mut h = Harness::build(2, Timeouts::default());
    h.learn_all();
    let r1 = h.syn(1);
    let r2 = h.syn(2);
    // Established connections are never evicted for a new one (embryonic ones are, see
    // `tests::pressure`).
    h.rs_to_client(r1, 1, SYN_ACK, b"");
    h.client_to_rs(1, ACK, b"");
    h.rs_to_client(r2, 2, SYN_ACK, b"");
    h.client_to_rs(2, ACK, b"");
    h.expect_drop(CLIENT_NET, client_syn(3), DropReason::ConnTableFull);
    let f = udp_frame(&FrameSpec::new(CIP, 3, VIP, 53), b"q");
    h.expect_drop(CLIENT_NET, f, DropReason::ConnTableFull);
    assert_eq!(h.worker.conn_count(), 2);
    assert_eq!((h.state(1), h.state(2)), ("ESTABLISHED", "ESTABLISHED"));
    h.worker.publish_stats();
    assert_eq!(h.stats.conns.load(Ordering::Relaxed), 2);
    assert_eq!(h.stats.conn_capacity.load(Ordering::Relaxed), 2);
    assert_eq!(h.stats.drop_count(DropReason::ConnTableFull), 2);
}

#[test]
fn packets_of_a_deleted_dest_are_dropped_and_the_connection_forgotten() {
    let mut h = Harness::new();
    h.learn_all();
    let rip = h.syn(1);
    let other = if rip == RIP1 { RIP2 } else { RIP1 };
    h.services.del_dest(&tcp_service(), rip.into(), 80).unwrap();
    h.publish();
    let f = tcp_frame(&FrameSpec::new(CIP, 1, VIP, 80), ACK, b"");
    h.expect_drop(CLIENT_NET, f, DropReason::DestRemoved);
    assert_eq!(h.worker.conn_count(), 0);
    // The client tries again and lands on the remaining dest.
    assert_eq!(h.syn(1), other);
}

#[test]
fn neighbour_queue_overflow_timeout_and_alloc_failure_are_counted() {
    // Room for three SYN frames per unresolved neighbour.
    let syn_len = client_syn(1).len();
    let mut h = Harness::with_neigh(NeighConfig {
        queue_bytes: 3 * syn_len,
        ..NeighConfig::default()
    });
    h.learn(CLIENT_NET, CIP, CLIENT_MAC);
    // The real servers never answer. wrr 3:1 picks RS1, RS1, RS2, RS1, RS1: one ARP request per
    // server, three SYNs wait for RS1 and one for RS2, the fifth overflows RS1's queue.
    let mut asked = Vec::new();
    for cport in 1..=4 {
        for (port, f) in h.rx(CLIENT_NET, client_syn(cport)) {
            assert_eq!(port, SERVER_NET);
            asked.push(parse_arp(&f).unwrap().tpa);
        }
    }
    assert_eq!(asked, [RIP1, RIP2]);
    h.expect_drop(CLIENT_NET, client_syn(5), DropReason::NeighQueueFull);
    assert_eq!(h.worker.conn_count(), 5);
    // The retransmits find no buffer; then both resolutions fail and the waiting SYNs count.
    h.io.fail_alloc = true;
    h.advance(1);
    assert!(h.tick().is_empty());
    assert_eq!(h.drops(DropReason::NoBuffer), 2);
    h.io.fail_alloc = false;
    for _ in 0..4 {
        h.advance(1);
        h.tick();
    }
    assert_eq!(h.drops(DropReason::NeighTimeout), 4);
    assert_eq!(h.drops(DropReason::NoBuffer), 2);
}

/// A burst of new connections to real servers nobody has resolved yet (just added): every SYN
/// waits (Linux's byte budget per neighbour), and each server's share leaves in arrival order
/// when its ARP reply comes; nothing is dropped.
#[test]
fn a_syn_burst_to_unresolved_servers_waits_and_leaves_in_order() {
    let mut h = Harness::new();
    h.learn(CLIENT_NET, CIP, CLIENT_MAC);
    let mut asked = Vec::new();
    for cport in 1..=400 {
        for (_, f) in h.rx(CLIENT_NET, client_syn(cport)) {
            asked.push(parse_arp(&f).unwrap().tpa);
        }
    }
    assert_eq!(asked, [RIP1, RIP2]);
    let mut released = Vec::new();
    for (rip, mac) in [(RIP1, RS1_MAC), (RIP2, RS2_MAC)] {
        let reply = arp_frame(PORT1_MAC, ARP_REPLY, mac, rip, PORT1_MAC, DIP1);
        for (port, f) in h.rx(SERVER_NET, reply) {
            assert_eq!(port, SERVER_NET);
            let v = verify_frame(&f).unwrap();
            assert_eq!((v.dst, v.dst_mac), (rip, mac));
            released.push((rip, v.sport));
        }
    }
    assert_eq!(released.len(), 400);
    for rip in [RIP1, RIP2] {
        let ports: Vec<u16> = released
            .iter()
            .filter(|r| r.0 == rip)
            .map(|r| r.1)
            .collect();
        assert!(ports.windows(2).all(|w| w[0] < w[1]), "{rip}: out of order");
    }
    h.worker.publish_stats();
    assert_eq!(h.stats.drops().map(|(_, n)| n).sum::<u64>(), 0);
}

// ---- 7. Snapshot swap ---------------------------------------------------------------------

#[test]
fn weight_change_mid_stream_keeps_existing_connections() {
    let mut h = Harness::new();
    h.learn_all();
    let rip = h.syn(1);
    assert_eq!(rip, RIP1);
    h.rs_to_client(rip, 1, SYN_ACK, b"");

    // Quiesce RS1 and make RS2 heavy: the open connection stays on RS1, new ones go to RS2.
    let mut d1 = *h.dest(tcp_service(), RIP1).config();
    d1.weight = 0;
    h.services.edit_dest(&tcp_service(), d1).unwrap();
    let mut d2 = *h.dest(tcp_service(), RIP2).config();
    d2.weight = 5;
    h.services.edit_dest(&tcp_service(), d2).unwrap();
    h.publish();

    let v = h.client_to_rs(1, ACK, b"");
    assert_eq!(v.dst, RIP1);
    h.client_to_rs(1, PSH_ACK, b"more");
    h.rs_to_client(RIP1, 1, PSH_ACK, b"data");
    assert_eq!(h.state(1), "ESTABLISHED");
    assert_eq!(h.counts(RIP1), (1, 0), "counts survive the edit");
    for cport in 2..12 {
        assert_eq!(h.syn(cport), RIP2);
    }
    assert_eq!(h.counts(RIP2), (10, 0));

    // Back to 3:1: the scheduler follows the new snapshot.
    d1.weight = 3;
    h.services.edit_dest(&tcp_service(), d1).unwrap();
    d2.weight = 1;
    h.services.edit_dest(&tcp_service(), d2).unwrap();
    h.publish();
    let picks: Vec<_> = (100..108).map(|p| h.syn(p)).collect();
    assert_eq!(picks.iter().filter(|r| **r == RIP1).count(), 6);
    h.client_to_rs(1, FIN_ACK, b"");
    assert_eq!((h.state(1), h.counts(RIP1).1), ("CLOSE_WAIT", 1));
}

// ---- 6. Anything at all ---------------------------------------------------------------------

/// Valid frames of every kind the worker handles, to be mutated.
/// Template `template` with the bytes at `flips` XORed and cut to `keep`, on its own port (or
/// on port 2, which has no setup, when `port` is 3).
fn mutated(
    templates: &[(PortId, Vec<u8>)],
    port: u16,
    template: usize,
    flips: &[(usize, u8)],
    keep: Option<usize>,
) -> (PortId, Vec<u8>) {
    let (p, mut f) = templates[template].clone();
    for &(at, x) in flips {
        if let Some(b) = f.get_mut(at) {
            *b ^= x;
        }
    }
    if let Some(n) = keep {
        f.truncate(n);
    }
    (if port == 3 { 2 } else { p }, f)
}

fn templates() -> Vec<(PortId, Vec<u8>)> {
    let to_rs = |rip| FrameSpec::new(rip, 80, CIP, 1).macs(rs_mac(rip), PORT1_MAC);
    vec![
        (CLIENT_NET, client_syn(1)),
        (CLIENT_NET, client_syn(2)),
        (
            CLIENT_NET,
            tcp_frame(&FrameSpec::new(CIP, 1, VIP, 80), ACK, b"data"),
        ),
        (
            CLIENT_NET,
            tcp_frame(&FrameSpec::new(CIP, 1, VIP, 80), FIN_ACK, b""),
        ),
        (SERVER_NET, tcp_frame(&to_rs(RIP1), SYN_ACK, b"")),
        (SERVER_NET, tcp_frame(&to_rs(RIP2), PSH_ACK, b"reply")),
        (
            CLIENT_NET,
            udp_frame(&FrameSpec::new(CIP, 3, VIP, 53), b"q"),
        ),
        (
            CLIENT_NET,
            icmp_echo_frame(&FrameSpec::new(CIP, 0, VIP, 0), 8, 1, 1, b"p"),
        ),
        (CLIENT_NET, client_arp_request(VIP)),
        (
            SERVER_NET,
            arp_frame(PORT1_MAC, ARP_REPLY, RS1_MAC, RIP1, PORT1_MAC, DIP1),
        ),
        (
            SERVER_NET,
            arp_frame(PORT1_MAC, ARP_REPLY, RS2_MAC, RIP2, PORT1_MAC, DIP1),
        ),
        (
            CLIENT_NET,
            arp_frame(PORT0_MAC, ARP_REPLY, CLIENT_MAC, CIP, PORT0_MAC, DIP0),
        ),
    ]
}

#[derive(Debug, Clone)]
enum Input {
    Random(u16, Vec<u8>),
    Mutated {
        port: u16,
        template: usize,
        flips: Vec<(usize, u8)>,
        keep: Option<usize>,
    },
    Tick(u8),
    AllocFails(bool),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        2 => (0u16..3, proptest::collection::vec(any::<u8>(), 0..120))
            .prop_map(|(p, b)| Input::Random(p, b)),
        6 => (
            0u16..4,
            0usize..12,
            proptest::collection::vec((0usize..80, 1u8..=255), 0..3),
            proptest::option::weighted(0.2, 0usize..80),
        )
            .prop_map(|(port, template, flips, keep)| Input::Mutated {
                port,
                template,
                flips,
                keep,
            }),
        1 => (0u8..4).prop_map(Input::Tick),
        1 => any::<bool>().prop_map(Input::AllocFails),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever arrives, the worker never panics and accounts for every received frame:
    /// once the neighbour queues have drained (resolved or timed out),
    /// `rx_packets + alloc attempts == tx_packets + rx_consumed + drops`, where an alloc attempt
    /// (an ARP request the worker makes) is either transmitted or counted as `no_buffer`. One
    /// received frame is counted as at most one drop.
    #[test]
    fn every_frame_is_sent_consumed_or_dropped_once(
        learnt: bool,
        inputs in proptest::collection::vec(input(), 1..24),
    ) {
        let mut h = Harness::new();
        if learnt {
            h.learn_all();
        }
        let templates = templates();
        h.worker.publish_stats();
        let mut sent = h.stats.tx_packets.load(Ordering::Relaxed);
        for i in inputs {
            let frame = match i {
                Input::Random(port, bytes) => Some((port, bytes)),
                Input::Mutated { port, template, flips, keep } => {
                    Some(mutated(&templates, port, template, &flips, keep))
                }
                Input::Tick(secs) => {
                    h.advance(u64::from(secs));
                    sent += h.tick().len() as u64;
                    None
                }
                Input::AllocFails(fail) => {
                    h.io.fail_alloc = fail;
                    None
                }
            };
            if let Some((port, f)) = frame {
                rx_counted(&mut h, port, f, &mut sent)?;
            }
        }
        h.io.fail_alloc = false;
        for _ in 0..6 {
            h.advance(1);
            sent += h.tick().len() as u64;
        }
        all_accounted(&mut h, sent)?;
    }
}

/// Hand `f` to the worker on `port`: at most one drop for it (the missing buffers of the
/// copies it asks for aside), every frame out on a port of the harness and at least an
/// Ethernet header long; what it sent is added to `sent`.
fn rx_counted(
    h: &mut Harness,
    port: PortId,
    f: Vec<u8>,
    sent: &mut u64,
) -> Result<(), TestCaseError> {
    let drops = h.worker.drops().total() - h.drops(DropReason::NoBuffer);
    let out = h.rx(port, f);
    *sent += out.len() as u64;
    let new_drops = h.worker.drops().total() - h.drops(DropReason::NoBuffer);
    prop_assert!(new_drops - drops <= 1);
    for (p, o) in &out {
        prop_assert!(*p < 2);
        prop_assert!(o.len() >= 14);
    }
    Ok(())
}

/// Every frame is accounted: the worker counted the `sent` frames the harness saw, and
/// `rx_packets + alloc attempts == tx_packets + rx_consumed + drops`.
fn all_accounted(h: &mut Harness, sent: u64) -> Result<(), TestCaseError> {
    h.worker.publish_stats();
    let s = &h.stats;
    let rx = s.rx_packets.load(Ordering::Relaxed);
    let tx = s.tx_packets.load(Ordering::Relaxed);
    let consumed = s.rx_consumed.load(Ordering::Relaxed);
    let drops: u64 = s.drops().map(|(_, n)| n).sum();
    prop_assert_eq!(tx, sent);
    prop_assert_eq!(rx + h.io.allocs, tx + consumed + drops);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The staged burst path is the one-by-one path: the same frames (hits, misses, ARP, junk,
    /// mutated templates), cut into bursts anywhere, give the same frames out in the same order
    /// and the same counters, and every frame is still sent, consumed or dropped exactly once.
    #[test]
    fn bursts_behave_as_frames_one_by_one(
        learnt: bool,
        inputs in proptest::collection::vec(input(), 1..48),
        cuts in proptest::collection::vec(any::<bool>(), 48),
    ) {
        let (mut one, mut many) = (Harness::new(), Harness::new());
        if learnt {
            one.learn_all();
            many.learn_all();
        }
        let templates = templates();
        many.worker.publish_stats();
        let tx0 = many.stats.tx_packets.load(Ordering::Relaxed);
        let mut burst: Vec<HeapBuf> = Vec::new();
        let mut burst_port = 0;
        let (mut out_one, mut out_many) = (Vec::new(), Vec::new());
        let flush = |h: &mut Harness, burst: &mut Vec<HeapBuf>, port, out: &mut Vec<_>| {
            h.worker.process_burst(h.now, port, burst, &mut h.io);
            prop_assert!(burst.is_empty());
            out.append(&mut h.io.sent);
            Ok(())
        };
        for (k, i) in inputs.into_iter().enumerate() {
            let frame = match i {
                Input::Random(port, bytes) => Some((port, bytes)),
                Input::Mutated { port, template, flips, keep } => {
                    Some(mutated(&templates, port, template, &flips, keep))
                }
                Input::Tick(secs) => {
                    flush(&mut many, &mut burst, burst_port, &mut out_many)?;
                    for h in [&mut one, &mut many] {
                        h.advance(u64::from(secs));
                    }
                    out_one.extend(one.tick());
                    out_many.extend(many.tick());
                    None
                }
                Input::AllocFails(fail) => {
                    flush(&mut many, &mut burst, burst_port, &mut out_many)?;
                    one.io.fail_alloc = fail;
                    many.io.fail_alloc = fail;
                    None
                }
            };
            if let Some((port, f)) = frame {
                out_one.extend(one.rx(port, f.clone()));
                if port != burst_port || cuts[k % cuts.len()] {
                    flush(&mut many, &mut burst, burst_port, &mut out_many)?;
                    burst_port = port;
                }
                burst.push(HeapBuf::from_bytes(&f));
            }
        }
        flush(&mut many, &mut burst, burst_port, &mut out_many)?;
        prop_assert_eq!(&out_one, &out_many);
        let d1: Vec<_> = one.worker.drops().iter().collect();
        let d2: Vec<_> = many.worker.drops().iter().collect();
        prop_assert_eq!(d1, d2);
        prop_assert_eq!(one.worker.conn_count(), many.worker.conn_count());
        many.worker.publish_stats();
        let s = &many.stats;
        let rx = s.rx_packets.load(Ordering::Relaxed);
        let tx = s.tx_packets.load(Ordering::Relaxed);
        let consumed = s.rx_consumed.load(Ordering::Relaxed);
        let drops: u64 = s.drops().map(|(_, n)| n).sum();
        prop_assert_eq!(tx - tx0, out_many.len() as u64);
        // Every frame accounted once (frames still waiting for a neighbour are the rest).
        prop_assert!(rx + many.io.allocs >= tx + consumed + drops);
    }
}

/// A burst longer than the stage arrays is taken in chunks, in order.
#[test]
fn long_bursts_are_taken_in_order() {
    let mut h = Harness::new();
    h.learn_all();
    let mut burst: Vec<HeapBuf> = (0..150)
        .map(|i| HeapBuf::from_bytes(&client_syn(1000 + i)))
        .collect();
    let now = h.now;
    h.worker
        .process_burst(now, CLIENT_NET, &mut burst, &mut h.io);
    assert!(burst.is_empty());
    let sent = std::mem::take(&mut h.io.sent);
    assert_eq!(sent.len(), 150, "{:?}", h.worker.drops());
    for (i, (_, f)) in sent.iter().enumerate() {
        assert_eq!(verify_frame(f).unwrap().sport, 1000 + i as u16);
    }
    assert_eq!(h.worker.conn_count(), 150);
}

#[test]
fn static_neighbour_installed_while_packets_wait_counts_them() {
    let mut h = Harness::new();
    h.learn(CLIENT_NET, CIP, CLIENT_MAC);
    let out = h.rx(CLIENT_NET, client_syn(1));
    assert_eq!(parse_arp(&out[0].1).unwrap().tpa, RIP1);
    let mut t = (*tables(&mut h.services, h.timeouts)).clone();
    t.static_neighs.push(super::StaticNeigh {
        port: SERVER_NET,
        ip: RIP1,
        mac: RS1_MAC,
    });
    h.worker.set_tables(Arc::new(t));
    assert_eq!(
        h.drops(DropReason::NeighTimeout),
        1,
        "the waiting SYN is counted"
    );
    // From now on RS1 is known without ARP.
    let v = h.client_to_rs(1, ACK, b"");
    assert_eq!((v.dst, v.dst_mac), (RIP1, RS1_MAC));
    h.advance(10);
    h.tick();
    assert_eq!(h.client_to_rs(1, ACK, b"").dst_mac, RS1_MAC);
    h.worker.publish_stats();
    let s = &h.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let drops: u64 = s.drops().map(|(_, n)| n).sum();
    assert_eq!(
        load(&s.rx_packets) + h.io.allocs,
        load(&s.tx_packets) + load(&s.rx_consumed) + drops
    );
}

mod admit;
mod ipv6;
mod ipv6_flows;
mod kernel;
mod methods;
mod multi;
mod persist;
mod pressure;
mod proxyhdr;
mod restore;
mod restore6;
mod sloppy;
mod synproxy;
