/**
 * The VGA core: register files (sequencer, graphics controller, attribute
 * controller, CRTC, DAC, misc), the planar memory behind the 0xA0000 window
 * and Bochs DISPI, over one VRAM buffer. The PCI function (pci.ts) puts the
 * handlers here on the board; the renderer (render.ts) reads the state.
 *
 * Behaviour follows the IBM VGA (IBM VGA/XGA TRM ch. 2, FreeVGA) as QEMU
 * 7.2's stdvga models it, because guests and SeaBIOS's vgabios were tested
 * against that; where QEMU departs from hardware we follow QEMU and say so
 * (docs/vga.md lists the facts).
 *
 * Everything the guest writes is checked before it becomes an address:
 * window offsets are masked to the window, the DISPI bank to VRAM, planar
 * addresses against VRAM (CVE-2016-3710), VBE geometry against VRAM
 * (CVE-2014-3615), and VGA register writes under VBE cannot undo the VBE
 * memory layout (CVE-2016-3712): the memory path reads the shadow `srVbe`.
 */
import type { AccessSize, IoHandler } from '../../core/io.ts';
import { EXACT, RegisterTable } from '../../core/regs.ts';
import * as V from './regs.ts';

/** Bytes per dirty-tracking page of VRAM (the renderer re-reads only dirty pages). */
export const VRAM_PAGE_SHIFT = 12;

/**
 * QEMU's vgamem_mb rule (hw/display/vga.c vga_common_init): clamp to
 * [1, 512] MiB, round up to a power of two. Returns bytes.
 */
export function vramBytes(vgamemMb: number | null | undefined): number {
  let mb = vgamemMb ?? 16;
  if (!(mb >= 1)) mb = 1;
  if (mb > 512) mb = 512;
  mb = 2 ** Math.ceil(Math.log2(mb));
  return mb * 1024 * 1024;
}

/** Plane-byte replication: bit i of the 4-bit mask selects plane byte i. */
const MASK16 = new Uint32Array(16);
for (let i = 0; i < 16; i++) {
  MASK16[i] = ((i & 1 ? 0xff : 0) | (i & 2 ? 0xff00 : 0) | (i & 4 ? 0xff0000 : 0) | (i & 8 ? 0xff000000 : 0)) >>> 0;
}

export class VgaCore {
  vram: Uint8Array;
  /** The same bytes as 32-bit words: one word is the four planes at a planar address. */
  private vram32: Uint32Array;
  /**
   * Pulls the pages the guest dirtied behind our back (VRAM mapped into the
   * guest: docs/vga.md §8) into `dirty`; the renderer calls it first.
   */
  syncDirty: (() => void) | null = null;
  readonly vramSize: number;
  /** One byte per VRAM page, set by every VRAM write (render.ts clears what it drew). */
  readonly dirty: Uint8Array;
  /**
   * Some byte of `dirty` is set. While it is false and no register changed
   * the renderer has nothing to look at: an idle refresh reads no VRAM and
   * walks no page list. Cleared with `dirty`.
   */
  dirtyAny = false;
  /**
   * Called by the first VRAM store after a picture was drawn (DisplayHub:
   * the viewers' refresh timers wait longer while the screen stays still,
   * and a store brings their next refresh forward). At most once per drawn
   * picture; later stores only set their page.
   */
  onFirstDirty: (() => void) | null = null;
  /** Bumped on every register write that can change the picture (the renderer compares it). */
  regGen = 0;
  /** Bumped on writes that may reach plane 2, where text mode keeps its fonts. */
  fontGen = 0;

  // Register files (index registers and their data).
  readonly sr = new Uint8Array(8);
  /** Sequencer as the memory path and renderer see it while VBE is on (QEMU's sr_vbe, see vbeUpdateVgaRegs). */
  readonly srVbe = new Uint8Array(8);
  readonly gr = new Uint8Array(16);
  readonly ar = new Uint8Array(V.AR_COUNT);
  readonly cr = new Uint8Array(256);
  srIndex = 0;
  grIndex = 0;
  arIndex = 0;
  arFlipFlop = 0;
  crIndex = 0;
  msr = 0;
  fcr = 0;
  st00 = 0;
  st01 = 0;
  // DAC (colorreg.htm).
  dacState = 0;
  dacSubIndex = 0;
  dacReadIndex = 0;
  dacWriteIndex = 0;
  readonly dacCache = new Uint8Array(3);
  dac8bit = false;
  readonly palette = new Uint8Array(768);
  /** The four plane bytes the last planar read loaded (graphreg.htm "latches"). */
  latch = 0;
  // Bochs DISPI.
  vbeIndex = 0;
  readonly vbeRegs = new Uint16Array(V.DISPI_NB);
  bankOffset = 0;
  /** Derived by vbeFixupRegs: bytes per scan line and the first displayed 32-bit word. */
  vbeLineOffset = 0;
  vbeStartAddr = 0;
  /** QEMU extended register: framebuffer byte order (we render little endian only). */
  bigEndianFb = false;

  /** Handlers the PCI function places: 0x3B0-0x3DF, 0x1CE-0x1D0, the 0xA0000 window. */
  readonly ports: IoHandler;
  readonly dispiPorts: IoHandler;
  readonly window: IoHandler;

  constructor(vram: Uint8Array) {
    if (vram.length < 0x40000 || vram.length % 0x10000 !== 0 || vram.byteOffset % 4 !== 0) {
      throw new RangeError(`VRAM of ${vram.length} bytes: want a multiple of 64 KiB, at least 256 KiB`);
    }
    this.vram = vram;
    this.vramSize = vram.length;
    this.vram32 = new Uint32Array(vram.buffer, vram.byteOffset, vram.length >>> 2);
    this.dirty = new Uint8Array(vram.length >>> VRAM_PAGE_SHIFT);
    this.ports = {
      read: (off, size) => PORT_TABLE.read(this, NO_STORAGE, off, size),
      write: (off, size, v) => PORT_TABLE.write(this, NO_STORAGE, off, size, v),
    };
    this.dispiPorts = {
      read: (off, size) => DISPI_TABLE.read(this, NO_STORAGE, off, size),
      write: (off, size, v) => DISPI_TABLE.write(this, NO_STORAGE, off, size, v),
    };
    this.window = {
      read: (off, size) => this.windowRead(off, size),
      write: (off, size, v) => this.windowWrite(off, size, v),
    };
    this.reset();
  }

  /** Another mapping of the same VRAM (a restored VRAM found under its BAR). */
  setVram(vram: Uint8Array): void {
    if (vram.length !== this.vramSize || vram.byteOffset % 4 !== 0) throw new RangeError('VRAM mapping of another size');
    this.vram = vram;
    this.vram32 = new Uint32Array(vram.buffer, vram.byteOffset, vram.length >>> 2);
    this.touchAll();
  }

  /** VRAM page `page` changed (every store into VRAM comes here). */
  touch(page: number): void {
    this.dirty[page] = 1;
    if (!this.dirtyAny) {
      this.dirtyAny = true;
      this.onFirstDirty?.();
    }
  }

  /** All of VRAM may have changed (a new mapping, a restore, the hypervisor could not say). */
  touchAll(): void {
    this.dirty.fill(1);
    if (!this.dirtyAny) {
      this.dirtyAny = true;
      this.onFirstDirty?.();
    }
  }

  /** Power-on state (QEMU vga_common_reset): every register 0, DISPI ID = 0xB0C5. */
  reset(): void {
    this.sr.fill(0);
    this.srVbe.fill(0);
    this.gr.fill(0);
    this.ar.fill(0);
    this.cr.fill(0);
    this.srIndex = this.grIndex = this.arIndex = this.arFlipFlop = this.crIndex = 0;
    this.msr = this.fcr = this.st00 = this.st01 = 0;
    this.dacState = this.dacSubIndex = this.dacReadIndex = this.dacWriteIndex = 0;
    this.dacCache.fill(0);
    this.dac8bit = false;
    this.palette.fill(0);
    this.latch = 0;
    this.vbeIndex = 0;
    this.vbeRegs.fill(0);
    this.vbeRegs[V.DISPI_ID] = V.DISPI_ID5;
    this.bankOffset = 0;
    this.vbeLineOffset = 0;
    this.vbeStartAddr = 0;
    this.bigEndianFb = false;
    this.regGen++;
  }

  get vbeEnabled(): boolean {
    return (this.vbeRegs[V.DISPI_ENABLE] & V.DISPI_ENABLED) !== 0;
  }

  /** Sequencer register as memory access and display see it (QEMU sr()). */
  seq(i: number): number {
    return this.vbeEnabled ? this.srVbe[i] : this.sr[i];
  }

  /** Bank mask for DISPI BANK: the bank selects a 64 KiB slice that must lie inside VRAM. */
  get vbeBankMask(): number {
    return (this.vramSize >>> 16) - 1;
  }

  // ---- Port registers --------------------------------------------------

  /** Mono/colour decode (extreg.htm I/OAS): the CRTC and IS1 ports of the other set float. */
  portInvalid(port: number): boolean {
    return this.msr & V.MIS_COLOR ? port >= 0x3b0 && port <= 0x3bf : port >= 0x3d0 && port <= 0x3df;
  }

  readAttrData(): number {
    const i = this.arIndex & 0x1f;
    return i < V.AR_COUNT ? this.ar[i] : 0;
  }

  writeAttr(v: number): void {
    if (this.arFlipFlop === 0) {
      this.arIndex = v & V.AR_INDEX_MASK;
    } else {
      const i = this.arIndex & 0x1f;
      if (i < V.AR_COUNT) this.ar[i] = v & V.AR_MASK[i];
      this.regGen++;
    }
    this.arFlipFlop ^= 1;
  }

  writeSeqData(v: number): void {
    this.sr[this.srIndex] = v & V.SR_MASK[this.srIndex];
    this.regGen++;
  }

  readDacData(): number {
    const v = this.palette[(this.dacReadIndex * 3 + this.dacSubIndex) % 768];
    if (++this.dacSubIndex === 3) {
      this.dacSubIndex = 0;
      this.dacReadIndex = (this.dacReadIndex + 1) & 0xff;
    }
    return v;
  }

  writeDacData(v: number): void {
    this.dacCache[this.dacSubIndex] = v;
    if (++this.dacSubIndex === 3) {
      this.palette.set(this.dacCache, this.dacWriteIndex * 3);
      this.dacSubIndex = 0;
      this.dacWriteIndex = (this.dacWriteIndex + 1) & 0xff;
      this.regGen++;
    }
  }

  writeGfxData(v: number): void {
    this.gr[this.grIndex] = v & V.GR_MASK[this.grIndex];
    this.vbeUpdateVgaRegs();
    this.regGen++;
  }

  writeCrtData(v: number): void {
    // CR11 bit 7 write-protects CR0-CR7, except CR7 bit 4 (line compare bit 8) (crtcreg.htm).
    if (this.cr[V.CR_V_SYNC_END] & V.CR11_LOCK_CR0_CR7 && this.crIndex <= V.CR_OVERFLOW) {
      if (this.crIndex === V.CR_OVERFLOW) {
        this.cr[V.CR_OVERFLOW] = (this.cr[V.CR_OVERFLOW] & ~0x10) | (v & 0x10);
        this.vbeUpdateVgaRegs();
        this.regGen++;
      }
      return;
    }
    this.cr[this.crIndex] = v;
    this.vbeUpdateVgaRegs();
    this.regGen++;
  }

  /**
   * A port reached through BAR2 (0x400 + port - 0x3C0). There every port of
   * 0x3C0-0x3DF goes to the register decoder, so ports with no register
   * read 0 (QEMU vga-pci.c), not the floating 0xff of an undecoded port.
   */
  mmioPortRead(port: number): number {
    if (this.portInvalid(port)) return 0xff;
    return PORT_DECODED[port - V.VGA_PORT_BASE] ? this.ports.read(port - V.VGA_PORT_BASE, 1) : 0;
  }

  mmioPortWrite(port: number, v: number): void {
    this.ports.write(port - V.VGA_PORT_BASE, 1, v);
  }

  /** Reading input status 1 resets the attribute flip-flop; the retrace bits toggle so polling loops end. */
  readIs1(): number {
    this.st01 ^= V.ST01_V_RETRACE | V.ST01_DISP_ENABLE;
    this.arFlipFlop = 0;
    return this.st01;
  }

  // ---- Bochs DISPI -----------------------------------------------------

  readDispiData(): number {
    const i = this.vbeIndex;
    if (i < V.DISPI_NB) {
      if (this.vbeRegs[V.DISPI_ENABLE] & V.DISPI_GETCAPS) {
        if (i === V.DISPI_XRES) return V.DISPI_MAX_XRES;
        if (i === V.DISPI_YRES) return V.DISPI_MAX_YRES;
        if (i === V.DISPI_BPP) return V.DISPI_MAX_BPP;
      }
      return this.vbeRegs[i];
    }
    if (i === V.DISPI_VIDEO_MEMORY_64K) return (this.vramSize >>> 16) & 0xffff;
    return 0;
  }

  writeDispiData(v: number): void {
    v &= 0xffff;
    const i = this.vbeIndex;
    const r = this.vbeRegs;
    switch (i) {
      case V.DISPI_ID:
        if (v >= V.DISPI_ID0 && v <= V.DISPI_ID5) r[i] = v;
        return;
      case V.DISPI_XRES:
      case V.DISPI_YRES:
      case V.DISPI_BPP:
      case V.DISPI_VIRT_WIDTH:
      case V.DISPI_X_OFFSET:
      case V.DISPI_Y_OFFSET:
        r[i] = v;
        this.vbeFixupRegs();
        this.vbeUpdateVgaRegs();
        this.regGen++;
        return;
      case V.DISPI_BANK:
        // CVE-2016-3710: the bank is masked to VRAM before it becomes an offset.
        v &= this.vbeBankMask;
        r[i] = v;
        this.bankOffset = v << 16;
        return;
      case V.DISPI_ENABLE:
        if (v & V.DISPI_ENABLED && !(r[V.DISPI_ENABLE] & V.DISPI_ENABLED)) {
          r[V.DISPI_VIRT_WIDTH] = 0;
          r[V.DISPI_X_OFFSET] = 0;
          r[V.DISPI_Y_OFFSET] = 0;
          r[V.DISPI_ENABLE] |= V.DISPI_ENABLED;
          this.vbeFixupRegs();
          this.vbeUpdateVgaRegs();
          if (!(v & V.DISPI_NOCLEARMEM)) {
            // vbeFixupRegs bounded YRES * line length by VRAM.
            const n = r[V.DISPI_YRES] * this.vbeLineOffset;
            this.vram.fill(0, 0, n);
            this.markDirty(0, n);
          }
        } else {
          this.bankOffset = 0;
        }
        this.dac8bit = (v & V.DISPI_8BIT_DAC) !== 0;
        r[V.DISPI_ENABLE] = v;
        this.regGen++;
        return;
      default:
        // VIRT_HEIGHT and VIDEO_MEMORY_64K are read-only; higher indices do not exist.
        return;
    }
  }

  /**
   * Bring the DISPI geometry to the nearest values that fit VRAM (QEMU
   * vbe_fixup_regs; CVE-2014-3615): bpp in {4,8,15,16,24,32}, XRES a
   * multiple of 8 in [8, 16000], VIRT_WIDTH >= XRES, YRES <= VRAM / line,
   * offsets that keep the visible screen inside VRAM.
   */
  vbeFixupRegs(): void {
    if (!this.vbeEnabled) return;
    const r = this.vbeRegs;
    let bits: number;
    switch (r[V.DISPI_BPP]) {
      case 4:
      case 8:
      case 16:
      case 24:
      case 32:
        bits = r[V.DISPI_BPP];
        break;
      case 15:
        bits = 16;
        break;
      default:
        bits = r[V.DISPI_BPP] = 8;
    }
    r[V.DISPI_XRES] &= ~7;
    if (r[V.DISPI_XRES] === 0) r[V.DISPI_XRES] = 8;
    if (r[V.DISPI_XRES] > V.DISPI_MAX_XRES) r[V.DISPI_XRES] = V.DISPI_MAX_XRES;
    r[V.DISPI_VIRT_WIDTH] &= ~7;
    if (r[V.DISPI_VIRT_WIDTH] > V.DISPI_MAX_XRES) r[V.DISPI_VIRT_WIDTH] = V.DISPI_MAX_XRES;
    if (r[V.DISPI_VIRT_WIDTH] < r[V.DISPI_XRES]) r[V.DISPI_VIRT_WIDTH] = r[V.DISPI_XRES];
    const lineLength = (r[V.DISPI_VIRT_WIDTH] * bits) >>> 3;
    const maxY = Math.floor(this.vramSize / lineLength);
    if (r[V.DISPI_YRES] === 0) r[V.DISPI_YRES] = 1;
    if (r[V.DISPI_YRES] > V.DISPI_MAX_YRES) r[V.DISPI_YRES] = V.DISPI_MAX_YRES;
    if (r[V.DISPI_YRES] > maxY) r[V.DISPI_YRES] = maxY;
    if (r[V.DISPI_X_OFFSET] > V.DISPI_MAX_XRES) r[V.DISPI_X_OFFSET] = V.DISPI_MAX_XRES;
    if (r[V.DISPI_Y_OFFSET] > V.DISPI_MAX_YRES) r[V.DISPI_Y_OFFSET] = V.DISPI_MAX_YRES;
    let offset = ((r[V.DISPI_X_OFFSET] * bits) >>> 3) + r[V.DISPI_Y_OFFSET] * lineLength;
    if (offset + r[V.DISPI_YRES] * lineLength > this.vramSize) {
      r[V.DISPI_Y_OFFSET] = 0;
      offset = (r[V.DISPI_X_OFFSET] * bits) >>> 3;
      if (offset + r[V.DISPI_YRES] * lineLength > this.vramSize) {
        r[V.DISPI_X_OFFSET] = 0;
        offset = 0;
      }
    }
    r[V.DISPI_VIRT_HEIGHT] = maxY; // a 16-bit register: QEMU truncates too
    this.vbeLineOffset = lineLength;
    this.vbeStartAddr = offset >>> 2;
  }

  /**
   * While VBE is on, force the VGA registers into the layout VBE needs
   * (graphics, memory map 1, chain 4 unless 4 bpp, line offset and height
   * from DISPI). Re-applied after every GR/CR write, so a guest cannot
   * make the renderer walk a VGA geometry over a VBE-sized buffer
   * (CVE-2016-3712). The sequencer overrides go to srVbe only: guests (the
   * Windows 7 installer) read back and rewrite sr freely under VBE.
   */
  vbeUpdateVgaRegs(): void {
    if (!this.vbeEnabled) return;
    const gr = this.gr;
    const cr = this.cr;
    gr[V.GR_MISC] = (gr[V.GR_MISC] & ~0x0c) | 0x04 | V.GR06_GRAPHICS_MODE;
    cr[V.CR_MODE] |= 3;
    cr[V.CR_OFFSET] = this.vbeLineOffset >>> 3;
    cr[V.CR_H_DISP] = (this.vbeRegs[V.DISPI_XRES] >>> 3) - 1;
    const h = this.vbeRegs[V.DISPI_YRES] - 1;
    cr[V.CR_V_DISP_END] = h;
    cr[V.CR_OVERFLOW] = (cr[V.CR_OVERFLOW] & ~0x42) | ((h >> 7) & 0x02) | ((h >> 3) & 0x40);
    cr[V.CR_LINE_COMPARE] = 0xff;
    cr[V.CR_OVERFLOW] |= 0x10;
    cr[V.CR_MAX_SCAN] |= 0x40;
    let shift: number;
    if (this.vbeRegs[V.DISPI_BPP] === 4) {
      shift = 0;
      this.srVbe[V.SR_CLOCK_MODE] &= ~8;
    } else {
      shift = 2;
      this.srVbe[V.SR_MEMORY_MODE] |= V.SR04_CHN_4M;
      this.srVbe[V.SR_PLANE_WRITE] |= V.SR02_ALL_PLANES;
    }
    gr[V.GR_MODE] = (gr[V.GR_MODE] & ~0x60) | (shift << 5);
    cr[V.CR_MAX_SCAN] &= ~0x9f;
  }

  // ---- The 0xA0000 window ---------------------------------------------

  /**
   * Window offset (0..0x1FFFF) -> VGA memory address for this memory map
   * (GR6 bits 2-3), or -1 where the map does not decode. In map 1 the
   * DISPI bank is added; BANK was masked to VRAM when written.
   */
  private mapAddr(off: number): number {
    off &= 0x1ffff;
    switch ((this.gr[V.GR_MISC] >> 2) & 3) {
      case 0:
        return off;
      case 1:
        return off < 0x10000 ? off + this.bankOffset : -1;
      case 2:
        return off >= 0x10000 && off < 0x18000 ? off - 0x10000 : -1;
      default:
        return off >= 0x18000 ? off - 0x18000 : -1;
    }
  }

  memReadb(off: number): number {
    let addr = this.mapAddr(off);
    if (addr < 0) return 0xff;
    if (this.seq(V.SR_MEMORY_MODE) & V.SR04_CHN_4M) {
      // Chain 4: a byte address is the VRAM address (plane = low two bits).
      return addr < this.vramSize ? this.vram[addr] : 0xff;
    }
    const gr = this.gr;
    if (gr[V.GR_MODE] & V.GR05_ODD_EVEN) {
      // Odd/even: even addresses planes 0/2, odd 1/3, in the word the address selects.
      const plane = (gr[V.GR_PLANE_READ] & 2) | (addr & 1);
      addr = ((addr & ~1) << 1) | plane;
      return addr < this.vramSize ? this.vram[addr] : 0xff;
    }
    // Planar: load all four planes into the latches (CVE-2016-3710: addr * 4 checked against VRAM).
    if (addr * 4 >= this.vramSize) return 0xff;
    const latch = this.vram32[addr];
    this.latch = latch;
    if (!(gr[V.GR_MODE] & V.GR05_READ_MODE1)) return (latch >>> ((gr[V.GR_PLANE_READ] & 3) * 8)) & 0xff;
    // Read mode 1: a 1 for each pixel whose colour matches the compare value on the planes cared about.
    let r = (latch ^ MASK16[gr[V.GR_COMPARE_VALUE]]) & MASK16[gr[V.GR_COMPARE_MASK]];
    r |= r >>> 16;
    r |= r >>> 8;
    return ~r & 0xff;
  }

  memWriteb(off: number, val: number): void {
    let addr = this.mapAddr(off);
    if (addr < 0) return;
    const planeWrite = this.seq(V.SR_PLANE_WRITE);
    if (this.seq(V.SR_MEMORY_MODE) & V.SR04_CHN_4M) {
      if (planeWrite & (1 << (addr & 3)) && addr < this.vramSize) {
        this.vram[addr] = val;
        this.touch(addr >>> VRAM_PAGE_SHIFT);
        if ((addr & 3) === 2) this.fontGen++;
      }
      return;
    }
    const gr = this.gr;
    if (gr[V.GR_MODE] & V.GR05_ODD_EVEN) {
      const plane = (gr[V.GR_PLANE_READ] & 2) | (addr & 1);
      if (planeWrite & (1 << plane)) {
        addr = ((addr & ~1) << 1) | plane;
        if (addr < this.vramSize) {
          this.vram[addr] = val;
          this.touch(addr >>> VRAM_PAGE_SHIFT);
          if (plane === 2) this.fontGen++;
        }
      }
      return;
    }
    // Planar write modes 0-3 (graphreg.htm GR5), then the logical op, bit mask and map mask.
    const latch = this.latch;
    let v: number;
    let bitMask: number;
    const rot = gr[V.GR_DATA_ROTATE] & 7;
    switch (gr[V.GR_MODE] & 3) {
      case 0: {
        v = ((val >>> rot) | (val << (8 - rot))) & 0xff;
        v = (v | (v << 8) | (v << 16) | (v << 24)) >>> 0;
        const setMask = MASK16[gr[V.GR_SR_ENABLE]];
        v = ((v & ~setMask) | (MASK16[gr[V.GR_SR_VALUE]] & setMask)) >>> 0;
        bitMask = gr[V.GR_BIT_MASK];
        break;
      }
      case 1:
        // The latches go out unchanged: no logical op, no bit mask.
        this.planarStore(addr, latch, planeWrite);
        return;
      case 2:
        v = MASK16[val & 0x0f];
        bitMask = gr[V.GR_BIT_MASK];
        break;
      default: {
        const r = (val >>> rot) | (val << (8 - rot));
        bitMask = gr[V.GR_BIT_MASK] & r;
        v = MASK16[gr[V.GR_SR_VALUE]];
        break;
      }
    }
    switch (gr[V.GR_DATA_ROTATE] >> 3) {
      case 1:
        v &= latch;
        break;
      case 2:
        v |= latch;
        break;
      case 3:
        v ^= latch;
        break;
      default:
        break;
    }
    bitMask &= 0xff;
    bitMask = (bitMask | (bitMask << 8) | (bitMask << 16) | (bitMask << 24)) >>> 0;
    v = ((v & bitMask) | (latch & ~bitMask)) >>> 0;
    this.planarStore(addr, v, planeWrite);
  }

  private planarStore(addr: number, v: number, planeWrite: number): void {
    if (addr * 4 >= this.vramSize) return; // CVE-2016-3710
    const m = MASK16[planeWrite & 0xf];
    this.vram32[addr] = ((this.vram32[addr] & ~m) | (v & m)) >>> 0;
    this.touch((addr << 2) >>> VRAM_PAGE_SHIFT);
    if (planeWrite & 4) this.fontGen++;
  }

  /** Multi-byte accesses are byte accesses, low address first (as QEMU's 1-byte window ops). */
  private windowRead(off: number, size: AccessSize): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.memReadb(off + i) << (8 * i);
    return v >>> 0;
  }

  private windowWrite(off: number, size: AccessSize, v: number): void {
    for (let i = 0; i < size; i++) this.memWriteb(off + i, (v >>> (8 * i)) & 0xff);
  }

  /** Mark VRAM bytes [off, off+len) dirty (writes through the linear framebuffer, clears). */
  markDirty(off: number, len: number): void {
    if (len <= 0) return;
    const first = off >>> VRAM_PAGE_SHIFT;
    const last = Math.min((off + len - 1) >>> VRAM_PAGE_SHIFT, this.dirty.length - 1);
    for (let p = first; p <= last; p++) this.touch(p);
  }
}

/** The port tables keep their state in the core's fields: no table storage. */
const NO_STORAGE = new Uint32Array(0);

/** A port of the CRTC/IS1 set that floats unless the misc register selects its decode. */
function decoded(port: number, read: (d: VgaCore) => number): (d: VgaCore) => number {
  return (d) => (d.portInvalid(port) ? 0xff : read(d));
}
function decodedW(port: number, write: (d: VgaCore, v: number) => void): (d: VgaCore, v: number) => void {
  return (d, v) => {
    if (!d.portInvalid(port)) write(d, v);
  };
}

const P = (port: number): number => port - V.VGA_PORT_BASE;
const ZERO = (): number => 0;

/**
 * 0x3B0-0x3DF. Every port is one byte; a word access is two byte accesses,
 * low port first (the `outw 0x3c4, 0x0f02` idiom). Ports QEMU decodes but
 * does not model (0x3C3, 0x3C6, 0x3CB, 0x3CD) read 0; ports it does not
 * decode at all float (0xff).
 */
const PORT_TABLE = new RegisterTable<VgaCore>(
  'vga-ports',
  V.VGA_PORT_LEN,
  [
    { name: 'CRT_IM', off: P(V.PORT_CRT_IM), width: 1, read: decoded(V.PORT_CRT_IM, (d) => d.crIndex), write: decodedW(V.PORT_CRT_IM, (d, v) => void (d.crIndex = v)) },
    { name: 'CRT_DM', off: P(V.PORT_CRT_DM), width: 1, read: decoded(V.PORT_CRT_DM, (d) => d.cr[d.crIndex]), write: decodedW(V.PORT_CRT_DM, (d, v) => d.writeCrtData(v)) },
    { name: 'IS1_RM', off: P(V.PORT_IS1_RM), width: 1, read: decoded(V.PORT_IS1_RM, (d) => d.readIs1()), write: decodedW(V.PORT_IS1_RM, (d, v) => void (d.fcr = v & 0x10)) },
    { name: 'ATT_W', off: P(V.PORT_ATT_W), width: 1, read: (d) => (d.arFlipFlop === 0 ? d.arIndex : 0), write: (d, v) => d.writeAttr(v) },
    { name: 'ATT_R', off: P(V.PORT_ATT_R), width: 1, read: (d) => d.readAttrData() },
    { name: 'MIS_W', off: P(V.PORT_MIS_W), width: 1, read: (d) => d.st00, write: (d, v) => void ((d.msr = v & ~0x10), d.regGen++) },
    { name: 'RES_3C3', off: 0x13, width: 1, read: ZERO },
    { name: 'SEQ_I', off: P(V.PORT_SEQ_I), width: 1, read: (d) => d.srIndex, write: (d, v) => void (d.srIndex = v & 7) },
    { name: 'SEQ_D', off: P(V.PORT_SEQ_D), width: 1, read: (d) => d.sr[d.srIndex], write: (d, v) => d.writeSeqData(v) },
    { name: 'PEL_MSK', off: P(V.PORT_PEL_MSK), width: 1, read: ZERO },
    { name: 'PEL_IR', off: P(V.PORT_PEL_IR), width: 1, read: (d) => d.dacState, write: (d, v) => void ((d.dacReadIndex = v), (d.dacSubIndex = 0), (d.dacState = 3)) },
    { name: 'PEL_IW', off: P(V.PORT_PEL_IW), width: 1, read: (d) => d.dacWriteIndex, write: (d, v) => void ((d.dacWriteIndex = v), (d.dacSubIndex = 0), (d.dacState = 0)) },
    { name: 'PEL_D', off: P(V.PORT_PEL_D), width: 1, read: (d) => d.readDacData(), write: (d, v) => d.writeDacData(v) },
    { name: 'FTC_R', off: P(V.PORT_FTC_R), width: 1, read: (d) => d.fcr },
    { name: 'RES_3CB', off: 0x1b, width: 1, read: ZERO },
    { name: 'MIS_R', off: P(V.PORT_MIS_R), width: 1, read: (d) => d.msr },
    { name: 'RES_3CD', off: 0x1d, width: 1, read: ZERO },
    { name: 'GFX_I', off: P(V.PORT_GFX_I), width: 1, read: (d) => d.grIndex, write: (d, v) => void (d.grIndex = v & 0x0f) },
    { name: 'GFX_D', off: P(V.PORT_GFX_D), width: 1, read: (d) => d.gr[d.grIndex], write: (d, v) => d.writeGfxData(v) },
    { name: 'CRT_IC', off: P(V.PORT_CRT_IC), width: 1, read: decoded(V.PORT_CRT_IC, (d) => d.crIndex), write: decodedW(V.PORT_CRT_IC, (d, v) => void (d.crIndex = v)) },
    { name: 'CRT_DC', off: P(V.PORT_CRT_DC), width: 1, read: decoded(V.PORT_CRT_DC, (d) => d.cr[d.crIndex]), write: decodedW(V.PORT_CRT_DC, (d, v) => d.writeCrtData(v)) },
    { name: 'IS1_RC', off: P(V.PORT_IS1_RC), width: 1, read: decoded(V.PORT_IS1_RC, (d) => d.readIs1()), write: decodedW(V.PORT_IS1_RC, (d, v) => void (d.fcr = v & 0x10)) },
  ],
  0xffffffff,
);

/** Ports PORT_TABLE decodes: 0x3B4/5, 0x3BA, all of 0x3C0-0x3CF, 0x3D4/5, 0x3DA (for mmioPortRead). */
const PORT_DECODED = new Uint8Array(V.VGA_PORT_LEN);
for (const port of [V.PORT_CRT_IM, V.PORT_CRT_DM, V.PORT_IS1_RM, V.PORT_CRT_IC, V.PORT_CRT_DC, V.PORT_IS1_RC]) PORT_DECODED[port - V.VGA_PORT_BASE] = 1;
for (let port = 0x3c0; port <= 0x3cf; port++) PORT_DECODED[port - V.VGA_PORT_BASE] = 1;

/**
 * 0x1CE index, 0x1CF and 0x1D0 data: 16-bit registers. A word access at
 * 0x1CF (or 0x1D0) is one data access (QEMU's portio with 2-byte entries);
 * a byte access reaches the register with that byte.
 */
const DISPI_TABLE = new RegisterTable<VgaCore>(
  'vga-dispi',
  V.DISPI_PORT_LEN,
  [
    { name: 'INDEX', off: 0, width: 2, flags: EXACT, read: (d) => d.vbeIndex, write: (d, v) => void (d.vbeIndex = v & 0xffff) },
    { name: 'INDEX_B', off: 0, width: 1, flags: EXACT, read: (d) => d.vbeIndex, write: (d, v) => void (d.vbeIndex = v) },
    { name: 'DATA', off: 1, width: 2, flags: EXACT, read: (d) => d.readDispiData(), write: (d, v) => d.writeDispiData(v) },
    { name: 'DATA_B', off: 1, width: 1, flags: EXACT, read: (d) => d.readDispiData(), write: (d, v) => d.writeDispiData(v) },
    { name: 'DATA2', off: 2, width: 2, flags: EXACT, read: (d) => d.readDispiData(), write: (d, v) => d.writeDispiData(v) },
    { name: 'DATA2_B', off: 2, width: 1, flags: EXACT, read: (d) => d.readDispiData(), write: (d, v) => d.writeDispiData(v) },
  ],
  0xffffffff,
);
