//! `/metrics`: the Prometheus text exposition (format 0.0.4) of everything rvs counts.
//!
//! Nothing on the packet path knows about this module. At scrape time the [`RvsCollector`] reads
//! what already exists: the per-worker single-writer counters ([`WorkerStats`],
//! [`LoopStats`](crate::runtime::poll::LoopStats)), the service and dest listing with its rates
//! (the very listing `ipvsadm -Ln --stats/--rate` prints, so both agree), and the
//! [`RuntimeSamples`] the main loop takes of what only it may touch (ports are not `Sync` and
//! belong to the start-up/shutdown sequence; the mempool must not outlive EAL).
//!
//! The HTTP side is deliberately tiny: one thread, one connection at a time, a bounded request
//! (8 KiB, 2 s timeouts), `GET /metrics` answered with 200 and anything else with 404 or 405.
//!
//! Families (all under `rvs_`; labels `service` = `tcp/VIP:PORT` | `udp/..` | `fwmark/N`,
//! `dest` = `RIP:PORT`, `direction` = `in` (client -> real server) | `out`, `port`, `worker`,
//! `reason`) are listed in README.md's "Observability" section and used by
//! `conf/grafana-rvs.json`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use ctl::proto::{self, Forward, ServiceInfo};
use dataplane::drop::DropReason;
use dpdk_bindings::{LinkStatus, PortStats};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use super::ControlPlane;

/// Largest request head read before answering (anything longer gets the connection closed).
const MAX_REQUEST: usize = 8 * 1024;
/// Read and write timeout of one scrape connection.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A mempool's occupancy as last sampled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MempoolSample {
    pub in_use: u64,
    pub available: u64,
    pub size: u64,
}

/// What the main loop samples for the collector (about every 100 ms).
#[derive(Debug, Default)]
pub struct RuntimeSamples {
    ports: Mutex<Vec<(String, PortStats)>>,
    mempool: Mutex<MempoolSample>,
    /// Link state per port, for `rvsctl link show`.
    links: Mutex<Vec<(String, LinkStatus)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RuntimeSamples {
    pub fn set_ports(&self, ports: Vec<(String, PortStats)>) {
        *lock(&self.ports) = ports;
    }

    pub fn set_mempool(&self, sample: MempoolSample) {
        *lock(&self.mempool) = sample;
    }

    pub fn set_links(&self, links: Vec<(String, LinkStatus)>) {
        *lock(&self.links) = links;
    }

    /// The last port counters sampled, by port name.
    pub fn port_stats(&self) -> Vec<(String, PortStats)> {
        lock(&self.ports).clone()
    }

    /// The last link states sampled, by port name.
    pub fn links(&self) -> Vec<(String, LinkStatus)> {
        lock(&self.links).clone()
    }
}

/// The label of a service.
pub fn service_label(key: &proto::ServiceKey) -> String {
    match key {
        proto::ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let p = match protocol {
                proto::Protocol::Tcp => "tcp",
                proto::Protocol::Udp => "udp",
                proto::Protocol::Sctp => "sctp",
            };
            format!("{p}/{}", SocketAddr::new(*addr, *port))
        }
        proto::ServiceKey::Fwmark { mark, .. } => format!("fwmark/{mark}"),
    }
}

fn forward_name(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "masq",
        Forward::Local => "local",
        Forward::Tunnel => "tunnel",
        Forward::Route => "route",
        Forward::FullNat => "fullnat",
    }
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    // The names and labels below are constants and valid: `new` cannot fail on them.
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric name")
}

/// The metric families, refilled at every scrape.
struct Families {
    svc_conns: IntCounterVec,
    svc_active: IntGaugeVec,
    svc_inactive: IntGaugeVec,
    svc_persistent: IntGaugeVec,
    svc_packets: IntCounterVec,
    svc_bytes: IntCounterVec,
    svc_cps: IntGaugeVec,
    svc_refused: IntCounterVec,
    svc_pps: IntGaugeVec,
    svc_bps: IntGaugeVec,
    dest_conns: IntCounterVec,
    dest_active: IntGaugeVec,
    dest_inactive: IntGaugeVec,
    dest_persistent: IntGaugeVec,
    dest_weight: IntGaugeVec,
    dest_packets: IntCounterVec,
    dest_bytes: IntCounterVec,
    dest_cps: IntGaugeVec,
    dest_pps: IntGaugeVec,
    dest_bps: IntGaugeVec,
    port_rx_packets: IntCounterVec,
    port_tx_packets: IntCounterVec,
    port_rx_bytes: IntCounterVec,
    port_tx_bytes: IntCounterVec,
    port_rx_missed: IntCounterVec,
    port_rx_errors: IntCounterVec,
    port_tx_errors: IntCounterVec,
    port_rx_nombuf: IntCounterVec,
    worker_rx_packets: IntCounterVec,
    worker_tx_packets: IntCounterVec,
    worker_rx_bytes: IntCounterVec,
    worker_tx_bytes: IntCounterVec,
    worker_polls: IntCounterVec,
    worker_busy_polls: IntCounterVec,
    worker_busy_ratio: GaugeVec,
    worker_redirects_sent: IntCounterVec,
    worker_redirects_received: IntCounterVec,
    worker_ring_overflows: IntCounterVec,
    worker_tx_dropped: IntCounterVec,
    worker_rx_chained: IntCounterVec,
    worker_conn_reuses: IntCounterVec,
    worker_icmp_errors_limited: IntCounterVec,
    worker_embryonic_shortened: IntCounterVec,
    worker_synproxy: IntCounterVec,
    worker_client_addr: IntCounterVec,
    worker_src_rate_evictions: IntCounterVec,
    worker_embryonic_evicted: IntCounterVec,
    worker_ipv4_options: IntCounterVec,
    worker_conns: IntGaugeVec,
    worker_conn_capacity: IntGaugeVec,
    drops: IntCounterVec,
    mempool_in_use: IntGaugeVec,
    mempool_available: IntGaugeVec,
    mempool_size: IntGaugeVec,
    neigh_entries: IntGaugeVec,
    neigh_unresolved_drops: IntCounterVec,
    neigh_solicits: IntCounterVec,
    laddr_used: IntGaugeVec,
    laddr_misses: IntCounterVec,
    laddr_ports: IntGaugeVec,
    exc_to_packets: IntCounterVec,
    exc_to_bytes: IntCounterVec,
    exc_from_packets: IntCounterVec,
    exc_from_bytes: IntCounterVec,
    exc_drops: IntCounterVec,
    ctl_open: IntGaugeVec,
    ctl_accepted: IntCounterVec,
    ctl_refused: IntCounterVec,
    ctl_timeouts: IntCounterVec,
    /// Poll and busy-poll counts of each worker at the previous scrape (for the busy ratio).
    previous_polls: Vec<(u64, u64)>,
}

const SVC: &[&str] = &["service"];
const LIP: &[&str] = &["lip", "port"];
const SVC_DIR: &[&str] = &["service", "direction"];
const DEST: &[&str] = &["service", "dest"];
const DEST_W: &[&str] = &["service", "dest", "forward"];
const DEST_DIR: &[&str] = &["service", "dest", "direction"];
const PORT: &[&str] = &["port"];
const WORKER: &[&str] = &["worker"];
const POOL: &[&str] = &["pool"];

impl Families {
    fn new() -> Families {
        Families {
            svc_conns: counter(
                "rvs_service_connections_total",
                "Connections scheduled by the service (ipvsadm Conns).",
                SVC,
            ),
            svc_active: gauge(
                "rvs_service_active_connections",
                "Active connections over the service's dests.",
                SVC,
            ),
            svc_inactive: gauge(
                "rvs_service_inactive_connections",
                "Inactive connections over the service's dests.",
                SVC,
            ),
            svc_persistent: gauge(
                "rvs_service_persistent_connections",
                "Persistence templates over the service's dests.",
                SVC,
            ),
            svc_packets: counter(
                "rvs_service_packets_total",
                "Packets of the service, in = client to real server, out = back.",
                SVC_DIR,
            ),
            svc_bytes: counter(
                "rvs_service_bytes_total",
                "Bytes of the service, in = client to real server, out = back.",
                SVC_DIR,
            ),
            svc_cps: gauge(
                "rvs_service_cps",
                "Connections per second (IPVS estimator, 2 s samples, EWMA 1/4).",
                SVC,
            ),
            svc_refused: counter(
                "rvs_service_refused_total",
                "New connections the service refused, by drop reason (access lists, \
                 --conn-limit, --conn-rate, --src-rate, real-server sources).",
                &["service", "reason"],
            ),
            svc_pps: gauge(
                "rvs_service_pps",
                "Packets per second (IPVS estimator).",
                SVC_DIR,
            ),
            svc_bps: gauge(
                "rvs_service_bps",
                "Bytes per second (IPVS estimator).",
                SVC_DIR,
            ),
            dest_conns: counter(
                "rvs_dest_connections_total",
                "Connections scheduled to the dest.",
                DEST,
            ),
            dest_active: gauge(
                "rvs_dest_active_connections",
                "Active connections of the dest (ipvsadm ActiveConn).",
                DEST,
            ),
            dest_inactive: gauge(
                "rvs_dest_inactive_connections",
                "Inactive connections of the dest (ipvsadm InActConn).",
                DEST,
            ),
            dest_persistent: gauge(
                "rvs_dest_persistent_connections",
                "Persistence templates pointing at the dest.",
                DEST,
            ),
            dest_weight: gauge(
                "rvs_dest_weight",
                "Weight of the dest, labelled with its forwarding method.",
                DEST_W,
            ),
            dest_packets: counter(
                "rvs_dest_packets_total",
                "Packets of the dest, in = client to real server, out = back.",
                DEST_DIR,
            ),
            dest_bytes: counter(
                "rvs_dest_bytes_total",
                "Bytes of the dest, in = client to real server, out = back.",
                DEST_DIR,
            ),
            dest_cps: gauge(
                "rvs_dest_cps",
                "Connections per second to the dest (IPVS estimator).",
                DEST,
            ),
            dest_pps: gauge(
                "rvs_dest_pps",
                "Packets per second of the dest (IPVS estimator).",
                DEST_DIR,
            ),
            dest_bps: gauge(
                "rvs_dest_bps",
                "Bytes per second of the dest (IPVS estimator).",
                DEST_DIR,
            ),
            port_rx_packets: counter(
                "rvs_port_rx_packets_total",
                "Packets received by the port.",
                PORT,
            ),
            port_tx_packets: counter(
                "rvs_port_tx_packets_total",
                "Packets sent by the port.",
                PORT,
            ),
            port_rx_bytes: counter(
                "rvs_port_rx_bytes_total",
                "Bytes received by the port.",
                PORT,
            ),
            port_tx_bytes: counter("rvs_port_tx_bytes_total", "Bytes sent by the port.", PORT),
            port_rx_missed: counter(
                "rvs_port_rx_missed_total",
                "Packets the port dropped for lack of rx descriptors.",
                PORT,
            ),
            port_rx_errors: counter(
                "rvs_port_rx_errors_total",
                "Erroneous packets received by the port.",
                PORT,
            ),
            port_tx_errors: counter(
                "rvs_port_tx_errors_total",
                "Failed transmissions of the port.",
                PORT,
            ),
            port_rx_nombuf: counter(
                "rvs_port_rx_nombuf_total",
                "Receive mbuf allocation failures of the port.",
                PORT,
            ),
            worker_rx_packets: counter(
                "rvs_worker_rx_packets_total",
                "Packets the worker received.",
                WORKER,
            ),
            worker_tx_packets: counter(
                "rvs_worker_tx_packets_total",
                "Packets the worker sent.",
                WORKER,
            ),
            worker_rx_bytes: counter(
                "rvs_worker_rx_bytes_total",
                "Bytes the worker received.",
                WORKER,
            ),
            worker_tx_bytes: counter(
                "rvs_worker_tx_bytes_total",
                "Bytes the worker sent.",
                WORKER,
            ),
            worker_polls: counter(
                "rvs_worker_polls_total",
                "Poll-loop iterations of the worker.",
                WORKER,
            ),
            worker_busy_polls: counter(
                "rvs_worker_busy_polls_total",
                "Poll-loop iterations that found packets.",
                WORKER,
            ),
            worker_busy_ratio: GaugeVec::new(
                Opts::new(
                    "rvs_worker_busy_ratio",
                    "Share of poll iterations that found packets, since the previous scrape.",
                ),
                WORKER,
            )
            .expect("valid metric name"),
            worker_redirects_sent: counter(
                "rvs_worker_redirects_sent_total",
                "Packets handed to their owner worker through its ring.",
                WORKER,
            ),
            worker_redirects_received: counter(
                "rvs_worker_redirects_received_total",
                "Packets received from other workers' rings.",
                WORKER,
            ),
            worker_ring_overflows: counter(
                "rvs_worker_ring_overflows_total",
                "Packets dropped because a redirect ring was full.",
                WORKER,
            ),
            worker_tx_dropped: counter(
                "rvs_worker_tx_dropped_total",
                "Packets the NIC would not take after retries.",
                WORKER,
            ),
            worker_rx_chained: counter(
                "rvs_worker_rx_chained_total",
                "Chained (multi-segment) mbufs dropped before the dataplane.",
                WORKER,
            ),
            worker_conn_reuses: counter(
                "rvs_worker_conn_reuses_total",
                "Closing connections (TIME_WAIT, CLOSE) ended early because a new connection \
                 needed their tuple: their client opened a new one on the same port \
                 (conn_reuse_mode), or toward another VIP of the same real server (NAT).",
                WORKER,
            ),
            worker_icmp_errors_limited: counter(
                "rvs_worker_icmp_errors_limited_total",
                "ICMP errors not sent because the worker's budget (icmp_errors_per_sec) was spent.",
                WORKER,
            ),
            worker_embryonic_shortened: counter(
                "rvs_worker_embryonic_shortened_total",
                "Embryonic connections (TCP SYN_RECV, NAT/FULLNAT UDP without a reply) given a \
                 1 s grace because the worker's table was over 7/8 full.",
                WORKER,
            ),
            worker_synproxy: counter(
                "rvs_worker_synproxy_total",
                "SYN proxy, by stage: SYNs answered with a cookie (cookie), ACKs that proved one \
                 and opened a connection (open), connections the real server accepted \
                 (established).",
                &["worker", "stage"],
            ),
            worker_client_addr: counter(
                "rvs_worker_client_addr_total",
                "What FULLNAT told real servers about clients, by kind: PROXY headers on TCP \
                 connections (proxy_tcp), of which sent in a segment of their own \
                 (proxy_standalone), PROXY v2 headers on UDP datagrams (proxy_udp), datagrams \
                 with the UOA option (uoa).",
                &["worker", "kind"],
            ),
            worker_src_rate_evictions: counter(
                "rvs_worker_src_rate_evictions_total",
                "Sources evicted (least recently used) from the worker's fixed-size per-source \
                 rate table (--src-rate) to make room for another.",
                WORKER,
            ),
            worker_embryonic_evicted: counter(
                "rvs_worker_embryonic_evicted_total",
                "Embryonic connections (TCP SYN_RECV, NAT/FULLNAT UDP without a reply) removed, \
                 least recently opened or answered first, to make room for a new connection \
                 in the worker's full table.",
                WORKER,
            ),
            worker_ipv4_options: counter(
                "rvs_worker_ipv4_options_total",
                "Received IPv4 packets with options (forwarded untouched).",
                WORKER,
            ),
            worker_conns: gauge(
                "rvs_worker_connections",
                "Connections in the worker's table.",
                WORKER,
            ),
            worker_conn_capacity: gauge(
                "rvs_worker_connection_capacity",
                "Capacity of the worker's connection table.",
                WORKER,
            ),
            drops: counter(
                "rvs_drops_total",
                "Packets dropped by the dataplane, by reason.",
                &["worker", "reason"],
            ),
            mempool_in_use: gauge("rvs_mempool_in_use", "Packet buffers in use.", POOL),
            mempool_available: gauge("rvs_mempool_available", "Packet buffers available.", POOL),
            mempool_size: gauge("rvs_mempool_size", "Packet buffers in the pool.", POOL),
            neigh_entries: gauge(
                "rvs_neighbour_entries",
                "Entries in the worker's neighbour (ARP) table.",
                WORKER,
            ),
            neigh_unresolved_drops: counter(
                "rvs_neighbour_unresolved_drops_total",
                "Packets dropped waiting for ARP (queue full or resolution timed out).",
                WORKER,
            ),
            neigh_solicits: counter(
                "rvs_neighbour_solicits_total",
                "ARP requests sent: kind=\"request\" (broadcast, resolving) or \"probe\" \
                 (unicast, re-confirming a known neighbour).",
                &["worker", "kind"],
            ),
            laddr_used: gauge(
                "rvs_laddr_used_ports",
                "FULLNAT local ports in use on a local address (one per connection).",
                LIP,
            ),
            laddr_misses: counter(
                "rvs_laddr_misses_total",
                "New FULLNAT connections refused for want of a free local port on this address.",
                LIP,
            ),
            laddr_ports: gauge(
                "rvs_laddr_ports_per_dest",
                "Local ports a local address offers towards each real server (pool size).",
                LIP,
            ),
            exc_to_packets: counter(
                "rvs_exception_to_kernel_packets_total",
                "Frames handed to the port's kernel twin (exception path).",
                PORT,
            ),
            exc_to_bytes: counter(
                "rvs_exception_to_kernel_bytes_total",
                "Bytes handed to the port's kernel twin.",
                PORT,
            ),
            exc_from_packets: counter(
                "rvs_exception_from_kernel_packets_total",
                "Frames the kernel sent on the port's twin, queued for the port.",
                PORT,
            ),
            exc_from_bytes: counter(
                "rvs_exception_from_kernel_bytes_total",
                "Bytes the kernel sent on the port's twin.",
                PORT,
            ),
            exc_drops: counter(
                "rvs_exception_drops_total",
                "Exception-path frames dropped: rate_limit, ring_full (worker to kernel thread), \
                 kernel_full (twin device), egress_full (kernel to port).",
                &["port", "reason"],
            ),
            ctl_open: gauge(
                "rvs_control_connections",
                "Control socket connections being served now.",
                &[],
            ),
            ctl_accepted: counter(
                "rvs_control_connections_total",
                "Control socket connections accepted and served.",
                &[],
            ),
            ctl_refused: counter(
                "rvs_control_connections_refused_total",
                "Control socket connections refused: reason=\"cap\" ([control] max_connections \
                 were open).",
                &["reason"],
            ),
            ctl_timeouts: counter(
                "rvs_control_connections_timeouts_total",
                "Control socket connections closed after [control] idle_timeout_ms: \
                 reason=\"idle\" (nothing sent) or \"unread\" (a reply not read).",
                &["reason"],
            ),
            previous_polls: Vec::new(),
        }
    }

    fn collectors(&self) -> Vec<&dyn Collector> {
        vec![
            &self.ctl_open,
            &self.ctl_accepted,
            &self.ctl_refused,
            &self.ctl_timeouts,
            &self.svc_conns,
            &self.svc_active,
            &self.svc_inactive,
            &self.svc_persistent,
            &self.svc_packets,
            &self.svc_bytes,
            &self.svc_cps,
            &self.svc_refused,
            &self.svc_pps,
            &self.svc_bps,
            &self.dest_conns,
            &self.dest_active,
            &self.dest_inactive,
            &self.dest_persistent,
            &self.dest_weight,
            &self.dest_packets,
            &self.dest_bytes,
            &self.dest_cps,
            &self.dest_pps,
            &self.dest_bps,
            &self.port_rx_packets,
            &self.port_tx_packets,
            &self.port_rx_bytes,
            &self.port_tx_bytes,
            &self.port_rx_missed,
            &self.port_rx_errors,
            &self.port_tx_errors,
            &self.port_rx_nombuf,
            &self.worker_rx_packets,
            &self.worker_tx_packets,
            &self.worker_rx_bytes,
            &self.worker_tx_bytes,
            &self.worker_polls,
            &self.worker_busy_polls,
            &self.worker_busy_ratio,
            &self.worker_redirects_sent,
            &self.worker_redirects_received,
            &self.worker_ring_overflows,
            &self.worker_tx_dropped,
            &self.worker_rx_chained,
            &self.worker_conn_reuses,
            &self.worker_icmp_errors_limited,
            &self.worker_embryonic_shortened,
            &self.worker_synproxy,
            &self.worker_client_addr,
            &self.worker_src_rate_evictions,
            &self.worker_embryonic_evicted,
            &self.worker_ipv4_options,
            &self.worker_conns,
            &self.worker_conn_capacity,
            &self.drops,
            &self.mempool_in_use,
            &self.mempool_available,
            &self.mempool_size,
            &self.neigh_entries,
            &self.neigh_unresolved_drops,
            &self.neigh_solicits,
            &self.laddr_used,
            &self.laddr_misses,
            &self.laddr_ports,
            &self.exc_to_packets,
            &self.exc_to_bytes,
            &self.exc_from_packets,
            &self.exc_from_bytes,
            &self.exc_drops,
        ]
    }

    fn reset(&self) {
        macro_rules! reset_all {
            ($($f:ident),*) => { $( self.$f.reset(); )* };
        }
        reset_all!(
            ctl_open,
            ctl_accepted,
            ctl_refused,
            ctl_timeouts,
            laddr_used,
            laddr_misses,
            laddr_ports,
            svc_conns,
            svc_active,
            svc_inactive,
            svc_persistent,
            svc_packets,
            svc_bytes,
            svc_cps,
            svc_refused,
            svc_pps,
            svc_bps,
            dest_conns,
            dest_active,
            dest_inactive,
            dest_persistent,
            dest_weight,
            dest_packets,
            dest_bytes,
            dest_cps,
            dest_pps,
            dest_bps,
            port_rx_packets,
            port_tx_packets,
            port_rx_bytes,
            port_tx_bytes,
            port_rx_missed,
            port_rx_errors,
            port_tx_errors,
            port_rx_nombuf,
            worker_rx_packets,
            worker_tx_packets,
            worker_rx_bytes,
            worker_tx_bytes,
            worker_polls,
            worker_busy_polls,
            worker_busy_ratio,
            worker_redirects_sent,
            worker_redirects_received,
            worker_ring_overflows,
            worker_tx_dropped,
            worker_rx_chained,
            worker_conn_reuses,
            worker_icmp_errors_limited,
            worker_embryonic_shortened,
            worker_synproxy,
            worker_client_addr,
            worker_src_rate_evictions,
            worker_embryonic_evicted,
            worker_ipv4_options,
            worker_conns,
            worker_conn_capacity,
            drops,
            mempool_in_use,
            mempool_available,
            mempool_size,
            neigh_entries,
            neigh_unresolved_drops,
            neigh_solicits,
            exc_to_packets,
            exc_to_bytes,
            exc_from_packets,
            exc_from_bytes,
            exc_drops
        );
    }

    fn fill_services(&self, services: &[ServiceInfo]) {
        for s in services {
            let svc = service_label(&s.spec.key);
            let l = [svc.as_str()];
            self.svc_conns.with_label_values(&l).inc_by(s.stats.conns);
            let sum = |f: fn(&proto::DestInfo) -> u32| {
                s.dests.iter().map(|d| i64::from(f(d))).sum::<i64>()
            };
            self.svc_active
                .with_label_values(&l)
                .set(sum(|d| d.active_conns));
            self.svc_inactive
                .with_label_values(&l)
                .set(sum(|d| d.inact_conns));
            self.svc_persistent
                .with_label_values(&l)
                .set(sum(|d| d.persist_conns));
            self.svc_cps
                .with_label_values(&l)
                .set(gauge_value(s.rates.cps));
            for (reason, n) in &s.refused {
                self.svc_refused
                    .with_label_values(&[svc.as_str(), reason.as_str()])
                    .inc_by(*n);
            }
            for (dir, pkts, bytes, pps, bps) in [
                (
                    "in",
                    s.stats.inpkts,
                    s.stats.inbytes,
                    s.rates.inpps,
                    s.rates.inbps,
                ),
                (
                    "out",
                    s.stats.outpkts,
                    s.stats.outbytes,
                    s.rates.outpps,
                    s.rates.outbps,
                ),
            ] {
                let l = [svc.as_str(), dir];
                self.svc_packets.with_label_values(&l).inc_by(pkts);
                self.svc_bytes.with_label_values(&l).inc_by(bytes);
                self.svc_pps.with_label_values(&l).set(gauge_value(pps));
                self.svc_bps.with_label_values(&l).set(gauge_value(bps));
            }
            for d in &s.dests {
                let dest = SocketAddr::new(d.spec.addr, d.spec.port).to_string();
                let l = [svc.as_str(), dest.as_str()];
                self.dest_conns.with_label_values(&l).inc_by(d.stats.conns);
                self.dest_active
                    .with_label_values(&l)
                    .set(i64::from(d.active_conns));
                self.dest_inactive
                    .with_label_values(&l)
                    .set(i64::from(d.inact_conns));
                self.dest_persistent
                    .with_label_values(&l)
                    .set(i64::from(d.persist_conns));
                self.dest_cps
                    .with_label_values(&l)
                    .set(gauge_value(d.rates.cps));
                self.dest_weight
                    .with_label_values(&[svc.as_str(), dest.as_str(), forward_name(d.spec.forward)])
                    .set(i64::from(d.spec.weight));
                for (dir, pkts, bytes, pps, bps) in [
                    (
                        "in",
                        d.stats.inpkts,
                        d.stats.inbytes,
                        d.rates.inpps,
                        d.rates.inbps,
                    ),
                    (
                        "out",
                        d.stats.outpkts,
                        d.stats.outbytes,
                        d.rates.outpps,
                        d.rates.outbps,
                    ),
                ] {
                    let l = [svc.as_str(), dest.as_str(), dir];
                    self.dest_packets.with_label_values(&l).inc_by(pkts);
                    self.dest_bytes.with_label_values(&l).inc_by(bytes);
                    self.dest_pps.with_label_values(&l).set(gauge_value(pps));
                    self.dest_bps.with_label_values(&l).set(gauge_value(bps));
                }
            }
        }
    }

    fn fill_ports(&self, ports: &[(String, PortStats)]) {
        for (name, s) in ports {
            let l = [name.as_str()];
            self.port_rx_packets
                .with_label_values(&l)
                .inc_by(s.ipackets);
            self.port_tx_packets
                .with_label_values(&l)
                .inc_by(s.opackets);
            self.port_rx_bytes.with_label_values(&l).inc_by(s.ibytes);
            self.port_tx_bytes.with_label_values(&l).inc_by(s.obytes);
            self.port_rx_missed.with_label_values(&l).inc_by(s.imissed);
            self.port_rx_errors.with_label_values(&l).inc_by(s.ierrors);
            self.port_tx_errors.with_label_values(&l).inc_by(s.oerrors);
            self.port_rx_nombuf
                .with_label_values(&l)
                .inc_by(s.rx_nombuf);
        }
    }

    fn fill_workers(&mut self, workers: &[crate::runtime::WorkerHandle]) {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let mut polls_now = Vec::with_capacity(workers.len());
        for (w, h) in workers.iter().enumerate() {
            let id = w.to_string();
            let l = [id.as_str()];
            let s = &h.stats;
            self.worker_rx_packets
                .with_label_values(&l)
                .inc_by(load(&s.rx_packets));
            self.worker_tx_packets
                .with_label_values(&l)
                .inc_by(load(&s.tx_packets));
            self.worker_rx_bytes
                .with_label_values(&l)
                .inc_by(load(&s.rx_bytes));
            self.worker_tx_bytes
                .with_label_values(&l)
                .inc_by(load(&s.tx_bytes));
            let polls = load(&h.loop_stats.polls);
            let busy = load(&h.loop_stats.busy_polls);
            self.worker_polls.with_label_values(&l).inc_by(polls);
            self.worker_busy_polls.with_label_values(&l).inc_by(busy);
            let (p0, b0) = self
                .previous_polls
                .get(w)
                .copied()
                .filter(|&(p0, b0)| p0 <= polls && b0 <= busy)
                .unwrap_or((0, 0));
            let ratio = (busy - b0) as f64 / (polls - p0).max(1) as f64;
            self.worker_busy_ratio.with_label_values(&l).set(ratio);
            polls_now.push((polls, busy));
            self.worker_redirects_sent
                .with_label_values(&l)
                .inc_by(load(&h.loop_stats.redirects_sent));
            self.worker_redirects_received
                .with_label_values(&l)
                .inc_by(load(&h.loop_stats.redirects_received));
            self.worker_ring_overflows
                .with_label_values(&l)
                .inc_by(load(&h.loop_stats.ring_overflows));
            self.worker_tx_dropped
                .with_label_values(&l)
                .inc_by(load(&h.loop_stats.tx_dropped));
            self.worker_rx_chained
                .with_label_values(&l)
                .inc_by(load(&h.loop_stats.rx_chained));
            self.worker_conn_reuses
                .with_label_values(&l)
                .inc_by(load(&s.conn_reuses));
            self.worker_icmp_errors_limited
                .with_label_values(&l)
                .inc_by(load(&s.icmp_errors_limited));
            self.worker_embryonic_shortened
                .with_label_values(&l)
                .inc_by(load(&s.embryonic_shortened));
            for (stage, n) in [
                ("cookie", &s.synproxy_cookies),
                ("open", &s.synproxy_opens),
                ("established", &s.synproxy_established),
            ] {
                self.worker_synproxy
                    .with_label_values(&[l[0], stage])
                    .inc_by(load(n));
            }
            for (kind, n) in [
                ("proxy_tcp", &s.proxy_headers),
                ("proxy_standalone", &s.proxy_standalone),
                ("proxy_udp", &s.proxy_udp),
                ("uoa", &s.uoa_sent),
            ] {
                self.worker_client_addr
                    .with_label_values(&[l[0], kind])
                    .inc_by(load(n));
            }
            self.worker_src_rate_evictions
                .with_label_values(&l)
                .inc_by(load(&s.src_rate_evictions));
            self.worker_embryonic_evicted
                .with_label_values(&l)
                .inc_by(load(&s.embryonic_evicted));
            self.worker_ipv4_options
                .with_label_values(&l)
                .inc_by(load(&s.ipv4_options));
            self.worker_conns
                .with_label_values(&l)
                .set(gauge_value(load(&s.conns)));
            self.worker_conn_capacity
                .with_label_values(&l)
                .set(gauge_value(load(&s.conn_capacity)));
            self.neigh_entries
                .with_label_values(&l)
                .set(gauge_value(load(&s.neigh_entries)));
            for (reason, n) in s.drops() {
                self.drops
                    .with_label_values(&[id.as_str(), reason.label()])
                    .inc_by(n);
            }
            for (kind, c) in [("request", &s.neigh_requests), ("probe", &s.neigh_probes)] {
                self.neigh_solicits
                    .with_label_values(&[id.as_str(), kind])
                    .inc_by(load(c));
            }
            self.neigh_unresolved_drops.with_label_values(&l).inc_by(
                s.drop_count(DropReason::NeighQueueFull) + s.drop_count(DropReason::NeighTimeout),
            );
        }
        self.previous_polls = polls_now;
    }

    fn fill_laddrs(&self, laddrs: &dataplane::laddr::LaddrTable, ports: &[(String, PortStats)]) {
        let per_dest = 65_536 - u64::from(dataplane::laddr::LPORT_MIN);
        let v4 = laddrs
            .addresses()
            .map(|(ip, port, s)| (std::net::IpAddr::V4(ip), port, s));
        let v6 = laddrs
            .addresses6()
            .map(|(ip, port, s)| (std::net::IpAddr::V6(ip), port, s));
        for (ip, port, stats) in v4.chain(v6) {
            let ip = ip.to_string();
            let name = ports
                .get(usize::from(port))
                .map_or_else(|| port.to_string(), |p| p.0.clone());
            let l = [ip.as_str(), name.as_str()];
            self.laddr_used
                .with_label_values(&l)
                .set(gauge_value(stats.conns()));
            self.laddr_misses
                .with_label_values(&l)
                .inc_by(stats.conflicts());
            self.laddr_ports
                .with_label_values(&l)
                .set(gauge_value(per_dest));
        }
    }

    fn fill_control(&self, s: &super::server::SocketStats) {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        self.ctl_open
            .with_label_values::<&str>(&[])
            .set(gauge_value(load(&s.open)));
        self.ctl_accepted
            .with_label_values::<&str>(&[])
            .inc_by(load(&s.accepted));
        self.ctl_refused
            .with_label_values(&["cap"])
            .inc_by(load(&s.refused_cap));
        for (reason, v) in [("idle", &s.idle_timeouts), ("unread", &s.unread_timeouts)] {
            self.ctl_timeouts
                .with_label_values(&[reason])
                .inc_by(load(v));
        }
    }

    fn fill_twins(&self, ports: &[crate::runtime::PortFacts]) {
        for p in ports {
            let Some(t) = &p.kernel else { continue };
            let s = &t.stats;
            let l = [p.name.as_str()];
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            self.exc_to_packets
                .with_label_values(&l)
                .inc_by(load(&s.to_kernel_packets));
            self.exc_to_bytes
                .with_label_values(&l)
                .inc_by(load(&s.to_kernel_bytes));
            self.exc_from_packets
                .with_label_values(&l)
                .inc_by(load(&s.from_kernel_packets));
            self.exc_from_bytes
                .with_label_values(&l)
                .inc_by(load(&s.from_kernel_bytes));
            for (reason, n) in s.drops() {
                self.exc_drops
                    .with_label_values(&[p.name.as_str(), reason])
                    .inc_by(n);
            }
        }
    }

    fn fill_mempool(&self, m: MempoolSample) {
        let l = ["rvs_pkt"];
        self.mempool_in_use
            .with_label_values(&l)
            .set(gauge_value(m.in_use));
        self.mempool_available
            .with_label_values(&l)
            .set(gauge_value(m.available));
        self.mempool_size
            .with_label_values(&l)
            .set(gauge_value(m.size));
    }
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The collector: reads the control plane, the workers' counters and the runtime samples at
/// scrape time.
pub struct RvsCollector {
    control: Arc<ControlPlane>,
    samples: Arc<RuntimeSamples>,
    families: Mutex<Families>,
    descs: Vec<Desc>,
}

impl std::fmt::Debug for RvsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RvsCollector").finish_non_exhaustive()
    }
}

impl RvsCollector {
    pub fn new(control: Arc<ControlPlane>, samples: Arc<RuntimeSamples>) -> RvsCollector {
        let families = Families::new();
        let descs = families
            .collectors()
            .iter()
            .flat_map(|c| c.desc().into_iter().cloned())
            .collect();
        RvsCollector {
            control,
            samples,
            families: Mutex::new(families),
            descs,
        }
    }
}

impl Collector for RvsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let services = self.control.service_listing();
        let workers = self.control.worker_handles();
        let ports = lock(&self.samples.ports).clone();
        let mempool = *lock(&self.samples.mempool);
        let mut f = lock(&self.families);
        f.reset();
        f.fill_services(&services);
        f.fill_ports(&ports);
        f.fill_workers(&workers);
        f.fill_mempool(mempool);
        f.fill_laddrs(&self.control.tables().load().laddrs, &ports);
        f.fill_twins(&self.control.port_facts());
        f.fill_control(&self.control.socket_stats());
        f.collectors().iter().flat_map(|c| c.collect()).collect()
    }
}

/// A registry holding the rvs collector.
pub fn registry(control: Arc<ControlPlane>, samples: Arc<RuntimeSamples>) -> Registry {
    let r = Registry::new();
    // The collector's descriptors are unique by construction, so registration cannot fail.
    r.register(Box::new(RvsCollector::new(control, samples)))
        .expect("rvs metric descriptors are unique");
    r
}

/// The exposition text of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::warn!("metrics: encoding failed: {e}");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// The `/metrics` listener and its thread. Dropping it stops serving.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Bind `addr` and serve `registry` on it from one thread.
    pub fn start(addr: SocketAddr, registry: Registry) -> anyhow::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("control.metrics: cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rvs-metrics".into())
            .spawn(move || serve_loop(listener, registry, stop2))?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_loop(listener: TcpListener, registry: Registry, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = answer(stream, &registry) {
                    tracing::debug!(%peer, "metrics: request failed: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The request line of a request head, once the head is complete.
fn request_line(head: &[u8]) -> Option<&str> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| {
        // Tolerate bare-LF clients.
        head.windows(2).position(|w| w == b"\n\n")
    })?;
    let text = std::str::from_utf8(&head[..end]).ok()?;
    text.lines().next()
}

/// Status line, content type and body for a request line.
fn route(line: &str, registry: &Registry) -> (&'static str, &'static str, String) {
    let mut parts = line.split_ascii_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(registry),
        ),
        (_, "/metrics") => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        ),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".into(),
        ),
    }
}

fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let line = loop {
        if let Some(l) = request_line(&head) {
            break l.to_owned();
        }
        if head.len() >= MAX_REQUEST {
            return Err(std::io::Error::other("request head too long"));
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other(
                "connection closed before the request end",
            ));
        }
        head.extend_from_slice(&buf[..n]);
    };
    let (status, content_type, body) = route(&line, registry);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some("GET /metrics HTTP/1.1")
        );
        assert_eq!(request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(request_line(b"GET / HTTP/1.0\n\n"), Some("GET / HTTP/1.0"));
    }

    #[test]
    fn routes() {
        let r = Registry::new();
        assert_eq!(route("GET /metrics HTTP/1.1", &r).0, "200 OK");
        assert_eq!(route("GET /metrics?x=1 HTTP/1.1", &r).0, "200 OK");
        assert_eq!(
            route("POST /metrics HTTP/1.1", &r).0,
            "405 Method Not Allowed"
        );
        assert_eq!(route("GET / HTTP/1.1", &r).0, "404 Not Found");
        assert_eq!(route("", &r).0, "404 Not Found");
    }

    #[test]
    fn grafana_dashboard_uses_only_exported_families() {
        let families = Families::new();
        let names: std::collections::BTreeSet<String> = families
            .collectors()
            .iter()
            .flat_map(|c| c.desc().into_iter().map(|d| d.fq_name.clone()))
            .collect();
        assert_eq!(names.len(), families.collectors().len(), "names are unique");
        let dashboard = include_str!("../../conf/grafana-rvs.json");
        let mut used = 0;
        for (i, _) in dashboard.match_indices("rvs_") {
            let name: String = dashboard[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name == "rvs_pkt" {
                continue;
            }
            assert!(names.contains(&name), "dashboard uses unknown {name}");
            used += 1;
        }
        assert!(used > 20);
    }

    #[test]
    fn service_labels() {
        let k = proto::ServiceKey::Inet {
            protocol: proto::Protocol::Udp,
            addr: "198.18.0.100".parse().unwrap(),
            port: 53,
        };
        assert_eq!(service_label(&k), "udp/198.18.0.100:53");
        let f = proto::ServiceKey::Fwmark {
            mark: 7,
            ipv6: false,
        };
        assert_eq!(service_label(&f), "fwmark/7");
    }
}
