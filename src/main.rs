//! rvsd: the rvs daemon.
//!
//! `--check-config FILE` validates a configuration (and its rules file) without starting EAL:
//! see `rvs::check`.
//!
//! Start-up order: configuration (every error names file and key) -> logging -> EAL -> mempool
//! -> ports -> service table (replaying `[ipvs] rules`, then the `--state-file` tables) ->
//! workers on their lcores (each first puts back its connections from the state file) -> ports
//! started -> control socket. Shutdown on SIGINT/SIGTERM runs it backwards: control socket
//! closed, workers stopped (each drops its queued packets), ports stopped and closed, then the
//! mempool is checked to have every mbuf back before EAL is cleaned up. SIGUSR2 is the same stop
//! with state: each worker exports its connections as it stops and the state file is written
//! (`rvs::state`). SIGHUP reloads the configuration file (`rvs::reload`).

use std::process::ExitCode;

use clap::Parser;
use rvs::cli::Cli;
use rvs::{config, runtime};

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
    // Under systemd (Type=notify): READY=1 once the control socket accepts connections.
    let _ready = rvs::systemd::notify_ready_when_listening(conf.socket.clone());
    let opts = runtime::RunOptions {
        state_file: cli.state_file.clone(),
    };
    match runtime::run(conf, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rvsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
