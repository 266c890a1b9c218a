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

use std::net::Ipv4Addr;

use super::{ConnKey, ConnState, TcpState, UdpState};
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
    /// A SYN-proxied connection's renumbering (absent from version-1 records).
    pub seq_adj: Option<crate::synproxy::seqadj::SeqAdj>,
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
    /// Bytes per encoded record: the first format and the renumbering (present, three
    /// deltas, two window pairs, timestamps).
    pub const SIZE: usize = Self::SIZE_V1 + 1 + 12 + 2 + 1;

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
        match self.state {
            ConnState::Tcp(s) => out.extend_from_slice(&[6, s as u8]),
            ConnState::Udp(_) => out.extend_from_slice(&[17, 0]),
        }
        out.push(
            u8::from(self.toa_pending)
                | u8::from(self.assured) << 1
                | u8::from(self.controlled) << 2,
        );
        out.extend_from_slice(&self.remaining_ms.to_le_bytes());
        let a = self.seq_adj.unwrap_or_default();
        out.push(u8::from(self.seq_adj.is_some()));
        out.extend_from_slice(&a.srv_delta.to_le_bytes());
        out.extend_from_slice(&a.cli_delta.to_le_bytes());
        out.extend_from_slice(&a.ts_delta.to_le_bytes());
        out.extend_from_slice(&[a.win_c2s, a.win_s2c, u8::from(a.ts)]);
    }

    /// Read one record from exactly [`ConnRecord::SIZE`] bytes (or [`ConnRecord::SIZE_V1`]
    /// for a first-format record).
    pub fn decode(bytes: &[u8]) -> Result<ConnRecord, RecordError> {
        if bytes.len() != Self::SIZE && bytes.len() != Self::SIZE_V1 {
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
                vip,
                vport,
            }
        };
        let dest = (r.ip()?, r.u16()?);
        let method = *METHODS
            .get(usize::from(r.u8()?))
            .ok_or(RecordError("method"))?;
        let state = match (r.u8()?, r.u8()?) {
            (6, s) => ConnState::Tcp(
                *TcpState::ALL
                    .get(usize::from(s))
                    .ok_or(RecordError("TCP state"))?,
            ),
            (17, 0) => ConnState::Udp(UdpState::Normal),
            _ => return Err(RecordError("state")),
        };
        let flags = r.u8()?;
        if flags > 7 {
            return Err(RecordError("flags"));
        }
        let remaining_ms = r.u64()?;
        if in_key.proto != out_key.proto {
            return Err(RecordError("tuples of different protocols"));
        }
        let seq_adj = if bytes.len() == Self::SIZE {
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
        })
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
                vip: Ipv4Addr::new(198, 18, 0, 100),
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
        });
        for rec in [sample(), fw, proxied] {
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
}
