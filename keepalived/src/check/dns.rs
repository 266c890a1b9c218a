//! `DNS_CHECK`: one query over UDP (`type`, default SOA, for `name`, default the root); the
//! real server passes when an answer with the query's id, the response bit and no error code
//! comes back within `connect_timeout`.

use std::net::{SocketAddr, UdpSocket};

use socket2::Type;

use super::{Outcome, socket_for, target};
use crate::model::Checker;

pub(super) fn check(c: &Checker, qtype: u16, name: &str) -> Outcome {
    match query(c, qtype, name) {
        Ok(()) => Outcome::ok(format!("{} answered", target(c))),
        Err(why) => Outcome::failed(format!("{}: {why}", target(c))),
    }
}

fn query(c: &Checker, qtype: u16, name: &str) -> Result<(), String> {
    let s = socket_for(c, Type::DGRAM).map_err(|e| format!("socket: {e}"))?;
    let sock: UdpSocket = s.into();
    sock.connect(SocketAddr::new(c.addr, c.port))
        .map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(c.connect_timeout))
        .map_err(|e| e.to_string())?;
    let id = (std::process::id() as u16)
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u16));
    let q = build_query(id, qtype, name)?;
    sock.send(&q).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let n = sock.recv(&mut buf).map_err(|e| format!("no answer: {e}"))?;
        match check_answer(id, &buf[..n]) {
            Some(r) => return r,
            None => continue, // not ours (another id): keep waiting within the timeout
        }
    }
}

/// A standard query with recursion desired.
pub fn build_query(id: u16, qtype: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        if label.len() > 63 {
            return Err(format!("label {label:?} longer than 63 bytes"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    Ok(q)
}

/// `None` when the datagram is not the answer to query `id`; else whether it passes.
pub fn check_answer(id: u16, a: &[u8]) -> Option<Result<(), String>> {
    if a.len() < 12 || a[..2] != id.to_be_bytes() || a[2] & 0x80 == 0 {
        return None;
    }
    let rcode = a[3] & 0x0f;
    Some(if rcode == 0 {
        Ok(())
    } else {
        Err(format!("answer with error code {rcode}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes() {
        let q = build_query(0x1234, 1, "rs.example.").unwrap();
        assert_eq!(
            q,
            [
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'r', b's', 7, b'e', b'x', b'a', b'm',
                b'p', b'l', b'e', 0, 0, 1, 0, 1
            ]
        );
        assert_eq!(build_query(1, 6, ".").unwrap()[12..], [0, 0, 6, 0, 1]);
    }

    #[test]
    fn answers() {
        let mut a = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        assert_eq!(check_answer(0x1234, &a), Some(Ok(())));
        assert_eq!(check_answer(0x9999, &a), None);
        a[3] = 0x83; // NXDOMAIN
        assert!(matches!(check_answer(0x1234, &a), Some(Err(_))));
        a[2] = 0x01; // a query, not an answer
        assert_eq!(check_answer(0x1234, &a), None);
    }
}
