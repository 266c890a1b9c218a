//! Maglev hashing, as `ip_vs_mh.c` (docs/ipvsadm-compat.md section 5.1).
//!
//! Table: M slots, M one of IPVS's primes ([`super::MH_PRIMES`], default 4093 =
//! `CONFIG_IP_VS_MH_TAB_INDEX` 12). Each dest `i` (list order) gets
//! `offset = hsiphash(port + addr, K1) % M`, `skip = hsiphash(port + addr, K2) % (M - 1) + 1` and a
//! number of `turns = (last_weight / gcd) >> rshift` (at least 1 when `last_weight != 0`), where
//! `rshift = max(0, fls(max_weight / gcd) - TAB_INDEX / 2)` keeps the largest turn count within
//! `TAB_INDEX / 2` bits. Population: the dests take turns in list order, each claiming `turns`
//! slots in a row, every claim being the next still-empty slot of its permutation
//! `offset, offset + skip, ...` (mod M), until all M slots are full. Dests whose last weight is 0
//! take no turn.
//!
//! `last_weight` is IPVS's: a dest's weight when it was added, then its latest non-zero weight. So
//! quiescing a dest (weight 0) keeps its slots; lookups that land on it then fail, or with
//! `mh-fallback` re-probe. (A worker's scheduler created after a dest was quiesced sees that dest
//! "added" with weight 0, as IPVS does for a dest added with weight 0.)
//!
//! Lookup: slot `hsiphash(sport + saddr, K1) % M` (`sport` only with `mh-port` on TCP/UDP/SCTP,
//! else 0). If the dest there is unavailable (weight 0 or overloaded) the pick fails, or with
//! `mh-fallback` IPVS probes `offset = 0..M`: `roffset = (offset + ihash) % M`, slot
//! `hsiphash(roffset + sport + saddr, K1) % M`, first available dest wins.
//!
//! Hash: the kernel's `hsiphash` with IPVS's fixed keys K1 = (2654435761, 2654435761) and
//! K2 = (2654446892, 2654446892); on 64-bit kernels that is SipHash-1-3 truncated to 32 bits (see
//! [`super::hash`]), so tables and picks match a 64-bit little-endian IPVS bit for bit.
//!
//! More dests than slots: IPVS refuses to rebuild (`-EINVAL`); rvs then empties the table, so every
//! pick fails until dests are removed (rather than keeping indices into a list that changed).

use std::collections::HashMap;

use std::net::Ipv6Addr;

use super::hash::{SipKey, addr_key, fold_v6, hsiphash_u32};
use super::sh::has_ports;
use super::{DestView, MhTableSize, SchedFlags, SchedInput, Scheduler};
use crate::service::DestId;

/// IPVS's `hash1` key (offsets and lookups).
pub const MH_KEY1: SipKey = SipKey(2_654_435_761, 2_654_435_761);
/// IPVS's `hash2` key (skips).
pub const MH_KEY2: SipKey = SipKey(2_654_446_892, 2_654_446_892);

/// Sentinel for an empty slot.
const EMPTY: u32 = u32::MAX;

/// Maglev hashing state.
#[derive(Debug)]
pub struct MaglevHashing {
    fallback: bool,
    port: bool,
    m: u32,
    /// `IP_VS_MH_TAB_BITS` = `CONFIG_IP_VS_MH_TAB_INDEX / 2`.
    tab_bits: u32,
    /// Slot -> index into the dest slice, or [`EMPTY`].
    lookup: Vec<u32>,
    /// IPVS `dest->last_weight` per dest.
    last_weight: HashMap<DestId, u32>,
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Linux `fls`: 1-based index of the highest set bit, 0 for 0.
fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

/// `ip_vs_mh_hashkey`: `hsiphash(offset + port + addr)`.
fn hashkey(addr: u32, port: u16, key: SipKey, offset: u32) -> u32 {
    hsiphash_u32(key, offset.wrapping_add(u32::from(port)).wrapping_add(addr))
}

/// `ip_vs_mh_hashkey` for an IPv6 address: the same hash of the folded address ([`fold_v6`]).
/// With [`MH_KEY1`] and offset 0 it is a client's lookup hash (slot `% M`) and a dest's
/// permutation offset; with [`MH_KEY2`] a dest's skip (`% (M - 1) + 1`); with [`MH_KEY1`] and a
/// probe offset the fallback's probe.
pub fn hashkey6(addr: Ipv6Addr, port: u16, key: SipKey, offset: u32) -> u32 {
    hashkey(fold_v6(addr), port, key, offset)
}

/// A dest's Maglev permutation for an IPv6 address in a table of `m` slots (`m` >= 2):
/// `(offset, skip)` as `ip_vs_mh_permutate` computes them.
pub fn permutation6(addr: Ipv6Addr, port: u16, m: u32) -> (u32, u32) {
    (
        hashkey6(addr, port, MH_KEY1, 0) % m,
        hashkey6(addr, port, MH_KEY2, 0) % (m - 1) + 1,
    )
}

impl MaglevHashing {
    pub fn new(flags: SchedFlags, size: MhTableSize) -> MaglevHashing {
        MaglevHashing {
            fallback: flags.contains(SchedFlags::SCHED1),
            port: flags.contains(SchedFlags::SCHED2),
            m: size.get(),
            tab_bits: size.tab_index() / 2,
            lookup: vec![EMPTY; size.get() as usize],
            last_weight: HashMap::new(),
        }
    }

    /// The table size M.
    pub fn table_size(&self) -> usize {
        self.lookup.len()
    }

    /// The dest index in slot `s` (tests, diagnostics).
    pub fn slot(&self, s: usize) -> Option<usize> {
        self.lookup
            .get(s)
            .copied()
            .filter(|i| *i != EMPTY)
            .map(|i| i as usize)
    }

    fn key_port(&self, input: &SchedInput) -> u16 {
        if self.port && has_ports(input.proto) {
            input.client_port
        } else {
            0
        }
    }

    /// The slot a pick looks at first for `input`.
    pub fn slot_for(&self, input: &SchedInput) -> usize {
        (hashkey(addr_key(input.client), self.key_port(input), MH_KEY1, 0) % self.m) as usize
    }

    /// `ip_vs_mh_permutate` + `ip_vs_mh_populate`.
    fn populate(&mut self, dests: &[DestView], lw: &[u32]) {
        self.lookup.fill(EMPTY);
        let g = lw.iter().filter(|w| **w > 0).fold(0, |g, w| gcd(*w, g));
        if g < 1 || dests.len() > self.m as usize {
            return;
        }
        let mw = lw.iter().copied().max().unwrap_or(0) / g;
        let rshift = fls(mw).saturating_sub(self.tab_bits);
        let m = self.m;
        let mut perm = Vec::with_capacity(dests.len());
        let mut skip = Vec::with_capacity(dests.len());
        let mut turns = Vec::with_capacity(dests.len());
        for (d, w) in dests.iter().zip(lw) {
            let addr = addr_key(d.addr());
            perm.push(hashkey(addr, d.port(), MH_KEY1, 0) % m);
            skip.push(hashkey(addr, d.port(), MH_KEY2, 0) % (m - 1) + 1);
            let t = (w / g) >> rshift;
            turns.push(if t > 0 { t } else { u32::from(*w != 0) });
        }
        let mut filled = vec![false; m as usize];
        let (mut n, mut dt_count) = (0u32, 0u32);
        loop {
            let mut i = 0;
            while i < dests.len() {
                if turns[i] < 1 {
                    i += 1;
                    continue;
                }
                let mut c = perm[i];
                while filled[c as usize] {
                    perm[i] += skip[i];
                    if perm[i] >= m {
                        perm[i] -= m;
                    }
                    c = perm[i];
                }
                filled[c as usize] = true;
                self.lookup[c as usize] = i as u32;
                n += 1;
                if n == m {
                    return;
                }
                dt_count += 1;
                if dt_count >= turns[i] {
                    dt_count = 0;
                    i += 1;
                }
            }
        }
    }
}

impl Scheduler for MaglevHashing {
    fn name(&self) -> &'static str {
        "mh"
    }

    fn update(&mut self, dests: &[DestView]) {
        let lw: Vec<u32> = dests
            .iter()
            .map(|d| match self.last_weight.get(&d.id()) {
                Some(prev) if d.weight() == 0 => *prev,
                _ => d.weight(),
            })
            .collect();
        self.last_weight = dests
            .iter()
            .map(DestView::id)
            .zip(lw.iter().copied())
            .collect();
        self.populate(dests, &lw);
    }

    fn schedule(&mut self, dests: &[DestView], input: &SchedInput) -> Option<usize> {
        let available = |i: usize| dests.get(i).is_some_and(DestView::is_available);
        let ihash = self.slot_for(input);
        let first = self.slot(ihash)?;
        if available(first) {
            return Some(first);
        }
        if !self.fallback {
            return None;
        }
        let (addr, port) = (addr_key(input.client), self.key_port(input));
        for offset in 0..self.m {
            let roffset = (offset + ihash as u32) % self.m;
            let s = hashkey(addr, port, MH_KEY1, roffset) % self.m;
            let i = self.slot(s as usize)?;
            if available(i) {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::MH_PRIMES;
    use crate::sched::testutil::{dests, input};

    fn build(weights: &[u32], m: u32) -> (MaglevHashing, Vec<DestView>) {
        let d = dests(weights);
        let mut s = MaglevHashing::new(SchedFlags::NONE, MhTableSize::new(m).unwrap());
        s.update(&d);
        (s, d)
    }

    fn shares(s: &MaglevHashing, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for slot in 0..s.table_size() {
            c[s.slot(slot).expect("table full")] += 1;
        }
        c
    }

    /// IPv6 keys against `scripts/ipvs-v6-hash-vectors.py` (the hsiphash and the fold both
    /// checked by an independent SipHash): lookup and probe hashes, and a dest's permutation.
    #[test]
    fn ipv6_keys_match_the_vectors() {
        for v in &crate::sched::vectors_v6::V6_VECTORS {
            let a = v.addr.parse().unwrap();
            assert_eq!(hashkey6(a, v.port, MH_KEY1, v.offset), v.mh1, "{}", v.addr);
            assert_eq!(hashkey6(a, v.port, MH_KEY2, 0), v.mh2, "{}", v.addr);
            for m in [251u32, 4093, 131_071] {
                let (offset, skip) = permutation6(a, v.port, m);
                if v.offset == 0 {
                    assert_eq!(offset, v.mh1 % m);
                }
                assert_eq!(skip, v.mh2 % (m - 1) + 1);
                assert!(offset < m && (1..m).contains(&skip));
            }
        }
    }

    #[test]
    fn table_size_must_be_an_ipvs_prime() {
        assert_eq!(MhTableSize::DEFAULT.get(), 4093);
        for p in MH_PRIMES {
            assert!(MhTableSize::new(p).is_ok());
        }
        assert!(MhTableSize::new(4096).is_err());
        assert!(MhTableSize::new(65537).is_err()); // the paper's M, not an IPVS choice
        assert_eq!(MhTableSize::new(251).unwrap().tab_index(), 8);
        assert_eq!(MhTableSize::DEFAULT.tab_index(), 12);
        let (s, _) = build(&[1, 1], 251);
        assert_eq!(s.table_size(), 251);
        assert_eq!(shares(&s, 2).iter().sum::<usize>(), 251);
    }

    #[test]
    fn equal_weights_spread_within_one_percent() {
        for (n, m) in [(10usize, 4093u32), (40, 4093), (3, 509), (100, 16381)] {
            assert!(m as usize > 100 * n);
            let (s, _) = build(&vec![1; n], m);
            let ideal = f64::from(m) / n as f64;
            for (i, c) in shares(&s, n).into_iter().enumerate() {
                let dev = (c as f64 - ideal).abs() / ideal;
                assert!(dev <= 0.01, "n={n} m={m} dest {i}: {c} slots vs {ideal:.1}");
            }
        }
    }

    #[test]
    fn weights_are_turns() {
        // 3:1 -> A takes 3 slots per round, B 1: 4093 = 1023 rounds of 4 + 1 (A).
        let (s, _) = build(&[3, 1], 4093);
        assert_eq!(shares(&s, 2), [3070, 1023]);
        // gcd: 30:10 is 3:1.
        let (s, _) = build(&[30, 10], 4093);
        assert_eq!(shares(&s, 2), [3070, 1023]);
        // rshift: max 1000 needs 10 bits, TAB_BITS = 6 -> shift 4: turns 62 and max(1>>4, 1) = 1.
        // 4093 = 64 rounds of 63 + 61 (all A): A = 64*62 + 61 = 4029, B = 64.
        let (s, _) = build(&[1000, 1], 4093);
        assert_eq!(shares(&s, 2), [4029, 64]);
    }

    #[test]
    fn minimal_disruption_when_one_of_n_is_removed() {
        let n = 10;
        let (mut s, d) = build(&vec![1; n], 4093);
        let before: Vec<_> = (0..s.table_size())
            .map(|x| d[s.slot(x).unwrap()].id())
            .collect();
        let removed = d[3].id();
        let rest: Vec<DestView> = d.iter().filter(|x| x.id() != removed).cloned().collect();
        s.update(&rest);
        let after: Vec<_> = (0..s.table_size())
            .map(|x| rest[s.slot(x).unwrap()].id())
            .collect();
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let frac = moved as f64 / s.table_size() as f64;
        let own = before.iter().filter(|x| **x == removed).count();
        println!(
            "mh: removing 1 of {n} dests moved {moved}/{} slots = {frac:.4} (ideal 1/N = {:.4}; the removed dest held {own})",
            s.table_size(),
            1.0 / n as f64
        );
        assert!(moved >= own);
        assert!(frac < 1.25 / n as f64, "moved fraction {frac}");
    }

    #[test]
    fn quiesced_dest_keeps_its_slots_and_fallback_reprobes() {
        let (mut s, d) = build(&[1, 1, 1], 4093);
        let before: Vec<_> = (0..s.table_size()).map(|x| s.slot(x)).collect();
        let mut d0 = d.clone();
        let mut c = *d0[1].config();
        c.weight = 0;
        d0[1] = DestView::new(d0[1].id(), c, d0[1].stats().clone());
        s.update(&d0);
        let after: Vec<_> = (0..s.table_size()).map(|x| s.slot(x)).collect();
        assert_eq!(before, after, "last_weight keeps the table");
        // A client whose slot is dest 1 now gets nothing, or another dest with mh-fallback.
        let mut inp = input();
        let mut fb = MaglevHashing::new(SchedFlags::SCHED1, MhTableSize::DEFAULT);
        fb.update(&d);
        fb.update(&d0);
        let mut checked = 0;
        for a in 0..2000u32 {
            inp.client = std::net::Ipv4Addr::from(0x0a00_0000 + a).into();
            if s.slot(s.slot_for(&inp)) == Some(1) {
                assert_eq!(s.schedule(&d0, &inp), None);
                let got = fb.schedule(&d0, &inp).unwrap();
                assert_ne!(got, 1);
                checked += 1;
            } else {
                assert_eq!(s.schedule(&d0, &inp), s.slot(s.slot_for(&inp)));
            }
        }
        assert!(checked > 100);
        // A dest added with weight 0 takes no slots.
        let (s, _) = build(&[1, 0], 251);
        assert_eq!(shares(&s, 2), [251, 0]);
        let (mut s, d) = build(&[0, 0], 251);
        assert_eq!(s.slot(0), None);
        assert_eq!(s.schedule(&d, &input()), None);
    }

    #[test]
    fn mh_port_hashes_the_source_port() {
        let d = dests(&[1; 8]);
        let mut plain = MaglevHashing::new(SchedFlags::NONE, MhTableSize::DEFAULT);
        let mut port = MaglevHashing::new(SchedFlags::SCHED2, MhTableSize::DEFAULT);
        plain.update(&d);
        port.update(&d);
        let mut inp = input();
        let p0 = plain.schedule(&d, &inp);
        let mut seen = std::collections::HashSet::new();
        for sp in 1000..1064 {
            inp.client_port = sp;
            assert_eq!(plain.schedule(&d, &inp), p0);
            seen.insert(port.schedule(&d, &inp));
        }
        assert!(seen.len() > 1);
    }

    #[test]
    fn more_dests_than_slots_empties_the_table() {
        let (mut s, d) = build(&vec![1; 252], 251);
        assert_eq!(s.slot(0), None);
        assert_eq!(s.schedule(&d, &input()), None);
    }
}
