//! A worker's counters: the private ones it bumps per packet, and [`WorkerStats`], the copy it
//! publishes for the control plane (load + store, no read-modify-write) once per poll iteration.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::drop::DropReason;

/// One worker's counters, written by the worker only (load + store, no read-modify-write) and
/// read by the control plane at any time.
#[derive(Debug)]
pub struct WorkerStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Received frames used up by the worker, neither forwarded nor dropped (ARP replies and
    /// announcements that taught the neighbour table).
    pub rx_consumed: AtomicU64,
    /// Received frames handed to the port's kernel twin (see `worker::kernel`).
    pub to_kernel: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub ipv4_options: AtomicU64,
    /// Connections ended early, while they were closing (TIME_WAIT or CLOSE), because a new
    /// connection needed their tuple: their client opened a new one on the same port (IPVS's
    /// `conn_reuse_mode`), or, through NAT, toward another VIP served by the same real server.
    pub conn_reuses: AtomicU64,
    /// Broadcast ARP requests sent to resolve a neighbour.
    pub neigh_requests: AtomicU64,
    /// Unicast ARP requests sent to re-confirm a known neighbour (`Probe` state).
    pub neigh_probes: AtomicU64,
    /// ICMP errors not sent because the worker's error budget was spent.
    pub icmp_errors_limited: AtomicU64,
    /// Embryonic connections given only a short grace because the table was nearly full
    /// (`worker::pressure`).
    pub embryonic_shortened: AtomicU64,
    /// SYN proxy: SYNs answered with a cookie.
    pub synproxy_cookies: AtomicU64,
    /// SYN proxy: ACKs that proved a cookie and opened a connection.
    pub synproxy_opens: AtomicU64,
    /// SYN proxy: connections the real server accepted (renumbering from then on).
    pub synproxy_established: AtomicU64,
    /// FULLNAT: PROXY headers sent on TCP connections (in a client segment or alone), of
    /// which alone, PROXY headers sent on UDP datagrams, datagrams sent with the UOA option.
    pub proxy_headers: AtomicU64,
    pub proxy_standalone: AtomicU64,
    pub proxy_udp: AtomicU64,
    pub uoa_sent: AtomicU64,
    /// Sources evicted from the per-source rate table to make room for another
    /// (`worker::admit`).
    pub src_rate_evictions: AtomicU64,
    /// Embryonic connections removed to make room for a new connection in a full table
    /// (`worker::pressure`).
    pub embryonic_evicted: AtomicU64,
    pub conns: AtomicU64,
    pub conn_capacity: AtomicU64,
    pub neigh_entries: AtomicU64,
    pub(super) drops: [AtomicU64; DropReason::COUNT],
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            rx_consumed: AtomicU64::new(0),
            to_kernel: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            ipv4_options: AtomicU64::new(0),
            conn_reuses: AtomicU64::new(0),
            neigh_requests: AtomicU64::new(0),
            neigh_probes: AtomicU64::new(0),
            icmp_errors_limited: AtomicU64::new(0),
            embryonic_shortened: AtomicU64::new(0),
            synproxy_cookies: AtomicU64::new(0),
            synproxy_opens: AtomicU64::new(0),
            synproxy_established: AtomicU64::new(0),
            proxy_headers: AtomicU64::new(0),
            proxy_standalone: AtomicU64::new(0),
            proxy_udp: AtomicU64::new(0),
            uoa_sent: AtomicU64::new(0),
            src_rate_evictions: AtomicU64::new(0),
            embryonic_evicted: AtomicU64::new(0),
            conns: AtomicU64::new(0),
            conn_capacity: AtomicU64::new(0),
            neigh_entries: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl WorkerStats {
    /// Drops by reason, as last published.
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops[*r as usize].load(Ordering::Relaxed)))
    }

    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    pub(super) rx_packets: u64,
    pub(super) rx_bytes: u64,
    pub(super) rx_consumed: u64,
    pub(super) to_kernel: u64,
    pub(super) tx_packets: u64,
    pub(super) tx_bytes: u64,
    pub(super) ipv4_options: u64,
    pub(super) conn_reuses: u64,
    pub(super) neigh_requests: u64,
    pub(super) neigh_probes: u64,
    pub(super) icmp_errors_limited: u64,
    pub(super) embryonic_shortened: u64,
    pub(super) synproxy_cookies: u64,
    pub(super) synproxy_opens: u64,
    pub(super) synproxy_established: u64,
    pub(super) proxy_headers: u64,
    pub(super) proxy_standalone: u64,
    pub(super) proxy_udp: u64,
    pub(super) uoa_sent: u64,
    pub(super) embryonic_evicted: u64,
}

/// A connection as listings show it (`ipvsadm -Lc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnView {
    pub proto: u8,
    pub state: &'static str,
    /// Whole seconds until expiry.
    pub expires_in: u64,
    pub client: (IpAddr, u16),
    pub virt: (IpAddr, u16),
    /// The real server (an IPv4 address for a NAT64 connection's IPv4 server).
    pub dest: (IpAddr, u16),
}
