//! The PMDs rvs relies on load as EAL plugins without being linked: net_null (benchmarks) and
//! net_af_packet (laptop and namespace tests), next to net_ring and net_pcap (own tests).

mod common;

use dpdk_bindings::{MbufBatch, Mempool, Port, PortConfig, SOCKET_ID_ANY, port_id_by_name};

#[test]
fn null_and_af_packet_pmds_load() {
    // af_packet on `lo` only to prove the driver loads and configures; nothing is sent on it.
    let Some(_eal) = common::eal_or_skip(
        "plugins",
        &["--vdev", "net_null0", "--vdev", "net_af_packet0,iface=lo"],
    ) else {
        return;
    };
    let pool = Mempool::new("plug_pool", 2047, 32, 2048 + 128, SOCKET_ID_ANY).expect("pool");

    let null_id = port_id_by_name("net_null0").expect("net_null0");
    let mut null = Port::configure(
        null_id,
        &PortConfig {
            rx_queues: 2,
            tx_queues: 2,
            ..PortConfig::default()
        },
        &pool,
    )
    .expect("configure null");
    assert_eq!(null.info().expect("info").driver_name, "net_null");
    null.start().expect("start");
    let mut rx = null.rx_queue(1).expect("rxq");
    let mut tx = null.tx_queue(1).expect("txq");
    let mut batch: MbufBatch = MbufBatch::new();
    assert_eq!(rx.rx_burst(&mut batch), 32, "net_null makes a full burst");
    assert_eq!(tx.tx_burst(&mut batch), 32, "and swallows it");
    drop((rx, tx));
    null.stop().expect("stop");
    drop(null);
    assert_eq!(pool.in_use(), 0);

    let af_id = port_id_by_name("net_af_packet0").expect("net_af_packet0");
    let mut af = Port::configure(af_id, &PortConfig::default(), &pool).expect("configure af");
    let info = af.info().expect("info");
    assert_eq!(info.driver_name, "net_af_packet");
    assert_eq!(af.rss_hash_fields(), None);
    af.start().expect("start");
    assert!(af.link().is_ok());
    af.stop().expect("stop");
}
