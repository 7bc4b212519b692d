/**
 * QEMU's `key=value,key=value` option strings (QemuOpts): a doubled comma
 * is a literal comma, a first element without `=` is the implied key
 * (`-device e1000,...` -> driver=e1000), and a later bare word is a flag
 * (`server` = `server=on`, `nowait` = `wait=off`).
 */
export class CliError extends Error {}

export interface ParsedOpts {
  /** In order, last one wins for lookups through get(). */
  entries: Array<[string, string]>;
  get(key: string): string | undefined;
  has(key: string): boolean;
  keys(): string[];
}

/** Old-style bare flags QEMU accepts with a `no` prefix (`nowait`). */
const NEGATABLE = new Set(['wait', 'server', 'delay', 'telnet']);

export function parseOpts(option: string, text: string, implied?: string): ParsedOpts {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === ',') {
      if (text[i + 1] === ',') {
        cur += ',';
        i++;
        continue;
      }
      parts.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  parts.push(cur);
  const entries: Array<[string, string]> = [];
  parts.forEach((p, i) => {
    if (p === '') {
      if (i === 0 && parts.length === 1) return;
      throw new CliError(`-${option} ${text}: empty element`);
    }
    const eq = p.indexOf('=');
    if (eq >= 0) {
      const key = p.slice(0, eq);
      if (key === '') throw new CliError(`-${option} ${text}: "${p}" has no key`);
      entries.push([key, p.slice(eq + 1)]);
    } else if (i === 0 && implied !== undefined) {
      entries.push([implied, p]);
    } else if (p.startsWith('no') && NEGATABLE.has(p.slice(2))) {
      entries.push([p.slice(2), 'off']);
    } else {
      entries.push([p, 'on']);
    }
  });
  return optsFrom(entries);
}

/** Options from key/value pairs (a legacy form rewritten into the keys it stands for). */
export function optsFrom(entries: Array<[string, string]>): ParsedOpts {
  const map = new Map(entries);
  return {
    entries,
    get: (k) => map.get(k),
    has: (k) => map.has(k),
    keys: () => [...map.keys()],
  };
}

/** on/off as QEMU spells them (also yes/no, true/false). */
export function parseBool(option: string, key: string, v: string | undefined, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  switch (v) {
    case 'on':
    case 'yes':
    case 'true':
      return true;
    case 'off':
    case 'no':
    case 'false':
      return false;
    default:
      throw new CliError(`-${option}: ${key}=${v} is not on/off`);
  }
}

export function parseUint(option: string, what: string, v: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^(0|[1-9][0-9]*|0x[0-9a-fA-F]+)$/.test(v)) throw new CliError(`-${option}: ${what} "${v}" is not a number`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n > max) throw new CliError(`-${option}: ${what} ${v} is out of range (max ${max})`);
  return n;
}

const SUFFIX: Record<string, number> = { b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** A size like QEMU's: a number with an optional K/M/G/T/B suffix; no suffix means `unit` bytes. */
export function parseSize(option: string, what: string, v: string, unit: number): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)([bkmgtBKMGT])?$/.exec(v);
  if (!m) throw new CliError(`-${option}: ${what} "${v}" is not a size (a number, optionally with K, M, G or T)`);
  const mult = m[2] ? SUFFIX[m[2].toLowerCase()] : unit;
  const bytes = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(bytes)) throw new CliError(`-${option}: ${what} ${v} is too large`);
  return bytes;
}
