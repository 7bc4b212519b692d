/**
 * Logging: pino JSON to stderr. Guest-triggered complaints go through
 * RateLimited so a hostile guest cannot flood the log (or slow the hot path).
 */
import { pino, type Logger } from 'pino';

export type { Logger };

let root: Logger = pino({ level: process.env.STUBDM_LOG_LEVEL ?? 'warn' }, pino.destination(2));

export function setRootLogger(l: Logger): void {
  root = l;
}

export function logger(component: string): Logger {
  return root.child({ c: component });
}

/**
 * Bytes that guest-triggered lines (every RateLimited together) may write
 * over the process's life. The rate limit bounds each source per window,
 * but a guest keeps that up for months, and the log is a file in dom0
 * (qemu-dm-<name>.log, or the stub domain's console log) that libxl rotates
 * only when the domain is created, never while it runs.
 */
export const GUEST_LOG_BUDGET_BYTES = 8 * 2 ** 20;
/** What pino adds to each line besides the message and fields (level, time, pid, hostname, c). */
const LINE_OVERHEAD = 96;

let guestLogLeft = GUEST_LOG_BUDGET_BYTES;

/** Bytes of guest-triggered logging left in this process. */
export function guestLogBudgetLeft(): number {
  return guestLogLeft;
}

/** Tests: start the budget over (or with `bytes`). */
export function resetGuestLogBudget(bytes = GUEST_LOG_BUDGET_BYTES): void {
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
    const now = Date.now();
    if (now - this.windowStart > this.windowMs) {
      this.windowStart = now;
      this.count = 0;
    }
    if (this.count >= this.burst) {
      this.suppressed++;
      return;
    }
    if (guestLogLeft <= 0 || !this.log.isLevelEnabled('warn')) {
      this.suppressed++;
      return;
    }
    guestLogLeft -= lineBytes(obj, msg);
    if (guestLogLeft <= 0) {
      this.log.error(
        { budget: GUEST_LOG_BUDGET_BYTES },
        'guest-triggered log budget spent: no more guest-triggered lines from this device model',
      );
      return;
    }
    this.count++;
    if (this.suppressed > 0) {
      this.log.warn({ ...obj, suppressed: this.suppressed }, msg);
      this.suppressed = 0;
    } else {
      this.log.warn(obj, msg);
    }
  }
}
