//! The memory ceiling (issue 11): how many random cache lines one core reads per second over a
//! buffer the size of the 1M-connection table, with software prefetch [`PREFETCH_AHEAD`] reads
//! ahead and the buffer on transparent huge pages where the kernel allows it. A packet of an
//! established flow needs at least [`LINES_PER_PACKET`] lines the cache does not hold (the
//! connection index bucket and the record), so `reads/s / 2` is the packet rate memory allows
//! a core; every established case is reported as a ratio to it (and to the io-forward loop).
//!
//! The buffer is allocated with `Vec::with_capacity` (fresh, untouched pages), advised with
//! `dpdk_bindings::advise_hugepages` and only then filled, so its 2 MiB extents fault in as
//! huge pages in THP `madvise` (or `always`) mode. `AnonHugePages` of `/proc/self/smaps_rollup`
//! before and after the fill says how much of it the kernel actually backed with huge pages.

use dpdk_bindings::{prefetch, rdtsc};

use super::report::Limits;
use super::traffic::Rng;

/// Reads issued this far ahead of use (the C reference loop used 16); 1024 (the reads
/// per clock check) must be a multiple of it.
pub const PREFETCH_AHEAD: u64 = 16;
/// Cache lines one packet needs from memory: connection index bucket + connection record.
pub const LINES_PER_PACKET: f64 = 2.0;
/// Buffer size when the connection table cannot be built to ask it: 128 MiB, the order of the
/// 1M-connection table (105.6 MB in the README's run before issue 11).
pub const FALLBACK_BYTES: usize = 128 << 20;
const LINE: usize = 64;
const WORDS_PER_LINE: usize = LINE / 8;

/// The selected mode of `/sys/kernel/mm/transparent_hugepage/enabled` ("always", "madvise",
/// "never"), or "unknown".
pub fn thp_mode() -> String {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .ok()
        .and_then(|s| {
            let a = s.find('[')?;
            let b = s[a..].find(']')?;
            Some(s[a + 1..a + b].to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `AnonHugePages` of this process in bytes.
fn anon_huge_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The buffer size: the 1M-connection table's own accounting, and how it was obtained.
pub fn table_bytes() -> (usize, String) {
    match dataplane::conn::ConnTable::<dataplane::conn::ConnKey>::new(1_000_000, 0) {
        Ok(t) => (t.memory_bytes(), "ConnTable::new(1M).memory_bytes()".into()),
        Err(_) => (FALLBACK_BYTES, "fallback 128 MiB".into()),
    }
}

/// Measure: `warm` TSC cycles of reads not counted, then `cycles` counted.
pub fn measure(hz: u64, warm: u64, cycles: u64) -> Limits {
    let (bytes, buffer_is) = table_bytes();
    let words = (bytes / 8).max(WORDS_PER_LINE * 1024);
    let mut buf: Vec<u64> = Vec::with_capacity(words);
    let thp_advised = dpdk_bindings::advise_hugepages(buf.as_ptr().cast::<u8>(), words * 8);
    let huge0 = anon_huge_bytes();
    buf.extend((0..words as u64).map(|w| w.wrapping_mul(0x2545_f491_4f6c_dd1d)));
    let huge_bytes = anon_huge_bytes().saturating_sub(huge0);
    let lines = (words / WORDS_PER_LINE) as u64;
    let buf = &buf[..];

    // The next PREFETCH_AHEAD lines (word indices), already prefetched: each step reads the
    // oldest, draws a new random line (xorshift64*, one multiply to scale) and prefetches it.
    let mut rng = Rng::new(0x11_2026);
    let mut draw = move || rng.below(lines) as usize * WORDS_PER_LINE;
    let mut ahead = [0usize; PREFETCH_AHEAD as usize];
    for a in ahead.iter_mut() {
        *a = draw();
        prefetch(&buf[*a]);
    }
    let mut sum = 0u64;
    let mut i = 0u64;
    let mut measured_from = None;
    let start = rdtsc();
    loop {
        // 1024 reads per clock check keeps rdtsc out of the per-read cost.
        for k in 0..1024 {
            let slot = k % ahead.len();
            let cur = ahead[slot];
            let next = draw();
            prefetch(&buf[next]);
            ahead[slot] = next;
            sum = sum.wrapping_add(buf[cur]);
        }
        i += 1024;
        let t = rdtsc();
        match measured_from {
            None if t.wrapping_sub(start) >= warm => {
                measured_from = Some((t, i));
            }
            Some((t1, i1)) if t.wrapping_sub(t1) >= cycles => {
                let reads = i - i1;
                let secs = t.wrapping_sub(t1) as f64 / hz.max(1) as f64;
                let reads_per_sec = reads as f64 / secs;
                std::hint::black_box(sum);
                return Limits {
                    buffer_bytes: words * 8,
                    buffer_is,
                    prefetch_distance: PREFETCH_AHEAD as usize,
                    reads,
                    reads_per_sec,
                    lines_per_packet: LINES_PER_PACKET,
                    mpps_ceiling: reads_per_sec / LINES_PER_PACKET / 1e6,
                    thp_enabled: thp_mode(),
                    thp_advised,
                    huge_bytes,
                };
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thp_mode_is_one_word() {
        let m = thp_mode();
        assert!(!m.is_empty() && !m.contains(' ') && !m.contains('['), "{m}");
    }
}
