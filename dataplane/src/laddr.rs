//! FULLNAT local addresses (DPVS's `laddr`): the pools of source addresses per service, as the
//! control plane publishes them, and each worker's local-port allocator.
//!
//! Publication: [`LaddrTable`] maps a service to its local addresses (`ipvsadm --add-laddr -t
//! VIP:PORT -z LIP -F PORT`), each with the port it lives on; the director answers ARP for a LIP
//! on that port. It is part of the worker tables and, like them, immutable once published. The
//! per-address counters ([`LaddrStats`]) are shared `Arc`s kept across publications, one slot per
//! worker, single writer (load + store, no read-modify-write).
//!
//! Allocation ([`LportAlloc`], one per worker, no sharing):
//! - Ports 1024..=65535 of a LIP are **partitioned between workers by residue**: worker `i` of
//!   `n` hands out only lports with `lport % n == i`. A reply from a real server to LIP:lport thus
//!   names its owning worker by `lport % n`, which is what flow steering (docs/architecture.md section 3,
//!   issue 6) relies on to send it to the worker holding the connection.
//! - One pool per `(LIP, RIP, rport)`: the same lport is reused towards different real servers,
//!   since the out-tuple `RIP:rport -> LIP:lport` stays unique. A pool is a cursor over
//!   never-used ports plus a FIFO of released ones: allocation and release are O(1), memory grows
//!   only with ports actually used. Never-used ports go first, and a released port goes to the
//!   back of the queue: the real server may still hold the old connection on `LIP:lport` in
//!   TIME_WAIT (it usually closes first), and a SYN from another client's connection on that
//!   tuple, with unrelated sequence numbers and timestamps, is answered with an ACK for the old
//!   one instead of a SYN-ACK (the client then resets and retries a second later). So a port is
//!   reused as late as possible: after every port of the pool has been used once, and then
//!   oldest release first.
//! - A port is handed out to at most one live connection; on exhaustion the new connection is
//!   refused (`lport_exhausted`), never given a port in use.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::l3::addr::PortId;
use crate::service::ServiceId;
use crate::service::snapshot::FastBuildHasher;

/// Lowest local port handed out.
pub const LPORT_MIN: u16 = 1024;

/// Counters of one local address, one slot per worker.
#[derive(Debug)]
pub struct LaddrStats {
    conns: Box<[AtomicU64]>,
    conflicts: Box<[AtomicU64]>,
}

impl LaddrStats {
    pub fn new(n_workers: usize) -> LaddrStats {
        let n = n_workers.max(1);
        LaddrStats {
            conns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            conflicts: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Connections using the address, over all workers.
    pub fn conns(&self) -> u64 {
        self.conns.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Allocations that found a port in use or none free, over all workers.
    pub fn conflicts(&self) -> u64 {
        self.conflicts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    fn add(slots: &[AtomicU64], worker: usize, delta: i64) {
        if let Some(s) = slots.get(worker) {
            let v = s.load(Ordering::Relaxed);
            s.store(v.saturating_add_signed(delta), Ordering::Relaxed);
        }
    }
}

/// One local address of a service. A service's pool may mix IPv4 and IPv6 addresses; a FULLNAT
/// dest takes the addresses of its own family (an IPv6 dest IPv6 ones, an IPv4 dest, also a
/// NAT64 one under an IPv6 service, IPv4 ones).
#[derive(Debug, Clone)]
pub struct Laddr {
    pub ip: IpAddr,
    pub port: PortId,
    /// The port's name as configured (`-F`), for listings.
    pub ifname: String,
    pub stats: Arc<LaddrStats>,
}

/// Local addresses of every service, as published to the workers.
#[derive(Debug, Clone, Default)]
pub struct LaddrTable {
    n_workers: usize,
    by_service: HashMap<ServiceId, Vec<Laddr>, FastBuildHasher>,
    /// Every local address once (services may share one), for the per-packet questions.
    by_ip: HashMap<Ipv4Addr, (PortId, Arc<LaddrStats>), FastBuildHasher>,
    /// The same for the IPv6 local addresses.
    by_ip6: HashMap<Ipv6Addr, (PortId, Arc<LaddrStats>), FastBuildHasher>,
}

impl LaddrTable {
    /// A table for `n_workers` workers (the lport partition).
    pub fn new(n_workers: usize) -> LaddrTable {
        LaddrTable {
            n_workers: n_workers.max(1),
            by_service: HashMap::default(),
            by_ip: HashMap::default(),
            by_ip6: HashMap::default(),
        }
    }

    pub fn n_workers(&self) -> usize {
        self.n_workers.max(1)
    }

    /// Set a service's local addresses (an empty list removes the entry).
    pub fn set(&mut self, svc: ServiceId, laddrs: Vec<Laddr>) {
        if laddrs.is_empty() {
            self.by_service.remove(&svc);
        } else {
            self.by_service.insert(svc, laddrs);
        }
        self.by_ip.clear();
        self.by_ip6.clear();
        for l in self.by_service.values().flatten() {
            let v = || (l.port, l.stats.clone());
            match l.ip {
                IpAddr::V4(ip) => {
                    self.by_ip.entry(ip).or_insert_with(v);
                }
                IpAddr::V6(ip) => {
                    self.by_ip6.entry(ip).or_insert_with(v);
                }
            }
        }
    }

    /// A service's local addresses (empty when it has none).
    pub fn of(&self, svc: ServiceId) -> &[Laddr] {
        self.by_service.get(&svc).map_or(&[], Vec::as_slice)
    }

    /// Whether `ip` is a local address living on `port`.
    pub fn is_on(&self, port: PortId, ip: Ipv4Addr) -> bool {
        self.by_ip.get(&ip).is_some_and(|(p, _)| *p == port)
    }

    /// Whether `ip` is a local address of any service.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.by_ip.contains_key(&ip)
    }

    /// The counters of local address `ip` (any service), for the worker's accounting.
    pub fn stats(&self, ip: Ipv4Addr) -> Option<&Arc<LaddrStats>> {
        self.by_ip.get(&ip).map(|(_, s)| s)
    }

    /// Whether `ip` is an IPv6 local address living on `port`.
    pub fn is_on6(&self, port: PortId, ip: Ipv6Addr) -> bool {
        self.by_ip6.get(&ip).is_some_and(|(p, _)| *p == port)
    }

    /// Whether `ip` is an IPv6 local address of any service.
    pub fn contains6(&self, ip: Ipv6Addr) -> bool {
        !self.by_ip6.is_empty() && self.by_ip6.contains_key(&ip)
    }

    /// The counters of IPv6 local address `ip` (any service).
    pub fn stats6(&self, ip: Ipv6Addr) -> Option<&Arc<LaddrStats>> {
        self.by_ip6.get(&ip).map(|(_, s)| s)
    }

    /// Every IPv4 local address once, with its port and counters (listings, metrics).
    pub fn addresses(&self) -> impl Iterator<Item = (Ipv4Addr, PortId, &Arc<LaddrStats>)> + '_ {
        self.by_ip.iter().map(|(ip, (port, s))| (*ip, *port, s))
    }

    /// Every IPv6 local address once, with its port and counters.
    pub fn addresses6(&self) -> impl Iterator<Item = (Ipv6Addr, PortId, &Arc<LaddrStats>)> + '_ {
        self.by_ip6.iter().map(|(ip, (port, s))| (*ip, *port, s))
    }
}

#[derive(Debug, Default)]
struct Pool {
    /// Next never-used port (u32: may pass 65535).
    fresh: u32,
    /// The worker count the partition of `fresh` was computed for.
    n: u32,
    released: VecDeque<u16>,
}

impl Pool {
    fn new(worker: usize, n: usize, reserve: usize) -> Pool {
        Pool {
            fresh: LportAlloc::first_port(worker, n),
            n: n as u32,
            released: VecDeque::with_capacity(reserve),
        }
    }

    fn alloc(&mut self, worker: usize, n: usize) -> Option<u16> {
        // A pool prepared for another worker count and never used yet starts its partition
        // over (the count is fixed in rvsd; tests change it).
        if self.n != n as u32
            && self.released.is_empty()
            && self.fresh == LportAlloc::first_port(worker, self.n as usize)
        {
            self.fresh = LportAlloc::first_port(worker, n);
            self.n = n as u32;
        }
        if let Ok(p) = u16::try_from(self.fresh) {
            self.fresh += n as u32;
            return Some(p);
        }
        self.released.pop_front()
    }

    fn reserve(&mut self, n: usize, lport: u16) {
        if self.n != n as u32 {
            return;
        }
        let p = u32::from(lport);
        if p >= self.fresh {
            // The never-used ports skipped over become released (free) ones.
            let mut q = self.fresh;
            while q < p {
                if let Ok(q16) = u16::try_from(q) {
                    self.released.push_back(q16);
                }
                q += n as u32;
            }
            self.fresh = p + n as u32;
        } else if let Some(i) = self.released.iter().position(|&x| x == lport) {
            self.released.remove(i);
        }
    }
}

/// One worker's local-port allocator. IPv4 and IPv6 `(LIP, RIP, rport)` pools are kept apart
/// (the IPv4 key stays small) and work the same way: the same residue partition, so a reply to
/// `[LIP6]:lport` names its worker as an IPv4 one does.
#[derive(Debug)]
pub struct LportAlloc {
    worker: usize,
    pools: HashMap<(Ipv4Addr, Ipv4Addr, u16), Pool, FastBuildHasher>,
    pools6: HashMap<(Ipv6Addr, Ipv6Addr, u16), Pool, FastBuildHasher>,
    cursor: usize,
}

impl LportAlloc {
    pub fn new(worker: usize) -> LportAlloc {
        LportAlloc {
            worker,
            pools: HashMap::default(),
            pools6: HashMap::default(),
            cursor: 0,
        }
    }

    /// The first port of worker `worker` of `n`: the smallest `p >= LPORT_MIN`, `p % n == worker`.
    fn first_port(worker: usize, n: usize) -> u32 {
        let min = u32::from(LPORT_MIN);
        let (n, w) = (n as u32, (worker % n) as u32);
        min + (w + n - min % n) % n
    }

    /// Make the pool of `lip` towards `rip:rport` exist, with room for `reserve` released ports,
    /// so the packet path finds it and does not allocate (called when tables change).
    pub fn prepare(
        &mut self,
        n_workers: usize,
        lip: Ipv4Addr,
        rip: Ipv4Addr,
        rport: u16,
        reserve: usize,
    ) {
        let n = n_workers.max(1);
        let worker = self.worker;
        self.pools
            .entry((lip, rip, rport))
            .or_insert_with(|| Pool::new(worker, n, reserve));
    }

    /// [`LportAlloc::prepare`] for an IPv6 (LIP, RIP) pair.
    pub fn prepare6(
        &mut self,
        n_workers: usize,
        lip: Ipv6Addr,
        rip: Ipv6Addr,
        rport: u16,
        reserve: usize,
    ) {
        let n = n_workers.max(1);
        let worker = self.worker;
        self.pools6
            .entry((lip, rip, rport))
            .or_insert_with(|| Pool::new(worker, n, reserve));
    }

    /// Pools in existence (one per local address, real server and port used so far), both
    /// families.
    pub fn pools(&self) -> usize {
        self.pools.len() + self.pools6.len()
    }

    /// A free lport on `lip` towards `rip:rport` for this worker (of `n_workers`), or `None`.
    pub fn alloc(
        &mut self,
        n_workers: usize,
        lip: Ipv4Addr,
        rip: Ipv4Addr,
        rport: u16,
    ) -> Option<u16> {
        let n = n_workers.max(1);
        let worker = self.worker;
        self.pools
            .entry((lip, rip, rport))
            .or_insert_with(|| Pool::new(worker, n, 0))
            .alloc(worker, n)
    }

    /// [`LportAlloc::alloc`] for an IPv6 (LIP, RIP) pair.
    pub fn alloc6(
        &mut self,
        n_workers: usize,
        lip: Ipv6Addr,
        rip: Ipv6Addr,
        rport: u16,
    ) -> Option<u16> {
        let n = n_workers.max(1);
        let worker = self.worker;
        self.pools6
            .entry((lip, rip, rport))
            .or_insert_with(|| Pool::new(worker, n, 0))
            .alloc(worker, n)
    }

    /// Mark `lport` on `lip` towards `rip:rport` as taken by a live connection that was not
    /// allocated here (a connection restored from a previous process), so [`LportAlloc::alloc`]
    /// never hands it out again while it lives; it comes back through [`LportAlloc::release`]
    /// like any other. Ports of the partition below it that were never handed out stay free.
    /// A port already taken or outside this worker's partition is left as it is.
    pub fn reserve(
        &mut self,
        n_workers: usize,
        lip: Ipv4Addr,
        rip: Ipv4Addr,
        rport: u16,
        lport: u16,
    ) {
        let n = n_workers.max(1);
        let worker = self.worker;
        if lport < LPORT_MIN || usize::from(lport) % n != worker % n {
            return;
        }
        self.pools
            .entry((lip, rip, rport))
            .or_insert_with(|| Pool::new(worker, n, 0))
            .reserve(n, lport);
    }

    /// [`LportAlloc::reserve`] for an IPv6 (LIP, RIP) pair.
    pub fn reserve6(
        &mut self,
        n_workers: usize,
        lip: Ipv6Addr,
        rip: Ipv6Addr,
        rport: u16,
        lport: u16,
    ) {
        let n = n_workers.max(1);
        let worker = self.worker;
        if lport < LPORT_MIN || usize::from(lport) % n != worker % n {
            return;
        }
        self.pools6
            .entry((lip, rip, rport))
            .or_insert_with(|| Pool::new(worker, n, 0))
            .reserve(n, lport);
    }

    /// Give back an lport allocated by [`LportAlloc::alloc`].
    pub fn release(&mut self, lip: Ipv4Addr, rip: Ipv4Addr, rport: u16, lport: u16) {
        if let Some(pool) = self.pools.get_mut(&(lip, rip, rport)) {
            pool.released.push_back(lport);
        }
    }

    /// Give back an lport allocated by [`LportAlloc::alloc6`].
    pub fn release6(&mut self, lip: Ipv6Addr, rip: Ipv6Addr, rport: u16, lport: u16) {
        if let Some(pool) = self.pools6.get_mut(&(lip, rip, rport)) {
            pool.released.push_back(lport);
        }
    }

    /// A rotating start index among `len` local addresses (spreads connections over them).
    pub fn next_start(&mut self, len: usize) -> usize {
        self.cursor = self.cursor.wrapping_add(1);
        if len == 0 { 0 } else { self.cursor % len }
    }

    /// The worker's slot in [`LaddrStats`].
    pub fn worker(&self) -> usize {
        self.worker
    }
}

/// Count a connection in or out of a local address's stats (worker `w`'s slot).
pub fn count_conn(stats: &LaddrStats, w: usize, delta: i64) {
    LaddrStats::add(&stats.conns, w, delta);
}

/// Count an allocation conflict (no port free, or a tuple found in use).
pub fn count_conflict(stats: &LaddrStats, w: usize) {
    LaddrStats::add(&stats.conflicts, w, 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const LIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    const RIP1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
    const RIP2: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 12);

    #[test]
    fn reserved_ports_are_never_handed_out() {
        let n = 2;
        let mut a = LportAlloc::new(1);
        // Restored connections hold 1031 and 1025 (worker 1's residue), one port of worker 0's
        // partition is ignored.
        a.reserve(n, LIP, RIP1, 80, 1031);
        a.reserve(n, LIP, RIP1, 80, 1025);
        a.reserve(n, LIP, RIP1, 80, 1030);
        let mut got = HashSet::new();
        while let Some(p) = a.alloc(n, LIP, RIP1, 80) {
            assert!(got.insert(p), "port {p} handed out twice");
        }
        assert!(
            !got.contains(&1031) && !got.contains(&1025),
            "reserved port handed out"
        );
        assert!(got.contains(&1027) && got.contains(&1029) && got.contains(&1033));
        assert_eq!(got.len(), (65536 - 1024) / 2 - 2);
        // Released after the connection ends: handed out again.
        a.release(LIP, RIP1, 80, 1031);
        assert_eq!(a.alloc(n, LIP, RIP1, 80), Some(1031));
    }

    #[test]
    fn ports_are_partitioned_by_residue_and_exhaust() {
        for n in 1..=5usize {
            let mut all = HashSet::new();
            for w in 0..n {
                let mut a = LportAlloc::new(w);
                let mut got = 0;
                while let Some(p) = a.alloc(n, LIP, RIP1, 80) {
                    assert!(p >= LPORT_MIN);
                    assert_eq!(usize::from(p) % n, w);
                    assert!(all.insert(p), "port {p} handed out twice");
                    got += 1;
                }
                assert!(got > 0);
                // Exhausted: stays exhausted until a release.
                assert_eq!(a.alloc(n, LIP, RIP1, 80), None);
                a.release(LIP, RIP1, 80, 2000 + w as u16);
                assert!(a.alloc(n, LIP, RIP1, 80).is_some());
            }
            assert_eq!(all.len(), 65536 - usize::from(LPORT_MIN));
        }
    }

    /// IPv6 pairs allocate as IPv4 ones: the same residue partition, reservations and FIFO
    /// reuse, in pools of their own.
    #[test]
    fn ipv6_pairs_allocate_like_ipv4_ones() {
        let lip6: Ipv6Addr = "2001:2:1::1".parse().unwrap();
        let rip6: Ipv6Addr = "2001:2:1::11".parse().unwrap();
        let n = 3;
        let mut a = LportAlloc::new(2);
        let mut b = LportAlloc::new(2);
        a.prepare6(n, lip6, rip6, 80, 8);
        assert_eq!(a.pools(), 1);
        a.reserve6(n, lip6, rip6, 80, 1028);
        b.reserve(n, LIP, RIP1, 80, 1028);
        for _ in 0..50 {
            let p6 = a.alloc6(n, lip6, rip6, 80).unwrap();
            let p4 = b.alloc(n, LIP, RIP1, 80).unwrap();
            assert_eq!(p6, p4);
            assert_eq!(usize::from(p6) % n, 2);
            assert_ne!(p6, 1028);
        }
        assert_eq!(a.pools(), 1, "IPv6 pools are apart from IPv4 ones");
        a.release6(lip6, rip6, 80, 1028);
        assert!(a.alloc(n, LIP, RIP1, 80).is_some());
        assert_eq!(a.pools(), 2);
    }

    #[test]
    fn table_keeps_both_families() {
        let mut t = LaddrTable::new(2);
        let stats = Arc::new(LaddrStats::new(2));
        let lip6: Ipv6Addr = "2001:2:1::1".parse().unwrap();
        let l = |ip: IpAddr| Laddr {
            ip,
            port: 0,
            ifname: "eth0".into(),
            stats: stats.clone(),
        };
        t.set(ServiceId(1), vec![l(LIP.into()), l(lip6.into())]);
        assert!(t.contains(LIP) && t.is_on(0, LIP));
        assert!(t.contains6(lip6) && t.is_on6(0, lip6) && !t.is_on6(1, lip6));
        assert!(t.stats6(lip6).is_some());
        assert_eq!(t.addresses().count(), 1);
        assert_eq!(t.addresses6().count(), 1);
        assert_eq!(t.of(ServiceId(1)).len(), 2);
    }

    #[test]
    fn prepared_pools_are_the_ones_alloc_uses() {
        let mut a = LportAlloc::new(1);
        a.prepare(2, LIP, RIP1, 80, 16);
        a.prepare(2, LIP, RIP1, 80, 16);
        assert_eq!(a.pools(), 1);
        let p = a.alloc(2, LIP, RIP1, 80).unwrap();
        assert_eq!(p % 2, 1);
        assert_eq!(a.pools(), 1);
    }

    #[test]
    fn same_port_towards_different_servers_and_fifo_reuse() {
        let mut a = LportAlloc::new(0);
        let p1 = a.alloc(1, LIP, RIP1, 80).unwrap();
        let p2 = a.alloc(1, LIP, RIP2, 80).unwrap();
        assert_eq!(p1, p2);
        let p3 = a.alloc(1, LIP, RIP1, 80).unwrap();
        assert_ne!(p1, p3);
        a.release(LIP, RIP1, 80, p1);
        a.release(LIP, RIP1, 80, p3);
        // Never-used ports first: a released one may still be in TIME_WAIT at the server.
        let fresh = a.alloc(1, LIP, RIP1, 80).unwrap();
        assert!(![p1, p3].contains(&fresh));
        // Use up the pool: then released ports come back, oldest first.
        let mut last = fresh;
        while let Some(p) = a.alloc(1, LIP, RIP1, 80) {
            if p == p1 {
                break;
            }
            assert!(p > last, "fresh ports in order");
            last = p;
        }
        assert_eq!(last, 65535);
        assert_eq!(a.alloc(1, LIP, RIP1, 80), Some(p3));
        assert_eq!(a.alloc(1, LIP, RIP1, 80), None);
    }
}
