//! The connection table shard of one worker (docs/architecture.md, "Connections and timers"):
//! tuple keys, the bounded table with its one bucketed index over both tuples, the timer wheel,
//! and IPVS's protocol state machines.
//!
//! Invariants:
//! - A [`ConnTable`] is owned by one worker; nothing in it is shared or atomic.
//! - Capacity is fixed at construction; memory is allocated then and never again. When full,
//!   inserts fail with [`InsertError::TableFull`] and existing connections are untouched.
//! - Every connection is reachable by its in-tuple, and by its out-tuple exactly when its method's
//!   replies pass the director (NAT, FULLNAT); no two connections share an indexed tuple.
//! - Every connection is armed in the timer wheel exactly once; it is removed only by
//!   [`ConnTable::remove`] or by the expiry callback, both of which unhook index and timer.
//! - Active/inactive accounting follows IPVS: a new connection is bound as *inactive*
//!   ([`ConnFlags::INACTIVE`] set at insert unless its state is active), and each state change
//!   reports the `(active_delta, inactive_delta)` to apply to the dest
//!   ([`Transition`], [`count_delta`]). Templates ([`ConnFlags::TEMPLATE`]) count as persistent
//!   connections instead and report zero deltas.
//!
//! Use by the worker, per packet: `lookup` -> hit: `on_packet(id, dir, tcp_flags, now, &timeouts)`
//! and apply the returned deltas with [`crate::service::Dest::move_conn`]; miss on a SYN / UDP:
//! schedule, `insert`, then [`crate::service::Dest::bind_conn`] with `conn.is_inactive()`. Per
//! tick: `expire(now, budget, |id, conn| { dest.unbind_conn(..); Expiry::Remove })`.

pub mod key;
pub mod record;
pub mod table;
pub mod tcp;
pub mod timer;
pub mod udp;

use core::time::Duration;

pub use key::{ConnKey, ConnKey6, FlowKey};
pub use record::{ConnRecord, ConnRecord6, ConnRecords, RecordError};
pub use table::{
    Conn, ConnFlags, ConnId, ConnTable, ConnTableError, Dir, Expiry, InsertError, NewConn,
    Transition,
};
pub use tcp::{TcpDir, TcpState};
pub use udp::UdpState;

/// A connection's protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnState {
    Tcp(TcpState),
    Udp(UdpState),
}

impl ConnState {
    /// The state a new connection of IP protocol `proto` starts in (TCP NONE, UDP), or `None`
    /// for protocols without a state machine yet.
    pub const fn initial(proto: u8) -> Option<ConnState> {
        match proto {
            6 => Some(ConnState::Tcp(TcpState::None)),
            17 => Some(ConnState::Udp(UdpState::Normal)),
            _ => None,
        }
    }

    /// The name `ipvsadm -Lc` prints.
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::Tcp(s) => s.name(),
            ConnState::Udp(s) => s.name(),
        }
    }

    /// Counted as an active connection on its dest (IPVS: TCP ESTABLISHED, SYN_SENT, SYN_RECV,
    /// SYNACK; never UDP).
    pub const fn is_active(self) -> bool {
        match self {
            ConnState::Tcp(s) => s.is_active(),
            ConnState::Udp(_) => false,
        }
    }
}

/// `(active_delta, inactive_delta)` to apply to a dest when a connection goes from `old` to
/// `new` (IPVS flips `IP_VS_CONN_F_INACTIVE` exactly when activity changes).
pub const fn count_delta(old: ConnState, new: ConnState) -> (i64, i64) {
    match (old.is_active(), new.is_active()) {
        (true, false) => (-1, 1),
        (false, true) => (1, -1),
        _ => (0, 0),
    }
}

/// `--set tcp tcpfin udp` rejected a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timeout {0} s is out of range (0..=2678400, 0 keeps the current value)")]
pub struct TimeoutOutOfRange(pub u32);

/// Number of TCP states (the length of IPVS's `tcp_timeouts[]`).
pub const TCP_STATES: usize = 11;

/// Connection timeouts in seconds. `--set` changes the three IPVS exposes (established,
/// fin-wait, UDP); the configuration file may set every TCP state, as DPVS's configuration does
/// (`[ipvs.timeouts]`), the others keep IPVS's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_established: u32,
    pub tcp_fin_wait: u32,
    pub udp: u32,
    /// Every other TCP state, indexed by `TcpState as usize` (the ESTABLISHED and FIN_WAIT
    /// entries are unused: the fields above govern them).
    tcp_other: [u32; TCP_STATES],
}

impl Default for Timeouts {
    fn default() -> Self {
        let mut tcp_other = [0; TCP_STATES];
        for s in TcpState::ALL {
            tcp_other[s as usize] = s.default_timeout_secs();
        }
        Timeouts {
            tcp_established: TcpState::Established.default_timeout_secs(),
            tcp_fin_wait: TcpState::FinWait.default_timeout_secs(),
            udp: UdpState::Normal.default_timeout_secs(),
            tcp_other,
        }
    }
}

/// Largest `--set` value: 31 days.
pub const MAX_TIMEOUT: u32 = 31 * 24 * 3600;

impl Timeouts {
    /// `ipvsadm --set tcp tcpfin udp`: 0 leaves a value unchanged. All or nothing.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) -> Result<(), TimeoutOutOfRange> {
        for v in [tcp, tcpfin, udp] {
            if v > MAX_TIMEOUT {
                return Err(TimeoutOutOfRange(v));
            }
        }
        let keep = |new: u32, old: u32| if new == 0 { old } else { new };
        self.tcp_established = keep(tcp, self.tcp_established);
        self.tcp_fin_wait = keep(tcpfin, self.tcp_fin_wait);
        self.udp = keep(udp, self.udp);
        Ok(())
    }

    /// Set the timeout of one TCP state (configuration; `--set` uses [`Timeouts::set`]).
    pub fn set_tcp_state(&mut self, state: TcpState, secs: u32) -> Result<(), TimeoutOutOfRange> {
        if secs == 0 || secs > MAX_TIMEOUT {
            return Err(TimeoutOutOfRange(secs));
        }
        match state {
            TcpState::Established => self.tcp_established = secs,
            TcpState::FinWait => self.tcp_fin_wait = secs,
            s => self.tcp_other[s as usize] = secs,
        }
        Ok(())
    }

    /// How long a connection in `state` lives without packets.
    pub const fn timeout(&self, state: ConnState) -> Duration {
        let secs = match state {
            ConnState::Tcp(TcpState::Established) => self.tcp_established,
            ConnState::Tcp(TcpState::FinWait) => self.tcp_fin_wait,
            ConnState::Tcp(s) => self.tcp_other[s as usize],
            ConnState::Udp(_) => self.udp,
        };
        Duration::from_secs(secs as u64)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_tcp_state_timeout_can_be_configured() {
        let mut t = Timeouts::default();
        assert_eq!(
            t.timeout(ConnState::Tcp(TcpState::TimeWait)),
            Duration::from_secs(120)
        );
        t.set_tcp_state(TcpState::TimeWait, 5).unwrap();
        t.set_tcp_state(TcpState::Established, 50).unwrap();
        assert_eq!(
            t.timeout(ConnState::Tcp(TcpState::TimeWait)),
            Duration::from_secs(5)
        );
        assert_eq!(t.tcp_established, 50);
        t.set(0, 7, 0).unwrap();
        assert_eq!(
            t.timeout(ConnState::Tcp(TcpState::TimeWait)),
            Duration::from_secs(5)
        );
        assert_eq!(
            t.timeout(ConnState::Tcp(TcpState::FinWait)),
            Duration::from_secs(7)
        );
        assert_eq!(
            t.set_tcp_state(TcpState::Close, 0),
            Err(TimeoutOutOfRange(0))
        );
        assert!(t.set_tcp_state(TcpState::Close, MAX_TIMEOUT + 1).is_err());
    }

    use super::*;

    #[test]
    fn deltas_follow_activity() {
        let t = |s| ConnState::Tcp(s);
        assert_eq!(
            count_delta(t(TcpState::None), t(TcpState::SynRecv)),
            (1, -1)
        );
        assert_eq!(
            count_delta(t(TcpState::SynRecv), t(TcpState::Established)),
            (0, 0)
        );
        assert_eq!(
            count_delta(t(TcpState::Established), t(TcpState::FinWait)),
            (-1, 1)
        );
        assert_eq!(
            count_delta(t(TcpState::FinWait), t(TcpState::Close)),
            (0, 0)
        );
        let u = ConnState::Udp(UdpState::Normal);
        assert_eq!(count_delta(u, u), (0, 0));
        assert!(!u.is_active());
    }

    #[test]
    fn timeouts_set_and_lookup() {
        let mut t = Timeouts::default();
        assert_eq!((t.tcp_established, t.tcp_fin_wait, t.udp), (900, 120, 300));
        t.set(0, 30, 0).unwrap();
        assert_eq!((t.tcp_established, t.tcp_fin_wait, t.udp), (900, 30, 300));
        assert!(t.set(1, 1, MAX_TIMEOUT + 1).is_err());
        assert_eq!(t.tcp_established, 900);
        let fw = ConnState::Tcp(TcpState::FinWait);
        assert_eq!(t.timeout(fw), Duration::from_secs(30));
        let cl = ConnState::Tcp(TcpState::Close);
        assert_eq!(t.timeout(cl), Duration::from_secs(10));
        let udp = ConnState::Udp(UdpState::Normal);
        assert_eq!(t.timeout(udp), Duration::from_secs(300));
        assert_eq!(ConnState::initial(6).unwrap().name(), "NONE");
        assert_eq!(ConnState::initial(17).unwrap().name(), "UDP");
        assert!(ConnState::initial(1).is_none());
    }
}
