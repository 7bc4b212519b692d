/**
 * Allocation per operation, for the "nothing allocated on the hot path" tests:
 * young-generation bytes used across chunks of `chunk` ops, chunks during
 * which a scavenge ran dropped, the least of three samples. The process
 * allocates a few KiB now and then whatever the op does, so chunks must be
 * long enough for that to fall well under a byte per op (a single object per
 * op is 16 bytes or more).
 */
import v8 from 'node:v8';

/** Bytes in use in V8's young generation. */
export function newSpaceUsed(): number {
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_name === 'new_space') return s.space_used_size;
  return 0;
}

export function bytesPerOp(op: (i: number) => void, chunk: number, chunks: number, warm = chunk): number {
  for (let i = 0; i < warm; i++) op(i); // optimised, views for the lengths used made
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    let bytes = 0;
    let ops = 0;
    for (let c = 0; c < chunks; c++) {
      const a = newSpaceUsed();
      for (let i = 0; i < chunk; i++) op(i);
      const b = newSpaceUsed();
      if (b >= a) {
        bytes += b - a;
        ops += chunk;
      }
    }
    if (ops > 0) best = Math.min(best, bytes / ops);
  }
  return best;
}

/** bytesPerOp for an op that needs no index (defaults: 50,000 warm calls, 20 chunks of 5000). */
export function bytesPerCall(op: () => void, o: { warm?: number; chunk?: number; chunks?: number } = {}): number {
  const { warm = 50_000, chunk = 5000, chunks = 20 } = o;
  return bytesPerOp(() => op(), chunk, chunks, warm);
}
