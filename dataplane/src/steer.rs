//! Which worker owns a flow (DESIGN.md section 4).
//!
//! Every flow has exactly one owner worker, computable from any packet of the flow in either
//! direction: the owner of a flow is chosen by its *client endpoint* (CIP, cport), hashed with
//! the Toeplitz function NICs use for RSS, so that a NIC configured with the same key, a RETA
//! that maps to workers the same way, and src-only (client-facing port) or dst-only (real-server
//! facing port) hash fields delivers every packet to its owner directly. Where the NIC cannot,
//! the runtime hands a packet that landed on the wrong worker to its owner through a ring.
//!
//! Invariants:
//! - `client_owner(ip, port)` is a pure function of the client endpoint and the steering
//!   configuration (key, RETA), so requests (client endpoint = source) and NAT replies (client
//!   endpoint = destination) agree.
//! - FULLNAT replies are addressed to LIP:lport; the lport partition (see `laddr`) says which
//!   worker allocated that lport, so [`Steering::lport_owner`] is exact for them.

use std::net::Ipv4Addr;

/// The RSS key rvs programs into NICs and uses in software (the well-known Microsoft key,
/// which every NIC accepts; its 40 bytes cover IPv4 and IPv6 tuples).
pub const DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key` (the RSS hash of Microsoft's RSS specification and
/// DPDK's `rte_softrss`). `key` must be at least `input.len() + 4` bytes long; extra input
/// bytes beyond that are ignored (never happens with rvs's tuples of at most 12 bytes).
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let mut hash = 0u32;
    // The 32-bit window of the key aligned with the current input bit.
    let mut window = u32::from_be_bytes([
        key.first().copied().unwrap_or(0),
        key.get(1).copied().unwrap_or(0),
        key.get(2).copied().unwrap_or(0),
        key.get(3).copied().unwrap_or(0),
    ]);
    for (i, byte) in input.iter().enumerate() {
        let next = key.get(i + 4).copied().unwrap_or(0);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// Size of the software redirection table (as a NIC's RETA: hash low bits -> worker).
pub const RETA_SIZE: usize = 128;

/// How flows map to workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steering {
    key: [u8; 40],
    reta: [u16; RETA_SIZE],
    workers: u16,
}

impl Steering {
    /// Steering over `workers` workers (at least 1) with the default key and a round-robin
    /// RETA, as DPDK's default RETA spreads queues.
    pub fn new(workers: u16) -> Steering {
        let workers = workers.max(1);
        let reta = std::array::from_fn(|i| (i % usize::from(workers)) as u16);
        Steering {
            key: DEFAULT_KEY,
            reta,
            workers,
        }
    }

    pub fn workers(&self) -> u16 {
        self.workers
    }

    pub fn key(&self) -> &[u8; 40] {
        &self.key
    }

    /// The redirection table (entry i = worker of hashes whose low bits are i).
    pub fn reta(&self) -> &[u16; RETA_SIZE] {
        &self.reta
    }

    /// The Toeplitz hash of a client endpoint, laid out as a NIC hashes an IPv4 TCP/UDP
    /// tuple with src-only fields (address then port).
    pub fn client_hash(&self, ip: Ipv4Addr, port: u16) -> u32 {
        let mut input = [0u8; 6];
        input[..4].copy_from_slice(&ip.octets());
        input[4..].copy_from_slice(&port.to_be_bytes());
        toeplitz(&self.key, &input)
    }

    /// The worker owning flows of this client endpoint.
    pub fn client_owner(&self, ip: Ipv4Addr, port: u16) -> u16 {
        self.reta[self.client_hash(ip, port) as usize % RETA_SIZE]
    }

    /// The worker that allocated FULLNAT local port `lport` (ports are partitioned by
    /// `lport % workers`).
    pub fn lport_owner(&self, lport: u16) -> u16 {
        lport % self.workers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&src.parse::<Ipv4Addr>().unwrap().octets());
        v.extend_from_slice(&dst.parse::<Ipv4Addr>().unwrap().octets());
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v
    }

    /// The verification vectors of Microsoft's RSS specification ("Verifying the RSS Hash
    /// Calculation"), IPv4 with and without ports.
    #[test]
    fn microsoft_rss_vectors() {
        let cases = [
            (
                "66.9.149.187",
                2794,
                "161.142.100.80",
                1766,
                0x323e_8fc2u32,
                0x51cc_c178u32,
            ),
            (
                "199.92.111.2",
                14230,
                "65.69.140.83",
                4739,
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                "24.19.198.95",
                12898,
                "12.22.207.184",
                38024,
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
            (
                "38.27.205.30",
                48228,
                "209.142.163.6",
                2217,
                0x8298_9176,
                0xafc7_327f,
            ),
            (
                "153.39.163.191",
                44251,
                "202.188.127.2",
                1303,
                0x5d18_09c5,
                0x10e8_28a2,
            ),
        ];
        for (src, sport, dst, dport, ip_only, with_ports) in cases {
            let t = tuple(src, sport, dst, dport);
            assert_eq!(toeplitz(&DEFAULT_KEY, &t[..8]), ip_only, "{src} -> {dst}");
            assert_eq!(
                toeplitz(&DEFAULT_KEY, &t),
                with_ports,
                "{src}:{sport} -> {dst}:{dport}"
            );
        }
    }

    #[test]
    fn owners_spread_and_agree() {
        let s = Steering::new(4);
        let mut per = [0u32; 4];
        for port in 1000..5000u16 {
            let o = s.client_owner(Ipv4Addr::new(198, 18, 0, 2), port);
            assert!(o < 4);
            per[usize::from(o)] += 1;
            assert_eq!(o, s.client_owner(Ipv4Addr::new(198, 18, 0, 2), port));
        }
        for n in per {
            assert!((800..1200).contains(&n), "{per:?}");
        }
        assert_eq!(s.lport_owner(1027), 3);
        assert_eq!(Steering::new(0).workers(), 1);
    }
}
