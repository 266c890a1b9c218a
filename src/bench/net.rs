//! The benchmark's network and service configuration, built through the same public API the
//! control plane uses (`ServiceTable`, `OwnedAddrs`, `RouteTable`), and the forwarding methods
//! as data: adding DR, TUN or FULLNAT to the bench is one [`MethodSpec`] function each.
//!
//! Port 0 (clients) is 198.18.0.1/24 with a default route via 198.18.0.254; port 1 (servers) is
//! 198.18.1.1/24 with the real servers 198.18.1.11 and up. Every next hop is a static
//! neighbour, so no packet waits for ARP. Clients are 10.0.0.0/7 (behind the gateway).

use std::net::Ipv4Addr;
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
use dataplane::worker::{PortSetup, StaticNeigh, Tables, Worker, WorkerConfig, WorkerStats};

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

/// The service table: TCP VIP:80 with `dests` real servers of `method`, weights 1, 2, 3, ...
pub fn services(
    n_workers: usize,
    sched: &str,
    method: ForwardMethod,
    dests: usize,
) -> Result<ServiceTable> {
    let mut t = ServiceTable::new(n_workers);
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        vport: VPORT,
    };
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
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        vport: VPORT,
    };
    if let Some(svc) = services.service(&key) {
        let l = (0..LADDRS)
            .map(|i| Laddr {
                ip: laddr(i).into(),
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
        v6: Default::default(),
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
        peer: VIP,
        peer_port: VPORT,
        client_is: ClientIs::Src,
        tcp_flags: flags,
    })
}

/// A frame from real server `i` to the client (NAT's reply direction) with `flags`; FULLNAT's
/// replies use the same template with LIP:lport written in the client's place.
pub fn server_template(i: usize, flags: u8) -> Template {
    Template::new(&FrameSpec {
        eth_dst: PORT_MAC[1],
        eth_src: rs_mac(i),
        peer: rip(i),
        peer_port: VPORT,
        client_is: ClientIs::Dst,
        tcp_flags: flags,
    })
}
