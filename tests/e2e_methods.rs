//! DR, TUN and FULLNAT end to end (issue 3, docs/architecture.md section 7): a client namespace reaches two
//! real servers through rvsd on DPDK af_packet ports, configured with ipvsadm; 40 HTTP requests
//! and a bounded UDP loop, balanced rr 1:1, then the connection listing and shortened timeouts.
//! Needs root; skips with a printed reason without it. Topologies: `scripts/testnet.sh up ID
//! dr|tun|fullnat`.

mod common;

use std::collections::BTreeMap;

use common::{Rvsd, TestNet};

const VIP: &str = "198.18.0.100";
const LIP: &str = "198.18.1.5";

/// rvsd's configuration with `workers` workers, af_packet ports with a queue pair each.
fn config(net: &TestNet, two_ports: bool, workers: usize) -> (String, std::path::PathBuf) {
    common::DirectorConf {
        one_port: !two_ports,
        metrics: Some("127.0.0.1:9475"),
        extra: "[ipvs.timeouts]\ntime_wait = 8\nclose = 8\n",
        ..common::DirectorConf::new(workers)
    }
    .render(net)
}

/// Services TCP VIP:80 and UDP VIP:53, rr, both RS with `method` (an ipvsadm flag); timeouts
/// shortened first (as in IPVS, a connection takes the timeout in force at its last packet).
fn configure(rvsd: &Rvsd, rips: [&str; 2], method: &str) {
    rvsd.ipvsadm_ok(&["--set", "8", "8", "8"]);
    for (proto, port) in [("-t", 80), ("-u", 53)] {
        let vs = format!("{VIP}:{port}");
        rvsd.ipvsadm_ok(&["-A", proto, &vs, "-s", "rr"]);
        for rip in rips {
            let rs = format!("{rip}:{port}");
            rvsd.ipvsadm_ok(&["-a", proto, &vs, "-r", &rs, method]);
        }
    }
}

/// 40 requests, rr: 20/20 with one worker, within [`common::split_ok`] with several (each
/// worker schedules on its own). Returns (rs1, rs2).
fn curl_40(net: &TestNet, rvsd: &Rvsd, workers: usize) -> (u32, u32) {
    let mut hits: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..40 {
        let o = net.exec(
            "c",
            &["curl", "-s", "--max-time", "5", "http://198.18.0.100/"],
        );
        assert!(
            o.status.success(),
            "request {i} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            rvsd.log_text()
        );
        *hits
            .entry(String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .or_default() += 1;
    }
    let rs1 = hits.get("rs1").copied().unwrap_or(0);
    let rs2 = hits.get("rs2").copied().unwrap_or(0);
    if workers == 1 {
        assert_eq!((rs1, rs2), (20, 20), "{hits:?}");
    } else {
        assert!(
            common::split_ok(rs1, rs2, 40, (1, 1), workers as u32),
            "{hits:?}"
        );
    }
    (rs1, rs2)
}

fn udp_10(net: &TestNet, rvsd: &Rvsd, workers: usize) {
    let script = common::repo().join("scripts/testnet-udp.py");
    let o = net.exec(
        "c",
        &[
            "python3",
            script.to_str().unwrap(),
            "client",
            VIP,
            "53",
            "10",
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "UDP loop: {text}\n{}", rvsd.log_text());
    let count = |name: &str| -> u32 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        common::split_ok(count("rs1 "), count("rs2 "), 10, (1, 1), workers as u32),
        "{text}"
    );
    if workers == 1 {
        assert!(text.contains("rs1 5") && text.contains("rs2 5"), "{text}");
    }
}

/// `(tcp, udp)` entries in `ipvsadm -Lnc`.
fn conn_lines(rvsd: &Rvsd) -> (Vec<String>, Vec<String>) {
    let l = rvsd.ipvsadm_ok(&["-Lnc"]);
    let tcp = l
        .lines()
        .filter(|x| x.starts_with("TCP"))
        .map(str::to_owned)
        .collect();
    let udp = l
        .lines()
        .filter(|x| x.starts_with("UDP"))
        .map(str::to_owned)
        .collect();
    (tcp, udp)
}

/// The service line of `ipvsadm -Ln --stats` for TCP VIP:80: (conns, inpkts, outpkts).
fn tcp_stats(rvsd: &Rvsd) -> (u64, u64, u64) {
    let l = rvsd.ipvsadm_ok(&["-Ln", "--stats", "--exact"]);
    let line = l
        .lines()
        .find(|x| x.starts_with("TCP"))
        .unwrap_or_else(|| panic!("{l}"));
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    (f[0], f[1], f[2])
}

/// DR and TUN: requests through the director, replies straight from the RS to the client.
fn bypass(mode: &str, prefix: &str, flag: &str, workers: usize) {
    let _serial = common::serial();
    let net = TestNet::up_mode(prefix, mode);
    let (conf, socket) = config(&net, false, workers);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    configure(&rvsd, ["198.18.0.11", "198.18.0.12"], flag);
    curl_40(&net, &rvsd, workers);
    udp_10(&net, &rvsd, workers);
    // The director saw the requests only: no reply packet was counted.
    let (conns, inpkts, outpkts) = tcp_stats(&rvsd);
    assert_eq!(conns, 40);
    assert!(inpkts >= 40 * 4, "inpkts {inpkts}");
    assert_eq!(outpkts, 0, "replies must bypass the director");
    let (tcp, udp) = conn_lines(&rvsd);
    assert_eq!((tcp.len(), udp.len()), (40, 10), "{tcp:?}");
    for l in &tcp {
        assert!(
            l.contains("FIN_WAIT") || l.contains("TIME_WAIT") || l.contains("CLOSE"),
            "closed connection in an open state: {l}"
        );
        assert!(l.contains("198.18.0.100:80"), "{l}");
    }
    common::timeouts_drain(&rvsd);
    common::finish(net, rvsd, workers);
}

#[test]
fn dr_through_dpdk() {
    require_netns!();
    bypass("dr", "rvse2dr", "-g", 1);
}

#[test]
fn dr_through_dpdk_2_workers() {
    require_netns!();
    bypass("dr", "rvse2dr2w", "-g", 2);
}

#[test]
fn dr_through_dpdk_4_workers() {
    require_netns!();
    bypass("dr", "rvse2dr4w", "-g", 4);
}

#[test]
fn tun_through_dpdk() {
    require_netns!();
    bypass("tun", "rvse2tun", "-i", 1);
}

#[test]
fn tun_through_dpdk_2_workers() {
    require_netns!();
    bypass("tun", "rvse2tun2w", "-i", 2);
}

#[test]
fn tun_through_dpdk_4_workers() {
    require_netns!();
    bypass("tun", "rvse2tun4w", "-i", 4);
}

#[test]
fn fullnat_through_dpdk() {
    require_netns!();
    fullnat("rvse2fnat", 1);
}

#[test]
fn fullnat_through_dpdk_2_workers() {
    require_netns!();
    fullnat("rvse2fnat2w", 2);
}

#[test]
fn fullnat_through_dpdk_4_workers() {
    require_netns!();
    fullnat("rvse2fnat4w", 4);
}

fn fullnat(prefix: &str, workers: usize) {
    let _serial = common::serial();
    let net = TestNet::up_mode(prefix, "fullnat");
    let (conf, socket) = config(&net, true, workers);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    configure(&rvsd, ["198.18.1.11", "198.18.1.12"], "--fullnat");
    for proto in ["-t", "-u"] {
        let port = if proto == "-t" { 80 } else { 53 };
        let vs = format!("{VIP}:{port}");
        rvsd.ipvsadm_ok(&["-P", proto, &vs, "-z", LIP, "-F", "dp1"]);
    }
    let laddrs = rvsd.ipvsadm_ok(&["-G"]);
    assert!(laddrs.contains(LIP), "{laddrs}");
    let (rs1, rs2) = curl_40(&net, &rvsd, workers);
    udp_10(&net, &rvsd, workers);
    let (tcp, udp) = conn_lines(&rvsd);
    assert_eq!((tcp.len(), udp.len()), (40, 10), "{tcp:?}");
    for l in &tcp {
        assert!(l.contains("TIME_WAIT"), "{l}");
        assert!(l.contains(" 198.18.1.1"), "destination is the RS: {l}");
    }
    // The LIP pool: one local port per live connection, no misses.
    let lip_metric = |name: &str| -> String {
        let text = net.metrics();
        let key = format!("{name}{{lip=\"{LIP}\",port=\"dp1\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()).map(str::to_owned))
            .unwrap_or_else(|| panic!("{key} not in /metrics:\n{text}"))
    };
    assert_eq!(lip_metric("rvs_laddr_used_ports"), "50");
    assert_eq!(lip_metric("rvs_laddr_misses_total"), "0");
    assert_eq!(lip_metric("rvs_laddr_ports_per_dest"), "64512");
    // Each RS saw the LIP as source and the real client in TOA, on every SYN.
    for (r, n) in [("r1", rs1), ("r2", rs2)] {
        let path = net.state_dir().join(format!("toa-{r}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let syns: Vec<_> = text.lines().filter(|l| l.ends_with("0x02")).collect();
        assert_eq!(syns.len(), n as usize, "{r}: {text}");
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f[0].starts_with("198.18.1.5:"), "{l}");
            assert!(f[1].starts_with("198.18.0.2:"), "{l}");
        }
    }
    common::timeouts_drain(&rvsd);
    assert_eq!(
        lip_metric("rvs_laddr_used_ports"),
        "0",
        "lports released at expiry"
    );
    let saved = rvsd.ipvsadm_ok(&["-S", "-n"]);
    assert!(
        saved.contains("-P -t 198.18.0.100:80 -z 198.18.1.5 -F dp1"),
        "{saved}"
    );
    common::finish(net, rvsd, workers);
}

/// NAT through the same checks as the other methods: replies pass the director and are
/// translated back (OutPkts counted), TCP and a bounded UDP loop, and the table drains.
#[test]
fn nat_tcp_and_udp_through_dpdk() {
    require_netns!();
    let _serial = common::serial();
    let prefix = "rvse2natu";
    let net = TestNet::up_mode(prefix, "nat");
    let (conf, socket) = config(&net, true, 1);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    configure(&rvsd, ["198.18.1.11", "198.18.1.12"], "-m");
    curl_40(&net, &rvsd, 1);
    udp_10(&net, &rvsd, 1);
    let (conns, inpkts, outpkts) = tcp_stats(&rvsd);
    assert_eq!(conns, 40);
    assert!(
        inpkts >= 40 * 4 && outpkts >= 40 * 3,
        "in {inpkts} out {outpkts}"
    );
    let (tcp, udp) = conn_lines(&rvsd);
    assert_eq!((tcp.len(), udp.len()), (40, 10), "{tcp:?}");
    for l in &tcp {
        assert!(l.contains("TIME_WAIT"), "{l}");
        assert!(l.contains(" 198.18.1.1"), "destination is the RS: {l}");
    }
    for l in &udp {
        assert!(l.contains(" UDP "), "{l}");
    }
    common::timeouts_drain(&rvsd);
    common::finish(net, rvsd, 1);
}
