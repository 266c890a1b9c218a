//! TCP headers (RFC 9293) and their options.
//!
//! [`Packet::new_checked`] takes the whole segment (the IPv4 payload) and enforces: the 20-byte
//! fixed header fits (`Truncated`), data offset >= 5 (`Malformed`), the header with its options
//! fits in the segment (`BadLength`). Options are walked with [`Packet::options`], which yields
//! an error and stops at a malformed option instead of reading past the header.

use super::{Error, Result, be16, be32, checksum, put16, put32};
use std::net::Ipv4Addr;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFF_FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Largest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// The TCP flag bits (the low 9 bits of bytes 12-13; NS is bit 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x001);
    pub const SYN: TcpFlags = TcpFlags(0x002);
    pub const RST: TcpFlags = TcpFlags(0x004);
    pub const PSH: TcpFlags = TcpFlags(0x008);
    pub const ACK: TcpFlags = TcpFlags(0x010);
    pub const URG: TcpFlags = TcpFlags(0x020);
    pub const ECE: TcpFlags = TcpFlags(0x040);
    pub const CWR: TcpFlags = TcpFlags(0x080);
    pub const NS: TcpFlags = TcpFlags(0x100);

    /// All bits of `other` set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, o: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | o.0)
    }
}

/// A view of a TCP segment.
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

    /// The checks of the module doc.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(self.header_len());
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole segment.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::OFF_FLAGS] >> 4) * 4
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(be16(self.buffer.as_ref(), field::OFF_FLAGS) & 0x01ff)
    }

    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }

    /// The options bytes, clamped to the buffer.
    pub fn options_bytes(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let hl = usize::from(self.header_len()).min(b.len());
        b.get(HEADER_LEN..hl).unwrap_or(&[])
    }

    /// Iterate the options.
    pub fn options(&self) -> TcpOptions<'_> {
        TcpOptions::new(self.options_bytes())
    }

    /// The MSS option, if present and well formed.
    pub fn mss(&self) -> Option<u16> {
        self.options().find_map(|o| match o {
            Ok(TcpOption::MaxSegmentSize(m)) => Some(m),
            _ => None,
        })
    }

    /// The payload after the header (clamped to the buffer).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        b.get(usize::from(self.header_len())..).unwrap_or(&[])
    }

    /// True when the checksum over the IPv4 pseudo header and the whole segment verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::l4_checksum_v4(src, dst, 6, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    pub fn set_seq_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::SEQ, v);
    }

    pub fn set_ack_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::ACK, v);
    }

    /// Set the header length in bytes (rounded down to 4, at most 60).
    pub fn set_header_len(&mut self, len: u8) {
        let b = self.buffer.as_mut();
        b[field::OFF_FLAGS] = (b[field::OFF_FLAGS] & 0x0f) | (((len / 4) & 0x0f) << 4);
    }

    pub fn set_flags(&mut self, f: TcpFlags) {
        let b = self.buffer.as_mut();
        let v = (be16(b, field::OFF_FLAGS) & 0xf000) | (f.0 & 0x01ff);
        put16(b, field::OFF_FLAGS, v);
    }

    pub fn set_window_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::WINDOW, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    pub fn set_urgent_at(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Writable options bytes, clamped to the buffer.
    pub fn options_bytes_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        let b = self.buffer.as_mut();
        let hl = hl.min(b.len());
        b.get_mut(HEADER_LEN..hl).unwrap_or(&mut [])
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        self.buffer.as_mut().get_mut(hl..).unwrap_or(&mut [])
    }

    /// Compute and write the checksum over the pseudo header and the whole segment.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v4(src, dst, 6, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    WindowScale(u8),
    SackPermitted,
    /// The SACK blocks, raw (pairs of 32-bit edges).
    Sack(&'a [u8]),
    Timestamps {
        value: u32,
        echo: u32,
    },
    /// Any other kind, with its data (after kind and length).
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// Iterator over TCP options. Yields `Err(Malformed)` once and stops on an option whose length
/// is below 2, runs past the header, or does not match its kind's fixed size; stops after
/// End of Option List.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    pub fn new(bytes: &'a [u8]) -> TcpOptions<'a> {
        TcpOptions { rest: bytes }
    }

    fn fail(&mut self) -> Option<core::result::Result<TcpOption<'a>, Error>> {
        self.rest = &[];
        Some(Err(Error::Malformed))
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = core::result::Result<TcpOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after) = self.rest.split_first()?;
        match kind {
            0 => {
                self.rest = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            1 => {
                self.rest = after;
                return Some(Ok(TcpOption::NoOperation));
            }
            _ => {}
        }
        let Some(&len) = after.first() else {
            return self.fail();
        };
        let len = usize::from(len);
        if len < 2 || len > self.rest.len() {
            return self.fail();
        }
        let data = &self.rest[2..len];
        self.rest = &self.rest[len..];
        let opt = match (kind, data.len()) {
            (2, 2) => TcpOption::MaxSegmentSize(be16(data, 0)),
            (3, 1) => TcpOption::WindowScale(data[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n % 8 == 0 && n > 0 => TcpOption::Sack(data),
            (8, 8) => TcpOption::Timestamps {
                value: be32(data, 0),
                echo: be32(data, 4),
            },
            (2..=5 | 8, _) => return self.fail(),
            _ => TcpOption::Unknown { kind, data },
        };
        Some(Ok(opt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ethernet, fixtures, ipv4};
    use proptest::prelude::*;

    fn syn_segment() -> Vec<u8> {
        fixtures::TCP_SYN[34..].to_vec()
    }

    #[test]
    fn parse_captured_syn() {
        let f = ethernet::Frame::new_checked(&fixtures::TCP_SYN[..]).unwrap();
        let ip = ipv4::Packet::new_checked(f.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), ipv4::IpProtocol::TCP);
        let t = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(t.src_port(), 40000);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.seq_number(), 0x1234_5678);
        assert_eq!(t.ack_number(), 0);
        assert_eq!(t.header_len(), 40);
        assert_eq!(t.flags(), TcpFlags::SYN);
        assert!(t.flags().syn() && !t.flags().ack());
        assert_eq!(t.window_len(), 64240);
        assert_eq!(t.checksum(), 0x9866);
        assert_eq!(t.urgent_at(), 0);
        assert!(t.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert!(t.payload().is_empty());
        let opts: Vec<_> = t.options().map(|o| o.unwrap()).collect();
        assert_eq!(
            opts,
            [
                TcpOption::MaxSegmentSize(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamps {
                    value: 0x0011_2233,
                    echo: 0
                },
                TcpOption::NoOperation,
                TcpOption::WindowScale(7),
            ]
        );
        assert_eq!(t.mss(), Some(1460));
    }

    #[test]
    fn malformed() {
        let seg = syn_segment();
        assert_eq!(Packet::new_checked(&seg[..19]), Err(Error::Truncated));
        // Data offset 10 (40 bytes) in a 39-byte segment.
        assert_eq!(Packet::new_checked(&seg[..39]), Err(Error::BadLength));
        let mut s = seg.clone();
        s[12] = 0xf0; // data offset 15 = 60 bytes > 40
        assert_eq!(Packet::new_checked(&s[..]), Err(Error::BadLength));
        s[12] = 0x40; // data offset 4 < 5
        assert_eq!(Packet::new_checked(&s[..]), Err(Error::Malformed));
        let mut s = seg.clone();
        s[30] ^= 0x01;
        let t = Packet::new_checked(&s[..]).unwrap();
        let (src, dst) = ("198.18.0.2".parse().unwrap(), "198.18.1.1".parse().unwrap());
        assert!(!t.verify_checksum(src, dst));
    }

    #[test]
    fn malformed_options() {
        // MSS with length 3; zero length; running past the end.
        for bad in [&[2u8, 3, 5][..], &[3, 0, 1], &[1, 8, 10, 0, 0]] {
            let r: Vec<_> = TcpOptions::new(bad).collect();
            assert_eq!(r.last(), Some(&Err(Error::Malformed)), "{bad:?}");
        }
        let r: Vec<_> = TcpOptions::new(&[1, 0, 2, 4, 5, 0xb4]).collect();
        assert_eq!(r, [Ok(TcpOption::NoOperation), Ok(TcpOption::EndOfList)]);
        let r: Vec<_> = TcpOptions::new(&[254, 4, 0xf9, 0x89]).collect();
        assert_eq!(
            r,
            [Ok(TcpOption::Unknown {
                kind: 254,
                data: &[0xf9, 0x89]
            })]
        );
    }

    #[test]
    fn setters_and_fill() {
        let mut seg = syn_segment();
        let (src, dst) = ("198.18.0.2".parse().unwrap(), "198.18.1.1".parse().unwrap());
        let mut t = Packet::new_checked(&mut seg[..]).unwrap();
        t.set_flags(TcpFlags::SYN | TcpFlags::ACK);
        t.set_ack_number(7);
        t.set_seq_number(9);
        t.set_src_port(80);
        t.set_dst_port(40000);
        t.set_window_len(1);
        t.set_urgent_at(0);
        t.fill_checksum(src, dst);
        assert!(t.verify_checksum(src, dst));
        assert_eq!(t.header_len(), 40);
        assert!(t.flags().syn() && t.flags().ack());
        // Lying header length cannot make accessors panic.
        t.set_header_len(60);
        assert_eq!(t.options_bytes().len(), 20);
        assert!(t.payload().is_empty());
        let _ = t.options_bytes_mut();
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(t) = Packet::new_checked(&data[..]) {
                let _ = (t.flags(), t.payload().len(), t.mss(), t.options().count());
                prop_assert!(usize::from(t.header_len()) <= data.len());
            }
            let _ = TcpOptions::new(&data).count();
        }

        #[test]
        fn nat_rewrite_incremental_equals_full(
            new_dst in any::<u32>(), new_port in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let src: Ipv4Addr = "198.18.0.2".parse().unwrap();
            let dst: Ipv4Addr = "198.18.1.1".parse().unwrap();
            let new_dst = Ipv4Addr::from(new_dst);
            let mut seg = syn_segment();
            seg.extend_from_slice(&payload);
            let mut t = Packet::new_checked(&mut seg[..]).unwrap();
            t.fill_checksum(src, dst);
            let c = checksum::update_addr(t.checksum(), dst, new_dst);
            let c = checksum::update_u16(c, t.dst_port(), new_port);
            t.set_dst_port(new_port);
            t.set_checksum(c);
            prop_assert!(t.verify_checksum(src, new_dst));
            let before = t.checksum();
            t.fill_checksum(src, new_dst);
            prop_assert_eq!(before, t.checksum());
        }
    }
}
