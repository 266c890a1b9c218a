//! What a worker reads but does not own ([`Tables`], published whole by the control plane and
//! swapped between bursts), and the questions the worker asks of it: which service a packet
//! belongs to, and which addresses are the director's own.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::conn::Timeouts;
use crate::fwmark::Classifier;
use crate::l3::addr::{OwnedAddrs, PortId};
use crate::l3::route::RouteTable;
use crate::laddr::LaddrTable;
use crate::persist::PersistTable;
use crate::service::Snapshot;
use crate::steer::FlowContext;
use crate::wire::MacAddr;

/// A static neighbour entry (`[[neigh]]` in the config, `rvsctl neigh add`), IPv4 or (with
/// `A = Ipv6Addr`) IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticNeigh<A = Ipv4Addr> {
    pub port: PortId,
    pub ip: A,
    pub mac: MacAddr,
}

/// The IPv6 side of the layer-3 tables (the owned IPv6 addresses are in [`Tables::addrs`],
/// beside the IPv4 ones).
#[derive(Debug, Clone, Default)]
pub struct Tables6 {
    /// Static IPv6 routes and the connected routes of the owned IPv6 prefixes.
    pub routes: RouteTable<Ipv6Addr>,
    pub static_neighs: Vec<StaticNeigh<Ipv6Addr>>,
}

/// Everything a worker reads but does not own, published whole by the control plane.
#[derive(Debug, Clone)]
pub struct Tables {
    pub services: Arc<Snapshot>,
    pub addrs: OwnedAddrs,
    pub routes: RouteTable,
    pub static_neighs: Vec<StaticNeigh>,
    /// IPv6 routes and static neighbours.
    pub v6: Tables6,
    pub timeouts: Timeouts,
    /// FULLNAT local addresses per service.
    pub laddrs: Arc<LaddrTable>,
    /// Persistence templates: one table shared by every worker (the same `Arc` in every
    /// publication), see [`crate::persist`].
    pub persist: Arc<PersistTable>,
    /// The firewall-mark classifier for `-f MARK` services.
    pub fwmarks: Arc<Classifier>,
    /// IPVS's `sloppy_tcp`: any TCP packet but a RST to a service may open a connection, not
    /// only a SYN (a director that takes over flows from another continues them; with `mh`/`sh`
    /// it picks the same real server).
    pub sloppy_tcp: bool,
    /// SYN-cookie secrets and the window scale the SYN proxy announces.
    pub synproxy: crate::synproxy::SynProxyConf,
}

impl Tables {
    /// The service a `proto` packet to `dst:dport` belongs to: a firewall-mark service when the
    /// classifier marks the packet and the mark has a service (IPVS looks fwmark services up
    /// first), else the address service (with the port-0 fallback).
    pub fn find_service(
        &self,
        proto: u8,
        dst: Ipv4Addr,
        dport: u16,
    ) -> Option<&crate::service::Service> {
        let mark = self.fwmarks.classify(proto, dst, dport);
        if mark != 0
            && let Some(s) = self.services.lookup_fwmark(mark)
        {
            return Some(s);
        }
        self.services.lookup(proto, dst, dport)
    }

    /// Whether the director answers ARP and ICMP echo for `ip` on `port`: an owned address of
    /// that port, or a VIP inside one of the port's connected networks.
    pub fn answers_for(&self, port: PortId, ip: Ipv4Addr) -> bool {
        self.addrs.owns_on(port, ip)
            || ((self.services.is_vip(ip) || self.fwmarks.is_vip(ip))
                && self.addrs.on_port(port).any(|a| a.contains(ip)))
            || self.laddrs.is_on(port, ip)
    }

    /// Whether the director answers Neighbour Discovery and ICMPv6 echo for the IPv6 address
    /// `ip` on `port`: an owned IPv6 address of that port.
    pub fn answers_for6(&self, port: PortId, ip: Ipv6Addr) -> bool {
        self.addrs.owns_on6(port, ip)
            || (self.services.is_vip6(ip) && self.addrs.on_port6(port).any(|a| a.contains(ip)))
            || self.laddrs.is_on6(port, ip)
    }

    /// Whether `ip` is the director's own (an owned address or a VIP).
    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.addrs.owns(ip).is_some()
            || self.services.is_vip(ip)
            || self.laddrs.contains(ip)
            || self.fwmarks.is_vip(ip)
    }

    /// Whether `src` cannot be a client's address for a packet to `dst` (a martian source):
    /// unspecified (0/8), loopback (127/8), multicast (224/4), class E and the limited
    /// broadcast (240/4), the broadcast address of a network the director is on, one of the
    /// director's own addresses (DIP, VIP, LIP), or `dst` itself. Asked only for packets that
    /// would open a connection or get an answer from the director, never per forwarded packet.
    pub fn martian_source(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let [a, ..] = src.octets();
        a == 0
            || a == 127
            || a >= 224
            || src == dst
            || self.is_local(src)
            || self.addrs.iter().any(|o| {
                o.prefix_len < 31 && o.contains(src) && is_host_broadcast(src, o.prefix_len)
            })
    }
}

/// `ip` has every host bit of a `/len` network set.
fn is_host_broadcast(ip: Ipv4Addr, len: u8) -> bool {
    let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    u32::from(ip) & host == host
}

impl crate::steer::FlowContext6 for Tables {
    fn is_service6(&self, proto: u8, ip: Ipv6Addr, port: u16) -> bool {
        self.services.lookup6(proto, ip, port).is_some()
    }

    fn is_laddr6(&self, ip: Ipv6Addr) -> bool {
        self.laddrs.contains6(ip)
    }
}

impl FlowContext for Tables {
    fn is_service(&self, proto: u8, ip: Ipv4Addr, port: u16) -> bool {
        self.find_service(proto, ip, port).is_some()
    }

    fn is_laddr(&self, ip: Ipv4Addr) -> bool {
        self.laddrs.contains(ip)
    }
}
