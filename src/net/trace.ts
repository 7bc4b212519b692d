/**
 * The NIC's event trace (issue #10: a guest's ping through stubdm's e1000
 * took 3x as long as through QEMU's on real Xen, and only the real path
 * shows where the time goes). `STUBDM_NET_TRACE=N` makes main.ts create one
 * NetTrace of N entries; the e1000, its tap and the ioreq server then record
 * into it, and HMP `info nettrace` prints it (devices/e1000/trace.ts).
 * Without the variable nothing is created and every trace point is one null
 * check. The ring and its packing are core/trace.ts's.
 */
import { EventTrace, parseTraceEnv, SUB_MAX, TRACE_MAX, TRACE_MIN } from '../core/trace.ts';

export { EV_IOREQ_DONE, EV_IOREQ_WAKE, type TraceEvent } from '../core/trace.ts';

/** Entries a trace may hold (core/trace.ts). */
export const NET_TRACE_MIN = TRACE_MIN;
export const NET_TRACE_MAX = TRACE_MAX;

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
// 13 and 14: the ioreq server's wake-up and answer around a NIC access (core/trace.ts).

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

export class NetTrace extends EventTrace {
  /** `now`: milliseconds, the NIC's clock (performance.now() on Xen, the virtual clock in tests). */
  constructor(entries: number, now: () => number) {
    super(entries, now, 'net trace');
  }

  /** A register access (core/trace.ts access()). */
  reg(kind: number, off: number, value: number): number {
    return this.access(kind, off, value);
  }

  /** A frame sent or received: its length and frameInfo() | flags. */
  frame(kind: number, f: Uint8Array, len: number, flags: number): number {
    return this.record(kind, len > SUB_MAX ? SUB_MAX : len, (frameInfo(f, len) | flags) >>> 0);
  }
}

/**
 * STUBDM_NET_TRACE's value: null when unset or empty (no trace), the entry
 * count, or a message for a value that is not one.
 */
export function parseNetTraceEnv(v: string | undefined): number | null | string {
  return parseTraceEnv('STUBDM_NET_TRACE', v);
}
