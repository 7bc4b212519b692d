import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoBus, OverlapError } from '../../src/core/bus.ts';
import type { IoHandler } from '../../src/core/io.ts';

function recorder(): IoHandler & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    read(off, size) {
      log.push(`r${off}/${size}`);
      return 0x1234;
    },
    write(off, size, v) {
      log.push(`w${off}/${size}=${v.toString(16)}`);
    },
  };
}

test('regions dispatch relative offsets and refuse overlaps', () => {
  const bus = new IoBus('pio');
  const a = recorder();
  const b = recorder();
  bus.add('a', 0x1f0, 8, a);
  bus.add('b', 0x3f6, 1, b);
  assert.throws(() => bus.add('c', 0x1f7, 2, recorder()), OverlapError);
  assert.throws(() => bus.add('d', 0x1e0, 0x11, recorder()), OverlapError);
  assert.equal(bus.read(0x1f7, 1), 0x1234);
  bus.write(0x3f6, 1, 0x1ff);
  assert.deepEqual(a.log, ['r7/1']);
  assert.deepEqual(b.log, ['w0/1=ff']);
});

test('unclaimed and straddling accesses float high and drop writes', () => {
  const bus = new IoBus('pio');
  const a = recorder();
  bus.add('a', 0x10, 4, a);
  assert.equal(bus.read(0x20, 2), 0xffff);
  assert.equal(bus.read(0x12, 4), 0xffffffff); // straddles the end
  bus.write(0x13, 2, 1);
  assert.deepEqual(a.log, []);
  assert.equal(bus.unclaimedReads, 2);
  assert.equal(bus.unclaimedWrites, 1);
});

test('listeners see claims and releases; remove then add moves a region', () => {
  const bus = new IoBus('mmio');
  const events: string[] = [];
  bus.add('early', 0x1000, 0x100, recorder());
  bus.onChange((e, s, end) => events.push(`${e} ${s.toString(16)}-${end.toString(16)}`));
  const r = bus.add('bar', 0xf0000000, 0x20000, recorder());
  bus.remove(r);
  bus.add('bar', 0xf1000000, 0x20000, recorder());
  assert.deepEqual(events, ['add 1000-10ff', 'add f0000000-f001ffff', 'remove f0000000-f001ffff', 'add f1000000-f101ffff']);
  assert.equal(bus.find(0xf0000000, 4), null);
  assert.equal(bus.find(0xf101fffc, 4)?.name, 'bar');
});
