/**
 * Fuzzing through the bus (cloud-hypervisor style): random register reads
 * and writes on both channels and the bus-master block, random PRD tables
 * and CDBs, resets, media changes and bus-master toggles. The device must
 * never throw, never hang (every wait here is bounded), never ask guest
 * memory for an address that is not a non-negative integer, and always
 * return values that fit the access size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdeRig, FakeMemory, BMDMA_BASE, settle } from './harness.ts';
import { MemoryBackend } from '../../../src/block/memory.ts';
import { FaultyBackend } from '../../../src/block/fault.ts';
import type { AccessSize } from '../../../src/core/io.ts';
import { prngU32 } from '../../helpers/prng.ts';

/** The suite's seeded PRNG as integers, with the picks the fuzzer uses. */
function rng(seed: number) {
  const next = prngU32(seed);
  return { next, int: (n: number) => next() % n, pick: <T>(a: readonly T[]) => a[next() % a.length] };
}

class StrictMemory extends FakeMemory {
  bad = 0;
  calls = 0;
  private check(gpa: number, off: number, len: number, arr: Uint8Array): void {
    this.calls++;
    if (!Number.isSafeInteger(gpa) || gpa < 0 || !Number.isSafeInteger(len) || len < 0 || off < 0 || off + len > arr.length) this.bad++;
  }
  override read(gpa: number, dst: Uint8Array, off: number, len: number): boolean {
    this.check(gpa, off, len, dst);
    return super.read(gpa, dst, off, len);
  }
  override write(gpa: number, src: Uint8Array, off: number, len: number): boolean {
    this.check(gpa, off, len, src);
    return super.write(gpa, src, off, len);
  }
}

const ATA_OPS = [0x00, 0x08, 0x10, 0x20, 0x21, 0x24, 0x25, 0x29, 0x30, 0x34, 0x35, 0x39, 0x40, 0x42, 0x70, 0x90, 0x91, 0xa0, 0xa1, 0xc4, 0xc5, 0xc6, 0xc8, 0xca, 0xe0, 0xe1, 0xe2, 0xe3, 0xe5, 0xe6, 0xe7, 0xea, 0xec, 0xef];
const SCSI_OPS = [0x00, 0x03, 0x12, 0x1b, 0x1e, 0x25, 0x28, 0x2b, 0x43, 0x46, 0x4a, 0x51, 0x5a, 0xa8, 0xbb, 0xbd, 0xbe, 0x55];

for (const seed of [1, 3, 4, 5]) {
  test(`fuzz: random accesses, PRD tables and CDBs never throw, hang or leave guest RAM (seed ${seed})`, async () => {
    const r = rng(seed * 2654435761);
    const ram = 1 << 20;
    const faulty = new FaultyBackend(new MemoryBackend(4 << 20));
    faulty.rule = (op, off) => (off % 7919 === 0 && r.int(4) === 0 ? 'EIO' : null);
    const q = new IdeRig(
      [
        { kind: 'disk', backend: faulty },
        { kind: 'cdrom', backend: new MemoryBackend(2048 * 64, true) },
        { kind: 'disk', backend: new MemoryBackend(1 << 20), writeCache: false },
        null,
      ],
      ram,
    );
    const mem = new StrictMemory(ram);
    // swap in the strict memory for every channel (same object the bus masters use)
    for (const ch of q.ide.channels) {
      (ch as unknown as { memory: FakeMemory }).memory = mem;
      (ch.bm as unknown as { memory: FakeMemory }).memory = mem;
    }
    const bases = [0x1f0, 0x170];
    const ctrls = [0x3f6, 0x376];
    const sizes: AccessSize[] = [1, 2, 4];
    for (let i = 0; i < 6000; i++) {
      const ch = r.int(2);
      const base = bases[ch];
      const k = r.int(20);
      const size = r.pick(sizes);
      let v: number;
      if (k < 4) {
        q.board.pio.write(base + 1 + r.int(6), 1, r.int(256));
      } else if (k < 6) {
        q.board.pio.write(base + 7, 1, r.int(5) === 0 ? r.int(256) : r.pick(ATA_OPS));
      } else if (k < 8) {
        v = q.board.pio.read(base + r.int(8), size);
        assert.ok(v >= 0 && v <= (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1));
      } else if (k < 9) {
        q.board.pio.write(base, size, r.next() >>> (32 - size * 8));
      } else if (k < 10) {
        const n = r.int(700);
        if (r.int(2)) q.ins(base, r.pick([2, 4] as const), n);
        else q.outs(base, 2, new Uint8Array(n * 2).map(() => r.int(256)));
      } else if (k < 11) {
        q.board.pio.write(ctrls[ch], 1, r.pick([0, 2, 4, 0, 0x80, r.int(256)]));
      } else if (k < 13) {
        const off = ch * 8 + r.int(8);
        if (r.int(2)) q.board.pio.write(BMDMA_BASE + off, size, r.next() >>> (32 - size * 8));
        else q.board.pio.read(BMDMA_BASE + (off & ~(size - 1)), size);
      } else if (k < 14) {
        // a PRD table somewhere (possibly straddling the end of RAM), pointed at
        const at = r.int(2) ? r.int(ram) & ~7 : ram - 8 * r.int(4);
        const n = 1 + r.int(8);
        for (let e = 0; e < n && at + e * 8 + 8 <= ram; e++) {
          const dv = new DataView(mem.ram.buffer, at + e * 8, 8);
          dv.setUint32(0, r.int(4) === 0 ? r.next() : r.int(ram), true);
          dv.setUint32(4, (r.int(0x20000) | (e === n - 1 && r.int(3) ? 0x80000000 : 0)) >>> 0, true);
        }
        q.board.pio.write(BMDMA_BASE + ch * 8 + 4, 4, at);
        q.board.pio.write(BMDMA_BASE + ch * 8, 1, r.pick([1, 9, 0]));
      } else if (k < 16) {
        // a CDB to whatever is waiting for a packet
        const cdb = new Uint8Array(12).map(() => (r.int(3) === 0 ? r.int(256) : r.int(4)));
        cdb[0] = r.int(6) === 0 ? r.int(256) : r.pick(SCSI_OPS);
        if (r.int(2)) cdb[4] = r.int(256);
        q.outs(base, 2, cdb);
      } else if (k < 17) {
        q.ide.setBusMaster(r.int(4) !== 0);
      } else if (k < 18) {
        if (r.int(10) === 0) q.ide.channels[0].drives[1].changeMedium(r.int(3) ? new MemoryBackend(2048 * (1 + r.int(64)), true) : null);
      } else {
        await settle(1 + r.int(3));
      }
    }
    await settle(200);
    // The guest can always recover: soft reset, then IDENTIFY answers on the primary master.
    q.ide.setBusMaster(true);
    q.outb(0x3f6, 0x04);
    q.outb(0x3f6, 0x00);
    q.outb(0x1f6, 0xa0);
    q.outb(0x1f7, 0xec);
    assert.equal(q.inb(0x1f7) & 0x89, 0x08, 'IDENTIFY after the storm shows DRQ');
    assert.equal(q.inw(0x1f0), 0x0040);
    assert.equal(mem.bad, 0, 'every guest memory access had a sane address and length');
    assert.ok(mem.calls > 0, 'the fuzzer did reach DMA');
    for (const ch of q.ide.channels) for (const d of ch.drives) {
      const s = d.state;
      for (const x of [s.status, s.error, s.nsector, s.sector, s.lcyl, s.hcyl, s.select, s.feature]) assert.ok(Number.isInteger(x) && x >= 0 && x <= 255);
      assert.ok(s.bufPos >= 0 && s.bufEnd <= s.buf.length);
    }
  });
}
