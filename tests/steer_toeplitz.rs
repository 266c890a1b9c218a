//! rvs's Toeplitz hash (`dataplane::steer`) against DPDK's `rte_softrss`, the software reference
//! NIC drivers are checked with. No EAL needed: `rte_softrss` is a pure function.

use dataplane::steer::{DEFAULT_KEY, Steering, toeplitz};
use proptest::prelude::*;

proptest! {
    #[test]
    fn matches_rte_softrss(words in proptest::collection::vec(any::<u32>(), 1..=9)) {
        let input: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        prop_assert_eq!(Some(toeplitz(&DEFAULT_KEY, &input)), dpdk_bindings::rss::softrss(&input, &DEFAULT_KEY));
    }

    /// The client-endpoint hash equals DPDK's over the same fields padded to 32-bit words
    /// (zero bits add nothing to a Toeplitz hash), as a NIC hashing src-only fields computes it.
    #[test]
    fn client_hash_matches(ip in any::<u32>(), port in any::<u16>()) {
        let s = Steering::new(2);
        let mut input = [0u8; 8];
        input[..4].copy_from_slice(&ip.to_be_bytes());
        input[4..6].copy_from_slice(&port.to_be_bytes());
        prop_assert_eq!(Some(s.client_hash(std::net::Ipv4Addr::from_bits(ip), port)), dpdk_bindings::rss::softrss(&input, &DEFAULT_KEY));
    }
}
