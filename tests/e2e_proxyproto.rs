//! The client's address at FULLNAT real servers, end to end (issue 18): Linux clients reach
//! real servers through rvsd on DPDK, FULLNAT with a local address, and the servers learn who
//! the client is from
//!
//! - the PROXY protocol v1 read by nginx (`listen ... proxy_protocol`): 40 requests, each
//!   access-log line names the client's address and port;
//! - PROXY v2 read by a Python server written from the specification
//!   (`scripts/testnet-proxy.py`): a 4 MiB upload and a 4 MiB download through the shifted
//!   connection arrive intact, and a server that speaks first gets the header without the client
//!   sending anything;
//! - PROXY v2 on every UDP datagram, and UOA in both of DPVS's forms (the option protocol and
//!   the IP option), read by the same script;
//!
//! with the listing, the saved rules and the counters checked. Needs root (and nginx, which
//! `scripts/install-deps.sh` installs); skips with a printed reason without them.

mod common;

use common::{Rvsd, TestNet};

const VIP: &str = "198.18.0.100";
const LIP: &str = "198.18.1.5";
const RIPS: [&str; 2] = ["198.18.1.11", "198.18.1.12"];

fn script() -> String {
    common::repo()
        .join("scripts/testnet-proxy.py")
        .display()
        .to_string()
}

/// Start the script's server `args` in both real servers (killed with the network; the test
/// reaps them at its end).
fn serve(net: &TestNet, args: &[&str], children: &mut Vec<std::process::Child>) {
    for (i, r) in ["r1", "r2"].iter().enumerate() {
        let name = format!("rs{}", i + 1);
        let mut a: Vec<&str> = vec!["python3", "-u"];
        let s = script();
        a.push(&s);
        a.push(args[0]);
        a.push(&name);
        a.push(RIPS[i]);
        a.extend(&args[1..]);
        let log = std::fs::File::create(net.state_dir().join(format!("proxy-{r}-{}.log", args[1])))
            .unwrap();
        let child = net
            .command(r)
            .args(&a)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        children.push(child);
    }
}

/// nginx on each real server on RIP:8080 reading PROXY headers: answers and logs the client the
/// header names.
fn start_nginx(net: &TestNet) {
    for (i, r) in ["r1", "r2"].iter().enumerate() {
        let dir = net.state_dir();
        let conf = dir.join(format!("nginx-pp-{r}.conf"));
        let text = format!(
            "worker_processes 1;\npid {d}/nginx-pp-{r}.pid;\nerror_log {d}/nginx-pp-{r}.err;\n\
             events {{ worker_connections 256; }}\n\
             http {{ log_format pp '$proxy_protocol_addr:$proxy_protocol_port $remote_addr';\n\
               access_log {d}/nginx-pp-{r}.access pp;\n\
               server {{ listen {rip}:8080 proxy_protocol;\n\
                 location / {{ return 200 \"rs{n} $proxy_protocol_addr:$proxy_protocol_port\\n\"; }} }} }}\n",
            d = dir.display(),
            rip = RIPS[i],
            n = i + 1,
        );
        std::fs::write(&conf, text).unwrap();
        let o = net.exec(r, &["nginx", "-c", conf.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "nginx: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Wait until every real server listens on TCP `port` (and UDP ports are bound at once).
fn wait_listen(net: &TestNet, port: u16) {
    for r in ["r1", "r2"] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let o = net.exec(r, &["ss", "-ltn"]);
            if String::from_utf8_lossy(&o.stdout).contains(&format!(":{port} ")) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nothing listens on {r}:{port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Run the script as a client in the client namespace: its one output line, split in two at
/// the first space (the client's own address, the reply).
fn client(net: &TestNet, rvsd: &Rvsd, args: &[&str]) -> Vec<(String, String)> {
    let s = script();
    let mut a = vec!["timeout", "15", "python3", &s];
    a.extend(args);
    let o = net.exec("c", &a);
    assert!(
        o.status.success(),
        "{}\nclient {args:?} failed: {}",
        rvsd.log_text(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let (me, reply) = l.split_once(' ').unwrap_or((l, ""));
            (me.to_owned(), reply.to_owned())
        })
        .collect()
}

fn add_service(rvsd: &Rvsd, proto: &str, port: u16, extra: &[&str]) {
    let vs = format!("{VIP}:{port}");
    let mut a = vec!["-A", proto, &vs, "-s", "rr"];
    a.extend(extra);
    rvsd.ipvsadm_ok(&a);
    for rip in RIPS {
        rvsd.ipvsadm_ok(&[
            "-a",
            proto,
            &vs,
            "-r",
            &format!("{rip}:{port}"),
            "--fullnat",
        ]);
    }
    rvsd.ipvsadm_ok(&["-P", proto, &vs, "-z", LIP, "-F", "dp1"]);
}

#[test]
fn client_address_reaches_fullnat_servers() {
    require_netns!();
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v nginx"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx missing (scripts/install-deps.sh installs it)"
        );
        eprintln!("skipped: nginx not installed");
        return;
    }
    let _serial = common::serial();
    let net = TestNet::up_mode("rvse2pp", "fullnat");
    let (conf, socket) = common::DirectorConf {
        metrics: Some("127.0.0.1:9475"),
        ..common::DirectorConf::new(1)
    }
    .render(&net);
    let rvsd = Rvsd::start(Some(&net.ns("d")), &conf, &socket, &net.state_dir());
    start_nginx(&net);
    let mut children = Vec::new();
    serve(&net, &["tcp", "8081"], &mut children);
    serve(&net, &["tcp", "8082", "greet"], &mut children);
    serve(&net, &["udp", "5353"], &mut children);
    serve(&net, &["uoa", "5354"], &mut children);
    serve(&net, &["uoa", "5355"], &mut children);
    for port in [8080, 8081, 8082] {
        wait_listen(&net, port);
    }
    add_service(&rvsd, "-t", 8080, &["--proxy-protocol", "v1"]);
    add_service(&rvsd, "-t", 8081, &["--proxy-protocol", "v2-insecure"]);
    add_service(&rvsd, "-t", 8082, &["--proxy-protocol", "v2"]);
    add_service(&rvsd, "-u", 5353, &["--proxy-protocol", "v2"]);
    add_service(&rvsd, "-u", 5354, &["--uoa", "opp"]);
    add_service(&rvsd, "-u", 5355, &["--uoa", "ipo"]);

    let listing = rvsd.ipvsadm_ok(&["-Ln"]);
    for line in [
        "TCP  198.18.0.100:8080 rr ppv1\n",
        "TCP  198.18.0.100:8081 rr ppv2-insecure\n",
        "UDP  198.18.0.100:5353 rr ppv2\n",
        "UDP  198.18.0.100:5354 rr uoa-opp\n",
        "UDP  198.18.0.100:5355 rr uoa-ipo\n",
    ] {
        assert!(listing.contains(line), "{line:?} missing from\n{listing}");
    }
    let saved = rvsd.ipvsadm_ok(&["-S", "-n"]);
    for line in [
        "-A -t 198.18.0.100:8080 -s rr --proxy-protocol v1\n",
        "-A -u 198.18.0.100:5354 -s rr --uoa opp\n",
    ] {
        assert!(saved.contains(line), "{line:?} missing from\n{saved}");
    }
    // A UDP service cannot take version 1 (text for TCP): ipvsadm's error, nothing changed.
    let o = rvsd.ipvsadm(&[
        "-E",
        "-u",
        &format!("{VIP}:5353"),
        "-s",
        "rr",
        "--proxy-protocol",
        "v1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        rvsd.ipvsadm_ok(&["-Ln"])
            .contains("UDP  198.18.0.100:5353 rr ppv2\n")
    );

    // nginx, PROXY v1: 40 requests, each answered and logged with the client's own address.
    let mut ports = Vec::new();
    for i in 0..40 {
        let o = net.exec(
            "c",
            &[
                "curl",
                "-s",
                "--max-time",
                "5",
                "-w",
                " %{local_ip}:%{local_port}",
                &format!("http://{VIP}:8080/"),
            ],
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{}\nrequest {i} failed: {}",
            rvsd.log_text(),
            String::from_utf8_lossy(&o.stderr)
        );
        // "rsN CLIENT\n LOCAL": the address nginx read is the client's own.
        let mut w = text.split_whitespace();
        let (_, seen, me) = (w.next(), w.next().unwrap_or(""), w.next().unwrap_or(""));
        assert_eq!(seen, me, "request {i}: {text:?}");
        ports.push(me.to_owned());
    }
    let mut logged = Vec::new();
    for r in ["r1", "r2"] {
        let p = net.state_dir().join(format!("nginx-pp-{r}.access"));
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        assert_eq!(text.lines().count(), 20, "{r}: rr splits 20/20\n{text}");
        for l in text.lines() {
            let (client, remote) = l.split_once(' ').unwrap();
            assert_eq!(
                remote, LIP,
                "the connection itself comes from the local address"
            );
            logged.push(client.to_owned());
        }
    }
    logged.sort();
    ports.sort();
    assert_eq!(logged, ports, "every log line names its client");

    // PROXY v2 (insecure mode, the client sends no header of its own): 4 MiB each way.
    const BIG: &str = "4194304";
    let want = {
        let s = script();
        let o = std::process::Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import hashlib,importlib.util as u;s=u.spec_from_file_location('p','{s}');\
                     m=u.module_from_spec(s);s.loader.exec_module(m);\
                     print(hashlib.sha256(m.pattern({BIG})).hexdigest())"
                ),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(want.len(), 64, "pattern digest");
    let up = client(&net, &rvsd, &["up", VIP, "8081", BIG]);
    let (me, reply) = &up[0];
    let w: Vec<&str> = reply.split(' ').collect();
    assert_eq!(
        (w[1], w[2]),
        (me.as_str(), want.as_str()),
        "upload: {reply}"
    );
    let down = client(&net, &rvsd, &["down", VIP, "8081", BIG]);
    assert_eq!(down[0].1, want, "download differs");

    // A server that speaks first (PROXY v2): the header reaches it with the handshake.
    for _ in 0..4 {
        let g = client(&net, &rvsd, &["greet", VIP, "8082"]);
        let (me, reply) = &g[0];
        assert!(
            reply.starts_with("220 rs") && reply.contains(&format!(" {me} | rs")),
            "greeting: {reply}"
        );
        assert!(reply.ends_with(&format!(" {me}")), "{reply}");
    }

    // UDP: PROXY v2 on every datagram; UOA until the server answers (here the first
    // datagram: each waits for its answer), the server remembering the flow's client after.
    for (port, forms) in [
        ("5353", None),
        (
            "5354",
            Some([
                "opp",
                "remembered",
                "remembered",
                "remembered",
                "remembered",
            ]),
        ),
        (
            "5355",
            Some([
                "ipo",
                "remembered",
                "remembered",
                "remembered",
                "remembered",
            ]),
        ),
    ] {
        let replies = client(&net, &rvsd, &["dgram", VIP, port, "hello", "5"]);
        assert_eq!(replies.len(), 5);
        for (k, (me, reply)) in replies.iter().enumerate() {
            let w: Vec<&str> = reply.split(' ').collect();
            assert_eq!(w[1], me, "port {port} datagram {k}: {reply}");
            assert_eq!((w[2], w[3]), ("hello", k.to_string().as_str()), "{reply}");
            if let Some(f) = forms {
                assert_eq!(w[4], f[k], "port {port} datagram {k}: {reply}");
            }
        }
    }

    let text = net.metrics();
    let kind = |k: &str| {
        text.lines()
            .filter(|l| l.starts_with("rvs_worker_client_addr_total") && l.contains(k))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    assert!(kind("kind=\"proxy_tcp\"") >= 46, "{text}");
    assert!(kind("kind=\"proxy_standalone\"") >= 1, "{text}");
    assert_eq!(kind("kind=\"proxy_udp\""), 5, "{text}");
    assert_eq!(kind("kind=\"uoa\""), 2, "{text}");
    let (status, log) = rvsd.stop();
    assert!(status.success(), "rvsd exit {status}:\n{log}");
    assert!(log.contains("all mbufs returned"), "{log}");
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}
