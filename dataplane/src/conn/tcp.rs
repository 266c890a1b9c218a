//! IPVS's TCP connection state machine (`ip_vs_proto_tcp.c`, the normal `tcp_states[]` table, not
//! the `secure_tcp` one), reproduced cell for cell.
//!
//! Three sub-tables by direction: INPUT (client -> RS, NAT/FULLNAT), OUTPUT (RS -> client) and
//! INPUT_ONLY (client -> RS while no reply has been seen, i.e. always in DR/TUN). Each is indexed
//! by the flag class of the segment, rst > syn > fin > ack. A segment with none of the four flags
//! moves the connection to CLOSE, as the kernel does (`new_state` starts as CLOSE there).

/// TCP connection states, in IPVS's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    None as NO, SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

impl TcpState {
    /// Every state, in IPVS order (the index is `state as usize`).
    pub const ALL: [TcpState; 11] = [NO, ES, SS, SR, FW, TW, CL, CW, LA, LI, SA];

    /// The name `ipvsadm -Lc` prints.
    pub const fn name(self) -> &'static str {
        match self {
            NO => "NONE",
            ES => "ESTABLISHED",
            SS => "SYN_SENT",
            SR => "SYN_RECV",
            FW => "FIN_WAIT",
            TW => "TIME_WAIT",
            CL => "CLOSE",
            CW => "CLOSE_WAIT",
            LA => "LAST_ACK",
            LI => "LISTEN",
            SA => "SYNACK",
        }
    }

    /// Default timeout in seconds (`tcp_timeouts[]`, as `ip_vs_proto_tcp.c` sets them).
    pub const fn default_timeout_secs(self) -> u32 {
        match self {
            NO => 2,
            ES => 900,
            SS => 120,
            SR => 60,
            FW => 120,
            TW => 120,
            CL => 10,
            CW => 60,
            LA => 30,
            LI => 120,
            SA => 120,
        }
    }

    /// Counted in the dest's active connections (`tcp_state_active_table`): ESTABLISHED,
    /// SYN_SENT, SYN_RECV, SYNACK. All other states count as inactive.
    pub const fn is_active(self) -> bool {
        matches!(self, ES | SS | SR | SA)
    }
}

/// Which sub-table a segment uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpDir {
    /// Client -> real server, on a connection whose replies pass the director.
    Input,
    /// Real server -> client (reply).
    Output,
    /// Client -> real server while no reply has been seen (`IP_VS_CONN_F_NOOUTPUT`: DR, TUN).
    InputOnly,
}

/// TCP header flag bits (byte 13 of the header).
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

// Flag classes, the kernel's `tcp_state_idx`.
const SYN: usize = 0;
const FIN: usize = 1;
const ACK: usize = 2;
const RST: usize = 3;

/// The flag class of a segment: rst > syn > fin > ack; `None` for none of them.
const fn flag_class(flags: u8) -> Option<usize> {
    if flags & TCP_RST != 0 {
        Some(RST)
    } else if flags & TCP_SYN != 0 {
        Some(SYN)
    } else if flags & TCP_FIN != 0 {
        Some(FIN)
    } else if flags & TCP_ACK != 0 {
        Some(ACK)
    } else {
        None
    }
}

type Row = [TcpState; 11];

/// `tcp_states[]`, columns in [`TcpState::ALL`] order: NO ES SS SR FW TW CL CW LA LI SA.
const INPUT: [Row; 4] = [
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];
const OUTPUT: [Row; 4] = [
    /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];
const INPUT_ONLY: [Row; 4] = [
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The next state for a segment with TCP header flags `flags` seen in direction `dir`.
pub const fn transition(state: TcpState, dir: TcpDir, flags: u8) -> TcpState {
    let Some(class) = flag_class(flags) else {
        return CL;
    };
    let table = match dir {
        TcpDir::Input => &INPUT,
        TcpDir::Output => &OUTPUT,
        TcpDir::InputOnly => &INPUT_ONLY,
    };
    table[class][state as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SYN_ACK: u8 = TCP_SYN | TCP_ACK;
    const FIN_ACK: u8 = TCP_FIN | TCP_ACK;

    fn walk(start: TcpState, steps: &[(TcpDir, u8, TcpState)]) {
        let mut s = start;
        for (i, (dir, flags, want)) in steps.iter().enumerate() {
            s = transition(s, *dir, *flags);
            assert_eq!(s, *want, "step {i}: {dir:?} flags {flags:#04x}");
        }
    }

    #[test]
    fn nat_handshake_data_and_client_close() {
        use TcpDir::{Input as I, Output as O};
        walk(
            NO,
            &[
                (I, TCP_SYN, SR),
                (O, SYN_ACK, SR),
                (I, TCP_ACK, ES),
                (I, TCP_ACK | 0x08, ES), // PSH|ACK
                (O, TCP_ACK, ES),
                (I, FIN_ACK, CW),
                (O, TCP_ACK, CW),
                (O, FIN_ACK, TW),
                (I, TCP_ACK, TW),
            ],
        );
    }

    #[test]
    fn nat_server_closes_first() {
        use TcpDir::{Input as I, Output as O};
        walk(
            ES,
            &[
                (O, FIN_ACK, FW),
                (I, TCP_ACK, FW),
                (I, FIN_ACK, TW),
                (O, TCP_ACK, TW),
            ],
        );
    }

    #[test]
    fn dr_path_uses_input_only() {
        use TcpDir::InputOnly as X;
        walk(
            NO,
            &[
                (X, TCP_SYN, SR),
                (X, TCP_ACK, ES),
                (X, FIN_ACK, FW), // the DR teardown governed by tcpfin
                (X, TCP_ACK, FW),
                (X, TCP_RST, CL),
            ],
        );
    }

    #[test]
    fn resets_and_flagless_segments() {
        assert_eq!(transition(ES, TcpDir::Input, TCP_RST), CL);
        assert_eq!(transition(ES, TcpDir::Output, TCP_RST | TCP_ACK), CL);
        assert_eq!(transition(SR, TcpDir::Input, TCP_RST), SR);
        assert_eq!(transition(SA, TcpDir::Input, TCP_RST), SR);
        assert_eq!(transition(SA, TcpDir::InputOnly, TCP_RST), CL);
        assert_eq!(transition(SS, TcpDir::Output, TCP_RST), SS);
        assert_eq!(transition(TW, TcpDir::Output, TCP_RST), TW);
        // rst beats syn, syn beats fin.
        assert_eq!(transition(ES, TcpDir::Input, TCP_SYN | TCP_RST), CL);
        assert_eq!(transition(NO, TcpDir::Input, TCP_SYN | TCP_FIN), SR);
        // No rst/syn/fin/ack: CLOSE.
        assert_eq!(transition(ES, TcpDir::Input, 0), CL);
        assert_eq!(transition(ES, TcpDir::Input, 0x08), CL);
    }

    #[test]
    fn server_syn_and_listen() {
        assert_eq!(transition(NO, TcpDir::Output, TCP_SYN), SS);
        assert_eq!(transition(LI, TcpDir::Output, TCP_ACK), ES);
        assert_eq!(transition(LI, TcpDir::Input, TCP_ACK), LI);
        assert_eq!(transition(CL, TcpDir::Input, TCP_SYN), SR);
    }

    #[test]
    fn names_timeouts_activity() {
        let names: Vec<&str> = TcpState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "NONE",
                "ESTABLISHED",
                "SYN_SENT",
                "SYN_RECV",
                "FIN_WAIT",
                "TIME_WAIT",
                "CLOSE",
                "CLOSE_WAIT",
                "LAST_ACK",
                "LISTEN",
                "SYNACK"
            ]
        );
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        assert_eq!(ES.default_timeout_secs(), 900);
        assert_eq!(FW.default_timeout_secs(), 120);
        let active: Vec<TcpState> = TcpState::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active, [ES, SS, SR, SA]);
    }

    proptest! {
        #[test]
        fn every_input_yields_a_valid_state(s in 0usize..11, d in 0usize..3, flags: u8) {
            let dir = [TcpDir::Input, TcpDir::Output, TcpDir::InputOnly][d];
            let next = transition(TcpState::ALL[s], dir, flags);
            prop_assert!(TcpState::ALL.contains(&next));
            // Only the flag class matters.
            let class_bits = flags & (TCP_RST | TCP_SYN | TCP_FIN | TCP_ACK);
            prop_assert_eq!(next, transition(TcpState::ALL[s], dir, class_bits));
        }
    }
}
