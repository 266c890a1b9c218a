//! rvsctl's requests: the DPDK-owned ports, the addresses the director owns, its routes, the
//! workers' neighbour tables and the workers' load (what `ip`/DPVS's `dpip` show and change).
//!
//! Address and route changes go through [`ControlPlane::change`] like every ipvsadm change: one
//! lock, nothing changed on failure, a new [`Tables`] published on success (an address brings its
//! connected route with it). Neighbour tables belong to the workers: listings and deletions are
//! [`WorkerRequest`]s answered between bursts, static entries are part of the published tables
//! (each worker installs them when it picks the tables up).
//!
//! Error replies carry a message meant to be printed as is (`rvsctl: MESSAGE`).

use crossbeam_channel::Sender;
use ctl::proto::{
    AddrInfo, AddrKind, AddrSpec, LaddrUsage, LinkInfo, LinkStats, NeighEntry, NeighSpec,
    RouteInfo, RouteSpec, WorkerInfo,
};
use dataplane::l3::addr::{AddrError, AddrError6};
use dataplane::l3::neigh::NeighState;
use dataplane::l3::route::RouteError;
use std::sync::atomic::Ordering;

use super::*;

/// Local ports of a LIP towards one real server (`1024..=65535`, dataplane/src/laddr.rs).
const LPORTS_PER_RS: u64 = 65535 - 1024 + 1;

/// Window over which `worker show` measures the busy ratio.
const BUSY_WINDOW: Duration = Duration::from_millis(100);

fn nud_name(s: NeighState) -> &'static str {
    match s {
        NeighState::Incomplete => "INCOMPLETE",
        NeighState::Reachable => "REACHABLE",
        NeighState::Stale => "STALE",
        NeighState::Delay => "DELAY",
        NeighState::Probe => "PROBE",
        NeighState::Permanent => "PERMANENT",
    }
}

fn family_mismatch(what: &str, a: IpAddr, b: IpAddr) -> Reply {
    err(
        Errno::Einval,
        format!("{what} {b} is not of the same address family as {a}"),
    )
}

impl State {
    fn port_id(&self, name: &str) -> Result<PortId, Reply> {
        self.port_names
            .iter()
            .position(|n| n == name)
            .and_then(|i| PortId::try_from(i).ok())
            .ok_or_else(|| {
                err(
                    Errno::Enoent,
                    format!(
                        "no port named {name:?} (ports: {})",
                        self.port_names.join(", ")
                    ),
                )
            })
    }

    fn port_name(&self, id: PortId) -> String {
        self.port_names
            .get(usize::from(id))
            .cloned()
            .unwrap_or_else(|| format!("port{id}"))
    }

    fn is_vip_or_lip(&self, ip: Ipv4Addr) -> Option<&'static str> {
        let vip = self.services.services().iter().any(|s| match s.key() {
            ServiceKey::Addr { vip, .. } => vip == ip,
            ServiceKey::Fwmark(_) => false,
        });
        if vip {
            Some("a VIP")
        } else if self.laddrs.iter().flat_map(|(_, l)| l).any(|a| a.ip == ip) {
            Some("a FULLNAT local address")
        } else {
            None
        }
    }

    fn add_addr6(&mut self, a: &AddrSpec, ip: Ipv6Addr) -> Result<(), Reply> {
        let port = self.port_id(&a.port)?;
        if ip.is_multicast() || ip.is_unspecified() || ip.is_loopback() {
            return Err(err(Errno::Einval, format!("{ip} is not a unicast address")));
        }
        self.addrs
            .add6(port, ip, a.prefix_len)
            .map_err(|e| match e {
                AddrError6::AlreadyOwned(ip, p) => err(
                    Errno::Eexist,
                    format!("{ip} is already owned on {}", self.port_name(p)),
                ),
                other => err(Errno::Einval, other.to_string()),
            })?;
        self.routes6.set_connected6(&self.addrs);
        Ok(())
    }

    fn del_addr6(&mut self, a: &AddrSpec, ip: Ipv6Addr) -> Result<(), Reply> {
        let port = self.port_id(&a.port)?;
        match self.addrs.get6(ip) {
            Some(o) if o.port == port && o.prefix_len != a.prefix_len => {
                return Err(wrong_prefix(ip, a, o.prefix_len));
            }
            _ => {}
        }
        self.addrs
            .remove6(port, ip)
            .map_err(|_| err(Errno::Enoent, format!("{ip} is not owned on {}", a.port)))?;
        self.routes6.set_connected6(&self.addrs);
        Ok(())
    }

    fn add_addr(&mut self, a: &AddrSpec) -> Result<(), Reply> {
        let ip = match a.addr {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => return self.add_addr6(a, ip),
        };
        let port = self.port_id(&a.port)?;
        if let Some(what) = self.is_vip_or_lip(ip) {
            return Err(err(Errno::Einval, format!("{ip} is already {what}")));
        }
        if ip.is_multicast() || ip.is_broadcast() || ip.is_unspecified() {
            return Err(err(Errno::Einval, format!("{ip} is not a unicast address")));
        }
        self.addrs
            .add(port, ip, a.prefix_len)
            .map_err(|e| match e {
                AddrError::AlreadyOwned(ip, p) => err(
                    Errno::Eexist,
                    format!("{ip} is already owned on {}", self.port_name(p)),
                ),
                other => err(Errno::Einval, other.to_string()),
            })?;
        self.routes.set_connected(&self.addrs);
        Ok(())
    }

    fn del_addr(&mut self, a: &AddrSpec) -> Result<(), Reply> {
        let ip = match a.addr {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => return self.del_addr6(a, ip),
        };
        let port = self.port_id(&a.port)?;
        match self.addrs.get(ip) {
            Some(o) if o.port == port && o.prefix_len != a.prefix_len => {
                return Err(wrong_prefix(ip, a, o.prefix_len));
            }
            _ => {}
        }
        self.addrs
            .remove(port, ip)
            .map_err(|_| err(Errno::Enoent, format!("{ip} is not owned on {}", a.port)))?;
        self.routes.set_connected(&self.addrs);
        Ok(())
    }

    fn list_addrs(&self) -> Reply {
        let mut out: Vec<AddrInfo> = self
            .addrs
            .iter()
            .map(|a| AddrInfo {
                port: self.port_name(a.port),
                addr: IpAddr::V4(a.ip),
                prefix_len: a.prefix_len,
                kind: AddrKind::Owned,
                laddr: None,
            })
            .collect();
        out.extend(self.addrs.iter6().map(|a| AddrInfo {
            port: self.port_name(a.port),
            addr: IpAddr::V6(a.ip),
            prefix_len: a.prefix_len,
            kind: AddrKind::Owned,
            laddr: None,
        }));
        let mut lips: Vec<(&Laddr, u32)> = Vec::new();
        for a in self.laddrs.iter().flat_map(|(_, l)| l) {
            match lips.iter_mut().find(|(l, _)| l.ip == a.ip) {
                Some((_, n)) => *n += 1,
                None => lips.push((a, 1)),
            }
        }
        lips.sort_by_key(|(l, _)| (l.port, l.ip));
        out.extend(lips.into_iter().map(|(l, services)| {
            let used = l.stats.conns();
            AddrInfo {
                port: self.port_name(l.port),
                addr: l.ip,
                prefix_len: if l.ip.is_ipv6() { 128 } else { 32 },
                kind: AddrKind::Laddr,
                laddr: Some(LaddrUsage {
                    used,
                    free: LPORTS_PER_RS.saturating_sub(used),
                    misses: l.stats.conflicts(),
                    services,
                }),
            }
        }));
        out.sort_by_key(|a| a.port.clone());
        Reply::Addrs(out)
    }

    fn add_route6(&mut self, r: &RouteSpec, prefix: Ipv6Addr) -> Result<(), Reply> {
        let via = match r.via {
            None => None,
            Some(IpAddr::V6(g)) => Some(g),
            Some(g) => return Err(family_mismatch("gateway", r.prefix, g)),
        };
        let port = self.port_id(&r.port)?;
        if let Some(g) = via
            && !self.addrs.on_port6(port).any(|a| a.contains(g))
            && g.segments()[0] & 0xffc0 != 0xfe80
        {
            return Err(err(
                Errno::Einval,
                format!(
                    "gateway {g} is not on a connected network of {} (add an address first)",
                    r.port
                ),
            ));
        }
        self.routes6
            .add(Route {
                prefix,
                len: r.len,
                via,
                port,
            })
            .map_err(|e| match e {
                RouteError::Exists(..) => err(Errno::Eexist, e.to_string()),
                other => err(Errno::Einval, other.to_string()),
            })
    }

    fn del_route6(&mut self, prefix: Ipv6Addr, len: u8) -> Result<(), Reply> {
        match self.routes6.remove(prefix, len) {
            Ok(_) => Ok(()),
            Err(e) => {
                let connected = self
                    .routes6
                    .iter()
                    .any(|(r, c)| c && r.prefix == prefix && r.len == len);
                Err(if connected {
                    err(
                        Errno::Esrch,
                        format!("{prefix}/{len} is a connected route: delete its address instead"),
                    )
                } else {
                    err(Errno::Esrch, e.to_string())
                })
            }
        }
    }

    fn add_route(&mut self, r: &RouteSpec) -> Result<(), Reply> {
        let prefix = match r.prefix {
            IpAddr::V4(p) => p,
            IpAddr::V6(p) => return self.add_route6(r, p),
        };
        let via = match r.via {
            None => None,
            Some(IpAddr::V4(g)) => Some(g),
            Some(g) => return Err(family_mismatch("gateway", r.prefix, g)),
        };
        let port = self.port_id(&r.port)?;
        if let Some(g) = via
            && !self.addrs.on_port(port).any(|a| a.contains(g))
        {
            return Err(err(
                Errno::Einval,
                format!(
                    "gateway {g} is not on a connected network of {} (add an address first)",
                    r.port
                ),
            ));
        }
        self.routes
            .add(Route {
                prefix,
                len: r.len,
                via,
                port,
            })
            .map_err(|e| match e {
                RouteError::Exists(..) => err(Errno::Eexist, e.to_string()),
                other => err(Errno::Einval, other.to_string()),
            })
    }

    fn del_route(&mut self, prefix: IpAddr, len: u8) -> Result<(), Reply> {
        let prefix = match prefix {
            IpAddr::V4(p) => p,
            IpAddr::V6(p) => return self.del_route6(p, len),
        };
        match self.routes.remove(prefix, len) {
            Ok(_) => Ok(()),
            Err(e) => {
                let connected = self
                    .routes
                    .iter()
                    .any(|(r, c)| c && r.prefix == prefix && r.len == len);
                Err(if connected {
                    err(
                        Errno::Esrch,
                        format!("{prefix}/{len} is a connected route: delete its address instead"),
                    )
                } else {
                    err(Errno::Esrch, e.to_string())
                })
            }
        }
    }

    fn list_routes(&self) -> Reply {
        Reply::Routes(
            self.routes
                .iter()
                .map(|(r, connected)| RouteInfo {
                    prefix: IpAddr::V4(r.prefix),
                    len: r.len,
                    via: r.via.map(IpAddr::V4),
                    port: self.port_name(r.port),
                    connected,
                })
                .chain(self.routes6.iter().map(|(r, connected)| RouteInfo {
                    prefix: IpAddr::V6(r.prefix),
                    len: r.len,
                    via: r.via.map(IpAddr::V6),
                    port: self.port_name(r.port),
                    connected,
                }))
                .collect(),
        )
    }

    fn add_neigh(&mut self, n: &NeighSpec) -> Result<(), Reply> {
        let port = self.port_id(&n.port)?;
        if n.mac[0] & 1 == 1 || n.mac == [0; 6] {
            return Err(err(
                Errno::Einval,
                format!("{} is not a unicast MAC address", MacAddr(n.mac)),
            ));
        }
        let ip = match n.ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => {
                if ip.is_multicast() || ip.is_unspecified() {
                    return Err(err(Errno::Einval, format!("{ip} is not a unicast address")));
                }
                let entry = StaticNeigh {
                    port,
                    ip,
                    mac: MacAddr(n.mac),
                };
                match self
                    .static_neighs6
                    .iter_mut()
                    .find(|s| s.port == port && s.ip == ip)
                {
                    Some(s) => *s = entry,
                    None => self.static_neighs6.push(entry),
                }
                return Ok(());
            }
        };
        let entry = StaticNeigh {
            port,
            ip,
            mac: MacAddr(n.mac),
        };
        match self
            .static_neighs
            .iter_mut()
            .find(|s| s.port == port && s.ip == ip)
        {
            Some(s) => *s = entry,
            None => self.static_neighs.push(entry),
        }
        Ok(())
    }
}

impl ControlPlane {
    /// rvsctl's requests (plane.rs's `handle` sends every request it does not know here).
    pub(super) fn handle_net(&self, request: Request) -> Reply {
        match request {
            Request::ListLinks => self.list_links(),
            Request::AddAddr(a) => {
                let r = self.change("add address", |st| st.add_addr(&a));
                if r == Reply::Ok {
                    self.twin_follows(&a, true);
                }
                r
            }
            Request::DelAddr(a) => {
                let r = self.change("delete address", |st| st.del_addr(&a));
                if r == Reply::Ok {
                    self.twin_follows(&a, false);
                }
                r
            }
            Request::ListAddrs => lock(&self.state).list_addrs(),
            Request::AddRoute(r) => self.change("add route", |st| st.add_route(&r)),
            Request::DelRoute { prefix, len } => {
                self.change("delete route", |st| st.del_route(prefix, len))
            }
            Request::ListRoutes => lock(&self.state).list_routes(),
            Request::AddNeigh(n) => self.change("add neighbour", |st| st.add_neigh(&n)),
            Request::DelNeigh { ip, port } => self.del_neigh(ip, &port),
            Request::ListNeighs { port } => self.list_neighs(port.as_deref()),
            Request::FlushNeighs { port } => self.flush_neighs(port.as_deref()),
            Request::ListWorkers => self.list_workers(),
            other => err(
                Errno::Einval,
                format!(
                    "this rvsd does not handle {:?} requests",
                    serde_json::to_value(&other)
                        .ok()
                        .and_then(|v| v
                            .as_object()
                            .and_then(|o| o.keys().next().cloned())
                            .or_else(|| v.as_str().map(str::to_owned)))
                        .unwrap_or_default()
                ),
            ),
        }
    }

    /// Ask every worker; one answer per worker, in worker order.
    fn ask_workers<T>(&self, make: impl Fn(Sender<T>) -> WorkerRequest) -> Result<Vec<T>, Reply> {
        let workers = lock(&self.workers).clone();
        let mut pending = Vec::new();
        for w in &workers {
            let (tx, rx) = crossbeam_channel::bounded(1);
            w.requests
                .send_timeout(make(tx), WORKER_REPLY_TIMEOUT)
                .map_err(|_| err(Errno::Enomem, "a worker did not take the request in time"))?;
            pending.push(rx);
        }
        pending
            .into_iter()
            .map(|rx| {
                rx.recv_timeout(WORKER_REPLY_TIMEOUT)
                    .map_err(|_| err(Errno::Enomem, "a worker did not answer in time"))
            })
            .collect()
    }

    fn optional_port(&self, name: Option<&str>) -> Result<Option<PortId>, Reply> {
        name.map(|n| lock(&self.state).port_id(n)).transpose()
    }

    fn list_neighs(&self, port: Option<&str>) -> Reply {
        let only = match self.optional_port(port) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let answers = match self.ask_workers(WorkerRequest::ListNeighs) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let st = lock(&self.state);
        let mut out = Vec::new();
        for (w, (v4, v6)) in answers.into_iter().enumerate() {
            let mut entries: Vec<_> = v4
                .into_iter()
                .map(|n| (n.port, IpAddr::V4(n.ip), n.mac, n.state, n.queued))
                .chain(
                    v6.into_iter()
                        .map(|n| (n.port, IpAddr::V6(n.ip), n.mac, n.state, n.queued)),
                )
                .filter(|n| only.is_none_or(|p| p == n.0))
                .collect();
            entries.sort_by_key(|n| (n.0, n.1));
            out.extend(
                entries
                    .into_iter()
                    .map(|(port, ip, mac, state, queued)| NeighEntry {
                        worker: u32::try_from(w).unwrap_or(u32::MAX),
                        port: st.port_name(port),
                        ip,
                        mac: mac.map(|m| m.0),
                        state: nud_name(state).to_owned(),
                        queued: u32::try_from(queued).unwrap_or(u32::MAX),
                    }),
            );
        }
        Reply::Neighs(out)
    }

    fn flush_neighs(&self, port: Option<&str>) -> Reply {
        let only = match self.optional_port(port) {
            Ok(p) => p,
            Err(r) => return r,
        };
        match self.ask_workers(|tx| WorkerRequest::FlushNeighs(only, tx)) {
            Ok(counts) => {
                let n: usize = counts.into_iter().sum();
                tracing::info!(change = "flush neighbours", from = %origin::current(), entries = n, "control: applied");
                Reply::Flushed(n as u64)
            }
            Err(r) => r,
        }
    }

    /// Delete a neighbour: from the static entries (published first, so no worker reinstalls
    /// it), then from every worker's table.
    fn del_neigh(&self, ip: IpAddr, port: &str) -> Reply {
        let (ip, port_id, was_static) = {
            let mut st = lock(&self.state);
            let port_id = match st.port_id(port) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let before = st.static_neighs.len() + st.static_neighs6.len();
            st.static_neighs
                .retain(|s| !(s.port == port_id && IpAddr::V4(s.ip) == ip));
            st.static_neighs6
                .retain(|s| !(s.port == port_id && IpAddr::V6(s.ip) == ip));
            let was_static = st.static_neighs.len() + st.static_neighs6.len() != before;
            if was_static {
                self.publish(&mut st);
            }
            (ip, port_id, was_static)
        };
        let found = match self.ask_workers(|tx| WorkerRequest::DelNeigh(port_id, ip, tx)) {
            Ok(v) => v.into_iter().any(|f| f),
            Err(r) => return r,
        };
        if !found && !was_static {
            return err(
                Errno::Enoent,
                format!("no neighbour entry for {ip} on {port}"),
            );
        }
        tracing::info!(change = "delete neighbour", from = %origin::current(), %ip, port, "control: applied");
        Reply::Ok
    }

    fn list_links(&self) -> Reply {
        let queues = u16::try_from(lock(&self.state).n_workers).unwrap_or(u16::MAX);
        let stats = self.samples.port_stats();
        let links = self.samples.links();
        let ports = lock(&self.ports).clone();
        Reply::Links(
            ports
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    let link = links.iter().find(|(n, _)| *n == f.name).map(|(_, l)| *l);
                    let s = stats.iter().find(|(n, _)| *n == f.name).map(|(_, s)| *s);
                    LinkInfo {
                        index: u16::try_from(i).unwrap_or(u16::MAX),
                        name: f.name,
                        device: f.device,
                        driver: f.driver,
                        mac: f.mac.0,
                        mtu: f.mtu,
                        up: link.map(|l| l.up),
                        speed_mbps: link.map_or(0, |l| l.speed_mbps),
                        rx_queues: queues,
                        tx_queues: queues,
                        stats: s.map(|s| LinkStats {
                            rx_packets: s.ipackets,
                            rx_bytes: s.ibytes,
                            rx_missed: s.imissed,
                            rx_errors: s.ierrors,
                            rx_nombuf: s.rx_nombuf,
                            tx_packets: s.opackets,
                            tx_bytes: s.obytes,
                            tx_errors: s.oerrors,
                        }),
                        kernel: f.kernel.as_ref().map(twin_info),
                    }
                })
                .collect(),
        )
    }

    /// Per-worker load and losses. The busy ratio is measured over [`BUSY_WINDOW`] (the loop
    /// publishes its poll counts every 10 ms tick).
    fn list_workers(&self) -> Reply {
        let handles = lock(&self.workers).clone();
        let ports = u16::try_from(lock(&self.ports).len()).unwrap_or(u16::MAX);
        let polls = |h: &WorkerHandle| {
            (
                h.loop_stats.polls.load(Ordering::Relaxed),
                h.loop_stats.busy_polls.load(Ordering::Relaxed),
            )
        };
        let before: Vec<_> = handles.iter().map(polls).collect();
        if !handles.is_empty() {
            std::thread::sleep(BUSY_WINDOW);
        }
        Reply::Workers(
            handles
                .iter()
                .zip(before)
                .enumerate()
                .map(|(i, (h, (p0, b0)))| {
                    let (p1, b1) = polls(h);
                    let (dp, db) = (p1.saturating_sub(p0), b1.saturating_sub(b0));
                    let s = &h.stats;
                    WorkerInfo {
                        id: u32::try_from(i).unwrap_or(u32::MAX),
                        lcore: h.lcore,
                        queue: u16::try_from(i).unwrap_or(u16::MAX),
                        ports,
                        rx_packets: s.rx_packets.load(Ordering::Relaxed),
                        rx_bytes: s.rx_bytes.load(Ordering::Relaxed),
                        tx_packets: s.tx_packets.load(Ordering::Relaxed),
                        tx_bytes: s.tx_bytes.load(Ordering::Relaxed),
                        busy_permille: u32::try_from((db * 1000).checked_div(dp).unwrap_or(0))
                            .unwrap_or(1000),
                        redirects_sent: h.loop_stats.redirects_sent.load(Ordering::Relaxed),
                        redirects_received: h.loop_stats.redirects_received.load(Ordering::Relaxed),
                        conns: s.conns.load(Ordering::Relaxed),
                        conn_capacity: s.conn_capacity.load(Ordering::Relaxed),
                        tx_dropped: h.loop_stats.tx_dropped.load(Ordering::Relaxed),
                        ring_overflows: h.loop_stats.ring_overflows.load(Ordering::Relaxed),
                        rx_chained: h.loop_stats.rx_chained.load(Ordering::Relaxed),
                        drops: s.drops().map(|(_, n)| n).sum(),
                        conn_reuses: s.conn_reuses.load(Ordering::Relaxed),
                    }
                })
                .collect(),
        )
    }
}

/// A kernel twin as `rvsctl link show` lists it.
fn twin_info(t: &crate::runtime::kernel::TwinFacts) -> ctl::proto::KernelTwin {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &t.stats;
    ctl::proto::KernelTwin {
        ifname: t.ifname.clone(),
        driver: t.driver.name().to_owned(),
        device: t.device.clone(),
        addrs: t.addrs.iter().map(ToString::to_string).collect(),
        rate: t.rate,
        burst: t.burst,
        stats: ctl::proto::KernelTwinStats {
            to_kernel_packets: s.to_kernel_packets.load(Relaxed),
            to_kernel_bytes: s.to_kernel_bytes.load(Relaxed),
            from_kernel_packets: s.from_kernel_packets.load(Relaxed),
            from_kernel_bytes: s.from_kernel_bytes.load(Relaxed),
            rate_limited: s.rate_limited.load(Relaxed),
            ring_full: s.ring_full.load(Relaxed),
            kernel_full: s.kernel_full.load(Relaxed),
            egress_full: s.egress_full.load(Relaxed),
        },
    }
}

impl ControlPlane {
    /// An owned address was added to (`add`) or removed from a port: its kernel twin, if it
    /// follows the port's addresses, gets the same change. A failure is logged (rvs's own
    /// change stands).
    fn twin_follows(&self, a: &AddrSpec, add: bool) {
        let ip = match a.addr {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => return self.twin_follows6(a, ip, add),
        };
        let prefix = crate::config::Prefix {
            addr: ip,
            len: a.prefix_len,
        };
        let mut ports = lock(&self.ports);
        let Some(twin) = ports
            .iter_mut()
            .find(|p| p.name == a.port)
            .and_then(|p| p.kernel.as_mut())
            .filter(|t| t.follows_owned)
        else {
            return;
        };
        match crate::runtime::kernel::twin_addr(&twin.ifname, prefix, add) {
            Ok(()) => {
                twin.addrs.retain(|p| p.addr != ip);
                if add {
                    twin.addrs.push(prefix);
                }
            }
            Err(e) => tracing::warn!(twin = %twin.ifname, "address {prefix}: {e:#}"),
        }
    }

    /// [`ControlPlane::twin_follows`] for an IPv6 address.
    fn twin_follows6(&self, a: &AddrSpec, ip: Ipv6Addr, add: bool) {
        let prefix = crate::config::Prefix6 {
            addr: ip,
            len: a.prefix_len,
        };
        let ports = lock(&self.ports);
        let Some(twin) = ports
            .iter()
            .find(|p| p.name == a.port)
            .and_then(|p| p.kernel.as_ref())
            .filter(|t| t.follows_owned)
        else {
            return;
        };
        if let Err(e) = crate::runtime::kernel::twin_addr6(&twin.ifname, prefix, add) {
            tracing::warn!(twin = %twin.ifname, "address {prefix}: {e:#}");
        }
    }
}

/// The refusal of deleting `ip/len` from a port that owns `ip` with another prefix length.
fn wrong_prefix(ip: impl std::fmt::Display, a: &AddrSpec, owned_len: u8) -> Reply {
    err(
        Errno::Enoent,
        format!(
            "{ip}/{} is not owned on {} ({ip}/{owned_len} is)",
            a.prefix_len, a.port
        ),
    )
}
