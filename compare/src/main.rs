//! rvs-compare: see the crate documentation (`compare/src/lib.rs`) and the README's
//! "Against the kernel and HAProxy" section.
//!
//! ```sh
//! sudo target/release/rvs-compare run                    # every director, every load
//! sudo target/release/rvs-compare run --rvs-a OLD/rvsd --rvs-b NEW/rvsd   # A/B
//! target/release/rvs-compare plot --compare target/compare/compare.json --bench bench.json
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rvs_compare::report::{Comparison, Load};
use rvs_compare::rig::{self, Kind, RvsBuild};
use rvs_compare::{plot, udp};

#[derive(Debug, Parser)]
#[command(
    name = "rvs-compare",
    about = "rvs end to end against kernel routing, nftables, IPVS and HAProxy, with plots"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the comparison on a namespace test network (root).
    Run(Box<RunArgs>),
    /// Draw the plots again from JSON reports.
    Plot {
        /// A comparison's compare.json.
        #[arg(long)]
        compare: Option<PathBuf>,
        /// An `rvs-bench --json-file` report.
        #[arg(long)]
        bench: Option<PathBuf>,
        #[arg(long, default_value = "target/compare")]
        out: PathBuf,
    },
    /// UDP echo server (the rig runs it on each real server).
    UdpEcho {
        #[arg(long)]
        bind: std::net::SocketAddr,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 600.0)]
        max_seconds: f64,
    },
    /// UDP request/response load; prints a JSON report.
    UdpLoad {
        /// ADDR:PORT, repeated: flows are spread over the targets in turn.
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        #[arg(long, default_value_t = 8)]
        flows: usize,
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Wait at most this long for each answer.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Seconds per load and director (whole seconds: wrk's -d).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// wrk connections (split between the servers for plain routing; wrk's threads are capped
    /// at the connections).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=10000))]
    connections: u32,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    wrk_threads: u32,
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    udp_flows: u32,
    /// Loads, comma separated (default all).
    #[arg(long, value_delimiter = ',', value_parser = Load::parse)]
    loads: Option<Vec<Load>>,
    /// Directors, comma separated (default all).
    #[arg(long, value_delimiter = ',', value_enum)]
    directors: Option<Vec<Kind>>,
    /// rvsd to compare (default: the rvsd next to this program).
    #[arg(long)]
    rvsd: Option<PathBuf>,
    /// A/B: the first build's rvsd (its ipvsadm is the one next to it, if there is one).
    #[arg(long, requires = "rvs_b", conflicts_with = "rvsd")]
    rvs_a: Option<PathBuf>,
    /// A/B: the second build's rvsd.
    #[arg(long, requires = "rvs_a")]
    rvs_b: Option<PathBuf>,
    /// rvs's ipvsadm (default: next to rvsd, else next to this program).
    #[arg(long)]
    ipvsadm: Option<PathBuf>,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    rvs_workers: u32,
    /// rvsd's `[dataplane] idle_sleep_us` (the machine is shared: 0 would spin a core).
    #[arg(long, default_value_t = 50)]
    idle_sleep_us: u32,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    haproxy_threads: u32,
    /// The kernel's ipvsadm, for the IPVS director where ip_vs loads.
    #[arg(long, default_value = "/usr/sbin/ipvsadm")]
    kernel_ipvsadm: PathBuf,
    /// Where compare.json, compare.txt and the plots go.
    #[arg(long, default_value = "target/compare")]
    out: PathBuf,
    /// Also plot this `rvs-bench --json-file` report (bench-mpps.svg).
    #[arg(long)]
    bench: Option<PathBuf>,
    /// The repository (for scripts/testnet.sh); default: found from the current directory.
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Network id prefix (the pid is appended).
    #[arg(long, default_value = "cmp")]
    id: String,
}

fn find_repo() -> Result<PathBuf> {
    let mut d = std::env::current_dir()?;
    loop {
        if d.join("scripts/testnet.sh").exists() {
            return Ok(d);
        }
        if !d.pop() {
            anyhow::bail!(
                "scripts/testnet.sh not found above the current directory: run from the repository or pass --repo"
            );
        }
    }
}

fn beside(exe: &Path, name: &str) -> PathBuf {
    exe.with_file_name(name)
}

fn build(
    label: Option<&str>,
    rvsd: PathBuf,
    ipvsadm: Option<&PathBuf>,
    exe: &Path,
) -> Result<RvsBuild> {
    let rvsd = std::fs::canonicalize(&rvsd).with_context(|| format!("rvsd {}", rvsd.display()))?;
    let ipvsadm = match ipvsadm {
        Some(p) => p.clone(),
        None => {
            let next = beside(&rvsd, "ipvsadm");
            if next.exists() {
                next
            } else {
                beside(exe, "ipvsadm")
            }
        }
    };
    anyhow::ensure!(
        ipvsadm.exists(),
        "rvs's ipvsadm not found at {} (build the workspace, or pass --ipvsadm)",
        ipvsadm.display()
    );
    let rvsctl = Some(ipvsadm.with_file_name("rvsctl")).filter(|p| p.exists());
    Ok(RvsBuild {
        label: label.map(str::to_owned),
        rvsd,
        ipvsadm,
        rvsctl,
    })
}

fn write_outputs(c: &Comparison, out: &Path, bench: Option<&Path>) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let json = out.join("compare.json");
    std::fs::write(&json, serde_json::to_string_pretty(c)?)?;
    std::fs::write(out.join("compare.txt"), c.table())?;
    let mut files = vec![json, out.join("compare.txt")];
    files.extend(plot::comparison(c, out)?);
    if let Some(b) = bench {
        let p = out.join("bench-mpps.svg");
        plot::bench(&plot::BenchReport::read(b)?, &p)?;
        files.push(p);
    }
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::UdpEcho {
            bind,
            name,
            max_seconds,
        } => udp::echo(bind, &name, max_seconds),
        Cmd::UdpLoad {
            targets,
            flows,
            seconds,
            timeout_ms,
        } => {
            let t = rig::parse_targets(&targets)?;
            let r = udp::load(&t, flows, seconds, Duration::from_millis(timeout_ms))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::Plot {
            compare,
            bench,
            out,
        } => {
            anyhow::ensure!(
                compare.is_some() || bench.is_some(),
                "nothing to plot: pass --compare and/or --bench"
            );
            std::fs::create_dir_all(&out)?;
            if let Some(c) = compare {
                let text =
                    std::fs::read_to_string(&c).with_context(|| format!("read {}", c.display()))?;
                let cmp: Comparison = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a compare.json", c.display()))?;
                for f in plot::comparison(&cmp, &out)? {
                    eprintln!("wrote {}", f.display());
                }
            }
            if let Some(b) = bench {
                let p = out.join("bench-mpps.svg");
                plot::bench(&plot::BenchReport::read(&b)?, &p)?;
                eprintln!("wrote {}", p.display());
            }
            Ok(())
        }
        Cmd::Run(a) => {
            let uid = std::process::Command::new("id").arg("-u").output()?;
            anyhow::ensure!(
                String::from_utf8_lossy(&uid.stdout).trim() == "0",
                "rvs-compare run needs root: it makes network namespaces and runs rvsd on DPDK (sudo)"
            );
            let exe = std::env::current_exe()?;
            let builds = match (&a.rvs_a, &a.rvs_b) {
                (Some(x), Some(y)) => vec![
                    build(Some("a"), x.clone(), a.ipvsadm.as_ref(), &exe)?,
                    build(Some("b"), y.clone(), a.ipvsadm.as_ref(), &exe)?,
                ],
                _ => vec![build(
                    None,
                    a.rvsd.clone().unwrap_or_else(|| beside(&exe, "rvsd")),
                    a.ipvsadm.as_ref(),
                    &exe,
                )?],
            };
            let repo = match a.repo {
                Some(r) => r,
                None => find_repo()?,
            };
            let opts = rig::Options {
                repo: std::fs::canonicalize(&repo)?,
                self_exe: exe,
                id: a.id,
                seconds: a.seconds.max(1),
                connections: a.connections,
                wrk_threads: a.wrk_threads,
                udp_flows: a.udp_flows,
                loads: a.loads.unwrap_or_else(|| Load::ALL.to_vec()),
                directors: a.directors.unwrap_or_else(|| Kind::ALL.to_vec()),
                builds,
                rvs_workers: a.rvs_workers,
                idle_sleep_us: a.idle_sleep_us,
                haproxy_threads: a.haproxy_threads,
                kernel_ipvsadm: a.kernel_ipvsadm.clone(),
                logs: a.out.join("logs"),
            };
            let c = rig::run(&opts)?;
            print!("{}", c.table());
            write_outputs(&c, &a.out, a.bench.as_deref())?;
            if !c.failures.is_empty() {
                let names: Vec<&str> = c.failures.iter().map(|f| f.director.as_str()).collect();
                anyhow::bail!(
                    "{} director(s) failed: {} (errors above and in {})",
                    names.len(),
                    names.join(", "),
                    a.out.join("compare.txt").display()
                );
            }
            Ok(())
        }
    }
}
