#!/usr/bin/env bash
# Boots the e2e guest image under plain QEMU TCG (no Xen) on the PC the e2e
# guests get: i440FX + PIIX3 IDE (hda boot.img through SeaBIOS -> SYSLINUX ->
# int 13h, hdb data.img, hdc cd.iso), -m 256, and with QEMU_BOOT_DEVICES=full
# (the default) also an e1000 and the standard VGA. Prints the seconds from
# QEMU's start to the guest's `E2E boot init` marker and the guest's own uptime
# there (its kernel's boot); with QEMU_BOOT_DEVICES=shared (no NIC, no VGA: the
# shared guest's machine) it waits for `E2E done` and prints the disk and cdrom
# markers, a functional check of a guest kernel without Xen.
#   test/e2e/guest/qemu-boot.sh [ours|debian]   (default ours: scripts/build-guest-kernel.sh)
# Needs the e2e cache's busybox (and kernel, for debian): a run of the suite made
# them; BUSYBOX=dir / KERNEL=dir name other copies. The images are built into
# build/e2e/qemu-boot-<kernel>/ with host.sh's own build_guest (not cached).
# Env: QEMU_BOOT_TIMEOUT (s, default 600), QEMU_BOOT_DEVICES (full|shared).
set -euo pipefail
. "$(dirname "$0")/../lib/host.sh"
which=${1:-ours}
devices=${QEMU_BOOT_DEVICES:-full}
case $devices in full | shared) ;; *) die "QEMU_BOOT_DEVICES=$devices is neither full nor shared" ;; esac
first() { for d in "$@"; do [ -d "$d" ] && { echo "${d%/}"; return; }; done; }
BUSYBOX=${BUSYBOX:-$(first "$CACHE"/busybox-*/)}
[ -n "$BUSYBOX" ] && [ -f "$BUSYBOX/busybox" ] || die "no busybox in $CACHE (run the e2e suite once, or BUSYBOX=dir)"
case $which in
ours) GUESTK=$(bash "$ROOT/scripts/build-guest-kernel.sh") || die "scripts/build-guest-kernel.sh failed" ;;
debian)
  KERNEL=${KERNEL:-$(first "$CACHE"/kernel-*/)}
  [ -n "$KERNEL" ] && [ -f "$KERNEL/vmlinuz" ] || die "no Debian kernel in $CACHE (run the e2e suite once, or KERNEL=dir)"
  GUESTK=$KERNEL ;;
*) die "usage: $0 [ours|debian]" ;;
esac
OUT=$BUILD/qemu-boot-$which
rm -rf "$OUT" && mkdir -p "$OUT"
(set -e; build_guest)
log=$OUT/serial.log
: >"$log"
extra=(-nic none -vga none)
[ "$devices" = full ] && extra=(-nic user,model=e1000 -vga std)
t0=$(date +%s.%N)
nice -n 19 qemu-system-x86_64 -accel tcg -machine pc -smp 1 -m 256 -nographic -no-reboot \
  -drive "file=$OUT/boot.img,if=ide,index=0,media=disk,format=raw,snapshot=on" \
  -drive "file=$OUT/data.img,if=ide,index=1,media=disk,format=raw,snapshot=on" \
  -drive "file=$OUT/cd.iso,if=ide,index=2,media=cdrom,format=raw" \
  "${extra[@]}" -serial "file:$log" -monitor none </dev/null >"$OUT/qemu.log" 2>&1 &
qemu=$!
init_s="" want='E2E boot init'
[ "$devices" = shared ] && want='E2E done'
for _ in $(seq 1 $((${QEMU_BOOT_TIMEOUT:-600} * 10))); do
  kill -0 $qemu 2>/dev/null || break
  if [ -z "$init_s" ] && grep -aq 'E2E boot init' "$log"; then
    init_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  fi
  grep -aq -E "$want|Kernel panic" "$log" && break
  sleep 0.1
done
kill $qemu 2>/dev/null || true
wait $qemu 2>/dev/null || true
# (SeaBIOS's and SYSLINUX's escape sequences may share the first marker's line)
markers=$(tr -d '\r' <"$log" | grep -a -o 'E2E .*' | grep -v '^E2E mark' | tr '\n' ';')
echo "qemu-boot $which devices=$devices vmlinuz_bytes=$(stat -c %s "$GUESTK/vmlinuz") init_xz_bytes=$(stat -c %s "$OUT/init.xz")" \
  "qemu_to_init_s=${init_s:-none} markers: ${markers:-none}"
[ -n "$init_s" ] || { tail -c 2000 "$log" | tr -c '[:print:]\n' '.' >&2; exit 1; }
