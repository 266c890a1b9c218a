//! Several workers in memory, steered as the runtime steers them (docs/architecture.md, "Cores and steering"): each
//! frame "arrives" on an arbitrary worker (as a NIC or the kernel's fanout would deliver it),
//! goes to the owner [`Worker::steer`] names, and ARP is handled by the receiver and learnt by
//! the others. Every packet of every flow, both directions, every method, must be forwarded by
//! the worker holding its connection: no drop anywhere, and each connection on its owner only.

use super::methods::{DR_PORT, FNAT_PORT, FNAT_UDP_PORT, LIPS, TUN_PORT};
use super::*;
use crate::steer::{Owner, Steering};

struct Cluster {
    workers: Vec<Worker<HeapBuf>>,
    io: MockIo,
    now: Instant,
    /// Picks the receiving worker of each frame (a fixed pseudo-random sequence).
    rng: u64,
    redirects: u64,
    /// Receive as rvsd's poll loop does: the receiver's staged, steered burst
    /// ([`Worker::process_burst_steered`]), frames for other workers handed to them.
    staged: bool,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let mut services = ServiceTable::new(n);
        let masq = ForwardMethod::Masq;
        for (key, port) in [(tcp_service(), 80), (udp_service(), 53)] {
            services.add_service(ServiceConfig::new(key, "rr")).unwrap();
            for rip in [RIP1, RIP2] {
                services
                    .add_dest(&key, DestConfig::new(rip, port, masq))
                    .unwrap();
            }
        }
        methods::add_services(&mut services);
        let tables = tables_n(&mut services, Timeouts::default(), n);
        let workers = (0..n)
            .map(|id| {
                let cfg = WorkerConfig {
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
                    conn_capacity: 4096,
                    conn_capacity6: 1024,
                    neigh: NeighConfig::default(),
                    icmp: Default::default(),
                    workers: n,
                };
                Worker::new(
                    cfg,
                    tables.clone(),
                    Arc::new(WorkerStats::default()),
                    0x5eed + id as u64,
                )
            })
            .collect();
        Cluster {
            workers,
            io: MockIo::default(),
            now: Instant::from_secs(1_000),
            rng: 0x1234_5678,
            redirects: 0,
            staged: false,
        }
    }

    fn receiver(&mut self) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % self.workers.len() as u64) as usize
    }

    /// One frame in on `port`, steered; what the workers sent meanwhile.
    fn rx(&mut self, port: PortId, frame: Vec<u8>) -> Vec<(PortId, Vec<u8>)> {
        let r = self.receiver();
        let buf = HeapBuf::from_bytes(&frame);
        if self.staged {
            let mut burst = vec![buf];
            let mut away = Vec::new();
            self.workers[r].process_burst_steered(
                self.now,
                port,
                &mut burst,
                |_| None,
                &mut away,
                &mut self.io,
            );
            for (port2, copy) in std::mem::take(&mut self.io.shared) {
                for w in (0..self.workers.len()).filter(|&w| w != r) {
                    let b = HeapBuf::from_bytes(&copy);
                    self.workers[w].learn_arp(self.now, port2, b, &mut self.io);
                }
            }
            for (w, b) in away {
                self.redirects += 1;
                let w = usize::from(w);
                assert_ne!(w, r);
                // The owner's own steering agrees: it keeps the frame.
                assert!(matches!(
                    self.workers[w].steer(b.data()),
                    Owner::Worker(x) if usize::from(x) == w
                ));
                self.workers[w].process(self.now, port, b, &mut self.io);
            }
            return std::mem::take(&mut self.io.sent);
        }
        match self.workers[r].steer(&frame) {
            Owner::Worker(w) => {
                let w = usize::from(w);
                if w != r {
                    self.redirects += 1;
                }
                self.workers[w].process(self.now, port, buf, &mut self.io);
            }
            Owner::Receiver => self.workers[r].process(self.now, port, buf, &mut self.io),
            Owner::All => {
                self.workers[r].process(self.now, port, buf, &mut self.io);
                for w in (0..self.workers.len()).filter(|&w| w != r) {
                    let copy = HeapBuf::from_bytes(&frame);
                    self.workers[w].learn_arp(self.now, port, copy, &mut self.io);
                }
            }
        }
        std::mem::take(&mut self.io.sent)
    }

    /// A frame that must be forwarded: the one frame out (the port and the frame).
    fn forwarded(&mut self, port: PortId, frame: Vec<u8>) -> (PortId, Vec<u8>) {
        let out = self.rx(port, frame);
        assert_eq!(out.len(), 1, "{:?}", self.drops());
        out.into_iter().next().unwrap()
    }

    fn drops(&self) -> Vec<(usize, Vec<(DropReason, u64)>)> {
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| (i, w.drops().iter().filter(|(_, n)| *n > 0).collect()))
            .filter(|(_, d): &(usize, Vec<_>)| !d.is_empty())
            .collect()
    }

    /// The hosts announce themselves: each asks for the director's address of its network.
    /// One worker answers each request, exactly once; all learn.
    fn learn_all(&mut self) {
        for (port, ip, mac, dip) in [
            (CLIENT_NET, CIP, CLIENT_MAC, DIP0),
            (SERVER_NET, RIP1, RS1_MAC, DIP1),
            (SERVER_NET, RIP2, RS2_MAC, DIP1),
        ] {
            let req = arp_frame(MacAddr::BROADCAST, ARP_REQUEST, mac, ip, MacAddr::ZERO, dip);
            let out = self.rx(port, req);
            assert_eq!(out.len(), 1, "one ARP reply: {out:?}");
            assert_eq!(parse_arp(&out[0].1).unwrap().op, ARP_REPLY);
        }
    }
}

fn client_frame(proto: u8, cport: u16, vport: u16, flags: TcpFlags) -> Vec<u8> {
    let spec = FrameSpec::new(CIP, cport, VIP, vport);
    if proto == 6 {
        tcp_frame(&spec, flags, b"hello")
    } else {
        udp_frame(&spec, b"hello")
    }
}

/// The real server's answer to frame `to_rs` (which the director sent it).
fn answer(proto: u8, to_rs: &Verified, flags: TcpFlags) -> Vec<u8> {
    let spec = FrameSpec::new(to_rs.dst, to_rs.dport, to_rs.src, to_rs.sport)
        .macs(rs_mac(to_rs.dst), PORT1_MAC);
    if proto == 6 {
        tcp_frame(&spec, flags, b"world")
    } else {
        udp_frame(&spec, b"world")
    }
}

#[test]
fn every_packet_reaches_the_worker_holding_its_connection() {
    for (n, staged) in [1usize, 2, 3, 4]
        .into_iter()
        .flat_map(|n| [(n, false), (n, true)])
    {
        let mut c = Cluster::new(n);
        c.staged = staged;
        c.learn_all();
        let steering = Steering::new(n as u16);
        // (proto, vport, replies pass the director)
        let services = [
            (6u8, 80u16, true),        // NAT
            (17, 53, true),            // NAT UDP
            (6, FNAT_PORT, true),      // FULLNAT
            (17, FNAT_UDP_PORT, true), // FULLNAT UDP
            (6, DR_PORT, false),       // DR
            (6, TUN_PORT, false),      // TUN
        ];
        let mut conns = 0;
        for (proto, vport, replies) in services {
            for cport in (20_000..20_000 + 40 * 131).step_by(131) {
                let open = if proto == 6 { SYN } else { TcpFlags(0) };
                let (port, out) = c.forwarded(CLIENT_NET, client_frame(proto, cport, vport, open));
                assert_eq!(port, SERVER_NET);
                conns += 1;
                let owner = usize::from(steering.client_owner(CIP, cport));
                for (i, w) in c.workers.iter().enumerate() {
                    let has = w
                        .conns(c.now)
                        .any(|v| v.client == (CIP.into(), cport) && v.virt.1 == vport);
                    assert_eq!(
                        has,
                        i == owner,
                        "n={n} vport={vport} cport={cport} worker {i}"
                    );
                }
                if !replies {
                    for flags in [ACK, PSH_ACK, FIN_ACK] {
                        c.forwarded(CLIENT_NET, client_frame(proto, cport, vport, flags));
                    }
                    continue;
                }
                let to_rs = verify_frame(&out).unwrap();
                let first = if proto == 6 { SYN_ACK } else { TcpFlags(0) };
                let (port, back) = c.forwarded(SERVER_NET, answer(proto, &to_rs, first));
                assert_eq!(port, CLIENT_NET);
                let v = verify_frame(&back).unwrap();
                assert_eq!((v.src, v.sport, v.dst, v.dport), (VIP, vport, CIP, cport));
                if LIPS.contains(&to_rs.src) {
                    assert_eq!(usize::from(steering.lport_owner(to_rs.sport)), owner);
                }
                if proto == 6 {
                    for (client, server) in [(ACK, PSH_ACK), (FIN_ACK, FIN_ACK)] {
                        let (p, _) =
                            c.forwarded(CLIENT_NET, client_frame(proto, cport, vport, client));
                        assert_eq!(p, SERVER_NET);
                        let (p, _) = c.forwarded(SERVER_NET, answer(proto, &to_rs, server));
                        assert_eq!(p, CLIENT_NET);
                    }
                }
            }
        }
        assert!(
            c.drops().is_empty(),
            "n={n} staged={staged}: {:?}",
            c.drops()
        );
        let total: usize = c.workers.iter().map(Worker::conn_count).sum();
        assert_eq!(total, conns);
        if n > 1 {
            assert!(c.redirects > 0, "n={n}: nothing crossed workers");
        } else {
            assert_eq!(c.redirects, 0);
        }
    }
}

#[test]
fn an_arp_reply_received_by_one_worker_releases_packets_waiting_on_another() {
    let mut c = Cluster::new(4);
    // Only the client is known: a SYN opens a connection and waits for RS resolution.
    let req = client_arp_request(DIP0);
    c.rx(CLIENT_NET, req);
    let mut waiting = 0;
    for cport in 30_000..30_016u16 {
        let out = c.rx(CLIENT_NET, client_frame(6, cport, 80, SYN));
        // Only ARP requests go out (from whichever worker owns the flow).
        assert!(out.iter().all(|(_, f)| parse_arp(f).is_ok()), "{out:?}");
        waiting += 1;
    }
    // Each RS answers once; the reply lands on one worker and every worker learns it.
    let mut released = 0;
    for (rip, mac) in [(RIP1, RS1_MAC), (RIP2, RS2_MAC)] {
        let reply = arp_frame(PORT1_MAC, ARP_REPLY, mac, rip, PORT1_MAC, DIP1);
        let out = c.rx(SERVER_NET, reply);
        released += out.iter().filter(|(_, f)| verify_frame(f).is_ok()).count();
    }
    assert_eq!(released, waiting, "{:?}", c.drops());
}
