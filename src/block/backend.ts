/**
 * Block backends: what a disk or CD-ROM device reads and writes.
 *
 * Every operation is asynchronous (the event loop that answers ioreqs must
 * never wait on a disk) and never throws: the result is null on success or
 * an error code ('EIO', 'ENOSPC', ...) that the device turns into its own
 * error status plus a log line.
 */

/** null = success; otherwise an errno-style code such as 'EIO'. */
export type IoResult = string | null;

export interface BlockBackend {
  /** Size in bytes (a multiple of 512 for anything a device exposes). */
  readonly size: number;
  readonly readOnly: boolean;
  /** Read len bytes at byte offset `offset` into dst[dstOff..]. */
  read(offset: number, dst: Uint8Array, dstOff: number, len: number): Promise<IoResult>;
  /** Write src[srcOff..srcOff+len) at `offset`. */
  write(offset: number, src: Uint8Array, srcOff: number, len: number): Promise<IoResult>;
  /**
   * Vectored read: views[0..count) filled one after the other with the bytes
   * from `offset` (zero-copy DMA: the views are guest memory). Same result
   * rules as read().
   */
  readv(offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult>;
  /** Vectored write of views[0..count) one after the other at `offset`. */
  writev(offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult>;
  /** Durability barrier: resolves after every earlier write is on stable storage. */
  flush(): Promise<IoResult>;
  close(): Promise<void>;
}

/** Total bytes of views[0..count). */
export function viewsBytes(views: readonly Uint8Array[], count: number): number {
  let n = 0;
  for (let i = 0; i < count; i++) n += views[i].length;
  return n;
}

/** readv/writev over read()/write(), one view at a time (backends with nothing better). */
export async function eachView(
  op: (offset: number, buf: Uint8Array, off: number, len: number) => Promise<IoResult>,
  offset: number,
  views: readonly Uint8Array[],
  count: number,
): Promise<IoResult> {
  let pos = offset;
  for (let i = 0; i < count; i++) {
    const v = views[i];
    const r = await op(pos, v, 0, v.length);
    if (r !== null) return r;
    pos += v.length;
  }
  return null;
}

/** Turn whatever a failed fs call threw into an error code. */
export function errCode(e: unknown): string {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : 'EIO';
}
