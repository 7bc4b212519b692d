/** /proc/stat's cpu line as `info stats` shows it (proc(5): USER_HZ ticks in a fixed order). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectStats, hmpInfoStats, procInterrupts, procStatCpu, procStatWakeups } from '../../src/machine/stats.ts';
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

test('procInterrupts sums each source over the CPUs by its handler name; procStatWakeups takes intr and ctxt', () => {
  // A Xen PV stub domain's shape (one vCPU) and a two-CPU host's, with label rows.
  const pv = [
    '           CPU0       ',
    ' 40:      51234  xen-percpu    -virq      timer0',
    ' 41:          0  xen-percpu    -ipi       spinlock0',
    ' 45:        300   xen-dyn    -event     xenbus',
    ' 46:         12   xen-dyn    -event     vfb',
    ' 47:         20   xen-dyn    -event     evtchn:node',
    ' 48:          5   xen-dyn    -event     evtchn:node',
    'NMI:          0   Non-maskable interrupts',
    'LOC:          7   Local timer interrupts',
    'ERR:          0',
    '',
  ].join('\n');
  assert.deepEqual(procInterrupts(pv), [
    { name: 'timer0', value: 51234 },
    { name: 'spinlock0', value: 0 },
    { name: 'xenbus', value: 300 },
    { name: 'vfb', value: 12 },
    { name: 'evtchn:node', value: 25 },
    { name: 'NMI', value: 0 },
    { name: 'LOC', value: 7 },
    { name: 'ERR', value: 0 },
  ]);
  const two = '           CPU0       CPU1       \n 26:          3          4  IO-APIC   4-edge      ttyS0\nMIS:          0\n';
  assert.deepEqual(procInterrupts(two), [{ name: 'ttyS0', value: 7 }, { name: 'MIS', value: 0 }]);
  assert.deepEqual(procInterrupts(null), []);
  assert.deepEqual(procInterrupts('garbage\n 1: x y\n'), []);
  const stat = 'cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 98765 0 3 0\nctxt 4321\nbtime 1\n';
  assert.deepEqual(procStatWakeups(stat), [{ name: 'intr', value: 98765 }, { name: 'ctxt', value: 4321 }]);
  assert.deepEqual(procStatWakeups(null), []);
});
