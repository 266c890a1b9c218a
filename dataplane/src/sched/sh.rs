//! Source hashing, as `ip_vs_sh.c`: a static 256-bucket table (`CONFIG_IP_VS_SH_TAB_BITS` = 8)
//! in which each dest, in list order, takes `weight` consecutive buckets (at least one, so a
//! weight-0 dest still owns a bucket), cycling through the list until the table is full.
//!
//! Key: bucket `hash_32(sport + saddr, 8)` (wrapping `u32` sum), where `sport` is the client port
//! with `sh-port` on a TCP/UDP/SCTP packet and 0 otherwise. If the bucket's dest has weight 0 or
//! is overloaded:
//! - without `sh-fallback` the pick fails;
//! - with it, IPVS probes `offset = 0..255`: `roffset = (offset + ihash) % 256`, bucket
//!   `(roffset + hash_32(key, 8)) & 255`, and takes the first available dest.

use std::net::Ipv6Addr;

use super::hash::{addr_key, fold_v6, hash_32};
use super::{DestView, SchedFlags, SchedInput, Scheduler};

/// `IP_VS_SH_TAB_BITS`.
pub const SH_TAB_BITS: u32 = 8;
/// `IP_VS_SH_TAB_SIZE`.
pub const SH_TAB_SIZE: usize = 1 << SH_TAB_BITS;
const SH_TAB_MASK: u32 = SH_TAB_SIZE as u32 - 1;

/// Source hashing state: flags and the bucket table (indices into the dest slice).
#[derive(Debug)]
pub struct SourceHashing {
    fallback: bool,
    port: bool,
    buckets: [Option<u32>; SH_TAB_SIZE],
}

/// Whether `proto` carries ports IPVS reads for `sh-port`/`mh-port` (TCP, UDP, SCTP).
pub(crate) fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

impl SourceHashing {
    pub fn new(flags: SchedFlags) -> SourceHashing {
        SourceHashing {
            fallback: flags.contains(SchedFlags::SCHED1),
            port: flags.contains(SchedFlags::SCHED2),
            buckets: [None; SH_TAB_SIZE],
        }
    }

    /// `ip_vs_sh_hashkey`: `(offset + hash_32(port + addr, 8)) & mask`.
    fn hashkey(addr: u32, port: u16, offset: u32) -> usize {
        (offset.wrapping_add(hash_32(u32::from(port).wrapping_add(addr), SH_TAB_BITS))
            & SH_TAB_MASK) as usize
    }

    /// `ip_vs_sh_hashkey` for an IPv6 client: the same hash of the folded address
    /// ([`fold_v6`]); `offset` is the fallback's probe offset (0 for the first look).
    pub fn hashkey6(addr: Ipv6Addr, port: u16, offset: u32) -> usize {
        Self::hashkey(fold_v6(addr), port, offset)
    }

    /// The dest index in bucket `b` (tests, diagnostics).
    pub fn bucket(&self, b: usize) -> Option<usize> {
        self.buckets.get(b).copied().flatten().map(|i| i as usize)
    }

    /// The bucket index a pick would look at first for `input`.
    pub fn bucket_for(&self, input: &SchedInput) -> usize {
        let port = if self.port && has_ports(input.proto) {
            input.client_port
        } else {
            0
        };
        Self::hashkey(addr_key(input.client), port, 0)
    }
}

impl Scheduler for SourceHashing {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn update(&mut self, dests: &[DestView]) {
        let mut p = 0usize;
        let mut count = 0u32;
        for b in self.buckets.iter_mut() {
            if dests.is_empty() {
                *b = None;
                continue;
            }
            *b = Some(p as u32);
            count += 1;
            if count >= dests[p].weight() {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
    }

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        let available = |i: usize| dests.get(i).is_some_and(DestView::is_available);
        let ihash = self.bucket_for(input);
        let first = self.bucket(ihash)?;
        if available(first) {
            return Some(first);
        }
        if !self.fallback {
            return None;
        }
        let port = if self.port && has_ports(input.proto) {
            input.client_port
        } else {
            0
        };
        let addr = addr_key(input.client);
        (0..SH_TAB_SIZE as u32)
            .filter_map(|offset| {
                let roffset = (offset + ihash as u32) % SH_TAB_SIZE as u32;
                self.bucket(Self::hashkey(addr, port, roffset))
            })
            .find(|&i| available(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, dests_overloaded, input};

    fn sched(weights: &[u32], flags: SchedFlags) -> (SourceHashing, Vec<DestView>) {
        let d = dests(weights);
        let mut s = SourceHashing::new(flags);
        s.update(&d);
        (s, d)
    }

    /// IPv6 keys against `scripts/ipvs-v6-hash-vectors.py`, first look and fallback probe.
    #[test]
    fn ipv6_keys_match_the_vectors() {
        for v in &crate::sched::vectors_v6::V6_VECTORS {
            let a = v.addr.parse().unwrap();
            assert_eq!(SourceHashing::hashkey6(a, v.port, 0), v.sh, "{}", v.addr);
            assert_eq!(
                SourceHashing::hashkey6(a, v.port, v.offset),
                v.sh_offset,
                "{} +{}",
                v.addr,
                v.offset
            );
        }
        // The IPv4 key is untouched: an IPv4 address is its own fold.
        let v4 = std::net::Ipv4Addr::new(198, 19, 0, 1);
        assert_eq!(SourceHashing::hashkey(u32::from(v4), 0, 0), 0x43);
    }

    #[test]
    fn table_tiles_each_dest_weight_times() {
        let (s, _) = sched(&[3, 1, 0, 2], SchedFlags::NONE);
        // Weight 0 still takes one bucket: 0 0 0 1 2 3 3 | 0 0 0 1 2 3 3 | ...
        let cycle = [0, 0, 0, 1, 2, 3, 3];
        for b in 0..SH_TAB_SIZE {
            assert_eq!(s.bucket(b), Some(cycle[b % 7]), "bucket {b}");
        }
        let (s, _) = sched(&[], SchedFlags::NONE);
        assert_eq!(s.bucket(0), None);
    }

    #[test]
    fn spread_by_weight() {
        // 256 buckets over weights 3:1 tile as 64 cycles of A A A B: 192 vs 64.
        let (s, _) = sched(&[3, 1], SchedFlags::NONE);
        let a = (0..SH_TAB_SIZE).filter(|b| s.bucket(*b) == Some(0)).count();
        assert_eq!((a, SH_TAB_SIZE - a), (192, 64));
    }

    #[test]
    fn same_client_same_dest_and_port_flag() {
        let (mut s, d) = sched(&[1, 1, 1, 1, 1], SchedFlags::NONE);
        let mut inp = input();
        // 198.19.0.1 = 0xC6130001: hash_32(0xC6130001, 8) = 0x43 (0x430D8647 >> 24).
        assert_eq!(
            0xC613_0001u32.wrapping_mul(0x61C8_8647) >> 24,
            s.bucket_for(&inp) as u32
        );
        assert_eq!(s.bucket_for(&inp), 0x43);
        let first = s.schedule(&d, &inp);
        assert_eq!(first, Some(0x43 % 5));
        for port in [1, 2, 3, 60_000] {
            inp.client_port = port; // port not hashed without sh-port
            assert_eq!(s.schedule(&d, &inp), first);
        }
        let (mut s, d) = sched(&[1, 1, 1, 1, 1], SchedFlags::SCHED2);
        let picks: std::collections::HashSet<_> = (0..64u16)
            .map(|p| {
                inp.client_port = p;
                s.schedule(&d, &inp)
            })
            .collect();
        assert!(picks.len() > 1, "sh-port spreads one client over dests");
        // sh-port ignores the port of a protocol without ports.
        inp.proto = 1;
        inp.client_port = 7;
        let b = s.bucket_for(&inp);
        inp.client_port = 8;
        assert_eq!(s.bucket_for(&inp), b);
    }

    #[test]
    fn fallback_skips_unavailable() {
        let inp = input();
        let (s0, _) = sched(&[1, 1, 1], SchedFlags::NONE);
        let home = s0.bucket(s0.bucket_for(&inp)).unwrap();
        let mut over = [false; 3];
        over[home] = true;
        let d = dests_overloaded(&[1, 1, 1], &over);
        let mut plain = SourceHashing::new(SchedFlags::NONE);
        plain.update(&d);
        assert_eq!(plain.schedule(&d, &inp), None);
        let mut fb = SourceHashing::new(SchedFlags::SCHED1);
        fb.update(&d);
        let got = fb.schedule(&d, &inp).unwrap();
        assert_ne!(got, home);
        // The first probe: offset 0 -> bucket (2*ihash) & 255.
        let ihash = fb.bucket_for(&inp);
        let probe = fb.bucket((2 * ihash) & 255).unwrap();
        if probe != home {
            assert_eq!(got, probe);
        }
        // All unavailable: None even with fallback.
        let d = dests_overloaded(&[1, 1, 1], &[true, true, true]);
        fb.update(&d);
        assert_eq!(fb.schedule(&d, &inp), None);
    }
}
