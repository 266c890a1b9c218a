//! rvs's dataplane: everything that decides what happens to a packet.
//!
//! The crate is *sans-I/O* in the manner of smoltcp and quinn-proto: it never touches a NIC, never
//! reads a clock (every entry point takes a [`time::Instant`]) and contains no `unsafe`. Packets
//! are reached through the [`packet::PacketBuf`] trait, implemented by DPDK mbufs in the daemon and
//! by [`packet::HeapBuf`] in tests, so the whole load balancer runs under plain `cargo test`.
//!
//! Layout (docs/architecture.md section 1): `wire` byte views and checksums, `l3` addresses / neighbours /
//! routes / ICMP, `conn` connection table and state machines, `service` the virtual-service model
//! and its immutable snapshot, `sched` one file per scheduler, `xmit` one file per forwarding
//! method, `worker` the per-core run-to-completion loop body.
#![forbid(unsafe_code)]

pub mod conn;
pub mod drop;
pub mod fwmark;
pub mod l3;
pub mod laddr;
pub mod packet;
pub mod parse;
pub mod parse6;
pub mod persist;
pub mod sched;
pub mod service;
pub mod steer;
pub mod synproxy;
pub mod time;
pub mod wire;
pub mod worker;
pub mod xmit;

#[cfg(test)]
mod testutil;
