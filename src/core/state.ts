/**
 * Checked reading of saved device state. A restore() reads every field
 * through a StateReader first (each getter checks type and range and names
 * the field on failure), builds the new state from what it read, and only
 * then assigns it: saved state is guest-influenced input like any other
 * (it may come from another host, a truncated file or a hostile stream).
 */

/** Saved state that cannot be loaded: the message names the field. */
export class StateError extends Error {
  override name = 'StateError';
}

function describe(v: unknown): string {
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  return String(v);
}

export class StateReader {
  private readonly o: Record<string, unknown>;

  constructor(
    value: unknown,
    /** Where this object sits, for messages ("ide.channels[0].bm"). */
    readonly path: string,
  ) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
      throw new StateError(`${path}: expected an object, got ${describe(value)}`);
    }
    this.o = value as Record<string, unknown>;
  }

  private fail(key: string, want: string, got: unknown): never {
    throw new StateError(`${this.path}.${key}: expected ${want}, got ${describe(got)}`);
  }

  /** Whether the saved object has this field (for optional fields). */
  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.o, key) && this.o[key] !== undefined;
  }

  private get(key: string): unknown {
    return Object.prototype.hasOwnProperty.call(this.o, key) ? this.o[key] : undefined;
  }

  /** An integer in [min, max]. */
  int(key: string, min: number, max: number): number {
    const v = this.get(key);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(key, `an integer in [${min}, ${max}]`, v);
    return v;
  }

  /** A finite number in [min, max] (times, which may be fractional). */
  num(key: string, min: number, max: number): number {
    const v = this.get(key);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) this.fail(key, `a number in [${min}, ${max}]`, v);
    return v;
  }

  /** An unsigned integer of `bits` bits (8, 16 or 32). */
  u(key: string, bits: 8 | 16 | 32): number {
    return this.int(key, 0, bits === 32 ? 0xffffffff : (1 << bits) - 1);
  }

  bool(key: string): boolean {
    const v = this.get(key);
    if (typeof v !== 'boolean') this.fail(key, 'true or false', v);
    return v;
  }

  str(key: string, maxLen = 4096): string {
    const v = this.get(key);
    if (typeof v !== 'string' || v.length > maxLen) this.fail(key, `a string of at most ${maxLen} characters`, v);
    return v;
  }

  /** One of a fixed set of strings (a state name, a transfer kind). */
  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.get(key);
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) this.fail(key, `one of ${allowed.join('|')}`, v);
    return v as T;
  }

  /** A copy of a byte array of exactly `len` bytes (or any length up to `len` with exact=false). */
  bytes(key: string, len: number, exact = true): Uint8Array {
    const v = this.get(key);
    if (!(v instanceof Uint8Array) || (exact ? v.length !== len : v.length > len)) {
      this.fail(key, exact ? `${len} bytes` : `at most ${len} bytes`, v);
    }
    return new Uint8Array(v);
  }

  /** An array of `len` integers in [min, max] (len -1: any length up to maxLen). */
  ints(key: string, len: number, min: number, max: number, maxLen = len): number[] {
    const v = this.get(key);
    if (!Array.isArray(v) || (len >= 0 ? v.length !== len : v.length > maxLen)) {
      this.fail(key, len >= 0 ? `an array of ${len} integers` : `an array of at most ${maxLen} integers`, v);
    }
    return v.map((x, i) => {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) {
        throw new StateError(`${this.path}.${key}[${i}]: expected an integer in [${min}, ${max}], got ${describe(x)}`);
      }
      return x;
    });
  }

  /** A nested object. */
  obj(key: string): StateReader {
    return new StateReader(this.get(key), `${this.path}.${key}`);
  }

  /** A nested object or null. */
  objOrNull(key: string): StateReader | null {
    const v = this.get(key);
    return v === null ? null : new StateReader(v, `${this.path}.${key}`);
  }

  /** An array of `len` objects (len -1: any length up to maxLen). */
  objs(key: string, len: number, maxLen = len): StateReader[] {
    const v = this.get(key);
    if (!Array.isArray(v) || (len >= 0 ? v.length !== len : v.length > maxLen)) {
      this.fail(key, len >= 0 ? `an array of ${len} objects` : `an array of at most ${maxLen} objects`, v);
    }
    return v.map((x, i) => new StateReader(x, `${this.path}.${key}[${i}]`));
  }

  /** A remaining-time field of a pending timer: null (not armed) or ms >= 0. */
  timer(key: string, maxMs = 86_400_000): number | null {
    const v = this.get(key);
    if (v === null) return null;
    return this.num(key, 0, maxMs);
  }
}
