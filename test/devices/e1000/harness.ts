/**
 * An e1000 on the shared board fixture: a PciBus on testBoard(), the NIC at
 * 00:04.0 with BAR0 at MMIO_BASE, BAR1 at IO_BASE and bus mastering on, an
 * in-memory packet backend, and driver-side helpers that lay rings out in
 * guest RAM the way Linux e1000 does.
 */
import { PciBus } from '../../../src/pci/bus.ts';
import { createE1000, type E1000, type E1000Options } from '../../../src/devices/e1000/index.ts';
import * as R from '../../../src/devices/e1000/regs.ts';
import type { FrameReceiver, PacketBackend, TxOffload } from '../../../src/net/backend.ts';
import type { GuestMemory } from '../../../src/core/memory.ts';
import type { Clock, VirtualClock } from '../../../src/core/clock.ts';
import { NetTrace } from '../../../src/net/trace.ts';
import { testBoard, type TestBoard } from '../../helpers/board.ts';
import { pino } from 'pino';

export const DEV = 4;
export const DEVFN = DEV << 3;
export const MMIO_BASE = 0xfebc0000;
export const IO_BASE = 0xc000;
export const ROM_BASE = 0xfeb80000;
export const MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
export const TX_RING = 0x10000;
export const RX_RING = 0x20000;
export const TX_BUF = 0x100000;
export const RX_BUF = 0x200000;
export const RAM = 4 << 20;

export interface SentFrame {
  frame: Uint8Array;
  offload: TxOffload | null;
}

/** A PacketBackend in memory: records sends, can refuse them, queues injected frames like a tap would. */
export class MemBackend implements PacketBackend {
  readonly name = 'mem';
  offloads = false;
  readonly sent: SentFrame[] = [];
  /** Refuse sends while true. */
  full = false;
  /** Sends still accepted before the backend turns full by itself (-1: no limit). */
  acceptLimit = -1;
  resumes = 0;
  private receiver: FrameReceiver | null = null;
  private writable: (() => void) | null = null;
  private readonly queue: Uint8Array[] = [];
  private paused = false;

  send(frame: Uint8Array, offload: TxOffload | null): boolean {
    if (this.acceptLimit === 0) this.full = true;
    if (this.full) return false;
    if (this.acceptLimit > 0) this.acceptLimit--;
    this.sent.push({ frame: frame.slice(), offload: offload ? { ...offload } : null });
    return true;
  }
  setReceiver(r: FrameReceiver): void {
    this.receiver = r;
  }
  resumeReceive(): void {
    this.resumes++;
    this.paused = false;
    this.pump();
  }
  onWritable(cb: () => void): void {
    this.writable = cb;
  }
  /** The host side drained: let the NIC retry. */
  drain(): void {
    this.full = false;
    this.writable?.();
  }
  /** A frame arrives from the host side. */
  inject(frame: Uint8Array): void {
    this.queue.push(frame);
    this.pump();
  }
  get queued(): number {
    return this.queue.length;
  }
  get isPaused(): boolean {
    return this.paused;
  }
  private pump(): void {
    while (!this.paused && this.queue.length > 0 && this.receiver) {
      if (this.receiver(this.queue[0])) this.queue.shift();
      else this.paused = true;
    }
  }
  async close(): Promise<void> {}
}

/** Guest memory that records every access the device attempts (the fuzz test's fence). */
export class FencedMemory implements GuestMemory {
  outside = 0;
  badArgs = 0;
  accesses = 0;
  constructor(private readonly inner: GuestMemory, private readonly size: number) {}
  private check(gpa: number, len: number, buf: Uint8Array, off: number): void {
    this.accesses++;
    if (!Number.isInteger(gpa) || !Number.isInteger(len) || len < 0 || off < 0 || off + len > buf.length) this.badArgs++;
    else if (gpa < 0 || gpa + len > this.size) this.outside++;
  }
  read(gpa: number, dst: Uint8Array, off: number, len: number): boolean {
    this.check(gpa, len, dst, off);
    return this.inner.read(gpa, dst, off, len);
  }
  write(gpa: number, src: Uint8Array, off: number, len: number): boolean {
    this.check(gpa, len, src, off);
    return this.inner.write(gpa, src, off, len);
  }
}

export interface Nic extends TestBoard {
  bus: PciBus;
  nic: E1000;
  /** The in-memory backend (not wired to the NIC when makeNic was given another backend). */
  be: MemBackend;
  /** The NIC's event trace (makeNic's `trace` entries), on the NIC's clock; null: none. */
  trace: NetTrace | null;
  ram: Uint8Array;
  mem: FencedMemory;
  r32(off: number): number;
  w32(off: number, v: number): void;
  /** INTA level of 00:04.0 as it reached the hypervisor. */
  intx(): number;
  cfgRead(reg: number, size: 1 | 2 | 4): number;
  cfgWrite(reg: number, size: 1 | 2 | 4, v: number): void;
}

export const silent = pino({ level: 'silent' });

export function makeNic(
  o: Partial<Pick<E1000Options, 'rom' | 'index'>> & {
    offloads?: boolean;
    ramBytes?: number;
    clock?: (c: VirtualClock) => Clock;
    /** Entries of an event trace for the NIC (net/trace.ts). */
    trace?: number;
    /** Another backend than the MemBackend (given the trace, for a TapBackend to record into). */
    backend?: (trace: NetTrace | null) => PacketBackend;
  } = {},
): Nic {
  const ramBytes = o.ramBytes ?? RAM;
  const tb = testBoard({ ramBytes });
  const bus = new PciBus(tb.board, silent);
  const be = new MemBackend();
  be.offloads = o.offloads ?? false;
  const mem = new FencedMemory(tb.board.memory, ramBytes);
  const clock = o.clock ? o.clock(tb.clock) : tb.clock;
  const trace = o.trace !== undefined ? new NetTrace(o.trace, () => clock.now()) : null;
  const backend = o.backend ? o.backend(trace) : be;
  const nic = createE1000({ memory: mem, clock, backend, mac: MAC, rom: o.rom, index: o.index, log: silent, trace });
  bus.add(DEV, 0, nic);
  bus.configWrite(DEVFN, 0x10, 4, MMIO_BASE);
  bus.configWrite(DEVFN, 0x14, 4, IO_BASE);
  bus.configWrite(DEVFN, 0x04, 2, 0x0007);
  return {
    ...tb,
    bus,
    nic,
    be,
    trace,
    mem,
    ram: tb.sim.memory.ram,
    r32: (off) => tb.board.mmio.read(MMIO_BASE + off, 4),
    w32: (off, v) => tb.board.mmio.write(MMIO_BASE + off, 4, v >>> 0),
    intx: () => tb.host.intx.get(`${DEV}:0`) ?? 0,
    cfgRead: (reg, size) => bus.configRead(DEVFN, reg, size),
    cfgWrite: (reg, size, v) => bus.configWrite(DEVFN, reg, size, v),
  };
}

// ---- guest memory helpers ----
export function put32(ram: Uint8Array, at: number, v: number): void {
  ram[at] = v & 0xff;
  ram[at + 1] = (v >>> 8) & 0xff;
  ram[at + 2] = (v >>> 16) & 0xff;
  ram[at + 3] = (v >>> 24) & 0xff;
}
export function get32(ram: Uint8Array, at: number): number {
  return (ram[at] | (ram[at + 1] << 8) | (ram[at + 2] << 16) | (ram[at + 3] << 24)) >>> 0;
}
export function get16(ram: Uint8Array, at: number): number {
  return ram[at] | (ram[at + 1] << 8);
}

/** A TX descriptor in the ring: 64-bit buffer address, then the two command/status dwords. */
export function txDesc(n: Nic, i: number, addr: number, lower: number, upper = 0): void {
  const at = TX_RING + 16 * i;
  put32(n.ram, at, addr >>> 0);
  put32(n.ram, at + 4, Math.floor(addr / 2 ** 32));
  put32(n.ram, at + 8, lower >>> 0);
  put32(n.ram, at + 12, upper >>> 0);
}

/** Legacy descriptor: length, CSO, command byte; CSS in the upper dword. */
export function legacy(len: number, cmd: number, cso = 0, css = 0, special = 0): [number, number] {
  return [(len | (cso << 16) | cmd) >>> 0, ((css << 8) | (special << 16)) >>> 0];
}

/** Context descriptor fields (3.3.6). */
export interface Ctx {
  ipcss: number;
  ipcso: number;
  ipcse?: number;
  tucss: number;
  tucso: number;
  tucse?: number;
  paylen?: number;
  hdrLen?: number;
  mss?: number;
  tse?: boolean;
  ip?: boolean;
  tcp?: boolean;
}
export function ctxDesc(n: Nic, i: number, c: Ctx, rs = false): void {
  const at = TX_RING + 16 * i;
  put32(n.ram, at, (c.ipcss | (c.ipcso << 8) | ((c.ipcse ?? 0) << 16)) >>> 0);
  put32(n.ram, at + 4, (c.tucss | (c.tucso << 8) | ((c.tucse ?? 0) << 16)) >>> 0);
  const lower =
    (c.paylen ?? 0) |
    R.TXD_CMD_DEXT |
    (c.tse ? R.TXD_CMD_TSE : 0) |
    (c.ip ? R.TXD_CMD_IP : 0) |
    (c.tcp ? R.TXD_CMD_TCP : 0) |
    (rs ? R.TXD_CMD_RS : 0);
  put32(n.ram, at + 8, lower >>> 0);
  put32(n.ram, at + 12, (((c.hdrLen ?? 0) << 8) | ((c.mss ?? 0) << 16)) >>> 0);
}
/** Data descriptor: length, DCMD, POPTS. */
export function dataDesc(n: Nic, i: number, addr: number, len: number, cmd: number, popts: number, special = 0): void {
  txDesc(n, i, addr, (len | R.TXD_CMD_DEXT | R.TXD_DTYP_D | cmd) >>> 0, ((popts << 8) | (special << 16)) >>> 0);
}

/** Program the TX ring of `count` descriptors and enable the transmitter (Linux e1000_configure_tx). */
export function setupTx(n: Nic, count = 16): void {
  n.w32(R.TDBAL, TX_RING);
  n.w32(R.TDBAH, 0);
  n.w32(R.TDLEN, count * 16);
  n.w32(R.TDH, 0);
  n.w32(R.TDT, 0);
  n.w32(R.TCTL, R.TCTL_EN | R.TCTL_PSP);
}

/** Program the RX ring, hand `count - 1` buffers of `bufSize` to the NIC, enable the receiver. */
export function setupRx(n: Nic, count = 16, rctl = R.RCTL_EN | R.RCTL_BAM, bufSize = 2048): void {
  for (let i = 0; i < count; i++) {
    const at = RX_RING + 16 * i;
    put32(n.ram, at, RX_BUF + i * bufSize);
    put32(n.ram, at + 4, 0);
    put32(n.ram, at + 8, 0);
    put32(n.ram, at + 12, 0);
  }
  n.w32(R.RDBAL, RX_RING);
  n.w32(R.RDBAH, 0);
  n.w32(R.RDLEN, count * 16);
  n.w32(R.RDH, 0);
  n.w32(R.RDT, count - 1);
  n.w32(R.RCTL, rctl);
}

/** An Ethernet frame: dst, src, ethertype, then `payload`. */
export function ethFrame(dst: ArrayLike<number>, type: number, payload: ArrayLike<number>): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set([0x02, 0, 0, 0, 0, 1], 6);
  f[12] = type >>> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

export function seqBytes(len: number, seed = 1): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}
