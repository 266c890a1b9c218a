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

use crate::drop::DropReason;
use crate::l3::addr::PortId;
use crate::l3::icmp6::{EchoDrop, echo_reply_in_place};
use crate::l3::nd::{self, NdDrop, NdVerdict};
use crate::l3::neigh::{QueueError, Resolve};
use crate::packet::PacketBuf;
use crate::parse::L3;
use crate::time::Instant;
use crate::wire::icmpv6::{self, Icmpv6Type, NdRepr};
use crate::wire::ipv6::{self, ExtDrop, ExtPolicy, next_header};
use crate::wire::{Error as WireError, MacAddr};

use super::tx::{Action, send_resolved, set_dst_mac};
use super::{Io, State, Tables};

/// The extension-header policy of the worker's IPv6 path (docs/ipv6.md).
const POLICY: ExtPolicy = ExtPolicy { max_headers: 8 };

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
                    return Ok(Action::Forward6);
                }
                _ => {}
            }
        }
        Err(not_served(tables, dst))
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

    /// Route an IPv6 packet the director sends (an echo reply): next hop by the IPv6 routes,
    /// the neighbour from the IPv6 table (queued while it is resolved), the Ethernet header.
    pub(super) fn forward6<I: Io<B>>(&mut self, tables: &Tables, now: Instant, buf: B, io: &mut I) {
        let dst = buf
            .data()
            .get(L3 + 24..L3 + 40)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(Ipv6Addr::from);
        let Some(dst) = dst else {
            return self.drops.count(DropReason::Ipv6Malformed);
        };
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
fn not_served(tables: &Tables, dst: Ipv6Addr) -> DropReason {
    if tables.addrs.owns6(dst).is_some() || is_link_local(dst) || dst.is_multicast() {
        DropReason::Ipv6NotServed
    } else {
        DropReason::NotForUs
    }
}
