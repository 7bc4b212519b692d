/**
 * Fault injection and request holding around a backend, for tests: fail
 * chosen requests with an error code, or hold them until released (a flush
 * held in flight shows BSY to the guest).
 */
import { viewsBytes, type BlockBackend, type IoResult } from './backend.ts';

export type OpKind = 'read' | 'write' | 'flush';
/** Return an error code to fail the request, or null to pass it through. */
export type FaultRule = (op: OpKind, offset: number, len: number) => string | null;

export class FaultyBackend implements BlockBackend {
  rule: FaultRule | null = null;
  /** When set, matching requests wait until release() is called. */
  hold: ((op: OpKind) => boolean) | null = null;
  private held: (() => void)[] = [];
  readonly log: string[] = [];

  constructor(readonly inner: BlockBackend) {}

  get size(): number {
    return this.inner.size;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get heldCount(): number {
    return this.held.length;
  }

  /** Let every held request proceed. */
  release(): void {
    const h = this.held;
    this.held = [];
    for (const f of h) f();
  }

  private async gate(op: OpKind, offset: number, len: number): Promise<IoResult> {
    this.log.push(`${op} ${offset} ${len}`);
    if (this.hold?.(op)) await new Promise<void>((r) => this.held.push(r));
    return this.rule?.(op, offset, len) ?? null;
  }

  async read(offset: number, dst: Uint8Array, dstOff: number, len: number): Promise<IoResult> {
    return (await this.gate('read', offset, len)) ?? this.inner.read(offset, dst, dstOff, len);
  }
  async write(offset: number, src: Uint8Array, srcOff: number, len: number): Promise<IoResult> {
    return (await this.gate('write', offset, len)) ?? this.inner.write(offset, src, srcOff, len);
  }
  async readv(offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult> {
    return (await this.gate('read', offset, viewsBytes(views, count))) ?? this.inner.readv(offset, views, count);
  }
  async writev(offset: number, views: readonly Uint8Array[], count: number): Promise<IoResult> {
    return (await this.gate('write', offset, viewsBytes(views, count))) ?? this.inner.writev(offset, views, count);
  }
  async flush(): Promise<IoResult> {
    return (await this.gate('flush', 0, 0)) ?? this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
