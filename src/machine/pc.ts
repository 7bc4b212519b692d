/**
 * The PC that `-machine xenfv` guests see, assembled from the parsed argv:
 * the PCI platform (i440FX, PIIX3 ISA/IDE, PIIX4 PM, Xen platform device)
 * and the IDE drives on their block backends. UARTs, QMP and the ioreq
 * server are wired by src/main.ts.
 */
import type { Board } from '../core/board.ts';
import type { Logger } from '../core/log.ts';
import type { BlockBackend } from '../block/index.ts';
import { IdeController, openIdeDrives } from '../devices/ide/index.ts';
import { installCmos, type CmosNvram } from '../devices/cmos/index.ts';
import { UNPLUG_AUX_IDE_DISKS, UNPLUG_IDE_DISKS, UNPLUG_NICS } from '../pci/xen-platform.ts';
import { installPcPlatform, type PcPlatform } from '../pci/platform.ts';
import type { StubdmConfig } from '../cli/config.ts';

/** End of RAM below 4 GiB by default (xen/include/public/hvm/e820.h HVM_BELOW_4G_RAM_END). */
const HVM_BELOW_4G_RAM_END = 0xf0000000;

export interface Pc {
  readonly platform: PcPlatform;
  readonly ide: IdeController;
  readonly cmos: CmosNvram;
  readonly backends: readonly BlockBackend[];
  /** Flush and close every backend (teardown). */
  close(): Promise<void>;
}

export async function buildPc(board: Board, cfg: StubdmConfig, log: Logger): Promise<Pc> {
  const drives = await openIdeDrives(cfg.drives, log.child({ c: 'block' }));
  const backends = drives.flatMap((d) => (d?.backend ? [d.backend] : []));
  const ide = IdeController.forBoard(board, drives, log.child({ c: 'ide' }));
  const platform = installPcPlatform(board, {
    ide, // IdeController is a PciIdeHost: BAR4 block, legacy ports, bus-master enable
    ramBytes: cfg.ramMiB * 1024 * 1024,
    xenPlatform: cfg.machine.xenPlatform,
    com1: cfg.serials.some((s) => s.index === 0),
    com2: cfg.serials.some((s) => s.index === 1),
    // The guest's PV drivers take over: emulated disks (and NICs) leave the bus.
    // Called again on every unplug write, so it must be idempotent (it is).
    onUnplug: (mask) => {
      if (mask & (UNPLUG_IDE_DISKS | UNPLUG_AUX_IDE_DISKS)) {
        const n = ide.unplugDisks((mask & UNPLUG_IDE_DISKS) === 0);
        if (n > 0) log.info({ mask, disks: n }, 'emulated IDE disks unplugged for PV drivers');
      }
      if (mask & UNPLUG_NICS) platform.unplugNics();
    },
    log: log.child({ c: 'pci' }),
  });
  // Xen forwards CMOS index >= 14 (the NVRAM): memory sizes, boot order, disk hints for SeaBIOS.
  const ramBytes = cfg.ramMiB * 1024 * 1024;
  const lowRamBytes = Math.min(ramBytes, cfg.machine.maxRamBelow4g ?? HVM_BELOW_4G_RAM_END);
  const cmos = installCmos(board, {
    lowRamBytes,
    highRamBytes: ramBytes - lowRamBytes,
    vcpus: cfg.vcpus,
    bootOrder: cfg.bootOrder,
    disks: [0, 1, 2, 3].map((i) => {
      const s = ide.drive(i).state;
      return s.kind === 'disk' ? { cylinders: s.cylinders, heads: s.heads, sectors: s.sectors } : null;
    }),
  });
  return {
    platform,
    ide,
    cmos,
    backends,
    async close() {
      for (const b of backends) {
        try {
          await b.flush();
          await b.close();
        } catch (e) {
          log.error({ err: String(e) }, 'closing a block backend failed');
        }
      }
    },
  };
}
