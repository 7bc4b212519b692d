/**
 * TapBackend: a NIC's frames through a Linux tap device, the way QEMU's
 * `-netdev tap` does it (net/tap-linux.c): /dev/net/tun with TUNSETIFF
 * IFF_TAP|IFF_NO_PI on the ifname libxl passes (`vif<domid>.<devid>-emu`),
 * non-blocking, plus IFF_VNET_HDR where the kernel has it so that a frame the
 * NIC leaves a checksum or TCP segmentation to (TxOffload) goes to the host
 * kernel as it is, unsegmented (docs/xen-contract.md §15).
 *
 * The fd sits in Node's event loop through the fdwatch addon (one uv_poll
 * for both directions); the read and write of each frame are single
 * syscalls in native/fdwatch.c (why not Node's fs: see there), into one
 * receive buffer reused for every frame.
 *
 * Bounded, in order, never duplicated:
 *  - receive: frames are read only while the NIC takes them. A refused frame
 *    stays in the buffer and the readable watch stops, so the kernel's queue
 *    (the tap's txqueuelen) is the only backlog and it drops what overflows,
 *    as a full NIC ring on real hardware does. resumeReceive() offers the
 *    kept frame again on a later event-loop turn, then reading resumes. At
 *    most RX_BURST frames are read per wake-up so guest I/O interleaves.
 *  - send: one write per frame. EAGAIN (the tap socket's send buffer is full)
 *    refuses the frame and every later one until the fd is writable again;
 *    then each onWritable callback runs once. Other errors drop the frame
 *    (counted, rate-limited log): EIO while the tap is down, as a cable
 *    that is unplugged.
 */
import { closeSync } from 'node:fs';
import { RateLimited, logger, type Logger } from '../core/log.ts';
import { MAX_FRAME, MAX_OFFLOAD_FRAME, MAX_WRITABLE_LISTENERS, type FrameReceiver, type PacketBackend, type TxOffload } from './backend.ts';
import { finishChecksum } from './checksum.ts';
import { EAGAIN, EV_READABLE, EV_WRITABLE, loadTapIo, type NetWatcher, type TapIo } from './native.ts';
import { EV_TAP_WAKE, type NetTrace } from './trace.ts';

/** Frames read per readable wake-up before yielding to the rest of the event loop. */
export const RX_BURST = 64;
/** Views of rxBuf kept for reuse, by frame length modulo this (steady traffic reuses a few lengths). */
const VIEW_SLOTS = 64;
/** Shortest frame worth passing on: an Ethernet header. */
const ETH_HLEN = 14;

/** virtio_net_hdr (linux: include/uapi/linux/virtio_net.h). */
const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
const GSO_TYPE: Record<TxOffload['gsoType'], number> = { none: 0, tcpv4: 1, udp: 3, tcpv6: 4 };

export interface TapOptions {
  /** The tap's name ('' = let the kernel pick tapN). */
  ifname: string;
  /** Ask for IFF_VNET_HDR (default true); `offloads` says whether it was granted. */
  vnetHdr?: boolean;
  log?: Logger;
  /** The addon's tap calls (tests substitute their own). */
  io?: TapIo;
  /** Record each wake-up of the fd (STUBDM_NET_TRACE; net/trace.ts). */
  trace?: NetTrace | null;
}

export interface TapStats {
  rxFrames: number;
  txFrames: number;
  /** Received frames dropped: longer than MAX_FRAME (truncated by the kernel) or shorter than an Ethernet header. */
  rxDropped: number;
  /** Sent frames dropped: too long, bad offload, or a write error other than EAGAIN. */
  txDropped: number;
  /** send() refused with EAGAIN. */
  txRefused: number;
}

export class TapBackend implements PacketBackend {
  readonly offloads: boolean;
  readonly stats: TapStats = { rxFrames: 0, txFrames: 0, rxDropped: 0, txDropped: 0, txRefused: 0 };
  private readonly rxBuf = new Uint8Array(MAX_FRAME);
  /** rxBuf.subarray(0, len) for recent lengths: no new view object per frame. */
  private readonly views: Array<Uint8Array | undefined> = new Array(VIEW_SLOTS);
  /** Copy of a frame whose checksum we complete ourselves (no vnet header). */
  private txScratch: Uint8Array | null = null;
  private receiver: FrameReceiver | null = null;
  /** Length of the frame the NIC refused, kept in rxBuf; 0 = none. */
  private held = 0;
  private rxPaused = false;
  private resumeQueued = false;
  private txBlocked = false;
  private readonly writable: Array<() => void> = [];
  private readonly watcher: NetWatcher;
  private closed = false;
  /** A read failed for good (the tap was detached or deleted): no more reading. */
  private broken = false;
  private readonly warn: RateLimited;

  /** Opens (or creates) the tap. Throws the addon's Error (`code` = errno name) when it cannot. */
  static open(o: TapOptions): TapBackend {
    const io = o.io ?? loadTapIo();
    const r = io.tapOpen(o.ifname, o.vnetHdr ?? true);
    return new TapBackend(r.ifname, r.fd, r.vnetHdrLen, io, o.log ?? logger('net'), o.trace ?? null);
  }

  /** Over an fd that is already open and non-blocking (tests: a pipe). */
  static fromFd(name: string, fd: number, vnetHdrLen: number, log?: Logger, io?: TapIo, trace?: NetTrace | null): TapBackend {
    return new TapBackend(name, fd, vnetHdrLen, io ?? loadTapIo(), log ?? logger('net'), trace ?? null);
  }

  private constructor(
    readonly name: string,
    readonly fd: number,
    private readonly vnetHdrLen: number,
    private readonly io: TapIo,
    private readonly log: Logger,
    private readonly trace: NetTrace | null,
  ) {
    this.offloads = vnetHdrLen > 0;
    this.warn = new RateLimited(log);
    // Nothing to read for until a receiver is set.
    this.watcher = io.watch(fd, (status, events) => this.onPoll(status, events), EV_READABLE);
    this.watcher.setEvents(0);
  }

  setReceiver(r: FrameReceiver): void {
    this.receiver = r;
    this.updateEvents();
  }

  resumeReceive(): void {
    if (this.closed || !this.rxPaused || this.resumeQueued) return;
    // Never re-enter the NIC from inside its own register write: offer the
    // kept frame on a later turn.
    this.resumeQueued = true;
    setImmediate(() => {
      this.resumeQueued = false;
      if (this.closed || !this.rxPaused) return;
      this.rxPaused = false;
      if (this.held > 0 && !this.deliver(this.held)) return;
      this.held = 0;
      this.updateEvents();
    });
  }

  onWritable(cb: () => void): void {
    if (this.writable.length >= MAX_WRITABLE_LISTENERS) {
      throw new RangeError(`tap ${this.name}: more than ${MAX_WRITABLE_LISTENERS} onWritable callbacks`);
    }
    this.writable.push(cb);
  }

  send(frame: Uint8Array, offload: TxOffload | null): boolean {
    if (this.closed) return false;
    if (this.txBlocked) return false; // the refused frame goes first
    const gso = offload !== null && offload.gsoType !== 'none' && offload.gsoSize > 0;
    if (frame.length < ETH_HLEN || frame.length > (gso && this.offloads ? MAX_OFFLOAD_FRAME : MAX_FRAME)) {
      return this.dropTx({ len: frame.length }, 'frame of impossible length dropped');
    }
    let buf = frame;
    let flags = 0, gsoType = 0, hdrLen = 0, gsoSize = 0, csumStart = 0, csumOffset = 0;
    if (offload !== null && this.offloads) {
      if (offload.csumOffset > 0) {
        if (offload.csumStart >= frame.length || offload.csumStart + offload.csumOffset + 2 > frame.length) {
          return this.dropTx({ offload }, 'frame with a checksum offload outside it dropped');
        }
        flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        csumStart = offload.csumStart;
        csumOffset = offload.csumOffset;
      }
      if (gso) {
        gsoType = GSO_TYPE[offload.gsoType];
        gsoSize = offload.gsoSize;
        hdrLen = offload.hdrLen;
      }
    } else if (offload !== null) {
      // No vnet header: the NIC should have done it; finish the checksum here, refuse segmentation.
      if (gso) return this.dropTx({ offload }, 'segmentation offload on a tap without IFF_VNET_HDR: frame dropped');
      if (offload.csumOffset > 0) {
        buf = this.scratch(frame);
        if (!finishChecksum(buf, offload)) return this.dropTx({ offload }, 'frame with a checksum offload outside it dropped');
      }
    }
    const n = this.io.tapWrite(this.fd, buf, frame.length, this.vnetHdrLen, flags, gsoType, hdrLen, gsoSize, csumStart, csumOffset);
    if (n === -EAGAIN) {
      this.stats.txRefused++;
      this.txBlocked = true;
      this.updateEvents();
      return false;
    }
    if (n < 0) return this.dropTx({ errno: -n }, 'write to tap failed: frame dropped');
    this.stats.txFrames++;
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watcher.stop();
    this.receiver = null;
    this.writable.length = 0;
    try {
      closeSync(this.fd);
    } catch {
      // already gone: nothing to release
    }
  }

  private scratch(frame: Uint8Array): Uint8Array {
    if (this.txScratch === null) this.txScratch = new Uint8Array(MAX_FRAME);
    const s = this.txScratch.subarray(0, frame.length);
    s.set(frame);
    return s;
  }

  private dropTx(obj: object, msg: string): true {
    this.stats.txDropped++;
    this.warn.warn({ tap: this.name, ...obj }, msg);
    return true; // consumed: a bad frame must not stall the queue behind it
  }

  /** Hands rxBuf[0, len) to the NIC; false (and paused) when it refused. */
  private deliver(len: number): boolean {
    const r = this.receiver;
    if (r === null) {
      this.held = len;
      this.rxPaused = true;
      return false;
    }
    let v = this.views[len % VIEW_SLOTS];
    if (v === undefined || v.length !== len) v = this.views[len % VIEW_SLOTS] = this.rxBuf.subarray(0, len);
    if (r(v)) {
      this.stats.rxFrames++;
      return true;
    }
    this.held = len;
    this.rxPaused = true;
    this.updateEvents();
    return false;
  }

  private fail(obj: object, msg: string): void {
    this.broken = true;
    this.txBlocked = false; // writes now fail and drop rather than wait for good
    this.log.error({ tap: this.name, ...obj }, `${msg}: no more frames are received from it`);
    this.updateEvents();
  }

  private updateEvents(): void {
    if (this.closed) return;
    const rx = !this.broken && this.receiver !== null && !this.rxPaused && this.held === 0 ? EV_READABLE : 0;
    this.watcher.setEvents(rx | (this.txBlocked ? EV_WRITABLE : 0));
  }

  private onPoll(status: number, events: number): void {
    if (this.trace !== null) this.trace.record(EV_TAP_WAKE, events & (EV_READABLE | EV_WRITABLE), 0);
    if (this.closed) return;
    if (status < 0) {
      this.fail({ status }, 'watching the tap fd failed');
      return;
    }
    if (events & EV_WRITABLE && this.txBlocked) {
      this.txBlocked = false;
      this.updateEvents();
      for (const cb of this.writable.slice()) cb();
    }
    if (events & EV_READABLE) this.readBurst();
  }

  private readBurst(): void {
    for (let i = 0; i < RX_BURST; i++) {
      if (this.closed || this.broken || this.rxPaused || this.receiver === null) return;
      const n = this.io.tapRead(this.fd, this.rxBuf, this.vnetHdrLen);
      if (n === -EAGAIN) return;
      if (n < 0) {
        // Not EAGAIN: EBADFD/ENODEV after the tap went away. Level-triggered
        // polling would call us forever, so stop reading for good.
        this.fail({ errno: -n }, 'read from tap failed');
        return;
      }
      if (n > MAX_FRAME || n < ETH_HLEN) {
        this.stats.rxDropped++;
        this.warn.warn({ tap: this.name, len: n, max: MAX_FRAME }, 'received frame of impossible length dropped');
        continue;
      }
      if (!this.deliver(n)) return;
    }
  }
}
