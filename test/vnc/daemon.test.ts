/**
 * VNC in the whole daemon on the simulator, as libxl drives it: `-device VGA
 * -vnc HOST:DISPLAY,to=N`, query-vnc giving the host and port libxl stores
 * for `xl vncviewer`, an RFB client seeing the guest's screen, a key typed
 * over VNC read by the guest at port 0x60, change-vnc-password accepted;
 * `password=on` keeps the server off (no DES for VNC authentication).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseArgs } from '../../src/cli/index.ts';
import { start } from '../../src/main.ts';
import { connectQmp } from '../helpers/qmp-client.ts';
import { RfbClient } from '../helpers/rfb-client.ts';

async function daemon(t: { after(fn: () => void | Promise<void>): void }, vnc: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-vnc-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const qmp = path.join(dir, 'qmp');
  const { config } = await parseArgs([
    '-xen-domid', '1', '-chardev', `socket,id=libxl-cmd,path=${qmp},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-machine', 'xenfv', '-m', '16', '--sim', '-name', 'guest7', '-device', 'VGA,vgamem_mb=4', '-vnc', vnc,
  ]);
  const dm = await start(config, { log: pino({ level: 'silent' }), signals: false });
  t.after(async () => void (await dm.shutdown('test')));
  const c = await connectQmp(qmp);
  t.after(() => c.close());
  await c.cmd('qmp_capabilities');
  return { dm, c };
}

test('-vnc: query-vnc names the port, a client sees the screen, keys reach the guest', async (t) => {
  // A display number far from anything else on this machine; to= lets it move on if taken.
  const display = 3000 + (process.pid % 1000);
  const { dm, c } = await daemon(t, `127.0.0.1:${display},to=${display + 50}`);
  const q = (await c.cmd('query-vnc')).return;
  assert.equal(q.enabled, true);
  assert.equal(q.host, '127.0.0.1');
  const port = Number(q.service);
  assert.ok(port >= 5900 + display && port <= 5900 + display + 50, `port ${port}`);
  assert.deepEqual((await c.cmd('change-vnc-password', { password: 'x' })).return, {});
  const s = dm.sim!;
  const dispi = (i: number, v: number) => (s.outw(0x1ce, i), s.outw(0x1cf, v));
  dispi(1, 32);
  dispi(2, 16);
  dispi(3, 32);
  dispi(4, 0x41);
  s.pciConfigWrite(3 << 3, 0x10, 4, 0xf0000000);
  s.pciConfigWrite(3 << 3, 0x04, 2, 0x0002);
  s.writel(0xf0000000 + (3 * 32 + 4) * 4, 0x00abcdef);
  const v = await RfbClient.connect(port);
  t.after(() => v.close());
  assert.deepEqual(await v.handshake(), { w: 32, h: 16, name: 'guest7' });
  v.encodings(0);
  v.request(false, 32, 16);
  const [r] = await v.update();
  assert.equal(r.data.readUInt32LE((3 * 32 + 4) * 4) & 0xffffff, 0xabcdef);
  // 'a' typed over VNC: the guest's keyboard controller has 0x1E for it.
  const key = Buffer.alloc(8);
  key[0] = 4;
  key[1] = 1;
  key.writeUInt32BE(0x61, 4);
  v.send(key);
  v.request(false, 32, 16); // a round trip: the key event has been handled when this answer comes
  await v.update();
  assert.equal(s.inb(0x64) & 1, 1, 'output buffer full');
  assert.equal(s.inb(0x60), 0x1e);
});

test('-vnc password=on: the server stays off, query-vnc says so, change-vnc-password is accepted', async (t) => {
  const { c } = await daemon(t, '127.0.0.1:0,password=on');
  assert.deepEqual((await c.cmd('query-vnc')).return, { enabled: false });
  assert.deepEqual((await c.cmd('change-vnc-password', { password: 'secret' })).return, {});
});
