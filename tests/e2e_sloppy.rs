//! `sloppy_tcp` end to end (issue 12): long-lived DR transfers through a director that is killed
//! (SIGKILL) mid-transfer and replaced by a fresh rvsd, which has no connection at all. With
//! `[ipvs] sloppy_tcp = true` and `mh`, the new director creates each connection from the
//! client's next mid-flow segment and sends it to the same real server, so every transfer
//! completes byte for byte. Needs root; skips with a printed reason without it.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Rvsd, TestNet};

const VIP: &str = "198.18.0.100";
const PORT: u16 = 9000;
const TRANSFERS: u32 = 6;
/// 600 KB at 150 KB/s: 4 s each, the director is killed after 1.5 s.
const SIZE: u32 = 600_000;
const RATE: u32 = 150_000;

fn configure(rvsd: &Rvsd) {
    let vs = format!("{VIP}:{PORT}");
    rvsd.ipvsadm_ok(&["-A", "-t", &vs, "-s", "mh"]);
    for rip in ["198.18.0.11", "198.18.0.12"] {
        rvsd.ipvsadm_ok(&["-a", "-t", &vs, "-r", &format!("{rip}:{PORT}"), "-g"]);
    }
}

#[test]
fn a_replacement_director_continues_dr_transfers_with_sloppy_tcp() {
    require_netns!();
    let _serial = common::serial();
    let net = TestNet::up_mode("rvse2sloppy", "dr");
    let script = common::repo().join("scripts/testnet-stream.py");
    let script = script.to_str().unwrap();
    let mut servers = Vec::new();
    for (i, r) in ["r1", "r2"].iter().enumerate() {
        let server = net
            .command(r)
            .args(["python3", script, "server"])
            .args([format!("rs{}", i + 1), PORT.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        servers.push(server);
    }
    for r in ["r1", "r2"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&net.exec(r, &["ss", "-ltn"]).stdout)
            .contains(&format!(":{PORT} "))
        {
            assert!(Instant::now() < deadline, "stream server of {r} not up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (conf, socket) = common::DirectorConf {
        one_port: true,
        extra: "[ipvs]\nsloppy_tcp = true\n",
        ..common::DirectorConf::new(1)
    }
    .render(&net);
    let first = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    configure(&first);

    let client = net
        .command("c")
        .args(["python3", script, "client", VIP])
        .args([PORT, TRANSFERS as u16].map(|n| n.to_string()))
        .args([SIZE, RATE].map(|n| n.to_string()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let conns = first.ipvsadm_ok(&["-Lnc"]);
    assert_eq!(
        conns.matches("ESTABLISHED").count(),
        TRANSFERS as usize,
        "{conns}"
    );
    let killed_at = Instant::now();
    let first_log = first.kill();
    let second = Rvsd::start(
        Some(&net.ns("d")),
        &conf,
        &socket,
        &net.state_dir().join("second"),
    );
    configure(&second);
    let downtime = killed_at.elapsed();

    let out = client.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("director down {downtime:?}; client:\n{stdout}");
    assert!(
        out.status.success() && stdout.contains(&format!("transfers {TRANSFERS} 0")),
        "transfers broke:\n{stdout}{}\nfirst director:\n{first_log}\nsecond:\n{}",
        String::from_utf8_lossy(&out.stderr),
        second.log_text()
    );
    // The second director never saw a SYN of these connections: it made them from mid-flow
    // segments (sloppy_tcp), and mh sent them to the server the first one had chosen.
    let stats = second.ipvsadm_ok(&["-Ln", "--stats"]);
    let conns_line = stats
        .lines()
        .find(|l| l.starts_with("TCP"))
        .unwrap_or_default();
    let made: u64 = conns_line
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(made, u64::from(TRANSFERS), "{stats}");
    let (status, log) = second.stop();
    assert!(status.success(), "{log}");
    for mut s in servers {
        let _ = s.kill();
        let _ = s.wait();
    }
}
