#!/usr/bin/env bash
# Bundles stubdm into single ESM files for the stub domain (and anywhere a
# node_modules tree is unwelcome):
#   build/dist/stubdm.mjs             src/main.ts (when it exists)
#   build/dist/node_modules/@koromix/koffi-linux-x64/  koffi's glibc .node,
#       found at run time by koffi's own loader (createRequire from the bundle)
#   build/dist/native/*.node          our native addons, build/dist/bin/* our helper
#                                     programs, e.g. stubdm-kill-guest (scripts/build-native.sh)
# Checks the result by running `stubdm.mjs --help` (loads koffi, yargs, pino).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/dist
rm -rf "$out"
mkdir -p "$out"

entries=(src/main.ts:stubdm)

# CJS dependencies (pino, yargs) call require() for node builtins; an ESM bundle
# has no require, so give it one.
banner="import { createRequire as __stubdmCreateRequire } from 'node:module'; const require = __stubdmCreateRequire(import.meta.url);"
for e in "${entries[@]}"; do
  npx --no-install esbuild "${e%%:*}" --bundle --platform=node --target=node20 --format=esm \
    --log-level=warning --legal-comments=none --banner:js="$banner" \
    --outfile="$out/${e##*:}.mjs"
done

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

node "$out/stubdm.mjs" --help >/dev/null || { echo "bundle.sh: $out/stubdm.mjs --help failed" >&2; exit 1; }
ls -la "$out"/*.mjs | awk '{print "bundle.sh: " $NF " " $5 " bytes"}'
