//! SIGHUP: what changed between the running configuration and the file as it reads now.
//!
//! A reload applies only what can change while the ports stay open: owned addresses, routes,
//! static neighbours, firewall-mark rules, timeouts, `sloppy_tcp`, the `[ipvs] rules` file,
//! the idle-polling settings and the metrics address. Anything else (EAL, cores, mbufs, ports,
//! the control socket, the connection capacity) needs a restart: [`restart_only`] names every
//! such key, and the reload is then refused whole, as it is for a file that does not parse or
//! validate. The comparison is between the two *files* (the one rvsd last read and the one it
//! reads now), so what was changed at run time through the control socket and is not in the
//! file stays as it is.
//!
//! This module only computes; `control::plane` applies the table changes (each through the same
//! request handlers the control socket uses, so each is checked and logged the same way) and
//! the runtime the idle and metrics settings.

use std::net::IpAddr;

use ctl::proto::{self, AddrSpec, NeighSpec, Request, RouteSpec};

use crate::config::{IdleConf, Validated};

/// The keys whose change needs a restart, in file order; empty when the reload may proceed.
pub fn restart_only(old: &Validated, new: &Validated) -> Vec<String> {
    let mut keys = Vec::new();
    if old.lcores != new.lcores || old.lcore_cpus != new.lcore_cpus {
        keys.push("dpdk.cores".to_owned());
    }
    if old.eal_args != new.eal_args {
        keys.push("dpdk.args".to_owned());
    }
    if old.mbufs != new.mbufs {
        keys.push("dpdk.mbufs".to_owned());
    }
    let n = old.ports.len().max(new.ports.len());
    for i in 0..n {
        if old.ports.get(i) != new.ports.get(i) {
            keys.push(format!("port[{i}]"));
        }
    }
    if old.socket != new.socket {
        keys.push("control.socket".to_owned());
    }
    if old.control_limits.max_connections != new.control_limits.max_connections {
        keys.push("control.max_connections".to_owned());
    }
    if old.control_limits.idle_timeout != new.control_limits.idle_timeout {
        keys.push("control.idle_timeout_ms".to_owned());
    }
    if old.conn_capacity != new.conn_capacity {
        keys.push("dataplane.conn_capacity".to_owned());
    }
    // A changed conn_capacity changes the IPv6 table's default size with it: named once.
    if old.conn_capacity6 != new.conn_capacity6 && old.conn_capacity == new.conn_capacity {
        keys.push("dataplane.conn_capacity_v6".to_owned());
    }
    // Each worker's neighbour table is sized and timed when the worker starts.
    if old.neigh != new.neigh {
        keys.push("dataplane.neigh".to_owned());
    }
    if old.icmp != new.icmp {
        keys.push("dataplane.icmp".to_owned());
    }
    keys
}

/// The changes to the network tables (addresses, routes, neighbours), as control requests in
/// the order they must be applied: removals first (routes before the addresses their gateways
/// are on), then additions (addresses before the routes through them).
pub fn net_requests(old: &Validated, new: &Validated) -> Vec<Request> {
    let port = |conf: &Validated, i: u16| {
        conf.ports
            .get(usize::from(i))
            .map_or_else(String::new, |p| p.name.clone())
    };
    let addr = |conf: &Validated, a: &crate::config::AddrConf| AddrSpec {
        port: port(conf, a.port),
        addr: IpAddr::V4(a.prefix.addr),
        prefix_len: a.prefix.len,
    };
    let route = |conf: &Validated, r: &crate::config::RouteConf| RouteSpec {
        prefix: IpAddr::V4(r.prefix.addr),
        len: r.prefix.len,
        via: r.via.map(IpAddr::V4),
        port: port(conf, r.port),
    };
    let neigh = |conf: &Validated, n: &crate::config::NeighConf| NeighSpec {
        ip: IpAddr::V4(n.ip),
        mac: n.mac,
        port: port(conf, n.port),
    };
    let addr6 = |conf: &Validated, a: &crate::config::Addr6Conf| AddrSpec {
        port: port(conf, a.port),
        addr: IpAddr::V6(a.prefix.addr),
        prefix_len: a.prefix.len,
    };
    let route6 = |conf: &Validated, r: &crate::config::Route6Conf| RouteSpec {
        prefix: IpAddr::V6(r.prefix.addr),
        len: r.prefix.len,
        via: r.via.map(IpAddr::V6),
        port: port(conf, r.port),
    };
    let neigh6 = |conf: &Validated, n: &crate::config::Neigh6Conf| NeighSpec {
        ip: IpAddr::V6(n.ip),
        mac: n.mac,
        port: port(conf, n.port),
    };
    let addrs = |c: &Validated| -> Vec<AddrSpec> {
        let v4 = c.addrs.iter().map(|a| addr(c, a));
        v4.chain(c.addrs6.iter().map(|a| addr6(c, a))).collect()
    };
    let routes = |c: &Validated| -> Vec<RouteSpec> {
        let v4 = c.routes.iter().map(|r| route(c, r));
        v4.chain(c.routes6.iter().map(|r| route6(c, r))).collect()
    };
    let neighs = |c: &Validated| -> Vec<NeighSpec> {
        let v4 = c.neighs.iter().map(|n| neigh(c, n));
        v4.chain(c.neighs6.iter().map(|n| neigh6(c, n))).collect()
    };
    let (old_addrs, new_addrs) = (addrs(old), addrs(new));
    let (old_routes, new_routes) = (routes(old), routes(new));
    let (old_neighs, new_neighs) = (neighs(old), neighs(new));

    let mut out = Vec::new();
    for r in old_routes.iter().filter(|r| !new_routes.contains(r)) {
        out.push(Request::DelRoute {
            prefix: r.prefix,
            len: r.len,
        });
    }
    for n in old_neighs.iter().filter(|n| !new_neighs.contains(n)) {
        // A neighbour whose MAC changed is replaced by the add below.
        let replaced = new_neighs.iter().any(|m| m.ip == n.ip && m.port == n.port);
        if !replaced {
            out.push(Request::DelNeigh {
                ip: n.ip,
                port: n.port.clone(),
            });
        }
    }
    for a in old_addrs.iter().filter(|a| !new_addrs.contains(a)) {
        out.push(Request::DelAddr(a.clone()));
    }
    for a in new_addrs.iter().filter(|a| !old_addrs.contains(a)) {
        out.push(Request::AddAddr(a.clone()));
    }
    for r in new_routes.iter().filter(|r| !old_routes.contains(r)) {
        out.push(Request::AddRoute(r.clone()));
    }
    for n in new_neighs.iter().filter(|n| !old_neighs.contains(n)) {
        out.push(Request::AddNeigh(n.clone()));
    }
    out
}

/// The changes that turn the services of one rules file (`old`, as listed after replaying it)
/// into those of another (`new`), as control requests: services gone are deleted, new ones
/// added with their dests, and for services in both the scheduler settings and dests are
/// edited, added or deleted where they differ. Counters are not compared.
pub fn service_requests(old: &[proto::ServiceInfo], new: &[proto::ServiceInfo]) -> Vec<Request> {
    let mut out = Vec::new();
    for o in old {
        if !new.iter().any(|n| n.spec.key == o.spec.key) {
            out.push(Request::DelService(o.spec.key));
        }
    }
    for n in new {
        let key = n.spec.key;
        match old.iter().find(|o| o.spec.key == key) {
            None => {
                out.push(Request::AddService(n.spec.clone()));
                for d in &n.dests {
                    out.push(Request::AddDest {
                        service: key,
                        dest: d.spec.clone(),
                    });
                }
                access_requests(&mut out, key, &Default::default(), &n.access);
            }
            Some(o) => {
                if o.spec != n.spec {
                    out.push(Request::EditService(n.spec.clone()));
                }
                let same =
                    |a: &proto::DestSpec, b: &proto::DestSpec| a.addr == b.addr && a.port == b.port;
                for od in &o.dests {
                    if !n.dests.iter().any(|nd| same(&nd.spec, &od.spec)) {
                        out.push(Request::DelDest {
                            service: key,
                            addr: od.spec.addr,
                            port: od.spec.port,
                        });
                    }
                }
                for nd in &n.dests {
                    match o.dests.iter().find(|od| same(&od.spec, &nd.spec)) {
                        None => out.push(Request::AddDest {
                            service: key,
                            dest: nd.spec.clone(),
                        }),
                        Some(od) if od.spec != nd.spec => out.push(Request::EditDest {
                            service: key,
                            dest: nd.spec.clone(),
                        }),
                        Some(_) => {}
                    }
                }
                access_requests(&mut out, key, &o.access, &n.access);
            }
        }
    }
    out
}

/// The access-list entries to delete and add to turn `old` into `new`.
fn access_requests(
    out: &mut Vec<Request>,
    service: proto::ServiceKey,
    old: &proto::AccessInfo,
    new: &proto::AccessInfo,
) {
    for (list, o, n) in [
        (proto::AccessList::Deny, &old.deny, &new.deny),
        (proto::AccessList::Allow, &old.allow, &new.allow),
    ] {
        for e in o.iter().filter(|e| !n.contains(e)) {
            out.push(Request::DelAccess {
                service,
                list,
                entry: e.clone(),
            });
        }
        for e in n.iter().filter(|e| !o.contains(e)) {
            out.push(Request::AddAccess {
                service,
                list,
                entry: e.clone(),
            });
        }
    }
}

/// What an `[ipvs] rules` file sets up, read without applying it: the requests `ipvsadm -R`
/// would send, folded into services (with dests), local addresses and fwmark rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesModel {
    pub services: Vec<proto::ServiceInfo>,
    pub laddrs: Vec<(proto::ServiceKey, proto::LaddrSpec)>,
    pub fwmarks: Vec<proto::FwmarkRule>,
}

/// An ipvsadm `Daemon` that records instead of applying.
struct Recorder(RulesModel);

impl ctl::ipvsadm::Daemon for Recorder {
    fn call(&mut self, request: Request) -> Result<proto::Reply, ctl::client::ClientError> {
        let m = &mut self.0;
        let dest = |spec: proto::DestSpec| proto::DestInfo {
            spec,
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            stats: Default::default(),
            rates: Default::default(),
        };
        match request {
            Request::AddService(spec) | Request::EditService(spec) => {
                match m.services.iter_mut().find(|s| s.spec.key == spec.key) {
                    Some(s) => s.spec = spec,
                    None => m.services.push(proto::ServiceInfo {
                        refused: Default::default(),
                        access: Default::default(),
                        spec,
                        stats: Default::default(),
                        rates: Default::default(),
                        dests: Vec::new(),
                    }),
                }
            }
            Request::DelService(key) => m.services.retain(|s| s.spec.key != key),
            Request::Clear => m.services.clear(),
            Request::AddDest { service, dest: d } | Request::EditDest { service, dest: d } => {
                if let Some(s) = m.services.iter_mut().find(|s| s.spec.key == service) {
                    match s
                        .dests
                        .iter_mut()
                        .find(|x| x.spec.addr == d.addr && x.spec.port == d.port)
                    {
                        Some(x) => x.spec = d,
                        None => s.dests.push(dest(d)),
                    }
                }
            }
            Request::DelDest {
                service,
                addr,
                port,
            } => {
                if let Some(s) = m.services.iter_mut().find(|s| s.spec.key == service) {
                    s.dests
                        .retain(|x| !(x.spec.addr == addr && x.spec.port == port));
                }
            }
            Request::AddLaddr { service, laddr } => m.laddrs.push((service, laddr)),
            Request::DelLaddr { service, laddr } => {
                m.laddrs.retain(|(k, l)| !(*k == service && *l == laddr));
            }
            Request::AddFwmarkRule(r) => m.fwmarks.push(r),
            Request::DelFwmarkRule(r) => m.fwmarks.retain(|x| *x != r),
            Request::AddAccess {
                service,
                list,
                entry,
            } => {
                if let Some(s) = m.services.iter_mut().find(|s| s.spec.key == service) {
                    let l = match list {
                        proto::AccessList::Deny => &mut s.access.deny,
                        proto::AccessList::Allow => &mut s.access.allow,
                    };
                    if !l.contains(&entry) {
                        l.push(entry);
                    }
                }
            }
            Request::DelAccess {
                service,
                list,
                entry,
            } => {
                if let Some(s) = m.services.iter_mut().find(|s| s.spec.key == service) {
                    match list {
                        proto::AccessList::Deny => s.access.deny.retain(|e| *e != entry),
                        proto::AccessList::Allow => s.access.allow.retain(|e| *e != entry),
                    }
                }
            }
            _ => {}
        }
        Ok(proto::Reply::Ok)
    }
}

/// Read an `[ipvs] rules` file (`None`: no rules file, an empty model) into its model, without
/// applying anything. Errors name the file and the line ipvsadm refused.
pub fn read_rules(path: Option<&std::path::Path>) -> anyhow::Result<RulesModel> {
    let Some(path) = path else {
        return Ok(RulesModel::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let mut rec = Recorder(RulesModel::default());
    let resolver = ctl::ipvsadm::resolve::Resolver::system();
    let args = ["ipvsadm".to_owned(), "-R".to_owned()];
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    let code = ctl::ipvsadm::run(
        &args,
        &mut rec,
        &resolver,
        &mut std::io::Cursor::new(text.into_bytes()),
        &mut out,
        &mut errors,
    );
    if code != 0 {
        let text =
            String::from_utf8_lossy(&errors).replace("standard input", &path.display().to_string());
        anyhow::bail!(
            "{}: {}",
            path.display(),
            text.trim_end().replace('\n', "; ")
        );
    }
    Ok(rec.0)
}

/// Every request that turns the rules of `old` into those of `new`.
pub fn rules_requests(old: &RulesModel, new: &RulesModel) -> Vec<Request> {
    let mut out = Vec::new();
    for (service, laddr) in old.laddrs.iter().filter(|l| !new.laddrs.contains(l)) {
        out.push(Request::DelLaddr {
            service: *service,
            laddr: laddr.clone(),
        });
    }
    for r in old.fwmarks.iter().filter(|r| !new.fwmarks.contains(r)) {
        out.push(Request::DelFwmarkRule(r.clone()));
    }
    out.extend(service_requests(&old.services, &new.services));
    for r in new.fwmarks.iter().filter(|r| !old.fwmarks.contains(r)) {
        out.push(Request::AddFwmarkRule(r.clone()));
    }
    for (service, laddr) in new.laddrs.iter().filter(|l| !old.laddrs.contains(l)) {
        out.push(Request::AddLaddr {
            service: *service,
            laddr: laddr.clone(),
        });
    }
    out
}

/// `[[fwmark]]` rules of the configuration file: the removed ones, then the added ones, as
/// requests (an added rule goes after the rules already there).
pub fn fwmark_requests(old: &Validated, new: &Validated) -> Vec<Request> {
    let rule = |r: &dataplane::fwmark::MarkRule| proto::FwmarkRule {
        mark: r.mark,
        proto: r.proto.name().to_owned(),
        dst: format!("{}/{}", r.dst, r.len),
        ports: r.ports_text(),
    };
    let mut out = Vec::new();
    for r in old.fwmarks.iter().filter(|r| !new.fwmarks.contains(r)) {
        out.push(Request::DelFwmarkRule(rule(r)));
    }
    for r in new.fwmarks.iter().filter(|r| !old.fwmarks.contains(r)) {
        out.push(Request::AddFwmarkRule(rule(r)));
    }
    out
}

/// The settings outside the tables a reload may change, each `Some` when it changed.
#[derive(Debug, Default, PartialEq)]
pub struct Settings {
    pub idle: Option<IdleConf>,
    pub metrics: Option<Option<std::net::SocketAddr>>,
}

/// Which settings outside the tables changed.
pub fn settings(old: &Validated, new: &Validated) -> Settings {
    Settings {
        idle: (old.idle != new.idle).then_some(new.idle),
        metrics: (old.metrics != new.metrics).then_some(new.metrics),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
[dpdk]
cores = "0-1"
[[port]]
name = "dp0"
device = "net_null0"
[[port]]
name = "dp1"
device = "net_null1"
[[addr]]
port = "dp0"
ip = "198.18.0.1/24"
[[addr]]
port = "dp1"
ip = "198.18.1.1/24"
[[route]]
prefix = "198.18.8.0/24"
via = "198.18.1.254"
port = "dp1"
[[neigh]]
port = "dp1"
ip = "198.18.1.10"
mac = "02:00:00:00:01:10"
"#;

    fn conf(text: &str) -> Validated {
        crate::config::parse(Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn nothing_changed_nothing_to_do() {
        let a = conf(BASE);
        assert!(restart_only(&a, &a).is_empty());
        assert!(net_requests(&a, &a).is_empty());
        assert_eq!(settings(&a, &a), Settings::default());
    }

    #[test]
    fn restart_only_keys_are_named() {
        let a = conf(BASE);
        let b = conf(
            &(BASE
                .replace("cores = \"0-1\"", "cores = \"0-2\"\nmbufs = 4096")
                .replace("net_null1", "net_null2")
                + "[control]\nsocket = \"/tmp/other.sock\"\nmax_connections = 8\n\
                   idle_timeout_ms = 500\n[dataplane]\nconn_capacity = 2048\n\
                   [dataplane.neigh]\nprobes = 5\n"),
        );
        assert_eq!(
            restart_only(&a, &b),
            [
                "dpdk.cores",
                "dpdk.mbufs",
                "port[1]",
                "control.socket",
                "control.max_connections",
                "control.idle_timeout_ms",
                "dataplane.conn_capacity",
                "dataplane.neigh"
            ]
        );
    }

    #[test]
    fn ipv6_network_changes_become_requests_too() {
        let v6 = |addr: &str, route: &str, mac: &str| {
            format!(
                "{BASE}[[addr]]\nport = \"dp0\"\nip = \"{addr}\"\n\
                 [[route]]\nprefix = \"{route}\"\nvia = \"2001:2::fe\"\nport = \"dp0\"\n\
                 [[neigh]]\nport = \"dp0\"\nip = \"2001:2::fe\"\nmac = \"{mac}\"\n"
            )
        };
        let a = conf(&v6("2001:2::1/64", "2001:2:8::/48", "02:00:00:00:00:fe"));
        assert!(net_requests(&a, &a).is_empty());
        let b = conf(&v6("2001:2::2/64", "2001:2:9::/48", "02:00:00:00:00:fd"));
        let got: Vec<String> = net_requests(&a, &b)
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(got[0].contains("del_route") && got[0].contains("2001:2:8::"));
        assert!(got[1].contains("del_addr") && got[1].contains("2001:2::1"));
        assert!(got[2].contains("add_addr") && got[2].contains("2001:2::2"));
        assert!(got[3].contains("add_route") && got[3].contains("2001:2:9::"));
        assert!(got[4].contains("add_neigh") && got[4].contains("2001:2::fe"));
        // Without IPv6 entries at all: every one of them is removed.
        let got = net_requests(&a, &conf(BASE));
        assert_eq!(got.len(), 3, "{got:#?}");
    }

    #[test]
    fn network_changes_become_requests_in_order() {
        let a = conf(BASE);
        let b = conf(
            &BASE
                .replace("198.18.8.0/24", "198.18.9.0/24")
                .replace("02:00:00:00:01:10", "02:00:00:00:01:11")
                .replace("ip = \"198.18.0.1/24\"", "ip = \"198.18.0.2/24\""),
        );
        let got: Vec<String> = net_requests(&a, &b)
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(got[0].starts_with("{\"del_route\""), "{got:#?}");
        assert!(got[1].contains("del_addr") && got[1].contains("198.18.0.1"));
        assert!(got[2].contains("add_addr") && got[2].contains("198.18.0.2"));
        assert!(got[3].contains("add_route") && got[3].contains("198.18.9.0"));
        assert!(got[4].contains("add_neigh"), "{got:#?}");
        // A removed neighbour is deleted.
        let c = conf(&BASE.replace(
            "[[neigh]]\nport = \"dp1\"\nip = \"198.18.1.10\"\nmac = \"02:00:00:00:01:10\"\n",
            "",
        ));
        let got = net_requests(&a, &c);
        assert_eq!(
            got,
            [Request::DelNeigh {
                ip: "198.18.1.10".parse().unwrap(),
                port: "dp1".into()
            }]
        );
    }

    #[test]
    fn idle_and_metrics_are_settings() {
        let a = conf(BASE);
        let b = conf(
            &(BASE.to_owned()
                + "[control]\nmetrics = \"127.0.0.1:9999\"\n[dataplane]\npolling = \"busy\"\n"),
        );
        let s = settings(&a, &b);
        assert_eq!(s.metrics, Some(Some("127.0.0.1:9999".parse().unwrap())));
        assert!(s.idle.is_some_and(|i| i.busy));
        assert!(restart_only(&a, &b).is_empty());
    }

    fn svc(port: u16, sched: &str, dests: &[(&str, u32)]) -> proto::ServiceInfo {
        proto::ServiceInfo {
            refused: Default::default(),
            access: Default::default(),
            spec: proto::ServiceSpec {
                limits: Default::default(),
                key: proto::ServiceKey::Inet {
                    protocol: proto::Protocol::Tcp,
                    addr: "198.18.0.100".parse().unwrap(),
                    port,
                },
                scheduler: sched.into(),
                sched_flags: vec![],
                persistent: None,
                netmask: 0xffff_ffff,
                pe: None,
                ops: false,
                synproxy: false,
                client_addr: Default::default(),
            },
            stats: Default::default(),
            rates: Default::default(),
            dests: dests
                .iter()
                .map(|(a, w)| proto::DestInfo {
                    spec: proto::DestSpec {
                        addr: a.parse().unwrap(),
                        port,
                        forward: proto::Forward::Masq,
                        weight: *w,
                        u_threshold: 0,
                        l_threshold: 0,
                        tun: Default::default(),
                    },
                    active_conns: 0,
                    inact_conns: 0,
                    persist_conns: 0,
                    stats: Default::default(),
                    rates: Default::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn services_are_diffed_not_replaced() {
        let old = [
            svc(80, "rr", &[("198.18.1.10", 1), ("198.18.1.11", 1)]),
            svc(81, "rr", &[("198.18.1.10", 1)]),
        ];
        let new = [
            svc(80, "wrr", &[("198.18.1.10", 3), ("198.18.1.12", 1)]),
            svc(82, "rr", &[("198.18.1.10", 1)]),
        ];
        let names: Vec<String> = service_requests(&old, &new)
            .iter()
            .map(|r| {
                serde_json::to_value(r)
                    .unwrap()
                    .as_object()
                    .unwrap()
                    .keys()
                    .next()
                    .unwrap()
                    .clone()
            })
            .collect();
        assert_eq!(
            names,
            [
                "del_service",
                "edit_service",
                "del_dest",
                "edit_dest",
                "add_dest",
                "add_service",
                "add_dest"
            ]
        );
        assert!(service_requests(&old, &old).is_empty());
    }

    #[test]
    fn rules_files_carry_lists_and_limits_and_reload_by_difference() {
        let dir = std::env::temp_dir().join(format!("rvs-acl-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let a = write(
            "a.rules",
            "-A -t 198.18.0.100:80 -s rr --conn-limit 100 --src-rate 5:10\n\
             -a -t 198.18.0.100:80 -r 198.18.1.11:80 -m -w 1\n\
             -U -t 198.18.0.100:80 -k 198.18.0.3\n\
             -O -t 198.18.0.100:80 -2 198.18.0.0/24\n",
        );
        let b = write(
            "b.rules",
            "-A -t 198.18.0.100:80 -s rr --conn-limit 100 --src-rate 5:10\n\
             -a -t 198.18.0.100:80 -r 198.18.1.11:80 -m -w 1\n\
             -U -t 198.18.0.100:80 -k 198.18.0.4\n\
             -O -t 198.18.0.100:80 -2 198.18.0.0/24\n",
        );
        let ma = read_rules(Some(&a)).unwrap();
        let s = &ma.services[0];
        assert_eq!(s.spec.limits.conn_limit, 100);
        assert_eq!((s.spec.limits.src_rate, s.spec.limits.src_burst), (5, 10));
        assert_eq!(s.access.deny, ["198.18.0.3"]);
        assert_eq!(s.access.allow, ["198.18.0.0/24"]);
        let mb = read_rules(Some(&b)).unwrap();
        let key = s.spec.key;
        assert_eq!(
            service_requests(&ma.services, &mb.services),
            [
                Request::DelAccess {
                    service: key,
                    list: proto::AccessList::Deny,
                    entry: "198.18.0.3".into()
                },
                Request::AddAccess {
                    service: key,
                    list: proto::AccessList::Deny,
                    entry: "198.18.0.4".into()
                },
            ]
        );
        // A bad entry names the file.
        let bad = write(
            "bad.rules",
            "-A -t 198.18.0.100:80 -s rr\n-U -t 198.18.0.100:80 -k x\n",
        );
        let e = read_rules(Some(&bad)).unwrap_err().to_string();
        assert!(
            e.contains("bad.rules") && e.contains("illegal blacklist entry"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
