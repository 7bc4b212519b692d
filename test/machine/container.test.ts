import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerLength, decodeContainer, encodeContainer, HEADER_BYTES, isPlainState, recordSizes, type DeviceRecord } from '../../src/machine/container.ts';
import { StateError } from '../../src/core/state.ts';
import { prng } from '../ioreq/helpers.ts';

const records: DeviceRecord[] = [
  { id: 'uart.com1', version: 1, state: { ier: 3, rx: [1, 2, 3], timer: null, flag: true } },
  { id: 'ide', version: 2, state: { buf: new Uint8Array([0, 1, 255]), nested: { s: 'READ', bytes: new Uint8Array(0) } } },
];

test('container round-trips records, byte arrays included, and says its own length', () => {
  const blob = encodeContainer(records);
  assert.equal(containerLength(blob.subarray(0, HEADER_BYTES)), blob.length);
  const back = decodeContainer(blob);
  assert.deepEqual(back, records);
  assert.ok(back[1].state.buf instanceof Uint8Array);
  // Trailing bytes (a stream that goes on) are not part of it.
  const more = new Uint8Array(blob.length + 10);
  more.set(blob);
  assert.deepEqual(decodeContainer(more), records);
});

test('container refuses what is not plain state at encode time', () => {
  assert.throws(() => encodeContainer([{ id: 'x', version: 1, state: { f: NaN } }]), TypeError);
  assert.throws(() => encodeContainer([{ id: 'x', version: 1, state: { $bytes: 1 } }]), TypeError);
  assert.throws(() => encodeContainer([{ id: 'x', version: 1, state: { m: new Map() as never } }]), TypeError);
  assert.throws(() => encodeContainer([{ id: 'x', version: 1, state: { u: undefined as never } }]), TypeError);
  assert.throws(() => encodeContainer([{ id: 'Bad Id', version: 1, state: {} }]), TypeError);
  assert.equal(isPlainState({ a: [1, new Uint8Array(2)] }), true);
  assert.equal(isPlainState({ a: () => 1 } as never), false);
});

test('container refuses truncation, corruption, other magic, newer formats, duplicate ids', () => {
  const blob = encodeContainer(records);
  assert.throws(() => decodeContainer(blob.subarray(0, blob.length - 1)), /truncated/);
  assert.throws(() => containerLength(blob.subarray(0, 10)), /truncated/);
  const bad = new Uint8Array(blob);
  bad[HEADER_BYTES + 5] ^= 1;
  assert.throws(() => decodeContainer(bad), /checksum/);
  const magic = new Uint8Array(blob);
  magic[0] = 0x41;
  assert.throws(() => decodeContainer(magic), /bad magic/);
  const newer = new Uint8Array(blob);
  new DataView(newer.buffer).setUint32(8, 2, true);
  assert.throws(() => decodeContainer(newer), /newer than this stubdm reads/);
  const dup = encodeContainer([records[0], { ...records[0] }]);
  assert.throws(() => decodeContainer(dup), /appears twice/);
});

test('container decoding of random corruption never throws anything but StateError', () => {
  const r = prng(42);
  const blob = encodeContainer(records);
  for (let i = 0; i < 2000; i++) {
    const b = new Uint8Array(blob);
    const n = 1 + Math.floor(r() * 4);
    for (let k = 0; k < n; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    const cut = r() < 0.2 ? b.subarray(0, Math.floor(r() * b.length)) : b;
    try {
      decodeContainer(cut);
    } catch (e) {
      assert.ok(e instanceof StateError, `unexpected ${(e as Error).name}: ${(e as Error).message}`);
    }
  }
});

test('recordSizes names each record with its payload length, and gives {} for garbage', () => {
  const records: DeviceRecord[] = [
    { id: 'a.one', version: 1, state: { x: 1 } },
    { id: 'b', version: 2, state: { bytes: new Uint8Array(300) } },
  ];
  const blob = encodeContainer(records);
  const sizes = recordSizes(blob);
  assert.deepEqual(Object.keys(sizes), ['a.one', 'b']);
  assert.equal(sizes['a.one'], JSON.stringify({ x: 1 }).length);
  assert.ok(sizes['b']! > 400, `300 bytes in base64 are 400 characters, got ${sizes['b']}`);
  assert.deepEqual({ ...recordSizes(new Uint8Array(10)) }, {});
  assert.deepEqual({ ...recordSizes(blob.subarray(0, HEADER_BYTES + 6)) }, {});
});
