//! The PROXY protocol header on FULLNAT TCP connections, in the worker (`--proxy-protocol`;
//! the header and the decisions are [`crate::xmit::proxy`]).
//!
//! When a connection's SYN passes, its slot learns where the client's bytes start and how long
//! rvs's header is. The header then goes in front of the payload of every client segment that
//! starts at that first sequence number, until the server acknowledges it:
//!
//! - in the secure modes (`v1`, `v2`) already in the handshake's last ACK, so that a server
//!   that speaks first (SMTP, FTP, MySQL...) is not left waiting for a header; the client's
//!   first data segment, starting at the same number, carries it again (the same bytes at the
//!   same place: the server takes them once). A header the client sent itself is cut off and
//!   replaced, so a client cannot claim another address;
//! - in the insecure modes (`v1-insecure`, `v2-insecure`) with the client's first data: a
//!   header of the configured version found there passes unchanged and rvs adds none; without
//!   one, rvs's goes in front. Until the client sends something the server sees nothing.
//!
//! A first segment too large to grow within the egress MTU leaves as it is, renumbered, and the
//! header follows in a segment of its own built from the first one's headers ([`Pending`]).
//! Every other segment is renumbered by the header's length, both ways, for the connection's
//! life ([`crate::synproxy::seqadj`], which the SYN proxy shares).

use std::net::Ipv4Addr;

use crate::conn::{Conn, ConnFlags, ConnId, Dir};
use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::parse::{L3, Parsed};
use crate::service::Service;
use crate::synproxy::seqadj::{self, Way};
use crate::xmit::proxy::{self, Header, TcpPlan};
use crate::xmit::{self, Fwd};

use super::{Io, State, Tables};

/// Bytes of a standalone header segment at most: Ethernet, IPv4 and TCP headers with options,
/// and the longest header.
const PENDING_MAX: usize = 14 + 60 + 60 + proxy::MAX_LEN;

/// A standalone header segment waiting to be sent after the packet that made it.
pub(super) struct Pending {
    bytes: [u8; PENDING_MAX],
    len: usize,
    to: Ipv4Addr,
}

impl Pending {
    /// A segment is waiting: the one check every packet pays (a read, no store).
    #[inline]
    pub(super) const fn is_waiting(&self) -> bool {
        self.len != 0
    }

    pub(super) const fn new() -> Self {
        Pending {
            bytes: [0; PENDING_MAX],
            len: 0,
            to: Ipv4Addr::UNSPECIFIED,
        }
    }
}

/// Whether connection `conn`'s segments are renumbered through its slot.
pub(super) fn renumbered(conn: &Conn) -> bool {
    conn.flags().contains(ConnFlags::SYNPROXY) || conn.flags().contains(ConnFlags::PROXY_HDR)
}

impl<B: PacketBuf> State<B> {
    /// The header of connection `conn` (client and virtual service), in `version`.
    fn proxy_header(conn: &Conn, version: u8) -> Header {
        let i = conn.in_key();
        Header::new(version, i.proto, i.src, i.sport, i.dst, i.dport)
    }

    /// A client segment of a connection with a PROXY header, before it is renumbered: set the
    /// connection up on its SYN, put the header in front where it belongs. Returns whether the
    /// segment keeps its sequence number (it carries the header at its start).
    pub(super) fn proxy_hdr_to_server(
        &mut self,
        tables: &Tables,
        svc: &Service,
        conn: &Conn,
        id: ConnId,
        p: &Parsed,
        buf: &mut B,
    ) -> Result<bool, DropReason> {
        let l4 = usize::from(p.l4);
        let seq = proxy::seq_of(buf.data(), l4).ok_or(DropReason::TcpMalformed)?;
        let Some(slot) = self.proxy.get_mut(id.0 as usize) else {
            return Ok(false);
        };
        if p.tcp_flags & 0x12 == 0x02 {
            // The SYN (the client's, or the one the SYN proxy sends for it): the mode is the
            // service's now, and stays the connection's.
            let mode = svc.config().client_addr.proxy;
            let Some(version) = mode.version() else {
                return Ok(true);
            };
            let hdr = Self::proxy_header(conn, version);
            slot.pp = proxy::TcpPp {
                base: seq.wrapping_add(1),
                hdr: hdr.len() as u16,
                version,
                insecure: mode.insecure(),
                ..proxy::TcpPp::default()
            };
            slot.sync_pp();
            return Ok(true);
        }
        let version = slot.pp.version;
        if version == 0 {
            return Ok(false);
        }
        let ip_len = buf
            .data()
            .get(L3 + 2..L3 + 4)
            .map_or(0, |t| usize::from(u16::from_be_bytes([t[0], t[1]])));
        let mtu = tables
            .routes
            .lookup(conn.out_key().src)
            .and_then(|nh| self.cfg.ports.get(usize::from(nh.port)))
            .map_or(1500, |port| usize::from(port.mtu));
        let room = mtu.saturating_sub(ip_len);
        let plan = proxy::plan_tcp(
            &mut slot.pp,
            p.tcp_flags,
            seq,
            proxy::tcp_payload(buf.data(), l4),
            room,
        );
        slot.sync_pp();
        let adj = slot.adj;
        match plan {
            TcpPlan::Keep => Ok(true),
            TcpPlan::Shift => Ok(false),
            TcpPlan::Insert { strip } => {
                let hdr = Self::proxy_header(conn, version);
                proxy::splice(buf, l4, strip, hdr.as_bytes())?;
                self.counters.proxy_headers += 1;
                Ok(true)
            }
            TcpPlan::Standalone { strip } => {
                let hdr = Self::proxy_header(conn, version);
                let o = conn.out_key();
                let pending = &mut self.pp_pending;
                let Some(len) =
                    proxy::standalone(buf.data(), l4, hdr.as_bytes(), &mut pending.bytes)
                else {
                    return Err(DropReason::TcpMalformed);
                };
                // The header segment goes the way of the connection: renumbered in place,
                // then translated as FULLNAT translates.
                let seg = &mut pending.bytes[l4..len];
                seqadj::apply_with(seg, &adj, Way::ToServer, true)?;
                xmit::fullnat::to_dest(
                    &mut pending.bytes[..len],
                    p,
                    o.dst,
                    o.dport,
                    o.src,
                    o.sport,
                )?;
                pending.len = len;
                pending.to = o.src;
                // This segment without the client's own header, after rvs's.
                if strip > 0 {
                    proxy::splice(buf, l4, strip, &[])?;
                    proxy::set_seq(buf.data_mut(), l4, seq.wrapping_add(strip as u32))?;
                }
                self.counters.proxy_headers += 1;
                self.counters.proxy_standalone += 1;
                Ok(false)
            }
        }
    }

    /// A server segment of a connection with a PROXY header, before it is renumbered: an
    /// acknowledgement past the header ends its sending.
    pub(super) fn proxy_hdr_from_server(&mut self, id: ConnId, p: &Parsed, buf: &B) {
        if p.tcp_flags & 0x10 == 0 {
            return;
        }
        let Some(ack) = buf
            .data()
            .get(usize::from(p.l4) + 8..usize::from(p.l4) + 12)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return;
        };
        if let Some(slot) = self.proxy.get_mut(id.0 as usize)
            && !slot.pp.acked
            && proxy::header_acked(&slot.pp, ack)
        {
            slot.pp.acked = true;
            slot.pp.decided = true;
        }
    }

    /// Send the standalone header segment the last packet left ([`Pending::is_waiting`]).
    pub(super) fn flush_proxy_pending<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: crate::time::Instant,
        io: &mut I,
    ) {
        let len = core::mem::take(&mut self.pp_pending.len);
        if len == 0 {
            return;
        }
        let Some(mut out) = io.alloc() else {
            self.drops.count(DropReason::NoBuffer);
            return;
        };
        if out.set_len(len).is_err() {
            self.drops.count(DropReason::NoBuffer);
            return;
        }
        out.data_mut()
            .copy_from_slice(&self.pp_pending.bytes[..len]);
        let to = self.pp_pending.to;
        self.forward(tables, now, Fwd::routed_to(to), out, io);
    }

    /// The renumbering of a connection's segment, `seq_fixed` as [`seqadj::apply_with`].
    #[inline]
    pub(super) fn seq_adjust(
        &self,
        id: ConnId,
        dir: Dir,
        p: &Parsed,
        buf: &mut B,
        seq_fixed: bool,
    ) {
        let Some(s) = self.proxy.get(id.0 as usize) else {
            return;
        };
        let way = match dir {
            Dir::Original => Way::ToServer,
            Dir::Reply => Way::ToClient,
        };
        if let Some(seg) = buf.data_mut().get_mut(usize::from(p.l4)..) {
            let _ = seqadj::apply_with(seg, &s.adj, way, seq_fixed);
        }
    }
}
