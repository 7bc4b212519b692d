/** A backend in memory (tests, fuzzing, scratch disks). Completes on a later microtask, like real I/O. */
import { eachView, type BlockBackend, type IoResult } from './backend.ts';

export class MemoryBackend implements BlockBackend {
  readonly data: Uint8Array;
  flushes = 0;

  constructor(
    sizeOrData: number | Uint8Array,
    readonly readOnly = false,
  ) {
    this.data = typeof sizeOrData === 'number' ? new Uint8Array(sizeOrData) : sizeOrData;
  }

  get size(): number {
    return this.data.length;
  }

  async read(offset: number, dst: Uint8Array, dstOff: number, len: number): Promise<IoResult> {
    if (offset < 0 || offset + len > this.data.length) return 'EINVAL';
    dst.set(this.data.subarray(offset, offset + len), dstOff);
    return null;
  }

  async write(offset: number, src: Uint8Array, srcOff: number, len: number): Promise<IoResult> {
    if (this.readOnly) return 'EROFS';
    if (offset < 0 || offset + len > this.data.length) return 'EINVAL';
    this.data.set(src.subarray(srcOff, srcOff + len), offset);
    return null;
  }

  readv(offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult> {
    return eachView((o, b, bo, l) => this.read(o, b, bo, l), offset, views, count);
  }

  writev(offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult> {
    return eachView((o, b, bo, l) => this.write(o, b, bo, l), offset, views, count);
  }

  async flush(): Promise<IoResult> {
    this.flushes++;
    return null;
  }

  async close(): Promise<void> {}
}
