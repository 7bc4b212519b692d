/**
 * Intel 82540EM Gigabit Ethernet controller (8086:100E), the NIC qemu-xen
 * gives HVM guests as `-device e1000`: a PCI function with a 128 KiB
 * register BAR, a 64-byte I/O BAR holding the IOADDR/IODATA window (SDM
 * 13.2, I/O-mapped access; Linux resets the 82540 through it, e1000_reset_hw ->
 * e1000_write_reg_io; QEMU leaves it dead), and an optional expansion ROM
 * (iPXE). docs/e1000.md lists the facts and sources.
 *
 * Pieces: table.ts (the register file), eeprom.ts (EEPROM, Microwire, EERD),
 * phy.ts (MDIC's PHY), tx.ts (TX ring, offloads, TSO), rx.ts (filters, RX
 * ring). This file ties them together: interrupts and their mitigation
 * timers, link and autonegotiation, resets, PCI glue, and saved state.
 */
import type { Clock } from '../../core/clock.ts';
import { OneShot } from '../../core/clock.ts';
import type { Device, QuiesceResult, StateObject } from '../../core/device.ts';
import type { AccessSize, IoHandler } from '../../core/io.ts';
import { NO_IRQ, type IrqLine } from '../../core/irq.ts';
import { logger, RateLimited, type Logger } from '../../core/log.ts';
import type { GuestMemory } from '../../core/memory.ts';
import { StateError, StateReader } from '../../core/state.ts';
import { MAX_FRAME, type PacketBackend, type TxOffload } from '../../net/backend.ts';
import * as T from '../../net/trace.ts';
import { ROM_SLOT, type PciFunction, type PciSlotContext } from '../../pci/bus.ts';
import { CMD_MASTER, PciConfig, PCI_CACHE_LINE_SIZE } from '../../pci/config.ts';
import { CLASS_NETWORK_ETHERNET, QEMU_SUBSYSTEM_ID, QEMU_SUBSYSTEM_VENDOR, VENDOR_INTEL } from '../../pci/ids.ts';
import { buildEeprom, EEPROM_WORDS, eecdRead, eecdWrite, eerdRead, freshMicrowire, type MicrowireState } from './eeprom.ts';
import * as P from './phy.ts';
import * as R from './regs.ts';
import { RxEngine } from './rx.ts';
import { statAdd64, statInc, statSize } from './stats.ts';
import {
  E1000_TABLE,
  SLOT_MASKS,
  S_CTRL,
  S_EERD,
  S_ICR,
  S_IMS,
  S_ITR,
  S_MDIC,
  S_RA,
  S_RADV,
  S_RDH,
  S_RDTR,
  S_STATUS,
  S_STATS,
  S_TADV,
  S_TIDV,
  type E1000Hooks,
} from './table.ts';
import { TxEngine } from './tx.ts';

export const E1000_DEVICE_ID = 0x100e; // 82540EM (Linux e1000_hw.h E1000_DEV_ID_82540EM)
/** QEMU's e1000 reports revision 3. */
export const E1000_REVISION = 0x03;
export const E1000_BAR_MMIO = 0;
export const E1000_BAR_IO = 1;
export const E1000_IO_SIZE = 0x40;
/** IOADDR/IODATA (13.2, I/O-mapped access): offsets in the I/O BAR. */
const IOADDR = 0;
const IODATA = 4;

export interface E1000Options {
  /** Guest RAM (DMA goes through it only while the command register's bus master bit is set). */
  memory: GuestMemory;
  /** The board's clock: autonegotiation and interrupt mitigation timers. */
  clock: Clock;
  backend: PacketBackend;
  /** 6 bytes, or "52:54:00:12:34:56". */
  mac: Uint8Array | string;
  /** Instance number: the device id is `e1000.<index>` (default 0). */
  index?: number;
  /** INTx before the function is on a PCI bus (attach() replaces it with the bus's line). */
  irq?: IrqLine;
  /** Expansion ROM image (iPXE's efi-e1000.rom), exposed through the ROM BAR at config 0x30. */
  rom?: Uint8Array;
  log?: Logger;
  /** Record register accesses, frames, interrupts and timers (STUBDM_NET_TRACE; net/trace.ts). */
  trace?: T.NetTrace | null;
}

export function parseMac(mac: Uint8Array | string): Uint8Array {
  if (typeof mac !== 'string') {
    if (mac.length !== 6) throw new RangeError(`MAC of ${mac.length} bytes`);
    return new Uint8Array(mac);
  }
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(mac);
  if (!m) throw new RangeError(`bad MAC ${JSON.stringify(mac)}`);
  return Uint8Array.from(m.slice(1), (x) => parseInt(x, 16));
}

/** A ROM BAR size for `len` bytes: a power of two of at least 2 KiB. */
function romSizeFor(len: number): number {
  let s = 2048;
  while (s < len) s *= 2;
  return s;
}

export function createE1000(opts: E1000Options): E1000 {
  return new E1000(opts);
}

/**
 * Device `e1000.<index>`. Snapshot (version 1): `config` (256 bytes), `regs`
 * (the register storage, little-endian dwords in table order), `eeprom` (64
 * words), `phy` (32 words), `microwire` (EECD bit-bang state), `tx` (offload
 * contexts, the packet being assembled, where the walk stands in the
 * descriptor at TDH, a refused frame), `timers` (ms left of autoneg, itr,
 * rdtr, radv, tidv, tadv, kick), `irq` (INTx level), `cable` (host link),
 * `rxWaiting` (a frame was refused for lack of descriptors), `ioAddr`.
 * restore() starts nothing; resume() continues what the snapshot caught
 * stopped (docs/architecture.md §8, the machine's restore order).
 */
export class E1000 implements PciFunction, Device, E1000Hooks {
  readonly id: string;
  readonly stateVersion = 1;
  readonly name: string;
  readonly config: PciConfig;
  readonly mac: Uint8Array;
  /** Register storage (E1000_TABLE order). */
  readonly regs = E1000_TABLE.storage();
  readonly eeprom: Uint16Array;
  phy = P.phyInit();
  mw: MicrowireState = freshMicrowire();
  readonly tx: TxEngine;
  readonly rx: RxEngine;
  /** The cable (host side) is connected: setLinkUp(). */
  cable = true;
  /** A received frame was refused for lack of descriptors; resumeReceive() is owed. */
  rxWaiting = false;
  ioAddr = 0;
  /** Between restore() and resume(): start no I/O. */
  private restoring = false;
  private irqLevel = false;
  private intx: IrqLine;
  private readonly mem: GuestMemory;
  private readonly backend: PacketBackend;
  private readonly rom: Uint8Array | null;
  private readonly warner: RateLimited;
  private readonly clock: Clock;
  /** clock.now() at the last INTx assertion with ITR on (the throttle interval runs from it; not saved: a restore may assert at once). */
  private lastAssert = -Infinity;
  private readonly autoneg: OneShot;
  private readonly itrTimer: OneShot;
  private readonly rdtrTimer: OneShot;
  private readonly radvTimer: OneShot;
  private readonly tidvTimer: OneShot;
  private readonly tadvTimer: OneShot;
  /** Continue a TX walk that used up its frame budget (TX_FRAME_BUDGET), on the next turn. */
  private readonly kick: OneShot;
  /** Frame views into the TX buffer by (start, length), so sending allocates nothing once warm (at most 2 x 16 Ki views). */
  private readonly views: (Uint8Array | undefined)[][] = [[], []];
  /** The event trace, or null (then every trace point is this one check). */
  private readonly trace: T.NetTrace | null;
  /** Inside a TDT write's TX walk: a frame sent now goes out synchronously with the guest's write (the trace tells them apart). */
  private inTdtWrite = false;
  /** Inside itrExpired(): the edge being asserted was held back by ITR. */
  private itrRelease = false;

  constructor(opts: E1000Options) {
    const index = opts.index ?? 0;
    if (!Number.isInteger(index) || index < 0 || index > 999) throw new RangeError(`bad e1000 index ${index}`);
    this.id = `e1000.${index}`;
    this.name = `e1000.${index}`;
    this.mac = parseMac(opts.mac);
    this.mem = opts.memory;
    this.backend = opts.backend;
    this.intx = opts.irq ?? NO_IRQ;
    this.rom = opts.rom ?? null;
    const log = opts.log ?? logger('e1000');
    this.trace = opts.trace ?? null;
    this.warner = new RateLimited(log);
    this.config = new PciConfig({
      vendor: VENDOR_INTEL,
      device: E1000_DEVICE_ID,
      revision: E1000_REVISION,
      classCode: CLASS_NETWORK_ETHERNET,
      subsystemVendor: QEMU_SUBSYSTEM_VENDOR,
      subsystem: QEMU_SUBSYSTEM_ID,
      pin: 1,
      bars: [
        { index: E1000_BAR_MMIO, kind: 'mem', size: R.MMIO_SIZE },
        { index: E1000_BAR_IO, kind: 'io', size: E1000_IO_SIZE },
      ],
      romSize: this.rom ? romSizeFor(this.rom.length) : undefined,
    });
    this.config.set8(PCI_CACHE_LINE_SIZE, 0x10); // as QEMU pci_e1000_realize
    this.eeprom = buildEeprom(this.mac, E1000_DEVICE_ID);
    const c = opts.clock;
    // Each timer's run is traced (TM_* ids) before it does its work.
    const timer = (id: number, fn: () => void): OneShot =>
      new OneShot(c, () => {
        this.traceFired(id);
        fn();
      });
    this.autoneg = timer(T.TM_AUTONEG, () => this.autonegDone());
    this.itrTimer = timer(T.TM_ITR, () => this.itrExpired());
    this.clock = c;
    this.rdtrTimer = timer(T.TM_RDTR, () => this.rxTimerFired());
    this.radvTimer = timer(T.TM_RADV, () => this.rxTimerFired());
    this.tidvTimer = timer(T.TM_TIDV, () => this.txTimerFired());
    this.tadvTimer = timer(T.TM_TADV, () => this.txTimerFired());
    this.kick = timer(T.TM_KICK, () => this.kickFired());
    this.tx = new TxEngine({
      regs: this.regs,
      dmaRead: (g, d, o, l) => this.dmaRead(g, d, o, l),
      dmaWrite: (g, s, o, l) => this.dmaWrite(g, s, o, l),
      emit: (b, s, l, off) => this.emit(b, s, l, off),
      offloads: this.backend.offloads,
      descDone: (ide) => this.txDescDone(ide),
      queueEmpty: () => this.raise(R.ICR_TXQE),
      tsoDone: () => statInc(this.regs, R.ST_TSCTC),
      yieldWalk: () => this.armTimer(this.kick, T.TM_KICK, 0, true),
      warn: (o, m) => this.warner.warn(o, m),
    });
    this.rx = new RxEngine({
      regs: this.regs,
      dmaRead: (g, d, o, l) => this.dmaRead(g, d, o, l),
      dmaWrite: (g, s, o, l) => this.dmaWrite(g, s, o, l),
      busMaster: () => (this.config.command & CMD_MASTER) !== 0,
      rxDone: () => this.rxFrameDone(),
      raise: (c2) => this.raise(c2),
      warn: (o, m) => this.warner.warn(o, m),
    });
    this.resetRegisters();
    this.backend.setReceiver(this.receive);
    this.backend.onWritable(() => this.tx.run());
  }

  /** The FrameReceiver given to the backend. */
  readonly receive = (frame: Uint8Array): boolean => {
    const tr = this.trace;
    const n = tr !== null ? tr.frame(T.EV_RX, frame, frame.length, 0) : 0;
    try {
      if (this.rx.receive(frame)) return true;
      this.rxWaiting = true;
      if (tr !== null) tr.complete(n, T.RXF_REFUSED);
      return false;
    } catch (e) {
      this.warner.warn({ err: (e as Error).message }, 'e1000: receive failed');
      return true;
    }
  };

  // ---- PCI function ----

  attach(ctx: PciSlotContext): void {
    this.intx = ctx.intx;
    this.intx.set(this.irqLevel);
  }

  /**
   * Taken off the bus (the Xen platform device unplugged emulated NICs): no
   * timer may raise the line any more, and frames from the backend are dropped.
   */
  detach(): void {
    for (const t of [this.autoneg, this.itrTimer, this.rdtrTimer, this.radvTimer, this.tidvTimer, this.tadvTimer, this.kick]) t.cancel();
    this.intx = NO_IRQ;
    this.irqLevel = false;
    this.backend.setReceiver(() => true);
  }

  barHandler(i: number): IoHandler | null {
    if (i === E1000_BAR_MMIO) return this.mmio;
    if (i === E1000_BAR_IO) return this.io;
    if (i === ROM_SLOT && this.rom) return this.romHandler;
    return null;
  }

  commandChanged(cmd: number, old: number): void {
    // Bus mastering back on: TX that stopped on a refused DMA can go on, a refused frame can come in.
    // Not while the machine is being restored (PciBus.refresh): resume() does that once all is back.
    if (cmd & CMD_MASTER && !(old & CMD_MASTER) && !this.restoring) {
      this.tx.run();
      this.maybeResumeRx();
    }
  }

  readonly mmio: IoHandler = {
    read: (off, size) => {
      const tr = this.trace;
      if (tr === null) return E1000_TABLE.read(this, this.regs, off, size);
      const n = tr.reg(T.EV_REG_READ, off, 0);
      const v = E1000_TABLE.read(this, this.regs, off, size);
      tr.complete(n, v);
      return v;
    },
    write: (off, size, v) => {
      if (this.trace !== null) this.trace.reg(T.EV_REG_WRITE, off, v);
      E1000_TABLE.write(this, this.regs, off, size, v);
    },
  };

  /** IOADDR selects a register (dword offset into the memory BAR); IODATA reads or writes it (13.2). */
  readonly io: IoHandler = {
    read: (off, size) => {
      if (off >= IOADDR && off + size <= IOADDR + 4) return (this.ioAddr >>> (8 * off)) & sizeMask(size);
      if (off >= IODATA && off + size <= IODATA + 4) return this.mmio.read(this.ioTarget() + off - IODATA, size);
      return 0; // reserved: QEMU's whole I/O BAR reads 0
    },
    write: (off, size, v) => {
      if (off >= IOADDR && off + size <= IOADDR + 4) {
        const sh = 8 * off;
        const m = (sizeMask(size) << sh) >>> 0;
        this.ioAddr = ((this.ioAddr & ~m) | ((v << sh) & m)) >>> 0;
      } else if (off >= IODATA && off + size <= IODATA + 4) {
        this.mmio.write(this.ioTarget() + off - IODATA, size, v);
      }
    },
  };

  private ioTarget(): number {
    return this.ioAddr & (R.MMIO_SIZE - 4);
  }

  private readonly romHandler: IoHandler = {
    read: (off, size) => {
      const rom = this.rom!;
      let v = 0;
      for (let i = size - 1; i >= 0; i--) v = (v << 8) | (off + i < rom.length ? rom[off + i] : 0xff);
      return v >>> 0;
    },
    write: () => {},
  };

  // ---- DMA: only while the function may master the bus ----

  private dmaRead(gpa: number, dst: Uint8Array, off: number, len: number): boolean {
    if (!(this.config.command & CMD_MASTER) || !(gpa < 2 ** 52)) return false;
    return this.mem.read(gpa, dst, off, len);
  }

  private dmaWrite(gpa: number, src: Uint8Array, off: number, len: number): boolean {
    if (!(this.config.command & CMD_MASTER) || !(gpa < 2 ** 52)) return false;
    return this.mem.write(gpa, src, off, len);
  }

  // ---- Interrupts (13.4.17-13.4.21) and mitigation (13.4.18 ITR, 13.4.30-13.4.31 RDTR/RADV, 13.4.41 TIDV, 13.4.44 TADV) ----

  raise(cause: number): void {
    if (this.trace !== null) this.trace.record(T.EV_CAUSE, T.CAUSE_RAISED, cause);
    this.regs[S_ICR] = (this.regs[S_ICR] | cause) & R.ICR_VALID;
    this.updateIrq();
  }

  /**
   * INTx follows ICR & IMS. ITR spaces assertions at least ITR x 256 ns
   * apart: a rising edge inside the interval waits for the interval's end
   * (the causes are latched in ICR). The interval is measured from the last
   * assertion rather than timed from it, so a timer runs only while an edge
   * is actually held back: on the real clock a sub-millisecond setTimeout
   * is a 1 ms DM wake-up per interrupt, and under TCG an interrupt's own
   * register accesses take longer than any ITR the guest sets.
   */
  private updateIrq(): void {
    const want = (this.regs[S_ICR] & this.regs[S_IMS]) !== 0;
    if (want === this.irqLevel) return;
    if (want) {
      if (this.itrTimer.armed) {
        // held back: itrExpired() asserts
        if (this.trace !== null) this.trace.record(T.EV_INTX_HELD, 0, this.regs[S_ICR] & this.regs[S_IMS]);
        return;
      }
      const itr = this.regs[S_ITR] & 0xffff;
      if (itr !== 0) {
        const now = this.clock.now();
        const wait = this.lastAssert + itr * R.ITR_UNIT_MS - now;
        if (wait > 0) {
          this.armTimer(this.itrTimer, T.TM_ITR, wait, false);
          return;
        }
        this.lastAssert = now;
      }
      this.foldDelayed();
    }
    this.irqLevel = want;
    if (this.trace !== null) this.trace.record(T.EV_INTX, want ? 1 : 0, this.itrRelease ? 1 : 0);
    this.intx.set(want);
  }

  private itrExpired(): void {
    this.lastAssert = -Infinity;
    this.itrRelease = true;
    try {
      this.updateIrq();
    } finally {
      this.itrRelease = false;
    }
  }

  /** Arm (or, `ifIdle`, arm only if idle) one of the NIC's timers, recording it when tracing. */
  private armTimer(t: OneShot, id: number, ms: number, ifIdle: boolean): void {
    if (ifIdle && t.armed) return;
    if (this.trace !== null) this.trace.record(T.EV_TIMER_ARM, id, Math.min(0xffffffff, Math.round(ms * 1e6)));
    t.arm(ms);
  }

  private traceFired(id: number): void {
    if (this.trace !== null) this.trace.record(T.EV_TIMER_FIRE, id, 0);
  }

  /**
   * A TXDW or RXT0 still waiting for its delay timer (TIDV/TADV, RDTR/RADV)
   * goes into ICR now. Called when the line rises for another cause and when
   * the driver reads ICR: the descriptors are already written back, so the
   * driver's cleanup (by DD bits) sees the same thing either way, and the
   * delayed cause does not cost an interrupt of its own a moment later.
   * The delays exist to merge interrupts; this merges them into one that
   * happens anyway (a ping's reply carries its request's TXDW).
   */
  private foldDelayed(): void {
    if (this.tidvTimer.armed || this.tadvTimer.armed) {
      if (this.trace !== null) this.traceFold(this.tidvTimer, T.TM_TIDV, this.tadvTimer, T.TM_TADV, R.ICR_TXDW);
      this.tidvTimer.cancel();
      this.tadvTimer.cancel();
      this.regs[S_ICR] |= R.ICR_TXDW;
    }
    if (this.rdtrTimer.armed || this.radvTimer.armed) {
      if (this.trace !== null) this.traceFold(this.rdtrTimer, T.TM_RDTR, this.radvTimer, T.TM_RADV, R.ICR_RXT0);
      this.rdtrTimer.cancel();
      this.radvTimer.cancel();
      this.regs[S_ICR] |= R.ICR_RXT0;
    }
  }

  private traceFold(a: OneShot, aId: number, b: OneShot, bId: number, cause: number): void {
    const tr = this.trace!;
    if (a.armed) tr.record(T.EV_TIMER_CANCEL, aId, 0);
    if (b.armed) tr.record(T.EV_TIMER_CANCEL, bId, 0);
    tr.record(T.EV_CAUSE, T.CAUSE_FOLDED, cause);
  }

  /** A frame landed: RXT0 now, or after RDTR of quiet (re-armed per frame) capped by RADV (3.2.7.1). */
  private rxFrameDone(): void {
    if (this.trace !== null) this.trace.record(T.EV_RX_DMA, 0, this.regs[S_RDH]);
    const rdtr = this.regs[S_RDTR] & 0xffff;
    if (rdtr === 0) {
      this.raise(R.ICR_RXT0);
      return;
    }
    this.armTimer(this.rdtrTimer, T.TM_RDTR, rdtr * R.DELAY_UNIT_MS, false);
    const radv = this.regs[S_RADV] & 0xffff;
    if (radv !== 0) this.armTimer(this.radvTimer, T.TM_RADV, radv * R.DELAY_UNIT_MS, true);
  }

  private rxTimerFired(): void {
    this.rdtrTimer.cancel();
    this.radvTimer.cancel();
    this.raise(R.ICR_RXT0);
  }

  /** A TX descriptor with RS was written back: TXDW now, or (IDE) after TIDV capped by TADV (3.4.1). */
  private txDescDone(ide: boolean): void {
    const tidv = this.regs[S_TIDV] & 0xffff;
    if (!ide || tidv === 0) {
      this.raise(R.ICR_TXDW);
      return;
    }
    this.armTimer(this.tidvTimer, T.TM_TIDV, tidv * R.DELAY_UNIT_MS, false);
    const tadv = this.regs[S_TADV] & 0xffff;
    if (tadv !== 0) this.armTimer(this.tadvTimer, T.TM_TADV, tadv * R.DELAY_UNIT_MS, true);
  }

  private txTimerFired(): void {
    this.tidvTimer.cancel();
    this.tadvTimer.cancel();
    this.raise(R.ICR_TXDW);
  }

  private kickFired(): void {
    this.tx.run();
    this.maybeResumeRx();
  }

  // ---- Register side effects (E1000Hooks, called by E1000_TABLE) ----

  ctrlWritten(v: number, old: number): void {
    if (v & R.CTRL_RST) {
      this.softReset();
      return;
    }
    if (v & R.CTRL_PHY_RST && !(old & R.CTRL_PHY_RST)) this.phyReset();
  }

  eecdRead(): number {
    return eecdRead(this.mw, this.eeprom);
  }

  eecdWritten(v: number): void {
    eecdWrite(this.mw, v);
  }

  eerdRead(): number {
    return eerdRead(this.regs[S_EERD], this.eeprom);
  }

  /** MDIC (13.4.7): only PHY address 1 answers; the access completes at once (READY). */
  mdicWritten(v: number): void {
    const phyAddr = (v >>> R.MDIC_PHY_SHIFT) & 0x1f;
    const reg = (v >>> R.MDIC_REG_SHIFT) & 0x1f;
    let out = v;
    if (phyAddr !== P.PHY_ADDR) out |= R.MDIC_ERROR;
    else if (v & R.MDIC_OP_READ) {
      if (!(P.PHY_ACCESS[reg] & P.PHY_READABLE)) out |= R.MDIC_ERROR;
      else out = ((v & ~R.MDIC_DATA) | this.phy[reg]) >>> 0;
    } else if (v & R.MDIC_OP_WRITE) {
      if (!(P.PHY_ACCESS[reg] & P.PHY_WRITABLE)) out |= R.MDIC_ERROR;
      else this.phyWrite(reg, v & R.MDIC_DATA);
    }
    this.regs[S_MDIC] = (out | R.MDIC_READY) >>> 0;
    if (v & R.MDIC_INT_EN) this.raise(R.ICR_MDAC);
  }

  icrRead(): number {
    this.foldDelayed();
    const v = this.regs[S_ICR];
    this.regs[S_ICR] = 0;
    this.updateIrq();
    return v;
  }

  icrWritten(): void {
    this.updateIrq();
  }

  icsRead(): number {
    return this.regs[S_ICR];
  }

  icsWritten(v: number): void {
    this.raise(v & R.ICR_VALID);
  }

  imsWritten(v: number, old: number): void {
    this.regs[S_IMS] = (old | v) & R.ICR_VALID;
    this.updateIrq();
  }

  imcWritten(v: number): void {
    this.regs[S_IMS] &= ~v;
    this.updateIrq();
  }

  rctlWritten(): void {
    this.maybeResumeRx();
  }

  tctlWritten(): void {
    this.tx.run();
  }

  rdtWritten(): void {
    this.maybeResumeRx();
  }

  /** RDTR.FPD (13.4.30): flush, i.e. fire a pending receive timer now; the bit reads back 0. */
  rdtrWritten(v: number): void {
    if (!(v & R.RDTR_FPD)) return;
    this.regs[S_RDTR] = v & 0xffff;
    if (this.rdtrTimer.armed || this.radvTimer.armed) this.rxTimerFired();
  }

  tdtWritten(): void {
    this.inTdtWrite = true;
    try {
      this.tx.run();
    } finally {
      this.inTdtWrite = false;
    }
  }

  /** Statistics read to clear (13.7); the 64-bit octet counters clear as a pair when the high half is read. */
  statRead(i: number): number {
    const s = S_STATS + i;
    const v = this.regs[s];
    if (R.STATS_PAIRS_LOW.includes(i as never)) return v;
    this.regs[s] = 0;
    if (R.STATS_PAIRS_LOW.includes((i - 1) as never)) this.regs[s - 1] = 0;
    return v;
  }

  // ---- Receive ----

  private maybeResumeRx(): void {
    if (this.rxWaiting && this.rx.hasRoom()) {
      this.rxWaiting = false;
      try {
        this.backend.resumeReceive();
      } catch (e) {
        this.warner.warn({ err: (e as Error).message }, 'e1000: backend resumeReceive failed');
      }
    }
  }

  // ---- Transmit ----

  private emit(buf: Uint8Array, start: number, len: number, off: TxOffload | null): boolean {
    if (len > MAX_FRAME) {
      this.warner.warn({ len }, 'e1000: TX frame above 16 KiB: dropped');
      return true;
    }
    const byStart = this.views[start === 0 ? 0 : 1];
    let frame = byStart[len];
    if (frame === undefined || frame.byteOffset !== start) frame = byStart[len] = buf.subarray(start, start + len);
    if (this.phy[P.PHY_CTRL] & P.MII_CR_LOOPBACK) {
      this.rx.receive(frame); // PHY loopback: the frame comes straight back in
    } else {
      let ok: boolean;
      try {
        ok = this.backend.send(frame, off);
      } catch (e) {
        // A backend must not throw; if one does, the frame is lost (as on a dead link), not the guest's MMIO write.
        this.warner.warn({ err: (e as Error).message }, 'e1000: backend send failed: frame dropped');
        ok = true;
      }
      if (this.trace !== null) this.trace.frame(T.EV_TX, frame, len, (this.inTdtWrite ? 0 : T.TXF_DEFERRED) | (ok ? 0 : T.TXF_REFUSED));
      if (!ok) return false;
    }
    const r = this.regs;
    statInc(r, R.ST_TPT);
    statInc(r, R.ST_GPTC);
    statAdd64(r, R.ST_TOTL, len + 4);
    statAdd64(r, R.ST_GOTCL, len + 4);
    statSize(r, R.ST_PTC64, len + 4);
    if (frame[0] & 1) {
      if (frame[0] === 0xff && frame[1] === 0xff && frame[2] === 0xff && frame[3] === 0xff && frame[4] === 0xff && frame[5] === 0xff) statInc(r, R.ST_BPTC);
      else statInc(r, R.ST_MPTC);
    }
    return true;
  }

  // ---- PHY, link, autonegotiation ----

  private phyWrite(reg: number, data: number): void {
    if (reg !== P.PHY_CTRL) {
      this.phy[reg] = data;
      return;
    }
    // Reset and restart-autoneg self-clear; bits 5:0 are reserved (as QEMU set_phy_ctrl).
    this.phy[P.PHY_CTRL] = data & ~(0x3f | P.MII_CR_RESET | P.MII_CR_RESTART_AUTONEG);
    if (data & P.MII_CR_AUTONEG_EN && data & P.MII_CR_RESTART_AUTONEG) this.restartAutoneg();
  }

  /** Negotiation starts over: the link drops now and comes back AUTONEG_MS later (QEMU e1000x_restart_autoneg). */
  private restartAutoneg(): void {
    this.linkDown();
    this.armTimer(this.autoneg, T.TM_AUTONEG, R.AUTONEG_MS, false);
  }

  private autonegDone(): void {
    if (!this.cable) return;
    this.phy[P.PHY_LP_ABILITY] |= P.NWAY_LPAR_ACK;
    this.phy[P.PHY_STATUS] |= P.MII_SR_AUTONEG_COMPLETE;
    this.linkUp();
    this.raise(R.ICR_LSC);
  }

  private linkDown(): void {
    this.regs[S_STATUS] &= ~R.STATUS_LU;
    this.phy[P.PHY_STATUS] &= ~(P.MII_SR_LINK_STATUS | P.MII_SR_AUTONEG_COMPLETE);
    this.phy[P.PHY_LP_ABILITY] &= ~P.NWAY_LPAR_ACK;
    this.phy[P.M88_PHY_SPEC_STATUS] &= ~P.M88_PSSR_LINK;
  }

  private linkUp(): void {
    this.regs[S_STATUS] |= R.STATUS_LU;
    this.phy[P.PHY_STATUS] |= P.MII_SR_LINK_STATUS;
    this.phy[P.M88_PHY_SPEC_STATUS] |= P.M88_PSSR_LINK;
  }

  /** The host side of the cable (QMP set_link): LSC when STATUS.LU changes. */
  setLinkUp(up: boolean): void {
    const before = this.regs[S_STATUS];
    this.cable = up;
    if (!up) {
      this.autoneg.cancel();
      this.linkDown();
    } else if (this.phy[P.PHY_CTRL] & P.MII_CR_AUTONEG_EN && !(this.phy[P.PHY_STATUS] & P.MII_SR_AUTONEG_COMPLETE)) {
      this.restartAutoneg();
    } else {
      this.linkUp();
    }
    if (this.regs[S_STATUS] !== before) this.raise(R.ICR_LSC);
  }

  /** CTRL.PHY_RST: the PHY's registers return to their power-on values; the link keeps its state. */
  private phyReset(): void {
    const up = (this.regs[S_STATUS] & R.STATUS_LU) !== 0;
    this.phy = P.phyInit();
    if (!up) this.linkDown();
  }

  // ---- Resets ----

  /** Registers to their reset values, RAL0/RAH0 loaded from the EEPROM (SDM 5.6, 14.3); link state kept. */
  private resetRegisters(): void {
    const up = this.cable && !this.autoneg.armed;
    E1000_TABLE.reset(this.regs);
    const m = this.mac;
    this.regs[S_RA] = (m[0] | (m[1] << 8) | (m[2] << 16) | (m[3] << 24)) >>> 0;
    this.regs[S_RA + 1] = (m[4] | (m[5] << 8) | R.RAH_AV) >>> 0;
    if (!up) this.regs[S_STATUS] &= ~R.STATUS_LU;
    this.ioAddr = 0;
  }

  /** CTRL.RST (13.4.1): a global reset of the MAC; the PHY and its negotiation are left alone. */
  private softReset(): void {
    this.rdtrTimer.cancel();
    this.radvTimer.cancel();
    this.tidvTimer.cancel();
    this.tadvTimer.cancel();
    this.itrTimer.cancel();
    this.lastAssert = -Infinity;
    this.kick.cancel();
    this.tx.reset();
    this.mw = freshMicrowire();
    const io = this.ioAddr;
    this.resetRegisters();
    this.ioAddr = io; // the window the reset was written through stays put
    this.updateIrq();
  }

  /** Power-on / machine reset: MAC and PHY. Config space is the bus's business. */
  reset(): void {
    this.autoneg.cancel();
    this.softReset();
    this.ioAddr = 0;
    this.phy = P.phyInit();
    if (!this.cable) this.linkDown();
  }

  // ---- Saved state ----

  snapshot(): StateObject {
    return {
      config: this.config.snapshot(),
      regs: new Uint8Array(this.regs.buffer.slice(0)),
      eeprom: Array.from(this.eeprom),
      phy: Array.from(this.phy),
      microwire: { ...this.mw },
      tx: this.tx.snapshot(),
      timers: {
        autoneg: this.autoneg.remaining(),
        itr: this.itrTimer.remaining(),
        rdtr: this.rdtrTimer.remaining(),
        radv: this.radvTimer.remaining(),
        tidv: this.tidvTimer.remaining(),
        tadv: this.tadvTimer.remaining(),
        kick: this.kick.remaining(),
      },
      irq: this.irqLevel,
      cable: this.cable,
      rxWaiting: this.rxWaiting,
      ioAddr: this.ioAddr,
    };
  }

  restore(state: StateObject): void {
    const r = new StateReader(state, this.id);
    const config = this.config.readChecked(r);
    const regBytes = r.bytes('regs', E1000_TABLE.slots * 4);
    const regs = new Uint32Array(regBytes.buffer, regBytes.byteOffset, E1000_TABLE.slots);
    for (let i = 0; i < regs.length; i++) {
      if ((regs[i] & ~SLOT_MASKS[i]) !== 0) throw new StateError(`${this.id}.regs[${i}]: 0x${regs[i].toString(16)} has bits outside 0x${SLOT_MASKS[i].toString(16)}`);
    }
    const eeprom = r.ints('eeprom', EEPROM_WORDS, 0, 0xffff);
    const phy = r.ints('phy', P.PHY_REGS, 0, 0xffff);
    const m = r.obj('microwire');
    const mw: MicrowireState = {
      valIn: m.int('valIn', 0, 0x1ff),
      bitsIn: m.int('bitsIn', 0, 9),
      bitOut: m.int('bitOut', 0, 0x3ff),
      reading: m.bool('reading'),
      latched: m.int('latched', 0, R.EECD_LATCHED),
    };
    if (mw.latched & ~R.EECD_LATCHED) throw new StateError(`${m.path}.latched: bits outside 0x${R.EECD_LATCHED.toString(16)}`);
    const applyTx = TxEngine.check(r.obj('tx'));
    const t = r.obj('timers');
    const timers = ['autoneg', 'itr', 'rdtr', 'radv', 'tidv', 'tadv', 'kick'].map((k) => t.timer(k, 60_000));
    const irq = r.bool('irq');
    const cable = r.bool('cable');
    const rxWaiting = r.bool('rxWaiting');
    const ioAddr = r.u('ioAddr', 32);
    // Everything checked: apply.
    this.config.restore(config);
    this.regs.set(regs);
    this.eeprom.set(eeprom);
    this.phy = Uint16Array.from(phy);
    this.mw = mw;
    applyTx(this.tx);
    const all = [this.autoneg, this.itrTimer, this.rdtrTimer, this.radvTimer, this.tidvTimer, this.tadvTimer, this.kick];
    all.forEach((x, i) => x.restore(timers[i]));
    this.lastAssert = -Infinity;
    this.cable = cable;
    this.rxWaiting = rxWaiting;
    this.ioAddr = ioAddr;
    this.irqLevel = irq;
    this.intx.set(irq);
    this.restoring = true;
  }

  /**
   * Nothing is ever in flight between the NIC and its backend: send() copies
   * the frame before it returns, and a frame the backend refused stays in
   * the TX assembly buffer, named by the snapshot (tx.pendingLen, tx.phase).
   * resume() offers it again.
   */
  quiesce(): Promise<QuiesceResult> {
    return Promise.resolve('reissued');
  }

  /**
   * After the whole machine is restored (Bus Master Enable back): go on with
   * a TX walk the snapshot caught stopped (a refused frame, the frame budget)
   * and, if a received frame was refused for lack of descriptors, tell the
   * backend to offer frames again once there is room.
   */
  resume(): void {
    this.restoring = false;
    this.tx.run();
    this.maybeResumeRx();
  }

  // ---- For tests and diagnostics ----

  get irqAsserted(): boolean {
    return this.irqLevel;
  }
}

function sizeMask(size: AccessSize): number {
  return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
}
