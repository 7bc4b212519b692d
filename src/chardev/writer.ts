/**
 * Batched asynchronous output: the guest's bytes are collected in a chunk
 * and handed to the sink on the next turn of the event loop, so a byte
 * written by the guest never waits for the disk or the terminal.
 *
 * Memory is bounded: if the sink cannot keep up (a stuck terminal, a full
 * disk) and more than `maxPending` bytes wait, further bytes are dropped and
 * counted, as a serial line with no receiver would lose them.
 */
export type Sink = (chunk: Buffer, done: (err: Error | null) => void) => void;

const CHUNK = 16 * 1024;

export class BatchedWriter {
  private cur: Buffer = Buffer.allocUnsafe(CHUNK);
  private curLen = 0;
  private readonly full: Buffer[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private busy = false;
  private waiters: Array<() => void> = [];
  private failed: Error | null = null;
  dropped = 0;
  written = 0;

  constructor(
    private readonly sink: Sink,
    private readonly onError: (err: Error) => void,
    private readonly maxPending = 1024 * 1024,
  ) {}

  /** Hot path: a copy into the current chunk, no allocation except when a chunk fills. */
  writeByte(b: number): void {
    if (this.failed !== null || this.pendingBytes >= this.maxPending) {
      this.dropped++;
      return;
    }
    if (this.curLen === CHUNK) this.rotate();
    this.cur[this.curLen++] = b;
    this.pendingBytes++;
    this.schedule();
  }

  write(data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.writeByte(data[i]);
  }

  /** Resolves when every byte accepted so far has been handed to the sink and completed. */
  flush(): Promise<void> {
    if (this.pendingBytes === 0 && !this.busy) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.pump();
    });
  }

  private rotate(): void {
    if (this.curLen === 0) return;
    this.full.push(this.cur.subarray(0, this.curLen));
    this.cur = Buffer.allocUnsafe(CHUNK);
    this.curLen = 0;
  }

  private schedule(): void {
    if (this.scheduled || this.busy) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.busy) return;
    this.rotate();
    const chunk = this.full.shift();
    if (chunk === undefined) {
      const w = this.waiters;
      this.waiters = [];
      for (const r of w) r();
      return;
    }
    this.busy = true;
    this.sink(chunk, (err) => {
      this.busy = false;
      this.pendingBytes -= chunk.length;
      if (err) {
        // Output is lost from here on; say so once, keep the guest running.
        if (this.failed === null) this.onError(err);
        this.failed = err;
        this.dropped += this.pendingBytes;
        this.full.length = 0;
        this.curLen = 0;
        this.pendingBytes = 0;
      } else {
        this.written += chunk.length;
      }
      this.pump();
    });
  }
}
