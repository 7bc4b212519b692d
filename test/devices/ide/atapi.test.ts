/**
 * ATAPI CD-ROM, modelled on QEMU ide-test.c cdrom_pio_impl / test_cdrom_dma
 * plus the packet commands a guest driver issues (Linux sr/cdrom, SeaBIOS,
 * Windows): sense, unit attention, TOC, mode pages, tray.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdeRig, BMDMA_BASE, IDE_BASE, IDE_CTRL, until } from './harness.ts';
import { MemoryBackend } from '../../../src/block/memory.ts';
import { FaultyBackend } from '../../../src/block/fault.ts';
import type { BlockBackend } from '../../../src/block/backend.ts';

const BSY = 0x80, DRDY = 0x40, DRQ = 0x08, ERR = 0x01;
const CD = 2048;
const BYTE_COUNT_LIMIT = 5120;

/** generate_pattern from ide-test: each 2048-byte block distinct. */
function cdPattern(blocks: number): Uint8Array {
  const b = new Uint8Array(blocks * CD);
  for (let i = 0; i < b.length; i++) b[i] = (Math.floor(i / CD) * 13 + (i % 251)) & 0xff;
  return b;
}

function cdrom(backend: BlockBackend | null = new MemoryBackend(cdPattern(16), true)) {
  return { kind: 'cdrom' as const, backend };
}

interface PacketResult {
  status: number;
  error: number;
  data: Uint8Array;
  blocks: number[];
}

/** PACKET with PIO data-in: HP0..HP4 of ATA8-ACS 7.18, checking each phase as ide-test does. */
async function packet(q: IdeRig, cdb: number[], limit = BYTE_COUNT_LIMIT, unit = 0): Promise<PacketResult> {
  q.outb(IDE_BASE + 6, unit << 4);
  q.outb(IDE_BASE + 1, 0);
  q.outb(IDE_BASE + 4, limit & 0xff);
  q.outb(IDE_BASE + 5, (limit >> 8) & 0xff);
  q.outb(IDE_BASE + 7, 0xa0);
  const st = q.inb(IDE_CTRL);
  assert.equal(st & (DRQ | BSY | ERR), DRQ, 'HP1 Send_Packet: DRQ');
  assert.equal(q.inb(IDE_BASE + 2) & 3, 1, 'interrupt reason: C/D, to device');
  assert.equal(q.irq(14), false, 'no interrupt before the packet');
  const pkt = new Uint8Array(12);
  cdb.forEach((v, i) => (pkt[i] = v));
  for (let i = 0; i < 6; i++) q.outw(IDE_BASE, pkt[2 * i] | (pkt[2 * i + 1] << 8));
  const out: number[] = [];
  const blocks: number[] = [];
  // Bounded: one pass per DRQ block; a command moves at most 64 blocks in these tests.
  for (let n = 0; n < 5000; n++) {
    await until(() => q.irq(14), 'HP3 INTRQ_Wait');
    const s = q.inb(IDE_BASE + 7);
    assert.equal(q.irq(14), false);
    assert.equal(s & BSY, 0);
    if (!(s & DRQ)) {
      assert.equal(q.inb(IDE_BASE + 2) & 3, 3, 'completion: I/O + C/D');
      return { status: s, error: q.inb(IDE_BASE + 1), data: new Uint8Array(out), blocks };
    }
    assert.equal(s & (DRDY | ERR), DRDY);
    assert.equal(q.inb(IDE_BASE + 2) & 3, 2, 'data to host');
    const size = q.inb(IDE_BASE + 4) | (q.inb(IDE_BASE + 5) << 8);
    blocks.push(size);
    for (let i = 0; i < Math.ceil(size / 2); i++) {
      const w = q.inw(IDE_BASE);
      out.push(w & 0xff);
      if (2 * i + 1 < size) out.push(w >> 8);
    }
  }
  throw new Error('too many DRQ blocks');
}

const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const read10 = (lba: number, n: number) => [0x28, 0, ...be32(lba), 0, n >> 8, n & 0xff, 0];
const sense = async (q: IdeRig) => {
  const r = await packet(q, [0x03, 0, 0, 0, 18, 0]);
  return [r.data[2] & 0xf, r.data[12], r.data[13]];
};

for (const nblocks of [1, Math.floor((BYTE_COUNT_LIMIT * 4) / CD)]) {
  test(`ATAPI PIO READ(10) of ${nblocks} block(s) in bursts of the byte count limit (ide-test cdrom_pio)`, async () => {
    const pat = cdPattern(Math.max(16, nblocks));
    const q = new IdeRig([cdrom(new MemoryBackend(pat, true))]);
    const r = await packet(q, read10(0, nblocks));
    assert.equal(r.status & (ERR | DRQ | BSY), 0);
    assert.deepEqual(r.data, pat.subarray(0, nblocks * CD));
    const limit = BYTE_COUNT_LIMIT & ~1;
    const expect: number[] = [];
    for (let left = nblocks * CD; left > 0; left -= limit) expect.push(Math.min(left, limit));
    assert.deepEqual(r.blocks, expect);
  });
}

test('ATAPI PIO byte count limits: odd limits round down, 0 and 0xFFFF mean 0xFFFE, tiny limits work', async () => {
  const pat = cdPattern(40);
  const q = new IdeRig([cdrom(new MemoryBackend(pat, true))]);
  for (const [limit, blk] of [[5121, 5120], [2, 2], [3, 2], [2048, 2048], [3000, 3000], [0, 0xfffe], [0xffff, 0xfffe]]) {
    const n = limit === 2 || limit === 3 ? 1 : 33;
    const r = await packet(q, read10(3, n), limit);
    assert.deepEqual(r.data, pat.subarray(3 * CD, (3 + n) * CD), `limit ${limit}`);
    assert.equal(r.blocks[0], Math.min(blk, n * CD), `limit ${limit}`);
    assert.ok(r.blocks.every((b) => b <= blk));
  }
});

test('ATAPI DMA READ(10) (ide-test cdrom_dma) and DMA of a reply (INQUIRY)', async () => {
  const pat = cdPattern(16);
  const q = new IdeRig([cdrom(new MemoryBackend(pat, true))]);
  const dma = async (cdb: number[], len: number) => {
    const buf = q.alloc(len);
    const prdt = q.alloc(8, 8);
    const p = new DataView(new ArrayBuffer(8));
    p.setUint32(0, buf, true);
    p.setUint32(4, (len | 0x80000000) >>> 0, true);
    q.memwrite(prdt, new Uint8Array(p.buffer));
    q.outb(IDE_BASE + 6, 0);
    q.outb(BMDMA_BASE, 0);
    q.outb(BMDMA_BASE + 2, 4);
    q.outl(BMDMA_BASE + 4, prdt);
    q.outb(IDE_BASE + 1, 0x01); // DMA
    q.outb(IDE_BASE + 7, 0xa0);
    const pkt = new Uint8Array(12);
    cdb.forEach((v, i) => (pkt[i] = v));
    for (let i = 0; i < 6; i++) q.outw(IDE_BASE, pkt[2 * i] | (pkt[2 * i + 1] << 8));
    q.outb(BMDMA_BASE, 0x09);
    await until(() => (q.inb(BMDMA_BASE + 2) & 5) !== 1, 'dma done');
    assert.equal(q.inb(BMDMA_BASE + 2) & 7, 4);
    assert.equal(q.irq(14), true);
    assert.equal(q.inb(IDE_BASE + 7) & (ERR | DRQ | BSY | DRDY), DRDY);
    assert.equal(q.inb(IDE_BASE + 2) & 3, 3);
    q.outb(BMDMA_BASE, 0);
    return q.memread(buf, len);
  };
  assert.deepEqual(await dma(read10(0, 1), CD), pat.subarray(0, CD));
  assert.deepEqual(await dma(read10(5, 3), 3 * CD), pat.subarray(5 * CD, 8 * CD));
  const inq = await dma([0x12, 0, 0, 0, 36, 0], 36);
  assert.equal(inq[0], 0x05);
});

test('IDENTIFY PACKET DEVICE: ATAPI CD-ROM, removable, 12-byte packets, DMA, checksum', async () => {
  const q = new IdeRig([cdrom()]);
  q.outb(IDE_BASE + 7, 0xa1);
  assert.equal(q.irq(14), true);
  assert.equal(q.inb(IDE_BASE + 7) & (DRQ | DRDY), DRQ | DRDY);
  const { data } = q.ins(IDE_BASE, 2, 256);
  const w = (i: number) => data[2 * i] | (data[2 * i + 1] << 8);
  assert.equal(w(0), 0x85c0);
  assert.equal(w(49) & 0x0300, 0x0300);
  assert.equal(w(82) & (1 << 4), 1 << 4, 'PACKET feature set');
  let model = '';
  for (let i = 27; i < 47; i++) model += String.fromCharCode(w(i) >> 8, w(i) & 0xff);
  assert.equal(model.trimEnd(), 'STUBDM DVD-ROM');
  assert.equal(w(255) & 0xff, 0xa5);
  let sum = 0;
  for (const b of data) sum += b;
  assert.equal(sum & 0xff, 0);
  assert.equal(q.inb(IDE_BASE + 7) & DRQ, 0);
});

test('INQUIRY, READ CAPACITY, allocation lengths truncate replies; EVPD is an invalid field', async () => {
  const q = new IdeRig([cdrom()]);
  let r = await packet(q, [0x12, 0, 0, 0, 36, 0]);
  assert.equal(r.data.length, 36);
  assert.deepEqual([...r.data.subarray(0, 5)], [0x05, 0x80, 0x00, 0x21, 31]);
  assert.equal(String.fromCharCode(...r.data.subarray(8, 14)), 'STUBDM');
  r = await packet(q, [0x12, 0, 0, 0, 5, 0]);
  assert.equal(r.data.length, 5);
  r = await packet(q, [0x12, 0, 0, 0, 0, 0]);
  assert.equal(r.data.length, 0);
  assert.equal(r.status & ERR, 0);
  r = await packet(q, [0x12, 1, 0x80, 0, 36, 0]);
  assert.equal(r.status & ERR, ERR);
  assert.equal(r.error >> 4, 5);
  assert.deepEqual(await sense(q), [5, 0x24, 0]);
  r = await packet(q, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...r.data], [0, 0, 0, 15, 0, 0, 8, 0]);
});

test('READ beyond the medium: ILLEGAL REQUEST / LBA OUT OF RANGE; READ(12); zero-length read', async () => {
  const pat = cdPattern(16);
  const q = new IdeRig([cdrom(new MemoryBackend(pat, true))]);
  let r = await packet(q, read10(15, 2));
  assert.equal(r.status & ERR, ERR);
  assert.equal(r.error, 0x50);
  assert.deepEqual(await sense(q), [5, 0x21, 0]);
  r = await packet(q, [0x28, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0]);
  assert.equal(r.status & ERR, ERR);
  r = await packet(q, [0xa8, 0, ...be32(2), ...be32(2), 0, 0]);
  assert.deepEqual(r.data, pat.subarray(2 * CD, 4 * CD));
  r = await packet(q, [0xa8, 0, ...be32(0), ...be32(0x10000000), 0, 0]);
  assert.equal(r.status & ERR, ERR, 'READ(12) length beyond the medium');
  r = await packet(q, read10(3, 0));
  assert.equal(r.status & ERR, 0);
  assert.equal(r.data.length, 0);
});

test('unknown opcode: CHECK CONDITION, ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE', async () => {
  const q = new IdeRig([cdrom()]);
  for (const op of [0x01, 0x2a, 0xff, 0x55]) {
    const r = await packet(q, [op]);
    assert.equal(r.status & (ERR | DRDY), ERR | DRDY);
    assert.equal(r.error, 0x50);
    assert.deepEqual(await sense(q), [5, 0x20, 0]);
  }
  assert.deepEqual(await sense(q), [0, 0, 0], 'sense of a successful REQUEST SENSE is clean');
});

test('no medium: NOT READY / MEDIUM NOT PRESENT for medium commands; INQUIRY still works', async () => {
  const q = new IdeRig([cdrom(null)]);
  for (const cdb of [[0x00], read10(0, 1), [0x25], [0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0]]) {
    const r = await packet(q, cdb);
    assert.equal(r.status & ERR, ERR);
    assert.equal(r.error, 0x20);
    assert.deepEqual(await sense(q), [2, 0x3a, 0]);
  }
  const r = await packet(q, [0x12, 0, 0, 0, 36, 0]);
  assert.equal(r.status & ERR, 0);
  const ev = await packet(q, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.deepEqual([...ev.data], [0, 6, 4, 0x10, 0, 0, 0, 0]);
});

test('media change: NOT READY once, then UNIT ATTENTION 06/28/00 until REQUEST SENSE; events report new media', async () => {
  const q = new IdeRig([cdrom(null)]);
  const drive = q.ide.channels[0].drives[0];
  drive.changeMedium(new MemoryBackend(cdPattern(16), true));
  let r = await packet(q, [0x00]);
  assert.equal(r.error, 0x20, 'first: NOT READY (tray seen empty)');
  r = await packet(q, [0x00]);
  assert.equal(r.error, 0x60, 'then UNIT ATTENTION');
  r = await packet(q, [0x00]);
  assert.equal(r.error, 0x60, 'UNIT ATTENTION stays until reported by REQUEST SENSE');
  const ev = await packet(q, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.deepEqual([...ev.data], [0, 6, 4, 0x10, 2, 2, 0, 0], 'GET EVENT STATUS allowed during UA: new media, present');
  assert.deepEqual(await sense(q), [6, 0x28, 0]);
  r = await packet(q, [0x00]);
  assert.equal(r.status & ERR, 0);
  const ev2 = await packet(q, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.equal(ev2.data[4], 0, 'event reported once');
  const noPoll = await packet(q, [0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.equal(noPoll.error, 0x50, 'asynchronous event status is not supported');
});

test('READ TOC formats 0, 1, 2 in LBA and MSF; start track checks; SFF-8020 format in byte 9', async () => {
  const q = new IdeRig([cdrom(new MemoryBackend(cdPattern(1000), true))]);
  let r = await packet(q, [0x43, 0, 0, 0, 0, 0, 0, 0, 100, 0]);
  assert.deepEqual([...r.data], [0, 18, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0, 0, 0x16, 0xaa, 0, ...be32(1000)]);
  r = await packet(q, [0x43, 2, 0, 0, 0, 0, 0, 0, 100, 0]);
  // MSF: track 1 at 00:02:00, lead-out 1000+150 frames = 00:15:25
  assert.deepEqual([...r.data], [0, 18, 1, 1, 0, 0x14, 1, 0, 0, 0, 2, 0, 0, 0x16, 0xaa, 0, 0, 0, 15, 25]);
  r = await packet(q, [0x43, 0, 0, 0, 0, 0, 0xaa, 0, 100, 0]);
  assert.deepEqual([...r.data], [0, 10, 1, 1, 0, 0x16, 0xaa, 0, ...be32(1000)]);
  r = await packet(q, [0x43, 0, 0, 0, 0, 0, 2, 0, 100, 0]);
  assert.equal(r.error, 0x50, 'track 2 does not exist');
  r = await packet(q, [0x43, 0, 1, 0, 0, 0, 0, 0, 100, 0]);
  assert.deepEqual([...r.data], [0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
  r = await packet(q, [0x43, 0, 0, 0, 0, 0, 0, 0, 100, 0x40]);
  assert.deepEqual([...r.data], [0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0], 'format 1 from byte 9');
  r = await packet(q, [0x43, 2, 2, 0, 0, 0, 0, 0, 100, 0]);
  assert.equal(r.data.length, 4 + 4 * 11);
  assert.deepEqual([...r.data.subarray(0, 4)], [0, 46, 1, 1]);
  assert.deepEqual([...r.data.subarray(4, 15)], [1, 0x14, 0, 0xa0, 0, 0, 0, 0, 1, 0, 0]);
  assert.deepEqual([...r.data.subarray(26, 37)], [1, 0x14, 0, 0xa2, 0, 0, 0, 0, 0, 15, 25]);
  r = await packet(q, [0x43, 0, 0, 0, 0, 0, 0, 0, 4, 0]);
  assert.equal(r.data.length, 4, 'allocation length');
  r = await packet(q, [0x43, 0, 5, 0, 0, 0, 0, 0, 100, 0]);
  assert.equal(r.error, 0x50, 'unsupported format');
});

test('MODE SENSE(10): pages 01, 2A, 3F; saved values refused; unknown page refused', async () => {
  const q = new IdeRig([cdrom()]);
  let r = await packet(q, [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 255, 0]);
  assert.equal(r.data.length, 30);
  assert.deepEqual([r.data[0], r.data[1], r.data[8], r.data[9]], [0, 28, 0x2a, 0x14]);
  assert.equal(r.data[14] & 0x29, 0x29, 'lock, eject, tray');
  r = await packet(q, [0x5a, 0, 0x01, 0, 0, 0, 0, 0, 255, 0]);
  assert.deepEqual([...r.data], [0, 14, 0x70, 0, 0, 0, 0, 0, 1, 6, 0, 5, 0, 0, 0, 0]);
  r = await packet(q, [0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 255, 0]);
  assert.equal(r.data.length, 38);
  r = await packet(q, [0x5a, 0, 0xc0 | 0x2a, 0, 0, 0, 0, 0, 255, 0]);
  assert.equal(r.error, 0x50);
  assert.deepEqual(await sense(q), [5, 0x39, 0]);
  r = await packet(q, [0x5a, 0, 0x05, 0, 0, 0, 0, 0, 255, 0]);
  assert.deepEqual(await sense(q), [5, 0x24, 0]);
  r = await packet(q, [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 8, 0]);
  assert.equal(r.data.length, 8);
});

test('GET CONFIGURATION: CD-ROM profile current; DVD for a large medium; none when empty', async () => {
  let q = new IdeRig([cdrom()]);
  let r = await packet(q, [0x46, 0, 0, 0, 0, 0, 0, 0, 64, 0]);
  assert.equal((r.data[6] << 8) | r.data[7], 0x0008);
  assert.equal(r.data[18] & 1, 1);
  r = await packet(q, [0x46, 3, 0, 0, 0, 0, 0, 0, 64, 0]);
  assert.equal(r.error, 0x50);
  const big = new MemoryBackend(0);
  Object.defineProperty(big, 'size', { value: 400000 * CD });
  q = new IdeRig([cdrom(big)]);
  r = await packet(q, [0x46, 0, 0, 0, 0, 0, 0, 0, 64, 0]);
  assert.equal((r.data[6] << 8) | r.data[7], 0x0010);
  q = new IdeRig([cdrom(null)]);
  r = await packet(q, [0x46, 0, 0, 0, 0, 0, 0, 0, 64, 0]);
  assert.equal((r.data[6] << 8) | r.data[7], 0);
});

test('START STOP UNIT ejects and loads; PREVENT blocks the eject; MECHANISM STATUS shows the tray', async () => {
  const q = new IdeRig([cdrom()]);
  let r = await packet(q, [0x1e, 0, 0, 0, 1, 0]);
  assert.equal(r.status & ERR, 0);
  r = await packet(q, [0x1b, 0, 0, 0, 2, 0]);
  assert.equal(r.error, 0x20, 'locked: NOT READY / MEDIUM REMOVAL PREVENTED');
  assert.deepEqual(await sense(q), [2, 0x53, 2]);
  await packet(q, [0x1e, 0, 0, 0, 0, 0]);
  r = await packet(q, [0x1b, 0, 0, 0, 2, 0]);
  assert.equal(r.status & ERR, 0);
  r = await packet(q, [0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]);
  assert.equal(r.data[1], 0x10, 'door open');
  r = await packet(q, [0x00]);
  assert.equal(r.error, 0x20, 'tray open: NOT READY');
  const ev = await packet(q, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.deepEqual([ev.data[4], ev.data[5]], [3, 1], 'media removal, tray open');
  r = await packet(q, [0x1b, 0, 0, 0, 3, 0]);
  r = await packet(q, [0x00]);
  assert.equal(r.status & ERR, 0, 'loaded again');
});

test('READ CD: user data reads like READ(10); raw sectors and other sector types are refused', async () => {
  const pat = cdPattern(16);
  const q = new IdeRig([cdrom(new MemoryBackend(pat, true))]);
  let r = await packet(q, [0xbe, 0, ...be32(3), 0, 0, 2, 0x10, 0, 0]);
  assert.deepEqual(r.data, pat.subarray(3 * CD, 5 * CD));
  r = await packet(q, [0xbe, 0x08, ...be32(3), 0, 0, 1, 0x10, 0, 0]);
  assert.equal(r.data.length, CD, 'mode 1 expected: fine');
  r = await packet(q, [0xbe, 0, ...be32(3), 0, 0, 1, 0, 0, 0]);
  assert.equal(r.status & ERR, 0);
  assert.equal(r.data.length, 0);
  r = await packet(q, [0xbe, 0, ...be32(3), 0, 0, 1, 0xf8, 0, 0]);
  assert.equal(r.error, 0x50);
  r = await packet(q, [0xbe, 0x04, ...be32(3), 0, 0, 1, 0x10, 0, 0]);
  assert.equal(r.error, 0x50, 'CD-DA sector type');
  r = await packet(q, [0xbe, 0, ...be32(15), 0, 0, 2, 0x10, 0, 0]);
  assert.deepEqual(await sense(q), [5, 0x21, 0]);
});

test('READ DISC INFORMATION, SEEK, SET CD SPEED', async () => {
  const q = new IdeRig([cdrom()]);
  let r = await packet(q, [0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0]);
  assert.deepEqual([...r.data.subarray(0, 8)], [0, 32, 0x0e, 1, 1, 1, 1, 0x20]);
  r = await packet(q, [0x51, 1, 0, 0, 0, 0, 0, 0, 34, 0]);
  assert.equal(r.error, 0x50);
  r = await packet(q, [0x2b, 0, ...be32(3), 0, 0, 0, 0]);
  assert.equal(r.status & ERR, 0);
  r = await packet(q, [0x2b, 0, ...be32(300), 0, 0, 0, 0]);
  assert.equal(r.error, 0x50);
  r = await packet(q, [0xbb, 0, 0xff, 0xff, 0xff, 0xff]);
  assert.equal(r.status & ERR, 0);
});

test('CD read error from the backend: MEDIUM ERROR 03/11, logged', async () => {
  const f = new FaultyBackend(new MemoryBackend(cdPattern(16), true));
  f.rule = (op, off) => (op === 'read' && off >= 4 * CD ? 'EIO' : null);
  const q = new IdeRig([cdrom(f)]);
  const r = await packet(q, read10(4, 1));
  assert.equal(r.error, 0x30);
  assert.deepEqual(await sense(q), [3, 0x11, 0]);
  assert.ok(q.logLines.some((l) => l.includes('backend error')));
});

test('DEVICE RESET on a busy ATAPI device: signature, status 0; ATA commands abort on ATAPI', async () => {
  const f = new FaultyBackend(new MemoryBackend(cdPattern(16), true));
  const q = new IdeRig([cdrom(f)]);
  f.hold = () => true;
  q.outb(IDE_BASE + 4, 0);
  q.outb(IDE_BASE + 5, 8);
  q.outb(IDE_BASE + 7, 0xa0);
  for (const w of [0x28, 0, 0, 0, 1, 0]) q.outw(IDE_BASE, w);
  await until(() => f.heldCount === 1, 'read in flight');
  assert.equal(q.inb(IDE_CTRL) & BSY, BSY);
  q.outb(IDE_BASE + 7, 0x08);
  assert.equal(q.inb(IDE_BASE + 7), 0);
  assert.deepEqual([q.inb(IDE_BASE + 4), q.inb(IDE_BASE + 5)], [0x14, 0xeb]);
  f.release();
  await until(() => f.heldCount === 0, 'released');
  assert.equal(q.inb(IDE_BASE + 7), 0, 'late completion dropped');
  for (const cmd of [0x20, 0xc8, 0x30, 0xe7, 0xc6]) {
    q.outb(IDE_BASE + 7, cmd);
    assert.equal(q.inb(IDE_BASE + 7) & ERR, ERR, `cmd ${cmd.toString(16)}`);
  }
  // PACKET with overlap requested is refused
  q.outb(IDE_BASE + 1, 2);
  q.outb(IDE_BASE + 7, 0xa0);
  assert.equal(q.inb(IDE_BASE + 7) & ERR, ERR);
});

test('odd-length reply: the last word carries one byte', async () => {
  const q = new IdeRig([cdrom()]);
  const r = await packet(q, [0x12, 0, 0, 0, 7, 0]);
  assert.equal(r.data.length, 7);
  assert.deepEqual(r.blocks, [7]);
});

test('operator media change: refused while the guest locks the tray (eject request event) unless forced', async () => {
  const q = new IdeRig([null, null, cdrom()]);
  const sec = async (cdb: number[]) => {
    // secondary channel, device 0
    q.outb(0x176, 0);
    q.outb(0x174, 0);
    q.outb(0x175, 0x10);
    q.outb(0x177, 0xa0);
    const p = new Uint8Array(12);
    cdb.forEach((v, i) => (p[i] = v));
    q.outs(0x170, 2, p);
    await until(() => q.irq(15), 'irq 15');
    let st = q.inb(0x177);
    const data: number[] = [];
    if (st & DRQ) {
      const n = q.inb(0x174) | (q.inb(0x175) << 8);
      data.push(...q.ins(0x170, 2, Math.ceil(n / 2)).data.subarray(0, n));
      await until(() => q.irq(15), 'completion');
      st = q.inb(0x177);
    }
    return { st, err: q.inb(0x171), data };
  };
  assert.equal((await sec([0x1e, 0, 0, 0, 1, 0])).st & ERR, 0);
  assert.equal(q.ide.changeMedium(2, null), false, 'locked');
  let ev = await sec([0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.equal(ev.data[4], 1, 'eject request reported');
  assert.equal(q.ide.changeMedium(2, new MemoryBackend(cdPattern(4), true), true), true, 'forced');
  assert.equal((await sec([0x00])).err, 0x20);
  assert.equal((await sec([0x00])).err, 0x60);
  ev = await sec([0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.deepEqual([ev.data[4], ev.data[5]], [2, 2]);
  assert.deepEqual((await sec([0x03, 0, 0, 0, 18, 0])).data.slice(12, 14), [0x28, 0]);
  const cap = await sec([0x25]);
  assert.deepEqual(cap.data.slice(0, 4), [0, 0, 0, 3], 'the new medium');
  assert.equal(q.ide.changeMedium(0, null), false, 'not a CD-ROM slot');
  assert.throws(() => q.ide.drive(4), RangeError);
});

test('ATAPI PIO read-ahead: 2048-byte DRQ blocks served from one backend request; a bad block still fails alone', async () => {
  const pat = cdPattern(16);
  const f = new FaultyBackend(new MemoryBackend(pat, true));
  const q = new IdeRig([cdrom(f)]);
  let r = await packet(q, read10(2, 8), 2048);
  assert.deepEqual(r.data, pat.subarray(2 * CD, 10 * CD));
  assert.deepEqual(r.blocks, new Array(8).fill(2048));
  assert.deepEqual(f.log, [`read ${2 * CD} ${8 * CD}`]);
  f.rule = (op, off, len) => (off <= 6 * CD && off + len > 6 * CD ? 'EIO' : null);
  r = await packet(q, read10(2, 8), 2048);
  assert.equal(r.error, 0x30);
  assert.deepEqual(r.data, pat.subarray(2 * CD, 6 * CD), 'blocks before the bad one delivered');
});

test('QMP eject then blockdev-change-medium, step by step as the guest sees them: tray open and empty, then the new medium with a unit attention', async () => {
  const q = new IdeRig([cdrom(new MemoryBackend(cdPattern(16), true))]);
  const d = q.ide.drive(0);
  assert.equal((await packet(q, [0x00])).status & ERR, 0, 'medium ready before');
  // eject: the tray opens (removal event), the medium leaves.
  assert.equal(q.ide.openTray(0, false), true);
  d.setMedium(null);
  let r = await packet(q, [0x00]);
  assert.equal(r.error, 0x20, 'NOT READY');
  assert.deepEqual(await sense(q), [2, 0x3a, 0], 'medium not present');
  const ev = await packet(q, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.deepEqual([ev.data[4], ev.data[5]], [3, 1], 'media removal event, door open, no medium');
  const mech = await packet(q, [0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]);
  assert.equal(mech.data[1] & 0x10, 0x10, 'MECHANISM STATUS: door open');
  assert.equal(q.ide.openTray(0, false), true, 'an open tray opens again without a new event');
  assert.equal(d.state.mediaEvent, 0);
  // blockdev-change-medium: new medium in, tray closes.
  d.setMedium(new MemoryBackend(cdPattern(4), true));
  d.moveTray(false);
  r = await packet(q, [0x00]);
  assert.equal(r.error, 0x20, 'NOT READY once after the tray closed');
  r = await packet(q, [0x00]);
  assert.equal(r.error, 0x60, 'then UNIT ATTENTION');
  const ev2 = await packet(q, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.deepEqual([ev2.data[4], ev2.data[5]], [2, 2], 'new media, present, door closed');
  assert.deepEqual(await sense(q), [6, 0x28, 0], 'medium may have changed');
  const cap = await packet(q, [0x25]);
  assert.deepEqual([...cap.data.slice(0, 4)], [0, 0, 0, 3], 'READ CAPACITY: the new medium (4 blocks)');
});

test('openTray: a tray the guest locked stays shut (eject request event) unless forced, which unlocks it', async () => {
  const q = new IdeRig([cdrom()]);
  const d = q.ide.drive(0);
  assert.equal((await packet(q, [0x1e, 0, 0, 0, 1, 0])).status & ERR, 0, 'PREVENT MEDIUM REMOVAL');
  assert.equal(q.ide.openTray(0, false), false);
  assert.deepEqual([d.state.trayOpen, d.state.trayLocked, d.state.mediaEvent], [false, true, 1]);
  assert.equal((await packet(q, [0x00])).status & ERR, 0, 'the medium is still there');
  assert.equal(q.ide.openTray(0, true), true);
  assert.deepEqual([d.state.trayOpen, d.state.trayLocked], [true, false]);
});
