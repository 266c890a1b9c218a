#!/usr/bin/env bash
# The rvs test network (DESIGN.md section 8): network namespaces joined by veth pairs, made and
# removed by the test that uses them. Only 198.18.0.0/15 is used, only inside these namespaces.
#
#   testnet.sh up ID      create the NAT topology below, namespaces named ID-*
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
# Each RS runs an HTTP server on port 80 answering its name ("rs1", "rs2").
set -euo pipefail

cmd=${1:-}
ID=${2:-rvs}
STATE=/tmp/rvs-testnet/$ID

need() { command -v "$1" >/dev/null 2>&1 || { echo "testnet: $1 not found (apt-get install $2)" >&2; exit 1; }; }

# Turn off every offload on a veth end: the kernel would otherwise hand DPDK's af_packet socket
# partially checksummed or GSO-sized frames (DESIGN.md section 8, veth gotcha).
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

up() {
    down >/dev/null 2>&1 || true
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
        ip -n "$ID-$r" route add default via 198.18.1.1
        mkdir -p "$STATE/www-$r"
        echo "rs$i" >"$STATE/www-$r/index.html"
        ip netns exec "$ID-$r" python3 -m http.server 80 --bind "198.18.1.1$i" \
            --directory "$STATE/www-$r" >"$STATE/http-$r.log" 2>&1 &
    done
    # Wait (bounded) until both HTTP servers listen.
    for r in r1 r2; do
        for _ in $(seq 1 50); do
            ip netns exec "$ID-$r" ss -ltn 2>/dev/null | grep -q ':80 ' && break
            sleep 0.1
        done
    done
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
    *) echo "usage: $0 up|down|check [ID]" >&2; exit 2 ;;
esac
