/**
 * QMP, transport-agnostic: a session turns one input line into reply lines,
 * and the core pushes events to every negotiated session. The unix-socket
 * server (server.ts) and, in a stub domain, a vchan proxy only move lines.
 *
 * Framing as libxl expects it (docs/xen-contract.md §11): one single-line JSON object
 * per message; the transport appends "\r\n". Replies echo the request's
 * `id` verbatim. Error classes are QEMU's (libxl maps them by name).
 */

import fs from 'node:fs';
import path from 'node:path';
import { FdSetError, FdSets, parseFdsetPath } from './fdsets.ts';
import { loadUnixSock } from './unixsock.ts';
import { HmpError, MAX_HMP_LINE, POWERDOWN_REFUSED, runHmp, setHmpVersion, wakeup } from './hmp.ts';

/** QEMU's run states as query-status reports them (the ones that apply to us). */
export type RunState = 'prelaunch' | 'running' | 'paused' | 'shutdown' | 'inmigrate';

export interface ChardevInfo {
  label: string;
  filename: string;
  'frontend-open': boolean;
}

/** What QMP can see and do on the running device model. */
export interface QmpMachine {
  runState(): RunState;
  /** Start or resume (QMP cont). */
  cont(): void;
  /** Pause (QMP stop). */
  stop(): void;
  /** QMP quit: called after the reply has been handed to the transport. */
  quit(): void;
  chardevs(): ChardevInfo[];
  readonly vcpus: number;
  readonly name: string | null;
  /**
   * xen-set-global-dirty-log: libxc drives Xen's log-dirty mode; while it is
   * on, pages the device model writes (DMA) must be reported to Xen.
   */
  setGlobalDirtyLog(enable: boolean): void;
  /**
   * xen-save-devices-state: write every device's state to `fd` (the guest's
   * vCPUs are stopped first if they run). Resolves with the bytes of state.
   * Absent: the command answers an error.
   */
  saveDevicesState?(fd: number, live: boolean): Promise<number>;
  /** xen-load-devices-state / migrate-incoming: read a state from `fd` and load it; refused while running. */
  loadDevicesState?(fd: number): Promise<void>;
  /** query-vnc: where the VNC server listens, or null when there is none. */
  vncInfo?(): { host: string; service: string; family: 'ipv4' | 'ipv6'; auth: string } | null;
  /** change-vnc-password (libxl sends it when the guest config has vncpasswd). */
  changeVncPassword?(password: string): void;
  /** screendump: the screen as an encoded picture, or null when the machine has no display. */
  screendump?(format: 'ppm' | 'png'): Buffer | null;
  /**
   * Before a picture is written to `fd`: a tty (a stub domain's console named
   * by an fd set) must go raw, or its output processing turns every 0x0a byte
   * into 0x0d 0x0a. Absent: the bytes are written as they are.
   */
  rawOutput?(fd: number): void;
  /** query-block: the IDE drives in QEMU's BlockInfo shape. */
  queryBlock?(): unknown[];
  /** query-blockstats: per drive, QEMU's BlockStats shape (what xentop reads through libxenstat). */
  queryBlockstats?(): unknown[];
  /** query-stats (target vm): the live counters, QEMU's StatsResult shape. */
  queryStats?(): unknown[];
  /**
   * eject (xl cd-eject, and the first step of xl cd-insert): by backend name
   * (`device`) or -device id (`id`). Throws an Error named MediaError
   * (`notFound` set for an unknown drive) when refused.
   */
  eject?(device: string | undefined, id: string | undefined, force: boolean): Promise<void>;
  /**
   * blockdev-change-medium: `path` is what to open (a descriptor of an fd set
   * is reopened through /proc/self/fd), `shownAs` the name QMP gave.
   */
  changeMedium?(device: string | undefined, id: string | undefined, path: string, shownAs: string, format: 'raw' | 'host_device', force: boolean): Promise<void>;
  /** system_reset (QMP and HMP): the guest reboots (under Xen: the domain is rebooted by the toolstack). */
  systemReset?(): void;
  /** system_wakeup from S3; absent: the guest cannot be suspended. Throws when it is not suspended. */
  systemWakeup?(): void;
  /** HMP sendkey: QEMU key names (ctrl, alt, delete, a...), pressed in order then released in reverse. */
  sendKey?(names: string[]): void;
  /** The machine's part of HMP `info`: text in QEMU's layout, "\n" line ends. */
  hmpInfo?: { block?(): string; blockstats?(): string; stats?(): string; pci?(): string; network?(): string; restrict?(): string; nettrace?(): string; disktrace?(): string };
}

/** What the core does with descriptors (the native addon and fs in production; fakes in tests). */
export interface FdOps {
  /** O_ACCMODE: 0 read-only, 1 write-only, 2 read-write. Throws for a closed fd. */
  accessMode(fd: number): number;
  close(fd: number): void;
}

/** Descriptors a connection received and no command took yet: more are closed on arrival. */
export const MAX_PENDING_FDS = 4;
/** Longest file name QMP accepts (PATH_MAX). */
const MAX_PATH = 4096;

/** The QEMU version we claim: >= 2.12 keeps libxl on its modern paths (live save, query-cpus-fast); >= 2.8 makes xl cd-insert name drives by `id`. */
export const QEMU_VERSION = { micro: 0, minor: 2, major: 8 } as const;
setHmpVersion(QEMU_VERSION);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Args = { [k: string]: Json };

class QmpError extends Error {
  constructor(
    readonly cls: 'GenericError' | 'CommandNotFound' | 'DeviceNotFound' | 'DeviceNotActive',
    desc: string,
  ) {
    super(desc);
  }
}

interface Command {
  /** Argument name -> JSON type; anything else is refused like QEMU does. */
  args: Record<string, { type: 'boolean' | 'string' | 'array' | 'object' | 'integer'; optional?: boolean }>;
  run(m: QmpMachine, a: Args, s: QmpSession): Json | Promise<Json>;
}

/** An integer argument QEMU types as int64: we take 0..2^31-1. */
function intArg(a: Args, k: string): number | null {
  const v = a[k];
  if (v === undefined) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new QmpError('GenericError', `Parameter '${k}' is out of range`);
  return v;
}

/**
 * A file name in a save/load command -> a descriptor: `/dev/fdset/N` is a
 * descriptor of that set (kept open: the set owns it); an absolute path is
 * opened (and closed by the caller). Anything else is refused.
 */
function openStateFile(s: QmpSession, name: string, want: 'read' | 'write'): { fd: number; owned: boolean } {
  if (name.length === 0 || name.length > MAX_PATH || name.includes('\0')) throw new QmpError('GenericError', 'bad file name');
  let id: number | null;
  try {
    id = parseFdsetPath(name);
    if (id !== null) return { fd: s.core.fdsets.find(id, want, (fd) => s.core.fdOps.accessMode(fd)), owned: false };
  } catch (e) {
    if (e instanceof FdSetError) throw new QmpError('GenericError', e.message);
    throw e;
  }
  if (!path.isAbsolute(name)) throw new QmpError('GenericError', `file name '${name}' is not absolute`);
  try {
    return { fd: fs.openSync(name, want === 'read' ? 'r' : 'w', 0o600), owned: true };
  } catch (e) {
    throw new QmpError('GenericError', `cannot open ${name}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/**
 * The file a new medium is opened from: `/dev/fdset/N` -> a descriptor of
 * that set open for reading, reopened as /proc/self/fd/<fd> (the set's
 * descriptor belongs to the QMP connection and is closed with it: libxl
 * disconnects right after blockdev-change-medium; QEMU dup()s it instead,
 * which Node cannot). An absolute path is opened as it is.
 */
function mediumPath(s: QmpSession, name: string): string {
  if (name.length === 0 || name.length > MAX_PATH || name.includes('\0')) throw new QmpError('GenericError', 'bad file name');
  try {
    const id = parseFdsetPath(name);
    if (id !== null) return `/proc/self/fd/${s.core.fdsets.find(id, 'read', (fd) => s.core.fdOps.accessMode(fd))}`;
  } catch (e) {
    if (e instanceof FdSetError) throw new QmpError('GenericError', e.message);
    throw e;
  }
  if (!path.isAbsolute(name)) throw new QmpError('GenericError', `file name '${name.slice(0, 64)}' is not absolute`);
  return name;
}

/** Run `f` on the descriptor `filename` names, closing it afterwards if we opened it. */
async function withStateFile<T>(s: QmpSession, filename: string, want: 'read' | 'write', f: (fd: number) => Promise<T>): Promise<T> {
  const { fd, owned } = openStateFile(s, filename, want);
  try {
    return await f(fd);
  } finally {
    if (owned) fs.closeSync(fd);
  }
}

/** Errors a machine throws for bad state or a refused operation: passed to the client as GenericError. */
function asQmpError(e: unknown): never {
  if (e instanceof QmpError) throw e;
  if (e instanceof Error && e.name === 'MediaError') throw new QmpError((e as { notFound?: boolean }).notFound ? 'DeviceNotFound' : 'GenericError', e.message);
  if (e instanceof HmpError) throw new QmpError('GenericError', e.message);
  if (e instanceof Error && (e.name === 'StateError' || e.name === 'MigrationError')) throw new QmpError('GenericError', e.message);
  throw e;
}

/** `migrate-incoming` URIs we take: fd:N (a descriptor this process has) and file:PATH. */
function incomingUriFd(uri: string): { fd: number; owned: boolean } {
  const m = /^fd:(0|[1-9][0-9]{0,8})$/.exec(uri);
  if (m) return { fd: Number(m[1]), owned: false };
  if (uri.startsWith('file:')) {
    const p = uri.slice(5);
    if (!path.isAbsolute(p) || p.length > MAX_PATH || p.includes('\0')) throw new QmpError('GenericError', `bad file name in '${uri}'`);
    try {
      return { fd: fs.openSync(p, 'r'), owned: true };
    } catch (e) {
      throw new QmpError('GenericError', `cannot open ${p}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  throw new QmpError('GenericError', `migrate-incoming: URI '${uri.slice(0, 64)}' is not supported (fd:N or file:PATH)`);
}

function timestamp(): Json {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), microseconds: (ms % 1000) * 1000 };
}

/** The commands, as a table. */
const COMMANDS: Record<string, Command> = {
  qmp_capabilities: {
    args: { enable: { type: 'array', optional: true } },
    run: (_m, a, s) => {
      if (Array.isArray(a.enable) && a.enable.length > 0) {
        throw new QmpError('GenericError', `Capability '${String(a.enable[0])}' not available`);
      }
      s.negotiated = true;
      return {};
    },
  },
  'query-status': {
    args: {},
    run: (m) => {
      const st = m.runState();
      return { status: st, running: st === 'running', singlestep: false };
    },
  },
  'query-version': {
    args: {},
    run: () => ({ qemu: { ...QEMU_VERSION }, package: 'stubdm' }),
  },
  'query-name': {
    args: {},
    run: (m): Json => (m.name === null ? {} : { name: m.name }),
  },
  'query-chardev': {
    args: {},
    run: (m) => m.chardevs().map((c) => ({ ...c })),
  },
  'query-vnc': {
    args: {},
    // libxl writes host and service to console/vnc-listen and vnc-port: what `xl vncviewer` connects to.
    run: (m): Json => {
      const v = m.vncInfo?.() ?? null;
      return v === null ? { enabled: false } : { enabled: true, host: v.host, service: v.service, family: v.family, auth: v.auth, clients: [] };
    },
  },
  'change-vnc-password': {
    args: { password: { type: 'string' } },
    run: (m, a) => {
      if (!m.changeVncPassword) throw new QmpError('GenericError', 'Could not set password');
      m.changeVncPassword(a.password as string);
      return {};
    },
  },
  'query-kvm': {
    args: {},
    run: () => ({ enabled: false, present: false }),
  },
  'query-cpus-fast': {
    args: {},
    run: (m) => {
      const out: Json[] = [];
      for (let i = 0; i < m.vcpus; i++) {
        out.push({
          'cpu-index': i,
          'qom-path': `/machine/unattached/device[${i}]`,
          'thread-id': process.pid,
          props: { 'core-id': 0, 'thread-id': 0, 'socket-id': i },
          target: 'x86_64',
        });
      }
      return out;
    },
  },
  'query-commands': {
    args: {},
    run: () => Object.keys(COMMANDS).map((name) => ({ name })),
  },
  cont: {
    args: {},
    run: (m) => {
      try {
        m.cont();
      } catch (e) {
        asQmpError(e);
      }
      return {};
    },
  },
  stop: {
    args: {},
    run: (m) => {
      m.stop();
      return {};
    },
  },
  quit: {
    args: {},
    run: (_m, _a, s) => {
      s.quitRequested = true;
      return {};
    },
  },
  'xen-set-global-dirty-log': {
    args: { enable: { type: 'boolean' } },
    run: (m, a) => {
      m.setGlobalDirtyLog(a.enable === true);
      return {};
    },
  },
  'add-fd': {
    args: { 'fdset-id': { type: 'integer', optional: true }, opaque: { type: 'string', optional: true } },
    run: (_m, a, s) => {
      const id = intArg(a, 'fdset-id');
      const fd = s.takeFd();
      if (fd === null) throw new QmpError('GenericError', 'No file descriptor supplied via SCM_RIGHTS');
      try {
        const set = s.core.fdsets.add(fd, id, typeof a.opaque === 'string' ? a.opaque : null, s);
        return { 'fdset-id': set, fd };
      } catch (e) {
        s.core.fdOps.close(fd);
        if (e instanceof FdSetError) throw new QmpError('GenericError', e.message);
        throw e;
      }
    },
  },
  'remove-fd': {
    args: { 'fdset-id': { type: 'integer' }, fd: { type: 'integer', optional: true } },
    run: (_m, a, s) => {
      try {
        s.core.fdsets.remove(intArg(a, 'fdset-id')!, intArg(a, 'fd'));
      } catch (e) {
        if (e instanceof FdSetError) throw new QmpError('GenericError', e.message);
        throw e;
      }
      return {};
    },
  },
  'query-fdsets': {
    args: {},
    run: (_m, _a, s) => s.core.fdsets.query() as Json,
  },
  screendump: {
    args: {
      filename: { type: 'string' },
      device: { type: 'string', optional: true },
      head: { type: 'integer', optional: true },
      format: { type: 'string', optional: true },
    },
    run: async (m, a, s) => {
      const format = a.format ?? 'ppm';
      if (format !== 'ppm' && format !== 'png') throw new QmpError('GenericError', `Parameter 'format' does not accept value '${String(format).slice(0, 32)}'`);
      if (a.device !== undefined && a.device !== 'vga') throw new QmpError('DeviceNotFound', `Device '${String(a.device).slice(0, 64)}' not found`);
      if ((intArg(a, 'head') ?? 0) !== 0) throw new QmpError('GenericError', 'Head 1 of the display does not exist');
      const pic = m.screendump?.(format) ?? null;
      if (pic === null) throw new QmpError('GenericError', 'There is no console to take a screendump from.');
      await withStateFile(s, a.filename as string, 'write', async (fd) => {
        m.rawOutput?.(fd);
        for (let off = 0; off < pic.length; ) off += fs.writeSync(fd, pic, off, pic.length - off);
      });
      return {};
    },
  },
  'query-block': {
    args: {},
    run: (m) => (m.queryBlock?.() ?? []) as Json,
  },
  'query-blockstats': {
    args: { 'query-nodes': { type: 'boolean', optional: true } },
    run: (m) => (m.queryBlockstats?.() ?? []) as Json,
  },
  'query-stats': {
    args: { target: { type: 'string' }, providers: { type: 'array', optional: true }, vcpus: { type: 'array', optional: true } },
    run: (m, a) => {
      const t = a.target;
      if (t !== 'vm' && t !== 'vcpu' && t !== 'cryptodev') throw new QmpError('GenericError', `Parameter 'target' does not accept value '${String(t).slice(0, 32)}'`);
      // Only the machine's own counters exist (provider stubdm); QEMU answers [] for a provider with nothing to say.
      if (t !== 'vm') return [];
      const wanted = a.providers as Json[] | undefined;
      if (wanted !== undefined && !wanted.some((p) => p !== null && typeof p === 'object' && !Array.isArray(p) && p.provider === 'stubdm')) return [];
      return (m.queryStats?.() ?? []) as Json;
    },
  },
  eject: {
    args: { device: { type: 'string', optional: true }, id: { type: 'string', optional: true }, force: { type: 'boolean', optional: true } },
    run: async (m, a) => {
      if (!m.eject) throw new QmpError('GenericError', 'this device model has no removable media');
      try {
        await m.eject(a.device as string | undefined, a.id as string | undefined, a.force === true);
      } catch (e) {
        asQmpError(e);
      }
      return {};
    },
  },
  'blockdev-change-medium': {
    args: {
      device: { type: 'string', optional: true },
      id: { type: 'string', optional: true },
      filename: { type: 'string' },
      format: { type: 'string', optional: true },
      force: { type: 'boolean', optional: true },
      'read-only-mode': { type: 'string', optional: true },
    },
    run: async (m, a, s) => {
      if (!m.changeMedium) throw new QmpError('GenericError', 'this device model has no removable media');
      const format = a.format ?? 'raw';
      // libxl sends format "raw" for raw images; qcow2 and the rest are not served (one clear error).
      if (format !== 'raw' && format !== 'host_device') throw new QmpError('GenericError', `format '${String(format).slice(0, 32)}' is not supported (raw or host_device)`);
      const mode = a['read-only-mode'];
      if (mode !== undefined && mode !== 'retain' && mode !== 'read-only' && mode !== 'read-write') {
        throw new QmpError('GenericError', `Parameter 'read-only-mode' does not accept value '${String(mode).slice(0, 32)}'`);
      }
      // A CD is read-only whatever the mode: 'read-write' gets the error QEMU gives for a read-only device.
      if (mode === 'read-write') throw new QmpError('GenericError', 'Block node is read-only');
      const name = a.filename as string;
      const fdPath = mediumPath(s, name);
      try {
        await m.changeMedium(a.device as string | undefined, a.id as string | undefined, fdPath, name, format, a.force === true);
      } catch (e) {
        asQmpError(e);
      }
      return {};
    },
  },
  'human-monitor-command': {
    args: { 'command-line': { type: 'string' }, 'cpu-index': { type: 'integer', optional: true } },
    run: async (m, a) => {
      const line = a['command-line'] as string;
      if (line.length > MAX_HMP_LINE) throw new QmpError('GenericError', `command line longer than ${MAX_HMP_LINE} characters`);
      if ((intArg(a, 'cpu-index') ?? 0) >= m.vcpus) throw new QmpError('GenericError', `Parameter 'cpu-index' expects a CPU number`);
      return await runHmp(m, line);
    },
  },
  system_reset: {
    args: {},
    run: (m) => {
      if (!m.systemReset) throw new QmpError('GenericError', 'system_reset is not available in this device model');
      m.systemReset();
      return {};
    },
  },
  system_powerdown: {
    args: {},
    run: () => {
      throw new QmpError('GenericError', POWERDOWN_REFUSED);
    },
  },
  system_wakeup: {
    args: {},
    run: (m) => {
      try {
        wakeup(m);
      } catch (e) {
        asQmpError(e);
      }
      return {};
    },
  },
  'xen-save-devices-state': {
    args: { filename: { type: 'string' }, live: { type: 'boolean', optional: true } },
    run: async (m, a, s) => {
      const save = m.saveDevicesState?.bind(m);
      if (save === undefined) throw new QmpError('GenericError', 'this device model cannot save device state');
      await withStateFile(s, a.filename as string, 'write', (fd) => save(fd, a.live === true)).catch(asQmpError);
      return {};
    },
  },
  'xen-load-devices-state': {
    args: { filename: { type: 'string' } },
    run: async (m, a, s) => {
      const load = m.loadDevicesState?.bind(m);
      if (load === undefined) throw new QmpError('GenericError', 'this device model cannot load device state');
      if (m.runState() === 'running') throw new QmpError('GenericError', 'Cannot update device state while vm is running');
      await withStateFile(s, a.filename as string, 'read', (fd) => load(fd)).catch(asQmpError);
      return {};
    },
  },
  'migrate-incoming': {
    args: { uri: { type: 'string' } },
    run: async (m, a) => {
      const load = m.loadDevicesState?.bind(m);
      if (load === undefined) throw new QmpError('GenericError', 'this device model cannot load device state');
      if (m.runState() !== 'inmigrate') throw new QmpError('GenericError', "'-incoming' was not specified on the command line");
      const { fd, owned } = incomingUriFd(a.uri as string);
      try {
        await load(fd).catch(asQmpError);
      } finally {
        if (owned) fs.closeSync(fd);
      }
      return {};
    },
  },
};

function jsonType(v: Json, want: string): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (want === 'integer' && typeof v === 'number' && Number.isInteger(v)) return 'integer';
  return typeof v;
}

export class QmpSession {
  negotiated = false;
  /** Set by `quit`: the transport closes after sending the reply, then the core calls machine.quit(). */
  quitRequested = false;
  /** Descriptors received with input (SCM_RIGHTS) that no command took yet, oldest first. */
  private readonly fds: number[] = [];
  private closed = false;

  constructor(
    readonly core: QmpCore,
    /** Where events go (the transport adds "\r\n"). */
    readonly sendEvent: (line: string) => void,
  ) {}

  /**
   * Descriptors that arrived with the input (the transport calls this before
   * handing over the bytes they came with). Beyond MAX_PENDING_FDS they are closed.
   */
  receiveFds(fds: readonly number[]): void {
    for (const fd of fds) {
      if (this.closed || this.fds.length >= MAX_PENDING_FDS) this.core.fdOps.close(fd);
      else this.fds.push(fd);
    }
  }

  /** The oldest received descriptor no command took yet (add-fd), or null. */
  takeFd(): number | null {
    return this.fds.shift() ?? null;
  }

  /**
   * One input line (without its line end) -> the reply lines, for commands
   * that answer at once; a command that needs time (saving, loading state)
   * answers an error here: transports use handle(). Never throws.
   */
  input(line: string): string[] {
    const p = this.prepare(line);
    if (!('cmd' in p)) return p.reply;
    const r = this.execute(p);
    if (r instanceof Promise) {
      r.catch(() => {});
      return [this.error(p.id, 'GenericError', `${p.name} needs an asynchronous transport`)];
    }
    return r;
  }

  /**
   * One input message -> the reply lines: at once (no promise) for a command
   * that answers at once, a promise for one that takes time. Never throws;
   * the promise never rejects.
   */
  handle(line: string): string[] | Promise<string[]> {
    const p = this.prepare(line);
    if (!('cmd' in p)) return p.reply;
    return this.execute(p);
  }

  private prepare(line: string): { reply: string[] } | { cmd: Command; name: string; id: Json | undefined; args: Args } {
    const text = line.trim();
    if (text === '') return { reply: [] };
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return { reply: [this.failed(undefined, undefined, 'GenericError', 'JSON parse error, invalid input')] };
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
      return { reply: [this.failed(undefined, undefined, 'GenericError', 'QMP input must be a JSON object')] };
    }
    const req = msg as { [k: string]: Json };
    const id = req.id;
    const fail = (cls: string, desc: string) => ({ reply: [this.failed(id, typeof req.execute === 'string' ? req.execute : undefined, cls, desc)] });
    for (const k of Object.keys(req)) {
      if (k !== 'execute' && k !== 'arguments' && k !== 'id') return fail('GenericError', `QMP input member '${k}' is unexpected`);
    }
    if (!('execute' in req)) return fail('GenericError', "QMP input lacks member 'execute'");
    const name = req.execute;
    if (typeof name !== 'string') return fail('GenericError', "QMP input member 'execute' must be a string");
    const args = req.arguments ?? {};
    if (args === null || typeof args !== 'object' || Array.isArray(args)) {
      return fail('GenericError', "QMP input member 'arguments' must be an object");
    }
    if (!this.negotiated && name !== 'qmp_capabilities') {
      return fail('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
    }
    if (this.negotiated && name === 'qmp_capabilities') {
      return fail('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
    }
    const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (cmd === undefined) return fail('CommandNotFound', `The command ${name} has not been found`);
    for (const [k, v] of Object.entries(args)) {
      const spec = Object.hasOwn(cmd.args, k) ? cmd.args[k] : undefined;
      if (spec === undefined) return fail('GenericError', `Parameter '${k}' is unexpected`);
      if (jsonType(v, spec.type) !== spec.type) {
        return fail('GenericError', `Invalid parameter type for '${k}', expected: ${spec.type}`);
      }
    }
    for (const [k, spec] of Object.entries(cmd.args)) {
      if (!spec.optional && !Object.hasOwn(args, k)) return fail('GenericError', `Parameter '${k}' is missing`);
    }
    return { cmd, name, id, args };
  }

  private execute(p: { cmd: Command; name: string; id: Json | undefined; args: Args }): string[] | Promise<string[]> {
    const ok = (ret: Json) => [JSON.stringify(p.id === undefined ? { return: ret } : { return: ret, id: p.id })];
    const bad = (err: unknown) => {
      if (err instanceof QmpError) return [this.failed(p.id, p.name, err.cls, err.message)];
      this.core.onInternalError(p.name, err);
      return [this.error(p.id, 'GenericError', `internal error running ${p.name}`)];
    };
    try {
      const ret = p.cmd.run(this.core.machine, p.args, this);
      if (ret instanceof Promise) return ret.then(ok, bad);
      return ok(ret);
    } catch (err) {
      return bad(err);
    }
  }

  /** The transport closed this session: descriptors it received or added are closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.fds.splice(0)) this.core.fdOps.close(fd);
    this.core.drop(this);
  }

  /** An error reply the operator sees in the log too (internal errors are logged by onInternalError instead). */
  private failed(id: Json | undefined, command: string | undefined, cls: string, desc: string): string {
    this.core.onCommandFailed(command, cls, desc);
    return this.error(id, cls, desc);
  }

  private error(id: Json | undefined, cls: string, desc: string): string {
    const e = { error: { class: cls, desc } };
    return JSON.stringify(id === undefined ? e : { ...e, id });
  }
}

/** Descriptor operations of the real process: close with fs, access mode from the native addon (loaded on first use). */
export const processFdOps: FdOps = {
  accessMode: (fd) => loadUnixSock().accessMode(fd),
  close: (fd) => fs.closeSync(fd),
};

export class QmpCore {
  private readonly sessions = new Set<QmpSession>();
  /** add-fd / -add-fd sets, shared by every connection as in QEMU. */
  readonly fdsets: FdSets;

  constructor(
    readonly machine: QmpMachine,
    readonly onInternalError: (command: string, err: unknown) => void = () => {},
    readonly fdOps: FdOps = processFdOps,
    /**
     * Every command refused with an error reply (unknown, bad arguments, or
     * the machine said no): libxl reports only "QMP command failed" to the
     * operator, so the error itself is worth a line in our log.
     */
    readonly onCommandFailed: (command: string | undefined, cls: string, desc: string) => void = () => {},
  ) {
    this.fdsets = new FdSets((fd) => fdOps.close(fd));
  }

  greeting(): string {
    return JSON.stringify({ QMP: { version: { qemu: { ...QEMU_VERSION }, package: 'stubdm' }, capabilities: [] } });
  }

  open(sendEvent: (line: string) => void): QmpSession {
    const s = new QmpSession(this, sendEvent);
    this.sessions.add(s);
    return s;
  }

  drop(s: QmpSession): void {
    this.sessions.delete(s);
    this.fdsets.dropOwner(s);
  }

  /** A QMP event (STOP, RESUME, SHUTDOWN...) to every session past capabilities negotiation. */
  emit(event: string, data?: { [k: string]: Json }): void {
    const msg: { [k: string]: Json } = { event, timestamp: timestamp() };
    if (data !== undefined) msg.data = data;
    const line = JSON.stringify(msg);
    for (const s of this.sessions) if (s.negotiated) s.sendEvent(line);
  }
}
