//! End-to-end: the built `ipvsadm` binary against a fake rvsd (a thread serving a Unix socket in
//! a temp dir, answering canned replies and recording every request).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use ctl::proto::{
    DestInfo, DestSpec, Envelope, Errno, ErrorReply, Forward, Info, Protocol, Rates, Reply,
    Request, ServiceInfo, ServiceKey, ServiceSpec, Stats, Timeouts, TunSpec,
};

type Responder = Box<dyn Fn(&Request) -> Reply + Send>;

struct FakeDaemon {
    dir: PathBuf,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeDaemon {
    fn start(name: &str, respond: Responder) -> Self {
        let dir = std::env::temp_dir().join(format!("rvs-ipvsadm-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("rvsd.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut writer = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let env: Envelope = serde_json::from_str(&line).unwrap();
                    assert_eq!(env.version, ctl::proto::PROTOCOL_VERSION);
                    let reply = respond(&env.request);
                    log.lock().unwrap().push(env.request);
                    let mut out = serde_json::to_string(&reply).unwrap();
                    out.push('\n');
                    if writer.write_all(out.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        });
        FakeDaemon {
            dir,
            socket,
            requests,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run_at(&self.socket, args, stdin)
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_at(socket: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipvsadm"))
        .args(args)
        .env("RVS_SOCKET", socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(_: &Request) -> Reply {
    Reply::Ok
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn table(req: &Request) -> Reply {
    match req {
        Request::GetInfo => Reply::Info(Info {
            version_code: 0x010201,
            conn_tab_size: 4096,
        }),
        Request::ListServices { service: None } => Reply::Services(vec![ServiceInfo {
            refused: Default::default(),
            access: Default::default(),
            spec: ServiceSpec {
                limits: Default::default(),
                key: tcp("10.0.0.1", 80),
                scheduler: "wlc".into(),
                sched_flags: vec![],
                persistent: Some(360),
                netmask: 0xffff_ff00,
                pe: None,
                ops: false,
                synproxy: false,
                client_addr: Default::default(),
            },
            stats: Stats::default(),
            rates: Rates::default(),
            dests: vec![
                dest("192.168.1.12", 8080, 3, 5, 7),
                dest("192.168.1.11", 80, 1, 12, 40),
            ],
        }]),
        Request::ListServices { service: Some(_) } => Reply::Error(ErrorReply {
            errno: Errno::Esrch,
            message: "no such service".into(),
        }),
        Request::GetTimeouts => Reply::Timeouts(Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300,
        }),
        _ => Reply::Ok,
    }
}

fn dest(addr: &str, port: u16, weight: u32, act: u32, inact: u32) -> DestInfo {
    DestInfo {
        spec: DestSpec {
            addr: addr.parse().unwrap(),
            port,
            forward: Forward::Masq,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            tun: TunSpec::default(),
        },
        active_conns: act,
        inact_conns: inact,
        persist_conns: 0,
        stats: Stats::default(),
        rates: Rates::default(),
    }
}

#[test]
fn add_service_sends_the_request() {
    let d = FakeDaemon::start("add", Box::new(ok));
    let out = d.run(&["-A", "-t", "10.0.0.1:80", "-s", "rr", "-p"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert_eq!(
        d.requests(),
        vec![Request::AddService(ServiceSpec {
            limits: Default::default(),
            key: tcp("10.0.0.1", 80),
            scheduler: "rr".into(),
            sched_flags: vec![],
            persistent: Some(360),
            netmask: 0xffff_ffff,
            pe: None,
            ops: false,
            synproxy: false,
            client_addr: Default::default(),
        })]
    );
}

#[test]
fn add_dest_sends_the_request() {
    let d = FakeDaemon::start("adddest", Box::new(ok));
    let out = d.run(&[
        "-a",
        "-t",
        "10.0.0.1:80",
        "-r",
        "10.1.0.1:8080",
        "-m",
        "-w",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        d.requests(),
        vec![Request::AddDest {
            service: tcp("10.0.0.1", 80),
            dest: DestSpec {
                addr: "10.1.0.1".parse().unwrap(),
                port: 8080,
                forward: Forward::Masq,
                weight: 5,
                u_threshold: 0,
                l_threshold: 0,
                tun: TunSpec::default(),
            },
        }]
    );
}

#[test]
fn daemon_errors_use_ipvsadm_texts_and_exit_255() {
    let cases: [(&[&str], Errno, &str); 13] = [
        (
            &["-A", "-t", "10.0.0.1:80", "-s", "nosuch"],
            Errno::Enoent,
            "Scheduler or persistence engine not found\n",
        ),
        (
            &["-e", "-t", "10.0.0.1:80", "-r", "10.1.0.1"],
            Errno::Enoent,
            "No such destination\n",
        ),
        (
            &["-C"],
            Errno::Eperm,
            "Permission denied (you must be root)\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80"],
            Errno::Einval,
            "Invalid operation: x\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80"],
            Errno::Enomem,
            "Memory allocation problem\n",
        ),
        (
            &["-A", "-t", "[2001:db8::1]:80"],
            Errno::Eafnosupport,
            "Operation not supported with specified address family\n",
        ),
        (
            &["-E", "-t", "10.0.0.1:80"],
            Errno::Esrch,
            "No such service\n",
        ),
        (
            &[
                "-a",
                "-t",
                "10.0.0.1:80",
                "-r",
                "10.1.0.1",
                "-i",
                "--tun-type",
                "gre",
            ],
            Errno::Eopnotsupp,
            "Operation not supported: x\n",
        ),
        (
            &["-A", "-t", "10.0.0.1:80"],
            Errno::Eexist,
            "Service already exists\n",
        ),
        (
            &["-D", "-t", "10.0.0.1:80"],
            Errno::Esrch,
            "No such service\n",
        ),
        (
            &["-a", "-t", "10.0.0.1:80", "-r", "10.1.0.1"],
            Errno::Esrch,
            "Service not defined\n",
        ),
        (
            &["-a", "-t", "10.0.0.1:80", "-r", "10.1.0.1"],
            Errno::Eexist,
            "Destination already exists\n",
        ),
        (
            &["-d", "-t", "10.0.0.1:80", "-r", "10.1.0.1"],
            Errno::Enoent,
            "No such destination\n",
        ),
    ];
    for (i, (args, errno, msg)) in cases.into_iter().enumerate() {
        let d = FakeDaemon::start(
            &format!("err{i}"),
            Box::new(move |_| {
                Reply::Error(ErrorReply {
                    errno,
                    message: "x".into(),
                })
            }),
        );
        let out = d.run(args);
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        assert_eq!(text(&out.stderr), msg, "{args:?}");
        assert!(out.stdout.is_empty());
    }
    // Without a reason from rvsd, EINVAL keeps ipvsadm 1.31's generic text.
    let d = FakeDaemon::start(
        "einval-bare",
        Box::new(|_| {
            Reply::Error(ErrorReply {
                errno: Errno::Einval,
                message: String::new(),
            })
        }),
    );
    let out = d.run(&["-A", "-t", "10.0.0.1:80"]);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        text(&out.stderr),
        "Invalid operation.  Possibly wrong module version, address not unicast, ...\n"
    );
    // rvs has no sync daemon, so stopping one gets the kernel's ESRCH text without asking rvsd.
    let d = FakeDaemon::start("nodaemon", Box::new(|_| panic!("not asked")));
    let out = d.run(&["--stop-daemon", "master"]);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(text(&out.stderr), "No daemon is running\n");
}

#[test]
fn list_numeric_is_byte_exact() {
    let d = FakeDaemon::start("list", Box::new(table));
    let expected = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  10.0.0.1:80 wlc persistent 360 mask 255.255.255.0\n",
        "  -> 192.168.1.11:80              Masq    1      12         40        \n",
        "  -> 192.168.1.12:8080            Masq    3      5          7         \n",
    );
    for args in [
        &["-Ln"][..],
        &["-L", "-n"],
        &["--list", "--numeric"],
        &["-l", "-n"],
    ] {
        let out = d.run(args);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(text(&out.stdout), expected, "{args:?}");
    }
    assert_eq!(d.requests()[0], Request::GetInfo);
    assert_eq!(d.requests()[1], Request::ListServices { service: None });
    // No arguments at all lists too (with name resolution; these addresses have no names).
    let out = d.run(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("IP Virtual Server version 1.2.1 (size=4096)\n"));
}

#[test]
fn list_missing_service_and_timeouts() {
    let d = FakeDaemon::start("list2", Box::new(table));
    let out = d.run(&["-L", "-n", "-t", "10.9.9.9:80"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "No such service\n");
    let out = d.run(&["-L", "--timeout"]);
    assert_eq!(text(&out.stdout), "Timeout (tcp tcpfin udp): 900 120 300\n");
    let out = d.run(&["-S", "-n"]);
    assert_eq!(
        text(&out.stdout),
        "-A -t 10.0.0.1:80 -s wlc -p 360 -M 255.255.255.0\n\
         -a -t 10.0.0.1:80 -r 192.168.1.11:80 -m -w 1\n\
         -a -t 10.0.0.1:80 -r 192.168.1.12:8080 -m -w 3\n"
    );
}

#[test]
fn parse_errors_need_no_daemon() {
    let nowhere = PathBuf::from("/nonexistent/rvsd.sock");
    let out = run_at(&nowhere, &["-A", "-t", "10.0.0.1:80", "-w", "3"], "");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "Illegal 'weight' option with the 'add-service' command\n"
    );
    let out = run_at(
        &nowhere,
        &["-a", "-t", "10.0.0.1:80", "-r", "10.1.0.1", "-w", "70000"],
        "",
    );
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(2), "illegal weight specified\n".into())
    );
    let out = run_at(&nowhere, &["-A", "-t", "10.0.0.1:80:x"], "");
    assert_eq!(
        text(&out.stderr),
        "illegal virtual server address[:port] specified\n"
    );
    let out = run_at(&nowhere, &["--bogus"], "");
    let exe = env!("CARGO_BIN_EXE_ipvsadm");
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        text(&out.stderr),
        format!("Try `{exe} -h' or '{exe} --help' for more information.\n")
    );
    let out = run_at(&nowhere, &["-v"], "");
    assert_eq!(
        text(&out.stdout),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
    );
    let out = run_at(&nowhere, &["-h"], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(&format!("  {exe} -C\n")));
}

#[test]
fn no_daemon_is_one_line_and_exit_2() {
    let out = run_at(&PathBuf::from("/nonexistent/rvsd.sock"), &["-Ln"], "");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/rvsd.sock"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn restore_applies_lines_and_stops_at_a_failure() {
    let d = FakeDaemon::start(
        "restore",
        Box::new(|r| match r {
            Request::DelService(_) => Reply::Error(ErrorReply {
                errno: Errno::Esrch,
                message: "x".into(),
            }),
            _ => Reply::Ok,
        }),
    );
    let input = "# saved rules\n\
                 ipvsadm -A -t 10.0.0.1:80 -s rr\n\
                 \n\
                 -a -t 10.0.0.1:80 -r 10.1.0.1:80 -m   # first RS\n\
                 -D -t 10.0.0.2:80\n\
                 -C\n";
    let out = d.run_with_stdin(&["-R"], input);
    assert_eq!(out.status.code(), Some(255));
    let exe = env!("CARGO_BIN_EXE_ipvsadm");
    assert_eq!(
        text(&out.stderr),
        format!(
            "No such service\n{exe}: -R: stopped at line 5 of standard input; later lines were not applied\n"
        )
    );
    let reqs = d.requests();
    assert_eq!(reqs.len(), 3);
    assert!(matches!(reqs[0], Request::AddService(_)));
    assert!(matches!(reqs[1], Request::AddDest { .. }));
    assert_eq!(reqs[2], Request::DelService(tcp("10.0.0.2", 80)));

    let out = d.run_with_stdin(&["-R"], "-A -t 10.0.0.3:80 -w 1\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("Illegal 'weight' option with the 'add-service' command\n")
    );
}

#[test]
fn zero_set_and_clear() {
    let d = FakeDaemon::start("misc", Box::new(ok));
    assert_eq!(d.run(&["-Z"]).status.code(), Some(0));
    assert_eq!(d.run(&["-Z", "-t", "10.0.0.1:80"]).status.code(), Some(0));
    assert_eq!(d.run(&["--set", "100", "0", "30"]).status.code(), Some(0));
    assert_eq!(d.run(&["-C"]).status.code(), Some(0));
    assert_eq!(
        d.requests(),
        vec![
            Request::Zero { service: None },
            Request::Zero {
                service: Some(tcp("10.0.0.1", 80))
            },
            Request::SetTimeouts(Timeouts {
                tcp: 100,
                tcpfin: 0,
                udp: 30
            }),
            Request::Clear,
        ]
    );
}
