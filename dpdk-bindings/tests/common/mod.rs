//! Shared by the integration tests. Each test file is its own process with its own EAL, so
//! each file has a single `#[test]` that brings the EAL up with the devices it needs.

use dpdk_bindings::Eal;

/// The EAL arguments every test uses: no hugepages, no PCI scan, no files in /var/run (so test
/// binaries can run in parallel), two lcores.
pub const BASE_ARGS: &[&str] = &[
    "--no-huge",
    "-m",
    "256",
    "--no-pci",
    "--no-shconf",
    "--no-telemetry",
    "--log-level=lib.eal:warning",
    "-l",
    "0-1",
];

/// Bring the EAL up with `extra` arguments, or `None` (with the reason printed) when the test
/// cannot run here.
pub fn eal_or_skip(test: &str, extra: &[&str]) -> Option<Eal> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP {test}: DPDK needs root (run the tests as root)");
        return None;
    }
    let args: Vec<&str> = BASE_ARGS.iter().chain(extra).copied().collect();
    match Eal::init(&args) {
        Ok(eal) => Some(eal),
        Err(e) => panic!("{test}: EAL init with {args:?} failed: {e}"),
    }
}
