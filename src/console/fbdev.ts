/**
 * A Linux fbdev framebuffer (/dev/fb0) as a HostFramebuffer, with no ioctl:
 * the geometry comes from sysfs (/sys/class/graphics/fb0/virtual_size
 * "W,H", bits_per_pixel, stride; Documentation/ABI/testing/sysfs-class-graphics
 * is silent on them, drivers/video/fbdev/core/fbsysfs.c prints them in
 * these forms) and pixels go in with pwrite at byte offsets (fbdev's write(2)
 * is a copy into the mapped video memory, fb_write in fbmem.c). A regular
 * file and a directory of the three files stand in for both in tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FramebufferGeometry, HostFramebuffer } from '../core/console.ts';
import { RateLimited, type Logger } from '../core/log.ts';

/** A framebuffer we cannot use: one operator line. */
export class FbdevError extends Error {}

/** Larger than any framebuffer xen-fbfront can have (its video memory is a few MiB). */
const MAX_DIM = 8192;

function readSysfs(dir: string, name: string): string {
  try {
    return fs.readFileSync(path.join(dir, name), 'utf8').trim();
  } catch (e) {
    throw new FbdevError(`framebuffer: cannot read ${path.join(dir, name)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The geometry sysfs reports; throws FbdevError for anything we cannot draw into. */
export function readFbGeometry(sysfsDir: string): FramebufferGeometry {
  const size = readSysfs(sysfsDir, 'virtual_size');
  const m = /^(\d+),(\d+)$/.exec(size);
  if (!m) throw new FbdevError(`framebuffer: ${sysfsDir}/virtual_size is "${size}", expected W,H`);
  const width = Number(m[1]);
  const height = Number(m[2]);
  const bpp = Number(readSysfs(sysfsDir, 'bits_per_pixel'));
  const stride = Number(readSysfs(sysfsDir, 'stride'));
  if (width < 1 || height < 1 || width > MAX_DIM || height > MAX_DIM) throw new FbdevError(`framebuffer: ${width}x${height} is not a size we draw into`);
  if (bpp !== 16 && bpp !== 32) throw new FbdevError(`framebuffer: ${bpp} bits per pixel: only 16 and 32 are drawn`);
  if (!Number.isInteger(stride) || stride < (width * bpp) / 8 || stride > MAX_DIM * 4) throw new FbdevError(`framebuffer: stride ${stride} does not fit ${width} pixels of ${bpp} bits`);
  return { width, height, stride, bpp };
}

class FbdevFramebuffer implements HostFramebuffer {
  private fd: number;
  private readonly bad: RateLimited;

  constructor(
    readonly geometry: FramebufferGeometry,
    fd: number,
    private readonly dev: string,
    log: Logger,
  ) {
    this.fd = fd;
    this.bad = new RateLimited(log);
  }

  write(data: Uint8Array, len: number, offset: number): boolean {
    if (this.fd < 0) return false;
    try {
      const n = fs.writeSync(this.fd, data, 0, len, offset);
      if (n === len) return true;
      this.bad.warn({ dev: this.dev, offset, len, wrote: n }, 'framebuffer: short write');
    } catch (e) {
      this.bad.warn({ dev: this.dev, offset, len, err: (e as NodeJS.ErrnoException).code ?? String(e) }, 'framebuffer: write failed');
    }
    return false;
  }

  close(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Open `dev` (e.g. /dev/fb0) with the geometry in `sysfsDir` (e.g. /sys/class/graphics/fb0). */
export function openFbdev(dev: string, sysfsDir: string, log: Logger): HostFramebuffer {
  const geometry = readFbGeometry(sysfsDir);
  let fd: number;
  try {
    fd = fs.openSync(dev, fs.constants.O_WRONLY);
  } catch (e) {
    throw new FbdevError(`framebuffer: cannot open ${dev}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return new FbdevFramebuffer(geometry, fd, dev, log);
}
