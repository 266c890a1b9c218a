//! Test helpers: frames built byte by byte and an independent verifier (its own RFC 1071 sum,
//! not `wire::checksum`), so tests do not grade the crate's code with the crate's code.

#![allow(dead_code)] // a toolbox: each test uses part of it
use std::net::Ipv4Addr;

use crate::wire::MacAddr;

pub const CLIENT_MAC: MacAddr = MacAddr([0x02, 0xc0, 0, 0, 0, 0x02]);
pub const PORT0_MAC: MacAddr = MacAddr([0x02, 0xd0, 0, 0, 0, 0x00]);
pub const PORT1_MAC: MacAddr = MacAddr([0x02, 0xd0, 0, 0, 0, 0x01]);
pub const RS1_MAC: MacAddr = MacAddr([0x02, 0x5e, 0, 0, 0, 0x11]);
pub const RS2_MAC: MacAddr = MacAddr([0x02, 0x5e, 0, 0, 0, 0x12]);

/// Addresses of a test frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameSpec {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
    pub ttl: u8,
    /// TCP sequence and acknowledgement numbers (the acknowledgement is written only with ACK).
    pub seq: u32,
    pub ack: u32,
}

impl FrameSpec {
    pub fn new(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> FrameSpec {
        FrameSpec {
            src_mac: CLIENT_MAC,
            dst_mac: PORT0_MAC,
            src,
            sport,
            dst,
            dport,
            ttl: 64,
            seq: 1000,
            ack: 2000,
        }
    }

    pub fn seq_ack(mut self, seq: u32, ack: u32) -> FrameSpec {
        self.seq = seq;
        self.ack = ack;
        self
    }

    pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16) -> FrameSpec {
        FrameSpec::new(src.parse().unwrap(), sport, dst.parse().unwrap(), dport)
    }

    pub fn macs(mut self, src: MacAddr, dst: MacAddr) -> FrameSpec {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }
}

/// RFC 1071 one's-complement sum, written plainly.
pub fn ones_sum(chunks: &[&[u8]]) -> u16 {
    let mut all = Vec::new();
    for c in chunks {
        all.extend_from_slice(c);
    }
    if all.len() % 2 == 1 {
        all.push(0);
    }
    let mut s: u32 = 0;
    for w in all.chunks(2) {
        s += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn frame(spec: &FrameSpec, proto: u8, l4: Vec<u8>) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&spec.dst_mac.0);
    f.extend_from_slice(&spec.src_mac.0);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, spec.ttl, proto, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&spec.src.octets());
    ip.extend_from_slice(&spec.dst.octets());
    let c = ones_sum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

fn pseudo(spec: &FrameSpec, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&spec.src.octets());
    p.extend_from_slice(&spec.dst.octets());
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

/// An Ethernet/IPv4/TCP frame with valid checksums.
pub fn tcp_frame(spec: &FrameSpec, flags: crate::wire::tcp::TcpFlags, payload: &[u8]) -> Vec<u8> {
    tcp_frame_opts(spec, flags, &[], payload)
}

/// [`tcp_frame`] with TCP options (`opts.len()` a multiple of 4).
pub fn tcp_frame_opts(
    spec: &FrameSpec,
    flags: crate::wire::tcp::TcpFlags,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let mut t = Vec::new();
    t.extend_from_slice(&spec.sport.to_be_bytes());
    t.extend_from_slice(&spec.dport.to_be_bytes());
    t.extend_from_slice(&spec.seq.to_be_bytes());
    t.extend_from_slice(&(if flags.ack() { spec.ack } else { 0 }).to_be_bytes());
    t.push((((20 + opts.len()) / 4) as u8) << 4);
    t.push((flags.0 & 0xff) as u8);
    t.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
    t.extend_from_slice(opts);
    t.extend_from_slice(payload);
    let c = ones_sum(&[&pseudo(spec, 6, t.len()), &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    frame(spec, 6, t)
}

/// An Ethernet/IPv4/UDP frame with valid checksums.
pub fn udp_frame(spec: &FrameSpec, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&spec.sport.to_be_bytes());
    u.extend_from_slice(&spec.dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut c = ones_sum(&[&pseudo(spec, 17, u.len()), &u]);
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    frame(spec, 17, u)
}

/// What [`verify_frame`] read from a frame whose checksums are all correct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
}

/// Parse an Ethernet/IPv4/TCP-or-UDP frame and check both checksums by full recompute.
pub fn verify_frame(f: &[u8]) -> Result<Verified, String> {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return Err("not an IPv4 frame".into());
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let ip = &f[14..14 + ihl];
    if ones_sum(&[ip]) != 0 {
        return Err("bad IPv4 header checksum".into());
    }
    let l4 = &f[14 + ihl..14 + total];
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let proto = ip[9];
    let mut ps = Vec::new();
    ps.extend_from_slice(&src.octets());
    ps.extend_from_slice(&dst.octets());
    ps.extend_from_slice(&[0, proto]);
    ps.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    let udp_none = proto == 17 && l4[6..8] == [0, 0];
    if !udp_none && ones_sum(&[&ps, l4]) != 0 {
        return Err(format!("bad L4 checksum (proto {proto})"));
    }
    Ok(Verified {
        dst_mac: MacAddr(f[0..6].try_into().unwrap()),
        src_mac: MacAddr(f[6..12].try_into().unwrap()),
        src,
        dst,
        ttl: ip[8],
        proto,
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        tcp_flags: if proto == 6 { l4[13] } else { 0 },
    })
}

/// An Ethernet/IPv4/ICMP frame with valid checksums: `icmp_type` (8 echo request, 0 echo
/// reply), code 0, identifier, sequence number, payload.
pub fn icmp_echo_frame(
    spec: &FrameSpec,
    icmp_type: u8,
    id: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut m = vec![icmp_type, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let c = ones_sum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    frame(spec, 1, m)
}

/// What [`verify_icmp_echo`] read from an ICMP echo frame whose checksums are correct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub icmp_type: u8,
    pub code: u8,
    pub id: u16,
    pub seq: u16,
    pub payload: Vec<u8>,
}

/// Parse an Ethernet/IPv4/ICMP echo frame and check both checksums by full recompute.
pub fn verify_icmp_echo(f: &[u8]) -> Result<Echo, String> {
    if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 1 {
        return Err("not an IPv4 ICMP frame".into());
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let ip = &f[14..14 + ihl];
    if ones_sum(&[ip]) != 0 {
        return Err("bad IPv4 header checksum".into());
    }
    let m = &f[14 + ihl..14 + total];
    if ones_sum(&[m]) != 0 {
        return Err("bad ICMP checksum".into());
    }
    Ok(Echo {
        dst_mac: MacAddr(f[0..6].try_into().unwrap()),
        src_mac: MacAddr(f[6..12].try_into().unwrap()),
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        ttl: ip[8],
        icmp_type: m[0],
        code: m[1],
        id: u16::from_be_bytes([m[4], m[5]]),
        seq: u16::from_be_bytes([m[6], m[7]]),
        payload: m[8..].to_vec(),
    })
}

pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;

/// An Ethernet/ARP (IPv4 over Ethernet) frame, zero padded to the 60-byte minimum.
pub fn arp_frame(
    eth_dst: MacAddr,
    op: u16,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst.0);
    f.extend_from_slice(&sha.0);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha.0);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha.0);
    f.extend_from_slice(&tpa.octets());
    f.resize(60, 0);
    f
}

/// An ARP frame as [`parse_arp`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub op: u16,
    pub sha: MacAddr,
    pub spa: Ipv4Addr,
    pub tha: MacAddr,
    pub tpa: Ipv4Addr,
}

/// Parse an Ethernet/ARP frame for IPv4 over Ethernet.
pub fn parse_arp(f: &[u8]) -> Result<Arp, String> {
    if f.len() < 42 || f[12..14] != [0x08, 0x06] {
        return Err("not an ARP frame".into());
    }
    if f[14..20] != [0, 1, 0x08, 0x00, 6, 4] {
        return Err("not IPv4-over-Ethernet ARP".into());
    }
    let mac = |r: core::ops::Range<usize>| MacAddr(f[r].try_into().unwrap());
    let ip = |i: usize| Ipv4Addr::new(f[i], f[i + 1], f[i + 2], f[i + 3]);
    Ok(Arp {
        eth_dst: mac(0..6),
        eth_src: mac(6..12),
        op: u16::from_be_bytes([f[20], f[21]]),
        sha: mac(22..28),
        spa: ip(28),
        tha: mac(32..38),
        tpa: ip(38),
    })
}

/// Recompute the IPv4 header checksum of an Ethernet/IPv4 frame after a test changed a field.
pub fn fix_ipv4_checksum(f: &mut [u8]) {
    let ihl = usize::from(f[14] & 0x0f) * 4;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = ones_sum(&[&f[14..14 + ihl]]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// The plain IPv6 pseudo header (RFC 8200 8.1) as bytes.
fn pseudo6(src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p
}

/// An Ethernet/IPv6 frame (hop limit 64, traffic class 0, flow label 0) carrying `l4`.
pub fn ip6_frame(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    proto: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&PORT0_MAC.0);
    f.extend_from_slice(&CLIENT_MAC.0);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    f.extend_from_slice(&[proto, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(l4);
    f
}

/// An Ethernet/IPv6/TCP frame with a valid checksum (`opts.len()` a multiple of 4).
pub fn tcp6_frame(
    src: std::net::Ipv6Addr,
    sport: u16,
    dst: std::net::Ipv6Addr,
    dport: u16,
    flags: u8,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    t.push((((20 + opts.len()) / 4) as u8) << 4);
    t.push(flags);
    t.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
    t.extend_from_slice(opts);
    t.extend_from_slice(payload);
    let c = ones_sum(&[&pseudo6(src, dst, 6, t.len()), &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    ip6_frame(src, dst, 6, &t)
}

/// An Ethernet/IPv6/UDP frame with a valid checksum.
pub fn udp6_frame(
    src: std::net::Ipv6Addr,
    sport: u16,
    dst: std::net::Ipv6Addr,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut c = ones_sum(&[&pseudo6(src, dst, 17, u.len()), &u]);
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    ip6_frame(src, dst, 17, &u)
}

/// What [`verify_frame6`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified6 {
    pub src: std::net::Ipv6Addr,
    pub dst: std::net::Ipv6Addr,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// The upper-layer segment (header and payload).
    pub l4: Vec<u8>,
}

/// Parse an Ethernet/IPv6/TCP-UDP-ICMPv6 frame (no extension headers) and check the
/// upper-layer checksum by full recompute; a UDP checksum of 0 is refused (RFC 8200 8.1).
pub fn verify_frame6(f: &[u8]) -> Result<Verified6, String> {
    if f.len() < 54 || f[12..14] != [0x86, 0xdd] || f[14] >> 4 != 6 {
        return Err("not an IPv6 frame".into());
    }
    let plen = usize::from(u16::from_be_bytes([f[18], f[19]]));
    let l4 = f
        .get(54..54 + plen)
        .ok_or("payload length past the frame")?;
    let a = |at: usize| std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap());
    let (src, dst, proto) = (a(22), a(38), f[20]);
    if proto == 17 && l4.get(6..8) == Some(&[0, 0]) {
        return Err("UDP checksum 0 over IPv6".into());
    }
    if ones_sum(&[&pseudo6(src, dst, proto, l4.len()), l4]) != 0 {
        return Err(format!("bad L4 checksum (proto {proto})"));
    }
    let ports = proto != 58 && l4.len() >= 4;
    Ok(Verified6 {
        src,
        dst,
        hop_limit: f[21],
        traffic_class: (f[14] << 4) | (f[15] >> 4),
        flow_label: u32::from_be_bytes([0, f[15] & 0x0f, f[16], f[17]]),
        proto,
        sport: if ports {
            u16::from_be_bytes([l4[0], l4[1]])
        } else {
            0
        },
        dport: if ports {
            u16::from_be_bytes([l4[2], l4[3]])
        } else {
            0
        },
        l4: l4.to_vec(),
    })
}
