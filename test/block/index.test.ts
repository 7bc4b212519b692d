import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stubdomCacheMode } from '../../src/block/index.ts';

test('in a stub domain cache=writeback becomes cache=none (its page cache dies with it); the other modes stay', () => {
  assert.equal(stubdomCacheMode('writeback'), 'none');
  for (const m of ['none', 'writethrough', 'directsync', 'unsafe'] as const) assert.equal(stubdomCacheMode(m), m);
});
