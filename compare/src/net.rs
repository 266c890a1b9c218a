//! The rig's network: the repository's test network (`scripts/testnet.sh`), plus the processes
//! the rig starts in its namespaces (nginx and the UDP echo server on each real server, the
//! director under test). Everything is removed on drop: the processes are killed by their ids
//! and `testnet.sh down` removes the namespaces (and kills whatever is left in them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// TCP port of the HTTP service and of nginx on the real servers.
pub const HTTP_PORT: u16 = 8080;
/// UDP port of the UDP service and of the echo servers.
pub const UDP_PORT: u16 = 5300;
/// The service address (on the client network in both topologies).
pub const VIP: &str = "198.18.0.100";

/// One topology of `testnet.sh` (`nat` or `dr`), named `ID-*`.
#[derive(Debug)]
pub struct Net {
    pub id: String,
    pub mode: &'static str,
    repo: PathBuf,
    /// (name, namespace, process) of everything started with [`Net::spawn`].
    procs: Vec<(String, String, Child)>,
    /// Client addresses handed out so far (see [`Net::fresh_client_address`]).
    clients: u8,
}

/// Run `cmd`, require success, return stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    let o: Output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    if !o.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Poll `f` every 100 ms until it returns true, at most `limit`.
pub fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if f()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM `child`, wait at most `limit`, then SIGKILL.
pub fn stop(child: &mut Child, limit: Duration) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Net {
    /// `testnet.sh up ID MODE`.
    pub fn up(repo: &Path, id: &str, mode: &'static str) -> Result<Net> {
        run(Command::new(repo.join("scripts/testnet.sh")).args(["up", id, mode]))
            .with_context(|| format!("make the test network {id} ({mode})"))?;
        eprintln!("network {id} ({mode}): namespaces {id}-*");
        Ok(Net {
            id: id.to_owned(),
            mode,
            repo: repo.to_owned(),
            procs: Vec::new(),
            clients: 0,
        })
    }

    pub fn ns(&self, which: &str) -> String {
        format!("{}-{which}", self.id)
    }

    /// The rig's files for this network (testnet.sh's state directory, removed by `down`).
    pub fn state(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/rvs-testnet/{}", self.id))
    }

    /// `ip netns exec NS` + the program to add.
    pub fn command(&self, which: &str, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(which), prog]);
        c
    }

    /// Run in namespace `which`, require success.
    pub fn sh(&self, which: &str, prog: &str, args: &[&str]) -> Result<String> {
        run(self.command(which, prog).args(args))
    }

    /// Start a long-running process in `which`, output to `STATE/log`; kept until drop (or
    /// [`Net::stop_proc`]). Returns its pid (`ip netns exec` execs the program).
    pub fn spawn(&mut self, which: &str, name: &str, prog: &Path, args: &[&str]) -> Result<u32> {
        let log = self.state().join(format!("{name}.log"));
        let f = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let child = self
            .command(which, &prog.display().to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .with_context(|| format!("start {} in {}", prog.display(), self.ns(which)))?;
        let pid = child.id();
        self.procs.push((name.to_owned(), which.to_owned(), child));
        Ok(pid)
    }

    /// Fail with the process's log if `name` has exited.
    pub fn check_alive(&mut self, name: &str) -> Result<()> {
        let log = self.log(name);
        let Some((_, _, c)) = self.procs.iter_mut().find(|(n, _, _)| n == name) else {
            return Ok(());
        };
        match c.try_wait()? {
            Some(st) => bail!("{name} exited ({st}):\n{log}"),
            None => Ok(()),
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.state().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// SIGTERM the process started as `name` and wait for it (bounded).
    pub fn stop_proc(&mut self, name: &str) {
        if let Some(i) = self.procs.iter().position(|(n, _, _)| n == name) {
            let (_, _, mut c) = self.procs.remove(i);
            stop(&mut c, Duration::from_secs(15));
        }
    }

    /// SIGTERM every process started in namespace `which` and wait for them (bounded).
    pub fn stop_procs_in(&mut self, which: &str) {
        let names: Vec<String> = self
            .procs
            .iter()
            .filter(|(_, w, _)| w == which)
            .map(|(n, _, _)| n.clone())
            .collect();
        for n in names {
            self.stop_proc(&n);
        }
    }

    /// Wait until something listens on TCP `port` in namespace `which`.
    pub fn wait_tcp_listen(&mut self, which: &str, port: u16, who: &str) -> Result<()> {
        let pat = format!(":{port} ");
        wait_until(
            Duration::from_secs(15),
            &format!("{who} on port {port}"),
            || {
                self.check_alive(who)?;
                Ok(self.sh(which, "ss", &["-ltnH"])?.contains(&pat))
            },
        )
    }

    /// nginx (one worker, no access log) serving `rsN` on port [`HTTP_PORT`] in each real
    /// server, and the UDP echo server (`self_exe udp-echo`) on [`UDP_PORT`] of `udp_bind`.
    pub fn start_servers(&mut self, self_exe: &Path, udp_bind: &str) -> Result<()> {
        for i in 1..=2 {
            let r = format!("r{i}");
            let dir = self.state().join(format!("nginx-{r}"));
            std::fs::create_dir_all(dir.join("www"))?;
            std::fs::write(dir.join("www/index.html"), format!("rs{i}\n"))?;
            let conf = nginx_conf(&dir);
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf)?;
            let name = format!("nginx-{r}");
            let err = dir.join("error.log");
            self.spawn(
                &r,
                &name,
                Path::new("nginx"),
                &[
                    "-c",
                    &conf_path.display().to_string(),
                    "-p",
                    &dir.display().to_string(),
                    "-e",
                    &err.display().to_string(),
                ],
            )?;
            let udp = format!("udp-echo-{r}");
            self.spawn(
                &r,
                &udp,
                self_exe,
                &[
                    "udp-echo",
                    "--bind",
                    &format!("{udp_bind}:{UDP_PORT}"),
                    "--name",
                    &format!("rs{i}"),
                    "--max-seconds",
                    "3600",
                ],
            )?;
        }
        for i in 1..=2 {
            let r = format!("r{i}");
            self.wait_tcp_listen(&r, HTTP_PORT, &format!("nginx-{r}"))?;
        }
        Ok(())
    }

    /// Give the client a new source address (198.18.0.30, .31, ...) for what it sends to the
    /// VIP and, on the routed network, to the servers. Each director gets its own: the servers
    /// keep closed connections in TIME_WAIT for a minute, and a SYN from the same address and
    /// port through another director (other TCP timestamps) would hit one of them and wait a
    /// second for its retransmission.
    pub fn fresh_client_address(&mut self) -> Result<String> {
        anyhow::ensure!(self.clients < 200, "out of client addresses");
        let a = format!("198.18.0.{}", 30 + u32::from(self.clients));
        self.clients += 1;
        self.sh("c", "ip", &["addr", "add", &format!("{a}/24"), "dev", "c0"])?;
        self.sh(
            "c",
            "ip",
            &[
                "route",
                "replace",
                &format!("{VIP}/32"),
                "dev",
                "c0",
                "src",
                &a,
            ],
        )?;
        if self.mode == "nat" {
            self.sh(
                "c",
                "ip",
                &[
                    "route",
                    "replace",
                    "default",
                    "via",
                    "198.18.0.1",
                    "src",
                    &a,
                ],
            )?;
        }
        Ok(a)
    }

    /// Forget the namespaces' neighbour caches (a director change moves who answers ARP).
    pub fn flush_neighbours(&self) {
        for w in ["c", "r1", "r2"] {
            let _ = self.sh(w, "ip", &["neigh", "flush", "all"]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (_, _, c) in &mut self.procs {
            stop(c, Duration::from_secs(10));
        }
        let _ = Command::new(self.repo.join("scripts/testnet.sh"))
            .args(["down", &self.id])
            .output();
    }
}

/// nginx's configuration for a real server: one worker, keep-alive without a request limit, no
/// access log, every temporary path inside `dir`.
pub fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n    access_log off;\n    keepalive_requests 1000000;\n    keepalive_timeout 60s;\n\
         \x20   client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
         \x20   server {{\n        listen {HTTP_PORT} reuseport backlog=4096;\n        root {d}/www;\n    }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_conf_keeps_everything_in_its_directory() {
        let c = nginx_conf(Path::new("/tmp/x/nginx-r1"));
        assert!(c.contains("listen 8080"), "{c}");
        assert!(c.contains("root /tmp/x/nginx-r1/www;"), "{c}");
        assert!(c.contains("access_log off;"));
        for line in c
            .lines()
            .filter(|l| l.contains("_path") || l.contains("pid "))
        {
            assert!(line.contains("/tmp/x/nginx-r1/"), "{line}");
        }
    }
}
