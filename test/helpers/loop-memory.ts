/**
 * Guest RAM over a plain Uint8Array, copied byte by byte: for allocation
 * measurements (SimMemory's own copy allocates a view for anything over 16
 * bytes, which would hide whether the device allocates).
 */
import type { GuestMemory } from '../../src/core/memory.ts';

export class LoopMemory implements GuestMemory {
  constructor(readonly ram: Uint8Array) {}
  read(gpa: number, dst: Uint8Array, off: number, len: number): boolean {
    if (gpa < 0 || gpa + len > this.ram.length) return false;
    for (let i = 0; i < len; i++) dst[off + i] = this.ram[gpa + i];
    return true;
  }
  write(gpa: number, src: Uint8Array, off: number, len: number): boolean {
    if (gpa < 0 || gpa + len > this.ram.length) return false;
    for (let i = 0; i < len; i++) this.ram[gpa + i] = src[off + i];
    return true;
  }
}
