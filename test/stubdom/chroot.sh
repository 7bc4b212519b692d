#!/usr/bin/env bash
# Runs the stub domain's userland on this machine (root: chroot): the tree
# build-stubdom.sh packed (build/stubdom/root) with the squashfs image's tree
# (build/stubdom/image) where /init mounts it. Checks that busybox, the
# xenstore tools, vchan-socket-proxy and node resolve their libraries from the
# image alone and that the bundle loads (koffi and our addon included).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d build/stubdom/root ] && [ -d build/stubdom/image ] || { echo "chroot: run scripts/build-stubdom.sh first" >&2; exit 1; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
cp -a build/stubdom/root/. "$t/"
cp -a build/stubdom/image/. "$t/opt/stubdm/"
run_in() { chroot "$t" /usr/bin/env -i PATH=/bin:/sbin:/usr/bin:/usr/sbin STUBDM_NATIVE_DIR=/opt/stubdm/native "$@"; }
check() { # check WHAT EXPECTED-OUTPUT-REGEX CMD...: the command runs and says what it should
  local what=$1 re=$2 out
  shift 2
  out=$(run_in "$@" 2>&1 || true)
  if grep -qE "$re" <<<"$out"; then echo "ok   $what"; else echo "FAIL $what: $out" >&2; fail=1; fi
}
fail=0
check "busybox sh" '^ok$' /bin/sh -c 'echo ok'
check "xenstore-read (no xenstore here)" 'xs_open' /usr/bin/xenstore-read target
check "vchan-socket-proxy" 'usage' /usr/bin/vchan-socket-proxy
# as /init runs it: the launcher, with /init's node flags (its code cache is made for them)
flags=$(sh -c '. rootfs/lib/stubdom.sh && printf %s "$STUBDM_NODE_FLAGS"')
# shellcheck disable=SC2086 # flags are words
check "stubdm --help (bundle)" '^Usage: stubdm' /opt/stubdm/node $flags /opt/stubdm/stubdm-start.cjs --help
# shellcheck disable=SC2086
check "stubdm's code cache accepted with /init's flags" '^0$' /bin/sh -c "[ -s /opt/stubdm/stubdm.cjs.cache ] && /opt/stubdm/node $flags /opt/stubdm/stubdm-start.cjs --help 2>&1 >/dev/null | grep -c rejected"
# shellcheck disable=SC2086
check "stubdm says why it cannot run (koffi, Xen libraries)" 'cannot open /dev/xen/privcmd' /opt/stubdm/node $flags /opt/stubdm/stubdm-start.cjs -xen-domid 1 -machine xenfv -m 64
check "stubdm-kill-guest (libxendevicemodel)" 'xendevicemodel_open failed' /opt/stubdm/bin/stubdm-kill-guest 1 crash
exit $fail
