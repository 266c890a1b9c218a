//! The client's address for FULLNAT real servers through the in-memory harness: the PROXY
//! protocol header on TCP (where it goes, the shift of sequence numbers both ways, the
//! server that speaks first, a header the client sent, a first segment too large, restart
//! with state), PROXY v2 on every UDP datagram, UOA in both forms, TOA switched off. Frames out
//! are checked with the independent verifier.

use super::methods::{FNAT_PORT, FNAT_UDP_PORT, LIPS};
use super::*;
use crate::service::{ClientAddr, ProxyProtocol, UoaMode};
use crate::xmit::proxy::{Header, V2_SIG};

const CPORT: u16 = 42000;

fn key(protocol: Protocol, vport: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        vip: VIP.into(),
        vport,
    }
}

/// The harness with the FULLNAT TCP and UDP services set to `ca`.
fn harness(ca: ClientAddr) -> Harness {
    let mut h = Harness::new();
    h.learn_all();
    for k in [
        key(Protocol::Tcp, FNAT_PORT),
        key(Protocol::Udp, FNAT_UDP_PORT),
    ] {
        if ca.proxy.version() == Some(1) && k == key(Protocol::Udp, FNAT_UDP_PORT) {
            continue; // version 1 is TCP only
        }
        let mut c = ServiceConfig::new(k, "rr");
        c.client_addr = ca;
        h.services.edit_service(c).unwrap();
    }
    h.publish();
    h
}

impl Harness {
    /// The worker's counters as published.
    fn stat(&self) -> &WorkerStats {
        self.worker.publish_stats();
        &self.stats
    }
}

fn mode(proxy: ProxyProtocol) -> ClientAddr {
    ClientAddr {
        proxy,
        ..ClientAddr::default()
    }
}

fn from_client(seq: u32, ack: u32) -> FrameSpec {
    FrameSpec::new(CIP, CPORT, VIP, FNAT_PORT).seq_ack(seq, ack)
}

/// What reached the real server, and where replies go.
#[derive(Debug, Clone, Copy)]
struct Leg {
    lip: Ipv4Addr,
    lport: u16,
    rip: Ipv4Addr,
}

fn from_rs(l: Leg, seq: u32, ack: u32) -> FrameSpec {
    FrameSpec::new(l.rip, 80, l.lip, l.lport)
        .macs(rs_mac(l.rip), PORT1_MAC)
        .seq_ack(seq, ack)
}

fn seq_ack(f: &[u8]) -> (u32, u32) {
    let s = &f[34..];
    (
        u32::from_be_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_be_bytes([s[8], s[9], s[10], s[11]]),
    )
}

fn payload(f: &[u8]) -> Vec<u8> {
    crate::xmit::proxy::tcp_payload(f, 34).to_vec()
}

fn tcp_options(f: &[u8]) -> Vec<u8> {
    let hl = usize::from(f[34 + 12] >> 4) * 4;
    f[34 + 20..34 + hl].to_vec()
}

fn v2() -> Vec<u8> {
    Header::new(2, 6, CIP, CPORT, VIP, FNAT_PORT)
        .as_bytes()
        .to_vec()
}

/// SYN (ISN 1000) and the server's SYN-ACK (ISN 5000): the connection as both ends see it.
fn open(h: &mut Harness) -> Leg {
    let (_, out) = h.rx_forwarded(CLIENT_NET, tcp_frame(&from_client(1000, 0), SYN, b""));
    let v = verify_frame(&out).unwrap();
    assert!(LIPS.contains(&v.src));
    let leg = Leg {
        lip: v.src,
        lport: v.sport,
        rip: v.dst,
    };
    assert_eq!(seq_ack(&out).0, 1000, "the SYN keeps its number");
    let synack = tcp_frame_opts(&from_rs(leg, 5000, 1001), SYN_ACK, &[2, 4, 0x05, 0xb4], b"");
    let (_, out) = h.rx_forwarded(SERVER_NET, synack);
    verify_frame(&out).unwrap();
    assert_eq!(seq_ack(&out), (5000, 1001));
    leg
}

/// A client segment; the frames the server side got (verified), in order.
fn client(h: &mut Harness, seq: u32, flags: TcpFlags, data: &[u8]) -> Vec<Vec<u8>> {
    let out = h.rx(CLIENT_NET, tcp_frame(&from_client(seq, 5001), flags, data));
    let v: Vec<Vec<u8>> = out
        .into_iter()
        .filter(|(p, _)| *p == SERVER_NET)
        .map(|(_, f)| f)
        .collect();
    for f in &v {
        verify_frame(f).unwrap();
    }
    v
}

/// A server segment; the frame the client got.
fn server(h: &mut Harness, l: Leg, seq: u32, ack: u32, opts: &[u8], data: &[u8]) -> Vec<u8> {
    let f = tcp_frame_opts(&from_rs(l, seq, ack), ACK, opts, data);
    let (port, out) = h.rx_forwarded(SERVER_NET, f);
    assert_eq!(port, CLIENT_NET);
    verify_frame(&out).unwrap();
    out
}

#[test]
fn v2_goes_with_the_handshake_ack_and_every_number_moves_by_its_length() {
    let mut h = harness(mode(ProxyProtocol::V2));
    let l = open(&mut h);
    // The handshake's last ACK carries the header (a server that speaks first gets it).
    let out = client(&mut h, 1001, ACK, b"");
    assert_eq!(out.len(), 1);
    assert_eq!(payload(&out[0]), v2());
    assert_eq!(seq_ack(&out[0]), (1001, 5001));
    // The first data, before the server acknowledged anything: the header again, in front.
    let get = b"GET / HTTP/1.1\r\n\r\n";
    let out = client(&mut h, 1001, PSH_ACK, get);
    assert_eq!(payload(&out[0]), [v2(), get.to_vec()].concat());
    assert_eq!(seq_ack(&out[0]).0, 1001);
    // The server acknowledges the header only: nothing of the client's yet.
    let out = server(&mut h, l, 5001, 1001 + 28, &[], b"");
    assert_eq!(seq_ack(&out), (5001, 1001));
    // ... and part of the header: the same.
    let out = server(&mut h, l, 5001, 1001 + 10, &[], b"");
    assert_eq!(seq_ack(&out).1, 1001);
    // All of it, with a SACK block past it, and data.
    let n = get.len() as u32;
    let mut sack = vec![1, 1, 5, 10];
    sack.extend((1001 + 28 + n + 100).to_be_bytes());
    sack.extend((1001 + 28 + n + 200).to_be_bytes());
    let out = server(
        &mut h,
        l,
        5001,
        1001 + 28 + n,
        &sack,
        b"HTTP/1.1 200 OK\r\n",
    );
    assert_eq!(seq_ack(&out), (5001, 1001 + n));
    let o = tcp_options(&out);
    assert_eq!(
        u32::from_be_bytes([o[4], o[5], o[6], o[7]]),
        1001 + n + 100,
        "SACK edges move too"
    );
    assert_eq!(
        u32::from_be_bytes([o[8], o[9], o[10], o[11]]),
        1001 + n + 200
    );
    // Later client segments move forward by 28; the header is not sent again.
    let out = client(&mut h, 1001 + n, ACK, b"more");
    assert_eq!(seq_ack(&out[0]).0, 1001 + n + 28);
    assert_eq!(payload(&out[0]), b"more");
    // A late retransmission of the first segment, after the server acknowledged the header:
    // renumbered, no header.
    let out = client(&mut h, 1001, PSH_ACK, get);
    assert_eq!(
        (seq_ack(&out[0]).0, payload(&out[0])),
        (1001 + 28, get.to_vec())
    );
    assert_eq!(h.stat().proxy_headers.load(Ordering::Relaxed), 2);
    // No TOA with a PROXY header, and the server's MSS reaches the client unreduced.
    assert!(!tcp_options(&out[0]).contains(&254));
}

#[test]
fn v1_is_the_text_line_and_a_server_that_speaks_first_is_served() {
    let mut h = harness(mode(ProxyProtocol::V1));
    let l = open(&mut h);
    let line = format!("PROXY TCP4 {CIP} {VIP} {CPORT} {FNAT_PORT}\r\n").into_bytes();
    let len = line.len() as u32;
    let out = client(&mut h, 1001, ACK, b"");
    assert_eq!(payload(&out[0]), line);
    // The server speaks first (a greeting) and acknowledges the header with it.
    let out = server(&mut h, l, 5001, 1001 + len, &[], b"220 ready\r\n");
    assert_eq!(seq_ack(&out), (5001, 1001));
    // The client acknowledges the greeting from its first number: no header again, moved.
    let out = client(&mut h, 1001, ACK, b"");
    assert_eq!(seq_ack(&out[0]).0, 1001 + len);
    assert!(payload(&out[0]).is_empty());
    let out = client(&mut h, 1001, PSH_ACK, b"EHLO x\r\n");
    assert_eq!(
        (seq_ack(&out[0]).0, payload(&out[0])),
        (1001 + len, b"EHLO x\r\n".to_vec())
    );
}

#[test]
fn a_header_the_client_sent_is_replaced_unless_insecure_mode_keeps_it() {
    let forged = b"PROXY TCP4 198.18.9.9 198.18.0.100 1 8082\r\n".to_vec();
    let body = [forged.clone(), b"GET /".to_vec()].concat();
    let f = forged.len() as u32;
    // Secure: cut off, rvs's in its place; later numbers move by 28 - its length.
    let mut h = harness(mode(ProxyProtocol::V2));
    let l = open(&mut h);
    let out = client(&mut h, 1001, PSH_ACK, &body);
    assert_eq!(payload(&out[0]), [v2(), b"GET /".to_vec()].concat());
    let next = 1001 + body.len() as u32;
    let out = client(&mut h, next, ACK, b"x");
    assert_eq!(seq_ack(&out[0]).0, next + 28 - f);
    let out = server(&mut h, l, 5001, next + 28 - f, &[], b"");
    assert_eq!(seq_ack(&out).1, next);

    // Insecure, same version: passes as it is, nothing added, nothing moved.
    let mut h = harness(mode(ProxyProtocol::V1Insecure));
    let l = open(&mut h);
    let out = client(&mut h, 1001, ACK, b"");
    assert!(payload(&out[0]).is_empty(), "insecure modes wait for data");
    let out = client(&mut h, 1001, PSH_ACK, &body);
    assert_eq!((seq_ack(&out[0]).0, payload(&out[0])), (1001, body.clone()));
    let out = server(&mut h, l, 5001, next, &[], b"");
    assert_eq!(seq_ack(&out).1, next);
    assert_eq!(h.stat().proxy_headers.load(Ordering::Relaxed), 0);

    // Insecure, the client sent none: rvs's goes with the first data.
    let mut h = harness(mode(ProxyProtocol::V2Insecure));
    open(&mut h);
    let out = client(&mut h, 1001, PSH_ACK, b"GET /");
    assert_eq!(payload(&out[0]), [v2(), b"GET /".to_vec()].concat());
}

#[test]
fn a_full_sized_first_segment_sends_the_header_alone() {
    let mut h = harness(mode(ProxyProtocol::V2Insecure));
    let l = open(&mut h);
    let data = vec![b'u'; 1460];
    let out = client(&mut h, 1001, ACK, &data);
    assert_eq!(out.len(), 2, "the segment, then the header on its own");
    assert_eq!(
        (seq_ack(&out[0]).0, payload(&out[0])),
        (1001 + 28, data.clone())
    );
    assert_eq!((seq_ack(&out[1]).0, payload(&out[1])), (1001, v2()));
    let v = verify_frame(&out[1]).unwrap();
    assert_eq!(
        (v.src, v.sport, v.dst, v.dport),
        (l.lip, l.lport, l.rip, 80)
    );
    assert!(out.iter().all(|f| f.len() - 14 <= 1500));
    assert_eq!(h.stat().proxy_standalone.load(Ordering::Relaxed), 1);
    // Its retransmission, still unacknowledged: the same again.
    let out = client(&mut h, 1001, ACK, &data);
    assert_eq!(out.len(), 2);
    let out = server(&mut h, l, 5001, 1001 + 28 + 1460, &[], b"");
    assert_eq!(seq_ack(&out).1, 1001 + 1460);
}

#[test]
fn the_header_survives_a_restart_with_state() {
    let mut a = harness(mode(ProxyProtocol::V2));
    let l = open(&mut a);
    client(&mut a, 1001, PSH_ACK, b"GET");
    let records = a.worker.export_conns(a.now);
    assert_eq!(records.len(), 1);
    assert!(records.v4[0].proxy_hdr.is_some());
    let mut b = harness(mode(ProxyProtocol::V2));
    let report = b
        .worker
        .import_conns(b.now, Duration::from_secs(1), &records);
    assert_eq!(report.restored, 1, "{report:?}");
    // The retransmission still carries the header; the server's ACK is still translated.
    let out = client(&mut b, 1001, PSH_ACK, b"GET");
    assert_eq!(payload(&out[0]), [v2(), b"GET".to_vec()].concat());
    let out = server(&mut b, l, 5001, 1001 + 28 + 3, &[], b"");
    assert_eq!(seq_ack(&out).1, 1004);
    let out = client(&mut b, 1004, ACK, b"x");
    assert_eq!(seq_ack(&out[0]).0, 1004 + 28);
}

#[test]
fn toa_can_be_switched_off() {
    for (toa, want) in [(true, true), (false, false)] {
        let mut h = harness(ClientAddr {
            toa,
            ..ClientAddr::default()
        });
        let (_, out) = h.rx_forwarded(CLIENT_NET, tcp_frame(&from_client(1000, 0), SYN, b""));
        verify_frame(&out).unwrap();
        assert_eq!(tcp_options(&out).contains(&254), want, "toa {toa}");
    }
}

fn udp_from_client(cport: u16, data: &[u8]) -> Vec<u8> {
    udp_frame(&FrameSpec::new(CIP, cport, VIP, FNAT_UDP_PORT), data)
}

#[test]
fn udp_v2_header_on_every_datagram() {
    let mut h = harness(mode(ProxyProtocol::V2));
    let hdr = Header::new(2, 17, CIP, 43000, VIP, FNAT_UDP_PORT);
    assert_eq!(&hdr.as_bytes()[..12], &V2_SIG);
    assert_eq!(hdr.as_bytes()[13], 0x12, "DGRAM over IPv4");
    let mut leg = None;
    for q in [&b"q1"[..], b"q2", b"q3"] {
        let (_, out) = h.rx_forwarded(CLIENT_NET, udp_from_client(43000, q));
        let v = verify_frame(&out).unwrap();
        assert_eq!(&out[42..], [hdr.as_bytes(), q].concat().as_slice());
        leg = Some((v.src, v.sport, v.dst));
    }
    // The server's answer passes as it is (no header that way).
    let (lip, lport, rip) = leg.unwrap();
    let f = udp_frame(
        &FrameSpec::new(rip, 53, lip, lport).macs(rs_mac(rip), PORT1_MAC),
        b"answer",
    );
    let (_, out) = h.rx_forwarded(SERVER_NET, f);
    assert_eq!(&out[42..], b"answer");
    assert_eq!(h.stat().proxy_udp.load(Ordering::Relaxed), 3);
    // Insecure: a datagram with the client's own v2 header passes untouched.
    let mut h = harness(mode(ProxyProtocol::V2Insecure));
    let theirs = Header::new(2, 17, Ipv4Addr::new(198, 18, 9, 9), 1, VIP, 55);
    let body = [theirs.as_bytes(), b"q"].concat();
    let (_, out) = h.rx_forwarded(CLIENT_NET, udp_from_client(43001, &body));
    assert_eq!(&out[42..], body.as_slice());
    // Secure: replaced.
    let mut h = harness(mode(ProxyProtocol::V2));
    let (_, out) = h.rx_forwarded(CLIENT_NET, udp_from_client(43002, &body));
    let ours = Header::new(2, 17, CIP, 43002, VIP, FNAT_UDP_PORT);
    assert_eq!(&out[42..], [ours.as_bytes(), b"q"].concat().as_slice());
}

#[test]
fn a_datagram_too_big_for_the_header_is_refused_with_the_room_left() {
    let mut h = harness(mode(ProxyProtocol::V2));
    let f = udp_from_client(43003, &vec![0u8; 1500 - 28]);
    assert_eq!(f[20] & 0x40, 0x40, "DF set");
    let out = h.rx(CLIENT_NET, f);
    assert_eq!(
        h.drops(DropReason::ProxyHdrTooBig),
        1,
        "{:?}",
        h.worker.drops()
    );
    let icmp: Vec<_> = out.iter().filter(|(p, _)| *p == CLIENT_NET).collect();
    assert_eq!(icmp.len(), 1, "fragmentation needed");
    let m = &icmp[0].1[34..];
    assert_eq!((m[0], m[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([m[6], m[7]]), 1500 - 28);
}

#[test]
fn uoa_goes_on_the_first_three_datagrams_until_the_server_answers() {
    for (uoa, proto) in [(UoaMode::Opp, 248u8), (UoaMode::Ipo, 17)] {
        let mut h = harness(ClientAddr {
            uoa,
            ..ClientAddr::default()
        });
        let opt = [31, 8, 0xa7, 0xf8, 198, 18, 0, 2]; // port 43000, CIP
        assert_eq!(u16::from_be_bytes([opt[2], opt[3]]), 43000);
        assert_eq!(&opt[4..], &CIP.octets());
        for n in 0..5 {
            let q = [b'q', n];
            let (_, out) = h.rx_forwarded(CLIENT_NET, udp_from_client(43000, &q));
            let with = n < 3;
            let ihl = usize::from(out[14] & 0xf) * 4;
            assert_eq!(
                out[23],
                if with { proto } else { 17 },
                "{uoa:?} datagram {n}"
            );
            assert_eq!(!crate::wire::checksum::sum(&out[14..14 + ihl]), 0);
            let udp_at = match (with, uoa) {
                (true, UoaMode::Ipo) => {
                    assert_eq!(ihl, 28);
                    assert_eq!(&out[34..42], &opt);
                    42
                }
                (true, _) => {
                    assert_eq!(&out[34..38], &[0x10, 17, 0, 12]);
                    assert_eq!(&out[38..46], &opt);
                    46
                }
                (false, _) => 34,
            };
            assert_eq!(&out[udp_at + 8..], &q);
        }
        assert_eq!(h.stat().uoa_sent.load(Ordering::Relaxed), 3);
        // A new flow whose server answers after the first datagram: no more after that.
        let (_, out) = h.rx_forwarded(CLIENT_NET, udp_from_client(43001, b"a"));
        assert!(out[23] != 17 || out[14] != 0x45, "the first carries it");
        let (lip, lport, rip) = {
            let at = if out[23] == 248 { 12 } else { 0 };
            let ihl = usize::from(out[14] & 0xf) * 4;
            let u = 14 + ihl + at;
            (
                Ipv4Addr::new(out[26], out[27], out[28], out[29]),
                u16::from_be_bytes([out[u], out[u + 1]]),
                Ipv4Addr::new(out[30], out[31], out[32], out[33]),
            )
        };
        let f = udp_frame(
            &FrameSpec::new(rip, 53, lip, lport).macs(rs_mac(rip), PORT1_MAC),
            b"r",
        );
        h.rx_forwarded(SERVER_NET, f);
        let (_, out) = h.rx_forwarded(CLIENT_NET, udp_from_client(43001, b"b"));
        assert_eq!((out[14], out[23]), (0x45, 17), "{uoa:?}: answered, no UOA");
    }
}

/// The SYN proxy and a PROXY header on one connection: the ACK the proxy sends the server on
/// the client's behalf carries the header, and the two renumberings (the proxy's server-side
/// shift, the header's client-side one) compose.
#[test]
fn the_syn_proxy_ack_carries_the_header() {
    let mut h = Harness::new();
    h.learn_all();
    let k = key(Protocol::Tcp, FNAT_PORT);
    let mut c = ServiceConfig::new(k, "rr");
    c.synproxy = true;
    c.client_addr = mode(ProxyProtocol::V2);
    h.services.edit_service(c).unwrap();
    h.publish();
    // SYN -> cookie SYN-ACK.
    let out = h.rx(CLIENT_NET, tcp_frame(&from_client(1000, 0), SYN, b""));
    let synack: Vec<_> = out.iter().filter(|(p, _)| *p == CLIENT_NET).collect();
    assert_eq!(synack.len(), 1);
    let isn = seq_ack(&synack[0].1).0;
    // The ACK proves the cookie: the proxy's SYN to the server, in the client's numbering.
    let out = h.rx(CLIENT_NET, tcp_frame(&from_client(1001, isn + 1), ACK, b""));
    let syn: Vec<_> = out.iter().filter(|(p, _)| *p == SERVER_NET).collect();
    assert_eq!(syn.len(), 1, "{:?}", h.worker.drops());
    let v = verify_frame(&syn[0].1).unwrap();
    assert_eq!((v.tcp_flags, seq_ack(&syn[0].1).0), (0x02, 1000));
    let l = Leg {
        lip: v.src,
        lport: v.sport,
        rip: v.dst,
    };
    // The server answers: the proxy ACKs it with the header, and opens the client's window.
    let synack = tcp_frame_opts(&from_rs(l, 7000, 1001), SYN_ACK, &[2, 4, 0x05, 0xb4], b"");
    let out = h.rx(SERVER_NET, synack);
    let to_rs: Vec<_> = out.iter().filter(|(p, _)| *p == SERVER_NET).collect();
    assert_eq!(to_rs.len(), 1);
    verify_frame(&to_rs[0].1).unwrap();
    assert_eq!(seq_ack(&to_rs[0].1), (1001, 7001));
    assert_eq!(payload(&to_rs[0].1), v2());
    // Client data (in the proxy's numbering towards the client): header in front, acks shifted
    // by the proxy; the server's acknowledgement of it reaches the client in its own terms.
    let f = tcp_frame(&from_client(1001, isn + 1), PSH_ACK, b"GET");
    let out = h.rx(CLIENT_NET, f);
    let to_rs: Vec<_> = out.iter().filter(|(p, _)| *p == SERVER_NET).collect();
    verify_frame(&to_rs[0].1).unwrap();
    assert_eq!(seq_ack(&to_rs[0].1), (1001, 7001));
    assert_eq!(payload(&to_rs[0].1), [v2(), b"GET".to_vec()].concat());
    let out = server(&mut h, l, 7001, 1001 + 28 + 3, &[], b"OK");
    assert_eq!(seq_ack(&out), (isn + 1, 1004));
}

/// `-E` of the service to another mode does not change a connection that has its header: a
/// retransmission still carries the version it began with, the shift stays.
#[test]
fn a_service_edit_leaves_open_connections_their_header() {
    let mut h = harness(mode(ProxyProtocol::V2));
    let l = open(&mut h);
    client(&mut h, 1001, ACK, b"");
    let mut c = ServiceConfig::new(key(Protocol::Tcp, FNAT_PORT), "rr");
    c.client_addr = mode(ProxyProtocol::V1);
    h.services.edit_service(c).unwrap();
    h.publish();
    let out = client(&mut h, 1001, PSH_ACK, b"GET");
    assert_eq!(payload(&out[0]), [v2(), b"GET".to_vec()].concat());
    let out = server(&mut h, l, 5001, 1001 + 28 + 3, &[], b"");
    assert_eq!(seq_ack(&out).1, 1004);
}
