import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StateError, StateReader } from '../../src/core/state.ts';
import { restoreDevice, type Device, type StateObject } from '../../src/core/device.ts';

test('StateReader checks type and range and names the field', () => {
  const r = new StateReader({ a: 5, b: 'x', c: true, d: new Uint8Array(4), e: [1, 2], f: { g: 1 }, h: null, n: 1.5 }, 'dev');
  assert.equal(r.int('a', 0, 5), 5);
  assert.throws(() => r.int('a', 0, 4), /dev\.a: expected an integer in \[0, 4\], got 5/);
  assert.throws(() => r.int('n', 0, 4), StateError);
  assert.equal(r.num('n', 0, 2), 1.5);
  assert.throws(() => r.int('missing', 0, 1), /dev\.missing: .* got undefined/);
  assert.equal(r.oneOf('b', ['x', 'y']), 'x');
  assert.throws(() => r.oneOf('b', ['y']), StateError);
  assert.equal(r.bool('c'), true);
  assert.throws(() => r.bool('a'), StateError);
  const bytes = r.bytes('d', 4);
  assert.equal(bytes.length, 4);
  assert.notEqual(bytes.buffer, (r as unknown as { o: { d: Uint8Array } }).o.d.buffer, 'bytes() copies');
  assert.throws(() => r.bytes('d', 5), /expected 5 bytes, got 4 bytes/);
  assert.equal(r.bytes('d', 8, false).length, 4);
  assert.deepEqual(r.ints('e', 2, 0, 2), [1, 2]);
  assert.throws(() => r.ints('e', 2, 0, 1), /dev\.e\[1\]/);
  assert.equal(r.obj('f').int('g', 0, 1), 1);
  assert.throws(() => r.obj('f').int('g', 2, 3), /dev\.f\.g/);
  assert.equal(r.objOrNull('h'), null);
  assert.equal(r.timer('h'), null);
  assert.throws(() => new StateReader([1], 'x'), StateError);
  assert.throws(() => new StateReader(null, 'x'), StateError);
  assert.throws(() => new StateReader(new Uint8Array(1), 'x'), StateError);
});

test('StateReader reads only own fields (no prototype keys)', () => {
  const r = new StateReader(JSON.parse('{"__proto__": {"a": 1}}'), 'dev');
  assert.throws(() => r.int('a', 0, 1), StateError);
  assert.throws(() => r.int('toString', 0, 1), StateError);
});

class Counter implements Device {
  readonly id = 'counter';
  readonly stateVersion = 3;
  n = 0;
  unit = 'ms';
  readonly upgrades = {
    1: (s: StateObject): StateObject => ({ count: s.n as number }), // v1 called it n
    2: (s: StateObject): StateObject => ({ ...s, unit: 'ms' }), // v3 added the unit
  };
  snapshot(): StateObject {
    return { count: this.n, unit: this.unit };
  }
  restore(s: StateObject): void {
    const r = new StateReader(s, this.id);
    const count = r.int('count', 0, 1000);
    const unit = r.oneOf('unit', ['ms', 's']);
    this.n = count;
    this.unit = unit;
  }
}

test('restoreDevice upgrades step by step and refuses newer versions', () => {
  const d = new Counter();
  restoreDevice(d, 1, { n: 7 });
  assert.deepEqual(d.snapshot(), { count: 7, unit: 'ms' });
  restoreDevice(d, 3, { count: 9, unit: 's' });
  assert.deepEqual(d.snapshot(), { count: 9, unit: 's' });
  assert.throws(() => restoreDevice(d, 4, { count: 1, unit: 'ms' }), /newer than this stubdm reads \(3\)/);
  assert.throws(() => restoreDevice(d, 0, { count: 1, unit: 'ms' }), StateError);
  // A bad field refuses the whole state and leaves the device as it was.
  assert.throws(() => restoreDevice(d, 3, { count: 5, unit: 'hours' }), StateError);
  assert.deepEqual(d.snapshot(), { count: 9, unit: 's' });
});
