//! One worker: the run-to-completion body of a polling lcore (DESIGN.md section 2).
//!
//! `Worker::process(now, port, packet, io)` takes one received frame to its end: transmitted
//! (possibly after waiting for ARP), consumed (an ARP reply we asked for), or dropped with exactly
//! one [`DropReason`] counted. `Worker::on_tick(now, io)` drives timers: connection expiry,
//! neighbour retransmits and timeouts. Nothing here reads a clock, allocates per packet or
//! touches DPDK; the runtime provides [`Io`] (transmit, allocate).
//!
//! The worker owns its connection table, neighbour table, scheduler states and counters
//! outright. What it only reads (services, addresses, routes, timeouts) arrives as one immutable
//! [`Tables`] value swapped between bursts with [`Worker::set_tables`], so a burst never sees a
//! half-applied change.
//!
//! Policies, counted either way:
//! - IPv4 fragments are not reassembled: dropped (`ipv4_fragment`).
//! - IPv4 options are forwarded untouched (L4 is found through IHL); `ipv4_options` counts them.
//! - TTL is decremented on every forwarded packet; one that would reach 0 is dropped
//!   (`ttl_exceeded`) before it opens a connection or changes one's state.
//! - A new connection is opened only by a TCP SYN (without ACK, RST or FIN) or any UDP datagram
//!   to a service; its L4 checksum is verified then. Packets of known connections are rewritten
//!   with incremental checksums, which carry a bad checksum through to the endpoint.
//! - Methods (DESIGN.md section 3, one file each in `xmit`): NAT and FULLNAT are routed (TTL
//!   decremented) both ways; DR and TUN leave the client's packet untouched (DR: only the
//!   Ethernet destination changes, to the RS MAC resolved on the port whose network holds the RIP;
//!   TUN: wrapped in an outer IPv4 header) and see no replies, so TCP uses IPVS's INPUT_ONLY table
//!   for them.
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

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::conn::{
    Conn, ConnFlags, ConnKey, ConnState, ConnTable, Dir, Expiry, InsertError, NewConn, TcpState,
    Timeouts,
};
use crate::drop::{DropCounters, DropReason};
use crate::fwmark::Classifier;
use crate::l3::addr::{OwnedAddrs, PortId};
use crate::l3::arp::{ArpVerdict, build_request_to, handle_arp};
use crate::l3::icmp::{IcmpError, build_error, echo_reply_in_place};
use crate::l3::neigh::{NeighConfig, NeighTable, QueueError, Resolve};
use crate::l3::route::RouteTable;
use crate::laddr::{LaddrTable, LportAlloc};
use crate::packet::PacketBuf;
use crate::persist::{PersistError, PersistTable};
use crate::sched::{SchedFlags, SchedInput, Scheduler};
use crate::service::snapshot::FastBuildHasher;
use crate::service::{ForwardMethod, ServiceId, Snapshot};
use crate::steer::{FlowContext, Owner, Steering};
use crate::time::Instant;
use crate::wire::icmp::IcmpType;
use crate::wire::tcp::TcpFlags;
use crate::wire::{
    Error as WireError, EtherType, IpProtocol, MacAddr, ethernet, icmp, ipv4, tcp, udp,
};
use crate::xmit;

/// What the runtime does for the worker.
pub trait Io<B> {
    /// Queue `buf` for transmission on `port` (the runtime batches and flushes).
    fn transmit(&mut self, port: PortId, buf: B);
    /// A fresh, empty buffer (for ARP requests), or `None` when the pool is empty.
    fn alloc(&mut self) -> Option<B>;
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
    pub neigh: NeighConfig,
    /// Number of workers (at least 1): flow ownership ([`Worker::steer`]) and the local-port
    /// partition depend on it.
    pub workers: usize,
}

/// A static neighbour entry (`[[neigh]]` in the config, `rvsctl neigh add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticNeigh {
    pub port: PortId,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
}

/// Everything a worker reads but does not own, published whole by the control plane.
#[derive(Debug, Clone)]
pub struct Tables {
    pub services: Arc<Snapshot>,
    pub addrs: OwnedAddrs,
    pub routes: RouteTable,
    pub static_neighs: Vec<StaticNeigh>,
    pub timeouts: Timeouts,
    /// FULLNAT local addresses per service.
    pub laddrs: Arc<LaddrTable>,
    /// Persistence templates: one table shared by every worker (the same `Arc` in every
    /// publication), see [`crate::persist`].
    pub persist: Arc<PersistTable>,
    /// The firewall-mark classifier for `-f MARK` services.
    pub fwmarks: Arc<Classifier>,
}

impl Tables {
    /// The service a `proto` packet to `dst:dport` belongs to: a firewall-mark service when the
    /// classifier marks the packet and the mark has a service (IPVS looks fwmark services up
    /// first), else the address service (with the port-0 fallback).
    pub fn find_service(
        &self,
        proto: u8,
        dst: Ipv4Addr,
        dport: u16,
    ) -> Option<&crate::service::Service> {
        let mark = self.fwmarks.classify(proto, dst, dport);
        if mark != 0
            && let Some(s) = self.services.lookup_fwmark(mark)
        {
            return Some(s);
        }
        self.services.lookup(proto, dst, dport)
    }

    /// Whether the director answers ARP and ICMP echo for `ip` on `port`: an owned address of
    /// that port, or a VIP inside one of the port's connected networks.
    pub fn answers_for(&self, port: PortId, ip: Ipv4Addr) -> bool {
        self.addrs.owns_on(port, ip)
            || ((self.services.is_vip(ip) || self.fwmarks.is_vip(ip))
                && self.addrs.on_port(port).any(|a| a.contains(ip)))
            || self.laddrs.is_on(port, ip)
    }

    /// Whether `ip` is the director's own (an owned address or a VIP).
    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.addrs.owns(ip).is_some()
            || self.services.is_vip(ip)
            || self.laddrs.contains(ip)
            || self.fwmarks.is_vip(ip)
    }
}

impl FlowContext for Tables {
    fn is_service(&self, proto: u8, ip: Ipv4Addr, port: u16) -> bool {
        self.find_service(proto, ip, port).is_some()
    }

    fn is_laddr(&self, ip: Ipv4Addr) -> bool {
        self.laddrs.contains(ip)
    }
}

/// One worker's counters, written by the worker only (load + store, no read-modify-write) and
/// read by the control plane at any time.
#[derive(Debug)]
pub struct WorkerStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Received frames used up by the worker, neither forwarded nor dropped (ARP replies and
    /// announcements that taught the neighbour table).
    pub rx_consumed: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub ipv4_options: AtomicU64,
    pub conns: AtomicU64,
    pub conn_capacity: AtomicU64,
    pub neigh_entries: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            rx_consumed: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            ipv4_options: AtomicU64::new(0),
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
struct Counters {
    rx_packets: u64,
    rx_bytes: u64,
    rx_consumed: u64,
    tx_packets: u64,
    tx_bytes: u64,
    ipv4_options: u64,
}

/// A connection as listings show it (`ipvsadm -Lc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnView {
    pub proto: u8,
    pub state: &'static str,
    /// Whole seconds until expiry.
    pub expires_in: u64,
    pub client: (Ipv4Addr, u16),
    pub virt: (Ipv4Addr, u16),
    pub dest: (Ipv4Addr, u16),
}

/// A scheduler instance of one service on this worker.
struct SchedSlot {
    version: u64,
    name: String,
    flags: SchedFlags,
    sched: Box<dyn Scheduler + Send>,
}

/// How to route a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fwd {
    /// Route towards this address instead of the IPv4 destination (DR: the RIP).
    via: Option<Ipv4Addr>,
    /// Decrement the TTL (routed methods), or leave the IP header alone (DR, TUN, our own).
    dec_ttl: bool,
}

impl Fwd {
    const ROUTED: Fwd = Fwd {
        via: None,
        dec_ttl: true,
    };
    const ORIGINATED: Fwd = Fwd {
        via: None,
        dec_ttl: false,
    };
}

/// What to do with a packet that survived `handle`.
enum Action {
    /// Send on this port as is (Ethernet header already right: ARP and echo replies).
    Transmit(PortId),
    /// Route, resolve the next hop, fill the Ethernet header.
    Forward(Fwd),
    /// Drop the packet for `reason` and answer its source with this ICMP error.
    IcmpError(IcmpError, DropReason),
    /// Kept or used up by the worker (an ARP reply that resolved a neighbour).
    Consumed,
}

/// Upper bound of connections expired per tick, so a tick never stalls the worker.
const EXPIRE_BUDGET: usize = 65_536;

/// The per-core load balancer.
pub struct Worker<B> {
    cfg: WorkerConfig,
    tables: Arc<Tables>,
    conns: ConnTable,
    neigh: NeighTable<B>,
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
}

impl<B> core::fmt::Debug for Worker<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.cfg.id)
            .field("conns", &self.conns.len())
            .field("neigh", &self.neigh.len())
            .finish()
    }
}

impl<B: PacketBuf> Worker<B> {
    /// A worker with empty tables of the configured sizes. `seed` keys the connection hash.
    pub fn new(cfg: WorkerConfig, tables: Arc<Tables>, stats: Arc<WorkerStats>, seed: u64) -> Self {
        let capacity = cfg.conn_capacity.clamp(1, crate::conn::table::MAX_CAPACITY);
        let conns = ConnTable::new(capacity, seed).unwrap_or_else(|_| {
            // Unreachable after the clamp; keep the worker alive with the largest table.
            ConnTable::new(crate::conn::table::MAX_CAPACITY, seed).expect("max capacity is valid")
        });
        stats
            .conn_capacity
            .store(capacity as u64, Ordering::Relaxed);
        let id = cfg.id;
        let cfg_workers = cfg.workers;
        let mut w = Worker {
            neigh: NeighTable::new(cfg.neigh),
            cfg,
            tables: tables.clone(),
            conns,
            scheds: HashMap::default(),
            drops: DropCounters::default(),
            counters: Counters::default(),
            stats,
            lports: LportAlloc::new(id),
            ip_ident: (seed as u16) ^ (id as u16).rotate_left(8),
            persist_sweep: 0,
            steering: Steering::new(u16::try_from(cfg_workers).unwrap_or(u16::MAX)),
            sched_seed: seed.rotate_left(17) ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        w.set_tables(tables);
        w
    }

    /// Switch to new tables (between bursts). Schedulers of removed services are dropped; the
    /// others are updated lazily, when their service's version changed, at the next new
    /// connection. Static neighbours are (re)installed.
    pub fn set_tables(&mut self, tables: Arc<Tables>) {
        self.scheds
            .retain(|id, _| tables.services.service(*id).is_some());
        let drops = &mut self.drops;
        for n in &tables.static_neighs {
            // Packets waiting for a now-static neighbour are dropped with the rest of their
            // queue: `add_static` hands them back, and without `io` here they cannot be sent.
            let _ = self
                .neigh
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
        &self.drops
    }

    /// Connections in this worker's table.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Copy the counters into the shared [`WorkerStats`] (call once per poll iteration or tick).
    pub fn publish_stats(&self) {
        let s = &self.stats;
        let c = &self.counters;
        s.rx_packets.store(c.rx_packets, Ordering::Relaxed);
        s.rx_bytes.store(c.rx_bytes, Ordering::Relaxed);
        s.rx_consumed.store(c.rx_consumed, Ordering::Relaxed);
        s.tx_packets.store(c.tx_packets, Ordering::Relaxed);
        s.tx_bytes.store(c.tx_bytes, Ordering::Relaxed);
        s.ipv4_options.store(c.ipv4_options, Ordering::Relaxed);
        s.conns.store(self.conns.len() as u64, Ordering::Relaxed);
        s.neigh_entries
            .store(self.neigh.len() as u64, Ordering::Relaxed);
        for (r, n) in self.drops.iter() {
            s.drops[r as usize].store(n, Ordering::Relaxed);
        }
    }

    /// Every connection, for listings, then the persistence templates of the shared table's
    /// stripes this worker sweeps (so listing every worker lists each template once).
    pub fn conns(&self, now: Instant) -> impl Iterator<Item = ConnView> + '_ {
        let templates = self
            .tables
            .persist
            .views(now, self.cfg.id)
            .into_iter()
            .map(|t| ConnView {
                proto: t.key.proto,
                state: t.state,
                expires_in: t.expires_in.as_secs(),
                client: (t.key.client, 0),
                virt: (t.key.vaddr, t.key.vport),
                dest: t.dest,
            });
        self.conns
            .iter()
            .map(move |(_, c)| {
                let (i, o) = (c.in_key(), c.out_key());
                ConnView {
                    proto: i.proto,
                    state: c.state().name(),
                    expires_in: c.deadline().saturating_since(now).as_secs(),
                    client: (i.src, i.sport),
                    virt: (i.dst, i.dport),
                    dest: (o.src, o.sport),
                }
            })
            .chain(templates)
    }

    /// Every neighbour entry, for listings (`rvsctl neigh show`).
    pub fn neighs(&self) -> impl Iterator<Item = crate::l3::neigh::NeighInfo> + '_ {
        self.neigh.iter()
    }

    /// Forget the learned (non-permanent) neighbour entries, of one port or all; packets
    /// waiting on them are dropped (`neigh_timeout`). Returns how many entries went.
    pub fn flush_neighs(&mut self, port: Option<PortId>) -> usize {
        let victims: Vec<_> = self
            .neigh
            .iter()
            .filter(|n| n.state != crate::l3::neigh::NeighState::Permanent)
            .filter(|n| port.is_none_or(|p| p == n.port))
            .map(|n| (n.port, n.ip))
            .collect();
        let drops = &mut self.drops;
        for (p, ip) in &victims {
            let _ = self
                .neigh
                .remove(*p, *ip, |_b| drops.count(DropReason::NeighTimeout));
        }
        victims.len()
    }

    /// Delete one neighbour entry (static or learned); waiting packets are dropped
    /// (`neigh_timeout`). A static entry still in the tables comes back at the next
    /// [`Worker::set_tables`]. Returns whether there was one.
    pub fn del_neigh(&mut self, port: PortId, ip: Ipv4Addr) -> bool {
        let drops = &mut self.drops;
        self.neigh
            .remove(port, ip, |_b| drops.count(DropReason::NeighTimeout))
            .is_ok()
    }

    /// Where a received frame is processed (DESIGN.md section 4, [`crate::steer`]), by this
    /// worker's current tables. The runtime hands a frame owned by another worker to it, and
    /// copies ARP frames ([`Owner::All`]) to every other worker's [`Worker::learn_arp`].
    pub fn steer(&self, frame: &[u8]) -> Owner {
        self.steering.owner(frame, &*self.tables)
    }

    /// The worker's index (0..workers).
    pub fn id(&self) -> usize {
        self.cfg.id
    }

    /// Learn from a copy of an ARP frame another worker received on `port` and handled: the
    /// neighbour table is taught as [`Worker::process`] would teach it (packets waiting for the
    /// neighbour are sent), but nothing is answered, nothing counted as received, and the copy
    /// is freed.
    pub fn learn_arp<I: Io<B>>(&mut self, now: Instant, port: PortId, buf: B, io: &mut I) {
        let Some(mac) = self.cfg.ports.get(usize::from(port)).map(|p| p.mac) else {
            return;
        };
        let sender = buf
            .data()
            .get(22..28)
            .and_then(MacAddr::from_bytes)
            .unwrap_or(MacAddr::ZERO);
        let tables = &self.tables;
        let counters = &mut self.counters;
        crate::l3::arp::learn_only(
            now,
            port,
            mac,
            &buf,
            |ip| tables.answers_for(port, ip),
            &mut self.neigh,
            |b: B| send_resolved(counters, io, port, mac, set_dst_mac(b, sender)),
        );
        self.send_solicits(io);
    }

    /// Warm the connection table for a burst about to be [`Worker::process`]ed: read each
    /// TCP/UDP frame's tuple and touch its table entries, so the burst's cache misses overlap
    /// (see [`ConnTable::warm`]). Frames that do not parse are skipped; results never change.
    pub fn warm<'a>(&self, frames: impl IntoIterator<Item = &'a [u8]>) {
        let mut keys = [ConnKey {
            proto: 0,
            src: Ipv4Addr::UNSPECIFIED,
            sport: 0,
            dst: Ipv4Addr::UNSPECIFIED,
            dport: 0,
        }; ConnTable::WARM_MAX];
        let mut n = 0;
        for f in frames {
            if n == keys.len() {
                break;
            }
            if let Some(k) = quick_tuple(f) {
                keys[n] = k;
                n += 1;
            }
        }
        self.conns.warm(&keys[..n]);
    }

    /// Take one received frame to its end.
    pub fn process<I: Io<B>>(&mut self, now: Instant, port: PortId, mut buf: B, io: &mut I) {
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += buf.len() as u64;
        match self.handle(now, port, &mut buf, io) {
            Ok(Action::Transmit(out)) => self.transmit(out, buf, io),
            Ok(Action::Forward(how)) => self.forward(now, how, buf, io),
            Ok(Action::IcmpError(kind, reason)) => self.icmp_error(now, kind, reason, &buf, io),
            Ok(Action::Consumed) => self.counters.rx_consumed += 1,
            Err(reason) => self.drops.count(reason),
        }
    }

    /// Timers: neighbour retransmits and timeouts, connection expiry.
    pub fn on_tick<I: Io<B>>(&mut self, now: Instant, io: &mut I) {
        let drops = &mut self.drops;
        self.neigh.on_tick(now, |_b, reason| drops.count(reason));
        self.send_solicits(io);
        let tables = &self.tables;
        let lports = &mut self.lports;
        self.conns.expire(now, EXPIRE_BUDGET, |_, c| {
            forget(tables, lports, c, false);
            Expiry::Remove
        });
        self.sweep_templates(now);
    }

    /// Sweep the next of this worker's stripes of the shared template table.
    fn sweep_templates(&mut self, now: Instant) {
        let persist = &self.tables.persist;
        let mine = crate::persist::STRIPES.div_ceil(persist.n_workers());
        let k = self.persist_sweep % mine.max(1);
        self.persist_sweep = self.persist_sweep.wrapping_add(1);
        if let Some(stripe) = persist.stripes_of(self.cfg.id).nth(k) {
            persist.sweep(stripe, now, self.cfg.id, &self.tables.services);
        }
    }

    /// Remove a connection now, with its dest and local-port accounting (and its template's
    /// control, `early`: before its time).
    fn remove_conn(&mut self, id: crate::conn::ConnId) {
        self.remove_conn_early(id, true);
    }

    fn remove_conn_early(&mut self, id: crate::conn::ConnId, early: bool) {
        if let Some(c) = self.conns.remove(id) {
            forget(&self.tables, &mut self.lports, &c, early);
        }
    }

    fn next_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Send the ICMP error `kind` about the packet in `buf` (dropped for `reason`) to its source,
    /// from the address it was sent to (a VIP: what the client expects to hear from).
    fn icmp_error<I: Io<B>>(
        &mut self,
        now: Instant,
        kind: IcmpError,
        reason: DropReason,
        buf: &B,
        io: &mut I,
    ) {
        let Some(offending) = buf.data().get(ethernet::HEADER_LEN..) else {
            self.drops.count(DropReason::EthTruncated);
            return;
        };
        let Ok(ip) = ipv4::Packet::new_checked_quoted(offending) else {
            self.drops.count(DropReason::Ipv4Malformed);
            return;
        };
        let src = ip.dst_addr();
        let Some(mut out) = io.alloc() else {
            self.drops.count(DropReason::NoBuffer);
            return;
        };
        let ident = self.next_ident();
        self.drops.count(reason);
        if build_error(&mut out, offending, kind, src, ident).is_ok() {
            self.forward(now, Fwd::ORIGINATED, out, io);
        }
    }

    fn transmit<I: Io<B>>(&mut self, port: PortId, buf: B, io: &mut I) {
        self.counters.tx_packets += 1;
        self.counters.tx_bytes += buf.len() as u64;
        io.transmit(port, buf);
    }

    fn handle<I: Io<B>>(
        &mut self,
        now: Instant,
        port: PortId,
        buf: &mut B,
        io: &mut I,
    ) -> Result<Action, DropReason> {
        let Some(setup) = self.cfg.ports.get(usize::from(port)).copied() else {
            return Err(DropReason::NotForUs);
        };
        let eth = ethernet::Frame::new_checked(buf.data()).map_err(|_| DropReason::EthTruncated)?;
        let dst_mac = eth.dst_addr();
        if dst_mac != setup.mac && !dst_mac.is_broadcast() {
            return Err(DropReason::NotOurMac);
        }
        match eth.ethertype() {
            EtherType::ARP => self.handle_arp(now, port, setup.mac, buf, io),
            EtherType::IPV4 => self.handle_ipv4(now, port, buf),
            _ => Err(DropReason::UnknownEthertype),
        }
    }

    fn handle_arp<I: Io<B>>(
        &mut self,
        now: Instant,
        port: PortId,
        mac: MacAddr,
        buf: &mut B,
        io: &mut I,
    ) -> Result<Action, DropReason> {
        // The sender's MAC, for packets the message releases from the neighbour queue (the
        // ARP handler checks the frame; a short one releases nothing).
        let sender = buf
            .data()
            .get(22..28)
            .and_then(MacAddr::from_bytes)
            .unwrap_or(MacAddr::ZERO);
        let tables = &self.tables;
        let counters = &mut self.counters;
        let verdict = handle_arp(
            now,
            port,
            mac,
            buf,
            |ip| tables.answers_for(port, ip),
            &mut self.neigh,
            |b: B| {
                // A packet that was waiting for this neighbour: send it to the MAC just learnt.
                send_resolved(counters, io, port, mac, set_dst_mac(b, sender));
            },
        );
        match verdict {
            ArpVerdict::Reply => Ok(Action::Transmit(port)),
            ArpVerdict::Consumed => Ok(Action::Consumed),
            ArpVerdict::Drop(r) => Err(r),
        }
    }

    fn handle_ipv4(
        &mut self,
        now: Instant,
        port: PortId,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let l3 = &buf.data()[ethernet::HEADER_LEN..];
        let ip = ipv4::Packet::new_checked(l3).map_err(|e| match e {
            WireError::BadLength => DropReason::Ipv4BadLength,
            _ => DropReason::Ipv4Malformed,
        })?;
        if !ip.verify_checksum() {
            return Err(DropReason::Ipv4BadChecksum);
        }
        if ip.is_fragment() {
            return Err(DropReason::Ipv4Fragment);
        }
        if ip.has_options() {
            self.counters.ipv4_options += 1;
        }
        let (src, dst, proto, ttl) = (ip.src_addr(), ip.dst_addr(), ip.protocol(), ip.ttl());
        let l4 = ip.payload();
        let (sport, dport, flags) = if proto == IpProtocol::TCP {
            let t = tcp::Packet::new_checked(l4).map_err(|_| DropReason::TcpMalformed)?;
            (t.src_port(), t.dst_port(), t.flags())
        } else if proto == IpProtocol::UDP {
            let u = udp::Packet::new_checked(l4).map_err(|_| DropReason::UdpMalformed)?;
            (u.src_port(), u.dst_port(), TcpFlags(0))
        } else if proto == IpProtocol::ICMP {
            return self.handle_icmp(port, dst, buf);
        } else {
            return Err(if self.tables.is_local(dst) {
                DropReason::LocalNotService
            } else {
                DropReason::NotForUs
            });
        };
        let key = ConnKey {
            proto: proto.0,
            src,
            sport,
            dst,
            dport,
        };
        let plain_syn = flags.syn() && !flags.ack() && !flags.rst() && !flags.fin();
        if let Some((id, dir)) = self.conns.lookup(&key) {
            if ttl <= 1 {
                return Err(DropReason::TtlExceeded);
            }
            let reused = dir == Dir::Original
                && proto == IpProtocol::TCP
                && plain_syn
                && self.conns.get(id).is_some_and(|c| {
                    matches!(
                        c.state(),
                        ConnState::Tcp(TcpState::TimeWait | TcpState::Close)
                    )
                });
            if !reused {
                return self.forward_conn(now, id, dir, flags, buf);
            }
            // A new connection on a client port whose old one is closing: expire it and
            // schedule anew (IPVS conn_reuse_mode).
            self.remove_conn(id);
        }
        let Some(svc) = self.find_service(proto.0, dst, dport) else {
            return Err(if self.tables.is_local(dst) {
                DropReason::LocalNotService
            } else {
                DropReason::NotForUs
            });
        };
        let svc_id = svc.id();
        if proto == IpProtocol::TCP && !plain_syn {
            return Err(DropReason::TcpNoConnection);
        }
        if !l4_checksum_ok(buf.data()) {
            return Err(DropReason::L4BadChecksum);
        }
        if ttl <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        let id = self.open_conn(now, svc_id, key)?;
        let one_packet = proto == IpProtocol::UDP
            && self
                .tables
                .services
                .service(svc_id)
                .is_some_and(|s| s.config().one_packet);
        let action = self.forward_conn(now, id, Dir::Original, flags, buf);
        if one_packet {
            // One-packet scheduling (`-o`): the datagram was scheduled and counted as a
            // connection; nothing is kept (IPVS never hashes such connections). Its template,
            // if any, stays: the removal is not "early".
            self.remove_conn_early(id, false);
        }
        action
    }

    /// The service a new connection belongs to: a fwmark service when the classifier marks the
    /// packet and the mark has a service (IPVS looks fwmark services up first), else the
    /// address service (or the persistent port-0 one).
    fn find_service(
        &self,
        proto: u8,
        dst: Ipv4Addr,
        dport: u16,
    ) -> Option<&crate::service::Service> {
        self.tables.find_service(proto, dst, dport)
    }

    fn handle_icmp(
        &mut self,
        port: PortId,
        dst: Ipv4Addr,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let l3 = &buf.data()[ethernet::HEADER_LEN..];
        let ip = ipv4::Packet::new_checked(l3).map_err(|_| DropReason::Ipv4Malformed)?;
        let m = icmp::Packet::new_checked(ip.payload()).map_err(|_| DropReason::IcmpMalformed)?;
        if xmit::icmp::is_translated_error(m.msg_type())
            && let Some(q) = xmit::icmp::quoted_tuple(buf.data())
        {
            // The quoted packet is one we sent; reversed, it is what its peer sends us.
            let key = ConnKey {
                proto: q.proto,
                src: q.dst,
                sport: q.dport,
                dst: q.src,
                dport: q.sport,
            };
            if let Some((id, dir)) = self.conns.lookup(&key) {
                if !m.verify_checksum() {
                    return Err(DropReason::L4BadChecksum);
                }
                if ip.ttl() <= 1 {
                    return Err(DropReason::TtlExceeded);
                }
                return self.forward_icmp_error(id, dir, buf);
            }
        }
        if m.msg_type() == IcmpType::ECHO_REQUEST && self.tables.answers_for(port, dst) {
            echo_reply_in_place(buf)?;
            return Ok(Action::Transmit(port));
        }
        Err(if self.tables.is_local(dst) {
            DropReason::LocalNotService
        } else {
            DropReason::NotForUs
        })
    }

    /// Translate an ICMP error about connection `id` for the other side (see `xmit::icmp`).
    fn forward_icmp_error(
        &mut self,
        id: crate::conn::ConnId,
        dir: Dir,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let conn = *self.conns.get(id).ok_or(DropReason::NotForUs)?;
        let (i, o) = (*conn.in_key(), *conn.out_key());
        let fullnat = conn.method() == ForwardMethod::FullNat;
        let t = match (conn.method(), dir) {
            (ForwardMethod::Masq | ForwardMethod::FullNat, Dir::Original) => {
                xmit::icmp::Translation {
                    outer_src: fullnat.then_some(o.dst),
                    outer_dst: Some(o.src),
                    quoted: xmit::icmp::Quoted {
                        proto: o.proto,
                        src: o.src,
                        sport: o.sport,
                        dst: o.dst,
                        dport: o.dport,
                    },
                }
            }
            (ForwardMethod::Masq | ForwardMethod::FullNat, Dir::Reply) => xmit::icmp::Translation {
                outer_src: Some(i.dst),
                outer_dst: fullnat.then_some(i.src),
                quoted: xmit::icmp::Quoted {
                    proto: i.proto,
                    src: i.src,
                    sport: i.sport,
                    dst: i.dst,
                    dport: i.dport,
                },
            },
            (ForwardMethod::Route, Dir::Original) => {
                // The real server holds the VIP too: pass the error on as DR passes requests.
                return Ok(Action::Forward(Fwd {
                    via: Some(o.src),
                    dec_ttl: false,
                }));
            }
            _ => return Err(DropReason::MethodUnsupported),
        };
        xmit::icmp::translate(buf, &t)?;
        Ok(Action::Forward(Fwd::ROUTED))
    }

    /// Schedule a dest for a new connection of service `svc_id` and insert it.
    fn open_conn(
        &mut self,
        now: Instant,
        svc_id: ServiceId,
        key: ConnKey,
    ) -> Result<crate::conn::ConnId, DropReason> {
        // Borrowed, not cloned: an `Arc` clone is an atomic read-modify-write per packet.
        let tables = &*self.tables;
        let svc = tables.services.service(svc_id).ok_or(DropReason::NoDest)?;
        let slot = match self.scheds.get_mut(&svc_id) {
            Some(s) if s.name == svc.scheduler() && s.flags == svc.flags() => s,
            _ => {
                let params = crate::sched::SchedParams {
                    seed: self.sched_seed,
                    ..Default::default()
                };
                let sched = crate::sched::new_with_params(svc.scheduler(), svc.flags(), &params)
                    .map_err(|_| DropReason::NoDest)?;
                let slot = SchedSlot {
                    version: u64::MAX,
                    name: svc.scheduler().to_owned(),
                    flags: svc.flags(),
                    sched,
                };
                self.scheds.insert(svc_id, slot);
                self.scheds.get_mut(&svc_id).ok_or(DropReason::NoDest)?
            }
        };
        if slot.version != svc.version() {
            slot.sched.update(svc.dests());
            slot.version = svc.version();
        }
        let input = SchedInput {
            proto: key.proto,
            client: key.src,
            client_port: key.sport,
            vip: key.dst,
            vport: key.dport,
            now,
        };
        let state = ConnState::initial(key.proto).ok_or(DropReason::NotForUs)?;
        let sched = &mut slot.sched;
        // Persistent services: the shared template table decides, asking the scheduler only
        // when the client (network) has no template yet.
        let (idx, control) = if svc.config().persistence.is_some() {
            let (idx, r) = tables
                .persist
                .schedule(now, self.cfg.id, svc, &key, || {
                    sched.schedule(svc.dests(), &input)
                })
                .map_err(|e| match e {
                    PersistError::NoDest => DropReason::NoDest,
                    PersistError::Full => DropReason::PersistTableFull,
                })?;
            (idx, Some(r))
        } else {
            let idx = sched
                .schedule(svc.dests(), &input)
                .ok_or(DropReason::NoDest)?;
            (idx, None)
        };
        let release = |w: &Self| {
            if let Some(r) = control {
                tables.persist.release(r, true, w.cfg.id, &tables.services);
            }
        };
        let Some(dest) = svc.dests().get(idx) else {
            release(self);
            return Err(DropReason::NoDest);
        };
        // A dest of port 0 (port-0 and fwmark services) takes the port the client asked for.
        let rport = if dest.port() == 0 {
            key.dport
        } else {
            dest.port()
        };
        // FULLNAT: the real server answers to LIP:lport; the others answer the client.
        let (reply_dst, reply_dport, laddr) = if dest.method() == ForwardMethod::FullNat {
            match alloc_lport(
                &mut self.lports,
                self.cfg.id,
                tables,
                svc_id,
                dest.addr(),
                rport,
            ) {
                Ok((lip, lport, stats)) => (lip, lport, Some((lip, lport, stats))),
                Err(e) => {
                    release(self);
                    return Err(e);
                }
            }
        } else {
            (key.src, key.sport, None)
        };
        let new = NewConn {
            in_key: key,
            out_key: ConnKey {
                proto: key.proto,
                src: dest.addr(),
                sport: rport,
                dst: reply_dst,
                dport: reply_dport,
            },
            service: svc_id,
            dest: dest.id(),
            method: dest.method(),
            state,
            deadline: now + tables.timeouts.timeout(state),
            template: false,
        };
        let id = match self.conns.insert(new) {
            Ok(id) => id,
            Err(e) => {
                release(self);
                if let Some((lip, lport, stats)) = laddr {
                    self.lports.release(lip, dest.addr(), rport, lport);
                    if e == InsertError::KeyExists {
                        crate::laddr::count_conflict(&stats, self.cfg.id);
                    }
                }
                return Err(match e {
                    InsertError::TableFull => DropReason::ConnTableFull,
                    InsertError::KeyExists => DropReason::ConnTupleInUse,
                });
            }
        };
        if let Some((_, _, stats)) = laddr {
            crate::laddr::count_conn(&stats, self.cfg.id, 1);
            if key.proto == IpProtocol::TCP.0
                && let Some(c) = self.conns.get_mut(id)
            {
                c.set_flag(ConnFlags::TOA_PENDING, true);
            }
        }
        if let Some(r) = control
            && let Some(c) = self.conns.get_mut(id)
        {
            c.set_control(r);
        }
        let inactive = self.conns.get(id).is_some_and(|c| c.is_inactive());
        dest.bind_conn(self.cfg.id, inactive);
        dest.stats().slot(self.cfg.id).add_conn();
        svc.stats().slot(self.cfg.id).add_conn();
        Ok(id)
    }

    /// Account and rewrite a packet of a known connection.
    fn forward_conn(
        &mut self,
        now: Instant,
        id: crate::conn::ConnId,
        dir: Dir,
        flags: TcpFlags,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        // Borrowed, not cloned: an `Arc` clone is an atomic read-modify-write per packet.
        let tables = &*self.tables;
        let Some(conn) = self.conns.get(id).copied() else {
            return Err(DropReason::NotForUs);
        };
        let Some((svc, dest)) = tables.services.dest_with_service(conn.dest()) else {
            // The dest was removed: stop forwarding for it and forget the connection.
            if let Some(c) = self.conns.remove(id) {
                forget(tables, &mut self.lports, &c, true);
            }
            return Err(DropReason::DestRemoved);
        };
        let w = self.cfg.id;
        if let Some(t) =
            self.conns
                .on_packet(id, dir, (flags.0 & 0xff) as u8, now, &tables.timeouts)
        {
            dest.move_conn(w, t.active_delta, t.inactive_delta);
            if t.new == ConnState::Tcp(TcpState::Established) {
                assure_template(tables, &mut self.conns, id, &conn);
            }
        }
        if dir == Dir::Reply && conn.in_key().proto == IpProtocol::UDP.0 {
            assure_template(tables, &mut self.conns, id, &conn);
        }
        let len = buf.len() as u64;
        let (i, o) = (*conn.in_key(), *conn.out_key());
        let how = match (conn.method(), dir) {
            (ForwardMethod::Masq, Dir::Original) => {
                xmit::nat::to_dest(buf, o.src, o.sport)?;
                Fwd::ROUTED
            }
            (ForwardMethod::Masq, Dir::Reply) => {
                xmit::nat::to_client(buf, i.dst, i.dport)?;
                Fwd::ROUTED
            }
            (ForwardMethod::Route, Dir::Original) => Fwd {
                via: Some(xmit::dr::to_dest(buf, dest.addr())?),
                dec_ttl: false,
            },
            (ForwardMethod::Tunnel, Dir::Original) => {
                let rip = dest.addr();
                let nh = tables.routes.lookup(rip).ok_or(DropReason::NoRoute)?;
                let mtu = self
                    .cfg
                    .ports
                    .get(usize::from(nh.port))
                    .map_or(0, |p| usize::from(p.mtu));
                let (inner, df) = xmit::tun::inner_len_df(buf)?;
                if inner + xmit::tun::OVERHEAD > mtu {
                    if !df {
                        return Err(DropReason::TooBig);
                    }
                    let mtu = mtu.saturating_sub(xmit::tun::OVERHEAD);
                    let kind = IcmpError::FragNeeded {
                        mtu: u16::try_from(mtu).unwrap_or(u16::MAX),
                    };
                    return Ok(Action::IcmpError(kind, DropReason::TunTooBig));
                }
                let src = tables
                    .addrs
                    .source_for(nh.port, rip)
                    .ok_or(DropReason::NoRoute)?;
                self.ip_ident = self.ip_ident.wrapping_add(1);
                let ident = self.ip_ident;
                xmit::tun::encapsulate(
                    buf,
                    xmit::tun::Outer {
                        src,
                        dst: rip,
                        ident,
                    },
                )?;
                Fwd::ORIGINATED
            }
            (ForwardMethod::FullNat, Dir::Original) => {
                xmit::fullnat::to_dest(buf, o.dst, o.dport, o.src, o.sport)?;
                if i.proto == IpProtocol::TCP.0 {
                    add_toa(&mut self.conns, id, &conn, flags, buf)?;
                }
                Fwd::ROUTED
            }
            (ForwardMethod::FullNat, Dir::Reply) => {
                xmit::fullnat::to_client(buf, i.dst, i.dport, i.src, i.sport)?;
                if i.proto == IpProtocol::TCP.0 && flags.syn() && flags.ack() {
                    xmit::toa::reduce_mss(buf, xmit::toa::LEN as u16)?;
                }
                Fwd::ROUTED
            }
            // DR/TUN replies bypass the director: their reply tuple is never indexed.
            (ForwardMethod::Route | ForwardMethod::Tunnel, Dir::Reply) => {
                return Err(DropReason::MethodUnsupported);
            }
        };
        match dir {
            Dir::Original => {
                dest.stats().slot(w).add_in(len);
                svc.stats().slot(w).add_in(len);
            }
            Dir::Reply => {
                dest.stats().slot(w).add_out(len);
                svc.stats().slot(w).add_out(len);
            }
        }
        Ok(Action::Forward(how))
    }

    /// Route an IPv4 packet by its destination: TTL, next hop, neighbour, Ethernet header.
    fn forward<I: Io<B>>(&mut self, now: Instant, how: Fwd, mut buf: B, io: &mut I) {
        match self.route(how, &mut buf) {
            Ok((port, next_hop)) => self.send_to_neighbour(now, port, next_hop, buf, io),
            Err(reason) => self.drops.count(reason),
        }
    }

    fn route(&self, how: Fwd, buf: &mut B) -> Result<(PortId, Ipv4Addr), DropReason> {
        let l3 = buf
            .data_mut()
            .get_mut(ethernet::HEADER_LEN..)
            .ok_or(DropReason::EthTruncated)?;
        let mut ip = ipv4::Packet::new_checked(l3).map_err(|_| DropReason::Ipv4Malformed)?;
        if how.dec_ttl {
            if ip.ttl() <= 1 {
                return Err(DropReason::TtlExceeded);
            }
            ip.decrement_ttl();
        }
        let nh = self
            .tables
            .routes
            .lookup(how.via.unwrap_or(ip.dst_addr()))
            .ok_or(DropReason::NoRoute)?;
        let mtu = self
            .cfg
            .ports
            .get(usize::from(nh.port))
            .map_or(0, |p| p.mtu);
        if ip.total_len() > mtu {
            return Err(DropReason::TooBig);
        }
        Ok((nh.port, nh.gateway_or_dst))
    }

    fn send_to_neighbour<I: Io<B>>(
        &mut self,
        now: Instant,
        port: PortId,
        next_hop: Ipv4Addr,
        buf: B,
        io: &mut I,
    ) {
        let Some(mac) = self.cfg.ports.get(usize::from(port)).map(|p| p.mac) else {
            self.drops.count(DropReason::NoRoute);
            return;
        };
        match self.neigh.resolve(now, port, next_hop) {
            Resolve::Known(dst) => {
                send_resolved(&mut self.counters, io, port, mac, set_dst_mac(buf, dst))
            }
            Resolve::Pending => match self.neigh.queue(now, port, next_hop, buf) {
                Ok(()) => {}
                Err((b, QueueError::Resolved(dst))) => {
                    send_resolved(&mut self.counters, io, port, mac, set_dst_mac(b, dst))
                }
                Err((_b, e)) => self
                    .drops
                    .count(e.drop_reason().unwrap_or(DropReason::NeighQueueFull)),
            },
        }
        self.send_solicits(io);
    }

    /// Send the ARP requests the neighbour table asked for.
    fn send_solicits<I: Io<B>>(&mut self, io: &mut I) {
        let Worker {
            neigh,
            tables,
            cfg,
            drops,
            counters,
            ..
        } = self;
        neigh.drain_solicits(|s| {
            let Some(mac) = cfg.ports.get(usize::from(s.port)).map(|p| p.mac) else {
                return;
            };
            let Some(src) = tables.addrs.source_for(s.port, s.ip) else {
                drops.count(DropReason::NoRoute);
                return;
            };
            let Some(mut b) = io.alloc() else {
                drops.count(DropReason::NoBuffer);
                return;
            };
            if build_request_to(&mut b, mac, src, s.ip, s.unicast).is_err() {
                drops.count(DropReason::NoBuffer);
                return;
            }
            counters.tx_packets += 1;
            counters.tx_bytes += b.len() as u64;
            io.transmit(s.port, b);
        });
    }
}

/// A local address and port of service `svc_id` towards `rip:rport` from `worker`'s partition:
/// the service's local addresses are tried in turn from a rotating start, so connections spread
/// over them.
fn alloc_lport(
    lports: &mut LportAlloc,
    worker: usize,
    tables: &Tables,
    svc_id: ServiceId,
    rip: Ipv4Addr,
    rport: u16,
) -> Result<(Ipv4Addr, u16, Arc<crate::laddr::LaddrStats>), DropReason> {
    let laddrs = tables.laddrs.of(svc_id);
    if laddrs.is_empty() {
        return Err(DropReason::NoLaddr);
    }
    let n = tables.laddrs.n_workers();
    let start = lports.next_start(laddrs.len());
    for k in 0..laddrs.len() {
        let l = &laddrs[(start + k) % laddrs.len()];
        if let Some(p) = lports.alloc(n, l.ip, rip, rport) {
            return Ok((l.ip, p, l.stats.clone()));
        }
        crate::laddr::count_conflict(&l.stats, worker);
    }
    Err(DropReason::LportExhausted)
}

/// FULLNAT TCP: the TOA option on the client's SYN and on its first data segment.
fn add_toa<B: PacketBuf>(
    conns: &mut ConnTable,
    id: crate::conn::ConnId,
    conn: &Conn,
    flags: TcpFlags,
    buf: &mut B,
) -> Result<(), DropReason> {
    let i = conn.in_key();
    if flags.syn() && !flags.ack() {
        xmit::toa::insert(buf, i.src, i.sport)?;
    } else if conn.flags().contains(ConnFlags::TOA_PENDING)
        && flags.ack()
        && !flags.syn()
        && !flags.rst()
        && xmit::toa::has_payload(buf)
    {
        xmit::toa::insert(buf, i.src, i.sport)?;
        if let Some(c) = conns.get_mut(id) {
            c.set_flag(ConnFlags::TOA_PENDING, false);
        }
    }
    Ok(())
}

/// The TCP/UDP tuple of an untagged IPv4 frame, read with bounds checks but without the full
/// validation `process` does (only for [`Worker::warm`]).
fn quick_tuple(f: &[u8]) -> Option<ConnKey> {
    if f.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ihl = usize::from(f.get(14)? & 0x0f) * 4;
    let proto = *f.get(23)?;
    if proto != IpProtocol::TCP.0 && proto != IpProtocol::UDP.0 {
        return None;
    }
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = f.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let port = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(f.get(at..at + 2)?.try_into().ok()?))
    };
    let l4 = 14 + ihl;
    Some(ConnKey {
        proto,
        src: addr(26)?,
        sport: port(l4)?,
        dst: addr(30)?,
        dport: port(l4 + 2)?,
    })
}

/// A controlled connection is established (TCP) or answered (UDP): its template becomes ASSURED
/// (told once per connection).
fn assure_template(tables: &Tables, conns: &mut ConnTable, id: crate::conn::ConnId, conn: &Conn) {
    let Some(r) = conn.control() else { return };
    if conn.flags().contains(ConnFlags::ASSURED_SENT) {
        return;
    }
    tables.persist.assure(r);
    if let Some(c) = conns.get_mut(id) {
        c.set_flag(ConnFlags::ASSURED_SENT, true);
    }
}

/// A connection is gone (expired, or removed `early`): unbind it from its dest, release its
/// template's control and give back its local port (FULLNAT).
fn forget(tables: &Tables, lports: &mut LportAlloc, c: &Conn, early: bool) {
    if let Some(d) = tables.services.dest(c.dest()) {
        d.unbind_conn(lports.worker(), c.is_inactive());
    }
    if let Some(r) = c.control() {
        tables
            .persist
            .release(r, early, lports.worker(), &tables.services);
    }
    if c.method() == ForwardMethod::FullNat {
        let o = c.out_key();
        lports.release(o.dst, o.src, o.sport, o.dport);
        if let Some(s) = tables.laddrs.stats(o.dst) {
            crate::laddr::count_conn(s, lports.worker(), -1);
        }
    }
}

/// Write the Ethernet destination into a routed packet (the source is written on send).
fn set_dst_mac<B: PacketBuf>(mut buf: B, dst: MacAddr) -> B {
    if let Some(h) = buf.data_mut().get_mut(0..6) {
        h.copy_from_slice(&dst.0);
    }
    buf
}

/// Send a routed packet whose destination MAC is already written: fill the source MAC (the
/// egress port's) and hand it to the runtime.
fn send_resolved<B: PacketBuf, I: Io<B>>(
    counters: &mut Counters,
    io: &mut I,
    port: PortId,
    src_mac: MacAddr,
    mut buf: B,
) {
    if let Some(h) = buf.data_mut().get_mut(6..12) {
        h.copy_from_slice(&src_mac.0);
    }
    counters.tx_packets += 1;
    counters.tx_bytes += buf.len() as u64;
    io.transmit(port, buf);
}

/// Full TCP/UDP checksum check of a frame already validated up to L4.
fn l4_checksum_ok(frame: &[u8]) -> bool {
    let Some(l3) = frame.get(ethernet::HEADER_LEN..) else {
        return false;
    };
    let Ok(ip) = ipv4::Packet::new_checked(l3) else {
        return false;
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if ip.protocol() == IpProtocol::TCP {
        tcp::Packet::new_checked(ip.payload()).is_ok_and(|t| t.verify_checksum(src, dst))
    } else if ip.protocol() == IpProtocol::UDP {
        udp::Packet::new_checked(ip.payload()).is_ok_and(|u| u.verify_checksum(src, dst))
    } else {
        true
    }
}

#[cfg(test)]
mod tests;
