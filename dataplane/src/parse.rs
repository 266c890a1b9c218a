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
//! Other ethertypes are `unknown_ethertype`. IPv4 options are allowed (and reported in
//! [`Parsed::options`]); L4 is found through the IHL.
//!
//! The L4 checksum is not verified here: only a packet that opens a connection is checked (see
//! the worker), and only when the NIC has not already said whether it is good.

use std::net::Ipv4Addr;

use crate::conn::ConnKey;
use crate::drop::DropReason;
use crate::wire::{Error as WireError, IpProtocol, MacAddr, ethernet, ipv4, tcp, udp};

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
    if dst != mac && !dst.is_broadcast() {
        return Parsed::dropped(DropReason::NotOurMac);
    }
    match eth.ethertype() {
        crate::wire::EtherType::IPV4 => parse_ipv4(frame, hw),
        crate::wire::EtherType::ARP => Parsed {
            class: Class::Arp,
            ..Parsed::dropped(DropReason::EthTruncated)
        },
        _ => Parsed::dropped(DropReason::UnknownEthertype),
    }
}

fn parse_ipv4(frame: &[u8], hw: RxChecksum) -> Parsed {
    let l3 = frame.get(L3..).unwrap_or_default();
    let ip = match ipv4::Packet::new_checked(l3) {
        Ok(ip) => ip,
        Err(WireError::BadLength) => return Parsed::dropped(DropReason::Ipv4BadLength),
        Err(_) => return Parsed::dropped(DropReason::Ipv4Malformed),
    };
    let checksum_ok = match hw.ipv4 {
        Verdict::Good => true,
        Verdict::Bad => false,
        Verdict::Unknown => ip.verify_checksum(),
    };
    if !checksum_ok {
        return Parsed::dropped(DropReason::Ipv4BadChecksum);
    }
    if ip.is_fragment() {
        return Parsed::dropped(DropReason::Ipv4Fragment);
    }
    let proto = ip.protocol();
    let mut p = Parsed {
        class: Class::OtherIp,
        key: ConnKey::new(proto.0, ip.src_addr(), 0, ip.dst_addr(), 0),
        l4: (L3 + usize::from(ip.header_len())) as u16,
        tcp_flags: 0,
        ttl: ip.ttl(),
        options: ip.has_options(),
        l4_checksum: hw.l4,
    };
    let l4 = ip.payload();
    if proto == IpProtocol::TCP {
        let Ok(t) = tcp::Packet::new_checked(l4) else {
            return Parsed::dropped(DropReason::TcpMalformed);
        };
        p.class = Class::Flow;
        (p.key.sport, p.key.dport) = (t.src_port(), t.dst_port());
        p.tcp_flags = (t.flags().0 & 0xff) as u8;
    } else if proto == IpProtocol::UDP {
        let Ok(u) = udp::Packet::new_checked(l4) else {
            return Parsed::dropped(DropReason::UdpMalformed);
        };
        p.class = Class::Flow;
        (p.key.sport, p.key.dport) = (u.src_port(), u.dst_port());
    } else if proto == IpProtocol::ICMP {
        p.class = Class::Icmp;
    }
    p
}

/// The TCP/UDP tuple of an untagged IPv4 frame, read with bounds checks but without the
/// validation [`parse`] does: for decisions that only need a likely tuple (own-first steering
/// asks whether the tuple is in the worker's table; the frame is parsed properly afterwards).
pub fn quick_tuple(f: &[u8]) -> Option<ConnKey> {
    if f.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ihl = usize::from(f.get(14)? & 0x0f) * 4;
    let proto = *f.get(23)?;
    if proto != IpProtocol::TCP.0 && proto != IpProtocol::UDP.0 {
        return None;
    }
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = f.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let port = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(f.get(at..at + 2)?.try_into().ok()?))
    };
    let l4 = L3 + ihl;
    Some(ConnKey::new(
        proto,
        addr(26)?,
        port(l4)?,
        addr(30)?,
        port(l4 + 2)?,
    ))
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
        f[12] = 0x86;
        f[13] = 0xdd;
        assert_eq!(
            reason(&f, RxChecksum::default()),
            Some(DropReason::UnknownEthertype)
        );
    }

    proptest! {
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
