/**
 * main's wiring, in process over the simulator (--sim) and as a real child
 * process: argv -> host -> board -> UART/platform -> ioreq server ->
 * xenstore state -> QMP, and the orderly stop that flushes the serial file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { pino } from 'pino';
import { parseArgs } from '../src/cli/index.ts';
import { start } from '../src/main.ts';
import { SimStore } from '../src/sim/platform.ts';
import { connectQmp, connectQmpRetry } from './helpers/qmp-client.ts';

const silent = pino({ level: 'silent' });
const BIN = new URL('../bin/stubdm.js', import.meta.url).pathname;

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-main-'));
}

test('--sim: libxl-like start, guest writes COM1 through the ioreq path, QMP cont/stop/quit, flushed file', async () => {
  const dir = tmp();
  const serial = path.join(dir, 'serial.log');
  const qmpPath = path.join(dir, 'qmp-libxl-1');
  const { config } = await parseArgs([
    '-xen-domid', '1', '-no-shutdown',
    '-chardev', `socket,id=libxl-cmd,path=${qmpPath},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-nodefaults', '-no-user-config', '-name', 'hvm1', '-vnc', 'none', '-display', 'none',
    '-serial', `file:${serial}`, '-boot', 'order=cda', '-net', 'none', '-machine', 'xenfv,suppress-vmdesc=on', '-m', '16',
    '-S', '--sim',
  ]);
  // libxl connects to QMP the moment it sees state=running: the socket must already listen.
  const listeningAtRunning: boolean[] = [];
  const write = SimStore.prototype.write;
  SimStore.prototype.write = function (this: SimStore, p: string, v: string): boolean {
    if (p.endsWith('/state') && v === 'running') listeningAtRunning.push(fs.existsSync(qmpPath));
    return write.call(this, p, v);
  };
  let dm;
  try {
    dm = await start(config, { log: silent, signals: false });
  } finally {
    SimStore.prototype.write = write;
  }
  if (listeningAtRunning.join() !== 'true') await dm.shutdown('assertion failed'); // don't leave the socket open
  assert.deepEqual(listeningAtRunning, [true]);
  const sim = dm.sim!;
  // libxl's readiness signal
  assert.equal(sim.store.read('device-model/1/state'), 'running');
  assert.equal(sim.store.read('/local/domain/0/device-model/1/state'), 'running');
  // -S: prelaunch, ioreq server not enabled until cont (QEMU's order)
  assert.equal(sim.channel.enabled, false);

  const a = await connectQmp(qmpPath);
  assert.equal(a.greeting.QMP.version.qemu.major, 8);
  assert.deepEqual(await a.cmd('qmp_capabilities'), { return: {}, id: 1 });
  assert.equal((await a.cmd('query-status')).return.status, 'prelaunch');
  const chardevs = (await a.cmd('query-chardev')).return;
  assert.deepEqual(chardevs[0], { label: 'serial0', filename: `file:${serial}`, 'frontend-open': true });
  assert.equal((await a.cmd('query-cpus-fast')).return.length, 1);

  const b = await connectQmp(qmpPath);
  await b.cmd('qmp_capabilities');
  assert.deepEqual(await b.cmd('cont'), { return: {}, id: 2 });
  assert.equal(sim.channel.enabled, true);
  assert.equal((await a.next())!.event, 'RESUME');
  assert.equal((await a.cmd('query-status')).return.running, true);

  // The guest: a polling boot loader on COM1, through ioreqs.
  for (const c of Buffer.from('Booting from Hard Disk...\r\n')) {
    assert.equal(sim.inb(0x3fd) & 0x60, 0x60, 'THR and transmitter empty');
    sim.outb(0x3f8, c);
  }
  // Linux-style THRE interrupt on IRQ 4
  sim.outb(0x3f9, 0x02);
  assert.equal(sim.isaIrqLevel(4), 1);
  assert.equal(sim.inb(0x3fa) & 0x0f, 0x02);
  assert.equal(sim.isaIrqLevel(4), 0);
  // The platform is there too (00:00.0 i440FX).
  assert.equal(sim.pciConfigRead(0, 0, 4), 0x12378086);

  assert.deepEqual(await a.cmd('stop'), { return: {}, id: 6 });
  assert.equal(sim.channel.enabled, false);
  assert.equal((await b.cmd('query-status')).return.status, 'paused');
  await b.cmd('cont');

  assert.deepEqual(await a.cmd('quit'), { return: {}, id: 7 });
  assert.equal(await dm.done, 0);
  assert.equal(fs.readFileSync(serial, 'latin1'), 'Booting from Hard Disk...\r\n');
  assert.equal(fs.existsSync(qmpPath), false);
  assert.equal(sim.closed, true);
  assert.equal(await dm.shutdown('again'), 0, 'idempotent');
});

test('--sim without -S starts running with the server enabled; two serial ports on COM1 and COM2', async () => {
  const dir = tmp();
  const { config } = await parseArgs([
    '--sim', '-machine', 'xenfv', '-m', '16', '-smp', '2', '-serial', `file:${path.join(dir, 'a')}`, '-serial', `file:${path.join(dir, 'b')}`,
  ]);
  const dm = await start(config, { log: silent, signals: false });
  const sim = dm.sim!;
  assert.equal(dm.runState(), 'running');
  assert.equal(sim.channel.enabled, true);
  sim.outb(0x3f8, 0x41);
  sim.outb(0x2f8, 0x42);
  sim.outb(0x2f9, 0x02);
  assert.equal(sim.isaIrqLevel(3), 1);
  await dm.shutdown('test');
  assert.equal(fs.readFileSync(path.join(dir, 'a'), 'latin1'), 'A');
  assert.equal(fs.readFileSync(path.join(dir, 'b'), 'latin1'), 'B');
});

test('start refuses a serial file it cannot open, with one line', async () => {
  const { config } = await parseArgs(['--sim', '-machine', 'xenfv', '-serial', 'file:/nonexistent/dir/x']);
  await assert.rejects(start(config, { log: silent, signals: false }), (e: Error) =>
    /^stubdm: cannot open serial output file \/nonexistent\/dir\/x/.test(e.message) && !e.message.includes('\n'));
});

test('start refuses a NIC whose romfile is missing, with one line, before any tap is created', async () => {
  const { config } = await parseArgs([
    '--sim', '-machine', 'xenfv', '-m', '16',
    '-device', 'e1000,id=nic0,netdev=net0,romfile=/nonexistent/dir/e1000.rom',
    // an interface name no tap may have: reaching openNetwork would fail with another message
    '-netdev', 'type=tap,id=net0,ifname=stubdm-norom,script=no,downscript=no',
  ]);
  await assert.rejects(start(config, { log: silent, signals: false }), (e: Error) =>
    e.message === 'stubdm: -device e1000,id=nic0: failed to find romfile "/nonexistent/dir/e1000.rom"');
  assert.equal(fs.existsSync('/sys/class/net/stubdm-norom'), false);
});

function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string; child: ReturnType<typeof spawn> }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((r) => child.on('exit', (code) => r({ code, stdout, stderr, child })));
}

test('bin/stubdm.js: exit 2 with one line on bad argv, 0 with --help, 1 with one line when Xen is not there', async () => {
  const bad = await run(['-xen-domid', '1', '-machine', 'xenfv', '-m', 'lots']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'stubdm: -m: RAM size "lots" is not a size (a number, optionally with K, M, G or T)\n');
  const help = await run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--sim/);
  const version = await run(['-version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^QEMU emulator version \d+\.\d+\.\d+ \(stubdm [^)\n]+\)\n$/);
  // This machine has no Xen: whichever way that shows, it is one line and exit 1.
  const noxen = await run(['-xen-domid', '1', '-machine', 'xenfv', '-m', '128', '--log-level', 'silent']);
  assert.equal(noxen.code, 1);
  assert.match(noxen.stderr, /^stubdm: [^\n]+\n$/);
});

test('bin/stubdm.js: a bad XEN_QEMU_CONSOLE_LIMIT and a serial socket with no peer are one line each', async () => {
  const bad = await run(['--sim', '-machine', 'xenfv', '-m', '16'], { ...process.env, XEN_QEMU_CONSOLE_LIMIT: '1M' });
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'stubdm: XEN_QEMU_CONSOLE_LIMIT="1M" is not a byte count from 0 to 1099511627776\n');
  // A port nothing listens on: bind one, note it, close it.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const refused = await run(['--sim', '-machine', 'xenfv', '-m', '16', '-serial', `tcp:127.0.0.1:${port}`]);
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr, `stubdm: chardev serial0: cannot connect to tcp:127.0.0.1:${port}: ECONNREFUSED\n`);
});

// issue #15: these printed a fatal JSON line with a stack (or nothing, exit 0); now one clear line and a non-zero exit.
test('bin/stubdm.js --sim: oversized -m and ringbuf, and a QMP socket in a missing directory, are one line each', async () => {
  for (const args of [['-m', '8T'], ['-m', '1000000'], ['-chardev', 'ringbuf,id=r,size=100G', '-serial', 'chardev:r'], ['-chardev', 'ringbuf,id=r,size=0', '-serial', 'chardev:r']]) {
    const r = await run(['--sim', '-machine', 'xenfv', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /^stubdm: -(m|chardev) [^\n]+\n$/, args.join(' '));
  }
  const nodir = await run(['--sim', '-machine', 'xenfv', '-m', '16', '-chardev', 'socket,id=q,path=/nonexistent-stubdm-dir/q.sock,server=on,wait=off', '-mon', 'chardev=q,mode=control']);
  assert.equal(nodir.code, 1);
  assert.match(nodir.stderr, /^stubdm: cannot listen on QMP socket \/nonexistent-stubdm-dir\/q\.sock: [^\n]*No such file or directory[^\n]*\n$/);
});

test('bin/stubdm.js --sim: serves QMP, stops on SIGTERM with exit 0 and the serial output flushed', async () => {
  const dir = tmp();
  const qmpPath = path.join(dir, 'qmp');
  const child = spawn(
    process.execPath,
    [BIN, '--sim', '-machine', 'xenfv', '-m', '16', '-serial', `file:${path.join(dir, 's')}`,
      '-chardev', `socket,id=q,path=${qmpPath},server=on,wait=off`, '-mon', 'chardev=q,mode=control'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const q = await connectQmpRetry(qmpPath);
  assert.ok(q, `QMP socket never came up: ${stderr}`);
  await q.cmd('qmp_capabilities');
  assert.equal((await q.cmd('query-status')).return.status, 'running');
  await q.cmd('eject', { device: 'no-such-drive' });
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  assert.equal(fs.existsSync(qmpPath), false);
  // issue #14: text lines at info by default: the lifecycle and the failed command with its error.
  const T = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
  assert.match(stderr, new RegExp(`^${T} INFO  stubdm: device model running domid=1 sim=true `, 'm'));
  assert.match(stderr, new RegExp(`^${T} WARN  qmp: QMP command failed: [^\\n]*no-such-drive[^\\n]* command=eject class=`, 'm'));
  assert.match(stderr, new RegExp(`^${T} INFO  stubdm: stopping why=SIGTERM$`, 'm'));
});

test('npm run demo:sim: exits 0 by itself and shows the greeting the UART backend received', async () => {
  const demo = new URL('../src/sim/demo.ts', import.meta.url).pathname;
  // The demo itself takes about 2 s. Seen twice on a loaded machine: tsx's
  // esbuild service process died (a zombie child) before the demo started,
  // and the demo waited for it forever. That is tsx start-up, not the demo:
  // such a start is killed after START_LIMIT_MS and tried once more, so it
  // cannot hang npm test (and CI), and a demo that fails twice still fails.
  // Also seen (about 1 run in 30 here, gdb on the stuck process): the demo
  // printed its whole report and process.exit() never returned, the main
  // thread joining V8's platform workers in NodePlatform::Shutdown while
  // they wait in CollectionBarrier::AwaitCollectionBackground for a GC only
  // the main thread could run: Node's exit-time deadlock, nodejs/node#54918.
  // That is after the demo's last line of JS, so it is tried once more too.
  const START_LIMIT_MS = 90_000;
  const runDemo = async (): Promise<{ code: number | null; stdout: string; stderr: string; killed: boolean }> => {
    const child = spawn(process.execPath, ['--import', 'tsx', demo], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, START_LIMIT_MS);
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    clearTimeout(timer);
    return { code, stdout, stderr, killed };
  };
  let run = await runDemo();
  if (run.killed) run = await runDemo();
  const { code, stdout } = run;
  assert.equal(run.killed, false, `the demo did not finish in ${START_LIMIT_MS} ms, twice: ${stdout}${run.stderr}`);
  assert.equal(code, 0, stdout);
  assert.match(stdout, /UART backend received: "Hello from the guest/);
  assert.doesNotMatch(stdout, /FAIL/);
});

test("--sim with libxl 4.17's CD-ROM argv: an ATAPI drive answers as secondary master", async () => {
  const dir = tmp();
  const iso = path.join(dir, 'x.iso');
  fs.writeFileSync(iso, Buffer.alloc(2048 * 16));
  const { config } = await parseArgs([
    '--sim', '-machine', 'xenfv', '-m', '16',
    '-drive', `if=none,readonly=on,id=ide-5632,file=${iso},format=raw`,
    '-device', 'ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0',
  ]);
  const dm = await start(config, { log: silent, signals: false });
  const sim = dm.sim!;
  sim.outb(0x176, 0xa0); // select secondary master
  assert.deepEqual([sim.inb(0x174), sim.inb(0x175)], [0x14, 0xeb], 'ATAPI signature');
  await dm.shutdown('test');
});

test('--sim with STUBDM_FBDEV: the stub console draws the VGA into the framebuffer and an event device types into the i8042', async (t) => {
  const { execFileSync } = await import('node:child_process');
  execFileSync('bash', [new URL('../scripts/build-native.sh', import.meta.url).pathname], { stdio: 'inherit' });
  const dir = tmp();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sysfs = path.join(dir, 'fb0');
  fs.mkdirSync(sysfs);
  fs.writeFileSync(path.join(sysfs, 'virtual_size'), '800,600');
  fs.writeFileSync(path.join(sysfs, 'bits_per_pixel'), '32');
  fs.writeFileSync(path.join(sysfs, 'stride'), '3200');
  fs.writeFileSync(path.join(dir, 'dev-fb0'), Buffer.alloc(3200 * 600, 0x55));
  const input = path.join(dir, 'input');
  fs.mkdirSync(input);
  execFileSync('mkfifo', [path.join(input, 'event0')]);
  const hold = fs.openSync(path.join(input, 'event0'), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const wr = fs.openSync(path.join(input, 'event0'), fs.constants.O_WRONLY);
  fs.closeSync(hold);
  const env = { STUBDM_FBDEV: path.join(dir, 'dev-fb0'), STUBDM_FB_SYSFS: sysfs, STUBDM_INPUT_DIR: input };
  Object.assign(process.env, env);
  t.after(() => {
    for (const k of Object.keys(env)) delete process.env[k];
  });
  const { config } = await parseArgs(['--sim', '-machine', 'xenfv', '-m', '16', '-device', 'VGA']);
  const dm = await start(config, { log: silent, signals: false });
  try {
    const ev = (type: number, code: number, value: number) => {
      const b = Buffer.alloc(24);
      b.writeUInt16LE(type, 16);
      b.writeUInt16LE(code, 18);
      b.writeInt32LE(value, 20);
      return b;
    };
    fs.writeSync(wr, Buffer.concat([ev(1, 30, 1), ev(0, 0, 0)])); // KEY_A down
    const sim = dm.sim!;
    let got = -1;
    for (let i = 0; i < 200 && got < 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      if (sim.inb(0x64) & 1) got = sim.inb(0x60);
    }
    assert.equal(got, 0x1e, 'KEY_A arrives as its set-1 make code');
    // The refresh timer rewrote the file (the 0x55 fill is gone from the first line).
    let first = 0x55555555;
    for (let i = 0; i < 200 && first === 0x55555555; i++) {
      await new Promise((r) => setTimeout(r, 10));
      first = fs.readFileSync(path.join(dir, 'dev-fb0')).readUInt32LE(0);
    }
    assert.notEqual(first, 0x55555555, 'the framebuffer was drawn');
  } finally {
    fs.closeSync(wr);
    await dm.shutdown('test');
  }
});
