//! IPv6 connections (docs/ipv6.md): the connection path for IPv6 clients, the counterpart of
//! [`super::rx`]'s `handle_flow` and [`super::conns`] for the worker's IPv6 table.
//!
//! A TCP or UDP packet over IPv6 ([`crate::parse6`]) is looked up in the worker's IPv6
//! connection table (both tuples of every connection are indexed, as for IPv4). A miss to an
//! IPv6 service opens a connection: the service's scheduler picks a dest (IPv6 hashing keys
//! for the hashing schedulers), a persistent service asks the shared template table first,
//! FULLNAT takes a local address of the dest's family and a local port from this worker's
//! partition, and the connection is inserted with its reply tuple. Then, as for IPv4, the
//! state machine and the counters see the packet and its method rewrites it
//! ([`crate::xmit::apply6`]).
//!
//! NAT64 (an IPv6 service with IPv4 FULLNAT dests) keeps its connections in the IPv6 table too:
//! the reply tuple holds the server's and the local IPv4 addresses as IPv4-mapped IPv6
//! addresses, so an IPv4 reply from the server, which misses the IPv4 table, is found here by
//! its mapped tuple ([`State::nat64_reply`]) and translated back to IPv6.
//!
//! Admission (access lists, limits, rates: [`super::admit`]) applies to IPv6 clients as to
//! IPv4 ones, and a restart with state carries IPv6 connections ([`super::state`]). Not for
//! IPv6 connections yet (docs/ipv6.md): the SYN proxy, PROXY protocol headers and UOA (the
//! service table refuses them on IPv6 services), the embryonic-connection eviction.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conn::{ConnFlags, ConnId, ConnKey6, ConnState, Dir, InsertError, NewConn, TcpState};
use crate::drop::DropReason;
use crate::laddr::LportAlloc;
use crate::packet::PacketBuf;
use crate::parse::Parsed;
use crate::parse6::{Class6, Parsed6, parse6};
use crate::sched::SchedInput;
use crate::service::{ForwardMethod, Service};
use crate::time::Instant;
use crate::wire::IpProtocol;
use crate::wire::checksum::l4_checksum_v6;
use crate::xmit::{self, Rx6};

use super::tx::Action;
use super::{State, Tables};

impl<B: PacketBuf> State<B> {
    /// The IPv6 connection path: a TCP or UDP packet of a known IPv6 connection, or one that
    /// opens one. `Err` is the packet's drop reason.
    pub(super) fn handle_flow6(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: crate::l3::addr::PortId,
        dst: Ipv6Addr,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let p = match parse6(buf.data(), &super::v6::POLICY) {
            Ok(p) => p,
            // What is not for a service or a local address is judged as the director's own
            // traffic (the kernel twin's, when there is one) or not ours, as other IPv6.
            Err(_) if !tables.services.is_vip6(dst) && !tables.laddrs.contains6(dst) => {
                return Err(super::v6::not_served(tables, dst));
            }
            Err(e) => return Err(e),
        };
        if p.class != Class6::Flow {
            return Err(super::v6::not_served(tables, p.key.dst));
        }
        let h = self.conns6.hash(&p.key);
        self.handle_flow6_parsed(tables, now, port, p, h, buf)
    }

    /// [`State::handle_flow6`] for a frame already described (`p`, a TCP or UDP packet) with
    /// its hash `h` in the IPv6 table (the burst's first stage describes them).
    pub(super) fn handle_flow6_parsed(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: crate::l3::addr::PortId,
        p: Parsed6,
        h: u64,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let key = p.key;
        let plain_syn = p.is_plain_syn();
        if let Some((id, dir)) = self.conns6.lookup_hashed(&key, h) {
            if p.hop_limit <= 1 {
                return Err(DropReason::TtlExceeded);
            }
            let reused = dir == Dir::Original
                && plain_syn
                && self.conns6.get(id).is_some_and(|c| {
                    matches!(
                        c.state(),
                        ConnState::Tcp(TcpState::TimeWait | TcpState::Close)
                    )
                });
            if !reused {
                return self.forward_conn6(tables, now, id, dir, Rx6::V6(&p), buf);
            }
            // A new connection on a client port whose old one is closing (IPVS
            // conn_reuse_mode), as for IPv4.
            self.counters.conn_reuses += 1;
            self.remove_conn6(tables, id, true);
        }
        let Some(svc) = tables.services.lookup6(key.proto, key.dst, key.dport) else {
            return Err(super::v6::not_served(tables, key.dst));
        };
        if martian6(tables, key.src, key.dst) {
            return Err(DropReason::MartianSource);
        }
        if key.proto == IpProtocol::TCP.0 && !plain_syn && !sloppy_opens6(tables, &p) {
            return Err(DropReason::TcpNoConnection);
        }
        if !l4_checksum_ok6(buf.data(), &p) {
            return Err(DropReason::L4BadChecksum);
        }
        if p.hop_limit <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        self.admit(tables, now, svc, IpAddr::V6(key.src), port)?;
        let one_packet = key.proto == IpProtocol::UDP.0 && svc.config().one_packet;
        let id = self.open_conn6(tables, now, svc, key)?;
        let action = self.forward_conn6(tables, now, id, Dir::Original, Rx6::V6(&p), buf);
        if one_packet {
            self.remove_conn6(tables, id, false);
        }
        action
    }

    /// An IPv4 packet that missed the IPv4 table and is addressed to a local address: the
    /// reply of a NAT64 connection from its IPv4 server, if the IPv6 table has its mapped
    /// tuple (`None`: it is not).
    pub(super) fn nat64_reply(
        &mut self,
        tables: &Tables,
        now: Instant,
        p: &Parsed,
        buf: &mut B,
    ) -> Option<Result<Action, DropReason>> {
        let staged = self.pre64.take();
        if self.conns6.is_empty() {
            return None;
        }
        let k = p.key;
        let mapped = xmit::nat64::mapped_key(k.proto, k.src, k.sport, k.dst, k.dport);
        let h6 = staged.unwrap_or_else(|| self.conns6.hash(&mapped));
        let (id, dir) = self.conns6.lookup_hashed(&mapped, h6)?;
        if dir != Dir::Reply {
            return Some(Err(DropReason::NotForUs));
        }
        if p.ttl <= 1 {
            return Some(Err(DropReason::TtlExceeded));
        }
        Some(self.forward_conn6(tables, now, id, dir, Rx6::V4(p), buf))
    }

    /// An ICMPv4 error whose quote, reversed, is `key` (a server's reply tuple to an IPv4
    /// local address): if a NAT64 connection has that reply tuple, the error is rewritten as
    /// ICMPv6 for its client (`xmit::nat64_icmp`). `None`: no such connection.
    pub(super) fn nat64_icmp_error(
        &mut self,
        key: &crate::conn::ConnKey,
        checksum_ok: bool,
        p: &Parsed,
        buf: &mut B,
    ) -> Option<Result<Action, DropReason>> {
        let mapped = xmit::nat64::mapped_key(key.proto, key.src, key.sport, key.dst, key.dport);
        let (id, dir) = self.conns6.lookup(&mapped)?;
        let conn = self.conns6.get(id)?;
        if dir != Dir::Reply || conn.out_key().src.to_ipv4_mapped().is_none() {
            return None;
        }
        if !checksum_ok {
            return Some(Err(DropReason::L4BadChecksum));
        }
        if p.ttl <= 1 {
            return Some(Err(DropReason::TtlExceeded));
        }
        let client = *conn.in_key();
        Some(
            xmit::nat64_icmp::to_icmp6(buf, usize::from(p.l4), &client).map(|()| {
                Action::Forward6 {
                    via: None,
                    dec_hop: true,
                }
            }),
        )
    }

    /// Remove an IPv6 connection now, with its dest and local-port accounting.
    pub(super) fn remove_conn6(&mut self, tables: &Tables, id: ConnId, early: bool) {
        if let Some(c) = self.conns6.remove(id) {
            forget6(tables, &mut self.lports, &c, early);
        }
    }

    /// Schedule a dest of `svc` for a new IPv6 connection with in-tuple `key` and insert it.
    fn open_conn6(
        &mut self,
        tables: &Tables,
        now: Instant,
        svc: &Service,
        key: ConnKey6,
    ) -> Result<ConnId, DropReason> {
        let svc_id = svc.id();
        let w = self.cfg.id;
        let input = SchedInput {
            proto: key.proto,
            client: IpAddr::V6(key.src),
            client_port: key.sport,
            vip: IpAddr::V6(key.dst),
            vport: key.dport,
            now,
            worker: w,
        };
        let state = ConnState::initial(key.proto).ok_or(DropReason::NotForUs)?;
        let slot = super::conns::sched_slot(&mut self.scheds, self.sched_seed, svc)?;
        let (idx, control) =
            super::conns::pick_dest(tables, now, w, svc, &mut *slot.sched, &input, || {
                crate::persist::TemplateKey::of6(svc, &key)
            })?;
        let release = || {
            if let Some(r) = control {
                tables.persist.release(r, true, w, &tables.services);
            }
        };
        let Some(dest) = svc.dests().get(idx) else {
            release();
            return Err(DropReason::NoDest);
        };
        let rport = if dest.port() == 0 {
            key.dport
        } else {
            dest.port()
        };
        // The reply tuple: the real server answers the client (NAT6, DR6, TUN6), a local
        // address of the dest's family (FULLNAT6), or an IPv4 local address (NAT64, the tuple
        // mapped into IPv6).
        let (out_key, laddr) = match (dest.addr(), dest.method()) {
            (IpAddr::V6(rip), ForwardMethod::FullNat) => {
                match super::conns::alloc_lport6(&mut self.lports, w, tables, svc, rip, rport) {
                    Ok((lip, lport, li)) => (
                        ConnKey6::new(key.proto, rip, rport, lip, lport),
                        Some((Lport::V6(lip, rip), lport, li)),
                    ),
                    Err(e) => {
                        release();
                        return Err(e);
                    }
                }
            }
            (IpAddr::V6(rip), _) => (
                ConnKey6::new(key.proto, rip, rport, key.src, key.sport),
                None,
            ),
            (IpAddr::V4(rip), ForwardMethod::FullNat) => {
                match super::conns::alloc_lport(&mut self.lports, w, tables, svc, rip, rport) {
                    Ok((lip, lport, li)) => (
                        xmit::nat64::mapped_key(key.proto, rip, rport, lip, lport),
                        Some((Lport::V4(lip, rip), lport, li)),
                    ),
                    Err(e) => {
                        release();
                        return Err(e);
                    }
                }
            }
            // An IPv4 dest under an IPv6 service is FULLNAT only (the service table refuses
            // the rest): refuse rather than guess.
            (IpAddr::V4(_), _) => {
                release();
                return Err(DropReason::MethodUnsupported);
            }
        };
        let new = NewConn {
            in_key: key,
            out_key,
            service: svc_id,
            dest: dest.id(),
            method: dest.method(),
            state,
            deadline: now + tables.timeouts.timeout(state),
            template: false,
        };
        let mut inserted = self.conns6.insert(new);
        if inserted == Err(InsertError::KeyExists) && self.expire_closing_holders6(tables, &new) {
            inserted = self.conns6.insert(new);
        }
        let id = match inserted {
            Ok(id) => id,
            Err(e) => {
                release();
                if let Some((l, lport, li)) = laddr {
                    match l {
                        Lport::V6(lip, rip) => self.lports.release6(lip, rip, rport, lport),
                        Lport::V4(lip, rip) => self.lports.release(lip, rip, rport, lport),
                    }
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
            if key.proto == IpProtocol::TCP.0
                && let Some(c) = self.conns6.get_mut(id)
            {
                c.set_flag(ConnFlags::TOA_PENDING, true);
            }
        }
        if let Some(r) = control
            && let Some(c) = self.conns6.get_mut(id)
        {
            c.set_control(r);
        }
        let inactive = self.conns6.get(id).is_some_and(|c| c.is_inactive());
        dest.bind_conn(w, inactive);
        dest.stats().slot(w).add_conn();
        svc.stats().slot(w).add_conn();
        Ok(id)
    }

    /// [`State::open_conn6`]'s tuple is held by closing connections: end them (see the IPv4
    /// `expire_closing_holders`).
    fn expire_closing_holders6(&mut self, tables: &Tables, new: &NewConn<ConnKey6>) -> bool {
        let Some(holders) = super::conns::closing_holders(&self.conns6, new) else {
            return false;
        };
        let mut any = false;
        for id in holders.into_iter().flatten() {
            self.counters.conn_reuses += 1;
            self.remove_conn6(tables, id, true);
            any = true;
        }
        any
    }

    /// Account a packet of a known IPv6 connection and hand it to its method.
    fn forward_conn6(
        &mut self,
        tables: &Tables,
        now: Instant,
        id: ConnId,
        dir: Dir,
        rx: Rx6<'_>,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let Some(conn) = self.conns6.get(id).copied() else {
            return Err(DropReason::NotForUs);
        };
        let Some((svc, dest)) = tables.services.dest_with_service(conn.dest()) else {
            self.remove_conn6(tables, id, true);
            return Err(DropReason::DestRemoved);
        };
        let w = self.cfg.id;
        let tcp_flags = match rx {
            Rx6::V6(p) => p.tcp_flags,
            Rx6::V4(p) => p.tcp_flags,
        };
        if let Some(t) = self
            .conns6
            .on_packet(id, dir, tcp_flags, now, &tables.timeouts)
            && t.old != t.new
        {
            if t.active_delta != 0 || t.inactive_delta != 0 {
                dest.move_conn(w, t.active_delta, t.inactive_delta);
            }
            if t.new == ConnState::Tcp(TcpState::Established) {
                self.assure_template6(tables, id);
            }
        }
        if dir == Dir::Reply && conn.in_key().proto == IpProtocol::UDP.0 {
            self.assure_template6(tables, id);
        }
        let len = buf.len() as u64;
        let ports = &self.cfg.ports;
        let mtu = |port: crate::l3::addr::PortId| {
            ports
                .get(usize::from(port))
                .map_or(0, |p| usize::from(p.mtu))
        };
        let mut env = xmit::Env6 {
            routes6: &tables.v6.routes,
            routes4: &tables.routes,
            addrs: &tables.addrs,
            mtu: &mtu,
            ip_ident: &mut self.ip_ident,
            client_addr: svc.config().client_addr,
        };
        let (verdict, sent) = xmit::apply6(&conn, dir, rx, buf, &mut env)?;
        if sent.toa
            && let Some(c) = self.conns6.get_mut(id)
        {
            c.set_flag(ConnFlags::TOA_PENDING, false);
        }
        let action = match verdict {
            xmit::Verdict6::Forward(how) => Action::from_fwd6(how),
            xmit::Verdict6::Icmp6Error(kind, reason) => {
                return Ok(Action::Icmp6Error(kind, reason));
            }
            xmit::Verdict6::IcmpError(kind, reason) => return Ok(Action::IcmpError(kind, reason)),
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
        Ok(action)
    }

    /// A controlled IPv6 connection is established (TCP) or answered (UDP): its template
    /// becomes ASSURED, told once.
    fn assure_template6(&mut self, tables: &Tables, id: ConnId) {
        let Some(c) = self.conns6.get_mut(id) else {
            return;
        };
        let Some(r) = c.control() else { return };
        if c.flags().contains(ConnFlags::ASSURED_SENT) {
            return;
        }
        tables.persist.assure(r);
        c.set_flag(ConnFlags::ASSURED_SENT, true);
    }
}

/// An IPv6 connection is gone: unbind it from its dest, release its template's control and
/// give back its local port (FULLNAT6 and NAT64).
pub(super) fn forget6(
    tables: &Tables,
    lports: &mut LportAlloc,
    c: &crate::conn::Conn<ConnKey6>,
    early: bool,
) {
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
        let stats = match xmit::nat64::unmapped(o) {
            Some(k4) => {
                lports.release(k4.dst, k4.src, k4.sport, k4.dport);
                tables.laddrs.stats(k4.dst)
            }
            None => {
                lports.release6(o.dst, o.src, o.sport, o.dport);
                tables.laddrs.stats6(o.dst)
            }
        };
        if let Some(s) = stats {
            crate::laddr::count_conn(s, lports.worker(), -1);
        }
    }
}

/// The local address and real server a FULLNAT connection holds a local port between.
#[derive(Clone, Copy)]
enum Lport {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

/// A source that cannot be a client's: unspecified, loopback, multicast, IPv4-mapped, one of
/// the director's own addresses, or the destination itself.
fn martian6(tables: &Tables, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
    src.is_unspecified()
        || src.is_loopback()
        || src.is_multicast()
        || src.to_ipv4_mapped().is_some()
        || src == dst
        || tables.addrs.owns6(src).is_some()
        || tables.services.is_vip6(src)
}

/// `sloppy_tcp` opens on any TCP packet but a RST, as for IPv4.
fn sloppy_opens6(tables: &Tables, p: &Parsed6) -> bool {
    tables.sloppy_tcp && p.tcp_flags & 0x04 == 0
}

/// The full TCP/UDP checksum of a packet that opens an IPv6 connection (a UDP checksum of 0 is
/// not allowed over IPv6, RFC 8200 section 8.1).
fn l4_checksum_ok6(frame: &[u8], p: &Parsed6) -> bool {
    let Some(seg) = frame.get(usize::from(p.l4)..usize::from(p.end)) else {
        return false;
    };
    if p.key.proto == IpProtocol::UDP.0 && seg.get(6..8) == Some(&[0, 0]) {
        return false;
    }
    l4_checksum_v6(p.key.src, p.key.dst, p.key.proto, seg) == 0
}
