/**
 * One renderer, many viewers: a screendump and every VNC client share the
 * framebuffer; refresh() brings it up to date once and hands the damage to
 * every subscriber (each keeps its own pending region), so one consumer
 * never swallows what another has not sent yet. Nothing runs unless a
 * consumer calls refresh().
 */
import type { VgaCore } from './vga.ts';
import { VgaRenderer, type Rect } from './render.ts';

export interface DisplaySink {
  /** Pixels in `r` changed (after a resize: the whole picture). */
  damage(r: Rect): void;
  /** The picture is now width x height. */
  resize(width: number, height: number): void;
}

export class DisplayHub {
  readonly renderer: VgaRenderer;
  private readonly sinks = new Set<DisplaySink>();
  private w = 0;
  private h = 0;

  constructor(core: VgaCore) {
    this.renderer = new VgaRenderer(core);
  }

  get fb(): Uint32Array {
    return this.renderer.fb;
  }
  get width(): number {
    return this.renderer.width;
  }
  get height(): number {
    return this.renderer.height;
  }
  get watched(): boolean {
    return this.sinks.size > 0;
  }

  refresh(): void {
    const r = this.renderer.update();
    const { width, height } = this.renderer;
    if (width !== this.w || height !== this.h) {
      this.w = width;
      this.h = height;
      for (const s of this.sinks) s.resize(width, height);
      return;
    }
    if (r) for (const s of this.sinks) s.damage(r);
  }

  subscribe(s: DisplaySink): () => void {
    this.sinks.add(s);
    return () => void this.sinks.delete(s);
  }
}
