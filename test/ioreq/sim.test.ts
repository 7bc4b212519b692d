/** The simulated hypervisor records what the board asks of it (other helpers' device tests rely on this). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RANGE_MMIO, RANGE_PORT, SHUTDOWN_REBOOT } from '../../src/core/host.ts';
import { IOREQ_OFF_VP_EPORT, IOREQ_SIZE } from '../../src/ioreq/abi.ts';
import { createSimHost, simBoard, simRemotePort, waitFor, WaitTimeoutError } from '../../src/sim/index.ts';
import { MemDevice, setup } from './helpers.ts';

test('interrupt lines, link routes and MSIs reach the sim through the board', () => {
  const sim = createSimHost({ ramBytes: 4096 });
  const board = simBoard(sim);
  board.isaIrq(4).set(true);
  board.isaIrq(4).set(true); // level: no second edge
  assert.equal(sim.isaIrqLevel(4), 1);
  board.isaIrq(4).set(false);
  assert.equal(sim.isaIrqLevel(4), 0);
  assert.equal(sim.interrupts.isaRaises[4], 1);
  const inta = board.pciIntx(3, 0);
  inta.set(true);
  assert.equal(sim.pciIntxLevel(3, 0), 1);
  assert.equal(sim.pciIntxLevel(3, 1), 0);
  board.setPciLinkRoute(2, 11);
  assert.deepEqual(sim.linkRoutes, [0, 0, 11, 0]);
  board.injectMsi(0xfee00000, 0x4041);
  assert.deepEqual(sim.msis, [{ addr: 0xfee00000, data: 0x4041 }]);
  board.shutdown(SHUTDOWN_REBOOT);
  assert.equal(sim.shutdownRequests[0].reason, SHUTDOWN_REBOOT);
  sim.interrupts.setIsaIrqLevel(16, 1);
  assert.equal(sim.interrupts.errors.length, 1, 'bad calls are recorded, never thrown');
});

test('bus claims and PCI functions are forwarded as Xen routing calls', () => {
  const sim = createSimHost({ ramBytes: 4096 });
  const board = simBoard(sim);
  const r = board.pio.add('uart', 0x3f8, 8, new MemDevice(8));
  board.mmio.add('bar', 0xfebf0000, 0x1000, new MemDevice(16));
  board.claimPciFunction(1, 1);
  assert.ok(sim.claimsPort(0x3f8, 8));
  assert.ok(!sim.claimsPort(0x3f8, 9));
  assert.ok(sim.claimsMmio(0xfebf0ffc, 4));
  assert.deepEqual(sim.ioRanges, [
    { kind: RANGE_PORT, start: 0x3f8, end: 0x3ff },
    { kind: RANGE_MMIO, start: 0xfebf0000, end: 0xfebf0fff },
  ]);
  assert.ok(sim.pciFunctions.has((1 << 3) | 1));
  board.pio.remove(r);
  board.releasePciFunction(1, 1);
  assert.ok(!sim.claimsPort(0x3f8));
  assert.equal(sim.pciFunctions.size, 0);
  assert.deepEqual(sim.routing.errors, []);
});

test('the ioreq page carries vp_eport per vCPU like Xen; ports are distinct and masks start clear', () => {
  const sim = createSimHost({ ramBytes: 4096, vcpus: 4 });
  const u32 = new Uint32Array(sim.channel.ioreqPage);
  for (let i = 0; i < 4; i++) assert.equal(u32[(i * IOREQ_SIZE + IOREQ_OFF_VP_EPORT) / 4], simRemotePort(i));
  const ports = new Set([...sim.channel.vcpuPorts, sim.channel.bufPort]);
  assert.equal(ports.size, 5);
  assert.equal(sim.channel.pending(), -1);
  assert.throws(() => createSimHost({ ramBytes: 4096, vcpus: 129 }), RangeError);
});

test('guest RAM access is bounds-checked', () => {
  const sim = createSimHost({ ramBytes: 4096 });
  const buf = new Uint8Array(8);
  assert.equal(sim.memory.write(4092, buf, 0, 8), false);
  assert.equal(sim.memory.read(-1, buf, 0, 1), false);
  assert.equal(sim.memory.read(0.5, buf, 0, 1), false);
  assert.equal(sim.memory.read(0, buf, 4, 8), false, 'destination too small');
  assert.equal(sim.memory.faults, 4);
  sim.memwrite(4088, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...sim.memread(4088, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.throws(() => sim.memread(4090, 8), RangeError);
});

test('waitFor yields to the event loop until the condition holds, and gives up after maxTicks', async () => {
  let done = false;
  setImmediate(() => setImmediate(() => (done = true)));
  await waitFor(() => done, { maxTicks: 10 });
  assert.equal(done, true);
  await assert.rejects(waitFor(() => false, { maxTicks: 5 }), WaitTimeoutError);
});

test('TIMEOFFSET is dropped, not sent synchronously, when there is no ring (Xen broadcast semantics)', () => {
  const { sim, server } = setup({ buffered: false });
  assert.equal(sim.timeoffset(10), 'dropped');
  assert.equal(server.stats.timeoffset, 0);
});
