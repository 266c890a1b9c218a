//! rvs-keepalived's own Prometheus endpoint (`--metrics ADDR`): whether each dest passes its
//! checks and how often it changed, in the label style of rvsd's dest families (`service`
//! `tcp/198.18.0.100:80`, `dest` `198.18.1.11:80`), so a dashboard can join them with
//! `rvs_dest_weight`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use ctl::proto::{Protocol, ServiceKey};

use crate::model::Config;

/// rvsd's label of a service (`tcp/ADDR:PORT`, `fwmark/N`).
pub fn service_label(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let p = match protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Sctp => "sctp",
            };
            format!("{p}/{}", SocketAddr::new(*addr, *port))
        }
        ServiceKey::Fwmark { mark, .. } => format!("fwmark/{mark}"),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct DestHealth {
    up: bool,
    to_up: u64,
    to_down: u64,
}

/// The counters, shared by the main thread and the endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    dests: BTreeMap<(String, String), DestHealth>,
    checks: BTreeMap<(&'static str, bool), u64>,
    pub reloads: u64,
    pub reloads_refused: u64,
}

impl Metrics {
    /// A dest's state; `transition` counts it as a change (not at start).
    pub fn set_dest(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
        up: bool,
        transition: bool,
    ) {
        let d = self
            .dests
            .entry((service_label(key), SocketAddr::new(addr, port).to_string()))
            .or_default();
        d.up = up;
        if transition {
            if up {
                d.to_up += 1;
            } else {
                d.to_down += 1;
            }
        }
    }

    pub fn count_check(&mut self, kind: &'static str, ok: bool) {
        *self.checks.entry((kind, ok)).or_default() += 1;
    }

    /// Forget dests the configuration no longer has.
    pub fn retain_dests(&mut self, cfg: &Config) {
        let mut keep = std::collections::BTreeSet::new();
        for vs in &cfg.virtual_servers {
            for k in &vs.keys {
                for r in &vs.reals {
                    keep.insert((
                        service_label(k),
                        SocketAddr::new(r.addr, r.port).to_string(),
                    ));
                }
            }
        }
        self.dests.retain(|k, _| keep.contains(k));
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP rvs_dest_up Whether the dest passes its health checks (1) or not (0).\n# TYPE rvs_dest_up gauge\n");
        for ((svc, dest), d) in &self.dests {
            let _ = writeln!(
                s,
                "rvs_dest_up{{service=\"{svc}\",dest=\"{dest}\"}} {}",
                u8::from(d.up)
            );
        }
        s.push_str("# HELP rvs_dest_transitions_total Health state changes of the dest, by the state entered.\n# TYPE rvs_dest_transitions_total counter\n");
        for ((svc, dest), d) in &self.dests {
            for (to, n) in [("up", d.to_up), ("down", d.to_down)] {
                let _ = writeln!(
                    s,
                    "rvs_dest_transitions_total{{service=\"{svc}\",dest=\"{dest}\",to=\"{to}\"}} {n}"
                );
            }
        }
        s.push_str("# HELP rvs_keepalived_checks_total Check attempts, by checker type and result.\n# TYPE rvs_keepalived_checks_total counter\n");
        for ((kind, ok), n) in &self.checks {
            let result = if *ok { "success" } else { "failure" };
            let _ = writeln!(
                s,
                "rvs_keepalived_checks_total{{checker=\"{kind}\",result=\"{result}\"}} {n}"
            );
        }
        let _ = write!(
            s,
            "# HELP rvs_keepalived_reloads_total SIGHUP reloads applied and refused.\n# TYPE rvs_keepalived_reloads_total counter\nrvs_keepalived_reloads_total{{result=\"applied\"}} {}\nrvs_keepalived_reloads_total{{result=\"refused\"}} {}\n",
            self.reloads, self.reloads_refused
        );
        s
    }
}

/// Serve `GET /metrics` on `addr` from a thread.
pub fn serve(addr: SocketAddr, metrics: Arc<Mutex<Metrics>>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut buf = [0u8; 2048];
                let n = conn.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if head.starts_with("GET /metrics") {
                    let m = metrics.lock().unwrap_or_else(|e| e.into_inner());
                    ("200 OK", m.render())
                } else {
                    ("404 Not Found", "try /metrics\n".to_owned())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        })?;
    Ok(())
}
