//! Internet checksums: the full RFC 1071 sum and RFC 1624 incremental updates.
//!
//! Vocabulary used below: a *sum* is the ones'-complement sum of 16-bit big-endian words, folded to
//! 16 bits and never complemented; a *checksum* is the complement of a sum, the value that goes
//! into a header. For data that is not all zeros the folded sum is in `1..=0xffff` (end-around
//! carry never yields +0), so a checksum computed here is in `0..=0xfffe`; the incremental helpers
//! keep the same representation, which is why they agree bit for bit with a full recompute
//! (RFC 1624 eqn. 3 rather than eqn. 2, whose result can be the other zero).
//!
//! UDP is the one exception: a computed checksum of 0 is transmitted as `0xffff`, because 0 on the
//! wire means "no checksum" (RFC 768). [`udp_fixup`] and [`update_udp_u16`] / [`update_udp_u32`]
//! apply that rule. IPv6 has no header checksum; its pseudo header ([`pseudo_header_v6`]) feeds
//! TCP, UDP and ICMPv6, and a NAT6 rewrite patches them with [`update_addr_v6`].

use std::net::{Ipv4Addr, Ipv6Addr};

/// Fold a 64-bit accumulator of 16/32-bit words into a 16-bit ones'-complement sum.
#[inline]
fn fold(mut acc: u64) -> u16 {
    // 2^16 = 1 (mod 0xffff), so end-around carries can be added back at any width.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// Ones'-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with a
/// zero byte, as RFC 1071 says). Not complemented.
///
/// The loop adds 32-bit words into a 64-bit accumulator eight bytes at a time and never needs a
/// carry check: 2^32 additions of values below 2^32 cannot overflow 64 bits, far beyond any frame.
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        acc += u64::from(u32::from_be_bytes([c[4], c[5], c[6], c[7]]));
    }
    let mut pairs = chunks.remainder().chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// Ones'-complement addition of two sums.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// The checksum (complemented sum) of `data`: what an IPv4 header or ICMP message carries.
/// Computing it over data that includes a correct checksum field gives 0.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Sum of the IPv4 pseudo header used by TCP and UDP (RFC 793 / RFC 768): source, destination,
/// zero + protocol, and the L4 length (header plus payload).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, l4_len: u16) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    fold(
        u64::from(s >> 16)
            + u64::from(s & 0xffff)
            + u64::from(d >> 16)
            + u64::from(d & 0xffff)
            + u64::from(protocol)
            + u64::from(l4_len),
    )
}

/// The TCP/UDP checksum over IPv4 of `segment` (header and payload; its checksum field is summed
/// as it is, so zero it before filling, or leave it in place to verify: a valid segment gives 0).
/// Segments longer than 65535 bytes cannot be IPv4 payload; their length is saturated.
pub fn l4_checksum_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let len = u16::try_from(segment.len()).unwrap_or(u16::MAX);
    !add(pseudo_header_v4(src, dst, protocol, len), sum(segment))
}

/// Sum of the IPv6 pseudo header (RFC 8200 section 8.1) used by TCP, UDP and ICMPv6: source,
/// destination, the 32-bit upper-layer length, three zero bytes and the next header value.
/// `dst` is the final destination (for a packet with a routing header, the last segment).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, l4_len: u32) -> u16 {
    let mut acc = 0u64;
    for a in [u128::from(src), u128::from(dst)] {
        acc += (a >> 96) as u64 & 0xffff_ffff;
        acc += (a >> 64) as u64 & 0xffff_ffff;
        acc += (a >> 32) as u64 & 0xffff_ffff;
        acc += a as u64 & 0xffff_ffff;
    }
    fold(acc + u64::from(l4_len) + u64::from(next_header))
}

/// The upper-layer checksum over IPv6 of `segment` (TCP, UDP or ICMPv6 header and payload; its
/// checksum field is summed as it is: zero it to fill, leave it to verify, a valid one gives 0).
/// Segments longer than `u32::MAX` bytes cannot exist in a frame; their length is saturated.
pub fn l4_checksum_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    !add(pseudo_header_v6(src, dst, next_header, len), sum(segment))
}

/// UDP transmits a computed checksum of 0 as `0xffff` (0 means "no checksum").
#[inline]
pub fn udp_fixup(checksum: u16) -> u16 {
    if checksum == 0 { 0xffff } else { checksum }
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered data changes from `old` to
/// `new`. `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// [`update_u16`] for a 32-bit field (an IPv4 address, a sequence number), i.e. two words.
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    !fold(
        u64::from(!checksum)
            + u64::from(!(old >> 16) & 0xffff)
            + u64::from(!old & 0xffff)
            + u64::from(new >> 16)
            + u64::from(new & 0xffff),
    )
}

/// [`update_u32`] for an IPv4 address (NAT rewrites; TCP/UDP checksums also cover the address
/// through the pseudo header, so both the IP and the L4 checksum take this update).
#[inline]
pub fn update_addr(checksum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update_u32(checksum, u32::from(old), u32::from(new))
}

/// [`update_u16`] for a 128-bit field: an IPv6 address rewritten by NAT. Only the L4 checksum
/// (TCP, UDP, ICMPv6, through the pseudo header) takes it; IPv6 has no header checksum.
#[inline]
pub fn update_addr_v6(checksum: u16, old: Ipv6Addr, new: Ipv6Addr) -> u16 {
    let (o, n) = (u128::from(old), u128::from(new));
    let mut acc = u64::from(!checksum);
    for shift in [96u32, 64, 32, 0] {
        let ow = (o >> shift) as u32;
        let nw = (n >> shift) as u32;
        acc += u64::from(!(ow >> 16) & 0xffff) + u64::from(!ow & 0xffff);
        acc += u64::from(nw >> 16) + u64::from(nw & 0xffff);
    }
    !fold(acc)
}

/// [`update_addr_v6`] for a UDP checksum: a result of 0 becomes `0xffff`. Over IPv6 a zero UDP
/// checksum is not "absent" but invalid (RFC 8200 section 8.1), so unlike [`update_udp_u32`]
/// this does not leave 0 alone: it updates it like any value (the receiver drops it either way).
#[inline]
pub fn update_udp_addr_v6(checksum: u16, old: Ipv6Addr, new: Ipv6Addr) -> u16 {
    udp_fixup(update_addr_v6(checksum, old, new))
}

/// [`update_u16`] for a UDP checksum: 0 (no checksum) stays 0, a result of 0 becomes `0xffff`.
#[inline]
pub fn update_udp_u16(checksum: u16, old: u16, new: u16) -> u16 {
    if checksum == 0 {
        0
    } else {
        udp_fixup(update_u16(checksum, old, new))
    }
}

/// [`update_u32`] for a UDP checksum: 0 (no checksum) stays 0, a result of 0 becomes `0xffff`.
#[inline]
pub fn update_udp_u32(checksum: u16, old: u32, new: u32) -> u16 {
    if checksum == 0 {
        0
    } else {
        udp_fixup(update_u32(checksum, old, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook definition, one 16-bit word at a time with end-around carry.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let w = if pair.len() == 2 {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from(pair[0]) << 8
            };
            acc += u32::from(w);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn known_ipv4_header() {
        // A captured header (checksum 0xb861 in place): sums to 0xffff, so verifies to 0.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0);
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0xb861);
    }

    #[test]
    fn edge_zero_representations() {
        // RFC 1624 section 3 example: eqn. 3 gives 0x0000, not -0.
        // HC = 0xdd2f, m = 0x5555 -> m' = 0x3285; full recompute is the reference.
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
        // UDP turns that 0 into 0xffff, and never touches an absent checksum.
        assert_eq!(update_udp_u16(0xdd2f, 0x5555, 0x3285), 0xffff);
        assert_eq!(update_udp_u16(0, 0x5555, 0x3285), 0);
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xff, 0xff, 0x00, 0x01]), 0x0001);
    }

    /// RFC 8200 8.1 pseudo header written out as bytes and summed with the generic `sum`.
    fn pseudo_v6_bytes(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&src.octets());
        v.extend_from_slice(&dst.octets());
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, nh]);
        v
    }

    #[test]
    fn v6_pseudo_header_known_value() {
        // 2001:2::1 -> 2001:2::2, UDP, length 12: the nonzero words are 0x2001, 0x0002, 0x0001
        // and 0x2001, 0x0002, 0x0002, then the length and the next header.
        let a: Ipv6Addr = "2001:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:2::2".parse().unwrap();
        assert_eq!(pseudo_header_v6(a, b, 17, 12), 0x2004 + 0x2005 + 12 + 17);
        assert_eq!(
            pseudo_header_v6(a, b, 17, 12),
            sum(&pseudo_v6_bytes(a, b, 17, 12))
        );
    }

    #[test]
    fn v6_udp_zero_result_is_sent_as_ffff() {
        // A segment whose checksum field holds 0xffff - (pseudo + rest) folds to a full sum of
        // 0xffff: the computed checksum is 0, sent as 0xffff, and an address change that keeps
        // the sum keeps it there.
        let a: Ipv6Addr = "2001:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:2::2".parse().unwrap();
        let mut seg = vec![0x14, 0xe9, 0x00, 0x35, 0x00, 0x0a, 0, 0, 0x68, 0x69];
        let partial = add(pseudo_header_v6(a, b, 17, 10), sum(&seg));
        seg[6..8].copy_from_slice(&(0xffff - partial).to_be_bytes());
        let c = l4_checksum_v6(a, b, 17, &seg);
        assert_eq!(c, 0);
        // Swapping source and destination keeps the pseudo-header sum: the update gives 0,
        // transmitted as 0xffff.
        let swapped = update_udp_addr_v6(update_udp_addr_v6(udp_fixup(c), a, b), b, a);
        assert_eq!(swapped, 0xffff);
        assert_eq!(update_addr_v6(0x1234, a, a), 0x1234);
    }

    fn word(d: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([d[at], d[at + 1]])
    }

    proptest! {
        #[test]
        fn fast_sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
            prop_assert_eq!(sum(&data), reference_sum(&data));
        }

        #[test]
        fn incremental_u16_matches_full(
            mut data in proptest::collection::vec(any::<u8>(), 4..200),
            at in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            // A nonzero "protocol" word first, as every real header has one.
            data[0] |= 0x40;
            let words = data.len() / 2;
            let at = 2 + 2 * at.index(words - 1);
            prop_assume!(at + 1 < data.len());
            let csum = checksum(&data);
            let old = word(&data, at);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update_u16(csum, old, new), checksum(&data));
        }

        #[test]
        fn incremental_u32_matches_full(
            mut data in proptest::collection::vec(any::<u8>(), 8..200),
            at in any::<prop::sample::Index>(),
            new in any::<u32>(),
        ) {
            data[0] |= 0x40;
            let at = 2 + 2 * at.index((data.len() - 6) / 2);
            let csum = checksum(&data);
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update_u32(csum, old, new), checksum(&data));
        }

        #[test]
        fn v6_pseudo_header_matches_bytes(src in any::<u128>(), dst in any::<u128>(), nh in any::<u8>(), len in any::<u32>()) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            prop_assert_eq!(pseudo_header_v6(src, dst, nh, len), sum(&pseudo_v6_bytes(src, dst, nh, len)));
        }

        #[test]
        fn v6_address_update_matches_full(
            src in any::<u128>(), dst in any::<u128>(), new_src in any::<u128>(), new_dst in any::<u128>(),
            nh in prop::sample::select(vec![6u8, 17, 58]),
            payload in proptest::collection::vec(any::<u8>(), 8..64),
        ) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let (new_src, new_dst) = (Ipv6Addr::from(new_src), Ipv6Addr::from(new_dst));
            // The checksum lives in the first 8 bytes for UDP and ICMPv6 (offset 6 or 2); put it
            // at 6 for every protocol here: the arithmetic does not care where it is.
            let mut seg = payload.clone();
            seg[6..8].copy_from_slice(&[0, 0]);
            let c = l4_checksum_v6(src, dst, nh, &seg);
            seg[6..8].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(l4_checksum_v6(src, dst, nh, &seg), 0);
            // NAT6: both addresses rewritten, the checksum patched incrementally.
            let c2 = update_addr_v6(update_addr_v6(c, src, new_src), dst, new_dst);
            seg[6..8].copy_from_slice(&[0, 0]);
            let full = l4_checksum_v6(new_src, new_dst, nh, &seg);
            prop_assert_eq!(c2, full);
            seg[6..8].copy_from_slice(&c2.to_be_bytes());
            prop_assert_eq!(l4_checksum_v6(new_src, new_dst, nh, &seg), 0);
            // UDP: the transmitted form (0 sent as 0xffff) updates to the transmitted form.
            let u = update_udp_addr_v6(update_udp_addr_v6(udp_fixup(c), src, new_src), dst, new_dst);
            prop_assert_eq!(u, udp_fixup(full));
        }

        #[test]
        fn udp_incremental_matches_full(
            src in any::<u32>(), dst in any::<u32>(), new_dst in any::<u32>(),
            sport in any::<u16>(), dport in any::<u16>(), new_dport in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let (src, dst, new_dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst), Ipv4Addr::from(new_dst));
            let mut seg = Vec::new();
            seg.extend_from_slice(&sport.to_be_bytes());
            seg.extend_from_slice(&dport.to_be_bytes());
            seg.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            seg.extend_from_slice(&[0, 0]);
            seg.extend_from_slice(&payload);
            let csum = udp_fixup(l4_checksum_v4(src, dst, 17, &seg));
            seg[6..8].copy_from_slice(&csum.to_be_bytes());
            prop_assert_eq!(l4_checksum_v4(src, dst, 17, &seg), 0);

            // DNAT: address and port rewritten, checksum updated incrementally.
            let c = update_udp_u32(csum, u32::from(dst), u32::from(new_dst));
            let c = update_udp_u16(c, dport, new_dport);
            seg[2..4].copy_from_slice(&new_dport.to_be_bytes());
            seg[6..8].copy_from_slice(&[0, 0]);
            let full = udp_fixup(l4_checksum_v4(src, new_dst, 17, &seg));
            prop_assert_eq!(c, full);
        }
    }
}
