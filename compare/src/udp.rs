//! The UDP request/response load and its echo server, both bounded in time.
//!
//! The server answers every datagram with `NAME:` + the datagram. The client runs `flows`
//! closed-loop flows, each its own socket (its own source port, so a director sees one connection
//! per flow), spread over the targets in turn: send a sequence-numbered request, wait for its
//! answer (at most `timeout`), record the round trip, repeat until the deadline. A request
//! without an answer in time is counted lost and the flow goes on with the next one; a late
//! answer to an earlier request is counted stale and ignored.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::wrk::Percentiles;

/// Serve `bind` until `max_seconds` have passed (the rig kills the server earlier).
pub fn echo(bind: SocketAddr, name: &str, max_seconds: f64) -> Result<()> {
    let sock = UdpSocket::bind(bind).with_context(|| format!("udp-echo: bind {bind}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let deadline = Instant::now() + Duration::from_secs_f64(max_seconds);
    let prefix = format!("{name}:");
    let mut buf = [0u8; 2048];
    let mut out = Vec::with_capacity(2048 + prefix.len());
    eprintln!("udp-echo {name} ready on {bind}");
    while Instant::now() < deadline {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e).context("udp-echo: recv"),
        };
        out.clear();
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(&buf[..n]);
        // A full socket buffer loses an answer; the client counts it lost.
        let _ = sock.send_to(&out, peer);
    }
    Ok(())
}

/// What a UDP load run saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UdpReport {
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    pub stale: u64,
    pub seconds: f64,
    pub latency_us: Percentiles,
    /// Answers per server name (the `NAME:` prefix).
    pub per_server: BTreeMap<String, u64>,
}

/// Percentiles of `samples` (microseconds; sorted here). Nearest rank.
pub fn percentiles(samples: &mut [u32]) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let at = |p: f64| {
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        f64::from(samples[rank.clamp(1, samples.len()) - 1])
    };
    Percentiles {
        p50: at(50.0),
        p75: at(75.0),
        p90: at(90.0),
        p99: at(99.0),
    }
}

struct FlowResult {
    sent: u64,
    answered: u64,
    lost: u64,
    stale: u64,
    samples: Vec<u32>,
    per_server: BTreeMap<String, u64>,
}

fn flow(target: SocketAddr, deadline: Instant, timeout: Duration) -> Result<FlowResult> {
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(target)
        .with_context(|| format!("udp-load: connect {target}"))?;
    let mut r = FlowResult {
        sent: 0,
        answered: 0,
        lost: 0,
        stale: 0,
        samples: Vec::with_capacity(1 << 16),
        per_server: BTreeMap::new(),
    };
    let mut buf = [0u8; 2048];
    let mut seq: u64 = 0;
    while Instant::now() < deadline {
        seq += 1;
        let req = format!("req {seq:016}");
        let t0 = Instant::now();
        sock.send(req.as_bytes())?;
        r.sent += 1;
        let until = t0 + timeout;
        loop {
            let now = Instant::now();
            if now >= until {
                r.lost += 1;
                break;
            }
            sock.set_read_timeout(Some(until - now))?;
            match sock.recv(&mut buf) {
                Ok(n) => {
                    let got = &buf[..n];
                    let Some(colon) = got.iter().position(|&b| b == b':') else {
                        r.stale += 1;
                        continue;
                    };
                    if &got[colon + 1..] != req.as_bytes() {
                        r.stale += 1;
                        continue;
                    }
                    let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    r.samples.push(us);
                    r.answered += 1;
                    let name = String::from_utf8_lossy(&got[..colon]).into_owned();
                    *r.per_server.entry(name).or_default() += 1;
                    break;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                // ICMP port unreachable and the like: the request is lost.
                Err(_) => {
                    r.lost += 1;
                    std::thread::sleep(Duration::from_millis(1));
                    break;
                }
            }
        }
    }
    Ok(r)
}

/// Run `flows` flows over `targets` for `seconds`.
pub fn load(
    targets: &[SocketAddr],
    flows: usize,
    seconds: f64,
    timeout: Duration,
) -> Result<UdpReport> {
    anyhow::ensure!(!targets.is_empty(), "udp-load: no target");
    anyhow::ensure!(flows > 0, "udp-load: --flows must be at least 1");
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..flows)
        .map(|i| {
            let t = targets[i % targets.len()];
            std::thread::spawn(move || flow(t, deadline, timeout))
        })
        .collect();
    let mut rep = UdpReport::default();
    let mut samples = Vec::new();
    for h in handles {
        let r = h
            .join()
            .map_err(|_| anyhow::anyhow!("udp-load: a flow thread panicked"))??;
        rep.sent += r.sent;
        rep.answered += r.answered;
        rep.lost += r.lost;
        rep.stale += r.stale;
        samples.extend(r.samples);
        for (k, v) in r.per_server {
            *rep.per_server.entry(k).or_default() += v;
        }
    }
    rep.seconds = start.elapsed().as_secs_f64();
    rep.latency_us = percentiles(&mut samples);
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s: Vec<u32> = (1..=100).rev().collect();
        let p = percentiles(&mut s);
        assert_eq!((p.p50, p.p75, p.p90, p.p99), (50.0, 75.0, 90.0, 99.0));
        assert_eq!(percentiles(&mut []), Percentiles::default());
        let mut one = vec![7];
        assert_eq!(percentiles(&mut one).p99, 7.0);
    }

    // The load and the echo server run end to end in the smoke runs (compare/tests/smoke.rs),
    // inside the rig's namespaces on 198.18.0.0/15: test traffic never leaves them.
}
