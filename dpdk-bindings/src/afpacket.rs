//! The kernel half of DPDK's `net_af_packet` PMD: what its packet sockets' receive rings drop.
//!
//! The af_packet PMD receives through one `PACKET_MMAP` (TPACKET_V2) socket per queue pair.
//! When the poller falls behind and the ring is full, the kernel drops the frame and counts it
//! in the socket (`tp_drops`), which only `getsockopt(SOL_PACKET, PACKET_STATISTICS)` reveals.
//! DPDK 22.11's PMD never asks, so its `imissed` stays 0 while frames are lost: the losses that
//! an operator could not explain. [`KernelRings`] finds the PMD's sockets among this process's
//! file descriptors (`/proc/self/fd` against the inodes `/proc/self/net/packet` lists for the
//! port's interface index) and reads their statistics. The kernel resets them on every read, so
//! the drops are accumulated here; a newer PMD that reads them too splits the same count between
//! its `imissed` and this one, and the port reports the sum ([`crate::Port::stats`]).
//!
//! Each descriptor is checked to still be the same socket (its inode) before it is read, so a
//! descriptor the PMD closed and the process reused is never queried.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// `SOL_PACKET` / `PACKET_STATISTICS` (linux/if_packet.h).
const SOL_PACKET: libc::c_int = 263;
const PACKET_STATISTICS: libc::c_int = 6;

/// The packet sockets of one af_packet port, and the drops read from them so far.
#[derive(Debug)]
pub(crate) struct KernelRings {
    /// (descriptor, socket inode)
    socks: Vec<(libc::c_int, u64)>,
    drops: AtomicU64,
}

impl KernelRings {
    /// The packet sockets bound to interface `if_index` in this process's network namespace,
    /// `None` when there is none (not an af_packet port, or `/proc` is not readable).
    pub(crate) fn find(if_index: u32) -> Option<KernelRings> {
        let table = std::fs::read_to_string("/proc/self/net/packet").ok()?;
        let inodes = packet_inodes(&table, if_index);
        if inodes.is_empty() {
            return None;
        }
        let mut socks = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
            let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            if let Some(ino) = socket_inode(target.to_str().unwrap_or_default())
                && inodes.contains(&ino)
            {
                socks.push((fd, ino));
            }
        }
        socks.sort_unstable();
        (!socks.is_empty()).then_some(KernelRings {
            socks,
            drops: AtomicU64::new(0),
        })
    }

    /// Frames the rings dropped since the port was configured.
    pub(crate) fn drops(&self) -> u64 {
        let mut new = 0u64;
        for &(fd, ino) in &self.socks {
            if let Some(d) = read_drops(fd, ino) {
                new += d;
            }
        }
        self.drops.fetch_add(new, Ordering::Relaxed) + new
    }

    /// Number of sockets found (one per queue pair).
    pub(crate) fn sockets(&self) -> usize {
        self.socks.len()
    }
}

/// Drops counted by socket `fd` since the last read, if `fd` is still the socket `ino`.
fn read_drops(fd: libc::c_int, ino: u64) -> Option<u64> {
    // SAFETY: `st` is a valid out-pointer for fstat; an invalid or closed descriptor is an error
    // return, not undefined behaviour.
    let same = unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_ino == ino
    };
    if !same {
        return None;
    }
    // struct tpacket_stats { tp_packets, tp_drops } (TPACKET_V2; V3 appends tp_freeze_q_cnt).
    let mut stats = [0u32; 3];
    let mut len = core::mem::size_of_val(&stats) as libc::socklen_t;
    // SAFETY: `stats`/`len` are valid for writes of `len` bytes; `fd` was just checked to be
    // the packet socket we found, and the kernel writes at most `len` bytes.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            SOL_PACKET,
            PACKET_STATISTICS,
            stats.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (ret == 0 && len >= 8).then_some(u64::from(stats[1]))
}

/// Inodes of the packet sockets bound to `if_index` in a `/proc/net/packet` listing
/// (`sk RefCnt Type Proto Iface R Rmem User Inode`).
fn packet_inodes(table: &str, if_index: u32) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cols: HashMap<&str, usize> = HashMap::new();
    for (n, line) in table.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if n == 0 {
            cols = fields.iter().enumerate().map(|(i, f)| (*f, i)).collect();
            continue;
        }
        let (Some(&iface), Some(&inode)) = (cols.get("Iface"), cols.get("Inode")) else {
            return out;
        };
        let parsed = (
            fields.get(iface).and_then(|f| f.parse::<u32>().ok()),
            fields.get(inode).and_then(|f| f.parse::<u64>().ok()),
        );
        if let (Some(i), Some(ino)) = parsed
            && i == if_index
        {
            out.push(ino);
        }
    }
    out
}

/// The inode of a `socket:[N]` link target.
fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_table_by_interface() {
        let t = "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n\
                 ffff8f0c01a4c000 3      3    0003   2     1 0      0      123456\n\
                 ffff8f0c01a4d000 3      3    0003   3     1 0      0      123457\n\
                 ffff8f0c01a4e000 3      3    0003   2     1 0      0      123458\n";
        assert_eq!(packet_inodes(t, 2), vec![123456, 123458]);
        assert_eq!(packet_inodes(t, 3), vec![123457]);
        assert!(packet_inodes(t, 4).is_empty());
        assert!(packet_inodes("garbage\n1 2 3\n", 2).is_empty());
    }

    #[test]
    fn socket_link_targets() {
        assert_eq!(socket_inode("socket:[98765]"), Some(98765));
        assert_eq!(socket_inode("pipe:[98765]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
    }

    /// A real packet socket of this process, bound to loopback: found, and its ring statistics
    /// read (needs CAP_NET_RAW; skipped without it).
    #[test]
    fn finds_and_reads_own_packet_socket() {
        // SAFETY: plain socket/bind/close calls on a descriptor this test owns.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from((libc::ETH_P_ALL as u16).to_be()),
            )
        };
        if fd < 0 {
            eprintln!("skipped: no CAP_NET_RAW");
            return;
        }
        // SAFETY: zeroed sockaddr_ll is valid; the fields set are plain integers.
        let bound = unsafe {
            let mut sll: libc::sockaddr_ll = core::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = 1; // lo
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                core::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(bound, 0);
        let rings = KernelRings::find(1).expect("the loopback packet socket is found");
        assert!(rings.socks.iter().any(|&(f, _)| f == fd));
        assert_eq!(rings.drops(), 0);
        // SAFETY: closing the descriptor this test opened.
        unsafe { libc::close(fd) };
        // A closed descriptor is no longer read (its inode check fails).
        assert_eq!(rings.drops(), 0);
    }
}
