//! Persistence templates, fwmark services, one-packet scheduling, thresholds and weight edits
//! through the in-memory harness, including two workers sharing one template table.

use super::*;
use crate::fwmark::{Classifier, MarkRule};
use crate::persist::PersistTable;

const CIP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const CIP_OTHER_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 130);
const VIP_FWM: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);
const CLIENT2_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x33]);
const CLIENT3_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x34]);
const PORT0_SVC: u16 = 7000;

/// The shared tables a test publishes with.
struct Shared {
    persist: Arc<PersistTable>,
    fwmarks: Arc<Classifier>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            persist: Arc::new(PersistTable::new(1024, 1)),
            fwmarks: Arc::new(Classifier::default()),
        }
    }

    fn tables(&self, h: &mut Harness) -> Arc<Tables> {
        let mut t = (*tables(&mut h.services, h.timeouts)).clone();
        t.persist = self.persist.clone();
        t.fwmarks = self.fwmarks.clone();
        Arc::new(t)
    }

    fn publish(&self, h: &mut Harness) {
        let t = self.tables(h);
        h.worker.set_tables(t);
    }
}

/// The TCP VIP:80 service made `rr -p timeout -M mask`.
fn persistent(h: &mut Harness, shared: &Shared, timeout: u32, mask: Ipv4Addr) {
    let mut c = ServiceConfig::new(tcp_service(), "rr");
    c.persistence = Some(timeout);
    c.netmask = mask;
    h.services.edit_service(c).unwrap();
    for rip in [RIP1, RIP2] {
        let mut d = DestConfig::new(rip, 80, ForwardMethod::Masq);
        d.weight = 1;
        h.services.edit_dest(&tcp_service(), d).unwrap();
    }
    shared.publish(h);
}

fn learn_clients(h: &mut Harness) {
    h.learn_all();
    h.learn(CLIENT_NET, CIP2, CLIENT2_MAC);
    h.learn(CLIENT_NET, CIP_OTHER_NET, CLIENT3_MAC);
}

/// A SYN from `cip:cport` to `vip:vport`, forwarded to a real server: returns (RIP, rport).
fn syn_from(
    h: &mut Harness,
    cip: Ipv4Addr,
    cport: u16,
    vip: Ipv4Addr,
    vport: u16,
) -> (Ipv4Addr, u16) {
    let mac = match cip {
        CIP2 => CLIENT2_MAC,
        CIP_OTHER_NET => CLIENT3_MAC,
        _ => CLIENT_MAC,
    };
    let f = tcp_frame(
        &FrameSpec::new(cip, cport, vip, vport).macs(mac, PORT0_MAC),
        SYN,
        b"",
    );
    let (port, out) = h.rx_forwarded(CLIENT_NET, f);
    assert_eq!(port, SERVER_NET);
    let v = verify_frame(&out).unwrap();
    assert_eq!((v.src, v.sport), (cip, cport));
    (v.dst, v.dport)
}

fn templates(h: &Harness) -> Vec<crate::worker::ConnView> {
    h.worker
        .conns(h.now)
        .filter(|c| c.state == "NONE" || c.state == "ASSURED")
        .collect()
}

fn persist_conns(h: &mut Harness, key: ServiceKey, rip: Ipv4Addr, rport: u16) -> u64 {
    let snap = h.services.snapshot();
    let svc = snap.services().iter().find(|s| s.key() == key).unwrap();
    svc.find_dest(rip.into(), rport).unwrap().persistent_conns()
}

#[test]
fn a_client_keeps_its_real_server_across_source_ports() {
    let mut h = Harness::new();
    let shared = Shared::new();
    persistent(&mut h, &shared, 60, Ipv4Addr::BROADCAST);
    learn_clients(&mut h);
    let first = syn_from(&mut h, CIP, 1000, VIP, 80).0;
    for cport in 1001..1020 {
        assert_eq!(syn_from(&mut h, CIP, cport, VIP, 80).0, first);
    }
    // Another client (mask /32) is scheduled on its own: rr moves on to the other RS.
    let other = syn_from(&mut h, CIP2, 2000, VIP, 80).0;
    assert_ne!(other, first);
    assert_eq!(syn_from(&mut h, CIP2, 2001, VIP, 80).0, other);
    let t = templates(&h);
    assert_eq!(t.len(), 2, "{t:?}");
    let mine = t.iter().find(|c| c.client.0 == CIP).unwrap();
    assert_eq!(
        (mine.proto, mine.state, mine.client, mine.virt, mine.dest),
        (
            6,
            "NONE",
            (CIP.into(), 0),
            (VIP.into(), 80),
            (first.into(), 80)
        )
    );
    assert_eq!(mine.expires_in, 60);
    assert_eq!(persist_conns(&mut h, tcp_service(), first, 80), 1);
    assert_eq!(persist_conns(&mut h, tcp_service(), other, 80), 1);
    // 20 + 2 connections, templates not counted in active/inactive.
    assert_eq!(
        h.counts(first).0 + h.counts(first).1 + h.counts(other).0 + h.counts(other).1,
        22
    );
}

#[test]
fn the_netmask_groups_clients_of_one_network() {
    let mut h = Harness::new();
    let shared = Shared::new();
    persistent(&mut h, &shared, 60, Ipv4Addr::new(255, 255, 255, 128));
    learn_clients(&mut h);
    let rs = syn_from(&mut h, CIP, 1000, VIP, 80).0;
    assert_eq!(syn_from(&mut h, CIP2, 1000, VIP, 80).0, rs);
    // 198.18.0.130 is in the other /25: a template of its own, on the other RS (rr).
    assert_ne!(syn_from(&mut h, CIP_OTHER_NET, 1000, VIP, 80).0, rs);
    let mut clients: Vec<_> = templates(&h).iter().map(|t| t.client).collect();
    clients.sort();
    assert_eq!(
        clients,
        [
            (Ipv4Addr::new(198, 18, 0, 0).into(), 0),
            (Ipv4Addr::new(198, 18, 0, 128).into(), 0)
        ]
    );
}

#[test]
fn a_template_expires_after_last_use_but_survives_while_it_controls_connections() {
    let mut h = Harness::new();
    let shared = Shared::new();
    persistent(&mut h, &shared, 60, Ipv4Addr::BROADCAST);
    learn_clients(&mut h);
    let rs = h.syn(1000);
    // Establish it: the template becomes ASSURED, the connection lives 900 s.
    h.rs_to_client(rs, 1000, SYN_ACK, b"");
    h.client_to_rs(1000, ACK, b"");
    assert_eq!(templates(&h)[0].state, "ASSURED");
    // Well past the 60 s: the template still controls a live connection, so it stays.
    for _ in 0..30 {
        h.advance(10);
        h.tick_all_stripes();
    }
    assert_eq!(templates(&h).len(), 1);
    learn_clients(&mut h); // the neighbours expired meanwhile
    assert_eq!(
        syn_from(&mut h, CIP, 1001, VIP, 80).0,
        rs,
        "still persistent"
    );
    // Close both connections; once they are gone and 60 s have passed, the template goes.
    h.advance(1000);
    h.tick_all_stripes();
    assert_eq!(h.worker.conn_count(), 0);
    h.advance(61);
    h.tick_all_stripes();
    assert!(templates(&h).is_empty(), "{:?}", templates(&h));
    assert_eq!(persist_conns(&mut h, tcp_service(), rs, 80), 0);
    assert!(shared.persist.is_empty());
}

#[test]
fn each_use_pushes_the_template_expiry() {
    let mut h = Harness::new();
    let shared = Shared::new();
    persistent(&mut h, &shared, 60, Ipv4Addr::BROADCAST);
    learn_clients(&mut h);
    let rs = h.syn(1000);
    h.advance(50);
    assert_eq!(templates(&h)[0].expires_in, 10);
    assert_eq!(h.syn(1001), rs);
    assert_eq!(templates(&h)[0].expires_in, 60);
}

#[test]
fn a_template_whose_dest_is_removed_is_dropped_and_weight_zero_keeps_it() {
    let mut h = Harness::new();
    let shared = Shared::new();
    persistent(&mut h, &shared, 60, Ipv4Addr::BROADCAST);
    learn_clients(&mut h);
    let rs = h.syn(1000);
    let other = if rs == RIP1 { RIP2 } else { RIP1 };
    // Weight 0 (quiesced): the template is still honoured (expire_quiescent_template = 0).
    let mut d = DestConfig::new(rs, 80, ForwardMethod::Masq);
    d.weight = 0;
    h.services.edit_dest(&tcp_service(), d).unwrap();
    shared.publish(&mut h);
    assert_eq!(h.syn(1001), rs);
    // Removed: the template goes, the client is scheduled to the remaining dest.
    h.services.del_dest(&tcp_service(), rs.into(), 80).unwrap();
    shared.publish(&mut h);
    assert_eq!(h.syn(1002), other);
    let t = templates(&h);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].dest, (other.into(), 80));
}

#[test]
fn port_zero_services_share_one_template_over_all_ports() {
    let mut h = Harness::new();
    let shared = Shared::new();
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        vport: 0,
    };
    let mut c = ServiceConfig::new(key, "rr");
    c.persistence = Some(360);
    h.services.add_service(c).unwrap();
    for rip in [RIP1, RIP2] {
        h.services
            .add_dest(&key, DestConfig::new(rip, 0, ForwardMethod::Masq))
            .unwrap();
    }
    shared.publish(&mut h);
    learn_clients(&mut h);
    let (rs, rport) = syn_from(&mut h, CIP, 1000, VIP, PORT0_SVC);
    assert_eq!(rport, PORT0_SVC, "a port-0 dest keeps the client's port");
    for (i, vport) in [PORT0_SVC + 1, 9000, 22, PORT0_SVC].into_iter().enumerate() {
        assert_eq!(
            syn_from(&mut h, CIP, 1001 + i as u16, VIP, vport),
            (rs, vport)
        );
    }
    let t = templates(&h);
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].virt, t[0].dest), ((VIP.into(), 0), (rs.into(), 0)));
    // The reply is translated back from the port the client used.
    let f = tcp_frame(
        &FrameSpec::new(rs, 9000, CIP, 1002).macs(rs_mac(rs), PORT1_MAC),
        SYN_ACK,
        b"",
    );
    let (_, out) = h.rx_forwarded(SERVER_NET, f);
    let v = verify_frame(&out).unwrap();
    assert_eq!((v.src, v.sport), (VIP, 9000));
}

fn fwmark_service(h: &mut Harness, shared: &mut Shared, persistence: Option<u32>) {
    let key = ServiceKey::Fwmark(1);
    let mut c = ServiceConfig::new(key, "rr");
    c.persistence = persistence;
    h.services.add_service(c).unwrap();
    for rip in [RIP1, RIP2] {
        h.services
            .add_dest(&key, DestConfig::new(rip, 0, ForwardMethod::Masq))
            .unwrap();
    }
    shared.fwmarks = Arc::new(Classifier::new(vec![
        MarkRule::parse(1, "tcp", "198.18.0.101/32", "80,443").unwrap(),
    ]));
    shared.publish(h);
}

#[test]
fn fwmark_services_group_ports_and_persist_across_them() {
    let mut h = Harness::new();
    let mut shared = Shared::new();
    fwmark_service(&mut h, &mut shared, Some(60));
    learn_clients(&mut h);
    // ARP for the rule's single address is answered like a VIP's.
    let req = client_arp_request(VIP_FWM);
    assert_eq!(h.rx(CLIENT_NET, req).len(), 1);
    let (rs, rport) = syn_from(&mut h, CIP, 1000, VIP_FWM, 80);
    assert_eq!(rport, 80);
    assert_eq!(syn_from(&mut h, CIP, 1001, VIP_FWM, 443), (rs, 443));
    assert_eq!(syn_from(&mut h, CIP, 1002, VIP_FWM, 80), (rs, 80));
    let t = templates(&h);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].proto, t[0].client, t[0].virt, t[0].dest),
        (
            0,
            (CIP.into(), 0),
            (Ipv4Addr::new(0, 0, 0, 1).into(), 0),
            (rs.into(), 0)
        )
    );
    assert_eq!(persist_conns(&mut h, ServiceKey::Fwmark(1), rs, 0), 1);
    // A port the rule does not mark has no service.
    let f = tcp_frame(&FrameSpec::new(CIP, 1003, VIP_FWM, 8443), SYN, b"");
    h.expect_drop(CLIENT_NET, f, DropReason::LocalNotService);
}

#[test]
fn fwmark_without_persistence_schedules_each_connection() {
    let mut h = Harness::new();
    let mut shared = Shared::new();
    fwmark_service(&mut h, &mut shared, None);
    learn_clients(&mut h);
    let a = syn_from(&mut h, CIP, 1000, VIP_FWM, 80).0;
    let b = syn_from(&mut h, CIP, 1001, VIP_FWM, 443).0;
    assert_ne!(a, b, "rr alternates");
    assert!(templates(&h).is_empty());
}

/// A second worker (id 1) on the same tables.
fn second_worker(tables: Arc<Tables>) -> Worker<HeapBuf> {
    let cfg = WorkerConfig {
        id: 1,
        ports: vec![
            PortSetup {
                mac: PORT0_MAC,
                mtu: 1500,
            },
            PortSetup {
                mac: PORT1_MAC,
                mtu: 1500,
            },
        ],
        conn_capacity: 1024,
        conn_capacity6: 1024,
        neigh: NeighConfig::default(),
        icmp: Default::default(),
        workers: 2,
    };
    Worker::new(cfg, tables, Arc::new(WorkerStats::default()), 0xbeef)
}

#[test]
fn two_workers_honour_each_others_templates() {
    let mut h = Harness::new();
    let shared = Shared {
        persist: Arc::new(PersistTable::new(1024, 2)),
        fwmarks: Arc::new(Classifier::default()),
    };
    let mut c = ServiceConfig::new(tcp_service(), "rr");
    c.persistence = Some(60);
    h.services.edit_service(c).unwrap();
    shared.publish(&mut h);
    learn_clients(&mut h);
    let mut w2 = second_worker(shared.tables(&mut h));
    let mut io2 = MockIo::default();
    for (ip, mac) in [(CIP, CLIENT_MAC), (RIP1, RS1_MAC), (RIP2, RS2_MAC)] {
        let port = if ip == CIP { CLIENT_NET } else { SERVER_NET };
        let dip = if ip == CIP { DIP0 } else { DIP1 };
        let req = arp_frame(MacAddr::BROADCAST, ARP_REQUEST, mac, ip, MacAddr::ZERO, dip);
        w2.process(h.now, port, HeapBuf::from_bytes(&req), &mut io2);
    }
    io2.sent.clear();
    let rs = h.syn(1000);
    // Worker 2 has its own (fresh) rr state, yet follows worker 1's template, and vice versa.
    for cport in 2000..2010 {
        let f = tcp_frame(&FrameSpec::new(CIP, cport, VIP, 80), SYN, b"");
        w2.process(h.now, CLIENT_NET, HeapBuf::from_bytes(&f), &mut io2);
        let out = std::mem::take(&mut io2.sent);
        assert_eq!(out.len(), 1, "{:?}", w2.drops());
        assert_eq!(verify_frame(&out[0].1).unwrap().dst, rs);
        assert_eq!(h.syn(cport + 100), rs);
    }
    // Listing both workers shows the template exactly once.
    let n = h
        .worker
        .conns(h.now)
        .chain(w2.conns(h.now))
        .filter(|c| c.state == "NONE")
        .count();
    assert_eq!(n, 1);
    assert_eq!(shared.persist.len(), 1);
    // The connections expire on both workers; the sweeps (each its own stripes) then drop it.
    h.advance(200);
    for _ in 0..crate::persist::STRIPES {
        h.worker.on_tick(h.now, &mut h.io);
        w2.on_tick(h.now, &mut io2);
    }
    assert_eq!(h.worker.conn_count() + w2.conn_count(), 0);
    h.advance(61);
    for _ in 0..crate::persist::STRIPES {
        h.worker.on_tick(h.now, &mut h.io);
        w2.on_tick(h.now, &mut io2);
    }
    assert!(shared.persist.is_empty());
    assert_eq!(persist_conns(&mut h, tcp_service(), rs, 80), 0);
}

#[test]
fn one_packet_scheduling_keeps_no_connection_and_counts_each_datagram() {
    let mut h = Harness::new();
    let mut c = ServiceConfig::new(udp_service(), "rr");
    c.one_packet = true;
    h.services.edit_service(c).unwrap();
    h.publish();
    h.learn_all();
    let mut seen = Vec::new();
    for _ in 0..4 {
        // The same client port every time: each datagram is scheduled on its own.
        let f = udp_frame(&FrameSpec::new(CIP, 5353, VIP, 53), b"q");
        let (_, out) = h.rx_forwarded(CLIENT_NET, f);
        seen.push(verify_frame(&out).unwrap().dst);
    }
    assert_eq!(
        (seen[0], seen[1]),
        (seen[2], seen[3]),
        "rr alternates: {seen:?}"
    );
    assert_ne!(seen[0], seen[1]);
    assert_eq!(h.worker.conn_count(), 0, "nothing kept");
    let snap = h.services.snapshot();
    let svc = snap
        .services()
        .iter()
        .find(|s| s.key() == udp_service())
        .unwrap();
    assert_eq!(svc.stats().sum().conns, 4);
    for d in svc.dests() {
        assert_eq!((d.active_conns(), d.inactive_conns()), (0, 0));
        assert_eq!(d.stats().sum().conns, 2);
    }
}

/// The TCP service as `rr` with RS1 `-x upper -y lower`.
fn thresholds(h: &mut Harness, upper: u32, lower: u32) {
    h.services
        .edit_service(ServiceConfig::new(tcp_service(), "rr"))
        .unwrap();
    for rip in [RIP1, RIP2] {
        let mut d = DestConfig::new(rip, 80, ForwardMethod::Masq);
        if rip == RIP1 {
            d.upper_threshold = upper;
            d.lower_threshold = lower;
        }
        h.services.edit_dest(&tcp_service(), d).unwrap();
    }
    h.publish();
}

#[test]
fn an_upper_threshold_caps_a_dest_until_it_drains_below_three_quarters() {
    let mut h = Harness::new();
    thresholds(&mut h, 2, 0);
    h.learn_all();
    let picks: Vec<Ipv4Addr> = (1000..1008).map(|p| h.syn(p)).collect();
    assert_eq!(picks.iter().filter(|r| **r == RIP1).count(), 2, "{picks:?}");
    assert!(h.dest(tcp_service(), RIP1).is_overloaded());
    // Close RS1's connections one by one (RST): at 1 (1*4 < 2*3) it takes new ones again.
    let rs1_ports: Vec<u16> = (1000..1008u16)
        .zip(&picks)
        .filter(|(_, r)| **r == RIP1)
        .map(|(p, _)| p)
        .collect();
    h.reset(RIP1, rs1_ports[0]);
    h.advance(11);
    h.tick();
    assert!(!h.dest(tcp_service(), RIP1).is_overloaded());
    let next: Vec<Ipv4Addr> = (2000..2004).map(|p| h.syn(p)).collect();
    assert_eq!(next.iter().filter(|r| **r == RIP1).count(), 1, "{next:?}");
}

#[test]
fn a_lower_threshold_sets_where_the_overload_clears() {
    let mut h = Harness::new();
    thresholds(&mut h, 3, 1);
    h.learn_all();
    let picks: Vec<Ipv4Addr> = (1000..1010).map(|p| h.syn(p)).collect();
    let rs1: Vec<u16> = (1000..1010u16)
        .zip(&picks)
        .filter(|(_, r)| **r == RIP1)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(rs1.len(), 3);
    // Down to 1: not < 1, still overloaded; down to 0: clear.
    for (i, p) in rs1.iter().enumerate() {
        h.reset(RIP1, *p);
        h.advance(11);
        h.tick();
        assert_eq!(
            h.dest(tcp_service(), RIP1).is_overloaded(),
            i < 2,
            "after {i}"
        );
    }
}

#[test]
fn weight_edits_apply_to_new_connections_at_once_and_spare_existing_ones() {
    let mut h = Harness::new();
    h.learn_all();
    // wrr 3:1 to start with: the first connection goes to RS1.
    let first = h.syn(1000);
    assert_eq!(first, RIP1);
    // ipvsadm -e ... -w 0 on RS1, then 1 on RS2.
    let mut d = DestConfig::new(RIP1, 80, ForwardMethod::Masq);
    d.weight = 0;
    h.services.edit_dest(&tcp_service(), d).unwrap();
    h.publish();
    for p in 1001..1010 {
        assert_eq!(
            h.syn(p),
            RIP2,
            "new connections follow the new weights at once"
        );
    }
    // The existing connection to RS1 keeps going both ways.
    h.rs_to_client(RIP1, 1000, SYN_ACK, b"");
    assert_eq!(h.client_to_rs(1000, ACK, b"").dst, RIP1);
    assert_eq!(h.client_to_rs(1000, PSH_ACK, b"x").dst, RIP1);
    // Back to weights 1:1: rr-like alternation resumes immediately.
    let mut d = DestConfig::new(RIP1, 80, ForwardMethod::Masq);
    d.weight = 1;
    h.services.edit_dest(&tcp_service(), d).unwrap();
    h.publish();
    let picks: Vec<Ipv4Addr> = (2000..2004).map(|p| h.syn(p)).collect();
    assert_eq!(picks.iter().filter(|r| **r == RIP1).count(), 2, "{picks:?}");
}

impl Harness {
    /// Establish the connection from `cport` (to `rip`), then reset it from the client: it
    /// closes (CLOSE, 10 s). A client RST in SYN_RECV is ignored by IPVS's table.
    fn reset(&mut self, rip: Ipv4Addr, cport: u16) {
        self.rs_to_client(rip, cport, SYN_ACK, b"");
        self.client_to_rs(cport, ACK, b"");
        self.client_to_rs(cport, TcpFlags(0x04), b"");
    }

    /// Tick enough times for every stripe of the template table to be swept once.
    fn tick_all_stripes(&mut self) {
        for _ in 0..crate::persist::STRIPES {
            self.tick();
        }
    }
}

#[test]
fn templates_and_their_connections_survive_a_restart_with_state() {
    let mask = Ipv4Addr::new(255, 255, 255, 255);
    let mut a = Harness::new();
    let sa = Shared::new();
    persistent(&mut a, &sa, 300, mask);
    learn_clients(&mut a);
    let (rip, _) = syn_from(&mut a, CIP, 40000, VIP, 80);
    a.advance(5);
    let snap = a.worker.tables().services.clone();
    let templates = sa.persist.export(a.now, &snap);
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].dest, (rip.into(), 80));
    let conns = a.worker.export_conns(a.now);
    assert!(conns.len() == 1 && conns.v4[0].controlled, "{conns:?}");

    // A new process: templates first, then the connections find theirs by key.
    let mut b = Harness::new();
    let sb = Shared::new();
    persistent(&mut b, &sb, 300, mask);
    let services = b.worker.tables().services.clone();
    let gap = Duration::from_secs(2);
    assert_eq!(sb.persist.import(b.now, gap, &templates, &services, 0), 1);
    let r = b.worker.import_conns(b.now, gap, &conns);
    assert_eq!(r.restored, 1, "{r:?}");
    let v = sb.persist.views(b.now, 0);
    assert_eq!(v.len(), 1);
    assert_eq!(
        v[0].controls, 1,
        "the restored connection is controlled again"
    );
    assert!(v[0].expires_in <= Duration::from_secs(293), "{v:?}");
    assert_eq!(b.dest(tcp_service(), rip).persistent_conns(), 1);
    // rr would alternate: the template keeps the client on its real server.
    learn_clients(&mut b);
    for cport in 40001..40005 {
        assert_eq!(syn_from(&mut b, CIP, cport, VIP, 80).0, rip);
    }
    // Imported twice: the key is taken, nothing doubles.
    assert_eq!(sb.persist.import(b.now, gap, &templates, &services, 0), 0);
}
