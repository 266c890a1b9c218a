//! A reload's table changes (SIGHUP; `crate::reload` computes them): each goes through the
//! handler the control socket uses, under the origin "reload of FILE", so it is checked and
//! logged exactly as the same change made with ipvsadm or rvsctl would be. A change the tables
//! refuse (an address that is now a VIP, a route whose gateway is gone) is logged and skipped;
//! the others still apply.

use super::*;

/// What a reload did to the tables.
#[derive(Debug, Default)]
pub struct ReloadOutcome {
    /// Changes applied.
    pub applied: usize,
    /// Changes refused, with the reason.
    pub refused: Vec<String>,
}

impl ControlPlane {
    /// Apply `requests` (from `crate::reload`) and the timeout and `sloppy_tcp` changes
    /// between `old` and `new`.
    pub fn apply_reload(
        &self,
        old: &Validated,
        new: &Validated,
        requests: Vec<Request>,
    ) -> ReloadOutcome {
        let _origin = origin::Scope::enter(format!("reload of {}", new.file.display()));
        let mut out = ReloadOutcome::default();
        let mut note = |what: String, reply: Reply| match reply {
            Reply::Error(e) => out.refused.push(format!("{what}: {}", e.message)),
            _ => out.applied += 1,
        };
        if old.timeouts != new.timeouts {
            let t = new.timeouts;
            note(
                "timeouts".into(),
                self.change("set timeouts", |st| {
                    st.timeouts = t;
                    Ok(())
                }),
            );
        }
        if old.sloppy_tcp != new.sloppy_tcp {
            let on = new.sloppy_tcp;
            note(
                "ipvs.sloppy_tcp".into(),
                self.change(
                    if on {
                        "sloppy_tcp on"
                    } else {
                        "sloppy_tcp off"
                    },
                    |st| {
                        st.sloppy_tcp = on;
                        Ok(())
                    },
                ),
            );
        }
        for r in requests {
            let what = serde_json::to_string(&r).unwrap_or_default();
            let reply = self.handle(r);
            if !matches!(reply, Reply::Error(_)) {
                tracing::info!(change = %what, "reload: applied");
            }
            note(what, reply);
        }
        out
    }
}
