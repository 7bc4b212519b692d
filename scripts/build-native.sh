#!/usr/bin/env bash
# Builds native/*.c into build/native/<name>.node (N-API addons, plain C, no
# node-gyp). A target newer than its source and this script is left alone.
# Headers: node_api.h and uv.h from /usr/include/node (Debian nodejs package)
# or $NODE_INCLUDE.
set -euo pipefail
cd "$(dirname "$0")/.."
inc="${NODE_INCLUDE:-/usr/include/node}"
if [ ! -f "$inc/node_api.h" ] || [ ! -f "$inc/uv.h" ]; then
  echo "stubdm: node_api.h/uv.h not found in $inc; install the Node.js headers (Debian: libnode-dev) or set NODE_INCLUDE" >&2
  exit 1
fi
cc="${CC:-cc}"
mkdir -p build/native
for src in native/*.c; do
  out="build/native/$(basename "${src%.c}").node"
  if [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ]; then continue; fi
  # napi_* and uv_* resolve against the node binary at load time.
  "$cc" -std=gnu11 -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
    -I"$inc" -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
done
