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
pub mod proxy;
pub mod toa;
pub mod tun;
pub mod uoa;

use std::net::Ipv4Addr;

use crate::conn::{Conn, ConnFlags, Dir};
use crate::drop::DropReason;
use crate::l3::addr::OwnedAddrs;
use crate::l3::icmp::IcmpError;
use crate::l3::route::RouteTable;
use crate::packet::PacketBuf;
use crate::parse::{L3, Parsed};
use crate::service::{ClientAddr, ForwardMethod, ProxyProtocol, UoaMode};
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
    /// How the connection's service gives FULLNAT dests the client's address.
    pub client_addr: ClientAddr,
}

/// What went out with a packet, for the worker to note in the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// The TOA option went on the first data segment (no longer pending).
    pub toa: bool,
    /// The UOA option went on this datagram.
    pub uoa: bool,
    /// A PROXY v2 header went on this datagram.
    pub proxy_hdr: bool,
}

/// Apply connection `conn`'s method to a packet that matched its `dir` tuple. `p` describes the
/// packet as received. Returns the verdict and what went out with it for the client's address
/// (the worker then clears [`ConnFlags::TOA_PENDING`] or counts the UOA).
pub fn apply<B: PacketBuf>(
    conn: &Conn,
    dir: Dir,
    p: &Parsed,
    buf: &mut B,
    env: &mut Env<'_>,
) -> Result<(Verdict, Sent), DropReason> {
    let (i, o) = (conn.in_key(), conn.out_key());
    let forward = |f| Ok((Verdict::Forward(f), Sent::default()));
    let toa_on = env.client_addr.toa && env.client_addr.proxy == ProxyProtocol::Disable;
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
            let udp = if i.proto == IpProtocol::UDP.0 {
                match udp_plan(conn, p, buf, env)? {
                    Ok(plan) => plan,
                    Err(v) => return Ok((v, Sent::default())),
                }
            } else {
                UdpPlan::None
            };
            fullnat::to_dest(buf.data_mut(), p, o.dst, o.dport, o.src, o.sport)?;
            let sent = if i.proto == IpProtocol::TCP.0 {
                Sent {
                    toa: toa_on && add_toa(conn, p, buf)?,
                    ..Sent::default()
                }
            } else {
                udp_write(conn, p, buf, udp)?
            };
            Ok((Verdict::Forward(Fwd::routed_to(o.src)), sent))
        }
        (ForwardMethod::FullNat, Dir::Reply) => {
            fullnat::to_client(buf.data_mut(), p, i.dst, i.dport, i.src, i.sport)?;
            if toa_on && i.proto == IpProtocol::TCP.0 && p.tcp_flags & 0x12 == 0x12 {
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

/// The egress MTU towards `addr`.
fn mtu_to(env: &Env<'_>, addr: Ipv4Addr) -> Result<usize, DropReason> {
    let nh = env.routes.lookup(addr).ok_or(DropReason::NoRoute)?;
    Ok((env.mtu)(nh.port))
}

/// What a FULLNAT UDP datagram carries for the client's address (decided before the
/// rewrite, written after it).
enum UdpPlan {
    None,
    /// A PROXY v2 header, replacing `strip` bytes the client sent.
    Proxy(proxy::Header, usize),
    Uoa(uoa::Form),
}

/// FULLNAT UDP, before the rewrite: a PROXY v2 header on every datagram, or the UOA option on
/// the first ones. `Err(verdict)`: the datagram cannot take the header within the MTU and is
/// refused with an ICMP error to the client (when it forbids fragmenting; otherwise dropped).
fn udp_plan<B: PacketBuf>(
    conn: &Conn,
    p: &Parsed,
    buf: &B,
    env: &Env<'_>,
) -> Result<Result<UdpPlan, Verdict>, DropReason> {
    let i = conn.in_key();
    let ca = env.client_addr;
    let ip_len = buf
        .data()
        .get(L3 + 2..L3 + 4)
        .map_or(0, |t| usize::from(u16::from_be_bytes([t[0], t[1]])));
    // Version 1 is text for TCP: a UDP datagram of a fwmark service gets none.
    if let Some(version) = ca.proxy.version().filter(|&v| v == 2) {
        let l4 = usize::from(p.l4);
        let payload = buf.data().get(l4 + 8..L3 + ip_len).unwrap_or_default();
        let theirs = proxy::find(payload);
        if let Some(f) = theirs
            && ca.proxy.insecure()
            && f.version == version
        {
            return Ok(Ok(UdpPlan::None));
        }
        let h = proxy::Header::new(version, i.proto, i.src, i.sport, i.dst, i.dport);
        let strip = theirs.map_or(0, |f| f.len);
        let mtu = mtu_to(env, conn.out_key().src)?;
        if (ip_len + h.len()).saturating_sub(strip) > mtu {
            // rvs does not fragment: a datagram that forbids it learns the room left.
            if buf.data().get(L3 + 6).is_some_and(|b| b & 0x40 != 0) {
                let room = u16::try_from(mtu.saturating_sub(h.len())).unwrap_or(u16::MAX);
                let kind = IcmpError::FragNeeded { mtu: room };
                return Ok(Err(Verdict::IcmpError(kind, DropReason::ProxyHdrTooBig)));
            }
            return Err(DropReason::ProxyHdrTooBig);
        }
        return Ok(Ok(UdpPlan::Proxy(h, strip)));
    }
    let form = match ca.uoa {
        UoaMode::Disable => return Ok(Ok(UdpPlan::None)),
        UoaMode::Ipo => uoa::Form::Ipo,
        UoaMode::Opp => uoa::Form::Opp,
    };
    if conn.uoa_sent() >= uoa::MAX_TRAIL
        || conn.flags().contains(ConnFlags::REPLIED)
        || ip_len + uoa::overhead(form) > mtu_to(env, conn.out_key().src)?
    {
        return Ok(Ok(UdpPlan::None));
    }
    Ok(Ok(UdpPlan::Uoa(form)))
}

/// Write what [`udp_plan`] decided into the rewritten datagram.
fn udp_write<B: PacketBuf>(
    conn: &Conn,
    p: &Parsed,
    buf: &mut B,
    plan: UdpPlan,
) -> Result<Sent, DropReason> {
    let i = conn.in_key();
    Ok(match plan {
        UdpPlan::None => Sent::default(),
        UdpPlan::Proxy(h, strip) => {
            proxy::splice(buf, usize::from(p.l4), strip, h.as_bytes())?;
            Sent {
                proxy_hdr: true,
                ..Sent::default()
            }
        }
        UdpPlan::Uoa(form) => Sent {
            uoa: uoa::insert(buf, form, i.src, i.sport)?,
            ..Sent::default()
        },
    })
}

/// TUN: check the encapsulated size against the egress MTU, then wrap the packet.
fn tunnel<B: PacketBuf>(
    rip: Ipv4Addr,
    buf: &mut B,
    env: &mut Env<'_>,
) -> Result<(Verdict, Sent), DropReason> {
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
        return Ok((
            Verdict::IcmpError(kind, DropReason::TunTooBig),
            Sent::default(),
        ));
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
    Ok((Verdict::Forward(Fwd::ORIGINATED), Sent::default()))
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
