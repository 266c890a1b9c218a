#!/usr/bin/env bash
# The Debian package, end to end on this machine: build it from BIN_DIR's binaries, install it
# with dpkg -i, use what it installed (programs, man pages, conffile, samples, systemd unit),
# remove it (the conffile stays), purge it (nothing stays).
#   scripts/test-deb.sh [BIN_DIR]      (default target/debug, as `make test` builds it)
# Needs root (dpkg). Without root it prints SKIPPED; with CI set it fails instead. It refuses to
# run where a package named rvs or Debian's ipvsadm is installed, rather than replace them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debian-test-bin-unset}
[ "$BIN" = target/debian-test-bin-unset ] && BIN=target/debug

skip() {
    if [ -n "${CI:-}" ]; then echo "deb test: cannot run: $*" >&2; exit 1; fi
    echo "SKIPPED: deb test: $*"
    exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' rvs 2>/dev/null | grep -q 'ok installed'; then
    skip "a package named rvs is already installed; not replacing it"
fi
if dpkg-query -W -f='${Status}' ipvsadm 2>/dev/null | grep -q 'ok installed'; then
    skip "Debian's ipvsadm is installed (rvs conflicts with it); not removing it"
fi

# One package test at a time on this machine (other checkouts may run theirs).
exec 9>/var/lock/rvs-deb-test.lock
flock -w 300 9 || { echo "deb test: lock busy for 300 s" >&2; exit 1; }

OUT=$(mktemp -d /tmp/rvs-deb-test.XXXXXX)
passed=0
failed=0
installed=""
cleanup() {
    [ -n "$installed" ] && dpkg --purge rvs >/dev/null 2>&1 || true
    rm -rf "$OUT"
}
trap cleanup EXIT
check() { # check NAME COMMAND...: run COMMAND, count it
    local name=$1
    shift
    if out=$("$@" 2>&1); then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        echo "$out" | sed 's/^/     /' | head -n 20
    fi
}
has() { grep -q -- "$1" <<<"$2"; }

DEB=$(scripts/build-deb.sh "$BIN" "$OUT")
check "package builds" test -s "$DEB"
check "package metadata: conflicts/provides ipvsadm, conffile" bash -c '
    i=$(dpkg-deb -I "$1"); grep -q "^ Conflicts: ipvsadm$" <<<"$i" && grep -q "^ Provides: ipvsadm$" <<<"$i" &&
    dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles | grep -qx /etc/rvs/rvsd.toml' _ "$DEB"

# Dependencies are the DPDK runtime the build machine has; dpkg -i does not fetch anything.
check "dpkg -i" dpkg -i "$DEB"
installed=yes
check "installed: rvsd --version" bash -c '/usr/sbin/rvsd --version | grep -Eq "^rvsd [0-9]+\.[0-9]+\.[0-9]+ \("'
check "installed: ipvsadm -h (via PATH)" bash -c 'PATH=/usr/sbin:/usr/bin:/sbin:/bin; [ "$(command -v ipvsadm)" = /usr/sbin/ipvsadm ] && ipvsadm -h | head -n 1 | grep -q "^ipvsadm v1.31 "'
check "installed: ipvsadm-save finds the daemon missing cleanly" bash -c '
    RVS_SOCKET=/nonexistent/rvsd.sock /usr/sbin/ipvsadm-save -n; [ $? = 2 ]'
check "installed: rvsctl answers" bash -c '/usr/sbin/rvsctl help 2>&1 | grep -qi "link"'
check "installed: rvs-keepalived -t on the installed samples" bash -c '
    for f in lvs-nat lvs-dr dpvs-fullnat keepalived; do
        /usr/sbin/rvs-keepalived -t -f /usr/share/doc/rvs/examples/keepalived/$f.conf || exit 1
    done'
for page in rvsd ipvsadm rvsctl rvs-keepalived; do
    check "man -w $page" bash -c "[ \"\$(man -w $page)\" = /usr/share/man/man8/$page.8.gz ]"
done
# ipvsadm-save(8) and ipvsadm-restore(8) are .so links to ipvsadm(8), which man -w follows.
check "man -w ipvsadm-save" bash -c '[ "$(man -w ipvsadm-save)" = /usr/share/man/man8/ipvsadm.8.gz ] && man -P cat ipvsadm-restore 2>/dev/null | grep -q "ipvsadm-restore"'
check "man -w 5 rvsd.toml" bash -c '[ "$(man -w 5 rvsd.toml)" = /usr/share/man/man5/rvsd.toml.5.gz ]'
check "rvsd(8) is generated from the command line" bash -c 'man -P cat rvsd 2>/dev/null | grep -q -- "--check-config"'
check "default /etc/rvs/rvsd.toml is valid" /usr/sbin/rvsd --check-config /etc/rvs/rvsd.toml
for m in nat dr tun fullnat; do
    check "installed sample $m.toml is valid" /usr/sbin/rvsd --check-config /usr/share/doc/rvs/examples/$m.toml
done
check "unit installed" test -f /lib/systemd/system/rvsd.service
check "rvs-keepalived unit installed, reload is SIGHUP" grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' /lib/systemd/system/rvs-keepalived.service
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify loads the unit offline; it must not report anything about rvsd.service.
    check "systemd-analyze verify rvsd.service" bash -c '
        out=$(systemd-analyze verify /lib/systemd/system/rvsd.service 2>&1); rc=$?
        if grep -i "rvsd" <<<"$out"; then exit 1; fi; exit $rc'
    check "systemd-analyze verify rvs-keepalived.service" bash -c '
        out=$(systemd-analyze verify /lib/systemd/system/rvs-keepalived.service 2>&1); rc=$?
        if grep -i "rvs-keepalived" <<<"$out"; then exit 1; fi; exit $rc'
else
    echo "SKIPPED: systemd-analyze verify (systemd-analyze not installed)"
fi

# An edited conffile survives removal; purge removes it and everything else.
echo "# edited" >> /etc/rvs/rvsd.toml
check "dpkg -r" dpkg -r rvs
check "removal keeps the edited conffile" grep -qx "# edited" /etc/rvs/rvsd.toml
check "removal removes the programs" bash -c '! test -e /usr/sbin/rvsd && ! test -e /usr/sbin/ipvsadm && ! test -e /usr/sbin/rvs-keepalived'
check "dpkg --purge" dpkg --purge rvs
installed=""
check "purge leaves nothing" bash -c '! test -e /etc/rvs && ! test -e /usr/share/doc/rvs && ! test -e /lib/systemd/system/rvsd.service && ! dpkg-query -W rvs 2>/dev/null | grep -q .'

echo "deb test: $passed passed, $failed failed"
[ "$failed" = 0 ]
