//! `Worker::process` under fuzz: one worker on two ports (clients on port 0, real servers on
//! port 1) with a service of every forwarding method for both families (NAT64 included),
//! static neighbours, a clock the input advances and ticks the input asks for.
//!
//! Invariants checked on every input (a violation panics, which is a finding): no frame sent is
//! longer than the port's MTU allows, the connection table never passes its capacity, and once
//! the clock has run far past every timeout, ticks empty the table and every real server's
//! active and inactive counts are back to zero.

use core::time::Duration;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use dataplane::conn::Timeouts;
use dataplane::l3::addr::{OwnedAddrs, PortId};
use dataplane::l3::neigh::NeighConfig;
use dataplane::l3::route::RouteTable;
use dataplane::laddr::{Laddr, LaddrStats, LaddrTable};
use dataplane::packet::{HeapBuf, PacketBuf};
use dataplane::service::{
    ClientAddr, DestConfig, ForwardMethod, Protocol, ProxyProtocol, ServiceConfig, ServiceKey,
    ServiceTable, UoaMode,
};
use dataplane::time::Instant;
use dataplane::wire::{MacAddr, checksum};
use dataplane::worker::{Io, PortSetup, StaticNeigh, Tables, Worker, WorkerConfig, WorkerStats};

const CLIENT_NET: PortId = 0;
const SERVER_NET: PortId = 1;
const MTU: usize = 1500;
/// The largest frame a port takes or sends: MTU plus the Ethernet header.
pub const MAX_FRAME: usize = MTU + 14;
const CONN_CAPACITY: usize = 64;
/// Longer than every timeout the rig's tables set (the TCP states without a `--set` value keep
/// their defaults, 120 s at most).
const DRAIN_SECS: u32 = 240;

const PORT_MAC: [MacAddr; 2] = [
    MacAddr([2, 0, 0, 0, 0xf0, 0]),
    MacAddr([2, 0, 0, 0, 0xf0, 1]),
];
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0xc1, 0]);
const RS_MAC: [MacAddr; 2] = [
    MacAddr([2, 0, 0, 0, 0xa1, 1]),
    MacAddr([2, 0, 0, 0, 0xa1, 2]),
];
const DIP0: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const DIP1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const RIPS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 11), Ipv4Addr::new(198, 18, 1, 12)];
const LIPS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 3)];

const TCP: u8 = 6;
const UDP: u8 = 17;

const DIP6_0: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const DIP6_1: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 1, 0, 0, 0, 0, 1);
const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);
const RIP6S: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 2, 1, 0, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 2, 1, 0, 0, 0, 0, 0x12),
];
const LIP6S: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 2, 1, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0x2001, 2, 1, 0, 0, 0, 0, 3),
];

/// The IPv6 services on VIP6: (protocol, vport, real-server port, method, IPv4 real servers
/// (NAT64)).
const SERVICES6: [(u8, u16, u16, ForwardMethod, bool); 8] = [
    (TCP, 80, 80, ForwardMethod::Masq, false),
    (UDP, 53, 53, ForwardMethod::Masq, false),
    (TCP, 8083, 8083, ForwardMethod::Route, false),
    (TCP, 8081, 8081, ForwardMethod::Tunnel, false),
    (TCP, 8082, 80, ForwardMethod::FullNat, false),
    (UDP, 55, 53, ForwardMethod::FullNat, false),
    (TCP, 8086, 80, ForwardMethod::FullNat, true),
    (UDP, 58, 53, ForwardMethod::FullNat, true),
];

/// The virtual services: (protocol, vport, real-server port, method).
const SERVICES: [(u8, u16, u16, ForwardMethod); 11] = [
    (TCP, 80, 80, ForwardMethod::Masq),
    (UDP, 53, 53, ForwardMethod::Masq),
    (TCP, 8083, 8083, ForwardMethod::Route),
    (TCP, 8081, 8081, ForwardMethod::Tunnel),
    (TCP, 8082, 80, ForwardMethod::FullNat),
    (UDP, 55, 53, ForwardMethod::FullNat),
    (TCP, SYNPROXY_PORT, 80, ForwardMethod::Masq),
    (TCP, PP_SYNPROXY_PORT, 80, ForwardMethod::FullNat),
    (TCP, 8085, 80, ForwardMethod::FullNat),
    (UDP, 56, 53, ForwardMethod::FullNat),
    (UDP, 57, 53, ForwardMethod::FullNat),
];
/// The service with the SYN proxy on (`-j enable`).
const SYNPROXY_PORT: u16 = 9000;
/// FULLNAT with the SYN proxy and a PROXY v2 header on the same connections.
const PP_SYNPROXY_PORT: u16 = 8084;

/// How the FULLNAT services tell their servers the client's address: TOA on 8082 and 55 (the
/// defaults), PROXY v2 (with the SYN proxy) on 8084, v1-insecure on 8085, v2 on UDP 56, UOA
/// as an IP option on UDP 57.
fn client_addr(vport: u16) -> ClientAddr {
    let with = |proxy, uoa| ClientAddr {
        proxy,
        uoa,
        ..ClientAddr::default()
    };
    match vport {
        PP_SYNPROXY_PORT | 56 => with(ProxyProtocol::V2, UoaMode::Disable),
        8085 => with(ProxyProtocol::V1Insecure, UoaMode::Disable),
        57 => with(ProxyProtocol::Disable, UoaMode::Ipo),
        _ => ClientAddr::default(),
    }
}

/// TCP flags a structured record picks from: SYN, ACK, PSH|ACK, FIN|ACK, RST, SYN|ACK,
/// RST|ACK, none.
const FLAGS: [u8; 8] = [0x02, 0x10, 0x18, 0x11, 0x04, 0x12, 0x14, 0x00];

fn key(protocol: u8, vport: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: if protocol == TCP {
            Protocol::Tcp
        } else {
            Protocol::Udp
        },
        vip: VIP.into(),
        vport,
    }
}

fn key6(protocol: u8, vport: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: if protocol == TCP {
            Protocol::Tcp
        } else {
            Protocol::Udp
        },
        vip: VIP6.into(),
        vport,
    }
}

/// The real servers of an IPv6 service (IPv4 ones for NAT64).
fn rips6(nat64: bool) -> [std::net::IpAddr; 2] {
    if nat64 {
        RIPS.map(Into::into)
    } else {
        RIP6S.map(Into::into)
    }
}

/// The runtime as the worker sees it: frames sent are checked and the last few kept (replies
/// and ICMP errors are built from them).
#[derive(Default)]
struct Capture {
    recent: Vec<(PortId, Vec<u8>)>,
    next: usize,
    sent: u64,
}

const RECENT: usize = 8;

impl Io<HeapBuf> for Capture {
    fn transmit(&mut self, port: PortId, buf: HeapBuf) {
        let f = buf.data();
        assert!(port <= SERVER_NET, "sent on port {port}");
        assert!(
            f.len() >= 14 && f.len() <= MAX_FRAME,
            "sent a {}-byte frame on port {port}",
            f.len()
        );
        self.sent += 1;
        let entry = (port, f.to_vec());
        if self.recent.len() < RECENT {
            self.recent.push(entry);
        } else {
            self.recent[self.next % RECENT] = entry;
        }
        self.next += 1;
    }

    fn alloc(&mut self) -> Option<HeapBuf> {
        Some(HeapBuf::new())
    }
}

/// One worker with every method's services, its clock and what it sent.
pub struct Rig {
    worker: Worker<HeapBuf>,
    stats: Arc<WorkerStats>,
    services: ServiceTable,
    io: Capture,
    now: Instant,
}

impl Default for Rig {
    fn default() -> Self {
        Rig::new()
    }
}

impl Rig {
    pub fn new() -> Rig {
        let mut services = ServiceTable::new(1);
        for (proto, vport, rport, method) in SERVICES {
            let k = key(proto, vport);
            let mut c = ServiceConfig::new(k, "rr");
            c.synproxy = vport == SYNPROXY_PORT || vport == PP_SYNPROXY_PORT;
            c.client_addr = client_addr(vport);
            services.add_service(c).expect("service");
            for rip in RIPS {
                services
                    .add_dest(&k, DestConfig::new(rip, rport, method))
                    .expect("dest");
            }
        }
        for (proto, vport, rport, method, nat64) in SERVICES6 {
            let k = key6(proto, vport);
            services
                .add_service(ServiceConfig::new(k, "rr"))
                .expect("service");
            for rip in rips6(nat64) {
                services
                    .add_dest(&k, DestConfig::new(rip, rport, method))
                    .expect("dest");
            }
        }
        let mut addrs = OwnedAddrs::new();
        addrs.add(CLIENT_NET, DIP0, 24).expect("address");
        addrs.add(SERVER_NET, DIP1, 24).expect("address");
        addrs.add6(CLIENT_NET, DIP6_0, 64).expect("address");
        addrs.add6(SERVER_NET, DIP6_1, 64).expect("address");
        let mut laddrs = LaddrTable::new(1);
        for (proto, vport, _, method) in SERVICES {
            if method != ForwardMethod::FullNat {
                continue;
            }
            let svc = services.service(&key(proto, vport)).expect("service").id();
            let l = LIPS
                .iter()
                .map(|&ip| Laddr {
                    ip: ip.into(),
                    port: SERVER_NET,
                    ifname: "dp1".into(),
                    stats: Arc::new(LaddrStats::new(1)),
                })
                .collect();
            laddrs.set(svc, l);
        }
        for (proto, vport, _, method, nat64) in SERVICES6 {
            if method != ForwardMethod::FullNat {
                continue;
            }
            let svc = services.service(&key6(proto, vport)).expect("service").id();
            let ips: [std::net::IpAddr; 2] = if nat64 {
                LIPS.map(Into::into)
            } else {
                LIP6S.map(Into::into)
            };
            let l = ips
                .iter()
                .map(|&ip| Laddr {
                    ip,
                    port: SERVER_NET,
                    ifname: "dp1".into(),
                    stats: Arc::new(LaddrStats::new(1)),
                })
                .collect();
            laddrs.set(svc, l);
        }
        let mut static_neighs6 = vec![StaticNeigh {
            port: CLIENT_NET,
            ip: CIP6,
            mac: CLIENT_MAC,
        }];
        static_neighs6.extend(RIP6S.iter().zip(RS_MAC).map(|(&ip, mac)| StaticNeigh {
            port: SERVER_NET,
            ip,
            mac,
        }));
        let mut static_neighs = vec![StaticNeigh {
            port: CLIENT_NET,
            ip: CIP,
            mac: CLIENT_MAC,
        }];
        static_neighs.extend(RIPS.iter().zip(RS_MAC).map(|(&ip, mac)| StaticNeigh {
            port: SERVER_NET,
            ip,
            mac,
        }));
        // Shorter than the defaults (900 s established), so that the clock passes them in
        // a few records and the final drain has little of the timer wheel to turn.
        let mut timeouts = Timeouts::default();
        timeouts.set(DRAIN_SECS / 2, 30, 60).expect("timeouts");
        let routes6 = RouteTable::with_connected6(&addrs);
        let tables = Arc::new(Tables {
            services: services.snapshot(),
            routes: RouteTable::with_connected(&addrs),
            addrs,
            static_neighs,
            v6: dataplane::worker::Tables6 {
                routes: routes6,
                static_neighs: static_neighs6,
            },
            timeouts,
            laddrs: Arc::new(laddrs),
            persist: Arc::new(dataplane::persist::PersistTable::new(64, 1)),
            fwmarks: Arc::new(dataplane::fwmark::Classifier::default()),
            sloppy_tcp: false,
            synproxy: dataplane::synproxy::SynProxyConf::new(
                dataplane::synproxy::cookie::Secrets::from_bytes([7; 32]),
            ),
        });
        let cfg = WorkerConfig {
            id: 0,
            ports: PORT_MAC
                .iter()
                .map(|&mac| PortSetup {
                    mac,
                    mtu: MTU as u16,
                })
                .collect(),
            conn_capacity: CONN_CAPACITY,
            conn_capacity6: CONN_CAPACITY,
            neigh: NeighConfig::default(),
            icmp: Default::default(),
            workers: 1,
        };
        let stats = Arc::new(WorkerStats::default());
        Rig {
            worker: Worker::new(cfg, tables, stats.clone(), 0xf022),
            stats,
            services,
            io: Capture::default(),
            now: Instant::from_secs(1_000),
        }
    }

    /// Hand `frame` to the worker on `port`.
    pub fn rx(&mut self, port: PortId, frame: &[u8]) {
        self.worker
            .process(self.now, port, HeapBuf::from_bytes(frame), &mut self.io);
        assert!(
            self.worker.conn_count() <= CONN_CAPACITY,
            "{} connections in a table of {CONN_CAPACITY}",
            self.worker.conn_count()
        );
    }

    /// Advance the clock by `code`: 0..=30 steps of 200 ms, 31 a jump of two minutes.
    pub fn advance(&mut self, code: u8) {
        let d = match code & 0x1f {
            31 => Duration::from_secs(120),
            n => Duration::from_millis(200 * u64::from(n)),
        };
        self.now = self.now + d;
    }

    pub fn tick(&mut self) {
        self.worker.on_tick(self.now, &mut self.io);
    }

    /// Frames sent so far.
    pub fn sent(&self) -> u64 {
        self.io.sent
    }

    /// PROXY headers sent on TCP connections so far.
    pub fn proxy_headers(&self) -> u64 {
        self.worker.publish_stats();
        self.stats
            .proxy_headers
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Run the clock past every timeout, tick, and check that nothing is left: no connection,
    /// and no real server still counting one.
    pub fn drain(&mut self) {
        self.now = self.now + Duration::from_secs(u64::from(DRAIN_SECS));
        for _ in 0..16 {
            self.tick();
            self.now = self.now + Duration::from_secs(1);
        }
        assert_eq!(
            self.worker.conn_count(),
            0,
            "connections outlive every timeout: {:?}",
            self.worker.conns(self.now).collect::<Vec<_>>()
        );
        let snap = self.services.snapshot();
        for svc in snap.services() {
            for (proto, vport, rport, _) in SERVICES {
                if svc.key() != key(proto, vport) {
                    continue;
                }
                for rip in RIPS {
                    let d = svc.find_dest(rip.into(), rport).expect("dest");
                    assert_eq!(
                        (d.active_conns(), d.inactive_conns()),
                        (0, 0),
                        "{rip}:{rport} of {:?} still counts connections",
                        svc.key()
                    );
                }
            }
            for (proto, vport, rport, _, nat64) in SERVICES6 {
                if svc.key() != key6(proto, vport) {
                    continue;
                }
                for rip in rips6(nat64) {
                    let d = svc.find_dest(rip, rport).expect("dest");
                    assert_eq!(
                        (d.active_conns(), d.inactive_conns()),
                        (0, 0),
                        "{rip}:{rport} of {:?} still counts connections",
                        svc.key()
                    );
                }
            }
        }
    }
}

/// An Ethernet + IPv4 + TCP or UDP frame with correct checksums.
#[allow(clippy::too_many_arguments)]
pub fn l4_frame(
    macs: (MacAddr, MacAddr),
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    proto: u8,
    tcp_flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let l4 = if proto == TCP { 20 } else { 8 };
    let mut f = eth_ipv4(macs, src, dst, proto, l4 + payload.len());
    let mut seg = vec![0u8; l4];
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    if proto == TCP {
        seg[4..8].copy_from_slice(&0x1000_0000u32.to_be_bytes());
        seg[8..12].copy_from_slice(&0x2000_0000u32.to_be_bytes());
        seg[12] = 0x50;
        seg[13] = tcp_flags;
        seg[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    } else {
        seg[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    }
    f.extend_from_slice(&seg);
    f.extend_from_slice(payload);
    fix_checksums(&mut f);
    f
}

/// Ethernet and IPv4 headers (TTL 64, DF) for `l4_len` bytes of payload; checksum left zero.
fn eth_ipv4(
    (dst_mac, src_mac): (MacAddr, MacAddr),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    l4_len: usize,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(34 + l4_len);
    f.extend_from_slice(&dst_mac.0);
    f.extend_from_slice(&src_mac.0);
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f
}

/// An Ethernet + IPv6 + TCP or UDP frame with a correct checksum.
#[allow(clippy::too_many_arguments)]
pub fn l4_frame6(
    macs: (MacAddr, MacAddr),
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    proto: u8,
    tcp_flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let v4 = l4_frame(
        macs,
        Ipv4Addr::UNSPECIFIED,
        sport,
        Ipv4Addr::UNSPECIFIED,
        dport,
        proto,
        tcp_flags,
        payload,
    );
    // The same upper layer after an IPv6 header.
    let l4 = &v4[34..];
    let mut f = eth_ipv6(macs, src, dst, proto, l4.len());
    f.extend_from_slice(l4);
    fix_checksums(&mut f);
    f
}

/// Ethernet and IPv6 headers (hop limit 64) for `l4_len` bytes of payload.
fn eth_ipv6(
    (dst_mac, src_mac): (MacAddr, MacAddr),
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    l4_len: usize,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + l4_len);
    f.extend_from_slice(&dst_mac.0);
    f.extend_from_slice(&src_mac.0);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4_len as u16).to_be_bytes());
    f.extend_from_slice(&[next_header, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f
}

fn ip6(b: &[u8]) -> Ipv6Addr {
    let a: [u8; 16] = b[..16].try_into().expect("16 bytes");
    Ipv6Addr::from(a)
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// Recompute the IPv4 header checksum and the TCP, UDP or ICMP checksum of an Ethernet frame,
/// where its headers are consistent enough to say what to sum; otherwise leave it.
pub fn fix_checksums(f: &mut [u8]) {
    if f.len() >= 54 && f[12..14] == [0x86, 0xdd] {
        return fix_checksums6(f);
    }
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    if ihl < 20 || total < ihl || 14 + total > f.len() {
        return;
    }
    f[24..26].fill(0);
    let c = checksum::checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let (src, dst, proto) = (ip(&f[26..30]), ip(&f[30..34]), f[23]);
    let l4 = 14 + ihl..14 + total;
    let at = match proto {
        TCP if l4.len() >= 20 => 16,
        UDP if l4.len() >= 8 => 6,
        1 if l4.len() >= 4 => 2,
        _ => return,
    };
    let seg = &mut f[l4];
    seg[at..at + 2].fill(0);
    let c = if proto == 1 {
        checksum::checksum(seg)
    } else {
        checksum::l4_checksum_v4(src, dst, proto, seg)
    };
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// [`fix_checksums`] for an IPv6 frame whose upper layer (TCP, UDP or ICMPv6) follows the
/// fixed header.
fn fix_checksums6(f: &mut [u8]) {
    let len = usize::from(u16::from_be_bytes([f[18], f[19]]));
    if 54 + len > f.len() {
        return;
    }
    let (src, dst, nh) = (ip6(&f[22..38]), ip6(&f[38..54]), f[20]);
    let at = match nh {
        TCP if len >= 20 => 16,
        UDP if len >= 8 => 6,
        58 if len >= 4 => 2,
        _ => return,
    };
    let seg = &mut f[54..54 + len];
    seg[at..at + 2].fill(0);
    let mut c = checksum::l4_checksum_v6(src, dst, nh, seg);
    if nh == UDP && c == 0 {
        c = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Raw mode: records of `[control, len_hi, len_lo, frame...]`. Control bit 0 is the port,
/// bit 1 a tick after the frame, bits 2..=6 the clock advance before it ([`Rig::advance`]).
/// The frame is the next `len` bytes (fewer at the end of the input, at most a full frame).
pub fn raw(data: &[u8]) {
    let mut rig = Rig::new();
    let mut rest = data;
    while let [ctl, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]))
            .min(tail.len())
            .min(MAX_FRAME);
        let (frame, next) = tail.split_at(len);
        rig.advance(ctl >> 2);
        rig.rx(PortId::from(ctl & 1), frame);
        if ctl & 2 != 0 {
            rig.tick();
        }
        rest = next;
    }
    rig.drain();
}

/// One raw-mode record.
pub fn raw_record(port: PortId, tick: bool, advance: u8, frame: &[u8]) -> Vec<u8> {
    let ctl = (port as u8 & 1) | (u8::from(tick) << 1) | ((advance & 0x1f) << 2);
    let mut r = vec![ctl];
    r.extend_from_slice(&(frame.len() as u16).to_be_bytes());
    r.extend_from_slice(frame);
    r
}

/// What a structured record starts from.
const TEMPLATES: u8 = 26;

/// Structured mode: records of `[template, flags, control, offset, n, bytes...]`.
///
/// `template` (mod 17): 0..=5 a client segment to the service of that index in [`SERVICES`]
/// (NAT TCP and UDP, DR, TUN, FULLNAT TCP and UDP), 6 a reply to a recently sent frame
/// (addresses, ports and MACs swapped, back on the port it left by), 7 an ICMP echo request to
/// the VIP, 8 an ICMP error from the real server about a recently sent frame, 9 an ARP request
/// for the VIP, 10 a real server's segment to the client, 11 the SYN-proxy service, 12 no
/// template (the bytes alone), 13..=16 the services with PROXY headers and UOA (7..=10),
/// 17..=24 an IPv6 client's segment to the IPv6 service of that index in [`SERVICES6`] (NAT6
/// TCP and UDP, DR6, TUN6, FULLNAT6 TCP and UDP, NAT64 TCP and UDP), 25 an IPv6 real server's
/// segment to the IPv6 client. Replies (6) and ICMP errors (8) are of the frame's family.
/// `flags`: bits 0..=2 the TCP flags ([`FLAGS`]), bits 3..=6 the client port (1024 + n), bit 7
/// a 32-byte payload. `control`: bit 0 tick after, bit 1 recompute checksums after splicing,
/// bit 2 insert the bytes (else overwrite), bits 3..=7 the clock advance. The `n` bytes that
/// follow are spliced in at `offset` (clamped to the frame's end).
pub fn structured(data: &[u8]) {
    structured_rig(data).drain();
}

/// The rig after the records of `data`, before the final drain (for tests of the seeds).
pub fn structured_rig(data: &[u8]) -> Rig {
    let mut rig = Rig::new();
    let mut rest = data;
    while let [tmpl, flags, ctl, off, n, tail @ ..] = rest {
        let n = usize::from(*n).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        let (port, mut frame) = template(&rig, tmpl % TEMPLATES, *flags);
        let off = usize::from(*off).min(frame.len());
        if ctl & 4 != 0 {
            frame.splice(off..off, bytes.iter().copied());
        } else {
            let end = (off + n).min(frame.len());
            frame.splice(off..end, bytes.iter().copied());
        }
        frame.truncate(MAX_FRAME);
        if ctl & 2 != 0 {
            fix_checksums(&mut frame);
        }
        rig.advance(ctl >> 3);
        rig.rx(port, &frame);
        if ctl & 1 != 0 {
            rig.tick();
        }
    }
    rig
}

/// One structured record.
pub fn structured_record(tmpl: u8, flags: u8, ctl: u8, offset: u8, bytes: &[u8]) -> Vec<u8> {
    let mut r = vec![tmpl, flags, ctl, offset, bytes.len() as u8];
    r.extend_from_slice(&bytes[..bytes.len().min(255)]);
    r
}

fn template(rig: &Rig, tmpl: u8, flags: u8) -> (PortId, Vec<u8>) {
    let tcp_flags = FLAGS[usize::from(flags & 7)];
    let cport = 1024 + u16::from((flags >> 3) & 0x0f);
    let payload: &[u8] = if flags & 0x80 != 0 { &[0x5a; 32] } else { &[] };
    match tmpl {
        0..=5 | 11 | 13..=16 => {
            // 11: the SYN-proxy service (templates 6 to 10 were taken when it came); 13..=16
            // the services that came after it.
            let i = match tmpl {
                11 => 6,
                13.. => tmpl - 6,
                _ => tmpl,
            };
            let (proto, vport, _, _) = SERVICES[usize::from(i)];
            let f = l4_frame(
                (PORT_MAC[0], CLIENT_MAC),
                CIP,
                cport,
                VIP,
                vport,
                proto,
                tcp_flags,
                payload,
            );
            (CLIENT_NET, f)
        }
        6 => match recent(rig, flags) {
            Some((port, sent)) => (port, reply_to(&sent, tcp_flags)),
            None => (CLIENT_NET, Vec::new()),
        },
        7 => {
            let mut f = eth_ipv4((PORT_MAC[0], CLIENT_MAC), CIP, VIP, 1, 8 + payload.len());
            f.extend_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, flags]);
            f.extend_from_slice(payload);
            fix_checksums(&mut f);
            (CLIENT_NET, f)
        }
        8 => match recent(rig, flags) {
            Some((port, sent)) => (port, icmp_error_about(&sent, flags)),
            None => (SERVER_NET, Vec::new()),
        },
        9 => {
            let mut f = Vec::with_capacity(42);
            f.extend_from_slice(&MacAddr::BROADCAST.0);
            f.extend_from_slice(&CLIENT_MAC.0);
            f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&CLIENT_MAC.0);
            f.extend_from_slice(&CIP.octets());
            f.extend_from_slice(&[0; 6]);
            f.extend_from_slice(&VIP.octets());
            (CLIENT_NET, f)
        }
        10 => {
            let rs = usize::from(flags >> 7);
            let f = l4_frame(
                (PORT_MAC[1], RS_MAC[rs]),
                RIPS[rs],
                80,
                CIP,
                cport,
                TCP,
                tcp_flags,
                payload,
            );
            (SERVER_NET, f)
        }
        17..=24 => {
            let (proto, vport, _, _, _) = SERVICES6[usize::from(tmpl - 17)];
            let f = l4_frame6(
                (PORT_MAC[0], CLIENT_MAC),
                CIP6,
                cport,
                VIP6,
                vport,
                proto,
                tcp_flags,
                payload,
            );
            (CLIENT_NET, f)
        }
        25 => {
            let rs = usize::from(flags >> 7);
            let f = l4_frame6(
                (PORT_MAC[1], RS_MAC[rs]),
                RIP6S[rs],
                80,
                CIP6,
                cport,
                TCP,
                tcp_flags,
                payload,
            );
            (SERVER_NET, f)
        }
        _ => (PortId::from(flags & 1), Vec::new()),
    }
}

/// The recently sent frame `flags` picks, if any.
fn recent(rig: &Rig, flags: u8) -> Option<(PortId, Vec<u8>)> {
    let r = &rig.io.recent;
    if r.is_empty() {
        return None;
    }
    Some(r[usize::from(flags >> 3) % r.len()].clone())
}

/// `sent` as its receiver would answer it: MACs, addresses and ports swapped, these TCP flags.
fn reply_to(sent: &[u8], tcp_flags: u8) -> Vec<u8> {
    let mut f = sent.to_vec();
    let (l4, l4_len, proto) = if f.len() >= 54 && f[12..14] == [0x86, 0xdd] {
        // IPv6: the upper layer right after the fixed header.
        let (a, b) = f[22..54].split_at_mut(16);
        a.swap_with_slice(b);
        (54, usize::from(u16::from_be_bytes([f[18], f[19]])), f[20])
    } else if f.len() >= 34 && f[12..14] == [0x08, 0x00] {
        let (a, b) = f[26..34].split_at_mut(4);
        a.swap_with_slice(b);
        let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
        (l4, (14 + total).saturating_sub(l4), f[23])
    } else {
        return f;
    };
    let (a, b) = f[..12].split_at_mut(6);
    a.swap_with_slice(b);
    if f.len() >= l4 + 4 && matches!(proto, TCP | UDP) {
        let (a, b) = f[l4..l4 + 4].split_at_mut(2);
        a.swap_with_slice(b);
        if proto == TCP && f.len() >= l4 + 20 {
            // Numbered as the receiver would answer: its next sequence is what was
            // acknowledged, and it acknowledges what was sent (so a client answers a SYN
            // proxy's cookie, and a server the proxied SYN).
            let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let (seq, ack, sent_flags) = (be32(&f[l4 + 4..]), be32(&f[l4 + 8..]), f[l4 + 13]);
            let thl = usize::from(f[l4 + 12] >> 4) * 4;
            let payload = l4_len.saturating_sub(thl) as u32;
            let len = payload + u32::from(sent_flags & 0x03 != 0);
            f[l4 + 4..l4 + 8].copy_from_slice(&ack.to_be_bytes());
            f[l4 + 8..l4 + 12].copy_from_slice(&seq.wrapping_add(len).to_be_bytes());
            f[l4 + 13] = tcp_flags;
        }
    }
    fix_checksums(&mut f);
    f
}

/// The ICMP error (destination unreachable: port, or fragmentation needed) the receiver of
/// `sent` would send back, quoting its IP header and eight bytes more (for IPv6: ICMPv6
/// destination unreachable or packet too big, quoting the fixed header and eight bytes).
fn icmp_error_about(sent: &[u8], flags: u8) -> Vec<u8> {
    if sent.len() >= 62 && sent[12..14] == [0x86, 0xdd] {
        let quoted = &sent[14..62];
        let macs = (
            MacAddr(sent[6..12].try_into().expect("6 bytes")),
            MacAddr(sent[0..6].try_into().expect("6 bytes")),
        );
        let mut f = eth_ipv6(macs, ip6(&sent[38..54]), ip6(&sent[22..38]), 58, 8 + 48);
        let (ty, field) = if flags & 1 != 0 { (2, 1400u32) } else { (1, 0) };
        f.extend_from_slice(&[ty, if ty == 1 { 4 } else { 0 }, 0, 0]);
        f.extend_from_slice(&field.to_be_bytes());
        f.extend_from_slice(quoted);
        fix_checksums(&mut f);
        return f;
    }
    if sent.len() < 34 || sent[12..14] != [0x08, 0x00] {
        return Vec::new();
    }
    let ihl = usize::from(sent[14] & 0x0f) * 4;
    let quoted = &sent[14..(14 + ihl + 8).min(sent.len())];
    let (dst, src) = (ip(&sent[26..30]), ip(&sent[30..34]));
    let mut f = eth_ipv4(
        (
            MacAddr(sent[6..12].try_into().expect("6 bytes")),
            MacAddr(sent[0..6].try_into().expect("6 bytes")),
        ),
        src,
        dst,
        1,
        8 + quoted.len(),
    );
    let (code, mtu) = if flags & 1 != 0 { (4, 1400u16) } else { (3, 0) };
    f.extend_from_slice(&[3, code, 0, 0, 0, 0]);
    f.extend_from_slice(&mtu.to_be_bytes());
    f.extend_from_slice(quoted);
    fix_checksums(&mut f);
    f
}

/// Seed inputs for the two worker targets: (name, bytes).
pub fn seeds() -> Vec<(String, Vec<u8>, bool)> {
    let mut out = Vec::new();
    // Raw: a client opening, sending and closing to every service; one frame each.
    for (i, (proto, vport, _, _)) in SERVICES.iter().enumerate() {
        let mut r = Vec::new();
        for (k, fl) in [0x02u8, 0x10, 0x18, 0x11].into_iter().enumerate() {
            if *proto == UDP && k > 0 {
                break;
            }
            let f = l4_frame(
                (PORT_MAC[0], CLIENT_MAC),
                CIP,
                2000 + i as u16,
                VIP,
                *vport,
                *proto,
                fl,
                if fl == 0x18 || *proto == UDP {
                    b"hello"
                } else {
                    b""
                },
            );
            r.extend(raw_record(CLIENT_NET, k == 3, 1, &f));
        }
        out.push((format!("open-{proto}-{vport}"), r, false));
    }
    // Structured: per method (and per client-address carrier), a SYN, the reply to what was
    // sent, the ACK, an ICMP error, a tick after two minutes.
    for tmpl in (0..6u8).chain(13..17) {
        let mut r = Vec::new();
        r.extend(structured_record(tmpl, 0, 0, 0, &[]));
        r.extend(structured_record(6, 5, 0, 0, &[]));
        r.extend(structured_record(tmpl, 1 | 0x80, 0, 0, &[]));
        r.extend(structured_record(8, 1, 1, 0, &[]));
        r.extend(structured_record(tmpl, 3, 1 | (31 << 3), 0, &[]));
        out.push((format!("method-{tmpl}"), r, true));
    }
    // The SYN proxy's whole opening: SYN, the client's answer to the cookie SYN-ACK (recent
    // frame 0), the server's answer to the proxied SYN (frame 1), data, a tick later.
    let mut r = Vec::new();
    r.extend(structured_record(11, 0, 0, 0, &[]));
    r.extend(structured_record(6, 1, 0, 0, &[]));
    r.extend(structured_record(6, 5 | (1 << 3), 0, 0, &[]));
    r.extend(structured_record(11, 2 | 0x80, 0, 0, &[]));
    r.extend(structured_record(11, 3, 1 | (31 << 3), 0, &[]));
    out.push(("synproxy".into(), r, true));
    // The same through the FULLNAT service with the SYN proxy and a PROXY v2 header.
    let mut r = Vec::new();
    r.extend(structured_record(13, 0, 0, 0, &[]));
    r.extend(structured_record(6, 1, 0, 0, &[]));
    r.extend(structured_record(6, 5 | (1 << 3), 0, 0, &[]));
    r.extend(structured_record(13, 2 | 0x80, 0, 0, &[]));
    r.extend(structured_record(13, 3, 1 | (31 << 3), 0, &[]));
    out.push(("synproxy-proxy-header".into(), r, true));
    // IPv6: per service (NAT6 ... NAT64), a SYN, the reply to what was sent, the ACK, an
    // ICMP(v6) error about a sent frame, a tick later.
    for tmpl in 17..25u8 {
        let mut r = Vec::new();
        r.extend(structured_record(tmpl, 0, 0, 0, &[]));
        r.extend(structured_record(6, 5, 0, 0, &[]));
        r.extend(structured_record(tmpl, 1 | 0x80, 0, 0, &[]));
        r.extend(structured_record(8, 1, 1, 0, &[]));
        r.extend(structured_record(tmpl, 3, 1 | (31 << 3), 0, &[]));
        out.push((format!("ipv6-{tmpl}"), r, true));
    }
    let mut r = Vec::new();
    for tmpl in [7u8, 9, 10, 12] {
        r.extend(structured_record(tmpl, 0, 2, 14, &[0x45, 0, 0, 20]));
    }
    out.push(("icmp-arp-rs".into(), r, true));
    out
}
