//! `HTTP_GET`: for every `url`, an HTTP/1.0 GET of its path (Host: the `virtualhost`, else the
//! address and port checked); the real server passes when every answer's status is accepted
//! (keepalived's default: 200-299) and, where a `digest` is given, the MD5 of the body matches.

use std::io::{Read, Write};

use md5::{Digest, Md5};

use super::{Outcome, connect, target};
use crate::model::{Checker, Url};

/// Bodies are read up to this size (a digest over a larger page would not match anyway).
const MAX_RESPONSE: usize = 4 << 20;

pub(super) fn check(c: &Checker, tls: bool, urls: &[Url], vhost: Option<&str>) -> Outcome {
    // The loader refuses SSL_GET until it is built; never report a TLS check as passed.
    if tls {
        return Outcome::failed("SSL_GET is not supported");
    }
    for u in urls {
        if let Err(why) = get(c, u, vhost) {
            return Outcome::failed(format!("http://{}{}: {why}", target(c), u.path));
        }
    }
    Outcome::ok(format!("{} passed", target(c)))
}

fn get(c: &Checker, u: &Url, vhost: Option<&str>) -> Result<(), String> {
    let (mut stream, _) = connect(c).map_err(|e| format!("connect: {e}"))?;
    let host = u
        .virtualhost
        .clone()
        .or(vhost.map(str::to_owned))
        .unwrap_or_else(|| target(c));
    let request = format!(
        "GET {} HTTP/1.0\r\nUser-Agent: rvs-keepalived\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        u.path
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.len() > MAX_RESPONSE {
                    return Err(format!("answer larger than {MAX_RESPONSE} bytes"));
                }
            }
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    let (code, body) = status_of(&response).ok_or("not an HTTP answer")?;
    if !u.status.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code)) {
        return Err(format!("status {code} not accepted"));
    }
    if let Some(want) = &u.digest {
        let got = md5_hex(body);
        if &got != want {
            return Err(format!("digest {got} is not {want}"));
        }
    }
    Ok(())
}

/// The status code and the body of an HTTP/1.x answer.
pub fn status_of(response: &[u8]) -> Option<(u16, &[u8])> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..head_end]).ok()?;
    let mut status = head.lines().next()?.split_whitespace();
    if !status.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = status.next()?.parse().ok()?;
    Some((code, &response[head_end + 4..]))
}

/// MD5 in lower-case hex, as `genhash` prints it.
pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_body() {
        let r = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nrs1\n";
        assert_eq!(status_of(r), Some((200, &b"rs1\n"[..])));
        assert_eq!(status_of(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap().0, 404);
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.0 200 OK\r\n"), None);
    }

    #[test]
    fn md5_as_genhash_prints_it() {
        // RFC 1321's test vectors.
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }
}
