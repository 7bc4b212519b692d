/**
 * 16550A UART (NS16550A / TI TL16C550C datasheet section numbers in brackets).
 *
 * Transmission is instantaneous: a byte written to THR goes straight to the
 * backend (which batches it), so THR and the transmitter are always empty
 * again by the time the write returns, exactly what a polling boot loader
 * waiting on LSR.THRE wants. Reception fills a 16-byte FIFO (1 byte when the
 * FIFOs are off); a full FIFO drops the byte and sets LSR.OE, as the chip does.
 *
 * The one timing-dependent thing the chip does is the character timeout
 * interrupt (IIR 0x0C: bytes below the trigger level sitting unread). Input
 * arrives here in bursts from the backend, not bit by bit, so the timeout is
 * armed when a burst has been delivered, disarmed by an RBR read, and armed
 * again "at once" (a 0 ms timer on the board's clock: the next event-loop
 * turn on Xen, the next runDue() in the simulator) if bytes are still waiting.
 *
 * Registers stay a switch rather than a RegisterTable (core/regs.ts): offsets
 * 0 and 1 change meaning with LCR.DLAB, offsets 0 and 2 are different
 * registers for reads and writes, and the reads of RBR, IIR, LSR and MSR all
 * have side effects on state that is not a register (the FIFO, the latches).
 * A table would hold only SCR and LCR as plain storage and turn the rest into
 * handlers, i.e. the same switch split into closures; its real services
 * (partial access to wide registers, RC/W1C masks) do not apply to eight
 * byte registers.
 */
import type { AccessSize, IoHandler } from '../../core/io.ts';
import type { IrqLine } from '../../core/irq.ts';
import type { Clock } from '../../core/clock.ts';
import { OneShot } from '../../core/clock.ts';
import type { Device, StateObject } from '../../core/device.ts';
import { StateReader, StateError } from '../../core/state.ts';
import type { CharBackend } from '../../chardev/types.ts';

// Register offsets [8.x "Register descriptions", table 2]. DLAB = LCR bit 7.
export const RBR = 0; // receiver buffer (read, DLAB=0)
export const THR = 0; // transmitter holding (write, DLAB=0)
export const DLL = 0; // divisor latch LSB (DLAB=1)
export const IER = 1; // interrupt enable (DLAB=0)
export const DLM = 1; // divisor latch MSB (DLAB=1)
export const IIR = 2; // interrupt identification (read)
export const FCR = 2; // FIFO control (write)
export const LCR = 3; // line control
export const MCR = 4; // modem control
export const LSR = 5; // line status
export const MSR = 6; // modem status
export const SCR = 7; // scratch
export const UART_REGS = 8;

// IER [8.5]: bits 4-7 are always zero on a 16550A.
export const IER_ERBFI = 0x01; // received data available
export const IER_ETBEI = 0x02; // THR empty
export const IER_ELSI = 0x04; // receiver line status
export const IER_EDSSI = 0x08; // modem status
const IER_MASK = 0x0f;

// IIR [8.6, table 4]: bit 0 set = nothing pending; bits 6-7 = FIFOs enabled.
export const IIR_NO_INT = 0x01;
export const IIR_RLS = 0x06; // priority 1: OE/PE/FE/BI
export const IIR_RDA = 0x04; // priority 2: received data at trigger level
export const IIR_CTI = 0x0c; // priority 2: character timeout
export const IIR_THRE = 0x02; // priority 3: THR empty
export const IIR_MS = 0x00; // priority 4: modem status
export const IIR_FIFO = 0xc0;

// FCR [8.7].
export const FCR_ENABLE = 0x01;
export const FCR_CLEAR_RX = 0x02;
export const FCR_CLEAR_TX = 0x04;
export const FCR_TRIGGER_SHIFT = 6;
const RX_TRIGGER: readonly number[] = [1, 4, 8, 14];

// LCR [8.8].
export const LCR_DLAB = 0x80;

// MCR [8.9]: bits 5-7 are zero.
export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08;
export const MCR_LOOP = 0x10;
const MCR_MASK = 0x1f;

// LSR [8.10].
export const LSR_DR = 0x01;
export const LSR_OE = 0x02;
export const LSR_PE = 0x04;
export const LSR_FE = 0x08;
export const LSR_BI = 0x10;
export const LSR_THRE = 0x20;
export const LSR_TEMT = 0x40;
export const LSR_RXFE = 0x80; // error in RX FIFO
export const LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

// MSR [8.11]: low nibble = deltas (cleared by reading), high nibble = lines.
export const MSR_DCTS = 0x01;
export const MSR_DDSR = 0x02;
export const MSR_TERI = 0x04;
export const MSR_DDCD = 0x08;
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;
const MSR_DELTAS = 0x0f;
/** With no modem, the lines read as "connected" (what QEMU reports too). */
const MSR_IDLE = MSR_DCD | MSR_DSR | MSR_CTS;


export const FIFO_SIZE = 16;

/** The live registers and FIFO (private; snapshot() gives the plain-data view). */
interface Regs {
  ier: number;
  lcr: number;
  mcr: number;
  /** Only the error bits (OE/PE/FE/BI); DR/THRE/TEMT are derived. */
  lsrErrors: number;
  msr: number;
  scr: number;
  dll: number;
  dlm: number;
  fifoEnabled: boolean;
  rxTrigger: number;
  /** RX ring: FIFO_SIZE slots, `rxCount` bytes from `rxHead`. */
  rx: Uint8Array;
  rxHead: number;
  rxCount: number;
  /** THRE interrupt latched (cleared by reading IIR while it is the source, or by writing THR). */
  thrIpending: boolean;
  /** Character timeout latched (bytes below the trigger level, burst over). */
  timeoutPending: boolean;
}

/**
 * What snapshot() returns (state version 1). `rx` is the RX FIFO's contents,
 * oldest first; `rearm` the time left on the character-timeout re-arm timer
 * (null: idle; it is armed with 0 ms, so it is 0 when pending). The overrun
 * counter is a host-side statistic and is not saved.
 */
export type UartSnapshot = StateObject &
  Omit<Regs, 'rxHead' | 'rxCount'> & {
    rearm: number | null;
  };

function resetRegs(): Regs {
  return {
    ier: 0,
    lcr: 0,
    mcr: 0,
    lsrErrors: 0,
    msr: MSR_IDLE,
    scr: 0,
    dll: 0x0c, // 9600 baud, what a PC BIOS leaves behind
    dlm: 0,
    fifoEnabled: false,
    rxTrigger: 1,
    rx: new Uint8Array(FIFO_SIZE),
    rxHead: 0,
    rxCount: 0,
    thrIpending: false,
    timeoutPending: false,
  };
}

/** MSR bits 4-7 for an MCR value: in loopback the modem outputs wired back [8.9], else "connected". */
function modemLines(mcr: number): number {
  if ((mcr & MCR_LOOP) === 0) return MSR_IDLE;
  let lines = 0;
  if (mcr & MCR_RTS) lines |= MSR_CTS;
  if (mcr & MCR_DTR) lines |= MSR_DSR;
  if (mcr & MCR_OUT1) lines |= MSR_RI;
  if (mcr & MCR_OUT2) lines |= MSR_DCD;
  return lines;
}

const hex = (v: number): string => `0x${v.toString(16)}`;

export class Uart16550 implements IoHandler, Device {
  readonly id: string;
  readonly stateVersion = 1;
  /** Bytes dropped because the RX FIFO was full (each set LSR.OE). */
  overruns = 0;

  private s: Regs = resetRegs();
  /** The character timeout again, "at once", after a read left bytes below the trigger level. */
  private readonly rearm: OneShot;

  constructor(
    /** 0 = COM1 ... 3 = COM4 (the device id is uart.com<index+1>). */
    index: number,
    private readonly irq: IrqLine,
    private readonly backend: CharBackend,
    clock: Clock,
  ) {
    if (!Number.isInteger(index) || index < 0 || index > 3) throw new RangeError(`COM index ${index}`);
    this.id = `uart.com${index + 1}`;
    this.rearm = new OneShot(clock, () => {
      const s = this.s;
      if (s.rxCount > 0 && !s.timeoutPending) {
        s.timeoutPending = true;
        this.updateIrq();
      }
    });
    backend.setReceiver((data) => this.receive(data));
    this.updateIrq();
  }

  snapshot(): UartSnapshot {
    const s = this.s;
    const rx = new Uint8Array(s.rxCount);
    for (let i = 0; i < s.rxCount; i++) rx[i] = s.rx[(s.rxHead + i) % FIFO_SIZE];
    return {
      ier: s.ier,
      lcr: s.lcr,
      mcr: s.mcr,
      lsrErrors: s.lsrErrors,
      msr: s.msr,
      scr: s.scr,
      dll: s.dll,
      dlm: s.dlm,
      fifoEnabled: s.fifoEnabled,
      rxTrigger: s.rxTrigger,
      rx,
      thrIpending: s.thrIpending,
      timeoutPending: s.timeoutPending,
      rearm: this.rearm.remaining(),
    };
  }

  restore(state: StateObject): void {
    const r = new StateReader(state, this.id);
    const bad = (field: string, why: string): never => {
      throw new StateError(`${this.id}.${field}: ${why}`);
    };
    const mcr = r.int('mcr', 0, MCR_MASK);
    const msr = r.u('msr', 8);
    // The modem lines are a function of MCR (only an MCR write changes them); the deltas are free.
    if ((msr & 0xf0) !== modemLines(mcr)) bad('msr', `lines ${hex(msr & 0xf0)} do not follow mcr ${hex(mcr)}`);
    const lsrErrors = r.u('lsrErrors', 8);
    if ((lsrErrors & ~LSR_ERRORS) !== 0) bad('lsrErrors', `${hex(lsrErrors)} has bits other than OE/PE/FE/BI`);
    const fifoEnabled = r.bool('fifoEnabled');
    const rxTrigger = r.int('rxTrigger', 1, 14);
    if (!RX_TRIGGER.includes(rxTrigger)) bad('rxTrigger', `${rxTrigger} is not one of ${RX_TRIGGER.join('|')}`);
    if (!fifoEnabled && rxTrigger !== 1) bad('rxTrigger', `${rxTrigger} with the FIFOs off (always 1)`);
    const rx = r.bytes('rx', fifoEnabled ? FIFO_SIZE : 1, false);
    const timeoutPending = r.bool('timeoutPending');
    if (timeoutPending && rx.length === 0) bad('timeoutPending', 'set with an empty RX FIFO');
    const next: Regs = {
      ier: r.int('ier', 0, IER_MASK),
      lcr: r.u('lcr', 8),
      mcr,
      lsrErrors,
      msr,
      scr: r.u('scr', 8),
      dll: r.u('dll', 8),
      dlm: r.u('dlm', 8),
      fifoEnabled,
      rxTrigger,
      rx: new Uint8Array(FIFO_SIZE),
      rxHead: 0,
      rxCount: rx.length,
      thrIpending: r.bool('thrIpending'),
      timeoutPending,
    };
    next.rx.set(rx);
    const rearm = r.timer('rearm', 0); // always armed with 0 ms
    // Everything checked: now change the device.
    this.s = next;
    this.rearm.restore(rearm);
    this.updateIrq();
  }

  read(offset: number, size: AccessSize): number {
    // A wider access reads consecutive byte registers, little-endian (what a bus split gives).
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.readReg((offset + i) & 7) << (8 * i);
    return v >>> 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    for (let i = 0; i < size; i++) this.writeReg((offset + i) & 7, (value >>> (8 * i)) & 0xff);
  }

  /** Bytes from the backend (host side). Outside loopback they land in the RX FIFO. */
  receive(data: Uint8Array): void {
    const s = this.s;
    if ((s.mcr & MCR_LOOP) !== 0) return; // the receiver listens to the transmitter only
    for (let i = 0; i < data.length; i++) this.pushRx(data[i]);
    s.timeoutPending = s.rxCount > 0;
    this.updateIrq();
  }

  private readReg(reg: number): number {
    const s = this.s;
    switch (reg) {
      case RBR: {
        if ((s.lcr & LCR_DLAB) !== 0) return s.dll;
        if (s.rxCount === 0) return 0;
        const b = s.rx[s.rxHead];
        s.rxHead = (s.rxHead + 1) % FIFO_SIZE;
        s.rxCount--;
        s.timeoutPending = false;
        this.updateIrq();
        // Bytes left below the trigger level: the chip's timeout fires again after four
        // character times without a read. "Later" here is a 0 ms timer (the next turn of
        // the event loop on Xen), so a driver that reads one byte per interrupt gets a fresh edge.
        if (s.rxCount > 0) this.rearm.armIfIdle(0);
        return b;
      }
      case IER:
        return (s.lcr & LCR_DLAB) !== 0 ? s.dlm : s.ier;
      case IIR: {
        const id = this.pendingId();
        // Reading IIR acknowledges a THRE interrupt, and only when it is the one shown [8.6].
        if (id === IIR_THRE) {
          s.thrIpending = false;
          this.updateIrq();
        }
        return id | (s.fifoEnabled ? IIR_FIFO : 0);
      }
      case LCR:
        return s.lcr;
      case MCR:
        return s.mcr;
      case LSR: {
        const v = this.lsr();
        s.lsrErrors = 0; // reading LSR clears the error bits and the line status interrupt
        this.updateIrq();
        return v;
      }
      case MSR: {
        const v = s.msr;
        s.msr &= ~MSR_DELTAS;
        this.updateIrq();
        return v;
      }
      default: // SCR
        return s.scr;
    }
  }

  private writeReg(reg: number, v: number): void {
    const s = this.s;
    switch (reg) {
      case THR:
        if ((s.lcr & LCR_DLAB) !== 0) {
          s.dll = v;
          return;
        }
        s.thrIpending = false;
        if ((s.mcr & MCR_LOOP) !== 0) {
          this.pushRx(v);
          s.timeoutPending = true;
        } else {
          this.backend.writeByte(v);
        }
        // Sent at once: THR is empty again, which raises THRE anew (the 8250 driver's TX loop).
        s.thrIpending = true;
        this.updateIrq();
        return;
      case IER: {
        if ((s.lcr & LCR_DLAB) !== 0) {
          s.dlm = v;
          return;
        }
        const old = s.ier;
        s.ier = v & IER_MASK;
        // Enabling ETBEI while THR is empty raises THRE at once: Linux's startup test
        // (UART_BUG_THRE) and its start_tx depend on it.
        if ((s.ier & IER_ETBEI) !== 0 && (old & IER_ETBEI) === 0) s.thrIpending = true;
        this.updateIrq();
        return;
      }
      case FCR: {
        const enable = (v & FCR_ENABLE) !== 0;
        if (enable !== s.fifoEnabled) {
          // Changing the FIFO mode clears both FIFOs [8.7].
          this.clearRx();
          s.fifoEnabled = enable;
        }
        if (enable) {
          if ((v & FCR_CLEAR_RX) !== 0) this.clearRx();
          // FCR_CLEAR_TX: the transmit FIFO is always empty here.
          s.rxTrigger = RX_TRIGGER[(v >> FCR_TRIGGER_SHIFT) & 3];
        } else {
          s.rxTrigger = 1;
        }
        this.updateIrq();
        return;
      }
      case LCR:
        s.lcr = v;
        return;
      case MCR: {
        s.mcr = v & MCR_MASK;
        this.updateMsr();
        this.updateIrq();
        return;
      }
      case LSR:
        return; // read-only (factory test register on some parts)
      case MSR:
        return; // read-only
      default: // SCR
        s.scr = v;
        return;
    }
  }

  private lsr(): number {
    const s = this.s;
    let v = LSR_THRE | LSR_TEMT | s.lsrErrors;
    if (s.rxCount > 0) v |= LSR_DR;
    return v;
  }

  private capacity(): number {
    return this.s.fifoEnabled ? FIFO_SIZE : 1;
  }

  private pushRx(b: number): void {
    const s = this.s;
    if (s.rxCount >= this.capacity()) {
      s.lsrErrors |= LSR_OE;
      this.overruns++;
      return;
    }
    s.rx[(s.rxHead + s.rxCount) % FIFO_SIZE] = b;
    s.rxCount++;
  }

  private clearRx(): void {
    const s = this.s;
    s.rxHead = 0;
    s.rxCount = 0;
    s.timeoutPending = false;
  }

  /** In loopback, the modem inputs are wired to the modem outputs [8.9]; deltas record changes. */
  private updateMsr(): void {
    const s = this.s;
    const lines = modemLines(s.mcr);
    const old = s.msr;
    const changed = (old ^ lines) & 0xf0;
    let deltas = old & MSR_DELTAS;
    if (changed & MSR_CTS) deltas |= MSR_DCTS;
    if (changed & MSR_DSR) deltas |= MSR_DDSR;
    if (changed & MSR_DCD) deltas |= MSR_DDCD;
    if (changed & MSR_RI && (old & MSR_RI) !== 0) deltas |= MSR_TERI; // trailing edge of RI only
    s.msr = lines | deltas;
  }

  /** Highest-priority pending interrupt id [8.6, table 4], IIR_NO_INT if none. */
  private pendingId(): number {
    const s = this.s;
    const ier = s.ier;
    if ((ier & IER_ELSI) !== 0 && (s.lsrErrors & LSR_ERRORS) !== 0) return IIR_RLS;
    if ((ier & IER_ERBFI) !== 0 && s.rxCount > 0) {
      if (!s.fifoEnabled || s.rxCount >= s.rxTrigger) return IIR_RDA;
      if (s.timeoutPending) return IIR_CTI;
    }
    if ((ier & IER_ETBEI) !== 0 && s.thrIpending) return IIR_THRE;
    if ((ier & IER_EDSSI) !== 0 && (s.msr & MSR_DELTAS) !== 0) return IIR_MS;
    return IIR_NO_INT;
  }

  // The IRQ follows the IIR, ungated by MCR.OUT2 (as QEMU does: guests that forget OUT2 still work).
  private updateIrq(): void {
    this.irq.set(this.pendingId() !== IIR_NO_INT);
  }
}
