//! Bring-up, the worker lcores and orderly shutdown.
//!
//! Order: EAL -> mempool -> ports (one rx and one tx queue per worker where the device has
//! them, RSS where it can) -> redirect rings -> tables (addresses, routes, services from
//! `[ipvs] rules`) -> workers launched on their lcores -> ports started -> control socket.
//! Shutdown reverses it, and checks that every mbuf is back in the pool.
//!
//! Workers are the configured lcores but the first (the control plane's). Queues per port: `q =
//! min(workers, device maximum)` rx and tx queues; worker `w < q` polls rx queue `w` and sends
//! on tx queue `w`; with fewer rx queues than workers the others get that port's packets only
//! through flow steering, and with fewer tx queues a worker `w >= q` hands its packets to the
//! owner of queue `w % q` through an MPSC ring (`poll` has the details). Every ordered pair of
//! workers has an SPSC redirect ring of [`REDIRECT_RING`] mbufs.

mod eal_args;
pub mod hup;
pub mod idle;
pub mod kernel;
pub mod mbuf;
pub mod poll;
mod restart;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use dataplane::wire::MacAddr;
use dataplane::worker::{PortSetup, WorkerConfig, WorkerStats};
use dpdk_bindings::port::rss;
use dpdk_bindings::{Eal, Mempool, Port, PortConfig, Ring, RingMode, RssConfig, port_id_by_name};

use crate::config::{Faces, Validated, device_name};
use crate::control::ControlPlane;
use crate::control::dropwatch::DropWatch;
use crate::control::metrics::{self, MempoolSample, MetricsServer, RuntimeSamples};
use crate::control::server::ControlServer;
use poll::{LoopStats, Redirect, TxPath, WorkerCtx, WorkerRequest};

/// Capacity (mbufs) of each worker-to-worker redirect ring and each tx handoff ring.
pub const REDIRECT_RING: u32 = 1024;

/// Per-port facts the control plane lists.
#[derive(Debug, Clone)]
pub struct PortFacts {
    pub name: String,
    pub device: String,
    pub mac: MacAddr,
    pub mtu: u16,
    pub driver: String,
    /// rx and tx queues configured.
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// What RSS was configured with, for logs (`off (...)` when it was not).
    pub rss: String,
    /// The port's kernel twin (exception path), if it has one.
    pub kernel: Option<kernel::TwinFacts>,
}

/// What the control plane can see of one worker.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    pub lcore: u32,
    pub requests: crossbeam_channel::Sender<WorkerRequest>,
    pub stats: Arc<WorkerStats>,
    pub loop_stats: Arc<LoopStats>,
}

/// How rvsd runs, beyond its configuration file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--state-file`: loaded at start (if present), written by a stop with state.
    pub state_file: Option<PathBuf>,
}

/// Run rvsd until SIGINT/SIGTERM (stop), or SIGUSR2 (stop with state). SIGHUP reloads the
/// configuration file.
pub fn run(conf: Validated, opts: RunOptions) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
    let stop = Arc::new(AtomicBool::new(false));
    let save = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGUSR2] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    signal_hook::flag::register(SIGUSR2, save.clone()).context("installing signal handlers")?;
    signal_hook::flag::register(SIGHUP, hup.clone()).context("installing signal handlers")?;

    let args = eal_args::eal_args(&conf);
    tracing::info!(args = %args.join(" "), "starting EAL");
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let eal = Eal::init(&arg_refs).with_context(|| {
        format!(
            "{}: dpdk.args, dpdk.cores or a port[].device: EAL initialisation failed with \
             `{}`",
            conf.file.display(),
            args.join(" ")
        )
    })?;
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

    // Ports: one rx and one tx queue per worker where the device has them.
    let mut ports = Vec::new();
    let mut facts = Vec::new();
    // Per port: how to read the NIC's RSS hash as a client-endpoint hash (where it is one).
    let mut nic_hash: Vec<Option<NicHashSide>> = Vec::new();
    for (i, p) in conf.ports.iter().enumerate() {
        let key = || format!("{}: port[{i}].device {:?}", conf.file.display(), p.device);
        let id = port_id_by_name(device_name(&p.device))
            .with_context(|| format!("{}: DPDK has no such device", key()))?;
        let info = dpdk_bindings::port_info(id).with_context(key)?;
        let want = u16::try_from(n_workers).unwrap_or(u16::MAX);
        let rx_queues = want.min(info.max_rx_queues).max(1);
        let tx_queues = want.min(info.max_tx_queues).max(1);
        let (rss_conf, rss_note, side) = rss_for(&info, rx_queues, p.faces);
        let pc = PortConfig {
            rx_queues,
            tx_queues,
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            promiscuous: true,
            rss: rss_conf,
            ..PortConfig::default()
        };
        let port = Port::configure(id, &pc, &pool)
            .with_context(|| format!("{}: cannot configure", key()))?;
        // The hash is only the client endpoint's when the device took the one-sided fields.
        nic_hash.push(side.filter(|_| port.rss_hash_fields().is_some()));
        let rss = match port.rss_hash_fields() {
            Some(f) => format!("{rss_note} fields={f:#x}"),
            None if rx_queues > 1 => {
                "off (the device reports no RSS; flows are steered in software)".to_owned()
            }
            None => "off (one rx queue)".to_owned(),
        };
        let mac = MacAddr(port.mac_addr().with_context(key)?);
        let mtu = port.mtu().unwrap_or(1500);
        tracing::info!(port = %p.name, device = %p.device, driver = %info.driver_name, %mac, mtu,
            rx_queues, tx_queues, max_rx_queues = info.max_rx_queues,
            max_tx_queues = info.max_tx_queues, rss = %rss, "port configured");
        if usize::from(rx_queues) < n_workers {
            tracing::info!(port = %p.name, "{rx_queues} rx queue(s) for {n_workers} workers: \
                workers 0..{rx_queues} poll them, the others get this port's flows through \
                the redirect rings");
        }
        facts.push(PortFacts {
            name: p.name.clone(),
            device: p.device.clone(),
            mac,
            mtu,
            driver: info.driver_name,
            rx_queues,
            tx_queues,
            rss,
            kernel: None,
        });
        ports.push(port);
    }

    // Kernel twins (exception path): made, started and given their addresses now, so a
    // failure stops rvsd before any worker runs.
    let mut twins = Vec::new();
    for (i, p) in conf.ports.iter().enumerate() {
        let Some(k) = &p.kernel else { continue };
        let mac = facts[i].mac;
        let mut t = kernel::create(i, k, mac, &pool)?;
        t.start(mac)?;
        tracing::info!(port = %p.name, twin = %k.ifname, driver = k.driver.name(),
            device = %t.facts.device, addrs = %kernel::addr_list(&k.addrs), rate = k.rate,
            burst = k.burst, "kernel twin up");
        facts[i].kernel = Some(t.facts.clone());
        twins.push(t);
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
    // The workers' clock (`dataplane::time::Instant` counts from here).
    let epoch = std::time::Instant::now();
    let restored = restart::load_state(&opts, &control, n_workers, epoch);
    let tables: Arc<ArcSwap<_>> = control.tables();
    let mut restore_parts = restored.conns.into_iter();
    let (export_tx, export_rx) = crossbeam_channel::unbounded();

    // Workers.
    let seed = random_seed();
    let worker_stop = Arc::new(AtomicBool::new(false));
    let idle = Arc::new(idle::IdleShared::new(conf.idle));
    let mut launched = Vec::new();
    let mut handles = Vec::new();
    let socket = eal.socket_id();
    // Redirect rings, one per ordered pair of workers: `to[i][j]` is i's end towards j.
    let mut to: Vec<Vec<Option<dpdk_bindings::RingProducer>>> = (0..n_workers)
        .map(|_| (0..n_workers).map(|_| None).collect())
        .collect();
    let mut from: Vec<Vec<dpdk_bindings::RingConsumer>> =
        (0..n_workers).map(|_| Vec::new()).collect();
    for (i, to_i) in to.iter_mut().enumerate() {
        for j in (0..n_workers).filter(|&j| j != i) {
            let ring = Ring::new(
                &format!("rvs_rd_{i}_{j}"),
                REDIRECT_RING,
                socket,
                RingMode::SPSC,
            )
            .context("creating a redirect ring")?;
            let (prod, cons) = ring.split();
            to_i[j] = Some(prod);
            from[j].push(cons);
        }
    }
    // Tx handoff rings for ports with fewer tx queues than workers.
    let mut handoff_to: Vec<Vec<Option<dpdk_bindings::RingProducer>>> = (0..n_workers)
        .map(|_| (0..ports.len()).map(|_| None).collect())
        .collect();
    let mut handoff_from: Vec<Vec<(usize, dpdk_bindings::RingConsumer)>> =
        (0..n_workers).map(|_| Vec::new()).collect();
    for (p, port) in ports.iter().enumerate() {
        let q = usize::from(port.tx_queues());
        if q >= n_workers {
            continue;
        }
        for (owner, from_owner) in handoff_from.iter_mut().enumerate().take(q) {
            let ring = Ring::new(
                &format!("rvs_tx_{p}_{owner}"),
                REDIRECT_RING,
                socket,
                RingMode::MPSC,
            )
            .context("creating a tx handoff ring")?;
            let (prod, cons) = ring.split();
            for w in (q..n_workers).filter(|w| w % q == owner) {
                handoff_to[w][p] = prod.try_clone();
            }
            from_owner.push((p, cons));
        }
    }
    // The exception path: worker -> kernel thread rings, kernel -> port rings (drained by
    // worker 0, which has tx queue 0 of every port).
    let wiring = kernel::wire(twins, ports.len(), n_workers, socket)?;
    if let Some(first) = handoff_from.first_mut() {
        first.extend(wiring.egress);
    }
    let mut kernel_tx = wiring.worker_tx.into_iter();
    let kernel_thread = wiring.thread;
    let twin_rest = wiring.rest;
    let ethdev: Vec<u16> = ports.iter().map(Port::id).collect();
    let mut from = from.into_iter();
    let mut handoff_from = handoff_from.into_iter();
    for (w, &lcore) in workers.iter().enumerate() {
        let q = w as u16;
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for (p, port) in ports.iter().enumerate() {
            if q < port.rx_queues() {
                rx.push((p as dataplane::l3::addr::PortId, port.rx_queue(q)?));
            }
            if q < port.tx_queues() {
                tx.push(TxPath::Queue(port.tx_queue(q)?));
            } else {
                let ring = handoff_to[w][p]
                    .take()
                    .context("internal: no tx handoff ring")?;
                tx.push(TxPath::Handoff(ring));
            }
        }
        let redirect = Redirect {
            to: std::mem::take(&mut to[w]),
            from: from.next().unwrap_or_default(),
        };
        let tx_handoff = handoff_from.next().unwrap_or_default();
        let (req_tx, req_rx) = crossbeam_channel::bounded(16);
        let stats = Arc::new(WorkerStats::default());
        let loop_stats = Arc::new(LoopStats::default());
        let ctx = WorkerCtx {
            config: WorkerConfig {
                id: w,
                ports: port_setup.clone(),
                conn_capacity: (conf.conn_capacity as usize).div_ceil(n_workers),
                conn_capacity6: (conf.conn_capacity6 as usize).div_ceil(n_workers),
                neigh: conf.neigh,
                icmp: conf.icmp,
                workers: n_workers,
            },
            rx,
            tx,
            tx_handoff,
            redirect,
            ethdev: ethdev.clone(),
            nic_hash: nic_hash.clone(),
            pool: pool.clone(),
            tables: tables.clone(),
            stop: worker_stop.clone(),
            requests: req_rx,
            stats: stats.clone(),
            loop_stats: loop_stats.clone(),
            idle: idle.clone(),
            epoch,
            seed: seed ^ (w as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            kernel: kernel_tx
                .next()
                .unwrap_or_else(|| kernel::KernelTx::none(ports.len())),
            restore: poll::Restore {
                conns: restore_parts.next().unwrap_or_default(),
                elapsed: restored.elapsed,
            },
            save: save.clone(),
            export: export_tx.clone(),
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
    drop(export_tx);
    for (port, f) in ports.iter_mut().zip(&facts) {
        port.start()
            .with_context(|| format!("starting port {} ({})", f.name, f.device))?;
    }
    if let Some(path) = &restored.consumed
        && let Err(e) = std::fs::remove_file(path)
    {
        tracing::warn!(file = %path.display(), "cannot remove the loaded state file: {e}");
    }
    if let Some(saved_ms) = restored.saved_unix_ms {
        // The forwarding gap of a restart: from the old process's last poll to these ports
        // being up (TCP retransmission covers it).
        tracing::info!(
            gap_ms = crate::state::unix_ms().saturating_sub(saved_ms),
            "ports up after a restart with state"
        );
    }
    let kernel_handle = if kernel_thread.is_empty() {
        None
    } else {
        let stop = worker_stop.clone();
        Some(
            std::thread::Builder::new()
                .name("rvs-kernel".into())
                .spawn(move || kernel_thread.run(stop))
                .context("starting the kernel-twin thread")?,
        )
    };
    control.attach(handles, facts.clone());
    let samples = control.samples();
    sample_runtime(&ports, &facts, &pool, &samples);
    let metrics_server = conf
        .metrics
        .and_then(|addr| serve_metrics(addr, &control, &samples));
    log_startup(&conf, &workers, &facts, &pool, metrics_server.as_ref());
    let mut running = hup::Running {
        conf: conf.clone(),
        rules: crate::reload::read_rules(conf.rules.as_deref()).unwrap_or_default(),
        idle: idle.clone(),
        metrics: metrics_server,
    };

    let server = ControlServer::start_with(
        &conf.socket,
        control.clone(),
        conf.control_limits,
        control.socket_stats(),
    );
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
    let mut announcers: Vec<kernel::Announcer> = conf
        .ports
        .iter()
        .zip(&facts)
        .filter_map(|(p, f)| {
            let k = p.kernel.as_ref().filter(|k| k.announce)?;
            f.kernel
                .as_ref()
                .map(|t| kernel::Announcer::new(t, k.withdraw_wait_ms))
        })
        .collect();
    let (ops_tx, ops_rx) = crossbeam_channel::bounded(4);
    control.set_daemon_ops(Some(ops_tx));
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if hup.swap(false, Ordering::Relaxed) {
            tracing::info!("SIGHUP");
            let _ = running.reload(&control, &samples);
        }
        while let Ok(op) = ops_rx.try_recv() {
            restart::daemon_op(op, &mut running, &control, &samples, &opts, &stop, &save);
        }
        control.housekeeping();
        if !announcers.is_empty() {
            let wanted = kernel::Announcer::serviceable(&control.tables().load().services);
            for a in announcers.iter_mut() {
                a.update(&wanted);
            }
        }
        iteration += 1;
        if iteration % 2 == 0 {
            sample_runtime(&ports, &facts, &pool, &samples);
            drop_watch.check(std::time::Instant::now(), &control.worker_handles());
        }
    }

    control.set_daemon_ops(None);
    tracing::info!("stopping");
    // Withdraw the VIPs first, and keep forwarding while the routers move the flows away.
    let wait = announcers
        .iter()
        .filter(|a| a.announces())
        .map(|a| a.withdraw_wait)
        .max();
    for a in announcers.iter_mut() {
        a.update(&Default::default());
    }
    if let Some(wait) = wait.filter(|w| !w.is_zero()) {
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "VIPs withdrawn: forwarding until the routers have moved the flows"
        );
        std::thread::sleep(wait);
    }
    let failed_server = server.is_none();
    drop(server);
    drop(running.metrics.take());
    let save = save.load(Ordering::Relaxed);
    if save && opts.state_file.is_none() {
        tracing::warn!("SIGUSR2: stopping without state (rvsd was started without --state-file)");
    }
    worker_stop.store(true, Ordering::Relaxed);
    for h in launched {
        let lcore = h.lcore();
        match h.wait() {
            Ok(0) => {}
            Ok(rc) => tracing::warn!(lcore, rc, "worker exited with an error"),
            Err(e) => tracing::error!(lcore, "worker failed: {e}"),
        }
    }
    if let Some(h) = kernel_handle
        && h.join().is_err()
    {
        tracing::error!("the kernel-twin thread panicked");
    }
    let handles = control.detach();
    log_summary(&handles, &facts);
    if let (true, Some(path)) = (save, &opts.state_file) {
        restart::save_state(path, &control, export_rx, n_workers, epoch);
    }
    kernel::remove(twin_rest);
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

/// How a port's RSS hash reads as a client-endpoint hash ([`dataplane::steer::NicHash`]).
pub type NicHashSide = fn(u32) -> dataplane::steer::NicHash;

/// The RSS request for a port with `rx_queues` queues: rvs's Toeplitz key
/// (`steer::DEFAULT_KEY`) and IPv4 TCP/UDP fields, restricted to the source (client-facing
/// port) or destination (server-facing) endpoint where the device can, so that its hash is the
/// client endpoint's as `steer` computes it. Returns the request, a note for the log, and, when
/// both the key and the one-sided fields are rvs's, how to read the hash the NIC stores.
fn rss_for(
    info: &dpdk_bindings::PortInfo,
    rx_queues: u16,
    faces: Option<Faces>,
) -> (Option<RssConfig>, String, Option<NicHashSide>) {
    if rx_queues < 2 || info.rss_offloads == 0 {
        return (None, String::new(), None);
    }
    let mut hash_side: Option<NicHashSide> = None;
    let mut fields = rss::IPV4 | rss::NONFRAG_IPV4_TCP | rss::NONFRAG_IPV4_UDP;
    let side = match faces {
        Some(Faces::Clients) => rss::L3_SRC_ONLY | rss::L4_SRC_ONLY,
        Some(Faces::Servers) => rss::L3_DST_ONLY | rss::L4_DST_ONLY,
        None => 0,
    };
    let mut note = "4-tuple".to_owned();
    if side != 0 && info.rss_offloads & side == side {
        fields |= side;
        hash_side = Some(if faces == Some(Faces::Clients) {
            dataplane::steer::NicHash::Source
        } else {
            dataplane::steer::NicHash::Destination
        });
        note = format!(
            "{} only",
            if faces == Some(Faces::Clients) {
                "source"
            } else {
                "destination"
            }
        );
    } else if side != 0 {
        note = "4-tuple (the device cannot hash one side only; software steering corrects)".into();
    }
    let key = if usize::from(info.hash_key_size) == dataplane::steer::DEFAULT_KEY.len() {
        note.push_str(", rvs key");
        dataplane::steer::DEFAULT_KEY.to_vec()
    } else {
        note.push_str(", driver's key");
        hash_side = None;
        Vec::new()
    };
    (
        Some(RssConfig {
            key,
            hash_fields: fields,
        }),
        format!("on ({note})"),
        hash_side,
    )
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
    let links = ports
        .iter()
        .zip(facts)
        .filter_map(|(p, f)| p.link().ok().map(|l| (f.name.clone(), l)))
        .collect();
    samples.set_links(links);
    samples.set_mempool(MempoolSample {
        in_use: u64::from(pool.in_use()),
        available: u64::from(pool.available()),
        size: u64::from(pool.size()),
    });
}

/// Serve `/metrics` on `addr`. A failure to listen is logged and rvsd runs on without it.
fn serve_metrics(
    addr: std::net::SocketAddr,
    control: &Arc<ControlPlane>,
    samples: &Arc<RuntimeSamples>,
) -> Option<MetricsServer> {
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
        .map(|f| {
            format!(
                "{}={}({},{},rxq={},txq={})",
                f.name, f.mac, f.driver, f.device, f.rx_queues, f.tx_queues
            )
        })
        .collect();
    let data_room = u64::from(dpdk_bindings::DEFAULT_DATA_ROOM);
    tracing::info!(
        workers = lcores.len(),
        lcores = ?lcores,
        ports = %ports.join(" "),
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
            redirects_sent = h.loop_stats.redirects_sent.load(Ordering::Relaxed),
            redirects_received = h.loop_stats.redirects_received.load(Ordering::Relaxed),
            ring_overflows = h.loop_stats.ring_overflows.load(Ordering::Relaxed),
            arp_copies = h.loop_stats.arp_copies.load(Ordering::Relaxed),
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
