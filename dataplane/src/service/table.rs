//! The control side of the service model: [`ServiceTable`], owned by the control thread.
//!
//! Invariants:
//! - at most one service per [`ServiceKey`], at most one dest per (addr, port) in a service;
//! - ids come from counters that only grow (never reused); editing keeps ids and stats `Arc`s;
//! - every method validates before it mutates: an `Err` leaves the table unchanged;
//! - every successful mutation bumps the generation; [`ServiceTable::snapshot`] returns a cached
//!   `Arc` until the next mutation.

use std::net::IpAddr;
use std::sync::Arc;

use super::snapshot::{Dest, Service, Snapshot};
use super::{
    AccessLists, DestConfig, DestId, DestStats, ForwardMethod, ListKind, MAX_PERSISTENCE,
    MAX_THRESHOLD, MAX_WEIGHT, Prefix, Protocol, ServiceConfig, ServiceError, ServiceId,
    ServiceKey, ServiceStats,
};
use crate::sched;

/// All virtual services, mutable, for the control thread.
#[derive(Debug)]
pub struct ServiceTable {
    n_workers: usize,
    services: Vec<Service>,
    next_service_id: u32,
    next_dest_id: u32,
    generation: u64,
    cached: Option<Arc<Snapshot>>,
}

impl ServiceTable {
    /// An empty table whose stats have one slot per worker (`n_workers`, at least 1).
    pub fn new(n_workers: usize) -> ServiceTable {
        ServiceTable {
            n_workers: n_workers.max(1),
            services: Vec::new(),
            next_service_id: 1,
            next_dest_id: 1,
            generation: 0,
            cached: None,
        }
    }

    /// Number of stats slots per counter object.
    pub fn n_workers(&self) -> usize {
        self.n_workers
    }

    /// Increases with every successful mutation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// All services, in creation order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service with this key.
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.iter().find(|s| s.config.key == *key)
    }

    /// The service with this id.
    pub fn service_by_id(&self, id: ServiceId) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    /// The dests of a service (IPVS list order, newest first).
    pub fn dests(&self, key: &ServiceKey) -> Result<&[Dest], ServiceError> {
        self.position(key)
            .map(|i| self.services[i].dests.as_slice())
    }

    /// The immutable picture to publish to the workers (cached until the next mutation).
    pub fn snapshot(&mut self) -> Arc<Snapshot> {
        if let Some(s) = &self.cached {
            return Arc::clone(s);
        }
        let s = Arc::new(Snapshot::build(self.generation, self.services.clone()));
        self.cached = Some(Arc::clone(&s));
        s
    }

    /// `-A`: add a service.
    pub fn add_service(&mut self, config: ServiceConfig) -> Result<ServiceId, ServiceError> {
        validate_service(&config)?;
        if self.service(&config.key).is_some() {
            return Err(ServiceError::ServiceExists(config.key));
        }
        let id = ServiceId(self.next_service_id);
        let next = self
            .next_service_id
            .checked_add(1)
            .ok_or(ServiceError::IdsExhausted)?;
        let version = self.bump();
        self.next_service_id = next;
        self.services.push(Service {
            id,
            config,
            dests: Vec::new(),
            stats: Arc::new(ServiceStats::new(self.n_workers)),
            version,
            access: Arc::default(),
            nat_rips: Default::default(),
            nat_rips6: Default::default(),
        });
        Ok(id)
    }

    /// `-E`: replace a service's scheduler, flags, persistence, netmask and ops. Keeps its id,
    /// stats and dests.
    pub fn edit_service(&mut self, config: ServiceConfig) -> Result<(), ServiceError> {
        validate_service(&config)?;
        let i = self.position(&config.key)?;
        if config.synproxy
            && self.services[i]
                .dests
                .iter()
                .any(|d| !synproxy_method(d.method()))
        {
            return Err(ServiceError::Invalid(SYNPROXY_METHODS));
        }
        let version = self.bump();
        let svc = &mut self.services[i];
        svc.config = config;
        svc.version = version;
        Ok(())
    }

    /// DPVS `-U`/`-O`: add a source address or prefix to a service's deny or allow list. The
    /// lists are kept across `-E` and deleted with the service.
    pub fn add_list_entry(
        &mut self,
        key: &ServiceKey,
        kind: ListKind,
        entry: Prefix,
    ) -> Result<(), ServiceError> {
        let i = self.position(key)?;
        let mut lists = (*self.services[i].access).clone();
        lists.add(kind, entry)?;
        self.set_lists(i, lists);
        Ok(())
    }

    /// DPVS `-V`/`-Y`: remove an entry from a service's deny or allow list.
    pub fn del_list_entry(
        &mut self,
        key: &ServiceKey,
        kind: ListKind,
        entry: Prefix,
    ) -> Result<(), ServiceError> {
        let i = self.position(key)?;
        let mut lists = (*self.services[i].access).clone();
        lists.remove(kind, entry)?;
        self.set_lists(i, lists);
        Ok(())
    }

    fn set_lists(&mut self, i: usize, lists: AccessLists) {
        let version = self.bump();
        let svc = &mut self.services[i];
        svc.access = Arc::new(lists);
        svc.version = version;
    }

    /// `-D`: delete a service and its dests.
    pub fn del_service(&mut self, key: &ServiceKey) -> Result<(), ServiceError> {
        let i = self.position(key)?;
        self.bump();
        self.services.remove(i);
        Ok(())
    }

    /// `-C`: delete every service.
    pub fn clear(&mut self) {
        self.bump();
        self.services.clear();
    }

    /// `-Z`: zero the counters of one service and its dests.
    pub fn zero_service(&self, key: &ServiceKey) -> Result<(), ServiceError> {
        let svc = &self.services[self.position(key)?];
        svc.stats.zero();
        svc.dests.iter().for_each(|d| d.stats().zero());
        Ok(())
    }

    /// `-Z` without a service: zero everything.
    pub fn zero_all(&self) {
        for svc in &self.services {
            svc.stats.zero();
            svc.dests.iter().for_each(|d| d.stats().zero());
        }
    }

    /// `-a`: add a dest to a service. New dests go first, as IPVS's `list_add_rcu` does.
    pub fn add_dest(&mut self, key: &ServiceKey, dest: DestConfig) -> Result<DestId, ServiceError> {
        let i = self.position(key)?;
        validate_dest(&dest)?;
        check_family(key, &dest)?;
        if self.services[i].config.synproxy && !synproxy_method(dest.method) {
            return Err(ServiceError::Invalid(SYNPROXY_METHODS));
        }
        if self.services[i].find_dest(dest.addr, dest.port).is_some() {
            return Err(ServiceError::DestExists {
                service: *key,
                addr: dest.addr,
                port: dest.port,
            });
        }
        let id = DestId(self.next_dest_id);
        let next = self
            .next_dest_id
            .checked_add(1)
            .ok_or(ServiceError::IdsExhausted)?;
        let version = self.bump();
        self.next_dest_id = next;
        let stats = Arc::new(DestStats::new(self.n_workers));
        let svc = &mut self.services[i];
        svc.dests.insert(0, Dest::new(id, dest, stats));
        svc.version = version;
        Ok(id)
    }

    /// `-e`: change a dest's method, weight and thresholds. Keeps its id, position and stats.
    /// As IPVS `__ip_vs_update_dest`: OVERLOAD is cleared when the new upper threshold is 0 or
    /// higher than the old one.
    pub fn edit_dest(&mut self, key: &ServiceKey, dest: DestConfig) -> Result<(), ServiceError> {
        let i = self.position(key)?;
        validate_dest(&dest)?;
        check_family(key, &dest)?;
        if self.services[i].config.synproxy && !synproxy_method(dest.method) {
            return Err(ServiceError::Invalid(SYNPROXY_METHODS));
        }
        let j = self.dest_position(i, key, dest.addr, dest.port)?;
        let version = self.bump();
        let svc = &mut self.services[i];
        let d = &mut svc.dests[j];
        let old_upper = d.upper_threshold();
        *d = Dest::new(d.id(), dest, Arc::clone(d.stats()));
        if dest.upper_threshold == 0 || dest.upper_threshold > old_upper {
            d.stats().set_overloaded(false);
        }
        svc.version = version;
        Ok(())
    }

    /// `-d`: delete a dest. Connections already bound to it keep their [`DestId`], which no
    /// longer resolves in later snapshots (IPVS drops their packets, see `expire_nodest_conn`).
    pub fn del_dest(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> Result<(), ServiceError> {
        let i = self.position(key)?;
        let j = self.dest_position(i, key, addr, port)?;
        let version = self.bump();
        let svc = &mut self.services[i];
        svc.dests.remove(j);
        svc.version = version;
        Ok(())
    }

    fn position(&self, key: &ServiceKey) -> Result<usize, ServiceError> {
        self.services
            .iter()
            .position(|s| s.config.key == *key)
            .ok_or(ServiceError::NoSuchService(*key))
    }

    fn dest_position(
        &self,
        i: usize,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> Result<usize, ServiceError> {
        self.services[i]
            .dests
            .iter()
            .position(|d| d.addr() == addr && d.port() == port)
            .ok_or(ServiceError::NoSuchDest {
                service: *key,
                addr,
                port,
            })
    }

    /// Start a mutation: new generation, drop the cached snapshot. Returns the new generation.
    fn bump(&mut self) -> u64 {
        self.generation += 1;
        self.cached = None;
        self.generation
    }
}

fn validate_service(c: &ServiceConfig) -> Result<(), ServiceError> {
    match c.key {
        ServiceKey::Fwmark(0) => return Err(ServiceError::Invalid("fwmark must be > 0")),
        ServiceKey::Addr { vport: 0, .. } if c.persistence.is_none() => {
            return Err(ServiceError::Invalid(
                "Zero port specified for non-persistent service",
            ));
        }
        ServiceKey::Addr {
            protocol: Protocol::Tcp | Protocol::Sctp,
            ..
        } if c.one_packet => {
            return Err(ServiceError::Invalid(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        _ => {}
    }
    if let Some(t) = c.persistence
        && (t == 0 || t > MAX_PERSISTENCE)
    {
        return Err(ServiceError::Invalid(
            "persistence timeout must be 1..2678400 seconds",
        ));
    }
    if c.key.is_ipv6() && !(1..=128).contains(&c.prefix6) {
        return Err(ServiceError::Invalid("illegal ipv6 netmask specified"));
    }
    // Not built for IPv6 connections yet: refused rather than silently not applied.
    if c.key.is_ipv6() && c.synproxy {
        return Err(ServiceError::Invalid(
            "the SYN proxy is not available for IPv6 services yet",
        ));
    }
    if c.key.is_ipv6()
        && (c.client_addr.proxy != super::ProxyProtocol::Disable
            || c.client_addr.uoa != super::UoaMode::Disable)
    {
        return Err(ServiceError::Invalid(
            "PROXY protocol and UOA are not available for IPv6 services yet",
        ));
    }
    if c.limits.src_prefix > 32 {
        return Err(ServiceError::Invalid("source prefix length must be 0..32"));
    }
    let protocol = match c.key {
        ServiceKey::Addr { protocol, .. } => Some(protocol),
        ServiceKey::Fwmark(_) => None,
    };
    c.client_addr
        .check(protocol)
        .map_err(ServiceError::Invalid)?;
    sched::check(&c.scheduler, c.flags)?;
    Ok(())
}

/// Why a SYN-proxy service refuses a dest: the proxy renumbers both directions, so the replies
/// must pass the director.
const SYNPROXY_METHODS: &str = "SYN proxy needs NAT or FULLNAT real servers";

fn synproxy_method(m: ForwardMethod) -> bool {
    matches!(m, ForwardMethod::Masq | ForwardMethod::FullNat)
}

/// Why a dest of the wrong family is refused (EAFNOSUPPORT).
pub const FAMILY_MIX: &str = "a real server has its service's address family (an IPv4 one under an IPv6 service is FULLNAT only)";

/// The family rule of a dest (IPVS `ip_vs_add_dest` answers EAFNOSUPPORT to a mix it cannot
/// forward): the dest has the service's family; an IPv6 service may also have IPv4 FULLNAT
/// dests (NAT64, as DPVS). Fwmark services are IPv4.
fn check_family(key: &ServiceKey, d: &DestConfig) -> Result<(), ServiceError> {
    let ok = match (key.is_ipv6(), d.addr) {
        (false, IpAddr::V4(_)) | (true, IpAddr::V6(_)) => true,
        (true, IpAddr::V4(_)) => d.method == ForwardMethod::FullNat,
        (false, IpAddr::V6(_)) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Family(FAMILY_MIX))
    }
}

fn validate_dest(d: &DestConfig) -> Result<(), ServiceError> {
    if d.weight > MAX_WEIGHT {
        return Err(ServiceError::Invalid("illegal weight specified"));
    }
    if d.upper_threshold > MAX_THRESHOLD || d.lower_threshold > MAX_THRESHOLD {
        return Err(ServiceError::Invalid(
            "threshold out of range 0..2147483647",
        ));
    }
    if d.lower_threshold > d.upper_threshold {
        return Err(ServiceError::ThresholdOrder {
            lower: d.lower_threshold,
            upper: d.upper_threshold,
        });
    }
    let unicast = match d.addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    };
    if !unicast {
        return Err(ServiceError::Invalid("destination address not unicast"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Errno, ForwardMethod};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn tcp(vip: [u8; 4], port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: Ipv4Addr::from(vip).into(),
            vport: port,
        }
    }

    fn rs(last: u8) -> DestConfig {
        DestConfig::new(Ipv4Addr::new(198, 18, 1, last), 80, ForwardMethod::Masq)
    }

    /// PROXY protocol version 1 is text for TCP: a UDP service with it is refused (EINVAL),
    /// on -A and -E, and the table keeps what it had; fwmark and TCP services take it.
    #[test]
    fn proxy_protocol_v1_is_refused_for_udp() {
        use crate::service::{ClientAddr, ProxyProtocol};
        let mut t = ServiceTable::new(1);
        let udp = ServiceKey::Addr {
            protocol: Protocol::Udp,
            vip: Ipv4Addr::new(198, 18, 0, 10).into(),
            vport: 53,
        };
        let with = |k: ServiceKey, proxy: ProxyProtocol| {
            let mut c = ServiceConfig::new(k, "rr");
            c.client_addr = ClientAddr {
                proxy,
                ..ClientAddr::default()
            };
            c
        };
        let e = t.add_service(with(udp, ProxyProtocol::V1)).unwrap_err();
        assert_eq!(e.errno(), Errno::Inval);
        t.add_service(with(udp, ProxyProtocol::V2)).unwrap();
        assert!(
            t.edit_service(with(udp, ProxyProtocol::V1Insecure))
                .is_err()
        );
        let kept = t.snapshot();
        let kept = kept.services()[0].config().client_addr.proxy;
        assert_eq!(kept, ProxyProtocol::V2);
        t.add_service(with(tcp([198, 18, 0, 10], 80), ProxyProtocol::V1))
            .unwrap();
        t.add_service(with(ServiceKey::Fwmark(3), ProxyProtocol::V1))
            .unwrap();
    }

    #[test]
    fn add_lookup_and_ids() {
        let mut t = ServiceTable::new(2);
        let k = tcp([198, 18, 0, 10], 80);
        let sid = t.add_service(ServiceConfig::new(k, "rr")).unwrap();
        let a = t.add_dest(&k, rs(1)).unwrap();
        let b = t.add_dest(&k, rs(2)).unwrap();
        assert_ne!(a, b);
        let snap = t.snapshot();
        let svc = snap.lookup(6, Ipv4Addr::new(198, 18, 0, 10), 80).unwrap();
        assert_eq!(svc.id(), sid);
        // Newest first, as IPVS.
        assert_eq!(svc.dests()[0].id(), b);
        assert_eq!(svc.dests()[1].id(), a);
        assert!(snap.is_vip(Ipv4Addr::new(198, 18, 0, 10)));
        assert!(!snap.is_vip(Ipv4Addr::new(198, 18, 0, 11)));
        assert!(snap.lookup(17, Ipv4Addr::new(198, 18, 0, 10), 80).is_none());
        assert_eq!(snap.dest(a).unwrap().addr(), Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(snap.service(sid).unwrap().key(), k);
    }

    #[test]
    fn errors_map_to_errnos_and_leave_table_unchanged() {
        let mut t = ServiceTable::new(1);
        let k = tcp([198, 18, 0, 10], 80);
        t.add_service(ServiceConfig::new(k, "rr")).unwrap();
        t.add_dest(&k, rs(1)).unwrap();
        let g = t.generation();
        let e = t.add_service(ServiceConfig::new(k, "rr")).unwrap_err();
        assert_eq!(e.errno(), Errno::Exist);
        let other = tcp([198, 18, 0, 11], 80);
        assert_eq!(t.del_service(&other).unwrap_err().errno(), Errno::Srch);
        assert_eq!(t.add_dest(&other, rs(1)).unwrap_err().errno(), Errno::Srch);
        assert_eq!(t.add_dest(&k, rs(1)).unwrap_err().errno(), Errno::Exist);
        assert_eq!(t.edit_dest(&k, rs(9)).unwrap_err().errno(), Errno::NoEnt);
        let ip = Ipv4Addr::new(198, 18, 1, 9);
        assert_eq!(
            t.del_dest(&k, ip.into(), 80).unwrap_err().errno(),
            Errno::NoEnt
        );
        let e = t
            .add_service(ServiceConfig::new(other, "nosuch"))
            .unwrap_err();
        assert_eq!(e.errno(), Errno::NoEnt);
        let mut heavy = rs(2);
        heavy.weight = 65_536;
        assert_eq!(t.add_dest(&k, heavy).unwrap_err().errno(), Errno::Inval);
        let zero_port = tcp([198, 18, 0, 12], 0);
        let e = t
            .add_service(ServiceConfig::new(zero_port, "rr"))
            .unwrap_err();
        assert_eq!(e.errno(), Errno::Inval);
        let mut ops = ServiceConfig::new(tcp([198, 18, 0, 13], 80), "rr");
        ops.one_packet = true;
        assert_eq!(t.add_service(ops).unwrap_err().errno(), Errno::Inval);
        assert_eq!(g, t.generation());
        assert_eq!(t.services().len(), 1);
        assert_eq!(t.dests(&k).unwrap().len(), 1);
    }

    #[test]
    fn unknown_scheduler_is_refused() {
        let mut t = ServiceTable::new(1);
        let e = t
            .add_service(ServiceConfig::new(tcp([198, 18, 0, 10], 80), "nosuch"))
            .unwrap_err();
        assert_eq!(e.errno(), Errno::NoEnt);
        assert!(t.services().is_empty());
    }

    #[test]
    fn edit_keeps_ids_and_stats() {
        let mut t = ServiceTable::new(2);
        let k = tcp([198, 18, 0, 10], 80);
        let sid = t.add_service(ServiceConfig::new(k, "rr")).unwrap();
        let a = t.add_dest(&k, rs(1)).unwrap();
        let before = t.snapshot();
        let d = before.dest(a).unwrap();
        d.bind_conn(1, false);
        d.stats().slot(1).add_conn();
        let mut c = rs(1);
        c.weight = 7;
        t.edit_dest(&k, c).unwrap();
        t.edit_service(ServiceConfig::new(k, "wrr")).unwrap();
        let after = t.snapshot();
        assert!(after.generation() > before.generation());
        let d2 = after.dest(a).unwrap();
        assert_eq!(d2.weight(), 7);
        assert!(Arc::ptr_eq(d.stats(), d2.stats()));
        assert_eq!(d2.active_conns(), 1);
        assert_eq!(d2.stats().sum().conns, 1);
        let svc = after.service(sid).unwrap();
        assert_eq!(svc.scheduler(), "wrr");
        assert!(Arc::ptr_eq(
            before.service(sid).unwrap().stats(),
            svc.stats()
        ));
        assert!(svc.version() > before.service(sid).unwrap().version());
    }

    #[test]
    fn snapshot_is_cached_until_mutation() {
        let mut t = ServiceTable::new(1);
        let s1 = t.snapshot();
        let s2 = t.snapshot();
        assert!(Arc::ptr_eq(&s1, &s2));
        t.add_service(ServiceConfig::new(tcp([198, 18, 0, 10], 80), "rr"))
            .unwrap();
        assert!(!Arc::ptr_eq(&s1, &t.snapshot()));
    }

    #[test]
    fn ids_are_never_reused() {
        let mut t = ServiceTable::new(1);
        let k = tcp([198, 18, 0, 10], 80);
        let s1 = t.add_service(ServiceConfig::new(k, "rr")).unwrap();
        let d1 = t.add_dest(&k, rs(1)).unwrap();
        t.clear();
        let s2 = t.add_service(ServiceConfig::new(k, "rr")).unwrap();
        let d2 = t.add_dest(&k, rs(1)).unwrap();
        assert_ne!(s1, s2);
        assert_ne!(d1, d2);
        assert!(t.snapshot().dest(d1).is_none());
    }

    #[test]
    fn port_zero_and_fwmark_lookups() {
        let mut t = ServiceTable::new(1);
        let all = tcp([198, 18, 0, 10], 0);
        let mut c = ServiceConfig::new(all, "rr");
        c.persistence = Some(360);
        t.add_service(c).unwrap();
        t.add_service(ServiceConfig::new(ServiceKey::Fwmark(5), "rr"))
            .unwrap();
        let e = t
            .add_service(ServiceConfig::new(ServiceKey::Fwmark(0), "rr"))
            .unwrap_err();
        assert_eq!(e.errno(), Errno::Inval);
        let snap = t.snapshot();
        let vip = Ipv4Addr::new(198, 18, 0, 10);
        assert_eq!(snap.lookup(6, vip, 443).unwrap().key(), all);
        assert!(snap.lookup_fwmark(5).is_some());
        assert!(snap.lookup_fwmark(6).is_none());
    }

    #[test]
    fn lower_threshold_above_upper_is_erange_and_changes_nothing() {
        let mut t = ServiceTable::new(1);
        let k = tcp([198, 18, 0, 10], 80);
        t.add_service(ServiceConfig::new(k, "rr")).unwrap();
        let before = t.snapshot();
        let mut d = rs(1);
        (d.upper_threshold, d.lower_threshold) = (10, 20);
        let e = t.add_dest(&k, d).unwrap_err();
        assert_eq!(
            e,
            ServiceError::ThresholdOrder {
                lower: 20,
                upper: 10
            }
        );
        assert_eq!((e.errno(), e.errno().raw()), (Errno::Range, 34));
        // As the kernel: no upper threshold (0) does not make any lower one acceptable.
        (d.upper_threshold, d.lower_threshold) = (0, 5);
        assert_eq!(t.add_dest(&k, d).unwrap_err().errno(), Errno::Range);
        assert!(Arc::ptr_eq(&before, &t.snapshot()), "table unchanged");
        // Equal, or lower below upper, is fine; an edit is checked the same way.
        (d.upper_threshold, d.lower_threshold) = (20, 10);
        t.add_dest(&k, d).unwrap();
        (d.upper_threshold, d.lower_threshold) = (20, 20);
        t.edit_dest(&k, d).unwrap();
        (d.upper_threshold, d.lower_threshold) = (10, 11);
        assert_eq!(t.edit_dest(&k, d).unwrap_err().errno(), Errno::Range);
        let snap = t.snapshot();
        let got = snap.services()[0].dests()[0].lower_threshold();
        assert_eq!(got, 20, "the refused edit left the dest as it was");
    }

    #[test]
    fn zero_resets_counters_not_gauges() {
        let mut t = ServiceTable::new(1);
        let k = tcp([198, 18, 0, 10], 80);
        t.add_service(ServiceConfig::new(k, "rr")).unwrap();
        let a = t.add_dest(&k, rs(1)).unwrap();
        let snap = t.snapshot();
        let d = snap.dest(a).unwrap();
        d.stats().slot(0).add_conn();
        d.bind_conn(0, true);
        snap.services()[0].stats().slot(0).add_in(60);
        t.zero_service(&k).unwrap();
        assert_eq!(d.stats().sum().conns, 0);
        assert_eq!(d.inactive_conns(), 1);
        assert_eq!(snap.services()[0].stats().sum().inbytes, 0);
    }

    #[test]
    fn overload_hysteresis() {
        let mut t = ServiceTable::new(2);
        let k = tcp([198, 18, 0, 10], 80);
        t.add_service(ServiceConfig::new(k, "rr")).unwrap();
        let mut c = rs(1);
        c.upper_threshold = 4;
        let a = t.add_dest(&k, c).unwrap();
        let snap = t.snapshot();
        let d = snap.dest(a).unwrap();
        for w in 0..3 {
            d.bind_conn(w % 2, false);
        }
        assert!(!d.is_overloaded());
        d.bind_conn(1, true); // total 4 >= 4
        assert!(d.is_overloaded());
        assert!(!d.is_available());
        d.unbind_conn(1, true); // total 3: 12 < 12 is false, stays
        assert!(d.is_overloaded());
        d.unbind_conn(0, false); // total 2: 8 < 12
        assert!(!d.is_overloaded());
        // With a lower threshold: clears only below it.
        let mut c = rs(1);
        c.upper_threshold = 3;
        c.lower_threshold = 1;
        t.edit_dest(&k, c).unwrap();
        let snap = t.snapshot();
        let d = snap.dest(a).unwrap();
        d.bind_conn(0, false); // total 3
        assert!(d.is_overloaded());
        d.unbind_conn(0, false); // 2
        d.unbind_conn(0, false); // 1
        assert!(d.is_overloaded());
        d.unbind_conn(1, false); // 0 < 1
        assert!(!d.is_overloaded());
        // Raising the upper threshold on edit clears the flag, as IPVS.
        d.bind_conn(0, false);
        d.bind_conn(0, false);
        d.bind_conn(0, false);
        assert!(d.is_overloaded());
        c.upper_threshold = 10;
        t.edit_dest(&k, c).unwrap();
        assert!(!t.snapshot().dest(a).unwrap().is_overloaded());
    }

    fn tcp6(vip: &str, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: vip.parse::<Ipv6Addr>().unwrap().into(),
            vport: port,
        }
    }

    fn dest(addr: &str, method: ForwardMethod) -> DestConfig {
        DestConfig::new(addr.parse::<IpAddr>().unwrap(), 80, method)
    }

    /// A dest has its service's family; an IPv6 service also takes IPv4 FULLNAT dests (NAT64).
    /// Every other mix is EAFNOSUPPORT, on -a and -e, and the table keeps what it had.
    #[test]
    fn family_rules() {
        let mut t = ServiceTable::new(1);
        let v4 = tcp([198, 18, 0, 10], 80);
        let v6 = tcp6("2001:2::100", 80);
        t.add_service(ServiceConfig::new(v4, "rr")).unwrap();
        t.add_service(ServiceConfig::new(v6, "rr")).unwrap();
        t.add_service(ServiceConfig::new(ServiceKey::Fwmark(5), "rr"))
            .unwrap();
        t.add_dest(&v6, dest("2001:2:1::11", ForwardMethod::Masq))
            .unwrap();
        t.add_dest(&v6, dest("2001:2:1::12", ForwardMethod::FullNat))
            .unwrap();
        t.add_dest(&v6, dest("198.18.1.11", ForwardMethod::FullNat))
            .unwrap();
        t.add_dest(&v4, dest("198.18.1.11", ForwardMethod::Masq))
            .unwrap();
        let generation = t.generation();
        let refused = [
            (v6, dest("198.18.1.12", ForwardMethod::Masq)),
            (v6, dest("198.18.1.12", ForwardMethod::Route)),
            (v6, dest("198.18.1.12", ForwardMethod::Tunnel)),
            (v4, dest("2001:2:1::11", ForwardMethod::Masq)),
            (v4, dest("2001:2:1::11", ForwardMethod::FullNat)),
            (v4, dest("2001:2:1::11", ForwardMethod::Tunnel)),
            (
                ServiceKey::Fwmark(5),
                dest("2001:2:1::11", ForwardMethod::Route),
            ),
        ];
        for (k, d) in refused {
            let e = t.add_dest(&k, d).unwrap_err();
            assert_eq!(e.errno(), Errno::AfNoSupport, "{k} {:?}", d);
            assert_eq!(e.errno().raw(), 97);
        }
        // -e of the NAT64 dest to another method is refused the same way.
        let e = t
            .edit_dest(&v6, dest("198.18.1.11", ForwardMethod::Masq))
            .unwrap_err();
        assert_eq!(e.errno(), Errno::AfNoSupport);
        assert_eq!(t.generation(), generation, "nothing changed");
        assert_eq!(t.dests(&v6).unwrap().len(), 3);
        // Deleting by address works for both families.
        t.del_dest(&v6, "198.18.1.11".parse().unwrap(), 80).unwrap();
        t.del_dest(&v6, "2001:2:1::11".parse().unwrap(), 80)
            .unwrap();
        assert_eq!(t.dests(&v6).unwrap().len(), 1);
    }

    #[test]
    fn ipv6_prefix_length_is_checked() {
        let mut t = ServiceTable::new(1);
        let mut c = ServiceConfig::new(tcp6("2001:2::100", 80), "rr");
        c.persistence = Some(300);
        for bad in [0, 129] {
            c.prefix6 = bad;
            assert_eq!(t.add_service(c.clone()).unwrap_err().errno(), Errno::Inval);
        }
        c.prefix6 = 64;
        t.add_service(c).unwrap();
    }

    /// The SYN proxy, PROXY headers and UOA are not built for IPv6 connections: an IPv6
    /// service asking for them is refused (EINVAL) and the table is unchanged.
    #[test]
    fn ipv6_services_refuse_what_ipv6_connections_do_not_have() {
        let mut t = ServiceTable::new(1);
        let mut c = ServiceConfig::new(tcp6("2001:2::100", 80), "rr");
        c.synproxy = true;
        let e = t.add_service(c.clone()).unwrap_err();
        assert_eq!(e.errno(), Errno::Inval);
        assert!(e.to_string().contains("SYN proxy"), "{e}");
        c.synproxy = false;
        c.client_addr.proxy = crate::service::ProxyProtocol::V2;
        assert_eq!(t.add_service(c.clone()).unwrap_err().errno(), Errno::Inval);
        c.client_addr.proxy = crate::service::ProxyProtocol::Disable;
        c.client_addr.uoa = crate::service::UoaMode::Opp;
        assert_eq!(t.add_service(c.clone()).unwrap_err().errno(), Errno::Inval);
        assert!(t.snapshot().services().is_empty());
        c.client_addr.uoa = crate::service::UoaMode::Disable;
        t.add_service(c).unwrap();
    }

    #[test]
    fn ipv6_lookups_and_port_zero_fallback() {
        let mut t = ServiceTable::new(1);
        let vip: Ipv6Addr = "2001:2::100".parse().unwrap();
        t.add_service(ServiceConfig::new(tcp6("2001:2::100", 80), "rr"))
            .unwrap();
        let mut all = ServiceConfig::new(tcp6("2001:2::100", 0), "rr");
        all.persistence = Some(60);
        t.add_service(all).unwrap();
        // An IPv4 service of the same port does not answer IPv6 lookups, nor the reverse.
        t.add_service(ServiceConfig::new(tcp([198, 18, 0, 10], 80), "rr"))
            .unwrap();
        t.add_dest(
            &tcp6("2001:2::100", 80),
            dest("2001:2:1::11", ForwardMethod::Masq),
        )
        .unwrap();
        t.add_dest(
            &tcp6("2001:2::100", 80),
            dest("198.18.1.11", ForwardMethod::FullNat),
        )
        .unwrap();
        let snap = t.snapshot();
        let s = snap.lookup6(6, vip, 80).unwrap();
        assert_eq!(s.key(), tcp6("2001:2::100", 80));
        assert_eq!(
            snap.lookup6(6, vip, 443).unwrap().key(),
            tcp6("2001:2::100", 0)
        );
        assert!(snap.lookup6(17, vip, 80).is_none());
        assert!(
            snap.lookup6(6, "2001:2::101".parse().unwrap(), 80)
                .is_none()
        );
        assert!(snap.is_vip6(vip) && !snap.is_vip6("2001:2::1".parse().unwrap()));
        assert!(!snap.is_vip6("::ffff:198.18.0.10".parse().unwrap()));
        // IPv4 lookups are unchanged.
        let v4 = snap.lookup(6, Ipv4Addr::new(198, 18, 0, 10), 80).unwrap();
        assert_eq!(v4.key(), tcp([198, 18, 0, 10], 80));
        assert!(snap.lookup(6, Ipv4Addr::new(198, 18, 0, 10), 81).is_none());
        assert!(snap.is_vip(Ipv4Addr::new(198, 18, 0, 10)));
        // The NAT rips of both families.
        assert!(s.is_nat_rip6("2001:2:1::11".parse().unwrap()));
        assert!(s.is_nat_rip(Ipv4Addr::new(198, 18, 1, 11)));
        assert!(!s.is_nat_rip6("2001:2:1::12".parse().unwrap()));
        let d = &s.dests()[0];
        assert_eq!(d.addr4(), Some(Ipv4Addr::new(198, 18, 1, 11)));
        assert_eq!(d.addr6(), None);
        assert_eq!(s.dests()[1].addr6(), Some("2001:2:1::11".parse().unwrap()));
    }
}
