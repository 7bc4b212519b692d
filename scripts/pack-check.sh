#!/usr/bin/env bash
# Proves the npm package end to end (issue #14): npm pack, then a global
# install of the tarball into a scratch prefix from an empty directory (npm
# fetches the runtime dependencies from the registry; the install script
# builds the addons with node-gyp), then the installed `stubdm` with a clean
# environment: --version, --help, and --sim answering QMP query-status on its
# socket. One line per check, `PASS pack ...` or `FAIL pack ...`; exit 1 on a
# FAIL. Not in npm test: it needs the registry and takes ~30 s.
# Usage: scripts/pack-check.sh [SCRATCH-DIR]   (default: a new mktemp -d)
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-$(mktemp -d /tmp/stubdm-pack-XXXXXX)}
mkdir -p "$t/clean" "$t/pkg"
fails=0
pass() { echo "PASS pack $*"; }
fail() { echo "FAIL pack $*"; fails=1; }

npm pack --pack-destination "$t/pkg" >"$t/pack.log" 2>&1 || { fail "npm pack: $(tail -1 "$t/pack.log")"; exit 1; }
tgz=$(ls "$t"/pkg/stubdm-*.tgz)
files=$(tar -tzf "$tgz" | sort | tr '\n' ' ')
pass "tarball=$(basename "$tgz") bytes=$(stat -c %s "$tgz") files=$(tar -tzf "$tgz" | wc -l)"
echo "  $files"

(cd "$t/clean" && npm install -g "$tgz" --prefix "$t/g" --no-audit --no-fund --foreground-scripts) >"$t/install.log" 2>&1 ||
  { fail "npm install -g: see $t/install.log"; exit 1; }
bin=$t/g/bin/stubdm
inst=$t/g/lib/node_modules/stubdm
ls "$inst"/native/build/Release/{fdwatch.node,unixsock.node,stubdm-pty} >/dev/null 2>&1 &&
  pass "node-gyp built $(cd "$inst/native/build/Release" && ls fdwatch.node unixsock.node stubdm-pty | tr '\n' ' ')" ||
  fail "no addons in $inst/native/build/Release (see $t/install.log)"
for d in tsx typescript esbuild; do [ -e "$inst/node_modules/$d" ] && fail "devDependency $d installed"; done

# A clean environment in an empty directory: nothing from this checkout.
run() { (cd "$t/clean" && exec env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$t/clean" "$bin" "$@"); }
v=$(run --version 2>&1) && pass "--version: $v" || fail "--version: $v"
h=$(run --help 2>&1 | head -1) && [ -n "$h" ] && pass "--help: $h" || fail "--help: $h"

sock=$t/clean/qmp.sock
# Not through run(): a function call in the background is a subshell of its own and $! would be it.
(cd "$t/clean" && exec env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$t/clean" "$bin" --sim -machine xenfv -m 64 -serial null -chardev "socket,id=q,path=$sock,server=on,wait=off" \
  -mon chardev=q,mode=control) >"$t/sim.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
status=$(timeout 10 node -e '
  const s = require("node:net").connect(process.argv[1]); let buf = "";
  s.on("data", (d) => {
    buf += d; const lines = buf.split("\n"); buf = lines.pop();
    for (const l of lines) {
      if (!l.trim()) continue; const m = JSON.parse(l);
      if (m.QMP) s.write(JSON.stringify({ execute: "qmp_capabilities" }) + "\n");
      else if (m.id === undefined && m.return) s.write(JSON.stringify({ execute: "query-status", id: 1 }) + "\n");
      else if (m.id === 1) { console.log(m.return ? m.return.status : JSON.stringify(m)); s.end(); }
    }
  });
  s.on("error", (e) => { console.log("error " + e.message); process.exit(1); });' "$sock" 2>&1) || true
kill -TERM $pid 2>/dev/null || true
wait $pid && rc=0 || rc=$?
# exit 0: stubdm's own SIGTERM handler stopped it (README: exit codes).
if [ "$status" = running ] && [ "$rc" = 0 ]; then pass "--sim qmp_query_status=$status sigterm_exit=$rc"
else fail "--sim qmp_query_status=${status:-none} sigterm_exit=$rc (want running, 0): $(tail -2 "$t/sim.log")"; fi
# -serial pty: the stubdm-pty helper node-gyp built, found in the installed package.
(cd "$t/clean" && exec env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$t/clean" "$bin" --sim -machine xenfv -m 16 -serial pty) >"$t/pty.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'redirected to /dev/pts/' "$t/pty.log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
pty=$(grep -o 'redirected to /dev/pts/[0-9]*' "$t/pty.log" | cut -d' ' -f3) || true
kill -TERM $pid 2>/dev/null || true
wait $pid || true
[ -n "$pty" ] && pass "--sim -serial pty: $pty" || fail "--sim -serial pty: $(tail -1 "$t/pty.log")"
echo "pack-check: scratch in $t"
exit $fails
