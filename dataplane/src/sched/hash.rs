//! The kernel hash functions the hashing schedulers key on, bit-exact with IPVS on a 64-bit
//! little-endian kernel (the x86_64/arm64 director case).
//!
//! - [`hash_32`]: `include/linux/hash.h`, multiply by `GOLDEN_RATIO_32` (0x61C88647) and keep the
//!   top `bits` bits (dh, sh, lblc/lblcr bucket keys).
//! - `hsiphash`: `lib/siphash.c`'s `hsiphash` of one `u32`. On 64-bit kernels "HalfSipHash-1-3"
//!   is really SipHash-1-3 with 64-bit key words, truncated to 32 bits; the `u32` is hashed as its
//!   4 native (little-endian) bytes. Used by mh with IPVS's fixed keys.

/// IPVS's 32-bit key of an IPv6 address for its hashing schedulers (sh, dh, mh, lblc, lblcr):
/// `addr->ip6[0] ^ addr->ip6[1] ^ addr->ip6[2] ^ addr->ip6[3]` taken through `ntohl`, i.e. the
/// XOR of the address's four big-endian 32-bit words. What each scheduler then does with it is
/// what it does with an IPv4 address (`u32::from(Ipv4Addr)`).
#[inline]
pub fn fold_v6(addr: std::net::Ipv6Addr) -> u32 {
    let b = addr.to_bits();
    (b >> 96) as u32 ^ (b >> 64) as u32 ^ (b >> 32) as u32 ^ b as u32
}

/// The 32-bit key IPVS's hashing schedulers take from an address of either family: an IPv4
/// address as its value (`ntohl(addr->ip)`), an IPv6 one folded ([`fold_v6`]).
#[inline]
pub fn addr_key(addr: std::net::IpAddr) -> u32 {
    match addr {
        std::net::IpAddr::V4(a) => u32::from(a),
        std::net::IpAddr::V6(a) => fold_v6(a),
    }
}

/// `GOLDEN_RATIO_32` of `include/linux/hash.h`.
pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// `hash_32(val, bits)`: the top `bits` bits of `val * GOLDEN_RATIO_32` (1 <= bits <= 32).
#[inline]
pub fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// An `hsiphash_key_t` of a 64-bit kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipKey(pub u64, pub u64);

#[inline]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-c-d of `data` (the reference algorithm, 64-bit output).
pub fn siphash<const C: usize, const D: usize>(key: SipKey, data: &[u8]) -> u64 {
    let mut v = [
        0x736f_6d65_7073_6575 ^ key.0,
        0x646f_7261_6e64_6f6d ^ key.1,
        0x6c79_6765_6e65_7261 ^ key.0,
        0x7465_6462_7974_6573 ^ key.1,
    ];
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let m = u64::from_le_bytes(w);
        v[3] ^= m;
        for _ in 0..C {
            sipround(&mut v);
        }
        v[0] ^= m;
    }
    let mut b = (data.len() as u64) << 56;
    for (i, byte) in chunks.remainder().iter().enumerate() {
        b |= u64::from(*byte) << (8 * i);
    }
    v[3] ^= b;
    for _ in 0..C {
        sipround(&mut v);
    }
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..D {
        sipround(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The kernel's `hsiphash(&v, sizeof(u32), key)` on a 64-bit kernel.
#[inline]
pub fn hsiphash_u32(key: SipKey, v: u32) -> u32 {
    siphash::<1, 3>(key, &v.to_le_bytes()) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hasher;

    /// The fold of every vector of `scripts/ipvs-v6-hash-vectors.py`; an address whose words
    /// cancel folds to 0, as `::` does.
    #[test]
    fn fold_v6_matches_the_vectors() {
        for v in &crate::sched::vectors_v6::V6_VECTORS {
            assert_eq!(fold_v6(v.addr.parse().unwrap()), v.fold, "{}", v.addr);
        }
        assert_eq!(fold_v6("1:2:3:4:1:2:3:4".parse().unwrap()), 0);
        assert_eq!(fold_v6("2001:2::1".parse().unwrap()), 0x2001_0002 ^ 1);
    }

    #[test]
    fn hash_32_is_golden_ratio_top_bits() {
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(1, 32), 0x61C8_8647);
        // 2 * 0x61C88647 = 0xC3910C8E
        assert_eq!(hash_32(2, 8), 0xC3);
    }

    /// The rounds are the reference SipHash: SipHash-2-4 agrees with std's (deprecated) SipHasher
    /// for every length class.
    #[test]
    #[allow(deprecated)]
    fn siphash_2_4_matches_std() {
        let key = SipKey(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let data: Vec<u8> = (0u8..40).collect();
        for len in 0..data.len() {
            let mut h = std::hash::SipHasher::new_with_keys(key.0, key.1);
            h.write(&data[..len]);
            assert_eq!(siphash::<2, 4>(key, &data[..len]), h.finish(), "len {len}");
        }
        // The paper's first test vector (64-byte message table, empty input).
        assert_eq!(siphash::<2, 4>(key, &[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    fn hsiphash_is_deterministic_and_keyed() {
        let k1 = SipKey(2_654_435_761, 2_654_435_761);
        let k2 = SipKey(2_654_446_892, 2_654_446_892);
        assert_eq!(hsiphash_u32(k1, 42), hsiphash_u32(k1, 42));
        assert_ne!(hsiphash_u32(k1, 42), hsiphash_u32(k2, 42));
        assert_ne!(hsiphash_u32(k1, 42), hsiphash_u32(k1, 43));
    }
}
