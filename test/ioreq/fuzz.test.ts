/**
 * Random ioreqs against random region layouts: whatever Xen (or a hostile
 * guest behind it) sends, the server never throws, always answers (the sim
 * driver throws DmProtocolError otherwise) and never touches memory outside
 * guest RAM (SimMemory refuses and counts). Seeded, bounded, reproducible.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OverlapError } from '../../src/core/bus.ts';
import type { AccessSize, IoHandler } from '../../src/core/io.ts';
import {
  IOREQ_TYPE_COPY,
  IOREQ_TYPE_INVALIDATE,
  IOREQ_TYPE_PCI_CONFIG,
  IOREQ_TYPE_PIO,
  IOREQ_TYPE_TIMEOFFSET,
} from '../../src/ioreq/abi.ts';
import { FifoDevice, MemDevice, prng, setup } from './helpers.ts';

const RAM = 1 << 16;
const OPS = 1500;

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)];
}

/** A device that answers reads with whatever and, rarely, throws (a buggy device must not take the daemon down). */
function flaky(r: () => number): IoHandler {
  return {
    read: (_o: number, size: AccessSize) => {
      if (r() < 0.01) throw new Error('flaky device');
      return Math.floor(r() * 2 ** (8 * size));
    },
    write: () => {
      if (r() < 0.01) throw new Error('flaky device');
    },
  };
}

for (const seed of [1, 2, 3, 0xdecaf]) {
  test(`fuzz seed ${seed}: random ioreqs never throw and are always answered`, () => {
    const r = prng(seed);
    const { sim, server, board } = setup({ ramBytes: RAM, vcpus: 2 });
    // Random layout: up to 12 port regions in 0-0x1ff, up to 12 MMIO regions around 0xa0000 and 0xfe000000.
    for (let i = 0; i < 12; i++) {
      const dev = pick(r, [() => new MemDevice(64), () => new FifoDevice(r() < 0.5), () => flaky(r)])();
      try {
        board.pio.add(`p${i}`, Math.floor(r() * 0x200), 1 + Math.floor(r() * 16), dev);
      } catch (e) {
        assert.ok(e instanceof OverlapError);
      }
      try {
        const base = pick(r, [0xa0000, 0xfe000000, 0x1_0000_0000]);
        board.mmio.add(`m${i}`, base + Math.floor(r() * 0x100), 1 + Math.floor(r() * 64), pick(r, [() => new MemDevice(64), () => flaky(r)])());
      } catch (e) {
        assert.ok(e instanceof OverlapError);
      }
    }
    const cfg = new MemDevice(256);
    board.pci = {
      configRead: (_d, reg, size) => (reg + size <= 256 ? cfg.read(reg, size) : 0xffffffff),
      configWrite: (_d, reg, size, v) => void (reg + size <= 256 && cfg.write(reg, size, v)),
    };
    const anyAddr = (): number | bigint =>
      pick(r, [
        () => Math.floor(r() * 0x220),
        () => 0xa0000 + Math.floor(r() * 0x140),
        () => 0xfe000000 + Math.floor(r() * 0x140),
        () => 0x1_0000_0000 + Math.floor(r() * 0x140),
        () => BigInt.asUintN(64, BigInt(Math.floor(r() * 2 ** 53)) << 11n),
      ])();
    const anyData = (): number | bigint =>
      pick(r, [
        () => Math.floor(r() * RAM), // a pointer into RAM
        () => RAM - Math.floor(r() * 16), // straddling the end
        () => Math.floor(r() * 2 ** 32),
        () => BigInt.asUintN(64, BigInt(Math.floor(r() * 2 ** 53)) << 11n),
      ])();
    let sync = 0;
    for (let i = 0; i < OPS; i++) {
      const k = r();
      if (k < 0.1) {
        const size = pick(r, [1, 2, 4, 8] as const);
        const how = sim.bufferedWrite(Math.floor(r() * 0x100000), size, BigInt(Math.floor(r() * 2 ** 53)), {
          type: pick(r, [IOREQ_TYPE_COPY, IOREQ_TYPE_PIO, IOREQ_TYPE_TIMEOFFSET, 0x55]),
          deliver: r() < 0.7,
        });
        if (how === 'sync') sync++;
        continue;
      }
      if (k < 0.12) {
        sim.raiseVcpu(Math.floor(r() * 2)); // spurious event
        sim.deliver();
        continue;
      }
      sim.request({
        vcpu: Math.floor(r() * 2),
        type: pick(r, [IOREQ_TYPE_PIO, IOREQ_TYPE_PIO, IOREQ_TYPE_COPY, IOREQ_TYPE_COPY, IOREQ_TYPE_PCI_CONFIG, IOREQ_TYPE_INVALIDATE, IOREQ_TYPE_TIMEOFFSET, Math.floor(r() * 256)]),
        dir: r() < 0.5 ? 'read' : 'write',
        addr: anyAddr(),
        data: anyData(),
        size: pick(r, [1, 2, 4, 8, 1, 2, 4, 0, 3, 16, 0xffffffff]),
        count: pick(r, [1, 1, 1, 0, 2, 7, Math.floor(r() * 5000), 0xffffffff]),
        dataIsPtr: r() < 0.3,
        df: r() < 0.2,
      });
      sync++;
    }
    // Let any deferred buffered work finish, then a plain access still works on both vCPUs.
    sim.deliver();
    assert.equal(sim.inb(0x3ff) >= 0, true);
    assert.equal(sim.withVcpu(1, () => sim.inb(0x3ff)) >= 0, true);
    sync += 2;
    assert.equal(server.stats.sync, sync, 'every synchronous request answered exactly once');
    assert.equal(server.stats.badState, 0);
    assert.equal(sim.channel.violations.length, 0);
    // The run really went through every path (else the fuzzer proves nothing).
    const st = server.stats;
    for (const k of ['pio', 'mmio', 'pciConfig', 'invalidate', 'timeoffset', 'unknown', 'buffered', 'repFaults', 'deviceErrors', 'notReady'] as const) {
      assert.ok(st[k] > 0, `fuzz never reached ${k}`);
    }
  });
}
