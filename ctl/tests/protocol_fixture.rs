//! The recorded version-1 exchanges (`fixtures/protocol-v1.txt`) read by today's types: every
//! request a version-1 client sent is still a request with the same name (so a newer daemon
//! understands older clients), and every reply a version-1 daemon sent still parses (so newer
//! clients understand older daemons). The daemon side of the test, replaying the requests
//! through rvsd's handler, is `tests/protocol_compat.rs` at the workspace root.

use ctl::proto::{Envelope, Reply, Request, parse_reply_line, request_name};

fn exchanges() -> Vec<(String, String)> {
    let text = include_str!("fixtures/protocol-v1.txt");
    let mut out = Vec::new();
    let mut req = None;
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("> ") {
            req = Some(r.to_owned());
        } else if let Some(r) = line.strip_prefix("< ") {
            out.push((req.take().expect("request before reply"), r.to_owned()));
        }
    }
    out
}

#[test]
fn version_1_requests_still_parse_with_their_names() {
    let mut parsed = 0;
    for (line, _) in exchanges() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue; // the garbage line
        };
        if value["version"] != 1 {
            continue;
        }
        let env: Envelope =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: no longer parses: {e}"));
        let wire = request_name(&value["request"]).unwrap();
        assert_eq!(env.request.name(), wire, "{line}");
        assert!(Request::NAMES.contains(&wire), "{wire}");
        // Re-encoded, it is the same JSON: nothing was renamed.
        let again: serde_json::Value = serde_json::to_value(&env).unwrap();
        assert_eq!(again, value, "{line}");
        parsed += 1;
    }
    assert!(parsed >= 45, "{parsed} requests");
}

#[test]
fn version_1_replies_still_parse() {
    let mut errors = 0;
    for (req, line) in exchanges() {
        let (version, reply) =
            parse_reply_line(&line).unwrap_or_else(|e| panic!("{line}: no longer parses: {e}"));
        assert_eq!(version, None, "version-1 replies are bare");
        if matches!(reply, Reply::Error(_)) {
            errors += 1;
        }
        // Re-encoded, nothing recorded is lost.
        let again = serde_json::to_value(&reply).unwrap();
        let old: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(again, old, "reply to {req}");
    }
    assert!(errors >= 10, "refusals are recorded too");
}

#[test]
fn every_request_name_is_unique_and_hello_is_new() {
    let mut names = Request::NAMES.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Request::NAMES.len());
    assert_eq!(Request::Hello.name(), "hello");
    assert_eq!(
        serde_json::to_value(Request::Hello).unwrap(),
        serde_json::json!("hello")
    );
    let recorded = include_str!("fixtures/protocol-v1.txt");
    assert!(!recorded.contains(r#""request":"hello""#));
}
