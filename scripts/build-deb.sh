#!/usr/bin/env bash
# Build the rvs Debian package from binaries cargo has already built.
#   scripts/build-deb.sh [BIN_DIR] [OUT_DIR]     (defaults: target/release, target/debian)
# BIN_DIR must hold rvsd, ipvsadm, rvsctl, rvs-keepalived and examples/man (`make deb` builds them in release;
# the package test uses the debug build `make test` has just made). Prints the .deb's path.
#
# Why dpkg-deb and not cargo-deb: dpkg-deb is part of dpkg, on every Debian machine already,
# while cargo-deb is a cargo plugin that would have to be compiled from crates.io outside the
# project's install script (which installs Debian packages only). The package needs maintainer
# scripts, a conffile, a systemd unit, generated and hand-written man pages and dpkg-shlibdeps'
# library dependencies; all of these are a few lines each here, with nothing hidden in a tool.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release}")
OUT=$(realpath -m "${2:-target/debian}")
for b in rvsd ipvsadm rvsctl rvs-keepalived examples/man; do
    [ -x "$BIN/$b" ] || { echo "build-deb: $BIN/$b is missing (cargo build --workspace --bins --examples)" >&2; exit 1; }
done
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
ARCH=$(dpkg --print-architecture)
STAGE="$OUT/rvs_${VERSION}_${ARCH}"
DEB="$OUT/rvs_${VERSION}_${ARCH}.deb"
rm -rf "$STAGE" "$DEB"
mkdir -p "$STAGE/DEBIAN"

# Programs. ipvsadm is rvs's drop-in at the path Debian's ipvsadm package uses (see Conflicts).
for b in rvsd ipvsadm rvsctl rvs-keepalived; do
    install -D -m 0755 "$BIN/$b" "$STAGE/usr/sbin/$b"
    strip --strip-unneeded "$STAGE/usr/sbin/$b"
done
install -m 0755 ctl/scripts/ipvsadm-save ctl/scripts/ipvsadm-restore "$STAGE/usr/sbin/"

# Service, configuration (a conffile: dpkg keeps the operator's edits on upgrade and removal).
install -D -m 0644 packaging/rvsd.service "$STAGE/lib/systemd/system/rvsd.service"
install -D -m 0644 packaging/rvs-keepalived.service "$STAGE/lib/systemd/system/rvs-keepalived.service"
install -D -m 0644 conf/rvsd.toml "$STAGE/etc/rvs/rvsd.toml"

# Manual pages: rvsd(8) generated from rvsd's clap definition, the others written by hand.
MAN="$STAGE/usr/share/man"
mkdir -p "$MAN/man5" "$MAN/man8"
"$BIN/examples/man" "$MAN/man8" >/dev/null
cp docs/man/rvsd.toml.5 "$MAN/man5/"
cp docs/man/ipvsadm.8 docs/man/rvsctl.8 docs/man/rvs-keepalived.8 "$MAN/man8/"
for alias in ipvsadm-save ipvsadm-restore; do
    echo ".so man8/ipvsadm.8" > "$MAN/man8/$alias.8"
done
gzip -9n "$MAN"/man5/* "$MAN"/man8/*

# Documentation and samples; the samples' rules paths point at their installed copies.
DOC="$STAGE/usr/share/doc/rvs"
install -D -m 0644 README.md "$DOC/README.md"
install -D -m 0644 -t "$DOC/docs" docs/*.md
install -D -m 0644 packaging/debian/copyright "$DOC/copyright"
mkdir -p "$DOC/examples"
for m in nat dr tun fullnat; do
    sed "s#\"conf/$m.rules\"#\"/usr/share/doc/rvs/examples/$m.rules\"#" "conf/$m.toml" > "$DOC/examples/$m.toml"
    install -m 0644 "conf/$m.rules" "$DOC/examples/"
done
install -m 0644 conf/grafana-rvs.json "$DOC/examples/"
# keepalived files rvs-keepalived reads (the include tree keeps its conf.d/).
mkdir -p "$DOC/examples/keepalived/conf.d"
install -m 0644 conf/keepalived/*.conf "$DOC/examples/keepalived/"
install -m 0644 conf/keepalived/conf.d/*.conf "$DOC/examples/keepalived/conf.d/"
printf 'rvs (%s) unstable; urgency=medium\n\n  * Built from the rvs repository (%s).\n\n -- rvs developers <rvs@example.invalid>  %s\n' \
    "$VERSION" "$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" "$(date -R)" \
    | gzip -9n > "$DOC/changelog.Debian.gz"
chmod 0644 "$DOC/changelog.Debian.gz"

# Maintainer scripts and conffiles.
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$STAGE/DEBIAN/"
echo /etc/rvs/rvsd.toml > "$STAGE/DEBIAN/conffiles"

# Shared-library dependencies of the programs (DPDK 22.11's librte_*, libc, libnuma ...).
SHL=$(mktemp -d)
mkdir -p "$SHL/debian"
printf 'Source: rvs\n\nPackage: rvs\nArchitecture: any\n' > "$SHL/debian/control"
SHLIBS=$(cd "$SHL" && dpkg-shlibdeps -O -e"$STAGE/usr/sbin/rvsd" -e"$STAGE/usr/sbin/ipvsadm" \
    -e"$STAGE/usr/sbin/rvsctl" -e"$STAGE/usr/sbin/rvs-keepalived" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
rm -rf "$SHL"
[ -n "$SHLIBS" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
# DPDK's Debian packages carry its ABI version in their names (librte-eal23 for 22.11,
# librte-eal24 for 23.11 ...): the plugins rvsd loads at run time must be of the same one.
ABI=$(grep -o 'librte-eal[0-9]*' <<<"$SHLIBS" | head -n 1 | sed 's/^librte-eal//')
[ -n "$ABI" ] || { echo "build-deb: rvsd does not link librte_eal?" >&2; exit 1; }
rte() { # rte NAME...: Debian package names of DPDK libraries of this ABI
    local out="" n
    for n in "$@"; do
        case "$n" in *[0-9]) out="$out, librte-$n-$ABI" ;; *) out="$out, librte-$n$ABI" ;; esac
    done
    echo "${out#, }"
}

SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: rvs
Version: $VERSION
Architecture: $ARCH
Maintainer: rvs developers <rvs@example.invalid>
Section: net
Priority: optional
Installed-Size: $SIZE
Depends: $SHLIBS, $(rte mempool-ring)
Recommends: dpdk, $(rte net-af-packet net-i40e net-ixgbe net-mlx5 net-virtio net-vmxnet3 net-tap net-pcap)
Conflicts: ipvsadm
Replaces: ipvsadm
Provides: ipvsadm
Description: kernel-bypass Layer-4 load balancer (LVS director) on DPDK
 rvs forwards connections to real servers with the Linux IPVS methods (NAT,
 direct routing, IPIP tunnelling) and FULLNAT, with all 14 IPVS schedulers
 and persistence, on NICs driven by DPDK.
 .
 The package contains the daemon rvsd with its systemd unit and default
 configuration (/etc/rvs/rvsd.toml), rvsctl for the DPDK ports,
 rvs-keepalived (keepalived's virtual_server health checks, from the
 operator's /etc/keepalived/keepalived.conf, applied to rvsd), and an
 ipvsadm (with ipvsadm-save and ipvsadm-restore) that speaks ipvsadm 1.31's
 command line and output to rvsd. It replaces Debian's ipvsadm package,
 which administers the kernel's IPVS: a director runs one of the two.
CONTROL
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/conffiles" "$STAGE/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
rm -rf "$STAGE"
echo "$DEB"
