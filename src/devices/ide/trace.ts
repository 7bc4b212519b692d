/**
 * HMP `info disktrace`: the disk event trace (block/trace.ts) as text, for
 * `xl qemu-monitor-command <domid> "info disktrace"` (issue #13). First a
 * line per DMA command (READ/WRITE DMA, EXT or not), split into the phases a
 * request crosses between the guest's command write and its next one:
 *
 *   cmd>go    the Command register write -> the bus master's Start written
 *   go>sub    Start                      -> the backend request issued (PRD walk, guest page views)
 *   sub>done  issued                     -> it settled on the event loop (the backend: the thread
 *                                           pool, or a read served from the page cache at once)
 *   done>irq  settled                    -> INTRQ raised (ours)
 *   irq>ack   INTRQ raised               -> the guest's next access to the controller (its wake-up):
 *                                           interrupt delivery through Xen into the guest, time we
 *                                           cannot see into
 *   ack>stop  that access                -> the bus master's Start cleared
 *   stop>st   stopped                    -> the Status read (INTRQ lowered)
 *   st>next   Status read                -> the next Command register write (the guest finishes the
 *                                           request, and sets up the next one's task file)
 *
 * with what the request cost from its command write to the next: bytes, the
 * ioreqs that reached the controller, the median time the DM spent on each
 * (wake-up to answer, dm_us) and between answering one and waking for the
 * next (gap_ms: Xen, the guest's own work and its next exit), the interrupt
 * call's cost and the event loop's idle time while the thread pool worked.
 * Then per direction the medians and 90th percentiles over the last
 * DISKTRACE_SUMMARY_REQS requests, each as one `disktrace read:`/`write:`
 * line of key=value pairs (the e2e disk scenario reads them); then the PIO
 * data commands (READ SECTORS with one sector per DRQ block is how firmware
 * loads a kernel): ioreqs per sector and their dm_us; then the last events,
 * one a line. Output is bounded: it goes back through QMP.
 */
import * as T from '../../block/trace.ts';
import { eventLines as listEvents, median, quantile, type TraceEvent } from '../../core/trace.ts';
import { BMDMA_REGS } from './bmdma.ts';
import * as R from './regs.ts';

/** Events listed after the summaries (the summaries cover every event kept). */
export const DISKTRACE_EVENT_LINES = 400;
/** DMA requests listed (the most recent). */
export const DISKTRACE_REQ_LINES = 100;
/** Requests of each direction the medians cover (the most recent): a 64 MiB dd of 512 KiB requests. */
export const DISKTRACE_SUMMARY_REQS = 128;

const DMA_READ = new Set([R.CMD_READ_DMA, R.CMD_READ_DMA_NORETRY, R.CMD_READ_DMA_EXT]);
const DMA_WRITE = new Set([R.CMD_WRITE_DMA, R.CMD_WRITE_DMA_NORETRY, R.CMD_WRITE_DMA_EXT]);
const PIO_CMDS = new Set([
  R.CMD_READ_SECTORS, R.CMD_READ_SECTORS_NORETRY, R.CMD_READ_SECTORS_EXT, R.CMD_READ_MULTIPLE, R.CMD_READ_MULTIPLE_EXT,
  R.CMD_WRITE_SECTORS, R.CMD_WRITE_SECTORS_NORETRY, R.CMD_WRITE_SECTORS_EXT, R.CMD_WRITE_MULTIPLE, R.CMD_WRITE_MULTIPLE_EXT,
]);

const CMD_NAMES = new Map<number, string>([
  [R.CMD_READ_SECTORS, 'READ SECTORS'], [R.CMD_READ_SECTORS_NORETRY, 'READ SECTORS'], [R.CMD_READ_SECTORS_EXT, 'READ SECTORS EXT'],
  [R.CMD_READ_DMA_EXT, 'READ DMA EXT'], [R.CMD_READ_MULTIPLE_EXT, 'READ MULTIPLE EXT'], [R.CMD_WRITE_SECTORS, 'WRITE SECTORS'],
  [R.CMD_WRITE_SECTORS_NORETRY, 'WRITE SECTORS'], [R.CMD_WRITE_SECTORS_EXT, 'WRITE SECTORS EXT'], [R.CMD_WRITE_DMA_EXT, 'WRITE DMA EXT'],
  [R.CMD_WRITE_MULTIPLE_EXT, 'WRITE MULTIPLE EXT'], [R.CMD_READ_VERIFY, 'READ VERIFY'], [R.CMD_READ_VERIFY_EXT, 'READ VERIFY EXT'],
  [R.CMD_PACKET, 'PACKET'], [R.CMD_IDENTIFY_PACKET_DEVICE, 'IDENTIFY PACKET DEVICE'], [R.CMD_READ_MULTIPLE, 'READ MULTIPLE'],
  [R.CMD_WRITE_MULTIPLE, 'WRITE MULTIPLE'], [R.CMD_SET_MULTIPLE_MODE, 'SET MULTIPLE MODE'], [R.CMD_READ_DMA, 'READ DMA'],
  [R.CMD_READ_DMA_NORETRY, 'READ DMA'], [R.CMD_WRITE_DMA, 'WRITE DMA'], [R.CMD_WRITE_DMA_NORETRY, 'WRITE DMA'],
  [R.CMD_FLUSH_CACHE, 'FLUSH CACHE'], [R.CMD_FLUSH_CACHE_EXT, 'FLUSH CACHE EXT'], [R.CMD_IDENTIFY_DEVICE, 'IDENTIFY DEVICE'],
  [R.CMD_SET_FEATURES, 'SET FEATURES'], [R.CMD_CHECK_POWER_MODE, 'CHECK POWER MODE'], [R.CMD_EXECUTE_DEVICE_DIAGNOSTIC, 'EXECUTE DEVICE DIAGNOSTIC'],
]);
const READ_REGS = ['DATA', 'ERROR', 'NSECTOR', 'LBAL', 'LBAM', 'LBAH', 'DEVICE', 'STATUS', 'ALTSTATUS'];
const WRITE_REGS = ['DATA', 'FEATURE', 'NSECTOR', 'LBAL', 'LBAM', 'LBAH', 'DEVICE', 'COMMAND', 'DEVCTL'];
const IO_KINDS = ['other', 'read', 'write', 'flush'];

const hex2 = (v: number): string => `0x${v.toString(16).padStart(2, '0')}`;

/** One event as text (without its time). */
export function describeEvent(e: TraceEvent): string {
  switch (e.kind) {
    case T.EV_ATA_READ:
    case T.EV_ATA_WRITE: {
      const ch = e.sub >> 4;
      const reg = e.sub & 15;
      const rd = e.kind === T.EV_ATA_READ;
      const name = (rd ? READ_REGS : WRITE_REGS)[reg] ?? `reg${reg}`;
      const cmd = !rd && reg === R.REG_COMMAND ? ` ${CMD_NAMES.get(e.value) ?? 'command'}` : '';
      return `${rd ? 'R' : 'W'} ch${ch} ${name} ${rd ? '->' : '<-'} ${hex2(e.value)}${cmd}`;
    }
    case T.EV_ATA_DATA:
      return `PIO ch${e.sub >> 1} data ${e.sub & 1 ? 'out' : 'in'} ${e.value} bytes`;
    case T.EV_BM_READ:
    case T.EV_BM_WRITE: {
      const name = BMDMA_REGS.nameAt(e.sub) ?? `0x${e.sub.toString(16)}`;
      return `${e.kind === T.EV_BM_READ ? 'R' : 'W'} BM ${name} ${e.kind === T.EV_BM_READ ? '->' : '<-'} 0x${e.value.toString(16)}`;
    }
    case T.EV_XFER:
      return `transfer ${e.sub} sectors at LBA ${e.value}`;
    case T.EV_PRD:
      return `PRD table: ${e.sub} entries cover it, ${e.value} bytes in all`;
    case T.EV_SUBMIT:
      return `backend slot ${e.sub >> 2} ${IO_KINDS[e.sub & 3]} ${e.value} bytes issued`;
    case T.EV_COMPLETE:
      return `backend slot ${e.sub >> 2} ${e.value === 0 ? 'done' : 'FAILED'}`;
    case T.EV_FILE:
      return `file: ${T.FILE_NAMES[e.sub] ?? e.sub} ${e.sub === T.FILE_POOL_DONE ? `(event loop idle ${(e.value / 1000).toFixed(3)} ms)` : `${e.value} bytes`}`;
    case T.EV_RA:
      return `read-ahead ${T.RA_NAMES[e.sub] ?? e.sub}${e.sub === T.RA_MISS ? '' : ` ${e.value} bytes${e.sub === T.RA_HIT ? ' ahead' : ''}`}`;
    case T.EV_IRQ:
      return `INTRQ ch${e.sub >> 1} ${e.sub & 1} (call ${(e.value / 1000).toFixed(1)} us)`;
    case T.EV_IOREQ_WAKE:
      return 'ioreq wake';
    case T.EV_IOREQ_DONE:
      return 'ioreq answered';
    case T.EV_BM_DONE:
      return `bus master ch${e.sub} done: ${T.BM_NAMES[e.value] ?? e.value}`;
    default:
      return `kind ${e.kind} sub ${e.sub} value ${e.value}`;
  }
}

/** One DMA command's timestamps (ms, trace clock) and costs; a timestamp is null when its event is not in the trace. */
export interface DmaRequest {
  ch: number;
  cmd: number;
  write: boolean;
  /** Bytes the command asked for (its sector count), or null without its transfer event. */
  bytes: number | null;
  lba: number | null;
  cmdAt: number;
  go: number | null;
  sub: number | null;
  done: number | null;
  irq: number | null;
  ack: number | null;
  stop: number | null;
  st: number | null;
  next: number | null;
  /** Ioreqs answered, and the DM's time for each (wake-up to answer) and between two (answer to the next wake-up), ms. */
  ioreqs: number;
  dm: number[];
  gap: number[];
  /** PRD entries covering the transfer. */
  prd: number | null;
  /** The interrupt call's cost, microseconds. */
  irqUs: number | null;
  /** The event loop's idle time while thread-pool requests ran (ms), and whether a read was served on the event loop. */
  poolIdleMs: number;
  sync: boolean;
  raHit: number;
  raMiss: number;
  /** The bus master's outcome (T.BM_*), or null. */
  outcome: number | null;
}

/** One PIO data command (READ/WRITE SECTORS or MULTIPLE) and what it cost. */
export interface PioCommand {
  ch: number;
  cmd: number;
  cmdAt: number;
  sectors: number | null;
  dataBytes: number;
  ioreqs: number;
  dm: number[];
  /** Backend requests (the drive reads up to 128 KiB ahead per request). */
  submits: number;
}

const isAccess = (e: TraceEvent): boolean =>
  e.kind === T.EV_ATA_READ || e.kind === T.EV_ATA_WRITE || e.kind === T.EV_ATA_DATA || e.kind === T.EV_BM_READ || e.kind === T.EV_BM_WRITE;
const isCommand = (e: TraceEvent): boolean => e.kind === T.EV_ATA_WRITE && (e.sub & 15) === R.REG_COMMAND;

/** Ioreqs of ev[from..to): how many were answered, the DM's time on each and the gaps between them. */
function ioreqTimes(ev: readonly TraceEvent[], from: number, to: number): { ioreqs: number; dm: number[]; gap: number[] } {
  const dm: number[] = [];
  const gap: number[] = [];
  let ioreqs = 0;
  let wokeAt = -1;
  let doneAt = -1;
  for (let j = from; j < to; j++) {
    const e = ev[j];
    if (e.kind === T.EV_IOREQ_WAKE) {
      if (doneAt >= 0) gap.push(e.t - doneAt);
      wokeAt = e.t;
    } else if (e.kind === T.EV_IOREQ_DONE) {
      ioreqs++;
      if (wokeAt >= 0) dm.push(e.t - wokeAt);
      wokeAt = -1;
      doneAt = e.t;
    }
  }
  return { ioreqs, dm, gap };
}

/** Each command write's index, its channel's next command write (or ev.length), and the window of its ioreqs. */
function commandWindows(ev: readonly TraceEvent[]): Array<{ i: number; next: number; from: number; to: number }> {
  const cmds: number[] = [];
  for (let i = 0; i < ev.length; i++) if (isCommand(ev[i])) cmds.push(i);
  // The wake-up that brought an access is recorded just before it: it belongs with the access.
  const withWake = (i: number): number => (i > 0 && ev[i - 1].kind === T.EV_IOREQ_WAKE ? i - 1 : i);
  return cmds.map((i, k) => {
    const ch = ev[i].sub >> 4;
    let next = ev.length;
    for (let m = k + 1; m < cmds.length; m++) {
      if (ev[cmds[m]].sub >> 4 === ch) {
        next = cmds[m];
        break;
      }
    }
    return { i, next, from: withWake(i), to: next < ev.length ? withWake(next) : ev.length };
  });
}

/** The DMA commands in `ev` (oldest first): see the file comment for what each field means. */
export function dmaRequests(ev: readonly TraceEvent[]): DmaRequest[] {
  const out: DmaRequest[] = [];
  for (const w of commandWindows(ev)) {
    const c = ev[w.i];
    const cmd = c.value;
    if (!DMA_READ.has(cmd) && !DMA_WRITE.has(cmd)) continue;
    const ch = c.sub >> 4;
    const bmCmd = ch * 8 + R.BM_COMMAND;
    const find = (from: number, f: (e: TraceEvent) => boolean): number => {
      for (let j = from; j < w.next; j++) if (f(ev[j])) return j;
      return -1;
    };
    const at = (j: number): number | null => (j < 0 ? null : ev[j].t);
    const xfer = find(w.i + 1, (e) => e.kind === T.EV_XFER);
    const go = find(w.i + 1, (e) => e.kind === T.EV_BM_WRITE && e.sub === bmCmd && (e.value & R.BMC_START) !== 0);
    const sub = find(w.i + 1, (e) => e.kind === T.EV_SUBMIT && e.sub >> 3 === ch && ((e.sub & 3) === 1 || (e.sub & 3) === 2));
    const prd = find(w.i + 1, (e) => e.kind === T.EV_PRD);
    const bmDone = find(w.i + 1, (e) => e.kind === T.EV_BM_DONE && e.sub === ch);
    // The backend's span: the first request issued to the last one settled before the bus master finished.
    let done = -1;
    if (sub >= 0) {
      const end = bmDone >= 0 ? bmDone : w.next;
      for (let j = sub + 1; j < end; j++) if (ev[j].kind === T.EV_COMPLETE && ev[j].sub >> 3 === ch) done = j;
    }
    const irq = find(bmDone >= 0 ? bmDone : w.i + 1, (e) => e.kind === T.EV_IRQ && e.sub === ((ch << 1) | 1));
    let ack = irq < 0 ? -1 : find(irq + 1, isAccess);
    if (ack > 0 && ev[ack - 1].kind === T.EV_IOREQ_WAKE) ack--;
    const stop = irq < 0 ? -1 : find(irq + 1, (e) => e.kind === T.EV_BM_WRITE && e.sub === bmCmd && (e.value & R.BMC_START) === 0);
    const st = irq < 0 ? -1 : find(irq + 1, (e) => e.kind === T.EV_ATA_READ && e.sub === ((ch << 4) | R.REG_STATUS));
    const r: DmaRequest = {
      ch,
      cmd,
      write: DMA_WRITE.has(cmd),
      bytes: xfer < 0 ? null : ev[xfer].sub * 512,
      lba: xfer < 0 ? null : ev[xfer].value,
      cmdAt: c.t,
      go: at(go),
      sub: at(sub),
      done: at(done),
      irq: at(irq),
      ack: at(ack),
      stop: at(stop),
      st: at(st),
      next: w.next < ev.length ? ev[w.next].t : null,
      ...ioreqTimes(ev, w.from, w.to),
      prd: prd < 0 ? null : ev[prd].sub,
      irqUs: irq < 0 ? null : ev[irq].value / 1000,
      poolIdleMs: 0,
      sync: false,
      raHit: 0,
      raMiss: 0,
      outcome: bmDone < 0 ? null : ev[bmDone].value,
    };
    for (let j = w.i + 1; j < w.next; j++) {
      const e = ev[j];
      if (e.kind === T.EV_FILE && e.sub === T.FILE_POOL_DONE) r.poolIdleMs += e.value / 1000;
      else if (e.kind === T.EV_FILE && e.sub === T.FILE_SYNC) r.sync = true;
      else if (e.kind === T.EV_RA && e.sub === T.RA_HIT) r.raHit++;
      else if (e.kind === T.EV_RA && e.sub === T.RA_MISS) r.raMiss++;
    }
    out.push(r);
  }
  return out;
}

/** The PIO data commands in `ev` (oldest first). */
export function pioCommands(ev: readonly TraceEvent[]): PioCommand[] {
  const out: PioCommand[] = [];
  for (const w of commandWindows(ev)) {
    const c = ev[w.i];
    if (!PIO_CMDS.has(c.value)) continue;
    const p: PioCommand = { ch: c.sub >> 4, cmd: c.value, cmdAt: c.t, sectors: null, dataBytes: 0, ioreqs: 0, dm: [], submits: 0 };
    for (let j = w.i + 1; j < w.next; j++) {
      const e = ev[j];
      if (e.kind === T.EV_XFER && p.sectors === null) p.sectors = e.sub;
      else if (e.kind === T.EV_ATA_DATA && e.sub >> 1 === p.ch) p.dataBytes += e.value;
      else if (e.kind === T.EV_SUBMIT && e.sub >> 3 === p.ch) p.submits++;
    }
    const io = ioreqTimes(ev, w.from, w.to);
    p.ioreqs = io.ioreqs;
    p.dm = io.dm;
    out.push(p);
  }
  return out;
}

const span = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : b - a);

/** The phases of `r` in ms, in PHASES order (null where an end is missing). */
export function phaseMs(r: DmaRequest): Array<number | null> {
  return PHASES.map(([, f]) => f(r));
}

const PHASES: Array<[string, (r: DmaRequest) => number | null]> = [
  ['cmd>go', (r) => span(r.cmdAt, r.go)],
  ['go>sub', (r) => span(r.go ?? r.cmdAt, r.sub)],
  ['sub>done', (r) => span(r.sub, r.done)],
  ['done>irq', (r) => span(r.done, r.irq)],
  ['irq>ack', (r) => span(r.irq, r.ack)],
  ['ack>stop', (r) => span(r.ack, r.stop)],
  ['stop>st', (r) => span(r.stop, r.st)],
  ['st>next', (r) => span(r.st, r.next)],
  ['total', (r) => span(r.cmdAt, r.next)],
];
const I_BACKEND = 2;
const I_IRQ_ACK = 4;
const I_TOTAL = 8;

const fmt = (v: number | null, digits: number): string => (v === null ? '-' : v.toFixed(digits));
const ms = (v: number | null, w = 9): string => fmt(v, 3).padStart(w);
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
const vals = (xs: ReadonlyArray<number | null>): number[] => xs.flatMap((x) => (x === null ? [] : [x]));

/**
 * The figures over `reqs` (one direction, the most recent), as key=value
 * pairs: times in ms but dm_us, the DM's time per ioreq in microseconds;
 * `_p90` the 90th percentile.
 */
export function summaryKeys(reqs: readonly DmaRequest[]): Array<[string, string]> {
  const phases = reqs.map(phaseMs);
  const col = (i: number): number[] => vals(phases.map((p) => p[i]));
  const dm = reqs.flatMap((r) => r.dm);
  const gap = reqs.flatMap((r) => r.gap);
  const pair = (name: string, xs: readonly number[], scale: number, digits: number): Array<[string, string]> => [
    [name, fmt(median(xs) === null ? null : median(xs)! * scale, digits)],
    [`${name}_p90`, fmt(quantile(xs, 0.9) === null ? null : quantile(xs, 0.9)! * scale, digits)],
  ];
  const bytes = vals(reqs.map((r) => r.bytes));
  return [
    ['reqs', String(reqs.length)],
    ['kib', fmt(median(bytes) === null ? null : median(bytes)! / 1024, 0)],
    ...pair('ioreqs', reqs.map((r) => r.ioreqs), 1, 0),
    ...pair('dm_us', dm, 1000, 0),
    ...pair('gap_ms', gap, 1, 3),
    ...pair('backend_ms', col(I_BACKEND), 1, 3),
    ...pair('irq_ack_ms', col(I_IRQ_ACK), 1, 3),
    ...pair('req_ms', col(I_TOTAL), 1, 3),
    ['dm_ms', fmt(median(reqs.map((r) => sum(r.dm))), 3)],
    ['irq_us', fmt(median(vals(reqs.map((r) => r.irqUs))), 1)],
    ['pool_idle_ms', fmt(median(reqs.map((r) => r.poolIdleMs)), 3)],
    ['sync', String(reqs.filter((r) => r.sync).length)],
    ['ra_hit', String(sum(reqs.map((r) => r.raHit)))],
    ['ra_miss', String(sum(reqs.map((r) => r.raMiss)))],
  ];
}

/** The PIO figures: commands, sectors, ioreqs per sector, the DM's time per ioreq (us), backend requests. */
export function pioKeys(cmds: readonly PioCommand[]): Array<[string, string]> {
  const sectors = sum(cmds.map((c) => c.sectors ?? 0));
  const ioreqs = sum(cmds.map((c) => c.ioreqs));
  const dm = cmds.flatMap((c) => c.dm);
  const q = (x: number | null): string => fmt(x === null ? null : x * 1000, 0);
  return [
    ['cmds', String(cmds.length)],
    ['sectors', String(sectors)],
    ['ioreqs', String(ioreqs)],
    ['ioreqs_per_sector', sectors > 0 ? (ioreqs / sectors).toFixed(2) : '-'],
    ['dm_us', q(median(dm))],
    ['dm_us_p90', q(quantile(dm, 0.9))],
    ['backend_reqs', String(sum(cmds.map((c) => c.submits)))],
  ];
}

const keyLine = (kv: ReadonlyArray<[string, string]>): string => kv.map(([k, v]) => `${k}=${v}`).join(' ');

/** The whole `info disktrace` answer; `host`: a line of the host's own counters (the Xen mapcache), if any. */
export function formatDiskTrace(trace: T.DiskTrace, eventLines = DISKTRACE_EVENT_LINES, host: string | null = null): string {
  const ev = trace.events();
  const out: string[] = [];
  const t0 = ev.length > 0 ? ev[0].t : 0;
  out.push(`disktrace: ${ev.length} events kept of ${trace.recorded} recorded (ring of ${trace.capacity}); times in ms from the first kept event`);
  if (host !== null) out.push(host);
  const reqs = dmaRequests(ev);
  out.push(`dma: ${reqs.length} DMA commands; phases in ms:`);
  out.push('  cmd>go: Command write to the bus master\'s Start; go>sub: to the backend request (PRD walk, page views);');
  out.push('  sub>done: the backend; done>irq: to INTRQ up; irq>ack: to the guest\'s next access (delivery into the guest: not ours);');
  out.push('  ack>stop: to the bus master stopped; stop>st: to the Status read; st>next: to the next Command write;');
  out.push('  ioreqs, dm_us, gap_ms: ioreqs answered from this Command write to the next, the median DM time per ioreq,');
  out.push('  the median time between two; irq_us: the interrupt call; idle_ms: the event loop idle while the thread pool worked');
  const head = ['dir', 't', 'kib', ...PHASES.map(([n]) => n)].map((h, i) => h.padStart(i === 0 ? 3 : i === 1 ? 11 : i === 2 ? 6 : 9)).join('');
  out.push(`${head} ioreqs  dm_us gap_ms irq_us idle_ms prd sync`);
  const shown = reqs.slice(-DISKTRACE_REQ_LINES);
  if (reqs.length > shown.length) out.push(`  (the first ${reqs.length - shown.length} requests not listed)`);
  for (const r of shown) {
    const ph = phaseMs(r).map((v) => ms(v)).join('');
    const bad = r.outcome !== null && r.outcome !== T.BM_OK ? ` ${T.BM_NAMES[r.outcome]}` : '';
    out.push(
      `${(r.write ? 'W' : 'R').padStart(3)}${ms(r.cmdAt - t0, 11)}${fmt(r.bytes === null ? null : r.bytes / 1024, 0).padStart(6)}${ph}` +
        `${String(r.ioreqs).padStart(7)}${fmt(median(r.dm) === null ? null : median(r.dm)! * 1000, 0).padStart(7)}${ms(median(r.gap), 7)}` +
        `${fmt(r.irqUs, 1).padStart(7)}${ms(r.poolIdleMs, 8)}${fmt(r.prd, 0).padStart(4)} ${r.sync ? 'yes' : 'no'}${bad}`,
    );
  }
  out.push(`summary over the last ${DISKTRACE_SUMMARY_REQS} requests of each direction (times in ms, dm_us in microseconds, _p90 the 90th percentile):`);
  for (const [dir, write] of [['read', false], ['write', true]] as const) {
    const mine = reqs.filter((r) => r.write === write).slice(-DISKTRACE_SUMMARY_REQS);
    if (mine.length > 0) out.push(`disktrace ${dir}: ${keyLine(summaryKeys(mine))}`);
  }
  const pio = pioCommands(ev);
  out.push(`pio: ${pio.length} PIO data commands (READ/WRITE SECTORS or MULTIPLE); dm_us in microseconds:`);
  if (pio.length > 0) out.push(`disktrace pio: ${keyLine(pioKeys(pio))}`);
  out.push(...listEvents(ev, eventLines, t0, 11, describeEvent));
  return out.map((x) => `${x}\n`).join('');
}

/** The answer when stubdm runs without a trace. */
export const DISKTRACE_OFF = 'disktrace: off (start stubdm with STUBDM_DISK_TRACE=<entries>, e.g. 65536)\n';
