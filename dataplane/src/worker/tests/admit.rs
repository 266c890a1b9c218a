//! Access lists, limits and real servers posing as clients (`worker::admit`): each refusal is
//! counted under its own reason, refuses only new connections, and leaves the connections that
//! exist forwarding.

use super::*;
use crate::service::{ListKind, Prefix, Rate, ServiceLimits};

/// A second client on the client network.
const CIP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

fn prefix(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn syn_from(src: Ipv4Addr, cport: u16) -> Vec<u8> {
    tcp_frame(&FrameSpec::new(src, cport, VIP, 80), SYN, b"")
}

fn set_limits(h: &mut Harness, limits: ServiceLimits) {
    let mut c = h.services.service(&tcp_service()).unwrap().config().clone();
    c.limits = limits;
    h.services.edit_service(c).unwrap();
    h.publish();
}

fn ready() -> Harness {
    let mut h = Harness::new();
    h.learn_all();
    h.learn(CLIENT_NET, CIP2, CLIENT_MAC);
    h
}

#[test]
fn deny_list_refuses_new_connections_only() {
    let mut h = ready();
    // An established connection from the client, before it is denied.
    let rip = h.syn(1000);
    h.rs_to_client(rip, 1000, SYN_ACK, b"");
    h.client_to_rs(1000, ACK, b"");
    h.services
        .add_list_entry(&tcp_service(), ListKind::Deny, prefix("198.18.0.2"))
        .unwrap();
    h.publish();
    h.expect_drop(CLIENT_NET, syn_from(CIP, 1001), DropReason::AclDenied);
    // The existing connection still forwards both ways.
    h.client_to_rs(1000, PSH_ACK, b"GET /");
    h.rs_to_client(rip, 1000, PSH_ACK, b"200");
    // Another client is not on the list.
    let f = syn_from(CIP2, 1002);
    let (port, _) = h.rx_forwarded(CLIENT_NET, f);
    assert_eq!(port, SERVER_NET);
    // Other services of the VIP are not affected.
    let udp = udp_frame(&FrameSpec::new(CIP, 1003, VIP, 53), b"q");
    let (port, _) = h.rx_forwarded(CLIENT_NET, udp);
    assert_eq!(port, SERVER_NET);
    // Removed from the list: the client connects again.
    h.services
        .del_list_entry(&tcp_service(), ListKind::Deny, prefix("198.18.0.2"))
        .unwrap();
    h.publish();
    h.syn(1004);
}

#[test]
fn allow_list_admits_only_its_members_and_deny_wins() {
    let mut h = ready();
    h.services
        .add_list_entry(&tcp_service(), ListKind::Allow, prefix("198.18.0.2"))
        .unwrap();
    h.publish();
    h.syn(2000);
    h.expect_drop(CLIENT_NET, syn_from(CIP2, 2001), DropReason::AclNotAllowed);
    // A prefix on the allow list admits every address in it; the deny list still wins.
    h.services
        .add_list_entry(&tcp_service(), ListKind::Allow, prefix("198.18.0.0/24"))
        .unwrap();
    h.services
        .add_list_entry(&tcp_service(), ListKind::Deny, prefix("198.18.0.3"))
        .unwrap();
    h.publish();
    h.syn(2002);
    h.expect_drop(CLIENT_NET, syn_from(CIP2, 2003), DropReason::AclDenied);
    assert_eq!(h.drops(DropReason::AclNotAllowed), 1);
    assert_eq!(h.drops(DropReason::AclDenied), 1);
    // The service counts its own refusals, by reason.
    let snap = h.services.snapshot();
    let svc = snap
        .services()
        .iter()
        .find(|s| s.key() == tcp_service())
        .unwrap();
    assert_eq!(svc.stats().refusals(), [1, 1, 0, 0, 0, 0]);
}

#[test]
fn conn_limit_counts_the_services_connections() {
    let mut h = ready();
    set_limits(
        &mut h,
        ServiceLimits {
            max_conns: 2,
            ..Default::default()
        },
    );
    let first = h.syn(3000);
    h.syn(3001);
    h.expect_drop(CLIENT_NET, syn_from(CIP, 3002), DropReason::SvcConnLimit);
    // The connections that exist keep forwarding.
    h.rs_to_client(first, 3000, SYN_ACK, b"");
    h.client_to_rs(3000, ACK, b"");
    // One ends (RST from the client expires it at once): a new one fits again.
    h.client_to_rs(3000, TcpFlags(0x14), b"");
    h.advance(11);
    h.tick();
    h.syn(3003);
    h.expect_drop(CLIENT_NET, syn_from(CIP2, 3004), DropReason::SvcConnLimit);
}

#[test]
fn service_rate_refuses_beyond_the_burst_and_refills() {
    let mut h = ready();
    set_limits(
        &mut h,
        ServiceLimits {
            conn_rate: Rate {
                per_sec: 2,
                burst: 3,
            },
            ..Default::default()
        },
    );
    for p in 0..3 {
        h.syn(4000 + p);
    }
    h.expect_drop(CLIENT_NET, syn_from(CIP2, 4010), DropReason::SvcRateLimited);
    h.expect_drop(CLIENT_NET, syn_from(CIP, 4011), DropReason::SvcRateLimited);
    // Half a second later one token is back (2/s).
    h.now = h.now + Duration::from_millis(500);
    h.syn(4012);
    h.expect_drop(CLIENT_NET, syn_from(CIP, 4013), DropReason::SvcRateLimited);
    // A packet of an existing connection is never refused.
    h.client_to_rs(4000, ACK, b"");
}

#[test]
fn source_rate_is_per_prefix() {
    let mut h = ready();
    set_limits(
        &mut h,
        ServiceLimits {
            src_rate: Rate {
                per_sec: 1,
                burst: 2,
            },
            src_prefix: 32,
            ..Default::default()
        },
    );
    h.syn(5000);
    h.syn(5001);
    h.expect_drop(CLIENT_NET, syn_from(CIP, 5002), DropReason::SrcRateLimited);
    // Another source has its own bucket.
    let (port, _) = h.rx_forwarded(CLIENT_NET, syn_from(CIP2, 5003));
    assert_eq!(port, SERVER_NET);
    assert_eq!(h.worker.st.src_tracked(), 2);
    // With a /24, both clients share one bucket (CIP2 spent one of its two tokens already;
    // the bucket is new since the rate changed).
    set_limits(
        &mut h,
        ServiceLimits {
            src_rate: Rate {
                per_sec: 1,
                burst: 2,
            },
            src_prefix: 24,
            ..Default::default()
        },
    );
    h.syn(5004);
    let (port, _) = h.rx_forwarded(CLIENT_NET, syn_from(CIP2, 5005));
    assert_eq!(port, SERVER_NET);
    h.expect_drop(CLIENT_NET, syn_from(CIP, 5006), DropReason::SrcRateLimited);
    h.expect_drop(CLIENT_NET, syn_from(CIP2, 5007), DropReason::SrcRateLimited);
    // A second later, one more.
    h.advance(1);
    h.syn(5008);
}

#[test]
fn a_refusal_spends_no_token_of_the_other_bucket() {
    let mut h = ready();
    set_limits(
        &mut h,
        ServiceLimits {
            conn_rate: Rate {
                per_sec: 1,
                burst: 2,
            },
            src_rate: Rate {
                per_sec: 1,
                burst: 1,
            },
            ..Default::default()
        },
    );
    h.syn(6000);
    // CIP's source bucket is empty: refused, and the service bucket keeps its second token.
    h.expect_drop(CLIENT_NET, syn_from(CIP, 6001), DropReason::SrcRateLimited);
    h.expect_drop(CLIENT_NET, syn_from(CIP, 6002), DropReason::SrcRateLimited);
    let (port, _) = h.rx_forwarded(CLIENT_NET, syn_from(CIP2, 6003));
    assert_eq!(port, SERVER_NET);
    h.expect_drop(CLIENT_NET, syn_from(CIP2, 6004), DropReason::SvcRateLimited);
}

#[test]
fn a_real_server_posing_as_a_client_is_dropped() {
    let mut h = ready();
    // RIP1 is a NAT real server of VIP:80, routed on the server network: a SYN from it on the
    // client network is spoofed.
    let spoofed = tcp_frame(&FrameSpec::new(RIP1, 7000, VIP, 80), SYN, b"");
    h.expect_drop(CLIENT_NET, spoofed, DropReason::RipSource);
    assert!(h.worker.conns(h.now).next().is_none());
    // A DR real server is not checked (clients and real servers may share a network): RIP1 is
    // the dest of the direct-routing VIP:8080 only through DR.
    let dr = tcp_frame(&FrameSpec::new(RIP1, 7001, VIP, ROUTE_PORT), SYN, b"");
    let out = h.rx(CLIENT_NET, dr);
    assert_eq!(h.drops(DropReason::RipSource), 1, "{out:?}");
}
