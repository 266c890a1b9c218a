//! The control socket's defences against a real rvsd (on a `net_null` port: no traffic): a cap
//! on connections and an idle timeout, both counted in `/metrics`; request fields the daemon
//! does not know refused by name with the daemon's state intact; and a lower threshold above
//! the upper one refused as ipvsadm on IPVS refuses it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::Rvsd;

const CAP: usize = 4;
const IDLE_MS: u64 = 1500;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(socket: &std::path::Path, metrics_port: u16) -> String {
    format!(
        r#"{}[control]
socket = "{}"
metrics = "127.0.0.1:{metrics_port}"
max_connections = {CAP}
idle_timeout_ms = {IDLE_MS}
[dataplane]
idle_sleep_us = 100
"#,
        common::one_port_head("0-1", "net_null0"),
        socket.display()
    )
}

/// The value of one sample line of `/metrics` (`name{labels}`), 0 when absent.
fn metric(port: u16, sample: &str) -> f64 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A raw connection that has been served one request (so the daemon counts it open).
fn served(socket: &std::path::Path) -> (UnixStream, BufReader<UnixStream>) {
    let mut w = UnixStream::connect(socket).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    w.write_all(b"{\"version\":2,\"request\":\"get_timeouts\"}\n")
        .unwrap();
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    assert!(l.contains("\"timeouts\""), "{l}");
    (w, r)
}

fn call(w: &mut UnixStream, r: &mut BufReader<UnixStream>, line: &str) -> String {
    w.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

fn out(o: &std::process::Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn control_connections_are_capped_and_idle_ones_closed() {
    require_netns!();
    let _serial = common::serial();
    let dir = temp_dir("ctlcap");
    let socket = dir.join("s.sock");
    let port = 40000 + (std::process::id() % 20000) as u16;
    let mut rvsd = Rvsd::start(None, &config(&socket, port), &socket, &dir);
    rvsd.ipvsadm_ok(&["-A", "-t", "198.18.0.100:80", "-s", "rr"]);
    let before = rvsd.ipvsadm_ok(&["-Ln"]);
    // Rvsd::start's and the calls above' connections have ended (each ipvsadm closes its own).
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(port, "rvs_control_connections") != 0.0 {
        assert!(Instant::now() < deadline, "connections did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused0 = metric(
        port,
        "rvs_control_connections_refused_total{reason=\"cap\"}",
    );

    // The cap's worth of connections, each served.
    let started = Instant::now();
    let mut held: Vec<_> = (0..CAP).map(|_| served(&socket)).collect();
    assert_eq!(metric(port, "rvs_control_connections"), CAP as f64);
    // Many more (bounded): each gets one line saying why, then the end of the stream.
    const MORE: usize = 50;
    for _ in 0..MORE {
        let s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut text = String::new();
        BufReader::new(s).read_to_string(&mut text).unwrap();
        assert!(
            text.starts_with(r#"{"error":{"errno":"einval","message":"too many control connections (4 open; [control] max_connections); try again"}}"#)
                && text.lines().count() == 1,
            "{text}"
        );
    }
    // ipvsadm too is turned away, with the daemon's reason.
    let (code, _, err) = out(&rvsd.ipvsadm(&["-Ln"]));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err,
        "Invalid operation: too many control connections (4 open; [control] max_connections); \
         try again\n"
    );
    assert_eq!(
        metric(
            port,
            "rvs_control_connections_refused_total{reason=\"cap\"}"
        ) - refused0,
        (MORE + 1) as f64
    );
    // The held connections are still served (if the idle timeout has not passed yet).
    if started.elapsed() < Duration::from_millis(IDLE_MS / 2) {
        let (w, r) = &mut held[0];
        let l = call(w, r, r#"{"version":2,"request":"get_info"}"#);
        assert!(l.contains("\"info\""), "{l}");
    }

    // Idle: each held connection is closed by the daemon after the timeout, and counted.
    for (_, r) in &mut held {
        let mut rest = String::new();
        // Bounded by the read timeout set in `served` (10 s): EOF, not a timeout, is expected.
        let n = r.read_to_string(&mut rest).unwrap();
        assert_eq!((n, rest.as_str()), (0, ""));
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(IDLE_MS), "{waited:?}");
    assert_eq!(metric(port, "rvs_control_connections"), 0.0);
    let idle = metric(
        port,
        "rvs_control_connections_timeouts_total{reason=\"idle\"}",
    );
    // Only the held connections ever idled (every other client closed its own).
    assert_eq!(idle, CAP as f64);
    eprintln!("idle connections closed after {waited:?} (timeout {IDLE_MS} ms)");

    // Room again; nothing was lost.
    assert_eq!(rvsd.ipvsadm_ok(&["-Ln"]), before);
    assert!(rvsd.running());
    let (status, log) = rvsd.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("connections open, refusing more"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_fields_are_refused_by_name_and_thresholds_checked() {
    require_netns!();
    let _serial = common::serial();
    let dir = temp_dir("ctlfields");
    let socket = dir.join("s.sock");
    let port = 40000 + ((std::process::id() + 7) % 20000) as u16;
    let mut rvsd = Rvsd::start(None, &config(&socket, port), &socket, &dir);
    rvsd.ipvsadm_ok(&["-A", "-t", "198.18.0.100:80", "-s", "rr"]);
    let before = rvsd.ipvsadm_ok(&["-Ln"]);

    let (mut w, mut r) = served(&socket);
    // A misspelt field (`sheduler`): refused, named, nothing added.
    let l = call(
        &mut w,
        &mut r,
        r#"{"version":2,"request":{"add_service":{"key":{"inet":{"protocol":"tcp","addr":"198.18.0.101","port":80}},"sheduler":"rr"}}}"#,
    );
    assert_eq!(
        l.trim_end(),
        r#"{"version":2,"reply":{"error":{"errno":"einval","message":"bad request: unknown field `sheduler` (at request.add_service.sheduler); this rvsd speaks protocol 2"}}}"#
    );
    // Deeper, and in a version-1 envelope (answered bare, as version 1 is).
    let l = call(
        &mut w,
        &mut r,
        r#"{"version":1,"request":{"add_dest":{"service":{"inet":{"protocol":"tcp","addr":"198.18.0.100","port":80}},"dest":{"addr":"198.18.1.11","port":80,"forward":"masq","lthreshold":5}}}}"#,
    );
    assert_eq!(
        l.trim_end(),
        r#"{"error":{"errno":"einval","message":"bad request: unknown field `lthreshold` (at request.add_dest.dest.lthreshold); this rvsd speaks protocol 2"}}"#
    );
    // The same connection keeps being served; the state is as it was.
    let l = call(&mut w, &mut r, r#"{"version":2,"request":"get_timeouts"}"#);
    assert!(l.contains("\"timeouts\""), "{l}");
    drop((w, r));
    assert_eq!(rvsd.ipvsadm_ok(&["-Ln"]), before);

    // -y above -x: ERANGE from IPVS, which ipvsadm prints as strerror (exit 255), for -a and
    // -e; nothing changes.
    let rs = ["-t", "198.18.0.100:80", "-r", "198.18.1.11:80", "-m"];
    let with = |op: &str, extra: &[&str]| {
        let mut a = vec![op];
        a.extend(rs);
        a.extend(extra);
        out(&rvsd.ipvsadm(&a))
    };
    let refused = (
        Some(255),
        String::new(),
        "Numerical result out of range\n".to_owned(),
    );
    assert_eq!(with("-a", &["-x", "10", "-y", "20"]), refused);
    assert_eq!(with("-a", &["-y", "5"]), refused, "no upper threshold is 0");
    assert_eq!(rvsd.ipvsadm_ok(&["-Ln"]), before);
    assert_eq!(
        with("-a", &["-x", "20", "-y", "10"]),
        (Some(0), String::new(), String::new())
    );
    assert_eq!(with("-e", &["-x", "5", "-y", "10"]), refused);
    let t = rvsd.ipvsadm_ok(&["-Ln", "--thresholds"]);
    assert!(
        t.contains("  -> 198.18.1.11:80               20         10"),
        "{t}"
    );
    assert!(rvsd.running());
    let (status, log) = rvsd.stop();
    assert!(status.success(), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
