//! dpdk-bindings: see DESIGN.md section 1.
