//! pcap golden frames for the client's address at FULLNAT real servers (issue 18), through real
//! DPDK (`net_pcap`): the PROXY protocol v1 and v2 on TCP (in the handshake's last ACK and in
//! front of the first data, numbers kept), PROXY v2 on UDP datagrams, and UOA in both of DPVS's
//! forms. Every expected frame is built here from the specifications, byte by byte, with
//! checksums computed in full (`common::frames`), not by rvs's code.

mod common;

use std::net::Ipv4Addr;

use common::frames;
use common::pcap::{self, CLIENT_MAC, PCAP_MAC as MAC, RS1_MAC};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

const CLIENT: (u8, u8, u8, u8) = (198, 18, 0, 2);

fn client() -> Ipv4Addr {
    Ipv4Addr::new(CLIENT.0, CLIENT.1, CLIENT.2, CLIENT.3)
}

/// The first local port of worker 0 of 1 (`dataplane::laddr::LPORT_MIN`).
const LPORT: u16 = 1024;

/// Wait for `n` packets in to the real server 198.18.1.11:`port`.
fn packets_in(port: u16, n: u32) -> impl Fn(&common::Rvsd) -> bool {
    move |r: &common::Rvsd| {
        r.ipvsadm_ok(&["-Ln", "--stats"]).lines().any(|l| {
            l.starts_with(&format!("  -> 198.18.1.11:{port}"))
                && l.split_whitespace().nth(3) == Some(n.to_string().as_str())
        })
    }
}

fn rules(proto: &str, port: u16, extra: &str) -> String {
    format!(
        "-A {proto} 198.18.0.100:{port} -s rr {extra}\n\
         -a {proto} 198.18.0.100:{port} -r 198.18.1.11:{port} --fullnat\n\
         -P {proto} 198.18.0.100:{port} -z 198.18.1.5 -F dp0\n"
    )
}

/// A TCP exchange through a service with `--proxy-protocol` `mode`; `header` is what must
/// precede the client's bytes.
fn tcp_case(name: &str, mode: &str, header: &[u8]) {
    let dir = std::env::temp_dir().join(format!("rvs-pcap-{name}-{}", std::process::id()));
    let (vip, lip, rip) = (ip("198.18.0.100"), ip("198.18.1.5"), ip("198.18.1.11"));
    let c = client();
    let data = b"GET / HTTP/1.0\r\n\r\n";
    let from_client = |flags, seq, ack, payload: &[u8]| {
        frames::tcp(
            MAC,
            CLIENT_MAC,
            (c, 40000),
            (vip, 80),
            64,
            flags,
            seq,
            ack,
            payload,
        )
    };
    let to_rs = |flags, seq, ack, payload: &[u8]| {
        frames::tcp(
            RS1_MAC,
            MAC,
            (lip, LPORT),
            (rip, 80),
            63,
            flags,
            seq,
            ack,
            payload,
        )
    };
    let input = [
        from_client(0x02, 1000, 0, b""),
        frames::tcp(
            MAC,
            RS1_MAC,
            (rip, 80),
            (lip, LPORT),
            64,
            0x12,
            5000,
            1001,
            b"",
        ),
        from_client(0x10, 1001, 5001, b""),
        from_client(0x18, 1001, 5001, data),
    ];
    let want = [
        // The SYN without TOA (a PROXY header replaces it), its number kept.
        to_rs(0x02, 1000, 0, b""),
        frames::tcp(
            CLIENT_MAC,
            MAC,
            (vip, 80),
            (c, 40000),
            63,
            0x12,
            5000,
            1001,
            b"",
        ),
        // The handshake's last ACK carries the header (flags as the client sent them): a
        // server that speaks first has it.
        to_rs(0x10, 1001, 5001, header),
        // The first data, still unacknowledged: the same header in front, the same number.
        to_rs(0x18, 1001, 5001, &[header, data.as_slice()].concat()),
    ];
    let out = pcap::run(
        &dir,
        &rules("-t", 80, &format!("--proxy-protocol {mode}")),
        &input,
        packets_in(80, 3),
    );
    pcap::assert_frames(&out, &want);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn proxy_v1_on_tcp() {
    require_netns!();
    let _serial = common::serial();
    tcp_case(
        "ppv1",
        "v1",
        b"PROXY TCP4 198.18.0.2 198.18.0.100 40000 80\r\n",
    );
}

fn v2_header(proto_byte: u8, dport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.extend([0x21, proto_byte, 0, 12]);
    h.extend(client().octets());
    h.extend([198, 18, 0, 100]);
    h.extend(40000u16.to_be_bytes());
    h.extend(dport.to_be_bytes());
    h
}

#[test]
fn proxy_v2_on_tcp() {
    require_netns!();
    let _serial = common::serial();
    tcp_case("ppv2", "v2", &v2_header(0x11, 80));
}

/// Two datagrams through a UDP service with `extra`; `want(payload)` is what reaches the
/// server for each.
fn udp_case(name: &str, extra: &str, want: impl Fn(&[u8]) -> Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("rvs-pcap-{name}-{}", std::process::id()));
    let vip = ip("198.18.0.100");
    let input: Vec<Vec<u8>> = [b"query one".as_slice(), b"query two"]
        .iter()
        .map(|p| frames::udp(MAC, CLIENT_MAC, (client(), 40000), (vip, 53), 64, p))
        .collect();
    let out = pcap::run(&dir, &rules("-u", 53, extra), &input, packets_in(53, 2));
    pcap::assert_frames(&out, &[want(b"query one"), want(b"query two")]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn proxy_v2_on_every_udp_datagram() {
    require_netns!();
    let _serial = common::serial();
    let (lip, rip) = (ip("198.18.1.5"), ip("198.18.1.11"));
    udp_case("ppudp", "--proxy-protocol v2", |p| {
        let body = [v2_header(0x12, 53).as_slice(), p].concat();
        frames::udp(RS1_MAC, MAC, (lip, LPORT), (rip, 53), 63, &body)
    });
}

/// The UOA option: type 31, length 8, the client's port and address.
fn uoa_option() -> Vec<u8> {
    let mut o = vec![31, 8];
    o.extend(40000u16.to_be_bytes());
    o.extend(client().octets());
    o
}

#[test]
fn uoa_in_the_option_protocol() {
    require_netns!();
    let _serial = common::serial();
    let (lip, rip) = (ip("198.18.1.5"), ip("198.18.1.11"));
    udp_case("uoaopp", "--uoa opp", |p| {
        // IP protocol 248: version 1 (IPv4) in the high nibble, next protocol UDP, length 12,
        // the option; then the UDP datagram as FULLNAT made it.
        let mut body = vec![0x10, 17, 0, 12];
        body.extend(uoa_option());
        body.extend(frames::udp_segment((lip, LPORT), (rip, 53), p));
        frames::ipv4_raw(RS1_MAC, MAC, lip, rip, 63, 248, &[], &body)
    });
}

#[test]
fn uoa_as_an_ip_option() {
    require_netns!();
    let _serial = common::serial();
    let (lip, rip) = (ip("198.18.1.5"), ip("198.18.1.11"));
    udp_case("uoaipo", "--uoa ipo", |p| {
        let seg = frames::udp_segment((lip, LPORT), (rip, 53), p);
        frames::ipv4_raw(RS1_MAC, MAC, lip, rip, 63, 17, &uoa_option(), &seg)
    });
}
