import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IOREQ_TYPE_PIO } from '../../src/ioreq/abi.ts';
import { MAX_REP_BYTES } from '../../src/ioreq/server.ts';
import { FifoDevice, setup } from './helpers.ts';

const RAM = 1 << 16;

for (const fast of [false, true]) {
  const kind = fast ? 'readRep/writeRep fast path' : 'read/write per element';
  test(`REP INS forward fills guest RAM in order (${kind})`, () => {
    const fifo = new FifoDevice(fast);
    const { sim } = setup({ ramBytes: RAM }, (b) => b.pio.add('data', 0x1f0, 4, fifo));
    sim.insw(0x1f0, 0x1000, 4);
    assert.deepEqual([...sim.memread(0x1000, 8)], [1, 0, 2, 0, 3, 0, 4, 0]);
    sim.insb(0x1f0, 0x2000, 3);
    assert.deepEqual([...sim.memread(0x2000, 3)], [5, 6, 7]);
    sim.insl(0x1f0, 0x3000, 2);
    assert.deepEqual([...sim.memread(0x3000, 8)], [8, 0, 0, 0, 9, 0, 0, 0]);
    if (fast) assert.equal(fifo.repCalls, 3);
    else assert.equal(fifo.slowReads, 9);
  });

  test(`REP INS with df=1 stores element i at data - i*size (${kind})`, () => {
    const fifo = new FifoDevice(fast);
    const { sim } = setup({ ramBytes: RAM }, (b) => b.pio.add('data', 0x1f0, 4, fifo));
    sim.insw(0x1f0, 0x1006, 4, { df: true });
    // element 0 (value 1) at 0x1006, element 3 (value 4) at 0x1000
    assert.deepEqual([...sim.memread(0x1000, 8)], [4, 0, 3, 0, 2, 0, 1, 0]);
  });

  test(`REP OUTS forward and df=1 read guest RAM in element order (${kind})`, () => {
    const fifo = new FifoDevice(fast);
    const { sim } = setup({ ramBytes: RAM }, (b) => b.pio.add('data', 0x3f8, 4, fifo));
    sim.memwrite(0x500, [0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
    sim.outsb(0x3f8, 0x500, 3);
    sim.outsw(0x3f8, 0x504, 3, { df: true }); // 0x504, 0x502, 0x500
    sim.outsl(0x3f8, 0x500, 1);
    assert.deepEqual(fifo.written, [0x11, 0x22, 0x33, 0x6655, 0x4433, 0x2211, 0x44332211]);
  });
}

test('REP INS into memory outside guest RAM: no throw, vCPU answered, the rep ends at the fault', () => {
  const fifo = new FifoDevice(true);
  const { sim, server, lines } = setup({ ramBytes: RAM }, (b) => b.pio.add('data', 0x1f0, 4, fifo));
  // Starts 4 bytes before the end of RAM: two words fit, the third would not.
  sim.insw(0x1f0, RAM - 4, 8);
  assert.deepEqual([...sim.memread(RAM - 4, 4)], [1, 0, 2, 0]);
  assert.equal(fifo.next, 3, 'the device gave up only the elements that landed in RAM');
  // Entirely outside RAM (and a pointer with the high half set).
  sim.insl(0x1f0, 0x7_0000_0000, 4);
  sim.insw(0x1f0, 0, 4, { df: true }); // element 1 would be at -2
  assert.deepEqual([...sim.memread(0, 2)], [3, 0]);
  sim.outsw(0x1f0, RAM - 2, 4); // one word readable, then the fault
  assert.deepEqual(fifo.written, [sim.ram[RAM - 2] | (sim.ram[RAM - 1] << 8)]);
  assert.equal(server.stats.sync, 4);
  assert.equal(server.stats.repFaults, 4);
  assert.ok(lines.some((l) => l.level === 40 && String(l.msg).includes('REP')));
});

test('REP with an absurd count is clamped to the per-ioreq cap and still answered', () => {
  const fifo = new FifoDevice(false);
  const { sim, server } = setup({ ramBytes: RAM }, (b) => b.pio.add('data', 0x1f0, 4, fifo));
  sim.request({ type: IOREQ_TYPE_PIO, dir: 'read', addr: 0x1f0, data: 0, size: 1, count: 0xffffffff, dataIsPtr: true });
  assert.equal(fifo.slowReads, MAX_REP_BYTES);
  assert.equal(server.stats.repFaults, 1);
  // count 0 does nothing
  sim.request({ type: IOREQ_TYPE_PIO, dir: 'write', addr: 0x1f0, data: 0, size: 4, count: 0, dataIsPtr: true });
  assert.equal(fifo.slowWrites, 0);
});

test('REP INS from an unclaimed port stores all ones', () => {
  const { sim } = setup({ ramBytes: RAM });
  sim.insw(0x300, 0x100, 3);
  assert.deepEqual([...sim.memread(0x100, 6)], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
});

test('a fast path that claims too much is not trusted', () => {
  const fifo = new FifoDevice(false);
  fifo.readRep = () => 1e9; // lies
  const { sim } = setup({ ramBytes: RAM }, (b) => b.pio.add('data', 0x1f0, 4, fifo));
  sim.insb(0x1f0, 0x100, 2);
  assert.deepEqual([...sim.memread(0x100, 2)], [1, 2]);
});

// issue #15: a REP whose data pointer is at or above 2^52 reached GuestMemory; it is a REP fault now.
test('REP with a data pointer at or above 2^52 (beyond MAXPHYADDR) never reaches guest memory', () => {
  const fifo = new FifoDevice(true);
  const { sim, server } = setup({ ramBytes: RAM }, (b) => b.pio.add('data', 0x1f0, 4, fifo));
  const seen: number[] = [];
  const mem = sim.memory;
  const read = mem.read.bind(mem);
  const write = mem.write.bind(mem);
  mem.read = (gpa, dst, off, len) => (seen.push(gpa), read(gpa, dst, off, len));
  mem.write = (gpa, src, off, len) => (seen.push(gpa), write(gpa, src, off, len));
  const faults = server.stats.repFaults;
  for (const data of [2n ** 52n, 2n ** 52n + 0x1000n, 2n ** 63n, 2n ** 64n - 2n]) {
    sim.request({ type: IOREQ_TYPE_PIO, dir: 'read', addr: 0x1f0, data, size: 2, count: 4, dataIsPtr: true });
    sim.request({ type: IOREQ_TYPE_PIO, dir: 'write', addr: 0x1f0, data, size: 2, count: 4, dataIsPtr: true });
    sim.request({ type: IOREQ_TYPE_PIO, dir: 'read', addr: 0x1f0, data, size: 2, count: 4, dataIsPtr: true, df: true });
  }
  // The last two elements of a forward REP starting just below the limit cross it.
  sim.request({ type: IOREQ_TYPE_PIO, dir: 'read', addr: 0x1f0, data: 2n ** 52n - 4n, size: 2, count: 4, dataIsPtr: true });
  assert.deepEqual(seen.filter((a) => a + 2 > 2 ** 52), [], 'no access at or above 2^52');
  assert.equal(server.stats.repFaults - faults, 13);
  assert.equal(fifo.written.length, 0, 'REP OUTS moved nothing');
});
