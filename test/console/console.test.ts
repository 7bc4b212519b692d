/**
 * The stub domain's console without Xen: a regular file with a fake sysfs
 * directory stands in for xen-fbfront's /dev/fb0, a FIFO for
 * xen-kbdfront's /dev/input/event*. What is checked: the guest's pixels at
 * the right offsets in the framebuffer's format, only changed lines
 * written, nothing written when nothing changed, crop and black borders;
 * struct input_event records (in any split) into set-1 scan codes and PS/2
 * mouse moves; the FIFO read through the fdwatch addon as on the stub.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { DisplayHub } from '../../src/devices/vga/index.ts';
import { EvdevDecoder, EvdevInput, FbdevError, FramebufferConsole, keycodeToScancodes, openFbdev, readFbGeometry, startStubConsole } from '../../src/console/index.ts';
import type { HostInputSink } from '../../src/core/console.ts';
import { loadTapIo } from '../../src/net/native.ts';
import { LFB_BASE, makeVga } from '../devices/vga/harness.ts';
import { vbe32 as vbe } from '../devices/vga/modes.ts';

const silent = pino({ level: 'silent' });

/** A fake fb0: a file of stride * height bytes (0x55 everywhere, so unwritten bytes show) and its sysfs directory. */
function fakeFb(t: { after(fn: () => void): void }, w: number, h: number, bpp: number, stride: number): { dev: string; sysfs: string; read(): Buffer } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-fb-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sysfs = path.join(dir, 'fb0');
  fs.mkdirSync(sysfs);
  fs.writeFileSync(path.join(sysfs, 'virtual_size'), `${w},${h}\n`);
  fs.writeFileSync(path.join(sysfs, 'bits_per_pixel'), `${bpp}\n`);
  fs.writeFileSync(path.join(sysfs, 'stride'), `${stride}\n`);
  const dev = path.join(dir, 'dev-fb0');
  fs.writeFileSync(dev, Buffer.alloc(stride * h, 0x55));
  return { dev, sysfs, read: () => fs.readFileSync(dev) };
}

test('framebuffer geometry from sysfs; what cannot be drawn is one FbdevError line', (t) => {
  const ok = fakeFb(t, 800, 600, 32, 3200);
  assert.deepEqual(readFbGeometry(ok.sysfs), { width: 800, height: 600, stride: 3200, bpp: 32 });
  const cases: [string, string, string, RegExp][] = [
    ['800x600', '32', '3200', /expected W,H/],
    ['800,600', '8', '800', /8 bits per pixel/],
    ['800,600', '32', '3199', /stride 3199/],
    ['0,600', '32', '3200', /0x600/],
  ];
  for (const [size, bpp, stride, re] of cases) {
    const f = fakeFb(t, 1, 1, 32, 4);
    fs.writeFileSync(path.join(f.sysfs, 'virtual_size'), size);
    fs.writeFileSync(path.join(f.sysfs, 'bits_per_pixel'), bpp);
    fs.writeFileSync(path.join(f.sysfs, 'stride'), stride);
    assert.throws(() => readFbGeometry(f.sysfs), (e: Error) => e instanceof FbdevError && re.test(e.message) && !e.message.includes('\n'), `${size} ${bpp} ${stride}`);
  }
  fs.rmSync(path.join(ok.sysfs, 'stride'));
  assert.throws(() => readFbGeometry(ok.sysfs), /cannot read .*stride: ENOENT/);
});

test('guest screen into a 32-bpp framebuffer: pixels at stride offsets, only changed lines, nothing when idle, crop and black', (t) => {
  const r = makeVga({ vgamemMb: 4 });
  vbe(r, 64, 48);
  r.memw(LFB_BASE + (10 * 64 + 5) * 4, 4, 0x00336699);
  const stride = 40 * 4 + 16; // padding after each line, as some framebuffers have
  const f = fakeFb(t, 40, 60, 32, stride);
  const fb = openFbdev(f.dev, f.sysfs, silent);
  t.after(() => fb.close());
  const con = new FramebufferConsole(new DisplayHub(r.vga.core), fb, { manual: true, log: silent });
  con.start();
  t.after(() => con.stop());
  con.tick();
  let img = f.read();
  assert.equal(img.readUInt32LE(10 * stride + 5 * 4), 0x00336699, 'the guest pixel, XRGB8888');
  assert.equal(img.readUInt32LE(10 * stride + 6 * 4), 0, 'black around it');
  assert.equal(img.readUInt32LE(50 * stride), 0, 'below the 48-line guest: black');
  assert.equal(img.readUInt32LE(10 * stride + 40 * 4), 0, 'line padding written as zeros');
  assert.equal(con.stats.bytes, stride * 60, 'the first tick draws the whole framebuffer');
  // Nothing changed: no write at all.
  const before = { ...con.stats };
  con.tick();
  con.tick();
  assert.deepEqual(con.stats, before);
  // One pixel on line 30: a few lines written, not the screen; a pixel past the 40-pixel width (x=41) is cropped.
  fs.writeFileSync(f.dev, Buffer.alloc(stride * 60, 0x55));
  r.memw(LFB_BASE + (30 * 64 + 7) * 4, 4, 0x00ff0000);
  r.memw(LFB_BASE + (30 * 64 + 41) * 4, 4, 0x0000ff00);
  con.tick();
  img = f.read();
  assert.equal(img.readUInt32LE(30 * stride + 7 * 4), 0x00ff0000);
  // The renderer reports damage in blocks of lines (16 here); still far from the 60-line screen.
  assert.ok(con.stats.bytes - before.bytes <= stride * 16, `bytes written ${con.stats.bytes - before.bytes}`);
  assert.equal(img.readUInt32LE(0), 0x55555555, 'line 0 was not rewritten');
  const words = Array.from({ length: img.length / 4 }, (_, i) => img.readUInt32LE(i * 4));
  assert.ok(!words.includes(0x0000ff00), 'the pixel at x=41 is cropped away (not in the padding, not on the next line)');
  // A mode change: the whole framebuffer again (the old picture may be larger).
  vbe(r, 32, 16);
  con.tick();
  img = f.read();
  assert.equal(img.readUInt32LE(30 * stride + 7 * 4), 0, 'old picture gone');
  assert.ok(!img.includes(Buffer.from([0x55, 0x55, 0x55, 0x55])), 'every byte rewritten after the mode change');
});

test('a 16-bpp framebuffer gets RGB565', (t) => {
  const r = makeVga({ vgamemMb: 4 });
  vbe(r, 16, 8);
  r.memw(LFB_BASE + (2 * 16 + 3) * 4, 4, 0x00ff8040);
  const f = fakeFb(t, 16, 8, 16, 32);
  const fb = openFbdev(f.dev, f.sysfs, silent);
  t.after(() => fb.close());
  const con = new FramebufferConsole(new DisplayHub(r.vga.core), fb, { manual: true, log: silent });
  con.start();
  con.tick();
  con.stop();
  // r 0xff -> 31, g 0x80 -> 32, b 0x40 -> 8
  assert.equal(f.read().readUInt16LE(2 * 32 + 3 * 2), (31 << 11) | (32 << 5) | 8);
});

/** struct input_event on x86_64: timeval (16 bytes), type, code, value. */
function ev(type: number, code: number, value: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigInt64LE(1234n, 0);
  b.writeBigInt64LE(5678n, 8);
  b.writeUInt16LE(type, 16);
  b.writeUInt16LE(code, 18);
  b.writeInt32LE(value, 20);
  return b;
}
const SYN = () => ev(0, 0, 0);

function recorder(): HostInputSink & { keys: number[][]; moves: number[][] } {
  const keys: number[][] = [];
  const moves: number[][] = [];
  return { keys, moves, key: (b) => void keys.push([...b]), pointer: (...m) => void moves.push(m) };
}

test('Linux keycodes to set-1 scan codes: 1-88 as they are, extended keys with E0, releases, repeats, Pause, unknown keys', () => {
  const out = new Uint8Array(8);
  const k = (code: number, value: number) => [...out.subarray(0, keycodeToScancodes(code, value, out))];
  assert.deepEqual(k(30, 1), [0x1e], 'KEY_A down');
  assert.deepEqual(k(30, 0), [0x9e], 'KEY_A up');
  assert.deepEqual(k(30, 2), [0x1e], 'autorepeat: the make code again');
  assert.deepEqual(k(28, 1), [0x1c], 'KEY_ENTER');
  assert.deepEqual(k(88, 1), [0x58], 'KEY_F12');
  assert.deepEqual(k(103, 1), [0xe0, 0x48], 'KEY_UP');
  assert.deepEqual(k(103, 0), [0xe0, 0xc8]);
  assert.deepEqual(k(97, 1), [0xe0, 0x1d], 'KEY_RIGHTCTRL');
  assert.deepEqual(k(125, 1), [0xe0, 0x5b], 'KEY_LEFTMETA');
  assert.deepEqual(k(119, 1), [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5], 'Pause');
  assert.deepEqual(k(119, 0), [], 'Pause has no break code');
  for (const code of [0, 84, 85, 90, 240, 0x110, 0xffff]) assert.deepEqual(k(code, 1), [], `keycode ${code}`);
});

test('evdev records: keys, relative and absolute pointer, wheel, buttons, in any split; SYN_DROPPED discards a partial report', () => {
  const s = recorder();
  const d = new EvdevDecoder(s);
  const stream = Buffer.concat([
    ev(1, 30, 1), SYN(), ev(1, 30, 0), SYN(), // 'a'
    ev(2, 0, 5), ev(2, 1, -3), SYN(), // REL_X/Y
    ev(1, 0x110, 1), SYN(), // BTN_LEFT
    ev(2, 8, 1), SYN(), // REL_WHEEL up
    ev(1, 0x110, 0), ev(1, 0x111, 1), SYN(),
    ev(3, 0, 100), ev(3, 1, 50), SYN(), // the first absolute position: a reference, no movement
    ev(3, 0, 110), ev(3, 1, 40), SYN(),
    ev(2, 0, 9), ev(0, 3, 0), ev(2, 0, 7), SYN(), // dropped: the report is discarded
    ev(2, 0, 1), SYN(),
    ev(5, 0, 1), ev(2, 6, 4), SYN(), // EV_SW, REL_HWHEEL: not ours
  ]);
  // Fed in odd pieces: records cross every boundary.
  for (let at = 0; at < stream.length; at += 7) {
    const piece = stream.subarray(at, Math.min(stream.length, at + 7));
    d.feed(new Uint8Array(piece), piece.length);
  }
  assert.deepEqual(s.keys, [[0x1e], [0x9e]]);
  assert.deepEqual(s.moves, [
    [5, -3, 0, 0],
    [0, 0, 0, 0x01],
    [0, 0, -1, 0x01],
    [0, 0, 0, 0x02],
    [0, 0, 0, 0x02],
    [10, -10, 0, 0x02],
    [1, 0, 0, 0x02],
  ]);
});

test('an event device read through the fdwatch addon (a FIFO here) reaches the keyboard and mouse; the end of the device stops it', async (t) => {
  execFileSync('bash', [fileURLToPath(new URL('../../scripts/build-native.sh', import.meta.url))], { stdio: 'inherit' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-evdev-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const p = path.join(dir, 'event0');
  execFileSync('mkfifo', [p]);
  fs.writeFileSync(path.join(dir, 'mice'), ''); // not event*: never opened
  const hold = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const wr = fs.openSync(p, fs.constants.O_WRONLY);
  fs.closeSync(hold);
  const s = recorder();
  const input = new EvdevInput(loadTapIo(), s, silent);
  t.after(() => input.close());
  assert.deepEqual(input.openAll(dir), [p]);
  fs.writeSync(wr, Buffer.concat([ev(1, 103, 1), SYN(), ev(2, 0, -4), ev(2, 1, 2), SYN()]));
  for (let i = 0; i < 200 && s.moves.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(s.keys, [[0xe0, 0x48]]);
  assert.deepEqual(s.moves, [[-4, 2, 0, 0]]);
  fs.closeSync(wr);
  for (let i = 0; i < 200 && input.count > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(input.count, 0, 'end of file: the device is dropped, not spun on');
});

test('startStubConsole: nothing without a framebuffer; with one, it draws and reads input', async (t) => {
  const r = makeVga({ vgamemMb: 4 });
  vbe(r, 8, 8);
  r.memw(LFB_BASE, 4, 0x00abcdef);
  const hub = new DisplayHub(r.vga.core);
  const s = recorder();
  const none = startStubConsole(hub, s, null, silent, { fbdev: '/nonexistent/fb0', sysfs: '/nonexistent', inputDir: '/nonexistent' }, true);
  assert.equal(none, null);
  const f = fakeFb(t, 8, 8, 32, 32);
  const bad = fakeFb(t, 8, 8, 32, 32);
  fs.writeFileSync(path.join(bad.sysfs, 'bits_per_pixel'), '24');
  assert.equal(startStubConsole(hub, s, null, silent, { fbdev: bad.dev, sysfs: bad.sysfs, inputDir: '/nonexistent' }, true), null, 'unusable: logged, skipped');
  const con = startStubConsole(hub, s, null, silent, { fbdev: f.dev, sysfs: f.sysfs, inputDir: '/nonexistent' }, true);
  assert.ok(con);
  t.after(() => con.close());
  con.fb.tick();
  assert.equal(f.read().readUInt32LE(0), 0x00abcdef);
});
