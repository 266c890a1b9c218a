//! Direct routing (`-g`, Route): the request keeps its IP header and payload byte for byte; only
//! the Ethernet destination changes, to the real server's MAC, which the worker resolves by ARP on
//! the port whose connected network holds the RIP (a route lookup of the RIP, not of the packet's
//! destination, which stays the VIP). Replies go from the real server straight to the client.
//!
//! TTL: left unchanged. The director acts as an L2 hop here, as IPVS does (it takes the packet at
//! LOCAL_IN, where no forwarding decrement has happened, and `ip_vs_dr_xmit` does not touch the
//! header), so a DR packet leaves bit-identical at L3 and no IP checksum work is needed. A packet
//! arriving with TTL <= 1 is still refused (`ttl_exceeded`) like for every method, before it can
//! open or change a connection.

use std::net::Ipv4Addr;

use crate::drop::DropReason;
use crate::packet::PacketBuf;
use crate::wire::{ethernet, ipv4};

/// Check that `buf` is an IPv4 frame fit to be sent as is and return the address whose
/// neighbour must receive it: the real server's `rip`.
pub fn to_dest<B: PacketBuf>(buf: &B, rip: Ipv4Addr) -> Result<Ipv4Addr, DropReason> {
    let l3 = buf
        .data()
        .get(ethernet::HEADER_LEN..)
        .ok_or(DropReason::EthTruncated)?;
    ipv4::Packet::new_checked(l3).map_err(|_| DropReason::Ipv4Malformed)?;
    Ok(rip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use crate::testutil::{FrameSpec, tcp_frame};

    #[test]
    fn leaves_the_packet_alone() {
        let f = tcp_frame(
            &FrameSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80),
            crate::wire::tcp::TcpFlags::SYN,
            b"",
        );
        let b = HeapBuf::from_bytes(&f);
        let rip = Ipv4Addr::new(198, 18, 0, 11);
        assert_eq!(to_dest(&b, rip), Ok(rip));
        assert_eq!(b.data(), &f[..]);
        let short = HeapBuf::from_bytes(&f[..20]);
        assert!(to_dest(&short, rip).is_err());
    }
}
