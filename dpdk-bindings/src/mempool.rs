//! [`Mempool`]: a pool of packet mbufs (`rte_pktmbuf_pool_create`).

use std::ffi::CString;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::batch::MbufBatch;
use crate::eal::{self, EalToken};
use crate::error::DpdkError;
use crate::mbuf::Mbuf;
use crate::sys;

/// Default data room of an mbuf: 2048 bytes of frame plus the 128-byte headroom.
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// A shared handle to an mbuf pool. Cloning is cheap (an `Arc`); the pool is freed when the
/// last handle is dropped and none of its mbufs is in use (otherwise it is leaked with a
/// warning, because an mbuf alive somewhere would point into it).
///
/// `Send + Sync`: DPDK mempool get/put are thread-safe (the default `ring_mp_mc` ops use a
/// lock-free multi-producer/multi-consumer ring). Each EAL lcore has its own object cache,
/// indexed by the calling thread's lcore id, so lcores never share a cache. Threads DPDK did not
/// create have no lcore id and use no cache: they work, only slower.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<Inner>,
}

struct Inner {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    size: u32,
    token: Option<Arc<EalToken>>,
}

// SAFETY: see the `Mempool` docs: all operations used through a shared `rte_mempool *`
// (get, put, counts) are thread-safe in DPDK, and the pointer stays valid while `Inner` lives.
unsafe impl Send for Inner {}
// SAFETY: as above; no `&self` method mutates Rust-side state.
unsafe impl Sync for Inner {}

impl Mempool {
    /// Create a pool of `n_mbufs` packet buffers (best `2^k - 1`) with a per-lcore cache of
    /// `cache_size` (0 for none; at most 512 and `n_mbufs / 1.5`), each with `data_room_size`
    /// bytes of buffer including the headroom ([`DEFAULT_DATA_ROOM`] fits a 1500-byte MTU
    /// frame). `name` must be unique in the process. `socket` is a NUMA socket or
    /// [`crate::SOCKET_ID_ANY`].
    pub fn new(
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room_size: u16,
        socket: i32,
    ) -> Result<Mempool, DpdkError> {
        const OP: &str = "rte_pktmbuf_pool_create";
        let token = eal::token(OP)?;
        let cname = CString::new(name).map_err(|_| {
            DpdkError::new(OP, libc::EINVAL, format!("pool name {name:?} contains NUL"))
        })?;
        // SAFETY: EAL initialised (token held); `cname` is a valid C string that DPDK copies.
        let ptr = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                n_mbufs,
                cache_size,
                0,
                data_room_size,
                socket,
            )
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| {
            let mut e = DpdkError::from_rte_errno(OP);
            e.message = format!("{} (pool {name:?}, {n_mbufs} mbufs)", e.message);
            e
        })?;
        Ok(Mempool {
            inner: Arc::new(Inner {
                ptr,
                name: name.to_owned(),
                size: n_mbufs,
                token: Some(token),
            }),
        })
    }

    /// One mbuf, reset and empty, with the default headroom; `None` when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: valid pool pointer (held by `inner`); rte_pktmbuf_alloc is thread-safe. A
        // fresh mbuf has refcnt 1 and a direct buffer, and the pool outlives it (Inner::drop
        // leaks the pool while mbufs are in use), so the Mbuf invariant holds.
        unsafe { Mbuf::from_raw(sys::rvs_pktmbuf_alloc(self.inner.ptr.as_ptr())) }
    }

    /// Fill `n` spare slots of `batch` at once (all or nothing).
    pub fn alloc_bulk<const N: usize>(
        &self,
        batch: &mut MbufBatch<N>,
        n: usize,
    ) -> Result<(), DpdkError> {
        const OP: &str = "rte_pktmbuf_alloc_bulk";
        let (slots, spare) = batch.spare_raw();
        if n > usize::from(spare) {
            return Err(DpdkError::new(
                OP,
                libc::EINVAL,
                format!("asked for {n} mbufs but the batch has {spare} free slots"),
            ));
        }
        let count = u32::from(u16::try_from(n).unwrap_or(spare));
        // SAFETY: `slots` points to at least `n` writable spare slots; the pool pointer is
        // valid. On success DPDK wrote `n` fresh mbufs (refcnt 1, direct), on failure none.
        let ret = unsafe { sys::rvs_pktmbuf_alloc_bulk(self.inner.ptr.as_ptr(), slots, count) };
        if ret < 0 {
            return Err(DpdkError::from_errno(OP, ret));
        }
        // SAFETY: the `n` spare slots now hold owned mbufs from this pool.
        unsafe { batch.commit_filled(n) };
        Ok(())
    }

    /// Mbufs that can be allocated now (in the pool and in lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: valid pool pointer; reading counts is thread-safe.
        unsafe { sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Mbufs currently allocated (held by the application, a ring, or a device's rx ring).
    pub fn in_use(&self) -> u32 {
        // SAFETY: valid pool pointer; reading counts is thread-safe.
        unsafe { sys::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// Number of mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.inner.size
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: valid pool pointer; reading counts is thread-safe.
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use != 0 {
            tracing::warn!(
                pool = %self.name,
                in_use,
                "mempool dropped while mbufs are in use: leaking it (and keeping DPDK up)"
            );
            // Keep the EAL (and so its memory) alive forever too.
            std::mem::forget(self.token.take());
            return;
        }
        // SAFETY: last handle, no mbuf of this pool exists anywhere (in_use == 0) and none can
        // be allocated any more; the EAL is alive because we still hold a token.
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
    }
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .field("available", &self.available())
            .finish()
    }
}
