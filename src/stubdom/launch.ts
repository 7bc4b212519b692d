/**
 * `stubdm-start.cjs [stubdm arguments]`: how the stub domain's /init starts
 * stubdm. It runs the CommonJS bundle beside it (stubdm.cjs) exactly as node
 * would, but compiled through V8's code cache (stubdm.cjs.cache, written at
 * build time by scripts/bundle.sh): the functions stubdm runs up to its QMP
 * socket are deserialized instead of parsed and compiled, which under TCG
 * saved ~17% of exec-to-QMP (2.91 -> 2.41 guest s, QEMU_BOOT_ICOUNT=2, 256 MiB).
 *
 * V8 accepts a cache only from the same V8 build with the same V8 flags; a
 * rejected (or missing) cache costs nothing but the time it would have saved,
 * and is said once on stderr. STUBDM_CODE_CACHE_WRITE=1 writes the cache when
 * the process exits (the build runs `--sim` to its QMP socket, then SIGTERM).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const dir = dirname(fileURLToPath(import.meta.url));
const bundle = join(dir, 'stubdm.cjs');
const cacheFile = `${bundle}.cache`;
const writeCache = process.env.STUBDM_CODE_CACHE_WRITE === '1';

/** The cache, or undefined: a missing or unreadable cache must never keep stubdm from starting. */
function readCache(): Buffer | undefined {
  if (writeCache || !existsSync(cacheFile)) return undefined;
  try {
    return readFileSync(cacheFile);
  } catch (err) {
    process.stderr.write(`stubdm: cannot read ${cacheFile} (${(err as Error).message}): compiling instead\n`);
    return undefined;
  }
}
const cachedData = readCache();
const script = new Script(Module.wrap(readFileSync(bundle, 'utf8')), { filename: bundle, cachedData });
if (cachedData !== undefined && script.cachedDataRejected === true) {
  process.stderr.write(`stubdm: ${cacheFile} rejected (node or its flags differ from the build's): compiling instead\n`);
}
if (writeCache) process.on('exit', () => writeFileSync(cacheFile, script.createCachedData()));

// The bundle decides it is the main script by comparing its URL with argv[1].
process.argv[1] = bundle;
const module = { exports: {} };
(script.runInThisContext() as (...a: unknown[]) => void).call(module.exports, module.exports, createRequire(bundle), module, bundle, dir);
