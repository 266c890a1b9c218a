//! Forwarding methods, one file each (IPVS's `ip_vs_xmit.c` split by method): what a method
//! changes on the wire, in place, with incremental checksums. Routing, TTL and the Ethernet
//! header are the worker's; these functions only rewrite IP and L4 headers.

pub mod dr;
pub mod fullnat;
pub mod icmp;
pub mod nat;
pub mod toa;
pub mod tun;
