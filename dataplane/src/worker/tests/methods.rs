//! DR, TUN and FULLNAT through the in-memory harness, both directions where replies pass the
//! director; ICMP error translation; client port reuse. Frames out are checked with the
//! independent verifier (`testutil`), never with the crate's own checksum code.

use super::*;
use crate::l3::icmp::{IcmpError, build_error};

pub(super) const LIPS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 3)];
pub(super) const TUN_PORT: u16 = 8081;
pub(super) const FNAT_PORT: u16 = 8082;
pub(super) const DR_PORT: u16 = 8083;
const NOLADDR_PORT: u16 = 8084;
pub(super) const FNAT_UDP_PORT: u16 = 55;

fn key(protocol: Protocol, vport: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        vip: VIP.into(),
        vport,
    }
}

/// The services with local addresses ([`LIPS`]) in the harness tables.
pub(super) fn fullnat_services() -> [ServiceKey; 2] {
    [
        key(Protocol::Tcp, FNAT_PORT),
        key(Protocol::Udp, FNAT_UDP_PORT),
    ]
}

/// rr services, two dests each: TUN, DR (rport = vport, as ipvsadm forces), FULLNAT TCP to
/// port 80, FULLNAT UDP to port 53, and a FULLNAT service without local addresses.
pub(super) fn add_services(s: &mut ServiceTable) {
    let svcs = [
        (
            key(Protocol::Tcp, TUN_PORT),
            TUN_PORT,
            ForwardMethod::Tunnel,
        ),
        (key(Protocol::Tcp, DR_PORT), DR_PORT, ForwardMethod::Route),
        (key(Protocol::Tcp, FNAT_PORT), 80, ForwardMethod::FullNat),
        (
            key(Protocol::Udp, FNAT_UDP_PORT),
            53,
            ForwardMethod::FullNat,
        ),
        (key(Protocol::Tcp, NOLADDR_PORT), 80, ForwardMethod::FullNat),
    ];
    for (k, rport, m) in svcs {
        s.add_service(ServiceConfig::new(k, "rr")).unwrap();
        for rip in [RIP1, RIP2] {
            s.add_dest(&k, DestConfig::new(rip, rport, m)).unwrap();
        }
    }
}

const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];

fn dests_of(h: &mut Harness, k: ServiceKey, rport: u16) -> [(u64, u64); 2] {
    let snap = h.services.snapshot();
    let svc = snap.services().iter().find(|s| s.key() == k).unwrap();
    [RIP1, RIP2].map(|r| {
        let d = svc.find_dest(r.into(), rport).unwrap();
        (d.active_conns(), d.inactive_conns())
    })
}

fn conn_views(h: &Harness) -> Vec<crate::worker::ConnView> {
    let mut v: Vec<_> = h.worker.conns(h.now).collect();
    v.sort_by_key(|c| c.client.1);
    v
}

// ---- DR ----------------------------------------------------------------------------------

#[test]
fn dr_rewrites_only_the_ethernet_destination_and_uses_input_only_states() {
    let mut h = Harness::new();
    h.learn_all();
    let mut seen = Vec::new();
    for cport in [100, 101] {
        let f = tcp_frame(&FrameSpec::new(CIP, cport, VIP, DR_PORT), SYN, b"");
        let (port, out) = h.rx_forwarded(CLIENT_NET, f.clone());
        assert_eq!(port, SERVER_NET);
        // IP and TCP bytes untouched, TTL included; MACs: ours -> the chosen RS.
        assert_eq!(&out[14..], &f[14..]);
        let v = verify_frame(&out).unwrap();
        assert_eq!(v.ttl, 64);
        assert_eq!(v.src_mac, PORT1_MAC);
        let rs = if v.dst_mac == RS1_MAC { RIP1 } else { RIP2 };
        assert_eq!(v.dst_mac, rs_mac(rs));
        seen.push(rs);
    }
    assert_ne!(seen[0], seen[1], "rr alternates");
    assert_eq!(h.state(100), "SYN_RECV");
    // The client's ACK: INPUT_ONLY moves SYN_RECV to ESTABLISHED with no reply ever seen.
    for (flags, want) in [(ACK, "ESTABLISHED"), (FIN_ACK, "FIN_WAIT")] {
        let f = tcp_frame(&FrameSpec::new(CIP, 100, VIP, DR_PORT), flags, b"");
        h.rx_forwarded(CLIENT_NET, f);
        assert_eq!(h.state(100), want);
    }
    let v = conn_views(&h);
    assert_eq!(v[0].dest, (seen[0].into(), DR_PORT));
    assert_eq!(v[0].virt, (VIP.into(), DR_PORT));
    // A reply would bypass us: one that comes anyway matches nothing.
    let f = tcp_frame(
        &FrameSpec::new(VIP, DR_PORT, CIP, 100).macs(RS1_MAC, PORT1_MAC),
        ACK,
        b"",
    );
    h.expect_drop(SERVER_NET, f, DropReason::NotForUs);
    h.advance(121);
    h.tick();
    assert_eq!(h.worker.conn_count(), 0);
    assert_eq!(
        dests_of(&mut h, key(Protocol::Tcp, DR_PORT), DR_PORT),
        [(0, 0), (0, 0)]
    );
}

// ---- TUN ---------------------------------------------------------------------------------

/// Check an IPIP frame: outer header valid (independent sum), DIP1 -> `rip`, protocol 4, TTL
/// 64, DF as `df`; returns the inner frame (Ethernet header + inner packet).
fn check_ipip(out: &[u8], df: bool) -> (Ipv4Addr, Vec<u8>) {
    let h = &out[14..34];
    assert_eq!(ones_sum(&[h]), 0, "outer checksum");
    assert_eq!((h[0], h[8], h[9]), (0x45, 64, 4));
    assert_eq!(h[6] & 0x40 != 0, df);
    assert_eq!(&h[12..16], &DIP1.octets());
    let rip = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    assert_eq!(
        usize::from(u16::from_be_bytes([h[2], h[3]])),
        out.len() - 14
    );
    let mut inner = out[..14].to_vec();
    inner.extend_from_slice(&out[34..]);
    (rip, inner)
}

#[test]
fn tun_encapsulates_to_the_rs_and_answers_too_big_with_frag_needed() {
    let mut h = Harness::new();
    h.learn_all();
    let mut rips = Vec::new();
    for cport in [200, 201] {
        let f = tcp_frame(&FrameSpec::new(CIP, cport, VIP, TUN_PORT), SYN, b"");
        let (port, out) = h.rx_forwarded(CLIENT_NET, f.clone());
        assert_eq!(port, SERVER_NET);
        let (rip, inner) = check_ipip(&out, true);
        assert_eq!(&out[0..6], &rs_mac(rip).0);
        assert_eq!(&out[6..12], &PORT1_MAC.0);
        assert_eq!(
            &inner[14..],
            &f[14..],
            "inner packet unchanged, TTL included"
        );
        rips.push(rip);
    }
    assert_ne!(rips[0], rips[1]);
    let f = tcp_frame(&FrameSpec::new(CIP, 200, VIP, TUN_PORT), ACK, b"");
    h.rx_forwarded(CLIENT_NET, f);
    assert_eq!(h.state(200), "ESTABLISHED");
    assert_eq!(conn_views(&h)[0].dest, (rips[0].into(), TUN_PORT));

    // 1500 bytes inner + 20 > MTU 1500, DF set: ICMP frag-needed (MTU 1480) from the VIP.
    let big = tcp_frame(
        &FrameSpec::new(CIP, 200, VIP, TUN_PORT),
        PSH_ACK,
        &[7; 1460],
    );
    let out = h.rx(CLIENT_NET, big.clone());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, CLIENT_NET);
    let e = &out[0].1;
    assert_eq!((&e[0..6], &e[6..12]), (&CLIENT_MAC.0[..], &PORT0_MAC.0[..]));
    assert_eq!(ones_sum(&[&e[14..34]]), 0);
    assert_eq!(
        (&e[26..30], &e[30..34]),
        (&VIP.octets()[..], &CIP.octets()[..])
    );
    let icmp = &e[34..];
    assert_eq!(ones_sum(&[icmp]), 0, "ICMP checksum");
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1480);
    assert_eq!(
        &icmp[8..8 + 28],
        &big[14..14 + 28],
        "quotes header + 8 bytes"
    );
    assert_eq!(h.drops(DropReason::TunTooBig), 1);
    // Without DF: dropped, rvs does not fragment.
    let mut nodf = big;
    nodf[20] = 0;
    fix_ipv4_checksum(&mut nodf);
    h.expect_drop(CLIENT_NET, nodf, DropReason::TooBig);
    // UDP through the tunnel is not a service here: counted, not forwarded.
    let f = udp_frame(&FrameSpec::new(CIP, 200, VIP, TUN_PORT), b"x");
    h.expect_drop(CLIENT_NET, f, DropReason::LocalNotService);
}

/// ICMP the worker originates is bounded per worker (Linux's 1000/s after a burst of 50): a
/// flood of over-size DF packets gets 50 frag-needed errors at once, then one per millisecond;
/// the packets themselves are still dropped and counted, the errors held back counted apart.
#[test]
fn icmp_errors_and_echo_replies_are_rate_limited() {
    let mut h = Harness::new();
    h.learn_all();
    let f = tcp_frame(&FrameSpec::new(CIP, 300, VIP, TUN_PORT), SYN, b"");
    h.rx_forwarded(CLIENT_NET, f);
    let big = tcp_frame(
        &FrameSpec::new(CIP, 300, VIP, TUN_PORT),
        PSH_ACK,
        &[7; 1460],
    );
    let errors = (0..200)
        .map(|_| h.rx(CLIENT_NET, big.clone()).len())
        .sum::<usize>();
    assert_eq!(errors, 50);
    assert_eq!(h.drops(DropReason::TunTooBig), 200);
    h.worker.publish_stats();
    assert_eq!(h.stats.icmp_errors_limited.load(Ordering::Relaxed), 150);
    h.now = h.now + core::time::Duration::from_millis(10);
    let errors = (0..200)
        .map(|_| h.rx(CLIENT_NET, big.clone()).len())
        .sum::<usize>();
    assert_eq!(errors, 10, "1000/s: ten in 10 ms");

    let echo = icmp_echo_frame(&FrameSpec::new(CIP, 0, DIP0, 0), 8, 1, 1, b"");
    let replies = (0..120)
        .map(|_| h.rx(CLIENT_NET, echo.clone()).len())
        .sum::<usize>();
    assert_eq!(replies, 50);
    assert_eq!(h.drops(DropReason::IcmpRateLimited), 70);
    h.advance(1);
    assert_eq!(h.rx(CLIENT_NET, echo).len(), 1);
}

// ---- FULLNAT -----------------------------------------------------------------------------

/// The TOA option in a TCP segment of `frame`, if any: (port, address).
fn toa_of(frame: &[u8]) -> Option<(u16, Ipv4Addr)> {
    let thl = usize::from(frame[46] >> 4) * 4;
    let opts = &frame[54..34 + thl];
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            k => {
                let len = usize::from(opts[i + 1]);
                if k == 254 && len == 8 {
                    let o = &opts[i..i + 8];
                    return Some((
                        u16::from_be_bytes([o[2], o[3]]),
                        Ipv4Addr::new(o[4], o[5], o[6], o[7]),
                    ));
                }
                i += len.max(2);
            }
        }
    }
    None
}

fn mss_of(frame: &[u8]) -> Option<u16> {
    let thl = usize::from(frame[46] >> 4) * 4;
    let opts = &frame[54..34 + thl];
    opts.windows(4)
        .find(|w| w[0] == 2 && w[1] == 4)
        .map(|w| u16::from_be_bytes([w[2], w[3]]))
}

/// Client -> VIP:FNAT_PORT, forwarded to an RS from a LIP: returns (frame out, lip, lport, rip).
fn fnat_in(
    h: &mut Harness,
    cport: u16,
    flags: TcpFlags,
    opts: &[u8],
    payload: &[u8],
) -> (Vec<u8>, Ipv4Addr, u16, Ipv4Addr) {
    let f = tcp_frame_opts(
        &FrameSpec::new(CIP, cport, VIP, FNAT_PORT),
        flags,
        opts,
        payload,
    );
    let (port, out) = h.rx_forwarded(CLIENT_NET, f);
    assert_eq!(port, SERVER_NET);
    let v = verify_frame(&out).unwrap();
    assert!(LIPS.contains(&v.src), "source {} is not a LIP", v.src);
    assert!(v.sport >= crate::laddr::LPORT_MIN);
    assert_eq!(v.dport, 80);
    assert_eq!(v.dst_mac, rs_mac(v.dst));
    assert_eq!(v.ttl, 63);
    assert_eq!(v.tcp_flags, flags.0 as u8);
    assert!(out.ends_with(payload));
    (out, v.src, v.sport, v.dst)
}

/// RS -> LIP:lport, forwarded to the client from the VIP: returns the frame out.
fn fnat_out(
    h: &mut Harness,
    rip: Ipv4Addr,
    lip: Ipv4Addr,
    lport: u16,
    cport: u16,
    flags: TcpFlags,
    opts: &[u8],
) -> Vec<u8> {
    let f = tcp_frame_opts(
        &FrameSpec::new(rip, 80, lip, lport).macs(rs_mac(rip), PORT1_MAC),
        flags,
        opts,
        b"",
    );
    let (port, out) = h.rx_forwarded(SERVER_NET, f);
    assert_eq!(port, CLIENT_NET);
    let v = verify_frame(&out).unwrap();
    assert_eq!(
        (v.src, v.sport, v.dst, v.dport),
        (VIP, FNAT_PORT, CIP, cport)
    );
    assert_eq!((v.dst_mac, v.src_mac), (CLIENT_MAC, PORT0_MAC));
    out
}

#[test]
fn fullnat_translates_both_ends_carries_toa_and_releases_the_lport() {
    let mut h = Harness::new();
    h.learn_all();
    h.learn(SERVER_NET, RIP1, RS1_MAC);
    // LIPs are answered for by ARP on their port only.
    for lip in LIPS {
        let req = arp_frame(
            MacAddr::BROADCAST,
            ARP_REQUEST,
            RS1_MAC,
            RIP1,
            MacAddr::ZERO,
            lip,
        );
        let out = h.rx(SERVER_NET, req);
        assert_eq!(parse_arp(&out[0].1).unwrap().spa, lip);
        let req = client_arp_request(lip);
        h.expect_drop(CLIENT_NET, req, DropReason::ArpNotForUs);
    }

    let (syn, lip, lport, rip) = fnat_in(&mut h, 40000, SYN, &MSS_1460, b"");
    assert_eq!(toa_of(&syn), Some((40000, CIP)), "TOA on the SYN");
    assert_eq!(mss_of(&syn), Some(1460), "the client's MSS is kept");
    assert_eq!(syn.len(), 14 + 20 + 24 + 8);
    // The reply's MSS leaves room for the TOA on full-sized client segments.
    let sa = fnat_out(&mut h, rip, lip, lport, 40000, SYN_ACK, &MSS_1460);
    assert_eq!(mss_of(&sa), Some(1452));
    let (ack, ..) = fnat_in(&mut h, 40000, ACK, &[], b"");
    assert_eq!(toa_of(&ack), None, "no TOA on a pure ACK");
    let (data, ..) = fnat_in(&mut h, 40000, PSH_ACK, &[], b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        toa_of(&data),
        Some((40000, CIP)),
        "TOA on the first data segment"
    );
    let (data2, ..) = fnat_in(&mut h, 40000, PSH_ACK, &[], b"more");
    assert_eq!(toa_of(&data2), None, "only once");
    assert_eq!(h.state(40000), "ESTABLISHED");
    let v = conn_views(&h);
    assert_eq!(
        (v[0].client, v[0].virt, v[0].dest),
        (
            (CIP.into(), 40000),
            (VIP.into(), FNAT_PORT),
            (rip.into(), 80)
        )
    );

    // A second client port gets another (LIP, lport) or the same lport towards the other RS.
    let (_, lip2, lport2, rip2) = fnat_in(&mut h, 40001, SYN, &[], b"");
    assert_ne!((lip2, lport2, rip2), (lip, lport, rip));

    // Close, expire: the lport goes back to the pool, the LIP's count to zero.
    fnat_in(&mut h, 40000, FIN_ACK, &[], b"");
    fnat_out(&mut h, rip, lip, lport, 40000, FIN_ACK, &[]);
    assert_eq!(h.state(40000), "TIME_WAIT");
    h.advance(200);
    h.tick();
    assert_eq!(h.worker.conn_count(), 0);
    let t = h.worker.tables().clone();
    for l in LIPS {
        assert_eq!(t.laddrs.stats(l).unwrap().conns(), 0);
    }
    assert_eq!(
        dests_of(&mut h, key(Protocol::Tcp, FNAT_PORT), 80),
        [(0, 0), (0, 0)]
    );
    // A stray reply to the released LIP:lport is nobody's.
    let f = tcp_frame(
        &FrameSpec::new(rip, 80, lip, lport).macs(rs_mac(rip), PORT1_MAC),
        ACK,
        b"",
    );
    h.expect_drop(SERVER_NET, f, DropReason::LocalNotService);
}

#[test]
fn fullnat_udp_both_ways() {
    let mut h = Harness::new();
    h.learn_all();
    let f = udp_frame(&FrameSpec::new(CIP, 5353, VIP, FNAT_UDP_PORT), b"query");
    let (port, out) = h.rx_forwarded(CLIENT_NET, f);
    assert_eq!(port, SERVER_NET);
    let v = verify_frame(&out).unwrap();
    assert!(LIPS.contains(&v.src));
    assert_eq!(v.dport, 53);
    let r = udp_frame(
        &FrameSpec::new(v.dst, 53, v.src, v.sport).macs(rs_mac(v.dst), PORT1_MAC),
        b"answer",
    );
    let (port, out) = h.rx_forwarded(SERVER_NET, r);
    assert_eq!(port, CLIENT_NET);
    let w = verify_frame(&out).unwrap();
    assert_eq!(
        (w.src, w.sport, w.dst, w.dport),
        (VIP, FNAT_UDP_PORT, CIP, 5353)
    );
    assert!(out.ends_with(b"answer"));
    assert_eq!(h.state(5353), "UDP");
}

#[test]
fn fullnat_without_laddr_or_ports_refuses_and_keeps_live_connections() {
    let mut h = Harness::new();
    h.learn_all();
    let f = tcp_frame(&FrameSpec::new(CIP, 1, VIP, NOLADDR_PORT), SYN, b"");
    h.expect_drop(CLIENT_NET, f, DropReason::NoLaddr);
    assert_eq!(h.worker.conn_count(), 0);

    // Pretend 60000 workers share the ports: this worker owns one lport per (LIP, RS), four in
    // all (two LIPs, two RS).
    let mut t = (**h.worker.tables()).clone();
    let mut laddrs = crate::laddr::LaddrTable::new(60_000);
    let svc = h
        .services
        .service(&key(Protocol::Tcp, FNAT_PORT))
        .unwrap()
        .id();
    laddrs.set(svc, t.laddrs.of(svc).to_vec());
    t.laddrs = Arc::new(laddrs);
    h.worker.set_tables(Arc::new(t));
    let mut live = Vec::new();
    for cport in 1..=4 {
        let (_, lip, lport, rip) = fnat_in(&mut h, cport, SYN, &[], b"");
        assert_eq!(lport, 60_000);
        live.push((cport, lip, lport, rip));
    }
    for cport in 5..=40 {
        let f = tcp_frame(&FrameSpec::new(CIP, cport, VIP, FNAT_PORT), SYN, b"");
        h.expect_drop(CLIENT_NET, f, DropReason::LportExhausted);
    }
    // The live connections still work both ways.
    for &(cport, lip, lport, rip) in &live {
        fnat_out(&mut h, rip, lip, lport, cport, SYN_ACK, &[]);
        fnat_in(&mut h, cport, ACK, &[], b"");
    }
    assert_eq!(h.worker.conn_count(), 4);
}

// ---- ICMP errors ------------------------------------------------------------------------

/// An ICMP error frame from `src` to `dst` about `offending` (an Ethernet frame), arriving with
/// the given MACs.
fn icmp_error_frame(
    kind: IcmpError,
    src: Ipv4Addr,
    offending: &[u8],
    macs: (MacAddr, MacAddr),
) -> Vec<u8> {
    let mut b = HeapBuf::new();
    build_error(&mut b, &offending[14..], kind, src, 7).unwrap();
    let mut f = b.data().to_vec();
    f[0..6].copy_from_slice(&macs.1.0);
    f[6..12].copy_from_slice(&macs.0.0);
    f
}

/// Parse an ICMP error frame with the independent sums: outer (src, dst), type, quoted tuple.
fn check_icmp_error(f: &[u8]) -> ((Ipv4Addr, Ipv4Addr), u8, (Ipv4Addr, u16, Ipv4Addr, u16)) {
    assert_eq!(ones_sum(&[&f[14..34]]), 0, "outer IP checksum");
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let icmp = &f[34..14 + total];
    assert_eq!(ones_sum(&[icmp]), 0, "ICMP checksum");
    let q = &icmp[8..];
    assert_eq!(ones_sum(&[&q[..20]]), 0, "quoted IP checksum");
    let a = |o: &[u8]| Ipv4Addr::new(o[0], o[1], o[2], o[3]);
    (
        (a(&f[26..30]), a(&f[30..34])),
        icmp[0],
        (
            a(&q[12..16]),
            u16::from_be_bytes([q[20], q[21]]),
            a(&q[16..20]),
            u16::from_be_bytes([q[22], q[23]]),
        ),
    )
}

#[test]
fn icmp_errors_of_nat_connections_are_translated_both_ways() {
    let mut h = Harness::new();
    h.learn_all();
    let f = tcp_frame(&FrameSpec::new(CIP, 500, VIP, 80), SYN, b"");
    let (_, req) = h.rx_forwarded(CLIENT_NET, f);
    let rip = verify_frame(&req).unwrap().dst;
    // The RS's side answers the request with port unreachable: the client hears it from the VIP
    // about its own packet.
    let e = icmp_error_frame(
        IcmpError::DestUnreachable(3),
        rip,
        &req,
        (rs_mac(rip), PORT1_MAC),
    );
    let (port, out) = h.rx_forwarded(SERVER_NET, e);
    assert_eq!(port, CLIENT_NET);
    assert_eq!(check_icmp_error(&out), ((VIP, CIP), 3, (CIP, 500, VIP, 80)));
    // The client's side says a reply was too big: the RS hears it about its own reply.
    let sa = tcp_frame(
        &FrameSpec::new(rip, 80, CIP, 500).macs(rs_mac(rip), PORT1_MAC),
        SYN_ACK,
        b"",
    );
    let (_, reply) = h.rx_forwarded(SERVER_NET, sa);
    let e = icmp_error_frame(
        IcmpError::FragNeeded { mtu: 1400 },
        CIP,
        &reply,
        (CLIENT_MAC, PORT0_MAC),
    );
    let (port, out) = h.rx_forwarded(CLIENT_NET, e);
    assert_eq!(port, SERVER_NET);
    assert_eq!(check_icmp_error(&out), ((CIP, rip), 3, (rip, 80, CIP, 500)));
    assert_eq!(u16::from_be_bytes([out[40], out[41]]), 1400);
    // An error about no known connection, to the VIP: not forwarded.
    let stray = tcp_frame(&FrameSpec::new(VIP, 80, CIP, 999), ACK, b"");
    let e = icmp_error_frame(
        IcmpError::TimeExceeded,
        CIP,
        &stray,
        (CLIENT_MAC, PORT0_MAC),
    );
    h.expect_drop(CLIENT_NET, e, DropReason::LocalNotService);
}

#[test]
fn icmp_errors_of_fullnat_connections_are_translated_both_ways() {
    let mut h = Harness::new();
    h.learn_all();
    let (req, lip, lport, rip) = fnat_in(&mut h, 600, SYN, &[], b"");
    let e = icmp_error_frame(
        IcmpError::DestUnreachable(1),
        rip,
        &req,
        (rs_mac(rip), PORT1_MAC),
    );
    let (port, out) = h.rx_forwarded(SERVER_NET, e);
    assert_eq!(port, CLIENT_NET);
    assert_eq!(
        check_icmp_error(&out),
        ((VIP, CIP), 3, (CIP, 600, VIP, FNAT_PORT))
    );
    let reply = fnat_out(&mut h, rip, lip, lport, 600, SYN_ACK, &[]);
    let e = icmp_error_frame(
        IcmpError::TimeExceeded,
        CIP,
        &reply,
        (CLIENT_MAC, PORT0_MAC),
    );
    let (port, out) = h.rx_forwarded(CLIENT_NET, e);
    assert_eq!(port, SERVER_NET);
    assert_eq!(
        check_icmp_error(&out),
        ((lip, rip), 11, (rip, 80, lip, lport))
    );
}

// ---- Connection tracking -----------------------------------------------------------------

#[test]
fn a_client_port_reused_after_time_wait_opens_a_fresh_connection() {
    let mut h = Harness::new();
    h.learn_all();
    let rip = h.syn(700);
    h.rs_to_client(rip, 700, SYN_ACK, b"");
    h.client_to_rs(700, ACK, b"");
    h.client_to_rs(700, FIN_ACK, b"");
    h.rs_to_client(rip, 700, FIN_ACK, b"");
    assert_eq!(h.state(700), "TIME_WAIT");
    let before = h.counts(rip);
    assert_eq!(before.0, 0);
    // Same client port, new SYN: the old connection goes, a new one is scheduled.
    h.client_to_rs(700, SYN, b"");
    assert_eq!(h.state(700), "SYN_RECV");
    assert_eq!(h.worker.conn_count(), 1);
    let (a1, i1) = h.counts(RIP1);
    let (a2, i2) = h.counts(RIP2);
    assert_eq!(
        (a1 + a2, i1 + i2),
        (1, 0),
        "the old one unbound, the new one bound"
    );
    // A SYN on an ESTABLISHED connection is not a reuse: it stays on its connection.
    let rip = h.syn(701);
    h.rs_to_client(rip, 701, SYN_ACK, b"");
    h.client_to_rs(701, ACK, b"");
    let v = h.client_to_rs(701, SYN, b"");
    assert_eq!(v.dst, rip);
    assert_eq!(h.worker.conn_count(), 2);
    // A connection reset (CLOSE) is reused the same way.
    h.client_to_rs(701, TcpFlags::RST, b"");
    assert_eq!(h.state(701), "CLOSE");
    h.client_to_rs(701, SYN, b"");
    assert_eq!(h.state(701), "SYN_RECV");
    h.worker.publish_stats();
    assert_eq!(h.stats.conn_reuses.load(Ordering::Relaxed), 2);
}

/// NAT: a client that reuses a source port toward a second VIP on the same real server needs
/// the reply tuple (RS:80 -> client:port) of its earlier connection. A finished (TIME_WAIT)
/// holder gives it up; a live one keeps it and the new SYN is dropped and counted.
#[test]
fn a_second_vip_on_the_same_server_takes_over_a_finished_reply_tuple() {
    const VIP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);
    let mut h = Harness::new();
    h.learn_all();
    let rip = h.syn(710);
    h.rs_to_client(rip, 710, SYN_ACK, b"");
    h.client_to_rs(710, ACK, b"");
    h.client_to_rs(710, FIN_ACK, b"");
    h.rs_to_client(rip, 710, FIN_ACK, b"");
    assert_eq!(h.state(710), "TIME_WAIT");
    let live = h.syn(711);
    h.rs_to_client(live, 711, SYN_ACK, b"");
    h.client_to_rs(711, ACK, b"");
    assert_eq!(h.state(711), "ESTABLISHED");
    // VIP2:80 -> the server both old connections went to.
    let k2 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP2.into(),
        vport: 80,
    };
    h.services
        .add_service(ServiceConfig::new(k2, "rr"))
        .unwrap();
    h.services
        .add_dest(&k2, DestConfig::new(rip, 80, ForwardMethod::Masq))
        .unwrap();
    h.publish();

    let syn2 = tcp_frame(&FrameSpec::new(CIP, 710, VIP2, 80), SYN, b"");
    let (port, out) = h.rx_forwarded(CLIENT_NET, syn2);
    assert_eq!(port, SERVER_NET);
    let v = verify_frame(&out).unwrap();
    assert_eq!((v.src, v.sport, v.dst, v.dport), (CIP, 710, rip, 80));
    // The reply goes back from VIP2, the address the client asked for.
    let reply = tcp_frame(
        &FrameSpec::new(rip, 80, CIP, 710).macs(rs_mac(rip), PORT1_MAC),
        SYN_ACK,
        b"",
    );
    let (port, out) = h.rx_forwarded(SERVER_NET, reply);
    assert_eq!(port, CLIENT_NET);
    let v = verify_frame(&out).unwrap();
    assert_eq!((v.src, v.sport, v.dst, v.dport), (VIP2, 80, CIP, 710));
    assert_eq!(h.state(710), "SYN_RECV");
    h.worker.publish_stats();
    assert_eq!(h.stats.conn_reuses.load(Ordering::Relaxed), 1);

    // The same through a live connection: refused, the live one untouched.
    // (wrr 3:1 put both of the first connections on the same server.)
    assert_eq!(live, rip);
    let syn3 = tcp_frame(&FrameSpec::new(CIP, 711, VIP2, 80), SYN, b"");
    h.expect_drop(CLIENT_NET, syn3, DropReason::ConnTupleInUse);
    assert_eq!(h.state(711), "ESTABLISHED");
    h.rs_to_client(live, 711, PSH_ACK, b"still here");
}

/// FULLNAT: a client port reused while its old connection is in TIME_WAIT gets a fresh
/// connection with another local port (the freed one goes to the back of the pool), so the real
/// server, which may still hold the old (LIP, lport) in TIME_WAIT, sees a new 4-tuple.
#[test]
fn fullnat_port_reuse_takes_a_fresh_local_port() {
    let mut h = Harness::new();
    h.learn_all();
    let (_, lip, lport, rip) = fnat_in(&mut h, 800, SYN, &[], b"");
    fnat_out(&mut h, rip, lip, lport, 800, SYN_ACK, &[]);
    fnat_in(&mut h, 800, ACK, &[], b"");
    fnat_in(&mut h, 800, FIN_ACK, &[], b"");
    fnat_out(&mut h, rip, lip, lport, 800, FIN_ACK, &[]);
    fnat_in(&mut h, 800, ACK, &[], b"");
    let (_, lip2, lport2, rip2) = fnat_in(&mut h, 800, SYN, &[], b"");
    assert_ne!((lip2, lport2, rip2), (lip, lport, rip));
    assert_eq!(h.worker.conn_count(), 1);
    // The new connection answers on its own local port; the old one is gone.
    fnat_out(&mut h, rip2, lip2, lport2, 800, SYN_ACK, &[]);
    let stale = tcp_frame(
        &FrameSpec::new(rip, 80, lip, lport).macs(rs_mac(rip), PORT1_MAC),
        ACK,
        b"",
    );
    h.expect_drop(SERVER_NET, stale, DropReason::LocalNotService);
    h.worker.publish_stats();
    assert_eq!(h.stats.conn_reuses.load(Ordering::Relaxed), 1);
}

/// Sources no client can have are dropped with their own reason before any connection exists,
/// for every forwarding method, and are not answered (ICMP echo) either; a real client on the
/// same network still gets through.
#[test]
fn martian_sources_open_nothing_on_any_method() {
    let mut h = Harness::new();
    h.learn_all();
    let martians = [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(0, 1, 2, 3),
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 5),
        Ipv4Addr::new(239, 1, 2, 3),
        Ipv4Addr::new(240, 0, 0, 1),
        Ipv4Addr::new(198, 18, 0, 255), // the client network's broadcast address
        DIP0,
        DIP1,
        LIPS[0],
        VIP,
    ];
    for vport in [80, DR_PORT, TUN_PORT, FNAT_PORT] {
        for src in martians {
            let f = tcp_frame(&FrameSpec::new(src, 4000, VIP, vport), SYN, b"");
            h.expect_drop(CLIENT_NET, f, DropReason::MartianSource);
        }
        let f = udp_frame(
            &FrameSpec::new(Ipv4Addr::new(127, 0, 0, 1), 4000, VIP, 53),
            b"q",
        );
        h.expect_drop(CLIENT_NET, f, DropReason::MartianSource);
    }
    assert_eq!(h.worker.conn_count(), 0);
    for src in [Ipv4Addr::new(127, 0, 0, 1), VIP] {
        let echo = icmp_echo_frame(&FrameSpec::new(src, 0, DIP0, 0), 8, 1, 1, b"");
        h.expect_drop(CLIENT_NET, echo, DropReason::MartianSource);
    }
    // A client of the same network is not martian.
    h.syn(4001);
    assert_eq!(h.worker.conn_count(), 1);
}

#[test]
fn a_syn_flood_beyond_the_table_cannot_evict_live_connections() {
    let mut h = Harness::build(16, Timeouts::default());
    h.learn_all();
    let rip = h.syn(1);
    h.rs_to_client(rip, 1, SYN_ACK, b"");
    h.client_to_rs(1, ACK, b"");
    let mut rng = 0x1234_5678u32;
    for _ in 0..2000 {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let cport = (rng % 60000) as u16 + 2;
        let f = tcp_frame(&FrameSpec::new(CIP, cport, VIP, 80), SYN, b"");
        h.rx(CLIENT_NET, f);
    }
    assert_eq!(h.worker.conn_count(), 16);
    // Each flood SYN beyond the table took the slot of the oldest flood entry (`pressure`).
    assert_eq!(h.drops(DropReason::ConnTableFull), 0);
    h.worker.publish_stats();
    assert!(h.stats.embryonic_evicted.load(Ordering::Relaxed) > 1900);
    h.client_to_rs(1, PSH_ACK, b"still here");
    h.rs_to_client(rip, 1, PSH_ACK, b"yes");
    assert_eq!(h.state(1), "ESTABLISHED");
    // The table is over its high watermark: the flood's SYN_RECV entries get a second's grace
    // (instead of 60 s), then go; the established connection stays, and a real client gets in.
    h.tick();
    h.worker.publish_stats();
    assert_eq!(h.stats.embryonic_shortened.load(Ordering::Relaxed), 15);
    h.now = h.now + core::time::Duration::from_millis(1100);
    h.tick();
    assert_eq!(h.worker.conn_count(), 1);
    assert_eq!(h.state(1), "ESTABLISHED");
    let rip2 = h.syn(2);
    h.rs_to_client(rip2, 2, SYN_ACK, b"");
    h.client_to_rs(2, ACK, b"");
    assert_eq!(h.state(2), "ESTABLISHED");
}
