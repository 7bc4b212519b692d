/**
 * Save and restore through the device model's own doors, the way libxl
 * drives them (docs/xen-contract.md §11, §15), over the simulator:
 * QMP stop + add-fd (descriptor passed with SCM_RIGHTS) +
 * xen-save-devices-state into /dev/fdset/N; a second device model started
 * with -S -incoming fd:N answers `paused` and holds the same device state;
 * -incoming defer + migrate-incoming / xen-load-devices-state; bad streams
 * stop start-up with one line; dirty logging reports what the device model
 * writes into guest RAM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseArgs } from '../../src/cli/index.ts';
import { start, type Dm } from '../../src/main.ts';
import { FORMAT_VERSION, HEADER_BYTES } from '../../src/machine/container.ts';
import { connectQmp } from '../helpers/qmp-client.ts';
import { connectFdQmp } from '../helpers/native-qmp.ts';

const silent = pino({ level: 'silent' });
const COM1 = 0x3f8;

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-save-'));
}

async function dm(dir: string, extra: string[], name = 'qmp'): Promise<{ dm: Dm; qmp: string }> {
  const qmp = path.join(dir, name);
  const { config } = await parseArgs([
    '-xen-domid', '1', '-chardev', `socket,id=libxl-cmd,path=${qmp},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-serial', 'null', '-machine', 'xenfv', '-m', '16', '--sim', ...extra,
  ]);
  return { dm: await start(config, { log: silent, signals: false }), qmp };
}

/** Guest-visible UART state a restore must bring back: scratch, LCR, IER. */
function uartRegs(d: Dm): number[] {
  const s = d.sim!;
  return [s.inb(COM1 + 7), s.inb(COM1 + 3), s.inb(COM1 + 1)];
}

/** Run the first DM, let the "guest" program COM1, save its state through add-fd into `file`. */
async function saveOne(dir: string, file: string): Promise<{ regs: number[]; bytes: number }> {
  const a = await dm(dir, ['-S'], 'qmp-a');
  try {
    const c = await connectQmp(a.qmp);
    await c.cmd('qmp_capabilities');
    await c.cmd('cont');
    const s = a.dm.sim!;
    s.outb(COM1 + 7, 0x5a); // scratch
    s.outb(COM1 + 3, 0x1b); // 8E1... LCR
    s.outb(COM1 + 1, 0x03); // IER
    const regs = uartRegs(a.dm);
    await c.close();

    // libxl_qmp.c: stop, add-fd (the open file with SCM_RIGHTS), xen-save-devices-state, disconnect.
    const q = await connectFdQmp(a.qmp);
    assert.deepEqual(await q.cmd('stop'), { return: {}, id: 2 });
    assert.equal(s.channel.enabled, false, 'stopped: the ioreq server is off');
    const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o600);
    const added = await q.cmd('add-fd', undefined, fd);
    fs.closeSync(fd); // libxl closes its copy at once
    assert.equal(typeof added.return['fdset-id'], 'number', JSON.stringify(added));
    const sets = (await q.cmd('query-fdsets')).return;
    assert.equal(sets.length, 1);
    assert.equal(sets[0]['fdset-id'], added.return['fdset-id']);
    const saved = await q.cmd('xen-save-devices-state', { filename: `/dev/fdset/${added.return['fdset-id']}`, live: false });
    assert.deepEqual(saved.return, {}, JSON.stringify(saved));
    q.close();
    // The connection's descriptors go with it.
    const c2 = await connectQmp(a.qmp);
    await c2.cmd('qmp_capabilities');
    for (let i = 0; i < 50 && (await c2.cmd('query-fdsets')).return.length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual((await c2.cmd('query-fdsets')).return, []);
    await c2.close();
    return { regs, bytes: fs.statSync(file).size };
  } finally {
    await a.dm.shutdown('test');
  }
}

test('xen-save-devices-state into an add-fd set, then -S -incoming fd:N: paused, same device state, runs after cont', async () => {
  const dir = tmp();
  const file = path.join(dir, 'qemu-save.1');
  const { regs, bytes } = await saveOne(dir, file);
  assert.ok(bytes > HEADER_BYTES, `state written (${bytes} bytes)`);
  assert.equal(fs.readFileSync(file).subarray(0, 8).toString('latin1'), 'STUBDMSV');

  const fd = fs.openSync(file, 'r'); // libxl: open(saved_state, O_RDONLY), -incoming fd:N
  const b = await dm(dir, ['-S', '-incoming', `fd:${fd}`], 'qmp-b');
  try {
    assert.equal(b.dm.sim!.channel.enabled, false, 'not serving before cont');
    const c = await connectQmp(b.qmp);
    await c.cmd('qmp_capabilities');
    // libxl_dm.c device_model_qmp_cb: a restored model must say "paused".
    assert.equal((await c.cmd('query-status')).return.status, 'paused');
    await c.cmd('cont');
    assert.equal(b.dm.sim!.channel.enabled, true);
    assert.deepEqual(uartRegs(b.dm), regs);
    await c.close();
  } finally {
    await b.dm.shutdown('test');
  }
});

test('-incoming with a bad stream: one clear line, nothing runs', async () => {
  const dir = tmp();
  const good = path.join(dir, 'good');
  await saveOne(dir, good);
  const blob = fs.readFileSync(good);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['empty', Buffer.alloc(0), /truncated/],
    ['truncated header', blob.subarray(0, 10), /truncated/],
    ['truncated body', blob.subarray(0, blob.length - 7), /truncated/],
    ['bit flip', Buffer.from(blob.map((v, i) => (i === 40 ? v ^ 4 : v))), /corrupt|checksum/],
    ['not ours', Buffer.from('QEVM\x00\x00\x00\x03' + 'x'.repeat(100)), /bad magic|not a stubdm/],
    ['newer format', (() => { const b = Buffer.from(blob); b.writeUInt32LE(FORMAT_VERSION + 1, 8); return b; })(), /newer/],
    ['huge length', (() => { const b = Buffer.from(blob); b.writeUInt32LE(0xffffffff, 12); return b; })(), /implausible length/],
  ];
  for (const [what, bytes, want] of cases) {
    const f = path.join(dir, `bad-${what.replace(/ /g, '-')}`);
    fs.writeFileSync(f, bytes);
    const fd = fs.openSync(f, 'r');
    await assert.rejects(
      dm(dir, ['-S', '-incoming', `fd:${fd}`], `q-${what.length}`),
      (e: Error) => {
        assert.match(e.message, want, what);
        assert.match(e.message, /^stubdm: -incoming: /, what);
        assert.equal(e.message.includes('\n'), false, `${what}: one line`);
        return true;
      },
    );
  }
  await assert.rejects(dm(dir, ['-incoming', 'tcp:0:4444']), /only fd:N, file:PATH and defer/);
});

test('-incoming defer: inmigrate until migrate-incoming loads the state; cont refused before; xen-load-devices-state reloads', async () => {
  const dir = tmp();
  const file = path.join(dir, 'state');
  const { regs } = await saveOne(dir, file);
  const b = await dm(dir, ['-S', '-incoming', 'defer'], 'qmp-d');
  try {
    const c = await connectQmp(b.qmp);
    await c.cmd('qmp_capabilities');
    assert.equal((await c.cmd('query-status')).return.status, 'inmigrate');
    assert.match((await c.cmd('cont')).error.desc, /no device state loaded/);
    assert.match((await c.cmd('migrate-incoming', { uri: 'exec:cat' })).error.desc, /not supported/);
    assert.deepEqual((await c.cmd('migrate-incoming', { uri: `file:${file}` })).return, {});
    assert.equal((await c.cmd('query-status')).return.status, 'paused');
    assert.match((await c.cmd('migrate-incoming', { uri: `file:${file}` })).error.desc, /-incoming/);
    // A corrupt file through xen-load-devices-state: refused before any device changed, machine still usable.
    const bad = path.join(dir, 'bad');
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] ^= 0xff;
    fs.writeFileSync(bad, bytes);
    assert.match((await c.cmd('xen-load-devices-state', { filename: bad })).error.desc, /corrupt|checksum/);
    assert.match((await c.cmd('xen-load-devices-state', { filename: 'relative/path' })).error.desc, /not absolute/);
    assert.match((await c.cmd('xen-load-devices-state', { filename: '/dev/fdset/77' })).error.desc, /fd set 77 does not exist/);
    assert.match((await c.cmd('xen-load-devices-state', { filename: '/dev/fdset/x1' })).error.desc, /bad fd set name/);
    assert.deepEqual((await c.cmd('xen-load-devices-state', { filename: file })).return, {});
    assert.deepEqual((await c.cmd('cont')).return, {});
    assert.deepEqual(uartRegs(b.dm), regs);
    assert.match((await c.cmd('xen-load-devices-state', { filename: file })).error.desc, /while vm is running/);
    await c.close();
  } finally {
    await b.dm.shutdown('test');
  }
});

test('add-fd without a descriptor, remove-fd, bad ids', async () => {
  const dir = tmp();
  const a = await dm(dir, []);
  try {
    const q = await connectFdQmp(a.qmp);
    assert.match((await q.cmd('add-fd')).error.desc, /No file descriptor supplied/);
    const f1 = fs.openSync(path.join(dir, 'x'), 'w');
    const r = await q.cmd('add-fd', { 'fdset-id': 5, opaque: 'hello' }, f1);
    fs.closeSync(f1);
    assert.equal(r.return['fdset-id'], 5);
    assert.deepEqual((await q.cmd('query-fdsets')).return, [{ 'fdset-id': 5, fds: [{ fd: r.return.fd, opaque: 'hello' }] }]);
    assert.match((await q.cmd('add-fd', { 'fdset-id': -1 })).error.desc, /out of range/);
    assert.match((await q.cmd('remove-fd', { 'fdset-id': 5, fd: r.return.fd + 1000 })).error.desc, /not found/);
    assert.deepEqual((await q.cmd('remove-fd', { 'fdset-id': 5 })).return, {});
    assert.deepEqual((await q.cmd('query-fdsets')).return, []);
    assert.throws(() => fs.fstatSync(r.return.fd), /EBADF/, 'removed descriptors are closed');
    // Saving into a read-only descriptor is refused by access mode.
    const ro = fs.openSync(path.join(dir, 'x'), 'r');
    const r2 = await q.cmd('add-fd', undefined, ro);
    fs.closeSync(ro);
    assert.match((await q.cmd('xen-save-devices-state', { filename: `/dev/fdset/${r2.return['fdset-id']}` })).error.desc, /no descriptor open for writing/);
    q.close();
  } finally {
    await a.dm.shutdown('test');
  }
});

test('dirty logging: pages the device model writes are reported only while it is on', async () => {
  const dir = tmp();
  const a = await dm(dir, []);
  try {
    const s = a.dm.sim!;
    const c = await connectQmp(a.qmp);
    await c.cmd('qmp_capabilities');
    s.insb(COM1, 0x10000, 4); // REP INSB from COM1 into guest RAM: a device-model write
    assert.equal(s.memory.dirtyPages.size, 0);
    await c.cmd('xen-set-global-dirty-log', { enable: true });
    s.insb(COM1, 0x21ffe, 4); // straddles pages 0x21 and 0x22
    assert.deepEqual([...s.memory.dirtyPages].sort(), [0x21, 0x22]);
    await c.cmd('xen-set-global-dirty-log', { enable: false });
    s.insb(COM1, 0x30000, 4);
    assert.equal(s.memory.dirtyPages.has(0x30), false);
    await c.close();
  } finally {
    await a.dm.shutdown('test');
  }
});
