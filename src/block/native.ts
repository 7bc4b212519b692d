/**
 * The calls the block layer takes from the fdwatch addon (native/fdwatch.c),
 * which Node's fs does not offer: posix_fadvise(WILLNEED) for sequential
 * read-ahead, and preadv2(RWF_NOWAIT) for reading what the page cache holds
 * on the event loop, without a thread-pool hop. Optional: without the addon
 * (not built, a test tree) the backend reads as before, through the pool and
 * without read-ahead.
 */
import { createRequire } from 'node:module';
import { nativeAddonPath } from '../native-paths.ts';

/** willNeed(fd, offset, len): 0 or -errno. */
export type WillNeed = (fd: number, offset: number, len: number) => number;

/**
 * readNowait(fd, views, count, offset): bytes read into views[0..count)
 * (count at most READ_NOWAIT_VIEWS) from what the page cache holds, 0 at the
 * end of the file, or -errno (-EAGAIN: the first bytes are not cached).
 */
export type ReadNowait = (fd: number, views: readonly Uint8Array[], count: number, offset: number) => number;
/** The addon's own form: the views as arguments after the count (native/fdwatch.c says why). */
type RawReadNowait = (fd: number, offset: number, count: number, ...views: Uint8Array[]) => number;
/** native/fdwatch.c READ_NOWAIT_VIEWS. */
export const READ_NOWAIT_VIEWS = 256;

interface BlockCalls {
  willNeed: WillNeed | null;
  readNowait: ReadNowait | null;
}
let cached: BlockCalls | undefined;

function load(): BlockCalls {
  if (cached !== undefined) return cached;
  try {
    const m = createRequire(import.meta.url)(nativeAddonPath('fdwatch')) as { willNeed?: WillNeed; readNowait?: RawReadNowait };
    const raw = m.readNowait;
    cached = {
      willNeed: typeof m.willNeed === 'function' ? m.willNeed : null,
      // The views go as arguments (a spread of a packed array allocates nothing), which the
      // addon takes at a fraction of what reading an array's elements through N-API costs.
      readNowait: typeof raw === 'function' ? (fd, views, count, offset) => raw(fd, offset, count, ...views) : null,
    };
  } catch {
    cached = { willNeed: null, readNowait: null };
  }
  return cached;
}

export function loadWillNeed(): WillNeed | null {
  return load().willNeed;
}

export function loadReadNowait(): ReadNowait | null {
  return load().readNowait;
}
