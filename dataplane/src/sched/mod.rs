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
//! - Neither method allocates in `schedule`; `update` may allocate (control-plane rate).
//! - Dest order is the service's IPVS list order (newest first, see [`crate::service`]).

pub mod rr;
pub mod wrr;

use core::fmt;
use std::net::Ipv4Addr;

/// What a scheduler sees of a dest: the snapshot's dest itself (weight, thresholds, OVERLOAD flag
/// and the summed active/inactive counts through its shared stats).
pub type DestView = crate::service::Dest;

/// The packet facts a scheduler may key on (hashing schedulers: sh, dh, mh, lblc, lblcr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedInput {
    /// IP protocol number.
    pub proto: u8,
    pub client: Ipv4Addr,
    pub client_port: u16,
    pub vip: Ipv4Addr,
    pub vport: u16,
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

/// The 14 IPVS scheduler names (reference/ipvs.md section 1.1).
pub const SCHEDULER_NAMES: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "fo", "ovf", "lblc", "lblcr", "dh", "sh", "mh", "sed", "nq", "twos",
];

/// Schedulers rvs implements today.
pub const IMPLEMENTED: [&str; 2] = ["rr", "wrr"];

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

/// Create a scheduler's state (one per worker per service).
pub fn new(name: &str, flags: SchedFlags) -> Result<Box<dyn Scheduler + Send>, UnknownScheduler> {
    check(name, flags)?;
    Ok(match name {
        "rr" => Box::new(rr::RoundRobin::new()),
        "wrr" => Box::new(wrr::WeightedRoundRobin::new()),
        _ => {
            return Err(UnknownScheduler {
                name: name.to_owned(),
                known: true,
            });
        }
    })
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
            client: Ipv4Addr::new(198, 19, 0, 1),
            client_port: 40_000,
            vip: Ipv4Addr::new(198, 18, 0, 10),
            vport: 80,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No scheduler ever picks a weight-0 or overloaded dest, and each finds one whenever one
        /// exists, through updates as well.
        #[test]
        fn never_picks_unavailable(
            ws in proptest::collection::vec(0u32..6, 0..8),
            over in proptest::collection::vec(any::<bool>(), 0..8),
            ws2 in proptest::collection::vec(0u32..6, 0..8),
        ) {
            for name in IMPLEMENTED {
                let mut s = new(name, SchedFlags::NONE).unwrap();
                for weights in [&ws, &ws2] {
                    let d = testutil::dests_overloaded(weights, &over);
                    s.update(&d);
                    let any_available = d.iter().any(|x| x.is_available());
                    for _ in 0..40 {
                        match s.schedule(&d, &testutil::input()) {
                            Some(i) => {
                                prop_assert!(i < d.len());
                                prop_assert!(d[i].weight() > 0, "{} picked weight 0", name);
                                prop_assert!(!d[i].is_overloaded(), "{} picked overloaded", name);
                            }
                            None => prop_assert!(!any_available, "{} found nothing", name),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn registry_knows_fourteen_and_refuses_unimplemented() {
        assert_eq!(SCHEDULER_NAMES.len(), 14);
        assert!(new("rr", SchedFlags::NONE).is_ok());
        assert!(new("wrr", SchedFlags::NONE).is_ok());
        let e = new("lc", SchedFlags::NONE).unwrap_err();
        assert!(e.known);
        assert!(e.to_string().contains("not implemented"));
        let e = new("bogus", SchedFlags::NONE).unwrap_err();
        assert!(!e.known);
        for n in SCHEDULER_NAMES {
            assert_eq!(new(n, SchedFlags::NONE).is_ok(), is_implemented(n));
        }
        assert_eq!(new("wrr", SchedFlags::NONE).unwrap().name(), "wrr");
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
}
