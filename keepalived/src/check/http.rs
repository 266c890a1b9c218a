//! `HTTP_GET` and `SSL_GET`: for every `url`, an HTTP/1.0 GET of its path (Host: the
//! `virtualhost`, else the address and port checked); the real server passes when every answer's
//! status is accepted (keepalived's default: 200-299) and, where a `digest` is given, the MD5 of
//! the body matches. `SSL_GET` does the same over TLS (rustls): as keepalived without a CA, the
//! server's certificate is not verified (a health check asks "does it answer", not "is it who it
//! says"), but the handshake's signatures are; the `virtualhost` is sent as SNI.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};

use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use super::{Outcome, connect, target};
use crate::model::{Checker, Url};

/// Bodies are read up to this size (a digest over a larger page would not match anyway).
const MAX_RESPONSE: usize = 4 << 20;

pub(super) fn check(c: &Checker, tls: bool, urls: &[Url], vhost: Option<&str>) -> Outcome {
    let scheme = if tls { "https" } else { "http" };
    for u in urls {
        if let Err(why) = get(c, tls, u, vhost) {
            return Outcome::failed(format!("{scheme}://{}{}: {why}", target(c), u.path));
        }
    }
    Outcome::ok(format!("{} passed", target(c)))
}

fn get(c: &Checker, tls: bool, u: &Url, vhost: Option<&str>) -> Result<(), String> {
    let (tcp, _) = connect(c).map_err(|e| format!("connect: {e}"))?;
    let vhost = u.virtualhost.as_deref().or(vhost);
    let host = vhost.map_or_else(|| target(c), str::to_owned);
    if tls {
        let name = match vhost {
            Some(h) => ServerName::try_from(h.to_owned())
                .map_err(|e| format!("virtualhost {h:?} is not a server name: {e}"))?,
            None => ServerName::IpAddress(c.addr.into()),
        };
        let conn = ClientConnection::new(tls_config(), name).map_err(|e| format!("TLS: {e}"))?;
        let mut stream = StreamOwned::new(conn, tcp);
        exchange(&mut stream, u, &host)
    } else {
        let mut stream: TcpStream = tcp;
        exchange(&mut stream, u, &host)
    }
}

fn exchange(stream: &mut impl ReadWrite, u: &Url, host: &str) -> Result<(), String> {
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
            // A TLS server that closes without close_notify: the answer is what came.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !response.is_empty() => break,
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

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// One client configuration for every SSL_GET: ring's algorithms, TLS 1.2 and 1.3, any
/// certificate (see the module doc).
fn tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports TLS 1.2 and 1.3")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Accepts the server's certificate whatever it is, as keepalived's SSL_GET does without a CA;
/// the handshake signatures are still checked with the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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
