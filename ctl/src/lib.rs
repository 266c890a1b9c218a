//! The rvs control protocol and its clients.
//!
//! `proto` defines the requests and replies exchanged over the daemon's Unix control socket (one
//! JSON object per line, versioned). `client` is a blocking client for it. The `ipvsadm` binary
//! speaks ipvsadm 1.31's command line and prints its exact output formats; `rvsctl` shows and changes the DPDK ports' links,
//! addresses, routes, neighbours and workers, as `ip` does.
#![forbid(unsafe_code)]

pub mod client;
pub mod ipvsadm;
pub mod proto;
pub mod rvsctl;
