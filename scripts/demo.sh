#!/usr/bin/env bash
# The rvs demo: a client namespace reaches two real HTTP servers through rvsd running on DPDK in
# NAT mode, configured with ipvsadm exactly as an LVS operator does it. Usage: demo.sh BIN_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release}")
ID=rvsdemo
export RVS_SOCKET=/run/rvs/demo.sock
ipvsadm() { "$BIN/ipvsadm" "$@"; }

if [ "$(id -u)" != 0 ]; then echo "demo: needs root (network namespaces)" >&2; exit 1; fi
RVSD_PID=""
cleanup() {
    [ -n "$RVSD_PID" ] && kill -TERM "$RVSD_PID" 2>/dev/null && wait "$RVSD_PID" 2>/dev/null || true
    scripts/testnet.sh down "$ID"
}
trap cleanup EXIT

echo "== test network: client $ID-c, director $ID-d (rvsd on DPDK af_packet), real servers $ID-r1/$ID-r2"
scripts/testnet.sh up "$ID"
ip netns exec "$ID-d" "$BIN/rvsd" --config conf/demo.toml >"/tmp/rvs-testnet/$ID/rvsd.log" 2>&1 &
RVSD_PID=$!
for _ in $(seq 1 100); do
    ipvsadm -Ln >/dev/null 2>&1 && break
    kill -0 "$RVSD_PID" 2>/dev/null || { cat "/tmp/rvs-testnet/$ID/rvsd.log"; exit 1; }
    sleep 0.1
done

echo "== configure with ipvsadm"
set -x
ipvsadm -A -t 198.18.0.100:80 -s wrr
ipvsadm -a -t 198.18.0.100:80 -r 198.18.1.11:80 -m -w 3
ipvsadm -a -t 198.18.0.100:80 -r 198.18.1.12:80 -m -w 1
{ set +x; } 2>/dev/null

echo "== 40 requests from the client: curl http://198.18.0.100/"
declare -A hits=()
fails=0
for _ in $(seq 1 40); do
    if body=$(ip netns exec "$ID-c" curl -s --max-time 5 http://198.18.0.100/); then
        hits[$body]=$(( ${hits[$body]:-0} + 1 ))
    else
        fails=$((fails + 1))
    fi
done
for rs in rs1 rs2; do echo "   $rs (weight $([ $rs = rs1 ] && echo 3 || echo 1)): ${hits[$rs]:-0} responses"; done
echo "   failed: $fails"

echo "== ipvsadm -Ln"
ipvsadm -Ln
echo "== ipvsadm -Lnc | head"
ipvsadm -Lnc | head -n 6 || true

kill -TERM "$RVSD_PID"; wait "$RVSD_PID"; RVSD_PID=""
echo "== rvsd stopped; its log:"
cat "/tmp/rvs-testnet/$ID/rvsd.log"
[ "$fails" = 0 ] && [ "${hits[rs1]:-0}" = 30 ] && [ "${hits[rs2]:-0}" = 10 ]
