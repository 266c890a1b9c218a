//! rvsd's TOML configuration: parse and validate arbitrary text.

use std::path::Path;

/// Parse and validate `data` as an rvsd.toml. A refusal must name the file.
pub fn toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz-rvsd.toml");
    if let Err(e) = rvs::config::parse(file, text) {
        let msg = e.to_string();
        assert!(msg.contains("fuzz-rvsd.toml"), "error names no file: {msg}");
    }
}
