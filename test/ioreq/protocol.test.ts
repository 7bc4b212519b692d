import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SHUTDOWN_POWEROFF } from '../../src/core/host.ts';
import type { AccessSize } from '../../src/core/io.ts';
import {
  IOREQ_DIR,
  IOREQ_OFF_DATA,
  IOREQ_OFF_FLAGS,
  IOREQ_TYPE_PIO,
  STATE_IOREQ_INPROCESS,
  STATE_IOREQ_NONE,
  STATE_IORESP_READY,
} from '../../src/ioreq/abi.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';
import { createSimHost, DmProtocolError, simBoard } from '../../src/sim/index.ts';
import { captureLogger, FifoDevice, MemDevice, setup } from './helpers.ts';

test('a burst of pending ports on two vCPUs is drained in one callback', () => {
  const dev = new MemDevice(8);
  const { sim, server } = setup({ vcpus: 2 }, (b) => b.pio.add('dev', 0x510, 8, dev));
  dev.bytes[0] = 0x99;
  sim.post(0, IOREQ_TYPE_PIO, IOREQ_DIR, 0x510, 0, 0, 0, 1, 1);
  sim.post(1, IOREQ_TYPE_PIO, 0, 0x514, 0, 0x77, 0, 1, 1);
  const before = sim.channel.deliveries;
  sim.deliver();
  assert.equal(sim.channel.deliveries, before + 1);
  assert.equal(sim.complete(0) & 0xffn, 0x99n);
  sim.complete(1);
  assert.equal(dev.bytes[4], 0x77);
  assert.equal(server.stats.sync, 2);
  for (const p of sim.channel.vcpuPorts) assert.equal(sim.channel.isMasked(p), false, `port ${p} unmasked`);
  // the driver runs any vCPU
  assert.equal(sim.withVcpu(1, () => sim.inb(0x510)), 0x99);
});

test('a port raised while its slot is not READY is ignored (no state write, no notify)', () => {
  const { sim, server } = setup({ vcpus: 2 });
  const port = sim.channel.vcpuPorts[1];
  sim.raiseVcpu(1);
  sim.deliver();
  assert.equal(sim.slotState(1), STATE_IOREQ_NONE);
  assert.equal(sim.channel.notifyCount(port), 0);
  sim.setSlotState(1, STATE_IOREQ_INPROCESS);
  sim.raiseVcpu(1);
  sim.deliver();
  assert.equal(sim.slotState(1), STATE_IOREQ_INPROCESS);
  sim.setSlotState(1, STATE_IORESP_READY);
  sim.raiseVcpu(1);
  sim.deliver();
  assert.equal(sim.slotState(1), STATE_IORESP_READY);
  assert.equal(sim.channel.notifyCount(port), 0);
  assert.equal(server.stats.notReady, 3);
  assert.equal(sim.channel.isMasked(port), false);
  sim.setSlotState(1, STATE_IOREQ_NONE);
  assert.equal(sim.withVcpu(1, () => sim.inb(0x80)), 0xff, 'the vCPU still works');
});

test('a shutdown requested by a device reaches the hypervisor before the ioreq is answered', () => {
  const { sim } = setup({ vcpus: 2 }, (b) =>
    b.pio.add('pm1a_cnt', 0xb004, 2, {
      read: () => 0,
      write: (_o: number, _s: AccessSize, v: number) => {
        if (v & 0x2000) b.shutdown(SHUTDOWN_POWEROFF); // SLP_EN
      },
    }),
  );
  sim.withVcpu(1, () => sim.outw(0xb004, 0x2000 | (5 << 10)));
  assert.equal(sim.shutdownRequests.length, 1);
  assert.equal(sim.shutdownRequests[0].reason, SHUTDOWN_POWEROFF);
  assert.deepEqual(sim.shutdownRequests[0].slotStates, [STATE_IOREQ_NONE, STATE_IOREQ_INPROCESS]);
});

test('the byte-30 flags above the state nibble survive the round trip (df, dir, data_is_ptr)', () => {
  const fifo = new FifoDevice();
  const { sim } = setup({}, (b) => b.pio.add('d', 0x1f0, 2, fifo));
  // The driver throws DmProtocolError if the DM rewrote the upper bits.
  sim.insw(0x1f0, 0x100, 2, { df: true });
  sim.outsw(0x1f0, 0x100, 2, { df: true });
  assert.equal(fifo.written.length, 2);
});

test('start enables the server and stop disables it; stopped, a request is not answered', () => {
  const { sim, server } = setup();
  assert.equal(sim.enabled, true);
  server.stop();
  assert.equal(sim.enabled, false);
  assert.deepEqual(sim.channel.enabledHistory, [true, false]);
  assert.throws(() => sim.inb(0x80), DmProtocolError);
  sim.setSlotState(0, STATE_IOREQ_NONE);
  server.start();
  assert.equal(sim.inb(0x80), 0xff);
});

test('requests pending before start() are served by start()', () => {
  const sim = createSimHost({ ramBytes: 4096 });
  const server = new IoreqServer(sim, simBoard(sim), captureLogger().log);
  sim.post(0, IOREQ_TYPE_PIO, IOREQ_DIR, 0x80, 0, 0, 0, 1, 1);
  server.start();
  assert.equal(sim.complete(0) & 0xffn, 0xffn);
});

// The simulator's checks are what make every other test meaningful: prove they fire.
test('the sim driver catches a DM that breaks the state machine', () => {
  const sim = createSimHost({ ramBytes: 4096 });
  const ch = sim.channel;
  const u8 = new Uint8Array(ch.ioreqPage);
  const u32 = new Uint32Array(ch.ioreqPage);
  const answer = (opts: { notify: boolean; touchAfter?: boolean; clobberFlags?: boolean }) => () => {
    for (let p = ch.pending(); p !== -1; p = ch.pending()) {
      ch.unmask(p);
      u8[IOREQ_OFF_FLAGS] = opts.clobberFlags ? STATE_IORESP_READY : (u8[IOREQ_OFF_FLAGS] & 0xf0) | STATE_IORESP_READY;
      if (opts.notify) ch.notify(p);
      if (opts.touchAfter) u32[IOREQ_OFF_DATA / 4] = 1;
    }
  };
  ch.watch(() => {}); // never answers
  assert.throws(() => sim.inb(0x60), /expected IORESP_READY/);
  sim.setSlotState(0, STATE_IOREQ_NONE);
  ch.watch(answer({ notify: false }));
  assert.throws(() => sim.inb(0x60), /never notified/);
  sim.setSlotState(0, STATE_IOREQ_NONE);
  ch.watch(answer({ notify: true, touchAfter: true }));
  assert.throws(() => sim.inb(0x60), /modified after IORESP_READY/);
  sim.setSlotState(0, STATE_IOREQ_NONE);
  ch.watch(answer({ notify: true, clobberFlags: true }));
  assert.throws(() => sim.insb(0x60, 0, 1), /upper bits/);
  sim.setSlotState(0, STATE_IOREQ_NONE);
  ch.watch(answer({ notify: true }));
  assert.doesNotThrow(() => sim.outb(0x60, 1));
});
