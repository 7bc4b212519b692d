/**
 * The VGA core through the board: register files and their masks, the
 * attribute flip-flop, DAC auto-increment, CRTC write protection, mono and
 * colour decode, every planar write mode and both read modes with the
 * latches, chain-4 and odd/even addressing, Bochs DISPI (ports and BAR2),
 * the QEMU extended registers and the EDID; then the three QEMU VGA CVEs as
 * regressions: nothing a guest writes makes an access leave VRAM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as V from '../../../src/devices/vga/regs.ts';
import { buildEdid, vramBytes } from '../../../src/devices/vga/index.ts';
import { prng } from '../../helpers/prng.ts';
import { LFB_BASE, makeVga, MMIO_BASE, WINDOW, type VgaRig } from './harness.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Planar graphics with all planes writable: GR6 map 0 graphics, SR4 odd/even off, chain-4 off. */
function planar(r: VgaRig): void {
  r.reg(0x3c4, V.SR_PLANE_WRITE, 0x0f);
  r.reg(0x3c4, V.SR_MEMORY_MODE, 0x06);
  r.reg(0x3ce, V.GR_MISC, 0x05);
  r.reg(0x3ce, V.GR_MODE, 0x00);
  r.reg(0x3ce, V.GR_BIT_MASK, 0xff);
}

test('vgamem_mb follows QEMU: default 16, clamped to 1..512, rounded up to a power of two', () => {
  assert.equal(vramBytes(null), 16 << 20);
  assert.equal(vramBytes(0), 1 << 20);
  assert.equal(vramBytes(3), 4 << 20);
  assert.equal(vramBytes(9999), 512 << 20);
});

test('reset state: DISPI ID 0xB0C5, VRAM size in 64 KiB units, GETCAPS answers the maxima', () => {
  const r = makeVga({ vgamemMb: 16 });
  assert.equal(r.dispiRead(V.DISPI_ID), 0xb0c5);
  assert.equal(r.dispiRead(V.DISPI_VIDEO_MEMORY_64K), 256);
  assert.equal(r.dispiRead(0xb), 0);
  r.dispi(V.DISPI_ID, 0xb0c0);
  assert.equal(r.dispiRead(V.DISPI_ID), 0xb0c0);
  r.dispi(V.DISPI_ID, 0x1234); // not an ID: ignored
  assert.equal(r.dispiRead(V.DISPI_ID), 0xb0c0);
  r.dispi(V.DISPI_XRES, 640);
  r.dispi(V.DISPI_ENABLE, V.DISPI_GETCAPS);
  assert.deepEqual([r.dispiRead(V.DISPI_XRES), r.dispiRead(V.DISPI_YRES), r.dispiRead(V.DISPI_BPP)], [16000, 12000, 32]);
  r.dispi(V.DISPI_ENABLE, 0);
  assert.equal(r.dispiRead(V.DISPI_XRES), 640);
  // A word at 0x1D0 is a data access too; a word at 0x1CE the index.
  r.outw(0x1ce, V.DISPI_YRES);
  r.outw(0x1d0, 480);
  assert.equal(r.inw(0x1cf), 480);
  assert.equal(r.inw(0x1ce), V.DISPI_YRES);
});

test('sequencer and graphics registers keep only their implemented bits; outw writes index then data', () => {
  const r = makeVga();
  r.outw(0x3c4, 0xff01); // SR1 <- 0xff
  r.outb(0x3c4, 1);
  assert.equal(r.inb(0x3c5), 0x3d);
  r.outb(0x3c4, 0x0b); // index masked to 3 bits
  assert.equal(r.inb(0x3c4), 3);
  r.outw(0x3ce, 0xff05);
  r.outb(0x3ce, 5);
  assert.equal(r.inb(0x3cf), 0x7b);
  r.outb(0x3ce, 9);
  r.outb(0x3cf, 0xff);
  assert.equal(r.inb(0x3cf), 0); // GR9+ do not exist
});

test('attribute controller: index/data flip-flop, reset by reading input status 1', () => {
  const r = makeVga();
  r.outb(0x3c2, 0x01); // colour decode
  r.inb(0x3da);
  r.outb(0x3c0, 0x30); // index 0x10 with PAS
  assert.equal(r.inb(0x3c0), 0, 'in the data phase 0x3C0 reads 0');
  r.outb(0x3c0, 0xff); // data
  assert.equal(r.inb(0x3c0), 0x30, 'back in the index phase');
  r.inb(0x3da);
  r.outb(0x3c0, 0x10);
  assert.equal(r.inb(0x3c1), 0xef); // mode register without bit 4
  // Status 1 toggles retrace and display-enable so polling loops end.
  const a = r.inb(0x3da);
  const b = r.inb(0x3da);
  assert.equal(a ^ b, V.ST01_V_RETRACE | V.ST01_DISP_ENABLE);
});

test('DAC: three writes per entry, auto-increment, reads from the read index, state port', () => {
  const r = makeVga();
  r.outb(0x3c8, 0xff);
  for (const v of [1, 2, 3, 4, 5, 6]) r.outb(0x3c9, v);
  assert.equal(r.inb(0x3c8), 1); // wrapped past 255
  assert.equal(r.inb(0x3c7), 0);
  r.outb(0x3c7, 0xff);
  assert.equal(r.inb(0x3c7), 3);
  assert.deepEqual([r.inb(0x3c9), r.inb(0x3c9), r.inb(0x3c9)], [1, 2, 3]);
  assert.deepEqual([r.inb(0x3c9), r.inb(0x3c9), r.inb(0x3c9)], [4, 5, 6]);
});

test('CRTC: CR11 bit 7 protects CR0-CR7 except CR7 bit 4; mono/colour decode floats the other set', () => {
  const r = makeVga();
  r.outb(0x3c2, 0x01);
  r.reg(0x3d4, V.CR_H_TOTAL, 0x5f);
  r.reg(0x3d4, V.CR_V_SYNC_END, 0x80);
  r.reg(0x3d4, V.CR_H_TOTAL, 0x11);
  r.reg(0x3d4, V.CR_OVERFLOW, 0xff);
  r.outb(0x3d4, V.CR_H_TOTAL);
  assert.equal(r.inb(0x3d5), 0x5f);
  r.outb(0x3d4, V.CR_OVERFLOW);
  assert.equal(r.inb(0x3d5), 0x10);
  assert.equal(r.inb(0x3b5), 0xff, 'mono CRTC floats in colour decode');
  r.outb(0x3b4, 0x0e);
  r.outb(0x3c2, 0x00); // mono decode
  assert.equal(r.inb(0x3d5), 0xff);
  assert.equal(r.inb(0x3b4), V.CR_OVERFLOW, 'the write to 0x3b4 under colour decode was dropped');
});

test('planar write mode 0: rotate, set/reset, logical op and bit mask against the latches', () => {
  const r = makeVga();
  planar(r);
  r.memw(LFB_BASE + 0x40, 4, 0xf0f0f0f0); // planar address 0x10 = VRAM bytes 0x40..0x43
  r.reg(0x3ce, V.GR_SR_VALUE, 0b0101);
  r.reg(0x3ce, V.GR_SR_ENABLE, 0b0011); // planes 0 and 1 from set/reset
  r.reg(0x3ce, V.GR_DATA_ROTATE, (2 << 3) | 1); // OR with latch, rotate right 1
  r.reg(0x3ce, V.GR_BIT_MASK, 0x3c);
  r.memr(WINDOW + 0x10, 1); // load latches
  r.memw(WINDOW + 0x10, 1, 0x03); // rotated: 0x81
  // plane0: set 0xff |latch f0 = ff, masked 0x3c -> (ff&3c)|(f0&c3) = 0xfc
  // plane1: set 0x00 | f0 = f0 -> f0
  // plane2/3: data 0x81 | f0 = f1 -> (f1&3c)|(f0&c3) = 0xf0
  assert.equal(r.memr(LFB_BASE + 0x40, 4), 0xf0f0f0fc);
});

test('planar write modes 1, 2, 3 and read modes 0 and 1', () => {
  const r = makeVga();
  planar(r);
  r.memw(LFB_BASE + 0x00, 4, 0x11223344);
  // Mode 1 copies the latches.
  r.reg(0x3ce, V.GR_MODE, 1);
  r.memr(WINDOW + 0, 1);
  r.memw(WINDOW + 5, 1, 0x99);
  assert.equal(r.memr(LFB_BASE + 20, 4), 0x11223344);
  // Mode 2: the low nibble of the data is a colour, expanded across the bit mask.
  r.reg(0x3ce, V.GR_MODE, 2);
  r.reg(0x3ce, V.GR_BIT_MASK, 0x0f);
  r.memr(WINDOW + 0, 1);
  r.memw(WINDOW + 0, 1, 0b1010);
  assert.equal(r.memr(LFB_BASE, 4), ((0x11 & 0xf0) | 0x0f) << 24 | (0x22 & 0xf0) << 16 | ((0x33 & 0xf0) | 0x0f) << 8 | (0x44 & 0xf0));
  // Mode 3: rotated data ANDed with the bit mask, colour from set/reset.
  r.reg(0x3ce, V.GR_MODE, 3);
  r.reg(0x3ce, V.GR_BIT_MASK, 0xff);
  r.reg(0x3ce, V.GR_SR_VALUE, 0b0001);
  r.reg(0x3ce, V.GR_DATA_ROTATE, 0);
  r.memw(LFB_BASE + 8, 4, 0);
  r.memr(WINDOW + 2, 1);
  r.memw(WINDOW + 2, 1, 0x0f);
  assert.equal(r.memr(LFB_BASE + 8, 4), 0x0000000f);
  // Read mode 0 returns the selected plane, read mode 1 the colour compare.
  r.memw(LFB_BASE + 12, 4, 0xff00ff00);
  r.reg(0x3ce, V.GR_MODE, 0);
  r.reg(0x3ce, V.GR_PLANE_READ, 1);
  assert.equal(r.memr(WINDOW + 3, 1), 0xff);
  r.reg(0x3ce, V.GR_MODE, V.GR05_READ_MODE1);
  r.reg(0x3ce, V.GR_COMPARE_VALUE, 0b1010);
  r.reg(0x3ce, V.GR_COMPARE_MASK, 0x0f);
  assert.equal(r.memr(WINDOW + 3, 1), 0xff, 'every pixel has colour 1010');
  r.reg(0x3ce, V.GR_COMPARE_VALUE, 0b0101);
  assert.equal(r.memr(WINDOW + 3, 1), 0x00);
  // Map mask: plane 2 only.
  r.reg(0x3ce, V.GR_MODE, 0);
  r.reg(0x3c4, V.SR_PLANE_WRITE, 0b0100);
  r.memw(WINDOW + 4, 1, 0x5a);
  assert.equal(r.memr(LFB_BASE + 16, 4), 0x005a0000);
});

test('odd/even (text) and chain-4 addressing; memory maps 2 and 3 decode 32 KiB each', () => {
  const r = makeVga();
  // Text mode as the BIOS sets it: odd/even host addressing, map 3 (0xB8000).
  r.reg(0x3c4, V.SR_PLANE_WRITE, 0x03);
  r.reg(0x3c4, V.SR_MEMORY_MODE, 0x02);
  r.reg(0x3ce, V.GR_MODE, 0x10);
  r.reg(0x3ce, V.GR_MISC, 0x0e);
  r.memw(0xb8000, 2, 0x0741); // 'A' white on black
  assert.equal(r.vga.core.vram[0], 0x41, 'character in plane 0');
  assert.equal(r.vga.core.vram[1], 0x07, 'attribute in plane 1');
  assert.equal(r.memr(0xb8000, 2), 0x0741);
  assert.equal(r.memr(0xa0000, 1), 0xff, 'map 3 does not decode 0xA0000');
  r.memw(0xb0000, 1, 0x55);
  assert.equal(r.vga.core.vram.subarray(0, 8).join(), '65,7,0,0,0,0,0,0');
  // Chain-4, map 1: byte address = VRAM address.
  r.reg(0x3c4, V.SR_PLANE_WRITE, 0x0f);
  r.reg(0x3c4, V.SR_MEMORY_MODE, 0x0e);
  r.reg(0x3ce, V.GR_MODE, 0x40);
  r.reg(0x3ce, V.GR_MISC, 0x05);
  r.memw(0xa0123, 1, 0x77);
  assert.equal(r.vga.core.vram[0x123], 0x77);
  assert.equal(r.memr(0xb0000, 1), 0xff, 'map 1 decodes 64 KiB only');
});

test('BAR2: DISPI by address (and the index follows), VGA ports, extended registers, EDID', () => {
  const r = makeVga();
  r.memw(MMIO_BASE + 0x500 + 2 * V.DISPI_XRES, 2, 800);
  assert.equal(r.dispiRead(V.DISPI_XRES), 800);
  r.memr(MMIO_BASE + 0x500 + 2 * V.DISPI_BPP, 2);
  assert.equal(r.inw(0x1ce), V.DISPI_BPP);
  r.memw(MMIO_BASE + 0x500 + 2 * V.DISPI_XRES, 4, (600 << 16) | 1024); // XRES and YRES
  assert.deepEqual([r.dispiRead(V.DISPI_XRES), r.dispiRead(V.DISPI_YRES)], [1024, 600]);
  r.memw(MMIO_BASE + 0x404, 2, 0x0f02); // 0x3c4/0x3c5
  r.outb(0x3c4, 2);
  assert.equal(r.inb(0x3c5), 0x0f);
  assert.equal(r.memr(MMIO_BASE + 0x410, 1), 0xff, '0x3D0 floats under mono decode');
  r.outb(0x3c2, 0x01);
  assert.equal(r.memr(MMIO_BASE + 0x410, 1), 0, 'a decoded port with no register reads 0 through BAR2');
  assert.equal(r.memr(MMIO_BASE + 0x600, 4), 8);
  assert.equal(r.memr(MMIO_BASE + 0x604, 4), V.QEXT_LITTLE_ENDIAN);
  r.memw(MMIO_BASE + 0x604, 4, V.QEXT_BIG_ENDIAN);
  assert.equal(r.memr(MMIO_BASE + 0x604, 4), V.QEXT_BIG_ENDIAN);
  const e = buildEdid();
  const blob = new Uint8Array(128);
  for (let i = 0; i < 128; i++) blob[i] = r.memr(MMIO_BASE + i, 1);
  assert.deepEqual(blob, e);
  assert.deepEqual([...e.subarray(0, 8)], [0, 255, 255, 255, 255, 255, 255, 0]);
  assert.equal(e.reduce((a, b) => a + b, 0) % 256, 0, 'EDID checksum');
  assert.equal(e[54] | (e[55] << 8), 6500, 'preferred timing 65 MHz');
  assert.equal(e[56] | ((e[58] >> 4) << 8), 1024);
  assert.equal(e[59] | ((e[61] >> 4) << 8), 768);
});

test('VBE enable: clears the visible area (unless NOCLEARMEM), forces the VGA layout, 8-bit DAC', () => {
  const r = makeVga({ vgamemMb: 4 });
  r.vga.core.vram.fill(0xaa);
  r.dispi(V.DISPI_XRES, 640);
  r.dispi(V.DISPI_YRES, 480);
  r.dispi(V.DISPI_BPP, 32);
  r.dispi(V.DISPI_ENABLE, V.DISPI_ENABLED | V.DISPI_LFB_ENABLED | V.DISPI_8BIT_DAC);
  const c = r.vga.core;
  assert.equal(c.vbeLineOffset, 2560);
  assert.equal(c.vram[640 * 480 * 4 - 1], 0);
  assert.equal(c.vram[640 * 480 * 4], 0xaa);
  assert.equal(c.dac8bit, true);
  assert.equal(c.cr[V.CR_OFFSET], (2560 >> 3) & 0xff, 'an 8-bit register: truncated as in QEMU (VBE scanout uses vbeLineOffset)');
  assert.equal(c.gr[V.GR_MISC] & 0x0d, 0x05);
  assert.equal(r.dispiRead(V.DISPI_VIRT_HEIGHT), Math.floor((4 << 20) / 2560));
  r.dispi(V.DISPI_ENABLE, 0);
  r.vga.core.vram.fill(0xbb, 0, 16);
  r.dispi(V.DISPI_ENABLE, V.DISPI_ENABLED | V.DISPI_NOCLEARMEM);
  assert.equal(c.vram[0], 0xbb);
});

test('CVE-2016-3710: the DISPI bank cannot move window accesses past VRAM in any addressing mode', () => {
  const r = makeVga({ vgamemMb: 1 }); // 16 banks of 64 KiB
  const c = r.vga.core;
  r.dispi(V.DISPI_BANK, 0xffff);
  assert.equal(r.dispiRead(V.DISPI_BANK), 15, 'bank masked to VRAM');
  // Planar and odd/even modes multiply the address by 4 and 2: the top banks point past 1 MiB.
  r.reg(0x3ce, V.GR_MISC, 0x05); // map 1: the banked 64 KiB window
  const before = sha(c.vram);
  for (const mode of [
    { sr4: 0x06, gr5: 0x00 }, // planar
    { sr4: 0x02, gr5: 0x10 }, // odd/even
    { sr4: 0x0e, gr5: 0x40 }, // chain-4
  ]) {
    r.reg(0x3c4, V.SR_PLANE_WRITE, 0x0f);
    r.reg(0x3c4, V.SR_MEMORY_MODE, mode.sr4);
    r.reg(0x3ce, V.GR_MODE, mode.gr5);
    for (const off of [0, 0x1, 0x7fff, 0xfffc, 0xffff]) {
      const v = r.memr(WINDOW + off, 1);
      if (mode.gr5 !== 0x40) assert.equal(v, 0xff, `read past VRAM at bank 15 + 0x${off.toString(16)} floats`);
      r.memw(WINDOW + off, 1, 0x5a);
    }
  }
  // Chain-4 at bank 15 is inside VRAM (the last 64 KiB): only those bytes changed.
  const after = new Uint8Array(c.vram);
  after.fill(0, 0xf0000);
  assert.equal(sha(after), before, 'nothing below the last bank changed');
  assert.equal(c.vram.length, 1 << 20);
});

test('CVE-2016-3712: VGA register writes under VBE cannot undo the VBE memory layout', () => {
  const r = makeVga({ vgamemMb: 4 });
  const c = r.vga.core;
  r.dispi(V.DISPI_XRES, 1024);
  r.dispi(V.DISPI_YRES, 768);
  r.dispi(V.DISPI_BPP, 8);
  r.dispi(V.DISPI_ENABLE, V.DISPI_ENABLED | V.DISPI_LFB_ENABLED);
  // A hostile guest turns chain-4 and all planes off, picks planar mode, memory map 0, a huge
  // line offset and double scan.
  r.reg(0x3c4, V.SR_MEMORY_MODE, 0x00);
  r.reg(0x3c4, V.SR_PLANE_WRITE, 0x00);
  r.reg(0x3ce, V.GR_MISC, 0x00);
  r.reg(0x3ce, V.GR_MODE, 0x00);
  r.reg(0x3d4, V.CR_OFFSET, 0xff);
  r.reg(0x3d4, V.CR_MAX_SCAN, 0x9f);
  r.reg(0x3d4, V.CR_H_DISP, 0xff);
  r.outb(0x3c4, V.SR_MEMORY_MODE);
  assert.equal(r.inb(0x3c5), 0, 'the guest reads back what it wrote to the sequencer');
  assert.equal(c.seq(V.SR_MEMORY_MODE) & V.SR04_CHN_4M, V.SR04_CHN_4M, 'memory access still chain-4');
  assert.equal(c.seq(V.SR_PLANE_WRITE), 0x0f);
  assert.equal(c.cr[V.CR_OFFSET], 1024 >> 3);
  assert.equal(c.cr[V.CR_H_DISP], 1024 / 8 - 1);
  assert.equal(c.cr[V.CR_MAX_SCAN] & 0x9f, 0);
  assert.equal((c.gr[V.GR_MISC] >> 2) & 3, 1);
  r.memw(WINDOW + 0x1234, 1, 0x42);
  assert.equal(c.vram[0x1234], 0x42, 'a window byte is still the VRAM byte');
});

test('CVE-2014-3615: no VBE geometry reaches past VRAM', () => {
  for (const mb of [1, 4, 16]) {
    const r = makeVga({ vgamemMb: mb });
    const c = r.vga.core;
    const rnd = prng(mb);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    r.dispi(V.DISPI_ENABLE, V.DISPI_ENABLED | V.DISPI_NOCLEARMEM);
    for (let i = 0; i < 3000; i++) {
      const idx = pick([V.DISPI_XRES, V.DISPI_YRES, V.DISPI_BPP, V.DISPI_VIRT_WIDTH, V.DISPI_X_OFFSET, V.DISPI_Y_OFFSET, V.DISPI_ENABLE]);
      const v = rnd() < 0.5 ? pick([0, 1, 7, 8, 15, 16, 24, 32, 4096, 12000, 16000, 16008, 65535]) : Math.floor(rnd() * 65536);
      r.dispi(idx, idx === V.DISPI_ENABLE ? v | V.DISPI_NOCLEARMEM : v);
      if (!c.vbeEnabled) continue;
      const bpp = c.vbeRegs[V.DISPI_BPP];
      assert.ok([4, 8, 15, 16, 24, 32].includes(bpp), `bpp ${bpp}`);
      assert.ok(c.vbeRegs[V.DISPI_XRES] >= 8 && c.vbeRegs[V.DISPI_XRES] <= 16000);
      assert.ok(c.vbeRegs[V.DISPI_VIRT_WIDTH] >= c.vbeRegs[V.DISPI_XRES]);
      const end = c.vbeStartAddr * 4 + c.vbeRegs[V.DISPI_YRES] * c.vbeLineOffset;
      assert.ok(end <= c.vramSize, `screen ends at ${end}, past ${c.vramSize} (${c.vbeRegs.join(',')})`);
    }
  }
});

test('fuzz: random accesses to every port, the window and BAR2 never throw and keep VRAM its size', () => {
  const r = makeVga({ vgamemMb: 1 });
  const rnd = prng(7);
  const int = (n: number) => Math.floor(rnd() * n);
  const sizes = [1, 2, 4] as const;
  for (let i = 0; i < 50000; i++) {
    const s = sizes[int(3)];
    const v = int(0x100000000);
    switch (int(6)) {
      case 0:
        r.board.pio.write(0x3b0 + int(0x30), s, v & (s === 4 ? 0xffffffff : (1 << (8 * s)) - 1));
        break;
      case 1:
        r.board.pio.read(0x3b0 + int(0x30), s);
        break;
      case 2:
        r.board.pio.write(0x1ce + int(4), s, v & 0xffff);
        break;
      case 3:
        r.memw(WINDOW + int(0x20000 - 4), s, v);
        break;
      case 4:
        r.memr(WINDOW + int(0x20000 - 4), s);
        break;
      default:
        if (rnd() < 0.5) r.memw(MMIO_BASE + int(0x1000 - 4), s, v);
        else r.memr(MMIO_BASE + int(0x1000 - 4), s);
    }
  }
  assert.equal(r.vga.core.vram.length, 1 << 20);
});
