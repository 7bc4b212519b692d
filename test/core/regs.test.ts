import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DWORD_ONLY, EXACT, RC, RegisterTable, RO, W1C, WO } from '../../src/core/regs.ts';

interface Dev {
  regs: Uint32Array;
  log: string[];
  live: number;
}

const T = new RegisterTable<Dev>('test', 0x40, [
  { name: 'CTRL', off: 0x00, width: 4, init: 0x8000_0001, write: (d, v, old) => d.log.push(`ctrl ${v.toString(16)} was ${old.toString(16)}`) },
  { name: 'STATUS', off: 0x04, width: 4, flags: RO, init: 0x1234_5678 },
  { name: 'ICR', off: 0x08, width: 4, flags: RC },
  { name: 'ISR', off: 0x0c, width: 2, flags: W1C, mask: 0x00ff },
  { name: 'LIVE', off: 0x0e, width: 2, read: (d) => d.live },
  { name: 'DW', off: 0x10, width: 4, flags: DWORD_ONLY },
  { name: 'CMD', off: 0x14, width: 4, flags: WO, write: (d, v) => d.log.push(`cmd ${v}`) },
  { name: 'RA', off: 0x20, width: 4, count: 4, write: (d, v, _o, i) => d.log.push(`ra${i}=${v.toString(16)}`) },
  { name: 'MAGIC', off: 0x30, width: 2, flags: EXACT, read: () => 0x49d2 },
  { name: 'FLAGS', off: 0x30, width: 1, flags: EXACT },
]);

function dev(): Dev {
  return { regs: T.storage(), log: [], live: 0xbeef };
}

test('register table: reset values, partial reads, read-only, read handlers', () => {
  const d = dev();
  assert.equal(T.read(d, d.regs, 0x00, 4), 0x8000_0001);
  assert.equal(T.read(d, d.regs, 0x03, 1), 0x80);
  assert.equal(T.read(d, d.regs, 0x02, 2), 0x8000);
  T.write(d, d.regs, 0x04, 4, 0);
  assert.equal(T.read(d, d.regs, 0x04, 4), 0x1234_5678);
  assert.equal(T.read(d, d.regs, 0x0e, 2), 0xbeef);
  // A read spanning two registers is assembled byte by byte: ISR (0) low, LIVE high.
  assert.equal(T.read(d, d.regs, 0x0c, 4), 0xbeef_0000);
  assert.equal(T.read(d, d.regs, 0x3c, 4), 0, 'unclaimed reads 0 (the table default)');
});

test('register table: partial writes merge, side effects see new and old values', () => {
  const d = dev();
  T.write(d, d.regs, 0x01, 1, 0xab);
  assert.equal(T.read(d, d.regs, 0x00, 4), 0x8000_ab01);
  assert.deepEqual(d.log, ['ctrl 8000ab01 was 80000001']);
});

test('register table: read-to-clear, write-1-to-clear with mask, write-only', () => {
  const d = dev();
  d.regs[T.slot('ICR')] = 0x55;
  assert.equal(T.read(d, d.regs, 0x08, 4), 0x55);
  assert.equal(T.read(d, d.regs, 0x08, 4), 0);
  d.regs[T.slot('ISR')] = 0x0f;
  T.write(d, d.regs, 0x0c, 2, 0xff05); // bits 8-15 are outside the mask: nothing there changes
  assert.equal(T.read(d, d.regs, 0x0c, 2), 0x0a);
  T.write(d, d.regs, 0x14, 4, 7);
  assert.equal(T.read(d, d.regs, 0x14, 4), 0, 'write-only reads 0');
  assert.equal(d.regs[T.slot('CMD')], 7);
  assert.deepEqual(d.log, ['cmd 7']);
});

test('register table: DWORD_ONLY refuses narrow or misaligned accesses', () => {
  const d = dev();
  T.write(d, d.regs, 0x10, 4, 0x11223344);
  assert.equal(T.read(d, d.regs, 0x10, 4), 0x11223344);
  assert.equal(T.read(d, d.regs, 0x10, 2), 0xffff);
  T.write(d, d.regs, 0x10, 1, 0);
  T.write(d, d.regs, 0x12, 2, 0);
  assert.equal(T.read(d, d.regs, 0x10, 4), 0x11223344);
});

test('register table: arrays pass their index; EXACT entries depend on access size', () => {
  const d = dev();
  T.write(d, d.regs, 0x28, 4, 0xc0ffee);
  assert.equal(T.read(d, d.regs, 0x28, 4), 0xc0ffee);
  assert.equal(d.regs[T.slot('RA', 2)], 0xc0ffee);
  assert.deepEqual(d.log, ['ra2=c0ffee']);
  assert.equal(T.read(d, d.regs, 0x30, 2), 0x49d2);
  T.write(d, d.regs, 0x30, 1, 0x5a);
  assert.equal(T.read(d, d.regs, 0x30, 1), 0x5a);
  assert.equal(T.read(d, d.regs, 0x30, 4), 0, 'no entry for a dword at 0x30');
  assert.throws(() => T.slot('RA', 4), RangeError);
});

test('register table: out-of-window accesses and bad definitions', () => {
  const d = dev();
  assert.equal(T.read(d, d.regs, 0x3e, 4), 0);
  T.write(d, d.regs, 0x3e, 4, 0xffffffff);
  assert.equal(T.read(d, d.regs, -1, 1), 0);
  assert.throws(() => new RegisterTable('bad', 8, [{ name: 'A', off: 6, width: 4 }]), /outside/);
  assert.throws(
    () => new RegisterTable('bad', 8, [{ name: 'A', off: 0, width: 4 }, { name: 'B', off: 2, width: 2 }]),
    /B overlaps A/,
  );
  const t2 = new RegisterTable<Dev>('ff', 4, [{ name: 'A', off: 0, width: 1 }], 0xffffffff);
  assert.equal(t2.read(d, t2.storage(), 1, 2), 0xffff, 'unclaimed bytes read as the table says');
  const regs = t2.storage();
  regs[0] = 9;
  t2.reset(regs);
  assert.equal(regs[0], 0);
});

test('register table: w1c mixes write-1-to-clear and read/write bits in one register', () => {
  // A bus-master IDE status: bit 0 read-only, bits 1-2 write-1-to-clear, bits 5-6 read/write.
  const M = new RegisterTable<{ n: number }>('mixed', 4, [
    { name: 'ST', off: 0, width: 1, mask: 0x66, w1c: 0x06, write: (d) => void d.n++ },
    { name: 'W', off: 2, width: 2, mask: 0xff0f, w1c: 0x0f00 },
  ]);
  const d = { n: 0 };
  const r = M.storage();
  r[M.slot('ST')] = 0x07; // active, error, interrupt set by the device
  M.write(d, r, 0, 1, 0x64); // clear interrupt, set both drive bits, try to clear active
  assert.equal(M.read(d, r, 0, 1), 0x63);
  M.write(d, r, 0, 1, 0x00); // zeros leave W1C bits alone, clear the R/W ones
  assert.equal(M.read(d, r, 0, 1), 0x03);
  M.write(d, r, 0, 1, 0xff); // read-only bits 0 and 7 never change
  assert.equal(M.read(d, r, 0, 1), 0x61);
  assert.equal(d.n, 3);
  // Partial access: the high byte's W1C bits (within the mask) clear, the low byte's R/W bits take the value.
  r[M.slot('W')] = 0x0f00;
  M.write(d, r, 3, 1, 0x05);
  assert.equal(M.read(d, r, 2, 2), 0x0a00);
  M.write(d, r, 2, 1, 0xff);
  assert.equal(M.read(d, r, 2, 2), 0x0a0f, 'low byte: only the mask bits 0-3 written');
  // A w1c bit outside the mask is not writable at all.
  const N = new RegisterTable<object>('outside', 1, [{ name: 'X', off: 0, width: 1, mask: 0x0f, w1c: 0xf0 }]);
  const rn = N.storage();
  rn[0] = 0xf0;
  N.write({}, rn, 0, 1, 0xff);
  assert.equal(rn[0], 0xff);
});

test('register table: nameAt names the register at an offset, its array index and byte', () => {
  assert.equal(T.nameAt(0x00), 'CTRL');
  assert.equal(T.nameAt(0x03), 'CTRL+3');
  assert.equal(T.nameAt(0x0e), 'LIVE');
  assert.equal(T.nameAt(0x24), 'RA[1]');
  assert.equal(T.nameAt(0x2e), 'RA[3]+2');
  // Unclaimed, outside the window, and EXACT-only offsets (not in the byte map) have no name.
  for (const off of [0x18, 0x3c, 0x40, -4, 0.5, NaN, 0x30]) assert.equal(T.nameAt(off), null, String(off));
});
