//! Weighted power of two choices, as `ip_vs_twos.c`.
//!
//! `total` = the sum of the weights of the available dests (weight > 0, not overloaded); none
//! means no pick. Two random numbers `r1, r2` are drawn in `[0, total]` (inclusive, as IPVS:
//! `get_random_u32_below(total + 1)`); walking the available dests in list order and subtracting
//! each weight from both, choice 1 (2) is the first dest at which `r1` (`r2`) reaches `<= 0`. The
//! pick is choice 2 if `w2 * overhead1 > w1 * overhead2` (overhead = `256*A + I`), else choice 1.
//!
//! Randomness: the kernel's CSPRNG is replaced by a per-scheduler xorshift64* seeded from
//! [`super::SchedParams::seed`] (deterministic tests; give workers distinct seeds). Numbers below
//! `n` use the multiply-shift reduction of `get_random_u32_below` (without its rejection step, a
//! bias below 2^-32 * n).

use super::{DestView, SchedInput, Scheduler, conn_overhead};

/// A small xorshift64* PRNG (never zero state).
#[derive(Debug, Clone)]
pub struct XorShift64(u64);

impl XorShift64 {
    pub fn new(seed: u64) -> XorShift64 {
        // splitmix64 of the seed, so nearby seeds give unrelated streams; never 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift64(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        (((self.next_u64() >> 32) as u128 * u128::from(n)) >> 32) as u64
    }
}

/// Power-of-two-choices state: the PRNG.
#[derive(Debug, Clone)]
pub struct TwoChoices {
    rng: XorShift64,
}

impl TwoChoices {
    pub fn new(seed: u64) -> TwoChoices {
        TwoChoices {
            rng: XorShift64::new(seed),
        }
    }

    /// The pick for two given random numbers (the deterministic core, exposed for tests), with
    /// the counts as `worker` sees them.
    pub fn pick_with(dests: &[DestView], r1: u64, r2: u64, worker: usize) -> Option<usize> {
        let (mut r1, mut r2) = (r1 as i128, r2 as i128);
        let mut c1: Option<(usize, u64, u64)> = None; // (index, weight, overhead)
        let mut c2: Option<(usize, u64, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            let w = u64::from(d.weight());
            r1 -= i128::from(w);
            r2 -= i128::from(w);
            if r1 <= 0 && c1.is_none() {
                c1 = Some((i, w, conn_overhead(d, worker)));
            }
            if r2 <= 0 && c2.is_none() {
                c2 = Some((i, w, conn_overhead(d, worker)));
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        let (i1, w1, oh1) = c1?;
        match c2 {
            Some((i2, w2, oh2))
                if u128::from(w2) * u128::from(oh1) > u128::from(w1) * u128::from(oh2) =>
            {
                Some(i2)
            }
            _ => Some(i1),
        }
    }
}

impl Scheduler for TwoChoices {
    fn name(&self) -> &'static str {
        "twos"
    }

    fn update(&mut self, _dests: &[DestView]) {}

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        let total: u64 = dests
            .iter()
            .filter(|d| d.is_available())
            .map(|d| u64::from(d.weight()))
            .sum();
        if total == 0 {
            return None;
        }
        let r1 = self.rng.below(total + 1);
        let r2 = self.rng.below(total + 1);
        Self::pick_with(dests, r1, r2, input.worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, dests_counts, dests_overloaded, input};

    #[test]
    fn random_numbers_select_by_weight_walk() {
        // weights 2,3: r = 0..=2 -> dest 0 (0-2 <= 0 ... 2-2 = 0), r = 3..=5 -> dest 1.
        let d = dests(&[2, 3]);
        for (r, want) in [(0, 0), (1, 0), (2, 0), (3, 1), (5, 1)] {
            assert_eq!(TwoChoices::pick_with(&d, r, r, 0), Some(want), "r={r}");
        }
    }

    #[test]
    fn picks_the_less_loaded_of_two() {
        // Same weights: dest 1 has the smaller overhead (256 < 512) -> dest 1 whichever order.
        let d = dests_counts(&[1, 1], &[(2, 0), (1, 0)]);
        assert_eq!(TwoChoices::pick_with(&d, 0, 2, 0), Some(1));
        assert_eq!(TwoChoices::pick_with(&d, 2, 0, 0), Some(1));
        // Equal load per weight: choice 1 stays (strict >).
        let d = dests_counts(&[1, 2], &[(1, 0), (2, 0)]); // 256/1 vs 512/2
        assert_eq!(TwoChoices::pick_with(&d, 0, 3, 0), Some(0));
        assert_eq!(TwoChoices::pick_with(&d, 3, 0, 0), Some(1));
        // Weighted: 2*256 > 1*256 -> dest with weight 2 is less loaded per weight.
        let d = dests_counts(&[1, 2], &[(1, 0), (1, 0)]);
        assert_eq!(TwoChoices::pick_with(&d, 0, 3, 0), Some(1));
    }

    #[test]
    fn seeded_and_deterministic_and_weighted() {
        let d = dests(&[3, 1]);
        let run = |seed| {
            let mut s = TwoChoices::new(seed);
            (0..200)
                .map(|_| s.schedule(&d, &input()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        // Idle dests: choice 1 always wins, so picks follow the weight walk: dest 0 takes
        // r in 0..=3 of 0..=4, i.e. ~80 %.
        let zeros = run(1).iter().filter(|i| **i == 0).count();
        assert!((140..=180).contains(&zeros), "{zeros}");
    }

    #[test]
    fn skips_unavailable() {
        let d = dests_overloaded(&[5, 0, 1], &[true, false, false]);
        let mut s = TwoChoices::new(1);
        for _ in 0..50 {
            assert_eq!(s.schedule(&d, &input()), Some(2));
        }
        let d = dests_overloaded(&[5, 0], &[true, false]);
        assert_eq!(s.schedule(&d, &input()), None);
    }
}
