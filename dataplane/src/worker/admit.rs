//! Admission: may this source open a new connection to this service now?
//!
//! [`State::admit`] is the one call that decides, for every path that creates a connection (the
//! plain path in `rx` right before `open_conn`; the SYN proxy when the cookie ACK creates the
//! connection, after [`State::screen`], checks 1 and 2 only, decided whether its SYN got an
//! answer at all). It changes nothing but token buckets and (through its `Err`, which the
//! caller counts) the drop counters. Checks, in order, each with its own drop reason:
//!
//! 1. **A real server posing as a client** (`rip_source`): the source is the address of one of
//!    the service's NAT or FULLNAT real servers and the packet came in on another port than the
//!    one the director routes to that real server. Such a connection cannot work (the real
//!    server's answer would never come back through the director on that side), so it is a
//!    spoofed source, dropped as Linux's reverse-path filter would. When client and real server
//!    are on the same port (a one-armed director), nothing can be told apart and the check
//!    lets it through. DR and TUN real servers are not checked: their clients and real servers
//!    often share a network, and a real server that is also a client of its own VIP is legal
//!    there (the reply leaves the RS directly).
//! 2. **Deny list** (`acl_denied`), then **allow list** (`acl_not_allowed`), see
//!    [`crate::service::access`].
//! 3. **Connection limit** (`svc_conn_limit`): the service's active + inactive connections over
//!    all dests and workers (the dests' shared counts, a few decisions stale for other workers)
//!    are at `--conn-limit`.
//! 4. **Service rate** (`svc_rate_limited`): a token bucket per service and worker. The rate and
//!    burst are split evenly between the workers (each gets `ceil(rate / workers)` and
//!    `ceil(burst / workers)`), which keeps the per-packet path free of shared read-modify-write
//!    atomics (the design's rule for the fast path). New flows are spread over workers by the
//!    client's address and port, so with many clients the sum is the configured rate (at most
//!    `workers - 1` a second above it, from the rounding); a single flow pinned to one worker
//!    gets that worker's share.
//! 5. **Source rate** (`src_rate_limited`): a token bucket per (service, source prefix of
//!    `--src-prefix` bits), split between workers the same way (a client's connections are
//!    spread over workers by its source port). The buckets live in a fixed-size, set-associative
//!    table per worker ([`SrcTable`], [`SRC_TABLE_CAPACITY`] entries, allocated once): a new
//!    source takes a free way of its set, else evicts the way used least recently (counted in
//!    `src_rate_evictions`). An evicted source starts again with a full bucket, so a flood of
//!    distinct sources can at worst let a source through one burst early; it can never grow the
//!    memory or refuse a source that has not used its budget.
//!
//! IPv6 clients (`flow6`) go through the same checks: a real server posing as a client by the
//! service's IPv6 NAT/FULLNAT real servers and the IPv6 routes; the lists hold IPv4 prefixes,
//! so none of their entries matches an IPv6 client: a deny list lets it through, and an allow
//! list refuses it (`acl_not_allowed`: only the listed may connect); the limits and the service
//! rate as for IPv4; the source rate per /64 of the client (`--src-prefix` counts IPv4 bits),
//! the network IPv6 gives one subscriber, its bucket keyed by the folded /64.
//!
//! The rate checks come last so that a refused packet (lists, limit) spends no token. Every
//! refusal is also counted on the service's statistics ([`crate::service::ServiceStats`]), so
//! an operator sees which service refuses what.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::drop::DropReason;
use crate::l3::addr::PortId;
use crate::l3::ratelimit::TokenBucket;
use crate::packet::PacketBuf;
use crate::service::access::{ListKind, Rate, Refusal, mask};
use crate::service::snapshot::FastBuildHasher;
use crate::service::{Service, ServiceId};
use crate::time::Instant;

use super::{State, Tables};

/// Entries of a worker's per-source rate table.
pub const SRC_TABLE_CAPACITY: usize = 16_384;
/// Ways per set of the per-source table.
const WAYS: usize = 4;

/// One service's rate bucket on this worker, with the rate it was made for.
#[derive(Debug, Clone, Copy)]
struct SvcBucket {
    rate: Rate,
    bucket: TokenBucket,
}

/// A per-source bucket.
#[derive(Debug, Clone, Copy)]
struct SrcEntry {
    /// Service id and masked source; `None` when the way is free.
    key: Option<(ServiceId, u32)>,
    rate: Rate,
    bucket: TokenBucket,
    last: Instant,
}

const FREE: SrcEntry = SrcEntry {
    key: None,
    rate: Rate {
        per_sec: 0,
        burst: 0,
    },
    bucket: TokenBucket::new(0, 1),
    last: Instant::ZERO,
};

/// Per-source token buckets, bounded: `SRC_TABLE_CAPACITY / WAYS` sets of `WAYS` ways, least
/// recently used way evicted when a set is full.
#[derive(Debug)]
pub(super) struct SrcTable {
    ways: Vec<SrcEntry>,
    /// Sources evicted to make room for another.
    pub(super) evictions: u64,
}

impl SrcTable {
    fn new(capacity: usize) -> SrcTable {
        let sets = (capacity / WAYS).max(1).next_power_of_two();
        SrcTable {
            ways: vec![FREE; sets * WAYS],
            evictions: 0,
        }
    }

    /// The bucket of `key`, made (full) when absent, reset when its rate changed.
    fn bucket(&mut self, key: (ServiceId, u32), rate: Rate, now: Instant) -> &mut TokenBucket {
        let sets = self.ways.len() / WAYS;
        let h = (u64::from(key.0.0) << 32 | u64::from(key.1)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let set = (h >> 32) as usize & (sets - 1);
        let ways = &mut self.ways[set * WAYS..set * WAYS + WAYS];
        let i = match ways.iter().position(|e| e.key == Some(key)) {
            Some(i) => i,
            None => {
                let i = match ways.iter().position(|e| e.key.is_none()) {
                    Some(i) => i,
                    None => {
                        self.evictions += 1;
                        ways.iter()
                            .enumerate()
                            .min_by_key(|(_, e)| e.last)
                            .map_or(0, |(i, _)| i)
                    }
                };
                ways[i].key = Some(key);
                ways[i].rate = Rate::default();
                i
            }
        };
        let e = &mut ways[i];
        if e.rate != rate {
            e.rate = rate;
            e.bucket = TokenBucket::new(rate.per_sec, rate.effective_burst());
        }
        e.last = now;
        &mut e.bucket
    }

    /// Sources tracked now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ways.iter().filter(|e| e.key.is_some()).count()
    }
}

/// A worker's admission state: its share of each service's rate, and its per-source table.
#[derive(Debug)]
pub(super) struct Admission {
    services: HashMap<ServiceId, SvcBucket, FastBuildHasher>,
    pub(super) sources: SrcTable,
    workers: u32,
}

impl Admission {
    pub(super) fn new(workers: usize) -> Admission {
        Admission {
            services: HashMap::default(),
            sources: SrcTable::new(SRC_TABLE_CAPACITY),
            workers: u32::try_from(workers.max(1)).unwrap_or(u32::MAX),
        }
    }

    /// Forget the buckets of services that are gone, and make room for one per service, so
    /// that a service's first connection on this worker does not grow the map (called when new
    /// tables arrive, off the packet path).
    pub(super) fn retain(&mut self, tables: &Tables) {
        self.services
            .retain(|id, _| tables.services.service(*id).is_some());
        let n = tables.services.services().len();
        self.services.reserve(n.saturating_sub(self.services.len()));
    }

    /// This worker's share of `rate`.
    fn share(&self, rate: Rate) -> Rate {
        Rate {
            per_sec: rate.per_sec.div_ceil(self.workers),
            burst: rate.effective_burst().div_ceil(self.workers),
        }
    }
}

/// Whether `src` is one of `svc`'s NAT/FULLNAT real servers and the packet came in on another
/// port than the one routed to it.
fn rip_posing_as_client(tables: &Tables, svc: &Service, src: IpAddr, in_port: PortId) -> bool {
    match src {
        IpAddr::V4(src) => {
            svc.is_nat_rip(src)
                && tables
                    .routes
                    .lookup(src)
                    .is_some_and(|hop| hop.port != in_port)
        }
        IpAddr::V6(src) => {
            svc.is_nat_rip6(src)
                && tables
                    .v6
                    .routes
                    .lookup(src)
                    .is_some_and(|hop| hop.port != in_port)
        }
    }
}

/// Checks 1 (a real server posing as a client) and 2 (the lists).
fn screen(tables: &Tables, svc: &Service, src: IpAddr, in_port: PortId) -> Result<(), DropReason> {
    if rip_posing_as_client(tables, svc, src, in_port) {
        return Err(DropReason::RipSource);
    }
    let access = svc.access();
    if !access.is_empty() {
        match src {
            IpAddr::V4(src) => access.check(src).map_err(|r| match r {
                Refusal::Denied => DropReason::AclDenied,
                Refusal::NotAllowed => DropReason::AclNotAllowed,
            })?,
            // The lists' IPv4 prefixes never hold an IPv6 client (module doc).
            IpAddr::V6(_) if !access.entries(ListKind::Allow).is_empty() => {
                return Err(DropReason::AclNotAllowed);
            }
            IpAddr::V6(_) => {}
        }
    }
    Ok(())
}

/// A refusal is also counted per service (`rvs_service_refused_total`); the caller counts the
/// drop.
fn counted(
    svc: &Service,
    worker: usize,
    verdict: Result<(), DropReason>,
) -> Result<(), DropReason> {
    if let Err(reason) = verdict {
        svc.stats().count_refusal(worker, reason);
    }
    verdict
}

impl<B: PacketBuf> State<B> {
    /// May `src`, arriving on `in_port`, open a new connection to `svc` at `now`? See the
    /// module doc for the checks and their order. Only buckets change (a token is taken when
    /// the answer is `Ok`).
    pub(super) fn admit(
        &mut self,
        tables: &Tables,
        now: Instant,
        svc: &Service,
        src: IpAddr,
        in_port: PortId,
    ) -> Result<(), DropReason> {
        let verdict = self.decide(tables, now, svc, src, in_port);
        counted(svc, self.cfg.id, verdict)
    }

    /// Checks 1 and 2 only (who may connect, not how many): what a SYN proxy asks before it
    /// answers a SYN, so a denied source gets no SYN-ACK, while limits and tokens wait for the
    /// ACK that would make the connection ([`State::admit`] then).
    pub(super) fn screen(
        &self,
        tables: &Tables,
        svc: &Service,
        src: IpAddr,
        in_port: PortId,
    ) -> Result<(), DropReason> {
        counted(svc, self.cfg.id, screen(tables, svc, src, in_port))
    }

    fn decide(
        &mut self,
        tables: &Tables,
        now: Instant,
        svc: &Service,
        src: IpAddr,
        in_port: PortId,
    ) -> Result<(), DropReason> {
        screen(tables, svc, src, in_port)?;
        let limits = *svc.limits();
        if !limits.is_set() {
            return Ok(());
        }
        if limits.max_conns != 0 && svc.total_conns() >= u64::from(limits.max_conns) {
            return Err(DropReason::SvcConnLimit);
        }
        let adm = &mut self.admission;
        // Peek the service bucket before the source bucket so that a refusal by one spends no
        // token of the other: take the service token only when the source has one too.
        let svc_rate = adm.share(limits.conn_rate);
        let src_rate = adm.share(limits.src_rate);
        if limits.conn_rate.is_set() {
            let b = adm
                .services
                .entry(svc.id())
                .and_modify(|b| {
                    if b.rate != svc_rate {
                        *b = SvcBucket {
                            rate: svc_rate,
                            bucket: TokenBucket::new(svc_rate.per_sec, svc_rate.burst),
                        };
                    }
                })
                .or_insert_with(|| SvcBucket {
                    rate: svc_rate,
                    bucket: TokenBucket::new(svc_rate.per_sec, svc_rate.burst),
                });
            if !b.bucket.would_allow(now) {
                return Err(DropReason::SvcRateLimited);
            }
        }
        if limits.src_rate.is_set() {
            let net = match src {
                IpAddr::V4(src) => u32::from(src) & mask(limits.effective_src_prefix()),
                IpAddr::V6(src) => {
                    crate::sched::hash::fold_v6(crate::persist::client_net6(src, 64))
                }
            };
            let b = adm.sources.bucket((svc.id(), net), src_rate, now);
            if !b.allow(now) {
                return Err(DropReason::SrcRateLimited);
            }
        }
        if limits.conn_rate.is_set()
            && let Some(b) = adm.services.get_mut(&svc.id())
        {
            b.bucket.allow(now);
        }
        Ok(())
    }

    /// Sources tracked by the per-source rate table (tests).
    #[cfg(test)]
    pub(super) fn src_tracked(&self) -> usize {
        self.admission.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn key(i: u32) -> (ServiceId, u32) {
        (ServiceId(1), i)
    }

    #[test]
    fn src_table_is_bounded_and_evicts_the_least_recent() {
        let mut t = SrcTable::new(64);
        let rate = Rate {
            per_sec: 1,
            burst: 1,
        };
        let t0 = Instant::from_secs(1);
        // Spend the one token of source 7.
        assert!(t.bucket(key(7), rate, t0).allow(t0));
        assert!(!t.bucket(key(7), rate, t0).allow(t0));
        // Many other sources: the table never holds more than its capacity.
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) + 1);
            assert!(t.bucket(key(1000 + i), rate, now).allow(now));
        }
        assert_eq!(t.len(), 64);
        assert_eq!(t.evictions, 10_000 + 1 - 64);
        // Source 7 was evicted long ago: it starts with a full bucket again.
        let later = t0 + Duration::from_millis(20);
        assert!(t.bucket(key(7), rate, later).allow(later));
    }

    #[test]
    fn recently_used_sources_survive_eviction() {
        let mut t = SrcTable::new(4); // one set of four ways
        let rate = Rate {
            per_sec: 1,
            burst: 1,
        };
        let t0 = Instant::from_secs(1);
        for i in 0..4u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            assert!(t.bucket(key(i), rate, now).allow(now));
        }
        // Touch source 0 again (no token left), then a fifth source evicts source 1.
        let t1 = t0 + Duration::from_millis(10);
        assert!(!t.bucket(key(0), rate, t1).allow(t1));
        let t2 = t0 + Duration::from_millis(11);
        assert!(t.bucket(key(9), rate, t2).allow(t2));
        assert_eq!(t.evictions, 1);
        // Source 0 kept its empty bucket; source 1 comes back full.
        assert!(!t.bucket(key(0), rate, t2).allow(t2));
        assert!(t.bucket(key(1), rate, t2).allow(t2));
    }

    #[test]
    fn rates_are_split_between_workers() {
        let a = Admission::new(3);
        let r = a.share(Rate {
            per_sec: 10,
            burst: 4,
        });
        assert_eq!((r.per_sec, r.burst), (4, 2));
        let r = a.share(Rate {
            per_sec: 1,
            burst: 0,
        });
        assert_eq!((r.per_sec, r.burst), (1, 1));
    }
}
