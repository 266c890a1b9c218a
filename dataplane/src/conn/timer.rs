//! A per-worker timer wheel with lazy re-arm, for connection expiry.
//!
//! - Granularity is one second (IPVS timeouts are whole seconds; a connection expires up to one
//!   second after its deadline, never before). A deadline is armed in the bucket of tick
//!   `ceil(deadline)`, so when bucket `T` is processed (at `now >= T s`) its entries are due.
//! - Lazy re-arm: a packet only moves a connection's deadline *later*, which costs a store. When
//!   the old bucket comes due the owner re-checks the real deadline and re-arms if it moved. A
//!   deadline moved *earlier* (e.g. ESTABLISHED 900 s -> FIN_WAIT 120 s) is re-armed at once.
//! - Entries are intrusive doubly-linked lists threaded through [`TimerLink`]s stored in the
//!   connection slab, so arming, disarming and popping are O(1) and never allocate. Only the
//!   head of a list knows which list it is in (`list`); that is all unlinking needs.
//! - Deadlines beyond the wheel's span (buckets x 1 s) land in an earlier-wrapping bucket and are
//!   simply re-armed when it comes due.
//! - Work is bounded: [`TimerWheel::pop_due`] charges one unit per bucket advanced against the
//!   caller's budget (the caller charges one per entry), and a bucket being processed is detached
//!   as a "pending" list first, so stopping half way and re-arming into the same bucket are safe.

use crate::time::Instant;

/// "No entry" in links and heads.
pub const NIL: u32 = u32::MAX;
/// `list` value of the head of the pending list.
const PENDING: u32 = u32::MAX - 1;

/// The wheel's link fields inside one entry (12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerLink {
    next: u32,
    prev: u32,
    /// Valid only while this entry is a list head: the bucket index, or `PENDING`.
    list: u32,
}

impl TimerLink {
    /// Not in any list.
    pub const UNLINKED: TimerLink = TimerLink {
        next: NIL,
        prev: NIL,
        list: NIL,
    };

    /// Whether the entry is in a list.
    pub fn is_armed(&self) -> bool {
        self.prev != NIL || self.list != NIL
    }

    /// The free-list successor of a free slab slot (the slab reuses `next` while a slot is free).
    pub(super) fn free_next(&self) -> u32 {
        self.next
    }

    pub(super) fn free_with_next(next: u32) -> TimerLink {
        TimerLink {
            next,
            ..TimerLink::UNLINKED
        }
    }
}

/// Storage holding the entries' links, indexed by entry id.
pub trait TimerNodes {
    fn link_mut(&mut self, id: u32) -> Option<&mut TimerLink>;
}

/// Buckets of one-second ticks.
#[derive(Debug)]
pub struct TimerWheel {
    heads: Box<[u32]>,
    mask: u64,
    /// The next tick (second) whose bucket has not been processed.
    next_tick: u64,
    /// The detached list of the bucket being processed.
    pending: u32,
}

/// Default number of buckets: 4096 s, about 68 minutes, so every default timeout fits.
pub const DEFAULT_BUCKETS: usize = 4096;

fn ceil_secs(t: Instant) -> u64 {
    t.as_micros().div_ceil(1_000_000)
}

impl TimerWheel {
    /// A wheel of `buckets` one-second buckets (rounded up to a power of two, 2 ..= 2^20).
    pub fn new(buckets: usize) -> TimerWheel {
        let n = buckets.clamp(2, 1 << 20).next_power_of_two();
        TimerWheel {
            heads: vec![NIL; n].into_boxed_slice(),
            mask: n as u64 - 1,
            next_tick: 0,
            pending: NIL,
        }
    }

    /// Number of buckets.
    pub fn buckets(&self) -> usize {
        self.heads.len()
    }

    /// Bytes used by the wheel itself.
    pub fn memory_bytes(&self) -> usize {
        self.heads.len() * core::mem::size_of::<u32>()
    }

    fn head_mut(&mut self, list: u32) -> Option<&mut u32> {
        if list == PENDING {
            Some(&mut self.pending)
        } else {
            self.heads.get_mut(list as usize)
        }
    }

    /// Arm entry `id` (which must not be armed) for `deadline`.
    pub fn arm<N: TimerNodes + ?Sized>(&mut self, nodes: &mut N, id: u32, deadline: Instant) {
        let tick = ceil_secs(deadline).max(self.next_tick);
        let list = (tick & self.mask) as u32;
        let Some(head) = self.head_mut(list) else {
            return;
        };
        let old = *head;
        *head = id;
        if let Some(l) = nodes.link_mut(id) {
            *l = TimerLink {
                next: old,
                prev: NIL,
                list,
            };
        }
        if old != NIL
            && let Some(l) = nodes.link_mut(old)
        {
            l.prev = id;
        }
    }

    /// Take entry `id` out of whatever list holds it (no-op if not armed).
    pub fn disarm<N: TimerNodes + ?Sized>(&mut self, nodes: &mut N, id: u32) {
        let Some(l) = nodes.link_mut(id).map(|l| *l) else {
            if self.pending == id {
                self.pending = NIL;
            }
            return;
        };
        if !l.is_armed() {
            return;
        }
        if l.prev != NIL {
            if let Some(p) = nodes.link_mut(l.prev) {
                p.next = l.next;
            }
        } else {
            if let Some(h) = self.head_mut(l.list) {
                *h = l.next;
            }
            if l.next != NIL
                && let Some(n) = nodes.link_mut(l.next)
            {
                n.list = l.list; // the successor is the new head
            }
        }
        if l.next != NIL
            && let Some(n) = nodes.link_mut(l.next)
        {
            n.prev = l.prev;
        }
        if let Some(me) = nodes.link_mut(id) {
            *me = TimerLink::UNLINKED;
        }
    }

    /// The next entry whose bucket is due at `now`, disarmed, or `None` when caught up or when
    /// `budget` (decremented per bucket advanced) runs out. The caller re-checks the entry's real
    /// deadline: entries re-armed lazily may not be due yet.
    pub fn pop_due<N: TimerNodes + ?Sized>(
        &mut self,
        nodes: &mut N,
        now: Instant,
        budget: &mut usize,
    ) -> Option<u32> {
        loop {
            if self.pending != NIL {
                let id = self.pending;
                self.disarm(nodes, id);
                return Some(id);
            }
            let now_tick = now.as_secs();
            if self.next_tick > now_tick || *budget == 0 {
                return None;
            }
            // Every bucket is due: one lap from `now - n + 1` visits each once.
            let n = self.mask + 1;
            if now_tick - self.next_tick >= n {
                self.next_tick = now_tick + 1 - n;
            }
            let b = (self.next_tick & self.mask) as usize;
            if let Some(h) = self.heads.get_mut(b) {
                self.pending = core::mem::replace(h, NIL);
            }
            if self.pending != NIL
                && let Some(l) = nodes.link_mut(self.pending)
            {
                l.list = PENDING;
            }
            self.next_tick += 1;
            *budget -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nodes(Vec<TimerLink>);
    impl TimerNodes for Nodes {
        fn link_mut(&mut self, id: u32) -> Option<&mut TimerLink> {
            self.0.get_mut(id as usize)
        }
    }

    fn drain(w: &mut TimerWheel, n: &mut Nodes, now: u64) -> Vec<u32> {
        let mut budget = usize::MAX;
        let mut out = Vec::new();
        while let Some(id) = w.pop_due(n, Instant::from_secs(now), &mut budget) {
            out.push(id);
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn fires_at_ceil_of_deadline() {
        let mut w = TimerWheel::new(8);
        let mut n = Nodes(vec![TimerLink::UNLINKED; 4]);
        w.arm(&mut n, 0, Instant::from_millis(2_500));
        w.arm(&mut n, 1, Instant::from_secs(2));
        w.arm(&mut n, 2, Instant::from_secs(5));
        assert_eq!(drain(&mut w, &mut n, 1), Vec::<u32>::new());
        assert_eq!(drain(&mut w, &mut n, 2), [1]);
        assert_eq!(drain(&mut w, &mut n, 3), [0]);
        assert_eq!(drain(&mut w, &mut n, 100), [2]);
        assert!(n.0.iter().all(|l| !l.is_armed()));
    }

    #[test]
    fn disarm_head_middle_tail_and_pending() {
        let mut w = TimerWheel::new(8);
        let mut n = Nodes(vec![TimerLink::UNLINKED; 5]);
        for id in 0..5 {
            w.arm(&mut n, id, Instant::from_secs(3)); // list: 4 3 2 1 0
        }
        w.disarm(&mut n, 4); // head
        w.disarm(&mut n, 2); // middle
        w.disarm(&mut n, 0); // tail
        w.disarm(&mut n, 0); // again: no-op
        let mut budget = usize::MAX;
        let first = w.pop_due(&mut n, Instant::from_secs(3), &mut budget);
        assert_eq!(first, Some(3));
        // 1 is now the head of the pending list; disarm it there.
        w.disarm(&mut n, 1);
        assert_eq!(w.pop_due(&mut n, Instant::from_secs(3), &mut budget), None);
    }

    #[test]
    fn budget_bounds_work_and_far_deadlines_wrap() {
        let mut w = TimerWheel::new(4);
        let mut n = Nodes(vec![TimerLink::UNLINKED; 2]);
        w.arm(&mut n, 0, Instant::from_secs(10)); // wraps: bucket 2, seen at tick 2
        // Catching up jumps to one lap before `now`: ticks 97 (bucket 1), 98 (bucket 2), ...
        let mut budget = 1;
        assert_eq!(
            w.pop_due(&mut n, Instant::from_secs(100), &mut budget),
            None
        );
        let mut budget = 10;
        assert_eq!(
            w.pop_due(&mut n, Instant::from_secs(100), &mut budget),
            Some(0)
        );
    }
}
