//! The embryonic-connection defence (the purpose of IPVS's `drop_entry`): when a worker's
//! connection table passes its high watermark (7/8 full), connections that never got past
//! their first packet (TCP in SYN_RECV; NAT/FULLNAT UDP flows that saw no reply) are given at
//! most [`EMBRYO_GRACE`] more to live. A spoofed SYN flood fills the table with such entries and
//! would otherwise lock real clients out until they time out (60 s for SYN_RECV); a real client
//! completes its handshake well within the grace, which moves it out of SYN_RECV. Established
//! connections are never touched.
//!
//! Each tick under pressure examines [`SWEEP_BUDGET`] slots from a cursor that wraps around the
//! table, so a full table is covered in `capacity / SWEEP_BUDGET` ticks with bounded work per
//! tick. Every connection shortened is counted (`rvs_worker_embryonic_shortened_total`).

use core::time::Duration;

use crate::conn::{Conn, ConnFlags, ConnId, ConnState, TcpState};
use crate::packet::PacketBuf;
use crate::service::ForwardMethod;
use crate::time::Instant;

use super::State;

/// What an embryonic connection has left once the table is under pressure.
pub const EMBRYO_GRACE: Duration = Duration::from_secs(1);
/// Slots examined per tick while under pressure.
pub const SWEEP_BUDGET: usize = 4096;

/// Whether `c` never got past its first packet.
fn embryonic(c: &Conn) -> bool {
    match c.state() {
        ConnState::Tcp(s) => s == TcpState::SynRecv,
        ConnState::Udp(_) => {
            c.flags().contains(ConnFlags::NO_OUTPUT)
                && matches!(c.method(), ForwardMethod::Masq | ForwardMethod::FullNat)
        }
    }
}

impl<B: PacketBuf> State<B> {
    /// Shorten embryonic connections while the table is above its high watermark.
    pub(super) fn relieve_pressure(&mut self, now: Instant) {
        let cap = self.conns.capacity();
        if cap == 0 || self.conns.len() * 8 < cap * 7 {
            return;
        }
        let limit = now + EMBRYO_GRACE;
        for _ in 0..SWEEP_BUDGET.min(cap) {
            let id = ConnId(self.pressure_cursor as u32);
            self.pressure_cursor = (self.pressure_cursor + 1) % cap;
            let shorten = self
                .conns
                .get(id)
                .is_some_and(|c| embryonic(c) && c.deadline() > limit);
            if shorten {
                self.conns.set_deadline(id, limit);
                self.counters.embryonic_shortened += 1;
            }
        }
    }
}
