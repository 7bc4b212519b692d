/**
 * QMP over a listening unix socket (`-chardev socket,path=...,server=on,wait=off`
 * or an inherited listening fd, `fd=N`). Any number of simultaneous
 * connections (up to MAX_CONNECTIONS), each its own QmpSession.
 *
 * The socket I/O is native (src/qmp/unixsock.ts): libxl's `add-fd` passes a
 * file descriptor as SCM_RIGHTS ancillary data, which Node's net module would
 * drop. Descriptors go to the session before the bytes they came with.
 *
 * Bounds per connection: an input message of MAX_LINE bytes (longer, or never
 * ended: an error and the connection is closed), MAX_QUEUED_LINES complete
 * messages waiting while a slow command (saving state) runs, MAX_OUTPUT bytes
 * of replies and events the peer has not read (more: the connection is
 * dropped), MAX_PENDING_FDS descriptors not taken by a command.
 */
import fs from 'node:fs';
import type { Duplex } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { RateLimited, type Logger } from '../core/log.ts';
import type { QmpCore, QmpSession } from './core.ts';
import { JsonSplitter, MAX_NESTING } from './splitter.ts';
import { EV_READABLE, EV_WRITABLE, loadUnixSock, NativeUnavailableError, type SockWatcher, type UnixSock } from './unixsock.ts';

export const MAX_LINE = 64 * 1024;
export const MAX_QUEUED_LINES = 64;
/** Replies and events a peer has not read, per connection: more and it is dropped. */
export const MAX_OUTPUT = 1 << 20;
export const MAX_CONNECTIONS = 32;
const READ_CHUNK = 16 * 1024;
const TOO_LONG = `QMP input message longer than ${MAX_LINE} bytes; closing`;

export class QmpServerError extends Error {}

/** What the QMP framing needs from its byte stream. */
interface LineTransport {
  write(line: string): void;
  /** Close after what was written went out. */
  end(): void;
}

/**
 * The framing shared by every transport: input split into JSON messages as
 * QEMU splits it (splitter.ts: no line end needed, libxenstat sends none),
 * each reply and event one "\r\n"-ended line in one write, replies in order,
 * one command at a time (a slow one holds the ones after it), bounded buffers.
 *
 * A command that answers at once answers on the call stack that read it: no
 * promise, timer or turn of the event loop in between. libxenstat gives each
 * reply 10 ms of silence on the socket before it stops reading
 * (docs/xen-contract.md §11c), and under nested TCG a turn of dom0's event
 * loop can take a good part of that.
 */
class LineProtocol {
  private readonly splitter = new JsonSplitter(MAX_LINE);
  private readonly queue: string[] = [];
  /** Messages split off one chunk (reused: feed() runs on every read). */
  private readonly split: string[] = [];
  private busy = false;
  open = true;
  readonly session: QmpSession;

  constructor(
    private readonly core: QmpCore,
    private readonly t: LineTransport,
    private readonly onTooLong: () => void,
  ) {
    this.session = core.open((line) => this.send(line));
    this.send(core.greeting());
  }

  send(line: string): void {
    if (this.open) this.t.write(line + '\r\n');
  }

  feed(chunk: string): void {
    if (!this.open) return;
    const msgs = this.split;
    msgs.length = 0;
    const r = this.splitter.push(chunk, msgs);
    for (const m of msgs) {
      if (m.length > MAX_LINE || this.queue.length >= MAX_QUEUED_LINES) {
        this.refuse(m.length > MAX_LINE ? TOO_LONG : 'too many QMP commands queued; closing');
        return;
      }
      this.queue.push(m);
    }
    if (r !== 'ok') {
      this.refuse(r === 'too-long' ? TOO_LONG : `QMP input nested deeper than ${MAX_NESTING} levels; closing`);
      return;
    }
    this.pump();
  }

  /** Run what is queued: synchronous commands at once, an asynchronous one holds the rest until it answers. */
  private pump(): void {
    while (!this.busy && this.open && this.queue.length > 0) {
      const r = this.session.handle(this.queue.shift()!);
      if (r instanceof Promise) {
        this.busy = true;
        void r.then((replies) => {
          this.busy = false;
          if (this.answer(replies)) this.pump();
        });
        return;
      }
      if (!this.answer(r)) return;
    }
  }

  /** Send a command's replies; false when it was `quit` (the connection is ended). */
  private answer(replies: string[]): boolean {
    for (const r of replies) this.send(r);
    if (!this.session.quitRequested) return true;
    this.finish();
    this.t.end();
    this.core.machine.quit();
    return false;
  }

  private refuse(desc: string): void {
    this.send(JSON.stringify({ error: { class: 'GenericError', desc } }));
    this.finish();
    this.t.end();
    this.onTooLong();
  }

  finish(): void {
    if (!this.open) return;
    this.open = false;
    this.queue.length = 0;
    this.session.close();
  }
}

/**
 * One QMP connection on any byte stream (in a stub domain whatever carries
 * the vchan, in tests a Duplex): greeting, "\r\n"-framed replies and events,
 * bounded input. Ends the stream on `quit` (then calls machine.quit()) or
 * on an over-long message (then calls onTooLong). Carries no descriptors.
 */
export function serveQmpStream(core: QmpCore, stream: Duplex, onTooLong: () => void = () => {}): void {
  let proto: LineProtocol | null = null;
  const p = new LineProtocol(
    core,
    {
      write: (line) => {
        if (stream.destroyed) return;
        // A peer that does not read: the stream buffers without bound, so drop it at
        // MAX_OUTPUT, as the socket transport does.
        if (stream.writableLength + Buffer.byteLength(line) > MAX_OUTPUT) {
          proto?.finish();
          stream.destroy();
          return;
        }
        stream.write(line);
      },
      end: () => stream.end(),
    },
    onTooLong,
  );
  proto = p;
  const finish = (): void => p.finish();
  stream.setEncoding('utf8');
  stream.on('close', finish);
  stream.on('end', finish);
  stream.on('error', finish);
  stream.on('data', (chunk: string) => p.feed(chunk));
}

/** One accepted connection, read and written with the native addon. */
class NativeConnection {
  private readonly watcher: SockWatcher;
  private readonly decoder = new StringDecoder('utf8');
  private readonly proto: LineProtocol;
  private readonly rbuf = Buffer.alloc(READ_CHUNK);
  private out: Buffer[] = [];
  private outBytes = 0;
  private ending = false;
  private closed = false;

  constructor(
    private readonly us: UnixSock,
    private readonly fd: number,
    core: QmpCore,
    private readonly onClose: (c: NativeConnection) => void,
    private readonly log: Logger,
    tooLong: () => void,
  ) {
    this.watcher = us.watch(fd, EV_READABLE, (status, events) => this.onEvent(status, events));
    this.proto = new LineProtocol(core, { write: (l) => this.write(l), end: () => this.end() }, tooLong);
  }

  /**
   * Read what came with the connection, right after accept() and the
   * greeting: libxenstat writes qmp_capabilities straight after connect(),
   * so it is usually there already, and its reply then leaves with the
   * greeting rather than a poll of the loop later (its first read is over
   * 10 ms after the last byte it saw).
   */
  start(): void {
    this.readSome();
  }

  private onEvent(status: number, events: number): void {
    if (this.closed) return;
    if (status < 0) {
      this.close();
      return;
    }
    if (events & EV_WRITABLE) this.flush();
    if (events & EV_READABLE && !this.closed) this.readSome();
  }

  private readSome(): void {
    // Bounded per wake-up: the watch is level-triggered, so the rest comes on the next turn.
    for (let i = 0; i < 16 && !this.closed; i++) {
      const fds: number[] = [];
      let n: number;
      try {
        n = this.us.recv(this.fd, this.rbuf, fds);
      } catch (e) {
        this.log.debug({ err: String(e) }, 'QMP connection read failed');
        this.close();
        return;
      }
      if (fds.length > 0) this.proto.session.receiveFds(fds);
      if (n < 0) return;
      if (n === 0) {
        this.close();
        return;
      }
      this.proto.feed(this.decoder.write(this.rbuf.subarray(0, n)));
    }
  }

  private write(line: string): void {
    if (this.closed) return;
    const b = Buffer.from(line, 'utf8');
    if (this.outBytes + b.length > MAX_OUTPUT) {
      this.log.warn({ pending: this.outBytes }, 'QMP client does not read its replies; connection dropped');
      this.close();
      return;
    }
    this.out.push(b);
    this.outBytes += b.length;
    this.flush();
  }

  private flush(): void {
    while (!this.closed && this.out.length > 0) {
      const b = this.out[0];
      let n: number;
      try {
        n = this.us.send(this.fd, b, 0, b.length);
      } catch {
        this.close();
        return;
      }
      if (n < 0) {
        this.watcher.set(EV_READABLE | EV_WRITABLE);
        return;
      }
      this.outBytes -= n;
      if (n === b.length) this.out.shift();
      else this.out[0] = b.subarray(n);
    }
    if (this.closed) return;
    this.watcher.set(EV_READABLE);
    if (this.ending) this.close();
  }

  private end(): void {
    this.ending = true;
    this.flush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.stop();
    this.proto.finish();
    try {
      this.us.close(this.fd);
    } catch {
      // already gone
    }
    this.out = [];
    this.onClose(this);
  }
}

export class QmpServer {
  private readonly tooLong: RateLimited;
  private readonly conns = new Set<NativeConnection>();
  private us: UnixSock | null = null;
  private lfd = -1;
  private watcher: SockWatcher | null = null;
  private path: string | null = null;

  constructor(
    private readonly core: QmpCore,
    private readonly log: Logger,
    readonly label: string,
  ) {
    this.tooLong = new RateLimited(log);
  }

  private native(what: string): UnixSock {
    try {
      this.us ??= loadUnixSock();
    } catch (e) {
      if (e instanceof NativeUnavailableError) throw new QmpServerError(`${what}: ${e.message}`);
      throw e;
    }
    return this.us;
  }

  /** Listen on a unix socket path; a stale socket file left by a previous run is replaced. */
  async listenPath(path: string): Promise<void> {
    const what = `cannot listen on QMP socket ${path}`;
    // sun_path holds 107 bytes and a NUL; the CLI refuses longer paths, this is for other callers.
    if (path === '' || Buffer.byteLength(path) > 107) throw new QmpServerError(`${what}: a unix socket path is 1 to 107 bytes`);
    const us = this.native(what);
    try {
      if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
    } catch {
      // nothing there
    }
    try {
      this.lfd = us.listen(path, 16);
    } catch (e) {
      throw new QmpServerError(`${what}: ${(e as Error).message}`);
    }
    this.path = path;
    this.serve();
  }

  /** Serve on an inherited, already bound and listening socket (libxl's fd=N). */
  async listenFd(fd: number): Promise<void> {
    const what = `cannot serve QMP on inherited fd ${fd}`;
    const us = this.native(what);
    try {
      us.setNonblock(fd, true);
      this.lfd = fd;
      this.serve();
    } catch (e) {
      this.lfd = -1;
      throw new QmpServerError(`${what}: ${(e as Error).message}`);
    }
  }

  private serve(): void {
    const us = this.us!;
    this.watcher = us.watch(this.lfd, EV_READABLE, (status) => {
      if (status < 0) {
        this.log.error({ qmp: this.label, status }, 'QMP listener error');
        return;
      }
      for (let i = 0; i < 16; i++) {
        let fd: number;
        try {
          fd = us.accept(this.lfd);
        } catch (e) {
          this.log.error({ qmp: this.label, err: String(e) }, 'QMP accept failed');
          return;
        }
        if (fd < 0) return;
        if (this.conns.size >= MAX_CONNECTIONS) {
          this.tooLong.warn({ qmp: this.label }, `more than ${MAX_CONNECTIONS} QMP connections; refusing one`);
          us.close(fd);
          continue;
        }
        let c: NativeConnection;
        try {
          c = new NativeConnection(us, fd, this.core, (x) => this.conns.delete(x), this.log, () =>
            this.tooLong.warn({ qmp: this.label }, 'QMP client sent an over-long or over-nested message; connection closed'),
          );
        } catch (e) {
          this.log.error({ err: String(e) }, 'cannot serve a QMP connection');
          us.close(fd);
          continue;
        }
        this.conns.add(c);
        c.start();
      }
    });
  }

  /** Stop listening, drop every connection, remove the socket file. */
  async close(): Promise<void> {
    for (const c of [...this.conns]) c.close();
    this.conns.clear();
    this.watcher?.stop();
    this.watcher = null;
    if (this.lfd >= 0) {
      try {
        this.us!.close(this.lfd);
      } catch {
        // already closed
      }
      this.lfd = -1;
    }
    if (this.path !== null) {
      try {
        fs.unlinkSync(this.path);
      } catch {
        // already gone
      }
      this.path = null;
    }
  }
}
