#!/usr/bin/env bash
# Runs every test/**/*.test.ts except the end-to-end suite (npm run e2e); the e2e guest
# programs' own tests (test/e2e/guest/, no Xen needed) run here.
# Node 20's --test took no globs (24's does), so the file list is built here.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/node.sh # the pinned Node 24 also when run without npm
mapfile -t files < <(find test -name '*.test.ts' \( -not -path 'test/e2e/*' -o -path 'test/e2e/guest/*' \) | sort)
exec node --import tsx --test --test-reporter=spec "${files[@]}"
