/**
 * QEMU's e1000 CVEs not already replayed next to the code they test
 * (CVE-2015-6815, CVE-2016-1981 and CVE-2021-20257 are in tx.test.ts and
 * rx.test.ts). The list and what each CVE was: docs/cve.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as R from '../../../src/devices/e1000/regs.ts';
import { ethFrame, MAC, MMIO_BASE, makeNic, put32, RAM, RX_BUF, RX_RING, seqBytes, setupRx, setupTx, TX_BUF, txDesc } from './harness.ts';

const EOP_RS = R.TXD_CMD_EOP | R.TXD_CMD_RS;
const RCTL_LBM_MAC = 1 << 6; // RCTL.LBM = 01b, MAC loopback (13.4.22)

test('CVE-2012-6075: a frame longer than the buffers without SBP/LPE is dropped, never written past a buffer', () => {
  // QEMU's e1000_receive copied an oversized frame into the guest's 2 KiB buffer when SBP or LPE
  // was off, overflowing it. Here: 1522..16 Ki-byte frames into 2 KiB buffers, LPE off, SBP on and off.
  for (const sbp of [0, R.RCTL_SBP]) {
    const n = makeNic();
    setupRx(n, 8, R.RCTL_EN | sbp);
    n.ram.fill(0xee, RX_BUF, RX_BUF + 8 * 2048 + 4096);
    for (const len of [1523, 2048, 4096, 9000, 16384]) {
      n.be.inject(ethFrame(MAC, 0x0800, seqBytes(len - 14, len)));
    }
    // Without SBP an oversized frame is dropped; with it (store bad packets) the frame may span
    // descriptors as a jumbo one does. Either way nothing lands beyond the 7 buffers handed over.
    if (!sbp) assert.equal(n.r32(R.RDH), 0, 'nothing delivered');
    assert.ok(n.ram.subarray(RX_BUF + 7 * 2048, RX_BUF + 8 * 2048 + 4096).every((b) => b === 0xee), 'nothing past the buffers');
    assert.equal(n.mem.outside, 0);
  }
});

test('CVE-2021-3416: loopback mode (RCTL.LBM) cannot recurse: one transmitted frame is at most one frame out and one in', () => {
  // QEMU's e1000 in loopback called its own receive from transmit without a re-entrancy guard.
  const n = makeNic();
  setupRx(n, 16, R.RCTL_EN | R.RCTL_BAM | R.RCTL_UPE | RCTL_LBM_MAC);
  setupTx(n, 16);
  const f = ethFrame(MAC, 0x0800, seqBytes(100));
  n.ram.set(f, TX_BUF);
  for (let i = 0; i < 15; i++) txDesc(n, i, TX_BUF, (f.length | EOP_RS) >>> 0, 0);
  n.w32(R.TDT, 15);
  assert.equal(n.r32(R.TDH), 15, 'every descriptor consumed once');
  assert.ok(n.be.sent.length <= 15);
  assert.ok(n.r32(R.RDH) <= 15, 'at most one frame received per frame sent');
});

test('DMA re-entrancy (the bug class QEMU 8.0 closed with a re-entrancy guard; no e1000 CVE of its own): rings and buffers pointed at the NIC\'s own BAR reach no register', () => {
  const n = makeNic();
  setupRx(n, 8);
  setupTx(n, 8);
  const ims = R.IMS, before = { ctrl: n.r32(R.CTRL), ims: n.r32(ims), rctl: n.r32(R.RCTL) };
  // RX buffers and the TX buffer at the NIC's own registers (CTRL.RST lives at offset 0), and
  // a TX ring whose base is the BAR itself.
  for (let i = 0; i < 8; i++) put32(n.ram, RX_RING + 16 * i, MMIO_BASE + R.CTRL);
  n.be.inject(ethFrame(MAC, 0x0800, new Uint8Array(200).fill(0xff)));
  for (let i = 0; i < 8; i++) txDesc(n, i, MMIO_BASE + R.IMS, (64 | EOP_RS) >>> 0, 0);
  n.w32(R.TDT, 4);
  n.w32(R.TDBAL, MMIO_BASE);
  n.w32(R.TDT, 7);
  assert.deepEqual({ ctrl: n.r32(R.CTRL), ims: n.r32(ims), rctl: n.r32(R.RCTL) }, before, 'registers unchanged');
  assert.ok(n.mem.outside > 0, 'the device tried guest memory, which refused');
  assert.ok(MMIO_BASE > RAM);
});
