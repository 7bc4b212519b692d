/**
 * Xenstore through libxenstore (docs/xen-contract.md §7.4). Paths without a leading
 * "/" are relative to /local/domain/<our domid>, which is where libxl looks
 * for device-model/<guest domid>/state.
 *
 * Every buffer libxenstore returns is malloc'ed and freed here with libc
 * free(); xs_directory and xs_check_watch return one block holding both the
 * pointer array and the strings.
 */
import type { Logger } from '../core/log.ts';
import type { Store } from '../core/host.ts';
import { XBT_NULL } from './consts.ts';
import type { Ptr, XenLibs } from './ffi.ts';
import type { FdWatch, FdWatcher } from './native.ts';

const XS_WATCH_PATH = 0; // xenstore_lib.h: index of the path in a watch event
const XS_WATCH_TOKEN = 1;
/** Events handled per wake-up before yielding to the event loop (the rest wake it again). */
const MAX_EVENTS_PER_WAKE = 64;

export type WatchCallback = (path: string, token: string) => void;

export class XenStore implements Store {
  private h: Ptr | null;
  private readonly len = new Uint32Array(1);
  private readonly watches = new Map<string, WatchCallback>(); // by token
  private watcher: FdWatcher | null = null;

  constructor(
    private readonly libs: XenLibs,
    handle: Ptr,
    private readonly fdwatch: FdWatch,
    private readonly log: Logger,
  ) {
    this.h = handle;
  }

  read(path: string): string | null {
    const h = this.h;
    if (h === null) return null;
    const p = this.libs.xs.read(h, XBT_NULL, path, this.len);
    if (p === null) return null;
    try {
      const n = this.len[0];
      return n === 0 ? '' : Buffer.from(this.libs.view(p, n)).toString('utf8'); // toString copies
    } finally {
      this.libs.libc.free(p);
    }
  }

  write(path: string, value: string): boolean {
    const h = this.h;
    if (h === null) return false;
    const data = Buffer.from(value, 'utf8');
    const ok = this.libs.xs.write(h, XBT_NULL, path, data, data.length);
    if (!ok) this.log.warn({ path, errno: this.libs.errno() }, 'xs_write failed');
    return ok;
  }

  directory(path: string): string[] {
    const h = this.h;
    if (h === null) return [];
    const p = this.libs.xs.directory(h, XBT_NULL, path, this.len);
    if (p === null) return [];
    try {
      return this.strings(p, this.len[0]);
    } finally {
      this.libs.libc.free(p);
    }
  }

  mkdir(path: string): boolean {
    return this.h !== null && this.libs.xs.mkdir(this.h, XBT_NULL, path);
  }

  rm(path: string): boolean {
    return this.h !== null && this.libs.xs.rm(this.h, XBT_NULL, path);
  }

  /** /local/domain/<domid>, or null. */
  getDomainPath(domid: number): string | null {
    return this.h === null ? null : this.libs.xs.get_domain_path(this.h, domid);
  }

  /**
   * Watch `path` (and everything below it); `cb(path, token)` runs on the
   * event loop for every change, and once right after the watch is set.
   * Tokens must be unique.
   */
  watch(path: string, token: string, cb: WatchCallback): boolean {
    const h = this.h;
    if (h === null || this.watches.has(token)) return false;
    if (this.watcher === null) {
      const fd = this.libs.xs.fileno(h);
      if (fd < 0) {
        this.log.warn({ errno: this.libs.errno() }, 'xs_fileno failed: no xenstore watches');
        return false;
      }
      this.watcher = this.fdwatch.watch(fd, (status) => this.onReadable(status));
    }
    this.watches.set(token, cb);
    if (!this.libs.xs.watch(h, path, token)) {
      this.watches.delete(token);
      this.log.warn({ path, errno: this.libs.errno() }, 'xs_watch failed');
      return false;
    }
    return true;
  }

  close(): void {
    this.watcher?.stop();
    this.watcher = null;
    this.watches.clear();
    const h = this.h;
    this.h = null;
    if (h !== null) this.libs.xs.close(h);
  }

  private onReadable(status: number): void {
    if (status < 0) {
      this.log.error({ status }, 'xenstore watch fd failed; watches stop');
      this.watcher?.stop();
      this.watcher = null;
      return;
    }
    for (let i = 0; i < MAX_EVENTS_PER_WAKE; i++) {
      const h = this.h;
      if (h === null) return;
      const p = this.libs.xs.check_watch(h); // NULL + EAGAIN: nothing queued
      if (p === null) return;
      let ev: string[];
      try {
        ev = this.strings(p, 2);
      } finally {
        this.libs.libc.free(p);
      }
      const cb = this.watches.get(ev[XS_WATCH_TOKEN]);
      if (!cb) continue;
      try {
        cb(ev[XS_WATCH_PATH], ev[XS_WATCH_TOKEN]);
      } catch (e) {
        this.log.error({ err: (e as Error).message, path: ev[XS_WATCH_PATH] }, 'xenstore watch callback threw');
      }
    }
  }

  private strings(p: Ptr, n: number): string[] {
    return this.libs.readPointers(p, n).map((s) => (s === null ? '' : this.libs.readCString(s)));
  }
}
