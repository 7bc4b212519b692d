/**
 * test/e2e/dom0/xenstat-probe.py (the xlops scenario's libxenstat probe, run
 * in dom0 with python3) against the whole daemon on the simulator: its keys
 * come out, and against stubdm the exchange succeeds. Run with a 500 ms quiet
 * window instead of libxenstat's 10 ms: this machine is loaded, and the probe's
 * own 10 ms verdict is what the e2e run is for. Without a socket it says none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startXenstatDm } from '../helpers/xenstat-dm.ts';

const PROBE = fileURLToPath(new URL('../e2e/dom0/xenstat-probe.py', import.meta.url));
const run = promisify(execFile);

/** The probe's first line as key -> value, and its whole output. */
async function probe(args: string[]): Promise<{ kv: Record<string, string>; out: string; code: number }> {
  // Asynchronously: the device model it talks to runs on this process's event loop.
  const r = await run('python3', [PROBE, ...args], { timeout: 60_000 }).then(
    (x) => ({ ...x, code: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => e,
  );
  const kv = Object.fromEntries(r.stdout.split('\n')[0].split(' ').map((w) => w.split('=') as [string, string]));
  return { kv, out: r.stdout + r.stderr, code: r.code };
}

test('xenstat-probe.py: libxenstat exchange against stubdm: one blockstats document with rd_bytes > 0, inserted.file, times', async (t) => {
  const { qmp } = await startXenstatDm(t);
  const { kv, out, code } = await probe([qmp, '500']);
  assert.equal(code, 0, out);
  assert.equal(kv.xenstat_parse, 'ok', out);
  assert.equal(kv.xenstat_block, 'ok', out);
  for (const k of ['xenstat_first_ms', 'xenstat_caps_ms', 'xenstat_stats_ms']) assert.match(kv[k], /^\d+\.\d$/, `${k} in ${out}`);
  assert.match(out, /^blockstats buffer: b'\{"return": ?\[\{"device": ?"ide0-hd0"/m, out);
  assert.doesNotMatch(out, /late bytes/, out);
});

test('xenstat-probe.py: no socket (a stub domain has none in dom0): none, exit 1', async () => {
  const { kv, code } = await probe(['/nonexistent/qmp-libxenstat-1']);
  assert.equal(code, 1);
  assert.deepEqual([kv.xenstat_caps_ms, kv.xenstat_stats_ms, kv.xenstat_parse, kv.connect], ['none', 'none', 'none', 'No-such-file-or-directory']);
});
