/**
 * From drive configuration (the CLI's -drive list) to the controller's four
 * device slots: opens each backend (ordered, asynchronous) and picks the
 * device kind. CD-ROM media are always read-only; an empty CD drive has no
 * backend. Bad configuration throws BlockOpenError with one clear line.
 */
import { openBlockBackend, BlockOpenError, type BlockBackend, type CacheMode, type BlockFormat } from '../../block/index.ts';
import type { Logger } from '../../core/log.ts';
import type { DiskTrace } from '../../block/trace.ts';
import type { DriveOptions } from './drive.ts';

/** The fields of the CLI's DriveConfig this needs (structural, no import from src/cli). */
export interface IdeDriveConfig {
  /** 0 primary master, 1 primary slave, 2 secondary master, 3 secondary slave. */
  index: number;
  file: string | null;
  media: 'disk' | 'cdrom';
  format: BlockFormat;
  cache: CacheMode;
  readonly: boolean;
}

/** `trace`: the disk event trace the file backends record into (STUBDM_DISK_TRACE), or none. */
export async function openIdeDrives(configs: readonly IdeDriveConfig[], log?: Logger, trace?: DiskTrace | null): Promise<(DriveOptions | null)[]> {
  const slots: (DriveOptions | null)[] = [null, null, null, null];
  const opened: BlockBackend[] = [];
  try {
    for (const c of configs) {
      if (!(Number.isInteger(c.index) && c.index >= 0 && c.index < 4)) throw new BlockOpenError(`drive index ${c.index}: IDE has slots 0-3`);
      if (slots[c.index]) throw new BlockOpenError(`drive index ${c.index} given twice`);
      if (c.media === 'disk' && c.file === null) throw new BlockOpenError(`drive index ${c.index}: a disk needs file=`);
      let backend: BlockBackend | null = null;
      if (c.file !== null) {
        backend = await openBlockBackend({ path: c.file, format: c.format, cache: c.cache, readOnly: c.readonly || c.media === 'cdrom', log, trace });
        opened.push(backend);
        if (c.media === 'disk' && backend.size < 512) throw new BlockOpenError(`${c.file}: image smaller than one sector`);
      }
      slots[c.index] = { kind: c.media, backend, serial: `QM0000${c.index + 1}` };
    }
    return slots;
  } catch (e) {
    await Promise.all(opened.map((b) => b.close()));
    throw e;
  }
}
