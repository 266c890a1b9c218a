//! Parser tests: every option, the defaults, and ipvsadm's error texts and exit codes.

use super::*;

fn argv(s: &str) -> Vec<String> {
    std::iter::once("ipvsadm".to_owned())
        .chain(s.split_whitespace().map(str::to_owned))
        .collect()
}

fn resolver() -> Resolver {
    Resolver::from_texts(
        "198.18.0.100 vip.test\n",
        "http 80/tcp www\ndomain 53/udp\n",
    )
}

fn cmd(s: &str) -> Command {
    match parse(&argv(s), &resolver(), false) {
        Ok(Invocation::Command(c)) => c,
        other => panic!("{s}: {other:?}"),
    }
}

fn err(s: &str) -> (String, i32) {
    match parse(&argv(s), &resolver(), false) {
        Err(e) => (e.to_string(), e.exit_code()),
        Ok(o) => panic!("{s}: parsed as {o:?}"),
    }
}

fn fails(s: &str, msg: &str) {
    assert_eq!(err(s), (msg.to_owned(), 2), "{s}");
}

fn key(p: Protocol, a: &str, port: u16) -> ServiceKey {
    ServiceKey::Inet {
        protocol: p,
        addr: a.parse().unwrap(),
        port,
    }
}

#[test]
fn matrix_rows_cover_every_option() {
    for row in MATRIX {
        assert_eq!(row.len(), OPT_NAMES.len(), "{row:?}");
    }
}

#[test]
fn add_service_defaults() {
    let Command::AddService(s) = cmd("-A -t 198.18.0.100:80") else {
        panic!()
    };
    assert_eq!(s.key, key(Protocol::Tcp, "198.18.0.100", 80));
    assert_eq!(s.scheduler, "wlc");
    assert_eq!(s.persistent, None);
    assert_eq!(s.netmask, 0xffff_ffff);
    assert!(!s.ops && s.pe.is_none() && s.sched_flags.is_empty());
}

#[test]
fn add_service_all_options() {
    let Command::AddService(s) =
        cmd("--add-service --udp-service=vip.test:domain -s rr -p 60 -M 255.255.255.0 --pe sip -o")
    else {
        panic!()
    };
    assert_eq!(s.key, key(Protocol::Udp, "198.18.0.100", 53));
    assert_eq!(s.scheduler, "rr");
    assert_eq!(s.persistent, Some(60));
    assert_eq!(s.netmask, 0xffff_ff00);
    assert_eq!(s.pe.as_deref(), Some("sip"));
    assert!(s.ops);
    let Command::EditService(s) =
        cmd("-E -t [2001:db8::1]:443 -p -M 64 -s sh -b sh-port,sh-fallback")
    else {
        panic!()
    };
    assert_eq!(s.key, key(Protocol::Tcp, "2001:db8::1", 443));
    assert_eq!(s.persistent, Some(360));
    assert_eq!(s.netmask, 64);
    assert_eq!(s.sched_flags, vec!["sh-fallback", "sh-port"]);
    let Command::AddService(s) = cmd("-A --sctp-service 10.0.0.1:9 -p360") else {
        panic!()
    };
    assert_eq!(s.key, key(Protocol::Sctp, "10.0.0.1", 9));
    assert_eq!(s.persistent, Some(360));
    let Command::AddService(s) = cmd("-A -f 5 -6 -p 10") else {
        panic!()
    };
    assert_eq!(
        s.key,
        ServiceKey::Fwmark {
            mark: 5,
            ipv6: true
        }
    );
    assert_eq!(s.netmask, 128);
    assert!(matches!(cmd("-At 10.0.0.1:80"), Command::AddService(_)));
    assert!(matches!(cmd("-A -t 10.0.0.1 -p"), Command::AddService(_)));
}

#[test]
fn service_errors() {
    fails(
        "-A -t 10.0.0.1:http2",
        "illegal virtual server address[:port] specified",
    );
    fails(
        "-A -t nosuchhost:80",
        "illegal virtual server address[:port] specified",
    );
    fails(
        "-A -t 80",
        "illegal virtual server address[:port] specified",
    );
    fails(
        "-A -t [2001:db8::1]",
        "illegal virtual server address[:port] specified",
    );
    fails(
        "-A -t 10.0.0.1:65536",
        "illegal virtual server address[:port] specified",
    );
    fails(
        "-A -t 10.0.0.1",
        "Zero port specified for non-persistent service",
    );
    fails(
        "-A -t 10.0.0.1:80 -o",
        "One-Packet Scheduling is only for UDP virtual services",
    );
    fails(
        "-A -t 10.0.0.1:80 -p 0",
        "invalid timeout value `0' specified",
    );
    fails(
        "-A -t 10.0.0.1:80 -p 2678401",
        "invalid timeout value `2678401' specified",
    );
    fails(
        "-A -t 10.0.0.1:80 -p x",
        "invalid timeout value `x' specified",
    );
    fails("-A -f 0", "invalid fwmark value `0' specified");
    fails("-A -6 -f 1", "-6 used before -f\n");
    fails(
        "-A -t 10.0.0.1:80 -M x.y",
        "illegal virtual server persistent mask specified",
    );
    fails("-A -t [::1]:80 -M 129", "illegal ipv6 netmask specified");
    fails(
        "-A -t 10.0.0.1:80 -b bogus",
        "invalid scheduler flag `bogus'",
    );
    fails(
        "-A -t 10.0.0.1:80 -b sh-port",
        "incompatible scheduler flag `sh-port'",
    );
    fails(
        "-A -t 10.0.0.1:80 -u 10.0.0.1:80",
        "multiple 'service-address' options specified",
    );
    fails(
        "-A -t 10.0.0.1:80 -s rr -s wrr",
        "multiple 'scheduler' options specified",
    );
    fails(
        "-A",
        "You need to supply the 'service-address' option for the 'add-service' command",
    );
    fails(
        "-A -t 10.0.0.1:80 -w 2",
        "Illegal 'weight' option with the 'add-service' command",
    );
    fails(
        "-D -t 10.0.0.1:80 -s rr",
        "Illegal 'scheduler' option with the 'delete-service' command",
    );
    fails("-A -t 10.0.0.1:80 -L", "multiple commands specified");
    fails("-A -t 10.0.0.1:80 extra", "unexpected argument extra");
}

#[test]
fn dest_defaults_and_port_rules() {
    let Command::AddDest { service, dest } = cmd("-a -t 10.0.0.1:80 -r 10.1.0.1") else {
        panic!()
    };
    assert_eq!(service, key(Protocol::Tcp, "10.0.0.1", 80));
    assert_eq!(dest.addr, "10.1.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(
        (dest.port, dest.forward, dest.weight),
        (80, Forward::Route, 1)
    );
    // -g and -i force dport = vport.
    let Command::AddDest { dest, .. } = cmd("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -g") else {
        panic!()
    };
    assert_eq!(dest.port, 80);
    let Command::AddDest { dest, .. } = cmd("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -i") else {
        panic!()
    };
    assert_eq!((dest.port, dest.forward), (80, Forward::Tunnel));
    // -m and FULLNAT keep the given port.
    let Command::EditDest { dest, .. } =
        cmd("-e -t 10.0.0.1:80 -r 10.1.0.1:8080 --masquerading --weight 0 -x 10 -y 5")
    else {
        panic!()
    };
    assert_eq!(
        (dest.port, dest.forward, dest.weight),
        (8080, Forward::Masq, 0)
    );
    assert_eq!((dest.u_threshold, dest.l_threshold), (10, 5));
    let Command::AddDest { dest, .. } = cmd("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -b -w 3") else {
        panic!()
    };
    assert_eq!(
        (dest.port, dest.forward, dest.weight),
        (8080, Forward::FullNat, 3)
    );
    let Command::AddDest { dest, .. } = cmd("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 --fullnat") else {
        panic!()
    };
    assert_eq!(dest.forward, Forward::FullNat);
    // fwmark services keep the dest port; -r before -t sees no vport (as ipvsadm).
    let Command::AddDest { dest, .. } = cmd("-a -f 3 -r 10.1.0.1:8080 -g") else {
        panic!()
    };
    assert_eq!(dest.port, 8080);
    let Command::DelDest { port, .. } = cmd("-d -r 10.1.0.1 -t 10.0.0.1:80") else {
        panic!()
    };
    assert_eq!(port, 0);
    let Command::DelDest { port, .. } = cmd("-d -t 10.0.0.1:80 -r 10.1.0.1") else {
        panic!()
    };
    assert_eq!(port, 80);
    // Tunnels may cross address families.
    assert!(matches!(
        cmd("-a -t 10.0.0.1:80 -r [2001:db8::5]:80 -i"),
        Command::AddDest { .. }
    ));
}

#[test]
fn dest_errors() {
    fails(
        "-a -t 10.0.0.1:80",
        "You need to supply the 'real-server' option for the 'add-server' command",
    );
    fails(
        "-a -r 10.1.0.1",
        "You need to supply the 'service-address' option for the 'add-server' command",
    );
    fails(
        "-a -t 10.0.0.1:80 -r bad..addr",
        "illegal real server address[:port] specified",
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -w 65536",
        "illegal weight specified",
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -w -1",
        "illegal weight specified",
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -x -1",
        "illegal u_threshold specified",
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -y z",
        "illegal l_threshold specified",
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -m -g",
        "multiple 'forwarding-method' options specified",
    );
    fails(
        "-d -t 10.0.0.1:80 -r 10.1.0.1 -w 1",
        "Illegal 'weight' option with the 'delete-server' command",
    );
    fails(
        "-a -t 10.0.0.1:80 -r [2001:db8::5]:80 -m",
        "Different address family is allowed only for tunneling servers",
    );
    // NAT64 is FULLNAT only, and from an IPv6 service to an IPv4 real server only.
    fails(
        "-a -t [2001:2::100]:80 -r 198.18.1.11:80 -m",
        "Different address family is allowed only for tunneling servers",
    );
    fails(
        "-a -t 10.0.0.1:80 -r [2001:db8::5]:80 -b",
        "Different address family is allowed only for tunneling servers",
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -s rr",
        "Illegal 'scheduler' option with the 'add-server' command",
    );
}

#[test]
fn tunnel_options() {
    let Command::AddDest { dest, .. } =
        cmd("-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-type gue --tun-port 6080 --tun-remcsum")
    else {
        panic!()
    };
    assert_eq!(
        dest.tun,
        TunSpec {
            tun_type: TunType::Gue,
            port: 6080,
            csum: TunCsum::RemCsum
        }
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -m --tun-type gre",
        "Tunnel options conflict with forward method",
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-type gue",
        "You need to supply the 'tun-port' option for the 'gue' tunnel type",
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-type gre --tun-remcsum",
        "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-csum",
        "Illegal 'tun-csum' option with the 'ipip' tunnel type",
    );
    fails(
        "-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-type vxlan",
        "illegal tunnel type specified",
    );
}

#[test]
fn list_variants() {
    assert_eq!(
        cmd("-Ln"),
        Command::List {
            what: ListWhat::All,
            format: Format {
                numeric: true,
                ..Format::default()
            }
        }
    );
    assert!(matches!(
        cmd("-l"),
        Command::List {
            what: ListWhat::All,
            ..
        }
    ));
    assert!(matches!(
        cmd("--list --numeric"),
        Command::List {
            what: ListWhat::All,
            ..
        }
    ));
    let Command::List { what, format } = cmd("-L -t 10.0.0.1:80 --stats --exact --nosort --sort")
    else {
        panic!()
    };
    assert_eq!(what, ListWhat::Service(key(Protocol::Tcp, "10.0.0.1", 80)));
    assert!(format.stats && format.exact && format.nosort && !format.numeric);
    assert!(matches!(
        cmd("-Lnc"),
        Command::List {
            what: ListWhat::Connections,
            ..
        }
    ));
    assert!(matches!(
        cmd("-Lnc --persistent-conn"),
        Command::List {
            what: ListWhat::Connections,
            ..
        }
    ));
    assert!(matches!(
        cmd("-L --timeout"),
        Command::List {
            what: ListWhat::Timeout,
            ..
        }
    ));
    assert!(matches!(
        cmd("-L --daemon"),
        Command::List {
            what: ListWhat::Daemon,
            ..
        }
    ));
    let Command::List { format, .. } = cmd("-L --rate --thresholds --persistent-conn --tun-info")
    else {
        panic!()
    };
    assert!(format.rate && format.thresholds && format.persistent_conn && format.tun_info);
    fails("-L -c --stats", "options conflicts in the list command");
    fails(
        "-L --timeout --rate",
        "options conflicts in the list command",
    );
    fails(
        "-L -c -t 10.0.0.1:80",
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
    );
    fails(
        "-L -s rr",
        "Illegal 'scheduler' option with the 'list' command",
    );
    fails("-L -n -n", "multiple 'numeric' options specified");
    fails("-L -h", "invalid option `-h'");
}

#[test]
fn other_commands() {
    assert_eq!(cmd("-C"), Command::Clear);
    assert_eq!(cmd("--clear"), Command::Clear);
    assert_eq!(cmd("-Z"), Command::Zero(None));
    assert_eq!(
        cmd("-Z -u 10.0.0.1:53"),
        Command::Zero(Some(key(Protocol::Udp, "10.0.0.1", 53)))
    );
    assert_eq!(
        cmd("-D -t 10.0.0.1:www"),
        Command::DelService(key(Protocol::Tcp, "10.0.0.1", 80))
    );
    assert_eq!(
        cmd("--set 900 120 0"),
        Command::SetTimeouts(Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 0
        })
    );
    fails("--set 900 120", "--set option requires 3 timeout values");
    fails("--set 1 2 3 4", "unexpected argument 4");
    fails("--set 1 2 x", "invalid timeout value `x' specified");
    assert_eq!(err("--set 1 2 -3"), ("-3: unknown option".to_owned(), 255));
    let Command::Save { format } = cmd("-S -n") else {
        panic!()
    };
    assert!(format.rule && format.numeric);
    fails(
        "-S -c",
        "Illegal 'connection' option with the 'save' command",
    );
    assert_eq!(cmd("-R"), Command::Restore);
    assert!(matches!(
        parse(&argv("-R"), &resolver(), true),
        Err(ParseError::TryHelp(_))
    ));
    assert!(matches!(
        cmd("--start-daemon master --mcast-interface eth1 --syncid 3"),
        Command::StartDaemon(_)
    ));
    fails(
        "--start-daemon foo",
        "illegal start-daemon parameter specified",
    );
    fails(
        "--stop-daemon backup --mcast-interface x",
        "Illegal 'mcast-interface' option with the 'stop-daemon' command",
    );
    assert_eq!(parse(&argv("-h"), &resolver(), false), Ok(Invocation::Help));
    assert_eq!(
        parse(&argv("--version"), &resolver(), false),
        Ok(Invocation::Version)
    );
}

#[test]
fn laddr_commands() {
    let Command::AddLaddr { service, laddr } = cmd("-P -t 10.0.0.1:80 -z 198.18.0.201 -F dp0")
    else {
        panic!()
    };
    assert_eq!(service, key(Protocol::Tcp, "10.0.0.1", 80));
    assert_eq!(laddr.addr, "198.18.0.201".parse::<IpAddr>().unwrap());
    assert_eq!(laddr.ifname, "dp0");
    assert!(matches!(
        cmd("--del-laddr -t 10.0.0.1:80 --laddr 198.18.0.201 --ifname dp0"),
        Command::DelLaddr { .. }
    ));
    assert_eq!(
        cmd("-G"),
        Command::GetLaddr {
            service: None,
            numeric: false
        }
    );
    fails(
        "-P -t 10.0.0.1:80 -F dp0",
        "You need to supply the 'laddr' option for the 'add-laddr' command",
    );
}

#[test]
fn usage_errors_exit_255() {
    let tryhelp = (
        "Try `ipvsadm -h' or 'ipvsadm --help' for more information.".to_owned(),
        255,
    );
    assert_eq!(err("-n -L"), tryhelp);
    assert_eq!(err("--bogus"), tryhelp);
    assert_eq!(err("foo"), tryhelp);
    assert_eq!(err("-t 10.0.0.1:80"), tryhelp);
    assert_eq!(
        err("-L --bogus"),
        ("--bogus: unknown option".to_owned(), 255)
    );
    assert_eq!(err("-Lq"), ("-Lq: unknown option".to_owned(), 255));
    assert_eq!(err("-A -t"), ("-t: missing argument".to_owned(), 255));
    assert_eq!(
        err("-L --numeric=yes"),
        (
            "--numeric=yes: option does not take an argument".to_owned(),
            255
        )
    );
}

/// DPVS's `-j|--synproxy enable|disable` on -A/-E (a prefix match, as DPVS compares), refused
/// elsewhere by the option matrix.
#[test]
fn synproxy_switch() {
    let Command::AddService(s) = cmd("-A -t 198.18.0.100:80 -s rr -j enable") else {
        panic!()
    };
    assert!(s.synproxy);
    let Command::EditService(s) = cmd("-E -t 198.18.0.100:80 --synproxy=disable") else {
        panic!()
    };
    assert!(!s.synproxy);
    let Command::AddService(s) = cmd("-A -t 198.18.0.100:80") else {
        panic!()
    };
    assert!(!s.synproxy);
    fails(
        "-A -t 198.18.0.100:80 -j on",
        "synproxy switch must be enable or disable",
    );
    fails(
        "-a -t 198.18.0.100:80 -r 198.18.1.11 -j enable",
        "Illegal 'synproxy' option with the 'add-server' command",
    );
}

#[test]
fn access_list_commands_take_dpvs_spelling() {
    let k = key(Protocol::Tcp, "198.18.0.100", 80);
    assert_eq!(
        cmd("-U -t 198.18.0.100:80 -k 198.18.0.2"),
        Command::AddAccess {
            service: k,
            list: AccessList::Deny,
            entry: "198.18.0.2".into()
        }
    );
    assert_eq!(
        cmd("--del-blklst -t 198.18.0.100:80 --blklst 198.18.0.0/24"),
        Command::DelAccess {
            service: k,
            list: AccessList::Deny,
            entry: "198.18.0.0/24".into()
        }
    );
    assert_eq!(
        cmd("-O -t 198.18.0.100:80 -2 198.18.0.3"),
        Command::AddAccess {
            service: k,
            list: AccessList::Allow,
            entry: "198.18.0.3".into()
        }
    );
    assert_eq!(
        cmd("--del-whtlst -t 198.18.0.100:80 --whtlst=198.18.0.3/32"),
        Command::DelAccess {
            service: k,
            list: AccessList::Allow,
            entry: "198.18.0.3".into()
        }
    );
    assert_eq!(
        cmd("-B"),
        Command::GetAccess {
            service: None,
            list: AccessList::Deny
        }
    );
    assert_eq!(
        cmd("-W -t 198.18.0.100:80"),
        Command::GetAccess {
            service: Some(k),
            list: AccessList::Allow
        }
    );
}

#[test]
fn access_list_errors() {
    fails(
        "-U -t 198.18.0.100:80",
        "You need to supply the 'blklst-address' option for the 'add-blklst' command",
    );
    fails(
        "-O -t 198.18.0.100:80 -k 198.18.0.2",
        "Illegal 'blklst-address' option with the 'add-whtlst' command",
    );
    fails(
        "-U -k 198.18.0.2",
        "You need to supply the 'service-address' option for the 'add-blklst' command",
    );
    fails(
        "-A -t 198.18.0.100:80 -k 198.18.0.2",
        "Illegal 'blklst-address' option with the 'add-service' command",
    );
    fails(
        "-U -t 198.18.0.100:80 -k nonsense",
        "illegal blacklist entry format, require [ IP | IP/LEN ]",
    );
    fails(
        "-O -t 198.18.0.100:80 -2 198.18.0.1/24",
        "illegal whitelist entry `198.18.0.1/24': host bits set beyond /24",
    );
    fails(
        "-O -t 198.18.0.100:80 -2 198.18.0.0/33",
        "illegal whitelist prefix length `33'",
    );
    fails(
        "-U -t 198.18.0.100:80 -k ipset:bad",
        "blacklist ipset entries are not supported by rvs",
    );
    fails("-U -B", "multiple commands specified");
}

#[test]
fn limits_on_add_and_edit() {
    let Command::AddService(s) = cmd(
        "-A -t 198.18.0.100:80 --conn-limit 100 --conn-rate 50:80 --src-rate 5 --src-prefix 24",
    ) else {
        panic!()
    };
    assert_eq!(
        s.limits,
        Limits {
            conn_limit: 100,
            conn_rate: 50,
            conn_burst: 80,
            src_rate: 5,
            src_burst: 0,
            src_prefix: 24,
        }
    );
    let Command::EditService(s) = cmd("-E -t 198.18.0.100:80 -s rr --conn-rate=7") else {
        panic!()
    };
    assert_eq!(
        (s.limits.conn_rate, s.limits.conn_limit),
        (7, 0),
        "-E sets what it is given, like every -E option"
    );
    fails(
        "-A -t 198.18.0.100:80 --conn-limit -1",
        "illegal conn-limit specified",
    );
    fails(
        "-A -t 198.18.0.100:80 --conn-rate 5:0",
        "illegal conn-rate specified",
    );
    fails(
        "-A -t 198.18.0.100:80 --conn-rate x",
        "illegal conn-rate specified",
    );
    fails(
        "-A -t 198.18.0.100:80 --src-rate 1:x",
        "illegal src-rate specified",
    );
    fails(
        "-A -t 198.18.0.100:80 --src-rate 1 --src-prefix 33",
        "illegal src-prefix specified",
    );
    fails(
        "-A -t 198.18.0.100:80 --src-prefix 24",
        "--src-prefix needs --src-rate",
    );
    fails(
        "-a -t 198.18.0.100:80 -r 198.18.1.11 --conn-limit 5",
        "Illegal 'conn-limit' option with the 'add-server' command",
    );
}

/// `--proxy-protocol` (DPVS's names, case-insensitive as DPVS's `strcasecmp`), rvs's `--toa`
/// and `--uoa`, on -A/-E only; version 1 refused for a UDP service; a bad value named.
#[test]
fn client_address_options() {
    use crate::proto::{ClientAddr, ProxyProtocol, UoaMode};
    let Command::AddService(s) = cmd("-A -t 198.18.0.100:80 -s rr --proxy-protocol V2-Insecure")
    else {
        panic!()
    };
    assert_eq!(s.client_addr.proxy_protocol, ProxyProtocol::V2Insecure);
    assert!(s.client_addr.toa);
    for (name, want) in [
        ("disable", ProxyProtocol::Disable),
        ("v1", ProxyProtocol::V1),
        ("v2", ProxyProtocol::V2),
        ("v1-insecure", ProxyProtocol::V1Insecure),
    ] {
        let Command::EditService(s) =
            cmd(&format!("-E -t 198.18.0.100:80 --proxy-protocol {name}"))
        else {
            panic!()
        };
        assert_eq!(s.client_addr.proxy_protocol, want, "{name}");
    }
    let Command::AddService(s) = cmd("-A -u 198.18.0.100:53 --uoa opp --toa disable") else {
        panic!()
    };
    assert_eq!(
        s.client_addr,
        ClientAddr {
            proxy_protocol: ProxyProtocol::Disable,
            toa: false,
            uoa: UoaMode::Opp
        }
    );
    let Command::AddService(s) = cmd("-A -u 198.18.0.100:53 --proxy-protocol v2 --uoa ipo") else {
        panic!()
    };
    assert_eq!(
        (s.client_addr.proxy_protocol, s.client_addr.uoa),
        (ProxyProtocol::V2, UoaMode::Ipo)
    );
    let Command::AddService(s) = cmd("-A -t 198.18.0.100:80") else {
        panic!()
    };
    assert_eq!(s.client_addr, ClientAddr::default());
    fails(
        "-A -t 198.18.0.100:80 --proxy-protocol v3",
        "proxy protocol must be disable, v1, v2, v1-insecure or v2-insecure",
    );
    fails(
        "-A -u 198.18.0.100:53 --proxy-protocol v1",
        "PROXY protocol v1 is for TCP services only",
    );
    fails(
        "-A -t 198.18.0.100:80 --toa off",
        "toa switch must be enable or disable",
    );
    fails(
        "-A -u 198.18.0.100:53 --uoa yes",
        "uoa must be opp, ipo or disable",
    );
    fails(
        "-a -t 198.18.0.100:80 -r 198.18.1.11 --proxy-protocol v2",
        "Illegal 'proxy-protocol' option with the 'add-server' command",
    );
    fails(
        "-D -t 198.18.0.100:80 --uoa opp",
        "Illegal 'uoa' option with the 'delete-service' command",
    );
}

/// IPv6 services and dests, and the NAT64 dest (an IPv4 FULLNAT real server of an IPv6
/// service, DPVS's `-b`).
#[test]
fn ipv6_services_dests_and_nat64() {
    let v6 = key(Protocol::Tcp, "2001:2::100", 80);
    let Command::AddDest { service, dest } =
        cmd("-a -t [2001:2::100]:80 -r [2001:2:1::11]:80 -m -w 2")
    else {
        panic!()
    };
    assert_eq!(service, v6);
    assert_eq!(dest.addr, "2001:2:1::11".parse::<IpAddr>().unwrap());
    assert_eq!(
        (dest.port, dest.weight, dest.forward),
        (80, 2, Forward::Masq)
    );
    let Command::AddDest { service, dest } = cmd("-a -t [2001:2::100]:80 -r 198.18.1.11:80 -b")
    else {
        panic!()
    };
    assert_eq!(service, v6);
    assert_eq!(dest.addr, "198.18.1.11".parse::<IpAddr>().unwrap());
    assert_eq!(dest.forward, Forward::FullNat);
    let Command::DelDest { addr, port, .. } = cmd("-d -t [2001:2::100]:80 -r 198.18.1.11:80")
    else {
        panic!()
    };
    assert_eq!((addr, port), ("198.18.1.11".parse::<IpAddr>().unwrap(), 80));
}
