import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IOREQ_TYPE_COPY } from '../../src/ioreq/abi.ts';
import { MemDevice, setup } from './helpers.ts';

const BAR = 0xfeb0_0000;

test('MMIO 1/2/4-byte accesses reach the device at region-relative offsets', () => {
  const dev = new MemDevice(16);
  const { sim, server } = setup({}, (b) => b.mmio.add('bar', BAR, 16, dev));
  sim.writeb(BAR + 1, 0x5a);
  sim.writew(BAR + 2, 0x1234);
  sim.writel(BAR + 4, 0x89abcdef);
  assert.equal(sim.readl(BAR), 0x12345a00);
  assert.equal(sim.readb(BAR + 7), 0x89);
  assert.equal(sim.readw(BAR + 4), 0xcdef);
  assert.equal(sim.readl(BAR + 0x10), 0xffffffff, 'past the region');
  assert.deepEqual(dev.log.slice(0, 3), ['w1/1=5a', 'w2/2=1234', 'w4/4=89abcdef']);
  assert.equal(server.stats.mmio, 7);
});

test('an 8-byte MMIO access is split into two 4-byte device accesses, low half first', () => {
  const dev = new MemDevice(16);
  const { sim } = setup({}, (b) => b.mmio.add('bar', BAR, 16, dev));
  sim.writeq(BAR + 8, 0x0102030405060708n);
  assert.deepEqual(dev.log, ['w8/4=5060708', 'w12/4=1020304']);
  dev.log.length = 0;
  assert.equal(sim.readq(BAR + 8), 0x0102030405060708n);
  assert.deepEqual(dev.log, ['r8/4=5060708', 'r12/4=1020304']);
  // Above 4 GiB: the address high half must be used.
  const hi = new MemDevice(8);
  const { sim: s2 } = setup({}, (b) => b.mmio.add('hi', 0x1_0000_0000 + 0x40, 8, hi));
  s2.writeq(0x1_0000_0040, 0xffffffff_00000001n);
  assert.deepEqual(hi.log, ['w0/4=1', 'w4/4=ffffffff']);
  assert.equal(s2.readl(0x40), 0xffffffff, 'the low alias is not the same address');
});

test('REP STOS stores the same value count times, forward and with df=1, 8-byte elements split', () => {
  const dev = new MemDevice(64);
  const { sim } = setup({}, (b) => b.mmio.add('bar', BAR, 64, dev));
  sim.stos(BAR, 4, 0xa5a5a5a5, 4);
  assert.deepEqual(dev.log, ['w0/4=a5a5a5a5', 'w4/4=a5a5a5a5', 'w8/4=a5a5a5a5', 'w12/4=a5a5a5a5']);
  dev.log.length = 0;
  sim.stos(BAR + 20, 2, 0x77, 3, { df: true });
  assert.deepEqual(dev.log, ['w20/2=77', 'w18/2=77', 'w16/2=77']);
  dev.log.length = 0;
  sim.stos(BAR + 32, 8, 0x11111111_22222222n, 2);
  assert.deepEqual(dev.log, ['w32/4=22222222', 'w36/4=11111111', 'w40/4=22222222', 'w44/4=11111111']);
});

test('a repeated MMIO read without pointer leaves the last value', () => {
  const dev = new MemDevice(16);
  const { sim } = setup({}, (b) => b.mmio.add('bar', BAR, 16, dev));
  dev.bytes.set([1, 0, 2, 0, 3, 0]);
  assert.equal(sim.mmioRepRead(BAR, 2, 3), 3n);
  assert.equal(sim.mmioRepRead(BAR + 4, 2, 3, { df: true }), 1n);
});

test('REP MOVS between MMIO and guest RAM, both directions, forward and backward', () => {
  const dev = new MemDevice(32);
  const { sim } = setup({}, (b) => b.mmio.add('bar', BAR, 32, dev));
  // RAM -> MMIO forward
  sim.memwrite(0x1000, [1, 2, 3, 4, 5, 6, 7, 8]);
  sim.movsToMmio(BAR, 0x1000, 4, 2);
  assert.deepEqual([...dev.bytes.subarray(0, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
  // MMIO -> RAM forward with 8-byte elements
  dev.bytes.set([9, 10, 11, 12, 13, 14, 15, 16], 8);
  sim.movsFromMmio(BAR, 0x2000, 8, 2);
  assert.deepEqual([...sim.memread(0x2000, 16)], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
  // MMIO -> RAM backward: element i from BAR+6-2i to 0x3006-2i, same layout
  sim.movsFromMmio(BAR + 6, 0x3006, 2, 4, { df: true });
  assert.deepEqual([...sim.memread(0x3000, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
  // RAM -> MMIO backward, 1-byte elements
  sim.memwrite(0x4000, [0xa, 0xb, 0xc]);
  dev.log.length = 0;
  sim.movsToMmio(BAR + 22, 0x4002, 1, 3, { df: true });
  assert.deepEqual(dev.log, ['w22/1=c', 'w21/1=b', 'w20/1=a']);
});

test('REP MOVS with the RAM side outside guest RAM ends at the fault and is answered', () => {
  const dev = new MemDevice(32);
  const { sim, server } = setup({ ramBytes: 0x10000 }, (b) => b.mmio.add('bar', BAR, 32, dev));
  sim.movsToMmio(BAR, 0xfffc, 4, 4); // one dword readable
  assert.equal(dev.log.length, 1);
  sim.movsFromMmio(BAR, 0x20000, 4, 4); // nothing writable: device not read
  assert.equal(dev.log.length, 1);
  assert.equal(server.stats.repFaults, 2);
});

test('bad MMIO sizes are answered with all ones and not dispatched', () => {
  const dev = new MemDevice(16);
  const { sim } = setup({}, (b) => b.mmio.add('bar', BAR, 16, dev));
  assert.equal(sim.request({ type: IOREQ_TYPE_COPY, dir: 'read', addr: BAR, size: 16 }), 0xffffffffffffffffn);
  sim.request({ type: IOREQ_TYPE_COPY, dir: 'write', addr: BAR, size: 3, data: 1 });
  assert.deepEqual(dev.log, []);
});

test('a moved BAR is seen at once (the server region cache follows bus changes), three regions interleaved', () => {
  const a = new MemDevice(16);
  const b = new MemDevice(16);
  const c = new MemDevice(16);
  const { sim, board } = setup();
  const ra = board.mmio.add('a', BAR, 16, a);
  board.mmio.add('b', BAR + 0x1000, 16, b);
  board.mmio.add('c', 0xa0000, 16, c);
  a.bytes[0] = 1;
  b.bytes[0] = 2;
  c.bytes[0] = 3;
  for (let i = 0; i < 3; i++) {
    assert.equal(sim.readb(BAR), 1);
    assert.equal(sim.readb(BAR + 0x1000), 2);
    assert.equal(sim.readb(0xa0000), 3);
  }
  board.mmio.remove(ra);
  board.mmio.add('a', BAR + 0x2000, 16, a);
  assert.equal(sim.readb(BAR), 0xff, 'old address no longer decodes');
  assert.equal(sim.readb(BAR + 0x2000), 1);
  assert.equal(board.mmio.unclaimedReads, 1);
});
