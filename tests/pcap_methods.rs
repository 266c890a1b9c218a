//! pcap golden tests per forwarding method through real DPDK (`net_pcap`): exact frames out for
//! known frames in, both directions where the method sees both. Expected frames are built from
//! scratch here with checksums computed in full (`common::frames`).

mod common;

use std::net::Ipv4Addr;

use common::frames;
use common::pcap::{self, CLIENT_MAC, PCAP_MAC as MAC, RS1_MAC};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn established(r: &common::Rvsd) -> bool {
    r.ipvsadm_ok(&["-Lnc"]).contains("ESTABLISHED")
}

/// A client's SYN and its ACK to the VIP (TCP 198.18.0.2:40000 -> 198.18.0.100:80).
fn client_syn_and_ack() -> (Vec<u8>, Vec<u8>) {
    let (vip, client) = (ip("198.18.0.100"), ip("198.18.0.2"));
    let seg = |flags, seq, ack| {
        frames::tcp(
            MAC,
            CLIENT_MAC,
            (client, 40000),
            (vip, 80),
            64,
            flags,
            seq,
            ack,
            b"",
        )
    };
    (seg(0x02, 1000, 0), seg(0x10, 1001, 5001))
}

#[test]
fn dr_rewrites_only_the_ethernet_destination() {
    require_netns!();
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("rvs-pcap-dr-{}", std::process::id()));
    let (syn, ack) = client_syn_and_ack();
    let relay = |f: &[u8]| {
        let mut o = f.to_vec();
        o[0..6].copy_from_slice(&RS1_MAC);
        o[6..12].copy_from_slice(&MAC);
        o
    };
    let out = pcap::run(
        &dir,
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.11 -g\n",
        &[syn.clone(), ack.clone()],
        established,
    );
    pcap::assert_frames(&out, &[relay(&syn), relay(&ack)]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tun_wraps_the_request_in_ipip() {
    require_netns!();
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("rvs-pcap-tun-{}", std::process::id()));
    let (dip, rip) = (ip("198.18.1.1"), ip("198.18.1.11"));
    let (syn, ack) = client_syn_and_ack();
    let out = pcap::run(
        &dir,
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.11 -i\n",
        &[syn.clone(), ack.clone()],
        established,
    );
    // The outer identification comes from a per-start random counter: take it from the output
    // (it must advance by one per packet), everything else is fixed.
    assert_eq!(out.len(), 2, "frames out");
    let id0 = u16::from_be_bytes([out[0][18], out[0][19]]);
    let id1 = u16::from_be_bytes([out[1][18], out[1][19]]);
    assert_eq!(id1, id0.wrapping_add(1));
    pcap::assert_frames(
        &out,
        &[
            frames::ipip(RS1_MAC, MAC, dip, rip, id0, &syn),
            frames::ipip(RS1_MAC, MAC, dip, rip, id1, &ack),
        ],
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn fullnat_translates_both_ends_and_carries_toa() {
    require_netns!();
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("rvs-pcap-fnat-{}", std::process::id()));
    let (vip, client, lip, rip) = (
        ip("198.18.0.100"),
        ip("198.18.0.2"),
        ip("198.18.1.5"),
        ip("198.18.1.11"),
    );
    let lport = 1024; // the first port of worker 0 of 1 (dataplane::laddr::LPORT_MIN)
    let toa = {
        let mut o = vec![254, 8];
        o.extend_from_slice(&40000u16.to_be_bytes());
        o.extend_from_slice(&client.octets());
        o
    };
    let data = b"GET / HTTP/1.0\r\n\r\n";
    let input = [
        frames::tcp(
            MAC,
            CLIENT_MAC,
            (client, 40000),
            (vip, 80),
            64,
            0x02,
            1000,
            0,
            b"",
        ),
        frames::tcp(
            MAC,
            RS1_MAC,
            (rip, 80),
            (lip, lport),
            64,
            0x12,
            5000,
            1001,
            b"",
        ),
        frames::tcp(
            MAC,
            CLIENT_MAC,
            (client, 40000),
            (vip, 80),
            64,
            0x10,
            1001,
            5001,
            b"",
        ),
        frames::tcp(
            MAC,
            CLIENT_MAC,
            (client, 40000),
            (vip, 80),
            64,
            0x18,
            1001,
            5001,
            data,
        ),
    ];
    let want = [
        frames::tcp_opts(
            RS1_MAC,
            MAC,
            (lip, lport),
            (rip, 80),
            63,
            0x02,
            1000,
            0,
            &toa,
            b"",
        ),
        frames::tcp(
            CLIENT_MAC,
            MAC,
            (vip, 80),
            (client, 40000),
            63,
            0x12,
            5000,
            1001,
            b"",
        ),
        frames::tcp(
            RS1_MAC,
            MAC,
            (lip, lport),
            (rip, 80),
            63,
            0x10,
            1001,
            5001,
            b"",
        ),
        frames::tcp_opts(
            RS1_MAC,
            MAC,
            (lip, lport),
            (rip, 80),
            63,
            0x18,
            1001,
            5001,
            &toa,
            data,
        ),
    ];
    let rules = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.11:80 --fullnat\n-P -t 198.18.0.100:80 -z 198.18.1.5 -F dp0\n";
    let out = pcap::run(&dir, rules, &input, |r| {
        r.ipvsadm_ok(&["-Ln", "--stats"]).lines().any(|l| {
            l.starts_with("  -> 198.18.1.11:80") && l.split_whitespace().nth(3) == Some("3")
        })
    });
    pcap::assert_frames(&out, &want);
    let _ = std::fs::remove_dir_all(dir);
}
