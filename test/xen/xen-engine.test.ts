// The ioreq engine on top of openXenHost (over the fake libraries): the
// pieces fit — board ranges become map_io_range calls, a request posted in
// the mapped ioreq page and signalled on the vCPU's local port is answered
// in the page with unmask before and notify after, and stop/close tear down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../../src/core/board.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';
import {
  IOREQ_DIR,
  IOREQ_OFF_FLAGS,
  IOREQ_OFF_TYPE,
  IOREQ_STATE_MASK,
  IOREQ_TYPE_PIO,
  STATE_IOREQ_READY,
  STATE_IORESP_READY,
} from '../../src/ioreq/abi.ts';
import { Fake, open, quiet } from './xen-fake.ts';

function post(page: ArrayBuffer, vcpu: number, port: number, size: number, read: boolean, data = 0): void {
  const dv = new DataView(page, vcpu * 32, 32);
  dv.setBigUint64(0, BigInt(port), true);
  dv.setBigUint64(8, BigInt(data), true);
  dv.setUint32(16, 1, true); // count
  dv.setUint32(20, size, true);
  dv.setUint8(IOREQ_OFF_TYPE, IOREQ_TYPE_PIO);
  dv.setUint8(IOREQ_OFF_FLAGS, STATE_IOREQ_READY | (read ? IOREQ_DIR : 0));
}

test('a PIO read and write travel: evtchn -> ioreq page -> board -> answer -> notify', () => {
  const fake = new Fake();
  const host = open(fake, { vcpus: 2 });
  const board = new Board(host.memory, host.interrupts, host.power, host.routing);
  const writes: number[] = [];
  fake.calls = [];
  board.pio.add('probe', 0x510, 2, {
    read: (off, size) => (size === 2 ? 0xbeef : 0xef),
    write: (_off, _size, v) => void writes.push(v),
  });
  assert.deepEqual(fake.calls, [['map_io_range', 5, 3, 0, 0x510, 0x511]]);

  const srv = new IoreqServer(host, board, quiet);
  srv.start();
  const w = fake.watchers.at(-1)!;
  assert.equal(w.fd, 42);
  assert.equal(w.stopped, false);

  // vCPU 1 reads a word from port 0x510.
  post(fake.ioreqPage, 1, 0x510, 2, true);
  fake.pendingPorts.push(1101);
  fake.calls = [];
  w.cb(0);
  const slot = new DataView(fake.ioreqPage, 32, 32);
  assert.equal(slot.getUint8(IOREQ_OFF_FLAGS) & IOREQ_STATE_MASK, STATE_IORESP_READY);
  assert.equal(slot.getUint8(IOREQ_OFF_FLAGS) & IOREQ_DIR, IOREQ_DIR, 'flag bits kept');
  assert.equal(Number(slot.getBigUint64(8, true)), 0xbeef);
  const evt = fake.calls.filter((c) => c[0] === 'unmask' || c[0] === 'notify');
  assert.deepEqual(evt, [
    ['unmask', 1101],
    ['notify', 1101],
  ]);
  // Three event-channel syscalls per request, as QEMU: no poll before the
  // read (libuv's wake-up is the poll), none after the answer, and the read
  // and unmask done by the addon before JS runs.
  assert.deepEqual(fake.names(), ['read', 'unmask', 'notify']);

  // vCPU 0 writes a byte.
  post(fake.ioreqPage, 0, 0x511, 1, false, 0x5a);
  fake.pendingPorts.push(1100);
  w.cb(0);
  assert.deepEqual(writes, [0x5a]);
  assert.equal(new DataView(fake.ioreqPage).getUint8(IOREQ_OFF_FLAGS) & IOREQ_STATE_MASK, STATE_IORESP_READY);

  srv.stop();
  assert.equal(w.stopped, true, 'disabling pauses the watch');
  host.close();
  assert.ok(fake.names().includes('destroy_ioreq_server'));
});
