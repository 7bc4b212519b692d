/**
 * Ordering rules between requests in flight, on top of any backend:
 * - a read waits for every earlier overlapping write (it sees the data);
 * - a write waits for every earlier overlapping read or write (no reordering
 *   of the guest's writes to one place, no read seeing a later write);
 * - a flush waits for every earlier write, then syncs: when it completes,
 *   everything written before it is on stable storage.
 * Non-overlapping requests run concurrently.
 */
import { viewsBytes, type BlockBackend, type IoResult } from './backend.ts';

/** A request in flight. Recycled: a finished one goes back to the free list (no allocation per request but the promise). */
interface Op {
  start: number;
  end: number;
  write: boolean;
  done: Promise<unknown> | null;
  /** Bound once per Op: takes it out of the live list when its request settles. */
  readonly finish: () => void;
}

export class OrderedBackend implements BlockBackend {
  private readonly live: Op[] = [];
  private readonly free: Op[] = [];

  constructor(readonly inner: BlockBackend) {}

  get size(): number {
    return this.inner.size;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  read(offset: number, dst: Uint8Array, dstOff: number, len: number): Promise<IoResult> {
    const deps = this.deps(offset, len, false);
    const p = deps === null ? this.inner.read(offset, dst, dstOff, len) : Promise.all(deps).then(() => this.inner.read(offset, dst, dstOff, len));
    return this.record(offset, len, false, p);
  }

  write(offset: number, src: Uint8Array, srcOff: number, len: number): Promise<IoResult> {
    const deps = this.deps(offset, len, true);
    const p = deps === null ? this.inner.write(offset, src, srcOff, len) : Promise.all(deps).then(() => this.inner.write(offset, src, srcOff, len));
    return this.record(offset, len, true, p);
  }

  readv(offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult> {
    const len = viewsBytes(views, count);
    const deps = this.deps(offset, len, false);
    const p = deps === null ? this.inner.readv(offset, views, count) : Promise.all(deps).then(() => this.inner.readv(offset, views, count));
    return this.record(offset, len, false, p);
  }

  writev(offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult> {
    const len = viewsBytes(views, count);
    const deps = this.deps(offset, len, true);
    const p = deps === null ? this.inner.writev(offset, views, count) : Promise.all(deps).then(() => this.inner.writev(offset, views, count));
    return this.record(offset, len, true, p);
  }

  flush(): Promise<IoResult> {
    // A flush covers everything: later writes need not wait for it, but it waits for earlier ones.
    let deps: Promise<unknown>[] | null = null;
    for (const o of this.live) if (o.write) (deps ??= []).push(o.done!);
    return deps === null ? this.inner.flush() : Promise.all(deps).then(() => this.inner.flush());
  }

  async close(): Promise<void> {
    await Promise.all(this.live.map((o) => o.done));
    await this.inner.close();
  }

  /** What a new request must wait for: overlapping writes (a read), or every overlapping request (a write); null: nothing. */
  private deps(offset: number, len: number, write: boolean): Promise<unknown>[] | null {
    const end = offset + len;
    let deps: Promise<unknown>[] | null = null;
    for (const o of this.live) {
      if (o.start < end && offset < o.end && (write || o.write)) (deps ??= []).push(o.done!);
    }
    return deps;
  }

  private record(offset: number, len: number, write: boolean, p: Promise<IoResult>): Promise<IoResult> {
    let op = this.free.pop();
    if (op === undefined) {
      const o: Op = {
        start: 0,
        end: 0,
        write: false,
        done: null,
        finish: () => {
          const i = this.live.indexOf(o);
          if (i >= 0) this.live.splice(i, 1);
          o.done = null;
          this.free.push(o);
        },
      };
      op = o;
    }
    op.start = offset;
    op.end = offset + len;
    op.write = write;
    op.done = p;
    this.live.push(op);
    p.then(op.finish, op.finish);
    return p;
  }
}
