//! The running daemon: one thread per checker (each sleeps until its next attempt, runs it and
//! reports the result), and the main thread, which owns all state: it turns results into real
//! server transitions (logged with the reason, counted in the metrics, `notify_up`/`notify_down`
//! run), computes every virtual server's dests and programs rvsd with the differences. SIGHUP
//! loads the file again and keeps what did not change; SIGTERM/SIGINT stop the checks and leave
//! rvsd's services as they are (so a restart loses no connection).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctl::proto::ServiceKey;

use crate::check::{self, Outcome};
use crate::load::load_file;
use crate::metrics::{Metrics, service_label};
use crate::model::{Checker, Config, Script, VirtualServer};
use crate::program::{Control, Programmer, Wanted, service_specs};
use crate::state::{CheckerState, RealState, desired_dests};

/// A real server of a virtual server: (virtual server id, address, port).
pub type RealKey = (String, IpAddr, u16);
/// A checker: its real server and its place among the real server's checkers.
pub type CheckId = (RealKey, usize);

/// The id of a virtual server across reloads: `tcp/198.18.0.100:80`, `fwmark/5`, `group/G`.
pub fn vs_id(vs: &VirtualServer) -> String {
    if let Some(group) = vs.name.strip_prefix("group ") {
        let proto = format!("{:?}", vs.protocol).to_lowercase();
        return format!("{proto}/group/{group}");
    }
    match vs.keys.first() {
        Some(k) => service_label(k),
        None => vs.name.clone(),
    }
}

/// One result from a checker thread.
#[derive(Debug)]
struct Event {
    id: CheckId,
    generation: u64,
    outcome: Outcome,
    up: bool,
}

struct CheckRun {
    spec: Checker,
    up: bool,
    dynamic_weight: Option<u32>,
    reason: String,
    generation: u64,
    stop: Arc<AtomicBool>,
}

impl Drop for CheckRun {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Two checkers do the same job (where they were written does not matter).
fn same_check(a: &Checker, b: &Checker) -> bool {
    a.kind == b.kind
        && a.addr == b.addr
        && a.port == b.port
        && a.bind_addr == b.bind_addr
        && a.bind_port == b.bind_port
        && a.connect_timeout == b.connect_timeout
        && a.retry == b.retry
        && a.delay_before_retry == b.delay_before_retry
        && a.delay_loop == b.delay_loop
        && a.starts_down == b.starts_down
}

/// The daemon's state, owned by the main thread.
pub struct Runtime {
    pub config: Config,
    checks: HashMap<CheckId, CheckRun>,
    real_up: HashMap<RealKey, bool>,
    quorum: HashMap<String, bool>,
    programmer: Programmer,
    generation: u64,
    events: Sender<Event>,
    metrics: Arc<Mutex<Metrics>>,
    last_errors: Vec<String>,
}

impl Runtime {
    fn checker_ids(cfg: &Config) -> Vec<(CheckId, &VirtualServer, Checker)> {
        let mut out = Vec::new();
        for vs in &cfg.virtual_servers {
            let id = vs_id(vs);
            for r in &vs.reals {
                for (i, c) in r.checkers.iter().enumerate() {
                    out.push((((id.clone(), r.addr, r.port), i), vs, c.clone()));
                }
            }
        }
        out
    }

    fn spawn_checker(&mut self, id: CheckId, spec: Checker, up: bool) {
        self.generation += 1;
        let stop = Arc::new(AtomicBool::new(false));
        let run = CheckRun {
            spec: spec.clone(),
            up,
            dynamic_weight: None,
            reason: String::new(),
            generation: self.generation,
            stop: stop.clone(),
        };
        let tx = self.events.clone();
        let generation = self.generation;
        let thread_id = id.clone();
        let name = format!("check {}:{}", id.0.1, id.0.2);
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || checker_loop(thread_id, generation, spec, up, stop, tx));
        if let Err(e) = spawned {
            tracing::error!("cannot start a checker thread: {e}");
        }
        self.checks.insert(id, run);
    }

    /// Real servers' states for a virtual server, from its checkers.
    fn real_states(&self, vs: &VirtualServer) -> Vec<RealState> {
        let id = vs_id(vs);
        vs.reals
            .iter()
            .map(|r| {
                let key = (id.clone(), r.addr, r.port);
                let mut up = true;
                let mut dynamic_weight = None;
                for i in 0..r.checkers.len() {
                    if let Some(c) = self.checks.get(&(key.clone(), i)) {
                        up &= c.up;
                        dynamic_weight = dynamic_weight.or(c.dynamic_weight);
                    }
                }
                RealState { up, dynamic_weight }
            })
            .collect()
    }

    /// Log, count and notify real servers whose state changed.
    fn note_transitions(&mut self) {
        for vs in &self.config.virtual_servers {
            let id = vs_id(vs);
            let states = self.real_states(vs);
            for (r, st) in vs.reals.iter().zip(&states) {
                let key = (id.clone(), r.addr, r.port);
                let before = self.real_up.insert(key.clone(), st.up);
                if before == Some(st.up) {
                    continue;
                }
                let reason: Vec<String> = (0..r.checkers.len())
                    .filter_map(|i| self.checks.get(&(key.clone(), i)))
                    .filter(|c| c.up == st.up)
                    .map(|c| format!("{}: {}", c.spec.type_name(), c.reason))
                    .collect();
                let reason = if reason.is_empty() {
                    "no checker".to_owned()
                } else {
                    reason.join("; ")
                };
                let mut m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
                for k in &vs.keys {
                    m.set_dest(k, r.addr, r.port, st.up, before.is_some());
                }
                drop(m);
                match (before, st.up) {
                    (None, true) => {
                        tracing::info!(
                            "virtual server {}: real server {} starts up",
                            vs.name,
                            r.endpoint()
                        )
                    }
                    (None, false) => {
                        tracing::info!(
                            "virtual server {}: real server {} starts down",
                            vs.name,
                            r.endpoint()
                        )
                    }
                    (Some(_), true) => {
                        tracing::warn!(
                            "virtual server {}: real server {} is UP ({reason})",
                            vs.name,
                            r.endpoint()
                        );
                        if let Some(s) = &r.notify_up {
                            run_script(s);
                        }
                    }
                    (Some(_), false) => {
                        let action = if r.inhibit_on_failure {
                            "weight 0 (inhibit_on_failure)"
                        } else {
                            "removed"
                        };
                        tracing::warn!(
                            "virtual server {}: real server {} is DOWN, {action} ({reason})",
                            vs.name,
                            r.endpoint()
                        );
                        if let Some(s) = &r.notify_down {
                            run_script(s);
                        }
                    }
                }
            }
        }
    }

    /// `omega`: a virtual server going away (removed by a reload, or at stop) runs the down
    /// notifiers that apply, as keepalived does: `notify_down` of its up real servers and
    /// `quorum_down` when its quorum was held.
    fn omega(&self, vs: &VirtualServer) {
        if !vs.omega {
            return;
        }
        let id = vs_id(vs);
        for r in &vs.reals {
            if self.real_up.get(&(id.clone(), r.addr, r.port)) == Some(&true)
                && let Some(s) = &r.notify_down
            {
                run_script(s);
            }
        }
        if self.quorum.get(&id) == Some(&true)
            && let Some(s) = &vs.quorum_down
        {
            run_script(s);
        }
    }

    /// What rvsd should have now.
    fn wanted(&mut self) -> Vec<Wanted> {
        let mut out = Vec::new();
        let vss = self.config.virtual_servers.clone();
        for vs in &vss {
            let id = vs_id(vs);
            let states = self.real_states(vs);
            let before = self.quorum.get(&id).copied();
            let (dests, quorum) = desired_dests(vs, &states, before);
            if before != Some(quorum) {
                self.quorum.insert(id.clone(), quorum);
                if before.is_some() || !quorum {
                    let script = if quorum {
                        &vs.quorum_up
                    } else {
                        &vs.quorum_down
                    };
                    if quorum {
                        tracing::warn!("virtual server {}: quorum {} regained", vs.name, vs.quorum);
                    } else {
                        tracing::warn!(
                            "virtual server {}: quorum {} lost{}",
                            vs.name,
                            vs.quorum,
                            if vs.sorry_server.is_some() {
                                ", sorry server in"
                            } else {
                                ""
                            }
                        );
                    }
                    if let Some(s) = script {
                        run_script(s);
                    }
                }
            }
            for spec in service_specs(vs) {
                out.push(Wanted {
                    spec,
                    laddrs: vs.laddrs.clone(),
                    access: vs.access.clone(),
                    dests: dests.clone(),
                });
            }
        }
        out
    }

    /// Program rvsd; refusals are logged when they change.
    pub fn program(&mut self, ctl: &mut dyn Control) {
        let wanted = self.wanted();
        let errors = self.programmer.apply(ctl, &wanted);
        if errors != self.last_errors {
            for e in &errors {
                tracing::error!("rvsd refused: {e} (tried again every few seconds)");
            }
            if errors.is_empty() && !self.last_errors.is_empty() {
                tracing::info!("rvsd accepted everything again");
            }
            self.last_errors = errors;
        }
    }

    /// Compare the record with rvsd and program what differs (see [`Programmer::reconcile`]).
    pub fn reconcile(&mut self, ctl: &mut dyn Control) {
        match self.programmer.reconcile(ctl) {
            Ok(()) => self.program(ctl),
            Err(e) => {
                if !self.last_errors.contains(&e) {
                    tracing::error!(
                        "cannot read rvsd's services: {e} (tried again every few seconds)"
                    );
                    self.last_errors = vec![e];
                }
            }
        }
    }

    pub fn pending_errors(&self) -> bool {
        !self.last_errors.is_empty()
    }

    /// Start: take over what rvsd has for the file's services (a dest found there with a weight
    /// starts up, whatever `alpha` says, so a restart changes nothing), start the checkers.
    fn start(&mut self, ctl: &mut dyn Control) {
        let keys: Vec<ServiceKey> = self
            .config
            .virtual_servers
            .iter()
            .flat_map(|v| v.keys.clone())
            .collect();
        if let Err(e) = self.programmer.adopt(ctl, &keys) {
            tracing::warn!("cannot read rvsd's services ({e}); they will be added");
        }
        let cfg = self.config.clone();
        for (id, vs, c) in Self::checker_ids(&cfg) {
            let live = vs
                .keys
                .iter()
                .any(|k| self.programmer.dest_live(k, id.0.1, id.0.2));
            let up = live || !c.starts_down;
            self.spawn_checker(id, c, up);
        }
        self.note_transitions();
    }

    /// SIGHUP: load the file again; refuse it whole on an error. Checkers of unchanged real
    /// servers keep running with their state; the others stop or start.
    pub fn reload(&mut self, path: &std::path::Path, ctl: &mut dyn Control) -> bool {
        let cfg = match load_file(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reload refused, the running configuration stays: {e}");
                self.metrics
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .reloads_refused += 1;
                return false;
            }
        };
        for w in &cfg.warnings {
            tracing::warn!("{w}");
        }
        let mut old = std::mem::take(&mut self.checks);
        let (mut kept, mut started) = (0, 0);
        for (id, _vs, c) in Self::checker_ids(&cfg) {
            match old.remove(&id) {
                Some(mut run) if same_check(&run.spec, &c) => {
                    run.spec = c;
                    self.checks.insert(id, run);
                    kept += 1;
                }
                _ => {
                    let up = !c.starts_down;
                    self.spawn_checker(id, c, up);
                    started += 1;
                }
            }
        }
        let stopped = old.len();
        drop(old);
        let ids: Vec<String> = cfg.virtual_servers.iter().map(vs_id).collect();
        let removed: Vec<VirtualServer> = self
            .config
            .virtual_servers
            .iter()
            .filter(|v| !ids.contains(&vs_id(v)))
            .cloned()
            .collect();
        for vs in &removed {
            self.omega(vs);
        }
        self.real_up.retain(|k, _| {
            cfg.virtual_servers
                .iter()
                .any(|v| vs_id(v) == k.0 && v.reals.iter().any(|r| (r.addr, r.port) == (k.1, k.2)))
        });
        self.quorum.retain(|k, _| ids.contains(k));
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain_dests(&cfg);
        self.config = cfg;
        self.note_transitions();
        self.program(ctl);
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reloads += 1;
        tracing::info!(
            "reloaded {}: checkers kept {kept}, started {started}, stopped {stopped}",
            path.display()
        );
        true
    }

    fn on_event(&mut self, ev: Event) {
        let Some(run) = self.checks.get_mut(&ev.id) else {
            return;
        };
        if run.generation != ev.generation {
            return;
        }
        run.up = ev.up;
        run.reason = ev.outcome.reason.clone();
        // misc_dynamic: exit 0 leaves the weight as it was (keepalived's "unchanged").
        if ev.outcome.dynamic_weight.is_some() {
            run.dynamic_weight = ev.outcome.dynamic_weight;
        }
        let kind = run.spec.type_name();
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .count_check(kind, ev.outcome.ok);
        if !ev.outcome.ok {
            tracing::debug!("{} {}: {}", kind, ev.id.0.0, ev.outcome.reason);
        }
    }
}

/// Run a notify/quorum script without waiting for it (a thread reaps it).
fn run_script(s: &Script) {
    let argv = s.argv.clone();
    std::thread::spawn(move || {
        match std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .status()
        {
            Ok(st) if !st.success() => tracing::warn!("script {argv:?} exited {st}"),
            Ok(_) => {}
            Err(e) => tracing::warn!("script {argv:?} did not run: {e}"),
        }
    });
}

fn checker_loop(
    id: CheckId,
    generation: u64,
    spec: Checker,
    up: bool,
    stop: Arc<AtomicBool>,
    tx: Sender<Event>,
) {
    let mut state = CheckerState::new(up);
    let mut next = Instant::now();
    loop {
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let outcome = check::run(&spec);
        let step = state.on_result(outcome.ok, &spec);
        next = Instant::now() + step.next_in;
        let ev = Event {
            id: id.clone(),
            generation,
            outcome,
            up: state.up,
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}

/// How often rvsd's services are compared with what was programmed.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// How the daemon was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub control: PathBuf,
    pub metrics: Option<std::net::SocketAddr>,
}

/// Run until SIGTERM/SIGINT.
pub fn run(opts: &Options, ctl: &mut dyn Control) -> anyhow::Result<()> {
    let config = load_file(&opts.config)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let hup = Arc::new(AtomicBool::new(false));
    let term = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, term.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, term.clone())?;
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    if let Some(addr) = opts.metrics {
        crate::metrics::serve(addr, metrics.clone())?;
        tracing::info!("metrics at http://{addr}/metrics");
    }
    let (tx, rx): (Sender<Event>, Receiver<Event>) = channel();
    let mut rt = Runtime {
        config,
        checks: HashMap::new(),
        real_up: HashMap::new(),
        quorum: HashMap::new(),
        programmer: Programmer::default(),
        generation: 0,
        events: tx,
        metrics,
        last_errors: Vec::new(),
    };
    rt.start(ctl);
    rt.program(ctl);
    tracing::info!(
        "rvs-keepalived running: {} virtual servers from {}, rvsd at {}",
        rt.config.virtual_servers.len(),
        opts.config.display(),
        opts.control.display()
    );
    let mut last_program = Instant::now();
    let mut last_reconcile = Instant::now();
    loop {
        let mut changed = false;
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(ev) => {
                rt.on_event(ev);
                changed = true;
                while let Ok(ev) = rx.try_recv() {
                    rt.on_event(ev);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => unreachable!("the runtime holds a sender"),
        }
        if term.load(Ordering::Relaxed) {
            break;
        }
        if hup.swap(false, Ordering::Relaxed) {
            tracing::info!("SIGHUP: reloading {}", opts.config.display());
            rt.reload(&opts.config, ctl);
        }
        if changed {
            rt.note_transitions();
        }
        // Program after a change, and every few seconds while rvsd refuses something (or was
        // away), so a restarted rvsd gets its services back.
        let retry = rt.pending_errors() && last_program.elapsed() > Duration::from_secs(3);
        if changed || retry {
            rt.program(ctl);
            last_program = Instant::now();
        }
        // Every few seconds, check that rvsd still has what was programmed (it may have
        // restarted, or someone used ipvsadm on these services).
        if last_reconcile.elapsed() > RECONCILE_EVERY {
            rt.reconcile(ctl);
            last_reconcile = Instant::now();
            last_program = last_reconcile;
        }
    }
    tracing::info!("stopping: checks end, rvsd's services stay as they are");
    for vs in &rt.config.virtual_servers {
        rt.omega(vs);
    }
    // Give the notifiers started just now a moment to be started before the process ends.
    if rt.config.virtual_servers.iter().any(|v| v.omega) {
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
