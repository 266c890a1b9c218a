//! SYN cookies as Linux makes them (`net/ipv4/syncookies.c`), so the director can answer a SYN
//! without keeping anything and recognise the client's ACK later.
//!
//! The initial sequence number sent to the client is
//!
//! ```text
//! cookie = H(key0; saddr, daddr, sport, dport, 0) + client_isn + (count << 24)
//!        + ((H(key1[count]; saddr, daddr, sport, dport, count) + mss_index) & 0xffffff)
//! ```
//!
//! with `H` SipHash-2-4 over the 16 bytes `saddr, daddr, sport, dport, count` (addresses and
//! ports in network order, `count` little-endian), `count` the minute counter (seconds / 60) and
//! `mss_index` the client's MSS rounded down into [`MSS_TABLE`] (Linux's `msstab`). An ACK
//! proves the cookie when `ack - 1` decodes to a count at most one minute old
//! ([`MAX_AGE`] = 2 counts, Linux's `MAX_SYNCOOKIE_AGE`) and an index inside the table.
//!
//! Window scale and SACK cannot fit in the 32 bits; as Linux does, they ride in the low
//! [`TS_BITS`] bits of the timestamp value sent in the SYN-ACK (`cookie_init_timestamp`), and
//! come back in the ACK's timestamp echo. A client without timestamps gets neither.
//!
//! Keys: `key0` is fixed for the life of the process; `key1` is derived from the master secret
//! and the rotation epoch (`count / ROTATE_COUNTS`), so the key that authenticates a cookie
//! changes every [`ROTATE_COUNTS`] minutes without any coordination. Every worker holds a copy
//! of the same [`Secrets`]: a cookie made by one worker is proved by any other, so an ACK that
//! reaches another worker than its SYN did (before steering settles, or after a worker count
//! change on restart) still opens its connection.

use core::hash::Hasher;
use std::net::Ipv4Addr;

use siphasher::sip::SipHasher24;

/// Linux's IPv4 `msstab`: the MSS values a cookie can carry (2 bits).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// Bits of the cookie that carry the count.
pub const COUNT_SHIFT: u32 = 24;
const COOKIE_MASK: u32 = (1 << COUNT_SHIFT) - 1;
/// Counts a cookie stays valid for (the current minute and the one before).
pub const MAX_AGE: u32 = 2;
/// Minutes between changes of the authenticating key.
pub const ROTATE_COUNTS: u32 = 64;
/// Low bits of the timestamp value that carry the options.
pub const TS_BITS: u32 = 6;
const TS_MASK: u32 = (1 << TS_BITS) - 1;
/// Window-scale field meaning "no window scaling".
const NO_WSCALE: u8 = 0xf;

/// The secrets cookies are made with: two SipHash keys from the daemon's random source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secrets {
    key0: [u64; 2],
    master: [u64; 2],
}

impl Secrets {
    /// Secrets from 32 random bytes (the daemon reads them from the OS).
    pub fn from_bytes(b: [u8; 32]) -> Secrets {
        let w = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(x)
        };
        Secrets {
            key0: [w(0), w(1)],
            master: [w(2), w(3)],
        }
    }

    /// The authenticating key of the epoch `count` falls in.
    fn key1(&self, count: u32) -> [u64; 2] {
        let epoch = u64::from(count / ROTATE_COUNTS);
        let derive = |i: u64| {
            let mut h = SipHasher24::new_with_keys(self.master[0], self.master[1]);
            h.write_u64(epoch);
            h.write_u64(i);
            h.finish()
        };
        [derive(0), derive(1)]
    }
}

/// The connection a cookie is bound to, as the client sent its SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub saddr: Ipv4Addr,
    pub daddr: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
}

fn hash(key: [u64; 2], f: &Flow, count: u32) -> u32 {
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&f.saddr.octets());
    b[4..8].copy_from_slice(&f.daddr.octets());
    b[8..10].copy_from_slice(&f.sport.to_be_bytes());
    b[10..12].copy_from_slice(&f.dport.to_be_bytes());
    b[12..16].copy_from_slice(&count.to_le_bytes());
    let mut h = SipHasher24::new_with_keys(key[0], key[1]);
    h.write(&b);
    h.finish() as u32
}

/// The minute counter for a time in seconds (Linux's `tcp_cookie_time`).
pub fn count_at(secs: u64) -> u32 {
    (secs / 60) as u32
}

/// The index into [`MSS_TABLE`] for a client's MSS: the largest entry not above it (entry 0
/// for anything smaller, as Linux).
pub fn mss_index(mss: u16) -> u8 {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u8
}

/// The cookie for `flow` whose client chose `client_isn`, made at minute `count`.
pub fn make(s: &Secrets, flow: &Flow, client_isn: u32, count: u32, mss_idx: u8) -> u32 {
    hash(s.key0, flow, 0)
        .wrapping_add(client_isn)
        .wrapping_add(count << COUNT_SHIFT)
        .wrapping_add(
            hash(s.key1(count), flow, count).wrapping_add(u32::from(mss_idx)) & COOKIE_MASK,
        )
}

/// Check the cookie an ACK returns (`ack - 1`) for `flow` (the ACK's own tuple) and its
/// `client_isn` (`seq - 1`) at minute `count`. The MSS it carried, or `None`.
pub fn check(s: &Secrets, flow: &Flow, cookie: u32, client_isn: u32, count: u32) -> Option<u16> {
    let rest = cookie.wrapping_sub(hash(s.key0, flow, 0).wrapping_add(client_isn));
    let diff = count.wrapping_sub(rest >> COUNT_SHIFT) & (u32::MAX >> COUNT_SHIFT);
    if diff >= MAX_AGE {
        return None;
    }
    let made = count.wrapping_sub(diff);
    let idx = rest.wrapping_sub(hash(s.key1(made), flow, made)) & COOKIE_MASK;
    MSS_TABLE.get(idx as usize).copied()
}

/// Options the client asked for in its SYN, as the timestamp carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsOptions {
    /// The client's window scale shift, when it offered scaling.
    pub wscale: Option<u8>,
    pub sack: bool,
}

/// The timestamp value for the SYN-ACK: `now_ts` with its low bits replaced by the options,
/// never ahead of `now_ts` (Linux's `cookie_init_timestamp`).
pub fn ts_encode(now_ts: u32, o: TsOptions) -> u32 {
    let mut opts = u32::from(o.wscale.map_or(NO_WSCALE, |w| w.min(14)));
    if o.sack {
        opts |= 1 << 4;
    }
    let ts = (now_ts & !TS_MASK) | opts;
    if ts > now_ts {
        ts.wrapping_sub(TS_MASK + 1)
    } else {
        ts
    }
}

/// The options carried by a timestamp echo (Linux's `cookie_timestamp_decode`): the low
/// nibble is the shift (15: no scaling), bit 4 SACK.
pub fn ts_decode(echo: u32) -> TsOptions {
    let w = (echo & 0xf) as u8;
    TsOptions {
        wscale: (w != NO_WSCALE).then_some(w),
        sack: echo & (1 << 4) != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        Secrets::from_bytes(b)
    }

    fn flow() -> Flow {
        Flow {
            saddr: Ipv4Addr::new(198, 18, 0, 2),
            daddr: Ipv4Addr::new(198, 18, 0, 100),
            sport: 40000,
            dport: 80,
        }
    }

    /// SipHash-2-4 as used here, against the reference implementation's published vectors
    /// (key 00..0f, messages 00, 00 01, ...; the 64-bit outputs of `vectors_sip64` in the
    /// SipHash paper's repository).
    #[test]
    fn siphash_is_the_reference_one() {
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let expect: [u64; 4] = [
            0x726f_db47_dd0e_0e31,
            0x74f8_39c5_93dc_67fd,
            0x0d6c_8009_d9a9_4f5a,
            0x8567_6696_d7fb_7e2d,
        ];
        for (n, e) in expect.iter().enumerate() {
            let msg: Vec<u8> = (0..n as u8).collect();
            let mut h = SipHasher24::new_with_keys(k0, k1);
            h.write(&msg);
            assert_eq!(h.finish(), *e, "message of {n} bytes");
        }
    }

    /// Vectors from an independent implementation of the formula in the module doc
    /// (`scripts/syncookie-vectors.py`: its own SipHash-2-4, checked against the reference
    /// vectors, and the Linux layout written out from `syncookies.c`).
    #[test]
    fn cookies_match_the_independent_vectors() {
        let s = secrets();
        let f = flow();
        // (client_isn, count, mss_idx, cookie)
        let vectors: [(u32, u32, u8, u32); 4] = VECTORS;
        for (isn, count, idx, cookie) in vectors {
            assert_eq!(
                make(&s, &f, isn, count, idx),
                cookie,
                "isn {isn:#x} count {count}"
            );
            assert_eq!(
                check(&s, &f, cookie, isn, count),
                Some(MSS_TABLE[idx as usize])
            );
        }
    }

    include!("cookie_vectors.rs");

    #[test]
    fn a_cookie_lives_one_to_two_minutes() {
        let s = secrets();
        let f = flow();
        let c = make(&s, &f, 0xdead_beef, 1000, 3);
        assert_eq!(check(&s, &f, c, 0xdead_beef, 1000), Some(1460));
        assert_eq!(check(&s, &f, c, 0xdead_beef, 1001), Some(1460));
        assert_eq!(check(&s, &f, c, 0xdead_beef, 1002), None);
        assert_eq!(check(&s, &f, c, 0xdead_beef, 999), None, "from the future");
    }

    #[test]
    fn a_cookie_is_bound_to_its_flow_isn_and_secret() {
        let s = secrets();
        let f = flow();
        let c = make(&s, &f, 7, 500, 2);
        // As in Linux, the ISN and the index are added, so an ISN off by less than the table
        // size still lands on a valid index; anything further does not.
        assert_eq!(check(&s, &f, c, 7 + 4, 500), None);
        assert_eq!(check(&s, &f, c, 7 + 100_000, 500), None);
        let mut other = f;
        other.sport += 1;
        assert_eq!(check(&s, &other, c, 7, 500), None);
        let mut b = [0u8; 32];
        b[31] = 1;
        assert_eq!(check(&Secrets::from_bytes(b), &f, c, 7, 500), None);
        // Flipping any bit above the index is caught (22 bits of hash, 8 of count).
        for bit in 2..32 {
            assert_eq!(check(&s, &f, c ^ (1 << bit), 7, 500), None, "bit {bit}");
        }
    }

    /// The authenticating key changes every ROTATE_COUNTS minutes; cookies made just before a
    /// change still check in the next minute.
    #[test]
    fn keys_rotate_and_the_edge_still_checks() {
        let s = secrets();
        assert_ne!(s.key1(0), s.key1(ROTATE_COUNTS));
        assert_eq!(s.key1(1), s.key1(ROTATE_COUNTS - 1));
        let f = flow();
        let made = ROTATE_COUNTS * 3 - 1;
        let c = make(&s, &f, 1, made, 1);
        assert_eq!(check(&s, &f, c, 1, made + 1), Some(1300));
    }

    #[test]
    fn mss_rounds_down_into_the_table() {
        assert_eq!(mss_index(100), 0);
        assert_eq!(mss_index(536), 0);
        assert_eq!(mss_index(1299), 0);
        assert_eq!(mss_index(1300), 1);
        assert_eq!(mss_index(1452), 2);
        assert_eq!(mss_index(1460), 3);
        assert_eq!(mss_index(9000), 3);
    }

    #[test]
    fn timestamps_carry_wscale_and_sack_and_never_run_ahead() {
        for now in [0u32, 1, 63, 64, 1000, 0xffff_ffff] {
            for o in [
                TsOptions {
                    wscale: Some(7),
                    sack: true,
                },
                TsOptions {
                    wscale: None,
                    sack: false,
                },
                TsOptions {
                    wscale: Some(0),
                    sack: false,
                },
                TsOptions {
                    wscale: Some(14),
                    sack: true,
                },
            ] {
                let ts = ts_encode(now, o);
                assert_eq!(ts_decode(ts), o, "now {now}");
                assert!(now.wrapping_sub(ts) < 64, "now {now} ts {ts}");
            }
        }
        // Linux's layout: the low nibble is the shift, bit 4 SACK.
        assert_eq!(
            ts_encode(
                0x1000,
                TsOptions {
                    wscale: Some(7),
                    sack: true
                }
            ),
            0x0fd7
        );
    }
}
