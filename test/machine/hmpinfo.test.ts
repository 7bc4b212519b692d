/** HMP sendkey's scan codes (src/machine/hmpinfo.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sendKeyBytes } from '../../src/machine/hmpinfo.ts';
import { HmpError } from '../../src/qmp/hmp.ts';

test('sendkey: set-1 make codes in order, break codes in reverse, 0xe0 before extended keys', () => {
  // ctrl down, alt down, E0 53 (Delete) down; then E0 D3, alt up (B8), ctrl up (9D).
  assert.deepEqual(sendKeyBytes(['ctrl', 'alt', 'delete']), [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d]);
  assert.deepEqual(sendKeyBytes(['a']), [0x1e, 0x9e]);
  assert.deepEqual(sendKeyBytes(['1', '0', 'f10', 'f12', 'ret']).slice(0, 5), [0x02, 0x0b, 0x44, 0x58, 0x1c]);
  assert.throws(() => sendKeyBytes(['ctrl', 'hyper']), (e: Error) => e instanceof HmpError && e.message === 'invalid parameter: hyper');
});
