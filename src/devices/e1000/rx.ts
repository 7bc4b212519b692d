/**
 * The receive path: address filtering (SDM 3.2.1, 13.5: RAL/RAH exact
 * matches, the MTA hash, UPE/MPE/BAM, the VLAN filter table), VLAN tag
 * stripping (CTRL.VME, 3.2.3 `special`), and DMA of the frame into as many
 * receive buffers of RCTL's size as it needs (3.2.1: BSIZE/BSEX, LPE up to
 * 16 KiB), one descriptor after another from RDH (3.2.6).
 *
 * The frame is copied straight from the backend's buffer into guest buffers
 * (short frames through one preallocated 60-byte pad buffer): nothing is
 * allocated per frame. A frame that does not fit in the descriptors the guest
 * has handed over is refused (the backend keeps it and offers it again after
 * resumeReceive()), unless it could never fit in the ring at all, which
 * counts as missed (MPC/RNBC) with ICR.RXO, as hardware does.
 */
import * as R from './regs.ts';
import { S_CTRL, S_MTA, S_RA, S_RCTL, S_RDBAH, S_RDBAL, S_RDH, S_RDLEN, S_RDT, S_STATUS, S_VET, S_VFTA } from './table.ts';
import { statAdd64, statInc, statSize } from './stats.ts';

export interface RxPort {
  readonly regs: Uint32Array;
  dmaRead(gpa: number, dst: Uint8Array, off: number, len: number): boolean;
  dmaWrite(gpa: number, src: Uint8Array, off: number, len: number): boolean;
  busMaster(): boolean;
  /** A frame was stored: RXT0 through the RDTR/RADV timers. */
  rxDone(): void;
  raise(cause: number): void;
  warn(obj: object, msg: string): void;
}

const ETH_ZLEN = 60;
/** Largest frame without LPE: 1514 + a VLAN tag (QEMU e1000x_is_oversized). */
const MAX_SHORT = 1518;
/** With LPE: 16 KiB less the FCS. */
const MAX_LONG = 16384 - 4;
/** RCTL.RDMTS: 1/2, 1/4, 1/8 of the ring (3 is reserved; QEMU uses 1/16). */
const RDMTS_SHIFT = [1, 2, 3, 4];
/** RCTL.MO: which 12 bits of the destination address index the MTA (13.5.1). */
const MO_SHIFT = [4, 3, 2, 0];

/** RCTL receive buffer size (13.4.22): BSIZE with BSEX; reserved encodings mean 2048, as QEMU. */
export function rxBufSize(rctl: number): number {
  const bsize = (rctl >>> R.RCTL_BSIZE_SHIFT) & 3;
  if (rctl & R.RCTL_BSEX) return bsize === 1 ? 16384 : bsize === 2 ? 8192 : bsize === 3 ? 4096 : 2048;
  return bsize === 1 ? 1024 : bsize === 2 ? 512 : bsize === 3 ? 256 : 2048;
}

export class RxEngine {
  private readonly pad = new Uint8Array(ETH_ZLEN);
  private readonly descBytes = new Uint8Array(16);
  private readonly descView = new DataView(this.descBytes.buffer);

  constructor(private readonly port: RxPort) {}

  /** The ring has at least one free descriptor (what resumeReceive waits for). */
  hasRoom(): boolean {
    const r = this.port.regs;
    const n = r[S_RDLEN] / R.DESC_SIZE;
    return n > 0 && r[S_RDH] < n && r[S_RDT] < n && r[S_RDH] !== r[S_RDT];
  }

  /** The receiver: true when the frame was taken (stored or dropped), false to be offered it again later. */
  receive(frame: Uint8Array): boolean {
    const port = this.port;
    const r = port.regs;
    if (!(r[S_STATUS] & R.STATUS_LU) || !(r[S_RCTL] & R.RCTL_EN) || !port.busMaster()) return true; // receiver off: dropped
    let src = frame;
    let size = frame.length;
    if (size < ETH_ZLEN) {
      // Short frames are padded to the Ethernet minimum, as a real wire would deliver them.
      const p = this.pad;
      for (let i = 0; i < ETH_ZLEN; i++) p[i] = i < size ? frame[i] : 0;
      src = p;
      size = ETH_ZLEN;
    }
    const rctl = r[S_RCTL];
    if ((size > MAX_LONG || (size > MAX_SHORT && !(rctl & R.RCTL_LPE))) && !(rctl & R.RCTL_SBP)) {
      statInc(r, R.ST_ROC);
      return true;
    }
    if (!this.accept(src)) return true;
    const vet = r[S_VET] & 0xffff;
    const strip = (r[S_CTRL] & R.CTRL_VME) !== 0 && ((src[12] << 8) | src[13]) === vet;
    const special = strip ? (src[14] << 8) | src[15] : 0;
    if (strip) size -= 4;
    const total = size + (rctl & R.RCTL_SECRC ? 0 : 4); // the FCS counts in lengths unless stripped
    const bufSize = rxBufSize(rctl);
    const n = r[S_RDLEN] / R.DESC_SIZE;
    let rdh = r[S_RDH];
    const rdt = r[S_RDT];
    if (n === 0 || rdh >= n || rdt >= n) {
      port.warn({ rdh, rdt, ring: n }, 'e1000: RX head or tail outside the ring: frame dropped');
      this.missed();
      return true;
    }
    const need = Math.ceil(total / bufSize);
    if (need > n - 1) {
      this.missed(); // could never fit: hardware drops it
      return true;
    }
    const avail = rdt >= rdh ? rdt - rdh : n - rdh + rdt;
    if (need > avail) {
      statInc(r, R.ST_RNBC);
      return false; // the backend keeps it; resumeReceive() once RDT moves
    }
    const base = r[S_RDBAL] + r[S_RDBAH] * 0x100000000;
    const d = this.descBytes;
    const v = this.descView;
    let off = 0;
    // Bounded by `avail` (< ring size): null-address descriptors are consumed without data (3.2.3).
    for (let used = 0; used < avail && off < total; used++) {
      const at = base + rdh * R.DESC_SIZE;
      let addr = 0;
      if (port.dmaRead(at, d, 0, 16)) addr = v.getUint32(0, true) + v.getUint32(4, true) * 0x100000000;
      else port.warn({ gpa: at }, 'e1000: RX descriptor not in guest RAM');
      let chunk = 0;
      if (addr !== 0) {
        chunk = Math.min(bufSize, total - off);
        const data = Math.min(chunk, size - off);
        if (data > 0 && !this.copyOut(src, strip, addr, off, data)) {
          port.warn({ gpa: addr, len: data }, 'e1000: RX buffer not in guest RAM');
        }
        off += chunk;
      }
      const last = off >= total;
      v.setUint16(8, chunk, true); // length
      v.setUint16(10, 0, true); // packet checksum: not computed
      d[12] = R.RXD_STAT_DD | (last ? R.RXD_STAT_EOP | R.RXD_STAT_IXSM : 0) | (strip ? R.RXD_STAT_VP : 0);
      d[13] = 0; // errors
      v.setUint16(14, special, true);
      port.dmaWrite(at + 8, d, 8, 8);
      rdh = rdh + 1 >= n ? 0 : rdh + 1;
    }
    r[S_RDH] = rdh;
    if (off < total) {
      this.missed(); // null descriptors used up the room: the rest of the frame is lost
      return true;
    }
    statSize(r, R.ST_PRC64, total);
    statInc(r, R.ST_TPR);
    statInc(r, R.ST_GPRC);
    statAdd64(r, R.ST_TORL, size + 4);
    statAdd64(r, R.ST_GORCL, size + 4);
    if (src[0] === 0xff && src[1] === 0xff && src[2] === 0xff && src[3] === 0xff && src[4] === 0xff && src[5] === 0xff) statInc(r, R.ST_BPRC);
    else if (src[0] & 1) statInc(r, R.ST_MPRC);
    port.rxDone();
    // RXDMT0 (3.2.7.2): free descriptors at or below RDLEN / 2^(RDMTS+1).
    const free = rdt >= rdh ? rdt - rdh : n - rdh + rdt;
    if (free * R.DESC_SIZE <= r[S_RDLEN] >>> RDMTS_SHIFT[(rctl >>> R.RCTL_RDMTS_SHIFT) & 3]) port.raise(R.ICR_RXDMT0);
    return true;
  }

  private missed(): void {
    const r = this.port.regs;
    statInc(r, R.ST_RNBC);
    statInc(r, R.ST_MPC);
    this.port.raise(R.ICR_RXO);
  }

  /** Frame bytes [off, off+len) after tag stripping (bytes 12-15 removed) to guest `gpa`. */
  private copyOut(src: Uint8Array, strip: boolean, gpa: number, off: number, len: number): boolean {
    if (!strip) return this.port.dmaWrite(gpa, src, off, len);
    let ok = true;
    if (off < 12) {
      const head = Math.min(len, 12 - off);
      ok = this.port.dmaWrite(gpa, src, off, head);
      gpa += head;
      off += head;
      len -= head;
    }
    if (len > 0) ok = this.port.dmaWrite(gpa, src, off + 4, len) && ok;
    return ok;
  }

  /** Destination and VLAN filtering (QEMU e1000x_rx_group_filter/e1000x_rx_vlan_filter; SDM 13.5). */
  accept(b: Uint8Array): boolean {
    const r = this.port.regs;
    const rctl = r[S_RCTL];
    if (rctl & R.RCTL_VFE && ((b[12] << 8) | b[13]) === (r[S_VET] & 0xffff)) {
      const vid = ((b[14] << 8) | b[15]) & 0xfff;
      if (!(r[S_VFTA + (vid >>> 5)] & (1 << (vid & 31)))) return false;
    }
    if (b[0] === 0xff && b[1] === 0xff && b[2] === 0xff && b[3] === 0xff && b[4] === 0xff && b[5] === 0xff) {
      if (rctl & R.RCTL_BAM) return true;
    } else if (b[0] & 1) {
      if (rctl & R.RCTL_MPE) return true;
    } else if (rctl & R.RCTL_UPE) {
      return true;
    }
    const lo = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
    const hi = b[4] | (b[5] << 8);
    for (let i = 0; i < 16; i++) {
      const rah = r[S_RA + 2 * i + 1];
      if (rah & R.RAH_AV && r[S_RA + 2 * i] === lo && (rah & 0xffff) === hi) return true;
    }
    const shift = MO_SHIFT[(rctl >>> R.RCTL_MO_SHIFT) & 3];
    const f = ((((b[5] << 8) | b[4]) >>> shift) & 0xfff) >>> 0;
    return (r[S_MTA + (f >>> 5)] & (1 << (f & 31))) !== 0;
  }
}
