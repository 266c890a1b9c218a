//! The checkers: each runs one attempt from the host's kernel (plain sockets, so through a
//! management network or a port's kernel twin, whichever route the host has) and says whether
//! the real server passed, and why not.

mod dns;
mod http;
mod misc;
mod tcp;

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::model::{CheckKind, Checker};

pub use dns::{build_query, check_answer};
pub use http::{md5_hex, status_of};

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    /// Why it failed (or what succeeded), for the log.
    pub reason: String,
    /// `misc_dynamic`: the weight the program asked for.
    pub dynamic_weight: Option<u32>,
}

impl Outcome {
    pub fn ok(reason: impl Into<String>) -> Self {
        Outcome {
            ok: true,
            reason: reason.into(),
            dynamic_weight: None,
        }
    }

    pub fn failed(reason: impl Into<String>) -> Self {
        Outcome {
            ok: false,
            reason: reason.into(),
            dynamic_weight: None,
        }
    }
}

/// Run one attempt of `c`.
pub fn run(c: &Checker) -> Outcome {
    match &c.kind {
        CheckKind::Tcp => tcp::check(c),
        CheckKind::Http {
            tls,
            urls,
            virtualhost,
        } => http::check(c, *tls, urls, virtualhost.as_deref()),
        CheckKind::Misc {
            script,
            timeout,
            dynamic,
        } => misc::check(script, *timeout, *dynamic),
        CheckKind::Dns { qtype, name } => dns::check(c, *qtype, name),
    }
}

/// A socket bound as `bindto`/`bind_port` ask (or left to the kernel), of the target's family.
fn socket_for(c: &Checker, ty: Type) -> io::Result<Socket> {
    let domain = match c.addr {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    };
    let s = Socket::new(domain, ty, None)?;
    if c.bind_addr.is_some() || c.bind_port != 0 {
        let ip = c.bind_addr.unwrap_or(match c.addr {
            IpAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
            IpAddr::V6(_) => IpAddr::from([0u16; 8]),
        });
        s.bind(&SocketAddr::new(ip, c.bind_port).into())?;
    }
    Ok(s)
}

/// Connect within `connect_timeout`; reads and writes then time out at what is left of it.
fn connect(c: &Checker) -> io::Result<(TcpStream, Instant)> {
    let deadline = Instant::now() + c.connect_timeout;
    let s = socket_for(c, Type::STREAM)?;
    s.connect_timeout(&SocketAddr::new(c.addr, c.port).into(), c.connect_timeout)?;
    let stream: TcpStream = s.into();
    set_deadline(&stream, deadline)?;
    Ok((stream, deadline))
}

fn set_deadline(stream: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))
}

/// `198.18.1.11:80`.
fn target(c: &Checker) -> String {
    crate::model::endpoint(c.addr, c.port)
}
