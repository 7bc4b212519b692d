// The FFI declarations without Xen: every prototype in src/xen/ffi.ts is
// compiled against the installed headers as a function pointer initialised
// with the real function (-Werror: any type mismatch fails), koffi's view of
// each argument (size, pointee size, out direction) is compared with C's
// sizeof of the same parameter, and the libraries load with every symbol.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  OPAQUES,
  PROTOTYPES,
  XenUnavailableError,
  bindLibrary,
  describeBindings,
  koffiAbsProbe,
  koffiProbe,
  prototypeName,
} from '../../src/xen/ffi.ts';

interface Param {
  type: string; // C type, annotations removed
  out: boolean;
}
interface Proto {
  name: string;
  ret: string;
  params: Param[];
  cDecl: string; // the prototype as plain C
}

function parse(proto: string): Proto {
  const cDecl = proto.replace(/_Out_\s*/g, '').replace(/\*!/g, '*');
  const name = prototypeName(proto);
  const open = cDecl.indexOf('(');
  const ret = cDecl.slice(0, cDecl.lastIndexOf(name, open)).trim();
  const inner = proto.slice(proto.indexOf('(') + 1, proto.lastIndexOf(')')).trim();
  const params =
    inner === 'void' || inner === ''
      ? []
      : inner.split(',').map((raw) => {
          const out = raw.includes('_Out_');
          const t = raw.replace(/_Out_\s*/g, '').trim();
          const m = /^(.*?)([A-Za-z_][A-Za-z0-9_]*)$/.exec(t);
          assert.ok(m, `parameter ${raw} of ${name} has a name`);
          return { type: m[1].trim(), out };
        });
  return { name, ret, params, cDecl };
}

const all: Proto[] = Object.values(PROTOTYPES)
  .flat()
  .map((p) => parse(p));

function pointee(t: string): string | null {
  if (!t.endsWith('*')) return null;
  return t.slice(0, -1).trim();
}
function isOpaqueOrVoid(t: string): boolean {
  const base = t.replace(/\bconst\b/g, '').trim();
  return base === 'void' || (OPAQUES as readonly string[]).includes(base);
}

let dir: string;
let sizes: Map<string, number>;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'stubdm-ffi-'));
  const lines: string[] = [
    '#include <stdio.h>',
    '#include <stdint.h>',
    '#include <stdbool.h>',
    '#include <stdlib.h>',
    '#include <string.h>',
    '#include <unistd.h>',
    '#include <xentoollog.h>',
    '#include <xendevicemodel.h>',
    '#include <xenforeignmemory.h>',
    '#include <xenevtchn.h>',
    '#include <xenstore.h>',
    '#include <xenctrl.h>',
    '#include <xentoolcore.h>',
    'typedef struct xs_handle xs_handle;',
  ];
  all.forEach((p, i) => {
    // "int f(args)" -> "int (*chk_i)(args) = f;": the compiler compares our text with the header's.
    const decl = p.cDecl.replace(new RegExp(`\\b${p.name}\\s*\\(`), `(*chk_${i})(`);
    lines.push(`${decl} = ${p.name};`);
  });
  lines.push('int main(void) {');
  all.forEach((p, i) => {
    lines.push(`  (void)chk_${i};`);
    lines.push(`  printf("${p.name}.ret %zu\\n", ${p.ret === 'void' ? '(size_t)0' : `sizeof(${p.ret})`});`);
    p.params.forEach((a, j) => {
      lines.push(`  printf("${p.name}.${j} %zu\\n", sizeof(${a.type}));`);
      const pt = pointee(a.type);
      if (pt !== null && !isOpaqueOrVoid(pt)) lines.push(`  printf("${p.name}.${j}.pointee %zu\\n", sizeof(${pt}));`);
    });
  });
  lines.push('  return 0;', '}');
  writeFileSync(join(dir, 'ffi.c'), lines.join('\n') + '\n');
  execFileSync(
    'cc',
    [
      '-std=gnu11', '-D__XEN_TOOLS__', '-Wall', '-Werror', '-Wno-unused-variable', '-o', join(dir, 'ffi'), join(dir, 'ffi.c'),
      // Linking also proves every symbol is exported by the installed libraries.
      '-lxendevicemodel', '-lxenforeignmemory', '-lxenevtchn', '-lxenstore', '-lxenctrl', '-lxentoolcore',
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const out = execFileSync(join(dir, 'ffi'), { encoding: 'utf8' });
  sizes = new Map(out.trim().split('\n').map((l) => l.split(' ')).map(([k, n]) => [k, Number(n)] as [string, number]));
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('every prototype matches the installed header exactly (compiled with -Werror)', () => {
  // before() compiled them; this guards against an empty table.
  assert.ok(all.length >= 45, `${all.length} prototypes`);
  for (const name of [
    'xendevicemodel_create_ioreq_server',
    'xendevicemodel_set_isa_irq_level',
    'xendevicemodel_nr_vcpus',
    'xenforeignmemory_map_resource',
    'xenevtchn_pending',
    'xs_directory',
  ]) {
    assert.ok(all.some((p) => p.name === name), name);
  }
});

test("koffi's argument and result sizes equal C's for every bound function", () => {
  const k = describeBindings();
  for (const p of all) {
    const kb = k[p.name];
    assert.ok(kb, `${p.name} bound`);
    assert.equal(kb.result, sizes.get(`${p.name}.ret`), `${p.name} result size`);
    assert.equal(kb.args.length, p.params.length, `${p.name} arity`);
    p.params.forEach((a, j) => {
      const ka = kb.args[j];
      assert.equal(ka.size, sizes.get(`${p.name}.${j}`), `${p.name} arg ${j} (${a.type}) size`);
      const cPointee = sizes.get(`${p.name}.${j}.pointee`);
      if (ka.out) assert.equal(ka.pointee, cPointee, `${p.name} arg ${j} (${a.type}) pointee size`);
      else if (cPointee !== undefined && ka.pointee !== undefined) assert.equal(ka.pointee, cPointee, `${p.name} arg ${j} pointee`);
      assert.equal(ka.out, a.out, `${p.name} arg ${j} direction`);
    });
  }
});

test('every pointer the library writes through is marked _Out_', () => {
  for (const p of all) {
    p.params.forEach((a, j) => {
      const pt = pointee(a.type);
      const writable = pt !== null && !/\bconst\b/.test(a.type) && !isOpaqueOrVoid(pt);
      assert.equal(a.out, writable, `${p.name} arg ${j} (${a.type})`);
    });
  }
});

test('a missing library is a one-line XenUnavailableError naming it and what to do', () => {
  assert.throws(
    () => bindLibrary('devicemodel', 'libxendevicemodel.so.999'),
    (e: unknown) => {
      assert.ok(e instanceof XenUnavailableError);
      assert.match(e.message, /^stubdm: cannot load libxendevicemodel\.so\.999 \(.+\): install the Xen/);
      assert.ok(!e.message.includes('\n'));
      return true;
    },
  );
});

test('a trivial libc call goes through koffi (bench probe)', () => {
  const getpid = koffiProbe();
  assert.equal(getpid(), process.pid);
  assert.equal(koffiAbsProbe()(-7), 7);
});
