/**
 * The transmit engine: walks the TX descriptor ring (SDM 3.4), assembles
 * packets from legacy (3.3.3) and TCP/IP data descriptors (3.3.7) under the
 * offload context of context descriptors (3.3.5/3.3.6), inserts IP and
 * TCP/UDP checksums and performs TCP segmentation (3.5) in software, and
 * hands each frame to the port (the device), which sends it to the backend.
 *
 * Guest input is hostile (docs/architecture.md §9):
 * - one walk processes at most the ring's size of descriptors and stops when
 *   TDH or TDT lies outside the ring (CVE-2016-1981 in QEMU: an out-of-range
 *   start looped forever; QEMU commit dd793a74 "e1000: eliminate infinite
 *   loops on out-of-bounds transfer start");
 * - every copy advances by at least one byte and never past the 64 KiB
 *   assembly buffer, so zero-length or looping descriptors cannot spin
 *   (CVE-2015-6815, QEMU commit b947ac2b "e1000: Avoid infinite loop in
 *   processing transmit descriptor");
 * - a TSO context is checked (MSS, header length, offsets inside the header)
 *   before the first byte of a packet that uses it; a bad one drops the
 *   packet instead of doing arithmetic on it (CVE-2021-20257, QEMU commit
 *   3de46e6f "e1000: fail early for evil descriptor");
 * - a walk emits at most TX_FRAME_BUDGET frames, then continues from a 0 ms
 *   timer, so a descriptor of 1 MiB with an MSS of 1 cannot hold the event
 *   loop for a million sends.
 *
 * Backpressure: when the backend refuses a frame, the prepared frame stays
 * in the assembly buffer, the walk stops with the descriptor unconsumed
 * (TDH not advanced, `phase` and `descOffset` say how far it got) and
 * resume() sends the frame again and carries on from there.
 */
import type { TxOffload } from '../../net/backend.ts';
import { StateError, StateReader } from '../../core/state.ts';
import type { StateObject } from '../../core/device.ts';
import * as R from './regs.ts';
import { S_CTRL, S_TCTL, S_TDBAH, S_TDBAL, S_TDH, S_TDLEN, S_TDT, S_VET } from './table.ts';

/** Assembly buffer: 64 KiB of packet data after 4 bytes of room for an inserted VLAN tag. */
export const TX_DATA_MAX = 0x10000;
const HEAD = 4;
/** TSO header length is an 8-bit field (3.3.6): the saved header is at most 255 bytes. */
const HDR_MAX = 255;
/** Frames one walk may emit before yielding to the event loop. */
export const TX_FRAME_BUDGET = 1024;

/** What the device gives the engine. */
export interface TxPort {
  readonly regs: Uint32Array;
  dmaRead(gpa: number, dst: Uint8Array, off: number, len: number): boolean;
  dmaWrite(gpa: number, src: Uint8Array, off: number, len: number): boolean;
  /** Put one frame on the wire (or loop it back); false: the backend is full. Counts statistics on success. */
  emit(buf: Uint8Array, start: number, len: number, offload: TxOffload | null): boolean;
  readonly offloads: boolean;
  /** A descriptor with RS was written back; `ide`: its interrupt may be delayed (TIDV/TADV). */
  descDone(ide: boolean): void;
  /** The ring drained (ICR.TXQE). */
  queueEmpty(): void;
  /** TCP segmentation context completed (TSCTC). */
  tsoDone(): void;
  /** Continue a walk that used up its frame budget, from a 0 ms timer. */
  yieldWalk(): void;
  warn(obj: object, msg: string): void;
}

/** One offload context (3.3.6): offsets are bytes from the start of the packet. */
export interface TxContext {
  ipcss: number;
  ipcso: number;
  ipcse: number;
  tucss: number;
  tucso: number;
  tucse: number;
  paylen: number;
  hdrLen: number;
  mss: number;
  ip: boolean;
  tcp: boolean;
}

function freshContext(): TxContext {
  return { ipcss: 0, ipcso: 0, ipcse: 0, tucss: 0, tucso: 0, tucse: 0, paylen: 0, hdrLen: 0, mss: 0, ip: false, tcp: false };
}

/** Where the walk stands in the descriptor at TDH. */
const PH_IDLE = 0; // next descriptor not fetched yet
const PH_COPY = 1; // copying its buffer from `descOffset`
const PH_EOP = 2; // buffer copied; end-of-packet handling next
const PH_EOP_SENT = 3; // the packet's last frame went out (or was refused and is pending)

export class TxEngine {
  /** The non-TSO and the TSO context: drivers interleave both (QEMU keeps two since commit "e1000: Separate TSO and non-TSO contexts"). */
  ctx = freshContext();
  tso = freshContext();
  /** Packet assembly: HEAD bytes of headroom, then `size` bytes of packet. */
  readonly buf = new Uint8Array(HEAD + TX_DATA_MAX);
  readonly header = new Uint8Array(HDR_MAX);
  size = 0;
  sumNeeded = 0;
  cptse = false;
  vlanNeeded = false;
  vlanTci = 0;
  tsoFrames = 0;
  /** Drop the rest of this packet (bad TSO context, DMA fault). */
  bad = false;
  legacyCss = 0;
  /** The packet started with a data (extended) descriptor rather than a legacy one. */
  ext = false;
  phase = PH_IDLE;
  descOffset = 0;
  /** The descriptor at TDH while phase != PH_IDLE (4 little-endian dwords). */
  readonly desc = new Uint32Array(4);
  /** A prepared frame the backend refused: buf[pendingStart, +pendingLen). -1: none. */
  pendingStart = 0;
  pendingLen = -1;
  pendingCsum = false;
  /** Waiting for the backend's onWritable. */
  blocked = false;

  private busy = false;
  private frames = 0;
  private readonly descBytes = new Uint8Array(16);
  private readonly descView = new DataView(this.descBytes.buffer);
  private readonly wb = new Uint8Array(4);
  private readonly offload: TxOffload = { csumStart: 0, csumOffset: 0, gsoSize: 0, hdrLen: 0, gsoType: 'none' };

  constructor(private readonly port: TxPort) {}

  /** Forget everything (device reset). */
  reset(): void {
    this.ctx = freshContext();
    this.tso = freshContext();
    this.buf.fill(0);
    this.header.fill(0);
    this.endPacket();
    this.phase = PH_IDLE;
    this.descOffset = 0;
    this.desc.fill(0);
    this.pendingLen = -1;
    this.pendingCsum = false;
    this.blocked = false;
  }

  /** Walk the ring (TDT/TCTL written, the backend has room again, the budget timer). Never throws. */
  run(): void {
    if (this.busy) return; // a send that re-enters (loopback, a synchronous onWritable)
    this.busy = true;
    this.frames = 0;
    try {
      this.walk();
    } finally {
      this.busy = false;
    }
  }

  private walk(): void {
    const regs = this.port.regs;
    if (!(regs[S_TCTL] & R.TCTL_EN)) return;
    if (this.pendingLen >= 0) {
      if (!this.sendPending()) return;
    }
    this.blocked = false;
    const n = regs[S_TDLEN] / R.DESC_SIZE;
    if (n === 0) return;
    if (regs[S_TDH] >= n || regs[S_TDT] >= n) {
      this.port.warn({ tdh: regs[S_TDH], tdt: regs[S_TDT], ring: n }, 'e1000: TX head or tail outside the ring: not transmitting');
      return;
    }
    const base = regs[S_TDBAL] + regs[S_TDBAH] * 0x100000000;
    let done = 0;
    while ((this.phase !== PH_IDLE || regs[S_TDH] !== regs[S_TDT]) && done < n) {
      const at = base + regs[S_TDH] * R.DESC_SIZE;
      if (this.phase === PH_IDLE) {
        if (!this.port.dmaRead(at, this.descBytes, 0, 16)) {
          this.port.warn({ gpa: at }, 'e1000: TX descriptor not in guest RAM (or bus mastering off): transmit stopped');
          return;
        }
        const v = this.descView;
        this.desc[0] = v.getUint32(0, true);
        this.desc[1] = v.getUint32(4, true);
        this.desc[2] = v.getUint32(8, true);
        this.desc[3] = v.getUint32(12, true);
      }
      if (!this.process()) return; // backend full, or the frame budget is spent
      this.phase = PH_IDLE;
      this.writeBack(at);
      regs[S_TDH] = regs[S_TDH] + 1 >= n ? 0 : regs[S_TDH] + 1;
      done++;
    }
    if (done > 0 && regs[S_TDH] === regs[S_TDT]) this.port.queueEmpty();
  }

  /** Work on the descriptor in `desc`; false when it must stop before finishing it. */
  private process(): boolean {
    const lower = this.desc[2];
    const upper = this.desc[3];
    if (this.phase === PH_IDLE) {
      const dtype = lower & (R.TXD_CMD_DEXT | R.TXD_DTYP_D);
      if (dtype === R.TXD_CMD_DEXT) {
        this.readContext(lower);
        return true;
      }
      const first = this.size === 0 && !this.bad;
      const ext = dtype === (R.TXD_CMD_DEXT | R.TXD_DTYP_D);
      if (first) this.ext = ext;
      else if (ext !== this.ext && !this.bad) {
        // Legacy and data descriptors in one packet (the CVE-2021-20257 reproducer chains them
        // to grow a TSO packet past HDRLEN + MSS): not a packet hardware defines, dropped.
        this.port.warn({}, 'e1000: packet mixes legacy and data descriptors: dropped');
        this.bad = true;
      }
      if (ext) {
        if (first) {
          this.sumNeeded = (upper >>> 8) & 0xff;
          this.cptse = (lower & R.TXD_CMD_TSE) !== 0;
          if (this.cptse && !this.tsoContextOk()) this.bad = true;
        }
      } else {
        this.cptse = false;
        if (first) this.legacyCss = (upper >>> 8) & 0xff;
      }
      if (this.port.regs[S_CTRL] & R.CTRL_VME && lower & R.TXD_CMD_VLE && (this.cptse || lower & R.TXD_CMD_EOP)) {
        this.vlanNeeded = true;
        this.vlanTci = upper >>> 16;
      }
      this.phase = PH_COPY;
      this.descOffset = 0;
    }
    if (this.phase === PH_COPY) {
      if (!this.copy(lower)) return false;
      this.phase = PH_EOP;
    }
    if (this.phase === PH_EOP) {
      if (!(lower & R.TXD_CMD_EOP)) return true;
      this.phase = PH_EOP_SENT;
      // A TSO packet whose payload ended on a segment boundary has nothing left but the
      // header: no empty segment goes out (QEMU would send one); a TSO packet with no payload
      // at all still sends its header once.
      const send =
        !this.bad &&
        this.size > 0 &&
        (!this.cptse || this.size > this.tso.hdrLen || (this.size === this.tso.hdrLen && this.tsoFrames === 0));
      if (send && !this.xmit(lower)) return false;
    }
    // PH_EOP_SENT: the last frame is out (possibly after a refusal and resume).
    this.endPacket();
    return true;
  }

  private readContext(lower: number): void {
    const d = this.desc;
    const c = lower & R.TXD_CMD_TSE ? this.tso : this.ctx;
    c.ipcss = d[0] & 0xff;
    c.ipcso = (d[0] >>> 8) & 0xff;
    c.ipcse = d[0] >>> 16;
    c.tucss = d[1] & 0xff;
    c.tucso = (d[1] >>> 8) & 0xff;
    c.tucse = d[1] >>> 16;
    c.paylen = lower & 0xfffff;
    c.ip = (lower & R.TXD_CMD_IP) !== 0;
    c.tcp = (lower & R.TXD_CMD_TCP) !== 0;
    c.hdrLen = (d[3] >>> 8) & 0xff;
    c.mss = d[3] >>> 16;
    if (lower & R.TXD_CMD_TSE) this.tsoFrames = 0;
  }

  /** Offsets a segmentation pass writes must lie inside the header it repeats (CVE-2021-20257). */
  private tsoContextOk(): boolean {
    const c = this.tso;
    const ipEnd = c.ipcss + 6; // total length/payload length and IP id (IPv4) fields
    const l4End = c.tucss + (c.tcp ? 14 : 6); // TCP flags, UDP length
    const ok =
      c.mss > 0 &&
      c.hdrLen > 0 &&
      c.hdrLen + c.mss <= TX_DATA_MAX &&
      ipEnd <= c.hdrLen &&
      l4End <= c.hdrLen &&
      (!(this.sumNeeded & R.TXD_POPTS_TXSM) || c.tucso + 2 <= c.hdrLen) &&
      (!(this.sumNeeded & R.TXD_POPTS_IXSM) || c.ipcso + 2 <= c.hdrLen);
    if (!ok) this.port.warn({ mss: c.mss, hdrLen: c.hdrLen, ipcss: c.ipcss, tucss: c.tucss, tucso: c.tucso }, 'e1000: bad TSO context: packet dropped');
    return ok;
  }

  /** Copy the descriptor's buffer from descOffset; with TSO, emit each full segment. */
  private copy(lower: number): boolean {
    const dext = (lower & R.TXD_CMD_DEXT) !== 0;
    const len = dext ? lower & 0xfffff : lower & 0xffff;
    const addr = this.desc[0] + this.desc[1] * 0x100000000;
    if (this.bad) {
      this.descOffset = len;
      return true;
    }
    if (!this.cptse) {
      const room = TX_DATA_MAX - this.size;
      const bytes = Math.min(len - this.descOffset, room);
      if (bytes < len - this.descOffset) this.port.warn({ len, size: this.size }, 'e1000: TX packet longer than 64 KiB: truncated');
      if (bytes > 0 && !this.port.dmaRead(addr + this.descOffset, this.buf, HEAD + this.size, bytes)) return this.fault(addr, len);
      this.size += bytes;
      this.descOffset = len;
      return true;
    }
    const hdr = this.tso.hdrLen;
    const msh = hdr + this.tso.mss; // checked <= TX_DATA_MAX
    while (this.descOffset < len) {
      if (this.size >= msh) {
        this.bad = true; // cannot happen: a full segment is sent at once
        break;
      }
      const bytes = Math.min(len - this.descOffset, msh - this.size);
      if (!this.port.dmaRead(addr + this.descOffset, this.buf, HEAD + this.size, bytes)) return this.fault(addr, len);
      if (this.size < hdr && this.size + bytes >= hdr) copyBytes(this.header, 0, this.buf, HEAD, hdr);
      this.size += bytes;
      this.descOffset += bytes;
      if (this.size === msh) {
        if (!this.xmit(lower)) return false;
        if (this.frames >= TX_FRAME_BUDGET && this.descOffset < len) {
          this.port.yieldWalk();
          return false;
        }
      }
    }
    return true;
  }

  private fault(addr: number, len: number): boolean {
    this.port.warn({ gpa: addr, len }, 'e1000: TX buffer not in guest RAM (or bus mastering off): packet dropped');
    this.bad = true;
    this.descOffset = len;
    return true;
  }

  /** Finish the segment in the buffer (TSO fix-ups, checksums, VLAN tag) and send it. */
  private xmit(lower: number): boolean {
    const b = this.buf;
    const size = this.size;
    const c = this.cptse ? this.tso : this.ctx;
    if (this.cptse) {
      const frames = this.tsoFrames;
      const ip = HEAD + c.ipcss;
      if (c.ip) {
        put16(b, ip + 2, size - c.ipcss);
        put16(b, ip + 4, get16(b, ip + 4) + frames);
      } else {
        put16(b, ip + 4, size - c.ipcss - 40); // IPv6 payload length
      }
      const l4 = HEAD + c.tucss;
      const l4len = size - c.tucss;
      if (c.tcp) {
        const sofar = frames * c.mss;
        put32(b, l4 + 4, get32(b, l4 + 4) + sofar);
        if ((c.paylen - sofar) >>> 0 > c.mss) b[l4 + 13] &= ~0x09; // not the last segment: no PSH, no FIN
        else if (frames > 0) this.port.tsoDone();
      } else {
        put16(b, l4 + 4, l4len);
      }
      if (this.sumNeeded & R.TXD_POPTS_TXSM) {
        // The driver put the pseudo-header sum without the length there (3.5.2): add this segment's.
        const p = get16(b, HEAD + c.tucso) + l4len;
        put16(b, HEAD + c.tucso, (p >>> 16) + (p & 0xffff));
      }
    }
    let offload = false;
    if (this.sumNeeded & R.TXD_POPTS_TXSM) {
      if (this.port.offloads && !this.cptse && c.tucse === 0 && c.tucso > c.tucss && c.tucso + 2 <= size) offload = true;
      else putsum(b, size, c.tucso, c.tucss, c.tucse);
    }
    if (this.sumNeeded & R.TXD_POPTS_IXSM) putsum(b, size, c.ipcso, c.ipcss, c.ipcse);
    if (!(lower & R.TXD_CMD_DEXT) && lower & R.TXD_CMD_IC) {
      // Legacy checksum (3.3.3): from CSS (first descriptor) to the end, at CSO; ignored when out of range.
      const cso = (lower >>> 16) & 0xff;
      if (this.legacyCss < size && cso + 2 <= size) putsum(b, size, cso, this.legacyCss, 0);
    }
    let start = HEAD;
    let len = size;
    if (this.vlanNeeded) {
      b.copyWithin(0, HEAD, HEAD + 12);
      const vet = this.port.regs[S_VET] & 0xffff;
      b[12] = vet >>> 8;
      b[13] = vet & 0xff;
      b[14] = this.vlanTci >>> 8;
      b[15] = this.vlanTci & 0xff;
      start = 0;
      len = size + 4;
    }
    this.pendingStart = start;
    this.pendingLen = len;
    this.pendingCsum = offload;
    return this.sendPending();
  }

  /** Offer the prepared frame; on success do what follows a sent segment. */
  private sendPending(): boolean {
    let off: TxOffload | null = null;
    const c = this.ctx;
    const shift = this.pendingStart === 0 ? 4 : 0;
    if (this.pendingCsum) {
      this.offload.csumStart = c.tucss + shift;
      this.offload.csumOffset = c.tucso - c.tucss;
      off = this.offload;
    }
    if (!this.port.emit(this.buf, this.pendingStart, this.pendingLen, off)) {
      this.blocked = true;
      return false;
    }
    this.frames++;
    this.pendingLen = -1;
    this.pendingCsum = false;
    if (this.cptse) {
      this.tsoFrames++;
      // The next segment starts from the original header again.
      const hdr = this.tso.hdrLen;
      copyBytes(this.buf, HEAD, this.header, 0, hdr);
      this.size = hdr;
    }
    return true;
  }

  private writeBack(at: number): void {
    const lower = this.desc[2];
    if (!(lower & (R.TXD_CMD_RS | R.TXD_CMD_RPS))) return;
    const up = ((this.desc[3] | R.TXD_STAT_DD) & ~(R.TXD_STAT_EC | R.TXD_STAT_LC | R.TXD_STAT_TU)) >>> 0;
    const w = this.wb;
    w[0] = up & 0xff;
    w[1] = (up >>> 8) & 0xff;
    w[2] = (up >>> 16) & 0xff;
    w[3] = up >>> 24;
    this.port.dmaWrite(at + 12, w, 0, 4);
    this.port.descDone((lower & R.TXD_CMD_IDE) !== 0);
  }

  private endPacket(): void {
    this.size = 0;
    this.sumNeeded = 0;
    this.cptse = false;
    this.vlanNeeded = false;
    this.vlanTci = 0;
    this.tsoFrames = 0;
    this.bad = false;
    this.legacyCss = 0;
    this.ext = false;
  }

  snapshot(): StateObject {
    const ctx = (c: TxContext): StateObject => ({ ...c });
    return {
      ctx: ctx(this.ctx),
      tso: ctx(this.tso),
      data: this.buf.slice(0, HEAD + this.size),
      header: this.header.slice(),
      size: this.size,
      sumNeeded: this.sumNeeded,
      cptse: this.cptse,
      vlanNeeded: this.vlanNeeded,
      vlanTci: this.vlanTci,
      tsoFrames: this.tsoFrames,
      bad: this.bad,
      legacyCss: this.legacyCss,
      ext: this.ext,
      phase: this.phase,
      descOffset: this.descOffset,
      desc: Array.from(this.desc),
      pendingStart: this.pendingStart,
      pendingLen: this.pendingLen,
      pendingCsum: this.pendingCsum,
      blocked: this.blocked,
    };
  }

  /** Check saved TX state; returns a function that applies it (nothing changes until it is called). */
  static check(r: StateReader): (t: TxEngine) => void {
    const readCtx = (k: string): TxContext => {
      const c = r.obj(k);
      return {
        ipcss: c.u('ipcss', 8),
        ipcso: c.u('ipcso', 8),
        ipcse: c.u('ipcse', 16),
        tucss: c.u('tucss', 8),
        tucso: c.u('tucso', 8),
        tucse: c.u('tucse', 16),
        paylen: c.int('paylen', 0, 0xfffff),
        hdrLen: c.u('hdrLen', 8),
        mss: c.u('mss', 16),
        ip: c.bool('ip'),
        tcp: c.bool('tcp'),
      };
    };
    const ctx = readCtx('ctx');
    const tso = readCtx('tso');
    const size = r.int('size', 0, TX_DATA_MAX);
    const data = r.bytes('data', HEAD + size);
    const header = r.bytes('header', HDR_MAX);
    const sumNeeded = r.u('sumNeeded', 8);
    const cptse = r.bool('cptse');
    const vlanNeeded = r.bool('vlanNeeded');
    const vlanTci = r.u('vlanTci', 16);
    const tsoFrames = r.int('tsoFrames', 0, 0x100000);
    const bad = r.bool('bad');
    const legacyCss = r.u('legacyCss', 8);
    const ext = r.bool('ext');
    const phase = r.int('phase', PH_IDLE, PH_EOP_SENT);
    const descOffset = r.int('descOffset', 0, 0xfffff);
    const desc = r.ints('desc', 4, 0, 0xffffffff);
    const pendingStart = r.int('pendingStart', 0, HEAD);
    const pendingLen = r.int('pendingLen', -1, HEAD + TX_DATA_MAX);
    const pendingCsum = r.bool('pendingCsum');
    const blocked = r.bool('blocked');
    if (pendingLen >= 0 && pendingStart + pendingLen > data.length) {
      throw new StateError(`${r.path}.pendingLen: frame [${pendingStart}, +${pendingLen}) outside the ${data.length} saved bytes`);
    }
    if (cptse && !bad && size > 0 && tso.hdrLen + tso.mss > TX_DATA_MAX) throw new StateError(`${r.path}.tso: header + MSS above 64 KiB`);
    return (t) => {
      t.ctx = ctx;
      t.tso = tso;
      t.buf.fill(0);
      t.buf.set(data);
      t.header.set(header);
      t.size = size;
      t.sumNeeded = sumNeeded;
      t.cptse = cptse;
      t.vlanNeeded = vlanNeeded;
      t.vlanTci = vlanTci;
      t.tsoFrames = tsoFrames;
      t.bad = bad;
      t.legacyCss = legacyCss;
      t.ext = ext;
      t.phase = phase;
      t.descOffset = descOffset;
      t.desc.set(desc);
      t.pendingStart = pendingStart;
      t.pendingLen = pendingLen;
      t.pendingCsum = pendingCsum;
      t.blocked = blocked;
    };
  }
}

/** A plain loop: no subarray view per frame on the hot path (hdr <= 255 bytes). */
function copyBytes(dst: Uint8Array, d: number, src: Uint8Array, s: number, n: number): void {
  for (let i = 0; i < n; i++) dst[d + i] = src[s + i];
}

function get16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
function get32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** One's-complement sum of data[start, end) as big-endian 16-bit words (RFC 1071). */
export function onesSum(data: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (i < end) sum += data[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * Insert a checksum over packet bytes [css, cse] (cse 0: to the end) at
 * `sloc`, as 3.3.6 describes; offsets outside the packet leave it untouched.
 * A result of 0 goes out as 0xFFFF (same value in one's complement; UDP needs it).
 */
function putsum(b: Uint8Array, size: number, sloc: number, css: number, cse: number): void {
  let n = size;
  if (cse !== 0 && cse < n) n = cse + 1;
  if (!(sloc < n - 1) || css >= n) return;
  const s = ~onesSum(b, HEAD + css, HEAD + n) & 0xffff;
  put16(b, HEAD + sloc, s === 0 ? 0xffff : s);
}
