/**
 * The PC chipset as QEMU's xenfv machine lays it out (docs/xen-contract.md §14):
 *
 *   00:00.0 i440FX host bridge
 *   00:01.0 PIIX3 ISA bridge (+ 0xCF9 reset control, port 0x92)
 *   00:01.1 PIIX3 IDE (legacy ports fixed, BAR4 bus master)
 *   00:01.3 PIIX4 ACPI power management
 *   00:02.0 Xen platform device
 *   00:03.0+ whatever the machine adds (VGA, NIC) through addDevice()
 */
import type { Board } from '../core/board.ts';
import type { Device } from '../core/device.ts';
import { logger, type Logger } from '../core/log.ts';
import { PciBus, type PciFunction } from './bus.ts';
import { PCI_CLASS_DEVICE } from './config.ts';
import { I440fx } from './i440fx.ts';
import { CLASS_NETWORK_ETHERNET } from './ids.ts';
import { IDE_CMD_PORTS, IDE_CTL_PORTS, IDE_LEGACY, PiixIde, type PciIdeHost } from './piix-ide.ts';
import { Piix3Isa, PORT92 } from './piix3.ts';
import { Piix4Pm } from './piix4-pm.ts';
import { XenPlatform } from './xen-platform.ts';

export const DEV_HOST_BRIDGE = 0;
export const DEV_PIIX = 1;
export const FN_PIIX_ISA = 0;
export const FN_PIIX_IDE = 1;
export const FN_PIIX_PM = 3;
export const DEV_XEN_PLATFORM = 2;
/** First slot for devices the machine adds (xenfv puts -device VGA/NIC from here). */
export const DEV_FIRST_FREE = 3;

export interface PcPlatformOptions {
  /** The IDE controller behind 00:01.1; without it the function exists but decodes nothing. */
  ide?: PciIdeHost;
  /** Xen platform unplug request (mask of UNPLUG_* in xen-platform.ts). */
  onUnplug?: (mask: number) => void;
  /** Guest RAM size, reported at i440FX 0x57 as QEMU does. */
  ramBytes?: number;
  /** Set false for a machine without the Xen platform device (xen_platform_pci=0). */
  xenPlatform?: boolean;
  /** Claim port 0x92 (fast reset). Default true. */
  port92?: boolean;
  /** Legacy ISA devices present, reported by PIIX4 DEVRESx. */
  com1?: boolean;
  com2?: boolean;
  lpt1?: boolean;
  log?: Logger;
}

export interface PcPlatform {
  readonly bus: PciBus;
  readonly hostBridge: I440fx;
  readonly isa: Piix3Isa;
  readonly ide: PiixIde;
  readonly pm: Piix4Pm;
  readonly xenPlatform: XenPlatform | null;
  /** Put a function at 00:device.fn (device defaults to the first free slot from 3). Returns the device number. */
  addDevice(f: PciFunction, device?: number, fn?: number): number;
  /**
   * Take every emulated Ethernet function (class 0x0200) off the bus, as QEMU
   * does for the Xen platform device's "unplug NICs" bit; returns how many.
   * The machine calls it from onUnplug (the NIC's own teardown is its detach()).
   */
  unplugNics(): number;
  /**
   * The bus and every function installPcPlatform built, in a stable order
   * (bus first). Functions added with addDevice are their owners' devices.
   */
  readonly devices: readonly Device[];
  /**
   * After every device (these and the ones added with addDevice) is
   * restored: claim BAR regions and re-derive what config decides
   * (PciBus.refresh). Before this the ioreq server must not run.
   */
  refresh(): void;
}

export function installPcPlatform(board: Board, opts: PcPlatformOptions = {}): PcPlatform {
  // Devices are children with `dev`: `c` (the component, "pci") is bound once; pino
  // would repeat a re-bound key in every line.
  const log = opts.log ?? logger('pci');
  const bus = new PciBus(board, log);
  const hostBridge = new I440fx({ ramBytes: opts.ramBytes });
  const isa = new Piix3Isa(board, log.child({ dev: 'piix3' }));
  const ide = new PiixIde(opts.ide ?? null);
  const pm = new Piix4Pm(board, { com1: opts.com1, com2: opts.com2, lpt1: opts.lpt1 }, log.child({ dev: 'piix4-pm' }));
  const xen =
    opts.xenPlatform === false ? null : new XenPlatform(board, { onUnplug: opts.onUnplug }, log.child({ dev: 'xen-platform' }));

  bus.add(DEV_HOST_BRIDGE, 0, hostBridge);
  bus.add(DEV_PIIX, FN_PIIX_ISA, isa);
  bus.add(DEV_PIIX, FN_PIIX_IDE, ide);
  bus.add(DEV_PIIX, FN_PIIX_PM, pm);
  if (xen) bus.add(DEV_XEN_PLATFORM, 0, xen);

  bus.setResetControl(isa.resetControl);
  bus.installConfigPorts();
  if (opts.port92 !== false) board.pio.add('port92', PORT92, 1, isa.port92Handler);

  if (opts.ide) {
    opts.ide.channels.forEach((ch, i) => {
      const at = IDE_LEGACY[i];
      board.pio.add(`ide${i}-cmd`, at.cmd, IDE_CMD_PORTS, ch.cmd);
      board.pio.add(`ide${i}-ctl`, at.ctl, IDE_CTL_PORTS, ch.ctl);
    });
  }

  board.pci = bus;

  return {
    bus,
    hostBridge,
    isa,
    ide,
    pm,
    xenPlatform: xen,
    addDevice(f: PciFunction, device?: number, fn = 0): number {
      const d = device ?? bus.freeDevice(DEV_FIRST_FREE);
      if (d < 0) throw new Error(`no free PCI slot for ${f.name}`);
      bus.add(d, fn, f);
      return d;
    },
    unplugNics(): number {
      let n = 0;
      for (let d = 0; d < 32; d++) {
        for (let fn = 0; fn < 8; fn++) {
          const f = bus.get(d, fn);
          if (f && f.config.get16(PCI_CLASS_DEVICE) === CLASS_NETWORK_ETHERNET) {
            bus.remove(d, fn);
            n++;
          }
        }
      }
      return n;
    },
    devices: xen ? [bus, hostBridge, isa, ide, pm, xen] : [bus, hostBridge, isa, ide, pm],
    refresh(): void {
      bus.refresh();
    },
  };
}
