//! Formatter tests. Expected texts (ctl/tests/golden/*.txt) were rendered by hand from
//! ipvsadm 1.31's format strings (docs/ipvsadm-compat.md section 1) and are compared byte for byte.

use super::*;
use crate::proto::{DestSpec, Rates, ServiceSpec, Stats, TunSpec};

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn svc(key: ServiceKey, sched: &str) -> ServiceInfo {
    ServiceInfo {
        refused: Default::default(),
        access: Default::default(),
        spec: ServiceSpec {
            limits: Default::default(),
            key,
            scheduler: sched.into(),
            sched_flags: vec![],
            persistent: None,
            netmask: 0xffff_ffff,
            pe: None,
            ops: false,
            synproxy: false,
            client_addr: Default::default(),
        },
        stats: Stats::default(),
        rates: Rates::default(),
        dests: vec![],
    }
}

fn dest(addr: &str, port: u16, forward: Forward, weight: u32, act: u32, inact: u32) -> DestInfo {
    DestInfo {
        spec: DestSpec {
            addr: addr.parse().unwrap(),
            port,
            forward,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            tun: TunSpec::default(),
        },
        active_conns: act,
        inact_conns: inact,
        persist_conns: 0,
        stats: Stats::default(),
        rates: Rates::default(),
    }
}

/// The four services of the reference's rendered `-Ln` example, in its order.
fn example() -> Vec<ServiceInfo> {
    let mut a = svc(tcp("10.0.0.1", 80), "wlc");
    a.spec.persistent = Some(360);
    a.spec.netmask = 0xffff_ff00;
    a.dests = vec![
        dest("192.168.1.11", 80, Forward::Masq, 1, 12, 40),
        dest("192.168.1.12", 8080, Forward::Masq, 3, 5, 7),
    ];
    let mut b = svc(
        ServiceKey::Inet {
            protocol: Protocol::Udp,
            addr: "10.0.0.2".parse().unwrap(),
            port: 53,
        },
        "mh",
    );
    b.spec.sched_flags = vec!["mh-fallback".into(), "mh-port".into()];
    b.spec.ops = true;
    b.dests = vec![dest("10.1.0.5", 53, Forward::Route, 1, 0, 0)];
    let mut c = svc(
        ServiceKey::Fwmark {
            mark: 1,
            ipv6: false,
        },
        "rr",
    );
    c.dests = vec![dest("172.16.0.9", 0, Forward::Tunnel, 2, 0, 0)];
    let mut d = svc(tcp("2001:db8::80", 443), "sh");
    d.spec.netmask = 128;
    d.spec.sched_flags = vec!["sh-fallback".into()];
    d.dests = vec![dest("2001:db8::a0", 443, Forward::Route, 1, 0, 0)];
    vec![a, b, c, d]
}

fn numeric() -> Format {
    Format {
        numeric: true,
        ..Format::default()
    }
}

fn info() -> Info {
    Info {
        version_code: 0x010201,
        conn_tab_size: 4096,
    }
}

#[test]
fn ln_matches_reference_example() {
    let f = Format {
        nosort: true,
        ..numeric()
    };
    let out = list_all(Some(&info()), &example(), &f, &Resolver::default());
    assert_eq!(out, golden("ln.txt"));
}

#[test]
fn sorting_puts_fwmark_services_last_and_v4_before_v6() {
    let mut services = example();
    services.reverse();
    let out = list_all(Some(&info()), &services, &numeric(), &Resolver::default());
    let firsts: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("  ->") && !l.starts_with("Prot") && !l.starts_with("IP "))
        .collect();
    assert_eq!(
        firsts,
        vec![
            "TCP  10.0.0.1:80 wlc persistent 360 mask 255.255.255.0",
            "UDP  10.0.0.2:53 mh (mh-fallback,mh-port) ops",
            "TCP  [2001:db8::80]:443 sh (sh-fallback)",
            "FWM  1 rr",
        ]
    );
}

#[test]
fn sorting_keeps_the_ntohl_subtraction_quirk() {
    // 200.0.0.1 - 10.0.0.1 overflows `int`: ipvsadm lists 200.x first.
    let services = vec![
        svc(tcp("10.0.0.1", 80), "rr"),
        svc(tcp("200.0.0.1", 80), "rr"),
    ];
    let out = list_all(None, &services, &numeric(), &Resolver::default());
    let p200 = out.find("200.0.0.1").unwrap();
    let p10 = out.find("10.0.0.1").unwrap();
    assert!(p200 < p10, "{out}");
    // Dests too, and by port when the address is equal.
    let mut s = svc(tcp("10.0.0.1", 80), "rr");
    s.dests = vec![
        dest("10.1.0.2", 90, Forward::Masq, 1, 0, 0),
        dest("10.1.0.2", 80, Forward::Masq, 1, 0, 0),
        dest("10.1.0.1", 99, Forward::Masq, 1, 0, 0),
    ];
    let out = list_service(&s, &numeric(), &Resolver::default());
    let order: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("  -> "))
        .map(|l| l.split(' ').next().unwrap())
        .skip(1)
        .collect();
    assert_eq!(order, vec!["10.1.0.1:99", "10.1.0.2:80", "10.1.0.2:90"]);
    let nosort = Format {
        nosort: true,
        ..numeric()
    };
    let out = list_service(&s, &nosort, &Resolver::default());
    assert!(out.find("10.1.0.2:90").unwrap() < out.find("10.1.0.1:99").unwrap());
}

fn stats_service() -> ServiceInfo {
    let mut s = svc(tcp("10.0.0.1", 80), "wlc");
    s.stats = Stats {
        conns: 1234,
        inpkts: 99_999_999,
        outpkts: 123_456_789,
        inbytes: 98_765_432_100,
        outbytes: 12_345_678_901_234,
    };
    s.rates = Rates {
        cps: 12,
        inpps: 340,
        outpps: 330,
        inbps: 45000,
        outbps: 400_000,
    };
    let mut d = dest("192.168.1.11", 80, Forward::Masq, 1, 12, 40);
    d.stats = Stats {
        conns: 617,
        inpkts: 50000,
        outpkts: 40000,
        inbytes: 3_000_000,
        outbytes: 90_000_000,
    };
    d.rates = Rates {
        cps: 6,
        inpps: 170,
        outpps: 165,
        inbps: 22500,
        outbps: 200_000,
    };
    s.dests = vec![d];
    s
}

#[test]
fn stats_rate_and_exact() {
    let r = Resolver::default();
    let s = stats_service();
    let f = Format {
        stats: true,
        ..numeric()
    };
    assert_eq!(list_service(&s, &f, &r), golden("ln_stats.txt"));
    let f = Format {
        rate: true,
        ..numeric()
    };
    assert_eq!(list_service(&s, &f, &r), golden("ln_rate.txt"));
    let f = Format {
        stats: true,
        exact: true,
        ..numeric()
    };
    let out = list_service(&s, &f, &r);
    assert_eq!(
        out.lines().nth(2).unwrap(),
        golden("ln_stats_exact_service_line.txt").trim_end_matches('\n')
    );
}

#[test]
fn largenum_thresholds() {
    assert_eq!(largenum(99_999_999, false), " 99999999");
    assert_eq!(largenum(100_000_000, false), "  100000K");
    assert_eq!(largenum(999_999_999, false), "  999999K");
    assert_eq!(largenum(1_000_000_000, false), "    1000M");
    assert_eq!(largenum(99_999_999_999, false), "   99999M");
    assert_eq!(largenum(100_000_000_000, false), "     100G");
    assert_eq!(largenum(100_000_000_000_000, false), "     100T");
    assert_eq!(largenum(5, true), "        5");
    assert_eq!(largenum(123_456_789, true), " 123456789");
}

#[test]
fn thresholds_and_persistent_conn() {
    let r = Resolver::default();
    let mut s = svc(tcp("10.0.0.1", 80), "wlc");
    let mut d = dest("192.168.1.11", 80, Forward::Masq, 1, 12, 40);
    d.spec.u_threshold = 1000;
    s.dests = vec![d];
    let f = Format {
        thresholds: true,
        ..numeric()
    };
    assert_eq!(list_service(&s, &f, &r), golden("ln_thresholds.txt"));

    let mut s = svc(tcp("10.0.0.1", 443), "wlc");
    s.spec.persistent = Some(360);
    let mut d = dest("192.168.1.11", 443, Forward::Masq, 1, 12, 40);
    d.persist_conns = 25;
    s.dests = vec![d];
    let f = Format {
        persistent_conn: true,
        ..numeric()
    };
    assert_eq!(list_service(&s, &f, &r), golden("ln_persistent_conn.txt"));
}

fn tunnel(addr: &str, tun_type: TunType, port: u16, csum: TunCsum) -> DestInfo {
    let mut d = dest(addr, 80, Forward::Tunnel, 1, 0, 0);
    d.spec.tun = TunSpec {
        tun_type,
        port,
        csum,
    };
    d
}

#[test]
fn tun_info() {
    let mut s = svc(tcp("10.0.0.1", 80), "rr");
    s.dests = vec![
        tunnel("192.168.10.1", TunType::Gue, 6080, TunCsum::NoCsum),
        tunnel("192.168.10.2", TunType::Gre, 0, TunCsum::Csum),
        tunnel("192.168.10.3", TunType::Ipip, 0, TunCsum::NoCsum),
        dest("192.168.10.4", 80, Forward::Route, 1, 0, 0),
    ];
    let f = Format {
        tun_info: true,
        ..numeric()
    };
    assert_eq!(
        list_service(&s, &f, &Resolver::default()),
        golden("ln_tun_info.txt")
    );
}

#[test]
fn save_rules() {
    let r = Resolver::default();
    let f = Format {
        rule: true,
        ..numeric()
    };
    let mut all = example();
    all.truncate(3);
    all[0].dests.truncate(1);
    assert_eq!(list_all(Some(&info()), &all, &f, &r), golden("s_n.txt"));

    let mut s = svc(tcp("10.0.0.5", 80), "wlc");
    s.dests = vec![tunnel("192.168.10.1", TunType::Gue, 6080, TunCsum::NoCsum)];
    let out = list_all(None, &[s], &f, &r);
    assert_eq!(
        out.lines().nth(1).unwrap(),
        golden("s_n_gue_line.txt").trim_end()
    );
}

#[test]
fn save_quirks() {
    let r = Resolver::default();
    let f = Format {
        rule: true,
        ..numeric()
    };
    let mut s = svc(
        ServiceKey::Fwmark {
            mark: 7,
            ipv6: true,
        },
        "sh",
    );
    s.spec.netmask = 64;
    s.spec.persistent = Some(60);
    s.spec.pe = Some("sip".into());
    s.spec.sched_flags = vec!["flag-1".into(), "flag-3".into()];
    s.dests = vec![
        dest("2001:db8::1", 0, Forward::Local, 5, 0, 0),
        dest("2001:db8::2", 0, Forward::FullNat, 1, 0, 0),
    ];
    assert_eq!(
        list_all(None, &[s], &f, &r),
        "-A -f 7 -6 -s sh -p 60 -M 64 --pe sip -b sh-fallback,flag-3\n\
         -a -f 7 -6 -r [2001:db8::1]:0 -g -w 5\n\
         -a -f 7 -6 -r [2001:db8::2]:0 -b -w 1\n"
    );
}

#[test]
fn connections() {
    let c = |p: &str, e: u32, st: &str, cl: &str, v: &str, d: &str| {
        let sp = |s: &str| {
            let (a, p) = s.rsplit_once(':').unwrap();
            (a.parse().unwrap(), p.parse().unwrap())
        };
        ConnInfo {
            protocol: p.into(),
            expire_secs: e,
            state: st.into(),
            client: sp(cl),
            virt: sp(v),
            dest: sp(d),
            pe_name: None,
            pe_data: None,
        }
    };
    let list = vec![
        c(
            "TCP",
            898,
            "ESTABLISHED",
            "203.0.113.7:51234",
            "10.0.0.1:80",
            "192.168.1.11:80",
        ),
        c(
            "UDP",
            299,
            "UDP",
            "203.0.113.9:40000",
            "10.0.0.2:53",
            "10.1.0.5:53",
        ),
        c(
            "TCP",
            359,
            "NONE",
            "203.0.113.0:0",
            "10.0.0.1:443",
            "192.168.1.11:443",
        ),
    ];
    assert_eq!(
        conns(&list, &numeric(), &Resolver::default()),
        golden("lnc.txt")
    );
    // Minutes are not wrapped at 60.
    let long = vec![c(
        "TCP",
        3725,
        "ESTABLISHED",
        "1.1.1.1:1",
        "2.2.2.2:2",
        "3.3.3.3:3",
    )];
    assert!(conns(&long, &numeric(), &Resolver::default()).contains("TCP 62:05  "));
}

#[test]
fn persistent_conn_connections() {
    let mut c = ConnInfo {
        protocol: "UDP".into(),
        expire_secs: 60,
        state: "UDP".into(),
        client: ("10.9.0.1".parse().unwrap(), 5060),
        virt: ("10.0.0.3".parse().unwrap(), 5060),
        dest: ("10.1.0.9".parse().unwrap(), 5060),
        pe_name: Some("sip".into()),
        pe_data: Some("abc@host".into()),
    };
    let f = Format {
        persistent_conn: true,
        ..numeric()
    };
    let out = conns(std::slice::from_ref(&c), &f, &Resolver::default());
    assert_eq!(
        out,
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination        pe name          pe_data\n\
         UDP 01:00  UDP         10.9.0.1:5060      10.0.0.3:5060      10.1.0.9:5060    sip                abc@host\n"
    );
    c.pe_name = None;
    let out = conns(&[c], &f, &Resolver::default());
    assert!(
        out.ends_with(
            "UDP 01:00  UDP         10.9.0.1:5060      10.0.0.3:5060      10.1.0.9:5060\n"
        )
    );
}

#[test]
fn timeout_line() {
    let t = Timeouts {
        tcp: 900,
        tcpfin: 120,
        udp: 300,
    };
    assert_eq!(timeouts(&t), golden("ln_timeout.txt"));
}

#[test]
fn names_without_numeric() {
    let r = Resolver::from_texts(
        "198.18.0.100 www.example.test\n",
        "http 80/tcp www\ndomain 53/udp\n",
    );
    let mut s = svc(tcp("198.18.0.100", 80), "wlc");
    s.dests = vec![dest("198.18.1.1", 8080, Forward::Masq, 1, 0, 0)];
    let out = list_service(&s, &Format::default(), &r);
    assert!(out.contains("\nTCP  www.example.test:http wlc\n"), "{out}");
    assert!(out.contains("  -> 198.18.1.1:8080 "), "{out}");
    let f = Format {
        rule: true,
        ..Format::default()
    };
    let out = list_all(None, &[s], &f, &r);
    assert!(
        out.starts_with("-A -t www.example.test:http -s wlc\n"),
        "{out}"
    );
}

#[test]
fn long_names_are_truncated_like_ipvsadm() {
    let r = Resolver::from_texts(
        "198.18.0.100 a-very-long-host-name-for-the-vip.example.test\n\
         198.18.1.1 a-very-long-host-name-for-the-rs.example.test\n",
        "",
    );
    let mut s = svc(tcp("198.18.0.100", 80), "wlc");
    s.dests = vec![dest("198.18.1.1", 80, Forward::Masq, 1, 0, 0)];
    let out = list_service(&s, &Format::default(), &r);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[2], "TCP  a-very-long-host-name-for-th wlc");
    assert_eq!(
        lines[3],
        "  -> a-very-long-host-name-for-th Masq    1      0          0         "
    );
}

#[test]
fn header_line() {
    assert_eq!(
        header(&info()),
        "IP Virtual Server version 1.2.1 (size=4096)\n"
    );
}

#[test]
fn laddr_table() {
    let list = vec![ServiceLaddrs {
        service: tcp("198.18.0.100", 80),
        laddrs: vec![crate::proto::LaddrInfo {
            spec: crate::proto::LaddrSpec {
                addr: "198.18.0.201".parse().unwrap(),
                ifname: "dp0".into(),
            },
            port_conflicts: 3,
            conns: 17,
        }],
    }];
    let out = laddrs(&list, true, &Resolver::default());
    assert_eq!(
        out,
        "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n\
         198.18.0.100:80      1       \n                              \
         198.18.0.201         3          17        \n"
    );
}

/// Two services given in the daemon's order: UDP first, and the TCP dests .12 before .11.
fn unsorted() -> Vec<ServiceInfo> {
    let mut u = svc(
        ServiceKey::Inet {
            protocol: Protocol::Udp,
            addr: "10.0.0.2".parse().unwrap(),
            port: 53,
        },
        "rr",
    );
    u.dests = vec![dest("10.1.0.5", 53, Forward::Route, 1, 0, 0)];
    let mut t = svc(tcp("10.0.0.1", 80), "wlc");
    t.dests = vec![
        dest("192.168.1.12", 8080, Forward::Masq, 3, 0, 0),
        dest("192.168.1.11", 80, Forward::Masq, 1, 0, 0),
    ];
    vec![u, t]
}

#[test]
fn list_without_numeric_resolves_hosts_and_services() {
    let r = Resolver::from_texts(
        "10.0.0.1 www.example.test\n192.168.1.11 rs1.example.test\n",
        "http 80/tcp\ndomain 53/udp\n",
    );
    let out = list_all(Some(&info()), &unsorted(), &Format::default(), &r);
    assert_eq!(out, golden("l_names.txt"));
}

#[test]
fn sort_and_nosort() {
    let r = Resolver::default();
    assert_eq!(
        list_all(Some(&info()), &unsorted(), &numeric(), &r),
        golden("ln_sorted.txt")
    );
    let f = Format {
        nosort: true,
        ..numeric()
    };
    assert_eq!(
        list_all(Some(&info()), &unsorted(), &f, &r),
        golden("ln_nosort.txt")
    );
}

#[test]
fn single_service_listing_has_no_header() {
    let s = unsorted().remove(1);
    assert_eq!(
        list_service(&s, &numeric(), &Resolver::default()),
        golden("ln_single_service.txt")
    );
}

#[test]
fn stats_scaling_at_every_boundary_and_exact_widths() {
    let mut s = svc(tcp("10.0.0.1", 80), "wlc");
    s.stats = Stats {
        conns: 99_999_999,
        inpkts: 100_000_000,
        outpkts: 999_999_999_999,
        inbytes: 100_000_000_000,
        outbytes: 100_000_000_000_000,
    };
    let mut d = dest("192.168.1.11", 80, Forward::Masq, 1, 0, 0);
    d.stats = Stats {
        conns: 0,
        inpkts: 999_999_999,
        outpkts: 1_000_000_000,
        inbytes: 99_999_999_999_999,
        outbytes: u64::MAX,
    };
    s.dests = vec![d];
    let f = Format {
        stats: true,
        ..numeric()
    };
    let r = Resolver::default();
    assert_eq!(list_service(&s, &f, &r), golden("ln_stats_scaling.txt"));
    let f = Format { exact: true, ..f };
    assert_eq!(list_service(&s, &f, &r), golden("ln_stats_exact.txt"));
}

#[test]
fn save_keeps_thresholds() {
    let mut s = svc(tcp("10.0.0.1", 80), "wlc");
    let mut a = dest("192.168.1.11", 80, Forward::Masq, 1, 0, 0);
    a.spec.u_threshold = 1000;
    a.spec.l_threshold = 750;
    let mut b = dest("192.168.1.12", 8080, Forward::Masq, 3, 0, 0);
    b.spec.u_threshold = 200;
    s.dests = vec![a, b, dest("192.168.1.13", 80, Forward::Masq, 1, 0, 0)];
    let f = Format {
        rule: true,
        ..numeric()
    };
    assert_eq!(
        list_all(None, &[s], &f, &Resolver::default()),
        golden("s_n_thresholds.txt")
    );
}

/// A SYN-proxy service: `synproxy` after the scheduler in listings (DPVS's word), `-j enable`
/// in saved rules (DPVS's option); nothing for the others, whose lines stay ipvsadm's.
#[test]
fn synproxy_in_listing_and_rules() {
    let r = Resolver::default();
    let mut s = svc(tcp("10.0.0.5", 80), "rr");
    s.spec.synproxy = true;
    let out = list_all(None, &[s.clone()], &numeric(), &r);
    assert!(
        out.lines().any(|l| l == "TCP  10.0.0.5:80 rr synproxy"),
        "{out}"
    );
    let f = Format {
        rule: true,
        ..numeric()
    };
    let out = list_all(None, &[s], &f, &r);
    assert_eq!(
        out.lines().next(),
        Some("-A -t 10.0.0.5:80 -s rr -j enable")
    );
}

fn with_lists() -> Vec<ServiceInfo> {
    let mut a = svc(tcp("198.18.0.100", 80), "wlc");
    a.access.deny = vec!["198.18.0.2".into(), "198.18.9.0/24".into()];
    a.access.allow = vec!["198.18.0.0/16".into()];
    let mut b = svc(
        ServiceKey::Inet {
            protocol: Protocol::Udp,
            addr: "198.18.0.101".parse().unwrap(),
            port: 53,
        },
        "rr",
    );
    b.access.deny = vec!["198.18.0.3".into()];
    vec![a, b, svc(tcp("198.18.0.102", 443), "rr")]
}

#[test]
fn blklst_and_whtlst_listings_are_dpvs_format() {
    // DPVS's `printf("%-8s %-30s %-30s\n", ...)`: the last column is padded too.
    let b = access_lists(&with_lists(), crate::proto::AccessList::Deny);
    let expected = concat!(
        "PROTO    VIP:VPORT                      BLACKLIST                     \n",
        "TCP      198.18.0.100:80                198.18.0.2                    \n",
        "TCP      198.18.0.100:80                198.18.9.0/24                 \n",
        "UDP      198.18.0.101:53                198.18.0.3                    \n",
    );
    assert_eq!(b, expected);
    let w = access_lists(&with_lists(), crate::proto::AccessList::Allow);
    let expected = concat!(
        "PROTO    VIP:VPORT                      WHITELIST                     \n",
        "TCP      198.18.0.100:80                198.18.0.0/16                 \n",
    );
    assert_eq!(w, expected);
}

#[test]
fn save_writes_list_lines_and_limits_only_when_set() {
    let lists = save_access_lists(&with_lists());
    assert_eq!(
        lists,
        concat!(
            "-U -t 198.18.0.100:80 -k 198.18.0.2\n",
            "-U -t 198.18.0.100:80 -k 198.18.9.0/24\n",
            "-O -t 198.18.0.100:80 -2 198.18.0.0/16\n",
            "-U -u 198.18.0.101:53 -k 198.18.0.3\n",
        )
    );
    let mut s = svc(tcp("198.18.0.100", 80), "wlc");
    let rule = Format {
        rule: true,
        numeric: true,
        ..Format::default()
    };
    let numeric = Format {
        numeric: true,
        ..Format::default()
    };
    let r = Resolver::from_texts("", "");
    let plain = entry(&s, &rule, &r);
    assert_eq!(plain, "-A -t 198.18.0.100:80 -s wlc\n");
    assert_eq!(entry(&s, &numeric, &r), "TCP  198.18.0.100:80 wlc\n");
    s.spec.limits = crate::proto::Limits {
        conn_limit: 100,
        conn_rate: 50,
        conn_burst: 0,
        src_rate: 5,
        src_burst: 10,
        src_prefix: 24,
    };
    assert_eq!(
        entry(&s, &rule, &r),
        "-A -t 198.18.0.100:80 -s wlc --conn-limit 100 --conn-rate 50 --src-rate 5:10 --src-prefix 24\n"
    );
    assert_eq!(
        entry(&s, &numeric, &r),
        "TCP  198.18.0.100:80 wlc conn-limit 100 conn-rate 50:50 src-rate 5:10/24\n"
    );
}

fn entry(s: &ServiceInfo, f: &Format, r: &Resolver) -> String {
    let mut out = String::new();
    service_entry(&mut out, s, f, r);
    out
}

/// The client-address choices: DPVS's ` ppv2` in listings and `--proxy-protocol v2` in saved
/// rules; rvs's ` notoa`, ` uoa-opp` and `--toa disable`, `--uoa opp`; nothing at the defaults.
#[test]
fn client_address_in_listing_and_rules() {
    use crate::proto::{ClientAddr, ProxyProtocol, UoaMode};
    let r = Resolver::default();
    let rule = Format {
        rule: true,
        ..numeric()
    };
    let cases = [
        (
            ClientAddr {
                proxy_protocol: ProxyProtocol::V2,
                ..ClientAddr::default()
            },
            "TCP  10.0.0.5:80 rr ppv2",
            "-A -t 10.0.0.5:80 -s rr --proxy-protocol v2",
        ),
        (
            ClientAddr {
                proxy_protocol: ProxyProtocol::V1Insecure,
                toa: false,
                uoa: UoaMode::Disable,
            },
            "TCP  10.0.0.5:80 rr ppv1-insecure notoa",
            "-A -t 10.0.0.5:80 -s rr --proxy-protocol v1-insecure --toa disable",
        ),
        (
            ClientAddr {
                uoa: UoaMode::Opp,
                ..ClientAddr::default()
            },
            "TCP  10.0.0.5:80 rr uoa-opp",
            "-A -t 10.0.0.5:80 -s rr --uoa opp",
        ),
        (
            ClientAddr::default(),
            "TCP  10.0.0.5:80 rr",
            "-A -t 10.0.0.5:80 -s rr",
        ),
    ];
    for (ca, listed, saved) in cases {
        let mut s = svc(tcp("10.0.0.5", 80), "rr");
        s.spec.client_addr = ca;
        let out = list_all(None, &[s.clone()], &numeric(), &r);
        assert!(out.lines().any(|l| l == listed), "{ca:?}\n{out}");
        let out = list_all(None, &[s], &rule, &r);
        assert!(out.lines().any(|l| l == saved), "{ca:?}\n{out}");
    }
}

/// An IPv6 service with an IPv6 NAT dest and a NAT64 (IPv4 FULLNAT) dest, as rvsd lists it.
fn v6_service() -> ServiceInfo {
    let mut s = svc(tcp("2001:2::100", 80), "rr");
    s.spec.netmask = 128;
    s.dests = vec![
        dest("198.18.1.11", 80, Forward::FullNat, 1, 0, 0),
        dest("2001:2:1::11", 80, Forward::Masq, 2, 3, 4),
        dest(
            "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff",
            8080,
            Forward::Masq,
            1,
            0,
            0,
        ),
    ];
    s
}

/// IPv6 rows as ipvsadm 1.31 prints them: `[addr]:port` names, never truncated (an IPv4 name
/// over 28 characters would be), services sorted by family then address then port; `-S` with
/// `-M` as a prefix length and the NAT64 dest's `-b`; `--stats`/`--rate`; `-Lnc` with `%-18s`
/// columns that a longer IPv6 name overflows.
#[test]
fn ipv6_goldens() {
    let r = Resolver::default();
    let mut v4 = svc(tcp("198.18.0.100", 80), "wrr");
    v4.dests = vec![dest("198.18.1.12", 80, Forward::Route, 1, 0, 0)];
    let mut p = svc(tcp("2001:2::100", 0), "sh");
    p.spec.netmask = 64;
    p.spec.persistent = Some(300);
    let all = vec![v6_service(), p, v4];
    assert_eq!(
        list_all(Some(&info()), &all, &numeric(), &r),
        golden("ln_v6.txt")
    );
    let rule = Format {
        rule: true,
        ..numeric()
    };
    assert_eq!(list_all(None, &all, &rule, &r), golden("save_v6.txt"));
    let mut st = v6_service();
    st.stats = Stats {
        conns: 5,
        inpkts: 100,
        outpkts: 90,
        inbytes: 6000,
        outbytes: 120_000,
    };
    let f = Format {
        stats: true,
        ..numeric()
    };
    assert_eq!(list_service(&st, &f, &r), golden("ln_stats_v6.txt"));
    let f = Format {
        rate: true,
        ..numeric()
    };
    assert_eq!(list_service(&st, &f, &r), golden("ln_rate_v6.txt"));
    let conn = |cl: (&str, u16), v: (&str, u16), d: (&str, u16), state: &str| ConnInfo {
        protocol: "TCP".into(),
        expire_secs: 898,
        state: state.into(),
        client: (cl.0.parse().unwrap(), cl.1),
        virt: (v.0.parse().unwrap(), v.1),
        dest: (d.0.parse().unwrap(), d.1),
        pe_name: None,
        pe_data: None,
    };
    let list = vec![
        conn(
            ("2001:db8::7", 51234),
            ("2001:2::100", 80),
            ("2001:2:1::11", 80),
            "ESTABLISHED",
        ),
        conn(
            ("2001:db8::8", 40000),
            ("2001:2::100", 80),
            ("198.18.1.11", 80),
            "SYN_RECV",
        ),
        conn(
            ("2001:db8:1:2::", 0),
            ("2001:2::100", 0),
            ("2001:2:1::11", 80),
            "NONE",
        ),
    ];
    assert_eq!(conns(&list, &numeric(), &r), golden("lnc_v6.txt"));
}
