/**
 * QMP, transport-agnostic: a session turns one input line into reply lines,
 * and the core pushes events to every negotiated session. The unix-socket
 * server (server.ts) and, in a stub domain, a vchan proxy only move lines.
 *
 * Framing as libxl expects it (docs/xen-contract.md §11): one single-line JSON object
 * per message; the transport appends "\r\n". Replies echo the request's
 * `id` verbatim. Error classes are QEMU's (libxl maps them by name).
 */

/** QEMU's run states as query-status reports them (the ones that apply to us). */
export type RunState = 'prelaunch' | 'running' | 'paused' | 'shutdown';

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
  /** xen-set-global-dirty-log; libxc drives the real log dirty mode, we only record it. */
  setGlobalDirtyLog(enable: boolean): void;
}

/** The QEMU version we claim: >= 2.12 keeps libxl on its modern paths (live save, query-cpus-fast). */
export const QEMU_VERSION = { micro: 0, minor: 2, major: 8 } as const;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Args = { [k: string]: Json };

class QmpError extends Error {
  constructor(
    readonly cls: 'GenericError' | 'CommandNotFound' | 'DeviceNotFound',
    desc: string,
  ) {
    super(desc);
  }
}

interface Command {
  /** Argument name -> JSON type; anything else is refused like QEMU does. */
  args: Record<string, { type: 'boolean' | 'string' | 'array' | 'object'; optional?: boolean }>;
  run(m: QmpMachine, a: Args, s: QmpSession): Json;
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
    run: () => ({ enabled: false }),
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
      m.cont();
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
  'xen-save-devices-state': {
    args: { filename: { type: 'string' }, live: { type: 'boolean', optional: true } },
    run: () => {
      throw new QmpError('GenericError', 'saving device state is not supported by stubdm yet');
    },
  },
};

function jsonType(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

export class QmpSession {
  negotiated = false;
  /** Set by `quit`: the transport closes after sending the reply, then the core calls machine.quit(). */
  quitRequested = false;

  constructor(
    private readonly core: QmpCore,
    /** Where events go (the transport adds "\r\n"). */
    readonly sendEvent: (line: string) => void,
  ) {}

  /** One input line (without its line end) -> the reply lines. Never throws. */
  input(line: string): string[] {
    const text = line.trim();
    if (text === '') return [];
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return [this.error(undefined, 'GenericError', 'JSON parse error, invalid input')];
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
      return [this.error(undefined, 'GenericError', 'QMP input must be a JSON object')];
    }
    const req = msg as { [k: string]: Json };
    const id = req.id;
    for (const k of Object.keys(req)) {
      if (k !== 'execute' && k !== 'arguments' && k !== 'id') {
        return [this.error(id, 'GenericError', `QMP input member '${k}' is unexpected`)];
      }
    }
    if (!('execute' in req)) return [this.error(id, 'GenericError', "QMP input lacks member 'execute'")];
    const name = req.execute;
    if (typeof name !== 'string') return [this.error(id, 'GenericError', "QMP input member 'execute' must be a string")];
    const args = req.arguments ?? {};
    if (args === null || typeof args !== 'object' || Array.isArray(args)) {
      return [this.error(id, 'GenericError', "QMP input member 'arguments' must be an object")];
    }
    if (!this.negotiated && name !== 'qmp_capabilities') {
      return [this.error(id, 'CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'")];
    }
    if (this.negotiated && name === 'qmp_capabilities') {
      return [this.error(id, 'CommandNotFound', 'Capabilities negotiation is already complete, command ignored')];
    }
    const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (cmd === undefined) return [this.error(id, 'CommandNotFound', `The command ${name} has not been found`)];
    for (const [k, v] of Object.entries(args)) {
      const spec = cmd.args[k];
      if (spec === undefined) return [this.error(id, 'GenericError', `Parameter '${k}' is unexpected`)];
      if (jsonType(v) !== spec.type) {
        return [this.error(id, 'GenericError', `Invalid parameter type for '${k}', expected: ${spec.type}`)];
      }
    }
    for (const [k, spec] of Object.entries(cmd.args)) {
      if (!spec.optional && !(k in args)) return [this.error(id, 'GenericError', `Parameter '${k}' is missing`)];
    }
    try {
      const ret = cmd.run(this.core.machine, args, this);
      return [JSON.stringify(id === undefined ? { return: ret } : { return: ret, id })];
    } catch (err) {
      if (err instanceof QmpError) return [this.error(id, err.cls, err.message)];
      this.core.onInternalError(name, err);
      return [this.error(id, 'GenericError', `internal error running ${name}`)];
    }
  }

  /** The transport closed this session. */
  close(): void {
    this.core.drop(this);
  }

  private error(id: Json | undefined, cls: string, desc: string): string {
    const e = { error: { class: cls, desc } };
    return JSON.stringify(id === undefined ? e : { ...e, id });
  }
}

export class QmpCore {
  private readonly sessions = new Set<QmpSession>();

  constructor(
    readonly machine: QmpMachine,
    readonly onInternalError: (command: string, err: unknown) => void = () => {},
  ) {}

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
  }

  /** A QMP event (STOP, RESUME, SHUTDOWN...) to every session past capabilities negotiation. */
  emit(event: string, data?: { [k: string]: Json }): void {
    const msg: { [k: string]: Json } = { event, timestamp: timestamp() };
    if (data !== undefined) msg.data = data;
    const line = JSON.stringify(msg);
    for (const s of this.sessions) if (s.negotiated) s.sendEvent(line);
  }
}
