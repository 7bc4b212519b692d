/**
 * e1000 receive: address filtering (exact, MTA hash, UPE/MPE/BAM, VFTA),
 * VLAN stripping, short-frame padding, buffer sizes and frames spanning
 * descriptors (jumbo with LPE), oversize drops, ring-full backpressure
 * with resumeReceive, RXDMT0, RDTR/RADV and the QEMU RX CVE.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as R from '../../../src/devices/e1000/regs.ts';
import { rxBufSize } from '../../../src/devices/e1000/index.ts';
import { ethFrame, get16, MAC, makeNic, put32, RX_BUF, RX_RING, seqBytes, setupRx, type Nic } from './harness.ts';

const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const OTHER = [0x52, 0x54, 0x00, 0x99, 0x99, 0x99];

interface RxDesc {
  len: number;
  status: number;
  special: number;
}
function rxDesc(n: Nic, i: number): RxDesc {
  const at = RX_RING + 16 * i;
  return { len: get16(n.ram, at + 8), status: n.ram[at + 12], special: get16(n.ram, at + 14) };
}

/** Inject and say whether it reached the ring (RDH moved). */
function delivered(n: Nic, f: Uint8Array): boolean {
  const before = n.r32(R.RDH);
  n.be.inject(f);
  return n.r32(R.RDH) !== before;
}

test('RCTL buffer sizes: BSIZE with and without BSEX', () => {
  assert.equal(rxBufSize(0), 2048);
  assert.equal(rxBufSize(1 << 16), 1024);
  assert.equal(rxBufSize(2 << 16), 512);
  assert.equal(rxBufSize(3 << 16), 256);
  assert.equal(rxBufSize(R.RCTL_BSEX | (1 << 16)), 16384);
  assert.equal(rxBufSize(R.RCTL_BSEX | (2 << 16)), 8192);
  assert.equal(rxBufSize(R.RCTL_BSEX | (3 << 16)), 4096);
  assert.equal(rxBufSize(R.RCTL_BSEX), 2048, 'reserved encoding');
});

test('a unicast frame to our MAC lands in one buffer with DD|EOP, length counting the FCS, RXT0', () => {
  const n = makeNic();
  setupRx(n);
  n.w32(R.IMS, R.ICR_RXT0);
  const f = ethFrame(MAC, 0x0800, seqBytes(100));
  assert.ok(delivered(n, f));
  const d = rxDesc(n, 0);
  assert.equal(d.len, f.length + 4);
  assert.equal(d.status, R.RXD_STAT_DD | R.RXD_STAT_EOP | R.RXD_STAT_IXSM);
  assert.deepEqual(n.ram.subarray(RX_BUF, RX_BUF + f.length), f);
  assert.equal(n.r32(R.RDH), 1);
  assert.equal(n.intx(), 1);
  assert.equal(n.r32(R.ICR) & R.ICR_RXT0, R.ICR_RXT0);
  assert.equal(n.r32(R.STATS + R.ST_GPRC * 4), 1);
  // SECRC: the FCS is not counted.
  n.w32(R.RCTL, n.r32(R.RCTL) | R.RCTL_SECRC);
  n.be.inject(f);
  assert.equal(rxDesc(n, 1).len, f.length);
});

test('filters: exact RAL/RAH, UPE, MTA hash (RCTL.MO), MPE, broadcast with BAM', () => {
  const n = makeNic();
  setupRx(n, 16, R.RCTL_EN);
  assert.equal(delivered(n, ethFrame(OTHER, 0x0800, seqBytes(50))), false, 'other unicast');
  assert.equal(delivered(n, ethFrame(BCAST, 0x0806, seqBytes(50))), false, 'broadcast without BAM');
  n.w32(R.RA + 8, 0x99005452);
  n.w32(R.RA + 12, 0x80009999); // RAL1/RAH1 = OTHER, AV
  assert.ok(delivered(n, ethFrame(OTHER, 0x0800, seqBytes(50))), 'second exact address');
  n.w32(R.RA + 12, 0x00009999); // AV clear
  assert.equal(delivered(n, ethFrame(OTHER, 0x0800, seqBytes(50))), false);
  n.w32(R.RCTL, R.RCTL_EN | R.RCTL_UPE);
  assert.ok(delivered(n, ethFrame(OTHER, 0x0800, seqBytes(50))), 'promiscuous unicast');
  const mc = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
  n.w32(R.RCTL, R.RCTL_EN);
  assert.equal(delivered(n, ethFrame(mc, 0x0800, seqBytes(50))), false);
  // MO = 0: hash = dst[4] >> 4 | dst[5] << 4 (bits 47:36)
  const h = ((mc[5] << 8) | mc[4]) >>> 4;
  n.w32(R.MTA + 4 * (h >>> 5), 1 << (h & 31));
  assert.ok(delivered(n, ethFrame(mc, 0x0800, seqBytes(50))), 'MTA hit');
  n.w32(R.RCTL, R.RCTL_EN | (3 << R.RCTL_MO_SHIFT)); // MO = 3: bits 43:32, another bit
  assert.equal(delivered(n, ethFrame(mc, 0x0800, seqBytes(50))), false);
  n.w32(R.RCTL, R.RCTL_EN | R.RCTL_MPE);
  assert.ok(delivered(n, ethFrame([0x33, 0x33, 0, 0, 0, 1], 0x86dd, seqBytes(50))), 'promiscuous multicast');
  n.w32(R.RCTL, R.RCTL_EN | R.RCTL_BAM);
  assert.ok(delivered(n, ethFrame(BCAST, 0x0806, seqBytes(50))), 'broadcast');
  assert.equal(n.r32(R.STATS + R.ST_BPRC * 4), 1);
});

test('VLAN: VFTA filter with RCTL.VFE, tag stripped with CTRL.VME into special with VP', () => {
  const n = makeNic();
  setupRx(n, 16, R.RCTL_EN | R.RCTL_VFE);
  const payload = seqBytes(64);
  const tagged = new Uint8Array(18 + payload.length);
  tagged.set(MAC, 0);
  tagged.set([2, 0, 0, 0, 0, 1], 6);
  tagged.set([0x81, 0x00, 0x20, 0x05, 0x08, 0x00], 12); // VLAN 5, priority 1
  tagged.set(payload, 18);
  assert.equal(delivered(n, tagged), false, 'VLAN 5 not in the VFTA');
  n.w32(R.VFTA, 1 << 5);
  assert.ok(delivered(n, tagged));
  assert.equal(rxDesc(n, 0).status & R.RXD_STAT_VP, 0, 'no stripping without VME');
  assert.equal(rxDesc(n, 0).len, tagged.length + 4);
  n.w32(R.CTRL, n.r32(R.CTRL) | R.CTRL_VME);
  assert.ok(delivered(n, tagged));
  const d = rxDesc(n, 1);
  assert.equal(d.status & R.RXD_STAT_VP, R.RXD_STAT_VP);
  assert.equal(d.special, 0x2005);
  assert.equal(d.len, tagged.length - 4 + 4);
  const got = n.ram.subarray(RX_BUF + 2048, RX_BUF + 2048 + tagged.length - 4);
  assert.deepEqual(got.subarray(0, 12), tagged.subarray(0, 12));
  assert.deepEqual(got.subarray(12), tagged.subarray(16));
});

test('short frames are padded to 60 bytes', () => {
  const n = makeNic();
  setupRx(n);
  n.ram.fill(0xee, RX_BUF, RX_BUF + 64);
  assert.ok(delivered(n, ethFrame(MAC, 0x0806, [1, 2, 3])));
  assert.equal(rxDesc(n, 0).len, 64);
  assert.deepEqual([...n.ram.subarray(RX_BUF + 14, RX_BUF + 18)], [1, 2, 3, 0]);
  assert.equal(n.ram[RX_BUF + 59], 0);
});

test('a 9000-byte jumbo frame with LPE spans 2 KiB buffers; EOP only on the last; oversize without LPE is dropped', () => {
  const n = makeNic();
  setupRx(n, 16, R.RCTL_EN);
  const big = ethFrame(MAC, 0x0800, seqBytes(9000 - 14, 4));
  assert.equal(delivered(n, big), false, 'no LPE: dropped');
  assert.equal(n.r32(R.STATS + R.ST_ROC * 4), 1);
  n.w32(R.RCTL, R.RCTL_EN | R.RCTL_LPE);
  assert.ok(delivered(n, big));
  const total = 9000 + 4;
  const descs = Math.ceil(total / 2048);
  assert.equal(n.r32(R.RDH), descs);
  for (let i = 0; i < descs; i++) {
    const d = rxDesc(n, i);
    const last = i === descs - 1;
    assert.equal(d.len, last ? total - 2048 * i : 2048);
    assert.equal(d.status & (R.RXD_STAT_DD | R.RXD_STAT_EOP), last ? 3 : 1);
  }
  const got = new Uint8Array(9000);
  for (let i = 0; i < descs; i++) got.set(n.ram.subarray(RX_BUF + 2048 * i, RX_BUF + 2048 * i + Math.min(2048, 9000 - 2048 * i)), 2048 * i);
  assert.deepEqual(got, big);
  // The largest frame LPE allows (16 KiB with the FCS) in one 16 KiB buffer (BSEX); one byte more is oversize.
  setupRx(n, 8, R.RCTL_EN | R.RCTL_LPE | R.RCTL_BSEX | (1 << R.RCTL_BSIZE_SHIFT), 16384);
  const jumbo = ethFrame(MAC, 0x0800, seqBytes(16380 - 14, 6));
  assert.ok(delivered(n, jumbo));
  assert.equal(rxDesc(n, 0).len, 16384);
  assert.equal(rxDesc(n, 0).status & R.RXD_STAT_EOP, R.RXD_STAT_EOP);
  assert.deepEqual(n.ram.subarray(RX_BUF, RX_BUF + 16380), jumbo);
  assert.equal(delivered(n, ethFrame(MAC, 0x0800, seqBytes(16381 - 14))), false);
});

test('ring full: the receiver refuses, the backend holds the frame, an RDT write resumes delivery in order', () => {
  const n = makeNic();
  setupRx(n, 8); // 7 buffers handed over
  const frames = Array.from({ length: 10 }, (_, i) => ethFrame(MAC, 0x0800, seqBytes(100, i)));
  for (const f of frames) n.be.inject(f);
  assert.equal(n.r32(R.RDH), 7);
  assert.equal(n.be.queued, 3, 'three frames still with the backend');
  assert.ok(n.be.isPaused);
  assert.equal(n.be.resumes, 0);
  assert.ok(n.r32(R.STATS + R.ST_RNBC * 4) >= 1);
  // The guest processes 4 descriptors and gives them back.
  for (let i = 0; i < 8; i++) n.ram[RX_RING + 16 * i + 12] = 0;
  n.w32(R.RDT, 3);
  assert.equal(n.be.resumes, 1);
  assert.equal(n.be.queued, 0);
  assert.equal(n.r32(R.RDH), 2);
  // Frames 7, 8, 9 went to descriptors 7, 0, 1.
  assert.deepEqual(n.ram.subarray(RX_BUF + 7 * 2048, RX_BUF + 7 * 2048 + 114), frames[7]);
  assert.deepEqual(n.ram.subarray(RX_BUF, RX_BUF + 114), frames[8]);
  assert.deepEqual(n.ram.subarray(RX_BUF + 2048, RX_BUF + 2048 + 114), frames[9]);
  // A frame that could never fit the ring is dropped (RXO), not held forever.
  n.w32(R.RCTL, R.RCTL_EN | R.RCTL_LPE | (3 << R.RCTL_BSIZE_SHIFT)); // 256-byte buffers, 8-descriptor ring
  n.w32(R.IMS, R.ICR_RXO);
  n.be.inject(ethFrame(MAC, 0x0800, seqBytes(3000)));
  assert.equal(n.be.queued, 0);
  assert.equal(n.r32(R.ICR) & R.ICR_RXO, R.ICR_RXO);
});

test('RXDMT0 when the free descriptors fall to RDLEN / 2^(RDMTS+1)', () => {
  const n = makeNic();
  setupRx(n, 16, R.RCTL_EN); // RDMTS = 0: half the ring (8 descriptors)
  n.w32(R.IMS, R.ICR_RXDMT0);
  for (let i = 0; i < 6; i++) n.be.inject(ethFrame(MAC, 0x0800, seqBytes(60)));
  assert.equal(n.intx(), 0, '15 - 6 = 9 free');
  n.be.inject(ethFrame(MAC, 0x0800, seqBytes(60)));
  assert.equal(n.intx(), 1, '8 free');
  assert.equal(n.r32(R.ICR), R.ICR_RXDMT0 | R.ICR_RXT0);
});

test('RDTR delays RXT0 until a quiet period, RADV caps it, RDTR.FPD flushes at once', () => {
  const n = makeNic();
  setupRx(n);
  n.w32(R.IMS, R.ICR_RXT0);
  n.w32(R.RDTR, 100); // 102.4 us after the last frame
  n.w32(R.RADV, 300); // at most 307.2 us after the first
  const f = ethFrame(MAC, 0x0800, seqBytes(60));
  for (let k = 0; k < 3; k++) {
    n.be.inject(f);
    n.clock.advance(0.09);
    assert.equal(n.intx(), 0, `frame ${k}: RDTR re-armed by each frame`);
  }
  n.be.inject(f); // t = 0.27: RDTR would fire at 0.3724
  n.clock.advance(0.03);
  assert.equal(n.intx(), 0);
  n.clock.advance(0.01);
  assert.equal(n.intx(), 1, 'RADV expired at 0.3072 ms');
  n.r32(R.ICR);
  n.be.inject(f);
  assert.equal(n.intx(), 0);
  n.w32(R.RDTR, 100 | R.RDTR_FPD);
  assert.equal(n.intx(), 1, 'flushed');
  assert.equal(n.r32(R.RDTR), 100, 'FPD reads back 0');
});

test('receiver disabled, link down or bus mastering off: frames are dropped, not queued', () => {
  const n = makeNic();
  setupRx(n);
  n.w32(R.RCTL, 0);
  n.be.inject(ethFrame(MAC, 0x0800, seqBytes(60)));
  assert.equal(n.be.queued, 0);
  n.w32(R.RCTL, R.RCTL_EN);
  n.nic.setLinkUp(false);
  n.be.inject(ethFrame(MAC, 0x0800, seqBytes(60)));
  assert.equal(n.r32(R.RDH), 0);
  n.nic.setLinkUp(true); // negotiation had never completed: it runs now
  n.clock.advance(500);
  n.cfgWrite(0x04, 2, 0x0003);
  n.be.inject(ethFrame(MAC, 0x0800, seqBytes(60)));
  assert.equal(n.r32(R.RDH), 0);
  n.cfgWrite(0x04, 2, 0x0007);
  assert.ok(delivered(n, ethFrame(MAC, 0x0800, seqBytes(60))));
});

test('CVE-2016-1981 (RX side): RDH/RDT outside the ring or null buffer addresses cannot loop', () => {
  const n = makeNic();
  setupRx(n, 8);
  n.w32(R.RDH, 50);
  n.be.inject(ethFrame(MAC, 0x0800, seqBytes(60)));
  assert.equal(n.r32(R.RDH), 50);
  assert.equal(n.be.queued, 0, 'dropped, not held');
  // All descriptors with a null buffer: consumed without data, the frame is lost (RXO), no hang.
  n.w32(R.RDH, 0);
  for (let i = 0; i < 8; i++) {
    put32(n.ram, RX_RING + 16 * i, 0);
    put32(n.ram, RX_RING + 16 * i + 4, 0);
  }
  n.w32(R.RDT, 7);
  n.w32(R.IMS, R.ICR_RXO);
  n.be.inject(ethFrame(MAC, 0x0800, seqBytes(60)));
  assert.equal(n.r32(R.RDH), 7);
  assert.equal(n.intx(), 1);
  assert.equal(rxDesc(n, 0).status & R.RXD_STAT_DD, R.RXD_STAT_DD);
});
