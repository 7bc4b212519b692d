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
 * At most `burst` lines per `windowMs` for one source; the rest are counted
 * and reported as `suppressed` in the next line that gets through.
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
    this.count++;
    if (this.suppressed > 0) {
      this.log.warn({ ...obj, suppressed: this.suppressed }, msg);
      this.suppressed = 0;
    } else {
      this.log.warn(obj, msg);
    }
  }
}
