//! Locality-based least-connection, as `ip_vs_lblc.c`, for cache clusters: keyed on the packet's
//! destination address (the VIP here), a cache maps daddr -> dest.
//!
//! A pick looks the daddr up (refreshing its `lastuse`). The cached dest is reused if it is still
//! in the service, available, and not "overloaded" in lblc's sense ([`lbl_overloaded`]: `A > W`
//! while some dest of the service has `2*A < W`). Otherwise the WLC pick
//! (`weighted_least` in `sched`) is taken and cached for the daddr.
//!
//! Expiry, as IPVS's `ip_vs_lblc_check_expire` timer, run from `schedule` once `now` passes the
//! next 60 s tick ([`LblCacheClock`]): every 30th tick a full sweep drops entries unused for
//! `lblc_expiration` (24 h); otherwise, if the cache holds more than 16 × 1024 entries, entries
//! unused for 6 min are dropped, up to `min((entries - max) * 4/3, max / 2)`.
//!
//! Differences from IPVS, both for the scheduler contract:
//! - IPVS reuses a cached dest whose `IP_VS_DEST_F_OVERLOAD` flag is set (lblc only tests its own
//!   overload rule); rvs never returns an overloaded dest, so such an entry is rescheduled.
//! - The cache is bounded at [`LBL_HARD_CAP`] entries: when full (after an early 6-min sweep) the
//!   pick is returned but not cached, as IPVS does when it cannot allocate an entry. The map
//!   reserves [`LBL_RESERVE`] entries in `update`; growing past that allocates in `schedule`
//!   (amortised, rare).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::{DestView, SchedInput, Scheduler, active_seen, conn_overhead, weighted_least};
use crate::service::DestId;
use crate::time::Instant;

/// `CHECK_EXPIRE_INTERVAL`: the GC timer period.
pub const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
/// `ENTRY_TIMEOUT`: unused entries the over-size GC may drop.
pub const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// `DEFAULT_EXPIRATION` (`lblc_expiration`, `lblcr_expiration`): 24 h.
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);
/// `COUNT_FOR_FULL_EXPIRATION`: every 30th tick is a full sweep.
pub const COUNT_FOR_FULL_EXPIRATION: u32 = 30;
/// `tbl->max_size` = `IP_VS_LBLC_TAB_SIZE * 16`.
pub const LBL_MAX_SIZE: usize = 1024 * 16;
/// rvs's hard bound on cache entries.
pub const LBL_HARD_CAP: usize = 2 * LBL_MAX_SIZE;
/// Entries reserved up front.
pub const LBL_RESERVE: usize = 1024;
/// `IP_VS_LBLC_TAB_BITS` = `IP_VS_LBLCR_TAB_BITS`: IPVS's caches have 1024 buckets.
pub const LBL_TAB_BITS: u32 = 10;

/// IPVS's bucket for a daddr in the lblc and lblcr caches (`ip_vs_lblc_hashkey`,
/// `ip_vs_lblcr_hashkey`): `hash_32` of the address, an IPv6 one folded first
/// ([`super::hash::fold_v6`]). No pick depends on it: IPVS compares whole addresses within a
/// bucket, and rvs keys its cache map by the whole address of either family (`IpAddr`). It fixes which entries IPVS's over-size collection visits first, an order rvs
/// does not reproduce.
pub fn lbl_bucket(daddr: IpAddr) -> usize {
    let key = match daddr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => super::hash::fold_v6(a),
    };
    super::hash::hash_32(key, LBL_TAB_BITS) as usize
}

/// lblc/lblcr's `is_overloaded`: `A > W` and some dest of the service has `2*A < W`.
/// Counts as `worker` sees them.
pub fn lbl_overloaded(dest: &DestView, dests: &[DestView], worker: usize) -> bool {
    active_seen(dest, worker) > u64::from(dest.weight())
        && dests
            .iter()
            .any(|d| active_seen(d, worker).saturating_mul(2) < u64::from(d.weight()))
}

/// The GC timer of lblc/lblcr, driven by packet time.
#[derive(Debug, Clone)]
pub struct LblCacheClock {
    next_check: Option<Instant>,
    counter: u32,
    /// `lblc_expiration` / `lblcr_expiration`.
    pub expiration: Duration,
}

impl Default for LblCacheClock {
    fn default() -> LblCacheClock {
        LblCacheClock {
            next_check: None,
            counter: 1,
            expiration: DEFAULT_EXPIRATION,
        }
    }
}

impl LblCacheClock {
    /// Run the timer if a tick is due (the first call arms it).
    pub fn tick<V>(
        &mut self,
        now: Instant,
        map: &mut HashMap<IpAddr, V>,
        lastuse: impl Fn(&V) -> Instant,
    ) {
        let due = match self.next_check {
            None => {
                self.next_check = Some(now + CHECK_EXPIRE_INTERVAL);
                return;
            }
            Some(t) => t,
        };
        if now < due {
            return;
        }
        self.next_check = Some(now + CHECK_EXPIRE_INTERVAL);
        if self.counter % COUNT_FOR_FULL_EXPIRATION == 0 {
            let exp = self.expiration;
            map.retain(|_, v| lastuse(v) + exp > now);
            self.counter = 1;
            return;
        }
        if map.len() <= LBL_MAX_SIZE {
            self.counter += 1;
            return;
        }
        let goal = ((map.len() - LBL_MAX_SIZE) * 4 / 3).min(LBL_MAX_SIZE / 2);
        Self::drop_unused(now, map, &lastuse, goal);
    }

    /// Drop up to `goal` entries unused for [`ENTRY_TIMEOUT`].
    pub fn drop_unused<V>(
        now: Instant,
        map: &mut HashMap<IpAddr, V>,
        lastuse: &impl Fn(&V) -> Instant,
        goal: usize,
    ) {
        let mut left = goal;
        map.retain(|_, v| {
            if left == 0 || now < lastuse(v) + ENTRY_TIMEOUT {
                return true;
            }
            left -= 1;
            false
        });
    }

    /// Room for one more entry (an early 6-min sweep when at the hard cap).
    pub fn make_room<V>(
        now: Instant,
        map: &mut HashMap<IpAddr, V>,
        lastuse: impl Fn(&V) -> Instant,
    ) -> bool {
        if map.len() >= LBL_HARD_CAP {
            Self::drop_unused(now, map, &lastuse, LBL_MAX_SIZE / 2);
        }
        map.len() < LBL_HARD_CAP
    }
}

/// Map dest ids to their index in the current slice (rebuilt on update).
pub(crate) fn index_dests(index: &mut HashMap<DestId, usize>, dests: &[DestView]) {
    index.clear();
    index.extend(dests.iter().enumerate().map(|(i, d)| (d.id(), i)));
}

/// The index of dest `id` in `dests`, checked against the slice actually passed.
pub(crate) fn resolve(
    index: &HashMap<DestId, usize>,
    dests: &[DestView],
    id: DestId,
) -> Option<usize> {
    index
        .get(&id)
        .copied()
        .filter(|i| dests.get(*i).is_some_and(|d| d.id() == id))
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    dest: DestId,
    lastuse: Instant,
}

/// LBLC state: the daddr cache.
#[derive(Debug, Default)]
pub struct Lblc {
    cache: HashMap<IpAddr, Entry>,
    index: HashMap<DestId, usize>,
    clock: LblCacheClock,
}

impl Lblc {
    pub fn new() -> Lblc {
        Lblc::default()
    }

    /// Number of cached daddrs.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

impl Scheduler for Lblc {
    fn name(&self) -> &'static str {
        "lblc"
    }

    fn update(&mut self, dests: &[DestView]) {
        index_dests(&mut self.index, dests);
        if self.cache.capacity() < LBL_RESERVE {
            self.cache.reserve(LBL_RESERVE);
        }
    }

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        let now = input.now;
        self.clock.tick(now, &mut self.cache, |e| e.lastuse);
        if let Some(en) = self.cache.get_mut(&input.vip) {
            en.lastuse = now;
            if let Some(i) = resolve(&self.index, dests, en.dest) {
                let d = &dests[i];
                if d.is_available() && !lbl_overloaded(d, dests, input.worker) {
                    return Some(i);
                }
            }
        }
        let i = weighted_least(dests, |d| conn_overhead(d, input.worker))?;
        let entry = Entry {
            dest: dests[i].id(),
            lastuse: now,
        };
        if let Some(en) = self.cache.get_mut(&input.vip) {
            *en = entry;
        } else if LblCacheClock::make_room(now, &mut self.cache, |e| e.lastuse) {
            self.cache.insert(input.vip, entry);
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, dests_counts, input, set_counts};
    use std::net::Ipv4Addr;

    /// IPv6 buckets against `scripts/ipvs-v6-hash-vectors.py`; an IPv4 address is hashed as it is.
    #[test]
    fn buckets_match_the_vectors() {
        for v in &crate::sched::vectors_v6::V6_VECTORS {
            let a: std::net::Ipv6Addr = v.addr.parse().unwrap();
            assert_eq!(lbl_bucket(IpAddr::V6(a)), v.lbl, "{}", v.addr);
        }
        // 198.19.0.1 = 0xC6130001; * 0x61C88647 = 0x430D8647 (mod 2^32); top 10 bits 0x10C.
        assert_eq!(lbl_bucket(IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1))), 0x10c);
    }

    fn at(secs: u64) -> SchedInput {
        let mut i = input();
        i.now = crate::sched::testutil::base_time() + Duration::from_secs(secs);
        i
    }

    #[test]
    fn cache_reuse_ignores_load_until_overloaded() {
        let d = dests_counts(&[2, 2], &[(0, 0), (0, 0)]);
        let mut s = Lblc::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0)), Some(0)); // WLC: tie -> first, cached
        set_counts(&d[0], 2, 0); // WLC would now pick 1, the cache keeps 0 (A=2 <= W=2)
        assert_eq!(s.schedule(&d, &at(1)), Some(0));
        // Other daddrs are scheduled on their own.
        let mut other = at(1);
        other.vip = Ipv4Addr::new(198, 18, 0, 11).into();
        assert_eq!(s.schedule(&d, &other), Some(1));
        assert_eq!(s.cached(), 2);
        // A=3 > W=2 and dest 1 has 2*0 < 2: overloaded in lblc's sense, rescheduled (WLC: 1).
        set_counts(&d[0], 3, 0);
        assert_eq!(s.schedule(&d, &at(2)), Some(1));
        // ... and the replacement is now cached even once 0 is light again.
        set_counts(&d[0], 0, 0);
        set_counts(&d[1], 1, 0);
        assert_eq!(s.schedule(&d, &at(3)), Some(1));
    }

    #[test]
    fn over_weight_kept_when_no_dest_is_under_half() {
        // Dest 0 cached with A=3 > W=2, dest 1 at A=1, W=2: 2*1 < 2 false -> not overloaded.
        let d = dests_counts(&[2, 2], &[(0, 0), (0, 0)]);
        let mut s = Lblc::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0)), Some(0));
        set_counts(&d[0], 3, 0);
        set_counts(&d[1], 1, 0);
        assert_eq!(s.schedule(&d, &at(1)), Some(0));
    }

    #[test]
    fn unavailable_or_removed_cached_dest_is_replaced() {
        let d = dests(&[1, 1]);
        let mut s = Lblc::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0)), Some(0));
        let d2 = dests(&[0, 1]); // same ids, dest 0 quiesced
        s.update(&d2);
        assert_eq!(s.schedule(&d2, &at(1)), Some(1));
        let only: Vec<DestView> = d[1..].to_vec();
        s.update(&only);
        assert_eq!(s.schedule(&only, &at(2)), Some(0));
        assert_eq!(s.schedule(&[], &at(3)), None);
    }

    #[test]
    fn entries_expire_after_a_day_on_the_full_sweep() {
        let d = dests(&[1, 1]);
        let mut s = Lblc::new();
        s.update(&d);
        s.schedule(&d, &at(0)); // arms the clock, caches the VIP
        let mut other = at(0);
        other.vip = Ipv4Addr::new(198, 18, 0, 11).into();
        assert_eq!(s.cached(), 1);
        // Ticks every minute; the 30th tick (30 min) is a full sweep: nothing is a day old.
        for m in 1..=30 {
            other.now = at(m * 60).now;
            s.schedule(&d, &other);
        }
        assert_eq!(s.cached(), 2);
        // A day and a bit later, a full sweep (every 30 ticks) drops the first VIP; the other
        // daddr, used all along, stays.
        let mut t = 31 * 60;
        while t < 25 * 3600 + 31 * 60 {
            other.now = at(t).now;
            s.schedule(&d, &other);
            t += 60;
        }
        assert_eq!(s.cached(), 1);
    }
}
