/** Opening a drive's backend from its options: the file, then the ordering rules on top. */
import type { BlockBackend } from './backend.ts';
import { FileBackend, type FileBackendOptions } from './file.ts';
import { OrderedBackend } from './ordered.ts';
import type { CacheMode } from './file.ts';

export type { BlockBackend, IoResult } from './backend.ts';
export { BlockOpenError, FileBackend, type CacheMode, type BlockFormat, type FileBackendOptions } from './file.ts';
export { OrderedBackend } from './ordered.ts';
export { MemoryBackend } from './memory.ts';
export { FaultyBackend } from './fault.ts';

export async function openBlockBackend(o: FileBackendOptions): Promise<BlockBackend> {
  return new OrderedBackend(await FileBackend.open(o));
}

/**
 * The cache mode a drive gets inside a stub domain. There the page cache
 * belongs to the stub domain and dies with it: `xl destroy`, a crash or the
 * end of a migration take every write the guest was told had completed but
 * that still sat in it (the e2e saverestore scenario lost the last 5 of 116
 * O_DIRECT blocks that way), while a dom0 device model's page cache outlives
 * the process. So cache=writeback (libxl's default) becomes cache=none:
 * O_DIRECT to blkfront, which completes a write once dom0's backend has it;
 * the guest still sees a write cache (WCE) and FLUSH CACHE still means
 * fdatasync, as QEMU's cache=none. The other modes keep their meaning.
 */
export function stubdomCacheMode(mode: CacheMode): CacheMode {
  return mode === 'writeback' ? 'none' : mode;
}
