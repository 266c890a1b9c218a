//! rvsctl's command line, iproute2 style: `rvsctl [-j] [-s] OBJECT [COMMAND [ARGS]]`.
//!
//! Objects and commands may be abbreviated as `ip` allows the common ones (`l`, `a`, `r`, `n`,
//! `w`; `ls`/`list` for `show`, `delete` for `del`); `show` is the default command. `-j`/`-s` may
//! also follow the command (`rvsctl link show -s`).

use std::net::{IpAddr, Ipv4Addr};

use crate::proto::{AddrSpec, FwmarkRule, NeighSpec, RouteSpec};

/// Output options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opts {
    /// `-j`: JSON for scripts.
    pub json: bool,
    /// `-s`: statistics (`link show -s`).
    pub stats: bool,
}

/// One rvsctl invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    LinkShow {
        dev: Option<String>,
    },
    AddrShow {
        dev: Option<String>,
    },
    AddrAdd(AddrSpec),
    AddrDel(AddrSpec),
    RouteShow,
    RouteAdd(RouteSpec),
    RouteDel {
        prefix: IpAddr,
        len: u8,
    },
    NeighShow {
        dev: Option<String>,
    },
    NeighFlush {
        dev: Option<String>,
    },
    NeighAdd(NeighSpec),
    NeighDel {
        ip: IpAddr,
        dev: String,
    },
    WorkerShow,
    FwmarkShow,
    FwmarkAdd(FwmarkRule),
    FwmarkDel(FwmarkRule),
    /// What rvsd speaks: its version, protocol versions and requests (`hello`).
    DaemonShow,
    /// Stop rvsd, with state (`save-state`) or not.
    DaemonStop {
        save_state: bool,
    },
    /// Re-read rvsd's configuration file.
    DaemonReload,
    // New objects add their variants here, a line in `OBJECTS` and an arm in `parse`'s object
    // match; `super::execute` renders them.
}

/// A command line rvsctl does not understand (exit 255, as iproute2's `invarg`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Objects, with the abbreviations accepted.
const OBJECTS: &[(&str, &[&str])] = &[
    ("link", &["l", "li", "lin"]),
    ("addr", &["a", "ad", "address"]),
    ("route", &["r", "ro", "rou", "rout"]),
    ("neigh", &["n", "ne", "nei", "neighbor", "neighbour"]),
    ("worker", &["w", "wo", "workers"]),
    ("fwmark", &["f", "fw", "mark"]),
    ("daemon", &["d", "da", "dae"]),
];

fn object_name(word: &str) -> Option<&'static str> {
    OBJECTS
        .iter()
        .find(|(name, abbrev)| *name == word || abbrev.contains(&word))
        .map(|(name, _)| *name)
}

fn command_name(word: &str) -> &str {
    match word {
        "ls" | "list" | "lst" | "sh" | "s" => "show",
        "delete" | "d" => "del",
        "a" => "add",
        "f" => "flush",
        w => w,
    }
}

/// Split global and trailing options out of `args` (without the program name).
fn take_opts(args: &[String]) -> Result<(Opts, Vec<String>), UsageError> {
    let mut opts = Opts::default();
    let mut rest = Vec::new();
    for a in args {
        match a.as_str() {
            "-j" | "-json" | "--json" => opts.json = true,
            "-s" | "-stats" | "-statistics" | "--stats" => opts.stats = true,
            "-js" | "-sj" => {
                opts.json = true;
                opts.stats = true;
            }
            w if w.starts_with('-')
                && !matches!(
                    w,
                    "-h" | "-help" | "--help" | "-V" | "-Version" | "--version"
                ) =>
            {
                return Err(usage(format!(
                    "option \"{w}\" is unknown, try \"rvsctl help\""
                )));
            }
            _ => rest.push(a.clone()),
        }
    }
    Ok((opts, rest))
}

/// Parse `args` (without the program name).
pub fn parse(args: &[String]) -> Result<(Opts, Command), UsageError> {
    let (opts, words) = take_opts(args)?;
    let Some(first) = words.first() else {
        return Ok((opts, Command::Help));
    };
    match first.as_str() {
        "help" | "-h" | "-help" | "--help" => return Ok((opts, Command::Help)),
        "-V" | "-Version" | "--version" => return Ok((opts, Command::Version)),
        _ => {}
    }
    let object = object_name(first).ok_or_else(|| {
        usage(format!(
            "object \"{first}\" is unknown, try \"rvsctl help\" (objects: {})",
            OBJECTS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let cmd = words.get(1).map_or("show", |w| command_name(w));
    let args = words.get(2..).unwrap_or(&[]);
    if cmd == "help" {
        return Ok((opts, Command::Help));
    }
    let unknown = |valid: &str| {
        usage(format!(
            "command \"{cmd}\" is unknown for \"{object}\" (try: {valid})"
        ))
    };
    let command = match (object, cmd) {
        ("link", "show") => Command::LinkShow {
            dev: dev_filter(args)?,
        },
        ("link", _) => return Err(unknown("show")),
        ("addr", "show") => Command::AddrShow {
            dev: dev_filter(args)?,
        },
        ("addr", "add") => Command::AddrAdd(addr_spec(args)?),
        ("addr", "del") => Command::AddrDel(addr_spec(args)?),
        ("addr", _) => return Err(unknown("add, del, show")),
        ("route", "show") => {
            no_more(args)?;
            Command::RouteShow
        }
        ("route", "add") => Command::RouteAdd(route_spec(args, true)?),
        ("route", "del") => {
            let r = route_spec(args, false)?;
            Command::RouteDel {
                prefix: r.prefix,
                len: r.len,
            }
        }
        ("route", _) => return Err(unknown("add, del, show")),
        ("neigh", "show") => Command::NeighShow {
            dev: dev_filter(args)?,
        },
        ("neigh", "flush") => Command::NeighFlush {
            dev: dev_filter(args)?,
        },
        ("neigh", "add") => Command::NeighAdd(neigh_spec(args)?),
        ("neigh", "del") => {
            let (ip, kv) = positional(args, "IP")?;
            let dev = required(&kv, "dev", "PORT")?;
            no_keys(&kv, &["dev", "lladdr"])?;
            Command::NeighDel {
                ip: parse_ip(&ip)?,
                dev,
            }
        }
        ("neigh", _) => return Err(unknown("add, del, flush, show")),
        ("worker", "show") => {
            no_more(args)?;
            Command::WorkerShow
        }
        ("worker", _) => return Err(unknown("show")),
        ("daemon", "show") => {
            no_more(args)?;
            Command::DaemonShow
        }
        ("daemon", "stop") => match args {
            [] => Command::DaemonStop { save_state: false },
            [w] if w == "save-state" => Command::DaemonStop { save_state: true },
            [w, ..] => return Err(usage(format!("unexpected argument \"{w}\""))),
        },
        ("daemon", "reload") => {
            no_more(args)?;
            Command::DaemonReload
        }
        ("daemon", _) => return Err(unknown("show, stop, reload")),
        ("fwmark", "show") => {
            no_more(args)?;
            Command::FwmarkShow
        }
        ("fwmark", "add") => Command::FwmarkAdd(fwmark_rule(args)?),
        ("fwmark", "del") => Command::FwmarkDel(fwmark_rule(args)?),
        ("fwmark", _) => return Err(unknown("add, del, show")),
        _ => unreachable!("every object is matched above"),
    };
    Ok((opts, command))
}

/// `mark N [proto tcp|udp|any] dst ADDR[/LEN] [ports LIST]`: a classifier rule; the daemon
/// validates the values (and names what is wrong).
fn fwmark_rule(args: &[String]) -> Result<FwmarkRule, UsageError> {
    let mut rule = FwmarkRule {
        mark: 0,
        proto: "any".into(),
        dst: String::new(),
        ports: String::new(),
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let key = k.as_str();
        if !["mark", "proto", "dst", "ports"].contains(&key) {
            return Err(usage(format!(
                "\"{k}\" makes no sense here (mark, proto, dst, ports)"
            )));
        }
        if seen.contains(&key) {
            return Err(usage(format!("\"{k}\" given twice")));
        }
        seen.push(key);
        let v = it
            .next()
            .ok_or_else(|| usage(format!("\"{k}\" needs a value")))?;
        match key {
            "mark" => {
                rule.mark = v
                    .parse()
                    .ok()
                    .filter(|m| *m > 0)
                    .ok_or_else(|| usage(format!("\"{v}\" is not a mark (1..4294967295)")))?;
            }
            "proto" => rule.proto = v.clone(),
            "dst" => rule.dst = v.clone(),
            _ => rule.ports = v.clone(),
        }
    }
    if rule.mark == 0 {
        return Err(usage("missing \"mark N\""));
    }
    if rule.dst.is_empty() {
        return Err(usage("missing \"dst ADDR[/LEN]\""));
    }
    Ok(rule)
}

fn no_more(args: &[String]) -> Result<(), UsageError> {
    match args.first() {
        None => Ok(()),
        Some(w) => Err(usage(format!("unexpected argument \"{w}\""))),
    }
}

/// `[dev] PORT` or nothing.
fn dev_filter(args: &[String]) -> Result<Option<String>, UsageError> {
    match args {
        [] => Ok(None),
        [d, name] if d == "dev" => Ok(Some(name.clone())),
        [name] if name != "dev" => Ok(Some(name.clone())),
        [d] if d == "dev" => Err(usage("\"dev\" needs a port name")),
        [_, extra, ..] => Err(usage(format!("unexpected argument \"{extra}\""))),
        _ => Err(usage("bad arguments")),
    }
}

/// One positional word and `key value` pairs, in any order.
fn positional(args: &[String], what: &str) -> Result<(String, Vec<(String, String)>), UsageError> {
    const KEYS: &[&str] = &["dev", "via", "lladdr"];
    let mut pos = None;
    let mut kv = Vec::new();
    let mut it = args.iter();
    while let Some(w) = it.next() {
        if KEYS.contains(&w.as_str()) {
            let v = it
                .next()
                .ok_or_else(|| usage(format!("\"{w}\" needs a value")))?;
            if kv.iter().any(|(k, _)| k == w) {
                return Err(usage(format!("\"{w}\" given twice")));
            }
            kv.push((w.clone(), v.clone()));
        } else if pos.is_none() {
            pos = Some(w.clone());
        } else {
            return Err(usage(format!("unexpected argument \"{w}\"")));
        }
    }
    let pos = pos.ok_or_else(|| usage(format!("missing {what}")))?;
    Ok((pos, kv))
}

fn get(kv: &[(String, String)], key: &str) -> Option<String> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn required(kv: &[(String, String)], key: &str, what: &str) -> Result<String, UsageError> {
    get(kv, key).ok_or_else(|| usage(format!("missing \"{key} {what}\"")))
}

fn no_keys(kv: &[(String, String)], allowed: &[&str]) -> Result<(), UsageError> {
    match kv.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((k, _)) => Err(usage(format!("\"{k}\" makes no sense here"))),
        None => Ok(()),
    }
}

fn parse_v4(s: &str) -> Result<Ipv4Addr, UsageError> {
    s.parse::<Ipv4Addr>()
        .map_err(|_| usage(format!("\"{s}\" is not an IPv4 address")))
}

/// An IPv4 or IPv6 address.
fn parse_ip(s: &str) -> Result<IpAddr, UsageError> {
    s.parse::<IpAddr>()
        .map_err(|_| usage(format!("\"{s}\" is not an IPv4 or IPv6 address")))
}

/// [`parse_prefix`] for either family: an address with a colon is IPv6 (`2001:2::/48`, no
/// length = /128); `default` is the IPv4 default route (`::/0` the IPv6 one).
pub fn parse_ip_prefix(s: &str, allow_default: bool) -> Result<(IpAddr, u8), UsageError> {
    if !s.contains(':') {
        return parse_prefix(s, allow_default).map(|(ip, len)| (IpAddr::V4(ip), len));
    }
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => {
            let len: u8 = len
                .parse()
                .ok()
                .filter(|l| *l <= 128)
                .ok_or_else(|| usage(format!("\"{s}\": prefix length must be 0..128")))?;
            (ip, len)
        }
        None => (s, 128),
    };
    let ip = ip
        .parse::<std::net::Ipv6Addr>()
        .map_err(|_| usage(format!("\"{ip}\" is not an IPv6 address")))?;
    Ok((IpAddr::V6(ip), len))
}

/// `A.B.C.D[/LEN]` (no length = /32), or `default` when `allow_default`.
pub fn parse_prefix(s: &str, allow_default: bool) -> Result<(Ipv4Addr, u8), UsageError> {
    if allow_default && (s == "default" || s == "all") {
        return Ok((Ipv4Addr::UNSPECIFIED, 0));
    }
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => {
            let len: u8 = len
                .parse()
                .ok()
                .filter(|l| *l <= 32)
                .ok_or_else(|| usage(format!("\"{s}\": prefix length must be 0..32")))?;
            (ip, len)
        }
        None => (s, 32),
    };
    Ok((parse_v4(ip)?, len))
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], UsageError> {
    let bad = || usage(format!("\"{s}\" is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    let mut mac = [0u8; 6];
    let mut n = 0;
    for part in s.split(':') {
        if n == 6 || part.is_empty() || part.len() > 2 {
            return Err(bad());
        }
        mac[n] = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        n += 1;
    }
    if n != 6 {
        return Err(bad());
    }
    Ok(mac)
}

fn addr_spec(args: &[String]) -> Result<AddrSpec, UsageError> {
    let (pos, kv) = positional(args, "IP/LEN")?;
    no_keys(&kv, &["dev"])?;
    let (ip, len) = parse_ip_prefix(&pos, false)?;
    Ok(AddrSpec {
        port: required(&kv, "dev", "PORT")?,
        addr: ip,
        prefix_len: len,
    })
}

fn route_spec(args: &[String], need_dev: bool) -> Result<RouteSpec, UsageError> {
    let (pos, kv) = positional(args, "PREFIX")?;
    no_keys(&kv, &["dev", "via"])?;
    let (prefix, len) = parse_ip_prefix(&pos, true)?;
    let via = get(&kv, "via").map(|g| parse_ip(&g)).transpose()?;
    if via.is_some_and(|g| g.is_ipv6() != prefix.is_ipv6()) {
        return Err(usage(format!(
            "gateway and prefix {pos} are of different address families"
        )));
    }
    let port = if need_dev {
        required(&kv, "dev", "PORT")?
    } else {
        get(&kv, "dev").unwrap_or_default()
    };
    Ok(RouteSpec {
        prefix,
        len,
        via,
        port,
    })
}

fn neigh_spec(args: &[String]) -> Result<NeighSpec, UsageError> {
    let (pos, kv) = positional(args, "IP")?;
    no_keys(&kv, &["dev", "lladdr"])?;
    Ok(NeighSpec {
        ip: parse_ip(&pos)?,
        mac: parse_mac(&required(&kv, "lladdr", "MAC")?)?,
        port: required(&kv, "dev", "PORT")?,
    })
}
