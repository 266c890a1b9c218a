//! Who asked for a control change, for the log line every change writes.
//!
//! Requests are answered on the thread that read them (one thread per control-socket connection,
//! the main thread for `[ipvs] rules`), so the origin is a thread-local set for the duration of
//! a [`Scope`]. The socket peer's credentials are not read (SO_PEERCRED needs `unsafe` or an
//! unstable std API); the origin names the door and the connection instead.

use std::cell::RefCell;

thread_local! {
    static ORIGIN: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The origin of requests handled on this thread, until dropped.
#[derive(Debug)]
#[must_use = "the origin is cleared when the scope is dropped"]
pub struct Scope(Option<String>);

impl Scope {
    pub fn enter(origin: String) -> Scope {
        Scope(ORIGIN.with(|o| o.borrow_mut().replace(origin)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.0.take();
        ORIGIN.with(|o| *o.borrow_mut() = previous);
    }
}

/// The current thread's origin, or `"in-process"` outside any scope.
pub fn current() -> String {
    ORIGIN.with(|o| {
        o.borrow()
            .clone()
            .unwrap_or_else(|| "in-process".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        assert_eq!(current(), "in-process");
        let a = Scope::enter("rules file x".into());
        {
            let _b = Scope::enter("control socket 1".into());
            assert_eq!(current(), "control socket 1");
        }
        assert_eq!(current(), "rules file x");
        drop(a);
        assert_eq!(current(), "in-process");
    }
}
