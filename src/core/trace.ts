/**
 * Opt-in event traces of a device's latency path: only the real Xen path
 * shows where a round trip's time goes (issue #10: a ping through the e1000;
 * issue #13: a disk request through IDE and the bus master), and a profiler
 * cannot tell the guest's side from ours. A device family's trace (the NIC's
 * net/trace.ts, the disk's block/trace.ts) is one of these, created by
 * main.ts only when its STUBDM_*_TRACE variable asks for it; without one
 * every trace point is one null check.
 *
 * The ring is one Float64Array of (timestamp, code) pairs, preallocated:
 * recording allocates nothing, whatever the guest does. A code packs an
 * event kind (0-15), a 17-bit argument (`sub`) and a 32-bit value into one
 * double, exactly (below 2^53): kind * 2^49 + sub * 2^32 + value. Kinds 13
 * and 14 are the ioreq server's wake-up and answer in every trace; a family
 * numbers its own events 1-12 and 15.
 *
 * The ioreq server tells every trace when it wakes and when it answers; a
 * trace writes the wake-up down only when an access of its own device
 * follows (access()), and the answer only after one, so a trace holds the
 * round trips of its device's ioreqs and nothing of the rest.
 */

/** Entries a trace may hold: 64 (a register read records a few events before its own is completed) to 1 Mi (16 MiB). */
export const TRACE_MIN = 64;
export const TRACE_MAX = 1 << 20;

/** The ioreq server woke for an event-channel notification that then reached this trace's device (time of the wake). */
export const EV_IOREQ_WAKE = 13;
/** The ioreq that reached this trace's device is answered (notify sent back to Xen). */
export const EV_IOREQ_DONE = 14;

/** Largest `sub`: wider arguments are clamped to it. */
export const SUB_MAX = 0x1ffff;
const KIND_SCALE = 2 ** 49;
const SUB_SCALE = 2 ** 32;

/** One decoded entry (dump time only). */
export interface TraceEvent {
  t: number;
  kind: number;
  sub: number;
  value: number;
}

/** What the ioreq server tells a trace (IoreqServer.traces). */
export interface IoreqTrace {
  ioreqWake(): void;
  ioreqDone(): void;
}

export class EventTrace implements IoreqTrace {
  readonly capacity: number;
  /** (timestamp, code) pairs; entry i at [2i, 2i+1]. */
  private readonly ring: Float64Array;
  /** Entries recorded since the start (the ring keeps the last `capacity`). */
  private count = 0;
  /** When the ioreq server last woke, until an access records it (-1: recorded, or none). */
  private wakeAt = -1;
  /** An access was recorded since the last EV_IOREQ_DONE. */
  private touched = false;

  /**
   * `now`: milliseconds, the devices' clock (performance.now() on Xen, the
   * virtual clock in tests). `what` names the trace in a refused size.
   */
  constructor(
    entries: number,
    readonly now: () => number,
    what = 'trace',
  ) {
    if (!Number.isInteger(entries) || entries < TRACE_MIN || entries > TRACE_MAX) {
      throw new RangeError(`${what} of ${entries} entries: want ${TRACE_MIN} to ${TRACE_MAX}`);
    }
    this.capacity = entries;
    this.ring = new Float64Array(entries * 2);
  }

  /** Entries recorded since the start, kept or not. */
  get recorded(): number {
    return this.count;
  }

  /** Record one event now; returns its entry number (for complete()). */
  record(kind: number, sub: number, value: number): number {
    return this.recordAt(this.now(), kind, sub, value);
  }

  /**
   * Adds `bits` to the value of entry `n` (recorded as 0 or without them):
   * a register read is recorded before it runs, so that what it causes
   * (an interrupt line falling on a status read) comes after it, and gets
   * its value after.
   */
  complete(n: number, bits: number): void {
    if (this.count - n > this.capacity) return; // overwritten meanwhile
    this.ring[(n % this.capacity) * 2 + 1] += bits >>> 0;
  }

  /** A guest access of the device: records the ioreq wake that brought it first, if not yet. Returns the entry number. */
  access(kind: number, sub: number, value: number): number {
    if (this.wakeAt >= 0) {
      this.recordAt(this.wakeAt, EV_IOREQ_WAKE, 0, 0);
      this.wakeAt = -1;
    }
    this.touched = true;
    return this.recordAt(this.now(), kind, sub > SUB_MAX ? SUB_MAX : sub, value);
  }

  /** The ioreq server woke up (recorded only if an access of the device follows). */
  ioreqWake(): void {
    this.wakeAt = this.now();
  }

  /** The ioreq server answered a request; recorded if the request reached the device. */
  ioreqDone(): void {
    if (!this.touched) return;
    this.touched = false;
    this.recordAt(this.now(), EV_IOREQ_DONE, 0, 0);
  }

  /** The kept entries, oldest first (dump time: allocates). */
  events(): TraceEvent[] {
    const n = Math.min(this.count, this.capacity);
    const out: TraceEvent[] = [];
    for (let i = this.count - n; i < this.count; i++) {
      const at = (i % this.capacity) * 2;
      const code = this.ring[at + 1];
      const kind = Math.floor(code / KIND_SCALE);
      const rest = code - kind * KIND_SCALE;
      const sub = Math.floor(rest / SUB_SCALE);
      out.push({ t: this.ring[at], kind, sub, value: rest - sub * SUB_SCALE });
    }
    return out;
  }

  /** Record at a given time (`sub` must already fit). */
  protected recordAt(t: number, kind: number, sub: number, value: number): number {
    const n = this.count++;
    const at = (n % this.capacity) * 2;
    this.ring[at] = t;
    this.ring[at + 1] = kind * KIND_SCALE + sub * SUB_SCALE + (value >>> 0);
    return n;
  }
}

/**
 * A STUBDM_*_TRACE variable's value: null when unset or empty (no trace),
 * the entry count, or a message for a value that is not one.
 */
export function parseTraceEnv(name: string, v: string | undefined): number | null | string {
  if (v === undefined || v === '') return null;
  if (!/^[0-9]{1,8}$/.test(v) || Number(v) < TRACE_MIN || Number(v) > TRACE_MAX) {
    return `${name}=${JSON.stringify(v.slice(0, 32))} is not a number of trace entries from ${TRACE_MIN} to ${TRACE_MAX}`;
  }
  return Number(v);
}

/**
 * The last `max` of `ev` as text, one event a line after a heading: the time
 * from `t0` (ms, `width` wide) and from the event before, then describe(e).
 */
export function eventLines(ev: readonly TraceEvent[], max: number, t0: number, width: number, describe: (e: TraceEvent) => string): string[] {
  const from = Math.max(0, ev.length - max);
  const ms = (v: number, w: number): string => v.toFixed(3).padStart(w);
  const out = [`events${from > 0 ? ` (the last ${ev.length - from})` : ''}:`, `${'t_ms'.padStart(width)}${'dt_ms'.padStart(10)}  event`];
  let prev = from > 0 ? ev[from - 1].t : t0;
  for (let i = from; i < ev.length; i++) {
    const e = ev[i];
    out.push(`${ms(e.t - t0, width)}${ms(e.t - prev, 10)}  ${describe(e)}`);
    prev = e.t;
  }
  return out;
}

/** Median of xs (null when empty); xs is not changed. */
export function median(xs: readonly number[]): number | null {
  return quantile(xs, 0.5);
}

/**
 * The q-quantile of xs (null when empty): the median averages the two middle
 * values of an even count; other quantiles take the nearest rank.
 */
export function quantile(xs: readonly number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  if (q === 0.5) {
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  }
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
