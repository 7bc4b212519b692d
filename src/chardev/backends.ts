/**
 * The chardev backends libxl asks for: file:, pty, a device path
 * (/dev/hvc3 in a stub domain), stdio, null, plus ringbuf (in memory, for
 * tests and the demo). Each is a CharBackend; open them with openChardev().
 */
import fs from 'node:fs';
import net from 'node:net';
import tty from 'node:tty';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../core/log.ts';
import type { CharBackend, Receiver } from './types.ts';
import { BatchedWriter, type Sink } from './writer.ts';

/** Operator-facing failure to open a backend: one line, no stack. */
export class ChardevError extends Error {}

/** Writes to an fd at its current position, retrying EAGAIN (non-blocking fds) and short writes. */
export function fdSink(fd: number): Sink {
  return (chunk, done) => {
    let off = 0;
    const step = (): void => {
      fs.write(fd, chunk, off, chunk.length - off, null, (err, n) => {
        if (err) {
          if (err.code === 'EAGAIN') {
            setTimeout(step, 5);
            return;
          }
          done(err);
          return;
        }
        off += n;
        if (off < chunk.length) step();
        else done(null);
      });
    };
    step();
  };
}

export function streamSink(s: Writable): Sink {
  return (chunk, done) => {
    s.write(chunk, (err) => done(err ?? null));
  };
}

/** What every backend shares: a batched writer, a receiver slot and idempotent close. */
export abstract class BaseBackend implements CharBackend {
  protected receiver: Receiver | null = null;
  protected writer: BatchedWriter | null = null;
  private closing: Promise<void> | null = null;

  constructor(
    readonly id: string,
    readonly filename: string,
    protected readonly log: Logger,
  ) {}

  protected output(sink: Sink): void {
    this.writer = new BatchedWriter(sink, (err) =>
      this.log.error({ chardev: this.id, err: err.message }, `serial output to ${this.filename} failed; further output is dropped`),
    );
  }

  writeByte(b: number): void {
    this.writer?.writeByte(b);
  }

  write(data: Uint8Array): void {
    this.writer?.write(data);
  }

  setReceiver(r: Receiver | null): void {
    this.receiver = r;
  }

  /** Host-side input, as if typed at the other end of the line. */
  inject(data: Uint8Array | string): void {
    this.deliver(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  protected deliver(data: Uint8Array): void {
    const r = this.receiver;
    if (r === null) return;
    try {
      r(data);
    } catch (err) {
      this.log.error({ chardev: this.id, err }, 'serial input handler threw');
    }
  }

  flush(): Promise<void> {
    return this.writer ? this.writer.flush() : Promise.resolve();
  }

  close(): Promise<void> {
    if (this.closing === null) {
      this.closing = this.flush()
        .then(() => this.release())
        .catch((err: unknown) => {
          this.log.error({ chardev: this.id, err }, 'closing chardev failed');
        });
    }
    return this.closing;
  }

  protected async release(): Promise<void> {}
}

/** `-serial null`: output vanishes, no input. */
export class NullBackend extends BaseBackend {
  constructor(id: string, log: Logger) {
    super(id, 'null', log);
  }
}

/** In-memory: keeps the last `size` bytes output; input via inject(). QEMU's ringbuf. */
export class RingBackend extends BaseBackend {
  private readonly buf: Uint8Array;
  private len = 0;
  private start = 0;
  total = 0;

  constructor(id: string, log: Logger, size = 65536) {
    super(id, 'ringbuf', log);
    this.buf = new Uint8Array(size);
  }

  override writeByte(b: number): void {
    const n = this.buf.length;
    this.buf[(this.start + this.len) % n] = b;
    if (this.len < n) this.len++;
    else this.start = (this.start + 1) % n;
    this.total++;
  }

  override write(data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.writeByte(data[i]);
  }

  data(): Uint8Array {
    const out = new Uint8Array(this.len);
    for (let i = 0; i < this.len; i++) out[i] = this.buf[(this.start + i) % this.buf.length];
    return out;
  }

  text(): string {
    return Buffer.from(this.data()).toString('latin1');
  }
}

/**
 * `-serial file:PATH`: truncated at open (QEMU's default, append=off), output
 * only. flush() writes out everything and fsyncs.
 */
export class FileBackend extends BaseBackend {
  private fd: number;

  constructor(id: string, path: string, log: Logger, append = false) {
    super(id, `file:${path}`, log);
    try {
      this.fd = fs.openSync(path, append ? 'a' : 'w', 0o640);
    } catch (err) {
      throw new ChardevError(`cannot open serial output file ${path}: ${(err as Error).message}`);
    }
    this.output(fdSink(this.fd));
  }

  override async flush(): Promise<void> {
    await super.flush();
    if (this.fd < 0) return;
    await new Promise<void>((resolve) => fs.fsync(this.fd, () => resolve()));
  }

  protected override async release(): Promise<void> {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * A stream pair (tty, pipe, socket or the pty helper): input from `input`,
 * output batched to `out`.
 */
class StreamBackend extends BaseBackend {
  constructor(
    id: string,
    filename: string,
    log: Logger,
    private readonly input: Readable | null,
    private readonly out: Writable | null,
    private readonly cleanup: () => void = () => {},
  ) {
    super(id, filename, log);
    if (out) {
      out.on('error', () => {}); // reported through the writer's callback
      this.output(streamSink(out));
    }
    if (input) {
      input.on('data', (d: Buffer) => this.deliver(d));
      input.on('error', (err) => this.log.warn({ chardev: id, err: err.message }, 'serial input error; input stops'));
    }
  }

  protected override async release(): Promise<void> {
    this.input?.destroy();
    this.cleanup();
  }
}

/** Put a tty in raw mode (no echo, no line editing), as QEMU does for serial devices. */
function rawTty(fd: number): tty.ReadStream {
  const rs = new tty.ReadStream(fd);
  rs.setRawMode(true);
  return rs;
}

/**
 * `-serial /dev/hvc3` (any path): opened read+write. A tty is put in raw
 * mode and read through libuv (non-blocking); a FIFO or socket is a net
 * stream; anything else (a regular file) gets output only.
 */
export function openPath(id: string, path: string, log: Logger): CharBackend {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw new ChardevError(`cannot open serial device ${path}: ${(err as Error).message}`);
  }
  if (tty.isatty(fd)) {
    const input = rawTty(fd);
    const out = new tty.WriteStream(fd);
    return new StreamBackend(id, path, log, input, out, () => {
      try {
        input.setRawMode(false);
      } catch {
        // the device is gone
      }
      out.destroy();
    });
  }
  const st = fs.fstatSync(fd);
  if (st.isFIFO() || st.isSocket()) {
    const sock = new net.Socket({ fd, readable: true, writable: true });
    return new StreamBackend(id, path, log, sock, sock, () => sock.destroy());
  }
  return new FdBackend(id, path, fd, log);
}

/** Opens `path` read+write without blocking (a FIFO with no peer yet) and without becoming our tty; null when it is not there. */
function openRdwr(path: string): number | null {
  try {
    return fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ChardevError(`cannot open serial pipe ${path}: ${(err as Error).message}`);
  }
}

/** A FIFO (or socket) descriptor as a stream; a regular file or a device is refused: a pipe chardev is a pipe. */
function fifoStream(path: string, fd: number, readable = true, writable = true): net.Socket {
  const st = fs.fstatSync(fd);
  if (!st.isFIFO() && !st.isSocket()) {
    fs.closeSync(fd);
    throw new ChardevError(`serial pipe ${path} is not a FIFO (make one with mkfifo, or use file:${path})`);
  }
  // The output FIFO must not be read: a stream reads ahead as soon as it exists and would eat the guest's output.
  return new net.Socket({ fd, readable, writable });
}

/**
 * `-serial pipe:PATH` (`-chardev pipe,path=`), as QEMU does it: PATH.in carries
 * input to the guest and PATH.out its output when both exist, else PATH both
 * ways. The FIFOs are opened read+write, so a reader or writer that comes and
 * goes never gives EOF or EPIPE, and a reader that never comes fills the pipe
 * and then the writer's bound (output dropped, counted), never our memory.
 */
export function openPipe(id: string, path: string, log: Logger): CharBackend {
  const inFd = openRdwr(`${path}.in`);
  const outFd = inFd === null ? null : openRdwr(`${path}.out`);
  if (inFd !== null && outFd !== null) {
    let input: net.Socket;
    let out: net.Socket;
    try {
      input = fifoStream(`${path}.in`, inFd, true, false);
    } catch (e) {
      fs.closeSync(outFd);
      throw e;
    }
    try {
      out = fifoStream(`${path}.out`, outFd, false, true);
    } catch (e) {
      input.destroy();
      throw e;
    }
    return new StreamBackend(id, `pipe:${path}`, log, input, out, () => {
      input.destroy();
      out.destroy();
    });
  }
  if (inFd !== null) fs.closeSync(inFd);
  const fd = openRdwr(path);
  if (fd === null) throw new ChardevError(`serial pipe: neither ${path}.in and ${path}.out nor ${path} exist (create them with mkfifo)`);
  const sock = fifoStream(path, fd);
  return new StreamBackend(id, `pipe:${path}`, log, sock, sock, () => sock.destroy());
}

/** Output-only on an fd we own (a regular file given as a path). */
class FdBackend extends BaseBackend {
  constructor(
    id: string,
    filename: string,
    private fd: number,
    log: Logger,
  ) {
    super(id, filename, log);
    this.output(fdSink(fd));
  }

  protected override async release(): Promise<void> {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * `-serial stdio`: guest output on stdout, our stdin to the guest. A
 * terminal on stdin goes raw; Ctrl-C still stops us (QEMU's signal=on).
 */
export function openStdio(id: string, log: Logger): CharBackend & { inject(d: Uint8Array): void } {
  const stdin = process.stdin;
  const input: Readable = stdin;
  let restore = (): void => {};
  if (stdin.isTTY) {
    (stdin as tty.ReadStream).setRawMode(true);
    restore = () => (stdin as tty.ReadStream).setRawMode(false);
  }
  const b = new StreamBackend(id, 'stdio', log, null, process.stdout, () => {
    restore();
    stdin.pause();
  });
  input.on('data', (d: Buffer) => {
    if (stdin.isTTY && d.includes(0x03)) {
      process.kill(process.pid, 'SIGINT');
      return;
    }
    b.inject(d);
  });
  input.on('error', () => {});
  return b;
}
