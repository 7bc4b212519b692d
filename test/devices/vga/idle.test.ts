/**
 * What a refresh costs while the guest's screen is still (an idle guest with
 * a VNC client connected, or the stub domain's framebuffer, which refreshes
 * whether anyone watches or not): the renderer must not read VRAM, compare
 * cells or walk lines, the VNC server must convert no pixel and the
 * framebuffer console write nothing, and none of them may allocate. With
 * VRAM in guest pages a refresh asks the hypervisor for dirty pages once.
 * Then the refresh schedule: QEMU's adaptive period, and the wake-ups that
 * bring it back to 30 ms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { AdaptiveRefresh, DisplayHub, REFRESH_BASE_MS, REFRESH_INC_MS, REFRESH_MAX_MS, type RefreshTimer, type RefreshTimers } from '../../../src/devices/vga/display.ts';
import type { RenderWork } from '../../../src/devices/vga/render.ts';
import { SimVramProvider } from '../../../src/sim/index.ts';
import { VncServer } from '../../../src/vnc/server.ts';
import { FramebufferConsole } from '../../../src/console/fbsink.ts';
import type { HostFramebuffer } from '../../../src/core/console.ts';
import { bytesPerCall } from '../../helpers/alloc.ts';
import { RfbClient } from '../../helpers/rfb-client.ts';
import { LFB_BASE, makeVga, silent, type VgaRig } from './harness.ts';
import { MODE12, MODE3, setMode, vbe32 as vbe } from './modes.ts';

/** The work counters that mean the frame was touched (everything but the update counts). */
function touched(w: RenderWork): number[] {
  return [w.cellsCompared, w.linesChecked, w.pixelsDrawn];
}

const SCREENS: Array<[string, (r: VgaRig) => void]> = [
  ['text mode 3 (80x25 cells)', (r) => {
    setMode(r, MODE3);
    for (let i = 0; i < 80 * 25; i++) r.memw(0xb8000 + 2 * i, 2, 0x0700 | (0x41 + (i % 26)));
  }],
  ['mode 12h (640x480 planar)', (r) => setMode(r, MODE12)],
  ['VBE 1024x768x32', (r) => {
    vbe(r, 1024, 768);
    for (let y = 0; y < 768; y += 7) r.memw(LFB_BASE + y * 4096, 4, 0x00ff00ff);
  }],
];

for (const [name, setup] of SCREENS) {
  test(`idle refresh, ${name}: no VRAM read, no cell or line looked at, no pixel drawn; a store is drawn`, () => {
    const r = makeVga({ vgamemMb: 16 });
    setup(r);
    const hub = new DisplayHub(r.vga.core);
    const rd = hub.renderer;
    assert.equal(hub.refresh(), true, 'the first picture');
    const before = touched(rd.work);
    const idle0 = rd.work.idle;
    for (let i = 0; i < 100; i++) assert.equal(hub.refresh(), false);
    assert.deepEqual(touched(rd.work), before, 'idle refreshes touched the frame');
    assert.equal(rd.work.idle - idle0, 100);
    // The counters are live: one store is found and drawn, and the refresh after it is idle again.
    if (name.startsWith('text')) r.memw(0xb8000, 2, 0x0742);
    else if (name.startsWith('mode 12h')) r.memw(0xa0000 + 80 * 100, 1, 0xff);
    else r.memw(LFB_BASE + 300 * 4096 + 40, 4, 0x00123456);
    assert.equal(hub.refresh(), true);
    assert.ok(rd.work.pixelsDrawn > before[2], 'the store was drawn');
    const after = touched(rd.work);
    assert.equal(hub.refresh(), false);
    assert.deepEqual(touched(rd.work), after);
  });
}

test('guest-page VRAM: an idle refresh asks for dirty pages once and touches nothing; a page the guest wrote is drawn', () => {
  const pool = new SimVramProvider();
  const r = makeVga({ vgamemMb: 16, vram: pool });
  const v = pool.backings[0];
  let asked = 0;
  const collect = v.collectDirty.bind(v);
  v.collectDirty = (d) => (asked++, collect(d));
  vbe(r, 1024, 768);
  const hub = new DisplayHub(r.vga.core);
  hub.refresh();
  const before = touched(hub.renderer.work);
  asked = 0;
  for (let i = 0; i < 50; i++) assert.equal(hub.refresh(), false);
  assert.equal(asked, 50, 'track_dirty_vram once per refresh');
  assert.deepEqual(touched(hub.renderer.work), before);
  // The guest writes its framebuffer behind our back (Xen's log-dirty marks the page).
  v.bytes[500 * 4096] = 0xff;
  v.guestDirty[(500 * 4096) >>> 12] = 1;
  assert.equal(hub.refresh(), true);
  assert.equal(hub.fb[500 * 1024], 0x0000ff);
});

test('the first VRAM store after a picture wakes the viewers once; later stores do not call out', () => {
  const r = makeVga({ vgamemMb: 4 });
  vbe(r, 64, 48);
  const hub = new DisplayHub(r.vga.core);
  let wakes = 0;
  hub.subscribe({ damage: () => {}, resize: () => {}, wake: () => void wakes++ });
  hub.refresh();
  assert.equal(wakes, 0);
  for (let i = 0; i < 100; i++) r.memw(LFB_BASE + 4 * i, 4, i);
  r.memw(0xa0000, 1, 1);
  assert.equal(wakes, 1);
  hub.refresh();
  r.memw(LFB_BASE, 4, 7);
  assert.equal(wakes, 2);
});

test('a whole idle tick allocates nothing: VNC with a client waiting for an incremental update, and the stub framebuffer', async (t) => {
  const r = makeVga({ vgamemMb: 16 });
  vbe(r, 1024, 768);
  const hub = new DisplayHub(r.vga.core);
  const srv = new VncServer({ host: '127.0.0.1', port: 0, lastPort: 0, display: hub, onKey: () => {}, log: pino({ level: 'silent' }), manual: true });
  const { port } = await srv.listen();
  t.after(() => srv.close());
  const c = await RfbClient.connect(port);
  t.after(() => c.close());
  await c.handshake();
  c.encodings(0);
  c.request(false, 1024, 768);
  await c.update();
  // The client asks for the next change, as a viewer does after each update; it arrived when the server ticked for it.
  const ticks = srv.stats.ticks;
  c.request(true, 1024, 768);
  for (let i = 0; i < 400 && srv.stats.ticks === ticks; i++) await new Promise((res) => setTimeout(res, 5));
  assert.ok(srv.stats.ticks > ticks, 'the incremental request reached the server');
  const written: number[] = [];
  const fb: HostFramebuffer = { geometry: { width: 800, height: 600, stride: 3200, bpp: 32 }, write: (_d, len) => (written.push(len), true), close: () => {} };
  const con = new FramebufferConsole(hub, fb, { manual: true, log: silent });
  con.start();
  t.after(() => con.stop());
  con.tick(); // the first picture
  const pixels = srv.stats.pixels;
  const writes = written.length;
  const work = touched(hub.renderer.work);
  // The least of three measurements: the live RFB socket's own events can land in
  // one window (seen once under a loaded npm test: 14 bytes/tick), but an idle tick
  // that allocates shows in all three.
  const perTick = Math.min(
    ...[0, 1, 2].map(() =>
      bytesPerCall(() => {
        srv.tick();
        con.tick();
      }),
    ),
  );
  assert.ok(perTick < 1, `${perTick.toFixed(2)} bytes allocated per idle tick`);
  assert.equal(srv.stats.pixels, pixels, 'no pixel converted for the client');
  assert.equal(written.length, writes, 'nothing written to the framebuffer');
  assert.deepEqual(touched(hub.renderer.work), work);
  // The same chain is live: a store goes out to the client that was waiting.
  r.memw(LFB_BASE + 10 * 4096, 4, 0x00abcdef);
  assert.equal(srv.tick(), true);
  const [u] = await c.update();
  assert.equal(u.y <= 10 && u.y + u.h > 10, true);
});

/** Virtual time for AdaptiveRefresh: timers fire in order as `advance` moves the clock. */
function virtualTimers() {
  let now = 0;
  const armed = new Map<RefreshTimer, { at: number; ms: number; fn: () => void }>();
  const timers: RefreshTimers = {
    set: (fn, ms) => {
      const t: RefreshTimer = { refresh: () => void armed.set(t, { at: now + ms, ms, fn }) };
      armed.set(t, { at: now + ms, ms, fn });
      return t;
    },
    clear: (t) => void armed.delete(t),
  };
  const advance = (ms: number) => {
    const end = now + ms;
    for (;;) {
      let next: [RefreshTimer, { at: number; ms: number; fn: () => void }] | null = null;
      for (const e of armed) if (e[1].at <= end && (next === null || e[1].at < next[1].at)) next = e;
      if (next === null) break;
      armed.delete(next[0]); // fired; refresh() re-arms it (Node re-arms a fired timer too)
      now = next[1].at;
      next[1].fn();
    }
    now = end;
  };
  return { timers, advance, now: () => now };
}

test("adaptive refresh: QEMU's 30 ms, +50 ms per still refresh up to 3 s, halved when something was sent; poke is back to 30 ms", () => {
  const vt = virtualTimers();
  const at: number[] = [];
  let busy = false;
  const ar = new AdaptiveRefresh(() => (at.push(vt.now()), busy), vt.timers);
  ar.start();
  vt.advance(120_000);
  const gaps = at.map((x, i) => x - (i ? at[i - 1] : 0));
  assert.deepEqual(gaps.slice(0, 4), [REFRESH_BASE_MS, REFRESH_BASE_MS + REFRESH_INC_MS, REFRESH_BASE_MS + 2 * REFRESH_INC_MS, REFRESH_BASE_MS + 3 * REFRESH_INC_MS]);
  assert.equal(Math.max(...gaps), REFRESH_MAX_MS);
  assert.equal(gaps.at(-1), REFRESH_MAX_MS);
  assert.ok(at.length < 100, `${at.length} refreshes in 2 idle minutes`);
  // Input or a VRAM store: the next refresh within 30 ms, not at the end of the 3 s wait.
  const k = at.length;
  while (at.length === k) vt.advance(10); // a refresh just happened: the next one is 3 s away
  vt.advance(1000);
  const n = at.length;
  assert.equal(n, k + 1);
  ar.poke();
  vt.advance(REFRESH_BASE_MS);
  assert.equal(at.length, n + 1);
  assert.equal(ar.interval, REFRESH_BASE_MS + REFRESH_INC_MS, 'that refresh sent nothing: slowing down again');
  // A changing picture halves the wait each time down to 30 ms.
  ar.interval = 2000;
  busy = true;
  at.length = 0;
  vt.advance(5000);
  assert.equal(at[1] - at[0], 1000);
  assert.equal(at[2] - at[1], 500);
  assert.equal(at.at(-1)! - at.at(-2)!, REFRESH_BASE_MS);
  ar.stop();
  const stopped = at.length;
  vt.advance(10_000);
  assert.equal(at.length, stopped);
});

test('Node re-arms a timer that already fired with refresh() (what poke relies on)', async () => {
  let fired = 0;
  const t = setTimeout(() => void fired++, 1);
  for (let i = 0; i < 500 && fired === 0; i++) await new Promise((res) => setImmediate(res));
  await new Promise((res) => setTimeout(res, 5));
  assert.equal(fired, 1);
  t.refresh();
  for (let i = 0; i < 400 && fired === 1; i++) await new Promise((res) => setTimeout(res, 5));
  assert.equal(fired, 2);
});

test("the stub domain's framebuffer console backs off by doubling: a still screen costs a handful of ticks in 31 s, and a VRAM store brings it back within 30 ms", () => {
  const vt = virtualTimers();
  const r = makeVga({ vgamemMb: 16 });
  vbe(r, 1024, 768);
  const hub = new DisplayHub(r.vga.core);
  const written: number[] = [];
  const fb: HostFramebuffer = { geometry: { width: 800, height: 600, stride: 3200, bpp: 32 }, write: (_d, len) => (written.push(len), true), close: () => {} };
  const con = new FramebufferConsole(hub, fb, { log: silent, timers: vt.timers });
  con.start();
  vt.advance(REFRESH_BASE_MS);
  assert.ok(written.length > 0, 'the first picture was written');
  // The idle window of the vga scenario (31 s right after the picture was drawn).
  const idle0 = hub.renderer.work.updates;
  vt.advance(31_000);
  const ticks = hub.renderer.work.updates - idle0;
  // Doubling: 60, 120, ... 1920, then 3000 ms: 5 + 9 ticks. QEMU's +50 ms ramp would take 34.
  assert.ok(ticks >= 10 && ticks <= 16, `${ticks} refreshes in a still 31 s`);
  const writes = written.length;
  // The guest draws again: the first store wakes the console, the change is written within 30 ms.
  r.memw(LFB_BASE + 20 * 4096, 4, 0x00abcdef);
  vt.advance(REFRESH_BASE_MS);
  assert.equal(written.length, writes + 1, 'the store reached the framebuffer 30 ms after it was made');
  con.stop();
});
