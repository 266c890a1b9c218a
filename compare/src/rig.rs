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
use crate::directors::{self, Running};
use crate::machine::Machine;
use crate::net::{self, HTTP_PORT, Net, UDP_PORT, VIP};
use crate::report::{self, Comparison, Diagnostic, Load, Measurement, ROUTING, Settings, Skipped};
use crate::udp::UdpReport;
use crate::wrk;

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

    pub(crate) fn is_rvs(self) -> bool {
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
        Kind::Routing => directors::kernel_mode(net, false).map(|()| Running {
            name: name.clone(),
            proc_name: None,
            pid: None,
            http_targets: directors::RIPS_NAT.iter().map(|r| r.to_string()).collect(),
            udp_targets: directors::RIPS_NAT.iter().map(|r| r.to_string()).collect(),
            cannot: vec![],
            rvs: None,
        }),
        Kind::Nftables => directors::nftables(net, &name),
        Kind::Ipvs => match directors::ipvs_unavailable(&o.kernel_ipvsadm) {
            Some(reason) => {
                eprintln!("   skipped: {reason}");
                skipped.push(Skipped {
                    director: name,
                    load: None,
                    reason,
                });
                return Ok(());
            }
            None => directors::ipvs(net, &name, &o.kernel_ipvsadm),
        },
        Kind::Haproxy => directors::haproxy(net, &name, o.haproxy_threads),
        Kind::RvsNat | Kind::RvsFullnat | Kind::RvsDr => directors::rvs(
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
            directors::teardown(o, net, k);
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
    directors::teardown(o, net, k);
    outcome.with_context(|| format!("loads through {name}"))
}

/// A director's name in the results: the kind's, with `[label]` for A/B builds.
fn display_name(k: Kind, build: Option<&RvsBuild>) -> String {
    match build.and_then(|b| b.label.as_ref()) {
        Some(l) => format!("{} [{l}]", k.name()),
        None => k.name().to_owned(),
    }
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
    fn targets() {
        assert_eq!(
            parse_targets(&["198.18.0.100:5300".to_owned()]).unwrap()[0].port(),
            5300
        );
        assert!(parse_targets(&["198.18.0.100".to_owned()]).is_err());
    }
}
