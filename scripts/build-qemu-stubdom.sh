#!/usr/bin/env bash
# Builds a Linux stub domain with Debian's QEMU (qemu-system-xen) as the device
# model: the peer stubdm replaces, as a column of the e2e benchmark
# (E2E_DMS=qemu-stubdom). Debian ships no stub-domain image, but its
# qemu-system-xen binary and libraries run in the same minimal stub domain:
#   build/qemu-stubdom/kernel  our stub kernel (scripts/build-stubdom-kernel.sh)
#   build/qemu-stubdom/rootfs  xz'ed newc cpio: rootfs/init-qemu + busybox +
#                              /opt/stubdm.sqfs (zstd squashfs: QEMU, the
#                              libraries it links, iPXE ROMs, VGA BIOSes,
#                              xenstore tools, vchan-socket-proxy,
#                              stubdm-kill-guest)
# /init is stubdm's stub-domain logic (rootfs/lib/stubdom.sh) with QEMU
# started instead of node (rootfs/lib/qemu-stubdom.sh), so both stub domains
# differ only in their device model.
# Cached: rebuilt only when an input changes. Options: --force.
# Install (by hand): stubdomain_kernel= / stubdomain_ramdisk= in xl.cfg, or copy
# over /usr/lib/xen-4.17/boot/qemu-stubdom-linux-{kernel,rootfs}.
set -euo pipefail
cd "$(dirname "$0")/.."
force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
  esac
done
out=build/qemu-stubdom
cache=build/cache
debs=$cache/debs
mkdir -p "$out" "$debs"
say() { echo "build-qemu-stubdom: $*" >&2; }
. scripts/lib/debs.sh

# QEMU and what it links (ldd of Debian 12's xen-qemu-system-i386), the
# option ROMs it loads for NICs (ipxe-qemu) and VGA (seabios), our init's tools.
libs=(libbz2-1.0 libc6 libdw1 libelf1 libfdt1 libffi8 libgcc-s1 libglib2.0-0
  libgstreamer-plugins-base1.0-0 libgstreamer1.0-0 libjpeg62-turbo liblz4-1 liblzma5 libopus0
  liborc-0.4-0 libpcre2-8-0 libpixman-1-0 libsasl2-2 libspice-server1 libssl3 libstdc++6
  libudev1 libunwind8 libusb-1.0-0 libxencall1 libxendevicemodel1 libxenevtchn1
  libxenforeignmemory1 libxengnttab1 libxenmisc4.17 libxenstore4 libxentoolcore1
  libxentoollog1 zlib1g libzstd1 libgnutls30 libgmp10 libnettle8 libhogweed6 libidn2-0
  libp11-kit0 libtasn1-6 libunistring2 libsystemd0 libcap2 libgcrypt20 libgpg-error0)
pkgs=(qemu-system-xen ipxe-qemu seabios busybox-static xenstore-utils xen-utils-4.17 "${libs[@]}")
fetch "${pkgs[@]}"
kdir=$(bash scripts/build-stubdom-kernel.sh)
bash scripts/build-native.sh >&2
kill_helper=build/stubdm-kill-guest
[ -x $kill_helper ] || { say "$kill_helper missing (scripts/build-native.sh)"; exit 1; }

hash=$({
  sha256sum scripts/build-qemu-stubdom.sh scripts/lib/debs.sh rootfs/init-qemu rootfs/lib/stubdom.sh \
    rootfs/lib/qemu-stubdom.sh "$kdir/bzImage" $kill_helper
  for p in "${pkgs[@]}"; do basename "$(deb_of "$p")"; done
} | sha256sum | cut -d' ' -f1)
if [ $force = 0 ] && [ -f $out/kernel ] && [ -f $out/rootfs ] && [ "$(cat $out/.inputs 2>/dev/null)" = "$hash" ]; then
  say "up to date ($out/rootfs $(du -m $out/rootfs | cut -f1) MiB)"
  exit 0
fi

build_tools # mksquashfs, cpio
x=$cache/qx
rm -rf $x && mkdir -p $x
for p in "${pkgs[@]}"; do dpkg-deb -x "$(deb_of "$p")" $x; done
root=$out/root img=$out/image
rm -rf $root $img
mkdir -p $root/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,run,tmp,opt/stubdm} $img/{bin,lib,share/qemu}

cp $x/bin/busybox $root/bin/busybox
for a in $($root/bin/busybox --list-full); do
  [ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
done

cp $x/usr/libexec/xen-qemu-system-i386 $img/bin/qemu-system-i386
cp $x/usr/bin/xenstore $img/bin/xenstore
for t in read write list exists rm watch ls; do ln -s xenstore $img/bin/xenstore-$t; done
cp $x/usr/lib/xen-4.17/bin/vchan-socket-proxy $kill_helper $img/bin/
# the option ROMs QEMU's NICs load by default, and the VGA BIOSes
cp -L $x/usr/lib/ipxe/qemu/efi-e1000.rom $x/usr/lib/ipxe/qemu/efi-rtl8139.rom $img/share/qemu/
cp -L $x/usr/share/seabios/vgabios-stdvga.bin $x/usr/share/seabios/vgabios-cirrus.bin $img/share/qemu/
# Libraries: the closure of every ELF's needs, resolved against the unpacked
# packages only (never the build machine's own libraries).
libdirs=$x/lib/x86_64-linux-gnu:$x/usr/lib/x86_64-linux-gnu
needed() { objdump -p "$1" | awk '$1 == "NEEDED" { print $2 }'; }
queue=("$img/bin/qemu-system-i386" "$img/bin/xenstore" "$img/bin/vchan-socket-proxy" "$img/bin/stubdm-kill-guest")
declare -A have=()
while [ ${#queue[@]} -gt 0 ]; do
  e=${queue[0]} queue=("${queue[@]:1}")
  for l in $(needed "$e"); do
    [ -n "${have[$l]:-}" ] && continue
    f=""
    for d in ${libdirs//:/ }; do [ -e "$d/$l" ] && { f=$d/$l; break; }; done
    [ -n "$f" ] || { say "$l (needed by ${e##*/}) is in none of the fetched packages: add its package to libs"; exit 1; }
    have[$l]=1
    cp -L "$f" "$img/lib/$l"
    queue+=("$img/lib/$l")
  done
done
cp -L $x/lib64/ld-linux-x86-64.so.2 $img/lib/ 2>/dev/null || cp -L $x/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 $img/lib/
strip --strip-unneeded $img/lib/*.so* $img/bin/qemu-system-i386 2>/dev/null || true
image_links $root $img $img/bin/qemu-system-i386 $img/bin/xenstore $img/bin/vchan-socket-proxy

# zstd, 128K blocks: what build-stubdom.sh measured best for a 128 MiB domain
mksquashfs $img $root/opt/stubdm.sqfs -comp zstd -Xcompression-level 19 -b 131072 \
  -noappend -all-root -quiet -no-progress -processors "${STUBDOM_BUILD_CPUS:-1}" >/dev/null
cp rootfs/init-qemu $root/init
cp rootfs/lib/stubdom.sh rootfs/lib/qemu-stubdom.sh $root/lib/
chmod 755 $root/init
cpio_xz $root $out/rootfs
cp "$kdir/bzImage" $out/kernel.tmp && mv -f $out/kernel.tmp $out/kernel
echo "$hash" >$out/.inputs
say "built $out/kernel and $out/rootfs ($(stat -c %s $out/rootfs | awk '{printf "%.1f", $1/1048576}') MiB;" \
  "squashfs $(stat -c %s $root/opt/stubdm.sqfs | awk '{printf "%.1f", $1/1048576}') MiB, image $(du -sm $img | cut -f1) MiB)"
