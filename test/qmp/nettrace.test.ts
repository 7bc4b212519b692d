/**
 * HMP `info nettrace` on a whole device model (the simulator, libxl's dom0
 * argv): off without STUBDM_NET_TRACE (StartOptions.netTrace); with it, the
 * ioreqs of devices other than a NIC record nothing (the server's wake-up is
 * only written down when a NIC register access follows it).
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
import { connectQmp } from '../helpers/qmp-client.ts';

async function infoNettrace(netTrace: number | null): Promise<{ list: string; text: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-nettrace-'));
  const qmp = path.join(dir, 'qmp');
  const { config } = await parseArgs([
    '-xen-domid', '1', '-chardev', `socket,id=libxl-cmd,path=${qmp},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-serial', 'null', '-machine', 'xenfv', '-m', '16', '--sim',
  ]);
  const dm = await start(config, { log: pino({ level: 'silent' }), signals: false, netTrace });
  const c = await connectQmp(qmp);
  try {
    await c.cmd('qmp_capabilities');
    // Guest I/O to other devices: CMOS index/data, the IDE status port.
    for (let i = 0; i < 10; i++) {
      dm.sim!.outb(0x70, 0x0e);
      dm.sim!.inb(0x71);
      dm.sim!.inb(0x1f7);
    }
    const hmp = async (line: string): Promise<string> => (await c.cmd('human-monitor-command', { 'command-line': line })).return as string;
    return { list: await hmp('info'), text: await hmp('info nettrace') };
  } finally {
    c.close();
    await dm.shutdown('test');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('info nettrace: off without a trace; with one, ioreqs that reach no NIC record nothing', async () => {
  const off = await infoNettrace(null);
  assert.equal(off.text, NETTRACE_OFF.replace(/\n/g, '\r\n'));
  assert.match(off.list, /^info nettrace {2}-- /m);
  const on = await infoNettrace(256);
  assert.match(on.text, /^nettrace: 0 events kept of 0 recorded \(ring of 256\)/);
  assert.match(on.text, /^pings: 0 echo requests sent/m);
});
