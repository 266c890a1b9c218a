//! Destination hashing, as `ip_vs_dh.c`: a static 256-bucket table filled round-robin with the
//! dests in list order (bucket `i` = dest `i mod n`, weights and availability ignored), keyed on
//! the packet's destination address: bucket `hash_32(daddr, 8)`. If that bucket's dest has
//! weight 0 or is overloaded the pick fails (no fallback).

use super::hash::{addr_key, fold_v6, hash_32};
use super::{DestView, SchedInput, Scheduler};

/// `IP_VS_DH_TAB_BITS`.
pub const DH_TAB_BITS: u32 = 8;
/// `IP_VS_DH_TAB_SIZE`.
pub const DH_TAB_SIZE: usize = 1 << DH_TAB_BITS;

/// Destination hashing state: the bucket table (indices into the dest slice).
#[derive(Debug)]
pub struct DestinationHashing {
    buckets: [Option<u32>; DH_TAB_SIZE],
}

impl Default for DestinationHashing {
    fn default() -> DestinationHashing {
        DestinationHashing {
            buckets: [None; DH_TAB_SIZE],
        }
    }
}

impl DestinationHashing {
    pub fn new() -> DestinationHashing {
        DestinationHashing::default()
    }

    /// The bucket a destination address hashes to.
    pub fn bucket_of(daddr: std::net::Ipv4Addr) -> usize {
        hash_32(u32::from(daddr), DH_TAB_BITS) as usize
    }

    /// The bucket an IPv6 destination address hashes to (`ip_vs_dh_hashkey` for AF_INET6:
    /// the folded address, [`fold_v6`]).
    pub fn bucket_of6(daddr: std::net::Ipv6Addr) -> usize {
        hash_32(fold_v6(daddr), DH_TAB_BITS) as usize
    }

    /// The dest index in bucket `b` (tests, diagnostics).
    pub fn bucket(&self, b: usize) -> Option<usize> {
        self.buckets.get(b).copied().flatten().map(|i| i as usize)
    }
}

impl Scheduler for DestinationHashing {
    fn name(&self) -> &'static str {
        "dh"
    }

    fn update(&mut self, dests: &[DestView]) {
        let n = dests.len();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = (n > 0).then(|| (i % n) as u32);
        }
    }

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        let i = self.bucket(hash_32(addr_key(input.vip), DH_TAB_BITS) as usize)?;
        dests.get(i).filter(|d| d.is_available()).map(|_| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, dests_overloaded, input};
    use std::net::Ipv4Addr;

    #[test]
    fn table_is_round_robin_over_the_list() {
        let d = dests(&[1, 7, 0]);
        let mut s = DestinationHashing::new();
        s.update(&d);
        for b in 0..DH_TAB_SIZE {
            assert_eq!(s.bucket(b), Some(b % 3));
        }
        s.update(&[]);
        assert_eq!(s.bucket(0), None);
    }

    /// IPv6 buckets against `scripts/ipvs-v6-hash-vectors.py`.
    #[test]
    fn ipv6_buckets_match_the_vectors() {
        for v in &crate::sched::vectors_v6::V6_VECTORS {
            let a = v.addr.parse().unwrap();
            assert_eq!(DestinationHashing::bucket_of6(a), v.dh, "{}", v.addr);
        }
    }

    #[test]
    fn keyed_on_daddr_with_hash_32() {
        // 198.18.0.10 = 0xC612000A; * 0x61C88647 mod 2^32 = 0x2CD33EC6 -> bucket 0x2C.
        assert_eq!(
            u32::from(Ipv4Addr::new(198, 18, 0, 10)).wrapping_mul(0x61C8_8647),
            0x2CD3_3EC6
        );
        assert_eq!(
            DestinationHashing::bucket_of(Ipv4Addr::new(198, 18, 0, 10)),
            0x2C
        );
        let d = dests(&[1, 1, 1]);
        let mut s = DestinationHashing::new();
        s.update(&d);
        let mut inp = input();
        assert_eq!(s.schedule(&d, &inp), Some(0x2C % 3));
        // Same key, same dest, whatever the client.
        inp.client = Ipv4Addr::new(10, 9, 8, 7).into();
        inp.client_port = 1;
        assert_eq!(s.schedule(&d, &inp), Some(0x2C % 3));
    }

    #[test]
    fn no_fallback_when_the_bucket_dest_is_unavailable() {
        let b = 0x2C % 3; // dest for the test VIP
        let mut over = [false; 3];
        over[b] = true;
        let d = dests_overloaded(&[1, 1, 1], &over);
        let mut s = DestinationHashing::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &input()), None);
        let mut w = [1; 3];
        w[b] = 0;
        let d = dests(&w);
        s.update(&d);
        assert_eq!(s.schedule(&d, &input()), None);
    }
}
