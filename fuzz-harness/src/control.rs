//! The control protocol's request lines (ctl::proto), as the daemon reads them.

use ctl::proto::{Envelope, request_name};

/// Read `data` as one request line: a JSON value, the request's name, the envelope. An envelope
/// that parses must survive a round trip through its own serialisation unchanged.
pub fn request(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Some(r) = value.get("request") {
        let _ = request_name(r);
    }
    let Ok(env) = serde_json::from_value::<Envelope>(value) else {
        return;
    };
    let line = serde_json::to_string(&env).expect("an envelope serialises");
    let back: Envelope = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("own serialisation refused: {e}: {line}"));
    assert_eq!(back, env, "round trip changed the request: {line}");
}
