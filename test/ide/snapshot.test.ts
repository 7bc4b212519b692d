/**
 * Save/restore: the controller state is plain data (v8.serialize round trip),
 * and a restored controller carries on mid-command, re-issuing the request
 * that was in flight by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { IdeRig, BMDMA_BASE, IDE_BASE, IDE_CTRL, until, pattern } from './harness.ts';
import { MemoryBackend } from '../../src/block/memory.ts';
import { FaultyBackend } from '../../src/block/fault.ts';
import type { IdeSaved } from '../../src/devices/ide/controller.ts';
import { StateError } from '../../src/core/state.ts';
import type { StateObject } from '../../src/core/device.ts';

const roundTrip = (s: IdeSaved): IdeSaved => v8.deserialize(v8.serialize(s)) as IdeSaved;

test('restore in the middle of a PIO read: the guest keeps reading where it was', async () => {
  const mem = new MemoryBackend(1 << 20);
  const data = pattern(1024, 8);
  mem.data.set(data, 512 * 9);
  const a = new IdeRig([{ kind: 'disk', backend: mem }]);
  a.outb(IDE_BASE + 6, 0xe0);
  a.outb(IDE_BASE + 2, 2);
  a.outb(IDE_BASE + 3, 9);
  a.outb(IDE_BASE + 7, 0x20);
  await until(() => a.irq(14), 'first block');
  a.inb(IDE_BASE + 7);
  const first = a.ins(IDE_BASE, 2, 100).data;
  const snap = roundTrip(a.ide.snapshot());
  const b = new IdeRig([{ kind: 'disk', backend: mem }]);
  b.ide.restore(snap);
  const rest = b.ins(IDE_BASE, 2, 156).data;
  await until(() => b.irq(14), 'second block');
  b.inb(IDE_BASE + 7);
  const second = b.ins(IDE_BASE, 2, 256).data;
  assert.deepEqual(new Uint8Array([...first, ...rest, ...second]), data);
  assert.equal(b.inb(IDE_BASE + 7) & 0x89, 0);
});

test('restore with a flush in flight: the flush is issued again and completes with an interrupt', async () => {
  const mem = new MemoryBackend(1 << 20);
  const held = new FaultyBackend(mem);
  held.hold = () => true;
  const a = new IdeRig([{ kind: 'disk', backend: held }]);
  a.outb(IDE_BASE + 7, 0xe7);
  await until(() => held.heldCount === 1, 'flush held');
  const snap = roundTrip(a.ide.snapshot());
  assert.equal(snap.drives[0].io, 'flush');
  const b = new IdeRig([{ kind: 'disk', backend: mem }]);
  b.ide.restore(snap);
  assert.equal(b.inb(IDE_CTRL) & 0x80, 0x80, 'BSY after restore');
  await until(() => b.irq(14), 'flush completion');
  assert.equal(b.inb(IDE_BASE + 7), 0x50);
  assert.equal(mem.flushes, 1);
});

test('restore with a DMA read running: the transfer restarts and lands in guest RAM', async () => {
  const mem = new MemoryBackend(1 << 20);
  mem.data.set(pattern(2048, 3), 0);
  const held = new FaultyBackend(mem);
  held.hold = () => true;
  const a = new IdeRig([{ kind: 'disk', backend: held }]);
  const prdt = a.alloc(8, 8);
  const dv = new DataView(a.mem.ram.buffer, prdt, 8);
  dv.setUint32(0, 0x40000, true);
  dv.setUint32(4, (4096 | 0x80000000) >>> 0, true); // longer than the transfer: Active stays
  a.outl(BMDMA_BASE + 4, prdt);
  a.outb(IDE_BASE + 6, 0xe0);
  a.outb(IDE_BASE + 2, 4);
  a.outb(IDE_BASE + 3, 0);
  a.outb(IDE_BASE + 7, 0xc8);
  a.outb(BMDMA_BASE, 9);
  await until(() => held.heldCount === 1, 'dma read held');
  const snap = roundTrip(a.ide.snapshot());
  const b = new IdeRig([{ kind: 'disk', backend: mem }]);
  b.mem.ram.set(a.mem.ram); // guest memory travels with the VM
  b.ide.restore(snap);
  await until(() => (b.inb(BMDMA_BASE + 2) & 4) !== 0, 'dma done');
  assert.equal(b.inb(BMDMA_BASE + 2) & 7, 5);
  assert.equal(b.irq(14), true);
  assert.deepEqual(b.memread(0x40000, 2048), pattern(2048, 3));
  assert.equal(b.inb(IDE_BASE + 7) & 0x89, 0);
});

test('restore refuses a snapshot of another machine or shape', () => {
  const a = new IdeRig([{ kind: 'disk', backend: new MemoryBackend(1 << 20) }]);
  const b = new IdeRig([{ kind: 'cdrom', backend: null }]);
  assert.throws(() => b.ide.restore(a.ide.snapshot()), (e) => e instanceof StateError && /slot 0 holds disk/.test(e.message));
  assert.throws(() => b.ide.restore({ v: 2 } as unknown as StateObject), StateError);
});

test('a pending interrupt and nIEN survive a restore', () => {
  const a = new IdeRig([{ kind: 'disk', backend: new MemoryBackend(1 << 20) }]);
  a.outb(IDE_BASE + 7, 0xe5);
  assert.equal(a.irq(14), true);
  const b = new IdeRig([{ kind: 'disk', backend: new MemoryBackend(1 << 20) }]);
  b.ide.restore(roundTrip(a.ide.snapshot()));
  assert.equal(b.irq(14), true);
  b.outb(IDE_CTRL, 0x02);
  const c = new IdeRig([{ kind: 'disk', backend: new MemoryBackend(1 << 20) }]);
  c.ide.restore(roundTrip(b.ide.snapshot()));
  assert.equal(c.irq(14), false, 'masked by nIEN');
  c.outb(IDE_CTRL, 0x00);
  assert.equal(c.irq(14), true);
});
