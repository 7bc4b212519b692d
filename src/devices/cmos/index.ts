/**
 * The CMOS NVRAM bytes above the MC146818 clock (index 0x0e-0x7f) at ports
 * 0x70/0x71.
 *
 * Xen emulates the clock itself (xen/arch/x86/hvm/rtc.c handle_rtc_io) but
 * only for indices below RTC_CMOS_SIZE (14): selecting a higher index, and
 * reading or writing its data byte, is "unhandleable" there and comes to the
 * ioreq server that claims 0x70-0x71. QEMU answers those from its mc146818
 * NVRAM, and firmware relies on it: without it SeaBIOS reads 0xff and
 * reports "Bad floppy type 15", has no boot order (boot=d cannot boot the
 * CD-ROM: it comes from 0x3d/0x38) and no disk translation hints (0x39);
 * Linux reads the century at 0x32 (FADT century index).
 *
 * Layout: the IBM AT / Bochs-BIOS CMOS map that QEMU's pc_cmos_init fills
 * (register addresses below, next to what they hold). Nothing here is on a
 * hot path: firmware reads a few bytes at boot.
 *
 * Saved state: the index register and the 128 NVRAM bytes, all of what
 * stubdm holds here. The MC146818 clock itself (registers 0-13: time,
 * alarm, rates, UIP) is emulated by Xen (xen/arch/x86/hvm/rtc.c); its time
 * base and alarm travel in Xen's own HVM save record (RTC), not in
 * device-model state. Bytes 0-13 of the array are never read or written
 * here (those indices read 0xff and ignore writes), so whatever a snapshot
 * holds there is restored as it is and stays unreachable.
 */
import type { Board } from '../../core/board.ts';
import type { AccessSize, IoHandler } from '../../core/io.ts';
import type { Device, StateObject } from '../../core/device.ts';
import { StateReader } from '../../core/state.ts';

export const CMOS_PORT = 0x70;
export const CMOS_PORTS = 2;
/** First index Xen forwards (xen hvm/rtc.c RTC_CMOS_SIZE). */
export const CMOS_FIRST_NVRAM = 0x0e;
/** Bytes behind the index (a 7-bit index). */
export const CMOS_SIZE = 128;
const INDEX_MASK = 0x7f; // bit 7 of the index write is the NMI mask, not part of the index

// CMOS registers (IBM AT technical reference / Bochs BIOS CMOS map)
export const CMOS_SHUTDOWN_STATUS = 0x0f;
export const CMOS_FLOPPY_TYPES = 0x10; // high nibble drive A, low drive B; 0 = none
export const CMOS_DISK_TYPES = 0x12; // high nibble disk 0, low disk 1; 0xf = see 0x19/0x1a
export const CMOS_EQUIPMENT = 0x14; // bit 1 FPU, bit 2 PS/2 mouse, bits 6-7 floppies - 1, bit 0 floppies present
export const CMOS_BASE_MEM_LO = 0x15; // KiB below 1 MiB (640)
export const CMOS_EXT_MEM_LO = 0x17; // KiB from 1 MiB, capped at 0xffff (also at 0x30)
export const CMOS_DISK0_EXT_TYPE = 0x19; // 47 = user-defined, parameters at 0x1b
export const CMOS_DISK1_EXT_TYPE = 0x1a; // 47 = user-defined, parameters at 0x24
export const CMOS_DISK0_PARAMS = 0x1b;
export const CMOS_DISK1_PARAMS = 0x24;
export const CMOS_EXT_MEM2_LO = 0x30;
export const CMOS_CENTURY = 0x32; // BCD (hvmloader's FADT points Linux here)
export const CMOS_MEM_ABOVE_16M_LO = 0x34; // 64 KiB units from 16 MiB, capped at 0xffff
export const CMOS_BOOT_FLAG1 = 0x38; // bits 4-7 third boot device, bit 0 skip the floppy signature check
export const CMOS_DISK_TRANSLATION = 0x39; // 2 bits per IDE drive 0-3: 0 none, 1 LBA, 2 large, 3 r-echs
export const CMOS_BOOT_FLAG2 = 0x3d; // bits 0-3 first boot device, bits 4-7 second
export const CMOS_MEM_ABOVE_4G = 0x5b; // 3 bytes, 64 KiB units
export const CMOS_NR_CPUS_MINUS_1 = 0x5f;

const USER_DISK_TYPE = 47;
const TRANSLATION_NONE = 0;
const TRANSLATION_LBA = 1;
const TRANSLATION_LARGE = 2;
/** Boot device codes in 0x3d/0x38 (SeaBIOS boot_init, Bochs BIOS): `-boot order=` letters. */
const BOOT_CODES: Readonly<Record<string, number>> = { a: 1, c: 2, d: 3, n: 4 };

export interface DiskGeometry {
  cylinders: number;
  heads: number;
  sectors: number;
}

export interface CmosOptions {
  /** Guest RAM below 4 GiB and above it, in bytes. */
  lowRamBytes: number;
  highRamBytes: number;
  vcpus: number;
  /** QEMU -boot order letters ('c', 'cda', ...). */
  bootOrder: string;
  /** IDE positions 0-3: a hard disk's default geometry, or null (no disk / CD-ROM). */
  disks: readonly (DiskGeometry | null)[];
  /** The year the guest starts in, for the century byte (default: the host's). */
  year?: number;
}

/** What snapshot() returns (state version 1). */
export interface CmosSnapshot extends StateObject {
  /** The last index written to 0x70, without the NMI-mask bit (0-127). */
  index: number;
  /** CMOS_SIZE bytes; 0-13 are never used here (Xen owns them). */
  nvram: Uint8Array;
}

function bcd(n: number): number {
  return ((Math.floor(n / 10) % 10) << 4) | n % 10;
}

export class CmosNvram implements IoHandler, Device {
  readonly id = 'cmos';
  readonly stateVersion = 1;
  private index = 0;
  private nvram: Uint8Array = new Uint8Array(CMOS_SIZE);

  constructor(opts: CmosOptions) {
    const d = this.nvram;
    const set16 = (reg: number, v: number): void => {
      d[reg] = v & 0xff;
      d[reg + 1] = (v >>> 8) & 0xff;
    };
    d[CMOS_FLOPPY_TYPES] = 0; // -nodefaults: no floppy
    d[CMOS_EQUIPMENT] = 0x02 | 0x04; // FPU, PS/2 mouse; no floppies
    set16(CMOS_BASE_MEM_LO, 640);
    const KiB = 1024;
    const MiB = 1024 * KiB;
    const ext = Math.min(0xffff, Math.max(0, Math.floor((opts.lowRamBytes - MiB) / KiB)));
    set16(CMOS_EXT_MEM_LO, ext);
    set16(CMOS_EXT_MEM2_LO, ext);
    set16(CMOS_MEM_ABOVE_16M_LO, Math.min(0xffff, Math.max(0, Math.floor((opts.lowRamBytes - 16 * MiB) / (64 * KiB)))));
    const high = Math.min(0xffffff, Math.max(0, Math.floor(opts.highRamBytes / (64 * KiB))));
    d[CMOS_MEM_ABOVE_4G] = high & 0xff;
    d[CMOS_MEM_ABOVE_4G + 1] = (high >>> 8) & 0xff;
    d[CMOS_MEM_ABOVE_4G + 2] = (high >>> 16) & 0xff;
    d[CMOS_NR_CPUS_MINUS_1] = Math.max(0, Math.min(255, opts.vcpus - 1));
    d[CMOS_CENTURY] = bcd(Math.floor((opts.year ?? new Date().getUTCFullYear()) / 100));

    // Boot order: up to three devices; unknown letters are skipped (the CLI validated them).
    const codes = [...opts.bootOrder].map((c) => BOOT_CODES[c] ?? 0).filter((c) => c !== 0);
    d[CMOS_BOOT_FLAG2] = (codes[0] ?? 0) | ((codes[1] ?? 0) << 4);
    d[CMOS_BOOT_FLAG1] = (codes[2] ?? 0) << 4; // bit 0 clear: check the floppy boot signature (QEMU default)

    // Disks 0 and 1: user-defined type 47 with their parameter blocks; 0x39 for all four.
    let types = 0;
    let trans = 0;
    for (let i = 0; i < 4; i++) {
      const g = opts.disks[i] ?? null;
      if (g === null) continue;
      trans |= translationFor(g) << (i * 2);
      if (i > 1) continue;
      types |= 0xf << (i === 0 ? 4 : 0);
      d[i === 0 ? CMOS_DISK0_EXT_TYPE : CMOS_DISK1_EXT_TYPE] = USER_DISK_TYPE;
      const p = i === 0 ? CMOS_DISK0_PARAMS : CMOS_DISK1_PARAMS;
      set16(p, g.cylinders); // cylinders
      d[p + 2] = g.heads;
      set16(p + 3, 0xffff); // write precompensation: none
      d[p + 5] = 0xc0 | (g.heads > 8 ? 0x08 : 0); // control byte: retries off, more than 8 heads
      set16(p + 6, g.cylinders); // landing zone
      d[p + 8] = g.sectors;
    }
    d[CMOS_DISK_TYPES] = types;
    d[CMOS_DISK_TRANSLATION] = trans;
  }

  snapshot(): CmosSnapshot {
    return { index: this.index, nvram: this.nvram.slice() };
  }

  restore(state: StateObject): void {
    const r = new StateReader(state, this.id);
    const index = r.int('index', 0, INDEX_MASK);
    const nvram = r.bytes('nvram', CMOS_SIZE); // a copy
    this.index = index;
    this.nvram = nvram;
  }

  read(offset: number, _size: AccessSize): number {
    // The index port is write-only (Xen answers its reads with 0xff anyway).
    if (offset !== 1) return 0xff;
    return this.index >= CMOS_FIRST_NVRAM ? this.nvram[this.index] : 0xff;
  }

  write(offset: number, _size: AccessSize, value: number): void {
    if (offset === 0) this.index = value & INDEX_MASK;
    else if (offset === 1 && this.index >= CMOS_FIRST_NVRAM) this.nvram[this.index] = value & 0xff;
  }
}

/**
 * BIOS CHS translation hint for a disk, the rule QEMU applies when the image
 * carries no partition-table geometry: none while the physical geometry fits
 * the int 13h limits, else "large" up to 131072 cylinder*heads, else LBA.
 */
export function translationFor(g: DiskGeometry): number {
  if (g.cylinders <= 1024 && g.heads <= 16 && g.sectors <= 63) return TRANSLATION_NONE;
  return g.cylinders * g.heads <= 131072 ? TRANSLATION_LARGE : TRANSLATION_LBA;
}

/** Claim 0x70-0x71 on the board (Xen forwards only the NVRAM half). */
export function installCmos(board: Board, opts: CmosOptions): CmosNvram {
  const cmos = new CmosNvram(opts);
  board.pio.add('cmos-nvram', CMOS_PORT, CMOS_PORTS, cmos);
  return cmos;
}
