//! A heap-backed [`PacketBuf`] for tests, fuzzing and the in-memory harness.

use super::{NoRoom, PacketBuf};

/// Headroom a fresh [`HeapBuf`] gets, as a DPDK mbuf does (`RTE_PKTMBUF_HEADROOM`).
pub const DEFAULT_HEADROOM: usize = 128;
/// Total buffer size of a fresh [`HeapBuf`] (headroom included), as DPDK's default data room.
pub const DEFAULT_CAPACITY: usize = 2048 + DEFAULT_HEADROOM;

/// A packet in a fixed-size heap buffer, with headroom and tailroom like an mbuf.
#[derive(Clone, PartialEq, Eq)]
pub struct HeapBuf {
    storage: Vec<u8>,
    start: usize,
    end: usize,
}

impl core::fmt::Debug for HeapBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapBuf")
            .field("headroom", &self.start)
            .field("len", &(self.end - self.start))
            .finish()
    }
}

impl HeapBuf {
    /// An empty frame with the default headroom and capacity.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_HEADROOM, DEFAULT_CAPACITY)
    }

    /// An empty frame with `headroom` free bytes in front and `capacity` bytes in all.
    pub fn with_capacity(headroom: usize, capacity: usize) -> Self {
        assert!(headroom <= capacity, "headroom larger than capacity");
        HeapBuf {
            storage: vec![0; capacity],
            start: headroom,
            end: headroom,
        }
    }

    /// A frame holding a copy of `bytes`, with the default headroom. Frames longer than the
    /// default capacity get a larger buffer.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let cap = DEFAULT_CAPACITY.max(DEFAULT_HEADROOM + bytes.len());
        let mut b = Self::with_capacity(DEFAULT_HEADROOM, cap);
        b.storage[b.start..b.start + bytes.len()].copy_from_slice(bytes);
        b.end = b.start + bytes.len();
        b
    }
}

impl Default for HeapBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBuf for HeapBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }

    fn headroom(&self) -> usize {
        self.start
    }

    fn tailroom(&self) -> usize {
        self.storage.len() - self.end
    }

    fn prepend(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.start {
            return Err(NoRoom);
        }
        self.start -= n;
        Ok(())
    }

    fn adj(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.end - self.start {
            return Err(NoRoom);
        }
        self.start += n;
        Ok(())
    }

    fn append(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.tailroom() {
            return Err(NoRoom);
        }
        self.end += n;
        Ok(())
    }

    fn trim(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.end - self.start {
            return Err(NoRoom);
        }
        self.end -= n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_and_shrink_at_both_ends() {
        let mut b = HeapBuf::from_bytes(&[1, 2, 3, 4]);
        assert_eq!(b.headroom(), DEFAULT_HEADROOM);
        b.prepend(2).unwrap();
        b.data_mut()[..2].copy_from_slice(&[9, 9]);
        assert_eq!(b.data(), &[9, 9, 1, 2, 3, 4]);
        b.adj(3).unwrap();
        b.trim(1).unwrap();
        assert_eq!(b.data(), &[2, 3]);
        assert_eq!(b.adj(3), Err(NoRoom));
        assert_eq!(b.prepend(DEFAULT_HEADROOM + 10), Err(NoRoom));
        b.set_len(5).unwrap();
        assert_eq!(b.len(), 5);
    }
}
