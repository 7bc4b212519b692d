/**
 * MemoryPair: two PacketBackends joined back to back in memory, for tests (a
 * NIC on one end, the test or a second NIC on the other). Each end's inbox
 * holds at most `capacity` frames: send() to a full inbox returns false, and
 * the sender's onWritable callbacks run once the receiving end has taken a
 * frame. Delivery happens on later event-loop turns (setImmediate), in
 * order; a receiver that refuses a frame keeps it at the head of the inbox
 * until resumeReceive(). After a receiver returns, the bytes it was handed
 * are overwritten (0xDD), so a NIC that keeps the buffer instead of copying
 * it fails its tests.
 */
import type { FrameReceiver, PacketBackend, TxOffload } from './backend.ts';
import { MAX_FRAME, MAX_OFFLOAD_FRAME, MAX_WRITABLE_LISTENERS } from './backend.ts';
import { finishChecksum } from './checksum.ts';

/** Frames an end's inbox holds by default (about one e1000 RX ring's worth of small descriptors). */
export const DEFAULT_MEMORY_QUEUE_FRAMES = 64;
/** Largest inbox a test may ask for. */
export const MAX_MEMORY_QUEUE_FRAMES = 4096;
/** Frames delivered per event-loop turn. */
const DELIVER_BURST = 64;
const ETH_HLEN = 14;

export interface MemoryPairOptions {
  /** Frames each inbox holds (1..MAX_MEMORY_QUEUE_FRAMES). */
  capacity?: number;
  /**
   * Whether send() takes offloads (as a tap with IFF_VNET_HDR): checksums are
   * completed, a segmentation offload arrives as one large frame. Default false.
   */
  offloads?: boolean;
  names?: [string, string];
}

export interface MemoryStats {
  sent: number;
  refused: number;
  delivered: number;
  /** Frames dropped at send(): impossible length or an offload that does not fit. */
  dropped: number;
  /** Most frames ever waiting in this end's inbox. */
  maxQueued: number;
}

export class MemoryEnd implements PacketBackend {
  readonly stats: MemoryStats = { sent: 0, refused: 0, delivered: 0, dropped: 0, maxQueued: 0 };
  /** Frames sent to this end and not yet taken by its receiver (head first). */
  private readonly inbox: Uint8Array[] = [];
  private receiver: FrameReceiver | null = null;
  private paused = false;
  private scheduled = false;
  /** A send() of ours was refused: tell our listeners when the peer takes a frame. */
  private wantWritable = false;
  private readonly writable: Array<() => void> = [];
  private closed = false;
  peer!: MemoryEnd;

  constructor(
    readonly name: string,
    readonly capacity: number,
    readonly offloads: boolean,
  ) {}

  /** Frames waiting in this end's inbox. */
  get queued(): number {
    return this.inbox.length;
  }

  setReceiver(r: FrameReceiver): void {
    this.receiver = r;
    this.schedule();
  }

  resumeReceive(): void {
    if (!this.paused) return;
    this.paused = false;
    this.schedule();
  }

  onWritable(cb: () => void): void {
    if (this.writable.length >= MAX_WRITABLE_LISTENERS) {
      throw new RangeError(`${this.name}: more than ${MAX_WRITABLE_LISTENERS} onWritable callbacks`);
    }
    this.writable.push(cb);
  }

  send(frame: Uint8Array, offload: TxOffload | null): boolean {
    if (this.closed || this.peer.closed) return false;
    const gso = offload !== null && offload.gsoType !== 'none' && offload.gsoSize > 0;
    if (frame.length < ETH_HLEN || frame.length > (gso && this.offloads ? MAX_OFFLOAD_FRAME : MAX_FRAME) || (gso && !this.offloads)) {
      this.stats.dropped++;
      return true;
    }
    const dst = this.peer;
    if (dst.inbox.length >= dst.capacity) {
      this.stats.refused++;
      this.wantWritable = true;
      return false;
    }
    const copy = frame.slice();
    if (offload !== null && !finishChecksum(copy, offload)) {
      this.stats.dropped++;
      return true;
    }
    dst.inbox.push(copy);
    if (dst.inbox.length > dst.stats.maxQueued) dst.stats.maxQueued = dst.inbox.length;
    this.stats.sent++;
    dst.schedule();
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.inbox.length = 0;
    this.receiver = null;
    this.writable.length = 0;
  }

  private schedule(): void {
    if (this.scheduled || this.closed || this.paused || this.receiver === null || this.inbox.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.deliver();
    });
  }

  private deliver(): void {
    let took = 0;
    while (took < DELIVER_BURST && !this.closed && !this.paused && this.receiver !== null && this.inbox.length > 0) {
      const f = this.inbox[0];
      if (!this.receiver(f)) {
        this.paused = true;
        break;
      }
      this.inbox.shift();
      f.fill(0xdd);
      this.stats.delivered++;
      took++;
    }
    if (took > 0) this.peer.writableAgain();
    this.schedule();
  }

  private writableAgain(): void {
    if (!this.wantWritable || this.closed) return;
    this.wantWritable = false;
    setImmediate(() => {
      if (this.closed) return;
      for (const cb of this.writable.slice()) cb();
    });
  }
}

/** Two connected ends: what `a` sends, `b` receives, and the other way round. */
export class MemoryPair {
  readonly a: MemoryEnd;
  readonly b: MemoryEnd;

  constructor(o: MemoryPairOptions = {}) {
    const capacity = o.capacity ?? DEFAULT_MEMORY_QUEUE_FRAMES;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_MEMORY_QUEUE_FRAMES) {
      throw new RangeError(`MemoryPair: capacity ${capacity} is not 1..${MAX_MEMORY_QUEUE_FRAMES}`);
    }
    const [na, nb] = o.names ?? ['mem-a', 'mem-b'];
    this.a = new MemoryEnd(na, capacity, o.offloads ?? false);
    this.b = new MemoryEnd(nb, capacity, o.offloads ?? false);
    this.a.peer = this.b;
    this.b.peer = this.a;
  }
}
