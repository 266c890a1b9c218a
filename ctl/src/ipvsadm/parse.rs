//! argv -> [`Invocation`], with ipvsadm 1.31's defaults, checks, messages and their order.
//!
//! The parse mirrors `parse_options()` + `process_options()` of ipvsadm.c: the first option must
//! be the command, the others are applied in argv order to a service and a dest record (so
//! `-r` before `-t` sees no vport, and `-M` before an IPv6 `-t` is read as an IPv4 mask, as in
//! ipvsadm), then the command/option matrix is checked, then the per-command rules. Pure: the
//! only outside input is the [`Resolver`] for host and service names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::popt::{Occurrence, Popt, PoptError, Tag};
use super::resolve::{Resolver, inet_aton, string_to_number};
use crate::proto::{
    AccessList, ClientAddr, DestSpec, Forward, FwmarkRule, LaddrSpec, Limits, Protocol,
    ProxyProtocol, ServiceKey, ServiceSpec, Timeouts, TunCsum, TunSpec, TunType, UoaMode,
};

/// Default scheduler (`DEF_SCHED`).
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// Default persistence timeout (`IPVS_SVC_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;
/// Largest timeout accepted (`MAX_TIMEOUT`, 31 days).
pub const MAX_TIMEOUT: i64 = 86400 * 31;

/// How listings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Format {
    pub numeric: bool,
    /// `-S`: rules instead of a table.
    pub rule: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub tun_info: bool,
    pub nosort: bool,
    pub exact: bool,
}

/// What `-L` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListWhat {
    All,
    Service(ServiceKey),
    Connections,
    Timeout,
    Daemon,
}

/// Sync daemon role and options (`--start-daemon`/`--stop-daemon`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonSpec {
    pub backup: bool,
    pub mcast_ifn: String,
    pub syncid: u8,
    pub sync_maxlen: u16,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: u16,
    pub mcast_ttl: u8,
}

/// One ipvsadm command, validated, with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DelService(ServiceKey),
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
    List {
        what: ListWhat,
        format: Format,
    },
    Save {
        format: Format,
    },
    Restore,
    Zero(Option<ServiceKey>),
    SetTimeouts(Timeouts),
    StartDaemon(DaemonSpec),
    StopDaemon(DaemonSpec),
    AddLaddr {
        service: ServiceKey,
        laddr: LaddrSpec,
    },
    DelLaddr {
        service: ServiceKey,
        laddr: LaddrSpec,
    },
    GetLaddr {
        service: Option<ServiceKey>,
        numeric: bool,
    },
    /// rvs extension: `--add-fwmark-rule -f MARK --proto P --dst PREFIX [--ports LIST]`.
    AddFwmarkRule(FwmarkRule),
    /// rvs extension: `--del-fwmark-rule` with the same options.
    DelFwmarkRule(FwmarkRule),
    /// DPVS `-U|--add-blklst -k ADDR` / `-O|--add-whtlst -2 ADDR` (rvs also takes `ADDR/LEN`).
    AddAccess {
        service: ServiceKey,
        list: AccessList,
        entry: String,
    },
    /// DPVS `-V|--del-blklst` / `-Y|--del-whtlst`.
    DelAccess {
        service: ServiceKey,
        list: AccessList,
        entry: String,
    },
    /// DPVS `-B|--get-blklst` / `-W|--get-whtlst` (of one service, or of all).
    GetAccess {
        service: Option<ServiceKey>,
        list: AccessList,
    },
}

/// `--add-fwmark-rule`/`--del-fwmark-rule` and their options (`-f`, `--proto`, `--dst`,
/// `--ports`, each once, in any order; `--opt=value` works too). Not ipvsadm 1.31: rvs's own
/// classifier rules, written by `-S` so that `-S | -R` keeps them.
fn parse_fwmark_rule(words: &[String]) -> Result<Option<Command>, ParseError> {
    let add = match words.first().map(String::as_str) {
        Some("--add-fwmark-rule") => true,
        Some("--del-fwmark-rule") => false,
        _ => return Ok(None),
    };
    let fail = |m: String| ParseError::Fail(m);
    let (mut mark, mut proto, mut dst, mut ports) = (None, None, None, None);
    let mut it = words[1..].iter();
    while let Some(w) = it.next() {
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (w.as_str(), None),
        };
        let slot = match name {
            "-f" | "--fwmark-service" => &mut mark,
            "--proto" => &mut proto,
            "--dst" => &mut dst,
            "--ports" => &mut ports,
            _ => {
                return Err(fail(format!(
                    "Illegal '{name}' option with the 'add-fwmark-rule' command"
                )));
            }
        };
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| fail(format!("option '{name}' needs a value")))?,
        };
        if slot.replace(value).is_some() {
            return Err(fail(format!("multiple '{name}' options specified")));
        }
    }
    let mark = mark.ok_or_else(|| {
        fail(
            "You need to supply the 'fwmark-service' option for the 'add-fwmark-rule' command"
                .into(),
        )
    })?;
    let mark: u32 = mark
        .parse()
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(|| fail("illegal virtual server fwmark specified".into()))?;
    let rule = FwmarkRule {
        mark,
        proto: proto.unwrap_or_else(|| "tcp".into()),
        dst: dst.ok_or_else(|| {
            fail("You need to supply the 'dst' option for the 'add-fwmark-rule' command".into())
        })?,
        ports: ports.unwrap_or_default(),
    };
    Ok(Some(if add {
        Command::AddFwmarkRule(rule)
    } else {
        Command::DelFwmarkRule(rule)
    }))
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `-h`: usage on stdout, exit 0.
    Help,
    /// `-v`: version on stdout, exit 0.
    Version,
    Command(Command),
}

/// Why a command line was refused; [`ParseError::exit_code`] and `Display` are ipvsadm's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No command first, or a popt error on it: `tryhelp_exit(argv[0], -1)`.
    #[error("Try `{0} -h' or '{0} --help' for more information.")]
    TryHelp(String),
    /// popt error after the command (unknown option, missing argument): exit 255.
    #[error("{}: {}", .0.word, .0.kind.text())]
    Popt(PoptError),
    /// `fail(2, ...)`: the message exactly as ipvsadm prints it (before the newline).
    #[error("{0}")]
    Fail(String),
}

impl ParseError {
    /// Process exit status (`exit(-1)` is 255).
    pub fn exit_code(&self) -> i32 {
        match self {
            ParseError::TryHelp(_) | ParseError::Popt(_) => 255,
            ParseError::Fail(_) => 2,
        }
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError::Fail(msg.into()))
}

/// Commands, in ipvsadm's `cmdnames` order (then DPVS's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    AddLaddr,
    DelLaddr,
    GetLaddr,
    AddBlklst,
    DelBlklst,
    GetBlklst,
    AddWhtlst,
    DelWhtlst,
    GetWhtlst,
}

const CMD_NAMES: [&str; 23] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
    "add-laddr",
    "del-laddr",
    "get-laddr",
    "add-blklst",
    "del-blklst",
    "get-blklst",
    "add-whtlst",
    "del-whtlst",
    "get-whtlst",
];

/// Options, in ipvsadm 1.31's `optnames` order (then DPVS's); the index is the bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Mcast,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Syncid,
    Exact,
    OnePacket,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
    Laddr,
    Ifname,
    Synproxy,
    Blklst,
    Whtlst,
    ConnLimit,
    ConnRate,
    SrcRate,
    SrcPrefix,
    ProxyProtocol,
    Toa,
    Uoa,
}

const OPT_NAMES: [&str; 46] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
    "laddr",
    "ifname",
    "synproxy",
    "blklst-address",
    "whtlst-address",
    "conn-limit",
    "conn-rate",
    "src-rate",
    "src-prefix",
    "proxy-protocol",
    "toa",
    "uoa",
];

/// `commands_v_options`: per command, per option: `+` compulsory, `x` illegal, `1` exclusive
/// (only one `1` option may be given), ` ` optional. Columns in [`OPT_NAMES`] order.
const MATRIX: [&str; 23] = [
    //n c s S p M r f w x y m t d s r t p s s e o p b g p t s t t t n c r l i j k 2 c c s s p t u
    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx xx       ", // add-service
    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx xx       ", // edit-service
    "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-service
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // flush
    " 11xxxxxxxxx11     x xxxxxxx xxxxxxxxxxxxxxxxx", // list
    "xx+xxx+    xxxxxxxxxxxxxxxxxx     xxxxxxxxxxxx", // add-server
    "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-server
    "xx+xxx+    xxxxxxxxxxxxxxxxxx     xxxxxxxxxxxx", // edit-server
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // set
    "xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxxxxxxxxxxxx", // start-daemon
    "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxxxxxxxxxxxx", // stop-daemon
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // restore
    " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // save
    "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // zero
    "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx++xxxxxxxxxx", // add-laddr
    "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx++xxxxxxxxxx", // del-laddr
    " x xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // get-laddr
    "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xxxxxxxx", // add-blklst
    "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xxxxxxxx", // del-blklst
    "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // get-blklst
    "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xxxxxxx", // add-whtlst
    "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xxxxxxx", // del-whtlst
    "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // get-whtlst
];

fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), ParseError> {
    let i = cmd as usize;
    let row = MATRIX[i].as_bytes();
    let mut last: Option<usize> = None;
    for (j, rule) in row.iter().enumerate() {
        let given = options & (1 << j) != 0;
        match (given, rule) {
            (false, b'+') => {
                return fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPT_NAMES[j], CMD_NAMES[i]
                ));
            }
            (true, b'x') => {
                return fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPT_NAMES[j], CMD_NAMES[i]
                ));
            }
            (true, b'1') => match last {
                None => last = Some(j),
                Some(l) => {
                    return fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        OPT_NAMES[j], OPT_NAMES[l], CMD_NAMES[i]
                    ));
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// The C `ipvs_service_t` being filled in, field for field.
#[derive(Debug, Clone)]
struct Svc {
    /// 0 (unset), 4 or 6.
    af: u8,
    protocol: Option<Protocol>,
    addr: IpAddr,
    port: u16,
    fwmark: u32,
    sched: String,
    persistent: bool,
    ops: bool,
    synproxy: bool,
    client_addr: ClientAddr,
    timeout: u32,
    netmask: u32,
    pe: Option<String>,
}

impl Svc {
    fn key(&self) -> ServiceKey {
        if self.fwmark != 0 {
            ServiceKey::Fwmark {
                mark: self.fwmark,
                ipv6: self.af == 6,
            }
        } else {
            ServiceKey::Inet {
                protocol: self.protocol.unwrap_or(Protocol::Tcp),
                addr: self.addr,
                port: self.port,
            }
        }
    }
}

/// `parse_service`'s result bits.
const SERVICE_ADDR: u8 = 1;
const SERVICE_PORT: u8 = 2;

fn str_is_digit(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// ipvsadm's `parse_service`: `host[:port]`, `[v6]:port` or a bare IPv6 address. Updates `svc`
/// (address, family, IPv6 netmask, port) like the C code, returns `SERVICE_*` bits.
fn parse_service(buf: &str, svc: &mut Svc, resolver: &Resolver) -> u8 {
    if str_is_digit(buf) {
        return 0;
    }
    let mut buf = buf;
    let mut portp: Option<&str> = None;
    if let Some(inner) = buf.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return 0;
        };
        let Some(port) = after.strip_prefix(':') else {
            return 0;
        };
        buf = addr;
        portp = Some(port);
    }
    if let Ok(a6) = buf.parse::<Ipv6Addr>() {
        svc.addr = IpAddr::V6(a6);
        svc.af = 6;
        svc.netmask = 128;
    } else {
        portp = None;
        if let Some((host, port)) = buf.rsplit_once(':') {
            buf = host;
            portp = Some(port);
        }
        let a4 = inet_aton(buf).or_else(|| resolver.host_to_addr(buf));
        let Some(a4) = a4 else {
            return 0;
        };
        svc.addr = IpAddr::V4(a4);
        svc.af = 4;
    }
    let mut result = SERVICE_ADDR;
    if let Some(port) = portp {
        result |= SERVICE_PORT;
        let n = string_to_number(port, 0, 65535)
            .and_then(|n| u16::try_from(n).ok())
            .or_else(|| svc.protocol.and_then(|p| resolver.service_to_port(port, p)));
        match n {
            Some(n) => svc.port = n,
            None => return 0,
        }
    }
    result
}

fn parse_timeout(arg: Option<&str>, min: i64, max: i64) -> Result<u32, ParseError> {
    let Some(arg) = arg else {
        return Ok(DEFAULT_PERSISTENT_TIMEOUT);
    };
    match string_to_number(arg, min, max) {
        Some(n) => Ok(n as u32),
        None => fail(format!("invalid timeout value `{arg}' specified")),
    }
}

fn parse_fwmark(arg: &str) -> Result<u32, ParseError> {
    match string_to_number(arg, 1, i64::from(u32::MAX)) {
        Some(n) => Ok(n as u32),
        None => fail(format!("invalid fwmark value `{arg}' specified")),
    }
}

/// Canonical flag names for a scheduler, by IPVS flag bit (SCHED1, SCHED2, SCHED3).
pub fn sched_flag_names(sched: &str) -> [&'static str; 3] {
    match sched {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    }
}

/// The IPVS flag bit (0, 1, 2) of a flag name, whatever the scheduler.
pub fn sched_flag_bit(name: &str) -> Option<usize> {
    match name {
        "flag-1" | "sh-fallback" | "mh-fallback" => Some(0),
        "flag-2" | "sh-port" | "mh-port" => Some(1),
        "flag-3" => Some(2),
        _ => None,
    }
}

/// ipvsadm's `parse_sched_flags`: comma list, empty items skipped (strtok); sh-/mh- flags need
/// their scheduler. Returns canonical names in bit order.
fn parse_sched_flags(sched: &str, arg: &str) -> Result<Vec<String>, ParseError> {
    let mut bits = [false; 3];
    let mut any = false;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        any = true;
        let Some(bit) = sched_flag_bit(flag) else {
            return fail(format!("invalid scheduler flag `{flag}'"));
        };
        let needs = flag.split_once('-').map(|(p, _)| p).unwrap_or("");
        if (needs == "sh" || needs == "mh") && sched != needs {
            return fail(format!("incompatible scheduler flag `{flag}'"));
        }
        bits[bit] = true;
    }
    if !any {
        return fail(format!("invalid scheduler flag `{arg}'"));
    }
    let names = sched_flag_names(sched);
    Ok((0..3)
        .filter(|&b| bits[b])
        .map(|b| names[b].to_owned())
        .collect())
}

fn parse_ip(arg: &str) -> Option<IpAddr> {
    arg.parse::<IpAddr>().ok()
}

/// Parse one invocation; `args[0]` is the program name. `reading_stdin` is set for the lines of
/// `-R` (a nested `-R` is refused as ipvsadm does).
pub fn parse(
    args: &[String],
    resolver: &Resolver,
    reading_stdin: bool,
) -> Result<Invocation, ParseError> {
    let program = args.first().map(String::as_str).unwrap_or("ipvsadm");
    let try_help = || ParseError::TryHelp(program.to_owned());
    let rest = args.get(1..).unwrap_or(&[]);
    if let Some(c) = parse_fwmark_rule(rest)? {
        return Ok(Invocation::Command(c));
    }
    let mut popt = Popt::new(rest);

    let first = match popt.next_opt() {
        Some(Ok(o)) => o,
        _ => return Err(try_help()),
    };
    let cmd = match first.tag {
        Tag::AddService => Cmd::Add,
        Tag::EditService => Cmd::Edit,
        Tag::DelService => Cmd::Del,
        Tag::AddServer => Cmd::AddDest,
        Tag::EditServer => Cmd::EditDest,
        Tag::DelServer => Cmd::DelDest,
        Tag::Clear => Cmd::Flush,
        Tag::List => Cmd::List,
        Tag::Zero => Cmd::Zero,
        Tag::Set => Cmd::Timeout,
        Tag::Restore => Cmd::Restore,
        Tag::Save => Cmd::Save,
        Tag::StartDaemon => Cmd::StartDaemon,
        Tag::StopDaemon => Cmd::StopDaemon,
        Tag::AddLaddr => Cmd::AddLaddr,
        Tag::DelLaddr => Cmd::DelLaddr,
        Tag::GetLaddr => Cmd::GetLaddr,
        Tag::AddBlklst => Cmd::AddBlklst,
        Tag::DelBlklst => Cmd::DelBlklst,
        Tag::GetBlklst => Cmd::GetBlklst,
        Tag::AddWhtlst => Cmd::AddWhtlst,
        Tag::DelWhtlst => Cmd::DelWhtlst,
        Tag::GetWhtlst => Cmd::GetWhtlst,
        Tag::Help => return Ok(Invocation::Help),
        Tag::Version => return Ok(Invocation::Version),
        _ => return Err(try_help()),
    };
    popt.set_fullnat_b(matches!(cmd, Cmd::AddDest | Cmd::EditDest));

    let mut daemon = DaemonSpec::default();
    if let Cmd::StartDaemon | Cmd::StopDaemon = cmd {
        match first.arg.as_deref() {
            Some("master") => {}
            Some("backup") => daemon.backup = true,
            _ if cmd == Cmd::StartDaemon => {
                return fail("illegal start-daemon parameter specified");
            }
            _ => return fail("illegal start_daemon specified"),
        }
    }

    let mut options: u64 = 0;
    let set_option = |options: &mut u64, opt: Opt| -> Result<(), ParseError> {
        let bit = 1u64 << (opt as u8);
        if *options & bit != 0 {
            return fail(format!(
                "multiple '{}' options specified",
                OPT_NAMES[opt as usize]
            ));
        }
        *options |= bit;
        Ok(())
    };
    let mut svc = Svc {
        af: 0,
        protocol: None,
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 0,
        fwmark: 0,
        sched: String::new(),
        persistent: false,
        ops: false,
        synproxy: false,
        client_addr: ClientAddr::default(),
        timeout: 0,
        netmask: 0xffff_ffff,
        pe: None,
    };
    let mut dest = DestSpec {
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 0,
        forward: Forward::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        tun: TunSpec::default(),
    };
    let mut dest_af = 0u8;
    let mut format = Format::default();
    let mut sched_flags_arg = String::new();
    let mut laddr: Option<IpAddr> = None;
    let mut ifname = String::new();
    let mut list_entry = String::new();
    let mut limits = Limits::default();

    while let Some(next) = popt.next_opt() {
        let Occurrence { tag, arg, word } = match next {
            Ok(o) => o,
            Err(e) => return Err(ParseError::Popt(e)),
        };
        let a = arg.as_deref().unwrap_or("");
        match tag {
            Tag::TcpService | Tag::UdpService | Tag::SctpService => {
                set_option(&mut options, Opt::Service)?;
                svc.protocol = Some(match tag {
                    Tag::TcpService => Protocol::Tcp,
                    Tag::UdpService => Protocol::Udp,
                    _ => Protocol::Sctp,
                });
                if parse_service(a, &mut svc, resolver) & SERVICE_ADDR == 0 {
                    return fail("illegal virtual server address[:port] specified");
                }
            }
            Tag::FwmarkService => {
                set_option(&mut options, Opt::Service)?;
                svc.af = 4;
                svc.protocol = Some(Protocol::Tcp);
                svc.fwmark = parse_fwmark(a)?;
            }
            Tag::Scheduler => {
                set_option(&mut options, Opt::Scheduler)?;
                svc.sched = a.to_owned();
            }
            Tag::Persistent => {
                set_option(&mut options, Opt::Persistent)?;
                svc.persistent = true;
                svc.timeout = parse_timeout(arg.as_deref(), 1, MAX_TIMEOUT)?;
            }
            Tag::Netmask => {
                set_option(&mut options, Opt::Netmask)?;
                if svc.af != 6 {
                    let mask = inet_aton(a).or_else(|| resolver.host_to_addr(a));
                    match mask {
                        Some(m) => svc.netmask = u32::from(m),
                        None => return fail("illegal virtual server persistent mask specified"),
                    }
                } else {
                    match string_to_number(a, 1, 128) {
                        Some(n) => svc.netmask = n as u32,
                        None => return fail("illegal ipv6 netmask specified"),
                    }
                }
            }
            Tag::RealServer => {
                set_option(&mut options, Opt::Server)?;
                let mut t = svc.clone();
                let parsed = parse_service(a, &mut t, resolver);
                dest_af = t.af;
                dest.addr = t.addr;
                dest.port = t.port;
                if parsed & SERVICE_ADDR == 0 {
                    return fail("illegal real server address[:port] specified");
                }
                if parsed == SERVICE_ADDR {
                    dest.port = svc.port;
                }
            }
            Tag::Ipip | Tag::Gatewaying | Tag::Masquerading | Tag::FullNat => {
                set_option(&mut options, Opt::Forward)?;
                dest.forward = match tag {
                    Tag::Ipip => Forward::Tunnel,
                    Tag::Gatewaying => Forward::Route,
                    Tag::Masquerading => Forward::Masq,
                    _ => Forward::FullNat,
                };
            }
            Tag::Weight => {
                set_option(&mut options, Opt::Weight)?;
                match string_to_number(a, 0, 65535) {
                    Some(n) => dest.weight = n as u32,
                    None => return fail("illegal weight specified"),
                }
            }
            Tag::UThreshold => {
                set_option(&mut options, Opt::UThreshold)?;
                match string_to_number(a, 0, i64::from(i32::MAX)) {
                    Some(n) => dest.u_threshold = n as u32,
                    None => return fail("illegal u_threshold specified"),
                }
            }
            Tag::LThreshold => {
                set_option(&mut options, Opt::LThreshold)?;
                match string_to_number(a, 0, i64::from(i32::MAX)) {
                    Some(n) => dest.l_threshold = n as u32,
                    None => return fail("illegal l_threshold specified"),
                }
            }
            Tag::Connection => set_option(&mut options, Opt::Connection)?,
            Tag::Numeric => {
                set_option(&mut options, Opt::Numeric)?;
                format.numeric = true;
            }
            Tag::McastInterface => {
                set_option(&mut options, Opt::Mcast)?;
                daemon.mcast_ifn = a.to_owned();
            }
            Tag::Syncid => {
                set_option(&mut options, Opt::Syncid)?;
                match string_to_number(a, 0, 255) {
                    Some(n) => daemon.syncid = n as u8,
                    None => return fail("illegal syncid specified"),
                }
            }
            Tag::SyncMaxlen => {
                set_option(&mut options, Opt::SyncMaxlen)?;
                match string_to_number(a, 1, 65535 - 20 - 8) {
                    Some(n) => daemon.sync_maxlen = n as u16,
                    None => return fail("illegal sync-maxlen specified"),
                }
            }
            Tag::McastGroup => {
                set_option(&mut options, Opt::McastGroup)?;
                match parse_ip(a).filter(IpAddr::is_multicast) {
                    Some(g) => daemon.mcast_group = Some(g),
                    None => return fail("illegal mcast-group specified"),
                }
            }
            Tag::McastPort => {
                set_option(&mut options, Opt::McastPort)?;
                match string_to_number(a, 1, 65535) {
                    Some(n) => daemon.mcast_port = n as u16,
                    None => return fail("illegal mcast-port specified"),
                }
            }
            Tag::McastTtl => {
                set_option(&mut options, Opt::McastTtl)?;
                match string_to_number(a, 1, 255) {
                    Some(n) => daemon.mcast_ttl = n as u8,
                    None => return fail("illegal mcast-ttl specified"),
                }
            }
            Tag::Timeout => set_option(&mut options, Opt::Timeout)?,
            Tag::Daemon => set_option(&mut options, Opt::Daemon)?,
            Tag::Stats => {
                set_option(&mut options, Opt::Stats)?;
                format.stats = true;
            }
            Tag::Rate => {
                set_option(&mut options, Opt::Rate)?;
                format.rate = true;
            }
            Tag::Thresholds => {
                set_option(&mut options, Opt::Thresholds)?;
                format.thresholds = true;
            }
            Tag::PersistentConn => {
                set_option(&mut options, Opt::PersistentConn)?;
                format.persistent_conn = true;
            }
            Tag::NoSort => {
                set_option(&mut options, Opt::NoSort)?;
                format.nosort = true;
            }
            Tag::Sort => {}
            Tag::Exact => {
                set_option(&mut options, Opt::Exact)?;
                format.exact = true;
            }
            Tag::TunInfo => {
                set_option(&mut options, Opt::TunInfo)?;
                format.tun_info = true;
            }
            Tag::Ipv6 => {
                if svc.fwmark != 0 {
                    svc.af = 6;
                    svc.netmask = 128;
                } else {
                    return fail("-6 used before -f\n");
                }
            }
            Tag::Ops => {
                set_option(&mut options, Opt::OnePacket)?;
                svc.ops = true;
            }
            Tag::Synproxy => {
                // DPVS compares the prefix (`memcmp(optarg, "enable", strlen("enable"))`).
                set_option(&mut options, Opt::Synproxy)?;
                svc.synproxy = if a.starts_with("enable") {
                    true
                } else if a.starts_with("disable") {
                    false
                } else {
                    return fail("synproxy switch must be enable or disable");
                };
            }
            Tag::ProxyProtocol => {
                set_option(&mut options, Opt::ProxyProtocol)?;
                svc.client_addr.proxy_protocol = ProxyProtocol::from_name(a).ok_or_else(|| {
                    ParseError::Fail(
                        "proxy protocol must be disable, v1, v2, v1-insecure or v2-insecure"
                            .to_owned(),
                    )
                })?;
            }
            Tag::Toa => {
                set_option(&mut options, Opt::Toa)?;
                svc.client_addr.toa = match a {
                    "enable" => true,
                    "disable" => false,
                    _ => return fail("toa switch must be enable or disable"),
                };
            }
            Tag::Uoa => {
                set_option(&mut options, Opt::Uoa)?;
                svc.client_addr.uoa = UoaMode::from_name(a).ok_or_else(|| {
                    ParseError::Fail("uoa must be opp, ipo or disable".to_owned())
                })?;
            }
            Tag::Pe => {
                set_option(&mut options, Opt::Pe)?;
                svc.pe = Some(a.to_owned());
            }
            Tag::SchedFlags => {
                set_option(&mut options, Opt::SchedFlags)?;
                sched_flags_arg = a.to_owned();
            }
            Tag::TunType => {
                set_option(&mut options, Opt::TunType)?;
                dest.tun.tun_type = match a {
                    "ipip" => TunType::Ipip,
                    "gue" => TunType::Gue,
                    "gre" => TunType::Gre,
                    _ => return fail("illegal tunnel type specified"),
                };
            }
            Tag::TunPort => {
                set_option(&mut options, Opt::TunPort)?;
                match string_to_number(a, 1, 65535) {
                    Some(n) => dest.tun.port = n as u16,
                    None => return fail("illegal tunnel port specified"),
                }
            }
            Tag::TunNoCsum | Tag::TunCsum | Tag::TunRemCsum => {
                let (opt, csum) = match tag {
                    Tag::TunNoCsum => (Opt::TunNoCsum, TunCsum::NoCsum),
                    Tag::TunCsum => (Opt::TunCsum, TunCsum::Csum),
                    _ => (Opt::TunRemCsum, TunCsum::RemCsum),
                };
                set_option(&mut options, opt)?;
                dest.tun.csum = csum;
            }
            Tag::Laddr => {
                set_option(&mut options, Opt::Laddr)?;
                match parse_ip(a) {
                    Some(ip) => laddr = Some(ip),
                    None => return fail("illegal local address specified"),
                }
            }
            Tag::Ifname => {
                set_option(&mut options, Opt::Ifname)?;
                ifname = a.to_owned();
            }
            Tag::Blklst => {
                set_option(&mut options, Opt::Blklst)?;
                list_entry = parse_list_entry(a, "blacklist")?;
            }
            Tag::Whtlst => {
                set_option(&mut options, Opt::Whtlst)?;
                list_entry = parse_list_entry(a, "whitelist")?;
            }
            Tag::ConnLimit => {
                set_option(&mut options, Opt::ConnLimit)?;
                match string_to_number(a, 0, i64::from(u32::MAX)) {
                    Some(n) => limits.conn_limit = n as u32,
                    None => return fail("illegal conn-limit specified"),
                }
            }
            Tag::ConnRate => {
                set_option(&mut options, Opt::ConnRate)?;
                (limits.conn_rate, limits.conn_burst) = parse_rate(a, "conn-rate")?;
            }
            Tag::SrcRate => {
                set_option(&mut options, Opt::SrcRate)?;
                (limits.src_rate, limits.src_burst) = parse_rate(a, "src-rate")?;
            }
            Tag::SrcPrefix => {
                set_option(&mut options, Opt::SrcPrefix)?;
                match string_to_number(a, 1, 32) {
                    Some(n) => limits.src_prefix = n as u8,
                    None => return fail("illegal src-prefix specified"),
                }
            }
            // A second command (ipvsadm 1.31's `set_command` check).
            Tag::AddService
            | Tag::EditService
            | Tag::DelService
            | Tag::Clear
            | Tag::List
            | Tag::Zero
            | Tag::AddServer
            | Tag::EditServer
            | Tag::DelServer
            | Tag::Set
            | Tag::Restore
            | Tag::Save
            | Tag::StartDaemon
            | Tag::StopDaemon
            | Tag::AddLaddr
            | Tag::DelLaddr
            | Tag::GetLaddr
            | Tag::AddBlklst
            | Tag::DelBlklst
            | Tag::GetBlklst
            | Tag::AddWhtlst
            | Tag::DelWhtlst
            | Tag::GetWhtlst => return fail("multiple commands specified"),
            Tag::Help | Tag::Version => return fail(format!("invalid option `{word}'")),
        }
    }

    let mut leftovers = popt.leftovers().iter();
    let mut timeouts = Timeouts {
        tcp: 0,
        tcpfin: 0,
        udp: 0,
    };
    if cmd == Cmd::Timeout {
        match (leftovers.next(), leftovers.next(), leftovers.next()) {
            (Some(t), Some(f), Some(u)) => {
                timeouts.tcp = parse_timeout(Some(t), 0, MAX_TIMEOUT)?;
                timeouts.tcpfin = parse_timeout(Some(f), 0, MAX_TIMEOUT)?;
                timeouts.udp = parse_timeout(Some(u), 0, MAX_TIMEOUT)?;
            }
            _ => return fail("--set option requires 3 timeout values"),
        }
    }
    if let Some(extra) = leftovers.next() {
        return fail(format!("unexpected argument {extra}"));
    }

    generic_opt_check(cmd, options)?;
    let has = |opt: Opt| options & (1 << (opt as u8)) != 0;

    let mut sched_flags = Vec::new();
    if let Cmd::Add | Cmd::Edit = cmd {
        if svc.fwmark == 0 && svc.port == 0 && !svc.persistent {
            return fail("Zero port specified for non-persistent service");
        }
        if svc.ops && svc.fwmark == 0 && svc.protocol != Some(Protocol::Udp) {
            return fail("One-Packet Scheduling is only for UDP virtual services");
        }
        if svc.sched.is_empty() {
            svc.sched = DEFAULT_SCHEDULER.to_owned();
        }
        if has(Opt::SchedFlags) {
            sched_flags = parse_sched_flags(&svc.sched, &sched_flags_arg)?;
        }
        if has(Opt::SrcPrefix) && limits.src_rate == 0 {
            return fail("--src-prefix needs --src-rate");
        }
    }
    if cmd == Cmd::StartDaemon && daemon.mcast_ifn.is_empty() {
        daemon.mcast_ifn = "eth0".to_owned();
    }
    if matches!(cmd, Cmd::Add | Cmd::Edit)
        && svc.protocol == Some(Protocol::Udp)
        && matches!(
            svc.client_addr.proxy_protocol,
            ProxyProtocol::V1 | ProxyProtocol::V1Insecure
        )
    {
        return fail("PROXY protocol v1 is for TCP services only");
    }
    if let Cmd::AddDest | Cmd::EditDest = cmd {
        // The dest port must equal the service port for DR and TUN (not for fwmark services).
        if svc.fwmark == 0 && matches!(dest.forward, Forward::Tunnel | Forward::Route) {
            dest.port = svc.port;
        }
        // NAT64 (DPVS): an IPv4 FULLNAT real server under an IPv6 service; rvsd checks the rest.
        let nat64 = svc.af == 6 && dest_af == 4 && dest.forward == Forward::FullNat;
        if dest_af != svc.af && dest.forward != Forward::Tunnel && !nat64 {
            return fail("Different address family is allowed only for tunneling servers");
        }
        check_tunnel_options(&dest, options)?;
    }
    if cmd == Cmd::List
        && (has(Opt::Connection) || has(Opt::Timeout) || has(Opt::Daemon))
        && (has(Opt::Stats) || has(Opt::Rate) || has(Opt::Thresholds))
    {
        return fail("options conflicts in the list command");
    }

    let service = svc.key();
    let spec = || ServiceSpec {
        key: service,
        scheduler: svc.sched.clone(),
        sched_flags: sched_flags.clone(),
        persistent: svc.persistent.then_some(svc.timeout),
        netmask: svc.netmask,
        pe: svc.pe.clone(),
        ops: svc.ops,
        synproxy: svc.synproxy,
        limits,
        client_addr: svc.client_addr,
    };
    let laddr_spec = || LaddrSpec {
        addr: laddr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ifname: ifname.clone(),
    };
    let command = match cmd {
        Cmd::Add => Command::AddService(spec()),
        Cmd::Edit => Command::EditService(spec()),
        Cmd::Del => Command::DelService(service),
        Cmd::Flush => Command::Clear,
        Cmd::AddDest => Command::AddDest { service, dest },
        Cmd::EditDest => Command::EditDest { service, dest },
        Cmd::DelDest => Command::DelDest {
            service,
            addr: dest.addr,
            port: dest.port,
        },
        Cmd::List => {
            let what = if has(Opt::Connection) {
                ListWhat::Connections
            } else if has(Opt::Service) {
                ListWhat::Service(service)
            } else if has(Opt::Timeout) {
                ListWhat::Timeout
            } else if has(Opt::Daemon) {
                ListWhat::Daemon
            } else {
                ListWhat::All
            };
            Command::List { what, format }
        }
        Cmd::Save => Command::Save {
            format: Format {
                rule: true,
                ..format
            },
        },
        Cmd::Restore => {
            if reading_stdin {
                return Err(try_help());
            }
            Command::Restore
        }
        Cmd::Zero => Command::Zero(has(Opt::Service).then_some(service)),
        Cmd::Timeout => Command::SetTimeouts(timeouts),
        Cmd::StartDaemon => Command::StartDaemon(daemon),
        Cmd::StopDaemon => Command::StopDaemon(daemon),
        Cmd::AddLaddr => Command::AddLaddr {
            service,
            laddr: laddr_spec(),
        },
        Cmd::DelLaddr => Command::DelLaddr {
            service,
            laddr: laddr_spec(),
        },
        Cmd::GetLaddr => Command::GetLaddr {
            service: has(Opt::Service).then_some(service),
            numeric: format.numeric,
        },
        Cmd::AddBlklst | Cmd::AddWhtlst => Command::AddAccess {
            service,
            list: if cmd == Cmd::AddBlklst {
                AccessList::Deny
            } else {
                AccessList::Allow
            },
            entry: list_entry,
        },
        Cmd::DelBlklst | Cmd::DelWhtlst => Command::DelAccess {
            service,
            list: if cmd == Cmd::DelBlklst {
                AccessList::Deny
            } else {
                AccessList::Allow
            },
            entry: list_entry,
        },
        Cmd::GetBlklst | Cmd::GetWhtlst => Command::GetAccess {
            service: has(Opt::Service).then_some(service),
            list: if cmd == Cmd::GetBlklst {
                AccessList::Deny
            } else {
                AccessList::Allow
            },
        },
    };
    Ok(Invocation::Command(command))
}

/// DPVS's `-k`/`-2` argument: an IPv4 address, or (rvs) a prefix `ADDR/LEN` with no host bits
/// beyond LEN. DPVS's `ipset:NAME` entries are refused: rvs has no ipsets. Returned in
/// canonical form (`ADDR` for a /32).
fn parse_list_entry(arg: &str, what: &str) -> Result<String, ParseError> {
    if arg.starts_with("ipset:") {
        return fail(format!("{what} ipset entries are not supported by rvs"));
    }
    let (addr, len) = match arg.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (arg, None),
    };
    let Ok(ip) = addr.parse::<Ipv4Addr>() else {
        return fail(format!(
            "illegal {what} entry format, require [ IP | IP/LEN ]"
        ));
    };
    let len = match len {
        None => 32,
        Some(l) => match string_to_number(l, 0, 32) {
            Some(n) => n as u32,
            None => return fail(format!("illegal {what} prefix length `{l}'")),
        },
    };
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    if u32::from(ip) & !mask != 0 {
        return fail(format!(
            "illegal {what} entry `{arg}': host bits set beyond /{len}"
        ));
    }
    Ok(if len == 32 {
        ip.to_string()
    } else {
        format!("{ip}/{len}")
    })
}

/// `RATE[:BURST]` of `--conn-rate`/`--src-rate`: RATE 0.. (0 = no limit), BURST 1.. (default:
/// one second's worth of RATE).
fn parse_rate(arg: &str, what: &str) -> Result<(u32, u32), ParseError> {
    let (rate, burst) = match arg.split_once(':') {
        Some((r, b)) => (r, Some(b)),
        None => (arg, None),
    };
    let bad = || fail(format!("illegal {what} specified"));
    let Some(rate) = string_to_number(rate, 0, i64::from(u32::MAX)) else {
        return bad();
    };
    let burst = match burst {
        None => 0,
        Some(b) => match string_to_number(b, 1, i64::from(u32::MAX)) {
            Some(n) => n as u32,
            None => return bad(),
        },
    };
    Ok((rate as u32, burst))
}

/// ipvsadm 1.31's tunnel option rules: only with `-i`, and per tunnel type
/// (`ipip`: none; `gue`: `--tun-port` required, any checksum option; `gre`: no port, no remcsum).
fn check_tunnel_options(dest: &DestSpec, options: u64) -> Result<(), ParseError> {
    let tun_opts = [
        Opt::TunType,
        Opt::TunPort,
        Opt::TunNoCsum,
        Opt::TunCsum,
        Opt::TunRemCsum,
    ];
    let given = |o: Opt| options & (1 << (o as u8)) != 0;
    if !tun_opts.iter().any(|&o| given(o)) {
        return Ok(());
    }
    if dest.forward != Forward::Tunnel {
        return fail("Tunnel options conflict with forward method");
    }
    let (type_name, rules) = match dest.tun.tun_type {
        TunType::Ipip => ("ipip", "xxxx"),
        TunType::Gue => ("gue", "+   "),
        TunType::Gre => ("gre", "x  x"),
    };
    for (k, rule) in rules.bytes().enumerate() {
        let opt = tun_opts[k + 1];
        match (given(opt), rule) {
            (false, b'+') => {
                return fail(format!(
                    "You need to supply the '{}' option for the '{}' tunnel type",
                    OPT_NAMES[opt as usize], type_name
                ));
            }
            (true, b'x') => {
                return fail(format!(
                    "Illegal '{}' option with the '{}' tunnel type",
                    OPT_NAMES[opt as usize], type_name
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
