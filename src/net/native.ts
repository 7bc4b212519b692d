/**
 * The tap half of the fdwatch addon (native/fdwatch.c): opening a tap,
 * one read or write per frame into or out of a caller's buffer, and the
 * readable/writable watch. native/fdwatch.c says why this is C and not
 * Node's fs. Built by scripts/build-native.sh into build/native/.
 */
import { createRequire } from 'node:module';
import { NATIVE_BUILD_HINT, nativeAddonPath } from '../native-paths.ts';

/** libuv's poll event bits, as watch() and setEvents() take them. */
export const EV_READABLE = 1;
export const EV_WRITABLE = 2;

export interface NetWatcher {
  /** 0 pauses, EV_READABLE | EV_WRITABLE resume what is wanted. No-op once stopped. */
  setEvents(mask: number): void;
  /** Idempotent. After it returns the callback never runs again. */
  stop(): void;
}

export interface TapOpenResult {
  fd: number;
  /** The name the kernel used (its own tapN when none was asked for). */
  ifname: string;
  /** 10 when every frame carries a struct virtio_net_hdr, else 0. */
  vnetHdrLen: number;
}

/** What TapBackend needs from the addon; tests may hand in another. */
export interface TapIo {
  watch(fd: number, cb: (status: number, events: number) => void, events: number): NetWatcher;
  tapOpen(ifname: string, vnetHdr: boolean): TapOpenResult;
  /** Frame length (may exceed buf.length: truncated), or -errno. */
  tapRead(fd: number, buf: Uint8Array, vnetHdrLen: number): number;
  /** Frame bytes written, or -errno. */
  tapWrite(
    fd: number, buf: Uint8Array, len: number, vnetHdrLen: number,
    flags: number, gsoType: number, hdrLen: number, gsoSize: number, csumStart: number, csumOffset: number,
  ): number;
}

/** errno values the backend tells apart (Linux, all architectures we run on). */
export const EAGAIN = 11;
export const EIO = 5;
export const EINVAL = 22;
export const EBADFD = 77;
export const ENODEV = 19;
export const ENXIO = 6;
export const EFAULT = 14;

/** Thrown when the addon cannot be loaded: one operator line. */
export class NetNativeError extends Error {}

let cached: TapIo | null = null;

export function loadTapIo(): TapIo {
  if (cached) return cached;
  const path = nativeAddonPath('fdwatch');
  let mod: Partial<TapIo>;
  try {
    mod = createRequire(import.meta.url)(path) as Partial<TapIo>;
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    throw new NetNativeError(`cannot load ${path} (${why}): ${NATIVE_BUILD_HINT}`);
  }
  if (typeof mod.tapOpen !== 'function' || typeof mod.tapRead !== 'function' || typeof mod.tapWrite !== 'function') {
    throw new NetNativeError(`${path} has no tap support (built from an older native/fdwatch.c): ${NATIVE_BUILD_HINT}`);
  }
  cached = mod as TapIo;
  return cached;
}
