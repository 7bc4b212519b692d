/**
 * The NIC event trace (STUBDM_NET_TRACE, net/trace.ts) and its HMP report
 * (devices/e1000/trace.ts), on the simulator: the model of Linux's driver
 * (guestmodel.ts) pings "dom0" through every real piece on the path: its
 * register accesses are ioreqs through the IoreqServer, the frames go
 * through a TapBackend over the scripted addon, dom0 answers each echo
 * request after `REPLY_MS` by making the tap readable. The trace must show
 * each ping's events in the order they happened and its counts must be what
 * the model itself counted; without a trace nothing is recorded and a
 * ping's accesses allocate nothing either way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoreqServer } from '../../../src/ioreq/server.ts';
import { TapBackend } from '../../../src/net/tap.ts';
import { EV_READABLE } from '../../../src/net/native.ts';
import * as T from '../../../src/net/trace.ts';
import * as R from '../../../src/devices/e1000/regs.ts';
import { createE1000 } from '../../../src/devices/e1000/index.ts';
import { describeEvent, formatNetTrace, NETTRACE_OFF, phaseMs, pingPhases } from '../../../src/devices/e1000/trace.ts';
import { VirtualClock } from '../../../src/core/clock.ts';
import { FakeTapIo } from '../../helpers/fake-tapio.ts';
import { LoopMemory } from '../../helpers/loop-memory.ts';
import { bytesPerOp } from '../../helpers/alloc.ts';
import { LinuxE1000Model, nodeTimerClock, type CountingClock } from './guestmodel.ts';
import { MAC, makeNic, MMIO_BASE, silent } from './harness.ts';

const DOM0_MAC = [0x02, 0, 0, 0, 0, 1];
const EXIT_MS = 0.5;
const REPLY_MS = 0.3;

/** An Ethernet + IPv4 + ICMP echo (type 8 request, 0 reply) of 98 bytes, as ping -c sends. */
function echo(type: 0 | 8, seq: number, dst: ArrayLike<number>, src: ArrayLike<number>): Uint8Array {
  const f = new Uint8Array(98);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[14] = 0x45; // IPv4, 20-byte header
  f[16] = 0;
  f[17] = 84;
  f[22] = 64;
  f[23] = 1; // ICMP
  f[34] = type;
  f[38] = 0x12; // identifier
  f[39] = 0x34;
  f[40] = seq >> 8;
  f[41] = seq & 0xff;
  return f;
}

/** The model pinging dom0 `count` times (200 ms apart) through the ioreq server and a tap, traced. */
function tracedPings(count: number) {
  const io = new FakeTapIo();
  let cc: CountingClock | null = null;
  const n = makeNic({
    clock: (c) => (cc = nodeTimerClock(c, true)),
    trace: 4096,
    backend: (t) => TapBackend.fromFd('fake0', -1, 0, silent, io, t),
  });
  const server = new IoreqServer(n.sim, n.board, silent);
  server.addTrace(n.trace!);
  server.start();
  // The guest's register accesses become ioreqs (as on Xen), not direct calls.
  n.r32 = (off) => n.sim.readl(MMIO_BASE + off);
  n.w32 = (off, v) => n.sim.writel(MMIO_BASE + off, v >>> 0);
  let replied = -1;
  const m = new LinuxE1000Model(n, n.clock, {
    exitMs: EXIT_MS,
    onFrame: (f) => {
      if (f[34] === 0) replied = (f[40] << 8) | f[41];
    },
  });
  // dom0: an echo request written to the tap is answered REPLY_MS later, on a readable wake-up.
  io.onWrite = (f) => {
    if (f[23] !== 1 || f[34] !== 8) return;
    const reply = echo(0, (f[40] << 8) | f[41], MAC, DOM0_MAC);
    n.clock.timeout(REPLY_MS, () => {
      io.rx.push(reply);
      io.fire(EV_READABLE);
    });
  };
  m.setup();
  const before = { exits: m.exits, irqs: m.irqs, fired: cc!.fired, recorded: n.trace!.recorded };
  for (let seq = 0; seq < count; seq++) {
    m.xmit(echo(8, seq, DOM0_MAC, MAC));
    if (!m.idleUntil(() => replied === seq && n.intx() === 0, 1000)) throw new Error(`ping ${seq}: no reply in 1 s`);
    m.idleUntil(() => false, 200);
  }
  return { n, m, cc: cc!, before, trace: n.trace!, io };
}

test('a traced ping: the events of the exchange in the order they happened', () => {
  const { trace, before } = tracedPings(3);
  const ev = trace.events();
  // The second ping, from its TDT write to the IMS write that ends its interrupt (steady state).
  const tdts = ev.map((e, i) => (e.kind === T.EV_REG_WRITE && e.sub === R.TDT ? i : -1)).filter((i) => i >= 0);
  const from = tdts[tdts.length - 2] - 1; // its ioreq wake-up comes first
  const to = ev.findIndex((e, i) => i > from && e.kind === T.EV_REG_WRITE && e.sub === R.IMS);
  const lines = ev.slice(from, to + 4).map(describeEvent);
  assert.deepEqual(lines, [
    'ioreq wake',
    'W TDT <- 0x00000002',
    'TX 98 bytes echo-request seq=1 in TDT write',
    'arm TIDV 8.192 us', // IDE: TXDW waits for TIDV (Node's floor makes it 1 ms on Xen)...
    'arm TADV 32.768 us',
    'cause TXQE',
    'ioreq answered',
    'tap wake readable', // dom0's reply, REPLY_MS later
    'RX 98 bytes echo-reply seq=1',
    'RX DMA done, RDH=2',
    'cause RXT0',
    'cancel TIDV (its cause went with another interrupt)', // ...and goes out with the reply's RXT0
    'cancel TADV (its cause went with another interrupt)',
    'cause folded in TXDW',
    'INTx 1',
    'ioreq wake',
    'R ICR -> 0x00000083 (TXDW|TXQE|RXT0)',
    'INTx 0',
    'ioreq answered',
    'ioreq wake',
    'W IMC <- 0xffffffff (all)',
    'ioreq answered',
    'ioreq wake',
    'R STATUS -> 0x80080783',
    'ioreq answered',
    'ioreq wake',
    'W RDT <- 0x00000001',
    'ioreq answered',
    'ioreq wake',
    'W IMS <- 0x0000009d (TXDW|LSC|RXSEQ|RXDMT0|RXT0)',
    'ioreq answered',
    'ioreq wake',
    'R STATUS -> 0x80080783',
  ]);
  // Timestamps never go backwards, and every event recorded is kept (the ring did not wrap).
  for (let i = 1; i < ev.length; i++) assert.ok(ev[i].t >= ev[i - 1].t, `event ${i} goes back in time`);
  assert.equal(ev.length, trace.recorded);
  assert.ok(trace.recorded > before.recorded);
});

test("the summary's phases come in order and its counts are the model's", () => {
  const count = 5;
  const { trace, m, cc, before } = tracedPings(count);
  const pings = pingPhases(trace.events());
  assert.deepEqual(pings.map((p) => p.seq), [0, 1, 2, 3, 4]);
  for (const p of pings) {
    const at = `ping ${p.seq}`;
    const ts = [p.tdt, p.tx, p.wake, p.rx, p.dma, p.irq, p.icr, p.ims];
    assert.ok(ts.every((t) => t !== null), `${at}: a phase is missing: ${JSON.stringify(p)}`);
    for (let i = 1; i < ts.length; i++) assert.ok(ts[i]! >= ts[i - 1]!, `${at}: phase ${i} before phase ${i - 1}`);
    assert.equal(p.deferred, false, `${at}: the request went out inside the TDT write`);
    const [tdtTx, txWake, wakeRx, rxDma, dmaIrq, irqIcr, icrIms, total] = phaseMs(p);
    // On the virtual clock: the send is synchronous, dom0 answers REPLY_MS after it, the
    // reply goes to guest memory and up the line at once; the guest's ISR takes its exits.
    assert.equal(tdtTx, 0, at);
    assert.ok(Math.abs(txWake! - REPLY_MS) < 1e-9, `${at}: tx>wake ${txWake}`);
    assert.deepEqual([wakeRx, rxDma, dmaIrq], [0, 0, 0], at);
    assert.ok(irqIcr! >= EXIT_MS / 2 && irqIcr! <= EXIT_MS / 2 + 0.05 + 1e-9, `${at}: irq>icr ${irqIcr}`);
    // ICR read, then IMC, STATUS, RDT: three exits, and the IMS write half of one.
    assert.ok(Math.abs(icrIms! - 4 * EXIT_MS) < 1e-9, `${at}: icr>ims ${icrIms}`);
    assert.ok(Math.abs(total! - (tdtTx! + txWake! + wakeRx! + rxDma! + dmaIrq! + irqIcr! + icrIms!)) < 1e-9, at);
    // The DM's share of an ioreq is 0 on the virtual clock; between two the guest's exit, EXIT_MS.
    assert.equal(p.dmMs, 0, at);
    assert.ok(Math.abs(p.gapMs! - EXIT_MS) < 1e-9, `${at}: gap ${p.gapMs}`);
  }
  const sum = (f: (p: (typeof pings)[0]) => number) => pings.reduce((a, p) => a + f(p), 0);
  assert.equal(sum((p) => p.irqs), m.irqs - before.irqs, 'interrupts');
  assert.equal(sum((p) => p.regs), m.exits - before.exits, 'register accesses');
  assert.equal(sum((p) => p.ioreqs), m.exits - before.exits, 'ioreqs: one per register access');
  assert.equal(sum((p) => p.timers), cc.fired - before.fired, 'timer runs');
  // What netmodel.test.ts pins down for these figures: 7 exits and one interrupt per ping, no timer.
  assert.deepEqual([sum((p) => p.regs) / count, sum((p) => p.irqs) / count, sum((p) => p.timers)], [7, 1, 0]);
});

test('info nettrace: the summary line per ping, the medians, and at most the asked-for number of events', () => {
  const { trace } = tracedPings(3);
  const text = formatNetTrace(trace, 20);
  const lines = text.split('\n');
  assert.match(lines[0], new RegExp(`^nettrace: ${trace.recorded} events kept of ${trace.recorded} recorded \\(ring of 4096\\)`));
  assert.match(text, /^pings: 3 echo requests sent/m);
  for (const seq of [0, 1, 2]) assert.match(text, new RegExp(`^ {4}${seq} .* 0\\.300 .* sync$`, 'm'));
  assert.match(text, /^ {9}median .*per ping: irqs 1\.00 timers 0\.00 regs 7\.00 ioreqs 7\.00 held 0\.00$/m);
  assert.match(text, /^ {2}replies seen: 3 of 3$/m);
  assert.match(text, /^timer runs in the trace: ITR 0, TIDV 0, TADV 0, RDTR 0, RADV 0, kick 0, autoneg 0$/m);
  const events = lines.slice(lines.findIndex((l) => l.startsWith('      t_ms')) + 1).filter((l) => l !== '');
  assert.equal(events.length, 20);
  assert.match(text, new RegExp(`^events \\(the last 20\\):$`, 'm'));
  assert.match(events[events.length - 2], /R STATUS -> 0x80080783$/); // the last ping's IMS write flushed
  assert.match(events[events.length - 1], /ioreq answered$/);
  // The whole answer stays bounded with the default: 400 events after the summary.
  assert.ok(formatNetTrace(trace).split('\n').length < 450 + 3 + 20);
});

test('a full ring keeps the newest entries, and a read completed after it was overwritten is left alone', () => {
  let t = 0;
  const tr = new T.NetTrace(T.NET_TRACE_MIN, () => t);
  const first = tr.reg(T.EV_REG_READ, R.ICR, 0);
  for (let i = 0; i < T.NET_TRACE_MIN + 10; i++) {
    t = i;
    tr.record(T.EV_CAUSE, T.CAUSE_RAISED, i);
  }
  tr.complete(first, 0xff); // overwritten long ago: must not touch the entry now in its slot
  const ev = tr.events();
  assert.equal(ev.length, T.NET_TRACE_MIN);
  assert.equal(tr.recorded, T.NET_TRACE_MIN + 11);
  assert.deepEqual(ev.map((e) => e.value), Array.from({ length: T.NET_TRACE_MIN }, (_, i) => i + 10));
  // Fields round-trip at their limits.
  tr.record(15, 0x1ffff, 0xffffffff);
  assert.deepEqual(tr.events().at(-1), { t, kind: 15, sub: 0x1ffff, value: 0xffffffff });
  assert.throws(() => new T.NetTrace(T.NET_TRACE_MIN - 1, () => 0), RangeError);
});

test('STUBDM_NET_TRACE: unset or empty is off; anything but an entry count in range is refused', () => {
  assert.equal(T.parseNetTraceEnv(undefined), null);
  assert.equal(T.parseNetTraceEnv(''), null);
  assert.equal(T.parseNetTraceEnv('4096'), 4096);
  for (const bad of ['1', '63', String(T.NET_TRACE_MAX + 1), '4k', '-5', ' 4096', '1e4']) {
    assert.match(String(T.parseNetTraceEnv(bad)), /^STUBDM_NET_TRACE=.* is not a number of trace entries/, bad);
  }
  assert.match(NETTRACE_OFF, /STUBDM_NET_TRACE/);
});

test('frameInfo: echo request and reply with their sequence, ARP, and nothing read past the frame', () => {
  const req = echo(8, 0x1234, DOM0_MAC, MAC);
  assert.equal(T.frameInfo(req, req.length), (T.FRAME_ECHO_REQUEST | (0x1234 << 16)) >>> 0);
  const rep = echo(0, 7, MAC, DOM0_MAC);
  assert.equal(T.frameInfo(rep, rep.length), T.FRAME_ECHO_REPLY | (7 << 16));
  assert.equal(T.frameInfo(rep, 41), T.FRAME_OTHER, 'the ICMP header cut short');
  const frag = rep.slice();
  frag[21] = 0x10; // fragment offset: no ICMP header here
  assert.equal(T.frameInfo(frag, frag.length), T.FRAME_OTHER);
  const arp = new Uint8Array(60);
  arp[12] = 0x08;
  arp[13] = 0x06;
  assert.equal(T.frameInfo(arp, 60), T.FRAME_ARP);
  assert.equal(T.frameInfo(arp, 13), T.FRAME_OTHER);
});

/**
 * One ping's NIC work, straight through the register handler: the request
 * sent from its TDT write, the reply received, the ISR's ICR read, IMC, RDT
 * and IMS. Returns the op and the trace (if `entries`).
 */
function pingOp(entries: number | null): { op: () => void; trace: T.NetTrace | null; sent: () => number } {
  const RING = 256;
  const ram = new Uint8Array(4 << 20);
  const clock = new VirtualClock();
  const trace = entries === null ? null : new T.NetTrace(entries, () => clock.now());
  let sent = 0;
  let receiver: ((f: Uint8Array) => boolean) | null = null;
  const nic = createE1000({
    memory: new LoopMemory(ram),
    clock,
    mac: MAC,
    log: silent,
    trace,
    backend: {
      name: 'count',
      offloads: false,
      send: () => (sent++, true),
      setReceiver: (r) => void (receiver = r),
      resumeReceive: () => {},
      onWritable: () => {},
      close: async () => {},
    },
  });
  nic.config.write(0x04, 2, 0x0007);
  const w = (off: number, v: number) => nic.mmio.write(off, 4, v >>> 0);
  const put = (at: number, v: number) => new DataView(ram.buffer).setUint32(at, v >>> 0, true);
  ram.set(echo(8, 1, DOM0_MAC, MAC), 0x100000);
  for (let i = 0; i < RING; i++) {
    put(0x10000 + 16 * i, 0x100000);
    put(0x10000 + 16 * i + 8, 98 | R.TXD_CMD_EOP | R.TXD_CMD_RS);
    put(0x20000 + 16 * i, 0x200000 + (i % 8) * 2048);
  }
  w(R.TDBAL, 0x10000);
  w(R.TDLEN, RING * 16);
  w(R.TCTL, R.TCTL_EN);
  w(R.RDBAL, 0x20000);
  w(R.RDLEN, RING * 16);
  w(R.RDT, RING - 1);
  w(R.RCTL, R.RCTL_EN | R.RCTL_BAM);
  w(R.IMS, R.ICR_RXT0 | R.ICR_TXDW);
  const reply = echo(0, 1, MAC, DOM0_MAC);
  const rx = receiver!;
  let t = 0;
  const op = () => {
    t = (t + 1) % RING;
    w(R.TDT, t);
    if (!rx(reply)) throw new Error('RX ring full');
    nic.mmio.read(R.ICR, 4);
    w(R.IMC, 0xffffffff);
    w(R.RDT, (t + RING - 1) % RING);
    w(R.IMS, R.ICR_RXT0 | R.ICR_TXDW);
  };
  return { op, trace, sent: () => sent };
}

test('without a trace nothing is recorded, and a ping allocates nothing per access, traced or not', () => {
  const off = pingOp(null);
  off.op();
  assert.equal(off.trace, null);
  const on = pingOp(T.NET_TRACE_MIN);
  on.op();
  // One ping records its accesses, frames, causes and line changes: the trace is live.
  assert.ok(on.trace!.recorded >= 8, `recorded ${on.trace!.recorded}`);
  assert.ok(on.trace!.events().some((e) => e.kind === T.EV_TX) && on.trace!.events().some((e) => e.kind === T.EV_RX_DMA));
  for (const [name, p] of [['off', off], ['on', on]] as const) {
    const perOp = bytesPerOp(p.op, 5000, 20, 50_000);
    // 6 accesses, a sent and a received frame per op: a single object per op would be >= 16 bytes.
    assert.ok(perOp < 1, `trace ${name}: ${perOp.toFixed(2)} bytes allocated per ping`);
    assert.ok(p.sent() > 50_000, `trace ${name}: the pings went out`);
  }
});
