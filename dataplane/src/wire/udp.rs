//! UDP headers (RFC 768).
//!
//! [`Packet::new_checked`] takes the IPv4 payload and enforces: the 8-byte header fits
//! (`Truncated`), the length field lies between 8 and the buffer length (`BadLength`). A checksum
//! of 0 means the sender computed none; [`Packet::verify_checksum`] accepts it, and
//! [`Packet::fill_checksum`] writes a computed 0 as `0xffff`.

use super::{Error, Result, be16, checksum, put16};
use std::net::Ipv4Addr;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of a UDP header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
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
        let l = usize::from(self.len());
        if l < HEADER_LEN || l > len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field (header plus payload).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram as the length field says (clamped to the buffer).
    pub fn datagram(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..usize::from(self.len()).min(b.len())]
    }

    /// The payload (after the header, up to the length field, clamped to the buffer).
    pub fn payload(&self) -> &[u8] {
        self.datagram().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// True when the checksum is absent (0) or verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || checksum::l4_checksum_v4(src, dst, 17, self.datagram()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        let b = self.buffer.as_mut();
        let l = l.min(b.len());
        b.get_mut(HEADER_LEN..l).unwrap_or(&mut [])
    }

    /// Compute and write the checksum (a computed 0 is written as `0xffff`).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v4(src, dst, 17, self.datagram());
        self.set_checksum(checksum::udp_fixup(c));
    }
}

/// A UDP header as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    /// Write the header for `payload_len` bytes of payload, checksum 0 (fill it after writing the
    /// payload, or leave it 0 for "none"). `Truncated` if the header does not fit; a length above
    /// 65535 saturates.
    pub fn emit(&self, buf: &mut [u8], payload_len: usize) -> Result<()> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let mut p = Packet::new_unchecked(buf);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(u16::try_from(payload_len + HEADER_LEN).unwrap_or(u16::MAX));
        p.set_checksum(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{fixtures, ipv4};
    use proptest::prelude::*;

    #[test]
    fn parse_fixture() {
        let ip = ipv4::Packet::new_checked(&fixtures::IPV4_UDP[..]).unwrap();
        assert!(ip.verify_checksum());
        let u = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(u.src_port(), 5353);
        assert_eq!(u.dst_port(), 53);
        assert_eq!(u.len(), 18);
        assert_eq!(u.checksum(), 0x3411);
        assert_eq!(u.payload(), b"hello rvs\n");
        assert!(u.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert!(!u.verify_checksum(ip.src_addr(), "198.18.1.2".parse().unwrap()));
    }

    #[test]
    fn malformed() {
        let seg = fixtures::IPV4_UDP[20..].to_vec();
        assert_eq!(Packet::new_checked(&seg[..7]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&seg[..17]), Err(Error::BadLength));
        let mut s = seg.clone();
        s[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&s[..]), Err(Error::BadLength));
        // Extra bytes past the length field are fine and not payload.
        let mut s = seg.clone();
        s.extend_from_slice(&[0, 0]);
        assert_eq!(Packet::new_checked(&s[..]).unwrap().payload().len(), 10);
    }

    #[test]
    fn zero_checksum_means_none_and_computed_zero_is_ffff() {
        let mut seg = fixtures::IPV4_UDP[20..].to_vec();
        let (src, dst) = ("198.18.0.2".parse().unwrap(), "198.18.1.1".parse().unwrap());
        seg[6] = 0;
        seg[7] = 0;
        assert!(
            Packet::new_checked(&seg[..])
                .unwrap()
                .verify_checksum(src, dst)
        );
        // Pick payload bytes so the computed checksum is exactly 0: take the current checksum
        // (with a zero field) and add it into the payload.
        let mut p = Packet::new_checked(&mut seg[..]).unwrap();
        p.fill_checksum(src, dst);
        let c = p.checksum();
        let w = u16::from_be_bytes([p.payload()[0], p.payload()[1]]);
        let nw = checksum::add(w, c);
        p.payload_mut()[..2].copy_from_slice(&nw.to_be_bytes());
        p.fill_checksum(src, dst);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(src, dst));
    }

    #[test]
    fn repr_emit() {
        let mut b = [0u8; 12];
        UdpRepr {
            src_port: 1,
            dst_port: 2,
        }
        .emit(&mut b, 4)
        .unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (1, 2, 12));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = (p.payload().len(), p.verify_checksum(0u32.into(), 0u32.into()));
            }
        }
    }
}
