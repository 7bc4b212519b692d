/**
 * The one board fixture for device tests: a Board on the simulated
 * hypervisor (src/sim: its guest RAM, VirtualClock, interrupts, routing and
 * power), with a recorder in front of the hypervisor calls so tests can
 * assert what would have reached Xen, in order:
 *
 *   const { board, host, clock, sim } = testBoard();
 *   board.pio.add(...); clock.advance(5); host.ranges.has(range('pio', 0x3f8, 0x3ff))
 *
 * Tests that drive whole ioreqs (the ioreq server, REP, buffered writes) use
 * sim directly; tests that need the whole xenfv PC use simPc (simpc.ts).
 */
import { Board } from '../../src/core/board.ts';
import { RANGE_MMIO, RANGE_PORT, type Interrupts, type IoreqRouting, type Power } from '../../src/core/host.ts';
import type { AccessSize } from '../../src/core/io.ts';
import type { GuestMemory } from '../../src/core/memory.ts';
import { createSimHost, simClock, type SimHost } from '../../src/sim/index.ts';
import type { VirtualClock } from '../../src/core/clock.ts';

export interface HostRecord {
  /** Currently claimed ranges, "pio:0x1f0-0x1f7" / "mmio:0xf0000000-0xf0ffffff". */
  ranges: Set<string>;
  /** Every map/unmap call in order ("+pio:..." / "-pio:..."). */
  rangeLog: string[];
  /** Claimed PCI functions, "dev.fn". */
  pcidevs: Set<string>;
  /** Every link-route call, in order. */
  linkRoutes: [number, number][];
  /** INTx level by "dev:pin". */
  intx: Map<string, number>;
  /** ISA IRQ level by line (only lines that changed). */
  isa: Map<number, number>;
  /** Every ISA level change in order, as `irq=level`. */
  isaEdges: string[];
  /** Shutdown reasons, in order. */
  shutdowns: number[];
}

export interface TestBoard {
  board: Board;
  host: HostRecord;
  clock: VirtualClock;
  sim: SimHost;
  /** Current level of an ISA line (0 if never driven). */
  isaLevel(irq: number): number;
}

export function range(kind: string, start: number, end: number): string {
  return `${kind}:0x${start.toString(16)}-0x${end.toString(16)}`;
}

/**
 * `memory` replaces the sim's guest RAM on the board (a test that counts or
 * refuses accesses, as the IDE fuzzer does); the sim keeps its own.
 */
export function testBoard(opts: { ramBytes?: number; memory?: GuestMemory } = {}): TestBoard {
  const sim = createSimHost({ ramBytes: opts.ramBytes ?? 1 << 20 });
  const host: HostRecord = {
    ranges: new Set(),
    rangeLog: [],
    pcidevs: new Set(),
    linkRoutes: [],
    intx: new Map(),
    isa: new Map(),
    isaEdges: [],
    shutdowns: [],
  };
  const interrupts: Interrupts = {
    setIsaIrqLevel: (irq, level) => {
      host.isa.set(irq, level);
      host.isaEdges.push(`${irq}=${level}`);
      sim.interrupts.setIsaIrqLevel(irq, level);
    },
    setPciIntxLevel: (dev, pin, level) => {
      host.intx.set(`${dev}:${pin}`, level);
      sim.interrupts.setPciIntxLevel(dev, pin, level);
    },
    setPciLinkRoute: (link, irq) => {
      host.linkRoutes.push([link, irq]);
      sim.interrupts.setPciLinkRoute(link, irq);
    },
    injectMsi: (addr, data) => sim.interrupts.injectMsi(addr, data),
  };
  const power: Power = {
    shutdown: (r) => {
      host.shutdowns.push(r);
      sim.power.shutdown(r);
    },
  };
  // Stricter than Xen on purpose: a double claim or a release of something
  // unclaimed is a bug in the board's bookkeeping, so the test fails at once.
  const routing: IoreqRouting = {
    mapIoRange(kind, start, end) {
      const r = range(kind === RANGE_PORT ? 'pio' : kind === RANGE_MMIO ? 'mmio' : 'bad', start, end);
      if (host.ranges.has(r)) throw new Error(`double claim ${r}`);
      host.ranges.add(r);
      host.rangeLog.push('+' + r);
      sim.routing.mapIoRange(kind, start, end);
    },
    unmapIoRange(kind, start, end) {
      const r = range(kind === RANGE_PORT ? 'pio' : 'mmio', start, end);
      if (!host.ranges.delete(r)) throw new Error(`release of unclaimed ${r}`);
      host.rangeLog.push('-' + r);
      sim.routing.unmapIoRange(kind, start, end);
    },
    mapPcidev: (d, f) => {
      host.pcidevs.add(`${d}.${f}`);
      sim.routing.mapPcidev(d, f);
    },
    unmapPcidev: (d, f) => {
      host.pcidevs.delete(`${d}.${f}`);
      sim.routing.unmapPcidev(d, f);
    },
  };
  const clock = simClock(sim);
  const board = new Board(opts.memory ?? sim.memory, interrupts, power, routing, clock);
  return { board, host, clock, sim, isaLevel: (irq) => host.isa.get(irq) ?? 0 };
}

export function devfn(dev: number, fn: number): number {
  return (dev << 3) | fn;
}

/** Config mechanism #1 through board.pio, as a guest (or qtest) does it. */
export class Cf8 {
  constructor(private readonly board: Board) {}
  addr(dev: number, fn: number, reg: number, bus = 0): number {
    return (0x80000000 | (bus << 16) | (dev << 11) | (fn << 8) | (reg & 0xfc)) >>> 0;
  }
  read(dev: number, fn: number, reg: number, size: AccessSize): number {
    this.board.pio.write(0xcf8, 4, this.addr(dev, fn, reg));
    return this.board.pio.read(0xcfc + (reg & 3), size);
  }
  write(dev: number, fn: number, reg: number, size: AccessSize, v: number): void {
    this.board.pio.write(0xcf8, 4, this.addr(dev, fn, reg));
    this.board.pio.write(0xcfc + (reg & 3), size, v);
  }
}
