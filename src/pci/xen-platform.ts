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
import { sizeMask, type AccessSize, type IoHandler } from '../core/io.ts';
import { logger, RateLimited, type Logger } from '../core/log.ts';
import { PciConfig } from './config.ts';
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

export interface XenPlatformState {
  flags: number;
  productNumber: number;
  buildNumber: number;
  unplugged: number;
}

/**
 * The fixed-port protocol as a table: (offset from 0x10, access size) ->
 * what a read returns / what a write does. Anything else reads all ones and
 * is ignored, as in QEMU.
 */
interface FixedPort {
  readonly off: number;
  readonly size: AccessSize;
  readonly what: string;
  readonly read?: (p: XenPlatform) => number;
  readonly write?: (p: XenPlatform, v: number) => void;
}

const FIXED_PORTS: readonly FixedPort[] = [
  { off: 0, size: 2, what: 'magic (r) / unplug mask (w)', read: () => XEN_PLATFORM_MAGIC, write: (p, v) => p.unplug(v) },
  { off: 0, size: 4, what: 'PV driver build number (w)', write: (p, v) => void (p.buildNumber = v) },
  { off: 0, size: 1, what: 'platform flags (r/w)', read: (p) => p.flags, write: (p, v) => p.setFlags(v) },
  { off: 2, size: 1, what: 'protocol version (r) / log byte (w)', read: () => XEN_PLATFORM_PROTOCOL, write: (p, v) => p.logByte(v) },
  { off: 2, size: 2, what: 'PV product number (w)', write: (p, v) => p.setProduct(v) },
];

export class XenPlatform implements PciFunction {
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
  private logBuf = new Uint8Array(LOG_LINE_MAX);
  private logLen = 0;
  private logWindow = 0;
  private logLines = 0;
  private fixedRegion: Region | null = null;
  private readonly warn: RateLimited;

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
    read: (off, size) => this.fixedRead(off, size),
    write: (off, size, v) => this.fixedWrite(off, size, v),
  };

  private fixedRead(off: number, size: AccessSize): number {
    const r = FIXED_PORTS.find((p) => p.off === off && p.size === size && p.read);
    return r ? r.read!(this) : sizeMask(size);
  }

  private fixedWrite(off: number, size: AccessSize, v: number): void {
    FIXED_PORTS.find((p) => p.off === off && p.size === size && p.write)?.write!(this, v);
  }

  /** Fixed-port action (FIXED_PORTS). */
  setProduct(v: number): void {
    if (v !== this.productNumber) this.log.info({ product: v }, 'PV driver product registered'); // once, not per write
    this.productNumber = v;
  }

  /** Fixed-port action (FIXED_PORTS). */
  unplug(mask: number): void {
    if ((this.unplugged | mask) !== this.unplugged) this.log.info({ mask }, 'guest unplugs emulated devices'); // new bits only
    this.unplugged |= mask;
    this.opts.onUnplug?.(mask);
  }

  /**
   * Fixed-port action (FIXED_PORTS). ROM lock would make 0xC0000-0xFFFFF
   * read-only (xc_hvm_set_mem_type in QEMU); the Host interface has no call
   * for it, so only the flag is kept.
   */
  setFlags(v: number): void {
    this.flags = v & PFFLAG_ROM_LOCK;
    if (this.flags) this.warn.warn({ flags: v }, 'ROM lock requested: not supported, option ROM area stays writable');
  }

  /** Fixed-port action (FIXED_PORTS). */
  logByte(b: number): void {
    if (b === 0x0a || this.logLen === LOG_LINE_MAX) {
      const now = Date.now();
      if (now - this.logWindow > LOG_WINDOW_MS) {
        this.logWindow = now;
        this.logLines = 0;
      }
      if (this.logLines++ < LOG_LINES_PER_WINDOW) {
        this.log.info({ guest: Buffer.from(this.logBuf.subarray(0, this.logLen)).toString('latin1') }, 'guest PV driver log');
      }
      this.logLen = 0;
      if (b === 0x0a) return;
    }
    this.logBuf[this.logLen++] = b;
  }

  /** Byte registers (QEMU splits wider accesses into bytes): a word at 0 reads flags | 0xff00. */
  readonly barIo: IoHandler = {
    read: (off, size) => {
      let v = 0;
      for (let i = size - 1; i >= 0; i--) v = v * 256 + (off + i === BAR_IO_FLAGS ? this.flags : 0xff);
      return v;
    },
    write: (off, size, v) => {
      for (let i = 0; i < size; i++) {
        const b = Math.floor(v / 2 ** (8 * i)) & 0xff;
        if (off + i === BAR_IO_FLAGS) this.setFlags(b);
        else if (off + i === BAR_IO_LOG) this.logByte(b);
      }
    },
  };

  /** The MMIO BAR only reserves guest-physical space; accesses that reach us read 0. */
  readonly barMmio: IoHandler = {
    read: () => 0,
    write: () => {},
  };

  save(): XenPlatformState {
    return { flags: this.flags, productNumber: this.productNumber, buildNumber: this.buildNumber, unplugged: this.unplugged };
  }

  /** The unplug already happened before the save: the machine restores its devices unplugged; no hook is called. */
  restore(s: XenPlatformState): void {
    this.flags = s.flags & PFFLAG_ROM_LOCK;
    this.productNumber = s.productNumber & 0xffff;
    this.buildNumber = s.buildNumber >>> 0;
    this.unplugged = s.unplugged & 0xffff;
  }

  /** Log bytes held for the current line (tests). */
  pendingLog(): string {
    return Buffer.from(this.logBuf.subarray(0, this.logLen)).toString('latin1');
  }
}
