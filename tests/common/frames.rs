//! Frames built byte by byte, and pcap files read and written, for the pcap golden tests.
//! Independent of the dataplane crate: checksums are computed here in full.
#![allow(dead_code)]

use std::net::Ipv4Addr;

pub type Mac = [u8; 6];

pub fn ones_sum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn eth(dst: Mac, src: Mac, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// IPv4 header (20 bytes, DF, id 0x1234) + `l4`, with its header checksum.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, ttl, proto, 0, 0];
    ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = ones_sum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(l4);
    ip
}

/// A TCP segment in an Ethernet frame: all checksums computed in full.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    dst_mac: Mac,
    src_mac: Mac,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ttl: u8,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    tcp_opts(
        dst_mac,
        src_mac,
        src,
        dst,
        ttl,
        flags,
        seq,
        ack,
        &[],
        payload,
    )
}

/// [`tcp`] with TCP options (`options.len()` a multiple of 4, at most 40).
#[allow(clippy::too_many_arguments)]
pub fn tcp_opts(
    dst_mac: Mac,
    src_mac: Mac,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ttl: u8,
    flags: u8,
    seq: u32,
    ack: u32,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert!(options.len() % 4 == 0 && options.len() <= 40);
    let mut t = Vec::new();
    t.extend_from_slice(&src.1.to_be_bytes());
    t.extend_from_slice(&dst.1.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[
        ((5 + options.len() / 4) as u8) << 4,
        flags,
        0xfa,
        0xf0,
        0,
        0,
        0,
        0,
    ]);
    t.extend_from_slice(options);
    t.extend_from_slice(payload);
    let mut ps = Vec::new();
    ps.extend_from_slice(&src.0.octets());
    ps.extend_from_slice(&dst.0.octets());
    ps.extend_from_slice(&[0, 6]);
    ps.extend_from_slice(&(t.len() as u16).to_be_bytes());
    ps.extend_from_slice(&t);
    let c = ones_sum(&ps);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&ipv4(src.0, dst.0, ttl, 6, &t));
    f
}

/// `inner` (an Ethernet frame) with its IPv4 packet wrapped in an outer IPIP header, as TUN
/// forwarding sends it: outer TOS and DF copied from the inner header, TTL 64, `ident`.
pub fn ipip(
    dst_mac: Mac,
    src_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    inner: &[u8],
) -> Vec<u8> {
    let l3 = &inner[14..];
    let mut ip = vec![0x45, l3[1], 0, 0, 0, 0, l3[6] & 0x40, 0, 64, 4, 0, 0];
    ip[2..4].copy_from_slice(&((20 + l3.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = ones_sum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&ip);
    f.extend_from_slice(l3);
    f
}

/// An ICMP echo request or reply (`kind` 8 or 0).
#[allow(clippy::too_many_arguments)]
pub fn icmp_echo(
    dst_mac: Mac,
    src_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    kind: u8,
    id: u16,
    seq: u16,
) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"rvs-ping");
    let c = ones_sum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&ipv4(src, dst, ttl, 1, &m));
    f
}

/// An ARP request (`op` 1) or reply (`op` 2), padded to 60 bytes.
pub fn arp(
    dst_mac: Mac,
    src_mac: Mac,
    op: u16,
    sha: Mac,
    spa: Ipv4Addr,
    tha: Mac,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut f = eth(dst_mac, src_mac, 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    f.resize(60, 0);
    f
}

/// Write a pcap file (microsecond timestamps, Ethernet link type).
pub fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

/// Read the frames of a pcap file (either byte order, micro- or nanosecond magic).
pub fn read_pcap(path: &std::path::Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    assert!(data.len() >= 24, "{} is not a pcap file", path.display());
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let le = matches!(magic, 0xa1b2_c3d4 | 0xa1b2_3c4d);
    let rd = |b: &[u8]| {
        let a: [u8; 4] = b.try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let caplen = rd(&data[at + 8..at + 12]) as usize;
        at += 16;
        frames.push(data[at..at + caplen].to_vec());
        at += caplen;
    }
    frames
}

/// Hex dump for assertion messages.
pub fn hex(f: &[u8]) -> String {
    f.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join("")
}

/// A UDP datagram in an Ethernet frame (checksum computed in full).
pub fn udp(
    dst_mac: Mac,
    src_mac: Mac,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&ipv4(
        src.0,
        dst.0,
        ttl,
        17,
        &udp_segment(src, dst, payload),
    ));
    f
}

/// A UDP header and payload with its checksum over the IPv4 pseudo-header.
pub fn udp_segment(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&src.1.to_be_bytes());
    u.extend_from_slice(&dst.1.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut ps = Vec::new();
    ps.extend_from_slice(&src.0.octets());
    ps.extend_from_slice(&dst.0.octets());
    ps.extend_from_slice(&[0, 17]);
    ps.extend_from_slice(&(u.len() as u16).to_be_bytes());
    ps.extend_from_slice(&u);
    let mut c = ones_sum(&ps);
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// An IPv4 packet (DF, id 0x1234) with header `options` (a multiple of 4 bytes), protocol
/// `proto` and `body` after the header, in an Ethernet frame.
#[allow(clippy::too_many_arguments)]
pub fn ipv4_raw(
    dst_mac: Mac,
    src_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    proto: u8,
    options: &[u8],
    body: &[u8],
) -> Vec<u8> {
    assert!(options.len() % 4 == 0 && options.len() <= 40);
    let hl = 20 + options.len();
    let mut ip = vec![
        0x40 | (hl / 4) as u8,
        0,
        0,
        0,
        0x12,
        0x34,
        0x40,
        0,
        ttl,
        proto,
        0,
        0,
    ];
    ip[2..4].copy_from_slice(&((hl + body.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(options);
    let c = ones_sum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&ip);
    f.extend_from_slice(body);
    f
}
