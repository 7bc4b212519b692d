/**
 * VGA saved state: seeded random workloads (register files, the attribute
 * flip-flop and DAC mid-entry, planar accesses that leave the latches
 * loaded, DISPI modes and banks, linear framebuffer writes) are cut at a
 * random step; the snapshot goes through the saved-state container into a
 * fresh VGA, both run the rest, and every read, the VRAM and the final
 * snapshots must match. Malformed states are refused without changing the
 * device.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeContainer, encodeContainer } from '../../../src/machine/container.ts';
import { StateError, type StateObject } from '../../../src/core/device.ts';
import * as V from '../../../src/devices/vga/regs.ts';
import { prng } from '../../helpers/prng.ts';
import { LFB_BASE, makeVga, MMIO_BASE, WINDOW, type VgaRig } from './harness.ts';

type Op = (r: VgaRig) => number | null;

function genOps(seed: number, n: number): Op[] {
  const rnd = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    switch (int(0, 11)) {
      case 0: {
        const [port, idx, v] = [pick([0x3c4, 0x3ce, 0x3d4]), int(0, 0x18), int(0, 255)];
        ops.push((r) => (r.reg(port, idx, v), null));
        break;
      }
      case 1: {
        const v = int(0, 255);
        ops.push((r) => (r.outb(0x3c0, v), r.inb(0x3c0))); // flip-flop left either way
        break;
      }
      case 2: {
        const [idx, k] = [int(0, 255), int(1, 5)];
        const vals = Array.from({ length: k }, () => int(0, 63));
        ops.push((r) => {
          r.outb(0x3c8, idx);
          for (const v of vals) r.outb(0x3c9, v); // often stops mid-entry
          return r.inb(0x3c8);
        });
        break;
      }
      case 3: {
        const [idx, k] = [int(0, 255), int(1, 4)];
        ops.push((r) => {
          r.outb(0x3c7, idx);
          let acc = 0;
          for (let j = 0; j < k; j++) acc = (acc * 31 + r.inb(0x3c9)) >>> 0;
          return acc;
        });
        break;
      }
      case 4: {
        const [sr4, gr5, gr6, mask] = [pick([0x06, 0x02, 0x0e]), int(0, 0x1b), pick([0x01, 0x05, 0x09, 0x0d]), pick([0x0f, 0x03, 0x05])];
        ops.push((r) => {
          r.reg(0x3c4, V.SR_MEMORY_MODE, sr4);
          r.reg(0x3c4, V.SR_PLANE_WRITE, mask);
          r.reg(0x3ce, V.GR_MODE, gr5);
          r.reg(0x3ce, V.GR_MISC, gr6);
          return null;
        });
        break;
      }
      case 5:
      case 6: {
        const [off, s, v] = [rnd() < 0.7 ? int(0, 0x3f) : int(0, 0x1fff0), pick([1, 2, 4] as const), int(0, 0xffffffff)];
        ops.push((r) => (r.memw(WINDOW + off, s, v), null));
        break;
      }
      case 7: {
        const [off, s] = [rnd() < 0.7 ? int(0, 0x3f) : int(0, 0x1fff0), pick([1, 2, 4] as const)];
        ops.push((r) => r.memr(WINDOW + off, s)); // planar reads load the latches
        break;
      }
      case 8: {
        const idx = int(0, 10);
        // VBE on forces chain-4 for the memory path: keep it mostly off so planar paths get exercised.
        const v = idx === V.DISPI_ENABLE ? pick([0, 0, 0, 0x41, 0xc1, 0x03]) : pick([0, 8, 16, 32, 640, 480, 1024, 3, int(0, 0xffff)]);
        ops.push((r) => (r.dispi(idx, v), r.dispiRead(idx)));
        break;
      }
      case 9: {
        const [off, v] = [(rnd() < 0.7 ? int(0, 0xff) : int(0, (1 << 20) - 4)) & ~3, int(0, 0xffffffff)];
        ops.push((r) => (r.memw(LFB_BASE + off, 4, v), r.memr(LFB_BASE + off, 4)));
        break;
      }
      case 10: {
        if (rnd() < 0.5) {
          // Write mode 1 stores the latches as they are: shows what the last planar read loaded.
          const [off, m] = [int(0, 0x3f), pick([0x0f, 0x03])];
          ops.push((r) => {
            r.dispi(V.DISPI_ENABLE, 0);
            r.reg(0x3c4, V.SR_MEMORY_MODE, 0x06);
            r.reg(0x3c4, V.SR_PLANE_WRITE, m);
            r.reg(0x3ce, V.GR_MISC, 0x05);
            r.reg(0x3ce, V.GR_MODE, 0x01);
            r.memw(WINDOW + off, 1, 0);
            return r.memr(LFB_BASE + off * 4, 4);
          });
          break;
        }
        const i = int(0, 10);
        ops.push((r) => r.memr(MMIO_BASE + 0x500 + 2 * i, 2));
        break;
      }
      default: {
        const port = pick([0x3da, 0x3ba, 0x3cc, 0x3c1]);
        ops.push((r) => r.inb(port));
      }
    }
  }
  return ops;
}

function throughContainer(s: StateObject, version: number): StateObject {
  const [rec] = decodeContainer(encodeContainer([{ id: 'vga', version, state: s }]));
  return rec.state as StateObject;
}

for (let w = 0; w < 20; w++) {
  test(`round trip mid-workload ${w}`, () => {
    const ops = genOps(1000 + w, 400);
    const cut = Math.floor(prng(w)() * ops.length);
    const a = makeVga({ vgamemMb: 1 });
    for (let i = 0; i < cut; i++) ops[i](a);
    const b = makeVga({ vgamemMb: 1 });
    b.vga.restore(throughContainer(a.vga.snapshot(), a.vga.stateVersion));
    assert.deepEqual(b.vga.snapshot(), a.vga.snapshot(), 'restored state reads back as saved');
    for (let i = cut; i < ops.length; i++) assert.equal(ops[i](b), ops[i](a), `op ${i} after a cut at ${cut}`);
    assert.deepEqual(b.vga.core.vram, a.vga.core.vram);
    assert.deepEqual(b.vga.snapshot(), a.vga.snapshot());
  });
}

test('restore refuses malformed states and leaves the device as it was', () => {
  const a = makeVga({ vgamemMb: 1 });
  for (const op of genOps(5, 200)) op(a);
  const good = a.vga.snapshot();
  const before = JSON.stringify(a.vga.snapshot(), (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v));
  const bad: [string, (s: Record<string, unknown>) => void][] = [
    ['bank past VRAM', (s) => ((s.vbeRegs as number[])[V.DISPI_BANK] = 16)],
    ['bank offset not the bank', (s) => ((s.vbeRegs as number[])[V.DISPI_BANK] = 1, (s.bankOffset = 0x30000))],
    ['sequencer bits', (s) => ((s.sr as Uint8Array)[4] = 0xff)],
    ['VBE screen past VRAM', (s) => {
      const r = s.vbeRegs as number[];
      r[V.DISPI_ENABLE] = 1;
      r[V.DISPI_YRES] = 1200;
      s.vbeLineOffset = 6400;
    }],
    ['VRAM of another size', (s) => (s.vramSize = 2 << 20)],
    ['VRAM pages out of order', (s) => ((s.vramPages = [3, 1]), (s.vramData = new Uint8Array(8192)))],
    ['VRAM page past the end', (s) => ((s.vramPages = [256]), (s.vramData = new Uint8Array(4096)))],
    ['DAC state', (s) => (s.dacState = 1)],
    ['config of another device', (s) => ((s.config as Uint8Array)[0] = 0x86)],
  ];
  for (const [what, mutate] of bad) {
    const s = structuredClone(good) as Record<string, unknown>;
    mutate(s);
    assert.throws(() => a.vga.restore(s as StateObject), StateError, what);
    const now = JSON.stringify(a.vga.snapshot(), (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v));
    assert.equal(now, before, `${what}: device unchanged`);
  }
});
