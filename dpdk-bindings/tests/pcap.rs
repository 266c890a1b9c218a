//! net_pcap: frames read from an input pcap file come out in the output pcap file, byte for
//! byte. This is the mechanism of the daemon's pcap golden tests.

mod common;

use std::path::Path;

use dpdk_bindings::{MbufBatch, Mempool, Port, PortConfig, SOCKET_ID_ANY, port_id_by_name};

/// A minimal pcap writer: microsecond timestamps, Ethernet link type.
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).expect("write input pcap");
}

/// Frames of a little-endian pcap file (micro- or nanosecond magic).
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).expect("read output pcap");
    assert!(b.len() >= 24, "pcap header missing ({} bytes)", b.len());
    let magic = u32::from_le_bytes(b[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
        "magic {magic:#x}"
    );
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        frames.push(b[at..at + incl].to_vec());
        at += incl;
    }
    assert_eq!(at, b.len(), "no trailing partial record");
    frames
}

fn frames() -> Vec<Vec<u8>> {
    [60usize, 64, 128, 1000, 1514]
        .iter()
        .enumerate()
        .map(|(i, &len)| (0..len).map(|b| (b * 31 + i * 7) as u8).collect())
        .collect()
}

#[test]
fn pcap_in_to_pcap_out() {
    let dir = std::env::temp_dir().join(format!("rvs-pcap-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.pcap"), dir.join("out.pcap"));
    let sent = frames();
    write_pcap(&input, &sent);
    let vdev = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        output.display()
    );
    let Some(_eal) = common::eal_or_skip("pcap", &["--vdev", &vdev]) else {
        return;
    };
    let pool = Mempool::new(
        "pcap_pool",
        511,
        0,
        dpdk_bindings::DEFAULT_DATA_ROOM,
        SOCKET_ID_ANY,
    )
    .expect("mempool");
    let id = port_id_by_name("net_pcap0").expect("net_pcap0");
    let mut port = Port::configure(id, &PortConfig::default(), &pool).expect("configure");
    port.start().expect("start");

    let mut batch: MbufBatch = MbufBatch::new();
    for _ in 0..1000 {
        port.rx_burst(0, &mut batch).expect("rx");
        if batch.len() >= sent.len() {
            break;
        }
    }
    assert_eq!(
        batch.len(),
        sent.len(),
        "every frame of the input file was read"
    );
    for (m, f) in batch.iter().zip(&sent) {
        assert_eq!(m.data(), &f[..]);
        assert_eq!(m.port(), id);
    }
    // End of file: rx keeps returning nothing.
    let mut more: MbufBatch = MbufBatch::new();
    assert_eq!(port.rx_burst(0, &mut more).expect("rx"), 0);

    let n = port.tx_burst(0, &mut batch).expect("tx");
    assert_eq!(n, sent.len());
    // The PMD flushes the dumper after each tx burst: the frames are in the file already.
    assert_eq!(read_pcap(&output), sent, "flushed after the tx burst");

    port.stop().expect("stop");
    drop(port);
    assert_eq!(read_pcap(&output), sent, "complete after stop/close");
    assert_eq!(pool.in_use(), 0);
    std::fs::remove_dir_all(&dir).ok();
}
