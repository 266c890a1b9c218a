//! The exception path (`worker::kernel`): with a kernel twin on a port, what rvs neither
//! load-balances nor answers goes to the twin unchanged; everything else is as without one.

use super::*;

/// The harness with a kernel twin on both ports, neighbours learnt.
fn with_twins() -> Harness {
    let mut h = Harness::new();
    h.io.twins = vec![CLIENT_NET, SERVER_NET];
    h.learn_all();
    h
}

/// Feed `frame` on `port`: it must reach the kernel twin of `port` byte for byte, nothing sent,
/// nothing dropped.
fn expect_kernel(h: &mut Harness, port: PortId, frame: Vec<u8>) {
    let drops = h.worker.drops().total();
    let out = h.rx(port, frame.clone());
    assert!(out.is_empty(), "sent {out:?}");
    assert_eq!(h.worker.drops().total(), drops, "{:?}", h.worker.drops());
    assert_eq!(h.io.kernel.pop(), Some((port, frame)));
    assert!(h.io.kernel.is_empty());
}

#[test]
fn what_rvs_does_not_take_goes_to_the_twin() {
    let mut h = with_twins();
    // TCP and UDP to an owned address or a VIP that is no service.
    expect_kernel(
        &mut h,
        CLIENT_NET,
        tcp_frame(&FrameSpec::new(CIP, 40000, DIP0, 22), SYN, b""),
    );
    expect_kernel(
        &mut h,
        CLIENT_NET,
        tcp_frame(&FrameSpec::new(CIP, 40000, DIP0, 22), PSH_ACK, b"ssh"),
    );
    expect_kernel(
        &mut h,
        CLIENT_NET,
        udp_frame(&FrameSpec::new(CIP, 3784, VIP, 3784), b"bfd"),
    );
    // A real server answering the kernel's own connection (to the DIP of its network).
    expect_kernel(
        &mut h,
        SERVER_NET,
        tcp_frame(
            &FrameSpec::new(RIP1, 80, DIP1, 45000).macs(RS1_MAC, PORT1_MAC),
            SYN_ACK,
            b"",
        ),
    );
    // ICMP other than echo requests: the echo reply to the kernel's ping, a timestamp request.
    let spec = FrameSpec::new(RIP1, 0, DIP1, 0).macs(RS1_MAC, PORT1_MAC);
    expect_kernel(&mut h, SERVER_NET, icmp_echo_frame(&spec, 0, 7, 1, b"p"));
    expect_kernel(&mut h, SERVER_NET, icmp_echo_frame(&spec, 13, 7, 1, b""));
    // Another IP protocol to us (GRE).
    let mut gre = udp_frame(&FrameSpec::new(CIP, 1, DIP0, 2), b"");
    gre[23] = 47;
    fix_ipv4_checksum(&mut gre);
    expect_kernel(&mut h, CLIENT_NET, gre);
    // Another ethertype (LLDP) addressed to the port, and a multicast frame (IPv6: see
    // `tests/ipv6.rs`).
    let mut other = client_syn(1);
    other[12..14].copy_from_slice(&[0x88, 0xcc]);
    expect_kernel(&mut h, CLIENT_NET, other.clone());
    other[0..6].copy_from_slice(&[0x01, 0x80, 0xc2, 0, 0, 0x0e]);
    expect_kernel(&mut h, CLIENT_NET, other);
    h.worker.publish_stats();
    assert_eq!(h.stats.to_kernel.load(Ordering::Relaxed), 9);
}

#[test]
fn what_rvs_takes_or_drops_stays_with_it() {
    let mut h = with_twins();
    // Load-balanced traffic.
    let rip = h.syn(5000);
    h.rs_to_client(rip, 5000, SYN_ACK, b"");
    // Echo requests to the director are answered by rvs.
    let spec = FrameSpec::new(CIP, 0, DIP0, 0);
    let out = h.rx(CLIENT_NET, icmp_echo_frame(&spec, 8, 1, 1, b"x"));
    assert_eq!(out.len(), 1);
    assert_eq!(verify_icmp_echo(&out[0].1).unwrap().icmp_type, 0);
    // Frames for others, unicast to another MAC, malformed: dropped as without a twin.
    let elsewhere = Ipv4Addr::new(198, 18, 0, 200);
    let f = tcp_frame(&FrameSpec::new(CIP, 9, elsewhere, 80), SYN, b"");
    h.expect_drop(CLIENT_NET, f, DropReason::NotForUs);
    let mut f = client_syn(2);
    f[0..6].copy_from_slice(&RS2_MAC.0);
    h.expect_drop(CLIENT_NET, f, DropReason::NotOurMac);
    // A mid-flow TCP packet to a service without a connection stays rvs's business.
    let f = tcp_frame(&FrameSpec::new(CIP, 9, VIP, 80), ACK, b"");
    h.expect_drop(CLIENT_NET, f, DropReason::TcpNoConnection);
    // ARP requests for our addresses are answered by rvs, never shown to the kernel.
    let req = client_arp_request(DIP0);
    let out = h.rx(CLIENT_NET, req);
    assert_eq!(out.len(), 1);
    assert_eq!(parse_arp(&out[0].1).unwrap().op, ARP_REPLY);
    assert!(h.io.kernel.is_empty(), "{:?}", h.io.kernel);
}

#[test]
fn arp_replies_are_learnt_and_copied_to_the_twin() {
    let mut h = with_twins();
    // The kernel asked (through the twin) for a host rvs does not know; its reply comes back.
    let host = Ipv4Addr::new(198, 18, 1, 50);
    let host_mac = MacAddr([0x02, 0x5e, 0, 0, 0, 0x50]);
    let reply = arp_frame(PORT1_MAC, ARP_REPLY, host_mac, host, PORT1_MAC, DIP1);
    let out = h.rx(SERVER_NET, reply.clone());
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(h.io.kernel, vec![(SERVER_NET, reply)]);
    h.worker.publish_stats();
    assert_eq!(h.stats.to_kernel.load(Ordering::Relaxed), 1);
    // No buffer for the copy: counted, rvs's own handling unchanged.
    h.io.kernel.clear();
    h.io.fail_alloc = true;
    let reply = arp_frame(PORT1_MAC, ARP_REPLY, RS1_MAC, RIP1, PORT1_MAC, DIP1);
    let before = h.drops(DropReason::NoBuffer);
    h.rx(SERVER_NET, reply);
    assert_eq!(h.drops(DropReason::NoBuffer), before + 1);
    assert!(h.io.kernel.is_empty());
}

#[test]
fn a_port_without_a_twin_drops_as_before() {
    let mut h = Harness::new();
    h.io.twins = vec![SERVER_NET];
    h.learn_all();
    let f = tcp_frame(&FrameSpec::new(CIP, 40000, DIP0, 22), SYN, b"");
    h.expect_drop(CLIENT_NET, f, DropReason::LocalNotService);
    let reply = arp_frame(PORT0_MAC, ARP_REPLY, CLIENT_MAC, CIP, PORT0_MAC, DIP0);
    h.rx(CLIENT_NET, reply);
    assert!(h.io.kernel.is_empty());
}
