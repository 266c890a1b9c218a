//! IPv6 at layer 3: the director as an IPv6 host on its ports (docs/ipv6.md).
//!
//! A frame [`crate::parse`] classified as IPv6 is validated here: the fixed header
//! (`ipv6_malformed`, `ipv6_bad_length`) and the extension-header chain under the
//! [`ExtPolicy`] (`ipv6_ext_malformed`, `ipv6_ext_headers_too_many`, `ipv6_fragment`,
//! `ipv6_routing_header`). Then:
//! - Neighbour Solicitations and Advertisements go to [`crate::l3::nd`]: a solicitation for one
//!   of the port's IPv6 addresses is answered in place (a duplicate address detection probe for
//!   it is defended), what they say is learnt into the worker's IPv6 neighbour table, and
//!   packets waiting for a neighbour are sent when it resolves;
//! - an echo request to one of the port's IPv6 addresses is answered (within the same echo
//!   budget as ICMPv4) and the reply routed back like any packet the director sends: route,
//!   neighbour (resolved with a solicitation if unknown, the reply waiting in the bounded queue
//!   meanwhile), Ethernet header;
//! - anything else addressed to the director (one of its IPv6 addresses, a link-local address,
//!   a multicast group) is `ipv6_not_served` (the kernel twin's, when the port has one); other
//!   unicast IPv6 is `not_for_us`. rvs has no IPv6 services yet.
//!
//! The worker also announces each IPv6 address with an unsolicited advertisement when it first
//! sees it in its tables (worker 0 only: one announcement per address, not one per worker).

use std::net::Ipv6Addr;

use crate::conn::{ConnKey6, Dir};
use crate::drop::DropReason;
use crate::l3::addr::PortId;
use crate::l3::icmp6::{EchoDrop, Icmp6Error, build_error, echo_reply_in_place};
use crate::l3::nd::{self, NdDrop, NdVerdict};
use crate::l3::neigh::{QueueError, Resolve};
use crate::packet::PacketBuf;
use crate::parse::L3;
use crate::parse6::parse6;
use crate::service::ForwardMethod;
use crate::time::Instant;
use crate::wire::checksum::l4_checksum_v6;
use crate::wire::icmpv6::{self, Icmpv6Type, NdRepr};
use crate::wire::ipv6::{self, ExtDrop, ExtPolicy, next_header};
use crate::wire::{Error as WireError, IpProtocol, MacAddr};
use crate::xmit;

use super::tx::{Action, send_resolved, set_dst_mac};
use super::{Io, State, Tables};

/// The extension-header policy of the worker's IPv6 path (docs/ipv6.md).
pub(super) const POLICY: ExtPolicy = ExtPolicy { max_headers: 8 };

/// Most IPv6 addresses remembered as announced (beyond it, the extra ones are not announced).
const MAX_ANNOUNCED: usize = 256;

/// The drop reason of an extension-header policy verdict.
pub(super) fn ext_reason(e: ExtDrop) -> DropReason {
    match e {
        ExtDrop::Malformed(_) => DropReason::Ipv6ExtMalformed,
        ExtDrop::TooMany => DropReason::Ipv6ExtHeadersTooMany,
        ExtDrop::Fragment => DropReason::Ipv6Fragment,
        ExtDrop::RoutingHeader => DropReason::Ipv6RoutingHeader,
    }
}

fn nd_reason(d: NdDrop) -> DropReason {
    match d {
        NdDrop::Malformed => DropReason::NdMalformed,
        NdDrop::BadChecksum => DropReason::L4BadChecksum,
        NdDrop::NotForUs => DropReason::NdNotForUs,
        NdDrop::AddressConflict => DropReason::NdAddressConflict,
    }
}

fn echo_reason(e: EchoDrop) -> DropReason {
    match e {
        EchoDrop::EthTruncated => DropReason::EthTruncated,
        EchoDrop::Ipv6(WireError::BadLength) => DropReason::Ipv6BadLength,
        EchoDrop::Ipv6(_) => DropReason::Ipv6Malformed,
        EchoDrop::Ext(e) => ext_reason(e),
        EchoDrop::NotEchoRequest => DropReason::IcmpMalformed,
        EchoDrop::BadChecksum => DropReason::L4BadChecksum,
    }
}

/// A link-local unicast address (`fe80::/10`).
fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// The link-layer address a Neighbour Discovery frame teaches (the solicitation's source
/// option, the advertisement's target option, else the Ethernet source): where the packets it
/// releases from the neighbour queue go.
fn nd_lladdr(frame: &[u8]) -> MacAddr {
    let eth_src = frame
        .get(6..12)
        .and_then(MacAddr::from_bytes)
        .unwrap_or(MacAddr::ZERO);
    let given = frame
        .get(L3..)
        .and_then(|l3| ipv6::Packet::new_checked(l3).ok())
        .and_then(|ip| {
            let m = icmpv6::Packet::new_checked(ip.payload()).ok()?;
            match NdRepr::parse(&m).ok()? {
                NdRepr::Solicit { source_lladdr, .. } => source_lladdr,
                NdRepr::Advert { target_lladdr, .. } => target_lladdr,
            }
        });
    given.unwrap_or(eth_src)
}

/// Whether `frame` is a Neighbour Solicitation or Advertisement right behind the fixed IPv6
/// header (where ND messages are): the frames every worker learns from.
pub fn is_nd_frame(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&[0x86, 0xdd][..])
        && frame.get(L3 + 6) == Some(&next_header::ICMPV6.0)
        && matches!(frame.get(L3 + ipv6::HEADER_LEN).copied(), Some(135 | 136))
}

/// Whether `frame` is a Neighbour Advertisement: the kernel twin gets a copy (its own
/// resolutions need them, as ARP replies).
pub fn is_nd_advert(frame: &[u8]) -> bool {
    is_nd_frame(frame) && frame.get(L3 + ipv6::HEADER_LEN) == Some(&136)
}

impl<B: PacketBuf> State<B> {
    /// The IPv6 path (module doc).
    pub(super) fn handle_ipv6<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        mac: MacAddr,
        buf: &mut B,
        io: &mut I,
    ) -> Result<Action, DropReason> {
        // A TCP/UDP frame described in the burst's first stage goes straight to the
        // connection path (its headers and extension headers were checked by `parse6`).
        if let Some(pre) = self.pre6.take() {
            return self.handle_flow6_parsed(tables, now, port, pre.0, pre.1, buf);
        }
        let (ext, src, dst) = {
            let l3 = buf.data().get(L3..).unwrap_or_default();
            let ip = ipv6::Packet::new_checked(l3).map_err(|e| match e {
                WireError::BadLength => DropReason::Ipv6BadLength,
                _ => DropReason::Ipv6Malformed,
            })?;
            let ext = POLICY.classify(&ip).map_err(ext_reason)?;
            (ext, ip.src_addr(), ip.dst_addr())
        };
        if ext.protocol == next_header::ICMPV6 {
            let ty = buf.data().get(L3 + ext.l4_offset).copied().map(Icmpv6Type);
            match ty {
                Some(Icmpv6Type::NEIGHBOR_SOLICIT | Icmpv6Type::NEIGHBOR_ADVERT) => {
                    return self.handle_nd(tables, now, port, mac, buf, io);
                }
                Some(Icmpv6Type::ECHO_REQUEST) if tables.answers_for6(port, dst) => {
                    if src.is_unspecified()
                        || src.is_multicast()
                        || tables.addrs.owns6(src).is_some()
                    {
                        return Err(DropReason::MartianSource);
                    }
                    if !self.icmp_echo.allow(now) {
                        return Err(DropReason::IcmpRateLimited);
                    }
                    echo_reply_in_place(buf, &POLICY).map_err(echo_reason)?;
                    return Ok(Action::Forward6 {
                        via: None,
                        dec_hop: false,
                    });
                }
                Some(t) if xmit::icmp6::is_translated_error6(t) && !self.conns6.is_empty() => {
                    if let Some(action) = self.icmp6_about_conn(buf)? {
                        return Ok(action);
                    }
                }
                _ => {}
            }
        }
        if matches!(ext.protocol, IpProtocol::TCP | IpProtocol::UDP) {
            return self.handle_flow6(tables, now, port, dst, buf);
        }
        Err(not_served(tables, dst))
    }

    /// An ICMPv6 error quoting a packet of an IPv6 connection (NAT6, FULLNAT6) is translated
    /// for the other side as IPv4's are; DR6's is passed on to the real server. `None`: it
    /// quotes no connection of this worker.
    fn icmp6_about_conn(&mut self, buf: &mut B) -> Result<Option<Action>, DropReason> {
        let p = parse6(buf.data(), &POLICY)?;
        let Some(q) = xmit::icmp6::quoted_tuple6(buf.data(), &p) else {
            return Ok(None);
        };
        // The quoted packet is one the director sent; reversed, it is what its peer sends.
        let key = ConnKey6::new(q.proto, q.dst, q.dport, q.src, q.sport);
        let Some((id, dir)) = self.conns6.lookup(&key) else {
            return Ok(None);
        };
        let msg = buf
            .data()
            .get(usize::from(p.l4)..usize::from(p.end))
            .unwrap_or_default();
        if l4_checksum_v6(p.key.src, p.key.dst, next_header::ICMPV6.0, msg) != 0 {
            return Err(DropReason::L4BadChecksum);
        }
        if p.hop_limit <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        let conn = *self.conns6.get(id).ok_or(DropReason::NotForUs)?;
        if conn.method() == ForwardMethod::Route && dir == Dir::Original {
            // The real server holds the VIP too: pass the error on as DR passes requests.
            return Ok(Some(Action::Forward6 {
                via: Some(conn.out_key().src),
                dec_hop: false,
            }));
        }
        let t = xmit::icmp6::translation6(&conn, dir)?;
        xmit::icmp6::translate6(buf, &p, &t)?;
        Ok(Some(Action::Forward6 {
            via: None,
            dec_hop: true,
        }))
    }

    fn handle_nd<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        mac: MacAddr,
        buf: &mut B,
        io: &mut I,
    ) -> Result<Action, DropReason> {
        let learnt = nd_lladdr(buf.data());
        let counters = &mut self.counters;
        let verdict = nd::handle_nd(
            now,
            port,
            mac,
            buf,
            |ip| tables.answers_for6(port, ip),
            &mut self.neigh6,
            |b: B| send_resolved(counters, io, port, mac, set_dst_mac(b, learnt)),
        );
        self.send_solicits6(tables, io);
        match verdict {
            NdVerdict::Reply => Ok(Action::Transmit(port)),
            NdVerdict::Consumed => Ok(Action::Consumed),
            NdVerdict::Drop(d) => Err(nd_reason(d)),
        }
    }

    /// Learn from a copy of an ND frame another worker handled (see
    /// [`super::Worker::learn_arp`]).
    pub(super) fn learn_nd<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        port: PortId,
        buf: B,
        io: &mut I,
    ) {
        let mac = self.port_mac(port);
        let learnt = nd_lladdr(buf.data());
        let counters = &mut self.counters;
        nd::learn_only(
            now,
            port,
            mac,
            &buf,
            |ip| tables.answers_for6(port, ip),
            &mut self.neigh6,
            |b: B| send_resolved(counters, io, port, mac, set_dst_mac(b, learnt)),
        );
        self.send_solicits6(tables, io);
    }

    /// Route an IPv6 packet: next hop by the IPv6 routes towards `via` (DR6: the real server)
    /// or the packet's destination, the hop limit decremented when `dec_hop` (packets of
    /// connections; the director's own replies keep theirs), the neighbour from the IPv6 table
    /// (queued while it is resolved), the Ethernet header.
    pub(super) fn forward6<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        via: Option<Ipv6Addr>,
        dec_hop: bool,
        mut buf: B,
        io: &mut I,
    ) {
        let dst = buf
            .data()
            .get(L3 + 24..L3 + 40)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(Ipv6Addr::from);
        let Some(dst) = via.or(dst) else {
            return self.drops.count(DropReason::Ipv6Malformed);
        };
        if dec_hop {
            match buf.data_mut().get_mut(L3 + 7) {
                Some(h) if *h > 1 => *h -= 1,
                Some(_) => return self.drops.count(DropReason::TtlExceeded),
                None => return self.drops.count(DropReason::Ipv6Malformed),
            }
        }
        let Some(nh) = tables.v6.routes.lookup(dst) else {
            return self.drops.count(DropReason::NoRoute);
        };
        let Some(setup) = self.cfg.ports.get(usize::from(nh.port)).copied() else {
            return self.drops.count(DropReason::NoRoute);
        };
        if buf.len().saturating_sub(L3) > usize::from(setup.mtu) {
            return self.drops.count(DropReason::TooBig);
        }
        let (port, mac) = (nh.port, setup.mac);
        match self.neigh6.resolve(now, port, nh.gateway_or_dst) {
            Resolve::Known(dst_mac) => {
                send_resolved(&mut self.counters, io, port, mac, set_dst_mac(buf, dst_mac))
            }
            Resolve::Pending => {
                let bytes = buf.len();
                match self.neigh6.queue(now, port, nh.gateway_or_dst, buf, bytes) {
                    Ok(()) => {}
                    Err((b, QueueError::Resolved(dst_mac))) => {
                        send_resolved(&mut self.counters, io, port, mac, set_dst_mac(b, dst_mac))
                    }
                    Err((_b, e)) => self
                        .drops
                        .count(e.drop_reason().unwrap_or(DropReason::NeighQueueFull)),
                }
            }
        }
        self.send_solicits6(tables, io);
    }

    /// Send the ICMPv6 error `kind` about the IPv6 packet in `buf` (dropped for `reason`) to
    /// its source, from the address it was sent to (a VIP), within the ICMP error budget.
    pub(super) fn icmp6_error<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        kind: Icmp6Error,
        reason: DropReason,
        buf: &B,
        io: &mut I,
    ) {
        self.drops.count(reason);
        let Some(offending) = buf.data().get(L3..) else {
            return;
        };
        let Ok(ip) = ipv6::Packet::new_checked_quoted(offending) else {
            return;
        };
        let src = ip.dst_addr();
        let link_multicast = buf.data().first().is_some_and(|b| b & 1 != 0);
        if !self.icmp_errors.allow(now) {
            self.counters.icmp_errors_limited += 1;
            return;
        }
        let Some(mut out) = io.alloc() else {
            self.drops.count(DropReason::NoBuffer);
            return;
        };
        if build_error(&mut out, offending, link_multicast, kind, src).is_ok() {
            self.forward6(tables, now, None, false, out, io);
        }
    }

    /// Send the Neighbour Solicitations the IPv6 neighbour table asked for, from the port's
    /// IPv6 address on the target's network (else its first one).
    pub(super) fn send_solicits6<I: Io<B>>(&mut self, tables: &Tables, io: &mut I) {
        if !self.neigh6.has_solicits() {
            return;
        }
        let State {
            neigh6,
            cfg,
            drops,
            counters,
            ..
        } = self;
        neigh6.drain_solicits(|s| {
            let Some(mac) = cfg.ports.get(usize::from(s.port)).map(|p| p.mac) else {
                return;
            };
            let Some(src) = tables.addrs.source_for6(s.port, s.ip) else {
                drops.count(DropReason::NoRoute);
                return;
            };
            let Some(mut b) = io.alloc() else {
                drops.count(DropReason::NoBuffer);
                return;
            };
            if nd::build_solicit_for(&mut b, mac, src, &s).is_err() {
                drops.count(DropReason::NoBuffer);
                return;
            }
            counters.tx_packets += 1;
            counters.tx_bytes += b.len() as u64;
            if s.unicast.is_some() {
                counters.neigh_probes += 1;
            } else {
                counters.neigh_requests += 1;
            }
            io.transmit(s.port, b);
        });
    }

    /// Worker 0 announces each IPv6 address of the tables it has not announced yet with an
    /// unsolicited advertisement (module doc); addresses gone from the tables are forgotten, so
    /// one added again is announced again.
    pub(super) fn announce6<I: Io<B>>(&mut self, tables: &Tables, io: &mut I) {
        if self.cfg.id != 0 {
            return;
        }
        self.announced6
            .retain(|(p, ip)| tables.addrs.owns_on6(*p, *ip));
        for a in tables.addrs.iter6() {
            if self.announced6.len() >= MAX_ANNOUNCED || self.announced6.contains(&(a.port, a.ip)) {
                continue;
            }
            let Some(mac) = self.cfg.ports.get(usize::from(a.port)).map(|p| p.mac) else {
                continue;
            };
            let Some(mut b) = io.alloc() else {
                self.drops.count(DropReason::NoBuffer);
                return;
            };
            if nd::build_unsolicited_na(&mut b, mac, a.ip).is_err() {
                self.drops.count(DropReason::NoBuffer);
                return;
            }
            self.announced6.push((a.port, a.ip));
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += b.len() as u64;
            io.transmit(a.port, b);
        }
    }
}

/// Why an IPv6 packet no path took is dropped: addressed to the director (one of its addresses,
/// a link-local address, a multicast group: the kernel twin's if the port has one), or not.
pub(super) fn not_served(tables: &Tables, dst: Ipv6Addr) -> DropReason {
    if tables.addrs.owns6(dst).is_some()
        || tables.services.is_vip6(dst)
        || tables.laddrs.contains6(dst)
        || is_link_local(dst)
        || dst.is_multicast()
    {
        DropReason::Ipv6NotServed
    } else {
        DropReason::NotForUs
    }
}
