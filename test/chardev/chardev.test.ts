import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { pino } from 'pino';
import { ChardevError, flushAll, openChardev, type CharBackend } from '../../src/chardev/index.ts';
import { BatchedWriter } from '../../src/chardev/writer.ts';

const log = pino({ level: 'silent' });

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-chardev-'));
}

test('file: truncates at open, batches writes off the caller, flush puts everything on disk', async () => {
  const dir = tmp();
  const f = path.join(dir, 'serial.log');
  fs.writeFileSync(f, 'old contents that must go');
  const b = await openChardev('serial0', { backend: 'file', path: f, append: false }, log);
  assert.equal(b.filename, `file:${f}`);
  assert.equal(fs.readFileSync(f, 'latin1'), '', 'QEMU truncates');
  for (const c of Buffer.from('hello\n')) b.writeByte(c);
  assert.equal(fs.readFileSync(f, 'latin1'), '', 'nothing written synchronously');
  await b.flush();
  assert.equal(fs.readFileSync(f, 'latin1'), 'hello\n');
  const big = Buffer.alloc(100_000, 0x41);
  b.write(big);
  await b.close();
  assert.equal(fs.statSync(f).size, 6 + 100_000);
  await b.close(); // idempotent
});

test('file: an unwritable path is one ChardevError line', async () => {
  await assert.rejects(
    openChardev('serial0', { backend: 'file', path: '/nonexistent/dir/x.log', append: false }, log),
    (e: Error) => e instanceof ChardevError && /cannot open serial output file \/nonexistent/.test(e.message),
  );
});

test('BatchedWriter bounds memory when the sink stalls, and counts what it drops', async () => {
  const chunks: Buffer[] = [];
  let release: (() => void) | null = null;
  const w = new BatchedWriter(
    (c, done) => {
      chunks.push(Buffer.from(c));
      release = () => done(null);
    },
    () => {},
    1000,
  );
  for (let i = 0; i < 5000; i++) w.writeByte(i & 0xff);
  assert.equal(w.dropped, 4000);
  await new Promise((r) => setImmediate(r));
  assert.equal(chunks.length, 1);
  const p = w.flush();
  release!();
  await p;
  assert.equal(w.written, 1000);
});

test('tty path (a pty slave): raw, read+write both ways', { skip: !hasCc() && 'no C compiler' }, async () => {
  const dir = tmp();
  const helper = path.join(dir, 'stubdm-pty');
  execFileSync('cc', ['-O2', '-o', helper, path.resolve('native/stubdm-pty.c')]);
  process.env.STUBDM_PTY_HELPER = helper;
  const pty = await openChardev('serial0', { backend: 'pty' }, log);
  const m = /^pty:(\/dev\/pts\/\d+)$/.exec(pty.filename);
  assert.ok(m, pty.filename);
  // The other end: open the slave as a device path, the way -serial /dev/hvc3 is opened.
  const dev = await openChardev('serial1', { backend: 'tty', path: m[1] }, log);
  const fromPty: Buffer[] = [];
  const fromDev: Buffer[] = [];
  pty.setReceiver((d) => fromPty.push(Buffer.from(d)));
  dev.setReceiver((d) => fromDev.push(Buffer.from(d)));
  pty.write(Buffer.from('guest says hi\n'));
  dev.write(Buffer.from('user types\r'));
  await pty.flush();
  await dev.flush();
  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  };
  await until(() => Buffer.concat(fromDev).length >= 14 && Buffer.concat(fromPty).length >= 11);
  assert.equal(Buffer.concat(fromDev).toString(), 'guest says hi\n', 'raw: no \\n -> \\r\\n translation');
  assert.equal(Buffer.concat(fromPty).toString(), 'user types\r', 'raw: no echo, no line editing');
  await dev.close();
  await pty.close();
  delete process.env.STUBDM_PTY_HELPER;
});

test('pty without its helper: a clear ChardevError naming the fix', async () => {
  process.env.STUBDM_PTY_HELPER = '/nonexistent/stubdm-pty';
  try {
    await assert.rejects(openChardev('serial0', { backend: 'pty' }, log), /scripts\/build-native\.sh/);
  } finally {
    delete process.env.STUBDM_PTY_HELPER;
  }
});

test('null swallows output; a socket that cannot listen is one ChardevError line', async () => {
  const n = await openChardev('serial0', { backend: 'null' }, log);
  n.writeByte(1);
  await n.close();
  await assert.rejects(
    openChardev('c', { backend: 'socket', path: '/nonexistent/dir/x', fd: null, host: null, port: null, server: true, wait: false, nodelay: false, reconnect: 0 }, log),
    (e: Error) => e instanceof ChardevError && /chardev c: cannot listen on unix:\/nonexistent\/dir\/x,server=on: E[A-Z]+$/.test(e.message),
  );
});

function hasCc(): boolean {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('flushAll: what the guest wrote is in the file when it resolves; a stuck backend is counted, not waited for', async () => {
  const dir = tmp();
  const f = path.join(dir, 'serial.log');
  const b = await openChardev('serial0', { backend: 'file', path: f, append: false }, log);
  for (const c of Buffer.from('E2E sr n=115\n')) b.writeByte(c);
  let stuckFlushes = 0;
  const stuck = { flush: () => (stuckFlushes++, new Promise<void>(() => {})) } as unknown as CharBackend;
  assert.equal(await flushAll([b], 5000), 0);
  assert.equal(fs.readFileSync(f, 'latin1'), 'E2E sr n=115\n');
  for (const c of Buffer.from('more\n')) b.writeByte(c);
  // 1.5 s: the file's own fsync must fit in it on a loaded host (50 ms did not).
  assert.equal(await flushAll([b, stuck], 1500), 1, 'the stuck one is reported after the deadline');
  assert.equal(stuckFlushes, 1);
  assert.equal(fs.readFileSync(f, 'latin1'), 'E2E sr n=115\nmore\n');
  await b.close();
});
