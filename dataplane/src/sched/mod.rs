//! Schedulers: which dest gets a new connection. One file per scheduler behind one trait, as
//! IPVS's `ip_vs_<name>.c`; adding one is a new file plus one line in [`new`].
//!
//! Contract:
//! - Scheduler state is per worker per service: a worker creates one with [`new`] for each
//!   service it schedules for, so `schedule` takes `&mut self` with no synchronisation.
//! - `update(dests)` is called once after creation and whenever the service's dests changed
//!   (the worker compares [`crate::service::Service::version`]); `schedule(dests, ..)` is then
//!   called with that same slice until the next `update`. Implementations must still never
//!   panic if handed a different slice (indices are bounds-checked).
//! - `schedule` returns an index into `dests`, and only ever of a dest that is available:
//!   weight > 0 and not overloaded ([`crate::service::Dest::is_available`]). `None` means no dest
//!   can take the connection ("no destination available" in IPVS).
//! - `schedule` does not allocate; `update` may (control-plane rate). The one exception is the
//!   lblc/lblcr caches, which grow past their reserved size in `schedule` (amortised, bounded).
//! - Time is `SchedInput::now` (lblc/lblcr expiry); randomness is a per-state PRNG seeded from
//!   [`SchedParams::seed`] (twos), so every scheduler is deterministic under test.
//! - Dest order is the service's IPVS list order (newest first, see [`crate::service`]).

pub mod dh;
pub mod fo;
pub mod hash;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
#[cfg(test)]
mod vectors_v6;
pub mod wlc;
pub mod wrr;

use core::fmt;
use std::net::IpAddr;

use crate::time::Instant;

/// What a scheduler sees of a dest: the snapshot's dest itself (weight, thresholds, OVERLOAD flag
/// and the summed active/inactive counts through its shared stats).
pub type DestView = crate::service::Dest;

/// The packet facts a scheduler may key on (hashing schedulers: sh, dh, mh, lblc, lblcr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedInput {
    /// IP protocol number.
    pub proto: u8,
    /// The client's address: IPv4, or IPv6 for an IPv6 service.
    pub client: IpAddr,
    pub client_port: u16,
    /// The packet's destination (the VIP), of the client's family.
    pub vip: IpAddr,
    pub vport: u16,
    /// The packet's time (lblc/lblcr age their caches with it; time is never read).
    pub now: Instant,
    /// The scheduling worker: connection counts are read as it sees them
    /// ([`DestView::conns_seen_by`]), its own exactly, the other workers' within a bound.
    pub worker: usize,
}

/// Scheduler construction parameters that IPVS fixes at build time or in sysctls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedParams {
    /// `mh`'s Maglev table size M (IPVS `CONFIG_IP_VS_MH_TAB_INDEX`, default 4093).
    pub mh_table_size: MhTableSize,
    /// Seed of the per-scheduler PRNG (`twos`); give each worker its own for independent draws.
    pub seed: u64,
}

impl Default for SchedParams {
    fn default() -> SchedParams {
        SchedParams {
            mh_table_size: MhTableSize::DEFAULT,
            seed: 0x5eed_0f2c_0ffe_e000,
        }
    }
}

/// A Maglev table size IPVS can be built with: one of [`MH_PRIMES`] (so never invalid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MhTableSize(u32);

/// IPVS's `primes[]` for `CONFIG_IP_VS_MH_TAB_INDEX` 8..=17.
pub const MH_PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];

/// A table size that is not one of IPVS's Maglev primes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid mh table size {0}: must be one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071"
)]
pub struct InvalidMhTableSize(pub u32);

impl MhTableSize {
    /// IPVS's default (`CONFIG_IP_VS_MH_TAB_INDEX` = 12).
    pub const DEFAULT: MhTableSize = MhTableSize(4093);

    pub fn new(m: u32) -> Result<MhTableSize, InvalidMhTableSize> {
        if MH_PRIMES.contains(&m) {
            Ok(MhTableSize(m))
        } else {
            Err(InvalidMhTableSize(m))
        }
    }
    pub const fn get(self) -> u32 {
        self.0
    }
    /// `CONFIG_IP_VS_MH_TAB_INDEX` for this size (8..=17).
    pub fn tab_index(self) -> u32 {
        let pos = MH_PRIMES.iter().position(|p| *p == self.0).unwrap_or(4);
        8 + pos as u32
    }
}

/// One scheduling algorithm's per-worker, per-service state.
pub trait Scheduler: fmt::Debug {
    /// The IPVS name (`rr`, `wrr`, ...).
    fn name(&self) -> &'static str;
    /// The service's dests changed (added, removed, weight or threshold edited).
    fn update(&mut self, dests: &[DestView]);
    /// Pick a dest for a new connection: an index into `dests`, or `None`.
    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize>;
}

/// The 14 IPVS scheduler names (docs/ipvsadm-compat.md section 5.1).
pub const SCHEDULER_NAMES: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "fo", "ovf", "lblc", "lblcr", "dh", "sh", "mh", "sed", "nq", "twos",
];

/// Schedulers rvs implements today.
pub const IMPLEMENTED: [&str; 14] = SCHEDULER_NAMES;

/// ipvsadm's default scheduler (`-s` omitted).
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// A scheduler name rvs cannot create (IPVS answers ENOENT, "Scheduler or persistence engine not
/// found").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScheduler {
    pub name: String,
    /// One of the 14 IPVS names (just not implemented yet).
    pub known: bool,
}

impl fmt::Display for UnknownScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.known {
            write!(
                f,
                "scheduler '{}' is not implemented yet (available: {})",
                self.name,
                IMPLEMENTED.join(", ")
            )
        } else {
            write!(f, "unknown scheduler '{}'", self.name)
        }
    }
}

impl std::error::Error for UnknownScheduler {}

/// Whether `name` is an IPVS scheduler name.
pub fn is_known(name: &str) -> bool {
    SCHEDULER_NAMES.contains(&name)
}

/// Whether [`new`] can create `name`.
pub fn is_implemented(name: &str) -> bool {
    IMPLEMENTED.contains(&name)
}

/// Check that `name` can be created with `flags` (used by the service table before it accepts a
/// service).
pub fn check(name: &str, _flags: SchedFlags) -> Result<(), UnknownScheduler> {
    if is_implemented(name) {
        Ok(())
    } else {
        Err(UnknownScheduler {
            name: name.to_owned(),
            known: is_known(name),
        })
    }
}

/// Create a scheduler's state (one per worker per service) with the default [`SchedParams`].
pub fn new(name: &str, flags: SchedFlags) -> Result<Box<dyn Scheduler + Send>, UnknownScheduler> {
    new_with_params(name, flags, &SchedParams::default())
}

/// Create a scheduler's state with explicit parameters (Maglev table size, PRNG seed).
pub fn new_with_params(
    name: &str,
    flags: SchedFlags,
    params: &SchedParams,
) -> Result<Box<dyn Scheduler + Send>, UnknownScheduler> {
    check(name, flags)?;
    Ok(match name {
        "rr" => Box::new(rr::RoundRobin::new()),
        "wrr" => Box::new(wrr::WeightedRoundRobin::new()),
        "lc" => Box::new(lc::LeastConnection),
        "wlc" => Box::new(wlc::WeightedLeastConnection),
        "sed" => Box::new(sed::ShortestExpectedDelay),
        "nq" => Box::new(nq::NeverQueue),
        "fo" => Box::new(fo::WeightedFailover),
        "ovf" => Box::new(ovf::WeightedOverflow),
        "lblc" => Box::new(lblc::Lblc::new()),
        "lblcr" => Box::new(lblcr::Lblcr::new()),
        "dh" => Box::new(dh::DestinationHashing::new()),
        "sh" => Box::new(sh::SourceHashing::new(flags)),
        "mh" => Box::new(mh::MaglevHashing::new(flags, params.mh_table_size)),
        "twos" => Box::new(twos::TwoChoices::new(params.seed)),
        _ => {
            return Err(UnknownScheduler {
                name: name.to_owned(),
                known: true,
            });
        }
    })
}

/// IPVS `ip_vs_dest_conn_overhead`: `(activeconns << 8) + inactconns`, with the counts as
/// `worker` sees them.
#[inline]
pub(crate) fn conn_overhead(d: &DestView, worker: usize) -> u64 {
    let (active, inactive) = d.conns_seen_by(worker);
    active.saturating_mul(256).saturating_add(inactive)
}

/// Active connections of `d` as `worker` sees them.
#[inline]
pub(crate) fn active_seen(d: &DestView, worker: usize) -> u64 {
    d.conns_seen_by(worker).0
}

/// IPVS's division-free "dest is less loaded than least": `loh * w(dest) > doh * w(least)`
/// (widened so no product overflows).
#[inline]
pub(crate) fn less_loaded(doh: u64, dw: u32, loh: u64, lw: u32) -> bool {
    u128::from(loh) * u128::from(dw) > u128::from(doh) * u128::from(lw)
}

/// The WLC selection shared by wlc, sed, lblc and lblcr: the first available dest, then every
/// later non-overloaded dest that is strictly [`less_loaded`] replaces it (ties: first in list;
/// weight 0 never wins the cross-multiplication).
pub(crate) fn weighted_least(dests: &[DestView], oh: impl Fn(&DestView) -> u64) -> Option<usize> {
    let first = dests.iter().position(DestView::is_available)?;
    let (mut least, mut loh) = (first, oh(&dests[first]));
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.is_overloaded() {
            continue;
        }
        let doh = oh(d);
        if less_loaded(doh, d.weight(), loh, dests[least].weight()) {
            (least, loh) = (i, doh);
        }
    }
    Some(least)
}

/// IPVS scheduler flags (`-b`): three generic bits; `sh-*`/`mh-*` are names for bits 1 and 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SchedFlags(u8);

/// A `-b` flag list ipvsadm would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedFlagError {
    #[error("invalid scheduler flag '{0}'")]
    Invalid(String),
    #[error("incompatible scheduler flag '{0}'")]
    Incompatible(String),
}

impl SchedFlags {
    pub const NONE: SchedFlags = SchedFlags(0);
    /// `flag-1`, `sh-fallback`, `mh-fallback` (`IP_VS_SVC_F_SCHED1`).
    pub const SCHED1: SchedFlags = SchedFlags(1);
    /// `flag-2`, `sh-port`, `mh-port` (`IP_VS_SVC_F_SCHED2`).
    pub const SCHED2: SchedFlags = SchedFlags(2);
    /// `flag-3` (`IP_VS_SVC_F_SCHED3`).
    pub const SCHED3: SchedFlags = SchedFlags(4);

    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Flags from bits (unknown bits dropped).
    pub const fn from_bits(bits: u8) -> SchedFlags {
        SchedFlags(bits & 0b111)
    }
    pub const fn contains(self, other: SchedFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn union(self, other: SchedFlags) -> SchedFlags {
        SchedFlags(self.0 | other.0)
    }

    /// Parse ipvsadm's `-b a,b,c` for scheduler `scheduler`, with ipvsadm's errors.
    pub fn parse(scheduler: &str, list: &str) -> Result<SchedFlags, SchedFlagError> {
        let mut f = SchedFlags::NONE;
        for name in list.split(',') {
            let (bit, only) = match name {
                "flag-1" => (SchedFlags::SCHED1, None),
                "flag-2" => (SchedFlags::SCHED2, None),
                "flag-3" => (SchedFlags::SCHED3, None),
                "sh-fallback" => (SchedFlags::SCHED1, Some("sh")),
                "sh-port" => (SchedFlags::SCHED2, Some("sh")),
                "mh-fallback" => (SchedFlags::SCHED1, Some("mh")),
                "mh-port" => (SchedFlags::SCHED2, Some("mh")),
                _ => return Err(SchedFlagError::Invalid(name.to_owned())),
            };
            if only.is_some_and(|s| s != scheduler) {
                return Err(SchedFlagError::Incompatible(name.to_owned()));
            }
            f = f.union(bit);
        }
        Ok(f)
    }

    /// The names ipvsadm prints for these flags under `scheduler`.
    pub fn names(self, scheduler: &str) -> Vec<&'static str> {
        let names: [&'static str; 3] = match scheduler {
            "sh" => ["sh-fallback", "sh-port", "flag-3"],
            "mh" => ["mh-fallback", "mh-port", "flag-3"],
            _ => ["flag-1", "flag-2", "flag-3"],
        };
        (0..3)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| names[i])
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use super::{DestView, SchedInput};
    use crate::service::{DestConfig, DestId, DestStats, ForwardMethod};

    pub fn dests(weights: &[u32]) -> Vec<DestView> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut c = DestConfig::new(
                    Ipv4Addr::new(198, 18, 1, i as u8 + 1),
                    80,
                    ForwardMethod::Route,
                );
                c.weight = *w;
                DestView::new(DestId(i as u32 + 1), c, Arc::new(DestStats::new(1)))
            })
            .collect()
    }

    /// Dests with these weights, the ones flagged in `overloaded` pushed over a threshold of 1.
    pub fn dests_overloaded(weights: &[u32], overloaded: &[bool]) -> Vec<DestView> {
        dests(weights)
            .into_iter()
            .zip(overloaded.iter().chain(std::iter::repeat(&false)))
            .map(|(d, over)| {
                if !over {
                    return d;
                }
                let mut c = *d.config();
                c.upper_threshold = 1;
                let d = DestView::new(d.id(), c, d.stats().clone());
                d.bind_conn(0, false);
                d
            })
            .collect()
    }

    pub fn input() -> SchedInput {
        SchedInput {
            proto: 6,
            client: Ipv4Addr::new(198, 19, 0, 1).into(),
            client_port: 40_000,
            vip: Ipv4Addr::new(198, 18, 0, 10).into(),
            vport: 80,
            now: base_time(),
            worker: 0,
        }
    }

    /// A fixed instant for tests that do not care about time.
    pub fn base_time() -> crate::time::Instant {
        crate::time::Instant::from_secs(1_000)
    }

    /// Set a test dest's active/inactive counts (worker slot 0), without threshold checks.
    pub fn set_counts(d: &DestView, active: u64, inactive: u64) {
        let da = active as i64 - d.active_conns() as i64;
        let di = inactive as i64 - d.inactive_conns() as i64;
        d.move_conn(0, da, di);
    }

    /// Dests with these weights and (active, inactive) counts.
    pub fn dests_counts(weights: &[u32], counts: &[(u64, u64)]) -> Vec<DestView> {
        let d = dests(weights);
        for (x, (a, i)) in d.iter().zip(counts) {
            set_counts(x, *a, *i);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::DestStats;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    /// Two workers share two dests. What worker 1 binds, worker 0's least-connection schedulers
    /// see within the documented bound (`SEEN_REFRESH` decisions), its own binds at once.
    #[test]
    fn other_workers_counts_are_seen_within_the_bound() {
        use crate::service::stats::SEEN_REFRESH;
        use crate::service::{DestConfig, DestId, ForwardMethod};
        for name in ["lc", "wlc", "sed", "nq"] {
            let d: Vec<DestView> = (0..2u8)
                .map(|i| {
                    let c =
                        DestConfig::new(Ipv4Addr::new(198, 18, 1, i + 1), 80, ForwardMethod::Masq);
                    DestView::new(DestId(u32::from(i) + 1), c, Arc::new(DestStats::new(2)))
                })
                .collect();
            let mut s = new(name, SchedFlags::NONE).unwrap();
            let w0 = SchedInput {
                worker: 0,
                ..testutil::input()
            };
            // Both idle: the first dest.
            assert_eq!(s.schedule(&d, &w0), Some(0), "{name}");
            // Worker 1 loads dest 0 heavily.
            for _ in 0..10 {
                d[0].bind_conn(1, false);
            }
            let picks: Vec<_> = (0..SEEN_REFRESH)
                .map(|_| s.schedule(&d, &w0).unwrap())
                .collect();
            assert_eq!(picks.last(), Some(&1), "{name}: {picks:?}");
            // Worker 0's own connections on dest 1 count at once: 11 active there (own) against
            // 10 on dest 0 (seen) sends the next pick back to dest 0.
            for _ in 0..11 {
                d[1].bind_conn(0, false);
            }
            assert_eq!(s.schedule(&d, &w0), Some(0), "{name}");
        }
    }

    /// Every scheduler with flag variants: (name, flags, finds a dest whenever one is available).
    /// dh and sh/mh without fallback fail by design when the key's bucket dest is unavailable.
    fn variants() -> Vec<(&'static str, SchedFlags, bool)> {
        let mut v: Vec<_> = IMPLEMENTED
            .iter()
            .map(|n| (*n, SchedFlags::NONE, !matches!(*n, "dh" | "sh" | "mh")))
            .collect();
        for n in ["sh", "mh"] {
            v.push((n, SchedFlags::SCHED1, true));
            v.push((n, SchedFlags::SCHED2, false));
            v.push((n, SchedFlags::SCHED1.union(SchedFlags::SCHED2), true));
        }
        v
    }

    fn input_n(k: u32) -> SchedInput {
        let mut i = testutil::input();
        i.client = Ipv4Addr::from(0x0a00_0000 + k * 7919).into();
        i.client_port = 1024 + k as u16;
        i.vip = Ipv4Addr::from(0xc612_0000 + k % 5).into();
        i
    }

    proptest! {
        /// No scheduler ever picks a weight-0 or overloaded dest, and (all but the no-fallback
        /// hashing ones) each finds one whenever one exists, through updates as well, under load.
        #[test]
        fn never_picks_unavailable(
            ws in proptest::collection::vec(0u32..6, 0..8),
            over in proptest::collection::vec(any::<bool>(), 0..8),
            ws2 in proptest::collection::vec(0u32..6, 0..8),
            counts in proptest::collection::vec((0u64..6, 0u64..600), 8),
        ) {
            for (name, flags, finds) in variants() {
                let mut s = new(name, flags).unwrap();
                for weights in [&ws, &ws2] {
                    let d = testutil::dests_overloaded(weights, &over);
                    for (x, (a, i)) in d.iter().zip(&counts) {
                        if !x.is_overloaded() {
                            testutil::set_counts(x, *a, *i);
                        }
                    }
                    s.update(&d);
                    let any_available = d.iter().any(|x| x.is_available());
                    // ovf also refuses dests with A > W.
                    let ovf_ok = d.iter().any(|x| x.is_available() && x.active_conns() <= u64::from(x.weight()));
                    for k in 0..40 {
                        match s.schedule(&d, &input_n(k)) {
                            Some(i) => {
                                prop_assert!(i < d.len());
                                prop_assert!(d[i].weight() > 0, "{} picked weight 0", name);
                                prop_assert!(!d[i].is_overloaded(), "{} picked overloaded", name);
                            }
                            None if name == "ovf" => prop_assert!(!ovf_ok, "ovf found nothing"),
                            None => prop_assert!(!finds || !any_available, "{} {:?} found nothing", name, flags),
                        }
                    }
                }
            }
        }

        /// dh, sh and mh send a key to the same dest across rebuilds that do not touch that dest:
        /// other dests' overload state or thresholds changing, and (dh, mh) other dests being
        /// quiesced to weight 0 (dh's table ignores weights; mh keeps last_weight).
        #[test]
        fn consistent_hashing_survives_unrelated_rebuilds(
            n in 2usize..8,
            flip in proptest::collection::vec(any::<bool>(), 8),
            quiesce in proptest::collection::vec(any::<bool>(), 8),
            keys in proptest::collection::vec(any::<u32>(), 1..20),
        ) {
            for (name, flags) in [
                ("dh", SchedFlags::NONE),
                ("sh", SchedFlags::NONE),
                ("sh", SchedFlags::SCHED2),
                ("mh", SchedFlags::NONE),
                ("mh", SchedFlags::SCHED2),
            ] {
                let base = testutil::dests(&vec![2; n]);
                let mut s = new(name, flags).unwrap();
                s.update(&base);
                for key in &keys {
                    let mut inp = testutil::input();
                    inp.client = Ipv4Addr::from(*key).into();
                    inp.client_port = *key as u16;
                    inp.vip = Ipv4Addr::from(key.rotate_left(7)).into();
                    let Some(home) = s.schedule(&base, &inp) else { continue };
                    // Rebuild with every other dest possibly overloaded / quiesced.
                    let changed: Vec<DestView> = base
                        .iter()
                        .enumerate()
                        .map(|(i, d)| {
                            if i == home {
                                return d.clone();
                            }
                            let mut c = *d.config();
                            if quiesce[i] && name != "sh" {
                                c.weight = 0;
                            }
                            if flip[i] {
                                c.upper_threshold = 1;
                                let x = DestView::new(d.id(), c, Arc::new(DestStats::new(1)));
                                x.bind_conn(0, false);
                                return x;
                            }
                            DestView::new(d.id(), c, d.stats().clone())
                        })
                        .collect();
                    let mut s2 = new(name, flags).unwrap();
                    s2.update(&base);
                    s2.update(&changed);
                    prop_assert_eq!(s2.schedule(&changed, &inp), Some(home), "{} {:?}", name, flags);
                }
            }
        }
    }

    #[test]
    fn registry_creates_all_fourteen() {
        assert_eq!(SCHEDULER_NAMES.len(), 14);
        for n in SCHEDULER_NAMES {
            let s = new(n, SchedFlags::NONE).unwrap();
            assert_eq!(s.name(), n);
            assert!(is_implemented(n));
        }
        assert!(is_implemented(DEFAULT_SCHEDULER));
        let e = new("bogus", SchedFlags::NONE).unwrap_err();
        assert!(!e.known);
        assert_eq!(e.to_string(), "unknown scheduler 'bogus'");
        let p = SchedParams {
            mh_table_size: MhTableSize::new(251).unwrap(),
            seed: 1,
        };
        assert_eq!(
            new_with_params("mh", SchedFlags::SCHED1, &p)
                .unwrap()
                .name(),
            "mh"
        );
        assert_eq!(
            MhTableSize::new(1000).unwrap_err().to_string(),
            "invalid mh table size 1000: must be one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071"
        );
    }

    #[test]
    fn flag_parsing_matches_ipvsadm() {
        let f = SchedFlags::parse("sh", "sh-fallback,sh-port").unwrap();
        assert_eq!(f.bits(), 3);
        assert_eq!(f.names("sh"), ["sh-fallback", "sh-port"]);
        assert_eq!(
            SchedFlags::parse("rr", "sh-port"),
            Err(SchedFlagError::Incompatible("sh-port".into()))
        );
        assert_eq!(
            SchedFlags::parse("rr", "nope"),
            Err(SchedFlagError::Invalid("nope".into()))
        );
        assert_eq!(
            SchedFlags::parse("rr", "flag-3").unwrap().names("rr"),
            ["flag-3"]
        );
    }

    /// IPv6 dests whose folded address ([`hash::fold_v6`]) equals the IPv4 test dests' (the
    /// last word carries the IPv4 address, the others cancel out): IPVS hashes them to the
    /// same keys, so every hashing scheduler must build the same table from them.
    fn dests6_like_v4(weights: &[u32]) -> Vec<DestView> {
        testutil::dests(weights)
            .into_iter()
            .map(|d| {
                let v4 = u32::from(d.addr4().unwrap());
                let b = (0x2001_0db8u128 << 96) | (0x2001_0db8u128 << 64) | u128::from(v4);
                let a = std::net::Ipv6Addr::from_bits(b);
                assert_eq!(hash::fold_v6(a), v4);
                let mut c = *d.config();
                c.addr = a.into();
                DestView::new(d.id(), c, d.stats().clone())
            })
            .collect()
    }

    fn input6(client: &str, vip: &str) -> SchedInput {
        SchedInput {
            client: client.parse::<std::net::Ipv6Addr>().unwrap().into(),
            vip: vip.parse::<std::net::Ipv6Addr>().unwrap().into(),
            ..testutil::input()
        }
    }

    /// sh, dh, mh pick for an IPv6 packet the dest the prepared IPVS key functions name
    /// (checked against IPVS's vectors in their own modules), over the vector addresses.
    #[test]
    fn ipv6_picks_follow_the_ipvs_keys() {
        let d = testutil::dests(&[1, 2, 3, 1, 1]);
        let mut sh = sh::SourceHashing::new(SchedFlags::NONE);
        let mut dh = dh::DestinationHashing::new();
        let mut mh = mh::MaglevHashing::new(SchedFlags::NONE, MhTableSize::DEFAULT);
        sh.update(&d);
        dh.update(&d);
        mh.update(&d);
        for v in &vectors_v6::V6_VECTORS {
            let a: std::net::Ipv6Addr = v.addr.parse().unwrap();
            let inp = SchedInput {
                client: a.into(),
                vip: a.into(),
                ..testutil::input()
            };
            let b = sh::SourceHashing::hashkey6(a, 0, 0);
            if v.port == 0 {
                assert_eq!(b, v.sh, "{}", v.addr);
            }
            assert_eq!(sh.schedule(&d, &inp), sh.bucket(b), "sh {}", v.addr);
            assert_eq!(dh.schedule(&d, &inp), dh.bucket(v.dh), "dh {}", v.addr);
            let slot = (mh::hashkey6(a, 0, mh::MH_KEY1, 0) % 4093) as usize;
            assert_eq!(mh.slot_for(&inp), slot, "mh {}", v.addr);
            assert_eq!(mh.schedule(&d, &inp), mh.slot(slot), "mh {}", v.addr);
        }
    }

    /// mh's permutation of an IPv6 dest is IPVS's (`permutation6`): dests folding to the IPv4
    /// test dests' addresses give the very same table.
    #[test]
    fn mh_table_from_ipv6_dests() {
        let d4 = testutil::dests(&[1, 1, 2, 3]);
        let d6 = dests6_like_v4(&[1, 1, 2, 3]);
        let mut a = mh::MaglevHashing::new(SchedFlags::NONE, MhTableSize::new(251).unwrap());
        let mut b = mh::MaglevHashing::new(SchedFlags::NONE, MhTableSize::new(251).unwrap());
        a.update(&d4);
        b.update(&d6);
        for s in 0..a.table_size() {
            assert_eq!(a.slot(s), b.slot(s), "slot {s}");
        }
        // And the permutation helper agrees with the IPv4 key of the folded address.
        let IpAddr::V6(a6) = d6[2].addr() else {
            unreachable!()
        };
        let (offset, skip) = mh::permutation6(a6, d6[2].port(), 251);
        let k = u32::from(d4[2].addr4().unwrap());
        let key = |key| hash::hsiphash_u32(key, k.wrapping_add(u32::from(d4[2].port())));
        assert_eq!(offset, key(mh::MH_KEY1) % 251);
        assert_eq!(skip, key(mh::MH_KEY2) % 250 + 1);
    }

    /// lblc and lblcr key their caches by the whole destination address: an IPv6 VIP is an
    /// entry of its own, apart from any IPv4 one.
    #[test]
    fn lbl_caches_key_ipv6_destinations() {
        let d = testutil::dests(&[1, 1]);
        let mut lblc = lblc::Lblc::new();
        let mut lblcr = lblcr::Lblcr::new();
        lblc.update(&d);
        lblcr.update(&d);
        let v4 = testutil::input();
        let v6 = input6("2001:2::2", "2001:2::100");
        let v6b = input6("2001:2::3", "2001:2::101");
        let first = lblc.schedule(&d, &v4).unwrap();
        let a = lblc.schedule(&d, &v6).unwrap();
        assert_eq!(lblc.cached(), 2);
        // The same VIP keeps its dest, whoever the client.
        let again = input6("2001:2:ffff::9", "2001:2::100");
        assert_eq!(lblc.schedule(&d, &again), Some(a));
        lblc.schedule(&d, &v6b).unwrap();
        assert_eq!(lblc.cached(), 3);
        assert_eq!(lblc.schedule(&d, &v4), Some(first));
        let r = lblcr.schedule(&d, &v6).unwrap();
        assert_eq!(lblcr.set_of(v6.vip), vec![d[r].id()]);
        assert!(lblcr.set_of(v4.vip).is_empty());
        assert_eq!(
            lblc::lbl_bucket(v6.vip),
            hash::hash_32(hash::fold_v6("2001:2::100".parse().unwrap()), 10) as usize
        );
    }

    /// IPv6 clients of the sh fallback probe with the folded key, as IPVS.
    #[test]
    fn sh_fallback_probes_ipv6_clients() {
        let d = testutil::dests_overloaded(&[1, 1, 1, 1], &[true, false, false, false]);
        let mut sh = sh::SourceHashing::new(SchedFlags::SCHED1);
        sh.update(&d);
        for v in &vectors_v6::V6_VECTORS {
            let a: std::net::Ipv6Addr = v.addr.parse().unwrap();
            let inp = SchedInput {
                client: a.into(),
                ..testutil::input()
            };
            let first = sh::SourceHashing::hashkey6(a, 0, 0);
            let want = std::iter::once(first)
                .filter_map(|b| sh.bucket(b))
                .filter(|&i| d[i].is_available())
                .chain((0..256u32).filter_map(|o| {
                    let ro = (o + first as u32) % 256;
                    sh.bucket(sh::SourceHashing::hashkey6(a, 0, ro))
                }))
                .find(|&i| d[i].is_available());
            assert_eq!(sh.schedule(&d, &inp), want, "{}", v.addr);
        }
    }
}
