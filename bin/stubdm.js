#!/usr/bin/env node
// stubdm launcher: runs the esbuild bundle when there is one (dist/stubdm.mjs),
// else the TypeScript sources through tsx's loader (no --import tsx needed).
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/stubdm.mjs', import.meta.url);
let mod;
if (existsSync(bundle)) {
  mod = await import(bundle.href);
} else {
  const { register } = await import('tsx/esm/api');
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
