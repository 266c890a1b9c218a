#!/usr/bin/env bash
# The rvs test network (docs/architecture.md section 7): network namespaces joined by veth pairs, made and
# removed by the test that uses them. Only 198.18.0.0/15 is used, only inside these namespaces.
#
#   testnet.sh up ID [MODE]  create a topology, namespaces named ID-*; MODE nat (default, below),
#                         fullnat, dr, tun or bgp (further below); nat6, fullnat6, dr6, tun6:
#                         the same topology dual-stack (IPv6 from 2001:2::/48 besides IPv4)
#   testnet.sh down ID    kill every process in ID-* namespaces and delete them (idempotent)
#   testnet.sh check      exit 0 when namespaces can be made here (root, iproute2), else say why
#
#   ID-c (client)             ID-d (director: rvsd owns d0, d1)     ID-s (switch)    ID-r1 / ID-r2
#   c0 198.18.0.2/24 ------- d0   [rvsd dp0 198.18.0.1/24]
#   gw 198.18.0.1              d1   [rvsd dp1 198.18.1.1/24] ------ sw-d1 \
#                                                                   br0  -- sw-r1 --- eth0 198.18.1.11/24
#                                                                        -- sw-r2 --- eth0 198.18.1.12/24
#                                                                   (RS default gw 198.18.1.1)
# The VIP 198.18.0.100 sits on the client network; the director answers ARP for it.
# Each RS runs an HTTP server on port 80 answering its name ("rs1", "rs2") and a UDP echo server
# on port 53 (scripts/testnet-udp.py, answers "rsN:" + datagram).
#
# fullnat: as nat, but the RS have no route beyond their network (they answer the director's
#   local address, 198.18.1.5 in the tests), and each runs a TOA sniffer on eth0
#   (scripts/testnet-toa.py) writing what it saw to $STATE/toa-rN.log.
# dr / tun: one L2 segment, the bridge ID-s/br0, holding the client c0 198.18.0.2, the director's
#   d0 [rvsd dp0 198.18.0.1/24] and the RS eth0 198.18.0.11/.12. dr: each RS holds the VIP on lo
#   with arp_ignore=1, arp_announce=2. tun: each RS holds the VIP on a tun device tun0 fed by a
#   user-space IPIP decapsulator (scripts/testnet-ipip.py), rp_filter off. Replies go from the RS
#   straight to the client. The servers listen on the VIP (UDP) and on any address (HTTP).
#
# bgp: a router between the clients and three directors, ECMP over BGP (bird2), DR.
#   ID-c (client)            ID-rt (router, bird2)              ID-s (br0)   ID-d1..d3 (rvsd each)
#   c0 198.18.2.2/24 ---- rt-c 198.18.2.1/24                           +-- d0 [dp0 198.18.0.N/24 on
#   gw 198.18.2.1          rt0 198.18.0.254/24 ---- sw-rt -- br0 -------+      the kernel twin; bird]
#                          ip_forward, fib_multipath_hash_policy=1       +-- eth0 198.18.0.11/.12
#                                                                        (ID-r1/r2: VIP on lo)
#   The VIP 198.18.3.100 is on no network: the router learns it by BGP (AS 65000) from each
#   director (AS 65001) that announces it (rvsd puts it on the twin while it is serviceable,
#   `[port.kernel] announce`, bird's `protocol direct` exports it) and installs one multipath
#   route (`merge paths`); BFD (100 ms x 3) and hold time 3 s. Each director runs bird in its
#   namespace over the twin dp0 (made by rvsd), so its session exists only while rvsd runs.
#   The RS run scripts/testnet-stream.py on port 9000 and HTTP on 80, default gw the router.
#   Bird logs and control sockets: $STATE/bird-*.{log,ctl}.
#
# nat6 / fullnat6 / dr6 / tun6: the topology of nat / fullnat / dr / tun with IPv6 on as well
#   (the director's namespace keeps it off: its veths belong to rvs). Addresses without DAD:
#   nat6/fullnat6: client c0 2001:2::2/64 (gw 2001:2::1, rvs dp0), RS eth0 2001:2:1::11/64 and
#   ::12 (nat6: gw 2001:2:1::1, rvs dp1; fullnat6: no route, they answer the director's local
#   address 2001:2:1::5 in the tests; the TOA sniffer also records the IPv6 option).
#   dr6/tun6: client 2001:2::2/64, RS 2001:2::11/64 and ::12 on the one segment, the VIP
#   2001:2::100 beside 198.18.0.100 (dr6: on lo; tun6: on tun0, the decapsulator also takes
#   IPv6-in-IPv6). The HTTP servers listen on both families.
set -euo pipefail

cmd=${1:-}
ID=${2:-rvs}
MODE=${3:-nat}
V6=0
case "$MODE" in
    nat6 | fullnat6 | dr6 | tun6) V6=1; MODE=${MODE%6} ;;
esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=/tmp/rvs-testnet/$ID

need() { command -v "$1" >/dev/null 2>&1 || { echo "testnet: $1 not found (apt-get install $2)" >&2; exit 1; }; }

# Turn off every offload on a veth end: the kernel would otherwise hand DPDK's af_packet socket
# partially checksummed or GSO-sized frames (docs/architecture.md section 7, the veth checksum trap).
offloads_off() { # ns dev
    ip netns exec "$1" ethtool -K "$2" rx off tx off tso off gso off gro off >/dev/null 2>&1 ||
        ip netns exec "$1" ethtool -K "$2" rx off tx off >/dev/null
}

mkns() { # ns
    ip netns add "$1"
    ip -n "$1" link set lo up
    if [ "$V6" = 1 ] && [ "$1" != "$ID-d" ]; then
        # Dual-stack: IPv6 on, without router advertisements or DAD delays.
        ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
            net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    else
        ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1
    fi
}

# An IPv6 address without duplicate address detection (dual-stack modes only).
addr6() { # ns addr/len dev
    [ "$V6" = 1 ] || return 0
    ip -n "$1" -6 addr add "$2" dev "$3" nodad
}

# The director's veth ends belong to DPDK (af_packet), but the director namespace's kernel still
# sees every frame on them. With a kernel twin of the port (`[port.kernel]`), the director's
# addresses are also the kernel's, and it would answer ARP and accept packets for them on the
# veth itself, besides through rvs and the twin. Keep the kernel off these interfaces: no ARP
# replies for any address (arp_ignore=8) and strict reverse-path filtering (the director's
# networks route through the twins, so everything arriving on the veth fails the check). A NIC
# bound to a DPDK driver needs none of this: the kernel does not see its frames.
dpdk_only() { # ns dev
    ip netns exec "$1" sysctl -qw "net.ipv4.conf.$2.arp_ignore=8" "net.ipv4.conf.$2.rp_filter=1"
}

veth() { # nsA devA nsB devB
    ip link add name "$2" netns "$1" type veth peer name "$4" netns "$3"
    offloads_off "$1" "$2"
    offloads_off "$3" "$4"
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
}

# Start the HTTP and UDP servers of RS number $1 (namespace ID-r$1) listening on $2 (UDP) and $3
# (HTTP).
servers() { # i udp_addr http_addr
    local r=r$1
    mkdir -p "$STATE/www-$r"
    echo "rs$1" >"$STATE/www-$r/index.html"
    local http=$3
    # "::" is dual-stack (IPV6_V6ONLY off): the same server answers both families.
    [ "$V6" = 1 ] && http=::
    ip netns exec "$ID-$r" python3 -m http.server 80 --bind "$http" \
        --directory "$STATE/www-$r" >"$STATE/http-$r.log" 2>&1 &
    ip netns exec "$ID-$r" python3 "$HERE/testnet-udp.py" echo "rs$1" "$2" 53 \
        >"$STATE/udp-$r.log" 2>&1 &
}

wait_http() {
    for r in r1 r2; do
        for _ in $(seq 1 50); do
            ip netns exec "$ID-$r" ss -ltn 2>/dev/null | grep -q ':80 ' && break
            sleep 0.1
        done
    done
}

# One segment: client, director and both RS on the bridge (dr, tun).
up_segment() {
    mkdir -p "$STATE"
    local c=$ID-c d=$ID-d s=$ID-s vip=198.18.0.100
    for n in c d s r1 r2; do mkns "$ID-$n"; done
    ip -n "$s" link add br0 type bridge
    ip -n "$s" link set br0 up
    veth "$c" c0 "$s" sw-c
    veth "$d" d0 "$s" sw-d0
    dpdk_only "$d" d0
    ip -n "$s" link set sw-c master br0
    ip -n "$s" link set sw-d0 master br0
    ip -n "$c" addr add 198.18.0.2/24 dev c0
    addr6 "$c" 2001:2::2/64 c0
    local i=0
    for r in r1 r2; do
        i=$((i + 1))
        local ns=$ID-$r
        veth "$ns" eth0 "$s" "sw-$r"
        ip -n "$s" link set "sw-$r" master br0
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
            net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
        ip -n "$ns" addr add "198.18.0.1$i/24" dev eth0
        addr6 "$ns" "2001:2::1$i/64" eth0
        if [ "$MODE" = dr ]; then
            ip -n "$ns" addr add "$vip/32" dev lo
            # An address on lo is not answered for by Neighbour Discovery on eth0 (IPv6
            # neighbour solicitations are answered per interface): no arp_ignore needed.
            addr6 "$ns" 2001:2::100/128 lo
        else
            ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
                net.ipv4.conf.eth0.rp_filter=0
            ip -n "$ns" tuntap add dev tun0 mode tun
            ip netns exec "$ns" sysctl -qw net.ipv4.conf.tun0.rp_filter=0
            ip -n "$ns" addr add "$vip/32" dev tun0
            addr6 "$ns" 2001:2::100/128 tun0
            ip -n "$ns" link set tun0 up
            ip netns exec "$ns" python3 "$HERE/testnet-ipip.py" tun0 "$([ "$V6" = 1 ] && echo 6)" \
                >"$STATE/ipip-$r.log" 2>&1 &
        fi
        servers "$i" "$vip" 0.0.0.0
    done
    wait_http
    if [ "$MODE" = tun ]; then
        for r in r1 r2; do
            for _ in $(seq 1 50); do
                grep -q ready "$STATE/ipip-$r.log" 2>/dev/null && break
                sleep 0.1
            done
        done
    fi
}

# bird2 configuration of director N (AS 65001) and of the router (AS 65000).
bird_director() { # n
    cat <<EOF
log "$STATE/bird-d$1.log" all;
router id 198.18.0.$1;
protocol device { scan time 1; }
# The VIPs rvsd puts on the twin dp0 while they are serviceable.
protocol direct vips {
    ipv4 { import where net ~ [ 198.18.3.0/24{32,32} ]; };
    interface "dp0";
}
protocol bfd {
    interface "dp0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}
protocol bgp upstream {
    local 198.18.0.$1 as 65001;
    neighbor 198.18.0.254 as 65000;
    hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 3;
    bfd on;
    ipv4 { import none; export where source = RTS_DEVICE && net.len = 32; };
}
EOF
}

bird_router() {
    cat <<EOF
log "$STATE/bird-rt.log" all;
router id 198.18.0.254;
protocol device { scan time 1; }
protocol kernel {
    ipv4 { import none; export all; };
    merge paths on;
}
protocol bfd {
    interface "rt0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}
template bgp director {
    local 198.18.0.254 as 65000;
    hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 3;
    bfd on;
    ipv4 { import where net ~ [ 198.18.3.0/24{32,32} ]; export none; };
}
protocol bgp d1 from director { neighbor 198.18.0.1 as 65001; }
protocol bgp d2 from director { neighbor 198.18.0.2 as 65001; }
protocol bgp d3 from director { neighbor 198.18.0.3 as 65001; }
EOF
}

up_bgp() {
    need bird bird2
    mkdir -p "$STATE"
    local c=$ID-c rt=$ID-rt s=$ID-s vip=198.18.3.100
    for n in c rt s d1 d2 d3 r1 r2; do mkns "$ID-$n"; done
    ip -n "$s" link add br0 type bridge
    ip -n "$s" link set br0 up
    veth "$c" c0 "$rt" rt-c
    ip -n "$c" addr add 198.18.2.2/24 dev c0
    ip -n "$c" route add default via 198.18.2.1
    ip -n "$rt" addr add 198.18.2.1/24 dev rt-c
    veth "$rt" rt0 "$s" sw-rt
    ip -n "$s" link set sw-rt master br0
    ip -n "$rt" addr add 198.18.0.254/24 dev rt0
    ip netns exec "$rt" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
    local i
    for i in 1 2 3; do
        veth "$ID-d$i" d0 "$s" "sw-d$i"
        dpdk_only "$ID-d$i" d0
        ip -n "$s" link set "sw-d$i" master br0
    done
    i=0
    for r in r1 r2; do
        i=$((i + 1))
        local ns=$ID-$r
        veth "$ns" eth0 "$s" "sw-$r"
        ip -n "$s" link set "sw-$r" master br0
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
            net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
        ip -n "$ns" addr add "198.18.0.1$i/24" dev eth0
        ip -n "$ns" addr add "$vip/32" dev lo
        ip -n "$ns" route add default via 198.18.0.254
        servers "$i" "$vip" 0.0.0.0
        ip netns exec "$ns" python3 "$HERE/testnet-stream.py" server "rs$i" 9000 \
            >"$STATE/stream-$r.log" 2>&1 &
    done
    bird_router >"$STATE/bird-rt.conf"
    ip netns exec "$rt" bird -c "$STATE/bird-rt.conf" -s "$STATE/bird-rt.ctl" -P "$STATE/bird-rt.pid"
    for i in 1 2 3; do
        bird_director "$i" >"$STATE/bird-d$i.conf"
        ip netns exec "$ID-d$i" bird -c "$STATE/bird-d$i.conf" -s "$STATE/bird-d$i.ctl" \
            -P "$STATE/bird-d$i.pid"
    done
    wait_http
}

up() {
    down >/dev/null 2>&1 || true
    case "$MODE" in
        nat | fullnat) ;;
        dr | tun) up_segment; return ;;
        bgp) up_bgp; return ;;
        *) echo "testnet: unknown mode $MODE (nat, fullnat, dr, tun, bgp, nat6, fullnat6, dr6, tun6)" >&2; exit 2 ;;
    esac
    mkdir -p "$STATE"
    local c=$ID-c d=$ID-d s=$ID-s
    for n in c d s r1 r2; do mkns "$ID-$n"; done
    veth "$c" c0 "$d" d0
    veth "$d" d1 "$s" sw-d1
    dpdk_only "$d" d0
    dpdk_only "$d" d1
    ip -n "$s" link add br0 type bridge
    ip -n "$s" link set br0 up
    ip -n "$s" link set sw-d1 master br0
    ip -n "$c" addr add 198.18.0.2/24 dev c0
    ip -n "$c" route add default via 198.18.0.1
    addr6 "$c" 2001:2::2/64 c0
    [ "$V6" = 1 ] && ip -n "$c" -6 route add default via 2001:2::1
    local i=0
    for r in r1 r2; do
        i=$((i + 1))
        veth "$ID-$r" eth0 "$s" "sw-$r"
        ip -n "$s" link set "sw-$r" master br0
        ip -n "$ID-$r" addr add "198.18.1.1$i/24" dev eth0
        addr6 "$ID-$r" "2001:2:1::1$i/64" eth0
        if [ "$MODE" = nat ]; then
            ip -n "$ID-$r" route add default via 198.18.1.1
            [ "$V6" = 1 ] && ip -n "$ID-$r" -6 route add default via 2001:2:1::1
        else
            ip netns exec "$ID-$r" python3 "$HERE/testnet-toa.py" eth0 80 "$STATE/toa-$r.log" \
                >"$STATE/toa-sniffer-$r.log" 2>&1 &
        fi
        servers "$i" "198.18.1.1$i" "198.18.1.1$i"
    done
    wait_http
}

down() {
    local n
    for n in c d s r1 r2 rt d1 d2 d3; do
        if ip netns list | grep -qw "^$ID-$n"; then
            ip netns pids "$ID-$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
        fi
    done
    sleep 0.2
    for n in c d s r1 r2 rt d1 d2 d3; do
        if ip netns list | grep -qw "^$ID-$n"; then
            ip netns pids "$ID-$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
            ip netns del "$ID-$n"
        fi
    done
    rm -rf "$STATE"
}

check() {
    [ "$(id -u)" = 0 ] || { echo "not root"; exit 1; }
    need ip iproute2
    need ethtool ethtool
    need python3 python3
    ip netns add "rvs-probe-$$" 2>/dev/null || { echo "cannot create network namespaces"; exit 1; }
    ip netns del "rvs-probe-$$"
}

case "$cmd" in
    up) need ip iproute2; need ethtool ethtool; need python3 python3; up ;;
    down) down ;;
    check) check ;;
    *) echo "usage: $0 up ID [nat|fullnat|dr|tun|bgp|nat6|fullnat6|dr6|tun6] | down ID | check" >&2; exit 2 ;;
esac
