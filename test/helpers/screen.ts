/**
 * Pictures of a guest's screen for the e2e `vga` scenario (test/e2e/dom0/vga-tool.ts):
 * reading the binary PPM that QMP `screendump` writes (QEMU's and ours), comparing
 * two of them pixel by pixel, and checking the framebuffer pattern the guest wrote.
 * Hand-written: a P6 header is three numbers (netpbm's ppm(5) page), and no npm
 * package we already depend on reads PPM; pngjs (a dependency) writes the PNG copies.
 */

export interface Picture {
  width: number;
  height: number;
  /** width x height RGB triplets, row by row. */
  rgb: Uint8Array;
}

export class PpmError extends Error {
  override name = 'PpmError';
}

// Header fields larger than this are not a screen (QEMU's VBE limit is 16000 x 12000).
const MAX_SIDE = 16384;

/**
 * The P6 picture at the start of `buf`, and the bytes it took (a stub domain's
 * save console carries several screendumps back to back). Throws PpmError for
 * anything but an 8-bit P6; returns null when `buf` is a correct but unfinished
 * prefix (the writer is still going).
 */
export function parsePpm(buf: Uint8Array): { pic: Picture; bytes: number } | null {
  // ppm(5): "P6", whitespace, width, whitespace, height, whitespace, maxval, one whitespace byte, data.
  // Comments (#...) are allowed between fields; neither QEMU nor stubdm writes them.
  let i = 0;
  const fields: number[] = [];
  if (buf.length < 2) return null;
  if (buf[0] !== 0x50 || buf[1] !== 0x36) throw new PpmError('not a binary PPM (no P6 magic)');
  i = 2;
  const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c;
  while (fields.length < 3) {
    // Skip whitespace and comments; a header is short, so the scan is bounded by the buffer.
    for (;;) {
      if (i >= buf.length) return null;
      if (isSpace(buf[i])) i++;
      else if (buf[i] === 0x23) {
        while (i < buf.length && buf[i] !== 0x0a) i++;
      } else break;
    }
    let v = 0;
    let digits = 0;
    while (i < buf.length && buf[i] >= 0x30 && buf[i] <= 0x39) {
      v = v * 10 + (buf[i] - 0x30);
      if (++digits > 6) throw new PpmError('PPM header number too long');
      i++;
    }
    if (i >= buf.length) return null;
    if (digits === 0 || !isSpace(buf[i])) throw new PpmError(`bad PPM header byte 0x${buf[i].toString(16)} at ${i}`);
    fields.push(v);
  }
  const [width, height, maxval] = fields;
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) throw new PpmError(`PPM size ${width}x${height} is not a screen`);
  if (maxval !== 255) throw new PpmError(`PPM maxval ${maxval} (want 255)`);
  const start = i + 1; // exactly one whitespace byte after maxval
  const n = width * height * 3;
  if (buf.length < start + n) return null;
  return { pic: { width, height, rgb: buf.subarray(start, start + n) }, bytes: start + n };
}

export interface Comparison {
  /** Pixels equal in both, in percent of all pixels (0 when the sizes differ). */
  matchPercent: number;
  diffPixels: number;
  /** Character cells (cellW x cellH) with at least one differing pixel. */
  diffCells: number;
  /** Up to 8 differing cells as "col,row". */
  cells: string[];
}

/**
 * a against b pixel by pixel. Differences are also counted per character cell
 * (9 x 16 in the 720x400 text mode) because a text screen differs by cells:
 * the cursor (QEMU blinks it, stubdm draws it steadily: docs/vga.md §5) or a
 * wrong glyph.
 */
export function comparePictures(a: Picture, b: Picture, cellW = 9, cellH = 16): Comparison {
  if (a.width !== b.width || a.height !== b.height) {
    return { matchPercent: 0, diffPixels: a.width * a.height, diffCells: -1, cells: [] };
  }
  const cols = Math.ceil(a.width / cellW);
  const bad = new Set<number>();
  let diff = 0;
  for (let y = 0; y < a.height; y++) {
    for (let x = 0; x < a.width; x++) {
      const o = (y * a.width + x) * 3;
      if (a.rgb[o] !== b.rgb[o] || a.rgb[o + 1] !== b.rgb[o + 1] || a.rgb[o + 2] !== b.rgb[o + 2]) {
        diff++;
        bad.add(Math.floor(y / cellH) * cols + Math.floor(x / cellW));
      }
    }
  }
  const total = a.width * a.height;
  const cells = [...bad].sort((p, q) => p - q).slice(0, 8).map((c) => `${c % cols},${Math.floor(c / cols)}`);
  return { matchPercent: (100 * (total - diff)) / total, diffPixels: diff, diffCells: bad.size, cells };
}

/** The guest's framebuffer: `text` repeated from byte 0 over `stride` x height bytes, 32-bit B,G,R,X pixels. */
export interface FbPattern {
  width: number;
  height: number;
  stride: number;
  text: Uint8Array;
}

/** The colour the pattern gives pixel (x, y), as [r, g, b]. */
export function patternPixel(p: FbPattern, x: number, y: number): [number, number, number] {
  const o = (y * p.stride + x * 4) % p.text.length;
  const t = p.text;
  // Little-endian XRGB8888 (what bochs-drm gives fbdev): blue, green, red, unused.
  return [t[(o + 2) % t.length], t[(o + 1) % t.length], t[o]];
}

/** Pixels of `pic` that are not the pattern: count and the first one as "x,y". */
export function checkPattern(pic: Picture, p: FbPattern): { bad: number; first: string } {
  if (pic.width !== p.width || pic.height !== p.height) return { bad: p.width * p.height, first: `size ${pic.width}x${pic.height}` };
  let bad = 0;
  let first = '';
  for (let y = 0; y < p.height; y++) {
    for (let x = 0; x < p.width; x++) {
      const [r, g, b] = patternPixel(p, x, y);
      const o = (y * p.width + x) * 3;
      if (pic.rgb[o] !== r || pic.rgb[o + 1] !== g || pic.rgb[o + 2] !== b) {
        if (bad === 0) first = `${x},${y}`;
        bad++;
      }
    }
  }
  return { bad, first };
}
