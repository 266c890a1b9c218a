//! The rvs daemon as a library: configuration, runtime (EAL, ports, worker lcores, the mbuf
//! newtype) and control plane. `rvsd` (src/main.rs) is a thin CLI over it; the benchmark binary
//! reuses the runtime's mbuf newtype so it measures exactly the code rvsd runs.

pub mod bench;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod reload;
pub mod runtime;
pub mod state;
pub mod systemd;
