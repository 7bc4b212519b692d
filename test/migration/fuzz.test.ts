/**
 * Hostile restore streams: a device model started with -incoming (or sent
 * xen-load-devices-state) gets bytes from a file or a console it does not
 * control. Whatever they are, the stream reader and the machine's restore
 * end in a StateError or a MigrationError, in bounded time, never another
 * exception, a crash or a hang.
 *
 * Seed: a real container saved from a whole xenfv PC on the simulator (IDE
 * disk and CD-ROM, two UARTs, every chipset function), after the guest
 * programmed some of it. Mutations: truncation, bit flips (raw, and with the
 * checksum fixed up so the damage reaches the parser and the devices), wrong
 * lengths and counts, random bytes, filler and garbage around it, and
 * structure-aware changes (one field of one device's state replaced with a
 * value of another type or range, re-encoded as a valid container).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { StateError } from '../../src/core/state.ts';
import { decodeContainer, encodeContainer, HEADER_BYTES, type DeviceRecord } from '../../src/machine/container.ts';
import { CONSOLE_PREAMBLE, FILLER, MigrationError, readState, writeState } from '../../src/migration/stream.ts';
import { prngU32 } from '../helpers/prng.ts';
import { simPc } from '../helpers/simpc.ts';

/** r(n): an integer in [0, n) from the shared seeded generator. */
function rng(seed: number): (n: number) => number {
  const u = prngU32(seed);
  return (n) => u() % n;
}

function fixCrc(b: Uint8Array): Uint8Array {
  const buf = Buffer.from(b);
  if (buf.length >= HEADER_BYTES + 4) buf.writeUInt32LE(crc32(buf.subarray(0, buf.length - 4)), buf.length - 4);
  return buf;
}

/** A whole PC with an IDE disk and CD-ROM and two UARTs; `fresh()` builds another one on the same images. */
async function seedMachine(t: { after(fn: () => void): void }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-fuzz-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const disk = path.join(dir, 'disk.img');
  const iso = path.join(dir, 'cd.iso');
  fs.writeFileSync(disk, Buffer.alloc(1 << 20, 0x11));
  fs.writeFileSync(iso, Buffer.alloc(1 << 20, 0x22));
  const fresh = () =>
    simPc(t, 16, [
      '-drive', `file=${disk},if=ide,index=0,media=disk,format=raw`,
      '-drive', `file=${iso},if=ide,index=2,media=cdrom,format=raw,readonly=on`,
      '-serial', 'null', '-serial', 'null',
    ]);
  const m = await fresh();
  // Guest activity so the state is not all defaults: UART, keyboard controller, CMOS, an IDE command.
  m.sim.outb(0x3f8 + 3, 0x80);
  m.sim.outb(0x3f8, 0x01);
  m.sim.outb(0x3f8 + 3, 0x03);
  m.sim.outb(0x3f8 + 7, 0xa5);
  m.sim.outb(0x2f8 + 1, 0x0f);
  m.sim.outb(0x64, 0x20);
  m.sim.outb(0x70, 0x30);
  m.sim.outb(0x1f6, 0xe0);
  m.sim.outb(0x1f2, 1);
  m.sim.outb(0x1f7, 0xec); // IDENTIFY: a PIO transfer in progress
  return { ...m, fresh };
}

/** One mutated container. */
function mutate(seed: Uint8Array, records: DeviceRecord[], r: (n: number) => number): Uint8Array {
  const b = Buffer.from(seed);
  switch (r(9)) {
    case 0: // truncated anywhere
      return b.subarray(0, r(b.length));
    case 1: { // bit flips, checksum left wrong
      for (let k = 1 + r(4); k > 0; k--) b[r(b.length)] ^= 1 << r(8);
      return b;
    }
    case 2: { // bit flips past the header, checksum fixed: the parser and devices see it
      for (let k = 1 + r(3); k > 0; k--) b[HEADER_BYTES + r(b.length - HEADER_BYTES - 4)] ^= 1 << r(8);
      return fixCrc(b);
    }
    case 3: { // wrong total length / record count
      const what = r(2) === 0 ? 12 : 16;
      const vals = [0, 1, 19, 24, b.length - 1, b.length + 1, 0x7fffffff, 0xffffffff, r(0x100000)];
      b.writeUInt32LE(vals[r(vals.length)] >>> 0, what);
      return r(2) === 0 ? fixCrc(b) : b;
    }
    case 4: { // a record's payload length or id length changed, checksum fixed
      let at = HEADER_BYTES;
      const skip = r(records.length);
      for (let i = 0; i < skip; i++) at += 9 + b[at] + b.readUInt32LE(at + 5 + b[at]);
      const idLen = b[at];
      if (r(2) === 0) b[at] = r(256);
      else b.writeUInt32LE([0, 1, 0xffffffff, 0x7fffffff, b.readUInt32LE(at + 5 + idLen) + 1 + r(50)][r(5)] >>> 0, at + 5 + idLen);
      return fixCrc(b);
    }
    case 5: { // random bytes with a valid header
      const n = HEADER_BYTES + 4 + r(4096);
      const x = Buffer.alloc(n);
      for (let i = 0; i < n; i++) x[i] = r(256);
      b.copy(x, 0, 0, 12);
      x.writeUInt32LE(n, 12);
      x.writeUInt32LE(r(8), 16);
      return fixCrc(x);
    }
    case 6: { // a state version from the future, or 0
      const recs = records.map((rec) => ({ ...rec }));
      const i = r(recs.length);
      recs[i] = { ...recs[i], version: r(2) === 0 ? recs[i].version + 1 + r(5) : 1 };
      return encodeContainer(recs);
    }
    default: { // structure-aware: one field of one device replaced
      const recs = records.map((rec) => ({ ...rec }));
      const i = r(recs.length);
      recs[i] = { ...recs[i], state: replaceField(recs[i].state as Record<string, unknown>, r) as DeviceRecord['state'] };
      return encodeContainer(recs);
    }
  }
}

const WEIRD: unknown[] = [null, true, false, -1, 0, 1, 0.5, 255, 256, 65536, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), '', 'x', [], [1, 2, 3], {}, { a: 1 }, new Uint8Array(0), new Uint8Array(70000)];

function replaceField(o: Record<string, unknown>, r: (n: number) => number, depth = 0): unknown {
  const keys = Object.keys(o);
  if (keys.length === 0) return o;
  const k = keys[r(keys.length)];
  const v = o[k];
  const out: Record<string, unknown> = { ...o };
  if (depth < 4 && v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && r(3) > 0) {
    if (Array.isArray(v)) {
      const a = v.slice();
      if (a.length > 0) {
        const j = r(a.length);
        a[j] = a[j] !== null && typeof a[j] === 'object' && !(a[j] instanceof Uint8Array) && !Array.isArray(a[j]) ? replaceField(a[j] as Record<string, unknown>, r, depth + 1) : WEIRD[r(WEIRD.length)];
      } else a.push(WEIRD[r(WEIRD.length)]);
      out[k] = a;
    } else out[k] = replaceField(v as Record<string, unknown>, r, depth + 1);
  } else if (r(8) === 0) delete out[k];
  else out[k] = WEIRD[r(WEIRD.length)];
  return out;
}

test('restore: 2000 mutated containers end in a StateError or restore, never another exception', async (t) => {
  const seedM = await seedMachine(t);
  const seed = await seedM.pc.save();
  const records = decodeContainer(seed);
  assert.ok(records.length >= 8, `the PC saves its devices (${records.map((x) => x.id).join(' ')})`);
  const r = rng(0x5eed);
  const outcomes = { refused: 0, restored: 0, rebuilt: 0 };
  let m = await seedM.fresh();
  for (let i = 0; i < 2000; i++) {
    const blob = mutate(seed, records, r);
    let accepted = false;
    try {
      m.pc.restore(blob);
      accepted = true;
      outcomes.restored++;
    } catch (e) {
      if (!(e instanceof StateError)) {
        assert.fail(`case ${i}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`);
      }
      outcomes.refused++;
    }
    // A restore may replay the guest's PV unplug (the disks leave this
    // machine for good), and an accepted one leaves mutated state: the next
    // case gets a fresh machine then, so every case meets the seed's machine.
    if (accepted || m.pc.ide.drive(0).state.kind !== 'disk') {
      m = await seedM.fresh();
      outcomes.rebuilt++;
    }
  }
  const sizes = records.map((x) => `${x.id}=${encodeContainer([x]).length - HEADER_BYTES - 4}`).join(' ');
  t.diagnostic(`seed container ${seed.length} bytes; per device: ${sizes}; outcomes ${JSON.stringify(outcomes)}`);
  // Both kinds happen: the mutations are neither all fatal nor all harmless.
  assert.ok(outcomes.refused > 1000, JSON.stringify(outcomes));
  assert.ok(outcomes.restored > 50, JSON.stringify(outcomes));
  // And the untouched state restores on a fresh machine.
  m.pc.restore(seed);
});

test('stream reader: 400 mutated streams through a file end in StateError or MigrationError, or the container', async (t) => {
  const m = await seedMachine(t);
  const seed = await m.pc.save();
  const records = decodeContainer(seed);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-stream-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 's');
  const r = rng(77);
  const notTty = { makeRaw: () => false, timeoutMs: 5000 };
  let ok = 0;
  for (let i = 0; i < 400; i++) {
    let bytes: Uint8Array = mutate(seed, records, r);
    const pre = r(3) === 0 ? Buffer.alloc(r(3 * CONSOLE_PREAMBLE), FILLER) : Buffer.alloc(0);
    const junk = r(4) === 0 ? Buffer.from([r(256)]) : Buffer.alloc(0); // a non-filler byte before the header
    bytes = Buffer.concat([pre, junk, bytes, Buffer.alloc(r(100), FILLER)]);
    fs.writeFileSync(f, bytes);
    const fd = fs.openSync(f, 'r');
    try {
      const got = await readState(fd, notTty);
      assert.ok(got.length >= HEADER_BYTES + 4);
      ok++;
    } catch (e) {
      if (!(e instanceof StateError) && !(e instanceof MigrationError)) assert.fail(`case ${i}: ${(e as Error).stack}`);
    } finally {
      fs.closeSync(fd);
    }
  }
  assert.ok(ok > 0);
});

test('console framing: filler, container, filler; the reader takes exactly the container and stops', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-cons-'));
  try {
    const f = path.join(dir, 'console');
    const blob = encodeContainer([{ id: 'x', version: 1, state: { a: 1, b: new Uint8Array([1, 2, 3]) } }]);
    const wfd = fs.openSync(f, 'w');
    const w = await writeState(wfd, blob, { makeRaw: () => true }); // as on hvc1
    fs.closeSync(wfd);
    assert.deepEqual(w, { bytes: blob.length, console: true });
    const all = fs.readFileSync(f);
    assert.ok(all.subarray(0, CONSOLE_PREAMBLE).every((x) => x === FILLER));
    assert.ok(all.length > CONSOLE_PREAMBLE + blob.length + 2048 + 256, 'the trailer outlasts the console ring and the hvc buffer');
    const rfd = fs.openSync(f, 'r');
    assert.deepEqual(Buffer.from(await readState(rfd, { makeRaw: () => true, timeoutMs: 5000 })), Buffer.from(blob));
    fs.closeSync(rfd);
    // A plain file gets the container alone (dom0: libxl's save file).
    const g = path.join(dir, 'file');
    const gfd = fs.openSync(g, 'w');
    assert.deepEqual(await writeState(gfd, blob, { makeRaw: () => false }), { bytes: blob.length, console: false });
    fs.closeSync(gfd);
    assert.deepEqual(fs.readFileSync(g), Buffer.from(blob));
    // A console that ate the header (cooked mode past its 4 KiB line): the
    // error says after how much filler and what came instead.
    const m = path.join(dir, 'mangled');
    fs.writeFileSync(m, Buffer.concat([Buffer.alloc(4095, FILLER), Buffer.from(blob).subarray(20)]));
    const mfd = fs.openSync(m, 'r');
    await assert.rejects(readState(mfd, { makeRaw: () => true, timeoutMs: 5000 }), (e: Error) => {
      assert.ok(e instanceof StateError);
      assert.match(e.message, /bad magic\); after 4095 filler bytes the stream had [0-9a-f]{32} "/);
      return true;
    });
    fs.closeSync(mfd);
    // Only filler: no state in the stream.
    const h = path.join(dir, 'filler');
    fs.writeFileSync(h, Buffer.alloc((1 << 20) + 10, FILLER));
    const hfd = fs.openSync(h, 'r');
    await assert.rejects(readState(hfd, { makeRaw: () => false, timeoutMs: 5000 }), /no saved state in the first/);
    fs.closeSync(hfd);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a stream that stalls (a console that never ends) fails after the timeout instead of hanging', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-stall-'));
  const fifo = path.join(dir, 'p');
  const { execFileSync } = await import('node:child_process');
  execFileSync('mkfifo', [fifo]);
  const rfd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const wfd = fs.openSync(fifo, fs.constants.O_WRONLY);
  try {
    const blob = encodeContainer([{ id: 'x', version: 1, state: { a: 1 } }]);
    fs.writeSync(wfd, Buffer.concat([Buffer.alloc(100, FILLER), Buffer.from(blob).subarray(0, 30)]));
    const t0 = Date.now();
    await assert.rejects(readState(rfd, { makeRaw: () => false, timeoutMs: 300 }), (e: Error) => {
      assert.ok(e instanceof MigrationError);
      assert.match(e.message, /only 30 of \d+ bytes arrived in 0.3 s/);
      return true;
    });
    assert.ok(Date.now() - t0 < 3000);
  } finally {
    fs.closeSync(wfd);
    fs.closeSync(rfd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
