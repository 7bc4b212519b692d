/**
 * The whole-machine fuzzer (`npm run fuzz`, a smoke of it in
 * test/fuzz/machine.test.ts): a xenfv PC (buildPc) on the simulator, driven
 * only through ioreqs as a hostile guest would, every device family, with
 * structured guest memory (PRD tables, descriptor rings, CDBs) so that
 * valid command sequences are reached, not only random bytes.
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
 *   (IDENTIFY, a transmitted frame, the UART scratch register, ...);
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
import { prng } from '../helpers/prng.ts';

export const FAMILIES = ['pci', 'ide', 'bmdma', 'e1000', 'uart', 'cmos', 'i8042', 'xen-platform', 'ioreq', 'saverestore'] as const;
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
const NIC_DEVFN = 3 << 3;
const BMDMA = 0xc000;
const XP_IO = 0xc100;
const NIC_IO = 0xc200;
const XP_MMIO = 0xf0000000;
const NIC_MMIO = 0xf1000000;
const DEVFNS = [0, 1 << 3, IDE_DEVFN, (1 << 3) | 3, XP_DEVFN, NIC_DEVFN];

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
  /** ...or until this many seconds have passed (whichever comes first when both are given). */
  seconds?: number;
  /** Only this epoch (replay). */
  epoch?: number;
  /** Operations per epoch (an operation is one or more accesses). */
  opsPerEpoch?: number;
  /** Stop at the first defect. */
  stopOnDefect?: boolean;
  /** Tests: change the machine after it is built: break it to show an oracle fires, or leave a state a guest could reach for the probe. */
  sabotage?: (pc: Pc, sim: SimHost) => void;
  /** Called after each epoch (progress lines). */
  progress?: (r: FuzzResult) => void;
}

export interface FuzzResult {
  accesses: Record<Family, number>;
  defects: Defect[];
  epochs: number;
  slowestMs: number;
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

/** The guard regions hold this byte; their shadow is one buffer of it as long as the largest region. */
const GUARD_BYTE = 0x5a;
let shadow: Buffer | null = null;
function guardShadow(): Buffer {
  shadow ??= Buffer.alloc(RAM - BUF_HI, GUARD_BYTE);
  return shadow;
}

/** One epoch's machine and the guest that attacks it. */
class Epoch {
  readonly r: () => number;
  fam: Family = 'ioreq';
  op = 0;
  slowest = 0;
  private cpuMark = process.threadCpuUsage();
  private wallMark = performance.now();
  unplugAllowed: boolean;
  private unplugged = false;
  private ioaddr = 0;
  private readonly guard: Buffer;
  framesOut = 0;

  constructor(
    readonly seed: number,
    readonly epoch: number,
    readonly sim: SimHost,
    readonly pc: Pc,
    readonly server: IoreqServer,
    readonly serial: RingBackend,
    readonly pair: MemoryPair,
    readonly counts: Record<Family, number>,
    readonly defects: Defect[],
  ) {
    this.r = prng(epochSeed(seed, epoch));
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
    if (k === 2) return (1 << this.int(size * 8)) >>> 0 & mask;
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
    const t0 = performance.now();
    let v = fallback;
    try {
      v = f();
    } catch (e) {
      this.defect(`exception escaped the ioreq path: ${e instanceof Error ? e.stack?.split('\n').slice(0, 3).join(' | ') : String(e)}`);
    }
    const dt = performance.now() - t0;
    if (dt > this.slowest) this.slowest = dt;
    if (dt > SLOW_ACCESS_MS) this.slowCheck('one access', t0, dt);
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
    this.fam = f;
  }

  // ---- one operation per family -------------------------------------------------------------

  opPci(): void {
    const devfn = this.r() < 0.9 ? this.pick(DEVFNS) : this.int(256);
    const size = this.size();
    const reg = this.r() < 0.5 ? this.int(0x50) & ~(size - 1) : this.int(256);
    if (this.r() < 0.5) this.cfgr(devfn, reg, size);
    else if ((devfn === IDE_DEVFN || devfn === NIC_DEVFN || devfn === XP_DEVFN) && reg + size > 0x10 && reg < 0x28) {
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
      default: return this.opIoreq();
    }
  }

  async run(ops: number): Promise<void> {
    this.setupPci();
    // Weighted so each family gets a similar share of accesses (an IDE command is ~7 of them).
    const weights: Array<[Family, number]> = [['pci', 8], ['ide', 5], ['bmdma', 10], ['e1000', 7], ['uart', 10], ['cmos', 7], ['i8042', 12], ['xen-platform', 3], ['ioreq', 9]];
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
    const ids: Array<[number, number]> = [[0, 0x12378086], [1 << 3, 0x70008086], [IDE_DEVFN, 0x70108086], [(1 << 3) | 3, 0x71138086], [XP_DEVFN, 0x00015853]];
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
    // e1000: device reset, then one frame out through a fresh ring.
    if (!this.unplugged) {
      this.fam = 'e1000';
      this.mw(NIC_MMIO, 4, 1 << 26);
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
async function runEpoch(seed: number, epoch: number, ops: number, counts: Record<Family, number>, defects: Defect[], sabotage?: FuzzOptions['sabotage']): Promise<number> {
  const { config } = await parseArgs(['-xen-domid', '1', '-machine', 'xenfv', '-m', String(RAM_MIB), '--sim', '-serial', 'pty', '-serial', 'pty',
    '-netdev', 'tap,id=n0,ifname=fuzz0', '-device', 'e1000,netdev=n0,mac=52:54:00:12:34:56']);
  const sim = createSimHost({ ramBytes: RAM });
  const board = simBoard(sim);
  const log = pino({ level: 'silent' });
  const serials = config.serials.map((s) => new RingBackend(s.id, log, 4096));
  const pair = new MemoryPair({ capacity: 64 });
  const disk = new MemoryBackend(4 << 20);
  const cd = new Uint8Array(64 * 2048);
  for (let i = 0; i < cd.length; i++) cd[i] = (i * 13) & 0xff;
  const pc = await buildPc(board, config, log, serials, [{ nic: config.devices.find((d) => d.driver === 'e1000')!, backend: pair.a }], {}, [
    { kind: 'disk', backend: disk, serial: 'QM00001' },
    { kind: 'disk', backend: new MemoryBackend(1 << 20), serial: 'QM00002' },
    { kind: 'cdrom', backend: new MemoryBackend(cd, true), serial: 'QM00003' },
    { kind: 'cdrom', backend: null, serial: 'QM00004' },
  ]);
  const server = new IoreqServer(sim, board, log);
  server.start();
  sim.channel.setEnabled(true);
  const e = new Epoch(seed, epoch, sim, pc, server, serials[0], pair, counts, defects);
  sabotage?.(pc, sim);
  try {
    await e.run(ops);
    await e.resetAndProbe();
    e.fam = 'saverestore';
    await e.opSaveRestore(true);
  } finally {
    server.stop();
    await pc.close();
  }
  return e.slowest;
}

/** Run epochs until the access or time budget is spent. Resolves with the figures and the defects. */
export async function fuzzMachine(o: FuzzOptions): Promise<FuzzResult> {
  const t0 = performance.now();
  const counts = emptyCounts();
  const defects: Defect[] = [];
  const res: FuzzResult = { accesses: counts, defects, epochs: 0, slowestMs: 0, peakHeapMiB: 0, peakRssMiB: 0, ms: 0 };
  const ops = o.opsPerEpoch ?? 20000;
  const total = (): number => FAMILIES.reduce((n, f) => n + counts[f], 0);
  let baseHeap = -1;
  const escaped = (err: unknown) => pushDefect(defects, { seed: o.seed, epoch: res.epochs, op: -1, family: 'ioreq', what: `escaped to the event loop: ${String(err)}` });
  process.on('uncaughtException', escaped);
  process.on('unhandledRejection', escaped);
  try {
    for (let epoch = o.epoch ?? 0; ; epoch++) {
      const slow = await runEpoch(o.seed, epoch, ops, counts, defects, o.sabotage);
      res.epochs++;
      res.slowestMs = Math.max(res.slowestMs, slow);
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
      if (o.accesses === undefined && o.seconds === undefined) break;
    }
  } finally {
    process.off('uncaughtException', escaped);
    process.off('unhandledRejection', escaped);
  }
  res.ms = performance.now() - t0;
  return res;
}
