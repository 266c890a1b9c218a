//! The firewall-mark classifier: what sets the marks `-f MARK` services match.
//!
//! With IPVS, marks come from iptables (`-t mangle -j MARK`) in front of the director. Nothing
//! of the kernel sees rvs's packets, so rvs has its own small classifier: an ordered list of
//! rules, each matching a protocol, a destination prefix and destination port ranges, and
//! setting a mark. The first matching rule wins (as the first `-j MARK` that matches in a mangle
//! chain). Only packets that would open a connection are classified (a connection remembers its
//! service), so the linear scan costs nothing on established traffic.
//!
//! A rule's destination, when it is a single address (`/32`), is answered for by ARP and ICMP
//! echo like a VIP: a fwmark service's addresses need no separate `[[addr]]`.

use core::fmt;
use std::net::Ipv4Addr;

/// Protocol a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MarkProto {
    Tcp,
    Udp,
    /// TCP and UDP.
    Any,
}

impl MarkProto {
    fn matches(self, proto: u8) -> bool {
        match self {
            MarkProto::Tcp => proto == 6,
            MarkProto::Udp => proto == 17,
            MarkProto::Any => proto == 6 || proto == 17,
        }
    }

    /// `tcp`, `udp` or `any`.
    pub fn name(self) -> &'static str {
        match self {
            MarkProto::Tcp => "tcp",
            MarkProto::Udp => "udp",
            MarkProto::Any => "any",
        }
    }

    pub fn parse(s: &str) -> Option<MarkProto> {
        match s {
            "tcp" => Some(MarkProto::Tcp),
            "udp" => Some(MarkProto::Udp),
            "any" | "all" => Some(MarkProto::Any),
            _ => None,
        }
    }
}

/// One rule: packets of `proto` to `dst/len` with a destination port in `ports` get `mark`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MarkRule {
    /// > 0.
    pub mark: u32,
    pub proto: MarkProto,
    pub dst: Ipv4Addr,
    /// Prefix length 0..=32.
    pub len: u8,
    /// Inclusive port ranges; empty = every port.
    pub ports: Vec<(u16, u16)>,
}

/// Why a rule's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkRuleError {
    #[error("{0:?} is not a protocol (tcp, udp or any)")]
    Proto(String),
    #[error("{0:?} is not an IPv4 prefix (ADDR or ADDR/LEN)")]
    Prefix(String),
    #[error("{0:?} is not a port list (\"80,443\", \"1000-2000\", empty for all ports)")]
    Ports(String),
    #[error("the mark must be greater than 0")]
    Mark,
}

impl MarkRule {
    fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len.min(32)))
        }
    }

    /// Whether a packet of `proto` to `dst:dport` matches.
    pub fn matches(&self, proto: u8, dst: Ipv4Addr, dport: u16) -> bool {
        self.proto.matches(proto)
            && (dst.to_bits() & self.mask()) == (self.dst.to_bits() & self.mask())
            && (self.ports.is_empty() || self.ports.iter().any(|&(a, b)| a <= dport && dport <= b))
    }

    /// A rule from its parts as written in the config and on the command line.
    pub fn parse(
        mark: u32,
        proto: &str,
        dst: &str,
        ports: &str,
    ) -> Result<MarkRule, MarkRuleError> {
        if mark == 0 {
            return Err(MarkRuleError::Mark);
        }
        let proto = MarkProto::parse(proto).ok_or_else(|| MarkRuleError::Proto(proto.into()))?;
        let bad = || MarkRuleError::Prefix(dst.into());
        let (addr, len) = match dst.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
            None => (dst, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        Ok(MarkRule {
            mark,
            proto,
            dst: addr,
            len,
            ports: parse_ports(ports)?,
        })
    }

    /// The port list as [`MarkRule::parse`] reads it (`80,443,1000-2000`; empty for all).
    pub fn ports_text(&self) -> String {
        let parts: Vec<String> = self
            .ports
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        parts.join(",")
    }
}

impl fmt::Display for MarkRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mark {} {} {}/{}",
            self.mark,
            self.proto.name(),
            self.dst,
            self.len
        )?;
        if !self.ports.is_empty() {
            write!(f, " ports {}", self.ports_text())?;
        }
        Ok(())
    }
}

fn parse_ports(s: &str) -> Result<Vec<(u16, u16)>, MarkRuleError> {
    let bad = || MarkRuleError::Ports(s.into());
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|p| {
            let p = p.trim();
            let (a, b) = match p.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (p, p),
            };
            let a: u16 = a.parse().map_err(|_| bad())?;
            let b: u16 = b.parse().map_err(|_| bad())?;
            if a > b {
                return Err(bad());
            }
            Ok((a, b))
        })
        .collect()
}

/// The ordered rule list the workers classify with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classifier {
    rules: Vec<MarkRule>,
}

impl Classifier {
    pub fn new(rules: Vec<MarkRule>) -> Classifier {
        Classifier { rules }
    }

    pub fn rules(&self) -> &[MarkRule] {
        &self.rules
    }

    /// The mark of the first rule matching, 0 when none does.
    #[inline]
    pub fn classify(&self, proto: u8, dst: Ipv4Addr, dport: u16) -> u32 {
        self.rules
            .iter()
            .find(|r| r.matches(proto, dst, dport))
            .map_or(0, |r| r.mark)
    }

    /// Whether `ip` is the single-address destination of some rule (answered for as a VIP).
    pub fn is_vip(&self, ip: Ipv4Addr) -> bool {
        self.rules.iter().any(|r| r.len == 32 && r.dst == ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let r = MarkRule::parse(1, "tcp", "198.18.0.100/32", "80,443").unwrap();
        assert!(r.matches(6, Ipv4Addr::new(198, 18, 0, 100), 443));
        assert!(!r.matches(17, Ipv4Addr::new(198, 18, 0, 100), 443));
        assert!(!r.matches(6, Ipv4Addr::new(198, 18, 0, 101), 80));
        assert!(!r.matches(6, Ipv4Addr::new(198, 18, 0, 100), 81));
        assert_eq!(r.to_string(), "mark 1 tcp 198.18.0.100/32 ports 80,443");
        let r = MarkRule::parse(2, "any", "198.18.0.0/24", "1000-2000").unwrap();
        assert!(r.matches(17, Ipv4Addr::new(198, 18, 0, 7), 1500));
        assert!(!r.matches(17, Ipv4Addr::new(198, 18, 1, 7), 1500));
        assert!(!r.matches(6, Ipv4Addr::new(198, 18, 0, 7), 2001));
        assert_eq!(r.ports_text(), "1000-2000");
        let all = MarkRule::parse(3, "udp", "0.0.0.0/0", "").unwrap();
        assert!(all.matches(17, Ipv4Addr::new(1, 2, 3, 4), 9));
    }

    #[test]
    fn rejects_bad_rules() {
        assert_eq!(
            MarkRule::parse(0, "tcp", "1.2.3.4", ""),
            Err(MarkRuleError::Mark)
        );
        assert!(matches!(
            MarkRule::parse(1, "icmp", "1.2.3.4", ""),
            Err(MarkRuleError::Proto(_))
        ));
        assert!(matches!(
            MarkRule::parse(1, "tcp", "1.2.3.4/33", ""),
            Err(MarkRuleError::Prefix(_))
        ));
        assert!(matches!(
            MarkRule::parse(1, "tcp", "1.2.3.4", "90-80"),
            Err(MarkRuleError::Ports(_))
        ));
        assert!(matches!(
            MarkRule::parse(1, "tcp", "1.2.3.4", "http"),
            Err(MarkRuleError::Ports(_))
        ));
    }

    #[test]
    fn first_match_wins() {
        let c = Classifier::new(vec![
            MarkRule::parse(5, "tcp", "198.18.0.100", "80").unwrap(),
            MarkRule::parse(6, "tcp", "198.18.0.0/24", "").unwrap(),
        ]);
        assert_eq!(c.classify(6, Ipv4Addr::new(198, 18, 0, 100), 80), 5);
        assert_eq!(c.classify(6, Ipv4Addr::new(198, 18, 0, 100), 81), 6);
        assert_eq!(c.classify(17, Ipv4Addr::new(198, 18, 0, 100), 80), 0);
        assert!(c.is_vip(Ipv4Addr::new(198, 18, 0, 100)));
        assert!(!c.is_vip(Ipv4Addr::new(198, 18, 0, 0)));
    }
}
