/**
 * What a ping and a TCP stream cost the guest, through the model of Linux's
 * e1000 driver (guestmodel.ts) on the simulated clock with Node's 1 ms timer
 * floor: exits (register accesses, each an ioreq round trip: milliseconds
 * under TCG), interrupts, and NIC timers that run (each a DM wake-up on the
 * real clock, i.e. a switch to dom0 or the stub domain and back).
 *
 * The fixed point a ping can reach: its TDT write, then one interrupt (ICR,
 * IMC, STATUS, RDT, IMS, STATUS) = 7 exits. Before the TXDW of the request
 * rode along with the reply's RXT0 and ITR stopped arming a timer per
 * assertion, a ping whose exits were under 1 ms took 12 exits, 2 interrupts
 * and 3 wake-ups, and 7 exits with 2 wake-ups otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pingScenario, tcpRxScenario, tcpTxScenario } from './guestmodel.ts';

const EXIT_MS = [0.1, 0.25, 0.5, 1, 2];

test('a ping costs its TDT write and one interrupt, and wakes the DM for no timer, whatever an exit costs', () => {
  for (const exitMs of EXIT_MS) {
    for (const replyMs of [0.02, 0.3]) {
      const f = pingScenario({ exitMs, replyMs, count: 10 });
      const at = `exit ${exitMs} ms, reply after ${replyMs} ms`;
      assert.equal(f.exits, 7, `${at}: exits per ping`);
      assert.equal(f.irqs, 1, `${at}: interrupts per ping`);
      assert.equal(f.wakes, 0, `${at}: NIC timer wake-ups per ping`);
      assert.ok(f.ms <= 7 * exitMs + replyMs + 0.1, `${at}: round trip ${f.ms} ms`);
    }
  }
});

test("Node's 1 ms timer floor costs a ping nothing: the same exits and interrupts as on an exact clock", () => {
  // With TIDV's real 8.192 us the request's TXDW is due before the reply and shares its
  // interrupt; with the floor it used to come 1 ms later as an interrupt of its own.
  for (const exitMs of EXIT_MS) {
    const exact = pingScenario({ exitMs, replyMs: 0.02, count: 5, nodeTimers: false });
    const floored = pingScenario({ exitMs, replyMs: 0.02, count: 5, nodeTimers: true });
    assert.deepEqual([floored.exits, floored.irqs], [exact.exits, exact.irqs], `exit ${exitMs} ms`);
  }
});

test('TCP streams: a sent frame costs no timer wake-up while ACKs come back, and the stream completes both ways', () => {
  for (const exitMs of [0.1, 0.25]) {
    const tx = tcpTxScenario({ exitMs, replyMs: 0.05, frames: 300, window: 64, tsq: 2 });
    assert.equal(tx.wakes, 0, `exit ${exitMs} ms: guest -> dom0 wake-ups per frame`);
    assert.ok(tx.irqs <= 0.5, `exit ${exitMs} ms: guest -> dom0 interrupts per frame ${tx.irqs}`);
    const rx = tcpRxScenario({ exitMs, replyMs: 0.05, frames: 300, window: 64 });
    assert.equal(rx.wakes, 0, `exit ${exitMs} ms: dom0 -> guest wake-ups per frame`);
    assert.ok(rx.exits < 0.5, `exit ${exitMs} ms: dom0 -> guest exits per frame ${rx.exits}`);
  }
});
