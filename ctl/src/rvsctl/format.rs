//! rvsctl's output: iproute2's layout for people, and `-j` JSON (one line, iproute2's key names
//! where it has them) for scripts.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::{Value, json};

use crate::proto::{AddrInfo, AddrKind, FwmarkRule, LinkInfo, NeighEntry, RouteInfo, WorkerInfo};

pub fn mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn flags_and_state(l: &LinkInfo) -> (&'static str, &'static str) {
    match l.up {
        Some(true) => ("<UP,LOWER_UP>", "UP"),
        Some(false) => ("<NO-CARRIER,UP>", "DOWN"),
        None => ("<UP>", "UNKNOWN"),
    }
}

fn link_head(out: &mut String, l: &LinkInfo) {
    let (flags, state) = flags_and_state(l);
    let _ = write!(
        out,
        "{}: {}: {flags} mtu {} state {state}",
        l.index, l.name, l.mtu
    );
    if l.speed_mbps > 0 {
        let _ = write!(out, " speed {}Mb/s", l.speed_mbps);
    }
    let _ = writeln!(out, " rxq {} txq {}", l.rx_queues, l.tx_queues);
    let _ = writeln!(out, "    link/ether {} brd ff:ff:ff:ff:ff:ff", mac(&l.mac));
}

/// `rvsctl link show [-s]`.
pub fn links(links: &[LinkInfo], stats: bool) -> String {
    let mut out = String::new();
    for l in links {
        link_head(&mut out, l);
        let _ = writeln!(out, "    driver {} device {}", l.driver, l.device);
        if stats {
            let s = l.stats.unwrap_or_default();
            let _ = writeln!(
                out,
                "    RX: {:>12} {:>12} {:>8} {:>8} {:>8}",
                "bytes", "packets", "errors", "missed", "nombuf"
            );
            let _ = writeln!(
                out,
                "        {:>12} {:>12} {:>8} {:>8} {:>8}",
                s.rx_bytes, s.rx_packets, s.rx_errors, s.rx_missed, s.rx_nombuf
            );
            let _ = writeln!(
                out,
                "    TX: {:>12} {:>12} {:>8}",
                "bytes", "packets", "errors"
            );
            let _ = writeln!(
                out,
                "        {:>12} {:>12} {:>8}",
                s.tx_bytes, s.tx_packets, s.tx_errors
            );
        }
        if let Some(k) = &l.kernel {
            kernel_twin(&mut out, k);
        }
    }
    out
}

/// The twin of a port: its interface, then its counters (always shown: they are few and say
/// whether the exception path is healthy).
fn kernel_twin(out: &mut String, k: &crate::proto::KernelTwin) {
    let _ = writeln!(
        out,
        "    kernel {} driver {} rate {}/s burst {} addrs {}",
        k.ifname,
        k.driver,
        k.rate,
        k.burst,
        if k.addrs.is_empty() {
            "none".to_owned()
        } else {
            k.addrs.join(",")
        }
    );
    let s = &k.stats;
    let _ = writeln!(
        out,
        "    to kernel: {:>12} {:>12}   from kernel: {:>12} {:>12}",
        "bytes", "packets", "bytes", "packets"
    );
    let _ = writeln!(
        out,
        "               {:>12} {:>12}                {:>12} {:>12}",
        s.to_kernel_bytes, s.to_kernel_packets, s.from_kernel_bytes, s.from_kernel_packets
    );
    let _ = writeln!(
        out,
        "    dropped: rate_limit {} ring_full {} kernel_full {} egress_full {}",
        s.rate_limited, s.ring_full, s.kernel_full, s.egress_full
    );
}

pub fn links_json(links: &[LinkInfo], stats: bool) -> Value {
    Value::Array(
        links
            .iter()
            .map(|l| {
                let (_, state) = flags_and_state(l);
                let mut v = json!({
                    "ifindex": l.index,
                    "ifname": l.name,
                    "device": l.device,
                    "driver": l.driver,
                    "address": mac(&l.mac),
                    "mtu": l.mtu,
                    "operstate": state,
                    "speed": l.speed_mbps,
                    "num_rx_queues": l.rx_queues,
                    "num_tx_queues": l.tx_queues,
                });
                if let Some(k) = &l.kernel {
                    let s = &k.stats;
                    v["kernel"] = json!({
                        "ifname": k.ifname, "driver": k.driver, "device": k.device,
                        "addrs": k.addrs, "rate": k.rate, "burst": k.burst,
                        "stats": {
                            "to_kernel": {"bytes": s.to_kernel_bytes, "packets": s.to_kernel_packets},
                            "from_kernel": {"bytes": s.from_kernel_bytes, "packets": s.from_kernel_packets},
                            "dropped": {"rate_limit": s.rate_limited, "ring_full": s.ring_full,
                                        "kernel_full": s.kernel_full, "egress_full": s.egress_full},
                        },
                    });
                }
                if stats {
                    let s = l.stats.unwrap_or_default();
                    v["stats64"] = json!({
                        "rx": {"bytes": s.rx_bytes, "packets": s.rx_packets, "errors": s.rx_errors,
                               "missed": s.rx_missed, "nombuf": s.rx_nombuf},
                        "tx": {"bytes": s.tx_bytes, "packets": s.tx_packets, "errors": s.tx_errors},
                    });
                }
                v
            })
            .collect(),
    )
}

/// `inet` or `inet6`, as `ip` names the families.
fn family(a: IpAddr) -> &'static str {
    if a.is_ipv6() { "inet6" } else { "inet" }
}

fn addr_line(out: &mut String, a: &AddrInfo) {
    let _ = write!(
        out,
        "    {} {}/{} scope global {}",
        family(a.addr),
        a.addr,
        a.prefix_len,
        a.port
    );
    if let (AddrKind::Laddr, Some(u)) = (a.kind, a.laddr) {
        let _ = write!(
            out,
            " lip used {} free {} misses {} services {}",
            u.used, u.free, u.misses, u.services
        );
    }
    out.push('\n');
}

/// `rvsctl addr show`: each port with its link line and its addresses (ports without addresses
/// are listed too, as `ip addr` does). `links` may be empty (then only addresses show).
pub fn addrs(links: &[LinkInfo], addrs: &[AddrInfo], dev: Option<&str>) -> String {
    let mut out = String::new();
    for l in links.iter().filter(|l| dev.is_none_or(|d| d == l.name)) {
        link_head(&mut out, l);
        for a in addrs.iter().filter(|a| a.port == l.name) {
            addr_line(&mut out, a);
        }
    }
    for a in addrs
        .iter()
        .filter(|a| !links.iter().any(|l| l.name == a.port))
        .filter(|a| dev.is_none_or(|d| d == a.port))
    {
        addr_line(&mut out, a);
    }
    out
}

pub fn addrs_json(links: &[LinkInfo], addrs: &[AddrInfo], dev: Option<&str>) -> Value {
    let info = |a: &AddrInfo| {
        let mut v = json!({
            "family": family(a.addr),
            "local": a.addr.to_string(),
            "prefixlen": a.prefix_len,
            "scope": "global",
            "label": a.port,
            "lip": a.kind == AddrKind::Laddr,
        });
        if let Some(u) = a.laddr {
            v["lip_used"] = json!(u.used);
            v["lip_free"] = json!(u.free);
            v["lip_misses"] = json!(u.misses);
            v["lip_services"] = json!(u.services);
        }
        v
    };
    Value::Array(
        links
            .iter()
            .filter(|l| dev.is_none_or(|d| d == l.name))
            .map(|l| {
                json!({
                    "ifindex": l.index,
                    "ifname": l.name,
                    "mtu": l.mtu,
                    "address": mac(&l.mac),
                    "addr_info": addrs.iter().filter(|a| a.port == l.name).map(info).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

fn dst(r: &RouteInfo) -> String {
    if r.len == 0 && r.prefix.is_unspecified() {
        "default".to_owned()
    } else if (r.len == 32 && r.prefix.is_ipv4()) || r.len == 128 {
        r.prefix.to_string()
    } else {
        format!("{}/{}", r.prefix, r.len)
    }
}

/// `rvsctl route show`.
pub fn routes(routes: &[RouteInfo]) -> String {
    let mut out = String::new();
    for r in routes {
        out.push_str(&dst(r));
        if let Some(g) = r.via {
            let _ = write!(out, " via {g}");
        }
        let _ = write!(out, " dev {}", r.port);
        if r.connected {
            out.push_str(" proto kernel scope link");
        }
        out.push('\n');
    }
    out
}

pub fn routes_json(routes: &[RouteInfo]) -> Value {
    Value::Array(
        routes
            .iter()
            .map(|r| {
                let mut v = json!({"dst": dst(r), "dev": r.port});
                if let Some(g) = r.via {
                    v["gateway"] = json!(g.to_string());
                }
                if r.connected {
                    v["protocol"] = json!("kernel");
                    v["scope"] = json!("link");
                } else {
                    v["protocol"] = json!("static");
                }
                v
            })
            .collect(),
    )
}

/// `rvsctl neigh show`: one line per entry per worker (each worker has its own table).
pub fn neighs(neighs: &[NeighEntry]) -> String {
    let mut out = String::new();
    for n in neighs {
        let _ = write!(out, "{} dev {}", n.ip, n.port);
        if let Some(m) = &n.mac {
            let _ = write!(out, " lladdr {}", mac(m));
        }
        let _ = write!(out, " {}", n.state);
        if n.queued > 0 {
            let _ = write!(out, " queued {}", n.queued);
        }
        let _ = writeln!(out, " worker {}", n.worker);
    }
    out
}

pub fn neighs_json(neighs: &[NeighEntry]) -> Value {
    Value::Array(
        neighs
            .iter()
            .map(|n| {
                let mut v = json!({
                    "dst": n.ip.to_string(),
                    "dev": n.port,
                    "state": [n.state],
                    "queued": n.queued,
                    "worker": n.worker,
                });
                if let Some(m) = &n.mac {
                    v["lladdr"] = json!(mac(m));
                }
                v
            })
            .collect(),
    )
}

fn busy(permille: u32) -> String {
    format!("{}.{}%", permille / 10, permille % 10)
}

/// `rvsctl worker show`.
pub fn workers(workers: &[WorkerInfo]) -> String {
    let mut out = String::new();
    for w in workers {
        let _ = writeln!(
            out,
            "worker {}: lcore {} queue {} ports {} busy {} conns {}/{}",
            w.id,
            w.lcore,
            w.queue,
            w.ports,
            busy(w.busy_permille),
            w.conns,
            w.conn_capacity
        );
        let _ = writeln!(
            out,
            "    rx packets {} bytes {} tx packets {} bytes {} redirects sent {} received {}",
            w.rx_packets,
            w.rx_bytes,
            w.tx_packets,
            w.tx_bytes,
            w.redirects_sent,
            w.redirects_received
        );
        let _ = writeln!(
            out,
            "    drops {} tx full {} redirect ring full {} chained {} conn reuses {}",
            w.drops, w.tx_dropped, w.ring_overflows, w.rx_chained, w.conn_reuses
        );
    }
    out
}

pub fn workers_json(workers: &[WorkerInfo]) -> Value {
    Value::Array(
        workers
            .iter()
            .map(|w| {
                json!({
                    "worker": w.id,
                    "lcore": w.lcore,
                    "queue": w.queue,
                    "ports": w.ports,
                    "busy_ratio": f64::from(w.busy_permille) / 1000.0,
                    "rx_packets": w.rx_packets,
                    "rx_bytes": w.rx_bytes,
                    "tx_packets": w.tx_packets,
                    "tx_bytes": w.tx_bytes,
                    "redirects_sent": w.redirects_sent,
                    "redirects_received": w.redirects_received,
                    "conns": w.conns,
                    "conn_capacity": w.conn_capacity,
                    "drops": w.drops,
                    "tx_dropped": w.tx_dropped,
                    "ring_overflows": w.ring_overflows,
                    "rx_chained": w.rx_chained,
                    "conn_reuses": w.conn_reuses,
                })
            })
            .collect(),
    )
}

/// `rvsctl fwmark show`: the classifier rules in match order, one per line.
pub fn fwmarks(rules: &[FwmarkRule]) -> String {
    let mut out = String::new();
    for r in rules {
        out.push_str(&format!("mark {} proto {} dst {}", r.mark, r.proto, r.dst));
        if !r.ports.is_empty() {
            out.push_str(&format!(" ports {}", r.ports));
        }
        out.push('\n');
    }
    out
}

/// `rvsctl -j fwmark show`.
pub fn fwmarks_json(rules: &[FwmarkRule]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| serde_json::json!({"mark": r.mark, "proto": r.proto, "dst": r.dst, "ports": r.ports}))
            .collect(),
    )
}

/// `rvsctl daemon show`: the daemon's version, the protocol versions it answers, and its
/// requests (a version-1 daemon cannot say which: "protocol 1 (no hello)").
pub fn daemon(h: &crate::proto::Hello) -> String {
    if h.requests.is_empty() {
        return format!(
            "rvsd protocol {} (no hello: a version-1 rvsd)\n",
            h.protocol_version
        );
    }
    let version = if h.daemon_version.is_empty() {
        "rvsd".to_owned()
    } else {
        format!("rvsd {}", h.daemon_version)
    };
    format!(
        "{version} protocol {} (answers {} to {})\n    requests: {}\n",
        h.protocol_version,
        h.min_protocol_version,
        h.protocol_version,
        h.requests.join(" ")
    )
}
