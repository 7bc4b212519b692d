/**
 * Socket chardevs for a serial port: TCP or unix, listening or connecting
 * (`-serial tcp:HOST:PORT,server=on,wait=off`, `-chardev socket,...`).
 *
 * One peer at a time, as in QEMU: a listener serves one client and turns
 * further ones away until it hangs up; a client connects at start (a failure
 * stops start-up with one line) and, with reconnect=S, tries again every S
 * seconds after a failure or a hang-up. While no peer is connected the
 * guest's output is dropped, as on a serial line with nothing plugged in.
 *
 * Memory is bounded by SOCKET_MAX_PENDING: a peer that never reads fills its
 * kernel buffers, then the writer holds at most that many bytes (plus the
 * one chunk handed to the socket) and drops the rest, counted in `dropped`.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from '../core/log.ts';
import { RateLimited } from '../core/log.ts';
import { ChardevError, streamSink } from './backends.ts';
import type { SocketSpec } from './spec.ts';
import type { CharBackend, Receiver } from './types.ts';
import { BatchedWriter } from './writer.ts';

/** Bytes of guest output a socket chardev holds for a peer that does not read (beyond the kernel's buffers). */
export const SOCKET_MAX_PENDING = 256 * 1024;
/** How long close() waits for a peer to take what is pending before it hangs up anyway. */
const CLOSE_FLUSH_MS = 1000;

/** QEMU's spelling of the endpoint (query-chardev `filename`): `tcp:HOST:PORT,server=on`, `unix:PATH`. */
function describe(spec: SocketSpec, port: number | null): string {
  const srv = spec.server ? ',server=on' : '';
  if (spec.host !== null) {
    const h = spec.host === '' ? '0.0.0.0' : spec.host.includes(':') ? `[${spec.host}]` : spec.host;
    return `tcp:${h}:${port ?? spec.port}${srv}`;
  }
  return spec.path !== null ? `unix:${spec.path}${srv}` : `fd:${spec.fd}${srv}`;
}

export class SocketBackend implements CharBackend {
  private receiver: Receiver | null = null;
  private writer: BatchedWriter | null = null;
  private conn: net.Socket | null = null;
  private peer = '';
  private listener: net.Server | null = null;
  private retry: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  /** wait=on: start-up waiting for the first client (close() releases it too). */
  private waiting: (() => void) | null = null;
  private endpoint: string;
  private readonly turnedAway: RateLimited;
  /** Guest bytes lost: no peer connected, or a peer that stopped reading (plus each writer's own count). */
  private droppedNoPeer = 0;
  private droppedEarlier = 0;
  /** Connections served so far. */
  connections = 0;

  constructor(
    readonly id: string,
    private readonly spec: SocketSpec,
    private readonly log: Logger,
  ) {
    this.endpoint = describe(spec, null);
    this.turnedAway = new RateLimited(log);
  }

  get filename(): string {
    return this.conn !== null ? `${this.endpoint} <-> ${this.peer}` : `disconnected:${this.endpoint}`;
  }

  /** Guest bytes dropped since start. */
  get dropped(): number {
    return this.droppedNoPeer + this.droppedEarlier + (this.writer?.dropped ?? 0);
  }

  /** The port a TCP listener got (port=0 asks the kernel for one), else null. */
  get port(): number | null {
    const a = this.listener?.address();
    return a !== null && typeof a === 'object' ? a.port : null;
  }

  /** Listen or connect; with a listener and wait=on, resolves once the first client is connected. */
  async open(): Promise<void> {
    if (this.spec.server) await this.listen();
    else await this.connect(true);
  }

  private async listen(): Promise<void> {
    const spec = this.spec;
    const srv = net.createServer({ pauseOnConnect: false }, (sock) => this.accept(sock));
    this.listener = srv;
    if (spec.path !== null) {
      // A socket file left by an earlier run would make bind() fail (EADDRINUSE); QEMU removes it too.
      try {
        if (fs.lstatSync(spec.path).isSocket()) fs.unlinkSync(spec.path);
      } catch {
        // nothing there
      }
    }
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (err: NodeJS.ErrnoException) =>
        reject(new ChardevError(`chardev ${this.id}: cannot listen on ${this.endpoint}: ${err.code ?? err.message}`)),
      );
      if (spec.fd !== null) srv.listen({ fd: spec.fd }, resolve);
      else if (spec.path !== null) srv.listen(spec.path, 16, resolve);
      else srv.listen({ host: spec.host === '' ? undefined : spec.host!, port: spec.port!, backlog: 16 }, resolve);
    });
    srv.on('error', (err) => this.log.error({ chardev: this.id, err: err.message }, 'serial socket listener failed'));
    this.endpoint = describe(spec, this.port);
    if (!spec.wait) return;
    // QEMU prints the same: people look for it in the device model's log.
    this.log.info({ chardev: this.id }, `waiting for connection on: disconnected:${this.endpoint}`);
    if (this.conn === null) await new Promise<void>((resolve) => (this.waiting = resolve));
  }

  private accept(sock: net.Socket): void {
    if (this.conn !== null || this.closing !== null) {
      this.turnedAway.warn({ chardev: this.id, busy: this.peer }, 'serial socket already has a client; turning another away');
      sock.destroy();
      return;
    }
    this.attach(sock);
  }

  /** Connect as a client. At start a failure is the operator's (ChardevError); later ones are retried. */
  private connect(first: boolean): Promise<void> {
    const spec = this.spec;
    return new Promise<void>((resolve, reject) => {
      const sock =
        spec.path !== null ? net.connect({ path: spec.path }) : net.connect({ host: spec.host === '' ? 'localhost' : spec.host!, port: spec.port! });
      const fail = (err: NodeJS.ErrnoException): void => {
        sock.destroy();
        if (first && spec.reconnect === 0) {
          reject(new ChardevError(`chardev ${this.id}: cannot connect to ${this.endpoint}: ${err.code ?? err.message}`));
          return;
        }
        if (first) this.log.warn({ chardev: this.id, err: err.code ?? err.message }, `cannot connect to ${this.endpoint}; retrying every ${spec.reconnect} s`);
        this.scheduleReconnect();
        resolve();
      };
      sock.once('error', fail);
      sock.once('connect', () => {
        sock.off('error', fail);
        this.attach(sock);
        resolve();
      });
    });
  }

  private scheduleReconnect(): void {
    if (this.spec.server || this.spec.reconnect === 0 || this.closing !== null || this.retry !== null) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      if (this.closing === null && this.conn === null) void this.connect(false);
    }, this.spec.reconnect * 1000);
    this.retry.unref();
  }

  private attach(sock: net.Socket): void {
    this.conn = sock;
    this.connections++;
    this.peer = sock.remoteAddress !== undefined ? `${sock.remoteAddress}:${sock.remotePort}` : this.spec.path ?? 'peer';
    if (this.spec.nodelay && this.spec.host !== null) sock.setNoDelay(true);
    // Each connection gets a writer of its own: a hang-up fails the old one, and what it held was for that peer.
    this.writer = new BatchedWriter(streamSink(sock), () => {}, SOCKET_MAX_PENDING);
    sock.on('data', (d: Buffer) => this.deliver(d));
    sock.on('error', () => {}); // a reset is a hang-up: 'close' follows
    sock.on('close', () => this.detach(sock));
    this.log.info({ chardev: this.id, peer: this.peer }, `serial socket connected: ${this.endpoint}`);
    this.release();
  }

  private release(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  private detach(sock: net.Socket): void {
    if (this.conn !== sock) return;
    this.conn = null;
    if (this.writer !== null) {
      this.droppedEarlier += this.writer.dropped;
      this.writer = null;
    }
    this.log.info({ chardev: this.id, peer: this.peer }, `serial socket disconnected: ${this.endpoint}`);
    this.peer = '';
    this.scheduleReconnect();
  }

  private deliver(data: Uint8Array): void {
    const r = this.receiver;
    if (r === null) return;
    try {
      r(data);
    } catch (err) {
      this.log.error({ chardev: this.id, err }, 'serial input handler threw');
    }
  }

  /** Hot path: into the connection's writer, or counted as dropped when there is none. */
  writeByte(b: number): void {
    const w = this.writer;
    if (w !== null) w.writeByte(b);
    else this.droppedNoPeer++;
  }

  write(data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.writeByte(data[i]);
  }

  setReceiver(r: Receiver | null): void {
    this.receiver = r;
  }

  flush(): Promise<void> {
    return this.writer !== null ? this.writer.flush() : Promise.resolve();
  }

  close(): Promise<void> {
    if (this.closing === null) {
      this.closing = (async () => {
        if (this.retry !== null) clearTimeout(this.retry);
        this.retry = null;
        this.release();
        // A peer that does not read must not hold up a shutdown.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.flush(), new Promise<void>((r) => (timer = setTimeout(r, CLOSE_FLUSH_MS)))]);
        clearTimeout(timer);
        const c = this.conn;
        if (c !== null) {
          // Let the kernel send what was written, then go; a peer that never reads gets reset.
          c.end();
          setTimeout(() => c.destroy(), CLOSE_FLUSH_MS).unref();
        }
        const l = this.listener;
        if (l !== null) await new Promise<void>((r) => l.close(() => r()));
      })();
    }
    return this.closing;
  }
}

/** Opens a socket chardev; throws ChardevError (one operator line) when it cannot listen or connect. */
export async function openSocket(id: string, spec: SocketSpec, log: Logger): Promise<SocketBackend> {
  const b = new SocketBackend(id, spec, log);
  try {
    await b.open();
  } catch (e) {
    await b.close();
    throw e;
  }
  return b;
}
