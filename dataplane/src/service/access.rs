//! Per-service access lists and admission limits: what may open a new connection to a service.
//!
//! **Lists** (DPVS's blacklist/whitelist, `ipvsadm -U/-V/-B -k` and `-O/-Y/-W -2`): a service
//! has a deny list and an allow list of IPv4 addresses and prefixes. A source on the deny list is
//! refused; when the allow list is not empty, a source that is not on it is refused; the deny list
//! wins over the allow list. Only new connections are checked (packets of a connection that exists
//! pass, as in DPVS, where the check sits in the scheduling step): adding an entry does not cut a
//! client that is already connected.
//!
//! Matching is [`PrefixSet::contains`]: the entries' address ranges are merged into sorted,
//! disjoint intervals, so a lookup is one binary search and never allocates. The sets are built on the control thread when a list
//! changes and shared with the workers by `Arc` inside the service snapshot.
//!
//! **Limits** (rvs's own, no IPVS/DPVS spelling): [`ServiceLimits`] on the service's config.
//! How the workers enforce them is in the worker's `admit` module.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv4Addr;

/// An IPv4 prefix (`ADDR` is a `/32`). The address is kept with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    net: Ipv4Addr,
    len: u8,
}

/// Why a text is not a prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("`{0}' is not an IPv4 address or ADDR/LEN prefix")]
    Syntax(String),
    #[error("prefix length {0} is out of range 0..32")]
    Length(u32),
    #[error("`{0}' has host bits set beyond its prefix length")]
    HostBits(String),
}

/// The network mask of a `/len`.
#[inline]
pub const fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

impl Prefix {
    /// `net/len`; host bits of `net` beyond `len` must be clear.
    pub fn new(net: Ipv4Addr, len: u8) -> Result<Prefix, PrefixError> {
        if len > 32 {
            return Err(PrefixError::Length(u32::from(len)));
        }
        if u32::from(net) & !mask(len) != 0 {
            return Err(PrefixError::HostBits(format!("{net}/{len}")));
        }
        Ok(Prefix { net, len })
    }

    /// One address (`/32`).
    pub const fn host(ip: Ipv4Addr) -> Prefix {
        Prefix { net: ip, len: 32 }
    }

    pub fn network(&self) -> Ipv4Addr {
        self.net
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is the empty prefix `0.0.0.0/0` (it holds every address).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// Whether `ip` is inside this prefix.
    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.net)
    }
}

impl fmt::Display for Prefix {
    /// `ADDR` for a `/32` (as DPVS's ipvsadm prints list entries), `ADDR/LEN` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 32 {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.len)
        }
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let syntax = || PrefixError::Syntax(s.to_owned());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) || l.len() > 3 {
                    return Err(syntax());
                }
                let l: u32 = l.parse().map_err(|_| syntax())?;
                if l > 32 {
                    return Err(PrefixError::Length(l));
                }
                (a, l as u8)
            }
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        Prefix::new(addr, len)
    }
}

/// A set of prefixes for membership tests: the address ranges they cover, merged into sorted,
/// disjoint `[first, last]` intervals, so a lookup is one binary search whatever the number of
/// entries and prefix lengths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixSet {
    ranges: Vec<(u32, u32)>,
}

impl PrefixSet {
    /// The set of `prefixes` (overlapping and adjacent ones merge).
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a Prefix>) -> PrefixSet {
        let mut spans: Vec<(u32, u32)> = prefixes
            .into_iter()
            .map(|p| {
                let first = u32::from(p.net);
                (first, first | !mask(p.len))
            })
            .collect();
        spans.sort_unstable();
        let mut ranges: Vec<(u32, u32)> = Vec::with_capacity(spans.len());
        for (first, last) in spans {
            match ranges.last_mut() {
                Some(prev) if u64::from(first) <= u64::from(prev.1) + 1 => {
                    prev.1 = prev.1.max(last);
                }
                _ => ranges.push((first, last)),
            }
        }
        PrefixSet { ranges }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether some prefix of the set holds `ip`.
    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        let i = self.ranges.partition_point(|r| r.0 <= ip);
        i > 0 && self.ranges[i - 1].1 >= ip
    }
}

/// Which list (DPVS's blacklist = deny, whitelist = allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Deny,
    Allow,
}

/// Why a source may not open a connection to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// On the deny list.
    Denied,
    /// The allow list is not empty and the source is not on it.
    NotAllowed,
}

/// Why a list change was refused (the lists are unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("{0} is already on the list")]
    Exists(Prefix),
    #[error("{0} is not on the list")]
    Missing(Prefix),
    #[error("the list holds {MAX_LIST_ENTRIES} entries already")]
    Full,
}

/// Most entries of one list of one service.
pub const MAX_LIST_ENTRIES: usize = 65_536;

/// A service's deny and allow lists: the entries in the order they were added (for listing and
/// saving) and their lookup sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessLists {
    deny: Vec<Prefix>,
    allow: Vec<Prefix>,
    deny_set: PrefixSet,
    allow_set: PrefixSet,
}

impl AccessLists {
    /// The entries of one list, in the order they were added.
    pub fn entries(&self, kind: ListKind) -> &[Prefix] {
        match kind {
            ListKind::Deny => &self.deny,
            ListKind::Allow => &self.allow,
        }
    }

    /// Whether both lists are empty (every source may connect).
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.allow.is_empty()
    }

    /// Add an entry to a list.
    pub fn add(&mut self, kind: ListKind, p: Prefix) -> Result<(), ListError> {
        let list = self.list_mut(kind);
        if list.contains(&p) {
            return Err(ListError::Exists(p));
        }
        if list.len() >= MAX_LIST_ENTRIES {
            return Err(ListError::Full);
        }
        list.push(p);
        self.rebuild(kind);
        Ok(())
    }

    /// Remove an entry (exactly as added) from a list.
    pub fn remove(&mut self, kind: ListKind, p: Prefix) -> Result<(), ListError> {
        let list = self.list_mut(kind);
        let Some(i) = list.iter().position(|e| *e == p) else {
            return Err(ListError::Missing(p));
        };
        list.remove(i);
        self.rebuild(kind);
        Ok(())
    }

    /// May `src` open a new connection? Deny first, then the allow list when it has entries.
    #[inline]
    pub fn check(&self, src: Ipv4Addr) -> Result<(), Refusal> {
        if self.deny_set.contains(src) {
            return Err(Refusal::Denied);
        }
        if !self.allow_set.is_empty() && !self.allow_set.contains(src) {
            return Err(Refusal::NotAllowed);
        }
        Ok(())
    }

    fn list_mut(&mut self, kind: ListKind) -> &mut Vec<Prefix> {
        match kind {
            ListKind::Deny => &mut self.deny,
            ListKind::Allow => &mut self.allow,
        }
    }

    fn rebuild(&mut self, kind: ListKind) {
        match kind {
            ListKind::Deny => self.deny_set = PrefixSet::new(&self.deny),
            ListKind::Allow => self.allow_set = PrefixSet::new(&self.allow),
        }
    }
}

/// A token-bucket rate: `per_sec` new connections a second, `burst` at once after a quiet spell.
/// `per_sec` 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rate {
    pub per_sec: u32,
    /// 0: the same as `per_sec` (one second's worth).
    pub burst: u32,
}

impl Rate {
    /// Whether this rate limits anything.
    pub fn is_set(&self) -> bool {
        self.per_sec != 0
    }

    /// The burst in effect (`burst`, or `per_sec` when 0; at least 1).
    pub fn effective_burst(&self) -> u32 {
        if self.burst == 0 {
            self.per_sec.max(1)
        } else {
            self.burst
        }
    }
}

/// Admission limits of a service (`--conn-limit`, `--conn-rate`, `--src-rate`/`--src-prefix`).
/// Zero values mean "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceLimits {
    /// Most connections of the service at once (active + inactive over all its dests and
    /// workers); 0 = none.
    pub max_conns: u32,
    /// New connections per second to the whole service.
    pub conn_rate: Rate,
    /// New connections per second from one source prefix.
    pub src_rate: Rate,
    /// Length of the source prefix `src_rate` counts by (32: one address; 0 is taken as 32).
    pub src_prefix: u8,
}

impl ServiceLimits {
    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        self.max_conns != 0 || self.conn_rate.is_set() || self.src_rate.is_set()
    }

    /// The source prefix length in effect for `src_rate`.
    pub fn effective_src_prefix(&self) -> u8 {
        if self.src_prefix == 0 || self.src_prefix > 32 {
            32
        } else {
            self.src_prefix
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_parse_print_and_refuse_bad_text() {
        assert_eq!(p("198.18.0.7").to_string(), "198.18.0.7");
        assert_eq!(p("198.18.0.0/24").to_string(), "198.18.0.0/24");
        assert_eq!(p("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(
            "198.18.0.1/24".parse::<Prefix>(),
            Err(PrefixError::HostBits("198.18.0.1/24".into()))
        );
        assert_eq!(
            "198.18.0.0/33".parse::<Prefix>(),
            Err(PrefixError::Length(33))
        );
        for bad in [
            "",
            "x",
            "198.18.0.0/",
            "198.18.0/24",
            "198.18.0.0/-1",
            "1.2.3.4/ 8",
        ] {
            assert!(
                matches!(bad.parse::<Prefix>(), Err(PrefixError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn set_matches_every_length_and_nothing_else() {
        let entries = [p("198.18.0.7"), p("198.18.4.0/22"), p("198.19.0.0/16")];
        let s = PrefixSet::new(&entries);
        assert!(s.contains(ip("198.18.0.7")));
        assert!(!s.contains(ip("198.18.0.6")));
        assert!(!s.contains(ip("198.18.0.8")));
        assert!(s.contains(ip("198.18.4.0")));
        assert!(s.contains(ip("198.18.7.255")));
        assert!(!s.contains(ip("198.18.8.0")));
        assert!(!s.contains(ip("198.18.3.255")));
        assert!(s.contains(ip("198.19.200.1")));
        assert!(!s.contains(ip("198.20.0.0")));
        assert!(PrefixSet::new(&[p("0.0.0.0/0")]).contains(ip("203.0.113.9")));
        assert!(PrefixSet::new(&[p("0.0.0.0/0")]).contains(ip("255.255.255.255")));
        assert!(PrefixSet::new(&[p("255.255.255.255")]).contains(ip("255.255.255.255")));
        // Adjacent and nested prefixes merge without swallowing their neighbours.
        let merged = PrefixSet::new(&[p("198.18.0.0/25"), p("198.18.0.128/25"), p("198.18.0.5")]);
        assert_eq!(merged.ranges.len(), 1);
        assert!(merged.contains(ip("198.18.0.255")) && !merged.contains(ip("198.18.1.0")));
        assert!(!merged.contains(ip("198.17.255.255")));
        assert!(!PrefixSet::default().contains(ip("198.18.0.7")));
    }

    #[test]
    fn set_agrees_with_a_linear_scan() {
        // Many entries of mixed lengths against a brute-force oracle.
        let mut entries = Vec::new();
        let mut x: u32 = 0x1234_5678;
        for i in 0..300u32 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let len = (8 + i % 25) as u8;
            entries.push(Prefix::new(Ipv4Addr::from_bits(x & mask(len)), len).unwrap());
        }
        let s = PrefixSet::new(&entries);
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // Half the probes inside some entry, half anywhere.
            let probe = if x & 1 == 0 {
                let e = entries[(x >> 8) as usize % entries.len()];
                Ipv4Addr::from_bits(
                    u32::from(e.network()) | (x.rotate_left(7) & !mask(e.prefix_len())),
                )
            } else {
                Ipv4Addr::from_bits(x.rotate_left(13))
            };
            let linear = entries.iter().any(|e| e.contains(probe));
            assert_eq!(s.contains(probe), linear, "{probe}");
        }
    }

    #[test]
    fn deny_wins_and_allow_list_is_exclusive() {
        let mut a = AccessLists::default();
        assert_eq!(a.check(ip("198.18.0.2")), Ok(()));
        a.add(ListKind::Allow, p("198.18.0.0/24")).unwrap();
        assert_eq!(a.check(ip("198.18.0.2")), Ok(()));
        assert_eq!(a.check(ip("198.18.1.2")), Err(Refusal::NotAllowed));
        a.add(ListKind::Deny, p("198.18.0.2")).unwrap();
        assert_eq!(a.check(ip("198.18.0.2")), Err(Refusal::Denied));
        assert_eq!(a.check(ip("198.18.0.3")), Ok(()));
        // Errors leave the lists as they were.
        assert_eq!(
            a.add(ListKind::Deny, p("198.18.0.2")),
            Err(ListError::Exists(p("198.18.0.2")))
        );
        assert_eq!(
            a.remove(ListKind::Allow, p("198.18.0.0/25")),
            Err(ListError::Missing(p("198.18.0.0/25")))
        );
        assert_eq!(a.entries(ListKind::Deny), &[p("198.18.0.2")]);
        a.remove(ListKind::Allow, p("198.18.0.0/24")).unwrap();
        assert_eq!(a.check(ip("198.18.1.2")), Ok(()));
        a.remove(ListKind::Deny, p("198.18.0.2")).unwrap();
        assert!(a.is_empty());
    }

    #[test]
    fn rate_defaults() {
        let r = Rate {
            per_sec: 10,
            burst: 0,
        };
        assert_eq!(r.effective_burst(), 10);
        assert!(!Rate::default().is_set());
        let l = ServiceLimits::default();
        assert!(!l.is_set());
        assert_eq!(l.effective_src_prefix(), 32);
    }
}
