//! The state file: what a stop with state (SIGUSR2, or the systemd unit's stop and restart)
//! leaves for the next rvsd, so that a restart or an upgrade carries on every connection.
//!
//! Contents: the service table as the control plane lists it (services, dests, their counters),
//! the FULLNAT local addresses, the fwmark rules, the `--set` timeouts and the persistence
//! templates (each with the time it had left), as a JSON header;
//! then every worker's connections as fixed-size records, each with the time it had left when
//! its worker stopped: the IPv4 connections as [`ConnRecord`]s, then (format 4) the IPv6 ones,
//! NAT64's included, as [`ConnRecord6`]s, in a section of their own (why not one record type
//! with a family tag: `dataplane::conn::record`).
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
//! IPv6 record count    u64                               (format 4)
//! IPv6 records         count x ConnRecord6::SIZE bytes   (format 4)
//! checksum             u64, FNV-1a 64 of every byte before it
//! ```
//!
//! Formats 1 to 3 have no IPv6 section (their IPv4 records are shorter in 1 and 2) and are
//! still read: they simply carry no IPv6 connection.
//!
//! A file that is not a state file, is of another version, is cut short, has trailing bytes or
//! fails its checksum is refused whole with an error that says which ([`StateError`]); rvsd then
//! starts with empty tables. The file is written to `FILE.tmp`, synced, then renamed over
//! `FILE`, so a crash while saving leaves the previous file or none, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use ctl::proto;
use dataplane::conn::{ConnRecord, ConnRecord6, RecordError};
use serde::{Deserialize, Serialize};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"RVSSTATE";
/// The layout version this rvsd writes and reads.
pub const FORMAT_VERSION: u32 = 4;
/// Older layouts this rvsd still reads (version 1: records without the SYN proxy's
/// renumbering; version 2: without the PROXY header's progress; version 3: no IPv6 section).
const READS: [u32; 4] = [1, 2, 3, 4];

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

/// A persistence template in the state file (`dataplane::persist::TemplateRecord`). Addresses
/// are of either family (an IPv6 service's template: the client's IPv6 network and the VIP; a
/// NAT64 dest is IPv4); as JSON they are the address strings formats 1 to 3 wrote for IPv4, so
/// the older headers read unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTemplate {
    /// IP protocol of the template's key (0 for fwmark services).
    pub proto: u8,
    /// Client address & netmask (IPv4), or its network of the service's prefix length (IPv6).
    pub client: std::net::IpAddr,
    /// The VIP, or the fwmark as an address.
    pub vaddr: std::net::IpAddr,
    pub vport: u16,
    pub service: proto::ServiceKey,
    pub dest: (std::net::IpAddr, u16),
    pub remaining_ms: u64,
    pub timeout_secs: u64,
    pub assured: bool,
}

/// A whole state file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    pub header: Header,
    pub conns: Vec<ConnRecord>,
    /// IPv6 connections (NAT64 ones included); none in files of formats 1 to 3.
    pub conns6: Vec<ConnRecord6>,
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
    out.extend_from_slice(&(saved.conns6.len() as u64).to_le_bytes());
    for c in &saved.conns6 {
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
    let records6 = if version >= 4 {
        let count6 = u64::from_le_bytes(
            cur.take(8)
                .ok_or(StateError::Truncated(p(), "no IPv6 record count"))?
                .try_into()
                .unwrap_or_default(),
        );
        let len6 = usize::try_from(count6)
            .ok()
            .and_then(|c| c.checked_mul(ConnRecord6::SIZE))
            .ok_or_else(|| StateError::Corrupt(p(), format!("IPv6 record count {count6}")))?;
        cur.take(len6).ok_or(StateError::Truncated(
            p(),
            "IPv6 connection records cut short",
        ))?
    } else {
        &[]
    };
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
    let conns6 = records6
        .chunks_exact(ConnRecord6::SIZE)
        .enumerate()
        .map(|(i, c)| {
            ConnRecord6::decode(c)
                .map_err(|RecordError(e)| StateError::Corrupt(p(), format!("IPv6 record {i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Saved {
        header,
        conns,
        conns6,
    })
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
    use dataplane::conn::{ConnKey, ConnKey6, ConnState, TcpState};
    use dataplane::service::{ForwardMethod, Protocol, ServiceKey};
    use std::net::{Ipv4Addr, Ipv6Addr};

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
            conns6: Vec::new(),
        }
    }

    /// [`sample`] with IPv6 connections (FULLNAT6 and NAT64) and templates of both families.
    fn dual(n: usize) -> Saved {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let mut s = sample(n);
        let vip = a("2001:db8::100");
        let service = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: vip.into(),
            vport: 80,
        };
        let rec = |i: usize| ConnRecord6 {
            in_key: ConnKey6::new(6, a("2001:db8::2"), 40000 + i as u16, vip, 80),
            out_key: ConnKey6::new(6, a("2001:db8:1::10"), 80, a("2001:db8:1::2"), 1024),
            service,
            dest: (a("2001:db8:1::10").into(), 80),
            method: ForwardMethod::FullNat,
            state: ConnState::Tcp(TcpState::Established),
            toa_pending: i % 2 == 0,
            assured: true,
            controlled: true,
            remaining_ms: 800_000 - i as u64,
        };
        s.conns6 = (0..n).map(rec).collect();
        let rip4 = Ipv4Addr::new(198, 18, 1, 10);
        s.conns6.push(ConnRecord6 {
            out_key: dataplane::xmit::nat64::mapped_key(
                6,
                rip4,
                80,
                Ipv4Addr::new(198, 18, 1, 2),
                1026,
            ),
            dest: (rip4.into(), 80),
            ..rec(n)
        });
        let key = proto::ServiceKey::Inet {
            protocol: proto::Protocol::Tcp,
            addr: vip.into(),
            port: 80,
        };
        s.header.templates = vec![
            SavedTemplate {
                proto: 6,
                client: Ipv4Addr::new(198, 18, 0, 0).into(),
                vaddr: Ipv4Addr::new(198, 18, 0, 100).into(),
                vport: 80,
                service: proto::ServiceKey::Inet {
                    protocol: proto::Protocol::Tcp,
                    addr: Ipv4Addr::new(198, 18, 0, 100).into(),
                    port: 80,
                },
                dest: (Ipv4Addr::new(198, 18, 1, 10).into(), 80),
                remaining_ms: 1000,
                timeout_secs: 300,
                assured: false,
            },
            SavedTemplate {
                proto: 6,
                client: a("2001:db8::").into(),
                vaddr: vip.into(),
                vport: 80,
                service: key,
                dest: (rip4.into(), 80),
                remaining_ms: 2000,
                timeout_secs: 300,
                assured: true,
            },
        ];
        s
    }

    /// A file of an older `version`, its IPv4 records cut to `size` bytes, no IPv6 section.
    fn old_file(s: &Saved, version: u32, size: usize) -> Vec<u8> {
        let header = serde_json::to_vec(&s.header).unwrap();
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
        b.extend_from_slice(&header);
        b.extend_from_slice(&(s.conns.len() as u64).to_le_bytes());
        for c in &s.conns {
            let mut r = Vec::new();
            c.encode(&mut r);
            b.extend_from_slice(&r[..size]);
        }
        let sum = fnv1a(&b);
        b.extend_from_slice(&sum.to_le_bytes());
        b
    }

    /// A version-3 file (IPv4 connections only; its header's template addresses written as
    /// IPv4 addresses), as the previous rvsd wrote it, is still read, with no IPv6
    /// connection.
    #[test]
    fn version_3_files_are_read() {
        let mut s = sample(3);
        s.header.templates = dual(0).header.templates[..1].to_vec();
        let b = old_file(&s, 3, ConnRecord::SIZE);
        let got = decode(Path::new("f"), &b).unwrap();
        assert_eq!(got, s);
        assert!(got.conns6.is_empty());
        // What version 3 wrote for a template, byte for byte.
        let v3_template =
            br#"{"proto":6,"client":"198.18.0.0","vaddr":"198.18.0.100","vport":80,"service":"#;
        let header = String::from_utf8_lossy(&b);
        assert!(
            header.contains(std::str::from_utf8(v3_template).unwrap()),
            "{header}"
        );
        // A version-3 file has no IPv6 section: bytes where it would be are trailing bytes.
        let mut with_section = b[..b.len() - 8].to_vec();
        with_section.extend_from_slice(&0u64.to_le_bytes());
        let sum = fnv1a(&with_section);
        with_section.extend_from_slice(&sum.to_le_bytes());
        assert!(
            decode(Path::new("f"), &with_section)
                .unwrap_err()
                .to_string()
                .contains("8 bytes after the checksum")
        );
    }

    #[test]
    fn ipv6_connections_and_templates_round_trip() {
        let s = dual(3);
        assert_eq!(s.conns6.len(), 4);
        let b = encode(&s);
        assert_eq!(decode(Path::new("f"), &b).unwrap(), s);
        // A damaged IPv6 record (checksum fixed up) is refused with its index.
        let mut c = b[..b.len() - 8].to_vec();
        let last = c.len() - ConnRecord6::SIZE; // the NAT64 record
        c[last + 2 * 37 + 20] = 5; // its dest's address family
        let sum = fnv1a(&c);
        c.extend_from_slice(&sum.to_le_bytes());
        let e = decode(Path::new("f"), &c).unwrap_err().to_string();
        assert!(e.contains("IPv6 record 3: address family"), "{e}");
        // Every truncation inside the IPv6 section is refused, none panics.
        for n in b.len() - 8 - 4 * ConnRecord6::SIZE - 8..b.len() {
            assert!(decode(Path::new("f"), &b[..n]).is_err());
        }
    }

    /// A version-1 file (records without the renumbering), as the previous rvsd wrote it, is
    /// still read.
    #[test]
    fn version_1_files_are_read() {
        let s = sample(3);
        let b = old_file(&s, 1, ConnRecord::SIZE_V1);
        assert_eq!(decode(Path::new("f"), &b).unwrap(), s);
    }

    /// A version-2 file (records without the PROXY header's progress), as the previous rvsd
    /// wrote it, is still read.
    #[test]
    fn version_2_files_are_read() {
        let s = sample(3);
        let b = old_file(&s, 2, ConnRecord::SIZE_V2);
        assert_eq!(decode(Path::new("f"), &b).unwrap(), s);
    }

    #[test]
    fn round_trip() {
        let s = dual(3);
        let b = encode(&s);
        assert_eq!(decode(Path::new("f"), &b).unwrap(), s);
        let empty = sample(0);
        assert_eq!(decode(Path::new("f"), &encode(&empty)).unwrap(), empty);
    }

    #[test]
    fn foreign_versioned_truncated_and_corrupt_files_are_refused_with_the_reason() {
        let f = Path::new("/var/lib/rvs/rvsd.state");
        let good = encode(&dual(3));
        let msg = |b: &[u8]| decode(f, b).unwrap_err().to_string();
        assert_eq!(
            msg(b"[dpdk]\ncores = \"0-1\"\n"),
            "/var/lib/rvs/rvsd.state: not an rvs state file (no RVSSTATE magic)"
        );
        assert!(msg(b"").contains("not an rvs state file"));
        let mut v5 = good.clone();
        v5[8] = 5;
        assert_eq!(
            msg(&v5),
            "/var/lib/rvs/rvsd.state: state file format version 5, this rvsd reads versions 1 to 4"
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
        let s = dual(5);
        write(&path, &s).unwrap();
        assert!(!dir.join("rvsd.state.tmp").exists());
        assert_eq!(read(&path).unwrap(), s);
        let e = read(&dir.join("missing")).unwrap_err().to_string();
        assert!(e.contains("missing: cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
