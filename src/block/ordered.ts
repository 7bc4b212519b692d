/**
 * Ordering rules between requests in flight, on top of any backend:
 * - a read waits for every earlier overlapping write (it sees the data);
 * - a write waits for every earlier overlapping read or write (no reordering
 *   of the guest's writes to one place, no read seeing a later write);
 * - a flush waits for every earlier write, then syncs: when it completes,
 *   everything written before it is on stable storage.
 * Non-overlapping requests run concurrently.
 */
import type { BlockBackend, IoResult } from './backend.ts';

interface Op {
  start: number;
  end: number;
  write: boolean;
  done: Promise<unknown>;
}

export class OrderedBackend implements BlockBackend {
  private inflight: Op[] = [];

  constructor(readonly inner: BlockBackend) {}

  get size(): number {
    return this.inner.size;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  read(offset: number, dst: Uint8Array, dstOff: number, len: number): Promise<IoResult> {
    return this.track(offset, len, false, () => this.inner.read(offset, dst, dstOff, len), (o) => o.write);
  }

  write(offset: number, src: Uint8Array, srcOff: number, len: number): Promise<IoResult> {
    return this.track(offset, len, true, () => this.inner.write(offset, src, srcOff, len), () => true);
  }

  flush(): Promise<IoResult> {
    // A flush covers everything: later writes need not wait for it, but it waits for earlier ones.
    const deps = this.inflight.filter((o) => o.write).map((o) => o.done);
    const p = (deps.length ? Promise.all(deps) : Promise.resolve()).then(() => this.inner.flush());
    return p;
  }

  async close(): Promise<void> {
    await Promise.all(this.inflight.map((o) => o.done));
    await this.inner.close();
  }

  private track(offset: number, len: number, write: boolean, run: () => Promise<IoResult>, conflicts: (o: Op) => boolean): Promise<IoResult> {
    const end = offset + len;
    let deps: Promise<unknown>[] | null = null;
    for (const o of this.inflight) {
      if (o.start < end && offset < o.end && conflicts(o)) (deps ??= []).push(o.done);
    }
    const p = deps === null ? run() : Promise.all(deps).then(run);
    const op: Op = { start: offset, end, write, done: p };
    this.inflight.push(op);
    const remove = () => {
      const i = this.inflight.indexOf(op);
      if (i >= 0) this.inflight.splice(i, 1);
    };
    p.then(remove, remove);
    return p;
  }
}
