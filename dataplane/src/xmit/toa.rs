//! TOA ("TCP Option Address"): how FULLNAT tells the real server who the client is. The option
//! (kind 254, length 8: the client's port, then its IPv4 address, both in network order) is the
//! one DPVS and the Alibaba/Huawei `toa` kernel module use.
//!
//! Where it goes, as DPVS does it (`tcp_fnat_in_handler`): into the client's SYN, and into the
//! first client packet that carries data after the handshake (the `toa` module reads it when the
//! handshake completes or from the first data segment, depending on its version; both are
//! covered). To leave room for it in full-sized data segments, the MSS the real server announces
//! in its SYN-ACK is reduced by 8 on the way to the client (DPVS's `tcp_out_adjust_mss`). A
//! segment whose TCP options area has no room left (more than 32 bytes of options) goes without
//! it.
//!
//! IPv6 clients (FULLNAT6, and NAT64 where the real server is IPv4 but the client is not) get
//! the 20-byte form: kind 254, length 20, the client's port, then its 16-byte IPv6 address,
//! network order, no padding (a multiple of 4 already). That is the layout of DPVS's
//! `struct tcpopt_ip6_addr` and `TCP_OLEN_IP6_ADDR` in `include/ipvs/proto_tcp.h`, written by
//! `tcp_in_add_toa` in `src/ipvs/ip_vs_proto_tcp.c` (which picks the length by the client's
//! family, `conn->af`, so a NAT64 connection's IPv4 segment carries the IPv6 form too), and
//! read by the kernel module's `struct toa_ip6_data` / `TCPOLEN_IP6_TOA` in `kmod/toa/toa.h`.
//! DPVS puts the option right after the fixed TCP header; rvs appends it after the options
//! already there, as for IPv4 (the `toa` module scans all options either way). The SYN-ACK's
//! MSS is reduced by 20 for these connections, as DPVS's `tcp_out_adjust_mss` does for the
//! IPv6 in-side family.
//!
//! Checksums are updated incrementally (RFC 1624): the option is 8 bytes, so the payload moves
//! by a multiple of two and its sum is unchanged; what changes is the data offset word, the
//! pseudo-header length and the option's own words. A segment that arrived with a bad checksum
//! leaves with a bad one.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::parse6::Parsed6;
use crate::wire::checksum::{update_u16, update_u32};
use crate::wire::{IpProtocol, ethernet, ipv4, tcp};

/// TOA option kind.
pub const KIND: u8 = 254;
/// TOA option length (kind, length, port, IPv4 address).
pub const LEN: usize = 8;
/// IPv6 TOA option length (kind, length, port, IPv6 address): DPVS's `TCP_OLEN_IP6_ADDR`.
pub const LEN6: usize = 20;

/// The TOA option bytes for a client.
pub fn option_bytes(cip: Ipv4Addr, cport: u16) -> [u8; LEN] {
    let p = cport.to_be_bytes();
    let a = cip.octets();
    [KIND, LEN as u8, p[0], p[1], a[0], a[1], a[2], a[3]]
}

/// Insert the TOA option at the end of the TCP options of the IPv4/TCP packet in `buf` (any
/// Ethernet padding is dropped first). `Ok(false)`: no room in the TCP header, left unchanged.
pub fn insert<B: PacketBuf>(buf: &mut B, cip: Ipv4Addr, cport: u16) -> Result<bool, DropReason> {
    let (ihl, total, thl) = {
        let l3 = buf
            .data()
            .get(ethernet::HEADER_LEN..)
            .ok_or(DropReason::EthTruncated)?;
        let ip = ipv4::Packet::new_checked(l3).map_err(|_| DropReason::Ipv4Malformed)?;
        if ip.protocol() != IpProtocol::TCP {
            return Err(DropReason::TcpMalformed);
        }
        let t = tcp::Packet::new_checked(ip.payload()).map_err(|_| DropReason::TcpMalformed)?;
        (
            usize::from(ip.header_len()),
            usize::from(ip.total_len()),
            usize::from(t.header_len()),
        )
    };
    if thl + LEN > tcp::MAX_HEADER_LEN || total + LEN > usize::from(u16::MAX) {
        return Ok(false);
    }
    let end = ethernet::HEADER_LEN + total;
    buf.set_len(end).map_err(|_| DropReason::Ipv4BadLength)?;
    buf.append(LEN).map_err(|_| DropReason::NoBuffer)?;
    let l4_start = ethernet::HEADER_LEN + ihl;
    let opt_at = l4_start + thl;
    let data = buf.data_mut();
    data.copy_within(opt_at..end, opt_at + LEN);
    let opt = option_bytes(cip, cport);
    data[opt_at..opt_at + LEN].copy_from_slice(&opt);

    let l3 = &mut data[ethernet::HEADER_LEN..];
    let mut ip = ipv4::Packet::new_unchecked(&mut *l3);
    let old_total = ip.total_len();
    let new_total = old_total + LEN as u16;
    ip.set_total_len(new_total);
    ip.set_checksum(update_u16(ip.checksum(), old_total, new_total));
    let seg = &mut l3[ihl..];
    let old_word = u16::from_be_bytes([seg[12], seg[13]]);
    let mut t = tcp::Packet::new_unchecked(&mut *seg);
    t.set_header_len((thl + LEN) as u8);
    let new_word = u16::from_be_bytes([seg[12], seg[13]]);
    let old_len = old_total - ihl as u16;
    let mut c = u16::from_be_bytes([seg[16], seg[17]]);
    c = update_u16(c, old_word, new_word);
    c = update_u16(c, old_len, old_len + LEN as u16);
    c = update_u32(c, 0, u32::from_be_bytes([opt[0], opt[1], opt[2], opt[3]]));
    c = update_u32(c, 0, u32::from_be_bytes([opt[4], opt[5], opt[6], opt[7]]));
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    Ok(true)
}

/// Reduce the MSS option of the TCP segment in `buf` by `by` bytes (SYN-ACKs of FULLNAT
/// connections). `Ok(false)` when the segment has no MSS option.
pub fn reduce_mss<B: PacketBuf>(buf: &mut B, by: u16) -> Result<bool, DropReason> {
    let l3 = buf
        .data_mut()
        .get_mut(ethernet::HEADER_LEN..)
        .ok_or(DropReason::EthTruncated)?;
    let mut ip = ipv4::Packet::new_checked(l3).map_err(|_| DropReason::Ipv4Malformed)?;
    reduce_mss_seg(ip.payload_mut(), by)
}

/// [`reduce_mss`] for a TCP segment (header and payload) of either IP version: the MSS option
/// is not covered by the pseudo header, so the family does not matter here.
pub fn reduce_mss_seg(seg: &mut [u8], by: u16) -> Result<bool, DropReason> {
    let mut t = tcp::Packet::new_checked(seg).map_err(|_| DropReason::TcpMalformed)?;
    let mut c = t.checksum();
    let opts = t.options_bytes_mut();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > opts.len() {
                    break;
                }
                if kind == 2 && len == 4 {
                    let old = u16::from_be_bytes([opts[i + 2], opts[i + 3]]);
                    let new = old.saturating_sub(by);
                    opts[i + 2..i + 4].copy_from_slice(&new.to_be_bytes());
                    // The option may start at an odd offset: update the two words it touches.
                    c = if i % 2 == 0 {
                        update_u16(c, old, new)
                    } else {
                        let w = |hi: u8, lo: u8| u16::from_be_bytes([hi, lo]);
                        let (o, n) = (old.to_be_bytes(), new.to_be_bytes());
                        let prev = opts[i + 1];
                        let next = opts.get(i + 4).copied().unwrap_or(0);
                        let c1 = update_u16(c, w(prev, o[0]), w(prev, n[0]));
                        update_u16(c1, w(o[1], next), w(n[1], next))
                    };
                    t.set_checksum(c);
                    return Ok(true);
                }
                i += len;
            }
        }
    }
    Ok(false)
}

/// [`reduce_mss`] for the IPv6 frame `p` describes.
pub fn reduce_mss6<B: PacketBuf>(buf: &mut B, p: &Parsed6, by: u16) -> Result<bool, DropReason> {
    let seg = buf
        .data_mut()
        .get_mut(usize::from(p.l4)..usize::from(p.end))
        .ok_or(DropReason::Ipv6BadLength)?;
    reduce_mss_seg(seg, by)
}

/// The IPv6 TOA option bytes for a client: kind 254, length 20, port, the 16 address bytes.
pub fn option_bytes6(cip: Ipv6Addr, cport: u16) -> [u8; LEN6] {
    let mut o = [0u8; LEN6];
    o[0] = KIND;
    o[1] = LEN6 as u8;
    o[2..4].copy_from_slice(&cport.to_be_bytes());
    o[4..].copy_from_slice(&cip.octets());
    o
}

/// Insert the IPv6 TOA option for `cip:cport` at the end of the TCP options of the IPv6 frame
/// `p` describes (FULLNAT6; extension headers stay where they are). `Ok(false)`: no room.
pub fn insert6<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed6,
    cip: Ipv6Addr,
    cport: u16,
) -> Result<bool, DropReason> {
    let opt = option_bytes6(cip, cport);
    splice(buf, Family::V6, usize::from(p.l4), usize::from(p.end), &opt)
}

/// Insert the IPv6 TOA option for `cip:cport` into the IPv4/TCP frame in `buf` (NAT64: the
/// segment was translated to IPv4, the client is IPv6; DPVS sends the option as its in-side
/// family, the client's). `Ok(false)`: no room.
pub fn insert6_in_v4<B: PacketBuf>(
    buf: &mut B,
    cip: Ipv6Addr,
    cport: u16,
) -> Result<bool, DropReason> {
    let (l4, end) = {
        let l3 = buf
            .data()
            .get(ethernet::HEADER_LEN..)
            .ok_or(DropReason::EthTruncated)?;
        let ip = ipv4::Packet::new_checked(l3).map_err(|_| DropReason::Ipv4Malformed)?;
        (
            ethernet::HEADER_LEN + usize::from(ip.header_len()),
            ethernet::HEADER_LEN + usize::from(ip.total_len()),
        )
    };
    let opt = option_bytes6(cip, cport);
    splice(buf, Family::V4, l4, end, &opt)
}

/// Which IP header's length field grows with the option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// Insert `opt` (a multiple of 4 bytes) at the end of the TCP options of the segment at
/// `l4..end` of the frame, growing the IP length field (and the IPv4 header checksum) and
/// updating the TCP checksum incrementally. Bytes past `end` (Ethernet padding) are dropped.
fn splice<B: PacketBuf>(
    buf: &mut B,
    fam: Family,
    l4: usize,
    end: usize,
    opt: &[u8],
) -> Result<bool, DropReason> {
    let data = buf.data();
    if end > data.len() || l4 + tcp::HEADER_LEN > end {
        return Err(DropReason::TcpMalformed);
    }
    let thl = usize::from(data[l4 + 12] >> 4) * 4;
    if thl < tcp::HEADER_LEN || l4 + thl > end {
        return Err(DropReason::TcpMalformed);
    }
    let len_at = ethernet::HEADER_LEN + if fam == Family::V4 { 2 } else { 4 };
    let ip_len = u16::from_be_bytes([data[len_at], data[len_at + 1]]);
    if thl + opt.len() > tcp::MAX_HEADER_LEN || usize::from(ip_len) + opt.len() > 0xffff {
        return Ok(false);
    }
    buf.set_len(end).map_err(|_| DropReason::Ipv4BadLength)?;
    buf.append(opt.len()).map_err(|_| DropReason::NoBuffer)?;
    let data = buf.data_mut();
    let at = l4 + thl;
    data.copy_within(at..end, at + opt.len());
    data[at..at + opt.len()].copy_from_slice(opt);
    let grow = opt.len() as u16;
    data[len_at..len_at + 2].copy_from_slice(&(ip_len + grow).to_be_bytes());
    if fam == Family::V4 {
        let at = ethernet::HEADER_LEN + 10;
        let c = update_u16(
            u16::from_be_bytes([data[at], data[at + 1]]),
            ip_len,
            ip_len + grow,
        );
        data[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let old_word = u16::from_be_bytes([data[l4 + 12], data[l4 + 13]]);
    data[l4 + 12] = ((((thl + opt.len()) / 4) as u8) << 4) | (data[l4 + 12] & 0x0f);
    let new_word = u16::from_be_bytes([data[l4 + 12], data[l4 + 13]]);
    let seg_len = (end - l4) as u16;
    let mut c = u16::from_be_bytes([data[l4 + 16], data[l4 + 17]]);
    c = update_u16(c, old_word, new_word);
    c = update_u16(c, seg_len, seg_len + grow);
    for w in opt.chunks_exact(2) {
        c = update_u16(c, 0, u16::from_be_bytes([w[0], w[1]]));
    }
    data[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::testutil::{FrameSpec, ones_sum, verify_frame};
    use proptest::prelude::*;

    /// A TCP frame with the given options (padded by the caller to a multiple of 4) and payload.
    pub(crate) fn tcp_with_options(flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let spec = FrameSpec::tcp("198.18.1.1", 2000, "198.18.1.11", 80);
        let mut t = Vec::new();
        t.extend_from_slice(&spec.sport.to_be_bytes());
        t.extend_from_slice(&spec.dport.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        t.push((((20 + opts.len()) / 4) << 4) as u8);
        t.push(flags);
        t.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
        t.extend_from_slice(opts);
        t.extend_from_slice(payload);
        let mut ps = Vec::new();
        ps.extend_from_slice(&spec.src.octets());
        ps.extend_from_slice(&spec.dst.octets());
        ps.extend_from_slice(&[0, 6]);
        ps.extend_from_slice(&(t.len() as u16).to_be_bytes());
        let c = ones_sum(&[&ps, &t]);
        t[16..18].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0];
        ip[2..4].copy_from_slice(&((20 + t.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&spec.src.octets());
        ip.extend_from_slice(&spec.dst.octets());
        let c = ones_sum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&t);
        f
    }

    #[test]
    fn toa_goes_after_the_options_and_before_the_payload() {
        let opts = [2, 4, 0x05, 0xb4, 1, 1, 4, 2];
        let f = tcp_with_options(0x02, &opts, b"data");
        let mut b = HeapBuf::from_bytes(&f);
        let cip: Ipv4Addr = "198.18.0.2".parse().unwrap();
        assert_eq!(insert(&mut b, cip, 40000), Ok(true));
        let o = b.data();
        verify_frame(o).unwrap();
        assert_eq!(o.len(), f.len() + 8);
        assert_eq!(o[14 + 20 + 12] >> 4, 9);
        assert_eq!(&o[54..62], &opts);
        assert_eq!(&o[62..70], &[254, 8, 0x9c, 0x40, 198, 18, 0, 2]);
        assert_eq!(&o[70..], b"data");
    }

    #[test]
    fn no_room_leaves_the_segment_alone() {
        let opts = [1u8; 36];
        let f = tcp_with_options(0x02, &opts, b"");
        let mut b = HeapBuf::from_bytes(&f);
        assert_eq!(insert(&mut b, Ipv4Addr::LOCALHOST, 1), Ok(false));
        assert_eq!(b.data(), &f[..]);
    }

    #[test]
    fn mss_is_reduced_at_even_and_odd_offsets() {
        for opts in [vec![2, 4, 0x05, 0xb4], vec![1, 2, 4, 0x05, 0xb4, 0, 0, 0]] {
            let f = tcp_with_options(0x12, &opts, b"");
            let mut b = HeapBuf::from_bytes(&f);
            assert_eq!(reduce_mss(&mut b, 8), Ok(true));
            verify_frame(b.data()).unwrap();
            let view = tcp::Packet::new_checked(&b.data()[34..]).unwrap();
            assert_eq!(view.mss(), Some(1452));
        }
        let f = tcp_with_options(0x12, &[1, 1, 1, 1], b"");
        let mut b = HeapBuf::from_bytes(&f);
        assert_eq!(reduce_mss(&mut b, 8), Ok(false));
    }

    proptest! {
        /// Incremental updates agree with a full recompute for any option layout and payload.
        #[test]
        fn checksums_stay_valid(nops in 0usize..8, payload in proptest::collection::vec(any::<u8>(), 0..64),
                                cip in any::<u32>(), cport in any::<u16>()) {
            let mut opts = vec![1u8; nops];
            opts.extend_from_slice(&[2, 4, 0x05, 0xb4]);
            while opts.len() % 4 != 0 { opts.push(0); }
            let f = tcp_with_options(0x18, &opts, &payload);
            let mut b = HeapBuf::from_bytes(&f);
            prop_assert_eq!(reduce_mss(&mut b, 8), Ok(true));
            prop_assert_eq!(insert(&mut b, Ipv4Addr::from_bits(cip), cport), Ok(true));
            prop_assert!(verify_frame(b.data()).is_ok());
        }
    }
}
