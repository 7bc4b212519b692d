/**
 * Pictures of the screen for QMP `screendump`: binary PPM (P6, what QEMU
 * writes by default) and PNG (`format: "png"`, encoded by pngjs). Input is
 * the renderer's 0x00RRGGBB framebuffer.
 */
import { PNG } from 'pngjs';

/** P6 header + RGB bytes. */
export function encodePpm(fb: Uint32Array, width: number, height: number): Buffer {
  const head = Buffer.from(`P6\n${width} ${height}\n255\n`, 'latin1');
  const out = Buffer.allocUnsafe(head.length + width * height * 3);
  head.copy(out, 0);
  let o = head.length;
  for (let i = 0; i < width * height; i++) {
    const v = fb[i];
    out[o++] = (v >>> 16) & 0xff;
    out[o++] = (v >>> 8) & 0xff;
    out[o++] = v & 0xff;
  }
  return out;
}

/** 8-bit RGB PNG, no alpha (QEMU's PNG screendump is RGB too). */
export function encodePng(fb: Uint32Array, width: number, height: number): Buffer {
  const rgb = Buffer.allocUnsafe(width * height * 3);
  for (let i = 0, o = 0; i < width * height; i++) {
    const v = fb[i];
    rgb[o++] = (v >>> 16) & 0xff;
    rgb[o++] = (v >>> 8) & 0xff;
    rgb[o++] = v & 0xff;
  }
  return PNG.sync.write({ width, height, data: rgb } as unknown as PNG, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
}
