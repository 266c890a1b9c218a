//! net_ring loopback: a single `net_ring0` vdev sends what it transmits back to its rx queue.

mod common;

use dpdk_bindings::{
    MbufBatch, Mempool, Port, PortConfig, SOCKET_ID_ANY, port_id_by_name, port_info,
};

fn frame(i: u8) -> Vec<u8> {
    (0..60u8)
        .map(|b| b.wrapping_mul(7).wrapping_add(i))
        .collect()
}

#[test]
fn ring_pmd_loops_tx_back_to_rx() {
    let Some(_eal) = common::eal_or_skip("loopback", &["--vdev", "net_ring0"]) else {
        return;
    };
    let pool = Mempool::new(
        "loop_pool",
        1023,
        32,
        dpdk_bindings::DEFAULT_DATA_ROOM,
        SOCKET_ID_ANY,
    )
    .expect("mempool");
    assert_eq!(pool.in_use(), 0);

    let id = port_id_by_name("net_ring0").expect("net_ring0 exists");
    assert!(port_id_by_name("net_nonexistent9").is_err());
    let info = port_info(id).expect("info");
    assert_eq!(info.driver_name, "net_ring");

    let mut port = Port::configure(
        id,
        &PortConfig {
            rx_desc: 256,
            tx_desc: 256,
            ..PortConfig::default()
        },
        &pool,
    )
    .expect("configure");
    assert!(
        Port::configure(id, &PortConfig::default(), &pool).is_err(),
        "a second Port for the same device is refused"
    );
    port.start().expect("start");
    assert_eq!(port.mac_addr().expect("mac").len(), 6);
    let link = port.link().expect("link");
    assert!(link.up, "net_ring link is up after start: {link:?}");
    assert!(port.mtu().expect("mtu") >= 1500);
    assert_eq!(port.rss_hash_fields(), None);

    // Through queue handles, as a worker would use them.
    let mut rxq = port.rx_queue(0).expect("rx queue");
    let mut txq = port.tx_queue(0).expect("tx queue");
    assert!(port.rx_queue(0).is_err(), "a queue is handed out once");
    assert!(port.rx_queue(5).is_err(), "no such queue");
    assert!(
        port.stop().is_err(),
        "stop refused while queue handles live"
    );

    let mut tx: MbufBatch = MbufBatch::new();
    for i in 0..20u8 {
        let mut m = pool.alloc().expect("alloc");
        m.extend_from_slice(&frame(i)).expect("fits");
        tx.push(m).expect("batch has room");
    }
    assert_eq!(pool.in_use(), 20);
    let sent = txq.tx_burst(&mut tx);
    assert_eq!(sent, 20);
    assert!(tx.is_empty());

    let mut rx: MbufBatch = MbufBatch::new();
    let got = rxq.rx_burst(&mut rx);
    assert_eq!(got, 20);
    for (i, m) in rx.iter().enumerate() {
        assert_eq!(
            m.data(),
            &frame(i as u8)[..],
            "frame {i} came back identical"
        );
        assert!(m.is_contiguous());
    }
    drop(rx);
    assert_eq!(pool.in_use(), 0, "every mbuf returned to the pool");

    let stats = port.stats().expect("stats");
    assert_eq!(stats.opackets, 20);
    assert_eq!(stats.ipackets, 20);

    // Partial tx: the ring PMD queue holds a bounded number; what is not taken stays.
    drop((rxq, txq));
    let mut big: MbufBatch<64> = MbufBatch::new();
    pool.alloc_bulk(&mut big, 64).expect("bulk alloc");
    let n = port.tx_burst(0, &mut big).expect("tx");
    assert_eq!(n + big.len(), 64);
    let mut back: MbufBatch<64> = MbufBatch::new();
    let m = port.rx_burst(0, &mut back).expect("rx");
    assert_eq!(m, n);
    drop((big, back));
    assert_eq!(pool.in_use(), 0);

    port.stop().expect("stop once queues are dropped");
    drop(port);
    assert_eq!(pool.in_use(), 0);
}
