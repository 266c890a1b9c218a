//! rvs-keepalived's configuration parser on text in memory.

use std::path::Path;

/// Parse `data` as a keepalived.conf read from a directory that does not exist. Inputs with an
/// `include` line are skipped: an include is a glob over the real file system (`include /**/*`
/// would walk the machine), which the keepalived crate's own tests cover with files of theirs.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("include") {
        return;
    }
    let name = Path::new("/nonexistent-rvs-fuzz/keepalived.conf");
    if let Err(e) = rvs_keepalived::load::load_str(name, text) {
        assert!(!e.to_string().is_empty());
    }
}
