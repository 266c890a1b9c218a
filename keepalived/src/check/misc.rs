//! `MISC_CHECK`: run a program (no shell, as keepalived). Exit 0 passes, any other code fails;
//! with `misc_dynamic`, 1 fails and 2..=255 pass with the weight code - 2. A program still
//! running after `misc_timeout` is killed, and fails.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Outcome;
use crate::model::Script;

pub(super) fn check(script: &Script, timeout: Duration, dynamic: bool) -> Outcome {
    let name = script.argv.join(" ");
    let mut child = match Command::new(&script.argv[0])
        .args(&script.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Outcome::failed(format!("cannot run {name:?}: {e}")),
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::failed(format!(
                    "{name:?} still running after {timeout:?}: killed"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Outcome::failed(format!("{name:?}: {e}")),
        }
    };
    match status.code() {
        Some(0) => Outcome::ok(format!("{name:?} exited 0")),
        Some(code) if dynamic && code >= 2 => Outcome {
            ok: true,
            reason: format!("{name:?} exited {code}: weight {}", code - 2),
            dynamic_weight: Some(code as u32 - 2),
        },
        Some(code) => Outcome::failed(format!("{name:?} exited {code}")),
        None => Outcome::failed(format!("{name:?} killed by a signal")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Script {
        Script::parse(text).unwrap()
    }

    #[test]
    fn exit_codes() {
        let t = Duration::from_secs(5);
        assert!(check(&s("/bin/true"), t, false).ok);
        assert!(!check(&s("/bin/false"), t, false).ok);
        let dir = std::env::temp_dir().join(format!("rvs-ka-misc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = |code: u32| {
            let p = dir.join(format!("exit{code}.sh"));
            std::fs::write(&p, format!("exit {code}\n")).unwrap();
            s(&format!("/bin/sh {}", p.display()))
        };
        let o = check(&script(12), t, true);
        assert_eq!((o.ok, o.dynamic_weight), (true, Some(10)));
        assert!(!check(&script(12), t, false).ok);
        assert!(!check(&script(1), t, true).ok);
        std::fs::remove_dir_all(&dir).unwrap();
        let o = check(&s("/bin/sleep 5"), Duration::from_millis(200), false);
        assert!(!o.ok && o.reason.contains("killed"), "{o:?}");
        assert!(!check(&s("/nonexistent/prog"), t, false).ok);
    }
}
