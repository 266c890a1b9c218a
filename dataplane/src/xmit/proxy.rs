//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2): how a FULLNAT
//! connection tells a real server that reads it (nginx `listen ... proxy_protocol`, HAProxy
//! `accept-proxy`, Envoy, Postfix...) who the client is, as DPVS's `--proxy-protocol` does.
//!
//! The header goes before the client's first byte:
//!
//! | version | bytes |
//! |---|---|
//! | 1 | `PROXY TCP4 <client> <vip> <cport> <vport>\r\n` (text, at most 107 bytes; TCP only) |
//! | 2 | the 12-byte signature `\r\n\r\n\0\r\nQUIT\n`, `0x21` (version 2, PROXY), `0x11` (TCP over IPv4) or `0x12` (UDP), the address length 12, then client address, VIP, client port, VIP port: 28 bytes |
//!
//! Version 2 carries no TLVs: DPVS sends none, and a server that reads the header needs none.
//! For UDP every datagram gets a version-2 header (each datagram is read on its own; a server
//! cannot remember a header from an earlier one).
//!
//! This module holds the header bytes, the recogniser for a header a client sent itself, and
//! the frame surgery (replace the first bytes of the L4 payload, fix lengths and checksums);
//! when and where the header goes on a TCP connection is [`plan_tcp`], the worker's glue is
//! `worker::proxyhdr`. The TCP sequence space then differs by the header's length between the
//! two sides, which [`crate::synproxy::seqadj`] translates for the connection's life.

use core::fmt::Write;
use std::net::Ipv4Addr;

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::wire::checksum::{add, pseudo_header_v4, sum, update_u16};
use crate::wire::{IpProtocol, ethernet};

/// Longest header rvs writes or recognises (version 1's limit, 107 bytes, and a version-2
/// header of IPv6 addresses is 52).
pub const MAX_LEN: usize = 108;
/// Version 2's signature.
pub const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Length of a version-2 header for IPv4 (16 fixed bytes and 12 of addresses).
pub const V2_LEN_V4: usize = 28;
/// Version 1's longest line, `\r\n` included.
const V1_MAX: usize = 107;

/// A header, built once per connection (or datagram) on the stack.
#[derive(Clone, Copy)]
pub struct Header {
    bytes: [u8; MAX_LEN],
    len: u8,
}

impl core::fmt::Debug for Header {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Header")
            .field(&self.as_bytes().escape_ascii().to_string())
            .finish()
    }
}

struct Cursor<'a> {
    buf: &'a mut [u8; MAX_LEN],
    at: usize,
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.at + s.len();
        let dst = self.buf.get_mut(self.at..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.at = end;
        Ok(())
    }
}

impl Header {
    /// The header of `version` (1 or 2; anything else is taken as 2) for a flow of IP
    /// protocol `proto` from `src:sport` to `dst:dport` (the client and the virtual service).
    pub fn new(
        version: u8,
        proto: u8,
        src: Ipv4Addr,
        sport: u16,
        dst: Ipv4Addr,
        dport: u16,
    ) -> Self {
        let mut bytes = [0u8; MAX_LEN];
        let len = if version == 1 {
            let mut c = Cursor {
                buf: &mut bytes,
                at: 0,
            };
            // At most 56 bytes for IPv4: it always fits.
            let _ = write!(c, "PROXY TCP4 {src} {dst} {sport} {dport}\r\n");
            c.at
        } else {
            bytes[..12].copy_from_slice(&V2_SIG);
            bytes[12] = 0x21;
            bytes[13] = if proto == IpProtocol::UDP.0 {
                0x12
            } else {
                0x11
            };
            bytes[14..16].copy_from_slice(&12u16.to_be_bytes());
            bytes[16..20].copy_from_slice(&src.octets());
            bytes[20..24].copy_from_slice(&dst.octets());
            bytes[24..26].copy_from_slice(&sport.to_be_bytes());
            bytes[26..28].copy_from_slice(&dport.to_be_bytes());
            V2_LEN_V4
        };
        Header {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A complete, well-formed header at the start of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub version: u8,
    pub len: usize,
}

/// Recognise a header the client sent itself at the start of `payload`: a version-1 line
/// (`PROXY TCP4|TCP6 <addr> <addr> <port> <port>\r\n` or `PROXY UNKNOWN...\r\n`, at most 107
/// bytes) or a version-2 header (signature, version 2, command LOCAL or PROXY, its length
/// within the payload). Anything else, including a header cut short, is the client's data.
pub fn find(payload: &[u8]) -> Option<Found> {
    if payload.starts_with(&V2_SIG) {
        let h = payload.get(..16)?;
        if h[12] >> 4 != 2 || h[12] & 0xf > 1 {
            return None;
        }
        let len = 16 + usize::from(u16::from_be_bytes([h[14], h[15]]));
        return (len <= payload.len()).then_some(Found { version: 2, len });
    }
    if !payload.starts_with(b"PROXY ") {
        return None;
    }
    let line = &payload[..payload.len().min(V1_MAX)];
    let end = line.windows(2).position(|w| w == b"\r\n")?;
    let text = core::str::from_utf8(&line[6..end]).ok()?;
    let mut words = text.split(' ');
    match words.next()? {
        "UNKNOWN" => {}
        fam @ ("TCP4" | "TCP6") => {
            for _ in 0..2 {
                let a = words.next()?;
                let ok = if fam == "TCP4" {
                    a.parse::<Ipv4Addr>().is_ok()
                } else {
                    a.parse::<std::net::Ipv6Addr>().is_ok()
                };
                if !ok {
                    return None;
                }
            }
            for _ in 0..2 {
                let p = words.next()?;
                if p.is_empty() || p.len() > 5 || p.starts_with('0') && p.len() > 1 {
                    return None;
                }
                if p.parse::<u16>().is_err() {
                    return None;
                }
            }
            if words.next().is_some() {
                return None;
            }
        }
        _ => return None,
    }
    Some(Found {
        version: 1,
        len: end + 2,
    })
}

/// Where a TCP connection's PROXY header stands (kept per connection by the worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpPp {
    /// The sequence number of the client's first byte (its ISN + 1).
    pub base: u32,
    /// Length of the header rvs sends (0: none, the connection passes as it is).
    pub hdr: u16,
    /// Bytes of a header the client sent itself that rvs replaces with its own.
    pub strip: u16,
    /// The shift is fixed: a segment after the first has gone with it.
    pub decided: bool,
    /// The real server acknowledged the header: no segment carries it again.
    pub acked: bool,
    /// A segment carried the header (or sent it alone) at least once.
    pub sent: bool,
    /// The header's version (1 or 2) and mode, fixed when the connection opened (an `-E` of
    /// the service later does not change a connection's numbering).
    pub version: u8,
    pub insecure: bool,
}

impl TcpPp {
    /// The shift of the client's sequence numbers towards the server.
    pub fn delta(&self) -> u32 {
        u32::from(self.hdr).wrapping_sub(u32::from(self.strip))
    }
}

/// What to do with one client segment of a connection with a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpPlan {
    /// The SYN, or a RST before any header went: the sequence number is the client's.
    Keep,
    /// Renumber as every later segment (sequence + delta).
    Shift,
    /// Put the header in front of the payload, replacing its first `strip` bytes; the segment
    /// keeps its sequence number.
    Insert { strip: usize },
    /// The header does not fit in front of this segment: send it in a segment of its own
    /// (at the first sequence number), and send this one without its first `strip` bytes,
    /// renumbered.
    Standalone { strip: usize },
}

/// Decide for a client segment (flags, sequence number in the client's numbering, payload)
/// and update `st`. `room`: bytes the frame may grow by on its way out. In the secure modes
/// the header may go in a segment without data (the handshake's last ACK), so that a server
/// that speaks first gets it; the insecure modes must see the client's first bytes before
/// they know whether to send one (a client header of the connection's version is then kept
/// and rvs sends none).
pub fn plan_tcp(st: &mut TcpPp, flags: u8, seq: u32, payload: &[u8], room: usize) -> TcpPlan {
    let (syn, rst, ack) = (flags & 0x02 != 0, flags & 0x04 != 0, flags & 0x10 != 0);
    if syn || (rst && !st.sent) {
        return TcpPlan::Keep;
    }
    if st.hdr == 0 || st.acked || rst {
        return TcpPlan::Shift;
    }
    if seq != st.base {
        // Past the first byte: the shift is what it is now, for good.
        st.decided = true;
        return TcpPlan::Shift;
    }
    if payload.is_empty() && (st.insecure || !ack) {
        // Nothing to carry it yet (a pure ACK or a FIN in the insecure modes): in the client's
        // numbering until a header has gone.
        return if st.sent {
            TcpPlan::Shift
        } else {
            TcpPlan::Keep
        };
    }
    if !payload.is_empty() && !st.decided {
        st.decided = true;
        match find(payload) {
            Some(f) if st.insecure && f.version == st.version => {
                // The client's own header passes; rvs adds none.
                st.hdr = 0;
                st.strip = 0;
                return TcpPlan::Keep;
            }
            Some(f) => st.strip = f.len as u16,
            None => st.strip = 0,
        }
    }
    let strip = if payload.is_empty() {
        0
    } else {
        usize::from(st.strip)
    };
    let grow = usize::from(st.hdr).saturating_sub(strip);
    st.sent = true;
    if grow <= room {
        TcpPlan::Insert { strip }
    } else {
        TcpPlan::Standalone { strip }
    }
}

/// In the client's numbering, has the server's `ack` (in its numbering) covered the header?
pub fn header_acked(st: &TcpPp, ack: u32) -> bool {
    st.hdr != 0
        && ack.wrapping_sub(st.base) >= u32::from(st.hdr)
        && ack.wrapping_sub(st.base) < 1 << 30
}

/// Bounds of the IPv4 frame's L4 segment: (L4 offset, end of the IP packet).
fn l4_bounds(frame: &[u8], l4: usize) -> Result<usize, DropReason> {
    let l3 = ethernet::HEADER_LEN;
    let total = frame
        .get(l3 + 2..l3 + 4)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or(DropReason::Ipv4Malformed)?;
    let end = l3 + total;
    if end > frame.len() || l4 < l3 + 20 || l4 > end {
        return Err(DropReason::Ipv4BadLength);
    }
    Ok(end)
}

/// The L4 header's length (TCP data offset, or 8 for UDP).
fn l4_header_len(frame: &[u8], l4: usize, tcp: bool) -> Result<usize, DropReason> {
    if tcp {
        let off = frame.get(l4 + 12).ok_or(DropReason::TcpMalformed)?;
        Ok(usize::from(off >> 4) * 4)
    } else {
        Ok(8)
    }
}

/// The L4 checksum of the segment `frame[l4..end]` made right again after its bytes changed,
/// as wrong as it was before (`residual`: the segment's ones'-complement sum, checksum
/// included, taken before the change: 0xffff when it was right).
fn refill_checksum(frame: &mut [u8], l4: usize, end: usize, tcp: bool, residual: u16) {
    let at = l4 + if tcp { 16 } else { 6 };
    if !tcp && frame[at..at + 2] == [0, 0] {
        return; // UDP without a checksum stays without one.
    }
    frame[at..at + 2].copy_from_slice(&[0, 0]);
    let l3 = ethernet::HEADER_LEN;
    let src = Ipv4Addr::new(
        frame[l3 + 12],
        frame[l3 + 13],
        frame[l3 + 14],
        frame[l3 + 15],
    );
    let dst = Ipv4Addr::new(
        frame[l3 + 16],
        frame[l3 + 17],
        frame[l3 + 18],
        frame[l3 + 19],
    );
    let proto = frame[l3 + 9];
    let seg_sum = add(
        pseudo_header_v4(src, dst, proto, (end - l4) as u16),
        sum(&frame[l4..end]),
    );
    let mut c = add(residual, !seg_sum);
    if !tcp && c == 0 {
        c = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// The ones'-complement sum of the segment with its pseudo-header (0xffff when its checksum
/// is right).
fn residual(frame: &[u8], l4: usize, end: usize) -> u16 {
    let l3 = ethernet::HEADER_LEN;
    let src = Ipv4Addr::new(
        frame[l3 + 12],
        frame[l3 + 13],
        frame[l3 + 14],
        frame[l3 + 15],
    );
    let dst = Ipv4Addr::new(
        frame[l3 + 16],
        frame[l3 + 17],
        frame[l3 + 18],
        frame[l3 + 19],
    );
    add(
        pseudo_header_v4(src, dst, frame[l3 + 9], (end - l4) as u16),
        sum(&frame[l4..end]),
    )
}

/// Replace the first `strip` bytes of the L4 payload of the IPv4 TCP or UDP frame in `buf`
/// (L4 header at `l4`) with `insert`: the payload after them moves, the IP total length and
/// header checksum, the UDP length and the L4 checksum follow (a checksum that was wrong stays
/// wrong). Ethernet padding is dropped first.
pub fn splice<B: PacketBuf>(
    buf: &mut B,
    l4: usize,
    strip: usize,
    insert: &[u8],
) -> Result<(), DropReason> {
    let end = l4_bounds(buf.data(), l4)?;
    let tcp = buf.data()[ethernet::HEADER_LEN + 9] == IpProtocol::TCP.0;
    let at = l4 + l4_header_len(buf.data(), l4, tcp)?;
    if at + strip > end {
        return Err(DropReason::TcpMalformed);
    }
    let new_end = end - strip + insert.len();
    if new_end - ethernet::HEADER_LEN > usize::from(u16::MAX) {
        return Err(DropReason::TooBig);
    }
    let r = residual(buf.data(), l4, end);
    buf.set_len(end).map_err(|_| DropReason::Ipv4BadLength)?;
    if new_end > end {
        buf.append(new_end - end)
            .map_err(|_| DropReason::NoBuffer)?;
    }
    let f = buf.data_mut();
    f.copy_within(at + strip..end, at + insert.len());
    f[at..at + insert.len()].copy_from_slice(insert);
    if new_end < end {
        buf.trim(end - new_end).map_err(|_| DropReason::NoBuffer)?;
    }
    let f = buf.data_mut();
    let l3 = ethernet::HEADER_LEN;
    let (old_total, new_total) = ((end - l3) as u16, (new_end - l3) as u16);
    f[l3 + 2..l3 + 4].copy_from_slice(&new_total.to_be_bytes());
    let ip_sum = update_u16(
        u16::from_be_bytes([f[l3 + 10], f[l3 + 11]]),
        old_total,
        new_total,
    );
    f[l3 + 10..l3 + 12].copy_from_slice(&ip_sum.to_be_bytes());
    if !tcp {
        f[l4 + 4..l4 + 6].copy_from_slice(&((new_end - l4) as u16).to_be_bytes());
    }
    refill_checksum(f, l4, new_end, tcp, r);
    Ok(())
}

/// Set the TCP sequence number of the frame's segment (checksum updated incrementally).
pub fn set_seq(frame: &mut [u8], l4: usize, seq: u32) -> Result<(), DropReason> {
    let b = frame.get_mut(l4..l4 + 18).ok_or(DropReason::TcpMalformed)?;
    let old = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    b[4..8].copy_from_slice(&seq.to_be_bytes());
    let c = crate::wire::checksum::update_u32(u16::from_be_bytes([b[16], b[17]]), old, seq);
    b[16..18].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The TCP sequence number of the frame's segment.
pub fn seq_of(frame: &[u8], l4: usize) -> Option<u32> {
    let b = frame.get(l4 + 4..l4 + 8)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The L4 payload of the frame's TCP segment (Ethernet padding excluded).
pub fn tcp_payload(frame: &[u8], l4: usize) -> &[u8] {
    let Ok(end) = l4_bounds(frame, l4) else {
        return &[];
    };
    let Ok(h) = l4_header_len(frame, l4, true) else {
        return &[];
    };
    frame.get(l4 + h..end).unwrap_or_default()
}

/// Write into `out` a segment that carries only `hdr`: the headers of the TCP frame `frame`
/// (Ethernet, IPv4, TCP with its options) with the flags ACK|PSH and `hdr` as payload at the
/// frame's sequence number. Returns its length, or `None` when `out` is too small.
pub fn standalone(frame: &[u8], l4: usize, hdr: &[u8], out: &mut [u8]) -> Option<usize> {
    let h = l4_header_len(frame, l4, true).ok()?;
    let at = l4 + h;
    let len = at + hdr.len();
    let dst = out.get_mut(..len)?;
    dst[..at].copy_from_slice(frame.get(..at)?);
    dst[at..].copy_from_slice(hdr);
    let l3 = ethernet::HEADER_LEN;
    let total = (len - l3) as u16;
    dst[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
    dst[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let ihl = usize::from(dst[l3] & 0xf) * 4;
    let ip_sum = !sum(dst.get(l3..l3 + ihl)?);
    dst[l3 + 10..l3 + 12].copy_from_slice(&ip_sum.to_be_bytes());
    dst[l4 + 13] = (dst[l4 + 13] & 0x10) | 0x18;
    refill_checksum(dst, l4, len, true, 0xffff);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::testutil::{FrameSpec, tcp_frame, udp_frame, verify_frame};
    use crate::wire::tcp::TcpFlags;
    use proptest::prelude::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn v1() -> Header {
        Header::new(1, 6, ip("198.18.0.2"), 40000, ip("198.18.0.100"), 80)
    }

    #[test]
    fn version_1_is_the_text_line() {
        assert_eq!(
            v1().as_bytes(),
            b"PROXY TCP4 198.18.0.2 198.18.0.100 40000 80\r\n"
        );
        let longest = Header::new(
            1,
            6,
            ip("255.255.255.255"),
            65535,
            ip("255.255.255.255"),
            65535,
        );
        assert_eq!(longest.len(), 56);
    }

    #[test]
    fn version_2_is_the_binary_block() {
        let h = Header::new(2, 6, ip("198.18.0.2"), 40000, ip("198.18.0.100"), 80);
        let mut want = V2_SIG.to_vec();
        want.extend([0x21, 0x11, 0, 12, 198, 18, 0, 2, 198, 18, 0, 100]);
        want.extend(40000u16.to_be_bytes());
        want.extend(80u16.to_be_bytes());
        assert_eq!(h.as_bytes(), &want[..]);
        let u = Header::new(2, 17, ip("198.18.0.2"), 53, ip("198.18.0.100"), 53);
        assert_eq!(u.as_bytes()[13], 0x12);
    }

    #[test]
    fn headers_are_found_and_measured() {
        let mut p = v1().as_bytes().to_vec();
        p.extend(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            find(&p),
            Some(Found {
                version: 1,
                len: v1().len()
            })
        );
        let h2 = Header::new(2, 6, ip("198.18.0.2"), 1, ip("198.18.0.100"), 2);
        let mut p2 = h2.as_bytes().to_vec();
        p2.extend(b"data");
        assert_eq!(
            find(&p2),
            Some(Found {
                version: 2,
                len: 28
            })
        );
        assert_eq!(
            find(b"PROXY UNKNOWN\r\nx"),
            Some(Found {
                version: 1,
                len: 15
            })
        );
        assert_eq!(
            find(b"PROXY TCP6 2001:2::1 2001:2::2 1 2\r\n").map(|f| f.len),
            Some(36)
        );
        // Not headers: cut short, bad fields, other text.
        assert_eq!(find(&p2[..20]), None);
        assert_eq!(find(b"PROXY TCP4 198.18.0.2 198.18.0.100 40000 80"), None);
        assert_eq!(
            find(b"PROXY TCP4 198.18.0.2 198.18.0.100 70000 80\r\n"),
            None
        );
        assert_eq!(find(b"PROXY TCP4 198.18.0.2 x 1 80\r\n"), None);
        assert_eq!(find(b"PROXY TCP4 198.18.0.2 198.18.0.1 1 80 9\r\n"), None);
        assert_eq!(find(b"PROXY UDP4 198.18.0.2 198.18.0.1 1 80\r\n"), None);
        assert_eq!(find(b"GET / HTTP/1.1\r\n"), None);
        let mut bad_ver = h2.as_bytes().to_vec();
        bad_ver[12] = 0x31;
        assert_eq!(find(&bad_ver), None);
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 100], b"\r\n"].concat();
        assert_eq!(find(&long), None, "longer than 107 bytes");
    }

    fn spec() -> FrameSpec {
        FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80)
    }

    fn payload_of(f: &[u8]) -> Vec<u8> {
        tcp_payload(f, 34).to_vec()
    }

    #[test]
    fn splice_inserts_and_replaces_with_valid_checksums() {
        for (body, strip) in [(&b"GET / HTTP/1.1\r\n"[..], 0usize), (b"", 0), (b"odd", 1)] {
            let mut b =
                HeapBuf::from_bytes(&tcp_frame(&spec(), TcpFlags::ACK | TcpFlags::PSH, body));
            splice(&mut b, 34, strip, v1().as_bytes()).unwrap();
            let v = verify_frame(b.data()).expect("checksums valid");
            let mut want = v1().as_bytes().to_vec();
            want.extend(&body[strip..]);
            assert_eq!(payload_of(b.data()), want);
            assert_eq!(v.sport, 40000);
        }
        // UDP: the length and the checksum follow; a zero checksum stays zero.
        let mut b = HeapBuf::from_bytes(&udp_frame(&spec(), b"query"));
        let h2 = Header::new(2, 17, ip("198.18.0.2"), 40000, ip("198.18.0.100"), 80);
        splice(&mut b, 34, 0, h2.as_bytes()).unwrap();
        verify_frame(b.data()).expect("UDP checksum valid");
        assert_eq!(&b.data()[34 + 8 + 28..], b"query");
        let mut f = udp_frame(&spec(), b"q");
        f[40..42].copy_from_slice(&[0, 0]);
        let mut b = HeapBuf::from_bytes(&f);
        splice(&mut b, 34, 0, h2.as_bytes()).unwrap();
        assert_eq!(&b.data()[40..42], &[0, 0]);
    }

    #[test]
    fn a_bad_checksum_stays_bad() {
        let mut f = tcp_frame(&spec(), TcpFlags::ACK, b"hello");
        f[50] ^= 0x55;
        let mut b = HeapBuf::from_bytes(&f);
        splice(&mut b, 34, 0, v1().as_bytes()).unwrap();
        assert!(verify_frame(b.data()).is_err());
    }

    #[test]
    fn padding_is_dropped_before_the_insertion() {
        let mut f = tcp_frame(&spec(), TcpFlags::ACK, b"");
        f.resize(60, 0);
        let mut b = HeapBuf::from_bytes(&f);
        splice(&mut b, 34, 0, v1().as_bytes()).unwrap();
        assert_eq!(payload_of(b.data()), v1().as_bytes());
        assert_eq!(b.len(), 54 + v1().len());
        verify_frame(b.data()).unwrap();
    }

    #[test]
    fn the_standalone_segment_carries_only_the_header() {
        let f = tcp_frame(&spec(), TcpFlags::ACK, &[7u8; 1400]);
        let mut out = [0u8; 256];
        let n = standalone(&f, 34, v1().as_bytes(), &mut out).unwrap();
        verify_frame(&out[..n]).unwrap();
        assert_eq!(payload_of(&out[..n]), v1().as_bytes());
        assert_eq!(out[34 + 13], 0x18);
        assert_eq!(seq_of(&out[..n], 34), seq_of(&f, 34));
    }

    fn fresh(hdr: u16, version: u8, insecure: bool) -> TcpPp {
        TcpPp {
            base: 1001,
            hdr,
            version,
            insecure,
            ..TcpPp::default()
        }
    }

    #[test]
    fn secure_mode_sends_the_header_with_the_handshake_ack() {
        let mut st = fresh(28, 2, false);
        assert_eq!(plan_tcp(&mut st, 0x02, 1000, b"", 100), TcpPlan::Keep);
        assert_eq!(
            plan_tcp(&mut st, 0x14, 1001, b"", 100),
            TcpPlan::Keep,
            "a RST before the header"
        );
        assert_eq!(
            plan_tcp(&mut st, 0x10, 1001, b"", 100),
            TcpPlan::Insert { strip: 0 }
        );
        assert!(!st.decided && st.sent);
        // The first data at the same sequence number: the header again (same bytes, same
        // place), then the shift is fixed.
        assert_eq!(
            plan_tcp(&mut st, 0x18, 1001, b"GET", 100),
            TcpPlan::Insert { strip: 0 }
        );
        assert!(st.decided);
        assert_eq!(plan_tcp(&mut st, 0x18, 1004, b"x", 100), TcpPlan::Shift);
        assert_eq!(st.delta(), 28);
        // A RST after the header: renumbered.
        assert_eq!(plan_tcp(&mut st, 0x14, 1004, b"", 100), TcpPlan::Shift);
        // Too big to grow: the header goes alone.
        assert_eq!(
            plan_tcp(&mut st, 0x10, 1001, &[1; 1460], 0),
            TcpPlan::Standalone { strip: 0 }
        );
        st.acked = true;
        assert_eq!(plan_tcp(&mut st, 0x10, 1001, b"", 100), TcpPlan::Shift);
    }

    #[test]
    fn a_header_from_the_client_is_replaced_in_secure_mode_and_kept_in_insecure_mode() {
        let h = v1();
        let mut body = h.as_bytes().to_vec();
        body.extend(b"GET");
        let mut st = fresh(28, 2, false);
        assert_eq!(
            plan_tcp(&mut st, 0x18, 1001, &body, 100),
            TcpPlan::Insert { strip: h.len() }
        );
        assert_eq!(st.delta(), 28u32.wrapping_sub(h.len() as u32));
        // Insecure, same version: passes untouched, nothing shifted.
        let mut st = fresh(h.len() as u16, 1, true);
        assert_eq!(plan_tcp(&mut st, 0x10, 1001, b"", 100), TcpPlan::Keep);
        assert_eq!(plan_tcp(&mut st, 0x18, 1001, &body, 100), TcpPlan::Keep);
        assert_eq!((st.hdr, st.delta()), (0, 0));
        assert_eq!(plan_tcp(&mut st, 0x18, 1049, b"x", 100), TcpPlan::Shift);
        // Insecure, other version: replaced by rvs's.
        let mut st = fresh(28, 2, true);
        assert_eq!(
            plan_tcp(&mut st, 0x18, 1001, &body, 100),
            TcpPlan::Insert { strip: h.len() }
        );
        // Insecure, no header from the client: rvs's goes with the first data.
        let mut st = fresh(28, 2, true);
        assert_eq!(
            plan_tcp(&mut st, 0x18, 1001, b"GET", 100),
            TcpPlan::Insert { strip: 0 }
        );
    }

    /// Insecure modes: a client that closes without sending anything keeps its own numbers
    /// (no header ever went, so there is nothing to shift by).
    #[test]
    fn insecure_mode_without_data_shifts_nothing() {
        let mut st = fresh(28, 2, true);
        assert_eq!(plan_tcp(&mut st, 0x10, 1001, b"", 100), TcpPlan::Keep);
        assert_eq!(plan_tcp(&mut st, 0x11, 1001, b"", 100), TcpPlan::Keep);
        assert_eq!(plan_tcp(&mut st, 0x14, 1001, b"", 100), TcpPlan::Keep);
        assert!(!st.sent);
    }

    #[test]
    fn acknowledgement_of_the_header_is_recognised() {
        let st = fresh(28, 2, false);
        assert!(!header_acked(&st, 1001));
        assert!(!header_acked(&st, 1028));
        assert!(header_acked(&st, 1029));
        assert!(header_acked(&st, 5000));
        assert!(
            !header_acked(&st, 1000),
            "an old ack is not past the header"
        );
    }

    proptest! {
        #[test]
        fn find_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = find(&bytes);
            let mut with_prefix = b"PROXY ".to_vec();
            with_prefix.extend(&bytes);
            if let Some(f) = find(&with_prefix) {
                prop_assert!(f.len <= with_prefix.len());
            }
        }

        #[test]
        fn splice_keeps_checksums_valid(body in proptest::collection::vec(any::<u8>(), 0..300),
                                        strip in 0usize..40, v in 1u8..3) {
            let strip = strip.min(body.len());
            let h = Header::new(v, 6, ip("198.18.0.2"), 40000, ip("198.18.0.100"), 80);
            let mut b = HeapBuf::from_bytes(&tcp_frame(&spec(), TcpFlags::ACK, &body));
            splice(&mut b, 34, strip, h.as_bytes()).unwrap();
            prop_assert!(verify_frame(b.data()).is_ok());
            let mut want = h.as_bytes().to_vec();
            want.extend(&body[strip..]);
            prop_assert_eq!(payload_of(b.data()), want);
        }
    }
}
