/**
 * xentop's VBD columns through the whole device model on the simulator, the
 * way libxenstat asks (tools/libs/stat/xenstat_qmp.c, Xen 4.17;
 * docs/xen-contract.md §11c), on its own socket `qmp-libxenstat-<domid>`:
 * - right after connect(), without reading the greeting, it writes
 *   `{ "execute": "qmp_capabilities" }` with NO line end;
 * - it reads "until quiet": everything that comes until a poll() window
 *   passes with no data; an empty first read and it gives up;
 * - then `{ "execute": "query-blockstats" }` (no line end), read the same
 *   way, and the WHOLE second buffer goes to one yajl_tree_parse: a late
 *   capabilities reply or an event in it and there are no stats;
 * - then per device `query-block`, read the same way, for `inserted.file`.
 *
 * libxenstat's window is 10 ms of wall time. Here the client shares the
 * device model's event loop and the machine is loaded (nice 19 next to a
 * Xen-in-QEMU VM), so "quiet" is counted in event-loop turns instead: a
 * reply must be readable within QUIET_TURNS turns of the command, which holds
 * only when it is written on the turn the command is read (no timer, no
 * deferred write); a reply put off by even a 1 ms timer misses it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { READ_SECTORS, SECTOR, startXenstatDm } from '../helpers/xenstat-dm.ts';

/** Turns of the event loop with no data that end a read (libxenstat: 10 ms of poll()). */
const QUIET_TURNS = 8;

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** libxenstat's side of one connection: raw bytes, its framing, its reads. */
class XenstatClient {
  private got = '';
  private seen = 0;
  private closed = false;
  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.got += d;
      this.seen++;
    });
    sock.on('close', () => (this.closed = true));
    sock.on('error', () => {});
  }

  /** connect() and, at once, the capabilities command (libxenstat does not wait for the greeting). */
  static open(qmp: string): XenstatClient {
    const c = new XenstatClient(net.createConnection(qmp));
    c.sock.write('{ "execute": "qmp_capabilities" }');
    return c;
  }

  /** What arrived until QUIET_TURNS turns passed with nothing new (libxenstat's qmp_read). */
  async readUntilQuiet(): Promise<string> {
    let quiet = 0;
    let last = this.seen;
    while (quiet < QUIET_TURNS && !this.closed) {
      await turn();
      if (this.seen !== last) {
        last = this.seen;
        quiet = 0;
      } else {
        quiet++;
      }
    }
    const b = this.got;
    this.got = '';
    return b;
  }

  /** libxenstat's qmp_query: the command with no line end, then one read. */
  async query(cmd: string): Promise<string> {
    this.sock.write(`{ "execute": "${cmd}" }`);
    return this.readUntilQuiet();
  }

  close(): void {
    this.sock.destroy();
  }
}

test('libxenstat exchange: no line ends, no greeting read, read-until-quiet; the blockstats buffer is one reply with the counters', async (t) => {
  const { dm, qmp, disk } = await startXenstatDm(t);

  // What the stats are read for (xentop refreshes every second): several rounds in a row.
  for (let round = 0; round < 3; round++) {
    const c = XenstatClient.open(qmp);
    try {
      const first = await c.readUntilQuiet();
      assert.ok(first.length > 0, 'an empty first read: libxenstat gives up');
      // The greeting and the capabilities reply, and nothing else, inside the first read.
      const lines = first.split('\r\n');
      assert.equal(lines.pop(), '', `the first read ends with a whole message: ${JSON.stringify(first)}`);
      assert.equal(lines.length, 2, `greeting + capabilities reply in the first read: ${JSON.stringify(first)}`);
      assert.ok('QMP' in JSON.parse(lines[0]));
      assert.deepEqual(JSON.parse(lines[1]), { return: {} });

      const stats = await c.query('query-blockstats');
      // yajl_tree_parse of the whole buffer: exactly one JSON document (whitespace around it is fine).
      let doc: any;
      assert.doesNotThrow(() => (doc = JSON.parse(stats)), `the blockstats buffer is one JSON document: ${JSON.stringify(stats)}`);
      assert.ok(Array.isArray(doc.return), `"return" is an array: ${JSON.stringify(stats)}`);
      const [b] = doc.return;
      assert.equal(b.device, 'ide0-hd0');
      assert.ok(Number.isInteger(b.stats.rd_bytes) && Number.isInteger(b.stats.rd_operations));
      assert.equal(b.stats.rd_bytes, READ_SECTORS * SECTOR);
      assert.ok(b.stats.rd_operations >= 1);

      // qmp_get_block_image: query-block, the device's inserted.file, matched against the qdisk params.
      const block = await c.query('query-block');
      let bdoc: any;
      assert.doesNotThrow(() => (bdoc = JSON.parse(block)), `the query-block buffer is one JSON document: ${JSON.stringify(block)}`);
      assert.equal(bdoc.return.find((d: any) => d.device === b.device)?.inserted?.file, disk);
    } finally {
      c.close();
    }
  }

  // QEMU sends no event to a client before capabilities negotiation: a connection that has
  // only connected sees the greeting and nothing of the STOP/RESUME the libxl monitor causes.
  const raw = net.createConnection(qmp);
  t.after(() => void raw.destroy());
  let got = '';
  raw.setEncoding('utf8');
  raw.on('data', (d: string) => (got += d));
  for (let i = 0; i < 10_000 && !got.endsWith('\r\n'); i++) await turn();
  dm.qmp.machine.stop();
  dm.qmp.machine.cont();
  for (let i = 0; i < QUIET_TURNS; i++) await turn();
  assert.equal(got.split('\r\n').length, 2, `only the greeting: ${JSON.stringify(got)}`);
});
