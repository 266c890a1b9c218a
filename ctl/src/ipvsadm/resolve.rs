//! Name and address helpers with the C library's semantics, without the C library.
//!
//! ipvsadm uses `inet_aton`, `gethostbyname`/`gethostbyaddr` and `getservbyname`/`getservbyport`.
//! The crate forbids `unsafe`, so hosts come from a hosts file (`/etc/hosts`) and services from a
//! services file (`/etc/services`), read once; no DNS. A missing or unreadable file simply
//! resolves nothing (as libc does), so numeric output is always available.

use std::net::{IpAddr, Ipv4Addr};

use crate::proto::Protocol;

/// One `/etc/hosts` line: an address and its names (canonical name first).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostEntry {
    addr: IpAddr,
    names: Vec<String>,
}

/// One `/etc/services` line: official name, aliases, port and protocol name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceEntry {
    names: Vec<String>,
    port: u16,
    proto: String,
}

/// Host and service name tables.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    hosts: Vec<HostEntry>,
    services: Vec<ServiceEntry>,
}

impl Resolver {
    /// Tables from the system files (`/etc/hosts`, `/etc/services`).
    pub fn system() -> Self {
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
        Self::from_texts(&hosts, &services)
    }

    /// Tables from the text of a hosts file and a services file.
    pub fn from_texts(hosts: &str, services: &str) -> Self {
        let strip = |line: &str| line.split('#').next().unwrap_or("").to_owned();
        let hosts = hosts
            .lines()
            .filter_map(|line| {
                let line = strip(line);
                let mut words = line.split_whitespace();
                let addr = words.next()?.parse().ok()?;
                let names: Vec<String> = words.map(str::to_owned).collect();
                (!names.is_empty()).then_some(HostEntry { addr, names })
            })
            .collect();
        let services = services
            .lines()
            .filter_map(|line| {
                let line = strip(line);
                let mut words = line.split_whitespace();
                let name = words.next()?.to_owned();
                let (port, proto) = words.next()?.split_once('/')?;
                let port = port.parse().ok()?;
                let mut names = vec![name];
                names.extend(words.map(str::to_owned));
                Some(ServiceEntry {
                    names,
                    port,
                    proto: proto.to_owned(),
                })
            })
            .collect();
        Resolver { hosts, services }
    }

    /// `gethostbyname` restricted to IPv4, as ipvsadm's `host_to_addr`.
    pub fn host_to_addr(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts.iter().find_map(|h| match h.addr {
            IpAddr::V4(a) if h.names.iter().any(|n| n.eq_ignore_ascii_case(name)) => Some(a),
            _ => None,
        })
    }

    /// `gethostbyaddr`: the canonical name of the first hosts line with this address.
    pub fn addr_to_host(&self, addr: IpAddr) -> Option<&str> {
        self.hosts
            .iter()
            .find(|h| h.addr == addr)
            .map(|h| h.names[0].as_str())
    }

    /// `getservbyname(name, proto)`.
    pub fn service_to_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        let p = proto_name(proto);
        self.services
            .iter()
            .find(|s| s.proto == p && s.names.iter().any(|n| n == name))
            .map(|s| s.port)
    }

    /// `getservbyport(port, proto)`: the official service name.
    pub fn port_to_service(&self, port: u16, proto: Protocol) -> Option<&str> {
        let p = proto_name(proto);
        self.services
            .iter()
            .find(|s| s.proto == p && s.port == port)
            .map(|s| s.names[0].as_str())
    }
}

fn proto_name(proto: Protocol) -> &'static str {
    match proto {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// `strtoul(s, .., 0)` over the whole string: decimal, `0x` hex or leading-zero octal.
fn parse_c_number(s: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// glibc `inet_aton`: `a.b.c.d`, `a.b.c` (c 16 bits), `a.b` (b 24 bits) or `a` (32 bits), each
/// part decimal, octal or hex.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = s
        .split('.')
        .map(parse_c_number)
        .collect::<Option<Vec<_>>>()?;
    let value = match parts.as_slice() {
        [a] if *a <= 0xffff_ffff => *a,
        [a, b] if *a <= 0xff && *b <= 0xff_ffff => (a << 24) | b,
        [a, b, c] if *a <= 0xff && *b <= 0xff && *c <= 0xffff => (a << 24) | (b << 16) | c,
        [a, b, c, d] if [a, b, c, d].iter().all(|x| **x <= 0xff) => {
            (a << 24) | (b << 16) | (c << 8) | d
        }
        _ => return None,
    };
    Some(Ipv4Addr::from(u32::try_from(value).ok()?))
}

/// C `strtol(s, &end, 10)` accepted only if it consumed the whole non-empty string and lies in
/// `min..=max` (ipvsadm's `string_to_number`).
pub fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let n = if neg { -n } else { n };
    (min..=max).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "127.0.0.1 localhost\n198.18.0.100 www.example.test www # vip\n\
                         2001:db8::80 six.example.test\n";
    const SERVICES: &str = "http\t\t80/tcp\t\twww\t# WorldWideWeb HTTP\n\
                            domain\t\t53/tcp\ndomain\t\t53/udp\nhttps 443/tcp\n";

    #[test]
    fn hosts_and_services() {
        let r = Resolver::from_texts(HOSTS, SERVICES);
        assert_eq!(r.host_to_addr("WWW"), Some(Ipv4Addr::new(198, 18, 0, 100)));
        assert_eq!(r.host_to_addr("six.example.test"), None);
        assert_eq!(
            r.addr_to_host("198.18.0.100".parse().unwrap()),
            Some("www.example.test")
        );
        assert_eq!(
            r.addr_to_host("2001:db8::80".parse().unwrap()),
            Some("six.example.test")
        );
        assert_eq!(r.service_to_port("www", Protocol::Tcp), Some(80));
        assert_eq!(r.service_to_port("http", Protocol::Udp), None);
        assert_eq!(r.port_to_service(53, Protocol::Udp), Some("domain"));
        assert_eq!(r.port_to_service(0, Protocol::Tcp), None);
    }

    #[test]
    fn inet_aton_forms() {
        assert_eq!(inet_aton("10.1.2.3"), Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(inet_aton("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("10.1.258"), Some(Ipv4Addr::new(10, 1, 1, 2)));
        assert_eq!(inet_aton("0x0a000001"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
        assert_eq!(inet_aton("256.0.0.1"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton(""), None);
        assert_eq!(inet_aton("1..2"), None);
        assert_eq!(inet_aton("www"), None);
    }

    #[test]
    fn string_to_number_is_strtol() {
        assert_eq!(string_to_number("65535", 0, 65535), Some(65535));
        assert_eq!(string_to_number("65536", 0, 65535), None);
        assert_eq!(string_to_number("-1", 0, 65535), None);
        assert_eq!(string_to_number(" 7", 0, 9), Some(7));
        assert_eq!(string_to_number("7 ", 0, 9), None);
        assert_eq!(string_to_number("", 0, 9), None);
        assert_eq!(string_to_number("+3", 0, 9), Some(3));
    }
}
