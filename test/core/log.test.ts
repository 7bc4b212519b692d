import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { GUEST_LOG_BUDGET_BYTES, guestLogBudgetLeft, RateLimited, resetGuestLogBudget, type Logger } from '../../src/core/log.ts';

function sink(level = 'warn'): { log: Logger; lines: string[]; bytes: () => number } {
  const lines: string[] = [];
  return {
    lines,
    log: pino({ level }, { write: (l: string) => void lines.push(l) }),
    bytes: () => lines.reduce((n, l) => n + l.length, 0),
  };
}

test('one source: a burst of lines per window, the rest counted as suppressed', () => {
  resetGuestLogBudget();
  const { log, lines } = sink();
  const rl = new RateLimited(log, 3, 1e9);
  for (let i = 0; i < 100; i++) rl.warn({ i }, 'bad guest value');
  assert.equal(lines.length, 3);
});

// issue #15: the per-source rate limit bounds a window, not a lifetime; every source together stops at the budget.
test('every guest-triggered line together stops at the byte budget, with one line saying so', () => {
  const budget = 64 * 1024;
  resetGuestLogBudget(budget);
  const { log, lines, bytes } = sink();
  // A fresh source per round stands in for the window passing: each one may log its burst again.
  for (let round = 0; round < 2000; round++) {
    const rl = new RateLimited(log, 10, 10_000);
    for (let i = 0; i < 10; i++) rl.warn({ port: 0x1f0 + i, value: round }, 'guest wrote a value the device refuses');
  }
  assert.ok(bytes() <= budget + 512, `${bytes()} bytes logged for a ${budget}-byte budget`);
  assert.ok(bytes() > budget / 2, 'the budget is used, not refused up front');
  assert.equal(lines.filter((l) => l.includes('log budget spent')).length, 1);
  assert.ok(guestLogBudgetLeft() <= 0);
  resetGuestLogBudget();
  assert.equal(guestLogBudgetLeft(), GUEST_LOG_BUDGET_BYTES);
});

test('a silent logger spends nothing of the budget', () => {
  resetGuestLogBudget(1000);
  const { log } = sink('silent');
  for (let i = 0; i < 100; i++) new RateLimited(log).warn({ i }, 'x'.repeat(100));
  assert.equal(guestLogBudgetLeft(), 1000);
  resetGuestLogBudget();
});
