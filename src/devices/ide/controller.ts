/**
 * PIIX3 IDE controller: two channels (primary 0x1F0/0x3F6 IRQ 14,
 * secondary 0x170/0x376 IRQ 15) and the 16-byte bus-master block
 * (channel 0 at +0, channel 1 at +8) that the PCI function maps at BAR4.
 *
 * The controller is the PciIdeHost of src/pci/piix-ide.ts: pass it as
 * installPcPlatform(board, { ide }) and the PCI function maps `bmdmaHandler`
 * at BAR4, claims the legacy ports from `channels[i].cmd/.ctl`, and calls
 * setBusMaster() when the guest toggles Bus Master Enable. Without the PCI
 * function (a bare ISA machine, tests), installLegacyIde() claims the legacy
 * ports instead; use one or the other, never both.
 */
import type { AccessSize, IoHandler } from '../../core/io.ts';
import type { IrqLine } from '../../core/irq.ts';
import type { GuestMemory } from '../../core/memory.ts';
import type { Board } from '../../core/board.ts';
import type { Region } from '../../core/bus.ts';
import { logger, RateLimited, type Logger } from '../../core/log.ts';
import type { Device, QuiesceResult, StateObject } from '../../core/device.ts';
import { StateError, StateReader } from '../../core/state.ts';
import { Channel, type ChannelState } from './channel.ts';
import { Drive, type DriveOptions, type DriveSaved } from './drive.ts';
import type { BlockBackend } from '../../block/backend.ts';
import { BMDMA_REGS, BusMaster, type BmSaved } from './bmdma.ts';
import type { PciIdeHost } from '../../pci/piix-ide.ts';
import { EV_BM_READ, EV_BM_WRITE, type DiskTrace } from '../../block/trace.ts';

export const IDE_PRIMARY_CMD = 0x1f0;
export const IDE_PRIMARY_CTRL = 0x3f6;
export const IDE_PRIMARY_IRQ = 14;
export const IDE_SECONDARY_CMD = 0x170;
export const IDE_SECONDARY_CTRL = 0x376;
export const IDE_SECONDARY_IRQ = 15;
export const BMDMA_BYTES = 16;

export interface IdeControllerOptions {
  memory: GuestMemory;
  /** INTRQ of the primary and secondary channel (ISA IRQ 14 and 15 in legacy mode). */
  irqs: [IrqLine, IrqLine];
  /** Up to four devices: primary master, primary slave, secondary master, secondary slave. */
  drives: (DriveOptions | null | undefined)[];
  log?: Logger;
  /** Record task-file, bus-master, PRD, backend and interrupt events (STUBDM_DISK_TRACE; block/trace.ts). */
  trace?: DiskTrace | null;
}

/**
 * Saved state (version 1): per channel the selected device, Device Control,
 * the pending interrupt and the bus-master engine (its three registers and
 * the transfer in flight); per slot 0-3 the drive (see DriveSaved).
 */
export type IdeSaved = {
  channels: (ChannelState & { bm: BmSaved })[];
  drives: DriveSaved[];
};

export class IdeController implements PciIdeHost, Device {
  readonly id = 'ide';
  readonly stateVersion = 1;
  readonly channels: [Channel, Channel];
  /** BMDMA_REGS storage: both channels' command, status and PRD table address. */
  private readonly bmRegs = BMDMA_REGS.storage();
  /** The table's handler argument: the engines by channel. */
  private readonly bms: readonly BusMaster[];
  /** The event trace, or null (then every trace point is this one check). */
  private readonly trace: DiskTrace | null;

  constructor(o: IdeControllerOptions) {
    const rl = new RateLimited(o.log ?? logger('ide'));
    // Serial numbers default to QEMU's QM0000n, n = slot + 1: unique per slot, as drivers expect.
    const d = (i: number): DriveOptions | null => {
      const c = o.drives[i];
      return c ? { ...c, serial: c.serial ?? `QM${String(i + 1).padStart(5, '0')}` } : null;
    };
    this.trace = o.trace ?? null;
    this.channels = [
      new Channel(o.memory, o.irqs[0], rl, [d(0), d(1)], this.bmRegs, 0, this.trace),
      new Channel(o.memory, o.irqs[1], rl, [d(2), d(3)], this.bmRegs, 1, this.trace),
    ];
    this.bms = [this.channels[0].bm, this.channels[1].bm];
  }

  /** Legacy controller on a board: IRQ 14/15 from the ISA lines. */
  static forBoard(board: Board, drives: (DriveOptions | null | undefined)[], log?: Logger, trace?: DiskTrace | null): IdeController {
    return new IdeController({ memory: board.memory, irqs: [board.isaIrq(IDE_PRIMARY_IRQ), board.isaIrq(IDE_SECONDARY_IRQ)], drives, log, trace });
  }

  /** Command block (8 ports) of channel 0 or 1. */
  commandBlock(ch: 0 | 1): IoHandler {
    return this.channels[ch].commandBlock;
  }

  /** Control block (1 port: Alternate Status / Device Control) of channel 0 or 1. */
  controlBlock(ch: 0 | 1): IoHandler {
    return this.channels[ch].controlBlock;
  }

  /** PCI command register Bus Master Enable changed. */
  setBusMaster(enabled: boolean): void {
    for (const c of this.channels) c.bm.busMaster = enabled;
  }

  /** The 16-byte BAR4 block (BMDMA_REGS): channel 0 registers at 0-7, channel 1 at 8-15. */
  readonly busMasterBlock: IoHandler = {
    read: (off: number, size: AccessSize) => {
      if (this.trace === null) return BMDMA_REGS.read(this.bms, this.bmRegs, off, size);
      const n = this.trace.access(EV_BM_READ, off, 0);
      const v = BMDMA_REGS.read(this.bms, this.bmRegs, off, size);
      this.trace.complete(n, v);
      return v;
    },
    write: (off: number, size: AccessSize, value: number) => {
      // Recorded first: a Start written here issues the backend request before the write returns.
      if (this.trace !== null) this.trace.access(EV_BM_WRITE, off, value);
      BMDMA_REGS.write(this.bms, this.bmRegs, off, size, value);
    },
  };

  /** Device slot 0-3 (primary master, primary slave, secondary master, secondary slave). */
  drive(index: number): Drive {
    if (!(Number.isInteger(index) && index >= 0 && index < 4)) throw new RangeError(`IDE slot ${index} out of range 0-3`);
    return this.channels[index >> 1].drives[(index & 1) as 0 | 1];
  }

  /**
   * Operator media change on a CD-ROM (QMP change/eject): the guest sees the
   * tray empty once, then UNIT ATTENTION, and a media event. Returns false
   * (and changes nothing) if the slot is not a CD-ROM, or if the guest locked
   * the tray and `force` is not set (the guest is told an eject was requested).
   */
  changeMedium(index: number, backend: BlockBackend | null, force = false): boolean {
    const d = this.drive(index);
    if (d.state.kind !== 'cdrom') return false;
    if (d.state.trayLocked && !force) {
      d.state.mediaEvent = 1; // eject requested (MMC-3 table 386)
      return false;
    }
    d.state.trayLocked = false;
    d.changeMedium(backend);
    return true;
  }

  /**
   * QMP's open-tray step (QEMU qmp_blockdev_open_tray): a tray the guest
   * locked stays shut unless `force`; the guest is told an eject was
   * requested either way (force also unlocks it, as a drive's manual eject
   * does). Returns false when the tray stayed shut. `index` must be a CD-ROM slot.
   */
  openTray(index: number, force: boolean): boolean {
    const d = this.drive(index);
    if (d.state.trayOpen) return true;
    if (d.state.trayLocked) {
      d.state.mediaEvent = 1; // eject requested (MMC-3 table 386)
      if (!force) return false;
      d.state.trayLocked = false;
    }
    d.moveTray(true);
    return true;
  }

  /**
   * Xen platform device unplug (the guest's PV drivers take the disks over):
   * every ATA disk leaves its slot, as in QEMU's pci_xen_ide_unplug; with
   * `aux` the primary master stays. CD-ROMs are never unplugged. The slot then
   * answers as an absent device. Returns how many disks went. The backend is
   * not closed: writes already acknowledged are on it, and the caller owns it.
   */
  unplugDisks(aux: boolean): number {
    let n = 0;
    for (let slot = aux ? 1 : 0; slot < 4; slot++) {
      const ch = this.channels[slot >> 1];
      const unit = (slot & 1) as 0 | 1;
      const old = ch.drives[unit];
      if (old.state.kind !== 'disk') continue;
      ch.dmaCancel(old); // a transfer in flight must not complete into the empty slot
      old.detach(); // nor a PIO read or flush (no IRQ14 from a drive that is gone)
      ch.drives[unit] = new Drive(ch, unit, { kind: 'none' });
      n++;
    }
    return n;
  }

  /** PciIdeHost name for the BAR4 block. */
  get bmdmaHandler(): IoHandler {
    return this.busMasterBlock;
  }

  // ---- Device: saved state ----

  /** Both channels and all four slots as plain data (fresh copies). */
  snapshot(): IdeSaved {
    return {
      channels: this.channels.map((c) => ({ unit: c.state.unit, devCtl: c.state.devCtl, irqPending: c.state.irqPending, bm: c.bm.save() })),
      drives: [0, 1, 2, 3].map((i) => this.drive(i).save()),
    };
  }

  /**
   * Load a snapshot taken on a machine with the same device kinds and media
   * in each slot (the backends are the machine's: the same images, the disks
   * copied at the moment of the snapshot). Every field is read and checked
   * first (StateError names the bad one; nothing changes then); then the
   * state is assigned, the requests that were in flight are issued again by
   * name (docs/architecture.md §8) and the interrupt lines follow the restored state.
   */
  restore(state: StateObject): void {
    const r = new StateReader(state, 'ide');
    const drives = r.objs('drives', 4).map((dr, i) => this.drive(i).parse(dr, i));
    const channels = r.objs('channels', 2).map((cr, ch) => {
      const c = Channel.parse(cr);
      const bm = BusMaster.parse(cr.obj('bm'));
      if (bm.unit >= 0 && drives[ch * 2 + bm.unit].kind === 'none') {
        throw new StateError(`ide.channels[${ch}].bm.unit: DMA for slot ${ch * 2 + bm.unit}, which is empty`);
      }
      return { c, bm };
    });
    // Everything checked: from here on nothing throws.
    channels.forEach(({ c, bm }, ch) => {
      const channel = this.channels[ch];
      Object.assign(channel.state, c);
      channel.bm.load(bm);
    });
    drives.forEach((d, i) => this.drive(i).load(d));
    for (const ch of this.channels) ch.syncIrq();
  }

  /**
   * Issue again the backend requests and DMA the restored state names. Runs
   * after every device is restored and the machine refreshed: a DMA walks its
   * PRD table only once the PCI function's Bus Master Enable is back.
   */
  resume(): void {
    for (const ch of this.channels) {
      for (const d of ch.drives) d.resumeIo();
      ch.bm.resume();
      ch.syncIrq();
    }
  }

  /**
   * Backend requests in flight are not waited for: the snapshot names each
   * one (a drive's `io`: the PIO read-ahead, a PIO write block, a flush, a CD
   * read; an engine's running DMA command) and restore() issues it again from
   * the start. That is safe because every such request is idempotent and its
   * effect reaches the guest only when it completes: the address and count
   * registers, BSY/DRQ, the interrupt and the bus-master status move at
   * completion, a re-issued write writes the same bytes (from the saved
   * buffer or from guest RAM, which travels with the machine) to the same
   * sectors, and a re-issued read fills the same buffer or guest pages with
   * the same data. The disk images must be copied at the moment of the
   * snapshot (a write in flight may or may not have reached them: either way
   * the re-issued one lands).
   */
  quiesce(): Promise<QuiesceResult> {
    return Promise.resolve('reissued');
  }
}

/** Claim the legacy ports (0x1F0-0x1F7, 0x3F6, 0x170-0x177, 0x376) on the board's port bus. */
export function installLegacyIde(board: Board, c: IdeController): Region[] {
  return [
    board.pio.add('ide0-cmd', IDE_PRIMARY_CMD, 8, c.commandBlock(0)),
    board.pio.add('ide0-ctrl', IDE_PRIMARY_CTRL, 1, c.controlBlock(0)),
    board.pio.add('ide1-cmd', IDE_SECONDARY_CMD, 8, c.commandBlock(1)),
    board.pio.add('ide1-ctrl', IDE_SECONDARY_CTRL, 1, c.controlBlock(1)),
  ];
}
