//! The sample files in conf/keepalived/ against keepalived 2.2.7's own parser (`keepalived -t`)
//! as an oracle: the good ones load in both; the DPVS one loads in rvs-keepalived and in
//! keepalived once its three DPVS keywords are rewritten; the rejected ones are refused by both,
//! on the same line where keepalived names one. keepalived checks that the interfaces of
//! `vrrp_instance` blocks exist, so it runs in a namespace of its own holding eth0 and eth1
//! (root needed; without root or keepalived the test skips, in CI it fails).

use std::path::{Path, PathBuf};
use std::process::Command;

use rvs_keepalived::load::{load_file, load_str};

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/keepalived")
}

fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (keepalived -t runs in a namespace)".into());
    }
    if Command::new("keepalived")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("keepalived not installed (scripts/install-deps.sh installs it)".into());
    }
    None
}

/// A namespace with eth0 and eth1 (a veth pair), deleted on drop.
struct OracleNs(String);

impl OracleNs {
    fn new() -> OracleNs {
        let name = format!("rvska-oracle-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success());
        let ns = OracleNs(name);
        let ok = Command::new("ip")
            .args([
                "-n", &ns.0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
            ])
            .status()
            .unwrap();
        assert!(ok.success());
        ns
    }

    /// keepalived's exit code and what it printed.
    fn keepalived_test(&self, file: &Path) -> (i32, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "keepalived", "-t", "-l", "-f"])
            .arg(file)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

impl Drop for OracleNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The first `Line N` keepalived names.
fn keepalived_line(text: &str) -> Option<usize> {
    let at = text.find("Line ")?;
    text[at + 5..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    v.sort();
    v
}

/// DPVS's FULLNAT keywords rewritten to stock keepalived's (NAT, no local addresses).
fn without_dpvs_keywords(text: &str) -> String {
    let mut out = String::new();
    let mut in_laddr_group = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("local_address_group") {
            in_laddr_group = true;
            continue;
        }
        if in_laddr_group {
            in_laddr_group = t != "}";
            continue;
        }
        if t.starts_with("laddr_group_name") {
            continue;
        }
        out.push_str(&line.replace("lb_kind FNAT", "lb_kind NAT"));
        out.push('\n');
    }
    out
}

#[test]
fn samples_agree_with_keepalived() {
    if let Some(why) = unavailable() {
        if std::env::var_os("CI").is_some() {
            panic!("the keepalived oracle cannot run in CI: {why}");
        }
        eprintln!("SKIPPED: {why}");
        return;
    }
    let ns = OracleNs::new();
    let dir = conf_dir().canonicalize().unwrap();
    let good = files(&dir);
    assert!(good.len() >= 4, "{good:?}");
    for f in &good {
        let cfg =
            load_file(f).unwrap_or_else(|e| panic!("rvs-keepalived refuses {}: {e}", f.display()));
        assert!(!cfg.virtual_servers.is_empty(), "{}", f.display());
        let (code, text) = ns.keepalived_test(f);
        let dpvs = f
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("dpvs-");
        if !dpvs {
            assert_eq!(code, 0, "keepalived -t {}:\n{text}", f.display());
            continue;
        }
        // Stock keepalived refuses exactly the DPVS keywords ...
        assert_ne!(
            code,
            0,
            "keepalived accepted DPVS's keywords in {}",
            f.display()
        );
        assert!(
            text.contains("local_address_group") && text.contains("FNAT"),
            "{text}"
        );
        // ... and accepts the file without them, which rvs-keepalived reads the same way.
        let plain = without_dpvs_keywords(&std::fs::read_to_string(f).unwrap());
        let tmp = std::env::temp_dir().join(format!("rvska-plain-{}.conf", std::process::id()));
        std::fs::write(&tmp, &plain).unwrap();
        let (code, text) = ns.keepalived_test(&tmp);
        std::fs::remove_file(&tmp).unwrap();
        assert_eq!(
            code,
            0,
            "keepalived -t on {} without DPVS keywords:\n{text}\n{plain}",
            f.display()
        );
        let cfg = load_str(&tmp, &plain).unwrap();
        assert!(cfg.virtual_servers.iter().all(|v| v.laddrs.is_empty()));
    }
    let rejected = files(&dir.join("rejected"));
    assert!(rejected.len() >= 5, "{rejected:?}");
    for f in &rejected {
        let e = load_file(f).expect_err(&format!("rvs-keepalived accepted {}", f.display()));
        assert_eq!(*e.loc.file, *f, "{e}");
        let (code, text) = ns.keepalived_test(f);
        assert_ne!(code, 0, "keepalived accepted {}", f.display());
        if let Some(line) = keepalived_line(&text) {
            assert_eq!(
                e.loc.line,
                line,
                "{}: rvs says {e}; keepalived:\n{text}",
                f.display()
            );
        }
    }
}

#[test]
fn config_test_flag() {
    let bin = env!("CARGO_BIN_EXE_rvs-keepalived");
    let good = conf_dir().join("lvs-dr.conf");
    let out = Command::new(bin)
        .arg("-t")
        .arg("-f")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 virtual servers, 6 real servers: OK"));
    let bad = conf_dir().join("rejected/bad-weight.conf");
    let out = Command::new(bin)
        .args(["--config-test", "--use-file"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rejected/bad-weight.conf:6: 'weight': invalid number 'abc'"),
        "{err}"
    );
}

/// The IPv6 sample (`keepalived -t` accepts it; `samples_agree_with_keepalived` runs that oracle
/// as root): its virtual server becomes the IPv6 service and dests, written as `ipvsadm -S` does.
#[test]
fn ipv6_virtual_server_becomes_ipv6_rules() {
    use ctl::ipvsadm::format::list_all;
    use ctl::ipvsadm::parse::Format;
    use ctl::ipvsadm::resolve::Resolver;
    use ctl::proto::{DestInfo, DestSpec, ServiceInfo};
    let cfg = load_file(&conf_dir().join("lvs-ipv6.conf")).unwrap();
    let vs = &cfg.virtual_servers[0];
    let spec = rvs_keepalived::program::service_specs(vs).remove(0);
    assert_eq!(
        spec.netmask, 128,
        "-M of an IPv6 service is a prefix length"
    );
    let dests = vs
        .reals
        .iter()
        .map(|r| DestInfo {
            spec: DestSpec {
                addr: r.addr,
                port: r.port,
                forward: vs.method,
                weight: r.weight,
                u_threshold: r.u_threshold,
                l_threshold: r.l_threshold,
                tun: Default::default(),
            },
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            stats: Default::default(),
            rates: Default::default(),
        })
        .collect();
    let svc = ServiceInfo {
        spec,
        stats: Default::default(),
        rates: Default::default(),
        dests,
        access: Default::default(),
        refused: Default::default(),
    };
    let f = Format {
        rule: true,
        numeric: true,
        ..Format::default()
    };
    assert_eq!(
        list_all(None, &[svc], &f, &Resolver::default()),
        "-A -t [2001:2::100]:80 -s rr\n\
         -a -t [2001:2::100]:80 -r [2001:2:1::11]:80 -m -w 2\n\
         -a -t [2001:2::100]:80 -r [2001:2:1::12]:80 -m -w 1\n"
    );
}
