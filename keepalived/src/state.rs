//! keepalived's health semantics, pure (no clock, no I/O): a checker's up/down with `retry`, a
//! real server's state from its checkers, and what a virtual server's dests should be given
//! which real servers are up (inhibit, quorum with hysteresis, sorry server).

use std::time::Duration;

use ctl::proto::{DestSpec, TunSpec};

use crate::model::{Checker, VirtualServer};

/// One checker's state: up or down, and the failures in a row so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerState {
    pub up: bool,
    pub failures: u32,
}

/// What one check attempt changed, and when the next attempt is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// `Some(up)` when the checker changed state.
    pub transition: Option<bool>,
    pub next_in: Duration,
}

impl CheckerState {
    /// A checker starts up, or down with `alpha`.
    pub fn new(up: bool) -> Self {
        CheckerState { up, failures: 0 }
    }

    /// Take one attempt's result. A success brings the checker up at once; a failure of an up
    /// checker is retried after `delay_before_retry` until `retry` attempts in a row failed,
    /// which takes it down. A down checker is tried again every `delay_loop`.
    pub fn on_result(&mut self, ok: bool, c: &Checker) -> Step {
        if ok {
            self.failures = 0;
            let transition = (!self.up).then_some(true);
            self.up = true;
            return Step {
                transition,
                next_in: c.delay_loop,
            };
        }
        self.failures = self.failures.saturating_add(1);
        if !self.up {
            return Step {
                transition: None,
                next_in: c.delay_loop,
            };
        }
        if self.failures >= c.retry.max(1) {
            self.up = false;
            Step {
                transition: Some(false),
                next_in: c.delay_loop,
            }
        } else {
            Step {
                transition: None,
                next_in: c.delay_before_retry,
            }
        }
    }
}

/// A real server as the virtual server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealState {
    pub up: bool,
    /// Weight set by a `misc_dynamic` checker (its exit code - 2), if any.
    pub dynamic_weight: Option<u32>,
}

/// The dests a virtual server should have now, and whether its quorum holds.
///
/// keepalived's rules: an up real server is a dest with its weight; a down one is absent, or
/// present with weight 0 under `inhibit_on_failure`. The quorum is the sum of the up real
/// servers' weights: it is lost when the sum falls below `quorum - hysteresis` and regained when
/// it reaches `quorum + hysteresis` (`quorum_up` is the previous state; `None` at start, when
/// the plain comparison decides). While it is lost and a sorry server is set, the sorry server
/// is the only live dest (the real servers are taken out; those with `inhibit_on_failure` stay
/// at weight 0). With `sorry_server_inhibit` the sorry server stays at weight 0 while the
/// quorum holds.
pub fn desired_dests(
    vs: &VirtualServer,
    reals: &[RealState],
    quorum_up: Option<bool>,
) -> (Vec<DestSpec>, bool) {
    let weight_of = |i: usize| -> u32 {
        let r = &vs.reals[i];
        reals[i].dynamic_weight.unwrap_or(r.weight)
    };
    let sum: u64 = (0..vs.reals.len())
        .filter(|i| reals[*i].up)
        .map(|i| u64::from(weight_of(i)))
        .sum();
    let q = u64::from(vs.quorum);
    let h = u64::from(vs.hysteresis);
    let quorum = match quorum_up {
        None => sum >= q && sum > 0,
        Some(true) => !(sum == 0 || sum < q.saturating_sub(h)),
        Some(false) => sum >= q + h && sum > 0,
    };
    let dest = |addr, port, weight, u, l| DestSpec {
        addr,
        port,
        forward: vs.method,
        weight,
        u_threshold: u,
        l_threshold: l,
        tun: TunSpec::default(),
    };
    let mut out = Vec::new();
    if !quorum && let Some((addr, port)) = vs.sorry_server {
        for r in &vs.reals {
            if r.inhibit_on_failure && (r.addr, r.port) != (addr, port) {
                out.push(dest(r.addr, r.port, 0, r.u_threshold, r.l_threshold));
            }
        }
        out.push(dest(addr, port, 1, 0, 0));
        return (out, quorum);
    }
    for (i, r) in vs.reals.iter().enumerate() {
        if reals[i].up {
            out.push(dest(
                r.addr,
                r.port,
                weight_of(i),
                r.u_threshold,
                r.l_threshold,
            ));
        } else if r.inhibit_on_failure {
            out.push(dest(r.addr, r.port, 0, r.u_threshold, r.l_threshold));
        }
    }
    if let (true, Some((addr, port)), true) = (vs.sorry_server_inhibit, vs.sorry_server, quorum) {
        if !out.iter().any(|d| (d.addr, d.port) == (addr, port)) {
            out.push(dest(addr, port, 0, 0, 0));
        }
    }
    (out, quorum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_str;
    use std::path::Path;

    fn vs(extra: &str) -> VirtualServer {
        let text = format!(
            "virtual_server 198.18.0.100 80 {{\n protocol TCP\n lb_algo rr\n lb_kind NAT\n delay_loop 3\n{extra}\n real_server 198.18.1.11 80 {{\n  weight 2\n  TCP_CHECK {{\n   retry 3\n   delay_before_retry 1\n  }}\n }}\n real_server 198.18.1.12 80 {{\n  weight 1\n  inhibit_on_failure\n  TCP_CHECK {{ }}\n }}\n}}\n"
        );
        load_str(Path::new("t.conf"), &text)
            .unwrap()
            .virtual_servers
            .remove(0)
    }

    #[test]
    fn down_after_retry_failures_up_on_first_success() {
        let v = vs("");
        let c = &v.reals[0].checkers[0];
        let mut s = CheckerState::new(true);
        let a = s.on_result(false, c);
        assert_eq!((a.transition, a.next_in), (None, Duration::from_secs(1)));
        assert_eq!(s.on_result(false, c).transition, None);
        let third = s.on_result(false, c);
        assert_eq!(
            (third.transition, third.next_in),
            (Some(false), Duration::from_secs(3))
        );
        assert_eq!(s.on_result(false, c).transition, None);
        assert_eq!(s.on_result(true, c).transition, Some(true));
        assert_eq!(s.failures, 0);
        // A success between failures starts the count again.
        s.on_result(false, c);
        s.on_result(true, c);
        s.on_result(false, c);
        assert!(s.up);
    }

    #[test]
    fn removed_or_inhibited() {
        let v = vs("");
        let up = RealState {
            up: true,
            dynamic_weight: None,
        };
        let down = RealState {
            up: false,
            dynamic_weight: None,
        };
        let (d, q) = desired_dests(&v, &[up, up], None);
        assert!(q);
        assert_eq!(
            d.iter().map(|d| (d.port, d.weight)).collect::<Vec<_>>(),
            [(80, 2), (80, 1)]
        );
        let (d, _) = desired_dests(&v, &[down, down], Some(true));
        // rs1 is removed; rs2 inhibits (weight 0).
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].addr.to_string(), d[0].weight),
            ("198.18.1.12".into(), 0)
        );
        let dynamic = RealState {
            up: true,
            dynamic_weight: Some(7),
        };
        assert_eq!(desired_dests(&v, &[dynamic, down], None).0[0].weight, 7);
    }

    #[test]
    fn quorum_with_hysteresis_and_sorry_server() {
        let v = vs("quorum 2\n hysteresis 1\n sorry_server 198.18.1.20 80");
        let st = |a: bool, b: bool| {
            [
                RealState {
                    up: a,
                    dynamic_weight: None,
                },
                RealState {
                    up: b,
                    dynamic_weight: None,
                },
            ]
        };
        // Sum 3: quorum holds, no sorry server.
        let (d, q) = desired_dests(&v, &st(true, true), None);
        assert!(q && d.iter().all(|d| d.addr.to_string() != "198.18.1.20"));
        // Sum 2 >= quorum - hysteresis (1): still held.
        assert!(desired_dests(&v, &st(true, false), Some(true)).1);
        // Sum 1 < 1? no: 1 >= 1 holds; sum 0 loses it: the sorry server is the only live dest.
        assert!(desired_dests(&v, &st(false, true), Some(true)).1);
        let (d, q) = desired_dests(&v, &st(false, false), Some(true));
        assert!(!q);
        let live: Vec<_> = d.iter().filter(|d| d.weight > 0).collect();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].addr.to_string(), "198.18.1.20");
        // Regained only at quorum + hysteresis = 3.
        assert!(!desired_dests(&v, &st(true, false), Some(false)).1);
        assert!(desired_dests(&v, &st(true, true), Some(false)).1);
    }

    #[test]
    fn thresholds_and_sorry_server_inhibit() {
        let text = "virtual_server 198.18.0.100 80 {\n protocol TCP\n lb_algo wlc\n lb_kind DR\n sorry_server 198.18.0.20 80\n sorry_server_inhibit\n real_server 198.18.0.11 80 {\n  weight 4\n  uthreshold 100\n  lthreshold 50\n }\n}\n";
        let v = load_str(Path::new("t.conf"), text)
            .unwrap()
            .virtual_servers
            .remove(0);
        let up = [RealState {
            up: true,
            dynamic_weight: None,
        }];
        let (d, q) = desired_dests(&v, &up, None);
        assert!(q);
        assert_eq!(d.len(), 2);
        assert_eq!(
            (
                d[0].weight,
                d[0].u_threshold,
                d[0].l_threshold,
                d[0].forward
            ),
            (4, 100, 50, ctl::proto::Forward::Route)
        );
        // The sorry server waits at weight 0 while the quorum holds ...
        assert_eq!(
            (d[1].addr.to_string(), d[1].weight),
            ("198.18.0.20".into(), 0)
        );
        // ... and takes over at weight 1 when it is lost.
        let down = [RealState {
            up: false,
            dynamic_weight: None,
        }];
        let (d, q) = desired_dests(&v, &down, Some(true));
        assert!(!q);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].addr.to_string(), d[0].weight),
            ("198.18.0.20".into(), 1)
        );
    }
}
