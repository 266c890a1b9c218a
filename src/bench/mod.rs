//! `rvs-bench`: the real dataplane (`dataplane::worker::Worker` over `Packet`, the mbuf newtype
//! rvsd runs) on real DPDK mbufs and vdevs, measured per core against a plain io-forward loop
//! in the same run (docs/architecture.md; issues 7 and 11).
//!
//! Every measured loop is: generator -> `tx_burst` into a `net_ring` loopback -> `rx_burst` ->
//! (worker | nothing) -> `tx_burst` to `net_null`. Per case:
//! - `cycles_per_packet` / `mpps_per_core`: the loop minus the generator's own cost (measured
//!   alone): what a worker core spends on a packet that arrives from a (virtual) NIC;
//! - `dataplane_cycles_per_packet`: the loop minus the io-forward loop: what processing adds;
//! - `ratio_to_iofwd`: the loop's packet rate over the io-forward loop's (generator in both);
//! - `ratio_to_memory`: `mpps_per_core` over the memory ceiling ([`limits`]: random cache-line
//!   reads per second with prefetch over a buffer the size of the 1M-connection table, two
//!   lines per packet), measured in the same run.
//!
//! Cases: established traffic per method, direction (FULLNAT's replies go to the LIP:lport the
//! director picked, learnt at setup), size and flow distribution; the same over IPv6 ([`v6`]:
//! NAT6, FULLNAT6 and NAT64, in the worker's IPv6 table sized for them); new connections per
//! scheduler with `new_conn_live` live, and with `new_conn_live_large` (10M in the full run),
//! and NAT6, FULLNAT6 and NAT64 new connections (rr) with `new_conn_live` live;
//! 1 vs 2 independent workers; 2 workers steered as rvsd steers, with 0% and 50% of each
//! worker's packets arriving for flows the other owns (handed over through SPSC rings).
//!
//! Layout: [`traffic`] template frames and flow choice, [`rig`] EAL/ports/lanes and the measured
//! loop, [`net`] addresses, services and the forwarding methods, [`limits`] the memory ceiling,
//! [`report`] the table and JSON, [`v6`] the IPv6 cases.

pub mod limits;
pub mod net;
pub mod report;
pub mod rig;
pub mod traffic;
pub mod v6;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use dataplane::conn::{ConnState, TcpState, Timeouts};
use dataplane::drop::DropReason;
use dataplane::steer::Steering;
use dataplane::time::Instant;
use dataplane::worker::{Io, Tables, Worker};
use dpdk_bindings::{Mempool, Ring, RingConsumer, RingMode, RingProducer, rdtsc, tsc_hz};

use net::{Direction, MethodSpec};
use report::{MemRow, Report, Row};
use rig::{Clock, Lane, Rig, Sample, Stage};
use traffic::{Dist, Endpoint, Gen, Pattern, Template};

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
    /// Live connections of the extra new-connection run (rr) with a large table.
    pub new_conn_live_large: usize,
    /// Connections per worker for the 1-vs-2-worker comparison.
    pub scaling_conns: usize,
    pub zipf_s: f64,
    pub hugepages: bool,
    /// Which groups of cases to run (the ceilings always run): any of [`GROUPS`].
    pub groups: Vec<String>,
}

/// The groups of cases `--groups` selects from.
pub const GROUPS: [&str; 4] = ["established", "new", "scaling", "redirect"];

impl Options {
    fn runs(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

impl Options {
    pub fn new(quick: bool) -> Options {
        if quick {
            Options {
                quick,
                sizes: vec![1_000, 1_000_000],
                seconds: 0.25,
                new_conn_live: 100_000,
                new_conn_live_large: 1_000_000,
                scaling_conns: 100_000,
                zipf_s: 0.99,
                hugepages: false,
                groups: GROUPS.iter().map(|g| g.to_string()).collect(),
            }
        } else {
            Options {
                quick,
                sizes: vec![1_000, 100_000, 1_000_000, 10_000_000],
                seconds: 2.0,
                new_conn_live: 1_000_000,
                new_conn_live_large: 10_000_000,
                scaling_conns: 1_000_000,
                zipf_s: 0.99,
                hugepages: false,
                groups: GROUPS.iter().map(|g| g.to_string()).collect(),
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
    /// The memory ceiling in Mpps per core (0 until measured).
    mem_mpps: f64,
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
        let redirected: u64 = s.iter().map(|s| s.redirected).sum();
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
            ratio_to_memory: (self.mem_mpps > 0.0).then(|| mpps_total / n / self.mem_mpps),
            conns_per_sec_per_core: None,
            drops: drops + s.iter().map(|s| s.tx_dropped + s.ring_dropped).sum::<u64>(),
            redirected: (redirected > 0).then_some(redirected),
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
        mem_mpps: 0.0,
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
    gen_row.ratio_to_memory = None;
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

    // The memory ceiling, on this core, before the connection tables take the memory.
    let lim = limits::measure(hz, ctx.warm, ctx.cycles);
    ctx.mem_mpps = lim.mpps_ceiling;
    report.rows.push(limits_row(&ctx, &lim));
    report.limits = Some(lim);
    report.print_progress();

    // Established traffic per method, direction, size and flow distribution.
    let mut unsupported: Vec<&str> = Vec::new();
    let sizes: &[usize] = if opts.runs("established") {
        &opts.sizes
    } else {
        &[]
    };
    for &n in sizes {
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
        for m in net::methods6() {
            v6::established6(&ctx, &mut lane, &m, n, opts, &mut report)?;
            report.print_progress();
        }
    }

    // New connections per scheduler, then with a large table.
    let scheds: &[&str] = if opts.runs("new") {
        &dataplane::sched::IMPLEMENTED
    } else {
        &[]
    };
    for sched in scheds {
        new_conns(&ctx, &mut lane, sched, opts.new_conn_live, &mut report)?;
        report.print_progress();
    }
    if opts.runs("new") && opts.new_conn_live_large > opts.new_conn_live {
        new_conns(&ctx, &mut lane, "rr", opts.new_conn_live_large, &mut report)?;
        report.print_progress();
    }
    // The same over IPv6: NAT6, FULLNAT6 and NAT64 (rr).
    if opts.runs("new") {
        for m in net::methods6() {
            v6::new_conns6(&ctx, &mut lane, &m, opts.new_conn_live, &mut report)?;
            report.print_progress();
        }
    }

    // 1 vs 2 independent workers, then 2 steered workers with and without wrong-core arrivals.
    rig.put_lane(lane);
    if !opts.runs("scaling") && !opts.runs("redirect") {
        return Ok(report);
    }
    scaling(&ctx, &mut rig, opts, &mut report)?;
    report.notes.push(
        "scaling: independent workers, each with its own flows, queues and connection table \
         (no steering)"
            .into(),
    );
    report.print_progress();
    for wrong in [0.0, 0.5] {
        redirect(&ctx, &mut rig, opts, wrong, &mut report)?;
        report.print_progress();
    }
    report.notes.push(format!(
        "redirect: 2 workers steered as rvsd steers them (own-first inside the staged burst, \
         Worker::process_burst_steered); each \
         owns its flows; in the 50% run each worker receives half of its packets for flows the \
         other owns and hands them over through an SPSC ring of {} mbufs, as rvsd does (the \
         receiver steers them again, then processes them); Mpps counts packets processed (own \
         arrivals plus those handed over); a full ring holds the sender back (it serves its inbox \
         and takes nothing new from its NIC until the ring takes the rest) where rvsd would free \
         the frames (ring_overflows), so a partner that falls behind lowers the rate instead of \
         showing as drops",
        crate::runtime::REDIRECT_RING
    ));
    if let Some(l) = &report.limits {
        report.notes.push(format!(
            "limits: THP is in '{}' mode here ({}); madvise(MADV_HUGEPAGE) on the buffer was {}, \
             {:.1} of {:.1} MB were backed by huge pages",
            l.thp_enabled,
            match l.thp_enabled.as_str() {
                "always" | "madvise" => "advice allowed",
                _ => "advice has no effect",
            },
            if l.thp_advised { "accepted" } else { "refused" },
            l.huge_bytes as f64 / 1e6,
            l.buffer_bytes as f64 / 1e6
        ));
    }
    Ok(report)
}

/// The memory ceiling as a row of the table, in packets (reads / lines per packet).
fn limits_row(ctx: &Ctx, l: &report::Limits) -> Row {
    let cyc = ctx.hz as f64 / (l.mpps_ceiling * 1e6).max(1.0);
    Row {
        group: "ceiling".into(),
        case: format!(
            "memory: random 64 B reads, {:.0} MB, prefetch {}",
            l.buffer_bytes as f64 / 1e6,
            l.prefetch_distance
        ),
        workers: 1,
        packets: (l.reads as f64 / l.lines_per_packet) as u64,
        loop_cycles_per_packet: cyc,
        cycles_per_packet: cyc,
        dataplane_cycles_per_packet: 0.0,
        mpps_per_core: l.mpps_ceiling,
        mpps_total: l.mpps_ceiling,
        ratio_to_iofwd: ctx.io_cyc / cyc,
        ratio_to_memory: None,
        conns_per_sec_per_core: None,
        drops: 0,
        redirected: None,
        note: format!(
            "{:.1}M reads/s / {} lines per pkt; THP {}, {:.0} MB huge",
            l.reads_per_sec / 1e6,
            l.lines_per_packet,
            l.thp_enabled,
            l.huge_bytes as f64 / 1e6
        ),
    }
}

/// Counts what the worker sends during setup and remembers the last frame's destination
/// address and its source address and port (FULLNAT: the LIP:lport the director picked).
#[derive(Default)]
struct SetupIo {
    last_dst: [u8; 4],
    last_src: [u8; 4],
    last_sport: u16,
    sent: u64,
}

impl Io<Packet> for SetupIo {
    fn transmit(&mut self, _port: dataplane::l3::addr::PortId, buf: Packet) {
        use dataplane::packet::PacketBuf;
        let d = buf.data();
        if let (Some(dst), Some(src)) = (d.get(30..34), d.get(26..30)) {
            self.last_dst.copy_from_slice(dst);
            self.last_src.copy_from_slice(src);
        }
        let l4 = 14 + usize::from(d.get(14).map_or(5, |v| v & 0x0f)) * 4;
        if let Some(p) = d.get(l4..l4 + 2) {
            self.last_sport = u16::from_be_bytes([p[0], p[1]]);
        }
        self.sent += 1;
    }
    fn alloc(&mut self) -> Option<Packet> {
        None
    }
}

/// What setup learnt about the connections it established.
struct Setup {
    /// The scheduler's dest sequence: flow `i` went to dest `seq[i % seq.len()]` (rr).
    seq: Vec<usize>,
    /// FULLNAT: per flow (setup order), the LIP:lport the director picked and the dest
    /// (template) the flow went to; empty for the other methods.
    peers: Vec<Endpoint>,
}

/// Establish `n` flows (SYN, SYN-ACK when replies pass the director, ACK): flows `0..n`, or
/// `flows[0..n]` when given. `None` when the worker refuses the method.
fn establish(
    worker: &mut Worker<Packet>,
    pool: &Mempool,
    m: &MethodSpec,
    n: usize,
    flows: Option<&[u32]>,
) -> Result<Option<Setup>> {
    let syn = net::client_template(SYN);
    let ack = net::client_template(ACK);
    let synack: Vec<Template> = (0..DESTS)
        .map(|i| net::server_template(i, SYN_ACK))
        .collect();
    let replies = m.directions.contains(&Direction::Out);
    let to_laddr = replies && m.replies_to_laddr();
    let flow = |i: usize| flows.map_or(i as u64, |f| u64::from(f[i]));
    let mut io = SetupIo::default();
    let mut seq: Vec<usize> = Vec::new();
    let mut peers: Vec<Endpoint> = Vec::with_capacity(if to_laddr { n } else { 0 });
    let pkt = |t: &Template, flow: u64| -> Result<Packet> {
        let mb = t.mbuf(pool, flow).context("mempool empty during setup")?;
        Ok(Packet(mb))
    };
    const CHUNK: usize = 4096;
    let mut dests = vec![0usize; CHUNK];
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        for i in start..end {
            let before = io.sent;
            worker.process(T0, 0, pkt(&syn, flow(i))?, &mut io);
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
                if to_laddr {
                    peers.push(Endpoint {
                        ip: u32::from_be_bytes(io.last_src),
                        port: io.last_sport,
                        template: k as u16,
                    });
                }
                if i < DESTS {
                    seq.push(k);
                } else if seq[i % DESTS] != k {
                    bail!("scheduler sequence not periodic: flow {i} went to dest {k}");
                }
            }
        }
        if replies {
            for i in start..end {
                let t = &synack[dests[i - start]];
                let p = if to_laddr {
                    let e = peers[i];
                    Packet(
                        t.mbuf_endpoint(pool, e.ip, e.port)
                            .context("mempool empty during setup")?,
                    )
                } else {
                    pkt(t, flow(i))?
                };
                worker.process(T0, 1, p, &mut io);
            }
        }
        for i in start..end {
            worker.process(T0, 0, pkt(&ack, flow(i))?, &mut io);
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
    Ok(Some(Setup { seq, peers }))
}

/// One established-connection case: `worker` fed the frames of `g` on the port `dir` arrives
/// at, for the run's time. The sample, the drops meanwhile and the case's name (`method dir
/// N conns dist`), for both families' cases.
#[allow(clippy::too_many_arguments)]
fn measure_established(
    ctx: &Ctx,
    lane: &mut Lane,
    worker: &mut Worker<Packet>,
    g: &mut Gen,
    clock: Clock,
    method: &str,
    dir: Direction,
    n: usize,
    dist: Dist,
) -> (Sample, u64, String) {
    let drops0 = worker.drops().total();
    let stage = Stage::Dataplane {
        worker,
        rx_port: if dir == Direction::In { 0 } else { 1 },
        clock,
    };
    let s = rig::run_stage(lane, &ctx.pool, g, stage, ctx.warm, ctx.cycles);
    let drops = worker.drops().total() - drops0;
    let case = format!(
        "{method} {} {} conns {}",
        dir.name(),
        report::si(n as u64),
        dist.name()
    );
    (s, drops, case)
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
        dataplane::conn::ConnTable::<dataplane::conn::ConnKey>::new(n, 0)
            .map(|t| t.memory_bytes())
            .unwrap_or(0)
    } else {
        0
    };
    let rss0 = rss_bytes();
    let mut worker = net::worker(0, 1, n, tables);
    let t = std::time::Instant::now();
    let Some(setup) = establish(&mut worker, &ctx.pool, m, n, None)? else {
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
            let mut g = match dir {
                Direction::In => Gen::new(
                    vec![net::client_template(ACK)],
                    Pattern::Flows { idx, pos: 0 },
                ),
                // FULLNAT: from the flow's dest to the LIP:lport picked for it, streamed from
                // a precomputed sequence (same per-packet generator work as `Flows`).
                Direction::Out if m.replies_to_laddr() => Gen::new(
                    (0..DESTS).map(|k| net::server_template(k, ACK)).collect(),
                    Pattern::Endpoints {
                        seq: traffic::endpoint_seq(&idx, &setup.peers),
                        pos: 0,
                    },
                ),
                Direction::Out => Gen::new(
                    setup
                        .seq
                        .iter()
                        .map(|&k| net::server_template(k, ACK))
                        .collect(),
                    Pattern::Flows { idx, pos: 0 },
                ),
            };
            let (s, drops, case) =
                measure_established(ctx, lane, &mut worker, &mut g, clock, m.name, dir, n, dist);
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
    let mut worker = net::worker(0, 1, live * 2, tables);
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
/// (lcores 0 and 1), each on its own lane, independent (no steering).
fn scaling(ctx: &Ctx, rig: &mut Rig, opts: &Options, report: &mut Report) -> Result<()> {
    let n = opts.scaling_conns;
    let mut services = net::services(2, "rr", dataplane::service::ForwardMethod::Masq, DESTS)?;
    let tables = net::tables(&mut services, DESTS)?;
    let idx = traffic::flow_indices(n as u64, Dist::Uniform, FLOW_SEQ, 3);
    let job = |id: usize| WorkerJob {
        id,
        n,
        flows: None,
        idx: idx.clone(),
        tables: tables.clone(),
        rings: None,
        warm: ctx.warm,
        cycles: ctx.cycles,
    };
    // One worker.
    let mut lane0 = rig.take_lane(0);
    let r = job(0).run(&mut lane0, &ctx.pool, &AtomicUsize::new(0), 1);
    rig.put_lane(lane0);
    let (s, d) = r?;
    report.rows.push(ctx.row(
        "scaling",
        format!(
            "NAT in {} conns/worker uniform, 1 worker",
            report::si(n as u64)
        ),
        &[s],
        d,
    ));
    // Two workers.
    let [(s0, d0), (s1, d1)] = two_workers(ctx, rig, [job(0), job(1)])?;
    report.rows.push(ctx.row(
        "scaling",
        format!(
            "NAT in {} conns/worker uniform, 2 workers",
            report::si(n as u64)
        ),
        &[s0, s1],
        d0 + d1,
    ));
    Ok(())
}

/// Two workers steered as rvsd steers them (`workers: 2`, `Worker::steer` on every frame), each
/// with `opts.scaling_conns` established NAT flows of its own; a fraction `wrong` of each
/// worker's received packets belong to flows the other owns and go to it through an SPSC ring
/// (rvsd's per-pair redirect ring), both directions at once.
fn redirect(
    ctx: &Ctx,
    rig: &mut Rig,
    opts: &Options,
    wrong: f64,
    report: &mut Report,
) -> Result<()> {
    let n = opts.scaling_conns;
    let mut services = net::services(2, "rr", dataplane::service::ForwardMethod::Masq, DESTS)?;
    let tables = net::tables(&mut services, DESTS)?;
    let owned = owned_flows(2, n);
    // rvsd's per-pair redirect rings: 0 -> 1 and 1 -> 0.
    let ring = |i: usize, j: usize| -> Result<(RingProducer, RingConsumer)> {
        Ok(Ring::new(
            &format!("bench_rd_{i}_{j}"),
            crate::runtime::REDIRECT_RING,
            dpdk_bindings::SOCKET_ID_ANY,
            RingMode::SPSC,
        )
        .context("creating a redirect ring")?
        .split())
    };
    let ((to1, from0), (to0, from1)) = (ring(0, 1)?, ring(1, 0)?);
    let job = |w: usize, rings: (RingProducer, RingConsumer)| WorkerJob {
        id: w,
        n,
        flows: Some(owned[w].clone()),
        idx: mixed_indices(&owned[w], &owned[1 - w], wrong, FLOW_SEQ, 4 + w as u64),
        tables: tables.clone(),
        rings: Some(rings),
        warm: ctx.warm,
        cycles: ctx.cycles,
    };
    let (j0, j1) = (job(0, (to1, from1)), job(1, (to0, from0)));
    let [(s0, d0), (s1, d1)] = two_workers(ctx, rig, [j0, j1])?;
    let mut row = ctx.row(
        "redirect",
        format!(
            "NAT in {} conns/worker uniform, {:.0}% wrong core",
            report::si(n as u64),
            wrong * 100.0
        ),
        &[s0, s1],
        d0 + d1,
    );
    row.redirected = Some(row.redirected.unwrap_or(0));
    row.note = format!(
        "steered; {:.1}% of processed came by ring",
        100.0 * row.redirected.unwrap_or(0) as f64 / row.packets.max(1) as f64
    );
    report.rows.push(row);
    Ok(())
}

/// The first `n` flows (in flow order) owned by each of `workers` workers under rvsd's default
/// steering (the client endpoint's Toeplitz hash through the RETA).
fn owned_flows(workers: u16, n: usize) -> Vec<Arc<[u32]>> {
    let st = Steering::new(workers);
    let mut out: Vec<Vec<u32>> = (0..workers).map(|_| Vec::with_capacity(n)).collect();
    let mut f = 0u64;
    while out.iter().any(|v| v.len() < n) {
        let (ip, port) = traffic::client_of(f);
        let w = usize::from(st.client_owner(Ipv4Addr::from(ip), port));
        if out[w].len() < n {
            out[w].push(f as u32);
        }
        f += 1;
    }
    out.into_iter().map(Arc::from).collect()
}

/// `len` flow ids: uniform over `own`, except a fraction `wrong` (chosen at random per packet)
/// uniform over `other`.
fn mixed_indices(own: &[u32], other: &[u32], wrong: f64, len: usize, seed: u64) -> Arc<[u32]> {
    let mut rng = traffic::Rng::new(seed);
    (0..len)
        .map(|_| {
            let from = if rng.unit() < wrong { other } else { own };
            from[rng.below(from.len() as u64) as usize]
        })
        .collect()
}

/// Run `jobs[1]` on lcore 1 (lane 1) and `jobs[0]` here (lane 0), measured at the same time.
/// Returns each job's sample and the drops its worker counted while measured.
fn two_workers(ctx: &Ctx, rig: &mut Rig, jobs: [WorkerJob; 2]) -> Result<[(Sample, u64); 2]> {
    let [job0, job1] = jobs;
    let ready = Arc::new(AtomicUsize::new(0));
    let mut lane0 = rig.take_lane(0);
    let mut lane1 = rig.take_lane(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let h = {
        let (pool, ready) = (ctx.pool.clone(), ready.clone());
        dpdk_bindings::launch(1, move || {
            let r = job1.run(&mut lane1, &pool, &ready, 2);
            let ok = r.is_ok();
            if !ok {
                ready.fetch_add(1, Ordering::SeqCst);
            }
            let _ = tx.send((r.map_err(|e| format!("{e:#}")), lane1));
            if ok { 0 } else { 1 }
        })?
    };
    let r0 = job0.run(&mut lane0, &ctx.pool, &ready, 2);
    if r0.is_err() {
        // Let the other side through the barrier if this side failed before reaching it.
        ready.fetch_add(1, Ordering::SeqCst);
    }
    let (r1, lane1) = rx.recv().context("worker lcore 1 vanished")?;
    h.wait()?;
    rig.put_lane(lane0);
    rig.put_lane(lane1);
    let r1 = r1.map_err(|e| anyhow::anyhow!("worker 1: {e}"))?;
    Ok([r0?, r1])
}

/// One worker's part of a scaling or redirect run.
struct WorkerJob {
    id: usize,
    /// Connections to establish.
    n: usize,
    /// The flows to establish (`None`: flows `0..n`).
    flows: Option<Arc<[u32]>>,
    /// The received flow sequence.
    idx: Arc<[u32]>,
    tables: Arc<Tables>,
    /// Steered (2 workers): the ring to the other worker and the ring from it. `None`:
    /// an independent worker that owns everything it receives.
    rings: Option<(RingProducer, RingConsumer)>,
    warm: u64,
    cycles: u64,
}

impl WorkerJob {
    /// Build and fill the worker, wait until `parties` workers are ready, measure. Returns the
    /// sample and the worker's drops during the measurement.
    fn run(
        self,
        lane: &mut Lane,
        pool: &Mempool,
        ready: &AtomicUsize,
        parties: usize,
    ) -> Result<(Sample, u64)> {
        let workers = if self.rings.is_some() { 2 } else { 1 };
        let mut worker = net::worker(self.id, workers, self.n, self.tables);
        establish(
            &mut worker,
            pool,
            &net::nat(),
            self.n,
            self.flows.as_deref(),
        )?
        .context("NAT unsupported")?;
        let mut g = Gen::new(
            vec![net::client_template(ACK)],
            Pattern::Flows {
                idx: self.idx,
                pos: 0,
            },
        );
        ready.fetch_add(1, Ordering::SeqCst);
        while ready.load(Ordering::SeqCst) < parties {
            std::hint::spin_loop();
        }
        let clock = Clock::Real {
            base: T0,
            t0: rdtsc(),
        };
        let drops0 = worker.drops().total();
        let s = match self.rings {
            None => {
                let stage = Stage::Dataplane {
                    worker: &mut worker,
                    rx_port: 0,
                    clock,
                };
                rig::run_stage(lane, pool, &mut g, stage, self.warm, self.cycles)
            }
            Some((mut to, mut from)) => {
                let stage = Stage::Redirect {
                    worker: &mut worker,
                    rx_port: 0,
                    clock,
                    to: &mut to,
                    from: &mut from,
                };
                rig::run_stage(lane, pool, &mut g, stage, self.warm, self.cycles)
            }
        };
        Ok((s, worker.drops().total() - drops0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_flows_partition_by_steering() {
        let owned = owned_flows(2, 1000);
        let st = Steering::new(2);
        for (w, flows) in owned.iter().enumerate() {
            assert_eq!(flows.len(), 1000);
            for &f in flows.iter() {
                let (ip, port) = traffic::client_of(u64::from(f));
                assert_eq!(usize::from(st.client_owner(Ipv4Addr::from(ip), port)), w);
            }
        }
        assert!(owned[0].iter().all(|f| !owned[1].contains(f)));
    }

    #[test]
    fn mixed_indices_send_the_asked_share_to_the_other_worker() {
        let owned = owned_flows(2, 1000);
        for wrong in [0.0, 0.5] {
            let idx = mixed_indices(&owned[0], &owned[1], wrong, 100_000, 9);
            let other = idx.iter().filter(|f| owned[1].contains(f)).count();
            let share = other as f64 / idx.len() as f64;
            assert!((share - wrong).abs() < 0.01, "{wrong}: {share}");
        }
    }
}
