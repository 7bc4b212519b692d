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
import { type SimHost } from '../../src/sim/index.ts';
import { CmosNvram, translationFor } from '../../src/devices/cmos/index.ts';
import { simPc } from '../helpers/simpc.ts';

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
