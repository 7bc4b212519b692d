/**
 * An opt-in event trace of a NIC's latency path (issue #10: a guest's ping
 * through stubdm's e1000 took 3x as long as through QEMU's on real Xen, and
 * only the real path shows where the time goes). `STUBDM_NET_TRACE=N` makes
 * main.ts create one NetTrace of N entries; the e1000, its tap and the ioreq
 * server then record into it, and HMP `info nettrace` prints it
 * (devices/e1000/trace.ts). Without the variable nothing is created and every
 * trace point is one null check.
 *
 * The ring is one Float64Array of (timestamp, code) pairs, preallocated:
 * recording allocates nothing, whatever the guest does. A code packs an
 * event kind, a 17-bit argument (`sub`) and a 32-bit value into one double,
 * exactly (below 2^53): kind * 2^49 + sub * 2^32 + value.
 */

/** Entries a trace may hold: 64 (a register read records a few events before its own is completed) to 1 Mi (16 MiB). */
export const NET_TRACE_MIN = 64;
export const NET_TRACE_MAX = 1 << 20;

// ---- Event kinds: what `sub` and `value` hold for each ----
/** A register read: sub = offset in the register BAR, value = what the guest got. */
export const EV_REG_READ = 1;
/** A register write: sub = offset, value = what the guest wrote. */
export const EV_REG_WRITE = 2;
/** A frame handed to the backend: sub = length, value = frame info (frameInfo) | TXF_* flags. */
export const EV_TX = 3;
/** A frame offered to the NIC by the backend (read from the tap): sub = length, value = frame info | RXF_REFUSED. */
export const EV_RX = 4;
/** A received frame's descriptors written back: value = RDH after it. */
export const EV_RX_DMA = 5;
/** Interrupt causes set in ICR: sub = CAUSE_RAISED or CAUSE_FOLDED, value = the bits. */
export const EV_CAUSE = 6;
/** The INTx line changed: sub = the new level, value = 1 when an ITR hold ended it (the edge was due earlier). */
export const EV_INTX = 7;
/** A rising edge held back because the ITR interval is still running (its timer is armed): value = ICR & IMS. */
export const EV_INTX_HELD = 8;
/** A NIC timer armed: sub = timer id (TM_*), value = its delay in nanoseconds (up to 4.29 s: more than any of them). */
export const EV_TIMER_ARM = 9;
/** A NIC timer ran: sub = timer id. */
export const EV_TIMER_FIRE = 10;
/** A delay timer cancelled because its cause went out with another interrupt (folded): sub = timer id. */
export const EV_TIMER_CANCEL = 11;
/** The backend's fd woke the event loop: sub = the poll events (EV_READABLE 1, EV_WRITABLE 2 in net/native.ts). */
export const EV_TAP_WAKE = 12;
/** The ioreq server woke for an event-channel notification that then reached this NIC (time of the wake). */
export const EV_IOREQ_WAKE = 13;
/** The ioreq the NIC served is answered (notify sent back to Xen). */
export const EV_IOREQ_DONE = 14;

export const CAUSE_RAISED = 0;
export const CAUSE_FOLDED = 1;

/** Timer ids (EV_TIMER_*). */
export const TM_ITR = 0;
export const TM_TIDV = 1;
export const TM_TADV = 2;
export const TM_RDTR = 3;
export const TM_RADV = 4;
export const TM_KICK = 5;
export const TM_AUTONEG = 6;
export const TIMER_NAMES = ['ITR', 'TIDV', 'TADV', 'RDTR', 'RADV', 'kick', 'autoneg'] as const;

// ---- Frame info (EV_TX, EV_RX value): class in bits 0-1, flags in 2-3, ICMP sequence in 16-31 ----
export const FRAME_OTHER = 0;
export const FRAME_ECHO_REQUEST = 1;
export const FRAME_ECHO_REPLY = 2;
export const FRAME_ARP = 3;
export const FRAME_CLASS_MASK = 3;
/** EV_TX: sent from a later turn (a kick, the backend writable again), not inside the TDT write. */
export const TXF_DEFERRED = 4;
/** EV_TX: the backend refused it (it is offered again later). */
export const TXF_REFUSED = 8;
/** EV_RX: the NIC refused it (no free descriptors); the backend offers it again. */
export const RXF_REFUSED = 8;

const SUB_MAX = 0x1ffff;
const KIND_SCALE = 2 ** 49;
const SUB_SCALE = 2 ** 32;

/** One decoded entry (dump time only). */
export interface TraceEvent {
  t: number;
  kind: number;
  sub: number;
  value: number;
}

/**
 * Class and ICMP sequence of an Ethernet frame, for EV_TX/EV_RX: IPv4 ICMP
 * echo request/reply (not a later fragment), ARP, or other. Reads only
 * bytes inside `len`.
 */
export function frameInfo(f: Uint8Array, len: number): number {
  if (len < 14) return FRAME_OTHER;
  let l3 = 14;
  let type = (f[12] << 8) | f[13];
  if (type === 0x8100 && len >= 18) {
    type = (f[16] << 8) | f[17];
    l3 = 18;
  }
  if (type === 0x0806) return FRAME_ARP;
  if (type !== 0x0800 || len < l3 + 20 || f[l3 + 9] !== 1) return FRAME_OTHER;
  if ((((f[l3 + 6] & 0x1f) << 8) | f[l3 + 7]) !== 0) return FRAME_OTHER; // not the first fragment: no ICMP header
  const icmp = l3 + (f[l3] & 0x0f) * 4;
  if (len < icmp + 8) return FRAME_OTHER;
  const cls = f[icmp] === 8 ? FRAME_ECHO_REQUEST : f[icmp] === 0 ? FRAME_ECHO_REPLY : FRAME_OTHER;
  if (cls === FRAME_OTHER) return FRAME_OTHER;
  return (cls | (((f[icmp + 6] << 8) | f[icmp + 7]) << 16)) >>> 0;
}

export class NetTrace {
  readonly capacity: number;
  /** (timestamp, code) pairs; entry i at [2i, 2i+1]. */
  private readonly ring: Float64Array;
  /** Entries recorded since the start (the ring keeps the last `capacity`). */
  private count = 0;
  /** When the ioreq server last woke, until a register access records it (-1: recorded, or none). */
  private wakeAt = -1;
  /** A register access was recorded since the last EV_IOREQ_DONE. */
  private touched = false;

  /** `now`: milliseconds, the NIC's clock (performance.now() on Xen, the virtual clock in tests). */
  constructor(
    entries: number,
    readonly now: () => number,
  ) {
    if (!Number.isInteger(entries) || entries < NET_TRACE_MIN || entries > NET_TRACE_MAX) {
      throw new RangeError(`net trace of ${entries} entries: want ${NET_TRACE_MIN} to ${NET_TRACE_MAX}`);
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
   * (INTx falling on an ICR read) comes after it, and gets its value after.
   */
  complete(n: number, bits: number): void {
    if (this.count - n > this.capacity) return; // overwritten meanwhile
    this.ring[(n % this.capacity) * 2 + 1] += bits >>> 0;
  }

  /** A register access: records the ioreq wake that brought it first, if not yet. Returns the entry number. */
  reg(kind: number, off: number, value: number): number {
    if (this.wakeAt >= 0) {
      this.recordAt(this.wakeAt, EV_IOREQ_WAKE, 0, 0);
      this.wakeAt = -1;
    }
    this.touched = true;
    return this.recordAt(this.now(), kind, off > SUB_MAX ? SUB_MAX : off, value);
  }

  /** The ioreq server woke up (recorded only if a register access of the NIC follows). */
  ioreqWake(): void {
    this.wakeAt = this.now();
  }

  /** The ioreq server answered a request; recorded if the request reached the NIC. */
  ioreqDone(): void {
    if (!this.touched) return;
    this.touched = false;
    this.recordAt(this.now(), EV_IOREQ_DONE, 0, 0);
  }

  /** A frame sent or received: its length and frameInfo() | flags. */
  frame(kind: number, f: Uint8Array, len: number, flags: number): number {
    return this.record(kind, len > SUB_MAX ? SUB_MAX : len, (frameInfo(f, len) | flags) >>> 0);
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

  private recordAt(t: number, kind: number, sub: number, value: number): number {
    const n = this.count++;
    const at = (n % this.capacity) * 2;
    this.ring[at] = t;
    this.ring[at + 1] = kind * KIND_SCALE + sub * SUB_SCALE + (value >>> 0);
    return n;
  }
}

/**
 * STUBDM_NET_TRACE's value: null when unset or empty (no trace), the entry
 * count, or a message for a value that is not one.
 */
export function parseNetTraceEnv(v: string | undefined): number | null | string {
  if (v === undefined || v === '') return null;
  if (!/^[0-9]{1,8}$/.test(v) || Number(v) < NET_TRACE_MIN || Number(v) > NET_TRACE_MAX) {
    return `STUBDM_NET_TRACE=${JSON.stringify(v.slice(0, 32))} is not a number of trace entries from ${NET_TRACE_MIN} to ${NET_TRACE_MAX}`;
  }
  return Number(v);
}
