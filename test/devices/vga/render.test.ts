/**
 * The renderer on known setups: modes programmed through the ports as a
 * BIOS does, content written through the 0xA0000 window or the linear
 * framebuffer, and the expected pixels computed by hand from the VGA
 * rules (glyph bits from plane 2, attribute -> palette -> DAC with 6-to-8
 * bit expansion, planar pixels, chain-4 doubling, VBE pixel formats,
 * panning). Then damage: only what changed is redrawn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { c6to8, VgaRenderer } from '../../../src/devices/vga/render.ts';
import * as V from '../../../src/devices/vga/regs.ts';
import { prng } from '../../helpers/prng.ts';
import { LFB_BASE, makeVga, type VgaRig } from './harness.ts';
import { loadDac, MODE12, MODE13, MODE3, MODE4, setMode } from './modes.ts';

const rgb = (r: number, g: number, b: number): number => ((r << 16) | (g << 8) | b) >>> 0;
const px = (rd: VgaRenderer, x: number, y: number): number => rd.fb[y * rd.width + x];

/** 'A' as a made-up 16-row glyph (rows 2-9), so the test knows every bit. */
const GLYPH_A = [0, 0, 0x18, 0x3c, 0x66, 0x66, 0x7e, 0x66, 0x66, 0x66, 0, 0, 0, 0, 0, 0];
/** Horizontal line-drawing character 0xC4: row 7 solid, including bit 0. */
const GLYPH_C4 = [0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];

function textScreen(): { r: VgaRig; rd: VgaRenderer } {
  const r = makeVga();
  setMode(r, MODE3);
  // Palette: DAC 1 dark blue, 7 light grey, 63 white (what attribute 0x1F and 0x07 reach through AR).
  loadDac(r, 0, [[0, 0, 0], [0, 0, 42]]);
  loadDac(r, 7, [[42, 42, 42]]);
  loadDac(r, 63, [[63, 63, 63]]);
  // Fonts go to plane 2 with the sequencer pointed there, as the BIOS loads them.
  r.reg(0x3c4, V.SR_PLANE_WRITE, 0x04);
  r.reg(0x3c4, V.SR_MEMORY_MODE, 0x06);
  r.reg(0x3ce, V.GR_MODE, 0x00);
  r.reg(0x3ce, V.GR_MISC, 0x04);
  GLYPH_A.forEach((b, row) => r.memw(0xa0000 + 0x41 * 32 + row, 1, b));
  GLYPH_C4.forEach((b, row) => r.memw(0xa0000 + 0xc4 * 32 + row, 1, b));
  setMode(r, MODE3); // back to text addressing
  // "A" white on blue, then a line character grey on black; cursor on the third cell.
  r.memw(0xb8000, 2, 0x1f41);
  r.memw(0xb8002, 2, 0x07c4);
  r.reg(0x3d4, V.CR_CURSOR_HI, 0);
  r.reg(0x3d4, V.CR_CURSOR_LO, 2);
  return { r, rd: new VgaRenderer(r.vga.core) };
}

test('c6to8 replicates the low bit (QEMU c6_to_8)', () => {
  assert.deepEqual([0, 1, 42, 63].map(c6to8), [0, 7, 168, 255]);
});

test('text mode 3: 720x400, glyphs from plane 2, attribute colours, 9th dot, cursor', () => {
  const { rd } = textScreen();
  const dmg = rd.update();
  assert.deepEqual(dmg, { x: 0, y: 0, w: 720, h: 400 });
  assert.deepEqual(rd.mode, { kind: 'text', cols: 80, rows: 25, cellWidth: 9, cellHeight: 16 });
  const white = rgb(255, 255, 255);
  const blue = rgb(0, 0, 168);
  const grey = rgb(168, 168, 168);
  for (let row = 0; row < 16; row++) {
    for (let x = 0; x < 8; x++) {
      const on = (GLYPH_A[row] >> (7 - x)) & 1;
      assert.equal(px(rd, x, row), on ? white : blue, `A at (${x},${row})`);
    }
    assert.equal(px(rd, 8, row), blue, '9th dot of a letter is background');
    // 0xC4 is a line-graphics character (AR10 bit 2): its 9th dot repeats the 8th.
    assert.equal(px(rd, 9 + 8, row), row === 7 ? grey : 0, `9th dot of 0xC4 row ${row}`);
  }
  // Cursor at cell 2: lines 13-14 (CR0A/CR0B of mode 3) in the cell's foreground colour.
  // The cell holds 0x00 with attribute 0x00 (black on black), so the cursor is black too: put a
  // visible attribute there first.
  assert.equal(px(rd, 18, 13), 0);
});

test('text: only changed cells are redrawn; a CRTC write (cursor move) or a font write redraws all', () => {
  const { r, rd } = textScreen();
  rd.update();
  assert.equal(rd.update(), null, 'nothing changed');
  r.memw(0xb8000 + 2 * (80 * 3 + 10), 2, 0x0741); // row 3, column 10
  assert.deepEqual(rd.update(), { x: 90, y: 48, w: 9, h: 16 });
  r.memw(0xb8004, 2, 0x0700); // cell 2: grey on black, so the cursor shows grey
  rd.update();
  const grey = rgb(168, 168, 168);
  for (let x = 18; x < 27; x++) {
    assert.equal(px(rd, x, 13), grey, 'cursor line 13');
    assert.equal(px(rd, x, 14), grey, 'cursor line 14');
    assert.equal(px(rd, x, 12), 0);
  }
  // Move the cursor (a CRTC write: the whole screen is redrawn, and the old cell is clear).
  r.reg(0x3d4, V.CR_CURSOR_LO, 5);
  assert.ok(rd.update());
  assert.equal(px(rd, 18, 13), 0);
  assert.equal(px(rd, 45, 13), 0, 'cell 5 is black on black: its cursor is black');
  // Cursor disabled (CR0A bit 5).
  r.reg(0x3d4, V.CR_CURSOR_LO, 2);
  r.reg(0x3d4, V.CR_CURSOR_START, 0x2d);
  rd.update();
  assert.equal(px(rd, 18, 13), 0);
  // A font write (plane 2) redraws every cell: change 'A' row 2 to solid.
  r.reg(0x3c4, V.SR_PLANE_WRITE, 0x04);
  r.reg(0x3c4, V.SR_MEMORY_MODE, 0x06);
  r.reg(0x3ce, V.GR_MODE, 0x00);
  r.reg(0x3ce, V.GR_MISC, 0x04);
  r.memw(0xa0000 + 0x41 * 32 + 2, 1, 0xff);
  setMode(r, MODE3);
  rd.update();
  assert.equal(px(rd, 0, 2), rgb(255, 255, 255));
  assert.equal(px(rd, 90, 48 + 2), rgb(168, 168, 168), 'the other A (grey) too');
});

test('blank while the attribute palette is being loaded (AR index bit 5 clear)', () => {
  const { r, rd } = textScreen();
  rd.update();
  r.inb(0x3da);
  r.outb(0x3c0, 0x00);
  rd.update();
  assert.equal(rd.mode.kind, 'blank');
  assert.ok(rd.fb.every((p) => p === 0));
});

test('unblanking with the AR index alone redraws the whole picture, text and graphics (fuzz defect)', () => {
  // vga16fb ends its pan and set_par with an input status 1 read and index 0x20 after the
  // last attribute data write: a refresh in between draws blank, and the unblank writes no
  // data register. QEMU's vga_update_display redraws all when the display mode (blank,
  // text, graphics) changes.
  const { r, rd } = textScreen();
  const pictures = (): Uint32Array[] => {
    const shown = (rd.update(), rd.fb.slice());
    r.inb(0x3da);
    r.outb(0x3c0, 0x00);
    rd.update();
    assert.equal(rd.mode.kind, 'blank');
    r.inb(0x3da);
    r.outb(0x3c0, 0x20);
    const back = rd.update();
    assert.deepEqual(back, { x: 0, y: 0, w: rd.width, h: rd.height }, 'the whole picture is damage');
    return [shown, rd.fb.slice()];
  };
  const [text, textBack] = pictures();
  assert.ok(text.some((p) => p !== 0));
  assert.deepEqual(textBack, text);
  setMode(r, MODE13);
  loadDac(r, 5, [[63, 0, 32]]);
  r.memw(0xa0000 + 320 * 10 + 7, 1, 5);
  const [gfx, gfxBack] = pictures();
  assert.equal(px(rd, 14, 20), rgb(255, 0, 128));
  assert.deepEqual(gfxBack, gfx);
});

test('mode 13h: 320x200x256 shown as 640x400, each pixel doubled both ways', () => {
  const r = makeVga();
  setMode(r, MODE13);
  loadDac(r, 5, [[63, 0, 32]]);
  r.memw(0xa0000 + 320 * 10 + 7, 1, 5); // pixel (7, 10)
  const rd = new VgaRenderer(r.vga.core);
  rd.update();
  assert.deepEqual([rd.width, rd.height], [640, 400]);
  const c = rgb(255, 0, 128);
  for (const [x, y] of [[14, 20], [15, 20], [14, 21], [15, 21]]) assert.equal(px(rd, x, y), c, `(${x},${y})`);
  assert.equal(px(rd, 16, 20), 0);
  assert.equal(px(rd, 14, 22), 0);
  // One byte more (VRAM 16000, in the 4 KiB page 12288-16383): the source lines touching that
  // page (38-51, each shown twice) are redrawn, nothing else.
  r.memw(0xa0000 + 320 * 50, 1, 5);
  assert.deepEqual(rd.update(), { x: 0, y: 2 * Math.floor(12288 / 320), w: 640, h: 2 * (Math.floor(16383 / 320) - Math.floor(12288 / 320) + 1) });
});

test('mode 12h: 640x480x16 planar, a pixel written with write mode 2', () => {
  const r = makeVga();
  setMode(r, MODE12);
  loadDac(r, 0x3c, [[63, 63, 0]]); // AR12 of mode 12h maps colour 12 to DAC 0x3c
  r.reg(0x3ce, V.GR_MODE, 0x02);
  r.reg(0x3ce, V.GR_BIT_MASK, 0x80 >> 3); // pixel 3 of the byte
  r.memr(0xa0000 + 80 * 100 + 2, 1); // latch
  r.memw(0xa0000 + 80 * 100 + 2, 1, 12);
  const rd = new VgaRenderer(r.vga.core);
  rd.update();
  assert.deepEqual([rd.width, rd.height], [640, 480]);
  assert.equal(px(rd, 16 + 3, 100), rgb(255, 255, 0));
  assert.equal(px(rd, 16 + 2, 100), 0);
  assert.equal(px(rd, 16 + 3, 101), 0);
  // Colour plane enable (AR12) masks planes out of the picture.
  r.inb(0x3da);
  r.outb(0x3c0, 0x12);
  r.outb(0x3c0, 0x03);
  r.outb(0x3c0, 0x20);
  rd.update();
  assert.equal(px(rd, 16 + 3, 100), 0, 'colour 12 = planes 2 and 3, both disabled');
});

function vbe(r: VgaRig, x: number, y: number, bpp: number, virtW = 0): void {
  r.dispi(V.DISPI_ENABLE, 0);
  r.dispi(V.DISPI_XRES, x);
  r.dispi(V.DISPI_YRES, y);
  r.dispi(V.DISPI_BPP, bpp);
  r.dispi(V.DISPI_ENABLE, V.DISPI_ENABLED | V.DISPI_LFB_ENABLED);
  if (virtW) r.dispi(V.DISPI_VIRT_WIDTH, virtW);
}

test('VBE linear modes: 8 (DAC), 15, 16, 24 and 32 bpp pixel formats', () => {
  const r = makeVga();
  const rd = new VgaRenderer(r.vga.core);
  vbe(r, 640, 480, 8);
  loadDac(r, 9, [[0, 63, 0]]);
  r.memw(LFB_BASE + 640 * 2 + 3, 1, 9);
  rd.update();
  assert.equal(px(rd, 3, 2), rgb(0, 255, 0));
  r.dispi(V.DISPI_ENABLE, V.DISPI_ENABLED | V.DISPI_8BIT_DAC | V.DISPI_NOCLEARMEM);
  loadDac(r, 9, [[0, 200, 0]]);
  rd.update();
  assert.equal(px(rd, 3, 2), rgb(0, 200, 0), '8-bit DAC: no expansion');

  vbe(r, 320, 200, 15);
  r.memw(LFB_BASE + 320 * 2 * 4 + 2 * 5, 2, (31 << 10) | (16 << 5) | 1);
  rd.update();
  assert.deepEqual([rd.width, rd.height], [320, 200]);
  assert.equal(px(rd, 5, 4), rgb(0xf8, 0x80, 0x08));

  vbe(r, 320, 200, 16);
  r.memw(LFB_BASE + 2 * 7, 2, (31 << 11) | (32 << 5) | 2);
  rd.update();
  assert.equal(px(rd, 7, 0), rgb(0xff, 0x82, 0x10), '5/6-bit channels widened by repeating their top bits');

  vbe(r, 800, 600, 24);
  const o24 = (800 * 10 + 20) * 3;
  r.memw(LFB_BASE + o24, 1, 0x11); // blue
  r.memw(LFB_BASE + o24 + 1, 1, 0x22);
  r.memw(LFB_BASE + o24 + 2, 1, 0x33); // red
  rd.update();
  assert.equal(px(rd, 20, 10), rgb(0x33, 0x22, 0x11));

  vbe(r, 1024, 768, 32);
  r.memw(LFB_BASE + (1024 * 767 + 1023) * 4, 4, 0x00abcdef);
  rd.update();
  assert.deepEqual([rd.width, rd.height], [1024, 768]);
  assert.equal(px(rd, 1023, 767), 0xabcdef);
});

test('VBE virtual width and panning: the picture starts at the X/Y offset', () => {
  const r = makeVga();
  const rd = new VgaRenderer(r.vga.core);
  vbe(r, 640, 480, 32, 1024);
  const at = (x: number, y: number) => LFB_BASE + (y * 1024 + x) * 4;
  r.memw(at(100, 50), 4, 0x123456);
  rd.update();
  assert.equal(px(rd, 100, 50), 0x123456);
  r.dispi(V.DISPI_X_OFFSET, 100);
  r.dispi(V.DISPI_Y_OFFSET, 50);
  rd.update();
  assert.equal(px(rd, 0, 0), 0x123456, 'panned');
  assert.equal(rd.width, 640);
});

test('graphics damage: one LFB write redraws its line only; nothing changes, nothing is drawn', () => {
  const r = makeVga();
  const rd = new VgaRenderer(r.vga.core);
  vbe(r, 1024, 768, 32);
  rd.update();
  assert.equal(rd.update(), null);
  r.memw(LFB_BASE + (1024 * 300 + 5) * 4, 4, 0xffffff);
  assert.deepEqual(rd.update(), { x: 0, y: 300, w: 1024, h: 1 });
});

test('CGA 4-colour damage: a store anywhere a line shows is redrawn, the second half of a line past a page boundary too (fuzz defect)', () => {
  // Mode 4 reads width / 8 dwords per line (8 pixels from each), as QEMU counts it
  // (bits = 4 for shift_control 1): a line whose dirty check covered only its first
  // half missed stores to the part of it on the next VRAM page.
  const r = makeVga();
  setMode(r, MODE4);
  loadDac(r, 0, Array.from({ length: 64 }, (_, i) => [i, 63 - i, (i * 5) & 63])); // every colour the attribute palette can reach differs
  const rd = new VgaRenderer(r.vga.core);
  const full = new VgaRenderer(r.vga.core);
  rd.update();
  let v = 0;
  const bytes = (fb: Uint32Array) => Buffer.from(fb.buffer, fb.byteOffset, fb.byteLength);
  // The first 160 bytes of pages 1-4: each is the second half of some line (160 bytes apart).
  for (let page = 1; page <= 4; page++) {
    for (let off = page * 4096; off < page * 4096 + 160; off += 4) {
      r.memw(LFB_BASE + off, 4, (v = (v * 1103515245 + 12345) >>> 0));
      rd.update();
      full.invalidate();
      full.update();
      assert.ok(rd.fb.length > 0 && bytes(rd.fb).equals(bytes(full.fb)), `after a store at VRAM 0x${off.toString(16)} the picture matches a full redraw`);
    }
  }
});

test('hostile CRTC and VBE values: rendering stays inside VRAM and bounded in size', () => {
  const r = makeVga({ vgamemMb: 1 });
  const rd = new VgaRenderer(r.vga.core);
  const rnd = prng(11);
  setMode(r, MODE12);
  for (let i = 0; i < 400; i++) {
    r.reg(0x3d4, Math.floor(rnd() * 0x19), Math.floor(rnd() * 256));
    r.reg(0x3ce, Math.floor(rnd() * 9), Math.floor(rnd() * 256));
    r.reg(0x3c4, Math.floor(rnd() * 5), Math.floor(rnd() * 256));
    if (rnd() < 0.2) r.dispi(Math.floor(rnd() * 10), Math.floor(rnd() * 65536));
    r.inb(0x3da);
    r.outb(0x3c0, Math.floor(rnd() * 0x40));
    rd.update();
    assert.ok(rd.width <= 4096 && rd.height <= 4096);
    assert.equal(rd.fb.length, rd.width * rd.height);
  }
});
