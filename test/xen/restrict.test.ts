// -xen-domid-restrict on the Xen host, over the fake libraries: xenstore is
// closed before xentoolcore_restrict_all (libxenstore would turn its fd into
// /dev/null under our fd watch), a failure is one operator line, and the
// probe behind HMP `info restrict` tells a restricted handle (EPERM/EACCES
// from the kernel) from an unrestricted one (ESRCH from Xen).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openXenHost } from '../../src/xen/index.ts';
import { RestrictError } from '../../src/core/host.ts';
import { Fake, quiet } from './xen-fake.ts';

function open(fake: Fake) {
  return openXenHost({ domid: 5, ramBytes: 64 << 20, vcpus: 2, log: quiet, willRestrict: true }, { libs: fake.libs(), fdwatch: fake.fdwatch() });
}

test('restrict: xenstore closed first, then xentoolcore_restrict_all(guest); the probe flips from ESRCH to EPERM', () => {
  const fake = new Fake();
  const host = open(fake);
  assert.notEqual(host.store, null);
  const before = host.restriction.probe();
  assert.deepEqual(before, { restricted: false, domid: 5, guest: 'ok', otherDomid: 0x7fef, dmOp: 'ESRCH', map: 'ESRCH', evtchn: 'ESRCH' });

  host.restriction.restrict();
  const names = fake.names();
  const xsClose = names.indexOf('xs_close');
  const restrict = names.indexOf('xentoolcore_restrict_all');
  assert.ok(xsClose >= 0 && restrict > xsClose, `xs_close before restrict: ${names.join(' ')}`);
  assert.deepEqual(fake.calls[restrict], ['xentoolcore_restrict_all', 5]);
  assert.equal(host.store, null);
  assert.equal(host.restriction.restricted, true);

  const after = host.restriction.probe();
  assert.deepEqual(after, { restricted: true, domid: 5, guest: 'ok', otherDomid: 0x7fef, dmOp: 'EPERM', map: 'EPERM', evtchn: 'EACCES' });

  host.restriction.restrict(); // idempotent: no second call into the library
  assert.equal(fake.names().filter((n) => n === 'xentoolcore_restrict_all').length, 1);
  // Teardown still works on the restricted handles (they reach the guest), and xs is not closed twice.
  host.close();
  assert.equal(fake.names().filter((n) => n === 'xs_close').length, 1);
  assert.ok(fake.names().includes('destroy_ioreq_server'));
});

test('restrict failure: one line naming the call, the domain and the errno', () => {
  const fake = new Fake();
  fake.fail.add('xentoolcore_restrict_all');
  const host = open(fake);
  assert.throws(
    () => host.restriction.restrict(),
    (e: Error) =>
      e instanceof RestrictError &&
      e.message.startsWith('stubdm: -xen-domid-restrict: xentoolcore_restrict_all(5) failed (Inappropriate ioctl for device)') &&
      !e.message.includes('\n'),
  );
  assert.equal(host.restriction.restricted, false);
  host.close();
});

test('STUBDM_VRAM=guest is left out when a restriction will follow (libxenctrl would be opened unrestricted later)', () => {
  const saved = process.env.STUBDM_VRAM;
  process.env.STUBDM_VRAM = 'guest';
  try {
    const fake = new Fake();
    const host = open(fake);
    assert.equal(host.vram, undefined);
    host.close();
    const host2 = openXenHost({ domid: 5, ramBytes: 64 << 20, vcpus: 2, log: quiet }, { libs: new Fake().libs(), fdwatch: fake.fdwatch() });
    assert.notEqual(host2.vram, undefined, 'control: without the restriction the provider is there');
    host2.close();
  } finally {
    if (saved === undefined) delete process.env.STUBDM_VRAM;
    else process.env.STUBDM_VRAM = saved;
  }
});
