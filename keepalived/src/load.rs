//! From the syntax tree to the [`Config`]: the keywords of keepalived 2.x's LVS part (and DPVS's
//! extensions), with keepalived's defaults. Rules (docs/keepalived.md, "What the parser accepts"):
//! - a value keepalived would report as wrong (bad number, address, scheduler, method, unknown
//!   keyword inside an LVS block) is an error naming the file and line: the whole file is refused;
//! - what keepalived only defaults with a warning (no `protocol`: UDP; no `lb_algo`: wlc; no
//!   `lb_kind`: NAT; a virtual server without real servers: ignored) is a warning here too;
//! - `vrrp_*` blocks and the other non-LVS top-level blocks are accepted, not looked into, and
//!   reported once as not handled.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use ctl::proto::{Forward, LaddrSpec, Protocol, ServiceKey};

use crate::model::{CheckKind, Checker, Config, RealServer, Script, Url, VirtualServer};
use crate::syntax::{self, ConfigError, Loc, Node};

/// The schedulers rvsd has (the 14 of IPVS).
pub const SCHEDULERS: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "fo", "ovf", "lblc", "lblcr", "dh", "sh", "mh", "sed", "nq", "twos",
];

/// Top-level blocks of keepalived that are not about LVS: accepted and not handled.
const NOT_HANDLED: [&str; 9] = [
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "garp_group",
    "track_file",
    "linkbeat_interfaces",
    "net_namespace",
    "bfd_instance",
    "track_process",
];

/// Read and check a file (and its includes).
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let tree = syntax::parse_file(path)?;
    from_tree(&tree)
}

/// [`load_file`] on text already read, as if from `name`.
pub fn load_str(name: &Path, text: &str) -> Result<Config, ConfigError> {
    let tree = syntax::parse_str(name, text)?;
    from_tree(&tree)
}

type Res<T> = Result<T, ConfigError>;

fn err<T>(loc: &Loc, reason: impl Into<String>) -> Res<T> {
    Err(ConfigError::new(loc, reason))
}

/// Named groups defined at top level, looked up by virtual servers.
#[derive(Default)]
struct Groups<'a> {
    vs: HashMap<String, &'a Node>,
    laddr: HashMap<String, &'a Node>,
    deny: HashMap<String, &'a Node>,
    allow: HashMap<String, &'a Node>,
}

pub fn from_tree(tree: &[Node]) -> Res<Config> {
    let mut cfg = Config::default();
    let mut groups = Groups::default();
    let mut not_handled: Vec<String> = Vec::new();
    for n in tree {
        let kw = n.keyword();
        let map = match kw {
            "virtual_server_group" => &mut groups.vs,
            "local_address_group" => &mut groups.laddr,
            "deny_address_group" => &mut groups.deny,
            "allow_address_group" => &mut groups.allow,
            _ => continue,
        };
        let name = one_arg(n)?;
        block_of(n)?;
        if matches!(kw, "deny_address_group" | "allow_address_group") {
            // Checked even when no virtual server uses it, as keepalived reads every block.
            access_group_members(n)?;
        }
        if map.insert(name.to_owned(), n).is_some() {
            return err(&n.loc, format!("{kw} {name} is defined twice"));
        }
    }
    for n in tree {
        let kw = n.keyword();
        match kw {
            "virtual_server" => {
                if let Some(vs) = virtual_server(n, &groups, &mut cfg.warnings)? {
                    cfg.virtual_servers.push(vs);
                }
            }
            "virtual_server_group"
            | "local_address_group"
            | "deny_address_group"
            | "allow_address_group"
            | "global_defs" => {}
            k if k.starts_with("vrrp_") || NOT_HANDLED.contains(&k) => {
                if !not_handled.iter().any(|s| s == k) {
                    not_handled.push(k.to_owned());
                }
            }
            other => return err(&n.loc, format!("unknown keyword '{other}'")),
        }
    }
    // Two virtual servers may not program the same service.
    let mut seen: HashMap<ServiceKey, &Loc> = HashMap::new();
    for vs in &cfg.virtual_servers {
        for k in &vs.keys {
            if let Some(first) = seen.insert(*k, &vs.loc) {
                return err(
                    &vs.loc,
                    format!("virtual server {} repeats the service of {first}", vs.name),
                );
            }
        }
    }
    if !not_handled.is_empty() {
        cfg.warnings.push(format!(
            "not handled by rvs-keepalived (accepted and ignored): {}",
            not_handled.join(", ")
        ));
    }
    Ok(cfg)
}

fn block_of(n: &Node) -> Res<&[Node]> {
    match &n.block {
        Some(b) => Ok(b),
        None => err(&n.loc, format!("'{}' needs a block {{ ... }}", n.keyword())),
    }
}

fn one_arg(n: &Node) -> Res<&str> {
    match n.args() {
        [a] => Ok(a),
        [] => err(&n.loc, format!("'{}' needs a value", n.keyword())),
        _ => err(&n.loc, format!("'{}' takes one value", n.keyword())),
    }
}

fn no_arg(n: &Node) -> Res<()> {
    if n.args().is_empty() {
        Ok(())
    } else {
        err(&n.loc, format!("'{}' takes no value", n.keyword()))
    }
}

fn number(n: &Node, min: u64, max: u64) -> Res<u64> {
    let a = one_arg(n)?;
    match a.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Ok(v) => err(
            &n.loc,
            format!("'{}' {v} is outside the range {min}-{max}", n.keyword()),
        ),
        Err(_) => err(&n.loc, format!("'{}': invalid number '{a}'", n.keyword())),
    }
}

fn u32_value(n: &Node, min: u32, max: u32) -> Res<u32> {
    number(n, u64::from(min), u64::from(max)).map(|v| v as u32)
}

/// keepalived's timers: seconds, with a fraction allowed.
fn seconds(n: &Node) -> Res<Duration> {
    let a = one_arg(n)?;
    match a.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0 * 365.0).contains(&v) => {
            Ok(Duration::from_secs_f64(v))
        }
        _ => err(
            &n.loc,
            format!("'{}': invalid time '{a}' (seconds expected)", n.keyword()),
        ),
    }
}

fn addr(loc: &Loc, s: &str, what: &str) -> Res<IpAddr> {
    s.parse()
        .or_else(|_| err(loc, format!("invalid {what} address '{s}'")))
}

fn port(loc: &Loc, s: &str) -> Res<u16> {
    s.parse()
        .or_else(|_| err(loc, format!("invalid port '{s}'")))
}

fn script(n: &Node) -> Res<Script> {
    let text = n.args().join(" ");
    Script::parse(&text).map_or_else(
        || err(&n.loc, format!("'{}' needs a program", n.keyword())),
        Ok,
    )
}

/// Values that apply to the checkers below unless a checker sets its own.
#[derive(Clone)]
struct CheckDefaults {
    delay_loop: Duration,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    connect_timeout: Option<Duration>,
    alpha: bool,
    virtualhost: Option<String>,
}

fn virtual_server(
    n: &Node,
    groups: &Groups<'_>,
    warnings: &mut Vec<String>,
) -> Res<Option<VirtualServer>> {
    let block = block_of(n)?;
    enum Target {
        Inet(IpAddr, u16),
        Fwmark(u32),
        Group(String),
    }
    let (target, name) = match n.args() {
        [k, m] if k == "fwmark" => {
            let mark: u32 = m
                .parse()
                .ok()
                .filter(|m| *m > 0)
                .map_or_else(|| err(&n.loc, format!("invalid fwmark '{m}'")), Ok)?;
            (Target::Fwmark(mark), format!("fwmark {mark}"))
        }
        [k, g] if k == "group" => (Target::Group(g.clone()), format!("group {g}")),
        [a, p] => {
            let ip = addr(&n.loc, a, "virtual server")?;
            let p = port(&n.loc, p)?;
            (Target::Inet(ip, p), crate::model::endpoint(ip, p))
        }
        _ => {
            return err(
                &n.loc,
                "virtual_server takes ADDRESS PORT, fwmark MARK or group NAME",
            );
        }
    };
    let mut protocol = None;
    let mut scheduler = None;
    let mut sched_flags = Vec::new();
    let mut method = None;
    let mut persistence_timeout = None;
    let mut granularity = None;
    let mut persistence_engine = None;
    let mut ops = false;
    let mut synproxy = false;
    let mut proxy_protocol = ctl::proto::ProxyProtocol::Disable;
    let mut quorum = 1;
    let mut hysteresis = 0;
    let mut quorum_up = None;
    let mut quorum_down = None;
    let mut sorry_server = None;
    let mut sorry_server_inhibit = false;
    let mut inhibit = false;
    let mut omega = false;
    let mut laddr_group = None;
    let mut deny_group = None;
    let mut allow_group = None;
    let mut defaults = CheckDefaults {
        delay_loop: Duration::from_secs(60),
        retry: None,
        delay_before_retry: None,
        connect_timeout: None,
        alpha: false,
        virtualhost: None,
    };
    let mut real_nodes = Vec::new();
    for s in block {
        match s.keyword() {
            "delay_loop" => defaults.delay_loop = nonzero_seconds(s)?,
            "lb_algo" | "lvs_sched" => {
                let a = one_arg(s)?;
                if !SCHEDULERS.contains(&a) {
                    return err(
                        &s.loc,
                        format!("unknown scheduler '{a}' (rvs has {})", SCHEDULERS.join(" ")),
                    );
                }
                scheduler = Some(a.to_owned());
            }
            "lb_kind" | "lvs_method" => {
                method = Some(match one_arg(s)? {
                    "NAT" => Forward::Masq,
                    "DR" => Forward::Route,
                    "TUN" => Forward::Tunnel,
                    "FNAT" => Forward::FullNat,
                    other => {
                        return err(
                            &s.loc,
                            format!("unknown forwarding method '{other}' (NAT, DR, TUN or FNAT)"),
                        );
                    }
                });
            }
            "protocol" => {
                protocol = Some(match one_arg(s)? {
                    "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    "SCTP" => Protocol::Sctp,
                    other => return err(&s.loc, format!("unknown protocol '{other}'")),
                })
            }
            "persistence_timeout" => persistence_timeout = Some(u32_value(s, 1, u32::MAX)?),
            "persistence_granularity" => {
                let a = one_arg(s)?;
                granularity = Some(if let Ok(m) = a.parse::<Ipv4Addr>() {
                    let m = u32::from(m);
                    if m.leading_ones() + m.trailing_zeros() != 32 {
                        return err(&s.loc, format!("invalid persistence_granularity '{a}'"));
                    }
                    m
                } else {
                    match a.parse::<u32>() {
                        Ok(p) if (1..=128).contains(&p) => p,
                        _ => {
                            return err(&s.loc, format!("invalid persistence_granularity '{a}'"));
                        }
                    }
                });
            }
            "persistence_engine" => persistence_engine = Some(one_arg(s)?.to_owned()),
            "ops" => {
                no_arg(s)?;
                ops = true;
            }
            // DPVS's keepalived: `syn_proxy` switches the service's SYN proxy on.
            "syn_proxy" => {
                no_arg(s)?;
                synproxy = true;
            }
            // DPVS's keepalived: `proxy_protocol v1|v2|v1-insecure|v2-insecure|disable`.
            "proxy_protocol" => {
                let v = one_arg(s)?;
                proxy_protocol = ctl::proto::ProxyProtocol::from_name(v).ok_or_else(|| {
                    ConfigError::new(
                        &s.loc,
                        format!(
                            "'proxy_protocol' must be disable, v1, v2, v1-insecure or \
                             v2-insecure, not '{v}'"
                        ),
                    )
                })?;
            }
            "quorum" => quorum = u32_value(s, 1, u32::MAX)?,
            "hysteresis" => hysteresis = u32_value(s, 0, u32::MAX)?,
            "quorum_up" => quorum_up = Some(script(s)?),
            "quorum_down" => quorum_down = Some(script(s)?),
            "sorry_server" => match s.args() {
                [a, p] => sorry_server = Some((addr(&s.loc, a, "sorry server")?, port(&s.loc, p)?)),
                _ => return err(&s.loc, "sorry_server takes ADDRESS PORT"),
            },
            "sorry_server_inhibit" => {
                no_arg(s)?;
                sorry_server_inhibit = true;
            }
            "inhibit_on_failure" => {
                no_arg(s)?;
                inhibit = true;
            }
            "alpha" => {
                no_arg(s)?;
                defaults.alpha = true;
            }
            "omega" => {
                no_arg(s)?;
                omega = true;
            }
            "virtualhost" => defaults.virtualhost = Some(one_arg(s)?.to_owned()),
            "retry" => defaults.retry = Some(u32_value(s, 1, u32::MAX)?),
            "delay_before_retry" => defaults.delay_before_retry = Some(seconds(s)?),
            "connect_timeout" => defaults.connect_timeout = Some(nonzero_seconds(s)?),
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => {
                no_arg(s)?;
                sched_flags.push(s.keyword().to_owned());
            }
            "laddr_group_name" => laddr_group = Some((one_arg(s)?.to_owned(), s.loc.clone())),
            // DPVS's keepalived spells these `daddr_group_name`/`waddr_group_name`; the group
            // keywords themselves are taken as aliases.
            "daddr_group_name" | "deny_address_group" => {
                deny_group = Some((one_arg(s)?.to_owned(), s.loc.clone()));
            }
            "waddr_group_name" | "allow_address_group" => {
                allow_group = Some((one_arg(s)?.to_owned(), s.loc.clone()));
            }
            "smtp_alert" | "ha_suspend" => {}
            "real_server" => real_nodes.push(s),
            other => {
                return err(
                    &s.loc,
                    format!("unknown keyword '{other}' in virtual_server"),
                );
            }
        }
    }
    let protocol = protocol.unwrap_or_else(|| {
        if !matches!(target, Target::Fwmark(_)) {
            warnings.push(format!(
                "{}: virtual server {name}: no protocol set, defaulting to UDP (as keepalived)",
                n.loc
            ));
        }
        Protocol::Udp
    });
    let scheduler = scheduler.unwrap_or_else(|| {
        warnings.push(format!(
            "{}: virtual server {name}: no scheduler set, defaulting to wlc",
            n.loc
        ));
        "wlc".to_owned()
    });
    let method = method.unwrap_or_else(|| {
        warnings.push(format!(
            "{}: virtual server {name}: no forwarding method set, defaulting to NAT",
            n.loc
        ));
        Forward::Masq
    });
    let keys = match &target {
        Target::Inet(ip, p) => vec![ServiceKey::Inet {
            protocol,
            addr: *ip,
            port: *p,
        }],
        Target::Fwmark(m) => vec![ServiceKey::Fwmark {
            mark: *m,
            ipv6: false,
        }],
        Target::Group(g) => match groups.vs.get(g) {
            Some(gn) => group_keys(gn, protocol)?,
            None => return err(&n.loc, format!("virtual_server_group {g} is not defined")),
        },
    };
    let laddrs = match laddr_group {
        Some((g, loc)) => {
            if method != Forward::FullNat {
                return err(&loc, "laddr_group_name is for lb_kind FNAT only");
            }
            match groups.laddr.get(&g) {
                Some(gn) => laddr_group_members(gn)?,
                None => return err(&loc, format!("local_address_group {g} is not defined")),
            }
        }
        None => Vec::new(),
    };
    let mut access = ctl::proto::AccessInfo::default();
    for (group, map, list, kw) in [
        (
            deny_group,
            &groups.deny,
            &mut access.deny,
            "deny_address_group",
        ),
        (
            allow_group,
            &groups.allow,
            &mut access.allow,
            "allow_address_group",
        ),
    ] {
        if let Some((g, loc)) = group {
            match map.get(&g) {
                Some(gn) => *list = access_group_members(gn)?,
                None => return err(&loc, format!("{kw} {g} is not defined")),
            }
        }
    }
    let is_v6 = keys.iter().any(|k| {
        matches!(
            k,
            ServiceKey::Inet {
                addr: IpAddr::V6(_),
                ..
            }
        )
    });
    let persistence_granularity = granularity.unwrap_or(if is_v6 { 128 } else { 0xffff_ffff });
    let mut reals = Vec::new();
    for r in real_nodes {
        reals.push(real_server(r, &defaults, inhibit)?);
    }
    for (i, r) in reals.iter().enumerate() {
        if reals[..i]
            .iter()
            .any(|o| o.addr == r.addr && o.port == r.port)
        {
            return err(
                &r.loc,
                format!("real server {} repeated in {name}", r.endpoint()),
            );
        }
    }
    if reals.is_empty() && sorry_server.is_none() {
        warnings.push(format!(
            "{}: virtual server {name} has no real servers: ignored (as keepalived)",
            n.loc
        ));
        return Ok(None);
    }
    Ok(Some(VirtualServer {
        loc: n.loc.clone(),
        name,
        keys,
        protocol,
        scheduler,
        sched_flags,
        method,
        persistence_timeout,
        persistence_granularity,
        persistence_engine,
        ops,
        synproxy,
        proxy_protocol,
        delay_loop: defaults.delay_loop,
        quorum,
        hysteresis,
        quorum_up,
        quorum_down,
        sorry_server,
        sorry_server_inhibit,
        inhibit_on_failure: inhibit,
        alpha: defaults.alpha,
        omega,
        laddrs,
        access,
        reals,
    }))
}

fn nonzero_seconds(n: &Node) -> Res<Duration> {
    let d = seconds(n)?;
    if d.is_zero() {
        return err(&n.loc, format!("'{}' must be more than 0", n.keyword()));
    }
    Ok(d)
}

/// Members of a `virtual_server_group`: `ADDR PORT`, `A.B.C.D-E PORT` (a range of the last
/// byte, as keepalived writes it), `fwmark N`.
fn group_keys(g: &Node, protocol: Protocol) -> Res<Vec<ServiceKey>> {
    let mut keys = Vec::new();
    for m in block_of(g)? {
        match m.words.as_slice() {
            [k, mark] if k == "fwmark" => {
                let mark = mark
                    .parse::<u32>()
                    .ok()
                    .filter(|m| *m > 0)
                    .map_or_else(|| err(&m.loc, format!("invalid fwmark '{mark}'")), Ok)?;
                keys.push(ServiceKey::Fwmark { mark, ipv6: false });
            }
            [a, p] => {
                let p = port(&m.loc, p)?;
                for ip in addr_range(&m.loc, a)? {
                    keys.push(ServiceKey::Inet {
                        protocol,
                        addr: ip,
                        port: p,
                    });
                }
            }
            _ => {
                return err(
                    &m.loc,
                    "virtual_server_group member: ADDRESS[-LAST] PORT or fwmark MARK",
                );
            }
        }
    }
    if keys.is_empty() {
        return err(&g.loc, "virtual_server_group has no members");
    }
    Ok(keys)
}

fn addr_range(loc: &Loc, s: &str) -> Res<Vec<IpAddr>> {
    let Some((first, last)) = s.split_once('-') else {
        return Ok(vec![addr(loc, s, "virtual server")?]);
    };
    let first: Ipv4Addr = first
        .parse()
        .or_else(|_| err(loc, format!("invalid address range '{s}'")))?;
    let o = first.octets();
    let last: u8 = last
        .parse()
        .ok()
        .filter(|l| *l >= o[3])
        .map_or_else(|| err(loc, format!("invalid address range '{s}'")), Ok)?;
    Ok((o[3]..=last)
        .map(|b| IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], b)))
        .collect())
}

/// DPVS's `deny_address_group` / `allow_address_group` members: `ADDRESS`, `A.B.C.D-E` (a range
/// of the last byte, one entry per address, as DPVS's keepalived adds them) or, rvs's addition,
/// `ADDRESS/LEN`. DPVS's `ipset:NAME` members are refused (rvs has no ipsets). Entries come out
/// in canonical form (`ADDR` for a /32, the network address for a prefix).
fn access_group_members(g: &Node) -> Res<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for m in block_of(g)? {
        let [w] = m.words.as_slice() else {
            return err(
                &m.loc,
                format!("{} member: ADDRESS[-LAST] or ADDRESS/LEN", g.keyword()),
            );
        };
        if w.starts_with("ipset:") {
            return err(&m.loc, "ipset members are not supported: rvs has no ipsets");
        }
        let entries: Vec<String> = if w.contains('/') {
            vec![prefix_entry(&m.loc, w)?]
        } else {
            let ips = addr_range(&m.loc, w)?;
            if ips.iter().any(IpAddr::is_ipv6) {
                return err(&m.loc, "IPv6 access-list entries are not supported yet");
            }
            ips.iter().map(IpAddr::to_string).collect()
        };
        for e in entries {
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    if out.is_empty() {
        return err(&g.loc, format!("{} has no addresses", g.keyword()));
    }
    Ok(out)
}

/// `ADDR/LEN` (IPv4, no host bits beyond LEN) in canonical form.
fn prefix_entry(loc: &Loc, w: &str) -> Res<String> {
    let bad = || {
        err(
            loc,
            format!("invalid prefix '{w}' (ADDRESS/LEN, no host bits set)"),
        )
    };
    let Some((a, l)) = w.split_once('/') else {
        return bad();
    };
    let (Ok(a), Ok(l)) = (a.parse::<Ipv4Addr>(), l.parse::<u8>()) else {
        return bad();
    };
    if l > 32 {
        return bad();
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(l)).unwrap_or(0);
    if u32::from(a) & !mask != 0 {
        return bad();
    }
    Ok(if l == 32 {
        a.to_string()
    } else {
        format!("{a}/{l}")
    })
}

/// DPVS's `local_address_group`: lines `ADDRESS[-LAST] IFNAME`.
fn laddr_group_members(g: &Node) -> Res<Vec<LaddrSpec>> {
    let mut out = Vec::new();
    for m in block_of(g)? {
        match m.words.as_slice() {
            [a, ifname] => {
                for ip in addr_range(&m.loc, a)? {
                    out.push(LaddrSpec {
                        addr: ip,
                        ifname: ifname.clone(),
                    });
                }
            }
            _ => return err(&m.loc, "local_address_group member: ADDRESS[-LAST] IFNAME"),
        }
    }
    if out.is_empty() {
        return err(&g.loc, "local_address_group has no addresses");
    }
    Ok(out)
}

fn real_server(n: &Node, vs: &CheckDefaults, vs_inhibit: bool) -> Res<RealServer> {
    let (ip, p) = match n.args() {
        [a, p] => (addr(&n.loc, a, "real server")?, port(&n.loc, p)?),
        _ => return err(&n.loc, "real_server takes ADDRESS PORT"),
    };
    let block = n.block.as_deref().unwrap_or(&[]);
    let mut weight = 1;
    let mut inhibit = vs_inhibit;
    let mut notify_up = None;
    let mut notify_down = None;
    let mut u_threshold = 0;
    let mut l_threshold = 0;
    let mut defaults = vs.clone();
    let mut checker_nodes = Vec::new();
    for s in block {
        match s.keyword() {
            "weight" => weight = u32_value(s, 0, 65535)?,
            "inhibit_on_failure" => {
                no_arg(s)?;
                inhibit = true;
            }
            "notify_up" => notify_up = Some(script(s)?),
            "notify_down" => notify_down = Some(script(s)?),
            "uthreshold" => u_threshold = u32_value(s, 0, u32::MAX)?,
            "lthreshold" => l_threshold = u32_value(s, 0, u32::MAX)?,
            "delay_loop" => defaults.delay_loop = nonzero_seconds(s)?,
            "retry" => defaults.retry = Some(u32_value(s, 1, u32::MAX)?),
            "delay_before_retry" => defaults.delay_before_retry = Some(seconds(s)?),
            "connect_timeout" => defaults.connect_timeout = Some(nonzero_seconds(s)?),
            "alpha" => {
                no_arg(s)?;
                defaults.alpha = true;
            }
            "virtualhost" => defaults.virtualhost = Some(one_arg(s)?.to_owned()),
            "smtp_alert" => {}
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "DNS_CHECK" => {
                checker_nodes.push(s)
            }
            kw @ ("SMTP_CHECK" | "BFD_CHECK" | "FILE_CHECK" | "PING_CHECK" | "UDP_CHECK") => {
                return err(
                    &s.loc,
                    format!("checker {kw} is not supported by rvs-keepalived"),
                );
            }
            other => return err(&s.loc, format!("unknown keyword '{other}' in real_server")),
        }
    }
    if l_threshold > 0 && u_threshold > 0 && l_threshold > u_threshold {
        return err(&n.loc, "lthreshold is above uthreshold");
    }
    let mut checkers = Vec::new();
    for c in checker_nodes {
        checkers.push(checker(c, ip, p, &defaults)?);
    }
    Ok(RealServer {
        loc: n.loc.clone(),
        addr: ip,
        port: p,
        weight,
        inhibit_on_failure: inhibit,
        notify_up,
        notify_down,
        u_threshold,
        l_threshold,
        checkers,
    })
}

fn checker(n: &Node, rs_addr: IpAddr, rs_port: u16, d: &CheckDefaults) -> Res<Checker> {
    let kw = n.keyword();
    if !n.args().is_empty() {
        return err(&n.loc, format!("{kw} takes no value before its block"));
    }
    let block = n.block.as_deref().unwrap_or(&[]);
    let mut connect_ip = None;
    let mut connect_port = None;
    let mut bind_addr = None;
    let mut bind_port = 0;
    let mut connect_timeout = d.connect_timeout;
    let mut retry = d.retry;
    let mut delay_before_retry = d.delay_before_retry;
    let mut delay_loop = d.delay_loop;
    let mut alpha = d.alpha;
    let mut urls = Vec::new();
    let mut virtualhost = d.virtualhost.clone();
    let mut misc_path = None;
    let mut misc_timeout = None;
    let mut misc_dynamic = false;
    let mut dns_type = None;
    let mut dns_name = None;
    for s in block {
        let k = s.keyword();
        let common = match k {
            "connect_ip" => {
                connect_ip = Some(addr(&s.loc, one_arg(s)?, "connect_ip")?);
                true
            }
            "connect_port" => {
                connect_port = Some(port(&s.loc, one_arg(s)?)?);
                true
            }
            "bindto" => {
                bind_addr = Some(addr(&s.loc, one_arg(s)?, "bindto")?);
                true
            }
            "bind_port" => {
                bind_port = port(&s.loc, one_arg(s)?)?;
                true
            }
            "connect_timeout" => {
                connect_timeout = Some(nonzero_seconds(s)?);
                true
            }
            "retry" | "nb_get_retry" | "nb_sock_retry" => {
                retry = Some(u32_value(s, 1, u32::MAX)?);
                true
            }
            "delay_before_retry" => {
                delay_before_retry = Some(seconds(s)?);
                true
            }
            "delay_loop" => {
                delay_loop = nonzero_seconds(s)?;
                true
            }
            "alpha" => {
                no_arg(s)?;
                alpha = true;
                true
            }
            "warmup" | "log_all_failures" => true,
            _ => false,
        };
        if common {
            continue;
        }
        match (kw, k) {
            ("HTTP_GET" | "SSL_GET", "url") => urls.push(url(s)?),
            ("HTTP_GET" | "SSL_GET", "virtualhost") => virtualhost = Some(one_arg(s)?.to_owned()),
            ("HTTP_GET" | "SSL_GET", "http_protocol" | "enable_sni" | "fast_recovery") => {}
            ("MISC_CHECK", "misc_path") => misc_path = Some(script(s)?),
            ("MISC_CHECK", "misc_timeout") => misc_timeout = Some(nonzero_seconds(s)?),
            ("MISC_CHECK", "misc_dynamic") => {
                no_arg(s)?;
                misc_dynamic = true;
            }
            ("MISC_CHECK", "user") => {}
            ("DNS_CHECK", "type") => {
                let t = one_arg(s)?;
                dns_type = Some(match t.to_ascii_uppercase().as_str() {
                    "A" => 1,
                    "NS" => 2,
                    "CNAME" => 5,
                    "SOA" => 6,
                    "MX" => 15,
                    "TXT" => 16,
                    "AAAA" => 28,
                    _ => return err(&s.loc, format!("unknown DNS_CHECK type '{t}'")),
                });
            }
            ("DNS_CHECK", "name") => dns_name = Some(one_arg(s)?.to_owned()),
            _ => return err(&s.loc, format!("unknown keyword '{k}' in {kw}")),
        }
    }
    let kind = match kw {
        "TCP_CHECK" => CheckKind::Tcp,
        "HTTP_GET" | "SSL_GET" => {
            if urls.is_empty() {
                return err(
                    &n.loc,
                    format!("{kw} needs at least one url {{ path ... }}"),
                );
            }
            CheckKind::Http {
                tls: kw == "SSL_GET",
                urls,
                virtualhost,
            }
        }
        "MISC_CHECK" => CheckKind::Misc {
            script: misc_path.map_or_else(|| err(&n.loc, "MISC_CHECK needs misc_path"), Ok)?,
            timeout: misc_timeout.unwrap_or(delay_loop),
            dynamic: misc_dynamic,
        },
        _ => CheckKind::Dns {
            qtype: dns_type.unwrap_or(6),
            name: dns_name.unwrap_or_else(|| ".".to_owned()),
        },
    };
    let default_port = match kind {
        CheckKind::Dns { .. } => 53,
        _ => rs_port,
    };
    Ok(Checker {
        loc: n.loc.clone(),
        kind,
        addr: connect_ip.unwrap_or(rs_addr),
        port: connect_port.unwrap_or(default_port),
        bind_addr,
        bind_port,
        connect_timeout: connect_timeout.unwrap_or(Duration::from_secs(5)),
        retry: retry.unwrap_or(1),
        delay_before_retry: delay_before_retry.unwrap_or(Duration::from_secs(1)),
        delay_loop,
        starts_down: alpha,
    })
}

fn url(n: &Node) -> Res<Url> {
    let mut path = None;
    let mut status = Vec::new();
    let mut digest = None;
    let mut virtualhost = None;
    for s in block_of(n)? {
        match s.keyword() {
            "path" => path = Some(one_arg(s)?.to_owned()),
            "digest" => {
                let d = one_arg(s)?.to_ascii_lowercase();
                if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return err(
                        &s.loc,
                        format!("digest '{d}' is not an MD5 in hex (32 digits)"),
                    );
                }
                digest = Some(d);
            }
            "status_code" => {
                for a in s.args() {
                    for part in a.split(',') {
                        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
                        match (lo.parse::<u16>(), hi.parse::<u16>()) {
                            (Ok(lo), Ok(hi))
                                if (100..=599).contains(&lo) && lo <= hi && hi <= 599 =>
                            {
                                status.push((lo, hi))
                            }
                            _ => return err(&s.loc, format!("invalid status_code '{part}'")),
                        }
                    }
                }
                if status.is_empty() {
                    return err(&s.loc, "status_code needs a value");
                }
            }
            "virtualhost" => virtualhost = Some(one_arg(s)?.to_owned()),
            "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
            | "regex_max_offset" => {
                return err(
                    &s.loc,
                    format!("'{}' is not supported by rvs-keepalived", s.keyword()),
                );
            }
            other => return err(&s.loc, format!("unknown keyword '{other}' in url")),
        }
    }
    let Some(path) = path else {
        return err(&n.loc, "url needs a path");
    };
    if status.is_empty() {
        status.push((200, 299));
    }
    Ok(Url {
        path,
        status,
        digest,
        virtualhost,
    })
}

#[cfg(test)]
mod tests;
