/** Opening a drive's backend from its options: the file, then the ordering rules on top. */
import type { BlockBackend } from './backend.ts';
import { FileBackend, type FileBackendOptions } from './file.ts';
import { OrderedBackend } from './ordered.ts';

export type { BlockBackend, IoResult } from './backend.ts';
export { BlockOpenError, FileBackend, type CacheMode, type BlockFormat, type FileBackendOptions } from './file.ts';
export { OrderedBackend } from './ordered.ts';
export { MemoryBackend } from './memory.ts';
export { FaultyBackend } from './fault.ts';

export async function openBlockBackend(o: FileBackendOptions): Promise<BlockBackend> {
  return new OrderedBackend(await FileBackend.open(o));
}
