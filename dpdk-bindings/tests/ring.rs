//! rte_ring of mbufs: burst enqueue/dequeue, partial enqueue, SPSC halves across lcores, drop
//! frees what is still queued.

mod common;

use dpdk_bindings::{MbufBatch, Mempool, Ring, RingMode, SOCKET_ID_ANY, launch};

#[test]
fn ring_enqueue_dequeue() {
    let Some(_eal) = common::eal_or_skip("ring", &[]) else {
        return;
    };
    let pool = Mempool::new("ring_pool", 1023, 32, 2048, SOCKET_ID_ANY).expect("pool");

    // Exact capacity (not a power of two), partial enqueue keeps the rest in the batch.
    let mut ring = Ring::new("r_basic", 10, SOCKET_ID_ANY, RingMode::SPSC).expect("ring");
    assert_eq!(ring.capacity(), 10);
    assert!(
        Ring::new("r_basic", 10, SOCKET_ID_ANY, RingMode::SPSC).is_err(),
        "name taken"
    );
    let mut batch: MbufBatch = MbufBatch::new();
    for i in 0..16u8 {
        let mut m = pool.alloc().expect("alloc");
        m.extend_from_slice(&[i; 8]).expect("fits");
        batch.push(m).expect("room");
    }
    assert_eq!(ring.enqueue_burst(&mut batch), 10);
    assert_eq!(batch.len(), 6);
    assert_eq!(
        batch[0].data(),
        &[10u8; 8],
        "the unsent rest moved to the front, in order"
    );
    assert_eq!(ring.count(), 10);
    let mut out: MbufBatch<4> = MbufBatch::new();
    assert_eq!(ring.dequeue_burst(&mut out), 4);
    assert_eq!(out[0].data(), &[0u8; 8], "FIFO");
    assert_eq!(ring.dequeue_burst(&mut out), 0, "batch full");
    out.clear();
    assert_eq!(ring.count(), 6);
    drop(batch);
    // Dropping the ring frees the 6 mbufs still queued.
    drop(ring);
    assert_eq!(pool.in_use(), 0);

    // SPSC across lcores: the worker produces, the main lcore consumes.
    let ring = Ring::new("r_spsc", 64, SOCKET_ID_ANY, RingMode::SPSC).expect("ring");
    let (mut producer, mut consumer) = ring.split();
    assert!(
        producer.try_clone().is_none(),
        "single producer cannot be cloned"
    );
    assert!(
        consumer.try_clone().is_none(),
        "single consumer cannot be cloned"
    );
    let worker_pool = pool.clone();
    let handle = launch(1, move || {
        let mut sent = 0u32;
        let mut b: MbufBatch<8> = MbufBatch::new();
        while sent < 1000 {
            while !b.is_full() {
                let Some(mut m) = worker_pool.alloc() else {
                    break;
                };
                m.extend_from_slice(&sent.to_be_bytes()).expect("fits");
                sent += 1;
                b.push(m).expect("room");
                if sent == 1000 {
                    break;
                }
            }
            while !b.is_empty() {
                producer.enqueue_burst(&mut b);
            }
        }
        0
    })
    .expect("launch");
    let mut next = 0u32;
    let mut rx: MbufBatch = MbufBatch::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while next < 1000 && std::time::Instant::now() < deadline {
        consumer.dequeue_burst(&mut rx);
        for m in rx.drain() {
            assert_eq!(m.data(), &next.to_be_bytes());
            next += 1;
        }
    }
    assert_eq!(handle.wait().expect("no panic"), 0);
    assert_eq!(next, 1000);
    drop(consumer);
    assert_eq!(pool.in_use(), 0);

    // MPSC producers clone.
    let ring = Ring::new("r_mpsc", 8, SOCKET_ID_ANY, RingMode::MPSC).expect("ring");
    let (p, c) = ring.split();
    assert!(p.try_clone().is_some());
    assert!(c.try_clone().is_none());
}
