/**
 * The EDID the VGA function shows at the start of its MMIO BAR, where
 * SeaBIOS's vgabios and Linux bochs-drm read it to learn the preferred
 * mode. Our own 128-byte EDID 1.4 block (VESA E-EDID Standard Release A
 * rev. 2, §3): a preferred 1024x768@60 detailed timing (VESA DMT 0x10),
 * established 640x480/800x600/1024x768, a range-limits and a name
 * descriptor. QEMU generates a different block (its own vendor and name);
 * guests only need it valid.
 */

/** VESA DMT 1024x768@60 (DMT ID 10h): the mode SeaBIOS and Linux pick by default. */
const PREFERRED = { clock10kHz: 6500, hActive: 1024, hBlank: 320, hSyncOff: 24, hSyncW: 136, vActive: 768, vBlank: 38, vSyncOff: 3, vSyncW: 6 };
const NAME = 'stubdm VGA';

export function buildEdid(): Uint8Array {
  const e = new Uint8Array(128);
  e.set([0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00], 0); // §3.3 header
  // §3.4 manufacturer: three 5-bit letters ('A' = 1), big endian.
  const id = 'SDM';
  const m = ((id.charCodeAt(0) - 64) << 10) | ((id.charCodeAt(1) - 64) << 5) | (id.charCodeAt(2) - 64);
  e[8] = m >> 8;
  e[9] = m & 0xff;
  e[10] = 0x11; // product code 0x1111, like the PCI device id
  e[11] = 0x11;
  e[16] = 0; // week unknown
  e[17] = 2026 - 1990; // model year
  e[18] = 1; // EDID 1.4 (§3.5)
  e[19] = 4;
  e[20] = 0xa0; // §3.6.1 digital input, 8 bits per primary
  e[21] = 27; // §3.6.2 image size in cm (about 96 dpi at 1024x768)
  e[22] = 20;
  e[23] = 120; // gamma 2.2
  e[24] = 0x06; // §3.6.4 sRGB default colour space, preferred timing is native
  // §3.7 chromaticity: sRGB primaries and D65 white, 10-bit fractions.
  const c = [0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329].map((v) => Math.round(v * 1024));
  e[25] = ((c[0] & 3) << 6) | ((c[1] & 3) << 4) | ((c[2] & 3) << 2) | (c[3] & 3);
  e[26] = ((c[4] & 3) << 6) | ((c[5] & 3) << 4) | ((c[6] & 3) << 2) | (c[7] & 3);
  for (let i = 0; i < 8; i++) e[27 + i] = c[i] >> 2;
  e[35] = 0x21; // §3.8 established timings I: 640x480@60 (bit 5), 800x600@60 (bit 0)
  e[36] = 0x08; // established timings II: 1024x768@60 (bit 3)
  e[37] = 0x00;
  for (let i = 38; i < 54; i += 2) e.set([0x01, 0x01], i); // §3.9 standard timings unused
  detailedTiming(e, 54);
  // §3.10.3.3 range limits: 50-125 Hz vertical, 30-160 kHz horizontal, 250 MHz, no formula.
  e.set([0, 0, 0, 0xfd, 0, 50, 125, 30, 160, 25, 0x01, 0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20], 72);
  // §3.10.3.4 display product name.
  e.set([0, 0, 0, 0xfc, 0], 90);
  for (let i = 0; i < 13; i++) e[95 + i] = i < NAME.length ? NAME.charCodeAt(i) : i === NAME.length ? 0x0a : 0x20;
  e.set([0, 0, 0, 0x10, 0], 108); // §3.10.3.11 dummy descriptor
  e[126] = 0; // no extension blocks
  let sum = 0;
  for (let i = 0; i < 127; i++) sum += e[i];
  e[127] = (256 - (sum & 0xff)) & 0xff; // §3.11 the 128 bytes sum to 0 mod 256
  return e;
}

/** §3.10.2 detailed timing descriptor of PREFERRED at e[at..at+18). */
function detailedTiming(e: Uint8Array, at: number): void {
  const t = PREFERRED;
  const mmW = 270;
  const mmH = 200;
  e[at] = t.clock10kHz & 0xff;
  e[at + 1] = t.clock10kHz >> 8;
  e[at + 2] = t.hActive & 0xff;
  e[at + 3] = t.hBlank & 0xff;
  e[at + 4] = ((t.hActive >> 8) << 4) | (t.hBlank >> 8);
  e[at + 5] = t.vActive & 0xff;
  e[at + 6] = t.vBlank & 0xff;
  e[at + 7] = ((t.vActive >> 8) << 4) | (t.vBlank >> 8);
  e[at + 8] = t.hSyncOff & 0xff;
  e[at + 9] = t.hSyncW & 0xff;
  e[at + 10] = ((t.vSyncOff & 0xf) << 4) | (t.vSyncW & 0xf);
  e[at + 11] = ((t.hSyncOff >> 8) << 6) | ((t.hSyncW >> 8) << 4) | ((t.vSyncOff >> 4) << 2) | (t.vSyncW >> 4);
  e[at + 12] = mmW & 0xff;
  e[at + 13] = mmH & 0xff;
  e[at + 14] = ((mmW >> 8) << 4) | (mmH >> 8);
  e[at + 15] = 0;
  e[at + 16] = 0;
  e[at + 17] = 0x18; // digital separate sync, both polarities negative (DMT 1024x768@60)
}
