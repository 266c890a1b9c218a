//! What a worker reads but does not own ([`Tables`], published whole by the control plane and
//! swapped between bursts), and the questions the worker asks of it: which service a packet
//! belongs to, and which addresses are the director's own.

use std::net::Ipv4Addr;
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

/// A static neighbour entry (`[[neigh]]` in the config, `rvsctl neigh add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticNeigh {
    pub port: PortId,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
}

/// Everything a worker reads but does not own, published whole by the control plane.
#[derive(Debug, Clone)]
pub struct Tables {
    pub services: Arc<Snapshot>,
    pub addrs: OwnedAddrs,
    pub routes: RouteTable,
    pub static_neighs: Vec<StaticNeigh>,
    pub timeouts: Timeouts,
    /// FULLNAT local addresses per service.
    pub laddrs: Arc<LaddrTable>,
    /// Persistence templates: one table shared by every worker (the same `Arc` in every
    /// publication), see [`crate::persist`].
    pub persist: Arc<PersistTable>,
    /// The firewall-mark classifier for `-f MARK` services.
    pub fwmarks: Arc<Classifier>,
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

    /// Whether `ip` is the director's own (an owned address or a VIP).
    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.addrs.owns(ip).is_some()
            || self.services.is_vip(ip)
            || self.laddrs.contains(ip)
            || self.fwmarks.is_vip(ip)
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
