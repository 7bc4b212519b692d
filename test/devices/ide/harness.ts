/**
 * qtest-style harness for the IDE controller: a Board with a bounds-checked
 * fake GuestMemory, recorded interrupt levels, the legacy ports and the
 * bus-master block mapped, and port helpers named as in QEMU's libqtest.
 */
import type { Board } from '../../../src/core/board.ts';
import { testBoard, type TestBoard } from '../../helpers/board.ts';
import type { GuestMemory } from '../../../src/core/memory.ts';
import type { AccessSize } from '../../../src/core/io.ts';
import { IdeController, installLegacyIde } from '../../../src/devices/ide/controller.ts';
import type { DriveOptions } from '../../../src/devices/ide/drive.ts';
import { pino } from 'pino';

export class FakeMemory implements GuestMemory {
  readonly ram: Uint8Array;
  /** Accesses refused because they left RAM. */
  refused = 0;
  constructor(bytes: number) {
    this.ram = new Uint8Array(bytes);
  }
  read(gpa: number, dst: Uint8Array, off: number, len: number): boolean {
    if (!(gpa >= 0 && len >= 0 && gpa + len <= this.ram.length)) return (this.refused++, false);
    dst.set(this.ram.subarray(gpa, gpa + len), off);
    return true;
  }
  write(gpa: number, src: Uint8Array, off: number, len: number): boolean {
    if (!(gpa >= 0 && len >= 0 && gpa + len <= this.ram.length)) return (this.refused++, false);
    this.ram.set(src.subarray(off, off + len), gpa);
    return true;
  }
}

export const BMDMA_BASE = 0xc000;
export const IDE_BASE = 0x1f0;
export const IDE_CTRL = 0x3f6;

export class IdeRig {
  readonly mem: FakeMemory;
  readonly board: Board;
  readonly ide: IdeController;
  private readonly tb: TestBoard;
  readonly logLines: string[] = [];
  private next = 0x10000;

  constructor(drives: (DriveOptions | null)[], ramBytes = 16 << 20) {
    this.mem = new FakeMemory(ramBytes);
    // The shared board fixture, on this bounds-counting memory.
    this.tb = testBoard({ memory: this.mem });
    this.board = this.tb.board;
    const lines = this.logLines;
    const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
    this.ide = IdeController.forBoard(this.board, drives, log);
    installLegacyIde(this.board, this.ide);
    this.board.pio.add('bmdma', BMDMA_BASE, 16, this.ide.busMasterBlock);
  }

  /** ISA line levels 0-15 as the hypervisor last saw them. */
  get irqLevels(): number[] {
    return Array.from({ length: 16 }, (_, i) => this.tb.isaLevel(i));
  }

  /** Bump allocator in guest RAM (like libqos guest_alloc). */
  alloc(bytes: number, align = 16): number {
    this.next = Math.ceil(this.next / align) * align;
    const a = this.next;
    this.next += bytes;
    return a;
  }

  outb(port: number, v: number): void {
    this.board.pio.write(port, 1, v);
  }
  outw(port: number, v: number): void {
    this.board.pio.write(port, 2, v);
  }
  outl(port: number, v: number): void {
    this.board.pio.write(port, 4, v);
  }
  inb(port: number): number {
    return this.board.pio.read(port, 1);
  }
  inw(port: number): number {
    return this.board.pio.read(port, 2);
  }
  inl(port: number): number {
    return this.board.pio.read(port, 4);
  }
  /** REP INS through the fast path, falling back to single reads like the ioreq dispatcher. */
  ins(port: number, size: AccessSize, count: number): { data: Uint8Array; fast: number } {
    const data = new Uint8Array(count * size);
    const r = this.board.pio.find(port, size)!;
    const fast = r.handler.readRep ? r.handler.readRep(port - r.start, size, count, data, 0) : 0;
    for (let i = fast; i < count; i++) {
      const v = r.handler.read(port - r.start, size);
      for (let b = 0; b < size; b++) data[i * size + b] = (v >>> (8 * b)) & 0xff;
    }
    return { data, fast };
  }
  outs(port: number, size: AccessSize, data: Uint8Array): number {
    const count = data.length / size;
    const r = this.board.pio.find(port, size)!;
    const fast = r.handler.writeRep ? r.handler.writeRep(port - r.start, size, count, data, 0) : 0;
    for (let i = fast; i < count; i++) {
      let v = 0;
      for (let b = 0; b < size; b++) v |= data[i * size + b] << (8 * b);
      r.handler.write(port - r.start, size, v >>> 0);
    }
    return fast;
  }
  irq(n = 14): boolean {
    return this.irqLevels[n] === 1;
  }
  /** Every ISA level call that reached the hypervisor (a DMOP each on Xen), as `irq=level`. */
  get isaEdges(): readonly string[] {
    return this.tb.host.isaEdges;
  }
  memwrite(gpa: number, data: Uint8Array): void {
    this.mem.ram.set(data, gpa);
  }
  memread(gpa: number, len: number): Uint8Array {
    return this.mem.ram.slice(gpa, gpa + len);
  }
}

/** Let pending backend completions run (bounded: the loop stops after `max` turns of the event loop). */
export async function settle(max = 50): Promise<void> {
  for (let i = 0; i < max; i++) await new Promise((r) => setImmediate(r));
}

/** Turn the event loop until cond() holds; throws after `max` turns rather than hanging. */
export async function until(cond: () => boolean, what: string, max = 100000): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + seed + (i >> 9)) & 0xff;
  return b;
}
