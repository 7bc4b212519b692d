/**
 * VRAM as guest pages on Xen (core/vram.ts; docs/xen-contract.md §3.3,
 * docs/vga.md §7), the way QEMU's xen-hvm.c does it:
 *   - populate `nr` pages at a gfn of our own, just past the guest's RAM
 *     block (QEMU puts VRAM's ram_addr after xen.ram: the RAM size, or
 *     4 GiB + the RAM above 4 GiB), with xc_domain_populate_physmap_exact;
 *     libxl already added videoram to the domain's memory allowance;
 *   - map them once with xenforeignmemory_map and keep the mapping for our
 *     whole life (not in the mapcache: INVALIDATE leaves it alone);
 *   - when BAR0 decodes at an address: xendevicemodel_relocate_memory from
 *     home to the BAR, then pin_memory_cacheattr WB; when it moves or stops
 *     decoding: relocate back home first;
 *   - dirty pages from xendevicemodel_track_dirty_vram on the BAR range
 *     (failure, e.g. ENODATA: everything dirty);
 *   - a restored guest: populate nothing, map the pages under the BAR the
 *     restored config names when the bus reports it.
 * The mapping keeps pointing at the same pages after relocation (it
 * references frames, not gfns).
 *
 * Not yet the default (main.ts: STUBDM_VRAM=guest): it has not run on real
 * Xen. Without it the VGA keeps VRAM in its own memory.
 */
import type { VramBacking, VramProvider } from '../core/vram.ts';
import type { Logger } from '../core/log.ts';
import { PROT_READ, PROT_WRITE, XEN_DMOP_MEM_CACHEATTR_WB } from './consts.ts';
import type { CtrlApi, Ptr, XenLibs } from './ffi.ts';

const PAGE_SHIFT = 12;
const GIB4 = 2 ** 32;

/** The platform calls XenHost already binds. */
export interface VramPlatform {
  relocateMemory(pages: number, srcGfn: number, dstGfn: number): boolean;
  pinMemoryCacheattr(startGfn: number, endGfn: number, type: number): boolean;
  trackDirtyVram(firstPfn: number, nr: number, bitmap: BigUint64Array | null): boolean;
}

export interface XenVramOptions {
  domid: number;
  /** Guest RAM and the low-memory limit: where the RAM block ends (QEMU's xen.ram). */
  ramBytes: number;
  lowMemLimit: number;
  libs: Pick<XenLibs, 'fmem' | 'view' | 'errno'>;
  fmemHandle: () => Ptr | null;
  ctrl: () => CtrlApi;
  platform: VramPlatform;
  log: Logger;
}

/** First gfn past the guest's RAM block (QEMU xen_ram_init block_len), aligned to 256 KiB like QEMU's RAM blocks. */
export function vramHomeGfn(ramBytes: number, lowMemLimit: number): number {
  const blockLen = ramBytes <= lowMemLimit ? ramBytes : GIB4 + (ramBytes - lowMemLimit);
  const align = 64 << PAGE_SHIFT;
  return Math.ceil(blockLen / align) * (align >>> PAGE_SHIFT);
}

export class XenVramProvider implements VramProvider {
  constructor(private readonly o: XenVramOptions) {}

  allocateVram(bytes: number, restoring: boolean): VramBacking {
    return new XenVram(this.o, bytes, restoring);
  }
}

class XenVram implements VramBacking {
  bytes: Uint8Array;
  onRemap?: (bytes: Uint8Array) => void;
  private readonly nr: number;
  private readonly home: number;
  /** Where the pages are: the home gfn or the BAR's. */
  private at: number;
  private mapping: Ptr | null = null;
  private readonly bitmap: BigUint64Array;
  /** The same bitmap as 32-bit words: reading a BigUint64Array element makes a BigInt on the heap. */
  private readonly words: Uint32Array;

  constructor(
    private readonly o: XenVramOptions,
    size: number,
    private readonly restoring: boolean,
  ) {
    this.nr = size >>> PAGE_SHIFT;
    this.home = vramHomeGfn(o.ramBytes, o.lowMemLimit);
    this.at = this.home;
    this.bitmap = new BigUint64Array(Math.ceil(this.nr / 64));
    this.words = new Uint32Array(this.bitmap.buffer);
    this.bytes = new Uint8Array(size); // a stand-in until the pages are mapped
    if (restoring) return; // the pages come with the guest's memory: mapped when the BAR is known
    const ctrl = o.ctrl();
    const xch = ctrl.interface_open(null, null, 0);
    if (xch === null) throw new Error(`xc_interface_open failed (errno ${o.libs.errno()})`);
    try {
      const gfns = this.gfns(this.home);
      if (ctrl.domain_populate_physmap_exact(xch, o.domid, this.nr, 0, 0, gfns) !== 0) {
        throw new Error(`populating ${this.nr} VRAM pages at gfn 0x${this.home.toString(16)} failed (errno ${o.libs.errno()})`);
      }
    } finally {
      ctrl.interface_close(xch);
    }
    this.map(this.home);
  }

  private gfns(first: number): BigUint64Array {
    const a = new BigUint64Array(this.nr);
    for (let i = 0; i < this.nr; i++) a[i] = BigInt(first + i);
    return a;
  }

  private map(first: number): void {
    const h = this.o.fmemHandle();
    if (h === null) throw new Error('no foreign memory handle');
    const errs = new Int32Array(this.nr);
    const p = this.o.libs.fmem.map(h, this.o.domid, PROT_READ | PROT_WRITE, this.nr, this.gfns(first), errs);
    const bad = errs.findIndex((e) => e !== 0);
    if (p === null || bad >= 0) {
      if (p !== null) this.o.libs.fmem.unmap(h, p, this.nr);
      throw new Error(`mapping VRAM at gfn 0x${first.toString(16)} failed (page ${bad}, errno ${this.o.libs.errno()})`);
    }
    this.mapping = p;
    this.bytes = new Uint8Array(this.o.libs.view(p, this.nr << PAGE_SHIFT));
  }

  place(gpa: number): void {
    const target = gpa < 0 ? this.home : Math.floor(gpa / 4096);
    if (this.mapping === null) {
      // Restored: the saved BAR says where the pages are; the guest's memory brought them there.
      if (!this.restoring || gpa < 0) return;
      try {
        this.map(target);
        this.at = target;
        this.onRemap?.(this.bytes);
      } catch (e) {
        this.o.log.error({ err: String(e) }, 'VRAM: restored pages not found under BAR0');
      }
      return;
    }
    if (target === this.at) return;
    const p = this.o.platform;
    // Back home first (QEMU's xen_remove_from_physmap), then under the new BAR.
    if (this.at !== this.home) {
      if (!p.relocateMemory(this.nr, this.at, this.home)) return;
      this.at = this.home;
    }
    if (target === this.home) return;
    if (!p.relocateMemory(this.nr, this.home, target)) return;
    this.at = target;
    p.pinMemoryCacheattr(target, target + this.nr - 1, XEN_DMOP_MEM_CACHEATTR_WB);
  }

  collectDirty(dirty: Uint8Array): number {
    if (this.at === this.home) return 0; // not under the BAR: the guest cannot write it
    const words = this.words;
    words.fill(0);
    if (!this.o.platform.trackDirtyVram(this.at, this.nr, this.bitmap)) return -1;
    // Xen's bitmap is unsigned longs, little endian here (x86-64): bit i of 32-bit word w is page 32w + i.
    let n = 0;
    for (let w = 0; w < words.length; w++) {
      let bits = words[w];
      for (let b = 0; bits !== 0; b++, bits >>>= 1) {
        if (bits & 1 && (w << 5) + b < dirty.length) {
          dirty[(w << 5) + b] = 1;
          n++;
        }
      }
    }
    return n;
  }

  close(): void {
    const h = this.o.fmemHandle();
    if (this.mapping !== null && h !== null) this.o.libs.fmem.unmap(h, this.mapping, this.nr);
    this.mapping = null;
  }
}
