/**
 * libxl's QEMU-style argv -> StubdmConfig.
 *
 * libxl spells long options with one dash (`-xen-domid 5`), and QEMU options
 * take their value as the next word even when it starts with a dash. So the
 * argv is first tokenised against the option table below (which also knows
 * each option's arity) and rewritten as `--name=value`; yargs then does the
 * typing, repetition and --help. Unknown options are reported once as
 * ignored; contradictions are a CliError (one line, exit 2).
 */
import yargs from 'yargs';
import type { ChardevSpec, SocketSpec } from '../chardev/spec.ts';
import type {
  AddFdConfig,
  IncomingConfig,
  ChardevConfig, DeviceConfig, DriveConfig, LogLevel, MachineConfig, MonitorConfig, NetdevConfig, ParseResult,
  SerialConfig, StubdmConfig,
} from './config.ts';
import { LOG_LEVELS } from './config.ts';
import { LOG_FORMATS, type LogFormat } from '../core/log.ts';
import { CliError, optsFrom, parseBool, parseOpts, parseSize, parseUint, type ParsedOpts } from './qemuopts.ts';
// Inlined by the bundlers (esbuild): the version travels with the code, not beside it.
import pkg from '../../package.json' with { type: 'json' };
import { QEMU_VERSION } from '../qmp/core.ts';

export { CliError } from './qemuopts.ts';

type Group = 'Xen' | 'Machine' | 'Devices' | 'Monitor and run state' | 'Accepted and ignored' | 'stubdm';

interface OptDef {
  /** Takes a value. */
  arg: boolean;
  /** May be repeated, each occurrence kept. */
  many?: boolean;
  group: Group;
  desc: string;
  /** Accepted for compatibility but has no effect: warn when given. */
  ignored?: string;
}

/** Every option stubdm knows, QEMU's and its own. Names as libxl spells them. */
const OPTIONS: Record<string, OptDef> = {
  'xen-domid': { arg: true, group: 'Xen', desc: 'Domain id of the guest to serve (required with Xen)' },
  'xen-domid-restrict': { arg: false, group: 'Xen', desc: 'Restrict every Xen handle to the guest once the machine is up (dom0 dm_restrict; no xenstore state key then: libxl asks QMP)' },
  'xen-attach': { arg: false, group: 'Xen', desc: 'Attach to an existing domain (implied)' },
  machine: { arg: true, group: 'Machine', desc: 'xenfv[,max-ram-below-4g=SIZE][,suppress-vmdesc=on] or pc,accel=xen (no Xen platform device)' },
  M: { arg: true, group: 'Machine', desc: 'Same as -machine' },
  m: { arg: true, group: 'Machine', desc: 'Guest RAM in MiB (or SIZE with K/M/G suffix, or size=SIZE)' },
  smp: { arg: true, group: 'Machine', desc: 'N[,maxcpus=M]: vCPUs (1-128)' },
  name: { arg: true, group: 'Machine', desc: 'Guest name (for logs)' },
  boot: { arg: true, group: 'Machine', desc: 'order=cda: boot order (kept for the firmware)' },
  serial: { arg: true, many: true, group: 'Devices', desc: 'COM1-COM4 (0x3f8/IRQ4, 0x2f8/IRQ3, 0x3e8/IRQ4, 0x2e8/IRQ3): file:PATH | pipe:PATH | tcp:[HOST]:PORT[,server=on][,wait=off][,nodelay=on][,reconnect=S] | unix:PATH[,server=on][,wait=off][,reconnect=S] | pty | stdio | null | none | /dev/PATH | chardev:ID' },
  chardev: { arg: true, many: true, group: 'Devices', desc: 'socket,id=ID,path=PATH|fd=N|host=H,port=P[,server=on][,wait=off][,nodelay=on][,reconnect=S] (-mon: unix, server=on); pipe,id=,path= | file,id=,path= | pty,id= | stdio,id= | null,id= | serial,id=,path= | ringbuf,id=,size=' },
  drive: { arg: true, many: true, group: 'Devices', desc: 'file=PATH,if=ide,index=0-3,media=disk|cdrom,format=raw|host_device,cache=...,readonly=on' },
  device: { arg: true, many: true, group: 'Devices', desc: 'DRIVER[,id=][,netdev=][,mac=][,romfile=NAME|PATH (e1000 default efi-e1000.rom; empty: no ROM)][,vgamem_mb=]; drivers not emulated yet are reported and ignored' },
  netdev: { arg: true, many: true, group: 'Devices', desc: 'type=tap,id=ID,ifname=IF[,br=BR][,script=no][,downscript=no]' },
  net: { arg: true, many: true, group: 'Devices', desc: 'none: no network' },
  mon: { arg: true, many: true, group: 'Monitor and run state', desc: 'chardev=ID,mode=control: serve QMP on that chardev' },
  S: { arg: false, group: 'Monitor and run state', desc: 'Start paused until QMP cont' },
  'no-shutdown': { arg: false, group: 'Monitor and run state', desc: 'Keep running after guest poweroff (Xen tears us down)' },
  incoming: { arg: true, group: 'Monitor and run state', desc: 'Restore device state before running: fd:N | file:PATH | defer (wait for QMP migrate-incoming / xen-load-devices-state)' },
  nodefaults: { arg: false, group: 'Accepted and ignored', desc: 'No implicit devices (always the case)' },
  'no-user-config': { arg: false, group: 'Accepted and ignored', desc: 'No config files (always the case)' },
  vnc: { arg: true, group: 'Devices', desc: 'HOST:DISPLAY[,to=N][,password=on] | none: VNC server for the VGA (port 5900 + DISPLAY)' },
  display: { arg: true, group: 'Accepted and ignored', desc: 'Display backend (none)' },
  nographic: { arg: false, group: 'Accepted and ignored', desc: 'No graphics (always the case)' },
  k: { arg: true, group: 'Devices', desc: 'Keyboard layout of the VNC server: en-us (the only one)' },
  runas: { arg: true, group: 'Monitor and run state', desc: 'USER or UID:GID: drop privileges once Xen, files and sockets are open (after -chroot)' },
  chroot: { arg: true, group: 'Monitor and run state', desc: 'DIR: chroot there once everything is open, before -runas' },
  sandbox: { arg: true, group: 'Accepted and ignored', desc: 'seccomp sandbox', ignored: '-sandbox: no seccomp sandbox; ignored' },
  kernel: { arg: true, group: 'Accepted and ignored', desc: 'Direct kernel boot', ignored: '-kernel: direct kernel boot is not supported; boot from a disk' },
  initrd: { arg: true, group: 'Accepted and ignored', desc: 'Direct kernel boot', ignored: '-initrd: direct kernel boot is not supported; ignored' },
  append: { arg: true, group: 'Accepted and ignored', desc: 'Direct kernel boot', ignored: '-append: direct kernel boot is not supported; ignored' },
  usb: { arg: false, group: 'Accepted and ignored', desc: 'USB controller', ignored: '-usb: no USB controller; ignored' },
  usbdevice: { arg: true, group: 'Accepted and ignored', desc: 'USB device', ignored: '-usbdevice: no USB; ignored' },
  vga: { arg: true, group: 'Devices', desc: 'std: the same as -device VGA; none: no display (other cards are not emulated)' },
  'no-acpi': {
    arg: false,
    group: 'Accepted and ignored',
    desc: 'No ACPI',
    // QEMU then leaves out its PIIX4 PM function; ours is always built (src/pci/platform.ts).
    ignored: '-no-acpi: the PIIX4 power management function (00:01.3) stays on the PCI bus; ignored',
  },
  'no-hpet': { arg: false, group: 'Accepted and ignored', desc: 'No HPET (Xen emulates it)' },
  localtime: { arg: false, group: 'Accepted and ignored', desc: 'RTC in local time (Xen emulates the RTC)' },
  rtc: { arg: true, group: 'Accepted and ignored', desc: 'RTC options (Xen emulates the RTC)' },
  global: { arg: true, many: true, group: 'Accepted and ignored', desc: 'Device property defaults', ignored: '-global: ignored' },
  'add-fd': { arg: true, many: true, group: 'Monitor and run state', desc: 'fd=N,set=ID[,opaque=TEXT]: put inherited fd N into fd set ID (/dev/fdset/ID; the stub domain\'s save console)' },
  pidfile: { arg: true, group: 'Accepted and ignored', desc: 'Write our pid to FILE', ignored: '-pidfile: ignored' },
  parallel: { arg: true, group: 'Accepted and ignored', desc: 'Parallel port (none)' },
  monitor: { arg: true, group: 'Accepted and ignored', desc: 'Human monitor (none; QMP is -mon mode=control)' },
  object: { arg: true, many: true, group: 'Accepted and ignored', desc: 'QOM objects', ignored: '-object: ignored' },
  spice: { arg: true, group: 'Accepted and ignored', desc: 'SPICE display', ignored: '-spice: no SPICE server; ignored' },
  sdl: { arg: false, group: 'Accepted and ignored', desc: 'SDL display', ignored: '-sdl: no display; ignored' },
  soundhw: { arg: true, group: 'Accepted and ignored', desc: 'Sound card', ignored: '-soundhw: no sound card; ignored' },
  audiodev: { arg: true, many: true, group: 'Accepted and ignored', desc: 'Audio backend', ignored: '-audiodev: ignored' },
  // stubdm's own
  'no-stubdom': { arg: false, group: 'stubdm', desc: 'Run in dom0 (for debugging) instead of a stub domain' },
  'log-level': { arg: true, group: 'stubdm', desc: `Log level on stderr: ${LOG_LEVELS.join(', ')} (default info: start-up, guest resets and poweroff, PV unplug, save/restore, failed QMP commands)` },
  'log-format': { arg: true, group: 'stubdm', desc: 'text (default: time, level, component, message, key=value fields) or json (pino\'s lines)' },
  sim: { arg: false, group: 'stubdm', desc: 'Run against the in-process simulated hypervisor (demo, tests)' },
  help: { arg: false, group: 'stubdm', desc: 'Show this help' },
  version: { arg: false, group: 'stubdm', desc: 'Print the version in QEMU\'s shape ("QEMU emulator version X.Y.Z (stubdm V)") and exit' },
  h: { arg: false, group: 'stubdm', desc: 'Same as --help' },
};

/** -device drivers stubdm emulates; every other driver is reported once as ignored. */
export const EMULATED_DEVICES: ReadonlySet<string> = new Set<string>(['ide-cd', 'ide-hd', 'e1000', 'VGA']);

/** -k layouts the VNC server has a table for (QEMU's keymap names). */
export const KEYMAPS: readonly string[] = ['en-us'];
const SERIAL_MAX = 4; // COM1-COM4 (devices/uart COM_PORTS)
const IDE_DRIVES = 4;
const HVM_MAX_VCPUS = 128; // one 32-byte ioreq slot per vCPU in a 4 KiB page
/** Largest -m: 16 TiB, above what Xen builds an HVM guest with (the bound src/xen/host.ts checks too). */
export const MAX_RAM_MIB = 2 ** 24;
/** Largest -m under --sim: the simulator's RAM is one Uint8Array (Node 20 made them at most 4 GiB; 24 allows more, the bound stays). */
export const SIM_MAX_RAM_MIB = 4096;
/**
 * Largest unix socket path: sun_path holds 108 bytes with the NUL (unix(7)).
 * A longer one must be refused, not truncated: bind() would listen somewhere else.
 */
export const MAX_SOCKET_PATH_BYTES = 107;
/**
 * Largest -chardev ringbuf size. QEMU wants a power of two (chardev/char-ringbuf.c) and
 * allocates it whole; ours lives in the device model's heap (128 MiB in a stub domain).
 */
export const MAX_RINGBUF_BYTES = 2 ** 24;
const DOMID_FIRST_RESERVED = 0x7ff0;

/**
 * Qubes' pseudo-arguments (`-qubes-net:client_ip=...,gw=...`, `-qubes-audio:audiovm_xid=N`):
 * Qubes adds them to the device model's argv for its own stub domain's init, which takes
 * them out before it starts QEMU. They configure that init, not the device model.
 */
const QUBES_PSEUDO_ARG = /^--?qubes-[A-Za-z0-9_-]*(?::[\s\S]*)?$/;

/** The line -version prints: QEMU's shape, so that tools reading "QEMU emulator version X.Y.Z" get the QEMU version QMP reports. */
export function versionLine(): string {
  return `QEMU emulator version ${QEMU_VERSION.major}.${QEMU_VERSION.minor}.${QEMU_VERSION.micro} (stubdm ${pkg.version})`;
}

/** Split argv into `--name=value` / `--name` words yargs cannot misread, plus warnings for unknown options. */
function tokenize(argv: readonly string[], warnings: string[]): string[] {
  const out: string[] = [];
  const unknown = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const t = argv[i];
    if (QUBES_PSEUDO_ARG.test(t)) {
      warnings.push(`${t.split(':')[0]}: a setting for Qubes' stub domain init, not for the device model; ignored`);
      continue;
    }
    const m = /^--?([A-Za-z][A-Za-z0-9_-]*)(?:=([\s\S]*))?$/.exec(t);
    if (!m) throw new CliError(`unexpected argument "${t}" (options start with -; see --help)`);
    const name = m[1];
    const def = OPTIONS[name];
    if (def === undefined) {
      // Unknown: assume it takes the next word as its value unless that looks like an option.
      if (m[2] === undefined && i + 1 < argv.length && !argv[i + 1].startsWith('-')) i++;
      if (!unknown.has(name)) {
        unknown.add(name);
        warnings.push(`ignoring unknown option -${name}`);
      }
      continue;
    }
    if (def.arg) {
      let v = m[2];
      if (v === undefined) {
        if (i + 1 >= argv.length) throw new CliError(`-${name} needs a value (see --help)`);
        v = argv[++i];
      }
      out.push(`--${name}=${v}`);
    } else {
      if (m[2] !== undefined) throw new CliError(`-${name} takes no value`);
      out.push(`--${name}`);
    }
  }
  return out;
}

function buildYargs(words: string[]) {
  let y = yargs(words)
    .scriptName('stubdm')
    .usage(
      'stubdm: a device model for Xen HVM guests, started by libxl with QEMU-style options\n' +
        '(single or double dash both work: -xen-domid 5 = --xen-domid=5).\n\n' +
        'Usage: stubdm -xen-domid N -machine xenfv -m MIB [QEMU options] [--no-stubdom] [--sim]',
    )
    .parserConfiguration({
      'camel-case-expansion': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'boolean-negation': false,
      'duplicate-arguments-array': true,
      'short-option-groups': false,
    })
    .help(false)
    .version(false)
    .exitProcess(false)
    .wrap(100)
    .epilogue(
      'Exit codes: 0 done, 1 the host could not be opened (no Xen, missing library), 2 bad arguments.\n' +
        'Unknown options and devices not emulated yet are reported once on stderr and ignored.',
    );
  for (const [name, def] of Object.entries(OPTIONS)) {
    y = y.option(name, {
      type: def.arg ? 'string' : 'boolean',
      array: def.many === true,
      describe: def.desc,
      group: `${def.group}:`,
    });
  }
  return y;
}

function last(v: unknown): string | undefined {
  if (Array.isArray(v)) return v.length ? String(v[v.length - 1]) : undefined;
  return v === undefined ? undefined : String(v);
}

function all(v: unknown): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v.map(String) : [String(v)];
}

export async function helpText(): Promise<string> {
  return buildYargs([]).getHelp();
}

/** Parse argv (without node and script). Throws CliError on contradictions. */
export async function parseArgs(argv: readonly string[]): Promise<ParseResult> {
  const warnings: string[] = [];
  const words = tokenize(argv, warnings);
  const a = buildYargs(words).parseSync() as Record<string, unknown>;
  const flag = (n: string): boolean => a[n] === true || (Array.isArray(a[n]) && (a[n] as unknown[]).includes(true));

  if (flag('help') || flag('h')) {
    return { config: null as unknown as StubdmConfig, warnings, help: await helpText() };
  }
  if (flag('version')) return { config: null as unknown as StubdmConfig, warnings, help: versionLine() };
  for (const [name, def] of Object.entries(OPTIONS)) {
    if (def.ignored && a[name] !== undefined && a[name] !== false) warnings.push(def.ignored);
  }

  const sim = flag('sim');
  const logLevel = (last(a['log-level']) ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new CliError(`--log-level ${logLevel}: use one of ${LOG_LEVELS.join(', ')}`);
  const logFormat = (last(a['log-format']) ?? 'text') as LogFormat;
  if (!LOG_FORMATS.includes(logFormat)) throw new CliError(`--log-format ${logFormat}: use text or json`);

  const domidText = last(a['xen-domid']);
  let domid: number;
  if (domidText === undefined) {
    if (!sim) throw new CliError('-xen-domid N is required (the guest domain to serve); or --sim to run without Xen');
    domid = 1;
  } else {
    domid = parseUint('xen-domid', 'domain id', domidText, DOMID_FIRST_RESERVED - 1);
    if (domid === 0) throw new CliError('-xen-domid 0: dom0 is not an HVM guest');
  }

  const machine = parseMachine(last(a.machine) ?? last(a.M), sim, warnings);
  const ramMiB = parseMemory(last(a.m), sim);
  const { vcpus, maxVcpus } = parseSmp(last(a.smp));
  const name = parseName(last(a.name));

  const chardevs = all(a.chardev).filter((t) => !spiceChardev(t, warnings)).map(parseChardev);
  const byId = new Map<string, ChardevConfig>();
  for (const c of chardevs) {
    if (byId.has(c.id)) throw new CliError(`-chardev id=${c.id} is given twice`);
    byId.set(c.id, c);
  }
  const used = new Set<string>();
  const monitors = all(a.mon).flatMap((t) => parseMon(t, byId, used, warnings));
  const serials = parseSerials(all(a.serial), byId, used, warnings);
  for (const c of chardevs) {
    if (!used.has(c.id)) warnings.push(`-chardev ${c.id} is not used by any -mon or -serial; ignored`);
  }

  const netdevs = all(a.netdev).map(parseNetdev);
  const netIds = new Set<string>();
  for (const n of netdevs) {
    if (netIds.has(n.id)) throw new CliError(`-netdev id=${n.id} is given twice`);
    netIds.add(n.id);
  }
  let netNone = false;
  for (const n of all(a.net)) {
    if (n === 'none') netNone = true;
    else warnings.push(`-net ${n}: only -net none is understood; use -netdev + -device; ignored`);
  }
  const devices = all(a.device).map((t) => parseDevice(t, netIds));
  const devIds = new Set<string>();
  const reported = new Set<string>();
  for (const d of devices) {
    if (d.id !== null) {
      if (devIds.has(d.id)) throw new CliError(`-device id=${d.id} is given twice`);
      devIds.add(d.id);
    }
    if (d.driver === 'ahci') {
      // libxl's hdtype=ahci: every disk below 6 then hangs off this controller, none on IDE.
      throw new CliError("-device ahci: no AHCI controller is emulated, so the guest would have no emulated disk; set hdtype='ide' (the default) in the guest's xl.cfg");
    }
    if (!EMULATED_DEVICES.has(d.driver) && !SCSI_FRONTENDS.has(d.driver) && !reported.has(d.driver)) {
      reported.add(d.driver);
      warnings.push(`-device ${d.driver}: not emulated yet; ignored`);
    }
  }
  const vgaOpt = last(a.vga);
  if (vgaOpt === 'std') {
    if (!devices.some((d) => d.driver === 'VGA')) devices.unshift({ driver: 'VGA', id: null, netdev: null, mac: null, vgamemMb: null, props: {} });
  } else if (vgaOpt !== undefined && vgaOpt !== 'none') {
    warnings.push(`-vga ${vgaOpt}: only std (standard VGA) and none are emulated; ignored`);
  }
  const drives = parseDrives(all(a.drive), devices, warnings);

  const vnc = last(a.vnc) ?? null;
  const vncOn = vnc !== null && vnc !== 'none' && devices.some((d) => d.driver === 'VGA');
  if (vnc !== null && vnc !== 'none' && !vncOn) warnings.push(`-vnc ${vnc}: no -device VGA, nothing to show; ignored`);
  // The VNC server turns keysyms into scan codes through a US table (src/vnc/keymap.ts).
  // Another layout would type the wrong characters, so it is refused rather than ignored.
  const keymap = last(a.k) ?? null;
  if (keymap !== null && !KEYMAPS.includes(keymap)) {
    if (vncOn) throw new CliError(`-k ${keymap}: only the ${KEYMAPS.join(', ')} keymap is supported by stubdm's VNC server (leave keymap= unset in the guest config)`);
    warnings.push(`-k ${keymap}: no VNC server here; ignored`);
  }
  for (const [opt, v] of [['parallel', last(a.parallel)], ['monitor', last(a.monitor)]] as const) {
    if (v !== undefined && v !== 'none') warnings.push(`-${opt} ${v}: not emulated; ignored`);
  }
  const display = last(a.display) ?? null;
  if (display !== null && display !== 'none') warnings.push(`-display ${display}: no display; ignored`);

  const config: StubdmConfig = {
    sim,
    stubdom: !flag('no-stubdom'),
    logLevel,
    logFormat,
    domid,
    name,
    machine,
    ramMiB,
    vcpus,
    maxVcpus,
    chardevs,
    monitors,
    serials,
    drives,
    devices,
    netdevs,
    netNone,
    bootOrder: parseBoot(last(a.boot)),
    vnc,
    display,
    keymap,
    startPaused: flag('S'),
    noShutdown: flag('no-shutdown'),
    nodefaults: flag('nodefaults'),
    noUserConfig: flag('no-user-config'),
    nographic: flag('nographic'),
    incoming: parseIncoming(last(a.incoming)),
    addFds: all(a['add-fd']).map(parseAddFd),
    xenDomidRestrict: flag('xen-domid-restrict'),
    runas: last(a.runas) ?? null,
    chroot: last(a.chroot) ?? null,
  };
  return { config, warnings, help: null };
}

function unknownKeys(option: string, o: ParsedOpts, known: readonly string[], warnings: string[]): void {
  for (const k of o.keys()) {
    if (!known.includes(k)) warnings.push(`-${option}: property ${k} ignored`);
  }
}

function parseMachine(text: string | undefined, sim: boolean, warnings: string[]): MachineConfig {
  if (text === undefined) {
    if (!sim) throw new CliError('-machine is required: xenfv (or pc,accel=xen)');
    return { type: 'xenfv', xenPlatform: true, suppressVmdesc: false, maxRamBelow4g: null };
  }
  const o = parseOpts('machine', text, 'type');
  const type = o.get('type') ?? 'xenfv';
  const accel = o.get('accel');
  let kind: 'xenfv' | 'pc';
  if (type === 'xenfv' || /^xenfv-[0-9.]+$/.test(type)) kind = 'xenfv';
  else if (type === 'pc' || /^pc-i440fx-[0-9.]+$/.test(type)) {
    if (accel !== 'xen' && !sim) throw new CliError(`-machine ${type} needs accel=xen (stubdm only serves Xen guests)`);
    kind = 'pc';
  } else {
    throw new CliError(`-machine ${type}: only xenfv and pc (i440FX) are emulated`);
  }
  if (accel !== undefined && accel !== 'xen') throw new CliError(`-machine accel=${accel}: only accel=xen is possible`);
  const below = o.get('max-ram-below-4g');
  const maxRamBelow4g = below === undefined ? null : parseSize('machine', 'max-ram-below-4g', below, 1);
  if (maxRamBelow4g !== null && maxRamBelow4g > 2 ** 32) {
    throw new CliError(`-machine max-ram-below-4g=${below} is above 4G`);
  }
  if (o.has('igd-passthru') && parseBool('machine', 'igd-passthru', o.get('igd-passthru'), false)) {
    warnings.push('-machine igd-passthru=on: no PCI passthrough; ignored');
  }
  unknownKeys('machine', o, ['type', 'accel', 'max-ram-below-4g', 'suppress-vmdesc', 'igd-passthru'], warnings);
  return {
    type: kind,
    xenPlatform: kind === 'xenfv',
    suppressVmdesc: parseBool('machine', 'suppress-vmdesc', o.get('suppress-vmdesc'), false),
    maxRamBelow4g,
  };
}

function parseMemory(text: string | undefined, sim: boolean): number {
  if (text === undefined) return 128; // QEMU's default
  const o = parseOpts('m', text, 'size');
  const size = o.get('size');
  if (size === undefined) throw new CliError(`-m ${text}: give the RAM size in MiB`);
  const bytes = parseSize('m', 'RAM size', size, 2 ** 20);
  if (bytes < 2 ** 20 || bytes % 2 ** 20 !== 0) throw new CliError(`-m ${text}: RAM must be a positive whole number of MiB`);
  const max = sim ? SIM_MAX_RAM_MIB : MAX_RAM_MIB;
  if (bytes / 2 ** 20 > max) throw new CliError(`-m ${text}: RAM is limited to ${max} MiB${sim ? ' under --sim' : ''}`);
  return bytes / 2 ** 20;
}

function parseSmp(text: string | undefined): { vcpus: number; maxVcpus: number } {
  if (text === undefined) return { vcpus: 1, maxVcpus: 1 };
  const o = parseOpts('smp', text, 'cpus');
  const cpusText = o.get('cpus');
  const maxText = o.get('maxcpus');
  let vcpus = cpusText === undefined ? 0 : parseUint('smp', 'vCPU count', cpusText, HVM_MAX_VCPUS);
  const maxVcpus = maxText === undefined ? vcpus : parseUint('smp', 'maxcpus', maxText, HVM_MAX_VCPUS);
  if (vcpus === 0) vcpus = maxVcpus === 0 ? 1 : maxVcpus;
  if (maxVcpus !== 0 && maxVcpus < vcpus) throw new CliError(`-smp ${text}: maxcpus (${maxVcpus}) is below the vCPU count (${vcpus})`);
  return { vcpus, maxVcpus: maxVcpus === 0 ? vcpus : maxVcpus };
}

function parseName(text: string | undefined): string | null {
  if (text === undefined) return null;
  // "-name hvm1" or "-name guest=hvm1,debug-threads=on"
  if (!text.includes('=')) return text;
  return parseOpts('name', text, 'guest').get('guest') ?? null;
}

function parseBoot(text: string | undefined): string {
  if (text === undefined) return 'cd';
  const o = parseOpts('boot', text, 'order');
  const order = o.get('order') ?? o.get('once') ?? 'cd';
  if (!/^[a-p]+$/.test(order)) throw new CliError(`-boot ${text}: boot order letters are a-p (c disk, d cdrom, n network)`);
  return order;
}

function chardevSpec(o: ParsedOpts, what: string): ChardevSpec {
  const backend = o.get('backend')!;
  const path = o.get('path');
  switch (backend) {
    case 'socket':
      return socketSpec(o, what);
    case 'pipe':
      if (!path) throw new CliError(`${what}: pipe needs path=`);
      return { backend: 'pipe', path };
    case 'file':
      if (!path) throw new CliError(`${what}: file needs path=`);
      return { backend: 'file', path, append: parseBool('chardev', 'append', o.get('append'), false) };
    case 'serial':
    case 'tty':
      if (!path) throw new CliError(`${what}: ${backend} needs path=`);
      return { backend: 'tty', path };
    case 'pty':
      return { backend: 'pty' };
    case 'stdio':
      return { backend: 'stdio' };
    case 'null':
      return { backend: 'null' };
    case 'ringbuf': {
      const s = o.get('size');
      const size = s === undefined ? 65536 : parseSize('chardev', 'size', s, 1);
      if (size < 1 || size > MAX_RINGBUF_BYTES || (size & (size - 1)) !== 0) {
        throw new CliError(`${what}: ringbuf size=${s} must be a power of two from 1 to ${MAX_RINGBUF_BYTES} bytes`);
      }
      return { backend: 'ringbuf', size };
    }
    default:
      throw new CliError(`${what}: backend ${backend} is not supported (socket, pipe, file, pty, stdio, null, serial, ringbuf)`);
  }
}

/** Socket options QEMU has and stubdm does not serve: refused by name rather than ignored. */
const SOCKET_REFUSED = ['telnet', 'tn3270', 'websocket', 'tls-creds', 'tls-authz', 'mux', 'abstract'];
/** Longest `reconnect=` (seconds): a day; longer is a typo, not a retry interval. */
const MAX_RECONNECT_S = 86400;

/**
 * `-chardev socket,...` and the -serial tcp:/unix: forms rewritten into it:
 * unix (path= or an inherited listening fd=) or TCP (host= and port=), as a
 * server (waiting for its first client unless wait=off) or a client.
 */
function socketSpec(o: ParsedOpts, what: string): SocketSpec {
  for (const k of SOCKET_REFUSED) {
    const v = o.get(k);
    if (v !== undefined && v !== 'off') throw new CliError(`${what}: socket option ${k} is not supported (plain unix or TCP sockets only)`);
  }
  const path = o.get('path');
  const fdText = o.get('fd');
  const host = o.get('host');
  const portText = o.get('port');
  const tcp = host !== undefined || portText !== undefined;
  if ([path !== undefined, fdText !== undefined, tcp].filter(Boolean).length !== 1) {
    throw new CliError(`${what}: a socket needs exactly one of path= (unix), fd= (inherited) and host=/port= (TCP)`);
  }
  if (path !== undefined && (path === '' || Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES)) {
    throw new CliError(`${what}: a unix socket path is 1 to ${MAX_SOCKET_PATH_BYTES} bytes; this one is ${Buffer.byteLength(path)}`);
  }
  const server = parseBool('chardev', 'server', o.get('server'), false);
  if (tcp && portText === undefined) throw new CliError(`${what}: a TCP socket needs port=`);
  const port = portText === undefined ? null : parseUint('chardev', 'port', portText, 65535);
  // Port 0 asks the kernel for a free port when listening (query-chardev shows which); there is nothing to connect to.
  if (port === 0 && !server) throw new CliError(`${what}: port 0 can only be listened on (server=on)`);
  if (fdText !== undefined && !server) throw new CliError(`${what}: fd= is an inherited listening socket: it needs server=on`);
  if (!server && o.has('wait')) throw new CliError(`${what}: wait= applies to server=on sockets only`);
  const reconnectText = o.get('reconnect');
  if (server && reconnectText !== undefined) throw new CliError(`${what}: reconnect= applies to client sockets (server=off) only`);
  return {
    backend: 'socket',
    path: path ?? null,
    fd: fdText === undefined ? null : parseUint('chardev', 'fd', fdText, 65535),
    host: tcp ? stripBrackets(host ?? '') : null,
    port,
    server,
    wait: server && parseBool('chardev', 'wait', o.get('wait'), true),
    nodelay: parseBool('chardev', 'nodelay', o.get('nodelay'), false),
    reconnect: reconnectText === undefined ? 0 : parseUint('chardev', 'reconnect', reconnectText, MAX_RECONNECT_S),
  };
}

/** `[::1]` -> `::1`: QEMU writes IPv6 addresses in brackets in its host:port forms. */
function stripBrackets(h: string): string {
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/**
 * -serial tcp:[HOST]:PORT[,opts] and unix:PATH[,opts] as the -chardev socket
 * options they stand for (QEMU's legacy -serial syntax); opts are server,
 * wait, nodelay and reconnect as in -chardev.
 */
function serialSocket(text: string): SocketSpec {
  const tcp = text.startsWith('tcp:');
  const o = parseOpts('serial', text.slice(tcp ? 4 : 5), 'addr');
  const addr = o.get('addr');
  if (!addr) throw new CliError(`-serial ${text}: ${tcp ? 'tcp: needs [HOST]:PORT' : 'unix: needs a path'}`);
  const rest = o.entries.filter(([k]) => k !== 'addr');
  for (const [k] of rest) {
    if (k === 'host' || k === 'port' || k === 'path' || k === 'fd') throw new CliError(`-serial ${text}: ${k}= is given by the address`);
  }
  let entries: Array<[string, string]>;
  if (tcp) {
    const colon = addr.lastIndexOf(':');
    if (colon < 0) throw new CliError(`-serial ${text}: tcp: needs [HOST]:PORT`);
    entries = [['host', addr.slice(0, colon)], ['port', addr.slice(colon + 1)], ...rest];
  } else {
    entries = [['path', addr], ...rest];
  }
  return socketSpec(optsFrom(entries), `-serial ${text}`);
}

function parseChardev(text: string): ChardevConfig {
  const o = parseOpts('chardev', text, 'backend');
  const id = o.get('id');
  if (!id) throw new CliError(`-chardev ${text}: id= is required`);
  return { id, spec: chardevSpec(o, `-chardev ${id}`) };
}

/**
 * libxl adds `-chardev spicevmc,...` only beside `-spice` (the vdagent channel with
 * spice_vdagent=1, one per USB redirection with spice_usbredirection=N): it is the
 * SPICE server's end of a channel. -spice is ignored, so its channels are too.
 */
function spiceChardev(text: string, warnings: string[]): boolean {
  const o = parseOpts('chardev', text, 'backend');
  if (o.get('backend') !== 'spicevmc') return false;
  warnings.push(`-chardev spicevmc,id=${o.get('id') ?? ''}: a SPICE channel, and there is no SPICE server; ignored`);
  return true;
}

/** -incoming as QEMU spells the forms we take (URIs of other transports are refused here, not at load time). */
function parseIncoming(text: string | undefined): IncomingConfig | null {
  if (text === undefined) return null;
  if (text === 'defer') return { kind: 'defer' };
  const fd = /^fd:(0|[1-9][0-9]{0,8})$/.exec(text);
  if (fd) return { kind: 'fd', fd: Number(fd[1]) };
  if (text.startsWith('file:') && text.length > 5) {
    const path = text.slice(5);
    if (!path.startsWith('/') || path.length > 4096) throw new CliError(`-incoming ${text}: the file name must be absolute`);
    return { kind: 'file', path };
  }
  throw new CliError(`-incoming ${text}: only fd:N, file:PATH and defer are supported`);
}

/** -add-fd fd=N,set=ID[,opaque=TEXT] (QEMU's option). */
function parseAddFd(text: string): AddFdConfig {
  const o = parseOpts('add-fd', text);
  for (const k of o.keys()) if (k !== 'fd' && k !== 'set' && k !== 'opaque') throw new CliError(`-add-fd ${text}: unknown key ${k}`);
  const fd = o.get('fd');
  const set = o.get('set');
  if (fd === undefined || set === undefined) throw new CliError(`-add-fd ${text}: fd= and set= are required`);
  const n = parseUint('add-fd', 'fd', fd, 0x7fffffff);
  if (n < 3) throw new CliError(`-add-fd ${text}: fd must be 3 or more (0-2 are stdin, stdout, stderr)`);
  return { fd: n, set: parseUint('add-fd', 'set', set, 0x7fffffff), opaque: o.get('opaque') ?? null };
}

function parseMon(text: string, byId: Map<string, ChardevConfig>, used: Set<string>, warnings: string[]): MonitorConfig[] {
  const o = parseOpts('mon', text, 'chardev');
  const id = o.get('chardev');
  if (!id) throw new CliError(`-mon ${text}: chardev= is required`);
  const c = byId.get(id);
  if (!c) throw new CliError(`-mon chardev=${id}: no -chardev with id=${id}`);
  used.add(id);
  const mode = o.get('mode') ?? 'readline';
  if (mode !== 'control') {
    warnings.push(`-mon chardev=${id},mode=${mode}: only QMP (mode=control) monitors exist; ignored`);
    return [];
  }
  if (c.spec.backend !== 'socket') throw new CliError(`-mon chardev=${id}: QMP is served on socket chardevs only`);
  if (c.spec.host !== null || !c.spec.server) throw new CliError(`-mon chardev=${id}: QMP is served on listening unix sockets only (path= or fd=, server=on)`);
  return [{ chardev: id, path: c.spec.path, fd: c.spec.fd }];
}

const SERIAL_FORMS = 'file:PATH, pipe:PATH, tcp:[HOST]:PORT[,server=on,wait=off], unix:PATH[,server=on,wait=off], pty, stdio, null, none, /dev/PATH, chardev:ID';

/** `-serial` words, as QEMU spells them. */
function serialSpec(text: string, warnings: string[]): ChardevSpec | 'none' | { ref: string } {
  if (text === 'none') return 'none';
  if (text === 'null') return { backend: 'null' };
  if (text === 'pty') return { backend: 'pty' };
  if (text === 'stdio') return { backend: 'stdio' };
  if (text === 'mon:stdio') {
    warnings.push('-serial mon:stdio: no human monitor; serving the serial port on stdio');
    return { backend: 'stdio' };
  }
  if (text.startsWith('file:')) {
    const path = text.slice(5);
    if (!path) throw new CliError('-serial file: needs a path');
    return { backend: 'file', path, append: false };
  }
  if (text.startsWith('pipe:')) {
    const path = text.slice(5);
    if (!path) throw new CliError('-serial pipe: needs a path');
    return { backend: 'pipe', path };
  }
  if (text.startsWith('tcp:') || text.startsWith('unix:')) return serialSocket(text);
  if (text.startsWith('chardev:')) return { ref: text.slice(8) };
  if (text.startsWith('/')) return { backend: 'tty', path: text };
  throw new CliError(`-serial ${text.slice(0, 64)}: not supported (${SERIAL_FORMS})`);
}

function parseSerials(texts: string[], byId: Map<string, ChardevConfig>, used: Set<string>, warnings: string[]): SerialConfig[] {
  const out: SerialConfig[] = [];
  for (const t of texts) {
    const s = serialSpec(t, warnings);
    if (s === 'none') continue;
    if (out.length >= SERIAL_MAX) throw new CliError(`-serial ${t}: at most ${SERIAL_MAX} serial ports (COM1-COM4)`);
    const index = out.length;
    if ('ref' in s) {
      const c = byId.get(s.ref);
      if (!c) throw new CliError(`-serial chardev:${s.ref}: no -chardev with id=${s.ref}`);
      if (used.has(s.ref)) throw new CliError(`-serial chardev:${s.ref}: that chardev is already in use`);
      used.add(s.ref);
      out.push({ index, id: s.ref, spec: c.spec });
    } else {
      out.push({ index, id: `serial${index}`, spec: s });
    }
  }
  return out;
}

const CACHE_MODES = ['writeback', 'none', 'writethrough', 'directsync', 'unsafe'] as const;

/** A -drive's host side (what to open), before it has an IDE position. */
interface DriveBackend {
  text: string;
  file: string | null;
  media: 'disk' | 'cdrom';
  format: DriveConfig['format'];
  cache: DriveConfig['cache'];
  readonly: boolean;
  /** -drive id= (QMP's `device`), or null. */
  id: string | null;
}

/**
 * libxl's sd* disks: `-device lsi53c895a` once, then per disk `-drive ...,if=none,id=scsi0-hdN`
 * + `-device scsi-hd,drive=scsi0-hdN,scsi-id=N` (libxl_dm.c, Xen 4.17). No SCSI controller
 * is emulated: each such disk gets one line naming it and what to write in xl.cfg instead.
 */
const SCSI_FRONTENDS: ReadonlySet<string> = new Set(['scsi-hd', 'scsi-cd']);

/** IDE front ends a -device can name (libxl: `-device ide-cd,id=ide-N,drive=ide-N,bus=ide.B,unit=U` for CD-ROMs). */
const IDE_FRONTENDS: Record<string, 'disk' | 'cdrom'> = { 'ide-cd': 'cdrom', 'ide-hd': 'disk' };

function driveBackend(o: ParsedOpts, text: string, media: 'disk' | 'cdrom', warnings: string[]): DriveBackend {
  const file = o.get('file') || null;
  const format = o.get('format') ?? 'raw';
  if (format !== 'raw' && format !== 'host_device') {
    // libxl passes the image's own format in dom0 (a stub domain gets every disk as /dev/xvdX, host_device).
    throw new CliError(
      `-drive ${text}: disk ${file ?? '(no file)'} is ${format}; stubdm reads raw images only: convert it (qemu-img convert -O raw) or set format=raw in xl.cfg for a raw image`,
    );
  }
  const cache = o.get('cache') ?? 'writeback';
  if (!(CACHE_MODES as readonly string[]).includes(cache)) {
    throw new CliError(`-drive ${text}: cache=${cache} (one of ${CACHE_MODES.join(', ')})`);
  }
  unknownKeys('drive', o, ['file', 'if', 'index', 'bus', 'unit', 'media', 'format', 'cache', 'readonly', 'id', 'aio'], warnings);
  return {
    text,
    file,
    media,
    format,
    cache: cache as DriveConfig['cache'],
    readonly: parseBool('drive', 'readonly', o.get('readonly'), false) || media === 'cdrom',
    id: o.get('id') || null,
  };
}

/**
 * IDE drives from `-drive if=ide,index=N` (libxl's disks) and from
 * `-drive if=none,id=X` + `-device ide-cd|ide-hd,drive=X,bus=ide.B,unit=U`
 * (libxl's CD-ROMs since Xen 4.16). Positions 0-3 = primary master/slave,
 * secondary master/slave; a drive without one takes the first free place.
 */
function parseDrives(texts: string[], devices: DeviceConfig[], warnings: string[]): DriveConfig[] {
  const taken = new Map<number, string>();
  const place = (index: number, what: string): void => {
    const other = taken.get(index);
    if (other !== undefined) throw new CliError(`${what}: IDE index ${index} is already used by ${other}`);
    taken.set(index, what);
  };
  const placed: Array<{ index: number | null; what: string; b: DriveBackend; qdev: string | null }> = [];
  const byId = new Map<string, DriveBackend>();
  const usedIds = new Set<string>();
  for (const text of texts) {
    const o = parseOpts('drive', text);
    const driver = o.get('driver');
    if (driver === 'quorum' || driver === 'replication') {
      // libxl 4.17 builds these for disks with colo-* settings (libxl_dm.c qemu_disk_ide_drive_string,
      // qemu_disk_scsi_drive_string): block-driver graphs, not an image file.
      throw new CliError(`-drive ${text}: driver=${driver} is a COLO replicated disk, which stubdm does not support (leave the colo-* settings out of the disk spec)`);
    }
    const iface = o.get('if') ?? 'ide';
    const mediaText = o.get('media') ?? 'disk';
    if (mediaText !== 'disk' && mediaText !== 'cdrom') throw new CliError(`-drive ${text}: media=${mediaText} (disk or cdrom)`);
    if (iface === 'none') {
      const id = o.get('id');
      if (!id) throw new CliError(`-drive ${text}: if=none needs id= (for -device ...,drive=ID)`);
      if (byId.has(id)) throw new CliError(`-drive ${text}: id=${id} is given twice`);
      byId.set(id, driveBackend(o, text, mediaText, warnings));
      continue;
    }
    if (iface !== 'ide') throw new CliError(`-drive ${text}: if=${iface} is not emulated (only if=ide, or if=none with -device ide-cd/ide-hd)`);
    const b = driveBackend(o, text, mediaText, warnings);
    if (b.file === null && b.media === 'disk') throw new CliError(`-drive ${text}: a disk needs file=`);
    let index: number | null = null;
    const indexText = o.get('index');
    if (indexText !== undefined) {
      index = parseUint('drive', 'index', indexText, IDE_DRIVES - 1);
    } else if (o.has('bus') || o.has('unit')) {
      index = parseUint('drive', 'bus', o.get('bus') ?? '0', 1) * 2 + parseUint('drive', 'unit', o.get('unit') ?? '0', 1);
    }
    const what = `-drive ${text}`;
    if (index !== null) place(index, what);
    placed.push({ index, what, b, qdev: null });
  }
  for (const d of devices) {
    if (SCSI_FRONTENDS.has(d.driver)) {
      const driveId = d.props.drive;
      const found = driveId === undefined ? undefined : byId.get(driveId);
      if (driveId !== undefined && found !== undefined) usedIds.add(driveId);
      warnings.push(
        `-device ${d.driver}${driveId !== undefined ? `,drive=${driveId}` : ''}: disk ${found?.file ?? '(no file)'} is an sd* disk ` +
          `(SCSI), which stubdm does not emulate: the guest sees it through PV drivers only; name it hda-hdd or xvda-xvdd in xl.cfg for an emulated IDE disk`,
      );
      continue;
    }
    const media = IDE_FRONTENDS[d.driver];
    if (media === undefined) continue;
    const what = `-device ${d.driver}${d.id ? `,id=${d.id}` : ''}`;
    const driveId = d.props.drive;
    let b: DriveBackend;
    if (driveId === undefined) {
      if (media === 'disk') throw new CliError(`${what}: ide-hd needs drive=`);
      b = { text: what, file: null, media, format: 'raw', cache: 'writeback', readonly: true, id: null }; // empty CD-ROM drive
    } else {
      const found = byId.get(driveId);
      if (!found) throw new CliError(`${what}: drive=${driveId} has no -drive if=none,id=${driveId}`);
      if (usedIds.has(driveId)) throw new CliError(`${what}: drive=${driveId} is already attached`);
      usedIds.add(driveId);
      if (found.file === null && media === 'disk') throw new CliError(`${what}: a disk needs a -drive with file=`);
      b = { ...found, media, readonly: found.readonly || media === 'cdrom' };
    }
    let index: number | null = null;
    const bus = d.props.bus;
    if (bus !== undefined) {
      const m = /^ide\.([01])$/.exec(bus);
      if (!m) throw new CliError(`${what}: bus=${bus} (only the PIIX IDE buses ide.0 and ide.1 exist)`);
      index = Number(m[1]) * 2 + parseUint('device', 'unit', d.props.unit ?? '0', 1);
    } else if (d.props.unit !== undefined) {
      throw new CliError(`${what}: unit= needs bus=ide.0 or ide.1`);
    }
    if (index !== null) place(index, what);
    placed.push({ index, what, b, qdev: d.id });
  }
  for (const id of byId.keys()) {
    if (!usedIds.has(id)) warnings.push(`-drive id=${id} (if=none) is not attached to any -device; ignored`);
  }
  const drives: DriveConfig[] = [];
  for (const p of placed) {
    let index = p.index;
    if (index === null) {
      index = 0;
      while (taken.has(index)) index++;
      if (index >= IDE_DRIVES) throw new CliError(`${p.what}: all ${IDE_DRIVES} IDE positions are taken`);
      taken.set(index, p.what);
    }
    const { file, media, format, cache, readonly } = p.b;
    // QMP names a drive by its -drive id (`device`) or its -device id (`id`); an
    // unnamed -drive if=ide gets QEMU's default name (blockdev.c: ide<bus>-<hd|cd><unit>).
    const id = p.b.id ?? `ide${index >> 1}-${media === 'cdrom' ? 'cd' : 'hd'}${index & 1}`;
    drives.push({ index, file, media, format, cache, readonly, id, qdev: p.qdev });
  }
  return drives.sort((x, y) => x.index - y.index);
}

function parseNetdev(text: string): NetdevConfig {
  const o = parseOpts('netdev', text, 'type');
  const type = o.get('type');
  const id = o.get('id');
  if (!type) throw new CliError(`-netdev ${text}: type= is required`);
  if (!id) throw new CliError(`-netdev ${text}: id= is required`);
  return {
    type,
    id,
    ifname: o.get('ifname') ?? null,
    bridge: o.get('br') ?? null,
    script: o.get('script') ?? null,
    downscript: o.get('downscript') ?? null,
  };
}

function parseDevice(text: string, netIds: Set<string>): DeviceConfig {
  const o = parseOpts('device', text, 'driver');
  const driver = o.get('driver');
  if (!driver) throw new CliError(`-device ${text}: no driver`);
  const netdev = o.get('netdev') ?? null;
  if (netdev !== null && !netIds.has(netdev)) throw new CliError(`-device ${driver}: netdev=${netdev} has no -netdev with that id`);
  let mac = o.get('mac') ?? null;
  if (mac !== null) {
    if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) throw new CliError(`-device ${driver}: mac=${mac} is not xx:xx:xx:xx:xx:xx`);
    mac = mac.toLowerCase();
  }
  const vgamem = o.get('vgamem_mb');
  const props: Record<string, string> = {};
  for (const [k, v] of o.entries) if (k !== 'driver') props[k] = v;
  return {
    driver,
    id: o.get('id') ?? null,
    netdev,
    mac,
    vgamemMb: vgamem === undefined ? null : parseUint('device', 'vgamem_mb', vgamem, 256),
    props,
  };
}
