import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AccessSize, IoHandler } from '../../src/core/io.ts';
import { IOREQ_BUFFER_SLOT_NUM, IOREQ_TYPE_PIO } from '../../src/ioreq/abi.ts';
import { MemDevice, setup } from './helpers.ts';

const VGA = 0xa0000;

test('a buffered write reaches the device and the ring and port are left clean', () => {
  const vga = new MemDevice(0x20000);
  const { sim, server } = setup({}, (b) => b.mmio.add('vga', VGA, 0x20000, vga));
  assert.equal(sim.bufferedWrite(VGA + 0x10, 1, 0x42), 'buffered');
  assert.equal(sim.bufferedWrite(VGA + 0x12, 2, 0xbeef), 'buffered');
  assert.equal(sim.bufferedWrite(0x3c0, 1, 0x7, { type: IOREQ_TYPE_PIO }), 'buffered');
  assert.deepEqual(vga.log, ['w16/1=42', 'w18/2=beef']);
  assert.deepEqual(sim.bufferedPointers(), { read: 3, write: 3 });
  assert.equal(server.stats.buffered, 3);
  assert.equal(sim.channel.isMasked(sim.channel.bufPort), false);
  assert.equal(server.stats.sync, 0, 'nothing was answered synchronously');
});

test('an 8-byte buffered write takes two slots and reaches the device as two dwords', () => {
  const vga = new MemDevice(0x20000);
  const { sim } = setup({}, (b) => b.mmio.add('vga', VGA, 0x20000, vga));
  sim.bufferedWrite(VGA + 8, 8, 0x1122334455667788n);
  assert.deepEqual(vga.log, ['w8/4=55667788', 'w12/4=11223344']);
  assert.deepEqual(sim.bufferedPointers(), { read: 2, write: 2 });
});

test('the ring wraps around 511 slots (pointers canonicalised) and a full ring falls back to sync, buffered first', () => {
  const vga = new MemDevice(0x20000);
  const { sim, server } = setup({}, (b) => b.mmio.add('vga', VGA, 0x20000, vga));
  // Move the pointers to 300 so the next batch straddles the physical end of the ring.
  for (let i = 0; i < 300; i++) sim.bufferedWrite(VGA, 1, i & 0xff);
  vga.log.length = 0;
  // Queue without running the DM: 255 quad words (510 slots) fill the ring up to one slot...
  for (let i = 0; i < 255; i++) assert.equal(sim.bufferedWrite(VGA + 8 * (i % 16), 8, BigInt(i) << 32n | BigInt(i), { deliver: false }), 'buffered');
  // ... so another quad word no longer fits: Xen sends it synchronously; the DM must drain the ring first.
  assert.equal(sim.bufferedWrite(VGA + 0x100, 8, 0xffn, { deliver: false }), 'sync');
  assert.equal(vga.log.length, 255 * 2 + 2);
  for (let i = 0; i < 255; i++) assert.equal(vga.log[2 * i], `w${8 * (i % 16)}/4=${i.toString(16)}`);
  assert.deepEqual(vga.log.slice(-2), ['w256/4=ff', 'w260/4=0']);
  const p = sim.bufferedPointers();
  assert.equal(p.read, p.write);
  assert.ok(p.read < 2 * IOREQ_BUFFER_SLOT_NUM, `pointers canonicalised (${p.read})`);
  assert.equal(server.stats.buffered, 300 + 255);
  assert.equal(server.stats.bufErrors, 0);
});

test('buffered writes queued before a sync request are applied before it, even if the vCPU event comes first', () => {
  const vga = new MemDevice(0x20000);
  const { sim } = setup({ vcpus: 2 }, (b) => b.mmio.add('vga', VGA, 0x20000, vga));
  // vCPU 0 reads VGA memory synchronously while vCPU 1's buffered writes are still in the ring.
  sim.post(0, 1 /* COPY */, 0x20 /* read */, VGA + 4, 0, 0, 0, 1, 4);
  sim.bufferedWrite(VGA + 4, 4, 0xabcd1234, { deliver: false });
  sim.deliver();
  assert.equal(sim.complete(0), 0xabcd1234n);
  assert.deepEqual(vga.log, ['w4/4=abcd1234', 'r4/4=abcd1234']);
});

test('a drain pass is bounded; entries Xen adds during the drain are finished in later ticks', async () => {
  const { sim, server, board } = setup();
  let extra = 700;
  let seen = 0;
  // A device whose every write makes "another vCPU" queue one more buffered write while we drain.
  const chatty: IoHandler = {
    read: () => 0,
    write: (_o: number, _s: AccessSize, v: number) => {
      assert.equal(v, seen & 0xff, 'order kept');
      seen++;
      if (extra-- > 0) sim.bufferedWrite(VGA, 1, seen & 0xff, { deliver: false });
    },
  };
  board.mmio.add('chatty', VGA, 0x10, chatty);
  sim.bufferedWrite(VGA, 1, 0);
  assert.equal(seen, IOREQ_BUFFER_SLOT_NUM, 'the first pass stops after one ring');
  assert.equal(sim.channel.isMasked(sim.channel.bufPort), true, 'port held while the backlog lasts');
  await sim.waitFor(() => seen === 701 && !sim.channel.isMasked(sim.channel.bufPort));
  assert.ok(server.stats.bufDeferred >= 1);
  assert.equal(sim.bufferedPointers().read, sim.bufferedPointers().write);
  // A sync access still works afterwards and nothing is left pending.
  assert.equal(sim.inb(0x80), 0xff);
  assert.equal(sim.channel.queued, 0);
});

test('TIMEOFFSET is consumed from the ring (8 bytes, signed) and remembered', () => {
  const { sim, server } = setup();
  const got: number[] = [];
  server.onTimeOffset = (s) => got.push(s);
  assert.equal(sim.timeoffset(-3600), 'buffered');
  assert.equal(server.timeOffset, -3600);
  sim.timeoffset(2 ** 40 + 5);
  assert.equal(server.timeOffset, 2 ** 40 + 5);
  assert.deepEqual(got, [-3600, 2 ** 40 + 5]);
  assert.equal(server.stats.timeoffset, 2);
});

test('without a buffered ring, buffered-eligible writes arrive synchronously', () => {
  const vga = new MemDevice(0x20000);
  const { sim, server } = setup({ buffered: false }, (b) => b.mmio.add('vga', VGA, 0x20000, vga));
  assert.equal(sim.bufferedWrite(VGA, 2, 0x1234), 'sync');
  assert.deepEqual(vga.log, ['w0/2=1234']);
  assert.equal(server.stats.sync, 1);
});

test('malformed rings (half a quad word, impossible pointers) are logged and skipped, never hang', () => {
  const vga = new MemDevice(0x20000);
  const { sim, server, lines } = setup({}, (b) => b.mmio.add('vga', VGA, 0x20000, vga));
  const u32 = new Uint32Array(sim.channel.bufPage!);
  // An 8-byte entry (size code 3) published with write_pointer advanced by one slot only.
  u32[2] = 1 | (3 << 10) | (VGA << 12); // IOREQ_TYPE_COPY
  u32[3] = 0x1234;
  u32[1] = 1;
  sim.channel.raise(sim.channel.bufPort);
  sim.deliver();
  assert.equal(server.stats.bufErrors, 1);
  assert.deepEqual(vga.log, []);
  assert.deepEqual(sim.bufferedPointers(), { read: 1, write: 1 });
  // write_pointer more than a ring ahead of read_pointer: the backlog is dropped.
  u32[1] = 1 + 5000;
  sim.channel.raise(sim.channel.bufPort);
  sim.deliver();
  assert.equal(server.stats.bufErrors, 2);
  assert.deepEqual(sim.bufferedPointers(), { read: 5001, write: 5001 });
  sim.canonicalise();
  // The ring still works afterwards.
  assert.equal(sim.bufferedWrite(VGA, 1, 0x5a), 'buffered');
  assert.deepEqual(vga.log, ['w0/1=5a']);
  assert.equal(lines.filter((l) => l.level === 50).length, 2);
});
