//! The neighbour table of one worker: IPv4 ARP today, written over an address type
//! ([`NeighAddr`]) so that IPv6 Neighbour Discovery uses the same machine, and generic over the
//! packet type waiting for resolution.
//!
//! States and defaults follow Linux's neighbour machine (`net.ipv4.neigh.*`; documented here
//! because an operator will compare):
//! - `Incomplete`: a broadcast request is out. Packets wait, in arrival order, up to
//!   `queue_bytes` of frames per entry (default 212992, Linux's `unres_qlen_bytes`; one packet
//!   is always accepted into an empty queue) and `queue_total` packets across the table (default
//!   1024: the bound on packet buffers held). Requests are retransmitted every `retrans_time`
//!   (1 s) up to `max_probes` (3) in all; after that the entry fails, its queued packets are
//!   handed back with `DropReason::NeighTimeout`, and it is removed (the next packet starts a
//!   fresh resolution).
//! - `Reachable`: confirmed by an ARP message within `reachable_time` (30 s, Linux's
//!   `base_reachable_time`).
//! - `Stale`: confirmation older than that. Still used to send.
//! - `Delay`: a stale entry that was used. Traffic keeps going to the known address; if nothing
//!   confirms the neighbour within `delay_first_probe` (5 s, Linux's
//!   `delay_first_probe_time`), the entry moves to `Probe`.
//! - `Probe`: up to `max_probes` requests unicast to the known address, one per `retrans_time`,
//!   while traffic still goes there; any answer makes it `Reachable`, none removes the entry.
//!   Re-confirmation therefore never holds a packet back: only a neighbour that stopped
//!   answering loses traffic, after `delay_first_probe + max_probes * retrans_time`.
//! - `Permanent`: a static entry from the control plane; never expires, never overwritten.
//!
//! Stale entries unused for `gc_stale_time` (60 s, Linux's `gc_stale_time`) are removed by
//! [`NeighTable::on_tick`].
//!
//! Learning: a request addressed to one of our addresses, or any reply addressed to us, creates
//! or confirms the sender's entry ([`Learn::Create`]); other traffic (gratuitous announcements,
//! overheard requests) only updates an entry that already exists ([`Learn::UpdateOnly`]), as Linux
//! does with `arp_accept = 0`. Confirming an `Incomplete` entry releases its queued packets in
//! arrival order.
//! Neighbour Discovery updates entries through [`NeighTable::update_nd`] instead, which follows
//! RFC 4861's finer rules (a solicitation's address creates a `Stale` entry, only a solicited
//! advertisement makes one `Reachable`, a different address without the override flag is not
//! taken).
//!
//! Bounds and allocation: `max_entries` slots, an open-addressing index with backward-shift
//! deletion (no tombstones, never rehashes), a shared pool of `queue_total` wait slots, and a
//! solicitation list of `max_entries` are all allocated by [`NeighTable::new`]; no method
//! allocates afterwards. When the table is full, resolving a new neighbour evicts the least
//! recently used non-permanent entry that has no waiting packets; learning never evicts.
//!
//! Outputs: requests to send are collected and handed out by [`NeighTable::drain_solicits`]
//! (call it after each burst and each tick); released packets go to the closure given to
//! [`NeighTable::learn`]; failed ones to the closure given to [`NeighTable::on_tick`].

use super::addr::PortId;
use crate::drop::DropReason;
use crate::time::Instant;
use crate::wire::MacAddr;
use core::fmt::{Debug, Display};
use core::time::Duration;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An address the neighbour table resolves: IPv4 (ARP) or IPv6 (Neighbour Discovery).
pub trait NeighAddr: Copy + Eq + Debug + Display {
    /// The address as a number, hashed by the table's index.
    fn hash_input(&self) -> u128;
    /// Whether a neighbour can have this address (not unspecified, broadcast or multicast):
    /// others are never learnt.
    fn is_neighbour(&self) -> bool;
}

impl NeighAddr for Ipv4Addr {
    #[inline]
    fn hash_input(&self) -> u128 {
        u128::from(u32::from(*self))
    }
    fn is_neighbour(&self) -> bool {
        !(self.is_unspecified() || self.is_broadcast() || self.is_multicast())
    }
}

impl NeighAddr for Ipv6Addr {
    #[inline]
    fn hash_input(&self) -> u128 {
        u128::from(*self)
    }
    fn is_neighbour(&self) -> bool {
        !(self.is_unspecified() || self.is_multicast())
    }
}

/// Sizes and timers of a [`NeighTable`]. See the module doc for the defaults' origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighConfig {
    /// Entries the table holds (at least 1).
    pub max_entries: usize,
    /// Frame bytes that may wait on one unresolved neighbour (Linux's `unres_qlen_bytes`).
    pub queue_bytes: usize,
    /// Packets that may wait in the whole table.
    pub queue_total: usize,
    pub reachable_time: Duration,
    /// How long a used stale entry waits for a confirmation before it is probed.
    pub delay_first_probe: Duration,
    pub gc_stale_time: Duration,
    pub retrans_time: Duration,
    /// Requests sent per resolution (or re-probe) before giving up (at least 1).
    pub max_probes: u8,
    /// Seed of the index hash (the daemon may randomise it per start).
    pub hash_seed: u64,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig {
            max_entries: 4096,
            queue_bytes: 212_992,
            queue_total: 1024,
            reachable_time: Duration::from_secs(30),
            delay_first_probe: Duration::from_secs(5),
            gc_stale_time: Duration::from_secs(60),
            retrans_time: Duration::from_secs(1),
            max_probes: 3,
            hash_seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// State of a neighbour entry (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Permanent,
}

/// Result of [`NeighTable::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Send to this MAC.
    Known(MacAddr),
    /// Not resolved (no entry, or a request is out): hand the packet to [`NeighTable::queue`].
    Pending,
}

/// How much an ARP message may teach the table (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learn {
    /// Addressed to us: create the entry if absent, confirm it otherwise.
    Create,
    /// Overheard or gratuitous: update an existing entry only.
    UpdateOnly,
}

/// What a Neighbour Discovery message says about the entry it updates
/// ([`NeighTable::update_nd`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NdUpdate {
    /// Create the entry when absent (the message was addressed to us: a solicitation for one of
    /// our addresses); otherwise only an existing entry is updated.
    pub create: bool,
    /// The neighbour is confirmed reachable (a solicited advertisement: S flag).
    pub reachable: bool,
    /// The link-layer address given replaces a different known one (O flag; a solicitation's
    /// source address always does).
    pub override_: bool,
}

/// Why [`NeighTable::queue`] gave a packet back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The entry's or the table's wait queue is full.
    QueueFull,
    /// No entry could be created: the table is full of entries with waiting packets.
    TableFull,
    /// The neighbour is resolved after all: send the packet to this MAC.
    Resolved(MacAddr),
}

impl QueueError {
    /// The drop reason to count, `None` for [`QueueError::Resolved`] (send it instead).
    pub fn drop_reason(self) -> Option<DropReason> {
        match self {
            QueueError::QueueFull | QueueError::TableFull => Some(DropReason::NeighQueueFull),
            QueueError::Resolved(_) => None,
        }
    }
}

/// A request the worker should send out of `port` for `ip`: broadcast (or, for IPv6, to the
/// solicited-node group), or unicast to the MAC being re-probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicit<A = Ipv4Addr> {
    pub port: PortId,
    pub ip: A,
    pub unicast: Option<MacAddr>,
}

/// A neighbour entry as the control plane lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighInfo<A = Ipv4Addr> {
    pub port: PortId,
    pub ip: A,
    /// `None` while incomplete.
    pub mac: Option<MacAddr>,
    pub state: NeighState,
    /// Packets waiting for resolution.
    pub queued: usize,
}

/// Why a control-plane change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NeighError<A: NeighAddr = Ipv4Addr> {
    #[error("neighbour table full ({0} entries); raise its size or delete entries")]
    TableFull(usize),
    #[error("no neighbour entry for {1} on port {0}")]
    NotFound(PortId, A),
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Entry<A> {
    port: PortId,
    ip: A,
    mac: MacAddr,
    state: NeighState,
    confirmed: Instant,
    used: Instant,
    next_probe: Instant,
    probes: u8,
    qhead: u32,
    qtail: u32,
    qlen: u32,
    /// Frame bytes waiting.
    qbytes: u32,
}

/// The neighbour table (module doc).
#[derive(Debug)]
pub struct NeighTable<B, A = Ipv4Addr> {
    cfg: NeighConfig,
    slots: Vec<Option<Entry<A>>>,
    free_slots: Vec<u32>,
    /// Open addressing over slot numbers; `NIL` is empty. Power-of-two size >= 2 * max_entries.
    index: Vec<u32>,
    /// Wait-queue pool: buffers and a singly linked next pointer (free list or entry queue).
    qbufs: Vec<Option<B>>,
    qnext: Vec<u32>,
    qfree: u32,
    queued: usize,
    solicits: Vec<Solicit<A>>,
}

impl<B, A: NeighAddr> NeighTable<B, A> {
    /// A table with everything preallocated. Out-of-range config values are clamped
    /// (`max_entries >= 1`, `queue_bytes` below 4 GiB, `max_probes >= 1`).
    pub fn new(cfg: NeighConfig) -> Self {
        let mut cfg = cfg;
        cfg.max_entries = cfg.max_entries.clamp(1, (u32::MAX / 4) as usize);
        cfg.queue_bytes = cfg.queue_bytes.min(u32::MAX as usize);
        cfg.queue_total = cfg.queue_total.min((u32::MAX - 1) as usize);
        cfg.max_probes = cfg.max_probes.max(1);
        let n = cfg.max_entries;
        let idx = (2 * n).next_power_of_two();
        NeighTable {
            slots: vec![None; n],
            free_slots: (0..n as u32).rev().collect(),
            index: vec![NIL; idx],
            qbufs: (0..cfg.queue_total).map(|_| None).collect(),
            qnext: (0..cfg.queue_total)
                .map(|i| {
                    if i + 1 < cfg.queue_total {
                        i as u32 + 1
                    } else {
                        NIL
                    }
                })
                .collect(),
            qfree: if cfg.queue_total > 0 { 0 } else { NIL },
            queued: 0,
            solicits: Vec::with_capacity(n),
            cfg,
        }
    }

    pub fn config(&self) -> &NeighConfig {
        &self.cfg
    }

    /// Entries in use.
    pub fn len(&self) -> usize {
        self.cfg.max_entries - self.free_slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Packets waiting for resolution across the table.
    pub fn queued(&self) -> usize {
        self.queued
    }

    // ---- index -------------------------------------------------------------------------

    fn hash(&self, port: PortId, ip: A) -> usize {
        let a = ip.hash_input();
        let folded = (a as u64) ^ ((a >> 64) as u64).rotate_left(23);
        let k = (folded << 16 | u64::from(port)) ^ self.cfg.hash_seed;
        let h = k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h ^ (h >> 29)) as usize & (self.index.len() - 1)
    }

    /// Index position of (port, ip), if present.
    fn find(&self, port: PortId, ip: A) -> Option<usize> {
        let mask = self.index.len() - 1;
        let mut i = self.hash(port, ip);
        loop {
            let s = self.index[i];
            if s == NIL {
                return None;
            }
            if let Some(e) = &self.slots[s as usize]
                && e.port == port
                && e.ip == ip
            {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn slot_of(&self, port: PortId, ip: A) -> Option<usize> {
        self.find(port, ip).map(|i| self.index[i] as usize)
    }

    /// Insert a new entry; the caller has checked it is absent and a slot is free.
    fn insert(&mut self, e: Entry<A>) -> Option<usize> {
        let slot = self.free_slots.pop()?;
        let mask = self.index.len() - 1;
        let mut i = self.hash(e.port, e.ip);
        while self.index[i] != NIL {
            i = (i + 1) & mask;
        }
        self.index[i] = slot;
        self.slots[slot as usize] = Some(e);
        Some(slot as usize)
    }

    /// Remove the entry in `slot`, returning its queued packets to `dropped`.
    fn remove_slot(&mut self, slot: usize, mut dropped: impl FnMut(B)) {
        let Some(e) = self.slots[slot] else { return };
        self.drain_queue(slot, &mut dropped);
        let Some(mut hole) = self.find(e.port, e.ip) else {
            return;
        };
        self.slots[slot] = None;
        self.free_slots.push(slot as u32);
        // Backward-shift deletion keeps every probe chain unbroken without tombstones.
        let mask = self.index.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.index[j];
            if s == NIL {
                break;
            }
            let Some(o) = &self.slots[s as usize] else {
                break;
            };
            let ideal = self.hash(o.port, o.ip);
            if (j.wrapping_sub(ideal) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.index[hole] = s;
                hole = j;
            }
        }
        self.index[hole] = NIL;
    }

    // ---- wait queues -------------------------------------------------------------------

    fn push_queue(&mut self, slot: usize, buf: B, bytes: usize) -> Result<(), B> {
        let Some(e) = self.slots[slot].as_mut() else {
            return Err(buf);
        };
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let fits = e.qlen == 0 || e.qbytes as usize + bytes as usize <= self.cfg.queue_bytes;
        if !fits || self.qfree == NIL {
            return Err(buf);
        }
        let q = self.qfree as usize;
        self.qfree = self.qnext[q];
        self.qbufs[q] = Some(buf);
        self.qnext[q] = NIL;
        if e.qtail == NIL {
            e.qhead = q as u32;
        } else {
            self.qnext[e.qtail as usize] = q as u32;
        }
        e.qtail = q as u32;
        e.qlen += 1;
        e.qbytes = e.qbytes.saturating_add(bytes);
        self.queued += 1;
        Ok(())
    }

    fn drain_queue(&mut self, slot: usize, out: &mut impl FnMut(B)) -> usize {
        let Some(e) = self.slots[slot].as_mut() else {
            return 0;
        };
        let mut q = e.qhead;
        e.qhead = NIL;
        e.qtail = NIL;
        e.qlen = 0;
        e.qbytes = 0;
        let mut n = 0;
        while q != NIL {
            let i = q as usize;
            q = self.qnext[i];
            self.qnext[i] = self.qfree;
            self.qfree = i as u32;
            if let Some(b) = self.qbufs[i].take() {
                self.queued -= 1;
                n += 1;
                out(b);
            }
        }
        n
    }

    fn solicit(&mut self, s: Solicit<A>) {
        // Bounded by construction (one per entry per retransmit); if the worker never drains,
        // drop the request rather than grow: the next retransmit will ask again.
        if self.solicits.len() < self.solicits.capacity() {
            self.solicits.push(s);
        }
    }

    // ---- the data path -----------------------------------------------------------------

    /// Where to send a packet for `ip` on `port`. Marks the entry used; a stale entry moves to
    /// `Delay` (module doc) and is still returned as known.
    pub fn resolve(&mut self, now: Instant, port: PortId, ip: A) -> Resolve {
        let Some(slot) = self.slot_of(port, ip) else {
            return Resolve::Pending;
        };
        let (reachable, delay) = (self.cfg.reachable_time, self.cfg.delay_first_probe);
        let Some(e) = self.slots[slot].as_mut() else {
            return Resolve::Pending;
        };
        e.used = now;
        if e.state == NeighState::Reachable && now >= e.confirmed + reachable {
            e.state = NeighState::Stale;
        }
        match e.state {
            NeighState::Incomplete => Resolve::Pending,
            NeighState::Stale => {
                e.state = NeighState::Delay;
                e.next_probe = now + delay;
                Resolve::Known(e.mac)
            }
            NeighState::Reachable
            | NeighState::Delay
            | NeighState::Probe
            | NeighState::Permanent => Resolve::Known(e.mac),
        }
    }

    /// Park `buf` (a frame of `bytes` bytes) until `ip` on `port` resolves, starting resolution
    /// (an entry and a broadcast request) if none is under way. Gives the packet back when it
    /// cannot wait.
    pub fn queue(
        &mut self,
        now: Instant,
        port: PortId,
        ip: A,
        buf: B,
        bytes: usize,
    ) -> Result<(), (B, QueueError)> {
        let slot = match self.slot_of(port, ip) {
            Some(s) => s,
            None => {
                if self.free_slots.is_empty() && !self.evict_one() {
                    return Err((buf, QueueError::TableFull));
                }
                let e = Entry {
                    port,
                    ip,
                    mac: MacAddr::ZERO,
                    state: NeighState::Incomplete,
                    confirmed: now,
                    used: now,
                    next_probe: now + self.cfg.retrans_time,
                    probes: 1,
                    qhead: NIL,
                    qtail: NIL,
                    qlen: 0,
                    qbytes: 0,
                };
                let Some(s) = self.insert(e) else {
                    return Err((buf, QueueError::TableFull));
                };
                self.solicit(Solicit {
                    port,
                    ip,
                    unicast: None,
                });
                s
            }
        };
        if let Some(e) = &self.slots[slot]
            && e.state != NeighState::Incomplete
        {
            return Err((buf, QueueError::Resolved(e.mac)));
        }
        self.push_queue(slot, buf, bytes)
            .map_err(|b| (b, QueueError::QueueFull))
    }

    /// Evict the least recently used resolved, non-permanent entry. False if there is none.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i, e)))
            .filter(|(_, e)| !matches!(e.state, NeighState::Incomplete | NeighState::Permanent))
            .min_by_key(|(_, e)| e.used)
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                // Resolved entries have empty queues; nothing is dropped.
                self.remove_slot(i, |_| {});
                true
            }
            None => false,
        }
    }

    /// Learn `ip` is at `mac` on `port` from an ARP message (module doc for `how`). Packets
    /// waiting for it go to `release`, in arrival order, ready to be sent to `mac`. Returns
    /// how many were released. Unspecified sender addresses and non-unicast MACs are ignored.
    pub fn learn(
        &mut self,
        now: Instant,
        port: PortId,
        ip: A,
        mac: MacAddr,
        how: Learn,
        mut release: impl FnMut(B),
    ) -> usize {
        if !ip.is_neighbour() || !mac.is_unicast() {
            return 0;
        }
        let slot = match self.slot_of(port, ip) {
            Some(s) => s,
            None if how == Learn::Create => {
                let e = Entry {
                    port,
                    ip,
                    mac,
                    state: NeighState::Reachable,
                    confirmed: now,
                    used: now,
                    next_probe: now,
                    probes: 0,
                    qhead: NIL,
                    qtail: NIL,
                    qlen: 0,
                    qbytes: 0,
                };
                self.insert(e);
                return 0;
            }
            None => return 0,
        };
        let Some(e) = self.slots[slot].as_mut() else {
            return 0;
        };
        if e.state == NeighState::Permanent {
            return 0;
        }
        e.mac = mac;
        e.state = NeighState::Reachable;
        e.confirmed = now;
        e.probes = 0;
        self.drain_queue(slot, &mut release)
    }

    /// Update `ip` on `port` from a Neighbour Discovery message, by RFC 4861's rules (7.2.3 for
    /// a solicitation's source link-layer address, 7.2.5 for an advertisement), which are finer
    /// than ARP's [`NeighTable::learn`]:
    /// - no entry: created (with `nd.create` and a `mac`) as `Reachable` if `nd.reachable`
    ///   (a solicited advertisement), else `Stale`;
    /// - `Incomplete`: needs a `mac`; becomes `Reachable` or `Stale` as above and releases its
    ///   queued packets to `release`;
    /// - otherwise, if `mac` differs from the known one and `nd.override_` is clear, the entry
    ///   keeps its address and a `Reachable` one goes `Stale` (someone else claims it: verify);
    ///   else the address is taken, and the entry becomes `Reachable` if `nd.reachable`, or
    ///   `Stale` if the address changed, or keeps its state.
    ///
    /// `Permanent` entries never change. Returns how many packets were released.
    pub fn update_nd(
        &mut self,
        now: Instant,
        port: PortId,
        ip: A,
        mac: Option<MacAddr>,
        nd: NdUpdate,
        mut release: impl FnMut(B),
    ) -> usize {
        if !ip.is_neighbour() || mac.is_some_and(|m| !m.is_unicast()) {
            return 0;
        }
        let fresh = if nd.reachable {
            NeighState::Reachable
        } else {
            NeighState::Stale
        };
        let Some(slot) = self.slot_of(port, ip) else {
            if let (true, Some(mac)) = (nd.create, mac) {
                if self.free_slots.is_empty() {
                    // Learning never evicts (module doc).
                    return 0;
                }
                self.insert(Entry {
                    port,
                    ip,
                    mac,
                    state: fresh,
                    confirmed: now,
                    used: now,
                    next_probe: now,
                    probes: 0,
                    qhead: NIL,
                    qtail: NIL,
                    qlen: 0,
                    qbytes: 0,
                });
            }
            return 0;
        };
        let reachable_time = self.cfg.reachable_time;
        let Some(e) = self.slots[slot].as_mut() else {
            return 0;
        };
        match e.state {
            NeighState::Permanent => 0,
            NeighState::Incomplete => {
                let Some(mac) = mac else { return 0 };
                e.mac = mac;
                e.state = fresh;
                e.confirmed = now;
                e.probes = 0;
                self.drain_queue(slot, &mut release)
            }
            _ => {
                let changed = mac.is_some_and(|m| m != e.mac);
                if changed && !nd.override_ {
                    if e.state == NeighState::Reachable {
                        e.state = NeighState::Stale;
                    }
                    return 0;
                }
                if let Some(m) = mac {
                    e.mac = m;
                }
                if nd.reachable {
                    e.state = NeighState::Reachable;
                    e.confirmed = now;
                    e.probes = 0;
                } else if changed
                    || (e.state == NeighState::Reachable && now >= e.confirmed + reachable_time)
                {
                    // A new address is unconfirmed; an old confirmation has run out.
                    e.state = NeighState::Stale;
                }
                0
            }
        }
    }

    /// Drive timers: retransmit requests, fail resolutions that ran out of probes (their
    /// packets go to `failed` with [`DropReason::NeighTimeout`]), start probing delayed entries,
    /// age reachable entries to stale and remove stale ones unused for `gc_stale_time`. Call
    /// every 100 ms to 1 s; O(entries).
    pub fn on_tick(&mut self, now: Instant, mut failed: impl FnMut(B, DropReason)) {
        let c = self.cfg;
        for slot in 0..self.slots.len() {
            let Some(e) = self.slots[slot].as_mut() else {
                continue;
            };
            match e.state {
                NeighState::Incomplete | NeighState::Probe => {
                    if now < e.next_probe {
                        continue;
                    }
                    if e.probes < c.max_probes {
                        e.probes += 1;
                        e.next_probe = now + c.retrans_time;
                        let unicast = (e.state == NeighState::Probe).then_some(e.mac);
                        let s = Solicit {
                            port: e.port,
                            ip: e.ip,
                            unicast,
                        };
                        self.solicit(s);
                    } else {
                        self.remove_slot(slot, |b| failed(b, DropReason::NeighTimeout));
                    }
                }
                NeighState::Delay => {
                    if now < e.next_probe {
                        continue;
                    }
                    e.state = NeighState::Probe;
                    e.probes = 1;
                    e.next_probe = now + c.retrans_time;
                    let s = Solicit {
                        port: e.port,
                        ip: e.ip,
                        unicast: Some(e.mac),
                    };
                    self.solicit(s);
                }
                NeighState::Reachable => {
                    if now >= e.confirmed + c.reachable_time {
                        e.state = NeighState::Stale;
                    }
                }
                NeighState::Stale => {
                    if now >= e.used.max(e.confirmed) + c.gc_stale_time {
                        self.remove_slot(slot, |_| {});
                    }
                }
                NeighState::Permanent => {}
            }
        }
    }

    /// Whether requests are waiting to be sent ([`NeighTable::drain_solicits`]).
    #[inline]
    pub fn has_solicits(&self) -> bool {
        !self.solicits.is_empty()
    }

    /// Hand out the requests to send, oldest first, and forget them.
    pub fn drain_solicits(&mut self, mut f: impl FnMut(Solicit<A>)) {
        for s in self.solicits.drain(..) {
            f(s);
        }
    }

    // ---- control plane -----------------------------------------------------------------

    /// Add or overwrite a permanent entry. Queued packets of an incomplete entry are released.
    pub fn add_static(
        &mut self,
        now: Instant,
        port: PortId,
        ip: A,
        mac: MacAddr,
        release: impl FnMut(B),
    ) -> Result<usize, NeighError<A>> {
        if self.slot_of(port, ip).is_none() && self.free_slots.is_empty() && !self.evict_one() {
            return Err(NeighError::TableFull(self.cfg.max_entries));
        }
        if let Some(slot) = self.slot_of(port, ip) {
            if let Some(e) = self.slots[slot].as_mut() {
                e.state = NeighState::Reachable;
            }
            let n = self.learn(now, port, ip, mac, Learn::UpdateOnly, release);
            if let Some(e) = self.slots[slot].as_mut() {
                e.state = NeighState::Permanent;
            }
            return Ok(n);
        }
        let e = Entry {
            port,
            ip,
            mac,
            state: NeighState::Permanent,
            confirmed: now,
            used: now,
            next_probe: now,
            probes: 0,
            qhead: NIL,
            qtail: NIL,
            qlen: 0,
            qbytes: 0,
        };
        self.insert(e)
            .map(|_| 0)
            .ok_or(NeighError::TableFull(self.cfg.max_entries))
    }

    /// Delete an entry; its queued packets (if any) go to `dropped`.
    pub fn remove(
        &mut self,
        port: PortId,
        ip: A,
        dropped: impl FnMut(B),
    ) -> Result<(), NeighError<A>> {
        let slot = self
            .slot_of(port, ip)
            .ok_or(NeighError::NotFound(port, ip))?;
        self.remove_slot(slot, dropped);
        Ok(())
    }

    /// One entry.
    pub fn get(&self, port: PortId, ip: A) -> Option<NeighInfo<A>> {
        self.slot_of(port, ip)
            .and_then(|s| self.slots[s].as_ref())
            .map(info)
    }

    /// Every entry, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = NeighInfo<A>> + '_ {
        self.slots.iter().filter_map(|e| e.as_ref().map(info))
    }
}

fn info<A: NeighAddr>(e: &Entry<A>) -> NeighInfo<A> {
    NeighInfo {
        port: e.port,
        ip: e.ip,
        mac: (e.state != NeighState::Incomplete).then_some(e.mac),
        state: e.state,
        queued: e.qlen as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, last)
    }

    fn secs(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    fn ms(m: u64) -> Instant {
        Instant::from_millis(m)
    }

    fn solicits(t: &mut NeighTable<u32>) -> Vec<Solicit> {
        let mut v = Vec::new();
        t.drain_solicits(|s| v.push(s));
        v
    }

    #[test]
    fn queue_then_reply_releases_in_order() {
        let cfg = NeighConfig {
            queue_bytes: 180,
            ..NeighConfig::default()
        };
        let mut t = NeighTable::<u32>::new(cfg);
        assert_eq!(t.resolve(secs(0), 0, ip(2)), Resolve::Pending);
        t.queue(secs(0), 0, ip(2), 1, 60).unwrap();
        t.queue(secs(0), 0, ip(2), 2, 60).unwrap();
        t.queue(secs(0), 0, ip(2), 3, 60).unwrap();
        // Per-entry bound (180 bytes of 60-byte frames): the fourth comes back.
        assert_eq!(
            t.queue(secs(0), 0, ip(2), 4, 60),
            Err((4, QueueError::QueueFull))
        );
        assert_eq!(
            QueueError::QueueFull.drop_reason(),
            Some(DropReason::NeighQueueFull)
        );
        // One broadcast request, not one per packet.
        assert_eq!(
            solicits(&mut t),
            [Solicit {
                port: 0,
                ip: ip(2),
                unicast: None
            }]
        );
        assert_eq!(t.queued(), 3);
        let mut out = Vec::new();
        let n = t.learn(ms(300), 0, ip(2), MAC, Learn::UpdateOnly, |b| out.push(b));
        assert_eq!((n, out.as_slice()), (3, &[1, 2, 3][..]));
        assert_eq!(t.queued(), 0);
        assert_eq!(t.resolve(ms(400), 0, ip(2)), Resolve::Known(MAC));
        assert_eq!(
            t.queue(ms(400), 0, ip(2), 5, 60),
            Err((5, QueueError::Resolved(MAC)))
        );
        // Same IP on another port is another neighbour.
        assert_eq!(t.resolve(ms(400), 1, ip(2)), Resolve::Pending);
    }

    #[test]
    fn global_queue_bound() {
        let cfg = NeighConfig {
            queue_total: 4,
            ..NeighConfig::default()
        };
        let mut t = NeighTable::<u32>::new(cfg);
        for i in 0..4 {
            t.queue(secs(0), 0, ip(10 + i as u8), i, 60).unwrap();
        }
        assert_eq!(
            t.queue(secs(0), 0, ip(20), 9, 60),
            Err((9, QueueError::QueueFull))
        );
        // Freed slots are reused after a release.
        t.learn(secs(0), 0, ip(10), MAC, Learn::UpdateOnly, |_| {});
        t.queue(secs(0), 0, ip(20), 9, 60).unwrap();
        assert_eq!(t.queued(), 4);
    }

    #[test]
    fn retransmit_then_timeout() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        let mut failed = Vec::new();
        t.queue(secs(0), 0, ip(2), 7, 60).unwrap();
        assert_eq!(solicits(&mut t).len(), 1);
        // Not before a second has passed.
        t.on_tick(ms(999), |b, r| failed.push((b, r)));
        assert!(solicits(&mut t).is_empty());
        t.on_tick(ms(1000), |b, r| failed.push((b, r)));
        assert_eq!(solicits(&mut t).len(), 1);
        t.on_tick(ms(1500), |b, r| failed.push((b, r)));
        assert!(solicits(&mut t).is_empty());
        t.on_tick(ms(2000), |b, r| failed.push((b, r)));
        assert_eq!(solicits(&mut t).len(), 1);
        assert!(failed.is_empty());
        // Three requests sent (0 s, 1 s, 2 s): at 3 s the resolution fails.
        t.on_tick(ms(3000), |b, r| failed.push((b, r)));
        assert!(solicits(&mut t).is_empty());
        assert_eq!(failed, [(7, DropReason::NeighTimeout)]);
        assert!(t.get(0, ip(2)).is_none());
        assert_eq!((t.len(), t.queued()), (0, 0));
    }

    #[test]
    fn an_oversized_frame_still_waits_alone() {
        let cfg = NeighConfig {
            queue_bytes: 100,
            ..NeighConfig::default()
        };
        let mut t = NeighTable::<u32>::new(cfg);
        t.queue(secs(0), 0, ip(2), 1, 1500).unwrap();
        assert_eq!(
            t.queue(secs(0), 0, ip(2), 2, 60),
            Err((2, QueueError::QueueFull))
        );
    }

    /// A burst of new connections to a neighbour nobody has resolved yet (a real server just
    /// added): with Linux's default byte budget, 500 SYN-sized frames all wait and leave in
    /// arrival order once the reply comes.
    #[test]
    fn a_burst_to_a_new_neighbour_is_held_and_released_in_order() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        for i in 0..500 {
            t.queue(ms(u64::from(i)), 0, ip(2), i, 74).unwrap();
        }
        assert_eq!(t.queued(), 500);
        assert_eq!(solicits(&mut t).len(), 1);
        let mut out = Vec::new();
        t.learn(ms(600), 0, ip(2), MAC, Learn::Create, |b| out.push(b));
        assert_eq!(out, (0..500).collect::<Vec<_>>());
        assert_eq!(t.queued(), 0);
    }

    #[test]
    fn reachable_stale_probe_and_gc() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        t.learn(secs(0), 0, ip(2), MAC, Learn::Create, |_| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Reachable);
        t.on_tick(secs(29), |_, _| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Reachable);
        t.on_tick(secs(30), |_, _| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Stale);
        // Used while stale: still sent to; it waits (Delay) before probing.
        assert_eq!(t.resolve(secs(31), 0, ip(2)), Resolve::Known(MAC));
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Delay);
        t.on_tick(ms(35_999), |_, _| {});
        assert!(solicits(&mut t).is_empty());
        // No confirmation within delay_first_probe (5 s): a unicast probe goes out.
        t.on_tick(secs(36), |_, _| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Probe);
        assert_eq!(t.resolve(secs(36), 0, ip(2)), Resolve::Known(MAC));
        assert_eq!(
            solicits(&mut t),
            [Solicit {
                port: 0,
                ip: ip(2),
                unicast: Some(MAC)
            }]
        );
        // A reply confirms it.
        t.learn(ms(36_200), 0, ip(2), MAC, Learn::UpdateOnly, |_| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Reachable);
        // Unused stale entries go after gc_stale_time.
        t.on_tick(ms(66_200), |_, _| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Stale);
        t.on_tick(ms(96_199), |_, _| {});
        assert!(t.get(0, ip(2)).is_some());
        t.on_tick(ms(96_200), |_, _| {});
        assert!(t.get(0, ip(2)).is_none());
    }

    /// Re-confirming a stale entry holds nothing back: every packet during Delay and Probe goes
    /// to the known MAC, and an answer to the first probe keeps the entry.
    #[test]
    fn reconfirmation_never_holds_traffic() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        t.learn(secs(0), 0, ip(2), MAC, Learn::Create, |_| {});
        for m in (30_000..35_500).step_by(10) {
            t.on_tick(ms(m), |_, _| panic!("nothing fails"));
            assert_eq!(t.resolve(ms(m), 0, ip(2)), Resolve::Known(MAC));
        }
        assert_eq!(solicits(&mut t).len(), 1);
        t.learn(ms(35_500), 0, ip(2), MAC, Learn::UpdateOnly, |_| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Reachable);
        assert_eq!(t.queued(), 0);
    }

    /// A confirmation while the entry waits in Delay (the neighbour's own ARP request to us, a
    /// gratuitous announcement) makes it reachable without any probe.
    #[test]
    fn confirmed_during_delay_needs_no_probe() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        t.learn(secs(0), 0, ip(2), MAC, Learn::Create, |_| {});
        assert_eq!(t.resolve(secs(31), 0, ip(2)), Resolve::Known(MAC));
        t.learn(secs(33), 0, ip(2), MAC, Learn::UpdateOnly, |_| {});
        t.on_tick(secs(40), |_, _| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Reachable);
        assert!(solicits(&mut t).is_empty());
    }

    #[test]
    fn unanswered_probe_removes_entry() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        t.learn(secs(0), 0, ip(2), MAC, Learn::Create, |_| {});
        assert_eq!(t.resolve(secs(40), 0, ip(2)), Resolve::Known(MAC));
        // Delay until 45 s, then probes at 45, 46, 47; no answer: gone at 48 s.
        for s in [45, 46, 47] {
            t.on_tick(secs(s), |_, _| {});
            assert_eq!(t.resolve(secs(s), 0, ip(2)), Resolve::Known(MAC));
        }
        assert_eq!(solicits(&mut t).len(), 3);
        t.on_tick(secs(48), |_, _| {});
        assert!(t.get(0, ip(2)).is_none());
        assert_eq!(t.resolve(secs(48), 0, ip(2)), Resolve::Pending);
    }

    /// The same machine over IPv6 addresses (Neighbour Discovery uses it).
    #[test]
    fn ipv6_neighbours() {
        let a: Ipv6Addr = "2001:2::11".parse().unwrap();
        let mut t = NeighTable::<u32, Ipv6Addr>::new(NeighConfig::default());
        t.queue(secs(0), 0, a, 1, 86).unwrap();
        let mut out = Vec::new();
        t.learn(secs(0), 0, a, MAC, Learn::Create, |b| out.push(b));
        assert_eq!(out, [1]);
        assert_eq!(t.resolve(secs(1), 0, a), Resolve::Known(MAC));
        // Multicast and unspecified senders are never learnt.
        for junk in [Ipv6Addr::UNSPECIFIED, "ff02::1".parse().unwrap()] {
            t.learn(secs(1), 0, junk, MAC, Learn::Create, |_| {});
            assert!(t.get(0, junk).is_none());
        }
    }

    /// RFC 4861's finer rules for ND updates (7.2.3, 7.2.5).
    #[test]
    fn nd_update_rules() {
        let a: Ipv6Addr = "2001:2::11".parse().unwrap();
        let other = MacAddr([0x02, 0, 0, 0, 0, 0x99]);
        let mut t = NeighTable::<u32, Ipv6Addr>::new(NeighConfig::default());
        let state = |t: &NeighTable<u32, Ipv6Addr>| t.get(0, a).map(|i| (i.state, i.mac));
        let (sol, unsol_o, unsol) = (
            NdUpdate {
                reachable: true,
                override_: true,
                create: false,
            },
            NdUpdate {
                reachable: false,
                override_: true,
                create: false,
            },
            NdUpdate::default(),
        );
        let create = |u: NdUpdate| NdUpdate { create: true, ..u };
        // An advertisement for an unknown neighbour creates nothing.
        t.update_nd(secs(0), 0, a, Some(MAC), sol, |_| {});
        assert!(t.is_empty());
        // A solicitation's SLLA creates a stale entry.
        t.update_nd(secs(0), 0, a, Some(MAC), create(unsol_o), |_| {});
        assert_eq!(state(&t), Some((NeighState::Stale, Some(MAC))));
        // A solicited NA confirms it.
        t.update_nd(secs(1), 0, a, Some(MAC), sol, |_| {});
        assert_eq!(state(&t), Some((NeighState::Reachable, Some(MAC))));
        // Another MAC without O: kept, but reachable goes stale.
        t.update_nd(secs(2), 0, a, Some(other), unsol, |_| {});
        assert_eq!(state(&t), Some((NeighState::Stale, Some(MAC))));
        // Another MAC with O, unsolicited: taken, stale.
        t.update_nd(secs(3), 0, a, Some(other), unsol_o, |_| {});
        assert_eq!(state(&t), Some((NeighState::Stale, Some(other))));
        // A solicited NA without TLLA confirms the known address.
        t.update_nd(secs(4), 0, a, None, sol, |_| {});
        assert_eq!(state(&t), Some((NeighState::Reachable, Some(other))));
        // An incomplete entry: released by an advertisement with an address, not without.
        let b: Ipv6Addr = "2001:2::12".parse().unwrap();
        t.queue(secs(5), 0, b, 7, 86).unwrap();
        let mut out = Vec::new();
        t.update_nd(secs(5), 0, b, None, sol, |q| out.push(q));
        assert!(out.is_empty());
        t.update_nd(secs(5), 0, b, Some(MAC), sol, |q| out.push(q));
        assert_eq!(out, [7]);
        assert_eq!(t.resolve(secs(5), 0, b), Resolve::Known(MAC));
        // Permanent entries never change.
        t.add_static(secs(6), 0, b, MAC, |_| {}).unwrap();
        t.update_nd(secs(6), 0, b, Some(other), create(sol), |_| {});
        assert_eq!(t.get(0, b).unwrap().mac, Some(MAC));
        // Multicast targets and MACs are never learnt.
        let m: Ipv6Addr = "ff02::1".parse().unwrap();
        t.update_nd(secs(7), 0, m, Some(MAC), create(sol), |_| {});
        assert!(t.get(0, m).is_none());
        let c: Ipv6Addr = "2001:2::13".parse().unwrap();
        t.update_nd(secs(7), 0, c, Some(MacAddr::BROADCAST), create(sol), |_| {});
        assert!(t.get(0, c).is_none());
    }

    #[test]
    fn learning_rules_and_bounds() {
        let cfg = NeighConfig {
            max_entries: 2,
            ..NeighConfig::default()
        };
        let mut t = NeighTable::<u32>::new(cfg);
        // Overheard: no entry created.
        t.learn(secs(0), 0, ip(2), MAC, Learn::UpdateOnly, |_| {});
        assert!(t.is_empty());
        // Junk senders are ignored.
        t.learn(
            secs(0),
            0,
            Ipv4Addr::UNSPECIFIED,
            MAC,
            Learn::Create,
            |_| {},
        );
        t.learn(secs(0), 0, ip(2), MacAddr::BROADCAST, Learn::Create, |_| {});
        assert!(t.is_empty());
        t.learn(secs(0), 0, ip(2), MAC, Learn::Create, |_| {});
        t.learn(secs(1), 0, ip(3), MAC, Learn::Create, |_| {});
        // Full: learning does not evict.
        t.learn(secs(2), 0, ip(4), MAC, Learn::Create, |_| {});
        assert!(t.get(0, ip(4)).is_none());
        // Resolution evicts the least recently used resolved entry (ip 2).
        t.queue(secs(3), 0, ip(4), 1, 60).unwrap();
        assert!(t.get(0, ip(2)).is_none());
        assert!(t.get(0, ip(3)).is_some());
        t.queue(secs(3), 0, ip(5), 2, 60).unwrap(); // evicts ip 3
        // Now both entries have waiting packets: nothing to evict.
        assert_eq!(
            t.queue(secs(3), 0, ip(6), 3, 60),
            Err((3, QueueError::TableFull))
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn static_entries() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        t.queue(secs(0), 0, ip(2), 1, 60).unwrap();
        let mut out = Vec::new();
        assert_eq!(t.add_static(secs(0), 0, ip(2), MAC, |b| out.push(b)), Ok(1));
        assert_eq!(out, [1]);
        t.learn(
            secs(1),
            0,
            ip(2),
            MacAddr([2, 0, 0, 0, 0, 1]),
            Learn::Create,
            |_| {},
        );
        t.on_tick(secs(10_000), |_, _| {});
        let e = t.get(0, ip(2)).unwrap();
        assert_eq!((e.state, e.mac), (NeighState::Permanent, Some(MAC)));
        assert_eq!(
            t.remove(0, ip(3), |_| {}),
            Err(NeighError::NotFound(0, ip(3)))
        );
        t.remove(0, ip(2), |_| {}).unwrap();
        assert!(t.is_empty());
    }

    proptest! {
        /// The open-addressing index behaves like a map under random inserts and deletes.
        #[test]
        fn index_matches_a_map(ops in proptest::collection::vec((any::<bool>(), 0u8..40, 0u16..2), 0..400)) {
            let cfg = NeighConfig { max_entries: 32, ..NeighConfig::default() };
            let mut t = NeighTable::<u32>::new(cfg);
            let mut model: HashMap<(u16, Ipv4Addr), ()> = HashMap::new();
            for (add, last, port) in ops {
                let key = (port, ip(last));
                if add {
                    if model.len() < 32 || model.contains_key(&key) {
                        t.learn(secs(0), port, ip(last), MAC, Learn::Create, |_| {});
                        model.insert(key, ());
                    }
                } else {
                    let r = t.remove(port, ip(last), |_| {});
                    prop_assert_eq!(r.is_ok(), model.remove(&key).is_some());
                }
                prop_assert_eq!(t.len(), model.len());
            }
            for last in 0..40 {
                for port in 0..2 {
                    prop_assert_eq!(t.get(port, ip(last)).is_some(), model.contains_key(&(port, ip(last))));
                }
            }
        }
    }
}
