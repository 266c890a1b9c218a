//! Addresses the director owns, per port, with the connected network each one implies.
//!
//! Invariants: an address is owned on at most one port (adding it twice is an error, as it
//! would make `owns` ambiguous); entries are kept sorted by address so [`OwnedAddrs::owns`] is a
//! binary search and never allocates. The set is built by the control plane and read by workers.
//!
//! IPv6 addresses are kept beside the IPv4 ones in the same [`OwnedAddrs`], under the same
//! invariants, through the methods ending in `6` ([`OwnedAddrs::add6`], [`OwnedAddrs::owns6`],
//! ...), so the IPv4 API is untouched.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::route::mask_v6;

/// A DPDK port index, as the runtime numbers ports.
pub type PortId = u16;

/// One owned address: `ip/prefix_len` on `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedAddr {
    pub port: PortId,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
}

impl OwnedAddr {
    /// The connected network (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        mask(self.ip, self.prefix_len)
    }

    /// True when `dst` is on this address's connected network.
    pub fn contains(&self, dst: Ipv4Addr) -> bool {
        mask(dst, self.prefix_len) == self.network()
    }
}

/// `ip` with all but the first `len` bits cleared (`len` above 32 counts as 32).
pub fn mask(ip: Ipv4Addr, len: u8) -> Ipv4Addr {
    let m = match len {
        0 => 0,
        1..=31 => u32::MAX << (32 - u32::from(len)),
        _ => u32::MAX,
    };
    Ipv4Addr::from(u32::from(ip) & m)
}

/// One owned IPv6 address: `ip/prefix_len` on `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedAddr6 {
    pub port: PortId,
    pub ip: Ipv6Addr,
    pub prefix_len: u8,
}

impl OwnedAddr6 {
    /// The connected network (host bits cleared).
    pub fn network(&self) -> Ipv6Addr {
        mask_v6(self.ip, self.prefix_len)
    }

    /// True when `dst` is on this address's connected network.
    pub fn contains(&self, dst: Ipv6Addr) -> bool {
        mask_v6(dst, self.prefix_len) == self.network()
    }
}

/// Why an IPv6 address change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrError6 {
    #[error("address {0} is already owned (on port {1}); delete it first")]
    AlreadyOwned(Ipv6Addr, PortId),
    #[error("address {0} is not owned on port {1}")]
    NotFound(Ipv6Addr, PortId),
    #[error("prefix length {0} is out of range (0..=128)")]
    BadPrefixLen(u8),
}

/// Why an address change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("address {0} is already owned (on port {1}); delete it first")]
    AlreadyOwned(Ipv4Addr, PortId),
    #[error("address {0} is not owned on port {1}")]
    NotFound(Ipv4Addr, PortId),
    #[error("prefix length {0} is out of range (0..=32)")]
    BadPrefixLen(u8),
}

/// The addresses the director owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedAddrs {
    /// Sorted by `ip`; insertion order per port is kept in `seq` for "primary" address choice.
    addrs: Vec<(OwnedAddr, u64)>,
    next_seq: u64,
    /// The IPv6 addresses, sorted by `ip`, with their insertion sequence (as `addrs`).
    addrs6: Vec<(OwnedAddr6, u64)>,
}

impl OwnedAddrs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Own `ip/prefix_len` on `port`.
    pub fn add(&mut self, port: PortId, ip: Ipv4Addr, prefix_len: u8) -> Result<(), AddrError> {
        if prefix_len > 32 {
            return Err(AddrError::BadPrefixLen(prefix_len));
        }
        match self.addrs.binary_search_by_key(&ip, |(a, _)| a.ip) {
            Ok(i) => Err(AddrError::AlreadyOwned(ip, self.addrs[i].0.port)),
            Err(i) => {
                let a = OwnedAddr {
                    port,
                    ip,
                    prefix_len,
                };
                self.addrs.insert(i, (a, self.next_seq));
                self.next_seq += 1;
                Ok(())
            }
        }
    }

    /// Stop owning `ip` on `port`.
    pub fn remove(&mut self, port: PortId, ip: Ipv4Addr) -> Result<(), AddrError> {
        match self.addrs.binary_search_by_key(&ip, |(a, _)| a.ip) {
            Ok(i) if self.addrs[i].0.port == port => {
                self.addrs.remove(i);
                Ok(())
            }
            _ => Err(AddrError::NotFound(ip, port)),
        }
    }

    /// The port `ip` is owned on, if any.
    pub fn owns(&self, ip: Ipv4Addr) -> Option<PortId> {
        self.get(ip).map(|a| a.port)
    }

    /// True when `ip` is owned on `port`.
    pub fn owns_on(&self, port: PortId, ip: Ipv4Addr) -> bool {
        self.owns(ip) == Some(port)
    }

    /// The entry for `ip`.
    pub fn get(&self, ip: Ipv4Addr) -> Option<&OwnedAddr> {
        self.addrs
            .binary_search_by_key(&ip, |(a, _)| a.ip)
            .ok()
            .map(|i| &self.addrs[i].0)
    }

    /// Every owned address, sorted by address.
    pub fn iter(&self) -> impl Iterator<Item = &OwnedAddr> + '_ {
        self.addrs.iter().map(|(a, _)| a)
    }

    /// The addresses on `port`.
    pub fn on_port(&self, port: PortId) -> impl Iterator<Item = &OwnedAddr> + '_ {
        self.iter().filter(move |a| a.port == port)
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The source address to use when sending to `dst` out of `port` (ARP requests, ICMP
    /// errors): the address on `port` whose connected network holds `dst` with the longest
    /// prefix, else the port's primary (first added) address, else `None`.
    pub fn source_for(&self, port: PortId, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        let mut best: Option<&OwnedAddr> = None;
        let mut primary: Option<(&OwnedAddr, u64)> = None;
        for (a, seq) in self.addrs.iter().filter(|(a, _)| a.port == port) {
            if primary.is_none_or(|(_, s)| *seq < s) {
                primary = Some((a, *seq));
            }
            if a.contains(dst) && best.is_none_or(|b| a.prefix_len > b.prefix_len) {
                best = Some(a);
            }
        }
        best.or(primary.map(|(a, _)| a)).map(|a| a.ip)
    }

    /// Own the IPv6 address `ip/prefix_len` on `port`.
    pub fn add6(&mut self, port: PortId, ip: Ipv6Addr, prefix_len: u8) -> Result<(), AddrError6> {
        if prefix_len > 128 {
            return Err(AddrError6::BadPrefixLen(prefix_len));
        }
        match self.addrs6.binary_search_by_key(&ip, |(a, _)| a.ip) {
            Ok(i) => Err(AddrError6::AlreadyOwned(ip, self.addrs6[i].0.port)),
            Err(i) => {
                let a = OwnedAddr6 {
                    port,
                    ip,
                    prefix_len,
                };
                self.addrs6.insert(i, (a, self.next_seq));
                self.next_seq += 1;
                Ok(())
            }
        }
    }

    /// Stop owning the IPv6 address `ip` on `port`.
    pub fn remove6(&mut self, port: PortId, ip: Ipv6Addr) -> Result<(), AddrError6> {
        match self.addrs6.binary_search_by_key(&ip, |(a, _)| a.ip) {
            Ok(i) if self.addrs6[i].0.port == port => {
                self.addrs6.remove(i);
                Ok(())
            }
            _ => Err(AddrError6::NotFound(ip, port)),
        }
    }

    /// The entry for the IPv6 address `ip`.
    pub fn get6(&self, ip: Ipv6Addr) -> Option<&OwnedAddr6> {
        self.addrs6
            .binary_search_by_key(&ip, |(a, _)| a.ip)
            .ok()
            .map(|i| &self.addrs6[i].0)
    }

    /// The port the IPv6 address `ip` is owned on, if any.
    pub fn owns6(&self, ip: Ipv6Addr) -> Option<PortId> {
        self.get6(ip).map(|a| a.port)
    }

    /// True when the IPv6 address `ip` is owned on `port`.
    pub fn owns_on6(&self, port: PortId, ip: Ipv6Addr) -> bool {
        self.owns6(ip) == Some(port)
    }

    /// Every owned IPv6 address, sorted by address.
    pub fn iter6(&self) -> impl Iterator<Item = &OwnedAddr6> + '_ {
        self.addrs6.iter().map(|(a, _)| a)
    }

    /// The IPv6 addresses on `port`.
    pub fn on_port6(&self, port: PortId) -> impl Iterator<Item = &OwnedAddr6> + '_ {
        self.iter6().filter(move |a| a.port == port)
    }

    /// Number of owned IPv6 addresses.
    pub fn len6(&self) -> usize {
        self.addrs6.len()
    }

    /// [`OwnedAddrs::source_for`] for IPv6: the address on `port` whose connected network holds
    /// `dst` with the longest prefix, else the port's primary (first added) IPv6 address.
    pub fn source_for6(&self, port: PortId, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        let mut best: Option<&OwnedAddr6> = None;
        let mut primary: Option<(&OwnedAddr6, u64)> = None;
        for (a, seq) in self.addrs6.iter().filter(|(a, _)| a.port == port) {
            if primary.is_none_or(|(_, s)| *seq < s) {
                primary = Some((a, *seq));
            }
            if a.contains(dst) && best.is_none_or(|b| a.prefix_len > b.prefix_len) {
                best = Some(a);
            }
        }
        best.or(primary.map(|(a, _)| a)).map(|a| a.ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn add_remove_lookup() {
        let mut o = OwnedAddrs::new();
        o.add(0, ip("198.18.0.1"), 24).unwrap();
        o.add(1, ip("198.18.1.1"), 24).unwrap();
        o.add(0, ip("198.18.0.100"), 32).unwrap();
        assert_eq!(o.owns(ip("198.18.0.1")), Some(0));
        assert_eq!(o.owns(ip("198.18.1.1")), Some(1));
        assert_eq!(o.owns(ip("198.18.1.2")), None);
        assert!(o.owns_on(0, ip("198.18.0.100")));
        assert!(!o.owns_on(1, ip("198.18.0.100")));
        assert_eq!(
            o.add(1, ip("198.18.0.1"), 24),
            Err(AddrError::AlreadyOwned(ip("198.18.0.1"), 0))
        );
        assert_eq!(
            o.add(1, ip("198.18.9.1"), 33),
            Err(AddrError::BadPrefixLen(33))
        );
        assert_eq!(
            o.remove(1, ip("198.18.0.1")),
            Err(AddrError::NotFound(ip("198.18.0.1"), 1))
        );
        o.remove(0, ip("198.18.0.1")).unwrap();
        assert_eq!(o.owns(ip("198.18.0.1")), None);
        assert_eq!(o.len(), 2);
    }

    #[test]
    fn source_selection() {
        let mut o = OwnedAddrs::new();
        o.add(0, ip("198.18.0.1"), 24).unwrap();
        o.add(0, ip("198.18.0.5"), 25).unwrap();
        o.add(0, ip("198.18.2.1"), 24).unwrap();
        o.add(1, ip("198.18.1.1"), 24).unwrap();
        // Longest connected prefix wins.
        assert_eq!(o.source_for(0, ip("198.18.0.9")), Some(ip("198.18.0.5")));
        assert_eq!(o.source_for(0, ip("198.18.0.200")), Some(ip("198.18.0.1")));
        assert_eq!(o.source_for(0, ip("198.18.2.9")), Some(ip("198.18.2.1")));
        // Off-link: the primary (first added) address of the port.
        assert_eq!(o.source_for(0, ip("198.19.0.1")), Some(ip("198.18.0.1")));
        assert_eq!(o.source_for(1, ip("198.19.0.1")), Some(ip("198.18.1.1")));
        assert_eq!(o.source_for(2, ip("198.19.0.1")), None);
        assert_eq!(mask(ip("198.18.0.77"), 0), ip("0.0.0.0"));
        assert_eq!(mask(ip("198.18.0.77"), 26), ip("198.18.0.64"));
    }

    #[test]
    fn ipv6_addresses_beside_ipv4() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let mut o = OwnedAddrs::new();
        o.add(0, ip("198.18.0.1"), 24).unwrap();
        o.add6(0, v6("2001:2::1"), 64).unwrap();
        o.add6(0, v6("2001:2:0:1::1"), 64).unwrap();
        o.add6(1, v6("2001:2:0:2::1"), 64).unwrap();
        assert_eq!(o.len(), 1, "the IPv4 view is unchanged");
        assert_eq!(o.len6(), 3);
        assert_eq!(o.owns6(v6("2001:2::1")), Some(0));
        assert!(o.owns_on6(1, v6("2001:2:0:2::1")));
        assert!(!o.owns_on6(0, v6("2001:2:0:2::1")));
        assert_eq!(
            o.add6(1, v6("2001:2::1"), 64),
            Err(AddrError6::AlreadyOwned(v6("2001:2::1"), 0))
        );
        assert_eq!(
            o.add6(1, v6("2001:2::9"), 129),
            Err(AddrError6::BadPrefixLen(129))
        );
        assert_eq!(
            o.source_for6(0, v6("2001:2:0:1::77")),
            Some(v6("2001:2:0:1::1"))
        );
        assert_eq!(o.source_for6(0, v6("fe80::1")), Some(v6("2001:2::1")));
        assert_eq!(o.source_for6(2, v6("fe80::1")), None);
        assert_eq!(
            o.remove6(1, v6("2001:2::1")),
            Err(AddrError6::NotFound(v6("2001:2::1"), 1))
        );
        o.remove6(0, v6("2001:2::1")).unwrap();
        assert_eq!(o.owns6(v6("2001:2::1")), None);
        assert_eq!(o.on_port6(0).count(), 1);
    }
}
