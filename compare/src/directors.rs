//! The directors under test: how each is set up in the director namespace `d` and what the
//! loads are aimed at. Kernel directors (routing, nftables, IPVS, HAProxy) turn the namespace
//! into a kernel router ([`kernel_mode`]); rvs runs on the bare veth ends, as the test network
//! leaves them; [`teardown`] puts the namespace back whatever a director left behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::net::{self, HTTP_PORT, Net, UDP_PORT, VIP};
use crate::report::Load;
use crate::rig::{Kind, Options, RvsBuild};

pub(crate) const RIPS_NAT: [&str; 2] = ["198.18.1.11", "198.18.1.12"];
pub(crate) const RIPS_DR: [&str; 2] = ["198.18.0.11", "198.18.0.12"];
/// FULLNAT local addresses, on the servers' network: four, so new-connection runs do not run
/// out of local ports while closed connections wait in TIME_WAIT.
pub(crate) const LIPS: [&str; 4] = ["198.18.1.5", "198.18.1.6", "198.18.1.7", "198.18.1.8"];

/// What a director needs to stay up: a process to measure and stop, or nothing (the kernel).
pub(crate) struct Running {
    pub(crate) name: String,
    /// Process name in the [`Net`], for CPU and stopping.
    pub(crate) proc_name: Option<String>,
    pub(crate) pid: Option<u32>,
    /// HTTP and UDP targets for the load (plain routing: the servers themselves).
    pub(crate) http_targets: Vec<String>,
    pub(crate) udp_targets: Vec<String>,
    /// Loads this director cannot carry, with the reason.
    pub(crate) cannot: Vec<(Load, String)>,
    /// rvs: the control socket and rvsctl, to read the ports' counters after the loads.
    pub(crate) rvs: Option<(PathBuf, Option<PathBuf>)>,
}

/// The director namespace as a kernel router: its addresses on d0/d1, forwarding on, ARP
/// answered, no reverse-path filter; `vip` puts the VIP on d0 too.
pub(crate) fn kernel_mode(net: &Net, vip: bool) -> Result<()> {
    net.sh("d", "ip", &["addr", "add", "198.18.0.1/24", "dev", "d0"])?;
    net.sh("d", "ip", &["addr", "add", "198.18.1.1/24", "dev", "d1"])?;
    if vip {
        net.sh(
            "d",
            "ip",
            &["addr", "add", &format!("{VIP}/32"), "dev", "d0"],
        )?;
    }
    net.sh(
        "d",
        "sysctl",
        &[
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.d0.rp_filter=0",
            "net.ipv4.conf.d1.rp_filter=0",
            "net.ipv4.conf.d0.arp_ignore=0",
            "net.ipv4.conf.d1.arp_ignore=0",
        ],
    )?;
    net.flush_neighbours();
    Ok(())
}

/// Back to what the test network leaves for rvs: no kernel addresses on d0/d1, no
/// forwarding, no ARP answers (`testnet.sh`'s `dpdk_only`).
pub(crate) fn dpdk_mode(net: &Net) -> Result<()> {
    for dev in ["d0", "d1"] {
        net.sh("d", "ip", &["addr", "flush", "dev", dev])?;
    }
    net.sh(
        "d",
        "sysctl",
        &[
            "-qw",
            "net.ipv4.ip_forward=0",
            "net.ipv4.conf.d0.rp_filter=1",
            "net.ipv4.conf.d1.rp_filter=1",
            "net.ipv4.conf.d0.arp_ignore=8",
            "net.ipv4.conf.d1.arp_ignore=8",
        ],
    )?;
    Ok(())
}

pub(crate) fn behind_vip(
    name: &str,
    cannot: Vec<(Load, String)>,
    proc: Option<(&str, u32)>,
) -> Running {
    Running {
        name: name.to_owned(),
        proc_name: proc.map(|(n, _)| n.to_owned()),
        pid: proc.map(|(_, p)| p),
        http_targets: vec![VIP.to_owned()],
        udp_targets: vec![VIP.to_owned()],
        cannot,
        rvs: None,
    }
}

/// nftables ruleset: DNAT of the VIP's TCP and UDP ports to the servers in turn.
pub fn nft_ruleset(rips: [&str; 2]) -> String {
    let map = format!("{{ 0 : {}, 1 : {} }}", rips[0], rips[1]);
    format!(
        "table ip rvscompare {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n\
         \x20   ip daddr {VIP} tcp dport {HTTP_PORT} dnat to numgen inc mod 2 map {map}\n\
         \x20   ip daddr {VIP} udp dport {UDP_PORT} dnat to numgen inc mod 2 map {map}\n  }}\n}}\n"
    )
}

pub(crate) fn nftables(net: &Net, name: &str) -> Result<Running> {
    kernel_mode(net, true)?;
    let path = net.state().join("nft.rules");
    std::fs::write(&path, nft_ruleset(RIPS_NAT))?;
    net.sh("d", "nft", &["-f", &path.display().to_string()])?;
    Ok(behind_vip(name, vec![], None))
}

/// Why the kernel's IPVS cannot run here, or None.
pub(crate) fn ipvs_unavailable(ipvsadm: &Path) -> Option<String> {
    match Command::new("modprobe").arg("ip_vs").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Some(format!(
                "modprobe ip_vs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Err(e) => return Some(format!("cannot run modprobe: {e}")),
    }
    if !ipvsadm.exists() {
        return Some(format!(
            "the kernel's ipvsadm ({}) is not installed (Debian package ipvsadm)",
            ipvsadm.display()
        ));
    }
    None
}

pub(crate) fn ipvs(net: &Net, name: &str, ipvsadm: &Path) -> Result<Running> {
    kernel_mode(net, true)?;
    let adm = ipvsadm.display().to_string();
    for (flag, port) in [("-t", HTTP_PORT), ("-u", UDP_PORT)] {
        let vs = format!("{VIP}:{port}");
        net.sh("d", &adm, &["-A", flag, &vs, "-s", "rr"])?;
        for r in RIPS_NAT {
            net.sh(
                "d",
                &adm,
                &["-a", flag, &vs, "-r", &format!("{r}:{port}"), "-m"],
            )?;
        }
    }
    Ok(behind_vip(name, vec![], None))
}

/// HAProxy's configuration: `mode tcp`, round robin over the two servers, `threads` threads.
pub fn haproxy_conf(threads: u32, rips: [&str; 2]) -> String {
    format!(
        "global\n    maxconn 8000\n    nbthread {threads}\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend vip\n    bind {VIP}:{HTTP_PORT}\n    default_backend servers\n\n\
         backend servers\n    balance roundrobin\n    server rs1 {}:{HTTP_PORT}\n    server rs2 {}:{HTTP_PORT}\n",
        rips[0], rips[1]
    )
}

pub(crate) fn haproxy(net: &mut Net, name: &str, threads: u32) -> Result<Running> {
    kernel_mode(net, true)?;
    let path = net.state().join("haproxy.cfg");
    std::fs::write(&path, haproxy_conf(threads, RIPS_NAT))?;
    let pid = net.spawn(
        "d",
        "haproxy",
        Path::new("haproxy"),
        &["-f", &path.display().to_string(), "-db"],
    )?;
    net.wait_tcp_listen("d", HTTP_PORT, "haproxy")?;
    Ok(behind_vip(
        name,
        vec![(
            Load::Udp,
            "HAProxy balances TCP (mode tcp) and HTTP only".to_owned(),
        )],
        Some(("haproxy", pid)),
    ))
}

/// `[dpdk] cores` for `workers` workers: `0-1` for one, else workers spread over CPUs 0 and 1
/// after the control lcore (as the tests run more workers than CPUs).
pub(crate) fn cores(workers: u32) -> String {
    if workers <= 1 {
        return "0-1".to_owned();
    }
    let mut s = "0@0".to_owned();
    for w in 1..=workers {
        s.push_str(&format!(",{w}@{}", w % 2));
    }
    s
}

/// rvsd's configuration: af_packet ports on d0 (and d1 unless `one_port`), the director's
/// addresses, a table for a million connections (a 10 s new-connection run leaves about 100K in
/// TIME_WAIT), IPVS's timeouts.
pub fn rvsd_conf(socket: &Path, one_port: bool, workers: u32, idle_sleep_us: u32) -> String {
    let mut c = format!(
        "[dpdk]\ncores = \"{}\"\nargs = [\"--no-huge\", \"-m\", \"256\", \"--no-shconf\", \"--no-telemetry\"]\n",
        cores(workers)
    );
    let ports: &[(u32, &str, &str)] = if one_port {
        &[(0, "d0", "198.18.0.1/24")]
    } else {
        &[(0, "d0", "198.18.0.1/24"), (1, "d1", "198.18.1.1/24")]
    };
    for (i, iface, ip) in ports {
        c.push_str(&format!(
            "\n[[port]]\nname = \"dp{i}\"\ndevice = \"net_af_packet{i},iface={iface},qpairs={workers}\"\n\n[[addr]]\nport = \"dp{i}\"\nip = \"{ip}\"\n"
        ));
    }
    c.push_str(&format!(
        "\n[control]\nsocket = \"{}\"\n\n[dataplane]\nconn_capacity = 1048576\nidle_sleep_us = {idle_sleep_us}\n",
        socket.display()
    ));
    c
}

pub(crate) fn rvs(
    o: &Options,
    net: &mut Net,
    k: Kind,
    name: &str,
    b: &RvsBuild,
) -> Result<Running> {
    let dir = net.state().join("rvsd");
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("rvsd.sock");
    let _ = std::fs::remove_file(&socket);
    let conf = dir.join("rvsd.toml");
    std::fs::write(
        &conf,
        rvsd_conf(&socket, k == Kind::RvsDr, o.rvs_workers, o.idle_sleep_us),
    )?;
    let proc_name = format!(
        "rvsd-{}{}",
        match k {
            Kind::RvsNat => "nat",
            Kind::RvsFullnat => "fullnat",
            _ => "dr",
        },
        b.label
            .as_ref()
            .map(|l| format!("-{l}"))
            .unwrap_or_default()
    );
    let pid = net.spawn(
        "d",
        &proc_name,
        &b.rvsd,
        &[
            "--config",
            &conf.display().to_string(),
            "--log-level",
            "info",
        ],
    )?;
    let adm = |args: &[&str]| -> Result<String> {
        net::run(
            Command::new(&b.ipvsadm)
                .args(args)
                .env("RVS_SOCKET", &socket),
        )
    };
    net::wait_until(Duration::from_secs(30), "rvsd's control socket", || {
        net.check_alive(&proc_name)?;
        Ok(Command::new(&b.ipvsadm)
            .arg("-Ln")
            .env("RVS_SOCKET", &socket)
            .output()?
            .status
            .success())
    })?;
    let (rips, method) = match k {
        Kind::RvsNat => (RIPS_NAT, "-m"),
        Kind::RvsFullnat => (RIPS_NAT, "--fullnat"),
        _ => (RIPS_DR, "-g"),
    };
    for (flag, port) in [("-t", HTTP_PORT), ("-u", UDP_PORT)] {
        let vs = format!("{VIP}:{port}");
        adm(&["-A", flag, &vs, "-s", "rr"])?;
        for r in rips {
            adm(&["-a", flag, &vs, "-r", &format!("{r}:{port}"), method])?;
        }
        if k == Kind::RvsFullnat {
            for lip in LIPS {
                adm(&["-P", flag, &vs, "-z", lip, "-F", "dp1"])?;
            }
        }
    }
    let mut running = behind_vip(name, vec![], Some((&proc_name, pid)));
    running.rvs = Some((socket, b.rvsctl.clone()));
    Ok(running)
}

/// Leave the director namespace as the test network made it, whatever state a director left it
/// in: its processes stopped, no nftables rules or IPVS services, no kernel addresses.
pub(crate) fn teardown(o: &Options, net: &mut Net, k: Kind) {
    net.stop_procs_in("d");
    if !k.is_rvs() {
        let _ = net.sh("d", "nft", &["flush", "ruleset"]);
        if k == Kind::Ipvs {
            let _ = net.sh("d", &o.kernel_ipvsadm.display().to_string(), &["-C"]);
        }
        let _ = dpdk_mode(net);
    }
    net.flush_neighbours();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_rules_dnat_both_protocols_to_both_servers() {
        let r = nft_ruleset(RIPS_NAT);
        assert!(
            r.contains(
                "tcp dport 8080 dnat to numgen inc mod 2 map { 0 : 198.18.1.11, 1 : 198.18.1.12 }"
            ),
            "{r}"
        );
        assert!(r.contains("udp dport 5300"), "{r}");
    }

    #[test]
    fn haproxy_is_tcp_round_robin() {
        let c = haproxy_conf(1, RIPS_NAT);
        assert!(c.contains("mode tcp"));
        assert!(c.contains("nbthread 1"));
        assert!(c.contains("bind 198.18.0.100:8080"));
        assert!(c.contains("server rs2 198.18.1.12:8080"));
    }

    #[test]
    fn rvsd_conf_ports_and_timeouts() {
        let c = rvsd_conf(Path::new("/tmp/s.sock"), false, 1, 50);
        assert!(c.contains("iface=d1,qpairs=1"), "{c}");
        assert!(c.contains("cores = \"0-1\""));
        assert!(!c.contains("[ipvs.timeouts]"), "IPVS's own timeouts: {c}");
        let dr = rvsd_conf(Path::new("/tmp/s.sock"), true, 2, 0);
        assert!(!dr.contains("iface=d1"), "{dr}");
        assert!(dr.contains("cores = \"0@0,1@1,2@0\""), "{dr}");
    }
}
