//! Persistence, source hashing, thresholds and fwmark services end to end (issue 4): a client
//! namespace (two addresses of one /24) reaches two real HTTP servers through rvsd on DPDK
//! (NAT topology of `scripts/testnet.sh`), configured with ipvsadm. Needs root; skips with a
//! printed reason without it. One network and one rvsd for all the cases, run in turn.

mod common;

use std::collections::BTreeMap;

use common::{Rvsd, TestNet};

const VIP: &str = "198.18.0.100";
const CIP2: &str = "198.18.0.3";

fn config(net: &TestNet) -> (String, std::path::PathBuf) {
    // The classic http + https grouping, here ports 80 and 8080 of a second VIP.
    let fwmark =
        "[[fwmark]]\nmark = 1\nproto = \"tcp\"\ndst = \"198.18.0.101/32\"\nports = \"80,8080\"\n";
    common::DirectorConf {
        extra: fwmark,
        ..common::DirectorConf::new(1)
    }
    .render(net)
}

/// `n` curl requests to `url` from `source` (None: the client's first address): who answered.
fn curl(
    net: &TestNet,
    rvsd: &Rvsd,
    url: &str,
    source: Option<&str>,
    n: u32,
) -> BTreeMap<String, u32> {
    let mut hits = BTreeMap::new();
    for i in 0..n {
        let mut args = vec!["curl", "-s", "--max-time", "5"];
        if let Some(s) = source {
            args.extend(["--interface", s]);
        }
        args.push(url);
        let o = net.exec("c", &args);
        assert!(
            o.status.success(),
            "{}\nrequest {i} to {url} failed: {}",
            rvsd.log_text(),
            String::from_utf8_lossy(&o.stderr),
        );
        *hits
            .entry(String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .or_insert(0) += 1;
    }
    hits
}

fn only_one(hits: &BTreeMap<String, u32>, n: u32) -> String {
    assert_eq!(hits.len(), 1, "{hits:?}");
    let (rs, k) = hits.iter().next().unwrap();
    assert_eq!(*k, n, "{hits:?}");
    rs.clone()
}

fn service(rvsd: &Rvsd, spec: &[&str], dests: &[&str]) {
    rvsd.ipvsadm_ok(&["-C"]);
    let mut a = vec!["-A"];
    a.extend(spec);
    rvsd.ipvsadm_ok(&a);
    let vs = &spec[..2];
    for d in dests {
        let mut a = vec!["-a"];
        a.extend(vs);
        a.extend(d.split_whitespace());
        rvsd.ipvsadm_ok(&a);
    }
}

const RS: [&str; 2] = ["-r 198.18.1.11:80 -m", "-r 198.18.1.12:80 -m"];

/// Open `n` TCP connections to VIP:80 and hold them (no request yet); then ask each which RS
/// it reached. Returns the answers in order. `-Ln` is read while they are held.
fn held_connections(net: &TestNet, rvsd: &Rvsd, n: usize) -> (Vec<String>, String) {
    let script = format!(
        r#"
import socket, sys, time
socks = []
for i in range({n}):
    s = socket.create_connection(("{VIP}", 80), timeout=5)
    socks.append(s)
    time.sleep(0.05)
print("held", flush=True)
sys.stdin.readline()
for s in socks:
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    print(data.split(b"\r\n\r\n", 1)[1].decode().strip())
"#
    );
    use std::io::{BufRead, BufReader, Write};
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &net.ns("c"), "python3", "-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "held", "{}", rvsd.log_text());
    let listing = rvsd.ipvsadm_ok(&["-Ln"]);
    writeln!(child.stdin.take().unwrap()).unwrap();
    let answers: Vec<String> = out.lines().map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success());
    (answers, listing)
}

#[test]
fn persistence_hashing_thresholds_and_fwmark_through_dpdk() {
    require_netns!();
    let _serial = common::serial();
    let net = TestNet::up("rvse2per");
    let o = net.exec(
        "c",
        &["ip", "addr", "add", &format!("{CIP2}/24"), "dev", "c0"],
    );
    assert!(o.status.success());
    let (conf, socket) = config(&net);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    let url = format!("http://{VIP}/");

    // sh and mh: one client stays on one RS whatever its source port.
    for sched in ["sh", "mh"] {
        service(&rvsd, &["-t", "198.18.0.100:80", "-s", sched], &RS);
        only_one(&curl(&net, &rvsd, &url, None, 20), 20);
    }

    // Without persistence rr alternates between the two clients' requests...
    service(&rvsd, &["-t", "198.18.0.100:80", "-s", "rr"], &RS);
    let mut hits = curl(&net, &rvsd, &url, None, 5);
    for (k, v) in curl(&net, &rvsd, &url, Some(CIP2), 5) {
        *hits.entry(k).or_insert(0) += v;
    }
    assert_eq!(hits.len(), 2, "{hits:?}");
    // ...with -p 60 -M 255.255.255.0, both clients of the /24 stay on one RS.
    service(
        &rvsd,
        &[
            "-t",
            "198.18.0.100:80",
            "-s",
            "rr",
            "-p",
            "60",
            "-M",
            "255.255.255.0",
        ],
        &RS,
    );
    let rs = only_one(&curl(&net, &rvsd, &url, None, 10), 10);
    assert_eq!(only_one(&curl(&net, &rvsd, &url, Some(CIP2), 10), 10), rs);
    let rip = if rs == "rs1" {
        "198.18.1.11"
    } else {
        "198.18.1.12"
    };
    let lnc = rvsd.ipvsadm_ok(&["-Lnc"]);
    let templates: Vec<&str> = lnc
        .lines()
        .filter(|l| l.contains(" NONE ") || l.contains("ASSURED"))
        .collect();
    assert_eq!(templates.len(), 1, "{lnc}");
    let f: Vec<&str> = templates[0].split_whitespace().collect();
    assert_eq!(
        (f[0], f[2], f[3], f[4], f[5]),
        (
            "TCP",
            "ASSURED",
            "198.18.0.0:0",
            "198.18.0.100:80",
            &*format!("{rip}:80")
        ),
        "{lnc}"
    );
    let pc = rvsd.ipvsadm_ok(&["-Ln", "--persistent-conn"]);
    let line = pc.lines().find(|l| l.contains(rip)).unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some("1"), "{pc}");

    // -x 2 on rs1: of 6 held connections, rs1 takes 2 and rs2 the rest.
    service(
        &rvsd,
        &["-t", "198.18.0.100:80", "-s", "rr"],
        &["-r 198.18.1.11:80 -m -x 2", "-r 198.18.1.12:80 -m"],
    );
    let (answers, listing) = held_connections(&net, &rvsd, 6);
    let n1 = answers.iter().filter(|a| *a == "rs1").count();
    let n2 = answers.iter().filter(|a| *a == "rs2").count();
    assert_eq!((n1, n2), (2, 4), "{answers:?}\n{listing}");
    let active: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains("->") && l.contains("Masq"))
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    assert_eq!(active, ["2", "4"], "{listing}");

    // fwmark 1 groups VIP2:80 and VIP2:8080 (both to the RS's port 80), with persistence.
    service(&rvsd, &["-f", "1", "-s", "rr", "-p", "60"], &RS);
    let a = only_one(&curl(&net, &rvsd, "http://198.18.0.101/", None, 5), 5);
    let b = only_one(&curl(&net, &rvsd, "http://198.18.0.101:8080/", None, 5), 5);
    assert_eq!(a, b);
    let lnc = rvsd.ipvsadm_ok(&["-Lnc"]);
    assert!(
        lnc.lines()
            .any(|l| l.starts_with("IP ") && l.contains("198.18.0.2:0") && l.contains("0.0.0.1:0")),
        "{lnc}"
    );
    let saved = rvsd.ipvsadm_ok(&["-S", "-n"]);
    assert!(
        saved.ends_with(
            "--add-fwmark-rule -f 1 --proto tcp --dst 198.18.0.101/32 --ports 80,8080\n"
        ),
        "{saved}"
    );

    let (status, log) = rvsd.stop();
    assert!(status.success(), "rvsd exit {status}:\n{log}");
    assert!(
        log.contains("all mbufs returned"),
        "mempool not whole:\n{log}"
    );
    drop(net);
    assert!(common::namespaces_with_prefix("rvse2per").is_empty());
}
