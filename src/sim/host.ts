/**
 * The simulated hypervisor: a Host for the device model plus a qtest-like
 * driver that plays the guest and Xen.
 *
 * Every synchronous access is encoded in the vCPU's slot exactly as Xen does
 * it (fields written while state is NONE, then state READY, then the port is
 * raised), the DM's watch callback runs synchronously, and the driver then
 * checks what Xen checks and more: the slot must be IORESP_READY, the DM
 * must have notified that vCPU's port, must not have touched the slot after
 * answering, must have kept the upper bits of byte 30 and vp_eport. Any
 * violation throws DmProtocolError in the driver, i.e. fails the test. The
 * driver then takes `data` and resets the slot to NONE, like Xen.
 */
import { Board } from '../core/board.ts';
import { RealClock, VirtualClock, type Clock } from '../core/clock.ts';
import type { Host, HostRestriction, RestrictProbe } from '../core/host.ts';
import { RANGE_MMIO, RANGE_PORT, RestrictError } from '../core/host.ts';
import {
  BUF_ADDR_SHIFT,
  BUF_OFF_READ_POINTER,
  BUF_OFF_SLOTS,
  BUF_OFF_WRITE_POINTER,
  BUF_SIZE_SHIFT,
  BUF_SLOT_SIZE,
  IOREQ_BUFFER_SLOT_NUM,
  IOREQ_DATA_IS_PTR,
  IOREQ_DF,
  IOREQ_DIR,
  IOREQ_OFF_ADDR,
  IOREQ_OFF_COUNT,
  IOREQ_OFF_DATA,
  IOREQ_OFF_FLAGS,
  IOREQ_OFF_SIZE,
  IOREQ_OFF_TYPE,
  IOREQ_OFF_VP_EPORT,
  IOREQ_SIZE,
  IOREQ_STATE_MASK,
  IOREQ_TYPE_COPY,
  IOREQ_TYPE_INVALIDATE,
  IOREQ_TYPE_PCI_CONFIG,
  IOREQ_TYPE_PIO,
  IOREQ_TYPE_TIMEOFFSET,
  STATE_IOREQ_NONE,
  STATE_IOREQ_READY,
  STATE_IORESP_READY,
} from '../ioreq/abi.ts';
import { SimChannel, simRemotePort } from './channel.ts';
import { SimMemory } from './memory.ts';
import { SimVramProvider } from './vram.ts';
import { SimInterrupts, SimPower, SimRouting, SimStore, type IoRange, type Msi, type ShutdownRequest } from './platform.ts';
import { waitFor, type WaitOptions } from './wait.ts';

export interface SimHostOptions {
  ramBytes: number;
  /** Offer guest-page VRAM (core/vram.ts); off by default (display devices then keep VRAM themselves). */
  vram?: boolean;
  vcpus?: number;
  domid?: number;
  /** Create the buffered ring (Xen's HVM_IOREQSRV_BUFIOREQ_ATOMIC); default true. */
  buffered?: boolean;
  /**
   * 'virtual' (default): device timers run only when the test calls
   * sim.clock.advance(ms), so timer behaviour is deterministic. 'real': the
   * host's clock (`stubdm --sim`, the demo, benchmarks).
   */
  clock?: 'virtual' | 'real';
}

/** The DM broke the ioreq protocol (a test failure, never a guest's fault). */
export class DmProtocolError extends Error {
  override name = 'DmProtocolError';
}

export interface RepOptions {
  /** Direction flag: addresses step downwards from the given ones. */
  df?: boolean;
}

/** A raw synchronous ioreq, for requests the named helpers do not cover. */
export interface RawIoreq {
  type: number;
  dir: 'read' | 'write';
  addr: number | bigint;
  data?: number | bigint;
  count?: number;
  size: number;
  dataIsPtr?: boolean;
  df?: boolean;
  vcpu?: number;
}

export interface BufferedWriteOptions {
  /** IOREQ_TYPE_COPY (default, what stdvga sends) or IOREQ_TYPE_PIO / TIMEOFFSET. */
  type?: number;
  /** Run the DM's callback now (default true). False leaves the event queued: call deliver(). */
  deliver?: boolean;
}

const TWO_32 = 4294967296;
/**
 * What a read's data field holds before the DM answers: a DM that forgets to
 * write data is caught. Below 2^31 so it stays a small integer (no boxing).
 */
const READ_POISON = 0x5eadbeef;
const W_ADDR = IOREQ_OFF_ADDR / 4;
const W_DATA = IOREQ_OFF_DATA / 4;
const W_COUNT = IOREQ_OFF_COUNT / 4;
const W_SIZE = IOREQ_OFF_SIZE / 4;
const W_VP_EPORT = IOREQ_OFF_VP_EPORT / 4;
const W_BUF_RD = BUF_OFF_READ_POINTER / 4;
const W_BUF_WR = BUF_OFF_WRITE_POINTER / 4;

// Halves travel as int32 (`| 0`): values >= 2^31 passed between functions
// would be boxed as heap numbers, i.e. allocate. The pages are accessed
// through Int32Array views for the same reason (same bits as the u32 fields).
function lo32(v: number): number {
  return v | 0; // ToInt32 keeps the low 32 bits of any integer below 2^53
}
function hi32(v: number): number {
  return Math.floor(v / TWO_32) | 0;
}
function sizeMask(size: number): number {
  return size >= 4 ? 0xffffffff : (1 << (size * 8)) - 1;
}

/**
 * -xen-domid-restrict on the simulator: what the kernel does to restricted
 * handles (drivers/xen/privcmd.c refuses a dm_op or a foreign map of another
 * domain with EPERM before Xen sees it; Xen answers ESRCH for a domain that
 * does not exist), and xenstore closed. `fail` makes restrict() fail as
 * xentoolcore_restrict_all would on a kernel without restriction support.
 */
export class SimRestriction implements HostRestriction {
  restricted = false;
  fail = false;
  calls = 0;

  constructor(
    private readonly domid: number,
    private readonly store: SimStore,
  ) {}

  restrict(): void {
    this.calls++;
    if (this.restricted) return;
    this.store.closed = true;
    if (this.fail) throw new RestrictError(`stubdm: -xen-domid-restrict: xentoolcore_restrict_all(${this.domid}) failed (Inappropriate ioctl for device) (simulated)`);
    this.restricted = true;
  }

  probe(): RestrictProbe {
    const other = this.restricted ? 'EPERM' : 'ESRCH';
    return { restricted: this.restricted, domid: this.domid, guest: 'ok', otherDomid: 0x7fef, dmOp: other, map: other, evtchn: other };
  }
}

export class SimHost implements Host {
  readonly domid: number;
  readonly interrupts = new SimInterrupts();
  readonly power: SimPower;
  readonly routing = new SimRouting();
  readonly channel: SimChannel;
  readonly memory: SimMemory;
  readonly store: SimStore;
  /** A VirtualClock unless created with clock: 'real'. */
  readonly clock: Clock;
  readonly vram?: SimVramProvider;
  readonly restriction: SimRestriction;
  closed = false;
  /** vCPU the driver methods run on. */
  vcpu = 0;

  private readonly s8: Uint8Array;
  private readonly s32: Int32Array;
  private readonly b32: Int32Array | null;
  private readonly posted: Uint8Array;
  /** Upper bits of byte 30 as posted: the DM must keep them. */
  private readonly postedFlags: Uint8Array;
  /** Data of the last completed request (int32 halves). */
  private resLo = 0;
  private resHi = 0;

  constructor(opts: SimHostOptions) {
    this.domid = opts.domid ?? 1;
    this.memory = new SimMemory(opts.ramBytes);
    if (opts.vram) this.vram = new SimVramProvider();
    this.channel = new SimChannel(opts.vcpus ?? 1, opts.buffered ?? true);
    this.store = new SimStore(0);
    this.restriction = new SimRestriction(this.domid, this.store);
    this.clock = opts.clock === 'real' ? new RealClock() : new VirtualClock();
    this.s8 = new Uint8Array(this.channel.ioreqPage);
    this.s32 = new Int32Array(this.channel.ioreqPage);
    this.b32 = this.channel.bufPage ? new Int32Array(this.channel.bufPage) : null;
    this.posted = new Uint8Array(this.channel.vcpus);
    this.postedFlags = new Uint8Array(this.channel.vcpus);
    this.power = new SimPower(() => {
      const out: number[] = [];
      for (let i = 0; i < this.channel.vcpus; i++) out.push(this.slotState(i));
      return out;
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.setEnabled(false);
  }

  // ---- observations ----------------------------------------------------------------

  get ram(): Uint8Array {
    return this.memory.ram;
  }
  get enabled(): boolean {
    return this.channel.enabled;
  }
  isaIrqLevel(irq: number): number {
    return this.interrupts.isaLevels[irq];
  }
  pciIntxLevel(device: number, pin: number): number {
    return this.interrupts.intxLevels[device * 4 + pin];
  }
  get linkRoutes(): readonly number[] {
    return this.interrupts.linkRoutes;
  }
  get msis(): readonly Msi[] {
    return this.interrupts.msis;
  }
  get shutdownRequests(): readonly ShutdownRequest[] {
    return this.power.shutdownRequests;
  }
  get ioRanges(): readonly IoRange[] {
    return this.routing.ioRanges;
  }
  get pciFunctions(): ReadonlySet<number> {
    return this.routing.pciFunctions;
  }
  /** Would Xen route port `port` (size bytes) to this server? */
  claimsPort(port: number, size = 1): boolean {
    return this.routing.claims(RANGE_PORT, port, port + size - 1);
  }
  claimsMmio(addr: number, size = 1): boolean {
    return this.routing.claims(RANGE_MMIO, addr, addr + size - 1);
  }
  slotState(vcpu: number): number {
    return Atomics.load(this.s8, vcpu * IOREQ_SIZE + IOREQ_OFF_FLAGS) & IOREQ_STATE_MASK;
  }
  /** For protocol tests: force a slot's state nibble. */
  setSlotState(vcpu: number, state: number): void {
    const fb = vcpu * IOREQ_SIZE + IOREQ_OFF_FLAGS;
    Atomics.store(this.s8, fb, (Atomics.load(this.s8, fb) & ~IOREQ_STATE_MASK) | state);
  }
  bufferedPointers(): { read: number; write: number } {
    const b = this.needBuf();
    return { read: Atomics.load(b, W_BUF_RD), write: Atomics.load(b, W_BUF_WR) };
  }

  // ---- guest RAM --------------------------------------------------------------------

  memread(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    if (!this.memory.read(gpa, out, 0, len)) throw new RangeError(`memread 0x${gpa.toString(16)}+${len} outside guest RAM`);
    return out;
  }
  memwrite(gpa: number, bytes: Uint8Array | readonly number[]): void {
    const src = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
    if (!this.memory.write(gpa, src, 0, src.length)) throw new RangeError(`memwrite 0x${gpa.toString(16)}+${src.length} outside guest RAM`);
  }

  // ---- port I/O ---------------------------------------------------------------------

  outb(port: number, v: number): void {
    this.sync(this.vcpu, IOREQ_TYPE_PIO, 0, port, 0, v & 0xff, 0, 1, 1);
  }
  outw(port: number, v: number): void {
    this.sync(this.vcpu, IOREQ_TYPE_PIO, 0, port, 0, v & 0xffff, 0, 1, 2);
  }
  outl(port: number, v: number): void {
    this.sync(this.vcpu, IOREQ_TYPE_PIO, 0, port, 0, v | 0, 0, 1, 4);
  }
  inb(port: number): number {
    this.sync(this.vcpu, IOREQ_TYPE_PIO, IOREQ_DIR, port, 0, READ_POISON, 0, 1, 1);
    return this.resLo & 0xff;
  }
  inw(port: number): number {
    this.sync(this.vcpu, IOREQ_TYPE_PIO, IOREQ_DIR, port, 0, READ_POISON, 0, 1, 2);
    return this.resLo & 0xffff;
  }
  inl(port: number): number {
    this.sync(this.vcpu, IOREQ_TYPE_PIO, IOREQ_DIR, port, 0, READ_POISON, 0, 1, 4);
    return this.resLo >>> 0;
  }

  /** REP INSB/INSW/INSL: `count` elements from `port` to guest RAM at gpa ± i*size. */
  insb(port: number, gpa: number, count: number, o?: RepOptions): void {
    this.pioRep(port, gpa, count, 1, true, o);
  }
  insw(port: number, gpa: number, count: number, o?: RepOptions): void {
    this.pioRep(port, gpa, count, 2, true, o);
  }
  insl(port: number, gpa: number, count: number, o?: RepOptions): void {
    this.pioRep(port, gpa, count, 4, true, o);
  }
  /** REP OUTSB/OUTSW/OUTSL: `count` elements from guest RAM at gpa ± i*size to `port`. */
  outsb(port: number, gpa: number, count: number, o?: RepOptions): void {
    this.pioRep(port, gpa, count, 1, false, o);
  }
  outsw(port: number, gpa: number, count: number, o?: RepOptions): void {
    this.pioRep(port, gpa, count, 2, false, o);
  }
  outsl(port: number, gpa: number, count: number, o?: RepOptions): void {
    this.pioRep(port, gpa, count, 4, false, o);
  }

  private pioRep(port: number, gpa: number, count: number, size: number, read: boolean, o?: RepOptions): void {
    const flags = IOREQ_DATA_IS_PTR | (read ? IOREQ_DIR : 0) | (o?.df ? IOREQ_DF : 0);
    this.sync(this.vcpu, IOREQ_TYPE_PIO, flags, port, 0, lo32(gpa), hi32(gpa), count, size);
  }

  // ---- MMIO --------------------------------------------------------------------------

  readb(addr: number): number {
    return this.vramAccess(addr, 1, -1) ?? this.mmioRead(addr, 1);
  }
  readw(addr: number): number {
    return this.vramAccess(addr, 2, -1) ?? this.mmioRead(addr, 2);
  }
  readl(addr: number): number {
    return this.vramAccess(addr, 4, -1) ?? this.mmioRead(addr, 4);
  }

  /**
   * A guest access inside a placed VRAM is RAM, as under Xen: no ioreq; a
   * write dirties the page for track_dirty_vram. `v` < 0 reads. Null: not VRAM.
   */
  private vramAccess(addr: number, size: number, v: number): number | null {
    const h = this.vram?.hit(addr, size);
    if (!h) return null;
    const b = h.v.bytes;
    if (v < 0) {
      let r = 0;
      for (let i = 0; i < size; i++) r |= b[h.off + i] << (8 * i);
      return r >>> 0;
    }
    for (let i = 0; i < size; i++) b[h.off + i] = (v >>> (8 * i)) & 0xff;
    h.v.guestDirty[h.off >>> 12] = 1;
    h.v.guestDirty[(h.off + size - 1) >>> 12] = 1;
    return 0;
  }
  readq(addr: number): bigint {
    this.mmioRead(addr, 8);
    return this.res64();
  }
  writeb(addr: number, v: number): void {
    if (this.vramAccess(addr, 1, v & 0xff) !== null) return;
    this.sync(this.vcpu, IOREQ_TYPE_COPY, 0, lo32(addr), hi32(addr), v & 0xff, 0, 1, 1);
  }
  writew(addr: number, v: number): void {
    if (this.vramAccess(addr, 2, v & 0xffff) !== null) return;
    this.sync(this.vcpu, IOREQ_TYPE_COPY, 0, lo32(addr), hi32(addr), v & 0xffff, 0, 1, 2);
  }
  writel(addr: number, v: number): void {
    if (this.vramAccess(addr, 4, v >>> 0) !== null) return;
    this.sync(this.vcpu, IOREQ_TYPE_COPY, 0, lo32(addr), hi32(addr), v | 0, 0, 1, 4);
  }
  writeq(addr: number, v: bigint | number): void {
    const b = BigInt.asUintN(64, BigInt(v));
    this.sync(this.vcpu, IOREQ_TYPE_COPY, 0, lo32(addr), hi32(addr), Number(b & 0xffffffffn), Number(b >> 32n), 1, 8);
  }

  private mmioRead(addr: number, size: number): number {
    this.sync(this.vcpu, IOREQ_TYPE_COPY, IOREQ_DIR, lo32(addr), hi32(addr), READ_POISON, READ_POISON, 1, size);
    return size === 8 ? this.resLo >>> 0 : (this.resLo & sizeMask(size)) >>> 0;
  }

  /** REP MOVS from MMIO at addr ± i*size into guest RAM at gpa ± i*size. */
  movsFromMmio(addr: number, gpa: number, size: number, count: number, o?: RepOptions): void {
    const flags = IOREQ_DATA_IS_PTR | IOREQ_DIR | (o?.df ? IOREQ_DF : 0);
    this.sync(this.vcpu, IOREQ_TYPE_COPY, flags, lo32(addr), hi32(addr), lo32(gpa), hi32(gpa), count, size);
  }
  /** REP MOVS from guest RAM at gpa ± i*size to MMIO at addr ± i*size. */
  movsToMmio(addr: number, gpa: number, size: number, count: number, o?: RepOptions): void {
    const flags = IOREQ_DATA_IS_PTR | (o?.df ? IOREQ_DF : 0);
    this.sync(this.vcpu, IOREQ_TYPE_COPY, flags, lo32(addr), hi32(addr), lo32(gpa), hi32(gpa), count, size);
  }
  /** REP STOS to MMIO: `value` stored `count` times at addr ± i*size (no pointer, as Xen sends it). */
  stos(addr: number, size: number, value: number | bigint, count: number, o?: RepOptions): void {
    const b = BigInt.asUintN(64, BigInt(value));
    const flags = o?.df ? IOREQ_DF : 0;
    this.sync(this.vcpu, IOREQ_TYPE_COPY, flags, lo32(addr), hi32(addr), Number(b & 0xffffffffn), Number(b >> 32n), count, size);
  }
  /** A repeated MMIO read without pointer (count > 1): returns what the DM left in data. */
  mmioRepRead(addr: number, size: number, count: number, o?: RepOptions): bigint {
    const flags = IOREQ_DIR | (o?.df ? IOREQ_DF : 0);
    this.sync(this.vcpu, IOREQ_TYPE_COPY, flags, lo32(addr), hi32(addr), READ_POISON, READ_POISON, count, size);
    return this.res64();
  }

  // ---- PCI config (IOREQ_TYPE_PCI_CONFIG: addr = SBDF << 32 | register) ---------------

  pciConfigRead(devfn: number, reg: number, size: number, bus = 0, seg = 0): number {
    const sbdf = ((seg & 0xffff) << 16) | ((bus & 0xff) << 8) | (devfn & 0xff);
    this.sync(this.vcpu, IOREQ_TYPE_PCI_CONFIG, IOREQ_DIR, reg | 0, sbdf | 0, READ_POISON, 0, 1, size);
    return (this.resLo & sizeMask(size)) >>> 0;
  }
  pciConfigWrite(devfn: number, reg: number, size: number, value: number, bus = 0, seg = 0): void {
    const sbdf = ((seg & 0xffff) << 16) | ((bus & 0xff) << 8) | (devfn & 0xff);
    this.sync(this.vcpu, IOREQ_TYPE_PCI_CONFIG, 0, reg | 0, sbdf | 0, value & sizeMask(size), 0, 1, size);
  }

  // ---- special requests ----------------------------------------------------------------

  /** What Xen broadcasts after the guest gave memory back: size 4, write, data ~0, count 0. */
  invalidate(): void {
    this.sync(this.vcpu, IOREQ_TYPE_INVALIDATE, 0, 0, 0, 0xffffffff, 0xffffffff, 0, 4);
  }

  /**
   * The guest moved its RTC: Xen broadcasts IOREQ_TYPE_TIMEOFFSET buffered,
   * 8 bytes; a server without a ring (or with a full one) just misses it.
   */
  timeoffset(seconds: number): 'buffered' | 'dropped' {
    const b = this.b32;
    if (b === null || Atomics.load(b, W_BUF_WR) - Atomics.load(b, W_BUF_RD) >= IOREQ_BUFFER_SLOT_NUM - 1) return 'dropped';
    return this.bufferedWrite(0, 8, BigInt(seconds), { type: IOREQ_TYPE_TIMEOFFSET }) === 'buffered' ? 'buffered' : 'dropped';
  }

  /** Any synchronous ioreq; returns data as Xen would read it back (64 bits). */
  request(r: RawIoreq): bigint {
    const addr = BigInt.asUintN(64, BigInt(r.addr));
    const data = BigInt.asUintN(64, BigInt(r.data ?? (r.dir === 'read' ? READ_POISON : 0)));
    const flags = (r.dir === 'read' ? IOREQ_DIR : 0) | (r.dataIsPtr ? IOREQ_DATA_IS_PTR : 0) | (r.df ? IOREQ_DF : 0);
    this.sync(
      r.vcpu ?? this.vcpu,
      r.type,
      flags,
      Number(addr & 0xffffffffn),
      Number(addr >> 32n),
      Number(data & 0xffffffffn),
      Number(data >> 32n),
      r.count ?? 1,
      r.size,
    );
    return this.res64();
  }

  /**
   * Xen's ioreq_send_buffered: a write of `size` bytes (8 takes two slots)
   * into the ring, then the buffered port is raised. Like Xen, falls back to
   * a synchronous request when the access cannot be buffered (address above
   * 0xfffff, no ring) or the ring is full. Returns which way it went.
   */
  bufferedWrite(addr: number, size: 1 | 2 | 4 | 8, value: number | bigint, o?: BufferedWriteOptions): 'buffered' | 'sync' {
    const type = o?.type ?? IOREQ_TYPE_COPY;
    let lo: number;
    let hi: number;
    if (typeof value === 'number' && value >= 0 && value <= 0xffffffff) {
      lo = value | 0; // no BigInt on the common path (benchmarks)
      hi = 0;
    } else {
      const v = BigInt.asUintN(64, BigInt(value));
      lo = Number(v & 0xffffffffn);
      hi = Number(v >> 32n);
    }
    const qw = size === 8 ? 1 : 0;
    const b = this.b32;
    const rd = b ? Atomics.load(b, W_BUF_RD) : 0;
    const wr = b ? Atomics.load(b, W_BUF_WR) : 0;
    if (b === null || addr > 0xfffff || wr - rd >= IOREQ_BUFFER_SLOT_NUM - qw) {
      this.sync(this.vcpu, type, 0, lo32(addr), hi32(addr), lo, size === 8 ? hi : 0, 1, size);
      return 'sync';
    }
    const code = size === 1 ? 0 : size === 2 ? 1 : size === 4 ? 2 : 3;
    const w0 = (type & 0xff) | (code << BUF_SIZE_SHIFT) | (addr << BUF_ADDR_SHIFT);
    this.putBufSlot(wr, w0 | 0, lo);
    if (qw) this.putBufSlot(wr + 1, w0 | 0, hi);
    // Xen: wmb(), then publish both slots with one write_pointer update.
    Atomics.store(b, W_BUF_WR, wr + qw + 1);
    this.canonicalise();
    this.channel.raise(this.channel.bufPort);
    if (o?.deliver ?? true) this.channel.deliver();
    return 'buffered';
  }

  /** ATOMIC mode: Xen subtracts n*511 from both pointers once read_pointer passed 511. */
  canonicalise(): void {
    const b = this.needBuf();
    const rd = Atomics.load(b, W_BUF_RD);
    if (rd < IOREQ_BUFFER_SLOT_NUM) return;
    const n = Math.floor(rd / IOREQ_BUFFER_SLOT_NUM) * IOREQ_BUFFER_SLOT_NUM;
    Atomics.store(b, W_BUF_RD, rd - n);
    Atomics.store(b, W_BUF_WR, Atomics.load(b, W_BUF_WR) - n);
  }

  private putBufSlot(ptr: number, w0: number, data: number): void {
    const b = this.needBuf();
    const w = BUF_OFF_SLOTS / 4 + (ptr % IOREQ_BUFFER_SLOT_NUM) * (BUF_SLOT_SIZE / 4);
    Atomics.store(b, w, w0);
    Atomics.store(b, w + 1, data);
  }

  private needBuf(): Int32Array {
    if (this.b32 === null) throw new Error('this SimHost has no buffered ring');
    return this.b32;
  }

  // ---- low level: post / deliver / complete -------------------------------------------

  /** Run `fn` with the driver on vCPU n, then switch back. */
  withVcpu<T>(n: number, fn: () => T): T {
    const prev = this.vcpu;
    this.vcpu = n;
    try {
      return fn();
    } finally {
      this.vcpu = prev;
    }
  }

  /**
   * Xen's side of a synchronous request up to the event: the slot must be
   * NONE; fields are written, then state READY, then the vCPU's port is
   * raised. Nothing runs until deliver().
   */
  post(vcpu: number, type: number, flags: number, addrLo: number, addrHi: number, dataLo: number, dataHi: number, count: number, size: number): void {
    // The driver runs on the DM's own thread, so plain typed-array accesses in
    // program order are exactly what the DM would observe from Xen; only the
    // DM side (src/ioreq) needs Atomics for the real shared page.
    const ch = this.channel;
    if (!(vcpu >= 0 && vcpu < ch.vcpus)) throw new RangeError(`no vCPU ${vcpu}`);
    const s8 = this.s8;
    const s32 = this.s32;
    const base = vcpu * IOREQ_SIZE;
    const fb = base + IOREQ_OFF_FLAGS;
    const state = s8[fb] & IOREQ_STATE_MASK;
    if (state !== STATE_IOREQ_NONE) throw new DmProtocolError(`vCPU ${vcpu}: slot in state ${state}, Xen needs NONE to send`);
    const w = base >> 2;
    if (s32[w + W_VP_EPORT] !== simRemotePort(vcpu)) {
      throw new DmProtocolError(`vCPU ${vcpu}: vp_eport changed (Xen: "device model set bad IO state/event channel")`);
    }
    // Fields first, with state NONE (Xen copies the request with state NONE) ...
    s32[w + W_ADDR] = addrLo;
    s32[w + W_ADDR + 1] = addrHi;
    s32[w + W_DATA] = dataLo;
    s32[w + W_DATA + 1] = dataHi;
    s32[w + W_COUNT] = count;
    s32[w + W_SIZE] = size;
    s8[base + IOREQ_OFF_TYPE] = type;
    const upper = flags & ~IOREQ_STATE_MASK & 0xff;
    s8[fb] = upper | STATE_IOREQ_NONE;
    this.posted[vcpu] = 1;
    this.postedFlags[vcpu] = upper;
    ch.answered[vcpu] = 0;
    // ... then READY, then the event.
    s8[fb] = upper | STATE_IOREQ_READY;
    ch.raise(ch.vcpuPorts[vcpu]);
  }

  /** Run the DM's event callback (what the Node loop does when the evtchn fd is readable). */
  deliver(): void {
    this.channel.deliver();
  }

  /** Xen's side after the event: check the answer, take data, reset the slot to NONE. Returns data. */
  complete(vcpu: number): bigint {
    this.finish(vcpu);
    return this.res64();
  }

  /** Raise a vCPU's port without posting anything (spurious event). */
  raiseVcpu(vcpu: number): void {
    this.channel.raise(this.channel.vcpuPorts[vcpu]);
  }

  private sync(vcpu: number, type: number, flags: number, addrLo: number, addrHi: number, dataLo: number, dataHi: number, count: number, size: number): void {
    this.post(vcpu, type, flags, addrLo, addrHi, dataLo, dataHi, count, size);
    this.channel.deliver();
    this.finish(vcpu);
  }

  private finish(vcpu: number): void {
    const ch = this.channel;
    if (this.posted[vcpu] === 0) throw new Error(`vCPU ${vcpu}: nothing posted`);
    const s8 = this.s8;
    const s32 = this.s32;
    const base = vcpu * IOREQ_SIZE;
    const w = base >> 2;
    const fb = base + IOREQ_OFF_FLAGS;
    const byte = s8[fb];
    const state = byte & IOREQ_STATE_MASK;
    if (ch.violations.length > 0) throw new DmProtocolError(`ioreq protocol violation: ${ch.violations.join('; ')}`);
    if (state !== STATE_IORESP_READY) {
      const why = ch.watching ? '' : ' (nobody watches the channel: IoreqServer.start() not called?)';
      throw new DmProtocolError(`vCPU ${vcpu}: slot state ${state} after the event, expected IORESP_READY (${STATE_IORESP_READY}); the vCPU would hang${why}`);
    }
    if (ch.answered[vcpu] === 0) throw new DmProtocolError(`vCPU ${vcpu}: IORESP_READY but the DM never notified port ${ch.vcpuPorts[vcpu]}`);
    if (!ch.slotUnchangedSinceNotify(vcpu)) throw new DmProtocolError(`vCPU ${vcpu}: slot modified after IORESP_READY + notify`);
    if ((byte & ~IOREQ_STATE_MASK) !== this.postedFlags[vcpu]) {
      throw new DmProtocolError(`vCPU ${vcpu}: byte 30 upper bits changed from 0x${this.postedFlags[vcpu].toString(16)} to 0x${(byte & 0xf0).toString(16)}`);
    }
    if (s32[w + W_VP_EPORT] !== simRemotePort(vcpu)) throw new DmProtocolError(`vCPU ${vcpu}: vp_eport overwritten`);
    this.resLo = s32[w + W_DATA];
    this.resHi = s32[w + W_DATA + 1];
    // Xen resets the state itself once it has taken data (the bitfield write keeps the other bits).
    s8[fb] = (byte & ~IOREQ_STATE_MASK) | STATE_IOREQ_NONE;
    this.posted[vcpu] = 0;
  }

  private res64(): bigint {
    return (BigInt(this.resHi >>> 0) << 32n) | BigInt(this.resLo >>> 0);
  }

  /** Let the event loop run (async device completions) until pred() holds; bounded in ticks, never in time. */
  waitFor(pred: () => boolean, opts?: WaitOptions): Promise<void> {
    return waitFor(pred, opts);
  }
}

/** The simulated host tests and the demo build on (src/core/host.ts's Host, in process). */
export function createSimHost(opts: SimHostOptions): SimHost {
  return new SimHost(opts);
}

/** A Board wired to a SimHost (memory, interrupts, power, routing). */
/** The sim's VirtualClock (throws for a sim made with clock: 'real'): tests advance time with it. */
export function simClock(sim: SimHost): VirtualClock {
  if (!(sim.clock instanceof VirtualClock)) throw new Error('this SimHost runs on the real clock');
  return sim.clock;
}

export function simBoard(sim: SimHost): Board {
  return new Board(sim.memory, sim.interrupts, sim.power, sim.routing, sim.clock);
}
