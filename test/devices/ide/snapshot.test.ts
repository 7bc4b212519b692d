/**
 * Save/restore: the controller state is plain data (v8.serialize round trip),
 * a restored controller carries on mid-command, re-issuing the request that
 * was in flight by name, and a malformed state is refused with a StateError
 * that leaves the controller as it was. (Seeded mid-operation round trips:
 * roundtrip.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { IdeRig, BMDMA_BASE, IDE_BASE, IDE_CTRL, until, pattern } from './harness.ts';
import { MemoryBackend } from '../../../src/block/memory.ts';
import { FaultyBackend } from '../../../src/block/fault.ts';
import type { IdeSaved } from '../../../src/devices/ide/controller.ts';
import { StateError } from '../../../src/core/state.ts';
import { restoreDevice, type StateObject } from '../../../src/core/device.ts';
import { BUF_BYTES } from '../../../src/devices/ide/drive.ts';
import { prng } from '../../ioreq/helpers.ts';
import { decodeContainer, encodeContainer } from '../../../src/machine/container.ts';

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
  b.ide.resume();
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
  b.ide.resume();
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
  b.ide.resume();
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
  b.ide.resume();
  assert.equal(b.irq(14), true);
  b.outb(IDE_CTRL, 0x02);
  const c = new IdeRig([{ kind: 'disk', backend: new MemoryBackend(1 << 20) }]);
  c.ide.restore(roundTrip(b.ide.snapshot()));
  c.ide.resume();
  assert.equal(c.irq(14), false, 'masked by nIEN');
  c.outb(IDE_CTRL, 0x00);
  assert.equal(c.irq(14), true);
});

// ---- the Device contract: fresh plain data, checked restore ---------------------------------


/** Disks in slots 0 and 1, a CD-ROM in slot 2; slot 0 half way through a PIO read, the CD in a PIO data-in phase. */
async function busyRig(): Promise<IdeRig> {
  const cd = new MemoryBackend(new Uint8Array(16 * 2048).map((_, i) => i * 13), true);
  const q = new IdeRig([{ kind: 'disk', backend: new MemoryBackend(1 << 20) }, { kind: 'disk', backend: new MemoryBackend(1 << 19) }, { kind: 'cdrom', backend: cd }]);
  q.outb(IDE_BASE + 6, 0xe0);
  q.outb(IDE_BASE + 2, 3);
  q.outb(IDE_BASE + 3, 5);
  q.outb(IDE_BASE + 7, 0x20);
  await until(() => q.irq(14), 'PIO read block');
  q.ins(IDE_BASE, 2, 17);
  // READ(10) of 3 blocks by PIO, 2048 bytes per DRQ block: 200 bytes of the first read.
  q.outb(0x176, 0xa0);
  q.outb(0x174, 0x00);
  q.outb(0x175, 0x08);
  q.outb(0x177, 0xa0);
  q.outs(0x170, 2, new Uint8Array([0x28, 0, 0, 0, 0, 2, 0, 0, 3, 0, 0, 0]));
  await until(() => q.irq(15), 'CD data block');
  q.ins(0x170, 2, 100);
  return q;
}

type Mut = [string, (s: IdeSaved) => void, RegExp];
const d = (s: IdeSaved, i: number) => s.drives[i] as unknown as Record<string, unknown>;
const at = (s: IdeSaved, i: number) => s.drives[i].atapi as unknown as Record<string, unknown>;
const bm = (s: IdeSaved, c: number) => s.channels[c].bm as unknown as Record<string, unknown>;
const MUTATIONS: Mut[] = [
  ['PIO position beyond the buffer', (s) => void (d(s, 0).bufPos = BUF_BYTES + 2), /drives\[0\]\.bufPos/],
  ['PIO position beyond the window', (s) => void (d(s, 0).bufPos = s.drives[0].bufEnd + 2), /drives\[0\]\.bufPos/],
  ['window beyond the buffer', (s) => void (d(s, 0).bufEnd = BUF_BYTES + 512), /drives\[0\]\.bufEnd/],
  ['fractional position', (s) => void (d(s, 0).bufPos = 1.5), /drives\[0\]\.bufPos/],
  ['transfer end not in the table', (s) => void (d(s, 0).end = 'constructor'), /drives\[0\]\.end/],
  ['transfer end of another device kind', (s) => void (d(s, 0).end = 'atapiDataNext'), /drives\[0\]\.end/],
  ['a window without a transfer', (s) => void (d(s, 1).bufEnd = 512), /drives\[1\]\.end/],
  ['LBA beyond the disk', (s) => void (d(s, 0).hcyl = 0xff), /drives\[0\]\.nsLeft.*beyond the disk/],
  ['sector count beyond the disk', (s) => void (d(s, 0).nsLeft = 65536), /drives\[0\]\.nsLeft/],
  ['DMA beyond the second disk', (s) => Object.assign(d(s, 1), { dma: 'ataRead', nsLeft: 2000, select: 0xe0 }), /drives\[1\]\.nsLeft/],
  ['read-ahead beyond the disk', (s) => Object.assign(d(s, 1), { raLba: 1020, raSectors: 8 }), /drives\[1\]\.raLba/],
  ['CD bytes beyond the medium', (s) => void (at(s, 2).xferLeft = 64 * 2048), /drives\[2\]\.atapi\.srcLba/],
  ['reply beyond the buffer', (s) => Object.assign(at(s, 2), { srcLba: -1, xferLeft: BUF_BYTES + 2 }), /drives\[2\]\.atapi\.xferLeft/],
  ['block longer than the bytes left', (s) => void (at(s, 2).blockLen = 0xfffe), /drives\[2\]\.atapi\.blockLen/],
  ['ATAPI state from a disk slot', (s) => void (d(s, 0).atapi = s.drives[2].atapi), /drives\[0\]\.atapi/],
  ['CD-ROM without ATAPI state', (s) => void (d(s, 2).atapi = null), /drives\[2\]\.atapi/],
  ['flush on a CD-ROM', (s) => void (d(s, 2).io = 'flush'), /drives\[2\]\.io/],
  ['request name not in the table', (s) => void (d(s, 0).io = 'erase'), /drives\[0\]\.io/],
  ['command on an empty slot', (s) => void (d(s, 3).dma = 'ataRead'), /drives\[3\]\.dma/],
  ['slot kind differs', (s) => void (d(s, 1).kind = 'cdrom'), /slot 1 holds cdrom in the saved state, disk on this machine/],
  ['unknown kind', (s) => void (d(s, 1).kind = 'tape'), /drives\[1\]\.kind/],
  ['medium differs', (s) => void (d(s, 2).medium = false), /drives\[2\]\.medium/],
  ['buffer of the wrong size', (s) => void (d(s, 0).buf = new Uint8Array(512)), /drives\[0\]\.buf/],
  ['buffer as an array', (s) => void (d(s, 0).buf = [...s.drives[0].buf]), /drives\[0\]\.buf/],
  ['register as a string', (s) => void (d(s, 0).status = '0x58'), /drives\[0\]\.status/],
  ['register beyond 8 bits', (s) => void (d(s, 1).lcyl = 256), /drives\[1\]\.lcyl/],
  ['Device register without its always-one bits', (s) => void (d(s, 1).select = 0x40), /drives\[1\]\.select/],
  ['multiple count not a power of two', (s) => void (d(s, 0).multSectors = 3), /drives\[0\]\.multSectors/],
  ['zero heads', (s) => void (d(s, 0).curHeads = 0), /drives\[0\]\.curHeads/],
  ['sense key beyond 4 bits', (s) => void (at(s, 2).senseKey = 16), /drives\[2\]\.atapi\.senseKey/],
  ['odd byte count limit', (s) => void (at(s, 2).byteLimit = 0x801), /drives\[2\]\.atapi\.byteLimit/],
  ['short CDB', (s) => void (at(s, 2).cdb = [0x28]), /drives\[2\]\.atapi\.cdb/],
  ['unit attention state beyond 2', (s) => void (at(s, 2).mediaChanged = 3), /drives\[2\]\.atapi\.mediaChanged/],
  ['BM DMA for an empty slot', (s) => void (bm(s, 1).unit = 1), /channels\[1\]\.bm\.unit.*empty/],
  ['BM running for no drive', (s) => void (bm(s, 0).running = true), /channels\[0\]\.bm\.running/],
  ['BM status reserved bits', (s) => void (bm(s, 1).status = 0x80), /channels\[1\]\.bm\.status/],
  ['BM PRD table not aligned', (s) => void (bm(s, 1).prdt = 0x1002), /channels\[1\]\.bm\.prdt/],
  ['BM command reserved bits', (s) => void (bm(s, 0).cmd = 0x10), /channels\[0\]\.bm\.cmd/],
  ['BM state missing', (s) => void delete (s.channels[1] as Record<string, unknown>).bm, /channels\[1\]\.bm/],
  ['selected unit 2', (s) => void ((s.channels[0] as Record<string, unknown>).unit = 2), /channels\[0\]\.unit/],
  ['three channels', (s) => void s.channels.push(s.channels[0]), /ide\.channels/],
  ['three drives', (s) => void s.drives.pop(), /ide\.drives/],
];

test('restore refuses malformed state with a StateError naming the field, and changes nothing', async () => {
  const q = await busyRig();
  const good = q.ide.snapshot();
  const irqs = [...q.irqLevels];
  for (const [what, mutate, re] of MUTATIONS) {
    const bad = roundTrip(good);
    mutate(bad);
    assert.throws(() => q.ide.restore(bad as unknown as StateObject), (e) => e instanceof StateError && re.test(e.message), what);
    assert.deepEqual(q.ide.snapshot(), good, `${what}: state unchanged`);
    assert.deepEqual(q.irqLevels, irqs, `${what}: interrupt lines unchanged`);
  }
  // The unmutated state is accepted by the same controller and by a fresh one.
  q.ide.restore(roundTrip(good));
  q.ide.resume();
  assert.deepEqual(q.ide.snapshot(), good);
});

test('randomly corrupted state: restore accepts it or throws StateError, never anything else, and a refusal changes nothing', async () => {
  const q = await busyRig();
  const good = q.ide.snapshot();
  const rnd = prng(0x1de);
  const junk = [-1, 0.5, 2 ** 53, NaN, '1', null, true, [], {}, new Uint8Array(3), 0, 0xff, 0x10000];
  let refused = 0;
  let accepted = 0;
  for (let i = 0; i < 400; i++) {
    const bad = roundTrip(good) as unknown as Record<string, unknown>;
    // Walk to a random leaf (the buffers excepted: any bytes are valid there) and replace it.
    let o: Record<string, unknown> = bad;
    let key = '';
    for (let depth = 0; depth < 4; depth++) {
      const keys = Object.keys(o).filter((k) => k !== 'buf');
      key = keys[Math.floor(rnd() * keys.length)];
      const v = o[key];
      if (v === null || typeof v !== 'object' || v instanceof Uint8Array || rnd() < 0.3) break;
      o = v as Record<string, unknown>;
    }
    o[key] = junk[Math.floor(rnd() * junk.length)];
    const fresh = await busyRig();
    const before = fresh.ide.snapshot();
    try {
      fresh.ide.restore(bad as unknown as StateObject);
      fresh.ide.resume();
      accepted++;
      // Whatever was accepted runs: the guest may poke every port without an exception.
      for (let p = 0; p < 8; p++) fresh.inb(IDE_BASE + p), fresh.inb(0x170 + p);
      fresh.ins(IDE_BASE, 2, 300);
      fresh.ins(0x170, 2, 300);
    } catch (e) {
      assert.ok(e instanceof StateError, `mutation ${i} (${key}): ${String(e)}`);
      assert.deepEqual(fresh.ide.snapshot(), before, `mutation ${i} (${key}): refused state left the controller as it was`);
      refused++;
    }
  }
  assert.ok(refused > 200, `refused ${refused}`);
  assert.ok(accepted > 10, `accepted ${accepted}`);
});

test('snapshot is a fresh copy of plain data; restoreDevice and quiesce follow the Device contract', async () => {
  const q = await busyRig();
  assert.equal(q.ide.id, 'ide');
  assert.equal(q.ide.stateVersion, 1);
  assert.equal(await q.ide.quiesce(), 'reissued');
  const s1 = q.ide.snapshot();
  const plain = (v: unknown, path: string): void => {
    if (v === null || typeof v === 'boolean' || typeof v === 'string' || v instanceof Uint8Array) return;
    if (typeof v === 'number') return assert.ok(Number.isFinite(v), path);
    if (Array.isArray(v)) return v.forEach((x, i) => plain(x, `${path}[${i}]`));
    assert.equal(Object.getPrototypeOf(v), Object.prototype, `${path} is a plain object`);
    for (const [k, x] of Object.entries(v as object)) plain(x, `${path}.${k}`);
  };
  plain(s1, 'ide');
  const keep = roundTrip(s1);
  // Scribbling on what snapshot() returned does not reach the controller.
  s1.drives[0].buf.fill(0xee);
  s1.drives[2].atapi!.cdb[0] = 0x99;
  s1.channels[0].bm.prdt = 0x1234;
  assert.deepEqual(q.ide.snapshot(), keep);
  const b = new IdeRig([{ kind: 'disk', backend: new MemoryBackend(1 << 20) }, { kind: 'disk', backend: new MemoryBackend(1 << 19) }, { kind: 'cdrom', backend: new MemoryBackend(16 * 2048, true) }]);
  // Through the machine's saved-state container (JSON with bytes as base64).
  const [rec] = decodeContainer(encodeContainer([{ id: q.ide.id, version: q.ide.stateVersion, state: q.ide.snapshot() }]));
  restoreDevice(b.ide, rec.version, rec.state);
  assert.deepEqual(b.ide.snapshot(), keep);
  assert.throws(() => restoreDevice(b.ide, 2, keep), StateError);
});

test('disks unplugged before the save: restore is refused until the machine replays the unplug', () => {
  const cfg = () => [
    { kind: 'disk' as const, backend: new MemoryBackend(1 << 20) },
    { kind: 'disk' as const, backend: new MemoryBackend(1 << 20) },
    { kind: 'cdrom' as const, backend: null },
  ];
  const a = new IdeRig(cfg());
  assert.equal(a.ide.unplugDisks(false), 2);
  a.outb(IDE_BASE + 6, 0xa0);
  a.outb(0x176, 0xa0);
  a.outb(0x177, 0xa1); // IDENTIFY PACKET DEVICE on the CD, still there
  const snap = roundTrip(a.ide.snapshot());
  const b = new IdeRig(cfg());
  const before = b.ide.snapshot();
  assert.throws(() => b.ide.restore(snap), (e) => e instanceof StateError && /slot 0 holds none in the saved state, disk on this machine/.test(e.message));
  assert.deepEqual(b.ide.snapshot(), before, 'refused: nothing changed');
  assert.equal(b.ide.unplugDisks(false), 2);
  b.ide.restore(snap);
  b.ide.resume();
  assert.deepEqual(b.ide.snapshot(), snap);
  assert.equal(b.inb(IDE_BASE + 7), 0, 'the unplugged slot answers as absent');
  assert.equal(b.inb(0x177) & 0x08, 0x08, 'the CD still shows its IDENTIFY data');
});
