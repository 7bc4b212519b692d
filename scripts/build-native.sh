#!/usr/bin/env bash
# Builds the small C helpers in native/ into build/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
cc -O2 -Wall -Wextra -o build/stubdm-pty native/stubdm-pty.c
