//! Access lists and admission limits end to end (issue 15): real curl clients from two client
//! addresses through rvsd (NAT, one worker) to the two real HTTP servers. The deny list refuses
//! one client, the allow list admits only the other, `--conn-limit`, `--src-rate` and
//! `--conn-rate` refuse what they must and nothing else, each refusal is counted under its own
//! reason in `rvs_drops_total`, and `ipvsadm -S` then `-R` restores lists and limits.
//! Needs root; skips with a printed reason without it (CI runs it for real).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Rvsd, TestNet};

const VIP: &str = "198.18.0.100:80";
const CIP: &str = "198.18.0.2";
const CIP2: &str = "198.18.0.3";

/// One request from `source`; whether it was answered. A refused SYN is dropped, so curl gives
/// up after `--connect-timeout` (shorter than its first SYN retransmission, 1 s, so one request
/// is one new-connection attempt).
fn request(net: &TestNet, source: &str) -> bool {
    let o = net.exec(
        "c",
        &[
            "curl",
            "-s",
            "--connect-timeout",
            "0.6",
            "--max-time",
            "3",
            "--interface",
            source,
            "http://198.18.0.100/",
        ],
    );
    o.status.success() && !o.stdout.is_empty()
}

/// The value of `rvs_drops_total{reason="REASON"}` summed over workers.
fn drops(net: &TestNet, reason: &str) -> u64 {
    let needle = format!("reason=\"{reason}\"");
    net.metrics()
        .lines()
        .filter(|l| l.starts_with("rvs_drops_total{") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `rvs_service_refused_total` of the VIP's service for `reason`.
fn refused(net: &TestNet, reason: &str) -> u64 {
    let needle = format!("service=\"tcp/{VIP}\"");
    let reason = format!("reason=\"{reason}\"");
    net.metrics()
        .lines()
        .filter(|l| l.starts_with("rvs_service_refused_total{"))
        .filter(|l| l.contains(&needle) && l.contains(&reason))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A fresh NAT service on the VIP (rr over both real servers) with these extra `-A` options.
fn service(rvsd: &Rvsd, extra: &[&str]) {
    let _ = rvsd.ipvsadm(&["-D", "-t", VIP]);
    let mut a = vec!["-A", "-t", VIP, "-s", "rr"];
    a.extend_from_slice(extra);
    rvsd.ipvsadm_ok(&a);
    for rs in ["198.18.1.11:80", "198.18.1.12:80"] {
        rvsd.ipvsadm_ok(&["-a", "-t", VIP, "-r", rs, "-m"]);
    }
}

#[test]
fn access_lists_and_limits_through_dpdk() {
    require_netns!();
    let _serial = common::serial();
    let net = TestNet::up("rvse2acl");
    let o = net.exec(
        "c",
        &["ip", "addr", "add", &format!("{CIP2}/24"), "dev", "c0"],
    );
    assert!(o.status.success());
    let (conf, socket) = common::DirectorConf {
        metrics: Some("127.0.0.1:9475"),
        ..common::DirectorConf::new(1)
    }
    .render(&net);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    service(&rvsd, &[]);
    assert!(
        request(&net, CIP) && request(&net, CIP2),
        "{}",
        rvsd.log_text()
    );

    // Deny list: CIP2 is refused, CIP is not.
    rvsd.ipvsadm_ok(&["-U", "-t", VIP, "-k", CIP2]);
    assert_eq!(
        rvsd.ipvsadm_ok(&["-B", "-t", VIP]),
        concat!(
            "PROTO    VIP:VPORT                      BLACKLIST                     \n",
            "TCP      198.18.0.100:80                198.18.0.3                    \n",
        )
    );
    assert!(!request(&net, CIP2));
    assert!(request(&net, CIP));
    assert_eq!(drops(&net, "acl_denied"), 1);
    // The same entry twice is refused with DPVS's text; the list is unchanged.
    let again = rvsd.ipvsadm(&["-U", "-t", VIP, "-k", CIP2]);
    assert_eq!(again.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim(),
        "blacklist address already exists"
    );
    rvsd.ipvsadm_ok(&["-V", "-t", VIP, "-k", CIP2]);
    assert!(request(&net, CIP2));

    // Allow list: only CIP (as a /32) may connect; the deny list still wins over it.
    rvsd.ipvsadm_ok(&["-O", "-t", VIP, "-2", CIP]);
    assert!(request(&net, CIP));
    assert!(!request(&net, CIP2));
    assert_eq!(drops(&net, "acl_not_allowed"), 1);
    rvsd.ipvsadm_ok(&["-O", "-t", VIP, "-2", "198.18.0.0/24"]);
    rvsd.ipvsadm_ok(&["-U", "-t", VIP, "-k", CIP2]);
    assert!(!request(&net, CIP2));
    assert_eq!(drops(&net, "acl_denied"), 2);

    // -S writes the lists; -C then -R brings them back, and -S says the same again.
    let saved = rvsd.ipvsadm_ok(&["-S", "-n"]);
    assert!(
        saved.ends_with(concat!(
            "-U -t 198.18.0.100:80 -k 198.18.0.3\n",
            "-O -t 198.18.0.100:80 -2 198.18.0.2\n",
            "-O -t 198.18.0.100:80 -2 198.18.0.0/24\n",
        )),
        "{saved}"
    );
    restore_round_trip(&rvsd, &saved);
    assert!(!request(&net, CIP2), "the restored deny list refuses");
    assert!(request(&net, CIP));

    // Connection limit: a fresh service holds at most 3 connections (closed ones count while
    // in TIME_WAIT, as in IPVS's totalconns), whichever client asks.
    service(&rvsd, &["--conn-limit", "3"]);
    let ok = (0..3).filter(|_| request(&net, CIP)).count();
    assert_eq!(ok, 3, "{}", rvsd.log_text());
    assert!(!request(&net, CIP2));
    assert!(!request(&net, CIP));
    assert_eq!(drops(&net, "svc_conn_limit"), 2);

    // Per-source rate: 2 at once per address, then 1 a second; the other address has its own.
    service(&rvsd, &["--src-rate", "1:2"]);
    let ok = (0..3).filter(|_| request(&net, CIP)).count();
    assert_eq!(ok, 2);
    assert!(request(&net, CIP2));
    assert_eq!(drops(&net, "src_rate_limited"), 1);
    // The service counts its own refusals (a new service starts from none).
    assert_eq!(refused(&net, "src_rate_limited"), 1);
    assert_eq!(refused(&net, "svc_conn_limit"), 0);

    // Service rate: 3 at once over every client, then 1 a second.
    service(
        &rvsd,
        &[
            "--conn-rate",
            "1:3",
            "--src-rate",
            "100",
            "--src-prefix",
            "24",
        ],
    );
    let ok = [CIP, CIP2, CIP, CIP2]
        .iter()
        .filter(|s| request(&net, s))
        .count();
    assert_eq!(ok, 3);
    assert_eq!(drops(&net, "svc_rate_limited"), 1);
    // The limits show in -Ln and survive -S / -R.
    let listing = rvsd.ipvsadm_ok(&["-Ln"]);
    assert!(
        listing.contains("TCP  198.18.0.100:80 rr conn-rate 1:3 src-rate 100:100/24\n"),
        "{listing}"
    );
    let saved = rvsd.ipvsadm_ok(&["-S", "-n"]);
    assert!(
        saved.starts_with(
            "-A -t 198.18.0.100:80 -s rr --conn-rate 1:3 --src-rate 100 --src-prefix 24\n"
        ),
        "{saved}"
    );
    restore_round_trip(&rvsd, &saved);

    let (status, log) = rvsd.stop();
    assert!(status.success(), "rvsd exit {status}:\n{log}");
    assert!(
        log.contains("all mbufs returned"),
        "mempool not whole at exit:\n{log}"
    );
}

/// `-C`, then `-R` of `saved`; `-S` must print `saved` again.
fn restore_round_trip(rvsd: &Rvsd, saved: &str) {
    rvsd.ipvsadm_ok(&["-C"]);
    let mut child = Command::new(common::bin("ipvsadm"))
        .arg("-R")
        .env("RVS_SOCKET", &rvsd.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(saved.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "-R: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(rvsd.ipvsadm_ok(&["-S", "-n"]), saved);
}
