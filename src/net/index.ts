/**
 * Network backends: opening the parsed -netdev options as PacketBackends,
 * beside src/block (openBlockBackend) and src/chardev (openChardev).
 *
 * libxl gives, per NIC (docs/xen-contract.md §13):
 *   -device e1000,id=nic0,netdev=net0,mac=...
 *   -netdev type=tap,id=net0,ifname=vif5.0-emu,br=xenbr0,script=no,downscript=no
 * In dom0 we create that tap (TUNSETIFF) before reporting `running`, and
 * libxl's vif hotplug script then puts it on the bridge; in a stub domain
 * /init has created it already and bridged it with the stub's netfront
 * (docs/xen-contract.md §15). `br=` is therefore not ours to act on.
 *
 * Operator mistakes are NetdevError: one line, which main prints before
 * exiting non-zero.
 *
 * Wiring: openNetwork(cfg, { log }) while the machine is built, i.e. before
 * `state=running` (libxl's hotplug script needs the tap by then) and before
 * -runas drops privileges (TUNSETIFF needs CAP_NET_ADMIN); each NicPlan's
 * backend goes to its NIC, and the machine closes them on teardown.
 */
import { existsSync } from 'node:fs';
import type { DeviceConfig, NetdevConfig } from '../cli/config.ts';
import type { Logger } from '../core/log.ts';
import type { PacketBackend } from './backend.ts';
import { NetNativeError, type TapIo } from './native.ts';
import { TapBackend } from './tap.ts';
import type { NetTrace } from './trace.ts';

export { MAX_FRAME, MAX_OFFLOAD_FRAME, MAX_WRITABLE_LISTENERS } from './backend.ts';
export type { FrameReceiver, PacketBackend, TxOffload } from './backend.ts';
export { TapBackend, RX_BURST, type TapOptions, type TapStats } from './tap.ts';
export { MemoryPair, MemoryEnd, DEFAULT_MEMORY_QUEUE_FRAMES, MAX_MEMORY_QUEUE_FRAMES, type MemoryPairOptions } from './memory.ts';
export { finishChecksum, onesSum } from './checksum.ts';

/** Operator-facing failure to open a network backend: one line, no stack. */
export class NetdevError extends Error {}

/** Longest interface name Linux takes (IFNAMSIZ 16 with the NUL). */
const IFNAMSIZ_MAX = 15;

/** The parts of the parsed config a network set-up depends on. */
export interface NetConfig {
  /** true inside a stub domain (not --no-stubdom). */
  stubdom: boolean;
  netNone: boolean;
  netdevs: NetdevConfig[];
  devices: DeviceConfig[];
}

/** One NIC and the netdev behind it. */
export interface NicPlan {
  nic: DeviceConfig;
  netdev: NetdevConfig;
}

export interface NetOpenOptions {
  log: Logger;
  /** The addon's tap calls (tests substitute their own). */
  io?: TapIo;
  /** Where interfaces are listed (tests point it elsewhere). Default /sys/class/net. */
  sysClassNet?: string;
  /** The NIC event trace the taps record their wake-ups into (STUBDM_NET_TRACE). */
  trace?: NetTrace | null;
}

function describe(nd: NetdevConfig): string {
  return `-netdev ${nd.type},id=${nd.id}${nd.ifname !== null ? `,ifname=${nd.ifname}` : ''}`;
}

function nicName(d: DeviceConfig): string {
  return d.id !== null ? `${d.driver} ${d.id}` : d.driver;
}

/**
 * Checks the -netdev/-device pairing without opening anything: returns the
 * NICs to wire (argv order) and warnings (a netdev no NIC uses); throws
 * NetdevError for what cannot work.
 */
export function planNetwork(cfg: NetConfig): { nics: NicPlan[]; warnings: string[] } {
  const byId = new Map<string, NetdevConfig>();
  for (const nd of cfg.netdevs) {
    if (byId.has(nd.id)) throw new NetdevError(`-netdev id=${nd.id} is given twice`);
    byId.set(nd.id, nd);
  }
  if (cfg.netNone && cfg.netdevs.length > 0) {
    throw new NetdevError(`-net none contradicts ${describe(cfg.netdevs[0])}: give one or the other`);
  }
  const ifnames = new Map<string, string>();
  for (const nd of cfg.netdevs) checkNetdev(nd, cfg.stubdom, ifnames);

  const users = new Map<string, DeviceConfig>();
  const nics: NicPlan[] = [];
  for (const d of cfg.devices) {
    if (d.netdev === null) continue;
    const nd = byId.get(d.netdev);
    if (nd === undefined) throw new NetdevError(`-device ${nicName(d)}: netdev=${d.netdev} has no -netdev with that id`);
    const other = users.get(nd.id);
    if (other !== undefined) {
      throw new NetdevError(`-netdev id=${nd.id} is used by two NICs (${nicName(other)} and ${nicName(d)}): give each NIC its own -netdev`);
    }
    users.set(nd.id, d);
    nics.push({ nic: d, netdev: nd });
  }
  const warnings = cfg.netdevs
    .filter((nd) => !users.has(nd.id))
    .map((nd) => `${describe(nd)} is not used by any -device ...,netdev=${nd.id}; not opened`);
  return { nics, warnings };
}

function checkNetdev(nd: NetdevConfig, stubdom: boolean, ifnames: Map<string, string>): void {
  if (nd.type !== 'tap') {
    throw new NetdevError(`-netdev ${nd.type},id=${nd.id}: only type=tap is supported (what libxl passes)`);
  }
  for (const [opt, v] of [['script', nd.script], ['downscript', nd.downscript]] as const) {
    if (v !== null && v !== 'no' && v !== '') {
      throw new NetdevError(`${describe(nd)}: ${opt}=${v}: stubdm runs no network scripts (libxl's hotplug script bridges the tap); give ${opt}=no`);
    }
  }
  if (nd.ifname === null || nd.ifname === '') {
    if (stubdom) {
      throw new NetdevError(`${describe(nd)}: a tap in a stub domain needs ifname= (the tap the stub domain's /init created and bridged)`);
    }
    return;
  }
  const n = nd.ifname;
  if (Buffer.byteLength(n) > IFNAMSIZ_MAX || n === '.' || n === '..' || /[\s/:]/.test(n)) {
    throw new NetdevError(`${describe(nd)}: ifname=${n} is not a valid interface name (at most ${IFNAMSIZ_MAX} bytes, no '/', ':' or spaces)`);
  }
  const prev = ifnames.get(n);
  if (prev !== undefined) throw new NetdevError(`-netdev id=${prev} and id=${nd.id} both name ifname=${n}`);
  ifnames.set(n, nd.id);
}

/** Opens the tap for one checked netdev. Throws NetdevError (one line) when it cannot. */
export async function openNetdev(nd: NetdevConfig, stubdom: boolean, o: NetOpenOptions): Promise<PacketBackend> {
  if (nd.type !== 'tap') throw new NetdevError(`-netdev ${nd.type},id=${nd.id}: only type=tap is supported (what libxl passes)`);
  const ifname = nd.ifname ?? '';
  if (stubdom && ifname !== '' && !existsSync(`${o.sysClassNet ?? '/sys/class/net'}/${ifname}`)) {
    throw new NetdevError(
      `${describe(nd)}: there is no interface ${ifname}; in a stub domain /init creates the tap and bridges it (rootfs/lib/stubdom.sh wire_network)`,
    );
  }
  try {
    const tap = TapBackend.open({ ifname, io: o.io, log: o.log, trace: o.trace });
    o.log.info({ netdev: nd.id, tap: tap.name, offloads: tap.offloads }, 'tap open');
    return tap;
  } catch (e) {
    if (e instanceof NetNativeError) throw new NetdevError(`${describe(nd)}: ${e.message}`);
    throw new NetdevError(`${describe(nd)}: ${tapOpenProblem(e as NodeJS.ErrnoException, ifname || 'a new tap')}`);
  }
}

function tapOpenProblem(e: NodeJS.ErrnoException, ifname: string): string {
  switch (e.code) {
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      return '/dev/net/tun is missing (load the tun module: modprobe tun)';
    case 'EPERM':
    case 'EACCES':
      return `not allowed to create or attach tap ${ifname} (stubdm needs CAP_NET_ADMIN: run it as root, before any -runas)`;
    case 'EBUSY':
      return `tap ${ifname} is already attached to another process (is another device model still running?)`;
    case 'EINVAL':
      return `${ifname} exists and is not a single-queue tap (a tun, or another kind of interface): cannot attach to it`;
    default:
      return `cannot open tap ${ifname}: ${(e.message ?? String(e)).split('\n')[0]}`;
  }
}

/**
 * Checks and opens every NIC's netdev (argv order). On failure the taps
 * already opened are closed before the NetdevError propagates.
 */
export async function openNetwork(cfg: NetConfig, o: NetOpenOptions): Promise<Array<NicPlan & { backend: PacketBackend }>> {
  const { nics, warnings } = planNetwork(cfg);
  for (const w of warnings) o.log.warn(w);
  const opened: Array<NicPlan & { backend: PacketBackend }> = [];
  try {
    for (const p of nics) opened.push({ ...p, backend: await openNetdev(p.netdev, cfg.stubdom, o) });
  } catch (e) {
    await Promise.all(opened.map((x) => x.backend.close()));
    throw e;
  }
  return opened;
}
