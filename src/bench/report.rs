//! Results: rows as a human table (printed as they come, then whole) and as JSON.

use serde::Serialize;

use super::Options;

/// One measured case.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub group: String,
    pub case: String,
    pub workers: usize,
    pub packets: u64,
    /// Whole loop per packet, generator included.
    pub loop_cycles_per_packet: f64,
    /// Per packet with the generator's cost subtracted (per worker core).
    pub cycles_per_packet: f64,
    /// Loop minus the io-forward loop: the dataplane's own cost.
    pub dataplane_cycles_per_packet: f64,
    pub mpps_per_core: f64,
    pub mpps_total: f64,
    /// This loop's rate over the io-forward loop's (same generator, same vdevs).
    pub ratio_to_iofwd: f64,
    /// `mpps_per_core` over the memory ceiling's packet rate ([`Limits::mpps_ceiling`]), for
    /// the rows that run the dataplane (`None` for the generator and the ceilings).
    pub ratio_to_memory: Option<f64>,
    /// New-connection runs: connections (SYN + RST) per second per core.
    pub conns_per_sec_per_core: Option<f64>,
    /// Packets dropped by the worker or not taken by tx during the measurement (should be 0).
    pub drops: u64,
    /// Redirect runs: packets handed to the other worker through the ring (all workers).
    pub redirected: Option<u64>,
    pub note: String,
}

/// Memory of one worker holding `conns` connections.
#[derive(Debug, Clone, Serialize)]
pub struct MemRow {
    pub conns: usize,
    /// Configured `conn_capacity` (the smallest that holds them).
    pub capacity: usize,
    /// `ConnTable::memory_bytes()`: slab + index + timer wheel.
    pub table_bytes: usize,
    pub table_bytes_per_conn: f64,
    /// Growth of the process's resident set from before the worker was built to after its
    /// connections were established.
    pub rss_delta_bytes: u64,
    pub rss_bytes_per_conn: f64,
    pub setup_seconds: f64,
}

impl MemRow {
    pub fn new(
        conns: usize,
        capacity: usize,
        table_bytes: usize,
        rss: u64,
        setup_seconds: f64,
    ) -> MemRow {
        MemRow {
            conns,
            capacity,
            table_bytes,
            table_bytes_per_conn: table_bytes as f64 / conns.max(1) as f64,
            rss_delta_bytes: rss,
            rss_bytes_per_conn: rss as f64 / conns.max(1) as f64,
            setup_seconds,
        }
    }
}

/// The memory ceiling, measured in the same run: random cache-line reads over a buffer the size
/// of the 1M-connection table, with software prefetch ahead, on transparent huge pages where the
/// kernel allows them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    pub buffer_bytes: usize,
    /// How the buffer size was chosen (e.g. `ConnTable::new(1M).memory_bytes()`).
    pub buffer_is: String,
    /// Reads issued this many reads ahead of use (`prefetcht0`).
    pub prefetch_distance: usize,
    pub reads: u64,
    pub reads_per_sec: f64,
    /// Cache lines a packet is assumed to need (connection index + record).
    pub lines_per_packet: f64,
    /// `reads_per_sec / lines_per_packet`, in Mpps: the packet rate memory allows one core.
    pub mpps_ceiling: f64,
    /// `/sys/kernel/mm/transparent_hugepage/enabled` (the selected mode).
    pub thp_enabled: String,
    /// Whether `madvise(MADV_HUGEPAGE)` on the buffer succeeded.
    pub thp_advised: bool,
    /// Growth of `AnonHugePages` (`/proc/self/smaps_rollup`) while the buffer was filled: how
    /// much of it the kernel actually backed with huge pages.
    pub huge_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub tsc_hz: u64,
    pub dpdk: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub quick: bool,
    pub seconds_per_case: f64,
    pub frame_bytes: usize,
    pub burst: usize,
    pub rows: Vec<Row>,
    pub memory: Vec<MemRow>,
    pub limits: Option<Limits>,
    pub notes: Vec<String>,
    #[serde(skip)]
    printed: usize,
    #[serde(skip)]
    pub progress: bool,
}

/// The inverse of [`si`]: "1K" -> 1000, "10M" -> 10_000_000, "2500" -> 2500 (suffixes K and M,
/// either case, powers of 1000; at least 1).
pub fn parse_si(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1_000),
        Some(b'm' | b'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (t, 1),
    };
    let bad = || {
        format!(
            "invalid count {s:?}: expected a positive whole number with an optional K (x1000) or \
             M (x1000000) suffix, e.g. 1K,100K,1M,10M or 2500"
        )
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)?;
    if n == 0 {
        return Err(bad());
    }
    Ok(n)
}

/// 1000 -> "1K", 10_000_000 -> "10M".
pub fn si(n: u64) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n % 1000 == 0 {
        format!("{}K", n / 1000)
    } else {
        n.to_string()
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

impl Report {
    pub fn new(opts: &Options, tsc_hz: u64) -> Report {
        Report {
            machine: Machine {
                cpu: cpu_model(),
                // Not available_parallelism(): the EAL pinned this thread to one CPU.
                cpus: std::fs::read_to_string("/proc/cpuinfo").map_or(0, |s| {
                    s.lines().filter(|l| l.starts_with("processor")).count()
                }),
                tsc_hz,
                dpdk: dpdk_bindings::version(),
            },
            quick: opts.quick,
            seconds_per_case: opts.seconds,
            frame_bytes: 64,
            burst: dpdk_bindings::BURST,
            rows: Vec::new(),
            memory: Vec::new(),
            limits: None,
            notes: Vec::new(),
            printed: 0,
            progress: false,
        }
    }

    fn header() -> String {
        format!(
            "{:<12} {:<48} {:>3} {:>9} {:>8} {:>8} {:>9} {:>6} {:>6} {:>9} {:>5}",
            "group",
            "case",
            "wrk",
            "Mpps/core",
            "cyc/pkt",
            "+cyc/io",
            "Mpps tot",
            "r/io",
            "r/mem",
            "conns/s",
            "drops"
        )
    }

    fn line(r: &Row) -> String {
        format!(
            "{:<12} {:<48} {:>3} {:>9.2} {:>8.1} {:>8.1} {:>9.2} {:>6.3} {:>6} {:>9} {:>5}{}",
            r.group,
            r.case,
            r.workers,
            r.mpps_per_core,
            r.cycles_per_packet,
            r.dataplane_cycles_per_packet,
            r.mpps_total,
            r.ratio_to_iofwd,
            r.ratio_to_memory.map_or("-".into(), |x| format!("{x:.3}")),
            r.conns_per_sec_per_core
                .map_or("-".into(), |c| format!("{:.2}M", c / 1e6)),
            r.drops,
            if r.note.is_empty() {
                String::new()
            } else {
                format!("  {}", r.note)
            }
        )
    }

    /// Print rows not printed yet (to stderr, so `--json` stdout stays clean).
    pub fn print_progress(&mut self) {
        if !self.progress {
            return;
        }
        if self.printed == 0 && !self.rows.is_empty() {
            eprintln!("{}", Self::header());
        }
        for r in &self.rows[self.printed..] {
            eprintln!("{}", Self::line(r));
        }
        self.printed = self.rows.len();
    }

    /// The whole report as a human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        s += &format!(
            "rvs-bench: {} ({} CPUs, TSC {:.3} GHz), {}; {}-byte frames, burst {}, {} s per case{}\n\n",
            m.cpu,
            m.cpus,
            m.tsc_hz as f64 / 1e9,
            m.dpdk,
            self.frame_bytes,
            self.burst,
            self.seconds_per_case,
            if self.quick { " (--quick)" } else { "" }
        );
        s += &Self::header();
        s.push('\n');
        for r in &self.rows {
            s += &Self::line(r);
            s.push('\n');
        }
        s += "\nmemory per connection (one worker, NAT, established):\n";
        s += &format!(
            "{:>10} {:>10} {:>12} {:>10} {:>12} {:>10} {:>8}\n",
            "conns", "capacity", "table MB", "table B/c", "RSS +MB", "RSS B/c", "setup s"
        );
        for m in &self.memory {
            s += &format!(
                "{:>10} {:>10} {:>12.1} {:>10.1} {:>12.1} {:>10.1} {:>8.1}\n",
                si(m.conns as u64),
                si(m.capacity as u64),
                m.table_bytes as f64 / 1e6,
                m.table_bytes_per_conn,
                m.rss_delta_bytes as f64 / 1e6,
                m.rss_bytes_per_conn,
                m.setup_seconds
            );
        }
        if let Some(l) = &self.limits {
            s += &format!(
                "\nmemory ceiling: {:.1}M random 64 B reads/s over {:.1} MB ({}), prefetch {} ahead; THP {} \
                 (advice {}, {:.1} MB huge): {:.1} Mpps at {} lines/packet\n",
                l.reads_per_sec / 1e6,
                l.buffer_bytes as f64 / 1e6,
                l.buffer_is,
                l.prefetch_distance,
                l.thp_enabled,
                if l.thp_advised { "taken" } else { "refused" },
                l.huge_bytes as f64 / 1e6,
                l.mpps_ceiling,
                l.lines_per_packet
            );
        }
        s += "\ncyc/pkt, Mpps/core: per worker core, generator cost subtracted; +cyc/io: cycles per packet over the\n\
              io-forward loop (what processing adds); r/io: loop rate over the io-forward loop's rate, generator in both;\n\
              r/mem: Mpps/core over the memory ceiling (random cache-line reads/s with prefetch, 2 lines per packet).\n";
        for n in &self.notes {
            s += &format!("note: {n}\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_si_takes_what_si_prints() {
        for n in [1_000, 100_000, 1_000_000, 10_000_000, 2_500, 1] {
            assert_eq!(parse_si(&si(n as u64)), Ok(n));
        }
        assert_eq!(parse_si("1k"), Ok(1_000));
        assert_eq!(parse_si("10m"), Ok(10_000_000));
        assert_eq!(parse_si(" 100K "), Ok(100_000));
        assert_eq!(parse_si("250000"), Ok(250_000));
    }

    #[test]
    fn parse_si_refuses_clearly() {
        for bad in [
            "",
            "K",
            "0",
            "0K",
            "1.5M",
            "-1K",
            "1G",
            "1KB",
            "1 K",
            "abc",
            "99999999999999999999M",
        ] {
            let e = parse_si(bad).unwrap_err();
            assert!(
                e.contains("invalid count") && e.contains("1K,100K,1M,10M"),
                "{bad}: {e}"
            );
        }
    }
}
