//! Per-service and per-dest counters shared between the workers and the control plane.
//!
//! Rules (docs/architecture.md section 3: no read-modify-write atomics on the packet path):
//! - One cache-line-aligned [`StatsSlot`] per worker. Only that worker writes the slot's counters,
//!   with `load(Relaxed)` + `store(Relaxed)` (a single writer needs no RMW; the increment is not
//!   lost because nobody else stores to that word).
//! - Readers (control plane, metrics, schedulers on any worker) [`sum`](DestStats::sum) over the
//!   slots with relaxed loads. A sum is not a consistent cut across slots; each counter is exact
//!   at some instant, which is what IPVS's own per-CPU stats give too.
//! - Zeroing (`ipvsadm -Z`) must not race the single writer, so the control plane never writes a
//!   counter. Instead each slot has a *baseline* per cumulative counter, written only by the
//!   control plane: [`zero`](DestStats::zero) stores the current counter value as the baseline,
//!   and readers report `counter - baseline` (wrapping). An increment that lands between the
//!   control plane's load and its baseline store is counted after the zero, never lost, and the
//!   reported value can never go negative. Calls to `zero` come from the one control thread.
//! - The gauges (active, inactive, persistent connections) are not zeroed (IPVS does not zero
//!   them either). They go up and down through signed deltas stored as wrapping `u64`s; one
//!   worker's slot can be transiently "negative" only if a connection were unbound on another
//!   worker than the one that bound it, which the ownership rules of docs/architecture.md section 3 forbid;
//!   the sum is clamped at 0 regardless.
//! - A worker index outside `0..n_workers` is taken modulo the slot count: never a panic.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::drop::DropReason;

/// Index of each cumulative counter in a slot.
const CONNS: usize = 0;
const INPKTS: usize = 1;
const OUTPKTS: usize = 2;
const INBYTES: usize = 3;
const OUTBYTES: usize = 4;
const N_COUNTERS: usize = 5;

/// Single-writer increment: no RMW instruction, just load + store.
#[inline]
fn bump(a: &AtomicU64, by: u64) {
    a.store(a.load(Relaxed).wrapping_add(by), Relaxed);
}

/// One worker's counters for one service or dest. Written only by its worker.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct StatsSlot {
    counters: [AtomicU64; N_COUNTERS],
    /// Written only by the control plane (`zero`), see the module docs.
    baseline: [AtomicU64; N_COUNTERS],
    active: AtomicU64,
    inactive: AtomicU64,
    persistent: AtomicU64,
    /// The other workers' active and inactive connections as this slot's worker last read
    /// them, and how many views it has taken since (see [`DestStats::conns_seen_by`]).
    seen_active: AtomicU64,
    seen_inactive: AtomicU64,
    seen_views: AtomicU64,
}

impl StatsSlot {
    /// A new connection was scheduled to this service/dest.
    #[inline]
    pub fn add_conn(&self) {
        bump(&self.counters[CONNS], 1);
    }

    /// One packet of `bytes` bytes client -> real server.
    #[inline]
    pub fn add_in(&self, bytes: u64) {
        bump(&self.counters[INPKTS], 1);
        bump(&self.counters[INBYTES], bytes);
    }

    /// One packet of `bytes` bytes real server -> client.
    #[inline]
    pub fn add_out(&self, bytes: u64) {
        bump(&self.counters[OUTPKTS], 1);
        bump(&self.counters[OUTBYTES], bytes);
    }

    /// Change the active-connection gauge.
    #[inline]
    pub fn add_active(&self, delta: i64) {
        bump(&self.active, delta as u64);
    }

    /// Change the inactive-connection gauge.
    #[inline]
    pub fn add_inactive(&self, delta: i64) {
        bump(&self.inactive, delta as u64);
    }

    /// Change the persistence-template gauge.
    #[inline]
    pub fn add_persistent(&self, delta: i64) {
        bump(&self.persistent, delta as u64);
    }

    fn zero(&self) {
        for (c, b) in self.counters.iter().zip(&self.baseline) {
            b.store(c.load(Relaxed), Relaxed);
        }
    }

    /// Carry cumulative counters over from a previous process (restart with state): the sums
    /// grow by `t`. Moves the baseline only (the control plane's field), so it is safe while
    /// the worker counts; a later zero clears the carried part too.
    fn carry(&self, t: &Totals) {
        let add = [t.conns, t.inpkts, t.outpkts, t.inbytes, t.outbytes];
        for (b, v) in self.baseline.iter().zip(add) {
            b.store(b.load(Relaxed).wrapping_sub(v), Relaxed);
        }
    }

    fn accumulate(&self, t: &mut RawTotals) {
        for i in 0..N_COUNTERS {
            let v = self.counters[i]
                .load(Relaxed)
                .wrapping_sub(self.baseline[i].load(Relaxed));
            t.counters[i] = t.counters[i].wrapping_add(v);
        }
        t.active = t.active.wrapping_add(self.active.load(Relaxed));
        t.inactive = t.inactive.wrapping_add(self.inactive.load(Relaxed));
        t.persistent = t.persistent.wrapping_add(self.persistent.load(Relaxed));
    }
}

#[derive(Default)]
struct RawTotals {
    counters: [u64; N_COUNTERS],
    active: u64,
    inactive: u64,
    persistent: u64,
}

impl RawTotals {
    fn finish(self) -> Totals {
        // Gauges are sums of signed deltas; a transiently negative sum reads as 0.
        let gauge = |v: u64| u64::try_from(v as i64).unwrap_or(0);
        Totals {
            conns: self.counters[CONNS],
            inpkts: self.counters[INPKTS],
            outpkts: self.counters[OUTPKTS],
            inbytes: self.counters[INBYTES],
            outbytes: self.counters[OUTBYTES],
            active: gauge(self.active),
            inactive: gauge(self.inactive),
            persistent: gauge(self.persistent),
        }
    }
}

/// Sum over all workers (since the last zero for the cumulative counters).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    /// Dests only: active connections (IPVS `activeconns`).
    pub active: u64,
    /// Dests only: inactive connections (IPVS `inactconns`).
    pub inactive: u64,
    /// Dests only: persistence templates (IPVS `persistconns`).
    pub persistent: u64,
}

/// How often a worker re-reads the other workers' connection counts of a dest (in views), see
/// [`DestStats::conns_seen_by`].
pub const SEEN_REFRESH: u64 = 16;

/// A gauge sum kept as wrapping `u64`, read as a count (transiently "negative" sums are 0).
fn clamp(v: u64) -> u64 {
    u64::try_from(v as i64).unwrap_or(0)
}

fn new_slots(n_workers: usize) -> Box<[StatsSlot]> {
    (0..n_workers.max(1))
        .map(|_| StatsSlot::default())
        .collect()
}

#[inline]
fn slot_of(slots: &[StatsSlot], worker: usize) -> &StatsSlot {
    // `slots` is never empty (see `new_slots`), so the modulo and the index are in range. The
    // modulo (a division) is only paid for an out-of-range worker index.
    match slots.get(worker) {
        Some(s) => s,
        None => &slots[worker % slots.len()],
    }
}

fn sum_of(slots: &[StatsSlot]) -> Totals {
    let mut t = RawTotals::default();
    for s in slots {
        s.accumulate(&mut t);
    }
    t.finish()
}

/// The drop reasons of new connections a service refused (`worker::admit`), counted per
/// service too, in this order.
pub const REFUSALS: [DropReason; 6] = [
    DropReason::AclDenied,
    DropReason::AclNotAllowed,
    DropReason::SvcConnLimit,
    DropReason::SvcRateLimited,
    DropReason::SrcRateLimited,
    DropReason::RipSource,
];

/// One worker's refusal counts for one service (written only by that worker).
#[derive(Debug, Default)]
#[repr(align(64))]
struct RefusalSlot {
    counts: [AtomicU64; REFUSALS.len()],
}

/// Counters of one virtual service.
#[derive(Debug)]
pub struct ServiceStats {
    slots: Box<[StatsSlot]>,
    refused: Box<[RefusalSlot]>,
}

impl ServiceStats {
    /// Stats with one slot per worker (at least one).
    pub fn new(n_workers: usize) -> ServiceStats {
        ServiceStats {
            slots: new_slots(n_workers),
            refused: (0..n_workers.max(1))
                .map(|_| RefusalSlot::default())
                .collect(),
        }
    }

    /// Worker `worker` refused a new connection for `reason` (one of [`REFUSALS`]; other
    /// reasons are not counted here). Single writer per slot, as the other counters.
    #[inline]
    pub fn count_refusal(&self, worker: usize, reason: DropReason) {
        if let Some(i) = REFUSALS.iter().position(|r| *r == reason) {
            let slot = &self.refused[worker % self.refused.len()];
            bump(&slot.counts[i], 1);
        }
    }

    /// Refusals over all workers, by reason in [`REFUSALS`] order. Not reset by `-Z` (like the
    /// drop counters they mirror).
    pub fn refusals(&self) -> [u64; REFUSALS.len()] {
        let mut out = [0u64; REFUSALS.len()];
        for s in self.refused.iter() {
            for (o, c) in out.iter_mut().zip(&s.counts) {
                *o = o.wrapping_add(c.load(Relaxed));
            }
        }
        out
    }

    /// The slot `worker` writes.
    #[inline]
    pub fn slot(&self, worker: usize) -> &StatsSlot {
        slot_of(&self.slots, worker)
    }

    /// Totals over all workers.
    pub fn sum(&self) -> Totals {
        sum_of(&self.slots)
    }

    /// Zero the cumulative counters (control plane only), see the module docs.
    pub fn zero(&self) {
        self.slots.iter().for_each(StatsSlot::zero);
    }

    /// Add a previous process's cumulative counters (control plane only).
    pub fn carry(&self, t: &Totals) {
        self.slots[0].carry(t);
    }
}

/// Counters and connection gauges of one dest, plus its OVERLOAD flag.
#[derive(Debug)]
pub struct DestStats {
    slots: Box<[StatsSlot]>,
    /// IPVS `IP_VS_DEST_F_OVERLOAD`. Written with plain stores by the worker that binds or
    /// unbinds a connection and by the control plane on edit (no RMW; last store wins, as the
    /// kernel's unlocked `dest->flags` update). See [`super::Dest::bind_conn`].
    overloaded: AtomicBool,
}

impl DestStats {
    /// Stats with one slot per worker (at least one).
    pub fn new(n_workers: usize) -> DestStats {
        DestStats {
            slots: new_slots(n_workers),
            overloaded: AtomicBool::new(false),
        }
    }

    /// The slot `worker` writes.
    #[inline]
    pub fn slot(&self, worker: usize) -> &StatsSlot {
        slot_of(&self.slots, worker)
    }

    /// Totals over all workers.
    pub fn sum(&self) -> Totals {
        sum_of(&self.slots)
    }

    /// Zero the cumulative counters (control plane only), see the module docs.
    pub fn zero(&self) {
        self.slots.iter().for_each(StatsSlot::zero);
    }

    /// Add a previous process's cumulative counters (control plane only).
    pub fn carry(&self, t: &Totals) {
        self.slots[0].carry(t);
    }

    /// Active connections summed over workers.
    pub fn active_conns(&self) -> u64 {
        let v = self
            .slots
            .iter()
            .fold(0u64, |acc, s| acc.wrapping_add(s.active.load(Relaxed)));
        u64::try_from(v as i64).unwrap_or(0)
    }

    /// Inactive connections summed over workers.
    pub fn inactive_conns(&self) -> u64 {
        let v = self
            .slots
            .iter()
            .fold(0u64, |acc, s| acc.wrapping_add(s.inactive.load(Relaxed)));
        u64::try_from(v as i64).unwrap_or(0)
    }

    /// The dest's (active, inactive) connections as worker `worker`'s scheduler sees them:
    /// its own slot exactly, the other workers' slots as it last read them, re-read on every
    /// [`SEEN_REFRESH`]th view. A scheduling decision therefore costs one local cache line per
    /// dest instead of one line per worker per dest (lines the other workers keep writing); the
    /// other workers' part is at most `SEEN_REFRESH - 1` of this worker's views old. With one
    /// worker the view is exact. Only `worker` may call this for its own index (it writes the
    /// cache in its own slot).
    pub fn conns_seen_by(&self, worker: usize) -> (u64, u64) {
        let me = slot_of(&self.slots, worker);
        let (own_a, own_i) = (me.active.load(Relaxed), me.inactive.load(Relaxed));
        if self.slots.len() == 1 {
            return (clamp(own_a), clamp(own_i));
        }
        let views = me.seen_views.load(Relaxed);
        me.seen_views.store(views.wrapping_add(1), Relaxed);
        let (others_a, others_i) = if views % SEEN_REFRESH == 0 {
            let mine = worker % self.slots.len();
            let (mut a, mut i) = (0u64, 0u64);
            let others = self.slots.iter().enumerate().filter(|(k, _)| *k != mine);
            for (_, s) in others {
                a = a.wrapping_add(s.active.load(Relaxed));
                i = i.wrapping_add(s.inactive.load(Relaxed));
            }
            me.seen_active.store(a, Relaxed);
            me.seen_inactive.store(i, Relaxed);
            (a, i)
        } else {
            (me.seen_active.load(Relaxed), me.seen_inactive.load(Relaxed))
        };
        (
            clamp(own_a.wrapping_add(others_a)),
            clamp(own_i.wrapping_add(others_i)),
        )
    }

    /// Persistence templates summed over workers.
    pub fn persistent_conns(&self) -> u64 {
        let v = self
            .slots
            .iter()
            .fold(0u64, |acc, s| acc.wrapping_add(s.persistent.load(Relaxed)));
        u64::try_from(v as i64).unwrap_or(0)
    }

    /// The OVERLOAD flag.
    #[inline]
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Relaxed)
    }

    pub(crate) fn set_overloaded(&self, on: bool) {
        self.overloaded.store(on, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_cache_line_aligned() {
        assert_eq!(core::mem::align_of::<StatsSlot>(), 64);
        assert_eq!(core::mem::size_of::<StatsSlot>() % 64, 0);
    }

    #[test]
    fn carried_counters_add_to_the_sums_until_zeroed() {
        let s = ServiceStats::new(2);
        s.slot(1).add_in(10);
        let old = Totals {
            conns: 5,
            inpkts: 100,
            outpkts: 90,
            inbytes: 6000,
            outbytes: 70000,
            ..Totals::default()
        };
        s.carry(&old);
        let t = s.sum();
        assert_eq!(
            (t.conns, t.inpkts, t.outpkts, t.inbytes, t.outbytes),
            (5, 101, 90, 6010, 70000)
        );
        s.zero();
        assert_eq!(s.sum(), Totals::default());
    }

    #[test]
    fn sums_over_workers_and_zero_uses_baseline() {
        let s = DestStats::new(3);
        s.slot(0).add_conn();
        s.slot(1).add_conn();
        s.slot(2).add_in(100);
        s.slot(2).add_out(40);
        s.slot(0).add_active(1);
        s.slot(1).add_inactive(2);
        let t = s.sum();
        assert_eq!(
            (t.conns, t.inpkts, t.inbytes, t.outpkts, t.outbytes),
            (2, 1, 100, 1, 40)
        );
        assert_eq!((t.active, t.inactive), (1, 2));
        s.zero();
        let t = s.sum();
        assert_eq!((t.conns, t.inpkts, t.inbytes), (0, 0, 0));
        // Gauges are not zeroed.
        assert_eq!((t.active, t.inactive), (1, 2));
        s.slot(1).add_conn();
        assert_eq!(s.sum().conns, 1);
    }

    #[test]
    fn gauges_go_down_and_never_read_negative() {
        let s = DestStats::new(2);
        s.slot(0).add_active(1);
        s.slot(0).add_active(-1);
        assert_eq!(s.active_conns(), 0);
        s.slot(1).add_inactive(-1);
        assert_eq!(s.inactive_conns(), 0);
        assert_eq!(s.sum().inactive, 0);
    }

    #[test]
    fn out_of_range_worker_does_not_panic() {
        let s = ServiceStats::new(0);
        s.slot(7).add_conn();
        assert_eq!(s.sum().conns, 1);
    }

    #[test]
    fn concurrent_zero_never_loses_or_invents_counts() {
        use std::sync::Arc;
        let s = Arc::new(ServiceStats::new(1));
        let w = Arc::clone(&s);
        let writer = std::thread::spawn(move || {
            for _ in 0..100_000 {
                w.slot(0).add_conn();
            }
        });
        for _ in 0..100 {
            s.zero();
            assert!(s.sum().conns <= 100_000);
        }
        writer.join().ok();
        s.zero();
        assert_eq!(s.sum().conns, 0);
    }

    #[test]
    fn a_workers_view_is_exact_for_itself_and_bounded_for_the_others() {
        let d = DestStats::new(2);
        // Worker 1 binds 5 active connections; worker 0's first view reads them.
        d.slot(1).add_active(5);
        assert_eq!(d.conns_seen_by(0), (5, 0));
        // More on worker 1: not seen by worker 0 until its next refresh...
        d.slot(1).add_active(3);
        d.slot(1).add_inactive(2);
        // ...while its own changes are seen at once.
        d.slot(0).add_active(1);
        let mut seen = Vec::new();
        for _ in 0..SEEN_REFRESH {
            seen.push(d.conns_seen_by(0));
        }
        assert_eq!(seen[0], (6, 0));
        assert_eq!(seen[(SEEN_REFRESH - 2) as usize], (6, 0));
        assert_eq!(seen[(SEEN_REFRESH - 1) as usize], (9, 2));
        assert_eq!((d.active_conns(), d.inactive_conns()), (9, 2));
        // One worker: always exact.
        let one = DestStats::new(1);
        one.slot(0).add_active(2);
        assert_eq!(one.conns_seen_by(0), (2, 0));
        one.slot(0).add_active(-1);
        assert_eq!(one.conns_seen_by(0), (1, 0));
    }
}
