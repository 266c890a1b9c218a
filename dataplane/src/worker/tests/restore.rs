//! Restart with state in memory: connections exported from one worker and imported into a
//! fresh one carry on (NAT and FULLNAT replies, DR client segments), keep their remaining time
//! minus the gap, keep their dests' counts, and their FULLNAT local ports are not handed out
//! again.

use super::methods::{DR_PORT, FNAT_PORT, LIPS};
use super::*;

fn fnat_syn(h: &mut Harness, cport: u16) -> (Ipv4Addr, u16, Ipv4Addr) {
    let f = tcp_frame(&FrameSpec::new(CIP, cport, VIP, FNAT_PORT), SYN, b"");
    let (_, out) = h.rx_forwarded(CLIENT_NET, f);
    let v = verify_frame(&out).unwrap();
    assert!(LIPS.contains(&v.src));
    (v.src, v.sport, v.dst)
}

#[test]
fn exported_connections_carry_on_in_a_new_worker() {
    let mut a = Harness::new();
    a.learn_all();
    // NAT: established both ways.
    let rip = a.syn(40000);
    a.rs_to_client(rip, 40000, SYN_ACK, b"");
    a.client_to_rs(40000, ACK, b"");
    assert_eq!(a.state(40000), "ESTABLISHED");
    // FULLNAT: a SYN and its answer.
    let (lip, lport, frip) = fnat_syn(&mut a, 40010);
    let f = tcp_frame(
        &FrameSpec::new(frip, 80, lip, lport).macs(rs_mac(frip), PORT1_MAC),
        SYN_ACK,
        b"",
    );
    a.rx_forwarded(SERVER_NET, f);
    // DR: the client's handshake.
    for flags in [SYN, ACK] {
        let f = tcp_frame(&FrameSpec::new(CIP, 40020, VIP, DR_PORT), flags, b"");
        a.rx_forwarded(CLIENT_NET, f);
    }
    a.advance(10);
    let records = a.worker.export_conns(a.now);
    assert_eq!(records.len(), 3);
    let before: Vec<_> = {
        let mut v: Vec<_> = a.worker.conns(a.now).collect();
        v.sort_by_key(|c| c.client.1);
        v
    };

    // A new process: new worker, same configuration, a clock that starts elsewhere.
    let mut b = Harness::new();
    b.now = Instant::from_secs(5);
    let report = b
        .worker
        .import_conns(b.now, Duration::from_secs(3), &records);
    assert_eq!(report.restored, 3, "{report:?}");
    let mut after: Vec<_> = b.worker.conns(b.now).collect();
    after.sort_by_key(|c| c.client.1);
    assert_eq!(after.len(), 3);
    for (x, y) in before.iter().zip(&after) {
        assert_eq!(
            (x.client, x.virt, x.dest, x.state),
            (y.client, y.virt, y.dest, y.state)
        );
        // Still counting down: the 3 s gap is gone from what is left.
        assert!(
            y.expires_in + 3 <= x.expires_in && y.expires_in + 4 >= x.expires_in,
            "{x:?} -> {y:?}"
        );
    }
    assert_eq!(b.counts(rip), (1, 0), "dest counts restored");

    b.learn_all();
    // NAT: the real server's next segment goes on to the client.
    b.rs_to_client(rip, 40000, PSH_ACK, b"data");
    b.client_to_rs(40000, ACK, b"");
    // FULLNAT: the reply to LIP:lport is still this connection's.
    let f = tcp_frame(
        &FrameSpec::new(frip, 80, lip, lport).macs(rs_mac(frip), PORT1_MAC),
        PSH_ACK,
        b"x",
    );
    let (port, out) = b.rx_forwarded(SERVER_NET, f);
    assert_eq!(port, CLIENT_NET);
    let v = verify_frame(&out).unwrap();
    assert_eq!((v.dst, v.dport), (CIP, 40010));
    // DR: the client's data reaches the same real server.
    let f = tcp_frame(&FrameSpec::new(CIP, 40020, VIP, DR_PORT), PSH_ACK, b"x");
    b.rx_forwarded(CLIENT_NET, f);

    // New FULLNAT connections never get the restored (LIP, lport) towards the same RS.
    for cport in 41000..41040 {
        let got = fnat_syn(&mut b, cport);
        assert_ne!(
            got,
            (lip, lport, frip),
            "restored local port handed out again"
        );
    }
    let t = b.worker.tables().clone();
    assert_eq!(t.laddrs.stats(lip).unwrap().conns(), 1 + 40 / 2);
}

#[test]
fn records_that_cannot_come_back_are_counted() {
    let mut a = Harness::new();
    a.learn_all();
    a.syn(40000);
    a.syn(40001);
    let records = a.worker.export_conns(a.now);
    assert_eq!(records.len(), 2);
    // SYN_RECV lives 60 s: a gap of 61 s expires both.
    let mut b = Harness::new();
    let r = b
        .worker
        .import_conns(b.now, Duration::from_secs(61), &records);
    assert_eq!((r.restored, r.expired), (0, 2));
    // The service is gone in the new configuration.
    let mut c = Harness::new();
    c.services.del_service(&tcp_service()).unwrap();
    c.publish();
    let r = c.worker.import_conns(c.now, Duration::ZERO, &records);
    assert_eq!((r.restored, r.no_service), (0, 2));
    // Imported twice: the second copy clashes, nothing is doubled.
    let mut d = Harness::new();
    let r1 = d.worker.import_conns(d.now, Duration::ZERO, &records);
    let r2 = d.worker.import_conns(d.now, Duration::ZERO, &records);
    assert_eq!((r1.restored, r2.restored, r2.clash), (2, 0, 2));
    assert_eq!(d.worker.conn_count(), 2);
}
