//! rvsd: the rvs daemon.
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
    #[arg(short, long, value_name = "FILE", default_value = "/etc/rvs/rvs.toml")]
    config: PathBuf,
    /// Log level or filter (`info`, `debug`, `rvs=debug`); `RUST_LOG` is used when unset.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Check the configuration file and exit.
    #[arg(long)]
    check: bool,
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
    let conf = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvsd: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("{}: ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
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
