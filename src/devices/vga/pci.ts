/**
 * The standard VGA PCI function QEMU calls `-device VGA` (1234:1111, class
 * 0300) around the VGA core (vga.ts):
 *   BAR0  prefetchable memory, the whole VRAM (the linear framebuffer)
 *   BAR2  4 KiB MMIO: EDID at 0x000, VGA ports 0x3C0-0x3DF at 0x400,
 *         Bochs DISPI at 0x500 (register i at 0x500 + 2i), QEMU extended
 *         registers at 0x600 (revision 2 says they are there)
 *   ROM   the VGA BIOS (Debian's vgabios-stdvga.bin), which SeaBIOS copies
 *         to 0xC0000 and runs
 * plus the fixed legacy decode: ports 0x3B0-0x3DF, 0x1CE-0x1D0 and the
 * 0xA0000-0xBFFFF window, claimed whatever the command register says
 * (legacy VGA decode is not gated by PCI command bits; QEMU does the same).
 * Layout facts: docs/vga.md.
 */
import type { Board } from '../../core/board.ts';
import type { Region } from '../../core/bus.ts';
import type { Device, StateObject } from '../../core/device.ts';
import type { AccessSize, IoHandler } from '../../core/io.ts';
import { logger, RateLimited, type Logger } from '../../core/log.ts';
import { RO, RegisterTable } from '../../core/regs.ts';
import { StateError, StateReader } from '../../core/state.ts';
import { ROM_SLOT, type PciFunction } from '../../pci/bus.ts';
import { PciConfig, readBits } from '../../pci/config.ts';
import { QEMU_SUBSYSTEM_ID, QEMU_SUBSYSTEM_VENDOR } from '../../pci/ids.ts';
import type { VramBacking, VramProvider } from '../../core/vram.ts';
import { buildEdid } from './edid.ts';
import * as V from './regs.ts';
import { VgaCore, vramBytes, VRAM_PAGE_SHIFT } from './vga.ts';

export const VENDOR_QEMU = 0x1234;
export const DEVICE_QEMU_VGA = 0x1111;
export const CLASS_DISPLAY_VGA = 0x0300;
/** Revision 2: the QEMU extended registers at BAR2 + 0x600 exist (QEMU vga-pci.c). */
export const VGA_REVISION = 2;
export const VGA_BAR_VRAM = 0;
export const VGA_BAR_MMIO = 2;

export interface VgaOptions {
  /** `-device VGA,vgamem_mb=N` (default 16; clamped to 1..512 and rounded up to a power of two). */
  vgamemMb?: number | null;
  /** The VGA BIOS for the ROM BAR; null/absent leaves the function without a ROM. */
  rom?: Uint8Array | null;
  /**
   * VRAM as guest pages (core/vram.ts): BAR0 is then the pages themselves,
   * moved under the BAR, and guest framebuffer writes never reach us.
   * Absent: VRAM is our own memory and BAR0 accesses come as ioreqs.
   */
  vram?: VramProvider | null;
  /** The guest's memory was restored from an image (VRAM pages included). */
  restoring?: boolean;
  log?: Logger;
}

const MAX_ROM = 1 << 20;
/** A VRAM page of zeros: pages equal to it are not saved. */
const ZERO_PAGE = Buffer.alloc(1 << VRAM_PAGE_SHIFT);

function romSizeFor(len: number): number {
  let s = 2048;
  while (s < len) s *= 2;
  return s;
}

export class VgaPci implements PciFunction, Device {
  readonly id = 'vga';
  readonly stateVersion = 1;
  readonly name = 'vga';
  readonly core: VgaCore;
  readonly config: PciConfig;
  readonly edid = buildEdid();
  private readonly rom: Uint8Array | null;
  private readonly mmioRegs: Uint32Array;
  private readonly warn: RateLimited;
  private legacy: Region[] = [];
  private readonly lfb: IoHandler;
  /** VRAM as guest pages, or null (our own memory). */
  readonly backing: VramBacking | null;
  private readonly mmio: IoHandler;
  private readonly romHandler: IoHandler | null;

  constructor(opts: VgaOptions = {}) {
    const size = vramBytes(opts.vgamemMb);
    let backing: VramBacking | null = null;
    if (opts.vram) {
      try {
        backing = opts.vram.allocateVram(size, opts.restoring === true);
      } catch (e) {
        // The guest still gets a display: VRAM in our memory, BAR0 through ioreqs.
        (opts.log ?? logger('vga')).error({ err: String(e) }, 'VRAM as guest pages failed: keeping VRAM in the device model');
      }
    }
    this.backing = backing;
    this.core = new VgaCore(this.backing ? this.backing.bytes : new Uint8Array(size));
    if (this.backing) {
      const b = this.backing;
      const core = this.core;
      b.onRemap = (bytes) => core.setVram(bytes);
      core.syncDirty = () => {
        const n = b.collectDirty(core.dirty);
        if (n < 0) core.dirty.fill(1);
        if (n !== 0) core.dirtyAny = true; // the renderer is asking: no need to wake it
      };
    }
    if (opts.rom && opts.rom.length > MAX_ROM) throw new RangeError(`VGA BIOS of ${opts.rom.length} bytes is larger than ${MAX_ROM}`);
    this.rom = opts.rom && opts.rom.length ? opts.rom : null;
    this.warn = new RateLimited(opts.log ?? logger('vga'));
    this.config = new PciConfig({
      vendor: VENDOR_QEMU,
      device: DEVICE_QEMU_VGA,
      revision: VGA_REVISION,
      classCode: CLASS_DISPLAY_VGA,
      subsystemVendor: QEMU_SUBSYSTEM_VENDOR,
      subsystem: QEMU_SUBSYSTEM_ID,
      bars: [
        { index: VGA_BAR_VRAM, kind: 'mem', size, prefetchable: true },
        { index: VGA_BAR_MMIO, kind: 'mem', size: V.MMIO_SIZE },
      ],
      romSize: this.rom ? romSizeFor(this.rom.length) : undefined,
    });
    this.mmioRegs = MMIO_TABLE.storage();
    const core = this.core;
    this.lfb = {
      // The bus hands us offsets inside BAR0 (= inside VRAM) with the access inside it.
      read: (off, s) => {
        const vram = core.vram;
        if (s === 1) return vram[off];
        if (s === 2) return vram[off] | (vram[off + 1] << 8);
        return (vram[off] | (vram[off + 1] << 8) | (vram[off + 2] << 16) | (vram[off + 3] << 24)) >>> 0;
      },
      write: (off, s, v) => {
        const vram = core.vram;
        vram[off] = v;
        if (s >= 2) vram[off + 1] = v >>> 8;
        if (s === 4) {
          vram[off + 2] = v >>> 16;
          vram[off + 3] = v >>> 24;
        }
        core.touch(off >>> VRAM_PAGE_SHIFT);
        core.touch((off + s - 1) >>> VRAM_PAGE_SHIFT);
        if ((off & 3) <= 2 && ((off + s - 1) & 3) >= 2) core.fontGen++; // a byte of plane 2 (text-mode fonts)
      },
    };
    this.mmio = {
      read: (off, s) => this.mmioRead(off, s),
      write: (off, s, v) => this.mmioWrite(off, s, v),
    };
    const rom = this.rom;
    this.romHandler = rom
      ? {
          read: (off, s) => {
            let v = 0;
            for (let i = 0; i < s; i++) v |= (off + i < rom.length ? rom[off + i] : 0) << (8 * i);
            return v >>> 0;
          },
          write: () => {},
        }
      : null;
  }

  /** Claim the fixed legacy decode on the board (the machine calls this once). */
  installLegacy(board: Board): void {
    if (this.legacy.length) return;
    this.legacy = [
      board.pio.add('vga', V.VGA_PORT_BASE, V.VGA_PORT_LEN, this.core.ports),
      board.pio.add('vga-dispi', V.DISPI_PORT_BASE, V.DISPI_PORT_LEN, this.core.dispiPorts),
      board.mmio.add('vga-window', V.VGA_WINDOW_BASE, V.VGA_WINDOW_LEN, this.core.window),
    ];
  }

  barHandler(i: number): IoHandler | null {
    if (i === VGA_BAR_VRAM) return this.backing ? null : this.lfb; // guest pages: no ioreqs
    if (i === VGA_BAR_MMIO) return this.mmio;
    if (i === ROM_SLOT) return this.romHandler;
    return null;
  }

  private mmioRead(off: number, size: AccessSize): number {
    if (size === 4 && off >= V.MMIO_DISPI && off < V.MMIO_DISPI + V.MMIO_DISPI_LEN) {
      // DISPI registers are 16 bits: a dword is two of them (QEMU's 2-byte implementation size).
      return (MMIO_TABLE.read(this, this.mmioRegs, off, 2) | (MMIO_TABLE.read(this, this.mmioRegs, off + 2, 2) << 16)) >>> 0;
    }
    return MMIO_TABLE.read(this, this.mmioRegs, off, size);
  }

  private mmioWrite(off: number, size: AccessSize, v: number): void {
    if (size === 4 && off >= V.MMIO_DISPI && off < V.MMIO_DISPI + V.MMIO_DISPI_LEN) {
      MMIO_TABLE.write(this, this.mmioRegs, off, 2, v & 0xffff);
      MMIO_TABLE.write(this, this.mmioRegs, off + 2, 2, v >>> 16);
      return;
    }
    if (size === 1 && off >= V.MMIO_DISPI && off < V.MMIO_DISPI + V.MMIO_DISPI_LEN) {
      this.warn.warn({ off }, 'VGA: byte write to a 16-bit DISPI register ignored');
      return;
    }
    MMIO_TABLE.write(this, this.mmioRegs, off, size, v);
  }

  /** The bus reports where BAR0 decodes: guest-page VRAM moves there. */
  barMoved(i: number, base: number): void {
    if (i === VGA_BAR_VRAM && this.backing) this.backing.place(base);
  }

  /** DISPI through MMIO selects the register by address: the index port then names it too (as in QEMU). */
  dispiMmioRead(i: number): number {
    this.core.vbeIndex = i;
    return this.core.readDispiData();
  }

  dispiMmioWrite(i: number, v: number): void {
    this.core.vbeIndex = i;
    this.core.writeDispiData(v);
  }

  qextWrite(v: number): void {
    if (v === V.QEXT_LITTLE_ENDIAN) this.core.bigEndianFb = false;
    else if (v === V.QEXT_BIG_ENDIAN) this.core.bigEndianFb = true;
  }

  // ---- Device contract --------------------------------------------------

  /**
   * Registers, DAC, latches, DISPI, config space, and VRAM as the list of
   * its non-zero 4 KiB pages when VRAM is our own memory (a zero page costs
   * nothing). VRAM in guest pages is saved with the guest's memory; where
   * it sits follows from BAR0 in `config` (PciBus.refresh reports it).
   */
  snapshot(): StateObject {
    const c = this.core;
    const pages: number[] = [];
    const chunks: Uint8Array[] = [];
    const page = 1 << VRAM_PAGE_SHIFT;
    // Guest-page VRAM travels with the guest's memory (Xen saves it); only our own memory is ours to save.
    for (let p = 0; p < (this.backing ? 0 : c.vramSize / page); p++) {
      const s = c.vram.subarray(p * page, (p + 1) * page);
      // memcmp against a zero page: a callback per byte made a 16 MiB save cost 100 ms.
      if (!ZERO_PAGE.equals(s)) {
        pages.push(p);
        chunks.push(s);
      }
    }
    const data = new Uint8Array(pages.length * page);
    chunks.forEach((s, i) => data.set(s, i * page));
    return {
      config: this.config.snapshot(),
      sr: new Uint8Array(c.sr),
      srVbe: new Uint8Array(c.srVbe),
      gr: new Uint8Array(c.gr),
      ar: new Uint8Array(c.ar),
      cr: new Uint8Array(c.cr),
      srIndex: c.srIndex,
      grIndex: c.grIndex,
      arIndex: c.arIndex,
      arFlipFlop: c.arFlipFlop,
      crIndex: c.crIndex,
      msr: c.msr,
      fcr: c.fcr,
      st00: c.st00,
      st01: c.st01,
      dacState: c.dacState,
      dacSubIndex: c.dacSubIndex,
      dacReadIndex: c.dacReadIndex,
      dacWriteIndex: c.dacWriteIndex,
      dacCache: new Uint8Array(c.dacCache),
      dac8bit: c.dac8bit,
      palette: new Uint8Array(c.palette),
      latch: c.latch,
      vbeIndex: c.vbeIndex,
      vbeRegs: Array.from(c.vbeRegs),
      bankOffset: c.bankOffset,
      vbeLineOffset: c.vbeLineOffset,
      vbeStartAddr: c.vbeStartAddr,
      bigEndianFb: c.bigEndianFb,
      vramSize: c.vramSize,
      vramInGuest: this.backing !== null,
      vramPages: pages,
      vramData: data,
    };
  }

  restore(state: StateObject): void {
    const r = new StateReader(state, this.id);
    const c = this.core;
    const config = this.config.readChecked(r);
    const masked = (key: string, len: number, masks: readonly number[]): Uint8Array => {
      const b = r.bytes(key, len);
      b.forEach((v, i) => {
        if (v & ~masks[i]) throw new StateError(`${this.id}.${key}[${i}]: 0x${v.toString(16)} has bits outside 0x${masks[i].toString(16)}`);
      });
      return b;
    };
    const sr = masked('sr', 8, V.SR_MASK);
    const srVbe = r.bytes('srVbe', 8);
    const gr = masked('gr', 16, V.GR_MASK);
    const ar = masked('ar', V.AR_COUNT, V.AR_MASK);
    const cr = r.bytes('cr', 256);
    const s = {
      srIndex: r.int('srIndex', 0, 7),
      grIndex: r.int('grIndex', 0, 15),
      arIndex: r.int('arIndex', 0, V.AR_INDEX_MASK),
      arFlipFlop: r.int('arFlipFlop', 0, 1),
      crIndex: r.u('crIndex', 8),
      msr: readBits(r, 'msr', 0xef),
      fcr: readBits(r, 'fcr', 0x10),
      st00: r.u('st00', 8),
      st01: r.u('st01', 8),
      dacState: r.int('dacState', 0, 3),
      dacSubIndex: r.int('dacSubIndex', 0, 2),
      dacReadIndex: r.u('dacReadIndex', 8),
      dacWriteIndex: r.u('dacWriteIndex', 8),
      latch: r.u('latch', 32),
      vbeIndex: r.u('vbeIndex', 16),
      bigEndianFb: r.bool('bigEndianFb'),
      dac8bit: r.bool('dac8bit'),
    };
    if (s.dacState !== 0 && s.dacState !== 3) throw new StateError(`${this.id}.dacState: ${s.dacState} is neither 0 (write) nor 3 (read)`);
    const dacCache = r.bytes('dacCache', 3);
    const palette = r.bytes('palette', 768);
    const vbeRegs = r.ints('vbeRegs', V.DISPI_NB, 0, 0xffff);
    const vramSize = r.int('vramSize', c.vramSize, c.vramSize);
    const bank = vbeRegs[V.DISPI_BANK];
    if (bank > c.vbeBankMask) throw new StateError(`${this.id}.vbeRegs[${V.DISPI_BANK}]: bank ${bank} is past VRAM`);
    const bankOffset = r.int('bankOffset', 0, vramSize);
    if (bankOffset !== 0 && bankOffset !== bank << 16) throw new StateError(`${this.id}.bankOffset: ${bankOffset} is not bank ${bank}`);
    const vbeLineOffset = r.int('vbeLineOffset', 0, V.DISPI_MAX_XRES * 4);
    const vbeStartAddr = r.int('vbeStartAddr', 0, vramSize / 4);
    if ((vbeRegs[V.DISPI_ENABLE] & V.DISPI_ENABLED) !== 0) {
      // The geometry vbeFixupRegs left: the visible screen inside VRAM (CVE-2014-3615).
      const yres = vbeRegs[V.DISPI_YRES];
      if (vbeLineOffset === 0 || vbeStartAddr * 4 + yres * vbeLineOffset > vramSize || vbeRegs[V.DISPI_XRES] > V.DISPI_MAX_XRES) {
        throw new StateError(`${this.id}.vbeRegs: VBE geometry ${vbeRegs[V.DISPI_XRES]}x${yres}, line ${vbeLineOffset}, start ${vbeStartAddr * 4} does not fit ${vramSize} bytes of VRAM`);
      }
    }
    const page = 1 << VRAM_PAGE_SHIFT;
    const pages = r.ints('vramPages', -1, 0, vramSize / page - 1, vramSize / page);
    for (let i = 1; i < pages.length; i++) {
      if (pages[i] <= pages[i - 1]) throw new StateError(`${this.id}.vramPages: not ascending at ${i}`);
    }
    const data = r.bytes('vramData', pages.length * page);
    const vramInGuest = r.bool('vramInGuest');
    if (vramInGuest !== (this.backing !== null)) {
      throw new StateError(`${this.id}.vramInGuest: saved with VRAM ${vramInGuest ? 'in guest memory' : 'in the device state'}, this VGA has it ${this.backing ? 'in guest memory' : 'in its own memory'}`);
    }
    // Everything checked: change the device.
    this.config.restore(config);
    c.sr.set(sr);
    c.srVbe.set(srVbe);
    c.gr.set(gr);
    c.ar.set(ar);
    c.cr.set(cr);
    c.srIndex = s.srIndex;
    c.grIndex = s.grIndex;
    c.arIndex = s.arIndex;
    c.arFlipFlop = s.arFlipFlop;
    c.crIndex = s.crIndex;
    c.msr = s.msr;
    c.fcr = s.fcr;
    c.st00 = s.st00;
    c.st01 = s.st01;
    c.dacState = s.dacState;
    c.dacSubIndex = s.dacSubIndex;
    c.dacReadIndex = s.dacReadIndex;
    c.dacWriteIndex = s.dacWriteIndex;
    c.dacCache.set(dacCache);
    c.dac8bit = s.dac8bit;
    c.palette.set(palette);
    c.latch = s.latch;
    c.vbeIndex = s.vbeIndex;
    c.vbeRegs.set(vbeRegs);
    c.bankOffset = bankOffset;
    c.vbeLineOffset = vbeLineOffset;
    c.vbeStartAddr = vbeStartAddr;
    c.bigEndianFb = s.bigEndianFb;
    if (!this.backing) {
      c.vram.fill(0);
      pages.forEach((p, i) => c.vram.set(data.subarray(i * page, (i + 1) * page), p * page));
    }
    c.touchAll();
    c.regGen++;
  }
}

/**
 * BAR2 as a table: EDID bytes (read-only), the VGA ports 0x3C0-0x3DF as
 * bytes, the 16-bit DISPI registers by address, and the two QEMU extended
 * registers. Offsets nothing claims read 0 (QEMU's unassigned MMIO).
 */
const MMIO_TABLE = new RegisterTable<VgaPci>('vga-mmio', V.MMIO_SIZE, [
  { name: 'EDID', off: V.MMIO_EDID, width: 1, count: V.MMIO_EDID_LEN, flags: RO, read: (d, i) => (i < d.edid.length ? d.edid[i] : 0) },
  {
    name: 'VGA_PORTS',
    off: V.MMIO_VGA_PORTS,
    width: 1,
    count: V.MMIO_VGA_PORTS_LEN,
    read: (d, i) => d.core.mmioPortRead(V.PORT_ATT_W + i),
    write: (d, v, _o, i) => d.core.mmioPortWrite(V.PORT_ATT_W + i, v),
  },
  { name: 'DISPI', off: V.MMIO_DISPI, width: 2, count: V.MMIO_DISPI_LEN / 2, read: (d, i) => d.dispiMmioRead(i), write: (d, v, _o, i) => d.dispiMmioWrite(i, v) },
  { name: 'QEXT_SIZE', off: V.MMIO_QEXT + V.QEXT_REG_SIZE, width: 4, flags: RO, read: () => V.MMIO_QEXT_LEN },
  {
    name: 'QEXT_BYTEORDER',
    off: V.MMIO_QEXT + V.QEXT_REG_BYTEORDER,
    width: 4,
    read: (d) => (d.core.bigEndianFb ? V.QEXT_BIG_ENDIAN : V.QEXT_LITTLE_ENDIAN),
    write: (d, v) => d.qextWrite(v),
  },
]);
