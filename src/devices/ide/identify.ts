/**
 * IDENTIFY DEVICE (ATA8-ACS 7.16, table 22) and IDENTIFY PACKET DEVICE
 * (7.17, table 37) data: 256 little-endian words. Strings are ATA strings:
 * two characters per word, first character in the high byte, space padded.
 */
import type { DriveState } from './drive.ts';

/** Sectors per READ/WRITE MULTIPLE block we allow (word 47). */
export const MAX_MULT_SECTORS = 16;

function putWord(b: Uint8Array, word: number, v: number): void {
  b[word * 2] = v & 0xff;
  b[word * 2 + 1] = (v >>> 8) & 0xff;
}

function putString(b: Uint8Array, word: number, s: string, chars: number): void {
  for (let i = 0; i < chars; i++) {
    const c = i < s.length ? s.charCodeAt(i) & 0x7f : 0x20;
    b[word * 2 + (i ^ 1)] = c; // byte-swapped within each word
  }
}

/** Word 255: 0xA5 signature, high byte = two's complement of the sum of bytes 0-510 (ATA8-ACS 7.16.7.93). */
function putIntegrity(b: Uint8Array): void {
  b[510] = 0xa5;
  let sum = 0;
  for (let i = 0; i < 511; i++) sum += b[i];
  b[511] = -sum & 0xff;
}

/** Active-mode bits for words 63 and 88 from the SET FEATURES transfer mode value. */
function activeBits(xferMode: number, kind: number): number {
  return xferMode >> 3 === kind ? 1 << (8 + (xferMode & 7)) : 0;
}

export function identifyDevice(s: DriveState, b: Uint8Array, sectors: number): void {
  b.fill(0, 0, 512);
  putWord(b, 0, 0x0040); // fixed device, not removable
  putWord(b, 1, s.cylinders);
  putWord(b, 3, s.heads);
  putWord(b, 4, 512 * s.sectors); // retired: unformatted bytes per track (QEMU still fills it)
  putWord(b, 5, 512); // retired: unformatted bytes per sector
  putWord(b, 6, s.sectors);
  putString(b, 10, s.serial, 20);
  putWord(b, 20, 3); // buffer type (retired; drivers still print it)
  putWord(b, 21, 512); // buffer size in sectors (retired)
  putWord(b, 22, 4); // ECC bytes (retired)
  putString(b, 23, s.firmware, 8);
  putString(b, 27, s.model, 40);
  putWord(b, 47, 0x8000 | MAX_MULT_SECTORS);
  putWord(b, 48, 1); // 32-bit PIO data transfers
  putWord(b, 49, (1 << 11) | (1 << 9) | (1 << 8)); // IORDY, LBA, DMA
  putWord(b, 50, 0x4000);
  putWord(b, 51, 0x200); // PIO timing mode 2 (obsolete field)
  putWord(b, 52, 0x200);
  putWord(b, 53, 1 | 2 | 4); // words 54-58, 64-70 and 88 are valid
  const cur = s.curCylinders * s.curHeads * s.curSectors;
  putWord(b, 54, s.curCylinders);
  putWord(b, 55, s.curHeads);
  putWord(b, 56, s.curSectors);
  putWord(b, 57, cur & 0xffff);
  putWord(b, 58, cur >>> 16);
  if (s.multSectors) putWord(b, 59, 0x100 | s.multSectors);
  const lba28 = Math.min(sectors, 0x0fffffff);
  putWord(b, 60, lba28 & 0xffff);
  putWord(b, 61, lba28 >>> 16);
  putWord(b, 62, 0x07 | activeBits(s.xferMode, 2)); // single-word DMA 0-2
  putWord(b, 63, 0x07 | activeBits(s.xferMode, 4)); // multiword DMA 0-2
  putWord(b, 64, 0x03); // PIO modes 3 and 4
  putWord(b, 65, 120); // minimum MWDMA cycle time (ns)
  putWord(b, 66, 120);
  putWord(b, 67, 120); // minimum PIO cycle time without flow control
  putWord(b, 68, 120);
  putWord(b, 80, 0x00f0); // ATA/ATAPI-4 to -7
  putWord(b, 81, 0x0016);
  // 82-84 supported, 85-87 enabled (ATA8-ACS 7.16.7.40-45).
  putWord(b, 82, (1 << 14) | (1 << 5)); // NOP, volatile write cache
  putWord(b, 83, (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10)); // FLUSH CACHE EXT, FLUSH CACHE, 48-bit
  putWord(b, 84, 1 << 14);
  putWord(b, 85, (1 << 14) | (s.writeCache ? 1 << 5 : 0));
  putWord(b, 86, (1 << 13) | (1 << 12) | (1 << 10));
  putWord(b, 87, 1 << 14);
  putWord(b, 88, 0x3f | activeBits(s.xferMode, 8)); // UDMA 0-5
  putWord(b, 93, 1 | (1 << 14) | 0x2000); // hardware reset result: device 0, 80-wire cable
  putWord(b, 106, 0x6000); // word valid; one logical sector per physical sector (as QEMU)
  putWord(b, 100, sectors % 0x10000);
  putWord(b, 101, Math.floor(sectors / 0x10000) % 0x10000);
  putWord(b, 102, Math.floor(sectors / 0x100000000) % 0x10000);
  putWord(b, 103, Math.floor(sectors / 0x1000000000000) % 0x10000);
  putIntegrity(b);
}

export function identifyPacketDevice(s: DriveState, b: Uint8Array): void {
  b.fill(0, 0, 512);
  // ATAPI, CD-ROM (type 5), removable, DRQ within 50 us, 12-byte packets.
  putWord(b, 0, (2 << 14) | (5 << 8) | (1 << 7) | (2 << 5));
  putString(b, 10, s.serial, 20);
  putWord(b, 20, 3); // retired buffer type/size/ECC words, as QEMU
  putWord(b, 21, 512);
  putWord(b, 22, 4);
  putString(b, 23, s.firmware, 8);
  putString(b, 27, s.model, 40);
  putWord(b, 48, 1);
  putWord(b, 49, (1 << 9) | (1 << 8)); // LBA, DMA
  putWord(b, 53, 1 | 2 | 4);
  putWord(b, 62, 0x07 | activeBits(s.xferMode, 2));
  putWord(b, 63, 0x07 | activeBits(s.xferMode, 4));
  putWord(b, 64, 0x03);
  putWord(b, 65, 0xb4);
  putWord(b, 66, 0xb4);
  putWord(b, 67, 0x12c);
  putWord(b, 68, 0xb4);
  putWord(b, 71, 30); // PACKET to bus release (ns)
  putWord(b, 72, 30);
  putWord(b, 80, 0x1e); // ATA/ATAPI-1 to -4
  putWord(b, 82, (1 << 14) | (1 << 4)); // NOP, PACKET
  putWord(b, 83, 1 << 14);
  putWord(b, 84, 1 << 14);
  putWord(b, 85, (1 << 14) | (1 << 4));
  putWord(b, 87, 1 << 14);
  putWord(b, 88, 0x3f | activeBits(s.xferMode, 8));
  putWord(b, 93, 1 | (1 << 14) | 0x2000);
  putIntegrity(b);
}
