/**
 * What the file backend records into the disk trace (block/trace.ts): each
 * request that goes to libuv's thread pool and how long the event loop sat
 * idle until its result came back, and the read-ahead window's hits, misses
 * and hints, in the order the backend took them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBackend } from '../../src/block/file.ts';
import * as T from '../../src/block/trace.ts';

const K = 1024;

test('the file backend records its thread-pool hops with the idle event loop, and read-ahead hits, misses and hints', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stubdm-disktrace-'));
  try {
    const p = join(dir, 'disk.img');
    writeFileSync(p, new Uint8Array(4 << 20).fill(0x5a));
    const trace = new T.DiskTrace(T.DISK_TRACE_MIN * 4, () => performance.now());
    const hints: number[] = [];
    // No reads from the page cache on the event loop here: every request takes the pool.
    const b = await FileBackend.open({ path: p, trace, readNowait: null, willNeed: (_fd, _off, len) => (hints.push(len), 0) });
    const buf = new Uint8Array(256 * K);
    assert.equal(await b.readv(0, [buf.subarray(0, 128 * K)], 1), null);
    assert.equal(await b.readv(128 * K, [buf.subarray(0, 64 * K), buf.subarray(64 * K, 128 * K)], 2), null);
    assert.equal(await b.readv(256 * K, [buf.subarray(0, 128 * K)], 1), null);
    assert.equal(await b.writev(1 << 20, [buf.subarray(0, 4 * K)], 1), null);
    assert.equal(await b.flush(), null);
    await b.close();
    const got = trace.events().map((e) => [e.kind, e.sub, e.kind === T.EV_FILE && e.sub === T.FILE_POOL_DONE ? 'idle' : e.value]);
    assert.deepEqual(got, [
      [T.EV_RA, T.RA_MISS, 0], // the first read is not known to be sequential
      [T.EV_FILE, T.FILE_POOL, 128 * K],
      [T.EV_FILE, T.FILE_POOL_DONE, 'idle'],
      [T.EV_RA, T.RA_MISS, 0], // sequential, but past what was asked (nothing yet)
      [T.EV_RA, T.RA_ASK, 256 * K],
      [T.EV_FILE, T.FILE_POOL, 128 * K],
      [T.EV_FILE, T.FILE_POOL_DONE, 'idle'],
      [T.EV_RA, T.RA_HIT, 128 * K], // inside the window: 128 KiB of it still ahead
      [T.EV_FILE, T.FILE_POOL, 128 * K],
      [T.EV_FILE, T.FILE_POOL_DONE, 'idle'],
      [T.EV_FILE, T.FILE_POOL, 4 * K], // a write: no read-ahead
      [T.EV_FILE, T.FILE_POOL_DONE, 'idle'],
      [T.EV_FILE, T.FILE_POOL, 0], // the flush: fdatasync in the pool
      [T.EV_FILE, T.FILE_POOL_DONE, 'idle'],
    ]);
    assert.deepEqual(hints, [256 * K]);
    // Idle time is in microseconds and never more than the wall time of the whole run.
    const ev = trace.events();
    const idle = ev.filter((e) => e.kind === T.EV_FILE && e.sub === T.FILE_POOL_DONE).map((e) => e.value);
    assert.ok(idle.every((us) => us >= 0 && us <= (ev[ev.length - 1].t - ev[0].t) * 1000 + 1000), `idle ${idle}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reads served from the page cache on the event loop are recorded as such, and what was not cached goes to the pool', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stubdm-disktrace-'));
  try {
    const p = join(dir, 'disk.img');
    writeFileSync(p, new Uint8Array(1 << 20).map((_, i) => i & 0xff));
    const trace = new T.DiskTrace(T.DISK_TRACE_MIN, () => performance.now());
    // The real addon (the file was just written: it is in the page cache), then what it says when pages are not.
    const answers: number[] = [];
    const b = await FileBackend.open({ path: p, trace, willNeed: null });
    const buf = new Uint8Array(64 * K);
    assert.equal(await b.readv(0, [buf.subarray(0, 32 * K), buf.subarray(32 * K)], 2), null);
    assert.equal(buf[1000], 1000 & 0xff);
    await b.close();
    // The real addon's answer depends on the host (page cache under memory pressure, the file
    // system's RWF_NOWAIT support): the read is right either way, on the loop or through the pool.
    const real = trace.events().map((e) => [e.kind, e.sub, e.kind === T.EV_FILE && e.sub === T.FILE_POOL_DONE ? 'idle' : e.value]);
    assert.ok(
      JSON.stringify(real) === JSON.stringify([[T.EV_FILE, T.FILE_SYNC, 64 * K]]) || real.some((e) => e[1] === T.FILE_POOL_DONE),
      `real addon: ${JSON.stringify(real)}`,
    );
    const trace2 = new T.DiskTrace(T.DISK_TRACE_MIN, () => performance.now());
    const fake = await FileBackend.open({ path: p, trace: trace2, willNeed: null, readNowait: () => answers.shift()! });
    answers.push(16 * K, -11);
    assert.equal(await fake.readv(64 * K, [buf], 1), null); // 16 KiB cached, the rest from the pool
    assert.equal(await fake.readv(0, [buf], 1), null); // nothing cached
    await fake.close();
    const got = trace2.events().map((e) => [e.kind, e.sub, e.kind === T.EV_FILE && e.sub === T.FILE_POOL_DONE ? 'idle' : e.value]);
    assert.deepEqual(got, [
      [T.EV_FILE, T.FILE_SYNC_SHORT, 16 * K],
      [T.EV_FILE, T.FILE_POOL, 48 * K],
      [T.EV_FILE, T.FILE_POOL_DONE, 'idle'],
      [T.EV_FILE, T.FILE_SYNC_SHORT, 0],
      [T.EV_FILE, T.FILE_POOL, 64 * K],
      [T.EV_FILE, T.FILE_POOL_DONE, 'idle'],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
