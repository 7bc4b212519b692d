/**
 * A model of what Linux's e1000 driver (drivers/net/ethernet/intel/e1000,
 * kernel 6.1, the e2e guest's) does per frame, on the simulated clock with
 * a cost per register access, so a test can count what a ping or a TCP
 * stream costs in exits and interrupts and how long frames wait, the way
 * they matter under TCG (every ioreq round trip is milliseconds there).
 *
 * What the model replays (Linux e1000_main.c / e1000_param.c):
 *  - configuration: TIDV 8, TADV 32, RDTR 0, RADV 8 (DEFAULT_*), ITR
 *    1e9 / (20000 x 256) (InterruptThrottleRate 3, dynamic conservative,
 *    starting at 20000/s), IMS = RXT0 | TXDW | RXDMT0 | RXSEQ | LSC;
 *  - transmit (e1000_xmit_frame): one legacy descriptor with EOP | IFCS |
 *    RS | IDE (IDE because tx_int_delay is not 0), then one TDT write;
 *  - interrupt (e1000_intr): ICR read (0: not ours), IMC = ~0, a STATUS read
 *    to flush, then the NAPI poll (e1000_clean): TX ring cleaned by DD, RX
 *    ring cleaned by DD with an RDT write for the refilled buffers (every 16
 *    and at the end), then IMS and a STATUS read to re-enable. A still
 *    asserted line is taken again at once.
 *  - the stack's reaction to a received frame runs inside the poll (an echo
 *    reply, a TCP ACK), as softirq work does.
 *
 * Time: each register access costs `exitMs` of virtual time, the device
 * acting in its middle (the trip to the DM before, the answer after). The
 * NIC may be given a clock with Node's timer floor (nodeTimerClock): any
 * delay in (0, 1) ms fires after 1 ms, which is what RealClock's setTimeout
 * does; the sim's own VirtualClock is exact.
 */
import type { Clock, Timer } from '../../../src/core/clock.ts';
import type { VirtualClock } from '../../../src/core/clock.ts';
import * as R from '../../../src/devices/e1000/regs.ts';
import { ethFrame, get32, MAC, makeNic, put32, RX_BUF, RX_RING, TX_BUF, TX_RING, type Nic } from './harness.ts';

export const RING = 256;
const BUF = 2048;
export const LINUX_IMS = R.ICR_RXT0 | R.ICR_TXDW | R.ICR_RXDMT0 | R.ICR_RXSEQ | R.ICR_LSC;
/** Linux's starting ITR: 20000 interrupts/s in 256 ns units. */
export const LINUX_ITR = Math.floor(1e9 / (20000 * 256));

/** Counts timer callbacks the NIC arms and gets run (each one a DM wake-up on the real clock). */
export interface CountingClock extends Clock {
  fired: number;
  armed: number;
}

/** The NIC's view of the sim clock with Node's timer floor: a delay in (0, 1) ms becomes 1 ms (as setTimeout). */
export function nodeTimerClock(inner: VirtualClock, floor = true): CountingClock {
  const c: CountingClock = {
    fired: 0,
    armed: 0,
    now: () => inner.now(),
    timeout: (ms: number, fn: () => void): Timer => {
      c.armed++;
      const d = ms <= 0 ? 0 : floor ? Math.max(1, ms) : ms;
      return inner.timeout(d, () => {
        c.fired++;
        fn();
      });
    },
    interval: (ms, fn) => inner.interval(ms, fn),
  };
  return c;
}

export interface ModelOptions {
  /** Virtual ms per register access (the ioreq round trip). */
  exitMs: number;
  /** What the guest's stack does with a received frame (inside the poll). */
  onFrame?: (frame: Uint8Array, m: LinuxE1000Model) => void;
  /** Called after each poll that received frames (GRO flush: one ACK per poll). */
  onPollDone?: (rxFrames: number, m: LinuxE1000Model) => void;
  /** Called after each poll's TX clean with how many frames completed (TSQ: the stack may send more). */
  onTxClean?: (done: number, m: LinuxE1000Model) => void;
}

export class LinuxE1000Model {
  exits = 0;
  irqs = 0;
  spurious = 0;
  txCompleted = 0;
  rxFrames = 0;
  private txTail = 0;
  private txClean = 0;
  private rxClean = 0;
  private inIrq = false;

  constructor(
    readonly n: Nic,
    readonly clock: VirtualClock,
    readonly o: ModelOptions,
  ) {}

  /** e1000_configure_tx/_rx and e1000_irq_enable, done before counting starts. */
  setup(): void {
    const n = this.n;
    n.w32(R.TDBAL, TX_RING);
    n.w32(R.TDBAH, 0);
    n.w32(R.TDLEN, RING * 16);
    n.w32(R.TDH, 0);
    n.w32(R.TDT, 0);
    n.w32(R.TIDV, 8);
    n.w32(R.TADV, 32);
    n.w32(R.TCTL, R.TCTL_EN | R.TCTL_PSP);
    for (let i = 0; i < RING; i++) {
      const at = RX_RING + 16 * i;
      put32(n.ram, at, RX_BUF + i * BUF);
      for (const k of [4, 8, 12]) put32(n.ram, at + k, 0);
    }
    n.w32(R.RDTR, 0);
    n.w32(R.RADV, 8);
    n.w32(R.ITR, LINUX_ITR);
    n.w32(R.RDBAL, RX_RING);
    n.w32(R.RDBAH, 0);
    n.w32(R.RDLEN, RING * 16);
    n.w32(R.RDH, 0);
    n.w32(R.RDT, RING - 1);
    n.w32(R.RCTL, R.RCTL_EN | R.RCTL_BAM);
    n.w32(R.IMS, LINUX_IMS);
    n.r32(R.ICR);
  }

  /** One register access as the guest makes it: an exit, the device acting halfway through. */
  read(off: number): number {
    this.exits++;
    this.clock.advance(this.o.exitMs / 2);
    const v = this.n.r32(off);
    this.clock.advance(this.o.exitMs / 2);
    return v;
  }

  write(off: number, v: number): void {
    this.exits++;
    this.clock.advance(this.o.exitMs / 2);
    this.n.w32(off, v);
    this.clock.advance(this.o.exitMs / 2);
  }

  /** Free TX descriptors (the driver keeps one slot empty). */
  get txFree(): number {
    return RING - 1 - ((this.txTail - this.txClean + RING) % RING);
  }

  /** e1000_xmit_frame: one legacy descriptor, one TDT write. false: ring full. */
  xmit(frame: Uint8Array): boolean {
    if (this.txFree === 0) return false;
    const i = this.txTail;
    const buf = TX_BUF + i * BUF;
    this.n.ram.set(frame, buf);
    const at = TX_RING + 16 * i;
    put32(this.n.ram, at, buf);
    put32(this.n.ram, at + 4, 0);
    put32(this.n.ram, at + 8, (frame.length | R.TXD_CMD_EOP | R.TXD_CMD_IFCS | R.TXD_CMD_RS | R.TXD_CMD_IDE) >>> 0);
    put32(this.n.ram, at + 12, 0);
    this.txTail = (i + 1) % RING;
    this.write(R.TDT, this.txTail);
    return true;
  }

  /** Interrupts the guest would take now, each handled to the end (bounded). */
  serviceIrqs(): void {
    if (this.inIrq) return; // a send from inside the poll: the line is looked at when the poll ends
    this.inIrq = true;
    try {
      for (let k = 0; k < 1000 && this.n.intx() === 1; k++) this.handleIrq();
    } finally {
      this.inIrq = false;
    }
  }

  /** Idle: let time pass in small steps until `done()` or an interrupt, which is then serviced. Bounded by `maxMs`. */
  idleUntil(done: () => boolean, maxMs: number): boolean {
    const end = this.clock.now() + maxMs;
    while (!done()) {
      if (this.clock.now() >= end) return false;
      if (this.n.intx() === 1) this.serviceIrqs();
      else this.clock.advance(0.05);
    }
    return true;
  }

  private handleIrq(): void {
    this.irqs++;
    const icr = this.read(R.ICR);
    if (icr === 0) {
      this.spurious++;
      return;
    }
    this.write(R.IMC, 0xffffffff);
    this.read(R.STATUS);
    // NAPI poll
    const txDone = this.cleanTx();
    const rx = this.cleanRx();
    if (rx > 0) this.o.onPollDone?.(rx, this);
    if (txDone > 0) this.o.onTxClean?.(txDone, this);
    this.write(R.IMS, LINUX_IMS);
    this.read(R.STATUS);
  }

  private cleanTx(): number {
    let done = 0;
    for (let k = 0; k < RING && this.txClean !== this.txTail; k++) {
      const at = TX_RING + 16 * this.txClean;
      if (!(this.n.ram[at + 12] & 1)) break;
      this.txClean = (this.txClean + 1) % RING;
      done++;
    }
    this.txCompleted += done;
    return done;
  }

  private cleanRx(): number {
    let got = 0;
    let refill = 0;
    for (let k = 0; k < 64; k++) {
      const at = RX_RING + 16 * this.rxClean;
      if (!(this.n.ram[at + 12] & R.RXD_STAT_DD)) break;
      const len = this.n.ram[at + 8] | (this.n.ram[at + 9] << 8);
      const frame = this.n.ram.slice(RX_BUF + this.rxClean * BUF, RX_BUF + this.rxClean * BUF + len - 4);
      put32(this.n.ram, at + 8, 0);
      put32(this.n.ram, at + 12, 0);
      this.rxClean = (this.rxClean + 1) % RING;
      got++;
      this.rxFrames++;
      this.o.onFrame?.(frame, this);
      if (++refill === 16) {
        this.write(R.RDT, (this.rxClean + RING - 1) % RING);
        refill = 0;
      }
    }
    if (refill > 0) this.write(R.RDT, (this.rxClean + RING - 1) % RING);
    return got;
  }
}

/** A frame from dom0 to the guest's MAC: IPv4 ethertype, `tag` in the first payload byte. */
export function hostFrame(tag: number, len = 98): Uint8Array {
  const p = new Uint8Array(len - 14);
  p[0] = tag;
  return ethFrame(MAC, 0x0800, p);
}

/** A frame from the guest to dom0. */
export function guestFrame(tag: number, len = 98): Uint8Array {
  const p = new Uint8Array(len - 14);
  p[0] = tag;
  return ethFrame([0x02, 0, 0, 0, 0, 1], 0x0800, p);
}


export interface Figures {
  /** Register accesses (exits) per unit (ping, or frame of the stream). */
  exits: number;
  /** Interrupts taken per unit. */
  irqs: number;
  /** NIC timer callbacks run per unit: DM wake-ups that are not guest I/O on the real clock. */
  wakes: number;
  /** Virtual ms per unit: the ping's round trip as busybox ping sees it, or the stream's time per frame. */
  ms: number;
}

export interface ScenarioOptions {
  exitMs: number;
  /** dom0's reaction time to a frame from the guest (its answer lands on the tap this much later). */
  replyMs: number;
  /** The NIC's timers with Node's 1 ms floor (RealClock) rather than exact. */
  nodeTimers?: boolean;
}

function build(o: ScenarioOptions, mo: Omit<ModelOptions, 'exitMs'>) {
  let cc: CountingClock | null = null;
  const n = makeNic({ clock: (c) => (cc = nodeTimerClock(c, o.nodeTimers ?? true)) });
  const m = new LinuxE1000Model(n, n.clock, { exitMs: o.exitMs, ...mo });
  m.setup();
  /** What dom0 does with each frame the guest sends. */
  let onHost: (f: Uint8Array) => void = () => {};
  const send = n.be.send.bind(n.be);
  n.be.send = (f, off) => {
    const ok = send(f, off);
    if (ok) onHost(f.slice());
    return ok;
  };
  return { n, m, cc: cc! as CountingClock, setHost: (h: (f: Uint8Array) => void) => (onHost = h) };
}

/**
 * busybox ping (the e2e guest's): an echo request every `intervalMs`, the
 * round trip taken in user space, i.e. once the reply is in and the guest
 * has no interrupt left to handle. Figures per ping, the median round trip.
 */
export function pingScenario(o: ScenarioOptions & { count: number; intervalMs?: number }): Figures {
  let replied = false;
  const { n, m, cc, setHost } = build(o, { onFrame: (f) => void (f[14] === 0xee && (replied = true)) });
  setHost((f) => {
    if (f[14] === 0xec) n.clock.timeout(o.replyMs, () => n.be.inject(hostFrame(0xee)));
  });
  const rtts: number[] = [];
  const e0 = m.exits, i0 = m.irqs, w0 = cc.fired;
  for (let k = 0; k < o.count; k++) {
    replied = false;
    const t0 = n.clock.now();
    m.xmit(guestFrame(0xec));
    if (!m.idleUntil(() => replied && n.intx() === 0, 1000)) throw new Error(`ping ${k}: no reply in 1 s`);
    rtts.push(n.clock.now() - t0);
    m.idleUntil(() => false, o.intervalMs ?? 200); // the rest of the interval (late interrupts land here)
  }
  rtts.sort((a, b) => a - b);
  return { exits: (m.exits - e0) / o.count, irqs: (m.irqs - i0) / o.count, wakes: (cc.fired - w0) / o.count, ms: rtts[rtts.length >> 1] };
}

/**
 * dom0 -> guest TCP: dom0 keeps `window` full-size frames in flight; the
 * guest's stack sends one cumulative ACK per poll that received data (GRO
 * merges what one poll gets); dom0 sends more `replyMs` after an ACK.
 */
export function tcpRxScenario(o: ScenarioOptions & { frames: number; window: number }): Figures {
  let sent = 0;
  let acked = 0;
  const { n, m, cc, setHost } = build(o, {
    onPollDone: (_rx, mm) => {
      const a = guestFrame(0xac);
      put32(a, 15, mm.rxFrames);
      mm.xmit(a);
    },
  });
  const more = () => {
    while (sent < o.frames && sent - acked < o.window) {
      n.be.inject(hostFrame(0xda, 1514));
      sent++;
    }
  };
  setHost((f) => {
    if (f[14] !== 0xac) return;
    const a = get32(f, 15);
    n.clock.timeout(o.replyMs, () => {
      acked = Math.max(acked, a);
      more();
    });
  });
  const t0 = n.clock.now();
  more();
  if (!m.idleUntil(() => m.rxFrames >= o.frames, o.frames * 1000)) throw new Error(`tcp rx: ${m.rxFrames} of ${o.frames}`);
  const f = o.frames;
  return { exits: m.exits / f, irqs: m.irqs / f, wakes: cc.fired / f, ms: (n.clock.now() - t0) / f };
}

/**
 * guest -> dom0 TCP: the guest keeps at most `window` frames unacknowledged
 * and, as TCP Small Queues does, at most `tsq` sent but not yet completed
 * (freed by a TX clean in a poll); dom0 ACKs every second frame `replyMs`
 * after it got it (a lone one after 40 ms, its delayed-ACK timer). The guest sends from the poll (ACKs in, TX completions)
 * and whenever it is idle.
 */
export function tcpTxScenario(o: ScenarioOptions & { frames: number; window: number; tsq: number }): Figures {
  let sent = 0;
  let acked = 0;
  let got = 0;
  const pump = (mm: LinuxE1000Model) => {
    while (sent < o.frames && sent - acked < o.window && sent - mm.txCompleted < o.tsq && mm.txFree > 0) {
      mm.xmit(guestFrame(0xda, 1514));
      sent++;
    }
  };
  const { n, m, cc, setHost } = build(o, {
    onFrame: (f, mm) => {
      if (f[14] === 0xac) acked = Math.max(acked, get32(f, 15));
      pump(mm);
    },
    onTxClean: (_d, mm) => pump(mm),
  });
  let ackedByHost = 0;
  const ack = () => {
    if (ackedByHost === got) return;
    ackedByHost = got;
    const a = hostFrame(0xac);
    put32(a, 15, got);
    n.be.inject(a);
  };
  setHost((f) => {
    if (f[14] !== 0xda) return;
    got++;
    // dom0 ACKs every second segment at once, a lone one after its delayed-ACK timer (40 ms)
    if (got % 2 === 0 || got === o.frames) n.clock.timeout(o.replyMs, ack);
    else n.clock.timeout(40, ack);
  });
  const t0 = n.clock.now();
  if (!m.idleUntil(() => (pump(m), got >= o.frames), o.frames * 1000)) throw new Error(`tcp tx: ${got} of ${o.frames}`);
  const f = o.frames;
  return { exits: m.exits / f, irqs: m.irqs / f, wakes: cc.fired / f, ms: (n.clock.now() - t0) / f };
}
