//! `TCP_CHECK`: the real server passes when a connection to it opens.

use super::{Outcome, connect, target};
use crate::model::Checker;

pub(super) fn check(c: &Checker) -> Outcome {
    match connect(c) {
        Ok(_) => Outcome::ok(format!("connected to {}", target(c))),
        Err(e) => Outcome::failed(format!("connect to {}: {e}", target(c))),
    }
}
