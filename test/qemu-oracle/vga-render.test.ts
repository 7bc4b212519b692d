/**
 * QEMU oracle for the picture: the same registers and VRAM are loaded into
 * QEMU's `-device VGA` (qtest, machine stopped) and into ours, QEMU draws
 * it for QMP `screendump` (PPM), we draw it with VgaRenderer, and every
 * pixel must match: text mode 3 with random fonts, characters, attributes
 * and palette in 9- and 8-dot cells, mode 13h, CGA mode 4, mode 12h, and VBE linear
 * modes at 8, 15, 16, 24 and 32 bpp with a virtual width and panning.
 * The text cursor blinks on QEMU's clock, so it is switched off here (its
 * shape is checked in test/devices/vga/render.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Qtest } from './qtest.ts';
import { connectQmp } from '../helpers/qmp-client.ts';
import { prng } from '../helpers/prng.ts';
import { DEV, LFB_BASE, makeVga, type VgaRig } from '../devices/vga/harness.ts';
import { MODE12, MODE13, MODE3, MODE4, type ModeRegs } from '../devices/vga/modes.ts';
import { VgaRenderer } from '../../src/devices/vga/render.ts';
import * as V from '../../src/devices/vga/regs.ts';

interface Port {
  out(size: 1 | 2, port: number, v: number): Promise<void>;
  in(port: number): Promise<number>;
  lfb(off: number, data: Uint8Array): Promise<void>;
}

function ours(r: VgaRig): Port {
  return {
    out: async (s, p, v) => r.board.pio.write(p, s, v),
    in: async (p) => r.board.pio.read(p, 1),
    lfb: async (off, d) => void r.vga.core.vram.set(d, off),
  };
}

async function setMode(p: Port, m: ModeRegs): Promise<void> {
  await p.out(1, 0x3c2, m.misc);
  for (const [i, v] of m.seq.entries()) await p.out(2, 0x3c4, i | (v << 8));
  await p.out(2, 0x3d4, 0x11 | ((m.crtc[0x11] & 0x7f) << 8));
  for (const [i, v] of m.crtc.entries()) await p.out(2, 0x3d4, i | (v << 8));
  for (const [i, v] of m.gfx.entries()) await p.out(2, 0x3ce, i | (v << 8));
  await p.in(0x3da);
  for (const [i, v] of m.attr.entries()) {
    await p.out(1, 0x3c0, i);
    await p.out(1, 0x3c0, v);
  }
  await p.out(1, 0x3c0, 0x20);
}

async function dac(p: Port, rnd: () => number, bits = 6): Promise<void> {
  await p.out(1, 0x3c8, 0);
  for (let i = 0; i < 768; i++) await p.out(1, 0x3c9, Math.floor(rnd() * (1 << bits)));
}

async function dispi(p: Port, i: number, v: number): Promise<void> {
  await p.out(2, 0x1ce, i);
  await p.out(2, 0x1cf, v);
}

type Scene = (p: Port, rnd: () => number) => Promise<void>;

const randomBytes = (rnd: () => number, n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));

const text = (eightDot: boolean): Scene => async (p, rnd) => {
  await setMode(p, MODE3);
  if (eightDot) await p.out(2, 0x3c4, 0x01 | (0x01 << 8));
  await p.out(2, 0x3d4, V.CR_CURSOR_START | (0x20 << 8)); // cursor off: QEMU blinks it on its own clock
  await dac(p, rnd);
  // Planes interleaved per dword: 0 characters, 1 attributes, 2 fonts, 3 noise.
  await p.lfb(0, randomBytes(rnd, 0x10000));
};

const SCENES: [string, Scene][] = [
  ['text mode 3, 9-dot cells', text(false)],
  ['text mode 3, 8-dot cells', text(true)],
  ['mode 13h', async (p, rnd) => {
    await setMode(p, MODE13);
    await dac(p, rnd);
    await p.lfb(0, randomBytes(rnd, 0x10000));
  }],
  ['mode 4 (CGA 4 colours)', async (p, rnd) => {
    await setMode(p, MODE4);
    await dac(p, rnd);
    await p.lfb(0, randomBytes(rnd, 0x20000));
  }],
  ['mode 12h', async (p, rnd) => {
    await setMode(p, MODE12);
    await dac(p, rnd);
    await p.lfb(0, randomBytes(rnd, 0x40000));
  }],
  ...[8, 15, 16, 24, 32].map((bpp): [string, Scene] => [`VBE 320x200x${bpp}, virtual width 400, panned`, async (p, rnd) => {
    await dispi(p, V.DISPI_XRES, 320);
    await dispi(p, V.DISPI_YRES, 200);
    await dispi(p, V.DISPI_BPP, bpp);
    await dispi(p, V.DISPI_ENABLE, V.DISPI_ENABLED | V.DISPI_LFB_ENABLED);
    await dispi(p, V.DISPI_VIRT_WIDTH, 400);
    await dispi(p, V.DISPI_X_OFFSET, 8);
    await dispi(p, V.DISPI_Y_OFFSET, 3);
    if (bpp === 8) await dac(p, rnd);
    await p.lfb(0, randomBytes(rnd, Math.ceil((400 * 210 * (bpp + 1)) / 8)));
  }]),
];

function parsePpm(b: Buffer): { w: number; h: number; rgb: Buffer } {
  const m = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(b.subarray(0, 40).toString('latin1'));
  if (!m) throw new Error('not a P6 PPM');
  return { w: +m[1], h: +m[2], rgb: b.subarray(m[0].length) };
}

test('every pixel matches QEMU screendump', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stubdm-vga-render-'));
  const sock = join(dir, 'qmp');
  const q = await Qtest.start(['-device', `VGA,addr=${DEV.toString(16)}.0,romfile=`, '-qmp', `unix:${sock},server=on,wait=off`]);
  try {
    for (let i = 0; ; i++) {
      await q.out(2, 0x1ce, 0);
      if ((await q.in(2, 0x1cf)) === 0xb0c5) break;
      if (i > 100000) throw new Error('QEMU VGA never came out of reset');
    }
    const cfg = async (reg: number, v: number) => {
      await q.out(4, 0xcf8, (0x80000000 | (DEV << 11) | reg) >>> 0);
      await q.out(4, 0xcfc, v);
    };
    await cfg(0x10, LFB_BASE);
    await cfg(0x04, 3);
    const qmp = await connectQmp(sock);
    await qmp.cmd('qmp_capabilities');
    const theirs: Port = {
      out: (s, p, v) => q.out(s, p, v),
      in: (p) => q.in(1, p),
      lfb: async (off, d) => {
        for (let i = 0; i < d.length; i += 0x8000) await q.memwrite(LFB_BASE + off + i, d.subarray(i, i + 0x8000));
      },
    };
    for (const [i, [name, scene]] of SCENES.entries()) {
      await t.test(name, async () => {
        const r = makeVga();
        await scene(ours(r), prng(100 + i));
        await scene(theirs, prng(100 + i));
        const rd = new VgaRenderer(r.vga.core);
        rd.update();
        const file = join(dir, `${i}.ppm`);
        const res = await qmp.cmd('screendump', { filename: file });
        assert.ok(!res.error, JSON.stringify(res.error));
        const ppm = parsePpm(readFileSync(file));
        assert.deepEqual([rd.width, rd.height], [ppm.w, ppm.h], 'size');
        let diff = 0;
        let first = '';
        for (let k = 0; k < ppm.w * ppm.h; k++) {
          const v = rd.fb[k];
          const rgb = (ppm.rgb[3 * k] << 16) | (ppm.rgb[3 * k + 1] << 8) | ppm.rgb[3 * k + 2];
          if (v !== rgb) {
            if (!diff) first = `(${k % ppm.w},${Math.floor(k / ppm.w)}) ours ${v.toString(16)} QEMU ${rgb.toString(16)}`;
            diff++;
          }
        }
        assert.equal(diff, 0, `${diff} pixels differ, first at ${first}`);
      });
    }
    await qmp.close();
  } finally {
    q.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
