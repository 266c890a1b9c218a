//! The control socket: a Unix stream socket speaking `ctl::proto` (one JSON object per line).
//!
//! Every connection gets its own thread; each request line gets exactly one reply line. A line
//! that is not a valid envelope, or of another protocol version, gets an `EINVAL` error reply and
//! the connection stays open: a bad client never disturbs the daemon or other clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use ctl::proto::{Envelope, Errno, ErrorReply, PROTOCOL_VERSION, Reply, Request};

/// Longest request line accepted (a whole `-R` batch is sent line by line, so this is plenty).
const MAX_LINE: usize = 1 << 20;

/// What answers requests.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> Reply;
}

/// The listening socket and its accept thread. Dropping it stops accepting and removes the
/// socket file.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Bind `path` (mode 0600, parent directory created) and serve `handler` on it.
    pub fn start(path: &Path, handler: Arc<dyn Handler>) -> anyhow::Result<ControlServer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("control socket directory {}", dir.display()))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                bail!(
                    "control socket {} is in use: is another rvsd running?",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing stale control socket {}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("binding control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 0600 {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let accept = std::thread::Builder::new()
            .name("rvs-ctl-accept".into())
            .spawn(move || accept_loop(listener, handler, stop2))?;
        Ok(ControlServer {
            path: path.to_owned(),
            stop,
            accept: Some(accept),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: UnixListener, handler: Arc<dyn Handler>, stop: Arc<AtomicBool>) {
    let mut accepted = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let handler = handler.clone();
                accepted += 1;
                let origin = format!("control socket connection {accepted}");
                let spawned = std::thread::Builder::new()
                    .name("rvs-ctl-conn".into())
                    .spawn(move || {
                        let _origin = super::origin::Scope::enter(origin);
                        serve(stream, handler)
                    });
                if let Err(e) = spawned {
                    tracing::warn!("control: cannot spawn a connection thread: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("control: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn error_reply(errno: Errno, message: impl Into<String>) -> Reply {
    Reply::Error(ErrorReply {
        errno,
        message: message.into(),
    })
}

/// Answer one raw request line.
pub fn answer_line(handler: &dyn Handler, line: &str) -> Reply {
    match serde_json::from_str::<Envelope>(line) {
        Ok(env) if env.version != PROTOCOL_VERSION => error_reply(
            Errno::Einval,
            format!(
                "protocol version {} is not supported (this rvsd speaks {PROTOCOL_VERSION})",
                env.version
            ),
        ),
        Ok(env) => handler.handle(env.request),
        Err(e) => error_reply(Errno::Einval, format!("bad request: {e}")),
    }
}

fn serve(stream: UnixStream, handler: Arc<dyn Handler>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let _ = stream.set_nonblocking(false);
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE as u64).read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if !line.ends_with('\n') && line.len() >= MAX_LINE => {
                let reply = error_reply(Errno::Einval, "request line too long");
                let _ = write_reply(&mut writer, &reply);
                return;
            }
            Ok(_) => {
                let reply = answer_line(handler.as_ref(), line.trim_end());
                if write_reply(&mut writer, &reply).is_err() {
                    return;
                }
            }
            Err(e) => {
                // Not UTF-8, or the peer went away: answer if we can, then drop the connection.
                let _ = write_reply(
                    &mut writer,
                    &error_reply(Errno::Einval, format!("bad request: {e}")),
                );
                return;
            }
        }
    }
}

/// Answer one raw request line with the reply line (without its newline).
pub fn respond(handler: &dyn Handler, line: &str) -> String {
    serde_json::to_string(&answer_line(handler, line)).unwrap_or_else(|e| {
        format!(r#"{{"error":{{"errno":"einval","message":"reply not serialisable: {e}"}}}}"#)
    })
}

fn write_reply(w: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut s = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    s.push('\n');
    w.write_all(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctl::client::Client;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, request: Request) -> Reply {
            match request {
                Request::Clear => Reply::Ok,
                _ => error_reply(Errno::Esrch, "nothing here"),
            }
        }
    }

    #[test]
    fn serves_requests_and_survives_garbage() {
        let dir = std::env::temp_dir().join(format!("rvs-ctl-test-{}", std::process::id()));
        let path = dir.join("s.sock");
        let server = ControlServer::start(&path, Arc::new(Echo)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A second daemon on the same socket is refused.
        assert!(ControlServer::start(&path, Arc::new(Echo)).is_err());

        let mut raw = UnixStream::connect(&path).unwrap();
        raw.write_all(b"this is not json\n{\"version\":99,\"request\":\"clear\"}\n")
            .unwrap();
        let mut r = BufReader::new(raw.try_clone().unwrap());
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        assert!(matches!(
            serde_json::from_str(&l).unwrap(),
            Reply::Error(ErrorReply {
                errno: Errno::Einval,
                ..
            })
        ));
        l.clear();
        r.read_line(&mut l).unwrap();
        assert!(l.contains("protocol version 99"), "{l}");

        let mut c = Client::connect(&path).unwrap();
        assert_eq!(c.call(Request::Clear).unwrap(), Reply::Ok);
        assert!(matches!(
            c.call(Request::ListConns).unwrap(),
            Reply::Error(_)
        ));
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
