//! The SYN proxy through the in-memory harness: the cookie handshake, the proxied opening,
//! renumbering both ways (sequence, acknowledgement, SACK, timestamps, window), failures.
//! Frames out are checked with the independent verifier.

use super::*;
use crate::synproxy::cookie::{self, Flow, TsOptions};
use crate::synproxy::segment::{Seg, read};

const SP_PORT: u16 = 9000;
const CPORT: u16 = 41000;

fn sp_key() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        vport: SP_PORT,
    }
}

/// A harness with TCP VIP:9000, SYN proxy on, one NAT real server RIP1:80.
fn harness() -> Harness {
    let mut h = Harness::new();
    h.learn_all();
    let mut c = ServiceConfig::new(sp_key(), "rr");
    c.synproxy = true;
    h.services.add_service(c).unwrap();
    h.services
        .add_dest(&sp_key(), DestConfig::new(RIP1, 80, ForwardMethod::Masq))
        .unwrap();
    h.publish();
    h
}

/// Client options: MSS 1460, SACK permitted, timestamps, window scale 7.
fn syn_opts(tsval: u32) -> Vec<u8> {
    let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    o.extend(tsval.to_be_bytes());
    o.extend(0u32.to_be_bytes());
    o.extend([1, 3, 3, 7]);
    o
}

fn ts_opts(val: u32, echo: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend(val.to_be_bytes());
    o.extend(echo.to_be_bytes());
    o
}

fn from_client(seq: u32, ack: u32) -> FrameSpec {
    FrameSpec::new(CIP, CPORT, VIP, SP_PORT).seq_ack(seq, ack)
}

fn from_rs(seq: u32, ack: u32) -> FrameSpec {
    FrameSpec::new(RIP1, 80, CIP, CPORT)
        .macs(RS1_MAC, PORT1_MAC)
        .seq_ack(seq, ack)
}

/// The one frame sent on `port`, verified, with its TCP fields.
fn one_on(out: &[(PortId, Vec<u8>)], port: PortId) -> (Verified, Seg) {
    let v: Vec<_> = out.iter().filter(|(p, _)| *p == port).collect();
    assert_eq!(v.len(), 1, "frames on port {port}: {}", out.len());
    let f = &v[0].1;
    (verify_frame(f).unwrap(), read(f, 34).unwrap())
}

/// SYN -> cookie SYN-ACK; returns (our ISN, our tsval).
fn handshake(h: &mut Harness) -> (u32, u32) {
    let syn = tcp_frame_opts(&from_client(1000, 0), SYN, &syn_opts(500), b"");
    let out = h.rx(CLIENT_NET, syn);
    let (v, s) = one_on(&out, CLIENT_NET);
    assert_eq!((v.src, v.sport, v.dst, v.dport), (VIP, SP_PORT, CIP, CPORT));
    assert_eq!((v.dst_mac, v.tcp_flags), (CLIENT_MAC, 0x12));
    assert_eq!(s.ack, 1001);
    assert_eq!(s.window, 0, "a zero window until the server answers");
    assert_eq!((s.mss, s.wscale, s.sack_perm), (Some(1460), Some(7), true));
    let (val, echo) = s.ts.unwrap();
    assert_eq!(echo, 500);
    // The timestamp carries the client's options, as Linux encodes them.
    assert_eq!(
        cookie::ts_decode(val),
        TsOptions {
            wscale: Some(7),
            sack: true
        }
    );
    assert_eq!(h.worker.conn_count(), 0, "a SYN makes no state");
    (s.seq, val)
}

/// Handshake, ACK (the SYN to the server, checked), the server's SYN-ACK (the client's ACK to
/// the server and the window update, checked). Returns (our ISN, our tsval).
fn proxied(h: &mut Harness) -> (u32, u32) {
    let (isn, tsv) = handshake(h);
    let ack = tcp_frame_opts(&from_client(1001, isn + 1), ACK, &ts_opts(501, tsv), b"");
    let out = h.rx(CLIENT_NET, ack);
    let (v, s) = one_on(&out, SERVER_NET);
    assert_eq!((v.src, v.sport, v.dst, v.dport), (CIP, CPORT, RIP1, 80));
    assert_eq!(v.tcp_flags, 0x02);
    assert_eq!(
        (s.seq, s.mss, s.wscale, s.sack_perm),
        (1000, Some(1460), Some(7), true)
    );
    assert_eq!(s.ts, Some((501, 0)));
    assert_eq!(h.state(CPORT), "SYN_SENT");

    // The server: ISN 5000, window 29200 bytes, its own scale 5, timestamps from 9000.
    let mut o = vec![2, 4, 0x05, 0x78, 4, 2, 8, 10];
    o.extend(9000u32.to_be_bytes());
    o.extend(501u32.to_be_bytes());
    o.extend([1, 3, 3, 5]);
    let mut synack = tcp_frame_opts(&from_rs(5000, 1001), SYN_ACK, &o, b"");
    set_window(&mut synack, 29200);
    let out = h.rx(SERVER_NET, synack);
    assert_eq!(out.len(), 2, "{out:?}");
    let (v, s) = one_on(&out, SERVER_NET);
    assert_eq!((v.src, v.dst, v.dport, v.tcp_flags), (CIP, RIP1, 80, 0x10));
    assert_eq!((s.seq, s.ack), (1001, 5001));
    assert_eq!(s.ts, Some((501, 9000)), "the server's own timestamp echoed");
    assert_eq!(s.window, 64240, "both sides scale the client's window by 7");
    let (v, s) = one_on(&out, CLIENT_NET);
    assert_eq!(
        (v.src, v.sport, v.dst, v.tcp_flags),
        (VIP, SP_PORT, CIP, 0x10)
    );
    assert_eq!((s.seq, s.ack), (isn + 1, 1001));
    assert_eq!(s.ts, Some((tsv, 501)));
    assert_eq!(
        s.window,
        29200 >> 7,
        "the server's window in the scale the client knows"
    );
    assert_eq!(h.state(CPORT), "ESTABLISHED");
    (isn, tsv)
}

/// (active, inactive) of the SYN-proxy service's dest.
fn counts(h: &mut Harness) -> (u64, u64) {
    let snap = h.services.snapshot();
    let svc = snap
        .services()
        .iter()
        .find(|s| s.key() == sp_key())
        .unwrap();
    let d = svc.find_dest(RIP1.into(), 80).unwrap();
    (d.active_conns(), d.inactive_conns())
}

fn set_window(f: &mut [u8], w: u16) {
    let old = u16::from_be_bytes([f[48], f[49]]);
    f[48..50].copy_from_slice(&w.to_be_bytes());
    let c = u16::from_be_bytes([f[50], f[51]]);
    let c = crate::wire::checksum::update_u16(c, old, w);
    f[50..52].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn the_cookie_handshake_opens_nothing_until_the_ack() {
    let mut h = harness();
    for _ in 0..3 {
        handshake(&mut h);
    }
    h.worker.publish_stats();
    assert_eq!(h.stats.synproxy_cookies.load(Ordering::Relaxed), 3);
    assert_eq!(h.worker.conn_count(), 0);
    // An ACK with a forged cookie opens nothing.
    let forged = tcp_frame_opts(&from_client(1001, 0x1234_5678), ACK, &ts_opts(1, 2), b"");
    h.expect_drop(CLIENT_NET, forged, DropReason::SynproxyBadCookie);
    // Nor a cookie from three minutes ago.
    let (isn, tsv) = handshake(&mut h);
    h.advance(180);
    let late = tcp_frame_opts(&from_client(1001, isn + 1), ACK, &ts_opts(501, tsv), b"");
    h.expect_drop(CLIENT_NET, late, DropReason::SynproxyBadCookie);
    assert_eq!(h.worker.conn_count(), 0);
}

#[test]
fn a_proxied_connection_is_renumbered_both_ways() {
    let mut h = harness();
    let (isn, tsv) = proxied(&mut h);
    // Client data with a SACK block in the client's view of the server's numbers.
    let mut o = ts_opts(502, tsv);
    o.extend([1, 1, 5, 10]);
    o.extend((isn + 101).to_be_bytes());
    o.extend((isn + 201).to_be_bytes());
    let data = tcp_frame_opts(&from_client(1001, isn + 1), PSH_ACK, &o, b"GET /");
    let out = h.rx(CLIENT_NET, data);
    let (v, s) = one_on(&out, SERVER_NET);
    assert_eq!((v.dst, v.dport), (RIP1, 80));
    assert_eq!((s.seq, s.ack, s.payload), (1001, 5001, 5));
    assert_eq!(s.ts, Some((502, 9000)));
    let f = &out[0].1;
    let sack_at = 34 + 20 + 12 + 4;
    let edge =
        |k: usize| u32::from_be_bytes(f[sack_at + 4 * k..sack_at + 4 * k + 4].try_into().unwrap());
    assert_eq!((edge(0), edge(1)), (5101, 5201));
    // The server's answer, in the client's numbers; its window (scale 5) in scale 7.
    let mut reply = tcp_frame_opts(&from_rs(5001, 1006), PSH_ACK, &ts_opts(9001, 502), b"200");
    set_window(&mut reply, 1000);
    let out = h.rx(SERVER_NET, reply);
    let (v, s) = one_on(&out, CLIENT_NET);
    assert_eq!((v.src, v.sport), (VIP, SP_PORT));
    assert_eq!((s.seq, s.ack, s.window), (isn + 1, 1006, 1000 >> 2));
    assert_eq!(s.ts, Some((tsv + 1, 502)));
    // A retransmitted SYN-ACK (our ACK was lost) reaches the client renumbered, which
    // answers it with an ACK the server accepts.
    let again = tcp_frame_opts(&from_rs(5000, 1001), SYN_ACK, &ts_opts(9002, 501), b"");
    let out = h.rx(SERVER_NET, again);
    let (_, s) = one_on(&out, CLIENT_NET);
    assert_eq!(s.seq, isn);
    h.worker.publish_stats();
    assert_eq!(h.stats.synproxy_opens.load(Ordering::Relaxed), 1);
    assert_eq!(h.stats.synproxy_established.load(Ordering::Relaxed), 1);
    assert_eq!(counts(&mut h), (1, 0));
}

#[test]
fn a_silent_server_gets_the_syn_again_then_the_client_is_reset() {
    let mut h = harness();
    let (isn, tsv) = handshake(&mut h);
    let ack = tcp_frame_opts(&from_client(1001, isn + 1), ACK, &ts_opts(501, tsv), b"");
    one_on(&h.rx(CLIENT_NET, ack), SERVER_NET);
    // A window probe at once waits; one a second later sends the SYN again.
    let probe = || tcp_frame_opts(&from_client(1000, isn + 1), ACK, &ts_opts(600, tsv), b"");
    h.expect_drop(CLIENT_NET, probe(), DropReason::SynproxyOpening);
    h.advance(1);
    let (v, s) = one_on(&h.rx(CLIENT_NET, probe()), SERVER_NET);
    assert_eq!((v.tcp_flags, s.seq), (0x02, 1000));
    // Past the limit: the client is reset in its own numbering and the connection goes.
    h.advance(3);
    let out = h.rx(CLIENT_NET, probe());
    let (v, s) = one_on(&out, CLIENT_NET);
    assert_eq!((v.src, v.tcp_flags, s.seq), (VIP, 0x04, isn + 1));
    assert_eq!(h.drops(DropReason::SynproxyServerTimeout), 1);
    assert_eq!(h.worker.conn_count(), 0);
    assert_eq!(counts(&mut h), (0, 0));
}

#[test]
fn a_refusing_server_resets_the_client_in_its_numbering() {
    let mut h = harness();
    let (isn, tsv) = handshake(&mut h);
    let ack = tcp_frame_opts(&from_client(1001, isn + 1), ACK, &ts_opts(501, tsv), b"");
    one_on(&h.rx(CLIENT_NET, ack), SERVER_NET);
    let rst = tcp_frame(&from_rs(0, 1001), TcpFlags(0x14), b"");
    let (v, s) = one_on(&h.rx(SERVER_NET, rst), CLIENT_NET);
    assert_eq!(
        (v.src, v.tcp_flags, s.seq, s.ack),
        (VIP, 0x14, isn + 1, 1001)
    );
    assert_eq!(h.state(CPORT), "CLOSE");
}

/// Without timestamps the proxy offers neither window scaling nor SACK (nowhere to keep them),
/// and the connection still opens with the MSS the cookie carried.
#[test]
fn a_client_without_timestamps_gets_mss_only() {
    let mut h = harness();
    let syn = tcp_frame_opts(
        &from_client(1000, 0),
        SYN,
        &[2, 4, 0x05, 0x14, 1, 3, 3, 7],
        b"",
    );
    let (_, s) = one_on(&h.rx(CLIENT_NET, syn), CLIENT_NET);
    assert_eq!(
        (s.mss, s.wscale, s.sack_perm, s.ts),
        (Some(1460), None, false, None)
    );
    let ack = tcp_frame(&from_client(1001, s.seq + 1), ACK, b"");
    let (_, syn) = one_on(&h.rx(CLIENT_NET, ack), SERVER_NET);
    // 1300 <= 1300 < 1440: the cookie carried 1300.
    assert_eq!(
        (syn.mss, syn.wscale, syn.sack_perm, syn.ts),
        (Some(1300), None, false, None)
    );
}

/// The cookie is the Linux one: a SYN-ACK's ISN checks with the secrets the tables hold.
#[test]
fn the_isn_is_a_linux_layout_cookie() {
    let mut h = harness();
    let (isn, _) = handshake(&mut h);
    let flow = Flow {
        saddr: CIP,
        daddr: VIP,
        sport: CPORT,
        dport: SP_PORT,
    };
    let secrets = h.worker.tables().synproxy.secrets;
    let count = cookie::count_at(h.now.as_secs());
    assert_eq!(cookie::check(&secrets, &flow, isn, 1000, count), Some(1460));
}

#[test]
fn a_dr_dest_is_refused_on_a_synproxy_service() {
    let mut h = harness();
    let e = h
        .services
        .add_dest(
            &sp_key(),
            DestConfig::new(RIP2, SP_PORT, ForwardMethod::Route),
        )
        .unwrap_err();
    assert!(e.to_string().contains("SYN proxy"), "{e}");
}

/// Restart with state: a proxied connection's renumbering goes into its record and comes back
/// in the next process; one still waiting for its server is left out.
#[test]
fn renumbering_survives_a_restart_with_state() {
    let mut h = harness();
    let (isn, tsv) = proxied(&mut h);
    let (isn2, tsv2) = {
        // A second client port still opening.
        let syn = tcp_frame_opts(
            &FrameSpec::new(CIP, CPORT + 1, VIP, SP_PORT),
            SYN,
            &syn_opts(500),
            b"",
        );
        let (_, s) = one_on(&h.rx(CLIENT_NET, syn), CLIENT_NET);
        (s.seq, s.ts.unwrap().0)
    };
    let ack = tcp_frame_opts(
        &FrameSpec::new(CIP, CPORT + 1, VIP, SP_PORT).seq_ack(1001, isn2 + 1),
        ACK,
        &ts_opts(501, tsv2),
        b"",
    );
    one_on(&h.rx(CLIENT_NET, ack), SERVER_NET);
    assert_eq!(h.worker.conn_count(), 2);
    let records = h.worker.export_conns(h.now);
    assert_eq!(records.len(), 1, "the opening one is left out");
    assert!(records.v4[0].seq_adj.is_some());

    let mut after = harness();
    let report = after
        .worker
        .import_conns(after.now, Duration::from_millis(0), &records);
    assert_eq!(report.restored, 1);
    let reply = tcp_frame_opts(&from_rs(5001, 1001), PSH_ACK, &ts_opts(9005, 501), b"hi");
    let (_, s) = one_on(&after.rx(SERVER_NET, reply), CLIENT_NET);
    assert_eq!((s.seq, s.ts), (isn + 1, Some((tsv + 5, 501))));
}

/// A SYN flood ten times the table's size leaves the table empty (every SYN answered, none
/// kept); a real client then completes its handshake and is the only connection.
#[test]
fn a_syn_flood_beyond_the_table_makes_no_entries() {
    let mut h = harness();
    for i in 0..10_240u32 {
        let spec = FrameSpec::new(CIP, 20_000 + (i % 40_000) as u16, VIP, SP_PORT)
            .seq_ack(i.wrapping_mul(2_654_435_761), 0);
        let out = h.rx(CLIENT_NET, tcp_frame_opts(&spec, SYN, &syn_opts(i), b""));
        assert_eq!(out.len(), 1);
    }
    assert_eq!(h.worker.conn_count(), 0);
    proxied(&mut h);
    assert_eq!(h.worker.conn_count(), 1);
}

/// A client whose ACK was lost sends zero-window probes numbered one below it (sequence =
/// ISN): a probe proves the cookie too and opens the connection with the same ISN.
#[test]
fn a_window_probe_opens_the_connection_when_the_ack_was_lost() {
    let mut h = harness();
    let (isn, tsv) = handshake(&mut h);
    let probe = tcp_frame_opts(&from_client(1000, isn + 1), ACK, &ts_opts(700, tsv), b"");
    let (v, s) = one_on(&h.rx(CLIENT_NET, probe), SERVER_NET);
    assert_eq!((v.tcp_flags, s.seq), (0x02, 1000));
    assert_eq!(h.state(CPORT), "SYN_SENT");
}

/// Access lists apply before the SYN is answered: a denied source gets no SYN-ACK. Limits wait
/// for the ACK that would make the connection.
#[test]
fn a_denied_source_gets_no_syn_ack() {
    let mut h = harness();
    h.services
        .add_list_entry(
            &sp_key(),
            crate::service::ListKind::Deny,
            crate::service::Prefix::new(CIP, 32).unwrap(),
        )
        .unwrap();
    h.publish();
    let syn = tcp_frame_opts(&from_client(1000, 0), SYN, &syn_opts(500), b"");
    h.expect_drop(CLIENT_NET, syn, DropReason::AclDenied);
}

/// A cookie made by one worker opens the connection on another (workers hold the same
/// secrets): the ACK may reach another worker than its SYN did.
#[test]
fn a_cookie_from_one_worker_opens_on_another() {
    let mut w0 = harness();
    let mut w1 = harness();
    let (isn, tsv) = handshake(&mut w0);
    let ack = tcp_frame_opts(&from_client(1001, isn + 1), ACK, &ts_opts(501, tsv), b"");
    let (v, s) = one_on(&w1.rx(CLIENT_NET, ack), SERVER_NET);
    assert_eq!((v.tcp_flags, s.seq), (0x02, 1000));
    assert_eq!((w0.worker.conn_count(), w1.worker.conn_count()), (0, 1));
}
