// MemoryPair: bounded inboxes, refusals on both sides, order, no loss and no
// duplication, under seeded random schedules; offloads; the checksum helper.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryPair, MAX_FRAME, MAX_WRITABLE_LISTENERS, finishChecksum, onesSum, type PacketBackend } from '../../src/net/index.ts';
import { prng } from '../helpers/prng.ts';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A frame carrying `seq` in bytes 14..17 and a pattern derived from it after. */
function frame(seq: number, len: number): Uint8Array {
  const f = new Uint8Array(len);
  f.fill(0xff, 0, 6);
  f[12] = 0x88;
  f[13] = 0xb5; // local experimental ethertype
  new DataView(f.buffer).setUint32(14, seq);
  for (let i = 18; i < len; i++) f[i] = (seq * 31 + i) & 0xff;
  return f;
}

function check(f: Uint8Array): number {
  const seq = new DataView(f.buffer, f.byteOffset).getUint32(14);
  for (let i = 18; i < f.length; i++) if (f[i] !== ((seq * 31 + i) & 0xff)) throw new Error(`frame ${seq} corrupt at byte ${i}`);
  return seq;
}

test('frames arrive in order, copied, and the inbox bound refuses the rest', async () => {
  const p = new MemoryPair({ capacity: 4 });
  const got: number[] = [];
  const src = frame(7, 60);
  assert.equal(p.a.send(src, null), true);
  src.fill(0); // the pair copied it
  for (let s = 8; s < 11; s++) assert.equal(p.a.send(frame(s, 60), null), true);
  assert.equal(p.a.send(frame(11, 60), null), false, 'fifth frame refused: inbox holds 4');
  assert.equal(p.b.queued, 4);
  assert.equal(p.a.stats.refused, 1);
  p.b.setReceiver((f) => {
    got.push(check(f));
    return true;
  });
  assert.deepEqual(got, [], 'delivery is never synchronous');
  await turns(2);
  assert.deepEqual(got, [7, 8, 9, 10]);
  assert.equal(p.b.stats.maxQueued, 4);
});

test('a refused frame is kept and offered again after resumeReceive, and the buffer is poisoned after the call', async () => {
  const p = new MemoryPair({ capacity: 8 });
  const seen: number[] = [];
  let kept: Uint8Array | null = null;
  let refuse = true;
  p.b.setReceiver((f) => {
    seen.push(check(f));
    kept = f;
    if (refuse && f.length === 61) return false;
    return true;
  });
  p.a.send(frame(1, 60), null);
  p.a.send(frame(2, 61), null);
  p.a.send(frame(3, 60), null);
  await turns(3);
  assert.deepEqual(seen, [1, 2], 'stops at the refusal');
  assert.equal(p.b.queued, 2);
  refuse = false;
  p.b.resumeReceive();
  await turns(3);
  assert.deepEqual(seen, [1, 2, 2, 3], 'the refused frame again, then the next');
  assert.ok(kept !== null && (kept as Uint8Array).every((b) => b === 0xdd), 'delivered bytes are overwritten after the receiver returns');
});

test('onWritable runs once when the peer takes a frame after a refusal', async () => {
  const p = new MemoryPair({ capacity: 1 });
  let writable = 0;
  p.a.onWritable(() => writable++);
  assert.equal(p.a.send(frame(1, 60), null), true);
  assert.equal(p.a.send(frame(2, 60), null), false);
  await turns(3);
  assert.equal(writable, 0, 'nobody took anything yet');
  p.b.setReceiver(() => true);
  await turns(3);
  assert.equal(writable, 1);
  assert.equal(p.a.send(frame(2, 60), null), true);
  await turns(3);
  assert.equal(writable, 1, 'no refusal since: no callback');
  for (let i = 1; i < MAX_WRITABLE_LISTENERS; i++) p.a.onWritable(() => {});
  assert.throws(() => p.a.onWritable(() => {}), RangeError);
});

test('frames of impossible length and segmentation without offloads are dropped, not refused', () => {
  const p = new MemoryPair();
  assert.equal(p.a.send(new Uint8Array(10), null), true);
  assert.equal(p.a.send(new Uint8Array(MAX_FRAME + 1), null), true);
  const gso = { csumStart: 34, csumOffset: 16, gsoSize: 1448, hdrLen: 54, gsoType: 'tcpv4' as const };
  assert.equal(p.a.send(frame(1, 3000), gso), true);
  assert.equal(p.a.stats.dropped, 3);
  assert.equal(p.b.queued, 0);
  assert.throws(() => new MemoryPair({ capacity: 0 }), RangeError);
  assert.throws(() => new MemoryPair({ capacity: 1e6 }), RangeError);
});

/** IPv4/UDP frame whose checksum field holds the pseudo-header sum, as a guest leaves it for offload. */
function udpPartial(payload: Uint8Array): { f: Uint8Array; full: number } {
  const len = 14 + 20 + 8 + payload.length;
  const f = new Uint8Array(len);
  f[12] = 0x08;
  f[23] = 17;
  f.set([10, 0, 0, 2, 10, 0, 0, 1], 26);
  const udpLen = 8 + payload.length;
  f[34] = 0x13; f[35] = 0x88; f[36] = 0x23; f[37] = 0x28;
  f[38] = udpLen >> 8; f[39] = udpLen & 0xff;
  f.set(payload, 42);
  // pseudo header: addresses, protocol, UDP length
  const pseudo = onesSum(f, 26, 34, 17 + udpLen);
  f[40] = pseudo >> 8;
  f[41] = pseudo & 0xff;
  // the full checksum, computed directly for comparison
  const g = f.slice();
  g[40] = 0; g[41] = 0;
  const full = ~onesSum(g, 34, len, onesSum(g, 26, 34, 17 + udpLen)) & 0xffff || 0xffff;
  return { f, full };
}

test('finishChecksum completes a partial UDP checksum the way the kernel does', () => {
  const rnd = prng(7);
  for (let n = 0; n < 50; n++) {
    const payload = Uint8Array.from({ length: 1 + Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256));
    const { f, full } = udpPartial(payload);
    assert.equal(finishChecksum(f, { csumStart: 34, csumOffset: 6, gsoSize: 0, hdrLen: 0, gsoType: 'none' }), true);
    assert.equal((f[40] << 8) | f[41], full);
    // and it verifies: the sum over pseudo header + datagram is 0xffff
    assert.equal(onesSum(f, 34, f.length, onesSum(f, 26, 34, 17 + f.length - 34)), 0xffff);
  }
  const { f } = udpPartial(new Uint8Array(4));
  assert.equal(finishChecksum(f, { csumStart: 34, csumOffset: f.length - 35, gsoSize: 0, hdrLen: 0, gsoType: 'none' }), false);
  assert.equal(finishChecksum(f, { csumStart: f.length, csumOffset: 6, gsoSize: 0, hdrLen: 0, gsoType: 'none' }), false);
});

test('MemoryPair completes offloaded checksums on the copy', async () => {
  const p = new MemoryPair({ offloads: true });
  const { f, full } = udpPartial(Uint8Array.of(1, 2, 3, 4, 5));
  const before = f.slice();
  let got: number | null = null;
  p.b.setReceiver((x) => {
    got = (x[40] << 8) | x[41];
    return true;
  });
  assert.equal(p.a.send(f, { csumStart: 34, csumOffset: 6, gsoSize: 0, hdrLen: 0, gsoType: 'none' }), true);
  assert.deepEqual(f, before, "the sender's frame is untouched");
  await turns(2);
  assert.equal(got, full);
});

/**
 * Both ends send and receive at once under a random schedule: each sender
 * retries its refused frame only after onWritable, each receiver refuses at
 * random and resumes at random later. Every frame must arrive exactly once,
 * in order, intact, and no inbox may exceed its bound.
 */
for (const seed of [1, 2, 3, 42, 1234, 99991]) {
  test(`random schedule, seed ${seed}: no loss, no duplicate, no reordering, bound kept`, async () => {
    const rnd = prng(seed);
    const capacity = 1 + Math.floor(rnd() * 8);
    const p = new MemoryPair({ capacity });
    const total = 300;
    type Side = { end: PacketBackend; next: number; waiting: boolean; got: number[]; paused: boolean };
    const mk = (end: PacketBackend): Side => ({ end, next: 0, waiting: false, got: [], paused: false });
    const A = mk(p.a);
    const B = mk(p.b);
    const pump = (s: Side): void => {
      while (s.next < total && !s.waiting && rnd() < 0.8) {
        if (s.end.send(frame(s.next, 14 + 4 + Math.floor(rnd() * 200)), null)) s.next++;
        else s.waiting = true;
      }
    };
    for (const [s, peer] of [[A, B], [B, A]] as const) {
      s.end.onWritable(() => {
        assert.ok(s.waiting, 'onWritable only after a refusal');
        s.waiting = false;
      });
      peer.end.setReceiver((f) => {
        if (peer.paused) throw new Error('delivered while paused');
        if (rnd() < 0.15) {
          peer.paused = true;
          return false;
        }
        peer.got.push(check(f));
        return true;
      });
    }
    for (let step = 0; step < 20000 && (A.got.length < total || B.got.length < total); step++) {
      pump(A);
      pump(B);
      for (const s of [A, B]) {
        if (s.paused && rnd() < 0.3) {
          s.paused = false;
          s.end.resumeReceive();
        }
      }
      assert.ok(p.a.queued <= capacity && p.b.queued <= capacity, 'inbox bound');
      await turns(1);
    }
    const want = Array.from({ length: total }, (_, i) => i);
    assert.deepEqual(B.got, want, 'a -> b');
    assert.deepEqual(A.got, want, 'b -> a');
    assert.ok(p.a.stats.refused + p.b.stats.refused > 0, 'the schedule did exercise refusals');
    assert.ok(p.a.stats.maxQueued <= capacity && p.b.stats.maxQueued <= capacity);
  });
}
