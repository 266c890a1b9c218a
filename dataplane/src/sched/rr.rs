//! Round-robin, as `ip_vs_rr.c`.
//!
//! The cursor is the last dest picked (or the list head before the first pick). A pick scans the
//! dests after the cursor to the end, then from the start up to and including the cursor, and
//! takes the first available one (weight > 0, not overloaded). A failed pick leaves the cursor.
//!
//! Across updates the cursor keeps pointing at the same dest (IPVS keeps a list pointer, and
//! adding or re-weighting dests does not move it). If that dest was removed, the cursor moves to
//! its nearest surviving predecessor, or to the head (`ip_vs_rr_del_dest`).

use super::{DestView, SchedInput, Scheduler};
use crate::service::DestId;

/// Round-robin state.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Index of the last pick in the current dest slice; `None` = list head.
    cursor: Option<usize>,
    /// Dest ids of the slice seen at the last `update`, to re-find the cursor.
    ids: Vec<DestId>,
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn update(&mut self, dests: &[DestView]) {
        let find = |id: DestId| dests.iter().position(|d| d.id() == id);
        self.cursor = match self.cursor {
            Some(c) if c < self.ids.len() => {
                // The cursor dest itself, else its nearest surviving predecessor, else the head.
                self.ids[..=c].iter().rev().find_map(|id| find(*id))
            }
            _ => None,
        };
        self.ids.clear();
        self.ids.extend(dests.iter().map(DestView::id));
    }

    fn schedule(&mut self, dests: &[DestView], _input: &SchedInput) -> Option<usize> {
        let n = dests.len();
        let start = match self.cursor {
            Some(c) if c < n => c + 1,
            _ => 0,
        };
        // From the head: one pass over all; from dest c: c+1..n then 0..=c. Both are n candidates.
        let pick = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| dests[i].is_available())?;
        self.cursor = Some(pick);
        Some(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, input};

    fn run(s: &mut RoundRobin, d: &[DestView], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| s.schedule(d, &input())).collect()
    }

    #[test]
    fn cycles_in_order_skipping_weight_zero() {
        let d = dests(&[1, 0, 5, 1]);
        let mut s = RoundRobin::new();
        s.update(&d);
        let picks = run(&mut s, &d, 6);
        assert_eq!(
            picks,
            [Some(0), Some(2), Some(3), Some(0), Some(2), Some(3)]
        );
    }

    #[test]
    fn none_when_nothing_available() {
        let d = dests(&[0, 0]);
        let mut s = RoundRobin::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &input()), None);
        assert_eq!(s.schedule(&[], &input()), None);
    }

    #[test]
    fn skips_overloaded() {
        let mut d = dests(&[1, 1, 1]);
        let mut c = *d[1].config();
        c.upper_threshold = 1;
        d[1] = DestView::new(d[1].id(), c, d[1].stats().clone());
        d[1].bind_conn(0, false);
        assert!(d[1].is_overloaded());
        let mut s = RoundRobin::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 4), [Some(0), Some(2), Some(0), Some(2)]);
    }

    #[test]
    fn cursor_survives_updates() {
        let all = dests(&[1, 1, 1, 1]); // ids 1..4
        let mut s = RoundRobin::new();
        s.update(&all);
        assert_eq!(run(&mut s, &all, 3), [Some(0), Some(1), Some(2)]); // cursor at id 3
        // A new dest at the head (IPVS order) does not move the cursor off id 3.
        let extra = dests(&[1, 1, 1, 1, 1]);
        let grown: Vec<DestView> = std::iter::once(extra[4].clone())
            .chain(all.iter().cloned())
            .collect(); // ids 5,1,2,3,4
        s.update(&grown);
        assert_eq!(s.schedule(&grown, &input()), Some(4)); // id 4, after id 3
        // Remove id 4 (the cursor): cursor falls back to its predecessor id 3, next is id 5.
        let shrunk: Vec<DestView> = grown[..4].to_vec(); // ids 5,1,2,3
        s.update(&shrunk);
        assert_eq!(s.schedule(&shrunk, &input()), Some(0));
        // Remove everything before the cursor too: back to the head.
        s.update(&shrunk[1..2]); // only id 1; cursor id 5 gone, no predecessor
        assert_eq!(s.schedule(&shrunk[1..2], &input()), Some(0));
    }
}
