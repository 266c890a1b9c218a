//! Restart with state, the control plane's part: what goes into the state file's header (the
//! service table with its counters, local addresses, fwmark rules, `--set` timeouts) and how a
//! new rvsd takes it back before its workers start.
//!
//! Taking back: services, dests, local addresses and fwmark rules of the file that the tables do
//! not have yet (the configuration's `[ipvs] rules` were replayed first) are added through the
//! ordinary request handlers, so they are checked and logged as any change; what the
//! configuration already set is left as the configuration says. Then the counters of every
//! service and dest found in both are carried over, so `ipvsadm -Ln --stats` goes on from where
//! the old process stopped.

use dataplane::persist::{TemplateKey, TemplateRecord};
use dataplane::service::stats::Totals;
use dataplane::time::Instant;

use super::*;
use crate::state::{Header, SavedTemplate};

/// What [`ControlPlane::restore`] did.
#[derive(Debug, Default)]
pub struct RestoreSummary {
    /// Requests applied (services, dests, local addresses, fwmark rules, timeouts added).
    pub applied: usize,
    /// Requests refused, with the reason (already there is not counted).
    pub refused: Vec<String>,
    /// Services and dests whose counters were carried over.
    pub carried: usize,
}

fn totals(s: &proto::Stats) -> Totals {
    Totals {
        conns: s.conns,
        inpkts: s.inpkts,
        outpkts: s.outpkts,
        inbytes: s.inbytes,
        outbytes: s.outbytes,
        ..Totals::default()
    }
}

impl ControlPlane {
    /// The state file's header as of now (its time and writer are filled in by the caller).
    pub fn state_header(&self) -> Header {
        let services = self.service_listing();
        let laddrs = match lock(&self.state).list_laddrs(None) {
            Reply::Laddrs(l) => l,
            _ => Vec::new(),
        };
        let fwmarks = match lock(&self.state).list_fwmark_rules() {
            Reply::FwmarkRules(r) => r,
            _ => Vec::new(),
        };
        let t = lock(&self.state).timeouts;
        Header {
            services,
            laddrs,
            fwmarks,
            timeouts: proto::Timeouts {
                tcp: t.tcp_established,
                tcpfin: t.tcp_fin_wait,
                udp: t.udp,
            },
            ..Header::default()
        }
    }

    /// Take back a state file's tables (before the workers start).
    pub fn restore(&self, h: &Header) -> RestoreSummary {
        let _origin = origin::Scope::enter("state file".to_owned());
        let mut out = RestoreSummary::default();
        let mut apply = |r: Request, what: String| match self.handle(r) {
            Reply::Error(e) if e.errno == Errno::Eexist => {}
            Reply::Error(e) => out.refused.push(format!("{what}: {}", e.message)),
            _ => out.applied += 1,
        };
        apply(Request::SetTimeouts(h.timeouts), "timeouts".into());
        for s in &h.services {
            let key = s.spec.key;
            apply(
                Request::AddService(s.spec.clone()),
                format!("service {key:?}"),
            );
            for d in &s.dests {
                apply(
                    Request::AddDest {
                        service: key,
                        dest: d.spec.clone(),
                    },
                    format!("dest {}:{} of {key:?}", d.spec.addr, d.spec.port),
                );
            }
            for (list, entries) in [
                (proto::AccessList::Deny, &s.access.deny),
                (proto::AccessList::Allow, &s.access.allow),
            ] {
                for e in entries {
                    apply(
                        Request::AddAccess {
                            service: key,
                            list,
                            entry: e.clone(),
                        },
                        format!("access-list entry {e} of {key:?}"),
                    );
                }
            }
        }
        for l in &h.laddrs {
            for a in &l.laddrs {
                apply(
                    Request::AddLaddr {
                        service: l.service,
                        laddr: a.spec.clone(),
                    },
                    format!("local address {}", a.spec.addr),
                );
            }
        }
        for r in &h.fwmarks {
            apply(
                Request::AddFwmarkRule(r.clone()),
                format!("fwmark rule {r:?}"),
            );
        }
        // Counters.
        let st = lock(&self.state);
        for s in &h.services {
            let Ok(key) = key_from_proto(&s.spec.key) else {
                continue;
            };
            let Some(svc) = st.services.service(&key) else {
                continue;
            };
            svc.stats().carry(&totals(&s.stats));
            out.carried += 1;
            for d in &s.dests {
                if let Some(dest) = svc.find_dest(d.spec.addr, d.spec.port) {
                    dest.stats().carry(&totals(&d.stats));
                    out.carried += 1;
                }
            }
        }
        out
    }
}

impl ControlPlane {
    /// Every live persistence template, with its time left at `now` (the workers' clock).
    pub fn export_templates(&self, now: Instant) -> Vec<SavedTemplate> {
        let tables = self.tables.load();
        tables
            .persist
            .export(now, &tables.services)
            .into_iter()
            .map(|t| SavedTemplate {
                proto: t.key.proto,
                client: t.key.client,
                vaddr: t.key.vaddr,
                vport: t.key.vport,
                service: key_to_proto(&t.service),
                dest: t.dest,
                remaining_ms: t.remaining_ms,
                timeout_secs: t.timeout_secs,
                assured: t.assured,
            })
            .collect()
    }

    /// Put back a state file's templates, saved `elapsed` ago (before the workers start, which
    /// then attach their restored connections to them). Returns how many came back.
    pub fn import_templates(
        &self,
        now: Instant,
        elapsed: Duration,
        saved: &[SavedTemplate],
    ) -> usize {
        let records: Vec<TemplateRecord> = saved
            .iter()
            .filter_map(|t| {
                Some(TemplateRecord {
                    key: TemplateKey {
                        proto: t.proto,
                        client: t.client,
                        vaddr: t.vaddr,
                        vport: t.vport,
                    },
                    service: key_from_proto(&t.service).ok()?,
                    dest: t.dest,
                    remaining_ms: t.remaining_ms,
                    timeout_secs: t.timeout_secs,
                    assured: t.assured,
                })
            })
            .collect();
        let tables = self.tables.load();
        tables
            .persist
            .import(now, elapsed, &records, &tables.services, 0)
    }
}
