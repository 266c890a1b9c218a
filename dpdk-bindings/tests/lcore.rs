//! Lcore launch, EAL helpers and the once-per-process rule.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dpdk_bindings::{Eal, Mempool, SOCKET_ID_ANY, launch, lcore_id, rdtsc, tsc_hz, version};

#[test]
fn launch_on_worker_lcore_and_helpers() {
    assert!(version().starts_with("DPDK 22.11"), "{}", version());
    assert_eq!(lcore_id(), None, "not an EAL thread before init");
    let Some(eal) = common::eal_or_skip("lcore", &[]) else {
        return;
    };
    let err = Eal::init(&[]).expect_err("second init is refused");
    assert_eq!(err.errno, libc::EALREADY);
    assert!(err.to_string().contains("only once"), "{err}");

    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(lcore_id(), Some(0));
    assert_eq!(eal.worker_lcores(), vec![1]);
    assert_eq!(eal.lcore_count(), 2);
    assert!(tsc_hz() > 0);
    let t0 = rdtsc();
    assert!(rdtsc() >= t0);
    assert!(eal.socket_id() >= 0 || eal.socket_id() == SOCKET_ID_ANY);

    // The closure runs on lcore 1 and its value comes back.
    let seen = Arc::new(AtomicU32::new(u32::MAX));
    let seen2 = Arc::clone(&seen);
    let pool = Mempool::new("lcore_pool", 255, 16, 2048, SOCKET_ID_ANY).expect("pool");
    let worker_pool = pool.clone();
    let handle = launch(1, move || {
        seen2.store(lcore_id().unwrap_or(u32::MAX), Ordering::SeqCst);
        // Mempool use from the worker lcore (its own cache).
        let m = worker_pool.alloc().expect("alloc on worker");
        drop(m);
        42
    })
    .expect("launch");
    assert_eq!(handle.lcore(), 1);
    assert_eq!(handle.wait().expect("no panic"), 42);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(pool.in_use(), 0);

    // The main lcore and unknown lcores are refused without UB.
    assert!(launch(0, || 0).is_err());
    assert!(launch(7, || 0).is_err());
    assert!(launch(100_000, || 0).is_err());

    // Launching twice on a busy lcore is refused; the first keeps running.
    let gate = Arc::new(AtomicU32::new(0));
    let g = Arc::clone(&gate);
    let busy = launch(1, move || {
        while g.load(Ordering::SeqCst) == 0 {
            std::hint::spin_loop();
        }
        7
    })
    .expect("launch");
    let again = launch(1, || 0).expect_err("lcore busy");
    assert_eq!(again.errno, libc::EBUSY);
    gate.store(1, Ordering::SeqCst);
    assert_eq!(busy.wait().expect("no panic"), 7);

    // A panic is caught on the worker and reported; the lcore stays usable.
    let h = launch(1, || panic!("boom")).expect("launch");
    let e = h.wait().expect_err("panic reported");
    assert!(e.message.contains("boom"), "{e}");
    assert_eq!(launch(1, || 5).expect("launch").wait().expect("ok"), 5);

    // Launching from a thread that is not the main lcore is refused.
    let from_other = std::thread::spawn(|| launch(1, || 0).map(|h| h.lcore()))
        .join()
        .expect("thread");
    assert!(from_other.is_err());
}
