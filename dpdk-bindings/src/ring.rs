//! [`Ring`]: a DPDK ring of mbufs, for handing packets between lcores (the per-worker-pair
//! redirect rings of docs/architecture.md section 3).
//!
//! A single-producer ring tolerates exactly one enqueuing thread at a time, a single-consumer
//! ring one dequeuing thread. The API enforces that: [`Ring::split`] gives one
//! [`RingProducer`] and one [`RingConsumer`], both operating through `&mut self`, and only the
//! halves of a multi-producer (multi-consumer) ring can be cloned ([`RingProducer::try_clone`]).

use std::ffi::{CString, c_void};
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::batch::MbufBatch;
use crate::eal::{self, EalToken};
use crate::error::DpdkError;
use crate::mbuf::Mbuf;
use crate::sys;

/// Synchronisation mode of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingMode {
    /// One producer thread only (`RING_F_SP_ENQ`): cheaper enqueue, no cloning of the producer.
    pub single_producer: bool,
    /// One consumer thread only (`RING_F_SC_DEQ`): cheaper dequeue, no cloning of the consumer.
    pub single_consumer: bool,
}

impl RingMode {
    /// Single producer, single consumer: the cheapest, for one worker-to-worker direction.
    pub const SPSC: RingMode = RingMode {
        single_producer: true,
        single_consumer: true,
    };
    /// Many producers, one consumer: one inbound ring per worker.
    pub const MPSC: RingMode = RingMode {
        single_producer: false,
        single_consumer: true,
    };
}

struct Shared {
    ptr: NonNull<sys::rte_ring>,
    mode: RingMode,
    name: String,
    _token: Arc<EalToken>,
}

// SAFETY: the ring lives in DPDK memory valid while `Shared` lives. Concurrent use follows the
// ring's mode: enqueue and dequeue only happen through `&mut` of a producer or consumer handle,
// and a single-producer (single-consumer) ring has exactly one such handle, so at most one thread
// enqueues (dequeues) at a time; multi-producer/consumer rings synchronise internally. Counting
// reads atomics only.
unsafe impl Send for Shared {}
// SAFETY: as above; `&Shared` gives access only to the thread-safe count.
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        // Last handle: nobody else enqueues or dequeues, so draining here is race-free.
        let mut batch = MbufBatch::<{ crate::BURST }>::new();
        // SAFETY: exclusive access (last handle) to a valid ring holding only owned mbufs.
        while unsafe { dequeue_raw(self.ptr, &mut batch) } > 0 {
            batch.clear();
        }
        // SAFETY: the ring is empty and no handle to it remains.
        unsafe { sys::rte_ring_free(self.ptr.as_ptr()) };
    }
}

/// A ring of owned mbufs with both ends. Dropping the last handle (ring, producer or consumer)
/// frees the packets still queued, then the ring.
pub struct Ring {
    shared: Arc<Shared>,
}

impl Ring {
    /// Create a ring holding up to `capacity` mbufs (any size; not only powers of two).
    /// `name` must be unique in the process (at most 26 bytes).
    pub fn new(name: &str, capacity: u32, socket: i32, mode: RingMode) -> Result<Ring, DpdkError> {
        const OP: &str = "rte_ring_create";
        let token = eal::token(OP)?;
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new(OP, libc::EINVAL, format!("{name:?} contains NUL")))?;
        let mut flags = sys::RING_F_EXACT_SZ;
        if mode.single_producer {
            flags |= sys::RING_F_SP_ENQ;
        }
        if mode.single_consumer {
            flags |= sys::RING_F_SC_DEQ;
        }
        // SAFETY: EAL initialised; valid C string that DPDK copies.
        let ptr = unsafe { sys::rte_ring_create(cname.as_ptr(), capacity, socket, flags) };
        let ptr = NonNull::new(ptr).ok_or_else(|| {
            let mut e = DpdkError::from_rte_errno(OP);
            e.message = format!("{} (ring {name:?}, capacity {capacity})", e.message);
            e
        })?;
        Ok(Ring {
            shared: Arc::new(Shared {
                ptr,
                mode,
                name: name.to_owned(),
                _token: token,
            }),
        })
    }

    /// Enqueue from the front of `batch`; what did not fit stays in `batch`. Returns the
    /// number enqueued.
    pub fn enqueue_burst<const N: usize>(&mut self, batch: &mut MbufBatch<N>) -> usize {
        // SAFETY: `&mut self` on the only handle that can enqueue (a Ring is not split).
        unsafe { enqueue_raw(self.shared.ptr, batch) }
    }

    /// Dequeue into the spare slots of `batch`; returns the number dequeued.
    pub fn dequeue_burst<const N: usize>(&mut self, batch: &mut MbufBatch<N>) -> usize {
        // SAFETY: `&mut self` on the only handle that can dequeue (a Ring is not split).
        unsafe { dequeue_raw(self.shared.ptr, batch) }
    }

    /// Mbufs queued now.
    pub fn count(&self) -> u32 {
        count(self.shared.ptr)
    }

    /// Most mbufs the ring holds.
    pub fn capacity(&self) -> u32 {
        capacity(self.shared.ptr)
    }

    /// Split into a producer (to the enqueuing lcore) and a consumer (to the dequeuing lcore).
    pub fn split(self) -> (RingProducer, RingConsumer) {
        (
            RingProducer {
                shared: Arc::clone(&self.shared),
            },
            RingConsumer {
                shared: self.shared,
            },
        )
    }
}

/// The enqueuing end of a [`Ring`]. `Send` + `Sync`; enqueueing needs `&mut self`.
pub struct RingProducer {
    shared: Arc<Shared>,
}

impl RingProducer {
    /// Enqueue from the front of `batch`; what did not fit stays in `batch`.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&mut self, batch: &mut MbufBatch<N>) -> usize {
        // SAFETY: single-producer rings have exactly one producer handle (not clonable), used
        // through &mut self; multi-producer rings are thread-safe for enqueue.
        unsafe { enqueue_raw(self.shared.ptr, batch) }
    }

    /// Another producer handle, only for multi-producer rings.
    pub fn try_clone(&self) -> Option<RingProducer> {
        (!self.shared.mode.single_producer).then(|| RingProducer {
            shared: Arc::clone(&self.shared),
        })
    }

    /// Mbufs queued now.
    pub fn count(&self) -> u32 {
        count(self.shared.ptr)
    }
}

/// The dequeuing end of a [`Ring`]. `Send` + `Sync`; dequeueing needs `&mut self`.
pub struct RingConsumer {
    shared: Arc<Shared>,
}

impl RingConsumer {
    /// Dequeue into the spare slots of `batch`; returns the number dequeued.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&mut self, batch: &mut MbufBatch<N>) -> usize {
        // SAFETY: single-consumer rings have exactly one consumer handle (not clonable), used
        // through &mut self; multi-consumer rings are thread-safe for dequeue.
        unsafe { dequeue_raw(self.shared.ptr, batch) }
    }

    /// Another consumer handle, only for multi-consumer rings.
    pub fn try_clone(&self) -> Option<RingConsumer> {
        (!self.shared.mode.single_consumer).then(|| RingConsumer {
            shared: Arc::clone(&self.shared),
        })
    }

    /// Mbufs queued now.
    pub fn count(&self) -> u32 {
        count(self.shared.ptr)
    }
}

fn count(ring: NonNull<sys::rte_ring>) -> u32 {
    // SAFETY: valid ring; reads the head/tail indexes only.
    unsafe { sys::rvs_ring_count(ring.as_ptr()) }
}

fn capacity(ring: NonNull<sys::rte_ring>) -> u32 {
    // SAFETY: valid ring; reads an immutable field.
    unsafe { sys::rvs_ring_capacity(ring.as_ptr()) }
}

/// # Safety
/// `ring` is valid, holds only owned mbufs, and the caller may enqueue per the ring's mode.
unsafe fn enqueue_raw<const N: usize>(
    ring: NonNull<sys::rte_ring>,
    batch: &mut MbufBatch<N>,
) -> usize {
    let count = u32::from(batch.len_u16());
    let objs = batch.as_raw_mut().cast::<*mut c_void>();
    // SAFETY: the first `count` slots hold owned mbuf pointers; the ring takes ownership of the
    // first `n` it reports.
    let n = unsafe { sys::rvs_ring_enqueue_burst(ring.as_ptr(), objs, count) } as usize;
    // SAFETY: the first `n <= len` mbufs now belong to the ring.
    unsafe { batch.commit_taken(n) };
    n
}

/// # Safety
/// `ring` is valid, holds only owned mbufs, and the caller may dequeue per the ring's mode.
unsafe fn dequeue_raw<const N: usize>(
    ring: NonNull<sys::rte_ring>,
    batch: &mut MbufBatch<N>,
) -> usize {
    let (slots, spare) = batch.spare_raw();
    // SAFETY: `slots` has `spare` writable slots; dequeued objects are owned mbufs (only
    // Mbufs are ever enqueued), now ours.
    let n = unsafe {
        sys::rvs_ring_dequeue_burst(ring.as_ptr(), slots.cast::<*mut c_void>(), u32::from(spare))
    } as usize;
    // SAFETY: `n <= spare` slots were filled with owned mbufs.
    unsafe { batch.commit_filled(n) };
    n
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_ring(f, "Ring", &self.shared)
    }
}

impl fmt::Debug for RingProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_ring(f, "RingProducer", &self.shared)
    }
}

impl fmt::Debug for RingConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_ring(f, "RingConsumer", &self.shared)
    }
}

fn debug_ring(f: &mut fmt::Formatter<'_>, what: &str, s: &Shared) -> fmt::Result {
    f.debug_struct(what)
        .field("name", &s.name)
        .field("mode", &s.mode)
        .field("count", &count(s.ptr))
        .finish()
}

// Keeps `Mbuf` in scope for the docs above and asserts the layout the raw casts rely on.
const _: () = assert!(std::mem::size_of::<Mbuf>() == std::mem::size_of::<*mut c_void>());
