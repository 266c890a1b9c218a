//! Rate-limited warnings for abnormal drops: once per [`WINDOW`] per reason, when a drop reason
//! grew by at least [`THRESHOLD`] packets over all workers during the window. Driven from the
//! main loop with the time passed in; reads only the workers' published counters.

use std::time::{Duration, Instant};

use dataplane::drop::DropReason;

use crate::runtime::WorkerHandle;

/// How often each reason may warn, and the window its growth is measured over.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Drops of one reason within one window that make a warning (10 per second on average).
pub const THRESHOLD: u64 = 100;

/// Counts at the start of the current window.
#[derive(Debug, Default)]
pub struct DropWatch {
    window_start: Option<Instant>,
    at_start: Vec<u64>,
}

fn totals(workers: &[WorkerHandle]) -> Vec<u64> {
    let mut t = vec![0u64; DropReason::COUNT];
    for w in workers {
        for (r, n) in w.stats.drops() {
            t[r as usize] = t[r as usize].wrapping_add(n);
        }
    }
    t
}

impl DropWatch {
    /// Look at the counters; at the end of each window, warn for each reason that grew fast.
    /// Returns the reasons warned about (for tests).
    pub fn check(&mut self, now: Instant, workers: &[WorkerHandle]) -> Vec<(DropReason, u64)> {
        let Some(start) = self.window_start else {
            self.window_start = Some(now);
            self.at_start = totals(workers);
            return Vec::new();
        };
        if now.duration_since(start) < WINDOW {
            return Vec::new();
        }
        let current = totals(workers);
        let mut warned = Vec::new();
        for r in DropReason::ALL {
            let i = *r as usize;
            let grown = current[i].saturating_sub(self.at_start.get(i).copied().unwrap_or(0));
            if grown >= THRESHOLD {
                tracing::warn!(
                    reason = r.label(),
                    drops = grown,
                    seconds = now.duration_since(start).as_secs(),
                    total = current[i],
                    "packets dropped at a high rate (rvs_drops_total); next warning for this reason in 10 s at the earliest"
                );
                warned.push((*r, grown));
            }
        }
        self.window_start = Some(now);
        self.at_start = current;
        warned
    }
}
