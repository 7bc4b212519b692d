import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { resolveRunas, RunasError } from '../src/runas.ts';
import { connectQmpRetry } from './helpers/qmp-client.ts';

test('-runas: UID:GID as libxl passes it, or a user name from passwd', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-runas-'));
  const pw = path.join(dir, 'passwd');
  fs.writeFileSync(pw, 'root:x:0:0:root:/root:/bin/sh\nxen-qemuuser-shared:x:998:997::/:/usr/sbin/nologin\nbroken:x:a:b\n');
  assert.deepEqual(resolveRunas('131072:131071', pw), { uid: 131072, gid: 131071 });
  assert.deepEqual(resolveRunas('xen-qemuuser-shared', pw), { uid: 998, gid: 997 });
  assert.throws(() => resolveRunas('nobody-here', pw), (e: Error) => e instanceof RunasError && /no such user/.test(e.message));
  assert.throws(() => resolveRunas('broken', pw), RunasError);
  assert.throws(() => resolveRunas('x', path.join(dir, 'missing')), /cannot read/);
});

test('bin/stubdm.js -runas 65534:65534 drops privileges after opening everything and keeps serving', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-runas-'));
  const qmp = path.join(dir, 'qmp');
  const bin = new URL('../bin/stubdm.js', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [bin, '--sim', '-machine', 'xenfv', '-m', '16', '-runas', '65534:65534', '-serial', `file:${path.join(dir, 's')}`,
      '-chardev', `socket,id=q,path=${qmp},server=on,wait=off`, '-mon', 'chardev=q,mode=control'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  const q = await connectQmpRetry(qmp);
  assert.ok(q, stderr);
  assert.ok(q.greeting.QMP, 'QMP greeting');
  const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
  assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
  assert.match(status, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
  q.sock.destroy();
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
});

test('-runas with an unknown user: one line, exit 1', async () => {
  const bin = new URL('../bin/stubdm.js', import.meta.url).pathname;
  const child = spawn(process.execPath, [bin, '--sim', '-machine', 'xenfv', '-runas', 'no-such-user-xyz', '--log-level', 'silent'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  assert.equal(code, 1);
  assert.equal(stderr, 'stubdm: -runas no-such-user-xyz: no such user (give a user name or UID:GID)\n');
});
