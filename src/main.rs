//! rvsd: the rvs daemon (placeholder until the runtime lands).
fn main() {}
