//! Weighted overflow, as `ip_vs_ovf.c`: among dests with `A <= W`, W > 0 and not overloaded, the
//! one with the highest weight (strictly greater replaces, so ties go to the first in the list).
//! Active connections only ("not suitable for UDP", which has none).

use super::{DestView, SchedInput, Scheduler};

/// Weighted overflow (stateless).
#[derive(Debug, Default, Clone, Copy)]
pub struct WeightedOverflow;

impl Scheduler for WeightedOverflow {
    fn name(&self) -> &'static str {
        "ovf"
    }

    fn update(&mut self, _dests: &[DestView]) {}

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, d) in dests.iter().enumerate() {
            let w = d.weight();
            if d.is_overloaded() || super::active_seen(d, input.worker) > u64::from(w) || w == 0 {
                continue;
            }
            if best.is_none_or(|b| w > dests[b].weight()) {
                best = Some(i);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests_counts, dests_overloaded, input, set_counts};

    fn pick(d: &[DestView]) -> Option<usize> {
        WeightedOverflow.schedule(d, &input())
    }

    #[test]
    fn fills_highest_weight_then_overflows() {
        let d = dests_counts(&[2, 3, 3], &[]);
        assert_eq!(pick(&d), Some(1)); // 3 ties 3: first
        set_counts(&d[1], 3, 100); // A == W still fits (inactive ignored)
        assert_eq!(pick(&d), Some(1));
        set_counts(&d[1], 4, 0); // A > W: overflow to the next highest
        assert_eq!(pick(&d), Some(2));
        set_counts(&d[2], 4, 0);
        assert_eq!(pick(&d), Some(0));
        set_counts(&d[0], 3, 0);
        assert_eq!(pick(&d), None); // everyone over their weight
    }

    #[test]
    fn skips_overloaded_and_weight_zero() {
        let d = dests_overloaded(&[0, 9, 1], &[false, true, false]);
        assert_eq!(pick(&d), Some(2));
    }
}
