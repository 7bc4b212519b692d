/**
 * One sorted map of address ranges to handlers, for port I/O or MMIO.
 *
 * Regions refuse overlaps at insert time. Moving a BAR is remove + add.
 * The Board (core/board.ts) owns both buses, listens to add/remove and claims
 * or releases the range on the ioreq server: devices never talk to Xen themselves.
 */
import type { AccessSize, IoHandler } from './io.ts';
import { sizeMask } from './io.ts';

export interface Region {
  readonly name: string;
  readonly start: number;
  /** Length in bytes (ports or bytes of address space). */
  readonly length: number;
  readonly handler: IoHandler;
  /**
   * Guest accesses served (query-stats, HMP `info stats`): one per ioreq,
   * except that an 8-byte MMIO access counts two and MMIO REP (MOVS/STOS)
   * one per element; a port REP INS/OUTS is one. PCI config ioreqs are
   * counted by type only (IoreqServer.stats). A plain increment on the hot path.
   */
  accesses: number;
}

export type RangeListener = (event: 'add' | 'remove', start: number, end: number) => void;

export class OverlapError extends Error {}

export class IoBus {
  /** Sorted by start; never overlapping. */
  private regions: Region[] = [];
  private last: Region | null = null;
  private listeners: RangeListener[] = [];
  /** Accesses nothing claimed: real hardware floats the bus (all ones), writes vanish. */
  unclaimedReads = 0;
  unclaimedWrites = 0;

  constructor(readonly kind: 'pio' | 'mmio') {}

  onChange(l: RangeListener): void {
    this.listeners.push(l);
    for (const r of this.regions) l('add', r.start, r.start + r.length - 1);
  }

  add(name: string, start: number, length: number, handler: IoHandler): Region {
    if (!(length > 0) || start < 0 || !Number.isSafeInteger(start + length)) {
      throw new RangeError(`${this.kind} region ${name}: bad range ${start}+${length}`);
    }
    const end = start + length;
    const i = this.lowerBound(start);
    const prev = i > 0 ? this.regions[i - 1] : null;
    const next = i < this.regions.length ? this.regions[i] : null;
    if ((prev && prev.start + prev.length > start) || (next && next.start < end)) {
      const other = prev && prev.start + prev.length > start ? prev : next!;
      throw new OverlapError(
        `${this.kind} region ${name} [0x${start.toString(16)}, 0x${(end - 1).toString(16)}] overlaps ${other.name}`,
      );
    }
    const r: Region = { name, start, length, handler, accesses: 0 };
    this.regions.splice(i, 0, r);
    for (const l of this.listeners) l('add', start, end - 1);
    return r;
  }

  remove(r: Region): void {
    const i = this.regions.indexOf(r);
    if (i < 0) return;
    this.regions.splice(i, 1);
    if (this.last === r) this.last = null;
    for (const l of this.listeners) l('remove', r.start, r.start + r.length - 1);
  }

  /** The region holding [addr, addr+size), or null. A request straddling two regions matches none (as in Xen). */
  find(addr: number, size: number): Region | null {
    const last = this.last;
    if (last !== null && addr >= last.start && addr + size <= last.start + last.length) return last;
    const rs = this.regions;
    let lo = 0;
    let hi = rs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = rs[mid];
      if (addr < r.start) hi = mid - 1;
      else if (addr >= r.start + r.length) lo = mid + 1;
      else {
        if (addr + size > r.start + r.length) return null;
        this.last = r;
        return r;
      }
    }
    return null;
  }

  read(addr: number, size: AccessSize): number {
    const r = this.find(addr, size);
    if (r === null) {
      this.unclaimedReads++;
      return sizeMask(size);
    }
    r.accesses++;
    return r.handler.read(addr - r.start, size);
  }

  write(addr: number, size: AccessSize, value: number): void {
    const r = this.find(addr, size);
    if (r === null) {
      this.unclaimedWrites++;
      return;
    }
    r.accesses++;
    r.handler.write(addr - r.start, size, (value & sizeMask(size)) >>> 0); // `&` gives a signed int32; handlers get unsigned
  }

  list(): readonly Region[] {
    return this.regions;
  }

  private lowerBound(start: number): number {
    let lo = 0;
    let hi = this.regions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.regions[mid].start < start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
