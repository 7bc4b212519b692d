#!/usr/bin/env bash
# Bundles stubdm into single files for the stub domain (and anywhere a
# node_modules tree is unwelcome):
#   build/dist/stubdm.cjs             src/main.ts, CommonJS
#   build/dist/stubdm-start.cjs       src/stubdom/launch.ts: runs stubdm.cjs with
#   build/dist/stubdm.cjs.cache       this V8 code cache, made here by running
#                                     stubdm --sim to its QMP socket with /init's
#                                     node flags (V8 refuses a cache made with others)
#   build/dist/node_modules/@koromix/koffi-linux-x64/  koffi's glibc .node,
#       found at run time by koffi's own loader (createRequire from the bundle)
#   build/dist/native/*.node          our native addons, build/dist/bin/* our helper
#                                     programs, e.g. stubdm-kill-guest (scripts/build-native.sh)
# Why stubdm is a CommonJS bundle: node 20 runs a .cjs main script without
# its ESM loader (measured: 146 instead of 171 internal modules loaded before
# stubdm's first line, and less CPU to the QMP socket; rootfs/README.md).
# The sources stay ESM: import.meta.url becomes the bundle's file URL.
# Checks the result by running `stubdm.cjs --help` (loads yargs, pino).
# node: the project's pinned Node 24 (scripts/lib/node.sh), the one that runs
# in the stub domain (scripts/build-stubdom.sh): the code cache is V8's own.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/node.sh
out=build/dist
rm -rf "$out"
mkdir -p "$out"

# A CJS bundle has no import.meta: the sources' import.meta.url (main.ts's
# am-I-the-entry check, createRequire for addons) is the bundle's own URL.
banner="const __stubdmImportMetaUrl = require('node:url').pathToFileURL(__filename).href;"
bundle() { # bundle ENTRY OUT
  npx --no-install esbuild "$1" --bundle --platform=node --target=node24 --format=cjs \
    --log-level=warning --legal-comments=none --banner:js="$banner" \
    --define:import.meta.url=__stubdmImportMetaUrl --outfile="$out/$2"
}
bundle src/main.ts stubdm.cjs
bundle src/stubdom/launch.ts stubdm-start.cjs

# koffi resolves '@koromix/koffi-linux-x64' relative to the bundle at run time.
k=node_modules/@koromix/koffi-linux-x64
mkdir -p "$out/$k/linux_x64"
cp "$k/package.json" "$k/index.js" "$out/$k/"
cp "$k/linux_x64/koffi.node" "$out/$k/linux_x64/"

# Our native/ addons (build/native/*.node, found through $STUBDM_NATIVE_DIR)
# and helper programs (build/<name>, e.g. stubdm-pty via $STUBDM_PTY_HELPER).
if [ -f scripts/build-native.sh ]; then
  bash scripts/build-native.sh
  mkdir -p "$out/native" "$out/bin"
  cp build/native/*.node "$out/native/"
  for c in native/*.c; do
    n=$(basename "${c%.c}")
    [ -x "build/$n" ] && cp "build/$n" "$out/bin/"
  done
fi

node "$out/stubdm.cjs" --help >/dev/null || { echo "bundle.sh: $out/stubdm.cjs --help failed" >&2; exit 1; }
# stubdm-start.cjs runs the bundle through vm.Script, which has no dynamic
# import() (node 20's loader for it warns it is experimental on every start);
# esbuild keeps import() of node builtins as it is.
if grep -nE '(^|[^.[:alnum:]_$])import\(' "$out/stubdm.cjs" >&2; then
  echo "bundle.sh: $out/stubdm.cjs has a dynamic import() (above): use a static import or createRequire" >&2
  exit 1
fi
# The code cache, with exactly the flags /init gives node. V8's caches are
# not byte-for-byte reproducible: keep the one made for this bundle, node
# and flags, so an unchanged tree stays unchanged (build-stubdom.sh's cache).
flags=$(sh -c '. rootfs/lib/stubdom.sh && printf %s "$STUBDM_NODE_FLAGS"')
key=$({ sha256sum "$out/stubdm.cjs" "$out/stubdm-start.cjs" "$(readlink -f "$(command -v node)")"; echo "$flags"; } | sha256sum | cut -c1-16)
keep=build/cache/codecache-$key
if [ -s "$keep" ]; then
  cp "$keep" "$out/stubdm.cjs.cache"
else
  sock=$(mktemp -u /tmp/stubdm-codecache-XXXXXX.sock)
  # The addons from the bundle's own native/, as /init points the stub domain at them
  # (src/native-paths.ts would look for build/ beside build/dist/, not find it).
  # shellcheck disable=SC2086 # flags are words
  STUBDM_NATIVE_DIR="$out/native" STUBDM_CODE_CACHE_WRITE=1 node $flags "$out/stubdm-start.cjs" --sim -machine xenfv -m 16 -serial null \
    -chardev "socket,id=cc,path=$sock,server=on,wait=off" -mon chardev=cc,mode=control 2>"$out/.codecache.log" &
  pid=$!
  for _ in $(seq 300); do [ -S "$sock" ] || ! kill -0 $pid 2>/dev/null && break; sleep 0.1; done
  sleep 1 # stubdm installs its SIGTERM handler right after the socket; the cache is written on exit
  kill -TERM $pid 2>/dev/null || true
  wait $pid || true
  rm -f "$sock"
  [ -s "$out/stubdm.cjs.cache" ] || { echo "bundle.sh: no code cache written: $(tail -3 "$out/.codecache.log")" >&2; exit 1; }
  rm -f "$out/.codecache.log" build/cache/codecache-*
  mkdir -p build/cache
  cp "$out/stubdm.cjs.cache" "$keep"
fi
# shellcheck disable=SC2086
if node $flags "$out/stubdm-start.cjs" --help 2>&1 >/dev/null | grep -q rejected; then
  echo "bundle.sh: V8 rejects the code cache it just made" >&2
  exit 1
fi
ls -la "$out"/*.cjs "$out"/*.cache | awk '{print "bundle.sh: " $NF " " $5 " bytes"}'
