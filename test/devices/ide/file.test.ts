/** The disk on a real raw image file (each cache mode): PIO and DMA land in the file, flush fsyncs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdeRig, BMDMA_BASE, until, pattern } from './harness.ts';
import { openBlockBackend } from '../../../src/block/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'stubdm-ide-'));

for (const cache of ['writeback', 'none', 'writethrough'] as const) {
  test(`raw file, cache=${cache}: IDENTIFY capacity, PIO write + DMA read back, DMA write lands in the file`, async () => {
    const path = join(dir, `disk-${cache}.img`);
    writeFileSync(path, new Uint8Array(8 << 20));
    const backend = await openBlockBackend({ path, cache });
    const q = new IdeRig([{ kind: 'disk', backend }]);
    q.outb(0x1f7, 0xec);
    const id = q.ins(0x1f0, 2, 256).data;
    assert.equal(id[120] | (id[121] << 8) | (id[122] << 16), (8 << 20) / 512);
    // PIO write of 2 sectors at LBA 10
    const w = pattern(1024, 4);
    q.outb(0x1f6, 0xe0);
    q.outb(0x1f2, 2);
    q.outb(0x1f3, 10);
    q.outb(0x1f4, 0);
    q.outb(0x1f5, 0);
    q.outb(0x1f7, 0x30);
    for (let s = 0; s < 2; s++) {
      await until(() => (q.inb(0x3f6) & 0x88) === 0x08, 'DRQ');
      q.outs(0x1f0, 2, w.subarray(s * 512, s * 512 + 512));
    }
    await until(() => q.irq(14) && !(q.inb(0x3f6) & 0x80), 'write done');
    assert.equal(q.inb(0x1f7) & 0x01, 0);
    // DMA read them back
    const buf = q.alloc(1024, 4096);
    const prdt = q.alloc(8, 8);
    const dv = new DataView(q.mem.ram.buffer, prdt, 8);
    dv.setUint32(0, buf, true);
    dv.setUint32(4, (1024 | 0x80000000) >>> 0, true);
    q.outl(BMDMA_BASE + 4, prdt);
    q.outb(BMDMA_BASE + 2, 4); // the PIO interrupts set the BM interrupt bit too: clear it
    q.outb(0x1f2, 2);
    q.outb(0x1f3, 10);
    q.outb(0x1f7, 0xc8);
    q.outb(BMDMA_BASE, 9);
    await until(() => (q.inb(BMDMA_BASE + 2) & 4) !== 0, 'dma read');
    q.outb(BMDMA_BASE, 0);
    q.outb(BMDMA_BASE + 2, 4);
    assert.equal(q.inb(0x1f7) & 0x89, 0);
    assert.deepEqual(q.memread(buf, 1024), w);
    // DMA write to LBA 100, flush, then the file holds it
    const w2 = pattern(1024, 99);
    q.memwrite(buf, w2);
    q.outb(BMDMA_BASE + 2, 4);
    q.outb(0x1f2, 2);
    q.outb(0x1f3, 100);
    q.outb(0x1f7, 0xca);
    q.outb(BMDMA_BASE, 1);
    await until(() => (q.inb(BMDMA_BASE + 2) & 4) !== 0, 'dma write');
    q.outb(BMDMA_BASE, 0);
    q.outb(0x1f7, 0xe7);
    await until(() => !(q.inb(0x3f6) & 0x80), 'flush');
    assert.equal(q.inb(0x1f7) & 0x01, 0);
    await backend.close();
    const f = readFileSync(path);
    assert.deepEqual(new Uint8Array(f.subarray(100 * 512, 102 * 512)), w2);
    assert.deepEqual(new Uint8Array(f.subarray(10 * 512, 12 * 512)), w);
  });
}

test('read-only image: writes abort, reads work', async () => {
  const path = join(dir, 'ro.img');
  writeFileSync(path, pattern(1 << 20, 1));
  const backend = await openBlockBackend({ path, readOnly: true });
  const q = new IdeRig([{ kind: 'disk', backend }]);
  q.outb(0x1f6, 0xe0);
  q.outb(0x1f2, 1);
  q.outb(0x1f3, 0);
  q.outb(0x1f7, 0x30);
  assert.equal(q.inb(0x1f7) & 0x01, 0x01);
  assert.equal(q.inb(0x1f1), 0x04);
  q.outb(0x1f7, 0x20);
  await until(() => q.irq(14), 'read');
  q.inb(0x1f7);
  assert.deepEqual(q.ins(0x1f0, 2, 256).data, pattern(1 << 20, 1).subarray(0, 512));
  await backend.close();
});
