/**
 * i8042 keyboard controller (ports 0x60/0x64, IRQ 1/12). Found on real Xen:
 * with nothing at 0x60/0x64 SeaBIOS printed "WARNING - Timeout at
 * i8042_flush:71!" and never "PS2 keyboard initialized", and Linux could not
 * reboot through the controller. The guest side here is written the way
 * SeaBIOS src/hw/ps2port.c and Linux drivers/input/serio/i8042.c drive it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { type SimHost } from '../../../src/sim/index.ts';
import { type Pc } from '../../../src/machine/pc.ts';
import { SHUTDOWN_REBOOT } from '../../../src/core/host.ts';
import { BTN_LEFT, I8042, QUEUE_SIZE } from '../../../src/devices/i8042/index.ts';
import { restoreDevice, StateError, type StateObject } from '../../../src/core/device.ts';
import { simPc } from '../../helpers/simpc.ts';
import { prng } from '../../ioreq/helpers.ts';

const DATA = 0x60, STATUS = 0x64;
const STR_OBF = 0x01, STR_IBF = 0x02, STR_SYS = 0x04, STR_AUXDATA = 0x20;
const CTR_KBDINT = 0x01, CTR_AUXINT = 0x02, CTR_KBDDIS = 0x10, CTR_AUXDIS = 0x20, CTR_XLATE = 0x40;
/** Linux/SeaBIOS encoding: command | receive count << 8 | send count << 12. */
const CMD_CTL_RCTR = 0x0120, CMD_CTL_WCTR = 0x1060, CMD_CTL_TEST = 0x01aa, CMD_KBD_TEST = 0x01ab;
const CMD_AUX_DISABLE = 0x00a7, CMD_AUX_ENABLE = 0x00a8, CMD_AUX_TEST = 0x01a9, CMD_AUX_LOOP = 0x11d3;
const CMD_AUX_SEND = 0x10d4;
const BUFFER_SIZE = 16; // SeaBIOS/Linux I8042_BUFFER_SIZE
const TRIES = 50; // stands in for the guests' timeouts: a bounded number of status polls

function machine(t: { after(fn: () => void): void }): Promise<{ sim: SimHost; pc: Pc }> {
  return simPc(t, 16);
}

/** Guest-side driver: SeaBIOS's low-level i8042 routines with polls bounded instead of timed. */
class Guest {
  constructor(readonly sim: SimHost) {}

  waitWrite(): void {
    for (let i = 0; i < TRIES; i++) if ((this.sim.inb(STATUS) & STR_IBF) === 0) return;
    throw new Error('i8042 input buffer never emptied');
  }

  waitRead(): void {
    for (let i = 0; i < TRIES; i++) if ((this.sim.inb(STATUS) & STR_OBF) !== 0) return;
    throw new Error('i8042 output buffer never filled');
  }

  /** i8042_flush: false = "Timeout at i8042_flush". */
  flush(): boolean {
    for (let i = 0; i < BUFFER_SIZE; i++) {
      if ((this.sim.inb(STATUS) & STR_OBF) === 0) return true;
      this.sim.inb(DATA);
    }
    return false;
  }

  /** __i8042_command (Linux checks AUXDATA on the AUX_LOOP reply; so do we). */
  command(command: number, params: number[] = []): number[] {
    const receive = (command >> 8) & 0xf;
    const send = (command >> 12) & 0xf;
    this.waitWrite();
    this.sim.outb(STATUS, command & 0xff);
    for (let i = 0; i < send; i++) {
      this.waitWrite();
      this.sim.outb(DATA, params[i]);
    }
    const out: number[] = [];
    for (let i = 0; i < receive; i++) {
      this.waitRead();
      const st = this.sim.inb(STATUS);
      if (command === CMD_AUX_LOOP) assert.ok(st & STR_AUXDATA, 'AUX_LOOP reply flagged as aux data');
      out.push(this.sim.inb(DATA));
    }
    return out;
  }

  /** ps2_recvbyte: the next byte from this device, skipping the other's; -1 on "timeout". */
  recv(aux: boolean, needAck: boolean): number {
    for (let i = 0; i < TRIES; i++) {
      const st = this.sim.inb(STATUS);
      if ((st & STR_OBF) === 0) continue;
      const data = this.sim.inb(DATA);
      if (((st & STR_AUXDATA) !== 0) === aux && (!needAck || data === 0xfa || data === 0xfe)) return data;
    }
    return -1;
  }

  sendByte(aux: boolean, b: number): void {
    if (aux) this.command(CMD_AUX_SEND, [b]);
    else {
      this.waitWrite();
      this.sim.outb(DATA, b);
    }
    assert.equal(this.recv(aux, true), 0xfa, `ACK for ${b.toString(16)}`);
  }

  /**
   * __ps2_command: both ports and interrupts off, the target port on, the
   * command and its parameters (each ACKed), the replies, the saved command byte back.
   */
  ps2Command(aux: boolean, ctr: number, cmd: number, params: number[], receive: number): number[] {
    let newctr = (ctr | CTR_AUXDIS | CTR_KBDDIS) & ~(CTR_KBDINT | CTR_AUXINT);
    this.command(CMD_CTL_WCTR, [newctr]);
    newctr &= aux ? ~CTR_AUXDIS : ~CTR_KBDDIS;
    this.command(CMD_CTL_WCTR, [newctr]);
    this.sendByte(aux, cmd);
    for (const p of params) this.sendByte(aux, p);
    const out: number[] = [];
    for (let i = 0; i < receive; i++) out.push(this.recv(aux, false));
    this.command(CMD_CTL_WCTR, [ctr]);
    return out;
  }
}

test('SeaBIOS keyboard_init: flush, self test, keyboard reset, disable, scan set 2, enable ("PS2 keyboard initialized")', async (t) => {
  const { sim, pc } = await machine(t);
  const g = new Guest(sim);
  assert.ok(g.flush(), 'no "Timeout at i8042_flush"');
  assert.deepEqual(g.command(CMD_CTL_TEST), [0x55]);
  assert.ok(sim.inb(STATUS) & STR_SYS, 'system flag after self test');
  assert.deepEqual(g.command(CMD_KBD_TEST), [0x00]);

  let ctr = CTR_KBDDIS | CTR_AUXDIS;
  // ATKBD_CMD_RESET_BAT: ACK, then 0xaa; the keyboard sends no second byte (SeaBIOS allows that).
  assert.deepEqual(g.ps2Command(false, ctr, 0xff, [], 2), [0xaa, -1]);
  g.ps2Command(false, ctr, 0xf5, [], 0); // ATKBD_CMD_RESET_DIS
  g.ps2Command(false, ctr, 0xf0, [0x02], 0); // ATKBD_CMD_SSCANSET, set 2
  assert.equal(pc.i8042.snapshot().kbd.scancodeSet, 2);
  assert.equal(pc.i8042.snapshot().kbd.scanning, false, 'F5 stopped scanning');
  ctr = CTR_AUXDIS | CTR_XLATE | CTR_KBDINT;
  g.ps2Command(false, ctr, 0xf4, [], 0); // ATKBD_CMD_ENABLE
  assert.deepEqual(g.command(CMD_CTL_RCTR), [ctr], 'command byte restored');
  assert.equal(sim.isaIrqLevel(1), 0);

  // A key: IRQ 1 rises; the handler (handle_09) reads status then data; the line drops.
  const raises = sim.interrupts.isaRaises[1];
  assert.equal(pc.i8042.pressKey([0x1e, 0x9e]), 2);
  assert.equal(sim.isaIrqLevel(1), 1);
  assert.equal(sim.inb(STATUS) & (STR_OBF | STR_AUXDATA), STR_OBF);
  assert.equal(sim.inb(DATA), 0x1e);
  assert.equal(sim.isaIrqLevel(1), 1, 'the break code follows at once (an edge per byte)');
  assert.equal(sim.inb(DATA), 0x9e);
  assert.equal(sim.isaIrqLevel(1), 0);
  assert.equal(sim.interrupts.isaRaises[1] - raises, 2, 'one rising edge per byte (ISA IRQs are edge-triggered at the PIC)');
  assert.equal(sim.inb(STATUS) & STR_OBF, 0);
  assert.equal(sim.inb(DATA), 0x9e, 'an empty output buffer reads the last byte again');
  assert.equal(sim.isaIrqLevel(12), 0);

  // ATKBD_CMD_SETLEDS (caps lock) as SeaBIOS's set_leds sends it.
  g.ps2Command(false, ctr, 0xed, [0x04], 0);
  assert.equal(pc.i8042.snapshot().kbd.leds, 0x04);
});

test('SeaBIOS mouse: reset (FA AA 00), identify, enable/disable, status request through 0xd4', async (t) => {
  const { sim, pc } = await machine(t);
  const g = new Guest(sim);
  const ctr = CTR_AUXDIS | CTR_XLATE | CTR_KBDINT;
  g.command(CMD_CTL_WCTR, [ctr]);
  assert.deepEqual(g.ps2Command(true, ctr, 0xff, [], 2), [0xaa, 0x00]);
  assert.deepEqual(g.ps2Command(true, ctr, 0xf2, [], 1), [0x00], 'standard PS/2 mouse id');
  g.ps2Command(true, ctr, 0xf3, [200], 0); // sample rate
  g.ps2Command(true, ctr, 0xe8, [3], 0); // resolution
  g.ps2Command(true, ctr, 0xe7, [], 0); // scaling 2:1
  g.ps2Command(true, ctr, 0xf4, [], 0); // enable
  assert.deepEqual(g.ps2Command(true, ctr, 0xe9, [], 3), [0x20 | 0x10, 3, 200], 'status: enabled, 2:1; resolution; rate');
  g.ps2Command(true, ctr, 0xe6, [], 0);
  g.ps2Command(true, ctr, 0xf5, [], 0);
  g.ps2Command(true, ctr, 0xf6, [], 0);
  assert.deepEqual(g.ps2Command(true, ctr, 0xe9, [], 3), [0x00, 2, 100], 'defaults');
  // A rate the mouse does not know: resend, nothing changed.
  g.command(CMD_AUX_SEND, [0xf3]);
  assert.equal(g.recv(true, true), 0xfa);
  g.command(CMD_AUX_SEND, [33]);
  assert.equal(g.recv(true, true), 0xfe);
  assert.equal(pc.i8042.snapshot().aux.sampleRate, 100);
  // An unknown mouse command: resend.
  g.command(CMD_AUX_SEND, [0x42]);
  assert.equal(g.recv(true, true), 0xfe);
});

test('Linux i8042 probe: flush, self test, stable CTR, AUX_LOOP, aux test/disable/enable, IRQ 12 test, no MUX, atkbd GETID', async (t) => {
  const { sim } = await machine(t);
  const g = new Guest(sim);
  assert.ok(g.flush());
  assert.deepEqual(g.command(CMD_CTL_TEST), [0x55]);
  // i8042_controller_init: read the CTR until two reads agree, then keyboard off, interrupts off.
  const a = g.command(CMD_CTL_RCTR)[0];
  assert.equal(g.command(CMD_CTL_RCTR)[0], a);
  let ctr = (a | CTR_KBDDIS | CTR_XLATE) & ~(CTR_KBDINT | CTR_AUXINT);
  g.command(CMD_CTL_WCTR, [ctr]);
  assert.deepEqual(g.command(CMD_CTL_RCTR), [ctr]);

  // i8042_check_aux: the loopback answers as aux data, the port test passes.
  assert.deepEqual(g.command(CMD_AUX_LOOP, [0x5a]), [0x5a]);
  assert.deepEqual(g.command(CMD_AUX_TEST), [0x00]);
  g.command(CMD_AUX_DISABLE);
  assert.ok(g.command(CMD_CTL_RCTR)[0] & CTR_AUXDIS, 'AUX_DISABLE sets CTR bit 5');
  g.command(CMD_AUX_ENABLE);
  assert.equal(g.command(CMD_CTL_RCTR)[0] & CTR_AUXDIS, 0, 'AUX_ENABLE clears it');
  // IRQ test: AUXINT on, a loopback byte raises IRQ 12, reading it lowers it.
  ctr = (ctr & ~CTR_AUXDIS) | CTR_AUXINT;
  g.command(CMD_CTL_WCTR, [ctr]);
  sim.outb(STATUS, 0xd3);
  sim.outb(DATA, 0xa5);
  assert.equal(sim.isaIrqLevel(12), 1);
  assert.equal(sim.isaIrqLevel(1), 0);
  assert.equal(sim.inb(STATUS) & (STR_OBF | STR_AUXDATA), STR_OBF | STR_AUXDATA);
  assert.equal(sim.inb(DATA), 0xa5);
  assert.equal(sim.isaIrqLevel(12), 0);
  // i8042_set_mux_mode: a real MUX answers the third loop byte with its version; we echo it (no MUX).
  for (const b of [0xf0, 0x56, 0xa4]) assert.deepEqual(g.command(CMD_AUX_LOOP, [b]), [b]);

  // atkbd_probe with translation on: ATKBD_CMD_GETID is FA AB 41 (0x83 seen through translation).
  ctr = (ctr & ~CTR_KBDDIS) | CTR_KBDINT;
  g.command(CMD_CTL_WCTR, [ctr]);
  sim.outb(DATA, 0xf2);
  assert.deepEqual([0, 1, 2].map(() => (g.waitRead(), sim.inb(DATA))), [0xfa, 0xab, 0x41]);
  // Without translation: FA AB 83.
  g.command(CMD_CTL_WCTR, [ctr & ~CTR_XLATE]);
  sim.outb(DATA, 0xf2);
  assert.deepEqual([0, 1, 2].map(() => (g.waitRead(), sim.inb(DATA))), [0xfa, 0xab, 0x83]);
  // Scan set query (F0 00): each byte ACKed, then the set number (0x41 through translation).
  sim.outb(DATA, 0xf0);
  sim.outb(DATA, 0x00);
  assert.deepEqual([0, 1, 2].map(() => (g.waitRead(), sim.inb(DATA))), [0xfa, 0xfa, 0x02]);
  g.command(CMD_CTL_WCTR, [ctr]);
  sim.outb(DATA, 0xf0);
  sim.outb(DATA, 0x00);
  assert.deepEqual([0, 1, 2].map(() => (g.waitRead(), sim.inb(DATA))), [0xfa, 0xfa, 0x41]);
  sim.outb(DATA, 0xf0);
  sim.outb(DATA, 0x07); // no such set: resend
  assert.deepEqual([0, 1].map(() => (g.waitRead(), sim.inb(DATA))), [0xfa, 0xfe]);
  // Typematic, echo, an unknown command (resend).
  sim.outb(DATA, 0xf3);
  sim.outb(DATA, 0x20);
  sim.outb(DATA, 0xee);
  sim.outb(DATA, 0x01);
  assert.deepEqual([0, 1, 2, 3].map(() => (g.waitRead(), sim.inb(DATA))), [0xfa, 0xfa, 0xee, 0xfe]);
  assert.equal(sim.isaIrqLevel(1), 0);
  assert.equal(sim.inb(STATUS) & STR_OBF, 0);
});

test('reboot: 0xfe on port 0x64 (Linux reboot=k, SeaBIOS i8042_reboot) and an output port write with bit 0 clear', async (t) => {
  const { sim, pc } = await machine(t);
  const g = new Guest(sim);
  // Reading the output port: reset high, A20 on; writing it with bit 0 set only changes A20.
  assert.equal(g.command(0x01d0)[0] & 0x03, 0x03);
  g.command(0x10d1, [0xcd]);
  assert.equal(g.command(0x01d0)[0] & 0x03, 0x01, 'A20 bit kept as written');
  g.command(0xdf);
  assert.equal(g.command(0x01d0)[0] & 0x03, 0x03);
  assert.deepEqual(g.command(0x01c0), [0x80], 'input port: keyboard not inhibited');
  // Pulsing lines other than reset does nothing.
  g.command(0xff);
  g.command(0xfd);
  assert.equal(sim.shutdownRequests.length, 0);
  const q = pc.i8042.snapshot();
  assert.equal(q.kbd.queue.length + q.ctl.length, 0);

  sim.outb(STATUS, 0xfe);
  assert.equal(sim.shutdownRequests.length, 1);
  assert.equal(sim.shutdownRequests[0].reason, SHUTDOWN_REBOOT);
  g.command(0x10d1, [0xce]);
  assert.equal(sim.shutdownRequests.length, 2);
  assert.equal(sim.shutdownRequests[1].reason, SHUTDOWN_REBOOT);
});

test('controller output buffer commands, unknown commands, queue bound, snapshot/restore', () => {
  const levels = { kbd: false, aux: false };
  let resets = 0;
  const dev = new I8042({ set: (l) => (levels.kbd = l) }, { set: (l) => (levels.aux = l) }, () => resets++, pino({ level: 'silent' }));
  const st = () => dev.cmdPort.read(0, 1);
  const rd = () => dev.dataPort.read(0, 1);
  dev.cmdPort.write(0, 1, 0xd2);
  dev.dataPort.write(0, 1, 0x61);
  assert.equal(st() & (STR_OBF | STR_AUXDATA), STR_OBF, '0xd2: as keyboard data');
  assert.equal(levels.kbd, true, 'power-on command byte has KBDINT');
  assert.equal(rd(), 0x61);
  assert.equal(levels.kbd, false);
  dev.cmdPort.write(0, 1, 0x12); // unknown: ignored
  dev.cmdPort.write(0, 1, 0x60); // a command waiting for data...
  dev.cmdPort.write(0, 1, 0x20); // ...is abandoned by the next command
  assert.equal(rd(), 0x03);
  // 40 keys into a 16-byte keyboard buffer: 16 kept, the rest dropped.
  const keys = Array.from({ length: 40 }, (_, i) => i + 1);
  dev.cmdPort.write(0, 1, 0xad); // keyboard interface off: bytes stay in the keyboard
  assert.equal(dev.pressKey(keys), QUEUE_SIZE);
  assert.equal(st() & STR_OBF, 0);
  assert.equal(levels.kbd, false);
  // Snapshot with bytes queued, restore into a fresh controller, read them there.
  const saved = structuredClone(dev.snapshot());
  const other = new I8042({ set: (l) => (levels.kbd = l) }, { set: () => {} }, () => resets++, pino({ level: 'silent' }));
  other.restore(saved);
  other.cmdPort.write(0, 1, 0xae);
  const got: number[] = [];
  for (let i = 0; i < 20 && other.cmdPort.read(0, 1) & STR_OBF; i++) got.push(other.dataPort.read(0, 1));
  assert.deepEqual(got, keys.slice(0, QUEUE_SIZE));
  assert.equal(dev.snapshot().kbd.queue.length, QUEUE_SIZE, 'the original is untouched');
  // A wide read gets ones above the byte.
  assert.equal(other.cmdPort.read(0, 2) & 0xff00, 0xff00);
  assert.equal(resets, 0);
});


test('fuzz: random reads and writes at 0x60/0x64 and key presses never throw and keep every queue bounded', async (t) => {
  const { sim, pc } = await machine(t);
  const r = prng(0x8042); // seeded, so a failure replays
  // Commands the guest is likely to use, so the fuzzer reaches deep states, plus any byte.
  const interesting = [0x20, 0x60, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xad, 0xae, 0xc0, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xfe, 0xff,
    0xed, 0xee, 0xf0, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb];
  const byte = () => (r() < 0.6 ? interesting[Math.floor(r() * interesting.length)] : Math.floor(r() * 256));
  for (let i = 0; i < 4000; i++) {
    const op = Math.floor(r() * 6);
    if (op === 0) sim.outb(STATUS, byte());
    else if (op === 1) sim.outb(DATA, byte());
    else if (op === 2) sim.inb(STATUS);
    else if (op === 3) sim.inb(DATA);
    else if (op === 4) pc.i8042.pressKey(Array.from({ length: Math.floor(r() * 20) }, () => Math.floor(r() * 256)));
    else sim.inw(DATA);
    const s = pc.i8042.snapshot();
    assert.ok(s.ctl.length <= QUEUE_SIZE && s.kbd.queue.length <= QUEUE_SIZE && s.aux.queue.length <= QUEUE_SIZE, `queues bounded at op ${i}`);
    const st = sim.inb(STATUS);
    assert.equal(st & STR_IBF, 0);
    assert.equal(sim.isaIrqLevel(1), (st & STR_OBF) && !(st & STR_AUXDATA) && (s.ctr & CTR_KBDINT) ? 1 : 0, `IRQ 1 follows OBF at op ${i}`);
    assert.equal(sim.isaIrqLevel(12), (st & STR_OBF) && (st & STR_AUXDATA) && (s.ctr & CTR_AUXINT) ? 1 : 0, `IRQ 12 follows OBF at op ${i}`);
  }
  for (const req of sim.shutdownRequests) assert.equal(req.reason, SHUTDOWN_REBOOT);
  assert.ok(sim.shutdownRequests.length > 0, 'the fuzzer reached the reset line');
});

// ---- snapshot/restore in the middle of a workload ---------------------------------------------

const silent = pino({ level: 'silent' });
/** Controller, keyboard and mouse commands a guest sends, so random workloads reach deep states. */
const CTL_CMDS = [0x20, 0x60, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xad, 0xae, 0xc0, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd4, 0xd4, 0xdd, 0xdf, 0xfe, 0xff];
const DEV_CMDS = [0xed, 0xee, 0xf0, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xff, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0x00, 0x01, 0x02, 0x03, 0x0a, 0x14, 0x28, 0x64, 0xc8];

function kbcRig() {
  const lv = { kbd: false, aux: false, resets: 0 };
  const dev = new I8042({ set: (l) => (lv.kbd = l) }, { set: (l) => (lv.aux = l) }, () => lv.resets++, silent);
  return { dev, lv };
}

type KbcOp = { k: 'cmd' | 'data' | 'st' | 'rd' | 'rdw'; v: number } | { k: 'key'; keys: number[] } | { k: 'mouse'; m: number[] };

function kbcOp(r: () => number): KbcOp {
  const x = r();
  const pick = (a: readonly number[]) => (r() < 0.8 ? a[Math.floor(r() * a.length)] : Math.floor(r() * 256));
  if (x < 0.2) return { k: 'cmd', v: pick(CTL_CMDS) };
  if (x < 0.45) return { k: 'data', v: pick(DEV_CMDS) };
  if (x < 0.6) return { k: 'st', v: 0 };
  if (x < 0.85) return { k: 'rd', v: 0 };
  if (x < 0.88) return { k: 'rdw', v: 0 };
  if (x < 0.94) return { k: 'mouse', m: [Math.floor(r() * 600) - 300, Math.floor(r() * 600) - 300, Math.floor(r() * 20) - 10, Math.floor(r() * 32)] };
  return { k: 'key', keys: Array.from({ length: 1 + Math.floor(r() * 8) }, () => Math.floor(r() * 256)) };
}

function kbcStep(dev: I8042, op: KbcOp): number {
  switch (op.k) {
    case 'cmd':
      dev.cmdPort.write(0, 1, op.v);
      return -1;
    case 'data':
      dev.dataPort.write(0, 1, op.v);
      return -1;
    case 'st':
      return dev.cmdPort.read(0, 1);
    case 'rd':
      return dev.dataPort.read(0, 1);
    case 'rdw':
      return dev.dataPort.read(0, 2);
    case 'key':
      return dev.pressKey(op.keys);
    case 'mouse':
      dev.moveMouse(op.m[0], op.m[1], op.m[2], op.m[3]);
      return -1;
  }
}

test('snapshot/restore mid-workload: 80 seeded random workloads continue identically on a fresh controller', () => {
  const seen = { ctlPending: 0, kbdPending: 0, auxPending: 0, kbdQueue: 0, auxQueue: 0, ctlQueue: 0, obFull: 0 };
  for (let w = 0; w < 80; w++) {
    const r = prng(0x8042_0000 + w);
    const ops = Array.from({ length: 300 }, () => kbcOp(r));
    const cut = Math.floor(r() * ops.length);
    const a = kbcRig();
    for (let i = 0; i < cut; i++) kbcStep(a.dev, ops[i]);
    const saved = a.dev.snapshot();
    const b = kbcRig();
    b.dev.restore(structuredClone(saved));
    assert.deepEqual(b.dev.snapshot(), saved, `workload ${w}: restored state reads back`);
    assert.deepEqual([b.lv.kbd, b.lv.aux], [a.lv.kbd, a.lv.aux], `workload ${w}: IRQ lines re-driven on restore`);
    const resetsA = a.lv.resets;
    if (saved.pending !== -1) seen.ctlPending++;
    if (saved.kbd.pending !== -1) seen.kbdPending++;
    if (saved.aux.pending !== -1) seen.auxPending++;
    if (saved.kbd.queue.length > 0) seen.kbdQueue++;
    if (saved.aux.queue.length > 0) seen.auxQueue++;
    if (saved.ctl.length > 0) seen.ctlQueue++;
    if (saved.obSource !== 0) seen.obFull++;
    for (let i = cut; i < ops.length; i++) {
      assert.equal(kbcStep(b.dev, ops[i]), kbcStep(a.dev, ops[i]), `workload ${w} op ${i} (${JSON.stringify(ops[i])}): same read`);
      assert.deepEqual([b.lv.kbd, b.lv.aux], [a.lv.kbd, a.lv.aux], `workload ${w} op ${i}: same IRQ levels`);
    }
    assert.equal(b.lv.resets, a.lv.resets - resetsA, `workload ${w}: same reset pulses after the cut`);
    assert.deepEqual(b.dev.snapshot(), a.dev.snapshot(), `workload ${w}: same final state`);
  }
  for (const [k, n] of Object.entries(seen)) assert.ok(n >= 2, `snapshots taken with ${k}: ${n} of 80`);
});

test('malformed i8042 state is refused with StateError and leaves the controller as it was', () => {
  const { dev, lv } = kbcRig();
  dev.cmdPort.write(0, 1, 0xd4); // mouse: set sample rate, waiting for its value
  dev.dataPort.write(0, 1, 0xf3);
  dev.dataPort.write(0, 1, 0xed); // keyboard: set LEDs, waiting for its value
  dev.pressKey([0x1e]);
  const good = dev.snapshot();
  assert.equal(good.obSource, 2, 'the mouse ACK is in the output buffer');
  assert.equal(good.aux.pending, 0xf3);
  assert.equal(good.kbd.pending, 0xed);
  assert.ok(good.kbd.queue.length > 0);
  const kbd = good.kbd;
  const aux = good.aux;
  const bad: [string, StateObject][] = [
    ['ctr as a string', { ...good, ctr: '3' }],
    ['ctr above a byte', { ...good, ctr: 0x100 }],
    ['status with OBF (derived)', { ...good, status: 0x01 }],
    ['outport with reset low', { ...good, outport: 0xce }],
    ['pending not a data command', { ...good, pending: 0x20 }],
    ['pending below -1', { ...good, pending: -2 }],
    ['ob negative', { ...good, ob: -1 }],
    ['obSource 3', { ...good, obSource: 3 }],
    ['obSource empty with bytes waiting', { ...good, obSource: 0 }],
    ['lastData fractional', { ...good, lastData: 0.5 }],
    ['ctl over-long', { ...good, ctl: new Array(QUEUE_SIZE + 1).fill(0) }],
    ['ctl entry above 0x1ff', { ...good, ctl: [0x200] }],
    ['ctl as bytes', { ...good, ctl: new Uint8Array(1) }],
    ['kbd missing', (({ kbd: _, ...rest }) => rest)(good)],
    ['kbd.queue over-long', { ...good, kbd: { ...kbd, queue: new Uint8Array(QUEUE_SIZE + 1) } }],
    ['kbd.queue as numbers', { ...good, kbd: { ...kbd, queue: [0x1e] } }],
    ['kbd.pending a mouse command', { ...good, kbd: { ...kbd, pending: 0xe8 } }],
    ['kbd.scanning as a number', { ...good, kbd: { ...kbd, scanning: 1 } }],
    ['kbd.scancodeSet 0', { ...good, kbd: { ...kbd, scancodeSet: 0 } }],
    ['kbd.scancodeSet 4', { ...good, kbd: { ...kbd, scancodeSet: 4 } }],
    ['kbd.leds 8', { ...good, kbd: { ...kbd, leds: 8 } }],
    ['kbd.typematic 0x80', { ...good, kbd: { ...kbd, typematic: 0x80 } }],
    ['aux.queue over-long', { ...good, aux: { ...aux, queue: new Uint8Array(QUEUE_SIZE + 1) } }],
    ['aux.pending a keyboard command', { ...good, aux: { ...aux, pending: 0xed } }],
    ['aux.enabled null', { ...good, aux: { ...aux, enabled: null } }],
    ['aux.resolution 4', { ...good, aux: { ...aux, resolution: 4 } }],
    ['aux.sampleRate 33', { ...good, aux: { ...aux, sampleRate: 33 } }],
    ['aux.sampleRate 0', { ...good, aux: { ...aux, sampleRate: 0 } }],
    ['aux an array', { ...good, aux: [] }],
    ['aux.type 2', { ...good, aux: { ...aux, type: 2 } }],
    ['aux.type 5', { ...good, aux: { ...aux, type: 5 } }],
    ['aux.detect 4', { ...good, aux: { ...aux, detect: 4 } }],
    ['aux.dx past the bound', { ...good, aux: { ...aux, dx: 4097 } }],
    ['aux.dz fractional', { ...good, aux: { ...aux, dz: 0.5 } }],
    ['aux.buttons 0x20', { ...good, aux: { ...aux, buttons: 0x20 } }],
    ['aux.type missing', { ...good, aux: (({ type: _, ...rest }) => rest)(aux) }],
  ];
  const before = dev.snapshot();
  const lines = [lv.kbd, lv.aux];
  for (const [name, s] of bad) {
    assert.throws(() => dev.restore(s), StateError, name);
    assert.deepEqual(dev.snapshot(), before, `${name}: state unchanged`);
    assert.deepEqual([lv.kbd, lv.aux], lines, `${name}: IRQ lines unchanged`);
  }
  assert.throws(() => restoreDevice(dev, 3, good), StateError, 'a newer state version');
  assert.deepEqual(dev.snapshot(), before);
  assert.equal(dev.id, 'i8042');
  // The good state is accepted by a fresh controller, which then finishes the commands.
  const other = kbcRig();
  restoreDevice(other.dev, 2, good);
  assert.equal(other.lv.aux, true, 'IRQ 12: the mouse ACK waits');
  other.dev.dataPort.read(0, 1);
  other.dev.cmdPort.write(0, 1, 0xd4);
  other.dev.dataPort.write(0, 1, 40);
  other.dev.dataPort.write(0, 1, 0x02);
  const s = other.dev.snapshot();
  assert.equal(s.aux.sampleRate, 40);
  assert.equal(s.kbd.leds, 0x02);
  assert.equal(lv.resets + other.lv.resets, 0);
});

test('PS/2 mouse movement: packets in stream mode, a big move drains through the 16-byte buffer, state survives save/restore, version 1 upgrades', () => {
  const { dev, lv } = kbcRig();
  const rd = () => dev.dataPort.read(0, 1);
  const aux = (b: number) => {
    dev.cmdPort.write(0, 1, 0xd4);
    dev.dataPort.write(0, 1, b);
    assert.equal(rd(), 0xfa, `ACK for ${b.toString(16)}`);
  };
  dev.moveMouse(50, 0, 0, 0);
  assert.equal(dev.cmdPort.read(0, 1) & STR_OBF, 0, 'reporting off: the move is dropped');
  aux(0xf4);
  assert.equal(dev.snapshot().aux.dx, 0, 'nothing kept from before');
  // 1000 right, 500 down with the left button: 8 packets of at most 127 per axis, 5 fit the buffer at once.
  dev.moveMouse(1000, 500, 0, BTN_LEFT);
  assert.equal(lv.aux, true, 'IRQ 12 raised');
  const mid = dev.snapshot();
  assert.equal(mid.aux.queue.length + 1, 15, 'five 3-byte packets (one byte already in the output buffer)');
  const other = kbcRig();
  other.dev.restore(structuredClone(mid));
  const packets: number[][] = [];
  let sx = 0, sy = 0;
  for (let i = 0; i < 200 && other.dev.cmdPort.read(0, 1) & STR_OBF; i += 3) {
    const p = [other.dev.dataPort.read(0, 1), other.dev.dataPort.read(0, 1), other.dev.dataPort.read(0, 1)];
    packets.push(p);
    assert.equal(p[0] & 0x0f, 0x09, 'left button, bit 3 always set');
    sx += p[0] & 0x10 ? p[1] - 256 : p[1];
    sy += p[0] & 0x20 ? p[2] - 256 : p[2];
  }
  assert.equal(packets.length, 8, 'the rest went out as the guest read (restored machine)');
  assert.deepEqual([sx, sy], [1000, -500], 'every count arrives; PS/2 y counts upwards');
  // Hostile host input: NaN and huge values are bounded, never thrown.
  dev.moveMouse(NaN, Infinity, -1e9, 0xffff);
  const s = dev.snapshot().aux;
  assert.ok(s.dy === 0 && s.dz === -4096 && s.buttons === 0x1f && s.dx === 1000 - 5 * 127, JSON.stringify(s));
  // A version-1 state (before movement existed) restores as a plain mouse at rest.
  const v1 = structuredClone(dev.snapshot()) as Record<string, any>;
  for (const k of ['type', 'detect', 'dx', 'dy', 'dz', 'buttons']) delete v1.aux[k];
  const third = kbcRig();
  restoreDevice(third.dev, 1, v1);
  assert.deepEqual(
    (({ type, detect, dx, dy, dz, buttons }) => ({ type, detect, dx, dy, dz, buttons }))(third.dev.snapshot().aux),
    { type: 0, detect: 0, dx: 0, dy: 0, dz: 0, buttons: 0 },
  );
});
