/**
 * PIIX bus-master IDE engine for one channel (SFF-8038i "Bus Master
 * Programming Interface", BMI-1): command, status and PRD table pointer,
 * and the PRD walk that moves a DMA command's data.
 *
 * The PRD walk follows QEMU (hw/ide/pci.c bmdma_prepare_buf): it reads the
 * whole table up to EOT, capped at one page of entries (512) so a PRD loop
 * cannot hang us, and the table's total decides the BMI-1 outcome:
 *   shorter than the transfer -> nothing moves, Active cleared, no interrupt;
 *   equal                    -> Interrupt set, Active cleared;
 *   longer                   -> Interrupt set, Active stays set.
 * Every guest address goes through GuestMemory (false = not RAM -> error bit
 * + ATA error, never an exception). Without PCI bus mastering the engine
 * cannot reach memory: table reads see zeros and data to memory is dropped
 * (what QEMU's ide-test no_busmaster observes); data from memory fails.
 */
import type { GuestMemory } from '../../core/memory.ts';
import type { IoResult } from '../../block/backend.ts';
import type { Drive } from './drive.ts';
import { BUF_BYTES } from './drive.ts';
import * as R from './regs.ts';

export interface BmState {
  v: 1;
  cmd: number;
  status: number;
  prdt: number;
  /** Drive whose DMA command waits for / uses the engine, or -1. */
  unit: number;
  running: boolean;
  /** Start bit cleared while running: the transfer finishes (as QEMU drains it) but Active stays clear. */
  stopped: boolean;
  stayActive: boolean;
  /** PRD entries covering the transfer (address, byte count) and the cursor in them. */
  prdAddr: number[];
  prdLen: number[];
  prdIdx: number;
  prdOff: number;
}

/** Data moved per backend request. */
const CHUNK = BUF_BYTES - 4096;

export class BusMaster {
  readonly state: BmState = {
    v: 1,
    cmd: 0,
    status: 0,
    prdt: 0,
    unit: -1,
    running: false,
    stopped: false,
    stayActive: false,
    prdAddr: [],
    prdLen: [],
    prdIdx: 0,
    prdOff: 0,
  };
  /** PCI command register Bus Master Enable, set by the PCI function. */
  busMaster = true;
  private runId = 0;
  private readonly prd = new Uint8Array(8);

  constructor(
    private readonly memory: GuestMemory,
    private readonly drive: (unit: number) => Drive,
  ) {}

  readByte(off: number): number {
    const s = this.state;
    switch (off) {
      case R.BM_COMMAND:
        return s.cmd;
      case R.BM_STATUS:
        return s.status;
      case R.BM_PRDT:
      case R.BM_PRDT + 1:
      case R.BM_PRDT + 2:
      case R.BM_PRDT + 3:
        return (s.prdt >>> ((off - R.BM_PRDT) * 8)) & 0xff;
      default:
        return 0xff; // reserved bytes 1 and 3 (QEMU)
    }
  }

  writeByte(off: number, v: number): void {
    const s = this.state;
    switch (off) {
      case R.BM_COMMAND:
        return this.writeCommand(v);
      case R.BM_STATUS:
        // Bits 5-6 read/write, 1-2 write-one-to-clear, Active read-only.
        s.status = (v & (R.BMS_DMA0 | R.BMS_DMA1)) | (s.status & R.BMS_ACTIVE) | (s.status & ~v & (R.BMS_ERROR | R.BMS_INTR));
        return;
      case R.BM_PRDT:
      case R.BM_PRDT + 1:
      case R.BM_PRDT + 2:
      case R.BM_PRDT + 3: {
        const sh = (off - R.BM_PRDT) * 8;
        s.prdt = ((s.prdt & ~(0xff << sh)) | ((v & 0xff) << sh)) & ~3 & 0xffffffff;
        s.prdt >>>= 0;
        return;
      }
    }
  }

  /** PRD table address as one dword (the usual access). */
  writePrdt(v: number): void {
    this.state.prdt = (v & ~3) >>> 0;
  }

  private writeCommand(v: number): void {
    const s = this.state;
    v &= R.BMC_START | R.BMC_READ;
    if (!(v & R.BMC_START)) {
      if (s.cmd & R.BMC_START) {
        s.status &= ~R.BMS_ACTIVE;
        if (s.running) s.stopped = true;
      }
    } else if (!(s.cmd & R.BMC_START)) {
      s.status |= R.BMS_ACTIVE;
      s.stopped = false;
      s.cmd = v;
      if (s.unit >= 0 && !s.running) this.run(this.drive(s.unit));
      return;
    }
    s.cmd = v;
  }

  /** A drive set up a DMA command: run it now if the engine is started, else when it is. */
  dmaReady(d: Drive): void {
    const s = this.state;
    s.unit = d.unit;
    if (s.cmd & R.BMC_START && !s.running) {
      s.status |= R.BMS_ACTIVE;
      this.run(d);
    }
  }

  cancel(d: Drive): void {
    const s = this.state;
    if (s.unit !== d.unit) return;
    s.unit = -1;
    if (s.running) {
      this.runId++;
      s.running = false;
      s.status &= ~R.BMS_ACTIVE;
    }
  }

  /** After a restore: a transfer that was running starts again from its first byte (nothing moved is committed until it ends). */
  resume(): void {
    const s = this.state;
    if (!s.running) return;
    s.running = false;
    if (s.unit >= 0) this.run(this.drive(s.unit));
  }

  /** Walk the PRD table (bounded) keeping the entries that cover `bytes`; total of the whole table, or -1 on a fault. */
  private walk(bytes: number): number {
    const s = this.state;
    s.prdAddr = [];
    s.prdLen = [];
    s.prdIdx = s.prdOff = 0;
    let total = 0;
    const p = this.prd;
    for (let i = 0; i < R.PRD_MAX_ENTRIES; i++) {
      if (this.busMaster) {
        if (!this.memory.read(s.prdt + i * 8, p, 0, 8)) return -1;
      } else {
        p.fill(0);
      }
      const addr = (p[0] | (p[1] << 8) | (p[2] << 16) | (p[3] << 24)) >>> 0;
      const size = (p[4] | (p[5] << 8) | (p[6] << 16) | (p[7] << 24)) >>> 0;
      const len = size & 0xfffe || 0x10000; // bit 0 is always 0; 0 means 64 KiB
      if (total < bytes) {
        s.prdAddr.push(addr);
        s.prdLen.push(len);
      }
      total += len;
      if (size & R.PRD_EOT) break;
    }
    return total;
  }

  /** Copy src[off..off+n) to guest memory along the PRDs. */
  private scatter(src: Uint8Array, off: number, n: number): boolean {
    const s = this.state;
    while (n > 0) {
      if (s.prdIdx >= s.prdAddr.length) return false;
      const l = Math.min(n, s.prdLen[s.prdIdx] - s.prdOff);
      if (this.busMaster && !this.memory.write(s.prdAddr[s.prdIdx] + s.prdOff, src, off, l)) return false;
      this.advance(l);
      off += l;
      n -= l;
    }
    return true;
  }

  private gather(dst: Uint8Array, off: number, n: number): boolean {
    const s = this.state;
    if (!this.busMaster) return false;
    while (n > 0) {
      if (s.prdIdx >= s.prdAddr.length) return false;
      const l = Math.min(n, s.prdLen[s.prdIdx] - s.prdOff);
      if (!this.memory.read(s.prdAddr[s.prdIdx] + s.prdOff, dst, off, l)) return false;
      this.advance(l);
      off += l;
      n -= l;
    }
    return true;
  }

  private advance(l: number): void {
    const s = this.state;
    s.prdOff += l;
    if (s.prdOff >= s.prdLen[s.prdIdx]) {
      s.prdIdx++;
      s.prdOff = 0;
    }
  }

  private run(d: Drive): void {
    const s = this.state;
    const req = d.dmaRequest();
    if (req === null) return;
    const id = ++this.runId;
    s.running = true;
    const total = this.walk(req.bytes);
    if (total < 0) return this.finish(d, id, 'fault');
    if (total < req.bytes) return this.finish(d, id, 'short');
    s.stayActive = total > req.bytes;
    const buf = d.state.buf;
    const gen = d.state.gen;
    const live = () => this.runId === id && d.state.gen === gen;
    const io = async (): Promise<'fault' | IoResult> => {
      if (req.diskOffset < 0) return this.scatter(buf, 0, req.bytes) ? null : 'fault';
      const b = d.backend;
      if (b === null) return 'ENOMEDIUM';
      // Bounded: at most bytes / CHUNK iterations, each a real request.
      for (let done = 0; done < req.bytes; done += CHUNK) {
        const n = Math.min(CHUNK, req.bytes - done);
        if (req.toMemory) {
          const r = await b.read(req.diskOffset + done, buf, 0, n);
          if (!live()) return null;
          if (r !== null) return r;
          if (!this.scatter(buf, 0, n)) return 'fault';
        } else {
          if (!this.gather(buf, 0, n)) return 'fault';
          const r = await b.write(req.diskOffset + done, buf, 0, n);
          if (!live()) return null;
          if (r !== null) return r;
        }
      }
      return req.flushAfter ? await b.flush() : null;
    };
    io()
      .catch(() => 'EIO')
      .then((r) => this.finish(d, id, r));
  }

  private finish(d: Drive, id: number, r: 'short' | 'fault' | IoResult): void {
    if (this.runId !== id) return; // cancelled by a reset meanwhile
    const s = this.state;
    s.running = false;
    s.unit = -1;
    if (r === 'fault') s.status |= R.BMS_ERROR;
    if (r !== null || !s.stayActive || s.stopped) s.status &= ~R.BMS_ACTIVE;
    d.dmaDone(r);
  }
}
