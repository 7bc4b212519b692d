/**
 * The fdwatch addon (native/fdwatch.c): wakes the event loop when a file
 * descriptor (the event channel device) is readable, and checks readability
 * without blocking. Built by scripts/build-native.sh into build/native/.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { XenUnavailableError } from './ffi.ts';

export interface FdWatcher {
  /** Idempotent. After it returns the callback never runs again. */
  stop(): void;
}

export interface FdWatch {
  /** `onReadable(status)`: status 0, or a negative libuv error code (the fd broke). */
  watch(fd: number, onReadable: (status: number) => void): FdWatcher;
  /** poll(fd, POLLIN, 0): true if a read would not block (data, error or hang-up). */
  readable(fd: number): boolean;
}

let cached: FdWatch | null = null;

/** The directory holding fdwatch.node: $STUBDM_NATIVE_DIR, else build/native of this checkout. */
export function nativeDir(): string {
  return process.env.STUBDM_NATIVE_DIR ?? fileURLToPath(new URL('../../build/native/', import.meta.url));
}

export function loadFdWatch(): FdWatch {
  if (cached) return cached;
  const path = `${nativeDir().replace(/\/$/, '')}/fdwatch.node`;
  try {
    cached = createRequire(import.meta.url)(path) as FdWatch;
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    throw new XenUnavailableError(`stubdm: cannot load ${path} (${why}): run scripts/build-native.sh (needs cc and the Node.js headers)`);
  }
  return cached;
}
