/**
 * e1000 fuzz: a hostile guest. Random MMIO, I/O-window and config accesses
 * (any offset, size and value, with a bias toward the registers that start
 * DMA), random bytes in the descriptor rings and buffers, random received
 * frames and clock advances. Nothing may throw, hang (each seed has a time
 * budget) or make the device pass bad arguments to guest memory; accesses
 * outside guest RAM are only attempted (and refused), never done.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as R from '../../../src/devices/e1000/regs.ts';
import { prng } from '../../helpers/prng.ts';
import { IO_BASE, MAC, makeNic, MMIO_BASE, RAM, RX_RING, setupRx, setupTx, TX_RING } from './harness.ts';

const SEEDS = 24;
const OPS_PER_SEED = 400;
const TOTAL = SEEDS * OPS_PER_SEED;
/** A whole seed must finish well inside this (a loop would blow it). */
const SEED_BUDGET_MS = 20_000;

const HOT = [
  R.CTRL, R.EECD, R.EERD, R.MDIC, R.ICR, R.ICS, R.IMS, R.IMC, R.ITR, R.RCTL, R.TCTL, R.RDBAL, R.RDBAH, R.RDLEN,
  R.RDH, R.RDT, R.RDTR, R.RADV, R.TDBAL, R.TDBAH, R.TDLEN, R.TDH, R.TDT, R.TIDV, R.TADV, R.VET, R.RA, R.RA + 4,
  R.MTA, R.VFTA, R.STATS + 0x88, R.STATS + 0x8c,
];

test(`fuzz: ${TOTAL} random register/config/I-O accesses over random rings never throw, hang or misuse guest memory`, (t) => {
  let writes = 0;
  let reads = 0;
  let frames = 0;
  let refusedOutside = 0;
  let sent = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const rnd = prng(0xe1000 + seed);
    const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
    const u32 = (): number => (rnd() * 0x100000000) >>> 0;
    const n = makeNic();
    setupTx(n, 8 * int(1, 32));
    setupRx(n, 8 * int(1, 8), R.RCTL_EN | R.RCTL_UPE | R.RCTL_MPE | R.RCTL_BAM | R.RCTL_LPE);
    // Random garbage in the rings and a random buffer area (addresses mostly inside RAM).
    const scribble = (at: number, len: number): void => {
      for (let i = 0; i < len; i += 4) {
        const v = rnd() < 0.5 ? u32() : (int(0, RAM) & ~3) >>> 0;
        n.ram[at + i] = v & 0xff;
        n.ram[at + i + 1] = (v >>> 8) & 0xff;
        n.ram[at + i + 2] = (v >>> 16) & 0xff;
        n.ram[at + i + 3] = rnd() < 0.7 ? 0 : v >>> 24;
      }
    };
    scribble(TX_RING, 4096);
    scribble(RX_RING, 2048);
    const t0 = performance.now();
    for (let k = 0; k < OPS_PER_SEED; k++) {
      const what = int(0, 19);
      const size = ([1, 2, 4] as const)[int(0, 2)];
      try {
        if (what < 7) {
          const off = rnd() < 0.7 ? HOT[int(0, HOT.length - 1)] + (size === 4 ? 0 : int(0, 3) & (4 - size)) : int(0, R.MMIO_SIZE - size);
          let v = size === 4 ? u32() : int(0, size === 1 ? 0xff : 0xffff);
          // Keep ring lengths and heads mostly sane so the walks get somewhere.
          if (off === R.TDLEN || off === R.RDLEN) v = rnd() < 0.8 ? 128 * int(0, 64) : v;
          if ((off === R.TDT || off === R.RDT || off === R.TDH || off === R.RDH) && rnd() < 0.8) v = int(0, 64);
          if ((off === R.TDBAL || off === R.RDBAL) && rnd() < 0.8) v = rnd() < 0.5 ? TX_RING : int(0, RAM);
          if ((off === R.TDBAH || off === R.RDBAH) && rnd() < 0.9) v = 0;
          n.board.mmio.write(MMIO_BASE + off, size, v >>> 0);
          writes++;
        } else if (what < 10) {
          const off = rnd() < 0.7 ? HOT[int(0, HOT.length - 1)] : int(0, R.MMIO_SIZE - size);
          n.board.mmio.read(MMIO_BASE + off, size);
          reads++;
        } else if (what < 12) {
          const off = int(0, 0x3f);
          if (rnd() < 0.5) n.board.pio.write(IO_BASE + (off & ~(size - 1)), size, size === 4 ? (rnd() < 0.5 ? HOT[int(0, HOT.length - 1)] : u32()) : int(0, 0xff));
          else n.board.pio.read(IO_BASE + (off & ~(size - 1)), size);
          writes++;
        } else if (what === 12) {
          // Config space: mostly the command register (bus mastering on and off); BARs stay put.
          const reg = rnd() < 0.8 ? 0x04 : int(0x18, 0xff) & ~(size - 1);
          n.cfgWrite(reg, size, reg === 0x04 ? (rnd() < 0.8 ? 0x0007 : int(0, 0xffff)) : u32());
          writes++;
        } else if (what < 16) {
          const len = rnd() < 0.1 ? int(0, 13) : int(14, rnd() < 0.2 ? 16384 : 1600);
          const f = new Uint8Array(len);
          for (let i = 0; i < len; i++) f[i] = (i * 31 + seed) & 0xff;
          if (len >= 6 && rnd() < 0.5) f.set(MAC);
          if (len >= 14 && rnd() < 0.3) {
            f[12] = 0x81;
            f[13] = 0x00;
          }
          n.be.inject(f);
          frames++;
        } else if (what === 16) {
          if (rnd() < 0.4) scribble(rnd() < 0.5 ? TX_RING : RX_RING, 16 * int(1, 32));
          else {
            // Plausible TX descriptors with random commands, lengths and contexts, then a TDT write.
            const count = int(1, 12);
            let at = int(0, 63);
            for (let i = 0; i < count; i++, at = (at + 1) % 64) {
              const d = TX_RING + 16 * at;
              const w = [int(0, RAM - 1), 0, (int(0, rnd() < 0.1 ? 0xfffff : 3000) | (int(0, 255) << 24) | (rnd() < 0.5 ? R.TXD_DTYP_D : 0)) >>> 0, u32()];
              if (rnd() < 0.6) w[2] = (w[2] | R.TXD_CMD_EOP) >>> 0;
              if (rnd() < 0.3) w[3] = ((int(0, 80) << 8) | (int(0, 3000) << 16)) >>> 0; // a context's hdrLen/MSS
              w.forEach((v, j) => {
                for (let b = 0; b < 4; b++) n.ram[d + 4 * j + b] = (v >>> (8 * b)) & 0xff;
              });
            }
            n.w32(R.TDT, at);
          }
        } else if (what === 17) {
          n.clock.advance([0, 0.01, 0.5, 10, 600][int(0, 4)]);
        } else if (what === 18) {
          n.be.acceptLimit = rnd() < 0.5 ? -1 : int(0, 3);
          if (n.be.acceptLimit === -1) n.be.drain();
        } else {
          n.nic.setLinkUp(rnd() < 0.8);
        }
      } catch (e) {
        assert.fail(`seed ${seed} op ${k}: ${(e as Error).stack}`);
      }
      if (performance.now() - t0 > SEED_BUDGET_MS) assert.fail(`seed ${seed}: over ${SEED_BUDGET_MS} ms by op ${k}`);
    }
    n.clock.advance(1000);
    assert.equal(n.mem.badArgs, 0, `seed ${seed}: guest memory called with bad arguments`);
    refusedOutside += n.mem.outside;
    sent += n.be.sent.length;
    // The device still works: a reset through the I/O window and a clean ring send a frame.
    n.cfgWrite(0x04, 2, 0x0007);
    n.board.pio.write(IO_BASE, 4, R.CTRL);
    n.board.pio.write(IO_BASE + 4, 4, R.CTRL_RST);
    n.be.acceptLimit = -1;
    n.be.drain();
    const before = n.be.sent.length;
    setupTx(n, 8);
    for (let i = 0; i < 16; i++) n.ram[TX_RING + i] = 0;
    n.ram.set([0, 0, 0x10, 0, 0, 0, 0, 0, 60, 0, 0, R.TXD_CMD_EOP >>> 24, 0, 0, 0, 0], TX_RING);
    n.w32(R.TDT, 1);
    assert.equal(n.be.sent.length, before + 1, `seed ${seed}: TX works after the storm`);
  }
  t.diagnostic(`fuzz inputs ${TOTAL}: ${writes} writes, ${reads} reads, ${frames} frames injected, ${sent} frames sent, ${refusedOutside} DMA attempts outside guest RAM refused`);
  assert.equal(writes + reads + frames > TOTAL / 2, true);
});
