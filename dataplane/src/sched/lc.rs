//! Least-connection, as `ip_vs_lc.c`: the available dest with the smallest overhead
//! `256*A + I`. Weight is ignored except that weight 0 excludes the dest; overloaded dests are
//! skipped; ties go to the first in the list (a later dest must be strictly less loaded).

use super::{DestView, SchedInput, Scheduler, conn_overhead};

/// Least-connection (stateless).
#[derive(Debug, Default, Clone, Copy)]
pub struct LeastConnection;

impl Scheduler for LeastConnection {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn update(&mut self, _dests: &[DestView]) {}

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            let doh = conn_overhead(d, input.worker);
            if least.is_none_or(|(_, loh)| doh < loh) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, dests_counts, input, set_counts};

    #[test]
    fn smallest_overhead_weight_ignored() {
        // overheads: 256*1+0=256, 0*256+300=300, 256*1+0=256 (weight 100 does not matter)
        let d = dests_counts(&[1, 1, 100], &[(1, 0), (0, 300), (1, 0)]);
        assert_eq!(LeastConnection.schedule(&d, &input()), Some(0)); // tie 0/2: first
        set_counts(&d[0], 1, 1); // 257
        assert_eq!(LeastConnection.schedule(&d, &input()), Some(2));
        set_counts(&d[1], 0, 255); // 255 < 256
        assert_eq!(LeastConnection.schedule(&d, &input()), Some(1));
    }

    #[test]
    fn weight_zero_and_empty() {
        let d = dests_counts(&[0, 1], &[(0, 0), (5, 5)]);
        assert_eq!(LeastConnection.schedule(&d, &input()), Some(1));
        assert_eq!(LeastConnection.schedule(&dests(&[0]), &input()), None);
        assert_eq!(LeastConnection.schedule(&[], &input()), None);
    }
}
