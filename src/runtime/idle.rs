//! Idle-aware polling: what a worker does after a poll that found nothing.
//!
//! Adaptive (the default): the first [`IdleConf::spin`] empty polls in a row cost nothing extra
//! (a burst that pauses for a few microseconds is not slowed down), then the worker sleeps,
//! first [`IdleConf::sleep_min_us`], doubling after each further empty poll up to
//! [`IdleConf::sleep_max_us`]; the first poll that finds a packet (on a port, a redirect or a
//! tx handoff ring) starts the count over. An idle worker thus wakes at most every
//! `sleep_max_us` to poll, which bounds both its CPU use and the delay of the first packet
//! after a quiet period. Busy polling never sleeps.
//!
//! Every port is served this way, whatever its driver. The drivers workers poll in the tests
//! (`net_af_packet`, `net_null`, `net_pcap`, `net_ring`) have no receive interrupts, and a
//! worker also waits on rings from other workers, which nothing announces; receive interrupts
//! (`rte_eth_dev_rx_intr_*`, which `net_tap` has) are therefore not used.
//!
//! The settings live in [`IdleShared`] (atomics, written by the control thread on a reload,
//! read by the workers after an empty poll), so a reload changes them without a restart.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use crate::config::IdleConf;

/// The idle settings every worker reads; a reload stores new ones.
#[derive(Debug)]
pub struct IdleShared {
    busy: AtomicBool,
    spin: AtomicU32,
    sleep_min_us: AtomicU32,
    sleep_max_us: AtomicU32,
}

impl IdleShared {
    pub fn new(c: IdleConf) -> IdleShared {
        let s = IdleShared {
            busy: AtomicBool::new(false),
            spin: AtomicU32::new(0),
            sleep_min_us: AtomicU32::new(1),
            sleep_max_us: AtomicU32::new(1),
        };
        s.set(c);
        s
    }

    /// Publish new settings (each worker picks them up at its next empty poll).
    pub fn set(&self, c: IdleConf) {
        self.busy.store(c.busy, Ordering::Relaxed);
        self.spin.store(c.spin, Ordering::Relaxed);
        self.sleep_min_us
            .store(c.sleep_min_us.max(1), Ordering::Relaxed);
        self.sleep_max_us
            .store(c.sleep_max_us.max(c.sleep_min_us).max(1), Ordering::Relaxed);
    }

    /// The settings now in force.
    pub fn get(&self) -> IdleConf {
        IdleConf {
            busy: self.busy.load(Ordering::Relaxed),
            spin: self.spin.load(Ordering::Relaxed),
            sleep_min_us: self.sleep_min_us.load(Ordering::Relaxed),
            sleep_max_us: self.sleep_max_us.load(Ordering::Relaxed),
        }
    }
}

/// One worker's back-off state.
#[derive(Debug, Default)]
pub struct Backoff {
    /// Empty polls in a row.
    empty: u32,
    /// The sleep after the next empty poll, microseconds (0: not sleeping yet).
    next_us: u32,
}

impl Backoff {
    /// A poll found something: back to full speed.
    #[inline]
    pub fn found(&mut self) {
        self.empty = 0;
        self.next_us = 0;
    }

    /// A poll found nothing: how long to sleep now, if at all.
    pub fn nothing(&mut self, s: &IdleShared) -> Option<Duration> {
        if s.busy.load(Ordering::Relaxed) {
            return None;
        }
        if self.empty < s.spin.load(Ordering::Relaxed) {
            self.empty += 1;
            return None;
        }
        let min = s.sleep_min_us.load(Ordering::Relaxed);
        let max = s.sleep_max_us.load(Ordering::Relaxed).max(min);
        let now = self.next_us.clamp(min, max);
        self.next_us = now.saturating_mul(2).min(max);
        Some(Duration::from_micros(u64::from(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(busy: bool, spin: u32, min: u32, max: u32) -> IdleConf {
        IdleConf {
            busy,
            spin,
            sleep_min_us: min,
            sleep_max_us: max,
        }
    }

    #[test]
    fn spins_then_sleeps_longer_up_to_the_bound_and_resets_on_traffic() {
        let s = IdleShared::new(conf(false, 3, 10, 70));
        let mut b = Backoff::default();
        let got: Vec<Option<u64>> = (0..9)
            .map(|_| b.nothing(&s).map(|d| d.as_micros() as u64))
            .collect();
        assert_eq!(
            got,
            [
                None,
                None,
                None,
                Some(10),
                Some(20),
                Some(40),
                Some(70),
                Some(70),
                Some(70)
            ]
        );
        b.found();
        assert_eq!(b.nothing(&s), None);
    }

    #[test]
    fn busy_never_sleeps_and_settings_change_live() {
        let s = IdleShared::new(conf(true, 0, 10, 100));
        let mut b = Backoff::default();
        assert!((0..1000).all(|_| b.nothing(&s).is_none()));
        s.set(conf(false, 0, 5, 5));
        assert_eq!(b.nothing(&s), Some(Duration::from_micros(5)));
        assert_eq!(s.get(), conf(false, 0, 5, 5));
    }
}
