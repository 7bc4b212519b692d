/**
 * QEMU's CVEs for the IDE controller, ATAPI and bus-master DMA, each as what
 * the guest did to QEMU, replayed against our model. Oracles: nothing throws,
 * every wait is bounded, guest memory changes only where the guest pointed
 * the DMA, and the drive still answers IDENTIFY after a soft reset.
 * The list and what each CVE was: docs/cve.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdeRig, BMDMA_BASE, IDE_BASE, IDE_CTRL, settle, until } from './harness.ts';
import { MemoryBackend } from '../../../src/block/memory.ts';

const BSY = 0x80, DRDY = 0x40, DRQ = 0x08, ERR = 0x01, ABRT = 0x04;
const SRST = 0x04;
const BM_START = 1, BM_TO_MEMORY = 8, BM_INTR = 4, BM_ACTIVE = 1;
const CD = 2048;

const disk = (bytes = 1 << 20, readOnly = false) => ({ kind: 'disk' as const, backend: new MemoryBackend(bytes, readOnly) });
const cdrom = (blocks: number | null = 16) => ({ kind: 'cdrom' as const, backend: blocks === null ? null : new MemoryBackend(blocks * CD, true) });

/** Soft reset through Device Control, then IDENTIFY (DEVICE or PACKET DEVICE): the drive answers 256 words. */
async function answers(q: IdeRig, unit = 0): Promise<void> {
  q.outb(IDE_CTRL, SRST);
  q.outb(IDE_CTRL, 0);
  await settle();
  q.outb(IDE_BASE + 6, unit << 4);
  const cd = q.inb(IDE_BASE + 4) === 0x14 && q.inb(IDE_BASE + 5) === 0xeb;
  q.outb(IDE_BASE + 7, cd ? 0xa1 : 0xec);
  await until(() => (q.inb(IDE_CTRL) & (BSY | DRQ)) === DRQ, 'IDENTIFY data');
  const w0 = q.inw(IDE_BASE);
  for (let i = 1; i < 256; i++) q.inw(IDE_BASE);
  assert.equal(q.inb(IDE_BASE + 7) & (BSY | DRQ | ERR), 0, 'IDENTIFY completes');
  assert.equal(cd ? w0 >> 14 : w0 & 0x8000, cd ? 2 : 0, 'word 0 says what the device is');
}

/** Task file + command; returns Status once the drive is not busy (bounded). */
async function ata(q: IdeRig, cmd: number, r: { feature?: number; count?: number; lba?: number; device?: number } = {}): Promise<number> {
  const lba = r.lba ?? 0;
  q.outb(IDE_BASE + 1, r.feature ?? 0);
  q.outb(IDE_BASE + 2, r.count ?? 1);
  q.outb(IDE_BASE + 3, lba & 0xff);
  q.outb(IDE_BASE + 4, (lba >> 8) & 0xff);
  q.outb(IDE_BASE + 5, (lba >> 16) & 0xff);
  q.outb(IDE_BASE + 6, r.device ?? 0x40);
  q.outb(IDE_BASE + 7, cmd);
  await until(() => (q.inb(IDE_CTRL) & BSY) === 0, `command ${cmd.toString(16)} leaves BSY`);
  return q.inb(IDE_BASE + 7);
}

/** PACKET with a CDB, PIO, byte count limit `limit`; returns status, error and the data read (bounded). */
async function packet(q: IdeRig, cdb: number[], limit = 0xfffe): Promise<{ status: number; error: number; bytes: number }> {
  q.outb(IDE_BASE + 1, 0);
  q.outb(IDE_BASE + 4, limit & 0xff);
  q.outb(IDE_BASE + 5, limit >> 8);
  q.outb(IDE_BASE + 7, 0xa0);
  const pkt = new Uint8Array(12);
  pkt.set(cdb);
  for (let i = 0; i < 6; i++) q.outw(IDE_BASE, pkt[2 * i] | (pkt[2 * i + 1] << 8));
  let bytes = 0;
  for (let n = 0; n < 4096; n++) {
    await until(() => (q.inb(IDE_CTRL) & BSY) === 0, 'packet phase');
    const s = q.inb(IDE_BASE + 7);
    if (!(s & DRQ)) return { status: s, error: q.inb(IDE_BASE + 1), bytes };
    const size = q.inb(IDE_BASE + 4) | (q.inb(IDE_BASE + 5) << 8);
    for (let i = 0; i < Math.ceil(size / 2); i++) q.inw(IDE_BASE);
    bytes += size;
  }
  throw new Error('packet command never ended');
}

const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

function prdt(q: IdeRig, entries: Array<[number, number]>): number {
  const a = q.alloc(entries.length * 8, 8);
  const b = new Uint8Array(entries.length * 8);
  const v = new DataView(b.buffer);
  entries.forEach(([addr, size], i) => {
    v.setUint32(i * 8, addr >>> 0, true);
    v.setUint32(i * 8 + 4, size >>> 0, true);
  });
  q.memwrite(a, b);
  return a;
}

/** Guest RAM outside [from, from+len) is unchanged since `before`. */
function onlyChanged(q: IdeRig, before: Uint8Array, ranges: Array<[number, number]>): void {
  const now = q.mem.ram;
  for (let i = 0; i < now.length; i++) {
    if (now[i] === before[i]) continue;
    if (ranges.some(([a, n]) => i >= a && i < a + n)) continue;
    assert.fail(`guest RAM changed at 0x${i.toString(16)}, outside every range the guest named`);
  }
}

test('CVE-2014-9718: a PRD table with zero complete sectors (BMDMA) neither loops nor grows; only the named bytes change', async () => {
  // QEMU's bmdma_prepare_buf returned "0 bytes" and "0 whole sectors" the same way, so a PRDT
  // shorter than a sector made ide_dma_cb restart forever (and leak). Here: 2-, 6- and 510-byte tables.
  const q = new IdeRig([disk()]);
  for (const size of [2, 6, 510]) {
    for (let round = 0; round < 50; round++) {
      const buf = q.alloc(size, 2);
      const table = prdt(q, [[buf, 0x80000000 | size]]);
      const before = q.mem.ram.slice();
      q.outb(BMDMA_BASE, 0);
      q.outb(BMDMA_BASE + 2, BM_INTR);
      q.outl(BMDMA_BASE + 4, table);
      q.outb(IDE_BASE + 2, 1);
      q.outb(IDE_BASE + 3, 0);
      q.outb(IDE_BASE + 4, 0);
      q.outb(IDE_BASE + 5, 0);
      q.outb(IDE_BASE + 6, 0x40);
      q.outb(IDE_BASE + 7, 0xc8); // READ DMA, 1 sector
      q.outb(BMDMA_BASE, BM_START | BM_TO_MEMORY);
      await until(() => (q.inb(BMDMA_BASE + 2) & (BM_ACTIVE | BM_INTR)) !== BM_ACTIVE || !(q.inb(IDE_CTRL) & BSY), 'DMA settles');
      await settle(5);
      q.outb(BMDMA_BASE, 0);
      onlyChanged(q, before, [[buf, size]]);
      await answers(q);
    }
  }
});

test('CVE-2015-5154: writing past the end of an ATAPI packet or a PIO transfer never overruns the buffer', async () => {
  // QEMU's ide_atapi_cmd_reply_end / ide_data_writew let a guest keep writing the data port past
  // the I/O buffer. Here: 64 Ki extra words after a CDB, after a PIO WRITE, and reads past the end.
  const q = new IdeRig([disk(), cdrom()]);
  q.outb(IDE_BASE + 6, 0x10);
  q.outb(IDE_BASE + 4, 0xfe);
  q.outb(IDE_BASE + 5, 0xff);
  q.outb(IDE_BASE + 7, 0xa0); // PACKET
  for (let i = 0; i < 65536; i++) q.outw(IDE_BASE, 0x2800 + (i & 0xff));
  for (let i = 0; i < 65536; i++) q.inw(IDE_BASE);
  await settle();
  await answers(q, 1);
  q.outb(IDE_BASE + 6, 0);
  await ata(q, 0x30, { count: 1 }); // WRITE SECTORS: one sector of DRQ
  for (let i = 0; i < 65536; i++) q.outw(IDE_BASE, i);
  q.outl(IDE_BASE, 0xdeadbeef);
  await settle();
  for (let i = 0; i < 65536; i++) q.inw(IDE_BASE);
  await answers(q, 0);
});

test('CVE-2015-6855: ATA-only commands to an ATAPI drive (empty or not) abort; nothing divides by zero', async () => {
  // QEMU let a CD-ROM take disk commands; WIN_READ_NATIVE_MAX on an empty drive divided by zero.
  const diskOnly = [0x20, 0x24, 0x25, 0x27, 0x29, 0x30, 0x34, 0x35, 0x39, 0x40, 0x42, 0x91, 0xb0, 0xc4, 0xc5, 0xc6, 0xc8, 0xca, 0xe7, 0xea, 0xf8];
  for (const medium of [null, 16]) {
    const q = new IdeRig([cdrom(medium)]);
    for (const op of diskOnly) {
      const st = await ata(q, op, { device: 0x40 });
      assert.equal(st & (ERR | DRQ), ERR, `opcode ${op.toString(16)} on ${medium === null ? 'an empty' : 'a loaded'} CD: ERR, no DRQ`);
      assert.equal(q.inb(IDE_BASE + 1) & ABRT, ABRT, `opcode ${op.toString(16)}: ABRT`);
    }
    await answers(q);
  }
  // A disk with nonsense geometry (INITIALIZE DEVICE PARAMETERS with 0 sectors per track, 1 head) then CHS I/O.
  const q = new IdeRig([disk()]);
  await ata(q, 0x91, { count: 0, device: 0x00 });
  for (const op of [0x20, 0xf8, 0x40]) {
    const st = await ata(q, op, { device: 0x00, lba: 0x0101, count: 1 });
    if (st & DRQ) for (let i = 0; i < 256; i++) q.inw(IDE_BASE);
    for (let r = 1; r <= 6; r++) assert.ok(Number.isInteger(q.inb(IDE_BASE + r)));
  }
  await answers(q);
});

test('CVE-2014-2894: SMART commands, over and over, stay in bounds (the self-test log index wrapped in QEMU)', async () => {
  const q = new IdeRig([disk()]);
  for (let i = 0; i < 64; i++) {
    for (const feature of [0xd4, 0xd0, 0xd1, 0xd5, 0xd8, 0xd9, 0xda]) {
      const st = await ata(q, 0xb0, { feature, lba: 0xc24f00 | (i & 0xff), count: 1, device: 0xa0 });
      if (st & DRQ) for (let w = 0; w < 256; w++) q.inw(IDE_BASE);
    }
  }
  await answers(q);
});

test('CVE-2020-29443: ATAPI reads whose LBA or length wrap 32 bits are refused as out of range, no data phase', async () => {
  // QEMU's ide_atapi_cmd_reply_end indexed its buffer with an unchecked LBA (out-of-bounds read).
  const q = new IdeRig([cdrom(16)]);
  const reads: number[][] = [
    [0x28, 0, ...be32(0xffffffff), 0, 0, 2, 0], // READ(10) at the last 32-bit LBA
    [0x28, 0, ...be32(15), 0, 0xff, 0xff, 0], // starts in range, runs off the medium
    [0xa8, 0, ...be32(0xfffffffe), ...be32(0xffffffff), 0, 0], // READ(12): lba + count wraps
    [0xbe, 0, ...be32(0xffffffff), 0, 0, 1, 0x10, 0, 0], // READ CD, user data
    [0x28, 0, ...be32(16), 0, 0, 1, 0], // one past the end
  ];
  for (const cdb of reads) {
    const r = await packet(q, cdb);
    assert.equal(r.status & ERR, ERR, `CDB ${cdb.slice(0, 10)} errors`);
    assert.equal(r.bytes, 0, 'no data phase');
    assert.equal(r.error >> 4, 5, 'ILLEGAL REQUEST');
  }
  const ok = await packet(q, [0x28, 0, ...be32(15), 0, 0, 1, 0]);
  assert.equal(ok.bytes, CD, 'the last block still reads');
  await answers(q);
});

test('CVE-2015-7311 (XSA-142): a read-only disk refuses guest writes (PIO and DMA); the image is unchanged', async () => {
  // libxl never told qemu-xen that a disk was read-only, so the guest could write it.
  const d = disk(1 << 20, true);
  d.backend.data.fill(0x5a);
  const q = new IdeRig([d]);
  const st = await ata(q, 0x30, { count: 1 });
  if (st & DRQ) for (let i = 0; i < 256; i++) q.outw(IDE_BASE, 0x1234);
  await settle();
  assert.equal(q.inb(IDE_BASE + 7) & ERR, ERR, 'PIO write fails');
  const buf = q.alloc(512, 2);
  q.outb(BMDMA_BASE, 0);
  q.outl(BMDMA_BASE + 4, prdt(q, [[buf, 0x80000000 | 512]]));
  await ata(q, 0xca, { count: 1 });
  q.outb(BMDMA_BASE, BM_START);
  await until(() => !(q.inb(IDE_CTRL) & BSY), 'WRITE DMA ends');
  await settle();
  q.outb(BMDMA_BASE, 0);
  assert.equal(q.inb(IDE_BASE + 7) & ERR, ERR, 'DMA write fails');
  assert.ok(d.backend.data.every((b) => b === 0x5a), 'image unchanged');
  await answers(q);
});
