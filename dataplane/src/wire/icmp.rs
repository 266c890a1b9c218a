//! ICMPv4 messages (RFC 792).
//!
//! [`Packet::new_checked`] takes the IPv4 payload and checks only that the 8-byte header fits
//! (`Truncated`): every message rvs handles has one (echo: id and sequence; errors: 4 unused or
//! MTU bytes). The quoted packet of an error is reached with [`Packet::quoted_ipv4`], which checks
//! the quoted IP header leniently (see `ipv4::Packet::new_checked_quoted`) and requires the
//! 8 bytes after it that RFC 792 promises (`BadLength` otherwise).

use super::{Error, Result, be16, checksum, ipv4, put16};

/// An ICMP message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpType(pub u8);

impl IcmpType {
    pub const ECHO_REPLY: IcmpType = IcmpType(0);
    pub const DEST_UNREACHABLE: IcmpType = IcmpType(3);
    pub const REDIRECT: IcmpType = IcmpType(5);
    pub const ECHO_REQUEST: IcmpType = IcmpType(8);
    pub const TIME_EXCEEDED: IcmpType = IcmpType(11);
    pub const PARAMETER_PROBLEM: IcmpType = IcmpType(12);

    /// An error message (quotes the offending packet): unreachable, redirect, time exceeded,
    /// parameter problem, source quench (4).
    pub fn is_error(self) -> bool {
        matches!(self.0, 3 | 4 | 5 | 11 | 12)
    }
}

/// Destination unreachable codes.
pub mod unreachable {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Time exceeded codes.
pub mod time_exceeded {
    pub const TTL: u8 = 0;
    pub const REASSEMBLY: u8 = 1;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const MTU: usize = 6;
    pub const DATA: usize = 8;
}

/// Length of the ICMP header (type, code, checksum and the 4 type-specific bytes).
pub const HEADER_LEN: usize = 8;
/// Bytes of the original payload an error quotes after the IP header (RFC 792).
pub const QUOTED_PAYLOAD_LEN: usize = 8;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap after checking that the 8-byte header fits.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> IcmpType {
        IcmpType(self.buffer.as_ref()[field::TYPE])
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo request/reply identifier.
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo request/reply sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQ)
    }

    /// Next-hop MTU of a fragmentation-needed message (RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::MTU)
    }

    /// Everything after the 8-byte header (echo data, or the quoted packet of an error).
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(field::DATA..).unwrap_or(&[])
    }

    /// The quoted IP header and the bytes after it, for an error message.
    pub fn quoted_ipv4(&self) -> Result<ipv4::Packet<&[u8]>> {
        let q = ipv4::Packet::new_checked_quoted(self.data())?;
        if self.data().len() < usize::from(q.header_len()) + QUOTED_PAYLOAD_LEN {
            return Err(Error::BadLength);
        }
        Ok(q)
    }

    /// True when the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, t: IcmpType) {
        self.buffer.as_mut()[field::TYPE] = t.0;
    }

    pub fn set_msg_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }

    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }

    pub fn set_echo_seq_no(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_SEQ, v);
    }

    /// Write the 4 type-specific bytes as zero (unused, errors other than frag-needed).
    pub fn clear_rest_of_header(&mut self) {
        self.buffer.as_mut()[4..8].fill(0);
    }

    /// Set the next-hop MTU (fragmentation needed); bytes 4-5 stay as they are (unused, zero).
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        put16(self.buffer.as_mut(), field::MTU, mtu);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::DATA..)
            .unwrap_or(&mut [])
    }

    /// Compute and write the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ethernet, fixtures};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn parse_captured_echo() {
        let f = ethernet::Frame::new_checked(&fixtures::ICMP_ECHO[..]).unwrap();
        let ip = ipv4::Packet::new_checked(f.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), ipv4::IpProtocol::ICMP);
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(198, 18, 0, 1));
        let p = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(p.msg_type(), IcmpType::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x2cf6);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data().len(), 56);
        assert_eq!(p.data()[0], 0x10);
        assert!(p.verify_checksum());
        assert!(!p.msg_type().is_error());
    }

    #[test]
    fn quoted_packet_of_an_error() {
        // Frag-needed (MTU 1400) quoting the UDP fixture's header + 8 bytes.
        let mut m = vec![3u8, 4, 0, 0, 0, 0, 0x05, 0x78];
        m.extend_from_slice(&fixtures::IPV4_UDP[..28]);
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert!(p.msg_type().is_error());
        assert_eq!(p.next_hop_mtu(), 1400);
        let q = p.quoted_ipv4().unwrap();
        assert_eq!(q.src_addr(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(q.payload(), &fixtures::IPV4_UDP[20..28]);
        // Fewer than 8 quoted bytes after the header.
        let p = Packet::new_checked(&m[..35]).unwrap();
        assert_eq!(p.quoted_ipv4().err(), Some(Error::BadLength));
        assert_eq!(Packet::new_checked(&m[..7]), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = (p.msg_type(), p.echo_ident(), p.next_hop_mtu(), p.verify_checksum());
                if let Ok(q) = p.quoted_ipv4() {
                    let _ = (q.src_addr(), q.payload().len(), q.options().len());
                }
            }
        }
    }
}
