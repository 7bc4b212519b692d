/**
 * Guest-page VRAM in the simulator (core/vram.ts): the bytes live here as
 * "guest memory"; place() records the relocation Xen would do, and the
 * sim's MMIO driver methods treat accesses inside a placed VRAM as RAM, the
 * way Xen lets the guest write its framebuffer without the device model,
 * marking the pages dirty for track_dirty_vram.
 */
import type { VramBacking, VramProvider } from '../core/vram.ts';

const PAGE = 4096;

export class SimVram implements VramBacking {
  bytes: Uint8Array;
  onRemap?: (bytes: Uint8Array) => void;
  /** Where BAR0 put the pages, or -1 (at home). */
  placedAt = -1;
  /** Pages the "guest" wrote since the last collectDirty. */
  readonly guestDirty: Uint8Array;
  /** What Xen would have been asked, in order (tests). */
  readonly calls: string[] = [];
  closed = false;
  private mapped: boolean;

  constructor(
    private readonly pool: SimVramProvider,
    readonly size: number,
    restoring: boolean,
  ) {
    this.bytes = new Uint8Array(size);
    this.guestDirty = new Uint8Array(size / PAGE);
    this.mapped = !restoring;
    this.calls.push(restoring ? 'restoring: no populate' : `populate ${size / PAGE} pages`);
  }

  place(gpa: number): void {
    if (gpa === this.placedAt) return;
    if (this.placedAt >= 0) this.calls.push(`relocate 0x${this.placedAt.toString(16)} -> home`);
    this.placedAt = gpa;
    if (gpa < 0) return;
    if (!this.mapped) {
      // A restored guest: the pages are where the saved BAR says; map them there.
      const saved = this.pool.guestPages.get(gpa);
      if (saved && saved.length === this.size) this.bytes = saved;
      this.mapped = true;
      this.calls.push(`map at 0x${gpa.toString(16)}`);
      this.onRemap?.(this.bytes);
      return;
    }
    this.calls.push(`relocate home -> 0x${gpa.toString(16)}`, `pin wb 0x${gpa.toString(16)}`);
  }

  collectDirty(dirty: Uint8Array): number {
    const g = this.guestDirty;
    let n = 0;
    for (let p = 0; p < g.length; p++) {
      if (g[p]) {
        dirty[p] = 1;
        g[p] = 0;
        n++;
      }
    }
    return n;
  }

  close(): void {
    this.closed = true;
  }

  /** Guest access at `gpa` if it falls inside the placed VRAM: the byte offset, else -1. */
  offsetOf(gpa: number, size: number): number {
    if (this.placedAt < 0 || gpa < this.placedAt || gpa + size > this.placedAt + this.size) return -1;
    return gpa - this.placedAt;
  }
}

export class SimVramProvider implements VramProvider {
  /** "Guest memory" at a gfn for a restored VRAM (a test copies the saved machine's VRAM here). */
  readonly guestPages = new Map<number, Uint8Array>();
  readonly backings: SimVram[] = [];

  allocateVram(bytes: number, restoring: boolean): SimVram {
    const v = new SimVram(this, bytes, restoring);
    this.backings.push(v);
    return v;
  }

  /** The placed VRAM a guest access hits, or null. */
  hit(gpa: number, size: number): { v: SimVram; off: number } | null {
    for (const v of this.backings) {
      const off = v.offsetOf(gpa, size);
      if (off >= 0) return { v, off };
    }
    return null;
  }
}
