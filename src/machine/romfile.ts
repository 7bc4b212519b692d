/**
 * A PCI device's option ROM file (`-device e1000,romfile=NAME`), read from
 * the host when the machine is set up, as QEMU does (hw/pci/pci.c
 * pci_add_option_rom; docs/e1000.md "Option ROM"):
 *   - no romfile= property: the driver's default (e1000: efi-e1000.rom, iPXE);
 *   - romfile= (empty) or rombar=0: no ROM BAR at all;
 *   - a NAME without '/' is looked up in the firmware directories (Debian's
 *     QEMU: /usr/share/qemu, /usr/share/seabios, /usr/lib/ipxe/qemu; the stub
 *     domain links /usr/lib/ipxe/qemu into its image), a path is used as given;
 *   - a file that is missing, empty or larger than MAX_ROM_BYTES stops the
 *     start with one line (QEMU: `failed to find romfile`).
 * Read before -chroot/-runas (main.ts), so the path is the operator's.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DeviceConfig } from '../cli/config.ts';

/** Where a bare ROM name is looked for, in order (Debian's QEMU --firmwarepath). */
export const FIRMWARE_DIRS: readonly string[] = ['/usr/share/qemu', '/usr/share/seabios', '/usr/lib/ipxe/qemu'];

/** QEMU's default romfile per NIC driver (hw/net/e1000.c e1000_class_init: romfile "efi-e1000.rom"). */
export const DEFAULT_ROMFILE: Readonly<Record<string, string>> = { e1000: 'efi-e1000.rom' };

/**
 * Largest ROM we map: 16 MiB, the biggest ROM BAR a 32-bit MMIO hole
 * comfortably holds (iPXE's combined BIOS+EFI ROMs are 200-300 KiB).
 */
export const MAX_ROM_BYTES = 16 << 20;

/** Operator-facing: the ROM file cannot be used. One line, no stack. */
export class RomfileError extends Error {}

/** The romfile= a device asks for: a name, or null for no ROM. */
export function romfileOf(dev: DeviceConfig): string | null {
  const rombar = dev.props.rombar;
  if (rombar !== undefined && rombar !== '1' && rombar !== 'on' && rombar !== 'true') return null;
  const name = dev.props.romfile ?? DEFAULT_ROMFILE[dev.driver];
  return name === undefined || name === '' ? null : name;
}

/** Resolve NAME against `dirs` (a name with '/' is a path). Null when nowhere. */
export function findRomfile(name: string, dirs: readonly string[] = FIRMWARE_DIRS): string | null {
  if (name.includes('/')) return exists(name) ? name : null;
  for (const d of dirs) {
    const p = join(d, name);
    if (exists(p)) return p;
  }
  return null;
}

function exists(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * The ROM image `dev` gets, or null for none. Throws RomfileError naming the
 * device and the file when the ROM it asks for cannot be read.
 */
export function loadRomfile(dev: DeviceConfig, dirs: readonly string[] = FIRMWARE_DIRS): Uint8Array | null {
  const name = romfileOf(dev);
  if (name === null) return null;
  const what = `-device ${dev.driver}${dev.id !== null ? `,id=${dev.id}` : ''}`;
  const path = findRomfile(name, dirs);
  if (path === null) {
    const where = name.includes('/') ? '' : ` (looked in ${dirs.join(', ')})`;
    const hint = dev.props.romfile === undefined ? `; install Debian's ipxe-qemu, or give romfile= for no ROM` : '';
    throw new RomfileError(`${what}: failed to find romfile "${name}"${where}${hint}`);
  }
  let bytes: Buffer;
  try {
    const size = statSync(path).size;
    if (size === 0 || size > MAX_ROM_BYTES) throw new RomfileError(`${what}: romfile ${path} has ${size} bytes (1 to ${MAX_ROM_BYTES} usable)`);
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof RomfileError) throw e;
    throw new RomfileError(`${what}: cannot read romfile ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}
