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
  /** Durability barrier: resolves after every earlier write is on stable storage. */
  flush(): Promise<IoResult>;
  close(): Promise<void>;
}

/** Turn whatever a failed fs call threw into an error code. */
export function errCode(e: unknown): string {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : 'EIO';
}
