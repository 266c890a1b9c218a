#!/usr/bin/env bash
# Install what rvs needs on a fresh Debian 12 machine: DPDK 22.11 headers and PMDs, libclang for
# bindgen, pkg-config, the tools the namespace tests and the demo use, and what `make deb` and its
# test use (dpkg-dev for dpkg-shlibdeps, man-db for man -w), and bird2 for the BGP/ECMP failover
# test (its system service is not wanted: the test runs its own birds in its namespaces), and
# keepalived, whose `keepalived -t` is the oracle of rvs-keepalived's parser tests (its service is
# not wanted either: rvs-keepalived does its job); openssl makes the HTTPS test servers' keys.
# Idempotent: when every package is already there it does nothing (no apt-get update); otherwise
# one apt-get update, then one install of everything missing.
#   install-deps.sh        what the build, the demo and the tests need
#   install-deps.sh bgp    bird2 only (what the BGP test runs when it does not find bird)
set -euo pipefail
PKGS="libdpdk-dev libclang-dev pkg-config iproute2 ethtool curl python3 procps iputils-ping tcpdump dpkg-dev man-db bird2 keepalived openssl"
if [ "${1:-}" = bgp ]; then
    PKGS="bird2"
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
    if [[ " $missing " == *" bird2 "* ]] && command -v systemctl >/dev/null 2>&1; then
        # The package enables bird.service where systemd runs; the test starts its own birds.
        systemctl disable --now bird >/dev/null 2>&1 || true
    fi
    if [[ " $missing " == *" keepalived "* ]] && command -v systemctl >/dev/null 2>&1; then
        # Only its parser is used (`keepalived -t`); it must not program anything on this host.
        systemctl disable --now keepalived >/dev/null 2>&1 || true
    fi
fi
if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] || { echo "install-deps: cargo not found (install Rust stable with rustup)" >&2; exit 1; }
fi
