//! UOA ("UDP Option of Address"), DPVS's way to give a FULLNAT UDP server the client's address:
//! the real server runs DPVS's `uoa` kernel module, which reads it from the first datagrams of
//! a flow and answers `getsockopt(UOA_SO_GET_LOOKUP)` with it. rvs writes both of DPVS's forms
//! (`--uoa ipo|opp`, DPVS's `uoa_mode`):
//!
//! - **ipo**: an IPv4 header option, type 31 (`IPOPT_UOA`, class "control", not copied), length
//!   8: the client's port and IPv4 address, both in network order. The IP header grows by 8
//!   bytes (IHL + 2). Some routers drop or slow-path packets with IP options: that is why DPVS
//!   added the second form.
//! - **opp**: a private "option protocol" header (IP protocol 248) between the IP and UDP
//!   headers: one byte with the version in its high nibble (1: an IPv4 address), the next
//!   protocol (17), the header's length (12, network order), then the same 8-byte UOA option.
//!   The IP header's protocol becomes 248.
//!
//! The UDP header and its checksum are left as they were: the module restores the datagram
//! before UDP sees it. As DPVS, the option goes on the first datagrams of a connection until
//! the real server answers, at most [`MAX_TRAIL`] of them. A datagram the option would push over
//! the egress MTU goes without it (and does not count).

use std::net::Ipv4Addr;

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::wire::checksum::sum;
use crate::wire::ethernet;

/// The UOA IP option type (`31 | IPOPT_CONTROL`).
pub const IPOPT_UOA: u8 = 31;
/// Length of the UOA option for an IPv4 client.
pub const OPT_LEN: usize = 8;
/// The option protocol's IP protocol number.
pub const IPPROTO_OPT: u8 = 248;
/// Length of the option-protocol header with the UOA option.
pub const OPP_LEN: usize = 4 + OPT_LEN;
/// Datagrams of a connection that carry the option at most (DPVS's `uoa_max_trail` default).
pub const MAX_TRAIL: u8 = 3;

/// The UOA option bytes.
pub fn option_bytes(cip: Ipv4Addr, cport: u16) -> [u8; OPT_LEN] {
    let p = cport.to_be_bytes();
    let a = cip.octets();
    [IPOPT_UOA, OPT_LEN as u8, p[0], p[1], a[0], a[1], a[2], a[3]]
}

/// Which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Ipo,
    Opp,
}

/// Bytes the form adds to a datagram.
pub const fn overhead(form: Form) -> usize {
    match form {
        Form::Ipo => OPT_LEN,
        Form::Opp => OPP_LEN,
    }
}

/// Insert the option in the form `form` into the IPv4 UDP datagram in `buf` (Ethernet padding
/// dropped first). `Ok(false)`: no room (IP options full for `ipo`), left unchanged.
pub fn insert<B: PacketBuf>(
    buf: &mut B,
    form: Form,
    cip: Ipv4Addr,
    cport: u16,
) -> Result<bool, DropReason> {
    let l3 = ethernet::HEADER_LEN;
    let f = buf.data();
    let (Some(&vihl), Some(tot)) = (f.get(l3), f.get(l3 + 2..l3 + 4)) else {
        return Err(DropReason::Ipv4Malformed);
    };
    let ihl = usize::from(vihl & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([tot[0], tot[1]]));
    let end = l3 + total;
    if ihl < 20 || end > f.len() || total < ihl + 8 {
        return Err(DropReason::Ipv4BadLength);
    }
    let add = overhead(form);
    if form == Form::Ipo && ihl + add > 60 {
        return Ok(false);
    }
    buf.set_len(end).map_err(|_| DropReason::Ipv4BadLength)?;
    buf.append(add).map_err(|_| DropReason::NoBuffer)?;
    let at = l3 + ihl;
    let f = buf.data_mut();
    f.copy_within(at..end, at + add);
    let opt = option_bytes(cip, cport);
    match form {
        Form::Ipo => {
            f[at..at + OPT_LEN].copy_from_slice(&opt);
            f[l3] = (f[l3] & 0xf0) | ((ihl + add) / 4) as u8;
        }
        Form::Opp => {
            let proto = f[l3 + 9];
            f[at..at + 4].copy_from_slice(&[0x10, proto, 0, OPP_LEN as u8]);
            f[at + 4..at + OPP_LEN].copy_from_slice(&opt);
            f[l3 + 9] = IPPROTO_OPT;
        }
    }
    f[l3 + 2..l3 + 4].copy_from_slice(&((total + add) as u16).to_be_bytes());
    let hl = if form == Form::Ipo { ihl + add } else { ihl };
    f[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let c = !sum(&f[l3..l3 + hl]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::testutil::{FrameSpec, udp_frame, verify_frame};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn frame() -> Vec<u8> {
        udp_frame(
            &FrameSpec::tcp("198.18.1.1", 5000, "198.18.1.11", 53),
            b"query",
        )
    }

    #[test]
    fn ipo_adds_the_option_to_the_ip_header() {
        let f = frame();
        let mut b = HeapBuf::from_bytes(&f);
        assert!(insert(&mut b, Form::Ipo, ip("198.18.0.2"), 40000).unwrap());
        let d = b.data();
        assert_eq!(d[14], 0x47, "IHL 7");
        assert_eq!(u16::from_be_bytes([d[16], d[17]]), 20 + 8 + 8 + 5);
        assert_eq!(&d[34..42], &[31, 8, 0x9c, 0x40, 198, 18, 0, 2]);
        assert_eq!(&d[42..], &f[34..], "the UDP datagram follows unchanged");
        assert_eq!(!sum(&d[14..42]), 0, "IP header checksum valid");
    }

    #[test]
    fn opp_puts_its_header_before_udp() {
        let f = frame();
        let mut b = HeapBuf::from_bytes(&f);
        assert!(insert(&mut b, Form::Opp, ip("198.18.0.2"), 40000).unwrap());
        let d = b.data();
        assert_eq!((d[14], d[23]), (0x45, 248));
        assert_eq!(&d[34..38], &[0x10, 17, 0, 12]);
        assert_eq!(&d[38..46], &[31, 8, 0x9c, 0x40, 198, 18, 0, 2]);
        assert_eq!(&d[46..], &f[34..]);
        assert_eq!(!sum(&d[14..34]), 0);
        // Taken out again (as the uoa module does), the datagram is the one that came in.
        let mut back = d[..34].to_vec();
        back.extend(&d[46..]);
        back[23] = 17;
        let total = (back.len() - 14) as u16;
        back[16..18].copy_from_slice(&total.to_be_bytes());
        back[24..26].copy_from_slice(&[0, 0]);
        let c = !sum(&back[14..34]);
        back[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(back, f);
        verify_frame(&back).unwrap();
    }

    #[test]
    fn full_ip_options_leave_the_datagram_alone() {
        let mut f = frame();
        // Rebuild with 40 bytes of IP options (IHL 15).
        let mut g = f[..34].to_vec();
        g.extend([1u8; 40]);
        g.extend(&f[34..]);
        g[14] = 0x4f;
        let total = (g.len() - 14) as u16;
        g[16..18].copy_from_slice(&total.to_be_bytes());
        f = g;
        let mut b = HeapBuf::from_bytes(&f);
        assert!(!insert(&mut b, Form::Ipo, ip("198.18.0.2"), 1).unwrap());
        assert_eq!(b.data(), &f[..]);
    }
}
