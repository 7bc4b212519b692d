/**
 * HMP `info nettrace` and `info disktrace` on a whole device model (the
 * simulator, libxl's dom0 argv): off without STUBDM_NET_TRACE /
 * STUBDM_DISK_TRACE (StartOptions.netTrace, .diskTrace); with them, the
 * ioreqs of devices other than a trace's own record nothing in it (the
 * server's wake-up is only written down when an access of its device
 * follows), and the IDE controller's record into the disk trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseArgs } from '../../src/cli/index.ts';
import { start } from '../../src/main.ts';
import { NETTRACE_OFF } from '../../src/devices/e1000/trace.ts';
import { DISKTRACE_OFF } from '../../src/devices/ide/trace.ts';
import { connectQmp } from '../helpers/qmp-client.ts';

/** The HMP answers after `io` ran against a fresh device model with the given traces. */
async function infoTraces(traces: { netTrace: number | null; diskTrace: number | null }, io: (sim: NonNullable<Awaited<ReturnType<typeof start>>['sim']>) => void) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-traces-'));
  const qmp = path.join(dir, 'qmp');
  const { config } = await parseArgs([
    '-xen-domid', '1', '-chardev', `socket,id=libxl-cmd,path=${qmp},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-serial', 'null', '-machine', 'xenfv', '-m', '16', '--sim',
  ]);
  const dm = await start(config, { log: pino({ level: 'silent' }), signals: false, ...traces });
  const c = await connectQmp(qmp);
  try {
    await c.cmd('qmp_capabilities');
    io(dm.sim!);
    const hmp = async (line: string): Promise<string> => (await c.cmd('human-monitor-command', { 'command-line': line })).return as string;
    return { list: await hmp('info'), net: await hmp('info nettrace'), disk: await hmp('info disktrace') };
  } finally {
    c.close();
    await dm.shutdown('test');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Guest I/O to devices that are neither a NIC nor a disk: CMOS index/data. */
const cmos = (sim: Parameters<Parameters<typeof infoTraces>[1]>[0]) => {
  for (let i = 0; i < 10; i++) {
    sim.outb(0x70, 0x0e);
    sim.inb(0x71);
  }
};

test('info nettrace / info disktrace: off without a trace; with one, ioreqs that reach other devices record nothing', async () => {
  const off = await infoTraces({ netTrace: null, diskTrace: null }, cmos);
  assert.equal(off.net, NETTRACE_OFF.replace(/\n/g, '\r\n'));
  assert.equal(off.disk, DISKTRACE_OFF.replace(/\n/g, '\r\n'));
  assert.match(off.list, /^info nettrace {2}-- /m);
  assert.match(off.list, /^info disktrace {2}-- /m);
  const on = await infoTraces({ netTrace: 256, diskTrace: 256 }, (sim) => {
    cmos(sim);
    sim.inb(0x1f7); // IDE status (no drives: 0): a disk access, not a NIC one
  });
  assert.match(on.net, /^nettrace: 0 events kept of 0 recorded \(ring of 256\)/);
  assert.match(on.net, /^pings: 0 echo requests sent/m);
  // The status read with the wake-up before it and the answer after it; nothing of the CMOS accesses.
  assert.match(on.disk, /^disktrace: 3 events kept of 3 recorded \(ring of 256\)/);
  assert.match(on.disk, /ioreq wake\r\n.*R ch0 STATUS -> 0x00\r\n.*ioreq answered\r\n$/);
});
