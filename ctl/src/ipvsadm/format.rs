//! Listings exactly as ipvsadm 1.31 prints them (`-L` and its variants, `-Lc`, `-S`), plus
//! DPVS's `--get-laddr` table. Pure: data in, `String` out.
//!
//! Sorting reproduces libipvs's comparators, including `int r = ntohl(a) - ntohl(b)` (so
//! addresses 2^31 or more apart compare the wrong way round). Those comparators are not a total
//! order, so a plain insertion sort is used: stable, and it cannot panic on an inconsistent order.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::parse::{Format, sched_flag_bit, sched_flag_names};
use super::resolve::Resolver;
use crate::proto::{
    ConnInfo, DestInfo, Forward, Info, Protocol, ServiceInfo, ServiceKey, ServiceLaddrs, Timeouts,
    TunCsum, TunType,
};

/// An address as libipvs keeps it: four host-order words, IPv4 in the first.
fn words(addr: IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

fn af(addr: IpAddr) -> i32 {
    if addr.is_ipv6() { 10 } else { 2 }
}

/// libipvs address comparison: `ntohl(a) - ntohl(b)` as `int`, word by word for IPv6.
fn cmp_addr(a: IpAddr, b: IpAddr, v6: bool) -> i32 {
    let (wa, wb) = (words(a), words(b));
    let n = if v6 { 4 } else { 1 };
    (0..n)
        .map(|i| wa[i].wrapping_sub(wb[i]) as i32)
        .find(|&r| r != 0)
        .unwrap_or(0)
}

/// `ipvs_cmp_services`.
pub fn cmp_services(a: &ServiceInfo, b: &ServiceInfo) -> i32 {
    // (fwmark, af, protocol, addr, port)
    fn key(s: &ServiceInfo) -> (u32, i32, i32, IpAddr, i32) {
        match s.spec.key {
            ServiceKey::Fwmark { mark, ipv6 } => (
                mark,
                if ipv6 { 10 } else { 2 },
                0,
                IpAddr::from([0u8; 4]),
                0,
            ),
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => (
                0,
                af(addr),
                i32::from(protocol.number()),
                addr,
                i32::from(port),
            ),
        }
    }
    let (ka, kb) = (key(a), key(b));
    let r = ka.0.wrapping_sub(kb.0) as i32;
    if r != 0 {
        return r;
    }
    if ka.1 != kb.1 {
        return ka.1 - kb.1;
    }
    if ka.2 != kb.2 {
        return ka.2 - kb.2;
    }
    let r = cmp_addr(ka.3, kb.3, ka.1 == 10);
    if r != 0 {
        return r;
    }
    ka.4 - kb.4
}

/// `ipvs_cmp_dests`.
pub fn cmp_dests(a: &DestInfo, b: &DestInfo) -> i32 {
    let r = cmp_addr(a.spec.addr, b.spec.addr, a.spec.addr.is_ipv6());
    if r != 0 {
        return r;
    }
    i32::from(a.spec.port) - i32::from(b.spec.port)
}

/// Stable insertion sort by a C-style comparator (positive = `a` after `b`).
pub fn c_sort<T>(v: &mut [T], cmp: impl Fn(&T, &T) -> i32) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && cmp(&v[j - 1], &v[j]).cmp(&0) == Ordering::Greater {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// `print_largenum`.
pub fn largenum(i: u64, exact: bool) -> String {
    if exact {
        let s = i.to_string();
        let width = if s.len() <= 8 { 9 } else { s.len() + 1 };
        return format!("{s:>width$}");
    }
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// `addrport_to_anyname`: `addr:port` (`[addr]:port` for IPv6), names unless numeric.
pub fn addrport(
    addr: IpAddr,
    port: u16,
    proto: Option<Protocol>,
    numeric: bool,
    resolver: &Resolver,
) -> String {
    let (open, close) = if addr.is_ipv6() { ("[", "]") } else { ("", "") };
    let mut s = if numeric {
        format!("{open}{addr}{close}:{port}")
    } else {
        let host = resolver
            .addr_to_host(addr)
            .map(str::to_owned)
            .unwrap_or_else(|| addr.to_string());
        let service = proto
            .and_then(|p| resolver.port_to_service(port, p))
            .map(str::to_owned)
            .unwrap_or_else(|| port.to_string());
        format!("{open}{host}{close}:{service}")
    };
    truncate(&mut s, 59); // snprintf(buf, 60, ...)
    s
}

fn service_protocol(key: &ServiceKey) -> Protocol {
    match key {
        ServiceKey::Inet { protocol, .. } => *protocol,
        ServiceKey::Fwmark { .. } => Protocol::Tcp,
    }
}

fn fwd_switch(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "-m",
        Forward::Tunnel => "-i",
        Forward::Local | Forward::Route => "-g",
        Forward::FullNat => "-b",
    }
}

/// `print_sched_flags`: canonical names of the service's flags for its scheduler.
fn sched_flags_text(spec: &crate::proto::ServiceSpec) -> String {
    let mut bits = [false; 3];
    for f in &spec.sched_flags {
        if let Some(b) = sched_flag_bit(f) {
            bits[b] = true;
        }
    }
    let names = sched_flag_names(&spec.scheduler);
    (0..3)
        .filter(|&b| bits[b])
        .map(|b| names[b])
        .collect::<Vec<_>>()
        .join(",")
}

fn dotted(mask: u32) -> String {
    std::net::Ipv4Addr::from(mask).to_string()
}

/// `print_title`.
pub fn title(format: &Format) -> String {
    const PROT: &str = "Prot LocalAddress:Port";
    const REMOTE: &str = "  -> RemoteAddress:Port\n";
    if format.stats || format.rate {
        let t = if format.stats {
            ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]
        } else {
            ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]
        };
        format!(
            "{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}",
            t[0], t[1], t[2], t[3], t[4]
        )
    } else if format.thresholds {
        format!(
            "{PROT:<33} {:<10} {:<10} {:<10} {:<10}\n{REMOTE}",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if format.persistent_conn {
        format!(
            "{PROT:<33} {:<9} {:<11} {:<10} {:<10}\n{REMOTE}",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if format.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_owned()
    } else if !format.rule {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_owned()
    } else {
        String::new()
    }
}

fn tun_info(d: &DestInfo) -> String {
    if d.spec.forward != Forward::Tunnel {
        return "n/a".to_owned();
    }
    let csum = match d.spec.tun.csum {
        TunCsum::NoCsum => "-c",
        TunCsum::Csum => "+c",
        TunCsum::RemCsum => "r+c",
    };
    match d.spec.tun.tun_type {
        TunType::Ipip => "ipip".to_owned(),
        TunType::Gue => format!("gue:{}:{csum}", d.spec.tun.port),
        TunType::Gre => format!("gre:{csum}"),
    }
}

fn tun_rule(d: &DestInfo) -> String {
    if d.spec.forward != Forward::Tunnel {
        return String::new();
    }
    let csum = match d.spec.tun.csum {
        TunCsum::NoCsum => "--tun-nocsum",
        TunCsum::Csum => "--tun-csum",
        TunCsum::RemCsum => "--tun-remcsum",
    };
    match d.spec.tun.tun_type {
        TunType::Ipip => " --tun-type ipip".to_owned(),
        TunType::Gue => format!(" --tun-type gue --tun-port {} {csum}", d.spec.tun.port),
        TunType::Gre => format!(" --tun-type gre {csum}"),
    }
}

/// `print_service_entry`: the service line and its dest lines.
pub fn service_entry(out: &mut String, s: &ServiceInfo, format: &Format, resolver: &Resolver) {
    let spec = &s.spec;
    let proto = service_protocol(&spec.key);
    let v6 = match spec.key {
        ServiceKey::Fwmark { ipv6, .. } => ipv6,
        ServiceKey::Inet { addr, .. } => addr.is_ipv6(),
    };
    let svc_name = match spec.key {
        ServiceKey::Fwmark { mark, ipv6 } => match (format.rule, ipv6) {
            (true, true) => format!("-f {mark} -6"),
            (true, false) => format!("-f {mark}"),
            (false, true) => format!("FWM  {mark} IPv6"),
            (false, false) => format!("FWM  {mark}"),
        },
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let vname = addrport(addr, port, Some(protocol), format.numeric, resolver);
            if format.rule {
                let opt = match protocol {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    Protocol::Sctp => "--sctp-service",
                };
                format!("{opt} {vname}")
            } else {
                let mut n = format!("{:<4} {vname}", protocol.name());
                if !v6 {
                    truncate(&mut n, 33);
                }
                n
            }
        }
    };
    let flags = sched_flags_text(spec);
    let v4_mask = (!v6 && spec.netmask != 0xffff_ffff).then(|| dotted(spec.netmask));
    let v6_mask = (v6 && spec.netmask != 128).then_some(spec.netmask);

    if format.rule {
        let _ = write!(out, "-A {svc_name} -s {}", spec.scheduler);
        if let Some(t) = spec.persistent {
            let _ = write!(out, " -p {t}");
            if let Some(m) = &v4_mask {
                let _ = write!(out, " -M {m}");
            }
            if let Some(m) = v6_mask {
                let _ = write!(out, " -M {m}");
            }
        }
        if let Some(pe) = &spec.pe {
            let _ = write!(out, " --pe {pe}");
        }
        if spec.ops {
            out.push_str(" -o");
        }
        if spec.synproxy {
            out.push_str(" -j enable");
        }
        if !flags.is_empty() {
            let _ = write!(out, " -b {flags}");
        }
        out.push_str(&limits_rule(&spec.limits));
        out.push_str(&client_addr_rule(&spec.client_addr));
    } else if format.stats || format.rate {
        let _ = write!(out, "{svc_name:<33}");
        let v = if format.stats {
            let t = &s.stats;
            [t.conns, t.inpkts, t.outpkts, t.inbytes, t.outbytes]
        } else {
            let r = &s.rates;
            [r.cps, r.inpps, r.outpps, r.inbps, r.outbps]
        };
        for n in v {
            out.push_str(&largenum(n, format.exact));
        }
    } else {
        let _ = write!(out, "{svc_name} {}", spec.scheduler);
        if !flags.is_empty() {
            let _ = write!(out, " ({flags})");
        }
        if let Some(t) = spec.persistent {
            let _ = write!(out, " persistent {t}");
            if let Some(m) = &v4_mask {
                let _ = write!(out, " mask {m}");
            }
            if let Some(m) = v6_mask {
                let _ = write!(out, " mask {m}");
            }
            if let Some(pe) = &spec.pe {
                let _ = write!(out, " pe {pe}");
            }
        }
        if spec.ops {
            out.push_str(" ops");
        }
        if spec.synproxy {
            out.push_str(" synproxy");
        }
        out.push_str(&client_addr_text(&spec.client_addr));
        out.push_str(&limits_text(&spec.limits));
    }
    out.push('\n');

    let mut dests: Vec<&DestInfo> = s.dests.iter().collect();
    if !format.nosort {
        c_sort(&mut dests, |a, b| cmp_dests(a, b));
    }
    for e in dests {
        let d = &e.spec;
        let mut dname = addrport(d.addr, d.port, Some(proto), format.numeric, resolver);
        if !format.rule && !d.addr.is_ipv6() {
            truncate(&mut dname, 28);
        }
        if format.rule {
            // ipvsadm 1.31 does not save thresholds; rvs appends `-x`/`-y` when non-zero so
            // that `-S` then `-R` loses nothing (ipvsadm's own `-R` accepts them too).
            let mut thresholds = String::new();
            if d.u_threshold != 0 {
                let _ = write!(thresholds, " -x {}", d.u_threshold);
            }
            if d.l_threshold != 0 {
                let _ = write!(thresholds, " -y {}", d.l_threshold);
            }
            let _ = writeln!(
                out,
                "-a {svc_name} -r {dname} {} -w {}{}{thresholds}",
                fwd_switch(d.forward),
                d.weight,
                tun_rule(e)
            );
        } else if format.stats {
            let _ = write!(out, "  -> {dname:<28}");
            let t = &e.stats;
            for n in [t.conns, t.inpkts, t.outpkts, t.inbytes, t.outbytes] {
                out.push_str(&largenum(n, format.exact));
            }
            out.push('\n');
        } else if format.rate {
            let r = &e.rates;
            let _ = write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                r.cps, r.inpps, r.outpps
            );
            out.push_str(&largenum(r.inbps, format.exact));
            out.push_str(&largenum(r.outbps, format.exact));
            out.push('\n');
        } else if format.thresholds {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                d.u_threshold, d.l_threshold, e.active_conns, e.inact_conns
            );
        } else if format.persistent_conn {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                d.weight, e.persist_conns, e.active_conns, e.inact_conns
            );
        } else if format.tun_info {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                d.forward.name(),
                tun_info(e),
                d.weight,
                e.active_conns,
                e.inact_conns
            );
        } else {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                d.forward.name(),
                d.weight,
                e.active_conns,
                e.inact_conns
            );
        }
    }
}

/// The `IP Virtual Server version X.Y.Z (size=N)` header line.
pub fn header(info: &Info) -> String {
    let v = info.version_code;
    format!(
        "IP Virtual Server version {}.{}.{} (size={})\n",
        (v >> 16) & 0xff,
        (v >> 8) & 0xff,
        v & 0xff,
        info.conn_tab_size
    )
}

/// `list_all`: header (unless `-S`), sorted services (unless `--nosort`), title, entries.
pub fn list_all(
    info: Option<&Info>,
    services: &[ServiceInfo],
    format: &Format,
    resolver: &Resolver,
) -> String {
    let mut out = String::new();
    if let (false, Some(info)) = (format.rule, info) {
        out.push_str(&header(info));
    }
    let mut sorted: Vec<&ServiceInfo> = services.iter().collect();
    if !format.nosort {
        c_sort(&mut sorted, |a, b| cmp_services(a, b));
    }
    out.push_str(&title(format));
    for s in sorted {
        service_entry(&mut out, s, format, resolver);
    }
    out
}

/// `list_service`: title and one service, no header.
pub fn list_service(service: &ServiceInfo, format: &Format, resolver: &Resolver) -> String {
    let mut out = title(format);
    service_entry(&mut out, service, format, resolver);
    out
}

/// `list_timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcpfin, t.udp
    )
}

/// `list_conn`: connection entries (unsorted, in the daemon's order).
pub fn conns(conns: &[ConnInfo], format: &Format, resolver: &Resolver) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if format.persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in conns {
        let proto = match c.protocol.as_str() {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        };
        let name = |(a, p): (IpAddr, u16)| addrport(a, p, proto, format.numeric, resolver);
        let (cname, vname, dname) = (name(c.client), name(c.virt), name(c.dest));
        let expire = format!("{:02}:{:02}", c.expire_secs / 60, c.expire_secs % 60);
        match (&c.pe_name, &c.pe_data, format.persistent_conn) {
            (Some(pe_name), Some(pe_data), true) => {
                let _ = writeln!(
                    out,
                    "{:<3} {:<6} {:<11} {:<18} {:<18} {:<16} {:<18} {}",
                    c.protocol, expire, c.state, cname, vname, dname, pe_name, pe_data
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
                    c.protocol, expire, c.state, cname, vname, dname
                );
            }
        }
    }
    out
}

/// DPVS `--get-laddr`: a title, then per service `VIP:VPORT TOTAL` and one line per local
/// address under `SNAT_IP CONFLICTS CONNS`.
pub fn laddrs(list: &[ServiceLaddrs], numeric: bool, resolver: &Resolver) -> String {
    let mut out = format!(
        "{:<20} {:<8} {:<20} {:<10} {:<10}\n",
        "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"
    );
    for s in list {
        let vip = match s.service {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => addrport(addr, port, Some(protocol), numeric, resolver),
            ServiceKey::Fwmark { mark, .. } => format!("FWM {mark}"),
        };
        let _ = writeln!(out, "{vip:<20} {:<8}", s.laddrs.len());
        for l in &s.laddrs {
            let _ = writeln!(
                out,
                "{:<29} {:<20} {:<10} {:<10}",
                "",
                l.spec.addr.to_string(),
                l.port_conflicts,
                l.conns
            );
        }
    }
    out
}

/// `ipvsadm -S` lines restoring FULLNAT local addresses (`-P -t VIP:PORT -z LIP -F PORT`),
/// numeric, after the service and dest lines.
pub fn save_laddrs(list: &[ServiceLaddrs]) -> String {
    let mut out = String::new();
    for s in list {
        let svc = save_service_name(&s.service);
        for l in &s.laddrs {
            let _ = writeln!(out, "-P {svc} -z {} -F {}", l.spec.addr, l.spec.ifname);
        }
    }
    out
}

/// The service as the list lines name it: `-t ADDR:PORT` (numeric).
fn save_service_name(key: &ServiceKey) -> String {
    match *key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let flag = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            match addr {
                IpAddr::V6(a) => format!("{flag} [{a}]:{port}"),
                IpAddr::V4(a) => format!("{flag} {a}:{port}"),
            }
        }
        ServiceKey::Fwmark { mark, .. } => format!("-f {mark}"),
    }
}

/// `ipvsadm -S` lines restoring access lists (`-U -t VIP:PORT -k ENTRY` for the deny list,
/// `-O -t VIP:PORT -2 ENTRY` for the allow list), numeric, in the order the entries were added.
pub fn save_access_lists(services: &[ServiceInfo]) -> String {
    let mut out = String::new();
    for s in services {
        let svc = save_service_name(&s.spec.key);
        for e in &s.access.deny {
            let _ = writeln!(out, "-U {svc} -k {e}");
        }
        for e in &s.access.allow {
            let _ = writeln!(out, "-O {svc} -2 {e}");
        }
    }
    out
}

/// DPVS's `-B`/`-W` listing: a title line, then one line per entry,
/// `%-8s %-30s %-30s` (PROTO, VIP:VPORT, address), as DPVS's ipvsadm prints them. fwmark
/// services (which DPVS has not) show as `FWM` and their mark.
pub fn access_lists(services: &[ServiceInfo], list: crate::proto::AccessList) -> String {
    let title = match list {
        crate::proto::AccessList::Deny => "BLACKLIST",
        crate::proto::AccessList::Allow => "WHITELIST",
    };
    let mut out = format!("{:<8} {:<30} {:<30}\n", "PROTO", "VIP:VPORT", title);
    for s in services {
        let (proto, vip) = match s.spec.key {
            ServiceKey::Inet {
                protocol,
                addr: IpAddr::V6(a),
                port,
            } => (protocol.name().to_owned(), format!("[{a}]:{port}")),
            ServiceKey::Inet {
                protocol,
                addr: IpAddr::V4(a),
                port,
            } => (protocol.name().to_owned(), format!("{a}:{port}")),
            ServiceKey::Fwmark { mark, .. } => ("FWM".to_owned(), mark.to_string()),
        };
        let entries = match list {
            crate::proto::AccessList::Deny => &s.access.deny,
            crate::proto::AccessList::Allow => &s.access.allow,
        };
        for e in entries {
            let _ = writeln!(out, "{proto:<8} {vip:<30} {e:<30}");
        }
    }
    out
}

/// The limits of a service as `-Ln` shows them after its flags (nothing when none is set):
/// ` conn-limit N`, ` conn-rate RATE:BURST`, ` src-rate RATE:BURST/LEN` (BURST and LEN as in
/// effect: a burst of one second's worth when none was given, /32 by default).
fn limits_text(l: &crate::proto::Limits) -> String {
    let mut out = String::new();
    let burst = |rate: u32, burst: u32| if burst == 0 { rate.max(1) } else { burst };
    if l.conn_limit != 0 {
        let _ = write!(out, " conn-limit {}", l.conn_limit);
    }
    if l.conn_rate != 0 {
        let _ = write!(
            out,
            " conn-rate {}:{}",
            l.conn_rate,
            burst(l.conn_rate, l.conn_burst)
        );
    }
    if l.src_rate != 0 {
        let len = if l.src_prefix == 0 { 32 } else { l.src_prefix };
        let _ = write!(
            out,
            " src-rate {}:{}/{len}",
            l.src_rate,
            burst(l.src_rate, l.src_burst)
        );
    }
    out
}

/// How FULLNAT dests learn the client's address, as `-Ln` shows it after the flags: DPVS's
/// ` ppv2` (` pp` and the mode's name), and rvs's ` notoa`, ` uoa-opp`/` uoa-ipo` when not
/// the defaults.
fn client_addr_text(c: &crate::proto::ClientAddr) -> String {
    let mut out = String::new();
    if c.proxy_protocol != crate::proto::ProxyProtocol::Disable {
        let _ = write!(out, " pp{}", c.proxy_protocol.name());
    }
    if !c.toa {
        out.push_str(" notoa");
    }
    if c.uoa != crate::proto::UoaMode::Disable {
        let _ = write!(out, " uoa-{}", c.uoa.name());
    }
    out
}

/// The client-address options as `-S` writes them on the `-A` line (only what differs from
/// the defaults).
fn client_addr_rule(c: &crate::proto::ClientAddr) -> String {
    let mut out = String::new();
    if c.proxy_protocol != crate::proto::ProxyProtocol::Disable {
        let _ = write!(out, " --proxy-protocol {}", c.proxy_protocol.name());
    }
    if !c.toa {
        out.push_str(" --toa disable");
    }
    if c.uoa != crate::proto::UoaMode::Disable {
        let _ = write!(out, " --uoa {}", c.uoa.name());
    }
    out
}

/// The limits as `-S` writes them on the `-A` line (what was given, so `-R` sets the same).
fn limits_rule(l: &crate::proto::Limits) -> String {
    let mut out = String::new();
    if l.conn_limit != 0 {
        let _ = write!(out, " --conn-limit {}", l.conn_limit);
    }
    let rate = |out: &mut String, opt: &str, rate: u32, burst: u32| {
        if rate != 0 {
            let _ = write!(out, " --{opt} {rate}");
            if burst != 0 {
                let _ = write!(out, ":{burst}");
            }
        }
    };
    rate(&mut out, "conn-rate", l.conn_rate, l.conn_burst);
    rate(&mut out, "src-rate", l.src_rate, l.src_burst);
    if l.src_rate != 0 && l.src_prefix != 0 {
        let _ = write!(out, " --src-prefix {}", l.src_prefix);
    }
    out
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;

/// `ipvsadm -S` lines restoring rvs's fwmark classifier rules
/// (`--add-fwmark-rule -f MARK --proto P --dst ADDR/LEN [--ports LIST]`), in match order.
pub fn save_fwmark_rules(list: &[crate::proto::FwmarkRule]) -> String {
    let mut out = String::new();
    for r in list {
        let _ = write!(
            out,
            "--add-fwmark-rule -f {} --proto {} --dst {}",
            r.mark, r.proto, r.dst
        );
        if !r.ports.is_empty() {
            let _ = write!(out, " --ports {}", r.ports);
        }
        out.push('\n');
    }
    out
}
