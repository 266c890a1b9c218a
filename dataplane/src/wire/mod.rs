//! Byte-level views of the headers the director reads and writes, and the Internet checksums.
//!
//! Everything here follows smoltcp's `wire` split: a `Packet<T: AsRef<[u8]>>` (a `Frame` for
//! Ethernet) is a typed view over borrowed or owned bytes, and a small `Repr` is plain data that
//! can be `parse`d from a checked view or `emit`ted into one.
//!
//! Invariants:
//! - `new_checked` validates the buffer once: every fixed field fits and every length field
//!   (IHL, total length, TCP data offset, UDP length) is consistent with the buffer. After that no
//!   getter or setter of that view can panic, whatever the bytes say. Variable-length slices
//!   (options, payload) are additionally clamped to the buffer, so even a setter that changes a
//!   length field later cannot make an accessor panic.
//! - `new_unchecked` skips the check; the caller promises it already made it (for example on a
//!   header it has just emitted). On a short buffer its fixed-field accessors may panic.
//! - Views never allocate and never read a clock; they carry no state besides the buffer.
//!
//! Errors are one small enum, [`Error`], which the worker maps to a `DropReason` per layer:
//! [`Error::Truncated`] (buffer shorter than the fixed header), [`Error::Malformed`] (a field
//! holds an impossible value: IP version, IHL or data offset below 5), [`Error::BadLength`] (a
//! length field disagrees with the buffer), [`Error::BadChecksum`], [`Error::Unsupported`] (valid
//! but outside what rvs handles, e.g. ARP for a non-Ethernet/IPv4 pair).

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use ethernet::{EtherType, MacAddr};
pub use ipv4::IpProtocol;

/// Why a header could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the fixed part of the header.
    #[error("header truncated: the buffer is shorter than the fixed header")]
    Truncated,
    /// A field holds a value the protocol does not allow (IP version, IHL or data offset < 5).
    #[error("malformed header: a field holds a value the protocol does not allow")]
    Malformed,
    /// A length field (IHL, total length, data offset, UDP length) disagrees with the buffer.
    #[error("length field inconsistent with the buffer")]
    BadLength,
    /// The checksum does not verify.
    #[error("bad checksum")]
    BadChecksum,
    /// Well-formed, but not a kind rvs handles (e.g. ARP for other than Ethernet/IPv4).
    #[error("unsupported header variant")]
    Unsupported,
}

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, Error>;

/// Read a big-endian u16 at `at` (callers have checked the bounds).
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Read a big-endian u32 at `at` (callers have checked the bounds).
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn ipv4_at(b: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
pub(crate) mod fixtures_v6;
