//! The bodies of rvs's fuzz targets, as ordinary library functions.
//!
//! `fuzz/` (a cargo-fuzz crate, built on nightly) wraps each function in a `fuzz_target!`; the
//! stable test `tests/replay.rs` feeds the same functions every committed seed
//! (`fuzz/corpus/TARGET/`) and every crash input kept in `fuzz/artifacts/TARGET/`, so CI keeps
//! them without a nightly toolchain. Every function takes arbitrary bytes, never panics on bad
//! input, and panics (a finding) only when rvs itself misbehaves.
#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod ipvsadm;
pub mod keepalived;
pub mod worker;

/// A fuzz target: its name (the `fuzz/fuzz_targets/NAME.rs` file and corpus directory) and body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `make fuzz` runs them.
pub const TARGETS: [Target; 6] = [
    ("worker_raw", worker::raw),
    ("worker_structured", worker::structured),
    ("ipvsadm_cmdline", ipvsadm::cmdline),
    ("control_request", control::request),
    ("config_toml", config::toml),
    ("keepalived", keepalived::config),
];
