//! A connection as a plain record that outlives the process (restart with state): what the
//! connection is (tuples, service, dest, method, protocol state, the flags that matter to its
//! next packet) and how long it still has to live, measured from the moment it was taken. No
//! slot index, id or clock value of the process that made it is kept, so a record can be put
//! back into any table of any later process ([`crate::worker::Worker::import_conns`]).
//!
//! The byte form ([`ConnRecord::encode`], [`ConnRecord::decode`]) is fixed-size
//! ([`ConnRecord::SIZE`] bytes, little-endian; [`ConnRecord::SIZE_V1`] for records of the
//! first format, which had no renumbering and are still read), so a file of records is read without parsing
//! anything variable, and a decoded record is checked field by field: a damaged byte gives an
//! error, never a panic.
//!
//! IPv6 connections (the worker's second table, NAT64 ones included) are [`ConnRecord6`]s: a
//! record type of their own, fixed-size too ([`ConnRecord6::SIZE`]), kept in a section of the
//! state file of its own (format 4). Why not one record with a family tag: a fixed-size record
//! that can hold either family would carry IPv6-sized tuples for every IPv4 connection (the
//! bulk of a table, whose file and save time would grow by half), or the records would become
//! variable-size and the reader would have to parse; and the IPv4 record of format 4 stays
//! byte for byte the one of format 3, so the code that reads formats 1 to 3 reads the IPv4
//! part of format 4 unchanged. The two record types mirror the worker's two tables.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{ConnKey, ConnKey6, ConnState, TcpState, UdpState};
use crate::service::{ForwardMethod, Protocol, ServiceKey};

/// One connection, detached from its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRecord {
    pub in_key: ConnKey,
    pub out_key: ConnKey,
    /// The service, by its key (ids are per process).
    pub service: ServiceKey,
    /// The dest, by address and port.
    pub dest: (Ipv4Addr, u16),
    pub method: ForwardMethod,
    pub state: ConnState,
    /// FULLNAT TCP: the client address option is still to be sent.
    pub toa_pending: bool,
    /// Its template was told it is assured.
    pub assured: bool,
    /// A persistence template controls it (found again by the template's key on import).
    pub controlled: bool,
    /// Time left before it expires without packets, milliseconds.
    pub remaining_ms: u64,
    /// A renumbered connection's translation (absent from version-1 records).
    pub seq_adj: Option<crate::synproxy::seqadj::SeqAdj>,
    /// Opened by the SYN proxy (version-2 records: whenever `seq_adj` is present).
    pub synproxy: bool,
    /// A PROXY protocol header's progress (absent before version 3).
    pub proxy_hdr: Option<crate::xmit::proxy::TcpPp>,
}

/// A record's bytes do not describe a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad connection record: {0}")]
pub struct RecordError(pub &'static str);

fn put_key(out: &mut Vec<u8>, k: &ConnKey) {
    out.push(k.proto);
    out.extend_from_slice(&k.src.octets());
    out.extend_from_slice(&k.sport.to_le_bytes());
    out.extend_from_slice(&k.dst.octets());
    out.extend_from_slice(&k.dport.to_le_bytes());
}

/// A bounds-checked reader over one record's bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(RecordError("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn ip(&mut self) -> Result<Ipv4Addr, RecordError> {
        Ok(Ipv4Addr::from(self.take::<4>()?))
    }
    fn key(&mut self) -> Result<ConnKey, RecordError> {
        Ok(ConnKey {
            proto: self.u8()?,
            src: self.ip()?,
            sport: self.u16()?,
            dst: self.ip()?,
            dport: self.u16()?,
        })
    }
    fn ip6(&mut self) -> Result<Ipv6Addr, RecordError> {
        Ok(Ipv6Addr::from(self.take::<16>()?))
    }
    fn key6(&mut self) -> Result<ConnKey6, RecordError> {
        Ok(ConnKey6 {
            proto: self.u8()?,
            src: self.ip6()?,
            sport: self.u16()?,
            dst: self.ip6()?,
            dport: self.u16()?,
        })
    }
    /// An address of either family: 4 or 6, then 16 bytes (an IPv4 address in the first 4,
    /// the rest zero).
    fn any_ip(&mut self) -> Result<IpAddr, RecordError> {
        let family = self.u8()?;
        let b = self.take::<16>()?;
        match family {
            4 if b[4..].iter().all(|&x| x == 0) => Ok(Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()),
            6 => Ok(Ipv6Addr::from(b).into()),
            _ => Err(RecordError("address family")),
        }
    }
}

fn put_key6(out: &mut Vec<u8>, k: &ConnKey6) {
    out.push(k.proto);
    out.extend_from_slice(&k.src.octets());
    out.extend_from_slice(&k.sport.to_le_bytes());
    out.extend_from_slice(&k.dst.octets());
    out.extend_from_slice(&k.dport.to_le_bytes());
}

/// [`Reader::any_ip`]'s form: family, 16 bytes.
fn put_any_ip(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
            out.extend_from_slice(&[0; 12]);
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

/// The protocol state's two bytes (IP protocol, state index), shared by both record types.
fn put_state(out: &mut Vec<u8>, state: ConnState) {
    match state {
        ConnState::Tcp(s) => out.extend_from_slice(&[6, s as u8]),
        ConnState::Udp(_) => out.extend_from_slice(&[17, 0]),
    }
}

fn read_state(r: &mut Reader<'_>) -> Result<ConnState, RecordError> {
    Ok(match (r.u8()?, r.u8()?) {
        (6, s) => ConnState::Tcp(
            *TcpState::ALL
                .get(usize::from(s))
                .ok_or(RecordError("TCP state"))?,
        ),
        (17, 0) => ConnState::Udp(UdpState::Normal),
        _ => return Err(RecordError("state")),
    })
}

const METHODS: [ForwardMethod; 4] = [
    ForwardMethod::Masq,
    ForwardMethod::Route,
    ForwardMethod::Tunnel,
    ForwardMethod::FullNat,
];

impl ConnRecord {
    /// Bytes per record of the first format (no renumbering).
    pub const SIZE_V1: usize = 2 * 13 + 8 + 6 + 1 + 2 + 1 + 8;
    /// Bytes per record of the second format: the first and the renumbering (present, three
    /// deltas, two window pairs, timestamps).
    pub const SIZE_V2: usize = Self::SIZE_V1 + 1 + 12 + 2 + 1;
    /// Bytes per encoded record: the second format and the PROXY header (present, first
    /// sequence number, header length, bytes replaced, decided/acknowledged).
    pub const SIZE: usize = Self::SIZE_V2 + 1 + 4 + 2 + 2 + 1;

    /// Append the record's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_key(out, &self.in_key);
        put_key(out, &self.out_key);
        match self.service {
            ServiceKey::Addr {
                protocol,
                vip,
                vport,
            } => {
                out.push(protocol as u8);
                // Records are of IPv4 connections, whose services are IPv4 ones.
                let vip = match vip {
                    std::net::IpAddr::V4(a) => a,
                    std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
                };
                out.extend_from_slice(&vip.octets());
                out.extend_from_slice(&vport.to_le_bytes());
                out.push(0);
            }
            ServiceKey::Fwmark(mark) => {
                out.push(0);
                out.extend_from_slice(&mark.to_le_bytes());
                out.extend_from_slice(&[0, 0, 0]);
            }
        }
        out.extend_from_slice(&self.dest.0.octets());
        out.extend_from_slice(&self.dest.1.to_le_bytes());
        out.push(METHODS.iter().position(|m| *m == self.method).unwrap_or(0) as u8);
        put_state(out, self.state);
        out.push(
            u8::from(self.toa_pending)
                | u8::from(self.assured) << 1
                | u8::from(self.controlled) << 2
                | u8::from(self.synproxy) << 3,
        );
        out.extend_from_slice(&self.remaining_ms.to_le_bytes());
        let a = self.seq_adj.unwrap_or_default();
        out.push(u8::from(self.seq_adj.is_some()));
        out.extend_from_slice(&a.srv_delta.to_le_bytes());
        out.extend_from_slice(&a.cli_delta.to_le_bytes());
        out.extend_from_slice(&a.ts_delta.to_le_bytes());
        out.extend_from_slice(&[a.win_c2s, a.win_s2c, u8::from(a.ts)]);
        let pp = self.proxy_hdr.unwrap_or_default();
        out.push(u8::from(self.proxy_hdr.is_some()));
        out.extend_from_slice(&pp.base.to_le_bytes());
        out.extend_from_slice(&pp.hdr.to_le_bytes());
        out.extend_from_slice(&pp.strip.to_le_bytes());
        out.push(
            u8::from(pp.decided)
                | u8::from(pp.acked) << 1
                | u8::from(pp.sent) << 2
                | u8::from(pp.insecure) << 3
                | (pp.version & 3) << 4,
        );
    }

    /// Read one record from exactly [`ConnRecord::SIZE`] bytes (or [`ConnRecord::SIZE_V1`],
    /// [`ConnRecord::SIZE_V2`] for a record of an earlier format).
    pub fn decode(bytes: &[u8]) -> Result<ConnRecord, RecordError> {
        if ![Self::SIZE, Self::SIZE_V2, Self::SIZE_V1].contains(&bytes.len()) {
            return Err(RecordError("wrong length"));
        }
        let mut r = Reader(bytes);
        let in_key = r.key()?;
        let out_key = r.key()?;
        let tag = r.u8()?;
        let service = if tag == 0 {
            let mark = r.u32()?;
            r.take::<3>()?;
            if mark == 0 {
                return Err(RecordError("fwmark 0"));
            }
            ServiceKey::Fwmark(mark)
        } else {
            let protocol = Protocol::from_number(tag).ok_or(RecordError("service protocol"))?;
            let vip = r.ip()?;
            let vport = r.u16()?;
            r.u8()?;
            ServiceKey::Addr {
                protocol,
                vip: vip.into(),
                vport,
            }
        };
        let dest = (r.ip()?, r.u16()?);
        let method = *METHODS
            .get(usize::from(r.u8()?))
            .ok_or(RecordError("method"))?;
        let state = read_state(&mut r)?;
        let flags = r.u8()?;
        if flags > 15 || (flags > 7 && bytes.len() != Self::SIZE) {
            return Err(RecordError("flags"));
        }
        let remaining_ms = r.u64()?;
        if in_key.proto != out_key.proto {
            return Err(RecordError("tuples of different protocols"));
        }
        let seq_adj = if bytes.len() >= Self::SIZE_V2 {
            let present = r.u8()?;
            let (srv_delta, cli_delta, ts_delta) = (r.u32()?, r.u32()?, r.u32()?);
            let (win_c2s, win_s2c, ts) = (r.u8()?, r.u8()?, r.u8()?);
            let shift_ok = |p: u8| p >> 4 <= 14 && p & 0xf <= 14;
            match present {
                0 => None,
                1 if shift_ok(win_c2s) && shift_ok(win_s2c) && ts <= 1 => {
                    Some(crate::synproxy::seqadj::SeqAdj {
                        srv_delta,
                        cli_delta,
                        cli_base: 0,
                        cli_hdr: 0,

                        ts_delta,
                        win_c2s,
                        win_s2c,
                        ts: ts == 1,
                    })
                }
                _ => return Err(RecordError("renumbering")),
            }
        } else {
            None
        };
        let (synproxy, proxy_hdr) = if bytes.len() == Self::SIZE {
            let present = r.u8()?;
            let (base, hdr, strip, st) = (r.u32()?, r.u16()?, r.u16()?, r.u8()?);
            let pp = match present {
                0 => None,
                1 if usize::from(hdr) <= crate::xmit::proxy::MAX_LEN
                    && usize::from(strip) <= crate::xmit::proxy::MAX_LEN
                    && st <= 0x3f =>
                {
                    Some(crate::xmit::proxy::TcpPp {
                        base,
                        hdr,
                        strip,
                        decided: st & 1 != 0,
                        acked: st & 2 != 0,
                        sent: st & 4 != 0,
                        insecure: st & 8 != 0,
                        version: (st >> 4) & 3,
                    })
                }
                _ => return Err(RecordError("PROXY header")),
            };
            (flags & 8 != 0, pp)
        } else {
            (seq_adj.is_some(), None)
        };
        let seq_adj = seq_adj.map(|mut a| {
            if let Some(pp) = proxy_hdr {
                a.cli_base = pp.base;
                a.cli_hdr = pp.hdr;
            }
            a
        });
        Ok(ConnRecord {
            in_key,
            out_key,
            service,
            dest,
            method,
            state,
            toa_pending: flags & 1 != 0,
            assured: flags & 2 != 0,
            controlled: flags & 4 != 0,
            remaining_ms,
            seq_adj,
            synproxy,
            proxy_hdr,
        })
    }
}

/// One IPv6 connection, detached from the worker's IPv6 table: NAT6, DR6, TUN6, FULLNAT6, and
/// NAT64 (an IPv6 service's IPv4 FULLNAT dest; its reply tuple holds the server and the local
/// address as IPv4-mapped addresses, as the table keeps it). The fields mean what they mean in
/// [`ConnRecord`]; there is no SYN proxy or PROXY header state, which IPv6 connections do not
/// have (a later format adds it when they do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRecord6 {
    pub in_key: ConnKey6,
    pub out_key: ConnKey6,
    /// The service, by its key (an IPv6 VIP, or a fwmark).
    pub service: ServiceKey,
    /// The dest, by address (IPv6, or IPv4 for NAT64) and port.
    pub dest: (IpAddr, u16),
    pub method: ForwardMethod,
    pub state: ConnState,
    /// FULLNAT6 TCP: the client address option is still to be sent.
    pub toa_pending: bool,
    /// Its template was told it is assured.
    pub assured: bool,
    /// A persistence template controls it.
    pub controlled: bool,
    /// Time left before it expires without packets, milliseconds.
    pub remaining_ms: u64,
}

impl ConnRecord6 {
    /// Bytes per record: two tuples (37 each), the service (tag, family, 16 address bytes,
    /// port), the dest (family, 16 address bytes, port), method, state (2), flags, time left.
    pub const SIZE: usize = 2 * 37 + 20 + 19 + 1 + 2 + 1 + 8;

    /// Append the record's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_key6(out, &self.in_key);
        put_key6(out, &self.out_key);
        match self.service {
            ServiceKey::Addr {
                protocol,
                vip,
                vport,
            } => {
                out.push(protocol as u8);
                put_any_ip(out, vip);
                out.extend_from_slice(&vport.to_le_bytes());
            }
            ServiceKey::Fwmark(mark) => {
                out.push(0);
                out.push(0);
                out.extend_from_slice(&mark.to_le_bytes());
                out.extend_from_slice(&[0; 14]);
            }
        }
        put_any_ip(out, self.dest.0);
        out.extend_from_slice(&self.dest.1.to_le_bytes());
        out.push(METHODS.iter().position(|m| *m == self.method).unwrap_or(0) as u8);
        put_state(out, self.state);
        out.push(
            u8::from(self.toa_pending)
                | u8::from(self.assured) << 1
                | u8::from(self.controlled) << 2,
        );
        out.extend_from_slice(&self.remaining_ms.to_le_bytes());
    }

    /// Read one record from exactly [`ConnRecord6::SIZE`] bytes, checking every field.
    pub fn decode(bytes: &[u8]) -> Result<ConnRecord6, RecordError> {
        if bytes.len() != Self::SIZE {
            return Err(RecordError("wrong length"));
        }
        let mut r = Reader(bytes);
        let in_key = r.key6()?;
        let out_key = r.key6()?;
        let tag = r.u8()?;
        let service = if tag == 0 {
            let family = r.u8()?;
            let mark = r.u32()?;
            let pad = r.take::<14>()?;
            if family != 0 || pad.iter().any(|&b| b != 0) {
                return Err(RecordError("fwmark service"));
            }
            if mark == 0 {
                return Err(RecordError("fwmark 0"));
            }
            ServiceKey::Fwmark(mark)
        } else {
            let protocol = Protocol::from_number(tag).ok_or(RecordError("service protocol"))?;
            let vip = r.any_ip()?;
            let vport = r.u16()?;
            ServiceKey::Addr {
                protocol,
                vip,
                vport,
            }
        };
        let dest = (r.any_ip()?, r.u16()?);
        let method = *METHODS
            .get(usize::from(r.u8()?))
            .ok_or(RecordError("method"))?;
        let state = read_state(&mut r)?;
        let flags = r.u8()?;
        if flags > 7 {
            return Err(RecordError("flags"));
        }
        let remaining_ms = r.u64()?;
        if in_key.proto != out_key.proto {
            return Err(RecordError("tuples of different protocols"));
        }
        if !matches!(
            (in_key.proto, state),
            (6, ConnState::Tcp(_)) | (17, ConnState::Udp(_))
        ) {
            return Err(RecordError("state of another protocol"));
        }
        // An IPv4 dest under an IPv6 connection is NAT64's, whose reply tuple is mapped IPv4.
        if dest.0.is_ipv4()
            && (method != ForwardMethod::FullNat
                || crate::xmit::nat64::unmapped(&out_key).is_none())
        {
            return Err(RecordError("IPv4 dest of an IPv6 connection"));
        }
        Ok(ConnRecord6 {
            in_key,
            out_key,
            service,
            dest,
            method,
            state,
            toa_pending: flags & 1 != 0,
            assured: flags & 2 != 0,
            controlled: flags & 4 != 0,
            remaining_ms,
        })
    }
}

/// A worker's connections of both families, as [`crate::worker::Worker::export_conns`] gives
/// them and [`crate::worker::Worker::import_conns`] takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnRecords {
    pub v4: Vec<ConnRecord>,
    pub v6: Vec<ConnRecord6>,
}

impl ConnRecords {
    /// Records of both families.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Append `other`'s records.
    pub fn extend(&mut self, other: ConnRecords) {
        self.v4.extend(other.v4);
        self.v6.extend(other.v6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConnRecord {
        ConnRecord {
            in_key: ConnKey::new(
                6,
                Ipv4Addr::new(198, 18, 0, 2),
                40000,
                Ipv4Addr::new(198, 18, 0, 100),
                80,
            ),
            out_key: ConnKey::new(
                6,
                Ipv4Addr::new(198, 18, 1, 10),
                80,
                Ipv4Addr::new(198, 18, 1, 200),
                1027,
            ),
            service: ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip: Ipv4Addr::new(198, 18, 0, 100).into(),
                vport: 80,
            },
            dest: (Ipv4Addr::new(198, 18, 1, 10), 80),
            method: ForwardMethod::FullNat,
            state: ConnState::Tcp(TcpState::Established),
            toa_pending: true,
            assured: false,
            controlled: true,
            remaining_ms: 899_500,
            seq_adj: None,
            synproxy: false,
            proxy_hdr: None,
        }
    }

    #[test]
    fn round_trip() {
        let mut fw = sample();
        fw.service = ServiceKey::Fwmark(7);
        fw.state = ConnState::Udp(UdpState::Normal);
        fw.in_key.proto = 17;
        fw.out_key.proto = 17;
        fw.method = ForwardMethod::Route;
        let mut proxied = sample();
        proxied.seq_adj = Some(crate::synproxy::seqadj::SeqAdj {
            srv_delta: 0xdead_beef,
            cli_delta: 0,
            ts_delta: 12345,
            win_c2s: crate::synproxy::seqadj::shifts(7, 0),
            win_s2c: crate::synproxy::seqadj::shifts(0, 7),
            ts: true,
            ..Default::default()
        });
        proxied.synproxy = true;
        let mut with_header = proxied;
        let pp = crate::xmit::proxy::TcpPp {
            base: 0x1234_5678,
            hdr: 45,
            strip: 28,
            decided: true,
            acked: false,
            sent: true,
            version: 1,
            insecure: true,
        };
        with_header.proxy_hdr = Some(pp);
        with_header.seq_adj = with_header.seq_adj.map(|mut a| {
            a.cli_delta = pp.delta();
            a.cli_base = pp.base;
            a.cli_hdr = pp.hdr;
            a
        });
        let mut header_only = sample();
        header_only.proxy_hdr = Some(pp);
        header_only.seq_adj = with_header
            .seq_adj
            .map(|a| crate::synproxy::seqadj::SeqAdj {
                srv_delta: 0,
                ts_delta: 0,
                ts: false,
                win_c2s: 0,
                win_s2c: 0,
                ..a
            });
        for rec in [sample(), fw, proxied, with_header, header_only] {
            let mut b = Vec::new();
            rec.encode(&mut b);
            assert_eq!(b.len(), ConnRecord::SIZE);
            assert_eq!(ConnRecord::decode(&b), Ok(rec));
        }
        for s in TcpState::ALL {
            let mut r = sample();
            r.state = ConnState::Tcp(s);
            let mut b = Vec::new();
            r.encode(&mut b);
            assert_eq!(ConnRecord::decode(&b).unwrap().state, r.state);
        }
    }

    /// Records of the first format (no renumbering) are still read.
    #[test]
    fn first_format_records_are_read() {
        let mut b = Vec::new();
        sample().encode(&mut b);
        assert_eq!(ConnRecord::decode(&b[..ConnRecord::SIZE_V1]), Ok(sample()));
        let mut bad = b.clone();
        bad[ConnRecord::SIZE_V1] = 2;
        assert_eq!(ConnRecord::decode(&bad), Err(RecordError("renumbering")));
        // Second format: a renumbered record was a SYN-proxied one.
        let mut proxied = sample();
        proxied.seq_adj = Some(crate::synproxy::seqadj::SeqAdj {
            srv_delta: 7,
            ..Default::default()
        });
        let mut b = Vec::new();
        proxied.encode(&mut b);
        proxied.synproxy = true;
        assert_eq!(ConnRecord::decode(&b[..ConnRecord::SIZE_V2]), Ok(proxied));
        let mut bad = b.clone();
        bad[ConnRecord::SIZE_V2] = 2;
        assert_eq!(ConnRecord::decode(&bad), Err(RecordError("PROXY header")));
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let mut b = Vec::new();
        sample().encode(&mut b);
        assert!(ConnRecord::decode(&b[..b.len() - 1]).is_err());
        // Every single-byte corruption either decodes to some record or is refused.
        for i in 0..b.len() {
            for v in [0u8, 0xff, 0x5a] {
                let mut c = b.clone();
                c[i] = v;
                let _ = ConnRecord::decode(&c);
            }
        }
        let mut c = b.clone();
        c[40] = 9; // the method byte
        assert_eq!(ConnRecord::decode(&c), Err(RecordError("method")));
    }

    fn sample6() -> ConnRecord6 {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        ConnRecord6 {
            in_key: ConnKey6::new(6, a("2001:db8::2"), 40000, a("2001:db8::100"), 80),
            out_key: ConnKey6::new(6, a("2001:db8:1::10"), 80, a("2001:db8:1::200"), 1027),
            service: ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip: a("2001:db8::100").into(),
                vport: 80,
            },
            dest: (a("2001:db8:1::10").into(), 80),
            method: ForwardMethod::FullNat,
            state: ConnState::Tcp(TcpState::Established),
            toa_pending: true,
            assured: false,
            controlled: true,
            remaining_ms: 899_500,
        }
    }

    /// The NAT64 form: an IPv4 dest, the reply tuple IPv4-mapped.
    fn sample64() -> ConnRecord6 {
        let (rip, lip) = (Ipv4Addr::new(198, 18, 1, 10), Ipv4Addr::new(198, 18, 1, 2));
        ConnRecord6 {
            out_key: crate::xmit::nat64::mapped_key(6, rip, 80, lip, 1029),
            dest: (rip.into(), 80),
            ..sample6()
        }
    }

    #[test]
    fn ipv6_and_nat64_records_round_trip_and_damage_is_refused() {
        let mut fw = sample6();
        fw.service = ServiceKey::Fwmark(9);
        fw.method = ForwardMethod::Masq;
        fw.out_key = fw.in_key.reversed();
        fw.out_key.src = "2001:db8:1::10".parse().unwrap();
        for rec in [sample6(), sample64(), fw] {
            let mut b = Vec::new();
            rec.encode(&mut b);
            assert_eq!(b.len(), ConnRecord6::SIZE);
            assert_eq!(ConnRecord6::decode(&b), Ok(rec));
            assert_eq!(
                ConnRecord6::decode(&b[..b.len() - 1]),
                Err(RecordError("wrong length"))
            );
            // Every single-byte corruption either decodes to some record or is refused.
            for i in 0..b.len() {
                for v in [0u8, 1, 4, 6, 0xff, 0x5a] {
                    let mut c = b.clone();
                    c[i] = v;
                    let _ = ConnRecord6::decode(&c);
                }
            }
        }
        let mut b = Vec::new();
        sample64().encode(&mut b);
        let dest_family = 2 * 37 + 20;
        let mut c = b.clone();
        c[dest_family] = 5;
        assert_eq!(ConnRecord6::decode(&c), Err(RecordError("address family")));
        let mut c = b.clone();
        c[dest_family + 6] = 1; // a byte past an IPv4 address
        assert_eq!(ConnRecord6::decode(&c), Err(RecordError("address family")));
        let mut c = b.clone();
        c[dest_family + 19] = 0; // NAT64 is FULLNAT only
        assert_eq!(
            ConnRecord6::decode(&c),
            Err(RecordError("IPv4 dest of an IPv6 connection"))
        );
        let mut c = b.clone();
        c[dest_family + 19] = 9;
        assert_eq!(ConnRecord6::decode(&c), Err(RecordError("method")));
        let mut c = b.clone();
        c[dest_family + 20] = 17; // UDP state of a TCP connection
        assert!(ConnRecord6::decode(&c).is_err());
        let mut c = b.clone();
        c[dest_family + 22] = 8;
        assert_eq!(ConnRecord6::decode(&c), Err(RecordError("flags")));
        let mut c = b.clone();
        c[37] = 17;
        assert_eq!(
            ConnRecord6::decode(&c),
            Err(RecordError("tuples of different protocols"))
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn v4() -> impl Strategy<Value = Ipv4Addr> {
            any::<u32>().prop_map(Ipv4Addr::from_bits)
        }
        fn v6() -> impl Strategy<Value = Ipv6Addr> {
            any::<u128>().prop_map(Ipv6Addr::from_bits)
        }
        fn state() -> impl Strategy<Value = (u8, ConnState)> {
            prop_oneof![
                (0..TcpState::ALL.len()).prop_map(|i| (6, ConnState::Tcp(TcpState::ALL[i]))),
                Just((17, ConnState::Udp(UdpState::Normal))),
            ]
        }
        fn service(vip: impl Strategy<Value = IpAddr>) -> impl Strategy<Value = ServiceKey> {
            prop_oneof![
                (1u32..).prop_map(ServiceKey::Fwmark),
                (any::<bool>(), vip, any::<u16>()).prop_map(|(tcp, vip, vport)| {
                    ServiceKey::Addr {
                        protocol: if tcp { Protocol::Tcp } else { Protocol::Udp },
                        vip,
                        vport,
                    }
                }),
            ]
        }
        fn flags() -> impl Strategy<Value = (bool, bool, bool)> {
            (any::<bool>(), any::<bool>(), any::<bool>())
        }

        fn record4() -> impl Strategy<Value = ConnRecord> {
            (
                state(),
                (v4(), any::<u16>(), v4(), any::<u16>()),
                (v4(), any::<u16>(), v4(), any::<u16>()),
                service(v4().prop_map(IpAddr::V4)),
                (v4(), any::<u16>(), 0..METHODS.len()),
                flags(),
                any::<u64>(),
            )
                .prop_map(|((p, st), i, o, service, d, f, remaining_ms)| ConnRecord {
                    in_key: ConnKey::new(p, i.0, i.1, i.2, i.3),
                    out_key: ConnKey::new(p, o.0, o.1, o.2, o.3),
                    service,
                    dest: (d.0, d.1),
                    method: METHODS[d.2],
                    state: st,
                    toa_pending: f.0,
                    assured: f.1,
                    controlled: f.2,
                    remaining_ms,
                    seq_adj: None,
                    synproxy: false,
                    proxy_hdr: None,
                })
        }

        /// IPv6 records: plain (IPv6 dest, any method) and NAT64 (IPv4 dest, FULLNAT, the
        /// reply tuple mapped).
        fn record6() -> impl Strategy<Value = ConnRecord6> {
            let tuple = || (v6(), any::<u16>(), v6(), any::<u16>());
            (
                state(),
                tuple(),
                prop_oneof![
                    (tuple(), v6(), 0..METHODS.len()).prop_map(|(o, d, m)| (
                        o,
                        IpAddr::V6(d),
                        METHODS[m]
                    )),
                    (v4(), any::<u16>(), v4(), any::<u16>()).prop_map(|(r, rp, l, lp)| (
                        (r.to_ipv6_mapped(), rp, l.to_ipv6_mapped(), lp),
                        IpAddr::V4(r),
                        ForwardMethod::FullNat
                    )),
                ],
                service(v6().prop_map(IpAddr::V6)),
                any::<u16>(),
                flags(),
                any::<u64>(),
            )
                .prop_map(|((p, st), i, (o, dest, method), service, dport, f, ms)| {
                    ConnRecord6 {
                        in_key: ConnKey6::new(p, i.0, i.1, i.2, i.3),
                        out_key: ConnKey6::new(p, o.0, o.1, o.2, o.3),
                        service,
                        dest: (dest, dport),
                        method,
                        state: st,
                        toa_pending: f.0,
                        assured: f.1,
                        controlled: f.2,
                        remaining_ms: ms,
                    }
                })
        }

        proptest! {
            #[test]
            fn ipv4_records_round_trip(r in record4()) {
                let mut b = Vec::new();
                r.encode(&mut b);
                prop_assert_eq!(b.len(), ConnRecord::SIZE);
                prop_assert_eq!(ConnRecord::decode(&b), Ok(r));
            }

            #[test]
            fn ipv6_and_nat64_records_round_trip(r in record6(), at in 0..ConnRecord6::SIZE, v in any::<u8>()) {
                let mut b = Vec::new();
                r.encode(&mut b);
                prop_assert_eq!(b.len(), ConnRecord6::SIZE);
                prop_assert_eq!(ConnRecord6::decode(&b), Ok(r));
                // A damaged byte: a record or an error, never a panic; what decodes encodes
                // back to the same bytes (nothing is read loosely).
                b[at] = v;
                if let Ok(d) = ConnRecord6::decode(&b) {
                    let mut again = Vec::new();
                    d.encode(&mut again);
                    prop_assert_eq!(again, b);
                }
            }
        }
    }
}
