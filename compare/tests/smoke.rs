//! The whole rig, short: every director with every load for a second, on its own namespace
//! networks, through the rvsd and ipvsadm of this build. Asserts that every director served
//! every request it was sent (no socket error, no bad response, no unanswered UDP request),
//! not how fast; that what cannot run here is skipped with a reason; and that the outputs are
//! written. Needs root and the peers `scripts/install-deps.sh` installs (wrk, nginx, haproxy,
//! nft); skips with a printed reason without them, except in CI.

use std::path::{Path, PathBuf};
use std::process::Command;

use rvs_compare::report::{Comparison, Load, ROUTING};

fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root".into());
    }
    for p in ["wrk", "nginx", "haproxy", "nft", "curl", "ethtool"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{p} not installed (scripts/install-deps.sh)"));
        }
    }
    None
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Skip (return early from) a test without root or the peers, printing why; fail in CI.
macro_rules! require_rig {
    () => {
        if let Some(why) = unavailable() {
            if std::env::var_os("CI").is_some() {
                panic!("the comparison smoke run cannot run in CI: {why}");
            }
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// `rvs-compare run` with short runs and `extra` arguments into a scratch directory: the
/// directory, the parsed compare.json, stdout and stderr. Panics when the run fails.
fn run_rig(tag: &str, extra: &[&str]) -> (PathBuf, Comparison, String, String) {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rvs-compare"));
    let rvsd = exe.with_file_name("rvsd");
    assert!(
        rvsd.exists() && exe.with_file_name("ipvsadm").exists(),
        "rvsd and ipvsadm not built next to {}: run `cargo build --workspace` first",
        exe.display()
    );
    let (out, run) = rig_output(tag, extra);
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(
        run.status.success(),
        "rvs-compare run failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
    let c: Comparison =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    (out, c, stdout, stderr)
}

/// `rvs-compare run` (short runs, `extra` arguments), whatever its outcome: the output
/// directory and the process's output.
fn rig_output(tag: &str, extra: &[&str]) -> (PathBuf, std::process::Output) {
    // One rig at a time: each runs rvsd, nginx and wrk on a machine that may have two CPUs.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rvs-compare"));
    let out = std::env::temp_dir().join(format!("rvs-compare-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(&exe)
        .args([
            "run",
            "--seconds",
            "1",
            "--connections",
            "4",
            "--wrk-threads",
            "1",
        ])
        .args(["--udp-flows", "2", "--id", tag])
        .args(extra)
        .arg("--repo")
        .arg(repo())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    (out, run)
}

#[test]
fn every_director_serves_every_request() {
    require_rig!();
    let (out, c, stdout, stderr) = run_rig("cmpsmk", &[]);
    let directors = [
        ROUTING,
        "nftables DNAT",
        "HAProxy tcp",
        "rvs NAT",
        "rvs FULLNAT",
        "rvs DR",
    ];
    for d in directors {
        for load in Load::ALL {
            if d == "HAProxy tcp" && load == Load::Udp {
                assert!(
                    c.skipped
                        .iter()
                        .any(|s| s.director == d && s.load == Some(load) && !s.reason.is_empty()),
                    "HAProxy's UDP not skipped with a reason:\n{stdout}"
                );
                continue;
            }
            let m = c
                .results
                .iter()
                .find(|m| m.director == d && m.load == load)
                .unwrap_or_else(|| panic!("{d} {} not measured:\n{stdout}", load.name()));
            assert!(
                m.requests > 0,
                "{d} {}: nothing served:\n{stdout}",
                load.name()
            );
            assert_eq!(
                m.errors,
                0,
                "{d} {}: requests failed:\n{stdout}",
                load.name()
            );
            assert!(
                m.ratio_to_routing.is_some(),
                "{d} {}: no ratio",
                load.name()
            );
            if d.starts_with("rvs") || d.starts_with("HAProxy") {
                assert!(m.director_cpu_seconds.is_some(), "{d}: no process CPU");
            }
            if load == Load::Udp && d != ROUTING {
                // Both real servers answered through the director.
                assert_eq!(m.per_server.len(), 2, "{d} udp: {:?}", m.per_server);
            }
        }
    }
    // IPVS: measured where ip_vs loads, else skipped with the reason.
    let ipvs_measured = c.results.iter().any(|m| m.director == "IPVS NAT");
    let ipvs_skipped = c
        .skipped
        .iter()
        .any(|s| s.director == "IPVS NAT" && s.load.is_none() && !s.reason.is_empty());
    assert!(
        ipvs_measured != ipvs_skipped,
        "IPVS neither measured nor skipped:\n{stdout}"
    );
    for f in [
        "compare.txt",
        "compare-requests.svg",
        "compare-cpu.svg",
        "compare-latency.svg",
    ] {
        let len = std::fs::metadata(out.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{f} not written");
    }
    // Nothing left behind: the networks' namespaces are gone.
    let ids: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("network "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "two networks (routed, one segment):\n{stderr}"
    );
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ns = String::from_utf8_lossy(&ns.stdout);
    for id in ids {
        assert!(
            !ns.lines().any(|l| l.starts_with(&format!("{id}-"))),
            "namespaces {id}-* left behind:\n{ns}"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// A/B: two builds of rvs (here the same binary twice) each get their own director runs, named
/// `[a]` and `[b]`, and the table gives b over a.
#[test]
fn a_b_runs_both_builds() {
    require_rig!();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rvs-compare"));
    let rvsd = exe.with_file_name("rvsd").display().to_string();
    let (out, c, stdout, _) = run_rig(
        "cmpab",
        &[
            "--rvs-a",
            &rvsd,
            "--rvs-b",
            &rvsd,
            "--directors",
            "rvs-nat",
            "--loads",
            "udp",
        ],
    );
    for d in ["rvs NAT [a]", "rvs NAT [b]"] {
        let m = c
            .results
            .iter()
            .find(|m| m.director == d && m.load == Load::Udp)
            .unwrap_or_else(|| panic!("{d} not measured:\n{stdout}"));
        assert!(m.requests > 0 && m.errors == 0, "{d}: {m:?}");
    }
    assert_eq!(c.results.len(), 2, "only the two rvs NAT runs:\n{stdout}");
    assert!(stdout.contains("A/B (requests/s of b over a):"), "{stdout}");
    assert!(
        c.notes.iter().any(|n| n.starts_with("A/B: [a] = ")),
        "{:?}",
        c.notes
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// A director that fails (here an "rvsd" that exits at once) is reported with its error, the
/// others are still measured and written, and the command exits non-zero.
#[test]
fn a_failing_director_loses_nothing_else() {
    require_rig!();
    let (out, run) = rig_output(
        "cmpfail",
        &[
            "--rvsd",
            "/bin/false",
            "--directors",
            "routing,rvs-nat",
            "--loads",
            "udp",
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success(),
        "a failed director must fail the run:\n{stderr}"
    );
    assert!(stderr.contains("1 director(s) failed: rvs NAT"), "{stderr}");
    let c: Comparison =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    let routing = c
        .results
        .iter()
        .find(|m| m.director == ROUTING && m.load == Load::Udp)
        .expect("routing measured before the failure");
    assert!(routing.requests > 0 && routing.errors == 0, "{routing:?}");
    assert_eq!(c.failures.len(), 1, "{:?}", c.failures);
    assert_eq!(c.failures[0].director, "rvs NAT");
    assert!(
        c.failures[0].reason.contains("exited"),
        "{}",
        c.failures[0].reason
    );
    let table = std::fs::read_to_string(out.join("compare.txt")).unwrap();
    assert!(table.contains("FAILED: rvs NAT: "), "{table}");
    std::fs::remove_dir_all(&out).unwrap();
}
