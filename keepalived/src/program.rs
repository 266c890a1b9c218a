//! Programming rvsd: the services, local addresses and dests the file and the checks want,
//! applied as the differences from what rvs-keepalived last programmed (add, edit, delete, as
//! ipvsadm would send them). A dest whose weight changes is edited in place, never deleted and
//! added again, so its connections stay. What rvsd refused is not recorded as programmed, so the
//! next pass tries again.

use std::collections::HashMap;
use std::net::IpAddr;

use ctl::client::{Client, ClientError};
use ctl::proto::{
    AccessList, DestSpec, Errno, ErrorReply, LaddrSpec, Reply, Request, ServiceKey, ServiceSpec,
};

use crate::model::VirtualServer;

/// What one rvsd service should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub spec: ServiceSpec,
    pub laddrs: Vec<LaddrSpec>,
    /// Deny and allow lists.
    pub access: ctl::proto::AccessInfo,
    pub dests: Vec<DestSpec>,
}

/// The service specs of a virtual server (one per key).
pub fn service_specs(vs: &VirtualServer) -> Vec<ServiceSpec> {
    vs.keys
        .iter()
        .map(|k| ServiceSpec {
            limits: Default::default(),
            key: *k,
            scheduler: vs.scheduler.clone(),
            sched_flags: vs.sched_flags.clone(),
            persistent: vs.persistence_timeout,
            netmask: vs.persistence_granularity,
            pe: vs.persistence_engine.clone(),
            ops: vs.ops,
            synproxy: vs.synproxy,
            client_addr: ctl::proto::ClientAddr {
                proxy_protocol: vs.proxy_protocol,
                ..Default::default()
            },
        })
        .collect()
}

/// One of the programmed access lists of a service.
fn list_of(have: &mut Wanted, list: AccessList) -> &mut Vec<String> {
    match list {
        AccessList::Deny => &mut have.access.deny,
        AccessList::Allow => &mut have.access.allow,
    }
}

/// The way requests reach rvsd (the control socket; an in-memory rvsd in tests).
pub trait Control {
    fn call(&mut self, request: Request) -> Result<Reply, String>;
}

impl Control for Client {
    fn call(&mut self, request: Request) -> Result<Reply, String> {
        Client::call(self, request).map_err(|e: ClientError| e.to_string())
    }
}

/// Connects on first use and again after a failure, so rvsd may restart under us. rvsd closes
/// a control connection that stays idle past `[control] idle_timeout_ms`; a call that fails on a
/// kept connection is therefore tried once more on a fresh one (a closed connection carried no
/// request to rvsd, so nothing is done twice).
#[derive(Debug)]
pub struct Socket {
    pub path: std::path::PathBuf,
    client: Option<Client>,
}

impl Socket {
    pub fn new(path: std::path::PathBuf) -> Self {
        Socket { path, client: None }
    }
}

impl Control for Socket {
    fn call(&mut self, request: Request) -> Result<Reply, String> {
        if let Some(c) = self.client.as_mut() {
            match Control::call(c, request.clone()) {
                Ok(reply) => return Ok(reply),
                Err(e) => tracing::debug!("rvsd connection lost ({e}); reconnecting"),
            }
        }
        self.client = None;
        let mut c = Client::connect(&self.path).map_err(|e| e.to_string())?;
        let r = Control::call(&mut c, request);
        if r.is_ok() {
            self.client = Some(c);
        }
        r
    }
}

/// What rvs-keepalived has programmed, by service.
#[derive(Debug, Default)]
pub struct Programmer {
    programmed: HashMap<ServiceKey, Wanted>,
}

fn refused(e: &ErrorReply) -> String {
    format!("{:?}: {}", e.errno, e.message)
}

fn expect_ok(ctl: &mut dyn Control, request: Request) -> Result<(), (Option<Errno>, String)> {
    let name = request.name();
    tracing::debug!("to rvsd: {request:?}");
    match ctl.call(request) {
        Ok(Reply::Ok) => Ok(()),
        Ok(Reply::Error(e)) => Err((Some(e.errno), format!("{name}: {}", refused(&e)))),
        Ok(other) => Err((None, format!("{name}: unexpected reply {other:?}"))),
        Err(e) => Err((None, format!("{name}: {e}"))),
    }
}

fn same_dest(a: &DestSpec, b: &DestSpec) -> bool {
    a.addr == b.addr && a.port == b.port
}

impl Programmer {
    /// Services programmed now.
    pub fn programmed(&self) -> &HashMap<ServiceKey, Wanted> {
        &self.programmed
    }

    /// Take over what rvsd already has for the services of `keys` (left by an earlier
    /// rvs-keepalived), so that the first pass edits them instead of adding them again. Returns
    /// the dests found, by service.
    pub fn adopt(
        &mut self,
        ctl: &mut dyn Control,
        keys: &[ServiceKey],
    ) -> Result<HashMap<ServiceKey, Vec<DestSpec>>, String> {
        let services = match ctl.call(Request::ListServices { service: None })? {
            Reply::Services(s) => s,
            other => return Err(format!("list_services: unexpected reply {other:?}")),
        };
        let laddrs = match ctl.call(Request::ListLaddrs { service: None })? {
            Reply::Laddrs(l) => l,
            _ => Vec::new(),
        };
        let mut found = HashMap::new();
        for s in services {
            if !keys.contains(&s.spec.key) {
                continue;
            }
            let dests: Vec<DestSpec> = s.dests.into_iter().map(|d| d.spec).collect();
            let l = laddrs
                .iter()
                .find(|l| l.service == s.spec.key)
                .map(|l| l.laddrs.iter().map(|i| i.spec.clone()).collect())
                .unwrap_or_default();
            found.insert(s.spec.key, dests.clone());
            self.programmed.insert(
                s.spec.key,
                Wanted {
                    spec: s.spec,
                    laddrs: l,
                    access: s.access,
                    dests,
                },
            );
        }
        Ok(found)
    }

    /// Make rvsd look like `wanted`: services not wanted any more are deleted, the others
    /// added or edited. Returns what rvsd refused (each also left to the next pass).
    pub fn apply(&mut self, ctl: &mut dyn Control, wanted: &[Wanted]) -> Vec<String> {
        let mut errors = Vec::new();
        let gone: Vec<ServiceKey> = self
            .programmed
            .keys()
            .filter(|k| !wanted.iter().any(|w| w.spec.key == **k))
            .copied()
            .collect();
        for key in gone {
            match expect_ok(ctl, Request::DelService(key)) {
                Ok(()) | Err((Some(Errno::Esrch), _)) => {
                    self.programmed.remove(&key);
                }
                Err((_, e)) => errors.push(e),
            }
        }
        for w in wanted {
            if let Err(e) = self.apply_one(ctl, w) {
                errors.push(e);
            }
        }
        errors
    }

    fn apply_one(&mut self, ctl: &mut dyn Control, w: &Wanted) -> Result<(), String> {
        let key = w.spec.key;
        if !self.programmed.contains_key(&key) {
            match expect_ok(ctl, Request::AddService(w.spec.clone())) {
                Ok(()) => {}
                Err((Some(Errno::Eexist), _)) => {
                    // Someone (ipvsadm, an earlier run) made it: take it over as it is.
                    self.adopt(ctl, &[key])?;
                }
                Err((_, e)) => return Err(e),
            }
            self.programmed.entry(key).or_insert_with(|| Wanted {
                spec: w.spec.clone(),
                laddrs: Vec::new(),
                access: Default::default(),
                dests: Vec::new(),
            });
        }
        let have = self.programmed.get_mut(&key).expect("inserted above");
        if have.spec != w.spec {
            expect_ok(ctl, Request::EditService(w.spec.clone())).map_err(|(_, e)| e)?;
            have.spec = w.spec.clone();
        }
        for l in have.laddrs.clone() {
            if !w.laddrs.contains(&l) {
                match expect_ok(
                    ctl,
                    Request::DelLaddr {
                        service: key,
                        laddr: l.clone(),
                    },
                ) {
                    Ok(()) | Err((Some(Errno::Enoent), _)) => have.laddrs.retain(|x| *x != l),
                    Err((_, e)) => return Err(e),
                }
            }
        }
        for l in &w.laddrs {
            if !have.laddrs.contains(l) {
                match expect_ok(
                    ctl,
                    Request::AddLaddr {
                        service: key,
                        laddr: l.clone(),
                    },
                ) {
                    Ok(()) | Err((Some(Errno::Eexist), _)) => have.laddrs.push(l.clone()),
                    Err((_, e)) => return Err(e),
                }
            }
        }
        for (list, want, had) in [
            (AccessList::Deny, &w.access.deny, have.access.deny.clone()),
            (
                AccessList::Allow,
                &w.access.allow,
                have.access.allow.clone(),
            ),
        ] {
            for e in had.iter().filter(|e| !want.contains(e)) {
                let r = expect_ok(
                    ctl,
                    Request::DelAccess {
                        service: key,
                        list,
                        entry: e.clone(),
                    },
                );
                match r {
                    Ok(()) | Err((Some(Errno::Enoent), _)) => {
                        list_of(have, list).retain(|x| x != e)
                    }
                    Err((_, m)) => return Err(m),
                }
            }
            for e in want.iter().filter(|e| !had.contains(e)) {
                let r = expect_ok(
                    ctl,
                    Request::AddAccess {
                        service: key,
                        list,
                        entry: e.clone(),
                    },
                );
                match r {
                    Ok(()) | Err((Some(Errno::Eexist), _)) => list_of(have, list).push(e.clone()),
                    Err((_, m)) => return Err(m),
                }
            }
        }
        for d in have.dests.clone() {
            if !w.dests.iter().any(|x| same_dest(x, &d)) {
                let r = expect_ok(
                    ctl,
                    Request::DelDest {
                        service: key,
                        addr: d.addr,
                        port: d.port,
                    },
                );
                match r {
                    Ok(()) | Err((Some(Errno::Enoent), _)) => {
                        have.dests.retain(|x| !same_dest(x, &d))
                    }
                    Err((_, e)) => return Err(e),
                }
            }
        }
        for d in &w.dests {
            match have.dests.iter().position(|x| same_dest(x, d)) {
                Some(i) if have.dests[i] == *d => {}
                Some(i) => {
                    expect_ok(
                        ctl,
                        Request::EditDest {
                            service: key,
                            dest: d.clone(),
                        },
                    )
                    .map_err(|(_, e)| e)?;
                    have.dests[i] = d.clone();
                }
                None => {
                    let add = Request::AddDest {
                        service: key,
                        dest: d.clone(),
                    };
                    match expect_ok(ctl, add) {
                        Ok(()) => {}
                        Err((Some(Errno::Eexist), _)) => {
                            let edit = Request::EditDest {
                                service: key,
                                dest: d.clone(),
                            };
                            expect_ok(ctl, edit).map_err(|(_, e)| e)?;
                        }
                        Err((_, e)) => return Err(e),
                    }
                    have.dests.push(d.clone());
                }
            }
        }
        Ok(())
    }

    /// Look at what rvsd has now and correct the record: a service rvsd lost (it restarted) is
    /// forgotten, and the dests of the others are taken as rvsd lists them (someone may have
    /// changed them with ipvsadm). The next [`Programmer::apply`] then puts back what is wanted.
    pub fn reconcile(&mut self, ctl: &mut dyn Control) -> Result<(), String> {
        let services = match ctl.call(Request::ListServices { service: None })? {
            Reply::Services(s) => s,
            other => return Err(format!("list_services: unexpected reply {other:?}")),
        };
        self.programmed.retain(
            |key, have| match services.iter().find(|s| s.spec.key == *key) {
                Some(s) => {
                    have.spec = s.spec.clone();
                    have.dests = s.dests.iter().map(|d| d.spec.clone()).collect();
                    true
                }
                None => false,
            },
        );
        Ok(())
    }

    /// Whether `addr:port` is programmed with a weight above 0 in service `key`.
    pub fn dest_live(&self, key: &ServiceKey, addr: IpAddr, port: u16) -> bool {
        self.programmed.get(key).is_some_and(|w| {
            w.dests
                .iter()
                .any(|d| d.addr == addr && d.port == port && d.weight > 0)
        })
    }
}

#[cfg(test)]
mod tests;
