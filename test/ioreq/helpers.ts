/** Tiny devices and a harness for the ioreq server tests (not a test file itself). */
import { pino, type Logger } from 'pino';
import type { Board } from '../../src/core/board.ts';
import type { AccessSize, IoHandler } from '../../src/core/io.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';
import { createSimHost, simBoard, type SimHost, type SimHostOptions } from '../../src/sim/index.ts';

/** A pino logger whose lines land in `lines` (parsed), so tests can check what was logged. */
export function captureLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

/** Byte-addressed little-endian register file; logs every access as "r|w offset/size=value". */
export class MemDevice implements IoHandler {
  readonly bytes: Uint8Array;
  readonly log: string[] = [];
  constructor(length: number) {
    this.bytes = new Uint8Array(length);
  }
  read(off: number, size: AccessSize): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.bytes[off + i];
    this.log.push(`r${off}/${size}=${v.toString(16)}`);
    return v;
  }
  write(off: number, size: AccessSize, value: number): void {
    this.log.push(`w${off}/${size}=${value.toString(16)}`);
    for (let i = 0; i < size; i++) this.bytes[off + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
  }
}

/**
 * A data port: reads produce 1, 2, 3, ... (masked to size), writes are
 * collected. With `fast` it also implements readRep/writeRep, producing the
 * same sequence, and counts fast-path calls.
 */
export class FifoDevice implements IoHandler {
  next = 1;
  readonly written: number[] = [];
  slowReads = 0;
  slowWrites = 0;
  repCalls = 0;
  readRep?: IoHandler['readRep'];
  writeRep?: IoHandler['writeRep'];
  constructor(fast = false) {
    if (fast) {
      this.readRep = (_off, size, count, dst, dstOff) => {
        this.repCalls++;
        for (let i = 0; i < count; i++) {
          const v = this.take(size);
          for (let k = 0; k < size; k++) dst[dstOff + i * size + k] = (v >>> (8 * k)) & 0xff;
        }
        return count;
      };
      this.writeRep = (_off, size, count, src, srcOff) => {
        this.repCalls++;
        for (let i = 0; i < count; i++) {
          let v = 0;
          for (let k = size - 1; k >= 0; k--) v = v * 256 + src[srcOff + i * size + k];
          this.written.push(v);
        }
        return count;
      };
    }
  }
  private take(size: number): number {
    const v = this.next++;
    return size === 4 ? v >>> 0 : v & ((1 << (size * 8)) - 1);
  }
  read(_off: number, size: AccessSize): number {
    this.slowReads++;
    return this.take(size);
  }
  write(_off: number, _size: AccessSize, value: number): void {
    this.slowWrites++;
    this.written.push(value);
  }
}

export interface Harness {
  sim: SimHost;
  board: Board;
  server: IoreqServer;
  lines: Array<Record<string, unknown>>;
}

/** A SimHost + Board + started IoreqServer with a captured logger. */
export function setup(opts: Partial<SimHostOptions> = {}, build?: (board: Board) => void): Harness {
  const sim = createSimHost({ ramBytes: 1 << 20, ...opts });
  const board = simBoard(sim);
  build?.(board);
  const { log, lines } = captureLogger();
  const server = new IoreqServer(sim, board, log);
  server.start();
  return { sim, board, server, lines };
}

export { prng } from '../helpers/prng.ts';
