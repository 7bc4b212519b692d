#!/usr/bin/env node
// stubdm launcher: runs the esbuild bundle when there is one (dist/stubdm.mjs:
// an npm package always has it, made by npm pack's prepack), else the
// TypeScript sources through tsx's loader (a git checkout with its
// devDependencies; no --import tsx needed).
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/stubdm.mjs', import.meta.url);
let mod;
if (existsSync(bundle)) {
  mod = await import(bundle.href);
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write(
      'stubdm: no dist/stubdm.mjs and no tsx: in a git checkout run npm ci (tsx is a devDependency); an npm package must be made with npm pack, which bundles dist/stubdm.mjs\n',
    );
    process.exit(1);
  }
  register();
  mod = await import(new URL('../src/main.ts', import.meta.url).href);
}
mod.main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`stubdm: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
