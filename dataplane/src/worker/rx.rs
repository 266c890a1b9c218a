//! Receive and classify: what a parsed frame is, and which path takes it (ARP, ICMP, the
//! connection path), or why it is dropped.

use crate::conn::{ConnKey, ConnState, Dir, TcpState};
use crate::drop::DropReason;
use crate::l3::addr::PortId;
use crate::l3::arp::{ArpVerdict, handle_arp};
use crate::l3::icmp::echo_reply_in_place;
use crate::packet::PacketBuf;
use crate::parse::{Class, Parsed, Verdict};
use crate::service::ForwardMethod;
use crate::time::Instant;
use crate::wire::icmp::IcmpType;
use crate::wire::{IpProtocol, MacAddr, icmp, tcp, udp};
use crate::xmit::{self, Fwd};

use super::tx::{Action, send_resolved, set_dst_mac};
use super::{Io, State, Tables};

impl<B: PacketBuf> State<B> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        buf: &mut B,
        p: &Parsed,
        h: u64,
        io: &mut I,
    ) -> Result<Action, DropReason> {
        let Some(setup) = self.cfg.ports.get(usize::from(port)).copied() else {
            return Err(DropReason::NotForUs);
        };
        if p.options {
            self.counters.ipv4_options += 1;
        }
        match p.class {
            Class::Drop(reason) => Err(reason),
            Class::Arp => self.handle_arp(tables, now, port, setup.mac, buf, io),
            Class::Flow => self.handle_flow(tables, now, port, buf, p, h, io),
            Class::Icmp => self.handle_icmp(tables, now, port, p, buf),
            Class::OtherIp => Err(not_ours(tables, p)),
            Class::Ipv6 => self.handle_ipv6(tables, now, port, setup.mac, buf, io),
        }
    }

    fn handle_arp<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        mac: MacAddr,
        buf: &mut B,
        io: &mut I,
    ) -> Result<Action, DropReason> {
        // The sender's MAC, for packets the message releases from the neighbour queue (the
        // ARP handler checks the frame; a short one releases nothing).
        let sender = arp_sender(buf);
        self.next_hops.invalidate();
        let counters = &mut self.counters;
        let verdict = handle_arp(
            now,
            port,
            mac,
            buf,
            |ip| tables.answers_for(port, ip),
            &mut self.neigh,
            |b: B| {
                // A packet that was waiting for this neighbour: send it to the MAC just learnt.
                send_resolved(counters, io, port, mac, set_dst_mac(b, sender));
            },
        );
        match verdict {
            ArpVerdict::Reply => Ok(Action::Transmit(port)),
            ArpVerdict::Consumed => Ok(Action::Consumed),
            ArpVerdict::Drop(r) => Err(r),
        }
    }

    /// See [`super::Worker::learn_arp`].
    pub(super) fn learn_arp<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        buf: B,
        io: &mut I,
    ) {
        let Some(mac) = self.cfg.ports.get(usize::from(port)).map(|p| p.mac) else {
            return;
        };
        let sender = arp_sender(&buf);
        self.next_hops.invalidate();
        let counters = &mut self.counters;
        crate::l3::arp::learn_only(
            now,
            port,
            mac,
            &buf,
            |ip| tables.answers_for(port, ip),
            &mut self.neigh,
            |b: B| send_resolved(counters, io, port, mac, set_dst_mac(b, sender)),
        );
        self.send_solicits(tables, io);
    }

    /// The connection path: a TCP or UDP packet of a known connection, or one that opens one.
    #[allow(clippy::too_many_arguments)]
    fn handle_flow<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        buf: &mut B,
        p: &Parsed,
        h: u64,
        io: &mut I,
    ) -> Result<Action, DropReason> {
        let key = p.key;
        let plain_syn = p.is_plain_syn();
        if let Some((id, dir)) = self.conns.lookup_hashed(&key, h) {
            if p.ttl <= 1 {
                return Err(DropReason::TtlExceeded);
            }
            if let Some(c) = self.conns.get(id)
                && c.flags().contains(crate::conn::ConnFlags::SYNPROXY)
                && c.state() == ConnState::Tcp(TcpState::SynSent)
                && let Some(action) = self.synproxy_opening(tables, now, id, dir, p, buf, io)?
            {
                return Ok(action);
            }
            let reused = dir == Dir::Original
                && plain_syn
                && self.conns.get(id).is_some_and(|c| {
                    matches!(
                        c.state(),
                        ConnState::Tcp(TcpState::TimeWait | TcpState::Close)
                    )
                });
            if !reused {
                return self.forward_conn(tables, now, id, dir, p, buf);
            }
            // A new connection on a client port whose old one is closing: expire it and
            // schedule anew (IPVS conn_reuse_mode).
            self.counters.conn_reuses += 1;
            self.remove_conn(tables, id, true);
        }
        // A server's reply to an IPv4 local address that the IPv4 table does not know: a
        // NAT64 connection's, kept in the IPv6 table (`flow6`).
        if tables.laddrs.contains(key.dst)
            && let Some(r) = self.nat64_reply(tables, now, p, buf)
        {
            return r;
        }
        // The service is looked up once per new connection; everything after borrows it.
        let Some(svc) = tables.find_service(key.proto, key.dst, key.dport) else {
            return Err(not_ours(tables, p));
        };
        if tables.martian_source(key.src, key.dst) {
            return Err(DropReason::MartianSource);
        }
        let synproxy = key.proto == IpProtocol::TCP.0 && svc.config().synproxy;
        if key.proto == IpProtocol::TCP.0 && !plain_syn && !synproxy && !sloppy_opens(tables, p) {
            return Err(DropReason::TcpNoConnection);
        }
        let checksum_ok = match p.l4_checksum {
            Verdict::Good => true,
            Verdict::Bad => false,
            Verdict::Unknown => l4_checksum_ok(buf.data(), p),
        };
        if !checksum_ok {
            return Err(DropReason::L4BadChecksum);
        }
        if p.ttl <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        if synproxy {
            return self.synproxy_no_conn(tables, now, port, svc, p, buf);
        }
        self.admit(tables, now, svc, key.src.into(), port)?;
        let one_packet = key.proto == IpProtocol::UDP.0 && svc.config().one_packet;
        let id = self.open_conn(tables, now, svc, key)?;
        let action = self.forward_conn(tables, now, id, Dir::Original, p, buf);
        if one_packet {
            // One-packet scheduling (`-o`): the datagram was scheduled and counted as a
            // connection; nothing is kept (IPVS never hashes such connections). Its template,
            // if any, stays: the removal is not "early".
            self.remove_conn(tables, id, false);
        }
        action
    }

    fn handle_icmp(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        p: &Parsed,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let l4 = buf.data().get(usize::from(p.l4)..).unwrap_or_default();
        let end = l4.len().min(ip_payload_len(buf.data(), p));
        let m = icmp::Packet::new_checked(&l4[..end]).map_err(|_| DropReason::IcmpMalformed)?;
        let msg_type = m.msg_type();
        if xmit::icmp::is_translated_error(msg_type)
            && let Some(q) = xmit::icmp::quoted_tuple(buf.data())
        {
            // The quoted packet is one we sent; reversed, it is what its peer sends us.
            let key = ConnKey {
                proto: q.proto,
                src: q.dst,
                sport: q.dport,
                dst: q.src,
                dport: q.sport,
            };
            if let Some((id, dir)) = self.conns.lookup(&key) {
                if !m.verify_checksum() {
                    return Err(DropReason::L4BadChecksum);
                }
                if p.ttl <= 1 {
                    return Err(DropReason::TtlExceeded);
                }
                return self.forward_icmp_error(id, dir, buf);
            }
            // About a NAT64 connection (its IPv4 side, kept in the IPv6 table): the IPv6
            // client gets it as ICMPv6.
            if tables.laddrs.contains(q.src) && !self.conns6.is_empty() {
                let checksum_ok = m.verify_checksum();
                if let Some(r) = self.nat64_icmp_error(&key, checksum_ok, p, buf) {
                    return r;
                }
            }
        }
        if msg_type == IcmpType::ECHO_REQUEST && tables.answers_for(port, p.key.dst) {
            if tables.martian_source(p.key.src, p.key.dst) {
                return Err(DropReason::MartianSource);
            }
            if !self.icmp_echo.allow(now) {
                return Err(DropReason::IcmpRateLimited);
            }
            echo_reply_in_place(buf)?;
            return Ok(Action::Transmit(port));
        }
        Err(not_ours(tables, p))
    }

    /// Translate an ICMP error about connection `id` for the other side (see `xmit::icmp`).
    fn forward_icmp_error(
        &mut self,
        id: crate::conn::ConnId,
        dir: Dir,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let conn = *self.conns.get(id).ok_or(DropReason::NotForUs)?;
        let (i, o) = (*conn.in_key(), *conn.out_key());
        let fullnat = conn.method() == ForwardMethod::FullNat;
        let quoted = |k: crate::conn::ConnKey| xmit::icmp::Quoted {
            proto: k.proto,
            src: k.src,
            sport: k.sport,
            dst: k.dst,
            dport: k.dport,
        };
        let t = match (conn.method(), dir) {
            (ForwardMethod::Masq | ForwardMethod::FullNat, Dir::Original) => {
                xmit::icmp::Translation {
                    outer_src: fullnat.then_some(o.dst),
                    outer_dst: Some(o.src),
                    quoted: quoted(o),
                }
            }
            (ForwardMethod::Masq | ForwardMethod::FullNat, Dir::Reply) => xmit::icmp::Translation {
                outer_src: Some(i.dst),
                outer_dst: fullnat.then_some(i.src),
                quoted: quoted(i),
            },
            (ForwardMethod::Route, Dir::Original) => {
                // The real server holds the VIP too: pass the error on as DR passes requests.
                return Ok(Action::Forward(Fwd {
                    via: Some(o.src),
                    dec_ttl: false,
                }));
            }
            _ => return Err(DropReason::MethodUnsupported),
        };
        xmit::icmp::translate(buf, &t)?;
        Ok(Action::Forward(Fwd::ROUTED))
    }
}

/// With `sloppy_tcp`, a TCP packet other than a plain SYN opens a connection unless it is a RST
/// (IPVS `tcp_conn_schedule`: `!th->rst && (th->syn || sysctl_sloppy_tcp)`).
fn sloppy_opens(tables: &Tables, p: &Parsed) -> bool {
    tables.sloppy_tcp && p.tcp_flags & 0x04 == 0
}

/// Why a packet no path took is dropped: addressed to the director but no service, or not
/// addressed to it at all.
fn not_ours(tables: &Tables, p: &Parsed) -> DropReason {
    if tables.is_local(p.key.dst) {
        DropReason::LocalNotService
    } else {
        DropReason::NotForUs
    }
}

/// The ARP sender's MAC of an ARP frame (zero when it is too short).
fn arp_sender<B: PacketBuf>(buf: &B) -> MacAddr {
    buf.data()
        .get(22..28)
        .and_then(MacAddr::from_bytes)
        .unwrap_or(MacAddr::ZERO)
}

/// Length of the IPv4 payload from the L4 offset (total length minus header), clamped.
fn ip_payload_len(frame: &[u8], p: &Parsed) -> usize {
    let total = frame
        .get(crate::parse::L3 + 2..crate::parse::L3 + 4)
        .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    (crate::parse::L3 + total).saturating_sub(usize::from(p.l4))
}

/// Full TCP/UDP checksum check of a frame `p` describes (only for packets that open a
/// connection).
fn l4_checksum_ok(frame: &[u8], p: &Parsed) -> bool {
    let start = usize::from(p.l4);
    let end = (start + ip_payload_len(frame, p)).min(frame.len());
    let Some(seg) = frame.get(start..end) else {
        return false;
    };
    let (src, dst) = (p.key.src, p.key.dst);
    if p.key.proto == IpProtocol::TCP.0 {
        tcp::Packet::new_checked(seg).is_ok_and(|t| t.verify_checksum(src, dst))
    } else if p.key.proto == IpProtocol::UDP.0 {
        udp::Packet::new_checked(seg).is_ok_and(|u| u.verify_checksum(src, dst))
    } else {
        true
    }
}
