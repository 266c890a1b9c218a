//! The established-connection path of one worker on heap buffers, for instruction counts that
//! do not depend on what else the machine runs:
//!
//! ```sh
//! cargo build --release -p dataplane --example hitpath
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/hitpath [CONNS] [PACKETS] [in|out]
//! callgrind_annotate /tmp/cg.out | head -40
//! ```
//!
//! NAT, 4 real servers (rr), static neighbours, `CONNS` connections (default 1000) established
//! through the worker, then `PACKETS` (default 1,000,000) ACKs of random connections in bursts
//! of 32, client to VIP (`in`, default) or real server to client (`out`); or (`new`) every flow
//! a fresh SYN, ACK and RST with about `CONNS` connections kept live by the CLOSE timeout. Buffers are recycled,
//! so the loop allocates nothing: what it costs is the worker's. It prints the packets forwarded
//! and the drops; divide callgrind's `Ir` of `Worker::process_burst` by the packet count.
//! `rvs-bench` measures the same path in cycles on DPDK mbufs.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::conn::Timeouts;
use dataplane::l3::addr::{OwnedAddrs, PortId};
use dataplane::l3::neigh::NeighConfig;
use dataplane::l3::route::RouteTable;
use dataplane::packet::{HeapBuf, PacketBuf};
use dataplane::service::{DestConfig, ForwardMethod, Protocol, ServiceConfig, ServiceKey};
use dataplane::time::Instant;
use dataplane::wire::{MacAddr, checksum};
use dataplane::worker::{Io, PortSetup, StaticNeigh, Tables, Worker, WorkerConfig, WorkerStats};

const PORT_MAC: [MacAddr; 2] = [
    MacAddr([2, 0, 0, 0, 0, 0xd0]),
    MacAddr([2, 0, 0, 0, 0, 0xd1]),
];
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const DESTS: u8 = 4;

fn rip(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 11 + k)
}

/// A 60-byte TCP frame `src:sport -> dst:dport` with `flags`, correct checksums.
fn frame(
    dst_mac: MacAddr,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&dst_mac.0);
    f[6..12].copy_from_slice(&PEER_MAC.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..24].copy_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6]);
    f[26..30].copy_from_slice(&src.octets());
    f[30..34].copy_from_slice(&dst.octets());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[46] = 0x50;
    f[47] = flags;
    f[48..50].copy_from_slice(&[0xff, 0xff]);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let c = checksum::l4_checksum_v4(src, dst, 6, &f[34..54]);
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

/// Keeps what the worker sends for reuse, remembering the last destination address.
#[derive(Default)]
struct Recycle {
    free: Vec<HeapBuf>,
    sent: u64,
    last_dst: [u8; 4],
}

impl Io<HeapBuf> for Recycle {
    fn transmit(&mut self, _port: PortId, buf: HeapBuf) {
        self.last_dst.copy_from_slice(&buf.data()[30..34]);
        self.sent += 1;
        self.free.push(buf);
    }
    fn alloc(&mut self) -> Option<HeapBuf> {
        None
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let conns: u16 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let packets: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let out = args.get(3).is_some_and(|a| a == "out");
    let new = args.get(3).is_some_and(|a| a == "new");

    let mut services = dataplane::service::ServiceTable::new(1);
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        vport: 80,
    };
    services
        .add_service(ServiceConfig::new(key, "rr"))
        .expect("service");
    for k in 0..DESTS {
        services
            .add_dest(&key, DestConfig::new(rip(k), 80, ForwardMethod::Masq))
            .expect("dest");
    }
    let mut addrs = OwnedAddrs::new();
    addrs
        .add(0, Ipv4Addr::new(198, 18, 0, 1), 24)
        .expect("addr");
    addrs
        .add(1, Ipv4Addr::new(198, 18, 1, 1), 24)
        .expect("addr");
    let mut static_neighs = vec![StaticNeigh {
        port: 0,
        ip: CIP,
        mac: PEER_MAC,
    }];
    static_neighs.extend((0..DESTS).map(|k| StaticNeigh {
        port: 1,
        ip: rip(k),
        mac: PEER_MAC,
    }));
    let tables = Arc::new(Tables {
        services: services.snapshot(),
        routes: RouteTable::with_connected(&addrs),
        addrs,
        static_neighs,
        v6: Default::default(),
        timeouts: Timeouts::default(),
        laddrs: Arc::new(dataplane::laddr::LaddrTable::new(1)),
        persist: Arc::new(dataplane::persist::PersistTable::new(1024, 1)),
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
            .map(|&mac| PortSetup { mac, mtu: 1500 })
            .collect(),
        conn_capacity: 2 * usize::from(conns) + 1,
        conn_capacity6: 16,
        neigh: NeighConfig::default(),
        icmp: Default::default(),
        workers: 1,
    };
    let mut w: Worker<HeapBuf> = Worker::new(cfg, tables, Arc::new(WorkerStats::default()), 7);
    let mut io = Recycle::default();
    let now = Instant::from_secs(100);
    let cport = |i: u16| 1024 + i;
    // Establish: SYN (learning each flow's dest), ACK.
    let mut dest_of = Vec::with_capacity(usize::from(conns));
    for i in 0..conns {
        let f = frame(PORT_MAC[0], CIP, cport(i), VIP, 80, 0x02);
        w.process(now, 0, HeapBuf::from_bytes(&f), &mut io);
        dest_of.push(Ipv4Addr::from(io.last_dst));
        let f = frame(PORT_MAC[0], CIP, cport(i), VIP, 80, 0x10);
        w.process(now, 0, HeapBuf::from_bytes(&f), &mut io);
    }
    assert_eq!(w.conn_count(), usize::from(conns), "{:?}", w.drops());
    let templates: Vec<Vec<u8>> = (0..conns)
        .map(|i| {
            if out {
                frame(
                    PORT_MAC[1],
                    dest_of[usize::from(i)],
                    80,
                    CIP,
                    cport(i),
                    0x10,
                )
            } else {
                frame(PORT_MAC[0], CIP, cport(i), VIP, 80, 0x10)
            }
        })
        .collect();
    if new {
        return new_connections(&mut w, &mut io, conns, packets);
    }
    let port = u16::from(out) as PortId;
    io.sent = 0;
    let mut burst: Vec<HeapBuf> = Vec::with_capacity(32);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut done = 0u64;
    while done < packets {
        for _ in 0..32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = &templates[(x % u64::from(conns)) as usize];
            let mut b = io.free.pop().unwrap_or_else(|| HeapBuf::from_bytes(t));
            b.data_mut().copy_from_slice(t);
            burst.push(b);
        }
        done += 32;
        w.process_burst(now, port, &mut burst, &mut io);
    }
    println!(
        "{} packets, {} forwarded, drops {:?}",
        done,
        io.sent,
        w.drops().iter().filter(|(_, n)| *n > 0).collect::<Vec<_>>()
    );
}

/// `new` mode: every flow is a SYN, an ACK and a RST from a fresh client port, the clock
/// advancing per packet so that the CLOSE timeout (10 s) keeps about `live` connections.
fn new_connections(w: &mut Worker<HeapBuf>, io: &mut Recycle, live: u16, packets: u64) {
    let ns_per_pkt = 10_000_000_000 / (3 * u64::from(live));
    let mut t = Instant::from_secs(200);
    let mut flow = 0u32;
    let mut burst: Vec<HeapBuf> = Vec::with_capacity(32);
    let mut done = 0u64;
    let mut next_tick = t;
    io.sent = 0;
    while done < packets {
        for k in 0..30u32 {
            let f = flow + k / 3;
            let src = Ipv4Addr::from(0xC612_0000u32 | ((f >> 16) & 0xff) << 8 | 2);
            let flags = [0x02, 0x10, 0x04][(k % 3) as usize];
            let tmpl = frame(PORT_MAC[0], src, (f & 0xffff) as u16 | 1, VIP, 80, flags);
            let mut b = io.free.pop().unwrap_or_else(|| HeapBuf::from_bytes(&tmpl));
            b.data_mut().copy_from_slice(&tmpl);
            burst.push(b);
        }
        flow += 10;
        done += 30;
        t = t + core::time::Duration::from_nanos(30 * ns_per_pkt);
        w.process_burst(t, 0, &mut burst, io);
        if t >= next_tick {
            w.on_tick(t, io);
            next_tick = t + core::time::Duration::from_millis(10);
        }
    }
    println!(
        "{} packets ({} new connections), {} forwarded, {} live, drops {:?}",
        done,
        done / 3,
        io.sent,
        w.conn_count(),
        w.drops().iter().filter(|(_, n)| *n > 0).collect::<Vec<_>>()
    );
}
