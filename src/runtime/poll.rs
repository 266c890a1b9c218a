//! The poll loop of one worker lcore: rx bursts from the worker's queues into
//! `dataplane::Worker`, tx batches flushed once per iteration, timers, configuration pick-up and
//! control requests between bursts.
//!
//! Invariants: the loop never blocks; it allocates only when answering a control request; every
//! mbuf it takes is either transmitted or dropped (freed) before the loop ends, and the worker's
//! own queued packets are freed when the worker is dropped at the end of `run`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use dataplane::l3::addr::PortId;
use dataplane::l3::neigh::NeighInfo;
use dataplane::time::Instant;
use dataplane::worker::{ConnView, Io, Tables, Worker, WorkerConfig, WorkerStats};
use dpdk_bindings::{Mbuf, MbufBatch, Mempool, RxQueue, TxQueue};

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
    /// Every neighbour entry of this worker (`rvsctl neigh show`).
    ListNeighs(Sender<Vec<NeighInfo>>),
    /// Forget learned neighbour entries (of one port or all); answers how many went.
    FlushNeighs(Option<PortId>, Sender<usize>),
    /// Delete one neighbour entry; answers whether it existed.
    DelNeigh(PortId, std::net::Ipv4Addr, Sender<bool>),
}

/// Runtime counters of one worker (the dataplane keeps its own in [`WorkerStats`]).
#[derive(Debug, Default)]
pub struct LoopStats {
    /// Chained (multi-segment) mbufs dropped before the dataplane.
    pub rx_chained: AtomicU64,
    /// Packets the NIC would not take after retries.
    pub tx_dropped: AtomicU64,
    /// Poll iterations, and those that found packets (busy ratio).
    pub polls: AtomicU64,
    pub busy_polls: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    // Single writer: a load and a store, no read-modify-write.
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// Everything one worker lcore owns.
pub struct WorkerCtx {
    pub config: WorkerConfig,
    /// `rx[i]` is the rx queue of port `i` this worker polls.
    pub rx: Vec<RxQueue>,
    /// `tx[i]` is the tx queue of port `i` this worker sends on.
    pub tx: Vec<TxQueue>,
    pub pool: Mempool,
    pub tables: Arc<ArcSwap<Tables>>,
    pub stop: Arc<AtomicBool>,
    pub requests: Receiver<WorkerRequest>,
    pub stats: Arc<WorkerStats>,
    pub loop_stats: Arc<LoopStats>,
    pub idle_sleep: Duration,
    pub epoch: std::time::Instant,
    /// Key of the connection-table hash (random per start).
    pub seed: u64,
}

/// The worker's transmit side, handed to the dataplane as its `Io`.
struct TxSide<'a> {
    tx: &'a mut [TxQueue],
    batches: Vec<MbufBatch>,
    pool: &'a Mempool,
    loop_stats: &'a LoopStats,
}

impl TxSide<'_> {
    fn flush_port(&mut self, port: usize) {
        let batch = &mut self.batches[port];
        for _ in 0..TX_RETRIES {
            if batch.is_empty() {
                return;
            }
            self.tx[port].tx_burst(batch);
        }
        if !batch.is_empty() {
            bump(&self.loop_stats.tx_dropped, batch.len() as u64);
            batch.clear();
        }
    }

    fn flush(&mut self) {
        for port in 0..self.batches.len() {
            self.flush_port(port);
        }
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
}

fn now(epoch: std::time::Instant) -> Instant {
    Instant::from_micros(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
}

/// The worker lcore's main function.
pub fn run(mut ctx: WorkerCtx) -> i32 {
    let tables = ctx.tables.load_full();
    let mut worker: Worker<Packet> = Worker::new(
        ctx.config.clone(),
        tables.clone(),
        ctx.stats.clone(),
        ctx.seed,
    );
    let mut current = tables;
    let n_ports = ctx.tx.len();
    let mut io = TxSide {
        tx: &mut ctx.tx,
        batches: (0..n_ports).map(|_| MbufBatch::new()).collect(),
        pool: &ctx.pool,
        loop_stats: &ctx.loop_stats,
    };
    let mut rx_batch: MbufBatch = MbufBatch::new();
    let mut next_tick = now(ctx.epoch);
    let mut polls = 0u64;
    let mut busy = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        // Configuration changes are picked up between bursts, whole.
        let latest = ctx.tables.load();
        if !Arc::ptr_eq(&latest, &current) {
            current = arc_swap::Guard::into_inner(latest);
            worker.set_tables(current.clone());
        }
        let t = now(ctx.epoch);
        let mut got = 0usize;
        for (port, rxq) in ctx.rx.iter_mut().enumerate() {
            let n = rxq.rx_burst(&mut rx_batch);
            got += n;
            for m in rx_batch.drain() {
                match Packet::new(m) {
                    Ok(p) => worker.process(t, port as PortId, p, &mut io),
                    Err(chained) => {
                        bump(&ctx.loop_stats.rx_chained, 1);
                        drop::<Mbuf>(chained);
                    }
                }
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
                        let _ = reply.send(worker.neighs().collect());
                    }
                    WorkerRequest::FlushNeighs(port, reply) => {
                        let _ = reply.send(worker.flush_neighs(port));
                    }
                    WorkerRequest::DelNeigh(port, ip, reply) => {
                        let _ = reply.send(worker.del_neigh(port, ip));
                    }
                }
            }
            bump(&ctx.loop_stats.polls, polls);
            bump(&ctx.loop_stats.busy_polls, busy);
            polls = 0;
            busy = 0;
        }
        polls += 1;
        if got > 0 {
            busy += 1;
        } else if !ctx.idle_sleep.is_zero() {
            std::thread::sleep(ctx.idle_sleep);
        }
    }
    worker.publish_stats();
    drop(worker); // frees packets waiting for ARP
    drop(io);
    0
}
