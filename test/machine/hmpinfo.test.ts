/** HMP sendkey's scan codes (src/machine/hmpinfo.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hmpInfoNetwork, sendKeyBytes } from '../../src/machine/hmpinfo.ts';
import { HmpError } from '../../src/qmp/hmp.ts';

test('sendkey: set-1 make codes in order, break codes in reverse, 0xe0 before extended keys', () => {
  // ctrl down, alt down, E0 53 (Delete) down; then E0 D3, alt up (B8), ctrl up (9D).
  assert.deepEqual(sendKeyBytes(['ctrl', 'alt', 'delete']), [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d]);
  assert.deepEqual(sendKeyBytes(['a']), [0x1e, 0x9e]);
  assert.deepEqual(sendKeyBytes(['1', '0', 'f10', 'f12', 'ret']).slice(0, 5), [0x02, 0x0b, 0x44, 0x58, 0x1c]);
  assert.throws(() => sendKeyBytes(['ctrl', 'hyper']), (e: Error) => e instanceof HmpError && e.message === 'invalid parameter: hyper');
});

test('info network: each e1000 and the tap behind it, as libxl names them', async () => {
  const { parseArgs } = await import('../../src/cli/index.ts');
  const { config } = await parseArgs([
    '--sim', '-device', 'e1000,id=nic0,netdev=net0,mac=00:16:3e:00:00:01',
    '-netdev', 'type=tap,id=net0,ifname=vif1.0-emu,script=no,downscript=no',
  ]);
  assert.equal(
    hmpInfoNetwork(config),
    'nic0: index=0,type=nic,model=e1000,macaddr=00:16:3e:00:00:01\n \\ net0: index=0,type=tap,ifname=vif1.0-emu,script=no,downscript=no\n',
  );
});
