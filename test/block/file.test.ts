import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, statSync, existsSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBackend, BlockOpenError, blockDeviceSize } from '../../src/block/file.ts';
import { OrderedBackend } from '../../src/block/ordered.ts';
import { FaultyBackend } from '../../src/block/fault.ts';
import { MemoryBackend } from '../../src/block/memory.ts';
import { openBlockBackend } from '../../src/block/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'stubdm-block-'));

function image(name: string, bytes: number, fill = 0): string {
  const p = join(dir, name);
  writeFileSync(p, new Uint8Array(bytes).fill(fill));
  return p;
}

for (const cache of ['writeback', 'none', 'writethrough', 'directsync', 'unsafe'] as const) {
  test(`raw file, cache=${cache}: size, read, write, flush land in the file`, async () => {
    const p = image(`rw-${cache}.img`, 1 << 20, 0x11);
    const b = await FileBackend.open({ path: p, cache });
    assert.equal(b.size, 1 << 20);
    if (cache === 'none' || cache === 'directsync') assert.equal(b.direct, true, 'ext4/xfs support O_DIRECT');
    const w = new Uint8Array(4096).fill(0xab);
    assert.equal(await b.write(8192, w, 0, 4096), null);
    const r = new Uint8Array(8192);
    assert.equal(await b.read(4096, r, 0, 8192), null);
    assert.ok(r.subarray(0, 4096).every((x) => x === 0x11));
    assert.ok(r.subarray(4096).every((x) => x === 0xab));
    assert.equal(await b.flush(), null);
    await b.close();
    const f = readFileSync(p);
    assert.equal(f[8192], 0xab);
    assert.equal(f[8191], 0x11);
  });
}

test('cache=none refuses unaligned requests with an error result, not an exception', async () => {
  const p = image('dio.img', 65536);
  const b = await FileBackend.open({ path: p, cache: 'none' });
  assert.equal(await b.read(100, new Uint8Array(512), 0, 512), b.direct ? 'EINVAL' : null);
  await b.close();
});

test('read-only backends refuse writes with EROFS', async () => {
  const p = image('ro.img', 4096);
  const b = await FileBackend.open({ path: p, readOnly: true });
  assert.equal(await b.write(0, new Uint8Array(512), 0, 512), 'EROFS');
  assert.equal(await b.flush(), null);
  await b.close();
});

test('operator errors are one-line BlockOpenErrors', async () => {
  await assert.rejects(FileBackend.open({ path: join(dir, 'missing.img') }), (e) => e instanceof BlockOpenError && /ENOENT/.test(e.message));
  const p = image('notdev.img', 512);
  await assert.rejects(FileBackend.open({ path: p, format: 'host_device' }), (e) => e instanceof BlockOpenError && /block device/.test(e.message));
  await assert.rejects(FileBackend.open({ path: dir }), (e) => e instanceof BlockOpenError);
});

test('block device size comes from sysfs and matches blockdev --getsize64', (t) => {
  const dev = readdirSync('/sys/class/block').find((n) => !n.startsWith('loop') && existsSync(`/dev/${n}`) && Number(readFileSync(`/sys/class/block/${n}/size`, 'utf8')) > 0);
  if (!dev) return t.skip('no block device with media on this machine');
  const st = statSync(`/dev/${dev}`);
  assert.ok(st.isBlockDevice());
  const size = blockDeviceSize(st.rdev);
  const expect = Number(readFileSync(`/sys/class/block/${dev}/size`, 'utf8')) * 512;
  assert.equal(size, expect);
  try {
    const out = execFileSync('blockdev', ['--getsize64', `/dev/${dev}`], { encoding: 'utf8' });
    assert.equal(size, Number(out.trim()));
  } catch {
    /* blockdev missing or not permitted: the sysfs value stands */
  }
});

test('a block device opens read-only with its real size', async (t) => {
  const dev = readdirSync('/sys/class/block').find((n) => !n.startsWith('loop') && existsSync(`/dev/${n}`) && Number(readFileSync(`/sys/class/block/${n}/size`, 'utf8')) > 0);
  if (!dev) return t.skip('no block device');
  let b: FileBackend;
  try {
    b = await FileBackend.open({ path: `/dev/${dev}`, format: 'host_device', readOnly: true });
  } catch (e) {
    return t.skip(`cannot open /dev/${dev}: ${(e as Error).message}`);
  }
  assert.equal(b.size, Number(readFileSync(`/sys/class/block/${dev}/size`, 'utf8')) * 512);
  assert.equal(await b.read(0, new Uint8Array(512), 0, 512), null);
  await b.close();
});

test('ordering: a read after an overlapping write in flight sees the write', async () => {
  const f = new FaultyBackend(new MemoryBackend(8192));
  const o = new OrderedBackend(f);
  f.hold = (op) => op === 'write';
  const w = o.write(512, new Uint8Array(512).fill(7), 0, 512);
  const dst = new Uint8Array(1024);
  const r = o.read(0, dst, 0, 1024);
  const other = o.read(4096, new Uint8Array(512), 0, 512); // disjoint: not blocked
  assert.equal(await other, null);
  assert.equal(f.heldCount, 1);
  f.release();
  assert.equal(await w, null);
  assert.equal(await r, null);
  assert.equal(dst[511], 0);
  assert.equal(dst[512], 7);
});

test('ordering: a flush completes only after every earlier write and then syncs', async () => {
  const mem = new MemoryBackend(8192);
  const f = new FaultyBackend(mem);
  const o = new OrderedBackend(f);
  f.hold = (op) => op === 'write';
  const w1 = o.write(0, new Uint8Array(512).fill(1), 0, 512);
  const w2 = o.write(0, new Uint8Array(512).fill(2), 0, 512); // waits for w1 (same place)
  let flushed = false;
  const fl = o.flush().then((r) => ((flushed = true), r));
  await new Promise((r) => setImmediate(r));
  assert.equal(flushed, false);
  assert.equal(mem.flushes, 0);
  f.release(); // w1 goes, w2 then reaches the hold
  await w1;
  await new Promise((r) => setImmediate(r));
  assert.equal(flushed, false);
  f.release();
  assert.equal(await w2, null);
  assert.equal(await fl, null);
  assert.equal(mem.flushes, 1);
  assert.equal(mem.data[0], 2, 'writes to one place keep their order');
  assert.deepEqual(f.log, ['write 0 512', 'write 0 512', 'flush 0 0']);
});

test('fault injection: chosen requests fail with their code, others pass', async () => {
  const f = new FaultyBackend(new MemoryBackend(8192));
  f.rule = (op, off) => (op === 'read' && off === 1024 ? 'EIO' : op === 'flush' ? 'ENOSPC' : null);
  const o = new OrderedBackend(f);
  assert.equal(await o.read(0, new Uint8Array(512), 0, 512), null);
  assert.equal(await o.read(1024, new Uint8Array(512), 0, 512), 'EIO');
  assert.equal(await o.flush(), 'ENOSPC');
});

test('openBlockBackend gives an ordered file backend', async () => {
  const p = image('ob.img', 4096, 5);
  const b = await openBlockBackend({ path: p });
  const d = new Uint8Array(4);
  assert.equal(await b.read(100, d, 0, 4), null);
  assert.deepEqual([...d], [5, 5, 5, 5]);
  await b.close();
});

for (const cache of ['writeback', 'none', 'writethrough'] as const) {
  test(`raw file, cache=${cache}: readv/writev move odd-sized views in one request, in order`, async () => {
    const p = image(`vec-${cache}.img`, 1 << 20, 0x22);
    const b = await openBlockBackend({ path: p, cache });
    // Views of 1 KiB + 6 + 506 + 2 KiB = 3584 bytes (7 sectors), as PRD entries may split a transfer.
    const ram = new Uint8Array(8192).map((_, i) => (i * 13) & 0xff);
    const views = [ram.subarray(0, 1024), ram.subarray(2000, 2006), ram.subarray(3000, 3506), ram.subarray(5000, 7048)];
    assert.equal(await b.writev(4096, views, 4), null);
    assert.equal(await b.flush(), null);
    const f = readFileSync(p);
    let at = 4096;
    for (const v of views) {
      assert.deepEqual(new Uint8Array(f.subarray(at, at + v.length)), v);
      at += v.length;
    }
    assert.equal(f[at], 0x22, 'nothing past the request');
    const back = new Uint8Array(8192);
    const into = [back.subarray(0, 6), back.subarray(100, 3678)];
    assert.equal(await b.readv(4096, into, 2), null);
    assert.deepEqual(into[0], views[0].subarray(0, 6));
    assert.deepEqual(into[1].subarray(0, 1018), views[0].subarray(6));
    // count below views.length: only those views.
    const first = new Uint8Array(512);
    const second = new Uint8Array(512).fill(7);
    assert.equal(await b.readv(0, [first, second], 1), null);
    assert.ok(first.every((x) => x === 0x22));
    assert.ok(second.every((x) => x === 7), 'the view past count is left alone');
    await b.close();
  });
}

test('readv past the end of a file that shrank gives zeros, writev to a read-only file EROFS', async () => {
  const p = image('vec-short.img', 8192, 0x33);
  const b = await FileBackend.open({ path: p });
  writeFileSync(p, new Uint8Array(4096).fill(0x44)); // the file shrinks under us
  const r = new Uint8Array(8192).fill(0xff);
  assert.equal(await b.readv(0, [r.subarray(0, 2048), r.subarray(2048)], 2), null);
  assert.ok(r.subarray(0, 4096).every((x) => x === 0x44));
  assert.ok(r.subarray(4096).every((x) => x === 0));
  await b.close();
  const ro = await FileBackend.open({ path: p, readOnly: true });
  assert.equal(await ro.writev(0, [new Uint8Array(512)], 1), 'EROFS');
  await ro.close();
});

test('sequential reads keep a read-ahead window asked for (one hint per half window); random reads and cache=none ask nothing', async () => {
  const p = image('ra.img', 16 << 20, 0x55);
  const hints: [number, number][] = [];
  const b = await FileBackend.open({ path: p, willNeed: (_fd, off, len) => (hints.push([off, len]), 0) });
  const buf = new Uint8Array(1 << 20);
  const K = 1024;
  assert.equal(await b.read(0, buf, 0, 128 * K), null);
  assert.equal(hints.length, 0, 'the first read is not known to be sequential');
  assert.equal(await b.read(128 * K, buf, 0, 128 * K), null);
  assert.deepEqual(hints, [[256 * K, 256 * K]], 'window: twice the request, at least 256 KiB');
  assert.equal(await b.read(256 * K, buf, 0, 128 * K), null);
  assert.equal(hints.length, 1, 'half of the window still ahead: no new hint');
  assert.equal(await b.read(384 * K, buf, 0, 128 * K), null);
  assert.deepEqual(hints[1], [512 * K, 256 * K], 'less than half ahead: asked again, from where the last hint ended');
  assert.equal(await b.readv(512 * K, [buf.subarray(0, 1 << 20)], 1), null);
  assert.deepEqual(hints[2], [1536 * K, 2048 * K], 'a 1 MiB request: a 2 MiB window past it');
  hints.length = 0;
  assert.equal(await b.read(8 << 20, buf, 0, 4096), null);
  assert.equal(await b.read(3 << 20, buf, 0, 4096), null);
  assert.equal(hints.length, 0, 'random reads: no hint');
  // The window stops at the end of the image.
  assert.equal(await b.read((16 << 20) - 8192, buf, 0, 4096), null);
  assert.equal(await b.read((16 << 20) - 4096, buf, 0, 4096), null);
  assert.equal(hints.length, 0, 'nothing past the end of the image');
  await b.close();
  const d = await FileBackend.open({ path: p, cache: 'none', willNeed: (_fd, off, len) => (hints.push([off, len]), 0) });
  if (d.direct) {
    assert.equal(await d.read(0, buf, 0, 4096), null);
    assert.equal(await d.read(4096, buf, 0, 4096), null);
    assert.equal(hints.length, 0, 'O_DIRECT bypasses the page cache: no read-ahead');
  }
  await d.close();
});

test('cached reads on the event loop: whole, partly cached (the rest from the pool), not cached, past the end; a kernel without RWF_NOWAIT is asked once', async () => {
  const data = new Uint8Array(256 * 1024).map((_, i) => (i * 13 + (i >> 10)) & 0xff);
  const p = join(dir, 'nowait.img');
  writeFileSync(p, data);
  const calls: [number, number, number][] = [];
  const answers: number[] = [];
  // A stand-in for preadv2(RWF_NOWAIT): copies what it says was cached, then returns that count or the errno.
  const rn = (_fd: number, views: readonly Uint8Array[], count: number, off: number): number => {
    const a = answers.shift()!;
    calls.push([off, count, a]);
    let pos = off;
    let left = a;
    for (let i = 0; i < count && left > 0; i++) {
      const n = Math.min(left, views[i].length);
      views[i].set(data.subarray(pos, pos + n));
      pos += n;
      left -= n;
    }
    return a;
  };
  const b = await FileBackend.open({ path: p, willNeed: null, readNowait: rn });
  const views = () => [new Uint8Array(3000), new Uint8Array(5192)]; // 8 KiB, split off a page boundary
  const check = async (off: number, what: string) => {
    const v = views();
    assert.equal(await b.readv(off, v, 2), null, what);
    assert.deepEqual([...v[0], ...v[1]], [...data.subarray(off, off + 8192)], what);
  };
  answers.push(8192);
  await check(4096, 'all cached');
  answers.push(4000); // 3000 bytes into the first view, 1000 into the second: the pool reads the rest
  await check(16384, 'partly cached');
  answers.push(-11); // EAGAIN
  await check(32768, 'not cached');
  answers.push(0); // the end of a file that shrank since: the pool's read fills zeros
  const tail = new Uint8Array(100).fill(9);
  assert.equal(await b.read(data.length, tail, 0, 100), null);
  assert.deepEqual(tail, new Uint8Array(100));
  answers.push(-38); // ENOSYS: no more asking
  await check(65536, 'a kernel without it');
  await check(65536 + 8192, 'asked no more');
  assert.deepEqual(calls.map((c) => c[0]), [4096, 16384, 32768, data.length, 65536]);
  assert.deepEqual(calls.map((c) => c[1]), [2, 2, 2, 1, 2]);
  await b.close();
  // Larger than SYNC_READ_MAX, or more views than the addon takes: never asked.
  calls.length = 0;
  const c = await FileBackend.open({ path: p, willNeed: null, readNowait: rn });
  writeFileSync(join(dir, 'big.img'), new Uint8Array(2 << 20));
  const d = await FileBackend.open({ path: join(dir, 'big.img'), willNeed: null, readNowait: rn });
  assert.equal(await d.readv(0, [new Uint8Array((1 << 20) + 4096)], 1), null);
  assert.equal(await c.readv(0, Array.from({ length: 257 }, () => new Uint8Array(512)), 257), null);
  assert.deepEqual(calls, []);
  await c.close();
  await d.close();
  // cache=none reads around the page cache (O_DIRECT): never asked either.
  const e = await FileBackend.open({ path: p, cache: 'none', willNeed: null, readNowait: rn });
  if (e.direct) {
    assert.equal(await e.readv(0, [new Uint8Array(4096)], 1), null);
    assert.deepEqual(calls, []);
  }
  await e.close();
});

test('the real addon: a read of a file just written (in the page cache) is served on the event loop and right', async () => {
  const { loadReadNowait } = await import('../../src/block/native.ts');
  const rn = loadReadNowait();
  if (rn === null) return; // the addon is not built here: the pool reads, as before
  const data = new Uint8Array(128 * 1024).map((_, i) => (i * 7) & 0xff);
  const p = join(dir, 'nowait-real.img');
  writeFileSync(p, data);
  let asked = 0;
  const b = await FileBackend.open({ path: p, willNeed: null, readNowait: (...a) => (asked++, rn(...a)) });
  const v = [new Uint8Array(4096), new Uint8Array(60 * 1024)];
  assert.equal(await b.readv(4096, v, 2), null);
  assert.deepEqual([...v[0], ...v[1]], [...data.subarray(4096, 4096 + 64 * 1024)]);
  assert.equal(asked, 1);
  await b.close();
});
