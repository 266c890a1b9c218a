//! rvsctl's parsing and rendering, against a fake daemon; expected texts written by hand.

use std::net::{IpAddr, Ipv4Addr};

use super::parse::{Command, Opts, parse, parse_mac, parse_prefix};
use super::*;
use crate::client::ClientError;
use crate::proto::{
    AddrInfo, AddrKind, AddrSpec, Errno, ErrorReply, LaddrUsage, LinkInfo, LinkStats, NeighEntry,
    NeighSpec, RouteInfo, RouteSpec, WorkerInfo,
};

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Fake(Box<dyn Fn(&Request) -> Reply>, Vec<Request>);

impl Daemon for Fake {
    fn call(&mut self, request: Request) -> Result<Reply, ClientError> {
        let r = (self.0)(&request);
        self.1.push(request);
        Ok(r)
    }
}

fn run_with(
    args: &str,
    f: impl Fn(&Request) -> Reply + 'static,
) -> (i32, String, String, Vec<Request>) {
    let mut d = Fake(Box::new(f), Vec::new());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut a = vec!["rvsctl".to_owned()];
    a.extend(argv(args));
    let code = run(&a, &mut d, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
        d.1,
    )
}

fn link(index: u16, name: &str, up: Option<bool>) -> LinkInfo {
    LinkInfo {
        index,
        name: name.into(),
        device: format!("net_af_packet{index},iface=veth-d{index}"),
        driver: "net_af_packet".into(),
        mac: [2, 0, 0, 0, 0, 1 + index as u8],
        mtu: 1500,
        up,
        speed_mbps: 10000,
        rx_queues: 1,
        tx_queues: 1,
        stats: Some(LinkStats {
            rx_packets: 12,
            rx_bytes: 3456,
            rx_missed: 1,
            rx_errors: 2,
            rx_nombuf: 3,
            tx_packets: 11,
            tx_bytes: 2345,
            tx_errors: 4,
        }),
        kernel: None,
    }
}

fn table(r: &Request) -> Reply {
    match r {
        Request::ListLinks => Reply::Links(vec![
            link(0, "dp0", Some(true)),
            link(1, "dp1", Some(false)),
        ]),
        Request::ListAddrs => Reply::Addrs(vec![
            AddrInfo {
                port: "dp0".into(),
                addr: ip("198.18.0.1"),
                prefix_len: 24,
                kind: AddrKind::Owned,
                laddr: None,
            },
            AddrInfo {
                port: "dp1".into(),
                addr: ip("198.18.1.1"),
                prefix_len: 24,
                kind: AddrKind::Owned,
                laddr: None,
            },
            AddrInfo {
                port: "dp1".into(),
                addr: ip("198.18.1.250"),
                prefix_len: 32,
                kind: AddrKind::Laddr,
                laddr: Some(LaddrUsage {
                    used: 3,
                    free: 64509,
                    misses: 1,
                    services: 2,
                }),
            },
        ]),
        Request::ListRoutes => Reply::Routes(vec![
            RouteInfo {
                prefix: ip("198.18.0.0"),
                len: 24,
                via: None,
                port: "dp0".into(),
                connected: true,
            },
            RouteInfo {
                prefix: ip("10.1.2.3"),
                len: 32,
                via: Some(ip("198.18.0.254")),
                port: "dp0".into(),
                connected: false,
            },
            RouteInfo {
                prefix: ip("0.0.0.0"),
                len: 0,
                via: Some(ip("198.18.0.254")),
                port: "dp0".into(),
                connected: false,
            },
        ]),
        Request::ListNeighs { .. } => Reply::Neighs(vec![
            NeighEntry {
                worker: 0,
                port: "dp0".into(),
                ip: ip("198.18.0.2"),
                mac: Some([2, 0, 0, 0, 0, 0x22]),
                state: "REACHABLE".into(),
                queued: 0,
            },
            NeighEntry {
                worker: 0,
                port: "dp1".into(),
                ip: ip("198.18.1.11"),
                mac: None,
                state: "INCOMPLETE".into(),
                queued: 2,
            },
        ]),
        Request::FlushNeighs { .. } => Reply::Flushed(5),
        Request::ListWorkers => Reply::Workers(vec![WorkerInfo {
            id: 0,
            lcore: 1,
            queue: 0,
            ports: 2,
            rx_packets: 100,
            rx_bytes: 6400,
            tx_packets: 99,
            tx_bytes: 6336,
            busy_permille: 125,
            redirects_sent: 0,
            redirects_received: 0,
            conns: 40,
            conn_capacity: 1048576,
            tx_dropped: 1,
            ring_overflows: 2,
            rx_chained: 3,
            drops: 4,
            conn_reuses: 5,
        }]),
        _ => Reply::Ok,
    }
}

#[test]
fn parses_objects_commands_and_abbreviations() {
    let p = |s: &str| parse(&argv(s)).unwrap();
    assert_eq!(
        p("link show -s"),
        (
            Opts {
                json: false,
                stats: true
            },
            Command::LinkShow { dev: None }
        )
    );
    assert_eq!(
        p("-j l"),
        (
            Opts {
                json: true,
                stats: false
            },
            Command::LinkShow { dev: None }
        )
    );
    assert_eq!(
        p("link ls dev dp1").1,
        Command::LinkShow {
            dev: Some("dp1".into())
        }
    );
    assert_eq!(p("a").1, Command::AddrShow { dev: None });
    assert_eq!(p("").1, Command::Help);
    assert_eq!(p("help").1, Command::Help);
    assert_eq!(
        p("addr add 198.18.0.7/24 dev dp0").1,
        Command::AddrAdd(AddrSpec {
            port: "dp0".into(),
            addr: ip("198.18.0.7"),
            prefix_len: 24
        })
    );
    assert_eq!(
        p("addr del dev dp0 198.18.0.7").1,
        Command::AddrDel(AddrSpec {
            port: "dp0".into(),
            addr: ip("198.18.0.7"),
            prefix_len: 32
        })
    );
    assert_eq!(
        p("route add default via 198.18.0.254 dev dp0").1,
        Command::RouteAdd(RouteSpec {
            prefix: ip("0.0.0.0"),
            len: 0,
            via: Some(ip("198.18.0.254")),
            port: "dp0".into()
        })
    );
    assert_eq!(
        p("ro delete 10.0.0.0/8").1,
        Command::RouteDel {
            prefix: ip("10.0.0.0"),
            len: 8
        }
    );
    assert_eq!(
        p("neigh add 198.18.0.9 lladdr 02:00:00:00:00:09 dev dp0").1,
        Command::NeighAdd(NeighSpec {
            ip: ip("198.18.0.9"),
            mac: [2, 0, 0, 0, 0, 9],
            port: "dp0".into()
        })
    );
    assert_eq!(
        p("n del 198.18.0.9 dev dp0").1,
        Command::NeighDel {
            ip: ip("198.18.0.9"),
            dev: "dp0".into()
        }
    );
    assert_eq!(
        p("neigh flush dev dp1").1,
        Command::NeighFlush {
            dev: Some("dp1".into())
        }
    );
    assert_eq!(p("worker").1, Command::WorkerShow);
}

#[test]
fn bad_command_lines_say_what_is_wrong() {
    let e = |s: &str| parse(&argv(s)).unwrap_err().to_string();
    assert_eq!(
        e("foo"),
        "object \"foo\" is unknown, try \"rvsctl help\" (objects: link, addr, route, neigh, worker, fwmark, daemon)"
    );
    assert_eq!(
        e("link set"),
        "command \"set\" is unknown for \"link\" (try: show)"
    );
    assert_eq!(e("addr add 198.18.0.7/24"), "missing \"dev PORT\"");
    assert_eq!(
        e("addr add 198.18.0.300/24 dev dp0"),
        "\"198.18.0.300\" is not an IPv4 address"
    );
    assert_eq!(
        e("addr add 198.18.0.3/33 dev dp0"),
        "\"198.18.0.3/33\": prefix length must be 0..32"
    );
    assert_eq!(e("addr add dev dp0"), "missing IP/LEN");
    assert_eq!(e("route add 10.0.0.0/8 via"), "\"via\" needs a value");
    assert_eq!(
        e("neigh add 198.18.0.9 lladdr 02:00:00:00:00 dev dp0"),
        "\"02:00:00:00:00\" is not a MAC address (aa:bb:cc:dd:ee:ff)"
    );
    assert_eq!(e("neigh add 198.18.0.9 dev dp0"), "missing \"lladdr MAC\"");
    assert_eq!(
        e("-x link"),
        "option \"-x\" is unknown, try \"rvsctl help\""
    );
    assert_eq!(e("worker show extra"), "unexpected argument \"extra\"");
    assert_eq!(
        e("addr add 1.2.3.4 dev dp0 via 1.2.3.5"),
        "\"via\" makes no sense here"
    );
    assert!(parse_mac("02:00:00:00:00:0g").is_err());
    assert_eq!(
        parse_prefix("default", true).unwrap(),
        (Ipv4Addr::UNSPECIFIED, 0)
    );
    assert!(parse_prefix("default", false).is_err());
}

#[test]
fn usage_errors_exit_255_without_the_daemon() {
    let (code, out, err, reqs) = run_with("route add 10.0.0.0/8", |_| panic!("no call"));
    assert_eq!((code, out.as_str()), (255, ""));
    assert_eq!(err, "rvsctl: missing \"dev PORT\"\n");
    assert!(reqs.is_empty());
}

#[test]
fn link_show_with_statistics() {
    let (code, out, err, _) = run_with("link show -s", table);
    assert_eq!((code, err.as_str()), (0, ""));
    let expected = "\
0: dp0: <UP,LOWER_UP> mtu 1500 state UP speed 10000Mb/s rxq 1 txq 1
    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff
    driver net_af_packet device net_af_packet0,iface=veth-d0
    RX:        bytes      packets   errors   missed   nombuf
                3456           12        2        1        3
    TX:        bytes      packets   errors
                2345           11        4
1: dp1: <NO-CARRIER,UP> mtu 1500 state DOWN speed 10000Mb/s rxq 1 txq 1
    link/ether 02:00:00:00:00:02 brd ff:ff:ff:ff:ff:ff
    driver net_af_packet device net_af_packet1,iface=veth-d1
    RX:        bytes      packets   errors   missed   nombuf
                3456           12        2        1        3
    TX:        bytes      packets   errors
                2345           11        4
";
    assert_eq!(out, expected);
    let (_, out, _, _) = run_with("link show dp1", table);
    assert_eq!(
        out,
        "\
1: dp1: <NO-CARRIER,UP> mtu 1500 state DOWN speed 10000Mb/s rxq 1 txq 1
    link/ether 02:00:00:00:00:02 brd ff:ff:ff:ff:ff:ff
    driver net_af_packet device net_af_packet1,iface=veth-d1
"
    );
    let (code, _, err, _) = run_with("link show dp9", table);
    assert_eq!((code, err.as_str()), (2, "rvsctl: no port named \"dp9\"\n"));
}

#[test]
fn link_show_lists_the_kernel_twin_and_its_counters() {
    let with_twin = |r: &Request| match r {
        Request::ListLinks => {
            let mut l = link(0, "dp0", Some(true));
            l.kernel = Some(crate::proto::KernelTwin {
                ifname: "dp0".into(),
                driver: "tap".into(),
                device: "net_tap_rvs0,iface=dp0,mac=02:00:00:00:00:01".into(),
                addrs: vec!["198.18.0.1/24".into()],
                rate: 20000,
                burst: 2000,
                stats: crate::proto::KernelTwinStats {
                    to_kernel_packets: 7,
                    to_kernel_bytes: 700,
                    from_kernel_packets: 6,
                    from_kernel_bytes: 600,
                    rate_limited: 5,
                    ring_full: 4,
                    kernel_full: 3,
                    egress_full: 2,
                },
            });
            Reply::Links(vec![l])
        }
        other => table(other),
    };
    let (code, out, err, _) = run_with("link show dp0", with_twin);
    assert_eq!((code, err.as_str()), (0, ""));
    let expected = "\
0: dp0: <UP,LOWER_UP> mtu 1500 state UP speed 10000Mb/s rxq 1 txq 1
    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff
    driver net_af_packet device net_af_packet0,iface=veth-d0
    kernel dp0 driver tap rate 20000/s burst 2000 addrs 198.18.0.1/24
    to kernel:        bytes      packets   from kernel:        bytes      packets
                        700            7                         600            6
    dropped: rate_limit 5 ring_full 4 kernel_full 3 egress_full 2
";
    assert_eq!(out, expected);
    let (_, out, _, _) = run_with("-j link show dp0", with_twin);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["kernel"]["ifname"], "dp0");
    assert_eq!(v[0]["kernel"]["stats"]["to_kernel"]["packets"], 7);
    assert_eq!(v[0]["kernel"]["stats"]["dropped"]["rate_limit"], 5);
}

#[test]
fn link_show_json() {
    let (_, out, _, _) = run_with("-j link show -s dp0", table);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out.lines().count(), 1);
    assert_eq!(v[0]["ifname"], "dp0");
    assert_eq!(v[0]["address"], "02:00:00:00:00:01");
    assert_eq!(v[0]["operstate"], "UP");
    assert_eq!(v[0]["num_rx_queues"], 1);
    assert_eq!(v[0]["stats64"]["rx"]["nombuf"], 3);
    assert_eq!(v[0]["stats64"]["tx"]["bytes"], 2345);
}

#[test]
fn addr_show_lists_ports_addresses_and_lip_usage() {
    let (code, out, _, _) = run_with("addr", table);
    assert_eq!(code, 0);
    let expected = "\
0: dp0: <UP,LOWER_UP> mtu 1500 state UP speed 10000Mb/s rxq 1 txq 1
    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff
    inet 198.18.0.1/24 scope global dp0
1: dp1: <NO-CARRIER,UP> mtu 1500 state DOWN speed 10000Mb/s rxq 1 txq 1
    link/ether 02:00:00:00:00:02 brd ff:ff:ff:ff:ff:ff
    inet 198.18.1.1/24 scope global dp1
    inet 198.18.1.250/32 scope global dp1 lip used 3 free 64509 misses 1 services 2
";
    assert_eq!(out, expected);
    let (_, out, _, _) = run_with("-j addr show dev dp1", table);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["addr_info"][1]["local"], "198.18.1.250");
    assert_eq!(v[0]["addr_info"][1]["lip"], true);
    assert_eq!(v[0]["addr_info"][1]["lip_used"], 3);
    assert_eq!(v[0]["addr_info"][0]["prefixlen"], 24);
}

#[test]
fn route_show() {
    let (_, out, _, _) = run_with("route", table);
    assert_eq!(
        out,
        "\
198.18.0.0/24 dev dp0 proto kernel scope link
10.1.2.3 via 198.18.0.254 dev dp0
default via 198.18.0.254 dev dp0
"
    );
    let (_, out, _, _) = run_with("route show -j", table);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[2]["dst"], "default");
    assert_eq!(v[2]["gateway"], "198.18.0.254");
    assert_eq!(v[0]["protocol"], "kernel");
}

#[test]
fn neigh_show_and_flush() {
    let (_, out, _, reqs) = run_with("neigh show dev dp1", table);
    assert_eq!(
        reqs,
        vec![Request::ListNeighs {
            port: Some("dp1".into())
        }]
    );
    assert_eq!(
        out,
        "\
198.18.0.2 dev dp0 lladdr 02:00:00:00:00:22 REACHABLE worker 0
198.18.1.11 dev dp1 INCOMPLETE queued 2 worker 0
"
    );
    let (_, out, _, _) = run_with("-j neigh", table);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["lladdr"], "02:00:00:00:00:22");
    assert_eq!(v[0]["state"][0], "REACHABLE");
    assert!(v[1].get("lladdr").is_none());
    let (code, out, _, _) = run_with("neigh flush", table);
    assert_eq!((code, out.as_str()), (0, ""));
    let (_, out, _, _) = run_with("-j neigh flush", table);
    assert_eq!(out, "{\"flushed\":5}\n");
}

#[test]
fn worker_show() {
    let (_, out, _, _) = run_with("worker show", table);
    assert_eq!(
        out,
        "\
worker 0: lcore 1 queue 0 ports 2 busy 12.5% conns 40/1048576
    rx packets 100 bytes 6400 tx packets 99 bytes 6336 redirects sent 0 received 0
    drops 4 tx full 1 redirect ring full 2 chained 3 conn reuses 5
"
    );
    let (_, out, _, _) = run_with("-j worker", table);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["busy_ratio"], 0.125);
    assert_eq!(v[0]["redirects_sent"], 0);
    assert_eq!(v[0]["ring_overflows"], 2);
}

#[test]
fn changes_send_requests_and_daemon_errors_exit_2() {
    let (code, out, _, reqs) = run_with("addr add 198.18.0.7/24 dev dp0", table);
    assert_eq!((code, out.as_str()), (0, ""));
    assert_eq!(
        reqs,
        vec![Request::AddAddr(AddrSpec {
            port: "dp0".into(),
            addr: ip("198.18.0.7"),
            prefix_len: 24
        })]
    );
    let refuse = |_: &Request| {
        Reply::Error(ErrorReply {
            errno: Errno::Eexist,
            message: "a route to 10.0.0.0/8 already exists; delete it first".into(),
        })
    };
    let (code, _, err, _) = run_with("route add 10.0.0.0/8 via 198.18.0.254 dev dp0", refuse);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "rvsctl: a route to 10.0.0.0/8 already exists; delete it first\n"
    );
}

#[test]
fn no_daemon_is_one_line_naming_the_socket() {
    let mut d = crate::ipvsadm::SocketDaemon::new("/nonexistent/rvsd.sock".into());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(&argv("rvsctl link show"), &mut d, &mut out, &mut err);
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1);
    assert!(
        err.starts_with("rvsctl: cannot connect to rvsd at /nonexistent/rvsd.sock: "),
        "{err}"
    );
}

#[test]
fn daemon_show_says_what_rvsd_speaks() {
    let hello = crate::proto::Hello {
        protocol_version: 2,
        min_protocol_version: 1,
        daemon_version: "0.1.0 (abc)".into(),
        requests: vec!["hello".into(), "get_info".into()],
    };
    let h = hello.clone();
    let (code, out, err, reqs) = run_with("daemon", move |_| Reply::Hello(h.clone()));
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "rvsd 0.1.0 (abc) protocol 2 (answers 1 to 2)\n    requests: hello get_info\n"
    );
    assert_eq!(reqs, vec![Request::Hello]);
    let h = hello.clone();
    let (_, out, _, _) = run_with("-j d show", move |_| Reply::Hello(h.clone()));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["protocol_version"], 2);
    assert_eq!(v["requests"][1], "get_info");
    // A version-1 rvsd answers `hello` with an error.
    let (code, out, _, _) = run_with("daemon show", |_| {
        Reply::Error(ErrorReply {
            errno: Errno::Einval,
            message: "bad request: unknown variant `hello`".into(),
        })
    });
    assert_eq!(code, 0);
    assert_eq!(out, "rvsd protocol 1 (no hello: a version-1 rvsd)\n");
    let (code, _, err, _) = run_with("daemon list-all", |_| Reply::Ok);
    assert_eq!(code, 255);
    assert!(
        err.contains("command \"list-all\" is unknown for \"daemon\""),
        "{err}"
    );
}

#[test]
fn daemon_stop_and_reload_send_their_requests() {
    let (code, out, err, sent) = run_with("daemon stop save-state", |_| Reply::Ok);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    assert_eq!(sent, [Request::Stop { save_state: true }]);
    let (_, _, _, sent) = run_with("daemon stop", |_| Reply::Ok);
    assert_eq!(sent, [Request::Stop { save_state: false }]);
    let (code, _, err, sent) = run_with("daemon reload", |_| {
        Reply::Error(ErrorReply {
            errno: Errno::Einval,
            message: "reload refused, nothing changed: x".into(),
        })
    });
    assert_eq!(sent, [Request::Reload]);
    assert_eq!(code, 2);
    assert_eq!(err, "rvsctl: reload refused, nothing changed: x\n");
    let (code, _, err, sent) = run_with("daemon stop now", |_| Reply::Ok);
    assert_eq!((code, sent.len()), (255, 0), "{err}");
}

/// A fake daemon with IPv6 entries beside IPv4 ones.
fn table6(r: &Request) -> Reply {
    match r {
        Request::ListLinks => Reply::Links(vec![link(0, "dp0", Some(true))]),
        Request::ListAddrs => Reply::Addrs(vec![
            AddrInfo {
                port: "dp0".into(),
                addr: ip("198.18.0.1"),
                prefix_len: 24,
                kind: AddrKind::Owned,
                laddr: None,
            },
            AddrInfo {
                port: "dp0".into(),
                addr: ip("2001:2::1"),
                prefix_len: 64,
                kind: AddrKind::Owned,
                laddr: None,
            },
        ]),
        Request::ListRoutes => Reply::Routes(vec![
            RouteInfo {
                prefix: ip("2001:2::"),
                len: 64,
                via: None,
                port: "dp0".into(),
                connected: true,
            },
            RouteInfo {
                prefix: ip("2001:2:1::5"),
                len: 128,
                via: Some(ip("2001:2::fe")),
                port: "dp0".into(),
                connected: false,
            },
            RouteInfo {
                prefix: ip("::"),
                len: 0,
                via: Some(ip("fe80::1")),
                port: "dp0".into(),
                connected: false,
            },
        ]),
        Request::ListNeighs { .. } => Reply::Neighs(vec![NeighEntry {
            worker: 0,
            port: "dp0".into(),
            ip: ip("2001:2::2"),
            mac: Some([2, 0, 0, 0, 0, 0x22]),
            state: "STALE".into(),
            queued: 0,
        }]),
        _ => Reply::Ok,
    }
}

#[test]
fn ipv6_addresses_routes_and_neighbours() {
    let p = |s: &str| parse(&argv(s)).unwrap().1;
    assert_eq!(
        p("addr add 2001:2::1/64 dev dp0"),
        Command::AddrAdd(AddrSpec {
            port: "dp0".into(),
            addr: ip("2001:2::1"),
            prefix_len: 64
        })
    );
    assert_eq!(
        p("addr del 2001:2::1 dev dp0"),
        Command::AddrDel(AddrSpec {
            port: "dp0".into(),
            addr: ip("2001:2::1"),
            prefix_len: 128
        })
    );
    assert_eq!(
        p("route add ::/0 via 2001:2::fe dev dp0"),
        Command::RouteAdd(RouteSpec {
            prefix: ip("::"),
            len: 0,
            via: Some(ip("2001:2::fe")),
            port: "dp0".into()
        })
    );
    assert_eq!(
        p("route del 2001:2:1::/48"),
        Command::RouteDel {
            prefix: ip("2001:2:1::"),
            len: 48
        }
    );
    assert_eq!(
        p("neigh add 2001:2::9 lladdr 02:00:00:00:00:09 dev dp0"),
        Command::NeighAdd(NeighSpec {
            ip: ip("2001:2::9"),
            mac: [2, 0, 0, 0, 0, 9],
            port: "dp0".into()
        })
    );
    assert_eq!(
        p("neigh del 2001:2::9 dev dp0"),
        Command::NeighDel {
            ip: ip("2001:2::9"),
            dev: "dp0".into()
        }
    );
    let e = |s: &str| parse(&argv(s)).unwrap_err().to_string();
    assert_eq!(
        e("addr add 2001:2::1/129 dev dp0"),
        "\"2001:2::1/129\": prefix length must be 0..128"
    );
    assert_eq!(
        e("addr add 2001:2::zz/64 dev dp0"),
        "\"2001:2::zz\" is not an IPv6 address"
    );
    assert_eq!(
        e("route add 2001:2:1::/48 via 198.18.0.1 dev dp0"),
        "gateway and prefix 2001:2:1::/48 are of different address families"
    );

    let (code, out, _, _) = run_with("addr show", table6);
    assert_eq!(code, 0);
    assert!(
        out.ends_with(
            "    inet 198.18.0.1/24 scope global dp0\n    inet6 2001:2::1/64 scope global dp0\n"
        ),
        "{out}"
    );
    let (_, out, _, _) = run_with("-j addr", table6);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["addr_info"][1]["family"], "inet6");
    assert_eq!(v[0]["addr_info"][1]["local"], "2001:2::1");
    let (_, out, _, _) = run_with("route", table6);
    assert_eq!(
        out,
        "\
2001:2::/64 dev dp0 proto kernel scope link
2001:2:1::5 via 2001:2::fe dev dp0
default via fe80::1 dev dp0
"
    );
    let (_, out, _, _) = run_with("neigh", table6);
    assert_eq!(
        out,
        "2001:2::2 dev dp0 lladdr 02:00:00:00:00:22 STALE worker 0\n"
    );
}
