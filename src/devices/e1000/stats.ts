/**
 * Statistics counters (SDM 13.7): 32-bit counters that stick at all ones,
 * and 64-bit octet counters as low/high register pairs. Indexes are dwords
 * from STATS (0x4000); `regs` is the device's storage, whose STATS slots are
 * contiguous.
 */
import { S_STATS } from './table.ts';

export function statInc(regs: Uint32Array, i: number): void {
  const s = S_STATS + i;
  if (regs[s] !== 0xffffffff) regs[s]++;
}

/** Add to a 64-bit counter (low dword at i, high at i+1), saturating. */
export function statAdd64(regs: Uint32Array, i: number, n: number): void {
  const lo = S_STATS + i;
  const v = regs[lo] + n;
  if (v <= 0xffffffff) {
    regs[lo] = v;
    return;
  }
  if (regs[lo + 1] === 0xffffffff) {
    regs[lo] = 0xffffffff;
    return;
  }
  regs[lo] = v - 0x100000000;
  regs[lo + 1]++;
}

/** The size-bucket counters (PRC64.../PTC64...: 64, 65-127, 128-255, 256-511, 512-1023, 1024 and up). */
export function statSize(regs: Uint32Array, first: number, size: number): void {
  if (size > 1023) statInc(regs, first + 5);
  else if (size > 511) statInc(regs, first + 4);
  else if (size > 255) statInc(regs, first + 3);
  else if (size > 127) statInc(regs, first + 2);
  else if (size > 64) statInc(regs, first + 1);
  else if (size === 64) statInc(regs, first);
}
