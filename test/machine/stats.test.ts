/** /proc/stat's cpu line as `info stats` shows it (proc(5): USER_HZ ticks in a fixed order). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectStats, hmpInfoStats, procStatCpu } from '../../src/machine/stats.ts';
import type { IoBus } from '../../src/core/bus.ts';

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

test("collectStats shows the host's waits in place as /ioreq/wait when it makes them, and nothing when it does not", () => {
  const bus = { kind: 'pio', unclaimedReads: 0, unclaimedWrites: 0, list: () => [] } as unknown as IoBus;
  const base = { ioreq: { events: 3 }, pio: bus, mmio: bus, blockstats: () => [], nics: () => [], serials: () => [] };
  const withWait = collectStats({ ...base, ioreqWait: () => ({ waits: 5, inPlace: 4 }) });
  assert.equal(hmpInfoStats(withWait.filter((g) => g['qom-path'].startsWith('/ioreq'))), '/ioreq: events=3\n/ioreq/wait: waits=5 in-place=4\n');
  for (const src of [base, { ...base, ioreqWait: () => undefined }]) {
    assert.deepEqual(collectStats(src).map((g) => g['qom-path']).filter((p) => p.startsWith('/ioreq')), ['/ioreq']);
  }
});
