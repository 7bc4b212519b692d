/**
 * What `xl cd-eject`, `xl cd-insert`, `xl qemu-monitor-command` and
 * `xl trigger ... s3resume` send (docs/xen-contract.md §11a, §11b), against
 * a whole device model on the simulator with libxl's CD-ROM argv
 * (`-drive if=none,readonly=on,id=ide-5632,file=...` + `-device
 * ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseArgs } from '../../src/cli/index.ts';
import { start, type Dm } from '../../src/main.ts';
import { SHUTDOWN_REBOOT } from '../../src/core/host.ts';
import { connectQmp, type QmpClient } from '../helpers/qmp-client.ts';
import { connectFdQmp } from '../helpers/native-qmp.ts';
import { FdSets, MAX_OPAQUE } from '../../src/qmp/fdsets.ts';

const silent = pino({ level: 'silent' });
const CD = 'ide-5632'; // libxl: "ide-%i" of hdc's device number (22 << 8)

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-media-'));
}

/** A "CD image": `blocks` 2048-byte blocks, each starting with its tag and number. */
function iso(file: string, tag: string, blocks: number): void {
  const b = Buffer.alloc(blocks * 2048);
  for (let i = 0; i < blocks; i++) b.write(`${tag}${i}`, i * 2048, 'latin1');
  fs.writeFileSync(file, b);
}

async function dm(dir: string, cd: string | null): Promise<{ dm: Dm; qmp: string; c: QmpClient }> {
  const qmp = path.join(dir, `qmp-${Math.random().toString(36).slice(2)}`);
  const disk = path.join(dir, 'disk.img');
  if (!fs.existsSync(disk)) fs.writeFileSync(disk, Buffer.alloc(1 << 20));
  const { config } = await parseArgs([
    '-xen-domid', '1', '-chardev', `socket,id=libxl-cmd,path=${qmp},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-serial', 'null', '-machine', 'xenfv', '-m', '16', '--sim',
    '-drive', `file=${disk},if=ide,index=0,media=disk,format=raw,cache=writeback`,
    '-drive', `if=none,readonly=on,id=${CD}${cd === null ? '' : `,file=${cd},format=raw`}`,
    '-device', `ide-cd,id=${CD},drive=${CD},bus=ide.1,unit=0`,
  ]);
  const d = await start(config, { log: silent, signals: false });
  const c = await connectQmp(qmp);
  await c.cmd('qmp_capabilities');
  return { dm: d, qmp, c };
}

async function readBlock(d: Dm, lba: number): Promise<string> {
  const b = d.pc.ide.drive(2).backend!;
  const buf = new Uint8Array(2048);
  assert.equal(await b.read(lba * 2048, buf, 0, 2048), null);
  return Buffer.from(buf).toString('latin1', 0, 8).replace(/\0+$/, '');
}

test('xl cd-eject then cd-insert, the way libxl 4.17 sends them: eject by id, add-fd, blockdev-change-medium /dev/fdset/N', async () => {
  const dir = tmp();
  const cd1 = path.join(dir, 'cd1.iso');
  const cd2 = path.join(dir, 'cd2.iso');
  iso(cd1, 'ONE', 8);
  iso(cd2, 'TWO', 16);
  const a = await dm(dir, cd1);
  try {
    const before = (await a.c.cmd('query-block')).return;
    assert.deepEqual(
      before.map((b: any) => [b.device, b.qdev, b.removable, b.tray_open, b.inserted?.file, b.inserted?.ro, b.inserted?.image['virtual-size']]),
      [
        ['ide0-hd0', undefined, false, undefined, path.join(dir, 'disk.img'), false, 1 << 20],
        [CD, CD, true, false, cd1, true, 8 * 2048],
      ],
    );
    // libxl cdrom_insert_lock_acquired: query-version first, then eject {id} (QEMU >= 2.8).
    assert.deepEqual((await a.c.cmd('query-version')).return.qemu, { micro: 0, minor: 2, major: 8 });
    assert.deepEqual((await a.c.cmd('eject', { id: CD })).return, {});
    const drive = a.dm.pc.ide.drive(2);
    assert.equal(drive.backend, null, 'medium out');
    assert.equal(drive.state.trayOpen, true, 'QEMU leaves the tray open after eject');
    assert.deepEqual([drive.state.mediaChanged, drive.state.mediaEvent], [1, 3], 'the guest is told: NOT READY once, media removal event');
    const ejected = (await a.c.cmd('query-block')).return[1];
    assert.deepEqual([ejected.tray_open, ejected.inserted], [true, undefined]);
    assert.deepEqual((await a.c.cmd('eject', { id: CD })).return, {}, 'an empty drive ejects again without error');

    // cdrom_insert_ejected: add-fd with the image open O_RDONLY; cdrom_insert_addfd_cb: blockdev-change-medium.
    const q = await connectFdQmp(a.qmp);
    const fd = fs.openSync(cd2, 'r');
    const added = await q.cmd('add-fd', { opaque: `raw:${cd2}` }, fd);
    fs.closeSync(fd);
    const set = added.return['fdset-id'];
    assert.equal(typeof set, 'number', JSON.stringify(added));
    const changed = await q.cmd('blockdev-change-medium', { id: CD, filename: `/dev/fdset/${set}`, format: 'raw' });
    assert.deepEqual(changed.return, {}, JSON.stringify(changed));
    q.close(); // libxl disconnects: the set's descriptor is closed, our reopened one stays
    assert.equal(drive.state.trayOpen, false, 'tray closed on the new medium');
    assert.deepEqual([drive.state.mediaChanged, drive.state.mediaEvent], [1, 2], 'NOT READY once, then UNIT ATTENTION; new media event');
    assert.equal(drive.totalSectors(), 16);
    for (let i = 0; i < 50 && (await a.c.cmd('query-fdsets')).return.length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual((await a.c.cmd('query-fdsets')).return, [], 'the connection took its fd set with it');
    assert.equal(await readBlock(a.dm, 15), 'TWO15', 'the new medium still reads after libxl closed its descriptor');
    const after = (await a.c.cmd('query-block')).return[1];
    assert.deepEqual([after.tray_open, after.inserted.file, after.inserted.image['virtual-size']], [false, `/dev/fdset/${set}`, 16 * 2048]);
    assert.equal(a.dm.pc.backends.length, 2, 'the old medium is closed and gone from the machine');
  } finally {
    await a.c.close();
    await a.dm.shutdown('test');
  }
});

test('media commands refuse what QEMU refuses, with its error classes', async () => {
  const dir = tmp();
  const cd1 = path.join(dir, 'cd1.iso');
  iso(cd1, 'ONE', 4);
  const a = await dm(dir, cd1);
  try {
    const err = async (cmd: string, args: object) => (await a.c.cmd(cmd, args)).error;
    assert.deepEqual(await err('eject', { id: 'ide-9999' }), { class: 'DeviceNotFound', desc: "Device 'ide-9999' not found" });
    assert.equal((await err('eject', { device: 'ide0-hd0' })).desc, "Device 'ide0-hd0' is not removable");
    assert.equal((await err('eject', { device: CD, id: CD })).desc, "Need exactly one of 'device' and 'id'");
    assert.equal((await err('eject', {})).desc, "Need exactly one of 'device' and 'id'");
    assert.match((await err('blockdev-change-medium', { id: CD, filename: cd1, format: 'qcow2' })).desc, /format 'qcow2' is not supported/);
    assert.match((await err('blockdev-change-medium', { id: CD, filename: '/dev/fdset/7' })).desc, /fd set 7 does not exist/);
    assert.match((await err('blockdev-change-medium', { id: CD, filename: 'relative.iso' })).desc, /not absolute/);
    assert.match((await err('blockdev-change-medium', { id: CD, filename: path.join(dir, 'missing.iso') })).desc, /cannot open .*missing\.iso: ENOENT/);
    assert.equal(await readBlock(a.dm, 3), 'ONE3', 'a refused change leaves the medium in');
    // The guest locks the tray (PREVENT ALLOW MEDIUM REMOVAL): eject is refused, the guest hears an eject request.
    const drive = a.dm.pc.ide.drive(2);
    drive.state.trayLocked = true;
    assert.equal((await err('eject', { id: CD })).desc, `Device '${CD}' is locked and force was not specified, wait for tray to open and try again`);
    assert.deepEqual([drive.state.trayOpen, drive.state.mediaEvent], [false, 1]);
    assert.deepEqual((await a.c.cmd('eject', { id: CD, force: true })).return, {});
    assert.deepEqual([drive.state.trayOpen, drive.state.trayLocked, drive.backend], [true, false, null]);
  } finally {
    await a.c.close();
    await a.dm.shutdown('test');
  }
});

test('the medium state survives save/restore into the device model libxl starts with the new config', async () => {
  const dir = tmp();
  const cd1 = path.join(dir, 'cd1.iso');
  const cd2 = path.join(dir, 'cd2.iso');
  iso(cd1, 'ONE', 4);
  iso(cd2, 'TWO', 6);
  const a = await dm(dir, cd1);
  let ejectedState: Uint8Array;
  let insertedState: Uint8Array;
  try {
    await a.c.cmd('eject', { id: CD });
    ejectedState = await a.dm.pc.save();
    assert.deepEqual((await a.c.cmd('blockdev-change-medium', { id: CD, filename: cd2 })).return, {});
    insertedState = await a.dm.pc.save();
  } finally {
    await a.c.close();
    await a.dm.shutdown('test');
  }
  // After cd-eject libxl's stored config has an empty drive; after cd-insert, the new image.
  const empty = await dm(dir, null);
  try {
    empty.dm.pc.restore(ejectedState);
    assert.deepEqual([empty.dm.pc.ide.drive(2).state.trayOpen, (await empty.c.cmd('query-block')).return[1].tray_open], [true, true]);
  } finally {
    await empty.c.close();
    await empty.dm.shutdown('test');
  }
  const full = await dm(dir, cd2);
  try {
    full.dm.pc.restore(insertedState);
    const d = full.dm.pc.ide.drive(2);
    assert.deepEqual([d.state.trayOpen, d.state.mediaChanged, d.state.mediaEvent, d.totalSectors()], [false, 1, 2, 6], 'the pending unit attention travels');
    assert.throws(() => full.dm.pc.restore(ejectedState), /saved without a medium/);
  } finally {
    await full.c.close();
    await full.dm.shutdown('test');
  }
});

test('human-monitor-command (xl qemu-monitor-command): info status/block/pci/chardev/network, sendkey, system_reset, unknown commands', async () => {
  const dir = tmp();
  const cd1 = path.join(dir, 'cd1.iso');
  iso(cd1, 'ONE', 4);
  const a = await dm(dir, cd1);
  try {
    const hmp = async (line: string) => {
      const r = await a.c.cmd('human-monitor-command', { 'command-line': line });
      assert.equal(typeof r.return, 'string', JSON.stringify(r));
      return r.return as string;
    };
    assert.equal(await hmp('info status'), 'VM status: running\r\n');
    await a.c.cmd('stop');
    assert.equal(await hmp('info status'), 'VM status: paused\r\n');
    await hmp('cont');
    assert.equal(await hmp('  info   status '), 'VM status: running\r\n');
    const block = await hmp('info block');
    assert.match(block, new RegExp(`^${CD}: ${cd1.replace(/[.]/g, '\\.')} \\(raw, read-only\\)\r\n    Attached to:      ${CD}\r\n    Removable device: not locked, tray closed\r\n`, 'm'));
    assert.match(block, /^ide0-hd0: .*disk\.img \(raw\)\r\n/m);
    await hmp(`eject ${CD}`);
    assert.match(await hmp('info block'), new RegExp(`^${CD}: \\[not inserted\\]\r\n.*\r\n    Removable device: not locked, tray open\r\n`, 'm'));
    const pci = await hmp('info pci');
    assert.match(pci, /Bus  0, device   1, function 1:\r\n    IDE controller: PCI device 8086:7010\r\n/);
    assert.match(pci, /Host bridge: PCI device 8086:1237/);
    assert.match(await hmp('info chardev'), /^serial0: filename=null\r\n/m);
    assert.equal(await hmp('info network'), '', 'no NIC on this machine');
    assert.equal(await hmp('info frobnicate'), "unknown command: 'info frobnicate'\r\n");
    assert.equal(await hmp('frobnicate now'), "unknown command: 'frobnicate'\r\n");
    assert.equal(await hmp(''), '');
    assert.equal(await hmp('sendkey ctrl-alt-delete'), '');
    assert.equal(await hmp('sendkey ctrl-nosuchkey'), 'Error: invalid parameter: nosuchkey\r\n');
    assert.equal(await hmp('sendkey'), 'Error: sendkey: usage: sendkey keys [hold_ms]\r\n');
    assert.equal(await hmp('sendkey ret 100'), '');
    assert.equal(await hmp('sendkey ret soon'), 'Error: invalid parameter: soon\r\n');
    const long = await a.c.cmd('human-monitor-command', { 'command-line': 'x'.repeat(2000) });
    assert.equal(long.error.class, 'GenericError');
    assert.equal(a.dm.sim!.shutdownRequests.length, 0);
    assert.equal(await hmp('system_reset'), '');
    assert.deepEqual(a.dm.sim!.shutdownRequests.map((r) => r.reason), [SHUTDOWN_REBOOT]);
    assert.deepEqual((await a.c.cmd('system_reset')).return, {});
    assert.equal(a.dm.sim!.shutdownRequests.length, 2);
    // xl trigger DOM s3resume: QEMU's answer when the guest cannot be suspended (no S3 here).
    assert.deepEqual((await a.c.cmd('system_wakeup')).error, { class: 'GenericError', desc: 'wake-up from suspend is not supported by this guest' });
    assert.equal(await hmp('system_wakeup'), 'Error: wake-up from suspend is not supported by this guest\r\n');
    // Xen owns PM1a status/enable: a power button press is Xen's (xl trigger power), said in one line.
    assert.match((await a.c.cmd('system_powerdown')).error.desc, /belongs to Xen.*xl trigger <domain> power/);
    assert.match(await hmp('system_powerdown'), /^Error: the power button belongs to Xen .*\r\n$/);
    assert.equal(a.dm.sim!.shutdownRequests.length, 2, 'nothing else happened');
  } finally {
    await a.c.close();
    await a.dm.shutdown('test');
  }
});

test("add-fd keeps an opaque as long as libxl's \"raw:<path>\" for a PATH_MAX path, and refuses longer", () => {
  const closed: number[] = [];
  const sets = new FdSets((fd) => closed.push(fd));
  const opaque = `raw:/${'d/'.repeat(2045)}cd.iso`;
  assert.ok(opaque.length > 4096);
  assert.equal(sets.add(3, null, opaque, null), 0);
  assert.equal(sets.query()[0].fds[0].opaque, opaque);
  assert.throws(() => sets.add(4, null, 'x'.repeat(MAX_OPAQUE + 1), null), /opaque is longer than/);
  assert.deepEqual(closed, [], 'a refused add leaves the descriptor to its caller');
});
