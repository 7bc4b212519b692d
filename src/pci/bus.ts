/**
 * PCI bus 0: functions by devfn, their config space, their BAR regions, and
 * configuration mechanism #1 (ports 0xCF8/0xCFC-0xCFF).
 *
 * Config accesses arrive two ways: as IOREQ_TYPE_PCI_CONFIG (Xen decodes CF8
 * + CFC itself for claimed functions: configRead/configWrite below) and as
 * plain port I/O on 0xCF8-0xCFF (CF8 writes always reach us too, see
 * docs/xen-contract.md §5). Both end in the same PciConfig.
 *
 * The bus, not the function, turns command/BAR changes into regions on
 * board.pio / board.mmio (docs/architecture.md §5); the Board forwards those to Xen.
 */
import type { Board } from '../core/board.ts';
import type { Region } from '../core/bus.ts';
import { sizeMask, type AccessSize, type IoHandler, type PciConfigHandler } from '../core/io.ts';
import type { IrqLine } from '../core/irq.ts';
import type { Device, StateObject } from '../core/device.ts';
import { logger, RateLimited, type Logger } from '../core/log.ts';
import { StateError, StateReader } from '../core/state.ts';
import {
  CMD_INTX_DISABLE,
  CMD_IO,
  CMD_MEMORY,
  HEADER_MULTI_FUNCTION,
  PCI_BASE_ADDRESS_0,
  PCI_COMMAND,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_PIN,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  readBits,
  ROM_ENABLE,
  STATUS_INTX,
  type PciConfig,
} from './config.ts';

/** Index of the expansion ROM among a function's regions (BARs are 0-5). */
export const ROM_SLOT = 6;

/** What the bus gives a function when it is added. */
export interface PciSlotContext {
  readonly device: number;
  readonly fn: number;
  /** The function's INTx line (pin from config 0x3D); tracks status bit 3 and honours INTx disable. */
  readonly intx: IrqLine;
}

export interface PciFunction {
  readonly name: string;
  readonly config: PciConfig;
  /** Handler for the region behind BAR i (ROM_SLOT for the ROM); null leaves it unmapped. */
  barHandler(i: number): IoHandler | null;
  /** Called once by PciBus.add. */
  attach?(ctx: PciSlotContext): void;
  /** The command register changed (after the write landed). */
  commandChanged?(cmd: number, old: number): void;
  /**
   * BAR i (ROM_SLOT for the ROM) now decodes at `base`, or stopped decoding
   * (-1). Also called for BARs whose barHandler is null, so a device that
   * backs a BAR with something other than an IoHandler (VRAM as guest RAM)
   * can move it itself.
   */
  barMoved?(i: number, base: number): void;
  /** Called by PciBus.remove. */
  detach?(): void;
  /** Config bytes were restored (PciBus.refresh): re-derive what watchers would have set up. */
  configRestored?(): void;
}

interface Slot {
  readonly f: PciFunction;
  readonly device: number;
  readonly fn: number;
  /** Region currently on the bus per BAR (0-5, ROM 6), and whether it is on pio. */
  readonly mapped: (Region | null)[];
  readonly mappedIo: boolean[];
  /** A mapping the guest asked for but that overlapped something: retried after any unmap. */
  readonly pending: boolean[];
  /** Last base passed to barMoved per BAR (-1 = not decoding). */
  readonly reported: number[];
  command: number;
  intxLevel: boolean;
  /** Stops the bus's config watchers (remove, so a re-added function is watched once). */
  unwatch: (() => void)[];
  intxOut: IrqLine | null;
}

// Config mechanism #1 (PCI Local Bus 3.0 §3.2.2.3.2; i440FX datasheet §3.1.1 CONFADD).
export const CONFIG_ADDRESS_PORT = 0xcf8;
export const CONFIG_DATA_PORT = 0xcfc;
const CONFADD_ENABLE = 0x80000000;
/** Bits 30:24 and 1:0 are reserved and read back as zero. */
const CONFADD_MASK = 0x80fffffc;
/** The reset control register (PIIX3 RCR) shares 0xCF9 with CONFADD's second byte. */
const RCR_OFFSET = 1;

const IO_LIMIT = 0x10000;
/** QEMU pci_bar_address: a 32-bit BAR whose last byte reaches 0xFFFFFFFF is left unmapped. */
const MEM_LIMIT = 0xffffffff;
/** 64-bit BARs: guest-physical addresses stay below 2^52 (x86 MAXPHYADDR), which a double holds exactly. */
const MEM64_LIMIT = 2 ** 52;

/**
 * The bus as a Device ('pci.bus'): its own state is the CONFADD latch and
 * which functions are present (a restore into a different layout is
 * refused). Each function saves its own config space; once all of them are
 * restored the machine calls refresh(), which claims BAR regions from the
 * restored config before the ioreq server runs.
 */
export class PciBus implements PciConfigHandler, Device {
  readonly id = 'pci.bus';
  readonly stateVersion = 1;
  private readonly slots: (Slot | undefined)[] = new Array(256);
  private confAddr = 0;
  private resetControl: IoHandler | null = null;
  private configPorts: Region[] = [];
  private readonly warn: RateLimited;

  constructor(
    readonly board: Board,
    private readonly log: Logger = logger('pci'),
  ) {
    this.warn = new RateLimited(log);
  }

  /** Put `f` at 00:device.fn and claim its config accesses. */
  add(device: number, fn: number, f: PciFunction): void {
    if (!(device >= 0 && device < 32 && fn >= 0 && fn < 8)) throw new RangeError(`bad PCI address ${device}.${fn}`);
    const devfn = (device << 3) | fn;
    if (this.slots[devfn]) throw new Error(`PCI 00:${hex2(device)}.${fn} is taken by ${this.slots[devfn]!.f.name}`);
    const slot: Slot = {
      f,
      device,
      fn,
      mapped: [null, null, null, null, null, null, null],
      mappedIo: [false, false, false, false, false, false, false],
      pending: [false, false, false, false, false, false, false],
      reported: [-1, -1, -1, -1, -1, -1, -1],
      command: f.config.command,
      intxLevel: false,
      intxOut: null,
      unwatch: [],
    };
    this.slots[devfn] = slot;
    const cfg = f.config;
    slot.unwatch.push(
      cfg.watch(PCI_COMMAND, 2, () => this.commandWritten(slot)),
      cfg.watch(PCI_BASE_ADDRESS_0, 24, () => this.remap(slot)),
      cfg.watch(PCI_ROM_ADDRESS, 4, () => this.remap(slot)),
    );
    const pin = cfg.get8(PCI_INTERRUPT_PIN);
    if (pin >= 1 && pin <= 4) slot.intxOut = this.board.pciIntx(device, pin - 1);
    // Multi-function devices: function 0 says so, or the OS never looks at 1-7.
    this.updateMultiFunction(device);
    f.attach?.({ device, fn, intx: { set: (on) => this.setIntx(slot, on) } });
    this.board.claimPciFunction(device, fn);
    this.remap(slot);
  }

  /** Take a function off the bus (Xen platform unplug of an emulated NIC). */
  remove(device: number, fn: number): void {
    const devfn = ((device & 31) << 3) | (fn & 7);
    const slot = this.slots[devfn];
    if (!slot) return;
    this.setIntx(slot, false);
    for (let i = 0; i < slot.mapped.length; i++) {
      this.unmap(slot, i);
      slot.pending[i] = false;
      this.report(slot, i, null);
    }
    for (const u of slot.unwatch) u();
    this.slots[devfn] = undefined;
    this.board.releasePciFunction(slot.device, slot.fn);
    slot.f.detach?.();
    this.updateMultiFunction(device);
    this.retryPending();
  }

  get(device: number, fn: number): PciFunction | null {
    return this.slots[((device & 31) << 3) | (fn & 7)]?.f ?? null;
  }

  /** Lowest free device number >= `from` (function 0 free), or -1. */
  freeDevice(from = 0): number {
    for (let d = from; d < 32; d++) {
      let used = false;
      for (let fn = 0; fn < 8; fn++) if (this.slots[(d << 3) | fn]) used = true;
      if (!used) return d;
    }
    return -1;
  }

  /** Regions currently mapped for 00:device.fn (for tests and `info pci`). */
  mappedRegions(device: number, fn: number): readonly (Region | null)[] {
    return this.slots[((device & 31) << 3) | (fn & 7)]?.mapped ?? [];
  }

  configRead(devfn: number, reg: number, size: AccessSize): number {
    const slot = this.slots[devfn & 0xff];
    if (!slot || reg < 0 || reg + size > 256) return sizeMask(size);
    return slot.f.config.read(reg, size);
  }

  configWrite(devfn: number, reg: number, size: AccessSize, value: number): void {
    const slot = this.slots[devfn & 0xff];
    if (!slot || reg < 0 || reg + size > 256) return;
    slot.f.config.write(reg, size, value);
  }

  /** The byte register at 0xCF9 (PIIX3 reset control). */
  setResetControl(h: IoHandler): void {
    this.resetControl = h;
  }

  /** Claim 0xCF8-0xCFB (CONFADD, RCR at 0xCF9) and 0xCFC-0xCFF (CONFDATA) on board.pio. */
  installConfigPorts(): void {
    if (this.configPorts.length) return;
    const addrPort: IoHandler = {
      read: (off, size) => {
        if (off === 0 && size === 4) return this.confAddr;
        if (off === RCR_OFFSET && size === 1 && this.resetControl) return this.resetControl.read(0, 1);
        return sizeMask(size); // byte/word accesses to CONFADD are plain I/O cycles nobody claims
      },
      write: (off, size, v) => {
        if (off === 0 && size === 4) this.confAddr = (v & CONFADD_MASK) >>> 0;
        else if (off === RCR_OFFSET && size === 1 && this.resetControl) this.resetControl.write(0, 1, v);
      },
    };
    const dataPort: IoHandler = {
      read: (off, size) => {
        const devfn = this.selected();
        if (devfn < 0) return sizeMask(size);
        return this.configRead(devfn, (this.confAddr & 0xfc) + off, size);
      },
      write: (off, size, v) => {
        const devfn = this.selected();
        if (devfn >= 0) this.configWrite(devfn, (this.confAddr & 0xfc) + off, size, v);
      },
    };
    this.configPorts = [
      this.board.pio.add('pci-conf-addr', CONFIG_ADDRESS_PORT, 4, addrPort),
      this.board.pio.add('pci-conf-data', CONFIG_DATA_PORT, 4, dataPort),
    ];
  }

  /** devfns present, ascending. */
  present(): number[] {
    const out: number[] = [];
    this.slots.forEach((s, devfn) => {
      if (s) out.push(devfn);
    });
    return out;
  }

  snapshot(): StateObject {
    return { confAddr: this.confAddr, present: this.present() };
  }

  /** The CONFADD latch; refuses a state whose functions are not exactly the ones on this bus. */
  restore(state: StateObject): void {
    const r = new StateReader(state, this.id);
    const confAddr = readBits(r, 'confAddr', CONFADD_MASK);
    const saved = r.ints('present', -1, 0, 255, 256);
    const here = this.present();
    if (saved.length !== here.length || saved.some((d, i) => d !== here[i])) {
      throw new StateError(`${this.id}.present: saved functions [${saved.map(devfnName).join(' ')}], this machine has [${here.map(devfnName).join(' ')}]`);
    }
    this.confAddr = confAddr;
  }

  /**
   * After every function's config bytes were restored: bring what config
   * decides up to date. BAR regions are claimed, moved or released on the
   * board, each function's INTx line follows its status bit and INTx
   * disable, functions re-derive their own decoders (configRestored) and
   * hear about a changed command register.
   */
  refresh(): void {
    for (const slot of this.slots) {
      if (!slot) continue;
      const old = slot.command;
      slot.command = slot.f.config.command;
      slot.intxLevel = (slot.f.config.get16(PCI_STATUS) & STATUS_INTX) !== 0;
      this.remap(slot);
      this.driveIntx(slot);
      slot.f.configRestored?.();
      if (slot.command !== old) slot.f.commandChanged?.(slot.command, old);
    }
  }

  /** devfn selected by CONFADD for a CFC access, or -1 (disabled, or a bus other than 0). */
  private selected(): number {
    const a = this.confAddr;
    if (!(a & CONFADD_ENABLE) || (a >>> 16) & 0xff) return -1;
    return (a >>> 8) & 0xff;
  }

  private updateMultiFunction(device: number): void {
    const f0 = this.slots[device << 3];
    if (!f0) return;
    let others = false;
    for (let fn = 1; fn < 8; fn++) if (this.slots[(device << 3) | fn]) others = true;
    const ht = f0.f.config.get8(PCI_HEADER_TYPE);
    f0.f.config.set8(PCI_HEADER_TYPE, others ? ht | HEADER_MULTI_FUNCTION : ht & ~HEADER_MULTI_FUNCTION);
  }

  private commandWritten(slot: Slot): void {
    const cmd = slot.f.config.command;
    const old = slot.command;
    if (cmd === old) return;
    slot.command = cmd;
    if ((cmd ^ old) & (CMD_IO | CMD_MEMORY)) this.remap(slot);
    if ((cmd ^ old) & CMD_INTX_DISABLE) this.driveIntx(slot);
    slot.f.commandChanged?.(cmd, old);
  }

  private setIntx(slot: Slot, on: boolean): void {
    slot.intxLevel = on;
    const cfg = slot.f.config;
    const st = cfg.get16(PCI_STATUS);
    cfg.set16(PCI_STATUS, on ? st | STATUS_INTX : st & ~STATUS_INTX);
    this.driveIntx(slot);
  }

  private driveIntx(slot: Slot): void {
    slot.intxOut?.set(slot.intxLevel && !(slot.command & CMD_INTX_DISABLE));
  }

  /** Where BAR i should be decoded now, or null. */
  private wanted(slot: Slot, i: number): { base: number; size: number; io: boolean } | null {
    const cfg = slot.f.config;
    const cmd = cfg.command;
    let size: number;
    let io: boolean;
    let limit = MEM_LIMIT;
    if (i === ROM_SLOT) {
      if (!cfg.romSize || !(cfg.get32(PCI_ROM_ADDRESS) & ROM_ENABLE)) return null;
      size = cfg.romSize;
      io = false;
    } else {
      const b = cfg.bars[i];
      if (!b) return null;
      size = b.size;
      io = b.kind === 'io';
      if (io) limit = IO_LIMIT;
      else if (b.kind === 'mem64') limit = MEM64_LIMIT;
    }
    if (!(cmd & (io ? CMD_IO : CMD_MEMORY))) return null;
    const base = cfg.barAddress(i);
    // Address 0 is "not programmed"; ranges running off the space are the sizing pattern.
    if (base === 0 || base + size > limit) return null;
    return { base, size, io };
  }

  private remap(slot: Slot): void {
    let released = false;
    for (let i = 0; i <= ROM_SLOT; i++) {
      const want = this.wanted(slot, i);
      const cur = slot.mapped[i];
      if (cur && want && cur.start === want.base && slot.mappedIo[i] === want.io) continue;
      if (cur) {
        this.unmap(slot, i);
        released = true;
      }
      slot.pending[i] = false;
      if (want) this.map(slot, i, want.base, want.size, want.io);
      this.report(slot, i, want);
    }
    if (released) this.retryPending();
  }

  /** Tell the function where BAR i decodes now, if that changed. */
  private report(slot: Slot, i: number, want: { base: number } | null): void {
    const r = slot.mapped[i];
    const base = r ? r.start : want && !slot.pending[i] && !slot.f.barHandler(i) ? want.base : -1;
    if (base === slot.reported[i]) return;
    slot.reported[i] = base;
    slot.f.barMoved?.(i, base);
  }

  private map(slot: Slot, i: number, base: number, size: number, io: boolean): void {
    const h = slot.f.barHandler(i);
    if (!h) return;
    const name = `${slot.f.name} ${i === ROM_SLOT ? 'ROM' : `BAR${i}`}`;
    try {
      slot.mapped[i] = (io ? this.board.pio : this.board.mmio).add(name, base, size, h);
      slot.mappedIo[i] = io;
      slot.pending[i] = false;
    } catch (e) {
      // The BIOS finds out by the device not answering there, as on real hardware.
      slot.pending[i] = true;
      this.warn.warn(
        { fn: `00:${hex2(slot.device)}.${slot.fn}`, bar: i, base, size, err: (e as Error).message },
        'PCI BAR overlaps another region: left unmapped',
      );
    }
  }

  private unmap(slot: Slot, i: number): void {
    const r = slot.mapped[i];
    if (!r) return;
    slot.mapped[i] = null;
    (slot.mappedIo[i] ? this.board.pio : this.board.mmio).remove(r);
  }

  /** A region went away: BARs that collided earlier may fit now. */
  private retryPending(): void {
    for (const s of this.slots) {
      if (!s) continue;
      for (let i = 0; i <= ROM_SLOT; i++) {
        if (!s.pending[i]) continue;
        const want = this.wanted(s, i);
        s.pending[i] = false;
        if (want && !s.mapped[i]) this.map(s, i, want.base, want.size, want.io);
        this.report(s, i, want);
      }
    }
  }
}

function devfnName(devfn: number): string {
  return `00:${hex2(devfn >> 3)}.${devfn & 7}`;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
