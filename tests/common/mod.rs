//! Shared pieces of the integration tests: the test network (scripts/testnet.sh), a running
//! rvsd, and the ipvsadm client. Everything made here is removed on drop, also when a test fails.
#![allow(dead_code)]

pub mod frames;
pub mod pcap;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Tests that run rvsd take this lock: each rvsd polls a core, and this machine may have two.
static RVSD_LOCK: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    RVSD_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Binaries of the workspace live next to rvsd (`cargo test --workspace` builds them all).
pub fn bin(name: &str) -> PathBuf {
    let rvsd = PathBuf::from(env!("CARGO_BIN_EXE_rvsd"));
    let p = rvsd.with_file_name(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// Why namespace tests cannot run here, or None when they can.
pub fn netns_unavailable() -> Option<String> {
    // SAFETY-free check: `id -u` avoids a libc dependency in tests.
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root".into());
    }
    let out = Command::new(repo().join("scripts/testnet.sh"))
        .arg("check")
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "testnet check failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Some(format!("cannot run scripts/testnet.sh: {e}")),
    }
}

/// Skip (return early from) a test that needs root and namespaces, printing why.
#[macro_export]
macro_rules! require_netns {
    () => {
        if let Some(why) = common::netns_unavailable() {
            if std::env::var_os("CI").is_some() {
                panic!("namespace test cannot run in CI: {why}");
            }
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// The test network of scripts/testnet.sh, torn down on drop.
pub struct TestNet {
    pub id: String,
}

impl TestNet {
    /// Make the network, named `ID-PID-*` so that test processes running at the same time
    /// (several checkouts on one machine) never share namespaces.
    pub fn up(id: &str) -> TestNet {
        Self::up_mode(id, "nat")
    }

    /// [`TestNet::up`] with a topology of `testnet.sh` (`nat`, `fullnat`, `dr`, `tun`).
    #[allow(dead_code)] // not every test binary uses every mode
    pub fn up_mode(id: &str, mode: &str) -> TestNet {
        let net = TestNet {
            id: format!("{id}{}", std::process::id()),
        };
        let id = net.id.as_str();
        let out = Command::new(repo().join("scripts/testnet.sh"))
            .args(["up", id, mode])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "testnet up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        net
    }

    pub fn ns(&self, which: &str) -> String {
        format!("{}-{which}", self.id)
    }

    /// The text of rvsd's `/metrics` in the director namespace (`[control] metrics =
    /// "127.0.0.1:9475"`); empty when the scrape fails.
    pub fn metrics(&self) -> String {
        let o = self.exec(
            "d",
            &[
                "curl",
                "-s",
                "--max-time",
                "5",
                "http://127.0.0.1:9475/metrics",
            ],
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// [`TestNet::metrics`] parsed: (family, labels as written between the braces) -> value.
    /// Empty when the scrape fails.
    #[allow(dead_code)] // not every test binary reads metrics this way
    pub fn scrape(&self) -> std::collections::BTreeMap<(String, String), f64> {
        let mut m = std::collections::BTreeMap::new();
        for line in self.metrics().lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (family, labels) = match key.split_once('{') {
                Some((f, l)) => (f, l.trim_end_matches('}')),
                None => (key, ""),
            };
            if let Ok(v) = value.parse() {
                m.insert((family.to_owned(), labels.to_owned()), v);
            }
        }
        m
    }

    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/rvs-testnet/{}", self.id))
    }

    /// A command to run inside namespace `which` (`c`, `d`, `r1` ...): `ip netns exec NS`, the
    /// program and its arguments to be added (for processes the test spawns and keeps).
    pub fn command(&self, which: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(which)]);
        c
    }

    /// Run a command inside namespace `which` and wait for it.
    pub fn exec(&self, which: &str, args: &[&str]) -> Output {
        self.command(which).args(args).output().unwrap()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/testnet.sh"))
            .args(["down", &self.id])
            .output();
    }
}

/// Namespaces whose name starts with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// A running rvsd; SIGTERM and reaped on drop.
pub struct Rvsd {
    child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Rvsd {
    /// Start rvsd with `config` (a TOML text whose `[control] socket` is `socket`), inside
    /// namespace `netns` when given, and wait (bounded) until its control socket answers.
    pub fn start(netns: Option<&str>, config: &str, socket: &Path, dir: &Path) -> Rvsd {
        let _ = std::fs::remove_file(dir.join("rvsd.log"));
        Self::start_with(netns, config, socket, dir, bin("rvsd").as_path(), &[])
    }

    /// [`Rvsd::start`] with another rvsd binary (an "upgrade") and more arguments
    /// (`--state-file FILE`). The log file is appended to, so one log follows a restart.
    pub fn start_with(
        netns: Option<&str>,
        config: &str,
        socket: &Path,
        dir: &Path,
        rvsd: &Path,
        args: &[&str],
    ) -> Rvsd {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("rvs.toml");
        std::fs::write(&conf, config).unwrap();
        let log = dir.join("rvsd.log");
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(rvsd);
                c
            }
            None => Command::new(rvsd),
        };
        cmd.arg("--config")
            .arg(&conf)
            .arg("--log-level")
            .arg("info")
            .args(args);
        cmd.stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .stdin(Stdio::null());
        let child = cmd.spawn().unwrap();
        let mut d = Rvsd {
            child: Some(child),
            socket: socket.to_owned(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("rvsd exited at start ({st}):\n{}", d.log_text());
            }
            if d.ipvsadm(&["-Ln"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rvsd did not answer in 30 s:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Run ipvsadm against this daemon.
    pub fn ipvsadm(&self, args: &[&str]) -> Output {
        Command::new(bin("ipvsadm"))
            .args(args)
            .env("RVS_SOCKET", &self.socket)
            .output()
            .unwrap()
    }

    /// Run ipvsadm and require success; returns stdout.
    pub fn ipvsadm_ok(&self, args: &[&str]) -> String {
        let o = self.ipvsadm(args);
        assert!(
            o.status.success(),
            "ipvsadm {args:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// SIGKILL (no clean-up at all, as a crash), wait; returns the log.
    pub fn kill(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        self.log_text()
    }

    /// Send SIGKILL and return at once (the process is reaped by [`Rvsd::kill`] or on drop).
    pub fn sigkill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
        }
    }

    /// The process id (rvsd's own: `ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM, wait (bounded), return the exit status and the log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let st = self.terminate();
        (st, self.log_text())
    }

    /// Stop with state (SIGUSR2), wait (bounded), return the exit status and the log.
    pub fn stop_with_state(mut self) -> (std::process::ExitStatus, String) {
        let st = self.signal_and_wait("-USR2");
        (st, self.log_text())
    }

    /// Wait (bounded) for rvsd to exit on its own (after `rvsctl daemon stop`); the exit
    /// status and the log.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let st = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (st, self.log_text())
    }

    /// Send a signal (`"-HUP"`) and return at once.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = self.child.as_ref() {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal_and_wait("-TERM")
    }

    fn signal_and_wait(&mut self, sig: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}

/// `[dpdk] cores` for `workers` workers on this (possibly two-CPU) machine: lcore 0 (control)
/// on CPU 0, the workers alternating over CPUs 1 and 0 (EAL `--lcores` map, docs/operations.md
/// section 3: four workers on two cores).
pub fn cores_for(workers: usize) -> String {
    if workers == 1 {
        return "0-1".to_owned();
    }
    let mut s = "0@0".to_owned();
    for w in 1..=workers {
        s.push_str(&format!(",{w}@{}", w % 2));
    }
    s
}

/// An af_packet device on `iface` with one queue pair per worker (the kernel's fanout hash
/// spreads flows over them, so packets arrive on workers that do not own them), and kernel rings
/// of `frames` frames (DPDK's default is 512): a test machine shares its cores with the clients
/// and servers, and a worker that is descheduled for a few milliseconds must not overflow them
/// (docs/operations.md, "af_packet ports").
pub fn af_packet(index: usize, iface: &str, workers: usize, frames: u32) -> String {
    format!("net_af_packet{index},iface={iface},qpairs={workers},framecnt={frames}")
}

/// The start of an rvsd configuration without namespaces (daemon, control and reload tests): the
/// EAL on `cores` without hugepages, one port `dp0` on `device` (`net_null0`, ...) holding
/// 198.18.0.1/24. The caller appends `[control]` and the rest.
pub fn one_port_head(cores: &str, device: &str) -> String {
    format!(
        "\n[dpdk]\ncores = \"{cores}\"\n\
         args = [\"--no-huge\", \"-m\", \"256\", \"--no-shconf\", \"--no-telemetry\"]\n\
         [[port]]\nname = \"dp0\"\ndevice = \"{device}\"\n\
         [[addr]]\nport = \"dp0\"\nip = \"198.18.0.1/24\"\n"
    )
}

/// Redirect counters summed over the workers' exit summary lines: (sent, received, ring
/// overflows).
pub fn redirect_totals(log: &str) -> (u64, u64, u64) {
    let field = |line: &str, key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.trim_matches('"').parse().ok())
            .unwrap_or(0)
    };
    log.lines()
        .filter(|l| l.contains("worker summary"))
        .fold((0, 0, 0), |(s, r, o), l| {
            (
                s + field(l, "redirects_sent"),
                r + field(l, "redirects_received"),
                o + field(l, "ring_overflows"),
            )
        })
}

/// With several workers, the exit summary must show traffic that crossed workers (redirects
/// sent and received) and no ring overflow.
pub fn assert_cross_worker_traffic(log: &str, workers: usize) {
    let (sent, received, overflows) = redirect_totals(log);
    let summaries = log.lines().filter(|l| l.contains("worker summary")).count();
    assert_eq!(summaries, workers, "worker summaries:\n{log}");
    if workers > 1 {
        assert!(sent > 0, "no packet crossed workers:\n{log}");
        assert!(received >= sent, "sent {sent} received {received}:\n{log}");
    } else {
        assert_eq!((sent, received), (0, 0), "{log}");
    }
    assert_eq!(overflows, 0, "ring overflows:\n{log}");
}

/// `(rs1, rs2)` connections out of `total` when each of `workers` workers runs its own
/// scheduler (docs/ipvsadm-compat.md section 3, "Schedulers run per worker"): rr alternates per worker, so |rs1 - rs2| is at most one per
/// worker; wrr 3:1 gives rs2 once in every four picks of each worker, at a place in the cycle
/// that depends on the order the dests were added (rs2 added last stands first in the list,
/// giving rs1 rs1 rs2 rs1), so a worker with `n` connections sent rs2 `n / 4` rounded down or up.
pub fn split_ok(rs1: u32, rs2: u32, total: u32, weights: (u32, u32), workers: u32) -> bool {
    if rs1 + rs2 != total {
        return false;
    }
    match weights {
        (1, 1) => rs1.abs_diff(rs2) <= workers,
        (3, 1) => {
            let min = (total.saturating_sub(3 * workers)).div_ceil(4);
            let max = (total + 3 * workers) / 4;
            (min..=max).contains(&rs2)
        }
        _ => true,
    }
}

/// rvsd's configuration for the test network's director (namespace `ID-d`): port `dp0` on veth
/// `d0` (198.18.0.1/24, the client network) and, unless `one_port`, `dp1` on `d1`
/// (198.18.1.1/24, the real servers' network), both af_packet with `queues` queue pairs, and
/// `workers` workers. `extra` is appended as is (more tables: `[ipvs.timeouts]`, `[[fwmark]]`).
#[derive(Debug, Clone)]
pub struct DirectorConf<'a> {
    pub workers: usize,
    pub queues: usize,
    pub one_port: bool,
    /// `faces = "clients"` / `"servers"` on the two ports (RSS fields where the NIC has them).
    pub faces: bool,
    pub mbufs: Option<u32>,
    /// `[control] metrics`.
    pub metrics: Option<&'a str>,
    pub conn_capacity: u32,
    pub idle_sleep_us: u32,
    /// `kernel = { ... }` on every port (a kernel twin; the text goes between the braces).
    pub kernel: Option<&'a str>,
    /// Frames in each af_packet kernel ring.
    pub ring_frames: u32,
    pub extra: &'a str,
}

impl<'a> DirectorConf<'a> {
    /// `workers` workers over as many queue pairs, two ports, a 4096-connection table.
    pub fn new(workers: usize) -> DirectorConf<'a> {
        DirectorConf {
            workers,
            queues: workers,
            one_port: false,
            faces: false,
            mbufs: None,
            metrics: None,
            conn_capacity: 4096,
            idle_sleep_us: 50,
            kernel: None,
            ring_frames: 4096,
            extra: "",
        }
    }

    /// The TOML text and the control socket path (in the network's state directory).
    pub fn render(&self, net: &TestNet) -> (String, PathBuf) {
        let socket = net.state_dir().join("rvsd.sock");
        let mut c = format!(
            "[dpdk]\ncores = \"{}\"\nargs = [\"--no-huge\", \"-m\", \"256\", \"--no-shconf\", \"--no-telemetry\"]\n",
            cores_for(self.workers)
        );
        if let Some(m) = self.mbufs {
            c.push_str(&format!("mbufs = {m}\n"));
        }
        let ports: &[(usize, &str, &str, &str)] = if self.one_port {
            &[(0, "d0", "198.18.0.1/24", "clients")]
        } else {
            &[
                (0, "d0", "198.18.0.1/24", "clients"),
                (1, "d1", "198.18.1.1/24", "servers"),
            ]
        };
        for (i, iface, ip, faces) in ports {
            c.push_str(&format!(
                "\n[[port]]\nname = \"dp{i}\"\ndevice = \"{}\"\n",
                af_packet(*i, iface, self.queues, self.ring_frames)
            ));
            if self.faces {
                c.push_str(&format!("faces = \"{faces}\"\n"));
            }
            if let Some(k) = self.kernel {
                c.push_str(&format!("kernel = {{ {k} }}\n"));
            }
            c.push_str(&format!("\n[[addr]]\nport = \"dp{i}\"\nip = \"{ip}\"\n"));
        }
        c.push_str(&format!("\n[control]\nsocket = \"{}\"\n", socket.display()));
        if let Some(m) = self.metrics {
            c.push_str(&format!("metrics = \"{m}\"\n"));
        }
        c.push_str(&format!(
            "\n[dataplane]\nconn_capacity = {}\nidle_sleep_us = {}\n\n{}",
            self.conn_capacity, self.idle_sleep_us, self.extra
        ));
        (c, socket)
    }
}

/// With `--set 8 8 8` and the configuration's `time_wait = 8`, `close = 8` (TIME_WAIT and
/// CLOSE are not among the three `--set` changes): the table empties and no dest keeps an
/// active or inactive connection.
pub fn timeouts_drain(rvsd: &Rvsd) {
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let l = rvsd.ipvsadm_ok(&["-Lnc"]);
        if !l
            .lines()
            .any(|x| x.starts_with("TCP") || x.starts_with("UDP"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "not drained:\n{l}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let l = rvsd.ipvsadm_ok(&["-Ln"]);
    for line in l
        .lines()
        .filter(|x| x.contains("->") && !x.contains("RemoteAddress"))
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((f[4], f[5]), ("0", "0"), "ActiveConn/InActConn: {l}");
    }
}

/// Stop rvsd (it must exit cleanly with every mbuf back, and with several workers some packets
/// handed between them), then take the test network down and check no namespace is left.
pub fn finish(net: TestNet, rvsd: Rvsd, workers: usize) {
    let (status, log) = rvsd.stop();
    assert!(status.success(), "rvsd exit {status}:\n{log}");
    assert!(
        log.contains("all mbufs returned"),
        "mempool not whole:\n{log}"
    );
    assert_cross_worker_traffic(&log, workers);
    let id = format!("{}-", net.id);
    drop(net);
    assert!(
        namespaces_with_prefix(&id).is_empty(),
        "namespaces of {id}* left behind"
    );
}
