//! `rvsctl`: what `ip` (and DPVS's `dpip`) do, for the ports DPDK owns: `link`, `addr`, `route`,
//! `neigh`, `worker`. iproute2's layout by default, `-j` JSON for scripts.
//!
//! Layout: [`parse`] turns argv into a [`parse::Command`]; [`format`] renders replies; [`run`]
//! sends the requests through a [`Daemon`] (the control socket, or a fake in tests).
//!
//! Exit codes: 0 success; 255 a command line rvsctl does not understand (iproute2's `invarg`);
//! 2 rvsd refused the request (its message is printed) or cannot be reached (one line naming the
//! socket, as `ipvsadm` prints). Errors are one line on stderr: `rvsctl: MESSAGE`.
//!
//! Adding an object (e.g. `fwmark add|del|show`): its variants in [`parse::Command`], a line in
//! `parse::OBJECTS` and an arm in `parse::parse`, an arm in [`execute`], its renderers in
//! [`format`]; the help text below.

pub mod format;
pub mod parse;

use std::io::Write;

use serde_json::Value;

use crate::ipvsadm::Daemon;
use crate::proto::{Reply, Request};
use parse::{Command, Opts};

/// `rvsctl help`.
pub const USAGE: &str = "\
Usage: rvsctl [-j] [-s] OBJECT COMMAND [ARGS]
       rvsctl link show [-s] [[dev] PORT]
       rvsctl addr show [[dev] PORT]
       rvsctl addr {add|del} IP[/LEN] dev PORT
       rvsctl route show
       rvsctl route add {PREFIX[/LEN]|default} [via GATEWAY] dev PORT
       rvsctl route del {PREFIX[/LEN]|default}
       rvsctl neigh show [[dev] PORT]
       rvsctl neigh flush [[dev] PORT]
       rvsctl neigh add IP lladdr MAC dev PORT
       rvsctl neigh del IP dev PORT
       rvsctl worker show
       rvsctl fwmark show
       rvsctl fwmark {add|del} mark N [proto {tcp|udp|any}] dst ADDR[/LEN] [ports 80,443|1000-2000]
       rvsctl daemon show
       rvsctl daemon stop [save-state]
       rvsctl daemon reload
Options: -j  JSON output    -s  statistics (link)
The control socket is $RVS_SOCKET, /run/rvs/rvsd.sock by default.
";

/// Why a command failed: the exit status and the line for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

fn call(daemon: &mut dyn Daemon, request: Request) -> Result<Reply, Failure> {
    match daemon.call(request) {
        Ok(Reply::Error(e)) => Err(Failure {
            code: 2,
            message: format!("rvsctl: {}", e.message),
        }),
        Ok(r) => Ok(r),
        Err(e) => Err(Failure {
            code: 2,
            message: format!("rvsctl: {e}"),
        }),
    }
}

fn unexpected(reply: &Reply) -> Failure {
    let detail: String = serde_json::to_string(reply)
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect();
    Failure {
        code: 2,
        message: format!("rvsctl: unexpected reply from rvsd: {detail}"),
    }
}

fn ok(daemon: &mut dyn Daemon, request: Request) -> Result<Option<Value>, Failure> {
    match call(daemon, request)? {
        Reply::Ok => Ok(None),
        other => Err(unexpected(&other)),
    }
}

macro_rules! expect {
    ($daemon:expr, $request:expr, $variant:path) => {
        match call($daemon, $request)? {
            $variant(v) => v,
            other => return Err(unexpected(&other)),
        }
    };
}

/// Run one command; what it prints goes to `out`.
pub fn execute(
    command: &Command,
    opts: Opts,
    daemon: &mut dyn Daemon,
    out: &mut String,
) -> Result<(), Failure> {
    let json: Option<Value> = match command {
        Command::Help => {
            out.push_str(USAGE);
            None
        }
        Command::Version => {
            out.push_str(concat!("rvsctl ", env!("CARGO_PKG_VERSION"), "\n"));
            None
        }
        Command::LinkShow { dev } => {
            let mut links = expect!(daemon, Request::ListLinks, Reply::Links);
            if let Some(d) = dev {
                links.retain(|l| l.name == *d);
                if links.is_empty() {
                    return Err(no_such_port(d));
                }
            }
            if opts.json {
                Some(format::links_json(&links, opts.stats))
            } else {
                out.push_str(&format::links(&links, opts.stats));
                None
            }
        }
        Command::AddrShow { dev } => {
            let links = expect!(daemon, Request::ListLinks, Reply::Links);
            let addrs = expect!(daemon, Request::ListAddrs, Reply::Addrs);
            if let Some(d) = dev
                && !links.iter().any(|l| l.name == *d)
                && !addrs.iter().any(|a| a.port == *d)
            {
                return Err(no_such_port(d));
            }
            if opts.json {
                Some(format::addrs_json(&links, &addrs, dev.as_deref()))
            } else {
                out.push_str(&format::addrs(&links, &addrs, dev.as_deref()));
                None
            }
        }
        Command::AddrAdd(a) => ok(daemon, Request::AddAddr(a.clone()))?,
        Command::AddrDel(a) => ok(daemon, Request::DelAddr(a.clone()))?,
        Command::RouteShow => {
            let routes = expect!(daemon, Request::ListRoutes, Reply::Routes);
            if opts.json {
                Some(format::routes_json(&routes))
            } else {
                out.push_str(&format::routes(&routes));
                None
            }
        }
        Command::RouteAdd(r) => ok(daemon, Request::AddRoute(r.clone()))?,
        Command::RouteDel { prefix, len } => ok(
            daemon,
            Request::DelRoute {
                prefix: *prefix,
                len: *len,
            },
        )?,
        Command::NeighShow { dev } => {
            let neighs = expect!(
                daemon,
                Request::ListNeighs { port: dev.clone() },
                Reply::Neighs
            );
            if opts.json {
                Some(format::neighs_json(&neighs))
            } else {
                out.push_str(&format::neighs(&neighs));
                None
            }
        }
        Command::NeighFlush { dev } => {
            let n = expect!(
                daemon,
                Request::FlushNeighs { port: dev.clone() },
                Reply::Flushed
            );
            if opts.json {
                Some(serde_json::json!({ "flushed": n }))
            } else {
                if opts.stats {
                    out.push_str(&format!("*** {n} entries flushed ***\n"));
                }
                None
            }
        }
        Command::NeighAdd(n) => ok(daemon, Request::AddNeigh(n.clone()))?,
        Command::NeighDel { ip, dev } => ok(
            daemon,
            Request::DelNeigh {
                ip: *ip,
                port: dev.clone(),
            },
        )?,
        Command::FwmarkShow => {
            let rules = expect!(daemon, Request::ListFwmarkRules, Reply::FwmarkRules);
            if opts.json {
                Some(format::fwmarks_json(&rules))
            } else {
                out.push_str(&format::fwmarks(&rules));
                None
            }
        }
        Command::FwmarkAdd(r) => ok(daemon, Request::AddFwmarkRule(r.clone()))?,
        Command::FwmarkDel(r) => ok(daemon, Request::DelFwmarkRule(r.clone()))?,
        Command::DaemonShow => {
            // A version-1 rvsd does not know `hello`: what it is, is then all we can say.
            let hello = match daemon.call(Request::Hello) {
                Ok(Reply::Hello(h)) => h,
                Ok(Reply::Error(_)) => crate::proto::Hello {
                    protocol_version: 1,
                    min_protocol_version: 1,
                    daemon_version: String::new(),
                    requests: Vec::new(),
                },
                Ok(other) => return Err(unexpected(&other)),
                Err(e) => {
                    return Err(Failure {
                        code: 2,
                        message: format!("rvsctl: {e}"),
                    });
                }
            };
            if opts.json {
                Some(serde_json::to_value(&hello).unwrap_or_default())
            } else {
                out.push_str(&format::daemon(&hello));
                None
            }
        }
        Command::DaemonStop { save_state } => ok(
            daemon,
            Request::Stop {
                save_state: *save_state,
            },
        )?,
        Command::DaemonReload => ok(daemon, Request::Reload)?,
        Command::WorkerShow => {
            let workers = expect!(daemon, Request::ListWorkers, Reply::Workers);
            if opts.json {
                Some(format::workers_json(&workers))
            } else {
                out.push_str(&format::workers(&workers));
                None
            }
        }
    };
    if let Some(v) = json {
        out.push_str(&v.to_string());
        out.push('\n');
    }
    Ok(())
}

fn no_such_port(name: &str) -> Failure {
    Failure {
        code: 2,
        message: format!("rvsctl: no port named \"{name}\""),
    }
}

/// Run rvsctl with `args` (`args[0]` = program name). Returns the exit status.
pub fn run(
    args: &[String],
    daemon: &mut dyn Daemon,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let mut out = String::new();
    let result = match parse::parse(args.get(1..).unwrap_or(&[])) {
        Ok((opts, command)) => execute(&command, opts, daemon, &mut out),
        Err(e) => Err(Failure {
            code: 255,
            message: format!("rvsctl: {e}"),
        }),
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

#[cfg(test)]
mod tests;
