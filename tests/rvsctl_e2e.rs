//! rvsctl against the real daemon: links, addresses, routes, static neighbours and workers on a
//! `net_null` port (no traffic of interest), then exact port counters and a learned neighbour on
//! a `net_pcap` port fed known frames (the approach of `pcap_golden.rs`).

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::frames;
use common::{Rvsd, TestNet};

fn rvsctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(common::bin("rvsctl"))
        .args(args)
        .env("RVS_SOCKET", socket)
        .output()
        .unwrap()
}

fn ok(socket: &Path, args: &[&str]) -> String {
    let o = rvsctl(socket, args);
    assert!(
        o.status.success(),
        "rvsctl {args:?} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stderr.is_empty(), "rvsctl {args:?}: stderr not empty");
    String::from_utf8(o.stdout).unwrap()
}

fn fails(socket: &Path, args: &[&str], code: i32, message: &str) {
    let o = rvsctl(socket, args);
    assert_eq!(o.status.code(), Some(code), "rvsctl {args:?}");
    assert!(o.stdout.is_empty(), "rvsctl {args:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!("rvsctl: {message}\n"),
        "rvsctl {args:?}"
    );
}

fn json(socket: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(socket, args)).unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-rvsctl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(socket: &Path, device: &str) -> String {
    format!(
        r#"{}[[route]]
prefix = "10.0.0.0/8"
via = "198.18.0.254"
port = "dp0"
[control]
socket = "{}"
[dataplane]
idle_sleep_us = 100
"#,
        common::one_port_head("0-1", device),
        socket.display()
    )
}

/// Poll `f` until it returns Some, for at most 10 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rvsctl_shows_and_changes_the_daemon_state() {
    require_netns!();
    let _serial = common::serial();
    let dir = temp_dir("null");
    let socket = dir.join("s.sock");
    let rvsd = Rvsd::start(None, &config(&socket, "net_null0"), &socket, &dir);
    let s = socket.as_path();

    // daemon: what rvsd speaks (hello, protocol 2) through the real socket.
    let hello = json(s, &["-j", "daemon"]);
    assert_eq!(hello["protocol_version"], ctl::proto::PROTOCOL_VERSION);
    assert_eq!(hello["min_protocol_version"], 1);
    assert_eq!(hello["daemon_version"], rvs::cli::version());
    assert_eq!(
        hello["requests"].as_array().unwrap().len(),
        ctl::proto::Request::NAMES.len()
    );
    assert!(ok(s, &["daemon", "show"]).starts_with(&format!(
        "rvsd {} protocol {} (answers 1 to ",
        rvs::cli::version(),
        ctl::proto::PROTOCOL_VERSION
    )));

    // link
    let links = json(s, &["-j", "link", "show"]);
    assert_eq!(links[0]["ifname"], "dp0");
    assert_eq!(links[0]["device"], "net_null0");
    assert_eq!(links[0]["driver"], "net_null");
    assert_eq!(links[0]["num_rx_queues"], 1);
    assert!(links[0]["mtu"].as_u64().unwrap() > 0);
    let mac = links[0]["address"].as_str().unwrap().to_owned();
    let text = ok(s, &["link"]);
    assert!(
        text.starts_with("0: dp0: <") && text.contains(&format!("    link/ether {mac} brd ")),
        "{text}"
    );
    assert!(ok(s, &["link", "show", "-s"]).contains("    RX: "));
    fails(s, &["link", "show", "dp7"], 2, "no port named \"dp7\"");

    // addr: add/del change the tables live, with the connected route.
    ok(s, &["addr", "add", "198.18.5.1/24", "dev", "dp0"]);
    assert!(ok(s, &["addr"]).contains(
        "    inet 198.18.0.1/24 scope global dp0\n    inet 198.18.5.1/24 scope global dp0\n"
    ));
    assert_eq!(
        ok(s, &["route"]),
        "198.18.0.0/24 dev dp0 proto kernel scope link\n\
         198.18.5.0/24 dev dp0 proto kernel scope link\n\
         10.0.0.0/8 via 198.18.0.254 dev dp0\n"
    );
    fails(
        s,
        &["addr", "add", "198.18.5.1/24", "dev", "dp0"],
        2,
        "198.18.5.1 is already owned on dp0",
    );
    fails(
        s,
        &["addr", "add", "198.18.6.1/24", "dev", "dp9"],
        2,
        "no port named \"dp9\" (ports: dp0)",
    );
    ok(s, &["addr", "del", "198.18.5.1/24", "dev", "dp0"]);
    fails(
        s,
        &["addr", "del", "198.18.5.1/24", "dev", "dp0"],
        2,
        "198.18.5.1 is not owned on dp0",
    );
    // A VIP cannot become an owned address.
    common_ipvsadm(s, &["-A", "-t", "198.18.0.100:80", "-s", "rr"]);
    fails(
        s,
        &["addr", "add", "198.18.0.100/32", "dev", "dp0"],
        2,
        "198.18.0.100 is already a VIP",
    );

    // route
    ok(
        s,
        &[
            "route",
            "add",
            "default",
            "via",
            "198.18.0.254",
            "dev",
            "dp0",
        ],
    );
    let routes = json(s, &["-j", "route"]);
    assert_eq!(routes.as_array().unwrap().len(), 3);
    assert_eq!(routes[2]["dst"], "default");
    assert_eq!(routes[2]["gateway"], "198.18.0.254");
    fails(
        s,
        &[
            "route",
            "add",
            "default",
            "via",
            "198.18.0.253",
            "dev",
            "dp0",
        ],
        2,
        "a route to 0.0.0.0/0 already exists; delete it first",
    );
    fails(
        s,
        &[
            "route",
            "add",
            "172.16.0.0/12",
            "via",
            "192.0.2.1",
            "dev",
            "dp0",
        ],
        2,
        "gateway 192.0.2.1 is not on a connected network of dp0 (add an address first)",
    );
    fails(
        s,
        &["route", "add", "172.16.0.1/12", "dev", "dp0"],
        2,
        "172.16.0.1/12 has host bits set; use 172.16.0.0/12",
    );
    fails(
        s,
        &["route", "del", "198.18.0.0/24"],
        2,
        "198.18.0.0/24 is a connected route: delete its address instead",
    );
    ok(s, &["route", "del", "default"]);
    fails(s, &["route", "del", "default"], 2, "no route to 0.0.0.0/0");

    // neigh: static entries reach every worker's table, and leave it.
    ok(
        s,
        &[
            "neigh",
            "add",
            "198.18.0.254",
            "lladdr",
            "02:00:00:00:00:fe",
            "dev",
            "dp0",
        ],
    );
    let line = "198.18.0.254 dev dp0 lladdr 02:00:00:00:00:fe PERMANENT worker 0\n";
    eventually("the static neighbour in the worker", || {
        (ok(s, &["neigh", "show"]) == line).then_some(())
    });
    assert_eq!(ok(s, &["neigh", "show", "dev", "dp0"]), line);
    fails(
        s,
        &[
            "neigh",
            "add",
            "198.18.0.9",
            "lladdr",
            "01:00:5e:00:00:01",
            "dev",
            "dp0",
        ],
        2,
        "01:00:5e:00:00:01 is not a unicast MAC address",
    );
    // Flushing keeps permanent entries.
    assert_eq!(json(s, &["-j", "neigh", "flush"])["flushed"], 0);
    assert_eq!(ok(s, &["neigh"]), line);
    ok(s, &["neigh", "del", "198.18.0.254", "dev", "dp0"]);
    assert_eq!(ok(s, &["neigh"]), "");
    fails(
        s,
        &["neigh", "del", "198.18.0.254", "dev", "dp0"],
        2,
        "no neighbour entry for 198.18.0.254 on dp0",
    );

    // worker
    let w = json(s, &["-j", "worker", "show"]);
    assert_eq!(w.as_array().unwrap().len(), 1);
    assert_eq!(w[0]["lcore"], 1);
    assert_eq!(w[0]["queue"], 0);
    assert_eq!(w[0]["redirects_sent"], 0);
    let ratio = w[0]["busy_ratio"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ratio), "{ratio}");
    assert!(ok(s, &["worker"]).starts_with("worker 0: lcore 1 queue 0 ports 1 busy "));

    // Usage errors need no daemon and exit 255.
    fails(
        s,
        &["addr", "add", "198.18.0.7/24"],
        255,
        "missing \"dev PORT\"",
    );

    // GUE/GRE: accepted by ipvsadm's parser, refused by rvsd with a clear message.
    let o = Command::new(common::bin("ipvsadm"))
        .args([
            "-a",
            "-t",
            "198.18.0.100:80",
            "-r",
            "198.18.1.11",
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            "6080",
        ])
        .env("RVS_SOCKET", s)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "Operation not supported: --tun-type gue is not implemented by rvs yet (only ipip tunnels)\n"
    );

    // fwmark classifier rules: added, listed in match order (canonical form), saved by
    // `ipvsadm -S`, deleted; a bad rule is refused with the daemon's reason.
    assert_eq!(ok(s, &["fwmark", "show"]), "");
    ok(
        s,
        &[
            "fwmark",
            "add",
            "mark",
            "1",
            "proto",
            "tcp",
            "dst",
            "198.18.0.100",
            "ports",
            "80,443",
        ],
    );
    ok(s, &["fwmark", "add", "mark", "2", "dst", "198.18.0.0/24"]);
    assert_eq!(
        ok(s, &["fwmark", "show"]),
        "mark 1 proto tcp dst 198.18.0.100/32 ports 80,443\nmark 2 proto any dst 198.18.0.0/24\n"
    );
    assert_eq!(json(s, &["-j", "fwmark", "show"])[0]["mark"], 1);
    let saved = String::from_utf8(
        Command::new(common::bin("ipvsadm"))
            .args(["-S", "-n"])
            .env("RVS_SOCKET", s)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        saved.contains("--add-fwmark-rule -f 1 --proto tcp --dst 198.18.0.100/32 --ports 80,443\n"),
        "{saved}"
    );
    ok(s, &["fwmark", "del", "mark", "2", "dst", "198.18.0.0/24"]);
    assert_eq!(
        ok(s, &["fwmark", "show"]),
        "mark 1 proto tcp dst 198.18.0.100/32 ports 80,443\n"
    );
    let o = rvsctl(
        s,
        &[
            "fwmark",
            "add",
            "mark",
            "3",
            "proto",
            "sctp",
            "dst",
            "198.18.0.1",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("rvsctl: "),
        "{o:?}"
    );
    let o = rvsctl(s, &["fwmark", "add", "dst", "198.18.0.1"]);
    assert_eq!(o.status.code(), Some(255), "{o:?}");

    let (st, log) = rvsd.stop();
    assert!(st.success(), "{log}");
    // No daemon: one line naming the socket, exit 2.
    let o = rvsctl(s, &["link"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&socket.display().to_string()), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

fn common_ipvsadm(socket: &Path, args: &[&str]) {
    let o = Command::new(common::bin("ipvsadm"))
        .args(args)
        .env("RVS_SOCKET", socket)
        .output()
        .unwrap();
    assert!(o.status.success(), "ipvsadm {args:?}");
}

#[test]
fn link_counters_and_learned_neighbours_through_net_pcap() {
    require_netns!();
    let _serial = common::serial();
    // TestNet only for its private state directory, as pcap_golden.rs does.
    let net = TestNet::up("rvsctlpcap");
    let dir = net.state_dir();
    let socket = dir.join("rvsd.sock");
    let client_mac = [0x02, 0xc1, 0, 0, 0, 0x02];
    let client: Ipv4Addr = "198.18.0.2".parse().unwrap();
    let me: Ipv4Addr = "198.18.0.1".parse().unwrap();
    // Seven ARP requests for the director's address: seven frames in, seven replies out.
    let input: Vec<Vec<u8>> = (0..7)
        .map(|_| frames::arp([0xff; 6], client_mac, 1, client_mac, client, [0; 6], me))
        .collect();
    let in_bytes: usize = input.iter().map(Vec::len).sum();
    frames::write_pcap(&dir.join("in.pcap"), &input);
    let device = format!(
        "net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap",
        d = dir.display()
    );
    let rvsd = Rvsd::start(None, &config(&socket, &device), &socket, &dir.join("run"));
    let s = socket.as_path();

    let stats = eventually("seven frames counted", || {
        let v = json(s, &["-j", "-s", "link"]);
        let st = v[0]["stats64"].clone();
        (st["rx"]["packets"] == 7 && st["tx"]["packets"] == 7).then_some(st)
    });
    assert_eq!(stats["rx"]["bytes"], in_bytes as u64);
    assert_eq!(stats["rx"]["errors"], 0);
    assert_eq!(stats["rx"]["missed"], 0);
    assert_eq!(stats["rx"]["nombuf"], 0);
    assert_eq!(stats["tx"]["bytes"], 7 * 60);
    let text = ok(s, &["link", "show", "-s"]);
    assert!(
        text.contains(&format!(
            "    RX: {:>12} {:>12} {:>8} {:>8} {:>8}\n        {:>12} {:>12} {:>8} {:>8} {:>8}\n",
            "bytes", "packets", "errors", "missed", "nombuf", in_bytes, 7, 0, 0, 0
        )),
        "{text}"
    );

    // The requests taught the worker the client's MAC.
    assert_eq!(
        ok(s, &["neigh", "show"]),
        "198.18.0.2 dev dp0 lladdr 02:c1:00:00:00:02 REACHABLE worker 0\n"
    );
    assert!(
        json(s, &["-j", "worker"])[0]["rx_packets"]
            .as_u64()
            .unwrap()
            >= 7
    );
    assert_eq!(
        json(s, &["-j", "neigh", "flush", "dev", "dp0"])["flushed"],
        1
    );
    assert_eq!(ok(s, &["neigh", "show"]), "");

    let (st, log) = rvsd.stop();
    assert!(st.success(), "{log}");
}
