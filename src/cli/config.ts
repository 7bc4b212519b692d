/** What stubdm was asked to do: the typed result of parsing libxl's argv. Plain data. */
import type { ChardevSpec } from '../chardev/spec.ts';
import type { LogFormat } from '../core/log.ts';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface MachineConfig {
  /** `xenfv` (with the Xen platform PCI device) or `pc` (accel=xen, xen_platform_pci=0). */
  type: 'xenfv' | 'pc';
  xenPlatform: boolean;
  suppressVmdesc: boolean;
  /** Bytes, or null for the default (Xen's hvmloader decides). */
  maxRamBelow4g: number | null;
}

export interface ChardevConfig {
  id: string;
  spec: ChardevSpec;
}

/** A QMP monitor: where it listens. */
export interface MonitorConfig {
  chardev: string;
  /** Unix socket path to listen on, or null when `fd` is given. */
  path: string | null;
  /** An inherited, already listening socket (`fd=N`, dom0 libxl). */
  fd: number | null;
}

export interface SerialConfig {
  /** COM index: 0 = COM1. */
  index: number;
  /** Label in query-chardev: `serial0`, or the -chardev id. */
  id: string;
  spec: ChardevSpec;
}

export interface DriveConfig {
  /** IDE position: 0 = primary master, 1 = primary slave, 2/3 secondary. */
  index: number;
  /** null = empty CD-ROM drive. */
  file: string | null;
  media: 'disk' | 'cdrom';
  format: 'raw' | 'host_device';
  cache: 'writeback' | 'none' | 'writethrough' | 'directsync' | 'unsafe';
  readonly: boolean;
  /** The block backend's name in QMP (`device`): the -drive id, else QEMU's default (ide1-cd0...). */
  id: string;
  /** The -device id (QMP's `id`; libxl: ide-<devid>), or null. */
  qdev: string | null;
}

export interface DeviceConfig {
  driver: string;
  id: string | null;
  netdev: string | null;
  /** Lower-case xx:xx:xx:xx:xx:xx, or null. */
  mac: string | null;
  vgamemMb: number | null;
  /** Every property as given, for devices that need more. */
  props: Record<string, string>;
}

export interface NetdevConfig {
  type: string;
  id: string;
  ifname: string | null;
  bridge: string | null;
  script: string | null;
  downscript: string | null;
}

export interface StubdmConfig {
  /** --sim: the in-process simulated hypervisor instead of Xen. */
  sim: boolean;
  /** false with --no-stubdom (running in dom0). */
  stubdom: boolean;
  logLevel: LogLevel;
  /** --log-format: text lines (default) or pino's JSON. */
  logFormat: LogFormat;
  domid: number;
  name: string | null;
  machine: MachineConfig;
  ramMiB: number;
  vcpus: number;
  maxVcpus: number;
  chardevs: ChardevConfig[];
  monitors: MonitorConfig[];
  serials: SerialConfig[];
  drives: DriveConfig[];
  devices: DeviceConfig[];
  netdevs: NetdevConfig[];
  netNone: boolean;
  bootOrder: string;
  vnc: string | null;
  display: string | null;
  keymap: string | null;
  /** -S: start with the vCPUs paused until QMP `cont` (libxl sends `cont` anyway). */
  startPaused: boolean;
  noShutdown: boolean;
  nodefaults: boolean;
  noUserConfig: boolean;
  nographic: boolean;
  /** -incoming: restore device state before the guest runs. */
  incoming: IncomingConfig | null;
  /** -add-fd: inherited descriptors put into fd sets at start (the stub domain's save console). */
  addFds: AddFdConfig[];
  xenDomidRestrict: boolean;
  runas: string | null;
  chroot: string | null;
}

/** -incoming fd:N (dom0: libxl's open save file), file:PATH (the stub domain's restore console), defer (QMP loads it). */
export type IncomingConfig = { kind: 'fd'; fd: number } | { kind: 'file'; path: string } | { kind: 'defer' };

export interface AddFdConfig {
  fd: number;
  set: number;
  opaque: string | null;
}

export interface ParseResult {
  config: StubdmConfig;
  /** One line per ignored option or device: print each once. */
  warnings: string[];
  /** --help or -version was asked for: print this and exit 0. */
  help: string | null;
}
