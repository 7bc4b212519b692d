#!/usr/bin/env bash
# Builds native/ into build/ (gitignored): N-API addons (plain C, no node-gyp)
# into build/native/<name>.node, and small helper programs into build/<name>.
# A target newer than its source and this script is left alone.
# Headers: node_api.h and uv.h from /usr/include/node (Debian nodejs package)
# or $NODE_INCLUDE. An installed npm package builds the addons and stubdm-pty
# with node-gyp instead (native/binding.gyp, its install script);
# src/native-paths.ts prefers this script's build/ in a checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
inc="${NODE_INCLUDE:-/usr/include/node}"
if [ ! -f "$inc/node_api.h" ] || [ ! -f "$inc/uv.h" ]; then
  echo "stubdm: node_api.h/uv.h not found in $inc; install the Node.js headers (Debian: libnode-dev) or set NODE_INCLUDE" >&2
  exit 1
fi
cc="${CC:-cc}"
fresh() { [ -f "$1" ] && [ "$1" -nt "$2" ] && [ "$1" -nt "$0" ]; }
mkdir -p build/native
for src in native/*.c; do
  name=$(basename "${src%.c}")
  if grep -q 'node_api.h' "$src"; then
    out="build/native/$name.node"
    fresh "$out" "$src" && continue
    # napi_* and uv_* resolve against the node binary at load time.
    "$cc" -std=gnu11 -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
      -I"$inc" -o "$out.tmp" "$src"
  else
    out="build/$name"
    fresh "$out" "$src" && continue
    # libraries a program needs are named in its header comment: " * link: -lfoo"
    # shellcheck disable=SC2046 # a list of linker flags
    "$cc" -std=gnu11 -O2 -Wall -Wextra -Werror -o "$out.tmp" "$src" $(sed -n 's/^ \* link: //p' "$src")
  fi
  mv "$out.tmp" "$out"
done
