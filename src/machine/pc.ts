/**
 * The PC that `-machine xenfv` guests see, assembled from the parsed argv:
 * the PCI platform (i440FX, PIIX3 ISA/IDE, PIIX4 PM, Xen platform device),
 * the IDE drives on their block backends, CMOS NVRAM, the i8042 and the
 * UARTs on their character backends. This is the one place devices are
 * built; the machine owns them in its DeviceRegistry, which saves and
 * restores them as one container (registry.ts has the restore order). QMP
 * and the ioreq server are wired by src/main.ts.
 */
import type { Board } from '../core/board.ts';
import type { Logger } from '../core/log.ts';
import type { BlockBackend } from '../block/index.ts';
import { IdeController, openIdeDrives, type DriveOptions } from '../devices/ide/index.ts';
import { IdeMedia } from './media.ts';
import { stubdomCacheMode } from '../block/index.ts';
import { installCmos, type CmosNvram } from '../devices/cmos/index.ts';
import { installI8042, type I8042 } from '../devices/i8042/index.ts';
import { installUart, type Uart16550 } from '../devices/uart/index.ts';
import type { CharBackend } from '../chardev/types.ts';
import { StateReader } from '../core/state.ts';
import { DeviceRegistry } from './registry.ts';
import { createE1000, type E1000 } from '../devices/e1000/index.ts';
import type { PacketBackend } from '../net/backend.ts';
import type { NetTrace } from '../net/trace.ts';
import type { DiskTrace } from '../block/trace.ts';
import type { DeviceConfig } from '../cli/config.ts';
import { UNPLUG_AUX_IDE_DISKS, UNPLUG_IDE_DISKS, UNPLUG_NICS } from '../pci/xen-platform.ts';
import { installPcPlatform, type PcPlatform } from '../pci/platform.ts';
import type { StubdmConfig } from '../cli/config.ts';
import { DisplayHub, VgaPci, encodePng, encodePpm } from '../devices/vga/index.ts';
import type { VramProvider } from '../core/vram.ts';

/** End of RAM below 4 GiB by default (xen/include/public/hvm/e820.h HVM_BELOW_4G_RAM_END). */
const HVM_BELOW_4G_RAM_END = 0xf0000000;

export interface Pc {
  readonly platform: PcPlatform;
  readonly ide: IdeController;
  readonly cmos: CmosNvram;
  readonly i8042: I8042;
  /** One per -serial, in argv order. */
  readonly uarts: readonly Uart16550[];
  /** One per -device e1000 with a netdev, in argv order. */
  readonly nics: readonly E1000[];
  /** -device VGA (or -vga std): the display card, null without one. */
  readonly vga: VgaPci | null;
  /** The VGA's picture, shared by screendump and VNC viewers (null without a VGA). */
  readonly display: DisplayHub | null;
  /** The screen as PPM or PNG (QMP screendump), null without a display. */
  screendump(format: 'ppm' | 'png'): Buffer | null;
  /** The open block backends (QMP media changes keep it current). */
  readonly backends: readonly BlockBackend[];
  /** The IDE drives as QMP sees them: query-block, eject, blockdev-change-medium. */
  readonly media: IdeMedia;
  /** Every device, by stable id (save/restore). */
  readonly registry: DeviceRegistry;
  /** Settle backend I/O and return every device's state as one container (call with the vCPUs paused). */
  save(): Promise<Uint8Array>;
  /** Load a container saved by a machine of the same configuration, before the ioreq server runs. Throws StateError. */
  restore(blob: Uint8Array): void;
  /** Flush and close every backend (teardown). */
  close(): Promise<void>;
}

/** Firmware images main.ts read for the machine, and platform services the host offers. */
export interface Firmware {
  /** The VGA BIOS for the VGA's ROM BAR (Debian's vgabios-stdvga.bin); null: a VGA without ROM. */
  readonly vgaBios?: Uint8Array | null;
  /** VRAM as guest pages (Host.vram); absent: the VGA keeps VRAM itself. */
  readonly vram?: VramProvider | null;
  /** The guest's memory comes from a saved image (-incoming): VRAM pages are not populated again. */
  readonly restoring?: boolean;
  /** The NIC event trace every e1000 records into (STUBDM_NET_TRACE); absent or null: none. */
  readonly netTrace?: NetTrace | null;
  /** The disk event trace the IDE controller and its file backends record into (STUBDM_DISK_TRACE); absent or null: none. */
  readonly diskTrace?: DiskTrace | null;
}

/** A NIC from the argv with its opened packet backend (src/net openNetwork). */
export interface NicWiring {
  readonly nic: DeviceConfig;
  readonly backend: PacketBackend;
  /** Its option ROM (machine/romfile.ts loadRomfile), served through the ROM BAR; absent or null: none. */
  readonly rom?: Uint8Array | null;
}

/**
 * Build the PC. `serials` are the opened backends of cfg.serials, in the
 * same order, and `nics` the NICs with their opened backends (main.ts opens
 * both: they are the operator's files, ptys and taps). The NIC backends are
 * the machine's from here on: close() closes them.
 */
export async function buildPc(
  board: Board,
  cfg: StubdmConfig,
  log: Logger,
  serials: readonly CharBackend[] = [],
  nicWiring: readonly NicWiring[] = [],
  firmware: Firmware = {},
  /** The four IDE slots already opened (the fuzzer's in-memory disks); else opened from cfg.drives. */
  openedDrives?: readonly (DriveOptions | null)[],
): Promise<Pc> {
  if (serials.length !== 0 && serials.length !== cfg.serials.length) {
    throw new Error(`${cfg.serials.length} -serial options but ${serials.length} backends`);
  }
  // In a stub domain writes must leave its page cache before the guest hears they are done.
  const driveCfgs = cfg.stubdom && !cfg.sim ? cfg.drives.map((d) => ({ ...d, cache: stubdomCacheMode(d.cache) })) : cfg.drives;
  const diskTrace = firmware.diskTrace ?? null;
  const drives = openedDrives !== undefined ? [...openedDrives] : await openIdeDrives(driveCfgs, log.child({ c: 'block' }), diskTrace);
  const backends = drives.flatMap((d) => (d?.backend ? [d.backend] : []));
  const ide = IdeController.forBoard(board, drives, log.child({ c: 'ide' }), diskTrace);
  const media = new IdeMedia(
    ide,
    cfg.drives,
    [0, 1, 2, 3].map((i) => cfg.drives.find((d) => d.index === i)?.file ?? null),
    backends,
    log.child({ c: 'ide' }),
  );
  const platform = installPcPlatform(board, {
    ide, // IdeController is a PciIdeHost: BAR4 block, legacy ports, bus-master enable
    ramBytes: cfg.ramMiB * 1024 * 1024,
    xenPlatform: cfg.machine.xenPlatform,
    com1: cfg.serials.some((s) => s.index === 0),
    com2: cfg.serials.some((s) => s.index === 1),
    // The guest's PV drivers take over: emulated disks (and NICs) leave the bus.
    // Called again on every unplug write, so it must be idempotent (it is).
    onUnplug: (mask) => unplug(mask),
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
  // Xen does not emulate the keyboard controller: SeaBIOS's PS/2 init and Linux's reboot need it.
  const i8042 = installI8042(board, log.child({ c: 'i8042' }));
  const uarts = serials.map((b, i) => installUart(board, cfg.serials[i].index, b));
  // -device functions after the chipset, from 00:03.0 in argv order, as QEMU's xenfv places them:
  // the VGA first when it comes before the first NIC (libxl puts it there).
  const vgaCfg = cfg.devices.find((d) => d.driver === 'VGA') ?? null;
  const firstNic = cfg.devices.findIndex((d) => d.driver === 'e1000');
  let vga: VgaPci | null = null;
  const addVga = (): void => {
    if (!vgaCfg) return;
    vga = new VgaPci({
      vgamemMb: vgaCfg.vgamemMb,
      rom: firmware.vgaBios ?? null,
      vram: firmware.vram ?? null,
      restoring: firmware.restoring === true,
      log: log.child({ c: 'vga' }),
    });
    vga.installLegacy(board);
    platform.addDevice(vga);
  };
  if (vgaCfg && (firstNic < 0 || cfg.devices.indexOf(vgaCfg) < firstNic)) addVga();
  // Each NIC with its option ROM (iPXE) if it has one: hvmloader places the ROM BAR, SeaBIOS runs it (PXE).
  const nics = nicWiring.map((w, i) => {
    if (w.nic.driver !== 'e1000') throw new Error(`-device ${w.nic.driver}: not a NIC stubdm emulates`);
    const nic = createE1000({
      memory: board.memory,
      clock: board.clock,
      backend: w.backend,
      mac: w.nic.mac ?? defaultMac(i),
      index: i,
      rom: w.rom ?? undefined,
      log: log.child({ c: 'e1000', nic: w.nic.id ?? i }),
      trace: firmware.netTrace ?? null,
    });
    platform.addDevice(nic);
    return nic;
  });
  if (vgaCfg && !vga) addVga();
  // The renderer costs nothing until a screendump (or a viewer) asks for a picture.
  const display = vga ? new DisplayHub((vga as VgaPci).core) : null;

  function unplug(mask: number): void {
    if (mask & (UNPLUG_IDE_DISKS | UNPLUG_AUX_IDE_DISKS)) {
      const n = ide.unplugDisks((mask & UNPLUG_IDE_DISKS) === 0);
      if (n > 0) log.info({ mask, disks: n }, 'emulated IDE disks unplugged for PV drivers');
    }
    if (mask & UNPLUG_NICS) platform.unplugNics();
  }

  const registry = new DeviceRegistry({
    // The device tree as the guest left it: what its PV drivers unplugged is gone again
    // before any device is restored (IDE then finds the same empty slots it saved).
    rebuild: (records) => {
      const xp = records.get('pci.xen-platform');
      if (xp) unplug(new StateReader(xp.state, 'pci.xen-platform').u('unplugged', 16));
    },
    refresh: () => platform.refresh(),
  });
  for (const d of platform.devices) registry.add(d);
  registry.add(ide);
  registry.add(cmos);
  registry.add(i8042);
  for (const u of uarts) registry.add(u);
  for (const n of nics) registry.add(n);
  if (vga) registry.add(vga);

  return {
    platform,
    ide,
    cmos,
    i8042,
    uarts,
    nics,
    vga,
    backends,
    media,
    registry,
    display,
    screendump(format) {
      if (!display) return null;
      display.refresh(); // brings the shared framebuffer up to date; viewers get the damage
      const { fb, width, height } = display;
      return format === 'png' ? encodePng(fb, width, height) : encodePpm(fb, width, height);
    },
    save: () => registry.save(),
    restore: (blob) => registry.restore(blob),
    async close() {
      (vga as VgaPci | null)?.backing?.close();
      for (const b of backends) {
        try {
          await b.flush();
          await b.close();
        } catch (e) {
          log.error({ err: String(e) }, 'closing a block backend failed');
        }
      }
      for (const w of nicWiring) {
        try {
          await w.backend.close();
        } catch (e) {
          log.error({ err: String(e), netdev: w.backend.name }, 'closing a network backend failed');
        }
      }
    },
  };
}

/** QEMU's default MAC for NIC i (52:54:00:12:34:56 + i); libxl always passes mac= anyway. */
function defaultMac(i: number): string {
  return `52:54:00:12:34:${(0x56 + i).toString(16).padStart(2, '0')}`;
}
