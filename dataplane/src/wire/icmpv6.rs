//! ICMPv6 messages (RFC 4443) and the Neighbour Discovery messages rvs speaks (RFC 4861).
//!
//! [`Packet::new_checked`] takes the upper-layer bytes of an IPv6 packet and checks only that the
//! 8-byte header fits (`Truncated`): every message rvs handles has one (echo: id and sequence;
//! errors: the MTU, pointer or 4 unused bytes). Unlike ICMPv4 the checksum covers the IPv6
//! pseudo header (RFC 4443 2.3), so [`Packet::verify_checksum`] and [`Packet::fill_checksum`]
//! take the source and destination addresses. The quoted packet of an error is reached with
//! [`Packet::quoted_ipv6`] (lenient: the quote is cut to fit the minimum MTU).
//!
//! Neighbour Solicitation and Advertisement are parsed into an [`NdRepr`], which requires the
//! 24 bytes up to the target address (`Truncated`) and options that are well formed: an option
//! of length 0 or one running past the message is refused (`Malformed` / `BadLength`, RFC 4861
//! 4.6 says such a packet must be discarded), as is a link-layer address option whose length is
//! not the one Ethernet uses (8 bytes) or that appears twice. Unknown options are skipped
//! (RFC 4861 4.6). The hop-limit-255 and other rules of RFC 4861 7.1 need the IPv6 header and
//! are checked by `l3::nd`.

use super::{Error, MacAddr, Result, be16, be32, checksum, ipv6, put16, put32};
use std::net::Ipv6Addr;

/// An ICMPv6 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv6Type(pub u8);

impl Icmpv6Type {
    pub const DEST_UNREACHABLE: Icmpv6Type = Icmpv6Type(1);
    pub const PACKET_TOO_BIG: Icmpv6Type = Icmpv6Type(2);
    pub const TIME_EXCEEDED: Icmpv6Type = Icmpv6Type(3);
    pub const PARAM_PROBLEM: Icmpv6Type = Icmpv6Type(4);
    pub const ECHO_REQUEST: Icmpv6Type = Icmpv6Type(128);
    pub const ECHO_REPLY: Icmpv6Type = Icmpv6Type(129);
    pub const ROUTER_SOLICIT: Icmpv6Type = Icmpv6Type(133);
    pub const ROUTER_ADVERT: Icmpv6Type = Icmpv6Type(134);
    pub const NEIGHBOR_SOLICIT: Icmpv6Type = Icmpv6Type(135);
    pub const NEIGHBOR_ADVERT: Icmpv6Type = Icmpv6Type(136);
    pub const REDIRECT: Icmpv6Type = Icmpv6Type(137);

    /// An error message: types 0..=127 (RFC 4443 2.1), which quote the offending packet.
    pub fn is_error(self) -> bool {
        self.0 < 128
    }
}

/// Destination unreachable codes (RFC 4443 3.1).
pub mod unreachable {
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const BEYOND_SCOPE: u8 = 2;
    pub const ADDRESS: u8 = 3;
    pub const PORT: u8 = 4;
    pub const POLICY: u8 = 5;
    pub const REJECT_ROUTE: u8 = 6;
}

/// Time exceeded codes (RFC 4443 3.3).
pub mod time_exceeded {
    pub const HOP_LIMIT: u8 = 0;
    pub const REASSEMBLY: u8 = 1;
}

/// Parameter problem codes (RFC 4443 3.4).
pub mod param_problem {
    pub const HEADER_FIELD: u8 = 0;
    pub const NEXT_HEADER: u8 = 1;
    pub const OPTION: u8 = 2;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    /// MTU of packet too big, pointer of parameter problem, flags of NA.
    pub const WORD: usize = 4;
    pub const DATA: usize = 8;
    pub const ND_TARGET: usize = 8;
    pub const ND_OPTIONS: usize = 24;
}

/// Length of the ICMPv6 header (type, code, checksum and the 4 type-specific bytes).
pub const HEADER_LEN: usize = 8;
/// Length of an NS or NA without options (header and target address).
pub const ND_LEN: usize = field::ND_OPTIONS;
/// Length of a link-layer address option for Ethernet (type, length 1, 6 address bytes).
pub const LLADDR_OPT_LEN: usize = 8;

/// A view of an ICMPv6 message.
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

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn msg_type(&self) -> Icmpv6Type {
        Icmpv6Type(self.buffer.as_ref()[field::TYPE])
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

    /// The MTU of a packet too big message.
    pub fn mtu(&self) -> u32 {
        be32(self.buffer.as_ref(), field::WORD)
    }

    /// The pointer of a parameter problem message (offset of the offending byte).
    pub fn pointer(&self) -> u32 {
        be32(self.buffer.as_ref(), field::WORD)
    }

    /// Everything after the 8-byte header (echo data, the quoted packet of an error, or the ND
    /// target and options).
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(field::DATA..).unwrap_or(&[])
    }

    /// The quoted IPv6 header and what follows it, for an error message.
    pub fn quoted_ipv6(&self) -> Result<ipv6::Packet<&[u8]>> {
        ipv6::Packet::new_checked_quoted(self.data())
    }

    /// True when the checksum over the pseudo header and the whole message verifies.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::l4_checksum_v6(src, dst, ipv6::next_header::ICMPV6.0, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, t: Icmpv6Type) {
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

    /// Write the 4 type-specific bytes: the MTU (packet too big), the pointer (parameter
    /// problem), 0 (the other errors).
    pub fn set_word(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::WORD, v);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::DATA..)
            .unwrap_or(&mut [])
    }

    /// Compute and write the checksum over the pseudo header and the whole message.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c =
            checksum::l4_checksum_v6(src, dst, ipv6::next_header::ICMPV6.0, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// Neighbour Discovery option types (RFC 4861 4.6).
pub mod nd_option {
    pub const SOURCE_LLADDR: u8 = 1;
    pub const TARGET_LLADDR: u8 = 2;
    pub const PREFIX_INFO: u8 = 3;
    pub const REDIRECTED_HEADER: u8 = 4;
    pub const MTU: u8 = 5;
}

/// One Neighbour Discovery option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdOption<'a> {
    SourceLinkLayer(MacAddr),
    TargetLinkLayer(MacAddr),
    /// Any other option: its type and its bytes after the type and length.
    Other {
        kind: u8,
        data: &'a [u8],
    },
}

/// Iterator over the options of an ND message. Yields an error once and stops on an option of
/// length 0 (`Malformed`), one running past the data (`BadLength`) or a link-layer address
/// option of another length than Ethernet's (`Malformed`).
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    data: &'a [u8],
}

impl<'a> NdOptions<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        NdOptions { data }
    }
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<NdOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let d = self.data;
        if d.is_empty() {
            return None;
        }
        let fail = |s: &mut Self, e| {
            s.data = &[];
            Some(Err(e))
        };
        if d.len() < 2 {
            return fail(self, Error::BadLength);
        }
        let len = usize::from(d[1]) * 8;
        if len == 0 {
            return fail(self, Error::Malformed);
        }
        if len > d.len() {
            return fail(self, Error::BadLength);
        }
        self.data = &d[len..];
        let body = &d[2..len];
        let opt = match d[0] {
            nd_option::SOURCE_LLADDR | nd_option::TARGET_LLADDR => {
                if len != LLADDR_OPT_LEN {
                    return fail(self, Error::Malformed);
                }
                let Some(mac) = MacAddr::from_bytes(&body[..6]) else {
                    return fail(self, Error::Malformed);
                };
                if d[0] == nd_option::SOURCE_LLADDR {
                    NdOption::SourceLinkLayer(mac)
                } else {
                    NdOption::TargetLinkLayer(mac)
                }
            }
            kind => NdOption::Other { kind, data: body },
        };
        Some(Ok(opt))
    }
}

/// The flags of a Neighbour Advertisement (RFC 4861 4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in answer to a solicitation.
    pub solicited: bool,
    /// O: override an existing cache entry.
    pub override_: bool,
}

const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// A Neighbour Solicitation or Advertisement as plain data (module doc for what parse refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdRepr {
    Solicit {
        target: Ipv6Addr,
        /// The source link-layer address option.
        source_lladdr: Option<MacAddr>,
    },
    Advert {
        flags: NaFlags,
        target: Ipv6Addr,
        /// The target link-layer address option.
        target_lladdr: Option<MacAddr>,
    },
}

impl NdRepr {
    /// Parse an NS or NA (`Unsupported` for any other type). The code and checksum are not
    /// checked here.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<NdRepr> {
        let b = p.as_bytes();
        let ty = p.msg_type();
        if ty != Icmpv6Type::NEIGHBOR_SOLICIT && ty != Icmpv6Type::NEIGHBOR_ADVERT {
            return Err(Error::Unsupported);
        }
        if b.len() < ND_LEN {
            return Err(Error::Truncated);
        }
        let mut t = [0u8; 16];
        t.copy_from_slice(&b[field::ND_TARGET..field::ND_TARGET + 16]);
        let target = Ipv6Addr::from(t);
        let (mut sll, mut tll) = (None, None);
        for o in NdOptions::new(&b[field::ND_OPTIONS..]) {
            match o? {
                NdOption::SourceLinkLayer(m) => {
                    if sll.replace(m).is_some() {
                        return Err(Error::Malformed);
                    }
                }
                NdOption::TargetLinkLayer(m) => {
                    if tll.replace(m).is_some() {
                        return Err(Error::Malformed);
                    }
                }
                NdOption::Other { .. } => {}
            }
        }
        if ty == Icmpv6Type::NEIGHBOR_SOLICIT {
            Ok(NdRepr::Solicit {
                target,
                source_lladdr: sll,
            })
        } else {
            let f = b[field::WORD];
            Ok(NdRepr::Advert {
                flags: NaFlags {
                    router: f & NA_ROUTER != 0,
                    solicited: f & NA_SOLICITED != 0,
                    override_: f & NA_OVERRIDE != 0,
                },
                target,
                target_lladdr: tll,
            })
        }
    }

    pub fn target(&self) -> Ipv6Addr {
        match *self {
            NdRepr::Solicit { target, .. } | NdRepr::Advert { target, .. } => target,
        }
    }

    /// Bytes `emit` writes: 24, plus 8 with a link-layer address option.
    pub fn buffer_len(&self) -> usize {
        let opt = match self {
            NdRepr::Solicit { source_lladdr, .. } => source_lladdr.is_some(),
            NdRepr::Advert { target_lladdr, .. } => target_lladdr.is_some(),
        };
        ND_LEN + if opt { LLADDR_OPT_LEN } else { 0 }
    }

    /// Write the message into the first [`NdRepr::buffer_len`] bytes of `buf` (`Truncated` if
    /// shorter), checksum zero: fill it with [`Packet::fill_checksum`] once the addresses of
    /// the IPv6 header are known.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let n = self.buffer_len();
        let b = buf.get_mut(..n).ok_or(Error::Truncated)?;
        b.fill(0);
        let (ty, word0, target, opt) = match *self {
            NdRepr::Solicit {
                target,
                source_lladdr,
            } => (
                Icmpv6Type::NEIGHBOR_SOLICIT,
                0,
                target,
                source_lladdr.map(|m| (nd_option::SOURCE_LLADDR, m)),
            ),
            NdRepr::Advert {
                flags,
                target,
                target_lladdr,
            } => {
                let mut f = 0u8;
                if flags.router {
                    f |= NA_ROUTER;
                }
                if flags.solicited {
                    f |= NA_SOLICITED;
                }
                if flags.override_ {
                    f |= NA_OVERRIDE;
                }
                (
                    Icmpv6Type::NEIGHBOR_ADVERT,
                    f,
                    target,
                    target_lladdr.map(|m| (nd_option::TARGET_LLADDR, m)),
                )
            }
        };
        b[field::TYPE] = ty.0;
        b[field::WORD] = word0;
        b[field::ND_TARGET..field::ND_TARGET + 16].copy_from_slice(&target.octets());
        if let Some((kind, mac)) = opt {
            b[ND_LEN] = kind;
            b[ND_LEN + 1] = 1;
            b[ND_LEN + 2..ND_LEN + 8].copy_from_slice(mac.as_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EtherType, ethernet, fixtures_v6};
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const PEER_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

    /// The ICMPv6 message of a fixture frame, with the IPv6 source and destination.
    fn icmp_of(frame: &[u8]) -> (Ipv6Addr, Ipv6Addr, u8, Vec<u8>) {
        let f = ethernet::Frame::new_checked(frame).unwrap();
        assert_eq!(f.ethertype(), EtherType::IPV6);
        let ip = ipv6::Packet::new_checked(f.payload()).unwrap();
        assert_eq!(ip.next_header(), ipv6::next_header::ICMPV6);
        (
            ip.src_addr(),
            ip.dst_addr(),
            ip.hop_limit(),
            ip.payload().to_vec(),
        )
    }

    #[test]
    fn parse_python_echo_request() {
        let (src, dst, hops, m) = icmp_of(&fixtures_v6::ICMPV6_ECHO);
        assert_eq!((src, dst, hops), (a("2001:2::2"), a("2001:2::1"), 64));
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv6Type::ECHO_REQUEST);
        assert!(!p.msg_type().is_error());
        assert_eq!(p.msg_code(), 0);
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 1));
        assert_eq!(p.data().len(), 56);
        assert!(p.verify_checksum(src, dst));
        // The pseudo header matters: the same bytes do not verify between other addresses.
        assert!(!p.verify_checksum(src, a("2001:2::3")));
        // Our fill gives python's checksum.
        let mut c = m.clone();
        let mut q = Packet::new_checked(&mut c[..]).unwrap();
        q.fill_checksum(src, dst);
        assert_eq!(q.checksum(), p.checksum());
    }

    #[test]
    fn parse_python_ns_and_na() {
        let (src, dst, hops, m) = icmp_of(&fixtures_v6::NS);
        assert_eq!((src, dst, hops), (a("2001:2::2"), a("ff02::1:ff00:1"), 255));
        let p = Packet::new_checked(&m[..]).unwrap();
        assert!(p.verify_checksum(src, dst));
        let ns = NdRepr::parse(&p).unwrap();
        assert_eq!(
            ns,
            NdRepr::Solicit {
                target: a("2001:2::1"),
                source_lladdr: Some(PEER_MAC)
            }
        );
        // Emitting the same repr gives python's bytes.
        let mut out = vec![0u8; ns.buffer_len()];
        ns.emit(&mut out).unwrap();
        Packet::new_checked(&mut out[..])
            .unwrap()
            .fill_checksum(src, dst);
        assert_eq!(out, m);

        let (src, dst, hops, m) = icmp_of(&fixtures_v6::NA);
        assert_eq!((src, dst, hops), (a("2001:2::1"), a("2001:2::2"), 255));
        let p = Packet::new_checked(&m[..]).unwrap();
        assert!(p.verify_checksum(src, dst));
        let na = NdRepr::parse(&p).unwrap();
        assert_eq!(
            na,
            NdRepr::Advert {
                flags: NaFlags {
                    router: false,
                    solicited: true,
                    override_: true
                },
                target: a("2001:2::1"),
                target_lladdr: Some(OUR_MAC)
            }
        );
        let mut out = vec![0u8; na.buffer_len()];
        na.emit(&mut out).unwrap();
        Packet::new_checked(&mut out[..])
            .unwrap()
            .fill_checksum(src, dst);
        assert_eq!(out, m);
        assert_eq!(na.emit(&mut [0u8; 31]), Err(Error::Truncated));

        let (src, _, _, m) = icmp_of(&fixtures_v6::DAD_NS);
        assert!(src.is_unspecified());
        assert_eq!(
            NdRepr::parse(&Packet::new_checked(&m[..]).unwrap()).unwrap(),
            NdRepr::Solicit {
                target: a("2001:2::1"),
                source_lladdr: None
            }
        );
    }

    #[test]
    fn nd_option_refusals() {
        let (_, _, _, m) = icmp_of(&fixtures_v6::NS);
        let parse = |b: &[u8]| NdRepr::parse(&Packet::new_checked(b).unwrap());
        // Length 0.
        let mut z = m.clone();
        z[25] = 0;
        assert_eq!(parse(&z), Err(Error::Malformed));
        // Longer than the message.
        let mut l = m.clone();
        l[25] = 2;
        assert_eq!(parse(&l), Err(Error::BadLength));
        // A lone byte after the last option.
        let mut lone = m.clone();
        lone.push(1);
        assert_eq!(parse(&lone), Err(Error::BadLength));
        // SLLA of 16 bytes (not Ethernet's length).
        let mut w = m.clone();
        w[25] = 2;
        w.extend_from_slice(&[0; 8]);
        assert_eq!(parse(&w), Err(Error::Malformed));
        // Two SLLA options.
        let mut d = m.clone();
        d.extend_from_slice(&m[24..32]);
        assert_eq!(parse(&d), Err(Error::Malformed));
        // An unknown option (MTU, 8 bytes) is skipped.
        let mut u = m.clone();
        u.extend_from_slice(&[5, 1, 0, 0, 0, 0, 0x05, 0xdc]);
        assert!(parse(&u).is_ok());
        let opts: Vec<_> = NdOptions::new(&u[24..]).collect();
        assert_eq!(opts.len(), 2);
        assert_eq!(
            opts[1],
            Ok(NdOption::Other {
                kind: 5,
                data: &[0, 0, 0, 0, 0x05, 0xdc][..]
            })
        );
        // Short of the target address; another type.
        assert_eq!(parse(&m[..23]), Err(Error::Truncated));
        let mut e = m.clone();
        e[0] = 128;
        assert_eq!(parse(&e), Err(Error::Unsupported));
    }

    #[test]
    fn error_messages() {
        // Packet too big (MTU 1280) quoting the UDP fixture.
        let mut m = vec![2u8, 0, 0, 0];
        m.extend_from_slice(&1280u32.to_be_bytes());
        m.extend_from_slice(&fixtures_v6::IPV6_UDP_EXT);
        let (src, dst) = (a("2001:2::1"), a("2001:2::2"));
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        p.fill_checksum(src, dst);
        assert!(p.verify_checksum(src, dst));
        assert!(p.msg_type().is_error());
        assert_eq!(p.msg_type(), Icmpv6Type::PACKET_TOO_BIG);
        assert_eq!(p.mtu(), 1280);
        let q = p.quoted_ipv6().unwrap();
        assert_eq!(q.dst_addr(), a("2001:2::1"));
        p.set_msg_type(Icmpv6Type::PARAM_PROBLEM);
        p.set_word(42);
        assert_eq!(p.pointer(), 42);
        let p = Packet::new_checked(&m[..30]).unwrap();
        assert_eq!(p.quoted_ipv6().err(), Some(Error::Truncated));
        assert_eq!(Packet::new_checked(&m[..7]), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80), ty in prop::sample::select(vec![135u8, 136, 128, 2])) {
            let mut data = data;
            if let Some(b) = data.first_mut() {
                *b = ty;
            }
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let (s, d) = (Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST);
                let _ = (p.msg_type(), p.mtu(), p.echo_ident(), p.verify_checksum(s, d));
                if let Ok(q) = p.quoted_ipv6() {
                    let _ = (q.src_addr(), q.payload().len(), q.ext_headers(8));
                }
                if let Ok(r) = NdRepr::parse(&p) {
                    let mut out = vec![0u8; r.buffer_len()];
                    prop_assert!(r.emit(&mut out).is_ok());
                    prop_assert_eq!(NdRepr::parse(&Packet::new_checked(&out[..]).unwrap()), Ok(r));
                }
            }
            for _ in NdOptions::new(&data) {}
        }
    }
}
