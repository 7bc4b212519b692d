/**
 * The fdwatch addon (native/fdwatch.c): wakes the event loop when a file
 * descriptor (the event channel device) is readable, and checks readability
 * without blocking. Built by scripts/build-native.sh into build/native/, or
 * at install (native/binding.gyp); src/native-paths.ts finds it.
 */
import { createRequire } from 'node:module';
import { NATIVE_BUILD_HINT, nativeAddonPath } from '../native-paths.ts';
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
  /** Set O_NONBLOCK on fd (throws on failure). */
  setNonblock(fd: number): void;
  /**
   * libuv's idle-time accounting on this process's loop (Node turns it on;
   * performance.nodeTiming.idleTime and eventLoopUtilization() read it). On,
   * a loop that goes idle polls twice (zero timeout, then the real one); off,
   * once. 0, or -ENOSYS for a libuv the addon does not know (nothing changed).
   */
  setLoopIdleTime(on: boolean): number;
  /**
   * Event-channel watch (native/fdwatch.c): when the fd is readable the addon
   * reads every pending port into `queue` (queue[0] = ports JS has not taken,
   * queue[1..] the ports), unmasks them all but `holdPort`, and only then
   * calls `onPorts()` (no argument); a broken fd calls `onPorts(-errno)`.
   * Ports JS appends to `answers` during that call (EVTCHN_A_COUNT of them
   * from EVTCHN_A_PORTS) are notified by the addon once it returns; a failed
   * notify is counted in answers (EVTCHN_A_FAILED, _ERRNO, _PORT) and calls
   * `onPorts(EVTCHN_NOTIFY_FAILED)` at once. stop() notifies what is still queued.
   * Then, for up to answers[EVTCHN_A_WAIT_US] microseconds, it waits for the
   * next port in place and calls `onPorts()` again without a libuv turn.
   */
  evtchnWatch(fd: number, queue: Uint32Array, holdPort: number, answers: Uint32Array, onPorts: (status?: number) => void): FdWatcher;
  /** Words of `answers` before its ports (EVTCHN_A_PORTS); an addon without answers has none. */
  readonly evtchnAnswerHeader: number;
  /** The same read and unmask now, outside a watch callback: ports read (0: none pending) or -errno. */
  evtchnFill(fd: number, queue: Uint32Array, holdPort: number): number;
  /** Unmask one port: 0 or -errno. */
  evtchnUnmask(fd: number, port: number): number;
  /** IOCTL_EVTCHN_NOTIFY: 0 or -errno. */
  evtchnNotify(fd: number, port: number): number;
}

/**
 * evtchnWatch's answers array: ports queued, failed notifies so far, errno
 * and port of the last failure; the longest wait in place for the next port
 * after the answers (microseconds, set by JS, 0: off), the waits made and
 * those a port ended (native/fdwatch.c, "Waiting in place"); then the ports.
 */
export const EVTCHN_A_COUNT = 0;
export const EVTCHN_A_FAILED = 1;
export const EVTCHN_A_ERRNO = 2;
export const EVTCHN_A_PORT = 3;
export const EVTCHN_A_WAIT_US = 4;
export const EVTCHN_A_WAITS = 5;
export const EVTCHN_A_IN_PLACE = 6;
export const EVTCHN_A_PORTS = 7;
/** onPorts status after a failed notify of the answers. */
export const EVTCHN_NOTIFY_FAILED = 1;

let cached: FdWatch | null = null;

export function loadFdWatch(): FdWatch {
  if (cached) return cached;
  const path = nativeAddonPath('fdwatch');
  try {
    const m = createRequire(import.meta.url)(path) as FdWatch;
    if (typeof m.evtchnWatch !== 'function' || m.evtchnAnswerHeader !== EVTCHN_A_PORTS) {
      throw new Error('no event-channel answers (built from an older native/fdwatch.c)');
    }
    cached = m;
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    throw new XenUnavailableError(`stubdm: cannot load ${path} (${why}): ${NATIVE_BUILD_HINT}`);
  }
  return cached;
}
