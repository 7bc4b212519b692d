import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OneShot, RealClock, VirtualClock } from '../../src/core/clock.ts';

test('VirtualClock runs nothing until advanced, then in deadline order with now() at each deadline', () => {
  const c = new VirtualClock();
  const seen: string[] = [];
  c.timeout(10, () => seen.push(`b@${c.now()}`));
  c.timeout(5, () => seen.push(`a@${c.now()}`));
  c.timeout(10, () => seen.push(`c@${c.now()}`)); // same deadline as b: armed later, runs later
  assert.deepEqual(seen, []);
  assert.equal(c.advance(4), 0);
  assert.deepEqual(seen, []);
  assert.equal(c.advance(6), 3);
  assert.deepEqual(seen, ['a@5', 'b@10', 'c@10']);
  assert.equal(c.now(), 10);
  assert.equal(c.pending, 0);
});

test('VirtualClock intervals repeat, cancel stops them, a timer armed by a timer runs in the same advance', () => {
  const c = new VirtualClock();
  let ticks = 0;
  const iv = c.interval(3, () => ticks++);
  let chained = -1;
  c.timeout(2, () => c.timeout(0, () => (chained = c.now())));
  c.advance(10);
  assert.equal(ticks, 3); // 3, 6, 9
  assert.equal(chained, 2);
  iv.cancel();
  c.advance(100);
  assert.equal(ticks, 3);
  assert.throws(() => c.interval(0, () => {}), RangeError);
  assert.throws(() => c.advance(-1), RangeError);
});

test('OneShot records the time left and re-arms from it', () => {
  const c = new VirtualClock();
  let fired = 0;
  const t = new OneShot(c, () => fired++);
  assert.equal(t.remaining(), null);
  t.arm(10);
  c.advance(4);
  assert.equal(t.remaining(), 6);
  const saved = t.remaining();
  // A second device on another clock, restored from the saved time left.
  const c2 = new VirtualClock();
  let fired2 = 0;
  const t2 = new OneShot(c2, () => fired2++);
  t2.restore(saved);
  c.advance(5);
  c2.advance(5);
  assert.deepEqual([fired, fired2], [0, 0]);
  c.advance(1);
  c2.advance(1);
  assert.deepEqual([fired, fired2], [1, 1]);
  assert.equal(t.armed, false);
  t.armIfIdle(1);
  t.armIfIdle(50); // already armed: keeps the first deadline
  c.advance(1);
  assert.equal(fired, 2);
  t2.restore(null);
  assert.equal(t2.armed, false);
});

test('RealClock: 0 ms runs after the current event (setImmediate), timers can be cancelled', async () => {
  const c = new RealClock();
  const order: string[] = [];
  c.timeout(0, () => order.push('timer'));
  order.push('sync');
  const cancelled = c.timeout(1, () => order.push('cancelled'));
  cancelled.cancel();
  await new Promise((r) => setTimeout(r, 20));
  // On a loaded host the 20 ms timer can expire before the loop first reaches
  // its check phase (timers run first): one immediate queued after the clock's
  // runs after it, whatever the load.
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ['sync', 'timer']);
  assert.ok(c.now() > 0);
});
