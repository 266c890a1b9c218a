//! [`Mbuf`]: one owned DPDK packet buffer.

use std::fmt;
use std::ptr::NonNull;

use crate::error::NoRoom;
use crate::sys;

/// `RTE_MBUF_F_RX_RSS_HASH`: the NIC stored an RSS hash in the mbuf.
const RX_RSS_HASH: u64 = sys::RTE_MBUF_F_RX_RSS_HASH as u64;

/// The `rte_mbuf` fields read and written here, by offset (`csrc/shim.h`): DPDK 24.03 moved them
/// into anonymous unions whose bindgen names change between versions, while their offsets and
/// sizes (checked at compile time in `csrc/shim.c`) do not. A read compiles to the same single
/// load as a field access.
mod field {
    use crate::sys;

    pub(super) use sys::{
        RVS_MBUF_BUF_ADDR as BUF_ADDR, RVS_MBUF_BUF_LEN as BUF_LEN, RVS_MBUF_DATA_LEN as DATA_LEN,
        RVS_MBUF_DATA_OFF as DATA_OFF, RVS_MBUF_NB_SEGS as NB_SEGS, RVS_MBUF_NEXT as NEXT,
        RVS_MBUF_OL_FLAGS as OL_FLAGS, RVS_MBUF_PKT_LEN as PKT_LEN, RVS_MBUF_PORT as PORT,
    };

    /// Read the field of type `T` at `offset`.
    ///
    /// # Safety
    /// `m` points to a valid `rte_mbuf` and `offset` is one of the constants above, naming a
    /// field of type `T`.
    #[inline(always)]
    pub(super) unsafe fn get<T: Copy>(m: *const sys::rte_mbuf, offset: sys::rvs_mbuf_field) -> T {
        // SAFETY: by the contract, `m + offset` is an aligned, initialised field of type `T`
        // inside the mbuf.
        unsafe { m.cast::<u8>().add(offset as usize).cast::<T>().read() }
    }

    /// Write the field of type `T` at `offset`.
    ///
    /// # Safety
    /// As [`get`], and no other reference to the mbuf is in use.
    #[inline(always)]
    pub(super) unsafe fn set<T: Copy>(m: *mut sys::rte_mbuf, offset: sys::rvs_mbuf_field, v: T) {
        // SAFETY: by the contract, `m + offset` is an aligned field of type `T` that only the
        // caller accesses.
        unsafe { m.cast::<u8>().add(offset as usize).cast::<T>().write(v) }
    }
}

/// An owned packet: one `rte_mbuf`, possibly the head of a chain of segments. Dropping it
/// returns every segment to its mempool.
///
/// Invariant: the pointer is a valid mbuf allocated from a mempool that outlives it (a
/// [`crate::Mempool`] is only freed when none of its mbufs is in use), and this value is its
/// only owner: reference count 1, a direct (not attached) buffer, no other pointer in use.
/// This makes `data_mut` sound.
///
/// `Send` (moving a packet to another lcore is how pipelines work) but not `Sync`.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the sole owner of its buffer (see the type invariant) and has no thread
// affinity: freeing it on another lcore returns it to that lcore's mempool cache, or to the
// thread-safe mempool ring from a non-EAL thread.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Read a field of the first segment.
    #[inline(always)]
    fn get<T: Copy>(&self, offset: sys::rvs_mbuf_field) -> T {
        // SAFETY: the pointer is a valid mbuf (type invariant) and every offset passed here is
        // one of `field`'s constants with its C type.
        unsafe { field::get(self.0.as_ptr(), offset) }
    }

    #[inline]
    fn last_segment(&self) -> *const sys::rte_mbuf {
        let mut seg: *const sys::rte_mbuf = self.0.as_ptr();
        loop {
            // SAFETY: `seg` is the head (valid by the type invariant) or a `next` link of the
            // owned chain, which points to a valid segment owned with it.
            let next: *mut sys::rte_mbuf = unsafe { field::get(seg, field::NEXT) };
            if next.is_null() {
                return seg;
            }
            seg = next;
        }
    }

    /// The bytes of the first segment (the whole packet when [`is_contiguous`](Self::is_contiguous)).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let addr: *mut std::ffi::c_void = self.get(field::BUF_ADDR);
        let (off, len): (u16, u16) = (self.get(field::DATA_OFF), self.get(field::DATA_LEN));
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer (DPDK keeps
        // data_off + data_len <= buf_len); the buffer is ours and borrowed immutably with self.
        unsafe {
            std::slice::from_raw_parts(addr.cast::<u8>().add(usize::from(off)), usize::from(len))
        }
    }

    /// The bytes of the first segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let addr: *mut std::ffi::c_void = self.get(field::BUF_ADDR);
        let (off, len): (u16, u16) = (self.get(field::DATA_OFF), self.get(field::DATA_LEN));
        // SAFETY: as in `data`; exclusive ownership (refcnt 1, direct buffer) and `&mut self`
        // make this the only live reference to these bytes.
        unsafe {
            std::slice::from_raw_parts_mut(
                addr.cast::<u8>().add(usize::from(off)),
                usize::from(len),
            )
        }
    }

    /// Total packet length over all segments (`pkt_len`).
    #[inline]
    pub fn len(&self) -> usize {
        self.get::<u32>(field::PKT_LEN) as usize
    }

    /// True when the packet has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the first segment (`data_len`), i.e. `data().len()`.
    #[inline]
    pub fn data_len(&self) -> usize {
        usize::from(self.get::<u16>(field::DATA_LEN))
    }

    /// Free bytes in front of the data (first segment).
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.get::<u16>(field::DATA_OFF))
    }

    /// Free bytes after the data (last segment, where [`append`](Self::append) grows).
    #[inline]
    pub fn tailroom(&self) -> usize {
        let seg = self.last_segment();
        // SAFETY: `seg` is a valid segment of the owned chain; the offsets are `field`'s.
        let (buf_len, off, len): (u16, u16, u16) = unsafe {
            (
                field::get(seg, field::BUF_LEN),
                field::get(seg, field::DATA_OFF),
                field::get(seg, field::DATA_LEN),
            )
        };
        usize::from(buf_len)
            .saturating_sub(usize::from(off))
            .saturating_sub(usize::from(len))
    }

    /// Grow the packet by `n` bytes at the front (into the headroom). The new bytes are
    /// uninitialised garbage from earlier use: write them.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Result<(), NoRoom> {
        let available = self.headroom();
        let len = fits("prepend", n, available)?;
        // SAFETY: valid owned mbuf; len <= headroom, so DPDK moves data_off back within the buffer.
        let p = unsafe { sys::rvs_pktmbuf_prepend(self.0.as_ptr(), len) };
        debug_assert!(!p.is_null());
        Ok(())
    }

    /// Remove `n` bytes from the front (first segment only).
    #[inline]
    pub fn adj(&mut self, n: usize) -> Result<(), NoRoom> {
        let available = self.data_len();
        let len = fits("adj", n, available)?;
        // SAFETY: valid owned mbuf; len <= data_len of the first segment, which is all
        // rte_pktmbuf_adj requires.
        let p = unsafe { sys::rvs_pktmbuf_adj(self.0.as_ptr(), len) };
        debug_assert!(!p.is_null());
        Ok(())
    }

    /// Grow the packet by `n` bytes at the end (into the last segment's tailroom). The new bytes
    /// are uninitialised garbage: write them.
    #[inline]
    pub fn append(&mut self, n: usize) -> Result<(), NoRoom> {
        self.append_raw(n).map(|_| ())
    }

    fn append_raw(&mut self, n: usize) -> Result<*mut u8, NoRoom> {
        let available = self.tailroom();
        let len = fits("append", n, available)?;
        // SAFETY: valid owned mbuf; len <= tailroom of the last segment, so DPDK succeeds.
        let p = unsafe { sys::rvs_pktmbuf_append(self.0.as_ptr(), len) };
        debug_assert!(!p.is_null());
        Ok(p.cast())
    }

    /// Append a copy of `bytes` at the end of the packet.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<(), NoRoom> {
        let dst = self.append_raw(bytes.len())?;
        // SAFETY: `append_raw` returned the start of `bytes.len()` bytes just added to the
        // owned buffer; the source is a distinct Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }

    /// Remove `n` bytes from the end (last segment only).
    #[inline]
    pub fn trim(&mut self, n: usize) -> Result<(), NoRoom> {
        // SAFETY: the last segment is a valid segment of the owned chain.
        let last_len: u16 = unsafe { field::get(self.last_segment(), field::DATA_LEN) };
        let available = usize::from(last_len);
        let len = fits("trim", n, available)?;
        // SAFETY: valid owned mbuf; len <= data_len of the last segment, so DPDK succeeds.
        let ret = unsafe { sys::rvs_pktmbuf_trim(self.0.as_ptr(), len) };
        debug_assert_eq!(ret, 0);
        Ok(())
    }

    /// Input port the packet was received on (`port` field).
    pub fn port(&self) -> u16 {
        self.get(field::PORT)
    }

    /// Set the input port (`port` field): the runtime records the receiving port on a packet
    /// it hands to another lcore.
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: the pointer is valid and exclusively ours (type invariant); `&mut self`
        // excludes any other access through this handle while the field is written.
        unsafe { field::set(self.0.as_ptr(), field::PORT, port) };
    }

    /// Number of segments in the chain.
    pub fn nb_segs(&self) -> u16 {
        self.get(field::NB_SEGS)
    }

    /// True for a single-segment packet: [`data`](Self::data) is then the whole frame.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.get::<*mut sys::rte_mbuf>(field::NEXT).is_null()
    }

    /// Offload flags (`ol_flags`, `RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.get(field::OL_FLAGS)
    }

    /// The NIC's receive checksum verdicts (IPv4 header, L4), each `Some(true)` when it
    /// verified the checksum good, `Some(false)` bad, `None` when it did not check or could not
    /// (`RTE_MBUF_F_RX_{IP,L4}_CKSUM_{UNKNOWN,NONE}`: verify in software).
    #[inline]
    pub fn rx_checksums(&self) -> (Option<bool>, Option<bool>) {
        const IP_BAD: u64 = 1 << 4;
        const IP_GOOD: u64 = 1 << 7;
        const L4_BAD: u64 = 1 << 3;
        const L4_GOOD: u64 = 1 << 8;
        let f = self.ol_flags();
        let verdict = |bad: u64, good: u64| match (f & bad != 0, f & good != 0) {
            (false, true) => Some(true),
            (true, false) => Some(false),
            _ => None,
        };
        (verdict(IP_BAD, IP_GOOD), verdict(L4_BAD, L4_GOOD))
    }

    /// The RSS hash the NIC computed, if it stored one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        if self.ol_flags() & RX_RSS_HASH == 0 {
            return None;
        }
        // SAFETY: valid mbuf; reading the hash union as `rss` is what the flag announces.
        Some(unsafe { sys::rvs_pktmbuf_rss_hash(self.0.as_ptr()) })
    }

    /// Give up ownership: the caller must eventually free the mbuf (e.g. via [`Mbuf::from_raw`]).
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let ptr = self.0.as_ptr();
        std::mem::forget(self);
        ptr
    }

    /// Take ownership of a raw mbuf.
    ///
    /// # Safety
    /// `ptr` must be a valid mbuf (head of its chain) that the caller owns exclusively
    /// (reference count 1, direct buffer, no other pointer used afterwards), from a mempool that
    /// stays alive while the returned `Mbuf` lives. Returns `None` for NULL.
    pub unsafe fn from_raw(ptr: *mut sys::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(ptr).map(Mbuf)
    }

    /// The raw pointer, still owned by `self`.
    pub fn as_ptr(&self) -> *const sys::rte_mbuf {
        self.0.as_ptr()
    }
}

/// Check `requested <= available` and convert to DPDK's `u16` length.
fn fits(op: &'static str, requested: usize, available: usize) -> Result<u16, NoRoom> {
    let err = NoRoom {
        op,
        requested,
        available,
    };
    if requested > available {
        return Err(err);
    }
    u16::try_from(requested).map_err(|_| err)
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: valid mbuf owned exclusively by us (type invariant), freed exactly once.
        unsafe { sys::rvs_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("nb_segs", &self.nb_segs())
            .field("port", &self.port())
            .finish()
    }
}

impl AsRef<[u8]> for Mbuf {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl AsMut<[u8]> for Mbuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }
}

/// On the tested DPDK (22.11, where bindgen sees these fields directly), the offsets name the
/// very fields a plain field access reads.
#[cfg(all(test, dpdk_tested))]
mod tests {
    use super::field;
    use crate::sys::rte_mbuf;
    use std::mem::offset_of;

    #[test]
    fn offsets_are_the_fields() {
        let cases = [
            (field::BUF_ADDR, offset_of!(rte_mbuf, buf_addr)),
            (field::DATA_OFF, offset_of!(rte_mbuf, data_off)),
            (field::NB_SEGS, offset_of!(rte_mbuf, nb_segs)),
            (field::PORT, offset_of!(rte_mbuf, port)),
            (field::OL_FLAGS, offset_of!(rte_mbuf, ol_flags)),
            (field::PKT_LEN, offset_of!(rte_mbuf, pkt_len)),
            (field::DATA_LEN, offset_of!(rte_mbuf, data_len)),
            (field::BUF_LEN, offset_of!(rte_mbuf, buf_len)),
            (field::NEXT, offset_of!(rte_mbuf, next)),
        ];
        for (i, (constant, actual)) in cases.into_iter().enumerate() {
            assert_eq!(constant as usize, actual, "field {i}");
        }
        // The port, data_off and data_len fields are where DPDK documents them: the first
        // cache line, right after buf_addr and buf_iova.
        assert_eq!(field::DATA_OFF as usize, 16);
    }
}
