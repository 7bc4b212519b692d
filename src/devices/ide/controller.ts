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
import { Channel, type ChannelState } from './channel.ts';
import { Drive, type DriveOptions, type DriveState } from './drive.ts';
import type { BlockBackend } from '../../block/backend.ts';
import type { BmState } from './bmdma.ts';
import type { PciIdeHost } from '../../pci/piix-ide.ts';
import * as R from './regs.ts';

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
}

export interface IdeState {
  v: 1;
  channels: { channel: ChannelState; bm: BmState; drives: [DriveState, DriveState] }[];
}

export class IdeController implements PciIdeHost {
  readonly channels: [Channel, Channel];

  constructor(o: IdeControllerOptions) {
    const rl = new RateLimited(o.log ?? logger('ide'));
    // Serial numbers default to QEMU's QM0000n, n = slot + 1: unique per slot, as drivers expect.
    const d = (i: number): DriveOptions | null => {
      const c = o.drives[i];
      return c ? { ...c, serial: c.serial ?? `QM${String(i + 1).padStart(5, '0')}` } : null;
    };
    this.channels = [new Channel(o.memory, o.irqs[0], rl, [d(0), d(1)]), new Channel(o.memory, o.irqs[1], rl, [d(2), d(3)])];
  }

  /** Legacy controller on a board: IRQ 14/15 from the ISA lines. */
  static forBoard(board: Board, drives: (DriveOptions | null | undefined)[], log?: Logger): IdeController {
    return new IdeController({ memory: board.memory, irqs: [board.isaIrq(IDE_PRIMARY_IRQ), board.isaIrq(IDE_SECONDARY_IRQ)], drives, log });
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

  /** The 16-byte BAR4 block: channel 0 registers at 0-7, channel 1 at 8-15. */
  readonly busMasterBlock: IoHandler = {
    read: (off: number, size: AccessSize) => {
      let v = 0;
      for (let i = 0; i < size; i++) {
        const o = off + i;
        v |= (o < BMDMA_BYTES ? this.channels[o >> 3].bm.readByte(o & 7) : 0xff) << (8 * i);
      }
      return v >>> 0;
    },
    write: (off: number, size: AccessSize, value: number) => {
      if (size === 4 && (off & 7) === R.BM_PRDT) return this.channels[off >> 3].bm.writePrdt(value);
      for (let i = 0; i < size; i++) {
        const o = off + i;
        if (o < BMDMA_BYTES) this.channels[o >> 3].bm.writeByte(o & 7, (value >>> (8 * i)) & 0xff);
      }
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
      ch.drives[unit] = new Drive(ch, unit, { kind: 'none' });
      n++;
    }
    return n;
  }

  /** PciIdeHost name for the BAR4 block. */
  get bmdmaHandler(): IoHandler {
    return this.busMasterBlock;
  }

  /** A deep copy of the whole controller state: plain data (structured-clone / v8.serialize friendly). */
  snapshot(): IdeState {
    return structuredClone(this.state);
  }

  /**
   * Load a snapshot taken by snapshot() on a controller with the same device
   * kinds (backends are the caller's: the same images). Requests that were in
   * flight are issued again by name (docs/architecture.md §8); interrupt lines follow.
   */
  restore(snap: IdeState): void {
    if (snap?.v !== 1 || !Array.isArray(snap.channels) || snap.channels.length !== 2) throw new Error('IDE snapshot: unknown version or shape');
    snap.channels.forEach((c, i) => {
      const ch = this.channels[i];
      c.drives.forEach((d, u) => {
        if (d.v !== 1 || d.kind !== ch.drives[u].state.kind) throw new Error(`IDE snapshot: slot ${i * 2 + u} holds ${d.kind}, this machine ${ch.drives[u].state.kind}`);
        if (!(d.buf instanceof Uint8Array) || d.buf.length !== ch.drives[u].state.buf.length) throw new Error('IDE snapshot: bad drive buffer');
      });
    });
    snap.channels.forEach((c, i) => {
      const ch = this.channels[i];
      Object.assign(ch.state, structuredClone(c.channel));
      Object.assign(ch.bm.state, structuredClone(c.bm));
      for (const u of [0, 1] as const) {
        const d = ch.drives[u];
        const gen = d.state.gen;
        Object.assign(d.state, structuredClone(c.drives[u]));
        d.state.gen = gen + 1; // completions of anything issued before the restore are dropped
      }
    });
    for (const ch of this.channels) {
      for (const d of ch.drives) d.resumeIo();
      ch.bm.resume();
      ch.syncIrq();
    }
  }

  /** Plain-data snapshot (live references: copy before storing). */
  get state(): IdeState {
    return {
      v: 1,
      channels: this.channels.map((c) => ({ channel: c.state, bm: c.bm.state, drives: [c.drives[0].state, c.drives[1].state] as [DriveState, DriveState] })),
    };
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
