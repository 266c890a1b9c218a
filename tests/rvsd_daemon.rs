//! rvsd as a process: its command line, bad configuration files, and ipvsadm's errors and
//! listings against the real daemon (on a `net_null` port: no namespaces, no traffic).

mod common;

use std::process::Command;

use common::Rvsd;

fn rvsd_cmd(args: &[&str]) -> std::process::Output {
    Command::new(common::bin("rvsd"))
        .args(args)
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn version_and_help() {
    let v = rvsd_cmd(&["--version"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("rvsd 0.1.0"));
    let h = rvsd_cmd(&["--help"]);
    assert!(h.status.success());
    assert!(String::from_utf8_lossy(&h.stdout).contains("--config <FILE>"));
}

#[test]
fn bad_config_files_are_named_with_their_key() {
    let dir = temp_dir("badconf");
    let missing = dir.join("missing.toml");
    let o = rvsd_cmd(&["--config", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.starts_with(&format!("rvsd: {}: cannot read: ", missing.display())),
        "{e}"
    );

    let cases = [
        (
            "[[port]]\nname = \"dp0\"\ndevice = \"net_null0\"\nspeed = 1\n",
            "port[0].speed: unknown field `speed`",
        ),
        (
            "[[port]]\nname = \"dp0\"\ndevice = \"net_null0\"\n[[addr]]\nport = \"dp0\"\nip = \"198.18.0.300/24\"\n",
            "addr[0].ip: ",
        ),
        (
            "[[port]]\nname = \"dp0\"\ndevice = \"net_null0\"\n[[addr]]\nport = \"dp9\"\nip = \"198.18.0.1/24\"\n",
            "addr[0].port: no [[port]] is named \"dp9\"",
        ),
        (
            "[dpdk]\ncores = \"0\"\n[[port]]\nname = \"dp0\"\ndevice = \"net_null0\"\n",
            "dpdk.cores: need at least two lcores",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = dir.join(format!("c{i}.toml"));
        std::fs::write(&f, text).unwrap();
        let o = rvsd_cmd(&["--config", f.to_str().unwrap(), "--check"]);
        assert_eq!(o.status.code(), Some(2), "case {i}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.starts_with(&format!("rvsd: {}: {want}", f.display())),
            "case {i}: {e}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn null_config(socket: &std::path::Path) -> String {
    format!(
        r#"{}[control]
socket = "{}"
[dataplane]
idle_sleep_us = 100
"#,
        common::one_port_head("0-1", "net_null0"),
        socket.display()
    )
}

#[test]
fn a_port_dpdk_cannot_open_is_named() {
    require_netns!();
    let _serial = common::serial();
    let dir = temp_dir("baddev");
    let socket = dir.join("s.sock");
    let text = null_config(&socket).replace("net_null0", "net_af_packet0,iface=rvs-nonexistent0");
    let f = dir.join("rvs.toml");
    std::fs::write(&f, text).unwrap();
    let o = rvsd_cmd(&["--config", f.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("port[0].device \"net_af_packet0,iface=rvs-nonexistent0\""),
        "{e}"
    );
    assert!(!socket.exists());
    let _ = std::fs::remove_dir_all(dir);
}

fn out(o: &std::process::Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn ipvsadm_errors_leave_the_daemon_state_unchanged() {
    require_netns!();
    let _serial = common::serial();
    let dir = temp_dir("ipvsadm");
    let socket = dir.join("s.sock");
    let rvsd = Rvsd::start(None, &null_config(&socket), &socket, &dir);

    rvsd.ipvsadm_ok(&["-A", "-t", "198.18.0.100:80", "-s", "wrr"]);
    rvsd.ipvsadm_ok(&[
        "-a",
        "-t",
        "198.18.0.100:80",
        "-r",
        "198.18.1.11:8080",
        "-m",
        "-w",
        "3",
    ]);
    rvsd.ipvsadm_ok(&["-a", "-t", "198.18.0.100:80", "-r", "198.18.1.12", "-g"]);
    rvsd.ipvsadm_ok(&["-A", "-u", "198.18.0.100:53", "-s", "rr"]);
    let before = rvsd.ipvsadm_ok(&["-Ln"]);
    let expected = concat!(
        "IP Virtual Server version 1.2.1 (size=1048576)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  198.18.0.100:80 wrr\n",
        "  -> 198.18.1.11:8080             Masq    3      0          0         \n",
        "  -> 198.18.1.12:80               Route   1      0          0         \n",
        "UDP  198.18.0.100:53 rr\n",
    );
    assert_eq!(before, expected);

    let kernel_errors: &[(&[&str], &str)] = &[
        (
            &["-A", "-t", "198.18.0.100:80", "-s", "rr"],
            "Service already exists\n",
        ),
        (
            &["-E", "-t", "198.18.0.200:80", "-s", "rr"],
            "No such service\n",
        ),
        (&["-D", "-t", "198.18.0.200:80"], "No such service\n"),
        (
            &["-a", "-t", "198.18.0.200:80", "-r", "198.18.1.11", "-m"],
            "Service not defined\n",
        ),
        (
            &[
                "-a",
                "-t",
                "198.18.0.100:80",
                "-r",
                "198.18.1.11:8080",
                "-m",
            ],
            "Destination already exists\n",
        ),
        (
            &["-e", "-t", "198.18.0.100:80", "-r", "198.18.1.99", "-m"],
            "No such destination\n",
        ),
        (
            &["-d", "-t", "198.18.0.100:80", "-r", "198.18.1.99"],
            "No such destination\n",
        ),
        (
            &["-A", "-t", "198.18.0.101:80", "-s", "nosuch"],
            "Scheduler or persistence engine not found\n",
        ),
    ];
    for (args, msg) in kernel_errors {
        let (code, stdout, stderr) = out(&rvsd.ipvsadm(args));
        assert_eq!(
            (code, stdout.as_str(), stderr.as_str()),
            (Some(255), "", *msg),
            "ipvsadm {args:?}"
        );
    }
    let parse_errors: &[(&[&str], &str)] = &[
        (
            &[
                "-a",
                "-t",
                "198.18.0.100:80",
                "-r",
                "198.18.1.13",
                "-w",
                "65536",
            ],
            "illegal weight specified\n",
        ),
        (
            &["-A", "-t", "198.18.0.300:80"],
            "illegal virtual server address[:port] specified\n",
        ),
        (
            &["-A", "-s", "rr"],
            "You need to supply the 'service-address' option for the 'add-service' command\n",
        ),
    ];
    for (args, msg) in parse_errors {
        let (code, stdout, stderr) = out(&rvsd.ipvsadm(args));
        assert_eq!(code, Some(2), "ipvsadm {args:?}: {stderr}");
        assert_eq!(stdout, "");
        assert!(stderr.ends_with(msg), "ipvsadm {args:?}: {stderr}");
    }
    let (code, _, stderr) = out(&rvsd.ipvsadm(&["--bogus"]));
    assert_eq!(code, Some(255), "{stderr}");
    assert_eq!(
        rvsd.ipvsadm_ok(&["-Ln"]),
        before,
        "state changed by refused commands"
    );
    // No arguments lists like -L: names resolved (services from /etc/services).
    let named = rvsd.ipvsadm_ok(&["-L"]);
    assert!(named.contains("TCP  198.18.0.100:http wrr\n"), "{named}");
    assert_eq!(out(&rvsd.ipvsadm(&[])).1, named, "no arguments lists");

    // A garbage line on the socket gets an error reply and the daemon keeps serving.
    {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        s.write_all(b"{\"version\":1,\"request\":\"nonsense\"}\n")
            .unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        assert!(line.contains("\"error\""), "{line}");
    }

    rvsd.ipvsadm_ok(&["--set", "10", "20", "30"]);
    assert_eq!(
        rvsd.ipvsadm_ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 10 20 30\n"
    );
    rvsd.ipvsadm_ok(&["-d", "-t", "198.18.0.100:80", "-r", "198.18.1.12"]);
    rvsd.ipvsadm_ok(&["-D", "-u", "198.18.0.100:53"]);
    rvsd.ipvsadm_ok(&[
        "-e",
        "-t",
        "198.18.0.100:80",
        "-r",
        "198.18.1.11:8080",
        "-m",
        "-w",
        "5",
    ]);
    assert_eq!(
        rvsd.ipvsadm_ok(&["-Ln", "-t", "198.18.0.100:80"]),
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  198.18.0.100:80 wrr\n",
            "  -> 198.18.1.11:8080             Masq    5      0          0         \n",
        )
    );
    rvsd.ipvsadm_ok(&["-C"]);
    assert_eq!(
        rvsd.ipvsadm_ok(&["-Ln"]),
        concat!(
            "IP Virtual Server version 1.2.1 (size=1048576)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        )
    );
    let (st, log) = rvsd.stop();
    assert!(st.success(), "{log}");
    assert!(!socket.exists(), "socket removed at exit");

    // No daemon: one line naming the socket.
    let o = Command::new(common::bin("ipvsadm"))
        .arg("-Ln")
        .env("RVS_SOCKET", &socket)
        .output()
        .unwrap();
    let (code, stdout, stderr) = out(&o);
    assert_eq!(code, Some(2));
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
