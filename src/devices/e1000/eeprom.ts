/**
 * The 82540EM's serial EEPROM (a 64-word 93C46, Microwire) and the two ways
 * a driver reads it: bit-banging EECD (SDM 5.3, 13.4.3; what Linux
 * e1000_read_eeprom does on 82540) and the EERD word register (13.4.4;
 * what iPXE intel.c uses).
 *
 * Contents: SDM 5.6 tables 5-2/5-3. Words 0-2 are the MAC, 0x0B and 0x0D the
 * device ID, 0x0C/0x0E the vendor ID and 0x3F makes words 0x00-0x3F sum to
 * 0xBABA. The other words use the values QEMU's e1000 ships
 * (hw/net/e1000.c e1000_eeprom_template), so guests see the same
 * configuration bits (init control words, LED setup, PHY config) as on qemu-xen.
 *
 * Microwire (93C46 in 64 x 16 mode): with CS high, each SK rising edge shifts
 * DI in. After 9 bits (start bit + 2 opcode bits, 6 address bits) a READ
 * (opcode 110b) starts shifting the addressed word out on DO, MSB first, one
 * bit per SK falling edge; reading on past bit 0 continues into the next
 * word (sequential read). CS low ends the command; CS rising starts a new
 * one. Write/erase opcodes are accepted and ignored: the EEPROM is read-only
 * here (the MAC comes from the machine's configuration).
 */
import { EECD_CS, EECD_DI, EECD_DO, EECD_GNT, EECD_LATCHED, EECD_PRES, EECD_SK } from './regs.ts';

export const EEPROM_WORDS = 64;
export const EEPROM_CHECKSUM_WORD = 0x3f;
export const EEPROM_SUM = 0xbaba;
/** 3-bit opcode incl. start bit: 1 10 = READ. */
const MW_READ = 0b110;
const MW_ADDR_BITS = 6;
const MW_CMD_BITS = 3 + MW_ADDR_BITS;

const TEMPLATE: readonly number[] = [
  0x0000, 0x0000, 0x0000, 0x0000, 0xffff, 0x0000, 0x0000, 0x0000,
  0x3000, 0x1000, 0x6403, 0x0000, 0x8086, 0x0000, 0x8086, 0x3040,
  0x0008, 0x2000, 0x7e14, 0x0048, 0x1000, 0x00d8, 0x0000, 0x2700,
  0x6cc9, 0x3150, 0x0722, 0x040b, 0x0984, 0x0000, 0xc000, 0x0706,
  0x1008, 0x0000, 0x0f04, 0x7fff, 0x4d01, 0xffff, 0xffff, 0xffff,
  0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
  0x0100, 0x4000, 0x121c, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
  0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0x0000,
];

/** The EEPROM image for `mac` and PCI device `deviceId`, checksum included. */
export function buildEeprom(mac: Uint8Array, deviceId: number): Uint16Array {
  const w = Uint16Array.from(TEMPLATE);
  for (let i = 0; i < 3; i++) w[i] = mac[2 * i] | (mac[2 * i + 1] << 8);
  w[0x0b] = w[0x0d] = deviceId;
  let sum = 0;
  for (let i = 0; i < EEPROM_CHECKSUM_WORD; i++) sum += w[i];
  w[EEPROM_CHECKSUM_WORD] = (EEPROM_SUM - sum) & 0xffff;
  return w;
}

/** Microwire interface state (plain data: it is part of the snapshot). */
export interface MicrowireState {
  /** Bits shifted in since CS rose (command + address). */
  valIn: number;
  bitsIn: number;
  /** Bit position being shifted out (word * 16 + bit from MSB), -1 before the first. */
  bitOut: number;
  reading: boolean;
  /** EECD bits the guest drives, as last written. */
  latched: number;
}

export function freshMicrowire(): MicrowireState {
  return { valIn: 0, bitsIn: 0, bitOut: 0, reading: false, latched: 0 };
}

/** EECD read: present and granted (as QEMU: software owns the EEPROM at once), the latched bits, DO. */
export function eecdRead(s: MicrowireState, words: Uint16Array): number {
  let v = EECD_PRES | EECD_GNT | s.latched;
  // DO idles high; while reading it carries the current bit.
  if (!s.reading || (words[(s.bitOut >> 4) & (EEPROM_WORDS - 1)] >> (15 - (s.bitOut & 15))) & 1) v |= EECD_DO;
  return v >>> 0;
}

/** EECD write: latch the guest's pins and clock the Microwire state machine on SK edges. */
export function eecdWrite(s: MicrowireState, v: number): void {
  const old = s.latched;
  s.latched = v & EECD_LATCHED;
  if (!(v & EECD_CS)) return; // deselected: the chip ignores SK
  if (!(old & EECD_CS)) {
    // CS rising edge: a new command starts
    s.valIn = 0;
    s.bitsIn = 0;
    s.bitOut = 0;
    s.reading = false;
  }
  if (!((v ^ old) & EECD_SK)) return; // no clock edge
  if (!(v & EECD_SK)) {
    // falling edge: the next output bit appears on DO
    if (s.reading) s.bitOut = (s.bitOut + 1) & 0x3ff;
    return;
  }
  if (s.bitsIn >= MW_CMD_BITS) return; // command complete: further input bits (write data) ignored
  s.valIn = ((s.valIn << 1) | (v & EECD_DI ? 1 : 0)) & 0x1ff;
  if (++s.bitsIn === MW_CMD_BITS && s.valIn >>> MW_ADDR_BITS === MW_READ) {
    s.reading = true;
    // the following falling edge moves to bit 15 of the addressed word
    s.bitOut = (((s.valIn & (EEPROM_WORDS - 1)) << 4) - 1) & 0x3ff;
  }
}

/** EERD read (13.4.4): with START set, the addressed word and DONE; past the end DONE without data (as QEMU). */
export function eerdRead(eerd: number, words: Uint16Array): number {
  if (!(eerd & 1)) return eerd;
  const r = eerd & ~1 & 0xffff;
  const addr = r >>> 8;
  if (addr >= EEPROM_WORDS) return (r | 0x10) >>> 0;
  return ((words[addr] << 16) | 0x10 | r) >>> 0;
}
