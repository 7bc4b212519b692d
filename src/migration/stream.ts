/**
 * Moving the saved-state container (src/machine/container.ts) through a
 * file descriptor, the way libxl hands them to a device model
 * (docs/xen-contract.md §16):
 *
 * - dom0: `xen-save-devices-state` writes to a plain file libxl passed with
 *   add-fd; restore reads `-incoming fd:N`, the same bytes in a plain file.
 *   The container is written as it is.
 * - stub domain: the state goes to console 1 (hvc1), which dom0's QEMU copies
 *   into a file; libxl takes that file's size as the record when it writes
 *   the stream, with no end-of-data handshake. Restore arrives on console 2
 *   (hvc2), which never reaches EOF. On a tty we therefore write
 *     CONSOLE_PREAMBLE filler bytes, the container, CONSOLE_TRAILER filler bytes:
 *   the trailer is longer than everything the console can still hold
 *   unconsumed once write() returned (the 2 KiB output ring of
 *   xencons_interface plus the hvc driver's output buffer), so when the last
 *   write returns, dom0 has taken every byte of the container. The preamble
 *   absorbs what the restoring side's tty may mangle before it is switched to
 *   raw mode (hvc resets termios on each first open; the backend feeds data
 *   as soon as the console connects): the reader skips filler bytes, then
 *   reads exactly the container's length (its header says it) and stops.
 *
 * A reader never trusts the stream: at most MAX_PREAMBLE filler bytes are
 * skipped, the header is checked before the length is believed (at most
 * MAX_CONTAINER_BYTES), and a stream that stalls fails after `timeoutMs`.
 */
import fs from 'node:fs';
import { containerLength, HEADER_BYTES } from '../machine/container.ts';
import { StateError } from '../core/state.ts';

/** The first bytes of a header for an error line: hex, and printable ASCII. */
function preview(b: Uint8Array): string {
  const head = b.subarray(0, 16);
  const ascii = Array.from(head, (c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.')).join('');
  return `${Buffer.from(head).toString('hex')} "${ascii}"`;
}

/** '.': printable and no tty control character, so cooked-mode input processing leaves it alone. */
export const FILLER = 0x2e;
export const CONSOLE_PREAMBLE = 32 * 1024;
export const CONSOLE_TRAILER = 16 * 1024;
/** Filler bytes a reader skips before it gives up looking for the header. */
export const MAX_PREAMBLE = 1 << 20;
const READ_CHUNK = 64 * 1024;
const EAGAIN_RETRY_MS = 5;

/** A transfer failed (I/O error, timeout, no state in the stream); bad content is a StateError. */
export class MigrationError extends Error {
  override name = 'MigrationError';
}

export interface StreamOptions {
  /** Switch a tty to raw mode; true if fd is a tty (the console case). */
  makeRaw(fd: number): boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function writeAll(fd: number, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) {
    let n: number;
    try {
      n = await new Promise<number>((resolve, reject) => fs.write(fd, b, off, b.length - off, null, (e, w) => (e ? reject(e) : resolve(w))));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        await sleep(EAGAIN_RETRY_MS);
        continue;
      }
      throw new MigrationError(`writing the saved state failed: ${(e as Error).message}`);
    }
    off += n;
  }
}

/** Write a container to fd (see the file comment for consoles). Resolves with the container's size. */
export async function writeState(fd: number, blob: Uint8Array, opts: StreamOptions): Promise<{ bytes: number; console: boolean }> {
  let tty: boolean;
  try {
    tty = opts.makeRaw(fd);
  } catch (e) {
    throw new MigrationError(`cannot prepare the save console: ${(e as Error).message}`);
  }
  if (!tty) {
    await writeAll(fd, blob);
    return { bytes: blob.length, console: false };
  }
  await writeAll(fd, new Uint8Array(CONSOLE_PREAMBLE).fill(FILLER));
  await writeAll(fd, blob);
  await writeAll(fd, new Uint8Array(CONSOLE_TRAILER).fill(FILLER));
  return { bytes: blob.length, console: true };
}

export interface ReadOptions extends StreamOptions {
  /** Give up when the whole container has not arrived after this long. */
  timeoutMs: number;
}

async function readSome(fd: number, buf: Uint8Array, gaveUp: () => boolean): Promise<number> {
  for (;;) {
    try {
      return await new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, buf.length, null, (e, n) => (e ? reject(e) : resolve(n))));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN' && !gaveUp()) {
        await sleep(EAGAIN_RETRY_MS);
        continue;
      }
      throw new MigrationError(`reading the saved state failed: ${(e as Error).message}`);
    }
  }
}

/**
 * Read one container from fd: skip filler, read the header, then exactly
 * the length it gives. Throws StateError (not ours, newer format, bad
 * length) or MigrationError (EOF, I/O error, timeout). Bytes after the
 * container are left unread or dropped.
 */
export async function readState(fd: number, opts: ReadOptions): Promise<Uint8Array> {
  try {
    opts.makeRaw(fd);
  } catch (e) {
    throw new MigrationError(`cannot prepare the restore console: ${(e as Error).message}`);
  }
  const chunk = new Uint8Array(READ_CHUNK);
  const header = new Uint8Array(HEADER_BYTES);
  let skipped = 0;
  let have = 0; // header bytes, then container bytes
  let out: Uint8Array | null = null;
  let total = 0;
  const progress = (): string => (out === null ? `${have} of ${HEADER_BYTES} header bytes` : `${have} of ${total} bytes`);
  let timeoutReject: (e: Error) => void = () => {};
  const timeout = new Promise<never>((_, reject) => (timeoutReject = reject));
  timeout.catch(() => {}); // raced below; unobserved once the read finished
  let gaveUp = false;
  const t2 = setTimeout(() => {
    gaveUp = true;
    timeoutReject(new MigrationError(`saved state: only ${progress()} arrived in ${opts.timeoutMs / 1000} s`));
  }, opts.timeoutMs);
  try {
    for (;;) {
      const read = readSome(fd, chunk, () => gaveUp);
      read.catch(() => {}); // after a timeout nobody awaits it
      const n = await Promise.race([read, timeout]);
      if (n === 0) throw new MigrationError(`saved state truncated: end of stream after ${progress()}`);
      let i = 0;
      if (out === null && have === 0) {
        while (i < n && chunk[i] === FILLER) i++;
        skipped += i;
        if (skipped > MAX_PREAMBLE) throw new MigrationError(`no saved state in the first ${MAX_PREAMBLE} bytes of the stream`);
      }
      while (i < n) {
        if (out === null) {
          const k = Math.min(n - i, HEADER_BYTES - have);
          header.set(chunk.subarray(i, i + k), have);
          have += k;
          i += k;
          if (have === HEADER_BYTES) {
            try {
              total = containerLength(header); // StateError for anything not ours
            } catch (e) {
              // Say where in the stream and what came instead: a console that
              // mangled the stream and a wrong file look different here.
              if (e instanceof StateError) throw new StateError(`${e.message}; after ${skipped} filler bytes the stream had ${preview(header)}`);
              throw e;
            }
            out = new Uint8Array(total);
            out.set(header, 0);
          }
        } else {
          const k = Math.min(n - i, total - have);
          out.set(chunk.subarray(i, i + k), have);
          have += k;
          i += k;
          if (have === total) return out;
        }
      }
    }
  } finally {
    gaveUp = true; // a read still pending on a non-blocking fd stops retrying
    clearTimeout(t2);
  }
}
