#!/usr/bin/env bash
# Builds the stub domain's kernel (called by scripts/build-stubdom.sh; prints,
# on stdout, the directory holding it): Debian's linux-source-6.1 configured
# with `allnoconfig` + rootfs/kernel.config + `olddefconfig`, everything built
# in, no modules. See rootfs/kernel.config for why each option is there.
#
# Output: build/cache/kernel-<key>/{bzImage,config,modules.builtin,size}, where
# key = (source package version, config fragment, this script): built once,
# then reused (the e2e harness calls build-stubdom.sh every run). The object
# tree build/cache/kbuild-<version> is kept so a changed fragment rebuilds
# only what changed. Build log: build/cache/kernel-build.log.
# Lean on the shared machine: `nice -n 10 make -j2` (STUBDOM_KERNEL_JOBS).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=build/cache
debs=$cache/debs
frag=rootfs/kernel.config
srcpkg=linux-source-6.1
say() { echo "build-stubdom-kernel: $*" >&2; }
mkdir -p "$debs"

ver=$(apt-cache policy "$srcpkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
[ -n "$ver" ] && [ "$ver" != "(none)" ] || { say "apt knows no $srcpkg: run apt-get update"; exit 1; }
key=$({ echo "$srcpkg $ver"; sha256sum "$frag" scripts/build-stubdom-kernel.sh; } | sha256sum | cut -c1-16)
out=$cache/kernel-$key
if [ -f "$out/bzImage" ]; then
  echo "$out"
  exit 0
fi

# ---- build dependencies -------------------------------------------------------
# package: a file or command that tells it is there
declare -A deps=([flex]=flex [bison]=bison [bc]=bc [make]=make [gcc]=gcc [xz-utils]=xz
  [libelf-dev]=/usr/include/gelf.h [libssl-dev]=/usr/include/openssl/opensslv.h)
missing=()
for p in "${!deps[@]}"; do
  t=${deps[$p]}
  if [ "${t#/}" != "$t" ]; then [ -e "$t" ] || missing+=("$p"); else command -v "$t" >/dev/null || missing+=("$p"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing build dependencies: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  else
    say "missing build dependencies: ${missing[*]} (as root: apt-get install ${missing[*]})"
    exit 1
  fi
fi

# ---- source: linux-source-6.1 ships the patched tree as a .tar.xz -------------
deb=$debs/${srcpkg}_${ver/:/%3a}_all.deb
if [ ! -f "$deb" ]; then
  (cd "$debs" && apt-get download -q "$srcpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  [ -f "$deb" ] || { say "apt-get download $srcpkg failed"; exit 1; }
fi
src=$cache/linux-source-$ver
if [ ! -f "$src/.unpacked" ]; then
  say "unpacking $srcpkg $ver"
  rm -rf "$src" "$src.tmp" && mkdir -p "$src.tmp"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$src.tmp" --wildcards './usr/src/linux-source-*.tar.xz'
  tar -xJf "$src.tmp"/usr/src/linux-source-*.tar.xz -C "$src.tmp"
  mv "$src.tmp"/linux-source-6.1 "$src"
  rm -rf "$src.tmp"
  touch "$src/.unpacked"
fi

# ---- configure + build ----------------------------------------------------------
obj=$repo/$cache/kbuild-$ver
log=$repo/$cache/kernel-build.log
for d in "$cache"/kbuild-* "$cache"/linux-source-*; do # older source versions
  case "${d##*/}" in "kbuild-$ver" | "linux-source-$ver") ;; *) if [ -e "$d" ]; then rm -rf "$d"; fi ;; esac
done
mkdir -p "$obj"
k() { nice -n 10 make -C "$src" O="$obj" ARCH=x86_64 "$@"; }
say "building the kernel ($srcpkg $ver, $frag), log: $cache/kernel-build.log"
t0=$(date +%s)
{
  k KCONFIG_ALLCONFIG="$repo/$frag" allnoconfig
  k olddefconfig
} >"$log" 2>&1 || { tail -20 "$log" >&2; say "configuring failed"; exit 1; }
# Every option the fragment asks for must have survived the dependency
# resolution: a lost one would only show at run time.
bad=$(
  grep -E '^CONFIG_[A-Za-z0-9_]+=' "$frag" | while IFS= read -r l; do grep -qxF "$l" "$obj/.config" || echo "$l"; done
  grep -E '^# CONFIG_[A-Za-z0-9_]+ is not set' "$frag" | while read -r _ s _; do grep -q "^$s=" "$obj/.config" && echo "$s unwanted"; done
  true
)
[ -z "$bad" ] || { say "$frag: not in the resulting .config (a dependency is missing): $(echo $bad)"; exit 1; }
k -j"${STUBDOM_KERNEL_JOBS:-2}" bzImage >>"$log" 2>&1 || { tail -30 "$log" >&2; say "build failed, see $cache/kernel-build.log"; exit 1; }
t1=$(date +%s)

rm -rf "$out" "$out.tmp" "$cache"/kernel-*/ && mkdir -p "$out.tmp"
cp "$obj/arch/x86/boot/bzImage" "$out.tmp/bzImage"
cp "$obj/.config" "$out.tmp/config"
# what build-stubdom.sh checks a module name against (the same format as
# Debian's /lib/modules/<version>/modules.builtin)
cp "$obj/modules.builtin" "$out.tmp/modules.builtin"
# static footprint: what the domain loses before anything runs
size -A "$obj/vmlinux" | awk '
  /^\.text/ { t += $2 } /^\.(rodata|orc_unwind|orc_unwind_ip|orc_lookup)/ { r += $2 }
  /^\.data/ { d += $2 } /^\.bss/ { b += $2 } /^\.init\./ { i += $2 }
  END { printf "text=%.1fM rodata=%.1fM data=%.1fM init=%.1fM bss=%.1fM\n", t/1048576, r/1048576, d/1048576, i/1048576, b/1048576 }' >"$out.tmp/size"
mv "$out.tmp" "$out"
say "built $(make -s -C "$src" O="$obj" ARCH=x86_64 kernelrelease) in $((t1 - t0)) s: bzImage" \
  "$(stat -c %s "$out/bzImage" | awk '{printf "%.1f", $1/1048576}') MiB, $(cat "$out/size")"
echo "$out"
