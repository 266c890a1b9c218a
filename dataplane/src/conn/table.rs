//! [`ConnTable`]: a bounded slab of [`Conn`] records, one open-addressing index over both tuples
//! of every connection, and the timer wheel that expires them.
//!
//! Layout and memory (measured by the tests, on x86-64):
//! - `Conn` is 72 bytes: two 14-byte keys, service and dest ids, the deadline, the 12-byte timer
//!   link, two packet counters, state, method, flags. Free slots thread the free list through
//!   the timer link, so there is no separate free stack.
//! - The index has `next_power_of_two(4 * capacity)` 8-byte entries (a 32-bit hash and a 32-bit
//!   `id << 1 | dir`), so it is at most half full even when every connection has two tuples:
//!   32..64 bytes per connection. Linear probing with backward-shift deletion: no tombstones,
//!   lookups stay short however long the table runs.
//! - Total: 104..136 bytes per connection (104 when the capacity is a power of two), plus 16 KiB
//!   for the wheel; within DESIGN.md's 160-byte budget.
//!
//! Nothing here allocates after [`ConnTable::new`], and no input can make it panic: every index is
//! masked or bounds-checked, every probe loop is bounded by the index size.

use core::time::Duration;

use super::timer::{NIL, TimerLink, TimerNodes, TimerWheel};
use super::{ConnKey, ConnState, TcpDir, Timeouts, tcp};
use crate::service::{DestId, ForwardMethod, ServiceId};
use crate::time::Instant;

/// Index of a connection in its worker's table. Valid until the connection is removed; a slot is
/// reused afterwards, so do not keep ids across `remove`/`expire`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// Which tuple a packet matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// The in-tuple: client -> VIP.
    Original,
    /// The out-tuple: the real server's reply as it reaches the director.
    Reply,
}

/// Connection flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnFlags(u8);

impl ConnFlags {
    /// Counted in the dest's inactive connections (IPVS `IP_VS_CONN_F_INACTIVE`).
    pub const INACTIVE: ConnFlags = ConnFlags(1);
    /// No reply seen yet and none expected (DR/TUN): TCP uses the INPUT_ONLY table. Cleared by the
    /// first reply, as IPVS's `IP_VS_CONN_F_NOOUTPUT`.
    pub const NO_OUTPUT: ConnFlags = ConnFlags(2);
    /// A persistence template, counted in `persistconns`.
    pub const TEMPLATE: ConnFlags = ConnFlags(4);
    /// The out-tuple is in the index (NAT, FULLNAT).
    pub const REPLY_INDEXED: ConnFlags = ConnFlags(8);
    /// FULLNAT TCP: the TOA option is still to be added to the client's first data segment.
    pub const TOA_PENDING: ConnFlags = ConnFlags(16);
    /// Its controlling template has been told it is assured (done once per connection).
    pub const ASSURED_SENT: ConnFlags = ConnFlags(32);
    const OCCUPIED: ConnFlags = ConnFlags(0x80);

    pub const fn contains(self, f: ConnFlags) -> bool {
        self.0 & f.0 == f.0
    }
    pub const fn bits(self) -> u8 {
        self.0
    }
    fn insert(&mut self, f: ConnFlags) {
        self.0 |= f.0;
    }
    fn remove(&mut self, f: ConnFlags) {
        self.0 &= !f.0;
    }
}

/// A state change and what it does to the dest's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub old: ConnState,
    pub new: ConnState,
    /// Add to the dest's active connections (see [`crate::service::Dest::move_conn`]).
    pub active_delta: i64,
    /// Add to the dest's inactive connections.
    pub inactive_delta: i64,
}

/// One connection.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    in_key: ConnKey,
    out_key: ConnKey,
    service: ServiceId,
    dest: DestId,
    deadline: Instant,
    timer: TimerLink,
    in_pkts: u32,
    out_pkts: u32,
    /// The persistence template controlling it ([`crate::persist::TemplateRef`]), or
    /// [`NO_CONTROL`].
    control: u32,
    state: ConnState,
    method: ForwardMethod,
    flags: ConnFlags,
}

/// [`Conn::control`] of a connection no template controls.
const NO_CONTROL: u32 = u32::MAX;

impl Conn {
    const FREE: Conn = Conn {
        in_key: ConnKey::new(
            0,
            std::net::Ipv4Addr::UNSPECIFIED,
            0,
            std::net::Ipv4Addr::UNSPECIFIED,
            0,
        ),
        out_key: ConnKey::new(
            0,
            std::net::Ipv4Addr::UNSPECIFIED,
            0,
            std::net::Ipv4Addr::UNSPECIFIED,
            0,
        ),
        service: ServiceId(0),
        dest: DestId(0),
        deadline: Instant::ZERO,
        timer: TimerLink::UNLINKED,
        in_pkts: 0,
        out_pkts: 0,
        control: NO_CONTROL,
        state: ConnState::Tcp(super::TcpState::None),
        method: ForwardMethod::Route,
        flags: ConnFlags(0),
    };

    fn occupied(&self) -> bool {
        self.flags.contains(ConnFlags::OCCUPIED)
    }

    /// Client -> VIP, as the client's packets arrive.
    pub fn in_key(&self) -> &ConnKey {
        &self.in_key
    }
    /// The reply as it arrives at the director (RS -> client for NAT, RS -> LIP for FULLNAT). For
    /// DR/TUN it is recorded (RS -> client) but not indexed, since replies bypass the director.
    pub fn out_key(&self) -> &ConnKey {
        &self.out_key
    }
    /// The tuple a packet in direction `dir` carries.
    pub fn key(&self, dir: Dir) -> &ConnKey {
        match dir {
            Dir::Original => &self.in_key,
            Dir::Reply => &self.out_key,
        }
    }
    pub fn service(&self) -> ServiceId {
        self.service
    }
    pub fn dest(&self) -> DestId {
        self.dest
    }
    pub fn method(&self) -> ForwardMethod {
        self.method
    }
    pub fn state(&self) -> ConnState {
        self.state
    }
    pub fn flags(&self) -> ConnFlags {
        self.flags
    }
    /// Counted as inactive on its dest (the flag to pass to `Dest::bind_conn`/`unbind_conn`).
    pub fn is_inactive(&self) -> bool {
        self.flags.contains(ConnFlags::INACTIVE)
    }
    pub fn is_template(&self) -> bool {
        self.flags.contains(ConnFlags::TEMPLATE)
    }
    /// When the connection expires unless a packet refreshes it.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
    /// Packets seen client -> RS (wrapping).
    pub fn in_pkts(&self) -> u32 {
        self.in_pkts
    }
    /// Packets seen RS -> client (wrapping).
    pub fn out_pkts(&self) -> u32 {
        self.out_pkts
    }

    /// The persistence template controlling this connection.
    pub fn control(&self) -> Option<crate::persist::TemplateRef> {
        (self.control != NO_CONTROL).then_some(crate::persist::TemplateRef(self.control))
    }

    /// Record the persistence template controlling this connection.
    pub fn set_control(&mut self, r: crate::persist::TemplateRef) {
        self.control = r.0;
    }

    /// Set or clear a flag the table does not manage itself ([`ConnFlags::TOA_PENDING`],
    /// [`ConnFlags::ASSURED_SENT`]); other flags are left alone.
    pub fn set_flag(&mut self, f: ConnFlags, on: bool) {
        if f != ConnFlags::TOA_PENDING && f != ConnFlags::ASSURED_SENT {
            return;
        }
        if on {
            self.flags.insert(f);
        } else {
            self.flags.remove(f);
        }
    }

    /// Set the protocol state, keeping the INACTIVE flag in step, and report the count deltas.
    /// Templates report zero deltas (they count as persistent connections).
    pub fn set_state(&mut self, new: ConnState) -> Transition {
        let old = self.state;
        self.state = new;
        let (mut active_delta, mut inactive_delta) = (0, 0);
        if old != new && !self.is_template() {
            let inactive = self.is_inactive();
            if !inactive && !new.is_active() {
                (active_delta, inactive_delta) = (-1, 1);
                self.flags.insert(ConnFlags::INACTIVE);
            } else if inactive && new.is_active() {
                (active_delta, inactive_delta) = (1, -1);
                self.flags.remove(ConnFlags::INACTIVE);
            }
        }
        Transition {
            old,
            new,
            active_delta,
            inactive_delta,
        }
    }
}

impl TimerNodes for [Conn] {
    fn link_mut(&mut self, id: u32) -> Option<&mut TimerLink> {
        self.get_mut(id as usize).map(|c| &mut c.timer)
    }
}

/// What to create.
#[derive(Debug, Clone, Copy)]
pub struct NewConn {
    pub in_key: ConnKey,
    /// See [`Conn::out_key`]; indexed only when `method` has replies through the director.
    pub out_key: ConnKey,
    pub service: ServiceId,
    pub dest: DestId,
    pub method: ForwardMethod,
    /// Usually [`ConnState::initial`].
    pub state: ConnState,
    pub deadline: Instant,
    /// A persistence template rather than a connection.
    pub template: bool,
}

/// Why an insert was refused. The table is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("connection table full")]
    TableFull,
    #[error("a connection with this tuple already exists")]
    KeyExists,
}

/// A table that cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnTableError {
    #[error("connection table capacity {0} is above the maximum of {max}", max = MAX_CAPACITY)]
    CapacityTooLarge(usize),
}

/// What the expiry callback decides for a connection whose deadline has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Remove it now (the callback has done its accounting).
    Remove,
    /// Keep it until this new deadline (e.g. a template that still controls connections). A
    /// deadline not after `now` is treated as `now + 1 s`.
    Keep(Instant),
}

/// Largest capacity per table (2^28 connections; the index then has 2^30 entries).
pub const MAX_CAPACITY: usize = 1 << 28;

#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u32,
    /// `id << 1 | dir`, or `EMPTY`.
    slot: u32,
}

const EMPTY: u32 = u32::MAX;
const EMPTY_ENTRY: Entry = Entry {
    hash: 0,
    slot: EMPTY,
};

/// One worker's connections.
#[derive(Debug)]
pub struct ConnTable {
    conns: Box<[Conn]>,
    free_head: u32,
    len: usize,
    index: Box<[Entry]>,
    mask: usize,
    seed: u64,
    wheel: TimerWheel,
}

impl ConnTable {
    /// A table for `capacity` connections, hashing with `seed` (random per worker, from the
    /// runtime), with the default 4096-second timer wheel.
    pub fn new(capacity: usize, seed: u64) -> Result<ConnTable, ConnTableError> {
        Self::with_wheel(capacity, seed, super::timer::DEFAULT_BUCKETS)
    }

    /// As [`ConnTable::new`], with a wheel of `buckets` one-second buckets.
    pub fn with_wheel(
        capacity: usize,
        seed: u64,
        buckets: usize,
    ) -> Result<ConnTable, ConnTableError> {
        if capacity > MAX_CAPACITY {
            return Err(ConnTableError::CapacityTooLarge(capacity));
        }
        let mut conns = vec![Conn::FREE; capacity].into_boxed_slice();
        for (i, c) in conns.iter_mut().enumerate() {
            let next = if i + 1 < capacity { i as u32 + 1 } else { NIL };
            c.timer = TimerLink::free_with_next(next);
        }
        let slots = (capacity.max(2) * 4).next_power_of_two();
        Ok(ConnTable {
            conns,
            free_head: if capacity > 0 { 0 } else { NIL },
            len: 0,
            index: vec![EMPTY_ENTRY; slots].into_boxed_slice(),
            mask: slots - 1,
            seed,
            wheel: TimerWheel::new(buckets),
        })
    }

    /// Number of live connections (templates included).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.conns.len()
    }
    pub fn is_full(&self) -> bool {
        self.len >= self.conns.len()
    }

    /// Bytes allocated by the table (slab + index + wheel).
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.conns)
            + core::mem::size_of_val(&*self.index)
            + self.wheel.memory_bytes()
    }

    /// The connection a packet with tuple `key` belongs to, and which of its tuples matched.
    #[inline]
    pub fn lookup(&self, key: &ConnKey) -> Option<(ConnId, Dir)> {
        let h = key.hash(self.seed) as u32;
        let mut i = h as usize & self.mask;
        for _ in 0..=self.mask {
            let e = self.index.get(i)?;
            if e.slot == EMPTY {
                return None;
            }
            if e.hash == h {
                let (id, dir) = split(e.slot);
                if let Some(c) = self.conns.get(id as usize)
                    && c.key(dir) == key
                {
                    return Some((ConnId(id), dir));
                }
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Most keys of one burst the warm-up takes (a burst is 32).
    pub const WARM_MAX: usize = 64;

    /// Touch the index slots and then the records of `keys` (a burst's tuples) ahead of their
    /// lookups. The loads of different keys do not depend on each other, so the CPU overlaps
    /// their cache misses (memory-level parallelism) instead of taking them one packet at a
    /// time; the lookups that follow find the lines cached. Pure reads, no effect on results:
    /// a stand-in for a prefetch instruction, which safe Rust does not offer.
    pub fn warm(&self, keys: &[ConnKey]) {
        let keys = &keys[..keys.len().min(Self::WARM_MAX)];
        let mut slots = [EMPTY; Self::WARM_MAX];
        for (k, s) in keys.iter().zip(slots.iter_mut()) {
            let h = k.hash(self.seed) as u32;
            if let Some(e) = self.index.get(h as usize & self.mask)
                && e.hash == h
            {
                *s = e.slot;
            }
        }
        let mut acc = 0u32;
        for s in &slots[..keys.len()] {
            if *s != EMPTY {
                let (id, _) = split(*s);
                if let Some(c) = self.conns.get(id as usize) {
                    acc ^= u32::from(c.in_key.sport);
                }
            }
        }
        std::hint::black_box(acc);
    }

    /// Create a connection. Refused if the table is full or either indexed tuple already exists.
    pub fn insert(&mut self, new: NewConn) -> Result<ConnId, InsertError> {
        let index_reply = new.method.replies_pass_director();
        if self.lookup(&new.in_key).is_some()
            || (index_reply && (self.lookup(&new.out_key).is_some() || new.out_key == new.in_key))
        {
            return Err(InsertError::KeyExists);
        }
        let id = self.free_head;
        let Some(slot) = self.conns.get_mut(id as usize) else {
            return Err(InsertError::TableFull);
        };
        self.free_head = slot.timer.free_next();
        let mut flags = ConnFlags::OCCUPIED;
        if new.template {
            flags.insert(ConnFlags::TEMPLATE);
        }
        if !new.state.is_active() {
            flags.insert(ConnFlags::INACTIVE);
        }
        if index_reply {
            flags.insert(ConnFlags::REPLY_INDEXED);
        } else {
            flags.insert(ConnFlags::NO_OUTPUT);
        }
        *slot = Conn {
            in_key: new.in_key,
            out_key: new.out_key,
            service: new.service,
            dest: new.dest,
            deadline: new.deadline,
            timer: TimerLink::UNLINKED,
            in_pkts: 0,
            out_pkts: 0,
            control: NO_CONTROL,
            state: new.state,
            method: new.method,
            flags,
        };
        self.index_insert(&new.in_key, join(id, Dir::Original));
        if index_reply {
            self.index_insert(&new.out_key, join(id, Dir::Reply));
        }
        self.wheel.arm(&mut self.conns[..], id, new.deadline);
        self.len += 1;
        Ok(ConnId(id))
    }

    /// The connection with this id, if live.
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(id.0 as usize).filter(|c| c.occupied())
    }

    /// The connection with this id, if live, for state/flag changes (keys and deadline are
    /// changed only through the table, which keeps index and timer in step).
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(id.0 as usize).filter(|c| c.occupied())
    }

    /// Move a connection's deadline. Later: just a store (lazy re-arm). Earlier: re-armed now.
    pub fn set_deadline(&mut self, id: ConnId, deadline: Instant) -> bool {
        let Some(c) = self.get_mut(id) else {
            return false;
        };
        let earlier = deadline < c.deadline;
        c.deadline = deadline;
        if earlier {
            self.wheel.disarm(&mut self.conns[..], id.0);
            self.wheel.arm(&mut self.conns[..], id.0, deadline);
        }
        true
    }

    /// Account one packet of a live connection: counters, protocol state (TCP per IPVS's tables,
    /// with NO_OUTPUT deciding INPUT vs INPUT_ONLY and cleared by the first reply), and the new
    /// deadline `now + timeout(state)`. `tcp_flags` is the TCP header's flag byte (ignored for
    /// UDP). Returns the transition, whose deltas the worker applies to the dest.
    pub fn on_packet(
        &mut self,
        id: ConnId,
        dir: Dir,
        tcp_flags: u8,
        now: Instant,
        timeouts: &Timeouts,
    ) -> Option<Transition> {
        let c = self.get_mut(id)?;
        let new = match c.state {
            ConnState::Tcp(s) => {
                let tdir = match dir {
                    Dir::Reply => {
                        c.flags.remove(ConnFlags::NO_OUTPUT);
                        TcpDir::Output
                    }
                    Dir::Original if c.flags.contains(ConnFlags::NO_OUTPUT) => TcpDir::InputOnly,
                    Dir::Original => TcpDir::Input,
                };
                ConnState::Tcp(tcp::transition(s, tdir, tcp_flags))
            }
            s @ ConnState::Udp(_) => s,
        };
        match dir {
            Dir::Original => c.in_pkts = c.in_pkts.wrapping_add(1),
            Dir::Reply => c.out_pkts = c.out_pkts.wrapping_add(1),
        }
        let t = c.set_state(new);
        self.set_deadline(id, now + timeouts.timeout(new));
        Some(t)
    }

    /// Remove a connection (index, timer, slab). Returns its last contents for accounting.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let c = *self.get(id)?;
        self.index_remove(&c.in_key, join(id.0, Dir::Original));
        if c.flags.contains(ConnFlags::REPLY_INDEXED) {
            self.index_remove(&c.out_key, join(id.0, Dir::Reply));
        }
        self.wheel.disarm(&mut self.conns[..], id.0);
        if let Some(slot) = self.conns.get_mut(id.0 as usize) {
            *slot = Conn::FREE;
            slot.timer = TimerLink::free_with_next(self.free_head);
            self.free_head = id.0;
        }
        self.len -= 1;
        Some(c)
    }

    /// Live connections, for listings (`ipvsadm -Lc`). Control-plane rate only: it walks the slab.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.occupied())
            .map(|(i, c)| (ConnId(i as u32), c))
    }

    /// Expire connections whose deadline is at or before `now`, doing at most about `max` units of
    /// work (one per connection examined, one per wheel second advanced); call it every tick. For
    /// each expired connection `f` sees it (do the dest/stat accounting there) and decides.
    /// Returns how many were removed.
    pub fn expire(
        &mut self,
        now: Instant,
        max: usize,
        mut f: impl FnMut(ConnId, &Conn) -> Expiry,
    ) -> usize {
        let mut budget = max;
        let mut removed = 0;
        while budget > 0 {
            let Some(id) = self.wheel.pop_due(&mut self.conns[..], now, &mut budget) else {
                break;
            };
            budget = budget.saturating_sub(1);
            let Some(c) = self.get(ConnId(id)) else {
                continue;
            };
            if c.deadline > now {
                let d = c.deadline;
                self.wheel.arm(&mut self.conns[..], id, d); // lazily moved: re-arm
                continue;
            }
            match f(ConnId(id), c) {
                Expiry::Remove => {
                    self.remove(ConnId(id));
                    removed += 1;
                }
                Expiry::Keep(d) => {
                    let d = d.max(now + Duration::from_secs(1));
                    if let Some(c) = self.get_mut(ConnId(id)) {
                        c.deadline = d;
                    }
                    self.wheel.arm(&mut self.conns[..], id, d);
                }
            }
        }
        removed
    }

    fn index_insert(&mut self, key: &ConnKey, slot: u32) {
        let h = key.hash(self.seed) as u32;
        let mut i = h as usize & self.mask;
        // The index is at most half full (4 entries per connection, at most 2 used), so an empty
        // entry is always found.
        for _ in 0..=self.mask {
            if let Some(e) = self.index.get_mut(i)
                && e.slot == EMPTY
            {
                *e = Entry { hash: h, slot };
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn index_remove(&mut self, key: &ConnKey, slot: u32) {
        let h = key.hash(self.seed) as u32;
        let mut i = h as usize & self.mask;
        let mut found = None;
        for _ in 0..=self.mask {
            match self.index.get(i) {
                Some(e) if e.slot == slot => {
                    found = Some(i);
                    break;
                }
                Some(e) if e.slot != EMPTY => i = (i + 1) & self.mask,
                _ => break,
            }
        }
        let Some(mut hole) = found else {
            return;
        };
        // Backward-shift deletion: pull later entries of the cluster into the hole when their
        // home position allows it, so no tombstones are needed.
        let mut j = hole;
        for _ in 0..=self.mask {
            j = (j + 1) & self.mask;
            let Some(e) = self.index.get(j).copied() else {
                break;
            };
            if e.slot == EMPTY {
                break;
            }
            let home = e.hash as usize & self.mask;
            let home_to_j = j.wrapping_sub(home) & self.mask;
            let hole_to_j = j.wrapping_sub(hole) & self.mask;
            if home_to_j >= hole_to_j {
                if let Some(h) = self.index.get_mut(hole) {
                    *h = e;
                }
                hole = j;
            }
        }
        if let Some(h) = self.index.get_mut(hole) {
            *h = EMPTY_ENTRY;
        }
    }
}

#[inline]
fn join(id: u32, dir: Dir) -> u32 {
    (id << 1) | u32::from(dir == Dir::Reply)
}

#[inline]
fn split(slot: u32) -> (u32, Dir) {
    let dir = if slot & 1 == 1 {
        Dir::Reply
    } else {
        Dir::Original
    };
    (slot >> 1, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{TcpState, UdpState, tcp};
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

    fn client(n: u32) -> (Ipv4Addr, u16) {
        (Ipv4Addr::from(0xC613_0000 | (n >> 16)), (n & 0xffff) as u16)
    }

    fn nat(n: u32, deadline: u64) -> NewConn {
        let (cip, cport) = client(n);
        NewConn {
            in_key: ConnKey::new(6, cip, cport, VIP, 80),
            out_key: ConnKey::new(6, RIP, 8080, cip, cport),
            service: ServiceId(1),
            dest: DestId(1),
            method: ForwardMethod::Masq,
            state: ConnState::Tcp(TcpState::None),
            deadline: Instant::from_secs(deadline),
            template: false,
        }
    }

    fn dr(n: u32, deadline: u64) -> NewConn {
        let mut c = nat(n, deadline);
        c.method = ForwardMethod::Route;
        c
    }

    #[test]
    fn size_budget() {
        assert_eq!(core::mem::size_of::<Conn>(), 72);
        for cap in [1 << 16, 100_000] {
            let t = ConnTable::new(cap, 1).unwrap();
            let per_conn = t.memory_bytes() / cap;
            assert!(per_conn <= 160, "{cap}: {per_conn} bytes per connection");
        }
        let t = ConnTable::new(1 << 16, 1).unwrap();
        assert!(t.memory_bytes() / (1 << 16) <= 105);
    }

    #[test]
    fn insert_lookup_both_tuples_and_remove() {
        let mut t = ConnTable::new(16, 42).unwrap();
        let c = nat(1, 10);
        let id = t.insert(c).unwrap();
        assert_eq!(t.lookup(&c.in_key), Some((id, Dir::Original)));
        assert_eq!(t.lookup(&c.out_key), Some((id, Dir::Reply)));
        assert_eq!(t.lookup(&c.in_key.reversed()), None);
        let conn = t.get(id).unwrap();
        assert!(conn.is_inactive());
        assert!(!conn.flags().contains(ConnFlags::NO_OUTPUT));
        assert_eq!(t.insert(c), Err(InsertError::KeyExists));
        let mut same_out = nat(2, 10);
        same_out.out_key = c.out_key;
        assert_eq!(t.insert(same_out), Err(InsertError::KeyExists));
        assert_eq!(t.len(), 1);
        let removed = t.remove(id).unwrap();
        assert_eq!(removed.in_key(), &c.in_key);
        assert_eq!(t.lookup(&c.in_key), None);
        assert_eq!(t.lookup(&c.out_key), None);
        assert!(t.get(id).is_none());
        assert!(t.remove(id).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn dr_indexes_only_the_in_tuple() {
        let mut t = ConnTable::new(4, 0).unwrap();
        let c = dr(1, 10);
        let id = t.insert(c).unwrap();
        assert_eq!(t.lookup(&c.out_key), None);
        assert!(t.get(id).unwrap().flags().contains(ConnFlags::NO_OUTPUT));
        // Its unindexed out tuple does not block a NAT conn that really has it.
        let mut n = nat(2, 10);
        n.out_key = c.out_key;
        assert!(t.insert(n).is_ok());
    }

    #[test]
    fn full_table_refuses_and_keeps_existing() {
        let mut t = ConnTable::new(3, 7).unwrap();
        let ids: Vec<ConnId> = (0..3).map(|n| t.insert(nat(n, 10)).unwrap()).collect();
        assert!(t.is_full());
        assert_eq!(t.insert(nat(9, 10)), Err(InsertError::TableFull));
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(
                t.lookup(&nat(n as u32, 10).in_key),
                Some((*id, Dir::Original))
            );
        }
        t.remove(ids[1]);
        assert!(t.insert(nat(9, 10)).is_ok());
        let empty = ConnTable::new(0, 0).unwrap();
        assert_eq!(empty.capacity(), 0);
        let mut empty = empty;
        assert_eq!(empty.insert(nat(1, 1)), Err(InsertError::TableFull));
        assert!(ConnTable::new(MAX_CAPACITY + 1, 0).is_err());
    }

    #[test]
    fn nat_lifecycle_counts_and_timeouts() {
        let mut t = ConnTable::new(8, 3).unwrap();
        let to = Timeouts::default();
        let id = t.insert(nat(1, 2)).unwrap();
        let now = Instant::from_secs(1);
        let tr = t
            .on_packet(id, Dir::Original, tcp::TCP_SYN, now, &to)
            .unwrap();
        assert_eq!(tr.new, ConnState::Tcp(TcpState::SynRecv));
        assert_eq!((tr.active_delta, tr.inactive_delta), (1, -1));
        let syn_ack = tcp::TCP_SYN | tcp::TCP_ACK;
        let tr = t.on_packet(id, Dir::Reply, syn_ack, now, &to).unwrap();
        assert_eq!((tr.active_delta, tr.inactive_delta), (0, 0));
        t.on_packet(id, Dir::Original, tcp::TCP_ACK, now, &to)
            .unwrap();
        let c = t.get(id).unwrap();
        assert_eq!(c.state().name(), "ESTABLISHED");
        assert_eq!(c.deadline(), Instant::from_secs(901));
        assert_eq!((c.in_pkts(), c.out_pkts()), (2, 1));
        let fin = tcp::TCP_FIN | tcp::TCP_ACK;
        let tr = t.on_packet(id, Dir::Reply, fin, now, &to).unwrap();
        assert_eq!(tr.new, ConnState::Tcp(TcpState::FinWait));
        assert_eq!((tr.active_delta, tr.inactive_delta), (-1, 1));
        assert!(t.get(id).unwrap().is_inactive());
        // FIN_WAIT (120 s) is earlier than ESTABLISHED's deadline: re-armed at once.
        let mut gone = Vec::new();
        t.expire(Instant::from_secs(122), 10_000, |id, _| {
            gone.push(id);
            Expiry::Remove
        });
        assert_eq!(gone, [id]);
    }

    #[test]
    fn dr_uses_input_only_until_a_reply() {
        let mut t = ConnTable::new(8, 3).unwrap();
        let to = Timeouts::default();
        let now = Instant::from_secs(1);
        let id = t.insert(dr(1, 2)).unwrap();
        t.on_packet(id, Dir::Original, tcp::TCP_SYN, now, &to);
        t.on_packet(id, Dir::Original, tcp::TCP_ACK, now, &to);
        let fin = tcp::TCP_FIN | tcp::TCP_ACK;
        let tr = t.on_packet(id, Dir::Original, fin, now, &to).unwrap();
        assert_eq!(tr.new, ConnState::Tcp(TcpState::FinWait)); // INPUT would say CLOSE_WAIT
    }

    #[test]
    fn udp_stays_inactive_and_refreshes() {
        let mut t = ConnTable::new(8, 3).unwrap();
        let to = Timeouts::default();
        let mut c = nat(1, 300);
        c.in_key.proto = 17;
        c.out_key.proto = 17;
        c.state = ConnState::Udp(UdpState::Normal);
        let id = t.insert(c).unwrap();
        let tr = t
            .on_packet(id, Dir::Original, 0, Instant::from_secs(100), &to)
            .unwrap();
        assert_eq!((tr.active_delta, tr.inactive_delta), (0, 0));
        assert!(t.get(id).unwrap().is_inactive());
        // Lazily moved to 400 s: not expired at 350 s, expired at 400 s.
        assert_eq!(
            t.expire(Instant::from_secs(350), 10_000, |_, _| Expiry::Remove),
            0
        );
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.expire(Instant::from_secs(400), 10_000, |_, _| Expiry::Remove),
            1
        );
        assert!(t.is_empty());
    }

    #[test]
    fn expire_keep_and_budget() {
        let mut t = ConnTable::new(64, 3).unwrap();
        for n in 0..50 {
            t.insert(nat(n, 5)).unwrap();
        }
        let now = Instant::from_secs(10);
        let mut total = 0;
        let mut calls = 0;
        while total < 50 {
            total += t.expire(now, 8, |_, _| Expiry::Remove);
            calls += 1;
            assert!(calls < 1000);
        }
        assert!(calls > 1);
        let id = t.insert(nat(1, 11)).unwrap();
        let kept = t.expire(Instant::from_secs(20), 10_000, |_, _| {
            Expiry::Keep(Instant::from_secs(30))
        });
        assert_eq!(kept, 0);
        assert_eq!(t.get(id).unwrap().deadline(), Instant::from_secs(30));
        assert_eq!(
            t.expire(Instant::from_secs(30), 10_000, |_, _| Expiry::Remove),
            1
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32, bool, u64),
        Remove(usize),
        Touch(usize, u64),
        Expire(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..200, any::<bool>(), 0u64..50).prop_map(|(n, d, t)| Op::Insert(n, d, t)),
            (0usize..64).prop_map(Op::Remove),
            (0usize..64, 0u64..80).prop_map(|(i, t)| Op::Touch(i, t)),
            (0u64..100).prop_map(Op::Expire),
        ]
    }

    proptest! {
        /// The table agrees with a simple model through any mix of operations, and every
        /// connection expires no earlier than its deadline and within a second of it.
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..200), seed: u64) {
            let mut t = ConnTable::with_wheel(32, seed, 16).unwrap();
            let mut model: HashMap<ConnId, NewConn> = HashMap::new();
            let mut now = 0u64;
            let mut last_expire = 0u64;
            for o in ops {
                match o {
                    Op::Insert(n, is_dr, d) => {
                        let c = if is_dr { dr(n, now + d) } else { nat(n, now + d) };
                        let clash = model.values().any(|m| {
                            m.in_key == c.in_key
                                || (!is_dr && m.method == ForwardMethod::Masq && m.out_key == c.out_key)
                        });
                        match t.insert(c) {
                            Ok(id) => { prop_assert!(!clash); model.insert(id, c); }
                            Err(InsertError::KeyExists) => prop_assert!(clash),
                            Err(InsertError::TableFull) => prop_assert!(!clash && model.len() == 32),
                        }
                    }
                    Op::Remove(i) => {
                        let mut ids: Vec<ConnId> = model.keys().copied().collect();
                        ids.sort();
                        if let Some(id) = ids.get(i % ids.len().max(1)).copied() {
                            prop_assert!(t.remove(id).is_some());
                            model.remove(&id);
                        }
                    }
                    Op::Touch(i, d) => {
                        let mut ids: Vec<ConnId> = model.keys().copied().collect();
                        ids.sort();
                        if let Some(id) = ids.get(i % ids.len().max(1)).copied() {
                            let dl = Instant::from_secs(now + d);
                            prop_assert!(t.set_deadline(id, dl));
                            if let Some(m) = model.get_mut(&id) { m.deadline = dl; }
                        }
                    }
                    Op::Expire(dt) => {
                        now += dt % 7;
                        let at = Instant::from_secs(now);
                        let mut gone = Vec::new();
                        t.expire(at, usize::MAX, |id, c| { gone.push((id, c.deadline())); Expiry::Remove });
                        for (id, dl) in gone {
                            prop_assert!(dl <= at);
                            model.remove(&id);
                        }
                        // A deadline set at or before an already processed second fires at the next
                        // one; otherwise nothing due survives an unbounded expire.
                        for m in model.values() {
                            if now > last_expire {
                                prop_assert!(m.deadline > at, "overdue connection kept");
                            } else {
                                prop_assert!(m.deadline >= at, "overdue connection kept");
                            }
                        }
                        last_expire = now;
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                for (id, m) in &model {
                    prop_assert_eq!(t.lookup(&m.in_key), Some((*id, Dir::Original)));
                    if m.method == ForwardMethod::Masq {
                        prop_assert_eq!(t.lookup(&m.out_key), Some((*id, Dir::Reply)));
                    }
                }
                prop_assert_eq!(t.iter().count(), model.len());
            }
        }
    }
}
