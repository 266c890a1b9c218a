//! The poll loop of one worker lcore: rx bursts from the worker's queues into
//! `dataplane::Worker`, tx batches flushed once per iteration, timers, configuration pick-up and
//! control requests between bursts.
//!
//! Flow steering (docs/architecture.md, "Cores and steering") happens inside the worker's
//! staged burst ([`Worker::process_burst_steered`]), own-first: a TCP/UDP frame whose tuple is
//! in this worker's connection table is this worker's (its bucket and record were prefetched
//! with the rest of the burst); only the others get an owner computed, from the NIC's RSS hash
//! where the port hashes the client endpoint with rvs's key, else in software. With one worker
//! nothing is steered. A frame owned by another worker goes to it through the per-pair SPSC ring
//! (`Redirect::to`), batched per destination and enqueued once per iteration; a full ring counts
//! `ring_overflows` and frees the frame. Each iteration drains the rings from every other worker
//! and steers what they bring again (a worker that just picked up newer tables may disagree
//! with the sender; the rules converge as soon as both run the same snapshot). ARP frames
//! (`Owner::All`) are handled by the receiving worker, and each other worker gets a copy
//! (a fresh mbuf, [`Io::share`]) through the same rings: an ARP frame that arrives from a ring is
//! therefore always such a copy, and is only learnt from ([`Worker::learn_arp`]), never answered.
//! A redirected mbuf carries its receiving port in its `port` field (ethdev id).
//!
//! Transmit: each worker has its own tx queue on every port whose device has enough queues;
//! on a port with fewer tx queues than workers, worker `w` without one hands its packets to the
//! owner of queue `w % queues` through an MPSC ring, which that worker sends each iteration.
//!
//! Invariants: the loop never blocks; it allocates only when answering a control request; every
//! mbuf it takes is either transmitted, handed to another worker or dropped (freed) before the
//! loop ends, and the worker's own queued packets are freed when the worker is dropped at the
//! end of `run`. Rings still holding mbufs free them when their last handle goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use dataplane::l3::addr::PortId;
use dataplane::l3::neigh::NeighInfo;
use dataplane::time::Instant;
use dataplane::worker::{ConnView, Io, Tables, Worker, WorkerConfig, WorkerStats};
use dpdk_bindings::{Mbuf, MbufBatch, Mempool, RingConsumer, RingProducer, RxQueue, TxQueue};

use super::mbuf::Packet;

/// How often `Worker::on_tick` runs.
const TICK: Duration = Duration::from_millis(10);
/// Transmit retries of a partly sent batch before the rest is dropped (and counted).
const TX_RETRIES: usize = 4;

/// A request from the control plane, answered between bursts.
#[derive(Debug)]
pub enum WorkerRequest {
    /// Every connection of this worker, as of now.
    ListConns(Sender<Vec<ConnView>>),
    /// Every neighbour entry of this worker (`rvsctl neigh show`): IPv4, then IPv6.
    ListNeighs(Sender<(Vec<NeighInfo>, Vec<NeighInfo<std::net::Ipv6Addr>>)>),
    /// Forget learned neighbour entries (of one port or all); answers how many went.
    FlushNeighs(Option<PortId>, Sender<usize>),
    /// Delete one neighbour entry; answers whether it existed.
    DelNeigh(PortId, std::net::IpAddr, Sender<bool>),
}

/// Runtime counters of one worker (the dataplane keeps its own in [`WorkerStats`]). Single
/// writer (the worker), published every tick and at exit.
#[derive(Debug, Default)]
pub struct LoopStats {
    /// Chained (multi-segment) mbufs dropped before the dataplane.
    pub rx_chained: AtomicU64,
    /// Packets the NIC would not take after retries (or a full tx handoff ring).
    pub tx_dropped: AtomicU64,
    /// Poll iterations, and those that found packets (busy ratio).
    pub polls: AtomicU64,
    pub busy_polls: AtomicU64,
    /// Frames handed to their owner worker through a ring (ARP copies not included).
    pub redirects_sent: AtomicU64,
    /// Frames taken from the rings of other workers (ARP copies included).
    pub redirects_received: AtomicU64,
    /// Frames (redirects and ARP copies) freed because the ring to their worker was full.
    pub ring_overflows: AtomicU64,
    /// ARP frames copied to the other workers (one per copy).
    pub arp_copies: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    // Single writer: a load and a store, no read-modify-write.
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// Where a worker sends a port's packets.
#[derive(Debug)]
pub enum TxPath {
    /// Its own tx queue of the port.
    Queue(TxQueue),
    /// The port has fewer tx queues than workers: through this ring to the worker owning one.
    Handoff(RingProducer),
}

/// A worker's ends of the redirect rings.
#[derive(Debug, Default)]
pub struct Redirect {
    /// `to[j]`: the ring to worker `j` (`None` for the worker itself).
    pub to: Vec<Option<RingProducer>>,
    /// The rings from the other workers.
    pub from: Vec<RingConsumer>,
}

/// Everything one worker lcore owns.
pub struct WorkerCtx {
    pub config: WorkerConfig,
    /// The rx queues this worker polls, with their port index (a port with fewer rx queues
    /// than workers is polled by the first workers only).
    pub rx: Vec<(PortId, RxQueue)>,
    /// `tx[i]`: how this worker sends on port `i`.
    pub tx: Vec<TxPath>,
    /// Handoff rings of other workers this worker sends on its queue of port `.0`.
    pub tx_handoff: Vec<(usize, RingConsumer)>,
    pub redirect: Redirect,
    /// `ethdev[i]`: the DPDK port id of port index `i` (written into redirected mbufs).
    pub ethdev: Vec<u16>,
    /// `nic_hash[i]`: how port `i`'s RSS hash reads as a client-endpoint hash, where it is one
    /// (steering then takes it instead of computing Toeplitz).
    pub nic_hash: Vec<Option<super::NicHashSide>>,
    pub pool: Mempool,
    pub tables: Arc<ArcSwap<Tables>>,
    pub stop: Arc<AtomicBool>,
    pub requests: Receiver<WorkerRequest>,
    pub stats: Arc<WorkerStats>,
    pub loop_stats: Arc<LoopStats>,
    /// How to wait after an empty poll ([`super::idle`]).
    pub idle: Arc<super::idle::IdleShared>,
    pub epoch: std::time::Instant,
    /// Key of the connection-table hash (random per start).
    pub seed: u64,
    /// The worker's end of the exception path (frames for the ports' kernel twins).
    pub kernel: super::kernel::KernelTx,
    /// Connections of a previous process this worker owns, put back before its first poll.
    pub restore: Restore,
    /// Set by a stop with state: export the connections when the loop ends.
    pub save: Arc<AtomicBool>,
    /// Where the export goes (worker id, records).
    pub export: Sender<(usize, dataplane::conn::ConnRecords)>,
}

/// A state file's connections for one worker.
#[derive(Debug, Default)]
pub struct Restore {
    pub conns: dataplane::conn::ConnRecords,
    /// How long ago they were saved (taken off their remaining time).
    pub elapsed: Duration,
}

/// Before the first poll: put back the connections of a restart with state.
fn restore_conns(worker: &mut Worker<Packet>, ctx: &mut WorkerCtx) {
    let conns = std::mem::take(&mut ctx.restore.conns);
    if conns.is_empty() {
        return;
    }
    let r = worker.import_conns(now(ctx.epoch), ctx.restore.elapsed, &conns);
    tracing::info!(
        worker = ctx.config.id,
        restored = r.restored,
        restored6 = r.restored6,
        expired = r.expired,
        no_service = r.no_service,
        no_dest = r.no_dest,
        table_full = r.full,
        clash = r.clash,
        "connections restored"
    );
}

/// When the loop has ended: hand this worker's connections to a stop with state.
fn export_conns(worker: &Worker<Packet>, ctx: &WorkerCtx) {
    if ctx.save.load(Ordering::Relaxed) {
        let _ = ctx
            .export
            .send((ctx.config.id, worker.export_conns(now(ctx.epoch))));
    }
}

/// The worker's transmit side, handed to the dataplane as its `Io`.
struct TxSide<'a> {
    tx: &'a mut [TxPath],
    batches: Vec<MbufBatch>,
    pool: &'a Mempool,
    dropped: u64,
    kernel: &'a mut super::kernel::KernelTx,
    /// Copies of ARP frames for the other workers ([`Io::share`]), handed over after the burst.
    shared: Vec<(PortId, Mbuf)>,
    /// Copies that could not be made (pool empty), counted with the ring overflows.
    share_failed: u64,
}

impl TxSide<'_> {
    fn flush_port(&mut self, port: usize) {
        let batch = &mut self.batches[port];
        for _ in 0..TX_RETRIES {
            if batch.is_empty() {
                return;
            }
            match &mut self.tx[port] {
                TxPath::Queue(q) => q.tx_burst(batch),
                TxPath::Handoff(ring) => ring.enqueue_burst(batch),
            };
        }
        if !batch.is_empty() {
            self.dropped += batch.len() as u64;
            batch.clear();
        }
    }

    fn flush(&mut self) {
        for port in 0..self.batches.len() {
            self.flush_port(port);
        }
        self.kernel.flush();
    }
}

impl Io<Packet> for TxSide<'_> {
    fn transmit(&mut self, port: PortId, buf: Packet) {
        let port = usize::from(port);
        let Some(batch) = self.batches.get_mut(port) else {
            return; // no such port: the packet is freed
        };
        if batch.is_full() {
            self.flush_port(port);
        }
        let _ = self.batches[port].push(buf.into_mbuf());
    }

    fn alloc(&mut self) -> Option<Packet> {
        self.pool.alloc().map(Packet)
    }

    #[inline]
    fn prefetch<T>(&self, r: &T) {
        dpdk_bindings::prefetch(r);
    }

    #[inline]
    fn has_kernel(&self, port: PortId) -> bool {
        self.kernel.has(port)
    }

    fn to_kernel(&mut self, port: PortId, buf: Packet) {
        self.kernel.push(port, buf.into_mbuf());
    }

    fn share(&mut self, port: PortId, frame: &[u8]) {
        let copy = self.pool.alloc().and_then(|mut c| {
            c.extend_from_slice(frame).ok()?;
            Some(c)
        });
        match copy {
            Some(c) => self.shared.push((port, c)),
            None => self.share_failed += 1,
        }
    }
}

/// The sending side of steering: per-destination batches and counters.
struct Steer<'a> {
    me: usize,
    nic_hash: &'a [Option<super::NicHashSide>],
    to: &'a mut [Option<RingProducer>],
    out: Vec<MbufBatch>,
    ethdev: &'a [u16],
    sent: u64,
    overflows: u64,
    arp_copies: u64,
}

impl Steer<'_> {
    fn push(&mut self, worker: usize, port: PortId, mut m: Mbuf) {
        if let Some(id) = self.ethdev.get(usize::from(port)) {
            m.set_port(*id);
        }
        if self.out[worker].is_full() {
            self.flush_to(worker);
        }
        let _ = self.out[worker].push(m);
    }

    fn flush_to(&mut self, worker: usize) {
        let batch = &mut self.out[worker];
        if batch.is_empty() {
            return;
        }
        if let Some(Some(ring)) = self.to.get_mut(worker) {
            ring.enqueue_burst(batch);
        }
        self.overflows += batch.len() as u64;
        batch.clear();
    }

    fn flush(&mut self) {
        for w in 0..self.out.len() {
            self.flush_to(w);
        }
    }
}

/// The workers' clock: time since `epoch` (taken once per process).
pub fn now(epoch: std::time::Instant) -> Instant {
    Instant::from_micros(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
}

/// Hand over what a steered burst left for other workers (counted as redirects sent when it
/// came from the NIC: `count`), and the ARP copies it shared.
fn hand_over(
    port: PortId,
    away: &mut Vec<(u16, Packet)>,
    io: &mut TxSide<'_>,
    steer: &mut Steer<'_>,
    count: bool,
) {
    for (w, p) in away.drain(..) {
        if usize::from(w) < steer.out.len() {
            steer.sent += u64::from(count);
            steer.push(usize::from(w), port, p.into_mbuf());
        }
    }
    steer.overflows += std::mem::take(&mut io.share_failed);
    let me = steer.me;
    let others = steer.out.len().saturating_sub(1);
    for (port, copy) in io.shared.drain(..) {
        // One copy was made; the others are copies of it, the last worker gets it.
        let mut sent = 0;
        for w in (0..steer.out.len()).filter(|&w| w != me) {
            sent += 1;
            if sent < others {
                let c = io.pool.alloc().and_then(|mut c| {
                    c.extend_from_slice(copy.data()).ok()?;
                    Some(c)
                });
                match c {
                    Some(c) => {
                        steer.arp_copies += 1;
                        steer.push(w, port, c);
                    }
                    None => steer.overflows += 1,
                }
            } else {
                steer.arp_copies += 1;
                steer.push(w, port, copy);
                break;
            }
        }
    }
}

/// The worker lcore's main function.
pub fn run(mut ctx: WorkerCtx) -> i32 {
    let tables = ctx.tables.load_full();
    // The connection table is advised onto transparent huge pages before it is first touched
    // (fewer TLB misses on random lookups; a no-op where THP is off).
    let mut worker: Worker<Packet> = Worker::with_advice(
        ctx.config.clone(),
        tables.clone(),
        ctx.stats.clone(),
        ctx.seed,
        dpdk_bindings::advise_hugepages,
    );
    restore_conns(&mut worker, &mut ctx);
    let me = ctx.config.id;
    let n_workers = ctx.config.workers.max(1);
    let mut current = tables;
    let n_ports = ctx.tx.len();
    // Port index of each ethdev id, for frames arriving from rings.
    let mut port_of = vec![None; usize::from(ctx.ethdev.iter().copied().max().unwrap_or(0)) + 1];
    for (i, id) in ctx.ethdev.iter().enumerate() {
        port_of[usize::from(*id)] = PortId::try_from(i).ok();
    }
    let mut io = TxSide {
        tx: &mut ctx.tx,
        batches: (0..n_ports).map(|_| MbufBatch::new()).collect(),
        pool: &ctx.pool,
        dropped: 0,
        kernel: &mut ctx.kernel,
        shared: Vec::with_capacity(dpdk_bindings::BURST),
        share_failed: 0,
    };
    let mut steer = Steer {
        me,
        nic_hash: &ctx.nic_hash,
        to: &mut ctx.redirect.to,
        out: (0..n_workers).map(|_| MbufBatch::new()).collect(),
        ethdev: &ctx.ethdev,
        sent: 0,
        overflows: 0,
        arp_copies: 0,
    };
    let mut received = 0u64;
    let mut chained = 0u64;
    let mut rx_batch: MbufBatch = MbufBatch::new();
    let mut mine: Vec<Packet> = Vec::with_capacity(2 * dpdk_bindings::BURST);
    let mut away: Vec<(u16, Packet)> = Vec::with_capacity(dpdk_bindings::BURST);
    let mut next_tick = now(ctx.epoch);
    let mut polls = 0u64;
    let mut busy = 0u64;
    let mut backoff = super::idle::Backoff::default();
    let publish = |ls: &LoopStats,
                   io: &mut TxSide<'_>,
                   steer: &mut Steer<'_>,
                   received: &mut u64,
                   chained: &mut u64| {
        bump(&ls.tx_dropped, std::mem::take(&mut io.dropped));
        io.kernel.publish();
        bump(&ls.redirects_sent, std::mem::take(&mut steer.sent));
        bump(&ls.ring_overflows, std::mem::take(&mut steer.overflows));
        bump(&ls.arp_copies, std::mem::take(&mut steer.arp_copies));
        bump(&ls.redirects_received, std::mem::take(received));
        bump(&ls.rx_chained, std::mem::take(chained));
    };
    while !ctx.stop.load(Ordering::Relaxed) {
        // Configuration changes are picked up between bursts, whole.
        let latest = ctx.tables.load();
        if !Arc::ptr_eq(&latest, &current) {
            current = arc_swap::Guard::into_inner(latest);
            worker.set_tables(current.clone());
        }
        let t = now(ctx.epoch);
        let mut got = 0usize;
        for (port, rxq) in ctx.rx.iter_mut() {
            got += rxq.rx_burst(&mut rx_batch);
            for m in rx_batch.drain() {
                match Packet::new(m) {
                    Ok(p) => mine.push(p),
                    Err(m) => {
                        chained += 1;
                        drop::<Mbuf>(m);
                    }
                }
            }
            // The NIC's hash, where it is the client endpoint's (see `NicHashSide`).
            let side = steer.nic_hash.get(usize::from(*port)).copied().flatten();
            let nic = |p: &Packet| side.zip(p.0.rss_hash()).map(|(side, h)| side(h));
            worker.process_burst_steered(t, *port, &mut mine, nic, &mut away, &mut io);
            hand_over(*port, &mut away, &mut io, &mut steer, true);
        }
        for ring in ctx.redirect.from.iter_mut() {
            let n = ring.dequeue_burst(&mut rx_batch);
            got += n;
            received += n as u64;
            // Frames another worker handed over, grouped by their port: ARP copies are only
            // learnt from; the others are steered again inside the staged burst (a worker
            // that just picked up newer tables may disagree with the sender) and processed.
            let mut burst_port = None;
            for m in rx_batch.drain() {
                let port = port_of.get(usize::from(m.port())).copied().flatten();
                let arp = m.data().get(12..14) == Some(&[0x08, 0x06])
                    || dataplane::worker::is_nd_frame(m.data());
                if port != burst_port || arp {
                    if let Some(bp) = burst_port {
                        let nic = |_: &Packet| None;
                        worker.process_burst_steered(t, bp, &mut mine, nic, &mut away, &mut io);
                        hand_over(bp, &mut away, &mut io, &mut steer, false);
                    }
                    burst_port = port;
                }
                match (port, Packet::new(m)) {
                    (Some(port), Ok(p)) if arp => worker.learn_arp(t, port, p, &mut io),
                    (Some(_), Ok(p)) => mine.push(p),
                    (_, Ok(p)) => drop(p),
                    (_, Err(m)) => {
                        chained += 1;
                        drop::<Mbuf>(m);
                    }
                }
            }
            if let Some(bp) = burst_port {
                let nic = |_: &Packet| None;
                worker.process_burst_steered(t, bp, &mut mine, nic, &mut away, &mut io);
                hand_over(bp, &mut away, &mut io, &mut steer, false);
            }
        }
        steer.flush();
        for (port, ring) in ctx.tx_handoff.iter_mut() {
            if let Some(batch) = io.batches.get_mut(*port) {
                got += ring.dequeue_burst(batch);
            }
        }
        io.flush();
        if t >= next_tick {
            worker.on_tick(t, &mut io);
            io.flush();
            worker.publish_stats();
            next_tick = t + TICK;
            while let Ok(req) = ctx.requests.try_recv() {
                match req {
                    WorkerRequest::ListConns(reply) => {
                        let _ = reply.send(worker.conns(t).collect());
                    }
                    WorkerRequest::ListNeighs(reply) => {
                        let _ = reply.send((worker.neighs().collect(), worker.neighs6().collect()));
                    }
                    WorkerRequest::FlushNeighs(port, reply) => {
                        let _ = reply.send(worker.flush_neighs(port));
                    }
                    WorkerRequest::DelNeigh(port, ip, reply) => {
                        let found = match ip {
                            std::net::IpAddr::V4(ip) => worker.del_neigh(port, ip),
                            std::net::IpAddr::V6(ip) => worker.del_neigh6(port, ip),
                        };
                        let _ = reply.send(found);
                    }
                }
            }
            bump(&ctx.loop_stats.polls, polls);
            bump(&ctx.loop_stats.busy_polls, busy);
            publish(
                &ctx.loop_stats,
                &mut io,
                &mut steer,
                &mut received,
                &mut chained,
            );
            polls = 0;
            busy = 0;
        }
        polls += 1;
        if got > 0 {
            busy += 1;
            backoff.found();
        } else if let Some(nap) = backoff.nothing(&ctx.idle) {
            std::thread::sleep(nap);
        }
    }
    worker.publish_stats();
    publish(
        &ctx.loop_stats,
        &mut io,
        &mut steer,
        &mut received,
        &mut chained,
    );
    drop(steer);
    drop(io);
    export_conns(&worker, &ctx);
    drop(worker); // frees packets waiting for ARP
    0
}
