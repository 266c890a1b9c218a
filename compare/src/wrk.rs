//! wrk's text report (wrk 4.x with `--latency`) read into numbers.
//!
//! wrk prints durations with a unit (`us`, `ms`, `s`, `m`, `h`) and counts as plain integers; the
//! lines read here are the request total and duration, the latency distribution, socket errors
//! and non-2xx/3xx responses. Anything else in the report is ignored.

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
}

/// What one wrk run reported.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkReport {
    pub requests: u64,
    pub seconds: f64,
    pub latency_us: Percentiles,
    /// connect + read + write + timeout socket errors.
    pub socket_errors: u64,
    /// Responses that were not 2xx or 3xx.
    pub bad_responses: u64,
}

/// A wrk duration (`812.00us`, `1.20ms`, `2.00s`, `1.00m`, `1.00h`) in microseconds.
pub fn parse_duration_us(s: &str) -> Result<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600e6)
    } else {
        bail!("wrk duration without a unit: {s:?}");
    };
    let v: f64 = num
        .parse()
        .with_context(|| format!("wrk duration {s:?}: not a number"))?;
    // wrk prints two decimals: round away the float error of the unit's multiplication.
    Ok((v * mult * 1e3).round() / 1e3)
}

/// Parse wrk's report. Fails when the request total or the latency distribution (`--latency`)
/// is missing, naming what was not found.
pub fn parse(text: &str) -> Result<WrkReport> {
    let mut requests = None;
    let mut seconds = None;
    let mut pct: [Option<f64>; 4] = [None; 4];
    let mut socket_errors = 0;
    let mut bad_responses = 0;
    for line in text.lines() {
        let t = line.trim();
        let f: Vec<&str> = t.split_whitespace().collect();
        // "15000 requests in 2.00s, 3.50MB read"
        if f.len() >= 4 && f[1] == "requests" && f[2] == "in" {
            requests = Some(
                f[0].parse::<u64>()
                    .with_context(|| format!("wrk request count in {t:?}"))?,
            );
            seconds = Some(parse_duration_us(f[3].trim_end_matches(','))? / 1e6);
        } else if let Some(rest) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in rest.split(',') {
                let n = part
                    .split_whitespace()
                    .nth(1)
                    .with_context(|| format!("wrk socket errors: {t:?}"))?;
                socket_errors += n
                    .parse::<u64>()
                    .with_context(|| format!("wrk socket errors: {t:?}"))?;
            }
        } else if let Some(rest) = t.strip_prefix("Non-2xx or 3xx responses:") {
            bad_responses = rest
                .trim()
                .parse()
                .with_context(|| format!("wrk non-2xx count: {t:?}"))?;
        } else if f.len() == 2 && f[0].ends_with('%') {
            let slot = match f[0] {
                "50%" => 0,
                "75%" => 1,
                "90%" => 2,
                "99%" => 3,
                _ => continue,
            };
            pct[slot] = Some(parse_duration_us(f[1])?);
        }
    }
    let requests = requests.context("wrk output has no \"N requests in T\" line")?;
    let seconds = seconds.context("wrk output has no duration")?;
    let missing = || "wrk output has no latency distribution (run wrk with --latency)";
    Ok(WrkReport {
        requests,
        seconds,
        latency_us: Percentiles {
            p50: pct[0].context(missing())?,
            p75: pct[1].context(missing())?,
            p90: pct[2].context(missing())?,
            p99: pct[3].context(missing())?,
        },
        socket_errors,
        bad_responses,
    })
}

/// Several wrk runs at once (one per real server for plain routing) as one: requests and errors
/// add up, the duration is the longest, and each percentile is the worst of the runs (an upper
/// bound of the combined distribution's).
pub fn combine(runs: &[WrkReport]) -> Option<WrkReport> {
    let first = runs.first()?;
    let mut out = first.clone();
    for r in &runs[1..] {
        out.requests += r.requests;
        out.seconds = out.seconds.max(r.seconds);
        out.socket_errors += r.socket_errors;
        out.bad_responses += r.bad_responses;
        let (a, b) = (&mut out.latency_us, &r.latency_us);
        a.p50 = a.p50.max(b.p50);
        a.p75 = a.p75.max(b.p75);
        a.p90 = a.p90.max(b.p90);
        a.p99 = a.p99.max(b.p99);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("812.00us").unwrap(), 812.0);
        assert_eq!(parse_duration_us("1.50ms").unwrap(), 1500.0);
        assert_eq!(parse_duration_us("2.00s").unwrap(), 2e6);
        assert_eq!(parse_duration_us("1.00m").unwrap(), 60e6);
        assert!(parse_duration_us("12").is_err());
        assert!(parse_duration_us("x.yms").is_err());
    }

    #[test]
    fn no_latency_distribution_is_an_error() {
        let text = "Running 1s test @ http://198.18.0.100:8080/\n  100 requests in 1.00s, 20KB read\nRequests/sec: 100.00\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("--latency"), "{e}");
    }

    #[test]
    fn combine_adds_and_takes_worst() {
        let a = WrkReport {
            requests: 10,
            seconds: 1.0,
            latency_us: Percentiles {
                p50: 1.0,
                p75: 2.0,
                p90: 3.0,
                p99: 9.0,
            },
            socket_errors: 1,
            bad_responses: 0,
        };
        let b = WrkReport {
            requests: 5,
            seconds: 1.1,
            latency_us: Percentiles {
                p50: 2.0,
                p75: 1.0,
                p90: 4.0,
                p99: 5.0,
            },
            socket_errors: 0,
            bad_responses: 2,
        };
        let c = combine(&[a, b]).unwrap();
        assert_eq!((c.requests, c.socket_errors, c.bad_responses), (15, 1, 2));
        assert_eq!(c.seconds, 1.1);
        assert_eq!(
            c.latency_us,
            Percentiles {
                p50: 2.0,
                p75: 2.0,
                p90: 4.0,
                p99: 9.0
            }
        );
        assert!(combine(&[]).is_none());
    }
}
