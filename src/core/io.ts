/**
 * The one interface every emulated register block implements.
 *
 * A device answers accesses relative to its own region and never knows its
 * base address (the bus subtracts it), so moving a BAR never touches device
 * code. Values are plain unsigned numbers of `size` bytes: no BigInt and no
 * allocation on the hot path. Xen can deliver 8-byte MMIO accesses; the
 * dispatcher splits those into two 4-byte halves (low first) so devices only
 * ever see 1, 2 or 4.
 */
export type AccessSize = 1 | 2 | 4;

export interface IoHandler {
  /** Returns the register value, zero-extended to `size` bytes. Must not throw. */
  read(offset: number, size: AccessSize): number;
  /** `value` is already masked to `size` bytes. Must not throw. */
  write(offset: number, size: AccessSize, value: number): void;
  /**
   * Optional fast path for REP INS on a data port (IDE): fill `count`
   * elements of `size` bytes into dst[dstOff..]. Returns how many elements it
   * produced; the dispatcher falls back to read() for the rest.
   */
  readRep?(offset: number, size: AccessSize, count: number, dst: Uint8Array, dstOff: number): number;
  /** Optional fast path for REP OUTS, the mirror of readRep. */
  writeRep?(offset: number, size: AccessSize, count: number, src: Uint8Array, srcOff: number): number;
}

/** Mask for an access of `size` bytes (size 4 gives 0xffffffff). */
export function sizeMask(size: number): number {
  return size >= 4 ? 0xffffffff : (1 << (size * 8)) - 1;
}

/**
 * PCI configuration space of the whole bus 0, as the ioreq loop reaches it
 * (IOREQ_TYPE_PCI_CONFIG carries SBDF + register). Implemented by src/pci.
 * `devfn` = device << 3 | function; reg may exceed 0xff (extended config),
 * which a conventional device reads as all ones.
 */
export interface PciConfigHandler {
  configRead(devfn: number, reg: number, size: AccessSize): number;
  configWrite(devfn: number, reg: number, size: AccessSize, value: number): void;
}
