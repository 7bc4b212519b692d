// The npm package (issue #14): what `npm pack` ships, that the bundle an installed
// stubdm runs needs no devDependency, that native/binding.gyp (built at install)
// covers the addons, and that the loaders find addons in both layouts. No network:
// `npm pack --dry-run --ignore-scripts` on a copy of the tracked tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAddonPath, nativeHelperPath } from '../../src/native-paths.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  files: string[];
  os: string[];
  cpu: string[];
  license: string;
  scripts: Record<string, string>;
};

/** Every bare specifier a bundle imports: static `import ... from "x"`, `import "x"`, `import("x")`, `require("x")`. */
function importsOf(js: string): Set<string> {
  const out = new Set<string>();
  for (const re of [/^\s*import\s[^;]*?\sfrom\s*"([^"]+)"/gm, /^\s*import\s*"([^"]+)"/gm, /\bimport\(\s*"([^"]+)"\s*\)/g, /\brequire\(\s*"([^"]+)"\s*\)/g]) {
    for (const m of js.matchAll(re)) out.add(m[1]!);
  }
  return out;
}

test('importsOf sees static, bare and dynamic imports', () => {
  assert.deepEqual([...importsOf('import a from "x";\nimport { b } from "node:fs";\nimport "y";\nawait import("z");\n')].sort(), ['node:fs', 'x', 'y', 'z']);
});

test('the bundle npm pack ships imports only node builtins and runtime dependencies', () => {
  // Under the checkout, so that the bundle's --help check resolves node_modules.
  mkdirSync(join(ROOT, 'build'), { recursive: true });
  const out = mkdtempSync(join(ROOT, 'build', 'pack-test-'));
  try {
    const r = spawnSync('bash', [join(ROOT, 'scripts/pack-bundle.sh'), out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const specs = importsOf(readFileSync(join(out, 'stubdm.mjs'), 'utf8'));
    assert.ok(specs.has('koffi') && specs.has('yargs'), `runtime dependencies stay imports: ${[...specs].join(' ')}`);
    const builtins = new Set(builtinModules);
    for (const s of specs) {
      if (s.startsWith('node:') || builtins.has(s)) continue;
      const name = s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!;
      assert.ok(name in pkg.dependencies, `dist/stubdm.mjs imports ${s}, which is not in dependencies (a devDependency is absent after npm install -g)`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('npm pack ships bin, the bundle, LICENSE, README, docs, examples and the addon sources; not tests, sources or build output', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'stubdm-pack-'));
  try {
    const tracked = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(tracked.status, 0, tracked.stderr);
    for (const f of tracked.stdout.split('\0').filter(Boolean)) {
      mkdirSync(dirname(join(tmp, f)), { recursive: true });
      cpSync(join(ROOT, f), join(tmp, f));
    }
    // What prepack and the install script leave in a tree, and what a developer has lying around.
    for (const f of ['dist/stubdm.mjs', 'native/build/Release/fdwatch.node', 'native/build/Release/stubdm-pty', 'build/native/fdwatch.node', 'build/stubdm-pty']) {
      mkdirSync(dirname(join(tmp, f)), { recursive: true });
      writeFileSync(join(tmp, f), 'x');
    }
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: tmp, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const files = new Set((JSON.parse(r.stdout) as [{ files: { path: string }[] }])[0].files.map((f) => f.path));
    for (const f of ['LICENSE', 'README.md', 'package.json', 'bin/stubdm.js', 'dist/stubdm.mjs', 'native/binding.gyp', 'native/fdwatch.c', 'native/unixsock.c', 'native/stubdm-pty.c', 'examples/xl-dom0.cfg', 'examples/xl-stubdom.cfg', 'docs/xen-contract.md']) {
      assert.ok(files.has(f), `${f} missing from the package`);
    }
    for (const f of files) {
      assert.doesNotMatch(f, /^(test|src|scripts|rootfs|build|native\/build|node_modules)\//, `${f} should not be in the package`);
      assert.doesNotMatch(f, /\.node$/, `${f}: addons are built at install, not shipped`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('package.json: MIT with a LICENSE file, linux/x64, addons built by node-gyp at install, dist removed after pack', () => {
  assert.equal(pkg.license, 'MIT');
  assert.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /^MIT License\n/);
  assert.deepEqual(pkg.os, ['linux']);
  assert.deepEqual(pkg.cpu, ['x64']);
  // node-gyp builds the addons; only a git checkout (where scripts/build-native.sh builds them
  // into build/) may go on when it fails: an installed package has no .git and fails loudly.
  assert.match(pkg.scripts.install!, /^node-gyp rebuild -C native(?: \|\| \{ test -d \.git && .*; \})?$/);
  assert.match(pkg.scripts.prepack!, /pack-bundle\.sh/);
  assert.equal(pkg.scripts.postpack, 'rm -rf dist');
});

test('native/binding.gyp builds every N-API addon in native/ and the pty helper, from files the package ships', () => {
  // gyp files are Python literals: comments, single quotes, trailing commas.
  const gypText = readFileSync(join(ROOT, 'native/binding.gyp'), 'utf8')
    .replace(/^\s*#.*$/gm, '')
    .replace(/'/g, '"')
    .replace(/,(\s*[\]}])/g, '$1');
  const gyp = JSON.parse(gypText) as { targets: { target_name: string; type?: string; sources: string[] }[] };
  const addons = readdirSync(join(ROOT, 'native'))
    .filter((f) => f.endsWith('.c') && readFileSync(join(ROOT, 'native', f), 'utf8').includes('#include <node_api.h>'))
    .map((f) => f.slice(0, -2))
    .sort();
  assert.ok(addons.length >= 2, `found addons: ${addons.join(' ')}`);
  const modules = gyp.targets.filter((t) => (t.type ?? 'loadable_module') === 'loadable_module');
  assert.deepEqual(modules.map((t) => t.target_name).sort(), addons);
  const pty = gyp.targets.find((t) => t.target_name === 'stubdm-pty');
  assert.equal(pty?.type, 'executable');
  for (const t of gyp.targets) for (const s of t.sources) assert.ok(pkg.files.includes(`native/${s}`), `native/${s} is built at install but not in files`);
});

test('the loaders find addons and helpers in a checkout (build/), an installed package (native/build/Release/) or $STUBDM_*', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'stubdm-paths-'));
  const saved = { dir: process.env.STUBDM_NATIVE_DIR, pty: process.env.STUBDM_PTY_HELPER };
  delete process.env.STUBDM_NATIVE_DIR;
  delete process.env.STUBDM_PTY_HELPER;
  try {
    const root = `${tmp}/`;
    // Nothing built: the error names where this kind of tree builds it.
    assert.equal(nativeAddonPath('unixsock', root), `${root}native/build/Release/unixsock.node`);
    mkdirSync(join(tmp, 'src'));
    writeFileSync(join(tmp, 'src/main.ts'), '');
    assert.equal(nativeAddonPath('unixsock', root), `${root}build/native/unixsock.node`);
    assert.equal(nativeHelperPath('stubdm-pty', 'STUBDM_PTY_HELPER', root), `${root}build/stubdm-pty`);
    mkdirSync(join(tmp, 'native/build/Release'), { recursive: true });
    writeFileSync(join(tmp, 'native/build/Release/unixsock.node'), '');
    writeFileSync(join(tmp, 'native/build/Release/stubdm-pty'), '');
    assert.equal(nativeAddonPath('unixsock', root), `${root}native/build/Release/unixsock.node`);
    assert.equal(nativeHelperPath('stubdm-pty', 'STUBDM_PTY_HELPER', root), `${root}native/build/Release/stubdm-pty`);
    // A checkout's scripts/build-native.sh output wins over a node-gyp build.
    mkdirSync(join(tmp, 'build/native'), { recursive: true });
    writeFileSync(join(tmp, 'build/native/unixsock.node'), '');
    writeFileSync(join(tmp, 'build/stubdm-pty'), '');
    assert.equal(nativeAddonPath('unixsock', root), `${root}build/native/unixsock.node`);
    assert.equal(nativeHelperPath('stubdm-pty', 'STUBDM_PTY_HELPER', root), `${root}build/stubdm-pty`);
    process.env.STUBDM_NATIVE_DIR = '/opt/stubdm/native/';
    process.env.STUBDM_PTY_HELPER = '/opt/stubdm/bin/stubdm-pty';
    assert.equal(nativeAddonPath('fdwatch', root), '/opt/stubdm/native/fdwatch.node');
    assert.equal(nativeHelperPath('stubdm-pty', 'STUBDM_PTY_HELPER', root), '/opt/stubdm/bin/stubdm-pty');
  } finally {
    if (saved.dir === undefined) delete process.env.STUBDM_NATIVE_DIR;
    else process.env.STUBDM_NATIVE_DIR = saved.dir;
    if (saved.pty === undefined) delete process.env.STUBDM_PTY_HELPER;
    else process.env.STUBDM_PTY_HELPER = saved.pty;
    rmSync(tmp, { recursive: true, force: true });
  }
});
