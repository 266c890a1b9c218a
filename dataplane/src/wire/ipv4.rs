//! IPv4 headers (RFC 791).
//!
//! [`Packet::new_checked`] enforces, in this order: the 20-byte fixed header fits (`Truncated`),
//! version is 4 and IHL >= 5 (`Malformed`), the IHL header fits and total length lies between the
//! header length and the buffer length (`BadLength`). A buffer longer than total length is fine:
//! Ethernet pads short frames, and [`Packet::payload`] ends at total length.
//! [`Packet::new_checked_quoted`] is the lenient variant for the header quoted inside an ICMP
//! error, whose total length describes the original, longer packet.

use super::{Error, Result, be16, checksum, ipv4_at, put16};
use std::net::Ipv4Addr;

/// An IP protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const ICMP: IpProtocol = IpProtocol(1);
    pub const IPIP: IpProtocol = IpProtocol(4);
    pub const TCP: IpProtocol = IpProtocol(6);
    pub const UDP: IpProtocol = IpProtocol(17);
}

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Largest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Wrap a header quoted in an ICMP error: checks version, IHL and that the header (options
    /// included) fits, but not total length, since only the first bytes of the packet are quoted.
    pub fn new_checked_quoted(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_header()?;
        Ok(p)
    }

    fn check_header(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 || self.ihl() < 5 {
            return Err(Error::Malformed);
        }
        if usize::from(self.header_len()) > b.len() {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    /// The checks of the module doc.
    pub fn check_len(&self) -> Result<()> {
        self.check_header()?;
        let total = usize::from(self.total_len());
        if total < usize::from(self.header_len()) || total > self.buffer.as_ref().len() {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole underlying buffer (may extend past total length).
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes (options included).
    pub fn header_len(&self) -> u8 {
        self.ihl() * 4
    }

    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// A fragment: MF set or a nonzero offset.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SRC)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::DST)
    }

    pub fn has_options(&self) -> bool {
        self.ihl() > 5
    }

    /// The header bytes, options included, clamped to the buffer.
    pub fn header(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..usize::from(self.header_len()).min(b.len())]
    }

    /// The options bytes (empty without options), clamped to the buffer.
    pub fn options(&self) -> &[u8] {
        self.header().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// The payload: from the header end to total length, clamped to the buffer (for a quoted
    /// header, whatever was quoted).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(b.len());
        let start = usize::from(self.header_len()).min(end);
        &b[start..end]
    }

    /// True when the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version_and_header_len(&mut self, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = (dscp << 2) | (ecn & 0x03);
    }

    pub fn set_total_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_ident(&mut self, id: u16) {
        put16(self.buffer.as_mut(), field::IDENT, id);
    }

    /// Set DF, MF and the fragment offset (in bytes; the low three bits are dropped).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        put16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Decrement TTL and patch the checksum incrementally (RFC 1624). The caller has checked
    /// `ttl() > 1` (a packet that would leave with TTL 0 gets an ICMP time exceeded instead).
    pub fn decrement_ttl(&mut self) {
        let old = be16(self.buffer.as_ref(), field::TTL);
        let new = old.wrapping_sub(0x0100);
        put16(self.buffer.as_mut(), field::TTL, new);
        let c = checksum::update_u16(self.checksum(), old, new);
        self.set_checksum(c);
    }

    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.0;
    }

    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&a.octets());
    }

    /// Compute and write the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        let b = self.buffer.as_mut();
        let hl = hl.min(b.len());
        b.get_mut(HEADER_LEN..hl).unwrap_or(&mut [])
    }

    /// Writable payload, bounds as [`Packet::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (
            usize::from(self.header_len()),
            usize::from(self.total_len()),
        );
        let b = self.buffer.as_mut();
        let end = total.min(b.len());
        let start = hl.min(end);
        &mut b[start..end]
    }
}

/// An IPv4 header without options, as plain data, for emitting new packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Bytes after the header.
    pub payload_len: u16,
    pub ttl: u8,
    /// The whole TOS byte (DSCP << 2 | ECN).
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Parse from a checked view; fragments and options are reported by the view, not refused.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Ipv4Repr {
        Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.payload().len() as u16,
            ttl: p.ttl(),
            tos: (p.dscp() << 2) | p.ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        }
    }

    /// Bytes `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write a 20-byte header with its checksum. The view must hold at least [`HEADER_LEN`]
    /// bytes (`Truncated` otherwise). A payload length above `65535 - 20` is clamped.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let mut p = Packet::new_unchecked(buf);
        p.set_version_and_header_len(HEADER_LEN as u8);
        p.set_dscp_ecn(self.tos >> 2, self.tos & 3);
        p.set_total_len(self.payload_len.saturating_add(HEADER_LEN as u16));
        p.set_ident(self.ident);
        p.set_frag(self.dont_frag, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        let b = p.buffer;
        b[field::CHECKSUM] = 0;
        b[field::CHECKSUM + 1] = 0;
        let c = checksum::checksum(&b[..HEADER_LEN]);
        put16(b, field::CHECKSUM, c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A captured UDP packet header (192.168.0.1 -> 192.168.0.199, DF, TTL 64), total length
    /// 0x73 = 115 bytes.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet(total: usize) -> Vec<u8> {
        let mut v = HDR.to_vec();
        v.resize(total, 0xab);
        v
    }

    #[test]
    fn parse_fields() {
        let buf = packet(115);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.total_len(), 115);
        assert_eq!(p.ident(), 0);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.checksum(), 0xb861);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(!p.has_options());
        assert_eq!(p.payload().len(), 95);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut buf = packet(46);
        buf[2..4].copy_from_slice(&28u16.to_be_bytes());
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn malformed() {
        let buf = packet(115);
        assert_eq!(Packet::new_checked(&buf[..19]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&buf[..114]), Err(Error::BadLength)); // total > frame
        let mut b = buf.clone();
        b[0] = 0x65; // version 6
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[0] = 0x44; // IHL 4
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[0] = 0x4f; // IHL 15 = 60 bytes, fits in 115
        assert!(Packet::new_checked(&b[..]).is_ok());
        assert_eq!(Packet::new_checked(&b[..40]), Err(Error::BadLength)); // header > frame
        let mut b = buf.clone();
        b[2..4].copy_from_slice(&19u16.to_be_bytes()); // total < header
        assert_eq!(Packet::new_checked(&b[..]), Err(Error::BadLength));
        let mut b = buf.clone();
        b[10] ^= 1;
        assert!(!Packet::new_checked(&b[..]).unwrap().verify_checksum());
        // A quoted header is fine with a short buffer.
        assert!(Packet::new_checked_quoted(&buf[..28]).is_ok());
    }

    #[test]
    fn setters_and_ttl() {
        let mut buf = packet(115);
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        p.set_frag(false, true, 1480);
        assert!(p.is_fragment() && p.more_frags() && !p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        p.set_dscp_ecn(46, 1);
        assert_eq!((p.dscp(), p.ecn()), (46, 1));
        p.fill_checksum();
        assert!(p.verify_checksum());
        // A setter that lies about lengths cannot make accessors panic.
        p.set_version_and_header_len(60);
        p.set_total_len(u16::MAX);
        assert_eq!(p.options().len(), 40);
        assert_eq!(p.payload().len(), 55);
        let _ = p.options_mut();
    }

    #[test]
    fn repr_round_trip() {
        let r = Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 1, 2),
            protocol: IpProtocol::TCP,
            payload_len: 20,
            ttl: 64,
            tos: 0,
            ident: 7,
            dont_frag: true,
        };
        let mut buf = vec![0u8; 40];
        r.emit(&mut buf).unwrap();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), r);
        assert_eq!(r.emit(&mut [0u8; 10]), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = (p.options().len(), p.payload().len(), p.verify_checksum(), Ipv4Repr::parse(&p));
                prop_assert!(usize::from(p.total_len()) <= data.len());
            }
            if let Ok(p) = Packet::new_checked_quoted(&data[..]) {
                let _ = (p.options().len(), p.payload().len(), p.verify_checksum());
            }
        }

        #[test]
        fn filled_checksum_verifies(mut data in proptest::collection::vec(any::<u8>(), 20..80), ihl in 5u8..=15) {
            data[0] = 0x40 | ihl;
            let len = data.len() as u16;
            data[2..4].copy_from_slice(&len.to_be_bytes());
            if let Ok(mut p) = Packet::new_checked(&mut data[..]) {
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
                let ttl = p.ttl();
                if ttl > 1 {
                    p.decrement_ttl();
                    prop_assert!(p.verify_checksum());
                }
            }
        }
    }
}
