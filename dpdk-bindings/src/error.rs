//! Error types: [`DpdkError`] for failed DPDK calls, [`NoRoom`] for mbuf length operations.

use std::ffi::CStr;

use crate::sys;

/// A DPDK call failed. `op` names the call (or the safe-layer step), `errno` is the (positive)
/// error number DPDK reported, `message` is its text from `rte_strerror`, or a sentence of ours
/// when the safe layer refused the request before calling DPDK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op} failed: {message} (errno {errno})")]
pub struct DpdkError {
    /// What was attempted, usually the DPDK function name.
    pub op: &'static str,
    /// Positive errno value (`EINVAL`, `ENOMEM`, `EEXIST` ...).
    pub errno: i32,
    /// Human-readable cause.
    pub message: String,
}

impl DpdkError {
    /// An error with DPDK's own text for `errno` (which may be given negative, as many DPDK
    /// functions return it).
    pub fn from_errno(op: &'static str, errno: i32) -> Self {
        let errno = errno.saturating_abs();
        DpdkError {
            op,
            errno,
            message: strerror(errno),
        }
    }

    /// An error from the current thread's `rte_errno`, for calls that return NULL or -1.
    pub(crate) fn from_rte_errno(op: &'static str) -> Self {
        Self::from_errno(op, rte_errno())
    }

    /// An error detected by the safe layer itself, with our own explanation.
    pub(crate) fn new(op: &'static str, errno: i32, message: impl Into<String>) -> Self {
        DpdkError {
            op,
            errno,
            message: message.into(),
        }
    }

    /// Map a DPDK `int` return value (0 or positive = success, negative errno = failure).
    pub(crate) fn check(op: &'static str, ret: i32) -> Result<i32, Self> {
        if ret < 0 {
            Err(Self::from_errno(op, ret))
        } else {
            Ok(ret)
        }
    }
}

/// The calling thread's `rte_errno`.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: rvs_errno reads the calling thread's per-lcore `rte_errno` (thread-local storage
    // that exists for every thread, EAL or not); no pointer is involved.
    unsafe { sys::rvs_errno() }
}

/// DPDK's text for an errno value.
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any integer and returns a pointer to a NUL-terminated string,
    // either static (libc/DPDK tables) or in a thread-local buffer that stays valid until the
    // next call on this thread; we copy it out before returning.
    let ptr = unsafe { sys::rte_strerror(errno) };
    if ptr.is_null() {
        return format!("unknown error {errno}");
    }
    // SAFETY: non-null pointer to a NUL-terminated string, see above; copied immediately.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// An mbuf length operation (`prepend`, `adj`, `append`, `trim`) did not fit: nothing was
/// changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("mbuf {op} of {requested} bytes does not fit: only {available} available")]
pub struct NoRoom {
    /// The operation: "prepend", "adj", "append" or "trim".
    pub op: &'static str,
    /// Bytes asked for.
    pub requested: usize,
    /// Bytes that were available for this operation (headroom, data or tailroom).
    pub available: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_failed() {
        let e = DpdkError::from_errno("rte_eth_dev_start", -libc::EINVAL);
        assert_eq!(e.errno, libc::EINVAL);
        let text = e.to_string();
        assert!(text.starts_with("rte_eth_dev_start failed: "), "{text}");
        assert!(text.contains("errno 22"), "{text}");
        let r = NoRoom {
            op: "prepend",
            requested: 200,
            available: 128,
        };
        assert_eq!(
            r.to_string(),
            "mbuf prepend of 200 bytes does not fit: only 128 available"
        );
    }

    #[test]
    fn version_needs_no_eal() {
        // The library found at run time is the one built against (its major.minor).
        let built = env!("RVS_DPDK_BUILD_VERSION");
        let major_minor: Vec<&str> = built.split('.').take(2).collect();
        let want = format!("DPDK {}", major_minor.join("."));
        assert!(
            crate::version().starts_with(&want),
            "{} vs {want}",
            crate::version()
        );
    }
}
