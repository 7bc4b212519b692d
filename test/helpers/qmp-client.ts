/**
 * The QMP client the tests use, talking the way libxl does (libxl_qmp.c):
 * connect, read the greeting, then one compact JSON object per "\r\n" line
 * each way, replies matched to requests by integer id. It is deliberately
 * dumb about content: tests assert on the exact messages it hands back.
 */
import net from 'node:net';

/** One message from the server: a greeting, a reply or an event. Loose on purpose: tests dig into it. */
export type QmpMessage = Record<string, any>;

export interface QmpClient {
  /** The first line the server sent ({"QMP": ...}). */
  readonly greeting: QmpMessage;
  /** The raw socket, for tests that write partial or malformed frames themselves. */
  readonly sock: net.Socket;
  /** Events that cmd() passed over while waiting for its reply, in arrival order. */
  readonly events: QmpMessage[];
  /** The next message in arrival order (reply or event), or null once the connection has closed. */
  next(): Promise<QmpMessage | null>;
  /** Send one line: an object as compact JSON, a string as it is (so tests can send garbage). */
  send(msg: object | string): void;
  /**
   * Send `execute` with the next id (1, 2, ... per connection) and resolve with
   * the reply carrying that id. Events on the way go to `events`; a reply with
   * another id, or the connection closing first, rejects (libxl treats both as
   * protocol errors too).
   */
  cmd(execute: string, args?: object): Promise<QmpMessage>;
  /** End our side and resolve once the connection is closed. */
  close(): Promise<void>;
}

export interface QmpConnectOptions {
  /** How long next() waits for a message before rejecting; a hung server fails the test instead of stalling it. */
  timeoutMs?: number;
}

/** A unix socket path, a socket (connected or connecting), or a connected stream fd. */
export type QmpTarget = string | net.Socket | number;

/** Connect and read the greeting. Rejects if the connection fails or closes before the greeting. */
export async function connectQmp(target: QmpTarget, opts: QmpConnectOptions = {}): Promise<QmpClient> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const sock =
    typeof target === 'string' ? net.createConnection(target) : typeof target === 'number' ? new net.Socket({ fd: target }) : target;
  if (sock.connecting) {
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(e);
      sock.once('error', fail);
      sock.once('connect', () => {
        sock.off('error', fail);
        resolve();
      });
    });
  }
  // After connecting, a reset (the server closed on us) is just the end of the stream.
  sock.on('error', () => {});
  sock.setEncoding('utf8');

  const queue: QmpMessage[] = [];
  const waiters: Array<(m: QmpMessage | null) => void> = [];
  let buf = '';
  let closed = false;
  sock.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\r\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, i)) as QmpMessage;
      buf = buf.slice(i + 2);
      const w = waiters.shift();
      if (w) w(m);
      else queue.push(m);
    }
  });
  const closedP = new Promise<void>((resolve) =>
    sock.once('close', () => {
      closed = true;
      for (const w of waiters.splice(0)) w(null);
      resolve();
    }),
  );

  const next = (): Promise<QmpMessage | null> => {
    const m = queue.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (closed || sock.destroyed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = waiters.indexOf(take);
        if (at >= 0) waiters.splice(at, 1);
        reject(new Error(`QMP: no message within ${timeoutMs} ms`));
      }, timeoutMs);
      const take = (x: QmpMessage | null) => {
        clearTimeout(timer);
        resolve(x);
      };
      waiters.push(take);
    });
  };

  const greeting = await next();
  if (greeting === null) throw new Error('QMP: connection closed before the greeting');

  const events: QmpMessage[] = [];
  let id = 0;
  const send = (msg: object | string): void => {
    sock.write((typeof msg === 'string' ? msg : JSON.stringify(msg)) + '\r\n');
  };
  return {
    greeting,
    sock,
    events,
    next,
    send,
    async cmd(execute, args) {
      const my = ++id;
      send(args ? { execute, arguments: args, id: my } : { execute, id: my });
      for (;;) {
        const m = await next();
        if (m === null) throw new Error(`QMP: connection closed while waiting for id ${my}`);
        if (m.id === my) return m;
        if ('event' in m) events.push(m);
        else throw new Error(`QMP: reply ${JSON.stringify(m)} while waiting for id ${my}`);
      }
    },
    close() {
      sock.end();
      return closedP;
    },
  };
}

/**
 * Connect to a socket that may not exist yet, retrying the way libxl does
 * (it retries connect() until the device model listens). Resolves with null
 * if it never came up within `tries` attempts.
 */
export async function connectQmpRetry(path: string, tries = 500, intervalMs = 20): Promise<QmpClient | null> {
  for (let i = 0; i < tries; i++) {
    try {
      return await connectQmp(path);
    } catch {
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
  return null;
}
