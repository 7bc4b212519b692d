/**
 * test/e2e/dom0/vga-tool.ts (dom0's side of the e2e `vga` scenario) against
 * the whole daemon on the simulator, with this test playing the guest: it
 * writes the guest's serial lines, reads the keys the tool types over VNC at
 * the i8042, sets a VBE mode through DISPI and writes the pattern through
 * BAR0. The e2e run cannot be tried here (no Xen); this shows the tool's QMP,
 * VNC and picture paths work against stubdm before the lead runs it on Xen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { pino } from 'pino';
import { parseArgs } from '../../src/cli/index.ts';
import { start } from '../../src/main.ts';
import { connectQmp } from '../helpers/qmp-client.ts';
import { PATTERN_TEXT, marker, session } from '../e2e/dom0/vga-tool.ts';
import { parsePpm } from '../helpers/screen.ts';

const SCAN = { g: 0x22, w: 0x11, q: 0x10 };

/**
 * What vga.sh does for --cpu-windows: each OUT/idle-W.go is answered with
 * OUT/idle-W.done once `during(W)` (the measurement's stand-in) finished.
 */
function cpuWindows(out: string, during: (w: string) => Promise<void>): { seen: string[]; stop: () => void } {
  const seen: string[] = [];
  let on = true;
  void (async () => {
    while (on) {
      for (const w of ['vnc', 'novnc']) {
        if (seen.includes(w) || !fs.existsSync(path.join(out, `idle-${w}.go`))) continue;
        seen.push(w);
        await during(w);
        fs.writeFileSync(path.join(out, `idle-${w}.done`), '');
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return { seen, stop: () => void (on = false) };
}

test('vga-tool: text screendump, keys over VNC, the pattern seen by VNC and by the VBE screendump', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-vga-tool-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const qmpPath = path.join(dir, 'qmp');
  const display = 3000 + ((process.pid + 500) % 1000);
  const { config } = await parseArgs([
    '-xen-domid', '1', '-chardev', `socket,id=libxl-cmd,path=${qmpPath},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-machine', 'xenfv', '-m', '16', '--sim', '-device', 'VGA,vgamem_mb=4', '-vnc', `127.0.0.1:${display},to=${display + 50}`,
  ]);
  const dm = await start(config, { log: pino({ level: 'silent' }), signals: false });
  t.after(async () => void (await dm.shutdown('test')));
  const c = await connectQmp(qmpPath);
  await c.cmd('qmp_capabilities');
  const port = Number((await c.cmd('query-vnc')).return.service);
  c.close();
  const s = dm.sim!;
  const serial = path.join(dir, 'serial');
  const say = (line: string) => fs.appendFileSync(serial, `${line}\r\n`);

  // The guest: a small VBE mode is on from the start (the simulator has no BIOS to set text mode).
  const dispi = (i: number, v: number) => (s.outw(0x1ce, i), s.outw(0x1cf, v));
  const [W, H] = [40, 12];
  dispi(1, W);
  dispi(2, H);
  dispi(3, 32);
  dispi(4, 0x41);
  s.pciConfigWrite(3 << 3, 0x10, 4, 0xf0000000);
  s.pciConfigWrite(3 << 3, 0x04, 2, 0x0002);
  const text = Buffer.from(PATTERN_TEXT, 'latin1');
  const fill = (pattern: boolean) => {
    for (let o = 0; o < W * 4 * H; o += 4) s.writel(0xf0000000 + o, pattern ? text.readUInt32LE(o % 28) : 0);
  };
  say('E2E vga text=ready');

  // Key presses (make codes) the tool typed, read at the i8042 as the guest's driver would.
  const keys: number[] = [];
  const waitKey = async (code: number) => {
    for (let i = 0; i < 2000 && !keys.includes(code); i++) {
      while (s.inb(0x64) & 1) keys.push(s.inb(0x60));
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(keys.includes(code), `scan code 0x${code.toString(16)} typed (got ${keys.map((k) => k.toString(16))})`);
  };
  const guest = (async () => {
    await waitKey(SCAN.g);
    say(`E2E vga mode=${W}x${H}x32 stride=${W * 4} fbname=sim`);
    await waitKey(SCAN.w);
    fill(true);
    say('E2E vga fb=written');
    await waitKey(SCAN.q);
  })();

  const kv: Record<string, string | number> = {};
  const out = path.join(dir, 'out');
  // The idle windows: nothing changes on the screen, so the waiting client gets no update.
  const idle = cpuWindows(out, async () => void (await new Promise((r) => setTimeout(r, 300))));
  t.after(idle.stop);
  await session({ qmp: qmpPath, serial, out, vnc: port, dumpAs: null, dumpFile: null, ref: null, timeoutMs: 20_000, cpuWindows: true }, kv);
  await guest;
  assert.deepEqual(idle.seen, ['vnc', 'novnc'], 'with the client connected, then without');
  assert.equal(kv.vnc_idle_updates, 0, 'an idle screen sends the waiting client nothing');
  assert.ok(Number(kv.vnc_idle_s) > 0 && Number(kv.novnc_idle_s) > 0);
  assert.equal(kv.text, `${W}x${H}`);
  assert.equal(kv.mode, `${W}x${H}x32`);
  assert.equal(kv.vnc, 'ok');
  assert.equal(kv.vbe_bad_pixels, 0);
  assert.equal(typeof kv.vnc_update_ms, 'number');
  // The PNG copies (vga.sh puts them in results/<dm>/vga-{text,vbe}.png) are the screendumps' pixels.
  for (const name of ['text', 'vbe']) {
    const ppm = parsePpm(fs.readFileSync(path.join(out, `${name}.ppm`)))!.pic;
    const png = PNG.sync.read(fs.readFileSync(path.join(out, `${name}.png`)));
    assert.deepEqual([png.width, png.height], [ppm.width, ppm.height], name);
    const rgb = Buffer.alloc(png.width * png.height * 3);
    for (let i = 0; i < png.width * png.height; i++) png.data.copy(rgb, i * 3, i * 4, i * 4 + 3);
    assert.ok(rgb.equals(Buffer.from(ppm.rgb)), `${name}.png has the screendump's pixels`);
  }

  // A second run compares with the first one's pictures (qemu-xen's role): the same screen matches 100 %.
  const ref = out;
  const kv2: Record<string, string | number> = {};
  fs.writeFileSync(serial, '');
  keys.length = 0;
  fill(false);
  say('E2E vga text=ready');
  const again = (async () => {
    await waitKey(SCAN.g);
    say(`E2E vga mode=${W}x${H}x32 stride=${W * 4} fbname=sim`);
    await waitKey(SCAN.w);
    fill(true);
    say('E2E vga fb=written');
    await waitKey(SCAN.q);
  })();
  // This time the guest draws during the window with the client: the client is still connected
  // and waiting for an incremental update, so the change reaches it.
  const out2 = path.join(dir, 'out2');
  const drawing = cpuWindows(out2, async (w) => {
    if (w === 'vnc') s.writel(0xf0000000, 0x00ffffff);
    await new Promise((r) => setTimeout(r, 500));
  });
  t.after(drawing.stop);
  await session({ qmp: qmpPath, serial, out: out2, vnc: port, dumpAs: null, dumpFile: null, ref, timeoutMs: 20_000, cpuWindows: true }, kv2);
  await again;
  assert.equal(kv2.vnc_idle_updates, 1, 'the change during the window went to the waiting client');
  assert.equal(kv2.match, '100.000');
  assert.equal(kv2.diff_cells, 0);
  assert.equal(kv2.vbe_match, '100.000');
});

test('vga-tool: pictures from a stub domain save console, one after the other', async (t) => {
  // The stub domain case without VNC: screendumps go to one file (dom0's copy of the
  // save console) and are read back to back; the keys go in through QMP sendkey.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-vga-tool-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const qmpPath = path.join(dir, 'qmp');
  // The DM writes every screendump to fd set 1, as a stub domain's save console (fd 4 there).
  const consoleFile = path.join(dir, 'qemu-save.1');
  const fd = fs.openSync(consoleFile, 'a');
  t.after(() => fs.closeSync(fd));
  const { config } = await parseArgs([
    '-xen-domid', '1', '-chardev', `socket,id=libxl-cmd,path=${qmpPath},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-machine', 'xenfv', '-m', '16', '--sim', '-device', 'VGA,vgamem_mb=4', '-add-fd', `fd=${fd},set=1`,
  ]);
  const dm = await start(config, { log: pino({ level: 'silent' }), signals: false });
  t.after(async () => void (await dm.shutdown('test')));
  const s = dm.sim!;
  const dispi = (i: number, v: number) => (s.outw(0x1ce, i), s.outw(0x1cf, v));
  dispi(1, 16);
  dispi(2, 8);
  dispi(3, 32);
  dispi(4, 0x41);
  s.pciConfigWrite(3 << 3, 0x10, 4, 0xf0000000);
  s.pciConfigWrite(3 << 3, 0x04, 2, 0x0002);
  const text = Buffer.from(PATTERN_TEXT, 'latin1');
  for (let o = 0; o < 16 * 4 * 8; o += 4) s.writel(0xf0000000 + o, text.readUInt32LE(o % 28));
  const serial = path.join(dir, 'serial');
  const say = (line: string) => fs.appendFileSync(serial, `${line}\r\n`);
  say('E2E vga text=ready');
  // The guest answers each key only once its make code reached the i8042: without
  // QMP sendkey the session would time out waiting for the mode line.
  const keys: number[] = [];
  const waitKey = async (code: number) => {
    for (let i = 0; i < 2000 && !keys.includes(code); i++) {
      while (s.inb(0x64) & 1) keys.push(s.inb(0x60));
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(keys.includes(code), `scan code 0x${code.toString(16)} typed (got ${keys.map((k) => k.toString(16))})`);
  };
  const guest = (async () => {
    await waitKey(SCAN.g);
    say('E2E vga mode=16x8x32 stride=64 fbname=sim');
    await waitKey(SCAN.w);
    say('E2E vga fb=written');
    await waitKey(SCAN.q);
  })();
  const kv: Record<string, string | number> = {};
  // No VNC client to keep connected: only the window without one.
  const idle = cpuWindows(path.join(dir, 'out'), async () => {});
  t.after(idle.stop);
  await session({ qmp: qmpPath, serial, out: path.join(dir, 'out'), vnc: null, dumpAs: '/dev/fdset/1', dumpFile: consoleFile, ref: null, timeoutMs: 20_000, cpuWindows: true }, kv).catch((e: unknown) => {
    assert.fail(`${(e as Error).message} ${JSON.stringify(kv)}`);
  });
  await guest;
  assert.deepEqual(idle.seen, ['novnc']);
  assert.equal(kv.vnc_idle_updates, undefined);
  assert.equal(kv.keys_qmp, undefined);
  assert.ok(keys.includes(0x1c), 'Return typed after each word');
  assert.equal(kv.vnc, 'none');
  assert.equal(typeof kv.text_dump_ms, 'number');
  assert.equal(typeof kv.vbe_dump_ms, 'number');
  assert.equal(kv.vbe_bad_pixels, 0);
  // Both pictures are in the console file, the second read from where the first one ended.
  const all = fs.readFileSync(consoleFile);
  const first = parsePpm(all);
  assert.ok(first);
  assert.equal(parsePpm(all.subarray(first.bytes))?.bytes, all.length - first.bytes);
  assert.equal(parsePpm(fs.readFileSync(path.join(dir, 'out', 'vbe.ppm')))?.pic.width, 16);
  // A stub domain's pictures get their PNG copies too (results/stubdm-stubdom/vga-{text,vbe}.png).
  for (const name of ['text', 'vbe']) assert.equal(PNG.sync.read(fs.readFileSync(path.join(dir, 'out', `${name}.png`))).width, 16, name);
});

test('vga-tool: the pattern it checks is the one the guest writes (vga.sh VGA_PATTERN through yes)', () => {
  const sh = fs.readFileSync(path.resolve('test/e2e/scenarios/vga.sh'), 'utf8');
  const m = /^VGA_PATTERN=(\S+)/m.exec(sh);
  assert.ok(m, 'VGA_PATTERN= in vga.sh');
  assert.equal(`${m[1]}\n`, PATTERN_TEXT);
  assert.equal(PATTERN_TEXT.length, 28, '28 bytes: 7 pixels, no divisor of a 4096-byte line');
});

test('vga-tool: a marker line still being written is not read (the guest UART writes a byte at a time)', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vga-marker-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'serial');
  fs.writeFileSync(f, 'E2E vga text=ready\r\nE2E vga mode=');
  assert.equal(marker(f, 'text'), 'ready');
  assert.equal(marker(f, 'mode'), null, 'half a line is not a value');
  fs.appendFileSync(f, '1024x768x32 stride=4096\r\n');
  assert.equal(marker(f, 'mode'), '1024x768x32');
  assert.equal(marker(f, 'stride'), '4096');
  fs.writeFileSync(f, 'E2E vga mode=640x480x32\nE2E vga mode=10');
  assert.equal(marker(f, 'mode'), '640x480x32', 'the last whole line wins');
});
