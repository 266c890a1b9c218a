//! The routing tables, IPv4 and IPv6 (one generic table over [`RouteAddr`]): static routes plus
//! the connected routes the owned addresses imply, looked up by longest prefix.
//!
//! Representation: one `Vec` sorted by prefix length, longest first (connected before static at
//! equal length), scanned linearly; the first match is the longest. That is O(routes) per lookup,
//! fine for the tens of routes a director has. A DIR-24-8 table (a tree for IPv6) can replace it
//! behind the same `lookup` when route counts grow. Invariants: prefixes are stored with host
//! bits clear, a (prefix, len) pair appears at most once among static routes, and `lookup` never
//! allocates. `RouteTable` (no parameter) is the IPv4 table; `RouteTable<Ipv6Addr>` the IPv6
//! one, whose connected routes come from the owned IPv6 prefixes
//! ([`RouteTable::set_connected_prefixes`]).

use super::addr::{OwnedAddrs, PortId, mask};
use core::fmt::{Debug, Display};
use std::net::{Ipv4Addr, Ipv6Addr};

/// An address family a [`RouteTable`] routes.
pub trait RouteAddr: Copy + Eq + Debug + Display {
    /// The longest prefix (32 or 128).
    const MAX_PREFIX: u8;
    /// The address with all but the first `len` bits cleared (`len` above the maximum counts
    /// as the maximum).
    fn mask(self, len: u8) -> Self;
}

impl RouteAddr for Ipv4Addr {
    const MAX_PREFIX: u8 = 32;
    fn mask(self, len: u8) -> Self {
        mask(self, len)
    }
}

impl RouteAddr for Ipv6Addr {
    const MAX_PREFIX: u8 = 128;
    fn mask(self, len: u8) -> Self {
        mask_v6(self, len)
    }
}

/// `ip` with all but the first `len` bits cleared (`len` above 128 counts as 128).
pub fn mask_v6(ip: Ipv6Addr, len: u8) -> Ipv6Addr {
    let m = match len {
        0 => 0,
        1..=127 => u128::MAX << (128 - u32::from(len)),
        _ => u128::MAX,
    };
    Ipv6Addr::from(u128::from(ip) & m)
}

/// A route: `prefix/len` reached through `port`, via a gateway or directly (connected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<A = Ipv4Addr> {
    pub prefix: A,
    pub len: u8,
    pub via: Option<A>,
    pub port: PortId,
}

impl<A: RouteAddr> Route<A> {
    pub fn contains(&self, dst: A) -> bool {
        dst.mask(self.len) == self.prefix
    }
}

/// Where to send a packet: out of `port`, to the link-layer neighbour `gateway_or_dst` (the
/// gateway for a routed destination, the destination itself on a connected network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop<A = Ipv4Addr> {
    pub port: PortId,
    pub gateway_or_dst: A,
}

/// Why a route change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError<A: RouteAddr = Ipv4Addr> {
    #[error("prefix length {0} is out of range (0..={max})", max = A::MAX_PREFIX)]
    BadPrefixLen(u8),
    #[error("{0}/{1} has host bits set; use {2}/{1}")]
    HostBitsSet(A, u8, A),
    #[error("a route to {0}/{1} already exists; delete it first")]
    Exists(A, u8),
    #[error("no route to {0}/{1}")]
    NotFound(A, u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry<A> {
    route: Route<A>,
    connected: bool,
}

/// The routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable<A = Ipv4Addr> {
    entries: Vec<Entry<A>>,
}

impl<A> Default for RouteTable<A> {
    fn default() -> Self {
        RouteTable {
            entries: Vec::new(),
        }
    }
}

impl RouteTable<Ipv4Addr> {
    /// A table with the connected routes of `addrs` and no static routes.
    pub fn with_connected(addrs: &OwnedAddrs) -> Self {
        let mut t = Self::new();
        t.set_connected(addrs);
        t
    }

    /// Replace the connected routes with those of `addrs` (call after every address change).
    pub fn set_connected(&mut self, addrs: &OwnedAddrs) {
        self.set_connected_prefixes(addrs.iter().map(|a| (a.port, a.ip, a.prefix_len)));
    }
}

impl RouteTable<Ipv6Addr> {
    /// An IPv6 table with the connected routes of the IPv6 addresses of `addrs`.
    pub fn with_connected6(addrs: &OwnedAddrs) -> Self {
        let mut t = Self::new();
        t.set_connected6(addrs);
        t
    }

    /// Replace the connected routes with those of the IPv6 addresses of `addrs`.
    pub fn set_connected6(&mut self, addrs: &OwnedAddrs) {
        self.set_connected_prefixes(addrs.iter6().map(|a| (a.port, a.ip, a.prefix_len)));
    }
}

impl<A: RouteAddr> RouteTable<A> {
    pub fn new() -> Self {
        Self::default()
    }

    fn sort(&mut self) {
        // Longest prefix first; connected before static at equal length (a directly attached
        // network wins over a static route to the same prefix).
        self.entries
            .sort_by_key(|e| (core::cmp::Reverse(e.route.len), !e.connected));
    }

    /// Add a static route.
    pub fn add(&mut self, route: Route<A>) -> Result<(), RouteError<A>> {
        if route.len > A::MAX_PREFIX {
            return Err(RouteError::BadPrefixLen(route.len));
        }
        let net = route.prefix.mask(route.len);
        if net != route.prefix {
            return Err(RouteError::HostBitsSet(route.prefix, route.len, net));
        }
        if self.find_static(route.prefix, route.len).is_some() {
            return Err(RouteError::Exists(route.prefix, route.len));
        }
        self.entries.push(Entry {
            route,
            connected: false,
        });
        self.sort();
        Ok(())
    }

    fn find_static(&self, prefix: A, len: u8) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| !e.connected && e.route.prefix == prefix && e.route.len == len)
    }

    /// Remove the static route to `prefix/len`.
    pub fn remove(&mut self, prefix: A, len: u8) -> Result<Route<A>, RouteError<A>> {
        match self.find_static(prefix, len) {
            Some(i) => Ok(self.entries.remove(i).route),
            None => Err(RouteError::NotFound(prefix, len)),
        }
    }

    /// Replace the connected routes with the networks of `(port, address, prefix length)`
    /// triples: each address's network (host bits cleared) is reached directly through its
    /// port. A length above the family's maximum counts as the maximum.
    pub fn set_connected_prefixes(&mut self, addrs: impl IntoIterator<Item = (PortId, A, u8)>) {
        self.entries.retain(|e| !e.connected);
        for (port, ip, len) in addrs {
            let len = len.min(A::MAX_PREFIX);
            let route = Route {
                prefix: ip.mask(len),
                len,
                via: None,
                port,
            };
            let dup = self
                .entries
                .iter()
                .any(|e| e.connected && e.route.prefix == route.prefix && e.route.len == route.len);
            if !dup {
                self.entries.push(Entry {
                    route,
                    connected: true,
                });
            }
        }
        self.sort();
    }

    /// Longest-prefix match for `dst`.
    pub fn lookup(&self, dst: A) -> Option<NextHop<A>> {
        self.entries
            .iter()
            .find(|e| e.route.contains(dst))
            .map(|e| NextHop {
                port: e.route.port,
                gateway_or_dst: e.route.via.unwrap_or(dst),
            })
    }

    /// Every route with whether it is connected, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = (&Route<A>, bool)> + '_ {
        self.entries.iter().map(|e| (&e.route, e.connected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_match() {
        let mut addrs = OwnedAddrs::new();
        addrs.add(0, ip("198.18.0.1"), 24).unwrap();
        addrs.add(1, ip("198.18.1.1"), 24).unwrap();
        let mut t = RouteTable::with_connected(&addrs);
        t.add(Route {
            prefix: ip("0.0.0.0"),
            len: 0,
            via: Some(ip("198.18.0.254")),
            port: 0,
        })
        .unwrap();
        t.add(Route {
            prefix: ip("198.19.0.0"),
            len: 16,
            via: Some(ip("198.18.1.254")),
            port: 1,
        })
        .unwrap();
        t.add(Route {
            prefix: ip("198.19.7.0"),
            len: 24,
            via: Some(ip("198.18.0.253")),
            port: 0,
        })
        .unwrap();
        let hop = |p, g: &str| {
            Some(NextHop {
                port: p,
                gateway_or_dst: ip(g),
            })
        };
        assert_eq!(t.lookup(ip("198.18.0.7")), hop(0, "198.18.0.7"));
        assert_eq!(t.lookup(ip("198.18.1.7")), hop(1, "198.18.1.7"));
        assert_eq!(t.lookup(ip("198.19.3.3")), hop(1, "198.18.1.254"));
        assert_eq!(t.lookup(ip("198.19.7.3")), hop(0, "198.18.0.253"));
        assert_eq!(t.lookup(ip("198.20.0.1")), hop(0, "198.18.0.254"));
        t.remove(ip("0.0.0.0"), 0).unwrap();
        assert_eq!(t.lookup(ip("198.20.0.1")), None);
        // Connected routes follow address changes.
        addrs.remove(1, ip("198.18.1.1")).unwrap();
        t.set_connected(&addrs);
        assert_eq!(t.lookup(ip("198.18.1.7")), None);
        assert_eq!(t.iter().count(), 3);
    }

    #[test]
    fn refused_changes() {
        let mut t = RouteTable::new();
        let r = Route {
            prefix: ip("198.18.0.1"),
            len: 24,
            via: None,
            port: 0,
        };
        assert_eq!(
            t.add(r),
            Err(RouteError::HostBitsSet(
                ip("198.18.0.1"),
                24,
                ip("198.18.0.0")
            ))
        );
        assert_eq!(
            t.add(Route { len: 33, ..r }),
            Err(RouteError::BadPrefixLen(33))
        );
        let r = Route {
            prefix: ip("198.18.0.0"),
            ..r
        };
        t.add(r).unwrap();
        assert_eq!(t.add(r), Err(RouteError::Exists(r.prefix, 24)));
        assert_eq!(
            t.remove(ip("198.18.1.0"), 24),
            Err(RouteError::NotFound(ip("198.18.1.0"), 24))
        );
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_longest_prefix_match() {
        let mut t = RouteTable::<Ipv6Addr>::new();
        t.set_connected_prefixes([
            (0, ip6("2001:2::1"), 64),
            (1, ip6("2001:2:0:1::1"), 64),
            // The same network twice yields one connected route.
            (0, ip6("2001:2::2"), 64),
        ]);
        assert_eq!(t.iter().count(), 2);
        for (prefix, len, via, port) in [
            ("::", 0, "2001:2::fffe", 0),
            ("2001:2:0:8000::", 49, "2001:2:0:1::fffe", 1),
            ("2001:2:0:8000::", 56, "2001:2::fffd", 0),
            ("2001:2:0:8000::7", 128, "2001:2:0:1::fffd", 1),
        ] {
            t.add(Route {
                prefix: ip6(prefix),
                len,
                via: Some(ip6(via)),
                port,
            })
            .unwrap();
        }
        let hop = |p, g: &str| {
            Some(NextHop {
                port: p,
                gateway_or_dst: ip6(g),
            })
        };
        assert_eq!(t.lookup(ip6("2001:2::77")), hop(0, "2001:2::77"));
        assert_eq!(t.lookup(ip6("2001:2:0:1::77")), hop(1, "2001:2:0:1::77"));
        assert_eq!(
            t.lookup(ip6("2001:2:0:8100::1")),
            hop(1, "2001:2:0:1::fffe")
        );
        assert_eq!(t.lookup(ip6("2001:2:0:8000::1")), hop(0, "2001:2::fffd"));
        assert_eq!(
            t.lookup(ip6("2001:2:0:8000::7")),
            hop(1, "2001:2:0:1::fffd")
        );
        assert_eq!(t.lookup(ip6("2001:2:1::1")), hop(0, "2001:2::fffe"));
        t.remove(ip6("::"), 0).unwrap();
        assert_eq!(t.lookup(ip6("2001:2:1::1")), None);
        // Connected routes follow address changes.
        t.set_connected_prefixes([(0, ip6("2001:2::1"), 64)]);
        assert_eq!(t.lookup(ip6("2001:2:0:1::77")), None);
        assert_eq!(mask_v6(ip6("2001:2::ffff"), 127), ip6("2001:2::fffe"));
        assert_eq!(mask_v6(ip6("2001:2::ffff"), 200), ip6("2001:2::ffff"));
    }

    #[test]
    fn ipv6_refused_changes() {
        let mut t = RouteTable::<Ipv6Addr>::new();
        let r = Route {
            prefix: ip6("2001:2::1"),
            len: 64,
            via: None,
            port: 0,
        };
        let e = t.add(r).unwrap_err();
        assert_eq!(
            e,
            RouteError::HostBitsSet(ip6("2001:2::1"), 64, ip6("2001:2::"))
        );
        assert_eq!(
            e.to_string(),
            "2001:2::1/64 has host bits set; use 2001:2::/64"
        );
        let e = t.add(Route { len: 129, ..r }).unwrap_err();
        assert_eq!(e, RouteError::BadPrefixLen(129));
        assert_eq!(e.to_string(), "prefix length 129 is out of range (0..=128)");
        let r = Route {
            prefix: ip6("2001:2::"),
            ..r
        };
        t.add(r).unwrap();
        assert_eq!(t.add(r), Err(RouteError::Exists(r.prefix, 64)));
        assert_eq!(
            t.remove(ip6("2001:2:1::"), 64),
            Err(RouteError::NotFound(ip6("2001:2:1::"), 64))
        );
        // The IPv4 message is unchanged.
        assert_eq!(
            RouteError::<Ipv4Addr>::BadPrefixLen(33).to_string(),
            "prefix length 33 is out of range (0..=32)"
        );
    }
}
