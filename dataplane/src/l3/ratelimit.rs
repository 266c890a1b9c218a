//! Token buckets for what a worker sends on its own initiative (ICMP errors, echo replies), as
//! Linux bounds them with `icmp_msgs_per_sec` / `icmp_msgs_burst`: a flood that makes the
//! director answer cannot make it send more than `per_sec` a second after a burst of `burst`.
//! One bucket per worker and kind, no sharing, time passed in, no allocation.

use crate::time::Instant;

/// Rates of the ICMP messages a worker originates; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpLimits {
    /// ICMP errors (unreachable, time exceeded, fragmentation needed) per second.
    pub errors_per_sec: u32,
    /// Echo replies per second.
    pub echo_per_sec: u32,
    /// Messages that may go at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl Default for IcmpLimits {
    /// Linux's `icmp_msgs_per_sec` (1000) and `icmp_msgs_burst` (50).
    fn default() -> Self {
        IcmpLimits {
            errors_per_sec: 1000,
            echo_per_sec: 1000,
            burst: 50,
        }
    }
}

/// A token bucket: `per_sec` tokens a second, at most `burst` saved.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    per_sec: u32,
    burst: u32,
    /// Tokens, in millionths.
    micro_tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket (`per_sec` 0: unlimited).
    pub const fn new(per_sec: u32, burst: u32) -> TokenBucket {
        let burst = if burst == 0 { 1 } else { burst };
        TokenBucket {
            per_sec,
            burst,
            micro_tokens: burst as u64 * 1_000_000,
            last: Instant::ZERO,
        }
    }

    /// Whether [`TokenBucket::allow`] would give a token at `now`, taking none.
    pub fn would_allow(&self, now: Instant) -> bool {
        if self.per_sec == 0 {
            return true;
        }
        let elapsed_us = now.as_micros().saturating_sub(self.last.as_micros());
        let cap = u64::from(self.burst) * 1_000_000;
        let tokens = self
            .micro_tokens
            .saturating_add(elapsed_us.saturating_mul(u64::from(self.per_sec)))
            .min(cap);
        tokens >= 1_000_000
    }

    /// Take a token if there is one at `now`.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.per_sec == 0 {
            return true;
        }
        let elapsed_us = now.as_micros().saturating_sub(self.last.as_micros());
        self.last = now;
        let cap = u64::from(self.burst) * 1_000_000;
        self.micro_tokens = self
            .micro_tokens
            .saturating_add(elapsed_us.saturating_mul(u64::from(self.per_sec)))
            .min(cap);
        if self.micro_tokens >= 1_000_000 {
            self.micro_tokens -= 1_000_000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(1000, 50);
        let t0 = Instant::from_secs(10);
        let sent = (0..200).filter(|_| b.allow(t0)).count();
        assert_eq!(sent, 50, "the burst, then nothing at the same instant");
        // 1000/s: one token per millisecond.
        assert!(!b.allow(t0 + core::time::Duration::from_micros(999)));
        assert!(b.allow(t0 + core::time::Duration::from_millis(2)));
        // Over one second of steady asking, about 1000 go.
        let mut n = 0;
        for us in (0..1_000_000).step_by(100) {
            if b.allow(t0 + core::time::Duration::from_micros(2000 + us)) {
                n += 1;
            }
        }
        assert!((995..=1005).contains(&n), "{n}");
        // A long quiet spell refills only up to the burst.
        let later = t0 + core::time::Duration::from_secs(100);
        assert_eq!((0..200).filter(|_| b.allow(later)).count(), 50);
    }

    #[test]
    fn would_allow_takes_nothing() {
        let mut b = TokenBucket::new(1, 2);
        let t0 = Instant::from_secs(5);
        assert!(b.would_allow(t0));
        assert!(b.would_allow(t0));
        assert!(b.allow(t0) && b.allow(t0));
        assert!(!b.would_allow(t0));
        assert!(b.would_allow(t0 + core::time::Duration::from_secs(1)));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut b = TokenBucket::new(0, 1);
        assert!((0..10_000).all(|_| b.allow(Instant::ZERO)));
    }
}
