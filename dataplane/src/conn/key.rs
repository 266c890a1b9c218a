//! The tuple a packet shows on the wire, and its hash.
//!
//! [`ConnKey`] (IPv4) and [`ConnKey6`] (IPv6) are exactly what the director sees in one packet:
//! protocol, source address and
//! port, destination address and port (for ICMP echo the identifier is used as both ports, other
//! ICMP uses 0). A connection is found by either of its two keys: the in-tuple (client -> VIP) and
//! the out-tuple (the reply as it arrives at the director).
//!
//! The hash is a seeded multiply-xor mix of two 64-bit words: a few cycles, no SipHash. The seed
//! is chosen by the runtime (random per worker) so that an attacker who picks source ports cannot
//! precompute colliding tuples; the table is bounded regardless, so a collision attack can only
//! cost probes, never memory.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What the connection table needs of a tuple type: the connection table, its index and its
/// records are generic over it, so IPv4 keeps its 14-byte keys and one-line records while IPv6
/// connections live in a table of their own.
pub trait FlowKey: Copy + Eq + core::fmt::Debug {
    /// The key of a free slot (never looked up).
    const EMPTY: Self;
    /// Seeded 64-bit hash (the table picks the bucket from the high half and the tag from the
    /// low 16 bits).
    fn hash(&self, seed: u64) -> u64;
    /// IP protocol number.
    fn proto(&self) -> u8;
}

impl FlowKey for ConnKey {
    const EMPTY: Self = ConnKey::new(0, Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::UNSPECIFIED, 0);

    #[inline]
    fn hash(&self, seed: u64) -> u64 {
        ConnKey::hash(self, seed)
    }

    #[inline]
    fn proto(&self) -> u8 {
        self.proto
    }
}

/// A 5-tuple as seen on the wire. 14 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 132 SCTP).
    pub proto: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

impl Default for ConnKey {
    fn default() -> Self {
        ConnKey::new(0, Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::UNSPECIFIED, 0)
    }
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xD6E8_FEB8_6659_FD93;

impl ConnKey {
    pub const fn new(proto: u8, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> ConnKey {
        ConnKey {
            proto,
            src,
            sport,
            dst,
            dport,
        }
    }

    /// The same flow seen in the other direction (source and destination swapped).
    pub const fn reversed(&self) -> ConnKey {
        ConnKey::new(self.proto, self.dst, self.dport, self.src, self.sport)
    }

    /// Seeded 64-bit hash.
    #[inline]
    pub fn hash(&self, seed: u64) -> u64 {
        let a = (u64::from(self.src.to_bits()) << 32) | u64::from(self.dst.to_bits());
        let b =
            (u64::from(self.sport) << 32) | (u64::from(self.dport) << 16) | u64::from(self.proto);
        let h = (a ^ seed).wrapping_mul(K1);
        let h = (h ^ (h >> 29) ^ b ^ seed.rotate_left(32)).wrapping_mul(K2);
        h ^ (h >> 32)
    }
}

/// An IPv6 5-tuple as seen on the wire. 38 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey6 {
    pub proto: u8,
    pub src: Ipv6Addr,
    pub sport: u16,
    pub dst: Ipv6Addr,
    pub dport: u16,
}

impl ConnKey6 {
    pub const fn new(proto: u8, src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Self {
        ConnKey6 {
            proto,
            src,
            sport,
            dst,
            dport,
        }
    }

    /// The same flow seen in the other direction.
    pub const fn reversed(&self) -> ConnKey6 {
        ConnKey6::new(self.proto, self.dst, self.dport, self.src, self.sport)
    }
}

impl FlowKey for ConnKey6 {
    const EMPTY: Self = ConnKey6::new(0, Ipv6Addr::UNSPECIFIED, 0, Ipv6Addr::UNSPECIFIED, 0);

    /// The v4 mix over five words: each address is folded into two 64-bit words, each absorbed
    /// with a multiply, then the ports and protocol as for v4. A few cycles more than v4; the
    /// seed still keeps an attacker from precomputing collisions.
    #[inline]
    fn hash(&self, seed: u64) -> u64 {
        let s = self.src.to_bits();
        let d = self.dst.to_bits();
        let b =
            (u64::from(self.sport) << 32) | (u64::from(self.dport) << 16) | u64::from(self.proto);
        let mut h = seed;
        for w in [(s >> 64) as u64, s as u64, (d >> 64) as u64, d as u64] {
            h = (h ^ w).wrapping_mul(K1);
            h ^= h >> 29;
        }
        let h = (h ^ b ^ seed.rotate_left(32)).wrapping_mul(K2);
        h ^ (h >> 32)
    }

    #[inline]
    fn proto(&self) -> u8 {
        self.proto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_swaps_endpoints() {
        let k = ConnKey::new(
            6,
            Ipv4Addr::new(198, 19, 0, 1),
            1234,
            Ipv4Addr::new(198, 18, 0, 10),
            80,
        );
        let r = k.reversed();
        assert_eq!(
            (r.src, r.sport, r.dst, r.dport),
            (k.dst, k.dport, k.src, k.sport)
        );
        assert_eq!(r.reversed(), k);
        assert_eq!(core::mem::size_of::<ConnKey>(), 14);
    }

    #[test]
    fn hash_spreads_ports_and_depends_on_seed() {
        let base = ConnKey::new(
            6,
            Ipv4Addr::new(198, 19, 0, 1),
            0,
            Ipv4Addr::new(198, 18, 0, 10),
            80,
        );
        let mut buckets = [0u32; 64];
        for p in 0..6400u16 {
            let k = ConnKey { sport: p, ..base };
            buckets[(k.hash(7) & 63) as usize] += 1;
        }
        // Each of 64 buckets expects 100; allow a generous spread.
        assert!(
            buckets.iter().all(|n| (50..=150).contains(n)),
            "{buckets:?}"
        );
        assert_ne!(base.hash(1), base.hash(2));
        assert_ne!(base.hash(1), base.reversed().hash(1));
    }

    #[test]
    fn v6_keys_reverse_and_hash_like_v4() {
        let a: Ipv6Addr = "2001:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:2:0:1::100".parse().unwrap();
        let base = ConnKey6::new(6, a, 0, b, 80);
        assert_eq!(base.reversed().reversed(), base);
        let mut buckets = [0u32; 64];
        for p in 0..6400u16 {
            let k = ConnKey6 { sport: p, ..base };
            buckets[(FlowKey::hash(&k, 7) & 63) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|n| (50..=150).contains(n)),
            "{buckets:?}"
        );
        // Addresses that differ only in their low or high half hash apart.
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000u128 {
            for k in [
                ConnKey6::new(6, Ipv6Addr::from_bits(a.to_bits() + i), 1, b, 80),
                ConnKey6::new(6, a, 1, Ipv6Addr::from_bits(b.to_bits() ^ (i << 64)), 80),
            ] {
                seen.insert(FlowKey::hash(&k, 9) >> 16);
            }
        }
        assert!(seen.len() >= 1999, "{}", seen.len());
        assert_ne!(FlowKey::hash(&base, 1), FlowKey::hash(&base, 2));
        assert_ne!(FlowKey::hash(&base, 1), FlowKey::hash(&base.reversed(), 1));
    }
}
