//! Running closures on worker lcores (`rte_eal_remote_launch` / `rte_eal_wait_lcore`).

use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use crate::eal::{self, EalToken};
use crate::error::DpdkError;
use crate::sys;

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

/// What crosses to the worker lcore: the closure and where to report a panic.
struct Launch {
    job: Job,
    panic: Arc<Mutex<Option<String>>>,
}

/// Runs on the worker lcore. Never unwinds: a panic in the closure is caught, recorded for
/// [`LaunchHandle::wait`] and turned into a return value of -1.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Launch> leaked by `launch` for exactly this call; EAL calls the
    // function once per launch, so ownership is taken back exactly once.
    let launch = unsafe { Box::from_raw(arg.cast::<Launch>()) };
    let Launch { job, panic } = *launch;
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(ret) => ret,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            *panic.lock().unwrap_or_else(PoisonError::into_inner) = Some(msg);
            -1
        }
    }
}

/// Run `f` on worker lcore `lcore` and return a handle to wait for its result.
///
/// Must be called on the main lcore (the thread that ran [`crate::Eal::init`]); `lcore` must be
/// an enabled worker lcore that is idle. The closure's return value comes back from
/// [`LaunchHandle::wait`].
pub fn launch<F>(lcore: u32, f: F) -> Result<LaunchHandle, DpdkError>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    const OP: &str = "rte_eal_remote_launch";
    let token = eal::token(OP)?;
    let main = token.main_lcore();
    if eal::lcore_id() != Some(main) {
        return Err(DpdkError::new(
            OP,
            libc::EPERM,
            "lcores can only be launched from the main lcore (the thread that ran Eal::init)",
        ));
    }
    let enabled = lcore < sys::RTE_MAX_LCORE && {
        // SAFETY: EAL initialised (token held); lcore < RTE_MAX_LCORE, the bound of the table
        // rte_lcore_is_enabled reads.
        (unsafe { sys::rte_lcore_is_enabled(lcore) }) != 0
    };
    if lcore == main || !enabled {
        return Err(DpdkError::new(
            OP,
            libc::EINVAL,
            format!("lcore {lcore} is not an enabled worker lcore (check the EAL -l option)"),
        ));
    }
    let panic = Arc::new(Mutex::new(None));
    let arg = Box::into_raw(Box::new(Launch {
        job: Box::new(f),
        panic: Arc::clone(&panic),
    }));
    // SAFETY: we are on the main lcore and `lcore` is an enabled worker; `trampoline` has the
    // lcore_function_t ABI and takes ownership of `arg` when (and only when) it runs.
    let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg.cast(), lcore) };
    if ret < 0 {
        // SAFETY: the launch failed, so the trampoline never runs and `arg` is still ours.
        drop(unsafe { Box::from_raw(arg) });
        return Err(DpdkError::from_errno(OP, ret));
    }
    Ok(LaunchHandle {
        lcore,
        panic,
        waited: false,
        _token: token,
        _main_lcore_only: PhantomData,
    })
}

/// A closure running on a worker lcore. Not `Send`: waiting must happen on the main lcore, where
/// the handle was created. Dropping it without [`wait`](Self::wait) blocks until the closure
/// returns (the lcore must not be left running while DPDK is torn down).
#[must_use = "dropping a LaunchHandle blocks until the lcore finishes"]
#[derive(Debug)]
pub struct LaunchHandle {
    lcore: u32,
    panic: Arc<Mutex<Option<String>>>,
    waited: bool,
    _token: Arc<EalToken>,
    _main_lcore_only: PhantomData<*const ()>,
}

impl LaunchHandle {
    /// The lcore the closure runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Block until the closure returns; its return value, or an error if it panicked.
    pub fn wait(mut self) -> Result<i32, DpdkError> {
        let ret = self.wait_inner();
        match self
            .panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(msg) => Err(DpdkError::new(
                "lcore closure",
                libc::ECANCELED,
                format!("closure on lcore {} panicked: {msg}", self.lcore),
            )),
            None => Ok(ret),
        }
    }

    fn wait_inner(&mut self) -> i32 {
        self.waited = true;
        // SAFETY: the handle is !Send, so this is the main lcore that launched the closure;
        // `lcore` is a valid worker lcore id (checked in `launch`); the EAL is alive (token).
        unsafe { sys::rte_eal_wait_lcore(self.lcore) }
    }
}

impl Drop for LaunchHandle {
    fn drop(&mut self) {
        if !self.waited {
            self.wait_inner();
        }
    }
}
