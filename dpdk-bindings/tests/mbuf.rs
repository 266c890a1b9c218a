//! Mbuf length operations return errors at their bounds, never panic; batches own their mbufs.

mod common;

use dpdk_bindings::{MbufBatch, Mempool, NoRoom, SOCKET_ID_ANY};

#[test]
fn mbuf_bounds_and_batches() {
    let Some(_eal) = common::eal_or_skip("mbuf", &[]) else {
        return;
    };
    let pool = Mempool::new("mbuf_pool", 127, 0, 2048 + 128, SOCKET_ID_ANY).expect("pool");
    assert_eq!(pool.size(), 127);
    assert!(
        Mempool::new("mbuf_pool", 127, 0, 2048, SOCKET_ID_ANY).is_err(),
        "duplicate pool name"
    );

    let mut m = pool.alloc().expect("alloc");
    assert!(m.is_empty());
    assert_eq!(m.headroom(), 128);
    assert_eq!(m.tailroom(), 2048);
    assert_eq!(m.nb_segs(), 1);
    assert!(m.is_contiguous());

    m.extend_from_slice(&[1, 2, 3, 4]).unwrap();
    m.prepend(2).unwrap();
    m.data_mut()[..2].copy_from_slice(&[9, 9]);
    assert_eq!(m.data(), &[9, 9, 1, 2, 3, 4]);
    assert_eq!(m.len(), 6);
    m.adj(3).unwrap();
    m.trim(1).unwrap();
    assert_eq!(m.data(), &[2, 3]);
    m.append(2).unwrap();
    assert_eq!(m.len(), 4);

    // Every bound: an error naming the op, and nothing changed.
    let before = (m.headroom(), m.len(), m.tailroom());
    assert_eq!(
        m.prepend(m.headroom() + 1),
        Err(NoRoom {
            op: "prepend",
            requested: 130,
            available: 129
        })
    );
    assert_eq!(m.adj(5).unwrap_err().op, "adj");
    assert_eq!(m.trim(5).unwrap_err().op, "trim");
    assert_eq!(m.append(before.2 + 1).unwrap_err().op, "append");
    assert!(m.append(usize::MAX).is_err());
    assert!(m.prepend(usize::MAX).is_err());
    assert!(m.extend_from_slice(&vec![0u8; 5000]).is_err());
    assert_eq!((m.headroom(), m.len(), m.tailroom()), before);
    // Exactly at the bounds works.
    m.adj(4).unwrap();
    assert!(m.is_empty());
    m.prepend(m.headroom()).unwrap();
    assert_eq!(m.headroom(), 0);
    assert!(m.prepend(1).is_err());
    m.trim(m.len()).unwrap();
    let tail = m.tailroom();
    m.append(tail).unwrap();
    assert_eq!(m.tailroom(), 0);
    assert!(m.append(1).is_err());
    assert_eq!(m.rss_hash(), None);
    assert!(format!("{m:?}").contains("Mbuf"));

    // Raw round trip.
    let raw = m.into_raw();
    // SAFETY: `raw` came from into_raw just above and is used by nobody else.
    let m = unsafe { dpdk_bindings::Mbuf::from_raw(raw) }.expect("non-null");
    drop(m);
    assert_eq!(pool.in_use(), 0);

    // Batches: push to capacity, pop, drain (partly consumed), drop frees the rest.
    let mut b: MbufBatch<4> = MbufBatch::new();
    for _ in 0..4 {
        b.push(pool.alloc().unwrap()).unwrap();
    }
    assert!(b.is_full());
    let extra = pool.alloc().unwrap();
    let extra = b.push(extra).expect_err("full batch gives the mbuf back");
    drop(extra);
    assert_eq!(pool.in_use(), 4);
    drop(b.pop());
    assert_eq!(pool.in_use(), 3);
    let mut d = b.drain();
    drop(d.next());
    drop(d);
    assert!(b.is_empty());
    assert_eq!(pool.in_use(), 0);
    pool.alloc_bulk(&mut b, 3).unwrap();
    assert!(pool.alloc_bulk(&mut b, 2).is_err(), "only one free slot");
    assert_eq!(b.len(), 3);
    drop(b);
    assert_eq!(pool.in_use(), 0);

    // Exhaustion: alloc returns None, nothing panics.
    let mut all: Vec<_> = std::iter::from_fn(|| pool.alloc()).collect();
    assert_eq!(all.len(), 127);
    assert!(pool.alloc().is_none());
    assert_eq!(pool.available(), 0);
    all.clear();
    assert_eq!(pool.in_use(), 0);
    assert_eq!(pool.available(), 127);
}
