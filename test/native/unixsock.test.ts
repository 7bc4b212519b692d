// The unixsock addon: descriptors travel with the byte they were sent with
// (as libxl sends add-fd), recv says -1 when nothing is there and 0 at EOF,
// the watcher wakes for readable and writable, access modes and raw mode.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EV_READABLE, EV_WRITABLE, loadUnixSock, type UnixSock } from '../../src/qmp/unixsock.ts';

let us: UnixSock;
before(() => {
  execFileSync('bash', [fileURLToPath(new URL('../../scripts/build-native.sh', import.meta.url))], { stdio: 'inherit' });
  us = loadUnixSock();
});

function pair(): { dir: string; lfd: number; a: number; b: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-us-'));
  const p = path.join(dir, 's');
  const lfd = us.listen(p, 4);
  const a = us.connect(p);
  let b = -1;
  for (let i = 0; i < 100 && b < 0; i++) b = us.accept(lfd);
  assert.ok(b >= 0, 'accepted');
  return { dir, lfd, a, b };
}

test('a descriptor sent with one byte arrives with that byte, not with the rest', () => {
  const { dir, lfd, a, b } = pair();
  try {
    const file = path.join(dir, 'f');
    const fd = fs.openSync(file, 'w');
    const msg = Buffer.from('{"execute":"add-fd"}\r\n');
    assert.equal(us.send(a, msg, 0, 1, [fd]), 1);
    assert.equal(us.send(a, msg, 1, msg.length - 1), msg.length - 1);
    fs.closeSync(fd); // the sender's copy
    const buf = new Uint8Array(64);
    const fds: number[] = [];
    const n1 = us.recv(b, buf, fds);
    assert.equal(n1, 1, 'recvmsg stops at the message that carries descriptors');
    assert.equal(fds.length, 1);
    assert.equal(us.accessMode(fds[0]), 1, 'O_WRONLY');
    fs.writeSync(fds[0], 'written through the passed fd');
    fs.closeSync(fds[0]);
    assert.equal(fs.readFileSync(file, 'utf8'), 'written through the passed fd');
    const more: number[] = [];
    assert.equal(us.recv(b, buf, more), msg.length - 1);
    assert.equal(more.length, 0);
    assert.equal(us.recv(b, buf, more), -1, 'nothing pending: -1');
    us.close(a);
    assert.equal(us.recv(b, buf, more), 0, 'EOF');
    assert.equal(us.accept(lfd), -1, 'no connection pending: -1');
    assert.throws(() => us.send(b, msg, 0, 1, [1, 2, 3, 4, 5, 6, 7, 8, 9]), RangeError);
    assert.throws(() => us.send(b, msg, 5, 100), TypeError);
  } finally {
    us.close(b);
    us.close(lfd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('watch wakes for readable, and for writable only when asked', async () => {
  const { dir, lfd, a, b } = pair();
  try {
    const seen: number[] = [];
    let wake = () => {};
    const w = us.watch(b, EV_READABLE, (status, ev) => {
      assert.equal(status, 0);
      seen.push(ev);
      us.recv(b, new Uint8Array(16), []);
      wake();
    });
    const got = new Promise<void>((r) => (wake = r));
    us.send(a, Buffer.from('x'), 0, 1);
    await got;
    assert.deepEqual(seen, [EV_READABLE]);
    const writable = new Promise<void>((r) => (wake = r));
    w.set(EV_READABLE | EV_WRITABLE);
    await writable;
    assert.ok(seen[seen.length - 1] & EV_WRITABLE);
    w.stop();
    w.stop();
  } finally {
    us.close(a);
    us.close(b);
    us.close(lfd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('access modes, raw mode only for ttys, errors with codes', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-us-'));
  try {
    const f = path.join(dir, 'f');
    fs.writeFileSync(f, '');
    const r = fs.openSync(f, 'r');
    const rw = fs.openSync(f, 'r+');
    assert.equal(us.accessMode(r), 0);
    assert.equal(us.accessMode(rw), 2);
    assert.equal(us.makeRaw(r), false, 'a file is not a tty');
    fs.closeSync(r);
    fs.closeSync(rw);
    assert.throws(() => us.accessMode(r), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
    assert.throws(() => us.connect(path.join(dir, 'nobody')), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    assert.throws(() => us.listen('/' + 'x'.repeat(200), 1), (e: NodeJS.ErrnoException) => e.code === 'ENAMETOOLONG');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
