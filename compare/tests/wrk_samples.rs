//! The wrk parser on real wrk 4.1.0 output (tests/data/README.md says how each was made).

use rvs_compare::wrk::{self, Percentiles};

fn sample(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn keepalive() {
    let r = wrk::parse(&sample("wrk-keepalive.txt")).unwrap();
    assert_eq!(r.requests, 905);
    assert!((r.seconds - 1.10).abs() < 1e-9);
    assert_eq!(
        r.latency_us,
        Percentiles {
            p50: 3870.0,
            p75: 7600.0,
            p90: 11490.0,
            p99: 16130.0
        }
    );
    assert_eq!((r.socket_errors, r.bad_responses), (0, 0));
}

#[test]
fn connection_close() {
    let r = wrk::parse(&sample("wrk-close.txt")).unwrap();
    assert_eq!(r.requests, 1139);
    assert_eq!(r.latency_us.p99, 23930.0);
    assert_eq!((r.socket_errors, r.bad_responses), (0, 0));
}

#[test]
fn not_found_counts_as_bad_responses() {
    let r = wrk::parse(&sample("wrk-404.txt")).unwrap();
    assert_eq!((r.requests, r.bad_responses), (803, 803));
}

#[test]
fn microseconds() {
    let r = wrk::parse(&sample("wrk-nginx-us.txt")).unwrap();
    assert_eq!(r.requests, 28493);
    assert_eq!((r.latency_us.p50, r.latency_us.p75), (51.0, 88.0));
    assert_eq!((r.latency_us.p90, r.latency_us.p99), (1610.0, 3890.0));
}

#[test]
fn socket_errors_add_up() {
    let r = wrk::parse(&sample("wrk-socket-errors.txt")).unwrap();
    assert_eq!(r.requests, 5054);
    assert_eq!(r.socket_errors, 3079 + 1975);
}

#[test]
fn nothing_answered() {
    let r = wrk::parse(&sample("wrk-timeouts.txt")).unwrap();
    assert_eq!(r.requests, 0);
    assert!((r.seconds - 2.01).abs() < 1e-9);
}

#[test]
fn refused_is_an_error() {
    let e = wrk::parse(&sample("wrk-refused.txt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("requests in"), "{e}");
}
