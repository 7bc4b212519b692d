// dm_restrict as libxl 4.17 starts a dom0 device model (-xen-domid-restrict,
// -chroot DIR, -runas UID:GID, -S, QMP on a socket): the order (restrict once
// QMP listens, no xenstore write ever, chroot, then the user), the one-line
// failures, and a real child process whose root, uid and probe are checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { pino } from 'pino';
import { parseArgs } from '../src/cli/index.ts';
import { start } from '../src/main.ts';
import { SimRestriction } from '../src/sim/index.ts';
import { RestrictError } from '../src/core/host.ts';
import { dropPrivileges, enterChroot, planConfinement, RunasError } from '../src/runas.ts';
import { connectQmp, connectQmpRetry } from './helpers/qmp-client.ts';

const silent = pino({ level: 'silent' });
const BIN = new URL('../bin/stubdm.js', import.meta.url).pathname;

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-restrict-'));
}

function argv(dir: string, extra: string[]): string[] {
  return [
    '-xen-domid', '1', '-no-shutdown',
    '-chardev', `socket,id=libxl-cmd,path=${path.join(dir, 'qmp')},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-nodefaults', '-name', 'hvm1', '-vnc', 'none', '-display', 'none', '-serial', `file:${path.join(dir, 'serial')}`,
    '-net', 'none', '-machine', 'xenfv,suppress-vmdesc=on', '-m', '16', '--sim', ...extra,
  ];
}

async function hmp(q: Awaited<ReturnType<typeof connectQmp>>, line: string): Promise<string> {
  return (await q.cmd('human-monitor-command', { 'command-line': line })).return as string;
}

test('-xen-domid-restrict -S: restricted after QMP listens, never writes xenstore, libxl sees prelaunch then cont', async () => {
  const dir = tmp();
  const qmpPath = path.join(dir, 'qmp');
  const { config } = await parseArgs(argv(dir, ['-S', '-xen-domid-restrict']));
  const atRestrict: boolean[] = [];
  const orig = SimRestriction.prototype.restrict;
  SimRestriction.prototype.restrict = function (this: SimRestriction): void {
    atRestrict.push(fs.existsSync(qmpPath));
    orig.call(this);
  };
  let dm;
  try {
    dm = await start(config, { log: silent, signals: false });
  } finally {
    SimRestriction.prototype.restrict = orig;
  }
  const sim = dm.sim!;
  try {
    assert.deepEqual(atRestrict, [true], 'restricted once, with the QMP socket already listening');
    assert.equal(sim.restriction.restricted, true);
    // libxl's dm_restrict start-up asks QMP, and a restricted xenstore handle is /dev/null: no state key.
    assert.equal(sim.store.read('device-model/1/state'), null);
    const q = await connectQmp(qmpPath);
    await q.cmd('qmp_capabilities');
    assert.equal((await q.cmd('query-status')).return.status, 'prelaunch');
    assert.match(await hmp(q, 'info restrict'), /^restrict=on domid=1 guest=ok other=32751 dm_op=EPERM map=EPERM evtchn=EPERM\r\n$/);
    await q.cmd('cont');
    assert.equal(sim.channel.enabled, true);
    assert.equal((await q.cmd('query-status')).return.status, 'running');
    assert.equal(sim.store.writesAfterClose, 0, 'no xenstore write after the restriction, cont included');
    assert.equal(sim.store.read('device-model/1/state'), null);
    await q.close();
  } finally {
    await dm.shutdown('test');
  }
});

test('without -xen-domid-restrict the probe says off and ESRCH (the control: the check cannot pass vacuously)', async () => {
  const dir = tmp();
  const { config } = await parseArgs(argv(dir, []));
  const dm = await start(config, { log: silent, signals: false });
  try {
    assert.equal(dm.sim!.store.read('device-model/1/state'), 'running');
    const q = await connectQmp(path.join(dir, 'qmp'));
    await q.cmd('qmp_capabilities');
    assert.match(await hmp(q, 'info restrict'), /^restrict=off domid=1 guest=ok other=32751 dm_op=ESRCH map=ESRCH evtchn=ESRCH\r\n$/);
    await q.close();
  } finally {
    await dm.shutdown('test');
  }
});

test('a failed restriction stops start-up with its one line, and unwinds (the QMP socket is gone)', async () => {
  const dir = tmp();
  const { config } = await parseArgs(argv(dir, ['-S', '-xen-domid-restrict']));
  const orig = SimRestriction.prototype.restrict;
  SimRestriction.prototype.restrict = function (this: SimRestriction): void {
    this.fail = true;
    orig.call(this);
  };
  try {
    await assert.rejects(start(config, { log: silent, signals: false }), (e: Error) =>
      /^stubdm: -xen-domid-restrict: xentoolcore_restrict_all\(1\) failed/.test(e.message) && !e.message.includes('\n') && !(e instanceof RestrictError),
    );
  } finally {
    SimRestriction.prototype.restrict = orig;
  }
  assert.equal(fs.existsSync(path.join(dir, 'qmp')), false);
});

test('-chroot and -runas are checked before anything opens, with one line each', () => {
  const dir = tmp();
  const file = path.join(dir, 'f');
  fs.writeFileSync(file, '');
  assert.throws(() => planConfinement('/nonexistent-stubdm', null), (e: Error) => e instanceof RunasError && e.message === '-chroot /nonexistent-stubdm: ENOENT');
  assert.throws(() => planConfinement(file, null), (e: Error) => e.message === `-chroot ${file}: not a directory`);
  const pw = path.join(dir, 'passwd');
  fs.writeFileSync(pw, 'xen-qemuuser-shared:x:998:997::/:/usr/sbin/nologin\n');
  // The name is resolved now: inside the chroot there is no passwd to read.
  assert.deepEqual(planConfinement(dir, 'xen-qemuuser-shared', pw), { chroot: dir, runas: { spec: 'xen-qemuuser-shared', uid: 998, gid: 997 } });
  assert.deepEqual(planConfinement(null, '131073:131072', pw).runas, { spec: '131073:131072', uid: 131073, gid: 131072 });
});

test('chroot and the user switch: failures are one line; a user that can become root again is refused', () => {
  assert.throws(() => enterChroot('/x', { chroot: () => -1 }), (e: Error) => e.message === '-chroot /x: EPERM (chroot needs root: -runas comes after it)');
  assert.throws(() => enterChroot('/x', { chroot: () => -2 }), (e: Error) => e.message === '-chroot /x: ENOENT');
  const calls: string[] = [];
  const sticky = {
    setgroups: (g: readonly (number | string)[]) => void calls.push(`setgroups ${g.join()}`),
    setgid: (g: number | string) => void calls.push(`setgid ${g}`),
    setuid: (u: number | string) => void calls.push(`setuid ${u}`),
  };
  assert.throws(() => dropPrivileges({ spec: '100:100', uid: 100, gid: 100 }, sticky), /still able to become root after switching to uid 100/);
  assert.deepEqual(calls, ['setgroups 100', 'setgid 100', 'setuid 100', 'setuid 0']);
  const real = {
    setgroups: () => {},
    setgid: () => {},
    setuid: (u: number | string) => {
      if (u === 0) throw new Error('EPERM');
    },
  };
  assert.doesNotThrow(() => dropPrivileges({ spec: '100:100', uid: 100, gid: 100 }, real));
});

test('bin/stubdm.js as libxl runs it with dm_restrict: root is the chroot, uid the range user, QMP and the probe work', { skip: process.getuid?.() !== 0 && 'needs root (chroot, setuid)' }, async () => {
  const dir = tmp();
  const root = path.join(dir, 'qemu-root-1');
  fs.mkdirSync(root, { mode: 0o000 }); // as libxl makes it
  const child = spawn(process.execPath, [BIN, ...argv(dir, ['-S', '-xen-domid-restrict', '-chroot', root, '-runas', '65534:65534'])], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  try {
    const q = await connectQmpRetry(path.join(dir, 'qmp'));
    assert.ok(q, stderr);
    await q.cmd('qmp_capabilities');
    // QMP answers before the last steps are done only if start-up is still running: wait for the log line.
    for (let i = 0; i < 200 && !/dropped privileges/.test(stderr); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(stderr, /restricted to the guest[\s\S]*changed root[\s\S]*dropped privileges/, 'in this order');
    assert.equal(fs.readlinkSync(`/proc/${child.pid}/root`), root);
    assert.equal(fs.readlinkSync(`/proc/${child.pid}/cwd`), root);
    const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.match(status, /^Groups:\s+65534\s*$/m);
    assert.equal((await q.cmd('query-status')).return.status, 'prelaunch');
    assert.match(await hmp(q, 'info restrict'), /^restrict=on .*dm_op=EPERM/);
    await q.cmd('cont');
    assert.equal((await q.cmd('query-status')).return.status, 'running');
    q.sock.destroy();
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, stderr);
});

test('in a stub domain (libxl passes -xen-domid-restrict and a dom0 -chroot there too) both are reported, not applied', async () => {
  const { config } = await parseArgs(['-xen-domid', '1', '-machine', 'xenfv', '-m', '16', '-xen-domid-restrict', '-chroot', '/var/run/xen/qemu-root-1']);
  assert.equal(config.stubdom, true);
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
  // Xen is not here: start() stops at opening it, after the stub-domain decision and without refusing the missing dom0 directory.
  await assert.rejects(start(config, { log, signals: false }), (e: Error) => !/-chroot/.test(e.message));
  assert.ok(lines.some((l) => /dm_restrict in a stub domain: -xen-domid-restrict and -chroot are not applied/.test(l)), lines.join(''));
});
