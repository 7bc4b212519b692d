/**
 * QEMU's human monitor, the part `xl qemu-monitor-command` reaches through
 * QMP `human-monitor-command` (docs/xen-contract.md §11b). The answer is the
 * text QEMU's monitor prints, with its "\r\n" line ends (the monitor turns
 * every "\n" into "\r\n"); an unknown command is not an error but the line
 * `unknown command: 'NAME'`, and a failing one prints `Error: ...`, as in QEMU.
 *
 * Hand-written: a dozen words of a line-oriented grammar, no library covers
 * QEMU's HMP argument syntax.
 */
import type { QmpMachine } from './core.ts';

/** Longest command line taken (QEMU's readline keeps 1 KiB). */
export const MAX_HMP_LINE = 1024;

/** An HMP command failed: printed as `Error: <message>`. */
export class HmpError extends Error {}

type Hmp = (m: QmpMachine, args: string[]) => string | Promise<string>;

const INFO: Record<string, { help: string; run: (m: QmpMachine) => string }> = {
  status: {
    help: 'show the current VM status (running|paused)',
    run: (m) => {
      const st = m.runState();
      // QEMU hmp_info_status: the run state in brackets unless it is plain running/paused.
      return `VM status: ${st === 'running' ? 'running' : 'paused'}${st !== 'running' && st !== 'paused' ? ` (${st})` : ''}\n`;
    },
  },
  name: { help: 'show the current VM name', run: (m) => (m.name === null ? '' : `${m.name}\n`) },
  version: { help: 'show the version of QEMU', run: () => `${VERSION_TEXT} (stubdm)\n` },
  kvm: { help: 'show KVM information', run: () => 'kvm support: disabled\n' },
  chardev: {
    help: 'show the character devices',
    run: (m) => m.chardevs().map((c) => `${c.label}: filename=${c.filename}\n`).join(''),
  },
  block: { help: 'show the block devices', run: (m) => need(m.hmpInfo?.block, 'info block') },
  blockstats: { help: 'show block device statistics', run: (m) => need(m.hmpInfo?.blockstats, 'info blockstats') },
  stats: { help: 'show the device model\'s counters (ioreqs by type and device, disk and NIC traffic, errors)', run: (m) => need(m.hmpInfo?.stats, 'info stats') },
  pci: { help: 'show PCI info', run: (m) => need(m.hmpInfo?.pci, 'info pci') },
  network: { help: 'show the network state', run: (m) => need(m.hmpInfo?.network, 'info network') },
  // stubdm's own: the e1000 event trace (STUBDM_NET_TRACE, src/devices/e1000/trace.ts).
  nettrace: { help: 'show the NIC event trace: per-ping phases, then the last events', run: (m) => need(m.hmpInfo?.nettrace, 'info nettrace') },
  // stubdm's own: the IDE/bus-master event trace (STUBDM_DISK_TRACE, src/devices/ide/trace.ts).
  disktrace: { help: 'show the disk event trace: per-request phases and medians, then the last events', run: (m) => need(m.hmpInfo?.disktrace, 'info disktrace') },
  // stubdm's own (QEMU has none): probes whether the Xen handles reach only the guest (-xen-domid-restrict).
  restrict: { help: 'probe the Xen handles: guest only (-xen-domid-restrict) or any domain', run: (m) => need(m.hmpInfo?.restrict, 'info restrict') },
};

let VERSION_TEXT = '';
/** Set once by core.ts from QEMU_VERSION (kept here so the two cannot drift). */
export function setHmpVersion(v: { major: number; minor: number; micro: number }): void {
  VERSION_TEXT = `${v.major}.${v.minor}.${v.micro}`;
}

function need(f: (() => string) | undefined, what: string): string {
  if (f === undefined) throw new HmpError(`${what} is not available in this device model`);
  return f();
}

const COMMANDS: Record<string, { help: string; run: Hmp }> = {
  info: {
    help: 'info [subcommand] -- show various information about the system state',
    run: (m, a) => {
      if (a.length === 0) return Object.entries(INFO).map(([k, v]) => `info ${k}  -- ${v.help}\n`).join('');
      const sub = Object.hasOwn(INFO, a[0]) ? INFO[a[0]] : undefined;
      if (sub === undefined) return `unknown command: 'info ${a[0].slice(0, 64)}'\n`;
      return sub.run(m);
    },
  },
  help: { help: 'help [cmd] -- show the help', run: () => helpText() },
  '?': { help: '? [cmd] -- show the help', run: () => helpText() },
  stop: {
    help: 'stop -- stop emulation',
    run: (m) => {
      m.stop();
      return '';
    },
  },
  cont: {
    help: 'cont|c -- resume emulation',
    run: (m) => {
      m.cont();
      return '';
    },
  },
  system_reset: {
    help: 'system_reset -- reset the system',
    run: (m) => {
      if (!m.systemReset) throw new HmpError('system_reset is not available in this device model');
      m.systemReset();
      return '';
    },
  },
  system_wakeup: {
    help: 'system_wakeup -- wakeup guest from suspend',
    run: (m) => {
      wakeup(m);
      return '';
    },
  },
  system_powerdown: {
    help: 'system_powerdown -- send system power down event',
    run: () => {
      throw new HmpError(POWERDOWN_REFUSED);
    },
  },
  sendkey: {
    help: 'sendkey keys [hold_ms] -- send keys to the VM (e.g. sendkey ctrl-alt-delete)',
    run: (m, a) => {
      if (a.length < 1 || a.length > 2) throw new HmpError('sendkey: usage: sendkey keys [hold_ms]');
      // hold_ms is checked and not used: the presses and releases queue in the keyboard at once.
      if (a.length === 2 && !/^[0-9]{1,6}$/.test(a[1])) throw new HmpError(`invalid parameter: ${a[1].slice(0, 32)}`);
      if (!m.sendKey) throw new HmpError('sendkey: this device model has no keyboard');
      const names = a[0].split('-');
      if (names.length > 16 || names.some((k) => k === '')) throw new HmpError(`invalid parameter: ${a[0].slice(0, 64)}`);
      m.sendKey(names); // throws HmpError for a key it does not know
      return '';
    },
  },
  eject: {
    help: 'eject [-f] device -- eject a removable medium (use -f to force it)',
    run: async (m, a) => {
      const force = a[0] === '-f';
      const rest = force ? a.slice(1) : a;
      if (rest.length !== 1) throw new HmpError('eject: usage: eject [-f] device');
      if (!m.eject) throw new HmpError('eject is not available in this device model');
      await m.eject(rest[0], undefined, force);
      return '';
    },
  },
};

function helpText(): string {
  return Object.values(COMMANDS)
    .map((c) => `${c.help}\n`)
    .join('');
}

/**
 * Under Xen the power button is not the device model's: Xen emulates PM1a
 * status/enable (docs/xen-contract.md §5), so a button press has to come
 * from Xen. QEMU answers {} and the guest never sees it; we say so instead.
 */
export const POWERDOWN_REFUSED = 'the power button belongs to Xen (it emulates PM1a status/enable): use xl trigger <domain> power, or xl shutdown';

/** QMP/HMP system_wakeup: QEMU's answer for a guest that is not suspended (stubdm never suspends one). */
export function wakeup(m: QmpMachine): void {
  if (!m.systemWakeup) throw new HmpError('wake-up from suspend is not supported by this guest');
  m.systemWakeup();
}

/** Run one HMP command line; resolves with the monitor's output (line ends "\r\n"). */
export async function runHmp(m: QmpMachine, line: string): Promise<string> {
  const words = line.trim().split(/\s+/).filter((w) => w !== '');
  if (words.length === 0) return '';
  const name = words[0];
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : name === 'c' ? COMMANDS.cont : undefined;
  let out: string;
  if (cmd === undefined) {
    out = `unknown command: '${name.slice(0, 64)}'\n`;
  } else {
    try {
      out = await cmd.run(m, words.slice(1));
    } catch (e) {
      if (!(e instanceof Error) || e.name === 'TypeError' || e.name === 'RangeError' || e.name === 'ReferenceError') throw e;
      out = `Error: ${e.message}\n`;
    }
  }
  return out.replace(/\r?\n/g, '\r\n');
}
