/**
 * VRAM as the hypervisor wants it (docs/xen-contract.md §3.3 after QEMU's
 * xen-hvm.c; docs/vga.md §8): guest RAM pages that the device model
 * populates at a gfn of its own, maps once for its whole life, and moves
 * under the VGA's BAR0 when the guest programs the BAR, so the guest's
 * framebuffer writes go straight to memory (no ioreq per pixel); Xen
 * tracks which pages the guest dirtied. src/xen implements it with
 * populate_physmap / relocate_memory / pin_memory_cacheattr /
 * track_dirty_vram; src/sim in process.
 */

export interface VramBacking {
  /**
   * The VRAM bytes. A mapping held for the device model's lifetime, outside
   * the mapcache, so IOREQ_TYPE_INVALIDATE does not drop it. While a
   * restored VRAM is not placed yet this is a stand-in (zeros) and
   * `onRemap` gives the real mapping once place() found the pages.
   */
  readonly bytes: Uint8Array;
  /** Called when `bytes` is replaced by another mapping of the same size. */
  onRemap?: (bytes: Uint8Array) => void;
  /** BAR0 now decodes at guest-physical `gpa` (page aligned), or -1: move the pages there (or back home). */
  place(gpa: number): void;
  /**
   * Set dirty[page] = 1 for every page the guest wrote through the BAR since
   * the last call, and say how many that was (0: the screen is still). -1:
   * the hypervisor could not say (treat all as dirty). Called on every
   * display refresh, so it allocates nothing.
   */
  collectDirty(dirty: Uint8Array): number;
  /** Unmap (the pages stay the guest's). */
  close(): void;
}

export interface VramProvider {
  /**
   * VRAM of `bytes` (a multiple of the page size). `restoring`: the guest's
   * memory came from a saved image, VRAM included: populate nothing, find the
   * pages where the saved BAR says they are.
   */
  allocateVram(bytes: number, restoring: boolean): VramBacking;
}
