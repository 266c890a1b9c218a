//! A drop-in `ipvsadm` (1.31) for rvs: same syntax, defaults, output, error texts and exit
//! codes, talking to rvsd over the control socket instead of netlink.
//!
//! Layout: [`popt`] tokenizes argv like libpopt; [`parse`] turns argv into a validated
//! [`parse::Command`]; [`format`] renders listings; [`resolve`] does host/service names from
//! `/etc/hosts` and `/etc/services`; [`errors`] maps daemon errnos to `ipvs_strerror` texts;
//! [`run`] ties them to a [`Daemon`] (the control socket, or a fake in tests).
//!
//! Exit codes: 0 success; 2 parse/validation errors (`fail()`), and also when rvsd cannot be
//! reached (ipvsadm's "Can't initialize ipvs" is `fail(2)` too) or answers nonsense; 255 usage
//! errors (`Try ... -h`), popt errors after the command and daemon-side errors (`exit(-1)`);
//! 1 when a listing fails (ipvsadm's `exit(1)` in the list functions).
//!
//! Differences from ipvsadm, on purpose: rvsd is contacted only when a command needs it, so
//! `-h`, `-v` and parse errors work without a daemon; `-R` stops at the first failing line and
//! says which (ipvsadm carries on after daemon errors); `-L --daemon` prints nothing (rvs has no
//! sync daemon) and `--start-daemon`/`--stop-daemon` fail with a message saying so.

pub mod errors;
pub mod format;
pub mod help;
pub mod parse;
pub mod popt;
pub mod resolve;

use std::io::{BufRead, Write};
use std::path::PathBuf;

use crate::client::{Client, ClientError};
use crate::proto::{AccessList, Errno, Reply, Request, ServiceInfo};
use errors::{Op, ipvs_strerror};
use parse::{Command, Format, Invocation, ListWhat, ParseError};
use resolve::Resolver;

/// Something that answers control requests: the daemon, or a fake.
pub trait Daemon {
    fn call(&mut self, request: Request) -> Result<Reply, ClientError>;
}

/// The control socket, connected on first use.
#[derive(Debug)]
pub struct SocketDaemon {
    path: PathBuf,
    client: Option<Client>,
}

impl SocketDaemon {
    pub fn new(path: PathBuf) -> Self {
        SocketDaemon { path, client: None }
    }
}

impl Daemon for SocketDaemon {
    fn call(&mut self, request: Request) -> Result<Reply, ClientError> {
        if self.client.is_none() {
            self.client = Some(Client::connect(&self.path)?);
        }
        match &mut self.client {
            Some(c) => c.call(request),
            None => unreachable!("client connected above"),
        }
    }
}

/// Why a command failed: the exit status and the text for stderr (without newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl From<ParseError> for Failure {
    fn from(e: ParseError) -> Self {
        Failure {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure {
            code: 2,
            message: format!("ipvsadm: {e}"),
        }
    }
}

fn unexpected(reply: &Reply) -> Failure {
    let detail = serde_json::to_string(reply).unwrap_or_default();
    let mut short: String = detail.chars().take(120).collect();
    if short.len() < detail.len() {
        short.push_str("...");
    }
    Failure {
        code: 2,
        message: format!("ipvsadm: unexpected reply from rvsd: {short}"),
    }
}

/// Send a change request; daemon errors become ipvsadm's message and exit 255. Where ipvsadm
/// 1.31 has only a generic text, rvsd's own reason follows it: a feature rvs understands but
/// does not implement (`Eopnotsupp`, e.g. GUE tunnels: "Operation not supported: --tun-type gue
/// is not implemented by rvs yet ...") and an invalid request (`Einval`: "Invalid operation: no
/// port named dp9" rather than the kernel's guess "Possibly wrong module version, address not
/// unicast, ..."). The generic text stays when the daemon gave no reason.
fn change(daemon: &mut dyn Daemon, op: Op, request: Request) -> Result<(), Failure> {
    match daemon.call(request)? {
        Reply::Ok => Ok(()),
        Reply::Error(e) if e.errno == Errno::Eopnotsupp => Err(Failure {
            code: 255,
            message: format!("{}: {}", ipvs_strerror(op, e.errno), e.message),
        }),
        Reply::Error(e) if e.errno == Errno::Einval && !e.message.trim().is_empty() => {
            Err(Failure {
                code: 255,
                message: format!("Invalid operation: {}", e.message.trim()),
            })
        }
        Reply::Error(e) => Err(Failure {
            code: 255,
            message: ipvs_strerror(op, e.errno).to_owned(),
        }),
        other => Err(unexpected(&other)),
    }
}

/// A classifier-rule change: the daemon's own message on error (there is no ipvsadm text).
fn fwmark_change(daemon: &mut dyn Daemon, request: Request) -> Result<(), Failure> {
    match daemon.call(request)? {
        Reply::Ok => Ok(()),
        Reply::Error(e) => Err(Failure {
            code: 255,
            message: e.message,
        }),
        other => Err(unexpected(&other)),
    }
}

/// A listing request; daemon errors exit 1 as ipvsadm's list functions do. As for changes, an
/// `Einval` with the daemon's reason prints the reason (e.g. a control socket over its
/// connection cap: "Invalid operation: too many control connections ...").
fn query(daemon: &mut dyn Daemon, op: Op, request: Request) -> Result<Reply, Failure> {
    match daemon.call(request)? {
        Reply::Error(e) if e.errno == Errno::Einval && !e.message.trim().is_empty() => {
            Err(Failure {
                code: 1,
                message: format!("Invalid operation: {}", e.message.trim()),
            })
        }
        Reply::Error(e) => Err(Failure {
            code: 1,
            message: ipvs_strerror(op, e.errno).to_owned(),
        }),
        reply => Ok(reply),
    }
}

fn services(daemon: &mut dyn Daemon, request: Request) -> Result<Vec<ServiceInfo>, Failure> {
    match query(daemon, Op::GetService, request)? {
        Reply::Services(v) => Ok(v),
        other => Err(unexpected(&other)),
    }
}

/// Execute one command; what it prints goes to `out`.
pub fn execute(
    command: &Command,
    daemon: &mut dyn Daemon,
    resolver: &Resolver,
    out: &mut String,
) -> Result<(), Failure> {
    match command {
        Command::AddService(spec) => {
            change(daemon, Op::AddService, Request::AddService(spec.clone()))
        }
        Command::EditService(spec) => {
            change(daemon, Op::EditService, Request::EditService(spec.clone()))
        }
        Command::DelService(key) => change(daemon, Op::DelService, Request::DelService(*key)),
        Command::Clear => change(daemon, Op::Other, Request::Clear),
        Command::AddDest { service, dest } => change(
            daemon,
            Op::AddDest,
            Request::AddDest {
                service: *service,
                dest: dest.clone(),
            },
        ),
        Command::EditDest { service, dest } => change(
            daemon,
            Op::EditDest,
            Request::EditDest {
                service: *service,
                dest: dest.clone(),
            },
        ),
        Command::DelDest {
            service,
            addr,
            port,
        } => change(
            daemon,
            Op::DelDest,
            Request::DelDest {
                service: *service,
                addr: *addr,
                port: *port,
            },
        ),
        Command::Zero(service) => {
            change(daemon, Op::ZeroService, Request::Zero { service: *service })
        }
        Command::SetTimeouts(t) => change(daemon, Op::Other, Request::SetTimeouts(*t)),
        Command::List { what, format } => list(what, format, daemon, resolver, out),
        Command::Save { format } => {
            let all = services(daemon, Request::ListServices { service: None })?;
            out.push_str(&format::list_all(None, &all, format, resolver));
            // FULLNAT local addresses survive a save/restore (DPVS's -S loses them). A daemon
            // without them (an error reply) simply has none to save.
            if let Ok(Reply::Laddrs(list)) = daemon.call(Request::ListLaddrs { service: None }) {
                out.push_str(&format::save_laddrs(&list));
            }
            // rvs's fwmark classifier rules likewise (nothing is written when there are none,
            // so plain LVS state saves byte for byte as ipvsadm 1.31 does).
            if let Ok(Reply::FwmarkRules(list)) = daemon.call(Request::ListFwmarkRules) {
                out.push_str(&format::save_fwmark_rules(&list));
            }
            // Access lists (DPVS's -S loses them): `-U`/`-O` lines, none when there are none.
            out.push_str(&format::save_access_lists(&all));
            Ok(())
        }
        Command::Restore => Err(Failure {
            code: 255,
            message: "ipvsadm: -R is handled by run()".into(),
        }),
        Command::StartDaemon(_) => Err(Failure {
            code: 255,
            message: "rvs has no connection synchronisation daemon".into(),
        }),
        Command::StopDaemon(_) => Err(Failure {
            code: 255,
            message: ipvs_strerror(Op::StopDaemon, crate::proto::Errno::Esrch).into(),
        }),
        Command::AddLaddr { service, laddr } => change(
            daemon,
            Op::AddLaddr,
            Request::AddLaddr {
                service: *service,
                laddr: laddr.clone(),
            },
        ),
        Command::DelLaddr { service, laddr } => change(
            daemon,
            Op::DelLaddr,
            Request::DelLaddr {
                service: *service,
                laddr: laddr.clone(),
            },
        ),
        Command::AddFwmarkRule(rule) => fwmark_change(daemon, Request::AddFwmarkRule(rule.clone())),
        Command::DelFwmarkRule(rule) => fwmark_change(daemon, Request::DelFwmarkRule(rule.clone())),
        Command::AddAccess {
            service,
            list,
            entry,
        } => change(
            daemon,
            match list {
                AccessList::Deny => Op::AddBlklst,
                AccessList::Allow => Op::AddWhtlst,
            },
            Request::AddAccess {
                service: *service,
                list: *list,
                entry: entry.clone(),
            },
        ),
        Command::DelAccess {
            service,
            list,
            entry,
        } => change(
            daemon,
            match list {
                AccessList::Deny => Op::DelBlklst,
                AccessList::Allow => Op::DelWhtlst,
            },
            Request::DelAccess {
                service: *service,
                list: *list,
                entry: entry.clone(),
            },
        ),
        Command::GetAccess { service, list } => {
            // DPVS prints the title and then the entries it finds: a service that does not
            // exist has none.
            let all = match daemon.call(Request::ListServices { service: *service })? {
                Reply::Error(e) if e.errno == Errno::Esrch && service.is_some() => Vec::new(),
                Reply::Error(e) => {
                    return Err(Failure {
                        code: 1,
                        message: ipvs_strerror(Op::GetAccess, e.errno).to_owned(),
                    });
                }
                Reply::Services(v) => v,
                other => return Err(unexpected(&other)),
            };
            out.push_str(&format::access_lists(&all, *list));
            Ok(())
        }
        Command::GetLaddr { service, numeric } => {
            match query(
                daemon,
                Op::GetService,
                Request::ListLaddrs { service: *service },
            )? {
                Reply::Laddrs(v) => {
                    out.push_str(&format::laddrs(&v, *numeric, resolver));
                    Ok(())
                }
                other => Err(unexpected(&other)),
            }
        }
    }
}

fn list(
    what: &ListWhat,
    format: &Format,
    daemon: &mut dyn Daemon,
    resolver: &Resolver,
    out: &mut String,
) -> Result<(), Failure> {
    match what {
        ListWhat::All => {
            let info = match query(daemon, Op::Other, Request::GetInfo)? {
                Reply::Info(i) => i,
                other => return Err(unexpected(&other)),
            };
            let all = services(daemon, Request::ListServices { service: None })?;
            out.push_str(&format::list_all(Some(&info), &all, format, resolver));
        }
        ListWhat::Service(key) => {
            let found = services(
                daemon,
                Request::ListServices {
                    service: Some(*key),
                },
            )?;
            let Some(s) = found.first() else {
                return Err(Failure {
                    code: 1,
                    message: ipvs_strerror(Op::GetService, crate::proto::Errno::Esrch).into(),
                });
            };
            out.push_str(&format::list_service(s, format, resolver));
        }
        ListWhat::Connections => match query(daemon, Op::Other, Request::ListConns)? {
            Reply::Conns(c) => out.push_str(&format::conns(&c, format, resolver)),
            other => return Err(unexpected(&other)),
        },
        ListWhat::Timeout => match query(daemon, Op::Other, Request::GetTimeouts)? {
            Reply::Timeouts(t) => out.push_str(&format::timeouts(&t)),
            other => return Err(unexpected(&other)),
        },
        ListWhat::Daemon => {}
    }
    Ok(())
}

/// Run ipvsadm with `args` (`args[0]` = program name). Returns the exit status.
pub fn run(
    args: &[String],
    daemon: &mut dyn Daemon,
    resolver: &Resolver,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let program = args.first().map(String::as_str).unwrap_or("ipvsadm");
    let mut out = String::new();
    let result = if args.len() <= 1 {
        let all = Command::List {
            what: ListWhat::All,
            format: Format::default(),
        };
        execute(&all, daemon, resolver, &mut out)
    } else {
        match parse::parse(args, resolver, false) {
            Ok(Invocation::Help) => {
                out.push_str(&help::usage(program));
                Ok(())
            }
            Ok(Invocation::Version) => {
                out.push_str(help::VERSION);
                Ok(())
            }
            Ok(Invocation::Command(Command::Restore)) => {
                restore(program, daemon, resolver, stdin, stdout, &mut out)
            }
            Ok(Invocation::Command(c)) => execute(&c, daemon, resolver, &mut out),
            Err(e) => Err(e.into()),
        }
    };
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    match result {
        Ok(()) => 0,
        Err(f) => {
            let _ = writeln!(stderr, "{}", f.message);
            f.code
        }
    }
}

/// `-R`: one invocation per stdin line (`#` starts a comment, `ipvsadm` words are dropped, blank
/// lines skipped). Stops at the first failing line and names it.
fn restore(
    program: &str,
    daemon: &mut dyn Daemon,
    resolver: &Resolver,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
    out: &mut String,
) -> Result<(), Failure> {
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        number += 1;
        match stdin.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                return Err(Failure {
                    code: 2,
                    message: format!("ipvsadm: reading standard input: {e}"),
                });
            }
        }
        let mut argv = vec![program.to_owned()];
        argv.extend(
            line.split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .filter(|w| *w != "ipvsadm")
                .map(str::to_owned),
        );
        if argv.len() < 2 {
            continue;
        }
        let result = match parse::parse(&argv, resolver, true) {
            Ok(Invocation::Help) => {
                out.push_str(&help::usage(program));
                Ok(())
            }
            Ok(Invocation::Version) => {
                out.push_str(help::VERSION);
                Ok(())
            }
            Ok(Invocation::Command(c)) => execute(&c, daemon, resolver, out),
            Err(e) => Err(Failure::from(e)),
        };
        // Listings inside a restore file appear as they are reached.
        let _ = stdout.write_all(out.as_bytes());
        out.clear();
        if let Err(f) = result {
            return Err(Failure {
                code: f.code,
                message: format!(
                    "{}\n{program}: -R: stopped at line {number} of standard input; later lines were not applied",
                    f.message
                ),
            });
        }
    }
}
