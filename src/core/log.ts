/**
 * Logging: pino to stderr, as text lines (the default: the qemu-dm log is
 * read by operators) or pino's own JSON (--log-format json, for tools).
 * Guest-triggered lines go through RateLimited so a hostile guest cannot
 * flood the log (or slow the hot path).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
/** pino's own keys, and the bindings shown before the message rather than as fields. */
const NOT_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'c', 'dev']);

/** A field value on one line: bare when that is unambiguous, else JSON (quotes, escapes). */
function fieldValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=\\\u0000-\u001f\u007f]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v) ?? String(v);
}

/**
 * One pino JSON line as text: `ISO-time LEVEL component[/device]: message key=value...`,
 * always one line (control characters escaped), so that a guest-chosen string
 * can never start a line of its own in the log (a forged STUBDOM or FATAL line).
 * An `err` from pino's serializer shows its message, and its stack as one quoted field.
 */
export function formatTextLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : json + '\n';
  }
  const time = typeof o.time === 'number' ? new Date(o.time).toISOString() : String(o.time ?? '');
  const level = LEVEL_NAMES[o.level as number] ?? String(o.level);
  const where = typeof o.c === 'string' ? (typeof o.dev === 'string' ? `${o.c}/${o.dev}` : o.c) : typeof o.dev === 'string' ? o.dev : 'stubdm';
  const msg = String(o.msg ?? '').replace(/[\u0000-\u001f\u007f]/g, (ch) => JSON.stringify(ch).slice(1, -1));
  let line = `${time} ${level} ${where}: ${msg}`;
  for (const [k, v] of Object.entries(o)) {
    if (NOT_FIELDS.has(k)) continue;
    const e = v as { message?: unknown; stack?: unknown } | null;
    if (k === 'err' && e !== null && typeof e === 'object' && typeof e.message === 'string') {
      line += ` err=${fieldValue(e.message)}`;
      if (typeof e.stack === 'string') line += ` stack=${JSON.stringify(e.stack)}`;
      continue;
    }
    line += ` ${k}=${fieldValue(v)}`;
  }
  return line + '\n';
}

/**
 * The text format as a pino destination: pino serializes each line as JSON
 * (its levels, child bindings and serializers stay as they are) and this
 * rewrites it, in this thread and synchronously. Hand-written rather than
 * pino-pretty: that package brings 13 dependencies (a CLI's among them) into
 * the bundle a 128 MiB stub domain loads, runs best as a worker-thread
 * transport, and prints fields as a JSON object or on lines of their own,
 * where grep and operators want `key=value` on the line.
 */
export function textDestination(out: DestinationStream): DestinationStream {
  return { write: (line: string) => void out.write(formatTextLine(line)) };
}

/** The device model's logger: `level`, `format`, on fd 2 (synchronous writes) unless `out` is given. */
export function createLogger(level: string, format: LogFormat, out: DestinationStream = pino.destination(2)): Logger {
  return pino({ level }, format === 'text' ? textDestination(out) : out);
}

let root: Logger = createLogger(process.env.STUBDM_LOG_LEVEL ?? 'warn', 'text');

export function setRootLogger(l: Logger): void {
  root = l;
}

export function logger(component: string): Logger {
  return root.child({ c: component });
}

/**
 * Bytes that guest-triggered lines (every RateLimited together) may write
 * over the process's life, unless XEN_QEMU_CONSOLE_LIMIT says otherwise. The rate limit bounds each source per window,
 * but a guest keeps that up for months, and the log is a file in dom0
 * (qemu-dm-<name>.log, or the stub domain's console log) that libxl rotates
 * only when the domain is created, never while it runs.
 */
export const GUEST_LOG_BUDGET_BYTES = 8 * 2 ** 20;
/** What pino adds to each line besides the message and fields (level, time, pid, hostname, c). */
const LINE_OVERHEAD = 96;

let guestLogBudget = GUEST_LOG_BUDGET_BYTES;
let guestLogLeft = GUEST_LOG_BUDGET_BYTES;

/** Largest XEN_QEMU_CONSOLE_LIMIT taken: 1 TiB (anything larger is a typo, not a log budget). */
export const MAX_CONSOLE_LIMIT = 2 ** 40;

/**
 * XEN_QEMU_CONSOLE_LIMIT, which libxl puts in the device model's environment
 * (1 MiB in Xen 4.17, libxl_dm.c) so that a guest cannot fill dom0's disk
 * through the device model's log (XSA-180): bytes, decimal. Unset: null (our
 * own default stands). Anything else: a one-line message.
 */
export function parseConsoleLimit(v: string | undefined): number | null | string {
  if (v === undefined) return null;
  if (!/^[0-9]{1,15}$/.test(v) || Number(v) > MAX_CONSOLE_LIMIT) {
    return `XEN_QEMU_CONSOLE_LIMIT=${JSON.stringify(v.slice(0, 32))} is not a byte count from 0 to ${MAX_CONSOLE_LIMIT}`;
  }
  return Number(v);
}

/** The guest-triggered log budget for this process (XEN_QEMU_CONSOLE_LIMIT); what was already spent counts against it. */
export function setGuestLogBudget(bytes: number): void {
  guestLogLeft = bytes - (guestLogBudget - guestLogLeft);
  guestLogBudget = bytes;
}

/** Bytes of guest-triggered logging left in this process. */
export function guestLogBudgetLeft(): number {
  return guestLogLeft;
}

/**
 * For guest-triggered lines that keep their own rate limit (the Xen
 * platform's PV driver log): spend `bytes` of the budget; false once it is spent.
 */
export function takeGuestLogBudget(bytes: number): boolean {
  if (guestLogLeft <= 0) return false;
  guestLogLeft -= LINE_OVERHEAD + bytes;
  return true;
}

/** Tests: start the budget over (or with `bytes`). */
export function resetGuestLogBudget(bytes = GUEST_LOG_BUDGET_BYTES): void {
  guestLogBudget = bytes;
  guestLogLeft = bytes;
}

function lineBytes(obj: object, msg: string): number {
  let n = LINE_OVERHEAD + msg.length;
  try {
    n += JSON.stringify(obj).length;
  } catch {
    n += 256; // a BigInt or a cycle: pino prints something, count it generously
  }
  return n;
}

/**
 * At most `burst` lines per `windowMs` for one source; the rest are counted
 * and reported as `suppressed` in the next line that gets through. All of
 * them together stop for good once GUEST_LOG_BUDGET_BYTES are spent, after
 * one line that says so.
 */
export class RateLimited {
  private windowStart = 0;
  private count = 0;
  private suppressed = 0;

  constructor(
    private readonly log: Logger,
    private readonly burst = 10,
    private readonly windowMs = 10_000,
  ) {}

  warn(obj: object, msg: string): void {
    this.emit('warn', obj, msg);
  }

  /**
   * For what the guest does that an operator wants to see at the default
   * level (a reset, a poweroff, its PV drivers' log): the same limits as
   * warn, so a guest repeating it cannot flood the log either.
   */
  info(obj: object, msg: string): void {
    this.emit('info', obj, msg);
  }

  private emit(level: 'warn' | 'info', obj: object, msg: string): void {
    const now = Date.now();
    if (now - this.windowStart > this.windowMs) {
      this.windowStart = now;
      this.count = 0;
    }
    if (this.count >= this.burst) {
      this.suppressed++;
      return;
    }
    if (guestLogLeft <= 0 || !this.log.isLevelEnabled(level)) {
      this.suppressed++;
      return;
    }
    guestLogLeft -= lineBytes(obj, msg);
    if (guestLogLeft <= 0) {
      this.log.error(
        { budget: guestLogBudget },
        'guest-triggered log budget spent: no more guest-triggered lines from this device model',
      );
      return;
    }
    this.count++;
    if (this.suppressed > 0) {
      this.log[level]({ ...obj, suppressed: this.suppressed }, msg);
      this.suppressed = 0;
    } else {
      this.log[level](obj, msg);
    }
  }
}
