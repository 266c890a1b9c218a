//! The SYN proxy's pure parts: cookies ([`cookie`]), the segments it reads and writes
//! ([`segment`]) and the sequence translation a proxied connection needs for its life
//! ([`seqadj`]). The worker's side (when to answer, open, translate) is
//! `worker::synproxy`; how it behaves as a whole is described in `docs/synproxy.md`.

pub mod cookie;
pub mod segment;
pub mod seqadj;

use cookie::Secrets;

/// The window-scale shift the proxy announces to clients that offer scaling (Linux's choice
/// for a receive buffer of a few megabytes; what most real servers announce too, so the window
/// translation is usually the identity).
pub const DEFAULT_WSCALE: u8 = 7;

/// What every worker needs to answer for a SYN-proxy service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynProxyConf {
    pub secrets: Secrets,
    /// Window-scale shift announced to clients.
    pub wscale: u8,
}

impl SynProxyConf {
    pub fn new(secrets: Secrets) -> SynProxyConf {
        SynProxyConf {
            secrets,
            wscale: DEFAULT_WSCALE,
        }
    }
}
