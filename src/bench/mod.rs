//! `rvs-bench`: the real dataplane (`dataplane::worker::Worker` over `Packet`, the mbuf newtype
//! rvsd runs) on real DPDK mbufs and vdevs, measured per core against a plain io-forward loop
//! in the same run (DESIGN.md section 9, issue 7).
//!
//! Every measured loop is: generator -> `tx_burst` into a `net_ring` loopback -> `rx_burst` ->
//! (worker | nothing) -> `tx_burst` to `net_null`. Per case:
//! - `cycles_per_packet` / `mpps_per_core`: the loop minus the generator's own cost (measured
//!   alone): what a worker core spends on a packet that arrives from a (virtual) NIC;
//! - `dataplane_cycles_per_packet`: the loop minus the io-forward loop: what processing adds;
//! - `ratio_to_iofwd`: the loop's packet rate over the io-forward loop's (generator in both).
//!
//! Layout: [`traffic`] template frames and flow choice, [`rig`] EAL/ports/lanes and the measured
//! loop, [`net`] addresses, services and the forwarding methods, [`report`] the table and JSON.

pub mod net;
pub mod report;
pub mod rig;
pub mod traffic;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use dataplane::conn::{ConnState, TcpState, Timeouts};
use dataplane::drop::DropReason;
use dataplane::time::Instant;
use dataplane::worker::{Io, Tables, Worker};
use dpdk_bindings::{Mempool, rdtsc, tsc_hz};

use net::{Direction, MethodSpec};
use report::{MemRow, Report, Row};
use rig::{Clock, Lane, Rig, Sample, Stage};
use traffic::{Dist, Gen, Pattern, Template};

use crate::runtime::mbuf::Packet;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    /// Established-connection counts per worker.
    pub sizes: Vec<usize>,
    /// Measured seconds per case (after a warm-up of a tenth of it, at least 50 ms).
    pub seconds: f64,
    /// Live connections kept by the new-connection runs (expiry holds the table there).
    pub new_conn_live: usize,
    /// Connections per worker for the 1-vs-2-worker comparison.
    pub scaling_conns: usize,
    pub zipf_s: f64,
    pub hugepages: bool,
}

impl Options {
    pub fn new(quick: bool) -> Options {
        if quick {
            Options {
                quick,
                sizes: vec![1_000, 1_000_000],
                seconds: 0.25,
                new_conn_live: 100_000,
                scaling_conns: 100_000,
                zipf_s: 0.99,
                hugepages: false,
            }
        } else {
            Options {
                quick,
                sizes: vec![1_000, 100_000, 1_000_000, 10_000_000],
                seconds: 2.0,
                new_conn_live: 1_000_000,
                scaling_conns: 1_000_000,
                zipf_s: 0.99,
                hugepages: false,
            }
        }
    }
}

/// Real servers behind the service in every case.
const DESTS: usize = 4;
/// Flow indices per precomputed sequence (cycled): 16 MiB, streamed.
const FLOW_SEQ: usize = 1 << 22;
/// The worker clock at setup; measured runs continue from it in real time.
const T0: Instant = Instant::from_secs(1_000);
/// After setup: every setup-time timer has fired and been re-armed.
const SETTLED: Instant = Instant::from_secs(1_005);
const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

struct Ctx {
    pool: Mempool,
    hz: u64,
    warm: u64,
    cycles: u64,
    /// Generator cycles per packet (alloc, fill, free), subtracted for the per-core figures.
    gen_cyc: f64,
    /// Io-forward loop cycles per packet, generator included: the ceiling.
    io_cyc: f64,
}

impl Ctx {
    fn row(&self, group: &str, case: String, s: &[Sample], drops: u64) -> Row {
        let packets: u64 = s.iter().map(|s| s.packets).sum();
        let loops: Vec<f64> = s
            .iter()
            .map(|s| s.cycles as f64 / s.packets.max(1) as f64)
            .collect();
        let n = loops.len() as f64;
        let loop_cyc = loops.iter().sum::<f64>() / n;
        let net = |l: f64| (l - self.gen_cyc).max(0.5);
        let mpps_total: f64 = loops.iter().map(|&l| self.hz as f64 / net(l) / 1e6).sum();
        Row {
            group: group.into(),
            case,
            workers: s.len(),
            packets,
            loop_cycles_per_packet: loop_cyc,
            cycles_per_packet: net(loop_cyc),
            dataplane_cycles_per_packet: loop_cyc - self.io_cyc,
            mpps_per_core: mpps_total / n,
            mpps_total,
            ratio_to_iofwd: self.io_cyc / loop_cyc,
            conns_per_sec_per_core: None,
            drops: drops + s.iter().map(|s| s.tx_dropped).sum::<u64>(),
            note: String::new(),
        }
    }
}

/// [`run`], printing each row to stderr as it is measured.
pub fn run_with_progress(opts: &Options) -> Result<Report> {
    run_inner(opts, true)
}

/// Run everything `opts` asks for.
pub fn run(opts: &Options) -> Result<Report> {
    run_inner(opts, false)
}

fn run_inner(opts: &Options, progress: bool) -> Result<Report> {
    let mut rig = Rig::new(2, opts.hugepages)?;
    let hz = tsc_hz();
    let mut ctx = Ctx {
        pool: rig.pool.clone(),
        hz,
        warm: ((opts.seconds / 10.0).max(0.05) * hz as f64) as u64,
        cycles: (opts.seconds * hz as f64) as u64,
        gen_cyc: 0.0,
        io_cyc: 0.0,
    };
    let mut report = Report::new(opts, hz);
    report.progress = progress;
    let mut lane = rig.take_lane(0);

    // The generator alone, then the io-forward ceiling, with the same flows as NAT-in.
    let idx = traffic::flow_indices(1_000_000, Dist::Uniform, FLOW_SEQ, 1);
    let mut g = Gen::new(
        vec![net::client_template(ACK)],
        Pattern::Flows {
            idx: idx.clone(),
            pos: 0,
        },
    );
    // Best of three alternating runs each: the least disturbed by anything else on the machine.
    let (mut best_gen, mut best_io) = (Sample::default(), Sample::default());
    let per_pkt = |s: &Sample| s.cycles as f64 / s.packets.max(1) as f64;
    for _ in 0..3 {
        let s = rig::run_stage(
            &mut lane,
            &ctx.pool,
            &mut g,
            Stage::Generate,
            ctx.warm,
            ctx.cycles,
        );
        if best_gen.packets == 0 || per_pkt(&s) < per_pkt(&best_gen) {
            best_gen = s;
        }
        let s = rig::run_stage(
            &mut lane,
            &ctx.pool,
            &mut g,
            Stage::IoForward,
            ctx.warm,
            ctx.cycles,
        );
        if best_io.packets == 0 || per_pkt(&s) < per_pkt(&best_io) {
            best_io = s;
        }
    }
    ctx.gen_cyc = per_pkt(&best_gen);
    ctx.io_cyc = per_pkt(&best_io);
    let mut gen_row = ctx.row(
        "generator",
        "alloc + 60 B copy + patch + free".into(),
        &[best_gen],
        0,
    );
    gen_row.cycles_per_packet = ctx.gen_cyc;
    gen_row.mpps_per_core = hz as f64 / ctx.gen_cyc / 1e6;
    gen_row.mpps_total = gen_row.mpps_per_core;
    gen_row.dataplane_cycles_per_packet = 0.0;
    gen_row.note = "its cost is subtracted for cyc/pkt and Mpps/core".into();
    report.rows.push(gen_row);
    let mut io_row = ctx.row(
        "ceiling",
        "io-forward ring->null (no processing)".into(),
        &[best_io],
        0,
    );
    io_row.note = "cyc/pkt here = ring tx+rx and null tx".into();
    report.rows.push(io_row);
    report.print_progress();

    // Established traffic per method, direction, size and flow distribution.
    let mut unsupported: Vec<&str> = Vec::new();
    for &n in &opts.sizes {
        for m in net::methods() {
            if unsupported.contains(&m.name) {
                continue;
            }
            match established(&ctx, &mut lane, &m, n, opts, &mut report)? {
                true => {}
                false => {
                    unsupported.push(m.name);
                    report.notes.push(format!(
                        "{}: the worker has no data path for it yet (its SYN is dropped as method_unsupported); not measured",
                        m.name
                    ));
                }
            }
            report.print_progress();
        }
    }

    // New connections per scheduler.
    for sched in dataplane::sched::IMPLEMENTED {
        new_conns(&ctx, &mut lane, sched, opts.new_conn_live, &mut report)?;
        report.print_progress();
    }

    // 1 vs 2 independent workers.
    rig.put_lane(lane);
    scaling(&ctx, &mut rig, opts, &mut report)?;
    report.notes.push(
        "scaling: independent workers, each with its own flows, queues and connection table; \
         the cost of redirects (wrong-core arrivals, rings between workers) is not measured here"
            .into(),
    );
    report.print_progress();
    Ok(report)
}

/// Counts what the worker sends during setup and remembers the last destination address.
#[derive(Default)]
struct SetupIo {
    last_dst: [u8; 4],
    sent: u64,
}

impl Io<Packet> for SetupIo {
    fn transmit(&mut self, _port: dataplane::l3::addr::PortId, buf: Packet) {
        use dataplane::packet::PacketBuf;
        if let Some(d) = buf.data().get(30..34) {
            self.last_dst.copy_from_slice(d);
        }
        self.sent += 1;
    }
    fn alloc(&mut self) -> Option<Packet> {
        None
    }
}

/// Establish flows `0..n` (SYN, SYN-ACK when replies pass the director, ACK). Returns the
/// scheduler's dest sequence (flow `i` went to dest `seq[i % seq.len()]`), or `None` when the
/// worker refuses the method.
fn establish(
    worker: &mut Worker<Packet>,
    pool: &Mempool,
    m: &MethodSpec,
    n: usize,
) -> Result<Option<Vec<usize>>> {
    let syn = net::client_template(SYN);
    let ack = net::client_template(ACK);
    let synack: Vec<Template> = (0..DESTS)
        .map(|i| net::server_template(i, SYN_ACK))
        .collect();
    let replies = m.directions.contains(&Direction::Out);
    let mut io = SetupIo::default();
    let mut seq: Vec<usize> = Vec::new();
    let pkt = |t: &Template, flow: usize| -> Result<Packet> {
        let mb = t
            .mbuf(pool, flow as u64)
            .context("mempool empty during setup")?;
        Ok(Packet(mb))
    };
    const CHUNK: usize = 4096;
    let mut dests = vec![0usize; CHUNK];
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        for i in start..end {
            let before = io.sent;
            worker.process(T0, 0, pkt(&syn, i)?, &mut io);
            if io.sent == before {
                if worker.drops().get(DropReason::MethodUnsupported) > 0 {
                    return Ok(None);
                }
                bail!("setup SYN of flow {i} dropped: {:?}", nonzero_drops(worker));
            }
            if replies {
                let d = Ipv4Addr::from(io.last_dst);
                let k = (0..DESTS)
                    .find(|&k| net::rip(k) == d)
                    .context("SYN forwarded to an unknown address")?;
                dests[i - start] = k;
                if i < DESTS {
                    seq.push(k);
                } else if seq[i % DESTS] != k {
                    bail!("scheduler sequence not periodic: flow {i} went to dest {k}");
                }
            }
        }
        if replies {
            for i in start..end {
                worker.process(T0, 1, pkt(&synack[dests[i - start]], i)?, &mut io);
            }
        }
        for i in start..end {
            worker.process(T0, 0, pkt(&ack, i)?, &mut io);
        }
    }
    if worker.drops().total() != 0 || worker.conn_count() != n {
        bail!(
            "setup of {n} connections: {} in table, drops {:?}",
            worker.conn_count(),
            nonzero_drops(worker)
        );
    }
    // Connections were armed in the timer wheel at their first (2 s) deadline; let the wheel
    // re-arm them lazily now, as it would have while they arrived, rather than inside the first
    // measurement.
    for _ in 0..n / 32_768 + 2 {
        worker.on_tick(SETTLED, &mut io);
    }
    if seq.is_empty() {
        seq = vec![0];
    }
    Ok(Some(seq))
}

fn nonzero_drops(w: &Worker<Packet>) -> Vec<(DropReason, u64)> {
    w.drops().iter().filter(|(_, n)| *n > 0).collect()
}

/// Resident set size of this process in bytes (`VmRSS`).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// One worker with `n` established connections of method `m`, then every direction and flow
/// distribution measured on it. False when the worker does not support `m`.
fn established(
    ctx: &Ctx,
    lane: &mut Lane,
    m: &MethodSpec,
    n: usize,
    opts: &Options,
    report: &mut Report,
) -> Result<bool> {
    let mut services = net::services(1, "rr", m.method, DESTS)?;
    let tables = net::tables(&mut services, DESTS)?;
    // The table's own accounting, from a table of the same capacity (the worker keeps its own
    // private); the worker's resident memory is measured around its construction and setup.
    let table_bytes = if m.name == "NAT" {
        dataplane::conn::ConnTable::new(n, 0)
            .map(|t| t.memory_bytes())
            .unwrap_or(0)
    } else {
        0
    };
    let rss0 = rss_bytes();
    let mut worker = net::worker(0, n, tables);
    let t = std::time::Instant::now();
    let Some(seq) = establish(&mut worker, &ctx.pool, m, n)? else {
        return Ok(false);
    };
    let setup_s = t.elapsed().as_secs_f64();
    let rss1 = rss_bytes();
    if m.name == "NAT" {
        report.memory.push(MemRow::new(
            n,
            n,
            table_bytes,
            rss1.saturating_sub(rss0),
            setup_s,
        ));
    }
    let clock = Clock::Real {
        base: SETTLED,
        t0: rdtsc(),
    };
    for &dir in m.directions {
        for dist in [Dist::Uniform, Dist::Zipf(opts.zipf_s)] {
            let idx = traffic::flow_indices(n as u64, dist, FLOW_SEQ, 2);
            let templates: Vec<Template> = match dir {
                Direction::In => vec![net::client_template(ACK)],
                Direction::Out => seq.iter().map(|&k| net::server_template(k, ACK)).collect(),
            };
            let mut g = Gen::new(templates, Pattern::Flows { idx, pos: 0 });
            let drops0 = worker.drops().total();
            let stage = Stage::Dataplane {
                worker: &mut worker,
                rx_port: if dir == Direction::In { 0 } else { 1 },
                clock,
            };
            let s = rig::run_stage(lane, &ctx.pool, &mut g, stage, ctx.warm, ctx.cycles);
            let drops = worker.drops().total() - drops0;
            let case = format!(
                "{} {} {} conns {}",
                m.name,
                dir.name(),
                report::si(n as u64),
                dist.name()
            );
            let mut row = ctx.row("established", case, &[s], drops);
            if drops > 0 {
                row.note = format!("{:?}", nonzero_drops(&worker));
            }
            report.rows.push(row);
        }
    }
    Ok(true)
}

/// New connections with scheduler `sched`: every packet triple is the SYN of a new flow, its
/// ACK and its RST; the worker clock advances per packet so that the CLOSE timeout (10 s) expires
/// connections `live` connections later, keeping the table at about `live` entries with the
/// timer wheel's expiry cost included.
fn new_conns(
    ctx: &Ctx,
    lane: &mut Lane,
    sched: &str,
    live: usize,
    report: &mut Report,
) -> Result<()> {
    let mut services = net::services(1, sched, dataplane::service::ForwardMethod::Masq, DESTS)?;
    let tables = net::tables(&mut services, DESTS)?;
    let mut worker = net::worker(0, live * 2, tables);
    let close = Timeouts::default().timeout(ConnState::Tcp(TcpState::Close));
    let ns_per_pkt = (close.as_nanos() as u64 / (3 * live as u64)).max(1);
    let mut g = Gen::new(
        vec![
            net::client_template(SYN),
            net::client_template(ACK),
            net::client_template(RST),
        ],
        Pattern::NewConns {
            first: 1 << 30,
            next: 0,
        },
    );
    let clock = Clock::PerPacket {
        base: T0,
        ns_per_pkt,
    };
    // Warm up to the steady state: about 1.7 timeouts' worth of connections.
    while g.packets < 5 * live as u64 {
        let stage = Stage::Dataplane {
            worker: &mut worker,
            rx_port: 0,
            clock,
        };
        rig::run_stage(lane, &ctx.pool, &mut g, stage, 0, ctx.warm);
    }
    let drops0 = worker.drops().total();
    let stage = Stage::Dataplane {
        worker: &mut worker,
        rx_port: 0,
        clock,
    };
    let s = rig::run_stage(lane, &ctx.pool, &mut g, stage, 0, ctx.cycles);
    let drops = worker.drops().total() - drops0;
    let mut row = ctx.row(
        "new conns",
        format!("NAT SYN+ACK+RST {sched}, ~{} live", report::si(live as u64)),
        &[s],
        drops,
    );
    row.conns_per_sec_per_core = Some(row.mpps_per_core * 1e6 / 3.0);
    if drops > 0 {
        row.note = format!("{:?}", nonzero_drops(&worker));
    }
    report.rows.push(row);
    Ok(())
}

/// Established NAT-in, uniform, `opts.scaling_conns` per worker: one worker, then two at once
/// (lcores 0 and 1), each on its own lane.
fn scaling(ctx: &Ctx, rig: &mut Rig, opts: &Options, report: &mut Report) -> Result<()> {
    let n = opts.scaling_conns;
    let mut services = net::services(2, "rr", dataplane::service::ForwardMethod::Masq, DESTS)?;
    let tables = net::tables(&mut services, DESTS)?;
    let idx = traffic::flow_indices(n as u64, Dist::Uniform, FLOW_SEQ, 3);
    let (warm, cycles) = (ctx.warm, ctx.cycles);
    // One worker.
    let mut lane0 = rig.take_lane(0);
    let ready = AtomicUsize::new(0);
    let job = ScalingJob {
        n,
        idx: idx.clone(),
        warm,
        cycles,
    };
    let s1 = job.run(&mut lane0, &ctx.pool, tables.clone(), 0, &ready, 1)?;
    report.rows.push(ctx.row(
        "scaling",
        format!(
            "NAT in {} conns/worker uniform, 1 worker",
            report::si(n as u64)
        ),
        &[s1],
        0,
    ));
    // Two workers: lane 1 on lcore 1, lane 0 here.
    let ready = Arc::new(AtomicUsize::new(0));
    let mut lane1 = rig.take_lane(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let h = {
        let (pool, tables, ready, idx) =
            (ctx.pool.clone(), tables.clone(), ready.clone(), idx.clone());
        dpdk_bindings::launch(1, move || {
            let job = ScalingJob {
                n,
                idx,
                warm,
                cycles,
            };
            let r = job.run(&mut lane1, &pool, tables, 1, &ready, 2);
            let ok = r.is_ok();
            let _ = tx.send((r.map_err(|e| format!("{e:#}")), lane1));
            if ok { 0 } else { 1 }
        })?
    };
    let s0 = job.run(&mut lane0, &ctx.pool, tables, 0, &ready, 2);
    let (s1, lane1) = rx.recv().context("worker lcore 1 vanished")?;
    h.wait()?;
    rig.put_lane(lane0);
    rig.put_lane(lane1);
    let s1 = s1.map_err(|e| anyhow::anyhow!("worker 1: {e}"))?;
    report.rows.push(ctx.row(
        "scaling",
        format!(
            "NAT in {} conns/worker uniform, 2 workers",
            report::si(n as u64)
        ),
        &[s0?, s1],
        0,
    ));
    Ok(())
}

/// One worker's part of the scaling run.
struct ScalingJob {
    n: usize,
    idx: Arc<[u32]>,
    warm: u64,
    cycles: u64,
}

impl ScalingJob {
    /// Build and fill worker `id`, wait until `parties` workers are ready, measure.
    fn run(
        &self,
        lane: &mut Lane,
        pool: &Mempool,
        tables: Arc<Tables>,
        id: usize,
        ready: &AtomicUsize,
        parties: usize,
    ) -> Result<Sample> {
        let mut worker = net::worker(id, self.n, tables);
        establish(&mut worker, pool, &net::nat(), self.n)?.context("NAT unsupported")?;
        let mut g = Gen::new(
            vec![net::client_template(ACK)],
            Pattern::Flows {
                idx: self.idx.clone(),
                pos: 0,
            },
        );
        ready.fetch_add(1, Ordering::SeqCst);
        while ready.load(Ordering::SeqCst) < parties {
            std::hint::spin_loop();
        }
        let stage = Stage::Dataplane {
            worker: &mut worker,
            rx_port: 0,
            clock: Clock::Real {
                base: T0,
                t0: rdtsc(),
            },
        };
        Ok(rig::run_stage(
            lane,
            pool,
            &mut g,
            stage,
            self.warm,
            self.cycles,
        ))
    }
}
