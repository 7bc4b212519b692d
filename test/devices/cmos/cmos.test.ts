/**
 * CMOS NVRAM (index >= 0x0e behind Xen's RTC): what SeaBIOS and Linux read.
 * Found on real Xen: without it SeaBIOS printed "Bad floppy type 15" and
 * chose disk translations from 0xff (r-echs) where qemu-xen gives none/large.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SimHost } from '../../../src/sim/index.ts';
import { CmosNvram, CMOS_SIZE, installCmos, translationFor, type CmosOptions } from '../../../src/devices/cmos/index.ts';
import { restoreDevice, StateError, type StateObject } from '../../../src/core/device.ts';
import { testBoard } from '../../helpers/board.ts';
import { prng } from '../../ioreq/helpers.ts';
import { simPc } from '../../helpers/simpc.ts';

function cmosRead(sim: SimHost, index: number): number {
  sim.outb(0x70, index);
  return sim.inb(0x71);
}

test('SeaBIOS view of the CMOS NVRAM of a libxl guest (two disks, a CD-ROM, boot=dc, 256 MiB)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stubdm-cmos-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const hda = join(dir, 'a.img');
  const hdb = join(dir, 'b.img');
  writeFileSync(hda, new Uint8Array(0));
  truncateSync(hda, 16 << 20); // 32/16/63
  writeFileSync(hdb, new Uint8Array(0));
  truncateSync(hdb, 1100 * 16 * 63 * 512); // sparse; 1100 cylinders: beyond int 13h's 1024
  const { sim } = await simPc(t, 256, ['-boot', 'order=dc',
    '-drive', `file=${hda},if=ide,index=0,media=disk,format=raw`, '-drive', `file=${hdb},if=ide,index=1,media=disk,format=raw`,
    '-drive', 'if=ide,index=2,media=cdrom']);

  assert.equal(cmosRead(sim, 0x10), 0, 'no floppy (0xf = "Bad floppy type 15")');
  assert.equal(cmosRead(sim, 0x14) & 0xc1, 0, 'equipment: no floppies');
  assert.equal(cmosRead(sim, 0x15) | (cmosRead(sim, 0x16) << 8), 640);
  assert.equal(cmosRead(sim, 0x34) | (cmosRead(sim, 0x35) << 8), (256 - 16) * 16, '64 KiB units above 16 MiB');
  assert.equal(cmosRead(sim, 0x17) | (cmosRead(sim, 0x18) << 8), 0xffff, 'extended KiB capped');
  assert.equal(cmosRead(sim, 0x5b) | cmosRead(sim, 0x5c) | cmosRead(sim, 0x5d), 0, 'nothing above 4 GiB');
  assert.equal(cmosRead(sim, 0x5f), 0, 'one vCPU');
  // boot order d, c: CD-ROM (3) first, hard disk (2) second
  assert.equal(cmosRead(sim, 0x3d), 0x23);
  assert.equal(cmosRead(sim, 0x38) & 0xf0, 0);
  // translation: disk 0 fits CHS (none = 0), disk 1 has 1100 cylinders (large = 2), CD-ROM none
  assert.equal(cmosRead(sim, 0x39), 0b10_00);
  assert.equal(cmosRead(sim, 0x12), 0xff, 'disks 0 and 1: type 47 in 0x19/0x1a');
  assert.equal(cmosRead(sim, 0x19), 47);
  assert.equal(cmosRead(sim, 0x1b) | (cmosRead(sim, 0x1c) << 8), 32, 'disk 0 cylinders');
  assert.equal(cmosRead(sim, 0x1d), 16, 'disk 0 heads');
  assert.equal(cmosRead(sim, 0x23), 63, 'disk 0 sectors');
  assert.equal(cmosRead(sim, 0x32) >> 4, 2, 'century in BCD (20xx)');
  // NVRAM is read-write (SeaBIOS writes the shutdown status byte); bit 7 of the index is the NMI mask
  sim.outb(0x70, 0x80 | 0x0f);
  sim.outb(0x71, 0x0a);
  assert.equal(cmosRead(sim, 0x0f), 0x0a);
});

test('CMOS: indices Xen keeps (< 0x0e) and the index port read as 0xff; writes there are ignored', () => {
  const c = new CmosNvram({ lowRamBytes: 8 << 20, highRamBytes: 1 << 30, vcpus: 4, bootOrder: 'cda', disks: [], year: 2026 });
  c.write(0, 1, 0x05);
  c.write(1, 1, 0x42);
  assert.equal(c.read(1, 1), 0xff);
  assert.equal(c.read(0, 1), 0xff);
  const r = (i: number) => (c.write(0, 1, i), c.read(1, 1));
  assert.equal(r(0x5f), 3);
  assert.equal(r(0x5b) | (r(0x5c) << 8) | (r(0x5d) << 16), 16384, '1 GiB above 4 GiB in 64 KiB units');
  assert.equal(r(0x34) | (r(0x35) << 8), 0, 'under 16 MiB of RAM');
  assert.equal(r(0x17) | (r(0x18) << 8), 7 * 1024);
  assert.equal(r(0x3d), 0x32);
  assert.equal(r(0x38), 0x10);
  assert.equal(r(0x32), 0x20);
  assert.equal(r(0x12), 0);
});

test('translation hint follows the CHS limits', () => {
  assert.equal(translationFor({ cylinders: 1024, heads: 16, sectors: 63 }), 0);
  assert.equal(translationFor({ cylinders: 8192, heads: 16, sectors: 63 }), 2);
  assert.equal(translationFor({ cylinders: 16383, heads: 16, sectors: 63 }), 1);
});

const OPTS: CmosOptions = { lowRamBytes: 64 << 20, highRamBytes: 0, vcpus: 2, bootOrder: 'dc', disks: [{ cylinders: 32, heads: 16, sectors: 63 }], year: 2026 };

function cmosRig() {
  const fb = testBoard();
  const cmos = installCmos(fb.board, OPTS);
  return { board: fb.board, cmos };
}

type CmosOp = { k: 'w' | 'r'; port: number; size: 1 | 2; v: number };

/** Index writes (NMI bit sometimes, indices below 14 sometimes), data writes and reads, index-port reads. */
function cmosOp(r: () => number): CmosOp {
  const x = r();
  const v = Math.floor(r() * 256);
  if (x < 0.35) return { k: 'w', port: 0x70, size: 1, v: r() < 0.2 ? v & 0x8f : v }; // select
  if (x < 0.6) return { k: 'w', port: 0x71, size: 1, v };
  if (x < 0.9) return { k: 'r', port: 0x71, size: 1, v: 0 };
  if (x < 0.95) return { k: 'r', port: 0x70, size: 1, v: 0 };
  return r() < 0.5 ? { k: 'r', port: 0x70, size: 2, v: 0 } : { k: 'w', port: 0x70, size: 2, v: Math.floor(r() * 65536) };
}

function cmosStep(board: ReturnType<typeof cmosRig>['board'], op: CmosOp): number {
  if (op.k === 'w') {
    board.pio.write(op.port, op.size, op.v);
    return -1;
  }
  return board.pio.read(op.port, op.size);
}

test('snapshot/restore mid-workload: 60 seeded random workloads continue identically on a fresh CMOS', () => {
  let nvramChanged = 0;
  for (let w = 0; w < 60; w++) {
    const r = prng(0xc305 + w);
    const ops = Array.from({ length: 400 }, () => cmosOp(r));
    const cut = Math.floor(r() * ops.length);
    const a = cmosRig();
    const fresh = a.cmos.snapshot();
    for (let i = 0; i < cut; i++) cmosStep(a.board, ops[i]);
    const saved = a.cmos.snapshot();
    if (!Buffer.from(saved.nvram).equals(Buffer.from(fresh.nvram))) nvramChanged++;
    // A fresh CMOS built for another guest: the restore must replace all of it.
    const b = testBoard();
    const other = installCmos(b.board, { ...OPTS, vcpus: 8, bootOrder: 'n', disks: [], year: 2199 });
    other.restore(structuredClone(saved));
    assert.deepEqual(other.snapshot(), saved, `workload ${w}: restored state reads back`);
    for (let i = cut; i < ops.length; i++) {
      assert.equal(cmosStep(b.board, ops[i]), cmosStep(a.board, ops[i]), `workload ${w} op ${i} (${JSON.stringify(ops[i])})`);
    }
    assert.deepEqual(other.snapshot(), a.cmos.snapshot(), `workload ${w}: same final state`);
  }
  assert.ok(nvramChanged >= 40, `snapshots with guest-written NVRAM: ${nvramChanged} of 60`);
});

test('malformed CMOS state is refused with StateError and leaves the NVRAM as it was', () => {
  const { board, cmos } = cmosRig();
  board.pio.write(0x70, 1, 0x40);
  board.pio.write(0x71, 1, 0x99);
  const good = cmos.snapshot();
  assert.equal(good.index, 0x40);
  assert.equal(good.nvram[0x40], 0x99);
  const bad: [string, StateObject][] = [
    ['index as a string', { ...good, index: '64' }],
    ['index 128 (7 bits)', { ...good, index: 128 }],
    ['index negative', { ...good, index: -1 }],
    ['index fractional', { ...good, index: 14.5 }],
    ['nvram as a number array', { ...good, nvram: Array.from(good.nvram) }],
    ['nvram short', { ...good, nvram: new Uint8Array(CMOS_SIZE - 1) }],
    ['nvram over-long', { ...good, nvram: new Uint8Array(CMOS_SIZE + 1) }],
    ['nvram missing', { index: 0x40 }],
  ];
  const before = cmos.snapshot();
  for (const [name, s] of bad) {
    assert.throws(() => cmos.restore(s), StateError, name);
    assert.deepEqual(cmos.snapshot(), before, `${name}: state unchanged`);
  }
  assert.throws(() => restoreDevice(cmos, 2, good), StateError, 'a newer state version');
  assert.deepEqual(cmos.snapshot(), before);
  assert.equal((board.pio.write(0x70, 1, 0x40), board.pio.read(0x71, 1)), 0x99);
  // The snapshot is a copy: changing it does not reach the device, nor does the device change a restored array.
  const copy = cmos.snapshot();
  copy.nvram[0x40] = 0;
  assert.equal(board.pio.read(0x71, 1), 0x99);
  const src = cmos.snapshot();
  cmos.restore(src);
  src.nvram[0x40] = 1;
  assert.equal(board.pio.read(0x71, 1), 0x99);
  assert.equal(cmos.id, 'cmos');
});
