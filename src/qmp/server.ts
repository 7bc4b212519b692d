/**
 * QMP over a listening unix socket (`-chardev socket,path=...,server=on,wait=off`
 * or an inherited listening fd, `fd=N`). Any number of simultaneous
 * connections, each its own QmpSession. A connection that sends a line
 * longer than MAX_LINE (or never ends one) gets an error and is closed: the
 * buffer per connection is bounded.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { RateLimited, type Logger } from '../core/log.ts';
import type { QmpCore } from './core.ts';

export const MAX_LINE = 64 * 1024;

export class QmpServerError extends Error {}

/**
 * One QMP connection on any byte stream (a unix socket here; in a stub
 * domain whatever carries the vchan): greeting, "\r\n"-framed replies and
 * events, bounded input. Ends the stream on `quit` (then calls
 * machine.quit()) or on an over-long line (then calls onTooLong).
 */
export function serveQmpStream(core: QmpCore, stream: Duplex, onTooLong: () => void = () => {}): void {
  let buf = '';
  let open = true;
  const send = (line: string): void => {
    if (open && !stream.destroyed) stream.write(line + '\r\n');
  };
  const session = core.open(send);
  const finish = (): void => {
    if (!open) return;
    open = false;
    session.close();
  };
  const refuse = (): void => {
    send(JSON.stringify({ error: { class: 'GenericError', desc: `QMP input line longer than ${MAX_LINE} bytes; closing` } }));
    finish();
    stream.end();
    onTooLong();
  };
  stream.setEncoding('utf8');
  stream.on('close', finish);
  stream.on('end', finish);
  stream.on('error', finish);
  send(core.greeting());
  stream.on('data', (chunk: string) => {
    if (!open) return;
    buf += chunk;
    let nl: number;
    while (open && (nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.length > MAX_LINE) {
        refuse();
        return;
      }
      for (const r of session.input(line)) send(r);
      if (session.quitRequested) {
        finish();
        stream.end();
        core.machine.quit();
        return;
      }
    }
    if (buf.length > MAX_LINE) refuse();
  });
}

export class QmpServer {
  private readonly server: net.Server;
  private readonly tooLong: RateLimited;
  private readonly sockets = new Set<net.Socket>();
  private path: string | null = null;

  constructor(
    private readonly core: QmpCore,
    private readonly log: Logger,
    readonly label: string,
  ) {
    this.tooLong = new RateLimited(log);
    this.server = net.createServer((sock) => this.accept(sock));
    this.server.on('error', (err) => this.log.error({ qmp: label, err: err.message }, 'QMP listener error'));
  }

  /** Listen on a unix socket path; a stale socket file left by a previous run is replaced. */
  async listenPath(path: string): Promise<void> {
    try {
      if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
    } catch {
      // nothing there
    }
    await this.listen({ path }, `cannot listen on QMP socket ${path}`);
    this.path = path;
  }

  /** Serve on an inherited, already bound and listening socket (libxl's fd=N). */
  async listenFd(fd: number): Promise<void> {
    await this.listen({ fd }, `cannot serve QMP on inherited fd ${fd}`);
  }

  private listen(opts: net.ListenOptions & { fd?: number }, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onErr = (err: Error): void => reject(new QmpServerError(`${what}: ${err.message}`));
      this.server.once('error', onErr);
      this.server.listen(opts as net.ListenOptions, () => {
        this.server.off('error', onErr);
        resolve();
      });
    });
  }

  private accept(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    serveQmpStream(this.core, sock, () => this.tooLong.warn({ qmp: this.label }, 'QMP client sent an over-long line; connection closed'));
  }

  /** Stop listening, drop every connection, remove the socket file. */
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return new Promise((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => {
        if (this.path !== null) {
          try {
            fs.unlinkSync(this.path);
          } catch {
            // already gone
          }
        }
        resolve();
      });
    });
  }
}
