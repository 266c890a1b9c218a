//! dpdk-bindings: rvs's only FFI crate. bindgen declarations for the system DPDK
//! (`pkg-config libdpdk`) in [`sys`], a small C shim for DPDK's `static inline` fast-path
//! functions (`csrc/shim.c`), and a safe layer the daemon uses without writing `unsafe`:
//!
//! | type | DPDK object | owner / thread |
//! |---|---|---|
//! | [`Eal`] | `rte_eal_init` / `rte_eal_cleanup` | the main lcore (the thread that called `init`) |
//! | [`launch`] -> [`LaunchHandle`] | `rte_eal_remote_launch` / `rte_eal_wait_lcore` | main lcore |
//! | [`Mempool`] | `rte_pktmbuf_pool_create` | shared by all lcores (`Clone + Send + Sync`) |
//! | [`Mbuf`] | one packet (`rte_mbuf` chain) | one owner at a time (`Send`) |
//! | [`MbufBatch`] | an inline array of up to N packets | the burst unit; no allocation |
//! | [`Port`] | an ethdev (configure, start, stop, stats) | the control thread (`Send`) |
//! | [`RxQueue`] / [`TxQueue`] | one device queue | the worker polling it (`Send`) |
//! | [`Ring`] -> [`RingProducer`] / [`RingConsumer`] | `rte_ring` of mbufs | one end per lcore |
//!
//! # Safety model
//! - All `unsafe` lives in this crate; every block names the invariant it relies on.
//! - DPDK memory must not be used after `rte_eal_cleanup`. Every resource in DPDK memory
//!   (mempool, ring, port, launched lcore) holds a share of the EAL; cleanup runs when the
//!   [`Eal`] and all of them are gone. A [`Mempool`] is freed only when none of its mbufs is in
//!   use; otherwise it (and the EAL) is leaked with a warning, so an [`Mbuf`] can never dangle.
//! - An [`Mbuf`] is the unique owner of its buffer (reference count 1, direct), which makes
//!   `data_mut` sound. Length operations (`prepend`, `adj`, `append`, `trim`) check bounds and
//!   return [`NoRoom`] instead of failing or panicking.
//! - Burst calls move ownership explicitly: `tx_burst` / `enqueue_burst` take packets from the
//!   front of an [`MbufBatch`] and leave the rest in it; `rx_burst` / `dequeue_burst` fill its
//!   spare slots. Dropping a batch frees what it holds.
//! - A panic in a launched closure is caught on the worker lcore (it never unwinds into C) and
//!   reported by [`LaunchHandle::wait`]. With `panic = "abort"` it aborts the process instead.
//!
//! # Threading rules
//! - [`Eal::init`] once per process; its thread is the main lcore. Only the main lcore launches
//!   and waits for lcores.
//! - ethdev control calls are not thread-safe: [`Port`] is `Send` but not `Sync`, and its
//!   state-changing methods take `&mut self`. Each queue has at most one live handle; handles
//!   poll through `&mut self`, so each queue is polled by one thread at a time, as DPDK
//!   requires. [`Port::stop`] refuses while queue handles are alive.
//! - Mempool get/put is thread-safe; EAL lcores use per-lcore caches, other threads none.
//! - A single-producer/single-consumer ring has exactly one producer and one consumer handle.
//!
//! # EAL arguments that work here (tests, laptops, CI; no hugepages, no NIC)
//! `--no-huge -m 256 --no-pci --no-shconf --no-telemetry --log-level=lib.eal:warning -l 0-1`
//! plus `--vdev ...` per virtual port. `--no-shconf` (no shared config, no multi-process
//! socket) and `--no-telemetry` leave only an empty `/var/run/dpdk/rte` directory, so several
//! DPDK processes (e.g. parallel test binaries) run side by side; checked with 12 at once.
//! `--in-memory` does NOT work with `--no-huge` (EAL: "--legacy-mem is not compatible with
//! --in-memory"); with real hugepages prefer `--in-memory`. PMDs (net_null,
//! net_ring, net_pcap, net_af_packet ...) are plugins that the Debian EAL loads from
//! `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`; nothing extra is linked.
//!
//! net_pcap behaviour (used by the pcap golden tests) is described in [`port`].
//!
//! DPDK versions: 22.11 (Debian 12) is what every test runs on. The build also accepts the later
//! LTS releases 23.11 and 24.11 (`build.rs`, with a warning that they are untested) and reads what
//! changed between them in a version-independent way: the `rte_mbuf` fields [`Mbuf`] uses by
//! offsets clang computes from the installed headers (24.03 moved them into anonymous unions,
//! which bindgen names differently), their sizes checked at compile time in `csrc/shim.c`, and the
//! link state (`rte_eth_link` became a union in 24.x) through the shim. On 22.11 a test checks
//! that the offsets are the fields. The plugin directory follows the ABI version
//! (`pmds-23.0` for 22.11, `pmds-24.0` for 23.11, `pmds-25.0` for 24.11).

mod afpacket;
mod batch;
mod eal;
mod error;
mod lcore;
mod mbuf;
mod mem;
mod mempool;
pub mod port;
mod ring;
pub mod rss;
pub mod sys;

pub use batch::{BURST, Drain, MbufBatch};
pub use eal::{Eal, SOCKET_ID_ANY, lcore_id, rdtsc, socket_id, tsc_hz, version};
pub use error::{DpdkError, NoRoom};
pub use lcore::{LaunchHandle, launch};
pub use mbuf::Mbuf;
pub use mem::{HUGE_PAGE, advise_hugepages, prefetch};
pub use mempool::{DEFAULT_DATA_ROOM, Mempool};
pub use port::{
    LinkStatus, Port, PortConfig, PortInfo, PortStats, RssConfig, RxQueue, TxQueue, add_vdev,
    port_id_by_name, port_info, remove_vdev,
};
pub use ring::{Ring, RingConsumer, RingMode, RingProducer};

#[cfg(test)]
mod thread_bounds {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_cross_threads_as_documented() {
        send::<crate::Mbuf>();
        send::<crate::MbufBatch>();
        send::<crate::Port>();
        send::<crate::RxQueue>();
        send::<crate::TxQueue>();
        send_sync::<crate::Eal>();
        send_sync::<crate::Mempool>();
        send_sync::<crate::Ring>();
        send_sync::<crate::RingProducer>();
        send_sync::<crate::RingConsumer>();
    }
}
