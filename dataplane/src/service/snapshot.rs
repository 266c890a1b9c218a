//! The immutable service table the workers read: [`Snapshot`], [`Service`], [`Dest`].
//!
//! A snapshot is built on the control thread ([`super::ServiceTable::snapshot`]) and shared by
//! `Arc`; the runtime swaps a worker's `Arc<Snapshot>` between bursts, so a worker sees either the
//! old or the new configuration for a whole burst, never a mix. Every lookup is a hash probe with
//! a small non-allocating hasher; service keys are operator-chosen, so hash flooding is not a
//! concern here (the connection table, which is keyed by attacker-chosen tuples, uses a seed).
//!
//! Scheduler contract (see [`crate::sched`]): a worker keeps one scheduler per service and calls
//! `update` whenever [`Service::version`] differs from the version it last saw, and rebuilds the
//! scheduler when [`Service::scheduler`] or [`Service::flags`] changed.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::{
    DestConfig, DestId, DestStats, ForwardMethod, ServiceConfig, ServiceId, ServiceKey,
    ServiceStats,
};
use crate::sched::SchedFlags;

/// A small multiply-rotate hasher (FxHash-like) for the snapshot's maps: no SipHash, no
/// allocation, good enough for operator-chosen keys.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const FX_K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// `BuildHasher` for [`FastHasher`].
pub type FastBuildHasher = BuildHasherDefault<FastHasher>;

/// One real server of a service, as the workers see it.
#[derive(Debug, Clone)]
pub struct Dest {
    id: DestId,
    config: DestConfig,
    stats: Arc<DestStats>,
}

impl Dest {
    /// A dest view over shared stats (the table creates these; tests and benchmarks may too).
    pub fn new(id: DestId, config: DestConfig, stats: Arc<DestStats>) -> Dest {
        Dest { id, config, stats }
    }

    pub fn id(&self) -> DestId {
        self.id
    }
    pub fn config(&self) -> &DestConfig {
        &self.config
    }
    /// The real server's address (IPv4 or IPv6).
    pub fn addr(&self) -> IpAddr {
        self.config.addr
    }
    /// The real server's IPv4 address, `None` for an IPv6 dest.
    #[inline]
    pub fn addr4(&self) -> Option<Ipv4Addr> {
        match self.config.addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    /// The real server's IPv6 address, `None` for an IPv4 dest.
    #[inline]
    pub fn addr6(&self) -> Option<Ipv6Addr> {
        match self.config.addr {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    pub fn port(&self) -> u16 {
        self.config.port
    }
    pub fn method(&self) -> ForwardMethod {
        self.config.method
    }
    pub fn weight(&self) -> u32 {
        self.config.weight
    }
    pub fn upper_threshold(&self) -> u32 {
        self.config.upper_threshold
    }
    pub fn lower_threshold(&self) -> u32 {
        self.config.lower_threshold
    }
    /// The shared counters (the same `Arc` across edits of this dest).
    pub fn stats(&self) -> &Arc<DestStats> {
        &self.stats
    }

    /// Active connections over all workers (IPVS `activeconns`).
    pub fn active_conns(&self) -> u64 {
        self.stats.active_conns()
    }
    /// Inactive connections over all workers (IPVS `inactconns`).
    pub fn inactive_conns(&self) -> u64 {
        self.stats.inactive_conns()
    }
    /// Persistence templates over all workers (IPVS `persistconns`).
    pub fn persistent_conns(&self) -> u64 {
        self.stats.persistent_conns()
    }
    /// (active, inactive) connections as worker `worker`'s scheduler sees them: its own exactly,
    /// the other workers' at most a few of its decisions old
    /// ([`super::stats::DestStats::conns_seen_by`]). Only worker `worker` calls this.
    #[inline]
    pub fn conns_seen_by(&self, worker: usize) -> (u64, u64) {
        self.stats.conns_seen_by(worker)
    }
    /// `activeconns + inactconns` (templates not counted), IPVS `ip_vs_dest_totalconns`.
    pub fn total_conns(&self) -> u64 {
        self.active_conns().saturating_add(self.inactive_conns())
    }

    /// IPVS's `IP_VS_DEST_F_OVERLOAD` flag: every scheduler skips an overloaded dest.
    #[inline]
    pub fn is_overloaded(&self) -> bool {
        self.stats.is_overloaded()
    }

    /// Weight > 0 and not overloaded: the test every scheduler applies.
    #[inline]
    pub fn is_available(&self) -> bool {
        self.config.weight > 0 && !self.is_overloaded()
    }

    /// Account a new connection bound to this dest by `worker` (IPVS `ip_vs_bind_dest`).
    /// `inactive` is the connection's INACTIVE flag at bind time (new connections start inactive,
    /// IPVS sets `IP_VS_CONN_F_INACTIVE` in every dest's conn flags). Then applies the upper
    /// threshold: OVERLOAD is set when `u_threshold != 0 && totalconns >= u_threshold`.
    pub fn bind_conn(&self, worker: usize, inactive: bool) {
        let slot = self.stats.slot(worker);
        if inactive {
            slot.add_inactive(1);
        } else {
            slot.add_active(1);
        }
        self.check_overload_on_bind();
    }

    /// Account the end of a connection (IPVS `ip_vs_unbind_dest`), with the flag recorded on the
    /// connection, then apply the hysteresis of docs/ipvsadm-compat.md section 5.4:
    /// with a lower threshold, OVERLOAD clears when `totalconns < l_threshold`; else with an
    /// upper threshold, when `totalconns * 4 < u_threshold * 3` (below 75 %); else it clears.
    pub fn unbind_conn(&self, worker: usize, inactive: bool) {
        let slot = self.stats.slot(worker);
        if inactive {
            slot.add_inactive(-1);
        } else {
            slot.add_active(-1);
        }
        self.check_overload_on_unbind();
    }

    /// A persistence template bound to this dest (counted in `persistconns`, not in totalconns,
    /// but IPVS runs the threshold check all the same).
    pub fn bind_template(&self, worker: usize) {
        self.stats.slot(worker).add_persistent(1);
        self.check_overload_on_bind();
    }

    /// A persistence template released.
    pub fn unbind_template(&self, worker: usize) {
        self.stats.slot(worker).add_persistent(-1);
        self.check_overload_on_unbind();
    }

    /// Apply a state change's `(active_delta, inactive_delta)` (see
    /// [`crate::conn::count_delta`]). IPVS does not re-check thresholds here.
    pub fn move_conn(&self, worker: usize, active_delta: i64, inactive_delta: i64) {
        let slot = self.stats.slot(worker);
        if active_delta != 0 {
            slot.add_active(active_delta);
        }
        if inactive_delta != 0 {
            slot.add_inactive(inactive_delta);
        }
    }

    fn check_overload_on_bind(&self) {
        let u = u64::from(self.config.upper_threshold);
        if u != 0 && self.total_conns() >= u {
            self.stats.set_overloaded(true);
        }
    }

    fn check_overload_on_unbind(&self) {
        if !self.stats.is_overloaded() {
            return;
        }
        let l = u64::from(self.config.lower_threshold);
        let u = u64::from(self.config.upper_threshold);
        let total = self.total_conns();
        let clear = if l != 0 {
            total < l
        } else if u != 0 {
            total.saturating_mul(4) < u * 3
        } else {
            true
        };
        if clear {
            self.stats.set_overloaded(false);
        }
    }
}

/// One virtual service, as the workers see it.
#[derive(Debug, Clone)]
pub struct Service {
    pub(super) id: ServiceId,
    pub(super) config: ServiceConfig,
    pub(super) dests: Vec<Dest>,
    pub(super) stats: Arc<ServiceStats>,
    pub(super) version: u64,
    /// Deny and allow lists (shared with the table until a list changes).
    pub(super) access: Arc<super::AccessLists>,
    /// The addresses of its NAT and FULLNAT dests, filled in when a snapshot is built (empty in
    /// the control side's table), for the real-server-as-client check of `worker::admit`.
    pub(super) nat_rips: super::access::PrefixSet,
    /// The same for its IPv6 NAT and FULLNAT dests.
    pub(super) nat_rips6: HashSet<Ipv6Addr, FastBuildHasher>,
}

impl Service {
    pub fn id(&self) -> ServiceId {
        self.id
    }
    pub fn key(&self) -> ServiceKey {
        self.config.key
    }
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }
    /// Scheduler name.
    pub fn scheduler(&self) -> &str {
        &self.config.scheduler
    }
    /// Scheduler flags.
    pub fn flags(&self) -> SchedFlags {
        self.config.flags
    }
    /// The dests in IPVS list order (newest first); schedulers return indices into this slice.
    pub fn dests(&self) -> &[Dest] {
        &self.dests
    }
    /// The dest with this address and port.
    pub fn find_dest(&self, addr: IpAddr, port: u16) -> Option<&Dest> {
        self.dests
            .iter()
            .find(|d| d.addr() == addr && d.port() == port)
    }
    /// The shared counters (the same `Arc` across edits).
    pub fn stats(&self) -> &Arc<ServiceStats> {
        &self.stats
    }
    /// The deny and allow lists (`-U`/`-O`).
    pub fn access(&self) -> &super::AccessLists {
        &self.access
    }
    /// Whether `ip` is the address of one of its NAT or FULLNAT dests (in a snapshot).
    #[inline]
    pub fn is_nat_rip(&self, ip: Ipv4Addr) -> bool {
        self.nat_rips.contains(ip)
    }
    /// Whether `ip` is the address of one of its IPv6 NAT or FULLNAT dests (in a snapshot).
    #[inline]
    pub fn is_nat_rip6(&self, ip: Ipv6Addr) -> bool {
        !self.nat_rips6.is_empty() && self.nat_rips6.contains(&ip)
    }
    /// Admission limits.
    pub fn limits(&self) -> &super::ServiceLimits {
        &self.config.limits
    }
    /// Connections of the service now: active + inactive over its dests and all workers.
    pub fn total_conns(&self) -> u64 {
        self.dests.iter().map(Dest::total_conns).sum()
    }
    /// Changes whenever this service's config or any of its dests changes (it is the table
    /// generation of the last change). Workers call their scheduler's `update` when it moves.
    pub fn version(&self) -> u64 {
        self.version
    }
}

type AddrKey = (u8, Ipv4Addr, u16);
type AddrKey6 = (u8, Ipv6Addr, u16);

/// An immutable picture of every service, for the workers.
#[derive(Debug, Default)]
pub struct Snapshot {
    generation: u64,
    services: Vec<Service>,
    by_addr: HashMap<AddrKey, u32, FastBuildHasher>,
    /// IPv6 services, apart so the IPv4 probe keeps its small key.
    by_addr6: HashMap<AddrKey6, u32, FastBuildHasher>,
    by_fwmark: HashMap<u32, u32, FastBuildHasher>,
    by_id: HashMap<ServiceId, u32, FastBuildHasher>,
    dests: HashMap<DestId, (u32, u32), FastBuildHasher>,
    /// The same as `dests`, indexed by id, while ids stay below [`DENSE_IDS`] (every packet of
    /// a connection finds its dest here: an array read instead of a hash lookup).
    dests_dense: Vec<(u32, u32)>,
    vips: HashSet<Ipv4Addr, FastBuildHasher>,
    vips6: HashSet<Ipv6Addr, FastBuildHasher>,
}

/// Dest ids up to this are indexed densely (8 bytes each: 2 MiB at most).
const DENSE_IDS: u32 = 1 << 18;
/// A dense slot of an id that has no dest.
const NO_DEST: (u32, u32) = (u32::MAX, u32::MAX);

impl Snapshot {
    /// A snapshot with no services (generation 0), for workers before the first publication.
    pub fn empty() -> Snapshot {
        Snapshot::default()
    }

    pub(super) fn build(generation: u64, mut services: Vec<Service>) -> Snapshot {
        for svc in &mut services {
            let nat = || {
                svc.dests
                    .iter()
                    .filter(|d| d.method().replies_pass_director())
            };
            let rips: Vec<super::Prefix> = nat()
                .filter_map(Dest::addr4)
                .map(super::Prefix::host)
                .collect();
            let rips6 = nat().filter_map(Dest::addr6).collect();
            svc.nat_rips = super::access::PrefixSet::new(&rips);
            svc.nat_rips6 = rips6;
        }
        let mut s = Snapshot {
            generation,
            ..Snapshot::default()
        };
        for (si, svc) in services.iter().enumerate() {
            // Counts are bounded far below u32::MAX by the id allocators.
            let si = si as u32;
            s.by_id.insert(svc.id, si);
            match svc.config.key {
                ServiceKey::Addr {
                    protocol,
                    vip,
                    vport,
                } => match vip {
                    IpAddr::V4(vip) => {
                        s.by_addr.insert((protocol.number(), vip, vport), si);
                        s.vips.insert(vip);
                    }
                    IpAddr::V6(vip) => {
                        s.by_addr6.insert((protocol.number(), vip, vport), si);
                        s.vips6.insert(vip);
                    }
                },
                ServiceKey::Fwmark(m) => {
                    s.by_fwmark.insert(m, si);
                }
            }
            for (di, d) in svc.dests.iter().enumerate() {
                s.dests.insert(d.id, (si, di as u32));
            }
        }
        let max_id = s.dests.keys().map(|d| d.0).max().unwrap_or(0);
        if max_id < DENSE_IDS {
            s.dests_dense = vec![NO_DEST; max_id as usize + 1];
            for (id, at) in &s.dests {
                s.dests_dense[id.0 as usize] = *at;
            }
        }
        s.services = services;
        s
    }

    /// Increases with every change published by the table.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// All services, in creation order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service a packet to `vip:vport` over `proto` belongs to: the exact service, else the
    /// persistent all-ports service `vip:0` of that protocol (IPVS `ip_vs_service_find`).
    #[inline]
    pub fn lookup(&self, proto: u8, vip: Ipv4Addr, vport: u16) -> Option<&Service> {
        let i = match self.by_addr.get(&(proto, vip, vport)) {
            Some(i) => *i,
            None if vport != 0 => *self.by_addr.get(&(proto, vip, 0))?,
            None => return None,
        };
        self.services.get(i as usize)
    }

    /// [`Snapshot::lookup`] for an IPv6 packet: the exact service, else the persistent
    /// all-ports service `[vip]:0` of that protocol.
    #[inline]
    pub fn lookup6(&self, proto: u8, vip: Ipv6Addr, vport: u16) -> Option<&Service> {
        let i = match self.by_addr6.get(&(proto, vip, vport)) {
            Some(i) => *i,
            None if vport != 0 => *self.by_addr6.get(&(proto, vip, 0))?,
            None => return None,
        };
        self.services.get(i as usize)
    }

    /// The fwmark service with this mark.
    pub fn lookup_fwmark(&self, mark: u32) -> Option<&Service> {
        let i = *self.by_fwmark.get(&mark)?;
        self.services.get(i as usize)
    }

    /// Whether `ip` is the VIP of some address-keyed service (ARP and ICMP echo answer for it).
    #[inline]
    pub fn is_vip(&self, ip: Ipv4Addr) -> bool {
        self.vips.contains(&ip)
    }

    /// Whether `ip` is the VIP of some IPv6 service (neighbour discovery and ICMPv6 echo
    /// answer for it).
    #[inline]
    pub fn is_vip6(&self, ip: Ipv6Addr) -> bool {
        self.vips6.contains(&ip)
    }

    /// The service with this id.
    pub fn service(&self, id: ServiceId) -> Option<&Service> {
        let i = *self.by_id.get(&id)?;
        self.services.get(i as usize)
    }

    /// The dest with this id (`None` once it has been deleted).
    #[inline]
    pub fn dest(&self, id: DestId) -> Option<&Dest> {
        self.dest_with_service(id).map(|(_, d)| d)
    }

    /// The dest with this id and its service.
    #[inline]
    pub fn dest_with_service(&self, id: DestId) -> Option<(&Service, &Dest)> {
        let (si, di) = if self.dests_dense.is_empty() {
            *self.dests.get(&id)?
        } else {
            *self.dests_dense.get(id.0 as usize)?
        };
        let svc = self.services.get(si as usize)?;
        Some((svc, svc.dests.get(di as usize)?))
    }
}

#[cfg(test)]
mod tests {
    //! Threshold cases of docs/ipvsadm-compat.md section 5.4 that `table.rs`'s hysteresis test does
    //! not reach: no upper threshold, templates outside totalconns, inactive conns counted.
    use super::*;
    use crate::service::{DestConfig, ForwardMethod};

    fn dest(u: u32, l: u32) -> Dest {
        let mut c = DestConfig::new(Ipv4Addr::new(198, 18, 1, 1), 80, ForwardMethod::Masq);
        c.upper_threshold = u;
        c.lower_threshold = l;
        Dest::new(DestId(1), c, Arc::new(DestStats::new(1)))
    }

    #[test]
    fn no_upper_threshold_never_overloads() {
        let d = dest(0, 5);
        for _ in 0..100 {
            d.bind_conn(0, false);
        }
        assert!(!d.is_overloaded());
    }

    #[test]
    fn templates_are_not_in_totalconns() {
        let d = dest(2, 0);
        d.bind_template(0);
        d.bind_template(0);
        assert!(!d.is_overloaded(), "2 templates, totalconns 0");
        d.bind_conn(0, true); // inactive conns count: total 1
        assert!(!d.is_overloaded());
        d.bind_conn(0, true); // total 2 >= 2
        assert!(d.is_overloaded());
        // Releasing a template re-runs the unbind check: 2*4 < 2*3 is false, stays.
        d.unbind_template(0);
        assert!(d.is_overloaded());
        d.unbind_conn(0, true); // total 1: 4 < 6 clears
        assert!(!d.is_overloaded());
    }

    #[test]
    fn lower_threshold_replaces_the_75_percent_rule() {
        let d = dest(4, 3);
        for _ in 0..4 {
            d.bind_conn(0, false);
        }
        assert!(d.is_overloaded());
        d.unbind_conn(0, false); // total 3: not < 3 (the 75 % rule would not clear either)
        assert!(d.is_overloaded());
        d.unbind_conn(0, false); // total 2 < 3: clears, though 2*4 < 4*3 would too
        assert!(!d.is_overloaded());
        let d = dest(4, 1);
        for _ in 0..4 {
            d.bind_conn(0, false);
        }
        d.unbind_conn(0, false);
        d.unbind_conn(0, false); // total 2: below 75 % but l = 1 rules
        assert!(d.is_overloaded());
    }
}
