use super::*;
use ctl::proto::{DestInfo, Forward, Protocol, ServiceInfo, TunSpec};

/// An rvsd in memory: services with their dests, and the requests it was sent.
#[derive(Default)]
struct FakeRvsd {
    services: Vec<(ServiceSpec, Vec<DestSpec>)>,
    log: Vec<String>,
    access: HashMap<ServiceKey, ctl::proto::AccessInfo>,
}

impl Control for FakeRvsd {
    fn call(&mut self, request: Request) -> Result<Reply, String> {
        let err = |errno| {
            Ok(Reply::Error(ErrorReply {
                errno,
                message: String::new(),
            }))
        };
        if !request.name().starts_with("list") {
            self.log.push(request.name().to_owned());
        }
        let find = |s: &Self, k: &ServiceKey| s.services.iter().position(|(x, _)| x.key == *k);
        match request {
            Request::ListServices { .. } => Ok(Reply::Services(
                self.services
                    .iter()
                    .map(|(s, d)| ServiceInfo {
                        refused: Default::default(),
                        access: self.access.get(&s.key).cloned().unwrap_or_default(),
                        spec: s.clone(),
                        stats: Default::default(),
                        rates: Default::default(),
                        dests: d
                            .iter()
                            .map(|d| DestInfo {
                                spec: d.clone(),
                                active_conns: 0,
                                inact_conns: 0,
                                persist_conns: 0,
                                stats: Default::default(),
                                rates: Default::default(),
                            })
                            .collect(),
                    })
                    .collect(),
            )),
            Request::ListLaddrs { .. } => Ok(Reply::Laddrs(Vec::new())),
            Request::AddService(s) => match find(self, &s.key) {
                Some(_) => err(Errno::Eexist),
                None => {
                    self.services.push((s, Vec::new()));
                    Ok(Reply::Ok)
                }
            },
            Request::EditService(s) => match find(self, &s.key) {
                Some(i) => {
                    self.services[i].0 = s;
                    Ok(Reply::Ok)
                }
                None => err(Errno::Esrch),
            },
            Request::DelService(k) => match find(self, &k) {
                Some(i) => {
                    self.services.remove(i);
                    Ok(Reply::Ok)
                }
                None => err(Errno::Esrch),
            },
            Request::AddDest { service, dest } | Request::EditDest { service, dest } => {
                let Some(i) = find(self, &service) else {
                    return err(Errno::Esrch);
                };
                let ds = &mut self.services[i].1;
                match ds.iter().position(|d| same_dest(d, &dest)) {
                    Some(j) => ds[j] = dest,
                    None => ds.push(dest),
                }
                Ok(Reply::Ok)
            }
            Request::DelDest {
                service,
                addr,
                port,
            } => {
                let Some(i) = find(self, &service) else {
                    return err(Errno::Esrch);
                };
                self.services[i]
                    .1
                    .retain(|d| (d.addr, d.port) != (addr, port));
                Ok(Reply::Ok)
            }
            Request::AddAccess {
                service,
                list,
                entry,
            } => {
                if find(self, &service).is_none() {
                    return err(Errno::Esrch);
                }
                let a = self.access.entry(service).or_default();
                let l = match list {
                    AccessList::Deny => &mut a.deny,
                    AccessList::Allow => &mut a.allow,
                };
                if l.contains(&entry) {
                    return err(Errno::Eexist);
                }
                l.push(entry);
                Ok(Reply::Ok)
            }
            Request::DelAccess {
                service,
                list,
                entry,
            } => {
                let a = self.access.entry(service).or_default();
                let l = match list {
                    AccessList::Deny => &mut a.deny,
                    AccessList::Allow => &mut a.allow,
                };
                let Some(i) = l.iter().position(|e| *e == entry) else {
                    return err(Errno::Enoent);
                };
                l.remove(i);
                Ok(Reply::Ok)
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

fn key() -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: "198.18.0.100".parse().unwrap(),
        port: 80,
    }
}

fn spec(sched: &str) -> ServiceSpec {
    ServiceSpec {
        limits: Default::default(),
        key: key(),
        scheduler: sched.into(),
        sched_flags: vec![],
        persistent: None,
        netmask: 0xffff_ffff,
        pe: None,
        ops: false,
        synproxy: false,
        client_addr: Default::default(),
    }
}

fn dest(last: u8, weight: u32) -> DestSpec {
    DestSpec {
        addr: format!("198.18.1.{last}").parse().unwrap(),
        port: 80,
        forward: Forward::Masq,
        weight,
        u_threshold: 0,
        l_threshold: 0,
        tun: TunSpec::default(),
    }
}

#[test]
fn differences_only_and_weights_edited_in_place() {
    let mut rvsd = FakeRvsd::default();
    let mut p = Programmer::default();
    let w = |sched: &str, dests: Vec<DestSpec>| {
        vec![Wanted {
            spec: spec(sched),
            laddrs: vec![],
            access: Default::default(),
            dests,
        }]
    };
    assert!(
        p.apply(&mut rvsd, &w("rr", vec![dest(11, 1), dest(12, 1)]))
            .is_empty()
    );
    assert_eq!(rvsd.log, ["add_service", "add_dest", "add_dest"]);
    rvsd.log.clear();
    assert!(
        p.apply(&mut rvsd, &w("rr", vec![dest(11, 1), dest(12, 1)]))
            .is_empty()
    );
    assert!(rvsd.log.is_empty(), "{:?}", rvsd.log);
    assert!(
        p.apply(&mut rvsd, &w("wrr", vec![dest(11, 0), dest(12, 1)]))
            .is_empty()
    );
    assert_eq!(rvsd.log, ["edit_service", "edit_dest"]);
    rvsd.log.clear();
    assert!(p.apply(&mut rvsd, &w("wrr", vec![dest(12, 1)])).is_empty());
    assert_eq!(rvsd.log, ["del_dest"]);
    rvsd.log.clear();
    assert!(p.apply(&mut rvsd, &[]).is_empty());
    assert_eq!(rvsd.log, ["del_service"]);
    assert!(rvsd.services.is_empty());
}

#[test]
fn adopts_what_an_earlier_run_left() {
    let mut rvsd = FakeRvsd {
        services: vec![(spec("rr"), vec![dest(11, 1), dest(12, 1), dest(13, 1)])],
        log: vec![],
        access: HashMap::new(),
    };
    let mut p = Programmer::default();
    let found = p.adopt(&mut rvsd, &[key()]).unwrap();
    assert_eq!(found[&key()].len(), 3);
    assert!(p.dest_live(&key(), "198.18.1.11".parse().unwrap(), 80));
    let w = vec![Wanted {
        spec: spec("rr"),
        laddrs: vec![],
        access: Default::default(),
        dests: vec![dest(11, 1), dest(12, 2)],
    }];
    assert!(p.apply(&mut rvsd, &w).is_empty());
    // No add: the service and dests 11 and 12 stay (their connections with them).
    assert_eq!(rvsd.log, ["del_dest", "edit_dest"]);
}

#[test]
fn reconcile_puts_back_what_rvsd_lost_or_someone_changed() {
    let mut rvsd = FakeRvsd::default();
    let mut p = Programmer::default();
    let w = vec![Wanted {
        spec: spec("rr"),
        laddrs: vec![],
        access: Default::default(),
        dests: vec![dest(11, 1), dest(12, 1)],
    }];
    assert!(p.apply(&mut rvsd, &w).is_empty());
    // Someone sets a weight by hand: put back.
    rvsd.services[0].1[0].weight = 9;
    p.reconcile(&mut rvsd).unwrap();
    rvsd.log.clear();
    assert!(p.apply(&mut rvsd, &w).is_empty());
    assert_eq!(rvsd.log, ["edit_dest"]);
    assert_eq!(rvsd.services[0].1[0].weight, 1);
    // rvsd restarted empty: everything is added again.
    rvsd.services.clear();
    rvsd.log.clear();
    p.reconcile(&mut rvsd).unwrap();
    assert!(p.apply(&mut rvsd, &w).is_empty());
    assert_eq!(rvsd.log, ["add_service", "add_dest", "add_dest"]);
}

/// rvsd closes a control connection left idle (`[control] idle_timeout_ms`): the next call on
/// the kept connection fails, and `Socket` makes it again on a fresh one, so no request is lost.
#[test]
fn socket_reconnects_after_the_daemon_closed_an_idle_connection() {
    use std::io::{BufRead, BufReader, Write};
    let dir = std::env::temp_dir().join(format!("rvs-ka-reconnect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // Each connection answers one request with "ok", then is closed (as after an idle timeout).
    let daemon = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            let mut w = stream.try_clone().unwrap();
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
            seen.push(line.contains("\"clear\""));
            w.write_all(b"{\"version\":2,\"reply\":\"ok\"}\n").unwrap();
        }
        seen
    });
    let mut s = Socket::new(path.clone());
    assert_eq!(s.call(Request::Clear), Ok(Reply::Ok));
    // The daemon has closed the first connection; this call is made again on a second one.
    assert_eq!(s.call(Request::Clear), Ok(Reply::Ok));
    assert_eq!(daemon.join().unwrap(), vec![true, true]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn access_lists_follow_the_file() {
    let mut rvsd = FakeRvsd::default();
    let mut p = Programmer::default();
    let w = |deny: &[&str], allow: &[&str]| {
        vec![Wanted {
            spec: spec("rr"),
            laddrs: vec![],
            access: ctl::proto::AccessInfo {
                deny: deny.iter().map(|s| s.to_string()).collect(),
                allow: allow.iter().map(|s| s.to_string()).collect(),
            },
            dests: vec![dest(11, 1)],
        }]
    };
    assert!(
        p.apply(&mut rvsd, &w(&["198.18.0.3"], &["198.18.0.0/24"]))
            .is_empty()
    );
    assert_eq!(
        rvsd.log,
        ["add_service", "add_access", "add_access", "add_dest"]
    );
    rvsd.log.clear();
    // Unchanged: nothing sent. Changed: only the difference.
    assert!(
        p.apply(&mut rvsd, &w(&["198.18.0.3"], &["198.18.0.0/24"]))
            .is_empty()
    );
    assert!(rvsd.log.is_empty(), "{:?}", rvsd.log);
    assert!(p.apply(&mut rvsd, &w(&["198.18.0.4"], &[])).is_empty());
    assert_eq!(rvsd.log, ["del_access", "add_access", "del_access"]);
    let a = &rvsd.access[&key()];
    assert_eq!(
        (a.deny.as_slice(), a.allow.len()),
        (&["198.18.0.4".to_string()][..], 0)
    );
    // A later run adopts the lists rvsd has and sends nothing for them.
    let mut p2 = Programmer::default();
    p2.adopt(&mut rvsd, &[key()]).unwrap();
    rvsd.log.clear();
    assert!(p2.apply(&mut rvsd, &w(&["198.18.0.4"], &[])).is_empty());
    assert!(rvsd.log.is_empty(), "{:?}", rvsd.log);
}
