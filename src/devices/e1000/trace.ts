/**
 * HMP `info nettrace`: the e1000 event trace (net/trace.ts) as text, for
 * `xl qemu-monitor-command <domid> "info nettrace"` (issue #10). A summary
 * per guest ping first: each ICMP echo request the NIC sent, matched by its
 * sequence number to the echo reply it received, split into the phases a
 * ping's round trip crosses in the device model:
 *
 *   tdt>tx   the guest's TDT write  -> the request written to the tap
 *   tx>wake  written to the tap     -> the tap's fd readable with the reply
 *   wake>rx  that wake-up           -> the reply read and offered to the NIC
 *   rx>dma   offered                -> its descriptors written back (RX DMA)
 *   dma>irq  RX DMA done            -> INTx asserted (0 when the line was already up)
 *   irq>icr  INTx asserted          -> the guest's ISR reads ICR
 *   icr>ims  ICR read               -> the guest re-enables interrupts (IMS write: its NAPI poll is done)
 *
 * with what the ping cost from its TDT write to the next ping's: interrupts
 * (rising edges), NIC timer runs, register accesses, ioreqs answered, edges
 * held by ITR, and from the TDT write to the IMS write the median time the
 * DM spent per ioreq (wake-up to answer, dm_us) and the median time between
 * answering one of them and waking for the next (gap_ms: Xen, the guest's
 * own work and its next exit). Then the last events, one a line, with the
 * time relative to the first event kept. Output is bounded: it goes back
 * through QMP.
 */
import * as T from '../../net/trace.ts';
import { eventLines as listEvents, median } from '../../core/trace.ts';
import * as R from './regs.ts';
import { E1000_TABLE } from './table.ts';

/** Events listed after the summary (the summary covers every event kept). */
export const NETTRACE_EVENT_LINES = 400;
/** Pings summarised (the most recent). */
export const NETTRACE_PING_LINES = 100;

/** One ping's timestamps (ms, trace clock) and costs; a timestamp is null when its event is not in the trace. */
export interface PingPhases {
  seq: number;
  tdt: number | null;
  tx: number;
  /** The request went out from a later turn (kick, backend writable), not inside the TDT write. */
  deferred: boolean;
  wake: number | null;
  rx: number | null;
  dma: number | null;
  irq: number | null;
  icr: number | null;
  ims: number | null;
  irqs: number;
  timers: number;
  regs: number;
  ioreqs: number;
  held: number;
  /** Median ms from an ioreq wake-up to its answer, and from an answer to the next wake-up, TDT to IMS. */
  dmMs: number | null;
  gapMs: number | null;
}

const ICR_NAMES: Array<[number, string]> = [
  [R.ICR_TXDW, 'TXDW'],
  [R.ICR_TXQE, 'TXQE'],
  [R.ICR_LSC, 'LSC'],
  [R.ICR_RXSEQ, 'RXSEQ'],
  [R.ICR_RXDMT0, 'RXDMT0'],
  [R.ICR_RXO, 'RXO'],
  [R.ICR_RXT0, 'RXT0'],
  [R.ICR_MDAC, 'MDAC'],
  [R.ICR_RXCFG, 'RXCFG'],
  [R.ICR_TXD_LOW, 'TXD_LOW'],
  [R.ICR_SRPD, 'SRPD'],
];

function causes(v: number): string {
  if (v === 0xffffffff) return 'all';
  const names = ICR_NAMES.filter(([b]) => v & b).map(([, n]) => n);
  const rest = (v & ~ICR_NAMES.reduce((a, [b]) => a | b, 0)) >>> 0;
  if (rest !== 0) names.push(`0x${rest.toString(16)}`);
  return names.length === 0 ? '0' : names.join('|');
}

const FRAME_NAMES = ['other', 'echo-request', 'echo-reply', 'arp'];

function frame(v: number): string {
  const cls = v & T.FRAME_CLASS_MASK;
  const seq = cls === T.FRAME_ECHO_REQUEST || cls === T.FRAME_ECHO_REPLY ? ` seq=${v >>> 16}` : '';
  return `${FRAME_NAMES[cls]}${seq}`;
}

const hex8 = (v: number): string => `0x${v.toString(16).padStart(8, '0')}`;

/** One event as text (without its time). */
export function describeEvent(e: T.TraceEvent): string {
  switch (e.kind) {
    case T.EV_REG_READ:
    case T.EV_REG_WRITE: {
      const name = E1000_TABLE.nameAt(e.sub) ?? `0x${e.sub.toString(16)}`;
      const icr = e.sub === R.ICR || e.sub === R.IMS || e.sub === R.IMC ? ` (${causes(e.value)})` : '';
      return `${e.kind === T.EV_REG_READ ? 'R' : 'W'} ${name} ${e.kind === T.EV_REG_READ ? '->' : '<-'} ${hex8(e.value)}${icr}`;
    }
    case T.EV_TX:
      return `TX ${e.sub} bytes ${frame(e.value)} ${e.value & T.TXF_DEFERRED ? 'deferred' : 'in TDT write'}${e.value & T.TXF_REFUSED ? ' REFUSED by backend' : ''}`;
    case T.EV_RX:
      return `RX ${e.sub} bytes ${frame(e.value)}${e.value & T.RXF_REFUSED ? ' refused (no descriptors)' : ''}`;
    case T.EV_RX_DMA:
      return `RX DMA done, RDH=${e.value}`;
    case T.EV_CAUSE:
      return `${e.sub === T.CAUSE_FOLDED ? 'cause folded in' : 'cause'} ${causes(e.value)}`;
    case T.EV_INTX:
      return `INTx ${e.sub}${e.value === 1 ? ' (held by ITR until now)' : ''}`;
    case T.EV_INTX_HELD:
      return `INTx edge held by ITR (pending ${causes(e.value)})`;
    case T.EV_TIMER_ARM:
      return `arm ${T.TIMER_NAMES[e.sub] ?? e.sub} ${(e.value / 1000).toFixed(3)} us`;
    case T.EV_TIMER_FIRE:
      return `fire ${T.TIMER_NAMES[e.sub] ?? e.sub}`;
    case T.EV_TIMER_CANCEL:
      return `cancel ${T.TIMER_NAMES[e.sub] ?? e.sub} (its cause went with another interrupt)`;
    case T.EV_TAP_WAKE:
      return `tap wake${e.sub & 1 ? ' readable' : ''}${e.sub & 2 ? ' writable' : ''}`;
    case T.EV_IOREQ_WAKE:
      return 'ioreq wake';
    case T.EV_IOREQ_DONE:
      return 'ioreq answered';
    default:
      return `kind ${e.kind} sub ${e.sub} value ${e.value}`;
  }
}

const isReg = (e: T.TraceEvent, kind: number, off: number): boolean => e.kind === kind && e.sub === off;

/** The pings in `ev` (oldest first): see the file comment for what each field means. */
export function pingPhases(ev: readonly T.TraceEvent[]): PingPhases[] {
  // INTx level after each event (0 before the first INTx event kept).
  const level = new Uint8Array(ev.length);
  let l = 0;
  for (let i = 0; i < ev.length; i++) {
    if (ev[i].kind === T.EV_INTX) l = ev[i].sub;
    level[i] = l;
  }
  const reqs: number[] = [];
  for (let i = 0; i < ev.length; i++) {
    const e = ev[i];
    if (e.kind === T.EV_TX && (e.value & T.FRAME_CLASS_MASK) === T.FRAME_ECHO_REQUEST && !(e.value & T.TXF_REFUSED)) reqs.push(i);
  }
  const firstAfter = (from: number, to: number, f: (e: T.TraceEvent) => boolean): number => {
    for (let i = from; i < to; i++) if (f(ev[i])) return i;
    return -1;
  };
  const lastBefore = (from: number, downTo: number, f: (e: T.TraceEvent) => boolean): number => {
    for (let i = from; i > downTo; i--) if (f(ev[i])) return i;
    return -1;
  };
  const at = (i: number): number | null => (i < 0 ? null : ev[i].t);
  const tdtIdx = reqs.map((i, k) => lastBefore(i - 1, k > 0 ? reqs[k - 1] : -1, (e) => isReg(e, T.EV_REG_WRITE, R.TDT)));
  return reqs.map((i, k) => {
    const tx = ev[i];
    const seq = tx.value >>> 16;
    const start = tdtIdx[k] >= 0 ? tdtIdx[k] : i;
    const next = k + 1 < reqs.length ? (tdtIdx[k + 1] >= 0 ? tdtIdx[k + 1] : reqs[k + 1]) : ev.length;
    const rx = firstAfter(i + 1, ev.length, (e) => e.kind === T.EV_RX && (e.value & T.FRAME_CLASS_MASK) === T.FRAME_ECHO_REPLY && e.value >>> 16 === seq && !(e.value & T.RXF_REFUSED));
    const wake = rx < 0 ? -1 : lastBefore(rx - 1, i, (e) => e.kind === T.EV_TAP_WAKE && (e.sub & 1) !== 0);
    const rxEnd = rx < 0 ? -1 : firstAfter(rx + 1, ev.length, (e) => e.kind === T.EV_RX);
    const dma = rx < 0 ? -1 : firstAfter(rx + 1, rxEnd < 0 ? ev.length : rxEnd, (e) => e.kind === T.EV_RX_DMA);
    let irq = -1;
    if (dma >= 0) irq = level[dma] === 1 ? dma : firstAfter(dma + 1, ev.length, (e) => e.kind === T.EV_INTX && e.sub === 1);
    const icr = irq < 0 ? -1 : firstAfter(irq + 1, ev.length, (e) => isReg(e, T.EV_REG_READ, R.ICR));
    const ims = icr < 0 ? -1 : firstAfter(icr + 1, ev.length, (e) => isReg(e, T.EV_REG_WRITE, R.IMS));
    const p: PingPhases = {
      seq,
      tdt: at(tdtIdx[k]),
      tx: tx.t,
      deferred: (tx.value & T.TXF_DEFERRED) !== 0,
      wake: at(wake),
      rx: at(rx),
      dma: at(dma),
      irq: at(irq),
      icr: at(icr),
      ims: at(ims),
      irqs: 0,
      timers: 0,
      regs: 0,
      ioreqs: 0,
      held: 0,
      dmMs: null,
      gapMs: null,
    };
    for (let j = start; j < next; j++) {
      const e = ev[j];
      if (e.kind === T.EV_INTX && e.sub === 1) p.irqs++;
      else if (e.kind === T.EV_TIMER_FIRE) p.timers++;
      else if (e.kind === T.EV_REG_READ || e.kind === T.EV_REG_WRITE) p.regs++;
      else if (e.kind === T.EV_IOREQ_DONE) p.ioreqs++;
      else if (e.kind === T.EV_INTX_HELD || (e.kind === T.EV_TIMER_ARM && e.sub === T.TM_ITR)) p.held++;
    }
    // The DM's own time per ioreq and the time outside it between two, over the ping's active part.
    const dm: number[] = [];
    const gap: number[] = [];
    const end = ims >= 0 ? ims : Math.min(next, ev.length - 1);
    let wokeAt = -1;
    let doneAt = -1;
    for (let j = start; j <= end && j < next; j++) {
      const e = ev[j];
      if (e.kind === T.EV_IOREQ_WAKE) {
        if (doneAt >= 0) gap.push(e.t - doneAt);
        wokeAt = e.t;
      } else if (e.kind === T.EV_IOREQ_DONE) {
        if (wokeAt >= 0) dm.push(e.t - wokeAt);
        wokeAt = -1;
        doneAt = e.t;
      }
    }
    p.dmMs = median(dm);
    p.gapMs = median(gap);
    return p;
  });
}

const PHASES: Array<[string, (p: PingPhases) => number | null, (p: PingPhases) => number | null]> = [
  ['tdt>tx', (p) => p.tdt, (p) => p.tx],
  ['tx>wake', (p) => p.tx, (p) => p.wake],
  ['wake>rx', (p) => p.wake, (p) => p.rx],
  ['rx>dma', (p) => p.rx, (p) => p.dma],
  ['dma>irq', (p) => p.dma, (p) => p.irq],
  ['irq>icr', (p) => p.irq, (p) => p.icr],
  ['icr>ims', (p) => p.icr, (p) => p.ims],
  ['total', (p) => p.tdt ?? p.tx, (p) => p.ims],
];

/** Each phase of `p` in ms (null where an end is missing), in PHASES order. */
export function phaseMs(p: PingPhases): Array<number | null> {
  return PHASES.map(([, a, b]) => {
    const x = a(p);
    const y = b(p);
    return x === null || y === null ? null : y - x;
  });
}

const ms = (v: number | null, w = 8): string => (v === null ? '-' : v.toFixed(3)).padStart(w);

/** The whole `info nettrace` answer. */
export function formatNetTrace(trace: T.NetTrace, eventLines = NETTRACE_EVENT_LINES): string {
  const ev = trace.events();
  const out: string[] = [];
  const t0 = ev.length > 0 ? ev[0].t : 0;
  out.push(`nettrace: ${ev.length} events kept of ${trace.recorded} recorded (ring of ${trace.capacity}); times in ms from the first kept event`);
  const pings = pingPhases(ev);
  out.push(`pings: ${pings.length} echo requests sent (a reply is matched by ICMP sequence); phases in ms:`);
  out.push('  tdt>tx: TDT write to tap write; tx>wake: tap write to tap readable with the reply; wake>rx: to the reply read;');
  out.push('  rx>dma: to its RX DMA; dma>irq: to INTx up; irq>icr: to the ISR\'s ICR read; icr>ims: to the IMS write (poll done)');
  out.push('  irqs, timers, regs, ioreqs, held: INTx edges, NIC timer runs, register accesses, ioreqs answered, edges held by ITR,');
  out.push('  from this TDT write to the next ping\'s; dm_us / gap_ms: median DM time per ioreq / median time between ioreqs, TDT to IMS');
  const head = ['seq', 't', ...PHASES.map(([n]) => n)].map((h, i) => h.padStart(i === 0 ? 5 : i === 1 ? 10 : 8)).join('');
  out.push(`${head}  irqs timers  regs ioreqs held  dm_us gap_ms tx`);
  const shown = pings.slice(-NETTRACE_PING_LINES);
  if (pings.length > shown.length) out.push(`  (the first ${pings.length - shown.length} pings not listed; medians cover all)`);
  for (const p of shown) {
    const ph = phaseMs(p).map((v) => ms(v)).join('');
    out.push(
      `${String(p.seq).padStart(5)}${ms((p.tdt ?? p.tx) - t0, 10)}${ph}` +
        `${String(p.irqs).padStart(6)}${String(p.timers).padStart(7)}${String(p.regs).padStart(6)}${String(p.ioreqs).padStart(7)}${String(p.held).padStart(5)}` +
        `${(p.dmMs === null ? '-' : (p.dmMs * 1000).toFixed(0)).padStart(7)}${ms(p.gapMs, 7)} ${p.deferred ? 'deferred' : 'sync'}`,
    );
  }
  if (pings.length > 0) {
    const all = pings.map(phaseMs);
    const med = PHASES.map((_, i) => median(all.flatMap((r) => (r[i] === null ? [] : [r[i]!])))).map((v) => ms(v)).join('');
    const avg = (f: (p: PingPhases) => number): string => (pings.reduce((a, p) => a + f(p), 0) / pings.length).toFixed(2);
    out.push(`${'median'.padStart(15)}${med}  per ping: irqs ${avg((p) => p.irqs)} timers ${avg((p) => p.timers)} regs ${avg((p) => p.regs)} ioreqs ${avg((p) => p.ioreqs)} held ${avg((p) => p.held)}`);
    out.push(`  replies seen: ${pings.filter((p) => p.rx !== null).length} of ${pings.length}`);
  }
  const fired = new Array<number>(T.TIMER_NAMES.length).fill(0);
  for (const e of ev) if (e.kind === T.EV_TIMER_FIRE && e.sub < fired.length) fired[e.sub]++;
  out.push(`timer runs in the trace: ${T.TIMER_NAMES.map((n, i) => `${n} ${fired[i]}`).join(', ')}`);
  out.push(...listEvents(ev, eventLines, t0, 10, describeEvent));
  return out.map((x) => `${x}\n`).join('');
}

/** The answer when stubdm runs without a trace. */
export const NETTRACE_OFF = 'nettrace: off (start stubdm with STUBDM_NET_TRACE=<entries>, e.g. 8192)\n';
