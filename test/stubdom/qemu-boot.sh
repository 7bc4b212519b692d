#!/usr/bin/env bash
# Boots build/stubdom/{kernel,rootfs} under plain QEMU TCG (no Xen) with 128 MiB,
# like the stub domain's default memory. /init must unpack, load its modules,
# mount the squashfs, run node once (`stubdom.selftest`: start-up time, RSS,
# memory in use) and then fail cleanly with "STUBDOM FAIL no xenstore".
# Prints the STUBDOM lines; exit 0 when the clean failure was seen.
# Env: QEMU_BOOT_MEM (MiB, default 128), QEMU_BOOT_TIMEOUT (s),
# QEMU_BOOT_ICOUNT=N: -icount shift=N, guest time counts instructions (2^N ns
# each) instead of host time, so figures do not depend on the host's load (a
# shared machine); compare icount figures only with icount figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
# QEMU_BOOT_KERNEL / QEMU_BOOT_ROOTFS / QEMU_BOOT_LOG: boot other files (e.g.
# to compare kernels) without touching build/stubdom. QEMU_BOOT_APPEND: more
# kernel parameters (after the kernel's built-in ones, e.g. rootfstype=tmpfs
# to see the initramfs limit rootfs/kernel.config avoids).
k=${QEMU_BOOT_KERNEL:-build/stubdom/kernel} r=${QEMU_BOOT_ROOTFS:-build/stubdom/rootfs}
[ -f $k ] && [ -f $r ] || { echo "qemu-boot: run scripts/build-stubdom.sh first" >&2; exit 1; }
log=${QEMU_BOOT_LOG:-build/stubdom/qemu-boot.log}
rm -f $log # a new file: build trees may share hard-linked copies
: >$log
icount=()
[ -z "${QEMU_BOOT_ICOUNT:-}" ] || icount=(-icount "shift=$QEMU_BOOT_ICOUNT,sleep=on")
qemu-system-x86_64 -accel tcg -smp 1 -m "${QEMU_BOOT_MEM:-128}" "${icount[@]}" \
  -nographic -no-reboot -kernel $k -initrd $r \
  -append "console=ttyS0 panic=-1 stubdom.selftest ${QEMU_BOOT_APPEND:-}" -serial mon:stdio -monitor none \
  </dev/null >$log 2>&1 &
qemu=$!
# bounded: stop at the first verdict (or a panic), or after the timeout
for _ in $(seq 1 $((${QEMU_BOOT_TIMEOUT:-180} * 2))); do
  kill -0 $qemu 2>/dev/null || break
  grep -aq -E 'STUBDOM FAIL|Kernel panic' $log && { sleep 3; break; }
  sleep 0.5
done
kill $qemu 2>/dev/null || true
wait $qemu 2>/dev/null || true
grep -a -E 'Command line:|Memory:|Freeing initrd|Initramfs|STUBDOM|stubdom:|Kernel panic' $log || true
grep -aq 'STUBDOM FAIL no xenstore' $log
