/**
 * src/stubdom/launch.ts (stubdm-start.cjs in the image): runs the CommonJS
 * bundle beside it as node would, through a V8 code cache it can also write.
 * Bundled here the way scripts/bundle.sh does it, next to a stand-in
 * stubdm.cjs that reports what it was given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSync } from 'esbuild';

function launcherDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'stubdm-launch-'));
  buildSync({
    entryPoints: [resolve('src/stubdom/launch.ts')],
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    logLevel: 'warning',
    banner: { js: "const __stubdmImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__stubdmImportMetaUrl' },
    outfile: join(dir, 'stubdm-start.cjs'),
  });
  // The stand-in bundle: what a CJS module sees, and the main-script check main.ts makes.
  writeFileSync(
    join(dir, 'stubdm.cjs'),
    `const { pathToFileURL } = require('node:url');
     const self = pathToFileURL(__filename).href;
     process.stdout.write(JSON.stringify({
       isEntry: self === pathToFileURL(process.argv[1]).href,
       filename: __filename, dirname: __dirname, args: process.argv.slice(2),
       moduleIsObject: typeof module === 'object' && typeof exports === 'object',
       requireResolvesRelative: require.resolve('./stubdm.cjs') === __filename,
     }));\n`,
  );
  return dir;
}

function run(dir: string, nodeFlags: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [...nodeFlags, join(dir, 'stubdm-start.cjs'), '-xen-domid', '3', 'a b'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  return { seen: JSON.parse(r.stdout) as Record<string, unknown>, err: r.stderr };
}

test('the launcher runs the bundle as the main CommonJS script, arguments untouched', () => {
  const dir = launcherDir();
  try {
    const { seen, err } = run(dir, []);
    assert.deepEqual(seen, {
      isEntry: true,
      filename: join(dir, 'stubdm.cjs'),
      dirname: dir,
      args: ['-xen-domid', '3', 'a b'],
      moduleIsObject: true,
      requireResolvesRelative: true,
    });
    assert.equal(err, ''); // no cache: nothing to say
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a code cache written with some flags is used with them and refused, out loud, with others', () => {
  const dir = launcherDir();
  const cache = join(dir, 'stubdm.cjs.cache');
  const flags = ['--max-old-space-size=40', '--max-semi-space-size=1'];
  try {
    run(dir, flags, { STUBDM_CODE_CACHE_WRITE: '1' });
    assert.ok(existsSync(cache) && statSync(cache).size > 0, 'cache written on exit');

    const same = run(dir, flags);
    assert.equal(same.err, '', 'accepted silently');
    assert.equal(same.seen.isEntry, true);

    const other = run(dir, ['--max-lazy']);
    assert.match(other.err, /stubdm\.cjs\.cache rejected/);
    assert.equal(other.seen.isEntry, true, 'still runs, compiled');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unreadable cache does not keep the bundle from running', () => {
  const dir = launcherDir();
  try {
    // a directory where the cache file should be: it exists but cannot be read as a file
    mkdirSync(join(dir, 'stubdm.cjs.cache'));
    const r = run(dir, []);
    assert.equal(r.seen.isEntry, true);
    assert.match(r.err, /cannot read .*stubdm\.cjs\.cache/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
