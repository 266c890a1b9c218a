//! The next-hop cache: route lookup and neighbour resolution of a destination address, kept for
//! the packets that follow (a worker sends most of its packets to a few real servers and
//! gateways).
//!
//! Each entry is stamped with the worker's epoch; the worker starts a new epoch whenever what
//! the entry was computed from may have changed: new tables (routes, addresses, ports), any ARP
//! frame handled or learnt, any neighbour-table change made by the control plane, a packet that
//! had to wait for a neighbour, and every tick (so a neighbour's reachability timer and its
//! "used" time are looked at again at least once per tick, as they would be per packet). An
//! entry of an older epoch is a miss. Only neighbours resolved without a pending request are
//! cached.

use std::net::Ipv4Addr;

use crate::l3::addr::PortId;
use crate::wire::MacAddr;

/// Entries (direct-mapped by address).
const SLOTS: usize = 256;

/// Where packets for one destination address go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NextHop {
    pub port: PortId,
    /// The egress port's MTU.
    pub mtu: u16,
    /// The neighbour's MAC (the Ethernet destination).
    pub mac: MacAddr,
    /// The egress port's MAC (the Ethernet source).
    pub src_mac: MacAddr,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    dst: Ipv4Addr,
    epoch: u32,
    hop: NextHop,
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct NextHopCache {
    slots: Box<[Slot]>,
    /// Starts at 1, so the zeroed slots (epoch 0) are misses.
    epoch: u32,
}

impl NextHopCache {
    pub fn new() -> Self {
        let empty = Slot {
            dst: Ipv4Addr::UNSPECIFIED,
            epoch: 0,
            hop: NextHop {
                port: 0,
                mtu: 0,
                mac: MacAddr::ZERO,
                src_mac: MacAddr::ZERO,
            },
        };
        NextHopCache {
            slots: vec![empty; SLOTS].into_boxed_slice(),
            epoch: 1,
        }
    }

    /// Forget every entry.
    #[inline]
    pub fn invalidate(&mut self) {
        self.epoch = self.epoch.wrapping_add(1).max(1);
        if self.epoch == 1 {
            // Wrapped: old stamps could look current again.
            self.slots.iter_mut().for_each(|s| s.epoch = 0);
        }
    }

    #[inline]
    fn index(dst: Ipv4Addr) -> usize {
        (dst.to_bits().wrapping_mul(0x9E37_79B1) >> 24) as usize % SLOTS
    }

    #[inline]
    pub fn get(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let s = self.slots.get(Self::index(dst))?;
        (s.epoch == self.epoch && s.dst == dst).then_some(s.hop)
    }

    #[inline]
    pub fn insert(&mut self, dst: Ipv4Addr, hop: NextHop) {
        let epoch = self.epoch;
        if let Some(s) = self.slots.get_mut(Self::index(dst)) {
            *s = Slot { dst, epoch, hop };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_until_invalidated_and_never_across_addresses() {
        let mut c = NextHopCache::new();
        let a = Ipv4Addr::new(198, 18, 1, 11);
        let hop = NextHop {
            port: 1,
            mtu: 1500,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
        };
        assert_eq!(c.get(a), None);
        assert_eq!(c.get(Ipv4Addr::UNSPECIFIED), None);
        c.insert(a, hop);
        assert_eq!(c.get(a), Some(hop));
        assert_eq!(c.get(Ipv4Addr::new(198, 18, 1, 12)), None);
        c.invalidate();
        assert_eq!(c.get(a), None);
        c.insert(a, hop);
        c.epoch = u32::MAX;
        c.invalidate();
        assert_eq!(c.epoch, 1);
        assert_eq!(c.get(a), None);
    }
}
