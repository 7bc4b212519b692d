/**
 * docs/libxl-interface.md against the code, so that the two tables cannot
 * drift from what stubdm does:
 * - table A: each row's example argv goes through the CLI parser; served
 *   rows must parse without a word, ignored rows with exactly the lines the
 *   row names, refused rows must fail with exactly its line;
 * - table B: each row's command, with the arguments the row shows, goes to a
 *   whole device model on the simulator over its QMP socket, on a connection
 *   of its own as libxl opens one per operation; served rows must answer
 *   `return`, refused rows exactly the row's error; a "not sent" row's reason
 *   (a QEMU version, or a command answering CommandNotFound) must hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { CliError, parseArgs } from '../../src/cli/index.ts';
import { start } from '../../src/main.ts';
import { QEMU_VERSION } from '../../src/qmp/core.ts';
import { connectFdQmp, type FdQmpClient } from '../helpers/native-qmp.ts';
import { connectQmp } from '../helpers/qmp-client.ts';

const ROOT = new URL('../../', import.meta.url);
const DOC = fs.readFileSync(new URL('docs/libxl-interface.md', ROOT), 'utf8');
const MAIN_SRC = fs.readFileSync(new URL('src/main.ts', ROOT), 'utf8');

/** The rows of the first table after the heading that starts with `heading`, as cells keyed by the header. */
function tableRows(md: string, heading: string): Array<Record<string, string>> {
  const lines = md.split('\n');
  const at = lines.findIndex((l) => l.startsWith(heading));
  assert.ok(at >= 0, `no heading "${heading}" in docs/libxl-interface.md`);
  let i = at + 1;
  while (i < lines.length && !lines[i].startsWith('|')) i++;
  const cells = (l: string) => l.replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  const header = cells(lines[i]);
  assert.match(lines[i + 1], /^\|(---\|)+$/, `${heading}: the header is not followed by |---|`);
  const rows: Array<Record<string, string>> = [];
  for (i += 2; i < lines.length && lines[i].startsWith('|'); i++) {
    const c = cells(lines[i]);
    // A "|" inside a cell would shift every column after it: refuse the row rather than misread it.
    assert.equal(c.length, header.length, `${heading}: row has ${c.length} cells, header ${header.length}: ${lines[i]}`);
    rows.push(Object.fromEntries(header.map((h, k) => [h, c[k]])));
  }
  return rows;
}

/** The code spans of a cell, in order. */
function spans(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
}

/** A cell's lines: code spans, each marked as printed at start-up if "at start:" comes before it. */
function printedLines(cell: string): Array<{ line: string; atStart: boolean }> {
  const out: Array<{ line: string; atStart: boolean }> = [];
  let atStart = false;
  const re = /`([^`]+)`/g;
  let last = 0;
  for (let m = re.exec(cell); m !== null; m = re.exec(cell)) {
    if (cell.slice(last, m.index).includes('at start:')) atStart = true;
    out.push({ line: m[1], atStart });
    last = re.lastIndex;
  }
  return out;
}

const ARGV_BASE = ['-xen-domid', '1', '-machine', 'xenfv,suppress-vmdesc=on', '-m', '128'];
const ARGV = tableRows(DOC, '## A.');
const QMP = tableRows(DOC, '## B.');

test('docs/libxl-interface.md: both tables are there, every row has a known status', () => {
  assert.ok(ARGV.length >= 60, `table A has ${ARGV.length} rows`);
  assert.ok(QMP.length >= 40, `table B has ${QMP.length} rows`);
  for (const r of ARGV) assert.ok(['served', 'ignored', 'refused'].includes(r.stubdm), `table A: status "${r.stubdm}" in ${r.argument}`);
  for (const r of QMP) assert.ok(['served', 'refused', 'not sent'].includes(r.stubdm), `table B: status "${r.stubdm}" in ${r.command}`);
});

test('table A: each example argv parses (served, ignored) or fails (refused) exactly as the row says', async () => {
  for (const r of ARGV) {
    const ex = spans(r.example);
    assert.equal(ex.length, 1, `table A: one example per row: ${r.argument}`);
    const words = ex[0].split(/\s+/);
    // The example must exercise the row's option, not some other one.
    const option = spans(r.argument)[0]?.split(/\s+/)[0];
    if (option !== undefined && option.startsWith('-')) assert.ok(words.includes(option), `table A: example of ${r.argument} has no ${option}`);
    const lines = printedLines(r['line stubdm prints']);
    const what = `table A row ${r.argument} (${ex[0]})`;
    if (r.stubdm === 'refused') {
      assert.equal(lines.length, 1, `${what}: a refused row names its one error line`);
      await assert.rejects(parseArgs([...ARGV_BASE, ...words]), (e: Error) => {
        assert.ok(e instanceof CliError, `${what}: ${e.message}`);
        assert.equal(e.message, lines[0].line, what);
        return true;
      });
      continue;
    }
    const { warnings } = await parseArgs([...ARGV_BASE, ...words]);
    if (r.stubdm === 'served') {
      assert.equal(r['line stubdm prints'], '-', `${what}: a served row prints nothing`);
      assert.deepEqual(warnings, [], what);
      continue;
    }
    assert.ok(lines.length > 0, `${what}: an ignored row names what stubdm prints`);
    const parser = lines.filter((l) => !l.atStart).map((l) => l.line);
    assert.deepEqual([...warnings].sort(), [...parser].sort(), what);
    for (const l of lines.filter((x) => x.atStart)) {
      // Logged by start() while the machine is built: the line must be the code's own.
      assert.ok(MAIN_SRC.includes(`'${l.line}'`), `${what}: src/main.ts does not log "${l.line}"`);
    }
  }
});

/** The arguments cell as JSON (`-`: none). */
function argsOf(r: Record<string, string>): Record<string, unknown> | undefined {
  if (r.arguments === '-') return undefined;
  const s = spans(r.arguments);
  assert.equal(s.length, 1, `table B ${r.command}: one JSON object of arguments`);
  return JSON.parse(s[0]) as Record<string, unknown>;
}

function commandOf(r: Record<string, string>): string {
  const s = spans(r.command);
  assert.ok(s.length >= 1, `table B: no command in "${r.command}"`);
  return s[0];
}

test('table B: each command, with the arguments shown, gets the answer the row says from a whole device model', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-libxl-if-'));
  const disk = path.join(dir, 'disk.img');
  const cd1 = path.join(dir, 'cd1.iso');
  const cd2 = path.join(dir, 'cd2.iso');
  fs.writeFileSync(disk, Buffer.alloc(1 << 20));
  fs.writeFileSync(cd1, Buffer.alloc(8 * 2048));
  fs.writeFileSync(cd2, Buffer.alloc(16 * 2048));
  const qmp = path.join(dir, 'qmp-libxl-1');
  // What the stub domain's /init passes: its save console as fd set 1 (here a file). The
  // device model owns it from then on and closes it when it stops.
  const saveConsole = fs.openSync(path.join(dir, 'hvc1'), 'w+');
  // The guest the table's arguments are written for: domid 1, a CD-ROM at hdc (ide-5632), -S as with dm_restrict.
  const { config } = await parseArgs([
    ...ARGV_BASE, '--sim', '-m', '16', '-S', '-serial', 'null',
    '-chardev', `socket,id=libxl-cmd,path=${qmp},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-drive', `file=${disk},if=ide,index=0,media=disk,format=raw,cache=writeback`,
    '-drive', `if=none,readonly=on,id=ide-5632,file=${cd1},format=raw`, '-device', 'ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0',
    '-add-fd', `fd=${saveConsole},set=1,opaque=stubdom-save-console`,
  ]);
  const dm = await start(config, { log: pino({ level: 'silent' }), signals: false });
  t.after(async () => {
    await dm.shutdown('test');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One libxl-style connection (greeting and qmp_capabilities done by connectFdQmp), then `run`. */
  const session = async <T>(run: (c: FdQmpClient) => Promise<T>): Promise<T> => {
    const c = await connectFdQmp(qmp);
    try {
      return await run(c);
    } finally {
      c.close();
    }
  };
  /**
   * add-fd with the descriptor libxl attaches: for a save the state file opened for writing,
   * for xl cd-insert the new image, read-only. Resolves with the reply (`fdset-id`).
   */
  const addFd = async (c: FdQmpClient, forSave: boolean, args?: object): Promise<Record<string, any>> => {
    const fd = fs.openSync(forSave ? path.join(dir, 'qemu-save.1') : cd2, forSave ? 'w' : 'r');
    try {
      return await c.cmd('add-fd', args, fd);
    } finally {
      fs.closeSync(fd); // libxl closes its copy once the command is sent too
    }
  };

  const send = async (name: string, args: Record<string, unknown> | undefined): Promise<Record<string, any>> => {
    if (name === 'qmp_capabilities') {
      // The first command on a fresh connection, as every libxl connection sends it.
      const c = await connectQmp(qmp);
      try {
        return await c.cmd(name, args);
      } finally {
        await c.close();
      }
    }
    return session(async (c) => {
      // The save's add-fd has no arguments; cd-insert's names the image in `opaque`.
      if (name === 'add-fd') return addFd(c, args?.opaque === undefined, args);
      let a = args;
      const fdsetName = typeof a?.filename === 'string' ? a.filename : typeof a?.target === 'string' ? a.target : undefined;
      if (fdsetName === '/dev/fdset/0') {
        // The set an add-fd of the same operation made: libxl uses the fdset-id the reply gave.
        const r = await addFd(c, name === 'xen-save-devices-state');
        const set = `/dev/fdset/${r.return['fdset-id']}`;
        a = { ...a, ...(a?.filename !== undefined ? { filename: set } : { target: set }) };
      } else if (name === 'xen-load-devices-state') {
        // libxl's file is in /var/lib/xen; ours is a state this device model saved, with the vCPUs stopped.
        const state = path.join(dir, 'qemu-resume.1');
        assert.deepEqual((await c.cmd('stop')).return, {});
        assert.deepEqual((await c.cmd('xen-save-devices-state', { filename: state })).return, {});
        a = { ...a, filename: state };
      }
      return c.cmd(name, a);
    });
  };

  for (const r of QMP) {
    const name = commandOf(r);
    const what = `table B row ${r.command} ${r.arguments}`;
    const args = argsOf(r);
    if (r.stubdm === 'not sent') {
      // The reason must be one the test can check against the code.
      const older = /older than (\d+)\.(\d+)/.exec(r['sent by (xen 4.17 source)']);
      const fallback = /only when `([a-z_-]+)` answers CommandNotFound/.exec(r['sent by (xen 4.17 source)']);
      assert.ok(older !== null || fallback !== null, `${what}: "not sent" needs a QEMU version or a CommandNotFound fallback as its reason`);
      if (older !== null) {
        const [maj, min] = [Number(older[1]), Number(older[2])];
        assert.ok(QEMU_VERSION.major > maj || (QEMU_VERSION.major === maj && QEMU_VERSION.minor >= min), `${what}: stubdm claims QEMU ${QEMU_VERSION.major}.${QEMU_VERSION.minor}`);
      }
      if (fallback !== null) {
        const reply = await send(fallback[1], undefined);
        assert.ok('return' in reply, `${what}: ${fallback[1]} answers ${JSON.stringify(reply)}`);
      }
      continue;
    }
    const reply = await send(name, args);
    if (r.stubdm === 'served') {
      assert.ok('return' in reply, `${what}: ${JSON.stringify(reply)}`);
    } else {
      const desc = spans(r['what stubdm answers'])[0];
      assert.ok(desc !== undefined, `${what}: a refused row names the error`);
      assert.equal(reply.error?.desc, desc, `${what}: ${JSON.stringify(reply)}`);
    }
  }
});
