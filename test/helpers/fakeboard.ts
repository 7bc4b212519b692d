/** A Board over recording fakes, for device tests that need no hypervisor. */
import { Board } from '../../src/core/board.ts';
import type { Interrupts, IoreqRouting, Power } from '../../src/core/host.ts';
import type { GuestMemory } from '../../src/core/memory.ts';

export interface Recorded {
  board: Board;
  /** Every ISA level change reaching the "hypervisor", in order, as `irq=level`. */
  isaEdges: string[];
  isaLevel(irq: number): number;
  mapped: string[];
}

export function fakeBoard(): Recorded {
  const levels = new Array<number>(16).fill(0);
  const isaEdges: string[] = [];
  const mapped: string[] = [];
  const interrupts: Interrupts = {
    setIsaIrqLevel(irq, level) {
      levels[irq] = level;
      isaEdges.push(`${irq}=${level}`);
    },
    setPciIntxLevel() {},
    setPciLinkRoute() {},
    injectMsi() {},
  };
  const power: Power = { shutdown() {} };
  const routing: IoreqRouting = {
    mapIoRange: (k, s, e) => mapped.push(`${k}:${s.toString(16)}-${e.toString(16)}`),
    unmapIoRange: () => {},
    mapPcidev: () => {},
    unmapPcidev: () => {},
  };
  const memory: GuestMemory = { read: () => false, write: () => false };
  const board = new Board(memory, interrupts, power, routing);
  return { board, isaEdges, isaLevel: (i) => levels[i], mapped };
}
