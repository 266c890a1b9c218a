//! The mbuf newtype through which the dataplane sees DPDK packets.
//!
//! `dataplane::packet::PacketBuf` is the dataplane's device seam; DPDK's `Mbuf` lives in
//! dpdk-bindings. Neither crate knows the other, so the daemon joins them here. Only contiguous
//! (single-segment) mbufs become a `Packet`: the poll loop drops chained ones with a counter
//! before they reach the dataplane.

use dataplane::packet::{NoRoom, PacketBuf};
use dataplane::parse::{RxChecksum, Verdict};
use dpdk_bindings::Mbuf;

/// A single-segment DPDK packet, as the dataplane sees it.
#[derive(Debug)]
pub struct Packet(pub Mbuf);

impl Packet {
    /// Wrap `m` if it is one contiguous segment, else give it back.
    pub fn new(m: Mbuf) -> Result<Packet, Mbuf> {
        if m.is_contiguous() {
            Ok(Packet(m))
        } else {
            Err(m)
        }
    }

    pub fn into_mbuf(self) -> Mbuf {
        self.0
    }
}

impl PacketBuf for Packet {
    #[inline]
    fn rx_checksum(&self) -> RxChecksum {
        let v = |x: Option<bool>| match x {
            Some(true) => Verdict::Good,
            Some(false) => Verdict::Bad,
            None => Verdict::Unknown,
        };
        let (ip, l4) = self.0.rx_checksums();
        RxChecksum {
            ipv4: v(ip),
            l4: v(l4),
        }
    }
    #[inline]
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.0.headroom()
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.0.tailroom()
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Result<(), NoRoom> {
        self.0.prepend(n).map_err(|_| NoRoom)
    }
    #[inline]
    fn adj(&mut self, n: usize) -> Result<(), NoRoom> {
        self.0.adj(n).map_err(|_| NoRoom)
    }
    #[inline]
    fn append(&mut self, n: usize) -> Result<(), NoRoom> {
        self.0.append(n).map_err(|_| NoRoom)
    }
    #[inline]
    fn trim(&mut self, n: usize) -> Result<(), NoRoom> {
        self.0.trim(n).map_err(|_| NoRoom)
    }
}
