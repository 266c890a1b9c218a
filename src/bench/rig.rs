//! The DPDK side of the bench: EAL, one mempool, a `net_ring` loopback port that the generator
//! transmits into and the worker receives from (real `tx_burst`/`rx_burst` through an rte_ring),
//! and two `net_null` ports that stand for the director's two NICs on the transmit side (their
//! tx frees the mbufs, as a NIC's completion would). Each worker gets a [`Lane`]: its own queue
//! on every port, so two workers share nothing but the mempool.
//!
//! The measured loop ([`run_stage`]) is the runtime's poll loop (`src/runtime/poll.rs`) minus the
//! control-plane checks: rx burst, `Worker::process` per packet, one flush per burst, `on_tick`
//! every 10 ms of worker time.

use std::time::Duration;

use anyhow::{Context, Result};
use dataplane::l3::addr::PortId;
use dataplane::time::Instant;
use dataplane::worker::{Io, Worker};
use dpdk_bindings::{
    Eal, MbufBatch, Mempool, Port, PortConfig, RxQueue, SOCKET_ID_ANY, TxQueue, port_id_by_name,
    rdtsc, tsc_hz,
};

use super::traffic::Gen;
use crate::runtime::mbuf::Packet;

/// Ports the worker sees: 0 faces the clients, 1 the real servers.
pub const WORKER_PORTS: usize = 2;
const TICK: Duration = Duration::from_millis(10);
const TX_RETRIES: usize = 4;

/// EAL, pool and ports; dropped last.
pub struct Rig {
    pub pool: Mempool,
    pub lanes: Vec<Option<Lane>>,
    // Queues (in the lanes) must go before their ports, ports before the EAL.
    _ports: Vec<Port>,
    _eal: Eal,
}

/// One worker's queues.
pub struct Lane {
    pub id: usize,
    /// The generator's side of the ring port.
    pub feed: TxQueue,
    /// The worker's rx queue (the other end of the same ring).
    pub rx: RxQueue,
    /// Per worker port, the `net_null` tx queue standing for that NIC.
    pub tx: Vec<TxQueue>,
}

impl Rig {
    /// Bring up DPDK with `lanes` workers' worth of queues. `huge` uses hugepages (reserved by
    /// the caller) instead of `--no-huge`.
    pub fn new(lanes: u16, huge: bool) -> Result<Rig> {
        let mut args = vec![
            "-l",
            "0-1",
            "--no-pci",
            "--no-telemetry",
            "--log-level=*:error",
        ];
        if huge {
            args.extend(["--in-memory", "-m", "1024"]);
        } else {
            args.extend(["--no-huge", "-m", "1024", "--no-shconf"]);
        }
        args.extend([
            "--vdev",
            "net_ring0",
            "--vdev",
            "net_null0",
            "--vdev",
            "net_null1",
        ]);
        let eal = Eal::init(&args).context("EAL init (rvs-bench must run as root)")?;
        let pool = Mempool::new(
            "bench_pool",
            16383,
            256,
            dpdk_bindings::DEFAULT_DATA_ROOM,
            SOCKET_ID_ANY,
        )
        .context("mempool")?;
        let mut ports = Vec::new();
        for name in ["net_ring0", "net_null0", "net_null1"] {
            let id = port_id_by_name(name).with_context(|| format!("vdev {name}"))?;
            let cfg = PortConfig {
                rx_queues: lanes,
                tx_queues: lanes,
                rx_desc: 512,
                tx_desc: 512,
                ..PortConfig::default()
            };
            let mut p =
                Port::configure(id, &cfg, &pool).with_context(|| format!("configure {name}"))?;
            p.start().with_context(|| format!("start {name}"))?;
            ports.push(p);
        }
        let mut out = Vec::new();
        for q in 0..lanes {
            out.push(Some(Lane {
                id: usize::from(q),
                feed: ports[0].tx_queue(q)?,
                rx: ports[0].rx_queue(q)?,
                tx: vec![ports[1].tx_queue(q)?, ports[2].tx_queue(q)?],
            }));
        }
        Ok(Rig {
            pool,
            lanes: out,
            _ports: ports,
            _eal: eal,
        })
    }

    pub fn take_lane(&mut self, i: usize) -> Lane {
        self.lanes[i].take().expect("lane in use")
    }

    pub fn put_lane(&mut self, lane: Lane) {
        let i = lane.id;
        self.lanes[i] = Some(lane);
    }
}

/// The worker's transmit side: one batch per worker port, flushed to the lane's null queues
/// (the runtime's `TxSide`, without the counters).
pub struct BenchIo<'a> {
    tx: &'a mut [TxQueue],
    batches: [MbufBatch; WORKER_PORTS],
    pub tx_dropped: u64,
}

impl<'a> BenchIo<'a> {
    pub fn new(tx: &'a mut [TxQueue]) -> Self {
        BenchIo {
            tx,
            batches: [MbufBatch::new(), MbufBatch::new()],
            tx_dropped: 0,
        }
    }

    fn flush_port(&mut self, port: usize) {
        let batch = &mut self.batches[port];
        for _ in 0..TX_RETRIES {
            if batch.is_empty() {
                return;
            }
            self.tx[port].tx_burst(batch);
        }
        self.tx_dropped += batch.len() as u64;
        batch.clear();
    }

    pub fn flush(&mut self) {
        for p in 0..WORKER_PORTS {
            self.flush_port(p);
        }
    }
}

impl Io<Packet> for BenchIo<'_> {
    fn transmit(&mut self, port: PortId, buf: Packet) {
        let port = usize::from(port);
        if port >= WORKER_PORTS {
            return;
        }
        if self.batches[port].is_full() {
            self.flush_port(port);
        }
        let _ = self.batches[port].push(buf.into_mbuf());
    }

    fn alloc(&mut self) -> Option<Packet> {
        None // static neighbours: the worker never needs to send an ARP request
    }

    #[inline]
    fn prefetch<T>(&self, r: &T) {
        dpdk_bindings::prefetch(r);
    }
}

/// The worker's clock.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// Real time since `t0` (TSC), from `base`. One `t0` per worker keeps its clock monotonic
    /// across the cases measured on it.
    Real { base: Instant, t0: u64 },
    /// Worker time advances by `ns_per_pkt` per packet received: connection timeouts then pass
    /// after a fixed number of packets, so expiry keeps the table at a steady size.
    PerPacket { base: Instant, ns_per_pkt: u64 },
}

impl Clock {
    fn now(&self, pkts: u64) -> Instant {
        match *self {
            Clock::Real { base, t0 } => {
                let dt = rdtsc().wrapping_sub(t0);
                let us = (u128::from(dt) * 1_000_000 / u128::from(tsc_hz().max(1))) as u64;
                base + Duration::from_micros(us)
            }
            Clock::PerPacket { base, ns_per_pkt } => {
                base + Duration::from_nanos(pkts.saturating_mul(ns_per_pkt))
            }
        }
    }
}

/// What a measured loop does with the generated packets.
pub enum Stage<'w> {
    /// Generate a burst and free it: the generator's own cost.
    Generate,
    /// Generator, ring tx, ring rx, null tx: the plain io-forward ceiling.
    IoForward,
    /// Generator, ring tx, ring rx, the worker, null tx.
    Dataplane {
        worker: &'w mut Worker<Packet>,
        rx_port: PortId,
        clock: Clock,
    },
}

/// Raw result of one measured loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub packets: u64,
    pub cycles: u64,
    pub tx_dropped: u64,
}

/// Run `stage` on `lane` for `cycles` TSC cycles (after `warm` cycles not counted).
pub fn run_stage(
    lane: &mut Lane,
    pool: &Mempool,
    traffic: &mut Gen,
    stage: Stage<'_>,
    warm: u64,
    cycles: u64,
) -> Sample {
    let mut gen_batch: MbufBatch = MbufBatch::new();
    let mut rx: MbufBatch = MbufBatch::new();
    let mut burst: Vec<Packet> = Vec::with_capacity(dpdk_bindings::BURST);
    let Lane {
        feed, rx: rxq, tx, ..
    } = lane;
    let mut pkts = 0u64;
    let mut measured_from = None;
    let start = rdtsc();
    let mut io = BenchIo::new(tx);
    let mut stage = stage;
    let mut next_tick = Instant::ZERO;
    let mut counted_pkts = 0u64;
    loop {
        // 8 bursts per clock check keeps rdtsc out of the per-packet cost.
        for _ in 0..8 {
            if !traffic.fill(pool, &mut gen_batch) {
                // Pool dry: should not happen (every mbuf comes back each burst).
                gen_batch.clear();
                continue;
            }
            match &mut stage {
                Stage::Generate => {
                    pkts += gen_batch.len() as u64;
                    gen_batch.clear();
                }
                Stage::IoForward => {
                    feed.tx_burst(&mut gen_batch);
                    gen_batch.clear();
                    rxq.rx_burst(&mut rx);
                    pkts += rx.len() as u64;
                    io.tx[0].tx_burst(&mut rx);
                    rx.clear();
                }
                Stage::Dataplane {
                    worker,
                    rx_port,
                    clock,
                } => {
                    feed.tx_burst(&mut gen_batch);
                    gen_batch.clear();
                    let now = clock.now(traffic.packets);
                    rxq.rx_burst(&mut rx);
                    pkts += rx.len() as u64;
                    burst.extend(rx.drain().filter_map(|m| Packet::new(m).ok()));
                    worker.process_burst(now, *rx_port, &mut burst, &mut io);
                    io.flush();
                    if now >= next_tick {
                        worker.on_tick(now, &mut io);
                        io.flush();
                        next_tick = now + TICK;
                    }
                }
            }
        }
        let t = rdtsc();
        match measured_from {
            None if t.wrapping_sub(start) >= warm => {
                measured_from = Some(t);
                counted_pkts = pkts;
            }
            Some(t1) if t.wrapping_sub(t1) >= cycles => {
                return Sample {
                    packets: pkts - counted_pkts,
                    cycles: t.wrapping_sub(t1),
                    tx_dropped: io.tx_dropped,
                };
            }
            _ => {}
        }
    }
}
