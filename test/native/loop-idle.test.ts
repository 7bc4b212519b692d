// fdwatch.setLoopIdleTime on this process's own loop (a test file of its own:
// other tests' handles would keep the loop from idling): off, libuv stops
// counting the loop's idle time, which is what tells that the bit the addon
// clears is the one libuv polls twice for (native/fdwatch.c); on, it counts
// again. The Xen host turns it off (src/xen/host.ts, loopIdleTime).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { loadFdWatch, type FdWatch } from '../../src/xen/native.ts';

let fw: FdWatch;

before(() => {
  execFileSync('bash', [fileURLToPath(new URL('../../scripts/build-native.sh', import.meta.url))], { stdio: 'inherit' });
  fw = loadFdWatch();
});

/** Idle time libuv counted over a 30 ms timer wait. */
async function idleOver30ms(): Promise<number> {
  const a = performance.nodeTiming.idleTime;
  await new Promise((r) => setTimeout(r, 30));
  return performance.nodeTiming.idleTime - a;
}

/**
 * Some idle time counted within 20 waits: on a loaded machine (npm test runs
 * under nice 19 beside a busy VM) one wait can pass with the timer already due
 * when the loop polls, which libuv does not count.
 */
async function countsIdle(): Promise<boolean> {
  for (let i = 0; i < 20; i++) if ((await idleOver30ms()) > 0) return true;
  return false;
}

test('setLoopIdleTime: off, the loop stops counting its idle time; on, it counts again', async () => {
  assert.ok(await countsIdle(), 'Node turns it on');
  assert.equal(fw.setLoopIdleTime(false), 0);
  for (let i = 0; i < 5; i++) assert.equal(await idleOver30ms(), 0);
  assert.equal(fw.setLoopIdleTime(true), 0);
  assert.ok(await countsIdle());
  assert.throws(() => fw.setLoopIdleTime(1 as unknown as boolean), TypeError);
});
