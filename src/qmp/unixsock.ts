/**
 * The unixsock addon (native/unixsock.c): unix stream sockets that carry
 * file descriptors. QMP needs it because libxl's `add-fd` passes the file to
 * save into as SCM_RIGHTS ancillary data (docs/xen-contract.md §11), which
 * Node's net module silently drops. Built by scripts/build-native.sh into
 * build/native/ or at install into native/build/Release/ (or
 * $STUBDM_NATIVE_DIR, as in the stub domain): src/native-paths.ts.
 */
import { createRequire } from 'node:module';
import { NATIVE_BUILD_HINT, nativeAddonPath } from '../native-paths.ts';

export const EV_READABLE = 1;
export const EV_WRITABLE = 2;

export interface SockWatcher {
  /** Change the interest set (0 pauses the watch). */
  set(events: number): void;
  /** Idempotent; the callback never runs after it. */
  stop(): void;
}

export interface UnixSock {
  listen(path: string, backlog: number): number;
  connect(path: string): number;
  /** -1: nothing pending. */
  accept(fd: number): number;
  /** Bytes read into buf (0 = EOF, -1 = would block); received descriptors are pushed on fds. */
  recv(fd: number, buf: Uint8Array, fds: number[]): number;
  /** Bytes sent (-1 = would block); fds travel with the first byte. */
  send(fd: number, buf: Uint8Array, off: number, len: number, fds?: readonly number[]): number;
  close(fd: number): void;
  setNonblock(fd: number, on: boolean): void;
  /** A tty: switch it to raw mode (cfmakeraw) and say true; anything else: false. */
  makeRaw(fd: number): boolean;
  /** O_ACCMODE of the fd: 0 read-only, 1 write-only, 2 read-write. */
  accessMode(fd: number): number;
  watch(fd: number, events: number, cb: (status: number, events: number) => void): SockWatcher;
  /** chroot(dir) then chdir("/"): 0, or -errno (-chroot, src/runas.ts). */
  chroot(dir: string): number;
}

export class NativeUnavailableError extends Error {}

let cached: UnixSock | null = null;

export function loadUnixSock(): UnixSock {
  if (cached) return cached;
  const path = nativeAddonPath('unixsock');
  try {
    cached = createRequire(import.meta.url)(path) as UnixSock;
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    throw new NativeUnavailableError(`stubdm: cannot load ${path} (${why}): ${NATIVE_BUILD_HINT}`);
  }
  return cached;
}
