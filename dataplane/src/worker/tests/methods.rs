//! DR, TUN and FULLNAT through the in-memory harness, both directions where replies pass the
//! director; ICMP error translation; client port reuse. Frames out are checked with the
//! independent verifier (`testutil`), never with the crate's own checksum code.

use super::*;
use crate::l3::icmp::{IcmpError, build_error};

pub(super) const LIPS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 3)];
const TUN_PORT: u16 = 8081;
const FNAT_PORT: u16 = 8082;
const DR_PORT: u16 = 8083;
const NOLADDR_PORT: u16 = 8084;
const FNAT_UDP_PORT: u16 = 55;

fn key(protocol: Protocol, vport: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        vip: VIP,
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
        (key(Protocol::Tcp, TUN_PORT), TUN_PORT, ForwardMethod::Tunnel),
        (key(Protocol::Tcp, DR_PORT), DR_PORT, ForwardMethod::Route),
        (key(Protocol::Tcp, FNAT_PORT), 80, ForwardMethod::FullNat),
        (key(Protocol::Udp, FNAT_UDP_PORT), 53, ForwardMethod::FullNat),
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
        let d = svc.find_dest(r, rport).unwrap();
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
    assert_eq!(v[0].dest, (seen[0], DR_PORT));
    assert_eq!(v[0].virt, (VIP, DR_PORT));
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
