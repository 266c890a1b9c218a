//! IPv6 through every forwarding method end to end (docs/ipv6.md): real clients and servers in
//! namespaces (`scripts/testnet.sh` dual-stack modes), rvsd on DPDK af_packet ports configured
//! with ipvsadm's IPv6 syntax. NAT6 beside an IPv4 NAT service on the same director (dual
//! stack), DR6, TUN6 (the real servers decapsulate IPv6-in-IPv6 in user space: this kernel has
//! no ip6_tunnel module), FULLNAT6 with the client's address in TOA as the servers see it, and
//! NAT64 (IPv6 clients, IPv4 servers through FULLNAT with an IPv4 local address). Each: 40 HTTP
//! requests split as weighted, the connections in `-Lnc`, and the table drains. Addresses only
//! from 2001:2::/48 and 198.18.0.0/15, inside the test's own namespaces. Needs root; skips with
//! a printed reason without it.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Rvsd, TestNet};

const VIP6: &str = "2001:2::100";
const LIP6: &str = "2001:2:1::5";
const LIP4: &str = "198.18.1.5";

/// rvsd with `workers` workers; the director's IPv6 addresses on its ports: 2001:2::1/64 on the
/// client side, 2001:2:1::1/64 on the servers' side (two ports) - the real servers' gateway in
/// NAT6.
fn config(net: &TestNet, two_ports: bool, workers: usize) -> (String, std::path::PathBuf) {
    let extra = if two_ports {
        concat!(
            "[ipvs.timeouts]\ntime_wait = 8\nclose = 8\n",
            "[[addr]]\nport = \"dp0\"\nip = \"2001:2::1/64\"\n",
            "[[addr]]\nport = \"dp1\"\nip = \"2001:2:1::1/64\"\n",
        )
    } else {
        concat!(
            "[ipvs.timeouts]\ntime_wait = 8\nclose = 8\n",
            "[[addr]]\nport = \"dp0\"\nip = \"2001:2::1/64\"\n",
        )
    };
    common::DirectorConf {
        one_port: !two_ports,
        metrics: Some("127.0.0.1:9475"),
        extra,
        ..common::DirectorConf::new(workers)
    }
    .render(net)
}

/// `n` HTTP requests from the client to `url`; the answers ("rs1", "rs2") counted.
fn curl_n(net: &TestNet, rvsd: &Rvsd, url: &str, n: u32) -> BTreeMap<String, u32> {
    let mut hits: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..n {
        let o = net.exec("c", &["curl", "-s", "-g", "--max-time", "5", url]);
        assert!(
            o.status.success(),
            "request {i} to {url} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            rvsd.log_text()
        );
        *hits
            .entry(String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .or_default() += 1;
    }
    hits
}

fn split(hits: &BTreeMap<String, u32>) -> (u32, u32) {
    (
        hits.get("rs1").copied().unwrap_or(0),
        hits.get("rs2").copied().unwrap_or(0),
    )
}

/// TCP rows of `ipvsadm -Lnc` that mention `needle`.
fn conn_rows(rvsd: &Rvsd, needle: &str) -> Vec<String> {
    rvsd.ipvsadm_ok(&["-Lnc"])
        .lines()
        .filter(|l| l.starts_with("TCP") && l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// NAT6 (wrr 3:1) and an IPv4 NAT service (rr) side by side on one director.
fn nat6_dual_stack(prefix: &str, workers: usize) {
    let _serial = common::serial();
    let net = TestNet::up_mode(prefix, "nat6");
    let (conf, socket) = config(&net, true, workers);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    // As in IPVS, a connection takes the timeout in force at its last packet.
    rvsd.ipvsadm_ok(&["--set", "8", "8", "8"]);
    let vs6 = format!("[{VIP6}]:80");
    rvsd.ipvsadm_ok(&["-A", "-t", &vs6, "-s", "wrr"]);
    rvsd.ipvsadm_ok(&["-a", "-t", &vs6, "-r", "[2001:2:1::11]:80", "-m", "-w", "3"]);
    rvsd.ipvsadm_ok(&["-a", "-t", &vs6, "-r", "[2001:2:1::12]:80", "-m", "-w", "1"]);
    rvsd.ipvsadm_ok(&["-A", "-t", "198.18.0.100:80", "-s", "rr"]);
    rvsd.ipvsadm_ok(&["-a", "-t", "198.18.0.100:80", "-r", "198.18.1.11:80", "-m"]);
    rvsd.ipvsadm_ok(&["-a", "-t", "198.18.0.100:80", "-r", "198.18.1.12:80", "-m"]);

    let (rs1, rs2) = split(&curl_n(&net, &rvsd, "http://[2001:2::100]/", 40));
    if workers == 1 {
        assert_eq!((rs1, rs2), (30, 10));
    } else {
        assert!(
            common::split_ok(rs1, rs2, 40, (3, 1), workers as u32),
            "{rs1}/{rs2}"
        );
    }
    let (a, b) = split(&curl_n(&net, &rvsd, "http://198.18.0.100/", 10));
    assert!(
        common::split_ok(a, b, 10, (1, 1), workers as u32),
        "{a}/{b}"
    );

    let rows = conn_rows(&rvsd, "2001:2::100");
    assert_eq!(rows.len(), 40, "{rows:?}");
    for l in &rows {
        assert!(l.contains("2001:2::2"), "client in {l}");
        assert!(l.contains("2001:2:1::1"), "real server in {l}");
    }
    assert_eq!(conn_rows(&rvsd, "198.18.0.100").len(), 10);
    let listing = rvsd.ipvsadm_ok(&["-Ln"]);
    assert!(listing.contains("TCP  [2001:2::100]:80 wrr"), "{listing}");
    common::timeouts_drain(&rvsd);
    common::finish(net, rvsd, workers);
}

#[test]
fn nat6_beside_nat4() {
    require_netns!();
    nat6_dual_stack("rvse2n6", 1);
}

#[test]
fn nat6_beside_nat4_2_workers() {
    require_netns!();
    nat6_dual_stack("rvse2n62w", 2);
}

/// DR6 and TUN6: requests through the director, replies straight from the servers.
fn bypass6(mode: &str, prefix: &str, flag: &str) {
    let _serial = common::serial();
    let net = TestNet::up_mode(prefix, mode);
    let (conf, socket) = config(&net, false, 1);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    // As in IPVS, a connection takes the timeout in force at its last packet.
    rvsd.ipvsadm_ok(&["--set", "8", "8", "8"]);
    let vs6 = format!("[{VIP6}]:80");
    rvsd.ipvsadm_ok(&["-A", "-t", &vs6, "-s", "rr"]);
    for rip in ["[2001:2::11]:80", "[2001:2::12]:80"] {
        rvsd.ipvsadm_ok(&["-a", "-t", &vs6, "-r", rip, flag]);
    }
    let (rs1, rs2) = split(&curl_n(&net, &rvsd, "http://[2001:2::100]/", 40));
    assert_eq!((rs1, rs2), (20, 20));
    let stats = rvsd.ipvsadm_ok(&["-Ln", "--stats", "--exact"]);
    let line = stats
        .lines()
        .find(|x| x.starts_with("TCP"))
        .unwrap_or_else(|| panic!("{stats}"));
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(f[0], 40, "{stats}");
    assert_eq!(f[2], 0, "replies must bypass the director: {stats}");
    assert_eq!(conn_rows(&rvsd, "2001:2::100").len(), 40);
    common::timeouts_drain(&rvsd);
    common::finish(net, rvsd, 1);
}

#[test]
fn dr6_through_dpdk() {
    require_netns!();
    bypass6("dr6", "rvse2dr6", "-g");
}

#[test]
fn tun6_through_dpdk() {
    require_netns!();
    bypass6("tun6", "rvse2tun6", "-i");
}

/// FULLNAT with IPv6 clients: to IPv6 servers from an IPv6 local address (FULLNAT6), or to
/// IPv4 servers from an IPv4 local address (NAT64). The servers see the local address as the
/// source and the client's IPv6 address and port in the TOA option.
fn fullnat6(prefix: &str, rips: [&str; 2], lip: &str, workers: usize) {
    let _serial = common::serial();
    let net = TestNet::up_mode(prefix, "fullnat6");
    let (conf, socket) = config(&net, true, workers);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    // As in IPVS, a connection takes the timeout in force at its last packet.
    rvsd.ipvsadm_ok(&["--set", "8", "8", "8"]);
    let vs6 = format!("[{VIP6}]:80");
    rvsd.ipvsadm_ok(&["-A", "-t", &vs6, "-s", "rr"]);
    for rip in rips {
        rvsd.ipvsadm_ok(&["-a", "-t", &vs6, "-r", rip, "--fullnat"]);
    }
    rvsd.ipvsadm_ok(&["-P", "-t", &vs6, "-z", lip, "-F", "dp1"]);
    let (rs1, rs2) = split(&curl_n(&net, &rvsd, "http://[2001:2::100]/", 40));
    assert!(
        common::split_ok(rs1, rs2, 40, (1, 1), workers as u32),
        "{rs1}/{rs2}"
    );
    let rows = conn_rows(&rvsd, "2001:2::100");
    assert_eq!(rows.len(), 40, "{rows:?}");
    // The local address's pool (either family) in /metrics: one port per live connection;
    // the service's counters under its IPv6 label.
    let metric = |name: &str, labels: &str| -> String {
        let text = net.metrics();
        let key = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()).map(str::to_owned))
            .unwrap_or_else(|| panic!("{key} not in /metrics:\n{text}"))
    };
    let lip_labels = format!("lip=\"{lip}\",port=\"dp1\"");
    assert_eq!(metric("rvs_laddr_used_ports", &lip_labels), "40");
    assert_eq!(
        metric(
            "rvs_service_connections_total",
            "service=\"tcp/[2001:2::100]:80\""
        ),
        "40"
    );
    let lip_seen = if lip.contains(':') {
        format!("[{lip}]:")
    } else {
        format!("{lip}:")
    };
    for (r, n) in [("r1", rs1), ("r2", rs2)] {
        let path = net.state_dir().join(format!("toa-{r}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let syns: Vec<_> = text.lines().filter(|l| l.ends_with("0x02")).collect();
        assert_eq!(syns.len(), n as usize, "{r}: {text}");
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f[0].starts_with(&lip_seen), "source is the LIP: {l}");
            assert!(
                f[1].starts_with("[2001:2::2]:"),
                "TOA names the client: {l}"
            );
        }
    }
    let saved = rvsd.ipvsadm_ok(&["-S", "-n"]);
    assert!(
        saved.contains(&format!("-P -t [2001:2::100]:80 -z {lip} -F dp1")),
        "{saved}"
    );
    common::timeouts_drain(&rvsd);
    assert_eq!(
        metric("rvs_laddr_used_ports", &lip_labels),
        "0",
        "local ports given back at expiry"
    );
    common::finish(net, rvsd, workers);
}

#[test]
fn fullnat6_with_toa() {
    require_netns!();
    fullnat6(
        "rvse2fn6",
        ["[2001:2:1::11]:80", "[2001:2:1::12]:80"],
        LIP6,
        1,
    );
}

/// With two workers the replies to the local address reach the worker whose local-port
/// partition they belong to (IPv6 local ports, and IPv4 ones for NAT64).
#[test]
fn fullnat6_with_toa_2_workers() {
    require_netns!();
    fullnat6(
        "rvse2fn62w",
        ["[2001:2:1::11]:80", "[2001:2:1::12]:80"],
        LIP6,
        2,
    );
}

#[test]
fn nat64_ipv6_clients_ipv4_servers() {
    require_netns!();
    fullnat6("rvse2n64", ["198.18.1.11:80", "198.18.1.12:80"], LIP4, 1);
}

#[test]
fn nat64_ipv6_clients_ipv4_servers_2_workers() {
    require_netns!();
    fullnat6("rvse2n642w", ["198.18.1.11:80", "198.18.1.12:80"], LIP4, 2);
}

/// `[port.kernel] announce` puts an IPv6 VIP on the twin as a /128 while a dest can take its
/// connections, beside an IPv4 VIP as a /32, and takes it off when none can (what a routing
/// daemon exporting the twin's host routes announces).
#[test]
fn ipv6_vips_announced_on_the_twin_while_serviceable() {
    require_netns!();
    let _serial = common::serial();
    let net = TestNet::up_mode("rvse2ann6", "nat6");
    let (conf, socket) = common::DirectorConf {
        kernel: Some("announce = true"),
        extra: "[[addr]]\nport = \"dp0\"\nip = \"2001:2::1/64\"\n",
        ..common::DirectorConf::new(1)
    }
    .render(&net);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    let vs6 = format!("[{VIP6}]:80");
    rvsd.ipvsadm_ok(&["-A", "-t", &vs6, "-s", "rr"]);
    rvsd.ipvsadm_ok(&["-a", "-t", &vs6, "-r", "[2001:2:1::11]:80", "-m"]);
    rvsd.ipvsadm_ok(&["-A", "-t", "198.18.0.100:80", "-s", "rr"]);
    rvsd.ipvsadm_ok(&["-a", "-t", "198.18.0.100:80", "-r", "198.18.1.11:80", "-m"]);
    let twin_addrs = || {
        let o = std::process::Command::new("ip")
            .args(["-n", &net.ns("d"), "addr", "show", "dev", "dp0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let wait_for = |want: bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let a = twin_addrs();
            if a.contains(what) == want {
                return;
            }
            assert!(Instant::now() < deadline, "{what} present={want}:\n{a}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(true, "inet6 2001:2::100/128");
    wait_for(true, "inet 198.18.0.100/32");
    // Weight 0: no dest takes connections, the IPv6 VIP is withdrawn; the IPv4 one stays.
    rvsd.ipvsadm_ok(&["-e", "-t", &vs6, "-r", "[2001:2:1::11]:80", "-m", "-w", "0"]);
    wait_for(false, "2001:2::100");
    wait_for(true, "inet 198.18.0.100/32");
    rvsd.ipvsadm_ok(&["-e", "-t", &vs6, "-r", "[2001:2:1::11]:80", "-m", "-w", "1"]);
    wait_for(true, "inet6 2001:2::100/128");
    common::finish(net, rvsd, 1);
}
