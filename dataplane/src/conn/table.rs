//! [`ConnTable`]: a bounded slab of [`Conn`] records, one bucketed index over both tuples of
//! every connection, and the timer wheel that expires them.
//!
//! Made for the cache: a lookup that hits touches two cache lines, the key's index bucket and
//! the connection's record.
//! - [`Conn`] is exactly one aligned 64-byte line: two 14-byte keys, service and dest ids, the
//!   deadline, the 12-byte timer link, the template reference, state, method and flags. Free
//!   slots thread the free list through the timer link, so there is no separate free stack.
//! - The index is an array of 64-byte [`Bucket`]s of ten entries: a 16-bit tag (the low bits
//!   of the key's hash) and a 32-bit `id << 1 | dir` each, plus an overflow count. A key's home
//!   bucket is chosen by the hash's high 32 bits (multiply-shift, so any bucket count works);
//!   a full bucket sends new entries on to the next one and counts them in its overflow count,
//!   so a lookup stops at the first bucket with a zero count, and a removal decrements the counts
//!   it passed (the scheme of folly's F14 tables). Deletion leaves no tombstones.
//! - There are `capacity / 4` buckets (at least one): 16 bytes per connection, 2.5 entries of
//!   room per connection for the at most two it uses (NAT, FULLNAT; DR/TUN index one).
//! - Total: 80 bytes per connection, plus 16 KiB for the wheel.
//! - Burst processing overlaps misses: [`ConnTable::hash`] and [`ConnTable::bucket`] let the
//!   worker prefetch every packet's bucket first, [`ConnTable::candidate`] then the record of
//!   the first tag match, before any packet is looked up for real.
//!
//! Nothing here allocates after construction, and no input can make it panic: every index is
//! bounds-checked, every probe loop is bounded by the number of buckets.

use core::time::Duration;

use super::timer::{NIL, TimerLink, TimerNodes, TimerWheel};
use super::{ConnKey, ConnState, FlowKey, TcpDir, Timeouts, tcp};
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
pub struct ConnFlags(u16);

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
    /// A packet of the reply direction has been seen (the real server answered), on any method
    /// whose replies pass the director. Never cleared. See `worker::pressure`.
    pub const REPLIED: ConnFlags = ConnFlags(64);
    /// Opened by the SYN proxy: its segments are renumbered (the worker's proxy slot).
    pub const SYNPROXY: ConnFlags = ConnFlags(0x100);
    /// FULLNAT TCP with a PROXY protocol header: the client's bytes are shifted by it, its
    /// segments renumbered (the worker's proxy slot, `worker::proxyhdr`).
    pub const PROXY_HDR: ConnFlags = ConnFlags(0x200);
    /// FULLNAT UDP: how many datagrams carried the UOA option (two bits, 0..=3).
    pub const UOA_SENT_1: ConnFlags = ConnFlags(0x400);
    pub const UOA_SENT_2: ConnFlags = ConnFlags(0x800);
    const OCCUPIED: ConnFlags = ConnFlags(0x80);

    pub const fn contains(self, f: ConnFlags) -> bool {
        self.0 & f.0 == f.0
    }
    pub const fn bits(self) -> u16 {
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

/// One connection: one 64-byte cache line.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
pub struct Conn<K: FlowKey = ConnKey> {
    in_key: K,
    out_key: K,
    service: ServiceId,
    dest: DestId,
    deadline: Instant,
    timer: TimerLink,
    /// The persistence template controlling it ([`crate::persist::TemplateRef`]), or
    /// [`NO_CONTROL`].
    control: u32,
    state: ConnState,
    method: ForwardMethod,
    flags: ConnFlags,
}

/// [`Conn::control`] of a connection no template controls.
const NO_CONTROL: u32 = u32::MAX;

impl<K: FlowKey> Conn<K> {
    const FREE: Self = Conn {
        in_key: K::EMPTY,
        out_key: K::EMPTY,
        service: ServiceId(0),
        dest: DestId(0),
        deadline: Instant::ZERO,
        timer: TimerLink::UNLINKED,
        control: NO_CONTROL,
        state: ConnState::Tcp(super::TcpState::None),
        method: ForwardMethod::Route,
        flags: ConnFlags(0),
    };

    fn occupied(&self) -> bool {
        self.flags.contains(ConnFlags::OCCUPIED)
    }

    /// A field the compiler lays out after the keys (a prefetch hint for a record longer than
    /// one cache line: an IPv6 record is two; which line a field lands in is the compiler's
    /// choice, so this is a hint, never relied on).
    pub fn tail_hint(&self) -> &ConnFlags {
        &self.flags
    }

    /// Client -> VIP, as the client's packets arrive.
    pub fn in_key(&self) -> &K {
        &self.in_key
    }
    /// The reply as it arrives at the director (RS -> client for NAT, RS -> LIP for FULLNAT). For
    /// DR/TUN it is recorded (RS -> client) but not indexed, since replies bypass the director.
    pub fn out_key(&self) -> &K {
        &self.out_key
    }
    /// The tuple a packet in direction `dir` carries.
    pub fn key(&self, dir: Dir) -> &K {
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
    /// The persistence template controlling this connection.
    pub fn control(&self) -> Option<crate::persist::TemplateRef> {
        (self.control != NO_CONTROL).then_some(crate::persist::TemplateRef(self.control))
    }

    /// Record the persistence template controlling this connection.
    pub fn set_control(&mut self, r: crate::persist::TemplateRef) {
        self.control = r.0;
    }

    /// How many datagrams carried the UOA option (0..=3).
    pub fn uoa_sent(&self) -> u8 {
        u8::from(self.flags.contains(ConnFlags::UOA_SENT_1))
            | u8::from(self.flags.contains(ConnFlags::UOA_SENT_2)) << 1
    }

    /// Count one more datagram with the UOA option (saturates at 3).
    pub fn count_uoa(&mut self) {
        let n = (self.uoa_sent() + 1).min(3);
        self.set_flag(ConnFlags::UOA_SENT_1, n & 1 != 0);
        self.set_flag(ConnFlags::UOA_SENT_2, n & 2 != 0);
    }

    /// Set or clear a flag the table does not manage itself ([`ConnFlags::TOA_PENDING`],
    /// [`ConnFlags::ASSURED_SENT`]); other flags are left alone.
    pub fn set_flag(&mut self, f: ConnFlags, on: bool) {
        const SETTABLE: [ConnFlags; 6] = [
            ConnFlags::TOA_PENDING,
            ConnFlags::ASSURED_SENT,
            ConnFlags::SYNPROXY,
            ConnFlags::PROXY_HDR,
            ConnFlags::UOA_SENT_1,
            ConnFlags::UOA_SENT_2,
        ];
        if !SETTABLE.contains(&f) {
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

impl<K: FlowKey> TimerNodes for [Conn<K>] {
    fn link_mut(&mut self, id: u32) -> Option<&mut TimerLink> {
        self.get_mut(id as usize).map(|c| &mut c.timer)
    }
}

/// What to create.
#[derive(Debug, Clone, Copy)]
pub struct NewConn<K: FlowKey = ConnKey> {
    pub in_key: K,
    /// See [`Conn::out_key`]; indexed only when `method` has replies through the director.
    pub out_key: K,
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

/// Connections expired per batch (see [`ConnTable::expire`]).
const EXPIRE_BATCH: usize = 16;

/// Largest capacity per table (2^28 connections; the index then has 2^30 entries).
pub const MAX_CAPACITY: usize = 1 << 28;

/// Entries per index bucket.
const WAYS: usize = 10;
/// An empty entry's `slot`.
const EMPTY: u32 = u32::MAX;
/// An overflow count that stays (too many entries went past for the count to be exact).
const STICKY: u16 = u16::MAX;

/// One 64-byte line of the index: ten entries and the count of entries that went past it.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct Bucket {
    tags: [u16; WAYS],
    /// Entries whose home is this bucket or an earlier one, stored in a later one.
    overflow: u16,
    _pad: u16,
    /// `id << 1 | dir`, or [`EMPTY`].
    slots: [u32; WAYS],
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        tags: [0; WAYS],
        overflow: 0,
        _pad: 0,
        slots: [EMPTY; WAYS],
    };
}

/// A hook that advises the kernel how to back a large allocation before it is first touched
/// (the runtime passes transparent-huge-page advice; the dataplane itself makes no system
/// calls). Gets the start and length in bytes; returns whether the advice was taken.
pub type MemAdvice = fn(*const u8, usize) -> bool;

/// One worker's connections.
#[derive(Debug)]
pub struct ConnTable<K: FlowKey = ConnKey> {
    conns: Box<[Conn<K>]>,
    free_head: u32,
    len: usize,
    index: Box<[Bucket]>,
    seed: u64,
    wheel: TimerWheel,
}

/// A boxed slice of `n` copies made by `f`, its memory advised before the first write.
fn advised_slice<T>(n: usize, advice: Option<MemAdvice>, f: impl FnMut(usize) -> T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    if let Some(advise) = advice {
        advise(v.as_ptr().cast::<u8>(), n * core::mem::size_of::<T>());
    }
    v.extend((0..n).map(f));
    v.into_boxed_slice()
}

impl<K: FlowKey> ConnTable<K> {
    /// A table for `capacity` connections, hashing with `seed` (random per worker, from the
    /// runtime), with the default 4096-second timer wheel.
    pub fn new(capacity: usize, seed: u64) -> Result<Self, ConnTableError> {
        Self::build(capacity, seed, super::timer::DEFAULT_BUCKETS, None)
    }

    /// As [`ConnTable::new`], with `advice` applied to the slab and the index before they are
    /// first written (see [`MemAdvice`]).
    pub fn with_advice(
        capacity: usize,
        seed: u64,
        advice: MemAdvice,
    ) -> Result<Self, ConnTableError> {
        Self::build(capacity, seed, super::timer::DEFAULT_BUCKETS, Some(advice))
    }

    /// As [`ConnTable::new`], with a wheel of `buckets` one-second buckets.
    pub fn with_wheel(capacity: usize, seed: u64, buckets: usize) -> Result<Self, ConnTableError> {
        Self::build(capacity, seed, buckets, None)
    }

    fn build(
        capacity: usize,
        seed: u64,
        wheel_buckets: usize,
        advice: Option<MemAdvice>,
    ) -> Result<Self, ConnTableError> {
        if capacity > MAX_CAPACITY {
            return Err(ConnTableError::CapacityTooLarge(capacity));
        }
        let conns = advised_slice(capacity, advice, |i| {
            let next = if i + 1 < capacity { i as u32 + 1 } else { NIL };
            Conn {
                timer: TimerLink::free_with_next(next),
                ..Conn::<K>::FREE
            }
        });
        let buckets = capacity.div_ceil(4).max(1);
        Ok(ConnTable {
            conns,
            free_head: if capacity > 0 { 0 } else { NIL },
            len: 0,
            index: advised_slice(buckets, advice, |_| Bucket::EMPTY),
            seed,
            wheel: TimerWheel::new(wheel_buckets),
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

    /// The seeded hash of `key`, as [`ConnTable::lookup_hashed`] and the staged helpers take it.
    #[inline]
    pub fn hash(&self, key: &K) -> u64 {
        key.hash(self.seed)
    }

    /// Home bucket index of hash `h` (multiply-shift of its high half).
    #[inline]
    fn home(&self, h: u64) -> usize {
        (((h >> 32) * self.index.len() as u64) >> 32) as usize
    }

    /// The index bucket where a lookup of hash `h` starts (to prefetch it).
    #[inline]
    pub fn bucket(&self, h: u64) -> &Bucket {
        &self.index[self.home(h)]
    }

    /// The record of the first entry of `h`'s home bucket whose tag matches (to prefetch it
    /// once the bucket is cached): usually the connection the lookup will find.
    #[inline]
    pub fn candidate(&self, h: u64) -> Option<&Conn<K>> {
        let b = self.bucket(h);
        let tag = h as u16;
        let i = (0..WAYS).find(|&i| b.tags[i] == tag && b.slots[i] != EMPTY)?;
        self.conns.get((b.slots[i] >> 1) as usize)
    }

    /// The connection a packet with tuple `key` belongs to, and which of its tuples matched.
    #[inline]
    pub fn lookup(&self, key: &K) -> Option<(ConnId, Dir)> {
        self.lookup_hashed(key, self.hash(key))
    }

    /// [`ConnTable::lookup`] with the key's hash already computed.
    #[inline]
    pub fn lookup_hashed(&self, key: &K, h: u64) -> Option<(ConnId, Dir)> {
        let tag = h as u16;
        let mut b = self.home(h);
        for _ in 0..self.index.len() {
            let bk = self.index.get(b)?;
            for i in 0..WAYS {
                if bk.tags[i] == tag && bk.slots[i] != EMPTY {
                    let (id, dir) = split(bk.slots[i]);
                    if let Some(c) = self.conns.get(id as usize)
                        && c.key(dir) == key
                    {
                        return Some((ConnId(id), dir));
                    }
                }
            }
            if bk.overflow == 0 {
                return None;
            }
            b = self.next_bucket(b);
        }
        None
    }

    #[inline]
    fn next_bucket(&self, b: usize) -> usize {
        if b + 1 == self.index.len() { 0 } else { b + 1 }
    }

    /// Create a connection. Refused if the table is full or either indexed tuple already exists.
    pub fn insert(&mut self, new: NewConn<K>) -> Result<ConnId, InsertError> {
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
    pub fn get(&self, id: ConnId) -> Option<&Conn<K>> {
        self.conns.get(id.0 as usize).filter(|c| c.occupied())
    }

    /// The connection with this id, if live, for state/flag changes (keys and deadline are
    /// changed only through the table, which keeps index and timer in step).
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn<K>> {
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
        if dir == Dir::Reply {
            c.flags.insert(ConnFlags::REPLIED);
        }
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
        let t = c.set_state(new);
        self.set_deadline(id, now + timeouts.timeout(new));
        Some(t)
    }

    /// Remove a connection (index, timer, slab). Returns its last contents for accounting.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn<K>> {
        let c = *self.get(id)?;
        self.index_remove(&c.in_key, join(id.0, Dir::Original));
        if c.flags.contains(ConnFlags::REPLY_INDEXED) {
            self.index_remove(&c.out_key, join(id.0, Dir::Reply));
        }
        self.wheel.disarm(&mut self.conns[..], id.0);
        if let Some(slot) = self.conns.get_mut(id.0 as usize) {
            *slot = Conn::<K>::FREE;
            slot.timer = TimerLink::free_with_next(self.free_head);
            self.free_head = id.0;
        }
        self.len -= 1;
        Some(c)
    }

    /// Live connections, for listings (`ipvsadm -Lc`). Control-plane rate only: it walks the slab.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn<K>)> {
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
        mut f: impl FnMut(ConnId, &Conn<K>) -> Expiry,
    ) -> usize {
        let mut budget = max;
        let mut removed = 0;
        // Due connections are taken in batches: their records and index buckets are read
        // together first (independent loads, so the cache misses overlap), then each is
        // handled in the order the wheel gave them.
        let mut batch = [NIL; EXPIRE_BATCH];
        loop {
            let mut n = 0;
            while n < EXPIRE_BATCH && budget > 0 {
                let Some(id) = self.wheel.pop_due(&mut self.conns[..], now, &mut budget) else {
                    break;
                };
                budget = budget.saturating_sub(1);
                batch[n] = id;
                n += 1;
            }
            if n == 0 {
                break;
            }
            self.touch(&batch[..n]);
            for &id in &batch[..n] {
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
        }
        removed
    }

    /// Read the index buckets of the connections `ids` (their records are in cache after the
    /// wheel walked them), so that their removals find them cached: the loads of different
    /// connections do not depend on each other, so the CPU overlaps their misses. Pure reads.
    fn touch(&self, ids: &[u32]) {
        let mut acc = 0u16;
        for &id in ids {
            if let Some(c) = self.conns.get(id as usize) {
                acc ^= self.bucket(self.hash(&c.in_key)).overflow;
                if c.flags.contains(ConnFlags::REPLY_INDEXED) {
                    acc ^= self.bucket(self.hash(&c.out_key)).overflow;
                }
            }
        }
        std::hint::black_box(acc);
    }

    fn index_insert(&mut self, key: &K, slot: u32) {
        let h = self.hash(key);
        let tag = h as u16;
        let mut b = self.home(h);
        // There are at least 2.5 entries per connection and at most two used, so a free entry
        // is always found.
        for _ in 0..self.index.len() {
            let Some(bk) = self.index.get_mut(b) else {
                return;
            };
            if let Some(i) = bk.slots.iter().position(|&s| s == EMPTY) {
                bk.tags[i] = tag;
                bk.slots[i] = slot;
                return;
            }
            if bk.overflow != STICKY {
                bk.overflow += 1;
            }
            b = self.next_bucket(b);
        }
    }

    fn index_remove(&mut self, key: &K, slot: u32) {
        let h = self.hash(key);
        let home = self.home(h);
        let mut b = home;
        let mut passed = 0;
        let mut found = false;
        for _ in 0..self.index.len() {
            let Some(bk) = self.index.get_mut(b) else {
                return;
            };
            if let Some(i) = bk.slots.iter().position(|&s| s == slot) {
                bk.slots[i] = EMPTY;
                found = true;
                break;
            }
            passed += 1;
            b = self.next_bucket(b);
        }
        if !found {
            return;
        }
        // The entry went past `passed` buckets when it was inserted: uncount it there.
        let mut b = home;
        for _ in 0..passed {
            if let Some(bk) = self.index.get_mut(b)
                && bk.overflow != STICKY
            {
                bk.overflow = bk.overflow.saturating_sub(1);
            }
            b = self.next_bucket(b);
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
        assert_eq!(core::mem::size_of::<Conn>(), 64);
        assert_eq!(core::mem::align_of::<Conn>(), 64);
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
        assert_eq!(core::mem::align_of::<Bucket>(), 64);
        for cap in [1 << 16, 100_000, 1_000_000] {
            let t = ConnTable::<ConnKey>::new(cap, 1).unwrap();
            let per_conn = t.memory_bytes() / cap;
            assert!(per_conn <= 81, "{cap}: {per_conn} bytes per connection");
        }
    }

    /// The same table over IPv6 tuples: records of two lines, both tuples found, FULLNAT
    /// (v6 -> v6) and DR shapes, removal and expiry as for IPv4.
    #[test]
    fn v6_tuples_in_a_table_of_their_own() {
        use crate::conn::ConnKey6;
        use std::net::Ipv6Addr;
        assert_eq!(core::mem::size_of::<Conn<ConnKey6>>(), 128);
        let vip: Ipv6Addr = "2001:2::100".parse().unwrap();
        let rip: Ipv6Addr = "2001:2:1::11".parse().unwrap();
        let lip: Ipv6Addr = "2001:2:1::5".parse().unwrap();
        let cip =
            |n: u32| Ipv6Addr::from_bits(0x2001_0002_0000_0000_0000_0000_0000_0000 | u128::from(n));
        let mut t = ConnTable::<ConnKey6>::new(1000, 3).unwrap();
        let mut ids = Vec::new();
        for n in 0..900u32 {
            let fullnat = n % 2 == 0;
            let new = NewConn {
                in_key: ConnKey6::new(6, cip(n), 40000, vip, 80),
                out_key: if fullnat {
                    ConnKey6::new(6, rip, 80, lip, 1024 + n as u16)
                } else {
                    ConnKey6::new(6, rip, 80, cip(n), 40000)
                },
                service: ServiceId(1),
                dest: DestId(1),
                method: if fullnat {
                    ForwardMethod::FullNat
                } else {
                    ForwardMethod::Route
                },
                state: ConnState::Tcp(TcpState::None),
                deadline: Instant::from_secs(100 + u64::from(n % 7)),
                template: false,
            };
            let id = t.insert(new).unwrap();
            assert_eq!(t.lookup(&new.in_key), Some((id, Dir::Original)));
            let reply = t.lookup(&new.out_key);
            assert_eq!(reply, fullnat.then_some((id, Dir::Reply)), "{n}");
            assert_eq!(t.insert(new), Err(InsertError::KeyExists));
            ids.push((id, new));
        }
        assert_eq!(t.len(), 900);
        for (id, new) in ids.iter().step_by(3) {
            assert_eq!(t.remove(*id).map(|c| *c.in_key()), Some(new.in_key));
            assert_eq!(t.lookup(&new.in_key), None);
            assert_eq!(t.lookup(&new.out_key), None);
        }
        let removed = t.expire(Instant::from_secs(200), usize::MAX, |_, _| Expiry::Remove);
        assert_eq!(removed, 600);
        assert!(t.is_empty());
    }

    /// Every connection keeps both tuples findable however many share a home bucket: a table
    /// of 40 connections has 10 buckets, so long overflow chains (and chains that wrap past the
    /// last bucket) form, and removals in any order keep the overflow counts exact.
    #[test]
    fn overflow_chains_survive_removal_in_any_order() {
        for seed in 0..20u64 {
            let mut t = ConnTable::new(40, seed).unwrap();
            let ids: Vec<(ConnId, NewConn)> = (0..40)
                .map(|n| {
                    let c = nat(n, 100);
                    (t.insert(c).unwrap(), c)
                })
                .collect();
            assert!(t.insert(nat(99, 100)).is_err());
            let mut order: Vec<usize> = (0..40).collect();
            order.sort_by_key(|&i| (i as u64).wrapping_mul(seed | 1) % 41);
            for (k, &i) in order.iter().enumerate() {
                let (id, _) = ids[i];
                assert!(t.remove(id).is_some());
                for &j in &order[k + 1..] {
                    let (id, c) = ids[j];
                    assert_eq!(t.lookup(&c.in_key), Some((id, Dir::Original)));
                    assert_eq!(t.lookup(&c.out_key), Some((id, Dir::Reply)));
                }
                assert_eq!(t.lookup(&ids[i].1.in_key), None);
            }
            assert!(t.index.iter().all(|b| b.overflow == 0));
        }
    }

    #[test]
    fn candidate_is_the_record_a_lookup_finds() {
        let mut t = ConnTable::new(1000, 7).unwrap();
        for n in 0..1000 {
            t.insert(nat(n, 100)).unwrap();
        }
        let mut agree = 0;
        for n in 0..1000 {
            let k = nat(n, 100).in_key;
            let h = t.hash(&k);
            let (id, _) = t.lookup_hashed(&k, h).unwrap();
            if t.candidate(h)
                .is_some_and(|c| core::ptr::eq(c, t.get(id).unwrap()))
            {
                agree += 1;
            }
        }
        // Home-bucket tag hits: all but the overflowed and the rare tag twins.
        assert!(agree > 900, "{agree}");
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
        assert!(ConnTable::<ConnKey>::new(MAX_CAPACITY + 1, 0).is_err());
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
        // Unanswered until the real server's first reply.
        assert!(!t.get(id).unwrap().flags().contains(ConnFlags::REPLIED));
        t.on_packet(id, Dir::Reply, 0, Instant::from_secs(100), &to);
        assert!(t.get(id).unwrap().flags().contains(ConnFlags::REPLIED));
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
