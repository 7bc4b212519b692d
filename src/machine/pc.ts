/**
 * The PC that `-machine xenfv` guests see, assembled from the parsed argv:
 * the PCI platform (i440FX, PIIX3 ISA/IDE, PIIX4 PM, Xen platform device)
 * and the IDE drives on their block backends. UARTs, QMP and the ioreq
 * server are wired by src/main.ts.
 */
import type { Board } from '../core/board.ts';
import type { Logger } from '../core/log.ts';
import { openBlockBackend, type BlockBackend, type CacheMode } from '../block/index.ts';
import { IdeController, type DriveOptions } from '../devices/ide/index.ts';
import { installPcPlatform, type PcPlatform } from '../pci/platform.ts';
import type { PciIdeHost } from '../pci/piix-ide.ts';
import type { DriveConfig, StubdmConfig } from '../cli/config.ts';

export interface Pc {
  readonly platform: PcPlatform;
  readonly ide: IdeController;
  readonly backends: readonly BlockBackend[];
  /** Flush and close every backend (teardown). */
  close(): Promise<void>;
}

/** QEMU's directsync/unsafe have no separate meaning for a raw file here: map to the nearest honest mode. */
function cacheMode(c: DriveConfig['cache']): CacheMode {
  if (c === 'none' || c === 'directsync') return 'none';
  if (c === 'writethrough') return 'writethrough';
  return 'writeback';
}

/** The IDE controller as the PIIX3 IDE function wants it. */
export function pciIdeHost(ide: IdeController): PciIdeHost {
  return {
    bmdmaHandler: ide.busMasterBlock,
    channels: [
      { cmd: ide.commandBlock(0), ctl: ide.controlBlock(0) },
      { cmd: ide.commandBlock(1), ctl: ide.controlBlock(1) },
    ],
    setBusMaster: (enabled) => ide.setBusMaster(enabled),
  };
}

export async function buildPc(board: Board, cfg: StubdmConfig, log: Logger): Promise<Pc> {
  const drives: (DriveOptions | null)[] = [null, null, null, null];
  const backends: BlockBackend[] = [];
  for (const d of cfg.drives) {
    if (d.index < 0 || d.index > 3) continue; // the CLI already refused these; IDE has four places
    let backend: BlockBackend | null = null;
    if (d.file !== null) {
      backend = await openBlockBackend({
        path: d.file,
        format: d.format,
        readOnly: d.readonly || d.media === 'cdrom',
        cache: cacheMode(d.cache),
        log: log.child({ c: 'block', drive: d.index }),
      });
      backends.push(backend);
    }
    drives[d.index] = { kind: d.media === 'cdrom' ? 'cdrom' : 'disk', backend };
  }
  const ide = IdeController.forBoard(board, drives, log.child({ c: 'ide' }));
  const platform = installPcPlatform(board, {
    ide: pciIdeHost(ide),
    ramBytes: cfg.ramMiB * 1024 * 1024,
    xenPlatform: cfg.machine.xenPlatform,
    com1: cfg.serials.some((s) => s.index === 0),
    com2: cfg.serials.some((s) => s.index === 1),
    onUnplug: (mask) => log.info({ mask }, 'guest asked the Xen platform device to unplug emulated devices'),
    log: log.child({ c: 'pci' }),
  });
  return {
    platform,
    ide,
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
