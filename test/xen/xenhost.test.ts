// openXenHost over a fake below the FFI line: registration order (QEMU's,
// with the server enabled before the vCPU ports are read), the calls each
// Host method makes, failure clean-up, close(). Plus the real thing on this
// Xen-less machine: a one-line XenUnavailableError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { openXenHost, XenUnavailableError } from '../../src/xen/index.ts';
import { EVTCHN_WAIT_US_DEFAULT } from '../../src/xen/host.ts';
import { EVTCHN_A_IN_PLACE, EVTCHN_A_WAIT_US, EVTCHN_A_WAITS } from '../../src/xen/native.ts';
import { IOREQ_OFF_VP_EPORT, IOREQ_SIZE } from '../../src/ioreq/abi.ts';
import { DMH, Fake, open, quiet } from './xen-fake.ts';

test('registration follows QEMU: create, map_resource, info, enable, then bind vp_eports', () => {
  const fake = new Fake();
  const host = open(fake);
  assert.deepEqual(fake.names(), [
    'xendevicemodel_open',
    'xenforeignmemory_open',
    'xenevtchn_open',
    'create_ioreq_server',
    'map_resource',
    'get_ioreq_server_info',
    'nr_vcpus',
    'set_ioreq_server_state',
    'bind_interdomain',
    'bind_interdomain',
    'bind_interdomain',
    'xenevtchn_fd',
    'nonblock',
    'loop_idle_time',
    'xs_open',
  ]);
  assert.deepEqual(fake.calls[13], ['loop_idle_time', false], "libuv's idle-time accounting off: one epoll per idle loop, not two");
  assert.deepEqual(fake.calls[3], ['create_ioreq_server', DMH, 5, 2]); // HVM_IOREQSRV_BUFIOREQ_ATOMIC
  // XENMEM_resource_ioreq_server, id 3, frame 0 (bufioreq), 2 frames, PROT_READ|PROT_WRITE, flags 0
  assert.deepEqual(fake.calls[4], ['map_resource', 5, 0, 3, 0, 2, 3, 0]);
  assert.deepEqual(fake.calls[5], ['get_ioreq_server_info', 5, 3, null, null]);
  assert.deepEqual(fake.calls[7], ['set_ioreq_server_state', 5, 3, 1]);
  assert.deepEqual(fake.calls.slice(8, 11), [
    ['bind_interdomain', 5, 100],
    ['bind_interdomain', 5, 101],
    ['bind_interdomain', 5, 77],
  ]);
  const ch = host.channel;
  assert.equal(ch.vcpus, 2);
  assert.deepEqual(ch.vcpuPorts, [1100, 1101]);
  assert.equal(ch.bufPort, 1077);
  assert.equal(ch.bufPage, fake.bufPage, 'frame 0 is the buffered page');
  assert.equal(ch.ioreqPage, fake.ioreqPage, 'frame 1 is the ioreq page');
  assert.equal(host.domid, 5);
  assert.equal(host.ioservid, 3);
  host.close();
});

test('more vCPUs than Xen published ports for is refused with one line', () => {
  const fake = new Fake();
  // The fake publishes 128 ports; blank vCPU 1's to stand for a 1-vCPU guest.
  const libs = fake.libs();
  const setState = libs.dm.set_ioreq_server_state;
  libs.dm.set_ioreq_server_state = (...a) => {
    const rc = setState(...a);
    new Uint32Array(fake.ioreqPage)[(1 * IOREQ_SIZE + IOREQ_OFF_VP_EPORT) / 4] = 0;
    return rc;
  };
  assert.throws(
    () => openXenHost({ domid: 5, ramBytes: 64 << 20, vcpus: 2, log: quiet }, { libs, fdwatch: fake.fdwatch() }),
    /^XenUnavailableError: stubdm: Xen published no event channel for vCPU 1 of domain 5/,
  );
  assert.ok(fake.names().includes('destroy_ioreq_server'));
  assert.ok(fake.names().includes('unbind'), 'vCPU 0 port unbound again');
});

test('loopIdleTime keeps libuv\'s idle-time accounting (the disk trace reads it)', () => {
  const fake = new Fake();
  const host = openXenHost({ domid: 5, ramBytes: 64 << 20, log: quiet, loopIdleTime: true }, { libs: fake.libs(), fdwatch: fake.fdwatch() });
  assert.ok(!fake.names().includes('loop_idle_time'));
  host.close();
});

test('the addon is asked to wait in place after answers: 1 ms by default, STUBDM_EVTCHN_WAIT_US or the option otherwise; waitStats reads its counters', () => {
  const saved = process.env.STUBDM_EVTCHN_WAIT_US;
  try {
    delete process.env.STUBDM_EVTCHN_WAIT_US;
    for (const [env, opt, want] of [
      [undefined, undefined, EVTCHN_WAIT_US_DEFAULT],
      ['0', undefined, 0],
      ['250', undefined, 250],
      ['250', 40, 40],
    ] as const) {
      if (env === undefined) delete process.env.STUBDM_EVTCHN_WAIT_US;
      else process.env.STUBDM_EVTCHN_WAIT_US = env;
      const fake = new Fake();
      const host = openXenHost(
        { domid: 5, ramBytes: 64 << 20, log: quiet, ...(opt !== undefined ? { evtchnWaitUs: opt } : {}) },
        { libs: fake.libs(), fdwatch: fake.fdwatch() },
      );
      host.channel.watch(() => {});
      assert.equal(fake.answers?.[EVTCHN_A_WAIT_US], want, `env ${env} option ${opt}`);
      fake.answers![EVTCHN_A_WAITS] = 9;
      fake.answers![EVTCHN_A_IN_PLACE] = 7;
      assert.deepEqual(host.channel.waitStats?.(), { waits: 9, inPlace: 7 });
      host.close();
    }
    for (const bad of ['-1', '1.5', 'x', '20001']) {
      process.env.STUBDM_EVTCHN_WAIT_US = bad;
      const fake = new Fake();
      assert.throws(
        () => openXenHost({ domid: 5, ramBytes: 64 << 20, log: quiet }, { libs: fake.libs(), fdwatch: fake.fdwatch() }),
        (e: unknown) => e instanceof XenUnavailableError && /^stubdm: bad STUBDM_EVTCHN_WAIT_US .*: give 0-20000 microseconds/.test(e.message),
      );
      assert.deepEqual(fake.calls, [], 'refused before anything is opened');
    }
  } finally {
    if (saved === undefined) delete process.env.STUBDM_EVTCHN_WAIT_US;
    else process.env.STUBDM_EVTCHN_WAIT_US = saved;
  }
});

test('an explicit vCPU count skips nr_vcpus', () => {
  const fake = new Fake();
  const host = open(fake, { vcpus: 4 });
  assert.ok(!fake.names().includes('nr_vcpus'));
  assert.deepEqual(host.channel.vcpuPorts, [1100, 1101, 1102, 1103]);
  host.close();
});

test('pending() outside a callback: one read takes every pending port and unmasks all but the buffered one', () => {
  const fake = new Fake();
  const host = open(fake);
  const buf = host.channel.bufPort;
  fake.calls = [];
  assert.equal(host.channel.pending(), -1);
  assert.deepEqual(fake.calls, [['read']], 'one non-blocking read finds nothing: no poll before it');
  fake.calls = [];
  fake.pendingPorts.push(1101, buf, 1100);
  assert.equal(host.channel.pending(), 1101);
  assert.equal(host.channel.pending(), buf);
  assert.equal(host.channel.pending(), 1100);
  assert.equal(host.channel.pending(), -1);
  assert.deepEqual(fake.calls, [['read'], ['unmask', 1101, 1100], ['read']], 'the buffered port stays masked');
  fake.calls = [];
  host.channel.unmask(1101); // unmasked when read: free
  host.channel.unmask(buf);
  host.channel.notify(1101);
  assert.deepEqual(fake.calls, [
    ['unmask', buf],
    ['notify', 1101],
  ]);
  // A failing device or notify is logged (rate-limited), never thrown.
  fake.failRead = 5;
  fake.pendingPorts.push(1100);
  assert.equal(host.channel.pending(), -1);
  fake.failNotify = -22;
  assert.doesNotThrow(() => host.channel.notify(1100));
  host.close();
});

test('in the watch callback: the wake-up has read every pending port, no read looks for more; a throwing handler is contained', () => {
  const fake = new Fake();
  const host = open(fake);
  const got: number[] = [];
  let wakeups = 0;
  host.channel.watch(() => {
    wakeups++;
    for (let p = host.channel.pending(); p !== -1; p = host.channel.pending()) got.push(p);
  });
  fake.pendingPorts.push(1100, 1101);
  fake.calls = [];
  fake.watchers[0].cb(0);
  assert.deepEqual(got, [1100, 1101], 'one wake-up drains every pending port');
  assert.deepEqual(fake.calls, [['read'], ['unmask', 1100, 1101]], 'unmasked before JS ran; no second read');
  // A spurious wake-up (nothing to read) does not run the callback.
  fake.watchers[0].cb(0);
  assert.equal(wakeups, 1);
  // Ports left in the queue (the engine stopped early) come first next time.
  host.channel.watch(() => {
    got.push(host.channel.pending());
  });
  fake.pendingPorts.push(1100, 1101);
  fake.watchers[1].cb(0);
  assert.deepEqual(got.slice(2), [1100]);
  fake.calls = [];
  assert.equal(host.channel.pending(), 1101, 'the leftover, without a read');
  assert.deepEqual(fake.calls, []);
  host.channel.watch(() => {
    throw new Error('engine bug');
  });
  fake.pendingPorts.push(1100);
  assert.doesNotThrow(() => fake.watchers[2].cb(0));
  host.close();
});

test('notify() in the watch callback is queued for the addon, which notifies once the callback returns; outside it, or once the watch is paused, it is a call of its own', () => {
  const fake = new Fake();
  const lines: { msg: string; port?: number; errno?: number; failed?: number }[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const host = openXenHost({ domid: 5, ramBytes: 64 << 20, log }, { libs: fake.libs(), fdwatch: fake.fdwatch() });
  const order: string[] = [];
  let pauseInside = false;
  host.channel.watch(() => {
    for (let p = host.channel.pending(); p !== -1; p = host.channel.pending()) {
      host.channel.notify(p);
      order.push(`answered ${p} (${fake.names().filter((n) => n === 'notify').length} notifies so far)`);
    }
    if (pauseInside) {
      host.channel.setEnabled(false); // the queued answers are notified by the pause...
      host.channel.notify(1101); // ...and one after it is a call of its own
    }
  });
  fake.pendingPorts.push(1100, 1101);
  fake.calls = [];
  fake.watchers[0].cb(0);
  assert.deepEqual(order, ['answered 1100 (0 notifies so far)', 'answered 1101 (0 notifies so far)']);
  assert.deepEqual(fake.calls.slice(-2), [['notify', 1100], ['notify', 1101]], 'in order, after the callback');
  // A failed notify of a queued answer is logged at once (the addon calls back with EVTCHN_NOTIFY_FAILED).
  fake.failNotify = -22;
  fake.pendingPorts.push(1101);
  fake.watchers[0].cb(0);
  assert.deepEqual(lines.map((l) => [l.msg, l.port, l.errno, l.failed]), [['event channel notify failed', 1101, 22, 1]]);
  fake.failNotify = 0;
  // Paused inside the callback: what was queued is notified by the pause, the rest directly.
  pauseInside = true;
  fake.pendingPorts.push(1100);
  fake.calls = [];
  fake.watchers[0].cb(0);
  assert.deepEqual(fake.calls.filter((c) => c[0] === 'notify'), [['notify', 1100], ['notify', 1101]]);
  assert.equal(fake.watchers[0].stopped, true);
  // Outside a callback: at once.
  fake.calls = [];
  host.channel.notify(1100);
  assert.deepEqual(fake.calls, [['notify', 1100]]);
  host.close();
});

test('the fd watch follows setEnabled: paused while disabled, resumed with the same callback', () => {
  const fake = new Fake();
  const host = open(fake);
  let events = 0;
  host.channel.watch(() => events++);
  host.channel.setEnabled(true); // already enabled by open: no second watch
  assert.equal(fake.watchers.length, 1);
  fake.calls = [];
  host.channel.setEnabled(false);
  assert.deepEqual(fake.calls, [['set_ioreq_server_state', 5, 3, 0]]);
  assert.equal(fake.watchers[0].stopped, true, 'no wake-ups while disabled');
  host.channel.setEnabled(true);
  assert.equal(fake.watchers.length, 2);
  assert.equal(fake.watchers[1].stopped, false);
  fake.pendingPorts.push(1100);
  fake.watchers[1].cb(0);
  assert.equal(events, 1, 'same callback');
  // A broken fd ends the watch for good: enabling again does not resurrect it.
  fake.watchers[1].cb(-5);
  host.channel.setEnabled(false);
  host.channel.setEnabled(true);
  assert.equal(fake.watchers.length, 2);
  host.close();
});

test('watch() watches the evtchn fd; a second watch replaces the first; close stops it', () => {
  const fake = new Fake();
  const host = open(fake);
  let events = 0;
  host.channel.watch(() => events++);
  assert.equal(fake.watchers.length, 1);
  assert.equal(fake.watchers[0].fd, 42);
  fake.pendingPorts.push(1100);
  fake.watchers[0].cb(0);
  assert.equal(events, 1);
  host.channel.watch(() => (events += 10));
  assert.equal(fake.watchers[0].stopped, true);
  fake.pendingPorts.push(1100);
  fake.watchers[1].cb(0);
  assert.equal(events, 11);
  fake.watchers[1].cb(-9); // EBADF: logged, watch stopped, callback not run
  assert.equal(events, 11);
  assert.equal(fake.watchers[1].stopped, true);
  host.close();
});

test('interrupts, routing, power and platform calls pass the right arguments', () => {
  const fake = new Fake();
  const host = open(fake);
  fake.calls = [];
  host.interrupts.setIsaIrqLevel(4, 1);
  host.interrupts.setPciIntxLevel(3, 0, 1);
  host.interrupts.setPciLinkRoute(2, 11);
  host.interrupts.injectMsi(0xfee01000, 0x4041);
  host.routing.mapIoRange(0, 0x3f8, 0x3ff);
  host.routing.unmapIoRange(1, 0xf0000000, 0xf0000fff);
  host.routing.mapPcidev(1, 1);
  host.routing.unmapPcidev(2, 0);
  host.power.shutdown(1);
  assert.equal(host.relocateMemory(16, 0x10000, 0xf0000), true);
  assert.equal(host.pinMemoryCacheattr(0xf0000, 0xf000f, 6), true);
  assert.equal(host.setMemType(1, 0xc0, 0x40), true);
  assert.equal(host.modifiedMemory(0x100, 2), true);
  assert.equal(host.trackDirtyVram(0xf0000, 64, new BigUint64Array(1)), true);
  assert.equal(host.trackDirtyVram(0xf0000, 65, new BigUint64Array(1)), false, 'bitmap too short: refused');
  assert.deepEqual(fake.calls, [
    ['set_isa_irq_level', 5, 4, 1],
    ['set_pci_intx_level', 5, 0, 0, 3, 0, 1],
    ['set_pci_link_route', 5, 2, 11],
    ['inject_msi', 5, 0xfee01000, 0x4041],
    ['map_io_range', 5, 3, 0, 0x3f8, 0x3ff],
    ['unmap_io_range', 5, 3, 1, 0xf0000000, 0xf0000fff],
    ['map_pcidev', 5, 3, 0, 0, 1, 1],
    ['unmap_pcidev', 5, 3, 0, 0, 2, 0],
    ['shutdown', 5, 1],
    ['relocate_memory', 5, 16, 0x10000, 0xf0000],
    ['pin_memory_cacheattr', 5, 0xf0000, 0xf000f, 6],
    ['set_mem_type', 5, 1, 0xc0, 0x40],
    ['modified_memory', 5, 0x100, 2],
    ['track_dirty_vram', 5, 0xf0000, 64, new BigUint64Array(1)],
  ]);
  // A failing hypercall is logged, not thrown.
  fake.fail.add('set_isa_irq_level');
  assert.doesNotThrow(() => host.interrupts.setIsaIrqLevel(4, 0));
  host.close();
});

test('guest memory goes through xenforeignmemory_map in 1 MiB buckets', () => {
  const fake = new Fake();
  const host = open(fake);
  fake.calls = [];
  const src = new Uint8Array([1, 2, 3, 4]);
  assert.equal(host.memory.write(0x123456, src, 0, 4), true);
  const dst = new Uint8Array(4);
  assert.equal(host.memory.read(0x123456, dst, 0, 4), true);
  assert.deepEqual(dst, src);
  assert.equal(host.memory.read(64 << 20, dst, 0, 1), false, 'past the end of RAM');
  assert.deepEqual(fake.calls, [['xenforeignmemory_map', 5, 3, 256, 0x100n]]);
  host.memory.invalidate();
  assert.deepEqual(fake.calls.at(-1), ['xenforeignmemory_unmap', 256]);
  host.close();
});

test('the store reads, writes and lists, freeing what libxenstore returns', () => {
  const fake = new Fake();
  const host = open(fake);
  const st = host.store!;
  assert.equal(st.read('device-model/5/state'), 'running');
  assert.equal(st.read('nope'), null);
  assert.equal(st.write('device-model/5/state', 'paused'), true);
  assert.equal(fake.xsData.get('device-model/5/state'), 'paused');
  assert.deepEqual(st.directory('device-model/5'), ['state', 'command']);
  assert.deepEqual(st.directory('nope'), []);
  assert.equal(fake.freed.length, 2, 'one xs_read buffer and one xs_directory block freed');
  host.close();
});

test('xenstore watches: fd watched once, events delivered by token, buffers freed', () => {
  const fake = new Fake();
  const host = open(fake);
  const st = host.store!;
  const seen: string[] = [];
  assert.equal(st.watch('device-model/5/command', 'cmd', (p, t) => seen.push(`${t}:${p}`)), true);
  assert.equal(st.watch('device-model/5/other', 'cmd', () => {}), false, 'duplicate token refused');
  assert.equal(st.watch('/local/domain/5/x', 'x', (p, t) => seen.push(`${t}:${p}`)), true);
  assert.equal(fake.watchers.filter((w) => w.fd === 43).length, 1, 'one fd watch for all xenstore watches');
  const w = fake.watchers.find((x) => x.fd === 43)!;
  fake.xsEvents.push(['device-model/5/command/sub', 'cmd'], ['/elsewhere', 'unknown-token']);
  const freedBefore = fake.freed.length;
  w.cb(0);
  assert.deepEqual(seen, ['cmd:device-model/5/command', 'x:/local/domain/5/x', 'cmd:device-model/5/command/sub']);
  assert.equal(fake.freed.length - freedBefore, 4, 'every xs_check_watch block freed');
  assert.equal(st.getDomainPath(5), '/local/domain/5');
  assert.equal(st.mkdir('a'), true);
  assert.equal(st.rm('a'), true);
  host.close();
  assert.equal(w.stopped, true);
  assert.ok(fake.names().includes('xs_close'));
  assert.equal(st.read('device-model/5/state'), null, 'closed store answers nothing');
});

test('without xenstore the host still opens, with store null', () => {
  const fake = new Fake();
  fake.fail.add('xs_open');
  const host = open(fake);
  assert.equal(host.store, null);
  host.close();
});

test('close() tears down in order, once; later calls are no-ops', () => {
  const fake = new Fake();
  const host = open(fake);
  host.channel.watch(() => {});
  host.memory.read(0, new Uint8Array(1), 0, 1);
  fake.calls = [];
  host.close();
  assert.deepEqual(fake.names(), [
    'set_ioreq_server_state',
    'destroy_ioreq_server',
    'unmap_resource',
    'unbind',
    'unbind',
    'unbind',
    'xenforeignmemory_unmap',
    'xs_close',
    'xenevtchn_close',
    'xenforeignmemory_close',
    'xendevicemodel_close',
  ]);
  assert.deepEqual(fake.calls[0], ['set_ioreq_server_state', 5, 3, 0]);
  assert.equal(fake.watchers[0].stopped, true);
  fake.calls = [];
  host.close();
  host.interrupts.setIsaIrqLevel(1, 1);
  host.routing.mapIoRange(0, 0x60, 0x60);
  host.channel.notify(1100);
  fake.pendingPorts.push(1100);
  assert.equal(host.channel.pending(), -1);
  assert.equal(host.memory.read(0, new Uint8Array(1), 0, 1), false);
  assert.deepEqual(fake.calls, [], 'nothing reaches the freed handles');
});

for (const [failing, expectCalls, msg] of [
  ['privcmd', [], /\/dev\/xen\/privcmd/],
  ['xendevicemodel_open', ['xendevicemodel_open'], /xendevicemodel_open failed \(No such file or directory\)/],
  ['xenevtchn_open', ['xenevtchn_open', 'xenforeignmemory_close', 'xendevicemodel_close'], /xenevtchn_open failed/],
  ['create_ioreq_server', ['create_ioreq_server', 'xenevtchn_close', 'xenforeignmemory_close', 'xendevicemodel_close'], /ioreq server for domain 5 failed \(No such process\)/],
  ['map_resource', ['map_resource', 'destroy_ioreq_server', 'xenevtchn_close'], /map_resource\) failed \(Operation not supported\)/],
  ['set_ioreq_server_state', ['set_ioreq_server_state', 'destroy_ioreq_server', 'unmap_resource', 'xendevicemodel_close'], /enabling the ioreq server .* failed \(No such process\)/],
  ['bind_interdomain', ['bind_interdomain', 'set_ioreq_server_state', 'destroy_ioreq_server', 'unmap_resource', 'xenevtchn_close'], /vCPU 0's event channel 100/],
] as const) {
  test(`a failing ${failing} gives one line and releases what was opened`, () => {
    const fake = new Fake();
    fake.fail.add(failing);
    assert.throws(
      () => open(fake),
      (e: unknown) => {
        assert.ok(e instanceof XenUnavailableError);
        assert.match(e.message, msg);
        assert.match(e.message, /^stubdm: /);
        assert.ok(!e.message.includes('\n'), 'one line');
        return true;
      },
    );
    const names = fake.names();
    let at = 0;
    for (const c of expectCalls) {
      const i = names.indexOf(c, at);
      assert.ok(i >= 0, `${c} called (in order) in ${names.join(',')}`);
      at = i + 1;
    }
    if (failing !== 'privcmd' && failing !== 'xendevicemodel_open') {
      assert.ok(names.includes('xendevicemodel_close'), 'every opened handle closed');
    }
  });
}

test('bad options are refused before anything is opened', () => {
  const fake = new Fake();
  for (const o of [
    { domid: 0, ramBytes: 1 << 26 },
    { domid: 0x7ff0, ramBytes: 1 << 26 },
    { domid: 1.5, ramBytes: 1 << 26 },
    { domid: 5, ramBytes: -1 },
    { domid: 5, ramBytes: 2 ** 60 },
    { domid: 5, ramBytes: 1 << 26, vcpus: 0 },
    { domid: 5, ramBytes: 1 << 26, vcpus: 129 },
    { domid: 5, ramBytes: 1 << 26, lowMemLimit: 0xf0000001 },
    { domid: 5, ramBytes: 1 << 26, mapcacheBuckets: 0 },
  ]) {
    assert.throws(() => openXenHost({ ...o, log: quiet }, { libs: fake.libs(), fdwatch: fake.fdwatch() }), XenUnavailableError);
  }
  assert.deepEqual(fake.calls, []);
});

test('on this machine (no Xen) openXenHost throws a one-line XenUnavailableError', () => {
  // Domain 32000 does not exist anywhere, so even on a Xen host this fails cleanly.
  assert.throws(
    () => openXenHost({ domid: 32000, ramBytes: 64 << 20, log: quiet }),
    (e: unknown) => {
      assert.ok(e instanceof XenUnavailableError, String(e));
      assert.match(e.message, /^stubdm: /);
      assert.ok(!e.message.includes('\n'));
      return true;
    },
  );
});
