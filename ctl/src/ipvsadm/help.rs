//! `-h` and `-v` texts of ipvsadm 1.31.

/// `ipvsadm -v`.
pub const VERSION: &str = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n";

/// ipvsadm 1.31's `usage_exit` text; `%s` is the program name. Scheduler list is 1.31's
/// compiled-in `SCHEDULERS` (no `twos`).
const USAGE: &str = r#"Usage:
  %s -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  %s -D virtual-service
  %s -C
  %s -R
  %s -S [-n]
  %s -a|e virtual-service -r server-address [options]
  %s -d virtual-service -r server-address
  %s -L|l [virtual-service] [options]
  %s -Z [virtual-service]
  %s --set tcp tcpfin udp
  %s --start-daemon {master|backup} [daemon-options]
  %s --stop-daemon {master|backup}
  %s -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine may be sip,
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)
"#;

/// What rvs adds (DPVS's options), printed after ipvsadm's text.
const EXTENSIONS: &str = r#"
DPVS extensions (rvs):
  %s --add-laddr|-P virtual-service -z local-address -F ifname
  %s --del-laddr|-Q virtual-service -z local-address -F ifname
  %s --get-laddr|-G [virtual-service]
  %s --add-blklst|-U virtual-service -k address[/len]
  %s --del-blklst|-V virtual-service -k address[/len]
  %s --get-blklst|-B [virtual-service]
  %s --add-whtlst|-O virtual-service -2 address[/len]
  %s --del-whtlst|-Y virtual-service -2 address[/len]
  %s --get-whtlst|-W [virtual-service]
  --fullnat      -b                   full NAT forwarding (with -a|-e only)
  --synproxy     -j enable|disable    TCP SYN proxy (with -A|-E only)
  --blklst       -k address[/len]     deny-list entry (sources refused new connections)
  --whtlst       -2 address[/len]     allow-list entry (when any: only these sources)
rvs limits (with -A|-E):
  --conn-limit N                      most connections of the service at once
  --conn-rate RATE[:BURST]            new connections per second to the service
  --src-rate RATE[:BURST]             new connections per second from one source prefix
  --src-prefix LEN                    that source prefix length (default 32)
The client's address at FULLNAT real servers (with -A|-E):
  --proxy-protocol disable|v1|v2|v1-insecure|v2-insecure
                                      PROXY protocol header (v1: TCP only)
  --toa enable|disable                TCP option with the client address (default enable)
  --uoa opp|ipo|disable               UDP option of address (default disable)
"#;

/// `ipvsadm -h` for the program name `program`.
pub fn usage(program: &str) -> String {
    let mut s = String::from(VERSION);
    s.push_str(&USAGE.replace("%s", program));
    s.push_str(&EXTENSIONS.replace("%s", program));
    s
}
