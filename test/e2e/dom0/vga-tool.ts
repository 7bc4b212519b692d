/**
 * dom0's side of the e2e `vga` scenario (test/e2e/scenarios/vga.sh), bundled by
 * lib/host.sh into the work disk as bin/vga-tool.mjs (node starts a bundle in a
 * few seconds under TCG; tsx takes about a minute). One process, one clock, the
 * guest's serial file as the guest's voice and VNC keys as dom0's:
 *
 *   1. guest prints "E2E vga text=ready": QMP screendump of the text console
 *      (SeaBIOS, SYSLINUX, the untouched Linux VGA console), compared with
 *      qemu-xen's picture of the same run when there is one;
 *   2. VNC client on the port `xl vncviewer` uses types "go" Return: the guest
 *      loads bochs-drm and prints its mode;
 *   3. once the VNC picture has the mode's size the client types "w" Return:
 *      the guest fills /dev/fb0 with a known pattern; the client times the
 *      moment its copy of the screen is all pattern (vnc_update_ms from the
 *      guest's "fb=written" line on the serial file);
 *   4. QMP screendump of the VBE mode, checked against the pattern;
 *   5. with --cpu-windows, the guest idles at its VBE mode while vga.sh
 *      measures the device model's CPU: first with the VNC client still
 *      connected and waiting for an incremental update (the file
 *      OUT/idle-vnc.go asks vga.sh to measure, OUT/idle-vnc.done says it
 *      did), then with no client (idle-novnc.go/.done); the tool itself
 *      sleeps in the kernel meanwhile (a 0.5 s poll for the .done file,
 *      no traffic: the server answers the outstanding request only when
 *      the picture changes, and vnc_idle_updates counts it if it did);
 *   6. "q" Return (through a new VNC connection after the no-client
 *      window) lets the guest power off.
 * Without VNC (qemu-stubdom: its VNC is dom0's xenpv QEMU, which Debian's QEMU
 * in our stub does not draw into) the same keys go in through QMP
 * (`human-monitor-command` `sendkey`, what `xl qemu-monitor-command` does) and
 * step 3 is not timed at a client. stubdm-stubdom (--vnc-crop): the VNC server is dom0's
 * xenpv QEMU showing the stub's framebuffer (xen-fbfront, 800x600 unless
 * resized), into which stubdm draws the guest at the top left, cropped: the
 * picture keeps the framebuffer's size, and the pattern is checked where the
 * two overlap. Keys go VNC -> xenpv QEMU -> xen-kbdfront -> stubdm's evdev
 * reader -> i8042. A stub domain writes its screendumps into its save console
 * (/dev/fdset/1), which dom0's xenpv QEMU copies into
 * /var/lib/xen/qemu-save.<domid>: the pictures are read from there, one after
 * the other.
 *
 * Prints one line: "OK key=value..." or "FAIL <why> key=value...". Every wait is bounded.
 *
 * Usage: node vga-tool.mjs --qmp SOCK --serial FILE --out DIR [--vnc PORT]
 *          [--dump-as PATH --dump-file FILE] [--ref DIR] [--timeout S] [--dm-pid PID]
 *          [--vnc-crop] [--cpu-windows]
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PNG } from 'pngjs';
import { RfbClient } from '../../helpers/rfb-client.ts';
import { checkPattern, comparePictures, parsePpm, patternPixel, type FbPattern, type Picture } from '../../helpers/screen.ts';

/** What the guest writes (vga.sh VGA_PATTERN, 28 bytes with the newline `yes` adds). */
export const PATTERN_TEXT = 'E2E-VGA-pattern-0123456789x\n';

class Fail extends Error {}

interface Args {
  qmp: string;
  serial: string;
  out: string;
  vnc: number | null;
  dumpAs: string | null;
  dumpFile: string | null;
  ref: string | null;
  timeoutMs: number;
  /** A dom0 device model's pid: its death ends the waits at once (optional). */
  dmPid?: number | null;
  /** The VNC picture is a fixed-size framebuffer showing the guest at the top left (stubdm-stubdom). */
  vncCrop?: boolean;
  /** Step 5: the idle windows vga.sh measures the DM's CPU over (the idle-*.go/.done files in `out`). */
  cpuWindows?: boolean;
}

function parseArgs(argv: string[]): Args {
  const get = (k: string): string | null => {
    const i = argv.indexOf(k);
    return i >= 0 && i + 1 < argv.length ? argv[i + 1] : null;
  };
  const qmp = get('--qmp');
  const serial = get('--serial');
  const out = get('--out');
  if (!qmp || !serial || !out) throw new Fail('usage: vga-tool --qmp SOCK --serial FILE --out DIR [--vnc PORT] [--dump-as PATH --dump-file FILE] [--ref DIR] [--timeout S]');
  const vnc = get('--vnc');
  const port = vnc === null || vnc === 'none' ? null : Number(vnc);
  if (port !== null && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new Fail(`bad VNC port '${vnc}'`);
  const t = Number(get('--timeout') ?? '300');
  const pid = Number(get('--dm-pid') ?? NaN);
  return {
    qmp, serial, out, vnc: port, dumpAs: get('--dump-as'), dumpFile: get('--dump-file'), ref: get('--ref'),
    timeoutMs: (Number.isFinite(t) && t > 0 ? t : 300) * 1000, dmPid: Number.isInteger(pid) && pid > 0 ? pid : null,
    vncCrop: argv.includes('--vnc-crop'),
    cpuWindows: argv.includes('--cpu-windows'),
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const now = () => performance.now();

/** Polls until `f` returns non-null; Fail(`what`) after `ms`. */
async function until<T>(what: string, ms: number, f: () => T | null, every = 20): Promise<T> {
  const end = now() + ms;
  for (;;) {
    const v = f();
    if (v !== null) return v;
    if (now() > end) throw new Fail(`timed out (${Math.round(ms / 1000)} s) waiting for ${what}`);
    await sleep(every);
  }
}

/** The value of `key` in the guest's last "E2E vga ..." line that has it, or null. */
export function marker(serialFile: string, key: string): string | null {
  let text: string;
  try {
    text = fs.readFileSync(serialFile, 'latin1');
  } catch {
    return null;
  }
  let v: string | null = null;
  // Only whole lines: the guest's UART writes a line a byte at a time, and a
  // read in the middle of "E2E vga mode=1024x768x32" once gave "mode=" (seen
  // on real Xen, stubdm-dom0, while the guest's insmod held its CPU).
  const lines = text.split(/\r?\n/);
  lines.pop(); // what follows the last newline: nothing, or a line still being written
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f[0] !== 'E2E' || f[1] !== 'vga') continue;
    for (const kv of f.slice(2)) if (kv.startsWith(`${key}=`)) v = kv.slice(key.length + 1);
  }
  return v;
}

/**
 * Types `text` then Return into the guest's PS/2 keyboard with HMP `sendkey`
 * through QMP, one key per command (letters and digits only). false: a command
 * failed (the guest's key wait then times out, and the scenario says so).
 */
async function qmpType(sock: string, text: string): Promise<boolean> {
  for (const k of [...text.toLowerCase()].concat('ret')) {
    const r = await qmp(sock, { execute: 'human-monitor-command', arguments: { 'command-line': `sendkey ${k}` } }, 60_000).catch(() => null);
    if (r === null || (typeof r === 'string' && r.trim() !== '')) return false;
  }
  return true;
}

/** One QMP command on a fresh connection (libxl connects per operation too; QEMU serves one monitor client at a time). */
async function qmp(sock: string, cmd: object, ms: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(sock);
    let buf = '';
    let step = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Fail(`QMP on ${sock} did not answer within ${Math.round(ms / 1000)} s`));
    }, ms);
    const done = (err: Error | null, v?: unknown) => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(v);
    };
    s.on('error', (e) => done(new Fail(`QMP ${sock}: ${e.message}`)));
    s.on('data', (d) => {
      buf += d.toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return done(new Fail(`QMP sent a line that is not JSON: ${line.slice(0, 80)}`));
        }
        if ('event' in m) continue;
        if (step === 0 && 'QMP' in m) {
          step = 1;
          s.write('{"execute":"qmp_capabilities"}\n');
        } else if (step === 1 && 'return' in m) {
          step = 2;
          s.write(JSON.stringify(cmd) + '\n');
        } else if (step === 2 && 'return' in m) {
          return done(null, m.return);
        } else if ('error' in m) {
          return done(new Fail(`QMP error: ${JSON.stringify(m.error).slice(0, 200)}`));
        }
      }
    });
  });
}

/** How long vga.sh may take over one idle window (VGA_IDLE_S is 30 s; xentop starts slowly under load). */
const IDLE_WINDOW_MAX_MS = 300_000;

/**
 * One idle window: OUT/idle-NAME.go tells vga.sh to measure, OUT/idle-NAME.done
 * that it has. `alive` throws if the guest or the DM went away meanwhile.
 */
async function idleWindow(out: string, name: string, alive: () => void): Promise<number> {
  const done = path.join(out, `idle-${name}.done`);
  const t0 = now();
  fs.writeFileSync(path.join(out, `idle-${name}.go`), '');
  await until(`vga.sh to measure the idle window ${name} (${done})`, IDLE_WINDOW_MAX_MS, () => {
    alive();
    return fs.existsSync(done) ? true : null;
  }, 500);
  return (now() - t0) / 1000;
}

/** Reads pictures a device model wrote: its own file each time, or one after another from a stub domain's save console. */
class Screens {
  private consumed = 0;
  constructor(private readonly a: Args) {}

  /** Milliseconds from sending each screendump to its whole picture in dom0's file. */
  readonly ms: Record<string, number> = {};

  async take(name: string): Promise<Picture> {
    const file = this.a.dumpFile ?? path.join(this.a.out, `${name}.ppm`);
    const as = this.a.dumpAs ?? file;
    const t0 = now();
    await qmp(this.a.qmp, { execute: 'screendump', arguments: { filename: as } }, 180_000);
    const r = await until(`the ${name} screendump in ${file}`, 180_000, () => {
      let b: Buffer;
      try {
        b = fs.readFileSync(file);
      } catch {
        return null;
      }
      try {
        return parsePpm(b.subarray(this.consumed));
      } catch (e) {
        throw new Fail(`the ${name} screendump in ${file} is not a picture: ${(e as Error).message}`);
      }
    }, 100);
    this.ms[name] = Math.round(now() - t0);
    this.consumed += this.a.dumpFile ? r.bytes : 0;
    const ppm = path.join(this.a.out, `${name}.ppm`);
    if (this.a.dumpFile) fs.writeFileSync(ppm, Buffer.concat([Buffer.from(`P6\n${r.pic.width} ${r.pic.height}\n255\n`), r.pic.rgb]));
    // A PNG copy for people (the harness results); the PPM is what the checks read.
    const data = Buffer.from(r.pic.rgb);
    writeRgbPng(path.join(this.a.out, `${name}.png`), r.pic.width, r.pic.height, data);
    return r.pic;
  }
}

/** A PNG of packed RGB pixels (the results' copies for people). */
function writeRgbPng(file: string, width: number, height: number, rgb: Buffer): void {
  fs.writeFileSync(file, PNG.sync.write({ width, height, data: rgb } as unknown as PNG, { colorType: 2, inputColorType: 2, inputHasAlpha: false }));
}

/** A reference picture (qemu-xen's, same run) or null. */
function reference(dir: string | null, name: string): Picture | null {
  if (!dir) return null;
  try {
    return parsePpm(fs.readFileSync(path.join(dir, `${name}.ppm`)))?.pic ?? null;
  } catch {
    return null;
  }
}

const XK_RETURN = 0xff0d;

/** The VNC viewer: keeps a copy of the screen from raw rectangles and counts its pixels that are not the pattern. */
class Viewer {
  width = 0;
  height = 0;
  fb = new Uint8Array(0); // B, G, R, X per pixel
  pattern: FbPattern | null = null;
  /** Compare only where the picture and the pattern overlap (a fixed framebuffer showing the guest at the top left). */
  crop = false;
  /** The region compared. */
  private rw = 0;
  private rh = 0;
  private badMap = new Uint8Array(0);
  bad = -1;
  matchAt = -1;
  updates = 0;
  error: string | null = null;

  private constructor(private readonly c: RfbClient) {}

  static async open(port: number): Promise<Viewer> {
    const c = await RfbClient.connect(port);
    const init = await c.handshake('003.008');
    const v = new Viewer(c);
    v.resize(init.w, init.h);
    // SetPixelFormat: 32 bpp, depth 24, little endian, true colour, 8-bit channels, red at 16, green 8, blue 0.
    const pf = Buffer.alloc(20);
    pf[0] = 0;
    pf.set([32, 24, 0, 1], 4);
    pf.writeUInt16BE(255, 8);
    pf.writeUInt16BE(255, 10);
    pf.writeUInt16BE(255, 12);
    pf.set([16, 8, 0], 14);
    c.send(pf);
    c.encodings(0, -223); // raw, DesktopSize
    c.request(false, init.w, init.h);
    void v.pump();
    return v;
  }

  private resize(w: number, h: number): void {
    this.width = w;
    this.height = h;
    this.fb = new Uint8Array(w * h * 4);
    this.recount();
  }

  /** The client's copy of the screen, for a failure's evidence. */
  savePng(file: string): void {
    const rgb = Buffer.alloc(this.width * this.height * 3);
    for (let i = 0; i < this.width * this.height; i++) {
      rgb[i * 3] = this.fb[i * 4 + 2];
      rgb[i * 3 + 1] = this.fb[i * 4 + 1];
      rgb[i * 3 + 2] = this.fb[i * 4];
    }
    writeRgbPng(file, this.width, this.height, rgb);
  }

  /** The client's pixel at (x, y) as rrggbb. */
  pixelHex(x: number, y: number): string {
    const o = (y * this.width + x) * 4;
    return [this.fb[o + 2], this.fb[o + 1], this.fb[o]].map((v) => (v ?? 0).toString(16).padStart(2, '0')).join('');
  }

  /** Start counting pattern pixels (the guest's mode is known). */
  expect(p: FbPattern): void {
    this.pattern = p;
    this.recount();
    if (this.bad === 0 && this.matchAt < 0) this.matchAt = now(); // already on screen: no update will come
  }

  private recount(): void {
    const p = this.pattern;
    if (!p || (!this.crop && (p.width !== this.width || p.height !== this.height))) {
      this.bad = -1;
      return;
    }
    this.rw = Math.min(p.width, this.width);
    this.rh = Math.min(p.height, this.height);
    this.badMap = new Uint8Array(this.width * this.height);
    this.bad = 0;
    for (let y = 0; y < this.rh; y++) for (let x = 0; x < this.rw; x++) this.mark(x, y);
  }

  private mark(x: number, y: number): void {
    if (x >= this.rw || y >= this.rh) return;
    const p = this.pattern!;
    const i = y * this.width + x;
    const [r, g, b] = patternPixel(p, x, y);
    const o = i * 4;
    const isBad = this.fb[o] !== b || this.fb[o + 1] !== g || this.fb[o + 2] !== r ? 1 : 0;
    this.bad += isBad - this.badMap[i];
    this.badMap[i] = isBad;
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const rects = await this.c.update(4);
        if (this.c.closed) throw new Error('the VNC server closed the connection');
        for (const r of rects) {
          if (r.enc === -223) {
            this.resize(r.w, r.h);
            continue;
          }
          if (r.enc !== 0) throw new Error(`unexpected encoding ${r.enc}`);
          for (let row = 0; row < r.h; row++) {
            const y = r.y + row;
            if (y >= this.height) break;
            const n = Math.min(r.w, this.width - r.x);
            this.fb.set(r.data.subarray(row * r.w * 4, (row * r.w + n) * 4), (y * this.width + r.x) * 4);
            if (this.bad >= 0) for (let x = r.x; x < r.x + n; x++) this.mark(x, y);
          }
        }
        this.updates++;
        if (this.bad === 0 && this.matchAt < 0) this.matchAt = now();
        this.c.request(true, this.width, this.height);
      }
    } catch (e) {
      this.error = (e as Error).message;
    }
  }

  /** Types `text` then Return (keysyms: ASCII is Latin-1). */
  type(text: string): void {
    for (const ch of [...text].map((c) => c.charCodeAt(0)).concat(XK_RETURN)) {
      for (const down of [1, 0]) {
        const b = Buffer.alloc(8);
        b[0] = 4;
        b[1] = down;
        b.writeUInt32BE(ch, 4);
        this.c.send(b);
      }
    }
  }

  close(): void {
    this.c.close();
  }
}

export async function session(a: Args, kv: Record<string, string | number>): Promise<void> {
  fs.mkdirSync(a.out, { recursive: true });
  const guestError = () => {
    if (a.dmPid) {
      try {
        process.kill(a.dmPid, 0);
      } catch {
        throw new Fail(`the device model (pid ${a.dmPid}) exited`);
      }
    }
    return marker(a.serial, 'error');
  };
  const waitMarker = async (key: string, what: string, ms = a.timeoutMs) =>
    until(what, ms, () => {
      const e = guestError();
      if (e !== null) throw new Fail(`guest: error=${e}`);
      return marker(a.serial, key);
    });
  const screens = new Screens(a);

  // 1. The text console.
  await waitMarker('text', "the guest's 'E2E vga text=ready'");
  const text = await screens.take('text');
  kv.text = `${text.width}x${text.height}`;
  kv.text_dump_ms = screens.ms.text;
  const ref = reference(a.ref, 'text');
  if (ref) {
    const c = comparePictures(ref, text);
    kv.match = c.matchPercent.toFixed(3);
    kv.diff_cells = c.diffCells;
    if (c.cells.length) kv.cells = c.cells.join(';');
  }

  // 2. VBE mode: keys through VNC, or through QMP without one.
  const viewer = a.vnc === null ? null : await Viewer.open(a.vnc);
  /** Who types: this client, then (after the window without a client) a new one. */
  let keys = viewer;
  const type = async (text: string) => {
    if (keys) keys.type(text);
    else if (!(await qmpType(a.qmp, text))) kv.keys_qmp = 'failed';
  };
  const alive = () => {
    const e = guestError();
    if (e !== null) throw new Fail(`guest: error=${e}`);
  };
  try {
    await type('go');
    const mode = await waitMarker('mode', "the guest's VBE mode (E2E vga mode=)");
    kv.mode = mode;
    const m = /^(\d+)x(\d+)x(\d+)$/.exec(mode);
    const stride = Number(marker(a.serial, 'stride'));
    if (!m || m[3] !== '32' || !(stride > 0)) throw new Fail(`guest mode ${mode} stride ${stride}: the check knows 32 bpp only`);
    const pattern: FbPattern = { width: Number(m[1]), height: Number(m[2]), stride, text: Buffer.from(PATTERN_TEXT, 'latin1') };

    // 3. The pattern, timed at the VNC client.
    let tKey = -1;
    if (viewer && a.vncCrop) {
      viewer.crop = true;
      kv.vnc_size = `${viewer.width}x${viewer.height}`;
      viewer.expect(pattern);
      viewer.type('w');
      tKey = now();
    } else if (viewer) {
      await until(`the VNC picture to become ${pattern.width}x${pattern.height} (DesktopSize)`, 60_000, () => {
        if (viewer.error) throw new Fail(`VNC: ${viewer.error}`);
        return viewer.width === pattern.width && viewer.height === pattern.height ? true : null;
      });
      viewer.expect(pattern);
      viewer.type('w');
      tKey = now();
    } else await type('w');
    await waitMarker('fb', "the guest's 'E2E vga fb=written'");
    const tWritten = now();
    kv.readback = marker(a.serial, 'readback') ?? '?';
    if (viewer) {
      await until('the VNC picture to show the whole pattern', 120_000, () => {
        if (viewer.error) throw new Fail(`VNC: ${viewer.error}`);
        return viewer.matchAt >= 0 ? true : null;
      }).catch(async (e: unknown) => {
        // What was on the screen instead: the client's copy (vga-vnc-last.png) and the
        // device model's own screendump (vbe_bad_pixels), so a failure says which side lost it.
        kv.vnc_bad_pixels = viewer.bad;
        viewer.savePng(path.join(a.out, 'vnc-last.png'));
        kv.vnc_pixel0 = viewer.pixelHex(0, 0);
        await screens.take('vbe').then((vbe) => { kv.vbe_bad_pixels = checkPattern(vbe, pattern).bad; }, () => { kv.vbe_bad_pixels = '?'; });
        throw e;
      });
      kv.vnc = 'ok';
      kv.vnc_update_ms = Math.round(viewer.matchAt - tWritten);
      kv.vnc_from_key_ms = Math.round(viewer.matchAt - tKey);
      kv.vnc_updates = viewer.updates;
    } else {
      kv.vnc = 'none';
      await sleep(2000); // the guest's fbdev flushes its shadow buffer to VRAM within a few ticks
    }

    // 4. The VBE screendump.
    const vbe = await screens.take('vbe');
    const chk = checkPattern(vbe, pattern);
    kv.vbe_dump_ms = screens.ms.vbe;
    kv.vbe_bad_pixels = chk.bad;
    if (chk.bad) kv.vbe_first_bad = chk.first;
    const vref = reference(a.ref, 'vbe');
    if (vref && vref.width === vbe.width && vref.height === vbe.height) kv.vbe_match = comparePictures(vref, vbe).matchPercent.toFixed(3);

    // 5. The guest idles at its VBE mode: vga.sh measures the DM's CPU with our client connected, then without.
    if (a.cpuWindows) {
      if (viewer) {
        const u0 = viewer.updates;
        kv.vnc_idle_s = (await idleWindow(a.out, 'vnc', alive)).toFixed(1);
        if (viewer.error) throw new Fail(`VNC during the idle window: ${viewer.error}`);
        kv.vnc_idle_updates = viewer.updates - u0;
        viewer.close();
      }
      kv.novnc_idle_s = (await idleWindow(a.out, 'novnc', alive)).toFixed(1);
      if (a.vnc !== null) keys = await Viewer.open(a.vnc); // the keys that end the session
    }

    // 6. Let the guest go.
    await type('q');
    await sleep(500); // the keys are on their way before the socket closes
  } finally {
    viewer?.close();
    if (keys !== viewer) keys?.close();
  }
}

function line(kv: Record<string, string | number>): string {
  return Object.entries(kv)
    .map(([k, v]) => `${k}=${String(v).replace(/\s+/g, '_')}`)
    .join(' ');
}

async function main(): Promise<void> {
  const kv: Record<string, string | number> = {};
  try {
    await session(parseArgs(process.argv.slice(2)), kv);
    console.log(`OK ${line(kv)}`);
  } catch (e) {
    const why = e instanceof Fail ? e.message : `vga-tool: ${(e as Error).stack ?? String(e)}`;
    console.log(`FAIL ${why.split('\n')[0]} ${line(kv)}`.trim());
  }
  process.exit(0);
}

if (process.argv[1] && /vga-tool\.(ts|mjs)$/.test(process.argv[1])) void main();
