/** Building and checking IPv4 TCP/UDP packets for the TX offload tests (RFC 791, 793, 768, 1071). */
import { onesSum } from '../../../src/devices/e1000/tx.ts';

export const SRC_IP = [10, 0, 0, 1];
export const DST_IP = [10, 0, 0, 2];
export const ETH_HLEN = 14;
export const IP_HLEN = 20;
export const TCP_HLEN = 20;
export const UDP_HLEN = 8;

/** Pseudo-header sum (RFC 793 3.1) for `len` bytes of `proto`, folded, not complemented. */
export function pseudoSum(proto: number, len: number): number {
  let s = 0;
  s += (SRC_IP[0] << 8) | SRC_IP[1];
  s += (SRC_IP[2] << 8) | SRC_IP[3];
  s += (DST_IP[0] << 8) | DST_IP[1];
  s += (DST_IP[2] << 8) | DST_IP[3];
  s += proto + len;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

export interface PacketOpts {
  proto: 6 | 17;
  payload: Uint8Array;
  id?: number;
  seq?: number;
  flags?: number;
  /** What the driver leaves in the L4 checksum field: 'pseudo' (with length; CHECKSUM_PARTIAL), 'pseudo-nolen' (Linux e1000_tso), 'zero'. */
  l4csum?: 'pseudo' | 'pseudo-nolen' | 'zero';
  /** IP total length field: 'real' or 0 (Linux e1000_tso zeroes it). */
  totLen?: 'real' | 'zero';
}

export function buildPacket(o: PacketOpts): Uint8Array {
  const l4h = o.proto === 6 ? TCP_HLEN : UDP_HLEN;
  const len = ETH_HLEN + IP_HLEN + l4h + o.payload.length;
  const p = new Uint8Array(len);
  p.set([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00]);
  const ip = ETH_HLEN;
  p[ip] = 0x45;
  const tot = o.totLen === 'zero' ? 0 : len - ETH_HLEN;
  p[ip + 2] = tot >>> 8;
  p[ip + 3] = tot & 0xff;
  const id = o.id ?? 0x1234;
  p[ip + 4] = id >>> 8;
  p[ip + 5] = id & 0xff;
  p[ip + 6] = 0x40; // DF
  p[ip + 8] = 64;
  p[ip + 9] = o.proto;
  p.set(SRC_IP, ip + 12);
  p.set(DST_IP, ip + 16);
  const l4 = ip + IP_HLEN;
  p[l4] = 0x30;
  p[l4 + 1] = 0x39; // port 12345
  p[l4 + 2] = 0x00;
  p[l4 + 3] = 0x50; // port 80
  const l4len = len - l4;
  let csumAt: number;
  if (o.proto === 6) {
    const seq = o.seq ?? 0x10000000;
    p[l4 + 4] = seq >>> 24;
    p[l4 + 5] = (seq >>> 16) & 0xff;
    p[l4 + 6] = (seq >>> 8) & 0xff;
    p[l4 + 7] = seq & 0xff;
    p[l4 + 12] = 0x50;
    p[l4 + 13] = o.flags ?? 0x18;
    p[l4 + 14] = 0xff;
    p[l4 + 15] = 0xff;
    csumAt = l4 + 16;
  } else {
    p[l4 + 4] = l4len >>> 8;
    p[l4 + 5] = l4len & 0xff;
    csumAt = l4 + 6;
  }
  p.set(o.payload, l4 + l4h);
  const mode = o.l4csum ?? 'pseudo';
  if (mode !== 'zero') {
    const s = pseudoSum(o.proto, mode === 'pseudo' ? l4len : 0);
    p[csumAt] = s >>> 8;
    p[csumAt + 1] = s & 0xff;
  }
  return p;
}

/** The IPv4 header checksum verifies (sums to 0xFFFF). */
export function ipChecksumOk(f: Uint8Array, ip = ETH_HLEN): boolean {
  return onesSum(f, ip, ip + IP_HLEN) === 0xffff;
}

/** The TCP/UDP checksum verifies over the pseudo-header and the L4 bytes to the end of the IP packet. */
export function l4ChecksumOk(f: Uint8Array, ip = ETH_HLEN): boolean {
  const tot = (f[ip + 2] << 8) | f[ip + 3];
  const proto = f[ip + 9];
  const l4 = ip + IP_HLEN;
  const end = ip + tot;
  const s = onesSum(f, l4, end, pseudoSum(proto, end - l4));
  return s === 0xffff;
}

export function be16(f: Uint8Array, o: number): number {
  return (f[o] << 8) | f[o + 1];
}
export function be32(f: Uint8Array, o: number): number {
  return ((f[o] << 24) | (f[o + 1] << 16) | (f[o + 2] << 8) | f[o + 3]) >>> 0;
}
