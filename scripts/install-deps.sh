#!/usr/bin/env bash
# Install what rvs needs on a fresh Debian 12 machine: DPDK 22.11 headers and PMDs, libclang for
# bindgen, pkg-config, the tools the namespace tests and the demo use, and what `make deb` and its
# test use (dpkg-dev for dpkg-shlibdeps, man-db for man -w). Idempotent: when every
# package is already there it does nothing (no apt-get update).
set -euo pipefail
PKGS="libdpdk-dev libclang-dev pkg-config iproute2 ethtool curl python3 procps iputils-ping tcpdump dpkg-dev man-db"
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
fi
if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] || { echo "install-deps: cargo not found (install Rust stable with rustup)" >&2; exit 1; }
fi
