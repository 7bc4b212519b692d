/**
 * QMP screendump through the whole daemon on the simulator, as an operator
 * (or the e2e harness) runs it: PPM by default, PNG with format, an error
 * without a display, refused formats and heads; the VGA BIOS comes from
 * STUBDM_VGABIOS into the ROM BAR.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { PNG } from 'pngjs';
import { parseArgs } from '../../src/cli/index.ts';
import { start } from '../../src/main.ts';
import { connectQmp } from '../helpers/qmp-client.ts';

const silent = pino({ level: 'silent' });

function hasCc(): boolean {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function daemon(t: { after(fn: () => void | Promise<void>): void }, extra: string[]) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-screendump-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const qmp = path.join(dir, 'qmp');
  const { config } = await parseArgs([
    '-xen-domid', '1', '-chardev', `socket,id=libxl-cmd,path=${qmp},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-machine', 'xenfv', '-m', '16', '--sim', ...extra,
  ]);
  const dm = await start(config, { log: silent, signals: false });
  t.after(async () => void (await dm.shutdown('test')));
  const c = await connectQmp(qmp);
  t.after(() => c.close());
  await c.cmd('qmp_capabilities');
  return { dm, c, dir };
}

test('screendump: PPM by default, PNG with format; the VGA BIOS from STUBDM_VGABIOS is the ROM BAR', async (t) => {
  const rom = new Uint8Array(40 * 1024).map((_, i) => (i * 13) & 0xff);
  const romFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-vgabios-')), 'vgabios.bin');
  fs.writeFileSync(romFile, rom);
  process.env.STUBDM_VGABIOS = romFile;
  t.after(() => delete process.env.STUBDM_VGABIOS);
  const { dm, c, dir } = await daemon(t, ['-device', 'VGA,vgamem_mb=4']);
  const s = dm.sim!;
  // The ROM BAR: 64 KiB for a 40 KiB image; map it and read the first bytes back.
  s.pciConfigWrite(3 << 3, 0x30, 4, 0xffffffff);
  assert.equal(s.pciConfigRead(3 << 3, 0x30, 4) >>> 0, 0xffff0001, 'address bits above 64 KiB and the enable bit');
  s.pciConfigWrite(3 << 3, 0x30, 4, 0xfe000001);
  s.pciConfigWrite(3 << 3, 0x04, 2, 0x0002);
  assert.equal(s.readl(0xfe000000), (rom[0] | (rom[1] << 8) | (rom[2] << 16) | (rom[3] << 24)) >>> 0);
  // A VBE mode with one known pixel.
  const dispi = (i: number, v: number) => (s.outw(0x1ce, i), s.outw(0x1cf, v));
  dispi(1, 64);
  dispi(2, 48);
  dispi(3, 32);
  dispi(4, 0x41);
  s.pciConfigWrite(3 << 3, 0x10, 4, 0xf0000000);
  s.writel(0xf0000000 + (10 * 64 + 5) * 4, 0x00336699);
  const ppmFile = path.join(dir, 'shot.ppm');
  assert.deepEqual(await c.cmd('screendump', { filename: ppmFile }), { return: {}, id: 2 });
  const ppm = fs.readFileSync(ppmFile);
  const head = 'P6\n64 48\n255\n';
  assert.equal(ppm.subarray(0, head.length).toString('latin1'), head);
  const at = head.length + (10 * 64 + 5) * 3;
  assert.deepEqual([...ppm.subarray(at, at + 3)], [0x33, 0x66, 0x99]);
  const pngFile = path.join(dir, 'shot.png');
  assert.deepEqual((await c.cmd('screendump', { filename: pngFile, format: 'png', device: 'vga', head: 0 })).return, {});
  const png = PNG.sync.read(fs.readFileSync(pngFile));
  assert.deepEqual([png.width, png.height], [64, 48]);
  const p = (10 * 64 + 5) * 4;
  assert.deepEqual([...png.data.subarray(p, p + 3)], [0x33, 0x66, 0x99]);
  assert.equal((await c.cmd('screendump', { filename: pngFile, format: 'bmp' })).error.class, 'GenericError');
  assert.equal((await c.cmd('screendump', { filename: pngFile, head: 1 })).error.class, 'GenericError');
  assert.equal((await c.cmd('screendump', { filename: 'relative.ppm' })).error.class, 'GenericError');
  assert.equal((await c.cmd('screendump', { filename: pngFile, device: 'nope' })).error.class, 'DeviceNotFound');
});

test('screendump without a display answers an error', async (t) => {
  const { c, dir } = await daemon(t, []);
  const r = await c.cmd('screendump', { filename: path.join(dir, 'x.ppm') });
  assert.equal(r.error.class, 'GenericError');
  assert.match(r.error.desc, /no console/);
});

test('screendump to an fd set that is a tty (a stub domain save console): raw, every byte as written', { skip: !hasCc() && 'no C compiler' }, async (t) => {
  // The pty helper (native/stubdm-pty.c) holds the master and relays what the slave gets onto its stdout.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-screendump-tty-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const helper = path.join(dir, 'stubdm-pty');
  execFileSync('cc', ['-O2', '-o', helper, path.resolve('native/stubdm-pty.c')]);
  const child = spawn(helper, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => void child.kill('SIGTERM'));
  let got = Buffer.alloc(0);
  child.stdout.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  const waitFor = async (cond: () => boolean) => {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  };
  await waitFor(() => got.includes(0x0a));
  const slave = got.subarray(0, got.indexOf(0x0a)).toString();
  got = got.subarray(got.indexOf(0x0a) + 1);
  assert.match(slave, /^\/dev\/pts\/\d+$/);
  const fd = fs.openSync(slave, 'w');
  t.after(() => fs.closeSync(fd));
  // The helper made the pair raw; a fresh hvc1 in the stub domain is cooked (output processing on).
  execFileSync('stty', ['-F', slave, 'sane']);
  assert.match(execFileSync('stty', ['-F', slave, '-a']).toString(), /(^|\s)onlcr(\s|$)/, 'the slave translates \\n now');
  const { dm, c } = await daemon(t, ['-device', 'VGA,vgamem_mb=4', '-add-fd', `fd=${fd},set=1`]);
  const s = dm.sim!;
  const dispi = (i: number, v: number) => (s.outw(0x1ce, i), s.outw(0x1cf, v));
  dispi(1, 16);
  dispi(2, 4);
  dispi(3, 32);
  dispi(4, 0x41);
  s.pciConfigWrite(3 << 3, 0x10, 4, 0xf0000000);
  s.pciConfigWrite(3 << 3, 0x04, 2, 0x0002);
  s.writel(0xf0000000 + 8, 0x000a0a0a); // pixel 2 is three 0x0a bytes: what output processing would double
  const want = dm.pc.screendump('ppm')!;
  assert.deepEqual((await c.cmd('screendump', { filename: '/dev/fdset/1' })).return, {});
  await waitFor(() => got.length >= want.length);
  assert.deepEqual(got, want);
});
