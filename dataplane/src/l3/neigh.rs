//! The ARP neighbour table of one worker, generic over the packet type waiting for resolution.
//!
//! States and defaults (chosen after Linux's `net.ipv4.neigh.*`, documented here because an
//! operator will compare):
//! - `Incomplete`: an ARP request is out. Up to `queue_per_entry` packets (default 3, like a
//!   small `unres_qlen`) wait, and at most `queue_total` (default 1024) across the table. Requests
//!   are retransmitted every `retrans_time` (1 s) up to `max_probes` (3) in all; after that the
//!   entry fails, its queued packets are handed back with `DropReason::NeighTimeout`, and it is
//!   removed (the next packet starts a fresh resolution).
//! - `Reachable`: confirmed by an ARP message within `reachable_time` (30 s, Linux's
//!   `base_reachable_time`).
//! - `Stale`: confirmation older than that. Still used to send. The first use of a stale entry
//!   moves it to `Probe`, which unicasts up to `max_probes` requests to the known MAC while still
//!   sending to it; no answer removes the entry. Stale entries unused for `gc_stale_time` (60 s,
//!   Linux's `gc_stale_time`) are removed by [`NeighTable::on_tick`].
//! - `Permanent`: a static entry from the control plane; never expires, never overwritten by ARP.
//!
//! Learning: a request addressed to one of our addresses, or any reply addressed to us, creates
//! or confirms the sender's entry ([`Learn::Create`]); other traffic (gratuitous announcements,
//! overheard requests) only updates an entry that already exists ([`Learn::UpdateOnly`]), as Linux
//! does with `arp_accept = 0`. Confirming an `Incomplete` entry releases its queued packets in
//! arrival order.
//!
//! Bounds and allocation: `max_entries` slots, an open-addressing index with backward-shift
//! deletion (no tombstones, never rehashes), a shared pool of `queue_total` wait slots, and a
//! solicitation list of `max_entries` are all allocated by [`NeighTable::new`]; no method
//! allocates afterwards. When the table is full, resolving a new neighbour evicts the least
//! recently used non-permanent entry that has no waiting packets; learning never evicts.
//!
//! Outputs: ARP requests to send are collected and handed out by [`NeighTable::drain_solicits`]
//! (call it after each burst and each tick); released packets go to the closure given to
//! [`NeighTable::learn`]; failed ones to the closure given to [`NeighTable::on_tick`].

use super::addr::PortId;
use crate::drop::DropReason;
use crate::time::Instant;
use crate::wire::MacAddr;
use core::time::Duration;
use std::net::Ipv4Addr;

/// Largest per-entry wait queue accepted by [`NeighConfig`].
pub const MAX_QUEUE_PER_ENTRY: usize = 64;

/// Sizes and timers of a [`NeighTable`]. See the module doc for the defaults' origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighConfig {
    /// Entries the table holds (at least 1).
    pub max_entries: usize,
    /// Packets that may wait on one unresolved neighbour (1..=[`MAX_QUEUE_PER_ENTRY`]).
    pub queue_per_entry: usize,
    /// Packets that may wait in the whole table.
    pub queue_total: usize,
    pub reachable_time: Duration,
    pub gc_stale_time: Duration,
    pub retrans_time: Duration,
    /// ARP requests sent per resolution (or re-probe) before giving up (at least 1).
    pub max_probes: u8,
    /// Seed of the index hash (the daemon may randomise it per start).
    pub hash_seed: u64,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig {
            max_entries: 4096,
            queue_per_entry: 3,
            queue_total: 1024,
            reachable_time: Duration::from_secs(30),
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

/// An ARP request the worker should send out of `port` for `ip`: broadcast, or unicast to the
/// MAC being re-probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicit {
    pub port: PortId,
    pub ip: Ipv4Addr,
    pub unicast: Option<MacAddr>,
}

/// A neighbour entry as the control plane lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighInfo {
    pub port: PortId,
    pub ip: Ipv4Addr,
    /// `None` while incomplete.
    pub mac: Option<MacAddr>,
    pub state: NeighState,
    /// Packets waiting for resolution.
    pub queued: usize,
}

/// Why a control-plane change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NeighError {
    #[error("neighbour table full ({0} entries); raise its size or delete entries")]
    TableFull(usize),
    #[error("no neighbour entry for {1} on port {0}")]
    NotFound(PortId, Ipv4Addr),
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Entry {
    port: PortId,
    ip: Ipv4Addr,
    mac: MacAddr,
    state: NeighState,
    confirmed: Instant,
    used: Instant,
    next_probe: Instant,
    probes: u8,
    qhead: u32,
    qtail: u32,
    qlen: u16,
}

/// The neighbour table (module doc).
#[derive(Debug)]
pub struct NeighTable<B> {
    cfg: NeighConfig,
    slots: Vec<Option<Entry>>,
    free_slots: Vec<u32>,
    /// Open addressing over slot numbers; `NIL` is empty. Power-of-two size >= 2 * max_entries.
    index: Vec<u32>,
    /// Wait-queue pool: buffers and a singly linked next pointer (free list or entry queue).
    qbufs: Vec<Option<B>>,
    qnext: Vec<u32>,
    qfree: u32,
    queued: usize,
    solicits: Vec<Solicit>,
}

impl<B> NeighTable<B> {
    /// A table with everything preallocated. Out-of-range config values are clamped
    /// (`max_entries >= 1`, `queue_per_entry` in 1..=64, `max_probes >= 1`).
    pub fn new(cfg: NeighConfig) -> Self {
        let mut cfg = cfg;
        cfg.max_entries = cfg.max_entries.clamp(1, (u32::MAX / 4) as usize);
        cfg.queue_per_entry = cfg.queue_per_entry.clamp(1, MAX_QUEUE_PER_ENTRY);
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

    fn hash(&self, port: PortId, ip: Ipv4Addr) -> usize {
        let k = (u64::from(u32::from(ip)) << 16 | u64::from(port)) ^ self.cfg.hash_seed;
        let h = k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h ^ (h >> 29)) as usize & (self.index.len() - 1)
    }

    /// Index position of (port, ip), if present.
    fn find(&self, port: PortId, ip: Ipv4Addr) -> Option<usize> {
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

    fn slot_of(&self, port: PortId, ip: Ipv4Addr) -> Option<usize> {
        self.find(port, ip).map(|i| self.index[i] as usize)
    }

    /// Insert a new entry; the caller has checked it is absent and a slot is free.
    fn insert(&mut self, e: Entry) -> Option<usize> {
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

    fn push_queue(&mut self, slot: usize, buf: B) -> Result<(), B> {
        let Some(e) = self.slots[slot].as_mut() else {
            return Err(buf);
        };
        if usize::from(e.qlen) >= self.cfg.queue_per_entry || self.qfree == NIL {
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

    fn solicit(&mut self, s: Solicit) {
        // Bounded by construction (one per entry per retransmit); if the worker never drains,
        // drop the request rather than grow: the next retransmit will ask again.
        if self.solicits.len() < self.solicits.capacity() {
            self.solicits.push(s);
        }
    }

    // ---- the data path -----------------------------------------------------------------

    /// Where to send a packet for `ip` on `port`. Marks the entry used; a stale entry starts a
    /// unicast re-probe (module doc) but is still returned as known.
    pub fn resolve(&mut self, now: Instant, port: PortId, ip: Ipv4Addr) -> Resolve {
        let Some(slot) = self.slot_of(port, ip) else {
            return Resolve::Pending;
        };
        let (reachable, retrans) = (self.cfg.reachable_time, self.cfg.retrans_time);
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
                e.state = NeighState::Probe;
                e.probes = 1;
                e.next_probe = now + retrans;
                let s = Solicit {
                    port,
                    ip,
                    unicast: Some(e.mac),
                };
                let mac = e.mac;
                self.solicit(s);
                Resolve::Known(mac)
            }
            NeighState::Reachable | NeighState::Probe | NeighState::Permanent => {
                Resolve::Known(e.mac)
            }
        }
    }

    /// Park `buf` until `ip` on `port` resolves, starting resolution (an entry and a broadcast
    /// request) if none is under way. Gives the packet back when it cannot wait.
    pub fn queue(
        &mut self,
        now: Instant,
        port: PortId,
        ip: Ipv4Addr,
        buf: B,
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
        self.push_queue(slot, buf)
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
        ip: Ipv4Addr,
        mac: MacAddr,
        how: Learn,
        mut release: impl FnMut(B),
    ) -> usize {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || !mac.is_unicast() {
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

    /// Drive timers: retransmit requests, fail resolutions that ran out of probes (their
    /// packets go to `failed` with [`DropReason::NeighTimeout`]), age reachable entries to stale
    /// and remove stale ones unused for `gc_stale_time`. Call every 100 ms to 1 s; O(entries).
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

    /// Hand out the ARP requests to send, oldest first, and forget them.
    /// Whether ARP requests are waiting to be sent ([`NeighTable::drain_solicits`]).
    #[inline]
    pub fn has_solicits(&self) -> bool {
        !self.solicits.is_empty()
    }

    pub fn drain_solicits(&mut self, mut f: impl FnMut(Solicit)) {
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
        ip: Ipv4Addr,
        mac: MacAddr,
        release: impl FnMut(B),
    ) -> Result<usize, NeighError> {
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
        };
        self.insert(e)
            .map(|_| 0)
            .ok_or(NeighError::TableFull(self.cfg.max_entries))
    }

    /// Delete an entry; its queued packets (if any) go to `dropped`.
    pub fn remove(
        &mut self,
        port: PortId,
        ip: Ipv4Addr,
        dropped: impl FnMut(B),
    ) -> Result<(), NeighError> {
        let slot = self
            .slot_of(port, ip)
            .ok_or(NeighError::NotFound(port, ip))?;
        self.remove_slot(slot, dropped);
        Ok(())
    }

    /// One entry.
    pub fn get(&self, port: PortId, ip: Ipv4Addr) -> Option<NeighInfo> {
        self.slot_of(port, ip)
            .and_then(|s| self.slots[s].as_ref())
            .map(info)
    }

    /// Every entry, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = NeighInfo> + '_ {
        self.slots.iter().filter_map(|e| e.as_ref().map(info))
    }
}

fn info(e: &Entry) -> NeighInfo {
    NeighInfo {
        port: e.port,
        ip: e.ip,
        mac: (e.state != NeighState::Incomplete).then_some(e.mac),
        state: e.state,
        queued: usize::from(e.qlen),
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
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        assert_eq!(t.resolve(secs(0), 0, ip(2)), Resolve::Pending);
        t.queue(secs(0), 0, ip(2), 1).unwrap();
        t.queue(secs(0), 0, ip(2), 2).unwrap();
        t.queue(secs(0), 0, ip(2), 3).unwrap();
        // Per-entry bound: the fourth comes back.
        assert_eq!(
            t.queue(secs(0), 0, ip(2), 4),
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
            t.queue(ms(400), 0, ip(2), 5),
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
            t.queue(secs(0), 0, ip(10 + i as u8), i).unwrap();
        }
        assert_eq!(
            t.queue(secs(0), 0, ip(20), 9),
            Err((9, QueueError::QueueFull))
        );
        // Freed slots are reused after a release.
        t.learn(secs(0), 0, ip(10), MAC, Learn::UpdateOnly, |_| {});
        t.queue(secs(0), 0, ip(20), 9).unwrap();
        assert_eq!(t.queued(), 4);
    }

    #[test]
    fn retransmit_then_timeout() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        let mut failed = Vec::new();
        t.queue(secs(0), 0, ip(2), 7).unwrap();
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
    fn reachable_stale_probe_and_gc() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        t.learn(secs(0), 0, ip(2), MAC, Learn::Create, |_| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Reachable);
        t.on_tick(secs(29), |_, _| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Reachable);
        t.on_tick(secs(30), |_, _| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Stale);
        // Used while stale: still sent to, and a unicast probe goes out.
        assert_eq!(t.resolve(secs(31), 0, ip(2)), Resolve::Known(MAC));
        assert_eq!(
            solicits(&mut t),
            [Solicit {
                port: 0,
                ip: ip(2),
                unicast: Some(MAC)
            }]
        );
        // A reply confirms it.
        t.learn(ms(31_200), 0, ip(2), MAC, Learn::UpdateOnly, |_| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Reachable);
        // Unused stale entries go after gc_stale_time.
        t.on_tick(ms(61_200), |_, _| {});
        assert_eq!(t.get(0, ip(2)).unwrap().state, NeighState::Stale);
        t.on_tick(ms(91_199), |_, _| {});
        assert!(t.get(0, ip(2)).is_some());
        t.on_tick(ms(91_200), |_, _| {});
        assert!(t.get(0, ip(2)).is_none());
    }

    #[test]
    fn unanswered_probe_removes_entry() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        t.learn(secs(0), 0, ip(2), MAC, Learn::Create, |_| {});
        assert_eq!(t.resolve(secs(40), 0, ip(2)), Resolve::Known(MAC));
        for s in [41, 42, 43] {
            t.on_tick(secs(s), |_, _| {});
        }
        assert_eq!(solicits(&mut t).len(), 3);
        assert!(t.get(0, ip(2)).is_none());
        assert_eq!(t.resolve(secs(43), 0, ip(2)), Resolve::Pending);
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
        t.queue(secs(3), 0, ip(4), 1).unwrap();
        assert!(t.get(0, ip(2)).is_none());
        assert!(t.get(0, ip(3)).is_some());
        t.queue(secs(3), 0, ip(5), 2).unwrap(); // evicts ip 3
        // Now both entries have waiting packets: nothing to evict.
        assert_eq!(
            t.queue(secs(3), 0, ip(6), 3),
            Err((3, QueueError::TableFull))
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn static_entries() {
        let mut t = NeighTable::<u32>::new(NeighConfig::default());
        t.queue(secs(0), 0, ip(2), 1).unwrap();
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
