//! IPv6 at layer 3 end to end (docs/ipv6.md): the director owns 2001:2::1/64 on its client port
//! (`[[addr]]` in the config file); a client namespace with 2001:2::2/64 pings it with the
//! kernel's `ping -6`, which needs Neighbour Discovery both ways (the client solicits the
//! director's MAC, rvs answers and learns the client, then routes its echo replies through its
//! IPv6 neighbour table). `rvsctl` shows and changes IPv6 entries of the running daemon, and a
//! configuration with a bad IPv6 address is refused naming file and key. Addresses only from
//! 2001:2::/48, inside the test's own namespaces. Needs root; skips with a printed reason
//! without it (CI runs it for real).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Rvsd, TestNet};

fn rvsctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(common::bin("rvsctl"))
        .args(args)
        .env("RVS_SOCKET", socket)
        .output()
        .unwrap()
}

fn rvsctl_ok(socket: &Path, args: &[&str]) -> String {
    let o = rvsctl(socket, args);
    assert!(
        o.status.success(),
        "rvsctl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The MAC of `dev` in namespace `ns`.
fn mac_of(ns: &str, dev: &str) -> String {
    let o = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", dev])
        .output()
        .unwrap();
    let text = ok(&o, "ip link show");
    let mut words = text.split_whitespace();
    words
        .by_ref()
        .find(|w| *w == "link/ether")
        .and_then(|_| words.next())
        .unwrap_or_else(|| panic!("no MAC in {text}"))
        .to_owned()
}

#[test]
fn ping6_the_director_with_neighbour_discovery_both_ways() {
    require_netns!();
    let _serial = common::serial();
    let net = TestNet::up("rvse2v6");
    let (c, d) = (net.ns("c"), net.ns("d"));
    // testnet.sh turns IPv6 off in every namespace; the client gets it back on its veth.
    // (The director's kernel keeps it off: d0 belongs to rvs.)
    client_v6(&net);
    let conf = common::DirectorConf {
        extra: "[[addr]]\nport = \"dp0\"\nip = \"2001:2::1/64\"\n",
        ..common::DirectorConf::new(1)
    };
    let (text, socket) = conf.render(&net);
    let rvsd = Rvsd::start(Some(&d), &text, &socket, &net.state_dir());

    let ping = net.exec("c", &["ping", "-6", "-c", "3", "-W", "2", "2001:2::1"]);
    let out = String::from_utf8_lossy(&ping.stdout);
    assert!(ping.status.success(), "ping -6: {out}\n{}", rvsd.log_text());
    assert!(out.contains("3 packets transmitted, 3 received"), "{out}");

    // The client learnt the director's MAC by Neighbour Discovery.
    let d0_mac = mac_of(&d, "d0");
    let neigh = ok(
        &Command::new("ip")
            .args(["-n", &c, "-6", "neigh", "show", "2001:2::1", "dev", "c0"])
            .output()
            .unwrap(),
        "ip -6 neigh",
    );
    assert!(
        neigh.contains(&format!("lladdr {d0_mac}")),
        "client neighbour: {neigh:?}, director MAC {d0_mac}"
    );

    // rvs learnt the client (its solicitation, then its advertisement).
    let c0_mac = mac_of(&c, "c0");
    let neighs = rvsctl_ok(&socket, &["neigh", "show", "dev", "dp0"]);
    assert!(
        neighs.contains(&format!("2001:2::2 dev dp0 lladdr {c0_mac}")),
        "{neighs}"
    );
    let addrs = rvsctl_ok(&socket, &["addr", "show", "dev", "dp0"]);
    assert!(
        addrs.contains("inet6 2001:2::1/64 scope global dp0"),
        "{addrs}"
    );
    assert!(addrs.contains("inet 198.18.0.1/24"), "{addrs}");

    // Changes at run time: an address and a route, shown, refused when wrong, removed.
    rvsctl_ok(&socket, &["addr", "add", "2001:2:0:1::1/64", "dev", "dp1"]);
    rvsctl_ok(
        &socket,
        &[
            "route",
            "add",
            "2001:2:5::/48",
            "via",
            "2001:2::fe",
            "dev",
            "dp0",
        ],
    );
    let routes = rvsctl_ok(&socket, &["route", "show"]);
    for want in [
        "2001:2::/64 dev dp0 proto kernel scope link",
        "2001:2:0:1::/64 dev dp1 proto kernel scope link",
        "2001:2:5::/48 via 2001:2::fe dev dp0",
        "198.18.0.0/24 dev dp0 proto kernel scope link",
    ] {
        assert!(routes.contains(want), "{want:?} in {routes}");
    }
    let o = rvsctl(&socket, &["addr", "add", "2001:2::1/64", "dev", "dp1"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "rvsctl: 2001:2::1 is already owned on dp0\n"
    );
    let o = rvsctl(
        &socket,
        &[
            "route",
            "add",
            "2001:2:6::/48",
            "via",
            "2001:2:9::1",
            "dev",
            "dp0",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    rvsctl_ok(&socket, &["route", "del", "2001:2:5::/48"]);
    rvsctl_ok(&socket, &["addr", "del", "2001:2:0:1::1/64", "dev", "dp1"]);
    let routes = rvsctl_ok(&socket, &["route", "show"]);
    assert!(!routes.contains("2001:2:5::"), "{routes}");
    assert!(!routes.contains("2001:2:0:1::"), "{routes}");
    // A static IPv6 neighbour, listed as permanent, then deleted.
    rvsctl_ok(
        &socket,
        &[
            "neigh",
            "add",
            "2001:2::9",
            "lladdr",
            "02:00:00:00:00:09",
            "dev",
            "dp0",
        ],
    );
    let neighs = rvsctl_ok(&socket, &["neigh", "show"]);
    assert!(
        neighs.contains("2001:2::9 dev dp0 lladdr 02:00:00:00:00:09 PERMANENT"),
        "{neighs}"
    );
    rvsctl_ok(&socket, &["neigh", "del", "2001:2::9", "dev", "dp0"]);
    assert!(!rvsctl_ok(&socket, &["neigh", "show"]).contains("2001:2::9"));

    // The daemon still answers after the refused requests.
    let ping = net.exec("c", &["ping", "-6", "-c", "1", "-W", "2", "2001:2::1"]);
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let (status, log) = rvsd.stop();
    assert!(status.success(), "{log}");
}

/// Two workers: Neighbour Discovery frames are copied to every worker (each has its own IPv6
/// neighbour table), so whichever worker a ping lands on can route its reply; every neighbour
/// entry is listed once per worker.
#[test]
fn ping6_with_two_workers() {
    require_netns!();
    let _serial = common::serial();
    let net = TestNet::up("rvse2v6w2");
    client_v6(&net);
    let conf = common::DirectorConf {
        extra: "[[addr]]\nport = \"dp0\"\nip = \"2001:2::1/64\"\n",
        ..common::DirectorConf::new(2)
    };
    let (text, socket) = conf.render(&net);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &text, &socket, &net.state_dir());
    let ping = net.exec(
        "c",
        &[
            "ping",
            "-6",
            "-c",
            "10",
            "-i",
            "0.2",
            "-W",
            "2",
            "2001:2::1",
        ],
    );
    let out = String::from_utf8_lossy(&ping.stdout);
    assert!(
        out.contains("10 packets transmitted, 10 received"),
        "{out}\n{}",
        rvsd.log_text()
    );
    let c0_mac = mac_of(&net.ns("c"), "c0");
    let neighs = rvsctl_ok(&socket, &["neigh", "show", "dev", "dp0"]);
    for w in 0..2 {
        assert!(
            neighs.lines().any(
                |l| l.starts_with(&format!("2001:2::2 dev dp0 lladdr {c0_mac}"))
                    && l.ends_with(&format!("worker {w}"))
            ),
            "worker {w}: {neighs}"
        );
    }
    let (status, log) = rvsd.stop();
    assert!(status.success(), "{log}");
}

/// Client namespace with IPv6 back on and 2001:2::2/64 on c0.
fn client_v6(net: &TestNet) {
    ok(
        &net.exec(
            "c",
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=0",
                "net.ipv6.conf.c0.disable_ipv6=0",
            ],
        ),
        "sysctl",
    );
    ok(
        &Command::new("ip")
            .args([
                "-n",
                &net.ns("c"),
                "-6",
                "addr",
                "add",
                "2001:2::2/64",
                "dev",
                "c0",
                "nodad",
            ])
            .output()
            .unwrap(),
        "ip -6 addr add",
    );
}

/// With a kernel twin on the port, the twin carries the director's IPv6 address too, and the
/// director's own IPv6 traffic reaches its kernel: an HTTP server of the director's namespace
/// on [2001:2::1]:8080 answers the client through rvs (rvs hands the segments to the twin as
/// `ipv6_not_served`, and copies the client's advertisements to it so that the kernel resolves
/// the client), while echo requests stay rvs's.
#[test]
fn the_kernel_twin_serves_the_directors_own_ipv6_traffic() {
    require_netns!();
    let _serial = common::serial();
    let net = TestNet::up("rvse2v6k");
    client_v6(&net);
    let conf = common::DirectorConf {
        kernel: Some("rate = 2000, burst = 1000"),
        extra: "[[addr]]\nport = \"dp0\"\nip = \"2001:2::1/64\"\n",
        ..common::DirectorConf::new(1)
    };
    let (text, socket) = conf.render(&net);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &text, &socket, &net.state_dir());
    // The twin dp0 carries the address.
    let addrs = ok(
        &net.exec("d", &["ip", "-6", "addr", "show", "dev", "dp0"]),
        "ip -6 addr show dp0",
    );
    assert!(addrs.contains("inet6 2001:2::1/64"), "{addrs}");

    let www = net.state_dir().join("www-v6");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "director over IPv6\n").unwrap();
    let mut server = net
        .command("d")
        .args([
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "2001:2::1",
        ])
        .arg("--directory")
        .arg(&www)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(&net.exec("d", &["ss", "-ltn"]).stdout).contains(":8080 ") {
        assert!(std::time::Instant::now() < deadline, "no listener on 8080");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let got = net.exec("c", &["curl", "-s", "-m", "5", "http://[2001:2::1]:8080/"]);
    let body = String::from_utf8_lossy(&got.stdout).into_owned();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        body.trim(),
        "director over IPv6",
        "curl: {}\n{}",
        String::from_utf8_lossy(&got.stderr),
        rvsd.log_text()
    );
    let ping = net.exec("c", &["ping", "-6", "-c", "2", "-W", "2", "2001:2::1"]);
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    // Run-time changes follow onto the twin.
    rvsctl_ok(&socket, &["addr", "add", "2001:2:0:7::1/64", "dev", "dp0"]);
    let addrs = ok(
        &net.exec("d", &["ip", "-6", "addr", "show", "dev", "dp0"]),
        "ip -6 addr show dp0",
    );
    assert!(addrs.contains("inet6 2001:2:0:7::1/64"), "{addrs}");
    let (status, log) = rvsd.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_bad_ipv6_address_in_the_config_is_named_with_file_and_key() {
    let dir = std::env::temp_dir().join(format!("rvs-test-v6conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "2001:2::zz/64",
            "addr[0].ip: \"2001:2::zz/64\" is not an IPv6 address",
        ),
        ("2001:2::1/130", "addr[0].ip: prefix length 130 is over 128"),
    ];
    for (i, (ip, want)) in cases.iter().enumerate() {
        let f = dir.join(format!("v6-{i}.toml"));
        std::fs::write(
            &f,
            format!(
                "[[port]]\nname = \"dp0\"\ndevice = \"net_null0\"\n[[addr]]\nport = \"dp0\"\nip = \"{ip}\"\n"
            ),
        )
        .unwrap();
        let o = Command::new(common::bin("rvsd"))
            .args(["--config", f.to_str().unwrap(), "--check"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "case {i}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.starts_with(&format!("rvsd: {}: {want}", f.display())),
            "case {i}: {e}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
