#!/usr/bin/env bash
# Install what rvs needs on a fresh Debian 12 machine: DPDK 22.11 headers and PMDs, libclang for
# bindgen, pkg-config, the tools the namespace tests and the demo use, and what `make deb` and its
# test use (dpkg-dev for dpkg-shlibdeps, man-db for man -w), bird2 for the BGP/ECMP failover
# test, keepalived (its `keepalived -t` is the oracle of rvs-keepalived's parser tests; openssl
# makes the HTTPS test servers' keys), and the peers of the comparison rig and the load test
# (wrk, nginx, haproxy, nftables, kmod for modprobe). Their system services are not wanted: the
# tests and the rig start their own birds, nginxes and haproxies inside their namespaces, and
# keepalived must not program anything on this host, so the services are stopped and disabled.
# Idempotent: when every package is already there it does nothing (no apt-get update); otherwise
# one apt-get update, then one install of everything missing.
#   install-deps.sh        what the build, the demo and the tests need
#   install-deps.sh bgp    bird2 only (what the BGP test runs when it does not find bird)
#   install-deps.sh compare  the comparison rig's peers only
set -euo pipefail
PKGS="libdpdk-dev libclang-dev pkg-config iproute2 ethtool curl python3 procps iputils-ping tcpdump dpkg-dev man-db bird2 keepalived openssl"
COMPARE_PKGS="wrk nginx-light haproxy nftables kmod"
PKGS="$PKGS $COMPARE_PKGS"
if [ "${1:-}" = bgp ]; then
    PKGS="bird2"
elif [ "${1:-}" = compare ]; then
    PKGS="$COMPARE_PKGS"
fi
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: missing packages:$missing (run as root to install them)" >&2
        exit 1
    fi
    echo "install-deps: installing$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # The packages enable and start their services (systemd, or the init script where systemd
    # does not run); the tests and the rig start their own instances in their namespaces.
    for pair in bird2:bird nginx-light:nginx haproxy:haproxy keepalived:keepalived; do
        [[ " $missing " == *" ${pair%%:*} "* ]] || continue
        svc=${pair#*:}
        if [ -d /run/systemd/system ]; then
            systemctl disable --now "$svc" >/dev/null 2>&1 || true
        else
            invoke-rc.d "$svc" stop >/dev/null 2>&1 || true
            update-rc.d "$svc" disable >/dev/null 2>&1 || true
        fi
    done
fi
if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] || { echo "install-deps: cargo not found (install Rust stable with rustup)" >&2; exit 1; }
fi
