/**
 * The one call the block layer takes from the fdwatch addon (native/fdwatch.c):
 * posix_fadvise(WILLNEED) for sequential read-ahead, which Node's fs does not
 * offer. Optional: without the addon (not built, a test tree) the backend reads
 * as before, only without read-ahead.
 */
import { createRequire } from 'node:module';
import { nativeAddonPath } from '../native-paths.ts';

/** willNeed(fd, offset, len): 0 or -errno. */
export type WillNeed = (fd: number, offset: number, len: number) => number;

let cached: WillNeed | null | undefined;

export function loadWillNeed(): WillNeed | null {
  if (cached !== undefined) return cached;
  try {
    const m = createRequire(import.meta.url)(nativeAddonPath('fdwatch')) as { willNeed?: WillNeed };
    cached = typeof m.willNeed === 'function' ? m.willNeed : null;
  } catch {
    cached = null;
  }
  return cached;
}
