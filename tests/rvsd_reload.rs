//! SIGHUP and state files against the real daemon on a `net_null` port (no namespaces, no
//! traffic): each kind of reloadable change is applied and seen through ipvsadm/rvsctl, a bad
//! file and a restart-only change are refused with the running state untouched; a stop with
//! state carries services, counters and timeouts over; corrupt, truncated and foreign state
//! files are refused with the reason and rvsd starts empty. Needs root (EAL); skips without.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::Rvsd;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-reload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rvsctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(common::bin("rvsctl"))
        .args(args)
        .env("RVS_SOCKET", socket)
        .output()
        .unwrap()
}

fn rvsctl_ok(socket: &Path, args: &[&str]) -> String {
    let o = rvsctl(socket, args);
    assert!(o.status.success(), "rvsctl {args:?}: {o:?}");
    String::from_utf8(o.stdout).unwrap()
}

/// The configuration: one net_null port, a rules file, `extra` appended.
fn config(socket: &Path, rules: &Path, cores: &str, extra: &str) -> String {
    format!(
        r#"{}[control]
socket = "{}"
[ipvs]
rules = "{}"
[dataplane]
idle_sleep_us = 100
{extra}"#,
        common::one_port_head(cores, "net_null0"),
        socket.display(),
        rules.display()
    )
}

const RULES: &str =
    "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.10:80 -m -w 1\n";

/// Wait (bounded) until the log has `n` lines containing `what`.
fn log_lines(rvsd: &Rvsd, what: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = rvsd.log_text();
        if log.matches(what).count() >= n {
            return log;
        }
        assert!(Instant::now() < deadline, "no {what:?} (x{n}) in:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_applies_what_changed_and_refuses_bad_files_whole() {
    require_netns!();
    let _serial = common::serial();
    let dir = temp_dir("hup");
    let socket = dir.join("s.sock");
    let rules = dir.join("rules");
    std::fs::write(&rules, RULES).unwrap();
    let conf_path = dir.join("rvs.toml");
    let mut rvsd = Rvsd::start(None, &config(&socket, &rules, "0-1", ""), &socket, &dir);
    // A change made at run time, not in the file: a reload leaves it alone.
    rvsd.ipvsadm_ok(&["-A", "-t", "198.18.0.100:81", "-s", "wlc"]);
    let timeouts = |r: &Rvsd| r.ipvsadm_ok(&["-L", "--timeout"]);
    assert_eq!(timeouts(&rvsd), "Timeout (tcp tcpfin udp): 900 120 300\n");

    // Every kind of reloadable change at once.
    let metrics_port = 20000 + (std::process::id() % 20000) as u16;
    let extra = r#"
polling = "busy"
[[addr]]
port = "dp0"
ip = "198.18.2.1/24"
[[route]]
prefix = "198.18.9.0/24"
via = "198.18.0.254"
port = "dp0"
[[neigh]]
port = "dp0"
ip = "198.18.0.254"
mac = "02:00:00:00:00:fe"
[[fwmark]]
mark = 7
proto = "tcp"
dst = "198.18.0.200"
ports = "443"
[ipvs.timeouts]
established = 500
[control2]
"#;
    // (`[control2]` is a typo: first a bad file, refused whole.)
    let text = config(&socket, &rules, "0-1", extra);
    std::fs::write(&conf_path, &text).unwrap();
    rvsd.signal("-HUP");
    let log = log_lines(&rvsd, "reload refused", 1);
    assert!(
        log.contains("unknown field `control2`") && log.contains("(line"),
        "{log}"
    );
    assert!(rvsd.running());
    assert_eq!(timeouts(&rvsd), "Timeout (tcp tcpfin udp): 900 120 300\n");
    assert!(!rvsctl_ok(&socket, &["addr"]).contains("198.18.2.1"));

    // The same with the metrics address and a rules file that adds a dest, edits the
    // scheduler and adds a service; `[control]` can only appear once, so metrics go there.
    let text = config(&socket, &rules, "0-1", &extra.replace("[control2]\n", "")).replace(
        "[ipvs]\n",
        &format!("metrics = \"127.0.0.1:{metrics_port}\"\n[ipvs]\n"),
    );
    std::fs::write(&conf_path, &text).unwrap();
    std::fs::write(
        &rules,
        "-A -t 198.18.0.100:80 -s wrr\n-a -t 198.18.0.100:80 -r 198.18.0.10:80 -m -w 3\n\
         -a -t 198.18.0.100:80 -r 198.18.0.11:80 -m -w 1\n-A -u 198.18.0.100:53 -s rr\n",
    )
    .unwrap();
    rvsd.signal("-HUP");
    let log = log_lines(&rvsd, "reload done", 1);
    assert!(rvsd.running(), "{log}");
    for change in [
        "add address",
        "add route",
        "add neighbour",
        "add fwmark rule",
        "set timeouts",
        "edit service",
        "edit dest",
        "add dest",
        "add service",
        "idle polling changed",
        "metrics address changed",
    ] {
        assert!(log.contains(change), "no {change:?} in:\n{log}");
    }
    assert!(log.contains("refused=0"), "{log}");
    assert_eq!(timeouts(&rvsd), "Timeout (tcp tcpfin udp): 500 120 300\n");
    assert!(rvsctl_ok(&socket, &["addr"]).contains("inet 198.18.2.1/24"));
    assert!(rvsctl_ok(&socket, &["route"]).contains("198.18.9.0/24 via 198.18.0.254"));
    assert!(rvsctl_ok(&socket, &["neigh"]).contains("198.18.0.254"));
    let list = rvsd.ipvsadm_ok(&["-Ln"]);
    assert!(list.contains("TCP  198.18.0.100:80 wrr"), "{list}");
    assert!(
        list.contains("198.18.0.10:80               Masq    3"),
        "{list}"
    );
    assert!(list.contains("198.18.0.11:80"), "{list}");
    assert!(list.contains("UDP  198.18.0.100:53 rr"), "{list}");
    assert!(
        list.contains("TCP  198.18.0.100:81 wlc"),
        "runtime service kept: {list}"
    );
    let saved = rvsd.ipvsadm_ok(&["-S", "-n"]);
    assert!(saved.contains("198.18.0.200"), "fwmark rule: {saved}");
    let metrics = std::net::TcpStream::connect(("127.0.0.1", metrics_port));
    assert!(metrics.is_ok(), "metrics not served on {metrics_port}");
    drop(metrics);

    // Removals: back to the first file and rules.
    std::fs::write(&conf_path, config(&socket, &rules, "0-1", "")).unwrap();
    std::fs::write(&rules, RULES).unwrap();
    rvsd.signal("-HUP");
    let log = log_lines(&rvsd, "reload done", 2);
    assert!(log.contains("refused=0"), "{log}");
    assert_eq!(timeouts(&rvsd), "Timeout (tcp tcpfin udp): 900 120 300\n");
    assert!(!rvsctl_ok(&socket, &["addr"]).contains("198.18.2.1"));
    assert!(!rvsctl_ok(&socket, &["route"]).contains("198.18.9.0"));
    let list = rvsd.ipvsadm_ok(&["-Ln"]);
    assert!(list.contains("TCP  198.18.0.100:80 rr"), "{list}");
    assert!(
        !list.contains("198.18.0.11:80") && !list.contains("UDP"),
        "{list}"
    );
    assert!(list.contains("TCP  198.18.0.100:81 wlc"), "{list}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_err());

    // A restart-only change, with a reloadable one beside it: refused by name, nothing applied.
    std::fs::write(
        &conf_path,
        config(
            &socket,
            &rules,
            "0-2",
            "conn_capacity = 4096\n[ipvs.timeouts]\nestablished = 400\n",
        ),
    )
    .unwrap();
    rvsd.signal("-HUP");
    let log = log_lines(&rvsd, "reload refused", 2);
    assert!(
        log.contains("dpdk.cores, dataplane.conn_capacity changed, which needs a restart"),
        "{log}"
    );
    assert_eq!(timeouts(&rvsd), "Timeout (tcp tcpfin udp): 900 120 300\n");
    // The same through the control socket: the reason comes back to rvsctl.
    let o = rvsctl(&socket, &["daemon", "reload"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("reload refused, nothing changed") && e.contains("dpdk.cores"),
        "{e}"
    );
    std::fs::write(
        &conf_path,
        config(
            &socket,
            &rules,
            "0-1",
            "[ipvs.timeouts]\nestablished = 400\n",
        ),
    )
    .unwrap();
    rvsctl_ok(&socket, &["daemon", "reload"]);
    assert_eq!(timeouts(&rvsd), "Timeout (tcp tcpfin udp): 400 120 300\n");
    // No state file given: a stop with state is refused and rvsd runs on.
    let o = rvsctl(&socket, &["daemon", "stop", "save-state"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("without --state-file"));
    assert!(rvsd.running());
    let (status, log) = rvsd.stop();
    assert!(status.success(), "{log}");
    assert!(!socket.exists(), "socket file left behind");
    let _ = std::fs::remove_dir_all(dir);
}

/// Start rvsd with `--state-file` and return it.
fn start_with_state(dir: &Path, socket: &Path, rules: &Path, state: &Path) -> Rvsd {
    Rvsd::start_with(
        None,
        &config(socket, rules, "0-1", ""),
        socket,
        dir,
        &common::bin("rvsd"),
        &["--state-file", state.to_str().unwrap()],
    )
}

#[test]
fn stop_with_state_carries_tables_and_bad_state_files_are_refused() {
    require_netns!();
    let _serial = common::serial();
    let dir = temp_dir("state");
    let socket = dir.join("s.sock");
    let rules = dir.join("rules");
    std::fs::write(&rules, RULES).unwrap();
    let state = dir.join("rvsd.state");

    // No file yet: starts empty, says so.
    let rvsd = start_with_state(&dir, &socket, &rules, &state);
    assert!(
        rvsd.log_text()
            .contains("no state file: starting with empty tables")
    );
    rvsd.ipvsadm_ok(&["-A", "-t", "198.18.0.100:81", "-s", "wlc"]);
    rvsd.ipvsadm_ok(&["-a", "-t", "198.18.0.100:81", "-r", "198.18.0.12:81", "-m"]);
    rvsd.ipvsadm_ok(&["--set", "700", "60", "200"]);
    let before = rvsd.ipvsadm_ok(&["-Ln"]);
    // A stop with state asked for through the control socket.
    rvsctl_ok(&socket, &["daemon", "stop", "save-state"]);
    let (status, log) = rvsd.wait();
    assert!(status.success(), "{log}");
    assert!(log.contains("state saved"), "{log}");
    let good = std::fs::read(&state).unwrap();
    assert!(good.starts_with(b"RVSSTATE"));

    // Loaded: the run-time service and timeouts are back; the file is consumed.
    let rvsd = start_with_state(&dir, &socket, &rules, &state);
    assert_eq!(rvsd.ipvsadm_ok(&["-Ln"]), before);
    assert_eq!(
        rvsd.ipvsadm_ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 700 60 200\n"
    );
    assert!(rvsd.log_text().contains("state file loaded"));
    assert!(!state.exists(), "a loaded state file is removed");
    let (status, _) = rvsd.stop();
    assert!(status.success());

    // Refused files: rvsd starts with the configuration's tables only, and says why.
    let mut flipped = good.clone();
    flipped[20] ^= 0x01; // inside the header
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "foreign",
            b"[dpdk]\ncores = \"0-1\"\n".to_vec(),
            "not an rvs state file",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "truncated state file",
        ),
        ("corrupt", flipped, "corrupt state file: checksum mismatch"),
        (
            "version",
            {
                let mut v = good.clone();
                v[8] = 9;
                v
            },
            "state file format version 9, this rvsd reads versions 1 to 4",
        ),
    ];
    for (name, bytes, why) in cases {
        std::fs::write(&state, &bytes).unwrap();
        let rvsd = start_with_state(&dir, &socket, &rules, &state);
        let log = rvsd.log_text();
        assert!(
            log.contains("state file refused, starting with empty tables") && log.contains(why),
            "{name}: {log}"
        );
        let list = rvsd.ipvsadm_ok(&["-Ln"]);
        assert!(!list.contains(":81"), "{name}: {list}");
        assert!(list.contains("198.18.0.100:80"), "{name}: {list}");
        let bad = dir.join("rvsd.state.bad");
        assert_eq!(std::fs::read(&bad).unwrap(), bytes, "{name}: set aside");
        std::fs::remove_file(bad).unwrap();
        let (status, log) = rvsd.stop();
        assert!(status.success(), "{name}: {log}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
