/**
 * Completing a checksum a NIC left to the host (TxOffload.csumStart/
 * csumOffset), for backends that cannot pass it on: the 16-bit ones'
 * complement sum of the frame from csumStart to its end, added to what is
 * already at csumStart + csumOffset (the pseudo-header sum the guest put
 * there), stored complemented, as a host kernel does for CHECKSUM_PARTIAL
 * (linux: net/core/dev.c skb_checksum_help).
 */
import type { TxOffload } from './backend.ts';

/** Ones' complement sum of buf[start, end) folded to 16 bits (not complemented). */
export function onesSum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * Finishes the checksum in place. False (frame unchanged) when the offsets
 * do not fit the frame: the caller drops it.
 */
export function finishChecksum(frame: Uint8Array, o: TxOffload): boolean {
  if (o.csumOffset === 0) return true; // nothing to insert
  const at = o.csumStart + o.csumOffset;
  if (o.csumStart >= frame.length || at + 2 > frame.length) return false;
  const sum = onesSum(frame, o.csumStart, frame.length);
  // 0 would mean "no checksum" to UDP: the kernel writes 0xffff instead (same value in ones' complement).
  const v = ~sum & 0xffff || 0xffff;
  frame[at] = v >>> 8;
  frame[at + 1] = v & 0xff;
  return true;
}
