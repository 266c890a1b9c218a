//! DPDK's software Toeplitz hash (`rte_softrss`), for checking rvs's own implementation
//! (`dataplane::steer`) against the one NIC drivers are validated with.

use crate::sys;

/// `rte_softrss` over `input` (network byte order, a multiple of 4 bytes, at most 36) with a
/// 40-byte `key`. Returns `None` for an input DPDK cannot take.
pub fn softrss(input: &[u8], key: &[u8; 40]) -> Option<u32> {
    if input.len() % 4 != 0 || input.len() > 36 {
        return None;
    }
    // rte_softrss takes the tuple as host-order 32-bit words.
    let words: Vec<u32> = input
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let len = u32::try_from(words.len()).ok()?;
    // SAFETY: `words` holds `len` u32s and `key` 40 bytes, which covers `len * 32 + 32` key
    // bits for len <= 9; rte_softrss only reads them and keeps no pointer.
    Some(unsafe { sys::rvs_softrss(words.as_ptr(), len, key.as_ptr()) })
}
