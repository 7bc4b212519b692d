/**
 * The i8042 keyboard controller at ports 0x60 (data) and 0x64 (status /
 * command), with a PS/2 keyboard on its first port (IRQ 1) and a PS/2 mouse
 * on its auxiliary port (IRQ 12).
 *
 * Xen does not emulate it: without an answer on 0x60/0x64 SeaBIOS waits for
 * an output buffer that reads 0xff forever ("WARNING - Timeout at
 * i8042_flush:71!", no "PS2 keyboard initialized") and Linux's reboot
 * through the controller (command 0xFE: pulse the reset line) does nothing.
 *
 * Sources for every constant: the IBM PS/2 Hardware Interface Technical
 * Reference ("Keyboard/Auxiliary Device Controller" and "Keyboard" /
 * "Pointing Device" chapters), checked against QEMU hw/input/pckbd.c and
 * hw/input/ps2.c (behaviour where the reference leaves a choice) and the
 * Linux i8042/atkbd/libps2 drivers and SeaBIOS src/hw/ps2port.c (what the
 * guests actually send).
 *
 * Everything is synchronous: a byte written is processed before the ioreq
 * completes, so the input buffer is never full (IBF always 0). Replies land
 * in per-device queues of at most QUEUE_SIZE bytes (the rest is dropped, as a
 * device with a full buffer does) and move one at a time into the
 * controller's output buffer. Nothing here is on a hot path.
 */
import type { Board } from '../../core/board.ts';
import type { AccessSize, IoHandler } from '../../core/io.ts';
import type { IrqLine } from '../../core/irq.ts';
import { SHUTDOWN_REBOOT } from '../../core/host.ts';
import { RateLimited, type Logger } from '../../core/log.ts';
import type { Device, StateObject } from '../../core/device.ts';
import { StateError, StateReader } from '../../core/state.ts';

export const I8042_DATA_PORT = 0x60;
export const I8042_CMD_PORT = 0x64; // reads: status register; writes: controller command
export const I8042_KBD_IRQ = 1;
export const I8042_AUX_IRQ = 12;
/** Bytes each device (and the controller itself) can hold for the guest; more are dropped. */
export const QUEUE_SIZE = 16;

// Status register, read at 0x64 (IBM PS/2 ref. "Status Register"; QEMU KBD_STAT_*).
export const STAT_OBF = 0x01; // output buffer full: a byte waits at 0x60
export const STAT_IBF = 0x02; // input buffer full: never, writes are processed synchronously
export const STAT_SYS = 0x04; // system flag: set by self test, then mirrors command byte bit 2
export const STAT_CMD = 0x08; // last write went to 0x64 (command) rather than 0x60 (data)
export const STAT_UNLOCKED = 0x10; // inhibit switch: 1 = keyboard not inhibited
export const STAT_AUX_OBF = 0x20; // the byte in the output buffer comes from the aux device

// Command byte, controller RAM 0 (IBM PS/2 ref. "Command Byte"; QEMU KBD_MODE_*, Linux I8042_CTR_*).
export const CTR_KBDINT = 0x01; // IRQ 1 when a keyboard byte is in the output buffer
export const CTR_AUXINT = 0x02; // IRQ 12 when an aux byte is in the output buffer
export const CTR_SYS = 0x04; // copied to STAT_SYS
export const CTR_KBDDIS = 0x10; // keyboard clock held low: its bytes stay in the keyboard
export const CTR_AUXDIS = 0x20; // same for the aux device
export const CTR_XLATE = 0x40; // translate set 2 to set 1 (only the ID replies below depend on it)
/** QEMU's power-on command byte: both interrupts enabled. */
const CTR_RESET = CTR_KBDINT | CTR_AUXINT;

// Output port (commands 0xD0/0xD1; QEMU KBD_OUT_*).
export const OUT_RESET = 0x01; // 0 = system reset asserted
export const OUT_A20 = 0x02; // gate A20 (kept as written: an HVM guest's A20 is always on)
export const OUT_KBD_OBF = 0x10; // mirrors STAT_OBF for a keyboard byte
export const OUT_AUX_OBF = 0x20; // mirrors STAT_AUX_OBF
const OUT_ONES = 0xcc; // keyboard clock/data lines and unused bits read as 1 (QEMU KBD_OUT_ONES)
/** Input port (0xC0): bit 7 = keyboard not inhibited (QEMU's answer). */
const INPORT_VALUE = 0x80;

// Controller commands, written to 0x64 (IBM PS/2 ref. "Commands (I/O Address Hex 64)").
export const CCMD_READ_CTR = 0x20;
export const CCMD_WRITE_CTR = 0x60;
export const CCMD_AUX_DISABLE = 0xa7;
export const CCMD_AUX_ENABLE = 0xa8;
export const CCMD_AUX_TEST = 0xa9; // 0x00 = interface OK
export const CCMD_SELF_TEST = 0xaa; // 0x55 = controller OK
export const CCMD_KBD_TEST = 0xab; // 0x00 = interface OK
export const CCMD_KBD_DISABLE = 0xad;
export const CCMD_KBD_ENABLE = 0xae;
export const CCMD_READ_INPORT = 0xc0;
export const CCMD_READ_OUTPORT = 0xd0;
export const CCMD_WRITE_OUTPORT = 0xd1;
export const CCMD_WRITE_KBD_OBUF = 0xd2; // next data byte appears as if the keyboard sent it
export const CCMD_WRITE_AUX_OBUF = 0xd3; // ... as if the aux device sent it (Linux's AUX_LOOP probe)
export const CCMD_WRITE_AUX = 0xd4; // next data byte goes to the aux device
export const CCMD_DISABLE_A20 = 0xdd; // HP Vectra A20 commands (QEMU accepts them)
export const CCMD_ENABLE_A20 = 0xdf;
export const CCMD_PULSE_FIRST = 0xf0; // 0xf0-0xff: pulse output port bits 0-3 where the command bit is 0
export const CCMD_RESET = 0xfe; // pulse bit 0 only: system reset (Linux's "kbd" reboot)

// Device replies (IBM PS/2 ref. "Keyboard" chapter; QEMU ps2.c KBD_REPLY_* / AUX_*).
export const REPLY_ACK = 0xfa;
export const REPLY_RESEND = 0xfe;
export const REPLY_BAT_OK = 0xaa; // basic assurance test passed (after reset)
export const REPLY_ECHO = 0xee;
export const KBD_ID = [0xab, 0x83] as const; // MF2 keyboard
/** The second ID byte as it arrives through translation (QEMU; Linux atkbd knows 0xab41). */
const KBD_ID2_XLATE = 0x41;
/** Scan set numbers 1-3 as they arrive through translation (QEMU translate_table[1..3]). */
const XLATED_SET: readonly number[] = [0, 0x43, 0x41, 0x3f];
export const AUX_ID = 0x00; // standard PS/2 mouse
/** IDs after the sample-rate knocks (Microsoft IntelliMouse and IntelliMouse Explorer; Linux psmouse-base.c probes both). */
export const AUX_ID_WHEEL = 0x03; // 4-byte packets, byte 3 = wheel
export const AUX_ID_5BUTTON = 0x04; // 4-byte packets, byte 3 = wheel (4 bits) | buttons 4/5

// Keyboard commands, written to 0x60 (IBM PS/2 ref. "Commands from the System").
export const KCMD_SET_LEDS = 0xed;
export const KCMD_ECHO = 0xee;
export const KCMD_SCANSET = 0xf0;
export const KCMD_GET_ID = 0xf2;
export const KCMD_TYPEMATIC = 0xf3;
export const KCMD_ENABLE = 0xf4;
export const KCMD_DISABLE = 0xf5; // default disable: defaults, stop scanning
export const KCMD_DEFAULTS = 0xf6;
export const KCMD_RESET = 0xff;

// Pointing device commands, written through 0xd4 (IBM PS/2 ref. "Pointing Device" chapter).
export const MCMD_SCALE_1_1 = 0xe6;
export const MCMD_SCALE_2_1 = 0xe7;
export const MCMD_SET_RES = 0xe8;
export const MCMD_STATUS = 0xe9; // ACK, then status, resolution, sample rate
export const MCMD_SET_STREAM = 0xea;
export const MCMD_READ_DATA = 0xeb; // ACK, then one (empty) movement packet
export const MCMD_SET_REMOTE = 0xf0;
export const MCMD_GET_ID = 0xf2;
export const MCMD_SET_RATE = 0xf3;
export const MCMD_ENABLE = 0xf4;
export const MCMD_DISABLE = 0xf5;
export const MCMD_DEFAULTS = 0xf6;
export const MCMD_RESET = 0xff;
/** Sample rates a PS/2 mouse accepts (reports/s); anything else gets a resend. */
const MOUSE_RATES: readonly number[] = [10, 20, 40, 60, 80, 100, 200];
const MOUSE_MAX_RES = 3; // 0-3: 1, 2, 4, 8 counts/mm
// Status byte of MCMD_STATUS.
const MSTAT_REMOTE = 0x40;
const MSTAT_ENABLED = 0x20;
const MSTAT_SCALE_2_1 = 0x10;
/** Packet byte 0 always has bit 3 set (IBM PS/2 ref. "Data Report"). */
const MPKT_ALWAYS1 = 0x08;
const MPKT_X_SIGN = 0x10;
const MPKT_Y_SIGN = 0x20;
/** One packet carries at most this much movement per axis; the rest goes in the next (QEMU clamps the same way). */
const MPKT_MAX = 127;
/** IntelliMouse byte 3 carries a 4-bit wheel count on the 5-button mouse. */
const MPKT_WHEEL4_MAX = 7;
/** Movement held for the guest is bounded: a host that moves faster than the guest reads loses the excess. */
const MOUSE_PENDING_MAX = 4096;
/** Buttons in packet order: bit 0 left, 1 right, 2 middle, 3 side (4th), 4 extra (5th). */
export const BTN_LEFT = 0x01;
export const BTN_RIGHT = 0x02;
export const BTN_MIDDLE = 0x04;
export const BTN_SIDE = 0x08;
export const BTN_EXTRA = 0x10;
const BTN_ALL = 0x1f;

/**
 * The sample-rate "knock" that switches the mouse to a wheel mouse: rates
 * 200, 100, 80 give ID 3, rates 200, 200, 80 give ID 4 (Microsoft's
 * IntelliMouse protocol as the Linux psmouse driver probes it; QEMU ps2.c
 * answers the same). A small state machine: DETECT[state][rate] -> next
 * state, or an ID when the sequence is complete; anything else: back to 0.
 */
const DETECT: readonly Readonly<Record<number, number | { id: number }>>[] = [
  { 200: 1 },
  { 100: 2, 200: 3 },
  { 80: { id: AUX_ID_WHEEL } },
  { 80: { id: AUX_ID_5BUTTON } },
];
const DETECT_STATES = DETECT.length;

// Where the byte in the output buffer came from (obSource).
export const SRC_NONE = 0;
export const SRC_KBD = 1;
export const SRC_AUX = 2;
/** Marks a controller-generated byte (ctl) that reads as aux data (0xd3). */
const CTL_AUX = 0x100;
const NONE = -1;

export interface KbdState {
  queue: number[];
  /** Command waiting for its data byte (0xed, 0xf0, 0xf3), or -1. */
  pending: number;
  scanning: boolean;
  scancodeSet: number;
  leds: number;
  typematic: number;
}

export interface AuxState {
  queue: number[];
  pending: number; // 0xe8, 0xf3 or -1
  enabled: boolean; // data reporting (stream mode)
  remote: boolean;
  scale21: boolean;
  resolution: number;
  sampleRate: number;
  /** AUX_ID, AUX_ID_WHEEL or AUX_ID_5BUTTON: the packet format. */
  type: number;
  /** Where the sample-rate knock is (DETECT index). */
  detect: number;
  /** Movement not yet sent (x right, y down as the host gives it; z wheel, positive = towards the user). */
  dx: number;
  dy: number;
  dz: number;
  /** Buttons held (BTN_*). */
  buttons: number;
}

/** Everything the controller and its two devices are (live; snapshot() copies it out). */
interface I8042State {
  ctr: number;
  /** Only STAT_SYS and STAT_CMD are stored; OBF/AUX_OBF follow obSource. */
  status: number;
  outport: number;
  /** Controller command waiting for its data byte (0x60, 0xd1-0xd4), or -1. */
  pending: number;
  /** The output buffer: a byte and its source (SRC_*); SRC_NONE = empty. */
  ob: number;
  obSource: number;
  /** What 0x60 reads when the output buffer is empty: the last byte read (QEMU, EMM386 needs it). */
  lastData: number;
  /** Controller replies, ahead of device bytes; CTL_AUX marks 0xd3 bytes. */
  ctl: number[];
  kbd: KbdState;
  aux: AuxState;
}

function kbdDefaults(k: KbdState): void {
  k.scancodeSet = 2;
  k.leds = 0;
  k.typematic = 0x2b; // 10.9 chars/s, 500 ms delay (IBM default)
}

/** DISABLE, DEFAULTS and RESET: the buffer emptied, default settings, scanning on or off. */
function kbdRestart(k: KbdState, scanning: boolean): void {
  k.queue.length = 0;
  kbdDefaults(k);
  k.scanning = scanning;
}

function auxDefaults(a: AuxState): void {
  a.enabled = false;
  a.remote = false;
  a.scale21 = false;
  a.resolution = 2; // 4 counts/mm
  a.sampleRate = 100;
}

function i8042Reset(): I8042State {
  const kbd: KbdState = { queue: [], pending: NONE, scanning: true, scancodeSet: 2, leds: 0, typematic: 0 };
  kbdDefaults(kbd);
  const aux: AuxState = {
    queue: [],
    pending: NONE,
    enabled: false,
    remote: false,
    scale21: false,
    resolution: 0,
    sampleRate: 0,
    type: AUX_ID,
    detect: 0,
    dx: 0,
    dy: 0,
    dz: 0,
    buttons: 0,
  };
  auxDefaults(aux);
  return {
    ctr: CTR_RESET,
    status: STAT_CMD,
    outport: OUT_ONES | OUT_A20 | OUT_RESET,
    pending: NONE,
    ob: 0,
    obSource: SRC_NONE,
    lastData: 0,
    ctl: [],
    kbd,
    aux,
  };
}

/** Queue bytes (an entry may carry CTL_AUX above the byte); a full queue drops them. Returns how many fit. */
function push(q: number[], ...bytes: number[]): number {
  let n = 0;
  for (const b of bytes) if (q.length < QUEUE_SIZE) (q.push(b & (0xff | CTL_AUX)), n++);
  return n;
}

/** A command: what runs when it is written, and (if it takes one) what the next data byte does. */
interface Command<T> {
  run?: (dev: T, s: I8042State) => void;
  data?: (dev: T, s: I8042State, value: number) => void;
}

const CONTROLLER_COMMANDS: Record<number, Command<I8042>> = {
  [CCMD_READ_CTR]: { run: (c, s) => c.reply(s.ctr) },
  [CCMD_WRITE_CTR]: {
    data: (_c, s, v) => {
      s.ctr = v;
      s.status = (s.status & ~STAT_SYS) | (v & CTR_SYS);
    },
  },
  [CCMD_AUX_DISABLE]: { run: (_c, s) => (s.ctr |= CTR_AUXDIS) },
  [CCMD_AUX_ENABLE]: { run: (_c, s) => (s.ctr &= ~CTR_AUXDIS) },
  [CCMD_AUX_TEST]: { run: (c) => c.reply(0x00) },
  [CCMD_SELF_TEST]: {
    run: (c, s) => {
      s.status |= STAT_SYS;
      c.reply(0x55);
    },
  },
  [CCMD_KBD_TEST]: { run: (c) => c.reply(0x00) },
  [CCMD_KBD_DISABLE]: { run: (_c, s) => (s.ctr |= CTR_KBDDIS) },
  [CCMD_KBD_ENABLE]: { run: (_c, s) => (s.ctr &= ~CTR_KBDDIS) },
  [CCMD_READ_INPORT]: { run: (c) => c.reply(INPORT_VALUE) },
  [CCMD_READ_OUTPORT]: {
    run: (c, s) => {
      const obf = s.obSource === SRC_KBD ? OUT_KBD_OBF : s.obSource === SRC_AUX ? OUT_AUX_OBF : 0;
      c.reply((s.outport & ~(OUT_KBD_OBF | OUT_AUX_OBF)) | obf);
    },
  },
  [CCMD_WRITE_OUTPORT]: {
    data: (c, s, v) => {
      s.outport = v | OUT_RESET; // the line comes back up with the machine
      if ((v & OUT_RESET) === 0) c.requestReset('output port write');
    },
  },
  [CCMD_WRITE_KBD_OBUF]: { data: (_c, s, v) => push(s.ctl, v) },
  [CCMD_WRITE_AUX_OBUF]: { data: (_c, s, v) => push(s.ctl, v | CTL_AUX) },
  [CCMD_WRITE_AUX]: {
    data: (c, s, v) => {
      s.ctr &= ~CTR_AUXDIS; // sending to the device re-enables its interface (QEMU)
      c.auxWrite(v);
    },
  },
  [CCMD_DISABLE_A20]: { run: (_c, s) => (s.outport &= ~OUT_A20) },
  [CCMD_ENABLE_A20]: { run: (_c, s) => (s.outport |= OUT_A20) },
};
for (let cmd = CCMD_PULSE_FIRST; cmd <= 0xff; cmd++) {
  // A 0 in bits 0-3 pulses that output line; only bit 0 (reset) is wired to anything.
  if ((cmd & OUT_RESET) === 0) CONTROLLER_COMMANDS[cmd] = { run: (c) => c.requestReset('pulse command') };
  else CONTROLLER_COMMANDS[cmd] = {};
}

const KBD_COMMANDS: Record<number, Command<I8042>> = {
  [KCMD_SET_LEDS]: { run: (c) => c.kbdReply(REPLY_ACK), data: (c, s, v) => ((s.kbd.leds = v & 7), c.kbdReply(REPLY_ACK)) },
  [KCMD_ECHO]: { run: (c) => c.kbdReply(REPLY_ECHO) },
  [KCMD_SCANSET]: {
    run: (c) => c.kbdReply(REPLY_ACK),
    data: (c, s, v) => {
      const k = s.kbd;
      if (v === 0) c.kbdReply(REPLY_ACK, (s.ctr & CTR_XLATE) !== 0 ? XLATED_SET[k.scancodeSet] : k.scancodeSet);
      else if (v >= 1 && v <= 3) ((k.scancodeSet = v), c.kbdReply(REPLY_ACK));
      else c.kbdReply(REPLY_RESEND);
    },
  },
  [KCMD_GET_ID]: { run: (c, s) => c.kbdReply(REPLY_ACK, KBD_ID[0], (s.ctr & CTR_XLATE) !== 0 ? KBD_ID2_XLATE : KBD_ID[1]) },
  [KCMD_TYPEMATIC]: { run: (c) => c.kbdReply(REPLY_ACK), data: (c, s, v) => ((s.kbd.typematic = v & 0x7f), c.kbdReply(REPLY_ACK)) },
  [KCMD_ENABLE]: {
    run: (c, s) => {
      s.kbd.queue.length = 0; // enable clears the keyboard's buffer (IBM ref.)
      s.kbd.scanning = true;
      c.kbdReply(REPLY_ACK);
    },
  },
  [KCMD_DISABLE]: { run: (c, s) => (kbdRestart(s.kbd, false), c.kbdReply(REPLY_ACK)) },
  [KCMD_DEFAULTS]: { run: (c, s) => (kbdRestart(s.kbd, true), c.kbdReply(REPLY_ACK)) },
  [KCMD_RESET]: { run: (c, s) => (kbdRestart(s.kbd, true), c.kbdReply(REPLY_ACK, REPLY_BAT_OK)) },
};

const AUX_COMMANDS: Record<number, Command<I8042>> = {
  [MCMD_SCALE_1_1]: { run: (c, s) => ((s.aux.scale21 = false), c.auxReply(REPLY_ACK)) },
  [MCMD_SCALE_2_1]: { run: (c, s) => ((s.aux.scale21 = true), c.auxReply(REPLY_ACK)) },
  [MCMD_SET_RES]: {
    run: (c) => c.auxReply(REPLY_ACK),
    data: (c, s, v) => (v <= MOUSE_MAX_RES ? ((s.aux.resolution = v), c.auxReply(REPLY_ACK)) : c.auxReply(REPLY_RESEND)),
  },
  [MCMD_STATUS]: {
    run: (c, s) => {
      const a = s.aux;
      const st = (a.remote ? MSTAT_REMOTE : 0) | (a.enabled ? MSTAT_ENABLED : 0) | (a.scale21 ? MSTAT_SCALE_2_1 : 0);
      c.auxReply(REPLY_ACK, st, a.resolution, a.sampleRate);
    },
  },
  [MCMD_SET_STREAM]: { run: (c, s) => ((s.aux.remote = false), c.auxReply(REPLY_ACK)) },
  // Remote mode's poll (stream mode answers it too): the movement gathered since the last packet.
  [MCMD_READ_DATA]: { run: (c) => (c.auxReply(REPLY_ACK), c.mousePacket()) },
  [MCMD_SET_REMOTE]: { run: (c, s) => ((s.aux.remote = true), c.auxReply(REPLY_ACK)) },
  [MCMD_GET_ID]: { run: (c, s) => c.auxReply(REPLY_ACK, s.aux.type) },
  [MCMD_SET_RATE]: {
    run: (c) => c.auxReply(REPLY_ACK),
    data: (c, s, v) => {
      if (!MOUSE_RATES.includes(v)) return c.auxReply(REPLY_RESEND);
      const a = s.aux;
      a.sampleRate = v;
      const next = DETECT[a.detect][v];
      if (typeof next === 'number') a.detect = next;
      else {
        if (next !== undefined) a.type = next.id;
        a.detect = 0;
      }
      c.auxReply(REPLY_ACK);
    },
  },
  [MCMD_ENABLE]: { run: (c, s) => ((s.aux.enabled = true), c.auxReply(REPLY_ACK)) },
  [MCMD_DISABLE]: { run: (c, s) => ((s.aux.enabled = false), c.auxReply(REPLY_ACK)) },
  [MCMD_DEFAULTS]: { run: (c, s) => (auxDefaults(s.aux), c.auxReply(REPLY_ACK)) },
  [MCMD_RESET]: {
    run: (c, s) => {
      const a = s.aux;
      a.queue.length = 0;
      auxDefaults(a);
      a.type = AUX_ID; // back to a plain 3-byte mouse until the guest knocks again
      a.detect = 0;
      a.dx = a.dy = a.dz = 0;
      c.auxReply(REPLY_ACK, REPLY_BAT_OK, AUX_ID);
    },
  },
};

/** Commands that wait for a data byte: the only values a `pending` field can hold (besides -1). */
const dataCommands = (t: Record<number, Command<I8042>>): number[] =>
  Object.keys(t)
    .map(Number)
    .filter((k) => t[k].data !== undefined);
const CONTROLLER_DATA_COMMANDS = dataCommands(CONTROLLER_COMMANDS); // 0x60, 0xd1-0xd4
const KBD_DATA_COMMANDS = dataCommands(KBD_COMMANDS); // 0xed, 0xf0, 0xf3
const AUX_DATA_COMMANDS = dataCommands(AUX_COMMANDS); // 0xe8, 0xf3

function refuse(r: StateReader, key: string, why: string): never {
  throw new StateError(`${r.path}.${key}: ${why}`);
}

function pendingOf(r: StateReader, allowed: readonly number[]): number {
  const v = r.int('pending', NONE, 0xff);
  if (v !== NONE && !allowed.includes(v)) refuse(r, 'pending', `0x${v.toString(16)} is not a command that takes a data byte`);
  return v;
}

/**
 * What snapshot() returns (state version 2; version 1 had no mouse type,
 * knock state, movement or buttons): the controller's registers, its
 * output buffer and reply queue (`ctl`: bytes, CTL_AUX = 0x100 marks one
 * that reads as aux data), and each device's buffer (oldest first) and settings.
 * `pending` fields: the command waiting for its data byte, or -1.
 */
export type I8042Snapshot = StateObject &
  Omit<I8042State, 'kbd' | 'aux'> & {
    kbd: WithBytes<KbdState>;
    aux: WithBytes<AuxState>;
  };

/** A device's state as saved: its queue as bytes. */
type WithBytes<T extends { queue: number[] }> = Omit<T, 'queue'> & { queue: Uint8Array };

export class I8042 implements Device {
  readonly id = 'i8042';
  readonly stateVersion = 2;
  /** Version 1 (before mouse movement existed): a plain mouse at rest. */
  readonly upgrades = {
    1: (old: StateObject): StateObject => {
      const aux = old.aux as StateObject | undefined;
      return { ...old, aux: { ...aux, type: AUX_ID, detect: 0, dx: 0, dy: 0, dz: 0, buttons: 0 } };
    },
  };
  private s: I8042State = i8042Reset();
  /** Port 0x60 and port 0x64 as bus regions. */
  readonly dataPort: IoHandler;
  readonly cmdPort: IoHandler;
  private readonly bad: RateLimited;

  constructor(
    private readonly kbdIrq: IrqLine,
    private readonly auxIrq: IrqLine,
    /** Pulls the system reset line (board.shutdown(SHUTDOWN_REBOOT)). */
    private readonly reset: () => void,
    private readonly log: Logger,
  ) {
    this.bad = new RateLimited(log);
    this.dataPort = {
      read: (_o, size) => widen(this.readData(), size),
      write: (_o, _size, v) => this.writeData(v & 0xff),
    };
    this.cmdPort = {
      read: (_o, size) => widen(this.readStatus(), size),
      write: (_o, _size, v) => this.writeCommand(v & 0xff),
    };
    this.update();
  }

  snapshot(): I8042Snapshot {
    const s = this.s;
    const k = s.kbd;
    const a = s.aux;
    return {
      ctr: s.ctr,
      status: s.status,
      outport: s.outport,
      pending: s.pending,
      ob: s.ob,
      obSource: s.obSource,
      lastData: s.lastData,
      ctl: s.ctl.slice(),
      kbd: { queue: Uint8Array.from(k.queue), pending: k.pending, scanning: k.scanning, scancodeSet: k.scancodeSet, leds: k.leds, typematic: k.typematic },
      aux: {
        queue: Uint8Array.from(a.queue),
        pending: a.pending,
        enabled: a.enabled,
        remote: a.remote,
        scale21: a.scale21,
        resolution: a.resolution,
        sampleRate: a.sampleRate,
        type: a.type,
        detect: a.detect,
        dx: a.dx,
        dy: a.dy,
        dz: a.dz,
        buttons: a.buttons,
      },
    };
  }

  restore(state: StateObject): void {
    const r = new StateReader(state, this.id);
    const ctr = r.u('ctr', 8);
    const status = r.u('status', 8);
    if ((status & ~(STAT_SYS | STAT_CMD)) !== 0) refuse(r, 'status', `0x${status.toString(16)} has bits other than SYS/CMD (the rest are derived)`);
    const outport = r.u('outport', 8);
    if ((outport & OUT_RESET) === 0) refuse(r, 'outport', 'reset line low (it comes back up with the machine)');
    const obSource = r.int('obSource', SRC_NONE, SRC_AUX);
    const ctl = r.ints('ctl', -1, 0, 0xff | CTL_AUX, QUEUE_SIZE);
    const kr = r.obj('kbd');
    const kbd: KbdState = {
      queue: Array.from(kr.bytes('queue', QUEUE_SIZE, false)),
      pending: pendingOf(kr, KBD_DATA_COMMANDS),
      scanning: kr.bool('scanning'),
      scancodeSet: kr.int('scancodeSet', 1, 3),
      leds: kr.int('leds', 0, 7),
      typematic: kr.int('typematic', 0, 0x7f),
    };
    const ar = r.obj('aux');
    const aux: AuxState = {
      queue: Array.from(ar.bytes('queue', QUEUE_SIZE, false)),
      pending: pendingOf(ar, AUX_DATA_COMMANDS),
      enabled: ar.bool('enabled'),
      remote: ar.bool('remote'),
      scale21: ar.bool('scale21'),
      resolution: ar.int('resolution', 0, MOUSE_MAX_RES),
      sampleRate: ar.int('sampleRate', MOUSE_RATES[0], MOUSE_RATES[MOUSE_RATES.length - 1]),
      type: ar.int('type', AUX_ID, AUX_ID_5BUTTON),
      detect: ar.int('detect', 0, DETECT_STATES - 1),
      dx: ar.int('dx', -MOUSE_PENDING_MAX, MOUSE_PENDING_MAX),
      dy: ar.int('dy', -MOUSE_PENDING_MAX, MOUSE_PENDING_MAX),
      dz: ar.int('dz', -MOUSE_PENDING_MAX, MOUSE_PENDING_MAX),
      buttons: ar.int('buttons', 0, BTN_ALL),
    };
    if (aux.type !== AUX_ID && aux.type !== AUX_ID_WHEEL && aux.type !== AUX_ID_5BUTTON) refuse(ar, 'type', `${aux.type} is not a mouse ID this controller reports`);
    if (!MOUSE_RATES.includes(aux.sampleRate)) refuse(ar, 'sampleRate', `${aux.sampleRate} is not one of ${MOUSE_RATES.join('|')}`);
    // The output buffer is refilled whenever it empties: an empty one with a byte that
    // could move into it is a state this controller is never in.
    if (obSource === SRC_NONE && (ctl.length > 0 || (kbd.queue.length > 0 && (ctr & CTR_KBDDIS) === 0) || (aux.queue.length > 0 && (ctr & CTR_AUXDIS) === 0))) {
      refuse(r, 'obSource', 'output buffer empty while bytes wait for it');
    }
    const next: I8042State = {
      ctr,
      status,
      outport,
      pending: pendingOf(r, CONTROLLER_DATA_COMMANDS),
      ob: r.u('ob', 8),
      obSource,
      lastData: r.u('lastData', 8),
      ctl,
      kbd,
      aux,
    };
    // Everything checked: now change the controller and drive the lines to match.
    this.s = next;
    this.update();
  }

  /**
   * Key bytes from the host, exactly as the guest should read them at 0x60
   * (scan set 1 while the guest has translation on, as SeaBIOS and Linux
   * do: there is no translation here). Dropped while the keyboard is not
   * scanning or its buffer is full. Returns how many bytes were queued.
   */
  pressKey(bytes: ArrayLike<number>): number {
    const k = this.s.kbd;
    if (!k.scanning) return 0;
    let n = 0;
    for (let i = 0; i < bytes.length; i++) n += push(k.queue, bytes[i] & 0xff);
    this.update();
    return n;
  }

  /**
   * Pointer input from the host: a relative move (x right, y down, as VNC
   * and evdev give it), a wheel move (positive = towards the user, one
   * detent = 1) and the buttons now held (BTN_*). Sent at once as stream
   * packets if the guest enabled reporting; kept for a remote-mode poll;
   * dropped while reporting is off (a real mouse does not buffer either).
   * Movement beyond what the buffer holds waits, bounded, for the guest to read.
   */
  moveMouse(dx: number, dy: number, dz: number, buttons: number): void {
    const a = this.s.aux;
    if (!a.enabled) return;
    a.dx = clampPending(a.dx + finite(dx));
    a.dy = clampPending(a.dy + finite(dy));
    a.dz = clampPending(a.dz + finite(dz));
    a.buttons = buttons & BTN_ALL;
    if (!a.remote) {
      this.mousePacket(); // always one: a button change with no movement is news too
      this.mouseSync();
    }
    this.update();
  }

  /** Send further packets while movement is left and a whole packet fits (bounded by the buffer). */
  private mouseSync(): void {
    const a = this.s.aux;
    const size = a.type === AUX_ID ? 3 : 4;
    while ((a.dx !== 0 || a.dy !== 0 || a.dz !== 0) && QUEUE_SIZE - a.queue.length >= size) this.mousePacket();
  }

  /**
   * @internal Queue one packet (if it fits whole) with up to MPKT_MAX of
   * the pending movement per axis; the rest stays pending.
   */
  mousePacket(): void {
    const a = this.s.aux;
    const size = a.type === AUX_ID ? 3 : 4;
    if (QUEUE_SIZE - a.queue.length < size) return;
    const dx = clamp(a.dx, MPKT_MAX);
    // PS/2 counts y upwards; the host gives it downwards.
    const dy = clamp(-a.dy, MPKT_MAX);
    a.dx -= dx;
    a.dy += dy;
    let b0 = (a.buttons & (BTN_LEFT | BTN_RIGHT | BTN_MIDDLE)) | MPKT_ALWAYS1;
    if (dx < 0) b0 |= MPKT_X_SIGN;
    if (dy < 0) b0 |= MPKT_Y_SIGN;
    a.queue.push(b0, dx & 0xff, dy & 0xff);
    if (a.type === AUX_ID_WHEEL) {
      const dz = clamp(a.dz, MPKT_MAX);
      a.dz -= dz;
      a.queue.push(dz & 0xff);
    } else if (a.type === AUX_ID_5BUTTON) {
      const dz = clamp(a.dz, MPKT_WHEEL4_MAX);
      a.dz -= dz;
      a.queue.push((dz & 0x0f) | ((a.buttons & (BTN_SIDE | BTN_EXTRA)) << 1));
    } else {
      a.dz = 0; // a 3-byte mouse has no wheel to report it on
    }
  }

  readStatus(): number {
    const s = this.s;
    let st = (s.status & (STAT_SYS | STAT_CMD)) | STAT_UNLOCKED;
    if (s.obSource !== SRC_NONE) st |= STAT_OBF;
    if (s.obSource === SRC_AUX) st |= STAT_AUX_OBF;
    return st;
  }

  readData(): number {
    const s = this.s;
    if (s.obSource === SRC_NONE) return s.lastData;
    s.lastData = s.ob;
    const fromAux = s.obSource === SRC_AUX;
    s.obSource = SRC_NONE;
    // The mouse's buffer drained: movement that did not fit goes out now.
    if (fromAux && s.aux.queue.length === 0 && s.aux.enabled && !s.aux.remote) this.mouseSync();
    // Reading drops the line; the next byte (if any) raises it again: an edge per byte,
    // which the guest's edge-triggered ISA interrupt needs (QEMU does the same).
    this.kbdIrq.set(false);
    this.auxIrq.set(false);
    this.update();
    return s.lastData;
  }

  writeCommand(cmd: number): void {
    const s = this.s;
    s.status |= STAT_CMD;
    s.pending = NONE; // a new command abandons one still waiting for its data byte
    const c = CONTROLLER_COMMANDS[cmd];
    if (c === undefined) {
      this.bad.warn({ cmd }, 'i8042: unknown controller command ignored');
    } else if (c.data) {
      s.pending = cmd;
    } else {
      c.run?.(this, s);
    }
    this.update();
  }

  writeData(v: number): void {
    const s = this.s;
    s.status &= ~STAT_CMD;
    const pending = s.pending;
    if (pending !== NONE) {
      s.pending = NONE;
      CONTROLLER_COMMANDS[pending].data!(this, s, v);
    } else {
      s.ctr &= ~CTR_KBDDIS; // sending to the keyboard re-enables its interface (QEMU)
      this.deviceWrite(KBD_COMMANDS, s.kbd, v, REPLY_RESEND, 'keyboard');
    }
    this.update();
  }

  /** @internal for the command tables */
  auxWrite(v: number): void {
    this.deviceWrite(AUX_COMMANDS, this.s.aux, v, REPLY_RESEND, 'mouse');
  }

  /** @internal a controller reply (keyboard-side data). */
  reply(v: number): void {
    push(this.s.ctl, v);
  }

  /** @internal */
  kbdReply(...bytes: number[]): void {
    push(this.s.kbd.queue, ...bytes);
  }

  /** @internal */
  auxReply(...bytes: number[]): void {
    push(this.s.aux.queue, ...bytes);
  }

  /** @internal */
  requestReset(why: string): void {
    this.bad.info({ why }, 'i8042: guest pulsed the reset line: reboot'); // rate-limited: the guest may repeat it
    this.reset();
  }

  private deviceWrite(table: Record<number, Command<I8042>>, dev: KbdState | AuxState, v: number, resend: number, name: string): void {
    if (dev.pending !== NONE) {
      const cmd = dev.pending;
      dev.pending = NONE;
      table[cmd].data!(this, this.s, v);
      return;
    }
    const c = table[v];
    if (c === undefined) {
      this.bad.warn({ device: name, cmd: v }, 'i8042: unknown device command: resend');
      push(dev.queue, resend);
      return;
    }
    c.run?.(this, this.s);
    if (c.data) dev.pending = v;
  }

  /** Fill an empty output buffer (controller bytes first, then each enabled device) and drive the lines. */
  private update(): void {
    const s = this.s;
    if (s.obSource === SRC_NONE) {
      if (s.ctl.length > 0) {
        const b = s.ctl.shift()!;
        s.ob = b & 0xff;
        s.obSource = (b & CTL_AUX) !== 0 ? SRC_AUX : SRC_KBD;
      } else if (s.kbd.queue.length > 0 && (s.ctr & CTR_KBDDIS) === 0) {
        s.ob = s.kbd.queue.shift()!;
        s.obSource = SRC_KBD;
      } else if (s.aux.queue.length > 0 && (s.ctr & CTR_AUXDIS) === 0) {
        s.ob = s.aux.queue.shift()!;
        s.obSource = SRC_AUX;
      }
    }
    this.kbdIrq.set(s.obSource === SRC_KBD && (s.ctr & CTR_KBDINT) !== 0);
    this.auxIrq.set(s.obSource === SRC_AUX && (s.ctr & CTR_AUXINT) !== 0);
  }
}

function clamp(v: number, max: number): number {
  return v > max ? max : v < -max ? -max : v;
}

function clampPending(v: number): number {
  return clamp(v, MOUSE_PENDING_MAX);
}

/** Host input as a whole count; NaN and infinities count as no movement. */
function finite(v: number): number {
  return Number.isFinite(v) ? Math.trunc(v) : 0;
}

/** One-byte registers: a wider read gets ones above (the neighbouring ports are not ours). */
function widen(v: number, size: AccessSize): number {
  if (size === 1) return v;
  const ones = size === 4 ? 0xffffff00 : 0xff00;
  return (ones | v) >>> 0;
}

/** Claim 0x60 and 0x64 (Xen emulates neither) and wire IRQ 1 / IRQ 12. */
export function installI8042(board: Board, log: Logger): I8042 {
  const dev = new I8042(board.isaIrq(I8042_KBD_IRQ), board.isaIrq(I8042_AUX_IRQ), () => board.shutdown(SHUTDOWN_REBOOT), log);
  board.pio.add('i8042-data', I8042_DATA_PORT, 1, dev.dataPort);
  board.pio.add('i8042-cmd', I8042_CMD_PORT, 1, dev.cmdPort);
  return dev;
}
