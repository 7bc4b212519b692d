/**
 * Raw images and host block devices over plain POSIX I/O (fs.promises with
 * an fd: pread(v)/pwrite(v)/fdatasync in libuv's thread pool, never waiting
 * for a disk on the event loop). readv/writev are one preadv/pwritev straight
 * between the file and the caller's views (guest memory for zero-copy DMA):
 * one thread-pool hop and no copy of ours per request, whatever its size.
 *
 * Reads in the page-cache modes first take what the page cache already holds
 * on the event loop (preadv2 RWF_NOWAIT through the fdwatch addon, up to
 * SYNC_READ_MAX): a cached read then costs one syscall instead of the pool's
 * hop (the worker's wake-up and its return through the loop: five syscalls
 * and two context switches), and its completion, hence the guest's
 * interrupt, follows within the same turn of the loop. RWF_NOWAIT never waits
 * for the disk: whatever is not cached goes to the pool as before.
 *
 * cache=writeback     page cache; flush = fdatasync (QEMU's default)
 * cache=none          O_DIRECT through one aligned bounce buffer; flush = fdatasync
 *                     (the device's own write cache). File systems without
 *                     O_DIRECT fall back to writeback with one warning.
 * cache=writethrough  O_DSYNC: every write is durable when it completes
 * cache=directsync    O_DIRECT and O_DSYNC
 * cache=unsafe        page cache, flushes ignored (scratch disks only)
 *
 * Sequential read-ahead (page-cache modes): a read that starts where the last
 * one ended asks the kernel (posix_fadvise WILLNEED, through the fdwatch
 * addon) to start reading the next window in the background, so the guest's
 * next request finds its data in the page cache instead of waiting for the
 * disk (blkfront in the stub domain, a cold image in dom0). It moves no data
 * of ours and changes nothing about durability: writes and flushes are as
 * above.
 */
import { promises as fsp, constants as C, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BlockBackend, IoResult } from './backend.ts';
import { errCode, viewsBytes } from './backend.ts';
import type { Logger } from '../core/log.ts';
import { logger } from '../core/log.ts';
import { loadReadNowait, loadWillNeed, READ_NOWAIT_VIEWS, type ReadNowait, type WillNeed } from './native.ts';
import { EV_FILE, EV_RA, FILE_POOL, FILE_POOL_DONE, FILE_SYNC, FILE_SYNC_SHORT, RA_ASK, RA_HIT, RA_MISS, type DiskTrace } from './trace.ts';

export type CacheMode = 'writeback' | 'none' | 'writethrough' | 'directsync' | 'unsafe';
export type BlockFormat = 'raw' | 'host_device';

export interface FileBackendOptions {
  path: string;
  format?: BlockFormat;
  readOnly?: boolean;
  cache?: CacheMode;
  log?: Logger;
  /** Read-ahead hint (tests); default: the fdwatch addon's willNeed, null without it. */
  willNeed?: WillNeed | null;
  /** Cached reads on the event loop (tests); default: the fdwatch addon's readNowait, null without it. */
  readNowait?: ReadNowait | null;
  /** Record thread-pool hops and read-ahead (STUBDM_DISK_TRACE; block/trace.ts). */
  trace?: DiskTrace | null;
}

/** Operator mistakes (missing file, wrong format): one clear line, no stack. */
export class BlockOpenError extends Error {}

/** Bytes of one I/O through the O_DIRECT bounce buffer. */
const BOUNCE_BYTES = 1 << 20;
/** O_DIRECT wants buffer, offset and length aligned to the logical block size. */
const DIO_ALIGN = 512;
/** Read-ahead window: twice the request, within these bounds. */
const RA_MIN = 256 * 1024;
const RA_MAX = 4 << 20;
/**
 * Largest read tried on the event loop: a 512 KiB request (ata_piix's usual)
 * is copied in well under a millisecond, while the loop cannot serve another
 * vCPU's ioreq; anything larger goes to the pool whole.
 */
const SYNC_READ_MAX = 1 << 20;
/** errnos of a kernel or file system without preadv2 RWF_NOWAIT for this file: stop trying it. */
const NOWAIT_UNSUPPORTED = new Set([38 /* ENOSYS */, 22 /* EINVAL */, 95 /* EOPNOTSUPP */]);
const EAGAIN = 11;
/** What a read served from the page cache returns: already settled, shared (nothing allocated per request). */
const READ_DONE: Promise<IoResult> = Promise.resolve(null);
/** preadv/pwritev passes per request: each moves at least one byte or ends it (short transfers are rare: signals, a file that shrank). */
const MAX_VEC_PASSES = 64;

/** Size of a block device from sysfs (units of 512 bytes whatever the sector size). */
export function blockDeviceSize(rdev: number): number | null {
  // Linux dev_t encoding (new_decode_dev / glibc gnu_dev_major/minor).
  const major = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  try {
    const s = readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim();
    const n = Number(s);
    return Number.isSafeInteger(n) ? n * 512 : null;
  } catch {
    return null;
  }
}

export class FileBackend implements BlockBackend {
  /** O_DIRECT bounce buffer view (aligned), or null when going through the page cache. */
  private bounce: Uint8Array | null = null;
  private bounceQueue: Promise<unknown> = Promise.resolve();
  /** End of the last read (a read starting here is sequential). */
  private seqEnd = -1;
  /** End of what read-ahead already asked for. */
  private raEnd = 0;
  /** The disk event trace, or null (then every trace point is this one check). */
  private trace: DiskTrace | null = null;
  /** read()'s one view for readNowait. */
  private readonly one: Uint8Array[] = [new Uint8Array(0)];

  private constructor(
    private fh: fsp.FileHandle,
    readonly size: number,
    readonly readOnly: boolean,
    readonly path: string,
    readonly cache: CacheMode,
    readonly direct: boolean,
    /** posix_fadvise(WILLNEED) when in a page-cache mode and the addon is there; else null. */
    private readonly willNeed: WillNeed | null,
    /** preadv2(RWF_NOWAIT) likewise; null also once the kernel said it has none. */
    private readNowait: ReadNowait | null,
  ) {}

  static async open(o: FileBackendOptions): Promise<FileBackend> {
    const log = o.log ?? logger('block');
    const ro = o.readOnly ?? false;
    const cache = o.cache ?? 'writeback';
    const format = o.format ?? 'raw';
    let flags = ro ? C.O_RDONLY : C.O_RDWR;
    if (cache === 'writethrough' || cache === 'directsync') flags |= C.O_DSYNC;
    const wantDirect = cache === 'none' || cache === 'directsync';
    const openWith = async (f: number) => {
      try {
        return await fsp.open(o.path, f);
      } catch (e) {
        if (f & C.O_DIRECT && errCode(e) === 'EINVAL') return null;
        throw new BlockOpenError(`cannot open ${o.path}: ${errCode(e)}${ro ? '' : ' (read-write; use readonly=on for a read-only image)'}`);
      }
    };
    let fh: fsp.FileHandle | null = null;
    let direct = false;
    if (wantDirect) {
      fh = await openWith(flags | C.O_DIRECT);
      direct = fh !== null;
    }
    if (fh === null) fh = (await openWith(flags))!;
    let size: number;
    try {
      const st = await fh.stat();
      if (st.isBlockDevice()) {
        const s = blockDeviceSize(st.rdev);
        if (s === null) throw new BlockOpenError(`${o.path}: cannot read the size of block device ${basename(o.path)} from /sys/dev/block`);
        size = s;
      } else if (st.isFile()) {
        if (format === 'host_device') throw new BlockOpenError(`${o.path}: format=host_device needs a block device; use format=raw for an image file`);
        size = st.size;
      } else {
        throw new BlockOpenError(`${o.path}: not a regular file or block device`);
      }
    } catch (e) {
      await fh.close();
      throw e;
    }
    const wn = o.willNeed === undefined ? loadWillNeed() : o.willNeed;
    const rn = o.readNowait === undefined ? loadReadNowait() : o.readNowait;
    const b = new FileBackend(fh, size, ro, o.path, cache, direct, direct ? null : wn, direct ? null : rn);
    b.trace = o.trace ?? null;
    if (direct && !(await b.setupBounce())) {
      await fh.close();
      fh = (await openWith(flags))!;
      const nb = new FileBackend(fh, size, ro, o.path, cache, false, wn, rn);
      nb.trace = b.trace;
      log.warn({ path: o.path }, `cache=${cache}: O_DIRECT not usable here, using the page cache (flushes still fsync)`);
      return nb;
    }
    if (wantDirect && !direct) {
      log.warn({ path: o.path }, `cache=${cache}: file system refuses O_DIRECT, using the page cache (flushes still fsync)`);
    }
    return b;
  }

  /**
   * JS cannot ask where an ArrayBuffer lives, but an off-heap backing store
   * never moves: probe offsets until an O_DIRECT read into the view is
   * accepted (misaligned buffers get EINVAL), then keep that view.
   */
  private async setupBounce(): Promise<boolean> {
    const raw = new Uint8Array(new ArrayBuffer(BOUNCE_BYTES + 8192));
    for (let off = 0; off < 4096; off += 16) { // bounded: 256 probes at open time
      try {
        // Two pages: the kernel's checks differ for requests crossing a page, so
        // only a page-aligned view passes (misaligned ones get EINVAL).
        await this.fh.read(raw, off, 8192, 0);
        this.bounce = raw.subarray(off, off + BOUNCE_BYTES);
        return true;
      } catch (e) {
        if (errCode(e) !== 'EINVAL') return false;
      }
    }
    return false;
  }

  read(offset: number, dst: Uint8Array, dstOff: number, len: number): Promise<IoResult> {
    if (this.bounce !== null) return this.viaBounce(false, offset, dst, dstOff, len);
    this.readAhead(offset, len);
    let got = 0;
    if (this.readNowait !== null && len > 0 && len <= SYNC_READ_MAX && dstOff >= 0 && dstOff + len <= dst.length) {
      this.one[0] = dst.subarray(dstOff, dstOff + len);
      got = this.readCached(offset, this.one, 1, len);
    }
    if (got === len) return READ_DONE;
    return this.pread(dst, dstOff + got, len - got, offset + got);
  }

  /**
   * What the page cache holds of [offset, offset + total) into views[0..count),
   * on the event loop without waiting for a disk: the bytes read (0 when none
   * were cached, or the call is not for this read).
   */
  private readCached(offset: number, views: readonly Uint8Array[], count: number, total: number): number {
    const rn = this.readNowait;
    if (rn === null || total <= 0 || total > SYNC_READ_MAX || count > READ_NOWAIT_VIEWS) return 0;
    let n: number;
    try {
      n = rn(this.fh.fd, views, count, offset);
    } catch {
      n = -22; // views it cannot take: never again, the pool reads them
    }
    if (n < 0 && NOWAIT_UNSUPPORTED.has(-n)) this.readNowait = null;
    const got = n > 0 ? Math.min(n, total) : 0; // an error or the end of the file: the pool's read says which
    const tr = this.trace;
    if (tr !== null && (got > 0 || n === -EAGAIN)) tr.record(EV_FILE, got === total ? FILE_SYNC : FILE_SYNC_SHORT, got);
    return got;
  }

  /** Called as a read of [offset, offset + len) is issued: on a sequential one, keep a window ahead asked for. */
  private readAhead(offset: number, len: number): void {
    const wn = this.willNeed;
    if (wn === null) return;
    const end = offset + len;
    const sequential = offset === this.seqEnd;
    this.seqEnd = end;
    const tr = this.trace;
    if (tr !== null) {
      const hit = sequential && end <= this.raEnd; // this read was inside what an earlier hint asked for
      tr.record(EV_RA, hit ? RA_HIT : RA_MISS, hit ? this.raEnd - end : 0);
    }
    if (!sequential) {
      this.raEnd = end;
      return;
    }
    const win = Math.min(RA_MAX, Math.max(RA_MIN, 2 * len));
    // Ask again only once half the window is used up: one fadvise per window, not per request.
    if (this.raEnd - end >= win / 2) return;
    const from = Math.max(end, this.raEnd);
    const to = Math.min(end + win, this.size);
    if (to > from && wn(this.fh.fd, from, to - from) === 0) {
      this.raEnd = to;
      if (tr !== null) tr.record(EV_RA, RA_ASK, to - from);
    }
  }

  /** Trace: `bytes` go to libuv's thread pool; returns the event loop's idle time so far (ms) for poolDone(), or 0 untraced. */
  private poolStart(bytes: number): number {
    const tr = this.trace;
    if (tr === null) return 0;
    tr.record(EV_FILE, FILE_POOL, bytes);
    return performance.nodeTiming.idleTime;
  }

  /**
   * Trace: that thread-pool request's result reached JS, with how long the
   * event loop sat idle meanwhile (waiting for the pool; the rest of the
   * request's time the loop ran other callbacks, which can delay this one).
   */
  private poolDone(idleAt: number): void {
    const tr = this.trace;
    if (tr !== null) tr.record(EV_FILE, FILE_POOL_DONE, Math.max(0, Math.round((performance.nodeTiming.idleTime - idleAt) * 1000)));
  }

  write(offset: number, src: Uint8Array, srcOff: number, len: number): Promise<IoResult> {
    if (this.readOnly) return Promise.resolve('EROFS');
    if (this.bounce !== null) return this.viaBounce(true, offset, src, srcOff, len);
    return this.pwrite(src, srcOff, len, offset);
  }

  readv(offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult> {
    if (this.bounce !== null) return this.viewsViaBounce(false, offset, views, count);
    const total = viewsBytes(views, count);
    this.readAhead(offset, total);
    const got = this.readCached(offset, views, count, total);
    if (got === total) return READ_DONE;
    if (got === 0) return this.vec(false, offset, views, count);
    // Cached up to `got`: the pool reads the rest.
    const rest = skipBytes(count === views.length ? views : views.slice(0, count), got);
    return this.vec(false, offset + got, rest, rest.length);
  }

  writev(offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult> {
    if (this.readOnly) return Promise.resolve('EROFS');
    if (this.bounce !== null) return this.viewsViaBounce(true, offset, views, count);
    return this.vec(true, offset, views, count);
  }

  async flush(): Promise<IoResult> {
    if (this.readOnly || this.cache === 'unsafe') return null;
    try {
      const idle = this.poolStart(0);
      await this.fh.datasync();
      this.poolDone(idle);
      return null;
    } catch (e) {
      return errCode(e);
    }
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => {});
  }

  private async pread(dst: Uint8Array, off: number, len: number, pos: number): Promise<IoResult> {
    try {
      let done = 0;
      // Bounded: every pass either makes progress or stops at end of file.
      while (done < len) {
        const idle = this.poolStart(len - done);
        const { bytesRead } = await this.fh.read(dst, off + done, len - done, pos + done);
        this.poolDone(idle);
        if (bytesRead === 0) {
          dst.fill(0, off + done, off + len); // past the end of a file that shrank: zeros
          break;
        }
        done += bytesRead;
      }
      return null;
    } catch (e) {
      return errCode(e);
    }
  }

  private async pwrite(src: Uint8Array, off: number, len: number, pos: number): Promise<IoResult> {
    try {
      let done = 0;
      while (done < len) {
        const idle = this.poolStart(len - done);
        const { bytesWritten } = await this.fh.write(src, off + done, len - done, pos + done);
        this.poolDone(idle);
        if (bytesWritten === 0) return 'EIO';
        done += bytesWritten;
      }
      return null;
    } catch (e) {
      return errCode(e);
    }
  }

  /** One preadv/pwritev of views[0..count); a short transfer goes on from where it stopped (bounded). */
  private async vec(isWrite: boolean, offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult> {
    try {
      let list: readonly Uint8Array[] = count === views.length ? views : views.slice(0, count);
      let left = viewsBytes(views, count);
      let pos = offset;
      for (let pass = 0; left > 0 && pass < MAX_VEC_PASSES; pass++) {
        const idle = this.poolStart(left);
        const n = isWrite ? (await this.fh.writev(list, pos)).bytesWritten : (await this.fh.readv(list, pos)).bytesRead;
        this.poolDone(idle);
        if (n === left) return null;
        if (n === 0) {
          if (isWrite) return 'EIO';
          for (const v of list) v.fill(0); // past the end of a file that shrank: zeros
          return null;
        }
        left -= n;
        pos += n;
        list = skipBytes(list, n);
      }
      return left === 0 ? null : 'EIO';
    } catch (e) {
      return errCode(e);
    }
  }

  /** O_DIRECT with views: through the aligned buffer in chunks, copying to or from the views. */
  private viewsViaBounce(isWrite: boolean, offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult> {
    const total = viewsBytes(views, count);
    if (offset % DIO_ALIGN !== 0 || total % DIO_ALIGN !== 0) return Promise.resolve('EINVAL');
    const run = async (): Promise<IoResult> => {
      const b = this.bounce!;
      let vi = 0;
      let vo = 0;
      // Bounded: total / BOUNCE_BYTES chunks, each copying through at most `count` views.
      for (let done = 0; done < total; done += BOUNCE_BYTES) {
        const n = Math.min(BOUNCE_BYTES, total - done);
        if (!isWrite) {
          const r = await this.pread(b, 0, n, offset + done);
          if (r !== null) return r;
        }
        for (let k = 0; k < n; ) {
          const v = views[vi];
          const m = Math.min(n - k, v.length - vo);
          if (isWrite) b.set(v.subarray(vo, vo + m), k);
          else v.set(b.subarray(k, k + m), vo);
          k += m;
          vo += m;
          if (vo === v.length) {
            vi++;
            vo = 0;
          }
        }
        if (isWrite) {
          const r = await this.pwrite(b, 0, n, offset + done);
          if (r !== null) return r;
        }
      }
      return null;
    };
    const p = this.bounceQueue.then(run);
    this.bounceQueue = p;
    return p;
  }

  /** O_DIRECT path: one request at a time through the aligned buffer, in chunks. */
  private viaBounce(isWrite: boolean, offset: number, buf: Uint8Array, bufOff: number, len: number): Promise<IoResult> {
    if (offset % DIO_ALIGN !== 0 || len % DIO_ALIGN !== 0) return Promise.resolve('EINVAL');
    const run = async (): Promise<IoResult> => {
      const b = this.bounce!;
      for (let done = 0; done < len; done += BOUNCE_BYTES) {
        const n = Math.min(BOUNCE_BYTES, len - done);
        if (isWrite) {
          b.set(buf.subarray(bufOff + done, bufOff + done + n), 0);
          const r = await this.pwrite(b, 0, n, offset + done);
          if (r !== null) return r;
        } else {
          const r = await this.pread(b, 0, n, offset + done);
          if (r !== null) return r;
          buf.set(b.subarray(0, n), bufOff + done);
        }
      }
      return null;
    };
    const p = this.bounceQueue.then(run);
    this.bounceQueue = p;
    return p;
  }
}

/** The views after the first `n` bytes (n below their total). */
function skipBytes(views: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const v of views) {
    if (n >= v.length) {
      n -= v.length;
      continue;
    }
    out.push(n > 0 ? v.subarray(n) : v);
    n = 0;
  }
  return out;
}
