//! Memory hints for the dataplane's large tables: cache-line prefetch and transparent huge
//! pages. Both are hints: neither changes what a program computes, only how fast.

/// Ask the CPU to bring the cache line holding `*r` into all cache levels (`prefetcht0`).
/// A prefetch never faults and never changes memory; on targets without one it does nothing.
#[inline(always)]
pub fn prefetch<T: ?Sized>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it does not fault on any address and writes nothing;
    // `r` is a live reference anyway. SSE is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (r as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Size of a transparent huge page on x86-64.
pub const HUGE_PAGE: usize = 2 << 20;

/// Advise the kernel to back `len` bytes at `addr` with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`), for memory not yet touched: the 2 MiB-aligned extents inside the
/// range then fault in as huge pages (needs THP in `always` or `madvise` mode). Returns whether
/// the kernel accepted the advice; ranges smaller than a huge page are left alone (false).
pub fn advise_hugepages(addr: *const u8, len: usize) -> bool {
    let start = (addr as usize).next_multiple_of(HUGE_PAGE);
    let end = (addr as usize).saturating_add(len) / HUGE_PAGE * HUGE_PAGE;
    if end <= start {
        return false;
    }
    // SAFETY: madvise with MADV_HUGEPAGE only changes how the kernel backs the pages of this
    // range (which lies inside the caller's allocation: rounded inwards to huge-page
    // boundaries); it never changes their contents or mapping, so no Rust reference is affected.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_is_a_no_op_for_results() {
        let v = vec![7u64; 1024];
        for x in &v {
            prefetch(x);
        }
        prefetch(&v[..]);
        assert!(v.iter().all(|&x| x == 7));
    }

    #[test]
    fn advice_is_taken_for_a_large_untouched_allocation() {
        let v: Vec<u8> = Vec::with_capacity(8 * HUGE_PAGE);
        // THP may be disabled on a machine ("never"): then madvise still succeeds on Linux
        // kernels built with THP; only the small range must be refused.
        let _ = advise_hugepages(v.as_ptr(), v.capacity());
        let small: Vec<u8> = Vec::with_capacity(4096);
        assert!(!advise_hugepages(small.as_ptr(), small.capacity()));
    }
}
