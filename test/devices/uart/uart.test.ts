import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { RingBackend } from '../../../src/chardev/index.ts';
import {
  installUart, IER_EDSSI, IER_ELSI, IER_ERBFI, IER_ETBEI, IIR_CTI, IIR_MS, IIR_NO_INT, IIR_RDA, IIR_RLS,
  IIR_THRE, LSR_DR, LSR_OE, LSR_TEMT, LSR_THRE, MCR_LOOP, MCR_OUT2, MCR_RTS, MSR_CTS, MSR_DCD, MSR_DCTS, MSR_DDCD,
  FIFO_SIZE, type Uart16550,
} from '../../../src/devices/uart/index.ts';
import { restoreDevice, StateError, type StateObject } from '../../../src/core/device.ts';
import { createSimHost, simBoard, simClock } from '../../../src/sim/index.ts';
import { testBoard } from '../../helpers/board.ts';
import { prng } from '../../ioreq/helpers.ts';

const log = pino({ level: 'silent' });
const COM1 = 0x3f8;
const [THR, IER, IIR, LCR, MCR, LSR, MSR, SCR] = [0, 1, 2, 3, 4, 5, 6, 7].map((r) => COM1 + r);
const FCR = IIR;

/** COM1 on a board with a VirtualClock (the simulator's): timers move only when the test advances time. */
function vsetup() {
  const sim = createSimHost({ ramBytes: 1 << 20 });
  const board = simBoard(sim);
  const backend = new RingBackend('serial0', log);
  const uart = installUart(board, 0, backend);
  const outb = (p: number, v: number) => board.pio.write(p, 1, v);
  const inb = (p: number) => board.pio.read(p, 1);
  return { sim, board, clock: simClock(sim), backend, uart, outb, inb, irq: () => sim.isaIrqLevel(4) };
}

function setup() {
  const fb = testBoard();
  const backend = new RingBackend('serial0', log);
  const uart = installUart(fb.board, 0, backend);
  const outb = (p: number, v: number) => fb.board.pio.write(p, 1, v);
  const inb = (p: number) => fb.board.pio.read(p, 1);
  return { ...fb, backend, uart, outb, inb, irq: () => fb.isaLevel(4) };
}

test('COM1 claims 0x3f8-0x3ff and starts with no interrupt, THR empty', () => {
  const t = setup();
  assert.deepEqual([...t.host.ranges], ['pio:0x3f8-0x3ff']);
  assert.equal(t.inb(IIR), IIR_NO_INT);
  assert.equal(t.inb(LSR), LSR_THRE | LSR_TEMT);
  assert.equal(t.irq(), 0);
});

test("Linux 8250 autoconfig: scratch, IER, loopback MSR and FIFO probes identify a 16550A", () => {
  const t = setup();
  // scratch register holds a value
  t.outb(SCR, 0xa5);
  assert.equal(t.inb(SCR), 0xa5);
  // IER: zero reads back zero, 0x0f reads back 0x0f (upper bits always zero)
  t.outb(IER, 0);
  assert.equal(t.inb(IER) & 0x0f, 0);
  t.outb(IER, 0xff);
  assert.equal(t.inb(IER), 0x0f);
  t.outb(IER, 0);
  // loopback: MCR = LOOP|OUT2|RTS gives MSR lines DCD|CTS (0x90)
  t.outb(MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
  assert.equal(t.inb(MSR) & 0xf0, MSR_DCD | MSR_CTS);
  t.outb(MCR, 0);
  // FIFO enable: IIR bits 7:6 = 11 means 16550A
  t.outb(FCR, 0x01);
  assert.equal(t.inb(IIR) >> 6, 3);
  // LCR 0xbf (the EFR probe of 16650s): offset 2 still reads IIR on a 16550A, divisor latch reachable
  t.outb(LCR, 0xbf);
  assert.equal(t.inb(IIR) >> 6, 3);
  t.outb(LCR, 0x80);
  t.outb(COM1, 0x01);
  t.outb(COM1 + 1, 0x00);
  assert.equal(t.inb(COM1), 0x01);
  assert.equal(t.inb(COM1 + 1), 0x00);
  t.outb(LCR, 0x03);
  assert.equal(t.inb(LCR), 0x03);
  assert.equal(t.inb(IER), 0, 'DLAB off: offset 1 is IER again');
});

test('THRE: enabling ETBEI with THR empty raises it; reading IIR acks it; re-enabling raises again', () => {
  const t = setup();
  t.outb(IER, IER_ETBEI);
  assert.equal(t.irq(), 1);
  assert.equal(t.inb(IIR), IIR_THRE);
  assert.equal(t.irq(), 0, 'reading IIR while THRE is the source clears it');
  assert.equal(t.inb(IIR), IIR_NO_INT);
  // Linux's UART_BUG_THRE test: IER off then on again must show THRE at once
  t.outb(IER, 0);
  t.outb(IER, IER_ETBEI);
  assert.equal(t.inb(IIR), IIR_THRE);
  // IER written with ETBEI already set does not re-raise
  t.outb(IER, IER_ETBEI);
  assert.equal(t.inb(IIR), IIR_NO_INT);
  // a THR write re-arms it (the byte left at once)
  t.outb(THR, 0x41);
  assert.equal(t.irq(), 1);
  assert.equal(t.inb(IIR), IIR_THRE);
  t.outb(IER, 0);
  assert.equal(t.irq(), 0);
  // the first 4=0 is the reset level reaching the hypervisor once
  assert.deepEqual(t.host.isaEdges, ['4=0', '4=1', '4=0', '4=1', '4=0', '4=1', '4=0']);
});

test('polling boot loader: LSR.THRE then THR, bytes reach the backend in order', () => {
  const t = setup();
  for (const ch of Buffer.from('SeaBIOS\r\n')) {
    let spins = 0;
    while ((t.inb(LSR) & LSR_THRE) === 0) assert.ok(++spins < 10);
    t.outb(THR, ch);
  }
  assert.equal(t.backend.text(), 'SeaBIOS\r\n');
  assert.equal(t.irq(), 0, 'IER=0: no interrupt ever');
});

test('receive without FIFO: one byte held, the rest overrun; LSR read clears OE', () => {
  const t = setup();
  t.outb(IER, IER_ERBFI | IER_ELSI);
  t.backend.inject('abc');
  assert.equal(t.uart.overruns, 2);
  assert.equal(t.irq(), 1);
  assert.equal(t.inb(IIR), IIR_RLS, 'line status outranks received data');
  const lsr = t.inb(LSR);
  assert.equal(lsr & (LSR_DR | LSR_OE), LSR_DR | LSR_OE);
  assert.equal(t.inb(LSR) & LSR_OE, 0, 'OE is cleared by reading LSR');
  assert.equal(t.inb(IIR), IIR_RDA);
  assert.equal(t.inb(THR), 0x61);
  assert.equal(t.inb(LSR) & LSR_DR, 0);
  assert.equal(t.inb(IIR), IIR_NO_INT);
  assert.equal(t.irq(), 0);
});

test('16-byte RX FIFO: keeps 16, overruns the rest; trigger level and character timeout', () => {
  const t = setup();
  t.outb(FCR, 0x01 | 0x02 | 0x04 | (2 << 6)); // enable, clear both, trigger 8
  t.outb(IER, IER_ERBFI);
  t.backend.inject('xyz');
  assert.equal(t.inb(IIR) & 0x0f, IIR_CTI, 'below trigger: character timeout');
  assert.equal(t.inb(THR), 0x78);
  assert.equal(t.inb(IIR) & 0x0f, IIR_NO_INT, 'a read disarms the timeout');
  t.backend.inject('0123456789');
  assert.equal(t.inb(IIR) & 0x0f, IIR_RDA, '12 bytes >= trigger 8');
  t.backend.inject('ABCDEFGH');
  assert.equal(t.uart.overruns, 4, '2 + 10 + 8 = 20 bytes offered, 16 kept');
  let got = '';
  for (let i = 0; i < 40 && t.inb(LSR) & LSR_DR; i++) got += String.fromCharCode(t.inb(THR));
  assert.equal(got, 'yz0123456789ABCD');
  // FCR clear RX empties the FIFO
  t.backend.inject('q');
  t.outb(FCR, 0x01 | 0x02);
  assert.equal(t.inb(LSR) & LSR_DR, 0);
});

test('loopback: transmitted bytes come back on RBR and never reach the backend', () => {
  const t = setup();
  t.outb(FCR, 0x07);
  t.outb(MCR, MCR_LOOP);
  t.outb(THR, 0x55);
  t.outb(THR, 0xaa);
  t.backend.inject('ignored');
  assert.equal(t.inb(LSR) & LSR_DR, LSR_DR);
  assert.equal(t.inb(THR), 0x55);
  assert.equal(t.inb(THR), 0xaa);
  assert.equal(t.inb(LSR) & LSR_DR, 0);
  assert.equal(t.backend.total, 0);
});

test('modem status: loopback line changes set deltas, interrupt until MSR is read', () => {
  const t = setup();
  t.outb(MCR, MCR_LOOP);
  t.inb(MSR);
  t.outb(IER, IER_EDSSI);
  assert.equal(t.irq(), 0);
  t.outb(MCR, MCR_LOOP | MCR_RTS | MCR_OUT2);
  assert.equal(t.irq(), 1);
  assert.equal(t.inb(IIR), IIR_MS);
  const msr = t.inb(MSR);
  assert.equal(msr, MSR_CTS | MSR_DCD | MSR_DCTS | MSR_DDCD);
  assert.equal(t.irq(), 0);
  assert.equal(t.inb(MSR) & 0x0f, 0);
});

test('interrupt priority: RLS > RDA > THRE > MS', () => {
  const t = setup();
  t.outb(MCR, MCR_LOOP);
  t.outb(IER, IER_ERBFI | IER_ETBEI | IER_ELSI | IER_EDSSI);
  t.outb(MCR, MCR_LOOP | MCR_RTS); // MS pending
  t.outb(THR, 1); // loopback: RX data; THRE re-armed
  t.outb(THR, 2); // non-FIFO: overrun -> RLS
  assert.equal(t.inb(IIR), IIR_RLS);
  t.inb(LSR);
  assert.equal(t.inb(IIR), IIR_RDA);
  t.inb(THR);
  assert.equal(t.inb(IIR), IIR_THRE);
  assert.equal(t.inb(IIR), IIR_MS);
  t.inb(MSR);
  assert.equal(t.inb(IIR), IIR_NO_INT);
});

test('wide accesses read consecutive registers; the snapshot is plain data that round-trips', () => {
  const t = setup();
  t.outb(SCR, 0x12);
  t.outb(LCR, 0x03);
  assert.equal(t.board.pio.read(LCR, 2), 0x0003 | (0 << 8));
  t.board.pio.write(MCR, 2, 0xff00 | MCR_OUT2);
  assert.equal(t.inb(MCR), MCR_OUT2);
  t.outb(FCR, 0x01);
  t.backend.inject('hi');
  const saved = structuredClone(t.uart.snapshot());
  assert.equal(t.uart.id, 'uart.com1');
  const u = setup();
  u.uart.restore(saved);
  assert.deepEqual(u.uart.snapshot(), t.uart.snapshot());
  assert.equal(u.inb(SCR), 0x12);
  assert.equal(u.inb(THR), 0x68);
  assert.equal(u.inb(THR), 0x69);
  assert.equal(u.inb(LSR) & LSR_DR, 0);
});

test('COM2 sits at 0x2f8 on IRQ 3', () => {
  const fb = testBoard();
  const u = installUart(fb.board, 1, new RingBackend('serial1', log));
  assert.equal(u.id, 'uart.com2');
  u.write(1, 1, IER_ETBEI);
  assert.equal(fb.isaLevel(3), 1);
  assert.deepEqual([...fb.host.ranges], ['pio:0x2f8-0x2ff']);
  assert.throws(() => installUart(fb.board, 4, new RingBackend('serial4', log)), RangeError); // COM5 does not exist
});

test('fuzz: random accesses never throw and keep the FIFO bounded', () => {
  const t = setup();
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 20000; i++) {
    const port = COM1 + Math.floor(rnd() * 8);
    const size = ([1, 2, 4] as const)[Math.floor(rnd() * 3)];
    if (port + size > COM1 + 8) continue;
    if (rnd() < 0.5) t.board.pio.write(port, size, Math.floor(rnd() * 2 ** 32) >>> 0);
    else t.board.pio.read(port, size);
    if (rnd() < 0.05) t.backend.inject('zz');
    assert.ok(t.uart.snapshot().rx.length <= FIFO_SIZE);
  }
});

test('character timeout re-arms after a read that leaves bytes behind (a 0 ms timer on the board clock)', () => {
  const t = vsetup();
  t.outb(FCR, 0x01 | (3 << 6)); // trigger 14
  t.outb(IER, IER_ERBFI);
  t.backend.inject('abc');
  assert.equal(t.irq(), 1);
  assert.equal(t.inb(THR), 0x61);
  assert.equal(t.irq(), 0, 'the read acknowledges the timeout');
  assert.equal(t.uart.snapshot().rearm, 0, 'the re-arm is pending, due now');
  assert.equal(t.clock.runDue(), 1);
  assert.equal(t.irq(), 1, 'bytes still waiting: timeout again, a new edge');
  assert.equal(t.inb(IIR) & 0x0f, IIR_CTI);
  t.inb(THR);
  t.inb(THR);
  t.clock.runDue();
  assert.equal(t.irq(), 0, 'FIFO empty: nothing re-armed');
  assert.equal(t.uart.snapshot().rearm, null);
  assert.equal(t.clock.pending, 0);
});

// ---- snapshot/restore in the middle of a workload ---------------------------------------------

type UartOp =
  | { k: 'w'; off: number; size: 1 | 2 | 4; v: number }
  | { k: 'r'; off: number; size: 1 | 2 | 4 }
  | { k: 'rx'; data: Uint8Array }
  | { k: 'due' }
  | { k: 'adv'; ms: number };

/** One guest/host step, weighted towards what drivers do (DLAB mostly off, loopback sometimes). */
function uartOp(r: () => number): UartOp {
  const x = r();
  const byte = () => Math.floor(r() * 256);
  if (x < 0.3) {
    const off = ([0, 0, 0, 2, 2, 5, 5, 1, 3, 4, 6, 7] as const)[Math.floor(r() * 12)];
    return { k: 'r', off, size: 1 };
  }
  if (x < 0.6) {
    const which = Math.floor(r() * 7);
    if (which === 0) return { k: 'w', off: 3, size: 1, v: r() < 0.3 ? 0x83 : r() < 0.9 ? 0x03 : byte() }; // LCR, DLAB on/off
    if (which === 1) return { k: 'w', off: 2, size: 1, v: r() < 0.8 ? 0x01 | (Math.floor(r() * 4) << 6) | (r() < 0.3 ? 0x02 : 0) : byte() }; // FCR
    if (which === 2) return { k: 'w', off: 4, size: 1, v: (r() < 0.3 ? MCR_LOOP : 0) | Math.floor(r() * 16) }; // MCR
    if (which === 3) return { k: 'w', off: 1, size: 1, v: r() < 0.8 ? Math.floor(r() * 16) : byte() }; // IER / DLM
    if (which === 4 || which === 5) return { k: 'w', off: 0, size: 1, v: byte() }; // THR / DLL
    return { k: 'w', off: 7, size: 1, v: byte() }; // SCR
  }
  if (x < 0.65) {
    const size = r() < 0.5 ? 2 : 4;
    const off = Math.floor(r() * (9 - size));
    return r() < 0.5 ? { k: 'r', off, size } : { k: 'w', off, size, v: Math.floor(r() * 2 ** 32) >>> 0 };
  }
  if (x < 0.82) return { k: 'rx', data: Uint8Array.from({ length: 1 + Math.floor(r() * 20) }, byte) };
  if (x < 0.94) return { k: 'due' };
  return { k: 'adv', ms: Math.floor(r() * 10) };
}

type URig = ReturnType<typeof vsetup>;

/** Apply one step; returns what the guest read (-1 for steps that read nothing). */
function uartStep(t: URig, op: UartOp): number {
  switch (op.k) {
    case 'w':
      t.board.pio.write(COM1 + op.off, op.size, op.v);
      return -1;
    case 'r':
      return t.board.pio.read(COM1 + op.off, op.size);
    case 'rx':
      t.backend.inject(op.data);
      return -1;
    case 'due':
      t.clock.runDue();
      return -1;
    case 'adv':
      t.clock.advance(op.ms);
      return -1;
  }
}

test('snapshot/restore mid-workload: 60 seeded random workloads continue identically on a fresh UART', () => {
  const seen = { rx: 0, rearm: 0, timeout: 0, fifo: 0, dlab: 0, loop: 0 };
  for (let w = 0; w < 60; w++) {
    const r = prng(0x16550 + w);
    const ops = Array.from({ length: 300 }, () => uartOp(r));
    const cut = Math.floor(r() * ops.length);
    const a = vsetup();
    for (let i = 0; i < cut; i++) uartStep(a, ops[i]);
    const saved = a.uart.snapshot();
    const sentBefore = a.backend.total;
    const b = vsetup();
    b.uart.restore(structuredClone(saved));
    assert.deepEqual(b.uart.snapshot(), saved, `workload ${w}: restored state reads back`);
    assert.equal(b.irq(), a.irq(), `workload ${w}: IRQ level re-driven on restore`);
    if (saved.rx.length > 0) seen.rx++;
    if (saved.rearm !== null) seen.rearm++;
    if (saved.timeoutPending) seen.timeout++;
    if (saved.fifoEnabled) seen.fifo++;
    if (saved.lcr & 0x80) seen.dlab++;
    if (saved.mcr & MCR_LOOP) seen.loop++;
    for (let i = cut; i < ops.length; i++) {
      const va = uartStep(a, ops[i]);
      const vb = uartStep(b, ops[i]);
      assert.equal(vb, va, `workload ${w} op ${i} (${JSON.stringify(ops[i])}): same read`);
      assert.equal(b.irq(), a.irq(), `workload ${w} op ${i}: same IRQ level`);
    }
    assert.equal(b.backend.text(), a.backend.text().slice(sentBefore), `workload ${w}: same bytes transmitted after the cut`);
    assert.deepEqual(b.uart.snapshot(), a.uart.snapshot(), `workload ${w}: same final state`);
  }
  // The workloads must actually cut through the interesting states, or the test proves little.
  for (const [k, n] of Object.entries(seen)) assert.ok(n >= 3, `snapshots taken with ${k}: ${n} of 60`);
});

/** COM1 with FIFO on (trigger 8), two bytes left after a read (re-arm pending), interrupts enabled. */
function busyUart(): URig {
  const t = vsetup();
  t.outb(FCR, 0x01 | (2 << 6));
  t.outb(IER, IER_ERBFI | IER_ETBEI | IER_ELSI);
  t.outb(SCR, 0x5a);
  t.backend.inject('abc');
  t.inb(THR);
  return t;
}

test('malformed UART state is refused with StateError and leaves the device as it was', () => {
  const t = busyUart();
  const good = t.uart.snapshot();
  assert.equal(good.rearm, 0, 'the fixture has the re-arm timer pending');
  assert.equal(good.rx.length, 2);
  const bad: [string, StateObject][] = [
    ['ier as a string', { ...good, ier: '1' }],
    ['ier above 0x0f', { ...good, ier: 0x10 }],
    ['lcr above a byte', { ...good, lcr: 0x100 }],
    ['mcr bits 5-7', { ...good, mcr: 0x20 }],
    ['mcr fractional', { ...good, mcr: 1.5 }],
    ['lsrErrors with DR', { ...good, lsrErrors: LSR_DR }],
    ['msr lines not following mcr', { ...good, msr: 0x00 }],
    ['dll negative', { ...good, dll: -1 }],
    ['dlm missing', (({ dlm: _, ...rest }) => rest)(good)],
    ['fifoEnabled as a number', { ...good, fifoEnabled: 1 }],
    ['rxTrigger not a level', { ...good, rxTrigger: 5 }],
    ['rxTrigger 8 with FIFOs off', { ...good, fifoEnabled: false, rx: new Uint8Array(1), rxTrigger: 8 }],
    ['rx as a number array', { ...good, rx: [0x62, 0x63] }],
    ['rx over-long (17 bytes)', { ...good, rx: new Uint8Array(FIFO_SIZE + 1) }],
    ['rx of 2 bytes with FIFOs off', { ...good, fifoEnabled: false, rxTrigger: 1 }],
    ['timeoutPending with an empty FIFO', { ...good, rx: new Uint8Array(0), timeoutPending: true }],
    ['thrIpending null', { ...good, thrIpending: null }],
    ['rearm negative', { ...good, rearm: -1 }],
    ['rearm in the future (always 0 ms)', { ...good, rearm: 5 }],
    ['rearm as a string', { ...good, rearm: '0' }],
  ];
  const before = t.uart.snapshot();
  const irq = t.irq();
  for (const [name, s] of bad) {
    assert.throws(() => t.uart.restore(s), StateError, name);
    assert.deepEqual(t.uart.snapshot(), before, `${name}: state unchanged`);
    assert.equal(t.irq(), irq, `${name}: IRQ unchanged`);
  }
  assert.throws(() => restoreDevice(t.uart, 2, good), StateError, 'a newer state version');
  assert.throws(() => restoreDevice(t.uart, 0, good), StateError, 'version 0');
  assert.deepEqual(t.uart.snapshot(), before);
  assert.equal(t.clock.pending, 1, 'the re-arm timer is still the only one pending');
  // The same state through restoreDevice at the current version is accepted.
  const u = vsetup();
  restoreDevice(u.uart, u.uart.stateVersion, good);
  assert.deepEqual(u.uart.snapshot(), good);
  u.clock.runDue();
  assert.equal(u.inb(IIR) & 0x0f, IIR_CTI, 'the restored re-arm timer fires on the new clock');
});

// issue #14: four COM ports as on a PC (and QEMU's isa-serial defaults); COM3/COM4 share IRQ 4/3 with COM1/COM2.
test('COM1-COM4 at 0x3f8/0x2f8/0x3e8/0x2e8; a shared IRQ line stays up while either UART on it holds its interrupt', () => {
  const fb = testBoard();
  const backends = [0, 1, 2, 3].map((i) => new RingBackend(`serial${i}`, log));
  const uarts = backends.map((b, i) => installUart(fb.board, i, b));
  assert.deepEqual(uarts.map((u) => u.id), ['uart.com1', 'uart.com2', 'uart.com3', 'uart.com4']);
  const outb = (p: number, v: number) => fb.board.pio.write(p, 1, v);
  for (const [i, base] of [0x3f8, 0x2f8, 0x3e8, 0x2e8].entries()) outb(base, 0x61 + i);
  assert.deepEqual(backends.map((b) => b.text()), ['a', 'b', 'c', 'd']);
  // THR-empty interrupts (IER.ETBEI), COM1 and COM3 on IRQ 4, raised at once
  outb(0x3f9, IER_ETBEI);
  outb(0x3e9, IER_ETBEI);
  assert.equal(fb.isaLevel(4), 1);
  assert.equal(fb.isaLevel(3), 0, 'COM2/COM4 raised nothing');
  outb(0x3f9, 0); // COM1 lowers its interrupt: COM3's still holds the line
  assert.equal(fb.isaLevel(4), 1);
  outb(0x3e9, 0);
  assert.equal(fb.isaLevel(4), 0);
  outb(0x2e9, IER_ETBEI); // COM4 on IRQ 3
  assert.equal(fb.isaLevel(3), 1);
  assert.throws(() => installUart(fb.board, 4, new RingBackend('serial4', log)), /COM1-COM4/);
});
