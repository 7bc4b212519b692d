# Sourced by the kernel build scripts: Debian's linux-source-6.1 (the patched
# tree Debian builds its kernels from, shipped as a .tar.xz inside the .deb),
# fetched with apt-get download into $cache/debs and unpacked once into
# $cache/linux-source-<version>. Needs $cache (a directory) and a say() function.
# Sets srcpkg, srcver and src. The unpacked tree is only read: every build writes
# into an object tree of its own (make O=...).
linux_source() {
  srcpkg=linux-source-6.1
  srcver=$(apt-cache policy "$srcpkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
  [ -n "$srcver" ] && [ "$srcver" != "(none)" ] || { say "apt knows no $srcpkg: run apt-get update"; return 1; }
  src=$cache/linux-source-$srcver
  [ -f "$src/.unpacked" ] && return 0
  local debs=$cache/debs deb
  mkdir -p "$debs"
  deb=$debs/${srcpkg}_${srcver/:/%3a}_all.deb
  if [ ! -f "$deb" ]; then
    (cd "$debs" && apt-get download -q "$srcpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
    [ -f "$deb" ] || { say "apt-get download $srcpkg failed"; return 1; }
  fi
  say "unpacking $srcpkg $srcver"
  rm -rf "$src" "$src.tmp" && mkdir -p "$src.tmp"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$src.tmp" --wildcards './usr/src/linux-source-*.tar.xz'
  tar -xJf "$src.tmp"/usr/src/linux-source-*.tar.xz -C "$src.tmp"
  mv "$src.tmp"/linux-source-6.1 "$src"
  rm -rf "$src.tmp"
  touch "$src/.unpacked"
}

# Kernel build dependencies: installed with apt-get when root, else named.
kernel_build_deps() {
  # package: a file or command that tells it is there
  local -A deps=([flex]=flex [bison]=bison [bc]=bc [make]=make [gcc]=gcc [xz-utils]=xz [kmod]=depmod
    [libelf-dev]=/usr/include/gelf.h [libssl-dev]=/usr/include/openssl/opensslv.h)
  local missing=() p t
  for p in "${!deps[@]}"; do
    t=${deps[$p]}
    if [ "${t#/}" != "$t" ]; then [ -e "$t" ] || missing+=("$p"); else PATH=$PATH:/sbin:/usr/sbin command -v "$t" >/dev/null || missing+=("$p"); fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ]; then
    say "installing build dependencies: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  else
    say "missing build dependencies: ${missing[*]} (as root: apt-get install ${missing[*]})"
    return 1
  fi
}
