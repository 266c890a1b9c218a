//! CPU time, read from /proc: a process's own (utime + stime of all its threads, from
//! `/proc/PID/stat`) and the whole machine's (`/proc/stat`, busy = everything but idle and
//! iowait; softirq on its own, where the kernel's forwarding work is accounted when it is not
//! charged to the process that sent the packet).

use anyhow::{Context, Result};

/// Clock ticks per second of /proc's times (`getconf CLK_TCK`; 100 on Linux x86 and arm64).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of process `pid`, in seconds.
pub fn process_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_process_stat(&text).with_context(|| format!("parse {path}"))
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in seconds. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after its `)`.
pub fn parse_process_stat(text: &str) -> Result<f64> {
    let after = &text[text.rfind(')').context("no ')' after the command name")? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // after ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// The machine's CPU time so far, in seconds, summed over all CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineCpu {
    pub busy: f64,
    pub softirq: f64,
}

impl MachineCpu {
    pub fn now() -> Result<MachineCpu> {
        let text = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
        parse_proc_stat(&text)
    }

    pub fn since(self, before: MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy - before.busy,
            softirq: self.softirq - before.softirq,
        }
    }
}

/// The `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal ...
pub fn parse_proc_stat(text: &str) -> Result<MachineCpu> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat has no \"cpu \" line")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("/proc/stat cpu line")?;
    anyhow::ensure!(v.len() >= 8, "/proc/stat cpu line too short: {line}");
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    Ok(MachineCpu {
        busy: busy as f64 / TICKS_PER_SECOND,
        softirq: v[6] as f64 / TICKS_PER_SECOND,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stat_with_spaces_in_name() {
        // A real line of /proc/PID/stat (rvsd), with a made-up name holding ") (".
        let line = "4242 (rvs d) (x) S 1 4242 4242 0 -1 4194560 2311 0 0 0 1234 567 0 0 20 0 3 0 9999 1234567 890 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_process_stat(line).unwrap(), 18.01);
        assert!(parse_process_stat("12 (x) S 1").is_err());
    }

    #[test]
    fn proc_stat_busy_and_softirq() {
        let text = "cpu  100 5 50 1000 20 3 7 2 0 0\ncpu0 50 2 25 500 10 1 3 1 0 0\nintr 1 2 3\n";
        let m = parse_proc_stat(text).unwrap();
        assert_eq!(m.busy, (100 + 5 + 50 + 3 + 7 + 2) as f64 / 100.0);
        assert_eq!(m.softirq, 0.07);
        let later = MachineCpu {
            busy: m.busy + 1.5,
            softirq: m.softirq + 0.5,
        };
        assert_eq!(later.since(m).softirq, 0.5);
    }

    #[test]
    fn this_process_and_this_machine() {
        assert!(process_seconds(std::process::id()).unwrap() >= 0.0);
        assert!(MachineCpu::now().unwrap().busy > 0.0);
    }
}
