//! pcap golden test through real DPDK (`net_pcap`): known frames in, exact frames out.
//!
//! rvsd runs with one `net_pcap` port that reads `in.pcap` and writes `out.pcap`; the service
//! comes from an `[ipvs] rules` file and the neighbours from `[[neigh]]`, so no ARP is needed.
//! The expected output frames are built from scratch by this test with checksums computed in
//! full, so byte equality also proves the dataplane's incremental checksum updates.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::frames::{self, Mac};
use common::{Rvsd, TestNet};

const CLIENT_MAC: Mac = [0x02, 0xc1, 0, 0, 0, 0x02];
const RS_MAC: Mac = [0x02, 0x5e, 0, 0, 0, 0x11];
const OTHER_MAC: Mac = [0x02, 0x99, 0, 0, 0, 0x99];

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn port_mac(log: &str) -> Mac {
    let at = log
        .find("mac=")
        .unwrap_or_else(|| panic!("rvsd logs the port MAC:\n{log}"))
        + 4;
    let s = &log[at..at + 17];
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(p, 16).unwrap();
    }
    mac
}

#[test]
fn nat_arp_and_echo_golden_through_net_pcap() {
    require_netns!();
    let _serial = common::serial();
    // The namespaces are not used; TestNet gives the test a private state directory that is
    // removed afterwards.
    let net = TestNet::up("rvspcap");
    let dir = net.state_dir();
    let (vip, dip, client, rip) = (
        ip("198.18.0.100"),
        ip("198.18.0.1"),
        ip("198.18.0.2"),
        ip("198.18.1.11"),
    );
    std::fs::write(dir.join("rules"), "# one NAT service\n-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.11:80 -m -w 1\n").unwrap();
    let socket = dir.join("rvsd.sock");

    // Pass 1 learns the port's MAC (net_pcap chooses it); pass 2 feeds frames addressed to it.
    let probe = format!(
        r#"
[dpdk]
cores = "0-1"
args = ["--no-huge", "-m", "256", "--no-shconf", "--no-telemetry"]
[[port]]
name = "dp0"
device = "net_pcap0,rx_pcap={d}/empty.pcap,tx_pcap={d}/probe-out.pcap"
[control]
socket = "{s}"
"#,
        d = dir.display(),
        s = socket.display()
    );
    frames::write_pcap(&dir.join("empty.pcap"), &[]);
    let rvsd = Rvsd::start(None, &probe, &socket, &dir.join("probe"));
    let (st, log) = rvsd.stop();
    assert!(st.success(), "{log}");
    let mac = port_mac(&log);

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
            RS_MAC,
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
            RS_MAC,
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
            RS_MAC,
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
    frames::write_pcap(&dir.join("in.pcap"), &frame_in);
    let mac_s = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let conf = format!(
        r#"
[dpdk]
cores = "0-1"
args = ["--no-huge", "-m", "256", "--no-shconf", "--no-telemetry"]
[[port]]
name = "dp0"
device = "net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap"
[[addr]]
port = "dp0"
ip = "198.18.0.1/24"
[[addr]]
port = "dp0"
ip = "198.18.1.1/24"
[[neigh]]
port = "dp0"
ip = "198.18.0.2"
mac = "02:c1:00:00:00:02"
[[neigh]]
port = "dp0"
ip = "198.18.1.11"
mac = "02:5e:00:00:00:11"
[control]
socket = "{s}"
[ipvs]
rules = "{d}/rules"
"#,
        d = dir.display(),
        s = socket.display()
    );
    let rvsd = Rvsd::start(None, &conf, &socket, &dir);
    assert!(
        rvsd.log_text().contains(&mac_s),
        "same MAC on the second start"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let conns = rvsd.ipvsadm_ok(&["-Lnc"]);
        if conns.contains("ESTABLISHED") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the handshake did not go through:\n{conns}\n{}",
            rvsd.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let listing = rvsd.ipvsadm_ok(&["-Ln"]);
    assert!(
        listing
            .contains("  -> 198.18.1.11:80               Masq    1      1          0         \n"),
        "{listing}"
    );
    let (st, log) = rvsd.stop();
    assert!(st.success(), "{log}");

    let out = frames::read_pcap(&dir.join("out.pcap"));
    for (i, (got, want)) in out.iter().zip(&expected).enumerate() {
        assert_eq!(frames::hex(got), frames::hex(want), "frame {i} differs");
    }
    assert_eq!(out.len(), expected.len(), "frames out");
}
