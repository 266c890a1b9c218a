//! Parse once: each received frame is validated one time into a [`Parsed`] description, a small
//! `Copy` value that every later step (connection lookup, state machine, `xmit`, routing) reads
//! instead of re-making a checked view of the same headers.
//!
//! What [`parse`] checks, in this order (the first failure is the frame's one drop reason):
//! Ethernet header present (`eth_truncated`); addressed to the port's MAC or broadcast
//! (`not_our_mac`); then by ethertype: ARP goes to the ARP handler, which checks it itself;
//! IPv4 must have a sound header (`ipv4_bad_length`, `ipv4_malformed`), a good header checksum
//! (`ipv4_bad_checksum`; skipped when the NIC verified it, see [`RxChecksum`]) and must not be a
//! fragment (`ipv4_fragment`); a TCP or UDP header must fit (`tcp_malformed`, `udp_malformed`).
//! IPv6 (ethertype `0x86dd`) is classified [`Class::Ipv6`] without further checks: the worker's
//! IPv6 path validates it (it is not on the IPv4 fast path), and frames to an IPv6 multicast MAC
//! (`33:33:...`: solicited-node and all-nodes groups) are accepted for it. Other ethertypes are
//! `unknown_ethertype`. IPv4 options are allowed (and reported in
//! [`Parsed::options`]); L4 is found through the IHL.
//!
//! The L4 checksum is not verified here: only a packet that opens a connection is checked (see
//! the worker), and only when the NIC has not already said whether it is good.

use std::net::Ipv4Addr;

use crate::conn::ConnKey;
use crate::drop::DropReason;
use crate::wire::{IpProtocol, MacAddr, checksum, ethernet, ipv4, tcp, udp};

/// What the NIC said about a checksum of a received frame (`ol_flags` in DPDK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Not checked by the hardware: verify in software when it matters.
    #[default]
    Unknown,
    Good,
    Bad,
}

/// The receive checksum offload verdicts of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxChecksum {
    pub ipv4: Verdict,
    pub l4: Verdict,
}

/// What kind of frame it is, as far as the worker's paths go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Dropped for this reason before any path sees it.
    Drop(DropReason),
    /// An ARP frame addressed to us or broadcast.
    Arp,
    /// IPv4 TCP or UDP with a sound header: the connection path ([`Parsed::key`] is its tuple).
    Flow,
    /// IPv4 ICMP ([`Parsed::key`] has the addresses, ports 0).
    Icmp,
    /// Another IPv4 protocol ([`Parsed::key`] has the addresses).
    OtherIp,
    /// An IPv6 frame, to our MAC, broadcast or an IPv6 multicast MAC (not validated yet: the
    /// worker's IPv6 path does it; [`Parsed::key`] is empty).
    Ipv6,
}

/// One frame, validated. Offsets are from the start of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub class: Class,
    /// The tuple as on the wire (Flow), or protocol and addresses with ports 0.
    pub key: ConnKey,
    /// Offset of the L4 header.
    pub l4: u16,
    /// The TCP flag byte (0 for UDP).
    pub tcp_flags: u8,
    pub ttl: u8,
    /// The IPv4 header has options.
    pub options: bool,
    /// The NIC's verdict on the L4 checksum.
    pub l4_checksum: Verdict,
}

/// Offset of the IPv4 header (untagged Ethernet).
pub const L3: usize = ethernet::HEADER_LEN;

impl Parsed {
    const fn dropped(reason: DropReason) -> Parsed {
        Parsed {
            class: Class::Drop(reason),
            key: ConnKey::new(0, Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::UNSPECIFIED, 0),
            l4: 0,
            tcp_flags: 0,
            ttl: 0,
            options: false,
            l4_checksum: Verdict::Unknown,
        }
    }

    /// A TCP SYN without ACK, RST or FIN: the only TCP packet that opens a connection.
    pub const fn is_plain_syn(&self) -> bool {
        self.key.proto == IpProtocol::TCP.0 && self.tcp_flags & 0x17 == 0x02
    }
}

/// Validate `frame` received on a port whose MAC is `mac`. Never panics, whatever the bytes.
pub fn parse(frame: &[u8], mac: MacAddr, hw: RxChecksum) -> Parsed {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return Parsed::dropped(DropReason::EthTruncated);
    };
    let dst = eth.dst_addr();
    if dst != mac && !dst.is_broadcast() && !is_ipv6_multicast(&eth) {
        return Parsed::dropped(DropReason::NotOurMac);
    }
    match eth.ethertype() {
        crate::wire::EtherType::IPV4 => parse_ipv4(frame, hw),
        crate::wire::EtherType::ARP => Parsed {
            class: Class::Arp,
            ..Parsed::dropped(DropReason::EthTruncated)
        },
        crate::wire::EtherType::IPV6 => Parsed {
            class: Class::Ipv6,
            ..Parsed::dropped(DropReason::EthTruncated)
        },
        _ => Parsed::dropped(DropReason::UnknownEthertype),
    }
}

/// An IPv6 frame to an IPv6 multicast MAC (`33:33:...`, RFC 2464 7). Asked only of frames not
/// to our MAC nor broadcast.
#[cold]
fn is_ipv6_multicast<T: AsRef<[u8]>>(eth: &ethernet::Frame<T>) -> bool {
    let d = eth.dst_addr().0;
    d[0] == 0x33 && d[1] == 0x33 && eth.ethertype() == crate::wire::EtherType::IPV6
}

fn parse_ipv4(frame: &[u8], hw: RxChecksum) -> Parsed {
    // The checks of `wire::ipv4::Packet::new_checked`, `tcp::Packet::new_checked` and
    // `udp::Packet::new_checked`, in their order, on fixed offsets (this runs for every frame).
    let l3 = frame.get(L3..).unwrap_or_default();
    let Some(h) = l3.first_chunk::<{ ipv4::HEADER_LEN }>() else {
        return Parsed::dropped(DropReason::Ipv4Malformed);
    };
    let (version, hl) = (h[0] >> 4, usize::from(h[0] & 0x0f) * 4);
    if version != 4 || hl < ipv4::HEADER_LEN {
        return Parsed::dropped(DropReason::Ipv4Malformed);
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if hl > l3.len() || total < hl || total > l3.len() {
        return Parsed::dropped(DropReason::Ipv4BadLength);
    }
    let checksum_ok = match hw.ipv4 {
        Verdict::Good => true,
        Verdict::Bad => false,
        Verdict::Unknown if hl == ipv4::HEADER_LEN => header_sum(h) == 0xffff,
        Verdict::Unknown => checksum::sum(&l3[..hl]) == 0xffff,
    };
    if !checksum_ok {
        return Parsed::dropped(DropReason::Ipv4BadChecksum);
    }
    // More fragments, or a fragment offset.
    if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
        return Parsed::dropped(DropReason::Ipv4Fragment);
    }
    let proto = h[9];
    let addr = |at: usize| Ipv4Addr::new(h[at], h[at + 1], h[at + 2], h[at + 3]);
    let mut p = Parsed {
        class: Class::OtherIp,
        key: ConnKey::new(proto, addr(12), 0, addr(16), 0),
        l4: (L3 + hl) as u16,
        tcp_flags: 0,
        ttl: h[8],
        options: hl > ipv4::HEADER_LEN,
        l4_checksum: hw.l4,
    };
    let l4 = &l3[hl..total];
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    if proto == IpProtocol::TCP.0 {
        let ok = l4.len() >= tcp::HEADER_LEN && {
            let off = usize::from(l4[12] >> 4) * 4;
            off >= tcp::HEADER_LEN && off <= l4.len()
        };
        if !ok {
            return Parsed::dropped(DropReason::TcpMalformed);
        }
        p.class = Class::Flow;
        (p.key.sport, p.key.dport) = (port(0), port(2));
        p.tcp_flags = l4[13];
    } else if proto == IpProtocol::UDP.0 {
        let ok = l4.len() >= udp::HEADER_LEN && {
            let len = usize::from(port(4));
            len >= udp::HEADER_LEN && len <= l4.len()
        };
        if !ok {
            return Parsed::dropped(DropReason::UdpMalformed);
        }
        p.class = Class::Flow;
        (p.key.sport, p.key.dport) = (port(0), port(2));
    } else if proto == IpProtocol::ICMP.0 {
        p.class = Class::Icmp;
    }
    p
}

/// Ones'-complement sum of a 20-byte IPv4 header (0xffff when its checksum is right).
#[inline]
fn header_sum(h: &[u8; ipv4::HEADER_LEN]) -> u16 {
    let mut acc = 0u32;
    for w in h.chunks_exact(2) {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FrameSpec, tcp_frame, udp_frame};
    use crate::wire::tcp::TcpFlags;
    use proptest::prelude::*;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn spec() -> FrameSpec {
        let mut s = FrameSpec::new(
            "198.18.0.2".parse().unwrap(),
            40000,
            "198.18.0.100".parse().unwrap(),
            80,
        );
        s.dst_mac = MAC;
        s
    }

    #[test]
    fn tcp_and_udp_tuples_and_offsets() {
        let f = tcp_frame(&spec(), TcpFlags::SYN, b"hello");
        let p = parse(&f, MAC, RxChecksum::default());
        assert_eq!(p.class, Class::Flow);
        assert_eq!(
            p.key,
            ConnKey::new(
                6,
                "198.18.0.2".parse().unwrap(),
                40000,
                "198.18.0.100".parse().unwrap(),
                80
            )
        );
        assert_eq!((p.l4, p.tcp_flags, p.ttl), (34, 0x02, 64));
        assert!(p.is_plain_syn());
        let f = udp_frame(&spec(), b"x");
        let p = parse(&f, MAC, RxChecksum::default());
        assert_eq!((p.class, p.key.proto, p.tcp_flags), (Class::Flow, 17, 0));
        assert!(!p.is_plain_syn());
    }

    #[test]
    fn each_check_has_its_reason() {
        let good = tcp_frame(&spec(), TcpFlags::ACK, b"");
        let reason = |f: &[u8], hw: RxChecksum| match parse(f, MAC, hw).class {
            Class::Drop(r) => Some(r),
            _ => None,
        };
        assert_eq!(
            reason(&good[..10], RxChecksum::default()),
            Some(DropReason::EthTruncated)
        );
        let mut f = good.clone();
        f[0] = 9;
        assert_eq!(
            reason(&f, RxChecksum::default()),
            Some(DropReason::NotOurMac)
        );
        let mut f = good.clone();
        f[L3 + 10] ^= 0xff;
        assert_eq!(
            reason(&f, RxChecksum::default()),
            Some(DropReason::Ipv4BadChecksum)
        );
        // The NIC's verdict replaces the software check, both ways.
        let hw_good = RxChecksum {
            ipv4: Verdict::Good,
            l4: Verdict::Unknown,
        };
        assert_eq!(reason(&f, hw_good), None);
        let hw_bad = RxChecksum {
            ipv4: Verdict::Bad,
            l4: Verdict::Unknown,
        };
        assert_eq!(reason(&good, hw_bad), Some(DropReason::Ipv4BadChecksum));
        let mut f = good.clone();
        f[12] = 0x88;
        f[13] = 0xcc; // LLDP
        assert_eq!(
            reason(&f, RxChecksum::default()),
            Some(DropReason::UnknownEthertype)
        );
    }

    #[test]
    fn ipv6_frames_to_us_and_to_ipv6_groups_are_classified() {
        let mut f = tcp_frame(&spec(), TcpFlags::ACK, b"");
        f[12] = 0x86;
        f[13] = 0xdd;
        assert_eq!(parse(&f, MAC, RxChecksum::default()).class, Class::Ipv6);
        // Solicited-node and all-nodes groups: accepted for IPv6 only.
        for group in [[0x33, 0x33, 0xff, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1]] {
            f[..6].copy_from_slice(&group);
            assert_eq!(parse(&f, MAC, RxChecksum::default()).class, Class::Ipv6);
        }
        let mut v4 = tcp_frame(&spec(), TcpFlags::ACK, b"");
        v4[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(
            parse(&v4, MAC, RxChecksum::default()).class,
            Class::Drop(DropReason::NotOurMac)
        );
        // Another host's unicast MAC stays not ours.
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        assert_eq!(
            parse(&f, MAC, RxChecksum::default()).class,
            Class::Drop(DropReason::NotOurMac)
        );
    }

    /// What the checked views of `wire` say about a frame's IPv4 and L4 headers, written the
    /// long way: the reference the fixed-offset parser must agree with.
    fn reference(frame: &[u8]) -> Class {
        use crate::wire::Error as WireError;
        let l3 = frame.get(L3..).unwrap_or_default();
        let ip = match ipv4::Packet::new_checked(l3) {
            Ok(ip) => ip,
            Err(WireError::BadLength) => return Class::Drop(DropReason::Ipv4BadLength),
            Err(_) => return Class::Drop(DropReason::Ipv4Malformed),
        };
        if !ip.verify_checksum() {
            return Class::Drop(DropReason::Ipv4BadChecksum);
        }
        if ip.is_fragment() {
            return Class::Drop(DropReason::Ipv4Fragment);
        }
        match ip.protocol() {
            IpProtocol::TCP => match tcp::Packet::new_checked(ip.payload()) {
                Ok(_) => Class::Flow,
                Err(_) => Class::Drop(DropReason::TcpMalformed),
            },
            IpProtocol::UDP => match udp::Packet::new_checked(ip.payload()) {
                Ok(_) => Class::Flow,
                Err(_) => Class::Drop(DropReason::UdpMalformed),
            },
            IpProtocol::ICMP => Class::Icmp,
            _ => Class::OtherIp,
        }
    }

    proptest! {
        /// The fixed-offset parser and the checked views agree on every IPv4 frame: valid ones
        /// with any bytes flipped or cut, and random headers.
        #[test]
        fn agrees_with_the_checked_views(
            udp in any::<bool>(),
            flips in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
            cut in proptest::option::of(14usize..70),
            fix_checksum in any::<bool>(),
        ) {
            let mut f = if udp {
                udp_frame(&spec(), b"abcd")
            } else {
                tcp_frame(&spec(), TcpFlags::ACK, b"hello")
            };
            for (at, x) in flips {
                if let Some(b) = f.get_mut(L3 + at) {
                    *b ^= x;
                }
            }
            if fix_checksum && f.len() >= L3 + 20 {
                let hl = (usize::from(f[L3] & 0x0f) * 4).clamp(20, 60);
                if f.len() >= L3 + hl {
                    f[L3 + 10] = 0;
                    f[L3 + 11] = 0;
                    let c = checksum::checksum(&f[L3..L3 + hl]);
                    f[L3 + 10..L3 + 12].copy_from_slice(&c.to_be_bytes());
                }
            }
            if let Some(n) = cut {
                f.truncate(n);
            }
            let p = parse(&f, MAC, RxChecksum::default());
            prop_assert_eq!(p.class, reference(&f));
            if p.class == Class::Flow {
                let ip = ipv4::Packet::new_checked(&f[L3..]).unwrap();
                prop_assert_eq!((p.key.src, p.key.dst), (ip.src_addr(), ip.dst_addr()));
                let l4 = &f[usize::from(p.l4)..];
                let ports = (
                    u16::from_be_bytes([l4[0], l4[1]]),
                    u16::from_be_bytes([l4[2], l4[3]]),
                );
                prop_assert_eq!((p.key.sport, p.key.dport), ports);
            }
        }

        /// Any bytes: a verdict, never a panic; a Flow's offsets lie inside the frame.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let p = parse(&bytes, MAC, RxChecksum::default());
            if p.class == Class::Flow {
                prop_assert!(usize::from(p.l4) + 8 <= bytes.len());
            }
        }
    }
}
