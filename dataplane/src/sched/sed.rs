//! Shortest expected delay, as `ip_vs_sed.c`: minimises `(A + 1) / W` (active connections
//! only), with WLC's scan: the first available dest, then strictly less loaded later
//! non-overloaded dests by `loh * W(dest) > doh * W(least)`; ties go to the first.

use super::{DestView, SchedInput, Scheduler, active_seen, weighted_least};

/// `ip_vs_sed_dest_overhead`: `activeconns + 1` (as `worker` sees them).
pub(crate) fn sed_overhead(d: &DestView, worker: usize) -> u64 {
    active_seen(d, worker).saturating_add(1)
}

/// Shortest expected delay (stateless).
#[derive(Debug, Default, Clone, Copy)]
pub struct ShortestExpectedDelay;

impl Scheduler for ShortestExpectedDelay {
    fn name(&self) -> &'static str {
        "sed"
    }

    fn update(&mut self, _dests: &[DestView]) {}

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        weighted_least(dests, |d| sed_overhead(d, input.worker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests_counts, input, set_counts};

    fn pick(d: &[DestView]) -> Option<usize> {
        ShortestExpectedDelay.schedule(d, &input())
    }

    #[test]
    fn expected_delay_ignores_inactive() {
        // (A+1)/W: 1/1 = 1, 1/1 = 1 (tie -> first) even with 1000 inactive on dest 0.
        let d = dests_counts(&[1, 1], &[(0, 1000), (0, 0)]);
        assert_eq!(pick(&d), Some(0));
        // (1+1)/1 = 2 vs (0+1)/1 = 1
        set_counts(&d[0], 1, 0);
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn idle_light_dest_loses_to_heavy_one_with_spare_capacity() {
        // 0: (0+1)/1 = 1; 1: (1+1)/3 = 0.67 -> the busy heavy dest wins (SED's point).
        let d = dests_counts(&[1, 3], &[(0, 0), (1, 0)]);
        assert_eq!(pick(&d), Some(1));
        // 1: (2+1)/3 = 1: tie, first wins.
        set_counts(&d[1], 2, 0);
        assert_eq!(pick(&d), Some(0));
    }
}
