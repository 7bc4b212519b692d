/**
 * Socket and pipe chardevs on real sockets and FIFOs: data both ways, one
 * peer at a time, hang-ups and reconnects, wait=on, and the memory bound
 * when a peer never reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { pino } from 'pino';
import { ChardevError, SOCKET_MAX_PENDING, SocketBackend, openChardev, type CharBackend, type SocketSpec } from '../../src/chardev/index.ts';

const log = pino({ level: process.env.TLOG ?? "silent" });
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-sock-'));
const spec = (o: Partial<SocketSpec>): SocketSpec => ({
  backend: 'socket', path: null, fd: null, host: null, port: null, server: false, wait: false, nodelay: false, reconnect: 0, ...o,
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves with what `sock` received once it holds `n` bytes (bounded: 5 s). */
async function readN(sock: net.Socket, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  const deadline = Date.now() + 5000;
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer): void => {
      parts.push(d);
      got += d.length;
      if (got >= n) {
        sock.off('data', onData);
        resolve(Buffer.concat(parts));
      }
    };
    sock.on('data', onData);
    const t = setInterval(() => {
      if (Date.now() > deadline) {
        clearInterval(t);
        reject(new Error(`only ${got} of ${n} bytes`));
      } else if (got >= n) clearInterval(t);
    }, 50);
  });
}

/** Collects what the backend delivers to the guest side. */
function receiver(b: CharBackend): { bytes: () => string } {
  let s = '';
  b.setReceiver((d) => (s += Buffer.from(d).toString('latin1')));
  return { bytes: () => s };
}

async function until(f: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if (f()) return;
    await sleep(20);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('tcp server (wait=off): both directions, one client at a time, output dropped while nobody listens, a new client after a hang-up', async () => {
  const b = (await openChardev('serial0', spec({ host: '127.0.0.1', port: 0, server: true }), log)) as SocketBackend;
  const port = b.port!;
  assert.ok(port > 0);
  assert.equal(b.filename, `disconnected:tcp:127.0.0.1:${port},server=on`);
  const rx = receiver(b);
  b.write(Buffer.from('lost'));
  assert.equal(b.dropped, 4, 'no peer: the bytes are counted and gone');

  const c1 = net.connect(port, '127.0.0.1');
  await once(c1, 'connect');
  await until(() => b.filename.includes('<->'), 'the connection');
  assert.match(b.filename, new RegExp(`^tcp:127\\.0\\.0\\.1:${port},server=on <-> 127\\.0\\.0\\.1:\\d+$`));
  const got = readN(c1, 6);
  for (const c of Buffer.from('hello\n')) b.writeByte(c);
  assert.equal((await got).toString(), 'hello\n');
  c1.write('typed');
  await until(() => rx.bytes() === 'typed', 'input from the client');

  // A second client while the first is connected is turned away.
  const c2 = net.connect(port, '127.0.0.1');
  c2.on('error', () => {});
  await once(c2, 'close');
  assert.equal(b.connections, 1);

  c1.destroy();
  await until(() => b.filename.startsWith('disconnected:'), 'the hang-up');
  b.write(Buffer.from('xy'));
  assert.equal(b.dropped, 6);

  const c3 = net.connect(port, '127.0.0.1');
  await once(c3, 'connect');
  await until(() => b.connections === 2, 'the second client');
  const got3 = readN(c3, 3);
  b.write(Buffer.from('abc'));
  assert.equal((await got3).toString(), 'abc');
  const ended = once(c3.resume(), 'end');
  await b.close();
  await ended;
  c3.destroy();
});

test('tcp server with wait=on: start-up waits for the first client', async () => {
  // Find a free port, then listen on it with wait=on.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  let opened = false;
  const p = openChardev('serial0', spec({ host: '127.0.0.1', port, server: true, wait: true }), log).then((b) => {
    opened = true;
    return b;
  });
  await sleep(200);
  assert.equal(opened, false, 'nobody connected yet');
  const c = net.connect(port, '127.0.0.1');
  const b = await p;
  assert.match(b.filename, /<->/);
  await b.close();
  c.destroy();
});

test('tcp client: connects at start, a refused connection is one ChardevError line, reconnect=S retries', async () => {
  const peers: net.Socket[] = [];
  const srv = net.createServer((s) => peers.push(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const b = await openChardev('serial0', spec({ host: '127.0.0.1', port, nodelay: true }), log);
  await until(() => peers.length === 1, 'the accept');
  assert.match(b.filename, new RegExp(`^tcp:127\\.0\\.0\\.1:${port} <-> 127\\.0\\.0\\.1:${port}$`));
  const rx = receiver(b);
  const got = readN(peers[0], 2);
  b.write(Buffer.from('ok'));
  assert.equal((await got).toString(), 'ok');
  peers[0].write('in');
  await until(() => rx.bytes() === 'in', 'input');
  await b.close();
  await new Promise<void>((r) => srv.close(() => r()));

  await assert.rejects(
    openChardev('serial1', spec({ host: '127.0.0.1', port }), log),
    (e: Error) => e instanceof ChardevError && e.message === `chardev serial1: cannot connect to tcp:127.0.0.1:${port}: ECONNREFUSED`,
  );

  // reconnect=1: start-up goes on without the peer; the connection comes once it listens.
  const r = (await openChardev('serial2', spec({ host: '127.0.0.1', port, reconnect: 1 }), log)) as SocketBackend;
  assert.equal(r.filename, `disconnected:tcp:127.0.0.1:${port}`);
  const late: net.Socket[] = [];
  const srv2 = net.createServer((s) => late.push(s));
  await new Promise<void>((res) => srv2.listen(port, '127.0.0.1', res));
  await until(() => late.length === 1, 'the reconnect');
  // The peer hangs up: the client tries again.
  late[0].destroy();
  await until(() => late.length === 2, 'the reconnect after a hang-up');
  assert.equal(r.connections, 2);
  await r.close();
  for (const s of late) s.destroy();
  await new Promise<void>((res) => srv2.close(() => res()));
});

test('unix server and client: a stale socket file is replaced, close removes it', async () => {
  const dir = tmp();
  const p = path.join(dir, 'com1.sock');
  // A socket file left behind (an earlier run killed): bind must not fail on it.
  const stale = net.createServer();
  await new Promise<void>((r) => stale.listen(p, r));
  assert.ok(fs.lstatSync(p).isSocket());
  const b = await openChardev('serial0', spec({ path: p, server: true }), log);
  const c = net.connect(p);
  await once(c, 'connect');
  await until(() => b.filename === `unix:${p},server=on <-> ${p}`, 'the connection');
  const got = readN(c, 3);
  b.write(Buffer.from('uds'));
  assert.equal((await got).toString(), 'uds');

  // The server has its one client: a second one is accepted by the kernel, then turned away.
  const client = await openChardev('serial1', spec({ path: p }), log);
  await until(() => client.filename === `disconnected:unix:${p}`, 'the second client turned away');
  assert.equal((b as SocketBackend).connections, 1);
  await client.close();
  await b.close();
  c.destroy();
  assert.equal(fs.existsSync(p), false, 'close removes the socket file');
  stale.close();
});

test(`a peer that never reads: memory stays bounded (${SOCKET_MAX_PENDING} bytes plus kernel buffers), the rest is dropped and counted`, async () => {
  const dir = tmp();
  const p = path.join(dir, 'slow.sock');
  const b = (await openChardev('serial0', spec({ path: p, server: true }), log)) as SocketBackend;
  const c = net.connect(p);
  c.pause(); // never reads
  await once(c, 'connect');
  await until(() => b.connections === 1, 'the connection');
  const total = 32 * 2 ** 20;
  const chunk = Buffer.alloc(64 * 1024, 0x55);
  for (let i = 0; i < total / chunk.length; i++) {
    b.write(chunk);
    if (i % 16 === 0) await new Promise((r) => setImmediate(r));
  }
  await sleep(100);
  const accepted = total - b.dropped;
  assert.ok(b.dropped > 0, 'some output was dropped');
  // What was not dropped sits in the writer (bounded) or the kernel's socket buffers (a few hundred KiB).
  assert.ok(accepted < SOCKET_MAX_PENDING + 2 * 2 ** 20, `accepted ${accepted} bytes for a peer that reads nothing`);
  const t0 = Date.now();
  await b.close();
  assert.ok(Date.now() - t0 < 3000, 'close does not wait for the peer forever');
  c.destroy();
});

function mkfifo(p: string): void {
  execFileSync('mkfifo', [p]);
}

test('pipe: PATH.in to the guest, guest output to PATH.out; PATH alone when those are missing; one line when none is there', async () => {
  const dir = tmp();
  const base = path.join(dir, 'com1');
  mkfifo(`${base}.in`);
  mkfifo(`${base}.out`);
  const b = await openChardev('serial0', { backend: 'pipe', path: base }, log);
  assert.equal(b.filename, `pipe:${base}`);
  const rx = receiver(b);
  // The other end: a reader of .out and a writer of .in (opened read+write: no blocking open).
  const outFd = fs.openSync(`${base}.out`, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  const reader = new net.Socket({ fd: outFd, readable: true, writable: false });
  const got = readN(reader, 5);
  b.write(Buffer.from('guest'));
  assert.equal((await got).toString(), 'guest');
  const inFd = fs.openSync(`${base}.in`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  fs.writeSync(inFd, 'host');
  await until(() => rx.bytes() === 'host', 'input through .in');
  fs.closeSync(inFd);
  await b.close();
  reader.destroy();

  const one = path.join(dir, 'both');
  mkfifo(one);
  const b2 = await openChardev('serial1', { backend: 'pipe', path: one }, log);
  assert.equal(b2.filename, `pipe:${one}`);
  await b2.close();

  await assert.rejects(openChardev('serial2', { backend: 'pipe', path: path.join(dir, 'none') }, log), (e: Error) =>
    e instanceof ChardevError && /neither .*none\.in and .*none\.out nor .*none exist/.test(e.message),
  );
  const reg = path.join(dir, 'plain');
  fs.writeFileSync(reg, '');
  await assert.rejects(openChardev('serial3', { backend: 'pipe', path: reg }, log), (e: Error) =>
    e instanceof ChardevError && /is not a FIFO/.test(e.message),
  );
});
