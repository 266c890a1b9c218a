//! A comparison's results: one [`Measurement`] per director and load, their ratios to plain
//! routing from the same run, the terminal table and the JSON document.

use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::wrk::Percentiles;

/// The director that plain-routing ratios are taken against.
pub const ROUTING: &str = "kernel routing";

/// The client loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Load {
    /// wrk, HTTP/1.1 keep-alive connections.
    HttpKeepalive,
    /// wrk with `Connection: close`: a new TCP connection per request.
    HttpClose,
    /// UDP request/response flows (`rvs-compare udp-load`).
    Udp,
}

impl Load {
    pub const ALL: [Load; 3] = [Load::HttpKeepalive, Load::HttpClose, Load::Udp];

    pub fn name(self) -> &'static str {
        match self {
            Load::HttpKeepalive => "http-keepalive",
            Load::HttpClose => "http-close",
            Load::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Result<Load, String> {
        Load::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown load {s:?} (http-keepalive, http-close, udp)"))
    }
}

/// One load through one director.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Measurement {
    pub director: String,
    pub load: Load,
    /// Requests answered (HTTP responses, UDP answers).
    pub requests: u64,
    /// Requests that failed: socket errors, non-2xx/3xx responses, UDP requests not answered.
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub latency_us: Percentiles,
    /// CPU seconds of the director's own process (rvsd, haproxy) over the run; `None` where the
    /// director is the kernel (its work runs in softirq, charged to whoever sent the packet).
    pub director_cpu_seconds: Option<f64>,
    /// Busy CPU seconds of the whole machine over the run (client, servers, director, and
    /// whatever else the machine ran meanwhile).
    pub machine_cpu_seconds: f64,
    /// Softirq CPU seconds of the whole machine over the run.
    pub softirq_seconds: f64,
    /// `requests_per_sec` over plain routing's for the same load in the same run.
    pub ratio_to_routing: Option<f64>,
    /// Answers per real server where the load can tell (UDP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_server: Vec<(String, u64)>,
}

impl Measurement {
    pub fn director_cpu_us_per_request(&self) -> Option<f64> {
        let c = self.director_cpu_seconds?;
        (self.requests > 0).then(|| c * 1e6 / self.requests as f64)
    }

    pub fn machine_cpu_us_per_request(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.machine_cpu_seconds * 1e6 / self.requests as f64)
    }
}

/// A director the run left out, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Skipped {
    pub director: String,
    /// `None`: every load; else the one load left out.
    pub load: Option<Load>,
    pub reason: String,
}

/// What a director's own counters said after its loads (rvs: `rvsctl -s link show` and the
/// workers' exit summaries), for reading a result that looks wrong.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Diagnostic {
    pub director: String,
    pub text: Vec<String>,
}

/// How the run was made (what the JSON needs to be read without the command line).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    pub seconds_per_run: f64,
    pub http_connections: u32,
    pub wrk_threads: u32,
    pub udp_flows: u32,
    pub rvs_workers: u32,
    pub rvs_idle_sleep_us: u32,
    pub haproxy_threads: u32,
    pub nginx_workers: u32,
}

/// The whole comparison, as written to JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    pub machine: Machine,
    pub settings: Settings,
    pub results: Vec<Measurement>,
    pub skipped: Vec<Skipped>,
    /// Directors whose set-up or loads failed, with the error (the run went on without them).
    #[serde(default)]
    pub failures: Vec<Skipped>,
    #[serde(default)]
    pub diagnostics: Vec<Diagnostic>,
    pub notes: Vec<String>,
}

/// Fill `ratio_to_routing` of every measurement from the routing measurement of its load.
/// Without a routing measurement for a load (not run, or nothing answered) the ratio stays
/// `None`.
pub fn set_ratios(results: &mut [Measurement]) {
    let base: Vec<(Load, f64)> = results
        .iter()
        .filter(|m| m.director == ROUTING && m.requests_per_sec > 0.0)
        .map(|m| (m.load, m.requests_per_sec))
        .collect();
    for m in results.iter_mut() {
        m.ratio_to_routing = base
            .iter()
            .find(|(l, _)| *l == m.load)
            .map(|(_, b)| m.requests_per_sec / b);
    }
}

/// For A/B runs: `(method, load, b over a)` for every director named `"{method} [a]"` that has a
/// `"{method} [b]"` twin with the same load.
pub fn ab_ratios(results: &[Measurement]) -> Vec<(String, Load, f64)> {
    let mut out = Vec::new();
    for a in results {
        let Some(method) = a.director.strip_suffix(" [a]") else {
            continue;
        };
        let bname = format!("{method} [b]");
        let b = results
            .iter()
            .find(|b| b.director == bname && b.load == a.load);
        if let Some(b) = b.filter(|_| a.requests_per_sec > 0.0) {
            out.push((
                method.to_owned(),
                a.load,
                b.requests_per_sec / a.requests_per_sec,
            ));
        }
    }
    out
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.prec$}"))
}

impl Comparison {
    /// The terminal report: machine, one row per measurement, what was skipped, notes.
    pub fn table(&self) -> String {
        let mut s = self.machine.text();
        let st = &self.settings;
        s.push_str(&format!(
            "runs: {:.1} s each; wrk {} threads x {} connections; UDP {} flows; rvs {} worker(s), idle_sleep_us {}; haproxy nbthread {}; nginx {} worker(s) per real server\n\n",
            st.seconds_per_run,
            st.wrk_threads,
            st.http_connections,
            st.udp_flows,
            st.rvs_workers,
            st.rvs_idle_sleep_us,
            st.haproxy_threads,
            st.nginx_workers
        ));
        s.push_str(&format!(
            "{:<22} {:<15} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}\n",
            "director",
            "load",
            "req/s",
            "x routing",
            "p50 us",
            "p90 us",
            "p99 us",
            "errors",
            "dir us/r",
            "mach us/r",
            "requests"
        ));
        for m in &self.results {
            s.push_str(&format!(
                "{:<22} {:<15} {:>10.0} {:>9} {:>8.0} {:>8.0} {:>8.0} {:>8} {:>9} {:>9} {:>7}\n",
                m.director,
                m.load.name(),
                m.requests_per_sec,
                opt(m.ratio_to_routing, 3),
                m.latency_us.p50,
                m.latency_us.p90,
                m.latency_us.p99,
                m.errors,
                opt(m.director_cpu_us_per_request(), 1),
                opt(m.machine_cpu_us_per_request(), 1),
                m.requests
            ));
        }
        let ab = ab_ratios(&self.results);
        if !ab.is_empty() {
            s.push_str("\nA/B (requests/s of b over a):\n");
            for (method, load, r) in ab {
                s.push_str(&format!("  {method:<18} {:<15} {r:.3}\n", load.name()));
            }
        }
        for f in &self.failures {
            s.push_str(&format!("FAILED: {}: {}\n", f.director, f.reason));
        }
        for k in &self.skipped {
            let what = k.load.map_or("all loads", Load::name);
            s.push_str(&format!("skipped: {} ({what}): {}\n", k.director, k.reason));
        }
        s.push_str(
            "\ndir us/r: CPU microseconds of the director's process per request (/proc/PID/stat utime+stime); \
             mach us/r: busy CPU microseconds of the whole machine per request (/proc/stat), client and servers included\n",
        );
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        for d in &self.diagnostics {
            s.push_str(&format!("\n{} counters:\n", d.director));
            for t in &d.text {
                for l in t.lines() {
                    s.push_str(&format!("  {l}\n"));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn m(director: &str, load: Load, rps: f64) -> Measurement {
        Measurement {
            director: director.to_owned(),
            load,
            requests: (rps * 2.0) as u64,
            errors: 0,
            seconds: 2.0,
            requests_per_sec: rps,
            latency_us: Percentiles::default(),
            director_cpu_seconds: None,
            machine_cpu_seconds: 1.0,
            softirq_seconds: 0.1,
            ratio_to_routing: None,
            per_server: vec![],
        }
    }

    #[test]
    fn ratios_per_load_against_routing() {
        let mut r = vec![
            m(ROUTING, Load::HttpKeepalive, 1000.0),
            m(ROUTING, Load::Udp, 400.0),
            m("rvs NAT", Load::HttpKeepalive, 800.0),
            m("rvs NAT", Load::Udp, 500.0),
            m("rvs NAT", Load::HttpClose, 50.0),
        ];
        set_ratios(&mut r);
        assert_eq!(r[0].ratio_to_routing, Some(1.0));
        assert_eq!(r[2].ratio_to_routing, Some(0.8));
        assert_eq!(r[3].ratio_to_routing, Some(1.25));
        assert_eq!(r[4].ratio_to_routing, None, "no routing run for http-close");
    }

    #[test]
    fn ab_pairs() {
        let r = vec![
            m("rvs NAT [a]", Load::Udp, 100.0),
            m("rvs NAT [b]", Load::Udp, 150.0),
            m("rvs DR [a]", Load::Udp, 100.0),
        ];
        assert_eq!(ab_ratios(&r), vec![("rvs NAT".to_owned(), Load::Udp, 1.5)]);
    }

    #[test]
    fn cpu_per_request() {
        let mut x = m("haproxy", Load::HttpClose, 1000.0);
        x.director_cpu_seconds = Some(0.5);
        assert_eq!(x.director_cpu_us_per_request(), Some(250.0));
        assert_eq!(x.machine_cpu_us_per_request(), Some(500.0));
        x.requests = 0;
        assert_eq!(x.director_cpu_us_per_request(), None);
    }

    #[test]
    fn loads_by_name() {
        for l in Load::ALL {
            assert_eq!(Load::parse(l.name()), Ok(l));
        }
        assert!(Load::parse("tcp").is_err());
    }
}
