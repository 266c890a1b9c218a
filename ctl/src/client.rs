//! Blocking client for the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::proto::{
    DEFAULT_SOCKET, Envelope, Errno, Hello, PROTOCOL_VERSION, Reply, Request, SOCKET_ENV,
    parse_reply_line,
};

/// Why talking to the daemon failed (as opposed to the daemon refusing a request).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to rvsd at {path}: {source} (is rvsd running? set {SOCKET_ENV} to its control socket)"
    )]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: bad reply from rvsd: {detail}")]
    Protocol { path: PathBuf, detail: String },
}

/// The socket path: `$RVS_SOCKET` if set, else the default.
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// A connection to rvsd's control socket.
///
/// It speaks [`PROTOCOL_VERSION`]; when a version-1 daemon refuses that version, it resends the
/// request as version 1 and keeps speaking version 1 on this connection (every request of
/// version 1 means the same in version 2).
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    version: u32,
}

impl Client {
    /// Connect to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        let writer = stream.try_clone().map_err(|source| ClientError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Client {
            path: path.to_owned(),
            reader: BufReader::new(stream),
            writer,
            version: PROTOCOL_VERSION,
        })
    }

    /// The protocol version this connection speaks (lowered to 1 after a version-1 daemon
    /// refused the newer one).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Send one request and wait for its reply.
    pub fn call(&mut self, request: Request) -> Result<Reply, ClientError> {
        let reply = self.call_as(self.version, &request)?;
        if self.version > 1 && refuses_version(&reply) {
            self.version = 1;
            return self.call_as(1, &request);
        }
        Ok(reply)
    }

    /// What the daemon speaks. A version-1 daemon does not know the question: its answer is
    /// made up from what it showed (protocol 1, the version-1 requests, no daemon version).
    pub fn hello(&mut self) -> Result<Hello, ClientError> {
        match self.call(Request::Hello)? {
            Reply::Hello(h) => Ok(h),
            Reply::Error(_) if self.version == 1 => Ok(Hello {
                protocol_version: 1,
                min_protocol_version: 1,
                daemon_version: String::new(),
                requests: Request::NAMES
                    .iter()
                    .filter(|n| **n != "hello")
                    .map(|n| (*n).to_owned())
                    .collect(),
            }),
            other => Err(ClientError::Protocol {
                path: self.path.clone(),
                detail: format!("unexpected answer to hello: {other:?}"),
            }),
        }
    }

    fn call_as(&mut self, version: u32, request: &Request) -> Result<Reply, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let envelope = Envelope {
            version,
            request: request.clone(),
        };
        let mut line = serde_json::to_string(&envelope).map_err(|e| ClientError::Protocol {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(io)?;
        let mut answer = String::new();
        let n = self.reader.read_line(&mut answer).map_err(io)?;
        if n == 0 {
            return Err(ClientError::Protocol {
                path: self.path.clone(),
                detail: "connection closed before a reply".into(),
            });
        }
        parse_reply_line(&answer)
            .map(|(_, reply)| reply)
            .map_err(|e| ClientError::Protocol {
                path: self.path.clone(),
                detail: e.to_string(),
            })
    }
}

/// A version-1 daemon's refusal of any other version (its exact words: "protocol version N is
/// not supported (this rvsd speaks 1)").
fn refuses_version(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(e)
        if e.errno == Errno::Einval && e.message.starts_with("protocol version ")
            && e.message.contains("is not supported"))
}
