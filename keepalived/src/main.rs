//! `rvs-keepalived`: keepalived's LVS half for rvsd (docs/keepalived.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rvs_keepalived::daemon::{Options, run};
use rvs_keepalived::load::load_file;
use rvs_keepalived::program::Socket;

/// Reads keepalived's virtual_server blocks, programs rvsd and health-checks the real servers.
#[derive(Debug, Parser)]
#[command(name = "rvs-keepalived", version)]
struct Cli {
    /// Configuration file (keepalived's syntax).
    #[arg(
        short = 'f',
        long = "use-file",
        default_value = "/etc/keepalived/keepalived.conf"
    )]
    file: PathBuf,
    /// Stay in the foreground (rvs-keepalived never forks; accepted for keepalived's scripts).
    #[arg(short = 'n', long = "dont-fork")]
    dont_fork: bool,
    /// Log to the console (stderr); rvs-keepalived always does, the journal keeps it.
    #[arg(short = 'l', long = "log-console")]
    log_console: bool,
    /// Detailed log: every failed check attempt, not only state changes.
    #[arg(short = 'D', long = "log-detail")]
    log_detail: bool,
    /// Check the configuration file and exit: 0 when it loads, 5 (keepalived's code) when not.
    #[arg(short = 't', long = "config-test")]
    config_test: bool,
    /// Only the checker half (keepalived's -C); the only half rvs-keepalived has.
    #[arg(short = 'C', long = "check")]
    check_only: bool,
    /// rvsd's control socket (default: $RVS_SOCKET, else /run/rvs/rvsd.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.log_detail { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let _ = (cli.dont_fork, cli.log_console, cli.check_only);
    if cli.config_test {
        return match load_file(&cli.file) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("warning: {w}");
                }
                let reals: usize = cfg.virtual_servers.iter().map(|v| v.reals.len()).sum();
                println!(
                    "{}: {} virtual servers, {} real servers: OK",
                    cli.file.display(),
                    cfg.virtual_servers.len(),
                    reals
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rvs-keepalived: {e}");
                ExitCode::from(5)
            }
        };
    }
    let control = cli.socket.unwrap_or_else(ctl::client::socket_path);
    let opts = Options {
        config: cli.file,
        control: control.clone(),
        metrics: cli.metrics,
    };
    let mut ctl = Socket::new(control);
    match run(&opts, &mut ctl) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-keepalived: {e:#}");
            ExitCode::from(1)
        }
    }
}
