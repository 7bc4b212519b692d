/**
 * The VNC server against a small RFB client written here from RFC 6143:
 * handshake (3.8 and 3.3), ServerInit with the screen size, raw and zlib
 * framebuffer updates with the right pixels, incremental updates carrying
 * only the damage, DesktopSize when the guest changes mode, a 16-bpp client
 * pixel format, key events reaching the keyboard as set-1 scan codes, and
 * a client that sends garbage being dropped. No timers: the server runs
 * with manual: true and answers update requests when they arrive.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { pino } from 'pino';
import { DisplayHub } from '../../src/devices/vga/index.ts';
import { parseVncArg, VncServer } from '../../src/vnc/server.ts';
import { keysymToScancodes } from '../../src/vnc/keymap.ts';
import { LFB_BASE, makeVga } from '../devices/vga/harness.ts';
import { vbe32 as vbe } from '../devices/vga/modes.ts';
import { RfbClient } from '../helpers/rfb-client.ts';

async function rig(t: { after(fn: () => void | Promise<void>): void }) {
  const r = makeVga({ vgamemMb: 4 });
  vbe(r, 64, 48);
  r.memw(LFB_BASE + (10 * 64 + 5) * 4, 4, 0x00336699);
  const keys: number[][] = [];
  const moves: number[][] = [];
  const srv = new VncServer({ host: '127.0.0.1', port: 0, lastPort: 0, display: new DisplayHub(r.vga.core), onKey: (b) => keys.push([...b]), onPointer: (...m) => void moves.push(m), log: pino({ level: process.env.VNC_LOG ?? 'silent' }), manual: true, name: 'guest1' });
  const { port } = await srv.listen();
  t.after(() => srv.close());
  return { r, srv, port, keys, moves };
}

test('handshake, raw update with the guest pixels, incremental damage only, keys as set-1 scan codes', async (t) => {
  const { r, port, keys } = await rig(t);
  const c = await RfbClient.connect(port);
  t.after(() => c.close());
  assert.deepEqual(await c.handshake(), { w: 64, h: 48, name: 'guest1' });
  c.encodings(0);
  c.request(false, 64, 48);
  const [full] = await c.update();
  assert.deepEqual([full.x, full.y, full.w, full.h, full.enc], [0, 0, 64, 48, 0]);
  assert.equal(full.data.readUInt32LE((10 * 64 + 5) * 4) & 0xffffff, 0x336699);
  // The guest draws one pixel: an incremental request gets the damaged line, not the screen.
  r.memw(LFB_BASE + (30 * 64 + 7) * 4, 4, 0x00ff0000);
  c.request(true, 64, 48);
  const [inc] = await c.update();
  assert.ok(inc.h < 48 && inc.y <= 30 && inc.y + inc.h > 30, `damage ${JSON.stringify({ ...inc, data: undefined })}`);
  assert.equal(inc.data.readUInt32LE(((30 - inc.y) * inc.w + 7) * 4) & 0xffffff, 0xff0000);
  // Keys: 'a' down/up, Up arrow (extended), a keysym with no key.
  const key = (down: boolean, sym: number) => {
    const b = Buffer.alloc(8);
    b[0] = 4;
    b[1] = down ? 1 : 0;
    b.writeUInt32BE(sym, 4);
    c.send(b);
  };
  key(true, 0x61);
  key(false, 0x61);
  key(true, 0xff52);
  key(true, 0x20ac); // EuroSign: not on a US keyboard
  c.request(true, 64, 48); // a round trip so the keys have been processed
  r.memw(LFB_BASE, 4, 1);
  await c.update();
  assert.deepEqual(keys, [[0x1e], [0x9e], [0xe0, 0x48]]);
});

test('zlib encoding and DesktopSize when the guest changes mode; a 16-bpp client format', async (t) => {
  const { r, port } = await rig(t);
  const c = await RfbClient.connect(port);
  t.after(() => c.close());
  await c.handshake('003.007');
  c.encodings(6, -223, 0);
  const inflate = zlib.createInflate();
  c.request(false, 64, 48);
  const [z] = await c.update(4, inflate);
  assert.equal(z.enc, 6);
  assert.equal(z.data.readUInt32LE((10 * 64 + 5) * 4) & 0xffffff, 0x336699);
  vbe(r, 80, 40);
  r.memw(LFB_BASE + (1 * 80 + 1) * 4, 4, 0x0000ff00);
  c.request(true, 64, 48);
  const rects = await c.update(4, inflate);
  assert.deepEqual([rects[0].enc, rects[0].w, rects[0].h], [-223, 80, 40], 'DesktopSize first');
  assert.deepEqual([rects[1].w, rects[1].h, rects[1].enc], [80, 40, 6], 'then the whole new screen');
  assert.equal(rects[1].data.readUInt32LE((1 * 80 + 1) * 4) & 0xffffff, 0x00ff00);
  // SetPixelFormat: 16 bpp 5-6-5 little endian.
  const pf = Buffer.alloc(20);
  pf[0] = 0;
  pf.set([16, 16, 0, 1], 4);
  pf.writeUInt16BE(31, 8);
  pf.writeUInt16BE(63, 10);
  pf.writeUInt16BE(31, 12);
  pf.set([11, 5, 0], 14);
  c.send(pf);
  c.encodings(0);
  c.request(false, 80, 40);
  const [p16] = await c.update(2);
  assert.equal(p16.data.readUInt16LE((1 * 80 + 1) * 2), 63 << 5, 'green at full scale');
});

test('RFB 3.3 clients; garbage gets the client dropped, the server keeps serving', async (t) => {
  const { port, srv } = await rig(t);
  const c = await RfbClient.connect(port);
  t.after(() => c.close());
  await c.handshake('003.003');
  c.send([0x99, 1, 2, 3]);
  assert.equal((await c.read(1)).length, 0, 'connection closed');
  const d = await RfbClient.connect(port);
  t.after(() => d.close());
  await c.read(1);
  assert.deepEqual((await d.handshake()).w, 64);
  assert.equal(srv.clientCount, 1);
  const bad = await RfbClient.connect(port);
  t.after(() => bad.close());
  await bad.read(12);
  bad.send(Buffer.from('HTTP/1.1 GET\n'));
  assert.equal((await bad.read(1)).length, 0, 'not RFB: closed');
});

test('keymap: letters, shifted symbols on their keys, extended keys, releases', () => {
  const out = new Uint8Array(2);
  const k = (sym: number, down = true) => [...out.subarray(0, keysymToScancodes(sym, down, out))];
  assert.deepEqual(k(0x41), [0x1e], "'A' is the A key (Shift comes separately)");
  assert.deepEqual(k(0x21), [0x02], "'!' is the 1 key");
  assert.deepEqual(k(0xff0d), [0x1c]);
  assert.deepEqual(k(0xff0d, false), [0x9c]);
  assert.deepEqual(k(0xff54, false), [0xe0, 0xd0], 'Down released');
  assert.deepEqual(k(0xffc9), [0x58], 'F12');
  assert.deepEqual(k(0x20ac), []);
});

test('-vnc argument as libxl writes it', () => {
  assert.deepEqual(parseVncArg('127.0.0.1:0,to=99'), { host: '127.0.0.1', port: 5900, lastPort: 5999, password: false });
  assert.deepEqual(parseVncArg('0.0.0.0:3,password=on'), { host: '0.0.0.0', port: 5903, lastPort: 5903, password: true });
  assert.deepEqual(parseVncArg('[::1]:1'), { host: '::1', port: 5901, lastPort: 5901, password: false });
  assert.equal(parseVncArg('none'), null);
  assert.throws(() => parseVncArg('localhost'), /HOST:DISPLAY/);
});

test('PointerEvent: absolute positions become relative PS/2 moves, buttons in PS/2 order, the wheel as detents', async (t) => {
  const { r, port, moves } = await rig(t);
  const c = await RfbClient.connect(port);
  t.after(() => c.close());
  await c.handshake();
  c.encodings(0);
  const ptr = (mask: number, x: number, y: number) => {
    const b = Buffer.alloc(6);
    b[0] = 5;
    b[1] = mask;
    b.writeUInt16BE(x, 2);
    b.writeUInt16BE(y, 4);
    c.send(b);
  };
  ptr(0, 10, 10); // the first event only sets where the pointer is
  ptr(0, 15, 7);
  ptr(0x01, 15, 7); // left down
  ptr(0x05, 20, 30); // right too, moving
  ptr(0x05, 20, 30); // nothing changed: nothing sent
  ptr(0x02, 20, 30); // middle only
  ptr(0x08, 20, 30); // middle up, wheel up pressed: one detent
  ptr(0x00, 20, 30); // wheel released: nothing to tell the mouse
  ptr(0x10, 20, 30); // wheel down
  c.request(false, 64, 48); // a round trip so the events have been processed
  await c.update();
  assert.deepEqual(moves, [
    [5, -3, 0, 0],
    [0, 0, 0, 0x01],
    [5, 23, 0, 0x03],
    [0, 0, 0, 0x04],
    [0, 0, -1, 0],
    [0, 0, 1, 0],
  ]);
  void r;
});
