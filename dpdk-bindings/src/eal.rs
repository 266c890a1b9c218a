//! EAL bring-up and teardown, lcore and clock helpers.
//!
//! `rte_eal_init` may run once per process and `rte_eal_cleanup` unmaps all DPDK memory, so the
//! EAL is modelled as a shared token ([`EalToken`], an `Arc`): [`Eal`] holds one, and so does
//! every resource that lives in DPDK memory (mempools, rings, ports, launched lcores). Cleanup
//! runs when the last token is dropped, so no safe code can touch DPDK memory after it is gone.

use std::ffi::{CString, c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::error::DpdkError;
use crate::sys;

/// "Any NUMA socket", for [`crate::Mempool::new`] and [`crate::Ring::new`].
pub const SOCKET_ID_ANY: i32 = sys::SOCKET_ID_ANY;

/// Set by the first `Eal::init` call and never cleared: DPDK cannot be initialised twice, even
/// after a failed attempt or a cleanup.
static STARTED: AtomicBool = AtomicBool::new(false);

/// The live EAL, if any: resource constructors take a token from here.
static LIVE: Mutex<Weak<EalToken>> = Mutex::new(Weak::new());

/// Proof that the EAL is initialised and not yet cleaned up. Dropping the last one runs
/// `rte_eal_cleanup`.
#[derive(Debug)]
pub(crate) struct EalToken {
    main_lcore: u32,
}

impl EalToken {
    /// The main lcore's id.
    pub(crate) fn main_lcore(&self) -> u32 {
        self.main_lcore
    }
}

impl Drop for EalToken {
    fn drop(&mut self) {
        // Cleanup tears down state the main lcore owns; from another thread (a resource whose
        // last handle died on a worker) we rather leak than risk it. The process is ending then.
        if lcore_id() != Some(self.main_lcore) {
            tracing::warn!("EAL released off the main lcore: skipping rte_eal_cleanup");
            return;
        }
        // SAFETY: this is the last token, so no mempool, ring, port or launched lcore exists
        // any more (each holds a token), and we are on the main lcore that ran rte_eal_init.
        let ret = unsafe { sys::rte_eal_cleanup() };
        if ret < 0 {
            tracing::warn!(
                "{}",
                DpdkError::from_errno("rte_eal_cleanup", ret).to_string()
            );
        }
    }
}

/// A token for a new resource, or an error if the EAL is not running.
pub(crate) fn token(op: &'static str) -> Result<Arc<EalToken>, DpdkError> {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .upgrade()
        .ok_or_else(|| {
            DpdkError::new(
                op,
                libc::ENODEV,
                "the DPDK EAL is not initialised (call Eal::init first)",
            )
        })
}

/// The initialised DPDK Environment Abstraction Layer. Exactly one per process.
///
/// The thread that calls [`Eal::init`] becomes the *main lcore*: only it may launch work on
/// other lcores ([`crate::launch`]). Dropping the `Eal` cleans DPDK up once every resource
/// created under it is dropped too (see the module docs).
#[derive(Debug)]
pub struct Eal {
    token: Arc<EalToken>,
}

impl Eal {
    /// Initialise DPDK with `args`, the EAL arguments *without* the program name (rvs passes
    /// `"rvs"` as argv\[0\] itself), e.g. `["--no-huge", "-m", "256", "--no-shconf", "-l", "0-1"]`.
    ///
    /// The argument strings are leaked on purpose: EAL keeps pointers into argv for the life of
    /// the process. Only the first call in a process may succeed; any later call (also after a
    /// failed first call or after the `Eal` was dropped) returns an error with `EALREADY`.
    pub fn init(args: &[&str]) -> Result<Eal, DpdkError> {
        let mut owned = Vec::with_capacity(args.len() + 1);
        for arg in std::iter::once(&"rvs").chain(args) {
            let c = CString::new(*arg).map_err(|_| {
                DpdkError::new(
                    "rte_eal_init",
                    libc::EINVAL,
                    format!("EAL argument {arg:?} contains a NUL byte"),
                )
            })?;
            owned.push(c);
        }
        let argc = c_int::try_from(owned.len())
            .map_err(|_| DpdkError::new("rte_eal_init", libc::E2BIG, "too many EAL arguments"))?;
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::new(
                "rte_eal_init",
                libc::EALREADY,
                "the DPDK EAL can be initialised only once per process",
            ));
        }
        let strings: &'static mut [CString] = Vec::leak(owned);
        let argv: &'static mut [*mut c_char] = Vec::leak(
            strings
                .iter_mut()
                .map(|s| s.as_ptr().cast_mut())
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect(),
        );
        // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all leaked so
        // they outlive the process as EAL requires (it keeps and permutes pointers into argv).
        // STARTED guarantees this is the only call in the process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = crate::error::rte_errno();
            return Err(if errno == 0 {
                // Some of EAL's failure paths (a bad option, a vdev its driver refused) return
                // -1 without setting rte_errno; its own messages on stderr say which.
                DpdkError::new(
                    "rte_eal_init",
                    0,
                    "EAL gave no error number; the EAL: lines above say which argument or \
                     device it refused",
                )
            } else {
                DpdkError::from_errno("rte_eal_init", errno)
            });
        }
        // SAFETY: the EAL is initialised; rte_get_main_lcore only reads its configuration.
        let main_lcore = unsafe { sys::rte_get_main_lcore() };
        let token = Arc::new(EalToken { main_lcore });
        *LIVE.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(&token);
        Ok(Eal { token })
    }

    /// The lcore id of the main lcore (the thread that called [`Eal::init`]).
    pub fn main_lcore(&self) -> u32 {
        self.token.main_lcore
    }

    /// Enabled lcores other than the main one, in increasing order: where workers run.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut lcores = Vec::new();
        let mut i = u32::MAX; // rte_get_next_lcore(-1, ...) yields the first enabled lcore
        loop {
            // SAFETY: the EAL is initialised (we hold a token); the function only reads the
            // lcore configuration and accepts any index.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
            if i >= sys::RTE_MAX_LCORE {
                return lcores;
            }
            lcores.push(i);
        }
    }

    /// Number of enabled lcores, the main one included.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: the EAL is initialised; reads its configuration only.
        unsafe { sys::rte_lcore_count() }
    }

    /// NUMA socket of `lcore`, or [`SOCKET_ID_ANY`] if unknown.
    pub fn lcore_socket_id(&self, lcore: u32) -> i32 {
        if lcore >= sys::RTE_MAX_LCORE {
            return SOCKET_ID_ANY;
        }
        // SAFETY: the EAL is initialised and lcore < RTE_MAX_LCORE, the bound of the table read.
        let socket = unsafe { sys::rte_lcore_to_socket_id(lcore) };
        i32::try_from(socket).unwrap_or(SOCKET_ID_ANY)
    }

    /// TSC ticks per second (see [`tsc_hz`]).
    pub fn tsc_hz(&self) -> u64 {
        tsc_hz()
    }

    /// The current TSC value (see [`rdtsc`]).
    pub fn rdtsc(&self) -> u64 {
        rdtsc()
    }

    /// The calling thread's lcore id (see [`lcore_id`]).
    pub fn lcore_id(&self) -> Option<u32> {
        lcore_id()
    }

    /// The calling thread's NUMA socket (see [`socket_id`]).
    pub fn socket_id(&self) -> i32 {
        socket_id()
    }
}

/// The calling thread's lcore id, or `None` on a thread DPDK did not create (or register).
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads the calling thread's thread-local lcore id; valid on any thread.
    let id = unsafe { sys::rvs_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

/// The calling thread's NUMA socket, or [`SOCKET_ID_ANY`] on a non-EAL thread.
pub fn socket_id() -> i32 {
    // SAFETY: reads the calling thread's thread-local socket id; valid on any thread.
    let socket = unsafe { sys::rte_socket_id() };
    i32::try_from(socket).unwrap_or(SOCKET_ID_ANY)
}

/// The time stamp counter (`rte_rdtsc`): cheap, monotonic on one core, in [`tsc_hz`] units.
pub fn rdtsc() -> u64 {
    // SAFETY: executes the rdtsc instruction; no memory is touched.
    unsafe { sys::rvs_rdtsc() }
}

/// TSC ticks per second as measured by the EAL; 0 before [`Eal::init`].
pub fn tsc_hz() -> u64 {
    // SAFETY: returns a global that EAL sets during init (0 before); no other effect.
    unsafe { sys::rte_get_tsc_hz() }
}

/// The DPDK version string, e.g. `"DPDK 22.11.11"`. Works without the EAL.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    let ptr = unsafe { sys::rte_version() };
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null static NUL-terminated string, see above.
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}
