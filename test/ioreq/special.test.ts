import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IOREQ_TYPE_TIMEOFFSET } from '../../src/ioreq/abi.ts';
import { setup } from './helpers.ts';

test('INVALIDATE flushes the mapcache and is answered like any sync request', () => {
  const { sim, server } = setup();
  sim.invalidate();
  sim.invalidate();
  assert.equal(sim.memory.invalidations, 2);
  assert.equal(server.stats.invalidate, 2);
  assert.equal(server.stats.sync, 2);
});

test('unknown ioreq types are answered (reads all ones) and logged once per type', () => {
  const { sim, server, lines } = setup();
  assert.equal(sim.request({ type: 3, dir: 'read', addr: 0x5658, size: 4 }), 0xffffffffffffffffn);
  assert.equal(sim.request({ type: 3, dir: 'read', addr: 0x5658, size: 4 }), 0xffffffffffffffffn);
  sim.request({ type: 0x7f, dir: 'write', addr: 0, size: 4, data: 1 });
  assert.equal(server.stats.unknown, 3);
  assert.equal(server.stats.sync, 3);
  assert.equal(lines.filter((l) => String(l.msg).startsWith('unknown ioreq type')).length, 2);
});

test('a synchronous TIMEOFFSET is remembered and answered', () => {
  const { sim, server } = setup();
  sim.request({ type: IOREQ_TYPE_TIMEOFFSET, dir: 'write', addr: 0, size: 8, data: -42n });
  assert.equal(server.timeOffset, -42);
});
