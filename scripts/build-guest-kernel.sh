#!/usr/bin/env bash
# Builds the kernel the e2e suite's HVM guests boot (called by test/e2e/lib/host.sh;
# prints, on stdout, the directory holding it): Debian's linux-source-6.1 configured
# with `allnoconfig` + test/e2e/guest/kernel.config + `olddefconfig`. What every
# guest boot uses is built in; the two drivers a scenario loads itself (e1000,
# bochs-drm) are modules. See the fragment for why each option is there.
#
# Output: build/e2e/cache/guestkernel-<key>/{vmlinuz,version,config,size,root/lib/modules/<release>}
# (the layout host.sh's Debian kernel has, so copy_modules reads either), where
# key = (source package version, fragment, this script, scripts/lib/linux-source.sh):
# built once, then reused. The source is unpacked once into build/cache/linux-source-<version>
# (shared with scripts/build-stubdom-kernel.sh, only read here); the object tree
# build/e2e/guest-kbuild-<version> is kept so a changed fragment rebuilds only what
# changed. Log: build/e2e/guest-kernel-build.log. `nice -n 19 make -j2`
# (GUEST_KERNEL_JOBS): the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=build/cache
ecache=build/e2e/cache
frag=test/e2e/guest/kernel.config
say() { echo "build-guest-kernel: $*" >&2; }
. scripts/lib/linux-source.sh

srcver=$(apt-cache policy linux-source-6.1 2>/dev/null | sed -n 's/^ *Candidate: //p')
[ -n "$srcver" ] && [ "$srcver" != "(none)" ] || { say "apt knows no linux-source-6.1: run apt-get update"; exit 1; }
key=$({ echo "linux-source-6.1 $srcver"; sha256sum "$frag" scripts/build-guest-kernel.sh scripts/lib/linux-source.sh; } | sha256sum | cut -c1-16)
out=$ecache/guestkernel-$key
if [ -f "$out/.ok" ]; then
  echo "$repo/$out"
  exit 0
fi
mkdir -p "$cache" "$ecache"
kernel_build_deps
linux_source

obj=$repo/build/e2e/guest-kbuild-$srcver
log=$repo/build/e2e/guest-kernel-build.log
for d in build/e2e/guest-kbuild-*; do # older source versions
  [ -e "$d" ] && [ "$d" != "build/e2e/guest-kbuild-$srcver" ] && rm -rf "$d"
done
mkdir -p "$obj"
k() { nice -n 19 make -C "$repo/$src" O="$obj" ARCH=x86_64 "$@"; }
say "building the guest kernel ($srcpkg $srcver, $frag), log: build/e2e/guest-kernel-build.log"
t0=$(date +%s)
{
  k KCONFIG_ALLCONFIG="$repo/$frag" allnoconfig
  k olddefconfig
} >"$log" 2>&1 || { tail -20 "$log" >&2; say "configuring failed"; exit 1; }
# Every option the fragment asks for must have survived the dependency
# resolution: a lost one would only show as a scenario failing on real Xen.
bad=$(
  grep -E '^CONFIG_[A-Za-z0-9_]+=' "$frag" | while IFS= read -r l; do grep -qxF "$l" "$obj/.config" || echo "$l"; done
  grep -E '^# CONFIG_[A-Za-z0-9_]+ is not set' "$frag" | while read -r _ s _; do grep -q "^$s=" "$obj/.config" && echo "$s unwanted"; done
  true
)
[ -z "$bad" ] || { say "$frag: not in the resulting .config (a dependency is missing): $(echo $bad)"; exit 1; }
k -j"${GUEST_KERNEL_JOBS:-2}" bzImage modules >>"$log" 2>&1 || { tail -30 "$log" >&2; say "build failed, see $log"; exit 1; }
t1=$(date +%s)

rm -rf "$out" "$out.tmp" "$ecache"/guestkernel-* && mkdir -p "$out.tmp/root"
release=$(make -s -C "$src" O="$obj" ARCH=x86_64 kernelrelease)
# modules.builtin goes along: modprobe --show-depends then says "builtin" for
# ata_piix & co. instead of failing, so host.sh's module lists work unchanged.
k INSTALL_MOD_PATH="$repo/$out.tmp/root" INSTALL_MOD_STRIP=1 DEPMOD=/sbin/depmod modules_install >>"$log" 2>&1 ||
  { tail -20 "$log" >&2; say "modules_install failed"; exit 1; }
# (make runs in $obj: a relative INSTALL_MOD_PATH once put the modules there, and the
# cache held a kernel with no modules; the guests then had no e1000 and no bochs)
[ -f "$out.tmp/root/lib/modules/$release/modules.builtin" ] || { say "modules_install left no $out.tmp/root/lib/modules/$release/modules.builtin"; exit 1; }
cp "$obj/arch/x86/boot/bzImage" "$out.tmp/vmlinuz"
cp "$obj/.config" "$out.tmp/config"
echo "$release" >"$out.tmp/version"
size -A "$obj/vmlinux" | awk '
  /^\.text/ { t += $2 } /^\.(rodata|orc_unwind|orc_unwind_ip|orc_lookup)/ { r += $2 }
  /^\.data/ { d += $2 } /^\.bss/ { b += $2 } /^\.init\./ { i += $2 }
  END { printf "text=%.1fM rodata=%.1fM data=%.1fM init=%.1fM bss=%.1fM\n", t/1048576, r/1048576, d/1048576, i/1048576, b/1048576 }' >"$out.tmp/size"
touch "$out.tmp/.ok"
mv "$out.tmp" "$out"
say "built $release in $((t1 - t0)) s: vmlinuz $(stat -c %s "$out/vmlinuz" | awk '{printf "%.1f", $1/1048576}') MiB, $(cat "$out/size")"
echo "$repo/$out"
