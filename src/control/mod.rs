//! The control plane: the control socket, how requests change the daemon's state, the rate
//! estimators and the `/metrics` endpoint.

pub mod dropwatch;
pub mod metrics;
pub mod origin;
pub mod plane;
pub mod rates;
pub mod server;

pub use plane::ControlPlane;
