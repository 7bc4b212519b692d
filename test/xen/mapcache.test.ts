// MapCache against a fake foreign-memory layer. The fake hands out copies of
// guest pages and writes them back on unmap, then detaches the copy, so a
// write through a stale mapping or into a page that failed to map is seen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BUCKET_SIZE,
  GIB4,
  HVM_BELOW_4G_RAM_END,
  MapCache,
  PAGE_SIZE,
  PAGES_PER_BUCKET,
  type PageMapper,
  type PageMapping,
} from '../../src/xen/mapcache.ts';
import { bytesPerOp } from '../helpers/alloc.ts';

const POISON = 0xee;

interface FakeMapping extends PageMapping {
  firstPfn: number;
  pages: number;
  errs: Int32Array;
}

class FakeForeignMemory implements PageMapper {
  /** Guest memory, one lazily allocated 1 MiB block per bucket. */
  private readonly store = new Map<number, Uint8Array>();
  readonly holes = new Set<number>(); // unpopulated pfns
  live = new Set<FakeMapping>();
  maps: { firstPfn: number; pages: number }[] = [];
  failNext = 0;
  violations: string[] = [];

  block(pfn: number): Uint8Array {
    const i = Math.floor(pfn / PAGES_PER_BUCKET);
    let b = this.store.get(i);
    if (!b) {
      b = new Uint8Array(BUCKET_SIZE);
      this.store.set(i, b);
    }
    return b;
  }
  peek(gpa: number): number {
    return this.block(Math.floor(gpa / PAGE_SIZE))[gpa % BUCKET_SIZE];
  }
  poke(gpa: number, v: number): void {
    this.block(Math.floor(gpa / PAGE_SIZE))[gpa % BUCKET_SIZE] = v;
  }

  map(firstPfn: number, pages: number, errs: Int32Array): PageMapping | null {
    this.maps.push({ firstPfn, pages });
    if (firstPfn % PAGES_PER_BUCKET !== 0) this.violations.push(`unaligned map at pfn ${firstPfn}`);
    if (pages < 1 || pages > PAGES_PER_BUCKET) this.violations.push(`bad page count ${pages}`);
    if (this.failNext > 0) {
      this.failNext--;
      return null;
    }
    const bytes = new Uint8Array(pages * PAGE_SIZE);
    const src = this.block(firstPfn);
    const mErrs = new Int32Array(pages);
    for (let i = 0; i < pages; i++) {
      const hole = this.holes.has(firstPfn + i);
      errs[i] = hole ? -2 : 0; // -ENOENT, as the Linux privcmd reports it
      mErrs[i] = errs[i];
      if (hole) bytes.fill(POISON, i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
      else bytes.set(src.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), i * PAGE_SIZE);
    }
    const m: FakeMapping = { bytes, firstPfn, pages, errs: mErrs };
    this.live.add(m);
    return m;
  }

  unmap(pm: PageMapping): void {
    const m = pm as FakeMapping;
    if (!this.live.delete(m)) {
      this.violations.push(`unmap of a mapping that is not live (pfn ${m.firstPfn})`);
      return;
    }
    const dst = this.block(m.firstPfn);
    for (let i = 0; i < m.pages; i++) {
      const page = m.bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
      if (m.errs[i] !== 0) {
        if (page.some((b) => b !== POISON)) this.violations.push(`write into unmapped page pfn ${m.firstPfn + i}`);
      } else {
        dst.set(page, i * PAGE_SIZE);
      }
    }
    structuredClone(m.bytes.buffer, { transfer: [m.bytes.buffer] }); // detach: stale use is visible
  }
}

function setup(ramBytes = 8 * 1024 * 1024, maxBuckets = 4) {
  const fake = new FakeForeignMemory();
  const mc = new MapCache(fake, { ramBytes, maxBuckets });
  return { fake, mc };
}

function pattern(n: number, seed = 1): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 31 + seed) & 0xff;
  return a;
}

test('write then read inside one bucket, data lands in guest memory', () => {
  const { fake, mc } = setup();
  const src = pattern(100);
  assert.equal(mc.write(0x1234, src, 0, 100), true);
  const dst = new Uint8Array(100);
  assert.equal(mc.read(0x1234, dst, 0, 100), true);
  assert.deepEqual(dst, src);
  assert.equal(fake.maps.length, 1);
  mc.invalidate();
  assert.equal(fake.live.size, 0);
  assert.equal(fake.peek(0x1234), src[0]);
  assert.equal(fake.peek(0x1234 + 99), src[99]);
  assert.deepEqual(fake.violations, []);
});

test('buffer offsets are honoured and a zero-length access is a no-op', () => {
  const { fake, mc } = setup();
  fake.poke(0x2000, 0xab);
  const dst = new Uint8Array(8).fill(0x11);
  assert.equal(mc.read(0x2000, dst, 3, 1), true);
  assert.deepEqual([...dst], [0x11, 0x11, 0x11, 0xab, 0x11, 0x11, 0x11, 0x11]);
  assert.equal(mc.read(0x3000, dst, 8, 0), true);
  assert.equal(fake.maps.length, 1);
});

test('copies across bucket boundaries (2 and 3 buckets, small and large)', () => {
  const { fake, mc } = setup();
  const small = pattern(20, 7);
  assert.equal(mc.write(BUCKET_SIZE - 10, small, 0, 20), true);
  const big = pattern(BUCKET_SIZE + 4096, 9);
  assert.equal(mc.write(2 * BUCKET_SIZE - 100, big, 0, big.length), true);
  const back = new Uint8Array(big.length);
  assert.equal(mc.read(2 * BUCKET_SIZE - 100, back, 0, back.length), true);
  assert.deepEqual(back, big);
  const back2 = new Uint8Array(20);
  assert.equal(mc.read(BUCKET_SIZE - 10, back2, 0, 20), true);
  assert.deepEqual(back2, small);
  mc.invalidate();
  for (let i = 0; i < 20; i++) assert.equal(fake.peek(BUCKET_SIZE - 10 + i), small[i]);
  assert.equal(fake.peek(2 * BUCKET_SIZE - 100), big[0]);
  assert.equal(fake.peek(3 * BUCKET_SIZE + 4095 - 100), big[big.length - 1]);
  assert.deepEqual(fake.violations, []);
});

test('pages that failed to map: the access fails and touches nothing', () => {
  const { fake, mc } = setup();
  for (let pfn = 0xa0; pfn < 0xc0; pfn++) fake.holes.add(pfn); // the VGA window
  fake.poke(0x9fff0, 0x55);
  const src = new Uint8Array(32).fill(0x77);
  assert.equal(mc.write(0x9fff0, src, 0, 32), false, 'write straddling the hole');
  assert.equal(mc.write(0xb0000, src, 0, 1), false);
  const dst = new Uint8Array(32);
  assert.equal(mc.read(0xa0000, dst, 0, 4), false);
  assert.equal(mc.read(0xbfffe, dst, 0, 4), false, 'read straddling the end of the hole');
  // Neighbours of the hole in the same bucket work.
  assert.equal(mc.read(0x9fff0, dst, 0, 16), true);
  assert.equal(dst[0], 0x55);
  assert.equal(mc.write(0xc0000, src, 0, 32), true);
  mc.invalidate();
  assert.equal(fake.peek(0x9fff0), 0x55, 'nothing written by the failed write');
  assert.equal(fake.peek(0xc0000), 0x77);
  assert.deepEqual(fake.violations, []);
});

test('a page populated after a failed map is found on the next access', () => {
  const { fake, mc } = setup();
  fake.holes.add(0x10);
  const b = new Uint8Array([1, 2, 3, 4]);
  assert.equal(mc.write(0x10000, b, 0, 4), false);
  fake.holes.delete(0x10);
  assert.equal(mc.write(0x10000, b, 0, 4), true);
  mc.invalidate();
  assert.equal(fake.peek(0x10003), 4);
  assert.deepEqual(fake.violations, []);
});

test('a failed map call caches nothing and a later access retries', () => {
  const { fake, mc } = setup();
  fake.failNext = 1;
  const d = new Uint8Array(4);
  assert.equal(mc.read(0x5000, d, 0, 4), false);
  assert.equal(mc.mapped, 0);
  assert.equal(mc.read(0x5000, d, 0, 4), true);
  assert.equal(mc.stats.mapFailures, 1);
});

test('at most maxBuckets are mapped; the least recently used one goes', () => {
  const { fake, mc } = setup(16 * BUCKET_SIZE, 3);
  const d = new Uint8Array(1);
  for (const i of [0, 1, 2]) assert.equal(mc.read(i * BUCKET_SIZE, d, 0, 1), true);
  assert.equal(mc.read(0, d, 0, 1), true); // bucket 0 is now the most recent
  assert.equal(fake.maps.length, 3);
  assert.equal(mc.read(3 * BUCKET_SIZE, d, 0, 1), true); // evicts bucket 1
  assert.equal(fake.live.size, 3);
  assert.equal(mc.mapped, 3);
  assert.equal(mc.read(0, d, 0, 1), true);
  assert.equal(mc.read(2 * BUCKET_SIZE, d, 0, 1), true);
  assert.equal(fake.maps.length, 4, 'buckets 0 and 2 still mapped');
  assert.equal(mc.read(BUCKET_SIZE, d, 0, 1), true);
  assert.equal(fake.maps.length, 5, 'bucket 1 was evicted and comes back');
  assert.equal(fake.maps[4].firstPfn, PAGES_PER_BUCKET);
  for (let i = 0; i < 16; i++) assert.equal(mc.read(i * BUCKET_SIZE + 5, d, 0, 1), true);
  assert.ok(fake.live.size <= 3);
  assert.equal(mc.stats.evictions, mc.stats.maps - 3);
  assert.deepEqual(fake.violations, []);
});

test('eviction never drops a bucket the current access needs', () => {
  const { fake, mc } = setup(16 * BUCKET_SIZE, 3);
  const d = new Uint8Array(1);
  for (const i of [5, 6, 7]) mc.read(i * BUCKET_SIZE, d, 0, 1);
  const src = pattern(2 * BUCKET_SIZE, 3);
  assert.equal(mc.write(BUCKET_SIZE - 4, src, 0, src.length), true); // buckets 0..2 evict 5..7
  mc.invalidate();
  assert.deepEqual(fake.violations, [], 'no write through a detached mapping');
  // Exactly maxBuckets buckets: fine.
  const three = pattern(3 * BUCKET_SIZE - 8, 5);
  // 4 buckets touched would exceed the cap: refused, nothing written.
  const four = pattern(3 * BUCKET_SIZE + 8, 6);
  assert.equal(mc.write(BUCKET_SIZE - 4, four, 0, four.length), false);
  assert.equal(fake.peek(BUCKET_SIZE - 4), src[0]);
  assert.equal(mc.write(4, three, 0, three.length), true);
  mc.invalidate();
  assert.equal(fake.peek(4), three[0]);
  assert.equal(fake.peek(4 + three.length - 1), three[three.length - 1]);
  assert.deepEqual(fake.violations, []);
});

test('invalidate() unmaps everything; data survives; later accesses remap', () => {
  const { fake, mc } = setup();
  const d = new Uint8Array(4);
  mc.write(0x100, new Uint8Array([9, 8, 7, 6]), 0, 4);
  mc.read(BUCKET_SIZE * 2, d, 0, 4);
  assert.equal(fake.live.size, 2);
  mc.invalidate();
  assert.equal(fake.live.size, 0);
  assert.equal(mc.mapped, 0);
  mc.invalidate(); // idempotent
  assert.equal(mc.read(0x100, d, 0, 4), true);
  assert.deepEqual([...d], [9, 8, 7, 6]);
  assert.deepEqual(fake.violations, []);
});

test('RAM bounds: below lowEnd, above 4 GiB up to highEnd, nothing else', () => {
  const ram = HVM_BELOW_4G_RAM_END + 2 * BUCKET_SIZE; // 2 MiB above 4 GiB
  const { fake, mc } = setup(ram);
  assert.equal(mc.lowEnd, HVM_BELOW_4G_RAM_END);
  assert.equal(mc.highEnd, GIB4 + 2 * BUCKET_SIZE);
  const d = new Uint8Array(16);
  assert.equal(mc.read(HVM_BELOW_4G_RAM_END - 16, d, 0, 16), true);
  assert.equal(mc.read(HVM_BELOW_4G_RAM_END - 8, d, 0, 16), false, 'runs into the MMIO hole');
  assert.equal(mc.read(HVM_BELOW_4G_RAM_END, d, 0, 1), false);
  assert.equal(mc.read(0xfee00000, d, 0, 4), false, 'LAPIC');
  assert.equal(mc.read(GIB4 - 8, d, 0, 16), false, 'straddles 4 GiB');
  assert.equal(mc.write(GIB4, new Uint8Array([0x42]), 0, 1), true);
  assert.equal(mc.read(GIB4 + 2 * BUCKET_SIZE - 16, d, 0, 16), true);
  assert.equal(mc.read(GIB4 + 2 * BUCKET_SIZE - 15, d, 0, 16), false);
  assert.equal(mc.read(GIB4 + 2 * BUCKET_SIZE, d, 0, 1), false);
  mc.invalidate();
  assert.equal(fake.peek(GIB4), 0x42);
  assert.ok(fake.maps.every((m) => m.firstPfn * PAGE_SIZE < HVM_BELOW_4G_RAM_END || m.firstPfn * PAGE_SIZE >= GIB4));
  assert.deepEqual(fake.violations, []);
});

test('small guests: no high region, and the last bucket maps only RAM pages', () => {
  const { fake, mc } = setup(BUCKET_SIZE + BUCKET_SIZE / 2);
  assert.equal(mc.highEnd, 0);
  const d = new Uint8Array(4);
  assert.equal(mc.read(GIB4, d, 0, 4), false);
  assert.equal(mc.read(BUCKET_SIZE + 0x1000, d, 0, 4), true);
  assert.equal(fake.maps.at(-1)!.pages, PAGES_PER_BUCKET / 2);
  assert.equal(mc.read(BUCKET_SIZE + BUCKET_SIZE / 2 - 2, d, 0, 4), false);
});

test('hostile arguments: negative, fractional, NaN, huge and wrapping lengths', () => {
  const { fake, mc } = setup();
  const d = new Uint8Array(16);
  const bad: [number, number, number][] = [
    [-1, 0, 4],
    [0.5, 0, 4],
    [NaN, 0, 4],
    [Infinity, 0, 4],
    [0, -1, 4],
    [0, 0, -1],
    [0, 0, 17], // longer than the buffer
    [0, 12, 8], // off + len past the buffer
    [0, 0, 2 ** 32 + 4], // a length that would wrap in 32 bits
    [2 ** 53 - 2, 0, 4], // end past 2^53
    [2 ** 64, 0, 4],
    [0xffff_fffc, 0, 8], // wraps past 4 GiB in 32-bit arithmetic
  ];
  for (const [gpa, off, len] of bad) {
    assert.equal(mc.read(gpa, d, off, len), false, `read(${gpa}, ${off}, ${len})`);
    assert.equal(mc.write(gpa, d, off, len), false, `write(${gpa}, ${off}, ${len})`);
  }
  assert.equal(fake.maps.length, 0, 'nothing was even mapped');
});

test('constructor refuses nonsense sizes', () => {
  const fake = new FakeForeignMemory();
  assert.throws(() => new MapCache(fake, { ramBytes: -1 }), RangeError);
  assert.throws(() => new MapCache(fake, { ramBytes: 1 << 20, lowMemLimit: 123 }), RangeError);
  assert.throws(() => new MapCache(fake, { ramBytes: 1 << 20, maxBuckets: 0 }), RangeError);
});

test('dirty logging: a successful write reports its pages to onDirty only while logging is on; failed writes report nothing', () => {
  const calls: Array<[number, number]> = [];
  const mem = new FakeForeignMemory();
  const mc = new MapCache(mem, { ramBytes: 64 << 20, onDirty: (pfn, nr) => calls.push([pfn, nr]) });
  const buf = new Uint8Array(3 * PAGE_SIZE);
  assert.equal(mc.write(0x10000, buf, 0, 16), true);
  assert.deepEqual(calls, [], 'off by default');
  mc.setDirtyLog(true);
  assert.equal(mc.write(0x10ff8, buf, 0, 16), true); // straddles pfn 0x10 and 0x11
  assert.equal(mc.write(0x20000, buf, 0, 3 * PAGE_SIZE), true);
  assert.equal(mc.write(0x30000, buf, 0, 0), true); // nothing written, nothing reported
  assert.equal(mc.write((64 << 20) - 8, buf, 0, 16), false); // leaves RAM: refused, not reported
  assert.equal(mc.read(0x40000, buf, 0, 16), true); // reads never dirty anything
  assert.deepEqual(calls, [[0x10, 2], [0x20, 3]]);
  mc.setDirtyLog(false);
  assert.equal(mc.write(0x50000, buf, 0, 16), true);
  assert.equal(calls.length, 2);
  // No sink configured: logging on is a no-op.
  const quiet = new MapCache(new FakeForeignMemory(), { ramBytes: 64 << 20 });
  quiet.setDirtyLog(true);
  assert.equal(quiet.write(0x10000, buf, 0, 16), true);
});

// ---- zero-copy DMA: views pinned until released ----

test('dmaView: a view of guest RAM up to the end of its bucket; data written through it lands in guest memory', () => {
  const { fake, mc } = setup();
  const v = mc.dmaView(BUCKET_SIZE - 512, 4096)!;
  assert.equal(v.length, 512, 'clipped where the mapping ends');
  v.set(pattern(512, 3));
  mc.dmaRelease(v, BUCKET_SIZE - 512, true);
  assert.equal(mc.pinnedBuckets, 0);
  mc.invalidate();
  assert.equal(fake.peek(BUCKET_SIZE - 512), pattern(512, 3)[0]);
  assert.equal(fake.peek(BUCKET_SIZE - 1), pattern(512, 3)[511]);
  assert.equal(mc.dmaView(8 * 1024 * 1024 - 16, 32)?.length, 16);
  assert.equal(mc.dmaView(8 * 1024 * 1024, 16), null, 'not RAM');
  assert.equal(mc.dmaView(0, 0), null);
  fake.holes.add(3 * PAGES_PER_BUCKET + 5);
  assert.equal(mc.dmaView(3 * BUCKET_SIZE + 5 * PAGE_SIZE, 16), null, 'a page Xen never populated');
  assert.deepEqual(fake.violations, []);
});

test('a pinned bucket is never evicted, and goes once released', () => {
  const { fake, mc } = setup(); // 4 buckets at most
  const v = mc.dmaView(0x1000, 4096)!;
  const one = new Uint8Array(1);
  for (let i = 1; i <= 6; i++) assert.equal(mc.read(i * BUCKET_SIZE, one, 0, 1), true);
  assert.equal(v.length, 4096, 'still mapped (a detached view has length 0)');
  v.fill(0x5a);
  assert.equal(mc.mapped, 4);
  mc.dmaRelease(v, 0x1000, true);
  for (let i = 1; i <= 6; i++) assert.equal(mc.read(i * BUCKET_SIZE, one, 0, 1), true);
  assert.equal(v.length, 0, 'evicted (unmapped) after the release');
  assert.equal(fake.peek(0x1000), 0x5a);
  assert.deepEqual(fake.violations, []);
});

test('invalidate while pinned: the bucket leaves the cache now, is unmapped at the release; new accesses map afresh', () => {
  const { fake, mc } = setup();
  const v = mc.dmaView(0x2000, 100)!;
  mc.invalidate();
  assert.equal(fake.live.size, 1, 'the pinned mapping stays');
  assert.equal(mc.pinnedBuckets, 1);
  const maps = fake.maps.length;
  const one = new Uint8Array(1);
  assert.equal(mc.read(0x3000, one, 0, 1), true);
  assert.equal(fake.maps.length, maps + 1, 'a fresh mapping for the same bucket');
  v[0] = 0x77;
  mc.dmaRelease(v, 0x2000, true);
  assert.equal(v.length, 0, 'unmapped at the release');
  assert.equal(fake.live.size, 1, 'only the fresh one is left');
  assert.equal(mc.pinnedBuckets, 0);
  // Releasing a view that is not ours changes nothing.
  mc.dmaRelease(new Uint8Array(4), 0, true);
  assert.deepEqual(fake.violations, []);
});

test('a pinned bucket that must be remapped (a hole filled since) is replaced, not unmapped under the DMA', () => {
  const { fake, mc } = setup();
  fake.holes.add(10);
  const v = mc.dmaView(0, 4096)!;
  fake.holes.delete(10);
  fake.poke(10 * PAGE_SIZE, 0x42);
  const one = new Uint8Array(1);
  assert.equal(mc.read(10 * PAGE_SIZE, one, 0, 1), true);
  assert.equal(one[0], 0x42);
  assert.equal(v.length, 4096, 'the view in use is still mapped');
  mc.dmaRelease(v, 0, false);
  assert.equal(v.length, 0);
  assert.deepEqual(fake.violations, []);
});

test('dirty logging: a released view the device wrote reports its pages; one it only read does not', () => {
  const fake = new FakeForeignMemory();
  const dirty: [number, number][] = [];
  const mc = new MapCache(fake, { ramBytes: 8 << 20, maxBuckets: 4, onDirty: (p, n) => void dirty.push([p, n]) });
  mc.setDirtyLog(true);
  const v = mc.dmaView(0x1800, 0x2000)!;
  mc.dmaRelease(v, 0x1800, false);
  assert.deepEqual(dirty, []);
  const w = mc.dmaView(0x1800, 0x2000)!;
  mc.dmaRelease(w, 0x1800, true);
  assert.deepEqual(dirty, [[1, 3]]);
});

test('dmaRelease finds a view\'s bucket by its gpa among many pinned ones, a retired one under the same index, or (a wrong gpa) anywhere', () => {
  const { fake, mc } = setup(64 << 20, 64);
  // A 512 KiB DMA's 128 PRD entries: one page in each of 32 buckets, four per bucket.
  const gpas = Array.from({ length: 128 }, (_, i) => (i % 32) * BUCKET_SIZE + (i >> 5) * 2 * PAGE_SIZE);
  const views = gpas.map((g) => mc.dmaView(g, PAGE_SIZE)!);
  assert.equal(mc.pinnedBuckets, 32);
  // Half of them back while their buckets are in the cache: each bucket keeps its other pins.
  for (let i = 64; i < 128; i++) mc.dmaRelease(views[i], gpas[i], true);
  assert.equal(mc.pinnedBuckets, 32);
  assert.ok(views.every((v) => v.length === PAGE_SIZE), 'nothing unmapped under a DMA');
  // Every bucket is invalidated while pinned; bucket 5 is mapped again under the same index, pinned by a new view.
  mc.invalidate();
  const again = mc.dmaView(5 * BUCKET_SIZE + PAGE_SIZE, PAGE_SIZE)!;
  assert.equal(mc.pinnedBuckets, 33);
  for (let i = 0; i < 64; i++) mc.dmaRelease(views[i], gpas[i], true);
  assert.equal(mc.pinnedBuckets, 1, 'only the new view of bucket 5 is left');
  assert.equal(views[5].length, 0, 'the retired mapping went at its last release');
  assert.equal(again.length, PAGE_SIZE, 'the new mapping of the same index stays');
  mc.dmaRelease(again, 9 * BUCKET_SIZE, false); // the wrong gpa
  assert.equal(mc.pinnedBuckets, 0);
  assert.deepEqual(fake.violations, []);
});

test('dmaView of a whole page hands out the same view each time (no allocation per DMA), a fresh one once the bucket is mapped again', () => {
  const { fake, mc } = setup(64 << 20, 64);
  const gpas = Array.from({ length: 128 }, (_, i) => (i % 32) * BUCKET_SIZE + (i >> 5) * 2 * PAGE_SIZE);
  const first = gpas.map((g) => mc.dmaView(g, PAGE_SIZE)!);
  for (let i = 0; i < 128; i++) mc.dmaRelease(first[i], gpas[i], true);
  const again = gpas.map((g) => mc.dmaView(g, PAGE_SIZE)!);
  assert.ok(again.every((v, i) => v === first[i]), 'the page views are reused');
  assert.equal(mc.pinnedBuckets, 32, 'each use pins its bucket as before');
  for (let i = 0; i < 128; i++) mc.dmaRelease(again[i], gpas[i], true);
  assert.equal(mc.pinnedBuckets, 0, 'and each release unpins it');
  // A part of a page is a view of its own; so is a page not on a page boundary.
  const part = mc.dmaView(0x1000, 512)!;
  assert.notEqual(part, mc.dmaView(0x1000, 512));
  assert.notEqual(mc.dmaView(0x1800, PAGE_SIZE), mc.dmaView(0x1800, PAGE_SIZE));
  // A 512 KiB request's views and releases, over and over: nothing allocated.
  const request = () => {
    for (let i = 0; i < 128; i++) mc.dmaRelease(mc.dmaView(gpas[i], PAGE_SIZE)!, gpas[i], true);
  };
  assert.ok(bytesPerOp(request, 1000, 10) < 128, 'under a byte per view (a new view per entry was 2.7 KB per request)');
  // The bucket is mapped again (a page Xen had not populated is there now): its page views are new ones.
  const { fake: f2, mc: m2 } = setup();
  f2.holes.add(7);
  const v0 = m2.dmaView(0, PAGE_SIZE)!;
  m2.dmaRelease(v0, 0, false);
  f2.holes.delete(7);
  assert.equal(m2.read(7 * PAGE_SIZE, new Uint8Array(1), 0, 1), true, 'remapped in place');
  const v1 = m2.dmaView(0, PAGE_SIZE)!;
  assert.notEqual(v1, v0);
  assert.equal(v0.length, 0, 'the old view went with its mapping');
  assert.equal(v1.length, PAGE_SIZE);
  m2.dmaRelease(v1, 0, false);
  assert.deepEqual([...fake.violations, ...f2.violations], []);
});

test('countersLine: maps, unmaps and evictions since start, for info disktrace', () => {
  const { mc } = setup(); // 4 buckets at most
  const one = new Uint8Array(1);
  for (let i = 0; i < 6; i++) mc.read(i * BUCKET_SIZE, one, 0, 1);
  assert.equal(mc.countersLine(), 'mapcache since start: maps=6 unmaps=2 evictions=2 map_failures=0 pinned=0 buckets=4 of 4');
});
