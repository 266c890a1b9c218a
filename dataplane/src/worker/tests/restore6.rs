//! Restart with state for IPv6 connections: NAT6, FULLNAT6 and NAT64 connections opened by
//! real SYNs in one worker, exported, imported into a fresh worker, carry on with their tuples,
//! state, time left (minus the gap), TOA flag, dest counts and template control; their local
//! ports (IPv6 for FULLNAT6, IPv4 for NAT64) are reserved again, so new connections never get
//! them, and counted on their local addresses.

use std::net::{IpAddr, Ipv6Addr};

use super::*;
use crate::conn::{ConnKey6, ConnRecords};

const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);
const DIP6_RS: Ipv6Addr = Ipv6Addr::new(0x2001, 3, 0, 0, 0, 0, 0, 1);
const RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 3, 0, 0, 0, 0, 0, 0x11);
const LIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 3, 0, 0, 0, 0, 0, 2);
/// Ports of the IPv6 services: NAT6 (persistent), FULLNAT6, NAT64.
const NAT6: u16 = 80;
const FNAT6: u16 = 81;
const NAT64: u16 = 82;

fn key6(vport: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP6.into(),
        vport,
    }
}

/// The harness with the IPv6 services, their local addresses and IPv6 addresses on both ports.
fn harness6() -> Harness {
    let mut h = Harness::new();
    let mut cfg = ServiceConfig::new(key6(NAT6), "rr");
    cfg.persistence = Some(300);
    cfg.prefix6 = 128;
    h.services.add_service(cfg).unwrap();
    h.services
        .add_dest(
            &key6(NAT6),
            DestConfig::new(RIP6, NAT6, ForwardMethod::Masq),
        )
        .unwrap();
    for (port, rip) in [(FNAT6, IpAddr::V6(RIP6)), (NAT64, IpAddr::V4(RIP1))] {
        h.services
            .add_service(ServiceConfig::new(key6(port), "rr"))
            .unwrap();
        h.services
            .add_dest(
                &key6(port),
                DestConfig::new(rip, port, ForwardMethod::FullNat),
            )
            .unwrap();
    }
    let mut t = (*tables(&mut h.services, h.timeouts)).clone();
    t.addrs.add6(CLIENT_NET, DIP6, 64).unwrap();
    t.addrs.add6(SERVER_NET, DIP6_RS, 64).unwrap();
    t.v6.routes = RouteTable::with_connected6(&t.addrs);
    let mut laddrs = (*t.laddrs).clone();
    let laddr = |ip: IpAddr| crate::laddr::Laddr {
        ip,
        port: SERVER_NET,
        ifname: "dp1".into(),
        stats: Arc::new(crate::laddr::LaddrStats::new(1)),
    };
    let id = |port| h.services.service(&key6(port)).unwrap().id();
    laddrs.set(id(FNAT6), vec![laddr(LIP6.into())]);
    laddrs.set(
        id(NAT64),
        methods::LIPS.iter().map(|&l| laddr(l.into())).collect(),
    );
    t.laddrs = Arc::new(laddrs);
    h.worker.set_tables(Arc::new(t));
    h
}

/// A client SYN to `[VIP6]:vport`; the connection's reply tuple.
fn syn6(h: &mut Harness, cport: u16, vport: u16) -> ConnKey6 {
    let f = tcp6_frame(CIP6, cport, VIP6, vport, 0x02, &[], b"");
    h.rx(CLIENT_NET, f);
    let k = ConnKey6::new(6, CIP6, cport, VIP6, vport);
    let (id, _) = h.worker.st.conns6.lookup(&k).expect("connection opened");
    *h.worker.st.conns6.get(id).unwrap().out_key()
}

fn sorted(mut r: ConnRecords) -> ConnRecords {
    r.v6.sort_by_key(|c| c.in_key.sport);
    r
}

#[test]
fn ipv6_connections_and_their_local_ports_survive_a_restart_with_state() {
    let mut a = harness6();
    let nat6 = syn6(&mut a, 40000, NAT6);
    let fnat6 = syn6(&mut a, 40001, FNAT6);
    let nat64 = syn6(&mut a, 40002, NAT64);
    assert_eq!(nat6.src, RIP6);
    assert_eq!(fnat6.dst, LIP6);
    let k4 = crate::xmit::nat64::unmapped(&nat64).expect("NAT64 reply tuple is mapped");
    assert!(methods::LIPS.contains(&k4.dst));
    a.advance(10);
    let records = sorted(a.worker.export_conns(a.now));
    assert_eq!((records.v4.len(), records.v6.len()), (0, 3), "{records:?}");
    assert!(records.v6[0].controlled, "the persistent NAT6 connection");
    assert!(records.v6[1].toa_pending && records.v6[2].toa_pending);
    assert_eq!(records.v6[2].dest, (IpAddr::V4(RIP1), NAT64));
    let templates = a
        .worker
        .tables()
        .persist
        .export(a.now, &a.worker.tables().services);
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].key.client, IpAddr::V6(CIP6));

    // A new process: templates first, then the connections.
    let mut b = harness6();
    b.now = Instant::from_secs(5);
    let gap = Duration::from_secs(3);
    let t = b.worker.tables().clone();
    assert_eq!(t.persist.import(b.now, gap, &templates, &t.services, 0), 1);
    let report = b.worker.import_conns(b.now, gap, &records);
    assert_eq!((report.restored, report.restored6), (3, 3), "{report:?}");
    let again = sorted(b.worker.export_conns(b.now));
    for (x, y) in records.v6.iter().zip(&again.v6) {
        assert_eq!(
            crate::conn::ConnRecord6 {
                remaining_ms: 0,
                ..*x
            },
            crate::conn::ConnRecord6 {
                remaining_ms: 0,
                ..*y
            }
        );
        assert!(
            y.remaining_ms + 3000 <= x.remaining_ms && y.remaining_ms + 3100 >= x.remaining_ms,
            "{x:?} -> {y:?}"
        );
    }
    // Dest counts (SYN_RECV: active) and template control are back.
    for (port, rip) in [
        (NAT6, IpAddr::V6(RIP6)),
        (FNAT6, IpAddr::V6(RIP6)),
        (NAT64, IpAddr::V4(RIP1)),
    ] {
        let snap = b.worker.tables().services.clone();
        let svc = snap.services().iter().find(|s| s.key() == key6(port));
        let d = svc.unwrap().find_dest(rip, port).unwrap();
        assert_eq!((d.active_conns(), d.inactive_conns()), (1, 0), "{port}");
    }
    let v = t.persist.views(b.now, 0);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].controls, 1, "the NAT6 connection is controlled again");
    // Counted on their local addresses.
    assert_eq!(t.laddrs.stats6(LIP6).unwrap().conns(), 1);
    let nat64_laddrs = t.laddrs.of(b.services.service(&key6(NAT64)).unwrap().id());
    let l4 = nat64_laddrs
        .iter()
        .find(|l| l.ip == IpAddr::V4(k4.dst))
        .unwrap();
    assert_eq!(l4.stats.conns(), 1);

    // New connections never get a restored local port.
    for cport in 41000..41100 {
        let f = syn6(&mut b, cport, FNAT6);
        assert_ne!((f.dst, f.dport), (fnat6.dst, fnat6.dport), "FULLNAT6 lport");
        let n = syn6(&mut b, cport, NAT64);
        assert_ne!((n.dst, n.dport), (nat64.dst, nat64.dport), "NAT64 lport");
    }
    assert_eq!(b.worker.st.conns6.len(), 3 + 200);

    // Imported twice: the second copy clashes, nothing doubles.
    let mut c = harness6();
    let r1 = c.worker.import_conns(c.now, Duration::ZERO, &records);
    let r2 = c.worker.import_conns(c.now, Duration::ZERO, &records);
    assert_eq!((r1.restored, r2.restored, r2.clash), (3, 0, 3));
    // Services gone, time up: counted by reason.
    let mut d = Harness::new();
    let r = d.worker.import_conns(d.now, Duration::ZERO, &records);
    assert_eq!((r.restored, r.no_service), (0, 3));
    let r = c
        .worker
        .import_conns(c.now, Duration::from_secs(3600), &records);
    assert_eq!(r.expired, 3);
}

/// A dest that is now of another method, or a FULLNAT connection whose local address the
/// service no longer has, is not put back.
#[test]
fn ipv6_records_that_cannot_come_back_are_counted() {
    let mut a = harness6();
    syn6(&mut a, 40001, FNAT6);
    syn6(&mut a, 40002, NAT64);
    let records = a.worker.export_conns(a.now);
    let mut b = harness6();
    let mut t = (**b.worker.tables()).clone();
    let mut laddrs = (*t.laddrs).clone();
    laddrs.set(b.services.service(&key6(FNAT6)).unwrap().id(), Vec::new());
    t.laddrs = Arc::new(laddrs);
    b.worker.set_tables(Arc::new(t));
    let r = b.worker.import_conns(b.now, Duration::ZERO, &records);
    assert_eq!((r.restored, r.clash), (1, 1), "{r:?}");
    let mut moved = records.clone();
    moved.v6[0].method = ForwardMethod::Masq;
    moved.v6[1].method = ForwardMethod::Masq;
    let mut c = harness6();
    let r = c.worker.import_conns(c.now, Duration::ZERO, &moved);
    assert_eq!((r.restored, r.no_dest), (0, 2), "{r:?}");
}
