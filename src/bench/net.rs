//! The benchmark's network and service configuration, built through the same public API the
//! control plane uses (`ServiceTable`, `OwnedAddrs`, `RouteTable`), and the forwarding methods
//! as data: adding DR, TUN or FULLNAT to the bench is one [`MethodSpec`] function each.
//!
//! Port 0 (clients) is 198.18.0.1/24 with a default route via 198.18.0.254; port 1 (servers) is
//! 198.18.1.1/24 with the real servers 198.18.1.11 and up. Every next hop is a static
//! neighbour, so no packet waits for ARP. Clients are 10.0.0.0/7 (behind the gateway).
//!
//! IPv6 (RFC 5180's benchmarking prefix 2001:2::/48): clients are 2001:2::/96 behind the gateway
//! 2001:2:0:ff::fe (port 0, default route), the VIP is 2001:2:0:ff::100, the real servers
//! 2001:2:0:1::11 and up and the FULLNAT6 local addresses 2001:2:0:1::80 and up (port 1, a
//! directly reached /64). Every IPv6 next hop is a static neighbour too. The director owns no
//! IPv6 address here: worker 0 would announce one with an unsolicited advertisement from a
//! buffer the bench's `Io` does not allocate (counted as a `no_buffer` drop every tick).
//! NAT64 uses the IPv4 real servers and local addresses above behind the IPv6 VIP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use anyhow::{Result, anyhow};
use dataplane::conn::Timeouts;
use dataplane::l3::addr::OwnedAddrs;
use dataplane::l3::neigh::NeighConfig;
use dataplane::l3::route::{Route, RouteTable};
use dataplane::laddr::{Laddr, LaddrStats, LaddrTable};
use dataplane::service::{
    DestConfig, ForwardMethod, Protocol, ServiceConfig, ServiceKey, ServiceTable,
};
use dataplane::wire::MacAddr;
use dataplane::worker::{
    PortSetup, StaticNeigh, Tables, Tables6, Worker, WorkerConfig, WorkerStats,
};

use super::traffic::{ClientIs, FrameSpec, Template};
use crate::runtime::mbuf::Packet;

pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const VPORT: u16 = 80;
pub const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
pub const PORT_MAC: [MacAddr; 2] = [
    MacAddr([2, 0, 0, 0, 0, 0xd0]),
    MacAddr([2, 0, 0, 0, 0, 0xd1]),
];
pub const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);

/// Real server `i` (0-based).
pub fn rip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 11 + i as u8)
}

pub fn rs_mac(i: usize) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, i as u8])
}

/// IPv6 clients: this /96 with [`super::traffic::client_of`]'s 32 bits below it.
pub const CLIENT6_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0xff, 0, 0, 0, 0x100);
pub const GW6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0xff, 0, 0, 0, 0xfe);
/// The real servers' and the FULLNAT6 local addresses' /64 (port 1, reached directly).
pub const SERVER6_NET: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0);

/// IPv6 real server `i` (0-based), with the MAC of IPv4 real server `i`.
pub fn rip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(SERVER6_NET) | (0x11 + i as u128))
}

/// FULLNAT6 local address `i`: [`SERVER6_NET`] with `0x80 + i` in the low 32 bits (replies
/// are generated from a template of that /96 with the low 32 bits patched).
pub fn laddr6(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(SERVER6_NET) | (0x80 + i as u128))
}

/// The IPv6 methods as the bench exercises them: every one passes both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind6 {
    /// NAT (`-m`) with IPv6 real servers.
    Nat6,
    /// FULLNAT with IPv6 real servers and IPv6 local addresses.
    FullNat6,
    /// An IPv6 service with IPv4 FULLNAT real servers and IPv4 local addresses: IPv6 in,
    /// IPv4 to the servers, their IPv4 replies found in the IPv6 table and translated back.
    Nat64,
}

/// One IPv6 forwarding method as the bench exercises it.
#[derive(Debug, Clone, Copy)]
pub struct Method6 {
    pub name: &'static str,
    pub kind: Kind6,
    pub directions: &'static [Direction],
}

impl Method6 {
    pub fn method(&self) -> ForwardMethod {
        match self.kind {
            Kind6::Nat6 => ForwardMethod::Masq,
            Kind6::FullNat6 | Kind6::Nat64 => ForwardMethod::FullNat,
        }
    }

    /// Replies go to the LIP:lport the director picked (learnt at setup).
    pub fn replies_to_laddr(&self) -> bool {
        self.kind != Kind6::Nat6
    }

    /// The real servers (and the local addresses) are IPv4.
    pub fn servers_v4(&self) -> bool {
        self.kind == Kind6::Nat64
    }

    /// Real server `i` of this method.
    pub fn rip(&self, i: usize) -> IpAddr {
        if self.servers_v4() {
            rip(i).into()
        } else {
            rip6(i).into()
        }
    }

    /// Local address `i` of this method.
    pub fn laddr(&self, i: usize) -> IpAddr {
        if self.servers_v4() {
            laddr(i).into()
        } else {
            laddr6(i).into()
        }
    }
}

pub fn nat6() -> Method6 {
    Method6 {
        name: "NAT6",
        kind: Kind6::Nat6,
        directions: &[Direction::In, Direction::Out],
    }
}

pub fn fullnat6() -> Method6 {
    Method6 {
        name: "FULLNAT6",
        kind: Kind6::FullNat6,
        directions: &[Direction::In, Direction::Out],
    }
}

pub fn nat64() -> Method6 {
    Method6 {
        name: "NAT64",
        kind: Kind6::Nat64,
        directions: &[Direction::In, Direction::Out],
    }
}

/// Every IPv6 method the bench measures.
pub fn methods6() -> Vec<Method6> {
    vec![nat6(), fullnat6(), nat64()]
}

/// Traffic direction through the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to VIP.
    In,
    /// Real server back to the client (methods whose replies pass the director).
    Out,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// One forwarding method as the bench exercises it.
#[derive(Debug, Clone, Copy)]
pub struct MethodSpec {
    pub name: &'static str,
    pub method: ForwardMethod,
    pub directions: &'static [Direction],
}

impl MethodSpec {
    /// Replies are addressed to the local address and port the director picked per connection
    /// (FULLNAT), not to the client: the generator learns them at setup.
    pub fn replies_to_laddr(&self) -> bool {
        self.method == ForwardMethod::FullNat
    }
}

/// NAT (`-m`): both directions pass the director.
pub fn nat() -> MethodSpec {
    MethodSpec {
        name: "NAT",
        method: ForwardMethod::Masq,
        directions: &[Direction::In, Direction::Out],
    }
}

/// Direct routing (`-g`): only the client side passes the director.
pub fn dr() -> MethodSpec {
    MethodSpec {
        name: "DR",
        method: ForwardMethod::Route,
        directions: &[Direction::In],
    }
}

/// IPIP tunnel (`-i`): only the client side passes the director.
pub fn tun() -> MethodSpec {
    MethodSpec {
        name: "TUN",
        method: ForwardMethod::Tunnel,
        directions: &[Direction::In],
    }
}

/// FULLNAT: both directions pass the director; replies go from the real server to the local
/// address and port (LIP:lport) the director picked for the connection, learnt at setup from
/// the forwarded SYN.
pub fn fullnat() -> MethodSpec {
    MethodSpec {
        name: "FULLNAT",
        method: ForwardMethod::FullNat,
        directions: &[Direction::In, Direction::Out],
    }
}

/// Every method the bench knows; one the worker cannot forward is detected at setup (its first
/// SYN is dropped as `method_unsupported`) and reported as such.
pub fn methods() -> Vec<MethodSpec> {
    vec![nat(), dr(), tun(), fullnat()]
}

/// FULLNAT local addresses: enough (ip, port) pairs for 10M connections over 4 real servers.
pub const LADDRS: usize = 64;

pub fn laddr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 128 + i as u8)
}

fn key(vip: IpAddr) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip,
        vport: VPORT,
    }
}

/// The service table: TCP VIP:80 with `dests` real servers of `method`, weights 1, 2, 3, ...
pub fn services(
    n_workers: usize,
    sched: &str,
    method: ForwardMethod,
    dests: usize,
) -> Result<ServiceTable> {
    service_table(n_workers, sched, VIP.into(), method, dests, |i| {
        rip(i).into()
    })
}

/// The IPv6 service table: TCP \[VIP6\]:80 with `dests` real servers of `m` (IPv6, or IPv4 for
/// NAT64), weights 1, 2, 3, ...
pub fn services6(n_workers: usize, sched: &str, m: &Method6, dests: usize) -> Result<ServiceTable> {
    service_table(n_workers, sched, VIP6.into(), m.method(), dests, |i| {
        m.rip(i)
    })
}

fn service_table(
    n_workers: usize,
    sched: &str,
    vip: IpAddr,
    method: ForwardMethod,
    dests: usize,
    rip: impl Fn(usize) -> IpAddr,
) -> Result<ServiceTable> {
    let mut t = ServiceTable::new(n_workers);
    let key = key(vip);
    t.add_service(ServiceConfig::new(key, sched))
        .map_err(|e| anyhow!("service {sched}: {e}"))?;
    for i in 0..dests {
        let mut d = DestConfig::new(rip(i), VPORT, method);
        d.weight = 1 + i as u32;
        t.add_dest(&key, d).map_err(|e| anyhow!("dest: {e}"))?;
    }
    Ok(t)
}

/// Worker tables around a service table: addresses, connected and default routes, static
/// neighbours for the gateway and every real server.
pub fn tables(services: &mut ServiceTable, dests: usize) -> Result<Arc<Tables>> {
    let laddrs = (0..LADDRS).map(|i| laddr(i).into()).collect();
    tables_with(services, dests, key(VIP.into()), laddrs, Tables6::default())
}

/// [`tables`] for the IPv6 service of [`services6`]: the IPv4 side as there (NAT64's servers),
/// plus IPv6 routes (default via [`GW6`] on port 0, [`SERVER6_NET`]/64 on port 1) and static
/// neighbours for the IPv6 gateway and real servers; the local addresses of `m`'s family.
pub fn tables6(services: &mut ServiceTable, m: &Method6, dests: usize) -> Result<Arc<Tables>> {
    let mut routes = RouteTable::<Ipv6Addr>::new();
    for r in [
        Route {
            prefix: Ipv6Addr::UNSPECIFIED,
            len: 0,
            via: Some(GW6),
            port: 0,
        },
        Route {
            prefix: SERVER6_NET,
            len: 64,
            via: None,
            port: 1,
        },
    ] {
        routes.add(r).map_err(|e| anyhow!("{e:?}"))?;
    }
    let mut static_neighs = vec![StaticNeigh {
        port: 0,
        ip: GW6,
        mac: GW_MAC,
    }];
    static_neighs.extend((0..dests).map(|i| StaticNeigh {
        port: 1,
        ip: rip6(i),
        mac: rs_mac(i),
    }));
    let laddrs = (0..LADDRS).map(|i| m.laddr(i)).collect();
    tables_with(
        services,
        dests,
        key(VIP6.into()),
        laddrs,
        Tables6 {
            routes,
            static_neighs,
        },
    )
}

fn tables_with(
    services: &mut ServiceTable,
    dests: usize,
    key: ServiceKey,
    local: Vec<IpAddr>,
    v6: Tables6,
) -> Result<Arc<Tables>> {
    let mut addrs = OwnedAddrs::new();
    addrs
        .add(0, Ipv4Addr::new(198, 18, 0, 1), 24)
        .map_err(|e| anyhow!("{e:?}"))?;
    addrs
        .add(1, Ipv4Addr::new(198, 18, 1, 1), 24)
        .map_err(|e| anyhow!("{e:?}"))?;
    let mut routes = RouteTable::with_connected(&addrs);
    routes
        .add(Route {
            prefix: Ipv4Addr::UNSPECIFIED,
            len: 0,
            via: Some(GW),
            port: 0,
        })
        .map_err(|e| anyhow!("{e:?}"))?;
    let mut static_neighs = vec![StaticNeigh {
        port: 0,
        ip: GW,
        mac: GW_MAC,
    }];
    static_neighs.extend((0..dests).map(|i| StaticNeigh {
        port: 1,
        ip: rip(i),
        mac: rs_mac(i),
    }));
    let mut laddrs = LaddrTable::new(services.n_workers());
    if let Some(svc) = services.service(&key) {
        let l = local
            .into_iter()
            .map(|ip| Laddr {
                ip,
                port: 1,
                ifname: "dp1".into(),
                stats: Arc::new(LaddrStats::new(services.n_workers())),
            })
            .collect();
        laddrs.set(svc.id(), l);
    }
    Ok(Arc::new(Tables {
        laddrs: Arc::new(laddrs),
        services: services.snapshot(),
        addrs,
        routes,
        static_neighs,
        v6,
        timeouts: Timeouts::default(),
        sloppy_tcp: false,
        synproxy: dataplane::synproxy::SynProxyConf::new(
            dataplane::synproxy::cookie::Secrets::from_bytes([7; 32]),
        ),
        persist: Arc::new(dataplane::persist::PersistTable::new(
            1 << 16,
            services.n_workers(),
        )),
        fwmarks: Arc::new(dataplane::fwmark::Classifier::new(Vec::new())),
    }))
}

/// Worker `id` of `workers`. With `workers == 1` it owns every flow (independent workers, no
/// steering); with more, `Worker::steer` names each flow's owner as in rvsd.
pub fn worker(id: usize, workers: usize, capacity: usize, tables: Arc<Tables>) -> Worker<Packet> {
    worker_with6(id, workers, capacity, 1024, tables)
}

/// [`worker`] with an IPv6 connection table of `capacity6` (the IPv4-only cases keep a small
/// one: its slab is written when the worker is made).
pub fn worker_with6(
    id: usize,
    workers: usize,
    capacity: usize,
    capacity6: usize,
    tables: Arc<Tables>,
) -> Worker<Packet> {
    let cfg = WorkerConfig {
        id,
        ports: PORT_MAC
            .iter()
            .map(|&mac| PortSetup { mac, mtu: 1500 })
            .collect(),
        conn_capacity: capacity,
        conn_capacity6: capacity6,
        neigh: NeighConfig::default(),
        icmp: Default::default(),
        workers,
    };
    // As rvsd: the connection table advised onto transparent huge pages before first touch.
    Worker::with_advice(
        cfg,
        tables,
        Arc::new(WorkerStats::default()),
        0x5eed_0000 + id as u64,
        dpdk_bindings::advise_hugepages,
    )
}

/// A client-to-VIP frame with `flags`.
pub fn client_template(flags: u8) -> Template {
    Template::new(&FrameSpec {
        eth_dst: PORT_MAC[0],
        eth_src: GW_MAC,
        peer: VIP.into(),
        peer_port: VPORT,
        client_is: ClientIs::Src,
        tcp_flags: flags,
        client_prefix: Ipv6Addr::UNSPECIFIED,
    })
}

/// A frame from real server `i` to the client (NAT's reply direction) with `flags`; FULLNAT's
/// replies use the same template with LIP:lport written in the client's place.
pub fn server_template(i: usize, flags: u8) -> Template {
    Template::new(&FrameSpec {
        eth_dst: PORT_MAC[1],
        eth_src: rs_mac(i),
        peer: rip(i).into(),
        peer_port: VPORT,
        client_is: ClientIs::Dst,
        tcp_flags: flags,
        client_prefix: Ipv6Addr::UNSPECIFIED,
    })
}

/// An IPv6 client-to-\[VIP6\] frame with `flags`.
pub fn client_template6(flags: u8) -> Template {
    Template::new(&FrameSpec {
        eth_dst: PORT_MAC[0],
        eth_src: GW_MAC,
        peer: VIP6.into(),
        peer_port: VPORT,
        client_is: ClientIs::Src,
        tcp_flags: flags,
        client_prefix: CLIENT6_PREFIX,
    })
}

/// A reply frame from real server `i` of `m` with `flags`: to the IPv6 client (NAT6), to an
/// IPv6 local address and port (FULLNAT6: its low 32 bits and the port are written per
/// packet), or an IPv4 frame to an IPv4 local address and port (NAT64).
pub fn server_template6(m: &Method6, i: usize, flags: u8) -> Template {
    if m.servers_v4() {
        return server_template(i, flags);
    }
    Template::new(&FrameSpec {
        eth_dst: PORT_MAC[1],
        eth_src: rs_mac(i),
        peer: rip6(i).into(),
        peer_port: VPORT,
        client_is: ClientIs::Dst,
        tcp_flags: flags,
        client_prefix: if m.replies_to_laddr() {
            SERVER6_NET
        } else {
            CLIENT6_PREFIX
        },
    })
}
