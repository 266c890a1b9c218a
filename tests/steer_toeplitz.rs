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

fn v6(bits: u128) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::from_bits(bits)
}

proptest! {
    /// The IPv6 TCP/UDP tuple hash (source, destination, ports: 36 bytes, the most DPDK takes)
    /// equals DPDK's over the same words.
    #[test]
    fn tuple_hash6_matches(src in any::<u128>(), dst in any::<u128>(), sport in any::<u16>(), dport in any::<u16>()) {
        let s = Steering::new(2);
        let mut input = Vec::with_capacity(36);
        input.extend_from_slice(&src.to_be_bytes());
        input.extend_from_slice(&dst.to_be_bytes());
        input.extend_from_slice(&sport.to_be_bytes());
        input.extend_from_slice(&dport.to_be_bytes());
        let dpdk = dpdk_bindings::rss::softrss(&input, &DEFAULT_KEY);
        prop_assert!(dpdk.is_some());
        prop_assert_eq!(Some(s.tuple_hash6(v6(src), sport, v6(dst), dport)), dpdk);
    }

    /// The IPv6 client-endpoint hash equals DPDK's over the source address and port padded to
    /// 32-bit words (a NIC hashing src-only fields); it depends on the source side only (any
    /// destination gives the same owner), and a request's source endpoint and its reply's
    /// destination endpoint hash alike.
    #[test]
    fn client_hash6_matches_and_is_src_only(ip in any::<u128>(), port in any::<u16>(), other in any::<u128>(), oport in any::<u16>(), workers in 2u16..16) {
        let s = Steering::new(workers);
        let mut input = [0u8; 20];
        input[..16].copy_from_slice(&ip.to_be_bytes());
        input[16..18].copy_from_slice(&port.to_be_bytes());
        let h = s.client_hash6(v6(ip), port);
        prop_assert_eq!(Some(h), dpdk_bindings::rss::softrss(&input, &DEFAULT_KEY));
        // What a src-only NIC hashes of the full tuple is the first 18 bytes: the destination's
        // bytes never enter, so any destination leaves the hash as it is.
        let full = dataplane::steer::tuple6(v6(ip), port, v6(other), oport);
        let mut src_only = [0u8; 18];
        src_only[..16].copy_from_slice(&full[..16]);
        src_only[16..].copy_from_slice(&full[32..34]);
        prop_assert_eq!(toeplitz(&DEFAULT_KEY, &src_only), h);
        prop_assert_eq!(s.client_owner6(v6(ip), port), s.reta()[h as usize % dataplane::steer::RETA_SIZE]);
        prop_assert!(s.client_owner6(v6(ip), port) < workers);
    }
}
