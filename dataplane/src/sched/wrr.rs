//! Weighted round-robin, as `ip_vs_wrr.c` (interleaved WRR).
//!
//! State `{cl, cw, mw, di}`: `di` = gcd of the positive weights (1 if none), `mw` = max weight −
//! (di − 1), `cw` the current weight, `cl` the last pick (or the list head). A pick continues after
//! `cl` and takes the first dest with weight ≥ cw that is not overloaded; at the end of the list
//! `cw -= di`, and when `cw <= 0` it wraps to `mw`. With weights 3,1 this gives A A A B.
//!
//! `update` is IPVS's `ip_vs_wrr_dest_changed`: cursor back to the head, di and mw recomputed, and
//! `cw` reset to `mw` if it was 0 or above the new `mw`, else rounded to `(cw / di) * di + 1`.
//!
//! Termination when every dest is overloaded follows the kernel's `last_pass`/`restarted`/`stop`
//! logic exactly. Cost: like IPVS, a pick may take up to `mw / di` passes when only low-weight
//! dests are available (bounded: weights are at most 65535).

use super::{DestView, SchedInput, Scheduler};

/// Weighted round-robin state.
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// Last pick; `None` = list head.
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
}

impl WeightedRoundRobin {
    pub fn new() -> WeightedRoundRobin {
        WeightedRoundRobin {
            di: 1,
            ..WeightedRoundRobin::default()
        }
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn weight(d: &DestView) -> i64 {
    i64::from(d.weight())
}

impl Scheduler for WeightedRoundRobin {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn update(&mut self, dests: &[DestView]) {
        let g = dests
            .iter()
            .map(weight)
            .filter(|w| *w > 0)
            .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
        self.cl = None;
        self.di = if g > 0 { g } else { 1 };
        self.mw = dests.iter().map(weight).max().unwrap_or(0).max(0) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn schedule(&mut self, dests: &[DestView], _input: &SchedInput) -> Option<usize> {
        if self.mw <= 0 {
            return None; // "no destination available"
        }
        let n = dests.len();
        let last = self.cl.filter(|c| *c < n);
        let mut pos = last;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let from = pos.map_or(0, |p| p + 1);
            for (i, d) in dests.iter().enumerate().skip(from) {
                if !d.is_overloaded() && weight(d) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None; // all overloaded
                }
            }
            pos = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None; // all overloaded
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, input};
    use proptest::prelude::*;

    fn seq(weights: &[u32], n: usize) -> Vec<usize> {
        let d = dests(weights);
        let mut s = WeightedRoundRobin::new();
        s.update(&d);
        (0..n)
            .map(|_| s.schedule(&d, &input()).expect("a dest is available"))
            .collect()
    }

    #[test]
    fn three_one_is_aaab() {
        let picks = seq(&[3, 1], 40);
        assert_eq!(&picks[..8], &[0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(picks.iter().filter(|i| **i == 0).count(), 30);
        assert_eq!(picks.iter().filter(|i| **i == 1).count(), 10);
    }

    #[test]
    fn four_three_two_sequence() {
        // cw=4: A | cw=3: A B | cw=2: A B C | cw=1: A B C  -> 9 picks per cycle.
        let picks = seq(&[4, 3, 2], 18);
        let cycle = [0, 0, 1, 0, 1, 2, 0, 1, 2];
        assert_eq!(&picks[..9], &cycle);
        assert_eq!(&picks[9..], &cycle);
    }

    #[test]
    fn gcd_steps() {
        // di=2, mw=4-1=3: cw=3: A | cw=1: A B  -> A A B
        let picks = seq(&[4, 2], 9);
        assert_eq!(picks, [0, 0, 1, 0, 0, 1, 0, 0, 1]);
        // Equal weights with gcd 5 behave as rr.
        assert_eq!(seq(&[5, 5, 5], 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weight_zero_never_picked_and_all_zero_is_none() {
        let picks = seq(&[2, 0, 1], 30);
        assert!(!picks.contains(&1));
        let d = dests(&[0, 0]);
        let mut s = WeightedRoundRobin::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &input()), None);
    }

    #[test]
    fn all_overloaded_is_none_and_terminates() {
        let mut d = dests(&[3, 1]);
        for x in d.iter_mut() {
            let mut c = *x.config();
            c.upper_threshold = 1;
            *x = DestView::new(x.id(), c, x.stats().clone());
            x.bind_conn(0, false);
        }
        let mut s = WeightedRoundRobin::new();
        s.update(&d);
        for _ in 0..5 {
            assert_eq!(s.schedule(&d, &input()), None);
        }
    }

    #[test]
    fn update_recomputes_and_restarts_from_head() {
        let d = dests(&[3, 1]);
        let mut s = WeightedRoundRobin::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &input()), Some(0)); // cw=3
        assert_eq!(s.schedule(&d, &input()), Some(0)); // cw=2
        let d2 = dests(&[3, 2]);
        s.update(&d2); // cw=2 stays (di=1), cursor to head
        assert_eq!(s.schedule(&d2, &input()), Some(0));
        assert_eq!(s.schedule(&d2, &input()), Some(1));
    }

    proptest! {
        #[test]
        fn one_cycle_is_proportional(ws in proptest::collection::vec(0u32..12, 1..6)) {
            let d = dests(&ws);
            let mut s = WeightedRoundRobin::new();
            s.update(&d);
            let total: u32 = ws.iter().sum();
            let g = ws.iter().filter(|w| **w > 0).fold(0i64, |g, w| if g > 0 { gcd(i64::from(*w), g) } else { i64::from(*w) });
            if total == 0 {
                prop_assert_eq!(s.schedule(&d, &input()), None);
            } else {
                let g = g as u32;
                let cycle = total / g;
                let mut counts = vec![0u32; ws.len()];
                for _ in 0..cycle {
                    let i = s.schedule(&d, &input()).unwrap();
                    prop_assert!(ws[i] > 0);
                    counts[i] += 1;
                }
                for (i, w) in ws.iter().enumerate() {
                    prop_assert_eq!(counts[i], w / g);
                }
            }
        }
    }
}
