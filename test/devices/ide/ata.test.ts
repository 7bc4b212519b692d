/**
 * ATA disk and bus-master DMA, modelled on QEMU tests/qtest/ide-test.c:
 * IDENTIFY word by word, DMA read/write patterns, the three BMI-1 PRD-size
 * cases (and their aborted variants), no bus mastering with 4096 zero PRDs,
 * a flush held in flight showing BSY, EXECUTE DEVICE DIAGNOSTIC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdeRig, BMDMA_BASE, IDE_BASE, IDE_CTRL, settle, until, pattern } from './harness.ts';
import { MemoryBackend } from '../../../src/block/memory.ts';
import { FaultyBackend } from '../../../src/block/fault.ts';
import { OrderedBackend } from '../../../src/block/ordered.ts';

const reg_data = 0, reg_feature = 1, reg_error = 1, reg_nsectors = 2, reg_lba_low = 3, reg_lba_middle = 4, reg_lba_high = 5, reg_device = 6, reg_status = 7, reg_command = 7;
const BSY = 0x80, DRDY = 0x40, DF = 0x20, DRQ = 0x08, ERR = 0x01;
const ABRT = 0x04, IDNF = 0x10, UNC = 0x40;
const DEV = 0x10, LBA = 0x40;
const bmreg_cmd = 0, bmreg_status = 2, bmreg_prdt = 4;
const CMD_READ_DMA = 0xc8, CMD_WRITE_DMA = 0xca, CMD_FLUSH_CACHE = 0xe7, CMD_IDENTIFY = 0xec, CMD_DIAGNOSE = 0x90;
const BM_CMD_START = 1, BM_CMD_WRITE = 8;
const BM_STS_ACTIVE = 1, BM_STS_ERROR = 2, BM_STS_INTR = 4;
const PRDT_EOT = 0x80000000;
const IMAGE = 64 * 1024 * 1024;

/** A large disk that stores only what was written. */
class SparseBackend extends MemoryBackend {
  private chunks = new Map<number, Uint8Array>();
  constructor(private readonly bytes: number) {
    super(0);
  }
  override get size(): number {
    return this.bytes;
  }
  get(off: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i += 512) out.set(this.chunks.get(off + i) ?? new Uint8Array(512), i);
    return out;
  }
  override async read(off: number, dst: Uint8Array, dstOff: number, len: number) {
    dst.set(this.get(off, len), dstOff);
    return null;
  }
  override async write(off: number, src: Uint8Array, srcOff: number, len: number) {
    for (let i = 0; i < len; i += 512) this.chunks.set(off + i, src.slice(srcOff + i, srcOff + i + 512));
    return null;
  }
}

function disk(backend = new MemoryBackend(IMAGE) as import('../../../src/block/backend.ts').BlockBackend, extra = {}) {
  return { kind: 'disk' as const, backend, serial: 'testdisk', firmware: 'version', ...extra };
}

type Prd = { addr: number; size: number };

function writePrdt(q: IdeRig, prdt: Prd[]): number {
  const a = q.alloc(prdt.length * 8, 8);
  const b = new Uint8Array(prdt.length * 8);
  const v = new DataView(b.buffer);
  prdt.forEach((p, i) => {
    v.setUint32(i * 8, p.addr >>> 0, true);
    v.setUint32(i * 8 + 4, p.size >>> 0, true);
  });
  q.memwrite(a, b);
  return a;
}

/** QEMU send_dma_request, with waits turned into bounded event-loop turns. */
async function sendDma(q: IdeRig, cmd: number, sector: number, nb: number, prdt: Prd[], opts: { abort?: boolean } = {}): Promise<number> {
  const fromDev = cmd === CMD_READ_DMA;
  q.outb(IDE_BASE + reg_device, 0 | LBA);
  q.outb(BMDMA_BASE + bmreg_cmd, 0);
  q.outb(BMDMA_BASE + bmreg_status, BM_STS_INTR);
  q.outl(BMDMA_BASE + bmreg_prdt, writePrdt(q, prdt));
  q.outb(IDE_BASE + reg_nsectors, nb & 0xff);
  q.outb(IDE_BASE + reg_lba_low, sector & 0xff);
  q.outb(IDE_BASE + reg_lba_middle, (sector >> 8) & 0xff);
  q.outb(IDE_BASE + reg_lba_high, (sector >> 16) & 0xff);
  q.outb(IDE_BASE + reg_command, cmd);
  q.outb(BMDMA_BASE + bmreg_cmd, BM_CMD_START | (fromDev ? BM_CMD_WRITE : 0));
  if (opts.abort) q.outb(BMDMA_BASE + bmreg_cmd, 0);
  // QEMU drains an aborted request synchronously; here it completes on the event loop.
  let status = 0;
  await until(() => {
    status = q.inb(BMDMA_BASE + bmreg_status);
    return (status & (BM_STS_ACTIVE | BM_STS_INTR)) !== BM_STS_ACTIVE && !(q.inb(IDE_CTRL) & (BSY | DRQ));
  }, 'DMA completion');
  assert.equal(q.irq(14), (status & BM_STS_INTR) !== 0, 'IRQ 14 level matches the BM interrupt bit');
  const st = q.inb(IDE_BASE + reg_status);
  assert.equal(st & DRDY, DRDY);
  assert.equal(st & (BSY | DRQ), 0);
  assert.equal(q.irq(14), false, 'reading Status clears the IRQ');
  if (status & BM_STS_ACTIVE) q.outb(BMDMA_BASE + bmreg_cmd, 0);
  return status;
}

function identifyWords(q: IdeRig): number[] {
  const buf: number[] = [];
  for (let i = 0; i < 256; i++) {
    const st = q.inb(IDE_BASE + reg_status);
    assert.equal(st & (DRDY | DRQ), DRDY | DRQ, `status before word ${i}`);
    assert.equal(st & (BSY | DF | ERR), 0);
    buf.push(q.inw(IDE_BASE + reg_data));
  }
  const st = q.inb(IDE_BASE + reg_status);
  assert.equal(st & DRDY, DRDY);
  assert.equal(st & (BSY | DF | ERR | DRQ), 0);
  return buf;
}

function ataString(words: number[], from: number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(words[from + i] >> 8, words[from + i] & 0xff);
  return s;
}

test('IDENTIFY DEVICE word by word', () => {
  const q = new IdeRig([disk()]);
  q.outb(IDE_BASE + reg_device, 0);
  q.outb(IDE_BASE + reg_command, CMD_IDENTIFY);
  assert.equal(q.inb(IDE_BASE + reg_device) & DEV, 0);
  assert.equal(q.irq(14), true);
  const w = identifyWords(q);
  const sectors = IMAGE / 512;
  assert.equal(w[0], 0x0040, 'word 0: fixed, ATA');
  assert.equal(w[1], Math.min(16383, sectors / (16 * 63)) | 0, 'cylinders');
  assert.equal(w[3], 16);
  assert.equal(w[6], 63);
  assert.equal(ataString(w, 10, 10), 'testdisk            ');
  assert.equal(ataString(w, 23, 4), 'version ');
  assert.equal(ataString(w, 27, 20).trimEnd(), 'STUBDM HARDDISK');
  assert.equal(w[47], 0x8010, 'max 16 sectors per multiple block');
  assert.equal(w[49] & 0x0b00, 0x0b00, 'IORDY, LBA, DMA');
  assert.equal(w[53] & 7, 7, 'words 54-58, 64-70, 88 valid');
  assert.equal(w[54], w[1]);
  assert.equal(w[55], 16);
  assert.equal(w[56], 63);
  assert.equal(w[57] | (w[58] << 16), w[1] * 16 * 63, 'current capacity in CHS sectors');
  assert.equal(w[59], 0x110, 'multiple setting valid, 16');
  assert.equal(w[60] | (w[61] << 16), sectors, 'LBA28 capacity');
  assert.equal(w[63] & 0x07, 0x07, 'MWDMA 0-2');
  assert.equal(w[64] & 0x03, 0x03, 'PIO 3-4');
  assert.deepEqual(w.slice(65, 69), [120, 120, 120, 120]);
  assert.ok(w[80] & (1 << 6), 'ATA/ATAPI-6 listed');
  assert.ok(w[82] & (1 << 5), 'write cache supported');
  assert.equal(w[83] & 0x3400, 0x3400, 'FLUSH EXT, FLUSH, LBA48 supported');
  assert.equal(w[83] >> 14, 1);
  assert.equal(w[85] & 0x20, 0x20, 'write cache enabled');
  assert.equal(w[86] & 0x3400, 0x3400, 'FLUSH EXT, FLUSH, LBA48 enabled');
  assert.equal(w[88] & 0x3f, 0x3f, 'UDMA 0-5');
  assert.equal(w[93] & 0x6001, 0x6001, 'hardware reset result');
  assert.equal(w[100] + w[101] * 65536 + w[102] * 2 ** 32 + w[103] * 2 ** 48, sectors, 'LBA48 capacity');
  assert.equal(w[255] & 0xff, 0xa5, 'integrity signature');
  let sum = 0;
  for (const x of w) sum += (x & 0xff) + (x >> 8);
  assert.equal(sum & 0xff, 0, 'checksum makes the 512 bytes sum to 0');
});

test('SET FEATURES: write cache off shows in word 85; transfer mode shows as active in words 63/88; bad mode aborts', () => {
  const q = new IdeRig([disk()]);
  const setf = (feature: number, count = 0) => {
    q.outb(IDE_BASE + reg_feature, feature);
    q.outb(IDE_BASE + reg_nsectors, count);
    q.outb(IDE_BASE + reg_command, 0xef);
    return q.inb(IDE_BASE + reg_status);
  };
  assert.equal(setf(0x82) & ERR, 0);
  assert.equal(setf(0x03, 0x40 | 5) & ERR, 0); // UDMA 5
  q.outb(IDE_BASE + reg_command, CMD_IDENTIFY);
  let w = identifyWords(q);
  assert.equal(w[85] & 0x20, 0);
  assert.equal(w[88], 0x3f | (1 << 13));
  assert.equal(setf(0x03, 0x20 | 2) & ERR, 0); // MWDMA 2
  q.outb(IDE_BASE + reg_command, CMD_IDENTIFY);
  w = identifyWords(q);
  assert.equal(w[63], 0x07 | (1 << 10));
  assert.equal(w[88], 0x3f);
  assert.equal(setf(0x03, 0x40 | 7) & ERR, ERR, 'UDMA 7 does not exist');
  assert.equal(q.inb(IDE_BASE + reg_error), ABRT);
  assert.equal(setf(0x77) & ERR, ERR, 'unknown subcommand');
  assert.equal(setf(0x02) & ERR, 0);
});

test('EXECUTE DEVICE DIAGNOSTIC leaves device 0 selected and error 01h on both', () => {
  const q = new IdeRig([disk(), disk(new MemoryBackend(1 << 20))]);
  q.outb(IDE_BASE + reg_device, DEV);
  assert.equal(q.inb(IDE_BASE + reg_device) & DEV, DEV);
  q.outb(IDE_BASE + reg_command, CMD_DIAGNOSE);
  assert.equal(q.inb(IDE_BASE + reg_device) & DEV, 0);
  assert.equal(q.inb(IDE_BASE + reg_error), 0x01);
  assert.equal(q.inb(IDE_BASE + reg_status), DRDY | 0x10);
  assert.equal(q.inb(IDE_BASE + reg_nsectors), 1);
  assert.equal(q.inb(IDE_BASE + reg_lba_low), 1);
});

test('BMDMA simple read/write of patterns', async () => {
  const q = new IdeRig([disk()]);
  const buf = q.alloc(512);
  const prdt = [{ addr: buf, size: 512 | PRDT_EOT }];
  q.memwrite(buf, new Uint8Array(512).fill(0x55));
  assert.equal(await sendDma(q, CMD_WRITE_DMA, 0, 1, prdt), BM_STS_INTR);
  assert.equal(q.inb(IDE_BASE + reg_status) & (DF | ERR), 0);
  q.memwrite(buf, new Uint8Array(512).fill(0xaa));
  assert.equal(await sendDma(q, CMD_WRITE_DMA, 1, 1, prdt), BM_STS_INTR);
  assert.equal(await sendDma(q, CMD_READ_DMA, 0, 1, prdt), BM_STS_INTR);
  assert.deepEqual(q.memread(buf, 512), new Uint8Array(512).fill(0x55));
  assert.equal(await sendDma(q, CMD_READ_DMA, 1, 1, prdt), BM_STS_INTR);
  assert.deepEqual(q.memread(buf, 512), new Uint8Array(512).fill(0xaa));
  assert.equal(q.inb(IDE_BASE + reg_status) & (DF | ERR), 0);
});

test('BMDMA multi-PRD scatter/gather, 64 KiB entries (size 0), LBA48 EXT commands', async () => {
  const mem = new SparseBackend(2 ** 34); // 16 GiB: LBA48 territory
  const q = new IdeRig([disk(mem)]);
  const a = q.alloc(0x10000, 0x10000);
  const b = q.alloc(1024);
  const data = pattern(0x10000 + 1024, 3);
  q.memwrite(a, data.subarray(0, 0x10000));
  q.memwrite(b, data.subarray(0x10000));
  const lba = 0x123456 + 2 ** 24; // needs the high bytes
  const prdtAddr = writePrdt(q, [{ addr: a, size: 0 }, { addr: b, size: 1024 | PRDT_EOT }]);
  const issue = (cmd: number, start: number) => {
    q.outb(BMDMA_BASE + bmreg_cmd, 0);
    q.outb(BMDMA_BASE + bmreg_status, BM_STS_INTR);
    q.outl(BMDMA_BASE + bmreg_prdt, prdtAddr);
    q.outb(IDE_BASE + reg_device, LBA);
    // high bytes first, then low (LBA48 two-write FIFO)
    q.outb(IDE_BASE + reg_nsectors, 0);
    q.outb(IDE_BASE + reg_lba_low, (lba / 2 ** 24) & 0xff);
    q.outb(IDE_BASE + reg_lba_middle, 0);
    q.outb(IDE_BASE + reg_lba_high, 0);
    q.outb(IDE_BASE + reg_nsectors, 130);
    q.outb(IDE_BASE + reg_lba_low, lba & 0xff);
    q.outb(IDE_BASE + reg_lba_middle, (lba >> 8) & 0xff);
    q.outb(IDE_BASE + reg_lba_high, (lba >> 16) & 0xff);
    q.outb(IDE_BASE + reg_command, cmd);
    q.outb(BMDMA_BASE + bmreg_cmd, start);
  };
  issue(0x35, BM_CMD_START);
  await until(() => (q.inb(BMDMA_BASE + bmreg_status) & BM_STS_INTR) !== 0, 'write ext');
  assert.equal(q.inb(IDE_BASE + reg_status) & (ERR | BSY | DRQ), 0);
  assert.deepEqual(mem.get(lba * 512, data.length), data);
  q.memwrite(a, new Uint8Array(0x10000));
  q.memwrite(b, new Uint8Array(1024));
  issue(0x25, BM_CMD_START | BM_CMD_WRITE);
  await until(() => (q.inb(BMDMA_BASE + bmreg_status) & BM_STS_INTR) !== 0, 'read ext');
  assert.deepEqual(q.memread(a, 0x10000), data.subarray(0, 0x10000));
  assert.deepEqual(q.memread(b, 1024), data.subarray(0x10000));
  // the address registers now point after the transfer (HOB shows the high bytes)
  assert.equal(q.inb(IDE_BASE + reg_lba_low), (lba + 130) & 0xff);
  q.outb(IDE_CTRL, 0x80);
  assert.equal(q.inb(IDE_BASE + reg_lba_low), ((lba + 130) / 2 ** 24) & 0xff);
  q.outb(IDE_CTRL, 0);
});

test('BMDMA various PRD sizes: the three BMI-1 cases and their aborted variants (ide-test various_prdts)', async () => {
  for (const sectors of [1, 2, 8, 64, 256]) {
    const q = new IdeRig([disk()]);
    // sizes 0..65280 step 256 in QEMU; a spread covering every case boundary here
    const sizes = new Set<number>([0, 256, 512, 768, 1024, 4096, 32768, 65280, sectors * 512 - 256, sectors * 512, sectors * 512 + 256]);
    for (const size of [...sizes].filter((s) => s >= 0 && s < 65536)) {
      const reqSize = sectors * 512;
      const prdSize = size & 0xfffe || 65536;
      const expect = prdSize < reqSize ? [0, 0] : prdSize === reqSize ? [BM_STS_INTR, BM_STS_INTR] : [BM_STS_ACTIVE | BM_STS_INTR, BM_STS_INTR];
      const prdt = [{ addr: 0, size: size | PRDT_EOT }];
      assert.equal(await sendDma(q, CMD_READ_DMA, 0, sectors, prdt), expect[0], `sectors=${sectors} size=${size}`);
      assert.equal(q.inb(IDE_BASE + reg_status) & (DF | ERR), 0);
      assert.equal(await sendDma(q, CMD_READ_DMA, 0, sectors, prdt, { abort: true }), expect[1], `aborted sectors=${sectors} size=${size}`);
      assert.equal(q.inb(IDE_BASE + reg_status) & (DF | ERR), 0);
    }
  }
});

test('no bus mastering, 4096 zero PRDs, 256 sectors: completes, Active+Interrupt, never hangs (ide-test no_busmaster)', async () => {
  const q = new IdeRig([disk()]);
  q.ide.setBusMaster(false);
  const before = q.memread(0, 0x20000);
  const status = await sendDma(q, CMD_READ_DMA, 0, 512, new Array(4096).fill({ addr: 0, size: 0 }));
  assert.equal(status, BM_STS_ACTIVE | BM_STS_INTR);
  assert.equal(q.inb(IDE_BASE + reg_status) & (DF | ERR), 0);
  assert.deepEqual(q.memread(0, 0x20000), before, 'without bus mastering nothing reached memory');
  // a write from memory cannot happen without bus mastering: error, not garbage on the disk
  const st = await sendDma(q, CMD_WRITE_DMA, 0, 1, [{ addr: 0, size: 512 | PRDT_EOT }]);
  assert.equal(st & (BM_STS_ERROR | BM_STS_INTR), BM_STS_ERROR | BM_STS_INTR);
  assert.equal(q.inb(IDE_BASE + reg_status) & ERR, ERR);
});

test('a DMA command costs one interrupt hypercall up and one down, however often the guest polls Status', async () => {
  const q = new IdeRig([disk()]);
  const buf = q.alloc(4096, 4096);
  const prdt = [{ addr: buf, size: 4096 | PRDT_EOT }];
  assert.equal(await sendDma(q, CMD_READ_DMA, 0, 8, prdt), BM_STS_INTR); // the first sets the line's level once (from unknown)
  const before = q.isaEdges.length;
  assert.equal(await sendDma(q, CMD_READ_DMA, 8, 8, prdt), BM_STS_INTR);
  for (let i = 0; i < 5; i++) q.inb(IDE_BASE + reg_status); // the line is low already: no call
  q.inb(IDE_CTRL);
  assert.deepEqual(q.isaEdges.slice(before), ['14=1', '14=0']);
});

test('PRD walk is capped at one page of entries; a PRD table outside RAM is a DMA error', async () => {
  const q = new IdeRig([disk()], 1 << 20);
  // 600 entries of 2 bytes, no EOT: only 512 are read (1024 bytes), enough for 2 sectors, not for 3
  const many = new Array(600).fill(0).map((_, i) => ({ addr: 0x8000 + i * 2, size: 2 }));
  assert.equal(await sendDma(q, CMD_READ_DMA, 0, 2, many), BM_STS_INTR);
  assert.equal(await sendDma(q, CMD_READ_DMA, 0, 3, many), 0, 'short: the cap ended the table');
  // table at the last bytes of RAM: entry 1 is outside
  q.outb(BMDMA_BASE + bmreg_status, BM_STS_INTR | BM_STS_ERROR);
  q.outl(BMDMA_BASE + bmreg_prdt, (1 << 20) - 8);
  q.memwrite((1 << 20) - 8, new Uint8Array([0, 0x80, 0, 0, 0, 2, 0, 0])); // 512 bytes at 0x8000, no EOT
  q.outb(IDE_BASE + reg_nsectors, 2);
  q.outb(IDE_BASE + reg_command, CMD_READ_DMA);
  q.outb(BMDMA_BASE + bmreg_cmd, BM_CMD_START | BM_CMD_WRITE);
  await until(() => (q.inb(BMDMA_BASE + bmreg_status) & BM_STS_INTR) !== 0, 'fault interrupt');
  assert.equal(q.inb(BMDMA_BASE + bmreg_status) & (BM_STS_ERROR | BM_STS_ACTIVE), BM_STS_ERROR);
  assert.equal(q.inb(IDE_BASE + reg_status) & (ERR | DRDY | BSY | DRQ), ERR | DRDY);
  assert.equal(q.inb(IDE_BASE + reg_error), ABRT);
  q.outb(BMDMA_BASE + bmreg_cmd, 0);
  // data buffer beyond RAM
  const st = await sendDma(q, CMD_READ_DMA, 0, 1, [{ addr: 0xfffff000, size: 512 | PRDT_EOT }]);
  assert.equal(st & BM_STS_ERROR, BM_STS_ERROR);
  assert.ok(q.mem.refused > 0);
});

test('PRD table in the last bytes of RAM that ends mid-page: the walk reads it whole a page at a time, entry by entry where that fails, and ends at its EOT as before', async () => {
  const ram = (1 << 20) - 1000; // RAM ends 1000 bytes before a page end
  const data = new Uint8Array(4096).map((_, i) => (i * 7 + (i >> 9)) & 0xff);
  const q = new IdeRig([disk(new MemoryBackend(data))], ram);
  const at = ram - 16; // two entries, the second with EOT: its page runs on past RAM
  q.memwrite(at, new Uint8Array([0, 0x80, 0, 0, 0, 2, 0, 0, 0, 0x90, 0, 0, 0, 2, 0, 0x80])); // 512 bytes at 0x8000, 512 at 0x9000 EOT
  q.outb(BMDMA_BASE + bmreg_status, BM_STS_INTR | BM_STS_ERROR);
  q.outl(BMDMA_BASE + bmreg_prdt, at);
  q.outb(IDE_BASE + reg_device, LBA);
  q.outb(IDE_BASE + reg_nsectors, 2);
  q.outb(IDE_BASE + reg_lba_low, 0);
  q.outb(IDE_BASE + reg_lba_middle, 0);
  q.outb(IDE_BASE + reg_lba_high, 0);
  q.outb(IDE_BASE + reg_command, CMD_READ_DMA);
  const refused = q.mem.refused;
  q.outb(BMDMA_BASE + bmreg_cmd, BM_CMD_START | BM_CMD_WRITE);
  await until(() => (q.inb(BMDMA_BASE + bmreg_status) & BM_STS_INTR) !== 0, 'DMA interrupt');
  assert.equal(q.inb(BMDMA_BASE + bmreg_status) & (BM_STS_ERROR | BM_STS_ACTIVE), 0, 'no fault: both entries were read');
  assert.equal(q.inb(IDE_BASE + reg_status) & (ERR | DRDY | BSY | DRQ), DRDY);
  assert.deepEqual(q.memread(0x8000, 512), data.subarray(0, 512));
  assert.deepEqual(q.memread(0x9000, 512), data.subarray(512, 1024));
  assert.equal(q.mem.refused, refused + 1, 'one read to the page end refused, then entry by entry');
  q.outb(BMDMA_BASE + bmreg_cmd, 0);
});

test('BM status: error and interrupt are write-one-to-clear, DMA capable bits read/write, active read-only', () => {
  const q = new IdeRig([disk()]);
  q.outb(BMDMA_BASE + bmreg_status, 0x60 | BM_STS_ACTIVE);
  assert.equal(q.inb(BMDMA_BASE + bmreg_status), 0x60);
  q.outl(BMDMA_BASE + bmreg_prdt, 0x12345677);
  assert.equal(q.inl(BMDMA_BASE + bmreg_prdt), 0x12345674, 'dword aligned');
  assert.equal(q.inb(BMDMA_BASE + 8 + bmreg_status), 0, 'channel 1 separate');
  q.outb(BMDMA_BASE + bmreg_cmd, 0xff);
  assert.equal(q.inb(BMDMA_BASE + bmreg_cmd), 0x09);
  assert.equal(q.inb(BMDMA_BASE + bmreg_status) & BM_STS_ACTIVE, BM_STS_ACTIVE);
});

test('FLUSH CACHE held in flight shows BSY|DRDY, completes after the fsync (ide-test flush)', async () => {
  const mem = new MemoryBackend(IMAGE);
  const f = new FaultyBackend(mem);
  const q = new IdeRig([disk(new OrderedBackend(f))]);
  const buf = q.alloc(512);
  q.memwrite(buf, new Uint8Array(512).fill(0x42));
  assert.equal(await sendDma(q, CMD_WRITE_DMA, 1, 1, [{ addr: buf, size: 512 | PRDT_EOT }]), BM_STS_INTR);
  f.hold = (op) => op === 'flush';
  q.outb(IDE_BASE + reg_device, 0);
  q.outb(IDE_BASE + reg_command, CMD_FLUSH_CACHE);
  await settle();
  const st = q.inb(IDE_BASE + reg_status);
  assert.equal(st & (BSY | DRDY), BSY | DRDY);
  assert.equal(st & (DF | ERR | DRQ), 0);
  assert.equal(f.heldCount, 1);
  assert.equal(mem.flushes, 0);
  f.release();
  assert.equal(q.inb(IDE_BASE + reg_device) & DEV, 0);
  await until(() => !(q.inb(IDE_CTRL) & BSY), 'flush done');
  assert.equal(q.irq(14), true);
  const end = q.inb(IDE_BASE + reg_status);
  assert.equal(end & DRDY, DRDY);
  assert.equal(end & (BSY | DF | ERR | DRQ), 0);
  assert.equal(mem.flushes, 1);
});

test('FLUSH CACHE with no device and on an empty CD does not crash', () => {
  const q = new IdeRig([]);
  q.outb(IDE_BASE + reg_device, 0);
  q.outb(IDE_BASE + reg_command, CMD_FLUSH_CACHE);
  assert.equal(q.inb(IDE_BASE + reg_status), 0);
  const c = new IdeRig([{ kind: 'cdrom', backend: null }]);
  c.outb(IDE_BASE + reg_command, CMD_FLUSH_CACHE);
  assert.equal(c.inb(IDE_BASE + reg_status) & ERR, ERR, 'ATAPI devices abort FLUSH CACHE');
});

test('PIO READ/WRITE SECTORS: count 0 = 256 sectors, DRQ per sector, INTRQ per block, REP INSW is one call', async () => {
  const mem = new MemoryBackend(IMAGE);
  const data = pattern(256 * 512, 9);
  mem.data.set(data, 1000 * 512);
  const q = new IdeRig([disk(mem)]);
  q.outb(IDE_BASE + reg_device, LBA);
  q.outb(IDE_BASE + reg_nsectors, 0);
  q.outb(IDE_BASE + reg_lba_low, 1000 & 0xff);
  q.outb(IDE_BASE + reg_lba_middle, 1000 >> 8);
  q.outb(IDE_BASE + reg_lba_high, 0);
  q.outb(IDE_BASE + reg_command, 0x20);
  assert.equal(q.inb(IDE_CTRL) & BSY, BSY, 'BSY while the backend reads');
  const got = new Uint8Array(256 * 512);
  for (let s = 0; s < 256; s++) {
    await until(() => q.irq(14), `irq for sector ${s}`);
    const st = q.inb(IDE_BASE + reg_status);
    assert.equal(st & (DRQ | BSY | ERR), DRQ);
    const { data: sec, fast } = q.ins(IDE_BASE, 2, 256);
    assert.equal(fast, 256, 'the whole sector through readRep');
    got.set(sec, s * 512);
  }
  assert.equal(q.inb(IDE_BASE + reg_status) & (DRQ | BSY | ERR), 0);
  assert.deepEqual(got, data);
  // write 3 sectors with 32-bit OUTSD
  const w = pattern(3 * 512, 77);
  q.outb(IDE_BASE + reg_nsectors, 3);
  q.outb(IDE_BASE + reg_lba_low, 5);
  q.outb(IDE_BASE + reg_lba_middle, 0);
  q.outb(IDE_BASE + reg_command, 0x30);
  for (let s = 0; s < 3; s++) {
    await until(() => (q.inb(IDE_CTRL) & (BSY | DRQ)) === DRQ, `DRQ for sector ${s}`);
    assert.equal(q.outs(IDE_BASE, 4, w.subarray(s * 512, s * 512 + 512)), 128);
  }
  await until(() => q.irq(14) && !(q.inb(IDE_CTRL) & BSY), 'write done');
  assert.equal(q.inb(IDE_BASE + reg_status) & (DRQ | BSY | ERR), 0);
  assert.deepEqual(mem.data.subarray(5 * 512, 8 * 512), w);
});

test('READ/WRITE MULTIPLE use the multiple count; SET MULTIPLE MODE takes powers of two up to 16', async () => {
  const mem = new MemoryBackend(IMAGE);
  const q = new IdeRig([disk(mem)]);
  const setMult = (n: number) => {
    q.outb(IDE_BASE + reg_nsectors, n);
    q.outb(IDE_BASE + reg_command, 0xc6);
    return q.inb(IDE_BASE + reg_status) & ERR;
  };
  assert.equal(setMult(3), ERR);
  assert.equal(setMult(32), ERR);
  assert.equal(setMult(4), 0);
  const w = pattern(10 * 512, 1);
  q.outb(IDE_BASE + reg_device, LBA);
  q.outb(IDE_BASE + reg_nsectors, 10);
  q.outb(IDE_BASE + reg_lba_low, 0);
  q.outb(IDE_BASE + reg_command, 0xc5);
  let off = 0;
  for (const blk of [4, 4, 2]) {
    await until(() => (q.inb(IDE_CTRL) & (BSY | DRQ)) === DRQ, 'DRQ');
    q.outs(IDE_BASE, 2, w.subarray(off, off + blk * 512));
    off += blk * 512;
  }
  await until(() => !(q.inb(IDE_CTRL) & BSY), 'done');
  assert.deepEqual(mem.data.subarray(0, 10 * 512), w);
  q.outb(IDE_BASE + reg_nsectors, 10);
  q.outb(IDE_BASE + reg_lba_low, 0);
  q.outb(IDE_BASE + reg_command, 0xc4);
  const got: number[] = [];
  for (const blk of [4, 4, 2]) {
    await until(() => q.irq(14), 'block irq');
    q.inb(IDE_BASE + reg_status);
    const { data } = q.ins(IDE_BASE, 2, blk * 256);
    got.push(...data);
  }
  assert.deepEqual(new Uint8Array(got), w);
  assert.equal(setMult(0), 0);
  q.outb(IDE_BASE + reg_command, 0xc4);
  assert.equal(q.inb(IDE_BASE + reg_status) & ERR, ERR, 'multiple disabled: READ MULTIPLE aborts');
});

test('CHS addressing after INITIALIZE DEVICE PARAMETERS', async () => {
  const mem = new MemoryBackend(IMAGE);
  const q = new IdeRig([disk(mem)]);
  q.outb(IDE_BASE + reg_device, 0x0f); // 16 heads
  q.outb(IDE_BASE + reg_nsectors, 32); // 32 sectors per track
  q.outb(IDE_BASE + reg_command, 0x91);
  assert.equal(q.inb(IDE_BASE + reg_status) & ERR, 0);
  // C/H/S = 2/3/4 -> (2*16+3)*32+3 = 1123
  mem.data.set(pattern(512, 5), 1123 * 512);
  q.outb(IDE_BASE + reg_device, 0x03);
  q.outb(IDE_BASE + reg_nsectors, 1);
  q.outb(IDE_BASE + reg_lba_low, 4);
  q.outb(IDE_BASE + reg_lba_middle, 2);
  q.outb(IDE_BASE + reg_lba_high, 0);
  q.outb(IDE_BASE + reg_command, 0x20);
  await until(() => q.irq(14), 'irq');
  q.inb(IDE_BASE + reg_status);
  assert.deepEqual(q.ins(IDE_BASE, 2, 256).data, pattern(512, 5));
  q.outb(IDE_BASE + reg_command, CMD_IDENTIFY);
  const w = identifyWords(q);
  assert.deepEqual([w[55], w[56]], [16, 32]);
  // sector 0 does not exist in CHS
  q.outb(IDE_BASE + reg_lba_low, 0);
  q.outb(IDE_BASE + reg_command, 0x20);
  assert.equal(q.inb(IDE_BASE + reg_status) & ERR, ERR);
  assert.equal(q.inb(IDE_BASE + reg_error) & IDNF, IDNF);
});

test('LBA beyond capacity: ERR with IDNF, nothing read, interrupt raised', () => {
  const q = new IdeRig([disk(new MemoryBackend(1 << 20))]);
  for (const [cmd, count] of [[0x20, 2], [0xc8, 2], [0x30, 2], [0x40, 2], [0x24, 0]]) {
    q.outb(IDE_BASE + reg_device, LBA);
    q.outb(IDE_BASE + reg_nsectors, count);
    q.outb(IDE_BASE + reg_lba_low, 0xff); // sector 2047 + count > 2048
    q.outb(IDE_BASE + reg_lba_middle, 0x07);
    q.outb(IDE_BASE + reg_command, cmd);
    assert.equal(q.irq(14), true);
    assert.equal(q.inb(IDE_BASE + reg_status) & (ERR | DRQ | BSY), ERR, `cmd ${cmd.toString(16)}`);
    assert.equal(q.inb(IDE_BASE + reg_error) & IDNF, IDNF);
  }
  assert.ok(q.logLines.some((l) => l.includes('LBA out of range')));
});

test('backend EIO: PIO read -> ERR+UNC, DMA read -> ERR+UNC, writes -> ERR+ABRT, flush -> ERR+ABRT; logged', async () => {
  const f = new FaultyBackend(new MemoryBackend(IMAGE));
  f.rule = (op, off) => (op === 'flush' || off === 512 * 7 ? 'EIO' : null);
  const q = new IdeRig([disk(f)]);
  const expectErr = async (what: string, err: number) => {
    await until(() => q.irq(14), what);
    assert.equal(q.inb(IDE_BASE + reg_status) & (ERR | BSY | DRQ | DRDY), ERR | DRDY, what);
    assert.equal(q.inb(IDE_BASE + reg_error), err, what);
  };
  q.outb(IDE_BASE + reg_device, LBA);
  q.outb(IDE_BASE + reg_nsectors, 1);
  q.outb(IDE_BASE + reg_lba_low, 7);
  q.outb(IDE_BASE + reg_command, 0x20);
  await expectErr('pio read', UNC);
  q.outb(IDE_BASE + reg_lba_low, 7);
  q.outb(IDE_BASE + reg_command, 0x30);
  q.outs(IDE_BASE, 2, new Uint8Array(512));
  await expectErr('pio write', ABRT);
  const buf = q.alloc(512);
  q.outl(BMDMA_BASE + bmreg_prdt, writePrdt(q, [{ addr: buf, size: 512 | PRDT_EOT }]));
  q.outb(IDE_BASE + reg_lba_low, 7);
  q.outb(IDE_BASE + reg_command, CMD_READ_DMA);
  q.outb(BMDMA_BASE + bmreg_cmd, BM_CMD_START | BM_CMD_WRITE);
  await expectErr('dma read', UNC);
  assert.equal(q.inb(BMDMA_BASE + bmreg_status) & (BM_STS_ACTIVE | BM_STS_INTR), BM_STS_INTR);
  q.outb(BMDMA_BASE + bmreg_cmd, 0);
  q.outb(IDE_BASE + reg_command, CMD_FLUSH_CACHE);
  await expectErr('flush', ABRT);
  assert.ok(q.logLines.filter((l) => l.includes('backend error')).length >= 4);
});

test('write cache off: every write is followed by a flush before completion', async () => {
  const mem = new MemoryBackend(IMAGE);
  const q = new IdeRig([disk(mem)]);
  q.outb(IDE_BASE + reg_feature, 0x82);
  q.outb(IDE_BASE + reg_command, 0xef);
  q.inb(IDE_BASE + reg_status);
  const buf = q.alloc(512);
  assert.equal(await sendDma(q, CMD_WRITE_DMA, 3, 1, [{ addr: buf, size: 512 | PRDT_EOT }]), BM_STS_INTR);
  assert.equal(mem.flushes, 1);
  q.outb(IDE_BASE + reg_nsectors, 1);
  q.outb(IDE_BASE + reg_command, 0x30);
  q.outs(IDE_BASE, 2, new Uint8Array(512));
  await until(() => q.irq(14), 'pio write');
  assert.equal(mem.flushes, 2);
});

test('power management and verify commands complete; CHECK POWER MODE reports active; unknown opcodes abort', () => {
  const q = new IdeRig([disk()]);
  for (const cmd of [0xe0, 0xe1, 0xe2, 0xe3, 0x40, 0x42, 0x10, 0x70]) {
    q.outb(IDE_BASE + reg_nsectors, 1);
    q.outb(IDE_BASE + reg_command, cmd);
    assert.equal(q.inb(IDE_BASE + reg_status) & (ERR | BSY | DRDY), DRDY, `cmd ${cmd.toString(16)}`);
  }
  q.outb(IDE_BASE + reg_command, 0xe5);
  assert.equal(q.inb(IDE_BASE + reg_nsectors), 0xff);
  for (const cmd of [0x00, 0x06, 0xa0, 0xa1, 0x08, 0xb0, 0xff]) {
    q.outb(IDE_BASE + reg_command, cmd);
    assert.equal(q.irq(14), true);
    assert.equal(q.inb(IDE_BASE + reg_status) & ERR, ERR, `cmd ${cmd.toString(16)} aborts`);
    assert.equal(q.inb(IDE_BASE + reg_error), ABRT);
  }
});

test('soft reset: BSY while SRST is set, signatures after (ATA 00/00 + DRDY, ATAPI 14/EB, status 0)', () => {
  const q = new IdeRig([disk(), { kind: 'cdrom', backend: new MemoryBackend(2048 * 16, true) }]);
  q.outb(IDE_BASE + reg_lba_middle, 0x55);
  q.outb(IDE_CTRL, 0x04);
  assert.equal(q.inb(IDE_CTRL) & BSY, BSY);
  q.outb(IDE_BASE + reg_device, 0x10); // ignored while busy
  q.outb(IDE_CTRL, 0x00);
  assert.equal(q.inb(IDE_BASE + reg_status), DRDY | 0x10);
  assert.deepEqual([q.inb(IDE_BASE + 2), q.inb(IDE_BASE + 3), q.inb(IDE_BASE + 4), q.inb(IDE_BASE + 5)], [1, 1, 0, 0]);
  assert.equal(q.inb(IDE_BASE + reg_error), 0x01);
  q.outb(IDE_BASE + reg_device, DEV);
  assert.equal(q.inb(IDE_BASE + reg_status), 0);
  assert.deepEqual([q.inb(IDE_BASE + 2), q.inb(IDE_BASE + 3), q.inb(IDE_BASE + 4), q.inb(IDE_BASE + 5)], [1, 1, 0x14, 0xeb]);
  // IDENTIFY DEVICE on the ATAPI device aborts and leaves the signature
  q.outb(IDE_BASE + reg_lba_middle, 0);
  q.outb(IDE_BASE + reg_command, CMD_IDENTIFY);
  assert.equal(q.inb(IDE_BASE + reg_status) & ERR, ERR);
  assert.deepEqual([q.inb(IDE_BASE + 4), q.inb(IDE_BASE + 5)], [0x14, 0xeb]);
});

test('soft reset cancels a command in flight: its late completion changes nothing', async () => {
  const f = new FaultyBackend(new MemoryBackend(IMAGE));
  const q = new IdeRig([disk(f)]);
  f.hold = () => true;
  q.outb(IDE_BASE + reg_nsectors, 1);
  q.outb(IDE_BASE + reg_command, 0x20);
  await settle();
  assert.equal(f.heldCount, 1);
  q.outb(IDE_CTRL, 0x04);
  q.outb(IDE_CTRL, 0x00);
  f.release();
  await settle();
  assert.equal(q.inb(IDE_BASE + reg_status), DRDY | 0x10);
  assert.equal(q.irq(14), false);
});

test('nIEN masks the line but keeps the interrupt pending; Status read clears it, Alternate Status does not', () => {
  const q = new IdeRig([disk()]);
  q.outb(IDE_CTRL, 0x02);
  q.outb(IDE_BASE + reg_command, CMD_IDENTIFY);
  assert.equal(q.irq(14), false);
  assert.equal(q.inb(IDE_CTRL) & DRQ, DRQ);
  q.outb(IDE_CTRL, 0x00);
  assert.equal(q.irq(14), true, 'pending interrupt appears when nIEN is cleared');
  q.inb(IDE_CTRL);
  assert.equal(q.irq(14), true, 'Alternate Status leaves it');
  q.inb(IDE_BASE + reg_status);
  assert.equal(q.irq(14), false);
  assert.equal(q.inb(BMDMA_BASE + bmreg_status) & BM_STS_INTR, BM_STS_INTR);
});

test('absent device 1 reads status 0 and ignores commands; an empty channel reads 0', () => {
  const q = new IdeRig([disk()]);
  q.outb(IDE_BASE + reg_device, DEV);
  assert.equal(q.inb(IDE_BASE + reg_status), 0);
  assert.equal(q.inb(IDE_CTRL), 0);
  q.outb(IDE_BASE + reg_command, CMD_IDENTIFY);
  assert.equal(q.irq(14), false);
  assert.equal(q.inb(IDE_BASE + reg_status), 0);
  q.outb(IDE_BASE + reg_device, 0);
  assert.equal(q.inb(IDE_BASE + reg_status), DRDY | 0x10);
  assert.equal(q.inb(0x177), 0, 'secondary channel without devices');
  assert.equal(q.inb(0x376), 0);
});

test('data port reads 0 without DRQ; task file writes are ignored while DRQ is set', () => {
  const q = new IdeRig([disk()]);
  assert.equal(q.inw(IDE_BASE), 0);
  q.outb(IDE_BASE + reg_command, CMD_IDENTIFY);
  q.outb(IDE_BASE + reg_nsectors, 0x77);
  assert.notEqual(q.inb(IDE_BASE + reg_nsectors), 0x77);
  const first = q.inl(IDE_BASE);
  assert.equal(first & 0xffff, 0x0040, '32-bit data access returns two words');
});

test('soft reset during a DMA in flight: the engine stops (Active clear), no late interrupt, the device is usable again', async () => {
  const f = new FaultyBackend(new MemoryBackend(IMAGE));
  const q = new IdeRig([disk(f)]);
  const buf = q.alloc(512);
  f.hold = () => true;
  q.outl(BMDMA_BASE + bmreg_prdt, writePrdt(q, [{ addr: buf, size: 512 | PRDT_EOT }]));
  q.outb(IDE_BASE + reg_device, LBA);
  q.outb(IDE_BASE + reg_nsectors, 1);
  q.outb(IDE_BASE + reg_command, CMD_READ_DMA);
  q.outb(BMDMA_BASE + bmreg_cmd, BM_CMD_START | BM_CMD_WRITE);
  await until(() => f.heldCount === 1, 'read held');
  assert.equal(q.inb(BMDMA_BASE + bmreg_status) & BM_STS_ACTIVE, BM_STS_ACTIVE);
  q.outb(IDE_CTRL, 0x04);
  q.outb(IDE_CTRL, 0x00);
  assert.equal(q.inb(BMDMA_BASE + bmreg_status) & (BM_STS_ACTIVE | BM_STS_INTR), 0);
  f.hold = null;
  f.release();
  await settle();
  assert.equal(q.irq(14), false);
  assert.equal(q.inb(BMDMA_BASE + bmreg_status) & BM_STS_INTR, 0);
  q.outb(BMDMA_BASE + bmreg_cmd, 0);
  assert.equal(await sendDma(q, CMD_READ_DMA, 0, 1, [{ addr: buf, size: 512 | PRDT_EOT }]), BM_STS_INTR);
});

test('the device that is not selected still interrupts the channel when it completes', async () => {
  const f = new FaultyBackend(new MemoryBackend(IMAGE));
  const q = new IdeRig([disk(f), disk(new MemoryBackend(1 << 20))]);
  f.hold = (op) => op === 'flush';
  q.outb(IDE_BASE + reg_device, 0);
  q.outb(IDE_BASE + reg_command, CMD_FLUSH_CACHE);
  await until(() => f.heldCount === 1, 'flush held');
  // while device 0 is busy the device register write is ignored (QEMU), so device 0 stays selected
  q.outb(IDE_BASE + reg_device, DEV);
  assert.equal(q.inb(IDE_BASE + reg_device) & DEV, 0);
  f.release();
  await until(() => q.irq(14), 'completion interrupt');
  q.outb(IDE_BASE + reg_device, DEV);
  assert.equal(q.inb(IDE_BASE + reg_device) & DEV, DEV);
  assert.equal(q.inb(IDE_BASE + reg_status) & (BSY | DRDY), DRDY, 'device 1 is idle');
  assert.equal(q.irq(14), false, 'any Status read clears the channel interrupt');
});

test('a read still in flight at reset cannot land in the next command\'s data', async () => {
  const mem = new MemoryBackend(IMAGE);
  mem.data.fill(0xee, 0, 512);
  const f = new FaultyBackend(mem);
  const q = new IdeRig([disk(f)]);
  f.hold = () => true;
  q.outb(IDE_BASE + reg_device, LBA);
  q.outb(IDE_BASE + reg_nsectors, 1);
  q.outb(IDE_BASE + reg_lba_low, 0);
  q.outb(IDE_BASE + reg_command, 0x20);
  await until(() => f.heldCount === 1, 'read held');
  q.outb(IDE_CTRL, 0x04);
  q.outb(IDE_CTRL, 0x00);
  q.outb(IDE_BASE + reg_command, CMD_IDENTIFY);
  f.hold = null;
  f.release();
  await settle();
  const w = identifyWords(q);
  assert.equal(w[0], 0x0040);
  assert.equal(ataString(w, 10, 10), 'testdisk            ');
});

test('PIO read-ahead: one backend request serves many blocks; an error still lands on its own sector', async () => {
  const mem = new MemoryBackend(IMAGE);
  mem.data.set(pattern(8 * 512, 21), 5 * 512);
  const f = new FaultyBackend(mem);
  const q = new IdeRig([disk(f)]);
  const read = async (lba: number, count: number) => {
    q.outb(IDE_BASE + reg_device, LBA);
    q.outb(IDE_BASE + reg_nsectors, count);
    q.outb(IDE_BASE + reg_lba_low, lba);
    q.outb(IDE_BASE + reg_lba_middle, 0);
    q.outb(IDE_BASE + reg_lba_high, 0);
    q.outb(IDE_BASE + reg_command, 0x20);
    const got: number[] = [];
    for (let s = 0; s < count; s++) {
      await until(() => q.irq(14), `sector ${s}`);
      const st = q.inb(IDE_BASE + reg_status);
      if (st & ERR) return { got, err: q.inb(IDE_BASE + reg_error), at: q.inb(IDE_BASE + reg_lba_low) };
      got.push(...q.ins(IDE_BASE, 2, 256).data);
    }
    return { got, err: 0, at: q.inb(IDE_BASE + reg_lba_low) };
  };
  let r = await read(5, 8);
  assert.deepEqual(new Uint8Array(r.got), pattern(8 * 512, 21));
  assert.deepEqual(f.log, ['read 2560 4096'], 'eight one-sector blocks, one backend read');
  f.log.length = 0;
  f.rule = (op, off, len) => (op === 'read' && off <= 7 * 512 && off + len > 7 * 512 ? 'EIO' : null);
  r = await read(5, 4);
  assert.equal(r.got.length, 1024, 'sectors 5 and 6 delivered');
  assert.equal(r.err, UNC);
  assert.equal(r.at, 7, 'the LBA registers point at the failing sector');
});
