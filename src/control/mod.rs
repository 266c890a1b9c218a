//! The control plane: the control socket and how requests change the daemon's state.

pub mod plane;
pub mod server;

pub use plane::ControlPlane;
