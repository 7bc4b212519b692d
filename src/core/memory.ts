/**
 * Guest physical memory as devices see it (DMA, descriptor rings, REP
 * string I/O). Every call is bounds-checked by the implementation: an
 * address outside guest RAM returns false and touches nothing, and the
 * device turns that into its own error status (never an exception).
 *
 * Addresses are plain numbers: guest physical addresses stay below 2^52,
 * which a double holds exactly.
 */
export interface GuestMemory {
  /** Copy `len` bytes at `gpa` into dst[off..off+len). False if any byte is not guest RAM. */
  read(gpa: number, dst: Uint8Array, off: number, len: number): boolean;
  /** Copy src[off..off+len) to `gpa`. False if any byte is not guest RAM (then nothing is written). */
  write(gpa: number, src: Uint8Array, off: number, len: number): boolean;
  /**
   * Zero-copy DMA (optional; a device falls back to read/write without it):
   * a view of guest RAM from `gpa`, `len` bytes or fewer where one mapping
   * ends, that stays valid (the mapping is pinned) until dmaRelease(); null
   * if `gpa` is not RAM. A block backend then reads into it or writes from it
   * directly. Every view must be released, once.
   */
  dmaView?(gpa: number, len: number): Uint8Array | null;
  /** The DMA through `view` (from dmaView(gpa, ...)) is over; `wrote`: the guest's memory changed (dirty logging). */
  dmaRelease?(view: Uint8Array, gpa: number, wrote: boolean): void;
}
