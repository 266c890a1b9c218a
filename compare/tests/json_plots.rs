//! The JSON document's shape (what scripts reading compare.json rely on) and the plots: every
//! file written, non-empty, an SVG naming what it plots.

use rvs_compare::machine::Machine;
use rvs_compare::plot;
use rvs_compare::report::{self, Comparison, Load, Measurement, ROUTING, Settings, Skipped};
use rvs_compare::wrk::Percentiles;

fn measurement(director: &str, load: Load, rps: f64, cpu: Option<f64>) -> Measurement {
    Measurement {
        director: director.to_owned(),
        load,
        requests: (rps * 2.0) as u64,
        errors: 0,
        seconds: 2.0,
        requests_per_sec: rps,
        latency_us: Percentiles {
            p50: 100.0,
            p75: 150.0,
            p90: 300.0,
            p99: 900.0,
        },
        director_cpu_seconds: cpu,
        machine_cpu_seconds: 1.5,
        softirq_seconds: 0.2,
        ratio_to_routing: None,
        per_server: vec![],
    }
}

fn comparison() -> Comparison {
    let mut results = Vec::new();
    for (d, f, cpu) in [
        (ROUTING, 1.0, None),
        ("nftables DNAT", 0.9, None),
        ("HAProxy tcp", 0.5, Some(0.8)),
        ("rvs NAT", 0.7, Some(0.4)),
    ] {
        for (load, base) in [
            (Load::HttpKeepalive, 50000.0),
            (Load::HttpClose, 15000.0),
            (Load::Udp, 60000.0),
        ] {
            if d == "HAProxy tcp" && load == Load::Udp {
                continue;
            }
            results.push(measurement(d, load, base * f, cpu));
        }
    }
    report::set_ratios(&mut results);
    Comparison {
        machine: Machine {
            cpu: "AMD EPYC".into(),
            cpus: 2,
            kernel: "6.1.0".into(),
            load_at_start: "0.10 0.20 0.30".into(),
            versions: vec![("wrk".into(), "wrk 4.1.0".into())],
        },
        settings: Settings {
            seconds_per_run: 2.0,
            http_connections: 32,
            wrk_threads: 2,
            udp_flows: 16,
            rvs_workers: 1,
            rvs_idle_sleep_us: 50,
            haproxy_threads: 1,
            nginx_workers: 1,
        },
        results,
        skipped: vec![Skipped {
            director: "HAProxy tcp".into(),
            load: Some(Load::Udp),
            reason: "TCP only".into(),
        }],
        failures: vec![],
        diagnostics: vec![],
        notes: vec!["a note".into()],
    }
}

#[test]
fn json_shape() {
    let c = comparison();
    let v: serde_json::Value = serde_json::to_value(&c).unwrap();
    assert_eq!(v["machine"]["cpus"], 2);
    assert_eq!(v["settings"]["seconds_per_run"], 2.0);
    let r0 = &v["results"][0];
    assert_eq!(r0["director"], ROUTING);
    assert_eq!(r0["load"], "http-keepalive");
    assert_eq!(r0["ratio_to_routing"], 1.0);
    assert_eq!(r0["latency_us"]["p99"], 900.0);
    assert!(r0["director_cpu_seconds"].is_null());
    for key in [
        "requests",
        "errors",
        "seconds",
        "requests_per_sec",
        "machine_cpu_seconds",
        "softirq_seconds",
    ] {
        assert!(r0[key].is_number(), "{key}: {r0}");
    }
    let nat_udp = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["director"] == "rvs NAT" && r["load"] == "udp")
        .unwrap();
    assert!((nat_udp["ratio_to_routing"].as_f64().unwrap() - 0.7).abs() < 1e-9);
    assert_eq!(v["skipped"][0]["load"], "udp");
    // What is written is what is read back.
    let back: Comparison = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
    // And the terminal table shows every director and the skip.
    let t = c.table();
    for d in [
        ROUTING,
        "nftables DNAT",
        "HAProxy tcp",
        "rvs NAT",
        "skipped: HAProxy tcp (udp): TCP only",
    ] {
        assert!(t.contains(d), "{d} missing:\n{t}");
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-compare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn comparison_plots_written() {
    let dir = scratch("plots");
    let files = plot::comparison(&comparison(), &dir).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "compare-requests.svg",
            "compare-cpu.svg",
            "compare-latency.svg"
        ]
    );
    for f in &files {
        let svg = std::fs::read_to_string(f).unwrap();
        assert!(svg.len() > 1000, "{}: {} bytes", f.display(), svg.len());
        assert!(svg.starts_with("<svg"), "{}", f.display());
        assert!(
            svg.contains("rvs NAT"),
            "{}: no category label",
            f.display()
        );
        assert!(svg.contains("<rect"), "{}: no bars", f.display());
    }
    let lat = std::fs::read_to_string(dir.join("compare-latency.svg")).unwrap();
    for l in ["http-keepalive", "http-close", "udp", "p99"] {
        assert!(lat.contains(l), "latency plot lacks {l}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_plot_from_a_real_report() {
    let json =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rvs-bench-1k.json");
    let report = plot::BenchReport::read(&json).unwrap();
    assert!(report.io_forward_mpps().unwrap() > 0.0);
    assert_eq!(
        report.cases().len(),
        12,
        "established, 1K: 6 method/direction x 2 distributions"
    );
    let dir = scratch("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("bench-mpps.svg");
    plot::bench(&report, &out).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg") && svg.len() > 1000);
    assert!(svg.contains("io-forward ceiling"), "no io-forward line");
    assert!(svg.contains("memory ceiling"), "no memory line");
    assert!(svg.contains("NAT in 1K conns uniform"), "no case label");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_plot_refuses_what_is_not_a_report() {
    let dir = scratch("notbench");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("x.json");
    std::fs::write(&p, "{\"rows\": 3}").unwrap();
    let e = plot::BenchReport::read(&p).unwrap_err().to_string();
    assert!(e.contains("not an rvs-bench JSON report"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
