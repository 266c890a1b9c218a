//! rvs-bench: measure the real dataplane on real DPDK mbufs (issue 7). See `rvs::bench`.
//!
//! ```sh
//! sudo target/release/rvs-bench            # full run (a few minutes)
//! sudo target/release/rvs-bench --quick    # reduced set, under a minute
//! sudo target/release/rvs-bench --json     # machine-readable report on stdout
//! ```

use anyhow::Result;
use clap::Parser;
use rvs::bench::{self, Options};

#[derive(Debug, Parser)]
#[command(
    name = "rvs-bench",
    about = "Benchmark the rvs dataplane on DPDK vdevs"
)]
struct Cli {
    /// Reduced set: 1K and 1M connections, 0.25 s per case, smaller new-connection and scaling
    /// runs (about a minute).
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (with the human table on stdout).
    #[arg(long)]
    json_file: Option<std::path::PathBuf>,
    /// Measured seconds per case (default 2, or 0.25 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Established-connection counts, comma separated, plain or with a K (x1000) or M (x1000000)
    /// suffix (default 1K,100K,1M,10M; --quick 1K,1M).
    #[arg(long, value_delimiter = ',', value_parser = bench::report::parse_si)]
    sizes: Option<Vec<usize>>,
    /// Use hugepages (reserve them first in /sys/kernel/mm/hugepages) instead of --no-huge.
    #[arg(long)]
    hugepages: bool,
    /// Groups of cases to run, comma separated (default all): established, new, scaling,
    /// redirect. The generator, io-forward and memory ceilings always run.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(bench::GROUPS))]
    groups: Option<Vec<String>>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut opts = Options::new(cli.quick);
    if let Some(s) = cli.seconds {
        opts.seconds = s;
    }
    if let Some(s) = cli.sizes {
        opts.sizes = s;
    }
    opts.hugepages = cli.hugepages;
    if let Some(g) = cli.groups {
        opts.groups = g;
    }
    let report = bench::run_with_progress(&opts)?;
    if let Some(path) = &cli.json_file {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
