//! rvs-compare: rvs end to end against what an operator would run instead (plain kernel routing,
//! nftables DNAT, kernel IPVS, HAProxy), on the repository's namespace test network, with the
//! same client loads (wrk keep-alive and new connection per request, UDP request/response)
//! against real servers (nginx). Results as a table, JSON and SVG plots; the same plots for an
//! `rvs-bench` JSON report.
//!
//! Modules: [`rig`] runs the comparison over [`net`] (namespaces and processes) and the
//! directors' set-up (`directors.rs`); [`wrk`] and [`udp`] are the loads; [`cpu`] reads /proc;
//! [`machine`] describes the machine; [`report`] holds results, ratios, the table and the JSON
//! shape; [`plot`] draws.

pub mod cpu;
mod directors;
pub mod machine;
pub mod net;
pub mod plot;
pub mod report;
pub mod rig;
pub mod udp;
pub mod wrk;
