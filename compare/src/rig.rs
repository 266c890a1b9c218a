//! The comparison run: the same client loads through each director in turn, on the namespace
//! test network, one network for all but DR.
//!
//! Network `nat` of `scripts/testnet.sh` (client 198.18.0.2 -> director namespace `d` with d0
//! on the client network and d1 on the servers' -> real servers 198.18.1.11/.12, whose default
//! gateway is the director) carries plain routing, nftables DNAT, IPVS, HAProxy and rvs NAT and
//! FULLNAT. Kernel directors get the director's addresses on d0/d1 and `ip_forward`; rvs gets
//! the bare veth ends, as the test network leaves them (the kernel answers nothing there). DR
//! needs the director and the servers on one segment and the replies bypassing the director:
//! network `dr` (client, director and servers on one bridge, the VIP on the servers' `lo`).
//!
//! Plain routing sends the client straight at the real servers' addresses through the director
//! namespace's kernel: the most the rig can carry, the ceiling the others are divided by. It
//! runs two wrk processes (one per server, half the connections each) so the servers see the
//! same load as behind a balancer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cpu::{self, MachineCpu};
use crate::machine::Machine;
use crate::net::{self, HTTP_PORT, Net, UDP_PORT, VIP};
use crate::report::{self, Comparison, Diagnostic, Load, Measurement, ROUTING, Settings, Skipped};
use crate::udp::UdpReport;
use crate::wrk;

const RIPS_NAT: [&str; 2] = ["198.18.1.11", "198.18.1.12"];
const RIPS_DR: [&str; 2] = ["198.18.0.11", "198.18.0.12"];
/// FULLNAT local addresses, on the servers' network: four, so new-connection runs do not run
/// out of local ports while closed connections wait in TIME_WAIT.
const LIPS: [&str; 4] = ["198.18.1.5", "198.18.1.6", "198.18.1.7", "198.18.1.8"];

/// The directors, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Routing,
    Nftables,
    Ipvs,
    Haproxy,
    RvsNat,
    RvsFullnat,
    RvsDr,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Routing,
        Kind::Nftables,
        Kind::Ipvs,
        Kind::Haproxy,
        Kind::RvsNat,
        Kind::RvsFullnat,
        Kind::RvsDr,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Routing => ROUTING,
            Kind::Nftables => "nftables DNAT",
            Kind::Ipvs => "IPVS NAT",
            Kind::Haproxy => "HAProxy tcp",
            Kind::RvsNat => "rvs NAT",
            Kind::RvsFullnat => "rvs FULLNAT",
            Kind::RvsDr => "rvs DR",
        }
    }

    fn is_rvs(self) -> bool {
        matches!(self, Kind::RvsNat | Kind::RvsFullnat | Kind::RvsDr)
    }
}

/// One build of rvs: its rvsd and the ipvsadm that talks to it.
#[derive(Debug, Clone)]
pub struct RvsBuild {
    /// `Some("a")`/`Some("b")` in A/B runs (appended to the director's name).
    pub label: Option<String>,
    pub rvsd: PathBuf,
    pub ipvsadm: PathBuf,
    /// rvsctl, for the ports' counters after the loads (skipped when absent).
    pub rvsctl: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub repo: PathBuf,
    /// This program (run in the namespaces as the UDP echo server and load).
    pub self_exe: PathBuf,
    /// Prefix of the networks' ids (the pid is appended).
    pub id: String,
    pub seconds: u32,
    pub connections: u32,
    pub wrk_threads: u32,
    pub udp_flows: u32,
    pub loads: Vec<Load>,
    pub directors: Vec<Kind>,
    pub builds: Vec<RvsBuild>,
    pub rvs_workers: u32,
    pub idle_sleep_us: u32,
    pub haproxy_threads: u32,
    /// The kernel's ipvsadm (Debian package `ipvsadm`), for the IPVS director.
    pub kernel_ipvsadm: PathBuf,
    /// Where the processes' logs are copied (one directory per network) before it goes.
    pub logs: PathBuf,
}

/// What a director needs to stay up: a process to measure and stop, or nothing (the kernel).
struct Running {
    name: String,
    /// Process name in the [`Net`], for CPU and stopping.
    proc_name: Option<String>,
    pid: Option<u32>,
    /// HTTP and UDP targets for the load (plain routing: the servers themselves).
    http_targets: Vec<String>,
    udp_targets: Vec<String>,
    /// Loads this director cannot carry, with the reason.
    cannot: Vec<(Load, String)>,
    /// rvs: the control socket and rvsctl, to read the ports' counters after the loads.
    rvs: Option<(PathBuf, Option<PathBuf>)>,
}

/// Run the whole comparison.
pub fn run(o: &Options) -> Result<Comparison> {
    let rvsds: Vec<(String, PathBuf)> = o
        .builds
        .iter()
        .map(|b| {
            (
                b.label.clone().unwrap_or_else(|| "rvs".to_owned()),
                b.rvsd.clone(),
            )
        })
        .collect();
    let machine = Machine::describe(&rvsds);
    eprint!("{}", machine.text());
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let mut diagnostics = Vec::new();
    let mut failures = Vec::new();
    let pid = std::process::id();

    let routed: Vec<Kind> = o
        .directors
        .iter()
        .copied()
        .filter(|k| *k != Kind::RvsDr)
        .collect();
    if !routed.is_empty() {
        let mut net = Net::up(&o.repo, &format!("{}a{pid}", o.id), "nat")?;
        net.start_servers(&o.self_exe, "0.0.0.0")?;
        for k in Kind::ALL.into_iter().filter(|k| routed.contains(k)) {
            for b in builds_for(k, o) {
                let r = director(
                    o,
                    &mut net,
                    k,
                    b,
                    &mut results,
                    &mut skipped,
                    &mut diagnostics,
                );
                keep_logs(&net, &o.logs);
                failed(r, k, b, &mut failures);
            }
        }
    }
    if o.directors.contains(&Kind::RvsDr) {
        let mut net = Net::up(&o.repo, &format!("{}b{pid}", o.id), "dr")?;
        net.start_servers(&o.self_exe, VIP)?;
        for b in builds_for(Kind::RvsDr, o) {
            let r = director(
                o,
                &mut net,
                Kind::RvsDr,
                b,
                &mut results,
                &mut skipped,
                &mut diagnostics,
            );
            keep_logs(&net, &o.logs);
            failed(r, Kind::RvsDr, b, &mut failures);
        }
    }
    report::set_ratios(&mut results);
    let mut notes = vec![
        "kernel routing: the client addresses the real servers directly, routed by the director namespace's kernel; every ratio is to it, per load".to_owned(),
        "rvs DR runs on a one-segment network (client, director and servers on one bridge, replies bypass the director); the others on the routed two-network one".to_owned(),
        "the kernel directors' work (routing, nftables, IPVS) runs in softirq on whichever CPU sent the packet, so only the machine-wide CPU is given for them".to_owned(),
        "rvs busy-polls between idle sleeps: its process CPU includes polling, not only packet work".to_owned(),
    ];
    if o.builds.len() > 1 {
        notes.push(format!(
            "A/B: [a] = {}, [b] = {}",
            o.builds[0].rvsd.display(),
            o.builds[1].rvsd.display()
        ));
    }
    Ok(Comparison {
        machine,
        settings: Settings {
            seconds_per_run: f64::from(o.seconds),
            http_connections: o.connections,
            wrk_threads: o.wrk_threads,
            udp_flows: o.udp_flows,
            rvs_workers: o.rvs_workers,
            rvs_idle_sleep_us: o.idle_sleep_us,
            haproxy_threads: o.haproxy_threads,
            nginx_workers: 1,
        },
        results,
        skipped,
        failures,
        diagnostics,
        notes,
    })
}

/// A director that failed is recorded and the run goes on with the next one (what was measured
/// is kept; the command fails at the end).
fn failed(r: Result<()>, k: Kind, b: Option<&RvsBuild>, failures: &mut Vec<Skipped>) {
    if let Err(e) = r {
        let director = display_name(k, b);
        eprintln!("   FAILED: {e:#}");
        failures.push(Skipped {
            director,
            load: None,
            reason: format!("{e:#}"),
        });
    }
}

/// Copy the network's logs (`*.log`, nginx's error logs) into `logs/ID/`, before the network
/// and its state directory go.
fn keep_logs(net: &Net, logs: &Path) {
    let dest = logs.join(&net.id);
    if std::fs::create_dir_all(&dest).is_err() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(net.state()) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            let _ = std::fs::copy(&p, dest.join(&name));
        } else if name.starts_with("nginx-") {
            let _ = std::fs::copy(p.join("error.log"), dest.join(format!("{name}-error.log")));
        }
    }
}

fn builds_for(k: Kind, o: &Options) -> Vec<Option<&RvsBuild>> {
    if k.is_rvs() {
        o.builds.iter().map(Some).collect()
    } else {
        vec![None]
    }
}

/// Set up one director, run every load through it, take it down.
fn director(
    o: &Options,
    net: &mut Net,
    k: Kind,
    build: Option<&RvsBuild>,
    results: &mut Vec<Measurement>,
    skipped: &mut Vec<Skipped>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<()> {
    let name = display_name(k, build);
    eprintln!("== {name}");
    let up = match k {
        Kind::Routing => kernel_mode(net, false).map(|()| Running {
            name: name.clone(),
            proc_name: None,
            pid: None,
            http_targets: RIPS_NAT.iter().map(|r| r.to_string()).collect(),
            udp_targets: RIPS_NAT.iter().map(|r| r.to_string()).collect(),
            cannot: vec![],
            rvs: None,
        }),
        Kind::Nftables => nftables(net, &name),
        Kind::Ipvs => match ipvs_unavailable(&o.kernel_ipvsadm) {
            Some(reason) => {
                eprintln!("   skipped: {reason}");
                skipped.push(Skipped {
                    director: name,
                    load: None,
                    reason,
                });
                return Ok(());
            }
            None => ipvs(net, &name, &o.kernel_ipvsadm),
        },
        Kind::Haproxy => haproxy(net, &name, o.haproxy_threads),
        Kind::RvsNat | Kind::RvsFullnat | Kind::RvsDr => rvs(
            o,
            net,
            k,
            &name,
            build.context("rvs director without a build")?,
        ),
    };
    let running = match up {
        Ok(r) => r,
        Err(e) => {
            teardown(o, net, k);
            return Err(e.context(format!("set up {name}")));
        }
    };
    let outcome = net.fresh_client_address().and_then(|client| {
        eprintln!("   client address {client}");
        loads(o, net, &running, results, skipped)
    });
    // Take the director down whatever happened, then report the loads' error.
    let mut counters = Vec::new();
    if let Some((socket, Some(rvsctl))) = &running.rvs {
        let out = Command::new(rvsctl)
            .args(["-s", "link", "show"])
            .env("RVS_SOCKET", socket)
            .output();
        if let Ok(out) = out {
            counters.push(String::from_utf8_lossy(&out.stdout).trim_end().to_owned());
        }
    }
    if let Some(p) = &running.proc_name {
        net.stop_proc(p);
        if k.is_rvs() {
            counters.extend(
                net.log(p)
                    .lines()
                    .filter(|l| l.contains("worker summary"))
                    .map(|l| l.trim().to_owned()),
            );
        }
    }
    if !counters.is_empty() {
        diagnostics.push(Diagnostic {
            director: name.clone(),
            text: counters,
        });
    }
    teardown(o, net, k);
    outcome.with_context(|| format!("loads through {name}"))
}

/// A director's name in the results: the kind's, with `[label]` for A/B builds.
fn display_name(k: Kind, build: Option<&RvsBuild>) -> String {
    match build.and_then(|b| b.label.as_ref()) {
        Some(l) => format!("{} [{l}]", k.name()),
        None => k.name().to_owned(),
    }
}

/// Leave the director namespace as the test network made it, whatever state a director left it
/// in: its processes stopped, no nftables rules or IPVS services, no kernel addresses.
fn teardown(o: &Options, net: &mut Net, k: Kind) {
    net.stop_procs_in("d");
    if !k.is_rvs() {
        let _ = net.sh("d", "nft", &["flush", "ruleset"]);
        if k == Kind::Ipvs {
            let _ = net.sh("d", &o.kernel_ipvsadm.display().to_string(), &["-C"]);
        }
        let _ = dpdk_mode(net);
    }
    net.flush_neighbours();
}

fn loads(
    o: &Options,
    net: &mut Net,
    d: &Running,
    results: &mut Vec<Measurement>,
    skipped: &mut Vec<Skipped>,
) -> Result<()> {
    for &load in &o.loads {
        if let Some((_, reason)) = d.cannot.iter().find(|(l, _)| *l == load) {
            eprintln!("   {}: skipped: {reason}", load.name());
            skipped.push(Skipped {
                director: d.name.clone(),
                load: Some(load),
                reason: reason.clone(),
            });
            continue;
        }
        warm_up(o, net, d, load)?;
        let cpu0 = d.pid.map(cpu::process_seconds).transpose()?;
        let m0 = MachineCpu::now()?;
        let (requests, errors, seconds, latency, per_server) = match load {
            Load::HttpKeepalive | Load::HttpClose => {
                let r = wrk_load(o, net, &d.http_targets, load == Load::HttpClose)?;
                let errors = r.socket_errors + r.bad_responses;
                (r.requests, errors, r.seconds, r.latency_us, vec![])
            }
            Load::Udp => {
                let r = udp_load(o, net, &d.udp_targets, f64::from(o.seconds), o.udp_flows)?;
                let per: Vec<(String, u64)> = r.per_server.into_iter().collect();
                (r.answered, r.lost, r.seconds, r.latency_us, per)
            }
        };
        let m = MachineCpu::now()?.since(m0);
        let cpu1 = d.pid.map(cpu::process_seconds).transpose()?;
        if let Some(p) = &d.proc_name {
            net.check_alive(p)?;
        }
        let meas = Measurement {
            director: d.name.clone(),
            load,
            requests,
            errors,
            seconds,
            requests_per_sec: if seconds > 0.0 {
                requests as f64 / seconds
            } else {
                0.0
            },
            latency_us: latency,
            director_cpu_seconds: cpu0.zip(cpu1).map(|(a, b)| b - a),
            machine_cpu_seconds: m.busy,
            softirq_seconds: m.softirq,
            ratio_to_routing: None,
            per_server,
        };
        eprintln!(
            "   {:<15} {:>9.0} req/s  p99 {:>7.0} us  errors {}",
            load.name(),
            meas.requests_per_sec,
            meas.latency_us.p99,
            meas.errors
        );
        results.push(meas);
    }
    Ok(())
}

/// Make sure the director answers before measuring (ARP resolved, service configured): one
/// HTTP request, or a short UDP run with an answer, per target; at most 15 s.
fn warm_up(o: &Options, net: &mut Net, d: &Running, load: Load) -> Result<()> {
    match load {
        Load::HttpKeepalive | Load::HttpClose => {
            for t in &d.http_targets {
                let url = format!("http://{t}:{HTTP_PORT}/");
                net::wait_until(
                    Duration::from_secs(15),
                    &format!("{} to answer {url}", d.name),
                    || {
                        if let Some(p) = &d.proc_name {
                            net.check_alive(p)?;
                        }
                        Ok(net
                            .command("c", "curl")
                            .args(["-s", "-o", "/dev/null", "--max-time", "1", &url])
                            .status()?
                            .success())
                    },
                )?;
            }
        }
        Load::Udp => {
            net::wait_until(
                Duration::from_secs(15),
                &format!("{} to answer UDP", d.name),
                || {
                    let r = udp_load(o, net, &d.udp_targets, 0.2, d.udp_targets.len() as u32)?;
                    Ok(r.lost == 0 && r.answered > 0)
                },
            )?;
        }
    }
    Ok(())
}

/// wrk from the client namespace, one process per target (connections split between them),
/// bounded by `-d` and `--timeout`.
fn wrk_load(o: &Options, net: &Net, targets: &[String], close: bool) -> Result<wrk::WrkReport> {
    let n = targets.len() as u32;
    let conns = (o.connections / n).max(1);
    let threads = (o.wrk_threads / n).max(1).min(conns);
    let children: Vec<_> = targets
        .iter()
        .map(|t| {
            let mut c = net.command("c", "wrk");
            c.args([
                "-t",
                &threads.to_string(),
                "-c",
                &conns.to_string(),
                "-d",
                &format!("{}s", o.seconds),
                "--timeout",
                "2s",
                "--latency",
            ]);
            if close {
                c.args(["-H", "Connection: close"]);
            }
            c.arg(format!("http://{t}:{HTTP_PORT}/"));
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .context("start wrk")
        })
        .collect::<Result<_>>()?;
    let mut reports = Vec::new();
    for c in children {
        let out = c.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "wrk failed ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        reports.push(wrk::parse(&text).with_context(|| format!("wrk output:\n{text}"))?);
    }
    wrk::combine(&reports).context("no wrk run")
}

/// `self_exe udp-load` in the client namespace; its JSON report.
fn udp_load(
    o: &Options,
    net: &Net,
    targets: &[String],
    seconds: f64,
    flows: u32,
) -> Result<UdpReport> {
    let mut c = net.command("c", &o.self_exe.display().to_string());
    c.args([
        "udp-load",
        "--seconds",
        &seconds.to_string(),
        "--flows",
        &flows.to_string(),
    ]);
    for t in targets {
        c.args(["--target", &format!("{t}:{UDP_PORT}")]);
    }
    let out = net::run(&mut c)?;
    serde_json::from_str(&out).with_context(|| format!("udp-load output: {out}"))
}

/// The director namespace as a kernel router: its addresses on d0/d1, forwarding on, ARP
/// answered, no reverse-path filter; `vip` puts the VIP on d0 too.
fn kernel_mode(net: &Net, vip: bool) -> Result<()> {
    net.sh("d", "ip", &["addr", "add", "198.18.0.1/24", "dev", "d0"])?;
    net.sh("d", "ip", &["addr", "add", "198.18.1.1/24", "dev", "d1"])?;
    if vip {
        net.sh(
            "d",
            "ip",
            &["addr", "add", &format!("{VIP}/32"), "dev", "d0"],
        )?;
    }
    net.sh(
        "d",
        "sysctl",
        &[
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.d0.rp_filter=0",
            "net.ipv4.conf.d1.rp_filter=0",
            "net.ipv4.conf.d0.arp_ignore=0",
            "net.ipv4.conf.d1.arp_ignore=0",
        ],
    )?;
    net.flush_neighbours();
    Ok(())
}

/// Back to what the test network leaves for rvs: no kernel addresses on d0/d1, no
/// forwarding, no ARP answers (`testnet.sh`'s `dpdk_only`).
fn dpdk_mode(net: &Net) -> Result<()> {
    for dev in ["d0", "d1"] {
        net.sh("d", "ip", &["addr", "flush", "dev", dev])?;
    }
    net.sh(
        "d",
        "sysctl",
        &[
            "-qw",
            "net.ipv4.ip_forward=0",
            "net.ipv4.conf.d0.rp_filter=1",
            "net.ipv4.conf.d1.rp_filter=1",
            "net.ipv4.conf.d0.arp_ignore=8",
            "net.ipv4.conf.d1.arp_ignore=8",
        ],
    )?;
    Ok(())
}

fn behind_vip(name: &str, cannot: Vec<(Load, String)>, proc: Option<(&str, u32)>) -> Running {
    Running {
        name: name.to_owned(),
        proc_name: proc.map(|(n, _)| n.to_owned()),
        pid: proc.map(|(_, p)| p),
        http_targets: vec![VIP.to_owned()],
        udp_targets: vec![VIP.to_owned()],
        cannot,
        rvs: None,
    }
}

/// nftables ruleset: DNAT of the VIP's TCP and UDP ports to the servers in turn.
pub fn nft_ruleset(rips: [&str; 2]) -> String {
    let map = format!("{{ 0 : {}, 1 : {} }}", rips[0], rips[1]);
    format!(
        "table ip rvscompare {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n\
         \x20   ip daddr {VIP} tcp dport {HTTP_PORT} dnat to numgen inc mod 2 map {map}\n\
         \x20   ip daddr {VIP} udp dport {UDP_PORT} dnat to numgen inc mod 2 map {map}\n  }}\n}}\n"
    )
}

fn nftables(net: &Net, name: &str) -> Result<Running> {
    kernel_mode(net, true)?;
    let path = net.state().join("nft.rules");
    std::fs::write(&path, nft_ruleset(RIPS_NAT))?;
    net.sh("d", "nft", &["-f", &path.display().to_string()])?;
    Ok(behind_vip(name, vec![], None))
}

/// Why the kernel's IPVS cannot run here, or None.
fn ipvs_unavailable(ipvsadm: &Path) -> Option<String> {
    match Command::new("modprobe").arg("ip_vs").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Some(format!(
                "modprobe ip_vs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Err(e) => return Some(format!("cannot run modprobe: {e}")),
    }
    if !ipvsadm.exists() {
        return Some(format!(
            "the kernel's ipvsadm ({}) is not installed (Debian package ipvsadm)",
            ipvsadm.display()
        ));
    }
    None
}

fn ipvs(net: &Net, name: &str, ipvsadm: &Path) -> Result<Running> {
    kernel_mode(net, true)?;
    let adm = ipvsadm.display().to_string();
    for (flag, port) in [("-t", HTTP_PORT), ("-u", UDP_PORT)] {
        let vs = format!("{VIP}:{port}");
        net.sh("d", &adm, &["-A", flag, &vs, "-s", "rr"])?;
        for r in RIPS_NAT {
            net.sh(
                "d",
                &adm,
                &["-a", flag, &vs, "-r", &format!("{r}:{port}"), "-m"],
            )?;
        }
    }
    Ok(behind_vip(name, vec![], None))
}

/// HAProxy's configuration: `mode tcp`, round robin over the two servers, `threads` threads.
pub fn haproxy_conf(threads: u32, rips: [&str; 2]) -> String {
    format!(
        "global\n    maxconn 8000\n    nbthread {threads}\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend vip\n    bind {VIP}:{HTTP_PORT}\n    default_backend servers\n\n\
         backend servers\n    balance roundrobin\n    server rs1 {}:{HTTP_PORT}\n    server rs2 {}:{HTTP_PORT}\n",
        rips[0], rips[1]
    )
}

fn haproxy(net: &mut Net, name: &str, threads: u32) -> Result<Running> {
    kernel_mode(net, true)?;
    let path = net.state().join("haproxy.cfg");
    std::fs::write(&path, haproxy_conf(threads, RIPS_NAT))?;
    let pid = net.spawn(
        "d",
        "haproxy",
        Path::new("haproxy"),
        &["-f", &path.display().to_string(), "-db"],
    )?;
    net.wait_tcp_listen("d", HTTP_PORT, "haproxy")?;
    Ok(behind_vip(
        name,
        vec![(
            Load::Udp,
            "HAProxy balances TCP (mode tcp) and HTTP only".to_owned(),
        )],
        Some(("haproxy", pid)),
    ))
}

/// `[dpdk] cores` for `workers` workers: `0-1` for one, else workers spread over CPUs 0 and 1
/// after the control lcore (as the tests run more workers than CPUs).
fn cores(workers: u32) -> String {
    if workers <= 1 {
        return "0-1".to_owned();
    }
    let mut s = "0@0".to_owned();
    for w in 1..=workers {
        s.push_str(&format!(",{w}@{}", w % 2));
    }
    s
}

/// rvsd's configuration: af_packet ports on d0 (and d1 unless `one_port`), the director's
/// addresses, a table for a million connections (a 10 s new-connection run leaves about 100K in
/// TIME_WAIT), IPVS's timeouts.
pub fn rvsd_conf(socket: &Path, one_port: bool, workers: u32, idle_sleep_us: u32) -> String {
    let mut c = format!(
        "[dpdk]\ncores = \"{}\"\nargs = [\"--no-huge\", \"-m\", \"256\", \"--no-shconf\", \"--no-telemetry\"]\n",
        cores(workers)
    );
    let ports: &[(u32, &str, &str)] = if one_port {
        &[(0, "d0", "198.18.0.1/24")]
    } else {
        &[(0, "d0", "198.18.0.1/24"), (1, "d1", "198.18.1.1/24")]
    };
    for (i, iface, ip) in ports {
        c.push_str(&format!(
            "\n[[port]]\nname = \"dp{i}\"\ndevice = \"net_af_packet{i},iface={iface},qpairs={workers}\"\n\n[[addr]]\nport = \"dp{i}\"\nip = \"{ip}\"\n"
        ));
    }
    c.push_str(&format!(
        "\n[control]\nsocket = \"{}\"\n\n[dataplane]\nconn_capacity = 1048576\nidle_sleep_us = {idle_sleep_us}\n",
        socket.display()
    ));
    c
}

fn rvs(o: &Options, net: &mut Net, k: Kind, name: &str, b: &RvsBuild) -> Result<Running> {
    let dir = net.state().join("rvsd");
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("rvsd.sock");
    let _ = std::fs::remove_file(&socket);
    let conf = dir.join("rvsd.toml");
    std::fs::write(
        &conf,
        rvsd_conf(&socket, k == Kind::RvsDr, o.rvs_workers, o.idle_sleep_us),
    )?;
    let proc_name = format!(
        "rvsd-{}{}",
        match k {
            Kind::RvsNat => "nat",
            Kind::RvsFullnat => "fullnat",
            _ => "dr",
        },
        b.label
            .as_ref()
            .map(|l| format!("-{l}"))
            .unwrap_or_default()
    );
    let pid = net.spawn(
        "d",
        &proc_name,
        &b.rvsd,
        &[
            "--config",
            &conf.display().to_string(),
            "--log-level",
            "info",
        ],
    )?;
    let adm = |args: &[&str]| -> Result<String> {
        net::run(
            Command::new(&b.ipvsadm)
                .args(args)
                .env("RVS_SOCKET", &socket),
        )
    };
    net::wait_until(Duration::from_secs(30), "rvsd's control socket", || {
        net.check_alive(&proc_name)?;
        Ok(Command::new(&b.ipvsadm)
            .arg("-Ln")
            .env("RVS_SOCKET", &socket)
            .output()?
            .status
            .success())
    })?;
    let (rips, method) = match k {
        Kind::RvsNat => (RIPS_NAT, "-m"),
        Kind::RvsFullnat => (RIPS_NAT, "--fullnat"),
        _ => (RIPS_DR, "-g"),
    };
    for (flag, port) in [("-t", HTTP_PORT), ("-u", UDP_PORT)] {
        let vs = format!("{VIP}:{port}");
        adm(&["-A", flag, &vs, "-s", "rr"])?;
        for r in rips {
            adm(&["-a", flag, &vs, "-r", &format!("{r}:{port}"), method])?;
        }
        if k == Kind::RvsFullnat {
            for lip in LIPS {
                adm(&["-P", flag, &vs, "-z", lip, "-F", "dp1"])?;
            }
        }
    }
    let mut running = behind_vip(name, vec![], Some((&proc_name, pid)));
    running.rvs = Some((socket, b.rvsctl.clone()));
    Ok(running)
}

/// Parse `--target`-style `ADDR:PORT` lists.
pub fn parse_targets(v: &[String]) -> Result<Vec<SocketAddr>> {
    v.iter()
        .map(|t| {
            t.parse()
                .with_context(|| format!("--target {t:?}: expected ADDR:PORT"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_rules_dnat_both_protocols_to_both_servers() {
        let r = nft_ruleset(RIPS_NAT);
        assert!(
            r.contains(
                "tcp dport 8080 dnat to numgen inc mod 2 map { 0 : 198.18.1.11, 1 : 198.18.1.12 }"
            ),
            "{r}"
        );
        assert!(r.contains("udp dport 5300"), "{r}");
    }

    #[test]
    fn haproxy_is_tcp_round_robin() {
        let c = haproxy_conf(1, RIPS_NAT);
        assert!(c.contains("mode tcp"));
        assert!(c.contains("nbthread 1"));
        assert!(c.contains("bind 198.18.0.100:8080"));
        assert!(c.contains("server rs2 198.18.1.12:8080"));
    }

    #[test]
    fn rvsd_conf_ports_and_timeouts() {
        let c = rvsd_conf(Path::new("/tmp/s.sock"), false, 1, 50);
        assert!(c.contains("iface=d1,qpairs=1"), "{c}");
        assert!(c.contains("cores = \"0-1\""));
        assert!(!c.contains("[ipvs.timeouts]"), "IPVS's own timeouts: {c}");
        let dr = rvsd_conf(Path::new("/tmp/s.sock"), true, 2, 0);
        assert!(!dr.contains("iface=d1"), "{dr}");
        assert!(dr.contains("cores = \"0@0,1@1,2@0\""), "{dr}");
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_targets(&["198.18.0.100:5300".to_owned()]).unwrap()[0].port(),
            5300
        );
        assert!(parse_targets(&["198.18.0.100".to_owned()]).is_err());
    }
}
