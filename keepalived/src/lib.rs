//! rvs-keepalived: keepalived's `virtual_server` configuration and health checks, applied to
//! rvsd over its control socket. The parts, each testable alone:
//! - [`syntax`]: keepalived's file syntax (includes, comments, quotes, blocks) to a tree;
//! - [`load`] and [`model`]: the LVS keywords to typed virtual servers, real servers, checkers;
//! - [`check`]: the checkers (TCP, HTTP, misc program, DNS);
//! - [`state`]: retry, inhibit, quorum and sorry server, pure;
//! - [`program`]: the difference between what is wanted and what rvsd has, as requests;
//! - [`daemon`]: threads, signals, reload; [`metrics`]: its Prometheus endpoint.
#![forbid(unsafe_code)]

pub mod check;
pub mod daemon;
pub mod load;
pub mod metrics;
pub mod model;
pub mod program;
pub mod state;
pub mod syntax;
