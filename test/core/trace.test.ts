/**
 * The event-trace ring every device family's trace is (core/trace.ts): an
 * ioreq's wake-up and answer are written down only around an access of the
 * trace's own device, so two traces on one ioreq server each keep their
 * device's round trips; and the quantiles the reports print.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EV_IOREQ_DONE, EV_IOREQ_WAKE, EventTrace, median, parseTraceEnv, quantile, TRACE_MIN } from '../../src/core/trace.ts';
import { createSimHost, simBoard, simClock } from '../../src/sim/index.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';

test('an ioreq is written down only when it reached the trace\'s device: wake before the access, answer after', () => {
  const sim = createSimHost({ ramBytes: 1 << 20 });
  const board = simBoard(sim);
  const a = new EventTrace(TRACE_MIN, () => sim.clock.now());
  const b = new EventTrace(TRACE_MIN, () => sim.clock.now());
  board.pio.add('a', 0x100, 1, { read: () => (a.access(1, 0x100, 0), 0x11), write: (_o, _s, v) => void a.access(2, 0x100, v) });
  board.pio.add('b', 0x200, 1, { read: () => (b.access(1, 0x200, 0), 0x22), write: () => {} });
  const server = new IoreqServer(sim, board);
  server.addTrace(a);
  server.addTrace(b);
  server.start();
  const clock = simClock(sim);
  clock.advance(1);
  sim.outb(0x100, 0x5a);
  clock.advance(1);
  sim.inb(0x200);
  clock.advance(1);
  sim.outb(0x300, 0); // nobody's
  clock.advance(1);
  sim.inb(0x100);
  server.stop();
  const kinds = (t: EventTrace) => t.events().map((e) => [e.t, e.kind, e.sub, e.value]);
  assert.deepEqual(kinds(a), [
    [1, EV_IOREQ_WAKE, 0, 0],
    [1, 2, 0x100, 0x5a],
    [1, EV_IOREQ_DONE, 0, 0],
    [4, EV_IOREQ_WAKE, 0, 0],
    [4, 1, 0x100, 0],
    [4, EV_IOREQ_DONE, 0, 0],
  ]);
  assert.deepEqual(kinds(b), [
    [2, EV_IOREQ_WAKE, 0, 0],
    [2, 1, 0x200, 0],
    [2, EV_IOREQ_DONE, 0, 0],
  ]);
});

test('quantiles: the median averages the middle two; others take the nearest rank; the input is left alone', () => {
  const xs = [5, 1, 4, 2, 3, 10];
  assert.equal(median(xs), 3.5);
  assert.equal(median([7]), 7);
  assert.equal(median([]), null);
  assert.equal(quantile(xs, 0.9), 10);
  assert.equal(quantile(Array.from({ length: 100 }, (_, i) => i + 1), 0.9), 90);
  assert.deepEqual(xs, [5, 1, 4, 2, 3, 10]);
  assert.equal(parseTraceEnv('STUBDM_X_TRACE', '64'), 64);
  assert.match(String(parseTraceEnv('STUBDM_X_TRACE', '63')), /^STUBDM_X_TRACE="63" is not a number of trace entries from 64 to 1048576$/);
});
