//! Layer-3 logic of the director: addresses it owns, routes, the neighbour table (ARP, and
//! IPv6 Neighbour Discovery in `nd`), and the packets it answers itself (ARP replies, neighbour
//! advertisements, ICMP and ICMPv6 echo replies and errors). The IPv6 parts are not wired into
//! the worker yet (docs/ipv6.md).
//!
//! Invariants: nothing here reads a clock (every timed operation takes `now`), nothing allocates
//! per packet (the neighbour table preallocates its slots, index and wait queues at construction;
//! address and route tables change only on control-plane updates), and no input can panic.
//! Packets handed to this module either come back to the caller (to send, or to drop with a
//! `DropReason`) or are rewritten in place; none is ever lost silently.

pub mod addr;
pub mod arp;
pub mod icmp;
pub mod icmp6;
pub mod nd;
pub mod neigh;
pub mod ratelimit;
pub mod route;

pub use addr::{OwnedAddr, OwnedAddrs, PortId};

pub use neigh::{NdUpdate, NeighConfig, NeighTable, Resolve};
pub use route::{NextHop, Route, RouteTable};
