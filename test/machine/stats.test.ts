/** /proc/stat's cpu line as `info stats` shows it (proc(5): USER_HZ ticks in a fixed order). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { procStatCpu } from '../../src/machine/stats.ts';

test('procStatCpu names the first eight fields of the cpu line and ignores anything else', () => {
  const text = 'cpu  10 0 20 3000 5 1 2 7 0 0\ncpu0 10 0 20 3000 5 1 2 7 0 0\nintr 1\n';
  assert.deepEqual(procStatCpu(text), [
    { name: 'user-ticks', value: 10 }, { name: 'nice-ticks', value: 0 }, { name: 'system-ticks', value: 20 }, { name: 'idle-ticks', value: 3000 },
    { name: 'iowait-ticks', value: 5 }, { name: 'irq-ticks', value: 1 }, { name: 'softirq-ticks', value: 2 }, { name: 'steal-ticks', value: 7 },
  ]);
  assert.deepEqual(procStatCpu(null), []);
  assert.deepEqual(procStatCpu('intr 1 2 3\n'), []);
  // An old kernel's shorter line: only what is there.
  assert.deepEqual(procStatCpu('cpu 1 2 3 4\n').map((p) => p.name), ['user-ticks', 'nice-ticks', 'system-ticks', 'idle-ticks']);
});
