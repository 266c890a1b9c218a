//! ARP for Ethernet and IPv4 (RFC 826), the only pair rvs speaks. The view checks only that the
//! 28-byte body fits; [`ArpRepr::parse`] additionally refuses other hardware/protocol types.

use super::{Error, MacAddr, Result, be16, ipv4_at, put16};
use std::net::Ipv4Addr;

/// An ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpOp(pub u16);

impl ArpOp {
    pub const REQUEST: ArpOp = ArpOp(1);
    pub const REPLY: ArpOp = ArpOp(2);
}

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OP: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: usize = 14;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: usize = 24;
}

/// Length of an Ethernet/IPv4 ARP body.
pub const PACKET_LEN: usize = 28;
/// Hardware type Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type IPv4.
pub const PTYPE_IPV4: u16 = 0x0800;

/// A view of an Ethernet/IPv4 ARP body (the Ethernet payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap after checking the 28-byte body fits (`Truncated` otherwise).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }

    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    pub fn operation(&self) -> ArpOp {
        ArpOp(be16(self.buffer.as_ref(), field::OP))
    }

    pub fn sender_hardware_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        MacAddr(m)
    }

    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SPA)
    }

    pub fn target_hardware_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        MacAddr(m)
    }

    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::TPA)
    }

    /// True when the types and lengths say Ethernet/IPv4.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == PTYPE_IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Write htype/ptype/hlen/plen for Ethernet/IPv4.
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        put16(b, field::HTYPE, HTYPE_ETHERNET);
        put16(b, field::PTYPE, PTYPE_IPV4);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    pub fn set_operation(&mut self, op: ArpOp) {
        put16(self.buffer.as_mut(), field::OP, op.0);
    }

    pub fn set_sender_hardware_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a.0);
    }

    pub fn set_sender_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA..field::SPA + 4].copy_from_slice(&a.octets());
    }

    pub fn set_target_hardware_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a.0);
    }

    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA..field::TPA + 4].copy_from_slice(&a.octets());
    }
}

/// An Ethernet/IPv4 ARP message as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub op: ArpOp,
    pub sha: MacAddr,
    pub spa: Ipv4Addr,
    pub tha: MacAddr,
    pub tpa: Ipv4Addr,
}

impl ArpRepr {
    /// `Unsupported` for anything but Ethernet/IPv4. Any operation code is passed through.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<ArpRepr> {
        if !p.is_ethernet_ipv4() {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr {
            op: p.operation(),
            sha: p.sender_hardware_addr(),
            spa: p.sender_protocol_addr(),
            tha: p.target_hardware_addr(),
            tpa: p.target_protocol_addr(),
        })
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_ethernet_ipv4();
        p.set_operation(self.op);
        p.set_sender_hardware_addr(self.sha);
        p.set_sender_protocol_addr(self.spa);
        p.set_target_hardware_addr(self.tha);
        p.set_target_protocol_addr(self.tpa);
    }

    /// A gratuitous announcement: sender and target protocol address are the same.
    pub fn is_gratuitous(&self) -> bool {
        self.spa == self.tpa
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::ethernet::{EtherType, Frame};
    use proptest::prelude::*;

    /// A captured who-has 198.18.0.1 tell 198.18.0.2 from 52:54:00:12:34:56, padded to 60 bytes.
    pub const ARP_REQUEST: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08,
        0x06, // eth
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // htype ptype hlen plen op
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0xc6, 0x12, 0x00, 0x02, // sha spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0x01, // tha tpa
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];

    #[test]
    fn parse_captured_request() {
        let f = Frame::new_checked(&ARP_REQUEST[..]).unwrap();
        assert_eq!(f.ethertype(), EtherType::ARP);
        let p = Packet::new_checked(f.payload()).unwrap();
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(r.op, ArpOp::REQUEST);
        assert_eq!(r.sha, MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_eq!(r.spa, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(r.tha, MacAddr::ZERO);
        assert_eq!(r.tpa, Ipv4Addr::new(198, 18, 0, 1));
        assert!(!r.is_gratuitous());
    }

    #[test]
    fn emit_round_trip_and_errors() {
        let mut buf = [0u8; 28];
        let r = ArpRepr {
            op: ArpOp::REPLY,
            sha: MacAddr([2, 0, 0, 0, 0, 1]),
            spa: Ipv4Addr::new(198, 18, 0, 1),
            tha: MacAddr([2, 0, 0, 0, 0, 2]),
            tpa: Ipv4Addr::new(198, 18, 0, 2),
        };
        r.emit(&mut Packet::new_checked(&mut buf[..]).unwrap());
        assert_eq!(
            ArpRepr::parse(&Packet::new_checked(&buf[..]).unwrap()),
            Ok(r)
        );
        assert_eq!(Packet::new_checked(&buf[..27]), Err(Error::Truncated));
        buf[1] = 6; // IEEE 802 hardware type
        assert_eq!(
            ArpRepr::parse(&Packet::new_checked(&buf[..]).unwrap()),
            Err(Error::Unsupported)
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = ArpRepr::parse(&p);
                let _ = (p.operation(), p.sender_hardware_addr(), p.target_protocol_addr());
            }
        }
    }
}
