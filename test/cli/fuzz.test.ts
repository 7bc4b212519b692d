/** Random argv and QMP input: only CliError / QMP error objects come out, never a crash. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError, parseArgs } from '../../src/cli/index.ts';
import { QmpCore } from '../../src/qmp/index.ts';
import { prng } from '../helpers/prng.ts';


const OPTS = ['-xen-domid', '-machine', '-m', '-smp', '-serial', '-chardev', '-mon', '-drive', '-device', '-netdev', '-net',
  '-boot', '-name', '-S', '-vnc', '-k', '--sim', '-incoming', '-runas', '-bogus', '--log-level', '-M'];
const VALUES = ['1', '0', '-1', 'xenfv', 'pc', 'pc,accel=xen', '128', '2,maxcpus=1', 'file:/tmp/x', 'pty', 'none', 'chardev:a',
  'socket,id=a,path=/x,server=on,wait=off', 'file=/a,index=0', 'file=/a,index=9', 'media=cdrom', 'e1000,netdev=n',
  'type=tap,id=n', 'order=cda', ',,', '=', 'a=b=c', '', 'id=', 'null,id=a', 'chardev=a,mode=control', 'debug', '😀'];

test('random argv: parseArgs resolves or throws a one-line CliError', async () => {
  const r = prng(7);
  for (let i = 0; i < 400; i++) {
    const argv: string[] = [];
    const n = Math.floor(r() * 8);
    for (let j = 0; j < n; j++) {
      argv.push(OPTS[Math.floor(r() * OPTS.length)]);
      if (r() < 0.8) argv.push(VALUES[Math.floor(r() * VALUES.length)]);
    }
    try {
      await parseArgs(argv);
    } catch (e) {
      assert.ok(e instanceof CliError, `${JSON.stringify(argv)} threw ${String(e)}`);
      assert.ok(!(e as Error).message.includes('\n'));
    }
  }
});

test('random QMP input: every reply is one line of JSON with return or error', () => {
  const core = new QmpCore({
    runState: () => 'running', cont() {}, stop() {}, quit() {}, chardevs: () => [], vcpus: 1, name: null, setGlobalDirtyLog() {},
  });
  const s = core.open(() => {});
  const r = prng(11);
  const pieces = ['{', '}', '"execute"', ':', '"cont"', '"qmp_capabilities"', ',', '"id"', '1', '"arguments"', '[', ']', 'null',
    '"enable"', 'true', '"x"', '\u0000', '\\', '"', '1e999', '"query-status"', '"quit"'];
  for (let i = 0; i < 3000; i++) {
    let line = '';
    const n = Math.floor(r() * 12);
    for (let j = 0; j < n; j++) line += pieces[Math.floor(r() * pieces.length)];
    for (const reply of s.input(line)) {
      assert.ok(!reply.includes('\n') && !reply.includes('\r'));
      const o = JSON.parse(reply);
      assert.ok('return' in o || 'error' in o, reply);
    }
  }
});
