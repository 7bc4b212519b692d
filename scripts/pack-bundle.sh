#!/usr/bin/env bash
# npm pack's prepack step: bundles src/main.ts into dist/stubdm.mjs (or
# OUTDIR/stubdm.mjs), the file bin/stubdm.js runs in an installed package, so
# that nothing it runs needs a devDependency (tsx, typescript, esbuild stay
# behind). The runtime dependencies (koffi, pino, yargs, pngjs) stay imports,
# installed by npm beside it: --packages=external. postpack removes dist/
# again, so a checkout never runs a bundle older than its sources
# (bin/stubdm.js prefers dist/). The stub domain's bundle is scripts/bundle.sh
# (CommonJS + V8 code cache). test/scripts/pack.test.ts checks the imports.
# Usage: scripts/pack-bundle.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
rm -rf "$out"
npx --no-install esbuild src/main.ts --bundle --platform=node --target=node20 --format=esm \
  --packages=external --log-level=warning --legal-comments=none --outfile="$out/stubdm.mjs"
# It must load (yargs, pino, the package.json it inlines) and parse argv; run
# directly, main.ts's am-I-the-entry check starts it.
node "$out/stubdm.mjs" --help >/dev/null || { echo "pack-bundle.sh: $out/stubdm.mjs --help failed" >&2; exit 1; }
