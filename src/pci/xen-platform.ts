/**
 * 00:02.0 Xen platform device (5853:0001), the PCI function PV drivers bind
 * to, and its fixed I/O ports 0x10-0x1F through which they unplug the
 * emulated disks and NICs. Protocol: Xen docs/misc/hvm-emulated-unplug.pandoc,
 * QEMU hw/i386/xen/xen_platform.c, Linux arch/x86/xen/platform-pci-unplug.c.
 *
 * Fixed ports (offsets from 0x10):
 *   +0 word read   magic 0x49D2 (drivers refuse to start on anything else)
 *   +0 word write  unplug mask: bit0 IDE disks, bit1 NICs, bit2 aux IDE, bit3 NVMe
 *   +0 dword write driver build number
 *   +0 byte r/w    platform flags (bit0 ROM lock)
 *   +2 byte read   protocol version (1)
 *   +2 word write  product number (Linux writes 3)
 *   +2 byte write  log byte (line buffered)
 * Linux reads the magic and version, writes product and build number, reads
 * the magic again (a different value means "blacklisted"), then unplugs.
 */
import type { Board } from '../core/board.ts';
import type { Region } from '../core/bus.ts';
import type { Device, StateObject } from '../core/device.ts';
import type { IoHandler } from '../core/io.ts';
import { logger, RateLimited, takeGuestLogBudget, type Logger } from '../core/log.ts';
import { EXACT, RegisterTable } from '../core/regs.ts';
import { StateReader } from '../core/state.ts';
import { PciConfig, readBits } from './config.ts';
import type { PciFunction } from './bus.ts';
import { CLASS_OTHERS, DEVICE_XEN_PLATFORM, VENDOR_XEN } from './ids.ts';

export const XEN_PLATFORM_IOPORT = 0x10;
export const XEN_PLATFORM_IOPORT_LEN = 16;
export const XEN_PLATFORM_MAGIC = 0x49d2;
export const XEN_PLATFORM_PROTOCOL = 1;
export const UNPLUG_IDE_DISKS = 0x1;
export const UNPLUG_NICS = 0x2;
export const UNPLUG_AUX_IDE_DISKS = 0x4;
export const UNPLUG_NVME_DISKS = 0x8;
export const PFFLAG_ROM_LOCK = 0x1;

export const XEN_PLATFORM_BAR_IO = 0;
export const XEN_PLATFORM_BAR_IO_SIZE = 0x100;
export const XEN_PLATFORM_BAR_MMIO = 1;
/** Where PV drivers map the grant table and shared info. */
export const XEN_PLATFORM_BAR_MMIO_SIZE = 0x1000000;
/** The BAR0 I/O block: byte 0 platform flags, byte 8 log. */
const BAR_IO_FLAGS = 0;
const BAR_IO_LOG = 8;

const LOG_LINE_MAX = 4096;
const LOG_LINES_PER_WINDOW = 50;
const LOG_WINDOW_MS = 10_000;

export interface XenPlatformOptions {
  /**
   * The guest asked to unplug emulated devices (mask of UNPLUG_*): the machine
   * detaches them. Called on every unplug write: it must be idempotent.
   */
  onUnplug?: (mask: number) => void;
}

/**
 * The fixed-port protocol as a table: every entry answers only its exact
 * (offset from 0x10, access size), since the same offset means different
 * registers at different sizes. Anything else reads all ones and is ignored,
 * as in QEMU. The state lives in the device's fields; the table dispatches.
 */
const ALL_ONES = (): number => 0xffffffff;
const FIXED_TABLE = new RegisterTable<XenPlatform>(
  'xen-platform-fixed',
  XEN_PLATFORM_IOPORT_LEN,
  [
    { name: 'MAGIC_UNPLUG', off: 0, width: 2, flags: EXACT, read: () => XEN_PLATFORM_MAGIC, write: (p, v) => p.unplug(v) },
    { name: 'BUILD', off: 0, width: 4, flags: EXACT, read: ALL_ONES, write: (p, v) => void (p.buildNumber = v) },
    { name: 'FLAGS', off: 0, width: 1, flags: EXACT, read: (p) => p.flags, write: (p, v) => p.setFlags(v) },
    { name: 'VERSION_LOG', off: 2, width: 1, flags: EXACT, read: () => XEN_PLATFORM_PROTOCOL, write: (p, v) => p.logByte(v) },
    { name: 'PRODUCT', off: 2, width: 2, flags: EXACT, read: ALL_ONES, write: (p, v) => p.setProduct(v) },
  ],
  0xffffffff,
);

/** The BAR0 I/O block: byte registers (QEMU splits wider accesses into bytes), the rest reads all ones. */
const BAR_IO_TABLE = new RegisterTable<XenPlatform>(
  'xen-platform-bar0',
  XEN_PLATFORM_BAR_IO_SIZE,
  [
    { name: 'FLAGS', off: BAR_IO_FLAGS, width: 1, read: (p) => p.flags, write: (p, v) => p.setFlags(v) },
    { name: 'LOG', off: BAR_IO_LOG, width: 1, read: () => 0xff, write: (p, v) => p.logByte(v) },
  ],
  0xffffffff,
);

/**
 * Device 'pci.xen-platform'. Snapshot: `config` (256 bytes), `flags`,
 * `productNumber`, `buildNumber`, `unplugged` (OR of every unplug mask the
 * guest wrote: the machine replays it before restoring the other devices,
 * so the unplugged ones are not restored into) and `logLine` (bytes of the
 * PV driver log line not yet ended by a newline).
 */
export class XenPlatform implements PciFunction, Device {
  readonly id = 'pci.xen-platform';
  readonly stateVersion = 1;
  readonly name = 'xen-platform';
  readonly config = new PciConfig({
    vendor: VENDOR_XEN,
    device: DEVICE_XEN_PLATFORM,
    revision: 1,
    classCode: CLASS_OTHERS,
    subsystemVendor: VENDOR_XEN,
    subsystem: DEVICE_XEN_PLATFORM,
    pin: 1,
    bars: [
      { index: XEN_PLATFORM_BAR_IO, kind: 'io', size: XEN_PLATFORM_BAR_IO_SIZE },
      { index: XEN_PLATFORM_BAR_MMIO, kind: 'mem', size: XEN_PLATFORM_BAR_MMIO_SIZE, prefetchable: true },
    ],
  });

  flags = 0;
  productNumber = 0;
  buildNumber = 0;
  /** Every unplug mask the guest wrote, ORed (what has been unplugged so far). */
  unplugged = 0;
  private readonly logBuf = new Uint8Array(LOG_LINE_MAX);
  private logLen = 0;
  /** Rate limit of guest log lines: start of the current window (board.clock ms) and lines in it. */
  private logWindow = 0;
  private logLines = 0;
  private fixedRegion: Region | null = null;
  private readonly warn: RateLimited;
  /** Scratch storage for the tables (they dispatch to the fields above; nothing in it is state). */
  private readonly fixedRegs = FIXED_TABLE.storage();
  private readonly barRegs = BAR_IO_TABLE.storage();

  constructor(
    private readonly board: Board,
    private readonly opts: XenPlatformOptions = {},
    private readonly log: Logger = logger('xen-platform'),
  ) {
    this.warn = new RateLimited(log);
  }

  /** The fixed ports are claimed with the function, not through a BAR. */
  attach(): void {
    if (!this.fixedRegion) {
      this.fixedRegion = this.board.pio.add('xen-platform-fixed', XEN_PLATFORM_IOPORT, XEN_PLATFORM_IOPORT_LEN, this.fixedPorts);
    }
  }

  detach(): void {
    if (this.fixedRegion) this.board.pio.remove(this.fixedRegion);
    this.fixedRegion = null;
  }

  barHandler(i: number): IoHandler | null {
    if (i === XEN_PLATFORM_BAR_IO) return this.barIo;
    if (i === XEN_PLATFORM_BAR_MMIO) return this.barMmio;
    return null;
  }

  readonly fixedPorts: IoHandler = {
    read: (off, size) => FIXED_TABLE.read(this, this.fixedRegs, off, size),
    write: (off, size, v) => FIXED_TABLE.write(this, this.fixedRegs, off, size, v),
  };

  /** Fixed-port action (FIXED_TABLE). */
  setProduct(v: number): void {
    if (v !== this.productNumber) this.warn.info({ product: v }, 'PV driver product registered'); // on a change, rate-limited: a guest may alternate
    this.productNumber = v;
  }

  /** Fixed-port action (FIXED_TABLE). */
  unplug(mask: number): void {
    if ((this.unplugged | mask) !== this.unplugged) this.log.info({ mask }, 'guest unplugs emulated devices'); // new bits only
    this.unplugged |= mask;
    this.opts.onUnplug?.(mask);
  }

  /**
   * Fixed-port action (FIXED_TABLE). ROM lock would make 0xC0000-0xFFFFF
   * read-only (xc_hvm_set_mem_type in QEMU); the Host interface has no call
   * for it, so only the flag is kept.
   */
  setFlags(v: number): void {
    this.flags = v & PFFLAG_ROM_LOCK;
    if (this.flags) this.warn.warn({ flags: v }, 'ROM lock requested: not supported, option ROM area stays writable');
  }

  /** Fixed-port action (FIXED_TABLE). */
  logByte(b: number): void {
    if (b === 0x0a || this.logLen === LOG_LINE_MAX) {
      const now = this.board.clock.now();
      if (now - this.logWindow > LOG_WINDOW_MS) {
        this.logWindow = now;
        this.logLines = 0;
      }
      // Windowed on the board's clock (as save/restore replays it), and within every guest line's byte budget.
      if (this.logLines++ < LOG_LINES_PER_WINDOW && takeGuestLogBudget(this.logLen)) {
        this.log.info({ guest: Buffer.from(this.logBuf.subarray(0, this.logLen)).toString('latin1') }, 'guest PV driver log');
      }
      this.logLen = 0;
      if (b === 0x0a) return;
    }
    this.logBuf[this.logLen++] = b;
  }

  /** BAR0: a word read at 0 gives flags | 0xff00 (BAR_IO_TABLE). */
  readonly barIo: IoHandler = {
    read: (off, size) => BAR_IO_TABLE.read(this, this.barRegs, off, size),
    write: (off, size, v) => BAR_IO_TABLE.write(this, this.barRegs, off, size, v),
  };

  /** The MMIO BAR only reserves guest-physical space; accesses that reach us read 0. */
  readonly barMmio: IoHandler = {
    read: () => 0,
    write: () => {},
  };

  snapshot(): StateObject {
    return {
      config: this.config.snapshot(),
      flags: this.flags,
      productNumber: this.productNumber,
      buildNumber: this.buildNumber,
      unplugged: this.unplugged,
      logLine: this.logBuf.slice(0, this.logLen),
    };
  }

  /**
   * The unplug already happened before the save: the machine replays
   * `unplugged` first and restores its devices unplugged; no hook is called
   * here. The log rate-limit window starts afresh (it counts host time).
   */
  restore(state: StateObject): void {
    const r = new StateReader(state, this.id);
    const config = this.config.readChecked(r);
    const flags = readBits(r, 'flags', PFFLAG_ROM_LOCK);
    const productNumber = r.u('productNumber', 16);
    const buildNumber = r.u('buildNumber', 32);
    const unplugged = r.u('unplugged', 16);
    const logLine = r.bytes('logLine', LOG_LINE_MAX, false);
    this.config.restore(config);
    this.flags = flags;
    this.productNumber = productNumber;
    this.buildNumber = buildNumber;
    this.unplugged = unplugged;
    this.logBuf.set(logLine);
    this.logLen = logLine.length;
  }

  /** Log bytes held for the current line (tests). */
  pendingLog(): string {
    return Buffer.from(this.logBuf.subarray(0, this.logLen)).toString('latin1');
  }
}
