//! The virtual-service model: what the operator configured (`ipvsadm -A/-E/-D/-a/-e/-d/-C`) and
//! the immutable view of it the workers forward with.
//!
//! Two halves:
//! - **Control side** ([`ServiceTable`]): mutable, owned by the control thread alone (`&mut self`,
//!   no interior locking). Every operation validates first and mutates second, so a failed call
//!   leaves the table exactly as it was. Errors ([`ServiceError`]) map one-to-one onto the errnos
//!   IPVS returns and ipvsadm renders ([`ServiceError::errno`]).
//! - **Worker side** ([`Snapshot`]): an immutable, `Arc`-shared picture of all services and dests,
//!   built by [`ServiceTable::snapshot`] and swapped in by the runtime between bursts. Lookups are
//!   O(1) hash probes and never allocate.
//!
//! Identity: every service gets a [`ServiceId`] and every dest a [`DestId`], allocated from
//! counters that only grow, so an id is never reused during the life of the process (a deleted and
//! re-added dest is a new dest). Editing keeps ids, and keeps the very same `Arc` of statistics
//! ([`DestStats`], [`ServiceStats`]), so counters and active/inactive connection counts survive a
//! weight change or a scheduler change.
//!
//! Dest order: a service's dests are kept in IPVS list order, which is **newest first** (IPVS adds
//! a dest with `list_add_rcu` at the head of `svc->destinations`). Schedulers walk the slice in
//! that order, so rr/wrr pick sequences are the ones the kernel produces for the same commands.
//!
//! Statistics are per-worker single-writer atomics; see [`stats`] for the no-RMW and zeroing rules.

pub mod access;
pub mod estimator;
pub mod snapshot;
pub mod stats;
pub mod table;

use core::fmt;
use std::net::{IpAddr, Ipv4Addr};

pub use access::{AccessLists, ListKind, Prefix, Rate, ServiceLimits};
pub use snapshot::{Dest, Service, Snapshot};
pub use stats::{DestStats, ServiceStats, StatsSlot, Totals};
pub use table::ServiceTable;

use crate::sched::SchedFlags;

/// Stable identity of a virtual service; never reused during the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u32);

/// Stable identity of a dest (real server inside one service); never reused during the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u32);

/// Transport protocol of an address-keyed virtual service (the IP protocol number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Protocol {
    Tcp = 6,
    Udp = 17,
    Sctp = 132,
}

impl Protocol {
    /// The protocol for an IP protocol number, if it is one a service can be keyed on.
    pub const fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// The name ipvsadm prints (`TCP`, `UDP`, `SCTP`).
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// What identifies a virtual service: protocol + VIP + port, or a firewall mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// `-t/-u/--sctp-service VIP:PORT` (IPv4) or `[VIP6]:PORT` (IPv6). Port 0 means "all
    /// ports" (persistent services only).
    Addr {
        protocol: Protocol,
        vip: IpAddr,
        vport: u16,
    },
    /// `-f MARK` (MARK > 0).
    Fwmark(u32),
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr {
                protocol,
                vip,
                vport,
            } => write!(f, "{} {}", protocol.name(), AddrPort(*vip, *vport)),
            ServiceKey::Fwmark(m) => write!(f, "FWM {m}"),
        }
    }
}

impl ServiceKey {
    /// Whether the service is an IPv6 one (fwmark services are IPv4).
    pub const fn is_ipv6(&self) -> bool {
        matches!(
            self,
            ServiceKey::Addr {
                vip: IpAddr::V6(_),
                ..
            }
        )
    }
}

/// `addr:port`, an IPv6 address in brackets (`[2001:db8::1]:80`), for messages.
#[derive(Debug, Clone, Copy)]
pub struct AddrPort(pub IpAddr, pub u16);

impl fmt::Display for AddrPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// How packets reach a dest (docs/architecture.md section 2, "Forwarding methods on the wire").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ForwardMethod {
    /// NAT (`-m`): DNAT in, SNAT out; replies pass the director.
    Masq,
    /// Direct routing (`-g`, the ipvsadm default): MAC rewrite only; replies bypass the director.
    Route,
    /// IPIP tunnel (`-i`); replies bypass the director.
    Tunnel,
    /// FULLNAT (DPVS `-b/--fullnat`): SNAT to a local address plus DNAT; replies pass the director.
    FullNat,
}

impl ForwardMethod {
    /// The name ipvsadm (and DPVS's ipvsadm for FULLNAT) prints in the Forward column.
    pub const fn name(self) -> &'static str {
        match self {
            ForwardMethod::Masq => "Masq",
            ForwardMethod::Route => "Route",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::FullNat => "FullNat",
        }
    }

    /// Whether the real server's replies come back through the director (NAT, FULLNAT). Only
    /// then is a connection's reply tuple indexed, and only then does TCP use the OUTPUT table.
    pub const fn replies_pass_director(self) -> bool {
        matches!(self, ForwardMethod::Masq | ForwardMethod::FullNat)
    }
}

/// Largest dest weight (`-w`).
pub const MAX_WEIGHT: u32 = 65_535;
/// Largest upper/lower threshold (`-x/-y`): ipvsadm accepts 0..INT_MAX.
pub const MAX_THRESHOLD: u32 = i32::MAX as u32;
/// Largest persistence timeout in seconds (31 days, ipvsadm's `MAX_TIMEOUT`).
pub const MAX_PERSISTENCE: u32 = 31 * 24 * 3600;
/// ipvsadm's default persistence timeout (`-p` without a value).
pub const DEFAULT_PERSISTENCE: u32 = 360;

/// A virtual service as configured (`-A`/`-E`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub key: ServiceKey,
    /// Scheduler name (`-s`), one of [`crate::sched::SCHEDULER_NAMES`].
    pub scheduler: String,
    /// Scheduler flags (`-b`).
    pub flags: SchedFlags,
    /// Persistence timeout in seconds (`-p`), `None` when not persistent.
    pub persistence: Option<u32>,
    /// Persistence granularity of an IPv4 or fwmark service (`-M`), 255.255.255.255 by default.
    pub netmask: Ipv4Addr,
    /// Persistence granularity of an IPv6 service (`-M` is a prefix length there), 1..=128,
    /// 128 by default; unused for IPv4 services.
    pub prefix6: u8,
    /// One-packet scheduling (`-o`), UDP and fwmark services only.
    pub one_packet: bool,
    /// SYN proxy (`-j enable`, DPVS's spelling): TCP connections are answered with SYN cookies
    /// and opened to a real server only after the client's handshake completes (NAT and
    /// FULLNAT dests; see `worker::synproxy`).
    pub synproxy: bool,
    /// Admission limits (`--conn-limit`, `--conn-rate`, `--src-rate`), none by default.
    pub limits: ServiceLimits,
    /// How FULLNAT dests learn the client's address (`--proxy-protocol`, `--toa`, `--uoa`).
    pub client_addr: ClientAddr,
}

/// PROXY protocol mode of a service (`--proxy-protocol`, DPVS's spelling): the header that goes
/// before the client's first bytes on FULLNAT connections (see `xmit::proxy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProxyProtocol {
    /// No header (the default).
    #[default]
    Disable,
    /// Version 1 (text), TCP only.
    V1,
    /// Version 2 (binary), TCP and UDP (every datagram).
    V2,
    /// Version 1; a version-1 header the client sent itself is passed on unchanged.
    V1Insecure,
    /// Version 2; a version-2 header the client sent itself is passed on unchanged.
    V2Insecure,
}

impl ProxyProtocol {
    /// Every mode, in the order of DPVS's names.
    pub const ALL: [ProxyProtocol; 5] = [
        ProxyProtocol::Disable,
        ProxyProtocol::V1,
        ProxyProtocol::V2,
        ProxyProtocol::V1Insecure,
        ProxyProtocol::V2Insecure,
    ];

    /// DPVS's name (`disable`, `v1`, `v2`, `v1-insecure`, `v2-insecure`).
    pub const fn name(self) -> &'static str {
        match self {
            ProxyProtocol::Disable => "disable",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
            ProxyProtocol::V1Insecure => "v1-insecure",
            ProxyProtocol::V2Insecure => "v2-insecure",
        }
    }

    /// The mode a name stands for (case-insensitive, as DPVS).
    pub fn from_name(s: &str) -> Option<ProxyProtocol> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
    }

    /// The header version sent: 1, 2, or `None` when disabled.
    pub const fn version(self) -> Option<u8> {
        match self {
            ProxyProtocol::Disable => None,
            ProxyProtocol::V1 | ProxyProtocol::V1Insecure => Some(1),
            ProxyProtocol::V2 | ProxyProtocol::V2Insecure => Some(2),
        }
    }

    /// A header of the same version the client sent is kept as it is.
    pub const fn insecure(self) -> bool {
        matches!(self, ProxyProtocol::V1Insecure | ProxyProtocol::V2Insecure)
    }
}

/// UDP Option of Address mode of a service (`--uoa`, after DPVS's `uoa_mode`): the client's
/// address in the first datagrams of a FULLNAT UDP connection (see `xmit::uoa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UoaMode {
    /// No UOA (the default: a server without DPVS's `uoa` module would not read it).
    #[default]
    Disable,
    /// The private "option protocol" (IP protocol 248) header before the UDP header.
    Opp,
    /// An IPv4 header option (type 0x9f).
    Ipo,
}

impl UoaMode {
    pub const ALL: [UoaMode; 3] = [UoaMode::Disable, UoaMode::Opp, UoaMode::Ipo];

    pub const fn name(self) -> &'static str {
        match self {
            UoaMode::Disable => "disable",
            UoaMode::Opp => "opp",
            UoaMode::Ipo => "ipo",
        }
    }

    pub fn from_name(s: &str) -> Option<UoaMode> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
    }
}

/// How a FULLNAT connection tells its real server who the client is. TCP: the PROXY header when
/// one is configured, else the TOA option unless `toa` is off. UDP: the PROXY v2 header when
/// configured, else UOA when configured, else nothing. NAT, DR and TUN dests see the client's
/// own address and get none of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    pub proxy: ProxyProtocol,
    /// The TOA option on TCP (rvs's `--toa enable|disable`; on by default, as DPVS).
    pub toa: bool,
    pub uoa: UoaMode,
}

impl Default for ClientAddr {
    fn default() -> Self {
        ClientAddr {
            proxy: ProxyProtocol::Disable,
            toa: true,
            uoa: UoaMode::Disable,
        }
    }
}

impl ClientAddr {
    /// Whether a service of `protocol` can carry this (PROXY v1 is TCP only).
    pub fn check(&self, protocol: Option<Protocol>) -> Result<(), &'static str> {
        if self.proxy.version() == Some(1) && protocol == Some(Protocol::Udp) {
            return Err("PROXY protocol version 1 carries TCP only");
        }
        Ok(())
    }
}

impl ServiceConfig {
    /// A non-persistent service with no flags.
    pub fn new(key: ServiceKey, scheduler: &str) -> ServiceConfig {
        ServiceConfig {
            key,
            scheduler: scheduler.to_owned(),
            flags: SchedFlags::NONE,
            persistence: None,
            netmask: Ipv4Addr::BROADCAST,
            prefix6: 128,
            one_packet: false,
            synproxy: false,
            limits: ServiceLimits::default(),
            client_addr: ClientAddr::default(),
        }
    }
}

/// A dest as configured (`-a`/`-e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestConfig {
    /// The real server's address: the service's family, or IPv4 under an IPv6 service for a
    /// FULLNAT dest (NAT64).
    pub addr: IpAddr,
    pub port: u16,
    pub method: ForwardMethod,
    /// 0..=65535; 0 quiesces the dest (no new connections).
    pub weight: u32,
    /// `-x`: 0 = no upper threshold.
    pub upper_threshold: u32,
    /// `-y`: 0 = no lower threshold (then 3/4 of the upper one applies, IPVS §1.5).
    pub lower_threshold: u32,
}

impl DestConfig {
    /// Weight 1, no thresholds.
    pub fn new(addr: impl Into<IpAddr>, port: u16, method: ForwardMethod) -> DestConfig {
        DestConfig {
            addr: addr.into(),
            port,
            method,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }
}

/// The errno IPVS would have returned; the daemon maps it onto its protocol and ipvsadm renders
/// it with `ipvs_strerror` (docs/ipvsadm-compat.md section 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Errno {
    /// EEXIST: "Service already exists" / "Destination already exists".
    Exist,
    /// ESRCH: "No such service" / "Service not defined".
    Srch,
    /// ENOENT: "No such destination" / "Scheduler or persistence engine not found".
    NoEnt,
    /// EINVAL: "Invalid operation. ...".
    Inval,
    /// ENOMEM: "Memory allocation problem".
    NoMem,
    /// ERANGE: a lower threshold above the upper one. libipvs has no text of its own for it, so
    /// ipvsadm prints `strerror(ERANGE)`: "Numerical result out of range".
    Range,
    /// EAFNOSUPPORT: a dest of another address family than its service (except a FULLNAT
    /// IPv4 dest of an IPv6 service); ipvsadm prints "Operation not supported with specified
    /// address family".
    AfNoSupport,
}

impl Errno {
    /// The Linux errno number.
    pub const fn raw(self) -> i32 {
        match self {
            Errno::Exist => 17,
            Errno::Srch => 3,
            Errno::NoEnt => 2,
            Errno::Inval => 22,
            Errno::NoMem => 12,
            Errno::Range => 34,
            Errno::AfNoSupport => 97,
        }
    }
}

/// Why a [`ServiceTable`] operation was refused. The table is unchanged after any error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("service {0} already exists")]
    ServiceExists(ServiceKey),
    #[error("no such service {0}")]
    NoSuchService(ServiceKey),
    #[error("destination {} already exists in service {service}", AddrPort(*addr, *port))]
    DestExists {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    #[error("no destination {} in service {service}", AddrPort(*addr, *port))]
    NoSuchDest {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    /// A dest of another family than its service, other than NAT64 (an IPv4 FULLNAT dest of
    /// an IPv6 service); or an IPv6 address where only IPv4 can be.
    #[error("{0}")]
    Family(&'static str),
    #[error("{0}")]
    UnknownScheduler(#[from] crate::sched::UnknownScheduler),
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    #[error("identifier space exhausted; restart the daemon")]
    IdsExhausted,
    /// `-y` above `-x`: IPVS (`ip_vs_add_dest`/`ip_vs_edit_dest`) refuses `l_threshold >
    /// u_threshold` with ERANGE, also when the upper threshold is 0 (none).
    #[error("lower threshold {lower} is higher than upper threshold {upper}")]
    ThresholdOrder { lower: u32, upper: u32 },
    /// An access-list entry already there (add) or not there (delete).
    #[error("{0}")]
    List(#[from] access::ListError),
}

impl ServiceError {
    /// The IPVS errno this error corresponds to.
    pub const fn errno(&self) -> Errno {
        match self {
            ServiceError::ServiceExists(_) | ServiceError::DestExists { .. } => Errno::Exist,
            ServiceError::NoSuchService(_) => Errno::Srch,
            ServiceError::NoSuchDest { .. } | ServiceError::UnknownScheduler(_) => Errno::NoEnt,
            ServiceError::Invalid(_) => Errno::Inval,
            ServiceError::IdsExhausted => Errno::NoMem,
            ServiceError::ThresholdOrder { .. } => Errno::Range,
            ServiceError::Family(_) => Errno::AfNoSupport,
            ServiceError::List(access::ListError::Exists(_)) => Errno::Exist,
            ServiceError::List(access::ListError::Missing(_)) => Errno::NoEnt,
            ServiceError::List(access::ListError::Full) => Errno::NoMem,
        }
    }
}
