//! FULLNAT (DPVS `-b`/`--fullnat`, listed `FullNat`): both ends are translated, so the real
//! server sees the director's local address (LIP) as the client and replies to it; it needs no
//! route back through the director.
//!
//! | direction | source | destination |
//! |---|---|---|
//! | request (client -> VS) | CIP:cport -> LIP:lport | VIP:vport -> RIP:rport |
//! | reply (RS -> LIP) | RIP:rport -> VIP:vport | LIP:lport -> CIP:cport |
//!
//! FULLNAT6 is the same table with IPv6 addresses throughout (LIP6 from the service's IPv6
//! local addresses): [`to_dest6`] and [`to_client6`], over [`nat::rewrite_parsed6`]. The client
//! reaches the real server in the 20-byte IPv6 TOA ([`super::toa::insert6`]). A v6 client served
//! by an IPv4 real server is NAT64 ([`super::nat64`]), not this.
//!
//! Both rewrites are incremental (the NAT helpers, applied twice). The client's address reaches
//! the real server in the TOA option (see [`super::toa`]); LIP:lport comes from the worker's
//! [`crate::laddr::LportAlloc`].

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::drop::DropReason;
use crate::parse::Parsed;
use crate::parse6::Parsed6;

use super::nat;

/// Rewrite a request `p` describes: source to `lip:lport`, destination to `rip:rport`.
#[inline]
pub fn to_dest(
    frame: &mut [u8],
    p: &Parsed,
    lip: Ipv4Addr,
    lport: u16,
    rip: Ipv4Addr,
    rport: u16,
) -> Result<(), DropReason> {
    nat::rewrite_parsed(frame, p, Some((lip, lport)), Some((rip, rport)))
}

/// Rewrite a reply `p` describes: source to `vip:vport`, destination to `cip:cport`.
#[inline]
pub fn to_client(
    frame: &mut [u8],
    p: &Parsed,
    vip: Ipv4Addr,
    vport: u16,
    cip: Ipv4Addr,
    cport: u16,
) -> Result<(), DropReason> {
    nat::rewrite_parsed(frame, p, Some((vip, vport)), Some((cip, cport)))
}

/// FULLNAT6 request `p` describes: source to `lip:lport`, destination to `rip:rport`.
#[inline]
pub fn to_dest6(
    frame: &mut [u8],
    p: &Parsed6,
    lip: Ipv6Addr,
    lport: u16,
    rip: Ipv6Addr,
    rport: u16,
) -> Result<(), DropReason> {
    nat::rewrite_parsed6(frame, p, Some((lip, lport)), Some((rip, rport)))
}

/// FULLNAT6 reply `p` describes: source to `vip:vport`, destination to `cip:cport`.
#[inline]
pub fn to_client6(
    frame: &mut [u8],
    p: &Parsed6,
    vip: Ipv6Addr,
    vport: u16,
    cip: Ipv6Addr,
    cport: u16,
) -> Result<(), DropReason> {
    nat::rewrite_parsed6(frame, p, Some((vip, vport)), Some((cip, cport)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{RxChecksum, parse};
    use crate::testutil::{FrameSpec, PORT0_MAC, tcp_frame, udp_frame, verify_frame};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn both_ends_are_rewritten_with_valid_checksums() {
        for udp in [false, true] {
            let spec = FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80);
            let f = if udp {
                udp_frame(&spec, b"q")
            } else {
                tcp_frame(&spec, crate::wire::tcp::TcpFlags::SYN, b"")
            };
            let mut b = f.clone();
            let p = parse(&b, PORT0_MAC, RxChecksum::default());
            to_dest(&mut b, &p, ip("198.18.1.1"), 5000, ip("198.18.1.11"), 8080).unwrap();
            let v = verify_frame(&b).unwrap();
            assert_eq!(
                (v.src, v.sport, v.dst, v.dport),
                (ip("198.18.1.1"), 5000, ip("198.18.1.11"), 8080)
            );
            let p = parse(&b, PORT0_MAC, RxChecksum::default());
            to_client(&mut b, &p, ip("198.18.0.100"), 80, ip("198.18.0.2"), 40000).unwrap();
            // Swapped ends, same checksums: the reply rewrite is the request's inverse.
            let v = verify_frame(&b).unwrap();
            assert_eq!(
                (v.src, v.sport, v.dst, v.dport),
                (ip("198.18.0.100"), 80, ip("198.18.0.2"), 40000)
            );
        }
    }
}
