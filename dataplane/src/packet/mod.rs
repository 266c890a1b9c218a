//! The device seam: how the dataplane reaches packet bytes.
//!
//! [`PacketBuf`] is implemented by the daemon's mbuf newtype (DPDK) and by [`HeapBuf`] here, so
//! every forwarding decision is testable on plain heap buffers. A buffer is one contiguous frame
//! starting at the Ethernet header (the runtime refuses chained mbufs before they reach us).

mod heap;

pub use heap::HeapBuf;

/// Not enough headroom or tailroom, or not enough data to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("packet buffer has no room for this operation")]
pub struct NoRoom;

/// One contiguous packet frame with room to grow at both ends.
pub trait PacketBuf {
    /// The frame bytes (Ethernet header first).
    fn data(&self) -> &[u8];
    /// The frame bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes before the frame.
    fn headroom(&self) -> usize;
    /// Free bytes after the frame.
    fn tailroom(&self) -> usize;
    /// Grow the frame by `n` bytes at the front (contents of the new bytes unspecified).
    fn prepend(&mut self, n: usize) -> Result<(), NoRoom>;
    /// Remove `n` bytes from the front.
    fn adj(&mut self, n: usize) -> Result<(), NoRoom>;
    /// Grow the frame by `n` bytes at the end (contents of the new bytes unspecified).
    fn append(&mut self, n: usize) -> Result<(), NoRoom>;
    /// Remove `n` bytes from the end.
    fn trim(&mut self, n: usize) -> Result<(), NoRoom>;

    /// What the NIC said about the frame's checksums on receive (default: nothing).
    fn rx_checksum(&self) -> crate::parse::RxChecksum {
        crate::parse::RxChecksum::default()
    }

    /// Frame length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }

    /// True for a zero-length frame.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Set the frame length to `len`, growing or shrinking at the end.
    fn set_len(&mut self, len: usize) -> Result<(), NoRoom> {
        let cur = self.len();
        if len >= cur {
            self.append(len - cur)
        } else {
            self.trim(cur - len)
        }
    }
}
