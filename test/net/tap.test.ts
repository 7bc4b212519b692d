// TapBackend: its bookkeeping over a scripted fake of the addon (refusals,
// bursts, EAGAIN, errors, offload headers); the real addon's write/EAGAIN/
// writable path on a FIFO; and a real tap in a network namespace of its own
// (test/net/tap-netns.ts, run under `unshare --net`), where it is root and
// /dev/net/tun exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { TapBackend, RX_BURST, MAX_FRAME, MAX_WRITABLE_LISTENERS } from '../../src/net/index.ts';
import { EAGAIN, EBADFD, EIO, EV_READABLE, EV_WRITABLE } from '../../src/net/native.ts';
import { FakeTapIo as FakeIo } from '../helpers/fake-tapio.ts';
import { prng } from '../helpers/prng.ts';

const quiet = pino({ level: 'silent' });

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

function fr(seq: number, len = 60): Uint8Array {
  const f = new Uint8Array(len);
  f[14] = seq >> 8;
  f[15] = seq & 0xff;
  for (let i = 16; i < len; i++) f[i] = (seq + i) & 0xff;
  return f;
}
const seqOf = (f: Uint8Array): number => (f[14] << 8) | f[15];

function fakeTap(io: FakeIo, vnet = 0): TapBackend {
  // fd -1: close() of it fails quietly, which is what the fake wants.
  return TapBackend.fromFd('fake0', -1, vnet, quiet, io);
}

test('nothing is read until a receiver is set; then reads are bounded per wake-up', () => {
  const io = new FakeIo();
  const tap = fakeTap(io);
  assert.equal(io.mask, 0, 'no readable watch without a receiver');
  for (let i = 0; i < RX_BURST + 10; i++) io.rx.push(fr(i));
  const got: number[] = [];
  tap.setReceiver((f) => (got.push(seqOf(f)), true));
  assert.equal(io.mask, EV_READABLE);
  io.fire(EV_READABLE);
  assert.equal(got.length, RX_BURST, 'one wake-up reads at most RX_BURST frames');
  io.fire(EV_READABLE);
  assert.deepEqual(got, Array.from({ length: RX_BURST + 10 }, (_, i) => i));
  assert.equal(tap.stats.rxFrames, RX_BURST + 10);
  // One receive buffer, and no new view object per frame of a length seen before.
  const views = new Set<Uint8Array>();
  tap.setReceiver((f) => (views.add(f), true));
  for (let i = 0; i < 20; i++) io.rx.push(fr(i, i % 2 ? 1514 : 66));
  io.fire(EV_READABLE);
  assert.equal(views.size, 2);
  assert.equal(new Set([...views].map((v) => v.buffer)).size, 1);
});

test('a refused frame stops reading, is offered again after resumeReceive (later, not inside it), then reading resumes', async () => {
  const io = new FakeIo();
  const tap = fakeTap(io);
  io.rx.push(fr(1), fr(2), fr(3));
  const got: number[] = [];
  let room = 1;
  tap.setReceiver((f) => {
    if (room === 0) return false;
    room--;
    got.push(seqOf(f));
    return true;
  });
  io.fire(EV_READABLE);
  assert.deepEqual(got, [1]);
  assert.equal(io.mask & EV_READABLE, 0, 'readable watch off while the NIC is full');
  assert.equal(io.rx.length, 1, 'frame 2 was read and is held; frame 3 is still in the kernel');
  io.fire(EV_READABLE);
  assert.equal(io.rx.length, 1, 'no read while paused');
  room = 5;
  tap.resumeReceive();
  assert.deepEqual(got, [1], 'resumeReceive never calls the receiver itself');
  await turns(1);
  assert.deepEqual(got, [1, 2], 'the held frame first');
  assert.equal(io.mask, EV_READABLE);
  io.fire(EV_READABLE);
  assert.deepEqual(got, [1, 2, 3]);
});

test('frames of impossible length are dropped and counted, the rest delivered', () => {
  const io = new FakeIo();
  const tap = fakeTap(io);
  io.rx.push(fr(1), new Uint8Array(MAX_FRAME + 100), new Uint8Array(8), fr(2));
  const got: number[] = [];
  tap.setReceiver((f) => (got.push(seqOf(f)), true));
  io.fire(EV_READABLE);
  assert.deepEqual(got, [1, 2]);
  assert.equal(tap.stats.rxDropped, 2);
});

test('a read error other than EAGAIN stops reading for good (no busy loop)', () => {
  const io = new FakeIo();
  const tap = fakeTap(io);
  io.rx.push(fr(1), -EBADFD, fr(2));
  const got: number[] = [];
  tap.setReceiver((f) => (got.push(seqOf(f)), true));
  io.fire(EV_READABLE);
  assert.deepEqual(got, [1]);
  assert.equal(io.mask, 0);
  const reads = io.reads;
  io.fire(EV_READABLE);
  assert.equal(io.reads, reads);
});

test('EAGAIN refuses this and every later frame until writable; then each onWritable callback runs once', () => {
  const io = new FakeIo();
  const tap = fakeTap(io);
  let w1 = 0;
  let w2 = 0;
  tap.onWritable(() => w1++);
  tap.onWritable(() => w2++);
  assert.equal(tap.send(fr(1), null), true);
  io.writeResults.push(-EAGAIN);
  assert.equal(tap.send(fr(2), null), false);
  assert.equal(io.mask & EV_WRITABLE, EV_WRITABLE);
  assert.equal(tap.send(fr(3), null), false, 'nothing overtakes the refused frame');
  assert.equal(io.writes.length, 1);
  io.fire(EV_WRITABLE);
  assert.equal(w1, 1);
  assert.equal(w2, 1);
  assert.equal(io.mask & EV_WRITABLE, 0);
  io.fire(EV_WRITABLE);
  assert.equal(w1, 1, 'once per refusal');
  assert.equal(tap.send(fr(2), null), true);
  assert.equal(tap.send(fr(3), null), true);
  assert.deepEqual(io.writes.map((w) => seqOf(Uint8Array.from(w.bytes))), [1, 2, 3]);
  assert.equal(tap.stats.txRefused, 1);
  for (let i = 2; i < MAX_WRITABLE_LISTENERS; i++) tap.onWritable(() => {});
  assert.throws(() => tap.onWritable(() => {}), RangeError);
});

test('other write errors drop the frame (counted) instead of stalling the NIC', () => {
  const io = new FakeIo();
  const tap = fakeTap(io);
  io.writeResults.push(-EIO);
  assert.equal(tap.send(fr(1), null), true);
  assert.equal(tap.send(new Uint8Array(5), null), true);
  assert.equal(tap.send(new Uint8Array(MAX_FRAME + 1), null), true);
  assert.equal(tap.stats.txDropped, 3);
  assert.equal(tap.stats.txFrames, 0);
  assert.equal(io.writes.length, 0);
});

test('offloads become the virtio-net header; without one the checksum is finished here', () => {
  const io = new FakeIo();
  const v = fakeTap(io, 10);
  assert.equal(v.offloads, true);
  const f = fr(1, 3000);
  assert.equal(v.send(f, { csumStart: 34, csumOffset: 16, gsoSize: 1448, hdrLen: 66, gsoType: 'tcpv4' }), true);
  // args after len: vnetHdrLen, flags, gsoType, hdrLen, gsoSize, csumStart, csumOffset
  assert.deepEqual(io.writes[0].args, [10, 1, 1, 66, 1448, 34, 16]);
  assert.equal(v.send(fr(2), null), true);
  assert.deepEqual(io.writes[1].args, [10, 0, 0, 0, 0, 0, 0]);
  assert.equal(v.send(fr(3), { csumStart: 34, csumOffset: 26, gsoSize: 0, hdrLen: 0, gsoType: 'none' }), true, 'csum field past the end');
  assert.equal(v.stats.txDropped, 1);

  const io2 = new FakeIo();
  const p = fakeTap(io2, 0);
  assert.equal(p.offloads, false);
  const g = fr(4, 100);
  const orig = g.slice();
  assert.equal(p.send(g, { csumStart: 34, csumOffset: 6, gsoSize: 0, hdrLen: 0, gsoType: 'none' }), true);
  assert.deepEqual(g, orig, "the NIC's frame is not modified");
  const sent = Uint8Array.from(io2.writes[0].bytes);
  assert.notDeepEqual(sent.subarray(40, 42), orig.subarray(40, 42), 'checksum inserted into the copy');
  assert.deepEqual(io2.writes[0].args, [0, 0, 0, 0, 0, 0, 0]);
  assert.equal(p.send(fr(5, 3000), { csumStart: 34, csumOffset: 16, gsoSize: 1448, hdrLen: 66, gsoType: 'tcpv4' }), true);
  assert.equal(p.stats.txDropped, 1, 'segmentation without a vnet header is dropped');
});

for (const seed of [5, 17, 2024]) {
  test(`random schedule over the fake (seed ${seed}): every frame once, in order, both ways`, async () => {
    const rnd = prng(seed);
    const io = new FakeIo();
    const tap = fakeTap(io);
    const total = 400;
    for (let i = 0; i < total; i++) io.rx.push(fr(i));
    const got: number[] = [];
    let paused = false;
    tap.setReceiver((f) => {
      assert.equal(paused, false, 'no delivery while the NIC is full');
      if (rnd() < 0.2) {
        paused = true;
        return false;
      }
      got.push(seqOf(f));
      return true;
    });
    let next = 0;
    let blocked = false;
    tap.onWritable(() => (blocked = false));
    for (let step = 0; step < 5000 && (got.length < total || next < total); step++) {
      io.fire((rnd() < 0.7 ? EV_READABLE : 0) | (rnd() < 0.5 ? EV_WRITABLE : 0));
      if (paused && rnd() < 0.3) {
        paused = false;
        tap.resumeReceive();
      }
      while (!blocked && next < total && rnd() < 0.7) {
        if (rnd() < 0.2) io.writeResults.push(-EAGAIN);
        if (tap.send(fr(next), null)) next++;
        else blocked = true;
      }
      await turns(1);
    }
    assert.deepEqual(got, Array.from({ length: total }, (_, i) => i));
    assert.deepEqual(io.writes.map((w) => seqOf(Uint8Array.from(w.bytes))), Array.from({ length: total }, (_, i) => i));
  });
}

test('real addon on a FIFO: write until EAGAIN, writable callback once drained, bytes in order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stubdm-tapfifo-'));
  execFileSync('mkfifo', [join(dir, 'p')]);
  const rd = openSync(join(dir, 'p'), constants.O_RDONLY | constants.O_NONBLOCK);
  const wr = openSync(join(dir, 'p'), constants.O_WRONLY | constants.O_NONBLOCK);
  const tap = TapBackend.fromFd('fifo', wr, 0, quiet);
  try {
    let sent = 0;
    while (sent < 10_000 && tap.send(fr(sent & 0xffff, 1000), null)) sent++;
    assert.ok(sent > 0 && sent < 10_000, `the pipe filled up (${sent} frames)`);
    assert.equal(tap.stats.txRefused, 1);
    let woke = 0;
    const writable = new Promise<void>((r) => tap.onWritable(() => (woke++, r())));
    await turns(3);
    assert.equal(woke, 0, 'still full');
    const buf = Buffer.alloc(1000);
    let seq = 0;
    const drain = (frames: number): void => {
      for (let i = 0; i < frames; i++) {
        let off = 0;
        while (off < 1000) off += readSync(rd, buf, off, 1000 - off, null);
        assert.deepEqual(new Uint8Array(buf), fr(seq & 0xffff, 1000), `frame ${seq} intact and in order`);
        seq++;
      }
    };
    drain(sent);
    await writable;
    assert.equal(woke, 1);
    assert.equal(tap.send(fr(sent & 0xffff, 1000), null), true, 'accepted again');
    drain(1);
  } finally {
    await tap.close();
    closeSync(rd);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Why the real-tap test cannot run here ('' = it can). */
function realTapUnavailable(): string {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'needs root (CAP_NET_ADMIN for the tap, CAP_SYS_ADMIN for unshare --net)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing (modprobe tun)';
  const ip = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (ip.status !== 0) return 'no ip(8) (iproute2)';
  const u = spawnSync('unshare', ['--net', '--mount', 'true'], { encoding: 'utf8' });
  if (u.status !== 0) return `cannot make a network namespace: unshare --net --mount: ${(u.stderr || u.error?.message || '').trim()}`;
  return '';
}

const why = realTapUnavailable();
test('a real tap in a network namespace of its own (test/net/tap-netns.ts)', { skip: why || false, timeout: 120_000 }, () => {
  const inner = fileURLToPath(new URL('./tap-netns.ts', import.meta.url));
  // A mount namespace too, so that /sys shows this network namespace's interfaces.
  const r = spawnSync('unshare', ['--net', '--mount', 'sh', '-c', 'mount -t sysfs sysfs /sys && exec "$0" "$@"',
    process.execPath, '--import', 'tsx', '--test', '--test-reporter=tap', inner], {
    encoding: 'utf8',
    timeout: 110_000,
    // node:test marks its child processes; without this the inner run would skip itself.
    env: { ...process.env, NODE_TEST_CONTEXT: undefined },
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, out);
  const pass = Number(/# pass (\d+)/.exec(r.stdout)?.[1] ?? 0);
  assert.ok(pass >= 5, `the namespace's tests ran (pass ${pass}):\n${out}`);
  assert.match(r.stdout, /# skipped 0/);
  assert.match(r.stdout, /# fail 0/);
});
