//! Connections: scheduling a new one (scheduler, persistence template, FULLNAT local port,
//! insert, dest accounting) and accounting a packet of a known one (state machine, dest and
//! service counters) before its method rewrites it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conn::{
    Conn, ConnFlags, ConnId, ConnKey, ConnState, ConnTable, Dir, InsertError, NewConn, TcpState,
};
use crate::drop::DropReason;
use crate::laddr::LportAlloc;
use crate::packet::PacketBuf;
use crate::parse::Parsed;
use crate::persist::PersistError;
use crate::sched::{SchedFlags, SchedInput, Scheduler};
use crate::service::{ForwardMethod, ProxyProtocol, Service};
use crate::time::Instant;
use crate::wire::IpProtocol;
use crate::xmit;

use super::tx::Action;
use super::{State, Tables};

/// A scheduler instance of one service on this worker.
pub(super) struct SchedSlot {
    version: u64,
    name: String,
    flags: SchedFlags,
    pub(super) sched: Box<dyn Scheduler + Send>,
}

impl<B: PacketBuf> State<B> {
    /// Remove a connection now, with its dest and local-port accounting (and its template's
    /// control, `early`: before its time).
    pub(super) fn remove_conn(&mut self, tables: &Tables, id: ConnId, early: bool) {
        if let Some(c) = self.conns.remove(id) {
            forget(tables, &mut self.lports, &c, early);
        }
    }

    /// A new connection's tuple is held by another: if every holder is a TCP connection that
    /// is closing (TIME_WAIT or CLOSE), end them (counted as reuses) and say the insert may be
    /// retried. This happens in NAT when a client reuses a source port toward another VIP served
    /// by the same real server: the reply tuple (RS:port -> client:port) is the same as the old,
    /// finished connection's. IPVS keeps both and finds the newer first; rvs keeps one tuple per
    /// connection, so the finished one gives way. A holder that is still open keeps its tuple
    /// (the replies could not be told apart) and the new connection is refused.
    fn expire_closing_holders(&mut self, tables: &Tables, new: &NewConn) -> bool {
        let Some(holders) = closing_holders(&self.conns, new) else {
            return false;
        };
        let mut any = false;
        for id in holders.into_iter().flatten() {
            self.counters.conn_reuses += 1;
            self.remove_conn(tables, id, true);
            any = true;
        }
        any
    }

    /// Schedule a dest of `svc` for a new connection with in-tuple `key` and insert it.
    pub(super) fn open_conn(
        &mut self,
        tables: &Tables,
        now: Instant,
        svc: &Service,
        key: ConnKey,
    ) -> Result<ConnId, DropReason> {
        let svc_id = svc.id();
        let w = self.cfg.id;
        if self.conns.is_full() {
            // Make room by evicting the oldest embryonic connection, if there is one
            // (`pressure`); otherwise the insert below refuses as before.
            self.evict_embryo(tables);
        }
        let slot = sched_slot(&mut self.scheds, self.sched_seed, svc)?;
        let input = SchedInput {
            proto: key.proto,
            client: key.src.into(),
            client_port: key.sport,
            vip: key.dst.into(),
            vport: key.dport,
            now,
            worker: w,
        };
        let state = ConnState::initial(key.proto).ok_or(DropReason::NotForUs)?;
        let (idx, control) = pick_dest(tables, now, w, svc, &mut *slot.sched, &input, || {
            crate::persist::TemplateKey::of(svc, &key)
        })?;
        let release = || {
            if let Some(r) = control {
                tables.persist.release(r, true, w, &tables.services);
            }
        };
        // An IPv4 packet's service is an IPv4 one, whose dests are IPv4 (service::table).
        let Some((dest, rip)) = svc.dests().get(idx).and_then(|d| Some((d, d.addr4()?))) else {
            release();
            return Err(DropReason::NoDest);
        };
        // A dest of port 0 (port-0 and fwmark services) takes the port the client asked for.
        let rport = if dest.port() == 0 {
            key.dport
        } else {
            dest.port()
        };
        // FULLNAT: the real server answers to LIP:lport; the others answer the client.
        let (reply_dst, reply_dport, laddr) = if dest.method() == ForwardMethod::FullNat {
            match alloc_lport(&mut self.lports, w, tables, svc, rip, rport) {
                Ok((lip, lport, li)) => (lip, lport, Some((lip, lport, li))),
                Err(e) => {
                    release();
                    return Err(e);
                }
            }
        } else {
            (key.src, key.sport, None)
        };
        let new = NewConn {
            in_key: key,
            out_key: ConnKey {
                proto: key.proto,
                src: rip,
                sport: rport,
                dst: reply_dst,
                dport: reply_dport,
            },
            service: svc_id,
            dest: dest.id(),
            method: dest.method(),
            state,
            deadline: now + tables.timeouts.timeout(state),
            template: false,
        };
        let mut inserted = self.conns.insert(new);
        if inserted == Err(InsertError::KeyExists) && self.expire_closing_holders(tables, &new) {
            inserted = self.conns.insert(new);
        }
        let id = match inserted {
            Ok(id) => id,
            Err(e) => {
                release();
                if let Some((lip, lport, li)) = laddr {
                    self.lports.release(lip, rip, rport, lport);
                    if e == InsertError::KeyExists {
                        crate::laddr::count_conflict(&tables.laddrs.of(svc_id)[li].stats, w);
                    }
                }
                return Err(match e {
                    InsertError::TableFull => DropReason::ConnTableFull,
                    InsertError::KeyExists => DropReason::ConnTupleInUse,
                });
            }
        };
        if let Some((_, _, li)) = laddr {
            crate::laddr::count_conn(&tables.laddrs.of(svc_id)[li].stats, w, 1);
            let proxy_hdr = svc.config().client_addr.proxy != ProxyProtocol::Disable;
            if key.proto == IpProtocol::TCP.0
                && let Some(c) = self.conns.get_mut(id)
            {
                c.set_flag(ConnFlags::TOA_PENDING, true);
                c.set_flag(ConnFlags::PROXY_HDR, proxy_hdr);
            }
            if proxy_hdr && let Some(slot) = self.proxy.get_mut(id.0 as usize) {
                // Set when the connection's SYN passes (`proxyhdr`).
                *slot = Default::default();
            }
        }
        if let Some(r) = control
            && let Some(c) = self.conns.get_mut(id)
        {
            c.set_control(r);
        }
        self.note_embryo(id);
        let inactive = self.conns.get(id).is_some_and(|c| c.is_inactive());
        dest.bind_conn(w, inactive);
        dest.stats().slot(w).add_conn();
        svc.stats().slot(w).add_conn();
        Ok(id)
    }

    /// Account a packet of a known connection and hand it to its method.
    pub(super) fn forward_conn(
        &mut self,
        tables: &Tables,
        now: Instant,
        id: ConnId,
        dir: Dir,
        p: &Parsed,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let Some(conn) = self.conns.get(id).copied() else {
            return Err(DropReason::NotForUs);
        };
        let Some((svc, dest)) = tables.services.dest_with_service(conn.dest()) else {
            // The dest was removed: stop forwarding for it and forget the connection.
            self.remove_conn(tables, id, true);
            return Err(DropReason::DestRemoved);
        };
        let w = self.cfg.id;
        if let Some(t) = self
            .conns
            .on_packet(id, dir, p.tcp_flags, now, &tables.timeouts)
            && t.old != t.new
        {
            if t.active_delta != 0 || t.inactive_delta != 0 {
                dest.move_conn(w, t.active_delta, t.inactive_delta);
            }
            if t.new == ConnState::Tcp(TcpState::Established) {
                assure_template(tables, &mut self.conns, id, &conn);
            }
        }
        if dir == Dir::Reply && conn.in_key().proto == IpProtocol::UDP.0 {
            assure_template(tables, &mut self.conns, id, &conn);
        }
        let mut seq_fixed = false;
        if conn.flags().contains(ConnFlags::PROXY_HDR) {
            match dir {
                Dir::Original => {
                    seq_fixed = self.proxy_hdr_to_server(tables, svc, &conn, id, p, buf)?;
                }
                Dir::Reply => self.proxy_hdr_from_server(id, p, buf),
            }
        }
        if super::proxyhdr::renumbered(&conn) {
            self.seq_adjust(id, dir, p, buf, seq_fixed);
        }
        if dir == Dir::Reply && !conn.flags().contains(ConnFlags::REPLIED) {
            // First answer of the real server: a handshake still open starts its eviction
            // clock again from here (`pressure`).
            self.note_embryo(id);
        }
        let len = buf.len() as u64;
        let ports = &self.cfg.ports;
        let mtu = |port: crate::l3::addr::PortId| {
            ports
                .get(usize::from(port))
                .map_or(0, |p| usize::from(p.mtu))
        };
        let mut env = xmit::Env {
            routes: &tables.routes,
            addrs: &tables.addrs,
            mtu: &mtu,
            ip_ident: &mut self.ip_ident,
            client_addr: svc.config().client_addr,
        };
        let (verdict, sent) = xmit::apply(&conn, dir, p, buf, &mut env)?;
        if sent.toa
            && let Some(c) = self.conns.get_mut(id)
        {
            c.set_flag(ConnFlags::TOA_PENDING, false);
        }
        if sent.uoa
            && let Some(c) = self.conns.get_mut(id)
        {
            c.count_uoa();
            self.counters.uoa_sent += 1;
        }
        if sent.proxy_hdr {
            self.counters.proxy_udp += 1;
        }
        let how = match verdict {
            xmit::Verdict::Forward(how) => how,
            xmit::Verdict::IcmpError(kind, reason) => return Ok(Action::IcmpError(kind, reason)),
        };
        match dir {
            Dir::Original => {
                dest.stats().slot(w).add_in(len);
                svc.stats().slot(w).add_in(len);
            }
            Dir::Reply => {
                dest.stats().slot(w).add_out(len);
                svc.stats().slot(w).add_out(len);
            }
        }
        Ok(Action::Forward(how))
    }
}

/// The connections of `table` holding a tuple of `new` (none, one or two), when every one of
/// them is a TCP connection closing (TIME_WAIT or CLOSE); `None` when one is still open
/// ([`State::expire_closing_holders`], for either family's table).
pub(super) fn closing_holders<K: crate::conn::FlowKey>(
    table: &ConnTable<K>,
    new: &NewConn<K>,
) -> Option<[Option<ConnId>; 2]> {
    let mut holders = [None, None];
    for (slot, key) in holders.iter_mut().zip([&new.in_key, &new.out_key]) {
        if let Some((id, _)) = table.lookup(key) {
            let closing = table.get(id).is_some_and(|c| {
                matches!(
                    c.state(),
                    ConnState::Tcp(TcpState::TimeWait | TcpState::Close)
                )
            });
            if !closing {
                return None;
            }
            *slot = Some(id);
        }
    }
    if holders[0] == holders[1] {
        holders[1] = None;
    }
    Some(holders)
}

/// The dest (its index in `svc`'s list) for a new connection, and the persistence template
/// controlling it. Persistent services: the shared template table decides for the client
/// network `tkey` (made only then), asking `sched` only when it has no template yet; other
/// services ask `sched`. For both families' connections.
pub(super) fn pick_dest(
    tables: &Tables,
    now: Instant,
    worker: usize,
    svc: &Service,
    sched: &mut (dyn Scheduler + Send),
    input: &SchedInput,
    tkey: impl FnOnce() -> crate::persist::TemplateKey,
) -> Result<(usize, Option<crate::persist::TemplateRef>), DropReason> {
    if svc.config().persistence.is_some() {
        let (idx, r) = tables
            .persist
            .schedule(now, worker, svc, tkey(), || {
                sched.schedule(svc.dests(), input)
            })
            .map_err(|e| match e {
                PersistError::NoDest => DropReason::NoDest,
                PersistError::Full => DropReason::PersistTableFull,
            })?;
        Ok((idx, Some(r)))
    } else {
        let idx = sched
            .schedule(svc.dests(), input)
            .ok_or(DropReason::NoDest)?;
        Ok((idx, None))
    }
}

/// This worker's scheduler of `svc` in `scheds`, made on first use (or when the service's
/// scheduler or its flags changed, seeded with `seed`) and told of dest changes (a new service
/// version) before use.
pub(super) fn sched_slot<'a>(
    scheds: &'a mut std::collections::HashMap<
        crate::service::ServiceId,
        SchedSlot,
        crate::service::snapshot::FastBuildHasher,
    >,
    seed: u64,
    svc: &Service,
) -> Result<&'a mut SchedSlot, DropReason> {
    let svc_id = svc.id();
    let current = scheds
        .get(&svc_id)
        .is_some_and(|s| s.name == svc.scheduler() && s.flags == svc.flags());
    if !current {
        let params = crate::sched::SchedParams {
            seed,
            ..Default::default()
        };
        let sched = crate::sched::new_with_params(svc.scheduler(), svc.flags(), &params)
            .map_err(|_| DropReason::NoDest)?;
        scheds.insert(
            svc_id,
            SchedSlot {
                version: u64::MAX,
                name: svc.scheduler().to_owned(),
                flags: svc.flags(),
                sched,
            },
        );
    }
    let slot = scheds.get_mut(&svc_id).ok_or(DropReason::NoDest)?;
    if slot.version != svc.version() {
        slot.sched.update(svc.dests());
        slot.version = svc.version();
    }
    Ok(slot)
}

/// A local address and port of service `svc` towards `rip:rport` from `worker`'s partition:
/// the service's IPv4 local addresses are tried in turn from a rotating start, so connections
/// spread over them. Returns the address, the port and the address's index in the service's
/// list.
pub(super) fn alloc_lport(
    lports: &mut LportAlloc,
    worker: usize,
    tables: &Tables,
    svc: &Service,
    rip: Ipv4Addr,
    rport: u16,
) -> Result<(Ipv4Addr, u16, usize), DropReason> {
    let v4 = |ip| match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    };
    alloc_lport_of(lports, worker, tables, svc, v4, |l, n, lip| {
        l.alloc(n, lip, rip, rport)
    })
}

/// [`alloc_lport`] from the service's IPv6 local addresses (FULLNAT6).
pub(super) fn alloc_lport6(
    lports: &mut LportAlloc,
    worker: usize,
    tables: &Tables,
    svc: &Service,
    rip: Ipv6Addr,
    rport: u16,
) -> Result<(Ipv6Addr, u16, usize), DropReason> {
    let v6 = |ip| match ip {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    };
    alloc_lport_of(lports, worker, tables, svc, v6, |l, n, lip| {
        l.alloc6(n, lip, rip, rport)
    })
}

/// The rotation both families share: the service's local addresses `family` accepts, tried in
/// turn from a rotating start, `take` asking the allocator for a port of one; a refusal counts
/// a conflict on that address.
fn alloc_lport_of<A: Copy>(
    lports: &mut LportAlloc,
    worker: usize,
    tables: &Tables,
    svc: &Service,
    family: impl Fn(IpAddr) -> Option<A>,
    mut take: impl FnMut(&mut LportAlloc, usize, A) -> Option<u16>,
) -> Result<(A, u16, usize), DropReason> {
    let laddrs = tables.laddrs.of(svc.id());
    if !laddrs.iter().any(|l| family(l.ip).is_some()) {
        return Err(DropReason::NoLaddr);
    }
    let n = tables.laddrs.n_workers();
    let start = lports.next_start(laddrs.len());
    for k in 0..laddrs.len() {
        let li = (start + k) % laddrs.len();
        let l = &laddrs[li];
        let Some(lip) = family(l.ip) else { continue };
        if let Some(p) = take(lports, n, lip) {
            return Ok((lip, p, li));
        }
        crate::laddr::count_conflict(&l.stats, worker);
    }
    Err(DropReason::LportExhausted)
}

/// A controlled connection is established (TCP) or answered (UDP): its template becomes ASSURED
/// (told once per connection).
fn assure_template(tables: &Tables, conns: &mut ConnTable, id: ConnId, conn: &Conn) {
    let Some(r) = conn.control() else { return };
    if conn.flags().contains(ConnFlags::ASSURED_SENT) {
        return;
    }
    tables.persist.assure(r);
    if let Some(c) = conns.get_mut(id) {
        c.set_flag(ConnFlags::ASSURED_SENT, true);
    }
}

/// A connection is gone (expired, or removed `early`): unbind it from its dest, release its
/// template's control and give back its local port (FULLNAT).
pub(super) fn forget(tables: &Tables, lports: &mut LportAlloc, c: &Conn, early: bool) {
    if let Some(d) = tables.services.dest(c.dest()) {
        d.unbind_conn(lports.worker(), c.is_inactive());
    }
    if let Some(r) = c.control() {
        tables
            .persist
            .release(r, early, lports.worker(), &tables.services);
    }
    if c.method() == ForwardMethod::FullNat {
        let o = c.out_key();
        lports.release(o.dst, o.src, o.sport, o.dport);
        if let Some(s) = tables.laddrs.stats(o.dst) {
            crate::laddr::count_conn(s, lports.worker(), -1);
        }
    }
}
