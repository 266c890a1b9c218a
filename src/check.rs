//! `rvsd --check-config FILE`: everything rvsd validates before it starts EAL, without starting
//! it. No NIC, hugepage, lcore or socket is touched, so it runs as any user on any machine
//! (a CI job, a package's post-install script, an operator before a restart).
//!
//! What is checked, in rvsd's own start-up order: the TOML file (every key, every value, names
//! of ports referred to), then the initial tables built from it (owned addresses, routes), then
//! the `[ipvs] rules` file replayed through the ipvsadm parser into a control plane of its own,
//! exactly as rvsd replays it at start. What only a running EAL can tell (that a device exists
//! and opens, that hugepages are there) is left to start-up, where errors name the device.

use std::path::Path;

use anyhow::Context;

use crate::config::{self, ConfigError};
use crate::control::plane::ControlPlane;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The file itself: unreadable, not TOML, an unknown key or a bad value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file parses, but the tables or the rules built from it do not.
    #[error("{0:#}")]
    Tables(anyhow::Error),
}

/// What a valid configuration holds, for the one-line report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub ports: usize,
    pub workers: usize,
    pub services: usize,
    pub dests: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "{}, {}, {}, {}",
            plural(self.ports, "port", "ports"),
            plural(self.workers, "worker", "workers"),
            plural(self.services, "service", "services"),
            plural(self.dests, "real server", "real servers"),
        )
    }
}

/// Validate the configuration file at `path` and the rules file it names.
pub fn check_config(path: &Path) -> Result<Summary, CheckError> {
    let conf = config::load(path)?;
    let workers = conf.worker_lcores().len();
    let plane = ControlPlane::new(&conf, workers)
        .context("building the initial tables")
        .map_err(CheckError::Tables)?;
    if let Some(rules) = &conf.rules {
        plane
            .replay_rules(rules)
            .with_context(|| format!("{}: ipvs.rules", conf.file.display()))
            .map_err(CheckError::Tables)?;
    }
    let services = plane.service_listing();
    Ok(Summary {
        ports: conf.ports.len(),
        workers,
        services: services.len(),
        dests: services.iter().map(|s| s.dests.len()).sum(),
    })
}
