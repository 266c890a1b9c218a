//! IPVS's UDP "state machine": one state, `UDP`, whose timeout (300 s, `--set ... udp`) is
//! refreshed by every packet. UDP connections are never active: they count as InActConn, because
//! IPVS binds every new connection as inactive and only TCP/SCTP transitions make it active.

/// The only UDP state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UdpState {
    /// `IP_VS_UDP_S_NORMAL`, printed `UDP`.
    Normal,
}

impl UdpState {
    /// The name `ipvsadm -Lc` prints.
    pub const fn name(self) -> &'static str {
        "UDP"
    }

    /// Default timeout in seconds.
    pub const fn default_timeout_secs(self) -> u32 {
        300
    }
}
