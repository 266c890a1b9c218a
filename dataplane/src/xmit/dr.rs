//! Direct routing (`-g`, Route): the request keeps its IP header and payload byte for byte; only
//! the Ethernet destination changes, to the real server's MAC, which the worker resolves by ARP on
//! the port whose connected network holds the RIP (a route lookup of the RIP, not of the packet's
//! destination, which stays the VIP). Replies go from the real server straight to the client.
//!
//! TTL: left unchanged. The director acts as an L2 hop here, as IPVS does (it takes the packet at
//! LOCAL_IN, where no forwarding decrement has happened, and `ip_vs_dr_xmit` does not touch the
//! header), so a DR packet leaves bit-identical at L3 and no IP checksum work is needed. A packet
//! arriving with TTL <= 1 is still refused (`ttl_exceeded`) like for every method, before it can
//! open or change a connection.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Fwd, Fwd6};

/// Where a request goes: to the neighbour `rip` (the real server), the packet untouched (its
/// headers were checked when it was parsed) and its TTL left alone.
#[inline]
pub const fn to_dest(rip: Ipv4Addr) -> Fwd {
    Fwd {
        via: Some(rip),
        dec_ttl: false,
    }
}

/// DR6: the same for an IPv6 request. Nothing in the packet changes (the hop limit included,
/// as IPVS's `ip_vs_dr_xmit_v6` leaves it); it goes to the neighbour `rip`, resolved by
/// Neighbour Discovery on the port whose connected prefix holds it.
#[inline]
pub const fn to_dest6(rip: Ipv6Addr) -> Fwd6 {
    Fwd6::V6 {
        via: Some(rip),
        dec_hop: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_to_the_real_server_without_touching_the_ttl() {
        let rip = Ipv4Addr::new(198, 18, 0, 11);
        assert_eq!(
            to_dest(rip),
            Fwd {
                via: Some(rip),
                dec_ttl: false
            }
        );
    }

    #[test]
    fn dr6_routes_to_the_real_server_without_touching_the_hop_limit() {
        let rip: Ipv6Addr = "2001:3::11".parse().unwrap();
        assert_eq!(
            to_dest6(rip),
            Fwd6::V6 {
                via: Some(rip),
                dec_hop: false
            }
        );
    }
}
