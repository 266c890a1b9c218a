//! pcap golden test through real DPDK (`net_pcap`): known frames in, exact frames out.
//!
//! rvsd runs with one `net_pcap` port that reads `in.pcap` and writes `out.pcap`; the service
//! comes from an `[ipvs] rules` file and the neighbours from `[[neigh]]`, so no ARP is needed.
//! The expected output frames are built from scratch by this test with checksums computed in
//! full, so byte equality also proves the dataplane's incremental checksum updates.

mod common;

use common::frames::{self, Mac};
use common::pcap::{self, CLIENT_MAC, PCAP_MAC as MAC, RS1_MAC};
use std::net::Ipv4Addr;

const OTHER_MAC: Mac = [0x02, 0x99, 0, 0, 0, 0x99];

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn nat_arp_and_echo_golden_through_net_pcap() {
    require_netns!();
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("rvs-pcap-nat-{}", std::process::id()));
    let (vip, dip, client, rip) = (
        ip("198.18.0.100"),
        ip("198.18.0.1"),
        ip("198.18.0.2"),
        ip("198.18.1.11"),
    );
    let mac = MAC;
    let frame_in = vec![
        // 1. ARP request for the VIP.
        frames::arp([0xff; 6], CLIENT_MAC, 1, CLIENT_MAC, client, [0; 6], vip),
        // 2. Junk: truncated frame, bad IPv4 checksum, an ACK without a connection, a frame to
        //    another MAC. None of them produce output.
        vec![0u8; 10],
        {
            let mut f = frames::tcp(
                mac,
                CLIENT_MAC,
                (client, 40001),
                (vip, 80),
                64,
                0x02,
                1,
                0,
                b"",
            );
            f[24] ^= 0xff;
            f
        },
        frames::tcp(
            mac,
            CLIENT_MAC,
            (client, 40002),
            (vip, 80),
            64,
            0x10,
            1,
            1,
            b"",
        ),
        frames::tcp(
            OTHER_MAC,
            CLIENT_MAC,
            (client, 40000),
            (vip, 80),
            64,
            0x02,
            1,
            0,
            b"",
        ),
        // 3. ICMP echo to the DIP.
        frames::icmp_echo(mac, CLIENT_MAC, client, dip, 64, 8, 7, 1),
        // 4. A TCP handshake through NAT: SYN, SYN-ACK, ACK with data.
        frames::tcp(
            mac,
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
            mac,
            RS1_MAC,
            (rip, 80),
            (client, 40000),
            64,
            0x12,
            5000,
            1001,
            b"",
        ),
        frames::tcp(
            mac,
            CLIENT_MAC,
            (client, 40000),
            (vip, 80),
            64,
            0x18,
            1001,
            5001,
            b"GET / HTTP/1.0\r\n\r\n",
        ),
    ];
    let expected = vec![
        frames::arp(CLIENT_MAC, mac, 2, mac, vip, CLIENT_MAC, client),
        frames::icmp_echo(CLIENT_MAC, mac, dip, client, 64, 0, 7, 1),
        frames::tcp(
            RS1_MAC,
            mac,
            (client, 40000),
            (rip, 80),
            63,
            0x02,
            1000,
            0,
            b"",
        ),
        frames::tcp(
            CLIENT_MAC,
            mac,
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
            mac,
            (client, 40000),
            (rip, 80),
            63,
            0x18,
            1001,
            5001,
            b"GET / HTTP/1.0\r\n\r\n",
        ),
    ];
    let rules = "# one NAT service\n-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.11:80 -m -w 1\n";
    let out = pcap::run(&dir, rules, &frame_in, |r| {
        let listing = r.ipvsadm_ok(&["-Ln"]);
        r.ipvsadm_ok(&["-Lnc"]).contains("ESTABLISHED")
            && listing.contains(
                "  -> 198.18.1.11:80               Masq    1      1          0         \n",
            )
    });
    pcap::assert_frames(&out, &expected);
    let _ = std::fs::remove_dir_all(dir);
}
