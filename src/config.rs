//! The TOML configuration file (README, "The configuration file"; samples in `conf/`) as typed,
//! validated values.
//!
//! Unknown keys are rejected, and every error names the file and the key (`port[1].device`), so
//! an operator can fix a bad file without guessing. Defaults run on a laptop: no hugepages, no
//! NIC, no shared EAL config files (`--no-shconf`), so several rvsd processes can coexist.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A configuration error, naming the file and the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },
}

fn invalid(file: &Path, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_owned(),
        key: key.into(),
        message: message.into(),
    }
}

/// The whole file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub dpdk: DpdkSection,
    #[serde(default, rename = "port")]
    pub ports: Vec<PortSection>,
    #[serde(default, rename = "addr")]
    pub addrs: Vec<AddrSection>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteSection>,
    #[serde(default, rename = "neigh")]
    pub neighs: Vec<NeighSection>,
    #[serde(default, rename = "fwmark")]
    pub fwmarks: Vec<FwmarkSection>,
    #[serde(default)]
    pub control: ControlSection,
    #[serde(default)]
    pub ipvs: IpvsSection,
    #[serde(default)]
    pub dataplane: DataplaneSection,
}

/// `[dpdk]`: EAL and cores.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpdkSection {
    /// lcores: the first runs the control plane, the rest are workers. EAL `-l` syntax
    /// (`0-4`, `0,2,4-5`), or `--lcores` syntax with a CPU per lcore (`0@0,1@1,2@0,3@1,4@1`,
    /// `1-4@1`) to run more workers than CPUs.
    #[serde(default = "default_cores")]
    pub cores: String,
    /// Extra EAL arguments.
    #[serde(default = "default_eal_args")]
    pub args: Vec<String>,
    /// Mbufs in the packet pool (shared by all ports and workers).
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
}

fn default_cores() -> String {
    "0-1".to_owned()
}

fn default_eal_args() -> Vec<String> {
    ["--no-huge", "-m", "512", "--no-shconf", "--no-telemetry"]
        .map(String::from)
        .to_vec()
}

fn default_mbufs() -> u32 {
    8191
}

impl Default for DpdkSection {
    fn default() -> Self {
        DpdkSection {
            cores: default_cores(),
            args: default_eal_args(),
            mbufs: default_mbufs(),
        }
    }
}

/// `[[port]]`: one DPDK port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    pub name: String,
    /// A PCI address (`0000:03:00.0`) or any DPDK vdev string (`net_af_packet0,iface=veth0`).
    pub device: String,
    /// rx/tx descriptors per queue.
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    /// Who sends to this port: `"clients"` or `"servers"`. With several workers and a device
    /// that can hash on one side of the tuple, RSS hashes the source (clients) or destination
    /// (servers) endpoint only, so the NIC delivers each flow to its owner worker.
    #[serde(default)]
    pub faces: Option<String>,
    /// `[port.kernel]`: a kernel twin of this port (the exception path).
    #[serde(default)]
    pub kernel: Option<KernelSection>,
}

/// `[port.kernel]` (or `kernel = {}` in the `[[port]]` table): a kernel network interface twin
/// of the port, carrying its MAC and the director's addresses; what rvs neither load-balances
/// nor answers goes to it, and what the kernel sends on it goes out of the port.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSection {
    /// Interface name; default: the port's name.
    #[serde(default)]
    pub name: Option<String>,
    /// `"tap"` (DPDK net_tap over /dev/net/tun, the default) or `"virtio_user"` (virtio-user
    /// with the vhost-net backend, /dev/vhost-net).
    #[serde(default)]
    pub driver: Option<String>,
    /// Addresses put on the interface (`"198.18.0.1/24"`); default: every `[[addr]]` of the
    /// port.
    #[serde(default)]
    pub addrs: Option<Vec<String>>,
    /// Frames per second handed to the kernel; above it they are dropped and counted.
    #[serde(default = "default_kernel_rate")]
    pub rate: u32,
    /// Burst allowed above the rate (token bucket depth, frames).
    #[serde(default = "default_kernel_burst")]
    pub burst: u32,
    /// Put each VIP on this interface as a /32 (an IPv6 VIP as a /128) while it is
    /// serviceable (a service on it has a dest with weight > 0), for a routing daemon (bird,
    /// FRR) to announce.
    #[serde(default)]
    pub announce: bool,
    /// With `announce`: on a clean stop, milliseconds rvsd keeps forwarding after taking the
    /// VIPs off, while the routers move the flows to other directors.
    #[serde(default = "default_withdraw_wait_ms")]
    pub withdraw_wait_ms: u32,
}

fn default_withdraw_wait_ms() -> u32 {
    1000
}

fn default_kernel_rate() -> u32 {
    20_000
}

fn default_kernel_burst() -> u32 {
    2_000
}

fn default_desc() -> u16 {
    1024
}

/// `[[addr]]`: an address the director owns, with its connected prefix (IPv4 or IPv6:
/// `"2001:2::1/64"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddrSection {
    pub port: String,
    pub ip: String,
}

/// `[[route]]`: a static route (IPv4 or IPv6; `via` of the same family).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub prefix: String,
    #[serde(default)]
    pub via: Option<String>,
    pub port: String,
}

/// `[[neigh]]`: a static neighbour (ARP, or Neighbour Discovery for an IPv6 address) entry, as
/// `ip neigh add ... nud permanent`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighSection {
    pub port: String,
    pub ip: String,
    pub mac: String,
}

/// `[[fwmark]]`: a classifier rule setting the mark `-f MARK` services match (what an iptables
/// `-t mangle ... -j MARK` rule does in front of IPVS). First match wins, in file order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FwmarkSection {
    pub mark: u32,
    /// `tcp`, `udp` or `any`.
    pub proto: String,
    /// Destination `ADDR` or `ADDR/LEN`.
    pub dst: String,
    /// Destination ports: `"80,443"`, `"1000-2000"`, both mixed; absent or empty = all ports.
    #[serde(default)]
    pub ports: String,
}

/// `[control]`: the control socket and the metrics endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    #[serde(default)]
    pub metrics: Option<String>,
    /// Control connections served at once; more are refused (each counted).
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
    /// A control connection that sends nothing, or reads no reply, this long is closed.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

fn default_socket() -> PathBuf {
    PathBuf::from(ctl::proto::DEFAULT_SOCKET)
}

fn default_max_connections() -> u64 {
    crate::control::server::DEFAULT_MAX_CONNECTIONS
}

fn default_idle_timeout_ms() -> u64 {
    crate::control::server::DEFAULT_IDLE_TIMEOUT_MS
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            socket: default_socket(),
            metrics: None,
            max_connections: default_max_connections(),
            idle_timeout_ms: default_idle_timeout_ms(),
        }
    }
}

/// `[ipvs]`: IPVS-level settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpvsSection {
    /// An `ipvsadm -S` file replayed at start (relative paths are relative to the working
    /// directory: `rules = "conf/nat.rules"`).
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// Timeouts per connection state in seconds, keyed by state name in lower case
    /// (`established`, `syn_recv`, `fin_wait`, `time_wait`, `close`, ..., and `udp`), as DPVS's
    /// configuration allows; unset states keep IPVS's defaults. `--set` changes three of them
    /// at run time.
    #[serde(default)]
    pub timeouts: std::collections::BTreeMap<String, u32>,
    /// IPVS's `net.ipv4.vs.sloppy_tcp`: a TCP packet other than a SYN (and not a RST) to a
    /// service may open a connection, so a director continues flows another one started.
    #[serde(default)]
    pub sloppy_tcp: bool,
}

/// `[dataplane]`: sizes of the per-worker tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneSection {
    /// Connections the director can hold, over all workers (split evenly between them).
    #[serde(default = "default_conn_capacity")]
    pub conn_capacity: u32,
    /// IPv6 connections the director can hold, over all workers (a separate table whose
    /// records are twice the size of IPv4's); by default a quarter of `conn_capacity`.
    #[serde(default)]
    pub conn_capacity_v6: Option<u32>,
    /// How a worker waits when a poll finds nothing: `"adaptive"` (the default: spin
    /// `idle_spin` empty polls, then sleep, from `idle_sleep_us` doubling up to
    /// `idle_sleep_max_us`, until a poll finds packets) or `"busy"` (never sleep, as DPDK
    /// applications usually do: lowest latency, one CPU per worker always at 100%).
    #[serde(default)]
    pub polling: Option<String>,
    /// Empty polls before an adaptive worker starts sleeping.
    #[serde(default = "default_idle_spin")]
    pub idle_spin: u32,
    /// The first (shortest) sleep of an idle worker, in microseconds; 0 means busy polling
    /// (what this key meant before `polling` existed).
    #[serde(default = "default_idle_sleep_us")]
    pub idle_sleep_us: u32,
    /// The longest sleep of an idle worker, in microseconds: the most a packet arriving at an
    /// idle director waits before it is polled.
    #[serde(default = "default_idle_sleep_max_us")]
    pub idle_sleep_max_us: u32,
    /// `[dataplane.neigh]`: each worker's neighbour table.
    #[serde(default)]
    pub neigh: NeighParamsSection,
    /// ICMP errors each worker may send per second (0: unlimited; Linux `icmp_msgs_per_sec`).
    pub icmp_errors_per_sec: Option<u32>,
    /// ICMP echo replies each worker may send per second (0: unlimited).
    pub icmp_echo_per_sec: Option<u32>,
    /// ICMP messages a worker may send at once after a quiet spell (Linux `icmp_msgs_burst`).
    pub icmp_burst: Option<u32>,
}

/// `[dataplane.neigh]`: sizes and timers of each worker's neighbour (ARP) table, named after
/// Linux's `net.ipv4.neigh.*` settings; every key is optional and defaults to Linux's value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighParamsSection {
    /// How long a confirmed entry is trusted (Linux `base_reachable_time_ms`).
    pub base_reachable_time_ms: Option<u64>,
    /// How long a used stale entry waits for a confirmation before it is probed.
    pub delay_first_probe_time_ms: Option<u64>,
    /// Interval between requests (Linux `retrans_time_ms`).
    pub retrans_time_ms: Option<u64>,
    /// Unused stale entries go after this long (Linux `gc_stale_time`, here in ms).
    pub gc_stale_time_ms: Option<u64>,
    /// Requests per resolution or re-probe before the neighbour fails (`mcast_solicit` /
    /// `ucast_solicit`).
    pub probes: Option<u8>,
    /// Frame bytes that may wait for one unresolved neighbour (Linux `unres_qlen_bytes`).
    pub unres_qlen_bytes: Option<u32>,
    /// Packets that may wait for resolution in one worker, over all neighbours.
    pub queued_packets: Option<u32>,
    /// Entries per worker.
    pub entries: Option<u32>,
}

fn default_idle_spin() -> u32 {
    200
}

fn default_idle_sleep_us() -> u32 {
    10
}

fn default_idle_sleep_max_us() -> u32 {
    1000
}

/// How workers wait when they find nothing to do (`[dataplane] polling` and the `idle_*`
/// keys), validated. Changed by a reload without a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleConf {
    /// Never sleep.
    pub busy: bool,
    /// Empty polls before the first sleep.
    pub spin: u32,
    /// First and longest sleep, microseconds (`min <= max`, both at least 1 unless busy).
    pub sleep_min_us: u32,
    pub sleep_max_us: u32,
}

impl Default for IdleConf {
    fn default() -> Self {
        IdleConf {
            busy: false,
            spin: default_idle_spin(),
            sleep_min_us: default_idle_sleep_us(),
            sleep_max_us: default_idle_sleep_max_us(),
        }
    }
}

fn default_conn_capacity() -> u32 {
    1 << 20
}

impl Default for DataplaneSection {
    fn default() -> Self {
        DataplaneSection {
            conn_capacity: default_conn_capacity(),
            conn_capacity_v6: None,
            polling: None,
            idle_spin: default_idle_spin(),
            idle_sleep_us: default_idle_sleep_us(),
            idle_sleep_max_us: default_idle_sleep_max_us(),
            neigh: NeighParamsSection::default(),
            icmp_errors_per_sec: None,
            icmp_echo_per_sec: None,
            icmp_burst: None,
        }
    }
}

/// An IPv4 prefix `addr/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Parse `198.18.0.1/24` (a bare address means /32).
pub fn parse_prefix(s: &str) -> Result<Prefix, String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => {
            let len: u8 = l
                .parse()
                .map_err(|_| format!("bad prefix length in {s:?}"))?;
            if len > 32 {
                return Err(format!("prefix length {len} is over 32 in {s:?}"));
            }
            (a, len)
        }
        None => (s, 32),
    };
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address"))?;
    Ok(Prefix { addr, len })
}

/// An IPv6 prefix `addr/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix6 {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl std::fmt::Display for Prefix6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Parse `2001:2::1/64` (a bare address means /128).
pub fn parse_prefix6(s: &str) -> Result<Prefix6, String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => {
            let len: u8 = l
                .parse()
                .map_err(|_| format!("bad prefix length in {s:?}"))?;
            if len > 128 {
                return Err(format!("prefix length {len} is over 128 in {s:?}"));
            }
            (a, len)
        }
        None => (s, 128),
    };
    let addr: Ipv6Addr = addr
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv6 address"))?;
    Ok(Prefix6 { addr, len })
}

/// An address written with a colon is IPv6 (`[[addr]]`, `[[route]]` and `[[neigh]]` take
/// either family).
fn is_v6_text(s: &str) -> bool {
    s.contains(':')
}

/// Parse an EAL core list such as `0-1`, `0,2,4-5` into lcore ids (in the given order, without
/// duplicates).
pub fn parse_cores(s: &str) -> Result<Vec<u32>, String> {
    Ok(parse_lcores(s)?.into_iter().map(|(l, _)| l).collect())
}

/// Parse `dpdk.cores`: entries `N`, `A-B`, `N@CPU` or `A-B@CPU` (EAL's `--lcores` form with one
/// CPU per entry; an entry without `@CPU` runs on the CPU of its number). Returns `(lcore,
/// cpu)` in the given order, without duplicate lcores.
pub fn parse_lcores(s: &str) -> Result<Vec<(u32, u32)>, String> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for entry in s.split(',').map(str::trim) {
        let (part, cpu) = match entry.split_once('@') {
            Some((l, c)) => {
                let c: u32 = c.trim().parse().map_err(|_| {
                    format!("{entry:?}: {c:?} is not a CPU number (LCORES@CPU, e.g. 2@0)")
                })?;
                if c >= 1024 {
                    return Err(format!("{entry:?}: CPU {c} out of range"));
                }
                (l.trim(), Some(c))
            }
            None => (entry, None),
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: u32 = lo
            .parse()
            .map_err(|_| format!("{part:?} is not a core number or range"))?;
        let hi: u32 = hi
            .parse()
            .map_err(|_| format!("{part:?} is not a core number or range"))?;
        if lo > hi || hi >= 1024 {
            return Err(format!("bad core range {part:?}"));
        }
        for c in lo..=hi {
            if !out.iter().any(|(l, _)| *l == c) {
                out.push((c, cpu.unwrap_or(c)));
            }
        }
    }
    Ok(out)
}

/// True for a PCI address (`0000:03:00.0` or `03:00.0`): opened with `-a`, anything else is a
/// vdev string opened with `--vdev`.
pub fn is_pci_address(device: &str) -> bool {
    let d = device.split(',').next().unwrap_or("");
    let parts: Vec<&str> = d.split(':').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let bdf = |bus: &str, devfn: &str| {
        hex(bus, 2)
            && devfn.split_once('.').is_some_and(|(dv, f)| {
                hex(dv, 2) && f.len() == 1 && f.chars().all(|c| c.is_digit(8))
            })
    };
    match parts.as_slice() {
        [domain, bus, devfn] => hex(domain, 4) && bdf(bus, devfn),
        [bus, devfn] => bdf(bus, devfn),
        _ => false,
    }
}

/// The DPDK device name of a port: the part of the device string before the first comma
/// (`net_af_packet0` for `net_af_packet0,iface=veth0`, the PCI address for a PCI device).
pub fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device).trim()
}

/// A validated port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConf {
    pub name: String,
    pub device: String,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub faces: Option<Faces>,
    /// The port's kernel twin, if it has one.
    pub kernel: Option<KernelConf>,
}

/// How a kernel twin is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwinDriver {
    /// DPDK `net_tap` (a TAP interface through /dev/net/tun).
    Tap,
    /// DPDK `virtio_user` with the vhost-net backend (/dev/vhost-net).
    VirtioUser,
}

impl TwinDriver {
    pub fn name(self) -> &'static str {
        match self {
            TwinDriver::Tap => "tap",
            TwinDriver::VirtioUser => "virtio_user",
        }
    }
}

/// A validated `[port.kernel]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConf {
    pub ifname: String,
    pub driver: TwinDriver,
    /// Addresses to put on the interface (resolved: the port's `[[addr]]` when not given).
    pub addrs: Vec<Prefix>,
    /// The IPv6 ones (IPv6 is turned on for the interface when there are any).
    pub addrs6: Vec<Prefix6>,
    pub rate: u32,
    pub burst: u32,
    /// Serviceable VIPs go on this twin as /32 addresses.
    pub announce: bool,
    /// Forwarding goes on this long after the VIPs are withdrawn at a clean stop.
    pub withdraw_wait_ms: u32,
    /// `addrs` was not given: the twin carries the port's owned addresses, also those added
    /// and removed at run time (`rvsctl addr add|del`).
    pub follows_owned: bool,
}

/// Who sends to a port ([`PortSection::faces`]): which end of the tuple RSS hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faces {
    /// Clients send here: hash the source endpoint.
    Clients,
    /// Real servers send here: hash the destination endpoint.
    Servers,
}

/// A validated owned address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrConf {
    /// Index into [`Validated::ports`].
    pub port: u16,
    pub prefix: Prefix,
}

/// A validated route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConf {
    pub prefix: Prefix,
    pub via: Option<Ipv4Addr>,
    pub port: u16,
}

/// A validated owned IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr6Conf {
    /// Index into [`Validated::ports`].
    pub port: u16,
    pub prefix: Prefix6,
}

/// A validated IPv6 route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route6Conf {
    pub prefix: Prefix6,
    pub via: Option<Ipv6Addr>,
    pub port: u16,
}

/// A validated static IPv6 neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neigh6Conf {
    pub port: u16,
    pub ip: Ipv6Addr,
    pub mac: [u8; 6],
}

/// A validated static neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighConf {
    pub port: u16,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// Parse `02:00:00:00:00:01`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!(
            "{s:?} is not a MAC address (six hex bytes separated by ':')"
        ));
    }
    for (b, p) in mac.iter_mut().zip(&parts) {
        *b = u8::from_str_radix(p, 16)
            .ok()
            .filter(|_| p.len() == 2)
            .ok_or_else(|| {
                format!("{s:?} is not a MAC address (six hex bytes separated by ':')")
            })?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!("{s:?} is a multicast MAC address"));
    }
    Ok(mac)
}

/// The configuration after validation: names resolved to indexes, addresses parsed.
#[derive(Debug, Clone)]
pub struct Validated {
    pub file: PathBuf,
    pub lcores: Vec<u32>,
    /// The CPU of each lcore, when `dpdk.cores` maps lcores to CPUs (`L@C`): EAL then gets
    /// `--lcores` instead of `-l`.
    pub lcore_cpus: Option<Vec<u32>>,
    pub eal_args: Vec<String>,
    pub mbufs: u32,
    pub ports: Vec<PortConf>,
    pub addrs: Vec<AddrConf>,
    pub routes: Vec<RouteConf>,
    pub neighs: Vec<NeighConf>,
    /// The IPv6 `[[addr]]`, `[[route]]` and `[[neigh]]` entries.
    pub addrs6: Vec<Addr6Conf>,
    pub routes6: Vec<Route6Conf>,
    pub neighs6: Vec<Neigh6Conf>,
    /// Firewall-mark classifier rules, in order.
    pub fwmarks: Vec<dataplane::fwmark::MarkRule>,
    pub socket: PathBuf,
    /// `[control] max_connections` and `idle_timeout_ms`.
    pub control_limits: crate::control::server::Limits,
    pub metrics: Option<SocketAddr>,
    pub rules: Option<PathBuf>,
    pub timeouts: dataplane::conn::Timeouts,
    pub conn_capacity: u32,
    /// `[dataplane] conn_capacity_v6` (a quarter of `conn_capacity` when not set).
    pub conn_capacity6: u32,
    /// `[dataplane] polling` and the idle keys.
    pub idle: IdleConf,
    /// `[dataplane.neigh]`, with Linux's defaults for what it leaves out.
    pub neigh: dataplane::l3::NeighConfig,
    /// `[dataplane] icmp_*`: the workers' ICMP budgets.
    pub icmp: dataplane::l3::ratelimit::IcmpLimits,
    /// `[ipvs] sloppy_tcp`.
    pub sloppy_tcp: bool,
}

impl Validated {
    /// Worker lcores: all configured lcores but the first.
    pub fn worker_lcores(&self) -> &[u32] {
        &self.lcores[1..]
    }
}

/// Read, parse and validate the file at `path`.
pub fn load(path: &Path) -> Result<Validated, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parse and validate `text`, read from `file` (named in errors).
pub fn parse(file: &Path, text: &str) -> Result<Validated, ConfigError> {
    let de = toml::Deserializer::new(text);
    let raw: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let span = e.inner().span();
        let key = match (key.as_str(), &span) {
            // A syntax error (a bad string, a number too large for TOML) has no path: name the
            // key written on the line it points at.
            (".", Some(span)) => key_at(text, span.start).unwrap_or_else(|| "(top level)".into()),
            (".", None) => "(top level)".to_owned(),
            _ => key,
        };
        let mut message = e.inner().message().trim().replace('\n', " ");
        if let Some(span) = span {
            let (line, column) = line_column(text, span.start);
            message.push_str(&format!(" (line {line}, column {column})"));
        }
        invalid(file, key, message)
    })?;
    validate(file, raw)
}

/// 1-based line and column (in characters) of byte offset `at` of `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The dotted key written on the line holding byte `at` (`dpdk.mbufs`, `port[1].device`), from
/// the table header above it, for errors the TOML parser reports without a path.
fn key_at(text: &str, at: usize) -> Option<String> {
    let (line_no, _) = line_column(text, at);
    let lines: Vec<&str> = text.lines().collect();
    let line = lines.get(line_no - 1)?.trim();
    let name = line.split_once('=')?.0.trim().trim_matches('"');
    if name.is_empty() || line.starts_with('[') {
        return None;
    }
    // The table the line is in, and for an array of tables, which element.
    let mut table = None;
    for l in lines[..line_no - 1].iter().rev() {
        let l = l.trim();
        if let Some(t) = l.strip_prefix("[[").and_then(|t| t.strip_suffix("]]")) {
            let t = t.trim();
            let index = lines[..line_no - 1]
                .iter()
                .filter(|x| {
                    x.trim()
                        .strip_prefix("[[")
                        .and_then(|x| x.strip_suffix("]]"))
                        .is_some_and(|x| x.trim() == t)
                })
                .count()
                - 1;
            table = Some(format!("{t}[{index}]"));
            break;
        }
        if let Some(t) = l.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            table = Some(t.trim().to_owned());
            break;
        }
    }
    Some(match table {
        Some(t) => format!("{t}.{name}"),
        None => name.to_owned(),
    })
}

fn validate(file: &Path, raw: Config) -> Result<Validated, ConfigError> {
    let mapped = parse_lcores(&raw.dpdk.cores).map_err(|m| invalid(file, "dpdk.cores", m))?;
    let lcores: Vec<u32> = mapped.iter().map(|(l, _)| *l).collect();
    let lcore_cpus = raw
        .dpdk
        .cores
        .contains('@')
        .then(|| mapped.iter().map(|(_, c)| *c).collect());
    if lcores.len() < 2 {
        return Err(invalid(
            file,
            "dpdk.cores",
            "need at least two lcores: the first runs the control plane, the rest are workers",
        ));
    }
    if raw.dpdk.mbufs < 1024 {
        return Err(invalid(
            file,
            "dpdk.mbufs",
            "at least 1024 mbufs are needed",
        ));
    }
    if raw.ports.is_empty() {
        return Err(invalid(file, "port", "at least one [[port]] is needed"));
    }
    let mut names = HashSet::new();
    let mut devices = HashSet::new();
    let mut ifnames = HashSet::new();
    let mut ports = Vec::new();
    for (i, p) in raw.ports.iter().enumerate() {
        if p.name.is_empty() || !names.insert(p.name.clone()) {
            return Err(invalid(
                file,
                format!("port[{i}].name"),
                format!("empty or duplicate port name {:?}", p.name),
            ));
        }
        let dev = device_name(&p.device);
        if dev.is_empty() || !devices.insert(dev.to_owned()) {
            return Err(invalid(
                file,
                format!("port[{i}].device"),
                format!("empty or duplicate device {:?}", p.device),
            ));
        }
        for (key, n) in [("rx_desc", p.rx_desc), ("tx_desc", p.tx_desc)] {
            if !(64..=8192).contains(&n) {
                return Err(invalid(
                    file,
                    format!("port[{i}].{key}"),
                    format!("{n} is outside 64..=8192"),
                ));
            }
        }
        let faces = match p.faces.as_deref() {
            None => None,
            Some("clients") => Some(Faces::Clients),
            Some("servers") => Some(Faces::Servers),
            Some(other) => {
                return Err(invalid(
                    file,
                    format!("port[{i}].faces"),
                    format!("{other:?} is neither \"clients\" nor \"servers\""),
                ));
            }
        };
        let kernel = match &p.kernel {
            None => None,
            Some(k) => Some(kernel_conf(file, i, p, k, &mut ifnames)?),
        };
        ports.push(PortConf {
            name: p.name.clone(),
            device: p.device.clone(),
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            faces,
            kernel,
        });
    }
    let port_index = |key: String, name: &str| -> Result<u16, ConfigError> {
        ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u16)
            .ok_or_else(|| invalid(file, key, format!("no [[port]] is named {name:?}")))
    };
    let mut addrs = Vec::new();
    let mut addrs6: Vec<Addr6Conf> = Vec::new();
    for (i, a) in raw.addrs.iter().enumerate() {
        let port = port_index(format!("addr[{i}].port"), &a.port)?;
        if is_v6_text(&a.ip) {
            let key = || format!("addr[{i}].ip");
            let prefix = parse_prefix6(&a.ip).map_err(|m| invalid(file, key(), m))?;
            let ip = prefix.addr;
            if ip.is_multicast() || ip.is_unspecified() || ip.is_loopback() {
                return Err(invalid(
                    file,
                    key(),
                    format!("{ip} is not a unicast address"),
                ));
            }
            if addrs6.iter().any(|o| o.prefix.addr == ip) {
                return Err(invalid(file, key(), format!("{ip} is configured twice")));
            }
            addrs6.push(Addr6Conf { port, prefix });
            continue;
        }
        let prefix = parse_prefix(&a.ip).map_err(|m| invalid(file, format!("addr[{i}].ip"), m))?;
        if addrs
            .iter()
            .any(|o: &AddrConf| o.prefix.addr == prefix.addr)
        {
            return Err(invalid(
                file,
                format!("addr[{i}].ip"),
                format!("{} is configured twice", prefix.addr),
            ));
        }
        addrs.push(AddrConf { port, prefix });
    }
    let mut routes = Vec::new();
    let mut routes6 = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let port = port_index(format!("route[{i}].port"), &r.port)?;
        if is_v6_text(&r.prefix) {
            let prefix = parse_prefix6(&r.prefix)
                .map_err(|m| invalid(file, format!("route[{i}].prefix"), m))?;
            let via = match &r.via {
                Some(v) => Some(v.parse::<Ipv6Addr>().map_err(|_| {
                    invalid(
                        file,
                        format!("route[{i}].via"),
                        format!("{v:?} is not an IPv6 address (the prefix is IPv6)"),
                    )
                })?),
                None => None,
            };
            routes6.push(Route6Conf { prefix, via, port });
            continue;
        }
        let prefix =
            parse_prefix(&r.prefix).map_err(|m| invalid(file, format!("route[{i}].prefix"), m))?;
        let via = match &r.via {
            Some(v) => Some(v.parse::<Ipv4Addr>().map_err(|_| {
                invalid(
                    file,
                    format!("route[{i}].via"),
                    format!("{v:?} is not an IPv4 address (the prefix is IPv4)"),
                )
            })?),
            None => None,
        };
        routes.push(RouteConf { prefix, via, port });
    }
    let mut neighs = Vec::new();
    let mut neighs6 = Vec::new();
    for (i, n) in raw.neighs.iter().enumerate() {
        let port = port_index(format!("neigh[{i}].port"), &n.port)?;
        if is_v6_text(&n.ip) {
            let ip = n.ip.parse::<Ipv6Addr>().map_err(|_| {
                invalid(
                    file,
                    format!("neigh[{i}].ip"),
                    format!("{:?} is not an IPv6 address", n.ip),
                )
            })?;
            let mac = parse_mac(&n.mac).map_err(|m| invalid(file, format!("neigh[{i}].mac"), m))?;
            neighs6.push(Neigh6Conf { port, ip, mac });
            continue;
        }
        let ip = n.ip.parse::<Ipv4Addr>().map_err(|_| {
            invalid(
                file,
                format!("neigh[{i}].ip"),
                format!("{:?} is not an IPv4 address", n.ip),
            )
        })?;
        let mac = parse_mac(&n.mac).map_err(|m| invalid(file, format!("neigh[{i}].mac"), m))?;
        neighs.push(NeighConf { port, ip, mac });
    }
    let mut fwmarks = Vec::new();
    for (i, f) in raw.fwmarks.iter().enumerate() {
        use dataplane::fwmark::{MarkRule, MarkRuleError};
        let rule = MarkRule::parse(f.mark, &f.proto, &f.dst, &f.ports).map_err(|e| {
            let key = match e {
                MarkRuleError::Mark => "mark",
                MarkRuleError::Proto(_) => "proto",
                MarkRuleError::Prefix(_) => "dst",
                MarkRuleError::Ports(_) => "ports",
            };
            invalid(file, format!("fwmark[{i}].{key}"), e.to_string())
        })?;
        fwmarks.push(rule);
    }
    let metrics = match &raw.control.metrics {
        Some(m) => Some(m.parse::<SocketAddr>().map_err(|_| {
            invalid(
                file,
                "control.metrics",
                format!("{m:?} is not an address:port"),
            )
        })?),
        None => None,
    };
    if raw.control.socket.as_os_str().is_empty() {
        return Err(invalid(file, "control.socket", "empty path"));
    }
    if raw.control.max_connections == 0 {
        return Err(invalid(file, "control.max_connections", "at least 1"));
    }
    if !(1..=86_400_000).contains(&raw.control.idle_timeout_ms) {
        return Err(invalid(
            file,
            "control.idle_timeout_ms",
            "1 to 86400000 (a day)",
        ));
    }
    let control_limits = crate::control::server::Limits {
        max_connections: raw.control.max_connections,
        idle_timeout: std::time::Duration::from_millis(raw.control.idle_timeout_ms),
    };
    let timeouts = parse_timeouts(file, &raw.ipvs.timeouts)?;
    if raw.dataplane.conn_capacity < 1024 {
        return Err(invalid(
            file,
            "dataplane.conn_capacity",
            "at least 1024 connections",
        ));
    }
    let conn_capacity6 = raw
        .dataplane
        .conn_capacity_v6
        .unwrap_or((raw.dataplane.conn_capacity / 4).max(1024));
    if conn_capacity6 < 1024 {
        return Err(invalid(
            file,
            "dataplane.conn_capacity_v6",
            "at least 1024 connections",
        ));
    }
    let neigh = neigh_params(file, &raw.dataplane.neigh)?;
    let icmp = icmp_limits(file, &raw.dataplane)?;
    let idle = idle_conf(file, &raw.dataplane)?;
    // A twin without `addrs` carries the port's owned addresses.
    for (i, p) in raw.ports.iter().enumerate() {
        if let (Some(k), Some(conf)) = (&p.kernel, ports[i].kernel.as_mut())
            && k.addrs.is_none()
        {
            conf.addrs = addrs
                .iter()
                .filter(|a| usize::from(a.port) == i)
                .map(|a| a.prefix)
                .collect();
            conf.addrs6 = addrs6
                .iter()
                .filter(|a| usize::from(a.port) == i)
                .map(|a| a.prefix)
                .collect();
        }
    }
    Ok(Validated {
        file: file.to_owned(),
        lcores,
        lcore_cpus,
        eal_args: raw.dpdk.args,
        mbufs: raw.dpdk.mbufs,
        ports,
        addrs,
        routes,
        neighs,
        addrs6,
        routes6,
        neighs6,
        fwmarks,
        socket: raw.control.socket,
        control_limits,
        metrics,
        rules: raw.ipvs.rules,
        timeouts,
        conn_capacity: raw.dataplane.conn_capacity,
        conn_capacity6,
        idle,
        neigh,
        icmp,
        sloppy_tcp: raw.ipvs.sloppy_tcp,
    })
}

/// `[dataplane.neigh]` -> the neighbour table's configuration; every value must be positive.
fn neigh_params(
    file: &Path,
    n: &NeighParamsSection,
) -> Result<dataplane::l3::NeighConfig, ConfigError> {
    use std::time::Duration;
    let mut c = dataplane::l3::NeighConfig::default();
    let positive = |key: &str, v: u64| {
        if v == 0 {
            Err(invalid(
                file,
                format!("dataplane.neigh.{key}"),
                "must be positive",
            ))
        } else {
            Ok(v)
        }
    };
    let ms = |key: &str, v: Option<u64>, d: &mut Duration| -> Result<(), ConfigError> {
        if let Some(v) = v {
            *d = Duration::from_millis(positive(key, v)?);
        }
        Ok(())
    };
    ms(
        "base_reachable_time_ms",
        n.base_reachable_time_ms,
        &mut c.reachable_time,
    )?;
    ms(
        "delay_first_probe_time_ms",
        n.delay_first_probe_time_ms,
        &mut c.delay_first_probe,
    )?;
    ms("retrans_time_ms", n.retrans_time_ms, &mut c.retrans_time)?;
    ms("gc_stale_time_ms", n.gc_stale_time_ms, &mut c.gc_stale_time)?;
    if let Some(v) = n.probes {
        c.max_probes = positive("probes", u64::from(v))? as u8;
    }
    if let Some(v) = n.unres_qlen_bytes {
        c.queue_bytes = positive("unres_qlen_bytes", u64::from(v))? as usize;
    }
    if let Some(v) = n.queued_packets {
        c.queue_total = v as usize;
    }
    if let Some(v) = n.entries {
        c.max_entries = positive("entries", u64::from(v))? as usize;
    }
    Ok(c)
}

/// `[dataplane] icmp_*` -> the workers' ICMP budgets (Linux's defaults for what is left out).
fn icmp_limits(
    file: &Path,
    d: &DataplaneSection,
) -> Result<dataplane::l3::ratelimit::IcmpLimits, ConfigError> {
    let mut l = dataplane::l3::ratelimit::IcmpLimits::default();
    if let Some(v) = d.icmp_errors_per_sec {
        l.errors_per_sec = v;
    }
    if let Some(v) = d.icmp_echo_per_sec {
        l.echo_per_sec = v;
    }
    if let Some(v) = d.icmp_burst {
        if v == 0 {
            return Err(invalid(file, "dataplane.icmp_burst", "must be positive"));
        }
        l.burst = v;
    }
    Ok(l)
}

/// Validate `port[i].kernel`.
fn kernel_conf(
    file: &Path,
    i: usize,
    p: &PortSection,
    k: &KernelSection,
    ifnames: &mut HashSet<String>,
) -> Result<KernelConf, ConfigError> {
    let key = |k: &str| format!("port[{i}].kernel.{k}");
    let ifname = k.name.clone().unwrap_or_else(|| p.name.clone());
    // The kernel's rules for a network interface name (dev_valid_name): 1..=15 bytes, no '/',
    // ':' or white space, not "." or "..".
    let valid = !ifname.is_empty()
        && ifname.len() <= 15
        && ifname != "."
        && ifname != ".."
        && !ifname
            .chars()
            .any(|c| c == '/' || c == ':' || c == ',' || c.is_whitespace() || !c.is_ascii());
    if !valid {
        return Err(invalid(
            file,
            key("name"),
            format!(
                "{ifname:?} is not a usable interface name (1 to 15 ASCII characters, none of / : , or space){}",
                if k.name.is_none() {
                    " (it defaults to the port's name: set kernel.name)"
                } else {
                    ""
                }
            ),
        ));
    }
    if !ifnames.insert(ifname.clone()) {
        return Err(invalid(
            file,
            key("name"),
            format!("interface {ifname:?} is already another port's twin"),
        ));
    }
    let driver = match k.driver.as_deref() {
        None | Some("tap") => TwinDriver::Tap,
        Some("virtio_user") => TwinDriver::VirtioUser,
        Some(other) => {
            return Err(invalid(
                file,
                key("driver"),
                format!("{other:?} is neither \"tap\" nor \"virtio_user\""),
            ));
        }
    };
    let mut addrs = Vec::new();
    let mut addrs6 = Vec::new();
    for (j, a) in k.addrs.iter().flatten().enumerate() {
        let bad = |m| invalid(file, format!("{}[{j}]", key("addrs")), m);
        if is_v6_text(a) {
            addrs6.push(parse_prefix6(a).map_err(bad)?);
        } else {
            addrs.push(parse_prefix(a).map_err(bad)?);
        }
    }
    if k.rate == 0 {
        return Err(invalid(file, key("rate"), "at least 1 frame per second"));
    }
    if k.burst == 0 {
        return Err(invalid(file, key("burst"), "at least 1 frame"));
    }
    Ok(KernelConf {
        ifname,
        driver,
        addrs,
        addrs6,
        rate: k.rate,
        burst: k.burst,
        announce: k.announce,
        withdraw_wait_ms: k.withdraw_wait_ms.min(60_000),
        follows_owned: k.addrs.is_none(),
    })
}

fn idle_conf(file: &Path, d: &DataplaneSection) -> Result<IdleConf, ConfigError> {
    let busy = match d.polling.as_deref() {
        None | Some("adaptive") => d.idle_sleep_us == 0,
        Some("busy") => true,
        Some(other) => {
            return Err(invalid(
                file,
                "dataplane.polling",
                format!("{other:?} is neither \"adaptive\" nor \"busy\""),
            ));
        }
    };
    const MAX_SLEEP_US: u32 = 100_000;
    if d.idle_sleep_max_us == 0 || d.idle_sleep_max_us > MAX_SLEEP_US {
        return Err(invalid(
            file,
            "dataplane.idle_sleep_max_us",
            format!("{} is outside 1..={MAX_SLEEP_US}", d.idle_sleep_max_us),
        ));
    }
    if d.idle_sleep_us > d.idle_sleep_max_us {
        return Err(invalid(
            file,
            "dataplane.idle_sleep_us",
            format!(
                "{} is above dataplane.idle_sleep_max_us ({})",
                d.idle_sleep_us, d.idle_sleep_max_us
            ),
        ));
    }
    Ok(IdleConf {
        busy,
        spin: d.idle_spin,
        sleep_min_us: d.idle_sleep_us.max(1),
        sleep_max_us: d.idle_sleep_max_us,
    })
}

fn parse_timeouts(
    file: &Path,
    raw: &std::collections::BTreeMap<String, u32>,
) -> Result<dataplane::conn::Timeouts, ConfigError> {
    use dataplane::conn::{MAX_TIMEOUT, TcpState, Timeouts};
    let mut t = Timeouts::default();
    for (name, &secs) in raw {
        let key = format!("ipvs.timeouts.{name}");
        if secs == 0 || secs > MAX_TIMEOUT {
            return Err(invalid(
                file,
                key,
                format!("{secs} is outside 1..={MAX_TIMEOUT} seconds"),
            ));
        }
        if name == "udp" {
            t.udp = secs;
            continue;
        }
        let state = TcpState::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name));
        let Some(state) = state else {
            let names: Vec<String> = TcpState::ALL
                .iter()
                .map(|s| s.name().to_ascii_lowercase())
                .collect();
            return Err(invalid(
                file,
                key,
                format!("unknown state, expected one of {}, udp", names.join(", ")),
            ));
        };
        t.set_tcp_state(state, secs)
            .map_err(|e| invalid(file, format!("ipvs.timeouts.{name}"), e.to_string()))?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[dpdk]
cores = "0-1"
args  = ["--no-huge", "-m", "512"]

[[port]]
name   = "dp0"
device = "net_af_packet0,iface=veth-d0"

[[port]]
name   = "dp1"
device = "0000:03:00.0"

[[addr]]
port = "dp0"
ip   = "198.18.0.1/24"

[[route]]
prefix = "0.0.0.0/0"
via    = "198.18.0.254"
port   = "dp0"

[control]
socket  = "/run/rvs/rvsd.sock"
metrics = "127.0.0.1:9475"

[ipvs]
rules = "conf/demo.rules"
"#;

    fn err(text: &str) -> String {
        parse(Path::new("t.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn ipv6_addresses_routes_and_neighbours() {
        let text = format!(
            "{GOOD}\n[[addr]]\nport = \"dp0\"\nip = \"2001:2::1/64\"\n\
             [[addr]]\nport = \"dp1\"\nip = \"2001:2:0:1::1\"\n\
             [[route]]\nprefix = \"::/0\"\nvia = \"2001:2::fe\"\nport = \"dp0\"\n\
             [[neigh]]\nport = \"dp0\"\nip = \"2001:2::fe\"\nmac = \"02:00:00:00:00:fe\"\n"
        );
        let v = parse(Path::new("t.toml"), &text).unwrap();
        assert_eq!(v.addrs.len(), 1, "IPv4 entries unchanged");
        assert_eq!(v.routes.len(), 1);
        assert_eq!(
            v.addrs6,
            vec![
                Addr6Conf {
                    port: 0,
                    prefix: parse_prefix6("2001:2::1/64").unwrap()
                },
                Addr6Conf {
                    port: 1,
                    prefix: parse_prefix6("2001:2:0:1::1/128").unwrap()
                },
            ]
        );
        assert_eq!(
            v.routes6,
            vec![Route6Conf {
                prefix: parse_prefix6("::/0").unwrap(),
                via: Some("2001:2::fe".parse().unwrap()),
                port: 0,
            }]
        );
        assert_eq!(
            v.neighs6,
            vec![Neigh6Conf {
                port: 0,
                ip: "2001:2::fe".parse().unwrap(),
                mac: [2, 0, 0, 0, 0, 0xfe],
            }]
        );
    }

    #[test]
    fn bad_ipv6_entries_name_file_and_key() {
        let with = |extra: &str| err(&format!("{GOOD}\n{extra}"));
        let e = with("[[addr]]\nport = \"dp0\"\nip = \"2001:2::zz/64\"\n");
        assert!(e.starts_with("t.toml: addr[1].ip: "), "{e}");
        assert!(e.contains("not an IPv6 address"), "{e}");
        let e = with("[[addr]]\nport = \"dp0\"\nip = \"2001:2::1/129\"\n");
        assert!(e.starts_with("t.toml: addr[1].ip: "), "{e}");
        assert!(e.contains("over 128"), "{e}");
        let e = with("[[addr]]\nport = \"dp0\"\nip = \"ff02::1/64\"\n");
        assert!(
            e.contains("addr[1].ip: ff02::1 is not a unicast address"),
            "{e}"
        );
        let e = with(
            "[[addr]]\nport = \"dp0\"\nip = \"2001:2::1/64\"\n\
             [[addr]]\nport = \"dp1\"\nip = \"2001:2::1/64\"\n",
        );
        assert!(e.starts_with("t.toml: addr[2].ip: "), "{e}");
        assert!(e.contains("configured twice"), "{e}");
        let e =
            with("[[route]]\nprefix = \"2001:2:1::/48\"\nvia = \"198.18.0.9\"\nport = \"dp0\"\n");
        assert!(e.starts_with("t.toml: route[1].via: "), "{e}");
        let e = with("[[route]]\nprefix = \"2001:2:1::/48\"\nport = \"nope\"\n");
        assert!(e.starts_with("t.toml: route[1].port: "), "{e}");
        let e =
            with("[[neigh]]\nport = \"dp0\"\nip = \"2001:2::g\"\nmac = \"02:00:00:00:00:01\"\n");
        assert!(e.starts_with("t.toml: neigh[0].ip: "), "{e}");
    }

    #[test]
    fn design_example_parses() {
        let v = parse(Path::new("t.toml"), GOOD).unwrap();
        assert_eq!(v.lcores, vec![0, 1]);
        assert_eq!(v.worker_lcores(), &[1]);
        assert_eq!(v.ports.len(), 2);
        assert_eq!(
            v.addrs[0].prefix,
            Prefix {
                addr: Ipv4Addr::new(198, 18, 0, 1),
                len: 24
            }
        );
        assert_eq!(v.routes[0].via, Some(Ipv4Addr::new(198, 18, 0, 254)));
        assert_eq!(v.metrics, Some("127.0.0.1:9475".parse().unwrap()));
        assert_eq!(v.rules.as_deref(), Some(Path::new("conf/demo.rules")));
    }

    #[test]
    fn syntax_errors_have_line_column_and_the_key_of_their_line() {
        // A string without its closing quote, in the second port table.
        let e = err(&GOOD.replace("device = \"0000:03:00.0\"", "device = \"0000:03:00.0"));
        assert!(e.starts_with("t.toml: port[1].device: "), "{e}");
        assert!(
            e.ends_with("invalid basic string (line 12, column 23)"),
            "{e}"
        );
        // A number too large for TOML.
        let e = err("[dpdk]\nmbufs = 99999999999999999999\n");
        assert!(e.starts_with("t.toml: dpdk.mbufs: "), "{e}");
        assert!(e.ends_with("(line 2, column 9)"), "{e}");
        // Too large for the field: the key comes from the path.
        let e = err(&GOOD.replace("name   = \"dp0\"", "name = \"dp0\"\nrx_desc = 70000"));
        assert!(e.starts_with("t.toml: port[0].rx_desc: "), "{e}");
        assert!(e.contains("(line 8, column 11)"), "{e}");
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn errors_name_file_and_key() {
        let e = err(&GOOD.replace("name   = \"dp0\"", "name = \"dp0\"\nspeed = 10"));
        assert!(
            e.starts_with("t.toml: port[0].speed: unknown field `speed`"),
            "{e}"
        );
        let e = err(&GOOD.replace("198.18.0.1/24", "198.18.0.300/24"));
        assert!(e.starts_with("t.toml: addr[0].ip: "), "{e}");
        let e = err(&GOOD.replace("via    = \"198.18.0.254\"", "via = \"gw\""));
        assert!(e.starts_with("t.toml: route[0].via: "), "{e}");
        let e = err(&GOOD.replace(
            "port   = \"dp0\"\n\n[control]",
            "port = \"nope\"\n\n[control]",
        ));
        assert!(
            e.starts_with("t.toml: route[0].port: no [[port]] is named \"nope\""),
            "{e}"
        );
        let e = err(&GOOD.replace("cores = \"0-1\"", "cores = \"0\""));
        assert!(
            e.starts_with("t.toml: dpdk.cores: need at least two lcores"),
            "{e}"
        );
        let e = err(&GOOD.replace("cores = \"0-1\"", "cores = 3"));
        assert!(e.starts_with("t.toml: dpdk.cores: "), "{e}");
        let e = err("[bogus]\n");
        assert!(e.starts_with("t.toml: bogus: unknown field `bogus`"), "{e}");
        let bad_mac = format!(
            "{GOOD}\n[[neigh]]\nport = \"dp0\"\nip = \"198.18.0.2\"\nmac = \"02:00:00:00:00\"\n"
        );
        let e = err(&bad_mac);
        assert!(e.starts_with("t.toml: neigh[0].mac: "), "{e}");
        let fwm = |body: &str| format!("{GOOD}\n[[fwmark]]\n{body}\n");
        let e = err(&fwm("mark = 1\nproto = \"sctp\"\ndst = \"198.18.0.100\""));
        assert!(e.starts_with("t.toml: fwmark[0].proto: "), "{e}");
        let e = err(&fwm("mark = 1\nproto = \"tcp\"\ndst = \"198.18.0.100/40\""));
        assert!(e.starts_with("t.toml: fwmark[0].dst: "), "{e}");
        let e = err(&fwm(
            "mark = 1\nproto = \"tcp\"\ndst = \"198.18.0.100\"\nports = \"443-80\"",
        ));
        assert!(e.starts_with("t.toml: fwmark[0].ports: "), "{e}");
        let e = err(&fwm("mark = 0\nproto = \"tcp\"\ndst = \"198.18.0.100\""));
        assert!(e.starts_with("t.toml: fwmark[0].mark: "), "{e}");
        let e = err(&fwm(
            "mark = 1\nproto = \"tcp\"\ndst = \"198.18.0.100\"\nport = \"80\"",
        ));
        assert!(e.starts_with("t.toml: fwmark[0]"), "{e}");
        let ok = parse(
            Path::new("t.toml"),
            &fwm("mark = 7\nproto = \"tcp\"\ndst = \"198.18.0.100/32\"\nports = \"80,443\""),
        )
        .unwrap();
        assert_eq!(
            ok.fwmarks[0].to_string(),
            "mark 7 tcp 198.18.0.100/32 ports 80,443"
        );
        let e = err(&GOOD.replace("127.0.0.1:9475", "localhost"));
        assert!(e.starts_with("t.toml: control.metrics: "), "{e}");
        // The control socket's bounds: defaults, set, and refused by key.
        let limits = |extra: &str| {
            let text = GOOD.replace("[control]", &format!("[control]\n{extra}"));
            parse(Path::new("t.toml"), &text).map(|v| v.control_limits)
        };
        assert_eq!(
            limits("").unwrap(),
            crate::control::server::Limits::default()
        );
        let set = limits("max_connections = 8\nidle_timeout_ms = 250").unwrap();
        assert_eq!(
            (set.max_connections, set.idle_timeout),
            (8, std::time::Duration::from_millis(250))
        );
        let e = limits("max_connections = 0").unwrap_err().to_string();
        assert!(e.starts_with("t.toml: control.max_connections: "), "{e}");
        let e = limits("idle_timeout_ms = 0").unwrap_err().to_string();
        assert!(e.starts_with("t.toml: control.idle_timeout_ms: "), "{e}");
    }

    #[test]
    fn state_timeouts() {
        let v = parse(
            Path::new("t.toml"),
            &format!("{GOOD}\n[ipvs.timeouts]\ntime_wait = 5\nestablished = 60\nudp = 30\n"),
        )
        .unwrap();
        use dataplane::conn::{ConnState, TcpState};
        assert_eq!(
            v.timeouts
                .timeout(ConnState::Tcp(TcpState::TimeWait))
                .as_secs(),
            5
        );
        assert_eq!(v.timeouts.tcp_established, 60);
        assert_eq!(v.timeouts.udp, 30);
        let e = err(&format!("{GOOD}\n[ipvs.timeouts]\ntimewait = 5\n"));
        assert!(
            e.starts_with(
                "t.toml: ipvs.timeouts.timewait: unknown state, expected one of none, established"
            ),
            "{e}"
        );
        let e = err(&format!("{GOOD}\n[ipvs.timeouts]\nclose = 0\n"));
        assert!(
            e.starts_with("t.toml: ipvs.timeouts.close: 0 is outside"),
            "{e}"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let e = load(Path::new("/nonexistent/rvs.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/rvs.toml: cannot read: "), "{e}");
    }

    #[test]
    fn lcore_to_cpu_maps() {
        assert_eq!(
            parse_lcores("0@0,1@1,2@0,3@1,4@1").unwrap(),
            vec![(0, 0), (1, 1), (2, 0), (3, 1), (4, 1)]
        );
        assert_eq!(
            parse_lcores("0, 1-3@1").unwrap(),
            vec![(0, 0), (1, 1), (2, 1), (3, 1)]
        );
        let v = parse(
            Path::new("t.toml"),
            &GOOD.replace("cores = \"0-1\"", "cores = \"0@0,1-4@1\""),
        )
        .unwrap();
        assert_eq!(v.worker_lcores(), &[1, 2, 3, 4]);
        assert_eq!(v.lcore_cpus, Some(vec![0, 1, 1, 1, 1]));
        let e = err(&GOOD.replace("cores = \"0-1\"", "cores = \"0@0,1@x\""));
        assert!(e.starts_with("t.toml: dpdk.cores: \"1@x\""), "{e}");
        let e = err(&GOOD.replace(
            "device = \"net_af_packet0,iface=veth-d0\"",
            "device = \"net_af_packet0,iface=veth-d0\"\nfaces = \"both\"",
        ));
        assert!(e.starts_with("t.toml: port[0].faces: "), "{e}");
    }

    #[test]
    fn cores_and_pci() {
        assert_eq!(parse_cores("0,2,4-5").unwrap(), vec![0, 2, 4, 5]);
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("a").is_err());
        assert!(is_pci_address("0000:03:00.0"));
        assert!(is_pci_address("03:00.1"));
        assert!(!is_pci_address("net_af_packet0,iface=veth0"));
        assert!(!is_pci_address("net_pcap0,rx_pcap=a:b.pcap"));
        assert_eq!(device_name("net_af_packet0,iface=x"), "net_af_packet0");
    }
    #[test]
    fn shipped_samples_are_valid() {
        let v = parse(
            Path::new("conf/director-bgp.toml"),
            include_str!("../conf/director-bgp.toml"),
        )
        .unwrap();
        assert!(v.sloppy_tcp);
        assert!(v.ports[0].kernel.as_ref().is_some_and(|k| k.announce));
    }

    #[test]
    fn sloppy_tcp() {
        assert!(!parse(Path::new("t.toml"), GOOD).unwrap().sloppy_tcp);
        let text = GOOD.replace("[ipvs]\n", "[ipvs]\nsloppy_tcp = true\n");
        assert!(parse(Path::new("t.toml"), &text).unwrap().sloppy_tcp);
        let e = err(&GOOD.replace("[ipvs]\n", "[ipvs]\nsloppy_tcp = 1\n"));
        assert!(e.starts_with("t.toml: ipvs.sloppy_tcp: "), "{e}");
    }

    #[test]
    fn icmp_budgets() {
        let d = parse(Path::new("t.toml"), GOOD).unwrap().icmp;
        assert_eq!(d, dataplane::l3::ratelimit::IcmpLimits::default());
        let text = format!("{GOOD}\n[dataplane]\nicmp_echo_per_sec = 0\nicmp_burst = 5\n");
        let l = parse(Path::new("t.toml"), &text).unwrap().icmp;
        assert_eq!((l.errors_per_sec, l.echo_per_sec, l.burst), (1000, 0, 5));
        let e = err(&format!("{GOOD}\n[dataplane]\nicmp_burst = 0\n"));
        assert_eq!(e, "t.toml: dataplane.icmp_burst: must be positive");
    }

    #[test]
    fn neighbour_parameters() {
        let d = parse(Path::new("t.toml"), GOOD).unwrap().neigh;
        assert_eq!(d, dataplane::l3::NeighConfig::default());
        let text = format!(
            "{GOOD}\n[dataplane.neigh]\nbase_reachable_time_ms = 2000\nprobes = 5\n\
             unres_qlen_bytes = 65536\nqueued_packets = 4096\n"
        );
        let n = parse(Path::new("t.toml"), &text).unwrap().neigh;
        assert_eq!(n.reachable_time, std::time::Duration::from_secs(2));
        assert_eq!(
            (n.max_probes, n.queue_bytes, n.queue_total),
            (5, 65536, 4096)
        );
        assert_eq!(n.delay_first_probe, d.delay_first_probe);
        let e = err(&format!("{GOOD}\n[dataplane.neigh]\nretrans_time_ms = 0\n"));
        assert_eq!(
            e,
            "t.toml: dataplane.neigh.retrans_time_ms: must be positive"
        );
        let e = err(&format!("{GOOD}\n[dataplane.neigh]\nunres_qlen = 3\n"));
        assert!(e.contains("unres_qlen"), "{e}");
    }

    #[test]
    fn kernel_twins() {
        let text = GOOD.replace(
            "device = \"net_af_packet0,iface=veth-d0\"",
            "device = \"net_af_packet0,iface=veth-d0\"\nkernel = {}",
        );
        let v = parse(Path::new("t.toml"), &text).unwrap();
        let k = v.ports[0].kernel.clone().unwrap();
        assert_eq!(k.ifname, "dp0");
        assert_eq!(k.driver, TwinDriver::Tap);
        assert_eq!(k.addrs, vec![parse_prefix("198.18.0.1/24").unwrap()]);
        assert_eq!((k.rate, k.burst, k.announce), (20_000, 2_000, false));
        assert_eq!(k.withdraw_wait_ms, 1000);
        assert_eq!(v.ports[1].kernel, None);
        let text = format!(
            "{GOOD}\n[port.kernel]\nname = \"k1\"\ndriver = \"virtio_user\"\naddrs = [\"198.18.9.1/24\"]\nrate = 5\nburst = 7\nannounce = true\n"
        );
        let v = parse(Path::new("t.toml"), &text).unwrap();
        let k = v.ports[1].kernel.clone().unwrap();
        assert_eq!(
            (k.ifname.as_str(), k.driver, k.rate, k.burst),
            ("k1", TwinDriver::VirtioUser, 5, 7)
        );
        assert_eq!(k.addrs, vec![parse_prefix("198.18.9.1/24").unwrap()]);
        assert!(k.announce);
        for (bad, key) in [
            ("name = \"a/b\"", "name"),
            ("name = \"0123456789abcdef\"", "name"),
            ("driver = \"kni\"", "driver"),
            ("addrs = [\"x\"]", "addrs[0]"),
            ("rate = 0", "rate"),
            ("colour = 1", "colour"),
        ] {
            let e = err(&format!("{GOOD}\n[port.kernel]\n{bad}\n"));
            assert!(
                e.starts_with(&format!("t.toml: port[1].kernel.{key}")),
                "{e}"
            );
        }
        let e = err(&format!(
            "{}\n[port.kernel]\nname = \"dp0\"\n",
            GOOD.replace(
                "device = \"net_af_packet0,iface=veth-d0\"",
                "device = \"net_af_packet0,iface=veth-d0\"\nkernel = {}",
            )
        ));
        assert!(e.contains("already another port's twin"), "{e}");
    }
}
