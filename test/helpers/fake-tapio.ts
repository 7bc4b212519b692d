/**
 * The tap addon (net/native.ts TapIo), scripted for tests: frames waiting to
 * be read, results for writes, the readable/writable mask the backend asks
 * for, and fire() as one event-loop wake-up of the fd.
 */
import { EAGAIN, type NetWatcher, type TapIo } from '../../src/net/native.ts';

export class FakeTapIo implements TapIo {
  rx: Array<Uint8Array | number> = [];
  writes: Array<{ bytes: number[]; args: number[] }> = [];
  writeResults: number[] = [];
  mask = -1;
  reads = 0;
  cb: ((status: number, events: number) => void) | null = null;
  stopped = false;
  /** Called with each frame written (the host side reacting to it). */
  onWrite: ((frame: Uint8Array) => void) | null = null;
  watch(_fd: number, cb: (status: number, events: number) => void, events: number): NetWatcher {
    this.cb = cb;
    this.mask = events;
    return {
      setEvents: (m: number) => {
        if (!this.stopped) this.mask = m;
      },
      stop: () => {
        this.stopped = true;
        this.mask = 0;
      },
    };
  }
  tapOpen(): never {
    throw new Error('not used');
  }
  tapRead(_fd: number, buf: Uint8Array): number {
    this.reads++;
    const f = this.rx.shift();
    if (f === undefined) return -EAGAIN;
    if (typeof f === 'number') return f;
    buf.set(f.subarray(0, Math.min(f.length, buf.length)));
    return f.length;
  }
  tapWrite(_fd: number, buf: Uint8Array, len: number, ...args: number[]): number {
    const r = this.writeResults.shift() ?? len;
    if (r >= 0) {
      this.writes.push({ bytes: Array.from(buf.subarray(0, len)), args });
      this.onWrite?.(buf.subarray(0, len));
    }
    return r;
  }
  /** One wake-up of the event loop for the events both asked for and ready. */
  fire(ready: number): void {
    const ev = ready & this.mask;
    if (ev && this.cb) this.cb(0, ev);
  }
}
