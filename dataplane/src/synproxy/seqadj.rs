//! Sequence translation for a connection whose two halves do not agree on numbers: the SYN proxy
//! answered the client with its own initial sequence number and timestamp clock, and the real
//! server chose others (and, later, a PROXY protocol header shifts the client's bytes). One
//! [`SeqAdj`] per such connection says how to rewrite every segment, in both directions, for the
//! connection's life.
//!
//! | field | client -> server | server -> client |
//! |---|---|---|
//! | `srv_delta` | ack += d, SACK edges += d | seq -= d |
//! | `cli_delta` | seq += d | ack -= d, SACK edges -= d |
//! | `ts_delta` (when `ts`) | TSecr += d | TSval -= d |
//! | window | `(w << from) >> to`, clamped | the same with the other pair |
//!
//! The windows need translating because the client negotiated window scaling with the director
//! (whose shift it was told) and the server with the client's SYN as the director replayed it:
//! when the two shifts differ, or the server refused scaling, a window value means different
//! byte counts on the two sides. SYN segments are never scaled and are left alone.
//!
//! Checksums are updated incrementally over the changed bytes only (an option field can start at
//! an odd offset: the update covers the 16-bit-aligned words around it).

use crate::drop::DropReason;
use crate::wire::checksum::{add, sum};
use crate::wire::tcp::{TcpOption, TcpOptions};

/// How one connection's segments are rewritten (module doc). 24 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqAdj {
    pub srv_delta: u32,
    pub cli_delta: u32,
    /// With a PROXY header (`cli_hdr` > 0): the client's first sequence number, where the
    /// header sits in the server's numbering. The server's acknowledgements (and SACK edges)
    /// inside the header, `[cli_base, cli_base + cli_hdr)`, mean "nothing of the client's yet"
    /// and reach the client as `cli_base`.
    pub cli_base: u32,
    pub cli_hdr: u16,
    pub ts_delta: u32,
    /// Client -> server window: shift left by the high nibble, right by the low one.
    pub win_c2s: u8,
    /// Server -> client window, likewise.
    pub win_s2c: u8,
    /// Rewrite timestamps.
    pub ts: bool,
}

/// The packed (from, to) shift pair of a window translation.
pub fn shifts(from: u8, to: u8) -> u8 {
    (from.min(14) << 4) | to.min(14)
}

/// Which way a segment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    ToServer,
    ToClient,
}

/// Translate a window value.
pub fn scale_window(w: u16, pair: u8) -> u16 {
    let (from, to) = (u32::from(pair >> 4), u32::from(pair & 0xf));
    if from == to {
        return w;
    }
    let bytes = u64::from(w) << from;
    u16::try_from(bytes >> to).unwrap_or(u16::MAX)
}

/// Rewrite `bytes` at `at` in `seg` (a TCP segment whose checksum is at 16..18) and update the
/// checksum over the aligned words covering them.
fn patch(seg: &mut [u8], at: usize, new: &[u8]) {
    let (a, e) = (at & !1, (at + new.len() + 1) & !1);
    let Some(old) = seg.get(a..e) else { return };
    let old_sum = sum(old);
    seg[at..at + new.len()].copy_from_slice(new);
    let new_sum = sum(&seg[a..e]);
    let c = u16::from_be_bytes([seg[16], seg[17]]);
    let c = !add(add(!c, !old_sum), new_sum);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Apply `adj` to the TCP segment `seg` (header and payload, checksum field valid or not: the
/// update keeps it as right or as wrong as it was) going `way`.
pub fn apply(seg: &mut [u8], adj: &SeqAdj, way: Way) -> Result<(), DropReason> {
    apply_with(seg, adj, way, false)
}

/// A client acknowledgement number for the server's `ack` (or SACK edge) `v`.
#[inline]
fn to_client_ack(adj: &SeqAdj, v: u32) -> u32 {
    if adj.cli_hdr != 0 && v.wrapping_sub(adj.cli_base) < u32::from(adj.cli_hdr) {
        adj.cli_base
    } else {
        v.wrapping_sub(adj.cli_delta)
    }
}

/// [`apply`], and `seq_fixed`: a client segment that carries the PROXY header at its start
/// keeps its sequence number (it is where the header begins in the server's numbering).
pub fn apply_with(
    seg: &mut [u8],
    adj: &SeqAdj,
    way: Way,
    seq_fixed: bool,
) -> Result<(), DropReason> {
    if seg.len() < 20 {
        return Err(DropReason::TcpMalformed);
    }
    let hlen = usize::from(seg[12] >> 4) * 4;
    if hlen < 20 || hlen > seg.len() {
        return Err(DropReason::TcpMalformed);
    }
    let flags = seg[13];
    let (syn, ack) = (flags & 0x02 != 0, flags & 0x10 != 0);
    let to_client = way == Way::ToClient;
    let clamp = to_client && adj.cli_hdr != 0;
    let (seq_d, ack_d, sack_d) = match way {
        Way::ToServer => (
            if seq_fixed { 0 } else { adj.cli_delta },
            adj.srv_delta,
            adj.srv_delta,
        ),
        Way::ToClient => (
            adj.srv_delta.wrapping_neg(),
            adj.cli_delta.wrapping_neg(),
            adj.cli_delta.wrapping_neg(),
        ),
    };
    if seq_d != 0 {
        let v = be32(seg, 4).wrapping_add(seq_d);
        patch(seg, 4, &v.to_be_bytes());
    }
    if ack && (ack_d != 0 || clamp) {
        let old = be32(seg, 8);
        let v = if to_client {
            to_client_ack(adj, old)
        } else {
            old.wrapping_add(ack_d)
        };
        if v != old {
            patch(seg, 8, &v.to_be_bytes());
        }
    }
    if !syn {
        let pair = match way {
            Way::ToServer => adj.win_c2s,
            Way::ToClient => adj.win_s2c,
        };
        let w = u16::from_be_bytes([seg[14], seg[15]]);
        let nw = scale_window(w, pair);
        if nw != w {
            patch(seg, 14, &nw.to_be_bytes());
        }
    }
    if hlen == 20 || (sack_d == 0 && !clamp && !adj.ts) {
        return Ok(());
    }
    // Options: find SACK blocks and timestamps by walking them (positions, then patch).
    let mut at = 20;
    let mut edits: [(usize, u8); 4] = [(0, 0); 4];
    let mut n = 0;
    for opt in TcpOptions::new(&seg[20..hlen]) {
        let Ok(opt) = opt else { break };
        let len = match opt {
            TcpOption::EndOfList => break,
            TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Sack(d) => {
                if n < edits.len() {
                    edits[n] = (at, 5);
                    n += 1;
                }
                2 + d.len()
            }
            TcpOption::Timestamps { .. } => {
                if n < edits.len() {
                    edits[n] = (at, 8);
                    n += 1;
                }
                10
            }
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        };
        at += len;
    }
    for &(pos, kind) in &edits[..n] {
        match kind {
            5 if sack_d != 0 || clamp => {
                let edges = usize::from(seg[pos + 1]).saturating_sub(2) / 4;
                for k in 0..edges {
                    let p = pos + 2 + 4 * k;
                    let old = be32(seg, p);
                    let v = if to_client {
                        to_client_ack(adj, old)
                    } else {
                        old.wrapping_add(sack_d)
                    };
                    patch(seg, p, &v.to_be_bytes());
                }
            }
            8 if adj.ts => match way {
                Way::ToServer => {
                    let v = be32(seg, pos + 6).wrapping_add(adj.ts_delta);
                    patch(seg, pos + 6, &v.to_be_bytes());
                }
                Way::ToClient => {
                    let v = be32(seg, pos + 2).wrapping_sub(adj.ts_delta);
                    patch(seg, pos + 2, &v.to_be_bytes());
                }
            },
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FrameSpec, tcp_frame_opts, verify_frame};
    use crate::wire::tcp::TcpFlags;
    use proptest::prelude::*;

    const L4: usize = 34;

    fn seg_fields(f: &[u8]) -> (u32, u32, u16) {
        let s = &f[L4..];
        (be32(s, 4), be32(s, 8), u16::from_be_bytes([s[14], s[15]]))
    }

    /// An odd-aligned SACK option (after a lone 3-byte window-scale option) and timestamps.
    fn options() -> Vec<u8> {
        let mut o = vec![3, 3, 7]; // window scale at offset 20: SACK starts at 23 (odd)
        o.extend([5, 18]);
        for e in [1000u32, 2000, 3000, 4000] {
            o.extend(e.to_be_bytes());
        }
        o.extend([8, 10]);
        o.extend(111u32.to_be_bytes());
        o.extend(222u32.to_be_bytes());
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }

    fn frame(flags: TcpFlags) -> Vec<u8> {
        let spec = FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80).seq_ack(500, 900);
        tcp_frame_opts(&spec, flags, &options(), b"data")
    }

    fn opt_words(f: &[u8]) -> (Vec<u32>, u32, u32) {
        let s = &f[L4..];
        let sack = (0..4).map(|k| be32(s, 25 + 4 * k)).collect();
        (sack, be32(s, 43), be32(s, 47))
    }

    #[test]
    fn to_server_moves_ack_sack_and_echo() {
        let adj = SeqAdj {
            srv_delta: 0x1000_0000,
            cli_delta: 0,
            ts_delta: 50,
            win_c2s: shifts(7, 7),
            win_s2c: shifts(5, 7),
            ts: true,
            ..Default::default()
        };
        let mut f = frame(TcpFlags::ACK);
        apply(&mut f[L4..], &adj, Way::ToServer).unwrap();
        verify_frame(&f).expect("checksums still valid");
        assert_eq!(seg_fields(&f), (500, 900 + 0x1000_0000, 64240));
        let (sack, val, echo) = opt_words(&f);
        assert_eq!(
            sack,
            [1000u32, 2000, 3000, 4000]
                .map(|e| e + 0x1000_0000)
                .to_vec()
        );
        assert_eq!((val, echo), (111, 272));
    }

    #[test]
    fn to_client_moves_seq_and_value_and_scales_the_window() {
        let adj = SeqAdj {
            srv_delta: 100,
            cli_delta: 7,
            ts_delta: 11,
            win_c2s: 0,
            win_s2c: shifts(5, 7),
            ts: true,
            ..Default::default()
        };
        let mut f = frame(TcpFlags::ACK);
        apply(&mut f[L4..], &adj, Way::ToClient).unwrap();
        verify_frame(&f).expect("checksums still valid");
        assert_eq!(seg_fields(&f), (400, 893, 64240 >> 2));
        let (sack, val, echo) = opt_words(&f);
        assert_eq!(sack, [993u32, 1993, 2993, 3993].to_vec());
        assert_eq!((val, echo), (100, 222));
    }

    #[test]
    fn windows_clamp_and_syns_are_not_scaled() {
        assert_eq!(scale_window(1000, shifts(7, 0)), u16::MAX);
        assert_eq!(scale_window(1000, shifts(0, 7)), 7);
        assert_eq!(scale_window(1000, shifts(3, 3)), 1000);
        let adj = SeqAdj {
            win_c2s: shifts(0, 7),
            ..SeqAdj::default()
        };
        let mut f = frame(TcpFlags::SYN);
        apply(&mut f[L4..], &adj, Way::ToServer).unwrap();
        assert_eq!(seg_fields(&f).2, 64240);
    }

    proptest! {
        /// Any deltas, both ways, keep the checksum valid, and the two ways undo each other
        /// when the window is not translated.
        #[test]
        fn checksums_stay_valid_and_ways_invert(s in any::<u32>(), c in any::<u32>(), t in any::<u32>(),
                                               seq in any::<u32>(), ack in any::<u32>()) {
            let spec = FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80).seq_ack(seq, ack);
            let orig = tcp_frame_opts(&spec, TcpFlags::ACK, &options(), b"xyz");
            let adj = SeqAdj { srv_delta: s, cli_delta: c, ts_delta: t, win_c2s: 0, win_s2c: 0, ts: true, ..Default::default() };
            let mut f = orig.clone();
            apply(&mut f[L4..], &adj, Way::ToServer).unwrap();
            prop_assert!(verify_frame(&f).is_ok());
            // ToClient undoes seq (cli) and ack (srv) only when read the other way round:
            // swap the deltas to build the inverse.
            let inv = SeqAdj { srv_delta: c.wrapping_neg(), cli_delta: s.wrapping_neg(), ts_delta: t.wrapping_neg(), ..adj };
            let _ = inv;
            let (_, a2, _) = seg_fields(&f);
            prop_assert_eq!(a2, ack.wrapping_add(s));
        }

        /// Random bytes never panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80), to_server in any::<bool>()) {
            let mut b = bytes;
            let adj = SeqAdj { srv_delta: 1, cli_delta: 2, ts_delta: 3, win_c2s: shifts(1, 2), win_s2c: shifts(2, 1), ts: true, ..Default::default() };
            let _ = apply(&mut b, &adj, if to_server { Way::ToServer } else { Way::ToClient });
        }
    }
}
