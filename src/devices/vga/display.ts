/**
 * One renderer, many viewers: a screendump and every VNC client share the
 * framebuffer; refresh() brings it up to date once and hands the damage to
 * every subscriber (each keeps its own pending region), so one consumer
 * never swallows what another has not sent yet. Nothing runs unless a
 * consumer calls refresh().
 *
 * Viewers refresh on their own timers (AdaptiveRefresh, QEMU's scheme):
 * often while the picture changes, rarely while it is still. The first VRAM
 * store after a drawn picture wakes them (DisplaySink.wake), so a guest that
 * starts drawing after a quiet spell is not kept waiting for a long timer.
 */
import type { VgaCore } from './vga.ts';
import { VgaRenderer, type Rect } from './render.ts';

export interface DisplaySink {
  /** Pixels in `r` changed (after a resize: the whole picture). */
  damage(r: Rect): void;
  /** The picture is now width x height. */
  resize(width: number, height: number): void;
  /** The guest stored into VRAM after a quiet spell: refresh soon (AdaptiveRefresh.poke). */
  wake?(): void;
}

export class DisplayHub {
  readonly renderer: VgaRenderer;
  private readonly sinks = new Set<DisplaySink>();
  private w = 0;
  private h = 0;

  constructor(core: VgaCore) {
    this.renderer = new VgaRenderer(core);
    core.onFirstDirty = () => {
      for (const s of this.sinks) s.wake?.();
    };
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

  /** Bring the picture up to date and tell every viewer what changed. False: nothing did. */
  refresh(): boolean {
    const r = this.renderer.update();
    const { width, height } = this.renderer;
    if (width !== this.w || height !== this.h) {
      this.w = width;
      this.h = height;
      for (const s of this.sinks) s.resize(width, height);
      return true;
    }
    if (r === null) return false;
    for (const s of this.sinks) s.damage(r);
    return true;
  }

  subscribe(s: DisplaySink): () => void {
    this.sinks.add(s);
    return () => void this.sinks.delete(s);
  }
}

/**
 * QEMU's display refresh period (include/ui/console.h GUI_REFRESH_INTERVAL_DEFAULT
 * and _IDLE; ui/vnc.c vnc_refresh with VNC_REFRESH_INTERVAL_BASE/_INC/_MAX):
 * 30 ms while something is sent, each refresh that sends nothing waits 50 ms
 * longer, up to 3 s; one that sends something halves the wait (not below 30 ms).
 */
export const REFRESH_BASE_MS = 30;
export const REFRESH_INC_MS = 50;
export const REFRESH_MAX_MS = 3000;

/** What AdaptiveRefresh needs of a timer (Node's Timeout; tests pass a virtual clock's). */
export interface RefreshTimer {
  /** Re-arm with the same delay from now, also after it fired (Node's timeout.refresh()). */
  refresh(): unknown;
  unref?(): unknown;
}
export interface RefreshTimers {
  set(fn: () => void, ms: number): RefreshTimer;
  clear(t: RefreshTimer): void;
}
const NODE_TIMERS: RefreshTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
};

/**
 * A viewer's refresh timer on QEMU's adaptive schedule (above), plus one
 * thing QEMU does not do: poke() (viewer input, a VRAM store after a still
 * spell) brings the wait back to 30 ms at once, so a screen that starts
 * changing after a quiet minute reaches the viewer as soon as with a fixed
 * 30 ms timer. An idle viewer thus costs one wake-up every 3 s.
 *
 * Timers: the adaptive one is re-armed with refresh() while its period
 * stays the same (at 30 ms busy, at 3 s idle) and made anew only when it
 * changes; poke() re-arms a second, 30 ms timer made once, so a poke from
 * the ioreq path allocates nothing.
 */
export class AdaptiveRefresh {
  /** The wait before the next refresh (ms). */
  interval = REFRESH_BASE_MS;
  private slow: RefreshTimer | null = null;
  private slowMs = 0;
  private fast: RefreshTimer | null = null;

  /**
   * `tick` refreshes and says whether it sent anything (QEMU: has_dirty && rects).
   * `backoff`: 'linear' is QEMU's +50 ms per still refresh (about 60 refreshes
   * and 90 s from 30 ms to 3 s); 'double' doubles the wait instead (8
   * refreshes, 4 s), for a viewer that is woken by every VRAM store anyway
   * (wake) and whose every refresh costs a domain's vCPU (the stub domain's
   * framebuffer console).
   */
  constructor(
    private readonly tick: () => boolean,
    private readonly timers: RefreshTimers = NODE_TIMERS,
    private readonly backoff: 'linear' | 'double' = 'linear',
  ) {}

  get running(): boolean {
    return this.fast !== null;
  }

  /** The first refresh in 30 ms. */
  start(): void {
    if (this.fast !== null) return;
    this.interval = REFRESH_BASE_MS;
    this.fast = this.timers.set(this.fire, REFRESH_BASE_MS);
    this.fast.unref?.();
  }

  stop(): void {
    if (this.fast !== null) this.timers.clear(this.fast);
    if (this.slow !== null) this.timers.clear(this.slow);
    this.fast = this.slow = null;
  }

  /** Something is about to change: refresh within 30 ms and stay fast. */
  poke(): void {
    if (this.fast === null || this.interval === REFRESH_BASE_MS) return; // the next refresh is that close already
    this.interval = REFRESH_BASE_MS;
    this.fast.refresh(); // fires once more in 30 ms (also after it fired before)
  }

  private readonly fire = (): void => {
    if (this.fast === null) return;
    const sent = this.tick();
    this.interval = sent
      ? Math.max(REFRESH_BASE_MS, this.interval >>> 1)
      : Math.min(REFRESH_MAX_MS, this.backoff === 'double' ? this.interval * 2 : this.interval + REFRESH_INC_MS);
    // The adaptive timer is re-armed from now either way (a poke's refresh replaces the slow one).
    if (this.slow !== null && this.slowMs === this.interval) {
      this.slow.refresh();
      return;
    }
    if (this.slow !== null) this.timers.clear(this.slow);
    this.slow = this.timers.set(this.fire, this.interval);
    this.slow.unref?.();
    this.slowMs = this.interval;
  };
}
