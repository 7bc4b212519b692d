/**
 * Snapshot/restore of the chipset devices (src/core/device.ts contract).
 *
 * Round trip in the middle of a run: a seeded random workload of guest
 * accesses (config mechanism #1, PCI_CONFIG, and the functions' own ports)
 * runs on platform A; at a random step every device of A is snapshotted
 * (structuredClone: plain data only), restored into a platform B freshly
 * built on a fresh board, and B.refresh() claims what the config decides.
 * Then both run the rest of the workload and must agree on every read, the
 * claimed port/MMIO regions, what reached the "hypervisor" after the
 * snapshot (shutdowns, unplugs, link routes, INTx, guest log lines) and the
 * final snapshots.
 *
 * BAR and PMBA values come from pools that do not overlap each other: when
 * a guest programs two BARs (or a BAR and PMBA) onto the same ports, which
 * one decodes depends on the order it programmed them, and no snapshot keeps
 * that order (refresh() maps in devfn order). Everything else is random.
 *
 * Refused states: wrong types, out-of-range values, another function's
 * config, another bus layout and newer versions throw StateError and leave
 * the device exactly as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Board } from '../../src/core/board.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { restoreDevice, type Device, type StateObject } from '../../src/core/device.ts';
import type { AccessSize } from '../../src/core/io.ts';
import { StateError } from '../../src/core/state.ts';
import type { PciIdeHost } from '../../src/pci/piix-ide.ts';
import { installPcPlatform, type PcPlatform } from '../../src/pci/platform.ts';
import { captureLogger, prng } from '../ioreq/helpers.ts';
import { Cf8, testBoard, type HostRecord } from '../helpers/board.ts';

const WORKLOADS = 50;

interface Rig {
  board: Board;
  host: HostRecord;
  pc: PcPlatform;
  cf8: Cf8;
  clock: VirtualClock;
  /** Every value a read in the workload returned, in order. */
  trace: number[];
  unplugs: number[];
  busMaster: boolean[];
  /** Completed PV driver log lines that were logged. */
  guestLog: () => string[];
}

function build(): Rig {
  const { board, host, clock } = testBoard();
  const { log, lines } = captureLogger();
  const unplugs: number[] = [];
  const busMaster: boolean[] = [];
  const port = (base: number) => ({ read: (off: number) => (base + off) & 0xff, write: () => {} });
  const ide: PciIdeHost = {
    bmdmaHandler: port(0x40),
    channels: [
      { cmd: port(0x10), ctl: port(0x20) },
      { cmd: port(0x30), ctl: port(0x38) },
    ],
    setBusMaster: (on) => void busMaster.push(on),
  };
  const pc = installPcPlatform(board, {
    ide,
    onUnplug: (m) => void unplugs.push(m),
    ramBytes: 256 << 20,
    com1: true,
    log,
  });
  const guestLog = () => lines.filter((l) => l.msg === 'guest PV driver log').map((l) => String(l.guest));
  return { board, host, pc, cf8: new Cf8(board), clock, trace: [], unplugs, busMaster, guestLog };
}

type Op = (r: Rig) => void;
type Focus = 'bus' | 'i440fx' | 'piix3' | 'piix-ide' | 'piix4-pm' | 'xen-platform';

const SIZES: AccessSize[] = [1, 2, 4];
const IDE_BM = [0xc000, 0xc010, 0xc020];
const XEN_IO = [0xc100, 0xc200];
const XEN_MEM = [0xf0000000, 0xf1000000, 0xf2000000];
const PMBA = [0xb000, 0xb040, 0xb080];

/** Random guest operations, generated once per seed and run on both rigs alike. */
function workload(seed: number, focus: Focus, n: number): Op[] {
  const rnd = prng(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const u32 = () => Math.floor(rnd() * 2 ** 32);
  const size = () => pick(SIZES);
  const mask = (v: number, s: AccessSize) => (s === 4 ? v >>> 0 : v & ((1 << (8 * s)) - 1));
  /** Pooled value, not programmed (0), or the sizing pattern. */
  const barValue = (pool: readonly number[]) => (int(4) === 0 ? 0 : int(4) === 0 ? 0xffffffff : pick(pool));

  const cfgRead = (dev: number, fn: number, reg: number, s: AccessSize): Op => (r) => void r.trace.push(r.cf8.read(dev, fn, reg, s));
  const cfgWrite = (dev: number, fn: number, reg: number, s: AccessSize, v: number): Op => (r) =>
    r.cf8.write(dev, fn, reg, s, mask(v, s));
  const pioRead = (port: number, s: AccessSize): Op => (r) => void r.trace.push(r.board.pio.read(port, s));
  const pioWrite = (port: number, s: AccessSize, v: number): Op => (r) => r.board.pio.write(port, s, mask(v, s));
  /** A config write at a random offset outside the BAR/ROM (and PMBA) registers, which the pools cover. */
  const anyReg = (avoidPmba: boolean): number => {
    for (;;) {
      const reg = int(256);
      if (reg >= 0x10 && reg < 0x28) continue;
      if (reg >= 0x30 && reg < 0x34) continue;
      if (avoidPmba && reg >= 0x40 && reg < 0x44) continue;
      return reg;
    }
  };
  const randomCfgWrite = (dev: number, fn: number, avoidPmba = false): Op => {
    const s = size();
    let reg = anyReg(avoidPmba);
    reg -= reg % s;
    if ((reg < 0x30 && reg + s > 0x10) || (reg < 0x34 && reg + s > 0x30) || (avoidPmba && reg < 0x44 && reg + s > 0x40)) {
      return cfgRead(dev, fn, reg, s);
    }
    return cfgWrite(dev, fn, reg, s, u32());
  };
  const command = (dev: number, fn: number): Op => cfgWrite(dev, fn, 0x04, 2, int(0x800));

  const groups: Record<Focus, () => Op> = {
    bus: () => {
      switch (int(7)) {
        case 0:
          return pioWrite(0xcf8, 4, int(2) ? (0x80000000 | (int(32) << 11) | (int(8) << 8) | (int(64) << 2)) >>> 0 : u32());
        case 1:
          return pioRead(0xcf8, pick(SIZES));
        case 2: {
          const s = size();
          return pioRead(0xcfc + int(5 - s), s);
        }
        case 3: {
          // The PCI_CONFIG door (Xen decodes CF8/CFC itself), absent devfns too.
          const devfn = pick([0, 8, 9, 11, 16, 24, 255]);
          const s = size();
          const reg = int(264);
          return (r) => void r.trace.push(r.board.pci.configRead(devfn, reg, s));
        }
        case 4: {
          const devfn = pick([0, 8, 9, 11, 16]);
          return command(devfn >> 3, devfn & 7);
        }
        case 5:
          return cfgRead(int(4), int(8), int(64) * 4, 4);
        default: {
          const devfn = pick([0, 8, 9, 11, 16]);
          return (r) => void r.trace.push(r.board.pci.configRead(devfn, 0x04, 4));
        }
      }
    },
    i440fx: () => {
      switch (int(6)) {
        case 0:
          return cfgWrite(0, 0, 0x59 + int(7), 1, int(256)); // PAM
        case 1:
          return cfgWrite(0, 0, 0x72, 1, pick([0x0a, 0x4a, 0x1a, 0x5a, int(256)])); // SMRAM, incl. D_LCK
        case 2:
          return cfgWrite(0, 0, pick([0x06, 0x91]), 1, 0xff); // write-1-to-clear
        case 3:
          return randomCfgWrite(0, 0);
        default:
          return cfgRead(0, 0, int(256), 1);
      }
    },
    piix3: () => {
      switch (int(8)) {
        case 0:
          return cfgWrite(1, 0, 0x60 + int(4), 1, pick([0x80, 0x05, 0x0a, 0x0b, 0x0e, int(256)])); // PIRQRC
        case 1:
          return cfgWrite(1, 0, 0x60, 4, u32());
        case 2:
          return randomCfgWrite(1, 0);
        case 3:
          return pioWrite(0xcf9, 1, pick([0x00, 0x02, 0x04, 0x06, int(256)])); // RCR (RCPU: reset)
        case 4:
          return pioRead(0xcf9, 1);
        case 5:
          return pioWrite(0x92, 1, pick([0, 1, 2, 3, int(256)])); // fast reset on 0->1
        case 6:
          return pioRead(0x92, 1);
        default:
          return cfgRead(1, 0, 0x60, 4);
      }
    },
    'piix-ide': () => {
      switch (int(6)) {
        case 0:
          return cfgWrite(1, 1, 0x20, 4, barValue(IDE_BM) | 1);
        case 1:
          return command(1, 1);
        case 2:
          return cfgWrite(1, 1, 0x40 + 2 * int(3), 2, int(0x10000)); // IDETIM/SIDETIM
        case 3:
          return randomCfgWrite(1, 1);
        case 4:
          return pioRead(pick(IDE_BM) + int(16), 1);
        default:
          return pioRead(pick([0x1f0, 0x170, 0x3f6, 0x376]), 1);
      }
    },
    'piix4-pm': () => {
      const pm1 = pick(PMBA) + 4;
      switch (int(12)) {
        case 0:
          return cfgWrite(1, 3, 0x40, 4, barValue(PMBA) | 1);
        case 1:
          return cfgWrite(1, 3, 0x80, 1, int(4)); // PMREGMISC
        case 2:
          return randomCfgWrite(1, 3, true);
        case 3:
          // PM1a_CNT: SLP_EN with SLP_TYP 0 powers off, SLP_TYP 1 is refused.
          return int(2) ? pioWrite(pm1, 2, pick([0x0001, 0x2000, 0x2401, int(0x10000)])) : pioWrite(pm1 + int(2), 1, int(256));
        case 4:
          return pioRead(pm1 + int(2), pick([1, 2] as AccessSize[]));
        case 5:
          return pioWrite(0xb2, 1, pick([0xf0, 0xf1, int(256)])); // APM: ACPI enable/disable
        case 6:
          return int(2) ? pioWrite(0xb3, 1, int(256)) : pioWrite(0xb2, 2, int(0x10000));
        case 7:
          return pioRead(0xb2 + int(2), int(2) ? 1 : 2);
        case 8: {
          const s = size();
          return pioWrite(0xafe0 + int(5 - s), s, u32()); // GPE0: status W1C, enable r/w
        }
        case 9: {
          const s = size();
          return pioRead(0xafe0 + int(5 - s), s);
        }
        case 10: {
          const bits = int(0x10000); // an event source raising GPE status bits
          return (r) => void (r.pc.pm.gpeSts |= bits);
        }
        default:
          return cfgRead(1, 3, 0x40, 4);
      }
    },
    'xen-platform': () => {
      switch (int(14)) {
        case 0:
          return cfgWrite(2, 0, 0x10, 4, barValue(XEN_IO) | 1);
        case 1:
          return cfgWrite(2, 0, 0x14, 4, barValue(XEN_MEM));
        case 2:
          return command(2, 0);
        case 3:
          return randomCfgWrite(2, 0);
        case 4:
        case 5:
          // A log byte: a line is often half written when the snapshot is taken.
          return pioWrite(0x12, 1, int(10) === 0 ? 0x0a : 0x41 + int(26));
        case 6:
          return pioWrite(pick(XEN_IO) + 8, 1, int(10) === 0 ? 0x0a : 0x61 + int(26));
        case 7:
          return pioWrite(0x10, 2, int(16)); // unplug
        case 8:
          return int(2) ? pioWrite(0x10, 4, u32()) : pioWrite(0x12, 2, int(0x10000)); // build / product
        case 9:
          return pioWrite(int(2) ? 0x10 : pick(XEN_IO), 1, int(4)); // platform flags
        case 10: {
          const s = size();
          return pioRead(0x10 + int(17 - s), s);
        }
        case 11: {
          const s = size();
          return pioRead(pick(XEN_IO) + int(0x101 - s), s);
        }
        case 12: {
          const addr = pick(XEN_MEM) + int(0x1000) * 4;
          return (r) => void r.trace.push(r.board.mmio.read(addr, 4));
        }
        default: {
          const s = size();
          return pioWrite(0x10 + int(17 - s), s, u32()); // anything else: ignored
        }
      }
    },
  };
  const all = Object.values(groups);
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    if (int(20) === 0) {
      const ms = int(6000);
      ops.push((r) => void r.clock.advance(ms));
    } else ops.push(int(10) < 6 ? groups[focus]() : pick(all)());
  }
  return ops;
}

function regions(r: Rig): string[] {
  const list = (b: Board['pio']) => b.list().map((x) => `${b.kind} ${x.name} 0x${x.start.toString(16)}+0x${x.length.toString(16)}`);
  return [...list(r.board.pio), ...list(r.board.mmio)];
}

function snapshotAll(r: Rig): StateObject[] {
  return r.pc.devices.map((d) => structuredClone(d.snapshot()));
}

/** What the "hypervisor" currently has: last route per link and INTx level per pin (0 if never set). */
function effective(r: Rig): { routes: number[]; intx: [string, number][] } {
  const routes = [0, 0, 0, 0];
  for (const [link, irq] of r.host.linkRoutes) routes[link] = irq;
  const intx = [...r.host.intx].filter(([, v]) => v !== 0).sort();
  return { routes, intx };
}

function roundTrip(seed: number, focus: Focus): void {
  const rnd = prng(seed ^ 0x5eed);
  const n = 120 + Math.floor(rnd() * 180);
  const cut = Math.floor(rnd() * (n + 1));
  const ops = workload(seed, focus, n);
  const a = build();
  for (let i = 0; i < cut; i++) ops[i](a);

  const saved = snapshotAll(a);
  const at = {
    trace: a.trace.length,
    shutdowns: a.host.shutdowns.length,
    unplugs: a.unplugs.length,
    log: a.guestLog().length,
  };
  const b = build();
  b.pc.devices.forEach((d, i) => restoreDevice(d, d.stateVersion, saved[i]));
  b.pc.refresh();
  const where = `seed ${seed} (${focus}), snapshot after ${cut} of ${n} ops`;
  assert.deepEqual(regions(b), regions(a), `${where}: regions right after restore`);
  assert.deepEqual([...b.host.ranges].sort(), [...a.host.ranges].sort(), `${where}: claims right after restore`);
  assert.deepEqual(snapshotAll(b), saved, `${where}: restored state snapshots the same`);

  for (let i = cut; i < n; i++) {
    ops[i](a);
    ops[i](b);
  }
  assert.deepEqual(b.trace, a.trace.slice(at.trace), `${where}: every read after the snapshot`);
  assert.deepEqual(regions(b), regions(a), `${where}: regions at the end`);
  assert.deepEqual([...b.host.ranges].sort(), [...a.host.ranges].sort(), `${where}: claims at the end`);
  assert.deepEqual(b.host.shutdowns, a.host.shutdowns.slice(at.shutdowns), `${where}: shutdown requests`);
  assert.deepEqual(b.unplugs, a.unplugs.slice(at.unplugs), `${where}: unplug requests`);
  assert.deepEqual(b.guestLog(), a.guestLog().slice(at.log), `${where}: guest log lines (a half line continues)`);
  assert.deepEqual(effective(b), effective(a), `${where}: link routes and INTx levels`);
  assert.equal(b.busMaster.at(-1) ?? false, a.busMaster.at(-1) ?? false, `${where}: IDE bus mastering`);
  for (const devfn of [0, 8, 9, 11, 16]) {
    for (let reg = 0; reg < 256; reg += 4) {
      assert.equal(b.board.pci.configRead(devfn, reg, 4), a.board.pci.configRead(devfn, reg, 4), `${where}: config ${devfn}:${reg}`);
    }
  }
  assert.deepEqual(snapshotAll(b), snapshotAll(a), `${where}: final snapshots`);
}

const FOCUS: [Focus, string][] = [
  ['bus', 'pci.bus'],
  ['i440fx', 'pci.i440fx'],
  ['piix3', 'pci.piix3'],
  ['piix-ide', 'pci.piix-ide'],
  ['piix4-pm', 'pci.piix4-pm'],
  ['xen-platform', 'pci.xen-platform'],
];

for (const [focus, id] of FOCUS) {
  test(`${id}: snapshot mid-run, restore into a fresh platform + refresh(), both continue alike (${WORKLOADS} seeded workloads)`, () => {
    const ids = build().pc.devices.map((d) => d.id);
    assert.ok(ids.includes(id), `${id} is among the platform's devices`);
    for (let w = 0; w < WORKLOADS; w++) roundTrip(0x9e3779b1 * (w + 1) + focus.length * 7919, focus);
  });
}

test('devices: ids, versions and a stable order; snapshots are plain data with the config as 256 bytes', () => {
  const r = build();
  assert.deepEqual(
    r.pc.devices.map((d) => d.id),
    ['pci.bus', 'pci.i440fx', 'pci.piix3', 'pci.piix-ide', 'pci.piix4-pm', 'pci.xen-platform'],
  );
  for (const d of r.pc.devices) assert.equal(d.stateVersion, 1);
  const [bus, i440fx, piix3, ide, pm, xen] = r.pc.devices.map((d) => d.snapshot());
  assert.deepEqual(bus, { confAddr: 0, present: [0x00, 0x08, 0x09, 0x0b, 0x10] });
  for (const s of [i440fx, piix3, ide, pm, xen]) assert.ok(s.config instanceof Uint8Array && s.config.length === 256);
  assert.deepEqual(Object.keys(piix3).sort(), ['config', 'port92', 'rcr']);
  assert.deepEqual(Object.keys(pm).sort(), ['apmCnt', 'apmSts', 'config', 'gpeEn', 'gpeSts', 'pm1Cnt']);
  assert.deepEqual(Object.keys(xen).sort(), ['buildNumber', 'config', 'flags', 'logLine', 'productNumber', 'unplugged']);
  r.board.pio.write(0x10, 2, 0x0003);
  r.board.pio.write(0x10, 2, 0x0008);
  r.board.pio.write(0x12, 1, 0x68);
  const s = r.pc.xenPlatform!.snapshot();
  assert.equal(s.unplugged, 0x0b, 'unplugged: the OR of every mask, a top-level integer');
  assert.deepEqual(s.logLine, new Uint8Array([0x68]));
  const noXen = installPcPlatform(testBoard().board, { xenPlatform: false, log: captureLogger().log });
  assert.deepEqual(
    noXen.devices.map((d) => d.id),
    ['pci.bus', 'pci.i440fx', 'pci.piix3', 'pci.piix-ide', 'pci.piix4-pm'],
  );
});

test('restore() does not touch the board: regions move only in refresh()', () => {
  const a = build();
  a.cf8.write(1, 3, 0x40, 4, 0xb041);
  a.cf8.write(1, 3, 0x80, 1, 1);
  a.cf8.write(2, 0, 0x10, 4, 0xc101);
  a.cf8.write(2, 0, 0x04, 2, 1);
  const saved = snapshotAll(a);
  const b = build();
  const before = regions(b);
  const log = b.host.rangeLog.length;
  b.pc.devices.forEach((d, i) => d.restore(saved[i]));
  assert.deepEqual(regions(b), before);
  assert.equal(b.host.rangeLog.length, log, 'nothing claimed or released by restore()');
  b.pc.refresh();
  assert.ok(b.host.ranges.has('pio:0xb044-0xb045'), 'PM1a_CNT at the restored PMBA');
  assert.ok(b.host.ranges.has('pio:0xc100-0xc1ff'), 'Xen platform BAR0');
  assert.deepEqual(regions(b), regions(a));
});

/** A rig whose every device holds state different from a fresh one. */
function busy(): Rig {
  const r = build();
  r.cf8.write(0, 0, 0x59, 1, 0x30); // PAM0
  r.cf8.write(0, 0, 0x72, 1, 0x4a); // SMRAM open
  r.cf8.write(1, 0, 0x60, 4, 0x0b0a0580); // PIRQ routes
  r.board.pio.write(0xcf9, 1, 0x02);
  r.board.pio.write(0x92, 1, 0x02);
  r.cf8.write(1, 1, 0x20, 4, 0xc001);
  r.cf8.write(1, 1, 0x04, 2, 0x0005);
  r.cf8.write(1, 3, 0x40, 4, 0xb001);
  r.cf8.write(1, 3, 0x80, 1, 1);
  r.board.pio.write(0xb2, 1, 0xf1);
  r.board.pio.write(0xb3, 1, 0x5a);
  r.board.pio.write(0xafe2, 2, 0x0101);
  r.pc.pm.gpeSts = 0x0003;
  r.cf8.write(2, 0, 0x10, 4, 0xc101);
  r.cf8.write(2, 0, 0x04, 2, 0x0001);
  r.board.pio.write(0x12, 2, 3);
  r.board.pio.write(0x10, 4, 0x1234);
  r.board.pio.write(0x10, 1, 1);
  r.board.pio.write(0x10, 2, 1);
  for (const c of 'half a line') r.board.pio.write(0x12, 1, c.charCodeAt(0));
  r.board.pio.write(0xcf8, 4, 0x80000840);
  return r;
}

/** Copy of a valid state with some fields replaced. */
function with_(s: StateObject, patch: Record<string, unknown>): StateObject {
  return { ...structuredClone(s), ...patch } as StateObject;
}

function refused(target: Rig, dev: Device, bad: StateObject, why: string): void {
  const before = structuredClone(dev.snapshot());
  const claims = [...target.host.ranges].sort();
  assert.throws(
    () => dev.restore(bad),
    (e) => e instanceof StateError,
    `${dev.id}: ${why} must be refused with StateError`,
  );
  assert.deepEqual(dev.snapshot(), before, `${dev.id}: ${why}: device unchanged`);
  assert.deepEqual([...target.host.ranges].sort(), claims, `${dev.id}: ${why}: claims unchanged`);
}

test('malformed state is refused with StateError and leaves every device unchanged', () => {
  const src = busy();
  const good = snapshotAll(src);
  const t = build();
  const fresh = snapshotAll(t);
  const devs = t.pc.devices;
  devs.forEach((d, i) => assert.notDeepEqual(good[i], fresh[i], `${d.id}: the source state differs from a fresh device's`));
  const [bus, i440fx, piix3, ide, pm, xen] = good;

  // Every function: config of the wrong type, size, another function, or impossible read-only bits.
  const functions = devs.slice(1);
  functions.forEach((d, k) => {
    const s = good[k + 1];
    const cfg = s.config as Uint8Array;
    refused(t, d, with_(s, { config: Array.from(cfg) }), 'config as a number array');
    refused(t, d, with_(s, { config: cfg.subarray(0, 255) }), 'config of 255 bytes');
    refused(t, d, with_(s, { config: undefined }), 'no config');
    const other = good[k === 0 ? 2 : 1].config as Uint8Array;
    refused(t, d, with_(s, { config: new Uint8Array(other) }), 'config of another function');
    const pin = new Uint8Array(cfg);
    pin[0x3d] ^= 0x02;
    refused(t, d, with_(s, { config: pin }), 'config with a different interrupt pin');
    const rev = new Uint8Array(cfg);
    rev[0x08] ^= 0x01;
    refused(t, d, with_(s, { config: rev }), 'config with another revision');
    refused(t, d, null as unknown as StateObject, 'null');
    refused(t, d, [] as unknown as StateObject, 'an array');
    assert.throws(() => restoreDevice(d, d.stateVersion + 1, s), StateError, `${d.id}: a newer version`);
    assert.deepEqual(d.snapshot(), fresh[k + 1]);
  });
  // Function-specific read-only config bits.
  const pirq = new Uint8Array(piix3.config as Uint8Array);
  pirq[0x60] |= 0x70; // PIRQRC bits 6:4 are reserved
  refused(t, devs[2], with_(piix3, { config: pirq }), 'PIRQRC with reserved bits');
  const pmba = new Uint8Array(pm.config as Uint8Array);
  pmba[0x40] &= ~1; // PMBA bit 0 reads 1
  refused(t, devs[4], with_(pm, { config: pmba }), 'PMBA without its I/O bit');
  const bar = new Uint8Array(ide.config as Uint8Array);
  bar[0x20] |= 0x04; // BMIBA: the address bits below 16 bytes are not writable
  refused(t, devs[3], with_(ide, { config: bar }), 'BMIBA not aligned to its size');
  const cmd = new Uint8Array(i440fx.config as Uint8Array);
  cmd[0x04] |= 0x40; // parity error response: not writable here
  refused(t, devs[1], with_(i440fx, { config: cmd }), 'command with a read-only bit set');

  // PIIX3.
  refused(t, devs[2], with_(piix3, { rcr: 0x04 }), 'rcr with RCPU (never sticks)');
  refused(t, devs[2], with_(piix3, { rcr: '2' }), 'rcr as a string');
  refused(t, devs[2], with_(piix3, { port92: 0x80 }), 'port92 with an unimplemented bit');
  refused(t, devs[2], with_(piix3, { port92: -1 }), 'negative port92');
  refused(t, devs[2], with_(piix3, { port92: 1.5 }), 'fractional port92');
  // PIIX4 PM.
  refused(t, devs[4], with_(pm, { pm1Cnt: 0x2001 }), 'pm1Cnt holding SLP_EN (write-only)');
  refused(t, devs[4], with_(pm, { pm1Cnt: 0x10000 }), 'pm1Cnt over 16 bits');
  refused(t, devs[4], with_(pm, { apmCnt: 256 }), 'apmCnt over 8 bits');
  refused(t, devs[4], with_(pm, { apmSts: null }), 'apmSts null');
  refused(t, devs[4], with_(pm, { gpeSts: 0x10000 }), 'gpeSts over 16 bits');
  refused(t, devs[4], with_(pm, { gpeEn: true }), 'gpeEn as a boolean');
  refused(t, devs[4], with_(pm, { gpeEn: undefined }), 'no gpeEn');
  // Xen platform.
  refused(t, devs[5], with_(xen, { flags: 2 }), 'flags with an unknown bit');
  refused(t, devs[5], with_(xen, { productNumber: 0x10000 }), 'productNumber over 16 bits');
  refused(t, devs[5], with_(xen, { buildNumber: 2 ** 32 }), 'buildNumber over 32 bits');
  refused(t, devs[5], with_(xen, { buildNumber: -1 }), 'negative buildNumber');
  refused(t, devs[5], with_(xen, { unplugged: 0x10000 }), 'unplugged over 16 bits');
  refused(t, devs[5], with_(xen, { unplugged: '1' }), 'unplugged as a string');
  refused(t, devs[5], with_(xen, { logLine: new Uint8Array(4097) }), 'a log line longer than the buffer');
  refused(t, devs[5], with_(xen, { logLine: 'half a line' }), 'logLine as a string');
  refused(t, devs[5], with_(xen, { logLine: [0x41] }), 'logLine as a number array');
  // The bus.
  refused(t, devs[0], with_(bus, { confAddr: 0x7f000000 }), 'confAddr with reserved bits 30:24');
  refused(t, devs[0], with_(bus, { confAddr: 0x80000001 }), 'confAddr with reserved bits 1:0');
  refused(t, devs[0], with_(bus, { confAddr: 2 ** 32 }), 'confAddr over 32 bits');
  refused(t, devs[0], with_(bus, { present: [0x00, 0x08, 0x09, 0x0b] }), 'present without the Xen platform device');
  refused(t, devs[0], with_(bus, { present: [0x00, 0x08, 0x09, 0x0b, 0x10, 0x18] }), 'present with a NIC at 00:03.0');
  refused(t, devs[0], with_(bus, { present: [0x00, 0x08, 0x09, 0x0b, 0x0b] }), 'present with a duplicate');
  refused(t, devs[0], with_(bus, { present: [0x00, 0x08, 0x09, 0x0b, 256] }), 'present with devfn 256');
  refused(t, devs[0], with_(bus, { present: 'all' }), 'present as a string');
  assert.throws(() => restoreDevice(devs[0], 2, bus), StateError, 'pci.bus: a newer version');

  // Nothing above changed anything: the fresh rig still snapshots as fresh, and the good state loads.
  assert.deepEqual(snapshotAll(t), fresh);
  devs.forEach((d, i) => d.restore(good[i]));
  t.pc.refresh();
  assert.deepEqual(snapshotAll(t), good);
  assert.deepEqual(regions(t), regions(src));
});

test('a bus layout without the Xen platform device refuses state from one with it', () => {
  const saved = snapshotAll(busy());
  const noXen = installPcPlatform(testBoard().board, { xenPlatform: false, log: captureLogger().log });
  const before = noXen.bus.snapshot();
  assert.throws(() => noXen.bus.restore(saved[0]), (e) => e instanceof StateError && /present/.test(e.message));
  assert.deepEqual(noXen.bus.snapshot(), before);
});
