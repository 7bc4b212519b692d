/**
 * e1000 saved state: seeded random workloads (TX of every descriptor kind,
 * RX with backpressure, interrupt and mitigation registers, PHY and EEPROM
 * accesses, clock advances) are cut at a random point; the snapshot is
 * restored into a fresh device with a copy of guest RAM, both run the rest
 * of the workload, and every register read, guest memory, the frames sent
 * after the cut and the final snapshots must match. Malformed states are
 * refused without changing the device.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as R from '../../../src/devices/e1000/regs.ts';
import { StateError, type StateObject } from '../../../src/core/device.ts';
import { prng } from '../../helpers/prng.ts';
import { ctxDesc, dataDesc, ethFrame, legacy, MAC, makeNic, seqBytes, setupRx, setupTx, TX_BUF, txDesc, type Nic } from './harness.ts';
import { buildPacket, ETH_HLEN, IP_HLEN, TCP_HLEN } from './packets.ts';

const WORKLOADS = 60;
const TX_RING_N = 32;
const RX_RING_N = 16;
const SLOT = 0x8000; // TX buffer per descriptor slot

type Op = (n: Nic) => void;

/** Free TX descriptors as the driver sees them (one slot stays empty). */
function txFree(n: Nic): number {
  return (n.r32(R.TDH) - n.r32(R.TDT) - 1 + TX_RING_N) % TX_RING_N;
}

function genOps(seed: number, count: number): Op[] {
  const rnd = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const ops: Op[] = [];
  for (let k = 0; k < count; k++) {
    const kind = int(0, 15);
    switch (kind) {
      case 0:
      case 1: {
        // legacy frame over 1-3 descriptors
        const len = int(14, 1600);
        const parts = int(1, 3);
        const rs = rnd() < 0.7;
        const ide = rnd() < 0.3;
        const vle = rnd() < 0.2;
        const fill = int(0, 255);
        ops.push((n) => {
          if (txFree(n) < parts) return;
          let t = n.r32(R.TDT);
          const f = seqBytes(len, fill);
          let off = 0;
          for (let p = 0; p < parts; p++) {
            const chunk = p === parts - 1 ? len - off : Math.floor(len / parts);
            n.ram.set(f.subarray(off, off + chunk), TX_BUF + t * SLOT);
            const cmd = (p === parts - 1 ? R.TXD_CMD_EOP | (rs ? R.TXD_CMD_RS : 0) | (ide ? R.TXD_CMD_IDE : 0) : 0) | (vle ? R.TXD_CMD_VLE : 0);
            txDesc(n, t, TX_BUF + t * SLOT, ...legacy(chunk, cmd, 0, 0, fill * 3));
            off += chunk;
            t = (t + 1) % TX_RING_N;
          }
          n.w32(R.TDT, t);
        });
        break;
      }
      case 2: {
        // checksum offload packet
        const proto = pick([6, 17] as const);
        const plen = int(0, 1400);
        const fill = int(0, 255);
        ops.push((n) => {
          if (txFree(n) < 2) return;
          let t = n.r32(R.TDT);
          const pkt = buildPacket({ proto, payload: seqBytes(plen, fill) });
          const l4 = ETH_HLEN + IP_HLEN;
          ctxDesc(n, t, { ipcss: ETH_HLEN, ipcso: ETH_HLEN + 10, ipcse: l4 - 1, tucss: l4, tucso: l4 + (proto === 6 ? 16 : 6), ip: true, tcp: proto === 6 });
          t = (t + 1) % TX_RING_N;
          n.ram.set(pkt, TX_BUF + t * SLOT);
          dataDesc(n, t, TX_BUF + t * SLOT, pkt.length, R.TXD_CMD_EOP | R.TXD_CMD_RS, R.TXD_POPTS_IXSM | R.TXD_POPTS_TXSM);
          n.w32(R.TDT, (t + 1) % TX_RING_N);
        });
        break;
      }
      case 3: {
        // TSO send: context, header, payload in 1-3 descriptors
        const mss = pick([1, 100, 536, 1448, 8000]);
        const plen = int(1, Math.min(3 * SLOT - 100, mss * 40)); // at most 40 segments: keeps 60 workloads quick
        const parts = int(1, 3);
        ops.push((n) => {
          if (txFree(n) < parts + 2) return;
          let t = n.r32(R.TDT);
          const hdr = ETH_HLEN + IP_HLEN + TCP_HLEN;
          const pkt = buildPacket({ proto: 6, payload: seqBytes(plen, mss & 0xff), l4csum: 'pseudo-nolen', totLen: 'zero' });
          ctxDesc(n, t, { ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, paylen: plen, hdrLen: hdr, mss, tse: true, ip: true, tcp: true });
          t = (t + 1) % TX_RING_N;
          n.ram.set(pkt.subarray(0, hdr), TX_BUF + t * SLOT);
          dataDesc(n, t, TX_BUF + t * SLOT, hdr, R.TXD_CMD_TSE, R.TXD_POPTS_IXSM | R.TXD_POPTS_TXSM);
          t = (t + 1) % TX_RING_N;
          const per = Math.ceil(plen / parts);
          for (let off = 0, p = 0; off < plen; off += per, p++) {
            const len = Math.min(per, plen - off);
            n.ram.set(pkt.subarray(hdr + off, hdr + off + len), TX_BUF + t * SLOT);
            dataDesc(n, t, TX_BUF + t * SLOT, len, R.TXD_CMD_TSE | (off + len >= plen ? R.TXD_CMD_EOP | R.TXD_CMD_RS : 0), 0);
            t = (t + 1) % TX_RING_N;
          }
          n.w32(R.TDT, t);
        });
        break;
      }
      case 4:
      case 5: {
        const len = int(1, 3000);
        const dst = pick([MAC, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [1, 0, 0x5e, 0, 0, 1], [0x52, 0x54, 0, 0, 0, 9]]);
        const vlan = rnd() < 0.2;
        const fill = int(0, 255);
        ops.push((n) => {
          const f = ethFrame(dst, vlan ? 0x8100 : 0x0800, seqBytes(Math.max(0, len - 14), fill));
          n.be.inject(f);
        });
        break;
      }
      case 6: {
        const k = int(1, RX_RING_N - 1);
        ops.push((n) => {
          // The driver hands back up to k processed descriptors (behind RDH), clearing their status.
          const rdh = n.r32(R.RDH);
          let rdt = n.r32(R.RDT);
          for (let i = 0; i < k && (rdt + 1) % RX_RING_N !== rdh; i++) {
            rdt = (rdt + 1) % RX_RING_N;
            n.ram[0x20000 + 16 * rdt + 12] = 0;
          }
          n.w32(R.RDT, rdt);
        });
        break;
      }
      case 7: {
        const reg = pick([R.IMS, R.IMC, R.ITR, R.RDTR, R.RADV, R.TIDV, R.TADV, R.ICS, R.ICR]);
        const v = reg === R.ITR || reg === R.RDTR || reg === R.RADV || reg === R.TIDV || reg === R.TADV ? int(0, 400) | (reg === R.RDTR && rnd() < 0.2 ? R.RDTR_FPD : 0) : int(0, 0x1ffff);
        ops.push((n) => n.w32(reg, v));
        break;
      }
      case 8: {
        const rctl = R.RCTL_EN | pick([0, R.RCTL_BAM, R.RCTL_LPE | R.RCTL_BAM, R.RCTL_UPE, R.RCTL_MPE | R.RCTL_SECRC, R.RCTL_LPE | R.RCTL_BSEX | (3 << 16)]);
        const vme = rnd() < 0.3;
        ops.push((n) => {
          n.w32(R.RCTL, rctl);
          n.w32(R.CTRL, vme ? n.r32(R.CTRL) | R.CTRL_VME : n.r32(R.CTRL) & ~R.CTRL_VME);
        });
        break;
      }
      case 9: {
        const reg = pick([R.ICR, R.STATS + R.ST_TPT * 4, R.STATS + R.ST_GORCL * 4 + 4, R.EERD, R.MDIC, R.STATUS]);
        ops.push((n) => void n.r32(reg));
        break;
      }
      case 10:
      case 11: {
        const ms = pick([0, 0.005, 0.05, 0.3, 2, 600]);
        ops.push((n) => void n.clock.advance(ms));
        break;
      }
      case 12: {
        const restart = rnd() < 0.4;
        const reg = int(0, 21);
        ops.push((n) => {
          if (restart) n.w32(R.MDIC, (0 << 16) | (1 << 21) | R.MDIC_OP_WRITE | 0x1340);
          else n.w32(R.MDIC, (reg << 16) | (1 << 21) | R.MDIC_OP_READ);
        });
        break;
      }
      case 13: {
        const bits = Array.from({ length: int(1, 12) }, () => int(0, 7));
        ops.push((n) => {
          for (const b of bits) n.w32(R.EECD, b | R.EECD_REQ);
        });
        const addr = int(0, 63);
        ops.push((n) => n.w32(R.EERD, R.EERD_START | (addr << 8)));
        break;
      }
      case 14: {
        const lim = int(0, 6);
        ops.push((n) => void (n.be.acceptLimit = lim));
        break;
      }
      default:
        ops.push((n) => {
          n.be.acceptLimit = -1;
          n.be.drain();
        });
    }
  }
  return ops;
}

function setup(n: Nic): void {
  setupTx(n, TX_RING_N);
  setupRx(n, RX_RING_N, R.RCTL_EN | R.RCTL_BAM);
  n.w32(R.IMS, R.ICR_VALID);
}

/** Every register of the table read through MMIO, in order (reads with side effects included). */
const READ_ORDER = [
  R.CTRL, R.STATUS, R.EECD, R.EERD, R.CTRL_EXT, R.MDIC, R.VET, R.ICS, R.ITR, R.IMS, R.RCTL, R.TCTL, R.PBA,
  R.RDBAL, R.RDLEN, R.RDH, R.RDT, R.RDTR, R.RADV, R.TDBAL, R.TDLEN, R.TDH, R.TDT, R.TIDV, R.TADV, R.RXCSUM, R.ICR,
  ...Array.from({ length: R.STATS_COUNT }, (_, i) => R.STATS + 4 * i),
  ...Array.from({ length: 32 }, (_, i) => R.RA + 4 * i),
  ...Array.from({ length: 128 }, (_, i) => R.MTA + 4 * i),
  ...Array.from({ length: 128 }, (_, i) => R.VFTA + 4 * i),
];

function readAll(n: Nic): number[] {
  const out = READ_ORDER.map((off) => n.r32(off));
  for (let reg = 0; reg < 22; reg++) {
    n.w32(R.MDIC, (reg << 16) | (1 << 21) | R.MDIC_OP_READ);
    out.push(n.r32(R.MDIC));
  }
  out.push(n.intx());
  return out;
}

test(`snapshot/restore mid-workload: ${WORKLOADS} seeded random workloads behave identically after the cut`, (t) => {
  let cutsWithTimers = 0;
  let framesCompared = 0;
  let compared = 0;
  let skipped = 0;
  for (let seed = 1; seed <= WORKLOADS; seed++) {
    const ops = genOps(seed, 120);
    // End every workload with the driver catching up, so a quiet cut point exists.
    ops.push((n) => {
      n.be.acceptLimit = -1;
      n.be.drain();
    });
    ops.push((n) => n.w32(R.RDT, (n.r32(R.RDH) + RX_RING_N - 1) % RX_RING_N));
    const rnd = prng(seed * 7919);
    const a = makeNic();
    setup(a);
    let cut = Math.floor(rnd() * ops.length);
    let i = 0;
    for (; i < ops.length; i++) {
      if (i >= cut && !a.be.full && a.be.queued === 0 && a.nic.tx.pendingLen < 0) break;
      ops[i](a);
    }
    if (i === ops.length) {
      skipped++;
      continue;
    }
    cut = i;
    const state = a.nic.snapshot();
    if (Object.values(state.timers as StateObject).some((v) => v !== null)) cutsWithTimers++;
    const sentBefore = a.be.sent.length;
    const b = makeNic();
    b.ram.set(a.ram);
    b.nic.restore(structuredClone(state));
    b.bus.refresh();
    b.nic.resume();
    b.be.acceptLimit = a.be.acceptLimit;
    for (let j = cut; j < ops.length; j++) {
      ops[j](a);
      ops[j](b);
    }
    a.clock.advance(1000);
    b.clock.advance(1000);
    const ra = readAll(a);
    const rb = readAll(b);
    assert.deepEqual(rb, ra, `seed ${seed}: register reads after the cut at op ${cut}`);
    assert.ok(Buffer.compare(Buffer.from(a.ram), Buffer.from(b.ram)) === 0, `seed ${seed}: guest memory`);
    const fa = a.be.sent.slice(sentBefore).map((s) => Buffer.from(s.frame).toString('hex'));
    const fb = b.be.sent.map((s) => Buffer.from(s.frame).toString('hex'));
    assert.deepEqual(fb, fa, `seed ${seed}: frames sent after the cut`);
    framesCompared += fa.length;
    assert.deepEqual(b.nic.snapshot(), a.nic.snapshot(), `seed ${seed}: final state`);
    compared++;
  }
  t.diagnostic(`workloads compared ${compared}, skipped (no quiet cut) ${skipped}, cuts with timers pending ${cutsWithTimers}, frames compared ${framesCompared}`);
  assert.ok(compared >= 50, `${compared} workloads compared`);
  assert.ok(cutsWithTimers > 0, 'some cuts had timers pending');
  assert.ok(framesCompared > 100, `frames compared: ${framesCompared}`);
});

test('a snapshot taken while the backend refuses a TSO segment resends it after restore', () => {
  const a = makeNic();
  setup(a);
  const plen = 10000;
  const pkt = buildPacket({ proto: 6, payload: seqBytes(plen), l4csum: 'pseudo-nolen', totLen: 'zero' });
  a.ram.set(pkt, TX_BUF);
  ctxDesc(a, 0, { ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, paylen: plen, hdrLen: 54, mss: 1000, tse: true, ip: true, tcp: true });
  dataDesc(a, 1, TX_BUF, 54, R.TXD_CMD_TSE, 3);
  dataDesc(a, 2, TX_BUF + 54, plen, R.TXD_CMD_TSE | R.TXD_CMD_EOP | R.TXD_CMD_RS, 0);
  a.be.acceptLimit = 4;
  a.w32(R.TDT, 3);
  assert.equal(a.be.sent.length, 4);
  assert.ok(a.nic.tx.pendingLen > 0, 'a prepared segment waits');
  const state = a.nic.snapshot();
  const b = makeNic();
  b.cfgWrite(0x04, 2, 0x0003); // the fresh machine's command register differs: refresh() will change it
  b.ram.set(a.ram);
  b.nic.restore(state);
  b.bus.refresh();
  assert.equal(b.cfgRead(0x04, 2) & 4, 4, 'bus mastering restored');
  assert.equal(b.be.sent.length, 0, 'neither restore() nor refresh() sends anything');
  b.nic.resume(); // the restored device offers the refused frame to its new backend
  a.be.acceptLimit = -1;
  a.be.drain();
  assert.equal(b.be.sent.length, 6);
  assert.deepEqual(
    b.be.sent.map((s) => Buffer.from(s.frame).toString('hex')),
    a.be.sent.slice(4).map((s) => Buffer.from(s.frame).toString('hex')),
  );
  assert.equal(b.r32(R.TDH), 3);
});

test('malformed saved state is refused with StateError naming the field, and the device is unchanged', () => {
  const n = makeNic();
  setup(n);
  for (const op of genOps(99, 60)) op(n);
  const good = n.nic.snapshot();
  const before = structuredClone(good);
  const mutate = (f: (s: Record<string, any>) => void): StateObject => {
    const s = structuredClone(good) as Record<string, any>;
    f(s);
    return s as StateObject;
  };
  const cases: [string, StateObject][] = [
    ['config of another device', mutate((s) => (s.config[2] = 0x0f))],
    ['regs too short', mutate((s) => (s.regs = s.regs.slice(4)))],
    ['RDLEN with bits below 128', mutate((s) => (s.regs = withSlot(s.regs, slotOf(R.RDLEN), 0x12345)))],
    ['TDH above 16 bits', mutate((s) => (s.regs = withSlot(s.regs, slotOf(R.TDH), 0x10000)))],
    ['eeprom short', mutate((s) => s.eeprom.pop())],
    ['phy word too big', mutate((s) => (s.phy[3] = 0x10000))],
    ['microwire bitsIn', mutate((s) => (s.microwire.bitsIn = 10))],
    ['microwire latched bits', mutate((s) => (s.microwire.latched = 0x8))],
    ['tx size beyond 64 KiB', mutate((s) => (s.tx.size = 0x10001))],
    ['tx data not matching size', mutate((s) => (s.tx.size = s.tx.size + 1))],
    ['tx phase', mutate((s) => (s.tx.phase = 9))],
    ['tx pending frame outside the data', mutate((s) => (s.tx.pendingLen = 70000))],
    ['tx context hdrLen', mutate((s) => (s.tx.tso.hdrLen = 256))],
    ['timer negative', mutate((s) => (s.timers.autoneg = -1))],
    ['timer not a number', mutate((s) => (s.timers.itr = 'soon'))],
    ['irq not boolean', mutate((s) => (s.irq = 1))],
    ['missing field', mutate((s) => delete s.cable)],
    ['ioAddr', mutate((s) => (s.ioAddr = -4))],
  ];
  const regsBefore = readAllQuiet(n);
  for (const [name, bad] of cases) {
    assert.throws(() => n.nic.restore(bad), StateError, name);
    assert.deepEqual(n.nic.snapshot(), before, `${name}: device unchanged`);
  }
  assert.deepEqual(readAllQuiet(n), regsBefore);
  n.nic.restore(good); // and the good one still loads
});

/** Registers without read side effects. */
function readAllQuiet(n: Nic): number[] {
  return [R.CTRL, R.STATUS, R.IMS, R.RCTL, R.TCTL, R.RDH, R.RDT, R.TDH, R.TDT, R.RDLEN, R.TDLEN, R.ICS].map((o) => n.r32(o));
}

function slotOf(off: number): number {
  // Find the storage slot of a register by writing a marker through MMIO on a scratch device.
  const probe = makeNic();
  const regs = probe.nic.regs;
  const before = Array.from(regs);
  probe.w32(off, 0x80);
  const i = Array.from(regs).findIndex((v, k) => v !== before[k]);
  if (i < 0) throw new Error(`no slot for 0x${off.toString(16)}`);
  return i;
}

function withSlot(regs: Uint8Array, slot: number, v: number): Uint8Array {
  const out = regs.slice();
  new DataView(out.buffer).setUint32(slot * 4, v >>> 0, true);
  return out;
}

test('the ROM BAR round-trips: base and enable come back, and refresh() decodes it again', () => {
  const rom = Uint8Array.from([0x55, 0xaa, 0x08, ...new Array(4093).fill(0x5a)]); // 4 KiB
  const a = makeNic({ rom });
  a.cfgWrite(0x30, 4, 0xfebf0000 | 1);
  assert.equal(a.board.mmio.read(0xfebf0000, 2), 0xaa55);
  const b = makeNic({ rom });
  b.nic.restore(structuredClone(a.nic.snapshot()));
  assert.equal(b.board.mmio.read(0xfebf0000, 2), 0xffff, 'restore() maps nothing by itself');
  b.bus.refresh();
  assert.equal(b.cfgRead(0x30, 4), (0xfebf0000 | 1) >>> 0);
  assert.ok(b.host.ranges.has('mmio:0xfebf0000-0xfebf0fff'), 'the ROM is claimed again after refresh()');
  assert.equal(b.board.mmio.read(0xfebf0000 + 2, 1), 0x08);
  // A machine without the ROM (or with another size) cannot take that state.
  const c = makeNic();
  assert.throws(() => c.nic.restore(structuredClone(a.nic.snapshot())), StateError);
});
