//! The IPv4 routing table: static routes plus the connected routes the owned addresses imply,
//! looked up by longest prefix.
//!
//! Representation: one `Vec` sorted by prefix length, longest first (connected before static at
//! equal length), scanned linearly; the first match is the longest. That is O(routes) per lookup,
//! fine for the tens of routes a director has. A DIR-24-8 table can replace it behind the same
//! `lookup` when route counts grow. Invariants: prefixes are stored with host bits clear, a
//! (prefix, len) pair appears at most once among static routes, and `lookup` never allocates.

use super::addr::{OwnedAddrs, PortId, mask};
use std::net::Ipv4Addr;

/// A route: `prefix/len` reached through `port`, via a gateway or directly (connected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: Ipv4Addr,
    pub len: u8,
    pub via: Option<Ipv4Addr>,
    pub port: PortId,
}

impl Route {
    pub fn contains(&self, dst: Ipv4Addr) -> bool {
        mask(dst, self.len) == self.prefix
    }
}

/// Where to send a packet: out of `port`, to the link-layer neighbour `gateway_or_dst` (the
/// gateway for a routed destination, the destination itself on a connected network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub port: PortId,
    pub gateway_or_dst: Ipv4Addr,
}

/// Why a route change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("prefix length {0} is out of range (0..=32)")]
    BadPrefixLen(u8),
    #[error("{0}/{1} has host bits set; use {2}/{1}")]
    HostBitsSet(Ipv4Addr, u8, Ipv4Addr),
    #[error("a route to {0}/{1} already exists; delete it first")]
    Exists(Ipv4Addr, u8),
    #[error("no route to {0}/{1}")]
    NotFound(Ipv4Addr, u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    route: Route,
    connected: bool,
}

/// The routing table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    entries: Vec<Entry>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table with the connected routes of `addrs` and no static routes.
    pub fn with_connected(addrs: &OwnedAddrs) -> Self {
        let mut t = Self::new();
        t.set_connected(addrs);
        t
    }

    fn sort(&mut self) {
        // Longest prefix first; connected before static at equal length (a directly attached
        // network wins over a static route to the same prefix).
        self.entries
            .sort_by_key(|e| (core::cmp::Reverse(e.route.len), !e.connected));
    }

    /// Add a static route.
    pub fn add(&mut self, route: Route) -> Result<(), RouteError> {
        if route.len > 32 {
            return Err(RouteError::BadPrefixLen(route.len));
        }
        let net = mask(route.prefix, route.len);
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

    fn find_static(&self, prefix: Ipv4Addr, len: u8) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| !e.connected && e.route.prefix == prefix && e.route.len == len)
    }

    /// Remove the static route to `prefix/len`.
    pub fn remove(&mut self, prefix: Ipv4Addr, len: u8) -> Result<Route, RouteError> {
        match self.find_static(prefix, len) {
            Some(i) => Ok(self.entries.remove(i).route),
            None => Err(RouteError::NotFound(prefix, len)),
        }
    }

    /// Replace the connected routes with those of `addrs` (call after every address change).
    pub fn set_connected(&mut self, addrs: &OwnedAddrs) {
        self.entries.retain(|e| !e.connected);
        for a in addrs.iter() {
            let route = Route {
                prefix: a.network(),
                len: a.prefix_len,
                via: None,
                port: a.port,
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
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        self.entries
            .iter()
            .find(|e| e.route.contains(dst))
            .map(|e| NextHop {
                port: e.route.port,
                gateway_or_dst: e.route.via.unwrap_or(dst),
            })
    }

    /// Every route with whether it is connected, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = (&Route, bool)> + '_ {
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
}
