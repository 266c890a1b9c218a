//! Readiness for systemd (`Type=notify`): `READY=1` goes to `$NOTIFY_SOCKET` once rvsd's control
//! socket accepts connections, so `systemctl start rvsd` returns when `ipvsadm` can be used.
//!
//! The control socket is the last thing start-up brings up (after EAL, ports, tables and
//! workers), so "the socket accepts a connection" is exactly "rvsd is ready". A watcher thread
//! polls it, which keeps the notification out of the runtime's start-up sequence. Without
//! `$NOTIFY_SOCKET` (not started by systemd) nothing is started at all.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// How often the watcher tries the control socket.
const POLL: Duration = Duration::from_millis(20);

/// If rvsd runs under systemd's notify protocol, start a thread that sends `READY=1` (with a
/// status line naming the socket) as soon as `socket` accepts a connection. Returns the thread
/// (for tests); `None` when `$NOTIFY_SOCKET` is unset.
pub fn notify_ready_when_listening(socket: PathBuf) -> Option<std::thread::JoinHandle<()>> {
    std::env::var_os("NOTIFY_SOCKET")?;
    std::thread::Builder::new()
        .name("rvs-sd-notify".to_owned())
        .spawn(move || {
            while UnixStream::connect(&socket).is_err() {
                std::thread::sleep(POLL);
            }
            let status = format!("control socket {} ready", socket.display());
            if let Err(e) = sd_notify::notify(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(&status),
            ]) {
                tracing::warn!("sd_notify READY=1 failed: {e}");
            }
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixDatagram, UnixListener};
    use std::process::{Command, Stdio};

    /// Environment variable naming the control socket for [`watcher_in_child`].
    const CHILD_CONTROL: &str = "RVS_SD_TEST_CONTROL";

    /// Runs in a child process started by [`ready_only_once_the_control_socket_listens`] with
    /// `NOTIFY_SOCKET` set in its environment (setting it in this multi-threaded test process
    /// would need `unsafe`); does nothing when run on its own.
    #[test]
    #[ignore = "helper: run as a child process by ready_only_once_the_control_socket_listens"]
    fn watcher_in_child() {
        let Some(control) = std::env::var_os(CHILD_CONTROL) else {
            return;
        };
        let watcher = notify_ready_when_listening(PathBuf::from(control))
            .expect("NOTIFY_SOCKET is set for the child");
        watcher.join().unwrap();
    }

    #[test]
    fn ready_only_once_the_control_socket_listens() {
        let dir = std::env::temp_dir().join(format!("rvs-sd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let notify_path = dir.join("notify");
        let control = dir.join("control.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "systemd::tests::watcher_in_child", "--ignored"])
            .args(["--test-threads", "1", "--quiet"])
            .env("NOTIFY_SOCKET", &notify_path)
            .env(CHILD_CONTROL, &control)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 256];
        // Not listening yet: nothing is sent.
        notify
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let early = notify.recv(&mut buf);
        let listener = UnixListener::bind(&control).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let got = notify.recv(&mut buf);
        let status = child.wait().unwrap();
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            early.is_err(),
            "READY sent before the control socket listened"
        );
        let n = got.expect("READY=1 once the control socket listens");
        assert!(status.success(), "child: {status}");
        let msg = String::from_utf8_lossy(&buf[..n]);
        assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
        assert!(
            msg.contains(&format!(
                "STATUS=control socket {} ready",
                control.display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn nothing_without_notify_socket() {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            assert!(notify_ready_when_listening(PathBuf::from("/nonexistent")).is_none());
        }
    }
}
