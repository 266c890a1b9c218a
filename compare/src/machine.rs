//! The machine a comparison ran on, as the rig prints it: CPU model, cores, kernel, load at the
//! start, and the version of every peer (wrk, nginx, haproxy, nft, rvsd, DPDK).

use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
    /// /proc/loadavg's first three fields when the run started.
    pub load_at_start: String,
    /// `(program, version)`: what each peer says about itself.
    pub versions: Vec<(String, String)>,
}

/// First line of a command's output (stdout, or stderr where it prints there), or why not.
fn first_line(prog: &str, args: &[&str]) -> String {
    match Command::new(prog).args(args).output() {
        Ok(o) => {
            let out = String::from_utf8_lossy(&o.stdout);
            let err = String::from_utf8_lossy(&o.stderr);
            out.lines()
                .chain(err.lines())
                .find(|l| !l.trim().is_empty())
                .unwrap_or("(no output)")
                .trim()
                .to_owned()
        }
        Err(e) => format!("not found ({e})"),
    }
}

/// `model name` of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

impl Machine {
    /// Describe this machine; `rvsds` are the rvsd binaries of the run (label, path).
    pub fn describe(rvsds: &[(String, std::path::PathBuf)]) -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mut versions = vec![
            ("wrk".to_owned(), first_line("wrk", &["-v"])),
            ("nginx".to_owned(), first_line("nginx", &["-v"])),
            ("haproxy".to_owned(), first_line("haproxy", &["-v"])),
            ("nft".to_owned(), first_line("nft", &["--version"])),
            (
                "dpdk".to_owned(),
                first_line("pkg-config", &["--modversion", "libdpdk"]),
            ),
        ];
        for (label, bin) in rvsds {
            versions.push((
                format!("rvsd ({label})"),
                format!(
                    "{} [{}]",
                    first_line(&bin.display().to_string(), &["--version"]),
                    bin.display()
                ),
            ));
        }
        Machine {
            cpu: cpu_model(&read("/proc/cpuinfo")),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_at_start: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            versions,
        }
    }

    /// The lines the terminal report starts with.
    pub fn text(&self) -> String {
        let mut s = format!(
            "machine: {}, {} CPUs, Linux {}, load average at start {}\n",
            self.cpu, self.cpus, self.kernel, self.load_at_start
        );
        for (k, v) in &self.versions {
            s.push_str(&format!("  {k}: {v}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_name() {
        let t = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n";
        assert_eq!(cpu_model(t), "AMD EPYC 9B14");
        assert_eq!(cpu_model(""), "unknown CPU");
    }
}
