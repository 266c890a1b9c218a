//! Four workers under load (issue 6): many concurrent TCP connections and UDP flows through NAT
//! and FULLNAT at once, on af_packet ports with a queue pair per worker (the kernel spreads
//! flows over the queues, so most packets of a flow arrive on a worker that does not own it and
//! go through the redirect rings). Then a live-update run: while the same load runs, services,
//! dests and local addresses are added, edited and deleted; no request of a service whose own
//! dests and addresses stay fails. Needs root; skips with a printed reason without it.
//!
//! Topology: `testnet.sh up ID nat` (RS default gateway = the director, so NAT replies come
//! back; FULLNAT replies go to the LIP on the RS network).

mod common;

use std::time::{Duration, Instant};

use common::{Rvsd, TestNet};

const WORKERS: usize = 4;
const NAT_VIP: &str = "198.18.0.100";
const FNAT_VIP: &str = "198.18.0.101";
const SPARE_VIP: &str = "198.18.0.102";
const LIP: &str = "198.18.1.5";
const SPARE_LIP: &str = "198.18.1.6";
const RIPS: [&str; 2] = ["198.18.1.11", "198.18.1.12"];

fn config(net: &TestNet) -> (String, std::path::PathBuf) {
    common::DirectorConf {
        faces: true,
        mbufs: Some(16383),
        conn_capacity: 65536,
        idle_sleep_us: 20,
        extra: "[ipvs.timeouts]\ntime_wait = 3\n",
        ..common::DirectorConf::new(WORKERS)
    }
    .render(net)
}

/// NAT TCP/UDP on NAT_VIP:80/53 and FULLNAT TCP/UDP on FNAT_VIP:80/53 (LIP on dp1), rr, both RS;
/// timeouts shortened so everything drains quickly afterwards.
fn configure(rvsd: &Rvsd) {
    rvsd.ipvsadm_ok(&["--set", "3", "3", "3"]);
    for (vip, method) in [(NAT_VIP, "-m"), (FNAT_VIP, "--fullnat")] {
        for (proto, port) in [("-t", 80), ("-u", 53)] {
            let vs = format!("{vip}:{port}");
            rvsd.ipvsadm_ok(&["-A", proto, &vs, "-s", "rr"]);
            for rip in RIPS {
                rvsd.ipvsadm_ok(&["-a", proto, &vs, "-r", &format!("{rip}:{port}"), method]);
            }
            if method == "--fullnat" {
                rvsd.ipvsadm_ok(&["-P", proto, &vs, "-z", LIP, "-F", "dp1"]);
            }
        }
    }
}

/// The load loop in the client namespace, as a child process.
fn load(net: &TestNet, tcp: usize, udp: usize) -> std::process::Child {
    let script = common::repo().join("scripts/testnet-load.py");
    let jobs = [
        format!("http:{NAT_VIP}:{tcp}:16"),
        format!("http:{FNAT_VIP}:{tcp}:16"),
        format!("udp:{NAT_VIP}:53:{udp}:8"),
        format!("udp:{FNAT_VIP}:53:{udp}:8"),
    ];
    std::process::Command::new("ip")
        .args(["netns", "exec", &net.ns("c"), "python3"])
        .arg(script)
        .args(&jobs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait (bounded) for the load loop; require zero failures and both RS used by every job.
fn load_ok(child: std::process::Child, rvsd: &Rvsd, tcp: usize, udp: usize) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "load loop failed:\n{text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        rvsd.log_text()
    );
    for line in text.lines().filter(|l| !l.starts_with(' ')) {
        let n = if line.starts_with("http") { tcp } else { udp };
        assert!(line.contains(&format!(" ok={n} failed=0 ")), "{line}");
        assert!(line.contains("rs1=") && line.contains("rs2="), "{line}");
    }
    assert_eq!(
        text.lines().filter(|l| !l.starts_with(' ')).count(),
        4,
        "{text}"
    );
}

/// Every connection expires and the tables are empty: no entry in `-Lnc`, no dest counting
/// an active or inactive connection, every worker's table at 0 (from the exit summary).
fn drained(rvsd: &Rvsd) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let conns = rvsd.ipvsadm_ok(&["-Lnc"]);
        let left = conns
            .lines()
            .filter(|l| l.starts_with("TCP") || l.starts_with("UDP"))
            .count();
        let listing = rvsd.ipvsadm_ok(&["-Ln"]);
        let busy_dests = listing
            .lines()
            .filter(|l| l.contains("->") && !l.contains("RemoteAddress"))
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(4) != Some(&"0") || f.get(5) != Some(&"0")
            })
            .count();
        if left == 0 && busy_dests == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not drained ({left} connections):\n{conns}\n{listing}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn stop(net: TestNet, rvsd: Rvsd) -> String {
    let (status, log) = rvsd.stop();
    assert!(status.success(), "rvsd exit {status}:\n{log}");
    assert!(
        log.contains("all mbufs returned"),
        "mempool not whole:\n{log}"
    );
    common::assert_cross_worker_traffic(&log, WORKERS);
    for line in log.lines().filter(|l| l.contains("worker summary")) {
        assert!(line.contains(" conns=0 "), "connections left: {line}");
    }
    eprintln!(
        "redirects (sent, received, overflows): {:?}",
        common::redirect_totals(&log)
    );
    let id = net.id.clone();
    drop(net);
    assert!(common::namespaces_with_prefix(&id).is_empty());
    log
}

#[test]
fn load_through_nat_and_fullnat_with_4_workers() {
    require_netns!();
    let _serial = common::serial();
    let net = TestNet::up("rvsload");
    let (conf, socket) = config(&net);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    configure(&rvsd);
    let (tcp, udp) = (200, 100);
    let child = load(&net, tcp, udp);
    load_ok(child, &rvsd, tcp, udp);
    let stats = rvsd.ipvsadm_ok(&["-Ln", "--stats", "--exact"]);
    for (svc, n) in [
        (format!("TCP  {NAT_VIP}:80"), tcp),
        (format!("TCP  {FNAT_VIP}:80"), tcp),
        (format!("UDP  {NAT_VIP}:53"), udp),
        (format!("UDP  {FNAT_VIP}:53"), udp),
    ] {
        // Conns, InPkts, OutPkts. A UDP client socket may get the source port of one closed
        // just before: its datagram then belongs to that (live) connection, so UDP counts
        // datagrams, TCP connections.
        let line = stats.lines().find(|l| l.starts_with(&svc)).unwrap();
        let f: Vec<usize> = line
            .split_whitespace()
            .skip(2)
            .map(|x| x.parse().unwrap())
            .collect();
        if svc.starts_with("TCP") {
            assert_eq!(f[0], n, "{stats}");
        } else {
            assert!(f[0] <= n && f[1] == n && f[2] == n, "{stats}");
        }
    }
    drained(&rvsd);
    stop(net, rvsd);
}

#[test]
fn live_updates_under_load_lose_nothing_of_unaffected_services() {
    require_netns!();
    let _serial = common::serial();
    let net = TestNet::up("rvslive");
    let (conf, socket) = config(&net);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    configure(&rvsd);
    let (tcp, udp) = (400, 200);
    let mut child = load(&net, tcp, udp);
    let spare = format!("{SPARE_VIP}:80");
    let fnat = format!("{FNAT_VIP}:80");
    let nat = format!("{NAT_VIP}:80");
    let mut rounds = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Change things until the load loop is done (at least three rounds).
    while rounds < 3 || child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "load loop did not finish");
        // A whole service comes and goes, with dests, a weight change and a local address.
        rvsd.ipvsadm_ok(&["-A", "-t", &spare, "-s", "wrr"]);
        for rip in RIPS {
            rvsd.ipvsadm_ok(&["-a", "-t", &spare, "-r", &format!("{rip}:80"), "-b"]);
        }
        rvsd.ipvsadm_ok(&["-P", "-t", &spare, "-z", SPARE_LIP, "-F", "dp1"]);
        rvsd.ipvsadm_ok(&[
            "-e",
            "-t",
            &spare,
            "-r",
            &format!("{}:80", RIPS[0]),
            "-b",
            "-w",
            "5",
        ]);
        // The loaded services: weights change, the scheduler is edited, a second local
        // address is added to and removed from the FULLNAT service.
        let w = if rounds % 2 == 0 { "3" } else { "1" };
        rvsd.ipvsadm_ok(&[
            "-e",
            "-t",
            &nat,
            "-r",
            &format!("{}:80", RIPS[1]),
            "-m",
            "-w",
            w,
        ]);
        rvsd.ipvsadm_ok(&[
            "-E",
            "-t",
            &nat,
            "-s",
            if rounds % 2 == 0 { "wrr" } else { "rr" },
        ]);
        rvsd.ipvsadm_ok(&[
            "-e",
            "-t",
            &fnat,
            "-r",
            &format!("{}:80", RIPS[0]),
            "-b",
            "-w",
            w,
        ]);
        rvsd.ipvsadm_ok(&["-P", "-t", &fnat, "-z", SPARE_LIP, "-F", "dp1"]);
        std::thread::sleep(Duration::from_millis(100));
        rvsd.ipvsadm_ok(&["-Q", "-t", &fnat, "-z", SPARE_LIP, "-F", "dp1"]);
        rvsd.ipvsadm_ok(&["-d", "-t", &spare, "-r", &format!("{}:80", RIPS[1])]);
        rvsd.ipvsadm_ok(&["-D", "-t", &spare]);
        rounds += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    load_ok(child, &rvsd, tcp, udp);
    eprintln!("{rounds} rounds of changes during the load");
    drained(&rvsd);
    stop(net, rvsd);
}
