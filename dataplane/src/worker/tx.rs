//! Transmit: routing (longest prefix), TTL, the egress MTU, neighbour resolution (with the
//! bounded wait queue and the ARP requests it asks for), the Ethernet header, and the ICMP
//! errors the worker originates.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::drop::DropReason;
use crate::l3::addr::PortId;
use crate::l3::arp::build_request_to;
use crate::l3::icmp::{IcmpError, build_error};
use crate::l3::icmp6::Icmp6Error;
use crate::l3::neigh::{QueueError, Resolve};
use crate::packet::PacketBuf;
use crate::parse::L3;
use crate::time::Instant;
use crate::wire::checksum::update_u16;
use crate::wire::{MacAddr, ipv4};
use crate::xmit::{Fwd, Fwd6};

use super::nexthop::NextHop;
use super::stats::Counters;
use super::{Io, State, Tables};

/// What to do with a packet that survived `handle`.
pub(super) enum Action {
    /// Send on this port as is (Ethernet header already right: ARP and echo replies).
    Transmit(PortId),
    /// Route, resolve the next hop, fill the Ethernet header.
    Forward(Fwd),
    /// The same for an IPv6 packet: towards `via` (else its destination), the hop limit
    /// decremented when `dec_hop` (packets of IPv6 connections; the director's own replies
    /// keep theirs).
    Forward6 {
        via: Option<Ipv6Addr>,
        dec_hop: bool,
    },
    /// Drop the packet for `reason` and answer its source with this ICMP error.
    IcmpError(IcmpError, DropReason),
    /// The same with an ICMPv6 error (an IPv6 packet too big for TUN6's encapsulation).
    Icmp6Error(Icmp6Error, DropReason),
    /// Kept or used up by the worker (an ARP reply that resolved a neighbour).
    Consumed,
}

impl Action {
    /// The action for a packet of an IPv6 connection its method routes as `how`.
    pub(super) fn from_fwd6(how: Fwd6) -> Action {
        match how {
            Fwd6::V6 { via, dec_hop } => Action::Forward6 { via, dec_hop },
            Fwd6::V4(f) => Action::Forward(f),
        }
    }
}

impl<B: PacketBuf> State<B> {
    pub(super) fn transmit<I: Io<B>>(&mut self, port: PortId, buf: B, io: &mut I) {
        self.counters.tx_packets += 1;
        self.counters.tx_bytes += buf.len() as u64;
        io.transmit(port, buf);
    }

    /// Route an IPv4 packet: TTL, next hop, neighbour, Ethernet header. A destination seen
    /// before in this epoch takes its next hop from the cache ([`super::nexthop`]).
    pub(super) fn forward<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        how: Fwd,
        mut buf: B,
        io: &mut I,
    ) {
        let (dst, total_len) = match ttl_and_destination(how, &mut buf) {
            Ok(x) => x,
            Err(reason) => return self.drops.count(reason),
        };
        if let Some(h) = self.next_hops.get(dst) {
            if total_len > h.mtu {
                return self.drops.count(DropReason::TooBig);
            }
            return send_resolved(
                &mut self.counters,
                io,
                h.port,
                h.src_mac,
                set_dst_mac(buf, h.mac),
            );
        }
        let Some(nh) = tables.routes.lookup(dst) else {
            return self.drops.count(DropReason::NoRoute);
        };
        let Some(setup) = self.cfg.ports.get(usize::from(nh.port)).copied() else {
            return self.drops.count(DropReason::NoRoute);
        };
        if total_len > setup.mtu {
            return self.drops.count(DropReason::TooBig);
        }
        let (port, mac) = (nh.port, setup.mac);
        match self.neigh.resolve(now, port, nh.gateway_or_dst) {
            Resolve::Known(dst_mac) => {
                if !self.neigh.has_solicits() {
                    let hop = NextHop {
                        port,
                        mtu: setup.mtu,
                        mac: dst_mac,
                        src_mac: mac,
                    };
                    self.next_hops.insert(dst, hop);
                }
                send_resolved(&mut self.counters, io, port, mac, set_dst_mac(buf, dst_mac))
            }
            Resolve::Pending => {
                self.next_hops.invalidate();
                let bytes = buf.len();
                match self.neigh.queue(now, port, nh.gateway_or_dst, buf, bytes) {
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
        self.send_solicits(tables, io);
    }

    /// Send the ARP requests the neighbour table asked for.
    pub(super) fn send_solicits<I: Io<B>>(&mut self, tables: &Tables, io: &mut I) {
        if !self.neigh.has_solicits() {
            return;
        }
        let State {
            neigh,
            cfg,
            drops,
            counters,
            ..
        } = self;
        neigh.drain_solicits(|s| {
            let Some(mac) = cfg.ports.get(usize::from(s.port)).map(|p| p.mac) else {
                return;
            };
            let Some(src) = tables.addrs.source_for(s.port, s.ip) else {
                drops.count(DropReason::NoRoute);
                return;
            };
            let Some(mut b) = io.alloc() else {
                drops.count(DropReason::NoBuffer);
                return;
            };
            if build_request_to(&mut b, mac, src, s.ip, s.unicast).is_err() {
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

    /// Send the ICMP error `kind` about the packet in `buf` (dropped for `reason`) to its source,
    /// from the address it was sent to (a VIP: what the client expects to hear from).
    pub(super) fn icmp_error<I: Io<B>>(
        &mut self,
        tables: &Tables,
        now: Instant,
        kind: IcmpError,
        reason: DropReason,
        buf: &B,
        io: &mut I,
    ) {
        let Some(offending) = buf.data().get(L3..) else {
            self.drops.count(DropReason::EthTruncated);
            return;
        };
        let Ok(ip) = ipv4::Packet::new_checked_quoted(offending) else {
            self.drops.count(DropReason::Ipv4Malformed);
            return;
        };
        let src = ip.dst_addr();
        if !self.icmp_errors.allow(now) {
            // The offending packet is dropped for its reason; only the error is not sent.
            self.counters.icmp_errors_limited += 1;
            self.drops.count(reason);
            return;
        }
        let Some(mut out) = io.alloc() else {
            self.drops.count(DropReason::NoBuffer);
            return;
        };
        let ident = self.next_ident();
        self.drops.count(reason);
        if build_error(&mut out, offending, kind, src, ident).is_ok() {
            self.forward(tables, now, Fwd::ORIGINATED, out, io);
        }
    }
}

/// Decrement the TTL when `how` asks for it (with its checksum update) and read where the packet
/// is routed and its IPv4 total length. The header was checked (or built) by the worker: it is
/// read and written at fixed offsets, not validated again.
#[inline]
fn ttl_and_destination<B: PacketBuf>(how: Fwd, buf: &mut B) -> Result<(Ipv4Addr, u16), DropReason> {
    let ip: &mut [u8; ipv4::HEADER_LEN] = buf
        .data_mut()
        .get_mut(L3..L3 + ipv4::HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(DropReason::Ipv4Malformed)?;
    if how.dec_ttl {
        let ttl = ip[8];
        if ttl <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        // TTL and protocol share a 16-bit word of the header checksum.
        let old = u16::from_be_bytes([ttl, ip[9]]);
        let new = old.wrapping_sub(0x0100);
        let sum = update_u16(u16::from_be_bytes([ip[10], ip[11]]), old, new);
        ip[8] = ttl - 1;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    let dst = match how.via {
        Some(a) => a,
        None => Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
    };
    Ok((dst, u16::from_be_bytes([ip[2], ip[3]])))
}

/// Write the Ethernet destination into a routed packet (the source is written on send).
pub(super) fn set_dst_mac<B: PacketBuf>(mut buf: B, dst: MacAddr) -> B {
    if let Some(h) = buf.data_mut().get_mut(0..6) {
        h.copy_from_slice(&dst.0);
    }
    buf
}

/// Send a routed packet whose destination MAC is already written: fill the source MAC (the
/// egress port's) and hand it to the runtime.
pub(super) fn send_resolved<B: PacketBuf, I: Io<B>>(
    counters: &mut Counters,
    io: &mut I,
    port: PortId,
    src_mac: MacAddr,
    mut buf: B,
) {
    if let Some(h) = buf.data_mut().get_mut(6..12) {
        h.copy_from_slice(&src_mac.0);
    }
    counters.tx_packets += 1;
    counters.tx_bytes += buf.len() as u64;
    io.transmit(port, buf);
}
