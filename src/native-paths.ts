/**
 * Where the native addons (native/*.c built as <name>.node) and helper
 * programs (stubdm-pty) are, for every way stubdm runs:
 * - $STUBDM_NATIVE_DIR / $STUBDM_PTY_HELPER when set (the stub domain's
 *   /init, the e2e dom0 wrapper);
 * - a git checkout: build/native/<name>.node and build/<name>, made by
 *   scripts/build-native.sh;
 * - an installed package (npm install -g, npx): native/build/Release/, made by
 *   node-gyp from native/binding.gyp at install time.
 * The package root is this module's parent directory: true for
 * src/native-paths.ts and equally for the bundles, which sit one level down
 * too (dist/stubdm.mjs from npm pack, build/stubdm.mjs in the e2e dom0).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));

/** What to tell an operator when a native file is missing, for both ways of getting stubdm. */
export const NATIVE_BUILD_HINT =
  'run scripts/build-native.sh in a git checkout (needs cc and the Node.js headers); an installed package builds it at install: npm rebuild -g stubdm';

/**
 * The first of [checkout, installed] that exists; if neither does, the one for
 * this kind of tree (a checkout has src/main.ts), so that the error names the
 * place its build step writes.
 */
function firstExisting(pkgRoot: string, checkout: string, installed: string): string {
  if (existsSync(checkout)) return checkout;
  if (existsSync(installed)) return installed;
  return existsSync(`${pkgRoot}src/main.ts`) ? checkout : installed;
}

/** The path of native addon `name` (fdwatch, unixsock): <dir>/<name>.node. */
export function nativeAddonPath(name: string, pkgRoot: string = root): string {
  const dir = process.env.STUBDM_NATIVE_DIR;
  if (dir) return `${dir.replace(/\/$/, '')}/${name}.node`;
  return firstExisting(pkgRoot, `${pkgRoot}build/native/${name}.node`, `${pkgRoot}native/build/Release/${name}.node`);
}

/** The path of helper program `name` (stubdm-pty); `envVar` overrides it. */
export function nativeHelperPath(name: string, envVar: string, pkgRoot: string = root): string {
  const env = process.env[envVar];
  if (env) return env;
  return firstExisting(pkgRoot, `${pkgRoot}build/${name}`, `${pkgRoot}native/build/Release/${name}`);
}
