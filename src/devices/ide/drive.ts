/**
 * One IDE device: an ATA disk, an ATAPI CD-ROM, or nothing (an empty slot
 * still holds the task file the guest wrote, as the bus is shared).
 *
 * ATA commands are a table indexed by opcode with flags (which device kinds
 * accept it, LBA48, set DSC on success), like QEMU's ide_cmd_table. A
 * command needing the backend sets BSY and returns: the ioreq is answered at
 * once and the promise's completion moves the state machine on. A PIO
 * transfer in progress is resumed by name (state.end), never by a closure,
 * so the whole state is plain data.
 */
import type { BlockBackend, IoResult } from '../../block/backend.ts';
import type { GuestMemory } from '../../core/memory.ts';
import { identifyDevice, identifyPacketDevice, MAX_MULT_SECTORS } from './identify.ts';
import { atapiCommand, type AtapiSource } from './atapi.ts';
import { StateError, type StateReader } from '../../core/state.ts';
import { EV_COMPLETE, EV_SUBMIT, EV_XFER, type DiskTrace } from '../../block/trace.ts';
import * as R from './regs.ts';

export type DriveKind = 'none' | 'disk' | 'cdrom';
/** What happens when the guest has moved the whole PIO window (QEMU's end_transfer_func, by name). */
export type EndTransfer = 'none' | 'stop' | 'ataReadNext' | 'ataWriteBlock' | 'atapiPacket' | 'atapiDataNext';
/** Backend request in flight (BSY shown meanwhile). */
export type IoOp = 'none' | 'ataRead' | 'ataWrite' | 'flush' | 'atapiRead';
/** DMA command waiting for / running on the bus master. */
export type DmaOp = 'none' | 'ataRead' | 'ataWrite' | 'atapiIn';

/** Drive.waiting: nothing, a request by state.io (resumeIo), the bus master (dmaReady). */
const WAIT_NONE = 0;
const WAIT_IO = 1;
const WAIT_DMA = 2;

/** Bytes of the per-drive data buffer: the largest PIO window (ATAPI byte count 0xfffe spans 33 CD sectors) and one DMA chunk. */
export const BUF_BYTES = 128 * 1024 + 4096;
/**
 * Backend requests one drive may have in flight: the live one plus those a
 * reset (SRST, DEVICE RESET) or a restore abandoned and that are still
 * running. A request in the thread pool cannot be called back, and each
 * holds the 132 KiB buffer it reads into until it returns, so without a bound
 * a guest looping READ SECTORS + SRST on a slow disk grows us without limit
 * (issue #15: 387 MiB from 3000 cycles). A command that would go beyond it
 * waits, BSY, until one returns: what QEMU's reset does synchronously when it
 * drains the request it cancels.
 */
export const MAX_INFLIGHT_PER_DRIVE = 4;
export const SECTOR = 512;
export const CD_SECTOR = 2048;
/** PIO read-ahead per backend request: 128 KiB (disk sectors, CD blocks). */
const RA_SECTORS = 256;
const CD_RA_SECTORS = 64;

export interface DriveState {
  kind: DriveKind;
  serial: string;
  firmware: string;
  model: string;
  // Task file (ATA8-ACS 6); the hob* copies are the previous writes (LBA48 high bytes).
  feature: number;
  nsector: number;
  sector: number;
  lcyl: number;
  hcyl: number;
  select: number;
  hobFeature: number;
  hobNsector: number;
  hobSector: number;
  hobLcyl: number;
  hobHcyl: number;
  status: number;
  error: number;
  // Geometry: default (IDENTIFY words 1/3/6) and current (INITIALIZE DEVICE PARAMETERS, words 54-56).
  cylinders: number;
  heads: number;
  sectors: number;
  curCylinders: number;
  curHeads: number;
  curSectors: number;
  multSectors: number;
  /** Last SET FEATURES transfer mode value (mode type << 3 | mode). */
  xferMode: number;
  writeCache: boolean;
  // ATA command in progress.
  lba48: boolean;
  /** Sectors left in the command. */
  nsLeft: number;
  /** Sectors per DRQ block (1, or the multiple count). */
  reqSectors: number;
  /** Sectors in the block now in the buffer. */
  blockSectors: number;
  /** PIO read-ahead: sectors (CD: blocks) [raLba, raLba + raSectors) of this command are in buf from offset 0. */
  raLba: number;
  raSectors: number;
  pioDir: 'none' | 'in' | 'out';
  end: EndTransfer;
  bufPos: number;
  bufEnd: number;
  io: IoOp;
  /** Bumped by every reset: completions of an older generation are dropped. */
  gen: number;
  dma: DmaOp;
  // ATAPI.
  cdb: number[];
  senseKey: number;
  asc: number;
  ascq: number;
  /** QEMU's cdrom_changed: 1 = report NOT READY once, 2 = then UNIT ATTENTION, 0 = settled. */
  mediaChanged: number;
  /** GET EVENT STATUS media event code to report (0 none, 2 new media, 3 removal). */
  mediaEvent: number;
  trayOpen: boolean;
  trayLocked: boolean;
  atapiDma: boolean;
  byteLimit: number;
  /** Data-in phase: bytes left, bytes done, size of the DRQ block shown now. */
  xferLeft: number;
  xferPos: number;
  blockLen: number;
  /** Data source: CD LBA of the first block, or -1 for the reply in the buffer. */
  srcLba: number;
  /** The data buffer (PIO window, replies, DMA chunks). */
  buf: Uint8Array;
}

/**
 * A drive as saved: the task file, the command in progress (the PIO window
 * and what ends it by name, the backend request and DMA command by name),
 * the data buffer, and for a CD-ROM its ATAPI state. Configuration (serial,
 * model, default geometry) is not saved: it comes with the machine.
 */
export type DriveSaved = Omit<DriveState, ConfigField | 'gen' | keyof AtapiSaved | 'buf'> & {
  /** A medium is loaded (the backend is the machine's: it must have one too). */
  medium: boolean;
  /** The data buffer (BUF_BYTES; empty for an empty slot, which never uses it). */
  buf: Uint8Array;
  /** CD-ROM only (null for a disk or an empty slot). */
  atapi: AtapiSaved | null;
};

/** What comes with the machine's configuration, not with saved state. */
type ConfigField = 'serial' | 'firmware' | 'model' | 'cylinders' | 'heads' | 'sectors';

/** The ATAPI part of a drive's state, saved for a CD-ROM only. */
export type AtapiSaved = Pick<
  DriveState,
  | 'cdb'
  | 'senseKey'
  | 'asc'
  | 'ascq'
  | 'mediaChanged'
  | 'mediaEvent'
  | 'trayOpen'
  | 'trayLocked'
  | 'atapiDma'
  | 'byteLimit'
  | 'xferLeft'
  | 'xferPos'
  | 'blockLen'
  | 'srcLba'
>;

/** ATAPI fields of a device that is not a CD-ROM (what the constructor sets). */
const ATAPI_IDLE: AtapiSaved = {
  cdb: new Array(12).fill(0),
  senseKey: 0,
  asc: 0,
  ascq: 0,
  mediaChanged: 0,
  mediaEvent: 0,
  trayOpen: false,
  trayLocked: false,
  atapiDma: false,
  byteLimit: 0,
  xferLeft: 0,
  xferPos: 0,
  blockLen: 0,
  srcLba: -1,
};

const END_NAMES: readonly EndTransfer[] = ['none', 'stop', 'ataReadNext', 'ataWriteBlock', 'atapiPacket', 'atapiDataNext'];
/** What each device kind can have in progress (an empty slot never runs a command). */
const ENDS: Record<DriveKind, { in: readonly EndTransfer[]; out: readonly EndTransfer[] }> = {
  none: { in: [], out: [] },
  disk: { in: ['stop', 'ataReadNext'], out: ['ataWriteBlock'] },
  cdrom: { in: ['stop', 'atapiDataNext'], out: ['atapiPacket'] },
};
const IO_OPS: Record<DriveKind, readonly IoOp[]> = { none: ['none'], disk: ['none', 'ataRead', 'ataWrite', 'flush'], cdrom: ['none', 'atapiRead'] };
const DMA_OPS: Record<DriveKind, readonly DmaOp[]> = { none: ['none'], disk: ['none', 'ataRead', 'ataWrite'], cdrom: ['none', 'atapiIn'] };
/** Bounds for byte and block counters (2^42 bytes: far beyond any image; the range checks below are the real limit). */
const MAX_BYTES = 2 ** 42;

export interface DriveOptions {
  kind: DriveKind;
  backend?: BlockBackend | null;
  serial?: string;
  model?: string;
  firmware?: string;
  writeCache?: boolean;
}

/** What a drive needs from its channel. */
export interface ChannelPort {
  readonly memory: GuestMemory;
  /** The channel's number: a drive's slot is ch * 2 + unit. */
  readonly ch: 0 | 1;
  /** The disk event trace (block/trace.ts), or null. */
  readonly trace: DiskTrace | null;
  raiseIrq(): void;
  /** A DMA command is set up: the bus master moves its data once started. */
  dmaReady(d: Drive): void;
  /** The drive was reset: forget any DMA it had pending or running. */
  dmaCancel(d: Drive): void;
  warn(obj: object, msg: string): void;
}

/** What the bus master needs to move a DMA command's data. */
export interface DmaRequest {
  toMemory: boolean;
  bytes: number;
  /** Byte offset on the backend, or -1 when the data is the reply in d.state.buf. */
  diskOffset: number;
  flushAfter: boolean;
}

function fillReq(q: DmaRequest, toMemory: boolean, bytes: number, diskOffset: number, flushAfter: boolean): DmaRequest {
  q.toMemory = toMemory;
  q.bytes = bytes;
  q.diskOffset = diskOffset;
  q.flushAfter = flushAfter;
  return q;
}

// Command table flags.
const F_DISK = 1; // accepted by ATA disks
const F_CD = 2; // accepted by ATAPI devices
const F_DSC = 4; // sets DSC on success
const F_LBA48 = 8; // 48-bit addressing and counts
const F_SIG = 16; // on ATAPI: put the signature then abort (so drivers probe for ATAPI; ATA8-ACS 7.16.1)

/** Handler returns true when the command is complete (clear BSY, raise INTRQ), false when it drives its own phases. */
type Handler = (d: Drive, cmd: number) => boolean;
interface CommandEntry {
  run: Handler;
  flags: number;
}

/** The task-file fields an address is made of. */
type AddressFields = Pick<DriveState, 'select' | 'lba48' | 'sector' | 'lcyl' | 'hcyl' | 'hobSector' | 'hobLcyl' | 'hobHcyl' | 'curHeads' | 'curSectors'>;

/** Address in sectors from the task file (LBA28, LBA48 or CHS), or -1 for an impossible CHS address. */
function lbaOf(s: AddressFields): number {
  if (s.select & R.DEV_LBA) {
    if (s.lba48) {
      return s.hobHcyl * 2 ** 40 + s.hobLcyl * 2 ** 32 + s.hobSector * 2 ** 24 + ((s.hcyl << 16) | (s.lcyl << 8) | s.sector);
    }
    return ((s.select & 0x0f) << 24) | (s.hcyl << 16) | (s.lcyl << 8) | s.sector;
  }
  const head = s.select & 0x0f;
  if (s.sector === 0 || s.sector > s.curSectors || head >= s.curHeads) return -1;
  return (((s.hcyl << 8) | s.lcyl) * s.curHeads + head) * s.curSectors + (s.sector - 1);
}

/** What a request to the image is, for the counters (track()). */
export const IO_OTHER = 0;
export const IO_READ = 1;
export const IO_WRITE = 2;
export const IO_FLUSH = 3;
export type IoKind = typeof IO_OTHER | typeof IO_READ | typeof IO_WRITE | typeof IO_FLUSH;

/**
 * Requests this drive made of its image since start, across media changes
 * (query-blockstats, HMP `info blockstats`; xentop's VBD columns through
 * libxenstat). Counted when issued, by track(): plain increments, nothing
 * allocated. A request is what reached the image: one DMA command of up to
 * 8 MiB is one, a PIO read with read-ahead is one per refill.
 */
export class DriveIoStats {
  rdOps = 0;
  rdBytes = 0;
  wrOps = 0;
  wrBytes = 0;
  flushOps = 0;
  /** Requests that ended in an error (EIO, ENOSPC...) of any kind. */
  failed = 0;
  /** End of the highest write: QEMU's wr_highest_offset. */
  wrHighest = 0;
}

export class Drive {
  readonly state: DriveState;
  backend: BlockBackend | null;
  readonly io = new DriveIoStats();
  /** Backend requests running, abandoned ones included (runtime only: not saved). */
  private inflight = 0;
  /** What waits for inflight to drop below MAX_INFLIGHT_PER_DRIVE. */
  private waiting = WAIT_NONE;
  /** Removed from its slot by PV unplug. */
  private gone = false;
  /** Who waits for inflight to reach 0 (drained()): at most one per QMP media change in progress. */
  private drainWaiters: (() => void)[] = [];
  private readonly dmaReq: DmaRequest = { toMemory: false, bytes: 0, diskOffset: -1, flushAfter: false };
  private readonly settledOk = (r: IoResult): IoResult => {
    if (r !== null) this.io.failed++;
    if (this.port.trace !== null) this.port.trace.record(EV_COMPLETE, this.slot << 2, r === null ? 0 : 1);
    this.settled();
    return r;
  };
  private readonly settledErr = (): IoResult => {
    this.io.failed++;
    if (this.port.trace !== null) this.port.trace.record(EV_COMPLETE, this.slot << 2, 1);
    this.settled();
    return 'EIO';
  };

  constructor(
    readonly port: ChannelPort,
    readonly unit: 0 | 1,
    o: DriveOptions,
  ) {
    this.backend = o.backend ?? null;
    const kind = o.kind;
    this.state = {
      kind,
      serial: o.serial ?? `STUBDM0000${unit}`,
      firmware: o.firmware ?? '1.0',
      model: o.model ?? (kind === 'cdrom' ? 'STUBDM DVD-ROM' : 'STUBDM HARDDISK'),
      feature: 0,
      nsector: 0,
      sector: 0,
      lcyl: 0,
      hcyl: 0,
      select: R.DEV_OBS,
      hobFeature: 0,
      hobNsector: 0,
      hobSector: 0,
      hobLcyl: 0,
      hobHcyl: 0,
      status: 0,
      error: 0,
      cylinders: 0,
      heads: 16,
      sectors: 63,
      curCylinders: 0,
      curHeads: 16,
      curSectors: 63,
      multSectors: MAX_MULT_SECTORS,
      xferMode: 0x45, // UDMA mode 5 active until the guest picks a mode (what QEMU reports)
      writeCache: o.writeCache ?? true,
      lba48: false,
      nsLeft: 0,
      reqSectors: 1,
      blockSectors: 0,
      raLba: 0,
      raSectors: 0,
      pioDir: 'none',
      end: 'none',
      bufPos: 0,
      bufEnd: 0,
      io: 'none',
      gen: 0,
      dma: 'none',
      cdb: new Array(12).fill(0),
      senseKey: 0,
      asc: 0,
      ascq: 0,
      mediaChanged: 0,
      mediaEvent: 0,
      trayOpen: false,
      trayLocked: false,
      atapiDma: false,
      byteLimit: 0,
      xferLeft: 0,
      xferPos: 0,
      blockLen: 0,
      srcLba: -1,
      buf: new Uint8Array(BUF_BYTES),
    };
    if (kind === 'disk') {
      const cyl = Math.max(1, Math.min(16383, Math.floor(this.totalSectors() / (16 * 63))));
      this.state.cylinders = this.state.curCylinders = cyl;
    }
    this.reset();
  }

  get present(): boolean {
    return this.state.kind !== 'none';
  }

  /** IDE slot 0-3 (primary master, primary slave, secondary master, secondary slave). */
  get slot(): number {
    return this.port.ch * 2 + this.unit;
  }

  /** Disk: 512-byte sectors; CD: 2048-byte blocks of the medium (0 when empty or tray open). */
  totalSectors(): number {
    const b = this.backend;
    if (b === null) return 0;
    return this.state.kind === 'cdrom' ? Math.floor(b.size / CD_SECTOR) : Math.floor(b.size / SECTOR);
  }

  mediumPresent(): boolean {
    return this.backend !== null && !this.state.trayOpen;
  }

  // ---- reset and signatures ------------------------------------------------

  /** Power-on / SRST / DEVICE RESET state (QEMU ide_reset): cancels the command in progress. */
  reset(): void {
    const s = this.state;
    s.gen++;
    this.waiting = WAIT_NONE;
    // A request still in flight keeps writing into (or reading from) the old buffer:
    // give the next command a fresh one so a stale read cannot land in its data.
    // At most MAX_INFLIGHT_PER_DRIVE such buffers live: each goes with its request.
    if (this.inflight > 0) s.buf = new Uint8Array(BUF_BYTES);
    s.multSectors = MAX_MULT_SECTORS;
    s.feature = s.error = s.nsector = s.sector = s.lcyl = s.hcyl = 0;
    s.hobFeature = s.hobSector = s.hobNsector = s.hobLcyl = s.hobHcyl = 0;
    s.select = R.DEV_OBS;
    s.status = s.kind === 'disk' ? R.ST_DRDY | R.ST_DSC : 0;
    s.lba48 = false;
    s.senseKey = s.asc = s.ascq = 0;
    s.atapiDma = false;
    s.trayLocked = false;
    s.io = 'none';
    s.dma = 'none';
    s.raSectors = 0;
    this.stopTransfer();
    s.status = s.kind === 'disk' ? R.ST_DRDY | R.ST_DSC : 0;
    this.setSignature();
  }

  /** Device signature in the task file (ATA8-ACS 9.12 "Signature and persistence"). */
  setSignature(): void {
    const s = this.state;
    s.select &= ~0x0f;
    s.nsector = 1;
    s.sector = 1;
    if (s.kind === 'cdrom') {
      s.lcyl = R.SIG_ATAPI_MID;
      s.hcyl = R.SIG_ATAPI_HIGH;
    } else if (s.kind === 'disk') {
      s.lcyl = s.hcyl = 0;
    } else {
      s.lcyl = s.hcyl = 0xff;
    }
  }

  // ---- PIO data port --------------------------------------------------------

  /** Read `size` bytes (2 or 4) from the data port; 0 unless a PIO-in transfer shows DRQ (QEMU). */
  readData(size: number): number {
    const s = this.state;
    if (s.pioDir !== 'in' || !(s.status & R.ST_DRQ)) return 0;
    const b = s.buf;
    const p = s.bufPos;
    let v = b[p] | (b[p + 1] << 8);
    if (size === 4) v = (v | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
    s.bufPos = p + size;
    if (s.bufPos >= s.bufEnd) this.endTransfer();
    return v;
  }

  writeData(size: number, v: number): void {
    const s = this.state;
    if (s.pioDir !== 'out' || !(s.status & R.ST_DRQ)) return;
    const b = s.buf;
    const p = s.bufPos;
    b[p] = v;
    b[p + 1] = v >>> 8;
    if (size === 4) {
      b[p + 2] = v >>> 16;
      b[p + 3] = v >>> 24;
    }
    s.bufPos = p + size;
    if (s.bufPos >= s.bufEnd) this.endTransfer();
  }

  /** REP INS fast path: whole elements copied at once; stops where the data runs out. */
  readRep(size: number, count: number, dst: Uint8Array, dstOff: number): number {
    let done = 0;
    // Bounded: each pass moves at least one element or leaves.
    while (done < count) {
      const s = this.state;
      if (s.pioDir !== 'in' || !(s.status & R.ST_DRQ)) break;
      const avail = Math.floor((s.bufEnd - s.bufPos + size - 1) / size);
      const n = Math.min(avail, count - done);
      if (n <= 0) break;
      const bytes = n * size;
      dst.set(s.buf.subarray(s.bufPos, s.bufPos + bytes), dstOff + done * size);
      s.bufPos += bytes;
      done += n;
      if (s.bufPos >= s.bufEnd) this.endTransfer();
    }
    return done;
  }

  writeRep(size: number, count: number, src: Uint8Array, srcOff: number): number {
    let done = 0;
    while (done < count) {
      const s = this.state;
      if (s.pioDir !== 'out' || !(s.status & R.ST_DRQ)) break;
      const avail = Math.floor((s.bufEnd - s.bufPos + size - 1) / size);
      const n = Math.min(avail, count - done);
      if (n <= 0) break;
      const bytes = n * size;
      s.buf.set(src.subarray(srcOff + done * size, srcOff + done * size + bytes), s.bufPos);
      s.bufPos += bytes;
      done += n;
      if (s.bufPos >= s.bufEnd) this.endTransfer();
    }
    return done;
  }

  /** Show a PIO window of the buffer to the guest (QEMU ide_transfer_start). */
  startTransfer(dir: 'in' | 'out', start: number, len: number, end: EndTransfer): void {
    const s = this.state;
    s.pioDir = dir;
    s.bufPos = start;
    s.bufEnd = start + len;
    s.end = end;
    s.status |= R.ST_DRQ;
  }

  stopTransfer(): void {
    const s = this.state;
    s.pioDir = 'none';
    s.end = 'none';
    s.bufPos = s.bufEnd = 0;
    s.status &= ~R.ST_DRQ;
  }

  private endTransfer(): void {
    const e = this.state.end;
    this.state.end = 'none';
    END_TRANSFER[e](this);
  }

  // ---- task file helpers ------------------------------------------------------

  abort(): void {
    this.state.status = R.ST_DRDY | R.ST_ERR;
    this.state.error = R.ER_ABRT;
  }

  /** Error output of a data command: stop the transfer, ERR + the given error bits, interrupt. */
  fail(error: number): void {
    this.stopTransfer();
    this.state.status = R.ST_DRDY | R.ST_ERR;
    this.state.error = error;
    this.state.io = 'none';
    this.state.dma = 'none';
    this.port.raiseIrq();
  }

  /** Sector count with the "0 means 256 / 65536" rule (ATA8-ACS 7.36.3.2, 7.37.3.2). */
  private transformCount(lba48: boolean): void {
    const s = this.state;
    s.lba48 = lba48;
    if (!lba48) s.nsLeft = s.nsector === 0 ? 256 : s.nsector;
    else s.nsLeft = s.nsector === 0 && s.hobNsector === 0 ? 65536 : (s.hobNsector << 8) | s.nsector;
  }

  /** Trace: the data command's sector count and first LBA (low 32 bits), once the count is known. */
  private traceXfer(): void {
    const tr = this.port.trace;
    if (tr !== null) tr.record(EV_XFER, this.state.nsLeft, this.getLba() >>> 0);
  }

  /** Current address in sectors, or -1 for an impossible CHS address. */
  getLba(): number {
    return lbaOf(this.state);
  }

  setLba(n: number): void {
    const s = this.state;
    if (s.select & R.DEV_LBA) {
      if (s.lba48) {
        const hi = Math.floor(n / 2 ** 24);
        s.hobSector = hi & 0xff;
        s.hobLcyl = (hi >>> 8) & 0xff;
        s.hobHcyl = (hi >>> 16) & 0xff;
      } else {
        s.select = (s.select & 0xf0) | (Math.floor(n / 2 ** 24) & 0x0f);
      }
      s.sector = n & 0xff;
      s.lcyl = (n >>> 8) & 0xff;
      s.hcyl = (n >>> 16) & 0xff;
    } else {
      const cyl = Math.floor(n / (s.curHeads * s.curSectors));
      const r = n % (s.curHeads * s.curSectors);
      s.hcyl = (cyl >>> 8) & 0xff;
      s.lcyl = cyl & 0xff;
      s.select = (s.select & 0xf0) | (Math.floor(r / s.curSectors) & 0x0f);
      s.sector = (r % s.curSectors) + 1;
    }
  }

  /** Address check for nsLeft sectors at the current address; sets IDNF and returns false if out of range. */
  private rangeOk(lba: number, count: number): boolean {
    if (lba < 0 || lba + count > this.totalSectors()) {
      this.port.warn({ lba, count, capacity: this.totalSectors() }, 'ide: LBA out of range');
      this.abort();
      this.state.error = R.ER_IDNF | R.ER_ABRT;
      return false;
    }
    return true;
  }

  // ---- command dispatch ---------------------------------------------------------

  /** Command register write for this (selected) drive. */
  execCommand(cmd: number): void {
    const s = this.state;
    if (s.kind === 'none') return; // nobody to answer (QEMU: commands to an absent slave are ignored)
    // Only DEVICE RESET reaches an ATAPI device that is busy (ATA8-ACS 7.10).
    if (s.status & (R.ST_BSY | R.ST_DRQ) && !(cmd === R.CMD_DEVICE_RESET && s.kind === 'cdrom')) return;
    const e = COMMANDS[cmd];
    const kindFlag = s.kind === 'disk' ? F_DISK : F_CD;
    if (e === undefined || !(e.flags & kindFlag)) {
      if (e !== undefined && e.flags & F_SIG && s.kind === 'cdrom') this.setSignature();
      this.abort();
      this.port.raiseIrq();
      return;
    }
    s.status = R.ST_DRDY | R.ST_BSY;
    s.error = 0;
    if (e.run(this, cmd)) {
      s.status &= ~R.ST_BSY;
      if (e.flags & F_DSC && !s.error) s.status |= R.ST_DSC;
      this.port.raiseIrq();
    }
  }

  // ---- backend completions ------------------------------------------------------

  /**
   * Run a backend request; the completion is dropped if the drive was reset
   * meanwhile. At MAX_INFLIGHT_PER_DRIVE the request waits (BSY, state.io
   * set): resumeIo() issues it by name once one in flight returns.
   */
  private submit(op: IoOp, start: () => Promise<IoResult>, done: (r: IoResult) => void, offset = 0, bytes = 0): void {
    const s = this.state;
    s.io = op;
    s.status |= R.ST_BSY;
    if (!this.canIssue()) {
      this.waiting = WAIT_IO;
      return;
    }
    const gen = s.gen;
    const kind = op === 'ataWrite' ? IO_WRITE : op === 'flush' ? IO_FLUSH : IO_READ;
    this.traceIssue(kind, bytes);
    this.track(start(), kind, offset, bytes).then((r) => {
      if (this.state.gen !== gen || this.state.io !== op) return;
      this.state.io = 'none';
      this.state.status &= ~R.ST_BSY;
      done(r);
    });
  }

  /** Another backend request may start now (below MAX_INFLIGHT_PER_DRIVE). */
  canIssue(): boolean {
    return this.inflight < MAX_INFLIGHT_PER_DRIVE;
  }

  /** The bus master found no room (canIssue() false): it is told again (dmaReady) when a request returns. */
  waitForDmaSlot(): void {
    this.waiting = WAIT_DMA;
  }

  /**
   * Trace: a backend request is about to be issued. Called before the
   * backend's own call, which may finish the request before it returns (a
   * read found in the page cache).
   */
  traceIssue(kind: IoKind, bytes: number): void {
    const tr = this.port.trace;
    if (tr !== null) tr.record(EV_SUBMIT, (this.slot << 2) | kind, bytes);
  }

  /** Count a backend request until it settles (never rejects: a throw becomes 'EIO'); `kind` and `bytes` feed the counters. */
  track(p: Promise<IoResult>, kind: IoKind = IO_OTHER, offset = 0, bytes = 0): Promise<IoResult> {
    const io = this.io;
    if (kind === IO_READ) {
      io.rdOps++;
      io.rdBytes += bytes;
    } else if (kind === IO_WRITE) {
      io.wrOps++;
      io.wrBytes += bytes;
      if (offset + bytes > io.wrHighest) io.wrHighest = offset + bytes;
    } else if (kind === IO_FLUSH) {
      io.flushOps++;
    }
    this.inflight++;
    return p.then(this.settledOk, this.settledErr);
  }

  private settled(): void {
    this.inflight--;
    if (this.inflight === 0 && this.drainWaiters.length > 0) for (const w of this.drainWaiters.splice(0)) w();
    if (this.waiting === WAIT_NONE || this.gone || !this.canIssue()) return;
    const w = this.waiting;
    this.waiting = WAIT_NONE;
    if (w === WAIT_IO) this.resumeIo();
    else this.port.dmaReady(this);
  }

  /**
   * The drive left its slot (PV unplug): whatever it has in flight completes
   * into nothing (no interrupt, no state change seen by anyone).
   */
  detach(): void {
    this.gone = true;
    this.state.gen++;
    this.waiting = WAIT_NONE;
  }

  private ioError(op: string, r: string, lba: number): void {
    this.port.warn({ unit: this.unit, op, lba, err: r }, 'ide: backend error');
  }

  /**
   * PIO read: one DRQ block at a time, INTRQ per block, none at the end
   * (ATA8-ACS 7.36). The backend is asked for up to RA_SECTORS of the
   * command at once (firmware loads kernels with READ SECTORS one sector per
   * block); later blocks are then shown straight from the buffer. If that
   * larger read fails, the block alone is read again so the error lands on
   * the right sector.
   */
  startSectorRead(ahead = RA_SECTORS): void {
    const s = this.state;
    const lba = this.getLba();
    const n = Math.min(s.nsLeft, s.reqSectors);
    s.blockSectors = n;
    if (s.raSectors > 0 && lba >= s.raLba && lba + n <= s.raLba + s.raSectors) return this.showReadBlock(lba, n);
    const want = Math.max(n, Math.min(s.nsLeft, ahead));
    s.raSectors = 0;
    s.status = R.ST_DRDY | R.ST_DSC | R.ST_BSY;
    this.submit('ataRead', () => this.backend!.read(lba * SECTOR, s.buf, 0, want * SECTOR), (r) => {
      if (r !== null) {
        if (want > n) return this.startSectorRead(n);
        this.ioError('read', r, lba);
        return this.fail(R.ER_UNC);
      }
      s.raLba = lba;
      s.raSectors = want;
      this.showReadBlock(lba, n);
    }, lba * SECTOR, want * SECTOR);
  }

  /** The block is in the buffer: address and Count registers move past it (as QEMU), DRQ, interrupt. */
  private showReadBlock(lba: number, n: number): void {
    const s = this.state;
    this.setLba(lba + n);
    s.nsLeft -= n;
    s.nsector = s.nsLeft & 0xff;
    s.status = R.ST_DRDY | R.ST_DSC;
    this.startTransfer('in', (lba - s.raLba) * SECTOR, n * SECTOR, 'ataReadNext');
    this.port.raiseIrq();
  }

  ataReadNext(): void {
    this.stopTransfer();
    if (this.state.nsLeft > 0) this.startSectorRead();
  }

  /** The guest filled one block of a PIO write: write it (then flush if the write cache is off). */
  ataWriteBlock(): void {
    const s = this.state;
    const lba = this.getLba();
    const n = s.blockSectors;
    this.stopTransfer();
    s.status = R.ST_DRDY | R.ST_DSC | R.ST_BSY;
    const b = this.backend!;
    const start = () => b.write(lba * SECTOR, s.buf, 0, n * SECTOR).then((r) => (r === null && !s.writeCache ? b.flush() : r));
    this.submit('ataWrite', start, (r) => {
      if (r !== null) {
        this.ioError('write', r, lba);
        return this.fail(R.ER_ABRT);
      }
      this.setLba(lba + n);
      s.nsLeft -= n;
      s.nsector = s.nsLeft & 0xff;
      s.status = R.ST_DRDY | R.ST_DSC;
      if (s.nsLeft > 0) {
        s.blockSectors = Math.min(s.nsLeft, s.reqSectors);
        this.startTransfer('out', 0, s.blockSectors * SECTOR, 'ataWriteBlock');
      }
      this.port.raiseIrq();
    }, lba * SECTOR, n * SECTOR);
  }

  // ---- commands (referenced from the table) ---------------------------------------

  cmdReadPio(cmd: number, multiple: boolean): boolean {
    const s = this.state;
    if (multiple && !s.multSectors) {
      this.abort();
      return true;
    }
    this.transformCount((COMMANDS[cmd]!.flags & F_LBA48) !== 0);
    s.reqSectors = multiple ? s.multSectors : 1;
    this.traceXfer();
    if (!this.rangeOk(this.getLba(), s.nsLeft)) return true;
    s.raSectors = 0; // nothing read ahead carries over between commands
    this.startSectorRead();
    return false;
  }

  cmdWritePio(cmd: number, multiple: boolean): boolean {
    const s = this.state;
    if (multiple && !s.multSectors) {
      this.abort();
      return true;
    }
    this.transformCount((COMMANDS[cmd]!.flags & F_LBA48) !== 0);
    s.reqSectors = multiple ? s.multSectors : 1;
    this.traceXfer();
    if (!this.rangeOk(this.getLba(), s.nsLeft)) return true;
    if (this.backend!.readOnly) {
      this.abort();
      return true;
    }
    s.status = R.ST_DRDY | R.ST_DSC;
    s.blockSectors = Math.min(s.nsLeft, s.reqSectors);
    this.startTransfer('out', 0, s.blockSectors * SECTOR, 'ataWriteBlock');
    return false;
  }

  cmdDma(cmd: number, write: boolean): boolean {
    const s = this.state;
    this.transformCount((COMMANDS[cmd]!.flags & F_LBA48) !== 0);
    this.traceXfer();
    if (!this.rangeOk(this.getLba(), s.nsLeft)) return true;
    if (write && this.backend!.readOnly) {
      this.abort();
      return true;
    }
    s.status = R.ST_DRDY | R.ST_DSC | R.ST_DRQ;
    s.dma = write ? 'ataWrite' : 'ataRead';
    this.port.dmaReady(this);
    return false;
  }

  cmdVerify(cmd: number): boolean {
    this.transformCount((COMMANDS[cmd]!.flags & F_LBA48) !== 0);
    if (!this.rangeOk(this.getLba(), this.state.nsLeft)) return true;
    return true;
  }

  cmdFlush(): boolean {
    const s = this.state;
    if (this.backend === null) return true;
    s.status = R.ST_DRDY | R.ST_BSY;
    const b = this.backend;
    this.submit('flush', () => b.flush(), (r) => {
      if (r !== null) {
        this.ioError('flush', r, -1);
        return this.fail(R.ER_ABRT);
      }
      s.status = R.ST_DRDY | R.ST_DSC;
      this.port.raiseIrq();
    });
    return false;
  }

  cmdIdentify(): boolean {
    identifyDevice(this.state, this.state.buf, this.totalSectors());
    this.state.status = R.ST_DRDY | R.ST_DSC;
    this.startTransfer('in', 0, 512, 'stop');
    this.port.raiseIrq();
    return false;
  }

  cmdIdentifyPacket(): boolean {
    identifyPacketDevice(this.state, this.state.buf);
    this.state.status = R.ST_DRDY | R.ST_DSC;
    this.startTransfer('in', 0, 512, 'stop');
    this.port.raiseIrq();
    return false;
  }

  cmdSetFeatures(): boolean {
    const s = this.state;
    switch (s.feature) {
      case R.SF_ENABLE_WCACHE:
        s.writeCache = true;
        return true;
      case R.SF_DISABLE_WCACHE:
        s.writeCache = false;
        return true;
      case R.SF_SET_TRANSFER_MODE: {
        const type = s.nsector >> 3;
        const mode = s.nsector & 7;
        // PIO default (0/1), PIO flow control 0-4, single-word DMA 0-2, MWDMA 0-2, UDMA 0-5.
        const ok = type === 0 ? mode <= 1 : type === 1 ? mode <= 4 : type === 2 || type === 4 ? mode <= 2 : type === 8 ? mode <= 5 : false;
        if (!ok) {
          this.abort();
          return true;
        }
        s.xferMode = s.nsector;
        return true;
      }
      // Accepted without effect, as QEMU does: look-ahead, reverting to defaults, APM, AAM.
      case 0x05:
      case 0x85:
      case 0x42:
      case 0xc2:
      case R.SF_DISABLE_RLA:
      case R.SF_ENABLE_RLA:
      case R.SF_DISABLE_REVERT:
      case R.SF_ENABLE_REVERT:
        return true;
      default:
        this.abort();
        return true;
    }
  }

  cmdSetMultiple(): boolean {
    const s = this.state;
    const n = s.nsector & 0xff;
    // 0 disables; otherwise a power of two not above word 47's maximum (ATA8-ACS 7.46).
    if (n !== 0 && (n > MAX_MULT_SECTORS || (n & (n - 1)) !== 0)) this.abort();
    else s.multSectors = n;
    return true;
  }

  cmdInitParams(): boolean {
    const s = this.state;
    if (s.nsector === 0) {
      this.abort();
      return true;
    }
    s.curHeads = (s.select & 0x0f) + 1;
    s.curSectors = s.nsector;
    s.curCylinders = Math.max(1, Math.min(65535, Math.floor(Math.min(this.totalSectors(), 16514064) / (s.curHeads * s.curSectors))));
    return true;
  }

  cmdCheckPower(): boolean {
    this.state.nsector = 0xff; // active or idle
    return true;
  }

  cmdDeviceReset(): boolean {
    this.reset();
    this.port.dmaCancel(this);
    this.state.status = 0; // ATA8-ACS 7.10.4: signature, status 0, no interrupt
    return false;
  }

  cmdPacket(): boolean {
    const s = this.state;
    if (s.feature & 0x02) {
      // overlapped PACKET is not supported (IDENTIFY PACKET word 49 bit 13 clear)
      this.abort();
      return true;
    }
    s.atapiDma = (s.feature & 1) !== 0;
    // Byte count limit (ATA8-ACS 7.18.3): odd limits are rounded down (only the last block may be
    // odd); 0 is invalid and treated as the maximum even count.
    let limit = (s.lcyl | (s.hcyl << 8)) & ~1;
    if (limit === 0) limit = 0xfffe;
    s.byteLimit = limit;
    s.status = R.ST_DRDY | R.ST_DSC;
    s.nsector = (s.nsector & ~7) | R.IR_COD;
    this.startTransfer('out', 0, 12, 'atapiPacket');
    return false;
  }

  /** The 12-byte packet arrived. */
  atapiPacket(): void {
    const s = this.state;
    for (let i = 0; i < 12; i++) s.cdb[i] = s.buf[i];
    this.stopTransfer();
    s.status = R.ST_DRDY | R.ST_BSY;
    atapiCommand(this);
  }

  // ---- ATAPI data phases (used by atapi.ts) -------------------------------------------

  /** ATAPI command done, no (more) data: DRDY, interrupt reason C/D + I/O (QEMU ide_atapi_cmd_ok). */
  atapiOk(): void {
    const s = this.state;
    s.error = 0;
    s.status = R.ST_DRDY | R.ST_DSC;
    s.nsector = (s.nsector & ~7) | R.IR_IO | R.IR_COD;
    this.stopTransfer();
    this.port.raiseIrq();
  }

  /** CHECK CONDITION: sense kept for REQUEST SENSE, key in Error bits 7:4. */
  atapiError(key: number, asc: number, ascq = 0): void {
    const s = this.state;
    s.senseKey = key;
    s.asc = asc;
    s.ascq = ascq;
    s.error = key << 4;
    s.status = R.ST_DRDY | R.ST_ERR;
    s.nsector = (s.nsector & ~7) | R.IR_IO | R.IR_COD;
    s.dma = 'none';
    this.stopTransfer();
    this.port.raiseIrq();
  }

  /** Start the data-in phase of an ATAPI command: `total` bytes from the reply buffer or the medium. */
  atapiDataIn(total: number, src: AtapiSource): void {
    const s = this.state;
    s.raSectors = 0;
    s.srcLba = src;
    s.xferLeft = total;
    s.xferPos = 0;
    if (total === 0) return this.atapiOk();
    if (s.atapiDma) {
      // Reads from the medium show BSY too while the bus master works (QEMU ide_atapi_cmd_read_dma).
      s.status = R.ST_DRDY | R.ST_DSC | R.ST_DRQ | (src >= 0 ? R.ST_BSY : 0);
      s.dma = 'atapiIn';
      this.port.dmaReady(this);
      return;
    }
    this.atapiNextBlock();
  }

  /** Next DRQ block of at most the byte count limit (ATA8-ACS 7.18 PIO data-in). */
  atapiNextBlock(ahead = CD_RA_SECTORS): void {
    const s = this.state;
    const size = Math.min(s.xferLeft, s.byteLimit);
    s.blockLen = size;
    const show = (start: number) => {
      s.status = R.ST_DRDY | R.ST_DSC;
      s.nsector = (s.nsector & ~7) | R.IR_IO;
      s.lcyl = size & 0xff;
      s.hcyl = (size >>> 8) & 0xff;
      this.startTransfer('in', start, size, 'atapiDataNext');
      this.port.raiseIrq();
    };
    if (s.srcLba < 0) return show(s.xferPos);
    // From the medium: the CD blocks covering [xferPos, xferPos + size), read ahead up to
    // 128 KiB of the command (firmware asks for one 2048-byte block per DRQ).
    const first = Math.floor(s.xferPos / CD_SECTOR);
    const skip = s.xferPos % CD_SECTOR;
    const count = Math.ceil((skip + size) / CD_SECTOR);
    const lba = s.srcLba + first;
    if (s.raSectors > 0 && lba >= s.raLba && lba + count <= s.raLba + s.raSectors) return show((lba - s.raLba) * CD_SECTOR + skip);
    const left = Math.ceil((s.xferPos + s.xferLeft) / CD_SECTOR) - first;
    const want = Math.max(count, Math.min(left, ahead));
    s.raSectors = 0;
    s.status = R.ST_DRDY | R.ST_BSY;
    if (this.backend === null) return this.atapiError(2, 0x3a);
    const b = this.backend;
    this.submit('atapiRead', () => b.read(lba * CD_SECTOR, s.buf, 0, want * CD_SECTOR), (r) => {
      if (r !== null) {
        if (want > count) return this.atapiNextBlock(count); // place the error on its block
        this.ioError('cd read', r, lba);
        return this.atapiError(3, 0x11); // MEDIUM ERROR, UNRECOVERED READ ERROR
      }
      s.raLba = lba;
      s.raSectors = want;
      show(skip);
    }, lba * CD_SECTOR, want * CD_SECTOR);
  }

  atapiDataNext(): void {
    const s = this.state;
    s.xferPos += s.blockLen;
    s.xferLeft -= s.blockLen;
    this.stopTransfer();
    if (s.xferLeft > 0) this.atapiNextBlock();
    else this.atapiOk();
  }

  // ---- DMA (driven by the channel's bus master) -------------------------------------

  /** The DMA command's transfer, in one object per drive refilled by each call (read it before the next). */
  dmaRequest(): DmaRequest | null {
    const s = this.state;
    const q = this.dmaReq;
    switch (s.dma) {
      case 'ataRead':
        return fillReq(q, true, s.nsLeft * SECTOR, this.getLba() * SECTOR, false);
      case 'ataWrite':
        return fillReq(q, false, s.nsLeft * SECTOR, this.getLba() * SECTOR, !s.writeCache);
      case 'atapiIn':
        return fillReq(q, true, s.xferLeft, s.srcLba < 0 ? -1 : s.srcLba * CD_SECTOR, false);
      default:
        return null;
    }
  }

  /**
   * The bus master finished: 'short' (PRDs shorter than the transfer: no
   * data moved, no interrupt; BMI-1 case 1), 'fault' (a DMA address outside
   * guest memory), an I/O error code, or null for success.
   */
  dmaDone(r: 'short' | 'fault' | IoResult): void {
    const s = this.state;
    const op = s.dma;
    s.dma = 'none';
    if (op === 'none') return;
    if (r === 'short') {
      s.status = R.ST_DRDY | R.ST_DSC;
      return;
    }
    if (op === 'atapiIn') {
      if (r === 'fault') return this.atapiError(0x0b, 0); // ABORTED COMMAND; the bus master shows the error bit
      if (r !== null) {
        this.ioError('cd dma read', r, s.srcLba);
        return this.atapiError(3, 0x11);
      }
      return this.atapiOk();
    }
    if (r === 'fault') return this.fail(R.ER_ABRT);
    if (r !== null) {
      this.ioError(op === 'ataRead' ? 'dma read' : 'dma write', r, this.getLba());
      return this.fail(op === 'ataRead' ? R.ER_UNC : R.ER_ABRT);
    }
    this.setLba(this.getLba() + s.nsLeft);
    s.nsLeft = 0;
    s.nsector = 0;
    s.status = R.ST_DRDY | R.ST_DSC;
    this.port.raiseIrq();
  }

  /**
   * After a restore: re-issue the backend request the saved state says was in
   * flight. Every such request is idempotent (the address registers move only
   * when it completes), so doing it again is safe.
   */
  resumeIo(): void {
    const s = this.state;
    const op = s.io;
    if (op === 'none') return; // BSY may stay: an ATAPI DMA read from the medium shows it while the bus master runs
    s.io = 'none';
    s.status &= ~R.ST_BSY;
    switch (op) {
      case 'ataRead':
        return this.startSectorRead();
      case 'ataWrite':
        return this.ataWriteBlock();
      case 'flush':
        s.status = R.ST_DRDY | R.ST_BSY;
        this.cmdFlush();
        return;
      case 'atapiRead':
        return this.atapiNextBlock();
    }
  }

  // ---- saved state ---------------------------------------------------------------------

  /** This drive as plain data (fresh copies: nothing refers to live state). */
  save(): DriveSaved {
    const s = this.state;
    return {
      kind: s.kind,
      medium: this.backend !== null,
      feature: s.feature,
      nsector: s.nsector,
      sector: s.sector,
      lcyl: s.lcyl,
      hcyl: s.hcyl,
      select: s.select,
      hobFeature: s.hobFeature,
      hobNsector: s.hobNsector,
      hobSector: s.hobSector,
      hobLcyl: s.hobLcyl,
      hobHcyl: s.hobHcyl,
      status: s.status,
      error: s.error,
      curCylinders: s.curCylinders,
      curHeads: s.curHeads,
      curSectors: s.curSectors,
      multSectors: s.multSectors,
      xferMode: s.xferMode,
      writeCache: s.writeCache,
      lba48: s.lba48,
      nsLeft: s.nsLeft,
      reqSectors: s.reqSectors,
      blockSectors: s.blockSectors,
      raLba: s.raLba,
      raSectors: s.raSectors,
      pioDir: s.pioDir,
      end: s.end,
      bufPos: s.bufPos,
      bufEnd: s.bufEnd,
      io: s.io,
      dma: s.dma,
      buf: s.kind === 'none' ? new Uint8Array(0) : s.buf.slice(),
      atapi:
        s.kind !== 'cdrom'
          ? null
          : {
              cdb: s.cdb.slice(),
              senseKey: s.senseKey,
              asc: s.asc,
              ascq: s.ascq,
              mediaChanged: s.mediaChanged,
              mediaEvent: s.mediaEvent,
              trayOpen: s.trayOpen,
              trayLocked: s.trayLocked,
              atapiDma: s.atapiDma,
              byteLimit: s.byteLimit,
              xferLeft: s.xferLeft,
              xferPos: s.xferPos,
              blockLen: s.blockLen,
              srcLba: s.srcLba,
            },
    };
  }

  /**
   * Read and check a saved drive against this slot (its kind, its medium and
   * the size of its image); changes nothing. `slot` names it in messages.
   */
  parse(r: StateReader, slot: number): DriveSaved {
    const here = this.state.kind;
    const kind = r.oneOf<DriveKind>('kind', ['none', 'disk', 'cdrom']);
    if (kind !== here) bad(r.path, `slot ${slot} holds ${kind} in the saved state, ${here} on this machine`);
    const medium = r.bool('medium');
    if (medium !== (this.backend !== null)) {
      bad(`${r.path}.medium`, `slot ${slot} was saved ${medium ? 'with' : 'without'} a medium, this machine has ${medium ? 'none' : 'one'}`);
    }
    const u8 = (k: string) => r.u(k, 8);
    const d: DriveSaved = {
      kind,
      medium,
      feature: u8('feature'),
      nsector: u8('nsector'),
      sector: u8('sector'),
      lcyl: u8('lcyl'),
      hcyl: u8('hcyl'),
      select: u8('select'),
      hobFeature: u8('hobFeature'),
      hobNsector: u8('hobNsector'),
      hobSector: u8('hobSector'),
      hobLcyl: u8('hobLcyl'),
      hobHcyl: u8('hobHcyl'),
      status: u8('status'),
      error: u8('error'),
      curCylinders: r.int('curCylinders', 0, 65535),
      curHeads: r.int('curHeads', 1, 16),
      curSectors: r.int('curSectors', 1, 255),
      multSectors: r.int('multSectors', 0, MAX_MULT_SECTORS),
      xferMode: u8('xferMode'),
      writeCache: r.bool('writeCache'),
      lba48: r.bool('lba48'),
      nsLeft: r.int('nsLeft', 0, 65536),
      reqSectors: r.int('reqSectors', 1, MAX_MULT_SECTORS),
      blockSectors: r.int('blockSectors', 0, MAX_MULT_SECTORS),
      raLba: r.int('raLba', 0, 2 ** 48),
      raSectors: r.int('raSectors', 0, BUF_BYTES / (kind === 'cdrom' ? CD_SECTOR : SECTOR)),
      pioDir: r.oneOf('pioDir', ['none', 'in', 'out']),
      end: r.oneOf('end', END_NAMES),
      bufPos: r.int('bufPos', 0, BUF_BYTES),
      bufEnd: r.int('bufEnd', 0, BUF_BYTES),
      io: r.oneOf('io', IO_OPS[kind]),
      dma: r.oneOf('dma', DMA_OPS[kind]),
      buf: r.bytes('buf', kind === 'none' ? 0 : BUF_BYTES),
      atapi: null,
    };
    const p = r.path;
    if ((d.select & R.DEV_OBS) !== R.DEV_OBS) bad(`${p}.select`, `bits 7 and 5 always read one (0x${d.select.toString(16)})`);
    if (d.multSectors & (d.multSectors - 1)) bad(`${p}.multSectors`, `${d.multSectors} is not a power of two`);
    const total = this.totalSectors();
    if (d.raSectors > 0 && d.raLba + d.raSectors > total) bad(`${p}.raLba`, `read-ahead ${d.raLba}+${d.raSectors} is beyond the medium (${total})`);
    // The PIO window: inside the buffer, and ended by a step this kind of device has.
    if (d.bufPos > d.bufEnd) bad(`${p}.bufPos`, `${d.bufPos} is beyond the window end ${d.bufEnd}`);
    if (d.pioDir === 'none') {
      if (d.end !== 'none' || d.bufEnd !== 0) bad(`${p}.end`, `a transfer step (${d.end}) or window (${d.bufEnd} bytes) without a transfer`);
    } else if (!ENDS[kind][d.pioDir].includes(d.end)) {
      bad(`${p}.end`, `${d.end} does not end a ${d.pioDir} transfer of a ${kind} slot`);
    }
    // An ATA data command in progress: its sectors are on this disk (lba + nsLeft is the end of the command).
    const ataData = d.io === 'ataRead' || d.io === 'ataWrite' || d.dma === 'ataRead' || d.dma === 'ataWrite' || d.end === 'ataReadNext' || d.end === 'ataWriteBlock';
    if (ataData) {
      const lba = lbaOf(d);
      if (lba < 0 || lba + d.nsLeft > total) bad(`${p}.nsLeft`, `sectors ${lba}+${d.nsLeft} are beyond the disk (${total} sectors)`);
      if (d.end !== 'ataReadNext' && d.nsLeft === 0) bad(`${p}.nsLeft`, `0 sectors left in a ${d.io !== 'none' ? d.io : d.dma !== 'none' ? d.dma : d.end} command`);
    }
    if ((d.io === 'ataWrite' || d.end === 'ataWriteBlock') && (d.blockSectors === 0 || d.blockSectors > d.nsLeft)) {
      bad(`${p}.blockSectors`, `${d.blockSectors} is not a block of the ${d.nsLeft} sectors left`);
    }
    if (d.end === 'ataWriteBlock' && d.bufEnd !== d.blockSectors * SECTOR) bad(`${p}.bufEnd`, `a write block of ${d.blockSectors} sectors is ${d.blockSectors * SECTOR} bytes, not ${d.bufEnd}`);
    const a = r.objOrNull('atapi');
    if ((a !== null) !== (kind === 'cdrom')) bad(`${p}.atapi`, kind === 'cdrom' ? 'missing for a CD-ROM' : `ATAPI state for a ${kind} slot`);
    if (a !== null) d.atapi = parseAtapi(a, total, d);
    return d;
  }

  /**
   * Take a parsed state. Completions of requests issued before are dropped
   * (new generation, new buffer); resumeIo() then issues the saved request again.
   */
  load(d: DriveSaved): void {
    const s = this.state;
    const gen = s.gen;
    const { kind: _k, medium: _m, atapi, buf, ...rest } = d;
    Object.assign(s, rest);
    s.gen = gen + 1;
    this.waiting = WAIT_NONE;
    if (s.kind !== 'none') s.buf = buf; // a copy made by the reader: nothing else refers to it
    const a = atapi ?? ATAPI_IDLE;
    s.cdb = a.cdb.slice();
    s.senseKey = a.senseKey;
    s.asc = a.asc;
    s.ascq = a.ascq;
    s.mediaChanged = a.mediaChanged;
    s.mediaEvent = a.mediaEvent;
    s.trayOpen = a.trayOpen;
    s.trayLocked = a.trayLocked;
    s.atapiDma = a.atapiDma;
    s.byteLimit = a.byteLimit;
    s.xferLeft = a.xferLeft;
    s.xferPos = a.xferPos;
    s.blockLen = a.blockLen;
    s.srcLba = a.srcLba;
  }

  /**
   * Resolves once no backend request of this drive is in flight: a medium's
   * backend is closed only then (a request the guest issued before the change
   * still completes from the old medium, as QEMU drains before it swaps).
   * Bounded: every request settles (track() turns a throw into 'EIO').
   */
  drained(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * The operator moved the tray (QMP eject / blockdev-change-medium; QEMU's
   * ide_cd_change_cb): the guest sees NOT READY once, then UNIT ATTENTION
   * once a medium is in, and a media event: removal when it opens, new media
   * when it closes on one. A tray already there changes nothing.
   */
  moveTray(open: boolean): void {
    const s = this.state;
    if (s.trayOpen === open) return;
    s.trayOpen = open;
    s.mediaChanged = 1;
    s.mediaEvent = open ? 3 : this.backend !== null ? 2 : 0;
  }

  /** Take the medium out or put one in, tray open (the guest sees it when the tray closes). */
  setMedium(backend: BlockBackend | null): void {
    this.backend = backend;
  }

  /** Media change (CD): the guest sees NOT READY once, then UNIT ATTENTION (QEMU ide_cd_change_cb). */
  changeMedium(backend: BlockBackend | null): void {
    this.backend = backend;
    const s = this.state;
    s.trayOpen = false;
    s.mediaChanged = 1;
    s.mediaEvent = backend ? 2 : 3;
  }
}

// ---- saved state -------------------------------------------------------------------

function bad(path: string, msg: string): never {
  throw new StateError(`${path}: ${msg}`);
}

/** Read and check an ATAPI state (`total`: CD blocks of this machine's medium). */
function parseAtapi(r: StateReader, total: number, s: Pick<DriveSaved, 'end' | 'io' | 'dma'>): AtapiSaved {
  const a: AtapiSaved = {
    cdb: r.ints('cdb', 12, 0, 0xff),
    senseKey: r.int('senseKey', 0, 0x0f),
    asc: r.u('asc', 8),
    ascq: r.u('ascq', 8),
    mediaChanged: r.int('mediaChanged', 0, 2),
    mediaEvent: r.int('mediaEvent', 0, 3),
    trayOpen: r.bool('trayOpen'),
    trayLocked: r.bool('trayLocked'),
    atapiDma: r.bool('atapiDma'),
    byteLimit: r.int('byteLimit', 0, 0xfffe),
    xferLeft: r.int('xferLeft', 0, MAX_BYTES),
    xferPos: r.int('xferPos', 0, MAX_BYTES),
    blockLen: r.int('blockLen', 0, 0xfffe),
    srcLba: r.int('srcLba', -1, 0xffffffff),
  };
  if (a.byteLimit & 1) bad(`${r.path}.byteLimit`, `odd (${a.byteLimit}): the limit is always rounded down to even`);
  // A data-in phase in progress: its data must be in the reply buffer or on this medium.
  if (s.end === 'atapiDataNext' || s.io === 'atapiRead' || s.dma === 'atapiIn') {
    if (s.end === 'atapiDataNext' && a.blockLen > a.xferLeft) bad(`${r.path}.blockLen`, `${a.blockLen} is beyond the ${a.xferLeft} bytes left`);
    const end = a.xferPos + a.xferLeft;
    if (a.srcLba < 0) {
      if (end > BUF_BYTES) bad(`${r.path}.xferLeft`, `the reply ends at byte ${end}, beyond the ${BUF_BYTES}-byte buffer`);
    } else if (a.srcLba + Math.ceil(end / CD_SECTOR) > total) {
      bad(`${r.path}.srcLba`, `blocks ${a.srcLba}+${Math.ceil(end / CD_SECTOR)} are beyond the medium (${total} blocks)`);
    }
  }
  return a;
}

const END_TRANSFER: Record<EndTransfer, (d: Drive) => void> = {
  none: () => {},
  stop: (d) => {
    d.stopTransfer();
  },
  ataReadNext: (d) => d.ataReadNext(),
  ataWriteBlock: (d) => d.ataWriteBlock(),
  atapiPacket: (d) => d.atapiPacket(),
  atapiDataNext: (d) => d.atapiDataNext(),
};

const ok: Handler = () => true;

/** The ATA command set (ATA8-ACS chapter 7), indexed by opcode. */
const COMMANDS: (CommandEntry | undefined)[] = new Array(256);
function def(ops: number[], flags: number, run: Handler): void {
  for (const op of ops) COMMANDS[op] = { run, flags };
}
const ALL = F_DISK | F_CD;
def([R.CMD_DEVICE_RESET], F_CD, (d) => d.cmdDeviceReset());
def([R.CMD_RECALIBRATE, R.CMD_SEEK], F_DISK | F_DSC, ok);
def([R.CMD_READ_SECTORS, R.CMD_READ_SECTORS_NORETRY], F_DISK | F_SIG, (d, c) => d.cmdReadPio(c, false));
def([R.CMD_READ_SECTORS_EXT], F_DISK | F_LBA48 | F_SIG, (d, c) => d.cmdReadPio(c, false));
def([R.CMD_READ_MULTIPLE], F_DISK, (d, c) => d.cmdReadPio(c, true));
def([R.CMD_READ_MULTIPLE_EXT], F_DISK | F_LBA48, (d, c) => d.cmdReadPio(c, true));
def([R.CMD_WRITE_SECTORS, R.CMD_WRITE_SECTORS_NORETRY], F_DISK, (d, c) => d.cmdWritePio(c, false));
def([R.CMD_WRITE_SECTORS_EXT], F_DISK | F_LBA48, (d, c) => d.cmdWritePio(c, false));
def([R.CMD_WRITE_MULTIPLE], F_DISK, (d, c) => d.cmdWritePio(c, true));
def([R.CMD_WRITE_MULTIPLE_EXT], F_DISK | F_LBA48, (d, c) => d.cmdWritePio(c, true));
def([R.CMD_READ_DMA, R.CMD_READ_DMA_NORETRY], F_DISK, (d, c) => d.cmdDma(c, false));
def([R.CMD_READ_DMA_EXT], F_DISK | F_LBA48, (d, c) => d.cmdDma(c, false));
def([R.CMD_WRITE_DMA, R.CMD_WRITE_DMA_NORETRY], F_DISK, (d, c) => d.cmdDma(c, true));
def([R.CMD_WRITE_DMA_EXT], F_DISK | F_LBA48, (d, c) => d.cmdDma(c, true));
def([R.CMD_READ_VERIFY, R.CMD_READ_VERIFY_NORETRY], F_DISK | F_DSC, (d, c) => d.cmdVerify(c));
def([R.CMD_READ_VERIFY_EXT], F_DISK | F_DSC | F_LBA48, (d, c) => d.cmdVerify(c));
def([R.CMD_FLUSH_CACHE, R.CMD_FLUSH_CACHE_EXT], F_DISK, (d) => d.cmdFlush());
def([R.CMD_IDENTIFY_DEVICE], F_DISK | F_SIG, (d) => d.cmdIdentify());
def([R.CMD_IDENTIFY_PACKET_DEVICE], F_CD, (d) => d.cmdIdentifyPacket());
def([R.CMD_PACKET], F_CD, (d) => d.cmdPacket());
def([R.CMD_SET_FEATURES], ALL | F_DSC, (d) => d.cmdSetFeatures());
def([R.CMD_SET_MULTIPLE_MODE], F_DISK | F_DSC, (d) => d.cmdSetMultiple());
def([R.CMD_INITIALIZE_DEVICE_PARAMETERS], F_DISK | F_DSC, (d) => d.cmdInitParams());
// Power states are not modelled: always active. No DSC on these (what QEMU shows).
def([R.CMD_IDLE, R.CMD_IDLE_IMMEDIATE, R.CMD_STANDBY, R.CMD_STANDBY_IMMEDIATE, R.CMD_SLEEP], ALL, ok);
def([R.CMD_CHECK_POWER_MODE], ALL | F_DSC, (d) => d.cmdCheckPower());
// EXECUTE DEVICE DIAGNOSTIC is a channel-wide command: the channel handles it before the table.
