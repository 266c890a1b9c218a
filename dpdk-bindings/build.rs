//! Build script: find the system DPDK with pkg-config, compile the C shim for DPDK's `static
//! inline` fast-path functions, and generate Rust declarations with bindgen.
//!
//! Poll-mode drivers (net_null, net_ring, net_pcap, net_af_packet, mempool_ring, bus_vdev ...) are
//! NOT linked: the Debian EAL loads every `.so` in its plugin directory
//! (`/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`) at `rte_eal_init`, so linking only what
//! `pkg-config --libs libdpdk` lists (under `--as-needed`) is enough.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Functions exported by the DPDK shared libraries that the safe layer calls.
const FUNCTIONS: &[&str] = &[
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_strerror",
    "rte_version",
    "rte_eal_remote_launch",
    "rte_eal_wait_lcore",
    "rte_get_main_lcore",
    "rte_get_next_lcore",
    "rte_lcore_count",
    "rte_lcore_is_enabled",
    "rte_lcore_to_socket_id",
    "rte_socket_id",
    "rte_get_tsc_hz",
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_ring_create",
    "rte_ring_free",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_count_avail",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_promiscuous_enable",
    "rte_eth_macaddr_get",
    "rte_eth_dev_get_mtu",
    "rte_eth_stats_get",
    "rte_eal_hotplug_add",
    "rte_eal_hotplug_remove",
    "rvs_.*",
];

/// Types and constants, beyond what the functions pull in.
const TYPES: &[&str] = &[
    "rte_mbuf",
    "rvs_mbuf_field",
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_stats",
];
const VARS: &[&str] = &[
    "RTE_MAX_LCORE",
    "RTE_MAX_ETHPORTS",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MBUF_DEFAULT_BUF_SIZE",
    "RTE_MBUF_F_RX_RSS_HASH",
    "RTE_ETH_RSS_.*",
    "RTE_ETH_MQ_RX_.*",
    "RTE_ETH_LINK_.*",
    "RTE_ETH_NAME_MAX_LEN",
    "RING_F_.*",
    "SOCKET_ID_ANY",
    "LCORE_ID_ANY",
];

/// `"22.11.4"` -> `(22, 11)`.
fn parse_version(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // The full cflags matter: DPDK's headers need `-include rte_config.h` and an SSE4.2-capable
    // `-march` (rte_memcpy, rte_rdtsc), which the pkg_config crate does not hand back.
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let out = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("running pkg-config: install pkg-config and libdpdk-dev (DPDK 22.11)");
    assert!(
        out.status.success(),
        "pkg-config --cflags libdpdk failed: {}; install libdpdk-dev (DPDK 22.11)",
        String::from_utf8_lossy(&out.stderr)
    );
    let cflags: Vec<String> = String::from_utf8(out.stdout)
        .expect("pkg-config output is UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    // The shim first, so that its static library comes before the DPDK libraries it uses on
    // the link line.
    let mut build = cc::Build::new();
    build.file("csrc/shim.c").include("csrc").warnings(true);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("rvs_dpdk_shim");

    // DPDK 22.11 (Debian 12) is what rvs is tested on; 23.11 and 24.11 (the later LTS releases)
    // are accepted. What differs between them and rvs uses is read in a version-independent way:
    // rte_mbuf fields by offsets clang computes (shim.h), the link state through the shim.
    let dpdk = pkg_config::Config::new()
        .range_version("22.11".."25")
        .probe("libdpdk")
        .expect("pkg-config could not find libdpdk 22.11 to 24.11: install libdpdk-dev");
    let (major, minor) = parse_version(&dpdk.version);
    println!("cargo:rustc-env=RVS_DPDK_BUILD_VERSION={}", dpdk.version);
    println!("cargo::rustc-check-cfg=cfg(dpdk_tested)");
    if (major, minor) == (22, 11) {
        // The version the test suite runs on; later ones build but are not tested here.
        println!("cargo:rustc-cfg=dpdk_tested");
    } else {
        println!(
            "cargo:warning=building against DPDK {} (rvs is tested on 22.11 only)",
            dpdk.version
        );
    }

    let mut builder = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_arg("-Icsrc")
        .clang_arg("-DRVS_SHIM_OFFSETS")
        .clang_args(&cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts);
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    let bindings = builder
        .generate()
        .expect("bindgen failed on csrc/wrapper.h (is libclang-dev installed?)");
    let out_path = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out_path.join("bindings.rs"))
        .expect("writing bindings.rs");
}
