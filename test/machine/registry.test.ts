import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Device, StateObject } from '../../src/core/device.ts';
import { StateError, StateReader } from '../../src/core/state.ts';
import { DeviceRegistry } from '../../src/machine/registry.ts';

class Box implements Device {
  readonly stateVersion = 1;
  v = 0;
  log: string[];
  constructor(
    readonly id: string,
    log: string[],
  ) {
    this.log = log;
  }
  snapshot(): StateObject {
    return { v: this.v };
  }
  restore(s: StateObject): void {
    const v = new StateReader(s, this.id).int('v', 0, 100);
    this.log.push(`restore ${this.id}`);
    this.v = v;
  }
  async quiesce(): Promise<'drained'> {
    this.log.push(`quiesce ${this.id}`);
    return 'drained';
  }
}

function machine(log: string[]): { reg: DeviceRegistry; a: Box; b: Box } {
  const reg = new DeviceRegistry({
    rebuild: (recs) => log.push(`rebuild ${[...recs.keys()].join(',')}`),
    refresh: () => log.push('refresh'),
  });
  return { reg, a: reg.add(new Box('a', log)), b: reg.add(new Box('b', log)) };
}

test('registry saves every device after quiescing it and restores in order: rebuild, devices, refresh', async () => {
  const log1: string[] = [];
  const m1 = machine(log1);
  m1.a.v = 3;
  m1.b.v = 4;
  const blob = await m1.reg.save();
  assert.deepEqual(log1, ['quiesce a', 'quiesce b']);
  const log2: string[] = [];
  const m2 = machine(log2);
  m2.reg.restore(blob);
  assert.deepEqual([m2.a.v, m2.b.v], [3, 4]);
  assert.deepEqual(log2, ['rebuild a,b', 'restore a', 'restore b', 'refresh']);
});

test('registry refuses duplicate ids, bad ids, and state from another machine', async () => {
  const log: string[] = [];
  const m = machine(log);
  assert.throws(() => m.reg.add(new Box('a', log)), /two devices with id a/);
  assert.throws(() => m.reg.add(new Box('Not OK', log)), /not a valid state id/);
  const other = new DeviceRegistry();
  other.add(new Box('a', log));
  const blob = await other.save();
  assert.throws(() => m.reg.restore(blob), /lacks devices this machine has: b/);
  const bigger = new DeviceRegistry();
  for (const id of ['a', 'b', 'c']) bigger.add(new Box(id, log));
  const biggerBlob = await bigger.save();
  assert.throws(() => m.reg.restore(biggerBlob), /has devices this machine lacks: c/);
  log.length = 0;
  assert.throws(() => m.reg.restoreRecords([{ id: 'a', version: 2, state: { v: 1 } }, { id: 'b', version: 1, state: { v: 1 } }]), /newer/);
  assert.deepEqual(log, [], 'nothing rebuilt or restored when a version is refused');
  assert.throws(() => m.reg.restoreRecords([{ id: 'a', version: 1, state: { v: 1 } }, { id: 'b', version: 1, state: { v: 101 } }]), StateError);
});
