//! rvsd: the rvs daemon.
//!
//! `--check-config FILE` validates a configuration (and its rules file) without starting EAL:
//! see `rvs::check`.
//!
//! Start-up order: configuration (every error names file and key) -> logging -> EAL -> mempool
//! -> ports -> service table (replaying `[ipvs] rules`) -> workers on their lcores -> control
//! socket. Shutdown on SIGINT/SIGTERM runs it backwards: control socket closed, workers stopped
//! (each drops its queued packets), ports stopped and closed, then the mempool is checked to have
//! every mbuf back before EAL is cleaned up.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rvs::{config, runtime};

/// rvs: a kernel-bypass Layer-4 load balancer (an LVS director) on DPDK.
#[derive(Debug, Parser)]
#[command(name = "rvsd", version = version(), about, long_about = None)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(short, long, value_name = "FILE", default_value = "/etc/rvs/rvsd.toml")]
    config: PathBuf,
    /// Log level or filter (`info`, `debug`, `rvs=debug`); `RUST_LOG` is used when unset.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Check the configuration file (`--config`) and exit; the same as `--check-config FILE`.
    #[arg(long)]
    check: bool,
    /// Validate FILE and the `[ipvs] rules` file it names without starting EAL or touching a
    /// NIC, print a one-line summary and exit: 0 when valid, 2 with the reason otherwise.
    #[arg(long, value_name = "FILE", conflicts_with = "check")]
    check_config: Option<PathBuf>,
}

fn version() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("RVS_GIT_COMMIT"), ")")
}

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let check = match (&cli.check_config, cli.check) {
        (Some(file), _) => Some(file),
        (None, true) => Some(&cli.config),
        (None, false) => None,
    };
    if let Some(file) = check {
        return match rvs::check::check_config(file) {
            Ok(summary) => {
                println!("{}: ok ({summary})", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rvsd: {e}");
                ExitCode::from(2)
            }
        };
    }
    let conf = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvsd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(cli.log_level.as_deref());
    match runtime::run(conf) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rvsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
