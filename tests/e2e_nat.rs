//! NAT end to end (issue: foundation): a client namespace reaches two real HTTP servers through
//! rvsd on DPDK (net_af_packet on veth ends), configured with ipvsadm as an LVS operator would.
//! Needs root; skips with a printed reason without it (CI runs it for real).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Rvsd, TestNet};

fn nat_config(net: &TestNet, workers: usize, queues: usize) -> (String, std::path::PathBuf) {
    common::DirectorConf {
        queues,
        ..common::DirectorConf::new(workers)
    }
    .render(net)
}

#[test]
fn nat_wrr_split_through_dpdk() {
    require_netns!();
    nat_wrr(1, 1, "rvse2nat");
}

#[test]
fn nat_through_dpdk_2_workers() {
    require_netns!();
    nat_wrr(2, 2, "rvse2nat2w");
}

#[test]
fn nat_through_dpdk_4_workers() {
    require_netns!();
    nat_wrr(4, 4, "rvse2nat4w");
}

/// Four workers on ports with a single queue pair: worker 0 polls every port and sends for
/// the others (tx handoff rings); all flows of workers 1-3 go through the redirect rings.
#[test]
fn nat_through_dpdk_4_workers_one_queue() {
    require_netns!();
    nat_wrr(4, 1, "rvse2nat4w1q");
}

/// 40 requests through `workers` workers (af_packet with a queue pair per worker). With one
/// worker the wrr split is IPVS's exact 30/10; with several, each worker schedules on its own
/// (docs/architecture.md section 3), so the split is within the bound [`common::split_ok`] states.
fn nat_wrr(workers: usize, queues: usize, prefix: &str) {
    let _serial = common::serial();
    let net = TestNet::up(prefix);
    let net_id = net.id.clone();
    let (conf, socket) = nat_config(&net, workers, queues);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());

    rvsd.ipvsadm_ok(&["-A", "-t", "198.18.0.100:80", "-s", "wrr"]);
    rvsd.ipvsadm_ok(&[
        "-a",
        "-t",
        "198.18.0.100:80",
        "-r",
        "198.18.1.11:80",
        "-m",
        "-w",
        "3",
    ]);
    rvsd.ipvsadm_ok(&[
        "-a",
        "-t",
        "198.18.0.100:80",
        "-r",
        "198.18.1.12:80",
        "-m",
        "-w",
        "1",
    ]);

    // The director answers ICMP echo for its own address.
    let ping = net.exec("c", &["ping", "-c", "1", "-W", "2", "198.18.0.1"]);
    assert!(
        ping.status.success(),
        "ping DIP: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

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
    let (rs1, rs2) = (
        hits.get("rs1").copied().unwrap_or(0),
        hits.get("rs2").copied().unwrap_or(0),
    );
    if workers == 1 {
        assert_eq!((rs1, rs2), (30, 10), "{hits:?}");
    } else {
        assert!(
            common::split_ok(rs1, rs2, 40, (3, 1), workers as u32),
            "{hits:?}"
        );
    }

    // Every connection went through SYN .. FIN both ways: all are inactive (TIME_WAIT) now.
    // The last ACKs may still be in flight: allow the listing a moment to settle.
    let expected = format!(
        concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  198.18.0.100:80 wrr\n",
            "  -> 198.18.1.11:80               Masq    3      0          {:<10}\n",
            "  -> 198.18.1.12:80               Masq    1      0          {:<10}\n",
        ),
        rs1, rs2
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut listing = rvsd.ipvsadm_ok(&["-Ln"]);
    while listing != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        listing = rvsd.ipvsadm_ok(&["-Ln"]);
    }
    assert_eq!(listing, expected);

    let conns = rvsd.ipvsadm_ok(&["-Lnc"]);
    assert_eq!(
        conns.lines().filter(|l| l.contains("TIME_WAIT")).count(),
        40,
        "{conns}"
    );

    let (status, log) = rvsd.stop();
    assert!(status.success(), "rvsd exit {status}:\n{log}");
    assert!(
        log.contains("all mbufs returned"),
        "mempool not whole at exit:\n{log}"
    );
    eprintln!(
        "redirects (sent, received, overflows): {:?}",
        common::redirect_totals(&log)
    );
    common::assert_cross_worker_traffic(&log, workers);
    drop(net);
    assert!(common::namespaces_with_prefix(&format!("{net_id}-")).is_empty());
    let left = std::process::Command::new("pgrep")
        .args(["-f", &net_id])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
