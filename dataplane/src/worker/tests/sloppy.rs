//! IPVS's `sloppy_tcp`: with it, a TCP packet other than a SYN (and not a RST) to a service opens
//! a connection. That is what lets a director continue the flows of another one that failed:
//! with `mh` every director picks the same real server for the same client.

use super::*;

const MH_PORT: u16 = 9100;

fn mh_key() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP,
        vport: MH_PORT,
    }
}

/// The harness with a DR `mh` service on VIP:9100 (RS1, RS2), `sloppy_tcp` as given.
fn director(sloppy: bool) -> Harness {
    let mut h = Harness::new();
    h.services
        .add_service(ServiceConfig::new(mh_key(), "mh"))
        .unwrap();
    for rip in [RIP1, RIP2] {
        h.services
            .add_dest(
                &mh_key(),
                DestConfig::new(rip, MH_PORT, ForwardMethod::Route),
            )
            .unwrap();
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

/// The real server a forwarded DR frame went to.
fn rs_of(out: &[u8]) -> Ipv4Addr {
    let v = verify_frame(out).unwrap();
    if v.dst_mac == RS1_MAC { RIP1 } else { RIP2 }
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
    // Without sloppy_tcp, B would have dropped them.
    let mut c = director(false);
    let f = tcp_frame(&FrameSpec::new(CIP, 20000, VIP, MH_PORT), PSH_ACK, b"");
    c.expect_drop(CLIENT_NET, f, DropReason::TcpNoConnection);
}
