//! Never queue, as `ip_vs_nq.c`: the first available dest with no active connection wins at
//! once; otherwise SED: minimise `(A + 1) / W` by `loh * W(dest) > doh * W(least)`, ties to the
//! first in the list. Weight-0 and overloaded dests are skipped.

use super::sed::sed_overhead;
use super::{DestView, SchedInput, Scheduler, active_seen, less_loaded};

/// Never queue (stateless).
#[derive(Debug, Default, Clone, Copy)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn name(&self) -> &'static str {
        "nq"
    }

    fn update(&mut self, _dests: &[DestView]) {}

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            if active_seen(d, input.worker) == 0 {
                return Some(i); // idle: no queueing at all
            }
            let doh = sed_overhead(d, input.worker);
            if least.is_none_or(|(l, loh)| less_loaded(doh, d.weight(), loh, dests[l].weight())) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests_counts, dests_overloaded, input, set_counts};

    fn pick(d: &[DestView]) -> Option<usize> {
        NeverQueue.schedule(d, &input())
    }

    #[test]
    fn first_idle_wins_even_if_sed_disagrees() {
        // SED would take dest 0 ((1+1)/10 = 0.2 < (0+1)/1); NQ takes the idle dest 1.
        let d = dests_counts(&[10, 1, 1], &[(1, 0), (0, 50), (0, 0)]);
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn no_idle_falls_back_to_sed_with_ties_first() {
        // (A+1)/W: 3/2 = 1.5, 2/1 = 2, 6/4 = 1.5 (tie with 0: 0 stays)
        let d = dests_counts(&[2, 1, 4], &[(2, 0), (1, 0), (5, 0)]);
        assert_eq!(pick(&d), Some(0));
        set_counts(&d[2], 4, 0); // 5/4 = 1.25
        assert_eq!(pick(&d), Some(2));
    }

    #[test]
    fn idle_but_unavailable_is_skipped() {
        let d = dests_overloaded(&[1, 0, 1], &[true, false, false]);
        set_counts(&d[0], 0, 0); // overloaded stays flagged though idle
        set_counts(&d[2], 3, 0);
        assert_eq!(pick(&d), Some(2)); // dest 1 is idle but weight 0
    }
}
