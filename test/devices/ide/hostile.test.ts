/**
 * What a hostile guest found (issue #15's audit), each a regression test:
 * - READ DMA started with Bus Master Enable off, BME turned on before the
 *   backend read completes: nothing may reach guest memory (the engine never
 *   fetched a PRD table, so it has no address to write to);
 * - READ SECTORS then SRST, or an ATAPI READ then DEVICE RESET (accepted while
 *   BSY), over and over on a slow disk: the backend requests in flight per
 *   drive stay within MAX_INFLIGHT_PER_DRIVE, and the drive still works;
 * - a disk removed by PV unplug while a PIO read is in flight raises no IRQ14
 *   when the read completes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdeRig, BMDMA_BASE, IDE_BASE, IDE_CTRL, settle, until, pattern } from './harness.ts';
import { MemoryBackend } from '../../../src/block/memory.ts';
import { FaultyBackend } from '../../../src/block/fault.ts';
import { MAX_INFLIGHT_PER_DRIVE } from '../../../src/devices/ide/drive.ts';

const BSY = 0x80, DRQ = 0x08, ERR = 0x01, SRST = 0x04;
const BM_STS_ACTIVE = 1, BM_STS_INTR = 4;
const IMAGE = 4 << 20;

function heldDisk(kind: 'disk' | 'cdrom' = 'disk') {
  const data = pattern(IMAGE, 5);
  const f = new FaultyBackend(new MemoryBackend(data, kind === 'cdrom'));
  f.hold = (op) => op === 'read';
  return f;
}

test('READ DMA started with Bus Master Enable off, BME on before the read completes: nothing reaches guest memory', async () => {
  const f = heldDisk();
  const q = new IdeRig([{ kind: 'disk', backend: f }]);
  q.ide.setBusMaster(false);
  // A PRD table the guest filled (the engine cannot fetch it without bus mastering).
  const prdt = q.alloc(8, 8);
  const buf = q.alloc(4096, 4096);
  q.memwrite(prdt, new Uint8Array([buf & 0xff, (buf >> 8) & 0xff, (buf >> 16) & 0xff, buf >>> 24, 0, 0x10, 0, 0x80]));
  const before = q.memread(0, 1 << 20);
  q.outb(IDE_BASE + 6, 0x40);
  q.outb(BMDMA_BASE + 2, BM_STS_INTR);
  q.outl(BMDMA_BASE + 4, prdt);
  q.outb(IDE_BASE + 2, 8);
  q.outb(IDE_BASE + 3, 0);
  q.outb(IDE_BASE + 7, 0xc8); // READ DMA, 8 sectors
  q.outb(BMDMA_BASE, 9); // Start, to memory
  await until(() => f.heldCount === 1, 'the backend read in flight');
  q.ide.setBusMaster(true);
  f.release();
  await until(() => !(q.inb(IDE_CTRL) & BSY) && (q.inb(BMDMA_BASE + 2) & (BM_STS_ACTIVE | BM_STS_INTR)) !== BM_STS_ACTIVE, 'completion');
  assert.deepEqual(q.memread(0, 1 << 20), before, 'no byte of guest memory changed (address 0 above all)');
  q.outb(BMDMA_BASE, 0);
  // With BME on from the start the same command delivers the data where the PRD says.
  q.outb(BMDMA_BASE + 2, BM_STS_INTR);
  q.inb(IDE_BASE + 7);
  f.hold = null;
  q.outb(IDE_BASE + 2, 8);
  q.outb(IDE_BASE + 3, 0);
  q.outb(IDE_BASE + 4, 0);
  q.outb(IDE_BASE + 5, 0);
  q.outb(IDE_BASE + 7, 0xc8);
  q.outb(BMDMA_BASE, 9);
  await until(() => (q.inb(BMDMA_BASE + 2) & BM_STS_INTR) !== 0, 'second completion');
  assert.deepEqual(q.memread(buf, 4096), pattern(IMAGE, 5).subarray(0, 4096));
});

test('READ SECTORS then SRST, 3000 times on a slow disk: requests in flight stay bounded, the drive still reads', async () => {
  const f = heldDisk();
  const q = new IdeRig([{ kind: 'disk', backend: f }]);
  for (let i = 0; i < 3000; i++) {
    q.outb(IDE_BASE + 6, 0x40);
    q.outb(IDE_BASE + 2, 0); // 256 sectors
    q.outb(IDE_BASE + 7, 0x20);
    q.outb(IDE_CTRL, SRST);
    q.outb(IDE_CTRL, 0);
    await settle(1);
    assert.ok(f.heldCount <= MAX_INFLIGHT_PER_DRIVE, `cycle ${i}: ${f.heldCount} reads in flight`);
  }
  assert.equal(f.heldCount, MAX_INFLIGHT_PER_DRIVE, 'the bound was reached, not avoided');
  // The slow reads finish: the last command runs and delivers the right data.
  f.hold = null;
  f.release();
  q.outb(IDE_BASE + 6, 0x40);
  q.outb(IDE_BASE + 2, 1);
  q.outb(IDE_BASE + 3, 3);
  q.outb(IDE_BASE + 7, 0x20);
  await until(() => (q.inb(IDE_CTRL) & (BSY | DRQ)) === DRQ, 'DRQ');
  const got = q.ins(IDE_BASE, 2, 256).data;
  assert.deepEqual(got, pattern(IMAGE, 5).subarray(3 * 512, 4 * 512));
  assert.equal(q.inb(IDE_BASE + 7) & (ERR | BSY | DRQ), 0);
});

test('ATAPI READ(10) then DEVICE RESET while BSY, 1000 times on a slow medium: requests in flight stay bounded', async () => {
  const f = heldDisk('cdrom');
  const q = new IdeRig([{ kind: 'cdrom', backend: f }]);
  const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  const cdb = [0x28, 0, ...be32(0), 0, 0, 32, 0, 0, 0];
  // The CD reports a medium change first: clear it with TEST UNIT READY until it is ready.
  for (let i = 0; i < 1000; i++) {
    q.outb(IDE_BASE + 6, 0);
    q.outb(IDE_BASE + 1, 0);
    q.outb(IDE_BASE + 4, 0xfe);
    q.outb(IDE_BASE + 5, 0xff);
    q.outb(IDE_BASE + 7, 0xa0);
    for (let k = 0; k < 6; k++) q.outw(IDE_BASE, cdb[2 * k] | (cdb[2 * k + 1] << 8));
    q.outb(IDE_BASE + 7, 0x08); // DEVICE RESET, accepted while BSY
    await settle(1);
    assert.ok(f.heldCount <= MAX_INFLIGHT_PER_DRIVE, `cycle ${i}: ${f.heldCount} reads in flight`);
  }
  assert.ok(f.heldCount > 0, 'reads were issued at all');
  f.hold = null;
  f.release();
  await settle(10);
});

test('a disk unplugged (PV) while a PIO read is in flight raises no IRQ14 when the read completes', async () => {
  const f = heldDisk();
  const q = new IdeRig([{ kind: 'disk', backend: f }]);
  q.outb(IDE_BASE + 6, 0x40);
  q.outb(IDE_BASE + 2, 1);
  q.outb(IDE_BASE + 7, 0x20);
  await until(() => f.heldCount === 1, 'the read in flight');
  assert.equal(q.ide.unplugDisks(false), 1);
  assert.equal(q.irq(14), false);
  f.release();
  await settle(10);
  assert.equal(q.irq(14), false, 'the removed disk is silent');
  assert.equal(q.inb(IDE_BASE + 7) & DRQ, 0, 'and shows nothing in the empty slot');
});
