/**
 * Guest RAM of the simulated hypervisor: one flat Uint8Array at guest
 * physical address 0, every access bounds-checked (GuestMemory contract:
 * false and nothing touched when any byte is outside).
 */
import type { HostMemory } from '../core/host.ts';

/** Copies up to this many bytes with a plain loop; longer ones use set(subarray) (faster, but allocates a view). */
const SMALL_COPY = 16;

export class SimMemory implements HostMemory {
  readonly ram: Uint8Array;
  /** IOREQ_TYPE_INVALIDATE requests seen (mapcache flushes). */
  invalidations = 0;
  /** Accesses refused because they left guest RAM. */
  faults = 0;
  /** Dirty logging (xen-set-global-dirty-log) is on. */
  dirtyLog = false;
  /** Pages reported dirty while logging was on, as Xen would have been told (xendevicemodel_modified_memory). */
  readonly dirtyPages = new Set<number>();
  /** modified_memory calls made (one per write while logging). */
  dirtyReports = 0;

  constructor(ramBytes: number) {
    if (!Number.isSafeInteger(ramBytes) || ramBytes <= 0) throw new RangeError(`bad ramBytes ${ramBytes}`);
    this.ram = new Uint8Array(ramBytes);
  }

  read(gpa: number, dst: Uint8Array, off: number, len: number): boolean {
    if (!this.ok(gpa, len) || !(off >= 0 && off + len <= dst.length)) {
      this.faults++;
      return false;
    }
    const ram = this.ram;
    if (len <= SMALL_COPY) for (let i = 0; i < len; i++) dst[off + i] = ram[gpa + i];
    else dst.set(ram.subarray(gpa, gpa + len), off);
    return true;
  }

  write(gpa: number, src: Uint8Array, off: number, len: number): boolean {
    if (!this.ok(gpa, len) || !(off >= 0 && off + len <= src.length)) {
      this.faults++;
      return false;
    }
    const ram = this.ram;
    if (len <= SMALL_COPY) for (let i = 0; i < len; i++) ram[gpa + i] = src[off + i];
    else ram.set(src.subarray(off, off + len), gpa);
    if (this.dirtyLog && len > 0) this.reportDirty(gpa, len);
    return true;
  }

  /** Views handed out by dmaView() and not yet released (tests check they all come back). */
  dmaViews = 0;

  dmaView(gpa: number, len: number): Uint8Array | null {
    if (!(len > 0) || !this.ok(gpa, len)) {
      this.faults++;
      return null;
    }
    this.dmaViews++;
    return this.ram.subarray(gpa, gpa + len);
  }

  dmaRelease(view: Uint8Array, gpa: number, wrote: boolean): void {
    this.dmaViews--;
    if (wrote && this.dirtyLog && view.length > 0) this.reportDirty(gpa, view.length);
  }

  setDirtyLog(on: boolean): void {
    this.dirtyLog = on;
  }

  private reportDirty(gpa: number, len: number): void {
    this.dirtyReports++;
    for (let p = Math.floor(gpa / 4096); p <= Math.floor((gpa + len - 1) / 4096); p++) this.dirtyPages.add(p);
  }

  invalidate(): void {
    this.invalidations++;
  }

  private ok(gpa: number, len: number): boolean {
    return Number.isInteger(gpa) && gpa >= 0 && len >= 0 && Number.isInteger(len) && gpa + len <= this.ram.length;
  }
}
