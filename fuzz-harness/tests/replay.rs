//! Every committed seed (`fuzz/corpus/TARGET/`) and every crash input kept for a regression
//! (`fuzz/artifacts/TARGET/`) through the fuzz targets' bodies, on stable: what the fuzzer once
//! found stays fixed without a nightly toolchain.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files under `fuzz/KIND/TARGET/` (none when the directory does not exist).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != ".gitkeep"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_seed_and_crash_input_replays() {
    let mut total = 0;
    for (name, body) in fuzz_harness::TARGETS {
        let seeds = inputs("corpus", name);
        assert!(
            seeds.len() >= 3,
            "fuzz/corpus/{name} has {} seeds; every target needs some",
            seeds.len()
        );
        for path in seeds.iter().chain(&inputs("artifacts", name)) {
            let data = std::fs::read(path).expect("read input");
            eprintln!("{name}: {}", path.display());
            body(&data);
            total += 1;
        }
    }
    eprintln!("{total} inputs replayed");
}

/// Every target has its `fuzz/fuzz_targets/NAME.rs` and `[[bin]]`, and nothing more is there.
#[test]
fn the_fuzz_crate_has_a_target_per_harness_function() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut files: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = fuzz_harness::TARGETS
        .iter()
        .map(|(n, _)| format!("{n}.rs"))
        .collect();
    want.sort();
    assert_eq!(files, want);
    for (name, _) in fuzz_harness::TARGETS {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
        let src = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .expect("target source");
        assert!(
            src.contains("fuzz_harness::"),
            "{name} calls no harness function"
        );
    }
}

/// The worker harness is no no-op: the first frame of every raw seed (a client's first
/// segment to a service of each method) is forwarded.
#[test]
fn worker_seeds_forward_frames() {
    for (name, data, structured) in fuzz_harness::worker::seeds() {
        if structured {
            continue;
        }
        let len = usize::from(u16::from_be_bytes([data[1], data[2]]));
        let mut rig = fuzz_harness::worker::Rig::new();
        rig.rx(0, &data[3..3 + len]);
        assert!(rig.sent() >= 1, "{name}: nothing sent");
    }
}

/// The SYN-proxy seed goes the whole way: cookie SYN-ACK, proxied SYN, window update and ACK
/// to the server, then the client's data forwarded (five frames at least).
#[test]
fn synproxy_seed_opens_a_proxied_connection() {
    let (_, data, _) = fuzz_harness::worker::seeds()
        .into_iter()
        .find(|(n, _, _)| n == "synproxy")
        .expect("seed");
    let rig = fuzz_harness::worker::structured_rig(&data);
    assert!(rig.sent() >= 5, "sent {}", rig.sent());
}

/// The seed through the FULLNAT service with the SYN proxy and PROXY v2 reaches the header:
/// the proxy's ACK to the server carries it.
#[test]
fn proxy_header_seed_sends_a_header() {
    let (_, data, _) = fuzz_harness::worker::seeds()
        .into_iter()
        .find(|(n, _, _)| n == "synproxy-proxy-header")
        .expect("seed");
    let rig = fuzz_harness::worker::structured_rig(&data);
    assert!(rig.proxy_headers() >= 1, "sent {}", rig.sent());
}

/// The IPv6 seeds reach every IPv6 method: the SYN and the ACK with data go out for each, and
/// for NAT6, FULLNAT6 and NAT64 the reply to the SYN comes back through the director too.
#[test]
fn ipv6_seeds_forward_through_every_method() {
    for (name, data, _) in fuzz_harness::worker::seeds() {
        let Some(tmpl) = name.strip_prefix("ipv6-") else {
            continue;
        };
        let tmpl: u8 = tmpl.parse().expect("template number");
        let rig = fuzz_harness::worker::structured_rig(&data);
        let want = if matches!(tmpl, 19 | 20) { 2 } else { 3 };
        assert!(rig.sent() >= want, "{name}: sent {}", rig.sent());
    }
}

/// Regenerate the worker targets' seeds into `fuzz/corpus/` (run by hand after changing the
/// record formats: `cargo test -p fuzz-harness --test replay -- --ignored write_worker_seeds`).
#[test]
#[ignore]
fn write_worker_seeds() {
    for (name, data, structured) in fuzz_harness::worker::seeds() {
        let target = if structured {
            "worker_structured"
        } else {
            "worker_raw"
        };
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        std::fs::write(dir.join(name), data).expect("write seed");
    }
}
