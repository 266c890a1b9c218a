//! One worker: the run-to-completion body of a polling lcore (docs/architecture.md, "A packet's
//! way").
//!
//! [`Worker::process_burst`] takes a received burst to its end, in stages so that the cache
//! misses of different packets overlap instead of being taken one packet at a time (as VPP
//! does): every frame is parsed once ([`crate::parse`]) and its tuple hashed; the index bucket
//! of every tuple is prefetched; then the connection record of every first tag match; then each
//! packet is processed in order, finding its lines in cache. Each frame ends transmitted
//! (possibly after waiting for ARP), consumed (an ARP reply we asked for), handed to the
//! port's kernel twin ([`kernel`]), handed to the worker that owns its flow (with several
//! workers, [`Worker::process_burst_steered`]: own-first, the owner computed only for frames
//! not in this worker's table), or dropped with exactly one [`DropReason`] counted.
//! [`Worker::process`] is a burst of one. [`Worker::on_tick`] drives timers: connection expiry,
//! neighbour retransmits and timeouts. Nothing here reads a clock, allocates per packet or
//! touches DPDK; the runtime provides [`Io`] (transmit, allocate, prefetch, copies for the other
//! workers, the kernel twin).
//!
//! Layout, one file per concern:
//! - `rx`: receive and classify (ARP, ICMP, the connection path, what is dropped and why);
//! - `admit`: access lists and limits, asked before any new connection is made;
//! - `conns`: connections: scheduling a new one, accounting a packet of a known one;
//! - `tx`: routing, TTL, neighbour resolution, the Ethernet header, ICMP errors we originate;
//! - `nexthop`: the route and neighbour of recent destinations, kept per epoch;
//! - `kernel`: which frames go to the port's kernel twin;
//! - `v6`: IPv6 at layer 3 (Neighbour Discovery, echo, the IPv6 neighbour table);
//! - `tables`: what the worker reads but does not own ([`Tables`]);
//! - `stats`: its counters and their published copy ([`WorkerStats`]).
//!
//! What a forwarding method does to a packet is in [`crate::xmit`], behind one entry point.
//!
//! The worker owns its connection table, neighbour table, scheduler states and counters
//! outright (its `State`). What it only reads (services, addresses, routes, timeouts) arrives
//! as one immutable [`Tables`] value swapped between bursts with [`Worker::set_tables`], so a
//! burst never sees a half-applied change.
//!
//! Policies, counted either way:
//! - IPv4 fragments are not reassembled: dropped (`ipv4_fragment`).
//! - IPv4 options are forwarded untouched (L4 is found through IHL); `ipv4_options` counts them.
//! - TTL is decremented on every forwarded packet; one that would reach 0 is dropped
//!   (`ttl_exceeded`) before it opens a connection or changes one's state.
//! - A new connection is opened only by a TCP SYN (without ACK, RST or FIN) or any UDP datagram
//!   to a service; its L4 checksum is verified then (unless the NIC already did). Packets of
//!   known connections are rewritten with incremental checksums, which carry a bad checksum
//!   through to the endpoint.
//! - Methods (one file each in `xmit`): NAT and FULLNAT are routed (TTL decremented) both ways;
//!   DR and TUN leave the client's packet untouched (DR: only the Ethernet destination changes,
//!   to the RS MAC resolved on the port whose network holds the RIP; TUN: wrapped in an outer
//!   IPv4 header) and see no replies, so TCP uses IPVS's INPUT_ONLY table for them.
//! - A TCP SYN that hits a connection in TIME_WAIT or CLOSE (a client reusing its port) expires
//!   that connection and is scheduled anew (IPVS `conn_reuse_mode`).
//! - A dest removed from its service forwards nothing more: a packet of one of its connections
//!   is dropped (`dest_removed`) and the connection forgotten; the others expire by their timers.
//!   A dest with weight 0 takes no new connections but keeps forwarding its existing ones.
//! - ICMP errors (unreachable, fragmentation needed, time exceeded) quoting a packet of a NAT or
//!   FULLNAT connection are translated for the other side (`xmit::icmp`); for DR they are passed
//!   to the real server unchanged, as requests are. Others addressed to us are dropped
//!   (`local_not_service`), others not for us `not_for_us`.
//! - New connections of persistent services (`-p`) take their dest from the template table
//!   shared by all workers ([`crate::persist`]); a connection made through a template is
//!   controlled by it and releases it when it ends. fwmark services are looked up first, with
//!   the mark of [`crate::fwmark::Classifier`]. One-packet (`-o`) UDP services schedule every
//!   datagram and keep no connection.

mod admit;
mod conns;
mod flow6;
pub mod kernel;
mod nexthop;
mod pressure;
mod proxyhdr;
mod rx;
mod state;
mod stats;
mod synproxy;
mod tables;
mod tx;
mod v6;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::conn::{ConnKey6, ConnTable, Expiry};
use crate::drop::{DropCounters, DropReason};
use crate::l3::addr::PortId;
use crate::l3::neigh::{NeighConfig, NeighTable};
use crate::l3::ratelimit::TokenBucket;
use crate::laddr::LportAlloc;
use crate::packet::PacketBuf;
use crate::parse::{Class, Parsed};
use crate::service::snapshot::FastBuildHasher;
use crate::service::{ForwardMethod, ServiceId};
use crate::steer::{NicHash, Owner, Steering};
use crate::time::Instant;
use crate::wire::MacAddr;

pub use crate::conn::table::MemAdvice;
pub use state::ImportReport;
pub use stats::{ConnView, WorkerStats};
pub use tables::{StaticNeigh, Tables, Tables6};
pub use v6::is_nd_frame;

use conns::SchedSlot;
use stats::Counters;

/// What the runtime does for the worker.
pub trait Io<B> {
    /// Queue `buf` for transmission on `port` (the runtime batches and flushes).
    fn transmit(&mut self, port: PortId, buf: B);
    /// A fresh, empty buffer (for ARP requests), or `None` when the pool is empty.
    fn alloc(&mut self) -> Option<B>;
    /// Start loading the cache line holding `*r` (a hint; the default does nothing). The
    /// runtime implements it with the CPU's prefetch instruction, which safe Rust lacks.
    #[inline]
    fn prefetch<T>(&self, r: &T) {
        let _ = r;
    }
    /// Whether `port` has a kernel twin, the exception path ([`kernel`] says which frames go to
    /// it). Default: no twin, those frames are dropped and counted as without one.
    #[inline]
    fn has_kernel(&self, port: PortId) -> bool {
        let _ = port;
        false
    }
    /// Hand `buf`, received on `port`, to the port's kernel twin. Called only when
    /// [`Io::has_kernel`] is true for `port`; the runtime queues it off the worker's path,
    /// bounded (what it cannot queue it frees and counts). Default: freed.
    #[inline]
    fn to_kernel(&mut self, port: PortId, buf: B) {
        let _ = (port, buf);
    }
    /// Give every other worker a copy of `frame`, received on `port` (ARP: each worker keeps
    /// its own neighbour table, see [`Owner::All`]), for [`Worker::learn_arp`]. Called by
    /// [`Worker::process_burst_steered`] before the frame is processed here. Default: nothing.
    fn share(&mut self, port: PortId, frame: &[u8]) {
        let _ = (port, frame);
    }
}

/// A port as the worker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSetup {
    pub mac: MacAddr,
    pub mtu: u16,
}

/// A worker's fixed setup.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker index (0..n_workers): its slot in every shared stats object.
    pub id: usize,
    /// Indexed by [`PortId`].
    pub ports: Vec<PortSetup>,
    pub conn_capacity: usize,
    /// Capacity of the worker's IPv6 connection table ([`flow6`]; a record is twice the size
    /// of an IPv4 one).
    pub conn_capacity6: usize,
    pub neigh: NeighConfig,
    /// Rates of the ICMP errors and echo replies the worker sends.
    pub icmp: crate::l3::ratelimit::IcmpLimits,
    /// Number of workers (at least 1): flow ownership ([`Worker::steer`]) and the local-port
    /// partition depend on it.
    pub workers: usize,
}

/// Upper bound of connections expired per tick, so a tick never stalls the worker.
const EXPIRE_BUDGET: usize = 65_536;

/// Most frames [`Worker::process_burst`] stages at once (longer bursts are taken in chunks).
pub const MAX_BURST: usize = 64;

/// The per-core load balancer.
pub struct Worker<B> {
    tables: Arc<Tables>,
    st: State<B>,
}

/// Everything the worker owns and changes; its methods take the [`Tables`] they read as an
/// argument, so a service borrowed from the tables can be used while the state changes.
struct State<B> {
    cfg: WorkerConfig,
    conns: ConnTable,
    /// IPv6 connections, NAT64's included ([`flow6`]).
    conns6: ConnTable<ConnKey6>,
    neigh: NeighTable<B>,
    /// The IPv6 neighbour table, with the same bounds as the IPv4 one ([`v6`]).
    neigh6: NeighTable<B, Ipv6Addr>,
    /// IPv6 addresses announced with an unsolicited advertisement ([`v6`]).
    announced6: Vec<(PortId, Ipv6Addr)>,
    scheds: HashMap<ServiceId, SchedSlot, FastBuildHasher>,
    drops: DropCounters,
    counters: Counters,
    stats: Arc<WorkerStats>,
    lports: LportAlloc,
    /// IP identification of packets the worker originates (tunnel headers, ICMP errors).
    ip_ident: u16,
    /// Next of this worker's persistence-table stripes to sweep (one per tick).
    persist_sweep: usize,
    /// Which worker owns which flow.
    steering: Steering,
    /// Seed of this worker's scheduler PRNGs (`twos`), so workers draw independently.
    sched_seed: u64,
    /// Route and neighbour of recent destinations ([`nexthop`]).
    next_hops: nexthop::NextHopCache,
    /// The parsed frames of the burst being processed, with their tuple hashes (capacity
    /// [`MAX_BURST`], reused).
    staged: Vec<(Parsed, u64)>,
    /// For each staged frame, an IPv6 TCP/UDP frame's [`crate::parse6::Parsed6`] and its hash
    /// in the IPv6 table (so IPv6 connections are prefetched as IPv4 ones are).
    staged6: Vec<Option<(crate::parse6::Parsed6, u64)>>,
    /// The staged IPv6 description of the frame being processed, taken by the IPv6 path
    /// ([`flow6`]); `None` when the frame did not come through a staged burst.
    pre6: Option<(crate::parse6::Parsed6, u64)>,
    /// For each staged IPv4 frame that missed the IPv4 table on its way to a local address, the
    /// hash of its IPv4-mapped tuple in the IPv6 table (a NAT64 reply's, [`flow6`]).
    staged64: Vec<Option<u64>>,
    /// That hash for the frame being processed, taken by `flow6::nat64_reply`.
    pre64: Option<u64>,
    /// Budgets of the ICMP errors and echo replies this worker sends.
    icmp_errors: TokenBucket,
    icmp_echo: TokenBucket,
    /// The embryonic-connection defences: the shortening sweep's cursor and the eviction ring
    /// ([`pressure`]).
    pressure: pressure::Pressure,
    /// SYN proxy: one slot per connection slot, empty until a SYN-proxy service exists
    /// ([`synproxy`]).
    proxy: Vec<synproxy::ProxySlot>,
    /// A PROXY header segment to send after the packet being handled ([`proxyhdr`]).
    pp_pending: proxyhdr::Pending,
    /// Access lists and limits: rate buckets of this worker ([`admit`]).
    admission: admit::Admission,
}

impl<B> core::fmt::Debug for Worker<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.st.cfg.id)
            .field("conns", &self.st.conns.len())
            .field("neigh", &self.st.neigh.len())
            .finish()
    }
}

impl<B: PacketBuf> Worker<B> {
    /// A worker with empty tables of the configured sizes. `seed` keys the connection hash.
    pub fn new(cfg: WorkerConfig, tables: Arc<Tables>, stats: Arc<WorkerStats>, seed: u64) -> Self {
        Self::build(cfg, tables, stats, seed, None)
    }

    /// As [`Worker::new`], with `advice` applied to the connection table's memory before it is
    /// first touched (the runtime passes transparent-huge-page advice).
    pub fn with_advice(
        cfg: WorkerConfig,
        tables: Arc<Tables>,
        stats: Arc<WorkerStats>,
        seed: u64,
        advice: MemAdvice,
    ) -> Self {
        Self::build(cfg, tables, stats, seed, Some(advice))
    }

    fn build(
        cfg: WorkerConfig,
        tables: Arc<Tables>,
        stats: Arc<WorkerStats>,
        seed: u64,
        advice: Option<MemAdvice>,
    ) -> Self {
        let capacity = cfg.conn_capacity.clamp(1, crate::conn::table::MAX_CAPACITY);
        let make = |cap| match advice {
            Some(a) => ConnTable::with_advice(cap, seed, a),
            None => ConnTable::new(cap, seed),
        };
        let conns = make(capacity).unwrap_or_else(|_| {
            // Unreachable after the clamp; keep the worker alive with the largest table.
            make(crate::conn::table::MAX_CAPACITY).expect("max capacity is valid")
        });
        let capacity6 = cfg
            .conn_capacity6
            .clamp(1, crate::conn::table::MAX_CAPACITY);
        let seed6 = seed.rotate_left(29) ^ 0x6a09_e667_f3bc_c908;
        let conns6 = match advice {
            Some(a) => ConnTable::with_advice(capacity6, seed6, a),
            None => ConnTable::new(capacity6, seed6),
        }
        .unwrap_or_else(|_| ConnTable::new(1, seed6).expect("capacity 1 is valid"));
        stats
            .conn_capacity
            .store(capacity as u64, Ordering::Relaxed);
        let id = cfg.id;
        let workers = cfg.workers;
        let icmp = cfg.icmp;
        let st = State {
            neigh: NeighTable::new(cfg.neigh),
            neigh6: NeighTable::new(cfg.neigh),
            announced6: Vec::new(),
            cfg,
            conns,
            conns6,
            scheds: HashMap::default(),
            drops: DropCounters::default(),
            counters: Counters::default(),
            stats,
            lports: LportAlloc::new(id),
            ip_ident: (seed as u16) ^ (id as u16).rotate_left(8),
            persist_sweep: 0,
            steering: Steering::new(u16::try_from(workers).unwrap_or(u16::MAX)),
            sched_seed: seed.rotate_left(17) ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            next_hops: nexthop::NextHopCache::new(),
            staged: Vec::with_capacity(MAX_BURST),
            staged6: Vec::with_capacity(MAX_BURST),
            pre6: None,
            staged64: Vec::with_capacity(MAX_BURST),
            pre64: None,
            icmp_errors: TokenBucket::new(icmp.errors_per_sec, icmp.burst),
            icmp_echo: TokenBucket::new(icmp.echo_per_sec, icmp.burst),
            pressure: pressure::Pressure::new(capacity),
            proxy: Vec::new(),
            pp_pending: proxyhdr::Pending::new(),
            admission: admit::Admission::new(workers),
        };
        let mut w = Worker {
            tables: tables.clone(),
            st,
        };
        w.set_tables(tables);
        w
    }

    /// Switch to new tables (between bursts). Schedulers of removed services are dropped; the
    /// others are updated lazily, when their service's version changed, at the next new
    /// connection. Static neighbours are (re)installed.
    pub fn set_tables(&mut self, tables: Arc<Tables>) {
        let st = &mut self.st;
        st.next_hops.invalidate();
        st.scheds
            .retain(|id, _| tables.services.service(*id).is_some());
        st.admission.retain(&tables);
        // FULLNAT: every (local address, real server) pool exists before the first connection
        // needs it, so a new connection never grows the allocator's map.
        for svc in tables.services.services() {
            let laddrs = tables.laddrs.of(svc.id());
            for d in svc
                .dests()
                .iter()
                .filter(|d| d.method() == ForwardMethod::FullNat)
            {
                if d.port() == 0 {
                    continue; // takes the client's port: pools appear as ports are used
                }
                let n = tables.laddrs.n_workers();
                for l in laddrs {
                    match (l.ip, d.addr()) {
                        (IpAddr::V4(lip), IpAddr::V4(rip)) => {
                            st.lports.prepare(n, lip, rip, d.port(), 64)
                        }
                        (IpAddr::V6(lip), IpAddr::V6(rip)) => {
                            st.lports.prepare6(n, lip, rip, d.port(), 64)
                        }
                        _ => {} // a FULLNAT dest uses the local addresses of its family
                    }
                }
            }
        }
        st.prepare_synproxy(&tables);
        let drops = &mut st.drops;
        for n in &tables.static_neighs {
            // Packets waiting for a now-static neighbour are dropped with the rest of their
            // queue: `add_static` hands them back, and without `io` here they cannot be sent.
            let _ = st
                .neigh
                .add_static(Instant::ZERO, n.port, n.ip, n.mac, |_b| {
                    drops.count(DropReason::NeighTimeout)
                });
        }
        for n in &tables.v6.static_neighs {
            let _ = st
                .neigh6
                .add_static(Instant::ZERO, n.port, n.ip, n.mac, |_b| {
                    drops.count(DropReason::NeighTimeout)
                });
        }
        self.tables = tables;
    }

    /// The tables in use.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// Drops counted so far, by reason.
    pub fn drops(&self) -> &DropCounters {
        &self.st.drops
    }

    /// Connections in this worker's tables (IPv4 and IPv6).
    pub fn conn_count(&self) -> usize {
        self.st.conns.len() + self.st.conns6.len()
    }

    /// Bytes of this worker's connection tables (slab, index, wheel; IPv4 and IPv6).
    pub fn conn_table_bytes(&self) -> usize {
        self.st.conns.memory_bytes() + self.st.conns6.memory_bytes()
    }

    /// Copy the counters into the shared [`WorkerStats`] (call once per poll iteration or tick).
    pub fn publish_stats(&self) {
        let st = &self.st;
        let s = &st.stats;
        let c = &st.counters;
        s.rx_packets.store(c.rx_packets, Ordering::Relaxed);
        s.rx_bytes.store(c.rx_bytes, Ordering::Relaxed);
        s.rx_consumed.store(c.rx_consumed, Ordering::Relaxed);
        s.to_kernel.store(c.to_kernel, Ordering::Relaxed);
        s.tx_packets.store(c.tx_packets, Ordering::Relaxed);
        s.tx_bytes.store(c.tx_bytes, Ordering::Relaxed);
        s.ipv4_options.store(c.ipv4_options, Ordering::Relaxed);
        s.conn_reuses.store(c.conn_reuses, Ordering::Relaxed);
        s.neigh_requests.store(c.neigh_requests, Ordering::Relaxed);
        s.neigh_probes.store(c.neigh_probes, Ordering::Relaxed);
        s.icmp_errors_limited
            .store(c.icmp_errors_limited, Ordering::Relaxed);
        s.embryonic_shortened
            .store(c.embryonic_shortened, Ordering::Relaxed);
        s.synproxy_cookies
            .store(c.synproxy_cookies, Ordering::Relaxed);
        s.synproxy_opens.store(c.synproxy_opens, Ordering::Relaxed);
        s.synproxy_established
            .store(c.synproxy_established, Ordering::Relaxed);
        s.proxy_headers.store(c.proxy_headers, Ordering::Relaxed);
        s.proxy_standalone
            .store(c.proxy_standalone, Ordering::Relaxed);
        s.proxy_udp.store(c.proxy_udp, Ordering::Relaxed);
        s.uoa_sent.store(c.uoa_sent, Ordering::Relaxed);
        s.src_rate_evictions
            .store(st.admission.sources.evictions, Ordering::Relaxed);
        s.embryonic_evicted
            .store(c.embryonic_evicted, Ordering::Relaxed);
        s.conns
            .store((st.conns.len() + st.conns6.len()) as u64, Ordering::Relaxed);
        s.neigh_entries
            .store((st.neigh.len() + st.neigh6.len()) as u64, Ordering::Relaxed);
        for (r, n) in st.drops.iter() {
            s.drops[r as usize].store(n, Ordering::Relaxed);
        }
    }

    /// Every connection, for listings, then the persistence templates of the shared table's
    /// stripes this worker sweeps (so listing every worker lists each template once).
    pub fn conns(&self, now: Instant) -> impl Iterator<Item = ConnView> + '_ {
        let templates = self
            .tables
            .persist
            .views(now, self.st.cfg.id)
            .into_iter()
            .map(|t| ConnView {
                proto: t.key.proto,
                state: t.state,
                expires_in: t.expires_in.as_secs(),
                client: (t.key.client, 0),
                virt: (t.key.vaddr, t.key.vport),
                dest: t.dest,
            });
        let v6 = self.st.conns6.iter().map(move |(_, c)| {
            let (i, o) = (c.in_key(), c.out_key());
            // A NAT64 connection's server is IPv4 (its reply tuple holds it mapped).
            let server = match o.src.to_ipv4_mapped() {
                Some(a) => IpAddr::V4(a),
                None => IpAddr::V6(o.src),
            };
            ConnView {
                proto: i.proto,
                state: c.state().name(),
                expires_in: c.deadline().saturating_since(now).as_secs(),
                client: (IpAddr::V6(i.src), i.sport),
                virt: (IpAddr::V6(i.dst), i.dport),
                dest: (server, o.sport),
            }
        });
        self.st
            .conns
            .iter()
            .map(move |(_, c)| {
                let (i, o) = (c.in_key(), c.out_key());
                ConnView {
                    proto: i.proto,
                    state: c.state().name(),
                    expires_in: c.deadline().saturating_since(now).as_secs(),
                    client: (IpAddr::V4(i.src), i.sport),
                    virt: (IpAddr::V4(i.dst), i.dport),
                    dest: (IpAddr::V4(o.src), o.sport),
                }
            })
            .chain(v6)
            .chain(templates)
    }

    /// Every neighbour entry, for listings (`rvsctl neigh show`).
    pub fn neighs(&self) -> impl Iterator<Item = crate::l3::neigh::NeighInfo> + '_ {
        self.st.neigh.iter()
    }

    /// Every IPv6 neighbour entry, for listings (`rvsctl neigh show`).
    pub fn neighs6(&self) -> impl Iterator<Item = crate::l3::neigh::NeighInfo<Ipv6Addr>> + '_ {
        self.st.neigh6.iter()
    }

    /// Forget the learned (non-permanent) neighbour entries, IPv4 and IPv6, of one port or all;
    /// packets waiting on them are dropped (`neigh_timeout`). Returns how many entries went.
    pub fn flush_neighs(&mut self, port: Option<PortId>) -> usize {
        let v6 = self.flush_neighs6(port);
        self.flush_neighs4(port) + v6
    }

    fn flush_neighs6(&mut self, port: Option<PortId>) -> usize {
        let st = &mut self.st;
        let victims: Vec<_> = st
            .neigh6
            .iter()
            .filter(|n| n.state != crate::l3::neigh::NeighState::Permanent)
            .filter(|n| port.is_none_or(|p| p == n.port))
            .map(|n| (n.port, n.ip))
            .collect();
        let drops = &mut st.drops;
        for (p, ip) in &victims {
            let _ = st
                .neigh6
                .remove(*p, *ip, |_b| drops.count(DropReason::NeighTimeout));
        }
        victims.len()
    }

    fn flush_neighs4(&mut self, port: Option<PortId>) -> usize {
        let st = &mut self.st;
        st.next_hops.invalidate();
        let victims: Vec<_> = st
            .neigh
            .iter()
            .filter(|n| n.state != crate::l3::neigh::NeighState::Permanent)
            .filter(|n| port.is_none_or(|p| p == n.port))
            .map(|n| (n.port, n.ip))
            .collect();
        let drops = &mut st.drops;
        for (p, ip) in &victims {
            let _ = st
                .neigh
                .remove(*p, *ip, |_b| drops.count(DropReason::NeighTimeout));
        }
        victims.len()
    }

    /// Delete one neighbour entry (static or learned); waiting packets are dropped
    /// (`neigh_timeout`). A static entry still in the tables comes back at the next
    /// [`Worker::set_tables`]. Returns whether there was one.
    pub fn del_neigh(&mut self, port: PortId, ip: Ipv4Addr) -> bool {
        let st = &mut self.st;
        st.next_hops.invalidate();
        let drops = &mut st.drops;
        st.neigh
            .remove(port, ip, |_b| drops.count(DropReason::NeighTimeout))
            .is_ok()
    }

    /// [`Worker::del_neigh`] for an IPv6 neighbour.
    pub fn del_neigh6(&mut self, port: PortId, ip: Ipv6Addr) -> bool {
        let st = &mut self.st;
        let drops = &mut st.drops;
        st.neigh6
            .remove(port, ip, |_b| drops.count(DropReason::NeighTimeout))
            .is_ok()
    }

    /// Where a received frame is processed ([`crate::steer`]), by this worker's current tables.
    /// The runtime hands a frame owned by another worker to it, and copies ARP frames
    /// ([`Owner::All`]) to every other worker's [`Worker::learn_arp`].
    pub fn steer(&self, frame: &[u8]) -> Owner {
        self.st.steering.owner(frame, &*self.tables)
    }

    /// [`Worker::steer`] with the NIC's RSS hash of the frame, where the port hashes one side
    /// with rvs's key (see [`NicHash`]): the owner of a TCP/UDP frame then costs no hashing.
    pub fn steer_hashed(&self, frame: &[u8], nic: Option<NicHash>) -> Owner {
        self.st.steering.owner_hashed(frame, &*self.tables, nic)
    }

    /// The worker's index (0..workers).
    pub fn id(&self) -> usize {
        self.st.cfg.id
    }

    /// Learn from a copy of an ARP frame (or an IPv6 Neighbour Discovery frame,
    /// [`is_nd_frame`]) another worker received on `port` and handled: the neighbour table is
    /// taught as [`Worker::process`] would teach it (packets waiting for the neighbour are
    /// sent), but nothing is answered, nothing counted as received, and the copy is freed.
    pub fn learn_arp<I: Io<B>>(&mut self, now: Instant, port: PortId, buf: B, io: &mut I) {
        if is_nd_frame(buf.data()) {
            self.st.learn_nd(&self.tables, now, port, buf, io);
        } else {
            self.st.learn_arp(&self.tables, now, port, buf, io);
        }
    }

    /// Take one received frame to its end (a burst of one).
    pub fn process<I: Io<B>>(&mut self, now: Instant, port: PortId, buf: B, io: &mut I) {
        let tables = &*self.tables;
        let st = &mut self.st;
        let mac = st.port_mac(port);
        let p = crate::parse::parse(buf.data(), mac, buf.rx_checksum());
        let h = st.conns.hash(&p.key);
        // Nothing staged for a frame processed on its own (a staged value a burst's frame
        // did not take must not be read for this one).
        st.pre6 = None;
        st.pre64 = None;
        st.process_parsed(tables, now, port, buf, &p, h, io);
    }

    /// Take a received burst to its end, in stages (see the module documentation). The
    /// buffers are drained from `burst`, which keeps its allocation for the next burst.
    pub fn process_burst<I: Io<B>>(
        &mut self,
        now: Instant,
        port: PortId,
        burst: &mut Vec<B>,
        io: &mut I,
    ) {
        self.run_burst(now, port, burst, None::<(fn(&B) -> Option<NicHash>, _)>, io);
    }

    /// [`Worker::process_burst`] for a worker that shares its ports with others: own-first
    /// steering inside the staged burst. A frame whose tuple is in this worker's table is its
    /// own by definition (the lookup finds its bucket and record prefetched); only for the
    /// others is an owner computed ([`Worker::steer_hashed`], with `nic`'s reading of the
    /// frame's RSS hash). Frames another worker owns are moved to `away` with that worker's
    /// index, for the runtime to hand over; ARP frames are [`Io::share`]d, then processed here.
    pub fn process_burst_steered<I: Io<B>>(
        &mut self,
        now: Instant,
        port: PortId,
        burst: &mut Vec<B>,
        nic: impl Fn(&B) -> Option<NicHash>,
        away: &mut Vec<(u16, B)>,
        io: &mut I,
    ) {
        self.run_burst(now, port, burst, Some((nic, away)), io);
    }

    fn run_burst<I: Io<B>, N: Fn(&B) -> Option<NicHash>>(
        &mut self,
        now: Instant,
        port: PortId,
        burst: &mut Vec<B>,
        mut steered: Option<(N, &mut Vec<(u16, B)>)>,
        io: &mut I,
    ) {
        let tables = &*self.tables;
        let st = &mut self.st;
        let mac = st.port_mac(port);
        let me = st.cfg.id;
        if st.cfg.workers <= 1 {
            steered = None;
        }
        while !burst.is_empty() {
            let n = burst.len().min(MAX_BURST);
            // Stage 1: parse and hash every frame, prefetch its index bucket (an IPv6 TCP/UDP
            // frame's in the IPv6 table).
            st.staged.clear();
            st.staged6.clear();
            for b in &burst[..n] {
                let p = crate::parse::parse(b.data(), mac, b.rx_checksum());
                if p.class == Class::Ipv6 {
                    let p6 = crate::parse6::parse6(b.data(), &v6::POLICY)
                        .ok()
                        .filter(|p6| p6.class == crate::parse6::Class6::Flow)
                        .map(|p6| {
                            let h6 = st.conns6.hash(&p6.key);
                            io.prefetch(st.conns6.bucket(h6));
                            (p6, h6)
                        });
                    st.staged.push((p, 0));
                    st.staged6.push(p6);
                    continue;
                }
                let h = st.conns.hash(&p.key);
                if p.class == Class::Flow {
                    io.prefetch(st.conns.bucket(h));
                }
                st.staged.push((p, h));
                st.staged6.push(None);
            }
            // Stage 2: prefetch the record of each first tag match (the bucket is in cache or
            // on its way by now). An IPv4 frame with no match, to a local address while IPv6
            // connections exist, may be a NAT64 reply: its IPv6 bucket is prefetched.
            st.staged64.clear();
            for ((p, h), p6) in st.staged.iter().zip(&st.staged6) {
                let mut h64 = None;
                if p.class == Class::Flow {
                    match st.conns.candidate(*h) {
                        Some(c) => io.prefetch(c),
                        None if !st.conns6.is_empty() && tables.laddrs.contains(p.key.dst) => {
                            let k = p.key;
                            let mapped = crate::xmit::nat64::mapped_key(
                                k.proto, k.src, k.sport, k.dst, k.dport,
                            );
                            let h6 = st.conns6.hash(&mapped);
                            io.prefetch(st.conns6.bucket(h6));
                            h64 = Some(h6);
                        }
                        None => {}
                    }
                } else if let Some((_, h6)) = p6
                    && let Some(c) = st.conns6.candidate(*h6)
                {
                    // Two cache lines: start both.
                    io.prefetch(c);
                    io.prefetch(c.tail_hint());
                }
                st.staged64.push(h64);
            }
            // Stage 3: steer (own-first) and process in order.
            for (k, b) in burst.drain(..n).enumerate() {
                let (p, h) = st.staged[k];
                let p6 = st.staged6[k];
                if let Some((nic, away)) = steered.as_mut() {
                    let own = (p.class == Class::Flow
                        && st.conns.lookup_hashed(&p.key, h).is_some())
                        || p6
                            .is_some_and(|(p6, h6)| st.conns6.lookup_hashed(&p6.key, h6).is_some());
                    if !own {
                        match st.steering.owner_hashed(b.data(), tables, nic(&b)) {
                            Owner::Worker(w) if usize::from(w) != me => {
                                away.push((w, b));
                                continue;
                            }
                            Owner::All => io.share(port, b.data()),
                            _ => {}
                        }
                    }
                }
                st.pre6 = p6;
                st.pre64 = st.staged64[k];
                st.process_parsed(tables, now, port, b, &p, h, io);
            }
        }
    }

    /// Timers: neighbour retransmits and timeouts, the embryonic-connection defence, connection
    /// expiry.
    pub fn on_tick<I: Io<B>>(&mut self, now: Instant, io: &mut I) {
        let tables = &*self.tables;
        let st = &mut self.st;
        st.next_hops.invalidate();
        let drops = &mut st.drops;
        st.neigh.on_tick(now, |_b, reason| drops.count(reason));
        st.neigh6.on_tick(now, |_b, reason| drops.count(reason));
        st.send_solicits(tables, io);
        st.send_solicits6(tables, io);
        st.announce6(tables, io);
        st.relieve_pressure(now);
        let lports = &mut st.lports;
        st.conns.expire(now, EXPIRE_BUDGET, |_, c| {
            conns::forget(tables, lports, c, false);
            Expiry::Remove
        });
        st.conns6.expire(now, EXPIRE_BUDGET, |_, c| {
            flow6::forget6(tables, lports, c, false);
            Expiry::Remove
        });
        st.sweep_templates(tables, now);
    }
}

impl<B: PacketBuf> State<B> {
    fn port_mac(&self, port: PortId) -> MacAddr {
        self.cfg
            .ports
            .get(usize::from(port))
            .map_or(MacAddr::ZERO, |p| p.mac)
    }

    /// Sweep the next of this worker's stripes of the shared template table.
    fn sweep_templates(&mut self, tables: &Tables, now: Instant) {
        let persist = &tables.persist;
        let mine = crate::persist::STRIPES.div_ceil(persist.n_workers());
        let k = self.persist_sweep % mine.max(1);
        self.persist_sweep = self.persist_sweep.wrapping_add(1);
        if let Some(stripe) = persist.stripes_of(self.cfg.id).nth(k) {
            persist.sweep(stripe, now, self.cfg.id, &tables.services);
        }
    }

    fn next_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Take one parsed frame to its end.
    #[allow(clippy::too_many_arguments)]
    fn process_parsed<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        mut buf: B,
        p: &Parsed,
        h: u64,
        io: &mut I,
    ) {
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += buf.len() as u64;
        if matches!(p.class, Class::Arp | Class::Ipv6) && io.has_kernel(port) {
            self.copy_to_kernel(port, &buf, io);
        }
        match self.handle(tables, now, port, &mut buf, p, h, io) {
            Ok(tx::Action::Transmit(out)) => self.transmit(out, buf, io),
            Ok(tx::Action::Forward(how)) => self.forward(tables, now, how, buf, io),
            Ok(tx::Action::Forward6 { via, dec_hop }) => {
                self.forward6(tables, now, via, dec_hop, buf, io)
            }
            Ok(tx::Action::IcmpError(kind, reason)) => {
                self.icmp_error(tables, now, kind, reason, &buf, io)
            }
            Ok(tx::Action::Icmp6Error(kind, reason)) => {
                self.icmp6_error(tables, now, kind, reason, &buf, io)
            }
            Ok(tx::Action::Consumed) => self.counters.rx_consumed += 1,
            Err(reason) if io.has_kernel(port) && kernel::takes(reason, buf.data()) => {
                self.counters.to_kernel += 1;
                io.to_kernel(port, buf);
            }
            Err(reason) => self.drops.count(reason),
        }
        if self.pp_pending.is_waiting() {
            self.flush_proxy_pending(tables, now, io);
        }
    }
}

#[cfg(test)]
mod tests;
