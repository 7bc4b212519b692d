/**
 * A VGA function on the shared board fixture: a PciBus on testBoard(), the
 * VGA at 00:05.0 with BAR0 (VRAM) at LFB_BASE and BAR2 (MMIO) at MMIO_BASE,
 * the legacy ports and window claimed. Accesses go through the board's
 * buses, as the ioreq loop delivers them.
 */
import { pino } from 'pino';
import { PciBus } from '../../../src/pci/bus.ts';
import { VgaPci, type VgaOptions } from '../../../src/devices/vga/index.ts';
import { testBoard, type TestBoard } from '../../helpers/board.ts';
import type { AccessSize } from '../../../src/core/io.ts';

export const DEV = 5;
export const DEVFN = DEV << 3;
export const LFB_BASE = 0xe0000000;
export const MMIO_BASE = 0xe4000000;
export const WINDOW = 0xa0000;

export const silent = pino({ level: 'silent' });

export interface VgaRig extends TestBoard {
  bus: PciBus;
  vga: VgaPci;
  outb(port: number, v: number): void;
  outw(port: number, v: number): void;
  inb(port: number): number;
  inw(port: number): number;
  memr(addr: number, size: AccessSize): number;
  memw(addr: number, size: AccessSize, v: number): void;
  /** Write DISPI register i through the ports. */
  dispi(i: number, v: number): void;
  dispiRead(i: number): number;
  /** Indexed register write: outb(index port), outb(data port). */
  reg(indexPort: number, i: number, v: number): void;
}

export function makeVga(o: VgaOptions = {}, programBars = true): VgaRig {
  const tb = testBoard();
  const bus = new PciBus(tb.board, silent);
  const vga = new VgaPci({ log: silent, ...o });
  bus.add(DEV, 0, vga);
  vga.installLegacy(tb.board);
  if (programBars) {
    bus.configWrite(DEVFN, 0x10, 4, LFB_BASE);
    bus.configWrite(DEVFN, 0x18, 4, MMIO_BASE);
    bus.configWrite(DEVFN, 0x04, 2, 0x0003);
  }
  const { pio, mmio } = tb.board;
  const rig: VgaRig = {
    ...tb,
    bus,
    vga,
    outb: (p, v) => pio.write(p, 1, v & 0xff),
    outw: (p, v) => pio.write(p, 2, v & 0xffff),
    inb: (p) => pio.read(p, 1),
    inw: (p) => pio.read(p, 2),
    memr: (a, s) => mmio.read(a, s),
    memw: (a, s, v) => mmio.write(a, s, v),
    dispi: (i, v) => {
      pio.write(0x1ce, 2, i);
      pio.write(0x1cf, 2, v & 0xffff);
    },
    dispiRead: (i) => {
      pio.write(0x1ce, 2, i);
      return pio.read(0x1cf, 2);
    },
    reg: (port, i, v) => {
      pio.write(port, 1, i);
      pio.write(port + 1, 1, v & 0xff);
    },
  };
  return rig;
}
