//! Bring-up, the worker lcores and orderly shutdown.
//!
//! Order: EAL -> mempool -> ports (one rx and one tx queue per worker) -> tables (addresses,
//! routes, services from `[ipvs] rules`) -> workers launched on their lcores -> ports started
//! -> control socket. Shutdown reverses it, and checks that every mbuf is back in the pool.

mod eal_args;
pub mod mbuf;
pub mod poll;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use dataplane::wire::MacAddr;
use dataplane::worker::{PortSetup, WorkerConfig, WorkerStats};
use dpdk_bindings::{Eal, Mempool, Port, PortConfig, port_id_by_name};

use crate::config::{Validated, device_name};
use crate::control::ControlPlane;
use crate::control::dropwatch::DropWatch;
use crate::control::metrics::{self, MempoolSample, MetricsServer, RuntimeSamples};
use crate::control::server::ControlServer;
use poll::{LoopStats, WorkerCtx, WorkerRequest};

/// Per-port facts the control plane lists.
#[derive(Debug, Clone)]
pub struct PortFacts {
    pub name: String,
    pub device: String,
    pub mac: MacAddr,
    pub mtu: u16,
    pub driver: String,
}

/// What the control plane can see of one worker.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    pub lcore: u32,
    pub requests: crossbeam_channel::Sender<WorkerRequest>,
    pub stats: Arc<WorkerStats>,
    pub loop_stats: Arc<LoopStats>,
}

/// Run rvsd until SIGINT/SIGTERM.
pub fn run(conf: Validated) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }

    let args = eal_args::eal_args(&conf);
    tracing::info!(args = %args.join(" "), "starting EAL");
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let eal =
        Eal::init(&arg_refs).context("EAL initialisation failed (see the EAL messages above)")?;
    let workers = conf.worker_lcores().to_vec();
    let enabled = eal.worker_lcores();
    for w in &workers {
        if !enabled.contains(w) {
            bail!(
                "{}: dpdk.cores: lcore {w} is not enabled in EAL",
                conf.file.display()
            );
        }
    }
    let n_workers = workers.len();

    let pool = Mempool::new(
        "rvs_pkt",
        conf.mbufs,
        256,
        dpdk_bindings::DEFAULT_DATA_ROOM,
        eal.socket_id(),
    )
    .context("creating the packet mempool (more memory: dpdk.args -m, fewer: dpdk.mbufs)")?;

    // Ports, each with one rx and one tx queue per worker.
    let mut ports = Vec::new();
    let mut facts = Vec::new();
    for (i, p) in conf.ports.iter().enumerate() {
        let key = || format!("{}: port[{i}].device {:?}", conf.file.display(), p.device);
        let id = port_id_by_name(device_name(&p.device))
            .with_context(|| format!("{}: DPDK has no such device", key()))?;
        let pc = PortConfig {
            rx_queues: n_workers as u16,
            tx_queues: n_workers as u16,
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            promiscuous: true,
            ..PortConfig::default()
        };
        let port = Port::configure(id, &pc, &pool)
            .with_context(|| format!("{}: cannot configure", key()))?;
        let info = port.info().with_context(key)?;
        let mac = MacAddr(port.mac_addr().with_context(key)?);
        let mtu = port.mtu().unwrap_or(1500);
        tracing::info!(port = %p.name, device = %p.device, driver = %info.driver_name, %mac, mtu, queues = n_workers, "port configured");
        facts.push(PortFacts {
            name: p.name.clone(),
            device: p.device.clone(),
            mac,
            mtu,
            driver: info.driver_name,
        });
        ports.push(port);
    }

    let port_setup: Vec<PortSetup> = facts
        .iter()
        .map(|f| PortSetup {
            mac: f.mac,
            mtu: f.mtu,
        })
        .collect();
    let control =
        Arc::new(ControlPlane::new(&conf, n_workers).context("building the initial tables")?);
    if let Some(rules) = &conf.rules {
        control
            .replay_rules(rules)
            .with_context(|| format!("{}: ipvs.rules", conf.file.display()))?;
    }
    let tables: Arc<ArcSwap<_>> = control.tables();

    // Workers.
    let epoch = std::time::Instant::now();
    let seed = random_seed();
    let worker_stop = Arc::new(AtomicBool::new(false));
    let mut launched = Vec::new();
    let mut handles = Vec::new();
    for (w, &lcore) in workers.iter().enumerate() {
        let q = w as u16;
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for port in &ports {
            rx.push(port.rx_queue(q)?);
            tx.push(port.tx_queue(q)?);
        }
        let (req_tx, req_rx) = crossbeam_channel::bounded(16);
        let stats = Arc::new(WorkerStats::default());
        let loop_stats = Arc::new(LoopStats::default());
        let ctx = WorkerCtx {
            config: WorkerConfig {
                id: w,
                ports: port_setup.clone(),
                conn_capacity: (conf.conn_capacity as usize).div_ceil(n_workers),
                neigh: Default::default(),
                workers: n_workers,
            },
            rx,
            tx,
            pool: pool.clone(),
            tables: tables.clone(),
            stop: worker_stop.clone(),
            requests: req_rx,
            stats: stats.clone(),
            loop_stats: loop_stats.clone(),
            idle_sleep: Duration::from_micros(u64::from(conf.idle_sleep_us)),
            epoch,
            seed: seed ^ (w as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        handles.push(WorkerHandle {
            lcore,
            requests: req_tx,
            stats,
            loop_stats,
        });
        launched.push(
            dpdk_bindings::launch(lcore, move || poll::run(ctx))
                .with_context(|| format!("launching worker on lcore {lcore}"))?,
        );
    }
    for (port, f) in ports.iter_mut().zip(&facts) {
        port.start()
            .with_context(|| format!("starting port {} ({})", f.name, f.device))?;
    }
    control.attach(handles, facts.clone());
    let samples = Arc::new(RuntimeSamples::default());
    sample_runtime(&ports, &facts, &pool, &samples);
    let metrics_server = start_metrics(&conf, &control, &samples);
    log_startup(&conf, &workers, &facts, &pool, metrics_server.as_ref());

    let server = ControlServer::start(&conf.socket, control.clone());
    let server = match server {
        Ok(s) => Some(s),
        Err(e) => {
            worker_stop.store(true, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
            tracing::error!("{e:#}");
            None
        }
    };
    tracing::info!(socket = %conf.socket.display(), "control socket ready");
    let mut drop_watch = DropWatch::default();
    let mut iteration = 0u64;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        control.housekeeping();
        iteration += 1;
        if iteration % 2 == 0 {
            sample_runtime(&ports, &facts, &pool, &samples);
            drop_watch.check(std::time::Instant::now(), &control.worker_handles());
        }
    }

    tracing::info!("stopping");
    let failed_server = server.is_none();
    drop(server);
    drop(metrics_server);
    worker_stop.store(true, Ordering::Relaxed);
    for h in launched {
        let lcore = h.lcore();
        match h.wait() {
            Ok(0) => {}
            Ok(rc) => tracing::warn!(lcore, rc, "worker exited with an error"),
            Err(e) => tracing::error!(lcore, "worker failed: {e}"),
        }
    }
    let handles = control.detach();
    log_summary(&handles, &facts);
    for (mut port, f) in ports.into_iter().zip(&facts) {
        if let Err(e) = port.stop() {
            tracing::warn!(port = %f.name, "stop: {e}");
        }
        drop(port);
    }
    let in_use = pool.in_use();
    if in_use == 0 {
        tracing::info!(size = pool.size(), "all mbufs returned to the pool");
    } else {
        tracing::warn!(in_use, size = pool.size(), "mbufs still in use at exit");
    }
    drop(control);
    drop(pool);
    drop(eal);
    if failed_server {
        bail!(
            "control socket {} could not be served",
            conf.socket.display()
        );
    }
    tracing::info!("rvsd stopped");
    Ok(())
}

/// Port counters and mempool occupancy for the metrics collector (ports and the pool stay
/// owned here, so the shutdown order is untouched).
fn sample_runtime(ports: &[Port], facts: &[PortFacts], pool: &Mempool, samples: &RuntimeSamples) {
    let stats = ports
        .iter()
        .zip(facts)
        .filter_map(|(p, f)| p.stats().ok().map(|s| (f.name.clone(), s)))
        .collect();
    samples.set_ports(stats);
    samples.set_mempool(MempoolSample {
        in_use: u64::from(pool.in_use()),
        available: u64::from(pool.available()),
        size: u64::from(pool.size()),
    });
}

/// Serve `/metrics` if configured. A failure to listen is logged and rvsd runs on without it.
fn start_metrics(
    conf: &Validated,
    control: &Arc<ControlPlane>,
    samples: &Arc<RuntimeSamples>,
) -> Option<MetricsServer> {
    let addr = conf.metrics?;
    let registry = metrics::registry(control.clone(), samples.clone());
    match MetricsServer::start(addr, registry) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("{e:#}");
            None
        }
    }
}

/// The start-up summary: one line with what runs where and how much memory it holds.
fn log_startup(
    conf: &Validated,
    lcores: &[u32],
    facts: &[PortFacts],
    pool: &Mempool,
    metrics: Option<&MetricsServer>,
) {
    let ports: Vec<String> = facts
        .iter()
        .map(|f| format!("{}={}({},{})", f.name, f.mac, f.driver, f.device))
        .collect();
    let data_room = u64::from(dpdk_bindings::DEFAULT_DATA_ROOM);
    tracing::info!(
        workers = lcores.len(),
        lcores = ?lcores,
        ports = %ports.join(" "),
        queues_per_port = lcores.len(),
        mbufs = pool.size(),
        mbuf_memory_mib = u64::from(pool.size()) * data_room / (1 << 20),
        conn_capacity = conf.conn_capacity,
        metrics = %metrics.map_or_else(|| "off".to_owned(), |m| format!("http://{}/metrics", m.local_addr())),
        "rvsd running"
    );
}

/// What each worker did, logged at exit (the same counters feed listings and metrics).
fn log_summary(handles: &[WorkerHandle], facts: &[PortFacts]) {
    for (w, h) in handles.iter().enumerate() {
        let s = &h.stats;
        let polls = h.loop_stats.polls.load(Ordering::Relaxed);
        let busy = h.loop_stats.busy_polls.load(Ordering::Relaxed);
        let drops: Vec<String> = s
            .drops()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{}={n}", r.label()))
            .collect();
        tracing::info!(
            worker = w,
            lcore = h.lcore,
            rx = s.rx_packets.load(Ordering::Relaxed),
            tx = s.tx_packets.load(Ordering::Relaxed),
            conns = s.conns.load(Ordering::Relaxed),
            busy_ratio = format!("{:.3}", busy as f64 / polls.max(1) as f64),
            tx_dropped = h.loop_stats.tx_dropped.load(Ordering::Relaxed),
            rx_chained = h.loop_stats.rx_chained.load(Ordering::Relaxed),
            drops = %drops.join(","),
            "worker summary"
        );
    }
    for f in facts {
        tracing::debug!(port = %f.name, device = %f.device, driver = %f.driver, mac = %f.mac, mtu = f.mtu, "port");
    }
}

/// A per-start random key for the connection hash (connection tuples are chosen by clients, so
/// the hash must not be predictable): from the kernel, with the clock as a fallback.
fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    match std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
    {
        Ok(()) => u64::from_ne_bytes(b),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64),
    }
}
