//! What a keepalived file asks for, typed: the virtual servers (each expanded to the rvsd
//! services it stands for), their real servers and the checkers of each. Built from the syntax
//! tree by [`crate::load`]; compared whole by the reload (`PartialEq`), so a field added here
//! takes part in deciding what a reload changed.

use std::net::IpAddr;
use std::time::Duration;

use ctl::proto::{Forward, LaddrSpec, Protocol, ServiceKey};

use crate::syntax::Loc;

/// A loaded file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub virtual_servers: Vec<VirtualServer>,
    /// Things keepalived would do that rvs-keepalived does not (vrrp_* blocks, ...) and
    /// keepalived's own defaulting warnings, each with where it was written.
    pub warnings: Vec<String>,
}

/// A program to run (`misc_path`, `notify_up`, `quorum_up` ...): keepalived splits the string
/// at blanks and runs it without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub argv: Vec<String>,
}

impl Script {
    pub fn parse(text: &str) -> Option<Script> {
        let argv: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        (!argv.is_empty()).then_some(Script { argv })
    }
}

/// One `virtual_server` block.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServer {
    pub loc: Loc,
    /// How it was named: `198.18.0.100:80`, `fwmark 5`, `group NAME`.
    pub name: String,
    /// The rvsd services it stands for (one, or one per member of its group).
    pub keys: Vec<ServiceKey>,
    pub protocol: Protocol,
    pub scheduler: String,
    pub sched_flags: Vec<String>,
    pub method: Forward,
    pub persistence_timeout: Option<u32>,
    /// ipvsadm's `-M`: an IPv4 mask as a number, or an IPv6 prefix length.
    pub persistence_granularity: u32,
    pub persistence_engine: Option<String>,
    pub ops: bool,
    /// `syn_proxy` (DPVS): the service's SYN proxy.
    pub synproxy: bool,
    /// `proxy_protocol` (DPVS): the PROXY protocol header for FULLNAT real servers.
    pub proxy_protocol: ctl::proto::ProxyProtocol,
    pub delay_loop: Duration,
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: Option<Script>,
    pub quorum_down: Option<Script>,
    pub sorry_server: Option<(IpAddr, u16)>,
    pub sorry_server_inhibit: bool,
    pub inhibit_on_failure: bool,
    pub alpha: bool,
    pub omega: bool,
    /// FULLNAT local addresses (DPVS `laddr_group_name`).
    pub laddrs: Vec<LaddrSpec>,
    /// Deny and allow lists (DPVS `daddr_group_name` / `waddr_group_name` naming a top-level
    /// `deny_address_group` / `allow_address_group`), entries `ADDR` or `ADDR/LEN`.
    pub access: ctl::proto::AccessInfo,
    pub reals: Vec<RealServer>,
}

/// One `real_server` block.
#[derive(Debug, Clone, PartialEq)]
pub struct RealServer {
    pub loc: Loc,
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub inhibit_on_failure: bool,
    pub notify_up: Option<Script>,
    pub notify_down: Option<Script>,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub checkers: Vec<Checker>,
}

impl RealServer {
    pub fn endpoint(&self) -> String {
        endpoint(self.addr, self.port)
    }
}

/// `ADDR:PORT`, IPv6 addresses in brackets.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// One checker of a real server.
#[derive(Debug, Clone, PartialEq)]
pub struct Checker {
    pub loc: Loc,
    pub kind: CheckKind,
    /// Where to connect: `connect_ip`/`connect_port`, else the real server's address and port.
    pub addr: IpAddr,
    pub port: u16,
    /// `bindto`/`bind_port`: the source of the check's connection.
    pub bind_addr: Option<IpAddr>,
    pub bind_port: u16,
    pub connect_timeout: Duration,
    /// Failed attempts in a row that take the checker down.
    pub retry: u32,
    pub delay_before_retry: Duration,
    pub delay_loop: Duration,
    /// `alpha` (on the virtual server): the checker starts failed.
    pub starts_down: bool,
}

impl Checker {
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            CheckKind::Tcp => "TCP_CHECK",
            CheckKind::Http { tls: false, .. } => "HTTP_GET",
            CheckKind::Http { tls: true, .. } => "SSL_GET",
            CheckKind::Misc { .. } => "MISC_CHECK",
            CheckKind::Dns { .. } => "DNS_CHECK",
        }
    }
}

/// What a checker does.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// Connect, and close.
    Tcp,
    /// `HTTP_GET` / `SSL_GET`: every url must answer with an accepted status (and digest).
    Http {
        tls: bool,
        urls: Vec<Url>,
        virtualhost: Option<String>,
    },
    /// Run a program: exit 0 is up; with `misc_dynamic`, 2..=255 is up with weight code - 2.
    Misc {
        script: Script,
        timeout: Duration,
        dynamic: bool,
    },
    /// Send a query; an answer with the query's id and no error is up.
    Dns { qtype: u16, name: String },
}

/// One `url` of an HTTP checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub path: String,
    /// Accepted status ranges (inclusive); keepalived's default is 200-299.
    pub status: Vec<(u16, u16)>,
    /// MD5 of the body, lower-case hex.
    pub digest: Option<String>,
    pub virtualhost: Option<String>,
}
