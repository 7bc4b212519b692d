/**
 * A minimal VNC (RFB 3.8, RFC 6143) server for the guest's screen, on the
 * address libxl passes with `-vnc`. Hand-written: npm has RFB clients
 * (noVNC) but no maintained RFB server library.
 *
 * What it speaks: versions 3.3, 3.7 and 3.8; security "None" only (VNC
 * authentication needs DES, which Node's OpenSSL 3 no longer offers; with
 * `password=on` the server does not listen at all rather than serve
 * without the password: see main.ts); SetPixelFormat (true colour, 8/16/32
 * bpp, either byte order), SetEncodings, FramebufferUpdateRequest, KeyEvent
 * (into the i8042 as set-1 scan codes, keymap.ts), PointerEvent (into the
 * PS/2 mouse as relative moves: see pointer()) and ClientCutText (read and
 * dropped). Encodings: Raw (0), zlib (6, one
 * deflate stream per client), and the DesktopSize pseudo-encoding (-223)
 * when the guest changes mode.
 *
 * Cost: the refresh timer runs only while a client is connected, on QEMU's
 * adaptive period (30 ms while the picture changes, up to 3 s while it is
 * still: AdaptiveRefresh in display.ts), brought back to 30 ms by a key or
 * pointer event or by the guest's first VRAM store; each tick redraws only
 * what changed (DisplayHub; nothing at all while nothing did) and sends only
 * damaged rectangles to clients that asked for an update. An idle tick
 * allocates nothing (test/devices/vga/idle.test.ts). Every client message is
 * bounds-checked; a client that sends garbage or too much is disconnected.
 */
import net from 'node:net';
import zlib from 'node:zlib';
import type { Logger } from '../core/log.ts';
import { AdaptiveRefresh, type DisplayHub, type DisplaySink } from '../devices/vga/display.ts';
import type { Rect } from '../devices/vga/render.ts';
import { keysymToScancodes } from './keymap.ts';

export const RFB_PORT_BASE = 5900;
export const ENC_RAW = 0;
export const ENC_ZLIB = 6;
export const ENC_DESKTOP_SIZE = -223;
// PointerEvent button mask (RFC 6143 §7.5.5; bits 3/4 are the wheel by convention).
const RFB_LEFT = 0x01;
const RFB_MIDDLE = 0x02;
const RFB_RIGHT = 0x04;
const RFB_WHEEL_UP = 0x08;
const RFB_WHEEL_DOWN = 0x10;
// What onPointer's buttons mean: PS/2 packet order (src/devices/i8042 BTN_*).
const PS2_LEFT = 0x01;
const PS2_RIGHT = 0x02;
const PS2_MIDDLE = 0x04;
/** A client's unparsed input beyond this is a protocol abuse: disconnect. */
const MAX_PENDING_INPUT = 1 << 20;
/** Longest cut text we read (and drop). */
const MAX_CUT_TEXT = 1 << 20;

export interface VncOptions {
  host: string;
  /** First port to try (5900 + display). */
  port: number;
  /** Last port to try (`to=`), inclusive. */
  lastPort: number;
  display: DisplayHub;
  /** Scan-code bytes for the keyboard. */
  onKey(bytes: Uint8Array): void;
  /**
   * A relative pointer move for the PS/2 mouse: x right, y down, wheel
   * detents (positive = towards the user), buttons held in PS/2 order
   * (bit 0 left, 1 right, 2 middle). Absent: pointer events are dropped.
   */
  onPointer?(dx: number, dy: number, dz: number, buttons: number): void;
  log: Logger;
  /** No refresh timer: the caller calls tick() (tests). */
  manual?: boolean;
  name?: string;
}

interface PixelFormat {
  bpp: number;
  bigEndian: boolean;
  rMax: number;
  gMax: number;
  bMax: number;
  rShift: number;
  gShift: number;
  bShift: number;
}

const SERVER_PF: PixelFormat = { bpp: 32, bigEndian: false, rMax: 255, gMax: 255, bMax: 255, rShift: 16, gShift: 8, bShift: 0 };

type Phase = 'version' | 'security' | 'init' | 'normal' | 'closed';

class Client implements DisplaySink {
  phase: Phase = 'version';
  minor = 8;
  pf: PixelFormat = SERVER_PF;
  encodings: number[] = [];
  /** Pending damage (union), null: none. */
  dirty: Rect | null = null;
  resized = false;
  /** A FramebufferUpdateRequest is outstanding. */
  wanted = false;
  /** An update is being compressed (zlib is asynchronous): do not start another. */
  busy = false;
  width = 0;
  height = 0;
  private input: Buffer = Buffer.alloc(0);
  private z: zlib.Deflate | null = null;
  private readonly scancodes = new Uint8Array(2);
  /** The client's last pointer position and button mask; -1: no event yet. */
  private px = -1;
  private py = -1;
  private mask = 0;
  private unsubscribe: () => void = () => {};

  constructor(
    readonly sock: net.Socket,
    private readonly srv: VncServer,
  ) {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', () => this.close());
    sock.on('close', () => this.close());
    sock.write('RFB 003.008\n');
  }

  close(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.unsubscribe();
    this.z?.close();
    this.sock.destroy();
    this.srv.dropped(this);
  }

  damage(r: Rect): void {
    this.dirty = this.dirty ? union(this.dirty, r) : { ...r };
  }

  resize(w: number, h: number): void {
    this.resized = true;
    this.dirty = { x: 0, y: 0, w, h };
  }

  wake(): void {
    this.srv.poke();
  }

  private onData(d: Buffer): void {
    this.input = this.input.length ? Buffer.concat([this.input, d]) : d;
    if (this.input.length > MAX_PENDING_INPUT) return this.abuse('too much unparsed input');
    // Each pass consumes one message; a bounded number per chunk of input.
    for (let n = 0; n < 10000 && this.phase !== 'closed' && this.input.length > 0; n++) {
      const used = this.step(this.input);
      if (used <= 0) break;
      this.input = this.input.subarray(used);
    }
  }

  private abuse(why: string): void {
    this.srv.warnClient(why);
    this.close();
  }

  /** Handle one message at the start of `b`; bytes consumed, 0 if incomplete. */
  private step(b: Buffer): number {
    switch (this.phase) {
      case 'version': {
        if (b.length < 12) return 0;
        const m = /^RFB 003\.00([378])\n$/.exec(b.subarray(0, 12).toString('latin1'));
        if (!m) {
          this.abuse('bad protocol version');
          return 0;
        }
        this.minor = Number(m[1]);
        if (this.minor === 3) {
          this.sock.write(u32(1)); // 3.3: the server picks: None
          this.phase = 'init';
        } else {
          this.sock.write(Buffer.from([1, 1])); // one security type: None
          this.phase = 'security';
        }
        return 12;
      }
      case 'security': {
        if (b.length < 1) return 0;
        if (b[0] !== 1) {
          if (this.minor === 8) {
            const why = Buffer.from('only security type None is offered', 'latin1');
            this.sock.write(Buffer.concat([u32(1), u32(why.length), why]));
          }
          this.close();
          return 0;
        }
        if (this.minor === 8) this.sock.write(u32(0)); // SecurityResult OK (3.7 sends none for None)
        this.phase = 'init';
        return 1;
      }
      case 'init': {
        if (b.length < 1) return 0; // ClientInit: shared flag (every client shares the screen here)
        this.srv.display.refresh();
        const { width, height } = this.srv.display;
        this.width = width;
        this.height = height;
        const name = Buffer.from(this.srv.name, 'utf8');
        const msg = Buffer.alloc(24 + name.length);
        msg.writeUInt16BE(width, 0);
        msg.writeUInt16BE(height, 2);
        writePf(msg, 4, SERVER_PF);
        msg.writeUInt32BE(name.length, 20);
        name.copy(msg, 24);
        this.sock.write(msg);
        this.phase = 'normal';
        this.unsubscribe = this.srv.display.subscribe(this);
        this.dirty = width && height ? { x: 0, y: 0, w: width, h: height } : null;
        return 1;
      }
      case 'normal':
        return this.message(b);
      default:
        return 0;
    }
  }

  /** RFC 6143 §7.5 client-to-server messages. */
  private message(b: Buffer): number {
    switch (b[0]) {
      case 0: {
        // SetPixelFormat
        if (b.length < 20) return 0;
        const pf = readPf(b, 4);
        if (pf === null) {
          this.abuse('unsupported pixel format');
          return 0;
        }
        this.pf = pf;
        return 20;
      }
      case 2: {
        // SetEncodings
        if (b.length < 4) return 0;
        const n = b.readUInt16BE(2);
        if (b.length < 4 + 4 * n) return 0;
        const enc: number[] = [];
        for (let i = 0; i < n; i++) enc.push(b.readInt32BE(4 + 4 * i));
        this.encodings = enc;
        return 4 + 4 * n;
      }
      case 3: {
        // FramebufferUpdateRequest: non-incremental asks for the whole area again.
        if (b.length < 10) return 0;
        const incremental = b[1] !== 0;
        if (!incremental) {
          const r = { x: b.readUInt16BE(2), y: b.readUInt16BE(4), w: b.readUInt16BE(6), h: b.readUInt16BE(8) };
          const c = clip(r, this.width, this.height);
          if (c) this.damage(c);
        }
        this.wanted = true;
        this.srv.kick();
        return 10;
      }
      case 4: {
        // KeyEvent
        if (b.length < 8) return 0;
        const n = keysymToScancodes(b.readUInt32BE(4), b[1] !== 0, this.scancodes);
        if (n) this.srv.opts.onKey(this.scancodes.subarray(0, n));
        this.srv.poke(); // the guest is about to answer (an echo, a cursor): refresh fast
        return 8;
      }
      case 5:
        // PointerEvent
        if (b.length < 6) return 0;
        this.pointer(b[1], b.readUInt16BE(2), b.readUInt16BE(4));
        this.srv.poke();
        return 6;
      case 6: {
        // ClientCutText: read and dropped.
        if (b.length < 8) return 0;
        const len = b.readUInt32BE(4);
        if (len > MAX_CUT_TEXT) {
          this.abuse('cut text too long');
          return 0;
        }
        return b.length < 8 + len ? 0 : 8 + len;
      }
      default:
        this.abuse(`unknown message type ${b[0]}`);
        return 0;
    }
  }

  /**
   * RFB gives absolute positions (RFC 6143 §7.5.5) and the guest has a
   * relative PS/2 mouse (no tablet is emulated), so the move is the
   * difference from this client's last position; the guest's pointer
   * follows the client's only as far as its acceleration lets it (QEMU's
   * PS/2 mouse behind VNC is the same). Mask bits 0-2 are left, middle,
   * right; bits 3/4 are one wheel detent up/down each time they are pressed.
   */
  private pointer(mask: number, x: number, y: number): void {
    const onPointer = this.srv.opts.onPointer;
    if (!onPointer) return;
    const first = this.px < 0;
    const dx = first ? 0 : x - this.px;
    const dy = first ? 0 : y - this.py;
    const pressed = mask & ~this.mask;
    const dz = (pressed & RFB_WHEEL_DOWN ? 1 : 0) - (pressed & RFB_WHEEL_UP ? 1 : 0);
    const buttons = (mask & RFB_LEFT ? PS2_LEFT : 0) | (mask & RFB_MIDDLE ? PS2_MIDDLE : 0) | (mask & RFB_RIGHT ? PS2_RIGHT : 0);
    const changed = dx !== 0 || dy !== 0 || dz !== 0 || ((mask ^ this.mask) & (RFB_LEFT | RFB_MIDDLE | RFB_RIGHT)) !== 0;
    this.px = x;
    this.py = y;
    this.mask = mask;
    if (changed) onPointer(dx, dy, dz, buttons);
  }

  /** Send what is pending if the client asked for it. True: an update went out (or is being compressed). */
  flush(): boolean {
    if (this.phase !== 'normal' || !this.wanted || this.busy) return false;
    if (this.dirty === null && !this.resized) return false; // the idle case: nothing allocated, nothing sent
    const d = this.srv.display;
    const rects: Buffer[] = [];
    let count = 0;
    if (this.resized) {
      this.resized = false;
      if (this.encodings.includes(ENC_DESKTOP_SIZE)) {
        this.width = d.width;
        this.height = d.height;
        rects.push(rectHeader(0, 0, d.width, d.height, ENC_DESKTOP_SIZE));
        count++;
      }
    }
    const r = this.dirty ? clip(this.dirty, Math.min(this.width, d.width), Math.min(this.height, d.height)) : null;
    this.dirty = null;
    if (!r && count === 0) return false;
    this.wanted = false;
    const raw = r ? this.pixels(r) : null;
    // Encodings come in the client's order of preference; Raw is always understood.
    const zi = this.encodings.indexOf(ENC_ZLIB);
    const ri = this.encodings.indexOf(ENC_RAW);
    const zlibOn = raw !== null && zi >= 0 && (ri < 0 || zi < ri);
    const send = (body: Buffer | null, enc: number) => {
      if (r && body) {
        rects.push(rectHeader(r.x, r.y, r.w, r.h, enc), body);
        count++;
      }
      const head = Buffer.alloc(4);
      head[0] = 0; // FramebufferUpdate
      head.writeUInt16BE(count, 2);
      this.sock.write(Buffer.concat([head, ...rects]));
    };
    if (!zlibOn || raw === null) {
      send(raw, ENC_RAW);
      return true;
    }
    this.busy = true;
    this.deflate(raw, (z) => {
      this.busy = false;
      if (this.phase !== 'normal') return;
      const len = u32(z.length);
      send(Buffer.concat([len, z]), ENC_ZLIB);
    });
    return true;
  }

  private deflate(raw: Buffer, done: (out: Buffer) => void): void {
    if (!this.z) this.z = zlib.createDeflate({ level: 6 });
    const z = this.z;
    const chunks: Buffer[] = [];
    const onData = (c: Buffer) => chunks.push(c);
    z.on('data', onData);
    z.write(raw);
    z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
      z.off('data', onData);
      done(Buffer.concat(chunks));
    });
  }

  /** The rectangle in the client's pixel format. */
  private pixels(r: Rect): Buffer {
    const d = this.srv.display;
    const fb = d.fb;
    const pf = this.pf;
    const bytes = pf.bpp >> 3;
    const out = Buffer.allocUnsafe(r.w * r.h * bytes);
    this.srv.stats.pixels += r.w * r.h;
    const same = pf === SERVER_PF || (pf.bpp === 32 && !pf.bigEndian && pf.rMax === 255 && pf.gMax === 255 && pf.bMax === 255 && pf.rShift === 16 && pf.gShift === 8 && pf.bShift === 0);
    let o = 0;
    for (let y = r.y; y < r.y + r.h; y++) {
      let p = y * d.width + r.x;
      for (let x = 0; x < r.w; x++, p++) {
        const v = fb[p];
        if (same) {
          out.writeUInt32LE(v, o);
          o += 4;
          continue;
        }
        const c =
          ((((((v >>> 16) & 0xff) * pf.rMax + 127) / 255) | 0) << pf.rShift) |
          ((((((v >>> 8) & 0xff) * pf.gMax + 127) / 255) | 0) << pf.gShift) |
          (((((v & 0xff) * pf.bMax + 127) / 255) | 0) << pf.bShift);
        if (bytes === 4) pf.bigEndian ? out.writeUInt32BE(c >>> 0, o) : out.writeUInt32LE(c >>> 0, o);
        else if (bytes === 2) pf.bigEndian ? out.writeUInt16BE(c & 0xffff, o) : out.writeUInt16LE(c & 0xffff, o);
        else out[o] = c & 0xff;
        o += bytes;
      }
    }
    return out;
  }
}

export class VncServer {
  readonly name: string;
  private server: net.Server | null = null;
  private readonly clients = new Set<Client>();
  private readonly refresh: AdaptiveRefresh;
  private warnings = 0;
  address: { host: string; port: number } | null = null;
  /** Refresh ticks, updates sent, pixels converted for clients (tests: an idle tick converts none). */
  readonly stats = { ticks: 0, updates: 0, pixels: 0 };

  constructor(readonly opts: VncOptions) {
    this.name = opts.name ?? 'stubdm';
    this.refresh = new AdaptiveRefresh(() => this.tick());
  }

  /** The refresh period now (ms; QEMU's adaptive scheme). */
  get refreshInterval(): number {
    return this.refresh.interval;
  }

  get display(): DisplayHub {
    return this.opts.display;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Listen on the first free port of [port, lastPort] (QEMU's `to=`). */
  async listen(): Promise<{ host: string; port: number }> {
    const { host, port, lastPort } = this.opts;
    let lastErr: Error | null = null;
    for (let p = port; p <= Math.max(port, lastPort); p++) {
      const srv = net.createServer((s) => this.accept(s));
      try {
        await new Promise<void>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen(p, host, () => {
            srv.off('error', reject);
            resolve();
          });
        });
        this.server = srv;
        this.address = { host, port: (srv.address() as net.AddressInfo).port }; // port 0: the one the kernel chose
        return this.address;
      } catch (e) {
        lastErr = e as Error;
        srv.close();
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') break;
      }
    }
    throw new Error(`VNC: cannot listen on ${host}:${port}${lastPort > port ? `-${lastPort}` : ''}: ${lastErr?.message}`);
  }

  private accept(s: net.Socket): void {
    const c = new Client(s, this);
    this.clients.add(c);
    if (!this.opts.manual) this.refresh.start();
  }

  /** Redraw what changed and send it to clients that asked. True: some client got an update. */
  tick(): boolean {
    if (this.clients.size === 0) return false;
    this.stats.ticks++;
    this.display.refresh();
    let sent = false;
    for (const c of this.clients) if (c.flush()) sent = true;
    if (sent) this.stats.updates++;
    return sent;
  }

  /** A client asked for an update: answer now if we have something (no waiting for the next tick). */
  kick(): void {
    this.tick();
  }

  /** Input from a client, or the guest drawing after a still spell: refresh fast again. */
  poke(): void {
    this.refresh.poke();
  }

  dropped(c: Client): void {
    this.clients.delete(c);
    if (this.clients.size === 0) this.refresh.stop();
  }

  warnClient(why: string): void {
    if (this.warnings++ < 20) this.opts.log.warn({ why }, 'VNC client disconnected');
  }

  async close(): Promise<void> {
    for (const c of [...this.clients]) c.close();
    this.refresh.stop();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

function rectHeader(x: number, y: number, w: number, h: number, enc: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(x, 0);
  b.writeUInt16BE(y, 2);
  b.writeUInt16BE(w, 4);
  b.writeUInt16BE(h, 6);
  b.writeInt32BE(enc, 8);
  return b;
}

function writePf(b: Buffer, at: number, pf: PixelFormat): void {
  b[at] = pf.bpp;
  b[at + 1] = pf.bpp === 32 ? 24 : pf.bpp;
  b[at + 2] = pf.bigEndian ? 1 : 0;
  b[at + 3] = 1; // true colour
  b.writeUInt16BE(pf.rMax, at + 4);
  b.writeUInt16BE(pf.gMax, at + 6);
  b.writeUInt16BE(pf.bMax, at + 8);
  b[at + 10] = pf.rShift;
  b[at + 11] = pf.gShift;
  b[at + 12] = pf.bShift;
}

/** A client's PIXEL_FORMAT, or null when we cannot produce it (colour maps, odd depths). */
function readPf(b: Buffer, at: number): PixelFormat | null {
  const bpp = b[at];
  if (![8, 16, 32].includes(bpp) || b[at + 3] === 0) return null;
  const pf = {
    bpp,
    bigEndian: b[at + 2] !== 0,
    rMax: b.readUInt16BE(at + 4),
    gMax: b.readUInt16BE(at + 6),
    bMax: b.readUInt16BE(at + 8),
    rShift: b[at + 10],
    gShift: b[at + 11],
    bShift: b[at + 12],
  };
  if (pf.rShift > 31 || pf.gShift > 31 || pf.bShift > 31 || !pf.rMax || !pf.gMax || !pf.bMax) return null;
  return pf;
}

function union(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, w: Math.max(a.x + a.w, b.x + b.w) - x, h: Math.max(a.y + a.h, b.y + b.h) - y };
}

function clip(r: Rect, w: number, h: number): Rect | null {
  const x = Math.max(0, r.x);
  const y = Math.max(0, r.y);
  const x2 = Math.min(w, r.x + r.w);
  const y2 = Math.min(h, r.y + r.h);
  return x2 > x && y2 > y ? { x, y, w: x2 - x, h: y2 - y } : null;
}

/**
 * libxl's `-vnc` argument: `HOST:DISPLAY[,to=N][,password=on]...` (or
 * `none`). Port = 5900 + display; `to=N` lets QEMU try displays up to N.
 */
export function parseVncArg(arg: string): { host: string; port: number; lastPort: number; password: boolean } | null {
  if (arg === 'none') return null;
  const [addr, ...opts] = arg.split(',');
  const m = /^(.*):(\d{1,4})$/.exec(addr);
  if (!m) throw new Error(`-vnc ${arg}: expected HOST:DISPLAY`);
  const display = Number(m[2]);
  let host = m[1] === '' ? '127.0.0.1' : m[1];
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  let last = display;
  let password = false;
  for (const o of opts) {
    const [k, v] = o.split('=');
    if (k === 'to') {
      if (!/^\d{1,4}$/.test(v ?? '')) throw new Error(`-vnc ${arg}: to=${v} is not a display number`);
      last = Math.max(display, Number(v));
    } else if (k === 'password') password = v === undefined || v === 'on' || v === 'true';
  }
  if (RFB_PORT_BASE + last > 65535) throw new Error(`-vnc ${arg}: display ${last} is past port 65535`);
  return { host, port: RFB_PORT_BASE + display, lastPort: RFB_PORT_BASE + last, password };
}
