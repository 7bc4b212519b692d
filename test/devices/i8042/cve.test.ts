/**
 * QEMU's PS/2 CVE replayed against our i8042 (docs/cve.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { I8042, QUEUE_SIZE } from '../../../src/devices/i8042/index.ts';
import { StateError, type StateObject } from '../../../src/core/device.ts';

const STR_OBF = 0x01;

test('CVE-2017-16845: saved PS/2 queues longer than the buffer, or with bytes out of range, are refused and change nothing', () => {
  // QEMU's ps2 post_load trusted the migrated rptr/count and read out of bounds.
  const dev = new I8042({ set: () => {} }, { set: () => {} }, () => {}, pino({ level: 'silent' }));
  dev.cmdPort.write(0, 1, 0xad); // keyboard interface off: keys stay queued
  dev.pressKey([1, 2, 3]);
  const good = structuredClone(dev.snapshot());
  const bad: Array<(s: Record<string, any>) => void> = [
    (s) => (s.kbd.queue = new Uint8Array(QUEUE_SIZE + 1)),
    (s) => (s.aux.queue = new Uint8Array(4096)),
    (s) => (s.ctl = Array.from({ length: QUEUE_SIZE + 1 }, () => 0xfa)),
    (s) => (s.ctl = [0x1ffff]),
    (s) => (s.ctl = [-2]),
    (s) => (s.kbd.queue = Array.from({ length: 4 }, () => 300)),
  ];
  for (const corrupt of bad) {
    const s = structuredClone(good) as Record<string, any>;
    corrupt(s);
    assert.throws(() => dev.restore(s as StateObject), StateError);
    assert.deepEqual(dev.snapshot(), good, 'unchanged after a refused restore');
  }
  dev.cmdPort.write(0, 1, 0xae);
  const got: number[] = [];
  for (let i = 0; i < QUEUE_SIZE + 4 && dev.cmdPort.read(0, 1) & STR_OBF; i++) got.push(dev.dataPort.read(0, 1));
  assert.deepEqual(got, [1, 2, 3]);
});
