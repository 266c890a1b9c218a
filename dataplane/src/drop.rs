//! Why a packet was dropped. Every drop in the dataplane has exactly one reason, counted per
//! worker and exported as a metric (`rvs_drops_total{reason=...}`); there are no silent drops.

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $variant:ident => $label:literal, )*) => {
        /// The reason a packet was dropped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* $variant, )*
        }

        impl DropReason {
            /// Every reason, in declaration order (the index is `reason as usize`).
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$variant, )* ];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// The metric label of this reason (snake_case, stable).
            pub const fn label(self) -> &'static str {
                match self {
                    $( DropReason::$variant => $label, )*
                }
            }
        }
    };
}

drop_reasons! {
    /// Frame shorter than an Ethernet header.
    EthTruncated => "eth_truncated",
    /// Ethertype other than IPv4 and ARP (no exception path configured).
    UnknownEthertype => "unknown_ethertype",
    /// Ethernet destination neither ours nor broadcast.
    NotOurMac => "not_our_mac",
    /// ARP packet malformed or of an unsupported hardware/protocol type.
    ArpMalformed => "arp_malformed",
    /// ARP request for an address we do not own, or a reply we did not need.
    ArpNotForUs => "arp_not_for_us",
    /// IPv4 header truncated, wrong version or IHL too small.
    Ipv4Malformed => "ipv4_malformed",
    /// IPv4 total length larger than the frame or smaller than the header.
    Ipv4BadLength => "ipv4_bad_length",
    /// IPv4 header checksum wrong.
    Ipv4BadChecksum => "ipv4_bad_checksum",
    /// IPv4 fragment (policy: fragments are not reassembled, see `worker`).
    Ipv4Fragment => "ipv4_fragment",
    /// IPv4 header with options (policy: not forwarded, see `worker`).
    Ipv4Options => "ipv4_options",
    /// TTL would reach zero when forwarding.
    TtlExceeded => "ttl_exceeded",
    /// TCP header truncated or data offset absurd.
    TcpMalformed => "tcp_malformed",
    /// UDP header truncated or length inconsistent.
    UdpMalformed => "udp_malformed",
    /// ICMP message truncated or of a kind we do not handle.
    IcmpMalformed => "icmp_malformed",
    /// L4 checksum wrong.
    L4BadChecksum => "l4_bad_checksum",
    /// Packet to an address we own that is neither service traffic nor ICMP echo.
    LocalNotService => "local_not_service",
    /// Packet addressed to neither an owned address, a VIP nor a known connection.
    NotForUs => "not_for_us",
    /// TCP packet other than SYN to a VIP without a connection.
    TcpNoConnection => "tcp_no_connection",
    /// A service matched but the scheduler found no available dest.
    NoDest => "no_dest",
    /// Connection table full: the new connection was refused.
    ConnTableFull => "conn_table_full",
    /// The shared persistence-template table is full: the new connection was refused.
    PersistTableFull => "persist_table_full",
    /// A new connection's reply tuple is already in use by another connection.
    ConnTupleInUse => "conn_tuple_in_use",
    /// The connection's dest was removed from its service.
    DestRemoved => "dest_removed",
    /// The dest's forwarding method has no data path for this packet (an ICMP error about a
    /// TUN connection).
    MethodUnsupported => "method_unsupported",
    /// No route to the destination.
    NoRoute => "no_route",
    /// Neighbour unresolved and its wait queue full (or resolution failed).
    NeighQueueFull => "neigh_queue_full",
    /// Neighbour resolution timed out with packets waiting.
    NeighTimeout => "neigh_timeout",
    /// No buffer for a packet we had to create (ARP request, ICMP error).
    NoBuffer => "no_buffer",
    /// Packet too large for the egress MTU.
    TooBig => "too_big",
    /// TUN: the encapsulated packet would exceed the egress MTU and DF is set; the client was
    /// sent ICMP fragmentation-needed.
    TunTooBig => "tun_too_big",
    /// FULLNAT: the service has no local address.
    NoLaddr => "no_laddr",
    /// FULLNAT: every local port towards the chosen real server is in use on this worker.
    LportExhausted => "lport_exhausted",
    /// A source address no client can have (unspecified, loopback, broadcast, multicast, class
    /// E, one of the director's own addresses, or the destination itself): dropped before any
    /// connection is made, as Linux drops martian sources before IPVS sees them.
    MartianSource => "martian_source",
    /// An ICMP echo request not answered: the worker's echo-reply budget
    /// (`[dataplane] icmp_echo_per_sec`) was spent.
    IcmpRateLimited => "icmp_rate_limited",
    /// SYN proxy: an ACK to a SYN-proxy service with no connection whose acknowledgement is not
    /// a valid cookie (forged, too old, or for another flow).
    SynproxyBadCookie => "synproxy_bad_cookie",
    /// SYN proxy: a client segment while the connection to the real server is being opened
    /// (the client was told a zero window; its probes wait for the server's answer).
    SynproxyOpening => "synproxy_opening",
    /// SYN proxy: the real server did not answer the proxied SYN in time; the client was reset.
    SynproxyServerTimeout => "synproxy_server_timeout",
    /// SYN proxy: a real server's segment that does not answer the proxied SYN.
    SynproxyUnexpected => "synproxy_unexpected",
    /// A new connection from a source on the service's deny list (`ipvsadm -U`).
    AclDenied => "acl_denied",
    /// A new connection from a source missing from the service's non-empty allow list
    /// (`ipvsadm -O`).
    AclNotAllowed => "acl_not_allowed",
    /// A new connection refused: the service holds its `--conn-limit` connections.
    SvcConnLimit => "svc_conn_limit",
    /// A new connection refused: the service's `--conn-rate` budget was spent.
    SvcRateLimited => "svc_rate_limited",
    /// A new connection refused: its source prefix's `--src-rate` budget was spent.
    SrcRateLimited => "src_rate_limited",
    /// A packet from one of the service's NAT/FULLNAT real servers, arriving on another port
    /// than the one its replies use, trying to open a connection to the service (spoofed: such
    /// a connection could never work, see `worker::admit`).
    RipSource => "rip_source",
    /// FULLNAT UDP with a PROXY header: the datagram with the header would exceed the egress
    /// MTU (rvs does not fragment); a datagram with DF set was answered with ICMP
    /// fragmentation-needed.
    ProxyHdrTooBig => "proxy_hdr_too_big",
    /// IPv6 header truncated or of the wrong version.
    Ipv6Malformed => "ipv6_malformed",
    /// IPv6 payload length larger than the frame.
    Ipv6BadLength => "ipv6_bad_length",
    /// IPv6 extension-header chain malformed: a header running past the payload, hop-by-hop
    /// options not first, a second fragment or routing header.
    Ipv6ExtMalformed => "ipv6_ext_malformed",
    /// More IPv6 extension headers than the policy allows (8).
    Ipv6ExtHeadersTooMany => "ipv6_ext_headers_too_many",
    /// IPv6 fragment (policy: fragments are not reassembled; atomic fragments pass).
    Ipv6Fragment => "ipv6_fragment",
    /// IPv6 routing header with segments left: the destination is a waypoint, not the packet's
    /// final destination.
    Ipv6RoutingHeader => "ipv6_routing_header",
    /// IPv6 traffic rvs does not serve yet: to one of the director's IPv6 addresses, a
    /// link-local address or a multicast group, other than Neighbour Discovery and echo
    /// requests (given to the kernel twin when the port has one).
    Ipv6NotServed => "ipv6_not_served",
    /// Neighbour Solicitation or Advertisement failing RFC 4861's checks (hop limit not 255,
    /// bad options, DAD probe not to the solicited-node group, ...).
    NdMalformed => "nd_malformed",
    /// Neighbour Solicitation for an address that is not ours on the port, or our own ND frame
    /// coming back.
    NdNotForUs => "nd_not_for_us",
    /// Neighbour Advertisement from another node for one of our addresses (an address
    /// conflict).
    NdAddressConflict => "nd_address_conflict",
    /// NAT64: an ICMPv4 error about a NAT64 connection of a type RFC 7915 does not translate
    /// to ICMPv6 (source quench, parameter problem, redirect, ...).
    IcmpNotTranslated => "icmp_not_translated",
}

/// Per-reason drop counts of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters {
            counts: [0; DropReason::COUNT],
        }
    }
}

impl DropCounters {
    /// Count one drop.
    pub fn count(&mut self, reason: DropReason) {
        self.counts[reason as usize] += 1;
    }

    /// Drops counted for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(reason, count)` for every reason.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.counts[*r as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_indexes_dense() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(seen.insert(r.label()), "duplicate label {}", r.label());
        }
        let mut c = DropCounters::default();
        c.count(DropReason::NoRoute);
        c.count(DropReason::NoRoute);
        assert_eq!(c.get(DropReason::NoRoute), 2);
        assert_eq!(c.total(), 2);
    }
}
