//! The state file: what a stop with state (SIGUSR2, or the systemd unit's stop and restart)
//! leaves for the next rvsd, so that a restart or an upgrade carries on every connection.
//!
//! Contents: the service table as the control plane lists it (services, dests, their counters),
//! the FULLNAT local addresses, the fwmark rules, the `--set` timeouts and the persistence
//! templates (each with the time it had left), as a JSON header;
//! then every worker's connections as fixed-size [`ConnRecord`]s, each with the time it had
//! left when its worker stopped.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! "RVSSTATE"           8 bytes, the magic
//! version              u32, FORMAT_VERSION
//! header length        u32
//! header               JSON (Header)
//! record count         u64
//! records              count x ConnRecord::SIZE bytes
//! checksum             u64, FNV-1a 64 of every byte before it
//! ```
//!
//! A file that is not a state file, is of another version, is cut short, has trailing bytes or
//! fails its checksum is refused whole with an error that says which ([`StateError`]); rvsd then
//! starts with empty tables. The file is written to `FILE.tmp`, synced, then renamed over
//! `FILE`, so a crash while saving leaves the previous file or none, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use ctl::proto;
use dataplane::conn::{ConnRecord, RecordError};
use serde::{Deserialize, Serialize};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"RVSSTATE";
/// The layout version this rvsd writes and reads.
pub const FORMAT_VERSION: u32 = 3;
/// Older layouts this rvsd still reads (version 1: records without the SYN proxy's
/// renumbering; version 2: without the PROXY header's progress).
const READS: [u32; 3] = [1, 2, 3];

/// Everything but the connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// `rvsd --version` of the writer (for the log of the reader).
    pub writer: String,
    /// When the workers stopped (milliseconds since the Unix epoch): remaining times count
    /// from here.
    pub saved_unix_ms: u64,
    /// Workers of the writer.
    pub workers: usize,
    pub services: Vec<proto::ServiceInfo>,
    pub laddrs: Vec<proto::ServiceLaddrs>,
    pub fwmarks: Vec<proto::FwmarkRule>,
    pub timeouts: proto::Timeouts,
    /// Persistence templates, with the time each had left when the workers stopped.
    #[serde(default)]
    pub templates: Vec<SavedTemplate>,
}

/// A persistence template in the state file (`dataplane::persist::TemplateRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTemplate {
    /// IP protocol of the template's key (0 for fwmark services).
    pub proto: u8,
    /// Client address & netmask.
    pub client: std::net::Ipv4Addr,
    /// The VIP, or the fwmark as an address.
    pub vaddr: std::net::Ipv4Addr,
    pub vport: u16,
    pub service: proto::ServiceKey,
    pub dest: (std::net::Ipv4Addr, u16),
    pub remaining_ms: u64,
    pub timeout_secs: u64,
    pub assured: bool,
}

/// A whole state file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    pub header: Header,
    pub conns: Vec<ConnRecord>,
}

/// Why a state file was refused.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{0}: cannot read: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: not an rvs state file (no RVSSTATE magic)")]
    Foreign(PathBuf),
    #[error("{0}: state file format version {1}, this rvsd reads versions 1 to {FORMAT_VERSION}")]
    Version(PathBuf, u32),
    #[error("{0}: truncated state file ({1})")]
    Truncated(PathBuf, &'static str),
    #[error("{0}: corrupt state file: {1}")]
    Corrupt(PathBuf, String),
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The file's bytes.
pub fn encode(saved: &Saved) -> Vec<u8> {
    let header = serde_json::to_vec(&saved.header).unwrap_or_default();
    let mut out = Vec::with_capacity(32 + header.len() + saved.conns.len() * ConnRecord::SIZE);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(saved.conns.len() as u64).to_le_bytes());
    for c in &saved.conns {
        c.encode(&mut out);
    }
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// A read position in a file's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
}

/// Read a state file's bytes (`path` only names it in errors).
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Saved, StateError> {
    let p = || path.to_owned();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(StateError::Foreign(p()));
    }
    let mut cur = Cursor {
        bytes,
        at: MAGIC.len(),
    };
    let u32_at = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap_or_default());
    let version = u32_at(
        cur.take(4)
            .ok_or(StateError::Truncated(p(), "no version"))?,
    );
    if !READS.contains(&version) {
        return Err(StateError::Version(p(), version));
    }
    let record_size = match version {
        1 => ConnRecord::SIZE_V1,
        2 => ConnRecord::SIZE_V2,
        _ => ConnRecord::SIZE,
    };
    let header_len = u32_at(
        cur.take(4)
            .ok_or(StateError::Truncated(p(), "no header length"))?,
    ) as usize;
    let header_bytes = cur
        .take(header_len)
        .ok_or(StateError::Truncated(p(), "header cut short"))?;
    let count = u64::from_le_bytes(
        cur.take(8)
            .ok_or(StateError::Truncated(p(), "no record count"))?
            .try_into()
            .unwrap_or_default(),
    );
    let body_len = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(record_size))
        .ok_or_else(|| StateError::Corrupt(p(), format!("record count {count}")))?;
    let records = cur
        .take(body_len)
        .ok_or(StateError::Truncated(p(), "connection records cut short"))?;
    let end = cur.at;
    let sum = cur
        .take(8)
        .ok_or(StateError::Truncated(p(), "no checksum"))?;
    if cur.at != bytes.len() {
        return Err(StateError::Corrupt(
            p(),
            format!("{} bytes after the checksum", bytes.len() - cur.at),
        ));
    }
    if u64::from_le_bytes(sum.try_into().unwrap_or_default()) != fnv1a(&bytes[..end]) {
        return Err(StateError::Corrupt(p(), "checksum mismatch".into()));
    }
    let header: Header = serde_json::from_slice(header_bytes)
        .map_err(|e| StateError::Corrupt(p(), format!("header: {e}")))?;
    let conns = records
        .chunks_exact(record_size)
        .enumerate()
        .map(|(i, c)| {
            ConnRecord::decode(c)
                .map_err(|RecordError(e)| StateError::Corrupt(p(), format!("record {i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Saved { header, conns })
}

/// Read and check the state file at `path`.
pub fn read(path: &Path) -> Result<Saved, StateError> {
    let bytes = std::fs::read(path).map_err(|e| StateError::Read(path.to_owned(), e))?;
    decode(path, &bytes)
}

/// Write `saved` to `path` (through `PATH.tmp`, synced and renamed).
pub fn write(path: &Path, saved: &Saved) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(&encode(saved))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::conn::{ConnKey, ConnState, TcpState};
    use dataplane::service::{ForwardMethod, Protocol, ServiceKey};
    use std::net::Ipv4Addr;

    fn sample(n: usize) -> Saved {
        let rec = |i: usize| ConnRecord {
            in_key: ConnKey::new(
                6,
                Ipv4Addr::new(198, 18, 0, 2),
                40000 + i as u16,
                Ipv4Addr::new(198, 18, 0, 100),
                80,
            ),
            out_key: ConnKey::new(
                6,
                Ipv4Addr::new(198, 18, 1, 10),
                80,
                Ipv4Addr::new(198, 18, 0, 2),
                40000 + i as u16,
            ),
            service: ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip: Ipv4Addr::new(198, 18, 0, 100).into(),
                vport: 80,
            },
            dest: (Ipv4Addr::new(198, 18, 1, 10), 80),
            method: ForwardMethod::Masq,
            state: ConnState::Tcp(TcpState::Established),
            toa_pending: false,
            assured: false,
            controlled: false,
            remaining_ms: 900_000 - i as u64,
            seq_adj: None,
            synproxy: false,
            proxy_hdr: None,
        };
        Saved {
            header: Header {
                writer: "test".into(),
                saved_unix_ms: 1,
                workers: 2,
                timeouts: proto::Timeouts {
                    tcp: 900,
                    tcpfin: 120,
                    udp: 300,
                },
                ..Header::default()
            },
            conns: (0..n).map(rec).collect(),
        }
    }

    /// A version-1 file (records without the renumbering), as the previous rvsd wrote it, is
    /// still read.
    #[test]
    fn version_1_files_are_read() {
        let s = sample(3);
        let header = serde_json::to_vec(&s.header).unwrap();
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
        b.extend_from_slice(&header);
        b.extend_from_slice(&(s.conns.len() as u64).to_le_bytes());
        for c in &s.conns {
            let mut r = Vec::new();
            c.encode(&mut r);
            b.extend_from_slice(&r[..ConnRecord::SIZE_V1]);
        }
        let sum = fnv1a(&b);
        b.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(decode(Path::new("f"), &b).unwrap(), s);
    }

    /// A version-2 file (records without the PROXY header's progress), as the previous rvsd
    /// wrote it, is still read.
    #[test]
    fn version_2_files_are_read() {
        let s = sample(3);
        let header = serde_json::to_vec(&s.header).unwrap();
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
        b.extend_from_slice(&header);
        b.extend_from_slice(&(s.conns.len() as u64).to_le_bytes());
        for c in &s.conns {
            let mut r = Vec::new();
            c.encode(&mut r);
            b.extend_from_slice(&r[..ConnRecord::SIZE_V2]);
        }
        let sum = fnv1a(&b);
        b.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(decode(Path::new("f"), &b).unwrap(), s);
    }

    #[test]
    fn round_trip() {
        let s = sample(3);
        let b = encode(&s);
        assert_eq!(decode(Path::new("f"), &b).unwrap(), s);
        let empty = sample(0);
        assert_eq!(decode(Path::new("f"), &encode(&empty)).unwrap(), empty);
    }

    #[test]
    fn foreign_versioned_truncated_and_corrupt_files_are_refused_with_the_reason() {
        let f = Path::new("/var/lib/rvs/rvsd.state");
        let good = encode(&sample(3));
        let msg = |b: &[u8]| decode(f, b).unwrap_err().to_string();
        assert_eq!(
            msg(b"[dpdk]\ncores = \"0-1\"\n"),
            "/var/lib/rvs/rvsd.state: not an rvs state file (no RVSSTATE magic)"
        );
        assert!(msg(b"").contains("not an rvs state file"));
        let mut v4 = good.clone();
        v4[8] = 4;
        assert_eq!(
            msg(&v4),
            "/var/lib/rvs/rvsd.state: state file format version 4, this rvsd reads versions 1 to 3"
        );
        // Every truncation is refused, none panics.
        for n in 8..good.len() {
            let e = msg(&good[..n]);
            assert!(e.contains("truncated"), "cut at {n}: {e}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(msg(&long).contains("1 bytes after the checksum"));
        // Every flipped byte after the magic and version is caught.
        for i in 12..good.len() {
            let mut c = good.clone();
            c[i] ^= 0x20;
            assert!(decode(f, &c).is_err(), "byte {i} flipped went unnoticed");
        }
        let mut c = good.clone();
        let last = good.len() - 9; // inside the last record
        c[last] ^= 1;
        assert!(msg(&c).contains("checksum mismatch"), "{}", msg(&c));
    }

    #[test]
    fn written_through_a_temporary_file() {
        let dir = std::env::temp_dir().join(format!("rvs-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rvsd.state");
        let s = sample(5);
        write(&path, &s).unwrap();
        assert!(!dir.join("rvsd.state.tmp").exists());
        assert_eq!(read(&path).unwrap(), s);
        let e = read(&dir.join("missing")).unwrap_err().to_string();
        assert!(e.contains("missing: cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
