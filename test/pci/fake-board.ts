/**
 * A Board over a fake host that records what would reach Xen: claimed port
 * and MMIO ranges, claimed PCI functions, link routes, INTx levels and
 * shutdown requests. Plus qtest-like helpers for config mechanism #1.
 */
import { Board } from '../../src/core/board.ts';
import type { Clock } from '../../src/core/clock.ts';
import { RANGE_MMIO, RANGE_PORT, type Interrupts, type IoreqRouting, type Power } from '../../src/core/host.ts';
import type { AccessSize } from '../../src/core/io.ts';
import type { GuestMemory } from '../../src/core/memory.ts';

export interface FakeHost {
  /** Currently claimed ranges, "pio:0x1f0-0x1f7" / "mmio:0xf0000000-0xf0ffffff". */
  ranges: Set<string>;
  /** Every map/unmap call in order ("+pio:..." / "-pio:..."). */
  rangeLog: string[];
  pcidevs: Set<string>;
  linkRoutes: [number, number][];
  intx: Map<string, number>;
  isa: Map<number, number>;
  shutdowns: number[];
}

export function range(kind: string, start: number, end: number): string {
  return `${kind}:0x${start.toString(16)}-0x${end.toString(16)}`;
}

export function fakeBoard(clock?: Clock): { board: Board; host: FakeHost } {
  const host: FakeHost = {
    ranges: new Set(),
    rangeLog: [],
    pcidevs: new Set(),
    linkRoutes: [],
    intx: new Map(),
    isa: new Map(),
    shutdowns: [],
  };
  const memory: GuestMemory = { read: () => false, write: () => false };
  const interrupts: Interrupts = {
    setIsaIrqLevel: (irq, level) => void host.isa.set(irq, level),
    setPciIntxLevel: (dev, pin, level) => void host.intx.set(`${dev}:${pin}`, level),
    setPciLinkRoute: (link, irq) => void host.linkRoutes.push([link, irq]),
    injectMsi: () => {},
  };
  const power: Power = { shutdown: (r) => void host.shutdowns.push(r) };
  const routing: IoreqRouting = {
    mapIoRange(kind, start, end) {
      const r = range(kind === RANGE_PORT ? 'pio' : kind === RANGE_MMIO ? 'mmio' : 'bad', start, end);
      if (host.ranges.has(r)) throw new Error(`double claim ${r}`);
      host.ranges.add(r);
      host.rangeLog.push('+' + r);
    },
    unmapIoRange(kind, start, end) {
      const r = range(kind === RANGE_PORT ? 'pio' : 'mmio', start, end);
      if (!host.ranges.delete(r)) throw new Error(`release of unclaimed ${r}`);
      host.rangeLog.push('-' + r);
    },
    mapPcidev: (d, f) => void host.pcidevs.add(`${d}.${f}`),
    unmapPcidev: (d, f) => void host.pcidevs.delete(`${d}.${f}`),
  };
  return { board: new Board(memory, interrupts, power, routing, clock), host };
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
