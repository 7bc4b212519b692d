/**
 * 00:01.1 Intel 82371SB PIIX3 IDE: the PCI side only. The ATA/ATAPI channels
 * and the bus-master DMA engine belong to the IDE controller
 * (src/devices/ide), which plugs in through PciIdeHost.
 *
 * Prog-if 0x80 = "bus master capable, both channels in compatibility mode":
 * the command/control blocks sit at the fixed ISA addresses (not BARs) and
 * interrupt on ISA IRQ 14/15, so BAR0-3 are hard-wired 0 and the interrupt
 * pin is 0. BAR4 (BMIBA) holds the 16-byte bus-master register block.
 * Like QEMU, the legacy ports are decoded from the start: hvmloader sets the
 * IDETIM decode-enable bits, but nothing earlier (SeaBIOS under plain QEMU)
 * relies on them, so they do not gate decoding.
 */
import type { Device, StateObject } from '../core/device.ts';
import type { IoHandler } from '../core/io.ts';
import { StateReader } from '../core/state.ts';
import { CMD_MASTER, PciConfig, STATUS_DEVSEL_MEDIUM, STATUS_FAST_BACK } from './config.ts';
import type { PciFunction } from './bus.ts';
import { CLASS_STORAGE_IDE, DEVICE_PIIX3_IDE, QEMU_SUBSYSTEM_ID, QEMU_SUBSYSTEM_VENDOR, VENDOR_INTEL } from './ids.ts';

/**
 * What the IDE controller gives the PCI function (src/machine/pc.ts adapts
 * src/devices/ide's IdeController to it). installPcPlatform maps the legacy
 * handlers at the fixed ports itself: do not also call installLegacyIde().
 */
export interface PciIdeHost {
  /**
   * The 16 bus-master ports behind BAR4 (PIIX BMIBA layout): offset 0-7
   * primary channel (BMICOM 0, BMISTA 2, BMIDTP 4-7), 8-15 secondary.
   * Mapped only while the guest has I/O decoding on and BAR4 programmed.
   */
  readonly bmdmaHandler: IoHandler;
  /** Per channel (0 primary at 0x1F0/0x3F6, 1 secondary at 0x170/0x376): command block (8 ports) and control block (1 port). */
  readonly channels: readonly [PciIdeChannelPorts, PciIdeChannelPorts];
  /**
   * PCI command bit 2 (bus master enable) changed. While false the controller
   * must not move DMA data. Called once when the function is added, with the
   * reset value (false), then on every change.
   */
  setBusMaster(enabled: boolean): void;
}

export interface PciIdeChannelPorts {
  readonly cmd: IoHandler;
  readonly ctl: IoHandler;
}

/** Fixed compatibility-mode addresses (ATA/ATAPI-4 annex; PIIX3 §2.6). */
export const IDE_LEGACY: readonly { readonly cmd: number; readonly ctl: number; readonly irq: number }[] = [
  { cmd: 0x1f0, ctl: 0x3f6, irq: 14 },
  { cmd: 0x170, ctl: 0x376, irq: 15 },
];
export const IDE_CMD_PORTS = 8;
export const IDE_CTL_PORTS = 1;

export const PIIX_IDE_PROG_IF = 0x80;
export const PIIX_IDE_BMIBA = 4; // BAR4
export const PIIX_IDE_BM_SIZE = 16;
// 82371SB §2.6 function 1 registers.
export const PIIX_IDETIM_PRI = 0x40; // 16 bits; bit 15 = IDE decode enable
export const PIIX_IDETIM_SEC = 0x42;
export const PIIX_SIDETIM = 0x44;
export const IDETIM_DECODE_ENABLE = 0x8000;
/** IDETIM bits 11:10 are reserved. */
export const IDETIM_MASK = 0xf3ff;

/**
 * Device 'pci.piix-ide': the PCI side's state is its config space (BMIBA,
 * command, IDETIM); the channels and bus-master engine are the IDE
 * controller's own device. PciBus.refresh() tells the controller the
 * restored bus-master bit (commandChanged).
 */
export class PiixIde implements PciFunction, Device {
  readonly id = 'pci.piix-ide';
  readonly stateVersion = 1;
  readonly name = 'piix3-ide';
  readonly config = new PciConfig({
    vendor: VENDOR_INTEL,
    device: DEVICE_PIIX3_IDE,
    revision: 0x00,
    classCode: CLASS_STORAGE_IDE,
    progIf: PIIX_IDE_PROG_IF,
    subsystemVendor: QEMU_SUBSYSTEM_VENDOR,
    subsystem: QEMU_SUBSYSTEM_ID,
    status: STATUS_FAST_BACK | STATUS_DEVSEL_MEDIUM, // QEMU piix_ide realize: 0x0280
    bars: [{ index: PIIX_IDE_BMIBA, kind: 'io', size: PIIX_IDE_BM_SIZE }],
  });

  constructor(readonly host: PciIdeHost | null) {
    const c = this.config;
    c.mask16(PIIX_IDETIM_PRI, IDETIM_MASK);
    c.mask16(PIIX_IDETIM_SEC, IDETIM_MASK);
    c.mask8(PIIX_SIDETIM, 0xff);
  }

  barHandler(i: number): IoHandler | null {
    return i === PIIX_IDE_BMIBA && this.host ? this.host.bmdmaHandler : null;
  }

  attach(): void {
    this.host?.setBusMaster((this.config.command & CMD_MASTER) !== 0);
  }

  commandChanged(cmd: number, old: number): void {
    if ((cmd ^ old) & CMD_MASTER) this.host?.setBusMaster((cmd & CMD_MASTER) !== 0);
  }

  snapshot(): StateObject {
    return { config: this.config.snapshot() };
  }

  restore(state: StateObject): void {
    this.config.restore(this.config.readChecked(new StateReader(state, this.id)));
  }
}
