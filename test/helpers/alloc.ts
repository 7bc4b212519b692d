/**
 * Bytes a function allocates per call, from the growth of V8's young
 * generation over chunks of calls. A chunk during which a scavenge ran
 * (usage went down) is dropped; the least of three samples is kept, so a
 * one-off allocation (a recompilation, a timer of the test runner) is not
 * charged to the function. One object per call shows as >= 16 bytes.
 */
import v8 from 'node:v8';

function newSpaceUsed(): number {
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_name === 'new_space') return s.space_used_size;
  return 0;
}

export function bytesPerCall(op: () => void, o: { warm?: number; chunk?: number; chunks?: number } = {}): number {
  const { warm = 50_000, chunk = 5000, chunks = 20 } = o;
  for (let i = 0; i < warm; i++) op(); // optimised, lazily made views and caches made
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    let bytes = 0;
    let calls = 0;
    for (let c = 0; c < chunks; c++) {
      const a = newSpaceUsed();
      for (let i = 0; i < chunk; i++) op();
      const b = newSpaceUsed();
      if (b >= a) {
        bytes += b - a;
        calls += chunk;
      }
    }
    if (calls > 0) best = Math.min(best, bytes / calls);
  }
  return best;
}
