/**
 * Waiting for asynchronous device work (disk completions, timers driven by
 * setImmediate) without wall-clock timing: yield to the event loop one
 * setImmediate tick at a time until the predicate holds, up to a bound.
 */
export interface WaitOptions {
  /** Event-loop turns to allow before giving up (default 100000). */
  maxTicks?: number;
}

export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
}

export async function waitFor(pred: () => boolean, opts: WaitOptions = {}): Promise<void> {
  const max = opts.maxTicks ?? 100_000;
  for (let i = 0; i <= max; i++) {
    if (pred()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (pred()) return;
  throw new WaitTimeoutError(`waitFor: condition still false after ${max} event-loop ticks`);
}
