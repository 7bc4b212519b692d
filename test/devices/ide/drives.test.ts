import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openIdeDrives } from '../../../src/devices/ide/drives.ts';
import { BlockOpenError } from '../../../src/block/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'stubdm-drives-'));

test('drive configs become controller slots: disk, read-only CD, empty CD', async () => {
  const hd = join(dir, 'hd.img');
  const cd = join(dir, 'cd.iso');
  writeFileSync(hd, new Uint8Array(1 << 20));
  writeFileSync(cd, new Uint8Array(2048 * 4));
  const slots = await openIdeDrives([
    { index: 0, file: hd, media: 'disk', format: 'raw', cache: 'writeback', readonly: false },
    { index: 2, file: cd, media: 'cdrom', format: 'raw', cache: 'writeback', readonly: false },
    { index: 3, file: null, media: 'cdrom', format: 'raw', cache: 'writeback', readonly: false },
  ]);
  assert.equal(slots[0]?.kind, 'disk');
  assert.equal(slots[0]?.backend?.size, 1 << 20);
  assert.equal(slots[0]?.backend?.readOnly, false);
  assert.equal(slots[1], null);
  assert.equal(slots[2]?.backend?.readOnly, true, 'CD media are read-only');
  assert.equal(slots[3]?.kind, 'cdrom');
  assert.equal(slots[3]?.backend, null);
  for (const s of slots) await s?.backend?.close();
});

test('bad drive configs: one clear BlockOpenError each', async () => {
  const hd = join(dir, 'hd2.img');
  writeFileSync(hd, new Uint8Array(4096));
  const base = { media: 'disk' as const, format: 'raw' as const, cache: 'writeback' as const, readonly: false };
  await assert.rejects(openIdeDrives([{ ...base, index: 4, file: hd }]), (e) => e instanceof BlockOpenError && /slots 0-3/.test(e.message));
  await assert.rejects(openIdeDrives([{ ...base, index: 0, file: hd }, { ...base, index: 0, file: hd }]), (e) => e instanceof BlockOpenError && /twice/.test(e.message));
  await assert.rejects(openIdeDrives([{ ...base, index: 1, file: null }]), (e) => e instanceof BlockOpenError && /needs file/.test(e.message));
  await assert.rejects(openIdeDrives([{ ...base, index: 1, file: join(dir, 'nope.img') }]), (e) => e instanceof BlockOpenError && /ENOENT/.test(e.message));
});
