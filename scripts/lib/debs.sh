# Sourced by the stub-domain build scripts: Debian packages fetched once into
# $debs (apt-get download, this machine's apt sources), by candidate version.
# Needs $debs and a say() function.

# candidate PKG: the version apt would install. One `apt-cache policy` for
# every package fetch() was given (each call costs seconds on a busy machine).
declare -A _debs_cand=()
candidate() {
  if [ -z "${_debs_cand[$1]:-}" ]; then
    local p="" l
    while IFS= read -r l; do
      case "$l" in
        [!\ ]*:) p=${l%:} ;;
        *Candidate:*) [ -n "$p" ] && _debs_cand[$p]=${l##*Candidate: } ;;
      esac
    done < <(apt-cache policy "$@" 2>/dev/null)
  fi
  echo "${_debs_cand[$1]:-}"
}

fetch() { # fetch pkg...: the candidate version's .deb into $debs, once
  local need=() p v
  candidate "$@" >/dev/null
  for p in "$@"; do
    v=$(candidate "$p")
    [ -n "$v" ] && [ "$v" != "(none)" ] || { say "no candidate for Debian package $p"; exit 1; }
    ls "$debs/${p}_${v/:/%3a}_"*.deb >/dev/null 2>&1 || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] || (cd "$debs" && apt-get download -q "${need[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  for p in "$@"; do
    v=$(candidate "$p")
    ls "$debs/${p}_${v/:/%3a}_"*.deb >/dev/null 2>&1 || { say "apt-get download $p failed"; exit 1; }
  done
}

deb_of() { # deb_of pkg: the path of its fetched .deb
  local v
  v=$(candidate "$1")
  ls "$debs/${1}_${v/:/%3a}_"*.deb
}

# cpio_xz ROOT OUT: ROOT as a newc cpio, xz'ed the way the kernel's
# decompressor takes it (crc32, 1 MiB dictionary), written to OUT atomically.
cpio_xz() {
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) |
    xz --check=crc32 --lzma2=preset=6,dict=1MiB -T1 >"$2.tmp"
  mv "$2.tmp" "$2"
}

# build_tools: mksquashfs and cpio on PATH, from Debian's packages unpacked
# into $cache/tools when the machine lacks them. Needs $cache.
build_tools() {
  command -v mksquashfs >/dev/null && command -v cpio >/dev/null && return 0
  local tools=(squashfs-tools liblzo2-2 cpio) p dir
  dir=$(pwd)/$cache/tools
  fetch "${tools[@]}"
  for p in "${tools[@]}"; do dpkg-deb -x "$(deb_of "$p")" "$dir"; done
  export PATH="$dir/usr/bin:$dir/bin:$PATH"
  export LD_LIBRARY_PATH="$dir/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

# image_links ROOT IMG ELF...: every ELF must resolve against IMG/lib alone;
# then ROOT (the cpio) points into the squashfs mounted at /opt/stubdm: the
# library directory, the ELF interpreter and each IMG/bin tool in /usr/bin.
image_links() {
  local root=$1 img=$2 e missing t
  shift 2
  for e in "$@"; do
    missing=$(LD_LIBRARY_PATH=$img/lib ldd "$e" | grep 'not found' || true)
    [ -z "$missing" ] || { say "$e: $missing"; exit 1; }
  done
  ln -s /opt/stubdm/lib "$root/lib/x86_64-linux-gnu"
  ln -s /opt/stubdm/lib/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
  for t in $(ls "$img/bin"); do ln -s "/opt/stubdm/bin/$t" "$root/usr/bin/$t"; done
}
