//! Operators' LVS scripts run unchanged against rvs, and `-S` / `-C` / `-R` restores exactly
//! the same state (with the ipvsadm-save / ipvsadm-restore wrappers). Real daemon on a
//! `net_null` port: no namespaces, no traffic.

mod common;

use std::process::{Command, Stdio};

use common::Rvsd;

fn null_config(socket: &std::path::Path) -> String {
    format!(
        r#"
[dpdk]
cores = "0-1"
args = ["--no-huge", "-m", "256", "--no-shconf", "--no-telemetry"]
[[port]]
name = "dp0"
device = "net_null0"
[control]
socket = "{}"
[dataplane]
idle_sleep_us = 100
conn_capacity = 4096
"#,
        socket.display()
    )
}

/// Run a shell script with the workspace's ipvsadm first on PATH.
fn sh(rvsd: &Rvsd, script: &str, stdin: Option<&str>) -> std::process::Output {
    let bin_dir = common::bin("ipvsadm").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        common::repo().join("ctl/scripts").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .env("RVS_SOCKET", &rvsd.socket)
        .env("IPVSADM", common::bin("ipvsadm"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            i.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "script failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn classic_scripts_and_save_restore() {
    require_netns!();
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("rvs-test-lvs-{}", std::process::id()));
    let socket = dir.join("s.sock");
    let rvsd = Rvsd::start(None, &null_config(&socket), &socket, &dir);

    // A classic LVS-NAT script.
    let nat = r#"
VIP=198.18.0.100
RIP1=198.18.1.11
RIP2=198.18.1.12
ipvsadm -C
ipvsadm -A -t $VIP:80 -s rr
ipvsadm -a -t $VIP:80 -r $RIP1:80 -m
ipvsadm -a -t $VIP:80 -r $RIP2:80 -m
ipvsadm -Ln
"#;
    assert_eq!(
        ok(sh(&rvsd, nat, None)),
        concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  198.18.0.100:80 rr\n",
            "  -> 198.18.1.11:80               Masq    1      0          0         \n",
            "  -> 198.18.1.12:80               Masq    1      0          0         \n",
        )
    );

    // A classic LVS-DR script (ipvsadm's defaults: scheduler wlc, forwarding -g; dport forced
    // to the vport).
    let dr = r#"
VIP=198.18.0.100
ipvsadm -C
ipvsadm -A -t $VIP:80
ipvsadm -a -t $VIP:80 -r 198.18.1.12 -g -w 1
ipvsadm -a -t $VIP:80 -r 198.18.1.11:8080 -w 2
ipvsadm -A -u $VIP:53 -s wrr -p 600
ipvsadm -a -u $VIP:53 -r 198.18.1.11 -g -w 1
ipvsadm -L -n
"#;
    assert_eq!(
        ok(sh(&rvsd, dr, None)),
        concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  198.18.0.100:80 wlc\n",
            "  -> 198.18.1.11:80               Route   2      0          0         \n",
            "  -> 198.18.1.12:80               Route   1      0          0         \n",
            "UDP  198.18.0.100:53 wrr persistent 600\n",
            "  -> 198.18.1.11:53               Route   1      0          0         \n",
        )
    );

    // Save, clear, restore: the same state, byte for byte.
    ok(sh(
        &rvsd,
        "ipvsadm -a -t 198.18.0.100:80 -r 198.18.1.13:80 -m -w 0 -x 100 -y 50",
        None,
    ));
    let saved = ok(sh(&rvsd, "ipvsadm-save -n", None));
    assert_eq!(
        saved,
        concat!(
            "-A -t 198.18.0.100:80 -s wlc\n",
            "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g -w 2\n",
            "-a -t 198.18.0.100:80 -r 198.18.1.12:80 -g -w 1\n",
            // Thresholds are kept (ipvsadm 1.31 would drop them): README, "ipvsadm -S".
            "-a -t 198.18.0.100:80 -r 198.18.1.13:80 -m -w 0 -x 100 -y 50\n",
            "-A -u 198.18.0.100:53 -s wrr -p 600\n",
            "-a -u 198.18.0.100:53 -r 198.18.1.11:53 -g -w 1\n",
        )
    );
    ok(sh(&rvsd, "ipvsadm -C", None));
    assert_eq!(ok(sh(&rvsd, "ipvsadm -S -n", None)), "");
    ok(sh(&rvsd, "ipvsadm-restore", Some(&saved)));
    assert_eq!(ok(sh(&rvsd, "ipvsadm-save -n", None)), saved);

    // A bad line in -R: reported with its number; earlier lines applied, nothing from it on.
    let bad = "# comment\nipvsadm -A -t 198.18.0.200:80 -s rr\n-a -t 198.18.0.200:80 -r 198.18.1.11 -m -w 99999\n-A -t 198.18.0.201:80 -s rr\n";
    let o = sh(&rvsd, "ipvsadm -R", Some(bad));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("illegal weight specified"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    let after = ok(sh(&rvsd, "ipvsadm -S -n", None));
    assert!(after.contains("-A -t 198.18.0.200:80 -s rr\n"), "{after}");
    assert!(!after.contains("198.18.0.201"), "{after}");
    let (st, log) = rvsd.stop();
    assert!(st.success(), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn fwmark_rules_survive_save_clear_restore() {
    require_netns!();
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("rvs-test-fwm-{}", std::process::id()));
    let socket = dir.join("s.sock");
    let rvsd = Rvsd::start(None, &null_config(&socket), &socket, &dir);
    let script = r#"
ipvsadm --add-fwmark-rule -f 1 --proto tcp --dst 198.18.0.100 --ports 443,80
ipvsadm --add-fwmark-rule -f 2 --proto=udp --dst=198.18.0.0/24 --ports=1000-2000
ipvsadm --add-fwmark-rule -f 1 --proto tcp --dst 198.18.0.100/32 --ports 443,80
ipvsadm -A -f 1 -s rr -p 60 -M 255.255.255.0
ipvsadm -a -f 1 -r 198.18.1.11 -m
ipvsadm -A -t 198.18.0.100:0 -s sh -p
ipvsadm -a -t 198.18.0.100:0 -r 198.18.1.12 -m
ipvsadm -A -u 198.18.0.100:53 -s rr -o
ipvsadm -a -u 198.18.0.100:53 -r 198.18.1.12 -m -x 2 -y 1
"#;
    ok(sh(&rvsd, script, None));
    let saved = ok(sh(&rvsd, "ipvsadm-save -n", None));
    assert_eq!(
        saved,
        concat!(
            "-A -t 198.18.0.100:0 -s sh -p 360\n",
            "-a -t 198.18.0.100:0 -r 198.18.1.12:0 -m -w 1\n",
            "-A -u 198.18.0.100:53 -s rr -o\n",
            "-a -u 198.18.0.100:53 -r 198.18.1.12:53 -m -w 1 -x 2 -y 1\n",
            "-A -f 1 -s rr -p 60 -M 255.255.255.0\n",
            "-a -f 1 -r 198.18.1.11:0 -m -w 1\n",
            "--add-fwmark-rule -f 1 --proto tcp --dst 198.18.0.100/32 --ports 443,80\n",
            "--add-fwmark-rule -f 2 --proto udp --dst 198.18.0.0/24 --ports 1000-2000\n",
        )
    );
    ok(sh(&rvsd, "ipvsadm -C", None));
    ok(sh(&rvsd, "ipvsadm-restore", Some(&saved)));
    assert_eq!(ok(sh(&rvsd, "ipvsadm-save -n", None)), saved);
    // Deleting a rule; deleting it again names it.
    ok(sh(
        &rvsd,
        "ipvsadm --del-fwmark-rule -f 2 --proto udp --dst 198.18.0.0/24 --ports 1000-2000",
        None,
    ));
    let o = sh(
        &rvsd,
        "ipvsadm --del-fwmark-rule -f 2 --proto udp --dst 198.18.0.0/24 --ports 1000-2000",
        None,
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no fwmark rule mark 2 udp 198.18.0.0/24"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = sh(
        &rvsd,
        "ipvsadm --add-fwmark-rule -f 3 --proto icmp --dst 1.2.3.4",
        None,
    );
    assert!(!o.status.success());
    let (st, log) = rvsd.stop();
    assert!(st.success(), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
