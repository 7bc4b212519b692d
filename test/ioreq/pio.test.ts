import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IOREQ_TYPE_PIO } from '../../src/ioreq/abi.ts';
import { MemDevice, setup } from './helpers.ts';

test('PIO 1/2/4-byte writes and reads reach the device at region-relative offsets', () => {
  const dev = new MemDevice(8);
  const { sim, server } = setup({}, (b) => b.pio.add('dev', 0x1f0, 8, dev));
  sim.outb(0x1f0, 0x1ab); // driver masks to the access size like the CPU
  sim.outw(0x1f2, 0xbeef);
  sim.outl(0x1f4, 0xcafef00d);
  assert.deepEqual(dev.log, ['w0/1=ab', 'w2/2=beef', 'w4/4=cafef00d']);
  assert.equal(sim.inb(0x1f0), 0xab);
  assert.equal(sim.inw(0x1f2), 0xbeef);
  assert.equal(sim.inl(0x1f4), 0xcafef00d);
  assert.equal(sim.inl(0x1f0), 0xbeef00ab);
  assert.equal(server.stats.pio, 7);
  assert.equal(server.stats.sync, 7);
});

test('unclaimed and straddling ports read all ones and drop writes', () => {
  const dev = new MemDevice(4);
  const { sim, board } = setup({}, (b) => b.pio.add('dev', 0x60, 4, dev));
  assert.equal(sim.inb(0x70), 0xff);
  assert.equal(sim.inw(0x70), 0xffff);
  assert.equal(sim.inl(0x62), 0xffffffff); // 0x62..0x65 straddles the end of the region
  sim.outl(0x62, 0x12345678);
  sim.outb(0x80, 1);
  assert.deepEqual(dev.log, []);
  assert.equal(board.pio.unclaimedReads, 3);
  assert.equal(board.pio.unclaimedWrites, 2);
});

test('a port number above 0xffff or a bad size is answered with all ones, not dispatched', () => {
  const dev = new MemDevice(4);
  const { sim, server } = setup({}, (b) => b.pio.add('dev', 0, 4, dev));
  // addr's high half set: (1 << 32) | 0 must not alias port 0.
  assert.equal(sim.request({ type: IOREQ_TYPE_PIO, dir: 'read', addr: 1n << 32n, size: 1 }) & 0xffn, 0xffn);
  assert.equal(sim.request({ type: IOREQ_TYPE_PIO, dir: 'read', addr: 0x10000, size: 2 }) & 0xffffn, 0xffffn);
  assert.equal(sim.request({ type: IOREQ_TYPE_PIO, dir: 'read', addr: 0, size: 3 }), 0xffffffffffffffffn);
  sim.request({ type: IOREQ_TYPE_PIO, dir: 'write', addr: 0, size: 8, data: 5 });
  assert.deepEqual(dev.log, []);
  assert.equal(server.stats.sync, 4);
});

test('a write carries only the low `size` bytes of data to the device', () => {
  const dev = new MemDevice(4);
  const { sim } = setup({}, (b) => b.pio.add('dev', 0x10, 4, dev));
  // Xen may leave garbage above the access size in data; the device must see it masked.
  sim.request({ type: IOREQ_TYPE_PIO, dir: 'write', addr: 0x10, size: 1, data: 0xffffff42n });
  sim.request({ type: IOREQ_TYPE_PIO, dir: 'write', addr: 0x12, size: 2, data: 0x1234abcdn });
  assert.deepEqual(dev.log, ['w0/1=42', 'w2/2=abcd']);
});
