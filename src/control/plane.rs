//! The control plane's state and how each request changes it.
//!
//! One command model serves the three doors of docs/architecture.md section 5: the config file (`[ipvs]
//! rules`, replayed through the same ipvsadm parser), the control socket, and `ipvsadm -R`. A
//! request is applied under one lock; a failed request changes nothing. Every successful change
//! publishes a new immutable [`Tables`] that the workers pick up between bursts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use ctl::proto::{self, ConnInfo, DestInfo, Errno, ErrorReply, Info, Reply, Request, ServiceInfo};
use dataplane::conn::Timeouts;
use dataplane::fwmark::{Classifier, MarkRule};
use dataplane::l3::addr::{OwnedAddrs, PortId};
use dataplane::l3::route::{Route, RouteTable};
use dataplane::laddr::{Laddr, LaddrStats, LaddrTable};
use dataplane::persist::PersistTable;
use dataplane::sched::SchedFlags;
use dataplane::service::{
    self, DestConfig, ForwardMethod, ListKind, Protocol, ServiceConfig, ServiceError, ServiceKey,
    ServiceTable,
};
use dataplane::wire::MacAddr;
use dataplane::worker::{StaticNeigh, Tables, Tables6};

use super::metrics::RuntimeSamples;
use super::origin;
use super::rates::RateBook;
use super::server::Handler;
use crate::config::Validated;
use crate::runtime::poll::WorkerRequest;
use crate::runtime::{PortFacts, WorkerHandle};

/// rvsctl's requests (links, addresses, routes, neighbours, workers).
mod ops;
/// A reload's table changes.
mod reload;
/// Restart with state: the state file's tables.
mod state;
pub use reload::ReloadOutcome;
pub use state::RestoreSummary;

/// IPVS version rvs reports (`IP Virtual Server version 1.2.1`).
const IPVS_VERSION_CODE: u32 = 0x010201;

/// How long a listing waits for a worker's answer.
const WORKER_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

struct State {
    services: ServiceTable,
    timeouts: Timeouts,
    addrs: OwnedAddrs,
    routes: RouteTable,
    static_neighs: Vec<StaticNeigh>,
    /// IPv6 routes (static and connected) and static neighbours; the owned IPv6 addresses are
    /// in `addrs`.
    routes6: RouteTable<Ipv6Addr>,
    static_neighs6: Vec<StaticNeigh<Ipv6Addr>>,
    /// FULLNAT local addresses per service, in the order they were added.
    laddrs: Vec<(ServiceKey, Vec<Laddr>)>,
    /// Port names (`[[port]] name`), indexed by [`PortId`], for `-F`.
    port_names: Vec<String>,
    n_workers: usize,
    /// Firewall-mark classifier rules (`[[fwmark]]`, `--add-fwmark-rule`), in match order.
    fwmarks: Vec<MarkRule>,
    /// The classifier the workers use now (rebuilt when `fwmarks` changes).
    classifier: Arc<Classifier>,
    /// Persistence templates: created once, the same `Arc` in every publication.
    persist: Arc<PersistTable>,
    /// `[ipvs] sloppy_tcp`, published in every [`Tables`].
    sloppy_tcp: bool,
    /// SYN-cookie secrets (random, for the life of the process) and the proxy's settings.
    synproxy: dataplane::synproxy::SynProxyConf,
}

/// A request only the daemon's main loop can carry out (it owns what a stop or a reload
/// changes), with where to send the answer.
#[derive(Debug)]
pub enum DaemonOp {
    Stop {
        save_state: bool,
        reply: crossbeam_channel::Sender<Reply>,
    },
    Reload(crossbeam_channel::Sender<Reply>),
}

/// How long a stop or reload request waits for the main loop.
const DAEMON_OP_TIMEOUT: Duration = Duration::from_secs(30);

/// The daemon's control state.
pub struct ControlPlane {
    state: Mutex<State>,
    tables: Arc<ArcSwap<Tables>>,
    conn_capacity: u32,
    workers: Mutex<Vec<WorkerHandle>>,
    ports: Mutex<Vec<PortFacts>>,
    /// Rate estimators; locked after `state` when both are held.
    rates: Mutex<RateBook>,
    /// Port counters and link states the main loop samples (metrics, `rvsctl link show`).
    samples: Arc<RuntimeSamples>,
    /// Where stop and reload requests go (the main loop), once it runs.
    daemon_ops: Mutex<Option<crossbeam_channel::Sender<DaemonOp>>>,
    /// What the control socket counts (its connections), for `/metrics`.
    socket_stats: Arc<super::server::SocketStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock aborts the daemon (panic = "abort"), so poison cannot be
    // observed in production; tests recover the guard.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn err(errno: Errno, message: impl Into<String>) -> Reply {
    Reply::Error(ErrorReply {
        errno,
        message: message.into(),
    })
}

fn service_err(e: &ServiceError) -> Reply {
    let errno = match e.errno() {
        service::Errno::Exist => Errno::Eexist,
        service::Errno::Srch => Errno::Esrch,
        service::Errno::NoEnt => Errno::Enoent,
        service::Errno::Inval => Errno::Einval,
        service::Errno::NoMem => Errno::Enomem,
        service::Errno::Range => Errno::Erange,
        service::Errno::AfNoSupport => Errno::Eafnosupport,
    };
    err(errno, e.to_string())
}

/// A link-local IPv6 address (`fe80::/10`): on-link on every port, so a valid gateway without a
/// connected prefix.
fn is_link_local6(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

fn key_from_proto(k: &proto::ServiceKey) -> Result<ServiceKey, Reply> {
    match *k {
        proto::ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => Ok(ServiceKey::Addr {
            protocol: match protocol {
                proto::Protocol::Tcp => Protocol::Tcp,
                proto::Protocol::Udp => Protocol::Udp,
                proto::Protocol::Sctp => Protocol::Sctp,
            },
            vip: addr,
            vport: port,
        }),
        proto::ServiceKey::Fwmark { ipv6: true, .. } => Err(err(
            Errno::Eafnosupport,
            "IPv6 fwmark services are not supported yet",
        )),
        proto::ServiceKey::Fwmark { mark, ipv6: false } => Ok(ServiceKey::Fwmark(mark)),
    }
}

fn key_to_proto(k: &ServiceKey) -> proto::ServiceKey {
    match *k {
        ServiceKey::Addr {
            protocol,
            vip,
            vport,
        } => proto::ServiceKey::Inet {
            protocol: match protocol {
                Protocol::Tcp => proto::Protocol::Tcp,
                Protocol::Udp => proto::Protocol::Udp,
                Protocol::Sctp => proto::Protocol::Sctp,
            },
            addr: vip,
            port: vport,
        },
        ServiceKey::Fwmark(mark) => proto::ServiceKey::Fwmark { mark, ipv6: false },
    }
}

fn service_from_proto(s: &proto::ServiceSpec) -> Result<ServiceConfig, Reply> {
    let key = key_from_proto(&s.key)?;
    let flags = if s.sched_flags.is_empty() {
        SchedFlags::NONE
    } else {
        SchedFlags::parse(&s.scheduler, &s.sched_flags.join(","))
            .map_err(|e| err(Errno::Einval, e.to_string()))?
    };
    if s.pe.is_some() {
        return Err(err(
            Errno::Enoent,
            "persistence engines are not supported yet",
        ));
    }
    // The persistence granularity: a netmask for IPv4 and fwmark services, a prefix length
    // (1..128) for IPv6 ones, as IPVS keeps them.
    let (netmask, prefix6) = if key.is_ipv6() {
        let p = dataplane::persist::persist_prefix6(s.netmask)
            .ok_or_else(|| err(Errno::Einval, "illegal ipv6 netmask specified"))?;
        (Ipv4Addr::BROADCAST, p)
    } else {
        (Ipv4Addr::from_bits(s.netmask), 128)
    };
    Ok(ServiceConfig {
        key,
        scheduler: s.scheduler.clone(),
        flags,
        persistence: s.persistent,
        netmask,
        prefix6,
        one_packet: s.ops,
        synproxy: s.synproxy,
        limits: limits_from_proto(&s.limits)?,
        client_addr: client_addr_from_proto(&s.client_addr),
    })
}

fn client_addr_from_proto(c: &proto::ClientAddr) -> service::ClientAddr {
    use proto::{ProxyProtocol as P, UoaMode as U};
    service::ClientAddr {
        proxy: match c.proxy_protocol {
            P::Disable => service::ProxyProtocol::Disable,
            P::V1 => service::ProxyProtocol::V1,
            P::V2 => service::ProxyProtocol::V2,
            P::V1Insecure => service::ProxyProtocol::V1Insecure,
            P::V2Insecure => service::ProxyProtocol::V2Insecure,
        },
        toa: c.toa,
        uoa: match c.uoa {
            U::Disable => service::UoaMode::Disable,
            U::Opp => service::UoaMode::Opp,
            U::Ipo => service::UoaMode::Ipo,
        },
    }
}

fn client_addr_to_proto(c: &service::ClientAddr) -> proto::ClientAddr {
    let proxy_protocol = proto::ProxyProtocol::from_name(c.proxy.name()).unwrap_or_default();
    proto::ClientAddr {
        proxy_protocol,
        toa: c.toa,
        uoa: proto::UoaMode::from_name(c.uoa.name()).unwrap_or_default(),
    }
}

fn limits_from_proto(l: &proto::Limits) -> Result<service::ServiceLimits, Reply> {
    if l.src_prefix > 32 {
        return Err(err(
            Errno::Einval,
            format!(
                "source prefix length {} is out of range 0..32",
                l.src_prefix
            ),
        ));
    }
    if l.src_prefix != 0 && l.src_rate == 0 {
        return Err(err(Errno::Einval, "a source prefix needs a source rate"));
    }
    Ok(service::ServiceLimits {
        max_conns: l.conn_limit,
        conn_rate: service::Rate {
            per_sec: l.conn_rate,
            burst: l.conn_burst,
        },
        src_rate: service::Rate {
            per_sec: l.src_rate,
            burst: l.src_burst,
        },
        src_prefix: l.src_prefix,
    })
}

fn limits_to_proto(l: &service::ServiceLimits) -> proto::Limits {
    proto::Limits {
        conn_limit: l.max_conns,
        conn_rate: l.conn_rate.per_sec,
        conn_burst: l.conn_rate.burst,
        src_rate: l.src_rate.per_sec,
        src_burst: l.src_rate.burst,
        src_prefix: l.src_prefix,
    }
}

fn entries(lists: &service::AccessLists, kind: ListKind) -> Vec<String> {
    lists.entries(kind).iter().map(|p| p.to_string()).collect()
}

fn list_kind(l: proto::AccessList) -> ListKind {
    match l {
        proto::AccessList::Deny => ListKind::Deny,
        proto::AccessList::Allow => ListKind::Allow,
    }
}

/// `-U`/`-V`/`-O`/`-Y`: change a service's access list.
fn change_access(
    st: &mut State,
    service: &proto::ServiceKey,
    list: proto::AccessList,
    entry: &str,
    add: bool,
) -> Result<(), Reply> {
    let key = key_from_proto(service)?;
    let prefix: service::Prefix = entry
        .parse()
        .map_err(|e: service::access::PrefixError| err(Errno::Einval, e.to_string()))?;
    let kind = list_kind(list);
    let r = if add {
        st.services.add_list_entry(&key, kind, prefix)
    } else {
        st.services.del_list_entry(&key, kind, prefix)
    };
    r.map_err(|e| service_err(&e))
}

fn service_to_proto(c: &ServiceConfig) -> proto::ServiceSpec {
    proto::ServiceSpec {
        key: key_to_proto(&c.key),
        scheduler: c.scheduler.clone(),
        sched_flags: c
            .flags
            .names(&c.scheduler)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        persistent: c.persistence,
        netmask: if c.key.is_ipv6() {
            u32::from(c.prefix6)
        } else {
            c.netmask.to_bits()
        },
        pe: None,
        ops: c.one_packet,
        synproxy: c.synproxy,
        limits: limits_to_proto(&c.limits),
        client_addr: client_addr_to_proto(&c.client_addr),
    }
}

fn dest_from_proto(d: &proto::DestSpec) -> Result<DestConfig, Reply> {
    let method = match d.forward {
        proto::Forward::Masq => ForwardMethod::Masq,
        proto::Forward::Route => ForwardMethod::Route,
        proto::Forward::Tunnel => ForwardMethod::Tunnel,
        proto::Forward::FullNat => ForwardMethod::FullNat,
        proto::Forward::Local => return Err(err(Errno::Einval, "the Local method cannot be set")),
    };
    if d.forward == proto::Forward::Tunnel && d.tun.tun_type != proto::TunType::Ipip {
        let name = match d.tun.tun_type {
            proto::TunType::Gue => "gue",
            _ => "gre",
        };
        return Err(err(
            Errno::Eopnotsupp,
            format!("--tun-type {name} is not implemented by rvs yet (only ipip tunnels)"),
        ));
    }
    Ok(DestConfig {
        addr: d.addr,
        port: d.port,
        method,
        weight: d.weight,
        upper_threshold: d.u_threshold,
        lower_threshold: d.l_threshold,
    })
}

fn forward_to_proto(m: ForwardMethod) -> proto::Forward {
    match m {
        ForwardMethod::Masq => proto::Forward::Masq,
        ForwardMethod::Route => proto::Forward::Route,
        ForwardMethod::Tunnel => proto::Forward::Tunnel,
        ForwardMethod::FullNat => proto::Forward::FullNat,
    }
}

fn stats_to_proto(t: &service::Totals) -> proto::Stats {
    proto::Stats {
        conns: t.conns,
        inpkts: t.inpkts,
        outpkts: t.outpkts,
        inbytes: t.inbytes,
        outbytes: t.outbytes,
    }
}

fn service_info(s: &service::Service, rates: &RateBook) -> ServiceInfo {
    let dests = s
        .dests()
        .iter()
        .map(|d| {
            let c = d.config();
            let totals = d.stats().sum();
            DestInfo {
                spec: proto::DestSpec {
                    addr: c.addr,
                    port: c.port,
                    forward: forward_to_proto(c.method),
                    weight: c.weight,
                    u_threshold: c.upper_threshold,
                    l_threshold: c.lower_threshold,
                    tun: proto::TunSpec::default(),
                },
                active_conns: clamp32(totals.active),
                inact_conns: clamp32(totals.inactive),
                persist_conns: clamp32(totals.persistent),
                stats: stats_to_proto(&totals),
                rates: rates.dest(d.id()),
            }
        })
        .collect();
    ServiceInfo {
        spec: service_to_proto(s.config()),
        stats: stats_to_proto(&s.stats().sum()),
        rates: rates.service(s.id()),
        dests,
        access: proto::AccessInfo {
            deny: entries(s.access(), ListKind::Deny),
            allow: entries(s.access(), ListKind::Allow),
        },
        refused: service::stats::REFUSALS
            .iter()
            .zip(s.stats().refusals())
            .filter(|(_, n)| *n != 0)
            .map(|(r, n)| (r.label().to_owned(), n))
            .collect(),
    }
}

fn clamp32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn proto_name(p: u8) -> String {
    match p {
        0 => "IP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        132 => "SCTP".into(),
        1 => "ICMP".into(),
        n => format!("IP_{n}"),
    }
}

impl State {
    fn tables(&mut self) -> Tables {
        let mut laddrs = LaddrTable::new(self.n_workers);
        for (key, l) in &self.laddrs {
            if let Some(svc) = self.services.service(key) {
                laddrs.set(svc.id(), l.clone());
            }
        }
        Tables {
            services: self.services.snapshot(),
            addrs: self.addrs.clone(),
            routes: self.routes.clone(),
            static_neighs: self.static_neighs.clone(),
            v6: Tables6 {
                routes: self.routes6.clone(),
                static_neighs: self.static_neighs6.clone(),
            },
            timeouts: self.timeouts,
            laddrs: Arc::new(laddrs),
            persist: self.persist.clone(),
            fwmarks: self.classifier.clone(),
            sloppy_tcp: self.sloppy_tcp,
            synproxy: self.synproxy,
        }
    }

    fn rule_from_proto(r: &proto::FwmarkRule) -> Result<MarkRule, Reply> {
        MarkRule::parse(r.mark, &r.proto, &r.dst, &r.ports)
            .map_err(|e| err(Errno::Einval, format!("fwmark rule: {e}")))
    }

    fn add_fwmark_rule(&mut self, r: &proto::FwmarkRule) -> Result<(), Reply> {
        let rule = Self::rule_from_proto(r)?;
        if !self.fwmarks.contains(&rule) {
            self.fwmarks.push(rule);
            self.classifier = Arc::new(Classifier::new(self.fwmarks.clone()));
        }
        Ok(())
    }

    fn del_fwmark_rule(&mut self, r: &proto::FwmarkRule) -> Result<(), Reply> {
        let rule = Self::rule_from_proto(r)?;
        let i = self
            .fwmarks
            .iter()
            .position(|x| *x == rule)
            .ok_or_else(|| err(Errno::Enoent, format!("no fwmark rule {rule}")))?;
        self.fwmarks.remove(i);
        self.classifier = Arc::new(Classifier::new(self.fwmarks.clone()));
        Ok(())
    }

    fn list_fwmark_rules(&self) -> Reply {
        Reply::FwmarkRules(
            self.fwmarks
                .iter()
                .map(|r| proto::FwmarkRule {
                    mark: r.mark,
                    proto: r.proto.name().to_owned(),
                    dst: format!("{}/{}", r.dst, r.len),
                    ports: r.ports_text(),
                })
                .collect(),
        )
    }

    /// Forget the local addresses of services that no longer exist.
    fn prune_laddrs(&mut self) {
        let services = &self.services;
        self.laddrs.retain(|(k, _)| services.service(k).is_some());
    }

    /// The service a local-address request names, and the address and port it gives.
    fn laddr_args(
        &self,
        service: &proto::ServiceKey,
        laddr: &proto::LaddrSpec,
    ) -> Result<(ServiceKey, IpAddr, PortId), Reply> {
        let key = key_from_proto(service)?;
        if self.services.service(&key).is_none() {
            return Err(service_err(&ServiceError::NoSuchService(key)));
        }
        let ip = laddr.addr;
        let port = self
            .port_names
            .iter()
            .position(|n| *n == laddr.ifname)
            .and_then(|i| PortId::try_from(i).ok())
            .ok_or_else(|| err(Errno::Einval, format!("no port named {}", laddr.ifname)))?;
        Ok((key, ip, port))
    }

    fn add_laddr(
        &mut self,
        service: &proto::ServiceKey,
        laddr: &proto::LaddrSpec,
    ) -> Result<(), Reply> {
        let (key, ip, port) = self.laddr_args(service, laddr)?;
        if self.services.services().iter().any(|s| match s.key() {
            ServiceKey::Addr { vip, .. } => vip == ip,
            ServiceKey::Fwmark(_) => false,
        }) || match ip {
            IpAddr::V4(a) => self.addrs.owns(a).is_some(),
            IpAddr::V6(a) => self.addrs.owns6(a).is_some(),
        } {
            return Err(err(
                Errno::Einval,
                format!("{ip} is a VIP or an address of the director"),
            ));
        }
        // A LIP may serve several services (its ports are allocated per (LIP, RS) whatever the
        // service); its counters are the LIP's, shared by those services.
        let stats = self
            .laddrs
            .iter()
            .flat_map(|(_, l)| l.iter())
            .find(|a| a.ip == ip)
            .map(|a| a.stats.clone())
            .unwrap_or_else(|| Arc::new(LaddrStats::new(self.n_workers)));
        let list = match self.laddrs.iter_mut().position(|(k, _)| *k == key) {
            Some(i) => &mut self.laddrs[i].1,
            None => {
                self.laddrs.push((key, Vec::new()));
                let last = self.laddrs.len() - 1;
                &mut self.laddrs[last].1
            }
        };
        if list.iter().any(|a| a.ip == ip) {
            return Err(err(Errno::Eexist, "Local address already exists"));
        }
        list.push(Laddr {
            ip,
            port,
            ifname: laddr.ifname.clone(),
            stats,
        });
        Ok(())
    }

    fn del_laddr(
        &mut self,
        service: &proto::ServiceKey,
        laddr: &proto::LaddrSpec,
    ) -> Result<(), Reply> {
        let (key, ip, _) = self.laddr_args(service, laddr)?;
        let gone = || err(Errno::Enoent, "No such local address");
        let i = self
            .laddrs
            .iter()
            .position(|(k, _)| *k == key)
            .ok_or_else(gone)?;
        let list = &mut self.laddrs[i].1;
        let j = list.iter().position(|a| a.ip == ip).ok_or_else(gone)?;
        list.remove(j);
        if list.is_empty() {
            self.laddrs.remove(i);
        }
        Ok(())
    }

    fn list_laddrs(&self, service: Option<&proto::ServiceKey>) -> Reply {
        let only = match service {
            None => None,
            Some(k) => match key_from_proto(k) {
                Ok(key) if self.services.service(&key).is_some() => Some(key),
                Ok(key) => return service_err(&ServiceError::NoSuchService(key)),
                Err(r) => return r,
            },
        };
        let list = self
            .laddrs
            .iter()
            .filter(|(k, _)| only.is_none_or(|o| o == *k))
            .map(|(k, l)| proto::ServiceLaddrs {
                service: key_to_proto(k),
                laddrs: l
                    .iter()
                    .map(|a| proto::LaddrInfo {
                        spec: proto::LaddrSpec {
                            addr: a.ip,
                            ifname: a.ifname.clone(),
                        },
                        port_conflicts: a.stats.conflicts(),
                        conns: a.stats.conns(),
                    })
                    .collect(),
            })
            .collect();
        Reply::Laddrs(list)
    }
}

impl ControlPlane {
    /// The initial state: addresses and routes from the config, no services.
    pub fn new(conf: &Validated, n_workers: usize) -> anyhow::Result<ControlPlane> {
        let mut addrs = OwnedAddrs::new();
        for (i, a) in conf.addrs.iter().enumerate() {
            addrs
                .add(a.port, a.prefix.addr, a.prefix.len)
                .with_context(|| format!("{}: addr[{i}]", conf.file.display()))?;
        }
        for a in &conf.addrs6 {
            addrs
                .add6(a.port, a.prefix.addr, a.prefix.len)
                .with_context(|| format!("{}: addr {}", conf.file.display(), a.prefix))?;
        }
        let mut routes6 = RouteTable::with_connected6(&addrs);
        for r in &conf.routes6 {
            if let Some(g) = r.via
                && !addrs.on_port6(r.port).any(|a| a.contains(g))
                && !is_link_local6(g)
            {
                bail!(
                    "{}: route {}: gateway {g} is not on a connected IPv6 network of its port",
                    conf.file.display(),
                    r.prefix
                );
            }
            routes6
                .add(Route {
                    prefix: r.prefix.addr,
                    len: r.prefix.len,
                    via: r.via,
                    port: r.port,
                })
                .with_context(|| format!("{}: route {}", conf.file.display(), r.prefix))?;
        }
        let mut routes = RouteTable::with_connected(&addrs);
        for (i, r) in conf.routes.iter().enumerate() {
            routes
                .add(Route {
                    prefix: r.prefix.addr,
                    len: r.prefix.len,
                    via: r.via,
                    port: r.port,
                })
                .with_context(|| format!("{}: route[{i}]", conf.file.display()))?;
        }
        let mut state = State {
            services: ServiceTable::new(n_workers),
            timeouts: conf.timeouts,
            addrs,
            routes,
            static_neighs: conf
                .neighs
                .iter()
                .map(|n| StaticNeigh {
                    port: n.port,
                    ip: n.ip,
                    mac: MacAddr(n.mac),
                })
                .collect(),
            routes6,
            static_neighs6: conf
                .neighs6
                .iter()
                .map(|n| StaticNeigh {
                    port: n.port,
                    ip: n.ip,
                    mac: MacAddr(n.mac),
                })
                .collect(),
            laddrs: Vec::new(),
            port_names: conf.ports.iter().map(|p| p.name.clone()).collect(),
            n_workers,
            fwmarks: conf.fwmarks.clone(),
            classifier: Arc::new(Classifier::new(conf.fwmarks.clone())),
            persist: Arc::new(PersistTable::new(conf.conn_capacity as usize, n_workers)),
            sloppy_tcp: conf.sloppy_tcp,
            synproxy: dataplane::synproxy::SynProxyConf::new(cookie_secrets()?),
        };
        let tables = Arc::new(ArcSwap::from_pointee(state.tables()));
        Ok(ControlPlane {
            state: Mutex::new(state),
            tables,
            conn_capacity: conf.conn_capacity,
            workers: Mutex::new(Vec::new()),
            ports: Mutex::new(Vec::new()),
            rates: Mutex::new(RateBook::default()),
            samples: Arc::new(RuntimeSamples::default()),
            daemon_ops: Mutex::new(None),
            socket_stats: Arc::default(),
        })
    }

    /// The control socket's counters (shared with its server).
    pub fn socket_stats(&self) -> Arc<super::server::SocketStats> {
        self.socket_stats.clone()
    }

    /// The main loop takes stop and reload requests from now on (`None`: no longer).
    pub fn set_daemon_ops(&self, ops: Option<crossbeam_channel::Sender<DaemonOp>>) {
        *lock(&self.daemon_ops) = ops;
    }

    /// Hand a stop or reload to the main loop and wait for its answer.
    fn daemon_op(&self, make: impl FnOnce(crossbeam_channel::Sender<Reply>) -> DaemonOp) -> Reply {
        let Some(ops) = lock(&self.daemon_ops).clone() else {
            return err(Errno::Einval, "rvsd is starting or stopping; try again");
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        if ops.send(make(tx)).is_err() {
            return err(Errno::Einval, "rvsd is stopping");
        }
        rx.recv_timeout(DAEMON_OP_TIMEOUT)
            .unwrap_or_else(|_| err(Errno::Einval, "rvsd did not answer in time"))
    }

    /// The published tables the workers read.
    pub fn tables(&self) -> Arc<ArcSwap<Tables>> {
        self.tables.clone()
    }

    /// Workers and ports are running: listings can ask them.
    pub fn attach(&self, workers: Vec<WorkerHandle>, ports: Vec<PortFacts>) {
        *lock(&self.workers) = workers;
        *lock(&self.ports) = ports;
    }

    /// Workers are stopping: listings stop asking them. Returns the handles for a last look.
    pub fn detach(&self) -> Vec<WorkerHandle> {
        std::mem::take(&mut *lock(&self.workers))
    }

    /// Periodic control-plane work, called every few tens of milliseconds: the rate
    /// estimators on their own 2 s schedule.
    pub fn housekeeping(&self) {
        let st = lock(&self.state);
        lock(&self.rates).tick(std::time::Instant::now(), st.services.services());
    }

    /// Every service with its dests, counters and rates: what `ipvsadm -Ln` lists and what the
    /// metrics endpoint exports (one source of truth).
    pub fn service_listing(&self) -> Vec<ServiceInfo> {
        let st = lock(&self.state);
        let rates = lock(&self.rates);
        st.services
            .services()
            .iter()
            .map(|s| service_info(s, &rates))
            .collect()
    }

    /// Where the main loop puts its port and mempool samples.
    pub fn samples(&self) -> Arc<RuntimeSamples> {
        self.samples.clone()
    }

    /// The running workers' handles (empty before `attach` and after `detach`).
    pub fn worker_handles(&self) -> Vec<WorkerHandle> {
        lock(&self.workers).clone()
    }

    /// The configured ports' facts.
    pub fn port_facts(&self) -> Vec<PortFacts> {
        lock(&self.ports).clone()
    }

    /// `-Z`: zero the counters of one service or all, and restart their rate estimators.
    fn zero(&self, service: Option<&proto::ServiceKey>) -> Reply {
        let st = lock(&self.state);
        let mut rates = lock(&self.rates);
        let zeroed: Vec<&service::Service> = match service {
            None => {
                st.services.zero_all();
                st.services.services().iter().collect()
            }
            Some(k) => {
                let key = match key_from_proto(k) {
                    Ok(k) => k,
                    Err(r) => return r,
                };
                if let Err(e) = st.services.zero_service(&key) {
                    return service_err(&e);
                }
                st.services.service(&key).into_iter().collect()
            }
        };
        zeroed.iter().for_each(|s| rates.reset(s));
        tracing::info!(change = "zero counters", from = %origin::current(), services = zeroed.len(), "control: applied");
        Reply::Ok
    }

    /// Replay an `ipvsadm -S` file (`[ipvs] rules` in the configuration file) through the ipvsadm
    /// parser, as `ipvsadm -R` would. Stops at the first failing line.
    pub fn replay_rules(&self, path: &Path) -> anyhow::Result<()> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let _origin = origin::Scope::enter(format!("rules file {}", path.display()));
        let mut daemon = LocalDaemon(self);
        let resolver = ctl::ipvsadm::resolve::Resolver::system();
        let args = ["ipvsadm".to_owned(), "-R".to_owned()];
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let code = ctl::ipvsadm::run(
            &args,
            &mut daemon,
            &resolver,
            &mut std::io::BufReader::new(file),
            &mut out,
            &mut errors,
        );
        if code != 0 {
            let text = String::from_utf8_lossy(&errors)
                .replace("standard input", &path.display().to_string());
            bail!(
                "{}: {}",
                path.display(),
                text.trim_end().replace('\n', "; ")
            );
        }
        tracing::info!(file = %path.display(), "ipvs rules replayed");
        Ok(())
    }

    fn publish(&self, st: &mut State) {
        self.tables.store(Arc::new(st.tables()));
    }

    fn change(&self, what: &str, f: impl FnOnce(&mut State) -> Result<(), Reply>) -> Reply {
        let mut st = lock(&self.state);
        match f(&mut st) {
            Ok(()) => {
                self.publish(&mut st);
                tracing::info!(change = what, from = %origin::current(), "control: applied");
                Reply::Ok
            }
            Err(reply) => {
                if let Reply::Error(e) = &reply {
                    tracing::info!(change = what, from = %origin::current(), errno = ?e.errno, "control: refused: {}", e.message);
                }
                reply
            }
        }
    }

    fn list_services(&self, service: Option<&proto::ServiceKey>) -> Reply {
        let st = lock(&self.state);
        let rates = lock(&self.rates);
        match service {
            None => Reply::Services(
                st.services
                    .services()
                    .iter()
                    .map(|s| service_info(s, &rates))
                    .collect(),
            ),
            Some(k) => {
                let key = match key_from_proto(k) {
                    Ok(k) => k,
                    Err(r) => return r,
                };
                match st.services.service(&key) {
                    Some(s) => Reply::Services(vec![service_info(s, &rates)]),
                    None => service_err(&ServiceError::NoSuchService(key)),
                }
            }
        }
    }

    fn list_conns(&self) -> Reply {
        let workers = lock(&self.workers).clone();
        let mut pending = Vec::new();
        for w in &workers {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if w.requests
                .send_timeout(WorkerRequest::ListConns(tx), WORKER_REPLY_TIMEOUT)
                .is_ok()
            {
                pending.push(rx);
            }
        }
        let mut conns = Vec::new();
        for rx in pending {
            match rx.recv_timeout(WORKER_REPLY_TIMEOUT) {
                Ok(views) => conns.extend(views.into_iter().map(|v| ConnInfo {
                    protocol: proto_name(v.proto),
                    expire_secs: clamp32(v.expires_in),
                    state: v.state.to_owned(),
                    client: v.client,
                    virt: v.virt,
                    dest: v.dest,
                    pe_name: None,
                    pe_data: None,
                })),
                Err(_) => return err(Errno::Enomem, "a worker did not answer in time"),
            }
        }
        Reply::Conns(conns)
    }
}

/// The control plane as an ipvsadm `Daemon`, for replaying rule files in-process.
struct LocalDaemon<'a>(&'a ControlPlane);

impl ctl::ipvsadm::Daemon for LocalDaemon<'_> {
    fn call(&mut self, request: Request) -> Result<Reply, ctl::client::ClientError> {
        Ok(self.0.handle(request))
    }
}

impl Handler for ControlPlane {
    fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Hello => Reply::Hello(super::server::hello()),
            Request::GetInfo => Reply::Info(Info {
                version_code: IPVS_VERSION_CODE,
                conn_tab_size: self.conn_capacity,
            }),
            Request::AddService(spec) => self.change("add service", |st| {
                let c = service_from_proto(&spec)?;
                st.services
                    .add_service(c)
                    .map(drop)
                    .map_err(|e| service_err(&e))
            }),
            Request::EditService(spec) => self.change("edit service", |st| {
                let c = service_from_proto(&spec)?;
                st.services.edit_service(c).map_err(|e| service_err(&e))
            }),
            Request::DelService(k) => self.change("delete service", |st| {
                let key = key_from_proto(&k)?;
                st.services.del_service(&key).map_err(|e| service_err(&e))?;
                st.prune_laddrs();
                Ok(())
            }),
            Request::Clear => self.change("clear", |st| {
                st.services.clear();
                st.prune_laddrs();
                Ok(())
            }),
            Request::AddDest { service, dest } => self.change("add dest", |st| {
                let key = key_from_proto(&service)?;
                let d = dest_from_proto(&dest)?;
                st.services
                    .add_dest(&key, d)
                    .map(drop)
                    .map_err(|e| service_err(&e))
            }),
            Request::EditDest { service, dest } => self.change("edit dest", |st| {
                let key = key_from_proto(&service)?;
                let d = dest_from_proto(&dest)?;
                st.services.edit_dest(&key, d).map_err(|e| service_err(&e))
            }),
            Request::DelDest {
                service,
                addr,
                port,
            } => self.change("delete dest", |st| {
                let key = key_from_proto(&service)?;
                st.services
                    .del_dest(&key, addr, port)
                    .map_err(|e| service_err(&e))
            }),
            Request::ListServices { service } => self.list_services(service.as_ref()),
            Request::ListConns => self.list_conns(),
            Request::Zero { service } => self.zero(service.as_ref()),
            Request::SetTimeouts(t) => self.change("set timeouts", |st| {
                st.timeouts
                    .set(t.tcp, t.tcpfin, t.udp)
                    .map_err(|e| err(Errno::Einval, e.to_string()))
            }),
            Request::GetTimeouts => {
                let t = lock(&self.state).timeouts;
                Reply::Timeouts(proto::Timeouts {
                    tcp: t.tcp_established,
                    tcpfin: t.tcp_fin_wait,
                    udp: t.udp,
                })
            }
            Request::AddLaddr { service, laddr } => {
                self.change("add laddr", |st| st.add_laddr(&service, &laddr))
            }
            Request::DelLaddr { service, laddr } => {
                self.change("delete laddr", |st| st.del_laddr(&service, &laddr))
            }
            Request::ListLaddrs { service } => lock(&self.state).list_laddrs(service.as_ref()),
            Request::AddFwmarkRule(r) => {
                self.change("add fwmark rule", |st| st.add_fwmark_rule(&r))
            }
            Request::DelFwmarkRule(r) => {
                self.change("delete fwmark rule", |st| st.del_fwmark_rule(&r))
            }
            Request::ListFwmarkRules => lock(&self.state).list_fwmark_rules(),
            Request::Stop { save_state } => {
                self.daemon_op(|reply| DaemonOp::Stop { save_state, reply })
            }
            Request::Reload => self.daemon_op(DaemonOp::Reload),
            Request::AddAccess {
                service,
                list,
                entry,
            } => self.change("add access-list entry", |st| {
                change_access(st, &service, list, &entry, true)
            }),
            Request::DelAccess {
                service,
                list,
                entry,
            } => self.change("delete access-list entry", |st| {
                change_access(st, &service, list, &entry, false)
            }),
            other => self.handle_net(other),
        }
    }
}

/// 32 random bytes for the SYN-cookie secrets, from the kernel's generator.
fn cookie_secrets() -> std::io::Result<dataplane::synproxy::cookie::Secrets> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(dataplane::synproxy::cookie::Secrets::from_bytes(b))
}
