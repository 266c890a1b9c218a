//! Locality-based least-connection with replication, as `ip_vs_lblcr.c`: keyed on the packet's
//! destination address (the VIP here), a cache maps daddr -> a *set* of dests (newest first).
//!
//! A pick looks the daddr up (refreshing `lastuse`) and takes the set's weighted-least-loaded
//! available member (`ip_vs_dest_set_min`: first available member, then later non-overloaded
//! members strictly less loaded by `loh * W(dest) > doh * W(least)`). If the set has more than one
//! member and was not modified for `lblcr_expiration` (24 h), its most loaded member
//! (`ip_vs_dest_set_max`) is removed. If there was no usable member, or it is overloaded in lblc's
//! sense ([`super::lblc::lbl_overloaded`]), the WLC pick is taken and added to the set. Without an
//! entry the WLC pick starts a new set. Inserting or removing a member updates the set's
//! `lastmod`.
//!
//! Expiry of whole entries and the cache bound are lblc's ([`super::lblc::LblCacheClock`]), and so
//! is IPVS's bucket of a daddr, IPv4 or IPv6 ([`super::lblc::lbl_bucket`]).
//! A set holds at most [`SET_CAP`] members (a further insert is skipped, as IPVS does when it
//! cannot allocate a member); members whose dest left the service are dropped on `update`.

use std::collections::HashMap;
use std::net::IpAddr;

use super::lblc::{LBL_RESERVE, LblCacheClock, index_dests, lbl_overloaded, resolve};
use super::{DestView, SchedInput, Scheduler, conn_overhead, less_loaded, weighted_least};
use crate::service::DestId;
use crate::time::Instant;

/// Most members one set holds.
pub const SET_CAP: usize = 8;

/// `struct ip_vs_dest_set`: members newest first, fixed capacity (no allocation per insert).
#[derive(Debug, Clone, Copy)]
struct DestSet {
    ids: [DestId; SET_CAP],
    len: usize,
    lastmod: Instant,
}

impl DestSet {
    fn members(&self) -> &[DestId] {
        &self.ids[..self.len]
    }

    /// `ip_vs_dest_set_insert(.., check = true)`: at the head, unless already a member.
    fn insert(&mut self, id: DestId, now: Instant) {
        if self.members().contains(&id) || self.len == SET_CAP {
            return;
        }
        self.ids.copy_within(0..self.len, 1);
        self.ids[0] = id;
        self.len += 1;
        self.lastmod = now;
    }

    fn erase(&mut self, id: DestId, now: Instant) {
        if let Some(p) = self.members().iter().position(|x| *x == id) {
            self.ids.copy_within(p + 1..self.len, p);
            self.len -= 1;
            self.lastmod = now;
        }
    }

    /// `ip_vs_dest_set_min`: index into `dests` of the least loaded usable member.
    fn min(
        &self,
        index: &HashMap<DestId, usize>,
        dests: &[DestView],
        worker: usize,
    ) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for id in self.members() {
            let Some(i) = resolve(index, dests, *id) else {
                continue; // not in the service: not IP_VS_DEST_F_AVAILABLE
            };
            let d = &dests[i];
            match least {
                None if d.is_available() => least = Some((i, conn_overhead(d, worker))),
                None => {}
                Some((l, loh)) => {
                    let doh = conn_overhead(d, worker);
                    if !d.is_overloaded() && less_loaded(doh, d.weight(), loh, dests[l].weight()) {
                        least = Some((i, doh));
                    }
                }
            }
        }
        least.map(|(i, _)| i)
    }

    /// `ip_vs_dest_set_max`: the most loaded member with weight > 0.
    fn max(
        &self,
        index: &HashMap<DestId, usize>,
        dests: &[DestView],
        worker: usize,
    ) -> Option<DestId> {
        let mut most: Option<(usize, u64)> = None;
        for id in self.members() {
            let Some(i) = resolve(index, dests, *id) else {
                continue;
            };
            let d = &dests[i];
            let doh = conn_overhead(d, worker);
            match most {
                None if d.weight() > 0 => most = Some((i, doh)),
                None => {}
                Some((m, moh)) => {
                    // moh/mw < doh/dw  <=>  moh*dw < doh*mw
                    let mw = dests[m].weight();
                    if d.weight() > 0
                        && u128::from(moh) * u128::from(d.weight())
                            < u128::from(doh) * u128::from(mw)
                    {
                        most = Some((i, doh));
                    }
                }
            }
        }
        most.map(|(i, _)| dests[i].id())
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    set: DestSet,
    lastuse: Instant,
}

/// LBLCR state: the daddr -> dest set cache.
#[derive(Debug, Default)]
pub struct Lblcr {
    cache: HashMap<IpAddr, Entry>,
    index: HashMap<DestId, usize>,
    clock: LblCacheClock,
}

impl Lblcr {
    pub fn new() -> Lblcr {
        Lblcr::default()
    }

    /// The cached set for `daddr`, newest first (tests, diagnostics).
    pub fn set_of(&self, daddr: IpAddr) -> Vec<DestId> {
        self.cache
            .get(&daddr)
            .map(|e| e.set.members().to_vec())
            .unwrap_or_default()
    }
}

impl Scheduler for Lblcr {
    fn name(&self) -> &'static str {
        "lblcr"
    }

    fn update(&mut self, dests: &[DestView]) {
        index_dests(&mut self.index, dests);
        if self.cache.capacity() < LBL_RESERVE {
            self.cache.reserve(LBL_RESERVE);
        }
        let index = &self.index;
        for e in self.cache.values_mut() {
            let s = &mut e.set;
            let mut kept = 0;
            for k in 0..s.len {
                if index.contains_key(&s.ids[k]) {
                    s.ids[kept] = s.ids[k];
                    kept += 1;
                }
            }
            s.len = kept;
        }
    }

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        let now = input.now;
        let expiration = self.clock.expiration;
        self.clock.tick(now, &mut self.cache, |e| e.lastuse);
        if let Some(en) = self.cache.get_mut(&input.vip) {
            en.lastuse = now;
            let dest = en.set.min(&self.index, dests, input.worker);
            if en.set.len > 1 && now > en.set.lastmod + expiration {
                if let Some(m) = en.set.max(&self.index, dests, input.worker) {
                    en.set.erase(m, now);
                }
            }
            if let Some(i) = dest.filter(|i| !lbl_overloaded(&dests[*i], dests, input.worker)) {
                return Some(i);
            }
            let i = weighted_least(dests, |d| conn_overhead(d, input.worker))?;
            en.set.insert(dests[i].id(), now);
            return Some(i);
        }
        let i = weighted_least(dests, |d| conn_overhead(d, input.worker))?;
        if LblCacheClock::make_room(now, &mut self.cache, |e| e.lastuse) {
            let mut set = DestSet {
                ids: [DestId(0); SET_CAP],
                len: 0,
                lastmod: now,
            };
            set.insert(dests[i].id(), now);
            self.cache.insert(input.vip, Entry { set, lastuse: now });
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::lblc::DEFAULT_EXPIRATION;
    use crate::sched::testutil::{base_time, dests, dests_counts, input, set_counts};
    use std::time::Duration;

    fn at(secs: u64) -> SchedInput {
        let mut i = input();
        i.now = base_time() + Duration::from_secs(secs);
        i
    }

    #[test]
    fn set_grows_on_overload_and_uses_its_least_loaded_member() {
        let d = dests_counts(&[2, 2, 2], &[]);
        let ids: Vec<DestId> = d.iter().map(DestView::id).collect();
        let vip = input().vip;
        let mut s = Lblcr::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0)), Some(0));
        assert_eq!(s.set_of(vip), [ids[0]]);
        // Reused while not overloaded, whatever WLC would say.
        set_counts(&d[0], 2, 0);
        assert_eq!(s.schedule(&d, &at(1)), Some(0));
        // A=3 > W=2 and dest 1 has 2*0 < 2: WLC pick (1) joins the set, newest first.
        set_counts(&d[0], 3, 0);
        assert_eq!(s.schedule(&d, &at(2)), Some(1));
        assert_eq!(s.set_of(vip), [ids[1], ids[0]]);
        // Now the set's least loaded member is used: dest 1 (A=1) over dest 0 (A=3); dest 2,
        // idle but not in the set, is not considered.
        set_counts(&d[1], 1, 0);
        assert_eq!(s.schedule(&d, &at(3)), Some(1));
        // Equal load per weight: the newest member (head of the set) wins the tie.
        set_counts(&d[0], 1, 0);
        assert_eq!(s.schedule(&d, &at(4)), Some(1));
    }

    #[test]
    fn most_loaded_member_removed_after_expiration() {
        let d = dests_counts(&[2, 2], &[]);
        let ids: Vec<DestId> = d.iter().map(DestView::id).collect();
        let vip = input().vip;
        let mut s = Lblcr::new();
        s.update(&d);
        s.schedule(&d, &at(0));
        set_counts(&d[0], 3, 0);
        assert_eq!(s.schedule(&d, &at(10)), Some(1)); // set {1, 0}, lastmod 10
        set_counts(&d[1], 1, 0);
        // Not yet expired: both stay.
        let exp = DEFAULT_EXPIRATION.as_secs();
        assert_eq!(s.schedule(&d, &at(10 + exp)), Some(1));
        assert_eq!(s.set_of(vip).len(), 2);
        // Past lastmod + expiration: the most loaded (dest 0, 768/2) is dropped.
        assert_eq!(s.schedule(&d, &at(11 + exp)), Some(1));
        assert_eq!(s.set_of(vip), [ids[1]]);
    }

    #[test]
    fn removed_members_are_dropped_on_update() {
        let d = dests(&[1, 1]);
        let vip = input().vip;
        let mut s = Lblcr::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0)), Some(0));
        let rest = d[1..].to_vec();
        s.update(&rest);
        assert!(s.set_of(vip).is_empty());
        assert_eq!(s.schedule(&rest, &at(1)), Some(0));
        assert_eq!(s.set_of(vip), [rest[0].id()]);
        assert_eq!(s.schedule(&[], &at(2)), None);
    }
}
