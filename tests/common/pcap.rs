//! Run rvsd over a `net_pcap` port: frames in from a pcap file, frames out to another.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use super::Rvsd;
use super::frames::{self, Mac};

/// The MAC net_pcap gives its first port (`02:70:63:61:70:00`, "pcap" + index; the tests check
/// rvsd logs it).
pub const PCAP_MAC: Mac = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
pub const CLIENT_MAC: Mac = [0x02, 0xc1, 0, 0, 0, 0x02];
pub const RS1_MAC: Mac = [0x02, 0x5e, 0, 0, 0, 0x11];

/// Feed `input` to rvsd (one `net_pcap` port owning 198.18.0.1/24 and 198.18.1.1/24, static
/// neighbours for the client 198.18.0.2 and RS 198.18.1.11, services from `rules`), wait until
/// `done` says the traffic went through (bounded), stop rvsd and return the frames it sent.
pub fn run(
    dir: &std::path::Path,
    rules: &str,
    input: &[Vec<u8>],
    done: impl Fn(&Rvsd) -> bool,
) -> Vec<Vec<u8>> {
    run_with(dir, "", rules, input, done)
}

/// [`run`] with `extra` appended to the configuration's port, address and neighbour sections
/// (more `[[addr]]` and `[[neigh]]` entries, IPv6 ones included).
pub fn run_with(
    dir: &std::path::Path,
    extra: &str,
    rules: &str,
    input: &[Vec<u8>],
    done: impl Fn(&Rvsd) -> bool,
) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("rules"), rules).unwrap();
    frames::write_pcap(&dir.join("in.pcap"), input);
    let socket = dir.join("rvsd.sock");
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
{extra}
[control]
socket = "{s}"
[ipvs]
rules = "{d}/rules"
"#,
        d = dir.display(),
        s = socket.display(),
    );
    let rvsd = Rvsd::start(None, &conf, &socket, dir);
    assert!(
        rvsd.log_text().contains("mac=02:70:63:61:70:00"),
        "net_pcap's MAC changed:\n{}",
        rvsd.log_text()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&rvsd) {
        assert!(
            Instant::now() < deadline,
            "traffic did not go through:\n{}",
            rvsd.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (st, log) = rvsd.stop();
    assert!(st.success(), "{log}");
    frames::read_pcap(&dir.join("out.pcap"))
}

/// Compare frame lists, naming the first difference.
pub fn assert_frames(got: &[Vec<u8>], want: &[Vec<u8>]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(frames::hex(g), frames::hex(w), "frame {i} differs");
    }
    assert_eq!(got.len(), want.len(), "number of frames out");
}
