//! The embryonic-connection defences (the purpose of IPVS's `drop_entry`). An *embryonic*
//! connection never got past its first packet: TCP still in SYN_RECV (or NONE), or a NAT/FULLNAT
//! UDP flow whose real server never answered. A spoofed SYN or UDP flood fills the table with
//! them; two defences keep real clients getting in:
//!
//! - **Eviction** ([`State::evict_embryo`]): a new connection that finds the table full takes
//!   the slot of the embryonic connection that was *least recently* opened or answered, counted
//!   (`rvs_worker_embryonic_evicted_total`). Every embryonic connection this worker opens is
//!   noted, in order, in an [`EmbryoRing`] of `(slot, tag)` pairs allocated once; a TCP
//!   connection is noted again when its real server first answers (the SYN-ACK), so a real
//!   client's handshake gets a whole turnover of the table from the SYN-ACK on to send its ACK,
//!   however long the SYN took to be answered. The tag (the in-tuple's hash, its low bit
//!   whether the connection had been answered when noted) tells the note that counts from
//!   earlier notes of the same connection and from a later connection in the same slot; entries
//!   that no longer count (the connection was established, answered (UDP), removed, or noted
//!   again) are skipped when they reach the front. A real client's SYN therefore always gets a
//!   slot, and on a LAN round trip it completes its handshake long before a flood could push it
//!   to the front. Established and answered UDP connections are never evicted; with no embryonic
//!   connection left, a full table refuses the new connection as before (`conn_table_full`). An
//!   evicted connection is removed with the same accounting as any other (dest counts,
//!   persistence template, FULLNAT local port). Work is amortized O(1): each note is skipped or
//!   evicted at most once.
//! - **Shortening** ([`State::relieve_pressure`]): when the table passes its high watermark
//!   (7/8 full), embryonic connections are given at most [`EMBRYO_GRACE`] more to live, so the
//!   flood's entries drain within seconds instead of 60 s (SYN_RECV) or 300 s (UDP) once it
//!   stops. Each tick under pressure examines [`SWEEP_BUDGET`] slots from a cursor that wraps
//!   around the table, so a full table is covered in `capacity / SWEEP_BUDGET` ticks with bounded
//!   work per tick. Every connection shortened is counted
//!   (`rvs_worker_embryonic_shortened_total`).
//!
//! The ring holds two entries per table slot (a connection counts in at most one, and may have
//! one more that no longer counts). When it is full with an entry that still counts at the front,
//! that entry is let go (its connection can then only be shortened, not evicted); connections
//! restored from a state file are not noted.

use core::time::Duration;

use crate::conn::{Conn, ConnFlags, ConnId, ConnState, ConnTable, TcpState};
use crate::packet::PacketBuf;
use crate::service::ForwardMethod;
use crate::time::Instant;

use super::{State, Tables};

/// What an embryonic connection has left once the table is under pressure.
pub const EMBRYO_GRACE: Duration = Duration::from_secs(1);
/// Slots examined per tick while under pressure.
pub const SWEEP_BUDGET: usize = 4096;

/// Whether `c` never got past its first packet.
pub(super) fn embryonic(c: &Conn) -> bool {
    match c.state() {
        ConnState::Tcp(s) => matches!(s, TcpState::SynRecv | TcpState::None),
        ConnState::Udp(_) => {
            !c.flags().contains(ConnFlags::REPLIED)
                && matches!(c.method(), ForwardMethod::Masq | ForwardMethod::FullNat)
        }
    }
}

/// The tag of a note of `c` made now: its in-tuple's hash (a later connection in the same slot
/// has another) with the low bit saying whether it had been answered (a note made before its
/// first answer no longer counts after it).
fn tag(conns: &ConnTable, c: &Conn) -> u32 {
    let answered = c.flags().contains(ConnFlags::REPLIED);
    (conns.hash(c.in_key()) as u32 & !1) | u32::from(answered)
}

/// Connections in the order this worker opened them, as `(slot, tag)`: a fixed ring, allocated
/// once, as long as the table.
#[derive(Debug)]
pub(super) struct EmbryoRing {
    entries: Box<[(u32, u32)]>,
    head: usize,
    len: usize,
}

impl EmbryoRing {
    pub(super) fn new(capacity: usize) -> EmbryoRing {
        EmbryoRing {
            entries: vec![(0, 0); capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    fn pop_front(&mut self) -> Option<(u32, u32)> {
        if self.len == 0 {
            return None;
        }
        let e = self.entries[self.head];
        self.head = (self.head + 1) % self.entries.len();
        self.len -= 1;
        Some(e)
    }

    fn front(&self) -> Option<(u32, u32)> {
        (self.len > 0).then(|| self.entries[self.head])
    }

    /// Note an entry at the back; when full, the front entry is let go.
    fn push_back(&mut self, e: (u32, u32)) {
        let n = self.entries.len();
        if self.len == n {
            self.head = (self.head + 1) % n;
            self.len -= 1;
        }
        self.entries[(self.head + self.len) % n] = e;
        self.len += 1;
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

/// The state of both defences on one worker.
#[derive(Debug)]
pub(super) struct Pressure {
    /// Next slot the shortening sweep examines.
    cursor: usize,
    /// Connections that may be evicted, oldest first.
    ring: EmbryoRing,
}

impl Pressure {
    pub(super) fn new(capacity: usize) -> Pressure {
        Pressure {
            cursor: 0,
            ring: EmbryoRing::new(capacity.saturating_mul(2)),
        }
    }

    #[cfg(test)]
    pub(super) fn noted(&self) -> usize {
        self.ring.len()
    }
}

/// Whether the ring entry `e` still names a live embryonic connection.
fn still_embryonic(conns: &ConnTable, e: (u32, u32)) -> bool {
    conns
        .get(ConnId(e.0))
        .is_some_and(|c| embryonic(c) && tag(conns, c) == e.1)
}

impl<B: PacketBuf> State<B> {
    /// Note an embryonic connection (just opened, or answered for the first time) as the most
    /// recent candidate for eviction. Entries at the front that no longer count are dropped
    /// first, so the ring lets a counting entry go only when it is full of them.
    pub(super) fn note_embryo(&mut self, id: ConnId) {
        let Some(c) = self.conns.get(id).filter(|c| embryonic(c)) else {
            return;
        };
        let e = (id.0, tag(&self.conns, c));
        let ring = &mut self.pressure.ring;
        if ring.len == ring.entries.len() {
            while let Some(front) = ring.front() {
                if still_embryonic(&self.conns, front) {
                    break;
                }
                ring.pop_front();
            }
        }
        ring.push_back(e);
    }

    /// The table is full and a new connection wants in: remove the oldest embryonic connection
    /// (with its full accounting) and count it. False when there is none to evict.
    pub(super) fn evict_embryo(&mut self, tables: &Tables) -> bool {
        while let Some(e) = self.pressure.ring.pop_front() {
            if still_embryonic(&self.conns, e) {
                self.remove_conn(tables, ConnId(e.0), true);
                self.counters.embryonic_evicted += 1;
                return true;
            }
        }
        false
    }

    /// Shorten embryonic connections while the table is above its high watermark.
    pub(super) fn relieve_pressure(&mut self, now: Instant) {
        let cap = self.conns.capacity();
        if cap == 0 || self.conns.len() * 8 < cap * 7 {
            return;
        }
        let limit = now + EMBRYO_GRACE;
        for _ in 0..SWEEP_BUDGET.min(cap) {
            let id = ConnId(self.pressure.cursor as u32);
            self.pressure.cursor = (self.pressure.cursor + 1) % cap;
            let shorten = self
                .conns
                .get(id)
                .is_some_and(|c| embryonic(c) && c.deadline() > limit);
            if shorten {
                self.conns.set_deadline(id, limit);
                self.counters.embryonic_shortened += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EmbryoRing;

    #[test]
    fn ring_keeps_order_and_lets_the_oldest_go_when_full() {
        let mut r = EmbryoRing::new(3);
        for i in 0..3 {
            r.push_back((i, i));
        }
        assert_eq!(r.len(), 3);
        r.push_back((3, 3));
        assert_eq!(r.len(), 3);
        let got: Vec<_> = std::iter::from_fn(|| r.pop_front()).collect();
        assert_eq!(got, vec![(1, 1), (2, 2), (3, 3)]);
        assert_eq!(r.pop_front(), None);
        r.push_back((9, 9));
        assert_eq!(r.front(), Some((9, 9)));
    }
}
