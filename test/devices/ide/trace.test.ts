/**
 * The disk event trace (STUBDM_DISK_TRACE, block/trace.ts) and its HMP
 * report (devices/ide/trace.ts), on the simulator: a model of Linux's
 * ata_piix (libata.ts) issues real READ/WRITE DMA EXT commands of 512 KiB
 * through the ioreq server, the controller, the bus master's PRD walk and
 * zero-copy views, and a backend held until the virtual clock has moved by
 * BACKEND_MS. The trace must show each request's events in the order they
 * happened, its phases must be the model's times and its counts the model's
 * ioreqs; firmware's READ SECTORS gives its ioreqs per sector; without a
 * trace nothing is recorded, and the register paths allocate nothing either way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSimHost, simBoard, simClock, type SimHost } from '../../../src/sim/index.ts';
import { IoreqServer } from '../../../src/ioreq/server.ts';
import { installPcPlatform } from '../../../src/pci/platform.ts';
import { IdeController } from '../../../src/devices/ide/controller.ts';
import { MemoryBackend } from '../../../src/block/memory.ts';
import { FaultyBackend } from '../../../src/block/fault.ts';
import * as T from '../../../src/block/trace.ts';
import { describeEvent, DISKTRACE_OFF, dmaRequests, formatDiskTrace, phaseMs, pioCommands, pioKeys, summaryKeys } from '../../../src/devices/ide/trace.ts';
import { BMIBA, CMD_TO_START, DMA_IOREQS, IDE_DEVFN, IRQ_ACCESSES, ISSUE_BEFORE_CMD, LibataModel, pioIoreqs } from './libata.ts';
import { FakeMemory } from './harness.ts';
import { bytesPerOp } from '../../helpers/alloc.ts';
import { pino } from 'pino';

const EXIT_MS = 0.5;
const IRQ_MS = 2;
const THINK_MS = 3;
const BACKEND_MS = 7;
const REQ = 512 * 1024;
const PRDT = 0x2000;

/** A PRD table of 128 scattered 4 KiB pages (what a 1 MiB O_DIRECT dd buffer gives per 512 KiB request). */
function writePrdTable(sim: SimHost): void {
  const prd: number[] = [];
  for (let i = 0; i < 128; i++) {
    const addr = 0x100000 + i * 0x2000;
    prd.push(addr & 0xff, (addr >> 8) & 0xff, (addr >> 16) & 0xff, addr >>> 24, 0x00, 0x10, 0, i === 127 ? 0x80 : 0);
  }
  sim.memwrite(PRDT, prd);
}

function machine(entries: number | null) {
  const sim = createSimHost({ ramBytes: 32 << 20 });
  const board = simBoard(sim);
  const trace = entries === null ? null : new T.DiskTrace(entries, () => sim.clock.now());
  const data = new Uint8Array(16 << 20).map((_, i) => (i * 7 + (i >> 9)) & 0xff);
  const disk = new FaultyBackend(new MemoryBackend(data));
  const log = pino({ level: 'silent' });
  const ide = IdeController.forBoard(board, [{ kind: 'disk', backend: disk }], log, trace);
  installPcPlatform(board, { ide, ramBytes: 32 << 20, log });
  const server = new IoreqServer(sim, board, log);
  if (trace !== null) server.addTrace(trace);
  server.start();
  sim.pciConfigWrite(IDE_DEVFN, 0x20, 4, BMIBA | 1);
  sim.pciConfigWrite(IDE_DEVFN, 0x04, 2, 0x0005);
  writePrdTable(sim);
  const m = new LibataModel(sim, { exitMs: EXIT_MS, irqMs: IRQ_MS, thinkMs: THINK_MS });
  return { sim, disk, server, trace, m, data };
}

/** `count` DMA commands of 512 KiB as ata_piix issues them; the backend takes BACKEND_MS of virtual time each. */
async function tracedRequests(count: number, write = false) {
  const r = machine(4096);
  const { sim, disk, m } = r;
  disk.hold = () => true;
  for (let k = 0; k < count; k++) {
    m.issueDma(8 + k * (REQ / 512), REQ / 512, write, PRDT);
    await sim.waitFor(() => disk.heldCount === 1);
    simClock(sim).advance(BACKEND_MS);
    disk.release();
    await sim.waitFor(() => sim.isaIrqLevel(14) === 1);
    assert.equal(m.dmaInterrupt() & 0x89, 0, `request ${k} ended without error`);
    assert.equal(sim.isaIrqLevel(14), 0);
    m.think();
  }
  // The next command's write ends the last request's window.
  m.issueDma(0, 8, false, PRDT);
  r.server.stop();
  return r;
}

test('a traced READ DMA EXT: the events of one request in the order they happened', async () => {
  const { trace, data, sim } = await tracedRequests(2);
  const ev = trace!.events();
  const cmds = ev.map((e, i) => (e.kind === T.EV_ATA_WRITE && e.sub === 7 ? i : -1)).filter((i) => i >= 0);
  // The second request, from its Command write to the Status read that ends its interrupt.
  const from = cmds[1];
  const to = ev.findIndex((e, i) => i > from && e.kind === T.EV_ATA_READ && e.sub === 7);
  assert.deepEqual(ev.slice(from, to + 1).map(describeEvent), [
    'W ch0 COMMAND <- 0x25 READ DMA EXT',
    'transfer 1024 sectors at LBA 1032',
    'ioreq answered',
    'ioreq wake',
    'R ch0 ALTSTATUS -> 0x58', // ata_sff_pause: DRQ, waiting for the bus master
    'ioreq answered',
    'ioreq wake',
    'R BM CMD0 -> 0x8',
    'ioreq answered',
    'ioreq wake',
    'W BM CMD0 <- 0x9', // Start: the PRD walk and the backend request happen inside this write
    'PRD table: 128 entries cover it, 524288 bytes in all',
    'backend slot 0 read 524288 bytes issued',
    'ioreq answered',
    'backend slot 0 done', // BACKEND_MS later
    'bus master ch0 done: ok',
    'INTRQ ch0 1 (call 0.0 us)',
    'ioreq wake',
    'R BM STATUS0 -> 0x4', // the handler: Interrupt set, Active cleared
    'ioreq answered',
    'ioreq wake',
    'R BM CMD0 -> 0x9',
    'ioreq answered',
    'ioreq wake',
    'W BM CMD0 <- 0x8',
    'ioreq answered',
    'ioreq wake',
    'R ch0 ALTSTATUS -> 0x50',
    'ioreq answered',
    'ioreq wake',
    'R ch0 ALTSTATUS -> 0x50',
    'ioreq answered',
    'ioreq wake',
    'R ch0 STATUS -> 0x50',
  ]);
  assert.equal(describeEvent(ev[to + 1]), 'INTRQ ch0 0 (call 0.0 us)', 'the Status read lowers the line');
  // Timestamps never go backwards, the ring did not wrap, and the data arrived.
  for (let i = 1; i < ev.length; i++) assert.ok(ev[i].t >= ev[i - 1].t, `event ${i} goes back in time`);
  assert.equal(ev.length, trace!.recorded);
  assert.deepEqual(sim.memread(0x100000 + 0x2000, 4096), data.subarray(1032 * 512 + 4096, 1032 * 512 + 8192));
});

test("each request's phases are the model's times and its counts the model's ioreqs", async () => {
  const count = 5;
  const { trace, m } = await tracedRequests(count);
  const reqs = dmaRequests(trace!.events());
  assert.equal(reqs.length, count + 1, 'the closing command is listed too');
  const done = reqs.slice(0, count);
  for (const [k, r] of done.entries()) {
    const at = `request ${k}`;
    assert.deepEqual([r.write, r.bytes, r.lba, r.prd, r.outcome, r.sync], [false, REQ, 8 + k * 1024, 128, T.BM_OK, false], at);
    const [cmdGo, goSub, subDone, doneIrq, irqAck, ackStop, stopSt, stNext, total] = phaseMs(r);
    const near = (x: number | null, want: number, what: string) => assert.ok(x !== null && Math.abs(x - want) < 1e-9, `${at}: ${what} ${x}, want ${want}`);
    near(cmdGo, CMD_TO_START * EXIT_MS, 'cmd>go'); // Alternate Status, BM command read, Start written
    near(goSub, 0, 'go>sub');
    near(subDone, BACKEND_MS, 'sub>done');
    near(doneIrq, 0, 'done>irq');
    near(irqAck, IRQ_MS + EXIT_MS, 'irq>ack'); // delivery, then the handler's first exit (its wake-up)
    near(ackStop, 2 * EXIT_MS, 'ack>stop');
    near(stopSt, 3 * EXIT_MS, 'stop>st');
    // The interrupt's last two accesses, the guest's work, then the next issue up to its Command write.
    near(stNext, 2 * EXIT_MS + THINK_MS + ISSUE_BEFORE_CMD * EXIT_MS, 'st>next');
    near(total, DMA_IOREQS * EXIT_MS + BACKEND_MS + IRQ_MS + THINK_MS, 'total');
    assert.equal(r.ioreqs, DMA_IOREQS, `${at}: ioreqs`);
    assert.equal(r.dm.length, DMA_IOREQS, `${at}: one DM time per ioreq`);
    assert.ok(r.dm.every((x) => x === 0), `${at}: no virtual time passes inside the DM`);
    assert.equal(r.gap.length, DMA_IOREQS - 1);
    assert.equal(r.irqUs, 0, `${at}: the interrupt call costs no virtual time`);
  }
  // Every ioreq the model made is counted once: those before the first Command write and after the closing one are in no request.
  assert.equal(m.ioreqs, count * DMA_IOREQS + ISSUE_BEFORE_CMD + CMD_TO_START);
  assert.equal(reqs.reduce((a, r) => a + r.ioreqs, 0), m.ioreqs - (ISSUE_BEFORE_CMD - 1));
  const kv = new Map(summaryKeys(done));
  assert.equal(kv.get('reqs'), String(count));
  assert.equal(kv.get('kib'), '512');
  assert.equal(kv.get('ioreqs'), String(DMA_IOREQS));
  assert.equal(kv.get('dm_us'), '0');
  assert.equal(kv.get('gap_ms'), EXIT_MS.toFixed(3), 'between most ioreqs: one exit');
  assert.equal(kv.get('backend_ms'), BACKEND_MS.toFixed(3));
  assert.equal(kv.get('irq_ack_ms'), (IRQ_MS + EXIT_MS).toFixed(3));
  assert.equal(kv.get('sync'), '0');
  assert.equal(IRQ_ACCESSES + ISSUE_BEFORE_CMD + CMD_TO_START, DMA_IOREQS, 'the model adds up');
});

test('info disktrace: a line per request, the read and write summaries, and at most the asked-for events', async () => {
  const { trace } = await tracedRequests(3, true);
  const text = formatDiskTrace(trace!, 20);
  const lines = text.split('\n');
  assert.match(lines[0], new RegExp(`^disktrace: ${trace!.recorded} events kept of ${trace!.recorded} recorded \\(ring of 4096\\)`));
  assert.match(text, /^dma: 4 DMA commands/m);
  assert.equal(lines.filter((l) => /^ {2}W .* 512 /.test(l)).length, 3, 'three writes of 512 KiB');
  assert.match(text, new RegExp(`^disktrace write: reqs=3 kib=512 ioreqs=${DMA_IOREQS} ioreqs_p90=${DMA_IOREQS} dm_us=0 dm_us_p90=0 gap_ms=0\\.500 `, 'm'));
  assert.match(text, /^disktrace read: reqs=1 kib=4 /m, 'the closing read, with no next command: its ioreqs so far');
  const events = lines.slice(lines.findIndex((l) => l.startsWith('       t_ms')) + 1).filter((l) => l !== '');
  assert.equal(events.length, 20);
  assert.match(text, /^events \(the last 20\):$/m);
  assert.match(DISKTRACE_OFF, /STUBDM_DISK_TRACE/);
  assert.equal(formatDiskTrace(trace!, 0, 'mapcache since start: maps=1').split('\n')[1], 'mapcache since start: maps=1', "the host's counters under the first line");
});

test('firmware READ SECTORS: ioreqs per sector, their DM time and the read-ahead requests', async () => {
  const { sim, trace, m, server, data } = machine(4096);
  const sectors = [8, 16, 4];
  let lba = 100;
  // The drive shows each DRQ block with INTRQ (the first once the backend's read-ahead is in).
  const ready = () => sim.waitFor(() => sim.isaIrqLevel(14) === 1);
  for (const n of [...sectors, 1]) {
    await m.readSectors(lba, n, 0x8000, ready);
    assert.deepEqual(sim.memread(0x8000, n * 512), data.subarray(lba * 512, (lba + n) * 512));
    lba += n;
  }
  server.stop();
  const cmds = pioCommands(trace!.events()).slice(0, sectors.length); // the last one only closes the third's window
  assert.deepEqual(cmds.map((c) => [c.sectors, c.dataBytes, c.submits]), sectors.map((n) => [n, n * 512, 1]), 'one read-ahead request per command');
  assert.deepEqual(cmds.map((c) => c.ioreqs), sectors.map(pioIoreqs), 'from its Command write to the next one');
  const kv = new Map(pioKeys(cmds));
  const total = sectors.reduce((a, b) => a + b, 0);
  const ioreqs = sectors.map(pioIoreqs).reduce((a, b) => a + b, 0);
  assert.deepEqual(
    [kv.get('cmds'), kv.get('sectors'), kv.get('ioreqs'), kv.get('ioreqs_per_sector'), kv.get('dm_us'), kv.get('backend_reqs')],
    ['3', String(total), String(ioreqs), (ioreqs / total).toFixed(2), '0', '3'],
  );
  assert.equal(m.ioreqs, ioreqs + pioIoreqs(1));
  // The report covers all four commands; the closing one's window ends with the trace.
  assert.match(formatDiskTrace(trace!), new RegExp(`^disktrace pio: cmds=4 sectors=${total + 1} ioreqs=${ioreqs + 3} ioreqs_per_sector=${((ioreqs + 3) / (total + 1)).toFixed(2)} dm_us=0 dm_us_p90=0 backend_reqs=4$`, 'm'));
});

test('a full ring keeps the newest requests; a STUBDM_DISK_TRACE that is not an entry count is refused', async () => {
  const small = machine(T.DISK_TRACE_MIN);
  small.m.issueDma(8, 8, false, PRDT);
  small.m.issueDma(16, 8, false, PRDT);
  small.server.stop();
  assert.equal(small.trace!.events().length, T.DISK_TRACE_MIN);
  assert.ok(small.trace!.recorded > T.DISK_TRACE_MIN);
  assert.equal(T.parseDiskTraceEnv(undefined), null);
  assert.equal(T.parseDiskTraceEnv('65536'), 65536);
  for (const bad of ['1', String(T.DISK_TRACE_MAX + 1), '64k', ' 64']) {
    assert.match(String(T.parseDiskTraceEnv(bad)), /^STUBDM_DISK_TRACE=.* is not a number of trace entries/, bad);
  }
  assert.throws(() => new T.DiskTrace(T.DISK_TRACE_MIN - 1, () => 0), /disk trace of 63 entries/);
});

test('without a trace nothing is recorded; the register paths and the interrupt allocate nothing, traced or not', () => {
  for (const traced of [false, true]) {
    const trace = traced ? new T.DiskTrace(T.DISK_TRACE_MIN, () => 0) : null;
    const ide = new IdeController({ memory: new FakeMemory(1 << 20), irqs: [{ set: () => {} }, { set: () => {} }], drives: [{ kind: 'disk', backend: new MemoryBackend(1 << 20) }], trace });
    const cmd = ide.commandBlock(0);
    const ctl = ide.controlBlock(0);
    const bm = ide.busMasterBlock;
    // What a DMA command's issue and interrupt do at the ports, less the data: the task file,
    // the bus master's registers, and CHECK POWER MODE, which completes at once and raises INTRQ.
    const op = () => {
      cmd.read(7, 1);
      cmd.write(6, 1, 0x40);
      ctl.read(0, 1);
      for (let r = 1; r <= 5; r++) cmd.write(r, 1, r);
      bm.write(4, 4, 0x2000);
      bm.write(0, 1, bm.read(0, 1) & ~1);
      cmd.write(7, 1, 0xe5);
      ctl.read(0, 1);
      bm.write(2, 1, bm.read(2, 1));
      cmd.read(7, 1);
    };
    op();
    if (trace !== null) {
      const kinds = new Set(trace.events().map((e) => e.kind));
      for (const k of [T.EV_ATA_READ, T.EV_ATA_WRITE, T.EV_BM_READ, T.EV_BM_WRITE, T.EV_IRQ]) assert.ok(kinds.has(k), `kind ${k} recorded`);
    }
    const perOp = bytesPerOp(op, 20_000, 10);
    // 17 accesses and an interrupt per op: a single object per op would be >= 16 bytes.
    assert.ok(perOp < 1, `trace ${traced ? 'on' : 'off'}: ${perOp.toFixed(2)} bytes allocated per op`);
  }
});
