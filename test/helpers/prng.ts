/**
 * The one seeded PRNG of the test suite (mulberry32): reproducible fuzzing and
 * random workloads. prng gives floats in [0, 1); prngU32 32-bit integers.
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function prngU32(seed: number): () => number {
  const r = prng(seed);
  return () => Math.floor(r() * 4294967296) >>> 0;
}
