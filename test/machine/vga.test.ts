/**
 * The VGA in the whole machine: `-device VGA` puts the function at 00:03.0
 * (the first -device slot, as QEMU's xenfv), claims its legacy ports
 * and window, takes buffered window writes from the ioreq server's ring,
 * draws them for screendump (PPM and PNG), and survives a save/restore of
 * the machine mid-operation (container, fresh machine, same picture).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { simPc } from '../helpers/simpc.ts';
import { MODE3 } from '../devices/vga/modes.ts';

const GLYPH = [0, 0, 0x18, 0x3c, 0x66, 0x66, 0x7e, 0x66, 0x66, 0x66, 0, 0, 0, 0, 0, 0];

type Sim = Awaited<ReturnType<typeof simPc>>['sim'];

function textMode(sim: Sim): void {
  const reg = (port: number, i: number, v: number) => sim.outw(port, i | (v << 8));
  sim.outb(0x3c2, MODE3.misc);
  MODE3.seq.forEach((v, i) => reg(0x3c4, i, v));
  reg(0x3d4, 0x11, 0);
  MODE3.crtc.forEach((v, i) => reg(0x3d4, i, v));
  MODE3.gfx.forEach((v, i) => reg(0x3ce, i, v));
  sim.inb(0x3da);
  MODE3.attr.forEach((v, i) => (sim.outb(0x3c0, i), sim.outb(0x3c0, v)));
  sim.outb(0x3c0, 0x20);
}

function loadFontAndPalette(sim: Sim): void {
  sim.outb(0x3c8, 0);
  for (const v of [0, 0, 0, 0, 0, 42]) sim.outb(0x3c9, v);
  sim.outb(0x3c8, 63);
  for (const v of [63, 63, 63]) sim.outb(0x3c9, v);
  // Plane 2 through the planar window, then back to text.
  sim.outw(0x3c4, 0x0402);
  sim.outw(0x3c4, 0x0604);
  sim.outw(0x3ce, 0x0005);
  sim.outw(0x3ce, 0x0406);
  GLYPH.forEach((b, row) => sim.bufferedWrite(0xa0000 + 0x41 * 32 + row, 1, b));
}

test('-device VGA: at 00:03.0, buffered window writes, screendump PPM and PNG, save/restore', async (t) => {
  const args = ['-device', 'VGA,vgamem_mb=8'];
  const a = await simPc(t, 16, args);
  assert.ok(a.pc.vga, 'a VGA');
  assert.equal(a.sim.pciConfigRead(3 << 3, 0, 4), 0x11111234, '1234:1111 at 00:03.0');
  assert.equal(a.sim.pciConfigRead(3 << 3, 0x08, 4) >>> 8, 0x030000, 'class 0300');
  assert.equal(a.pc.screendump('ppm')?.subarray(0, 2).toString(), 'P6', 'a (blank) picture before any mode');
  textMode(a.sim);
  loadFontAndPalette(a.sim);
  textMode(a.sim);
  // "A" white on blue at the top left, as Xen delivers direct window writes: buffered.
  assert.equal(a.sim.bufferedWrite(0xb8000, 2, 0x1f41), 'buffered');
  a.sim.bufferedWrite(0xb8000 + 2 * 81, 2, 0x1f41);
  const ppm = a.pc.screendump('ppm')!;
  const head = 'P6\n720 400\n255\n';
  assert.equal(ppm.subarray(0, head.length).toString('latin1'), head);
  const pix = (buf: Buffer, off: number, x: number, y: number) => [...buf.subarray(off + (y * 720 + x) * 3, off + (y * 720 + x) * 3 + 3)];
  assert.deepEqual(pix(ppm, head.length, 3, 2), [255, 255, 255], 'glyph dot');
  assert.deepEqual(pix(ppm, head.length, 0, 2), [0, 0, 168], 'background');
  const png = PNG.sync.read(a.pc.screendump('png')!);
  assert.deepEqual([png.width, png.height], [720, 400]);
  assert.deepEqual([...png.data.subarray((2 * 720 + 3) * 4, (2 * 720 + 3) * 4 + 3)], [255, 255, 255]);

  // Save mid-operation (DAC write half done), restore into a fresh machine, compare pictures and go on.
  a.sim.outb(0x3c8, 5);
  a.sim.outb(0x3c9, 10);
  const blob = await a.pc.save();
  const b = await simPc(t, 16, args, { enable: false });
  b.pc.restore(blob);
  b.sim.channel.setEnabled(true);
  assert.deepEqual(b.pc.screendump('ppm'), a.pc.screendump('ppm'));
  for (const m of [a, b]) {
    m.sim.outb(0x3c9, 20);
    m.sim.outb(0x3c9, 30);
    m.sim.bufferedWrite(0xb8000 + 4, 2, 0x0541);
  }
  assert.deepEqual(b.pc.screendump('png'), a.pc.screendump('png'));
  assert.deepEqual(b.pc.vga!.snapshot(), a.pc.vga!.snapshot());
});

test('no -device VGA: no display, screendump has nothing to show', async (t) => {
  const m = await simPc(t, 16);
  assert.equal(m.pc.vga, null);
  assert.equal(m.pc.screendump('ppm'), null);
  assert.equal(m.sim.inb(0x3cc), 0xff, 'VGA ports unclaimed');
});
