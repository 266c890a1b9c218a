//! pcap golden frames for IPv6 services through real DPDK (`net_pcap`): NAT6, FULLNAT6 with the
//! IPv6 TOA and NAT64 (IPv6 clients, an IPv4 server). rvsd owns an IPv6 address on each network
//! and knows its IPv6 neighbours statically, so no Neighbour Discovery is needed. Every frame
//! is built here from the specifications (RFC 8200 header, RFC 7915 translation, the TOA
//! layouts of docs/client-addr.md), byte by byte, with checksums computed in full, not by rvs's
//! code.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::frames::{self, Mac};
use common::pcap::{self, CLIENT_MAC, PCAP_MAC as MAC, RS1_MAC};

/// The IPv6 addresses and static neighbours beside pcap::run's IPv4 ones.
const V6_CONF: &str = r#"
[[addr]]
port = "dp0"
ip = "2001:2::1/64"
[[addr]]
port = "dp0"
ip = "2001:2:1::1/64"
[[neigh]]
port = "dp0"
ip = "2001:2::2"
mac = "02:c1:00:00:00:02"
[[neigh]]
port = "dp0"
ip = "2001:2:1::11"
mac = "02:5e:00:00:00:11"
"#;

const CPORT: u16 = 40000;
/// The first local port of worker 0 of 1 (`dataplane::laddr::LPORT_MIN`).
const LPORT: u16 = 1024;
const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];
const DATA: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

fn a6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn cip() -> Ipv6Addr {
    a6("2001:2::2")
}

fn vip() -> Ipv6Addr {
    a6("2001:2::100")
}

fn rip6() -> Ipv6Addr {
    a6("2001:2:1::11")
}

fn rip4() -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 11)
}

fn lip4() -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 5)
}

/// A TCP header and payload (checksum zero): data offset from `opts`, window 0xfaf0.
fn segment(
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert!(opts.len() % 4 == 0 && opts.len() <= 40);
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[
        ((5 + opts.len() / 4) as u8) << 4,
        flags,
        0xfa,
        0xf0,
        0,
        0,
        0,
        0,
    ]);
    t.extend_from_slice(opts);
    t.extend_from_slice(payload);
    t
}

/// An Ethernet/IPv6/TCP frame (traffic class and flow label 0) with its checksum computed
/// over the RFC 8200 section 8.1 pseudo header.
#[allow(clippy::too_many_arguments)]
fn tcp6(
    dst_mac: Mac,
    src_mac: Mac,
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    hop: u8,
    flags: u8,
    seq: u32,
    ack: u32,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut t = segment(src.1, dst.1, flags, seq, ack, opts, payload);
    let mut ps = Vec::new();
    ps.extend_from_slice(&src.0.octets());
    ps.extend_from_slice(&dst.0.octets());
    ps.extend_from_slice(&(t.len() as u32).to_be_bytes());
    ps.extend_from_slice(&[0, 0, 0, 6]);
    ps.extend_from_slice(&t);
    let c = frames::ones_sum(&ps);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(t.len() as u16).to_be_bytes());
    f.extend_from_slice(&[6, hop]);
    f.extend_from_slice(&src.0.octets());
    f.extend_from_slice(&dst.0.octets());
    f.extend_from_slice(&t);
    f
}

/// An Ethernet/IPv4/TCP frame as RFC 7915 section 5.1 translates one: no options, TOS 0 (the
/// traffic class), identification `ident`, DF clear (short packets), TTL `ttl`.
#[allow(clippy::too_many_arguments)]
fn tcp4_translated(
    dst_mac: Mac,
    src_mac: Mac,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ttl: u8,
    ident: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut t = segment(src.1, dst.1, flags, seq, ack, opts, payload);
    let mut ps = Vec::new();
    ps.extend_from_slice(&src.0.octets());
    ps.extend_from_slice(&dst.0.octets());
    ps.extend_from_slice(&[0, 6]);
    ps.extend_from_slice(&(t.len() as u16).to_be_bytes());
    ps.extend_from_slice(&t);
    let c = frames::ones_sum(&ps);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, 6, 0, 0];
    ip[2..4].copy_from_slice(&((20 + t.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    ip.extend_from_slice(&src.0.octets());
    ip.extend_from_slice(&dst.0.octets());
    let c = frames::ones_sum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&t);
    f
}

/// The IPv6 TOA option (kind 254, length 20: port, the 16 address bytes).
fn toa6(ip: Ipv6Addr, port: u16) -> Vec<u8> {
    let mut o = vec![254, 20];
    o.extend_from_slice(&port.to_be_bytes());
    o.extend_from_slice(&ip.octets());
    o
}

/// The client's three segments to the VIP: SYN (MSS 1460), the handshake's ACK, data.
fn client_frames() -> [Vec<u8>; 3] {
    let c = |flags, seq, ack, opts: &[u8], data: &[u8]| {
        tcp6(
            MAC,
            CLIENT_MAC,
            (cip(), CPORT),
            (vip(), 80),
            64,
            flags,
            seq,
            ack,
            opts,
            data,
        )
    };
    [
        c(0x02, 1000, 0, &MSS_1460, b""),
        c(0x10, 1001, 5001, &[], b""),
        c(0x18, 1001, 5001, &[], DATA),
    ]
}

/// Frames out without rvsd's unsolicited advertisements of its own IPv6 addresses (sent once
/// per address, whenever the worker first sees it), which are checked here: to all nodes, from
/// the port's MAC, for one of the configured addresses.
fn without_announcements(out: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let owned = [a6("2001:2::1"), a6("2001:2:1::1")];
    out.into_iter()
        .filter(|f| {
            let na = f.len() >= 78 && f[12..14] == [0x86, 0xdd] && f[20] == 58 && f[54] == 136;
            if na {
                assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1], "to all nodes");
                assert_eq!(&f[6..12], &MAC);
                let target = Ipv6Addr::from(<[u8; 16]>::try_from(&f[62..78]).unwrap());
                assert!(owned.contains(&target), "announced {target}");
            }
            !na
        })
        .collect()
}

/// Wait for `n` packets in to the real server `dest` (as `ipvsadm -Ln --stats` writes it).
fn packets_in(dest: &'static str, n: u32) -> impl Fn(&common::Rvsd) -> bool {
    move |r: &common::Rvsd| {
        r.ipvsadm_ok(&["-Ln", "--stats"]).lines().any(|l| {
            l.starts_with(&format!("  -> {dest}"))
                && l.split_whitespace().nth(3) == Some(n.to_string().as_str())
        })
    }
}

#[test]
fn nat6_rewrites_the_destination_and_the_reply_source() {
    require_netns!();
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("rvs-pcap-nat6-{}", std::process::id()));
    let [syn, ack, data] = client_frames();
    let from_rs = tcp6(
        MAC,
        RS1_MAC,
        (rip6(), 80),
        (cip(), CPORT),
        64,
        0x12,
        5000,
        1001,
        &MSS_1460,
        b"",
    );
    let to_rs = |flags, seq, ack, opts: &[u8], data: &[u8]| {
        tcp6(
            RS1_MAC,
            MAC,
            (cip(), CPORT),
            (rip6(), 80),
            63,
            flags,
            seq,
            ack,
            opts,
            data,
        )
    };
    let want = [
        to_rs(0x02, 1000, 0, &MSS_1460, b""),
        tcp6(
            CLIENT_MAC,
            MAC,
            (vip(), 80),
            (cip(), CPORT),
            63,
            0x12,
            5000,
            1001,
            &MSS_1460,
            b"",
        ),
        to_rs(0x10, 1001, 5001, &[], b""),
        to_rs(0x18, 1001, 5001, &[], DATA),
    ];
    let out = pcap::run_with(
        &dir,
        V6_CONF,
        "-A -t [2001:2::100]:80 -s rr\n-a -t [2001:2::100]:80 -r [2001:2:1::11]:80 -m\n",
        &[syn, from_rs, ack, data],
        packets_in("[2001:2:1::11]:80", 3),
    );
    pcap::assert_frames(&without_announcements(out), &want);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn fullnat6_translates_both_ends_with_the_ipv6_toa() {
    require_netns!();
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("rvs-pcap-fnat6-{}", std::process::id()));
    let lip = a6("2001:2:1::5");
    let [syn, ack, data] = client_frames();
    let from_rs = tcp6(
        MAC,
        RS1_MAC,
        (rip6(), 80),
        (lip, LPORT),
        64,
        0x12,
        5000,
        1001,
        &MSS_1460,
        b"",
    );
    let toa = toa6(cip(), CPORT);
    let to_rs = |flags, seq, ack, opts: &[u8], data: &[u8]| {
        tcp6(
            RS1_MAC,
            MAC,
            (lip, LPORT),
            (rip6(), 80),
            63,
            flags,
            seq,
            ack,
            opts,
            data,
        )
    };
    let want = [
        // The SYN: the client's MSS, then the TOA.
        to_rs(0x02, 1000, 0, &[&MSS_1460[..], &toa].concat(), b""),
        // The SYN-ACK's MSS leaves room for the 20-byte option: 1440.
        tcp6(
            CLIENT_MAC,
            MAC,
            (vip(), 80),
            (cip(), CPORT),
            63,
            0x12,
            5000,
            1001,
            &[2, 4, 0x05, 0xa0],
            b"",
        ),
        to_rs(0x10, 1001, 5001, &[], b""),
        // The first data segment carries the TOA again.
        to_rs(0x18, 1001, 5001, &toa, DATA),
    ];
    let out = pcap::run_with(
        &dir,
        V6_CONF,
        "-A -t [2001:2::100]:80 -s rr\n\
         -a -t [2001:2::100]:80 -r [2001:2:1::11]:80 --fullnat\n\
         -P -t [2001:2::100]:80 -z 2001:2:1::5 -F dp0\n",
        &[syn, from_rs, ack, data],
        packets_in("[2001:2:1::11]:80", 3),
    );
    pcap::assert_frames(&without_announcements(out), &want);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn nat64_translates_to_ipv4_and_back() {
    require_netns!();
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("rvs-pcap-nat64-{}", std::process::id()));
    let [syn, ack, data] = client_frames();
    // The IPv4 server's SYN-ACK to the local address.
    let from_rs = frames::tcp_opts(
        MAC,
        RS1_MAC,
        (rip4(), 80),
        (lip4(), LPORT),
        64,
        0x12,
        5000,
        1001,
        &MSS_1460,
        b"",
    );
    let out = pcap::run_with(
        &dir,
        V6_CONF,
        "-A -t [2001:2::100]:80 -s rr\n\
         -a -t [2001:2::100]:80 -r 198.18.1.11:80 --fullnat\n\
         -P -t [2001:2::100]:80 -z 198.18.1.5 -F dp0\n",
        &[syn, from_rs, ack, data],
        packets_in("198.18.1.11:80", 3),
    );
    let out = without_announcements(out);
    // The identification comes from the worker's counter (a per-start random value): take the
    // first from the output; it advances by one per translated packet.
    assert!(
        out.len() == 4 && out[0].len() > 20,
        "frames out: {}",
        out.len()
    );
    let id0 = u16::from_be_bytes([out[0][18], out[0][19]]);
    let toa = toa6(cip(), CPORT);
    let to_rs = |k: u16, flags, seq, ack, opts: &[u8], data: &[u8]| {
        tcp4_translated(
            RS1_MAC,
            MAC,
            (lip4(), LPORT),
            (rip4(), 80),
            63,
            id0.wrapping_add(k),
            flags,
            seq,
            ack,
            opts,
            data,
        )
    };
    let want = [
        // The SYN as IPv4 with the client's IPv6 address in the 20-byte TOA.
        to_rs(0, 0x02, 1000, 0, &[&MSS_1460[..], &toa].concat(), b""),
        // The reply as IPv6 from the VIP, its MSS 20 smaller (1440).
        tcp6(
            CLIENT_MAC,
            MAC,
            (vip(), 80),
            (cip(), CPORT),
            63,
            0x12,
            5000,
            1001,
            &[2, 4, 0x05, 0xa0],
            b"",
        ),
        to_rs(1, 0x10, 1001, 5001, &[], b""),
        to_rs(2, 0x18, 1001, 5001, &toa, DATA),
    ];
    pcap::assert_frames(&out, &want);
    let _ = std::fs::remove_dir_all(dir);
}
