/**
 * Register files as tables (docs/architecture.md §6): each register is an entry with its
 * offset, width, flags and optional handlers, and one dispatcher does what
 * every device would otherwise hand-write: find the register, apply partial
 * (byte/word) accesses, read-only, read-to-clear and write-1-to-clear bits,
 * writable masks, and call the side effect after the new value has landed.
 *
 * The table is built once per device class (a static const); each instance
 * keeps its register values in a plain Uint32Array from `table.storage()`,
 * which is what a snapshot saves. Lookup is an array index per byte offset
 * (no search, no allocation on the access path).
 *
 *   const TABLE = new RegisterTable<Nic>('e1000', 0x20000, [
 *     { name: 'CTRL', off: 0x0000, width: 4, write: (d, v) => d.ctrlWritten(v) },
 *     { name: 'ICR',  off: 0x00c0, width: 4, flags: RC },
 *     { name: 'RA',   off: 0x5400, width: 4, count: 32 },
 *   ]);
 *   read(off, size)  { return TABLE.read(this, this.regs, off, size); }
 */
import { sizeMask, type AccessSize } from './io.ts';

/** Writes are ignored. */
export const RO = 1 << 0;
/** Reading returns the value and then clears it (statistics, interrupt causes). */
export const RC = 1 << 1;
/** A 1 written to a bit clears it; 0 leaves it (status registers). */
export const W1C = 1 << 2;
/** Only aligned 32-bit accesses reach it: others read all ones and their writes are dropped. */
export const DWORD_ONLY = 1 << 3;
/** Reads as 0 (the value is kept for the write handler and the snapshot). */
export const WO = 1 << 4;
/** The entry answers only accesses of exactly its width at its offset (ports whose meaning depends on the access size). */
export const EXACT = 1 << 5;

export interface RegDef<D> {
  readonly name: string;
  /** Byte offset of the first register of this entry in the window. */
  readonly off: number;
  readonly width: 1 | 2 | 4;
  /** An array of registers (`count` of them, `width` apart), e.g. receive-address slots. */
  readonly count?: number;
  readonly flags?: number;
  /** Value after reset (default 0). */
  readonly init?: number;
  /** Bits a write may change (default: all `width` bytes). */
  readonly mask?: number;
  /**
   * Of the writable bits, those that are write-1-to-clear while the others
   * stay plain read/write (a status register mixing both, e.g. the bus-master
   * IDE status). The W1C flag is the same as `w1c` = all of `mask`.
   */
  readonly w1c?: number;
  /** The value a read returns, computed (default: the stored value). `i` = index in the array. */
  readonly read?: (d: D, i: number) => number;
  /** After a write landed in storage: `value` is the new stored value, `old` the previous. */
  readonly write?: (d: D, value: number, old: number, i: number) => void;
}

interface Entry<D> {
  readonly def: RegDef<D>;
  readonly slot0: number;
  readonly flags: number;
  readonly mask: number;
  /** Writable bits that a 1 clears (all of `mask` with W1C). */
  readonly w1c: number;
  readonly widthMask: number;
}

export class RegisterTable<D> {
  /** Storage slots (one per register, arrays counted out). */
  readonly slots: number;
  /** Unclaimed or refused accesses since start (diagnostics and tests). */
  private readonly entries: Entry<D>[] = [];
  /** Entry index + 1 for each byte offset (0 = nothing there). */
  private readonly byOffset: Int32Array;
  /** EXACT entries: key off * 8 + size -> entry index + 1. */
  private readonly exact = new Map<number, number>();
  private readonly inits: number[] = [];

  constructor(
    readonly name: string,
    /** Size of the window in bytes (the region's length). */
    readonly size: number,
    defs: readonly RegDef<D>[],
    /** What a read of an unclaimed offset returns (masked to the size). */
    readonly unclaimed: number = 0,
  ) {
    this.byOffset = new Int32Array(size);
    let slot = 0;
    for (const def of defs) {
      const count = def.count ?? 1;
      const flags = def.flags ?? 0;
      const widthMask = sizeMask(def.width);
      if (def.off < 0 || def.off + count * def.width > size || !Number.isInteger(count) || count < 1) {
        throw new RangeError(`${name}.${def.name}: outside the ${size}-byte window`);
      }
      if (flags & EXACT && count !== 1) throw new RangeError(`${name}.${def.name}: EXACT entries are single registers`);
      const mask = (def.mask ?? widthMask) & widthMask;
      const w1c = flags & W1C ? mask : (def.w1c ?? 0) & mask;
      const e: Entry<D> = { def, slot0: slot, flags, mask, w1c, widthMask };
      const idx = this.entries.push(e);
      for (let i = 0; i < count; i++) this.inits.push((def.init ?? 0) & widthMask);
      slot += count;
      if (flags & EXACT) {
        const key = def.off * 8 + def.width;
        if (this.exact.has(key)) throw new RangeError(`${name}.${def.name}: two EXACT entries at 0x${def.off.toString(16)} size ${def.width}`);
        this.exact.set(key, idx);
        continue;
      }
      for (let b = def.off; b < def.off + count * def.width; b++) {
        if (this.byOffset[b] !== 0) {
          throw new RangeError(`${name}.${def.name} overlaps ${this.entries[this.byOffset[b] - 1].def.name} at 0x${b.toString(16)}`);
        }
        this.byOffset[b] = idx;
      }
    }
    this.slots = slot;
  }

  /** Fresh storage holding every register's reset value. */
  storage(): Uint32Array {
    return Uint32Array.from(this.inits);
  }

  /** Put every register back to its reset value. */
  reset(regs: Uint32Array): void {
    for (let i = 0; i < this.slots; i++) regs[i] = this.inits[i];
  }

  /** The register at byte offset `off`: "NAME", "NAME[i]" in an array, "+b" past its first byte; null if unclaimed (traces, dumps). */
  nameAt(off: number): string | null {
    if (!Number.isInteger(off) || off < 0 || off >= this.size) return null;
    const idx = this.byOffset[off];
    if (idx === 0) return null;
    const d = this.entries[idx - 1].def;
    const rel = off - d.off;
    const i = (rel / d.width) | 0;
    const byte = rel - i * d.width;
    return `${d.name}${d.count !== undefined ? `[${i}]` : ''}${byte !== 0 ? `+${byte}` : ''}`;
  }

  /** Storage slot of register `name` (index `i` of an array). For devices that touch their own registers by name. */
  slot(name: string, i = 0): number {
    const e = this.entries.find((x) => x.def.name === name);
    if (!e || i < 0 || i >= (e.def.count ?? 1)) throw new RangeError(`${this.name}: no register ${name}[${i}]`);
    return e.slot0 + i;
  }

  read(d: D, regs: Uint32Array, off: number, size: AccessSize): number {
    if (this.exact.size !== 0) {
      const x = this.exact.get(off * 8 + size);
      if (x !== undefined) return this.readWhole(d, regs, this.entries[x - 1], 0);
    }
    if (off < 0 || off + size > this.size) return this.unclaimed & sizeMask(size);
    const idx = this.byOffset[off];
    if (idx !== 0) {
      const e = this.entries[idx - 1];
      const w = e.def.width;
      const rel = off - e.def.off;
      const i = (rel / w) | 0;
      const byte = rel - i * w;
      if (byte + size <= w) {
        if (e.flags & DWORD_ONLY && (size !== 4 || byte !== 0)) return sizeMask(size);
        const v = this.readWhole(d, regs, e, i);
        return size === 4 ? v : (v >>> (8 * byte)) & sizeMask(size);
      }
    }
    // The access spans registers (or unclaimed bytes): assemble it byte by byte, low first.
    let v = 0;
    for (let b = 0; b < size; b++) v |= this.readByte(d, regs, off + b) << (8 * b);
    return v >>> 0;
  }

  write(d: D, regs: Uint32Array, off: number, size: AccessSize, value: number): void {
    if (this.exact.size !== 0) {
      const x = this.exact.get(off * 8 + size);
      if (x !== undefined) return this.writePart(d, regs, this.entries[x - 1], 0, 0, size, value);
    }
    if (off < 0 || off + size > this.size) return;
    const idx = this.byOffset[off];
    if (idx !== 0) {
      const e = this.entries[idx - 1];
      const w = e.def.width;
      const rel = off - e.def.off;
      const i = (rel / w) | 0;
      const byte = rel - i * w;
      if (byte + size <= w) {
        if (e.flags & DWORD_ONLY && (size !== 4 || byte !== 0)) return;
        return this.writePart(d, regs, e, i, byte, size, value);
      }
    }
    for (let b = 0; b < size; b++) {
      const at = off + b;
      const k = this.byOffset[at];
      if (k === 0) continue;
      const e = this.entries[k - 1];
      if (e.flags & DWORD_ONLY) continue;
      const rel = at - e.def.off;
      const i = (rel / e.def.width) | 0;
      this.writePart(d, regs, e, i, rel - i * e.def.width, 1, (value >>> (8 * b)) & 0xff);
    }
  }

  private readByte(d: D, regs: Uint32Array, at: number): number {
    const k = this.byOffset[at];
    if (k === 0) return this.unclaimed & 0xff;
    const e = this.entries[k - 1];
    if (e.flags & DWORD_ONLY) return 0xff;
    const rel = at - e.def.off;
    const i = (rel / e.def.width) | 0;
    return (this.readWhole(d, regs, e, i) >>> (8 * (rel - i * e.def.width))) & 0xff;
  }

  private readWhole(d: D, regs: Uint32Array, e: Entry<D>, i: number): number {
    const slot = e.slot0 + i;
    const v = e.def.read !== undefined ? e.def.read(d, i) & e.widthMask : regs[slot];
    if (e.flags & RC) regs[slot] = 0;
    return e.flags & WO ? 0 : v >>> 0;
  }

  private writePart(d: D, regs: Uint32Array, e: Entry<D>, i: number, byte: number, size: AccessSize, value: number): void {
    if (e.flags & RO) return;
    const slot = e.slot0 + i;
    const old = regs[slot];
    const shift = 8 * byte;
    // Bits this access covers, limited to the writable ones.
    const m = ((sizeMask(size) << shift) & e.mask) >>> 0;
    const v = (value << shift) >>> 0;
    // W1C bits: a 1 clears, a 0 keeps; the other writable bits take the written value.
    const c = m & e.w1c;
    const rw = m & ~e.w1c;
    const next = ((old & ~(v & c) & ~rw) | (v & rw)) >>> 0;
    regs[slot] = next;
    e.def.write?.(d, next, old, i);
  }
}
