//! rvs-keepalived end to end (issue 13): rvsd on DPDK in the director namespace, programmed by
//! rvs-keepalived from a keepalived file; the checks run from the director's kernel over a
//! management network (veth `m0` 198.18.4.1/24 on the servers' bridge; the real servers also
//! hold 198.18.4.11/.12), with `connect_ip` and `bindto`. Real servers are the test's own HTTP
//! servers, so one can be stopped and started again.
//!
//! - `failover_nat_fullnat_quorum`: NAT (HTTP_GET with digests) and FULLNAT (TCP_CHECK,
//!   inhibit_on_failure) services and a quorum service with a sorry server; one server's HTTP
//!   process stops: out within `delay_loop * retry` + 1 s, 40 requests all succeed on the other;
//!   it starts again: back. Beside them SSL_GET, DNS_CHECK and MISC_CHECK (misc_dynamic)
//!   services, and the notify/quorum/omega scripts.
//! - `reload_and_restart_keep_connections`: SIGHUP with a changed weight, a removed and an added
//!   service while long-lived transfers run through the service; a file with an error is refused
//!   whole; rvs-keepalived stopped and started again; the transfers survive all of it.
//!
//! - `failover_through_kernel_twin`: no management network; the checks go from the director's
//!   kernel through the DPDK ports' kernel twins (`[port.kernel]`) to the real servers' own
//!   addresses; one server stops and starts again as above.
//!
//! Needs root; skips with a printed reason without it (CI runs it for real).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Rvsd, TestNet};

const VIP: &str = "198.18.0.100";
const METRICS: &str = "127.0.0.1:9476";

/// The lab: the test network with a management path, rvsd, the test's own servers.
struct Lab {
    net: TestNet,
    rvsd: Rvsd,
    /// rvsd's configuration text, to start it again.
    rvsd_conf: String,
    servers: BTreeMap<String, Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.servers.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How the director's kernel reaches the real servers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// `m0` on the servers' bridge, 198.18.4.0/24.
    Management,
    /// The DPDK ports' kernel twins (`[port.kernel]`): through rvsd.
    KernelTwin,
}

impl Lab {
    fn up(prefix: &str) -> Lab {
        Self::up_with(prefix, Reach::Management)
    }

    fn up_with(prefix: &str, reach: Reach) -> Lab {
        let net = TestNet::up(prefix);
        let (d, s) = (net.ns("d"), net.ns("s"));
        if reach == Reach::Management {
            Self::management(&net, &d, &s);
        }
        // The test network's HTTP servers listen on the service address only: replace them by
        // the test's own, on every address (the checks may come to 198.18.4.1x).
        for r in ["r1", "r2"] {
            for pid in listeners(&net, r, 80) {
                run_ok(Command::new("kill").arg(pid.to_string()));
            }
        }
        let conf = common::DirectorConf {
            kernel: (reach == Reach::KernelTwin).then_some("rate = 5000, burst = 1000"),
            ..common::DirectorConf::new(1)
        };
        let (conf, socket) = conf.render(&net);
        let rvsd = Rvsd::start(Some(&d), &conf, &socket, &net.state_dir());
        let mut lab = Lab {
            net,
            rvsd,
            rvsd_conf: conf,
            servers: BTreeMap::new(),
        };
        lab.start_http("r1", 80, "www-r1");
        lab.start_http("r2", 80, "www-r2");
        lab
    }

    /// The management network: the director's kernel on the servers' bridge, its own subnet.
    fn management(net: &TestNet, d: &str, s: &str) {
        run_ok(Command::new("ip").args([
            "link", "add", "m0", "netns", d, "type", "veth", "peer", "name", "sw-m", "netns", s,
        ]));
        run_ok(Command::new("ip").args(["-n", s, "link", "set", "sw-m", "master", "br0", "up"]));
        run_ok(Command::new("ip").args(["-n", d, "addr", "add", "198.18.4.1/24", "dev", "m0"]));
        run_ok(Command::new("ip").args(["-n", d, "link", "set", "m0", "up"]));
        for (i, r) in ["r1", "r2"].iter().enumerate() {
            let ip = format!("198.18.4.1{}/24", i + 1);
            run_ok(Command::new("ip").args(["-n", &net.ns(r), "addr", "add", &ip, "dev", "eth0"]));
        }
    }

    /// An HTTP server in namespace `r` on every address, serving `STATE/dir`.
    fn start_http(&mut self, r: &str, port: u16, dir: &str) {
        let www = self.net.state_dir().join(dir);
        let child = self
            .net
            .command(r)
            .args([
                "python3",
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "0.0.0.0",
            ])
            .arg("--directory")
            .arg(&www)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.servers.insert(format!("{r}:{port}"), child);
        wait_for(Duration::from_secs(10), || {
            !listeners(&self.net, r, port).is_empty()
        })
        .unwrap_or_else(|| panic!("http server {r}:{port} did not start"));
    }

    /// Stop a server; returns when it was killed (epoch seconds).
    fn stop_server(&mut self, r: &str, port: u16) -> f64 {
        let mut c = self.servers.remove(&format!("{r}:{port}")).unwrap();
        let killed = epoch_now();
        c.kill().unwrap();
        c.wait().unwrap();
        wait_for(Duration::from_secs(5), || {
            listeners(&self.net, r, port).is_empty()
        })
        .unwrap();
        killed
    }

    /// One request through the VIP. The generous timeout is for a frame lost on a busy shared
    /// machine (a TCP retransmission); that every request succeeds is what the tests check.
    fn curl(&self, port: u16) -> Result<String, String> {
        let url = format!("http://{VIP}:{port}/");
        let o = self
            .net
            .exec("c", &["curl", "-s", "--max-time", "10", &url]);
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
        } else {
            Err(format!("curl {url}: {}", o.status))
        }
    }

    /// `n` requests to `port`: every answer, counted.
    fn requests(&self, port: u16, n: usize) -> BTreeMap<String, usize> {
        let mut hits = BTreeMap::new();
        for i in 0..n {
            let body = self
                .curl(port)
                .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", self.rvsd.ipvsadm_ok(&["-Ln"])));
            *hits.entry(body).or_default() += 1;
        }
        hits
    }

    fn metrics(&self) -> String {
        let o = self.net.exec(
            "d",
            &[
                "curl",
                "-s",
                "--max-time",
                "3",
                &format!("http://{METRICS}/metrics"),
            ],
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// Pids of the processes listening on TCP `port` in namespace `r`.
fn listeners(net: &TestNet, r: &str, port: u16) -> Vec<u32> {
    let o = net.exec(r, &["ss", "-ltnpH", &format!("sport = :{port}")]);
    let text = String::from_utf8_lossy(&o.stdout);
    text.split("pid=")
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .collect()
}

/// Seconds since the epoch, now.
fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// How long after `since` (epoch seconds) rvs-keepalived logged a line containing each of
/// `needles` (the latest of them): its own reaction time, read from its log's timestamps, so the
/// test's polling of ipvsadm on a busy machine does not count.
fn logged_after(log: &str, needles: &[&str], since: f64) -> Option<f64> {
    let mut latest: f64 = 0.0;
    for needle in needles {
        let ts = log
            .lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| {
                let stamp = l.split_whitespace().next()?;
                let out = Command::new("date")
                    .args(["-u", "-d", stamp, "+%s.%N"])
                    .output()
                    .ok()?;
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .find(|t| *t >= since)?;
        latest = latest.max(ts - since);
    }
    Some(latest)
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A running rvs-keepalived; SIGTERM and reaped on drop.
struct Keepalived {
    child: Option<Child>,
    log: PathBuf,
}

impl Keepalived {
    fn start(lab: &Lab, conf: &Path, log_name: &str) -> Keepalived {
        let log = lab.net.state_dir().join(log_name);
        let f = std::fs::File::create(&log).unwrap();
        let child = lab
            .net
            .command("d")
            .arg(common::bin("rvs-keepalived"))
            .args(["-n", "-l", "-D", "-f"])
            .arg(conf)
            .arg("--socket")
            .arg(&lab.rvsd.socket)
            .args(["--metrics", METRICS])
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Keepalived {
            child: Some(child),
            log,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        run_ok(Command::new("kill").args([sig, &pid]));
    }

    fn alive(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM, wait (bounded); the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let mut c = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// The dest lines of one service in `ipvsadm -Ln`: (`ADDR:PORT`, weight).
fn dests(listing: &str, service: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in listing.lines() {
        if l.starts_with("TCP") || l.starts_with("UDP") {
            inside = l.split_whitespace().nth(1) == Some(service);
            continue;
        }
        if inside && let Some(rest) = l.trim_start().strip_prefix("-> ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() >= 3 && f[0] != "RemoteAddress:Port" {
                out.push((f[0].to_owned(), f[2].parse().unwrap()));
            }
        }
    }
    out
}

fn md5_of(text: &str) -> String {
    rvs_md5(text.as_bytes())
}

/// The digest the HTTP check compares (its own implementation is tested against RFC 1321).
fn rvs_md5(data: &[u8]) -> String {
    let out = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A checker block reaching real server `n` (1 or 2) over the management network.
fn tcp_check(n: u8, port: u16) -> String {
    format!(
        "TCP_CHECK {{\n            connect_ip 198.18.4.1{n}\n            connect_port {port}\n            bindto 198.18.4.1\n            connect_timeout 1\n            retry 2\n            delay_before_retry 1\n        }}"
    )
}

fn failover_conf(lab: &Lab) -> String {
    let st = lab.net.state_dir().display().to_string();
    let http = |n: u8| {
        let body =
            std::fs::read_to_string(lab.net.state_dir().join(format!("www-r{n}/index.html")))
                .unwrap();
        format!(
            "HTTP_GET {{\n            url {{\n                path /index.html\n                status_code 200\n                digest {}\n            }}\n            connect_ip 198.18.4.1{n}\n            bindto 198.18.4.1\n            connect_timeout 1\n            retry 2\n            delay_before_retry 1\n        }}",
            md5_of(&body)
        )
    };
    format!(
        "! failover test: NAT with HTTP_GET, FULLNAT with TCP_CHECK, quorum with a sorry server
global_defs {{
    router_id RVS_E2E
}}
vrrp_instance VI_1 {{
    state MASTER
    interface m0
    virtual_router_id 51
    virtual_ipaddress {{
        {VIP}
    }}
}}
local_address_group lg1 {{
    198.18.1.5 dp1
}}
virtual_server {VIP} 80 {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.18.1.11 80 {{
        weight 1
        notify_up \"/usr/bin/touch {st}/notify-up-rs1\"
        notify_down \"/usr/bin/touch {st}/notify-down-rs1\"
        {}
    }}
    real_server 198.18.1.12 80 {{
        weight 1
        {}
    }}
}}
virtual_server {VIP} 8080 {{
    delay_loop 1
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    laddr_group_name lg1
    inhibit_on_failure
    real_server 198.18.1.11 80 {{
        weight 2
        {}
    }}
    real_server 198.18.1.12 80 {{
        weight 2
        {}
    }}
}}
virtual_server {VIP} 81 {{
    delay_loop 1
    lvs_sched rr
    lvs_method NAT
    protocol TCP
    quorum 2
    sorry_server 198.18.1.12 8000
    quorum_up \"/usr/bin/touch {st}/quorum-up\"
    quorum_down \"/usr/bin/touch {st}/quorum-down\"
    omega
    real_server 198.18.1.11 80 {{
        weight 1
        {}
    }}
    real_server 198.18.1.12 80 {{
        weight 1
        {}
    }}
}}
virtual_server {VIP} 83 {{
    delay_loop 1
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 198.18.1.12 80 {{
        weight 1
        MISC_CHECK {{
            misc_path \"/bin/sh {st}/weight.sh\"
            misc_timeout 2
            misc_dynamic
        }}
    }}
}}
virtual_server {VIP} 53 {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol UDP
    ops
    real_server 198.18.1.11 53 {{
        DNS_CHECK {{
            type A
            name rs1.example.invalid
            connect_ip 198.18.4.11
            connect_port 5353
            connect_timeout 1
        }}
    }}
    real_server 198.18.1.12 53 {{
        DNS_CHECK {{
            connect_ip 198.18.4.12
            connect_port 5353
            connect_timeout 1
        }}
    }}
}}
virtual_server {VIP} 443 {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.18.1.11 443 {{
        weight 1
        SSL_GET {{
            url {{
                path /index.html
                digest {}
            }}
            virtualhost rs1.example.invalid
            connect_ip 198.18.4.11
            connect_timeout 1
            retry 2
            delay_before_retry 1
        }}
    }}
    real_server 198.18.1.12 443 {{
        weight 1
        SSL_GET {{
            url {{
                path /missing.html
            }}
            connect_ip 198.18.4.12
            connect_timeout 1
            retry 2
            delay_before_retry 1
        }}
    }}
}}
",
        http(1),
        http(2),
        tcp_check(1, 80),
        tcp_check(2, 80),
        tcp_check(1, 80),
        tcp_check(2, 80),
        md5_of("rs1\n"),
    )
}

/// A DNS responder in namespace `r` on UDP 5353 answering every query with `rcode` and no
/// records.
fn start_dns(lab: &mut Lab, r: &str, rcode: u8) {
    let server = "import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 5353))
rcode = int(sys.argv[1])
while True:
    q, peer = s.recvfrom(512)
    if len(q) >= 12:
        s.sendto(q[:2] + bytes([0x81, 0x80 | rcode]) + q[4:6] + bytes(6) + q[12:], peer)
";
    let child = lab
        .net
        .command(r)
        .args(["python3", "-c", server, &rcode.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.servers.insert(format!("{r}:5353"), child);
    wait_for(Duration::from_secs(10), || {
        let o = lab.net.exec(r, &["ss", "-lunH", "sport = :5353"]);
        !o.stdout.is_empty()
    })
    .unwrap_or_else(|| panic!("dns responder {r}:5353 did not start"));
}

/// An HTTPS server in namespace `r` on port 443 serving `STATE/www-r`, with a self-signed key
/// made for the test.
fn start_https(lab: &mut Lab, r: &str) {
    let dir = lab.net.state_dir();
    let (cert, key) = (dir.join("https.crt"), dir.join("https.key"));
    if !cert.exists() {
        run_ok(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=rs.example.invalid", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
    }
    let server = "import functools, http.server, ssl, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
httpd = http.server.HTTPServer(('0.0.0.0', 443), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
httpd.serve_forever()
";
    let child = lab
        .net
        .command(r)
        .args(["python3", "-c", server])
        .arg(dir.join(format!("www-{r}")))
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.servers.insert(format!("{r}:443"), child);
    wait_for(Duration::from_secs(10), || {
        !listeners(&lab.net, r, 443).is_empty()
    })
    .unwrap_or_else(|| panic!("https server {r}:443 did not start"));
}

#[test]
fn failover_nat_fullnat_quorum() {
    require_netns!();
    let _serial = common::serial();
    let mut lab = Lab::up("rvska");
    // The sorry server: a third HTTP server, on rs2's port 8000.
    let sorry = lab.net.state_dir().join("www-sorry");
    std::fs::create_dir_all(&sorry).unwrap();
    std::fs::write(sorry.join("index.html"), "sorry\n").unwrap();
    lab.start_http("r2", 8000, "www-sorry");
    start_https(&mut lab, "r1");
    start_https(&mut lab, "r2");
    // DNS_CHECK: rs1's responder says NXDOMAIN, rs2's answers.
    start_dns(&mut lab, "r1", 3);
    start_dns(&mut lab, "r2", 0);
    // MISC_CHECK with misc_dynamic: the program's exit code - 2 is the weight.
    let weight_sh = lab.net.state_dir().join("weight.sh");
    std::fs::write(&weight_sh, "exit 7\n").unwrap();
    let conf = lab.net.state_dir().join("keepalived.conf");
    std::fs::write(&conf, failover_conf(&lab)).unwrap();
    let mut ka = Keepalived::start(&lab, &conf, "keepalived.log");

    let all_up = |l: &str| {
        dests(l, &format!("{VIP}:80"))
            == [("198.18.1.11:80".into(), 1), ("198.18.1.12:80".into(), 1)]
            && dests(l, &format!("{VIP}:8080")).iter().all(|d| d.1 == 2)
            && dests(l, &format!("{VIP}:8080")).len() == 2
            && dests(l, &format!("{VIP}:81")).len() == 2
    };
    let programmed = wait_for(Duration::from_secs(10), || {
        all_up(&lab.rvsd.ipvsadm_ok(&["-Ln"]))
    });
    assert!(
        programmed.is_some(),
        "services not programmed:\n{}\n{}",
        lab.rvsd.ipvsadm_ok(&["-Ln"]),
        ka.log_text()
    );
    eprintln!(
        "programmed in {programmed:?}:\n{}",
        lab.rvsd.ipvsadm_ok(&["-Ln"])
    );
    let saved = lab.rvsd.ipvsadm_ok(&["-S", "-n"]);
    for line in [
        "-A -t 198.18.0.100:80 -s rr",
        "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -m -w 1",
        "-A -t 198.18.0.100:8080 -s rr",
        "-P -t 198.18.0.100:8080 -z 198.18.1.5 -F dp1",
    ] {
        assert!(saved.contains(line), "{line} not in ipvsadm -S:\n{saved}");
    }
    for port in [80, 8080, 81] {
        let hits = lab.requests(port, 20);
        assert_eq!(hits.len(), 2, "port {port}: {hits:?}");
    }
    // MISC_CHECK: exit 7 gives weight 5, exit 4 weight 2, exit 0 leaves it, exit 1 takes the
    // server out, exit 0 brings it back with the weight it had.
    let misc = format!("{VIP}:83");
    let rs2 = |w: u32| vec![("198.18.1.12:80".to_owned(), w)];
    for (code, want) in [
        (7, rs2(5)),
        (4, rs2(2)),
        (0, rs2(2)),
        (1, vec![]),
        (0, rs2(2)),
    ] {
        std::fs::write(&weight_sh, format!("exit {code}\n")).unwrap();
        // Two check rounds, so that "unchanged" is seen to hold.
        std::thread::sleep(Duration::from_millis(2100));
        let seen = wait_for(Duration::from_secs(10), || {
            dests(&lab.rvsd.ipvsadm_ok(&["-Ln"]), &misc) == want
        });
        assert!(
            seen.is_some(),
            "exit {code}: {}\n{}",
            lab.rvsd.ipvsadm_ok(&["-Ln"]),
            ka.log_text()
        );
    }
    // DNS_CHECK: rs1 (NXDOMAIN) is taken out of the UDP service, rs2 (an answer) stays.
    let dns = wait_for(Duration::from_secs(10), || {
        let l = lab.rvsd.ipvsadm_ok(&["-Ln"]);
        l.contains(&format!("UDP  {VIP}:53 rr ops"))
            && dests(&l, &format!("{VIP}:53")) == [("198.18.1.12:53".to_owned(), 1)]
    });
    assert!(
        dns.is_some(),
        "{}\n{}",
        lab.rvsd.ipvsadm_ok(&["-Ln"]),
        ka.log_text()
    );
    assert!(
        ka.log_text().contains("real server 198.18.1.11:53 is DOWN, removed (DNS_CHECK: 198.18.4.11:5353: answer with error code 3)"),
        "{}",
        ka.log_text()
    );
    // SSL_GET: rs1 passes (status and digest over TLS); rs2 answers 404 and is taken out.
    let https = format!("{VIP}:443");
    let tls = wait_for(Duration::from_secs(10), || {
        dests(&lab.rvsd.ipvsadm_ok(&["-Ln"]), &https) == [("198.18.1.11:443".into(), 1)]
    });
    assert!(
        tls.is_some(),
        "{}\n{}",
        lab.rvsd.ipvsadm_ok(&["-Ln"]),
        ka.log_text()
    );
    let log = ka.log_text();
    assert!(
        log.contains("real server 198.18.1.12:443 is DOWN, removed (SSL_GET: https://198.18.4.12:443/missing.html: status 404 not accepted)"),
        "{log}"
    );
    assert!(!log.contains("198.18.1.11:443 is DOWN"), "{log}");
    let o = lab.net.exec(
        "c",
        &[
            "curl",
            "-sk",
            "--max-time",
            "10",
            &format!("https://{https}/"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "rs1", "{o:?}");

    // rs1's HTTP process stops: out within delay_loop * retry + 1 s = 3 s.
    let killed = lab.stop_server("r1", 80);
    let stopped = Instant::now();
    let out = |l: &str| {
        dests(l, &format!("{VIP}:80")) == [("198.18.1.12:80".into(), 1)]
            && dests(l, &format!("{VIP}:8080"))
                == [("198.18.1.11:80".into(), 0), ("198.18.1.12:80".into(), 2)]
            && dests(l, &format!("{VIP}:81")) == [("198.18.1.12:8000".into(), 1)]
    };
    let gone = wait_for(Duration::from_secs(10), || {
        out(&lab.rvsd.ipvsadm_ok(&["-Ln"]))
    });
    let listing = lab.rvsd.ipvsadm_ok(&["-Ln"]);
    let took = stopped.elapsed();
    assert!(
        gone.is_some(),
        "rs1 not taken out:\n{listing}\n{}",
        ka.log_text()
    );
    let log = ka.log_text();
    let decided = logged_after(
        &log,
        &[
            "198.18.0.100:80: real server 198.18.1.11:80 is DOWN",
            "198.18.0.100:8080: real server 198.18.1.11:80 is DOWN",
            "198.18.0.100:81: real server 198.18.1.11:80 is DOWN",
        ],
        killed,
    )
    .unwrap_or_else(|| panic!("no DOWN logged:\n{log}"));
    eprintln!(
        "rs1 out of all three services: logged DOWN {decided:.3} s after its HTTP server was killed, \
         seen in ipvsadm -Ln {took:?} after it stopped listening:\n{listing}"
    );
    assert!(decided <= 3.0, "DOWN {decided:.3} s after the kill:\n{log}");
    // notify_down and quorum_down ran (and not their opposites).
    let st = lab.net.state_dir();
    let ran = |f: &str| wait_for(Duration::from_secs(5), || st.join(f).exists()).is_some();
    assert!(ran("notify-down-rs1") && ran("quorum-down"), "{log}");
    assert!(!st.join("notify-up-rs1").exists() && !st.join("quorum-up").exists());
    std::fs::remove_file(st.join("quorum-down")).unwrap();
    // NAT: removed; FULLNAT (inhibit_on_failure): weight 0; quorum lost: the sorry server alone.
    assert_eq!(
        lab.requests(80, 40),
        BTreeMap::from([("rs2".to_owned(), 40)])
    );
    assert_eq!(
        lab.requests(8080, 40),
        BTreeMap::from([("rs2".to_owned(), 40)])
    );
    assert_eq!(
        lab.requests(81, 10),
        BTreeMap::from([("sorry".to_owned(), 10)])
    );
    let log = ka.log_text();
    assert!(
        log.contains("real server 198.18.1.11:80 is DOWN, removed (HTTP_GET: http://198.18.4.11:80/index.html: connect: Connection refused"),
        "{log}"
    );
    assert!(
        log.contains(
            "is DOWN, weight 0 (inhibit_on_failure) (TCP_CHECK: connect to 198.18.4.11:80"
        ),
        "{log}"
    );
    assert!(
        log.contains("virtual server 198.18.0.100:81: quorum 2 lost, sorry server in"),
        "{log}"
    );
    let m = lab.metrics();
    assert!(
        m.contains("rvs_dest_up{service=\"tcp/198.18.0.100:80\",dest=\"198.18.1.11:80\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("rvs_dest_up{service=\"tcp/198.18.0.100:80\",dest=\"198.18.1.12:80\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("rvs_dest_transitions_total{service=\"tcp/198.18.0.100:8080\",dest=\"198.18.1.11:80\",to=\"down\"} 1"),
        "{m}"
    );

    // It starts again: back on the first successful check (within delay_loop + 1 s).
    let launched = epoch_now();
    lab.start_http("r1", 80, "www-r1");
    let started = Instant::now();
    let back = wait_for(Duration::from_secs(10), || {
        all_up(&lab.rvsd.ipvsadm_ok(&["-Ln"]))
    });
    let took = started.elapsed();
    assert!(
        back.is_some(),
        "rs1 not back:\n{}\n{}",
        lab.rvsd.ipvsadm_ok(&["-Ln"]),
        ka.log_text()
    );
    let log = ka.log_text();
    let decided = logged_after(
        &log,
        &[
            "198.18.0.100:80: real server 198.18.1.11:80 is UP",
            "198.18.0.100:8080: real server 198.18.1.11:80 is UP",
            "198.18.0.100:81: real server 198.18.1.11:80 is UP",
        ],
        launched,
    )
    .unwrap_or_else(|| panic!("no UP logged:\n{log}"));
    eprintln!(
        "rs1 back: logged UP {decided:.3} s after its HTTP server was started, seen in ipvsadm -Ln \
         {took:?} after it listened"
    );
    // delay_loop (1 s) after it listens, plus Python's start-up on a busy machine.
    assert!(decided <= 5.0, "UP {decided:.3} s after the start:\n{log}");
    assert!(ran("notify-up-rs1") && ran("quorum-up"), "{log}");
    let hits = lab.requests(81, 10);
    assert!(!hits.contains_key("sorry"), "{hits:?}");
    assert!(ka.log_text().contains("quorum 2 regained"));
    let m = lab.metrics();
    assert!(
        m.contains("rvs_dest_transitions_total{service=\"tcp/198.18.0.100:80\",dest=\"198.18.1.11:80\",to=\"up\"} 1"),
        "{m}"
    );
    assert!(ka.alive());
    assert!(!st.join("quorum-down").exists());
    assert!(ka.stop().success());
    // omega on :81: stopping runs quorum_down (its quorum was held).
    assert!(ran("quorum-down"), "{}", ka.log_text());
    // Stopping rvs-keepalived leaves the services in rvsd.
    assert!(all_up(&lab.rvsd.ipvsadm_ok(&["-Ln"])));
}

/// A file with the stream service (weight `w1` for rs1) and, optionally, the web services.
fn reload_conf(w1: u32, web: u16) -> String {
    format!(
        "virtual_server {VIP} 9000 {{
    delay_loop 1
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 198.18.1.11 9000 {{
        weight {w1}
        {}
    }}
    real_server 198.18.1.12 9000 {{
        weight 1
        {}
    }}
}}
virtual_server {VIP} {web} {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.18.1.11 80 {{
        {}
    }}
}}
",
        tcp_check(1, 9000),
        tcp_check(2, 9000),
        tcp_check(1, 80),
    )
}

/// Long-lived transfers through VIP:9000 from the client: (child, what to run).
fn transfers(lab: &Lab, count: u32, size: u32, rate: u32) -> Child {
    let script = common::repo().join("scripts/testnet-stream.py");
    lab.net
        .command("c")
        .arg("python3")
        .arg(script)
        .args(["client", VIP, "9000"])
        .args([count, size, rate].map(|n| n.to_string()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn transfers_done(child: Child, count: u32) -> String {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains(&format!("transfers {count} 0")),
        "transfers broke: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn reload_and_restart_keep_connections() {
    require_netns!();
    let _serial = common::serial();
    let mut lab = Lab::up("rvskr");
    let script = common::repo().join("scripts/testnet-stream.py");
    for (r, name) in [("r1", "rs1"), ("r2", "rs2")] {
        let child = lab
            .net
            .command(r)
            .arg("python3")
            .arg(&script)
            .args(["server", name, "9000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        lab.servers.insert(format!("{r}:9000"), child);
        wait_for(Duration::from_secs(10), || {
            !listeners(&lab.net, r, 9000).is_empty()
        })
        .unwrap();
    }
    let conf = lab.net.state_dir().join("keepalived.conf");
    std::fs::write(&conf, reload_conf(1, 80)).unwrap();
    let mut ka = Keepalived::start(&lab, &conf, "keepalived.log");
    let stream = format!("{VIP}:9000");
    let ready = wait_for(Duration::from_secs(10), || {
        let l = lab.rvsd.ipvsadm_ok(&["-Ln"]);
        dests(&l, &stream).len() == 2 && dests(&l, &format!("{VIP}:80")).len() == 1
    });
    assert!(
        ready.is_some(),
        "{}\n{}",
        lab.rvsd.ipvsadm_ok(&["-Ln"]),
        ka.log_text()
    );

    // SIGHUP while 4 transfers of 6 s run: rs1's weight 1 -> 3, service :80 removed, :82 added.
    let t = transfers(&lab, 4, 300_000, 50_000);
    std::thread::sleep(Duration::from_millis(1500));
    let before = lab.rvsd.ipvsadm_ok(&["-Lnc"]);
    let established = before.lines().filter(|l| l.contains("ESTABLISHED")).count();
    assert_eq!(established, 4, "{before}");
    std::fs::write(&conf, reload_conf(3, 82)).unwrap();
    ka.signal("-HUP");
    let reloaded = wait_for(Duration::from_secs(10), || {
        let l = lab.rvsd.ipvsadm_ok(&["-Ln"]);
        dests(&l, &stream).contains(&("198.18.1.11:9000".into(), 3))
            && !l.contains(&format!("{VIP}:80 "))
            && dests(&l, &format!("{VIP}:82")) == [("198.18.1.11:80".into(), 1)]
    });
    assert!(
        reloaded.is_some(),
        "{}\n{}",
        lab.rvsd.ipvsadm_ok(&["-Ln"]),
        ka.log_text()
    );
    eprintln!("reload applied in {reloaded:?}");
    let text = transfers_done(t, 4);
    eprintln!(
        "transfers across the reload: {}",
        text.lines().last().unwrap_or("")
    );
    // The stream service's two checkers kept running with their state; :80's stopped, :82's
    // started.
    let log = ka.log_text();
    assert!(
        log.contains("checkers kept 2, started 1, stopped 1"),
        "{log}"
    );
    let saved = lab.rvsd.ipvsadm_ok(&["-S", "-n"]);
    assert!(
        saved.contains("-a -t 198.18.0.100:9000 -r 198.18.1.11:9000 -m -w 3"),
        "{saved}"
    );
    assert!(saved.contains("-A -t 198.18.0.100:9000 -s wrr"), "{saved}");

    // A file with an error is refused whole; the running state stays.
    let good = reload_conf(3, 82);
    let bad = good.replacen("weight 3", "weight 3\n        weight x", 1);
    let bad_line = bad.lines().position(|l| l.contains("weight x")).unwrap() + 1;
    std::fs::write(&conf, &bad).unwrap();
    ka.signal("-HUP");
    let want = format!(
        "reload refused, the running configuration stays: {}:{bad_line}: 'weight': invalid number 'x'",
        conf.display()
    );
    let refused = wait_for(Duration::from_secs(5), || ka.log_text().contains(&want));
    assert!(refused.is_some(), "{want} not in:\n{}", ka.log_text());
    assert_eq!(lab.rvsd.ipvsadm_ok(&["-S", "-n"]), saved);
    assert!(ka.alive());
    std::fs::write(&conf, &good).unwrap();

    // rvs-keepalived stops and starts again while transfers run: rvsd keeps the services, the
    // new process takes them over as they are.
    let t = transfers(&lab, 4, 300_000, 50_000);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(ka.stop().success(), "{}", ka.log_text());
    assert_eq!(lab.rvsd.ipvsadm_ok(&["-S", "-n"]), saved);
    let ka2 = Keepalived::start(&lab, &conf, "keepalived-2.log");
    let ka2_started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.rvsd.ipvsadm_ok(&["-S", "-n"]),
        saved,
        "{}",
        ka2.log_text()
    );
    let text = transfers_done(t, 4);
    eprintln!(
        "transfers across the restart: {}",
        text.lines().last().unwrap_or("")
    );
    // The new process sent rvsd nothing (`-D` logs every request): it took the services over as
    // they were, and its periodic comparison with rvsd (every 5 s) found nothing to correct.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(ka2_started.elapsed()));
    let log2 = ka2.log_text();
    assert!(
        !log2.contains("to rvsd:") && !log2.contains("rvsd refused"),
        "{log2}"
    );

    // rvsd dies and starts again empty: rvs-keepalived notices (it compares every 5 s) and
    // programs everything again.
    lab.rvsd.sigkill();
    std::thread::sleep(Duration::from_millis(500));
    let socket = lab.rvsd.socket.clone();
    let d = lab.net.ns("d");
    lab.rvsd = Rvsd::start(Some(&d), &lab.rvsd_conf, &socket, &lab.net.state_dir());
    let restarted = Instant::now();
    let back = wait_for(Duration::from_secs(20), || {
        lab.rvsd.ipvsadm_ok(&["-S", "-n"]) == saved
    });
    assert!(
        back.is_some(),
        "{}\n{}",
        lab.rvsd.ipvsadm_ok(&["-S", "-n"]),
        ka2.log_text()
    );
    eprintln!(
        "services back in a restarted rvsd {:?} after it answered",
        restarted.elapsed()
    );
}

#[test]
fn failover_through_kernel_twin() {
    require_netns!();
    let _serial = common::serial();
    let mut lab = Lab::up_with("rvskt", Reach::KernelTwin);
    // Two checkers per real server, to the real server's own address: only rvsd's ports (and
    // their twins) lead there.
    let rs = |n: u8| {
        format!(
            "    real_server 198.18.1.1{n} 80 {{
        weight 1
        TCP_CHECK {{
            connect_timeout 1
            retry 2
            delay_before_retry 1
        }}
        HTTP_GET {{
            url {{
                path /index.html
            }}
            connect_timeout 1
            retry 2
            delay_before_retry 1
        }}
    }}
"
        )
    };
    let text = format!(
        "virtual_server {VIP} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n{}{}}}\n",
        rs(1),
        rs(2)
    );
    let conf = lab.net.state_dir().join("keepalived.conf");
    std::fs::write(&conf, text).unwrap();
    let ka = Keepalived::start(&lab, &conf, "keepalived.log");
    let svc = format!("{VIP}:80");
    let both = [
        ("198.18.1.11:80".to_owned(), 1),
        ("198.18.1.12:80".to_owned(), 1),
    ];
    let up = wait_for(Duration::from_secs(10), || {
        dests(&lab.rvsd.ipvsadm_ok(&["-Ln"]), &svc) == both
    });
    assert!(
        up.is_some(),
        "{}\n{}",
        lab.rvsd.ipvsadm_ok(&["-Ln"]),
        ka.log_text()
    );
    assert_eq!(lab.requests(80, 20).len(), 2);

    let killed = lab.stop_server("r1", 80);
    let stopped = Instant::now();
    let gone = wait_for(Duration::from_secs(10), || {
        dests(&lab.rvsd.ipvsadm_ok(&["-Ln"]), &svc) == [("198.18.1.12:80".to_owned(), 1)]
    });
    let took = stopped.elapsed();
    assert!(
        gone.is_some(),
        "{}\n{}",
        lab.rvsd.ipvsadm_ok(&["-Ln"]),
        ka.log_text()
    );
    let log = ka.log_text();
    let decided = logged_after(&log, &["real server 198.18.1.11:80 is DOWN"], killed)
        .unwrap_or_else(|| panic!("no DOWN logged:\n{log}"));
    eprintln!(
        "through the kernel twin: rs1 logged DOWN {decided:.3} s after its HTTP server was killed, \
         seen in ipvsadm -Ln {took:?} after it stopped listening"
    );
    assert!(decided <= 3.0, "DOWN {decided:.3} s after the kill:\n{log}");
    assert_eq!(
        lab.requests(80, 40),
        BTreeMap::from([("rs2".to_owned(), 40)])
    );
    let log = ka.log_text();
    assert!(
        log.contains("real server 198.18.1.11:80 is DOWN, removed (TCP_CHECK: connect to 198.18.1.11:80: Connection refused"),
        "{log}"
    );
    assert!(
        log.contains("HTTP_GET tcp/198.18.0.100:80: http://198.18.1.11:80/index.html: connect: Connection refused"),
        "{log}"
    );

    let launched = epoch_now();
    lab.start_http("r1", 80, "www-r1");
    let started = Instant::now();
    let back = wait_for(Duration::from_secs(10), || {
        dests(&lab.rvsd.ipvsadm_ok(&["-Ln"]), &svc) == both
    });
    let took = started.elapsed();
    assert!(
        back.is_some(),
        "{}\n{}",
        lab.rvsd.ipvsadm_ok(&["-Ln"]),
        ka.log_text()
    );
    let log = ka.log_text();
    let decided = logged_after(&log, &["real server 198.18.1.11:80 is UP"], launched)
        .unwrap_or_else(|| panic!("no UP logged:\n{log}"));
    eprintln!(
        "through the kernel twin: rs1 logged UP {decided:.3} s after its HTTP server was started, \
         seen in ipvsadm -Ln {took:?} after it listened"
    );
    assert!(decided <= 5.0, "UP {decided:.3} s after the start:\n{log}");
    // The checks went through rvsd: its twins counted the frames the kernel sent.
    let links = Command::new(common::bin("rvsctl"))
        .args(["-s", "link", "show"])
        .env("RVS_SOCKET", &lab.rvsd.socket)
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    let lines: Vec<&str> = links.lines().collect();
    let twin = lines
        .iter()
        .position(|l| l.trim_start().starts_with("kernel dp1 "))
        .unwrap_or_else(|| panic!("no twin of dp1:\n{links}"));
    let counts: Vec<u64> = lines[twin + 2]
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    eprintln!(
        "dp1's twin: to kernel {} packets, from kernel {} packets",
        counts[1], counts[3]
    );
    assert!(counts[1] > 0 && counts[3] > 0, "{links}");
}
