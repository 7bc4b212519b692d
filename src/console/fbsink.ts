/**
 * The guest's screen drawn into a host framebuffer (the stub domain's
 * /dev/fb0, which dom0's QEMU shows over VNC): a DisplayHub viewer that, on
 * each tick, brings the picture up to date and writes only the lines that
 * changed, converted to the framebuffer's pixel format, one pwrite per run
 * of lines. Nothing is written when nothing changed.
 *
 * When: the stub domain cannot know whether anyone watches dom0's VNC, so
 * it refreshes all the time, on an adaptive period (AdaptiveRefresh:
 * 30 ms while the picture changes, doubling up to 3 s while it is still),
 * brought back to 30 ms by the guest's first VRAM store and by input from
 * the vkb (index.ts). An idle tick reads no VRAM and allocates nothing.
 * Doubling, not QEMU's +50 ms: each tick wakes the stub domain's only
 * vCPU (under TCG a wake-up is milliseconds), and QEMU's ramp takes about
 * 60 ticks and 90 s to reach 3 s after every change; the first VRAM store
 * after a still spell wakes us at once either way (DisplaySink.wake).
 *
 * Geometry: xen-fbfront's framebuffer has a fixed size (800x600x32 unless
 * the stub kernel is told otherwise) and changing it needs the
 * FBIOPUT_VSCREENINFO ioctl, which Node cannot issue; so the guest's
 * picture sits at the top left, cropped when it is larger and on black when
 * it is smaller.
 */
import type { FramebufferGeometry, HostFramebuffer } from '../core/console.ts';
import type { Logger } from '../core/log.ts';
import { AdaptiveRefresh, type DisplayHub, type DisplaySink, type Rect, type RefreshTimers } from '../devices/vga/index.ts';

/** Bytes converted per pwrite at most (whole lines; at least one line). */
const CHUNK_BYTES = 256 * 1024;

export interface FbConsoleOptions {
  /** No refresh timer: the caller calls tick() (tests). */
  manual?: boolean;
  /** The refresh timer's clock (tests pass a virtual one; default Node's). */
  timers?: RefreshTimers;
  log: Logger;
}

export class FramebufferConsole implements DisplaySink {
  private dirty: Rect | null = null;
  private cleared = false;
  private readonly refresh: AdaptiveRefresh;
  private unsubscribe: (() => void) | null = null;
  private readonly g: FramebufferGeometry;
  /** Whole lines of the framebuffer, converted here before each write (allocated once). */
  private readonly chunk: Uint8Array;
  private readonly chunkLines: number;
  private readonly px32: Uint32Array | null;
  private readonly px16: Uint16Array | null;
  /** Writes made and bytes written (tests and the stats line). */
  readonly stats = { writes: 0, bytes: 0, failed: 0 };

  constructor(
    private readonly display: DisplayHub,
    private readonly fb: HostFramebuffer,
    private readonly opts: FbConsoleOptions,
  ) {
    this.refresh = new AdaptiveRefresh(() => this.tick(), opts.timers, 'double');
    this.g = fb.geometry;
    this.chunkLines = Math.max(1, Math.min(this.g.height, Math.floor(CHUNK_BYTES / this.g.stride)));
    const buf = new ArrayBuffer(this.chunkLines * this.g.stride);
    this.chunk = new Uint8Array(buf);
    // Typed views index pixels directly when the stride keeps lines aligned to them.
    this.px32 = this.g.bpp === 32 && this.g.stride % 4 === 0 ? new Uint32Array(buf) : null;
    this.px16 = this.g.bpp === 16 && this.g.stride % 2 === 0 ? new Uint16Array(buf) : null;
  }

  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.display.subscribe(this);
    this.cleared = false;
    if (!this.opts.manual) this.refresh.start();
    this.opts.log.info({ ...this.g }, 'drawing the guest screen into the framebuffer');
  }

  stop(): void {
    this.refresh.stop();
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  damage(r: Rect): void {
    this.dirty = this.dirty ? union(this.dirty, r) : { ...r };
  }

  resize(w: number, h: number): void {
    // The old picture may be larger: black everything once, then draw the new one whole.
    this.cleared = false;
    this.dirty = { x: 0, y: 0, w, h };
  }

  wake(): void {
    this.refresh.poke();
  }

  /** Input reached the guest from the vkb: it is about to answer on screen. */
  poke(): void {
    this.refresh.poke();
  }

  /** Draw what changed. True: something was written. */
  tick(): boolean {
    this.display.refresh();
    if (!this.cleared) {
      this.cleared = true;
      this.dirty = { x: 0, y: 0, w: this.g.width, h: this.g.height };
    }
    const d = this.dirty;
    if (d === null) return false;
    this.dirty = null;
    // Whole framebuffer lines from the first to the last changed one (VGA damage is whole lines anyway).
    const y0 = Math.max(0, d.y);
    const y1 = Math.min(this.g.height, d.y + d.h);
    for (let y = y0; y < y1; y += this.chunkLines) this.writeLines(y, Math.min(this.chunkLines, y1 - y));
    return y1 > y0;
  }

  /** Convert `n` framebuffer lines from `y` into the chunk and write them with one pwrite. */
  private writeLines(y: number, n: number): void {
    const { stride, bpp } = this.g;
    const src = this.display.fb;
    const gw = this.display.width;
    const gh = this.display.height;
    const w = Math.min(this.g.width, gw);
    const len = n * stride;
    this.chunk.fill(0, 0, len);
    for (let i = 0; i < n; i++) {
      const sy = y + i;
      if (sy >= gh) break;
      const s = sy * gw;
      const line = i * stride;
      if (this.px32) {
        // XRGB8888 little-endian: the renderer's 0x00RRGGBB as it is.
        this.px32.set(src.subarray(s, s + w), line >> 2);
      } else if (this.px16) {
        const o = line >> 1;
        for (let x = 0; x < w; x++) {
          const v = src[s + x];
          this.px16[o + x] = ((v >>> 8) & 0xf800) | ((v >>> 5) & 0x07e0) | ((v >>> 3) & 0x001f);
        }
      } else {
        const bytes = bpp >> 3;
        for (let x = 0; x < w; x++) {
          const v = src[s + x];
          const o = line + x * bytes;
          if (bytes === 4) {
            this.chunk[o] = v & 0xff;
            this.chunk[o + 1] = (v >>> 8) & 0xff;
            this.chunk[o + 2] = (v >>> 16) & 0xff;
            this.chunk[o + 3] = 0;
          } else {
            const p = ((v >>> 8) & 0xf800) | ((v >>> 5) & 0x07e0) | ((v >>> 3) & 0x001f);
            this.chunk[o] = p & 0xff;
            this.chunk[o + 1] = p >>> 8;
          }
        }
      }
    }
    if (this.fb.write(this.chunk, len, y * stride)) {
      this.stats.writes++;
      this.stats.bytes += len;
    } else {
      this.stats.failed++;
    }
  }
}

function union(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, w: Math.max(a.x + a.w, b.x + b.w) - x, h: Math.max(a.y + a.h, b.y + b.h) - y };
}
