//! SIGHUP in the running daemon: read the configuration file again and apply what changed
//! (`crate::reload` computes it, the control plane applies the table changes, this file the
//! idle-polling and metrics settings). A file that does not read or validate, or that changes
//! something only a restart can change, is refused whole and nothing changes; rvsd goes on with
//! the configuration it has.

use std::sync::Arc;

use crate::config::Validated;
use crate::control::ControlPlane;
use crate::control::metrics::{MetricsServer, RuntimeSamples};
use crate::reload::{self, RulesModel};

use super::idle::IdleShared;

/// What a reload needs to compare with and to change.
pub struct Running {
    /// The configuration as last read.
    pub conf: Validated,
    /// Its `[ipvs] rules`, as last read.
    pub rules: RulesModel,
    pub idle: Arc<IdleShared>,
    pub metrics: Option<MetricsServer>,
}

impl Running {
    /// Re-read `self.conf.file` and apply it. Logs one line per change and one summary.
    /// Returns the changes that were not applied, or why the file was refused whole.
    pub fn reload(
        &mut self,
        control: &Arc<ControlPlane>,
        samples: &Arc<RuntimeSamples>,
    ) -> Result<Vec<String>, String> {
        let file = self.conf.file.clone();
        tracing::info!(file = %file.display(), "reloading the configuration");
        let refuse = |why: String| {
            let why = format!("reload refused, nothing changed: {why}");
            tracing::error!("{why}");
            Err(why)
        };
        let new = match crate::config::load(&file) {
            Ok(c) => c,
            Err(e) => return refuse(e.to_string()),
        };
        let restart = reload::restart_only(&self.conf, &new);
        if !restart.is_empty() {
            return refuse(format!(
                "{}: {} changed, which needs a restart (systemctl restart rvsd keeps the \
                 connections)",
                file.display(),
                restart.join(", ")
            ));
        }
        let rules = match reload::read_rules(new.rules.as_deref()) {
            Ok(r) => r,
            Err(e) => return refuse(format!("{}: ipvs.rules: {e:#}", file.display())),
        };
        let mut requests = reload::net_requests(&self.conf, &new);
        requests.extend(reload::fwmark_requests(&self.conf, &new));
        requests.extend(reload::rules_requests(&self.rules, &rules));
        let outcome = control.apply_reload(&self.conf, &new, requests);
        for r in &outcome.refused {
            tracing::warn!("reload: not applied: {r}");
        }
        let settings = reload::settings(&self.conf, &new);
        let mut applied = outcome.applied;
        if let Some(idle) = settings.idle {
            self.idle.set(idle);
            tracing::info!(
                busy = idle.busy,
                spin = idle.spin,
                sleep_min_us = idle.sleep_min_us,
                sleep_max_us = idle.sleep_max_us,
                "reload: idle polling changed"
            );
            applied += 1;
        }
        if let Some(metrics) = settings.metrics {
            self.metrics = None; // the old listener closes first (the address may be the same)
            self.metrics = metrics.and_then(|addr| super::serve_metrics(addr, control, samples));
            tracing::info!(metrics = ?metrics, "reload: metrics address changed");
            applied += 1;
        }
        tracing::info!(file = %file.display(), applied, refused = outcome.refused.len(),
            "reload done");
        self.conf = new;
        self.rules = rules;
        Ok(outcome.refused)
    }
}
