//! Forwarding methods, one file each (as IPVS's `ip_vs_xmit.c`, split by method): what a method
//! does to a packet of one of its connections, in place, with incremental checksums.
//!
//! [`apply`] is the one entry point the worker calls for a packet of a known connection: it
//! picks the method's rewrite for the packet's direction, does the method's own checks (TUN's
//! egress MTU, with the ICMP "fragmentation needed" answer; FULLNAT's TOA option on the SYN and
//! first data segment, and the MSS it takes from the real server's SYN-ACK) and says where the
//! packet goes next ([`Fwd`]). Routing, TTL and the Ethernet header are the worker's. Adding a
//! method touches this module and the service model, not the worker.

pub mod dr;
pub mod fullnat;
pub mod icmp;
pub mod nat;
pub mod toa;
pub mod tun;

use std::net::Ipv4Addr;

use crate::conn::{Conn, ConnFlags, Dir};
use crate::drop::DropReason;
use crate::l3::addr::OwnedAddrs;
use crate::l3::icmp::IcmpError;
use crate::l3::route::RouteTable;
use crate::packet::PacketBuf;
use crate::parse::{L3, Parsed};
use crate::service::ForwardMethod;
use crate::wire::IpProtocol;

/// How to route a packet once its method is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fwd {
    /// Route towards this address instead of the IPv4 destination in the header (DR: the RIP).
    pub via: Option<Ipv4Addr>,
    /// Decrement the TTL (routed methods), or leave the IP header alone (DR, TUN, our own).
    pub dec_ttl: bool,
}

impl Fwd {
    /// Routed by its (new) destination, TTL decremented: NAT, FULLNAT, translated ICMP.
    pub const ROUTED: Fwd = Fwd {
        via: None,
        dec_ttl: true,
    };
    /// A packet the director originates: routed by its destination, TTL as written.
    pub const ORIGINATED: Fwd = Fwd {
        via: None,
        dec_ttl: false,
    };
    /// Routed towards `addr` (known already), TTL decremented.
    pub const fn routed_to(addr: Ipv4Addr) -> Fwd {
        Fwd {
            via: Some(addr),
            dec_ttl: true,
        }
    }
}

/// What the method decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Route and send the rewritten packet.
    Forward(Fwd),
    /// Drop it for the reason and answer its source with this ICMP error (TUN, too big).
    IcmpError(IcmpError, DropReason),
}

/// What a method reads besides the packet and its connection.
pub struct Env<'a> {
    pub routes: &'a RouteTable,
    pub addrs: &'a OwnedAddrs,
    /// MTU of each port, indexed by port id.
    pub mtu: &'a dyn Fn(crate::l3::addr::PortId) -> usize,
    /// The worker's IP identification counter, for headers it builds (TUN's outer header).
    pub ip_ident: &'a mut u16,
}

/// Apply connection `conn`'s method to a packet that matched its `dir` tuple. `p` describes the
/// packet as received. Returns the verdict and whether the TOA option went out on this packet
/// (the worker then clears [`ConnFlags::TOA_PENDING`]).
pub fn apply<B: PacketBuf>(
    conn: &Conn,
    dir: Dir,
    p: &Parsed,
    buf: &mut B,
    env: &mut Env<'_>,
) -> Result<(Verdict, bool), DropReason> {
    let (i, o) = (conn.in_key(), conn.out_key());
    let forward = |f| Ok((Verdict::Forward(f), false));
    match (conn.method(), dir) {
        (ForwardMethod::Masq, Dir::Original) => {
            nat::rewrite_parsed(buf.data_mut(), p, None, Some((o.src, o.sport)))?;
            forward(Fwd::routed_to(o.src))
        }
        (ForwardMethod::Masq, Dir::Reply) => {
            nat::rewrite_parsed(buf.data_mut(), p, Some((i.dst, i.dport)), None)?;
            forward(Fwd::routed_to(p.key.dst))
        }
        (ForwardMethod::Route, Dir::Original) => forward(dr::to_dest(o.src)),
        (ForwardMethod::Tunnel, Dir::Original) => tunnel(o.src, buf, env),
        (ForwardMethod::FullNat, Dir::Original) => {
            fullnat::to_dest(buf.data_mut(), p, o.dst, o.dport, o.src, o.sport)?;
            let toa = i.proto == IpProtocol::TCP.0 && add_toa(conn, p, buf)?;
            Ok((Verdict::Forward(Fwd::routed_to(o.src)), toa))
        }
        (ForwardMethod::FullNat, Dir::Reply) => {
            fullnat::to_client(buf.data_mut(), p, i.dst, i.dport, i.src, i.sport)?;
            if i.proto == IpProtocol::TCP.0 && p.tcp_flags & 0x12 == 0x12 {
                toa::reduce_mss(buf, toa::LEN as u16)?;
            }
            forward(Fwd::routed_to(i.src))
        }
        // DR/TUN replies bypass the director: their reply tuple is never indexed.
        (ForwardMethod::Route | ForwardMethod::Tunnel, Dir::Reply) => {
            Err(DropReason::MethodUnsupported)
        }
    }
}

/// TUN: check the encapsulated size against the egress MTU, then wrap the packet.
fn tunnel<B: PacketBuf>(
    rip: Ipv4Addr,
    buf: &mut B,
    env: &mut Env<'_>,
) -> Result<(Verdict, bool), DropReason> {
    let nh = env.routes.lookup(rip).ok_or(DropReason::NoRoute)?;
    let mtu = (env.mtu)(nh.port);
    let (inner, df) = tun::inner_len_df(buf.data())?;
    if inner + tun::OVERHEAD > mtu {
        if !df {
            return Err(DropReason::TooBig);
        }
        let mtu = mtu.saturating_sub(tun::OVERHEAD);
        let kind = IcmpError::FragNeeded {
            mtu: u16::try_from(mtu).unwrap_or(u16::MAX),
        };
        return Ok((Verdict::IcmpError(kind, DropReason::TunTooBig), false));
    }
    let src = env
        .addrs
        .source_for(nh.port, rip)
        .ok_or(DropReason::NoRoute)?;
    *env.ip_ident = env.ip_ident.wrapping_add(1);
    let ident = *env.ip_ident;
    tun::encapsulate(
        buf,
        tun::Outer {
            src,
            dst: rip,
            ident,
        },
    )?;
    Ok((Verdict::Forward(Fwd::ORIGINATED), false))
}

/// Bytes of TCP payload in the frame `p` describes (IPv4 total length minus both headers; no
/// Ethernet padding), from fixed offsets: the headers were checked when the frame was parsed.
fn tcp_payload_len(frame: &[u8], p: &Parsed) -> usize {
    let l4 = usize::from(p.l4);
    let (Some(len), Some(off)) = (frame.get(L3 + 2..L3 + 4), frame.get(l4 + 12)) else {
        return 0;
    };
    let total = usize::from(u16::from_be_bytes([len[0], len[1]]));
    (L3 + total).saturating_sub(l4 + usize::from(off >> 4) * 4)
}

/// FULLNAT TCP: the TOA option on the client's SYN and on its first data segment. Returns true
/// when it went on the first data segment (no longer pending).
fn add_toa<B: PacketBuf>(conn: &Conn, p: &Parsed, buf: &mut B) -> Result<bool, DropReason> {
    let i = conn.in_key();
    let f = p.tcp_flags;
    let (syn, ack, rst) = (f & 0x02 != 0, f & 0x10 != 0, f & 0x04 != 0);
    if syn && !ack {
        toa::insert(buf, i.src, i.sport)?;
        return Ok(false);
    }
    if conn.flags().contains(ConnFlags::TOA_PENDING)
        && ack
        && !syn
        && !rst
        && tcp_payload_len(buf.data(), p) > 0
    {
        toa::insert(buf, i.src, i.sport)?;
        return Ok(true);
    }
    Ok(false)
}
