/**
 * Time as devices see it. Every delay a device models (a UART character
 * timeout, a NIC's interrupt throttle, a display refresh) goes through a
 * Clock, never a bare setTimeout/setImmediate: on Xen it is the host's
 * monotonic clock and Node's timers; in the simulator it is virtual and only
 * moves when the test advances it, so timer behaviour is deterministic.
 *
 * A pending timer is part of a device's state: OneShot keeps its deadline so
 * snapshot() can record the time left and restore() arm it again.
 */

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds (fractional). */
  now(): number;
  /** Run `fn` once after `ms` (<= 0: as soon as the current event is done). */
  timeout(ms: number, fn: () => void): Timer;
  /** Run `fn` every `ms` (> 0) until cancelled. */
  interval(ms: number, fn: () => void): Timer;
}

/** The host's clock: performance.now() and Node's timers (unref'd: a timer never keeps stubdm alive). */
export class RealClock implements Clock {
  now(): number {
    return performance.now();
  }

  timeout(ms: number, fn: () => void): Timer {
    if (ms <= 0) {
      const h = setImmediate(fn);
      return { cancel: () => clearImmediate(h) };
    }
    const h = setTimeout(fn, ms);
    h.unref();
    return { cancel: () => clearTimeout(h) };
  }

  interval(ms: number, fn: () => void): Timer {
    if (!(ms > 0)) throw new RangeError(`interval of ${ms} ms`);
    const h = setInterval(fn, ms);
    h.unref();
    return { cancel: () => clearInterval(h) };
  }
}

interface VirtualTimer {
  deadline: number;
  seq: number;
  period: number; // 0: one-shot
  fn: () => void;
  live: boolean;
}

/**
 * The simulator's clock: starts at 0 and moves only in advance(). Timers due
 * at or before the new time run in deadline order (ties in the order they
 * were armed), each seeing now() equal to its own deadline.
 */
export class VirtualClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: VirtualTimer[] = [];

  now(): number {
    return this.t;
  }

  timeout(ms: number, fn: () => void): Timer {
    return this.add(Math.max(0, ms), 0, fn);
  }

  interval(ms: number, fn: () => void): Timer {
    if (!(ms > 0)) throw new RangeError(`interval of ${ms} ms`);
    return this.add(ms, ms, fn);
  }

  /** Timers still armed. */
  get pending(): number {
    return this.timers.length;
  }

  /** Move time forward by `ms` (>= 0), running every timer that falls due; returns how many ran. */
  advance(ms: number): number {
    if (!(ms >= 0)) throw new RangeError(`advance by ${ms} ms`);
    const end = this.t + ms;
    let ran = 0;
    // Bounded: a periodic timer re-arms strictly later, and one run may arm at most
    // a few more; 1e6 firings in one advance is a test bug (an interval of ~0 ms).
    for (let guard = 0; guard < 1_000_000; guard++) {
      const next = this.nextDue(end);
      if (next === null) {
        this.t = end;
        return ran;
      }
      this.t = next.deadline;
      if (next.period > 0) next.deadline += next.period;
      else this.drop(next);
      ran++;
      next.fn();
    }
    throw new Error('VirtualClock.advance: more than a million timer firings');
  }

  /** Run what is due now (timers armed with 0 ms) without moving time. */
  runDue(): number {
    return this.advance(0);
  }

  private nextDue(end: number): VirtualTimer | null {
    let best: VirtualTimer | null = null;
    for (const x of this.timers) {
      if (x.deadline > end) continue;
      if (best === null || x.deadline < best.deadline || (x.deadline === best.deadline && x.seq < best.seq)) best = x;
    }
    return best;
  }

  private add(ms: number, period: number, fn: () => void): Timer {
    const x: VirtualTimer = { deadline: this.t + ms, seq: this.seq++, period, fn, live: true };
    this.timers.push(x);
    return { cancel: () => this.drop(x) };
  }

  private drop(x: VirtualTimer): void {
    if (!x.live) return;
    x.live = false;
    const i = this.timers.indexOf(x);
    if (i >= 0) this.timers.splice(i, 1);
  }
}

/**
 * A device's one-shot timer that knows its deadline, so the time left can be
 * saved and armed again after a restore. The callback is bound once.
 */
export class OneShot {
  private timer: Timer | null = null;
  private deadline = 0;

  constructor(
    private readonly clock: Clock,
    private readonly fn: () => void,
  ) {}

  get armed(): boolean {
    return this.timer !== null;
  }

  /** (Re)arm to fire `ms` from now. */
  arm(ms: number): void {
    this.cancel();
    this.deadline = this.clock.now() + Math.max(0, ms);
    this.timer = this.clock.timeout(ms, this.fire);
  }

  /** Arm only if not already armed. */
  armIfIdle(ms: number): void {
    if (this.timer === null) this.arm(ms);
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** Milliseconds left, or null when not armed (what a snapshot records). */
  remaining(): number | null {
    return this.timer === null ? null : Math.max(0, this.deadline - this.clock.now());
  }

  /** Arm from a snapshot's remaining(): null leaves it idle. */
  restore(remaining: number | null): void {
    this.cancel();
    if (remaining !== null) this.arm(remaining);
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.fn();
  };
}
