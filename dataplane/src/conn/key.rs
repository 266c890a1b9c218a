//! The tuple a packet shows on the wire, and its hash.
//!
//! [`ConnKey`] is exactly what the director sees in one packet: protocol, source address and
//! port, destination address and port (for ICMP echo the identifier is used as both ports, other
//! ICMP uses 0). A connection is found by either of its two keys: the in-tuple (client -> VIP) and
//! the out-tuple (the reply as it arrives at the director).
//!
//! The hash is a seeded multiply-xor mix of two 64-bit words: a few cycles, no SipHash. The seed
//! is chosen by the runtime (random per worker) so that an attacker who picks source ports cannot
//! precompute colliding tuples; the table is bounded regardless, so a collision attack can only
//! cost probes, never memory.

use std::net::Ipv4Addr;

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
}
