//! Persistence templates (`ipvsadm -p [timeout] -M netmask`), shared by every worker.
//!
//! IPVS implements persistence with *connection templates* (docs/ipvsadm-compat.md section 5.2): a
//! template maps `<proto, caddr & mask, vaddr, vport>` to the dest a client was first scheduled
//! to; every later connection of that client (network) to the service takes the template's dest
//! instead of asking the scheduler, and is *controlled* by the template. Keys:
//! - a normal service: `<proto, caddr&mask, vaddr, vport>`;
//! - a port-0 (all ports) or FTP (port 21) service: `<proto, caddr&mask, vaddr, 0>`;
//! - a fwmark service: `<IPPROTO_IP (0), caddr&mask, fwmark as an address, 0>`.
//!
//! Lifetime, as IPVS: a template expires at its last use plus the service's persistence timeout;
//! when that moment comes while it still controls live connections it is re-armed for another
//! timeout (IPVS `expire_later`). A template whose dest was removed is dropped (at its next use
//! or sweep); a template of a weight-0 dest is kept and honoured (`expire_quiescent_template` = 0,
//! the IPVS default). A template becomes ASSURED when a controlled TCP connection reaches
//! ESTABLISHED or a controlled UDP connection sees a reply; a non-assured template whose last
//! controlled connection is removed before its time (port reuse, dest removed) is dropped with
//! it, as IPVS does.
//!
//! Why one table for all workers (docs/architecture.md section 3): steering spreads a client's connections
//! over workers by (CIP, cport), so two connections of one client, or of two clients of one
//! netmask, may well land on different workers; persistence must still send them to one dest.
//! A per-worker template would break that, and forwarding every new connection of a persistent
//! service to one "template owner" worker would cost a ring hop per connection. So templates live
//! in one table shared by `Arc`: [`STRIPES`] mutex-protected stripes, each a hash index plus a
//! pre-sized slab, chosen by the key's hash. The table is touched only on a new connection of a
//! persistent service (one stripe lock: find or create, scheduling under the lock so two workers
//! never create two templates for one key), when a controlled connection ends (release), and by
//! the periodic sweep, in which worker `i` of `n` owns the stripes `s % n == i` (one stripe per
//! tick). Packets of established connections never touch it. Each template's `persistconns`
//! count is added on the creating worker's stats slot and removed on the releasing worker's slot
//! (single writer per slot; the sum over slots is exact).
//!
//! A connection refers to its template by [`TemplateRef`] (stripe and slot, a `u32` kept in the
//! connection record). A slot is freed only when no connection refers to it any more: a dropped
//! template with live controlled connections leaves the index at once (a new lookup creates a new
//! template) but keeps its slot until the last of them is released.

use core::time::Duration;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};

use crate::conn::{ConnKey, ConnKey6};
use crate::service::snapshot::FastBuildHasher;
use crate::service::{DestId, Service, ServiceId, ServiceKey, Snapshot};
use crate::time::Instant;

/// Number of lock stripes.
pub const STRIPES: usize = 64;
/// The protocol of fwmark templates (`IPPROTO_IP`, listed as `IP`).
pub const IPPROTO_IP: u8 = 0;
/// The FTP control port: persistent FTP services key their templates on vport 0.
const FTP_PORT: u16 = 21;

/// What a template is found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    /// IP protocol, or [`IPPROTO_IP`] for fwmark services.
    pub proto: u8,
    /// Client address & netmask (IPv4), or the client's network of the service's prefix
    /// length (IPv6, [`client_net6`]).
    pub client: IpAddr,
    /// The VIP, or the fwmark as an IPv4 address (IPVS `htonl(fwmark)`).
    pub vaddr: IpAddr,
    /// The service port, 0 for port-0, FTP and fwmark services.
    pub vport: u16,
}

impl TemplateKey {
    /// The template key of a new connection `key` to the persistent service `svc`.
    pub fn of(svc: &Service, key: &ConnKey) -> TemplateKey {
        let client = Ipv4Addr::from_bits(key.src.to_bits() & svc.config().netmask.to_bits());
        Self::with(svc, key.proto, client.into(), key.dst.into(), key.dport)
    }

    /// The template key of a new IPv6 connection `key` to the persistent IPv6 service `svc`:
    /// the client's network is its first `-M` bits (the service's prefix length).
    pub fn of6(svc: &Service, key: &ConnKey6) -> TemplateKey {
        let client = client_net6(key.src, svc.config().prefix6);
        Self::with(svc, key.proto, client.into(), key.dst.into(), key.dport)
    }

    fn with(svc: &Service, proto: u8, client: IpAddr, vaddr: IpAddr, dport: u16) -> TemplateKey {
        match svc.config().key {
            ServiceKey::Fwmark(mark) => TemplateKey {
                proto: IPPROTO_IP,
                client,
                vaddr: Ipv4Addr::from_bits(mark).into(),
                vport: 0,
            },
            ServiceKey::Addr { vport, .. } => TemplateKey {
                proto,
                client,
                vaddr,
                vport: if vport == 0 || vport == FTP_PORT {
                    0
                } else {
                    dport
                },
            },
        }
    }
}

/// The persistence granularity of an IPv6 service from its `-M` value as the control protocol
/// carries it: for IPv6, IPVS keeps a prefix length there (128 by default) and refuses a service
/// whose value is not 1 to 128 (`EINVAL` from `ip_vs_add_service` and `ip_vs_edit_service`).
/// `None` for such a value.
pub fn persist_prefix6(netmask: u32) -> Option<u8> {
    u8::try_from(netmask).ok().filter(|p| (1..=128).contains(p))
}

/// The network of an IPv6 client for persistence: `addr` with every bit after the first
/// `prefix_len` cleared, what IPVS's `ipv6_addr_prefix` gives for the template's client address
/// (the IPv4 counterpart is `caddr & netmask` in [`TemplateKey::of`]). A length above 128 is 128.
pub fn client_net6(addr: Ipv6Addr, prefix_len: u8) -> Ipv6Addr {
    let keep = u32::from(prefix_len.min(128));
    let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
    Ipv6Addr::from_bits(addr.to_bits() & mask)
}

/// A connection's handle on its controlling template: stripe and slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TemplateRef(pub u32);

const SLOT_BITS: u32 = 26;

impl TemplateRef {
    fn new(stripe: usize, slot: u32) -> TemplateRef {
        TemplateRef(((stripe as u32) << SLOT_BITS) | slot)
    }
    fn stripe(self) -> usize {
        (self.0 >> SLOT_BITS) as usize % STRIPES
    }
    fn slot(self) -> usize {
        (self.0 & ((1 << SLOT_BITS) - 1)) as usize
    }
}

/// A template as listings show it (`ipvsadm -Lnc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateView {
    pub key: TemplateKey,
    /// `NONE` or `ASSURED`.
    pub state: &'static str,
    pub expires_in: Duration,
    pub dest: (IpAddr, u16),
    /// Connections it controls now.
    pub controls: u32,
}

#[derive(Debug, Clone, Copy)]
struct Template {
    key: TemplateKey,
    service: ServiceId,
    dest: DestId,
    dest_addr: (IpAddr, u16),
    deadline: Instant,
    /// The service's persistence timeout when last used.
    timeout: Duration,
    n_control: u32,
    assured: bool,
    /// In the index (findable); false once dropped while connections still refer to it.
    live: bool,
}

#[derive(Debug)]
struct Stripe {
    index: HashMap<TemplateKey, u32, FastBuildHasher>,
    slots: Vec<Option<Template>>,
    free: Vec<u32>,
    capacity: usize,
}

impl Stripe {
    fn alloc(&mut self, t: Template) -> Option<u32> {
        if let Some(i) = self.free.pop() {
            self.slots[i as usize] = Some(t);
            return Some(i);
        }
        if self.slots.len() >= self.capacity {
            return None;
        }
        self.slots.push(Some(t));
        Some((self.slots.len() - 1) as u32)
    }

    /// Take template `i` out of the index; free its slot if nothing refers to it. Returns the
    /// template if it was live (so its `persistconns` must be released).
    fn drop_template(&mut self, i: u32) -> Option<Template> {
        let t = self.slots.get_mut(i as usize)?.as_mut()?;
        if !t.live {
            return None;
        }
        t.live = false;
        let t = *t;
        self.index.remove(&t.key);
        if t.n_control == 0 {
            self.slots[i as usize] = None;
            self.free.push(i);
        }
        Some(t)
    }
}

/// A template detached from its table, for restart with state: found again by its key, bound
/// again to its dest by address, with the time it had left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateRecord {
    pub key: TemplateKey,
    pub service: ServiceKey,
    pub dest: (IpAddr, u16),
    /// Time left before it expires (unless it controls connections then), milliseconds.
    pub remaining_ms: u64,
    /// The service's persistence timeout when it was last used, seconds.
    pub timeout_secs: u64,
    pub assured: bool,
}

/// Why no template could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PersistError {
    #[error("the scheduler found no available dest")]
    NoDest,
    #[error("the persistence template table is full")]
    Full,
}

/// The shared template table. See the module docs.
#[derive(Debug)]
pub struct PersistTable {
    stripes: Box<[Mutex<Stripe>]>,
    hasher: FastBuildHasher,
    n_workers: usize,
}

fn lock(m: &Mutex<Stripe>) -> MutexGuard<'_, Stripe> {
    // A panic under the lock aborts the daemon (panic = "abort"); tests recover the guard.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PersistTable {
    /// A table for up to about `capacity` templates (rounded up to a multiple of [`STRIPES`]),
    /// swept by `n_workers` workers. Index and slab are pre-sized.
    pub fn new(capacity: usize, n_workers: usize) -> PersistTable {
        let per = capacity.div_ceil(STRIPES).clamp(1, 1 << SLOT_BITS);
        let stripes = (0..STRIPES)
            .map(|_| {
                Mutex::new(Stripe {
                    index: HashMap::with_capacity_and_hasher(per, FastBuildHasher::default()),
                    slots: Vec::with_capacity(per),
                    free: Vec::with_capacity(per),
                    capacity: per,
                })
            })
            .collect();
        PersistTable {
            stripes,
            hasher: FastBuildHasher::default(),
            n_workers: n_workers.max(1),
        }
    }

    /// Number of workers sharing the sweep.
    pub fn n_workers(&self) -> usize {
        self.n_workers
    }

    fn stripe_of(&self, key: &TemplateKey) -> usize {
        let h = self.hasher.hash_one(key);
        ((h ^ (h >> 32)) as usize) % STRIPES
    }

    /// The dest for a new connection of persistent service `svc` whose client network is
    /// `tkey` ([`TemplateKey::of`] for IPv4, [`TemplateKey::of6`] for IPv6: both families share
    /// the table), and the template that now controls it. An existing template whose dest is
    /// still in the service is reused (and its expiry pushed to `now + timeout`); else
    /// `schedule` picks a dest index into `svc.dests()` and a template is created for it, bound
    /// on `worker`'s stats slot.
    pub fn schedule(
        &self,
        now: Instant,
        worker: usize,
        svc: &Service,
        tkey: TemplateKey,
        schedule: impl FnOnce() -> Option<usize>,
    ) -> Result<(usize, TemplateRef), PersistError> {
        let timeout = Duration::from_secs(u64::from(svc.config().persistence.unwrap_or(0)));
        let si = self.stripe_of(&tkey);
        let mut st = lock(&self.stripes[si]);
        if let Some(&i) = st.index.get(&tkey) {
            let found = st.slots.get(i as usize).copied().flatten();
            let idx = found.and_then(|t| {
                (t.service == svc.id())
                    .then(|| svc.dests().iter().position(|d| d.id() == t.dest))
                    .flatten()
            });
            match idx {
                Some(idx) => {
                    if let Some(Some(t)) = st.slots.get_mut(i as usize) {
                        t.n_control = t.n_control.saturating_add(1);
                        t.deadline = now + timeout;
                        t.timeout = timeout;
                    }
                    return Ok((idx, TemplateRef::new(si, i)));
                }
                None => {
                    // Its dest is gone (or the service was replaced): drop it, schedule anew.
                    if let Some(t) = st.drop_template(i) {
                        unbind(svc, t.dest, worker);
                    }
                }
            }
        }
        let idx = schedule().ok_or(PersistError::NoDest)?;
        let dest = svc.dests().get(idx).ok_or(PersistError::NoDest)?;
        let t = Template {
            key: tkey,
            service: svc.id(),
            dest: dest.id(),
            dest_addr: (dest.addr(), dest.port()),
            deadline: now + timeout,
            timeout,
            n_control: 1,
            assured: false,
            live: true,
        };
        let i = st.alloc(t).ok_or(PersistError::Full)?;
        st.index.insert(tkey, i);
        dest.bind_template(worker);
        Ok((idx, TemplateRef::new(si, i)))
    }

    /// A controlled connection reached ESTABLISHED (TCP) or saw a reply (UDP).
    pub fn assure(&self, r: TemplateRef) {
        let mut st = lock(&self.stripes[r.stripe()]);
        if let Some(Some(t)) = st.slots.get_mut(r.slot()) {
            t.assured = true;
        }
    }

    /// A controlled connection ended. `early`: it was removed before its time (port reuse, dest
    /// removed), which drops a template that is left controlling nothing and is not assured.
    pub fn release(&self, r: TemplateRef, early: bool, worker: usize, services: &Snapshot) {
        let mut st = lock(&self.stripes[r.stripe()]);
        let i = r.slot() as u32;
        let Some(Some(t)) = st.slots.get_mut(i as usize) else {
            return;
        };
        t.n_control = t.n_control.saturating_sub(1);
        let t = *t;
        if t.n_control > 0 {
            return;
        }
        if !t.live {
            st.slots[i as usize] = None;
            st.free.push(i);
        } else if early && !t.assured && st.drop_template(i).is_some() {
            unbind_id(services, t.dest, worker);
        }
    }

    /// Expire what is due in stripe `stripe` (a no-op unless `worker` owns it: `stripe % n ==
    /// worker`). Templates controlling connections are re-armed for another timeout; templates
    /// whose dest was removed are dropped. Returns how many were dropped.
    pub fn sweep(&self, stripe: usize, now: Instant, worker: usize, services: &Snapshot) -> usize {
        if stripe >= STRIPES || stripe % self.n_workers != worker % self.n_workers {
            return 0;
        }
        let mut st = lock(&self.stripes[stripe]);
        let mut dropped = 0;
        for i in 0..st.slots.len() as u32 {
            let Some(t) = st.slots[i as usize] else {
                continue;
            };
            if !t.live {
                continue;
            }
            let dest_ok = services
                .dest_with_service(t.dest)
                .is_some_and(|(s, _)| s.id() == t.service);
            if dest_ok && t.deadline > now {
                continue;
            }
            if dest_ok && t.n_control > 0 {
                if let Some(Some(t)) = st.slots.get_mut(i as usize) {
                    t.deadline = now + t.timeout.max(Duration::from_secs(1));
                }
                continue;
            }
            if st.drop_template(i).is_some() {
                unbind_id(services, t.dest, worker);
                dropped += 1;
            }
        }
        dropped
    }

    /// The stripes worker `worker` sweeps, in order.
    pub fn stripes_of(&self, worker: usize) -> impl Iterator<Item = usize> + use<> {
        let (n, w) = (self.n_workers, worker % self.n_workers);
        (0..STRIPES).filter(move |s| s % n == w)
    }

    /// Live templates in the stripes of `worker` (so that listing every worker's lists every
    /// template once).
    pub fn views(&self, now: Instant, worker: usize) -> Vec<TemplateView> {
        let mut out = Vec::new();
        for s in self.stripes_of(worker) {
            let st = lock(&self.stripes[s]);
            out.extend(
                st.slots
                    .iter()
                    .flatten()
                    .filter(|t| t.live)
                    .map(|t| TemplateView {
                        key: t.key,
                        state: if t.assured { "ASSURED" } else { "NONE" },
                        expires_in: t.deadline.saturating_since(now),
                        dest: t.dest_addr,
                        controls: t.n_control,
                    }),
            );
        }
        out
    }

    /// Every live template, with its time left at `now` (restart with state).
    pub fn export(&self, now: Instant, services: &Snapshot) -> Vec<TemplateRecord> {
        let mut out = Vec::new();
        for stripe in self.stripes.iter() {
            let st = lock(stripe);
            for t in st.slots.iter().flatten().filter(|t| t.live) {
                let Some(svc) = services.service(t.service) else {
                    continue;
                };
                out.push(TemplateRecord {
                    key: t.key,
                    service: svc.key(),
                    dest: t.dest_addr,
                    remaining_ms: t.deadline.saturating_since(now).as_millis() as u64,
                    timeout_secs: t.timeout.as_secs(),
                    assured: t.assured,
                });
            }
        }
        out
    }

    /// Put back templates exported by a previous process `elapsed` ago, before any worker
    /// runs: each controls nothing until [`PersistTable::attach`] gives it its connections
    /// again, and is bound (`persistconns`) on `worker`'s stats slot. Records whose service or
    /// dest is gone, whose time is up, or that find their key taken or the table full are left
    /// out. Returns how many came back.
    pub fn import(
        &self,
        now: Instant,
        elapsed: Duration,
        records: &[TemplateRecord],
        services: &Snapshot,
        worker: usize,
    ) -> usize {
        let mut restored = 0;
        for r in records {
            let left = Duration::from_millis(r.remaining_ms).saturating_sub(elapsed);
            if left.is_zero() {
                continue;
            }
            let Some(svc) = services.services().iter().find(|s| s.key() == r.service) else {
                continue;
            };
            let Some(dest) = svc.find_dest(r.dest.0, r.dest.1) else {
                continue;
            };
            let si = self.stripe_of(&r.key);
            let mut st = lock(&self.stripes[si]);
            if st.index.contains_key(&r.key) {
                continue;
            }
            let t = Template {
                key: r.key,
                service: svc.id(),
                dest: dest.id(),
                dest_addr: r.dest,
                deadline: now + left,
                timeout: Duration::from_secs(r.timeout_secs),
                n_control: 0,
                assured: r.assured,
                live: true,
            };
            let Some(i) = st.alloc(t) else {
                continue;
            };
            st.index.insert(r.key, i);
            dest.bind_template(worker);
            restored += 1;
        }
        restored
    }

    /// A connection restored from a previous process was controlled by a template: the live
    /// template of its key (in service `svc`) controls it again. `None` when there is none.
    pub fn attach(&self, svc: &Service, key: &ConnKey) -> Option<TemplateRef> {
        self.attach_key(svc, TemplateKey::of(svc, key))
    }

    /// [`PersistTable::attach`] for a restored IPv6 connection (NAT64 ones too: the key is
    /// the IPv6 client's).
    pub fn attach6(&self, svc: &Service, key: &ConnKey6) -> Option<TemplateRef> {
        self.attach_key(svc, TemplateKey::of6(svc, key))
    }

    fn attach_key(&self, svc: &Service, tkey: TemplateKey) -> Option<TemplateRef> {
        let si = self.stripe_of(&tkey);
        let mut st = lock(&self.stripes[si]);
        let i = *st.index.get(&tkey)?;
        let t = st.slots.get_mut(i as usize)?.as_mut()?;
        if t.service != svc.id() || !t.live {
            return None;
        }
        t.n_control = t.n_control.saturating_add(1);
        Some(TemplateRef::new(si, i))
    }

    /// Live templates in all stripes.
    pub fn len(&self) -> usize {
        self.stripes.iter().map(|s| lock(s).index.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unbind(svc: &Service, dest: DestId, worker: usize) {
    if let Some(d) = svc.dests().iter().find(|d| d.id() == dest) {
        d.unbind_template(worker);
    }
}

fn unbind_id(services: &Snapshot, dest: DestId, worker: usize) {
    if let Some(d) = services.dest(dest) {
        d.unbind_template(worker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// `ipv6_addr_prefix` written the long way, byte by byte as the kernel does: whole bytes
    /// kept, the next byte masked with its top `plen % 8` bits, the rest zero.
    fn by_bytes(addr: Ipv6Addr, plen: u8) -> Ipv6Addr {
        let (src, plen) = (addr.octets(), usize::from(plen.min(128)));
        let mut out = [0u8; 16];
        let (whole, bits) = (plen / 8, plen % 8);
        out[..whole].copy_from_slice(&src[..whole]);
        if bits != 0 {
            out[whole] = src[whole] & (0xff00u16 >> bits) as u8;
        }
        Ipv6Addr::from(out)
    }

    /// `-M 64` on an IPv6 service: two clients of one /64 share a template (and its dest), a
    /// client of another /64 gets its own; IPv4 templates share the table unchanged.
    #[test]
    fn ipv6_clients_of_one_prefix_share_a_template() {
        use crate::service::{DestConfig, ForwardMethod, Protocol, ServiceConfig, ServiceTable};
        let mut t = ServiceTable::new(1);
        let vip: Ipv6Addr = "2001:2::100".parse().unwrap();
        let key6 = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: vip.into(),
            vport: 80,
        };
        let key4 = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: Ipv4Addr::new(198, 18, 0, 10).into(),
            vport: 80,
        };
        let mut c = ServiceConfig::new(key6, "rr");
        c.persistence = Some(300);
        c.prefix6 = 64;
        t.add_service(c).unwrap();
        let mut c4 = ServiceConfig::new(key4, "rr");
        c4.persistence = Some(300);
        t.add_service(c4).unwrap();
        for last in [11u16, 12] {
            let a = Ipv6Addr::new(0x2001, 2, 1, 0, 0, 0, 0, last);
            t.add_dest(&key6, DestConfig::new(a, 80, ForwardMethod::Masq))
                .unwrap();
            let a4 = Ipv4Addr::new(198, 18, 1, last as u8);
            t.add_dest(&key4, DestConfig::new(a4, 80, ForwardMethod::Masq))
                .unwrap();
        }
        let snap = t.snapshot();
        let svc = snap.lookup6(6, vip, 80).unwrap();
        let svc4 = snap.lookup(6, Ipv4Addr::new(198, 18, 0, 10), 80).unwrap();
        let table = PersistTable::new(4096, 1);
        let now = Instant::from_secs(10);
        let conn = |src: &str, sport| ConnKey6::new(6, src.parse().unwrap(), sport, vip, 80);
        let key6 = |k: &ConnKey6| TemplateKey::of6(svc, k);
        let mut next = 0usize;
        let mut rr = || {
            next += 1;
            Some(next % 2)
        };
        let (a, _) = table
            .schedule(now, 0, svc, key6(&conn("2001:db8:1:2::1", 1000)), &mut rr)
            .unwrap();
        let (b, _) = table
            .schedule(
                now,
                0,
                svc,
                key6(&conn("2001:db8:1:2:ffff::9", 1001)),
                || panic!("the /64 has a template"),
            )
            .unwrap();
        assert_eq!(a, b);
        let (c, _) = table
            .schedule(now, 0, svc, key6(&conn("2001:db8:1:3::1", 1002)), &mut rr)
            .unwrap();
        assert_ne!(a, c, "another /64 is scheduled anew");
        let k4 = ConnKey::new(
            6,
            Ipv4Addr::new(10, 0, 0, 1),
            1000,
            Ipv4Addr::new(198, 18, 0, 10),
            80,
        );
        table
            .schedule(now, 0, svc4, TemplateKey::of(svc4, &k4), &mut rr)
            .unwrap();
        let views = table.views(now, 0);
        assert_eq!(views.len(), 3);
        let v6: Vec<_> = views.iter().filter(|v| v.key.client.is_ipv6()).collect();
        assert_eq!(v6.len(), 2);
        assert!(
            v6.iter()
                .any(|v| v.key.client == "2001:db8:1:2::".parse::<IpAddr>().unwrap())
        );
        assert!(
            v6.iter()
                .all(|v| v.key.vaddr == IpAddr::V6(vip) && v.key.vport == 80)
        );
        let v4 = views.iter().find(|v| v.key.client.is_ipv4()).unwrap();
        assert_eq!(v4.key.client, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(svc.dests()[a].persistent_conns(), 1);
    }

    #[test]
    fn ipv6_client_networks() {
        let c = a("2001:db8:1234:5678:9abc:def0:1357:2468");
        assert_eq!(client_net6(c, 128), c);
        assert_eq!(client_net6(c, 64), a("2001:db8:1234:5678::"));
        assert_eq!(client_net6(c, 48), a("2001:db8:1234::"));
        assert_eq!(client_net6(c, 36), a("2001:db8:1000::"));
        assert_eq!(client_net6(c, 1), a("::"));
        assert_eq!(client_net6(a("ffff::1"), 1), a("8000::"));
        assert_eq!(client_net6(a("::3"), 127), a("::2"));
        assert_eq!(client_net6(c, 0), Ipv6Addr::UNSPECIFIED);
        assert_eq!(client_net6(c, 200), c);
        // Two clients of one /64 share a template key; a client of the next /64 does not.
        let (x, y, z) = (a("2001:2::1"), a("2001:2::ffff:9"), a("2001:2:0:1::1"));
        assert_eq!(client_net6(x, 64), client_net6(y, 64));
        assert_ne!(client_net6(x, 64), client_net6(z, 64));
        assert_eq!(client_net6(x, 63), client_net6(z, 63));
    }

    #[test]
    fn ipv6_netmask_is_a_prefix_length_from_1_to_128() {
        assert_eq!(persist_prefix6(128), Some(128));
        assert_eq!(persist_prefix6(1), Some(1));
        assert_eq!(persist_prefix6(64), Some(64));
        assert_eq!(persist_prefix6(0), None);
        assert_eq!(persist_prefix6(129), None);
        // An IPv4 mask is not an IPv6 prefix length.
        assert_eq!(persist_prefix6(0xffff_ffff), None);
        assert_eq!(persist_prefix6(0xffff_ff00), None);
    }

    proptest! {
        #[test]
        fn client_net6_is_the_kernels_prefix(bits in any::<u128>(), plen in 0u8..=255) {
            let addr = Ipv6Addr::from_bits(bits);
            let net = client_net6(addr, plen);
            prop_assert_eq!(net, by_bytes(addr, plen));
            // Idempotent, and a longer prefix of the network is the network.
            prop_assert_eq!(client_net6(net, plen), net);
            let p = plen.min(128);
            prop_assert_eq!(client_net6(client_net6(addr, p.saturating_add(1).min(128)), p), net);
        }
    }
}
