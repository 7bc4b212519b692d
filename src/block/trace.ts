/**
 * The disk's event trace (issue #13: on real Xen under TCG a 512 KiB READ
 * DMA EXT took 40-90 ms through stubdm against 35 through qemu-xen, far more
 * than its data copy, and only the real path shows where the time goes).
 * `STUBDM_DISK_TRACE=N` makes main.ts create one DiskTrace of N entries; the
 * IDE controller (its task file, Alternate Status and bus-master registers,
 * the PRD walk, the interrupt line), the drives' backend requests, the file
 * backend (event loop or thread pool, read-ahead) and the ioreq server then
 * record into it, and HMP `info disktrace` prints it
 * (devices/ide/trace.ts). Without the variable nothing is created and every
 * trace point is one null check. The ring and its packing are core/trace.ts's.
 */
import { EventTrace, parseTraceEnv } from '../core/trace.ts';

export { EV_IOREQ_DONE, EV_IOREQ_WAKE, TRACE_MAX as DISK_TRACE_MAX, TRACE_MIN as DISK_TRACE_MIN, type TraceEvent } from '../core/trace.ts';

// ---- Event kinds: what `sub` and `value` hold for each ----
/** A task-file register read: sub = channel << 4 | register (0-7 the command block, REG_CTL for Alternate Status), value = what the guest got. */
export const EV_ATA_READ = 1;
/** A task-file register write: sub = channel << 4 | register (REG_CTL: Device Control), value = what the guest wrote. */
export const EV_ATA_WRITE = 2;
/** The data port, one ioreq (a REP INS/OUTS or a single access): sub = channel << 1 | 1 for a write, value = bytes asked for. */
export const EV_ATA_DATA = 3;
/** A bus-master register read: sub = offset in the 16-byte block (channel 1 at 8), value = what the guest got. */
export const EV_BM_READ = 4;
/** A bus-master register write: sub = offset, value = what the guest wrote. */
export const EV_BM_WRITE = 5;
/** A data command accepted: sub = sectors, value = its first LBA (low 32 bits: images below 2 TiB are exact). */
export const EV_XFER = 6;
/** The bus master walked the PRD table: sub = entries that cover the transfer, value = the table's total bytes. */
export const EV_PRD = 7;
/** A backend request issued: sub = slot << 2 | IO kind (0 other, 1 read, 2 write, 3 flush), value = bytes. */
export const EV_SUBMIT = 8;
/** A backend request settled (its promise, back on the event loop): sub = slot << 2, value = 0 ok, 1 failed. */
export const EV_COMPLETE = 9;
/** Inside the file backend: sub = FILE_*, value as each says. */
export const EV_FILE = 10;
/** Sequential read-ahead (file backend, page-cache modes): sub = RA_*, value as each says. */
export const EV_RA = 11;
/** A channel's interrupt line changed: sub = channel << 1 | level, value = ns the call took (a Xen DMOP on real Xen). */
export const EV_IRQ = 12;
// 13 and 14: the ioreq server's wake-up and answer around a disk access (core/trace.ts).
/** The bus master finished a transfer: sub = channel, value = BM_OK / BM_SHORT / BM_FAULT / BM_IOERR. */
export const EV_BM_DONE = 15;

/** EV_ATA_READ/WRITE register number of the control block (Alternate Status / Device Control). */
export const REG_CTL = 8;

/** EV_FILE: a read done on the event loop (preadv2 RWF_NOWAIT found it all in the page cache): value = bytes. */
export const FILE_SYNC = 0;
/** EV_FILE: (the rest of) a request goes to libuv's thread pool: value = bytes. */
export const FILE_POOL = 1;
/** EV_FILE: a thread-pool request's result reached JS: value = microseconds the event loop sat idle meanwhile (waiting for the pool). */
export const FILE_POOL_DONE = 2;
/** EV_FILE: a read on the event loop stopped short of the page cache (RWF_NOWAIT): value = bytes it did get. */
export const FILE_SYNC_SHORT = 3;
export const FILE_NAMES = ['sync read', 'to thread pool', 'thread pool done', 'sync read short (not cached)'] as const;

/** EV_RA: a sequential read inside the window already asked for: value = bytes still ahead of it. */
export const RA_HIT = 0;
/** EV_RA: a read the window did not cover (not sequential, or past what was asked): it starts again after it. */
export const RA_MISS = 1;
/** EV_RA: posix_fadvise(WILLNEED) asked for more: value = bytes asked. */
export const RA_ASK = 2;
export const RA_NAMES = ['hit', 'miss (not sequential)', 'ask'] as const;

/** EV_BM_DONE outcomes. */
export const BM_OK = 0;
export const BM_SHORT = 1;
export const BM_FAULT = 2;
export const BM_IOERR = 3;
export const BM_NAMES = ['ok', 'short PRD table', 'fault', 'I/O error'] as const;

export class DiskTrace extends EventTrace {
  /** `now`: milliseconds, the devices' clock (performance.now() on Xen, the virtual clock in tests). */
  constructor(entries: number, now: () => number) {
    super(entries, now, 'disk trace');
  }
}

/**
 * STUBDM_DISK_TRACE's value: null when unset or empty (no trace), the entry
 * count, or a message for a value that is not one.
 */
export function parseDiskTraceEnv(v: string | undefined): number | null | string {
  return parseTraceEnv('STUBDM_DISK_TRACE', v);
}
