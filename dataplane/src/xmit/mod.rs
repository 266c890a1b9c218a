//! Forwarding methods, one file each (as IPVS's `ip_vs_xmit.c`, split by method): what a method
//! does to a packet of one of its connections, in place, with incremental checksums.
//!
//! [`apply`] is the one entry point the worker calls for a packet of a known connection: it
//! picks the method's rewrite for the packet's direction, does the method's own checks (TUN's
//! egress MTU, with the ICMP "fragmentation needed" answer; FULLNAT's TOA option on the SYN and
//! first data segment, and the MSS it takes from the real server's SYN-ACK) and says where the
//! packet goes next ([`Fwd`]). Routing, TTL and the Ethernet header are the worker's. Adding a
//! method touches this module and the service model, not the worker.
//!
//! [`apply6`] is the same for a packet of a known IPv6 connection: NAT6, DR6, TUN6
//! (IPv6-in-IPv6), FULLNAT6 with the IPv6 TOA, and NAT64 (an IPv6 client, an IPv4 real server,
//! through FULLNAT with an IPv4 local address: [`nat64`]). PROXY protocol and UOA for IPv6
//! clients are not done yet: [`apply6`] never sends them ([`Sent::default`] for UDP).

pub mod dr;
pub mod fullnat;
pub mod icmp;
pub mod icmp6;
pub mod nat;
pub mod nat64;
pub mod nat64_icmp;
pub mod proxy;
pub mod toa;
pub mod tun;
pub mod uoa;

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::conn::{Conn, ConnFlags, ConnKey6, Dir};
use crate::drop::DropReason;
use crate::l3::addr::OwnedAddrs;
use crate::l3::icmp::IcmpError;
use crate::l3::icmp6::Icmp6Error;
use crate::l3::route::RouteTable;
use crate::packet::PacketBuf;
use crate::parse::{L3, Parsed};
use crate::parse6::Parsed6;
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
    match toa_moment(conn, p.tcp_flags, || tcp_payload_len(buf.data(), p)) {
        Some(first_data) => {
            toa::insert(buf, i.src, i.sport)?;
            Ok(first_data)
        }
        None => Ok(false),
    }
}

/// A packet of an IPv6 connection as received: IPv6, or IPv4 (the replies of a NAT64
/// connection, from its IPv4 real server).
#[derive(Debug, Clone, Copy)]
pub enum Rx6<'a> {
    V6(&'a Parsed6),
    V4(&'a Parsed),
}

/// How to route a packet of an IPv6 connection once its method is done with it: as IPv6, or
/// as IPv4 (a NAT64 request translated for its IPv4 real server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd6 {
    V6 {
        /// Route towards this address instead of the header's destination (DR6: the RIP).
        via: Option<Ipv6Addr>,
        /// Decrement the hop limit (routed methods), or leave it (DR6, TUN6's outer header).
        dec_hop: bool,
    },
    V4(Fwd),
}

impl Fwd6 {
    /// A packet the director originates (TUN6's outer header): routed by its destination,
    /// hop limit as written.
    pub const ORIGINATED: Fwd6 = Fwd6::V6 {
        via: None,
        dec_hop: false,
    };
    /// Routed towards `addr` (known already), hop limit decremented.
    pub const fn routed_to(addr: Ipv6Addr) -> Fwd6 {
        Fwd6::V6 {
            via: Some(addr),
            dec_hop: true,
        }
    }
}

/// What the method decided for a packet of an IPv6 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict6 {
    /// Route and send the rewritten packet.
    Forward(Fwd6),
    /// Drop it for the reason and answer its (IPv6) source with this ICMPv6 error (TUN6, too
    /// big).
    Icmp6Error(Icmp6Error, DropReason),
    /// Drop it and answer its IPv4 source with this ICMP error (none of the methods here
    /// produces one yet: the NAT64 reply path would, for an IPv4 server's packet that cannot
    /// be translated).
    IcmpError(IcmpError, DropReason),
}

/// What an IPv6 method reads besides the packet and its connection.
pub struct Env6<'a> {
    pub routes6: &'a RouteTable<Ipv6Addr>,
    /// IPv4 routes, for NAT64 requests.
    pub routes4: &'a RouteTable,
    pub addrs: &'a OwnedAddrs,
    /// MTU of each port, indexed by port id.
    pub mtu: &'a dyn Fn(crate::l3::addr::PortId) -> usize,
    /// The worker's IPv4 identification counter (NAT64's translated headers).
    pub ip_ident: &'a mut u16,
    /// How the connection's service gives FULLNAT dests the client's address (the TOA only for
    /// IPv6 so far).
    pub client_addr: ClientAddr,
}

/// Apply IPv6 connection `conn`'s method to a packet that matched its `dir` tuple (for a
/// NAT64 reply, an IPv4 packet whose [`nat64::mapped_key`] matched the out-key). Methods and
/// directions: Masq both ways, Route and Tunnel requests only (their replies bypass the
/// director: `method_unsupported`, as for IPv4), FullNat both ways, and NAT64 (FullNat with an
/// IPv4-mapped out-key) both ways, IPv6 -> IPv4 for requests and IPv4 -> IPv6 for replies. A
/// packet of the other family than the connection's side expects is `method_unsupported`.
pub fn apply6<B: PacketBuf>(
    conn: &Conn<ConnKey6>,
    dir: Dir,
    rx: Rx6<'_>,
    buf: &mut B,
    env: &mut Env6<'_>,
) -> Result<(Verdict6, Sent), DropReason> {
    let (i, o) = (*conn.in_key(), *conn.out_key());
    let forward = |f| Ok((Verdict6::Forward(f), Sent::default()));
    let toa_on = env.client_addr.toa && env.client_addr.proxy == ProxyProtocol::Disable;
    let tcp = i.proto == IpProtocol::TCP.0;
    if conn.method() == ForwardMethod::FullNat
        && let Some(o4) = nat64::unmapped(&o)
    {
        return nat64_apply(conn, o4, dir, rx, buf, env, toa_on);
    }
    let Rx6::V6(p) = rx else {
        return Err(DropReason::MethodUnsupported);
    };
    match (conn.method(), dir) {
        (ForwardMethod::Masq, Dir::Original) => {
            nat::rewrite_parsed6(buf.data_mut(), p, None, Some((o.src, o.sport)))?;
            forward(Fwd6::routed_to(o.src))
        }
        (ForwardMethod::Masq, Dir::Reply) => {
            nat::rewrite_parsed6(buf.data_mut(), p, Some((i.dst, i.dport)), None)?;
            forward(Fwd6::routed_to(p.key.dst))
        }
        (ForwardMethod::Route, Dir::Original) => forward(dr::to_dest6(o.src)),
        (ForwardMethod::Tunnel, Dir::Original) => tunnel6(o.src, p, buf, env),
        (ForwardMethod::FullNat, Dir::Original) => {
            fullnat::to_dest6(buf.data_mut(), p, o.dst, o.dport, o.src, o.sport)?;
            let mut sent = Sent::default();
            // The rewrite keeps the lengths: the payload is read from the rewritten frame.
            let payload = || tcp_payload_len6(buf.data(), usize::from(p.l4), usize::from(p.end));
            if tcp
                && toa_on
                && let Some(first_data) = toa_moment(conn, p.tcp_flags, payload)
            {
                toa::insert6(buf, p, i.src, i.sport)?;
                sent.toa = first_data;
            }
            Ok((Verdict6::Forward(Fwd6::routed_to(o.src)), sent))
        }
        (ForwardMethod::FullNat, Dir::Reply) => {
            fullnat::to_client6(buf.data_mut(), p, i.dst, i.dport, i.src, i.sport)?;
            if toa_on && tcp && p.tcp_flags & 0x12 == 0x12 {
                toa::reduce_mss6(buf, p, toa::LEN6 as u16)?;
            }
            forward(Fwd6::routed_to(i.src))
        }
        (ForwardMethod::Route | ForwardMethod::Tunnel, Dir::Reply) => {
            Err(DropReason::MethodUnsupported)
        }
    }
}

/// NAT64 (see [`nat64`]): requests translated to IPv4 toward `o4`'s server from its local
/// address, replies translated back to IPv6 toward the client.
fn nat64_apply<B: PacketBuf>(
    conn: &Conn<ConnKey6>,
    o4: crate::conn::ConnKey,
    dir: Dir,
    rx: Rx6<'_>,
    buf: &mut B,
    env: &mut Env6<'_>,
    toa_on: bool,
) -> Result<(Verdict6, Sent), DropReason> {
    let i = *conn.in_key();
    let tcp = i.proto == IpProtocol::TCP.0;
    match (dir, rx) {
        (Dir::Original, Rx6::V6(p)) => {
            let payload = tcp_payload_len6(buf.data(), usize::from(p.l4), usize::from(p.end));
            *env.ip_ident = env.ip_ident.wrapping_add(1);
            let ident = *env.ip_ident;
            nat64::to_v4(buf, p, (o4.dst, o4.dport), (o4.src, o4.sport), ident)?;
            let mut sent = Sent::default();
            if tcp
                && toa_on
                && let Some(first_data) = toa_moment(conn, p.tcp_flags, || payload)
            {
                toa::insert6_in_v4(buf, i.src, i.sport)?;
                sent.toa = first_data;
            }
            Ok((Verdict6::Forward(Fwd6::V4(Fwd::routed_to(o4.src))), sent))
        }
        (Dir::Reply, Rx6::V4(p)) => {
            nat64::to_v6(buf, p, (i.dst, i.dport), (i.src, i.sport))?;
            if tcp && p.tcp_flags & 0x12 == 0x12 {
                let seg = nat64::segment6_mut(buf.data_mut()).ok_or(DropReason::TcpMalformed)?;
                toa::reduce_mss_seg(seg, nat64::MSS_DELTA)?;
            }
            Ok((Verdict6::Forward(Fwd6::routed_to(i.src)), Sent::default()))
        }
        _ => Err(DropReason::MethodUnsupported),
    }
}

/// TUN6: check the encapsulated size against the egress MTU (Packet Too Big with `MTU - 40`
/// otherwise, see [`tun`]), then wrap the packet.
fn tunnel6<B: PacketBuf>(
    rip: Ipv6Addr,
    p: &Parsed6,
    buf: &mut B,
    env: &mut Env6<'_>,
) -> Result<(Verdict6, Sent), DropReason> {
    let nh = env.routes6.lookup(rip).ok_or(DropReason::NoRoute)?;
    let mtu = (env.mtu)(nh.port);
    let inner = usize::from(p.end).saturating_sub(L3);
    if let Some(room) = tun::too_big6(inner, mtu)? {
        let kind = Icmp6Error::PacketTooBig { mtu: room };
        return Ok((
            Verdict6::Icmp6Error(kind, DropReason::TunTooBig),
            Sent::default(),
        ));
    }
    let src = env
        .addrs
        .source_for6(nh.port, rip)
        .ok_or(DropReason::NoRoute)?;
    tun::encapsulate6(buf, p, tun::Outer6 { src, dst: rip })?;
    Ok((Verdict6::Forward(Fwd6::ORIGINATED), Sent::default()))
}

/// Bytes of TCP payload in the segment at `l4..end` of `frame` (0 when it cannot be read).
fn tcp_payload_len6(frame: &[u8], l4: usize, end: usize) -> usize {
    frame
        .get(l4 + 12)
        .map_or(0, |off| end.saturating_sub(l4 + usize::from(off >> 4) * 4))
}

/// Whether a client TCP segment with `flags` and `payload()` bytes (asked only when it
/// matters) takes the TOA, for either family: `Some(false)` on the SYN, `Some(true)` on the
/// first data segment while the option is pending, `None` otherwise.
fn toa_moment<K: crate::conn::FlowKey>(
    conn: &Conn<K>,
    flags: u8,
    payload: impl FnOnce() -> usize,
) -> Option<bool> {
    let (syn, ack, rst) = (flags & 0x02 != 0, flags & 0x10 != 0, flags & 0x04 != 0);
    if syn && !ack {
        return Some(false);
    }
    (conn.flags().contains(ConnFlags::TOA_PENDING) && ack && !syn && !rst && payload() > 0)
        .then_some(true)
}

#[cfg(test)]
mod tests6 {
    use super::*;
    use crate::conn::ConnKey;
    use crate::l3::route::RouteTable;
    use crate::packet::HeapBuf;
    use crate::parse::{RxChecksum, parse};
    use crate::parse6::parse6;
    use crate::testutil::{
        FrameSpec, PORT0_MAC, tcp_frame_opts, tcp6_frame, udp6_frame, verify_frame, verify_frame6,
    };
    use crate::wire::ipv6::ExtPolicy;
    use crate::wire::tcp::TcpFlags;
    use icmp6::tests::conn6;
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    const CIP: &str = "2001:2::2";
    const VIP: &str = "2001:2::100";
    const LIP: &str = "2001:3::1";
    const RIP: &str = "2001:3::11";

    struct World {
        routes6: RouteTable<Ipv6Addr>,
        routes4: RouteTable,
        addrs: OwnedAddrs,
        ident: u16,
        mtu: usize,
    }

    impl World {
        fn new(mtu: usize) -> World {
            let mut addrs = OwnedAddrs::new();
            addrs.add6(0, a("2001:2::1"), 64).unwrap();
            addrs.add6(1, a(LIP), 64).unwrap();
            addrs.add(1, "198.18.1.1".parse().unwrap(), 24).unwrap();
            World {
                routes6: RouteTable::with_connected6(&addrs),
                routes4: RouteTable::with_connected(&addrs),
                addrs,
                ident: 100,
                mtu,
            }
        }

        fn run(
            &mut self,
            conn: &Conn<ConnKey6>,
            dir: Dir,
            rx: Rx6<'_>,
            buf: &mut HeapBuf,
        ) -> Result<(Verdict6, Sent), DropReason> {
            let mtu = self.mtu;
            let mtu_of = move |_| mtu;
            let mut env = Env6 {
                routes6: &self.routes6,
                routes4: &self.routes4,
                addrs: &self.addrs,
                mtu: &mtu_of,
                ip_ident: &mut self.ident,
                client_addr: ClientAddr::default(),
            };
            apply6(conn, dir, rx, buf, &mut env)
        }

        /// Parse `f` as IPv6 and apply.
        fn run6(
            &mut self,
            conn: &Conn<ConnKey6>,
            dir: Dir,
            f: &[u8],
        ) -> (Result<(Verdict6, Sent), DropReason>, HeapBuf) {
            let mut b = HeapBuf::from_bytes(f);
            let p = parse6(f, &ExtPolicy::default()).unwrap();
            let r = self.run(conn, dir, Rx6::V6(&p), &mut b);
            (r, b)
        }
    }

    fn fwd(r: Result<(Verdict6, Sent), DropReason>) -> (Fwd6, Sent) {
        match r.unwrap() {
            (Verdict6::Forward(f), s) => (f, s),
            v => panic!("not forwarded: {v:?}"),
        }
    }

    const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];

    #[test]
    fn masq6_both_ways() {
        let i = ConnKey6::new(6, a(CIP), 40000, a(VIP), 80);
        let o = ConnKey6::new(6, a(RIP), 8080, a(CIP), 40000);
        let conn = conn6(ForwardMethod::Masq, i, o);
        let mut w = World::new(1500);
        let f = tcp6_frame(a(CIP), 40000, a(VIP), 80, 0x02, &[], b"");
        let (r, b) = w.run6(&conn, Dir::Original, &f);
        assert_eq!(fwd(r).0, Fwd6::routed_to(a(RIP)));
        let v = verify_frame6(b.data()).unwrap();
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (a(CIP), 40000, a(RIP), 8080)
        );
        let f = tcp6_frame(a(RIP), 8080, a(CIP), 40000, 0x12, &MSS_1460, b"");
        let (r, b) = w.run6(&conn, Dir::Reply, &f);
        assert_eq!(fwd(r).0, Fwd6::routed_to(a(CIP)));
        let v = verify_frame6(b.data()).unwrap();
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (a(VIP), 80, a(CIP), 40000)
        );
        assert_eq!(&v.l4[20..24], &MSS_1460, "NAT6 leaves the MSS alone");
    }

    #[test]
    fn dr6_and_tun6_requests_only() {
        let i = ConnKey6::new(6, a(CIP), 40000, a(VIP), 80);
        let o = ConnKey6::new(6, a(RIP), 80, a(CIP), 40000);
        let f = tcp6_frame(a(CIP), 40000, a(VIP), 80, 0x02, &[], b"");
        let mut w = World::new(1500);
        let dr = conn6(ForwardMethod::Route, i, o);
        let (r, b) = w.run6(&dr, Dir::Original, &f);
        assert_eq!(fwd(r).0, dr::to_dest6(a(RIP)));
        assert_eq!(b.data(), &f[..]);
        let tun = conn6(ForwardMethod::Tunnel, i, o);
        let (r, b) = w.run6(&tun, Dir::Original, &f);
        assert_eq!(fwd(r).0, Fwd6::ORIGINATED);
        assert_eq!(b.len(), f.len() + 40);
        assert_eq!(
            &b.data()[14 + 8..14 + 24],
            &a(LIP).octets(),
            "source on the egress"
        );
        assert_eq!(&b.data()[54..], &f[14..]);
        for c in [dr, tun] {
            let (r, _) = w.run6(&c, Dir::Reply, &f);
            assert_eq!(r, Err(DropReason::MethodUnsupported));
        }
    }

    #[test]
    fn tun6_too_big_answers_packet_too_big() {
        let i = ConnKey6::new(17, a(CIP), 40000, a(VIP), 53);
        let o = ConnKey6::new(17, a(RIP), 53, a(CIP), 40000);
        let tun = conn6(ForwardMethod::Tunnel, i, o);
        let mut w = World::new(1500);
        let f = udp6_frame(a(CIP), 40000, a(VIP), 53, &[0; 1500 - 40 - 8 - 39]);
        let (r, b) = w.run6(&tun, Dir::Original, &f);
        assert_eq!(
            r.unwrap().0,
            Verdict6::Icmp6Error(
                Icmp6Error::PacketTooBig { mtu: 1460 },
                DropReason::TunTooBig
            )
        );
        assert_eq!(b.data(), &f[..]);
        let f = udp6_frame(a(CIP), 40000, a(VIP), 53, &[0; 1500 - 40 - 8 - 40]);
        assert_eq!(fwd(w.run6(&tun, Dir::Original, &f).0).0, Fwd6::ORIGINATED);
    }

    #[test]
    fn fullnat6_toa_on_syn_and_first_data_and_mss_in_the_syn_ack() {
        let i = ConnKey6::new(6, a(CIP), 40000, a(VIP), 80);
        let o = ConnKey6::new(6, a(RIP), 8080, a(LIP), 5000);
        let mut conn = conn6(ForwardMethod::FullNat, i, o);
        let mut w = World::new(1500);
        let toa: Vec<u8> = [&[254u8, 20, 0x9c, 0x40][..], &a(CIP).octets()].concat();
        // SYN: the option after the MSS option.
        let f = tcp6_frame(a(CIP), 40000, a(VIP), 80, 0x02, &MSS_1460, b"");
        let (r, b) = w.run6(&conn, Dir::Original, &f);
        let (to, sent) = fwd(r);
        assert_eq!((to, sent.toa), (Fwd6::routed_to(a(RIP)), false));
        let v = verify_frame6(b.data()).unwrap();
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (a(LIP), 5000, a(RIP), 8080)
        );
        assert_eq!(v.l4[12] >> 4, (20 + 4 + 20) / 4);
        assert_eq!(&v.l4[24..44], &toa[..]);
        assert_eq!(b.len(), f.len() + 20);
        // SYN-ACK: MSS 1460 -> 1440.
        let f = tcp6_frame(a(RIP), 8080, a(LIP), 5000, 0x12, &MSS_1460, b"");
        let (r, b) = w.run6(&conn, Dir::Reply, &f);
        assert_eq!(fwd(r).0, Fwd6::routed_to(a(CIP)));
        let v = verify_frame6(b.data()).unwrap();
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (a(VIP), 80, a(CIP), 40000)
        );
        assert_eq!(&v.l4[20..24], &[2, 4, 0x05, 0xa0]);
        // Pure ACK: nothing; first data while pending: the option, and it is no longer pending.
        conn.set_flag(ConnFlags::TOA_PENDING, true);
        let f = tcp6_frame(a(CIP), 40000, a(VIP), 80, 0x10, &[], b"");
        let (r, b) = w.run6(&conn, Dir::Original, &f);
        assert!(!fwd(r).1.toa);
        assert_eq!(b.len(), f.len());
        let f = tcp6_frame(a(CIP), 40000, a(VIP), 80, 0x18, &[], b"GET /");
        let (r, b) = w.run6(&conn, Dir::Original, &f);
        assert!(fwd(r).1.toa);
        let v = verify_frame6(b.data()).unwrap();
        assert_eq!(&v.l4[20..40], &toa[..]);
        assert_eq!(&v.l4[40..], b"GET /");
    }

    #[test]
    fn nat64_both_ways_with_toa_and_mss() {
        let (lip4, rip4) = (
            "198.18.1.1".parse().unwrap(),
            "198.18.1.11".parse().unwrap(),
        );
        let i = ConnKey6::new(6, a(CIP), 40000, a(VIP), 80);
        let o = nat64::mapped_key(6, rip4, 8080, lip4, 5000);
        let conn = conn6(ForwardMethod::FullNat, i, o);
        let mut w = World::new(1500);
        let f = tcp6_frame(a(CIP), 40000, a(VIP), 80, 0x02, &MSS_1460, b"");
        let (r, b) = w.run6(&conn, Dir::Original, &f);
        let (to, sent) = fwd(r);
        assert_eq!((to, sent.toa), (Fwd6::V4(Fwd::routed_to(rip4)), false));
        assert_eq!(w.ident, 101);
        assert_eq!(
            b.len(),
            f.len() - 20 + 20,
            "v4 header, plus the 20-byte TOA"
        );
        let v = verify_frame(b.data()).unwrap();
        assert_eq!((v.src, v.sport, v.dst, v.dport), (lip4, 5000, rip4, 8080));
        assert_eq!(u16::from_be_bytes([b.data()[18], b.data()[19]]), 101);
        let toa: Vec<u8> = [&[254u8, 20, 0x9c, 0x40][..], &a(CIP).octets()].concat();
        assert_eq!(&b.data()[34 + 24..34 + 44], &toa[..]);
        // The server's SYN-ACK, IPv4: translated, MSS 1460 -> 1440.
        let spec = FrameSpec::new(rip4, 8080, lip4, 5000);
        let f = tcp_frame_opts(&spec, TcpFlags(0x12), &MSS_1460, b"");
        let p = parse(&f, PORT0_MAC, RxChecksum::default());
        let mut b = HeapBuf::from_bytes(&f);
        let r = w.run(&conn, Dir::Reply, Rx6::V4(&p), &mut b);
        assert_eq!(fwd(r).0, Fwd6::routed_to(a(CIP)));
        let v = verify_frame6(b.data()).unwrap();
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (a(VIP), 80, a(CIP), 40000)
        );
        assert_eq!(&v.l4[20..24], &[2, 4, 0x05, 0xa0]);
        // A v6 packet claiming to be the reply, or a v4 one the request: refused.
        let (r, _) = w.run6(
            &conn,
            Dir::Reply,
            &tcp6_frame(a(RIP), 1, a(CIP), 2, 0x10, &[], b""),
        );
        assert_eq!(r, Err(DropReason::MethodUnsupported));
        let mut b = HeapBuf::from_bytes(&f);
        let r = w.run(&conn, Dir::Original, Rx6::V4(&p), &mut b);
        assert_eq!(r, Err(DropReason::MethodUnsupported));
        assert_eq!(
            nat64::unmapped(&o),
            Some(ConnKey::new(6, rip4, 8080, lip4, 5000))
        );
    }

    proptest! {
        /// Random bytes behind a valid Ethernet/IPv6 (or IPv4) start, any method, either
        /// direction: a verdict or a drop reason, never a panic.
        #[test]
        fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                     method in 0u8..5, reply in any::<bool>(), v4 in any::<bool>(),
                                     mtu in 0usize..2000) {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(if v4 { &[0x08, 0x00] } else { &[0x86, 0xdd] });
            f.extend_from_slice(&bytes);
            let i = ConnKey6::new(6, a(CIP), 40000, a(VIP), 80);
            let (m, o) = match method {
                0 => (ForwardMethod::Masq, ConnKey6::new(6, a(RIP), 8080, a(CIP), 40000)),
                1 => (ForwardMethod::Route, ConnKey6::new(6, a(RIP), 80, a(CIP), 40000)),
                2 => (ForwardMethod::Tunnel, ConnKey6::new(6, a(RIP), 80, a(CIP), 40000)),
                3 => (ForwardMethod::FullNat, ConnKey6::new(6, a(RIP), 8080, a(LIP), 5000)),
                _ => (ForwardMethod::FullNat, nat64::mapped_key(6, "10.0.0.2".parse().unwrap(), 1, "10.0.0.1".parse().unwrap(), 2)),
            };
            let conn = conn6(m, i, o);
            let mut w = World::new(mtu);
            let dir = if reply { Dir::Reply } else { Dir::Original };
            let mut b = HeapBuf::from_bytes(&f);
            if v4 {
                let p = parse(&f, PORT0_MAC, RxChecksum::default());
                let _ = w.run(&conn, dir, Rx6::V4(&p), &mut b);
            } else if let Ok(p) = parse6(&f, &ExtPolicy::default()) {
                let _ = w.run(&conn, dir, Rx6::V6(&p), &mut b);
                let _ = icmp6::quoted_tuple6(&f, &p);
            }
        }
    }
}
