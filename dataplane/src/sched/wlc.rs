//! Weighted least-connection, as `ip_vs_wlc.c` (ipvsadm's default scheduler): minimises
//! `(256*A + I) / W`, compared without division as `loh * W(dest) > doh * W(least)`.
//!
//! The first available dest (weight > 0, not overloaded) is the initial `least`; every later
//! non-overloaded dest replaces it only if strictly less loaded, so ties go to the first in the
//! list and weight-0 dests can never win.

use super::{DestView, SchedInput, Scheduler, conn_overhead, weighted_least};

/// Weighted least-connection (stateless).
#[derive(Debug, Default, Clone, Copy)]
pub struct WeightedLeastConnection;

impl Scheduler for WeightedLeastConnection {
    fn name(&self) -> &'static str {
        "wlc"
    }

    fn update(&mut self, _dests: &[DestView]) {}

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        weighted_least(dests, |d| conn_overhead(d, input.worker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests_counts, dests_overloaded, input, set_counts};

    fn pick(d: &[DestView]) -> Option<usize> {
        WeightedLeastConnection.schedule(d, &input())
    }

    #[test]
    fn all_idle_is_first() {
        let d = dests_counts(&[1, 5, 3], &[]);
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn overhead_per_weight_with_ties_to_first() {
        // oh/w: 256/1 = 256, 512/2 = 256 (tie: keep 0), 700/3 = 233.3 (less: 2)
        let d = dests_counts(&[1, 2, 3], &[(1, 0), (2, 0), (2, 188)]);
        assert_eq!(pick(&d), Some(2));
        // 2: 768/3 = 256 -> tie with 0, first wins.
        set_counts(&d[2], 3, 0);
        assert_eq!(pick(&d), Some(0));
        // 1: 511/2 < 256
        set_counts(&d[1], 1, 255);
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn inactive_counts_one_256th() {
        // 0: A=0,I=255 -> 255; 1: A=1,I=0 -> 256: 0 wins by one.
        let d = dests_counts(&[1, 1], &[(0, 255), (1, 0)]);
        assert_eq!(pick(&d), Some(0));
        set_counts(&d[0], 0, 257);
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn skips_weight_zero_and_overloaded() {
        // Weight-0 dest 0 idle, overloaded dest 1: the loaded dest 2 is the only choice.
        let d = dests_overloaded(&[0, 4, 1], &[false, true, false]);
        set_counts(&d[2], 50, 50);
        assert_eq!(pick(&d), Some(2));
        // A weight-0 dest after the first available never wins either.
        let d = dests_counts(&[1, 0], &[(9, 9), (0, 0)]);
        assert_eq!(pick(&d), Some(0));
        let d = dests_overloaded(&[1, 0], &[true, false]);
        assert_eq!(pick(&d), None);
    }
}
