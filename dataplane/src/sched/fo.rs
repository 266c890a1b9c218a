//! Weighted failover, as `ip_vs_fo.c`: the non-overloaded dest with the highest weight (strictly
//! greater than the best so far, starting from 0, so weight 0 never wins and ties go to the first
//! in the list). Connection counts play no part.

use super::{DestView, SchedInput, Scheduler};

/// Weighted failover (stateless).
#[derive(Debug, Default, Clone, Copy)]
pub struct WeightedFailover;

impl Scheduler for WeightedFailover {
    fn name(&self) -> &'static str {
        "fo"
    }

    fn update(&mut self, _dests: &[DestView]) {}

    fn schedule(&mut self, dests: &[DestView], _input: &SchedInput) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut hw = 0;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_overloaded() && d.weight() > hw {
                best = Some(i);
                hw = d.weight();
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, dests_counts, dests_overloaded, input};

    fn pick(d: &[DestView]) -> Option<usize> {
        WeightedFailover.schedule(d, &input())
    }

    #[test]
    fn highest_weight_ties_first_load_ignored() {
        let d = dests_counts(&[2, 5, 5, 1], &[(0, 0), (900, 900), (0, 0), (0, 0)]);
        assert_eq!(pick(&d), Some(1));
        assert_eq!(pick(&dests(&[0, 0])), None);
    }

    #[test]
    fn fails_over_when_overloaded() {
        let d = dests_overloaded(&[2, 5, 3], &[false, true, false]);
        assert_eq!(pick(&d), Some(2));
        let d = dests_overloaded(&[2, 5, 3], &[true, true, true]);
        assert_eq!(pick(&d), None);
    }
}
