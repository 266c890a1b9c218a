//! The DPDK side of the bench: EAL, one mempool, a `net_ring` loopback port that the generator
//! transmits into and the worker receives from (real `tx_burst`/`rx_burst` through an rte_ring),
//! and two `net_null` ports that stand for the director's two NICs on the transmit side (their
//! tx frees the mbufs, as a NIC's completion would). Each worker gets a [`Lane`]: its own queue
//! on every port, so two workers share nothing but the mempool.
//!
//! The measured loop ([`run_stage`]) is the runtime's poll loop (`src/runtime/poll.rs`) minus the
//! control-plane checks: rx burst, the worker on the burst ([`process_burst`], the one place the
//! bench hands packets to the worker), one flush per burst, `on_tick` every 10 ms of worker
//! time. [`Stage::Redirect`] adds rvsd's steering: each received packet is asked
//! `Worker::steer`; those another worker owns go to it through an SPSC `Ring` (as rvsd's
//! per-pair redirect rings), and what the other worker handed over is taken from its ring,
//! steered again (as rvsd does) and processed.

use std::time::Duration;

use anyhow::{Context, Result};
use dataplane::l3::addr::PortId;
use dataplane::time::Instant;
use dataplane::worker::{Io, Worker};
use dpdk_bindings::{
    Eal, MbufBatch, Mempool, Port, PortConfig, RingConsumer, RingProducer, RxQueue, SOCKET_ID_ANY,
    TxQueue, port_id_by_name, rdtsc, tsc_hz,
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
    /// Packets the worker transmitted (handed to a NIC queue, taken or not).
    pub sent: u64,
}

impl<'a> BenchIo<'a> {
    pub fn new(tx: &'a mut [TxQueue]) -> Self {
        BenchIo {
            tx,
            batches: [MbufBatch::new(), MbufBatch::new()],
            tx_dropped: 0,
            sent: 0,
        }
    }

    fn flush_port(&mut self, port: usize) {
        let batch = &mut self.batches[port];
        self.sent += batch.len() as u64;
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
    /// The worker time after `pkts` generated packets.
    pub fn now(&self, pkts: u64) -> Instant {
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
    /// As `Dataplane`, with rvsd's steering: packets another worker owns go to it through
    /// `to`; packets from `from` (handed over by the other worker) are processed here. The
    /// inbox is served once per burst; the bench's traffic is all on one port, so a handed-over
    /// burst is processed with the port of its first frame.
    Redirect {
        worker: &'w mut Worker<Packet>,
        rx_port: PortId,
        clock: Clock,
        to: &'w mut RingProducer,
        from: &'w mut RingConsumer,
    },
}

/// Raw result of one measured loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Packets the worker processed (`Redirect`: its own arrivals plus those the other worker
    /// handed over, each packet counted once, by the worker that processed it).
    pub packets: u64,
    pub cycles: u64,
    pub tx_dropped: u64,
    /// Packets the worker transmitted through [`BenchIo`] (0 for `Generate` and `IoForward`,
    /// which have no worker); the IPv6 cases require one per packet received.
    pub sent: u64,
    /// Redirect runs: packets handed to the other worker (taken by the ring), and those freed
    /// because they came back from the ring owned by neither (never expected).
    pub redirected: u64,
    pub ring_dropped: u64,
}

/// The worker on one received burst, emptying `rx`: the single call site of the worker's
/// packet path in every measured loop (the runtime's poll loop does the same per rx burst).
#[inline]
pub fn process_burst(
    worker: &mut Worker<Packet>,
    now: Instant,
    port: PortId,
    rx: &mut MbufBatch,
    burst: &mut Vec<Packet>,
    io: &mut BenchIo<'_>,
) {
    burst.extend(rx.drain().filter_map(|m| Packet::new(m).ok()));
    worker.process_burst(now, port, burst, io);
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
    let mut handed: Vec<(u16, Packet)> = Vec::with_capacity(dpdk_bindings::BURST);
    let mut away: MbufBatch = MbufBatch::new();
    let (mut redirected, mut ring_dropped) = (0u64, 0u64);
    let (mut counted_redirected, mut counted_ring_dropped) = (0u64, 0u64);
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
    let mut counted_sent = 0u64;
    loop {
        // 8 bursts per clock check keeps rdtsc out of the per-packet cost.
        for _ in 0..8 {
            // (Only `Redirect` ever leaves a burst here: while the other worker's ring is full.)
            if gen_batch.is_empty() && !traffic.fill(pool, &mut gen_batch) {
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
                    process_burst(worker, now, *rx_port, &mut rx, &mut burst, &mut io);
                    io.flush();
                    if now >= next_tick {
                        worker.on_tick(now, &mut io);
                        io.flush();
                        next_tick = now + TICK;
                    }
                }
                Stage::Redirect {
                    worker,
                    rx_port,
                    clock,
                    to,
                    from,
                } => {
                    let now = clock.now(traffic.packets);
                    // Hand over what the ring did not take last time first; while it still
                    // does not fit, this worker takes nothing new from its NIC (below) and only
                    // serves its inbox: a partner that falls behind (descheduled on a shared
                    // machine) shows as a lower rate here rather than as drops. rvsd frees
                    // such frames instead (`ring_overflows`).
                    if !away.is_empty() {
                        redirected += to.enqueue_burst(&mut away) as u64;
                    }
                    if away.is_empty() {
                        feed.tx_burst(&mut gen_batch);
                        gen_batch.clear();
                        rxq.rx_burst(&mut rx);
                        // As rvsd's poll loop: own-first steering inside the staged burst.
                        burst.extend(rx.drain().filter_map(|m| Packet::new(m).ok()));
                        let before = burst.len();
                        worker.process_burst_steered(
                            now,
                            *rx_port,
                            &mut burst,
                            |_| None,
                            &mut handed,
                            &mut io,
                        );
                        pkts += (before - handed.len()) as u64;
                        for (_, p) in handed.drain(..) {
                            let mut m = p.into_mbuf();
                            m.set_port(*rx_port);
                            let _ = away.push(m);
                        }
                        // Handed over once per burst (rvsd: once per poll iteration).
                        redirected += to.enqueue_burst(&mut away) as u64;
                    }
                    // What the other worker handed over: steered again inside the staged
                    // burst, as rvsd does, then processed.
                    from.dequeue_burst(&mut rx);
                    let port = rx.first().map_or(*rx_port, |m| m.port());
                    burst.extend(rx.drain().filter_map(|m| Packet::new(m).ok()));
                    let before = burst.len();
                    worker.process_burst_steered(
                        now,
                        port,
                        &mut burst,
                        |_| None,
                        &mut handed,
                        &mut io,
                    );
                    pkts += (before - handed.len()) as u64;
                    // Never expected (both workers run the same tables); freed if it happens.
                    ring_dropped += handed.len() as u64;
                    handed.clear();
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
                counted_sent = io.sent;
                counted_redirected = redirected;
                counted_ring_dropped = ring_dropped;
            }
            Some(t1) if t.wrapping_sub(t1) >= cycles => {
                return Sample {
                    packets: pkts - counted_pkts,
                    cycles: t.wrapping_sub(t1),
                    tx_dropped: io.tx_dropped,
                    sent: io.sent - counted_sent,
                    redirected: redirected - counted_redirected,
                    ring_dropped: ring_dropped - counted_ring_dropped,
                };
            }
            _ => {}
        }
    }
}
