//! Which worker owns a flow (docs/architecture.md, "Cores and steering").
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
//!
//! [`Steering::owner`] applies these rules to a received frame ([`Owner`]):
//! - TCP/UDP to a virtual service (service lookup hit on proto, dst, dport): the client endpoint
//!   is the source, `client_owner(src, sport)`;
//! - else TCP/UDP to a FULLNAT local address: `lport_owner(dport)`;
//! - else other TCP/UDP (NAT replies from real servers): the client endpoint is the destination,
//!   `client_owner(dst, dport)`;
//! - ICMP errors quoting a TCP/UDP packet: the rules above applied to the quoted packet reversed
//!   (the quoted packet is one the director sent; reversed, it is what its peer sends);
//! - ARP and IPv6 Neighbour Discovery: [`Owner::All`]: every worker keeps its own neighbour
//!   tables, so the receiving worker handles the frame (and answers a solicitation, once) and
//!   every other worker learns from a copy;
//! - anything else (ICMP echo, other protocols, fragments, malformed frames): the receiving
//!   worker, which answers or drops it with its reason.
//!
//! The rules depend on the configuration only through [`FlowContext`] (is there a service on
//! this address and port, is this a local address), read from the worker's current tables.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::{EtherType, IpProtocol, ethernet, ipv4, tcp, udp};

/// The RSS key rvs programs into NICs and uses in software (the well-known Microsoft key,
/// which every NIC accepts; its 40 bytes cover IPv4 and IPv6 tuples).
pub const DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key` (the RSS hash of Microsoft's RSS specification and
/// DPDK's `rte_softrss`). `key` must be at least `input.len() + 4` bytes long; extra input
/// bytes beyond that are ignored (never happens with rvs's tuples: at most 36 bytes, an IPv6
/// TCP/UDP tuple, which the 40-byte key covers exactly).
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

    /// The Toeplitz hash of an IPv6 client endpoint, laid out as a NIC hashes an IPv6 TCP/UDP
    /// tuple with src-only fields: the 16 address bytes, then the port (18 bytes).
    pub fn client_hash6(&self, ip: Ipv6Addr, port: u16) -> u32 {
        let mut input = [0u8; 18];
        input[..16].copy_from_slice(&ip.octets());
        input[16..].copy_from_slice(&port.to_be_bytes());
        toeplitz(&self.key, &input)
    }

    /// The worker owning flows of this IPv6 client endpoint (as [`Steering::client_owner`]).
    pub fn client_owner6(&self, ip: Ipv6Addr, port: u16) -> u16 {
        self.reta[self.client_hash6(ip, port) as usize % RETA_SIZE]
    }

    /// The hash a NIC computes for an IPv6 TCP/UDP packet with the full tuple as RSS fields:
    /// source address, destination address (16 bytes each), source port, destination port
    /// (36 bytes, the layout of DPDK's `rte_ipv6_tuple`). Not what decides the owner (that is
    /// one side's endpoint, [`Steering::client_hash6`]); for checking what a NIC reports.
    pub fn tuple_hash6(&self, src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> u32 {
        toeplitz(&self.key, &tuple6(src, sport, dst, dport))
    }
}

/// The 36 input bytes of an IPv6 TCP/UDP tuple for the Toeplitz hash, in the order NICs read
/// them: source address, destination address, source port, destination port.
pub fn tuple6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> [u8; 36] {
    let mut input = [0u8; 36];
    input[..16].copy_from_slice(&src.octets());
    input[16..32].copy_from_slice(&dst.octets());
    input[32..34].copy_from_slice(&sport.to_be_bytes());
    input[34..].copy_from_slice(&dport.to_be_bytes());
    input
}

/// Where a received frame is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The worker owning the frame's flow.
    Worker(u16),
    /// Every worker: the receiving one handles it, the others learn from a copy (ARP).
    All,
    /// Whichever worker received it: the frame belongs to no flow.
    Receiver,
}

/// The RSS hash the NIC stored in a received frame's descriptor, and which endpoint it covers.
/// Only for ports whose RSS runs with rvs's key on one side's fields (the runtime knows), where
/// it equals [`Steering::client_hash`] of that endpoint and saves computing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicHash {
    /// Source address and port only (a client-facing port).
    Source(u32),
    /// Destination address and port only (a server-facing port).
    Destination(u32),
}

/// What steering needs to know of the configuration.
pub trait FlowContext {
    /// A virtual service accepts `proto` packets to `ip:port`.
    fn is_service(&self, proto: u8, ip: Ipv4Addr, port: u16) -> bool;
    /// `ip` is a FULLNAT local address.
    fn is_laddr(&self, ip: Ipv4Addr) -> bool;
}

/// A TCP or UDP packet's addresses, as the owner rules read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

impl Flow {
    /// The flow of the other direction.
    pub fn reversed(self) -> Flow {
        Flow {
            proto: self.proto,
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

/// What steering needs to know of the IPv6 configuration ([`FlowContext`] for IPv6).
pub trait FlowContext6 {
    /// A virtual service accepts `proto` packets to `[ip]:port`.
    fn is_service6(&self, proto: u8, ip: Ipv6Addr, port: u16) -> bool;
    /// `ip` is an IPv6 FULLNAT local address.
    fn is_laddr6(&self, ip: Ipv6Addr) -> bool;
}

/// An IPv6 TCP or UDP packet's addresses, as the owner rules read them ([`Flow`] for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow6 {
    pub proto: u8,
    pub src: Ipv6Addr,
    pub sport: u16,
    pub dst: Ipv6Addr,
    pub dport: u16,
}

impl Flow6 {
    /// The flow of the other direction.
    pub fn reversed(self) -> Flow6 {
        Flow6 {
            proto: self.proto,
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

impl Steering {
    /// The worker owning the flow of an IPv6 TCP/UDP packet: the rules of the module doc with
    /// IPv6 endpoints (a service's client is the source, a FULLNAT reply goes by its local
    /// port's partition, anything else's client is the destination).
    pub fn flow_owner6(&self, f: &Flow6, ctx: &impl FlowContext6) -> u16 {
        if ctx.is_service6(f.proto, f.dst, f.dport) {
            self.client_owner6(f.src, f.sport)
        } else if ctx.is_laddr6(f.dst) {
            self.lport_owner(f.dport)
        } else {
            self.client_owner6(f.dst, f.dport)
        }
    }

    /// The worker owning the flow of a TCP/UDP packet (see the module doc for the rules).
    pub fn flow_owner(&self, f: &Flow, ctx: &impl FlowContext) -> u16 {
        self.flow_owner_hashed(f, ctx, None)
    }

    /// [`Steering::flow_owner`], taking the client endpoint's hash from the NIC when it hashed
    /// that endpoint.
    fn flow_owner_hashed(&self, f: &Flow, ctx: &impl FlowContext, nic: Option<NicHash>) -> u16 {
        let by_hash = |h: u32| self.reta[h as usize % RETA_SIZE];
        if ctx.is_service(f.proto, f.dst, f.dport) {
            match nic {
                Some(NicHash::Source(h)) => by_hash(h),
                _ => self.client_owner(f.src, f.sport),
            }
        } else if ctx.is_laddr(f.dst) {
            self.lport_owner(f.dport)
        } else {
            match nic {
                Some(NicHash::Destination(h)) => by_hash(h),
                _ => self.client_owner(f.dst, f.dport),
            }
        }
    }

    /// Where the frame `frame` (from its Ethernet header) is processed. Never panics: what
    /// cannot be parsed goes to the receiving worker, which drops it with its reason.
    pub fn owner(&self, frame: &[u8], ctx: &(impl FlowContext + FlowContext6)) -> Owner {
        self.owner_hashed(frame, ctx, None)
    }

    /// [`Steering::owner`] with the NIC's hash of the frame, when there is one: used for a
    /// TCP/UDP frame's own tuple (never for an ICMP error, whose flow is the quoted packet's).
    pub fn owner_hashed(
        &self,
        frame: &[u8],
        ctx: &(impl FlowContext + FlowContext6),
        nic: Option<NicHash>,
    ) -> Owner {
        if self.workers == 1 {
            return Owner::Receiver;
        }
        let Ok(eth) = ethernet::Frame::new_checked(frame) else {
            return Owner::Receiver;
        };
        match eth.ethertype() {
            EtherType::ARP => return Owner::All,
            EtherType::IPV6 if crate::worker::is_nd_frame(frame) => return Owner::All,
            EtherType::IPV6 => {
                return match flow_of6(frame) {
                    Some(f) => Owner::Worker(self.flow_owner6(&f, ctx)),
                    None => Owner::Receiver,
                };
            }
            EtherType::IPV4 => {}
            _ => return Owner::Receiver,
        }
        let own_tuple = matches!(frame.get(23), Some(&6 | &17));
        match flow_of(frame) {
            Some(f) => Owner::Worker(self.flow_owner_hashed(&f, ctx, nic.filter(|_| own_tuple))),
            None => Owner::Receiver,
        }
    }
}

/// The flow a frame belongs to: its own TCP/UDP tuple, or for an ICMP error the quoted
/// packet's reversed; `None` for anything else.
pub fn flow_of(frame: &[u8]) -> Option<Flow> {
    let ip = ipv4::Packet::new_checked(frame.get(ethernet::HEADER_LEN..)?).ok()?;
    if ip.is_fragment() {
        return None;
    }
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let (sport, dport) = if proto == IpProtocol::TCP {
        let t = tcp::Packet::new_checked(ip.payload()).ok()?;
        (t.src_port(), t.dst_port())
    } else if proto == IpProtocol::UDP {
        let u = udp::Packet::new_checked(ip.payload()).ok()?;
        (u.src_port(), u.dst_port())
    } else if proto == IpProtocol::ICMP {
        let q = crate::xmit::icmp::quoted_tuple(frame)?;
        let quoted = Flow {
            proto: q.proto,
            src: q.src,
            sport: q.sport,
            dst: q.dst,
            dport: q.dport,
        };
        return Some(quoted.reversed());
    } else {
        return None;
    };
    Some(Flow {
        proto: proto.0,
        src,
        sport,
        dst,
        dport,
    })
}

/// The flow an IPv6 frame belongs to (as [`flow_of`]): its own TCP/UDP tuple past the
/// extension headers the worker accepts, or for an ICMPv6 error the quoted packet's reversed;
/// `None` for anything else (the receiving worker handles or drops it).
pub fn flow_of6(frame: &[u8]) -> Option<Flow6> {
    let p = crate::parse6::parse6(frame, &crate::wire::ipv6::ExtPolicy { max_headers: 8 }).ok()?;
    match p.class {
        crate::parse6::Class6::Flow => Some(Flow6 {
            proto: p.key.proto,
            src: p.key.src,
            sport: p.key.sport,
            dst: p.key.dst,
            dport: p.key.dport,
        }),
        crate::parse6::Class6::Icmp => {
            let q = crate::xmit::icmp6::quoted_tuple6(frame, &p)?;
            Some(
                Flow6 {
                    proto: q.proto,
                    src: q.src,
                    sport: q.sport,
                    dst: q.dst,
                    dport: q.dport,
                }
                .reversed(),
            )
        }
        crate::parse6::Class6::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct OneService;
    impl FlowContext6 for OneService {
        fn is_service6(&self, _proto: u8, _ip: Ipv6Addr, _port: u16) -> bool {
            false
        }
        fn is_laddr6(&self, _ip: Ipv6Addr) -> bool {
            false
        }
    }
    impl FlowContext for OneService {
        fn is_service(&self, _proto: u8, ip: Ipv4Addr, port: u16) -> bool {
            ip == Ipv4Addr::new(198, 18, 0, 100) && port == 80
        }
        fn is_laddr(&self, _ip: Ipv4Addr) -> bool {
            false
        }
    }

    fn bare_tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14..24].copy_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6]);
        f[26..30].copy_from_slice(&src.octets());
        f[30..34].copy_from_slice(&dst.octets());
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = 0x50;
        f
    }

    /// The NIC's one-sided hash, when it is rvs's, gives the owner software computes; a hash
    /// of the other side is not used; any hash given is what decides (it is not recomputed).
    #[test]
    fn nic_hash_of_the_client_endpoint_replaces_the_software_hash() {
        let s = Steering::new(4);
        let (cip, vip, rip) = (
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 100),
            Ipv4Addr::new(198, 18, 1, 11),
        );
        for cport in 1000..1064u16 {
            let req = bare_tcp(cip, cport, vip, 80);
            let reply = bare_tcp(rip, 80, cip, cport);
            let want = Owner::Worker(s.client_owner(cip, cport));
            let h = s.client_hash(cip, cport);
            assert_eq!(s.owner(&req, &OneService), want);
            assert_eq!(
                s.owner_hashed(&req, &OneService, Some(NicHash::Source(h))),
                want
            );
            assert_eq!(s.owner(&reply, &OneService), want);
            assert_eq!(
                s.owner_hashed(&reply, &OneService, Some(NicHash::Destination(h))),
                want
            );
            // The wrong side's hash is ignored.
            assert_eq!(
                s.owner_hashed(&req, &OneService, Some(NicHash::Destination(h ^ 1))),
                want
            );
            // A given hash decides.
            let other = (0..RETA_SIZE as u32)
                .find(|&x| s.reta[x as usize] != s.reta[h as usize % RETA_SIZE])
                .unwrap();
            assert_eq!(
                s.owner_hashed(&req, &OneService, Some(NicHash::Source(other))),
                Owner::Worker(s.reta[other as usize])
            );
        }
    }

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

    /// The IPv6 verification vectors of Microsoft's RSS specification, with and without ports,
    /// through [`tuple6`] and [`Steering::tuple_hash6`].
    #[test]
    fn microsoft_rss_vectors_ipv6() {
        let cases = [
            (
                "3ffe:2501:200:1fff::7",
                2794,
                "3ffe:2501:200:3::1",
                1766,
                0x2cc1_8cd5u32,
                0x4020_7d3du32,
            ),
            (
                "3ffe:501:8::260:97ff:fe40:efab",
                14230,
                "ff02::1",
                4739,
                0x0f0c_461c,
                0xdde5_1bbf,
            ),
            (
                "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
                44251,
                "fe80::200:f8ff:fe21:67cf",
                38024,
                0x4b61_e985,
                0x02d1_feef,
            ),
        ];
        let s = Steering::new(2);
        for (src, sport, dst, dport, ip_only, with_ports) in cases {
            let (a, b): (Ipv6Addr, Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
            let t = tuple6(a, sport, b, dport);
            assert_eq!(toeplitz(&DEFAULT_KEY, &t[..32]), ip_only, "{src} -> {dst}");
            assert_eq!(
                s.tuple_hash6(a, sport, b, dport),
                with_ports,
                "{src} -> {dst}"
            );
        }
    }

    const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);
    const RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 1, 0, 0, 0, 0, 11);
    const LIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 1, 0, 0, 0, 0, 5);

    struct Ctx6;

    impl FlowContext6 for Ctx6 {
        fn is_service6(&self, proto: u8, ip: Ipv6Addr, port: u16) -> bool {
            (proto == 6 || proto == 17) && ip == VIP6 && port == 80
        }
        fn is_laddr6(&self, ip: Ipv6Addr) -> bool {
            ip == LIP6
        }
    }

    /// Every IPv6 packet of a flow names one owner: the request, the NAT reply, the FULLNAT
    /// reply (by the local port's partition), and the owner is the client endpoint's; owners
    /// spread over the workers.
    #[test]
    fn every_ipv6_packet_of_a_flow_names_one_owner() {
        for workers in 2..=8u16 {
            let s = Steering::new(workers);
            let mut seen = vec![0u32; usize::from(workers)];
            for proto in [6u8, 17] {
                for cport in (1024..65535u16).step_by(211) {
                    let owner = s.client_owner6(CIP6, cport);
                    assert!(owner < workers);
                    seen[usize::from(owner)] += 1;
                    let req = Flow6 {
                        proto,
                        src: CIP6,
                        sport: cport,
                        dst: VIP6,
                        dport: 80,
                    };
                    assert_eq!(s.flow_owner6(&req, &Ctx6), owner);
                    // NAT: the request rewritten to the real server, reversed.
                    let nat_reply = Flow6 { dst: RIP6, ..req }.reversed();
                    assert_eq!((nat_reply.src, nat_reply.dst), (RIP6, CIP6));
                    assert_eq!(s.flow_owner6(&nat_reply, &Ctx6), owner);
                    let lport = workers * (1100 + cport % 1000) + owner;
                    let fnat_reply = Flow6 {
                        proto,
                        src: RIP6,
                        sport: 80,
                        dst: LIP6,
                        dport: lport,
                    };
                    assert_eq!(s.flow_owner6(&fnat_reply, &Ctx6), owner);
                }
            }
            assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
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

    use crate::testutil::{FrameSpec, tcp_frame, udp_frame};
    use crate::wire::tcp::TcpFlags;

    const CIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
    const LIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 5);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 254);

    /// Services TCP and UDP VIP:80; one local address.
    struct Ctx;

    impl FlowContext6 for Ctx {
        fn is_service6(&self, _proto: u8, _ip: Ipv6Addr, _port: u16) -> bool {
            false
        }
        fn is_laddr6(&self, _ip: Ipv6Addr) -> bool {
            false
        }
    }

    impl FlowContext for Ctx {
        fn is_service(&self, proto: u8, ip: Ipv4Addr, port: u16) -> bool {
            (proto == 6 || proto == 17) && ip == VIP && port == 80
        }
        fn is_laddr(&self, ip: Ipv4Addr) -> bool {
            ip == LIP
        }
    }

    fn l4_frame(proto: u8, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
        let spec = FrameSpec::new(src, sport, dst, dport);
        if proto == 6 {
            tcp_frame(&spec, TcpFlags(0x10), b"data")
        } else {
            udp_frame(&spec, b"data")
        }
    }

    /// An ICMP port unreachable from `from` to `to`, quoting `quoted` (a frame the director
    /// sent): outer IPv4 + ICMP header + the quoted IPv4 header and 8 bytes.
    fn icmp_error(from: Ipv4Addr, to: Ipv4Addr, quoted: &[u8]) -> Vec<u8> {
        let q = &quoted[ethernet::HEADER_LEN..ethernet::HEADER_LEN + 28];
        let mut f = quoted[..ethernet::HEADER_LEN].to_vec();
        let total = 20 + 8 + q.len();
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            1,
            0,
            0,
        ]);
        f.extend_from_slice(&from.octets());
        f.extend_from_slice(&to.octets());
        f.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(q);
        f
    }

    /// Every packet of a flow, both directions and ICMP errors about either, for every
    /// forwarding method, names the same owner: the client endpoint's, or for FULLNAT replies
    /// the worker whose partition holds the local port (which is the owner's, as the owner
    /// allocated it).
    #[test]
    fn every_packet_of_a_flow_names_one_owner() {
        for workers in 1..=8u16 {
            let s = Steering::new(workers);
            for proto in [6u8, 17] {
                for cport in (1024..65535u16).step_by(397) {
                    let owner = s.client_owner(CIP, cport);
                    let expect = if workers == 1 {
                        Owner::Receiver
                    } else {
                        Owner::Worker(owner)
                    };
                    // The request, as the client sends it (every method).
                    let request = l4_frame(proto, CIP, cport, VIP, 80);
                    assert_eq!(s.owner(&request, &Ctx), expect, "request n={workers}");
                    // NAT: to the RS, the reply, ICMP errors about either.
                    let to_rs = l4_frame(proto, CIP, cport, RIP, 80);
                    let nat_reply = l4_frame(proto, RIP, 80, CIP, cport);
                    let to_client = l4_frame(proto, VIP, 80, CIP, cport);
                    // FULLNAT: the owner allocated an lport of its partition.
                    let lport = workers * (1100 + cport % 1000) + owner;
                    assert_eq!(s.lport_owner(lport), owner);
                    let fnat_to_rs = l4_frame(proto, LIP, lport, RIP, 80);
                    let fnat_reply = l4_frame(proto, RIP, 80, LIP, lport);
                    let frames = [
                        ("nat reply", nat_reply),
                        ("icmp about nat to rs", icmp_error(ROUTER, CIP, &to_rs)),
                        ("icmp about reply", icmp_error(CIP, VIP, &to_client)),
                        ("fullnat reply", fnat_reply),
                        (
                            "icmp about fullnat to rs",
                            icmp_error(ROUTER, LIP, &fnat_to_rs),
                        ),
                        // DR and TUN: requests only (and errors the client's side sends back
                        // about replies, which do not pass the director: none).
                    ];
                    for (what, f) in frames {
                        assert_eq!(s.owner(&f, &Ctx), expect, "{what} n={workers} {cport}");
                    }
                }
            }
        }
    }

    #[test]
    fn arp_goes_to_all_and_the_rest_to_the_receiver() {
        let s = Steering::new(4);
        let arp = crate::testutil::arp_frame(
            crate::wire::MacAddr::BROADCAST,
            1,
            crate::testutil::CLIENT_MAC,
            CIP,
            crate::wire::MacAddr::ZERO,
            VIP,
        );
        assert_eq!(s.owner(&arp, &Ctx), Owner::All);
        // IPv6 Neighbour Discovery too (every worker has its own IPv6 neighbour table); other
        // IPv6 stays with the receiver.
        let mut nd = crate::wire::fixtures_v6::NS.to_vec();
        assert_eq!(s.owner(&nd, &Ctx), Owner::All);
        nd[ethernet::HEADER_LEN + 40] = 128; // an echo request
        assert_eq!(s.owner(&nd, &Ctx), Owner::Receiver);
        let echo = crate::testutil::icmp_echo_frame(&FrameSpec::new(CIP, 0, VIP, 0), 8, 1, 1, b"x");
        assert_eq!(s.owner(&echo, &Ctx), Owner::Receiver);
        assert_eq!(s.owner(&[0u8; 10], &Ctx), Owner::Receiver);
        let mut frag = l4_frame(6, CIP, 1000, VIP, 80);
        frag[ethernet::HEADER_LEN + 6] = 0x20; // more fragments
        assert_eq!(s.owner(&frag, &Ctx), Owner::Receiver);
        let mut gre = l4_frame(6, CIP, 1000, VIP, 80);
        gre[ethernet::HEADER_LEN + 9] = 47;
        assert_eq!(s.owner(&gre, &Ctx), Owner::Receiver);
        // One worker: no steering at all.
        assert_eq!(Steering::new(1).owner(&arp, &Ctx), Owner::Receiver);
    }

    proptest::proptest! {
        #[test]
        fn random_frames_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let s = Steering::new(3);
            if let Owner::Worker(w) = s.owner(&data, &Ctx) {
                proptest::prop_assert!(w < 3);
            }
        }
    }
}
