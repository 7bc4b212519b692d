/**
 * The ioreq server loop: takes Xen's requests off the shared pages, runs
 * them against the board's buses and answers them.
 *
 * Protocol (docs/xen-contract.md §2-§4, QEMU cpu_get_ioreq/cpu_handle_ioreq/
 * handle_buffered_iopage): for a vCPU port, unmask it at once; if the slot is
 * READY, mark it INPROCESS, drain the buffered ring (so buffered stdvga
 * writes stay ordered before the synchronous request), do the access, write
 * `data`, check the slot is still INPROCESS, mark it IORESP_READY and notify
 * the vCPU's port. The slot is never touched after IORESP_READY (Xen resets
 * it to NONE itself).
 *
 * The slot's state byte is the one Xen and we hand the slot over with, so
 * the accesses that hand it over go through Atomics: the load that finds
 * READY, the re-check before answering and the IORESP_READY store
 * (sequentially consistent in JS, so each one is also the rmb/wmb QEMU puts
 * around it). Everything else is plain typed-array loads and stores between
 * them, INPROCESS included (Xen waits only for IORESP_READY): V8 does not
 * inline Atomics on these (non-shared) pages, each one is a builtin call of
 * about a hundred instructions (there were a dozen per request, a fifth of
 * the device model's instructions for a register read), while a plain access
 * is one. Plain is enough because every such access sits between two
 * Atomics calls, which the compiler neither moves loads or stores across
 * nor caches a load over, and x86-64 keeps loads in order with loads and
 * stores with stores (TSO: the fields are read after the READY state and
 * `data` is written before IORESP_READY, as QEMU's xen_rmb()/xen_wmb(),
 * compiler barriers on x86, order them). stubdm runs on x86-64 only
 * (package.json `cpu`). The buffered ring's pointers keep Atomics where it
 * takes entries (Xen moves both pointers with a cmpxchg); only the "ring
 * empty?" look before each request is plain. The `state`
 * nibble shares byte 30 with data_is_ptr/dir/df: it is written as the whole
 * byte with the upper four bits kept.
 *
 * Hot path rule: nothing here allocates per request (no closures, arrays,
 * BigInt or template strings); 64-bit fields are handled as two u32 halves.
 * Guest-triggered complaints are rate-limited warnings, never exceptions.
 */
import type { Board } from '../core/board.ts';
import type { Host, IoreqChannel } from '../core/host.ts';
import type { Region } from '../core/bus.ts';
import type { AccessSize, IoHandler } from '../core/io.ts';
import { logger, RateLimited, type Logger } from '../core/log.ts';
import type { IoreqTrace } from '../core/trace.ts';
import {
  BUF_ADDR_MASK,
  BUF_ADDR_SHIFT,
  BUF_DIR_BIT,
  BUF_OFF_READ_POINTER,
  BUF_OFF_SLOTS,
  BUF_OFF_WRITE_POINTER,
  BUF_SIZE_MASK,
  BUF_SIZE_SHIFT,
  BUF_SLOT_SIZE,
  BUF_TYPE_MASK,
  IOREQ_BUFFER_SLOT_NUM,
  IOREQ_DATA_IS_PTR,
  IOREQ_DF,
  IOREQ_DIR,
  IOREQ_OFF_ADDR,
  IOREQ_OFF_COUNT,
  IOREQ_OFF_DATA,
  IOREQ_OFF_FLAGS,
  IOREQ_OFF_SIZE,
  IOREQ_OFF_TYPE,
  IOREQ_SIZE,
  IOREQ_STATE_MASK,
  IOREQ_TYPE_COPY,
  IOREQ_TYPE_INVALIDATE,
  IOREQ_TYPE_PCI_CONFIG,
  IOREQ_TYPE_PIO,
  IOREQ_TYPE_TIMEOFFSET,
  STATE_IOREQ_INPROCESS,
  STATE_IOREQ_READY,
  STATE_IORESP_READY,
} from './abi.ts';

/**
 * Largest byte count (count * size) one ioreq may move. Xen keeps the RAM
 * side of a REP within one page, or a single element straddling two
 * (xen emulate.c hvmemul_phys_mmio_access/clipping), so two pages is already
 * generous; anything beyond is clamped and logged, never trusted.
 */
export const MAX_REP_BYTES = 2 * 4096;
/**
 * Guest-physical addresses a REP may touch lie below 2^52: x86 physical
 * addresses are at most 52 bits wide (Intel SDM vol. 3A §4.1.4, MAXPHYADDR),
 * and the data pointer of an ioreq is a u64 we hold in a double, exact only
 * below 2^53. An element at or above it is a REP fault, like RAM that is not there.
 */
export const GPA_LIMIT = 2 ** 52;
/** Per-ioreq element bound for MMIO REP STOS/reads without a pointer (no buffer involved). */
export const MAX_REP_COUNT = MAX_REP_BYTES;
/** Buffered slots consumed per drain pass (one full ring); a longer backlog continues in a later tick. */
export const BUF_DRAIN_MAX = IOREQ_BUFFER_SLOT_NUM;
/** Events taken from the channel per callback before yielding to the rest of the event loop. */
export const EVENTS_PER_CALLBACK = 1024;

const TWO_32 = 4294967296;
const U32_PER_SLOT = IOREQ_SIZE / 4;
const W_ADDR = IOREQ_OFF_ADDR / 4;
const W_DATA = IOREQ_OFF_DATA / 4;
const W_COUNT = IOREQ_OFF_COUNT / 4;
const W_SIZE = IOREQ_OFF_SIZE / 4;
const W_BUF_RD = BUF_OFF_READ_POINTER / 4;
const W_BUF_WR = BUF_OFF_WRITE_POINTER / 4;
const W_BUF_SLOTS = BUF_OFF_SLOTS / 4;
const W_PER_BUF_SLOT = BUF_SLOT_SIZE / 4;
/** Event-channel ports are < 2^17 with the FIFO ABI; the port->vCPU table is sized from the real ports. */
const MAX_PORT_TABLE = 1 << 20;

export interface IoreqStats {
  /** Channel callbacks run. */
  events: number;
  /** Synchronous requests answered. */
  sync: number;
  /** Buffered requests consumed. */
  buffered: number;
  pio: number;
  mmio: number;
  pciConfig: number;
  invalidate: number;
  timeoffset: number;
  unknown: number;
  /** Port raised while its slot was not READY (spurious or already handled). */
  notReady: number;
  /** Slot left INPROCESS when we came to answer: never answered (QEMU would destroy the domain). */
  badState: number;
  /** Events on ports that belong to no vCPU. */
  stray: number;
  /** REP transfers cut short by a guest-memory fault or the per-ioreq cap. */
  repFaults: number;
  /** Malformed buffered entries skipped. */
  bufErrors: number;
  /** Drains continued in a later tick because a pass hit BUF_DRAIN_MAX. */
  bufDeferred: number;
  /** Exceptions thrown by device handlers (bugs; the request is still answered). */
  deviceErrors: number;
}

export class IoreqServer {
  readonly stats: IoreqStats = {
    events: 0,
    sync: 0,
    buffered: 0,
    pio: 0,
    mmio: 0,
    pciConfig: 0,
    invalidate: 0,
    timeoffset: 0,
    unknown: 0,
    notReady: 0,
    badState: 0,
    stray: 0,
    repFaults: 0,
    bufErrors: 0,
    bufDeferred: 0,
    deviceErrors: 0,
  };
  /**
   * Last IOREQ_TYPE_TIMEOFFSET value (seconds the guest RTC is ahead of the
   * host clock, signed); QEMU ignores it, we keep it for the RTC/save path.
   */
  timeOffset = 0;
  /** Called (off the hot path: the guest sets its clock rarely) when timeOffset changes. */
  onTimeOffset: ((seconds: number) => void) | null = null;
  /**
   * The event traces (STUBDM_NET_TRACE, STUBDM_DISK_TRACE: core/trace.ts),
   * told when a wake-up starts and each request is answered, so that a
   * device's register access shows the ioreq round trip around it. null:
   * not tracing (one check per event and request). addTrace() fills it.
   */
  private traces: IoreqTrace[] | null = null;

  private readonly channel: IoreqChannel;
  private readonly log: Logger;
  private readonly guestLog: RateLimited;
  private readonly slot8: Uint8Array;
  /**
   * 32-bit fields are read and written through Int32Array views: same bits
   * as the u32 fields, but a Uint32Array element >= 2^31 is a heap number
   * when it leaves a function (an allocation per access); int32 values never are.
   */
  private readonly slot32: Int32Array;
  private readonly buf32: Int32Array | null;
  private readonly bufPort: number;
  private readonly vcpuPorts: Int32Array;
  /** Local port -> vCPU index, -1 for none. */
  private readonly portToVcpu: Int32Array;
  /** REP staging buffer (element order), MAX_REP_BYTES plus slack for one 8-byte element. */
  private readonly rep = new Uint8Array(MAX_REP_BYTES + 8);
  private readonly repView = new DataView(this.rep.buffer);
  private readonly unknownSeen = new Uint8Array(256);
  private readonly onEventBound: () => void;
  private readonly onRecheckBound: () => void;
  private running = false;
  private watching = false;
  private inEvent = false;
  /** The buffered port is masked by an event we took and not yet unmasked (backlog being worked off). */
  private bufHeld = false;
  private recheck: ReturnType<typeof setImmediate> | null = null;
  /** Last two MMIO regions hit (see mmioFind) and their [start, end). */
  private mmioHit: Region | null = null;
  private mmioLo = 0;
  private mmioHi = 0;
  private mmioHit2: Region | null = null;
  private mmioLo2 = 0;
  private mmioHi2 = 0;
  private mmioOff = 0;
  /** Result of the last device read (int32 halves), so helpers return it without allocating. */
  private rLo = 0;
  private rHi = 0;

  constructor(
    private readonly host: Host,
    private readonly board: Board,
    log?: Logger,
  ) {
    const ch = host.channel;
    this.channel = ch;
    this.log = log ?? logger('ioreq');
    this.guestLog = new RateLimited(this.log);
    if (ch.vcpus < 1 || ch.vcpus * IOREQ_SIZE > ch.ioreqPage.byteLength || ch.vcpuPorts.length < ch.vcpus) {
      throw new RangeError(`ioreq page holds ${ch.ioreqPage.byteLength} bytes and ${ch.vcpuPorts.length} ports for ${ch.vcpus} vCPUs`);
    }
    this.slot8 = new Uint8Array(ch.ioreqPage);
    this.slot32 = new Int32Array(ch.ioreqPage);
    this.buf32 = ch.bufPage ? new Int32Array(ch.bufPage) : null;
    this.bufPort = this.buf32 ? ch.bufPort : -1;
    this.vcpuPorts = Int32Array.from(ch.vcpuPorts.slice(0, ch.vcpus));
    let maxPort = this.bufPort;
    for (const p of this.vcpuPorts) {
      if (!(p >= 0 && p < MAX_PORT_TABLE)) throw new RangeError(`vCPU event port ${p} out of range`);
      maxPort = Math.max(maxPort, p);
    }
    this.portToVcpu = new Int32Array(maxPort + 1).fill(-1);
    this.vcpuPorts.forEach((p, i) => {
      if (this.portToVcpu[p] !== -1 || p === this.bufPort) throw new RangeError(`event port ${p} bound twice`);
      this.portToVcpu[p] = i;
    });
    board.mmio.onChange(() => {
      this.mmioHit = this.mmioHit2 = null;
    });
    this.onEventBound = this.onEvent.bind(this);
    this.onRecheckBound = this.onRecheck.bind(this);
  }

  /** Tell `t` of every wake-up and answer from now on (off the hot path: at start-up). */
  addTrace(t: IoreqTrace): void {
    (this.traces ??= []).push(t);
  }

  /** Watch the channel, enable the server, and serve whatever is already pending. */
  start(): void {
    if (this.running) return;
    this.running = true;
    if (!this.watching) {
      this.watching = true;
      this.channel.watch(this.onEventBound);
    }
    this.channel.setEnabled(true);
    this.onEvent();
  }

  /**
   * Disable the server (Xen stops sending), then answer what is already in
   * flight so no vCPU is left blocked; later events are ignored until start().
   */
  stop(): void {
    if (!this.running) return;
    this.channel.setEnabled(false);
    this.onEvent();
    this.running = false;
    if (this.recheck !== null) {
      clearImmediate(this.recheck);
      this.recheck = null;
    }
    if (this.bufHeld) {
      // Give the port back: a later start() sees any backlog as a fresh event.
      this.bufHeld = false;
      this.channel.unmask(this.bufPort);
    }
  }

  /** The channel callback: drain pending ports. */
  private onEvent(): void {
    if (!this.running || this.inEvent) return;
    const tr = this.traces;
    if (tr !== null) for (let i = 0; i < tr.length; i++) tr[i].ioreqWake();
    this.inEvent = true;
    this.stats.events++;
    const ch = this.channel;
    try {
      let port: number;
      let n = 0;
      while ((port = ch.pending()) !== -1) {
        if (port === this.bufPort) {
          this.bufferedEvent();
        } else {
          const vcpu = port < this.portToVcpu.length ? this.portToVcpu[port] : -1;
          // QEMU unmasks the vCPU port before looking at the slot: a new
          // request raised meanwhile is then queued again, never lost.
          ch.unmask(port);
          if (vcpu < 0) this.stats.stray++;
          else this.serveSlot(vcpu, port);
        }
        // Bound the work per callback so timers and disk completions run;
        // the rest is picked up in the next tick.
        if (++n >= EVENTS_PER_CALLBACK) {
          this.scheduleRecheck();
          break;
        }
      }
    } finally {
      this.inEvent = false;
    }
  }

  /**
   * Buffered port. QEMU does not drain here: it keeps the port masked and
   * polls the ring from a 100 ms timer (BUFFER_IO_MAX_DELAY), unmasking only
   * when a tick finds no work; that batches stdvga writes at the cost of up
   * to 100 ms of latency. We drain at once instead (a pass over an idle ring
   * is two loads). While a pass ends with work left (a backlog beyond
   * BUF_DRAIN_MAX, i.e. Xen kept filling the ring while we drained) the port
   * stays masked, as under QEMU's timer, and the next pass runs from a
   * setImmediate so other vCPUs' sync requests and I/O completions get their
   * turn. Once the ring is empty we unmask, then look once more: anything Xen
   * queued between our last read and the unmask is either seen by that
   * re-check or raises the port again (the kernel re-delivers an event that
   * arrived while masked). Every sync request also drains the ring first, as
   * QEMU does, so nothing can stay stuck behind a missed event and buffered
   * writes stay ordered before the synchronous access that follows them.
   */
  private bufferedEvent(): void {
    this.bufHeld = true;
    this.bufferedPass();
  }

  /** One bounded pass; unmask the buffered port (if we hold it) once the ring is empty. */
  private bufferedPass(): void {
    if (this.drainBuffered()) {
      this.stats.bufDeferred++;
      this.scheduleRecheck();
      return;
    }
    if (this.bufHeld) {
      this.bufHeld = false;
      this.channel.unmask(this.bufPort);
      if (this.bufferedPending()) this.scheduleRecheck();
    }
  }

  private scheduleRecheck(): void {
    if (this.recheck === null) this.recheck = setImmediate(this.onRecheckBound);
  }

  private onRecheck(): void {
    this.recheck = null;
    if (!this.running) return;
    if (this.buf32 !== null) this.bufferedPass();
    this.onEvent();
  }

  private bufferedPending(): boolean {
    const b = this.buf32;
    return b !== null && Atomics.load(b, W_BUF_RD) !== Atomics.load(b, W_BUF_WR);
  }

  // ---- synchronous slots ----------------------------------------------------

  private serveSlot(vcpu: number, port: number): void {
    const s8 = this.slot8;
    const s32 = this.slot32;
    const fb = vcpu * IOREQ_SIZE + IOREQ_OFF_FLAGS;
    const flags = Atomics.load(s8, fb);
    if ((flags & IOREQ_STATE_MASK) !== STATE_IOREQ_READY) {
      this.stats.notReady++;
      return;
    }
    // INPROCESS marks the slot ours; Xen waits only for IORESP_READY, so a
    // plain store, after the Atomics load above (QEMU's xen_rmb()).
    s8[fb] = (flags & ~IOREQ_STATE_MASK) | STATE_IOREQ_INPROCESS;

    // Buffered writes first (none, nearly always: two plain loads, no call).
    const b = this.buf32;
    if (b !== null && b[W_BUF_RD] !== b[W_BUF_WR]) this.drainBuffered();

    // The fields: plain loads after the Atomics above (see the file comment).
    const w = vcpu * U32_PER_SLOT;
    const type = s8[vcpu * IOREQ_SIZE + IOREQ_OFF_TYPE];
    // 32-bit halves are carried as int32 (`| 0`) and made unsigned (`>>> 0`)
    // only where used: a value >= 2^31 passed between functions is boxed as a
    // heap number, i.e. allocates. count and size are clamped the same way.
    const addrLo = s32[w + W_ADDR] | 0;
    const addrHi = s32[w + W_ADDR + 1] | 0;
    const dataLo = s32[w + W_DATA] | 0;
    const dataHi = s32[w + W_DATA + 1] | 0;
    const count = Math.min(s32[w + W_COUNT] >>> 0, 0x7fffffff);
    const size = Math.min(s32[w + W_SIZE] >>> 0, 0x7fffffff);
    const isRead = (flags & IOREQ_DIR) !== 0;
    this.rLo = dataLo;
    this.rHi = dataHi;

    // A device must not throw (IoHandler contract); if one does anyway the
    // vCPU still gets its answer (reads float high) and the daemon lives on.
    try {
      switch (type) {
        case IOREQ_TYPE_PIO:
          this.stats.pio++;
          this.doPio(addrLo, addrHi, dataLo, dataHi, count, size, flags);
          break;
        case IOREQ_TYPE_COPY:
          this.stats.mmio++;
          this.doCopy(addrLo, addrHi, dataLo, dataHi, count, size, flags);
          break;
        case IOREQ_TYPE_PCI_CONFIG:
          this.stats.pciConfig++;
          this.doPciConfig(addrLo, addrHi, dataLo, count, size, flags);
          break;
        case IOREQ_TYPE_INVALIDATE:
          this.stats.invalidate++;
          this.host.memory.invalidate();
          break;
        case IOREQ_TYPE_TIMEOFFSET:
          this.setTimeOffset(dataLo, dataHi);
          break;
        default:
          this.unknownType(type);
          if (isRead) {
            this.rLo = -1;
            this.rHi = -1;
          }
      }
    } catch (e) {
      this.deviceError(e);
      if (isRead) this.rLo = this.rHi = -1;
    }

    if (isRead) {
      // Only data goes back to Xen; for writes the slot's data is left as Xen wrote it.
      // Plain stores, before the Atomics below that publish them (file comment).
      s32[w + W_DATA] = this.rLo;
      s32[w + W_DATA + 1] = this.rHi;
    }
    const now = Atomics.load(s8, fb);
    if ((now & IOREQ_STATE_MASK) !== STATE_IOREQ_INPROCESS) {
      // Someone else moved the slot. QEMU destroys the domain here; we refuse
      // to answer a slot we no longer own and say so loudly.
      this.stats.badState++;
      this.log.error({ vcpu, state: now & IOREQ_STATE_MASK }, 'ioreq slot left INPROCESS while being served; not answering');
      return;
    }
    Atomics.store(s8, fb, (now & ~IOREQ_STATE_MASK) | STATE_IORESP_READY);
    this.stats.sync++;
    this.channel.notify(port);
    const tr = this.traces;
    if (tr !== null) for (let i = 0; i < tr.length; i++) tr[i].ioreqDone();
  }

  private setTimeOffset(lo: number, hi: number): void {
    this.stats.timeoffset++;
    const v = (hi | 0) * TWO_32 + (lo >>> 0); // signed 64-bit seconds; exact below 2^53
    if (v !== this.timeOffset) {
      this.timeOffset = v;
      if (this.onTimeOffset !== null) this.onTimeOffset(v);
    }
  }

  private deviceError(e: unknown): void {
    this.stats.deviceErrors++;
    this.guestLog.warn({ err: e }, 'device threw while serving an ioreq (a bug): answered as floating bus');
  }

  private unknownType(type: number): void {
    this.stats.unknown++;
    if (this.unknownSeen[type] === 0) {
      this.unknownSeen[type] = 1;
      this.log.warn({ type }, 'unknown ioreq type: answered (reads return all ones)');
    }
  }

  // ---- PIO ------------------------------------------------------------------

  private doPio(port: number, portHi: number, dLo: number, dHi: number, count: number, size: number, flags: number): void {
    const isRead = (flags & IOREQ_DIR) !== 0;
    if (size !== 1 && size !== 2 && size !== 4) {
      this.guestLog.warn({ port, size }, 'PIO ioreq with bad size ignored');
      if (isRead) this.rLo = this.rHi = -1;
      return;
    }
    // A port above 0xffff cannot exist: nudge it out of every region so it reads as floating.
    const p = portHi === 0 && port >= 0 && port <= 0xffff ? port : -1;
    if ((flags & IOREQ_DATA_IS_PTR) === 0) {
      // One access whatever `count` says: Xen sends count 1 here (string I/O always uses a pointer).
      if (isRead) {
        this.rLo = (p < 0 ? sizeMaskOf(size) : this.board.pio.read(p, size)) | 0;
        this.rHi = 0;
      } else if (p >= 0) {
        this.board.pio.write(p, size, dLo);
      }
      return;
    }
    this.pioRep(p, size, count, dLo, dHi, flags);
  }

  /** REP INS / REP OUTS: one port, guest RAM at data ± i*size. */
  private pioRep(port: number, size: AccessSize, count: number, dLo: number, dHi: number, flags: number): void {
    const gpa = (dHi >>> 0) * TWO_32 + (dLo >>> 0);
    const df = (flags & IOREQ_DF) !== 0;
    const n0 = this.clampCount(count, size, gpa);
    const region = port < 0 ? null : this.board.pio.find(port, size);
    const h: IoHandler | null = region === null ? null : region.handler;
    const off = region === null ? 0 : port - region.start;
    if (region === null) {
      if ((flags & IOREQ_DIR) !== 0) this.board.pio.unclaimedReads++;
      else this.board.pio.unclaimedWrites++;
    } else {
      region.accesses++;
    }
    const buf = this.rep;
    if ((flags & IOREQ_DIR) !== 0) {
      // INS: find how much of the destination is RAM first, so the device
      // gives up exactly the elements that land in memory.
      const n = this.loadMem(gpa, size, n0, df);
      let done = 0;
      if (h !== null && h.readRep !== undefined) done = clampDone(h.readRep(off, size, n, buf, 0), n);
      for (let i = done; i < n; i++) {
        const v = h === null ? sizeMaskOf(size) : h.read(off, size);
        this.putElem(i * size, size, v, 0);
      }
      this.storeMem(gpa, size, n, df);
      if (n < n0) this.repFault(gpa, size, count, n);
    } else {
      const n = this.loadMem(gpa, size, n0, df);
      if (h !== null) {
        let done = 0;
        if (h.writeRep !== undefined) done = clampDone(h.writeRep(off, size, n, buf, 0), n);
        for (let i = done; i < n; i++) h.write(off, size, this.getElem(i * size, size));
      }
      if (n < n0) this.repFault(gpa, size, count, n);
    }
  }

  // ---- MMIO (IOREQ_TYPE_COPY) ------------------------------------------------

  private doCopy(aLo: number, aHi: number, dLo: number, dHi: number, count: number, size: number, flags: number): void {
    const isRead = (flags & IOREQ_DIR) !== 0;
    if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
      this.guestLog.warn({ addrLo: aLo, addrHi: aHi, size }, 'MMIO ioreq with bad size ignored');
      if (isRead) this.rLo = this.rHi = -1;
      return;
    }
    const addr = (aHi >>> 0) * TWO_32 + (aLo >>> 0);
    const step = (flags & IOREQ_DF) !== 0 ? -size : size;
    if ((flags & IOREQ_DATA_IS_PTR) !== 0) {
      this.mmioRep(addr, size, count, (dHi >>> 0) * TWO_32 + (dLo >>> 0), flags);
      return;
    }
    // Single access, or REP STOS (count > 1: the same value at addr ± i*size).
    // A read with count > 1 leaves the last value, as QEMU's loop does.
    let n = count;
    if (n > MAX_REP_COUNT) {
      this.repFault(addr, size, count, MAX_REP_COUNT);
      n = MAX_REP_COUNT;
    }
    let a = addr;
    for (let i = 0; i < n; i++, a += step) {
      if (isRead) this.mmioRead(a | 0, hi32(a), size);
      else this.mmioWrite(a | 0, hi32(a), size, dLo, dHi);
    }
  }

  /** REP MOVS between MMIO at addr ± i*size and guest RAM at gpa ± i*size. */
  private mmioRep(addr: number, size: number, count: number, gpa: number, flags: number): void {
    const df = (flags & IOREQ_DF) !== 0;
    const step = df ? -size : size;
    const n0 = this.clampCount(count, size, gpa);
    const n = this.loadMem(gpa, size, n0, df);
    let a = addr;
    if ((flags & IOREQ_DIR) !== 0) {
      for (let i = 0; i < n; i++, a += step) {
        this.mmioRead(a | 0, hi32(a), size);
        this.putElem(i * size, size, this.rLo, this.rHi);
      }
      this.storeMem(gpa, size, n, df);
    } else {
      for (let i = 0; i < n; i++, a += step) {
        const o = i * size;
        this.mmioWrite(a | 0, hi32(a), size, this.getElem(o, size) | 0, size === 8 ? this.repView.getInt32(o + 4, true) : 0);
      }
    }
    if (n < n0) this.repFault(gpa, size, count, n);
  }

  /*
   * MMIO addresses travel as int32 halves (aLo, aHi): most are above 2^31,
   * and a double passed between functions is boxed, i.e. allocates. For the
   * same reason the last region is cached here (IoBus.find takes a double)
   * and devices get a small offset; the cache is dropped whenever the bus
   * changes (a BAR moves).
   */

  /** One MMIO read into rLo/rHi; 8 bytes are two 4-byte device reads, low half first. */
  private mmioRead(aLo: number, aHi: number, size: number): void {
    if (size === 8) {
      this.rLo = this.mmioRead4(aLo, aHi, 4) | 0;
      const a = addrOf(aLo, aHi) + 4;
      this.rHi = this.mmioRead4(a | 0, hi32(a), 4) | 0;
    } else {
      this.rLo = this.mmioRead4(aLo, aHi, size) | 0;
      this.rHi = 0;
    }
  }

  /** lo/hi are the int32 halves of the value. */
  private mmioWrite(aLo: number, aHi: number, size: number, lo: number, hi: number): void {
    if (size === 8) {
      this.mmioWrite4(aLo, aHi, 4, lo);
      const a = addrOf(aLo, aHi) + 4;
      this.mmioWrite4(a | 0, hi32(a), 4, hi);
    } else {
      this.mmioWrite4(aLo, aHi, size, lo);
    }
  }

  /**
   * The region holding the access, with the offset into it left in mmioOff.
   * Two entries, so buffered VGA writes interleaved with a device's BAR
   * accesses do not evict each other.
   */
  private mmioFind(aLo: number, aHi: number, size: number): Region | null {
    const addr = addrOf(aLo, aHi);
    const a = this.mmioHit;
    if (a !== null && addr >= this.mmioLo && addr + size <= this.mmioHi) {
      this.mmioOff = addr - this.mmioLo;
      return a;
    }
    const b = this.mmioHit2;
    if (b !== null && addr >= this.mmioLo2 && addr + size <= this.mmioHi2) {
      this.mmioOff = addr - this.mmioLo2;
      return b;
    }
    const r = this.board.mmio.find(addr, size);
    if (r === null) return null;
    // The older entry makes way.
    this.mmioHit2 = a;
    this.mmioLo2 = this.mmioLo;
    this.mmioHi2 = this.mmioHi;
    this.mmioHit = r;
    this.mmioLo = r.start;
    this.mmioHi = r.start + r.length;
    this.mmioOff = addr - r.start;
    return r;
  }

  private mmioRead4(aLo: number, aHi: number, size: number): number {
    const r = this.mmioFind(aLo, aHi, size);
    if (r === null) {
      this.board.mmio.unclaimedReads++;
      return sizeMaskOf(size);
    }
    r.accesses++;
    return r.handler.read(this.mmioOff, size as AccessSize);
  }

  private mmioWrite4(aLo: number, aHi: number, size: number, v: number): void {
    const r = this.mmioFind(aLo, aHi, size);
    if (r === null) {
      this.board.mmio.unclaimedWrites++;
      return;
    }
    r.accesses++;
    r.handler.write(this.mmioOff, size as AccessSize, size === 4 ? v >>> 0 : v & sizeMaskOf(size));
  }

  // ---- PCI config -------------------------------------------------------------

  private doPciConfig(reg: number, sbdf: number, dLo: number, count: number, size: number, flags: number): void {
    const isRead = (flags & IOREQ_DIR) !== 0;
    this.rHi = 0;
    // Only segment 0 bus 0 exists here; count must be 1 and no pointer (QEMU hw_errors otherwise).
    const ok =
      sbdf >>> 8 === 0 &&
      (size === 1 || size === 2 || size === 4) &&
      count === 1 &&
      (flags & IOREQ_DATA_IS_PTR) === 0 &&
      reg >= 0 &&
      reg <= 0xfff;
    if (!ok) {
      if (isRead) this.rLo = sizeMaskOf(size) | 0;
      if (sbdf >>> 8 === 0) this.guestLog.warn({ sbdf, reg, size, count }, 'malformed PCI config ioreq ignored');
      return;
    }
    const devfn = sbdf & 0xff;
    if (isRead) this.rLo = this.board.pci.configRead(devfn, reg, size as AccessSize) | 0;
    else this.board.pci.configWrite(devfn, reg, size as AccessSize, size === 4 ? dLo >>> 0 : dLo & sizeMaskOf(size));
  }

  // ---- buffered ring ------------------------------------------------------------

  /**
   * Consume at most one ring's worth of buffered requests (docs/xen-contract.md
   * §4, ATOMIC mode). Returns true when entries remain.
   */
  private drainBuffered(): boolean {
    const b = this.buf32;
    // Empty? (every synchronous request asks): two plain loads. After the
    // slot's Atomics they see every entry Xen queued before the request (x86
    // keeps loads in order); entries are then taken with Atomics below.
    if (b === null || b[W_BUF_RD] === b[W_BUF_WR]) return false;
    let used = 0;
    let tries = 0;
    while (used < BUF_DRAIN_MAX && tries++ < 2 * BUF_DRAIN_MAX) {
      const rd = Atomics.load(b, W_BUF_RD);
      const wr = Atomics.load(b, W_BUF_WR);
      // Xen may canonicalise both pointers (subtract n*511) between our two
      // loads: re-read read_pointer and start over if it moved.
      if (Atomics.load(b, W_BUF_RD) !== rd) continue;
      if (rd === wr) return false;
      if (((wr - rd) >>> 0) > IOREQ_BUFFER_SLOT_NUM) {
        this.stats.bufErrors++;
        this.log.error({ rd, wr }, 'buffered ioreq pointers corrupt; dropping the backlog');
        Atomics.store(b, W_BUF_RD, wr);
        return false;
      }
      const sw = W_BUF_SLOTS + ((rd >>> 0) % IOREQ_BUFFER_SLOT_NUM) * W_PER_BUF_SLOT;
      const w0 = Atomics.load(b, sw) | 0;
      const lo = Atomics.load(b, sw + 1) | 0;
      const code = (w0 >>> BUF_SIZE_SHIFT) & BUF_SIZE_MASK;
      let hi = 0;
      let qw = 0;
      if (code === 3) {
        qw = 1;
        if (((rd + 1) | 0) === wr) {
          // Xen publishes both halves with one write_pointer update, so this is corruption.
          this.stats.bufErrors++;
          this.log.error({ rd, wr }, 'incomplete 8-byte buffered ioreq skipped');
          Atomics.add(b, W_BUF_RD, 1);
          used++;
          continue;
        }
        hi = Atomics.load(b, W_BUF_SLOTS + (((rd + 1) >>> 0) % IOREQ_BUFFER_SLOT_NUM) * W_PER_BUF_SLOT + 1);
      }
      try {
        this.bufferedOne(w0 & BUF_TYPE_MASK, (w0 >>> BUF_ADDR_SHIFT) & BUF_ADDR_MASK, 1 << code, (w0 & BUF_DIR_BIT) !== 0, lo, hi);
      } catch (e) {
        this.deviceError(e);
      }
      Atomics.add(b, W_BUF_RD, qw + 1);
      used += qw + 1;
      this.stats.buffered++;
    }
    return this.bufferedPending();
  }

  private bufferedOne(type: number, addr: number, size: number, isRead: boolean, lo: number, hi: number): void {
    switch (type) {
      case IOREQ_TYPE_COPY:
        this.stats.mmio++;
        // Reads never get buffered by Xen; if one shows up, do it for its side effects like QEMU.
        if (isRead) this.mmioRead(addr, 0, size);
        else this.mmioWrite(addr, 0, size, lo, hi);
        break;
      case IOREQ_TYPE_PIO:
        this.stats.pio++;
        if (size === 8) {
          this.stats.bufErrors++;
          this.guestLog.warn({ port: addr }, '8-byte buffered PIO ignored');
        } else if (isRead) this.board.pio.read(addr, size as AccessSize);
        else this.board.pio.write(addr, size as AccessSize, lo);
        break;
      case IOREQ_TYPE_TIMEOFFSET:
        this.setTimeOffset(lo, hi);
        break;
      default:
        this.unknownType(type);
    }
  }

  // ---- REP helpers ----------------------------------------------------------------

  /** Elements of a REP allowed by MAX_REP_BYTES and the address space. */
  private clampCount(count: number, size: number, gpa: number): number {
    let n = count;
    if (n * size > MAX_REP_BYTES) n = Math.floor(MAX_REP_BYTES / size);
    if (n < count) {
      this.stats.repFaults++;
      this.guestLog.warn({ gpa, size, count, done: n }, 'REP count above the per-ioreq cap clamped');
    }
    return n;
  }

  /**
   * Read the RAM side of a REP (`n` elements at gpa ± i*size) into the
   * staging buffer in element order; returns how many leading elements are
   * guest RAM. One bulk copy in the common case, element by element only to
   * find where a fault starts.
   */
  private loadMem(gpa: number, size: number, n: number, df: boolean): number {
    if (n <= 0) return 0;
    const mem = this.host.memory;
    const buf = this.rep;
    const low = df ? gpa - (n - 1) * size : gpa;
    const high = df ? gpa + size : gpa + n * size;
    if (low >= 0 && high <= GPA_LIMIT && mem.read(low, buf, 0, n * size)) {
      if (df) reverseElems(buf, size, n);
      return n;
    }
    let i = 0;
    for (; i < n; i++) {
      const a = df ? gpa - i * size : gpa + i * size;
      if (a < 0 || a + size > GPA_LIMIT || !mem.read(a, buf, i * size, size)) break;
    }
    return i;
  }

  /** Write `n` staged elements (element order) to gpa ± i*size. */
  private storeMem(gpa: number, size: number, n: number, df: boolean): void {
    if (n <= 0) return;
    const mem = this.host.memory;
    const buf = this.rep;
    if (df) reverseElems(buf, size, n);
    const low = df ? gpa - (n - 1) * size : gpa;
    if (mem.write(low, buf, 0, n * size)) return;
    // RAM went away since loadMem (another vCPU ballooned it out): element-wise up to the fault.
    if (df) reverseElems(buf, size, n);
    for (let i = 0; i < n; i++) {
      if (!mem.write(df ? gpa - i * size : gpa + i * size, buf, i * size, size)) {
        this.repFault(gpa, size, n, i);
        return;
      }
    }
  }

  private repFault(gpa: number, size: number, count: number, done: number): void {
    this.stats.repFaults++;
    this.guestLog.warn({ gpa, size, count, done }, 'REP ended at a guest-memory fault or cap');
  }

  private putElem(o: number, size: number, lo: number, hi: number): void {
    const v = this.repView;
    if (size === 1) v.setUint8(o, lo);
    else if (size === 2) v.setUint16(o, lo, true);
    else {
      v.setUint32(o, lo, true);
      if (size === 8) v.setUint32(o + 4, hi, true);
    }
  }

  /** Element value (low 32 bits for size 8). */
  private getElem(o: number, size: number): number {
    const v = this.repView;
    return size === 1 ? v.getUint8(o) : size === 2 ? v.getUint16(o, true) : v.getUint32(o, true);
  }
}

/** The address from int32 halves (exact below 2^53). */
function addrOf(lo: number, hi: number): number {
  return (hi >>> 0) * TWO_32 + (lo >>> 0);
}

/** High int32 half of an integer address (negative addresses give -1: unclaimed anyway). */
function hi32(a: number): number {
  return Math.floor(a / TWO_32) | 0;
}

function sizeMaskOf(size: number): number {
  return size >= 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
}

/** A device's fast-path return value, trusted only within [0, n]. */
function clampDone(done: number, n: number): number {
  return done >= 0 && done <= n ? done | 0 : 0;
}

/** Reverse the order of `n` elements of `size` bytes in place (df=1 staging). */
function reverseElems(buf: Uint8Array, size: number, n: number): void {
  for (let i = 0, j = n - 1; i < j; i++, j--) {
    const a = i * size;
    const b = j * size;
    for (let k = 0; k < size; k++) {
      const t = buf[a + k];
      buf[a + k] = buf[b + k];
      buf[b + k] = t;
    }
  }
}
