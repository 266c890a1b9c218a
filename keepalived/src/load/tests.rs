use super::*;
use std::path::Path;

fn load(text: &str) -> Result<Config, ConfigError> {
    load_str(Path::new("/etc/keepalived/keepalived.conf"), text)
}

fn one(text: &str) -> VirtualServer {
    load(text).unwrap().virtual_servers.remove(0)
}

const NAT: &str = "virtual_server 198.18.0.100 80 {
    delay_loop 2
    lb_algo wrr
    lb_kind NAT
    persistence_timeout 300
    persistence_granularity 255.255.255.0
    protocol TCP
    quorum 2
    hysteresis 1
    sorry_server 198.18.1.20 8080
    real_server 198.18.1.11 80 {
        weight 3
        inhibit_on_failure
        uthreshold 100
        lthreshold 10
        HTTP_GET {
            url {
                path /health
                status_code 200-204
                digest 900150983cd24fb0d6963f7d28e17f72
            }
            connect_ip 198.18.4.11
            connect_port 8081
            bindto 198.18.4.1
            connect_timeout 2
            retry 3
            delay_before_retry 1.5
        }
    }
    real_server 198.18.1.12 80 {
        TCP_CHECK { connect_timeout 1 }
    }
}
";

#[test]
fn nat_service_with_every_common_keyword() {
    let vs = one(NAT);
    assert_eq!(vs.name, "198.18.0.100:80");
    assert_eq!(
        vs.keys,
        [ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "198.18.0.100".parse().unwrap(),
            port: 80
        }]
    );
    assert_eq!(vs.scheduler, "wrr");
    assert_eq!(vs.method, Forward::Masq);
    assert_eq!(vs.persistence_timeout, Some(300));
    assert_eq!(vs.persistence_granularity, 0xffff_ff00);
    assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
    assert_eq!(
        vs.sorry_server,
        Some(("198.18.1.20".parse().unwrap(), 8080))
    );
    assert_eq!(vs.delay_loop, Duration::from_secs(2));
    let r = &vs.reals[0];
    assert_eq!(
        (r.weight, r.inhibit_on_failure, r.u_threshold, r.l_threshold),
        (3, true, 100, 10)
    );
    let c = &r.checkers[0];
    assert_eq!(c.addr.to_string(), "198.18.4.11");
    assert_eq!(c.port, 8081);
    assert_eq!(c.bind_addr.unwrap().to_string(), "198.18.4.1");
    assert_eq!(
        (c.retry, c.delay_before_retry),
        (3, Duration::from_millis(1500))
    );
    assert_eq!(c.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.delay_loop, Duration::from_secs(2));
    let CheckKind::Http { urls, tls, .. } = &c.kind else {
        panic!("{c:?}")
    };
    assert!(!tls);
    assert_eq!(urls[0].status, [(200, 204)]);
    assert_eq!(
        urls[0].digest.as_deref(),
        Some("900150983cd24fb0d6963f7d28e17f72")
    );
    // Defaults: weight 1, the real server's own address and port, retry 1, 5 s connect timeout.
    let r = &vs.reals[1];
    assert_eq!(r.weight, 1);
    let c = &r.checkers[0];
    assert_eq!(
        (c.addr.to_string(), c.port, c.retry),
        ("198.18.1.12".into(), 80, 1)
    );
    assert_eq!(c.connect_timeout, Duration::from_secs(1));
}

#[test]
fn newer_aliases_fullnat_and_local_address_group() {
    let cfg = load(
        "local_address_group laddr_g1 {
    198.18.1.5 dp1
    198.18.1.6-7 dp1
}
virtual_server 198.18.0.100 443 {
    lvs_sched mh
    mh-port
    lvs_method FNAT
    protocol TCP
    laddr_group_name laddr_g1
    syn_proxy
    alpha
    omega
    real_server 198.18.1.11 443 {
        weight 2
        TCP_CHECK { connect_timeout 3 }
    }
}
",
    )
    .unwrap();
    let vs = &cfg.virtual_servers[0];
    assert_eq!((vs.scheduler.as_str(), vs.method), ("mh", Forward::FullNat));
    assert_eq!(vs.sched_flags, ["mh-port"]);
    assert!(vs.alpha && vs.omega && vs.synproxy);
    assert!(vs.reals[0].checkers[0].starts_down);
    let l: Vec<String> = vs
        .laddrs
        .iter()
        .map(|l| format!("{} {}", l.addr, l.ifname))
        .collect();
    assert_eq!(l, ["198.18.1.5 dp1", "198.18.1.6 dp1", "198.18.1.7 dp1"]);
}

#[test]
fn groups_fwmark_and_udp() {
    let cfg = load(
        "virtual_server_group web {
    198.18.0.100 80
    198.18.0.101-102 80
}
virtual_server group web {
    protocol TCP
    lb_algo rr
    lb_kind DR
    real_server 198.18.0.11 80 { TCP_CHECK { } }
}
virtual_server fwmark 7 {
    lb_algo sh
    lb_kind TUN
    real_server 198.18.0.12 0 { MISC_CHECK { misc_path \"/usr/bin/test -e /tmp\"
        misc_dynamic
    } }
}
virtual_server 198.18.0.100 53 {
    protocol UDP
    ops
    lb_algo rr
    lb_kind NAT
    real_server 198.18.1.11 53 { DNS_CHECK {
        type A
        name rs.example
    } }
}
",
    )
    .unwrap();
    let [g, f, u] = &cfg.virtual_servers[..] else {
        panic!()
    };
    assert_eq!(g.keys.len(), 3);
    assert_eq!(g.method, Forward::Route);
    assert_eq!(
        f.keys,
        [ServiceKey::Fwmark {
            mark: 7,
            ipv6: false
        }]
    );
    let CheckKind::Misc {
        script, dynamic, ..
    } = &f.reals[0].checkers[0].kind
    else {
        panic!()
    };
    assert_eq!(script.argv, ["/usr/bin/test", "-e", "/tmp"]);
    assert!(dynamic);
    assert!(u.ops);
    assert!(!u.synproxy && !g.synproxy);
    let c = &u.reals[0].checkers[0];
    assert_eq!(
        c.kind,
        CheckKind::Dns {
            qtype: 1,
            name: "rs.example".into()
        }
    );
    assert_eq!(c.port, 53);
}

#[test]
fn vrrp_is_accepted_and_reported_once() {
    let cfg = load(
        "global_defs { router_id LVS_A }
vrrp_script chk { script \"/bin/true\" interval 2 }
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    virtual_ipaddress { 198.18.0.100 }
}
vrrp_instance VI_2 { state BACKUP }
",
    )
    .unwrap();
    assert!(cfg.virtual_servers.is_empty());
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(
        cfg.warnings[0].contains("vrrp_script, vrrp_instance"),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn keepalived_defaults_are_warnings() {
    let cfg =
        load("virtual_server 198.18.0.100 80 {\n real_server 198.18.1.11 80 { }\n}\n").unwrap();
    let vs = &cfg.virtual_servers[0];
    assert_eq!(
        (vs.protocol, vs.scheduler.as_str(), vs.method),
        (Protocol::Udp, "wlc", Forward::Masq)
    );
    assert_eq!(cfg.warnings.len(), 3, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].starts_with("/etc/keepalived/keepalived.conf:1: "));
    let cfg =
        load("virtual_server 198.18.0.100 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n}\n")
            .unwrap();
    assert!(cfg.virtual_servers.is_empty());
    assert!(cfg.warnings[0].contains("no real servers"));
}

/// Every error names the file and the line it is about.
#[test]
fn errors_name_file_and_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "virtual_server 198.18.0.300 80 {\n}\n",
            1,
            "invalid virtual server address",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n protocol TCP\n lb_algo nosuch\n}\n",
            3,
            "unknown scheduler 'nosuch'",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n lb_kind FULLNAT\n}\n",
            2,
            "unknown forwarding method",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n real_server 198.18.1.11 80 {\n  weight abc\n }\n}\n",
            3,
            "invalid number 'abc'",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n bogus_keyword 3\n}\n",
            2,
            "unknown keyword 'bogus_keyword'",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n real_server 198.18.1.11 80 {\n  HTTP_GET {\n   connect_timeout 1\n  }\n }\n}\n",
            3,
            "needs at least one url",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n real_server 198.18.1.11 80 {\n  HTTP_GET {\n   url {\n    path /\n    status_code 999\n   }\n  }\n }\n}\n",
            6,
            "invalid status_code",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n delay_loop 0\n}\n",
            2,
            "more than 0",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n laddr_group_name g\n lb_kind FNAT\n}\n",
            2,
            "local_address_group g is not defined",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n lb_kind FNAT\n daddr_group_name deny1\n}\n",
            3,
            "deny_address_group deny1 is not defined",
        ),
        (
            "deny_address_group d {\n ipset:blocked\n}\n",
            2,
            "ipset members are not supported",
        ),
        (
            "allow_address_group a {\n 198.18.0.1/24\n}\nvirtual_server 198.18.0.100 80 {\n waddr_group_name a\n real_server 198.18.1.11 80 {\n }\n}\n",
            2,
            "invalid prefix '198.18.0.1/24'",
        ),
        (
            "virtual_server group nope {\n}\n",
            1,
            "virtual_server_group nope is not defined",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n protocol TCP\n",
            1,
            "never closed",
        ),
        ("}\n", 1, "extra '}'"),
        ("something_else 1\n", 1, "unknown keyword 'something_else'"),
        (
            "virtual_server 198.18.0.100 80 {\n real_server 198.18.1.11 80 {\n  MISC_CHECK { misc_timeout 3 }\n }\n}\n",
            3,
            "needs misc_path",
        ),
        (
            "virtual_server 198.18.0.100 80 {\n real_server 198.18.1.11 80 {\n  SSL_GET {\n  }\n }\n}\n",
            3,
            "SSL_GET needs at least one url",
        ),
    ];
    for (text, line, reason) in cases {
        let e = load(text).unwrap_err();
        assert_eq!(e.loc.line, *line, "{text}: {e}");
        assert!(e.reason.contains(reason), "{text}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("/etc/keepalived/keepalived.conf:{line}: ")),
            "{e}"
        );
    }
}

#[test]
fn includes_with_globs_and_errors_in_included_files() {
    let dir = std::env::temp_dir().join(format!("rvs-ka-inc-{}", std::process::id()));
    let conf_d = dir.join("conf.d");
    std::fs::create_dir_all(&conf_d).unwrap();
    std::fs::write(
        dir.join("keepalived.conf"),
        "global_defs { router_id a }\ninclude conf.d/*.conf\n",
    )
    .unwrap();
    let vs = |port: u16| {
        format!(
            "virtual_server 198.18.0.100 {port} {{\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 198.18.1.11 {port} {{ TCP_CHECK {{ }} }}\n}}\n"
        )
    };
    std::fs::write(conf_d.join("b.conf"), vs(443)).unwrap();
    std::fs::write(conf_d.join("a.conf"), vs(80)).unwrap();
    std::fs::write(conf_d.join("ignored.txt"), "garbage {").unwrap();
    let cfg = load_file(&dir.join("keepalived.conf")).unwrap();
    let names: Vec<&str> = cfg
        .virtual_servers
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["198.18.0.100:80", "198.18.0.100:443"]);
    std::fs::write(
        conf_d.join("c.conf"),
        "virtual_server 198.18.0.100 81 {\n lb_algo xx\n}\n",
    )
    .unwrap();
    let e = load_file(&dir.join("keepalived.conf")).unwrap_err();
    assert_eq!(*e.loc.file, conf_d.join("c.conf"));
    assert_eq!(e.loc.line, 2);
    // A file including itself ends with an error, not a hang.
    std::fs::write(conf_d.join("c.conf"), "include ../keepalived.conf\n").unwrap();
    let e = load_file(&dir.join("keepalived.conf")).unwrap_err();
    assert!(e.reason.contains("nested deeper"), "{e}");
    let e = load_file(&dir.join("missing.conf")).unwrap_err();
    assert!(e.to_string().contains("missing.conf"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn deny_and_allow_address_groups() {
    let cfg = load(
        "deny_address_group deny1 {
    198.18.0.3
    198.18.0.9-10
    198.18.5.0/24
}
allow_address_group allow1 {
    198.18.0.0/16
}
virtual_server 198.18.0.100 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    daddr_group_name deny1
    waddr_group_name allow1
    real_server 198.18.1.11 80 {
        TCP_CHECK { connect_timeout 3 }
    }
}
virtual_server 198.18.0.100 443 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    deny_address_group deny1
    real_server 198.18.1.11 443 {
        TCP_CHECK { connect_timeout 3 }
    }
}
",
    )
    .unwrap();
    let vs = &cfg.virtual_servers[0];
    assert_eq!(
        vs.access.deny,
        ["198.18.0.3", "198.18.0.9", "198.18.0.10", "198.18.5.0/24"]
    );
    assert_eq!(vs.access.allow, ["198.18.0.0/16"]);
    let vs = &cfg.virtual_servers[1];
    assert_eq!(vs.access.deny.len(), 4);
    assert!(vs.access.allow.is_empty());
}

/// DPVS's `proxy_protocol` in a virtual server: every mode taken (case-insensitive as DPVS), a
/// value DPVS would silently turn into "disable" refused here with its line.
#[test]
fn proxy_protocol_keyword() {
    use ctl::proto::ProxyProtocol;
    for (v, want) in [
        ("v1", ProxyProtocol::V1),
        ("V2", ProxyProtocol::V2),
        ("v1-insecure", ProxyProtocol::V1Insecure),
        ("v2-insecure", ProxyProtocol::V2Insecure),
        ("disable", ProxyProtocol::Disable),
    ] {
        let cfg = load(&format!(
            "virtual_server 198.18.0.100 80 {{\n    lvs_method FNAT\n    protocol TCP\n    \
             proxy_protocol {v}\n    real_server 198.18.1.11 80 {{\n    }}\n}}\n"
        ))
        .unwrap();
        assert_eq!(cfg.virtual_servers[0].proxy_protocol, want, "{v}");
        let specs = crate::program::service_specs(&cfg.virtual_servers[0]);
        assert_eq!(specs[0].client_addr.proxy_protocol, want);
    }
    let e = load("virtual_server 198.18.0.100 80 {\n    protocol TCP\n    proxy_protocol v3\n}\n")
        .unwrap_err();
    assert_eq!(e.loc.line, 3, "{e}");
    assert!(e.reason.contains("'proxy_protocol' must be"), "{e}");
}
