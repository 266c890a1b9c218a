//! The exception path, as the worker sees it: which received frames go to the port's kernel
//! twin instead of being dropped (docs/architecture.md, "The kernel side").
//!
//! A port may have a kernel twin ([`super::Io::has_kernel`]): an interface of the host's kernel
//! with the port's MAC and the director's addresses, through which the host's own traffic
//! (SSH, BGP, health checks, ping from the director) uses the DPDK port. rvs keeps what it
//! does itself and gives the kernel the rest:
//!
//! - load-balanced traffic, connections, NAT replies, ICMP errors about connections: rvs;
//! - ICMP echo requests to the director's addresses and VIPs: answered by rvs (at line rate,
//!   so a ping flood never reaches the kernel); echo *replies* (to the kernel's own pings) and
//!   every other ICMP message addressed to the director: the kernel;
//! - TCP/UDP to an owned address that is no service (`local_not_service`), other IP protocols
//!   to an owned address (GRE, OSPF unicast ...): the kernel;
//! - ARP requests: answered by rvs (the kernel never sees them, so it never answers twice);
//!   ARP *replies* are learnt by rvs and also copied to the kernel, whose own neighbour
//!   resolution needs them (the kernel sends its requests itself, through the twin);
//! - IPv6 (docs/ipv6.md): Neighbour Solicitations for the director's IPv6 addresses and echo
//!   requests to them are answered by rvs; advertisements are learnt and copied to the kernel
//!   (as ARP replies); solicitations for other targets (`nd_not_for_us`: the twin's
//!   link-local address) and everything else to the director (`ipv6_not_served`: its IPv6
//!   addresses, link-local addresses, multicast groups) go to the kernel;
//! - other ethertypes addressed to the port (`unknown_ethertype`: LLDP, VLAN tags ...) and
//!   multicast frames (`not_our_mac` with a group address: OSPF, VRRP; the port is
//!   promiscuous, the kernel filters by its own memberships): the kernel.
//!
//! Frames for other hosts (`not_for_us`, unicast `not_our_mac`) and malformed ones stay
//! dropped. Without a twin every frame above is dropped with its reason, as before. What the
//! kernel sends on the twin goes out of the port unchanged; the runtime does that, and bounds
//! and counts both directions off the workers' path.

use crate::drop::DropReason;
use crate::l3::addr::PortId;
use crate::packet::PacketBuf;
use crate::wire::EtherType;

use super::{Io, State};

/// Whether a frame the worker would drop for `reason` goes to the kernel twin instead.
pub fn takes(reason: DropReason, frame: &[u8]) -> bool {
    match reason {
        DropReason::LocalNotService
        | DropReason::UnknownEthertype
        | DropReason::Ipv6NotServed
        | DropReason::NdNotForUs => true,
        // A group address (I/G bit) that is not broadcast: parse drops it as not ours.
        DropReason::NotOurMac => frame.first().is_some_and(|b| b & 1 == 1),
        _ => false,
    }
}

/// Whether an ARP or ND frame is one the kernel gets a copy of: an ARP reply (operation 2) or
/// an IPv6 Neighbour Advertisement.
pub fn copies_arp(frame: &[u8]) -> bool {
    (frame.get(12..14) == Some(&EtherType::ARP.0.to_be_bytes()[..])
        && frame.get(20..22) == Some(&[0, 2][..]))
        || super::v6::is_nd_advert(frame)
}

impl<B: PacketBuf> State<B> {
    /// Copy an ARP reply received on `port` (which has a twin) to the kernel; rvs handles the
    /// original as without a twin. A copy that finds no buffer is not made (counted
    /// `no_buffer`).
    pub(super) fn copy_to_kernel<I: Io<B>>(&mut self, port: PortId, buf: &B, io: &mut I) {
        if !copies_arp(buf.data()) {
            return;
        }
        let Some(mut copy) = io.alloc() else {
            self.drops.count(DropReason::NoBuffer);
            return;
        };
        let n = buf.len();
        if copy.set_len(n).is_err() {
            self.drops.count(DropReason::NoBuffer);
            return;
        }
        copy.data_mut().copy_from_slice(buf.data());
        self.counters.to_kernel += 1;
        io.to_kernel(port, copy);
    }
}
