//! Control protocol: one JSON object per line over a Unix stream socket.
//!
//! A client sends [`Envelope`]s, the daemon answers each with exactly one reply line, and never
//! closes the connection on a bad request.
//!
//! Versions and skew. An envelope names the protocol version its client speaks. The daemon
//! answers every version from [`MIN_PROTOCOL_VERSION`] up: a version-1 envelope gets a bare
//! [`Reply`] (exactly what version-1 clients read), a later one a [`ReplyEnvelope`] carrying the
//! version the daemon answered in (never above its own [`PROTOCOL_VERSION`]). Compatibility rules,
//! checked against the recorded version-1 exchanges in `ctl/tests/fixtures/protocol-v1.txt`:
//! - nothing is removed or renamed: requests, replies, fields and enum values stay as they are;
//! - new fields are optional: a missing field takes its `#[serde(default)]`;
//! - a reply field a client does not know is ignored (a newer daemon may say more), but a request
//!   field the daemon does not know is refused with `Einval` naming it ([`unknown_field`]): a
//!   field is something the client asked for, and silently dropping it would do less than was
//!   asked (a misspelt `l_threshold`, an option of a newer protocol). Requests and replies share
//!   types (`DestSpec` is in both), so this is checked on the request line, not with
//!   `deny_unknown_fields`;
//! - a new request is answered by an older daemon with [`Errno::Eopnotsupp`] and a message
//!   naming it; [`Request::Hello`] tells a client the daemon's versions and every request it
//!   supports, and [`crate::client::Client`] falls back to version 1 against a version-1 daemon.
//!
//! Errors carry an errno-like [`Errno`] so `ipvsadm` can print exactly what ipvsadm 1.31 prints
//! for the kernel's answer (`ipvs_strerror` depends on the command as well as the errno).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Version of the wire protocol spoken by this crate. 2 added [`ReplyEnvelope`] and
/// [`Request::Hello`].
pub const PROTOCOL_VERSION: u32 = 2;

/// Oldest protocol version a daemon of this crate still answers.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// Default control socket path (docs/architecture.md section 5); env `RVS_SOCKET` overrides it.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// Environment variable naming the control socket.
pub const SOCKET_ENV: &str = "RVS_SOCKET";

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub request: Request,
}

/// One reply line to an envelope of version 2 or later: the reply, and the protocol version the
/// daemon answered in. (Version-1 envelopes get the bare [`Reply`].)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyEnvelope {
    pub version: u32,
    pub reply: Reply,
}

/// Read one reply line in either framing: `(Some(version), reply)` for a [`ReplyEnvelope`],
/// `(None, reply)` for a bare version-1 [`Reply`].
pub fn parse_reply_line(line: &str) -> Result<(Option<u32>, Reply), serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(line)?;
    if value.get("reply").is_some() {
        let env: ReplyEnvelope = serde_json::from_value(value)?;
        Ok((Some(env.version), env.reply))
    } else {
        Ok((None, serde_json::from_value(value)?))
    }
}

impl Envelope {
    pub fn new(request: Request) -> Self {
        Envelope {
            version: PROTOCOL_VERSION,
            request,
        }
    }
}

/// Transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// Name as ipvsadm prints it in listings (`TCP`, `UDP`, `SCTP`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// Which virtual service: a protocol/address/port triple, or a firewall mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKey {
    Inet {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    Fwmark {
        mark: u32,
        ipv6: bool,
    },
}

/// Forwarding method of a dest (ipvsadm `-m`, `-g`, `-i`, DPVS `--fullnat`; `Local` is set by
/// the kernel for a local RS and cannot be asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    Masq,
    Local,
    Tunnel,
    Route,
    FullNat,
}

impl Forward {
    /// The Forward column of `ipvsadm -L`.
    pub fn name(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Local => "Local",
            Forward::Tunnel => "Tunnel",
            Forward::Route => "Route",
            Forward::FullNat => "FullNat",
        }
    }
}

/// Tunnel encapsulation type (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

/// Tunnel checksum option (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunCsum {
    #[default]
    NoCsum,
    Csum,
    RemCsum,
}

/// Tunnel parameters of a `Tunnel` dest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TunSpec {
    pub tun_type: TunType,
    /// GUE port (`--tun-port`), 0 when unset.
    pub port: u16,
    pub csum: TunCsum,
}

/// Everything `-A`/`-E` set on a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    /// Scheduler name (`-s`), `wlc` by default.
    #[serde(default = "default_scheduler")]
    pub scheduler: String,
    /// Scheduler flags (`-b`), e.g. `["sh-fallback", "sh-port"]`. `ipvsadm` sends them validated
    /// and in canonical order (`flag-1`/`sh-fallback`/`mh-fallback` = IPVS SCHED1,
    /// `flag-2`/`sh-port`/`mh-port` = SCHED2, `flag-3` = SCHED3), without duplicates.
    #[serde(default)]
    pub sched_flags: Vec<String>,
    /// Persistence timeout in seconds (`-p`), `None` when not persistent.
    #[serde(default)]
    pub persistent: Option<u32>,
    /// Persistence netmask (`-M`), as IPVS keeps it: for IPv4 the mask itself (host byte order,
    /// `0xffff_ffff` by default), for IPv6 the prefix length (128 by default).
    #[serde(default = "default_netmask")]
    pub netmask: u32,
    /// Persistence engine (`--pe`).
    #[serde(default)]
    pub pe: Option<String>,
    /// One-packet scheduling (`-o`).
    #[serde(default)]
    pub ops: bool,
    /// SYN proxy (`-j enable|disable`, DPVS's spelling). Left out when off, so what older
    /// clients and recorded exchanges carry is unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub synproxy: bool,
    /// Admission limits (rvs's `--conn-limit`, `--conn-rate`, `--src-rate`, `--src-prefix`);
    /// all 0 (none) by default. Not written when none is set, so what version-1 peers exchanged
    /// encodes as before.
    #[serde(default, skip_serializing_if = "Limits::is_none")]
    pub limits: Limits,
    /// How FULLNAT dests learn the client's address (`--proxy-protocol`, `--toa`, `--uoa`).
    /// Not written when it is the default (TOA only), as for the limits.
    #[serde(default, skip_serializing_if = "ClientAddr::is_default")]
    pub client_addr: ClientAddr,
}

/// PROXY protocol mode (`--proxy-protocol`, DPVS's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyProtocol {
    #[default]
    Disable,
    V1,
    V2,
    V1Insecure,
    V2Insecure,
}

impl ProxyProtocol {
    pub const ALL: [ProxyProtocol; 5] = [
        ProxyProtocol::Disable,
        ProxyProtocol::V1,
        ProxyProtocol::V2,
        ProxyProtocol::V1Insecure,
        ProxyProtocol::V2Insecure,
    ];

    /// DPVS's name.
    pub const fn name(self) -> &'static str {
        match self {
            ProxyProtocol::Disable => "disable",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
            ProxyProtocol::V1Insecure => "v1-insecure",
            ProxyProtocol::V2Insecure => "v2-insecure",
        }
    }

    /// The mode a name stands for, case-insensitive (as DPVS's `strcasecmp`).
    pub fn from_name(s: &str) -> Option<ProxyProtocol> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
    }
}

/// UOA mode (`--uoa`, after DPVS's `uoa_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UoaMode {
    #[default]
    Disable,
    Opp,
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

fn default_true() -> bool {
    true
}

/// How a service's FULLNAT dests learn the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientAddr {
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    /// The TOA option on TCP (on by default).
    #[serde(default = "default_true")]
    pub toa: bool,
    #[serde(default)]
    pub uoa: UoaMode,
}

impl Default for ClientAddr {
    fn default() -> Self {
        ClientAddr {
            proxy_protocol: ProxyProtocol::Disable,
            toa: true,
            uoa: UoaMode::Disable,
        }
    }
}

impl ClientAddr {
    pub fn is_default(&self) -> bool {
        *self == ClientAddr::default()
    }
}

/// Admission limits of a service; 0 means "no limit" everywhere. A burst of 0 is one second's
/// worth of the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Most connections at once (`--conn-limit N`).
    pub conn_limit: u32,
    /// New connections per second to the service (`--conn-rate RATE[:BURST]`).
    pub conn_rate: u32,
    pub conn_burst: u32,
    /// New connections per second from one source prefix (`--src-rate RATE[:BURST]`).
    pub src_rate: u32,
    pub src_burst: u32,
    /// Length of that source prefix (`--src-prefix LEN`, 0 or 32 = one address).
    pub src_prefix: u8,
}

impl Limits {
    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        self.conn_limit != 0 || self.conn_rate != 0 || self.src_rate != 0
    }

    /// Whether every field is 0 (nothing to write).
    pub fn is_none(&self) -> bool {
        *self == Limits::default()
    }
}

/// A service's access lists (DPVS's blacklist and whitelist), entries as `ADDR` or
/// `ADDR/LEN`, in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessInfo {
    pub deny: Vec<String>,
    pub allow: Vec<String>,
}

impl AccessInfo {
    /// Both lists empty.
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.allow.is_empty()
    }
}

/// Which access list: `deny` (DPVS blacklist, `ipvsadm -U/-V -k`) or `allow` (whitelist,
/// `-O/-Y -2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessList {
    Deny,
    Allow,
}

fn default_scheduler() -> String {
    "wlc".to_owned()
}

fn default_netmask() -> u32 {
    0xffff_ffff
}

fn default_weight() -> u32 {
    1
}

/// Everything `-a`/`-e` set on a dest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSpec {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub u_threshold: u32,
    #[serde(default)]
    pub l_threshold: u32,
    #[serde(default)]
    pub tun: TunSpec,
}

/// Traffic counters, as IPVS keeps them per service and per dest (64-bit, as netlink's STATS64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Rates from the IPVS estimator (per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A dest as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestInfo {
    pub spec: DestSpec,
    #[serde(default)]
    pub active_conns: u32,
    #[serde(default)]
    pub inact_conns: u32,
    #[serde(default)]
    pub persist_conns: u32,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub rates: Rates,
}

/// A service as listed, with its dests in the daemon's (insertion) order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub spec: ServiceSpec,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub rates: Rates,
    #[serde(default)]
    pub dests: Vec<DestInfo>,
    /// Deny and allow lists (not written when both are empty).
    #[serde(default, skip_serializing_if = "AccessInfo::is_empty")]
    pub access: AccessInfo,
    /// New connections the service refused, by drop reason (`acl_denied`, `acl_not_allowed`,
    /// `svc_conn_limit`, `svc_rate_limited`, `src_rate_limited`, `rip_source`); reasons with
    /// none are left out.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub refused: std::collections::BTreeMap<String, u64>,
}

/// One connection (or persistence template) as `ipvsadm -Lc` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    /// `TCP`, `UDP`, `SCTP`, `ICMP`, or `IP` for fwmark templates.
    pub protocol: String,
    /// Seconds until the connection expires.
    pub expire_secs: u32,
    /// State name (`ESTABLISHED`, `UDP`, `NONE` ...).
    pub state: String,
    pub client: (IpAddr, u16),
    pub virt: (IpAddr, u16),
    pub dest: (IpAddr, u16),
    #[serde(default)]
    pub pe_name: Option<String>,
    #[serde(default)]
    pub pe_data: Option<String>,
}

/// Connection timeouts in seconds (`--set tcp tcpfin udp`); in a request, 0 (or a missing
/// field) leaves that value unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcpfin: u32,
    pub udp: u32,
}

/// Requests a client may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// What the daemon speaks (protocol 2): answered with [`Reply::Hello`]. A version-1 daemon
    /// answers it with an error (`bad request: unknown variant`).
    Hello,
    /// Version and connection table size (`IP Virtual Server version ... (size=N)`).
    GetInfo,
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DelService(ServiceKey),
    /// Remove every service (`-C`).
    Clear,
    AddDest {
        service: ServiceKey,
        dest: DestSpec,
    },
    EditDest {
        service: ServiceKey,
        dest: DestSpec,
    },
    DelDest {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    /// All services, or the one named (then `Esrch` if it does not exist). Services come in the
    /// daemon's order; `ipvsadm` sorts them itself unless `--nosort`.
    ListServices {
        service: Option<ServiceKey>,
    },
    ListConns,
    /// Zero counters of one service or all (`-Z`).
    Zero {
        service: Option<ServiceKey>,
    },
    /// Set timeouts; a 0 leaves that value unchanged.
    SetTimeouts(Timeouts),
    GetTimeouts,
    /// Add a FULLNAT local address to a service (DPVS `ipvsadm --add-laddr -t VIP:PORT -z LIP
    /// -F IFNAME`). Errors: `Esrch` no such service, `Eexist` the address is already there.
    AddLaddr {
        service: ServiceKey,
        laddr: LaddrSpec,
    },
    /// Remove a FULLNAT local address (DPVS `--del-laddr`). Errors: `Esrch` no such service,
    /// `Enoent` no such local address on it.
    DelLaddr {
        service: ServiceKey,
        laddr: LaddrSpec,
    },
    /// Local addresses of one service or of every service (DPVS `--get-laddr`); answered with
    /// [`Reply::Laddrs`] (services without local addresses may be left out). `Esrch` when the
    /// named service does not exist.
    ListLaddrs {
        service: Option<ServiceKey>,
    },
    // ---- rvsctl: the DPDK-owned ports (what `ip`/`dpip` do); see [`crate::rvsctl`] ----
    /// Every port with its facts, link state and counters; answered with [`Reply::Links`].
    ListLinks,
    /// Own an address on a port (its connected route comes with it). `Eexist` already owned,
    /// `Enoent` no such port, `Einval` a VIP/LIP or a bad prefix.
    AddAddr(AddrSpec),
    /// Stop owning an address. `Enoent` when it is not owned on that port.
    DelAddr(AddrSpec),
    /// Owned addresses and FULLNAT local addresses; answered with [`Reply::Addrs`].
    ListAddrs,
    /// Add a static route. `Eexist` a route to that prefix exists, `Enoent` no such port,
    /// `Einval` bad prefix or a gateway off the port's connected networks.
    AddRoute(RouteSpec),
    /// Delete the static route to `prefix/len`. `Esrch` when there is none.
    DelRoute {
        prefix: IpAddr,
        len: u8,
    },
    /// Connected and static routes; answered with [`Reply::Routes`].
    ListRoutes,
    /// Every worker's neighbour entries (optionally of one port); answered with
    /// [`Reply::Neighs`].
    ListNeighs {
        port: Option<String>,
    },
    /// Forget the learned (non-permanent) entries of every worker, optionally of one port;
    /// answered with [`Reply::Flushed`].
    FlushNeighs {
        port: Option<String>,
    },
    /// Add (or replace) a static neighbour entry, installed in every worker.
    AddNeigh(NeighSpec),
    /// Delete a neighbour entry (static or learned) from every worker. `Enoent` when no worker
    /// and no static entry has it.
    DelNeigh {
        ip: IpAddr,
        port: String,
    },
    /// Per-worker load; answered with [`Reply::Workers`].
    ListWorkers,
    /// Append a firewall-mark classifier rule (`[[fwmark]]` at run time; ipvsadm's
    /// `--add-fwmark-rule`, `rvsctl fwmark add`). Adding a rule equal to an existing one is a
    /// no-op (`Ok`), so replaying a saved file twice is harmless. `Einval` for a bad rule.
    AddFwmarkRule(FwmarkRule),
    /// Remove the rule equal to this one. `Enoent` when there is none.
    DelFwmarkRule(FwmarkRule),
    /// The classifier rules in match order; answered with [`Reply::FwmarkRules`].
    ListFwmarkRules,
    /// Stop rvsd, as SIGTERM does; with `save_state`, a stop with state (as SIGUSR2: the
    /// connections go to the state file for the next rvsd). Answered with `Ok` just before the
    /// daemon stops; `Einval` with `save_state` when rvsd runs without `--state-file`.
    Stop {
        #[serde(default)]
        save_state: bool,
    },
    /// Add a source address or prefix (`ADDR` or `ADDR/LEN`) to a service's deny or allow list
    /// (DPVS `ipvsadm -U -k` / `-O -2`). `Esrch` no such service, `Eexist` already listed,
    /// `Einval` not an IPv4 address or prefix.
    AddAccess {
        service: ServiceKey,
        list: AccessList,
        entry: String,
    },
    /// Remove an entry, written as it was added (DPVS `-V -k` / `-Y -2`). `Esrch` no such
    /// service, `Enoent` not on the list.
    DelAccess {
        service: ServiceKey,
        list: AccessList,
        entry: String,
    },
    /// Read the configuration file again and apply what changed, as SIGHUP does. `Ok` when
    /// every change applied; `Einval` with the reason when the file was refused whole (nothing
    /// changed) or with the changes that were not applied (the others were).
    Reload,
}

/// A firewall-mark classifier rule: packets of `proto` to `dst` with a destination port in
/// `ports` get `mark` (first matching rule wins), and are scheduled by the `-f MARK` service.
/// The daemon answers with rules in canonical form (`dst` as `ADDR/LEN`, ports as written
/// sorted ranges `80,443,1000-2000`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwmarkRule {
    pub mark: u32,
    /// `tcp`, `udp` or `any`.
    pub proto: String,
    /// `ADDR` or `ADDR/LEN`.
    pub dst: String,
    /// `80,443`, `1000-2000`, both mixed; empty for all ports.
    #[serde(default)]
    pub ports: String,
}

/// An address on a port (`rvsctl addr add|del IP/LEN dev PORT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrSpec {
    pub port: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// A static route (`rvsctl route add PREFIX/LEN [via GW] dev PORT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub prefix: IpAddr,
    pub len: u8,
    #[serde(default)]
    pub via: Option<IpAddr>,
    pub port: String,
}

/// A static neighbour (`rvsctl neigh add IP lladdr MAC dev PORT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighSpec {
    pub ip: IpAddr,
    pub mac: [u8; 6],
    pub port: String,
}

/// Port counters as last sampled (every 100 ms) by the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub rx_nombuf: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

/// One DPDK port as `rvsctl link show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// Index (the dataplane's port id).
    pub index: u16,
    pub name: String,
    /// The `[[port]] device` string (PCI address or vdev).
    pub device: String,
    pub driver: String,
    pub mac: [u8; 6],
    pub mtu: u16,
    /// `None` when the state has not been sampled yet.
    #[serde(default)]
    pub up: Option<bool>,
    #[serde(default)]
    pub speed_mbps: u32,
    #[serde(default)]
    pub rx_queues: u16,
    #[serde(default)]
    pub tx_queues: u16,
    #[serde(default)]
    pub stats: Option<LinkStats>,
    /// The port's kernel twin (exception path), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelTwin>,
}

/// A port's kernel twin: the host interface that gets what rvs neither load-balances nor
/// answers, and whose frames go out of the port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelTwin {
    /// Interface name in the kernel.
    pub ifname: String,
    /// `tap` or `virtio_user`.
    pub driver: String,
    /// The DPDK device string.
    pub device: String,
    /// Addresses rvsd put on the interface (`A.B.C.D/LEN`).
    pub addrs: Vec<String>,
    /// Frames per second to the kernel, and the burst above it.
    pub rate: u32,
    pub burst: u32,
    pub stats: KernelTwinStats,
}

/// Counters of a kernel twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KernelTwinStats {
    /// Frames (bytes) handed to the kernel.
    pub to_kernel_packets: u64,
    pub to_kernel_bytes: u64,
    /// Frames (bytes) the kernel sent out of the port.
    pub from_kernel_packets: u64,
    pub from_kernel_bytes: u64,
    /// Frames for the kernel dropped: over the rate, worker ring full, device full.
    pub rate_limited: u64,
    pub ring_full: u64,
    pub kernel_full: u64,
    /// Frames from the kernel dropped because the ring to the port was full.
    pub egress_full: u64,
}

/// What an address is to the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddrKind {
    /// Owned (`[[addr]]`, `rvsctl addr add`): answered for, source of ARP/ICMP.
    Owned,
    /// FULLNAT local address (`ipvsadm --add-laddr`).
    Laddr,
}

/// Usage of a FULLNAT local address's port pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LaddrUsage {
    /// Local ports in use (one per connection).
    pub used: u64,
    /// Local ports left towards any one real server (`1024..=65535` minus `used`; ports are
    /// allocated per (LIP, RIP, rport), so this is a lower bound).
    pub free: u64,
    /// Allocations that found a port busy (DPVS's CONFLICTS).
    pub misses: u64,
    /// Services using the address.
    pub services: u32,
}

/// One address as `rvsctl addr show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrInfo {
    pub port: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub kind: AddrKind,
    #[serde(default)]
    pub laddr: Option<LaddrUsage>,
}

/// One route as `rvsctl route show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    pub prefix: IpAddr,
    pub len: u8,
    #[serde(default)]
    pub via: Option<IpAddr>,
    pub port: String,
    /// Implied by an owned address (iproute2's `proto kernel scope link`).
    #[serde(default)]
    pub connected: bool,
}

/// One neighbour entry of one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighEntry {
    pub worker: u32,
    pub port: String,
    pub ip: IpAddr,
    /// `None` while incomplete.
    #[serde(default)]
    pub mac: Option<[u8; 6]>,
    /// `INCOMPLETE`, `REACHABLE`, `STALE`, `PROBE`, `PERMANENT` (iproute2's NUD names).
    pub state: String,
    /// Packets waiting for resolution.
    #[serde(default)]
    pub queued: u32,
}

/// One worker as `rvsctl worker show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerInfo {
    pub id: u32,
    pub lcore: u32,
    /// Queue index this worker polls on every port (rx) and sends on (tx).
    pub queue: u16,
    pub ports: u16,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Busy polls / polls over a short window, in per mille.
    pub busy_permille: u32,
    pub redirects_sent: u64,
    pub redirects_received: u64,
    pub conns: u64,
    pub conn_capacity: u64,
    /// Packets the tx queue would not take after retries.
    pub tx_dropped: u64,
    /// Packets freed because the redirect ring to their owner was full.
    pub ring_overflows: u64,
    /// Multi-segment mbufs dropped before the dataplane.
    pub rx_chained: u64,
    /// Packets dropped by the dataplane, every reason (by reason: `/metrics`).
    pub drops: u64,
    /// Closing connections ended by a new SYN on the same client port.
    pub conn_reuses: u64,
}

/// A FULLNAT local address as given to `--add-laddr`/`--del-laddr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaddrSpec {
    pub addr: IpAddr,
    /// Interface (DPDK port name) the address lives on (`-F`).
    pub ifname: String,
}

/// A local address as listed by `--get-laddr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaddrInfo {
    pub spec: LaddrSpec,
    /// Times a local port was found in use when allocating (DPVS's CONFLICTS column).
    #[serde(default)]
    pub port_conflicts: u64,
    /// Connections currently using this local address.
    #[serde(default)]
    pub conns: u64,
}

/// The local addresses of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLaddrs {
    pub service: ServiceKey,
    pub laddrs: Vec<LaddrInfo>,
}

/// Errno-like error class, so clients can render the texts ipvsadm prints for each errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Errno {
    Eexist,
    Enoent,
    Esrch,
    Einval,
    Enomem,
    Eperm,
    Eafnosupport,
    /// Understood but not implemented by rvs (e.g. GUE/GRE tunnels); the message says what.
    Eopnotsupp,
    /// A value out of range: a lower threshold above the upper one, as IPVS answers it (protocol
    /// 2 on; a version-1 client, which does not know it, gets `Einval` with the same message).
    Erange,
}

/// A request that failed. The daemon's state is unchanged by a failed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub errno: Errno,
    /// Human detail: what was wrong, in the daemon's words.
    #[serde(default)]
    pub message: String,
}

/// Daemon facts for the `-L` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// IPVS version code emulated (0x010201 = 1.2.1).
    pub version_code: u32,
    /// Connection table size as shown in `(size=N)`.
    pub conn_tab_size: u32,
}

/// What a daemon speaks: the answer to [`Request::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The newest protocol version the daemon speaks.
    pub protocol_version: u32,
    /// The oldest protocol version it still answers.
    #[serde(default = "min_version_one")]
    pub min_protocol_version: u32,
    /// The daemon's own version (`rvsd --version`).
    #[serde(default)]
    pub daemon_version: String,
    /// Every request it understands, by wire name (`add_service`, ...).
    #[serde(default)]
    pub requests: Vec<String>,
}

fn min_version_one() -> u32 {
    1
}

impl Request {
    /// Every request of this protocol version, by wire name.
    pub const NAMES: &'static [&'static str] = &[
        "hello",
        "get_info",
        "add_service",
        "edit_service",
        "del_service",
        "clear",
        "add_dest",
        "edit_dest",
        "del_dest",
        "list_services",
        "list_conns",
        "zero",
        "set_timeouts",
        "get_timeouts",
        "add_laddr",
        "del_laddr",
        "list_laddrs",
        "list_links",
        "add_addr",
        "del_addr",
        "list_addrs",
        "add_route",
        "del_route",
        "list_routes",
        "list_neighs",
        "flush_neighs",
        "add_neigh",
        "del_neigh",
        "list_workers",
        "add_fwmark_rule",
        "del_fwmark_rule",
        "list_fwmark_rules",
        "stop",
        "reload",
        "add_access",
        "del_access",
    ];

    /// The wire name of this request (one of [`Request::NAMES`]).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Hello => "hello",
            Request::GetInfo => "get_info",
            Request::AddService(_) => "add_service",
            Request::EditService(_) => "edit_service",
            Request::DelService(_) => "del_service",
            Request::Clear => "clear",
            Request::AddDest { .. } => "add_dest",
            Request::EditDest { .. } => "edit_dest",
            Request::DelDest { .. } => "del_dest",
            Request::ListServices { .. } => "list_services",
            Request::ListConns => "list_conns",
            Request::Zero { .. } => "zero",
            Request::SetTimeouts(_) => "set_timeouts",
            Request::GetTimeouts => "get_timeouts",
            Request::AddLaddr { .. } => "add_laddr",
            Request::DelLaddr { .. } => "del_laddr",
            Request::ListLaddrs { .. } => "list_laddrs",
            Request::ListLinks => "list_links",
            Request::AddAddr(_) => "add_addr",
            Request::DelAddr(_) => "del_addr",
            Request::ListAddrs => "list_addrs",
            Request::AddRoute(_) => "add_route",
            Request::DelRoute { .. } => "del_route",
            Request::ListRoutes => "list_routes",
            Request::ListNeighs { .. } => "list_neighs",
            Request::FlushNeighs { .. } => "flush_neighs",
            Request::AddNeigh(_) => "add_neigh",
            Request::DelNeigh { .. } => "del_neigh",
            Request::ListWorkers => "list_workers",
            Request::AddFwmarkRule(_) => "add_fwmark_rule",
            Request::DelFwmarkRule(_) => "del_fwmark_rule",
            Request::ListFwmarkRules => "list_fwmark_rules",
            Request::Stop { .. } => "stop",
            Request::Reload => "reload",
            Request::AddAccess { .. } => "add_access",
            Request::DelAccess { .. } => "del_access",
        }
    }
}

/// The first field of a request line's JSON (`input`) that its parsed envelope does not have,
/// as a dotted path (`request.add_dest.dest.colour`): a field this protocol does not know. A
/// field counts as known when serialising `parsed` writes it, so every request type is covered
/// without a list to keep in step. Request types skip a field when serialised only where it
/// holds its default (`limits`), and such a field sent with its default value is accepted.
pub fn unknown_field(input: &serde_json::Value, parsed: &Envelope) -> Option<String> {
    let known = serde_json::to_value(parsed).ok()?;
    let mut path = Vec::new();
    first_extra(input, &known, &mut path)
}

fn first_extra(
    input: &serde_json::Value,
    known: &serde_json::Value,
    path: &mut Vec<String>,
) -> Option<String> {
    use serde_json::Value;
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => i.iter().find_map(|(key, v)| {
            path.push(key.clone());
            let found = match k.get(key) {
                // A field written only when it is not its default (`limits`) is known when the
                // client sent its default explicitly; inside such an object, what is not a
                // default is what the protocol does not know (`limits.colour`).
                None if is_default_value(v) => None,
                None if v.is_object() => {
                    first_extra(v, &serde_json::Value::Object(Default::default()), path)
                }
                None => Some(path.join(".")),
                Some(kv) => first_extra(v, kv, path),
            };
            path.pop();
            found
        }),
        (Value::Array(i), Value::Array(k)) => {
            i.iter().zip(k).enumerate().find_map(|(n, (v, kv))| {
                path.push(n.to_string());
                let found = first_extra(v, kv, path);
                path.pop();
                found
            })
        }
        _ => None,
    }
}

/// JSON that a skipped default field encodes to: null, false, 0, an empty array, or an object
/// of such values.
fn is_default_value(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_u64() == Some(0),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_default_value),
        Value::String(_) => false,
    }
}

/// The wire name of the request in a request line's JSON (`"clear"` or `{"add_dest": ...}`), if
/// it has one.
pub fn request_name(request: &serde_json::Value) -> Option<&str> {
    match request {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(o) if o.len() == 1 => o.keys().next().map(String::as_str),
        _ => None,
    }
}

/// The daemon's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok,
    Error(ErrorReply),
    Info(Info),
    Services(Vec<ServiceInfo>),
    Conns(Vec<ConnInfo>),
    Timeouts(Timeouts),
    /// Answer to [`Request::ListLaddrs`].
    Laddrs(Vec<ServiceLaddrs>),
    Links(Vec<LinkInfo>),
    Addrs(Vec<AddrInfo>),
    Routes(Vec<RouteInfo>),
    Neighs(Vec<NeighEntry>),
    /// Entries removed by [`Request::FlushNeighs`], over all workers.
    Flushed(u64),
    Workers(Vec<WorkerInfo>),
    /// Answer to [`Request::ListFwmarkRules`].
    FwmarkRules(Vec<FwmarkRule>),
    /// Answer to [`Request::Hello`].
    Hello(Hello),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_as_one_json_line() {
        let env = Envelope::new(Request::AddDest {
            service: ServiceKey::Inet {
                protocol: Protocol::Tcp,
                addr: "198.18.0.100".parse().unwrap(),
                port: 80,
            },
            dest: DestSpec {
                addr: "198.18.1.11".parse().unwrap(),
                port: 8080,
                forward: Forward::Masq,
                weight: 3,
                u_threshold: 0,
                l_threshold: 0,
                tun: TunSpec::default(),
            },
        });
        let line = serde_json::to_string(&env).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Envelope>(&line).unwrap(), env);
    }

    fn unknown(line: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let env: Envelope = serde_json::from_value(v.clone()).unwrap();
        unknown_field(&v, &env)
    }

    #[test]
    fn unknown_request_fields_are_found_and_named() {
        // Everything known, optional fields missing, unit and struct variants: nothing to name.
        for line in [
            r#"{"version":2,"request":"clear"}"#,
            r#"{"version":1,"request":{"list_services":{"service":null}}}"#,
            r#"{"version":2,"request":{"stop":{}}}"#,
            r#"{"version":2,"request":{"add_service":{"key":{"inet":{"protocol":"tcp","addr":"198.18.0.100","port":80}},"sched_flags":["sh-port"]}}}"#,
            r#"{"version":2,"request":{"add_neigh":{"ip":"198.18.1.1","mac":[2,0,0,0,0,1],"port":"dp0"}}}"#,
        ] {
            assert_eq!(unknown(line), None, "{line}");
        }
        let cases = [
            (
                r#"{"version":2,"request":{"add_dest":{"service":{"inet":{"protocol":"tcp","addr":"198.18.0.100","port":80}},"dest":{"addr":"198.18.1.11","port":80,"forward":"masq","lthreshold":5}}}}"#,
                "request.add_dest.dest.lthreshold",
            ),
            (r#"{"version":2,"client":"x","request":"clear"}"#, "client"),
            (
                r#"{"version":2,"request":{"add_service":{"key":{"fwmark":{"mark":1,"ipv6":false,"colour":1}}}}}"#,
                "request.add_service.key.fwmark.colour",
            ),
            (
                r#"{"version":2,"request":{"set_timeouts":{"tcp":1,"sctp":2}}}"#,
                "request.set_timeouts.sctp",
            ),
        ];
        for (line, path) in cases {
            assert_eq!(unknown(line).as_deref(), Some(path), "{line}");
        }
    }
}
