/**
 * Guest RAM for the device model: a bounded cache of foreign mappings
 * (docs/xen-contract.md §8, after QEMU's xen-mapcache).
 *
 * Guest memory is mapped on demand in 1 MiB buckets (256 pages) with
 * xenforeignmemory_map. Each bucket keeps a per-page validity map from the
 * err[] the map call fills in: touching a page that failed to map is a
 * SIGBUS, so no byte of an access is copied until every page it covers is
 * known good. At most `maxBuckets` buckets are mapped at once (least
 * recently used goes first), so the address space, and the page tables a
 * stub domain pays for, stay bounded whatever the guest's size.
 *
 * What is RAM (docs/xen-contract.md §8, hvmloader/libxl layout): guest RAM below 4 GiB
 * ends at min(ramBytes, lowMemLimit) where lowMemLimit defaults to
 * HVM_BELOW_4G_RAM_END = 0xF0000000 (the default 256 MiB MMIO hole); the rest
 * starts at 4 GiB. An access must lie entirely inside one of the two
 * regions and every page must map; otherwise read/write return false and
 * touch nothing. Holes inside RAM that Xen never populated (the VGA window
 * 0xa0000-0xbffff) show up as failed pages.
 *
 * IOREQ_TYPE_INVALIDATE (the guest gave memory back) calls invalidate(),
 * which unmaps everything. A page that failed to map is retried on the next
 * access that needs it (it may have been populated since), like QEMU.
 *
 * Device copies (read/write) are synchronous, so no mapping is in use when
 * eviction or invalidation runs. Zero-copy DMA (dmaView/dmaRelease) is not:
 * a block backend reads into a view from libuv's thread pool while the event
 * loop goes on. Such a bucket is pinned until the view is released: never
 * evicted (the cache may then hold more than maxBuckets for a while, bounded
 * by the DMA in flight), and an invalidation or remap takes it out of the
 * cache at once but unmaps it only at its last release (QEMU's mapcache
 * locks entries for DMA the same way), so the kernel never writes through
 * an address that was unmapped or reused.
 */
import type { HostMemory } from '../core/host.ts';
import type { Ptr, XenLibs } from './ffi.ts';
import { HVM_BELOW_4G_RAM_END, PROT_READ, PROT_WRITE } from './consts.ts';

export { HVM_BELOW_4G_RAM_END };

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const BUCKET_SHIFT = 20; // 1 MiB, QEMU's MCACHE_BUCKET_SHIFT on 64-bit hosts
export const BUCKET_SIZE = 1 << BUCKET_SHIFT;
export const PAGES_PER_BUCKET = BUCKET_SIZE / PAGE_SIZE;
export const GIB4 = 0x1_0000_0000;
/** Default cap: 64 MiB of guest memory mapped at a time. */
export const DEFAULT_MAX_BUCKETS = 64;
/** Guest-physical addresses stay below 2^52 (x86 MAXPHYADDR); doubles hold them exactly. */
const MAX_GPA = 2 ** 52;

/** A mapping of `bytes.length / PAGE_SIZE` consecutive guest frames. */
export interface PageMapping {
  readonly bytes: Uint8Array;
}

/** The foreign-memory calls the cache needs; a fake in tests, xenforeignmemory in production. */
export interface PageMapper {
  /**
   * Map `pages` frames from `firstPfn` read-write. errs[i] (i < pages) is set
   * to 0 for a page that mapped and non-zero for one that did not.
   * null: nothing was mapped.
   */
  map(firstPfn: number, pages: number, errs: Int32Array): PageMapping | null;
  unmap(m: PageMapping): void;
}

export interface MapCacheOptions {
  ramBytes: number;
  /** End of RAM below 4 GiB when RAM is larger (max-ram-below-4g). Default 0xF0000000. */
  lowMemLimit?: number;
  maxBuckets?: number;
  /** Where dirty pages go while dirty logging is on (xendevicemodel_modified_memory): first pfn, page count. */
  onDirty?: (firstPfn: number, nr: number) => void;
}

interface Bucket {
  readonly index: number;
  mapping: PageMapping;
  /** 1 = page i mapped. */
  readonly valid: Uint8Array;
  allValid: boolean;
  lastUse: number;
  /** dmaView()s not yet released. */
  pins: number;
  /** Out of the cache (invalidated, remapped) while pinned: unmapped at the last release. */
  retired: boolean;
  /**
   * Views of whole pages dmaView() handed out, made at the first and reused
   * (a PRD entry is usually one page of an O_DIRECT buffer: no view allocated
   * per entry and DMA); null until the first. Dropped with the mapping.
   */
  pages: (Uint8Array | undefined)[] | null;
}

export class MapCache implements HostMemory {
  readonly lowEnd: number;
  readonly highEnd: number;
  readonly maxBuckets: number;
  private readonly buckets = new Map<number, Bucket>();
  private last: Bucket | null = null;
  private clock = 0;
  private readonly errs = new Int32Array(PAGES_PER_BUCKET);
  private readonly onDirty: ((firstPfn: number, nr: number) => void) | null;
  /** onDirty while dirty logging is on, else null (the only cost to write() when off). */
  private dirty: ((firstPfn: number, nr: number) => void) | null = null;
  /** Counters for tests and diagnostics. */
  readonly stats = { maps: 0, unmaps: 0, mapFailures: 0, evictions: 0, pinned: 0 };
  /** Buckets out of the cache but still pinned by a DMA in flight. */
  private readonly retired: Bucket[] = [];

  constructor(
    private readonly mapper: PageMapper,
    opts: MapCacheOptions,
  ) {
    const ram = opts.ramBytes;
    const limit = opts.lowMemLimit ?? HVM_BELOW_4G_RAM_END;
    if (!Number.isSafeInteger(ram) || ram < 0 || ram > MAX_GPA / 2) throw new RangeError(`bad guest RAM size ${ram}`);
    if (!Number.isSafeInteger(limit) || limit <= 0 || limit > GIB4 || limit % PAGE_SIZE !== 0) {
      throw new RangeError(`bad low memory limit ${limit}`);
    }
    this.lowEnd = Math.min(ram, limit);
    this.highEnd = ram > this.lowEnd ? GIB4 + (ram - this.lowEnd) : 0;
    this.maxBuckets = opts.maxBuckets ?? DEFAULT_MAX_BUCKETS;
    this.onDirty = opts.onDirty ?? null;
    if (!Number.isInteger(this.maxBuckets) || this.maxBuckets < 1) throw new RangeError(`bad bucket count ${this.maxBuckets}`);
  }

  /** Buckets currently mapped. */
  get mapped(): number {
    return this.buckets.size;
  }

  read(gpa: number, dst: Uint8Array, off: number, len: number): boolean {
    if (!this.prepare(gpa, dst, off, len)) return false;
    let pos = 0;
    while (pos < len) {
      const a = gpa + pos;
      const b = this.bucketFor(Math.floor(a / BUCKET_SIZE))!; // mapped by prepare(), not evicted since
      const start = a % BUCKET_SIZE;
      const n = Math.min(len - pos, BUCKET_SIZE - start);
      copy(b.mapping.bytes, start, dst, off + pos, n);
      pos += n;
    }
    return true;
  }

  write(gpa: number, src: Uint8Array, off: number, len: number): boolean {
    if (!this.prepare(gpa, src, off, len)) return false;
    let pos = 0;
    while (pos < len) {
      const a = gpa + pos;
      const b = this.bucketFor(Math.floor(a / BUCKET_SIZE))!;
      const start = a % BUCKET_SIZE;
      const n = Math.min(len - pos, BUCKET_SIZE - start);
      copy(src, off + pos, b.mapping.bytes, start, n);
      pos += n;
    }
    const d = this.dirty;
    if (d !== null && len > 0) {
      const first = Math.floor(gpa / PAGE_SIZE);
      d(first, Math.floor((gpa + len - 1) / PAGE_SIZE) - first + 1);
    }
    return true;
  }

  /**
   * The counters since start (info disktrace): one map or unmap is a privcmd
   * ioctl and an mmap or munmap, so two dumps say whether DMA remapped guest
   * memory per request.
   */
  countersLine(): string {
    const s = this.stats;
    return `mapcache since start: maps=${s.maps} unmaps=${s.unmaps} evictions=${s.evictions} map_failures=${s.mapFailures} pinned=${s.pinned} buckets=${this.mapped} of ${this.maxBuckets}`;
  }

  setDirtyLog(on: boolean): void {
    this.dirty = on ? this.onDirty : null;
  }

  dmaView(gpa: number, len: number): Uint8Array | null {
    if (!Number.isSafeInteger(len) || len <= 0 || !Number.isSafeInteger(gpa) || gpa < 0) return null;
    const index = Math.floor(gpa / BUCKET_SIZE);
    const bStart = index * BUCKET_SIZE;
    const n = Math.min(len, bStart + BUCKET_SIZE - gpa); // this bucket's part
    // A mapped bucket whose every page mapped lies wholly in RAM (mapInto
    // maps only RAM, and a bucket RAM ends in has fewer pages): nothing of
    // prepare() to check again. Else the full checks, and the mapping.
    let b = this.cachedBucket(index);
    if (b === null || !b.allValid) {
      if (!this.prepare(gpa, null, 0, n)) return null;
      b = this.bucketFor(index)!; // mapped by prepare()
    }
    b.pins++;
    this.stats.pinned++;
    const start = gpa - bStart;
    if (n === PAGE_SIZE && start % PAGE_SIZE === 0) {
      const pages = (b.pages ??= new Array<Uint8Array | undefined>(PAGES_PER_BUCKET));
      return (pages[start >>> PAGE_SHIFT] ??= b.mapping.bytes.subarray(start, start + PAGE_SIZE));
    }
    return b.mapping.bytes.subarray(start, start + n);
  }

  dmaRelease(view: Uint8Array, gpa: number, wrote: boolean): void {
    const b = this.pinnedBucketOf(view, gpa);
    if (b === null) return; // not ours (a bug of the caller): nothing to undo
    b.pins--;
    this.stats.pinned--;
    if (b.pins === 0 && b.retired) {
      this.retired.splice(this.retired.indexOf(b), 1);
      this.unmapBucket(b);
    }
    const d = this.dirty;
    if (wrote && d !== null && view.length > 0) {
      const first = Math.floor(gpa / PAGE_SIZE);
      d(first, Math.floor((gpa + view.length - 1) / PAGE_SIZE) - first + 1);
    }
  }

  /**
   * The pinned bucket `view` (made by dmaView(gpa, ...)) is a view of: the
   * cache's bucket for gpa's index when the view is of its mapping, else one
   * retired while pinned. One lookup, not a walk of every bucket: a 512 KiB
   * DMA releases 128 views, one per PRD entry.
   */
  private pinnedBucketOf(view: Uint8Array, gpa: number): Bucket | null {
    if (Number.isSafeInteger(gpa) && gpa >= 0) {
      const index = Math.floor(gpa / BUCKET_SIZE);
      const l = this.last;
      const b = l !== null && l.index === index ? l : this.buckets.get(index);
      if (b !== undefined && b.pins > 0) {
        // One of its page views (compared by identity: `.buffer` is a runtime call), or any view of its mapping.
        const p = (gpa - index * BUCKET_SIZE) >>> PAGE_SHIFT;
        if (b.pages !== null && b.pages[p] === view) return b;
        if (b.mapping.bytes.buffer === view.buffer) return b;
      }
    }
    const buf = view.buffer;
    const r = this.retired;
    for (let i = 0; i < r.length; i++) if (r[i].mapping.bytes.buffer === buf) return r[i];
    // Not where its gpa says (a caller's bug): look everywhere rather than leave a bucket pinned.
    for (const x of this.buckets.values()) if (x.pins > 0 && x.mapping.bytes.buffer === buf) return x;
    return null;
  }

  /** Drop every mapping (IOREQ_TYPE_INVALIDATE, shutdown); pinned ones go when their DMA ends. */
  invalidate(): void {
    for (const b of this.buckets.values()) this.retire(b);
    this.buckets.clear();
    this.last = null;
  }

  /** Buckets pinned by DMA in flight, in the cache or retired from it. */
  get pinnedBuckets(): number {
    let n = this.retired.length;
    for (const b of this.buckets.values()) if (b.pins > 0) n++;
    return n;
  }

  /** Unmap a bucket leaving the cache now, or when its last pin goes (the caller removes it from `buckets`). */
  private retire(b: Bucket): void {
    if (b.pins > 0) {
      b.retired = true;
      this.retired.push(b);
    } else {
      this.unmapBucket(b);
    }
  }

  /**
   * Checks the arguments and the range, and maps every bucket the access
   * covers with all its pages valid. True only if the copy can proceed.
   */
  private prepare(gpa: number, buf: Uint8Array | null, off: number, len: number): boolean {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(off) || !Number.isSafeInteger(len)) return false;
    if (gpa < 0 || off < 0 || len < 0 || (buf !== null && off + len > buf.length)) return false;
    if (len === 0) return true;
    const end = gpa + len; // exclusive; no wrap: both below 2^53
    if (!((end <= this.lowEnd) || (gpa >= GIB4 && end <= this.highEnd))) return false;
    const first = Math.floor(gpa / BUCKET_SIZE);
    const lastIdx = Math.floor((end - 1) / BUCKET_SIZE);
    // Every bucket of the access must stay mapped until the copy is done.
    if (lastIdx - first + 1 > this.maxBuckets) return false;
    for (let i = first; i <= lastIdx; i++) {
      const b = this.bucketFor(i);
      if (b === null) return false;
      const bStart = i * BUCKET_SIZE;
      const p0 = (Math.max(gpa, bStart) - bStart) >>> PAGE_SHIFT;
      const p1 = (Math.min(end, bStart + BUCKET_SIZE) - 1 - bStart) >>> PAGE_SHIFT;
      if (!pagesValid(b, p0, p1)) {
        // The page may have been populated since: map the bucket again, once
        // (a pinned bucket is replaced by a new one rather than remapped in place).
        if (!this.remap(b)) return false;
        const nb = this.bucketFor(i);
        if (nb === null || !pagesValid(nb, p0, p1)) return false;
      }
    }
    return true;
  }

  /** The bucket if it is mapped (LRU bookkeeping included), else null: nothing is mapped here. */
  private cachedBucket(index: number): Bucket | null {
    const l = this.last;
    if (l !== null && l.index === index) {
      l.lastUse = ++this.clock;
      return l;
    }
    const b = this.buckets.get(index);
    if (b === undefined) return null;
    b.lastUse = ++this.clock;
    this.last = b;
    return b;
  }

  /** The bucket, mapped (LRU bookkeeping included), or null if it cannot be mapped. */
  private bucketFor(index: number): Bucket | null {
    const tick = ++this.clock;
    const l = this.last;
    if (l !== null && l.index === index) {
      l.lastUse = tick;
      return l;
    }
    let b = this.buckets.get(index);
    if (b === undefined) {
      if (this.buckets.size >= this.maxBuckets) this.evictOldest();
      const valid = new Uint8Array(PAGES_PER_BUCKET);
      const m = this.mapInto(index, valid);
      if (m === null) return null;
      b = { index, mapping: m.mapping, valid, allValid: m.allValid, lastUse: tick, pins: 0, retired: false, pages: null };
      this.buckets.set(index, b);
    }
    b.lastUse = tick;
    this.last = b;
    return b;
  }

  private remap(b: Bucket): boolean {
    if (b.pins > 0) {
      // A DMA in flight uses the old mapping: retire it and map the index afresh.
      this.buckets.delete(b.index);
      if (this.last === b) this.last = null;
      this.retire(b);
      return this.bucketFor(b.index) !== null;
    }
    this.unmapBucket(b);
    const m = this.mapInto(b.index, b.valid);
    if (m === null) {
      this.buckets.delete(b.index);
      if (this.last === b) this.last = null;
      return false;
    }
    b.mapping = m.mapping;
    b.allValid = m.allValid;
    b.pages = null; // views of the old mapping
    return true;
  }

  /** Maps the RAM pages of bucket `index` (clipped to the end of its RAM region). */
  private mapInto(index: number, valid: Uint8Array): { mapping: PageMapping; allValid: boolean } | null {
    const start = index * BUCKET_SIZE;
    const regionEnd = start < GIB4 ? this.lowEnd : this.highEnd;
    const pages = Math.min(PAGES_PER_BUCKET, Math.ceil((regionEnd - start) / PAGE_SIZE));
    const errs = this.errs;
    errs.fill(-1);
    this.stats.maps++;
    const mapping = this.mapper.map(start / PAGE_SIZE, pages, errs);
    if (mapping === null) {
      this.stats.mapFailures++;
      return null;
    }
    let allValid = pages === PAGES_PER_BUCKET;
    for (let i = 0; i < PAGES_PER_BUCKET; i++) {
      const ok = i < pages && errs[i] === 0 ? 1 : 0;
      valid[i] = ok;
      if (!ok) allValid = false;
    }
    return { mapping, allValid };
  }

  private unmapBucket(b: Bucket): void {
    this.stats.unmaps++;
    this.mapper.unmap(b.mapping);
  }

  private evictOldest(): void {
    let victim: Bucket | null = null;
    for (const b of this.buckets.values()) if (b.pins === 0 && (victim === null || b.lastUse < victim.lastUse)) victim = b;
    if (victim === null) return; // every bucket is pinned by DMA in flight: map one more for now
    this.stats.evictions++;
    this.unmapBucket(victim);
    this.buckets.delete(victim.index);
    if (this.last === victim) this.last = null;
  }
}

function pagesValid(b: Bucket, p0: number, p1: number): boolean {
  if (b.allValid) return true;
  const v = b.valid;
  for (let p = p0; p <= p1; p++) if (v[p] === 0) return false;
  return true;
}

/** Small copies byte by byte (no view allocated); larger ones through set(). */
function copy(src: Uint8Array, so: number, dst: Uint8Array, doff: number, n: number): void {
  if (n <= 32) {
    for (let i = 0; i < n; i++) dst[doff + i] = src[so + i];
  } else {
    dst.set(src.subarray(so, so + n), doff);
  }
}

// ---------------------------------------------------------------------------

interface ForeignMapping extends PageMapping {
  readonly addr: Ptr;
  readonly pages: number;
}

/** PageMapper over xenforeignmemory_map/unmap for one guest. */
export class ForeignPageMapper implements PageMapper {
  private readonly pfns = new BigUint64Array(PAGES_PER_BUCKET);

  constructor(
    private readonly libs: XenLibs,
    /** The foreignmemory handle, null once closed (then nothing maps). */
    private readonly fmem: () => Ptr | null,
    private readonly domid: number,
    private readonly onError?: (what: string, errno: number) => void,
  ) {}

  map(firstPfn: number, pages: number, errs: Int32Array): PageMapping | null {
    if (pages < 1 || pages > PAGES_PER_BUCKET) return null;
    const h = this.fmem();
    if (h === null) return null;
    const pfns = this.pfns;
    for (let i = 0; i < pages; i++) pfns[i] = BigInt(firstPfn + i);
    const addr = this.libs.fmem.map(h, this.domid, PROT_READ | PROT_WRITE, pages, pfns, errs);
    if (addr === null) {
      this.onError?.(`xenforeignmemory_map(pfn 0x${firstPfn.toString(16)}, ${pages} pages)`, this.libs.errno());
      return null;
    }
    const m: ForeignMapping = { bytes: new Uint8Array(this.libs.view(addr, pages * PAGE_SIZE)), addr, pages };
    return m;
  }

  unmap(m: PageMapping): void {
    const f = m as ForeignMapping;
    const h = this.fmem();
    if (h === null) return; // close() unmaps before it closes the handle, so this is only a late straggler
    if (this.libs.fmem.unmap(h, f.addr, f.pages) !== 0) {
      this.onError?.(`xenforeignmemory_unmap(${f.pages} pages)`, this.libs.errno());
    }
  }
}
