/**
 * VRAM as guest pages (core/vram.ts) on the simulator's provider: BAR0 is
 * not an ioreq range but the pages, populated once and relocated under the
 * BAR (and back when it moves); guest writes through the BAR are found by
 * dirty tracking and drawn; the 0xA0000 window writes the same pages; the
 * saved state leaves VRAM to the guest's memory, and a restored VGA maps
 * the pages where the saved BAR says and shows the same picture.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimVramProvider, type SimVram } from '../../../src/sim/index.ts';
import { VgaRenderer } from '../../../src/devices/vga/render.ts';
import * as V from '../../../src/devices/vga/regs.ts';
import { StateError } from '../../../src/core/state.ts';
import { DEVFN, LFB_BASE, makeVga, type VgaRig } from './harness.ts';

function vbe(r: VgaRig): void {
  r.dispi(V.DISPI_XRES, 64);
  r.dispi(V.DISPI_YRES, 32);
  r.dispi(V.DISPI_BPP, 32);
  r.dispi(V.DISPI_ENABLE, V.DISPI_ENABLED | V.DISPI_LFB_ENABLED);
}

/** The guest's own framebuffer write: straight into the pages (no ioreq), dirtying them as Xen's log-dirty would. */
function guestWrite(v: SimVram, off: number, val: number): void {
  v.bytes[off] = val & 0xff;
  v.bytes[off + 1] = (val >>> 8) & 0xff;
  v.bytes[off + 2] = (val >>> 16) & 0xff;
  v.bytes[off + 3] = val >>> 24;
  v.guestDirty[off >>> 12] = 1;
}

test('BAR0 is the populated pages, relocated under the BAR and back; no ioreq range for it', () => {
  const pool = new SimVramProvider();
  const r = makeVga({ vgamemMb: 4, vram: pool });
  const v = pool.backings[0];
  assert.deepEqual(v.calls.slice(0, 3), ['populate 1024 pages', 'relocate home -> 0xe0000000', 'pin wb 0xe0000000']);
  assert.equal(v.placedAt, LFB_BASE);
  assert.ok(![...r.host.ranges].some((x) => x.startsWith('mmio:0xe0000000')), 'no MMIO claim for BAR0');
  assert.ok([...r.host.ranges].some((x) => x.startsWith('mmio:0xe4000000')), 'BAR2 is still ours');
  // The BAR moves: back home, then under the new address; memory decode off: home.
  r.bus.configWrite(DEVFN, 0x10, 4, 0xd0000000);
  assert.deepEqual(v.calls.slice(3), ['relocate 0xe0000000 -> home', 'relocate home -> 0xd0000000', 'pin wb 0xd0000000']);
  r.bus.configWrite(DEVFN, 0x04, 2, 0);
  assert.equal(v.placedAt, -1);
  assert.equal(v.calls.at(-1), 'relocate 0xd0000000 -> home');
});

test('guest framebuffer writes are found by dirty tracking; window writes land in the same pages', () => {
  const pool = new SimVramProvider();
  const r = makeVga({ vgamemMb: 4, vram: pool });
  const v = pool.backings[0];
  vbe(r);
  const rd = new VgaRenderer(r.vga.core);
  rd.update();
  assert.equal(rd.update(), null);
  guestWrite(v, (20 * 64 + 3) * 4, 0x00123456);
  const dmg = rd.update();
  assert.ok(dmg && dmg.y <= 20 && dmg.y + dmg.h > 20, JSON.stringify(dmg));
  assert.equal(rd.fb[20 * 64 + 3], 0x123456);
  r.memw(0xa0000 + 8, 1, 0x77); // VBE: chain-4 through the banked window
  assert.equal(v.bytes[8], 0x77);
});

test('saved state leaves VRAM to the guest memory; a restored VGA maps the pages under the saved BAR', () => {
  const pool = new SimVramProvider();
  const a = makeVga({ vgamemMb: 4, vram: pool });
  vbe(a);
  guestWrite(pool.backings[0], (5 * 64 + 6) * 4, 0x00abcdef);
  const state = a.vga.snapshot();
  assert.equal((state.vramPages as number[]).length, 0, 'no VRAM bytes in the device state');
  assert.equal(state.vramInGuest, true);
  // Xen restored the guest's memory: the VRAM pages are at the BAR address again.
  const pool2 = new SimVramProvider();
  pool2.guestPages.set(LFB_BASE, new Uint8Array(pool.backings[0].bytes));
  const b = makeVga({ vgamemMb: 4, vram: pool2, restoring: true }, false);
  assert.deepEqual(pool2.backings[0].calls, ['restoring: no populate']);
  b.vga.restore(state);
  b.bus.refresh(); // what the machine does once every device is restored
  assert.deepEqual(pool2.backings[0].calls, ['restoring: no populate', 'map at 0xe0000000']);
  const ra = new VgaRenderer(a.vga.core);
  const rb = new VgaRenderer(b.vga.core);
  ra.update();
  rb.update();
  assert.equal(rb.fb[5 * 64 + 6], 0xabcdef);
  assert.deepEqual(rb.fb, ra.fb);
  // A state with VRAM in it does not load into guest-page VRAM, nor the other way round.
  const own = makeVga({ vgamemMb: 4 });
  assert.throws(() => own.vga.restore(state), StateError);
  assert.throws(() => b.vga.restore(own.vga.snapshot()), StateError);
});
