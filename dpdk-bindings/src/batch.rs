//! [`MbufBatch`]: a fixed-capacity array of owned mbufs, the unit of every burst call.

use std::fmt;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};

use crate::mbuf::Mbuf;
use crate::sys;

/// The burst size used throughout rvs (docs/architecture.md section 2).
pub const BURST: usize = 32;

/// Up to `N` owned mbufs, stored inline: no allocation per burst.
///
/// Burst calls take packets from the *front* (`tx_burst`, ring enqueue) and fill *spare slots at
/// the back* (`rx_burst`, ring dequeue). Packets a call did not take stay in the batch, in
/// order, for a retry; dropping the batch frees them. Derefs to `[Mbuf]` for reading and
/// editing packets in place.
///
/// Invariant: slots `0..len` hold initialised, owned mbufs; slots `len..N` are uninitialised.
pub struct MbufBatch<const N: usize = BURST> {
    slots: [MaybeUninit<Mbuf>; N],
    len: usize,
}

impl<const N: usize> MbufBatch<N> {
    /// An empty batch.
    pub const fn new() -> Self {
        const {
            assert!(
                N > 0 && N <= u16::MAX as usize,
                "burst sizes are u16 in DPDK"
            )
        };
        MbufBatch {
            slots: [const { MaybeUninit::uninit() }; N],
            len: 0,
        }
    }

    /// Number of packets held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no packet is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no slot is free.
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// The fixed capacity `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Free slots.
    pub fn spare(&self) -> usize {
        N - self.len
    }

    /// Add a packet at the back; gives it back when the batch is full.
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(mbuf);
        }
        self.slots[self.len].write(mbuf);
        self.len += 1;
        Ok(())
    }

    /// Take the last packet.
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` (old len - 1) was initialised; lowering len first hands ownership
        // to the caller, so it is never read or dropped again by the batch.
        Some(unsafe { self.slots[self.len].assume_init_read() })
    }

    /// Free every packet.
    pub fn clear(&mut self) {
        let len = std::mem::replace(&mut self.len, 0);
        for slot in &mut self.slots[..len] {
            // SAFETY: slots below the old len are initialised; len is already 0, so each is
            // dropped exactly once even if a drop panicked.
            unsafe { slot.assume_init_drop() };
        }
    }

    /// Take all packets out, front first. The batch is empty afterwards; packets the iterator
    /// did not yield are freed when it is dropped.
    pub fn drain(&mut self) -> Drain<'_> {
        let len = std::mem::replace(&mut self.len, 0);
        Drain {
            rest: self.slots[..len].iter_mut(),
        }
    }

    /// Pointer to the first slot, for DPDK calls that read `len` mbuf pointers.
    /// `Mbuf` is `repr(transparent)` over `NonNull<rte_mbuf>`, so a slot *is* an `rte_mbuf *`.
    pub(crate) fn as_raw_mut(&mut self) -> *mut *mut sys::rte_mbuf {
        self.slots.as_mut_ptr().cast()
    }

    /// Pointer to the first spare slot and the number of spare slots (at most `u16::MAX`).
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut sys::rte_mbuf, u16) {
        let spare = u16::try_from(N - self.len).unwrap_or(u16::MAX);
        let ptr = self.slots[self.len..].as_mut_ptr().cast();
        (ptr, spare)
    }

    /// Record that DPDK wrote `n` owned mbuf pointers into the spare slots.
    ///
    /// # Safety
    /// The first `n` spare slots must now hold valid, exclusively owned, non-null mbufs, and
    /// `n <= self.spare()`.
    pub(crate) unsafe fn commit_filled(&mut self, n: usize) {
        debug_assert!(n <= self.spare());
        self.len += n;
    }

    /// Record that DPDK took ownership of the first `n` mbufs; move the rest to the front.
    ///
    /// # Safety
    /// `n <= self.len()` and the first `n` mbufs now belong to someone else (never dropped here).
    pub(crate) unsafe fn commit_taken(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        if n > 0 && rest > 0 {
            let base = self.slots.as_mut_ptr();
            // SAFETY: both ranges lie within `slots` (n + rest = len <= N); `copy` allows
            // overlap; the moved-from slots are treated as uninitialised afterwards.
            unsafe { std::ptr::copy(base.add(n), base, rest) };
        }
        self.len = rest;
    }

    /// `len` as DPDK's u16 burst count (N <= u16::MAX is checked at compile time).
    pub(crate) fn len_u16(&self) -> u16 {
        u16::try_from(self.len).unwrap_or(u16::MAX)
    }
}

impl<const N: usize> Default for MbufBatch<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for MbufBatch<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> Deref for MbufBatch<N> {
    type Target = [Mbuf];

    fn deref(&self) -> &[Mbuf] {
        // SAFETY: slots 0..len are initialised Mbufs; MaybeUninit<Mbuf> has Mbuf's layout.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }
}

impl<const N: usize> DerefMut for MbufBatch<N> {
    fn deref_mut(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique. Swapping elements through
        // the slice keeps every slot initialised and every mbuf owned once.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }
}

impl<const N: usize> fmt::Debug for MbufBatch<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbufBatch")
            .field("len", &self.len)
            .field("capacity", &N)
            .finish()
    }
}

/// Iterator returned by [`MbufBatch::drain`].
pub struct Drain<'a> {
    /// Initialised slots not yet yielded; the batch already counts them as gone.
    rest: std::slice::IterMut<'a, MaybeUninit<Mbuf>>,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    fn next(&mut self) -> Option<Mbuf> {
        // SAFETY: every slot in `rest` is initialised and yielded (moved out) at most once; the
        // batch's len is 0 so it will not touch them again.
        self.rest
            .next()
            .map(|slot| unsafe { slot.assume_init_read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rest.size_hint()
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for slot in self.rest.by_ref() {
            // SAFETY: not yet yielded, so still initialised and owned only by this iterator.
            unsafe { slot.assume_init_drop() };
        }
    }
}

impl fmt::Debug for Drain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("left", &self.rest.len())
            .finish()
    }
}
