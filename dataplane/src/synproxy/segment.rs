//! Reading the fields the SYN proxy needs from a TCP segment, and writing the bare segments it
//! sends (SYN-ACK to the client, SYN and ACK to the server, window update and RST to the
//! client) into a buffer that held another frame.

use std::net::Ipv4Addr;

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::parse::L3;
use crate::wire::checksum::{checksum, l4_checksum_v4};
use crate::wire::tcp::{TcpOption, TcpOptions};

/// What the proxy reads from a segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seg {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    /// (value, echo)
    pub ts: Option<(u32, u32)>,
    pub payload: usize,
}

/// Read the TCP segment of an IPv4 frame (`l4`: offset of the TCP header). Malformed options
/// end the option walk (what was read before stays).
pub fn read(frame: &[u8], l4: usize) -> Result<Seg, DropReason> {
    let total = frame
        .get(L3 + 2..L3 + 4)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or(DropReason::TcpMalformed)?;
    let end = (L3 + total).min(frame.len());
    let seg = frame.get(l4..end).ok_or(DropReason::TcpMalformed)?;
    if seg.len() < 20 {
        return Err(DropReason::TcpMalformed);
    }
    let hlen = usize::from(seg[12] >> 4) * 4;
    if hlen < 20 || hlen > seg.len() {
        return Err(DropReason::TcpMalformed);
    }
    let be32 = |at: usize| u32::from_be_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]);
    let mut s = Seg {
        seq: be32(4),
        ack: be32(8),
        flags: seg[13],
        window: u16::from_be_bytes([seg[14], seg[15]]),
        payload: seg.len() - hlen,
        ..Seg::default()
    };
    for opt in TcpOptions::new(&seg[20..hlen]) {
        match opt {
            Ok(TcpOption::MaxSegmentSize(m)) => s.mss = Some(m),
            Ok(TcpOption::WindowScale(w)) => s.wscale = Some(w.min(14)),
            Ok(TcpOption::SackPermitted) => s.sack_perm = true,
            Ok(TcpOption::Timestamps { value, echo }) => s.ts = Some((value, echo)),
            Ok(TcpOption::EndOfList) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(s)
}

/// A segment to write: no payload, options in Linux's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bare {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    pub ts: Option<(u32, u32)>,
    pub ttl: u8,
    pub ident: u16,
}

fn options(b: &Bare, out: &mut [u8; 20]) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        out[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    if let Some(m) = b.mss {
        let m = m.to_be_bytes();
        put(&[2, 4, m[0], m[1]]);
    }
    match (b.ts, b.sack_perm) {
        (Some((v, e)), sack) => {
            put(if sack { &[4, 2] } else { &[1, 1] });
            put(&[8, 10]);
            put(&v.to_be_bytes());
            put(&e.to_be_bytes());
        }
        (None, true) => put(&[1, 1, 4, 2]),
        (None, false) => {}
    }
    if let Some(w) = b.wscale {
        put(&[1, 3, 3, w]);
    }
    n
}

/// Replace the frame in `buf` (an Ethernet header is kept or made; the worker sets its
/// addresses) with the IPv4/TCP segment `b`, checksums computed in full.
pub fn write<B: PacketBuf>(buf: &mut B, b: &Bare) -> Result<(), DropReason> {
    let mut opts = [0u8; 20];
    let olen = options(b, &mut opts);
    let tlen = 20 + olen;
    let total = 20 + tlen;
    // A fresh buffer has no Ethernet header yet: the worker fills the MACs when it sends.
    buf.set_len(L3 + total).map_err(|_| DropReason::NoBuffer)?;
    let f = buf.data_mut();
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[L3..L3 + 20];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, b.ttl, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&b.ident.to_be_bytes());
    ip[12..16].copy_from_slice(&b.src.octets());
    ip[16..20].copy_from_slice(&b.dst.octets());
    let c = checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let t = &mut f[L3 + 20..L3 + total];
    t[0..2].copy_from_slice(&b.sport.to_be_bytes());
    t[2..4].copy_from_slice(&b.dport.to_be_bytes());
    t[4..8].copy_from_slice(&b.seq.to_be_bytes());
    t[8..12].copy_from_slice(&b.ack.to_be_bytes());
    t[12] = ((tlen / 4) as u8) << 4;
    t[13] = b.flags;
    t[14..16].copy_from_slice(&b.window.to_be_bytes());
    t[16..20].copy_from_slice(&[0, 0, 0, 0]);
    t[20..tlen].copy_from_slice(&opts[..olen]);
    let c = l4_checksum_v4(b.src, b.dst, 6, t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::testutil::{FrameSpec, tcp_frame, tcp_frame_opts, verify_frame};
    use crate::wire::tcp::TcpFlags;

    #[test]
    fn written_segments_verify_and_read_back() {
        let spec = FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80);
        let mut buf = HeapBuf::from_bytes(&tcp_frame(&spec, TcpFlags::SYN, b"some data"));
        for (ts, sack, ws) in [
            (Some((7, 9)), true, Some(7)),
            (Some((7, 9)), false, None),
            (None, true, Some(2)),
            (None, false, None),
        ] {
            let b = Bare {
                src: "198.18.0.100".parse().unwrap(),
                dst: "198.18.0.2".parse().unwrap(),
                sport: 80,
                dport: 40000,
                seq: 0xdead_beef,
                ack: 1001,
                flags: 0x12,
                window: 0,
                mss: Some(1452),
                wscale: ws,
                sack_perm: sack,
                ts,
                ttl: 64,
                ident: 3,
            };
            write(&mut buf, &b).unwrap();
            let v = verify_frame(buf.data()).expect("valid checksums");
            assert_eq!((v.sport, v.dport, v.tcp_flags), (80, 40000, 0x12));
            let s = read(buf.data(), 34).unwrap();
            assert_eq!(
                (
                    s.seq,
                    s.ack,
                    s.window,
                    s.mss,
                    s.wscale,
                    s.sack_perm,
                    s.ts,
                    s.payload
                ),
                (0xdead_beef, 1001, 0, Some(1452), ws, sack, ts, 0)
            );
        }
    }

    #[test]
    fn read_takes_options_up_to_a_malformed_one() {
        let spec = FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80);
        let f = tcp_frame_opts(&spec, TcpFlags::SYN, &[2, 4, 5, 0xb4, 3, 9, 9, 0], b"");
        let s = read(&f, 34).unwrap();
        assert_eq!((s.mss, s.wscale), (Some(1460), None));
        assert!(read(&f[..40], 34).is_err());
    }
}
