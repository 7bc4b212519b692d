/**
 * One IDE channel: two drive slots sharing the task file registers, the
 * Device Control register, one INTRQ line and one bus-master engine.
 *
 * INTRQ is pending per channel: set when a drive completes, cleared by a
 * Status read or a command write, never by Alternate Status. nIEN masks the
 * line (the pending state survives), as ATA8-APT 5.2.5 describes.
 */
import type { AccessSize, IoHandler } from '../../core/io.ts';
import type { IrqLine } from '../../core/irq.ts';
import type { GuestMemory } from '../../core/memory.ts';
import { RateLimited } from '../../core/log.ts';
import type { StateReader } from '../../core/state.ts';
import { BusMaster } from './bmdma.ts';
import { Drive, type ChannelPort, type DriveOptions } from './drive.ts';
import * as R from './regs.ts';
import { EV_ATA_DATA, EV_ATA_READ, EV_ATA_WRITE, EV_IRQ, REG_CTL, type DiskTrace } from '../../block/trace.ts';

export type ChannelState = {
  /** Selected device (Device register bit 4). */
  unit: 0 | 1;
  /** Device Control register (nIEN, SRST, HOB). */
  devCtl: number;
  /** INTRQ pending (shown on the line unless nIEN). */
  irqPending: boolean;
};

export class Channel implements ChannelPort {
  readonly state: ChannelState = { unit: 0, devCtl: 0, irqPending: false };
  readonly drives: [Drive, Drive];
  readonly bm: BusMaster;
  /** The level this channel last gave its line (the trace records changes; runtime only). */
  private line = false;

  constructor(
    readonly memory: GuestMemory,
    private readonly irq: IrqLine,
    private readonly log: RateLimited,
    drives: [DriveOptions | null, DriveOptions | null],
    /** The controller's bus-master register storage, and this channel's number in it. */
    bmRegs: Uint32Array,
    readonly ch: 0 | 1,
    /** The disk event trace (STUBDM_DISK_TRACE; block/trace.ts), or null: every trace point is this one check. */
    readonly trace: DiskTrace | null = null,
  ) {
    this.drives = [new Drive(this, 0, drives[0] ?? { kind: 'none' }), new Drive(this, 1, drives[1] ?? { kind: 'none' })];
    this.bm = new BusMaster(memory, (u) => this.drives[u], bmRegs, ch, trace);
  }

  /** Read and check a saved channel (its own registers; the engine and drives are read by the controller). */
  static parse(r: StateReader): ChannelState {
    return { unit: r.int('unit', 0, 1) as 0 | 1, devCtl: r.u('devCtl', 8), irqPending: r.bool('irqPending') };
  }

  get selected(): Drive {
    return this.drives[this.state.unit];
  }

  // ---- ChannelPort ----
  raiseIrq(): void {
    this.state.irqPending = true;
    if (!(this.state.devCtl & R.DC_NIEN)) {
      this.bm.flagInterrupt();
      this.setLine(true);
    }
  }

  private lowerIrq(): void {
    this.state.irqPending = false;
    this.setLine(false);
  }

  /** Drive INTRQ (the board's line makes only edges cost a hypercall); traced with what the call took. */
  private setLine(level: boolean): void {
    const tr = this.trace;
    if (tr === null || level === this.line) {
      this.line = level;
      this.irq.set(level);
      return;
    }
    const t0 = tr.now();
    this.line = level;
    this.irq.set(level);
    tr.record(EV_IRQ, (this.ch << 1) | (level ? 1 : 0), Math.min(0xffffffff, Math.round((tr.now() - t0) * 1e6)));
  }

  dmaReady(d: Drive): void {
    this.bm.dmaReady(d);
  }

  dmaCancel(d: Drive): void {
    this.bm.cancel(d);
  }

  warn(obj: object, msg: string): void {
    this.log.warn(obj, msg);
  }

  // ---- command block (0x1F0-0x1F7) ----

  readonly commandBlock: IoHandler = {
    read: (off: number, size: AccessSize) => (this.trace === null ? this.cmdRead(off, size) : this.tracedRead(this.trace, off, size)),
    write: (off: number, size: AccessSize, value: number) => {
      const tr = this.trace;
      if (off === R.REG_DATA) {
        if (tr !== null) tr.access(EV_ATA_DATA, (this.ch << 1) | 1, size);
        if (size !== 1) this.selected.writeData(size, value);
        return;
      }
      if (tr !== null) tr.access(EV_ATA_WRITE, (this.ch << 4) | off, value);
      for (let i = 0; i < size && off + i <= 7; i++) this.writeReg(off + i, (value >>> (8 * i)) & 0xff);
    },
    readRep: (off, size, count, dst, dstOff) => {
      if (off !== R.REG_DATA || size === 1) return 0;
      if (this.trace === null) return this.selected.readRep(size, count, dst, dstOff);
      const n = this.trace.access(EV_ATA_DATA, this.ch << 1, 0);
      const done = this.selected.readRep(size, count, dst, dstOff);
      this.trace.complete(n, done * size);
      return done;
    },
    writeRep: (off, size, count, src, srcOff) => {
      if (off !== R.REG_DATA || size === 1) return 0;
      if (this.trace !== null) this.trace.access(EV_ATA_DATA, (this.ch << 1) | 1, count * size);
      return this.selected.writeRep(size, count, src, srcOff);
    },
  };

  private cmdRead(off: number, size: AccessSize): number {
    if (off === R.REG_DATA) return size === 1 ? 0xff : this.selected.readData(size);
    let v = 0;
    for (let i = 0; i < size; i++) v |= (off + i <= 7 ? this.readReg(off + i) : 0xff) << (8 * i);
    return v >>> 0;
  }

  /** A command-block read, recorded before it runs (a Status read lowers the line after it) and completed with its value. */
  private tracedRead(tr: DiskTrace, off: number, size: AccessSize): number {
    const n = off === R.REG_DATA ? tr.access(EV_ATA_DATA, this.ch << 1, size) : tr.access(EV_ATA_READ, (this.ch << 4) | off, 0);
    const v = this.cmdRead(off, size);
    if (off !== R.REG_DATA) tr.complete(n, v);
    return v;
  }

  /** PciIdeHost (src/pci/piix-ide.ts) names for the two blocks. */
  get cmd(): IoHandler {
    return this.commandBlock;
  }
  get ctl(): IoHandler {
    return this.controlBlock;
  }

  // ---- control block (0x3F6) ----

  readonly controlBlock: IoHandler = {
    read: () => {
      const v = this.statusOf(this.selected);
      if (this.trace !== null) this.trace.access(EV_ATA_READ, (this.ch << 4) | REG_CTL, v);
      return v;
    },
    write: (_off: number, _size: AccessSize, value: number) => {
      if (this.trace !== null) this.trace.access(EV_ATA_WRITE, (this.ch << 4) | REG_CTL, value & 0xff);
      this.writeDeviceControl(value & 0xff);
    },
  };

  /** Status of the selected drive; 0 for an empty slot (QEMU: an absent device 1 reads 0). */
  private statusOf(d: Drive): number {
    // Indexed, not destructured: an array pattern walks an iterator, which is
    // not always optimised away on this path (Status and Alternate Status reads).
    if ((!this.drives[0].present && !this.drives[1].present) || (d.unit === 1 && !d.present)) return 0;
    return d.state.status;
  }

  readReg(reg: number): number {
    const d = this.selected;
    const s = d.state;
    if (reg === R.REG_STATUS) {
      const v = this.statusOf(d);
      this.lowerIrq();
      return v;
    }
    if (!this.drives[0].present && !this.drives[1].present) return 0;
    const hob = (this.state.devCtl & R.DC_HOB) !== 0;
    switch (reg) {
      case R.REG_ERROR:
        return hob ? s.hobFeature : s.error;
      case R.REG_NSECTOR:
        return hob ? s.hobNsector : s.nsector;
      case R.REG_LBA_LOW:
        return hob ? s.hobSector : s.sector;
      case R.REG_LBA_MID:
        return hob ? s.hobLcyl : s.lcyl;
      case R.REG_LBA_HIGH:
        return hob ? s.hobHcyl : s.hcyl;
      default:
        return s.select;
    }
  }

  writeReg(reg: number, v: number): void {
    // Writes to the command block are ignored while the selected device is busy (ATA8-APT 5.2; QEMU).
    if (reg !== R.REG_COMMAND && this.selected.state.status & (R.ST_BSY | R.ST_DRQ)) return;
    this.state.devCtl &= ~R.DC_HOB; // any write clears HOB
    if (reg === R.REG_COMMAND) {
      this.lowerIrq();
      if (v === R.CMD_EXECUTE_DEVICE_DIAGNOSTIC) return this.diagnose();
      return this.selected.execCommand(v);
    }
    // Both devices see every write: the bus is shared.
    for (const d of this.drives) {
      const s = d.state;
      switch (reg) {
        case R.REG_FEATURE:
          s.hobFeature = s.feature;
          s.feature = v;
          break;
        case R.REG_NSECTOR:
          s.hobNsector = s.nsector;
          s.nsector = v;
          break;
        case R.REG_LBA_LOW:
          s.hobSector = s.sector;
          s.sector = v;
          break;
        case R.REG_LBA_MID:
          s.hobLcyl = s.lcyl;
          s.lcyl = v;
          break;
        case R.REG_LBA_HIGH:
          s.hobHcyl = s.hcyl;
          s.hcyl = v;
          break;
        case R.REG_DEVICE:
          s.select = v | R.DEV_OBS;
          break;
      }
    }
    if (reg === R.REG_DEVICE) this.state.unit = v & R.DEV_SEL ? 1 : 0;
  }

  /** EXECUTE DEVICE DIAGNOSTIC (ATA8-ACS 7.11): both devices, device 0 selected afterwards, Error = 01h. */
  private diagnose(): void {
    const sel = this.selected;
    if (!sel.present || sel.state.status & (R.ST_BSY | R.ST_DRQ)) return;
    for (const d of this.drives) {
      if (!d.present) continue;
      d.setSignature();
      d.state.select &= ~R.DEV_SEL;
      d.state.error = R.ER_AMNF; // "device 0 passed, device 1 passed or not present"
      d.state.status = d.state.kind === 'cdrom' ? 0 : R.ST_DRDY | R.ST_DSC;
    }
    this.drives[this.state.unit === 0 ? 1 : 0].state.select &= ~R.DEV_SEL;
    this.state.unit = 0;
    this.raiseIrq();
  }

  /** After a restore: the interrupt line follows the restored pending state and nIEN. */
  syncIrq(): void {
    this.setLine(this.state.irqPending && !(this.state.devCtl & R.DC_NIEN));
  }

  writeDeviceControl(v: number): void {
    const old = this.state.devCtl;
    this.state.devCtl = v;
    if (v & R.DC_SRST && !(old & R.DC_SRST)) {
      // Reset asserted: both devices busy, commands and DMA abandoned.
      for (const d of this.drives) {
        d.reset();
        this.bm.cancel(d);
        d.state.status = R.ST_BSY | R.ST_DSC;
        d.state.error = R.ER_AMNF;
      }
      this.state.unit = 0;
    } else if (!(v & R.DC_SRST) && old & R.DC_SRST) {
      // Reset released: signatures; ATAPI devices do not set DRDY (ATA8-ACS 9.12).
      for (const d of this.drives) {
        d.state.status = d.state.kind === 'disk' ? R.ST_DRDY | R.ST_DSC : 0;
        d.setSignature();
      }
    }
    // nIEN gates the line; the pending interrupt stays and shows once unmasked.
    const level = this.state.irqPending && !(v & R.DC_NIEN);
    if (level) this.bm.flagInterrupt();
    this.setLine(level);
  }
}
