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
 * cannot reach memory: the table is not fetched and reads as zeros (512
 * entries of 64 KiB, no EOT: what QEMU's ide-test no_busmaster observes), so
 * there is no address to use, and the data of such a run is dropped even if
 * the guest turns bus mastering on before it arrives (issue #15: it landed at
 * guest address 0); data from memory fails. Bus mastering turned off during a
 * run drops what is still to come.
 */
import type { GuestMemory } from '../../core/memory.ts';
import { RegisterTable, type RegDef } from '../../core/regs.ts';
import { StateError, type StateReader } from '../../core/state.ts';
import type { BlockBackend, IoResult } from '../../block/backend.ts';
import type { Drive } from './drive.ts';
import { BUF_BYTES, IO_FLUSH, IO_READ, IO_WRITE } from './drive.ts';
import * as R from './regs.ts';
import { BM_FAULT, BM_IOERR, BM_OK, BM_SHORT, EV_BM_DONE, EV_PRD, type DiskTrace } from '../../block/trace.ts';

/** Bits of the status register the device keeps (SFF-8038i 2.1.2); bit 7 (simplex) reads 0 on PIIX. */
const BMS_BITS = R.BMS_ACTIVE | R.BMS_ERROR | R.BMS_INTR | R.BMS_DMA0 | R.BMS_DMA1;

/**
 * The 16-byte BAR4 block (SFF-8038i section 2, PIIX3 datasheet 2.7): channel
 * n's registers at n * 8. Command: Start and Read/Write, the side effect runs
 * after the write landed. Status: Active read-only (the engine sets it),
 * Error and Interrupt write-1-to-clear, the two drive-DMA-capable bits
 * read/write. PRD table address: dword aligned (bits 1:0 read 0). Bytes 1, 3
 * and everything unclaimed read FFh (what QEMU answers).
 */
function channelRegs(n: 0 | 1): RegDef<readonly BusMaster[]>[] {
  const at = n * 8;
  return [
    { name: `CMD${n}`, off: at + R.BM_COMMAND, width: 1, mask: R.BMC_START | R.BMC_READ, write: (bms, v, old) => bms[n].commandWritten(v, old) },
    { name: `STATUS${n}`, off: at + R.BM_STATUS, width: 1, mask: R.BMS_ERROR | R.BMS_INTR | R.BMS_DMA0 | R.BMS_DMA1, w1c: R.BMS_ERROR | R.BMS_INTR },
    { name: `PRDT${n}`, off: at + R.BM_PRDT, width: 4, mask: 0xfffffffc },
  ];
}
export const BMDMA_REGS = new RegisterTable<readonly BusMaster[]>('bmdma', 16, [...channelRegs(0), ...channelRegs(1)], 0xff);

/** The engine's transfer in flight, as saved (the registers are saved beside it). */
export type BmSaved = {
  cmd: number;
  status: number;
  prdt: number;
  /** Drive whose DMA command waits for / uses the engine, or -1. */
  unit: number;
  running: boolean;
  stopped: boolean;
  stayActive: boolean;
};

/** Data moved per backend request through the drive's buffer. */
const CHUNK = BUF_BYTES - 4096;
/** Zero-copy DMA: views (PRD entries, split where a guest mapping ends) per backend request, well under IOV_MAX (1024). */
const VIEWS_PER_REQUEST = 256;
/** Zero-copy DMA: bytes per backend request (guest memory pinned at a time per channel). */
const PIECE_BYTES = 8 << 20;

/**
 * PRD entries read from guest memory at once (Linux's ata_piix uses at most
 * 128 per command, LIBATA_MAX_PRD): one memory read instead of one per
 * entry, within the page the chunk starts in.
 */
const PRD_CHUNK = 128;
const PAGE_SIZE = 4096;

/** The views of one backend request and their guest addresses (recycled: no allocation per request). */
interface Piece {
  readonly views: Uint8Array[];
  readonly gpas: Float64Array;
}
const EMPTY = new Uint8Array(0);
function newPiece(): Piece {
  return { views: new Array<Uint8Array>(VIEWS_PER_REQUEST).fill(EMPTY), gpas: new Float64Array(VIEWS_PER_REQUEST) };
}

export class BusMaster {
  /** Drive whose DMA command waits for / uses the engine, or -1. */
  unit = -1;
  running = false;
  /** Start bit cleared while running: the transfer finishes (as QEMU drains it) but Active stays clear. */
  stopped = false;
  /** The PRD table is longer than the transfer: Active stays set at the end (BMI-1 case 3). */
  stayActive = false;
  /** PCI command register Bus Master Enable, set by the PCI function. */
  busMaster = true;
  // PRD entries covering the transfer and the cursor in them (rebuilt by every run: not saved).
  private readonly prdAddr = new Uint32Array(R.PRD_MAX_ENTRIES);
  private readonly prdLen = new Uint32Array(R.PRD_MAX_ENTRIES);
  private prdCount = 0;
  /** This run fetched no PRD table (Bus Master Enable was off): it never touches memory. */
  private noMaster = false;
  private prdIdx = 0;
  private prdOff = 0;
  private runId = 0;
  /** The PRD table as read from guest memory, PRD_CHUNK entries at a time (walk()). */
  private readonly table = new Uint8Array(PRD_CHUNK * 8);
  /** The same bytes as the entries' two little-endian dwords (x86-64 is little-endian; int32: no boxing). */
  private readonly tableWords = new Int32Array(this.table.buffer);
  /** Free Pieces (one per backend request in flight, cancelled runs included: bounded by MAX_INFLIGHT_PER_DRIVE). */
  private readonly pieces: Piece[] = [];
  private readonly sCmd: number;
  private readonly sStatus: number;
  private readonly sPrdt: number;

  constructor(
    private readonly memory: GuestMemory,
    private readonly drive: (unit: number) => Drive,
    /** The controller's BMDMA_REGS storage (both channels). */
    private readonly regs: Uint32Array,
    private readonly ch: 0 | 1,
    /** The disk event trace (block/trace.ts), or null. */
    private readonly trace: DiskTrace | null = null,
  ) {
    this.sCmd = BMDMA_REGS.slot(`CMD${ch}`);
    this.sStatus = BMDMA_REGS.slot(`STATUS${ch}`);
    this.sPrdt = BMDMA_REGS.slot(`PRDT${ch}`);
  }

  get cmd(): number {
    return this.regs[this.sCmd];
  }
  get status(): number {
    return this.regs[this.sStatus];
  }
  get prdt(): number {
    return this.regs[this.sPrdt];
  }
  private setStatus(set: number, clear = 0): void {
    this.regs[this.sStatus] = (this.regs[this.sStatus] & ~clear) | set;
  }

  /** The channel raised INTRQ (unmasked): the status register's Interrupt bit follows. */
  flagInterrupt(): void {
    this.setStatus(R.BMS_INTR);
  }

  /** Command register written (the new value is in storage): Start 0->1 runs a pending command, 1->0 stops. */
  commandWritten(v: number, old: number): void {
    if (!(v & R.BMC_START)) {
      if (old & R.BMC_START) {
        this.setStatus(0, R.BMS_ACTIVE);
        if (this.running) this.stopped = true;
      }
    } else if (!(old & R.BMC_START)) {
      this.setStatus(R.BMS_ACTIVE);
      this.stopped = false;
      if (this.unit >= 0 && !this.running) this.run(this.drive(this.unit));
    }
  }

  /** A drive set up a DMA command: run it now if the engine is started, else when it is. */
  dmaReady(d: Drive): void {
    this.unit = d.unit;
    if (this.cmd & R.BMC_START && !this.running) {
      this.setStatus(R.BMS_ACTIVE);
      this.run(d);
    }
  }

  cancel(d: Drive): void {
    if (this.unit !== d.unit) return;
    this.unit = -1;
    if (this.running) {
      this.runId++;
      this.running = false;
      this.setStatus(0, R.BMS_ACTIVE);
    }
  }

  // ---- saved state ----

  save(): BmSaved {
    return { cmd: this.cmd, status: this.status, prdt: this.prdt, unit: this.unit, running: this.running, stopped: this.stopped, stayActive: this.stayActive };
  }

  /** Read and check a saved engine (nothing changes here). */
  static parse(r: StateReader): BmSaved {
    const cmd = r.u('cmd', 8);
    const status = r.u('status', 8);
    const prdt = r.u('prdt', 32);
    if (cmd & ~(R.BMC_START | R.BMC_READ)) throw new StateError(`${r.path}.cmd: bits other than Start and Read set (0x${cmd.toString(16)})`);
    if (status & ~BMS_BITS) throw new StateError(`${r.path}.status: reserved bits set (0x${status.toString(16)})`);
    if (prdt & 3) throw new StateError(`${r.path}.prdt: not dword aligned (0x${prdt.toString(16)})`);
    const unit = r.int('unit', -1, 1);
    const running = r.bool('running');
    if (running && unit < 0) throw new StateError(`${r.path}.running: a transfer runs for no drive`);
    return { cmd, status, prdt, unit, running, stopped: r.bool('stopped'), stayActive: r.bool('stayActive') };
  }

  /**
   * Take a parsed state. A transfer that was running is started again from
   * its first byte by resume(): every chunk it moves is the same data to the
   * same place (guest RAM and the image travel with the saved machine), and
   * its completion (Interrupt, Active, the drive's status) comes only at the end.
   */
  load(s: BmSaved): void {
    this.runId++; // a run of this engine before the restore completes into nothing
    this.regs[this.sCmd] = s.cmd;
    this.regs[this.sStatus] = s.status;
    this.regs[this.sPrdt] = s.prdt;
    this.unit = s.unit;
    this.running = s.running;
    this.stopped = s.stopped;
    this.stayActive = s.stayActive;
    this.prdCount = this.prdIdx = this.prdOff = 0;
  }

  /** After a restore: a transfer that was running starts again from its first byte (nothing moved is committed until it ends). */
  resume(): void {
    if (!this.running) return;
    this.running = false;
    if (this.unit >= 0) this.run(this.drive(this.unit));
  }

  /**
   * Walk the PRD table (bounded) keeping the entries that cover `bytes`;
   * total of the whole table, or -1 on a fault. The entries are read a
   * chunk at a time, each chunk within the page it starts in (an entry
   * across a page end alone), so a chunk reads only memory the entry-by-entry
   * walk would: where a chunk's read fails (its page is not RAM, or only
   * partly), its entries are read one by one, and the walk ends where that
   * walk would have: at the EOT before the bad bytes, or with -1 at them.
   */
  private walk(bytes: number): number {
    this.prdCount = this.prdIdx = this.prdOff = 0;
    let total = 0;
    const t = this.table;
    const w = this.tableWords;
    const prdt = this.prdt;
    this.noMaster = !this.busMaster;
    if (this.noMaster) return R.PRD_MAX_ENTRIES * 0x10000; // the zero table's total; no entry is kept
    for (let i = 0; i < R.PRD_MAX_ENTRIES; ) {
      const at = prdt + i * 8;
      const n = Math.max(1, Math.min(PRD_CHUNK, R.PRD_MAX_ENTRIES - i, Math.floor((PAGE_SIZE - (at % PAGE_SIZE)) / 8)));
      const whole = this.memory.read(at, t, 0, n * 8);
      for (let k = 0; k < n; k++, i++) {
        if (!whole && !this.memory.read(at + k * 8, t, k * 8, 8)) return -1;
        const size = w[2 * k + 1];
        const len = size & 0xfffe || 0x10000; // bit 0 is always 0; 0 means 64 KiB
        if (total < bytes) {
          this.prdAddr[this.prdCount] = w[2 * k]; // stored as its u32 bits
          this.prdLen[this.prdCount] = len;
          this.prdCount++;
        }
        total += len;
        if ((size & R.PRD_EOT) !== 0) return total;
      }
    }
    return total;
  }

  /** Copy src[off..off+n) to guest memory along the PRDs. */
  private scatter(src: Uint8Array, off: number, n: number): boolean {
    if (this.noMaster) return true; // no table, no address: the data goes nowhere
    while (n > 0) {
      if (this.prdIdx >= this.prdCount) return false;
      const l = Math.min(n, this.prdLen[this.prdIdx] - this.prdOff);
      if (this.busMaster && !this.memory.write(this.prdAddr[this.prdIdx] + this.prdOff, src, off, l)) return false;
      this.advance(l);
      off += l;
      n -= l;
    }
    return true;
  }

  private gather(dst: Uint8Array, off: number, n: number): boolean {
    if (this.noMaster || !this.busMaster) return false;
    while (n > 0) {
      if (this.prdIdx >= this.prdCount) return false;
      const l = Math.min(n, this.prdLen[this.prdIdx] - this.prdOff);
      if (!this.memory.read(this.prdAddr[this.prdIdx] + this.prdOff, dst, off, l)) return false;
      this.advance(l);
      off += l;
      n -= l;
    }
    return true;
  }

  private advance(l: number): void {
    this.prdOff += l;
    if (this.prdOff >= this.prdLen[this.prdIdx]) {
      this.prdIdx++;
      this.prdOff = 0;
    }
  }

  private run(d: Drive): void {
    const req = d.dmaRequest();
    if (req === null) return;
    if (req.diskOffset >= 0 && !d.canIssue()) return d.waitForDmaSlot(); // dmaReady() again when one returns
    const id = ++this.runId;
    this.running = true;
    const total = this.walk(req.bytes);
    if (this.trace !== null) this.trace.record(EV_PRD, this.prdCount, total < 0 ? 0 : total);
    if (total < 0) return this.finish(d, id, 'fault');
    if (total < req.bytes) return this.finish(d, id, 'short');
    this.stayActive = total > req.bytes;
    // The request's fields are passed on as values: the drive refills its request object for its next command.
    if (req.diskOffset >= 0 && d.backend !== null && this.busMaster && !this.noMaster && this.memory.dmaView !== undefined) {
      void this.ioViews(d, d.backend, id, d.state.gen, req.toMemory, req.diskOffset, req.bytes, req.flushAfter);
    } else {
      void this.ioCopy(d, id, d.state.gen, req.toMemory, req.diskOffset, req.bytes, req.flushAfter);
    }
  }

  /**
   * Zero-copy DMA: the backend reads into (or writes from) views of the guest
   * pages each PRD entry names, one vectored request per piece of at most
   * VIEWS_PER_REQUEST views and PIECE_BYTES (a guest request of up to 8 MiB is
   * one backend request). The views stay pinned until the request returns,
   * even if the run is cancelled meanwhile. A PRD address outside RAM ends
   * the run with 'fault' after the data before it moved, as the copy path does.
   */
  private async ioViews(d: Drive, b: BlockBackend, id: number, gen: number, toMemory: boolean, diskOffset: number, bytes: number, flushAfter: boolean): Promise<void> {
    let r: 'fault' | IoResult;
    try {
      r = await this.moveViews(d, b, id, gen, toMemory, diskOffset, bytes, flushAfter);
    } catch {
      r = 'EIO';
    }
    this.finish(d, id, r);
  }

  private async moveViews(d: Drive, b: BlockBackend, id: number, gen: number, toMemory: boolean, diskOffset: number, bytes: number, flushAfter: boolean): Promise<'fault' | IoResult> {
    const mem = this.memory;
    // Bounded: every piece moves at least one byte (a PRD entry is at least 2 bytes) or ends the run.
    for (let done = 0; done < bytes; ) {
      if (!this.busMaster) return toMemory ? null : 'fault'; // turned off meanwhile: the rest goes nowhere
      const piece = this.pieces.pop() ?? newPiece();
      let n = 0;
      let len = 0;
      let fault = false;
      while (done + len < bytes && n < VIEWS_PER_REQUEST && len < PIECE_BYTES) {
        if (this.prdIdx >= this.prdCount) {
          fault = true;
          break;
        }
        const gpa = this.prdAddr[this.prdIdx] + this.prdOff;
        const v = mem.dmaView!(gpa, Math.min(this.prdLen[this.prdIdx] - this.prdOff, bytes - done - len, PIECE_BYTES - len));
        if (v === null) {
          fault = true;
          break;
        }
        piece.views[n] = v;
        piece.gpas[n] = gpa;
        n++;
        len += v.length;
        this.advance(v.length);
      }
      let r: IoResult = null;
      if (n > 0) {
        d.traceIssue(toMemory ? IO_READ : IO_WRITE, len);
        r = await d.track(toMemory ? b.readv(diskOffset + done, piece.views, n) : b.writev(diskOffset + done, piece.views, n), toMemory ? IO_READ : IO_WRITE, diskOffset + done, len);
        for (let i = 0; i < n; i++) {
          mem.dmaRelease!(piece.views[i], piece.gpas[i], toMemory);
          piece.views[i] = EMPTY;
        }
      }
      this.pieces.push(piece);
      if (this.runId !== id || d.state.gen !== gen) return null;
      if (r !== null) return r;
      if (fault) return 'fault';
      done += len;
    }
    if (!flushAfter) return null;
    d.traceIssue(IO_FLUSH, 0);
    return await d.track(b.flush(), IO_FLUSH);
  }

  /** DMA through the drive's buffer, CHUNK bytes per backend request (guest memory without dmaView, replies, no bus mastering). */
  private async ioCopy(d: Drive, id: number, gen: number, toMemory: boolean, diskOffset: number, bytes: number, flushAfter: boolean): Promise<void> {
    let r: 'fault' | IoResult;
    try {
      r = await this.moveCopy(d, id, gen, toMemory, diskOffset, bytes, flushAfter);
    } catch {
      r = 'EIO';
    }
    this.finish(d, id, r);
  }

  private async moveCopy(d: Drive, id: number, gen: number, toMemory: boolean, diskOffset: number, bytes: number, flushAfter: boolean): Promise<'fault' | IoResult> {
    const buf = d.state.buf;
    if (diskOffset < 0) return this.scatter(buf, 0, bytes) ? null : 'fault';
    const b = d.backend;
    if (b === null) return 'ENOMEDIUM';
    // Bounded: at most bytes / CHUNK iterations, each a real request.
    for (let done = 0; done < bytes; done += CHUNK) {
      const n = Math.min(CHUNK, bytes - done);
      d.traceIssue(toMemory ? IO_READ : IO_WRITE, n);
      if (toMemory) {
        const r = await d.track(b.read(diskOffset + done, buf, 0, n), IO_READ, diskOffset + done, n);
        if (this.runId !== id || d.state.gen !== gen) return null;
        if (r !== null) return r;
        if (!this.scatter(buf, 0, n)) return 'fault';
      } else {
        if (!this.gather(buf, 0, n)) return 'fault';
        const r = await d.track(b.write(diskOffset + done, buf, 0, n), IO_WRITE, diskOffset + done, n);
        if (this.runId !== id || d.state.gen !== gen) return null;
        if (r !== null) return r;
      }
    }
    if (!flushAfter) return null;
    d.traceIssue(IO_FLUSH, 0);
    return await d.track(b.flush(), IO_FLUSH);
  }

  private finish(d: Drive, id: number, r: 'short' | 'fault' | IoResult): void {
    if (this.runId !== id) return; // cancelled by a reset meanwhile
    if (this.trace !== null) this.trace.record(EV_BM_DONE, this.ch, r === null ? BM_OK : r === 'short' ? BM_SHORT : r === 'fault' ? BM_FAULT : BM_IOERR);
    this.running = false;
    this.unit = -1;
    if (r === 'fault') this.setStatus(R.BMS_ERROR);
    if (r !== null || !this.stayActive || this.stopped) this.setStatus(0, R.BMS_ACTIVE);
    d.dmaDone(r);
  }
}
