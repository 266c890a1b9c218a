#!/usr/bin/env bash
# The rvs test network (docs/architecture.md section 7): network namespaces joined by veth pairs, made and
# removed by the test that uses them. Only 198.18.0.0/15 is used, only inside these namespaces.
#
#   testnet.sh up ID [MODE]  create a topology, namespaces named ID-*; MODE nat (default, below),
#                         fullnat, dr or tun (further below)
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
set -euo pipefail

cmd=${1:-}
ID=${2:-rvs}
MODE=${3:-nat}
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
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
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
    ip netns exec "$ID-$r" python3 -m http.server 80 --bind "$3" \
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
    ip -n "$s" link set sw-c master br0
    ip -n "$s" link set sw-d0 master br0
    ip -n "$c" addr add 198.18.0.2/24 dev c0
    local i=0
    for r in r1 r2; do
        i=$((i + 1))
        local ns=$ID-$r
        veth "$ns" eth0 "$s" "sw-$r"
        ip -n "$s" link set "sw-$r" master br0
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
            net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
        ip -n "$ns" addr add "198.18.0.1$i/24" dev eth0
        if [ "$MODE" = dr ]; then
            ip -n "$ns" addr add "$vip/32" dev lo
        else
            ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
                net.ipv4.conf.eth0.rp_filter=0
            ip -n "$ns" tuntap add dev tun0 mode tun
            ip netns exec "$ns" sysctl -qw net.ipv4.conf.tun0.rp_filter=0
            ip -n "$ns" addr add "$vip/32" dev tun0
            ip -n "$ns" link set tun0 up
            ip netns exec "$ns" python3 "$HERE/testnet-ipip.py" tun0 >"$STATE/ipip-$r.log" 2>&1 &
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

up() {
    down >/dev/null 2>&1 || true
    case "$MODE" in
        nat | fullnat) ;;
        dr | tun) up_segment; return ;;
        *) echo "testnet: unknown mode $MODE (nat, fullnat, dr, tun)" >&2; exit 2 ;;
    esac
    mkdir -p "$STATE"
    local c=$ID-c d=$ID-d s=$ID-s
    for n in c d s r1 r2; do mkns "$ID-$n"; done
    veth "$c" c0 "$d" d0
    veth "$d" d1 "$s" sw-d1
    ip -n "$s" link add br0 type bridge
    ip -n "$s" link set br0 up
    ip -n "$s" link set sw-d1 master br0
    ip -n "$c" addr add 198.18.0.2/24 dev c0
    ip -n "$c" route add default via 198.18.0.1
    local i=0
    for r in r1 r2; do
        i=$((i + 1))
        veth "$ID-$r" eth0 "$s" "sw-$r"
        ip -n "$s" link set "sw-$r" master br0
        ip -n "$ID-$r" addr add "198.18.1.1$i/24" dev eth0
        if [ "$MODE" = nat ]; then
            ip -n "$ID-$r" route add default via 198.18.1.1
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
    for n in c d s r1 r2; do
        if ip netns list | grep -qw "^$ID-$n"; then
            ip netns pids "$ID-$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
        fi
    done
    sleep 0.2
    for n in c d s r1 r2; do
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
    *) echo "usage: $0 up ID [nat|fullnat|dr|tun] | down ID | check" >&2; exit 2 ;;
esac
