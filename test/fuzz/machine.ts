/**
 * The whole-machine fuzzer (`npm run fuzz`, a smoke of it in
 * test/fuzz/machine.test.ts): a xenfv PC (buildPc) on the simulator, driven
 * only through ioreqs as a hostile guest would, every device family, with
 * structured guest memory (PRD tables, descriptor rings, CDBs) so that
 * valid command sequences are reached, not only random bytes. The VGA is
 * there as libxl passes it (`-device VGA,vgamem_mb=N`, 00:03.0 before the
 * NIC), VRAM in guest pages every other epoch: its registers, whole BIOS
 * modes, Bochs DISPI with hostile sizes, BAR2, the 0xA0000 window (buffered
 * too), the LFB and ROM BARs; at intervals its picture is drawn as a VNC
 * viewer and QMP screendump (PPM, PNG) would take it.
 *
 * Epoch e of seed s runs on its own fresh machine from prng(mix(s, e)), so
 * a defect replays with `--seed s --epoch e`. Everything is deterministic:
 * in-memory disks complete on microtasks, the clock is virtual, the NIC's
 * backend is an in-memory pair.
 *
 * Oracles:
 * - no exception reaches the ioreq loop (IoreqServer.stats.deviceErrors), and
 *   none escapes an access or the event loop;
 * - no access takes over SLOW_ACCESS_MS;
 * - heap and RSS stay under bounds at every epoch end;
 * - every write the device model makes to guest RAM lies in a range the guest
 *   named for DMA: guest memory is laid out so that every address any guest
 *   structure or register can hold points into BUFFERS or out of RAM, and
 *   the rings (their write-back) are in RINGS; the rest of RAM is a guard
 *   whose shadow copy is compared at each epoch end (catching writes that
 *   bypass GuestMemory too);
 * - after resets at the end of each epoch every device still answers
 *   (IDENTIFY, a transmitted frame, the UART scratch register, the DISPI ID,
 *   an LFB pixel in a VBE mode and a glyph in text mode on screendumps, ...);
 * - VGA: the incremental picture equals a full redraw and a viewer's copy
 *   built from damage rectangles alone (inside the picture); a screendump is
 *   a PPM/PNG of the display's size; no refresh or screendump costs a second
 *   of CPU; reads (ports, DISPI, BARs, window, a picture) leave VRAM byte
 *   for byte as it was; the DISPI bank and VBE geometry stay inside VRAM;
 *   EDID, ROM and LFB bytes read back what they hold;
 * - saved state round-trips, corrupted containers and corrupted device
 *   records are refused with StateError (anything else is a defect), and a
 *   good restore after a refused one leaves a working machine.
 */
import { pino } from 'pino';
import { createSimHost, simBoard, simClock, type SimHost } from '../../src/sim/index.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';
import { buildPc, type Pc } from '../../src/machine/pc.ts';
import { parseArgs } from '../../src/cli/index.ts';
import { RingBackend } from '../../src/chardev/backends.ts';
import { MemoryBackend } from '../../src/block/memory.ts';
import { MemoryPair } from '../../src/net/index.ts';
import { decodeContainer } from '../../src/machine/container.ts';
import { StateError } from '../../src/core/state.ts';
import { IOREQ_TYPE_COPY, IOREQ_TYPE_PIO } from '../../src/ioreq/abi.ts';
import type { Board } from '../../src/core/board.ts';
import { VgaRenderer, type DisplaySink, type Rect, type VgaPci } from '../../src/devices/vga/index.ts';
import * as V from '../../src/devices/vga/regs.ts';
import { prng } from '../helpers/prng.ts';
import { MODE12, MODE13, MODE3, MODE4, type ModeRegs } from '../devices/vga/modes.ts';

export const FAMILIES = ['pci', 'ide', 'bmdma', 'e1000', 'uart', 'cmos', 'i8042', 'xen-platform', 'vga', 'ioreq', 'saverestore'] as const;
export type Family = (typeof FAMILIES)[number];

/** An access slower than this is a defect (a guest must never stall the device model). */
export const SLOW_ACCESS_MS = 1000;
/** Heap growth over the first epoch's, and RSS, beyond which an epoch end is a defect. */
export const HEAP_GROWTH_LIMIT = 256 * 2 ** 20;
export const RSS_LIMIT = 1536 * 2 ** 20;

// Guest RAM layout (16 MiB). Everything a guest structure or address register names is in
// BUFFERS (data) or RINGS (descriptors the NIC writes back); PRD tables are read only.
const RAM_MIB = 16;
const RAM = RAM_MIB << 20;
const SLOT = 4096;
const SLOTS = 32;
const PRD_LO = 0x100000; // SLOTS + 1 PRD tables: a walk of one page from any slot stays inside
const PRD_HI = PRD_LO + (SLOTS + 1) * SLOT;
const RINGS_LO = 0x140000; // rings: base <= RINGS_LO + SLOTS * SLOT, length <= SLOT
const RINGS_HI = RINGS_LO + (SLOTS + 1) * SLOT;
const BUF_LO = 0x180000;
const BUF_HI = 0x400000;
const MAX_DMA = 0x10000; // largest single buffer any structure names (PRD size 0 = 64 KiB)
/** Out of RAM: a guest may name it; every access there must fail. */
const OUT_OF_RAM = [0xfee00000, 0xfebc0000, RAM, 0xffff_f000];

// Where the fuzzer maps the PCI BARs (hvmloader would pick similar ones).
const IDE_DEVFN = (1 << 3) | 1;
const XP_DEVFN = 2 << 3;
const VGA_DEVFN = 3 << 3; // libxl puts -device VGA before the NICs: 00:03.0, the NIC 00:04.0
const NIC_DEVFN = 4 << 3;
const BMDMA = 0xc000;
const XP_IO = 0xc100;
const NIC_IO = 0xc200;
const XP_MMIO = 0xf0000000;
const NIC_MMIO = 0xf1000000;
const VGA_LFB = 0xf2000000; // BAR0, the VRAM (at most 16 MiB here, so aligned to its size)
const VGA_MMIO = 0xf3000000; // BAR2: EDID, VGA ports, DISPI, QEMU extended registers
const VGA_ROM = 0xf3010000; // the ROM BAR (64 KiB for VGA_BIOS)
const DEVFNS = [0, 1 << 3, IDE_DEVFN, (1 << 3) | 3, XP_DEVFN, VGA_DEVFN, NIC_DEVFN];

/** vgamem_mb by epoch % 8: libxl's default 16 half the time, and small VRAMs where hostile VBE sizes meet its end. */
const VGA_MB = [16, 8, 16, 1, 16, 4, 16, 2];
/** A stand-in VGA BIOS as long as Debian's vgabios-stdvga.bin (39,936 bytes): signature, size, then a pattern the ROM reads are checked against. */
const VGA_BIOS = (() => {
  const b = new Uint8Array(39936);
  for (let i = 0; i < b.length; i++) b[i] = (i * 131 + (i >>> 9)) & 0xff;
  b.set([0x55, 0xaa, b.length / 512]);
  return b;
})();
/** The BIOS modes a guest sets through INT 10h (SeaBIOS's vgabios programs these tables). */
const VGA_MODES: readonly ModeRegs[] = [MODE3, MODE13, MODE12, MODE4];
/** DISPI sizes: what drivers ask for, then the hostile ones (0, unaligned, past the maxima, 16-bit extremes). */
const VBE_SIZES = [640, 480, 800, 600, 1024, 768, 1280, 720, 1920, 1080, 320, 200, 64];
const VBE_HOSTILE = [0, 1, 7, 9, 2048, 4095, 4096, 4097, 8192, 12000, 12001, 16000, 16001, 16008, 32768, 65535];
const VBE_BPPS = [8, 15, 16, 24, 32, 4, 0, 1, 2, 12, 31, 33, 64, 255, 0xffff];
/** The glyph the probe draws ("A", 8x16) and the pixels it checks (white dot, blue background). */
const GLYPH = [0, 0, 0x18, 0x3c, 0x66, 0x66, 0x7e, 0x66, 0x66, 0x66, 0, 0, 0, 0, 0, 0];

// e1000 registers that hold DMA addresses or ring lengths (82540EM SDM 13.4.25-27, 13.4.36-38).
const RDBAL = 0x2800, RDBAH = 0x2804, RDLEN = 0x2808, TDBAL = 0x3800, TDBAH = 0x3804, TDLEN = 0x3808;
const NIC_ADDR_REGS = [RDBAL, RDBAH, RDLEN, TDBAL, TDBAH, TDLEN];
const NIC_REGS = [0x0, 0x8, 0x10, 0x14, 0x18, 0x20, 0x28, 0x2c, 0x30, 0x38, 0xc0, 0xc4, 0xc8, 0xd0, 0xd8, 0x100, 0x170, 0x178, 0x400, 0x410,
  0x2810, 0x2818, 0x2820, 0x2828, 0x282c, 0x3810, 0x3818, 0x3820, 0x3828, 0x382c, 0x4000, 0x4010, 0x4074, 0x40c0, 0x5000, 0x5200, 0x5400, 0x5404, 0x5600];

export interface Defect {
  seed: number;
  epoch: number;
  op: number;
  family: Family;
  what: string;
}

export interface FuzzOptions {
  seed: number;
  /** Run epochs until this many accesses in total... */
  accesses?: number;
  /** ...or until this many seconds have passed (whichever comes first when both are given)... */
  seconds?: number;
  /** ...or until every device family has this many accesses (saverestore, which counts save/restore rounds, aside). */
  perFamily?: number;
  /** Only this epoch (replay). */
  epoch?: number;
  /** Operations per epoch (an operation is one or more accesses). */
  opsPerEpoch?: number;
  /** Stop at the first defect. */
  stopOnDefect?: boolean;
  /** Tests: only these families' operations (an oracle's self-test wants many of one kind). */
  only?: readonly Family[];
  /** Tests: change the machine after it is built: break it to show an oracle fires, or leave a state a guest could reach for the probe. */
  sabotage?: (pc: Pc, sim: SimHost) => void;
  /** Called after each epoch (progress lines). */
  progress?: (r: FuzzResult) => void;
}

export interface FuzzResult {
  accesses: Record<Family, number>;
  defects: Defect[];
  /** VGA pictures drawn (each checked against a full redraw and a viewer's copy) and screendumps taken. */
  renders: number;
  screendumps: number;
  epochs: number;
  slowestMs: number;
  /** The slowest display refresh or screendump. */
  slowestPictureMs: number;
  peakHeapMiB: number;
  peakRssMiB: number;
  ms: number;
}

/** The epoch's PRNG seed: a 32-bit mix of the run seed and the epoch number. */
export function epochSeed(seed: number, epoch: number): number {
  let h = (seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Defects kept per kind (the text with numbers blanked): a defect hit a million times must not crowd out a new one. */
const PER_KIND = 20;
const kinds = new WeakMap<Defect[], Map<string, number>>();
function pushDefect(list: Defect[], d: Defect): void {
  let m = kinds.get(list);
  if (m === undefined) kinds.set(list, (m = new Map()));
  const key = d.what.replace(/0x[0-9a-f]+/g, 'X').replace(/\d+/g, 'N');
  const n = m.get(key) ?? 0;
  m.set(key, n + 1);
  if (n < PER_KIND) list.push(d);
}

/** Who called GuestMemory.write: the two frames under the fuzzer's wrapper, to tell defects apart. */
function callers(): string {
  const lines = (new Error().stack ?? '').split('\n').slice(3, 5);
  return lines.map((l) => l.trim().replace(/^at /, '').replace(/\(.*\/src\//, '(src/')).join(' < ');
}

/** A copy of VRAM in one buffer kept across epochs (a 16 MiB allocation per epoch showed in the profile). */
let vramShadow: Buffer | null = null;
function vramCopy(vram: Uint8Array): Buffer {
  if (vramShadow === null || vramShadow.length < vram.length) vramShadow = Buffer.allocUnsafe(vram.length);
  const b = vramShadow.subarray(0, vram.length);
  b.set(vram);
  return b;
}

/** The guard regions hold this byte; their shadow is one buffer of it as long as the largest region. */
const GUARD_BYTE = 0x5a;
let shadow: Buffer | null = null;
function guardShadow(): Buffer {
  shadow ??= Buffer.alloc(RAM - BUF_HI, GUARD_BYTE);
  return shadow;
}

/**
 * A VNC viewer as the fuzzer sees it: the picture rebuilt from resize and
 * damage notices alone. Whatever the renderer changes without saying so
 * leaves `view` stale, and a damage rectangle outside the picture is a
 * defect of its own (a VNC client would be sent pixels that do not exist).
 */
class Viewer implements DisplaySink {
  w = 0;
  h = 0;
  view = new Uint32Array(0);
  private resized = false;
  private dirty: Rect | null = null;
  bad = '';

  damage(r: Rect): void {
    if (!(r.w > 0 && r.h > 0 && r.x >= 0 && r.y >= 0 && r.x + r.w <= this.w && r.y + r.h <= this.h)) {
      this.bad ||= `damage ${r.w}x${r.h}+${r.x}+${r.y} outside the ${this.w}x${this.h} picture`;
      return;
    }
    this.dirty = this.dirty === null ? { ...r } : union(this.dirty, r);
  }

  resize(w: number, h: number): void {
    this.w = w;
    this.h = h;
    this.resized = true;
  }

  /** Take the update a client would get: the whole picture after a resize, else the damaged pixels. */
  pull(fb: Uint32Array): void {
    if (this.resized) {
      this.view = fb.slice(0, this.w * this.h);
      this.resized = false;
    } else if (this.dirty !== null) {
      const d = this.dirty;
      if (d.w === this.w) this.view.set(fb.subarray(d.y * this.w, (d.y + d.h) * this.w), d.y * this.w); // whole lines: one copy
      else for (let y = d.y; y < d.y + d.h; y++) this.view.set(fb.subarray(y * this.w + d.x, y * this.w + d.x + d.w), y * this.w + d.x);
    }
    this.dirty = null;
  }
}

function union(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, w: Math.max(a.x + a.w, b.x + b.w) - x, h: Math.max(a.y + a.h, b.y + b.h) - y };
}

/** Where two pictures first differ, or null. */
function firstDiff(a: Uint32Array, b: Uint32Array, width: number): string | null {
  const ab = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const bb = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (ab.equals(bb)) return null;
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `pixel (${i % width}, ${Math.floor(i / width)}): 0x${(a[i] ?? -1).toString(16)} vs 0x${(b[i] ?? -1).toString(16)}`;
}

/** One epoch's machine and the guest that attacks it. */
class Epoch {
  readonly r: () => number;
  fam: Family = 'ioreq';
  op = 0;
  slowest = 0;
  slowestPicture = 0;
  private cpuMark = process.threadCpuUsage();
  private wallMark = performance.now();
  unplugAllowed: boolean;
  private unplugged = false;
  private ioaddr = 0;
  private readonly guard: Buffer;
  framesOut = 0;
  private readonly viewer = new Viewer();
  /** Draws every picture from scratch: the display's incremental picture must equal it. */
  private readonly full: VgaRenderer;
  /** Guest-page VRAM written straight through BAR0 since the last picture (no ioreq, no font tracking). */
  private lfbDirect = false;

  constructor(
    readonly seed: number,
    readonly epoch: number,
    readonly sim: SimHost,
    readonly board: Board,
    readonly pc: Pc,
    readonly server: IoreqServer,
    readonly serial: RingBackend,
    readonly pair: MemoryPair,
    readonly counts: Record<Family, number>,
    readonly defects: Defect[],
    readonly pics: { renders: number; screendumps: number },
  ) {
    this.r = prng(epochSeed(seed, epoch));
    pc.display!.subscribe(this.viewer);
    this.full = new VgaRenderer(pc.vga!.core);
    this.unplugAllowed = epoch % 8 === 7;
    const ram = sim.memory.ram;
    // The guard: a byte nobody names. Its shadow copy is compared at the end (memcmp).
    ram.fill(GUARD_BYTE, 0, PRD_LO);
    ram.fill(GUARD_BYTE, BUF_HI, RAM);
    this.guard = guardShadow();
    for (let s = 0; s <= SLOTS; s++) {
      this.fillPrdSlot(s);
      this.fillRingSlot(s);
    }
    this.fillBuffers(BUF_LO, BUF_HI - BUF_LO);
    // Every DM write to guest RAM: inside RINGS or BUFFERS, else a defect.
    const mem = sim.memory;
    const write = mem.write.bind(mem);
    mem.write = (gpa, src, off, len) => {
      // Beyond RAM GuestMemory refuses the write whole: that is the right answer, not a defect.
      if (len > 0 && gpa + len <= RAM && !(gpa >= RINGS_LO && gpa + len <= BUF_HI)) {
        this.defect(`device model wrote guest RAM 0x${gpa.toString(16)}+${len}, outside every range the guest named (${callers()})`);
      }
      return write(gpa, src, off, len);
    };
    pair.b.setReceiver(() => {
      this.framesOut++;
      return true;
    });
  }

  defect(what: string): void {
    pushDefect(this.defects, { seed: this.seed, epoch: this.epoch, op: this.op, family: this.fam, what });
  }

  // ---- random values ----------------------------------------------------------------------

  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  u32(): number {
    return Math.floor(this.r() * 4294967296) >>> 0;
  }
  /** A value biased to the edges (0, all ones, powers of two) half of the time. */
  val(size: number): number {
    const mask = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    const k = this.int(8);
    if (k === 0) return 0;
    if (k === 1) return mask >>> 0;
    if (k === 2) return ((1 << this.int(size * 8)) & mask) >>> 0; // unsigned: bit 31 alone is 0x80000000, not -2^31
    return (this.u32() & mask) >>> 0;
  }
  size(): 1 | 2 | 4 {
    return this.pick([1, 1, 2, 4] as const);
  }
  bufAddr(align = 2): number {
    return BUF_LO + Math.floor(this.int(BUF_HI - MAX_DMA - BUF_LO) / align) * align;
  }
  /** A DMA address a guest may write into an address register: a structure of ours, or out of RAM. */
  prdtAddr(): number {
    // Entries are 8 bytes from the table start: a table at 4 mod 8 would read a size as an address.
    return this.r() < 0.95 ? PRD_LO + 8 * this.int((SLOTS * SLOT) / 8) : this.pick(OUT_OF_RAM);
  }
  ringBase(): number {
    return this.r() < 0.95 ? RINGS_LO + 16 * this.int((SLOTS * SLOT) / 16) : this.pick(OUT_OF_RAM);
  }

  // ---- guest memory (the fuzzer's own writes go straight to RAM, not through the DM) ------

  private put32(at: number, v: number): void {
    const ram = this.sim.memory.ram;
    ram[at] = v & 0xff;
    ram[at + 1] = (v >>> 8) & 0xff;
    ram[at + 2] = (v >>> 16) & 0xff;
    ram[at + 3] = (v >>> 24) & 0xff;
  }

  /** 512 PRD entries, each naming a buffer; sizes biased to the BMI-1 cases (short, sector multiples, 0 = 64 KiB). */
  fillPrdSlot(s: number): void {
    const base = PRD_LO + s * SLOT;
    for (let i = 0; i < SLOT / 8; i++) {
      const k = this.int(10);
      const size = k < 3 ? 2 * (1 + this.int(256)) : k < 7 ? 512 * (1 + this.int(16)) : k < 8 ? 0 : 2 * this.int(0x8000);
      this.put32(base + 8 * i, this.bufAddr());
      this.put32(base + 8 * i + 4, (size | (this.r() < 0.15 ? 0x80000000 : 0)) >>> 0);
    }
  }

  /** 256 descriptors whose address field names a buffer; the rest of each is a legacy, context or data descriptor. */
  fillRingSlot(s: number): void {
    const base = RINGS_LO + s * SLOT;
    for (let i = 0; i < SLOT / 16; i++) {
      const at = base + 16 * i;
      this.put32(at, this.bufAddr());
      this.put32(at + 4, 0);
      const k = this.int(3);
      const len = this.r() < 0.8 ? 14 + this.int(1600) : this.int(0x10000);
      const cmd = (this.u32() & 0xff000000) >>> 0;
      const lower = k === 0 ? (len & 0xffff) | (cmd & ~(1 << 29)) : k === 1 ? (this.u32() & 0xfffff) | (1 << 29) | (cmd & 0xff000000) : (len & 0xfffff) | (1 << 29) | (1 << 20) | cmd;
      this.put32(at + 8, lower >>> 0);
      this.put32(at + 12, this.r() < 0.5 ? 0 : this.u32());
    }
  }

  /** Random bytes: one random 4 KiB block, copied at random rotations (cheap, still varied). */
  fillBuffers(from: number, len: number): void {
    const ram = this.sim.memory.ram;
    const block = new Uint8Array(4096);
    for (let i = 0; i < block.length; i++) block[i] = this.int(256);
    for (let at = from; at < from + len; at += 4096) {
      const n = Math.min(4096, from + len - at);
      const rot = this.int(4096);
      ram.set(block.subarray(rot, Math.min(4096, rot + n)), at);
      if (4096 - rot < n) ram.set(block.subarray(0, n - (4096 - rot)), at + 4096 - rot);
    }
  }

  // ---- accesses: every one counted, timed, and no exception may escape ----------------------

  private access<T>(f: () => T, fallback: T): T {
    this.counts[this.fam]++;
    return this.timed('one access', f, fallback);
  }

  /** Work the device model does on its event loop (an access, a display refresh, a screendump): no exception, no second of CPU. */
  private timed<T>(what: string, f: () => T, fallback: T): T {
    const t0 = performance.now();
    let v = fallback;
    try {
      v = f();
    } catch (e) {
      this.defect(`exception escaped ${what === 'one access' ? 'the ioreq path' : what}: ${e instanceof Error ? e.stack?.split('\n').slice(0, 3).join(' | ') : String(e)}`);
    }
    const dt = performance.now() - t0;
    if (what === 'one access') {
      if (dt > this.slowest) this.slowest = dt;
    } else if (dt > this.slowestPicture) this.slowestPicture = dt;
    if (dt > SLOW_ACCESS_MS) this.slowCheck(what, t0, dt);
    return v;
  }

  /**
   * Wall time includes being descheduled on a loaded host; CPU time is what the access cost.
   * The main thread's CPU clock is read at checkpoints (every 32 operations), not per access:
   * a getrusage per access was a third of the fuzzer's time (and the whole process's clock,
   * RUSAGE_SELF, costs 40 times the thread's here). The access is charged what the thread
   * used since the checkpoint less the wall time that passed before it started (an upper
   * bound on what the accesses before it could have used).
   */
  private slowCheck(what: string, t0: number, dt: number): void {
    const c = process.threadCpuUsage(this.cpuMark);
    const cpuMs = (c.user + c.system) / 1000 - Math.max(0, t0 - this.wallMark);
    if (cpuMs > SLOW_ACCESS_MS) this.defect(`${what} took ${Math.round(cpuMs)} ms of CPU (${Math.round(dt)} ms wall)`);
  }

  /** A CPU-clock checkpoint for slowCheck. */
  checkpoint(): void {
    this.cpuMark = process.threadCpuUsage();
    this.wallMark = performance.now();
  }
  out(port: number, size: 1 | 2 | 4, v: number): void {
    this.access(() => (size === 1 ? this.sim.outb(port, v) : size === 2 ? this.sim.outw(port, v) : this.sim.outl(port, v)), undefined);
  }
  in(port: number, size: 1 | 2 | 4): number {
    return this.access(() => (size === 1 ? this.sim.inb(port) : size === 2 ? this.sim.inw(port) : this.sim.inl(port)), 0);
  }
  mw(addr: number, size: 1 | 2 | 4, v: number): void {
    this.access(() => (size === 1 ? this.sim.writeb(addr, v) : size === 2 ? this.sim.writew(addr, v) : this.sim.writel(addr, v)), undefined);
  }
  mr(addr: number, size: 1 | 2 | 4): number {
    return this.access(() => (size === 1 ? this.sim.readb(addr) : size === 2 ? this.sim.readw(addr) : this.sim.readl(addr)), 0);
  }
  cfgw(devfn: number, reg: number, size: 1 | 2 | 4, v: number): void {
    this.access(() => this.sim.pciConfigWrite(devfn, reg, size, v), undefined);
  }
  cfgr(devfn: number, reg: number, size: 1 | 2 | 4): number {
    return this.access(() => this.sim.pciConfigRead(devfn, reg, size), 0);
  }
  /** REP INS/OUTS of `count` elements at a buffer (or, rarely, anywhere a guest could point). */
  rep(port: number, size: 1 | 2 | 4, count: number, dirIn: boolean): void {
    const k = this.int(20);
    const data = k === 0 ? this.pick(OUT_OF_RAM) : k === 1 ? 2 ** 52 + this.int(4096) : this.bufAddr(size);
    const df = this.r() < 0.1;
    this.access(
      () => this.sim.request({ type: IOREQ_TYPE_PIO, dir: dirIn ? 'read' : 'write', addr: port, data: df ? data + MAX_DMA - size : data, size, count, dataIsPtr: true, df }),
      0n,
    );
  }

  // ---- the canonical PCI setup hvmloader would leave -----------------------------------------

  setupPci(): void {
    const f = this.fam;
    this.fam = 'pci';
    this.cfgw(IDE_DEVFN, 0x20, 4, BMDMA | 1);
    this.cfgw(IDE_DEVFN, 0x40, 2, 0x8000);
    this.cfgw(IDE_DEVFN, 0x42, 2, 0x8000);
    this.cfgw(IDE_DEVFN, 0x04, 2, 0x0005);
    // PRDT powers up as 0: a DMA started before the guest sets it walks a table at 0 nobody laid out.
    this.fam = 'bmdma';
    for (const b of [BMDMA, BMDMA + 8]) if (this.in(b + 4, 4) === 0) this.out(b + 4, 4, this.prdtAddr() >>> 0 || PRD_LO);
    this.fam = 'pci';
    this.cfgw(XP_DEVFN, 0x10, 4, XP_IO | 1);
    this.cfgw(XP_DEVFN, 0x14, 4, XP_MMIO);
    this.cfgw(XP_DEVFN, 0x04, 2, 0x0003);
    this.cfgw(NIC_DEVFN, 0x10, 4, NIC_MMIO);
    this.cfgw(NIC_DEVFN, 0x14, 4, NIC_IO | 1);
    this.cfgw(NIC_DEVFN, 0x04, 2, 0x0007);
    this.cfgw(VGA_DEVFN, 0x10, 4, VGA_LFB);
    this.cfgw(VGA_DEVFN, 0x18, 4, VGA_MMIO);
    this.cfgw(VGA_DEVFN, 0x30, 4, VGA_ROM | 1);
    this.cfgw(VGA_DEVFN, 0x04, 2, 0x0003);
    this.fam = f;
  }

  // ---- one operation per family -------------------------------------------------------------

  opPci(): void {
    const devfn = this.r() < 0.9 ? this.pick(DEVFNS) : this.int(256);
    const size = this.size();
    const reg = this.r() < 0.5 ? this.int(0x50) & ~(size - 1) : this.int(256);
    if (this.r() < 0.5) this.cfgr(devfn, reg, size);
    else if ((devfn === IDE_DEVFN || devfn === NIC_DEVFN || devfn === XP_DEVFN || devfn === VGA_DEVFN) && reg + size > 0x10 && reg < 0x28) {
      // BARs move only to where nothing else writes (or are sized): a BAR moved under another
      // family's ports would turn its random bytes into DMA addresses nobody laid out.
      const io = (this.cfgr(devfn, reg & ~3, 4) & 1) === 1;
      const v = this.pick([0xffffffff, 0, io ? (0xd000 + 0x100 * this.int(16)) | 1 : 0xe0000000 + 0x1000000 * this.int(8)]);
      this.cfgw(devfn, reg & ~3, 4, v >>> 0);
    } else this.cfgw(devfn, reg, size, this.val(size));
    if (this.r() < 0.05) {
      // Raw CONFIG_ADDRESS / CONFIG_DATA, any width and offset.
      this.out(0xcf8, 4, this.r() < 0.5 ? (0x80000000 | (devfn << 8) | (reg & 0xfc)) >>> 0 : this.u32());
      const p = 0xcfc + this.int(4);
      if (this.r() < 0.5) this.in(p, 1);
      else this.out(p, 1, this.int(256));
    }
  }

  opIde(): void {
    const chan = this.r() < 0.7 ? 0x1f0 : 0x170;
    const ctrl = chan === 0x1f0 ? 0x3f6 : 0x376;
    const k = this.int(10);
    if (k < 3) {
      const reg = this.int(8);
      if (this.r() < 0.5) this.in(chan + reg, reg === 0 ? this.pick([1, 2, 2, 4] as const) : 1);
      else this.out(chan + reg, reg === 0 ? this.pick([1, 2, 2, 4] as const) : 1, this.val(2));
    } else if (k < 6) {
      // A whole command: device, task file biased to small LBAs and counts, a real opcode.
      const cmds = [0x20, 0x24, 0x29, 0x30, 0x34, 0x39, 0x40, 0x42, 0xc4, 0xc5, 0xc6, 0xc8, 0xca, 0x25, 0x35, 0xec, 0xa1, 0xa0, 0x08,
        0xe7, 0xea, 0xef, 0x91, 0x90, 0xe5, 0xe0, 0xe1, 0xb0, 0xf8, 0x27, 0x00, this.int(256)];
      this.out(chan + 6, 1, (this.r() < 0.5 ? 0xe0 : 0xa0) | (this.r() < 0.3 ? 0x10 : 0));
      this.out(chan + 1, 1, this.r() < 0.7 ? this.int(4) : this.int(256));
      this.out(chan + 2, 1, this.r() < 0.7 ? this.int(9) : this.int(256));
      this.out(chan + 3, 1, this.int(this.r() < 0.8 ? 16 : 256));
      this.out(chan + 4, 1, this.r() < 0.8 ? 0 : this.int(256));
      this.out(chan + 5, 1, this.r() < 0.8 ? 0 : this.int(256));
      const cmd = this.pick(cmds);
      this.out(chan + 7, 1, cmd);
      if (cmd === 0xa0) this.cdb(chan);
    } else if (k < 8) {
      // Data phase: PIO words or a REP string transfer.
      const n = this.r() < 0.5 ? 1 + this.int(8) : 1 + this.int(4096);
      if (this.r() < 0.5) this.rep(chan, this.pick([2, 2, 4] as const), n, this.r() < 0.6);
      else for (let i = 0; i < Math.min(n, 64); i++) (this.r() < 0.6 ? this.in(chan, 2) : this.out(chan, 2, this.val(2)));
    } else if (k < 9) {
      this.in(ctrl, 1);
    } else {
      // Device Control: nIEN, and SRST pulses (a reset mid-command is the interesting case).
      this.out(ctrl, 1, this.r() < 0.3 ? 0x04 : this.int(256));
      if (this.r() < 0.7) this.out(ctrl, 1, this.int(2) << 1);
    }
  }

  /** A 12-byte CDB through the data port: a real opcode with fields near the medium's end. */
  private cdb(chan: number): void {
    const ops = [0x00, 0x03, 0x12, 0x1b, 0x1e, 0x25, 0x28, 0xa8, 0x2b, 0x43, 0x46, 0x4a, 0x51, 0x5a, 0xbd, 0xbe, 0xbb, 0x35, 0x55, this.int(256)];
    const c = new Uint8Array(12);
    c[0] = this.pick(ops);
    for (let i = 1; i < 12; i++) c[i] = this.r() < 0.6 ? 0 : this.r() < 0.5 ? this.int(4) : this.int(256);
    if (this.r() < 0.3) c.set([0xff, 0xff, 0xff, 0xff], 2);
    const n = this.r() < 0.9 ? 6 : this.int(12);
    for (let i = 0; i < n; i++) this.out(chan, 2, c[2 * i] | (c[2 * i + 1] << 8));
  }

  opBmdma(): void {
    const base = BMDMA + (this.r() < 0.7 ? 0 : 8);
    const k = this.int(10);
    if (this.r() < 0.01) {
      // Bus Master Enable toggled around a DMA command: a driver racing its own PCI setup.
      const chan = base === BMDMA ? 0x1f0 : 0x170;
      this.fam = 'pci';
      this.cfgw(IDE_DEVFN, 0x04, 2, 0x0001);
      this.fam = 'bmdma';
      this.out(chan + 6, 1, 0xe0);
      this.out(chan + 2, 1, 1 + this.int(8));
      this.out(chan + 7, 1, this.pick([0xc8, 0xca]));
      this.out(base, 1, this.pick([1, 9]));
      this.fam = 'pci';
      this.cfgw(IDE_DEVFN, 0x04, 2, 0x0005);
      this.fam = 'bmdma';
    } else if (k < 3) {
      this.out(base + 4, 4, this.prdtAddr());
      if (this.r() < 0.2) this.fillPrdSlot(this.int(SLOTS + 1));
    } else if (k < 6) {
      this.out(base, 1, this.pick([0, 1, 9, 8, 0, 1]) | (this.r() < 0.05 ? this.int(256) & ~9 : 0));
    } else if (k < 8) {
      this.out(base + 2, 1, this.val(1));
    } else {
      const off = this.int(8);
      // Partial writes to the PRDT register would assemble an address nobody named: reads only there.
      if (off >= 4 || this.r() < 0.5) this.in(base + off, this.pick([1, 2, 4] as const));
      else this.out(base + off, 1, this.val(1));
    }
  }

  /** An e1000 register write that keeps DMA address registers inside what the guest laid out. */
  private nicWrite(off: number, size: 1 | 2 | 4, v: number, viaIo: boolean): void {
    const reg = off & ~3;
    if (NIC_ADDR_REGS.includes(reg)) {
      size = 4;
      off = reg;
      v = reg === RDBAL || reg === TDBAL ? this.ringBase() : reg === RDLEN || reg === TDLEN ? 128 * this.int(SLOT / 128 + 1) : this.r() < 0.95 ? 0 : this.u32();
      // A device reset leaves the bases at 0 with length 0 (no ring); a length given
      // now must not make low memory a ring nobody laid out, so its base comes first.
      if (reg === RDLEN || reg === TDLEN) this.nicWrite(reg - 8, 4, 0, viaIo);
    }
    if (viaIo) {
      this.out(NIC_IO, 4, off & ~3);
      this.out(NIC_IO + 4, 4, v);
    } else {
      this.mw(NIC_MMIO + off, size, v);
    }
  }

  opE1000(): void {
    const k = this.int(12);
    if (k < 3) {
      const off = this.r() < 0.8 ? this.pick(NIC_REGS) : this.int(0x20000);
      const size = this.r() < 0.85 ? 4 : this.size();
      const o = off & ~(size - 1);
      if (this.r() < 0.5) this.mr(NIC_MMIO + o, size);
      else this.nicWrite(o, size, this.val(size), false);
    } else if (k < 4) {
      // The I/O window.
      const off = this.pick(NIC_REGS);
      if (this.r() < 0.5) {
        this.out(NIC_IO, 4, off);
        this.in(NIC_IO + 4, 4);
      } else this.nicWrite(off, 4, this.val(4), true);
      if (this.r() < 0.1) this.in(NIC_IO + this.int(64), this.size());
    } else if (k < 6) {
      // Bring the rings up the way a driver does, then move the tails.
      this.nicWrite(this.pick([TDBAL, RDBAL]), 4, 0, false);
      this.nicWrite(this.pick([TDLEN, RDLEN]), 4, 0, false);
      this.mw(NIC_MMIO + 0x400, 4, 0x2 | (this.r() < 0.3 ? this.u32() & 0x3ff0 : 0)); // TCTL.EN
      this.mw(NIC_MMIO + 0x100, 4, (0x2 | (this.u32() & 0x0403803c)) >>> 0); // RCTL.EN + random sizes, filters, loopback
      if (this.r() < 0.3) this.fillRingSlot(this.int(SLOTS + 1));
    } else if (k < 9) {
      this.mw(NIC_MMIO + this.pick([0x3818, 0x2818, 0x3810, 0x2810]), 4, this.r() < 0.8 ? this.int(SLOT / 16 + 2) : this.u32());
    } else if (k < 11) {
      // A frame from the network: sizes around every boundary (short, 1514, 1522, jumbo, over 16 KiB).
      const len = this.pick([14, 59, 60, 64, 1514, 1518, 1522, 1523, 2048, 9000, 16384, 16400, this.int(20000)]);
      const f = new Uint8Array(len);
      for (let i = 0; i < Math.min(len, 64); i++) f[i] = this.int(256);
      if (len >= 6 && this.r() < 0.5) f.set([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
      this.counts.e1000++;
      try {
        this.pair.b.send(f, null);
      } catch (e) {
        this.defect(`frame delivery threw: ${String(e)}`);
      }
    } else {
      this.mr(NIC_MMIO + this.pick([0xc0, 0x8, 0x4000 + 4 * this.int(64)]), 4);
    }
  }

  opUart(): void {
    const base = this.r() < 0.7 ? 0x3f8 : 0x2f8;
    const reg = this.int(8);
    if (this.r() < 0.45) this.in(base + reg, 1);
    else this.out(base + reg, this.r() < 0.95 ? 1 : this.pick([2, 4] as const), this.val(1));
    if (this.r() < 0.02) this.serial.inject(new Uint8Array(this.int(64)).map(() => this.int(256)));
  }

  opCmos(): void {
    if (this.r() < 0.5) this.out(0x70, 1, this.r() < 0.7 ? this.int(0x80) : this.int(256));
    if (this.r() < 0.5) this.in(0x71, 1);
    else this.out(0x71, 1, this.val(1));
    if (this.r() < 0.05) this.in(0x70 + this.int(2), this.pick([2, 4] as const));
  }

  opI8042(): void {
    const cmds = [0x20, 0x60, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xad, 0xae, 0xc0, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xfe, 0xff];
    const dev = [0xed, 0xee, 0xf0, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0xff];
    const k = this.int(6);
    if (k === 0) this.out(0x64, 1, this.r() < 0.8 ? this.pick(cmds) : this.int(256));
    else if (k === 1) this.out(0x60, 1, this.r() < 0.5 ? this.pick(dev) : this.int(256));
    else if (k < 4) this.in(this.pick([0x60, 0x64]), 1);
    else if (k === 4) this.in(0x60, this.pick([2, 4] as const));
    else if (this.r() < 0.5) this.pc.i8042.pressKey(Array.from({ length: this.int(24) }, () => this.int(256)));
    else this.pc.i8042.moveMouse(this.int(2000) - 1000, this.int(2000) - 1000, this.int(40) - 20, this.int(256)); // the VNC/evdev pointer
    // 0xfe pulses the reset line: the simulator records it, the machine carries on.
  }

  opXenPlatform(): void {
    const k = this.int(6);
    if (k < 2) {
      const port = 0x10 + this.int(4);
      const size = this.size();
      if (this.r() < 0.5) this.in(port, size);
      else {
        let v = this.val(size);
        // Unplugging is a one-way door; only some epochs take it (their probes expect the devices gone).
        if (port === 0x10 && !this.unplugAllowed) v &= ~0xf;
        if (port === 0x10 && (v & 0x7) !== 0) this.unplugged = true;
        this.out(port, size, v);
      }
    } else if (k < 4) {
      // The debug log: floods of bytes, with and without newlines.
      for (let i = 0; i < 1 + this.int(64); i++) this.out(this.r() < 0.5 ? 0x12 : XP_IO + 8, 1, this.r() < 0.1 ? 10 : 0x20 + this.int(95));
    } else if (k < 5) {
      const off = this.int(0x100);
      if (this.r() < 0.5) this.in(XP_IO + off, this.size());
      else this.out(XP_IO + off, 1, this.val(1));
    } else {
      const a = XP_MMIO + this.int(0x1000000);
      if (this.r() < 0.5) this.mr(a & ~3, 4);
      else this.mw(a & ~3, 4, this.u32());
    }
  }

  // ---- the VGA ------------------------------------------------------------------------------

  private get vga(): VgaPci {
    return this.pc.vga!;
  }

  /** The region a guest access at `addr` reaches is this one (a BAR may have been moved or switched off). */
  private decodes(addr: number, name: string): boolean {
    return this.board.mmio.find(addr, 1)?.name === name;
  }

  /** An indexed register the two ways drivers write one: index then data bytes, or one word (the BIOS's `out dx, ax`). */
  private vgaIndexed(port: number, i: number, v: number): void {
    if (this.r() < 0.5) this.out(port, 2, (i & 0xff) | ((v & 0xff) << 8));
    else {
      this.out(port, 1, i & 0xff);
      this.out(port + 1, 1, v & 0xff);
    }
  }

  /** The value a BIOS mode's table holds for register i, half the time; else any byte. */
  private modeValue(table: readonly number[], i: number): number {
    return this.r() < 0.5 && i < table.length ? table[i] : this.val(1);
  }

  /** One register of the file whose index port is `port` (`count` defined): its index, then a read or a write. */
  private vgaFileReg(port: number, count: number, table: readonly number[]): void {
    const i = this.r() < 0.9 ? this.int(count) : this.int(256);
    if (this.r() < 0.3) {
      this.out(port, 1, i);
      this.in(port + 1, 1);
    } else this.vgaIndexed(port, i, this.modeValue(table, i));
  }

  /** One register of one file, index and value biased to what exists and what the BIOS modes hold. */
  private vgaReg(): void {
    const m = this.pick(VGA_MODES);
    const k = this.int(7);
    if (k === 0) this.vgaFileReg(0x3c4, 5, m.seq);
    else if (k === 1) this.vgaFileReg(0x3ce, 9, m.gfx);
    else if (k === 2) this.vgaFileReg(this.r() < 0.8 ? 0x3d4 : 0x3b4, 0x19, m.crtc); // CRTC at the colour or the mono address (the other set floats)
    else if (k === 3) {
      // Attribute controller: the flip-flop reset by input status 1 (or not), index with or without PAS, data.
      if (this.r() < 0.7) this.in(this.r() < 0.8 ? 0x3da : 0x3ba, 1);
      const i = this.r() < 0.9 ? this.int(0x15) : this.int(256);
      this.out(0x3c0, 1, i | (this.r() < 0.5 ? 0x20 : 0));
      if (this.r() < 0.3) this.in(this.pick([0x3c0, 0x3c1]), 1);
      else this.out(0x3c0, 1, this.modeValue(m.attr, i));
    } else if (k === 4) {
      this.vgaDac();
    } else if (k === 5) {
      // Misc output, feature control, input status, the undecoded and unmodelled ports.
      if (this.r() < 0.5) this.out(0x3c2, 1, this.r() < 0.7 ? this.pick([0x67, 0x63, 0xe3, 0x66]) : this.int(256));
      else this.in(this.pick([0x3c2, 0x3cc, 0x3ca, 0x3da, 0x3ba, 0x3c3, 0x3c6, 0x3cb, 0x3cd]), 1);
    } else {
      // Anything in 0x3B0-0x3DF at any width (a dword at 0x3DE runs past the block).
      const size = this.size();
      const port = 0x3b0 + this.int(0x30);
      if (this.r() < 0.5) this.in(port, size);
      else if (this.r() < 0.9) this.out(port, size, this.val(size));
      else this.access(() => this.sim.bufferedWrite(port, size, this.val(size), { type: IOREQ_TYPE_PIO }), 'sync');
    }
  }

  /** DAC: a write index and RGB triples (or REP OUTSB, how a palette is loaded), or a read index and reads. */
  private vgaDac(): void {
    if (this.r() < 0.6) {
      this.out(0x3c8, 1, this.int(256));
      const n = 1 + this.int(48);
      if (this.r() < 0.3) this.rep(0x3c9, 1, n, false);
      else for (let i = 0; i < n; i++) this.out(0x3c9, 1, this.r() < 0.9 ? this.int(64) : this.int(256));
    } else {
      this.out(0x3c7, 1, this.int(256));
      const n = 1 + this.int(12);
      if (this.r() < 0.3) this.rep(0x3c9, 1, n, true);
      else for (let i = 0; i < n; i++) this.in(0x3c9, 1);
    }
    if (this.r() < 0.1) this.in(this.pick([0x3c7, 0x3c8, 0x3c6]), 1);
  }

  /** A whole BIOS mode as SeaBIOS's vgabios sets it (INT 10h AH=0: DISPI off first, mostly), sometimes with one value off. */
  private vgaSetMode(m: ModeRegs = this.pick(VGA_MODES), wrong = this.r() < 0.3 ? this.int(80) : -1): void {
    if (this.r() < 0.8) this.dispiWrite(V.DISPI_ENABLE, 0);
    let n = 0;
    const v = (x: number) => (n++ === wrong ? this.int(256) : x);
    this.out(0x3c2, 1, v(m.misc));
    m.seq.forEach((x, i) => this.vgaIndexed(0x3c4, i, v(x)));
    const crtc = m.misc & 1 ? 0x3d4 : 0x3b4;
    this.vgaIndexed(crtc, 0x11, m.crtc[0x11] & 0x7f); // unlock CR0-CR7 first
    m.crtc.forEach((x, i) => this.vgaIndexed(crtc, i, v(x)));
    m.gfx.forEach((x, i) => this.vgaIndexed(0x3ce, i, v(x)));
    this.in(crtc + 6, 1);
    m.attr.forEach((x, i) => {
      this.out(0x3c0, 1, i);
      this.out(0x3c0, 1, v(x));
    });
    this.out(0x3c0, 1, 0x20); // palette address source: the display runs
  }

  /** SeaBIOS's font upload: plane 2 alone, sequential addressing, 64 KiB at 0xA0000; then text addressing back. */
  private vgaFont(glyph?: { ch: number; rows: readonly number[] }): void {
    this.vgaIndexed(0x3c4, 2, 0x04);
    this.vgaIndexed(0x3c4, 4, 0x06);
    this.vgaIndexed(0x3ce, 4, 0x02);
    this.vgaIndexed(0x3ce, 5, 0x00);
    this.vgaIndexed(0x3ce, 6, 0x04);
    // Character maps 0-7 start 8 KiB of planar addresses apart (seqreg.htm "Character Map Select").
    const ch = glyph?.ch ?? this.int(256);
    const base = 0xa0000 + (glyph ? 0 : this.int(8) * 0x2000) + ch * 32;
    const rows = glyph?.rows ?? Array.from({ length: 1 + this.int(32) }, () => this.int(256));
    rows.forEach((b, row) => {
      if (glyph || this.r() < 0.7) this.access(() => this.sim.bufferedWrite(base + row, 1, b), 'sync');
      else this.mw(base + row, 1, b);
    });
    this.vgaIndexed(0x3c4, 2, 0x03);
    this.vgaIndexed(0x3c4, 4, 0x02);
    this.vgaIndexed(0x3ce, 4, 0x00);
    this.vgaIndexed(0x3ce, 5, 0x10);
    this.vgaIndexed(0x3ce, 6, 0x0e);
  }

  /** A DISPI value for register i: what drivers write, often; the hostile ones, sometimes. */
  private dispiValue(i: number): number {
    const hostile = this.r() < 0.3;
    switch (i) {
      case V.DISPI_ID:
        return this.r() < 0.8 ? V.DISPI_ID0 + this.int(6) : this.val(2);
      case V.DISPI_XRES:
      case V.DISPI_YRES:
      case V.DISPI_VIRT_WIDTH:
      case V.DISPI_X_OFFSET:
      case V.DISPI_Y_OFFSET:
        return hostile ? (this.r() < 0.7 ? this.pick(VBE_HOSTILE) : this.val(2)) : this.pick(VBE_SIZES);
      case V.DISPI_BPP:
        return this.pick(VBE_BPPS);
      case V.DISPI_ENABLE:
        return hostile ? this.val(2) : this.pick([0, V.DISPI_ENABLED | V.DISPI_LFB_ENABLED, V.DISPI_ENABLED, V.DISPI_GETCAPS, V.DISPI_ENABLED | V.DISPI_LFB_ENABLED | V.DISPI_NOCLEARMEM, V.DISPI_ENABLED | V.DISPI_8BIT_DAC]);
      case V.DISPI_BANK:
        return hostile ? this.val(2) : this.int(this.vga.core.vramSize >>> 16);
      default:
        return this.val(2);
    }
  }

  /** DISPI register i, through the ports (index 0x1CE, data 0x1CF or 0x1D0, words or bytes) or BAR2 (0x500 + 2i). */
  private dispiWrite(i: number, v: number): void {
    const k = this.int(8);
    if (k < 5) {
      this.out(0x1ce, 2, i);
      this.out(this.r() < 0.9 ? 0x1cf : 0x1d0, 2, v & 0xffff);
    } else if (k < 6) {
      // Byte accesses: the low byte of the index, the data byte.
      this.out(0x1ce, 1, i & 0xff);
      this.out(this.pick([0x1cf, 0x1d0]), 1, v & 0xff);
    } else {
      this.mw(VGA_MMIO + V.MMIO_DISPI + 2 * (i & 0xff), 2, v & 0xffff);
    }
  }

  private dispiRead(i: number): number {
    if (this.r() < 0.7) {
      this.out(0x1ce, 2, i);
      return this.in(this.r() < 0.9 ? 0x1cf : 0x1d0, this.r() < 0.9 ? 2 : 1);
    }
    return this.mr(VGA_MMIO + V.MMIO_DISPI + 2 * (i & 0xff), 2);
  }

  /** One DISPI register, read or written. */
  private vgaDispi(): void {
    const i = this.r() < 0.95 ? this.int(V.DISPI_VIDEO_MEMORY_64K + 2) : this.val(2);
    if (this.r() < 0.35) this.dispiRead(i);
    else this.dispiWrite(i, this.dispiValue(i));
    this.vbeFits();
  }

  /** A VBE mode set as bochs-drm and SeaBIOS's bochsvga do it: off, geometry, on with the LFB; then panning or a bank. */
  private vgaVbeMode(): void {
    this.dispiWrite(V.DISPI_ENABLE, 0);
    for (const i of [V.DISPI_XRES, V.DISPI_YRES, V.DISPI_BPP]) this.dispiWrite(i, this.dispiValue(i));
    if (this.r() < 0.3) this.dispiWrite(V.DISPI_VIRT_WIDTH, this.dispiValue(V.DISPI_VIRT_WIDTH));
    const flags = V.DISPI_ENABLED | V.DISPI_LFB_ENABLED | (this.r() < 0.5 ? V.DISPI_NOCLEARMEM : 0) | (this.r() < 0.2 ? V.DISPI_8BIT_DAC : 0) | (this.r() < 0.05 ? V.DISPI_GETCAPS : 0);
    this.dispiWrite(V.DISPI_ENABLE, flags);
    for (const i of [V.DISPI_VIRT_WIDTH, V.DISPI_X_OFFSET, V.DISPI_Y_OFFSET, V.DISPI_BANK]) if (this.r() < 0.25) this.dispiWrite(i, this.dispiValue(i));
    this.vbeFits();
  }

  /**
   * What vbe_fixup_regs promises (CVE-2014-3615, CVE-2016-3710), read straight from the core:
   * the bank inside VRAM, and while VBE is on a geometry whose visible screen lies in VRAM.
   */
  private vbeFits(): void {
    const c = this.vga.core;
    const r = c.vbeRegs;
    if (c.bankOffset + 0x10000 > c.vramSize) this.defect(`DISPI bank offset 0x${c.bankOffset.toString(16)} past ${c.vramSize} bytes of VRAM`);
    if (!c.vbeEnabled) return;
    const x = r[V.DISPI_XRES];
    const y = r[V.DISPI_YRES];
    if (x === 0 || x > V.DISPI_MAX_XRES || y === 0 || c.vbeLineOffset === 0 || c.vbeStartAddr * 4 + y * c.vbeLineOffset > c.vramSize) {
      this.defect(`VBE geometry ${x}x${y}x${r[V.DISPI_BPP]}, line ${c.vbeLineOffset}, start ${c.vbeStartAddr * 4} does not fit ${c.vramSize} bytes of VRAM`);
    }
  }

  /** BAR2: the EDID (checked against the device's blob), the VGA ports, DISPI, the QEMU extended registers, the rest. */
  private vgaMmio(): void {
    const k = this.int(6);
    let off = k === 0 ? this.int(V.MMIO_EDID_LEN) : k === 1 ? V.MMIO_VGA_PORTS + this.int(V.MMIO_VGA_PORTS_LEN) : k < 4 ? V.MMIO_DISPI + this.int(V.MMIO_DISPI_LEN) : k === 4 ? V.MMIO_QEXT + this.int(V.MMIO_QEXT_LEN) : this.int(V.MMIO_SIZE);
    const size = this.size();
    if (this.r() < 0.8) off &= ~(size - 1);
    if (this.r() < 0.5) {
      const v = this.mr(VGA_MMIO + off, size);
      if (off + size <= V.MMIO_EDID_LEN && this.decodes(VGA_MMIO, 'vga BAR2')) {
        const edid = this.vga.edid;
        let want = 0;
        for (let i = 0; i < size; i++) want |= (off + i < edid.length ? edid[off + i] : 0) << (8 * i);
        if (v !== want >>> 0) this.defect(`EDID bytes at 0x${off.toString(16)} read 0x${v.toString(16)}, not 0x${(want >>> 0).toString(16)}`);
      }
    } else {
      const dispi = off >= V.MMIO_DISPI && off < V.MMIO_DISPI + V.MMIO_DISPI_LEN;
      const v = dispi && size === 2 ? this.dispiValue((off - V.MMIO_DISPI) >> 1) : k === 4 && this.r() < 0.5 ? this.pick([V.QEXT_LITTLE_ENDIAN, V.QEXT_BIG_ENDIAN]) : this.val(size);
      this.mw(VGA_MMIO + off, size, v);
      if (dispi) this.vbeFits();
    }
  }

  /** An address in the 0xA0000-0xBFFFF window: where text and graphics live, often; anywhere (and its last bytes), sometimes. */
  private windowAddr(size: number): number {
    const k = this.int(8);
    if (k < 3) return 0xa0000 + this.int(0x2000);
    if (k < 5) return 0xb8000 + this.int(0x1000);
    if (k < 6) return 0xc0000 - size - this.int(4) + (this.r() < 0.2 ? size : 0); // a few straddle the end
    return 0xa0000 + this.int(0x20000);
  }

  /** The legacy window: loads and stores, buffered stores (Xen sends stdvga writes on the ring), strings, REP MOVS/STOS. */
  private vgaWindow(): void {
    const k = this.int(10);
    const size = this.size();
    if (k < 2) {
      this.mr(this.windowAddr(size), size);
    } else if (k < 4) {
      this.mw(this.windowAddr(size), size, this.val(size));
    } else if (k < 6) {
      const bsize = this.pick([1, 2, 4, 8] as const);
      this.access(() => this.sim.bufferedWrite(this.windowAddr(bsize), bsize, this.r() < 0.9 ? this.u32() : BigInt(this.u32()) << 32n | BigInt(this.u32())), 'sync');
    } else if (k < 8) {
      // A string of buffered stores left on the ring, then delivered at once (past 511 slots
      // they go synchronously, as Xen does with a full ring): a line of text or of pixels.
      const text = this.r() < 0.5;
      let at = text ? 0xb8000 + 2 * this.int(2000) : this.windowAddr(4);
      const n = 1 + (this.r() < 0.9 ? this.int(80) : this.int(700));
      for (let i = 0; i < n; i++, at += text ? 2 : size) {
        const v = text ? 0x20 + this.int(95) + (this.int(256) << 8) : this.val(size);
        this.access(() => this.sim.bufferedWrite(at, text ? 2 : size, v, { deliver: false }), 'sync');
      }
      this.timed('delivering buffered ioreqs', () => this.sim.channel.deliver(), undefined);
    } else if (k < 9) {
      // REP MOVS between the window and a buffer (memcpy to the screen, scrolling reads), REP STOS (clearing it).
      const count = this.r() < 0.9 ? 1 + this.int(512) : this.u32();
      const dir = this.r() < 0.5 ? 'write' : 'read';
      const at = this.windowAddr(size);
      if (this.r() < 0.3) this.access(() => this.sim.request({ type: IOREQ_TYPE_COPY, dir: 'write', addr: at, data: this.val(size), size, count }), 0n);
      else this.access(() => this.sim.request({ type: IOREQ_TYPE_COPY, dir, addr: at, data: this.bufAddr(size), size, count, dataIsPtr: true, df: this.r() < 0.1 }), 0n);
    } else {
      this.vgaFont();
    }
  }

  /** An offset in VRAM: the start (where modes and fonts live), the last bytes, anywhere. */
  private vramOffset(size: number): number {
    const n = this.vga.core.vramSize;
    const k = this.int(10);
    if (k < 6) return this.int(0x40000);
    if (k < 7) return n - size - this.int(8) + (this.r() < 0.2 ? size : 0); // a few straddle the end of the BAR
    return this.int(n);
  }

  /** BAR0, the linear framebuffer: loads and stores (checked to read back when the device serves them), REP MOVS/STOS. */
  private vgaLfb(): void {
    const size = this.size();
    const off = this.vramOffset(size);
    const k = this.int(8);
    if (this.sim.vram !== undefined) this.lfbDirect = true;
    if (k < 3) {
      this.mr(VGA_LFB + off, size);
    } else if (k < 7) {
      const v = this.val(size);
      this.mw(VGA_LFB + off, size, v);
      if (this.r() < 0.2 && off + size <= this.vga.core.vramSize && this.decodes(VGA_LFB, 'vga BAR0')) {
        const got = this.mr(VGA_LFB + off, size);
        if (got !== v) this.defect(`LFB 0x${off.toString(16)} wrote 0x${v.toString(16)}, read 0x${got.toString(16)}`);
      }
    } else {
      const count = this.r() < 0.9 ? 1 + this.int(1024) : this.u32();
      if (this.r() < 0.3) this.access(() => this.sim.request({ type: IOREQ_TYPE_COPY, dir: 'write', addr: VGA_LFB + off, data: this.val(size), size, count }), 0n);
      else this.access(() => this.sim.request({ type: IOREQ_TYPE_COPY, dir: this.r() < 0.5 ? 'write' : 'read', addr: VGA_LFB + off, data: this.bufAddr(size), size, count, dataIsPtr: true }), 0n);
    }
  }

  /** The ROM BAR: enabled or not, read (checked against the image), written (ignored). */
  private vgaRom(): void {
    const k = this.int(8);
    if (k === 0) {
      this.cfgw(VGA_DEVFN, 0x30, 4, (VGA_ROM | (this.r() < 0.7 ? 1 : 0)) >>> 0);
      return;
    }
    const size = this.size();
    const off = this.r() < 0.8 ? this.int(VGA_BIOS.length) : this.int(0x10000 + 8);
    if (k === 1) this.mw(VGA_ROM + off, size, this.val(size));
    const v = this.mr(VGA_ROM + off, size);
    if (off + size <= 0x10000 && this.decodes(VGA_ROM, 'vga ROM')) {
      let want = 0;
      for (let i = 0; i < size; i++) want |= (off + i < VGA_BIOS.length ? VGA_BIOS[off + i] : 0) << (8 * i);
      if (v !== want >>> 0) this.defect(`ROM bytes at 0x${off.toString(16)} read 0x${v.toString(16)}, not 0x${(want >>> 0).toString(16)}`);
    }
  }

  /** A read of any kind the VGA answers (none may change VRAM). */
  private vgaRead(): void {
    const size = this.size();
    switch (this.int(8)) {
      case 0:
        return void this.in(0x3b0 + this.int(0x30), size);
      case 1:
        return void this.dispiRead(this.int(V.DISPI_VIDEO_MEMORY_64K + 2));
      case 2:
        return void this.mr(VGA_MMIO + this.int(V.MMIO_SIZE - 3), size);
      case 3:
      case 4:
        return void this.mr(this.windowAddr(size), size);
      case 5:
        return void this.mr(VGA_LFB + this.vramOffset(size), size);
      case 6:
        return void this.mr(VGA_ROM + this.int(0x10000 - 3), size);
      default:
        // Into guest RAM: REP INS from a port, REP MOVS from the window.
        if (this.r() < 0.5) return this.rep(0x3b0 + this.int(0x30), 1, 1 + this.int(64), true);
        this.access(() => this.sim.request({ type: IOREQ_TYPE_COPY, dir: 'read', addr: this.windowAddr(size), data: this.bufAddr(size), size, count: 1 + this.int(256), dataIsPtr: true }), 0n);
    }
  }

  /** Reads of every kind, a picture and a screendump: VRAM must be byte for byte as before. */
  private vgaReadsOnly(): void {
    const vram = this.vga.core.vram;
    const before = vramCopy(vram);
    for (let i = 0; i < 32; i++) this.vgaRead();
    this.picture(this.r() < 0.5);
    const now = Buffer.from(vram.buffer, vram.byteOffset, vram.length);
    if (!now.equals(before)) {
      let i = 0;
      while (now[i] === before[i]) i++;
      this.defect(`VRAM byte 0x${i.toString(16)} changed during reads and a picture (0x${before[i].toString(16)} -> 0x${now[i].toString(16)})`);
    }
  }

  /**
   * The display as a VNC viewer and QMP see it: refresh, then the incremental picture
   * must equal one drawn from scratch and the viewer's copy built from damage notices
   * alone; often a few framebuffer stores (no register writes) go in between two
   * pictures, so the dirty tracking, not a full redraw, has to find them.
   */
  private vgaRender(): void {
    this.picture(false);
    if (this.r() < 0.7) {
      for (let i = 0, n = 1 + this.int(8); i < n; i++) {
        const size = this.size();
        if (this.r() < 0.5) this.mw(this.windowAddr(size), size, this.val(size));
        else this.mw(VGA_LFB + this.vramOffset(size), size, this.val(size));
        if (this.sim.vram !== undefined) this.lfbDirect = true;
      }
      this.picture(this.r() < 0.3);
    }
  }

  private picture(screendump: boolean): void {
    const d = this.pc.display!;
    this.pics.renders++;
    this.timed('a display refresh', () => d.refresh(), undefined);
    if (this.lfbDirect && d.renderer.mode.kind === 'text') {
      // Glyph bytes stored straight into guest-page VRAM reach no handler that could note a font
      // change (QEMU's plane_updated misses them too): text shows them at the next full redraw.
      d.renderer.invalidate();
      this.timed('a display refresh', () => d.refresh(), undefined);
    }
    this.lfbDirect = false;
    this.viewer.pull(d.fb);
    this.full.invalidate();
    this.timed('a display refresh', () => this.full.update(), null);
    const what = `${d.renderer.mode.kind} ${d.width}x${d.height}`;
    if (this.viewer.bad) this.defect(`VNC viewer: ${this.viewer.bad} (${what})`);
    this.viewer.bad = '';
    if (this.full.width !== d.width || this.full.height !== d.height || this.full.mode.kind !== d.renderer.mode.kind) {
      this.defect(`the display is ${what}, a full redraw ${this.full.mode.kind} ${this.full.width}x${this.full.height}`);
    } else {
      const full = firstDiff(d.fb, this.full.fb, d.width);
      if (full) this.defect(`the incremental picture differs from a full redraw at ${full} (${what}, ${JSON.stringify(d.renderer.mode)})`);
    }
    if (this.viewer.w !== d.width || this.viewer.h !== d.height) this.defect(`VNC viewer told ${this.viewer.w}x${this.viewer.h}, the display is ${what}`);
    else {
      const seen = firstDiff(this.viewer.view, d.fb, d.width);
      if (seen) this.defect(`a VNC viewer's picture (from damage rectangles) differs from the display at ${seen} (${what})`);
    }
    if (screendump) this.screendump();
  }

  /** QMP screendump, PPM or PNG: a picture of the display's size, whatever state the guest left. */
  private screendump(): void {
    const d = this.pc.display!;
    // PNG of a huge picture is zlib's time, not the device model's: take those rarely.
    const png = this.r() < 0.5 && (d.width * d.height <= 1 << 20 || this.r() < 0.05);
    const pic = this.timed('a screendump', () => this.pc.screendump(png ? 'png' : 'ppm'), null);
    this.pics.screendumps++;
    if (pic === null) return this.defect('screendump: no picture from a machine with a VGA');
    const w = d.width;
    const h = d.height;
    if (png) {
      const ok = pic.length > 24 && pic.readUInt32BE(0) === 0x89504e47 && pic.readUInt32BE(16) === w && pic.readUInt32BE(20) === h;
      if (!ok) this.defect(`PNG screendump is not a ${w}x${h} PNG (${pic.length} bytes)`);
    } else {
      const head = `P6\n${w} ${h}\n255\n`;
      if (pic.subarray(0, head.length).toString('latin1') !== head || pic.length !== head.length + w * h * 3) this.defect(`PPM screendump is not a ${w}x${h} P6 (${pic.length} bytes)`);
    }
  }

  opVga(): void {
    const k = this.int(40);
    if (k < 10) this.vgaReg();
    else if (k < 12) this.vgaSetMode();
    else if (k < 17) this.vgaDispi();
    else if (k < 19) this.vgaVbeMode();
    else if (k < 23) this.vgaMmio();
    else if (k < 30) this.vgaWindow();
    else if (k < 34) this.vgaLfb();
    else if (k < 36) this.vgaRom();
    else if (k < 38) this.vgaRender();
    else if (k < 39 && this.r() < 0.25) this.vgaReadsOnly();
    else this.vgaReg();
  }

  opIoreq(): void {
    const k = this.int(8);
    if (k < 3) {
      // REP string I/O on any claimed or unclaimed port, absurd counts included.
      let port = this.r() < 0.5 ? this.pick([0x1f0, 0x170, 0x3f8, 0x60, 0x71, 0x12, 0x3f6, NIC_IO + 8]) : this.int(0x10000);
      // Not into an address register (PRDT, the NIC's IODATA) or a moved BAR: the bytes would name DMA nobody laid out.
      if ((port >= BMDMA && port < BMDMA + 16) || (port >= NIC_IO && port < NIC_IO + 64) || (port >= 0xd000 && port < 0xe000)) port = 0x80;
      this.rep(port, this.pick([1, 2, 4] as const), this.r() < 0.9 ? 1 + this.int(64) : this.u32(), this.r() < 0.5);
    } else if (k < 5) {
      // MMIO REP MOVS between a BAR and a buffer, and REP STOS.
      const addr = this.pick([NIC_MMIO, XP_MMIO, 0xfee00000, 0]) + 4 * this.int(256);
      const count = this.r() < 0.9 ? 1 + this.int(32) : this.u32();
      const toMmio = this.r() < 0.5;
      this.access(() => this.sim.request({ type: IOREQ_TYPE_COPY, dir: toMmio ? 'write' : 'read', addr, data: this.bufAddr(4), size: 4, count, dataIsPtr: true }), 0n);
    } else if (k < 6) {
      // A random port or MMIO access nobody claims (or someone does).
      const size = this.size();
      if (this.r() < 0.5) this.in(this.int(0x10000), size);
      else this.mr(this.u32() & ~(size - 1), size);
    } else if (k < 7) {
      this.access(() => this.sim.bufferedWrite(this.pick([0xa0000, 0x3c0, 0x12, 0x80]) + this.int(16), this.pick([1, 2, 4] as const), this.u32()), 'sync');
    } else {
      this.access(() => (this.r() < 0.5 ? this.sim.invalidate() : this.sim.timeoffset(this.int(1000) - 500)), undefined);
    }
  }

  /**
   * Save, restore, and refused restores of corrupted containers (refused before anything
   * changes: the good state must restore after them) and, with `records`, of corrupted device
   * records (refused with StateError; past the container checks a refused restore may leave
   * the machine part-restored, which main.ts poisons for good, so those run last in an epoch).
   */
  async opSaveRestore(records = false): Promise<void> {
    this.counts.saverestore++;
    let blob: Uint8Array;
    try {
      blob = await this.pc.save();
      this.pc.restore(blob);
    } catch (e) {
      this.defect(`save/restore of the machine's own state failed: ${String(e)}`);
      return;
    }
    for (let i = 0; i < 4; i++) {
      this.counts.saverestore++;
      const byteLevel = !records || this.r() < 0.3;
      try {
        if (byteLevel) {
          const b = this.r() < 0.2 ? blob.slice(0, this.int(blob.length)) : blob.slice();
          for (let j = 0; j < 1 + this.int(8); j++) if (b.length) b[this.int(b.length)] = this.int(256);
          this.pc.restore(b);
        } else {
          const recs = decodeContainer(blob) as Array<{ id: string; version: number; state: Record<string, unknown> }>;
          const rec = this.pick(recs);
          this.corrupt(rec.state, 0);
          this.pc.registry.restoreRecords(recs as never);
        }
      } catch (e) {
        if (!(e instanceof StateError)) this.defect(`a corrupted ${byteLevel ? 'container' : 'record'} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}, not StateError`);
      }
      if (!byteLevel) continue;
      try {
        this.pc.restore(blob);
      } catch (e) {
        this.defect(`the good state no longer restores after a refused container: ${String(e)}`);
        return;
      }
    }
  }

  /** Replace one field somewhere in a state object with a hostile value. */
  private corrupt(o: Record<string, unknown> | unknown[], depth: number): void {
    const keys = Object.keys(o);
    if (keys.length === 0) return;
    const k = this.pick(keys);
    const v = (o as Record<string, unknown>)[k];
    if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && depth < 6 && this.r() < 0.7) {
      this.corrupt(v as Record<string, unknown>, depth + 1);
      return;
    }
    const hostile: unknown[] = [-1, 2 ** 31, 2 ** 53, 1e300, NaN, 0.5, '', 'x'.repeat(100), null, true, [], {}, new Uint8Array(this.int(70000)),
      Array.from({ length: 300 }, () => this.int(256)), this.u32(), -this.u32(), typeof v === 'number' ? v + 1 : 0];
    (o as Record<string, unknown>)[k] = this.pick(hostile);
  }

  private dispatch(fam: Family): void {
    switch (fam) {
      case 'pci': return this.opPci();
      case 'ide': return this.opIde();
      case 'bmdma': return this.opBmdma();
      case 'e1000': return this.opE1000();
      case 'uart': return this.opUart();
      case 'cmos': return this.opCmos();
      case 'i8042': return this.opI8042();
      case 'xen-platform': return this.opXenPlatform();
      case 'vga': return this.opVga();
      default: return this.opIoreq();
    }
  }

  async run(ops: number, only?: readonly Family[]): Promise<void> {
    this.setupPci();
    // Weighted so each family gets a similar share of accesses: a weight is about 24 over the
    // family's accesses per operation, as measured (IDE 6.6, VGA 11, Xen platform 3.9, i8042
    // 0.84, the rest 1-1.7): a run lasts until its least exercised family has enough.
    const weights = ([['pci', 19], ['ide', 4], ['bmdma', 23], ['e1000', 14], ['uart', 24], ['cmos', 16], ['i8042', 29], ['xen-platform', 6], ['vga', 2], ['ioreq', 24]] as Array<[Family, number]>).filter(
      ([f]) => only === undefined || only.includes(f),
    );
    const total = weights.reduce((n, [, w]) => n + w, 0);
    const clock = simClock(this.sim);
    for (this.op = 0; this.op < ops; this.op++) {
      let x = this.int(total);
      let fam: Family = 'ioreq';
      for (const [f, w] of weights) {
        if (x < w) {
          fam = f;
          break;
        }
        x -= w;
      }
      this.fam = fam;
      try {
        this.dispatch(fam);
      } catch (e) {
        // Accesses catch what the device model throws; this is the fuzzer's own bug. Say so, carry on.
        this.defect(`fuzzer bug (not the device model): ${e instanceof Error ? e.stack?.split('\n').slice(0, 3).join(' | ') : String(e)}`);
      }
      if ((this.op & 31) === 31) {
        // Let backend completions and frame deliveries run, and time pass.
        await turn();
        this.checkpoint();
        if (this.r() < 0.3) clock.advance(this.int(50));
      }
      if ((this.op & 1023) === 1023) {
        if (this.r() < 0.5) this.setupPci();
        if (this.r() < 0.2) this.fillBuffers(this.bufAddr(), 4096);
      }
      if (this.op % 20000 === 19999) {
        this.fam = 'saverestore';
        await this.opSaveRestore();
      }
    }
  }

  /**
   * The VGA after the epoch: reads leave VRAM alone, Bochs DISPI still identifies (ports and BAR2 agree), a
   * 64x64x32 VBE mode (it fits the smallest VRAM) shows a pixel stored through the LFB,
   * and text mode 3 set from scratch shows a glyph loaded through the window, as the
   * VGA BIOS would draw it.
   */
  private probeVga(fail: (what: string) => void): void {
    this.vgaReadsOnly(); // at least once an epoch, whatever state the guest left
    const dispi = (i: number, v: number) => {
      this.out(0x1ce, 2, i);
      this.out(0x1cf, 2, v);
    };
    dispi(V.DISPI_ENABLE, 0);
    this.out(0x1ce, 2, V.DISPI_ID);
    const id = this.in(0x1cf, 2);
    if (id < V.DISPI_ID0 || id > V.DISPI_ID5) fail(`DISPI ID reads 0x${id.toString(16)}`);
    if (this.mr(VGA_MMIO + V.MMIO_DISPI, 2) !== id) fail(`DISPI ID through BAR2 is not the ports' 0x${id.toString(16)}`);
    dispi(V.DISPI_XRES, 64);
    dispi(V.DISPI_YRES, 64);
    dispi(V.DISPI_BPP, 32);
    dispi(V.DISPI_ENABLE, V.DISPI_ENABLED | V.DISPI_LFB_ENABLED);
    this.mw(VGA_LFB + (64 + 1) * 4, 4, 0x00ff8040);
    this.expectPixels(fail, 'VBE 64x64x32', 64, 64, [[1, 1, 0xff8040], [0, 0, 0]]);
    dispi(V.DISPI_ENABLE, 0);
    this.vgaSetMode(MODE3, -1);
    this.out(0x3c8, 1, 0);
    for (const v of [0, 0, 0, 0, 0, 42]) this.out(0x3c9, 1, v);
    this.out(0x3c8, 1, 63);
    for (const v of [63, 63, 63]) this.out(0x3c9, 1, v);
    this.vgaFont({ ch: 0x41, rows: GLYPH });
    this.vgaSetMode(MODE3, -1);
    this.access(() => this.sim.bufferedWrite(0xb8000, 2, 0x1f41), 'sync'); // "A", white on blue
    this.expectPixels(fail, 'text 80x25', 720, 400, [[3, 2, 0xffffff], [0, 2, 0x0000a8]]);
    this.picture(false);
  }

  /** A PPM screendump of w x h with these 0xRRGGBB pixels. */
  private expectPixels(fail: (what: string) => void, mode: string, w: number, h: number, pixels: Array<[number, number, number]>): void {
    const pic = this.timed('a screendump', () => this.pc.screendump('ppm'), null);
    this.pics.screendumps++;
    const head = `P6\n${w} ${h}\n255\n`;
    if (pic === null || pic.subarray(0, head.length).toString('latin1') !== head) {
      return fail(`${mode}: screendump is not ${w}x${h} (${JSON.stringify(pic?.subarray(0, 16).toString('latin1'))})`);
    }
    for (const [x, y, rgb] of pixels) {
      const o = head.length + (y * w + x) * 3;
      const got = (pic[o] << 16) | (pic[o + 1] << 8) | pic[o + 2];
      if (got !== rgb) fail(`${mode}: pixel (${x}, ${y}) is 0x${got.toString(16)}, not 0x${rgb.toString(16)}`);
    }
  }

  /** Reset what a guest can reset, then every device must answer. */
  async resetAndProbe(): Promise<void> {
    // A REP to port 0x10, or a restored state, may have unplugged them too: ask the machine.
    const xp = this.pc.platform.devices.find((d) => d.id === 'pci.xen-platform') as { unplugged?: number } | undefined;
    if (((xp?.unplugged ?? 0) & 0x7) !== 0) this.unplugged = true;
    this.setupPci();
    for (let i = 0; i < 64; i++) await turn();
    simClock(this.sim).advance(1000);
    this.checkpoint();
    const fail = (what: string) => this.defect(`after reset: ${what}`);
    // PCI identity.
    this.fam = 'pci';
    const ids: Array<[number, number]> = [[0, 0x12378086], [1 << 3, 0x70008086], [IDE_DEVFN, 0x70108086], [(1 << 3) | 3, 0x71138086], [XP_DEVFN, 0x00015853], [VGA_DEVFN, 0x11111234]];
    for (const [devfn, id] of ids) if (this.cfgr(devfn, 0, 4) !== id) fail(`PCI ${devfn.toString(16)} does not identify`);
    // IDE: stop both engines, soft-reset both channels, IDENTIFY the disk and the CD.
    this.fam = 'ide';
    for (const b of [BMDMA, BMDMA + 8]) this.out(b, 1, 0);
    for (const c of [0x3f6, 0x376]) {
      this.out(c, 1, 0x04);
      this.out(c, 1, 0x00);
    }
    for (let i = 0; i < 64; i++) await turn();
    const identify = async (chan: number, opcode: number, what: string, ok: (w0: number) => boolean) => {
      this.out(chan + 6, 1, 0xa0);
      this.out(chan + 7, 1, opcode);
      let st = 0;
      for (let i = 0; i < 2000 && ((st = this.in(chan + 0x206, 1)) & 0x88) !== 0x08; i++) await turn();
      if ((st & 0x88) !== 0x08) return fail(`${what} IDENTIFY: status 0x${st.toString(16)}, no data`);
      const w0 = this.in(chan, 2);
      for (let i = 1; i < 256; i++) this.in(chan, 2);
      if (!ok(w0)) fail(`${what} IDENTIFY word 0 = 0x${w0.toString(16)}`);
      if (this.in(chan + 7, 1) & 0x89) fail(`${what} IDENTIFY did not complete`);
    };
    if (!this.unplugged) await identify(0x1f0, 0xec, 'primary master disk', (w) => (w & 0x8000) === 0);
    await identify(0x170, 0xa1, 'secondary master CD-ROM', (w) => w >> 14 === 2);
    // e1000: device reset, PHY reset (CTRL.RST leaves the PHY, and a loopback bit the guest set
    // in it, alone: docs/e1000.md), then one frame out through a fresh ring.
    if (!this.unplugged) {
      this.fam = 'e1000';
      this.mw(NIC_MMIO, 4, 1 << 26);
      this.mw(NIC_MMIO, 4, 1 << 31); // CTRL.PHY_RST rising, then falling
      this.mw(NIC_MMIO, 4, 0);
      simClock(this.sim).advance(10);
      const ring = RINGS_LO + SLOTS * SLOT;
      const buf = BUF_LO;
      const frame = new Uint8Array(60).fill(0xab);
      this.sim.memory.ram.set(frame, buf);
      this.put32(ring, buf);
      this.put32(ring + 4, 0);
      this.put32(ring + 8, (60 | (1 << 24) | (1 << 27)) >>> 0);
      this.put32(ring + 12, 0);
      this.mw(NIC_MMIO + TDBAL, 4, ring);
      this.mw(NIC_MMIO + TDBAH, 4, 0);
      this.mw(NIC_MMIO + TDLEN, 4, 128);
      this.mw(NIC_MMIO + 0x3810, 4, 0);
      this.mw(NIC_MMIO + 0x3818, 4, 0);
      this.mw(NIC_MMIO + 0x400, 4, 0x0a);
      const before = this.framesOut;
      this.mw(NIC_MMIO + 0x3818, 4, 1);
      for (let i = 0; i < 64 && this.framesOut === before; i++) await turn();
      if (this.framesOut === before) fail('e1000 sent no frame from a one-descriptor ring');
    }
    // UART: scratch register and a byte out.
    this.fam = 'uart';
    this.out(0x3f8 + 3, 1, 0x03);
    this.out(0x3f8 + 1, 1, 0);
    this.out(0x3f8 + 4, 1, 0);
    this.out(0x3f8 + 7, 1, 0xa5);
    if (this.in(0x3f8 + 7, 1) !== 0xa5) fail('COM1 scratch register');
    const sent = this.serial.total;
    this.out(0x3f8, 1, 0x5a);
    simClock(this.sim).advance(100);
    if (this.serial.total === sent) fail('COM1 transmitted nothing');
    // CMOS NVRAM byte.
    this.fam = 'cmos';
    this.out(0x70, 1, 0x40);
    this.out(0x71, 1, 0x3c);
    this.out(0x70, 1, 0x40);
    if (this.in(0x71, 1) !== 0x3c) fail('CMOS byte 0x40 does not read back');
    // i8042 self-test, both ports disabled first (AD, A7): a stream-mode mouse with movement
    // pending refills the output buffer as it drains (each byte read makes room for the next
    // packet, up to MOUSE_PENDING_MAX of movement), so a bounded drain would not empty it.
    this.fam = 'i8042';
    this.out(0x64, 1, 0xad);
    this.out(0x64, 1, 0xa7);
    for (let i = 0; i < 64 && this.in(0x64, 1) & 1; i++) this.in(0x60, 1);
    this.out(0x64, 1, 0xaa);
    if (this.in(0x60, 1) !== 0x55) fail('i8042 self-test');
    // Xen platform magic.
    this.fam = 'xen-platform';
    if (this.in(0x10, 2) !== 0x49d2) fail('Xen platform magic');
    this.fam = 'vga';
    this.probeVga(fail);
    // Nothing outside BUFFERS and RINGS moved, whichever way it was written.
    const ram = Buffer.from(this.sim.memory.ram.buffer, this.sim.memory.ram.byteOffset, RAM);
    for (const [lo, hi] of [[0, PRD_LO], [BUF_HI, RAM]]) {
      if (!ram.subarray(lo, hi).equals(this.guard.subarray(0, hi - lo))) {
        let i = lo;
        while (ram[i] === GUARD_BYTE) i++;
        fail(`guard byte at 0x${i.toString(16)} changed (shadow copy)`);
      }
    }
    if (this.server.stats.deviceErrors > 0) this.defect(`${this.server.stats.deviceErrors} device exception(s) reached the ioreq loop`);
  }
}

function emptyCounts(): Record<Family, number> {
  return Object.fromEntries(FAMILIES.map((f) => [f, 0])) as Record<Family, number>;
}

/** Build epoch e's machine, run it, probe it, tear it down. */
async function runEpoch(seed: number, epoch: number, ops: number, res: FuzzResult, o: FuzzOptions): Promise<void> {
  // The display as libxl passes it (stdvga: before the NICs), its VRAM as guest pages (what
  // Xen gives a device model: BAR0 stores never reach it) in odd epochs, its own in even ones.
  const { config } = await parseArgs(['-xen-domid', '1', '-machine', 'xenfv', '-m', String(RAM_MIB), '--sim', '-device', `VGA,vgamem_mb=${VGA_MB[epoch % 8]}`,
    '-serial', 'pty', '-serial', 'pty', '-netdev', 'tap,id=n0,ifname=fuzz0', '-device', 'e1000,netdev=n0,mac=52:54:00:12:34:56']);
  const sim = createSimHost({ ramBytes: RAM, vram: epoch % 2 === 1 });
  const board = simBoard(sim);
  const log = pino({ level: 'silent' });
  const serials = config.serials.map((s) => new RingBackend(s.id, log, 4096));
  const pair = new MemoryPair({ capacity: 64 });
  const disk = new MemoryBackend(4 << 20);
  const cd = new Uint8Array(64 * 2048);
  for (let i = 0; i < cd.length; i++) cd[i] = (i * 13) & 0xff;
  const pc = await buildPc(board, config, log, serials, [{ nic: config.devices.find((d) => d.driver === 'e1000')!, backend: pair.a }], { vgaBios: VGA_BIOS, vram: sim.vram ?? null }, [
    { kind: 'disk', backend: disk, serial: 'QM00001' },
    { kind: 'disk', backend: new MemoryBackend(1 << 20), serial: 'QM00002' },
    { kind: 'cdrom', backend: new MemoryBackend(cd, true), serial: 'QM00003' },
    { kind: 'cdrom', backend: null, serial: 'QM00004' },
  ]);
  const server = new IoreqServer(sim, board, log);
  server.start();
  sim.channel.setEnabled(true);
  const e = new Epoch(seed, epoch, sim, board, pc, server, serials[0], pair, res.accesses, res.defects, res);
  o.sabotage?.(pc, sim);
  try {
    await e.run(ops, o.only);
    await e.resetAndProbe();
    e.fam = 'saverestore';
    await e.opSaveRestore(true);
  } finally {
    server.stop();
    await pc.close();
    res.slowestMs = Math.max(res.slowestMs, e.slowest);
    res.slowestPictureMs = Math.max(res.slowestPictureMs, e.slowestPicture);
  }
}

/** Run epochs until the access or time budget is spent. Resolves with the figures and the defects. */
export async function fuzzMachine(o: FuzzOptions): Promise<FuzzResult> {
  const t0 = performance.now();
  const counts = emptyCounts();
  const defects: Defect[] = [];
  const res: FuzzResult = { accesses: counts, defects, renders: 0, screendumps: 0, epochs: 0, slowestMs: 0, slowestPictureMs: 0, peakHeapMiB: 0, peakRssMiB: 0, ms: 0 };
  const ops = o.opsPerEpoch ?? 20000;
  const total = (): number => FAMILIES.reduce((n, f) => n + counts[f], 0);
  let baseHeap = -1;
  const escaped = (err: unknown) => pushDefect(defects, { seed: o.seed, epoch: res.epochs, op: -1, family: 'ioreq', what: `escaped to the event loop: ${String(err)}` });
  process.on('uncaughtException', escaped);
  process.on('unhandledRejection', escaped);
  try {
    for (let epoch = o.epoch ?? 0; ; epoch++) {
      await runEpoch(o.seed, epoch, ops, res, o);
      res.epochs++;
      (globalThis as { gc?: () => void }).gc?.();
      const m = process.memoryUsage();
      if (baseHeap < 0) baseHeap = m.heapUsed;
      res.peakHeapMiB = Math.max(res.peakHeapMiB, m.heapUsed / 2 ** 20);
      res.peakRssMiB = Math.max(res.peakRssMiB, m.rss / 2 ** 20);
      if (m.heapUsed - baseHeap > HEAP_GROWTH_LIMIT) pushDefect(defects, { seed: o.seed, epoch, op: -1, family: 'ioreq', what: `heap grew ${Math.round((m.heapUsed - baseHeap) / 2 ** 20)} MiB` });
      if (m.rss > RSS_LIMIT) pushDefect(defects, { seed: o.seed, epoch, op: -1, family: 'ioreq', what: `RSS ${Math.round(m.rss / 2 ** 20)} MiB` });
      res.ms = performance.now() - t0;
      o.progress?.(res);
      if (o.epoch !== undefined) break;
      if (o.stopOnDefect && defects.length > 0) break;
      if (o.accesses !== undefined && total() >= o.accesses) break;
      if (o.seconds !== undefined && res.ms >= o.seconds * 1000) break;
      if (o.perFamily !== undefined && FAMILIES.every((f) => f === 'saverestore' || counts[f] >= o.perFamily!)) break;
      if (o.accesses === undefined && o.seconds === undefined && o.perFamily === undefined) break;
    }
  } finally {
    process.off('uncaughtException', escaped);
    process.off('unhandledRejection', escaped);
  }
  res.ms = performance.now() - t0;
  return res;
}
