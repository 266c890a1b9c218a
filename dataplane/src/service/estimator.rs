//! The IPVS rate estimator (`net/netfilter/ipvs/ip_vs_est.c`), bit for bit.
//!
//! Every [`INTERVAL`] (2 s) the control plane feeds each service's and dest's [`Totals`] to
//! [`Estimator::update`]; the estimator keeps an exponentially weighted moving average with weight
//! 1/4 of the per-second rates, in the kernel's fixed point:
//!
//! ```text
//! rate  = (counter - last) << 9        // cps, pps: scaled by 2^10, divided by 2 seconds
//! rate  = (bytes   - last) << 4        // bps:      scaled by 2^5,  divided by 2 seconds
//! avg  += ((s64)rate - (s64)avg) >> 2  // arithmetic shift: rounds towards minus infinity
//! shown = (avg + 0x1FF) >> 10          // cps, pps (ip_vs_read_estimator)
//! shown = (avg + 0xF) >> 5             // bps
//! ```
//!
//! so rates shown by `ipvsadm --rate` are the ones the kernel would show for the same counters.
//!
//! Zeroing (`ipvsadm -Z`) makes the reported counters jump back to 0. As in the kernel's
//! `ip_vs_zero_estimator`, the caller then calls [`Estimator::reset`]: the last sample becomes
//! the current (zeroed) counters and the averages restart at 0, so no negative spike appears. A
//! counter found below its last sample anyway (a zero the caller did not report) is treated the
//! same way instead of being read as a huge wrapped delta.
//!
//! Pure: no clock (the caller decides when 2 s have passed), no allocation.

use core::time::Duration;

use super::Totals;

/// How often [`Estimator::update`] is meant to be called (the kernel's `IPVS_EST_TICK` chain
/// period: every estimator is visited once per 2 seconds).
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Rates per second, rounded as `ip_vs_read_estimator` rounds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second, client -> real server.
    pub inpps: u64,
    /// Packets per second, real server -> client.
    pub outpps: u64,
    /// Bytes per second, client -> real server.
    pub inbps: u64,
    /// Bytes per second, real server -> client.
    pub outbps: u64,
}

/// One service's or dest's estimator (`struct ip_vs_estimator`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Estimator {
    last_conns: u64,
    last_inpkts: u64,
    last_outpkts: u64,
    last_inbytes: u64,
    last_outbytes: u64,
    /// Averages in fixed point: cps/pps scaled by 2^10, bps by 2^5.
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

/// `avg += ((s64)rate - (s64)avg) >> 2`, with the kernel's wrapping u64 arithmetic.
#[inline]
fn ewma(avg: u64, rate: u64) -> u64 {
    let step = (rate as i64).wrapping_sub(avg as i64) >> 2;
    avg.wrapping_add(step as u64)
}

impl Estimator {
    /// An estimator whose last sample is `now` (the kernel starts from freshly allocated, zeroed
    /// stats; pass `Totals::default()` for the same).
    pub fn new(now: &Totals) -> Estimator {
        let mut e = Estimator::default();
        e.reset(now);
        e
    }

    /// `ip_vs_zero_estimator`: the current counters become the last sample, the rates 0.
    pub fn reset(&mut self, now: &Totals) {
        *self = Estimator {
            last_conns: now.conns,
            last_inpkts: now.inpkts,
            last_outpkts: now.outpkts,
            last_inbytes: now.inbytes,
            last_outbytes: now.outbytes,
            ..Estimator::default()
        };
    }

    /// One estimation step (`ip_vs_chain_estimation`), for counters sampled [`INTERVAL`] after
    /// the previous call.
    pub fn update(&mut self, now: &Totals) {
        if now.conns < self.last_conns
            || now.inpkts < self.last_inpkts
            || now.outpkts < self.last_outpkts
            || now.inbytes < self.last_inbytes
            || now.outbytes < self.last_outbytes
        {
            // The counters went back (a zero): restart from here, as after `reset`.
            self.reset(now);
            return;
        }
        // Scaled by 2^10, but divided by 2 seconds.
        self.cps = ewma(self.cps, (now.conns - self.last_conns) << 9);
        self.inpps = ewma(self.inpps, (now.inpkts - self.last_inpkts) << 9);
        self.outpps = ewma(self.outpps, (now.outpkts - self.last_outpkts) << 9);
        // Scaled by 2^5, but divided by 2 seconds.
        self.inbps = ewma(self.inbps, (now.inbytes - self.last_inbytes) << 4);
        self.outbps = ewma(self.outbps, (now.outbytes - self.last_outbytes) << 4);
        self.last_conns = now.conns;
        self.last_inpkts = now.inpkts;
        self.last_outpkts = now.outpkts;
        self.last_inbytes = now.inbytes;
        self.last_outbytes = now.outbytes;
    }

    /// `ip_vs_read_estimator`: the averages, unscaled with the kernel's rounding.
    pub fn rates(&self) -> Rates {
        Rates {
            cps: (self.cps.wrapping_add(0x1FF)) >> 10,
            inpps: (self.inpps.wrapping_add(0x1FF)) >> 10,
            outpps: (self.outpps.wrapping_add(0x1FF)) >> 10,
            inbps: (self.inbps.wrapping_add(0xF)) >> 5,
            outbps: (self.outbps.wrapping_add(0xF)) >> 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(conns: u64, pkts: u64, bytes: u64) -> Totals {
        Totals {
            conns,
            inpkts: pkts,
            outpkts: pkts / 2,
            inbytes: bytes,
            outbytes: bytes * 3,
            ..Totals::default()
        }
    }

    #[test]
    fn first_steps_match_hand_computed_kernel_arithmetic() {
        let mut e = Estimator::new(&Totals::default());
        // 2 s: 20 conns, 200 in packets, 100 out packets, 10000 in bytes, 30000 out bytes.
        e.update(&totals(20, 200, 10_000));
        // cps: rate = 20 << 9 = 10240; avg = 0 + (10240 - 0) >> 2 = 2560;
        //      shown = (2560 + 511) >> 10 = 2 (the exact EWMA is 10/s * 1/4 = 2.5).
        // inpps: rate = 200 << 9 = 102400; avg = 25600; shown = (25600 + 511) >> 10 = 25.
        // outpps: rate = 100 << 9 = 51200; avg = 12800; shown = 13311 >> 10 = 12.
        // inbps: rate = 10000 << 4 = 160000; avg = 40000; shown = (40000 + 15) >> 5 = 1250.
        // outbps: rate = 30000 << 4 = 480000; avg = 120000; shown = 120015 >> 5 = 3750.
        assert_eq!(
            e.rates(),
            Rates {
                cps: 2,
                inpps: 25,
                outpps: 12,
                inbps: 1250,
                outbps: 3750
            }
        );
        // Next 2 s: the same again (totals double).
        e.update(&totals(40, 400, 20_000));
        // cps: avg = 2560 + (10240 - 2560) >> 2 = 2560 + 1920 = 4480; shown = 4991 >> 10 = 4.
        // inpps: avg = 25600 + (102400 - 25600) >> 2 = 44800; shown = 45311 >> 10 = 44.
        // outpps: avg = 12800 + 9600 = 22400; shown = 22911 >> 10 = 22.
        // inbps: avg = 40000 + 30000 = 70000; shown = 70015 >> 5 = 2187.
        // outbps: avg = 120000 + 90000 = 210000; shown = 210015 >> 5 = 6562.
        assert_eq!(
            e.rates(),
            Rates {
                cps: 4,
                inpps: 44,
                outpps: 22,
                inbps: 2187,
                outbps: 6562
            }
        );
    }

    #[test]
    fn decay_rounds_towards_minus_infinity_like_the_kernel() {
        let mut e = Estimator::new(&Totals::default());
        e.update(&totals(1, 0, 0)); // cps avg = 512 >> 2 = 128
        assert_eq!(e.cps, 128);
        // No more connections: avg += (0 - 128) >> 2 = -32 each step: 96, 72, 54, 40 (-13.5
        // rounds to -14), 30 (-10), 22 (-7.5 -> -8) ...
        let mut seen = Vec::new();
        for _ in 0..6 {
            e.update(&totals(1, 0, 0));
            seen.push(e.cps);
        }
        assert_eq!(seen, [96, 72, 54, 40, 30, 22]);
        // It reaches exactly 0 eventually (avg 1: (0 - 1) >> 2 = -1).
        for _ in 0..40 {
            e.update(&totals(1, 0, 0));
        }
        assert_eq!(e.cps, 0);
        assert_eq!(e.rates(), Rates::default());
    }

    #[test]
    fn steady_rate_converges_to_the_offered_rate() {
        let mut e = Estimator::new(&Totals::default());
        let mut t = Totals::default();
        for _ in 0..40 {
            t.conns += 50; // 25/s
            t.inpkts += 2_000; // 1000/s
            t.inbytes += 2_000_000; // 1e6 B/s
            e.update(&t);
        }
        let r = e.rates();
        assert_eq!((r.cps, r.inpps), (25, 1000));
        // bps loses up to 3 in the last step's fixed point (avg converges from below).
        assert!((999_990..=1_000_000).contains(&r.inbps), "{}", r.inbps);
    }

    #[test]
    fn reset_after_zero_gives_no_spike() {
        let mut e = Estimator::new(&Totals::default());
        e.update(&totals(1000, 100_000, 10_000_000));
        assert!(e.rates().cps > 0);
        // ipvsadm -Z: counters read 0 again.
        e.reset(&Totals::default());
        assert_eq!(e.rates(), Rates::default());
        e.update(&totals(2, 20, 200));
        // Only the 2 s after the zero count: cps avg = (2 << 9) >> 2 = 256, (256 + 511) >> 10 = 0;
        // inpps avg = (20 << 9) >> 2 = 2560, (2560 + 511) >> 10 = 2.
        assert_eq!((e.rates().cps, e.rates().inpps), (0, 2));
    }

    #[test]
    fn counters_going_back_without_reset_restart_instead_of_wrapping() {
        let mut e = Estimator::new(&Totals::default());
        e.update(&totals(1000, 100_000, 10_000_000));
        e.update(&totals(3, 30, 300));
        assert_eq!(e.rates(), Rates::default());
        e.update(&totals(3, 30, 300));
        assert_eq!(e.rates(), Rates::default());
    }
}
