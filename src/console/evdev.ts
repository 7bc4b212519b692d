/**
 * Linux evdev input (/dev/input/event*: xen-kbdfront's "Xen Virtual
 * Keyboard" and "Xen Virtual Pointer" in a stub domain) into the guest's
 * PS/2 keyboard and mouse.
 *
 * The record is struct input_event (include/uapi/linux/input.h): on x86_64
 * a struct timeval (two 64-bit words), then __u16 type, __u16 code, __s32
 * value: 24 bytes, little-endian. Event types and codes are from
 * include/uapi/linux/input-event-codes.h. A device's events up to
 * SYN_REPORT belong together: the pointer's are gathered and sent to the
 * mouse as one move.
 *
 * Keys: a Linux keycode is the PC's set-1 make code for keys 1-88 (the
 * codes were laid out that way), the rest are the 0xE0-prefixed keys listed
 * below; a release is the make code | 0x80, an autorepeat (value 2) the make
 * code again (what a PS/2 keyboard's typematic repeat sends).
 *
 * Pointer: xen-kbdfront's pointer is absolute when the backend offers it
 * (dom0's QEMU does: coordinates in framebuffer pixels), relative
 * otherwise. The guest has only a relative PS/2 mouse, so an absolute
 * position becomes the difference from the last one (the framebuffer
 * shows the guest 1:1 at the top left: a framebuffer pixel is a guest
 * pixel). The guest's own pointer acceleration applies, as with any PS/2
 * mouse behind VNC.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { HostInputSink } from '../core/console.ts';
import { RateLimited, type Logger } from '../core/log.ts';

export const INPUT_EVENT_SIZE = 24;
const EV_SYN = 0x00;
const EV_KEY = 0x01;
const EV_REL = 0x02;
const EV_ABS = 0x03;
const SYN_REPORT = 0;
const SYN_DROPPED = 3;
const REL_X = 0x00;
const REL_Y = 0x01;
const REL_WHEEL = 0x08;
const ABS_X = 0x00;
const ABS_Y = 0x01;
const KEY_PAUSE = 119;
/** Mouse buttons BTN_LEFT..BTN_EXTRA (0x110-0x114) -> PS/2 packet order (src/devices/i8042 BTN_*). */
const BUTTONS: Readonly<Record<number, number>> = { 0x110: 0x01, 0x111: 0x02, 0x112: 0x04, 0x113: 0x08, 0x114: 0x10 };

/** Keycodes above 88 that a PC keyboard has: keycode -> set-1 code (0xE0xx: extended). */
const EXTENDED: Readonly<Record<number, number>> = {
  89: 0x73, // KEY_RO
  96: 0xe01c, // KEY_KPENTER
  97: 0xe01d, // KEY_RIGHTCTRL
  98: 0xe035, // KEY_KPSLASH
  99: 0xe037, // KEY_SYSRQ (Print Screen's own code)
  100: 0xe038, // KEY_RIGHTALT
  102: 0xe047, // KEY_HOME
  103: 0xe048, // KEY_UP
  104: 0xe049, // KEY_PAGEUP
  105: 0xe04b, // KEY_LEFT
  106: 0xe04d, // KEY_RIGHT
  107: 0xe04f, // KEY_END
  108: 0xe050, // KEY_DOWN
  109: 0xe051, // KEY_PAGEDOWN
  110: 0xe052, // KEY_INSERT
  111: 0xe053, // KEY_DELETE
  113: 0xe020, // KEY_MUTE
  114: 0xe02e, // KEY_VOLUMEDOWN
  115: 0xe030, // KEY_VOLUMEUP
  116: 0xe05e, // KEY_POWER
  117: 0x59, // KEY_KPEQUAL
  124: 0x7d, // KEY_YEN
  125: 0xe05b, // KEY_LEFTMETA
  126: 0xe05c, // KEY_RIGHTMETA
  127: 0xe05d, // KEY_COMPOSE (Menu)
};
/** Pause sends this on press and nothing on release (IBM set-1 table). */
const PAUSE_BYTES = [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5];

/**
 * Set-1 bytes for a Linux keycode going down (value 1), repeating (2) or
 * up (0), written into `out` (at least 6 bytes); returns how many (0: not a
 * key a PC keyboard has).
 */
export function keycodeToScancodes(code: number, value: number, out: Uint8Array): number {
  const down = value !== 0;
  if (code === KEY_PAUSE) {
    if (!down) return 0;
    out.set(PAUSE_BYTES);
    return PAUSE_BYTES.length;
  }
  // 1-88 are the make codes themselves, except 84 (unassigned) and 85 (KEY_ZENKAKUHANKAKU, no set-1 code).
  const make = code >= 1 && code <= 88 && code !== 84 && code !== 85 ? code : (EXTENDED[code] ?? 0);
  if (make === 0) return 0;
  const b = (make & 0xff) | (down ? 0 : 0x80);
  if (make > 0xff) {
    out[0] = 0xe0;
    out[1] = b;
    return 2;
  }
  out[0] = b;
  return 1;
}

/**
 * One device's event stream -> keys and pointer moves. Feed it bytes in
 * any split; it keeps a partial record for the next call.
 */
export class EvdevDecoder {
  private readonly partial = new Uint8Array(INPUT_EVENT_SIZE);
  private partialLen = 0;
  private readonly keyBytes = new Uint8Array(8);
  private dx = 0;
  private dy = 0;
  private dz = 0;
  private buttons = 0;
  private moved = false;
  private absX = -1;
  private absY = -1;
  /** Set after SYN_DROPPED: the kernel lost events; skip to the next SYN_REPORT (evdev's documented recovery). */
  private dropping = false;

  constructor(private readonly sink: HostInputSink) {}

  feed(buf: Uint8Array, len: number): void {
    const dv = new DataView(buf.buffer, buf.byteOffset, len);
    let at = 0;
    if (this.partialLen > 0) {
      const need = INPUT_EVENT_SIZE - this.partialLen;
      const take = Math.min(need, len);
      this.partial.set(buf.subarray(0, take), this.partialLen);
      this.partialLen += take;
      at = take;
      if (this.partialLen < INPUT_EVENT_SIZE) return;
      this.partialLen = 0;
      const pv = new DataView(this.partial.buffer);
      this.event(pv.getUint16(16, true), pv.getUint16(18, true), pv.getInt32(20, true));
    }
    for (; at + INPUT_EVENT_SIZE <= len; at += INPUT_EVENT_SIZE) this.event(dv.getUint16(at + 16, true), dv.getUint16(at + 18, true), dv.getInt32(at + 20, true));
    if (at < len) {
      this.partial.set(buf.subarray(at, len), 0);
      this.partialLen = len - at;
    }
  }

  private event(type: number, code: number, value: number): void {
    if (type === EV_SYN) {
      if (code === SYN_DROPPED) {
        this.dropping = true;
        this.dx = this.dy = this.dz = 0;
        this.moved = false;
      } else if (code === SYN_REPORT) {
        if (!this.dropping && this.moved) this.sink.pointer(this.dx, this.dy, this.dz, this.buttons);
        this.dropping = false;
        this.dx = this.dy = this.dz = 0;
        this.moved = false;
      }
      return;
    }
    if (this.dropping) return;
    if (type === EV_KEY) {
      const bit = BUTTONS[code];
      if (bit !== undefined) {
        this.buttons = value !== 0 ? this.buttons | bit : this.buttons & ~bit;
        this.moved = true;
        return;
      }
      const n = keycodeToScancodes(code, value, this.keyBytes);
      if (n > 0) this.sink.key(this.keyBytes.subarray(0, n));
    } else if (type === EV_REL) {
      if (code === REL_X) this.dx += value;
      else if (code === REL_Y) this.dy += value;
      else if (code === REL_WHEEL) this.dz -= value; // evdev: positive = away from the user; PS/2: towards
      else return;
      this.moved = true;
    } else if (type === EV_ABS) {
      if (code === ABS_X) {
        if (this.absX >= 0) this.dx += value - this.absX;
        this.absX = value;
      } else if (code === ABS_Y) {
        if (this.absY >= 0) this.dy += value - this.absY;
        this.absY = value;
      } else return;
      this.moved = true;
    }
  }
}

/** What EvdevInput needs from the fdwatch addon (src/net/native.ts TapIo has it); tests may hand in another. */
export interface EvdevIo {
  watch(fd: number, cb: (status: number, events: number) => void, events: number): { stop(): void };
  /** read(2) into buf: bytes, or -errno (-EAGAIN: nothing now). */
  tapRead(fd: number, buf: Uint8Array, vnetHdrLen: number): number;
}

/** Records read per wake-up at most before yielding to the event loop (and the ioreqs). */
const READ_BURST = 16;
const EV_READABLE = 1;
const EAGAIN = 11;

/** Input devices read into the guest's keyboard and mouse; close() stops them all. */
export class EvdevInput {
  private readonly devs: { fd: number; path: string; w: { stop(): void } | null }[] = [];
  private readonly buf = new Uint8Array(INPUT_EVENT_SIZE * 64);
  private readonly bad: RateLimited;

  constructor(
    private readonly io: EvdevIo,
    private readonly sink: HostInputSink,
    private readonly log: Logger,
  ) {
    this.bad = new RateLimited(log);
  }

  /** Open every event* in `dir` (e.g. /dev/input) that opens; returns the paths opened. */
  openAll(dir: string): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => /^event\d+$/.test(n)).sort();
    } catch {
      return [];
    }
    const opened: string[] = [];
    for (const n of names) if (this.open(path.join(dir, n))) opened.push(path.join(dir, n));
    return opened;
  }

  /** Start reading one device (or FIFO); false if it cannot be opened (logged). */
  open(p: string): boolean {
    let fd: number;
    try {
      fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (e) {
      this.log.warn({ dev: p, err: (e as NodeJS.ErrnoException).code ?? String(e) }, 'input device not opened');
      return false;
    }
    const dev: { fd: number; path: string; w: { stop(): void } | null } = { fd, path: p, w: null };
    const decoder = new EvdevDecoder(this.sink);
    try {
      dev.w = this.io.watch(fd, (status) => this.readable(dev, decoder, status), EV_READABLE);
    } catch (e) {
      fs.closeSync(fd);
      this.log.warn({ dev: p, err: String(e) }, 'input device cannot be watched');
      return false;
    }
    this.devs.push(dev);
    return true;
  }

  private readable(dev: { fd: number; path: string; w: { stop(): void } | null }, decoder: EvdevDecoder, status: number): void {
    if (status < 0) return this.drop(dev, `poll error ${status}`);
    for (let i = 0; i < READ_BURST; i++) {
      const n = this.io.tapRead(dev.fd, this.buf, 0);
      if (n === -EAGAIN) return;
      if (n <= 0) return this.drop(dev, n === 0 ? 'end of file' : `read error ${-n}`);
      decoder.feed(this.buf, n);
    }
  }

  /** A device that went away (hot-unplug, or the writer of a FIFO closed it): stop reading it. */
  private drop(dev: { fd: number; path: string; w: { stop(): void } | null }, why: string): void {
    this.bad.warn({ dev: dev.path, why }, 'input device closed');
    dev.w?.stop();
    dev.w = null;
    try {
      fs.closeSync(dev.fd);
    } catch {
      // already closed
    }
    const i = this.devs.indexOf(dev);
    if (i >= 0) this.devs.splice(i, 1);
  }

  get count(): number {
    return this.devs.length;
  }

  close(): void {
    for (const d of this.devs.splice(0)) {
      d.w?.stop();
      try {
        fs.closeSync(d.fd);
      } catch {
        // already closed
      }
    }
  }
}
