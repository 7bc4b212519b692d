/**
 * e1000 transmit: legacy and context/data descriptors, checksum offload
 * (verified by recomputing), TSO of a 64 KiB send into MSS segments, VLAN
 * insertion, backpressure from the backend, bus mastering, the frame
 * budget, interrupt delay, and QEMU's TX CVEs as regression tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as R from '../../../src/devices/e1000/regs.ts';
import { TX_FRAME_BUDGET } from '../../../src/devices/e1000/index.ts';
import { ctxDesc, dataDesc, ethFrame, get32, legacy, MAC, makeNic, seqBytes, setupRx, setupTx, TX_BUF, TX_RING, txDesc, type Nic } from './harness.ts';
import { be16, be32, buildPacket, ETH_HLEN, IP_HLEN, ipChecksumOk, l4ChecksumOk, TCP_HLEN } from './packets.ts';

const EOP_RS = R.TXD_CMD_EOP | R.TXD_CMD_RS;

function dd(n: Nic, i: number): boolean {
  return (get32(n.ram, TX_RING + 16 * i + 12) & R.TXD_STAT_DD) !== 0;
}

test('legacy descriptors: a frame over three buffers, DD written back, TXDW and TXQE', () => {
  const n = makeNic();
  setupTx(n, 8);
  n.w32(R.IMS, R.ICR_TXDW);
  const f = seqBytes(300);
  n.ram.set(f.subarray(0, 100), TX_BUF);
  n.ram.set(f.subarray(100, 250), TX_BUF + 0x1000);
  n.ram.set(f.subarray(250), TX_BUF + 0x2000);
  txDesc(n, 0, TX_BUF, ...legacy(100, 0));
  txDesc(n, 1, TX_BUF + 0x1000, ...legacy(150, 0));
  txDesc(n, 2, TX_BUF + 0x2000, ...legacy(50, EOP_RS));
  n.w32(R.TDT, 3);
  assert.equal(n.be.sent.length, 1);
  assert.deepEqual(n.be.sent[0].frame, f);
  assert.equal(n.be.sent[0].offload, null);
  assert.equal(n.r32(R.TDH), 3);
  assert.ok(!dd(n, 0) && !dd(n, 1) && dd(n, 2), 'DD only where RS was set');
  assert.equal(n.intx(), 1);
  assert.equal(n.r32(R.ICR), R.ICR_TXDW | R.ICR_TXQE);
  // Ring wrap: 6 more single-buffer frames from index 3 through 0.
  for (let i = 0; i < 6; i++) txDesc(n, (3 + i) % 8, TX_BUF, ...legacy(60, EOP_RS));
  n.w32(R.TDT, 1);
  assert.equal(n.be.sent.length, 7);
  assert.equal(n.r32(R.TDH), 1);
});

test('TX disabled (TCTL.EN clear) sends nothing until enabled', () => {
  const n = makeNic();
  setupTx(n, 8);
  n.w32(R.TCTL, 0);
  n.ram.set(seqBytes(64), TX_BUF);
  txDesc(n, 0, TX_BUF, ...legacy(64, EOP_RS));
  n.w32(R.TDT, 1);
  assert.equal(n.be.sent.length, 0);
  n.w32(R.TCTL, R.TCTL_EN);
  assert.equal(n.be.sent.length, 1);
});

test('checksum offload: IPv4 header and TCP checksums inserted and correct (Linux e1000_tx_csum layout)', () => {
  const n = makeNic();
  setupTx(n, 8);
  const pkt = buildPacket({ proto: 6, payload: seqBytes(333) });
  const ip = ETH_HLEN;
  const l4 = ip + IP_HLEN;
  n.ram.set(pkt, TX_BUF);
  ctxDesc(n, 0, { ipcss: ip, ipcso: ip + 10, ipcse: l4 - 1, tucss: l4, tucso: l4 + 16, ip: true, tcp: true });
  dataDesc(n, 1, TX_BUF, 40, 0, R.TXD_POPTS_IXSM | R.TXD_POPTS_TXSM);
  dataDesc(n, 2, TX_BUF + 40, pkt.length - 40, EOP_RS, 0); // POPTS only count in the first descriptor
  n.w32(R.TDT, 3);
  assert.equal(n.be.sent.length, 1);
  const f = n.be.sent[0].frame;
  assert.equal(f.length, pkt.length);
  assert.ok(ipChecksumOk(f), 'IP checksum');
  assert.ok(l4ChecksumOk(f), 'TCP checksum');
  assert.notEqual(be16(f, ip + 10), 0);
  assert.deepEqual(f.subarray(l4 + TCP_HLEN), pkt.subarray(l4 + TCP_HLEN), 'payload untouched');
});

test('checksum offload: UDP, and a legacy descriptor with IC/CSO/CSS', () => {
  const n = makeNic();
  setupTx(n, 8);
  const pkt = buildPacket({ proto: 17, payload: seqBytes(101) });
  const l4 = ETH_HLEN + IP_HLEN;
  n.ram.set(pkt, TX_BUF);
  ctxDesc(n, 0, { ipcss: ETH_HLEN, ipcso: ETH_HLEN + 10, tucss: l4, tucso: l4 + 6, ip: true, tcp: false });
  dataDesc(n, 1, TX_BUF, pkt.length, EOP_RS, R.TXD_POPTS_TXSM);
  n.w32(R.TDT, 2);
  assert.ok(l4ChecksumOk(n.be.sent[0].frame), 'UDP checksum');
  // Legacy: CSS in the first descriptor, CSO and IC with the last.
  const pkt2 = buildPacket({ proto: 6, payload: seqBytes(77) });
  n.ram.set(pkt2, TX_BUF + 0x1000);
  txDesc(n, 2, TX_BUF + 0x1000, ...legacy(30, 0, 0, l4));
  txDesc(n, 3, TX_BUF + 0x1000 + 30, ...legacy(pkt2.length - 30, EOP_RS | R.TXD_CMD_IC, l4 + 16, 0));
  n.w32(R.TDT, 4);
  assert.equal(n.be.sent.length, 2);
  assert.ok(l4ChecksumOk(n.be.sent[1].frame), 'legacy TCP checksum');
});

test('with an offloading backend the TCP checksum is left to it (TxOffload), the IP checksum is still done', () => {
  const n = makeNic({ offloads: true });
  setupTx(n, 8);
  const pkt = buildPacket({ proto: 6, payload: seqBytes(200) });
  const l4 = ETH_HLEN + IP_HLEN;
  n.ram.set(pkt, TX_BUF);
  ctxDesc(n, 0, { ipcss: ETH_HLEN, ipcso: ETH_HLEN + 10, ipcse: l4 - 1, tucss: l4, tucso: l4 + 16, ip: true, tcp: true });
  dataDesc(n, 1, TX_BUF, pkt.length, EOP_RS, R.TXD_POPTS_IXSM | R.TXD_POPTS_TXSM);
  n.w32(R.TDT, 2);
  const s = n.be.sent[0];
  assert.deepEqual(s.offload, { csumStart: l4, csumOffset: 16, gsoSize: 0, hdrLen: 0, gsoType: 'none' });
  assert.ok(ipChecksumOk(s.frame));
  assert.equal(be16(s.frame, l4 + 16), be16(pkt, l4 + 16), 'pseudo-header sum left for the backend');
});

/** Lay out a Linux-style TSO send (e1000_tso): context, a header descriptor, payload in `chunk`-sized descriptors. */
function tsoSend(n: Nic, payload: Uint8Array, mss: number, first: number, chunk = 16384, flags = 0x19): number {
  const hdr = ETH_HLEN + IP_HLEN + TCP_HLEN;
  const pkt = buildPacket({ proto: 6, payload, flags, id: 0x4000, seq: 0xfffff000, l4csum: 'pseudo-nolen', totLen: 'zero' });
  n.ram.set(pkt, TX_BUF);
  let i = first;
  ctxDesc(n, i++, {
    ipcss: ETH_HLEN,
    ipcso: ETH_HLEN + 10,
    ipcse: hdr - TCP_HLEN - 1,
    tucss: ETH_HLEN + IP_HLEN,
    tucso: ETH_HLEN + IP_HLEN + 16,
    paylen: payload.length,
    hdrLen: hdr,
    mss,
    tse: true,
    ip: true,
    tcp: true,
  });
  dataDesc(n, i++, TX_BUF, hdr, R.TXD_CMD_TSE, R.TXD_POPTS_IXSM | R.TXD_POPTS_TXSM);
  for (let off = 0; off < payload.length; off += chunk) {
    const len = Math.min(chunk, payload.length - off);
    const last = off + len >= payload.length;
    dataDesc(n, i++, TX_BUF + hdr + off, len, R.TXD_CMD_TSE | (last ? EOP_RS : 0), 0);
  }
  return i;
}

function checkSegments(frames: Uint8Array[], payload: Uint8Array, mss: number): void {
  const hdr = ETH_HLEN + IP_HLEN + TCP_HLEN;
  const l4 = ETH_HLEN + IP_HLEN;
  assert.equal(frames.length, Math.ceil(payload.length / mss));
  const joined = new Uint8Array(payload.length);
  let off = 0;
  frames.forEach((f, i) => {
    const last = i === frames.length - 1;
    const seg = last ? payload.length - mss * i : mss;
    assert.equal(f.length, hdr + seg, `segment ${i} length`);
    assert.equal(be16(f, ETH_HLEN + 2), f.length - ETH_HLEN, `segment ${i} IP total length`);
    assert.equal(be16(f, ETH_HLEN + 4), (0x4000 + i) & 0xffff, `segment ${i} IP id`);
    assert.ok(ipChecksumOk(f), `segment ${i} IP checksum`);
    assert.equal(be32(f, l4 + 4), (0xfffff000 + i * mss) >>> 0, `segment ${i} sequence number`);
    assert.equal(f[l4 + 13], last ? 0x19 : 0x10, `segment ${i} flags: PSH and FIN only on the last`);
    assert.ok(l4ChecksumOk(f), `segment ${i} TCP checksum`);
    joined.set(f.subarray(hdr), off);
    off += seg;
  });
  assert.deepEqual(joined, payload);
}

test('TSO: a 64 KiB send becomes MSS segments with correct lengths, IP ids, sequence numbers, flags and checksums', () => {
  const n = makeNic();
  setupTx(n, 16);
  const payload = seqBytes(65536 - 54, 3);
  const end = tsoSend(n, payload, 1448, 0);
  n.w32(R.TDT, end);
  assert.equal(n.r32(R.TDH), end);
  checkSegments(n.be.sent.map((s) => s.frame), payload, 1448);
  assert.equal(n.r32(R.STATS + R.ST_TSCTC * 4), 1);
  assert.equal(n.r32(R.STATS + R.ST_TPT * 4), 46);
  // Descriptors straddling segment boundaries at odd places, and a second send reusing the context.
  const p2 = seqBytes(5000, 9);
  const end2 = tsoSend(n, p2, 536, end % 16, 777);
  n.be.sent.length = 0;
  n.w32(R.TDT, end2 % 16);
  checkSegments(n.be.sent.map((s) => s.frame), p2, 536);
});

test('VLAN insertion: VLE with CTRL.VME puts VET and the descriptor special field after the MACs', () => {
  const n = makeNic();
  setupTx(n, 8);
  n.w32(R.CTRL, n.r32(R.CTRL) | R.CTRL_VME);
  const f = seqBytes(80);
  n.ram.set(f, TX_BUF);
  txDesc(n, 0, TX_BUF, ...legacy(80, EOP_RS | R.TXD_CMD_VLE, 0, 0, 0x2123));
  n.w32(R.TDT, 1);
  const out = n.be.sent[0].frame;
  assert.equal(out.length, 84);
  assert.deepEqual(out.subarray(0, 12), f.subarray(0, 12));
  assert.deepEqual([...out.subarray(12, 16)], [0x81, 0x00, 0x21, 0x23]);
  assert.deepEqual(out.subarray(16), f.subarray(12));
  // Without VME the VLE bit does nothing.
  n.w32(R.CTRL, n.r32(R.CTRL) & ~R.CTRL_VME);
  txDesc(n, 1, TX_BUF, ...legacy(80, EOP_RS | R.TXD_CMD_VLE, 0, 0, 0x2123));
  n.w32(R.TDT, 2);
  assert.deepEqual(n.be.sent[1].frame, f);
});

test('backpressure: a refused send leaves descriptors unconsumed; onWritable resumes in order without duplicates', () => {
  const n = makeNic();
  setupTx(n, 8);
  for (let i = 0; i < 5; i++) {
    n.ram.set(seqBytes(64, i), TX_BUF + i * 0x100);
    txDesc(n, i, TX_BUF + i * 0x100, ...legacy(64, EOP_RS));
  }
  n.be.acceptLimit = 2;
  n.w32(R.TDT, 5);
  assert.equal(n.be.sent.length, 2);
  assert.equal(n.r32(R.TDH), 2, 'the refused frame\'s descriptor stays with the NIC');
  assert.ok(!dd(n, 2));
  n.w32(R.TDT, 5); // the guest pokes again: still full, nothing moves
  assert.equal(n.r32(R.TDH), 2);
  n.be.acceptLimit = -1;
  n.be.drain();
  assert.equal(n.be.sent.length, 5);
  assert.equal(n.r32(R.TDH), 5);
  n.be.sent.forEach((s, i) => assert.deepEqual(s.frame, seqBytes(64, i)));
});

test('backpressure in the middle of a TSO descriptor resumes at the right segment', () => {
  const n = makeNic();
  setupTx(n, 16);
  const payload = seqBytes(20000, 5);
  const end = tsoSend(n, payload, 1000, 0, 20000);
  n.be.acceptLimit = 7;
  n.w32(R.TDT, end);
  assert.equal(n.be.sent.length, 7);
  assert.equal(n.r32(R.TDH), 2, 'stuck on the payload descriptor');
  n.be.acceptLimit = 4;
  n.be.drain();
  assert.equal(n.be.sent.length, 11);
  n.be.acceptLimit = -1;
  n.be.drain();
  assert.equal(n.r32(R.TDH), end);
  checkSegments(n.be.sent.map((s) => s.frame), payload, 1000);
});

test('no DMA while bus mastering is off; enabling it lets the queued descriptors go', () => {
  const n = makeNic();
  setupTx(n, 8);
  n.ram.set(seqBytes(64), TX_BUF);
  txDesc(n, 0, TX_BUF, ...legacy(64, EOP_RS));
  n.cfgWrite(0x04, 2, 0x0003);
  const before = n.mem.accesses;
  n.w32(R.TDT, 1);
  assert.equal(n.be.sent.length, 0);
  assert.equal(n.r32(R.TDH), 0);
  assert.equal(n.mem.accesses, before, 'guest memory untouched');
  n.cfgWrite(0x04, 2, 0x0007);
  assert.equal(n.be.sent.length, 1);
});

test('a walk emits at most TX_FRAME_BUDGET frames, then continues from a 0 ms timer', () => {
  const n = makeNic();
  setupTx(n, 16);
  const payload = seqBytes(TX_FRAME_BUDGET * 2 + 10, 2);
  const end = tsoSend(n, payload, 1, 0, 1 << 19);
  n.w32(R.TDT, end);
  assert.equal(n.be.sent.length, TX_FRAME_BUDGET);
  n.clock.runDue();
  n.clock.runDue();
  assert.equal(n.be.sent.length, payload.length);
  assert.equal(n.r32(R.TDH), end);
  checkSegments(n.be.sent.map((s) => s.frame), payload, 1);
});

test('IDE delays TXDW by TIDV (1.024 us units), capped by TADV', () => {
  const n = makeNic();
  setupTx(n, 8);
  n.w32(R.IMS, R.ICR_TXDW);
  n.w32(R.TIDV, 100); // 102.4 us
  n.w32(R.TADV, 150); // 153.6 us
  n.ram.set(seqBytes(64), TX_BUF);
  txDesc(n, 0, TX_BUF, ...legacy(64, EOP_RS | R.TXD_CMD_IDE));
  n.w32(R.TDT, 1);
  assert.equal(n.r32(R.ICS) & R.ICR_TXDW, 0);
  n.clock.advance(0.08);
  txDesc(n, 1, TX_BUF, ...legacy(64, EOP_RS | R.TXD_CMD_IDE));
  n.w32(R.TDT, 2); // re-arms TIDV (to 0.1824 ms) but TADV fires at 0.1536
  n.clock.advance(0.07);
  assert.equal(n.intx(), 0);
  n.clock.advance(0.005);
  assert.equal(n.intx(), 1, 'TADV expired');
});

test('a TXDW waiting for TIDV rides along when the line rises for RXT0, and an ICR read takes it too', () => {
  // A ping: the request's TXDW is delayed (IDE), its reply arrives first. One interrupt
  // must report both, or the delay timer raises a second one a moment later (a whole
  // interrupt's exits under TCG) and wakes the DM for it.
  const n = makeNic();
  setupTx(n, 8);
  setupRx(n);
  n.w32(R.IMS, R.ICR_TXDW | R.ICR_RXT0);
  n.w32(R.TIDV, 8);
  n.w32(R.TADV, 32);
  n.ram.set(seqBytes(64), TX_BUF);
  txDesc(n, 0, TX_BUF, ...legacy(64, EOP_RS | R.TXD_CMD_IDE));
  n.w32(R.TDT, 1);
  assert.equal(n.intx(), 0, 'TXDW delayed');
  const timers = n.clock.pending;
  n.be.inject(ethFrame(MAC, 0x0800, seqBytes(60)));
  assert.equal(n.intx(), 1);
  assert.equal(n.clock.pending, timers - 2, 'TIDV and TADV cancelled: no wake-up left for them');
  assert.equal(n.r32(R.ICR) & ~R.ICR_TXQE, R.ICR_TXDW | R.ICR_RXT0);
  n.clock.advance(1);
  assert.equal(n.intx(), 0, 'no second interrupt for the same descriptor');
  // Without another interrupt, the driver reading ICR (polling, or a shared line) gets it as well.
  txDesc(n, 1, TX_BUF, ...legacy(64, EOP_RS | R.TXD_CMD_IDE));
  n.w32(R.TDT, 2);
  assert.equal(n.r32(R.ICR) & ~R.ICR_TXQE, R.ICR_TXDW);
  n.clock.advance(1);
  assert.equal(n.intx(), 0);
  assert.equal(n.r32(R.ICR), 0);
});

// ---- QEMU TX CVEs ----

test('CVE-2015-6815: zero-length and never-ending descriptors cannot loop (QEMU b947ac2b)', () => {
  const n = makeNic();
  setupTx(n, 64);
  // A TSO packet made only of zero-length data descriptors, no EOP, plus a ring of zero-length legacy ones.
  ctxDesc(n, 0, { ipcss: 14, ipcso: 24, tucss: 34, tucso: 50, hdrLen: 54, mss: 1, tse: true, ip: true, tcp: true });
  for (let i = 1; i < 32; i++) dataDesc(n, i, TX_BUF, 0, R.TXD_CMD_TSE, 3);
  for (let i = 32; i < 64; i++) txDesc(n, i, TX_BUF, ...legacy(0, 0));
  n.w32(R.TDT, 63);
  assert.equal(n.r32(R.TDH), 63);
  assert.equal(n.be.sent.length, 0);
  // TDT behind TDH: the walk goes round once and stops at TDT.
  n.w32(R.TDT, 62);
  assert.equal(n.r32(R.TDH), 62);
});

test('CVE-2016-1981: TDH/TDT outside the ring or a ring of length 0 end the walk (QEMU dd793a74)', () => {
  const n = makeNic();
  setupTx(n, 8); // TDLEN counts in 128-byte units: 8 descriptors is the smallest ring
  for (let i = 0; i < 8; i++) txDesc(n, i, TX_BUF, ...legacy(60, EOP_RS));
  n.w32(R.TDH, 100);
  n.w32(R.TDT, 3);
  assert.equal(n.be.sent.length, 0);
  assert.equal(n.r32(R.TDH), 100);
  n.w32(R.TDH, 0);
  n.w32(R.TDT, 9);
  assert.equal(n.be.sent.length, 0);
  n.w32(R.TDLEN, 0);
  n.w32(R.TDT, 2);
  assert.equal(n.be.sent.length, 0);
  n.w32(R.TDLEN, 64); // not a multiple of 128: reads back 0, still no ring
  assert.equal(n.r32(R.TDLEN), 0);
  n.w32(R.TDT, 2);
  assert.equal(n.be.sent.length, 0);
  n.w32(R.TDLEN, 128);
  n.w32(R.TDT, 2);
  assert.equal(n.be.sent.length, 2);
});

test('CVE-2021-20257: bad TSO contexts drop the packet, the ring still advances (QEMU 3de46e6f)', () => {
  const n = makeNic();
  setupTx(n, 32);
  n.ram.set(seqBytes(4096), TX_BUF);
  const bad = [
    { hdrLen: 0, mss: 0 },
    { hdrLen: 54, mss: 0 },
    { hdrLen: 255, mss: 65535 },
    { hdrLen: 10, mss: 100 }, // TCP header offsets beyond the header
  ];
  let i = 0;
  for (const b of bad) {
    ctxDesc(n, i++, { ipcss: 14, ipcso: 24, tucss: 34, tucso: 50, ...b, tse: true, ip: true, tcp: true });
    dataDesc(n, i++, TX_BUF, 4000, R.TXD_CMD_TSE, 3);
    dataDesc(n, i++, TX_BUF, 0xfffff, R.TXD_CMD_TSE | EOP_RS, 0);
  }
  n.w32(R.TDT, i);
  assert.equal(n.r32(R.TDH), i);
  assert.equal(n.be.sent.length, 0);
  // The reproducer's shape: a TSE data descriptor chained with a legacy one that grows the
  // packet past HDRLEN + MSS, then TSE data again.
  ctxDesc(n, i++, { ipcss: 14, ipcso: 24, tucss: 34, tucso: 50, hdrLen: 54, mss: 100, tse: true, ip: true, tcp: true });
  dataDesc(n, i++, TX_BUF, 200, R.TXD_CMD_TSE, 3); // one 154-byte segment goes out
  txDesc(n, i++, TX_BUF, ...legacy(3000, 0));
  dataDesc(n, i++, TX_BUF, 500, R.TXD_CMD_TSE | EOP_RS, 0);
  n.w32(R.TDT, i);
  assert.equal(n.r32(R.TDH), i);
  assert.equal(n.be.sent.length, 1, 'only the segment completed before the legacy descriptor');
  n.be.sent.length = 0;
  // A good packet right after is unaffected.
  const end = tsoSend(n, seqBytes(3000), 1000, i);
  n.w32(R.TDT, end);
  assert.equal(n.be.sent.length, 3);
});

test('a backend that throws loses the frame, not the guest\'s register write', () => {
  const n = makeNic();
  setupTx(n, 8);
  n.be.send = () => {
    throw new Error('tap gone');
  };
  n.ram.set(seqBytes(64), TX_BUF);
  txDesc(n, 0, TX_BUF, ...legacy(64, EOP_RS));
  assert.doesNotThrow(() => n.w32(R.TDT, 1));
  assert.equal(n.r32(R.TDH), 1);
  assert.ok(dd(n, 0));
});
