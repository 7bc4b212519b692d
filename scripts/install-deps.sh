#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test stubdm:
# the Xen libraries and headers (the ABI test compiles against them), QEMU
# (test/qemu-oracle compares our devices with it), a C
# compiler for native/, ip(8) (test/net configures a tap in a namespace of
# its own), and the npm packages. Idempotent; needs root for apt.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(libxen-dev libxenmisc4.17 libxenstore4 gcc libc6-dev qemu-system-x86 ipxe-qemu iproute2)
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
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund
fi
bash scripts/build-native.sh
