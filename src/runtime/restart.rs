//! Restart with state in the runtime: loading `--state-file` before the workers start (tables
//! to the control plane, templates to the shared table, connections split by owner worker),
//! writing it after the workers stopped, and the stop and reload requests that come through
//! the control socket (`rvsctl daemon stop [save-state]|reload`), which only the main loop can
//! carry out.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::control::ControlPlane;
use crate::control::metrics::RuntimeSamples;

use super::{RunOptions, hup, poll};

/// A stop or reload asked for through the control socket (`rvsctl daemon stop|reload`).
pub(super) fn daemon_op(
    op: crate::control::plane::DaemonOp,
    running: &mut hup::Running,
    control: &Arc<ControlPlane>,
    samples: &Arc<RuntimeSamples>,
    opts: &RunOptions,
    stop: &AtomicBool,
    save: &AtomicBool,
) {
    use crate::control::plane::DaemonOp;
    use ctl::proto::{Errno, ErrorReply, Reply};
    let einval = |message: String| {
        Reply::Error(ErrorReply {
            errno: Errno::Einval,
            message,
        })
    };
    match op {
        DaemonOp::Stop { save_state, reply } => {
            if save_state && opts.state_file.is_none() {
                let _ = reply.send(einval(
                    "rvsd runs without --state-file: there is no state file to save to".into(),
                ));
                return;
            }
            tracing::info!(save_state, from = "control socket", "stop requested");
            save.store(save_state, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
            let _ = reply.send(Reply::Ok);
        }
        DaemonOp::Reload(reply) => {
            let answer = match running.reload(control, samples) {
                Ok(refused) if refused.is_empty() => Reply::Ok,
                Ok(refused) => einval(format!("reload applied, except: {}", refused.join("; "))),
                Err(why) => einval(why),
            };
            let _ = reply.send(answer);
        }
    }
}

/// The connections of a state file, split by the worker that owns them.
#[derive(Debug, Default)]
pub(super) struct Restored {
    pub(super) conns: Vec<dataplane::conn::ConnRecords>,
    /// Time since the file was written.
    pub(super) elapsed: Duration,
    /// When the file was written (for the gap measurement), when one was loaded.
    pub(super) saved_unix_ms: Option<u64>,
    /// The loaded file, removed once the ports are up (a start that fails before leaves it
    /// for the next attempt).
    pub(super) consumed: Option<PathBuf>,
}

/// Load `--state-file` if there is one: the control plane takes its tables back, the
/// connections are split by owner worker (the steering function: the client endpoint's hash,
/// [`dataplane::steer::Steering::client_owner`] or `client_owner6`, as the packets of either
/// direction find it; a FULLNAT connection, FULLNAT6 and NAT64 ones included, whose local port
/// lies in another worker's partition, possible only when the worker count changed, cannot be
/// served by one worker, its replies going by the port's partition, and is left out). A file that
/// cannot be used is set aside as `FILE.bad` with the reason logged, and rvsd starts empty; a
/// loaded file is removed once the ports are up, so a later crash does not bring back stale
/// connections.
pub(super) fn load_state(
    opts: &RunOptions,
    control: &ControlPlane,
    n_workers: usize,
    epoch: std::time::Instant,
) -> Restored {
    let mut out = Restored {
        conns: (0..n_workers)
            .map(|_| dataplane::conn::ConnRecords::default())
            .collect(),
        ..Restored::default()
    };
    let Some(path) = &opts.state_file else {
        return out;
    };
    if !path.exists() {
        tracing::info!(file = %path.display(), "no state file: starting with empty tables");
        return out;
    }
    let saved = match crate::state::read(path) {
        Ok(s) => s,
        Err(e) => {
            let mut bad = path.as_os_str().to_owned();
            bad.push(".bad");
            let moved = std::fs::rename(path, &bad).is_ok();
            tracing::error!(
                "state file refused, starting with empty tables: {e}{}",
                if moved {
                    format!(" (moved to {})", PathBuf::from(bad).display())
                } else {
                    String::new()
                }
            );
            return out;
        }
    };
    out.consumed = Some(path.clone());
    let h = &saved.header;
    let now_ms = crate::state::unix_ms();
    out.elapsed = Duration::from_millis(now_ms.saturating_sub(h.saved_unix_ms));
    out.saved_unix_ms = Some(h.saved_unix_ms);
    let summary = control.restore(h);
    for r in &summary.refused {
        tracing::warn!("state file: not restored: {r}");
    }
    let templates = control.import_templates(poll::now(epoch), out.elapsed, &h.templates);
    let steering = dataplane::steer::Steering::new(u16::try_from(n_workers).unwrap_or(u16::MAX));
    let mut split_fullnat = 0usize;
    let fullnat = dataplane::service::ForwardMethod::FullNat;
    for c in saved.conns {
        let owner = usize::from(steering.client_owner(c.in_key.src, c.in_key.sport));
        if c.method == fullnat && usize::from(steering.lport_owner(c.out_key.dport)) != owner {
            split_fullnat += 1;
            continue;
        }
        if let Some(v) = out.conns.get_mut(owner) {
            v.v4.push(c);
        }
    }
    // IPv6 connections: the client's IPv6 endpoint (`Steering::flow_owner6`); a FULLNAT6
    // reply to [LIP6]:lport and a NAT64 reply to LIP:lport (IPv4) both go by the lport.
    let mut total6 = 0usize;
    for c in saved.conns6 {
        let owner = usize::from(steering.client_owner6(c.in_key.src, c.in_key.sport));
        if c.method == fullnat && usize::from(steering.lport_owner(c.out_key.dport)) != owner {
            split_fullnat += 1;
            continue;
        }
        if let Some(v) = out.conns.get_mut(owner) {
            v.v6.push(c);
            total6 += 1;
        }
    }
    let total: usize = out.conns.iter().map(|c| c.len()).sum();
    tracing::info!(file = %path.display(), writer = %h.writer, age_ms = out.elapsed.as_millis() as u64,
        services = h.services.len(), conns = total, conns6 = total6, tables_applied = summary.applied,
        counters_carried = summary.carried, templates, saved_templates = h.templates.len(),
        fullnat_other_partition = split_fullnat,
        old_workers = h.workers, "state file loaded");
    out
}

/// Write the state file of a stop with state: the control plane's tables and every worker's
/// exported connections.
pub(super) fn save_state(
    path: &std::path::Path,
    control: &ControlPlane,
    exports: crossbeam_channel::Receiver<(usize, dataplane::conn::ConnRecords)>,
    n_workers: usize,
    epoch: std::time::Instant,
) {
    let started = std::time::Instant::now();
    let mut header = control.state_header();
    header.writer = crate::cli::version().to_owned();
    header.workers = n_workers;
    header.saved_unix_ms = crate::state::unix_ms();
    header.templates = control.export_templates(poll::now(epoch));
    let mut conns = dataplane::conn::ConnRecords::default();
    let mut from = 0;
    for (_, part) in exports.try_iter() {
        conns.extend(part);
        from += 1;
    }
    if from < n_workers {
        tracing::warn!(
            exported = from,
            workers = n_workers,
            "not every worker exported its connections"
        );
    }
    let (n, n6) = (conns.len(), conns.v6.len());
    let saved = crate::state::Saved {
        header,
        conns: conns.v4,
        conns6: conns.v6,
    };
    match crate::state::write(path, &saved) {
        Ok(()) => tracing::info!(file = %path.display(), conns = n, conns6 = n6,
            services = saved.header.services.len(), templates = saved.header.templates.len(),
            ms = started.elapsed().as_millis() as u64, "state saved"),
        Err(e) => tracing::error!(file = %path.display(), "cannot write the state file: {e}"),
    }
}
