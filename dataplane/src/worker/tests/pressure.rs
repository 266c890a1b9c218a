//! The embryonic-connection defences (`worker::pressure`) through the in-memory harness: a full
//! table evicts its oldest embryonic connection for a new one, never an established or answered
//! one, refuses when there is none, and accounts an eviction as any removal (dest counts, FULLNAT
//! local port, persistence template).

use super::methods::{FNAT_PORT, LIPS};
use super::*;
use crate::persist::PersistTable;

/// Client ports of the connections in the table, sorted.
fn cports(h: &Harness) -> Vec<u16> {
    let mut v: Vec<u16> = h
        .worker
        .conns(h.now)
        .map(|c| c.client.1)
        .filter(|&p| p != 0)
        .collect();
    v.sort_unstable();
    v
}

fn evicted(h: &Harness) -> u64 {
    h.worker.publish_stats();
    h.stats.embryonic_evicted.load(Ordering::Relaxed)
}

/// Open and establish a TCP connection from `cport`.
fn establish(h: &mut Harness, cport: u16) {
    let rip = h.syn(cport);
    h.rs_to_client(rip, cport, SYN_ACK, b"");
    h.client_to_rs(cport, ACK, b"");
    assert_eq!(h.state(cport), "ESTABLISHED");
}

/// The real server of the connection from `cport`.
fn rip_of(h: &Harness, cport: u16) -> Ipv4Addr {
    h.worker
        .conns(h.now)
        .find(|c| c.client.1 == cport)
        .and_then(|c| match c.dest.0 {
            std::net::IpAddr::V4(a) => Some(a),
            std::net::IpAddr::V6(_) => None,
        })
        .unwrap()
}

/// (active, inactive) of both dests of the TCP service, summed.
fn dest_totals(h: &mut Harness) -> (u64, u64) {
    let (a1, i1) = h.counts(RIP1);
    let (a2, i2) = h.counts(RIP2);
    (a1 + a2, i1 + i2)
}

#[test]
fn a_full_table_evicts_its_oldest_embryonic_connection_for_a_new_one() {
    let mut h = Harness::build(8, Timeouts::default());
    h.learn_all();
    establish(&mut h, 1);
    for cport in 100..107 {
        h.syn(cport);
    }
    assert_eq!(h.worker.conn_count(), 8);
    // Each new SYN takes the slot of the oldest SYN_RECV entry, in the order they came.
    h.syn(200);
    assert_eq!(cports(&h), [1, 101, 102, 103, 104, 105, 106, 200]);
    h.syn(201);
    h.syn(202);
    assert_eq!(cports(&h), [1, 103, 104, 105, 106, 200, 201, 202]);
    assert_eq!(evicted(&h), 3);
    assert_eq!(h.drops(DropReason::ConnTableFull), 0);
    // The established connection was never a candidate and still forwards both ways.
    assert_eq!(h.state(1), "ESTABLISHED");
    let rip = h.client_to_rs(1, PSH_ACK, b"still here").dst;
    h.rs_to_client(rip, 1, PSH_ACK, b"yes");
    // A SYN retransmitted by a client whose entry is still there is the same connection.
    h.syn(200);
    assert_eq!(h.worker.conn_count(), 8);
    assert_eq!(evicted(&h), 3);
}

#[test]
fn the_real_servers_answer_restarts_a_handshakes_eviction_clock() {
    let mut h = Harness::build(4, Timeouts::default());
    h.learn_all();
    for cport in 1..=4 {
        h.syn(cport);
    }
    // 1 is the oldest, but its real server answers now: the client has a whole turnover of the
    // table from here to send its ACK.
    let rip = rip_of(&h, 1);
    h.rs_to_client(rip, 1, SYN_ACK, b"");
    assert_eq!(h.state(1), "SYN_RECV");
    h.syn(5);
    assert_eq!(cports(&h), [1, 3, 4, 5], "2 is now the least recent");
    h.syn(6);
    h.syn(7);
    assert_eq!(cports(&h), [1, 5, 6, 7]);
    // A retransmitted SYN-ACK does not move it again: it goes next.
    h.rs_to_client(rip, 1, SYN_ACK, b"");
    h.syn(8);
    assert_eq!(cports(&h), [5, 6, 7, 8]);
    assert_eq!(evicted(&h), 4);
    assert!(h.worker.st.pressure.noted() <= 8);
}

#[test]
fn established_connections_are_skipped_and_a_table_without_embryos_refuses() {
    let mut h = Harness::build(4, Timeouts::default());
    h.learn_all();
    for cport in 1..=4 {
        h.syn(cport);
    }
    // 1 and 3 complete their handshakes after they were noted: their entries are stale.
    for cport in [1, 3] {
        let rip = rip_of(&h, cport);
        h.rs_to_client(rip, cport, SYN_ACK, b"");
        h.client_to_rs(cport, ACK, b"");
    }
    h.syn(5);
    assert_eq!(cports(&h), [1, 3, 4, 5], "2 was the oldest embryonic");
    h.syn(6);
    assert_eq!(cports(&h), [1, 3, 5, 6]);
    for cport in [5, 6] {
        let rip = rip_of(&h, cport);
        h.rs_to_client(rip, cport, SYN_ACK, b"");
        h.client_to_rs(cport, ACK, b"");
    }
    assert_eq!(evicted(&h), 2);
    assert!(
        h.worker.st.pressure.noted() <= 8,
        "two entries per table slot at most"
    );
    // Every connection is established: the new one is refused, nobody is evicted.
    h.expect_drop(CLIENT_NET, client_syn(7), DropReason::ConnTableFull);
    assert_eq!(cports(&h), [1, 3, 5, 6]);
    assert_eq!(evicted(&h), 2);
    for cport in [1, 3, 5, 6] {
        assert_eq!(h.state(cport), "ESTABLISHED");
    }
    assert_eq!(dest_totals(&mut h), (4, 0));
    check_dest_counts(&mut h);
}

#[test]
fn answered_udp_flows_stay_and_unanswered_ones_are_evicted() {
    let mut h = Harness::build(4, Timeouts::default());
    h.learn_all();
    let mut rips = Vec::new();
    for cport in 1..=4u16 {
        let f = udp_frame(&FrameSpec::new(CIP, cport, VIP, 53), b"q");
        let (_, out) = h.rx_forwarded(CLIENT_NET, f);
        rips.push(verify_frame(&out).unwrap().dst);
    }
    // The real servers answer flows 1 and 2 only.
    for cport in [1u16, 2] {
        let rip = rips[usize::from(cport) - 1];
        let r = udp_frame(
            &FrameSpec::new(rip, 53, CIP, cport).macs(rs_mac(rip), PORT1_MAC),
            b"a",
        );
        let (port, _) = h.rx_forwarded(SERVER_NET, r);
        assert_eq!(port, CLIENT_NET);
    }
    for cport in 5..=7u16 {
        let f = udp_frame(&FrameSpec::new(CIP, cport, VIP, 53), b"q");
        h.rx_forwarded(CLIENT_NET, f);
    }
    // 3, 4, then 5 went; the answered flows stay.
    assert_eq!(cports(&h), [1, 2, 6, 7]);
    assert_eq!(evicted(&h), 3);
    // A TCP SYN may take an unanswered UDP flow's slot too (one table for both).
    h.syn(8);
    assert_eq!(cports(&h), [1, 2, 7, 8]);
    assert_eq!(evicted(&h), 4);
}

/// Each dest's (active, inactive) counts are those of the connections in the table.
fn check_dest_counts(h: &mut Harness) {
    let views: Vec<_> = h.worker.conns(h.now).collect();
    for rip in [RIP1, RIP2] {
        let mine = views.iter().filter(|c| c.dest.0 == rip && c.virt.1 == 80);
        let active = mine
            .clone()
            .filter(|c| ["ESTABLISHED", "SYN_RECV"].contains(&c.state))
            .count() as u64;
        let inactive = mine.count() as u64 - active;
        assert_eq!(h.counts(rip), (active, inactive), "dest {rip}");
    }
}

#[test]
fn an_eviction_keeps_the_dest_counts_right() {
    let mut h = Harness::build(6, Timeouts::default());
    h.learn_all();
    establish(&mut h, 1);
    establish(&mut h, 2);
    for cport in 10..14 {
        h.syn(cport);
    }
    // SYN_RECV counts as active, as in IPVS.
    assert_eq!(dest_totals(&mut h), (6, 0));
    check_dest_counts(&mut h);
    for cport in 20..30 {
        h.syn(cport);
        check_dest_counts(&mut h);
    }
    assert_eq!(evicted(&h), 10);
    assert_eq!(dest_totals(&mut h), (6, 0));
    // The embryonic ones time out: only the established connections are left in the counts.
    h.advance(61);
    h.tick();
    assert_eq!(cports(&h), [1, 2]);
    assert_eq!(dest_totals(&mut h), (2, 0));
    check_dest_counts(&mut h);
}

/// A FULLNAT SYN from `cport`, forwarded: returns the local address and port it took.
fn fnat_syn(h: &mut Harness, cport: u16) -> (Ipv4Addr, u16) {
    let f = tcp_frame(&FrameSpec::new(CIP, cport, VIP, FNAT_PORT), SYN, b"");
    let (port, out) = h.rx_forwarded(CLIENT_NET, f);
    assert_eq!(port, SERVER_NET);
    let v = verify_frame(&out).unwrap();
    (v.src, v.sport)
}

fn laddr_conns(h: &Harness) -> u64 {
    let t = h.worker.tables().clone();
    LIPS.iter()
        .map(|&l| t.laddrs.stats(l).unwrap().conns())
        .sum()
}

#[test]
fn an_eviction_gives_back_the_fullnat_local_port() {
    let mut h = Harness::build(2, Timeouts::default());
    h.learn_all();
    let first = fnat_syn(&mut h, 1);
    fnat_syn(&mut h, 2);
    assert_eq!(laddr_conns(&h), 2);
    // Each eviction gave its local port back (`forget`, as any removal): the count on the
    // local addresses follows the table.
    for cport in 3..2000 {
        fnat_syn(&mut h, cport);
        assert_eq!(laddr_conns(&h), 2);
    }
    assert_eq!(evicted(&h), 1997);
    assert_eq!(cports(&h), [1998, 1999]);
    // The first connection's reply tuple left the table with it (its port is not handed out
    // again yet: fresh ports go first): a stray reply to it is nobody's.
    let (lip, lport) = first;
    for rip in [RIP1, RIP2] {
        let f = tcp_frame(
            &FrameSpec::new(rip, 80, lip, lport).macs(rs_mac(rip), PORT1_MAC),
            ACK,
            b"",
        );
        h.expect_drop(SERVER_NET, f, DropReason::LocalNotService);
    }
    h.advance(61);
    h.tick();
    assert_eq!(h.worker.conn_count(), 0);
    assert_eq!(laddr_conns(&h), 0);
}

#[test]
fn an_eviction_releases_the_persistence_template_it_made() {
    let mut h = Harness::build(2, Timeouts::default());
    let mut c = ServiceConfig::new(tcp_service(), "rr");
    c.persistence = Some(300);
    h.services.edit_service(c).unwrap();
    let mut t = (*tables(&mut h.services, h.timeouts)).clone();
    let persist = Arc::new(PersistTable::new(1024, 1));
    t.persist = persist.clone();
    h.worker.set_tables(Arc::new(t));
    h.learn_all();
    let syn_from = |h: &mut Harness, last: u8| {
        let cip = Ipv4Addr::new(198, 18, 0, last);
        let f = tcp_frame(&FrameSpec::new(cip, 1000, VIP, 80), SYN, b"");
        h.rx_forwarded(CLIENT_NET, f);
    };
    syn_from(&mut h, 3);
    syn_from(&mut h, 4);
    assert_eq!(persist.len(), 2);
    // The spoofed-looking client .3 never answered: its connection is evicted and its
    // template, which never got an established connection, goes with it.
    syn_from(&mut h, 5);
    assert_eq!(evicted(&h), 1);
    assert_eq!(persist.len(), 2, "the template of .3 went, .5 got one");
    let clients: Vec<Ipv4Addr> = h
        .worker
        .conns(h.now)
        .filter(|c| c.client.1 == 0)
        .filter_map(|c| match c.client.0 {
            std::net::IpAddr::V4(a) => Some(a),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    assert!(
        !clients.contains(&Ipv4Addr::new(198, 18, 0, 3)),
        "{clients:?}"
    );
}
