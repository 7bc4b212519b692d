/**
 * X11 keysyms (what RFB KeyEvent carries, RFC 6143 §7.5.4) to PC scan
 * code set 1, the bytes a guest reads at port 0x60 with the i8042's
 * translation on (IBM PS/2 Technical Reference, keyboard chapter, scan
 * code set 1 table). A US layout: the keysym names the symbol, so shifted
 * symbols map to the key that carries them (the client sends Shift as a
 * key of its own). Extended keys carry the 0xE0 prefix. Release = make
 * code | 0x80. Keysyms from X11 keysymdef.h.
 */

/** Set-1 make codes; values above 0xff are 0xE0-prefixed (0xE000 | code). */
const KEYS = new Map<number, number>();

const row = (chars: string, first: number): void => {
  for (let i = 0; i < chars.length; i++) KEYS.set(chars.charCodeAt(i), first + i);
};
// Unshifted and shifted symbols on the same physical keys.
row('1234567890-=', 0x02);
row('!@#$%^&*()_+', 0x02);
row('qwertyuiop[]', 0x10);
row('QWERTYUIOP{}', 0x10);
row("asdfghjkl;'`", 0x1e);
row('ASDFGHJKL:"~', 0x1e);
row('\\zxcvbnm,./', 0x2b);
row('|ZXCVBNM<>?', 0x2b);
KEYS.set(0x20, 0x39); // space

const SPECIAL: [number, number][] = [
  [0xff1b, 0x01], // Escape
  [0xff08, 0x0e], // BackSpace
  [0xff09, 0x0f], // Tab
  [0xfe20, 0x0f], // ISO_Left_Tab (Shift+Tab)
  [0xff0d, 0x1c], // Return
  [0xffe3, 0x1d], // Control_L
  [0xffe1, 0x2a], // Shift_L
  [0xffe2, 0x36], // Shift_R
  [0xffaa, 0x37], // KP_Multiply
  [0xffe9, 0x38], // Alt_L
  [0xffe5, 0x3a], // Caps_Lock
  [0xff7f, 0x45], // Num_Lock
  [0xff14, 0x46], // Scroll_Lock
  [0xffb7, 0x47], [0xffb8, 0x48], [0xffb9, 0x49], [0xffad, 0x4a], // KP 7 8 9 -
  [0xffb4, 0x4b], [0xffb5, 0x4c], [0xffb6, 0x4d], [0xffab, 0x4e], // KP 4 5 6 +
  [0xffb1, 0x4f], [0xffb2, 0x50], [0xffb3, 0x51], [0xffb0, 0x52], [0xffae, 0x53], // KP 1 2 3 0 .
  [0xff8d, 0xe01c], // KP_Enter
  [0xffe4, 0xe01d], // Control_R
  [0xffaf, 0xe035], // KP_Divide
  [0xffea, 0xe038], // Alt_R
  [0xfe03, 0xe038], // ISO_Level3_Shift (AltGr)
  [0xff50, 0xe047], // Home
  [0xff52, 0xe048], // Up
  [0xff55, 0xe049], // Prior (Page Up)
  [0xff51, 0xe04b], // Left
  [0xff53, 0xe04d], // Right
  [0xff57, 0xe04f], // End
  [0xff54, 0xe050], // Down
  [0xff56, 0xe051], // Next (Page Down)
  [0xff63, 0xe052], // Insert
  [0xffff, 0xe053], // Delete
  [0xffeb, 0xe05b], // Super_L
  [0xffec, 0xe05c], // Super_R
  [0xff67, 0xe05d], // Menu
];
for (const [sym, code] of SPECIAL) KEYS.set(sym, code);
// F1-F10 are 0x3B-0x44, F11/F12 0x57/0x58.
for (let i = 0; i < 10; i++) KEYS.set(0xffbe + i, 0x3b + i);
KEYS.set(0xffc8, 0x57);
KEYS.set(0xffc9, 0x58);

/**
 * The scan-code bytes for a key press or release, written into `out`;
 * returns how many (0: a keysym with no key on this layout).
 */
export function keysymToScancodes(keysym: number, down: boolean, out: Uint8Array): number {
  const code = KEYS.get(keysym >>> 0);
  if (code === undefined) return 0;
  const make = code & 0xff;
  const b = down ? make : make | 0x80;
  if (code > 0xff) {
    out[0] = 0xe0;
    out[1] = b;
    return 2;
  }
  out[0] = b;
  return 1;
}
