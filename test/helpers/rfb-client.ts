/**
 * A small RFB (VNC) client written from RFC 6143 for tests: the handshake
 * (3.3/3.7/3.8, security None), SetEncodings, FramebufferUpdateRequest,
 * and FramebufferUpdate reading with raw and zlib rectangles.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type zlib from 'node:zlib';

export class RfbClient {
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { n: number; resolve: (b: Buffer) => void } | null = null;
  closed = false;
  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.pump();
    });
    sock.on('close', () => {
      this.closed = true;
      if (this.waiting) this.waiting.resolve(Buffer.alloc(0));
    });
  }
  static connect(port: number): Promise<RfbClient> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(port, '127.0.0.1', () => resolve(new RfbClient(s)));
      s.once('error', reject);
    });
  }
  private pump(): void {
    if (this.waiting && this.buf.length >= this.waiting.n) {
      const w = this.waiting;
      this.waiting = null;
      const out = this.buf.subarray(0, w.n);
      this.buf = this.buf.subarray(w.n);
      w.resolve(Buffer.from(out));
    }
  }
  read(n: number): Promise<Buffer> {
    return new Promise((resolve) => {
      this.waiting = { n, resolve };
      this.pump();
      if (this.closed && this.waiting) resolve(Buffer.alloc(0));
    });
  }
  send(...parts: (Buffer | number[])[]): void {
    this.sock.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
  }
  async handshake(version = '003.008'): Promise<{ w: number; h: number; name: string }> {
    assert.equal((await this.read(12)).toString(), 'RFB 003.008\n');
    this.send(Buffer.from(`RFB ${version}\n`));
    if (version === '003.003') {
      assert.equal((await this.read(4)).readUInt32BE(0), 1, 'security None chosen by the server');
    } else {
      assert.deepEqual([...(await this.read(2))], [1, 1], 'one type: None');
      this.send([1]);
      if (version === '003.008') assert.equal((await this.read(4)).readUInt32BE(0), 0, 'SecurityResult OK');
    }
    this.send([1]); // shared
    const si = await this.read(24);
    const name = (await this.read(si.readUInt32BE(20))).toString();
    assert.deepEqual([si[4], si[5], si[7]], [32, 24, 1], '32 bpp, depth 24, true colour');
    return { w: si.readUInt16BE(0), h: si.readUInt16BE(2), name };
  }
  encodings(...e: number[]): void {
    const b = Buffer.alloc(4 + 4 * e.length);
    b[0] = 2;
    b.writeUInt16BE(e.length, 2);
    e.forEach((v, i) => b.writeInt32BE(v, 4 + 4 * i));
    this.send(b);
  }
  request(incremental: boolean, w: number, h: number): void {
    const b = Buffer.alloc(10);
    b[0] = 3;
    b[1] = incremental ? 1 : 0;
    b.writeUInt16BE(w, 6);
    b.writeUInt16BE(h, 8);
    this.send(b);
  }
  /** One FramebufferUpdate: its rectangles with their raw data (decoded from zlib with `inflate`). */
  async update(bytesPerPixel = 4, inflate?: zlib.Inflate): Promise<{ x: number; y: number; w: number; h: number; enc: number; data: Buffer }[]> {
    const head = await this.read(4);
    assert.equal(head[0], 0, 'FramebufferUpdate');
    const out = [];
    for (let i = 0; i < head.readUInt16BE(2); i++) {
      const r = await this.read(12);
      const [x, y, w, h, enc] = [r.readUInt16BE(0), r.readUInt16BE(2), r.readUInt16BE(4), r.readUInt16BE(6), r.readInt32BE(8)];
      let data: Buffer = Buffer.alloc(0);
      if (enc === 0) data = await this.read(w * h * bytesPerPixel);
      else if (enc === 6) {
        const z = await this.read((await this.read(4)).readUInt32BE(0));
        data = await new Promise<Buffer>((resolve) => {
          const chunks: Buffer[] = [];
          const on = (c: Buffer) => {
            chunks.push(c);
            if (Buffer.concat(chunks).length >= w * h * bytesPerPixel) {
              inflate!.off('data', on);
              resolve(Buffer.concat(chunks));
            }
          };
          inflate!.on('data', on);
          inflate!.write(z);
        });
      }
      out.push({ x, y, w, h, enc, data });
    }
    return out;
  }
  close(): void {
    this.sock.destroy();
  }
}

