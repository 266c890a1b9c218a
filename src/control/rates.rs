//! The control plane's rate estimators: one [`Estimator`] per service and per dest, fed from
//! their [`Totals`](dataplane::service::Totals) every [`INTERVAL`] (2 s) by housekeeping, read by
//! listings (`ipvsadm --rate`) and the metrics endpoint.
//!
//! Keyed by [`ServiceId`]/[`DestId`], which are never reused, so an edited service keeps its
//! estimator and a deleted-and-re-added dest starts afresh; estimators of gone ids are dropped at
//! the next estimation. A service or dest first seen starts from zero counters, as the kernel's
//! freshly allocated stats do.

use std::collections::HashMap;
use std::time::Instant;

use ctl::proto;
use dataplane::service::estimator::{Estimator, INTERVAL};
use dataplane::service::{DestId, Service, ServiceId, Totals};

/// Every service's and dest's estimator, and when the next estimation is due.
#[derive(Debug, Default)]
pub struct RateBook {
    next: Option<Instant>,
    services: HashMap<ServiceId, Estimator>,
    dests: HashMap<DestId, Estimator>,
}

fn to_proto(e: Option<&Estimator>) -> proto::Rates {
    let r = e.map(Estimator::rates).unwrap_or_default();
    proto::Rates {
        cps: r.cps,
        inpps: r.inpps,
        outpps: r.outpps,
        inbps: r.inbps,
        outbps: r.outbps,
    }
}

impl RateBook {
    /// Run one estimation if 2 s have passed since the last (the first call only starts the
    /// clock). A late call runs once and the schedule restarts from `now`: samples are never
    /// bunched up, and each still counts as 2 s as in the kernel.
    pub fn tick(&mut self, now: Instant, services: &[Service]) -> bool {
        match self.next {
            None => {
                self.next = Some(now + INTERVAL);
                self.estimate(services);
                false
            }
            Some(due) if now >= due => {
                self.next = Some(if now >= due + INTERVAL {
                    now + INTERVAL
                } else {
                    due + INTERVAL
                });
                self.estimate(services);
                true
            }
            Some(_) => false,
        }
    }

    /// One estimation step over every service and dest.
    fn estimate(&mut self, services: &[Service]) {
        let mut seen_services = HashMap::with_capacity(services.len());
        let mut seen_dests = HashMap::new();
        for s in services {
            let mut e = self
                .services
                .remove(&s.id())
                .unwrap_or_else(|| Estimator::new(&Totals::default()));
            e.update(&s.stats().sum());
            seen_services.insert(s.id(), e);
            for d in s.dests() {
                let mut e = self
                    .dests
                    .remove(&d.id())
                    .unwrap_or_else(|| Estimator::new(&Totals::default()));
                e.update(&d.stats().sum());
                seen_dests.insert(d.id(), e);
            }
        }
        self.services = seen_services;
        self.dests = seen_dests;
    }

    /// After `ipvsadm -Z` of `service`: restart its and its dests' estimators from the zeroed
    /// counters (`ip_vs_zero_estimator`).
    pub fn reset(&mut self, service: &Service) {
        self.services
            .insert(service.id(), Estimator::new(&service.stats().sum()));
        for d in service.dests() {
            self.dests.insert(d.id(), Estimator::new(&d.stats().sum()));
        }
    }

    pub fn service(&self, id: ServiceId) -> proto::Rates {
        to_proto(self.services.get(&id))
    }

    pub fn dest(&self, id: DestId) -> proto::Rates {
        to_proto(self.dests.get(&id))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dataplane::service::{Protocol, ServiceConfig, ServiceKey, ServiceTable};

    use super::*;

    #[test]
    fn runs_every_two_seconds_and_restarts_on_zero() {
        let mut table = ServiceTable::new(1);
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: "198.18.0.100".parse().unwrap(),
            vport: 80,
        };
        let id = table.add_service(ServiceConfig::new(key, "rr")).unwrap();
        let mut book = RateBook::default();
        let t0 = Instant::now();
        assert!(!book.tick(t0, table.services()));
        let svc = &table.services()[0];
        for _ in 0..40 {
            svc.stats().slot(0).add_conn();
        }
        assert!(!book.tick(t0 + Duration::from_millis(1999), table.services()));
        assert!(book.tick(t0 + INTERVAL, table.services()));
        // 40 in 2 s: (40 << 9) >> 2 = 5120, (5120 + 511) >> 10 = 5.
        assert_eq!(book.service(id).cps, 5);
        assert!(!book.tick(t0 + INTERVAL + Duration::from_millis(50), table.services()));
        // -Z: the counters jump back to 0; the estimator restarts instead of seeing -40.
        table.zero_all();
        book.reset(&table.services()[0]);
        assert_eq!(book.service(id).cps, 0);
        assert!(book.tick(t0 + INTERVAL * 2, table.services()));
        assert_eq!(book.service(id), proto::Rates::default());
        // A late call runs once and reschedules from then.
        assert!(book.tick(t0 + INTERVAL * 10, table.services()));
        assert!(!book.tick(
            t0 + INTERVAL * 11 - Duration::from_millis(1),
            table.services()
        ));
        // Gone services lose their estimators.
        table.clear();
        assert!(book.tick(t0 + INTERVAL * 11, table.services()));
        assert!(book.services.is_empty());
    }
}
