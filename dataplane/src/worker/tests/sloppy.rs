//! IPVS's `sloppy_tcp`: with it, a TCP packet other than a SYN (and not a RST) to a service opens
//! a connection. That is what lets a director continue the flows of another one that failed:
//! with `mh` every director picks the same real server for the same client.

use super::*;

const MH_PORT: u16 = 9100;
/// The same with TUN.
const MH_TUN_PORT: u16 = 9101;

fn mh_key(vport: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        vport,
    }
}

/// The harness with `mh` services on VIP:9100 (DR) and VIP:9101 (TUN), RS1 and RS2 each,
/// `sloppy_tcp` as given.
fn director(sloppy: bool) -> Harness {
    let mut h = Harness::new();
    for (vport, method) in [
        (MH_PORT, ForwardMethod::Route),
        (MH_TUN_PORT, ForwardMethod::Tunnel),
    ] {
        h.services
            .add_service(ServiceConfig::new(mh_key(vport), "mh"))
            .unwrap();
        for rip in [RIP1, RIP2] {
            h.services
                .add_dest(&mh_key(vport), DestConfig::new(rip, vport, method))
                .unwrap();
        }
    }
    h.publish();
    set_sloppy(&mut h, sloppy);
    h.learn_all();
    h
}

fn set_sloppy(h: &mut Harness, on: bool) {
    let mut t = (**h.worker.tables()).clone();
    t.sloppy_tcp = on;
    h.worker.set_tables(Arc::new(t));
}

/// The real server a forwarded DR or TUN frame went to (by its Ethernet destination).
fn rs_of(out: &[u8]) -> Ipv4Addr {
    if out[0..6] == RS1_MAC.0 {
        RIP1
    } else {
        assert_eq!(out[0..6], RS2_MAC.0);
        RIP2
    }
}

#[test]
fn mid_flow_packets_open_connections_only_when_sloppy() {
    let mut h = Harness::new();
    h.learn_all();
    let ack = |cport| tcp_frame(&FrameSpec::new(CIP, cport, VIP, 80), PSH_ACK, b"data");
    h.expect_drop(CLIENT_NET, ack(7000), DropReason::TcpNoConnection);
    set_sloppy(&mut h, true);
    // NAT: the mid-flow segment is scheduled, rewritten and ESTABLISHED (IPVS's INPUT table
    // takes an ACK from NONE to ESTABLISHED); the server's answer goes back through it.
    let (port, out) = h.rx_forwarded(CLIENT_NET, ack(7000));
    assert_eq!(port, SERVER_NET);
    let v = verify_frame(&out).unwrap();
    assert_eq!((v.src, v.sport, v.dport), (CIP, 7000, 80));
    assert_eq!(h.state(7000), "ESTABLISHED");
    h.rs_to_client(v.dst, 7000, ACK, b"reply");
    // A FIN opens one too; a RST never does.
    let f = tcp_frame(&FrameSpec::new(CIP, 7001, VIP, 80), FIN_ACK, b"");
    h.rx_forwarded(CLIENT_NET, f);
    let f = tcp_frame(&FrameSpec::new(CIP, 7002, VIP, 80), TcpFlags(0x14), b"");
    h.expect_drop(CLIENT_NET, f, DropReason::TcpNoConnection);
    // Not a service: still not ours, sloppy or not.
    let f = tcp_frame(&FrameSpec::new(CIP, 7003, VIP, 443), ACK, b"");
    h.expect_drop(CLIENT_NET, f, DropReason::LocalNotService);
}

#[test]
fn a_second_director_continues_the_flows_of_the_first_on_the_same_server() {
    // Director A sees the connections open; it fails, and ECMP moves the flows to director B,
    // which sees only mid-flow segments.
    let mut a = director(false);
    let mut b = director(true);
    let mut seen = [0u32; 2];
    for i in 0..40u8 {
        // mh hashes the client's address (its port only with mh-port).
        let (cip, cport) = (Ipv4Addr::new(198, 18, 0, 10 + i), 20000 + u16::from(i));
        let spec = FrameSpec::new(cip, cport, VIP, MH_PORT);
        let (_, out) = a.rx_forwarded(CLIENT_NET, tcp_frame(&spec, SYN, b""));
        let rs = rs_of(&out);
        let (port, out) = b.rx_forwarded(CLIENT_NET, tcp_frame(&spec, PSH_ACK, b"more"));
        assert_eq!(port, SERVER_NET);
        assert_eq!(rs_of(&out), rs, "client {cip}:{cport}");
        // DR: the frame is the client's, only the Ethernet destination changed.
        assert_eq!(&out[14..], &tcp_frame(&spec, PSH_ACK, b"more")[14..]);
        assert_eq!(b.state(cport), "ESTABLISHED");
        seen[usize::from(rs == RIP2)] += 1;
    }
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "mh used one server only: {seen:?}"
    );
    // TUN as well: the mid-flow segment is encapsulated to the same server.
    for i in 0..20u8 {
        let (cip, cport) = (Ipv4Addr::new(198, 18, 0, 60 + i), 30000 + u16::from(i));
        let spec = FrameSpec::new(cip, cport, VIP, MH_TUN_PORT);
        let (_, out) = a.rx_forwarded(CLIENT_NET, tcp_frame(&spec, SYN, b""));
        let rs = rs_of(&out);
        let (_, out) = b.rx_forwarded(CLIENT_NET, tcp_frame(&spec, PSH_ACK, b"more"));
        assert_eq!(out[23], 4, "IPIP");
        assert_eq!(rs_of(&out), rs, "client {cip}:{cport}");
        let inner = tcp_frame(&spec, PSH_ACK, b"more");
        assert_eq!(&out[34..], &inner[14..], "inner packet unchanged");
    }
    // Without sloppy_tcp, B would have dropped them.
    let mut c = director(false);
    let f = tcp_frame(&FrameSpec::new(CIP, 20000, VIP, MH_PORT), PSH_ACK, b"");
    c.expect_drop(CLIENT_NET, f, DropReason::TcpNoConnection);
}
