//! The SYN proxy in the worker (`ipvsadm -A ... -j enable`, NAT and FULLNAT TCP services): a
//! client's SYN is answered with a cookie and no state; the connection is made only when the
//! client's ACK proves the cookie, and only then is the real server asked (a SYN built from
//! what the cookie and the ACK carry). Until the server answers, the client was told a zero
//! window (as Linux's SYNPROXY target does), so all it sends is its ACK and, later, window
//! probes. The server's SYN-ACK is answered by the director on the client's behalf (the ACK
//! the client sent, renumbered) and the client gets a window update; from then on every
//! segment is renumbered ([`crate::synproxy::seqadj`]).
//!
//! A spoofed SYN flood therefore costs one SYN-ACK per SYN and no table entry; the table
//! holds only clients that completed a handshake.
//!
//! Failure handling: the SYN to the server is sent again when a client probe arrives a second
//! or more after the last one; after [`OPENING_LIMIT`] without an answer the client is reset
//! and the connection removed. A RST from the server is passed to the client, renumbered into
//! the sequence space the client knows.

use core::time::Duration;

use crate::conn::{ConnFlags, ConnId, ConnState, Dir, TcpState};
use crate::drop::DropReason;
use crate::l3::addr::PortId;
use crate::packet::PacketBuf;
use crate::parse::Parsed;
use crate::service::{ForwardMethod, Service};
use crate::synproxy::cookie::{self, Flow, TsOptions};
use crate::synproxy::segment::{self, Bare};
use crate::synproxy::seqadj::{SeqAdj, shifts};
use crate::time::Instant;
use crate::xmit::{Fwd, toa};

use super::tx::Action;
use super::{Io, State, Tables};

/// How long the real server has to answer the proxied SYN before the client is reset.
pub const OPENING_LIMIT: Duration = Duration::from_secs(3);
/// Minimum time between two SYNs to the real server for one connection.
const SYN_RETRY: Duration = Duration::from_secs(1);
/// TTL of the segments the proxy writes.
const TTL: u8 = 64;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// What a proxied connection needs beyond its [`crate::conn::Conn`]: what was agreed with the
/// client (kept until the server answers) and the translation (after). One per connection
/// slot, allocated when the first SYN-proxy service appears.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ProxySlot {
    pub adj: SeqAdj,
    /// The PROXY header's progress (`worker::proxyhdr`); its shift is mirrored in `adj`.
    pub pp: crate::xmit::proxy::TcpPp,
    our_isn: u32,
    client_isn: u32,
    our_tsval: u32,
    client_tsval: u32,
    mss: u16,
    client_win: u16,
    /// Microseconds (wrapping) when the connection was opened and when its last SYN went out.
    opened_us: u32,
    syn_us: u32,
    /// The client's window-scale shift, if scaling was agreed with it.
    client_ws: Option<u8>,
    sack: bool,
    ts: bool,
}

impl ProxySlot {
    /// Mirror the PROXY header's shift into the renumbering.
    pub fn sync_pp(&mut self) {
        self.adj.cli_delta = self.pp.delta();
        self.adj.cli_base = self.pp.base;
        self.adj.cli_hdr = self.pp.hdr;
    }
}

fn micros(now: Instant) -> u32 {
    now.as_micros() as u32
}

fn since(now: Instant, then_us: u32) -> Duration {
    Duration::from_micros(u64::from(micros(now).wrapping_sub(then_us)))
}

impl<B: PacketBuf> State<B> {
    /// Make sure every connection slot has its proxy slot (called when tables with a SYN-proxy
    /// or PROXY-protocol service arrive; a control-path allocation, once).
    pub(super) fn prepare_synproxy(&mut self, tables: &Tables) {
        if self.proxy.is_empty()
            && tables.services.services().iter().any(|s| {
                let c = s.config();
                c.synproxy || c.client_addr.proxy != crate::service::ProxyProtocol::Disable
            })
        {
            self.proxy = vec![ProxySlot::default(); self.conns.capacity()];
        }
    }

    /// A TCP segment to SYN-proxy service `svc` that matched no connection: a SYN is answered
    /// with a cookie, an ACK that proves one opens the connection; anything else is dropped.
    pub(super) fn synproxy_no_conn(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        svc: &Service,
        p: &Parsed,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let seg = segment::read(buf.data(), usize::from(p.l4))?;
        let key = p.key;
        let flow = Flow {
            saddr: key.src,
            daddr: key.dst,
            sport: key.sport,
            dport: key.dport,
        };
        let conf = &tables.synproxy;
        match p.tcp_flags & 0x17 {
            SYN => {
                self.screen(tables, svc, key.src.into(), port)?;
                // Our MSS: what the client's port carries, less the TOA option when the service
                // forwards with FULLNAT (the server's own MSS is not known yet).
                let mtu = self
                    .cfg
                    .ports
                    .get(usize::from(port))
                    .map_or(1500, |s| s.mtu);
                let fullnat = svc
                    .dests()
                    .iter()
                    .any(|d| d.method() == ForwardMethod::FullNat);
                let ours = mtu.saturating_sub(40).saturating_sub(if fullnat {
                    toa::LEN as u16
                } else {
                    0
                });
                let idx = cookie::mss_index(seg.mss.unwrap_or(536));
                let count = cookie::count_at(now.as_secs());
                let isn = cookie::make(&conf.secrets, &flow, seg.seq, count, idx);
                // Without timestamps there is nowhere to keep window scale and SACK: neither
                // is offered (as Linux does for cookies).
                let ts = seg.ts.map(|(value, _)| {
                    let o = TsOptions {
                        wscale: seg.wscale,
                        sack: seg.sack_perm,
                    };
                    (cookie::ts_encode(ts_clock(now), o), value)
                });
                let b = Bare {
                    src: key.dst,
                    dst: key.src,
                    sport: key.dport,
                    dport: key.sport,
                    seq: isn,
                    ack: seg.seq.wrapping_add(1),
                    flags: SYN | ACK,
                    window: 0,
                    mss: Some(ours),
                    wscale: ts.and(seg.wscale).map(|_| conf.wscale),
                    sack_perm: ts.is_some() && seg.sack_perm,
                    ts,
                    ttl: TTL,
                    ident: self.next_ident(),
                };
                segment::write(buf, &b)?;
                self.counters.synproxy_cookies += 1;
                Ok(Action::Forward(Fwd::ORIGINATED))
            }
            ACK => self.synproxy_open(tables, now, port, svc, p, &seg, &flow, buf),
            _ => Err(DropReason::TcpNoConnection),
        }
    }

    /// The client's ACK: prove the cookie, open the connection, ask the real server.
    #[allow(clippy::too_many_arguments)]
    fn synproxy_open(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        svc: &Service,
        p: &Parsed,
        seg: &segment::Seg,
        flow: &Flow,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let conf = &tables.synproxy;
        let our_isn = seg.ack.wrapping_sub(1);
        let count = cookie::count_at(now.as_secs());
        let check =
            |isn: u32| cookie::check(&conf.secrets, flow, our_isn, isn, count).map(|m| (isn, m));
        // The ACK itself carries the ISN + 1. A client whose ACK was lost (or refused: a full
        // table) sends window probes instead, numbered one lower (its oldest unacknowledged
        // sequence minus one, Linux's tcp_xmit_probe_skb): they open the connection too.
        let (client_isn, mss) = check(seg.seq.wrapping_sub(1))
            .or_else(|| (seg.payload == 0).then(|| check(seg.seq)).flatten())
            .ok_or(DropReason::SynproxyBadCookie)?;
        let (opts, ts) = match seg.ts {
            Some((value, echo)) => (cookie::ts_decode(echo), Some((value, echo))),
            None => (
                TsOptions {
                    wscale: None,
                    sack: false,
                },
                None,
            ),
        };
        if self.proxy.is_empty() {
            // Tables with the service but no slots cannot happen (set_tables prepares them);
            // refuse rather than index out of bounds.
            return Err(DropReason::ConnTableFull);
        }
        self.admit(tables, now, svc, p.key.src.into(), port)?;
        let id = self.open_conn(tables, now, svc, p.key)?;
        if let Some(c) = self.conns.get_mut(id) {
            c.set_flag(ConnFlags::SYNPROXY, true);
        }
        let slot = ProxySlot {
            adj: SeqAdj::default(),
            pp: Default::default(),
            our_isn,
            client_isn,
            our_tsval: ts.map_or(0, |t| t.1),
            client_tsval: ts.map_or(0, |t| t.0),
            mss,
            client_win: seg.window,
            opened_us: micros(now),
            syn_us: micros(now),
            client_ws: opts.wscale,
            sack: opts.sack,
            ts: ts.is_some(),
        };
        if let Some(s) = self.proxy.get_mut(id.0 as usize) {
            *s = slot;
        }
        self.counters.synproxy_opens += 1;
        self.synproxy_send_syn(tables, now, id, buf)
    }

    /// Write the SYN to the real server (as the client would have sent it) into `buf` and take
    /// it through the connection's method; the connection stays in SYN_SENT.
    fn synproxy_send_syn(
        &mut self,
        tables: &Tables,
        now: Instant,
        id: ConnId,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let conn = *self.conns.get(id).ok_or(DropReason::NotForUs)?;
        let s = *self.proxy.get(id.0 as usize).ok_or(DropReason::NotForUs)?;
        let i = conn.in_key();
        let window = match s.client_ws {
            Some(w) => u16::try_from(u32::from(s.client_win) << w).unwrap_or(u16::MAX),
            None => s.client_win,
        };
        let b = Bare {
            src: i.src,
            dst: i.dst,
            sport: i.sport,
            dport: i.dport,
            seq: s.client_isn,
            ack: 0,
            flags: SYN,
            window,
            mss: Some(s.mss),
            wscale: s.client_ws,
            sack_perm: s.sack,
            ts: s.ts.then_some((s.client_tsval, 0)),
            ttl: TTL,
            ident: self.next_ident(),
        };
        segment::write(buf, &b)?;
        let r = self.built(tables, now, id, Dir::Original, buf);
        // Sending ran the state machine on our own SYN; the connection waits in SYN_SENT.
        self.set_conn_state(tables, id, TcpState::SynSent);
        self.conns.set_deadline(id, now + OPENING_LIMIT + SYN_RETRY);
        if let Some(slot) = self.proxy.get_mut(id.0 as usize) {
            slot.syn_us = micros(now);
        }
        r
    }

    /// Take a segment the proxy wrote in `buf` through connection `id`'s method as if it had
    /// arrived in direction `dir`: what to do with it next.
    fn built(
        &mut self,
        tables: &Tables,
        now: Instant,
        id: ConnId,
        dir: Dir,
        buf: &mut B,
    ) -> Result<Action, DropReason> {
        let mac = self.port_mac(0);
        if let Some(h) = buf.data_mut().get_mut(0..6) {
            h.copy_from_slice(&mac.0);
        }
        let p = crate::parse::parse(buf.data(), mac, crate::parse::RxChecksum::default());
        self.forward_conn(tables, now, id, dir, &p, buf)
    }

    /// Set a connection's TCP state outside the state machine, with the dest's counts.
    fn set_conn_state(&mut self, tables: &Tables, id: ConnId, s: TcpState) {
        let Some(c) = self.conns.get_mut(id) else {
            return;
        };
        let dest = c.dest();
        let t = c.set_state(ConnState::Tcp(s));
        if (t.active_delta != 0 || t.inactive_delta != 0)
            && let Some(d) = tables.services.dest(dest)
        {
            d.move_conn(self.cfg.id, t.active_delta, t.inactive_delta);
        }
    }

    /// A segment of a proxied connection still waiting for the real server (SYN_SENT). Returns
    /// `Ok(None)` when the segment goes on through the method as usual ([`State::forward_conn`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_opening<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        id: ConnId,
        dir: Dir,
        p: &Parsed,
        buf: &mut B,
        io: &mut I,
    ) -> Result<Option<Action>, DropReason> {
        let Some(s) = self.proxy.get(id.0 as usize).copied() else {
            return Ok(None);
        };
        let seg = segment::read(buf.data(), usize::from(p.l4))?;
        let f = seg.flags;
        match dir {
            // Our own SYN, and a client's RST (the server may drop its half-open state).
            Dir::Original if f & (SYN | RST) != 0 => Ok(None),
            Dir::Original => {
                if since(now, s.opened_us) >= OPENING_LIMIT {
                    self.synproxy_reset_client(tables, now, id, io);
                    return Err(DropReason::SynproxyServerTimeout);
                }
                if since(now, s.syn_us) >= SYN_RETRY {
                    return self.synproxy_send_syn(tables, now, id, buf).map(Some);
                }
                Err(DropReason::SynproxyOpening)
            }
            Dir::Reply if f & RST != 0 => {
                // Into the client's numbering: its next expected sequence is our ISN + 1.
                if let Some(slot) = self.proxy.get_mut(id.0 as usize) {
                    slot.adj.srv_delta = seg.seq.wrapping_sub(s.our_isn.wrapping_add(1));
                }
                self.set_conn_state(tables, id, TcpState::Close);
                Ok(None)
            }
            Dir::Reply
                if f & (SYN | ACK) == SYN | ACK && seg.ack == s.client_isn.wrapping_add(1) =>
            {
                self.synproxy_established(tables, now, id, &s, &seg, buf, io)
                    .map(Some)
            }
            Dir::Reply => Err(DropReason::SynproxyUnexpected),
        }
    }

    /// The server's SYN-ACK: fix the translation, answer the server with the client's ACK
    /// (written into `buf`: the returned action sends it) and give the client its window.
    #[allow(clippy::too_many_arguments)]
    fn synproxy_established<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        id: ConnId,
        s: &ProxySlot,
        seg: &segment::Seg,
        buf: &mut B,
        io: &mut I,
    ) -> Result<Action, DropReason> {
        let conn = *self.conns.get(id).ok_or(DropReason::NotForUs)?;
        let server_ts = seg.ts.filter(|_| s.ts);
        let server_ws = seg.wscale.filter(|_| s.client_ws.is_some());
        let ours = tables.synproxy.wscale;
        // A PROXY header's part (set when the connection opened) stays.
        let adj = SeqAdj {
            srv_delta: seg.seq.wrapping_sub(s.our_isn),
            cli_delta: s.adj.cli_delta,
            cli_base: s.adj.cli_base,
            cli_hdr: s.adj.cli_hdr,
            ts_delta: server_ts.map_or(0, |(v, _)| v.wrapping_sub(s.our_tsval)),
            win_c2s: match s.client_ws {
                Some(cw) => shifts(cw, server_ws.map_or(0, |_| cw)),
                None => 0,
            },
            win_s2c: match s.client_ws {
                Some(_) => shifts(server_ws.unwrap_or(0), ours),
                None => 0,
            },
            ts: server_ts.is_some(),
        };
        if let Some(slot) = self.proxy.get_mut(id.0 as usize) {
            slot.adj = adj;
        }
        self.set_conn_state(tables, id, TcpState::Established);
        self.counters.synproxy_established += 1;
        let i = *conn.in_key();
        let o = *conn.out_key();
        // The client's ACK, as it sent it (the translation renumbers it for the server).
        let to_server = Bare {
            src: i.src,
            dst: i.dst,
            sport: i.sport,
            dport: i.dport,
            seq: s.client_isn.wrapping_add(1),
            ack: s.our_isn.wrapping_add(1),
            flags: ACK,
            window: s.client_win,
            mss: None,
            wscale: None,
            sack_perm: false,
            ts: server_ts.map(|_| (s.client_tsval, s.our_tsval)),
            ttl: TTL,
            ident: self.next_ident(),
        };
        // The window update, as the server would send it.
        let to_client = Bare {
            src: o.src,
            dst: o.dst,
            sport: o.sport,
            dport: o.dport,
            seq: seg.seq.wrapping_add(1),
            ack: s.client_isn.wrapping_add(1),
            flags: ACK,
            window: seg.window >> server_ws.unwrap_or(0),
            mss: None,
            wscale: None,
            sack_perm: false,
            ts: server_ts.map(|(v, _)| (v, s.client_tsval)),
            ttl: TTL,
            ident: self.next_ident(),
        };
        match io.alloc() {
            Some(mut b) => match segment::write(&mut b, &to_client)
                .and_then(|()| self.built(tables, now, id, Dir::Reply, &mut b))
            {
                Ok(Action::Forward(how)) => self.forward(tables, now, how, b, io),
                Ok(_) => self.drops.count(DropReason::MethodUnsupported),
                Err(r) => self.drops.count(r),
            },
            // The client's next window probe reaches the server, which answers it itself.
            None => self.drops.count(DropReason::NoBuffer),
        }
        segment::write(buf, &to_server)?;
        self.built(tables, now, id, Dir::Original, buf)
    }

    /// Reset the client of a connection the server never answered, and forget it.
    fn synproxy_reset_client<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        id: ConnId,
        io: &mut I,
    ) {
        let Some(conn) = self.conns.get(id).copied() else {
            return;
        };
        let Some(s) = self.proxy.get(id.0 as usize).copied() else {
            return;
        };
        let i = conn.in_key();
        let b = Bare {
            src: i.dst,
            dst: i.src,
            sport: i.dport,
            dport: i.sport,
            seq: s.our_isn.wrapping_add(1),
            ack: 0,
            flags: RST,
            window: 0,
            mss: None,
            wscale: None,
            sack_perm: false,
            ts: None,
            ttl: TTL,
            ident: self.next_ident(),
        };
        self.remove_conn(tables, id, true);
        if let Some(mut out) = io.alloc() {
            if segment::write(&mut out, &b).is_ok() {
                self.forward(tables, now, Fwd::ORIGINATED, out, io);
            }
        } else {
            self.drops.count(DropReason::NoBuffer);
        }
    }

    /// A proxied connection's renumbering (for the state file).
    pub(super) fn proxy_adj(&self, id: ConnId) -> Option<SeqAdj> {
        self.proxy.get(id.0 as usize).map(|s| s.adj)
    }

    /// A connection's PROXY header progress (for the state file).
    pub(super) fn proxy_pp(&self, id: ConnId) -> Option<crate::xmit::proxy::TcpPp> {
        self.proxy.get(id.0 as usize).map(|s| s.pp)
    }

    /// Give a restored connection its renumbering and PROXY header progress (the slots appear
    /// if the tables had no SYN-proxy or PROXY-protocol service).
    pub(super) fn set_proxy_adj(&mut self, id: ConnId, adj: SeqAdj, pp: crate::xmit::proxy::TcpPp) {
        if self.proxy.is_empty() {
            self.proxy = vec![ProxySlot::default(); self.conns.capacity()];
        }
        if let Some(s) = self.proxy.get_mut(id.0 as usize) {
            s.adj = adj;
            s.pp = pp;
        }
    }
}

/// The timestamp clock of the proxy: milliseconds, wrapping.
fn ts_clock(now: Instant) -> u32 {
    (now.as_micros() / 1000) as u32
}
