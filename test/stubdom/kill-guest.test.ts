// native/stubdm-kill-guest.c: the stub domain's last resort when stubdm died.
// Without Xen (this machine) it must refuse bad arguments with the usage line
// (exit 2) and fail cleanly at xendevicemodel_open (exit 1), never "succeed".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../build/stubdm-kill-guest', import.meta.url));

function run(...args: string[]) {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stderr: r.stderr };
}

test('stubdm-kill-guest is built (scripts/build-native.sh)', () => {
  assert.ok(existsSync(bin), `${bin} missing: run scripts/build-native.sh`);
});

test('bad arguments get the usage line and exit 2', () => {
  for (const args of [[], ['x'], ['-1'], ['1x'], ['32752'], ['1', 'halt'], ['1', 'crash', 'extra']]) {
    const r = run(...args);
    assert.equal(r.status, 2, `args ${JSON.stringify(args)}`);
    assert.match(r.stderr, /^usage: stubdm-kill-guest <domid>/m);
  }
});

test('without Xen, a valid request fails at xendevicemodel_open with exit 1', () => {
  for (const args of [['1'], ['1', 'crash'], ['7', 'poweroff'], ['32751', 'reboot']]) {
    const r = run(...args);
    assert.equal(r.status, 1, `args ${JSON.stringify(args)}: ${r.stderr}`);
    assert.match(r.stderr, /xendevicemodel_open failed/);
  }
});
