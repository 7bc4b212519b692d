/**
 * A PCI function's 256-byte configuration space as data (docs/architecture.md §7).
 *
 * Three byte arrays describe everything: `registers` (the values), `writable`
 * (bits a guest write may change) and `w1c` (bits a guest clears by writing 1,
 * the status error bits). Every write is, per byte,
 *     new = ((old & ~writable) | (value & writable)) & ~(value & w1c)
 * and BAR sizing falls out of it: a BAR's writable bits are the address bits
 * above its size, so writing all ones reads back `~(size-1) | flags`.
 * No per-offset if-ladders: device-specific behaviour hangs off `watch()`
 * ranges that run after the masked write has landed.
 */
import type { AccessSize } from '../core/io.ts';
import { StateError, StateReader } from '../core/state.ts';

// PCI Local Bus Specification 3.0, §6.1 (type 0 header).
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BIST = 0x0f;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_CONFIG_SIZE = 256;

// §6.2.2 Command register bits.
export const CMD_IO = 0x0001;
export const CMD_MEMORY = 0x0002;
export const CMD_MASTER = 0x0004;
export const CMD_PARITY = 0x0040;
export const CMD_SERR = 0x0100;
export const CMD_INTX_DISABLE = 0x0400;
/**
 * What a guest may set in the command register: 0x0507, the set QEMU's
 * conventional functions accept (checked by test/qemu-oracle). Parity error
 * response (bit 6) stays 0: nothing here checks parity.
 */
export const CMD_WRITABLE = CMD_IO | CMD_MEMORY | CMD_MASTER | CMD_SERR | CMD_INTX_DISABLE;

// §6.2.3 Status register bits.
export const STATUS_INTX = 0x0008; // read-only: the function asserts INTx
export const STATUS_FAST_BACK = 0x0080;
export const STATUS_DEVSEL_MEDIUM = 0x0200;
/** Error bits: write 1 to clear (master/target abort, parity, SERR). */
export const STATUS_W1C = 0xf900;

export const HEADER_MULTI_FUNCTION = 0x80;

// §6.2.5.1 BAR low bits.
export const BAR_IO = 0x01;
export const BAR_MEM_TYPE_64 = 0x04;
export const BAR_MEM_PREFETCH = 0x08;
export const ROM_ENABLE = 0x01;

/** 'mem64' takes two BAR slots (index and index + 1, the upper address half). */
export type BarKind = 'io' | 'mem' | 'mem64';
/** Largest BAR we build: 2^31 for 32-bit kinds, 2^40 for a 64-bit memory BAR. */
const MAX_BAR32 = 0x80000000;
const MAX_BAR64 = 2 ** 40;

export interface BarDecl {
  /** 0-5 for BARs; the expansion ROM is declared separately. */
  readonly index: number;
  readonly kind: BarKind;
  /** Power of two: at least 4 for I/O, 16 for memory; at most 2 GiB (1 TiB for mem64). */
  readonly size: number;
  readonly prefetchable?: boolean;
}

export interface PciIdentity {
  readonly vendor: number;
  readonly device: number;
  readonly revision: number;
  /** class << 8 | subclass, e.g. 0x0601 for an ISA bridge. */
  readonly classCode: number;
  readonly progIf?: number;
  readonly headerType?: number;
  readonly subsystemVendor?: number;
  readonly subsystem?: number;
  /** Interrupt pin 1-4 (INTA-INTD), 0 for none. */
  readonly pin?: number;
  readonly status?: number;
  readonly bars?: readonly BarDecl[];
  /** Expansion ROM size (power of two, >= 2 KiB); absent means no ROM BAR. */
  readonly romSize?: number;
}

/** Called after a guest write to [reg, reg+size) that overlaps the watched range has landed. */
export type ConfigWatcher = (reg: number, size: AccessSize) => void;

interface Watch {
  start: number;
  end: number; // exclusive
  fn: ConfigWatcher;
}

export class PciConfig {
  readonly registers = new Uint8Array(PCI_CONFIG_SIZE);
  readonly writable = new Uint8Array(PCI_CONFIG_SIZE);
  readonly w1c = new Uint8Array(PCI_CONFIG_SIZE);
  /**
   * Read-only bits the device or the bus change at run time (status INTx,
   * i440FX SMRAM after D_LCK): restore accepts any value there. Every other
   * bit a guest cannot write must match this function's (check()).
   */
  readonly dynamic = new Uint8Array(PCI_CONFIG_SIZE);
  /** BAR declarations by index (null = unimplemented or the upper half of a mem64 BAR). */
  readonly bars: readonly (BarDecl | null)[];
  readonly romSize: number;
  private readonly watches: Watch[] = [];

  constructor(id: PciIdentity) {
    this.set16(PCI_VENDOR_ID, id.vendor);
    this.set16(PCI_DEVICE_ID, id.device);
    this.set8(PCI_REVISION_ID, id.revision);
    this.set8(PCI_CLASS_PROG, id.progIf ?? 0);
    this.set16(PCI_CLASS_DEVICE, id.classCode);
    this.set8(PCI_HEADER_TYPE, id.headerType ?? 0);
    this.set16(PCI_SUBSYSTEM_VENDOR_ID, id.subsystemVendor ?? 0);
    this.set16(PCI_SUBSYSTEM_ID, id.subsystem ?? 0);
    this.set8(PCI_INTERRUPT_PIN, id.pin ?? 0);
    this.set16(PCI_STATUS, id.status ?? 0);
    this.dynamic[PCI_STATUS] = STATUS_INTX; // the bus tracks the function's INTx level here

    this.mask16(PCI_COMMAND, CMD_WRITABLE);
    this.w1c[PCI_STATUS] = STATUS_W1C & 0xff;
    this.w1c[PCI_STATUS + 1] = STATUS_W1C >>> 8;
    this.writable[PCI_CACHE_LINE_SIZE] = 0xff;
    // The latency timer stays 0 (read-only): there is no bus arbitration to
    // tune, and QEMU's conventional functions read it as 0 after writes too.
    this.writable[PCI_INTERRUPT_LINE] = 0xff;

    const bars: (BarDecl | null)[] = [null, null, null, null, null, null];
    const used = [false, false, false, false, false, false];
    for (const b of id.bars ?? []) {
      const slots = b.kind === 'mem64' ? 2 : 1;
      if (!(Number.isInteger(b.index) && b.index >= 0 && b.index + slots <= 6) || used[b.index] || used[b.index + slots - 1]) {
        throw new RangeError(`bad BAR index ${b.index}`);
      }
      const min = b.kind === 'io' ? 4 : 16;
      const max = b.kind === 'mem64' ? MAX_BAR64 : MAX_BAR32;
      if (!(b.size >= min && b.size <= max && Number.isInteger(Math.log2(b.size)))) {
        throw new RangeError(`BAR${b.index} size ${b.size} is not a power of two in [${min}, ${max}]`);
      }
      bars[b.index] = b;
      used[b.index] = used[b.index + slots - 1] = true;
      const off = PCI_BASE_ADDRESS_0 + 4 * b.index;
      const flags =
        b.kind === 'io' ? BAR_IO : (b.prefetchable ? BAR_MEM_PREFETCH : 0) | (b.kind === 'mem64' ? BAR_MEM_TYPE_64 : 0);
      this.set32(off, flags);
      // Address bits above the size are writable; flag bits never are.
      const low = b.size >= 2 ** 32 ? 0 : ~(b.size - 1);
      this.mask32(off, low & (b.kind === 'io' ? ~0x3 : ~0xf));
      if (b.kind === 'mem64') this.mask32(off + 4, b.size > 2 ** 32 ? ~(b.size / 2 ** 32 - 1) : 0xffffffff);
    }
    this.bars = bars;

    this.romSize = id.romSize ?? 0;
    if (this.romSize) {
      if (this.romSize < 2048 || (this.romSize & (this.romSize - 1)) !== 0) {
        throw new RangeError(`ROM size ${this.romSize} is not a power of two >= 2 KiB`);
      }
      this.mask32(PCI_ROM_ADDRESS, (~(this.romSize - 1) & 0xfffff800) | ROM_ENABLE);
    }
  }

  /** Run `fn` after every guest write overlapping [start, start+length). Returns a function that stops it. */
  watch(start: number, length: number, fn: ConfigWatcher): () => void {
    const w: Watch = { start, end: start + length, fn };
    this.watches.push(w);
    return () => {
      const i = this.watches.indexOf(w);
      if (i >= 0) this.watches.splice(i, 1);
    };
  }

  /** Guest read of `size` bytes at any offset; bytes past 255 read as all ones. */
  read(reg: number, size: AccessSize): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const r = reg + i;
      v = (v << 8) | (r >= 0 && r < PCI_CONFIG_SIZE ? this.registers[r] : 0xff);
    }
    return v >>> 0;
  }

  /** Guest write through the masks; bytes past 255 are dropped. Never throws. */
  write(reg: number, size: AccessSize, value: number): void {
    const regs = this.registers;
    for (let i = 0; i < size; i++) {
      const r = reg + i;
      if (r < 0 || r >= PCI_CONFIG_SIZE) continue;
      const b = (value >>> (8 * i)) & 0xff;
      const old = regs[r];
      const wm = this.writable[r];
      const nv = ((old & ~wm) | (b & wm)) & ~(b & this.w1c[r]) & 0xff;
      regs[r] = nv;
    }
    // Watchers run on every overlapping write, even one that changed nothing:
    // the device re-asserts the latched state (as QEMU's PIRQ routing does).
    const end = reg + size;
    for (const w of this.watches) {
      if (reg < w.end && end > w.start) w.fn(reg, size);
    }
  }

  // Device-side accessors: no masks, for defaults and hardware-owned bits.
  get8(r: number): number {
    return this.registers[r];
  }
  get16(r: number): number {
    return this.registers[r] | (this.registers[r + 1] << 8);
  }
  get32(r: number): number {
    return (this.get16(r) | (this.get16(r + 2) << 16)) >>> 0;
  }
  set8(r: number, v: number): void {
    this.registers[r] = v & 0xff;
  }
  set16(r: number, v: number): void {
    this.registers[r] = v & 0xff;
    this.registers[r + 1] = (v >>> 8) & 0xff;
  }
  set32(r: number, v: number): void {
    this.set16(r, v & 0xffff);
    this.set16(r + 2, v >>> 16);
  }
  mask8(r: number, m: number): void {
    this.writable[r] = m & 0xff;
  }
  mask16(r: number, m: number): void {
    this.writable[r] = m & 0xff;
    this.writable[r + 1] = (m >>> 8) & 0xff;
  }
  mask32(r: number, m: number): void {
    this.mask16(r, m & 0xffff);
    this.mask16(r + 2, m >>> 16);
  }

  get command(): number {
    return this.get16(PCI_COMMAND);
  }

  /** Base address programmed in BAR i (flag bits stripped), or the ROM when i = 6. */
  barAddress(i: number): number {
    if (i === 6) return (this.get32(PCI_ROM_ADDRESS) & 0xfffff800) >>> 0;
    const b = this.bars[i];
    if (!b) return 0;
    const off = PCI_BASE_ADDRESS_0 + 4 * i;
    const v = this.get32(off);
    if (b.kind === 'io') return (v & ~0x3) >>> 0;
    const low = (v & ~0xf) >>> 0;
    return b.kind === 'mem64' ? low + this.get32(off + 4) * 2 ** 32 : low;
  }

  /** A copy of the 256 config bytes (what a function's snapshot holds as `config`). */
  snapshot(): Uint8Array {
    return new Uint8Array(this.registers);
  }

  /**
   * Refuse config bytes that cannot be this function's (StateError naming
   * `path`): another vendor/device/class/header type/revision (state from
   * another machine), or read-only bits no guest write could have changed
   * (a BAR's type bits, reserved bits, the interrupt pin). Changes nothing.
   */
  check(bytes: Uint8Array, path: string): void {
    if (bytes.length !== PCI_CONFIG_SIZE) throw new StateError(`${path}: expected ${PCI_CONFIG_SIZE} bytes, got ${bytes.length}`);
    const id = (b: Uint8Array): string =>
      `${hex(b, PCI_VENDOR_ID, 2)}:${hex(b, PCI_DEVICE_ID, 2)} class ${hex(b, PCI_REVISION_ID + 1, 3)} ` +
      `rev ${hex(b, PCI_REVISION_ID, 1)} header ${hex(b, PCI_HEADER_TYPE, 1)}`;
    for (const [r, n] of IDENTITY) {
      for (let i = r; i < r + n; i++) {
        if (bytes[i] !== this.registers[i]) throw new StateError(`${path}: config of ${id(bytes)}, not of this function (${id(this.registers)})`);
      }
    }
    for (let r = 0; r < PCI_CONFIG_SIZE; r++) {
      const fixed = ~(this.writable[r] | this.w1c[r] | this.dynamic[r]) & 0xff;
      if ((bytes[r] ^ this.registers[r]) & fixed) {
        throw new StateError(`${path}[0x${r.toString(16)}]: 0x${bytes[r].toString(16)} differs from 0x${this.registers[r].toString(16)} in read-only bits 0x${fixed.toString(16)}`);
      }
    }
  }

  /** Read `key` as config bytes of this function (check()), without changing anything. */
  readChecked(r: StateReader, key = 'config'): Uint8Array {
    const bytes = r.bytes(key, PCI_CONFIG_SIZE);
    this.check(bytes, `${r.path}.${key}`);
    return bytes;
  }

  /**
   * Load bytes that passed check(). Watchers do not run: what they derive is
   * rebuilt by PciBus.refresh() once every function is restored.
   */
  restore(bytes: Uint8Array): void {
    this.registers.set(bytes);
  }
}

/** Identity bytes (offset, length): vendor, device, revision + class code, header type. */
const IDENTITY: readonly (readonly [number, number])[] = [
  [PCI_VENDOR_ID, 4],
  [PCI_REVISION_ID, 4],
  [PCI_HEADER_TYPE, 1],
];

function hex(b: Uint8Array, r: number, n: number): string {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + b[r + i];
  return v.toString(16).padStart(2 * n, '0');
}

/** An integer field of saved state that may only hold the bits of `mask` (a register's implemented bits). */
export function readBits(r: StateReader, key: string, mask: number): number {
  const v = r.int(key, 0, mask >>> 0);
  if ((v & ~mask) !== 0) throw new StateError(`${r.path}.${key}: 0x${v.toString(16)} has bits outside 0x${(mask >>> 0).toString(16)}`);
  return v;
}
