import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { pino } from 'pino';
import { Duplex } from 'node:stream';
import { MAX_LINE, MAX_OUTPUT, QmpCore, QmpServer, serveQmpStream, type QmpMachine, type RunState } from '../../src/qmp/index.ts';
import { connectQmp } from '../helpers/qmp-client.ts';
import type { Logger } from '../../src/core/log.ts';

const log = pino({ level: 'silent' });

function machine(initial: RunState = 'prelaunch') {
  const calls: string[] = [];
  let state: RunState = initial;
  const m: QmpMachine & { calls: string[] } = {
    calls,
    runState: () => state,
    cont: () => {
      calls.push('cont');
      state = 'running';
    },
    stop: () => {
      calls.push('stop');
      state = 'paused';
    },
    quit: () => calls.push('quit'),
    chardevs: () => [{ label: 'serial0', filename: 'pty:/dev/pts/3', 'frontend-open': true }],
    vcpus: 2,
    name: 'hvm1',
    setGlobalDirtyLog: (e) => calls.push(`dirty=${e}`),
  };
  return m;
}

test('session: negotiation first, then commands; replies echo ids', () => {
  const m = machine();
  const core = new QmpCore(m);
  const s = core.open(() => {});
  const q = (o: unknown) => s.input(JSON.stringify(o)).map((l) => JSON.parse(l));
  assert.deepEqual(JSON.parse(core.greeting()), {
    QMP: { version: { qemu: { micro: 0, minor: 2, major: 8 }, package: 'stubdm' }, capabilities: [] },
  });
  assert.deepEqual(q({ execute: 'query-status', id: 1 }), [
    { error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" }, id: 1 },
  ]);
  assert.deepEqual(q({ execute: 'qmp_capabilities', id: 2 }), [{ return: {}, id: 2 }]);
  assert.deepEqual(q({ execute: 'qmp_capabilities', id: 3 })[0].error.class, 'CommandNotFound');
  assert.deepEqual(q({ execute: 'query-status', id: 'x' }), [
    { return: { status: 'prelaunch', running: false, singlestep: false }, id: 'x' },
  ]);
  assert.deepEqual(q({ execute: 'cont', id: 4 }), [{ return: {}, id: 4 }]);
  assert.deepEqual(q({ execute: 'query-status' }), [{ return: { status: 'running', running: true, singlestep: false } }]);
  assert.deepEqual(q({ execute: 'stop', id: 5 }), [{ return: {}, id: 5 }]);
  assert.equal(q({ execute: 'query-status', id: 6 })[0].return.status, 'paused');
  assert.deepEqual(q({ execute: 'query-chardev', id: 7 })[0].return, [
    { label: 'serial0', filename: 'pty:/dev/pts/3', 'frontend-open': true },
  ]);
  assert.deepEqual(q({ execute: 'query-cpus-fast', id: 8 })[0].return.map((c: { 'cpu-index': number }) => c['cpu-index']), [0, 1]);
  assert.deepEqual(q({ execute: 'query-vnc', id: 9 }), [{ return: { enabled: false }, id: 9 }]);
  assert.deepEqual(q({ execute: 'query-version', id: 10 })[0].return.qemu, { micro: 0, minor: 2, major: 8 });
  assert.deepEqual(q({ execute: 'xen-set-global-dirty-log', arguments: { enable: true }, id: 11 }), [{ return: {}, id: 11 }]);
  assert.deepEqual(m.calls, ['cont', 'stop', 'dirty=true']);
});

test('session: errors for unknown commands, bad arguments and garbage, QEMU-style', () => {
  const core = new QmpCore(machine());
  const s = core.open(() => {});
  s.input('{"execute":"qmp_capabilities"}');
  const q = (line: string) => s.input(line).map((l) => JSON.parse(l));
  assert.deepEqual(q('{"execute":"frobnicate","id":42}'), [
    { error: { class: 'CommandNotFound', desc: 'The command frobnicate has not been found' }, id: 42 },
  ]);
  assert.deepEqual(q('{"execute":"__proto__","id":1}')[0].error.class, 'CommandNotFound');
  assert.equal(q('{"execute":"xen-set-global-dirty-log","id":1}')[0].error.desc, "Parameter 'enable' is missing");
  assert.equal(
    q('{"execute":"xen-set-global-dirty-log","arguments":{"enable":"yes"},"id":1}')[0].error.desc,
    "Invalid parameter type for 'enable', expected: boolean",
  );
  assert.equal(q('{"execute":"cont","arguments":{"x":1}}')[0].error.desc, "Parameter 'x' is unexpected");
  assert.equal(q('{"execute":"cont","arguments":[]}')[0].error.class, 'GenericError');
  assert.equal(q('{"exec":"cont"}')[0].error.desc, "QMP input member 'exec' is unexpected");
  assert.equal(q('{"id":3}')[0].error.desc, "QMP input lacks member 'execute'");
  assert.equal(q('{"execute":7}')[0].error.desc, "QMP input member 'execute' must be a string");
  assert.equal(q('[1,2]')[0].error.desc, 'QMP input must be a JSON object');
  assert.equal(q('\u0000\u00ff{{{')[0].error.class, 'GenericError');
  assert.deepEqual(q('   '), []);
  assert.equal(q('{"execute":"xen-save-devices-state","arguments":{"filename":"/dev/fdset/1"},"id":9}')[0].error.class, 'GenericError');
});

function tmpSock(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-qmp-')), 'qmp.sock');
}

test('unix socket: libxl-like sequence on two simultaneous connections, events to negotiated sessions', async () => {
  const m = machine();
  const core = new QmpCore(m);
  const srv = new QmpServer(core, log, 'libxl-cmd');
  const p = tmpSock();
  fs.writeFileSync(p, ''); // not a socket: must not be deleted, listen must fail cleanly
  await assert.rejects(srv.listenPath(p), /cannot listen on QMP socket/);
  fs.unlinkSync(p);
  await srv.listenPath(p);
  const a = await connectQmp(p);
  const b = await connectQmp(p);
  assert.equal(a.greeting.QMP.version.qemu.major, 8);
  assert.deepEqual(await a.cmd('qmp_capabilities'), { return: {}, id: 1 });
  assert.deepEqual(await a.cmd('query-chardev'), { return: m.chardevs(), id: 2 });
  assert.deepEqual(await b.cmd('qmp_capabilities'), { return: {}, id: 1 });
  assert.deepEqual(await b.cmd('cont'), { return: {}, id: 2 });
  core.emit('RESUME');
  const ev = (await a.next())!;
  assert.equal(ev.event, 'RESUME');
  assert.ok(ev.timestamp.seconds > 0);
  assert.equal((await b.next())!.event, 'RESUME');
  // two requests in one write, and one split across writes
  a.sock.write('{"execute":"query-status","id":3}\r\n{"execute":"query-sta');
  a.sock.write('tus","id":4}\r\n');
  assert.deepEqual((await a.next())!.id, 3);
  assert.deepEqual((await a.next())!.id, 4);
  await Promise.all([a.close(), b.close()]);
  await srv.close();
  assert.equal(fs.existsSync(p), false, 'socket file removed');
});

test('unix socket: garbage gets an error and the connection lives; a huge line closes only that connection', async () => {
  const core = new QmpCore(machine());
  const srv = new QmpServer(core, log, 'libxl-cmd');
  const p = tmpSock();
  await srv.listenPath(p);
  const bad = await connectQmp(p);
  const good = await connectQmp(p);
  bad.send('\u0001\u0002 not json');
  assert.equal((await bad.next())!.error.class, 'GenericError');
  bad.sock.write('x'.repeat(MAX_LINE + 10));
  assert.match((await bad.next())!.error.desc, /longer than/);
  assert.equal(await bad.next(), null, 'connection closed');
  assert.deepEqual(await good.cmd('qmp_capabilities'), { return: {}, id: 1 });
  await good.close();
  await srv.close();
});

test('unix socket: quit replies, closes, then quits the machine', async () => {
  const m = machine('running');
  const core = new QmpCore(m);
  const p = tmpSock();
  const srv = new QmpServer(core, log, 'libxl-cmd');
  await srv.listenPath(p);
  const c = await connectQmp(p);
  await c.cmd('qmp_capabilities');
  assert.deepEqual(await c.cmd('quit'), { return: {}, id: 2 });
  assert.equal(await c.next(), null);
  assert.deepEqual(m.calls, ['quit']);
  await srv.close();
});

test('inherited listening fd (libxl fd=N): a child process serves QMP on it', async () => {
  const p = tmpSock();
  const pre = net.createServer();
  await new Promise<void>((r) => pre.listen(p, r));
  const fd = (pre as unknown as { _handle: { fd: number } })._handle.fd;
  const script = new URL('../helpers/qmp-fd-child.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    stdio: ['ignore', 'pipe', 'inherit', fd],
    cwd: process.cwd(),
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before serving`)));
  });
  // Closing the parent's server unlinks its path; a hard link keeps the (child's) socket reachable.
  const p2 = `${p}.2`;
  fs.linkSync(p, p2);
  await new Promise<void>((r) => pre.close(() => r()));
  const c = await connectQmp(p2);
  assert.equal(c.greeting.QMP !== undefined, true);
  assert.deepEqual(await c.cmd('qmp_capabilities'), { return: {}, id: 1 });
  assert.deepEqual(await c.cmd('query-status'), { return: { status: 'prelaunch', running: false, singlestep: false }, id: 2 });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  c.send({ execute: 'quit', id: 3 });
  assert.equal(await exited, 0);
});

test('any byte stream carries a session (the stub domain puts QMP on a vchan): framing, quit ends it', async () => {
  const m = machine();
  const out: string[] = [];
  let ended = false;
  const d = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk.toString());
      cb();
    },
    final(cb) {
      ended = true;
      cb();
    },
  });
  serveQmpStream(new QmpCore(m), d);
  d.push('{"execute":"qmp_capabilities","id":1}\r\n{"execute":"cont","id":2}\n');
  d.push('{"execute":"quit","id":3}\r\n');
  for (let i = 0; i < 20 && !ended; i++) await new Promise((r) => setImmediate(r));
  assert.equal(ended, true);
  assert.ok(out.every((l) => l.endsWith('\r\n') && !l.slice(0, -2).includes('\n')), 'one JSON object per CRLF line');
  assert.deepEqual(out.slice(1).map((l) => JSON.parse(l)), [{ return: {}, id: 1 }, { return: {}, id: 2 }, { return: {}, id: 3 }]);
  assert.deepEqual(m.calls, ['cont', 'quit']);
});

// issue #15: argument names that are Object.prototype members get the same answer as any unknown name.
test('session: __proto__, constructor and other prototype names are unexpected arguments, members or commands', () => {
  const s = new QmpCore(machine()).open(() => {});
  s.input('{"execute":"qmp_capabilities"}');
  const q = (line: string) => JSON.parse(s.input(line)[0]).error;
  for (const k of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
    assert.deepEqual(q(`{"execute":"xen-set-global-dirty-log","arguments":{"${k}":true,"enable":true}}`), {
      class: 'GenericError',
      desc: `Parameter '${k}' is unexpected`,
    });
    assert.equal(q(`{"execute":"query-status","arguments":{"${k}":{}}}`).desc, `Parameter '${k}' is unexpected`);
    assert.equal(q(`{"execute":"${k}"}`).class, 'CommandNotFound');
    assert.equal(q(`{"execute":"cont","${k}":1}`).desc, `QMP input member '${k}' is unexpected`);
  }
  assert.equal(q('{"execute":"xen-set-global-dirty-log","arguments":{"__proto__":{"enable":true}}}').desc, "Parameter '__proto__' is unexpected");
});

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { lines, log: pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) }) };
}

// issue #15: a client that sends commands and never reads its replies is dropped once MAX_OUTPUT bytes wait for it.
test('unix socket: a client that never reads is dropped at MAX_OUTPUT', async () => {
  const m = { ...machine(), vcpus: 128 }; // query-cpus-fast answers ~20 KiB
  const { log: wlog, lines } = capture();
  const srv = new QmpServer(new QmpCore(m), wlog, 'libxl-cmd');
  const p = tmpSock();
  await srv.listenPath(p);
  const sock = net.createConnection(p);
  await new Promise((r) => sock.once('connect', r));
  sock.on('error', () => {});
  sock.pause(); // never read
  sock.write('{"execute":"qmp_capabilities"}\n');
  let sent = 0;
  // Unread bytes: MAX_OUTPUT in our queue plus what the kernel buffers; 4x that in replies is plenty.
  while (!lines.some((l) => l.includes('does not read its replies')) && sent * 20000 < 4 * MAX_OUTPUT + 4 * 2 ** 20) {
    sock.write(`{"execute":"query-cpus-fast","id":${sent++}}\n`);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(lines.some((l) => l.includes('does not read its replies')), `not dropped after ${sent} unread replies`);
  sock.destroy();
  await srv.close();
});

test('any byte stream: a peer that never drains is dropped at MAX_OUTPUT', async () => {
  const m = { ...machine(), vcpus: 128 };
  let buffered = 0;
  const d = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, _cb) {
      buffered += chunk.length; // never calls back: nothing is ever drained
    },
  });
  serveQmpStream(new QmpCore(m), d);
  d.push('{"execute":"qmp_capabilities"}\n');
  let sent = 0;
  while (!d.destroyed && sent < 200) {
    d.push(`{"execute":"query-cpus-fast","id":${sent++}}\n`);
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  }
  assert.equal(d.destroyed, true, `still open after ${sent} unread replies`);
  assert.ok(d.writableLength <= MAX_OUTPUT && buffered <= MAX_OUTPUT, `${d.writableLength} bytes held`);
});

// issue #15: sun_path holds 107 bytes; a longer path must be refused, never truncated to another place.
test('unix socket: a path over 107 bytes is refused and nothing is created', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-qmp-'));
  const long = path.join(dir, 'a'.repeat(120 - dir.length));
  const srv = new QmpServer(new QmpCore(machine()), log, 'libxl-cmd');
  await assert.rejects(srv.listenPath(long), (e: Error) => /cannot listen on QMP socket .*1 to 107 bytes/.test(e.message) && !e.message.includes('\n'));
  assert.deepEqual(fs.readdirSync(dir), []);
  await assert.rejects(srv.listenPath('/nonexistent-stubdm-dir/q.sock'), (e: Error) => /No such file or directory/.test(e.message) && !/permission/i.test(e.message));
  await srv.close();
});

// issue #14: libxl tells the operator only that a command failed; our log says which error.
test('every refused command reaches onCommandFailed with its error; internal errors go to onInternalError only', () => {
  const failed: string[] = [];
  const internal: string[] = [];
  const m = machine();
  m.stop = () => {
    throw new Error('device bug');
  };
  const s = new QmpCore(m, (cmd) => void internal.push(cmd), undefined, (cmd, cls, desc) => void failed.push(`${cmd}|${cls}|${desc}`)).open(() => {});
  s.input('{"execute":"cont"}');
  s.input('{"execute":"qmp_capabilities"}');
  s.input('not json');
  s.input('{"execute":"no-such-command"}');
  s.input('{"execute":"query-status","arguments":{"x":1}}');
  s.input('{"execute":"query-status"}');
  s.input('{"execute":"stop"}');
  assert.deepEqual(failed, [
    "cont|CommandNotFound|Expecting capabilities negotiation with 'qmp_capabilities'",
    'undefined|GenericError|JSON parse error, invalid input',
    'no-such-command|CommandNotFound|The command no-such-command has not been found',
    "query-status|GenericError|Parameter 'x' is unexpected",
  ]);
  assert.deepEqual(internal, ['stop']);
});
