import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import {
  createLogger, formatTextLine, GUEST_LOG_BUDGET_BYTES, guestLogBudgetLeft, parseConsoleLimit, RateLimited, resetGuestLogBudget,
  setGuestLogBudget, type Logger,
} from '../../src/core/log.ts';

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

/** The device model's logger as main builds it, writing into an array. */
function textSink(level = 'info', format: 'text' | 'json' = 'text'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { lines, log: createLogger(level, format, { write: (l: string) => void lines.push(l) }) };
}

test('text format: ISO time, level name, component/device, message, then key=value fields, one line', () => {
  const { log, lines } = textSink();
  log.child({ c: 'pci' }).child({ dev: 'xen-platform' }).info({ mask: 3, file: '/images/a disk.img', ok: true, none: null }, 'guest unplugs emulated devices');
  log.info({ domid: 5 }, 'device model running');
  log.debug('not at info');
  assert.equal(lines.length, 2);
  assert.match(
    lines[0],
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  pci\/xen-platform: guest unplugs emulated devices mask=3 file="\/images\/a disk.img" ok=true none=null\n$/,
  );
  assert.match(lines[1], /Z INFO  stubdm: device model running domid=5\n$/);
});

test('text format: a guest-chosen string cannot start a line of its own', () => {
  const { log, lines } = textSink();
  log.warn({ guest: 'x\nSTUBDOM FAIL forged', empty: '' }, 'guest wrote\nFATAL forged');
  assert.equal(lines.length, 1);
  assert.equal(lines[0].split('\n').length, 2, 'exactly one line end, at the end');
  assert.match(lines[0], / WARN  stubdm: guest wrote\\nFATAL forged guest="x\\nSTUBDOM FAIL forged" empty=""\n$/);
});

test('text format: an error shows its message, and its stack as one quoted field', () => {
  const { log, lines } = textSink();
  log.error({ err: new Error('boom') }, 'uncaught exception (device model keeps running)');
  assert.equal(lines.length, 1);
  assert.match(lines[0], /ERROR stubdm: uncaught exception \(device model keeps running\) err=boom stack="Error: boom\\n +at /);
  assert.doesNotMatch(lines[0].slice(0, -1), /\n/);
  // a line that is not pino JSON is passed on, never dropped
  assert.equal(formatTextLine('not json'), 'not json\n');
});

test('json format: pino\'s own lines (level number, epoch ms), for tools', () => {
  const { log, lines } = textSink('info', 'json');
  log.child({ c: 'qmp' }).warn({ command: 'eject' }, 'QMP command failed: Device is locked');
  const o = JSON.parse(lines[0]) as Record<string, unknown>;
  assert.equal(o.level, 40);
  assert.equal(typeof o.time, 'number');
  assert.equal(o.c, 'qmp');
  assert.equal(o.msg, 'QMP command failed: Device is locked');
});

test('RateLimited.info: lifecycle lines the guest can repeat are limited like warnings', () => {
  resetGuestLogBudget();
  const { log, lines } = textSink();
  const rl = new RateLimited(log, 2, 1e9);
  for (let i = 0; i < 50; i++) rl.info({}, 'guest reset through 0xcf9');
  assert.equal(lines.length, 2);
  assert.match(lines[0], / INFO  stubdm: guest reset through 0xcf9\n$/);
  const quiet = textSink('warn');
  new RateLimited(quiet.log).info({}, 'below the level');
  assert.equal(quiet.lines.length, 0);
});

test('XEN_QEMU_CONSOLE_LIMIT: libxl\'s 1 MiB becomes the guest-triggered budget; bad values are one line', () => {
  assert.equal(parseConsoleLimit(undefined), null);
  assert.equal(parseConsoleLimit('1048576'), 1048576);
  assert.equal(parseConsoleLimit('0'), 0);
  for (const bad of ['', '1M', '-1', '0x10', ' 5', '99999999999999999999']) {
    assert.match(String(parseConsoleLimit(bad)), /^XEN_QEMU_CONSOLE_LIMIT=.* is not a byte count/, bad);
  }
  // What was spent before the limit is set counts against it.
  resetGuestLogBudget();
  const { log, lines, bytes } = sink();
  const rl = new RateLimited(log, 1_000_000, 1e9);
  rl.warn({}, 'early');
  const spent = GUEST_LOG_BUDGET_BYTES - guestLogBudgetLeft();
  assert.ok(spent > 0);
  setGuestLogBudget(4096);
  assert.equal(guestLogBudgetLeft(), 4096 - spent);
  for (let i = 0; i < 10_000; i++) rl.warn({ i }, 'guest wrote a value the device refuses');
  assert.ok(bytes() <= 4096 + 512, `${bytes()} bytes for a 4096-byte limit`);
  assert.match(lines.at(-1)!, /"budget":4096.*log budget spent/);
  resetGuestLogBudget();
});
