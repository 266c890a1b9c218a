//! Restart with state: a worker's connections taken out as [`ConnRecord`]s, and put back into a
//! worker of a later process.
//!
//! Export ([`Worker::export_conns`]) records every live connection with the time it has left
//! at `now`, and whether a persistence template controls it; the templates themselves live in
//! the shared [`crate::persist::PersistTable`], which exports and imports them on its own
//! (before the workers import their connections, so that each controlled connection finds its
//! template again by key and is counted in it). Import
//! ([`Worker::import_conns`]) resolves each record's service by key and dest by address in the
//! tables the worker runs now, inserts it with the deadline `now + remaining`, binds it to its
//! dest (active/inactive as its state says) and, for FULLNAT, marks its local port as taken in
//! this worker's allocator and counts it on its local address, exactly as if the connection had
//! been scheduled here. IPv6 connections ([`ConnRecord6`], the worker's second table) go the
//! same way: a FULLNAT6 connection's IPv6 local port is reserved in this worker's IPv6 pools,
//! a NAT64 connection's IPv4 local port (its reply tuple, unmapped) in the IPv4 ones, each
//! counted on its local address. A record that cannot be put back (its service or dest is gone, its time
//! is up, the table is full, a tuple is taken) is counted by reason in [`ImportReport`] and
//! left out; the others are unaffected. Import runs before the worker's first poll, so no packet
//! sees a half-restored table. Records must be given to the worker that owns their flow (the
//! caller steers them with [`crate::steer::Steering`]).

use core::time::Duration;
use std::collections::HashMap;

use crate::conn::{ConnFlags, ConnRecord, ConnRecord6, ConnRecords, InsertError, NewConn};
use crate::packet::PacketBuf;
use crate::service::{ForwardMethod, ServiceKey};
use crate::time::Instant;

use super::{Tables, Worker};

/// What [`Worker::import_conns`] did with its records (of both families: each count is of IPv4
/// and IPv6 records together; [`ImportReport::restored6`] tells the IPv6 ones apart).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Connections back in the tables.
    pub restored: usize,
    /// Of `restored`, the IPv6 connections (NAT64 ones included).
    pub restored6: usize,
    /// No service with the record's key in the current tables.
    pub no_service: usize,
    /// The service has no such dest, or the dest's method changed.
    pub no_dest: usize,
    /// No time left.
    pub expired: usize,
    /// The table was full.
    pub full: usize,
    /// One of its tuples is already in the table, or (FULLNAT) its local address is no longer
    /// one of the service's.
    pub clash: usize,
}

impl<B: PacketBuf> Worker<B> {
    /// Every connection of this worker (both tables) as a record, with its time left at `now`.
    pub fn export_conns(&self, now: Instant) -> ConnRecords {
        ConnRecords {
            v4: self.export_conns4(now),
            v6: self.export_conns6(now),
        }
    }

    fn export_conns6(&self, now: Instant) -> Vec<ConnRecord6> {
        let services = &self.tables.services;
        self.st
            .conns6
            .iter()
            .filter(|(_, c)| !c.is_template())
            .filter_map(|(_, c)| {
                let (svc, dest) = services.dest_with_service(c.dest())?;
                Some(ConnRecord6 {
                    in_key: *c.in_key(),
                    out_key: *c.out_key(),
                    service: svc.key(),
                    dest: (dest.addr(), dest.port()),
                    method: c.method(),
                    state: c.state(),
                    toa_pending: c.flags().contains(ConnFlags::TOA_PENDING),
                    assured: c.flags().contains(ConnFlags::ASSURED_SENT),
                    controlled: c.control().is_some(),
                    remaining_ms: c.deadline().saturating_since(now).as_millis() as u64,
                })
            })
            .collect()
    }

    fn export_conns4(&self, now: Instant) -> Vec<ConnRecord> {
        let services = &self.tables.services;
        self.st
            .conns
            .iter()
            .filter(|(_, c)| !c.is_template())
            // A SYN-proxied connection still waiting for its server cannot be carried on: what
            // was agreed with the client lives in this process only.
            .filter(|(_, c)| {
                !(c.flags().contains(ConnFlags::SYNPROXY)
                    && c.state() == crate::conn::ConnState::Tcp(crate::conn::TcpState::SynSent))
            })
            .filter_map(|(id, c)| {
                let (svc, dest) = services.dest_with_service(c.dest())?;
                Some(ConnRecord {
                    in_key: *c.in_key(),
                    out_key: *c.out_key(),
                    service: svc.key(),
                    dest: (dest.addr4()?, dest.port()),
                    method: c.method(),
                    state: c.state(),
                    toa_pending: c.flags().contains(ConnFlags::TOA_PENDING),
                    assured: c.flags().contains(ConnFlags::ASSURED_SENT),
                    controlled: c.control().is_some(),
                    remaining_ms: c.deadline().saturating_since(now).as_millis() as u64,
                    seq_adj: super::proxyhdr::renumbered(c)
                        .then(|| self.st.proxy_adj(id))
                        .flatten(),
                    synproxy: c.flags().contains(ConnFlags::SYNPROXY),
                    proxy_hdr: c
                        .flags()
                        .contains(ConnFlags::PROXY_HDR)
                        .then(|| self.st.proxy_pp(id))
                        .flatten(),
                })
            })
            .collect()
    }

    /// Put `records` (taken `elapsed` ago) back into this worker's tables at `now`.
    pub fn import_conns(
        &mut self,
        now: Instant,
        elapsed: Duration,
        records: &ConnRecords,
    ) -> ImportReport {
        let tables = self.tables.clone();
        let services: HashMap<ServiceKey, &crate::service::Service> = tables
            .services
            .services()
            .iter()
            .map(|s| (s.key(), s))
            .collect();
        let mut report = ImportReport::default();
        self.import_conns4(&tables, &services, now, elapsed, &records.v4, &mut report);
        self.import_conns6(&tables, &services, now, elapsed, &records.v6, &mut report);
        self.publish_stats();
        report
    }

    fn import_conns6(
        &mut self,
        tables: &Tables,
        services: &HashMap<ServiceKey, &crate::service::Service>,
        now: Instant,
        elapsed: Duration,
        records: &[ConnRecord6],
        report: &mut ImportReport,
    ) {
        let w = self.st.cfg.id;
        let n_lport = tables.laddrs.n_workers();
        for r in records {
            let left = Duration::from_millis(r.remaining_ms).saturating_sub(elapsed);
            if left.is_zero() {
                report.expired += 1;
                continue;
            }
            let Some(svc) = services.get(&r.service) else {
                report.no_service += 1;
                continue;
            };
            let Some(dest) = svc
                .find_dest(r.dest.0, r.dest.1)
                .filter(|d| d.method() == r.method)
            else {
                report.no_dest += 1;
                continue;
            };
            // FULLNAT6: an IPv6 local address; NAT64: the reply tuple unmapped, an IPv4 one.
            let laddr = if r.method == ForwardMethod::FullNat {
                let o = &r.out_key;
                let lip = match crate::xmit::nat64::unmapped(o) {
                    Some(k4) => std::net::IpAddr::V4(k4.dst),
                    None => std::net::IpAddr::V6(o.dst),
                };
                match tables.laddrs.of(svc.id()).iter().find(|l| l.ip == lip) {
                    Some(l) => Some(l),
                    None => {
                        report.clash += 1;
                        continue;
                    }
                }
            } else {
                None
            };
            let new = NewConn {
                in_key: r.in_key,
                out_key: r.out_key,
                service: svc.id(),
                dest: dest.id(),
                method: r.method,
                state: r.state,
                deadline: now + left,
                template: false,
            };
            let Some(id) = inserted(&mut self.st.conns6, new, report) else {
                continue;
            };
            let control = if r.controlled {
                tables.persist.attach6(svc, &r.in_key)
            } else {
                None
            };
            if let Some(c) = self.st.conns6.get_mut(id) {
                c.set_flag(ConnFlags::TOA_PENDING, r.toa_pending);
                c.set_flag(ConnFlags::ASSURED_SENT, r.assured);
                if let Some(t) = control {
                    c.set_control(t);
                }
            }
            if let Some(l) = laddr {
                let o = &r.out_key;
                match crate::xmit::nat64::unmapped(o) {
                    Some(k4) => self
                        .st
                        .lports
                        .reserve(n_lport, k4.dst, k4.src, k4.sport, k4.dport),
                    None => self
                        .st
                        .lports
                        .reserve6(n_lport, o.dst, o.src, o.sport, o.dport),
                }
                crate::laddr::count_conn(&l.stats, w, 1);
            }
            let inactive = self.st.conns6.get(id).is_some_and(|c| c.is_inactive());
            dest.bind_conn(w, inactive);
            report.restored += 1;
            report.restored6 += 1;
        }
    }

    fn import_conns4(
        &mut self,
        tables: &Tables,
        services: &HashMap<ServiceKey, &crate::service::Service>,
        now: Instant,
        elapsed: Duration,
        records: &[ConnRecord],
        report: &mut ImportReport,
    ) {
        let w = self.st.cfg.id;
        let n_lport = tables.laddrs.n_workers();
        for r in records {
            let left = Duration::from_millis(r.remaining_ms).saturating_sub(elapsed);
            if left.is_zero() {
                report.expired += 1;
                continue;
            }
            let Some(svc) = services.get(&r.service) else {
                report.no_service += 1;
                continue;
            };
            let Some(dest) = svc
                .find_dest(r.dest.0.into(), r.dest.1)
                .filter(|d| d.method() == r.method)
            else {
                report.no_dest += 1;
                continue;
            };
            let fullnat = r.method == ForwardMethod::FullNat;
            let laddr = if fullnat {
                let lip = r.out_key.dst;
                match tables
                    .laddrs
                    .of(svc.id())
                    .iter()
                    .find(|l| l.ip == std::net::IpAddr::V4(lip))
                {
                    Some(l) => Some(l),
                    None => {
                        report.clash += 1;
                        continue;
                    }
                }
            } else {
                None
            };
            let new = NewConn {
                in_key: r.in_key,
                out_key: r.out_key,
                service: svc.id(),
                dest: dest.id(),
                method: r.method,
                state: r.state,
                deadline: now + left,
                template: false,
            };
            let Some(id) = inserted(&mut self.st.conns, new, report) else {
                continue;
            };
            let control = if r.controlled {
                tables.persist.attach(svc, &r.in_key)
            } else {
                None
            };
            if let Some(adj) = r.seq_adj {
                self.st
                    .set_proxy_adj(id, adj, r.proxy_hdr.unwrap_or_default());
            }
            if let Some(c) = self.st.conns.get_mut(id) {
                c.set_flag(ConnFlags::TOA_PENDING, r.toa_pending);
                c.set_flag(ConnFlags::ASSURED_SENT, r.assured);
                c.set_flag(ConnFlags::SYNPROXY, r.synproxy && r.seq_adj.is_some());
                c.set_flag(
                    ConnFlags::PROXY_HDR,
                    r.proxy_hdr.is_some() && r.seq_adj.is_some(),
                );
                if let Some(t) = control {
                    c.set_control(t);
                }
            }
            if let Some(l) = laddr {
                let o = &r.out_key;
                self.st
                    .lports
                    .reserve(n_lport, o.dst, o.src, o.sport, o.dport);
                crate::laddr::count_conn(&l.stats, w, 1);
            }
            let inactive = self.st.conns.get(id).is_some_and(|c| c.is_inactive());
            dest.bind_conn(w, inactive);
            report.restored += 1;
        }
    }
}

/// Insert a restored connection; a full table or a taken tuple is counted in `report`.
fn inserted<K: crate::conn::FlowKey>(
    table: &mut crate::conn::ConnTable<K>,
    new: NewConn<K>,
    report: &mut ImportReport,
) -> Option<crate::conn::ConnId> {
    match table.insert(new) {
        Ok(id) => Some(id),
        Err(InsertError::TableFull) => {
            report.full += 1;
            None
        }
        Err(InsertError::KeyExists) => {
            report.clash += 1;
            None
        }
    }
}
