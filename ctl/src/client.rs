//! Blocking client for the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::proto::{DEFAULT_SOCKET, Envelope, Reply, Request, SOCKET_ENV};

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
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
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
        })
    }

    /// Send one request and wait for its reply.
    pub fn call(&mut self, request: Request) -> Result<Reply, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line =
            serde_json::to_string(&Envelope::new(request)).map_err(|e| ClientError::Protocol {
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
        serde_json::from_str(&answer).map_err(|e| ClientError::Protocol {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }
}
