/**
 * stubdm's entry point: argv (as libxl builds it) -> host (Xen or the
 * simulator) -> board -> devices -> ioreq server -> xenstore `running` ->
 * QMP. Runs until SIGTERM/SIGHUP/SIGINT or QMP `quit`, then tears down in
 * order and flushes every backend.
 *
 * Exit codes: 0 clean stop, 1 the host or a backend could not be opened,
 * 2 bad arguments. Operator errors are one line on stderr, never a stack.
 */
import fs from 'node:fs';
import tty from 'node:tty';
import { pathToFileURL } from 'node:url';
import { Board } from './core/board.ts';
import { SHUTDOWN_REBOOT, type Host } from './core/host.ts';
import { createLogger, parseConsoleLimit, setGuestLogBudget, setRootLogger, type Logger } from './core/log.ts';
import { CliError, parseArgs, type StubdmConfig } from './cli/index.ts';
import { ChardevError, flushAll, openChardev, type CharBackend } from './chardev/index.ts';
import { BlockOpenError } from './block/index.ts';
import { NetdevError, openNetwork, planNetwork } from './net/index.ts';
import { NetTrace, parseNetTraceEnv } from './net/trace.ts';
import { formatNetTrace, NETTRACE_OFF } from './devices/e1000/trace.ts';
import { DiskTrace, parseDiskTraceEnv } from './block/trace.ts';
import { DISKTRACE_OFF, formatDiskTrace } from './devices/ide/trace.ts';
import { loadRomfile, RomfileError } from './machine/romfile.ts';
import type { Uart16550 } from './devices/uart/index.ts';
import { IoreqServer } from './ioreq/server.ts';
import { buildPc, type Pc } from './machine/pc.ts';
import { hmpInfoNetwork, hmpInfoPci, sendKey } from './machine/hmpinfo.ts';
import { collectStats, hmpInfoStats, type StatsSources } from './machine/stats.ts';
import { parseVncArg, VncServer } from './vnc/server.ts';
import { startStubConsole, STUB_CONSOLE_PATHS, type StubConsolePaths } from './console/index.ts';
import { loadTapIo } from './net/native.ts';
import { QmpCore, QmpServer, QmpServerError, type ChardevInfo, type QmpMachine, type RunState } from './qmp/index.ts';
import { createSimHost, type SimHost } from './sim/index.ts';
import { StateError } from './core/state.ts';
import { MigrationError, readState, writeState } from './migration/stream.ts';
import { decodeContainer, recordSizes } from './machine/container.ts';
import { loadUnixSock } from './qmp/unixsock.ts';
import { dropPrivileges, enterChroot, planConfinement, RunasError } from './runas.ts';
import { RestrictError, type Host as CoreHost } from './core/host.ts';

const SHUTDOWN_GRACE_MS = 10_000;
/**
 * How long a restore stream may take to arrive. A stub domain must be
 * serving 30 s after libxl unpaused it (docs/xen-contract.md §10) and node
 * takes ~6 of them to start; in dom0 the state is a local file.
 */
const INCOMING_TIMEOUT_MS = 20_000;
/** How long a save waits for the serial backends to take the guest's last bytes. */
const SERIAL_FLUSH_MS = 2_000;


/** Raw mode for the stub domain's save/restore consoles (a plain file: nothing to do). */
function makeRaw(fd: number): boolean {
  return loadUnixSock().makeRaw(fd);
}

/** A failure the operator can fix: printed as one line, exit 1. */
class StartError extends Error {}

export interface Dm {
  readonly config: StubdmConfig;
  readonly host: Host;
  /** The simulated host with its qtest-like driver, when run with --sim. */
  readonly sim: SimHost | null;
  readonly board: Board;
  /** The machine: every device, and its save/restore. */
  readonly pc: Pc;
  readonly uarts: readonly Uart16550[];
  readonly serials: readonly CharBackend[];
  readonly qmp: QmpCore;
  readonly ioreq: IoreqServer;
  runState(): RunState;
  /** Tear everything down (idempotent); resolves with the exit code. */
  shutdown(why: string): Promise<number>;
  /** Resolves with the exit code once the device model has stopped. */
  readonly done: Promise<number>;
}

export interface StartOptions {
  /** Log destination (default stderr). */
  log?: Logger;
  /** Install SIGTERM/SIGHUP/SIGINT and uncaught-exception handlers (default true; tests pass false). */
  signals?: boolean;
  /** Entries of the NIC event trace (STUBDM_NET_TRACE, HMP `info nettrace`); absent or null: no trace. */
  netTrace?: number | null;
  /** Entries of the disk event trace (STUBDM_DISK_TRACE, HMP `info disktrace`); absent or null: no trace. */
  diskTrace?: number | null;
}

/** Loads src/xen lazily: only a Xen run needs koffi and the Xen libraries. */
async function openXen(cfg: StubdmConfig, log: Logger, willRestrict: boolean, loopIdleTime: boolean): Promise<Host> {
  // Imported lazily: only a Xen run needs koffi and the Xen libraries (--sim must work without them).
  let xen: typeof import('./xen/index.ts');
  try {
    xen = await import('./xen/index.ts');
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new StartError(`stubdm: cannot load Xen support: ${msg.split('\n')[0]}`);
  }
  try {
    return xen.openXenHost({
      domid: cfg.domid,
      // No vcpus: Xen knows the domain's vCPU count (libxl omits -smp for one vCPU),
      // and the ioreq page has a slot for each of them.
      ramBytes: cfg.ramMiB * 2 ** 20,
      log: log.child({ c: 'xen' }),
      ...(cfg.machine.maxRamBelow4g !== null ? { lowMemLimit: cfg.machine.maxRamBelow4g } : {}),
      willRestrict,
      loopIdleTime,
    });
  } catch (err) {
    if (err instanceof xen.XenUnavailableError) throw new StartError(err.message);
    throw err;
  }
}

/**
 * The VGA BIOS for the ROM BAR: STUBDM_VGABIOS, else Debian's SeaBIOS build
 * (package seabios; docs/vga.md §1), or the copy in the stub domain's image. Missing: the VGA works without a ROM,
 * but SeaBIOS then has no video BIOS to run (no boot messages on screen).
 */
export const VGABIOS_PATHS = [
  '/usr/share/seabios/vgabios-stdvga.bin',
  '/usr/share/qemu/vgabios-stdvga.bin',
  '/opt/stubdm/share/vgabios-stdvga.bin', // the stub domain's image (scripts/build-stubdom.sh)
];

function readVgaBios(log: Logger): Uint8Array | null {
  const paths = process.env.STUBDM_VGABIOS ? [process.env.STUBDM_VGABIOS] : VGABIOS_PATHS;
  for (const p of paths) {
    try {
      return new Uint8Array(fs.readFileSync(p));
    } catch {
      // try the next one
    }
  }
  log.warn({ paths }, 'no VGA BIOS found: the VGA has no ROM (install seabios or set STUBDM_VGABIOS)');
  return null;
}

function parseVncArgOrExit(arg: string): ReturnType<typeof parseVncArg> {
  try {
    return parseVncArg(arg);
  } catch (e) {
    throw new StartError(`stubdm: ${(e as Error).message}`);
  }
}

/** /dev/fb0, its sysfs directory and /dev/input; STUBDM_FBDEV, STUBDM_FB_SYSFS, STUBDM_INPUT_DIR stand in (tests). */
function stubConsolePaths(): StubConsolePaths {
  const e = process.env;
  return { fbdev: e.STUBDM_FBDEV ?? STUB_CONSOLE_PATHS.fbdev, sysfs: e.STUBDM_FB_SYSFS ?? STUB_CONSOLE_PATHS.sysfs, inputDir: e.STUBDM_INPUT_DIR ?? STUB_CONSOLE_PATHS.inputDir };
}

function oneLine(msg: string): string {
  const line = msg.split('\n')[0];
  return line.startsWith('stubdm:') ? line : `stubdm: ${line}`;
}

/**
 * HMP `info restrict` (stubdm's own; the e2e dm_restrict check): one line of
 * key=value. `guest=ok` shows the handles still work; the other domain's
 * answers tell a restricted handle (EPERM from the kernel) from an
 * unrestricted one (ESRCH from Xen), so the check cannot pass by accident.
 */
function hmpInfoRestrict(host: CoreHost): string {
  const r = host.restriction;
  if (r === undefined) return 'restrict=unsupported\n';
  const p = r.probe();
  return `restrict=${p.restricted ? 'on' : 'off'} domid=${p.domid} guest=${p.guest} other=${p.otherDomid} dm_op=${p.dmOp} map=${p.map} evtchn=${p.evtchn}\n`;
}

/**
 * -xen-domid-restrict, -chroot, -runas, in that order, once every resource is
 * open. Anything loaded lazily later is looked for inside the chroot:
 * enterChroot loads the unixsock addon it needs first, which also keeps it
 * for QMP add-fd and the raw consoles; fdwatch and the tap addon are loaded by
 * then; a later cd-insert goes without read-ahead (loadWillNeed: null).
 */
function confineProcess(host: CoreHost, restrict: boolean, confine: ReturnType<typeof planConfinement>, log: Logger): void {
  if (restrict) {
    if (host.restriction === undefined) throw new StartError('stubdm: -xen-domid-restrict: this host cannot restrict its handles');
    host.restriction.restrict();
    log.info({ domid: host.domid }, 'restricted to the guest (-xen-domid-restrict)');
  }
  if (confine.chroot !== null) {
    enterChroot(confine.chroot);
    log.info({ chroot: confine.chroot }, 'changed root (-chroot)');
  }
  if (confine.runas !== null) {
    dropPrivileges(confine.runas);
    log.info({ uid: confine.runas.uid, gid: confine.runas.gid }, 'dropped privileges (-runas)');
  }
}

/** Start the device model from a parsed config. Throws StartError for operator problems. */
export async function start(cfg: StubdmConfig, opts: StartOptions = {}): Promise<Dm> {
  const log = opts.log ?? createLogger(cfg.logLevel, cfg.logFormat);
  setRootLogger(log);
  // libxl 4.17 passes -xen-domid-restrict and -chroot (a dom0 path) into a
  // stub domain's argv as well, but not -runas or -S, and waits there for the
  // xenstore state key (libxl_dm.c libxl__build_device_model_args_new): in a
  // stub domain the domain itself is the confinement (Xen limits it to its
  // target), so both are reported and left alone (docs/xen-contract.md §17).
  const inStub = cfg.stubdom && !cfg.sim;
  if (inStub && (cfg.xenDomidRestrict || cfg.chroot !== null)) {
    log.warn({ chroot: cfg.chroot }, 'dm_restrict in a stub domain: -xen-domid-restrict and -chroot are not applied (the stub domain is the confinement)');
  }
  const restrict = cfg.xenDomidRestrict && !inStub;
  // -chroot/-runas are checked before anything opens: the user is looked up
  // now, while /etc/passwd is still reachable.
  let confine;
  try {
    confine = planConfinement(inStub ? null : cfg.chroot, cfg.runas);
  } catch (e) {
    throw new StartError(oneLine((e as Error).message));
  }

  // Every resource opened so far, closed in reverse if a later step fails.
  const undo: Array<() => unknown> = [];
  const unwind = async (): Promise<void> => {
    for (const f of undo.reverse()) {
      try {
        await f();
      } catch (err) {
        log.error({ err: String(err) }, 'teardown step failed');
      }
    }
  };

  try {
    const serials: CharBackend[] = [];
    for (const s of cfg.serials) {
      const b = await openChardev(s.id, s.spec, log.child({ c: 'chardev' }));
      serials.push(b);
      undo.push(() => b.close());
    }

    let sim: SimHost | null = null;
    let host: Host;
    if (cfg.sim) {
      try {
        sim = createSimHost({ ramBytes: cfg.ramMiB * 2 ** 20, vcpus: cfg.maxVcpus, domid: cfg.domid, clock: 'real' });
      } catch (e) {
        // The CLI bounds -m under --sim; what is left is this process not getting the memory.
        throw new StartError(`stubdm: --sim: cannot allocate ${cfg.ramMiB} MiB of guest RAM: ${(e as Error).message}`);
      }
      host = sim;
    } else {
      // The disk trace times the loop's idle waits (block/file.ts): only then is libuv's accounting kept.
      host = await openXen(cfg, log, restrict, !!opts.diskTrace);
    }
    undo.push(() => host.close());

    const board = new Board(host.memory, host.interrupts, host.power, host.routing, host.clock);
    // Timestamps from the devices' clock: performance.now() on Xen, so the tap's and the NIC's agree.
    const netTrace = opts.netTrace ? new NetTrace(opts.netTrace, () => board.clock.now()) : null;
    const diskTrace = opts.diskTrace ? new DiskTrace(opts.diskTrace, () => board.clock.now()) : null;
    // Taps are opened before state=running (libxl's hotplug script bridges them then) and
    // before -runas drops the privilege TUNSETIFF needs; the machine closes them.
    // Each NIC's option ROM (romfile=, QEMU's default efi-e1000.rom) first: a missing file stops
    // us before any tap exists. Read before -chroot/-runas too, from the operator's paths.
    const roms = new Map(planNetwork(cfg).nics.map((p) => [p.nic, loadRomfile(p.nic)] as const));
    const nics = await openNetwork(cfg, { log: log.child({ c: 'net' }), trace: netTrace });
    let pc: Pc;
    try {
      pc = await buildPc(board, cfg, log, serials, nics.map((n) => ({ ...n, rom: roms.get(n.nic) ?? null })), {
        vgaBios: cfg.devices.some((d) => d.driver === 'VGA') ? readVgaBios(log) : null,
        vram: host.vram ?? null,
        restoring: cfg.incoming !== null,
        netTrace,
        diskTrace,
      });
    } catch (e) {
      await Promise.all(nics.map((n) => n.backend.close()));
      throw e;
    }
    undo.push(() => pc.close());
    const uarts = pc.uarts;

    // The VNC server for the VGA (libxl's -vnc HOST:DISPLAY[,to=N][,password=on]).
    let vnc: VncServer | null = null;
    let vncPasswordWanted = false;
    const vncArg = cfg.vnc === null ? null : parseVncArgOrExit(cfg.vnc);
    if (vncArg !== null && pc.display !== null) {
      if (vncArg.password) {
        // VNC authentication is DES, which Node's OpenSSL 3 no longer has: serving the
        // screen without the password the operator asked for would be worse than no VNC.
        vncPasswordWanted = true;
        log.error({ vnc: cfg.vnc }, 'VNC with password=on is not supported yet: the VNC server stays off');
      } else {
        const i8042 = pc.i8042;
        vnc = new VncServer({
          ...vncArg,
          display: pc.display,
          onKey: (b) => void i8042.pressKey(b),
          onPointer: (dx, dy, dz, buttons) => i8042.moveMouse(dx, dy, dz, buttons),
          log: log.child({ c: 'vnc' }),
          name: cfg.name ?? 'stubdm',
        });
        try {
          const at = await vnc.listen();
          log.info(at, 'VNC server listening');
        } catch (e) {
          throw new StartError(`stubdm: ${(e as Error).message}`);
        }
        const v = vnc;
        undo.push(() => void v.close());
      }
    }

    // The stub domain's own screen and input (vnc=1: a vfb and vkb served by dom0's QEMU).
    // Not under --sim unless asked for with STUBDM_FBDEV: a developer's /dev/fb0 is not ours.
    const consolePaths = stubConsolePaths();
    if (pc.display !== null && cfg.stubdom && (!cfg.sim || process.env.STUBDM_FBDEV !== undefined)) {
      const i8042 = pc.i8042;
      const clog = log.child({ c: 'console' });
      let io = null;
      try {
        io = loadTapIo();
      } catch (e) {
        clog.warn({ err: (e as Error).message }, 'fdwatch addon not loaded');
      }
      const con = startStubConsole(pc.display, { key: (b) => void i8042.pressKey(b), pointer: (dx, dy, dz, b) => i8042.moveMouse(dx, dy, dz, b) }, io, clog, consolePaths);
      if (con !== null) undo.push(() => con.close());
    }

    const server = new IoreqServer(host, board, log.child({ c: 'ioreq' }));
    if (netTrace !== null) server.addTrace(netTrace);
    if (netTrace !== null) log.info({ entries: netTrace.capacity }, 'NIC event trace on (HMP info nettrace)');
    if (diskTrace !== null) server.addTrace(diskTrace);
    if (diskTrace !== null) log.info({ entries: diskTrace.capacity }, 'disk event trace on (HMP info disktrace)');
    server.start();
    undo.push(() => server.stop());

    // -incoming: load the saved device state now, before the ioreq server is
    // enabled and before QMP serves (libxl's first query-status must see the
    // loaded machine, `paused` under -S). A stream that is not a whole, valid
    // container of this configuration stops us here with one line: the guest
    // is never resumed on half-loaded state.
    if (cfg.incoming !== null && cfg.incoming.kind !== 'defer') {
      const inc = cfg.incoming;
      const t0 = performance.now();
      let fd: number;
      try {
        // In a stub domain the path is the restore console (hvc2): its first
        // open starts in cooked mode and dom0 is already feeding it, and cooked
        // input loses bytes once a line passes 4 KiB. The stream's filler
        // preamble covers the moment until raw mode, so nothing may sit between
        // the open and makeRaw: the native addon is loaded first (its first
        // load, from the stub's squashfs, took long enough on a busy host for
        // the container's header to be eaten: "bad magic" on an xl migrate).
        if (inc.kind === 'file') loadUnixSock();
        fd = inc.kind === 'fd' ? inc.fd : fs.openSync(inc.path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY);
        if (inc.kind === 'file') makeRaw(fd);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw new StartError(`stubdm: -incoming: cannot open ${inc.kind === 'file' ? inc.path : `fd ${inc.fd}`}: ${err.code ?? err.message}`);
      }
      try {
        const blob = await readState(fd, { timeoutMs: INCOMING_TIMEOUT_MS, makeRaw });
        pc.restore(blob);
        log.info({ bytes: blob.length, ms: Math.round(performance.now() - t0) }, 'device state restored (-incoming)');
      } catch (e) {
        if (e instanceof StateError || e instanceof MigrationError) throw new StartError(`stubdm: -incoming: ${e.message}`);
        throw new StartError(`stubdm: -incoming: ${(e as Error).message}`);
      } finally {
        try {
          fs.closeSync(fd); // QEMU closes the migration fd too; hvc2 is no use after the state
        } catch {
          // already closed
        }
      }
    }

    // Run state as QEMU keeps it: -S waits in prelaunch for `cont` (`paused`
    // after a restore); -incoming defer waits in inmigrate for the state.
    // Like QEMU, the ioreq server is enabled exactly while running (the vCPUs
    // stay paused by Xen until libxl unpauses them after `cont` anyway).
    let state: RunState =
      cfg.incoming?.kind === 'defer' ? 'inmigrate' : cfg.startPaused ? (cfg.incoming !== null ? 'paused' : 'prelaunch') : 'running';
    host.channel.setEnabled(state === 'running');
    // A load that failed part-way (QMP xen-load-devices-state): the devices
    // hold a mix of states, so this machine never runs again.
    let poisoned: string | null = null;
    let dirtyLog = false;

    const shutdownOnce = { started: null as Promise<number> | null };
    let resolveDone: (code: number) => void = () => {};
    const done = new Promise<number>((r) => (resolveDone = r));

    const qmpServers: QmpServer[] = [];
    // Read only when QMP or HMP asks (query-stats, info stats): the counters are the hot path's own.
    const statsSources = (): StatsSources => ({
      ioreq: server.stats,
      ioreqWait: () => host.channel.waitStats?.(),
      pio: board.pio,
      mmio: board.mmio,
      blockstats: () => pc.media.blockstats(),
      nics: () => nics.map((n) => ({ id: n.nic.id ?? n.netdev.id, stats: (n.backend as { stats?: object }).stats })),
      serials: () => cfg.serials.map((s, i) => ({ id: s.id, dropped: (serials[i] as { dropped?: number }).dropped })),
      cpu: () => ({ process: process.cpuUsage(), procStat: readProc('/proc/stat'), interrupts: readProc('/proc/interrupts') }),
    });
    const machine: QmpMachine = {
      runState: () => state,
      cont: () => {
        if (state === 'running') return;
        if (poisoned !== null) throw new MigrationError(`the device state failed to load (${poisoned}); this guest cannot resume`);
        if (state === 'inmigrate') throw new MigrationError('no device state loaded yet (-incoming defer): send migrate-incoming first');
        state = 'running';
        host.channel.setEnabled(true);
        markRunning();
        core.emit('RESUME');
      },
      stop: () => {
        if (state !== 'running') return;
        state = 'paused';
        host.channel.setEnabled(false);
        core.emit('STOP');
      },
      quit: () => {
        void dm.shutdown('QMP quit');
      },
      chardevs: (): ChardevInfo[] => [
        ...cfg.serials.map((s, i) => ({ label: s.id, filename: serials[i].filename, 'frontend-open': true })),
        ...cfg.monitors.map((m) => ({
          label: m.chardev,
          filename: m.path !== null ? `unix:${m.path},server=on` : `fd:${m.fd}`,
          'frontend-open': true,
        })),
      ],
      vcpus: cfg.vcpus,
      name: cfg.name,
      // libxc turns Xen's log-dirty mode on for a live save; pages our DMA
      // writes meanwhile are reported to Xen (HostMemory.setDirtyLog).
      setGlobalDirtyLog: (enable) => {
        dirtyLog = enable;
        host.memory.setDirtyLog(enable);
        log.info({ enable }, 'xen-set-global-dirty-log');
      },
      screendump: (format) => pc.screendump(format),
      // A stub domain's save console (fd set 1) is a cooked hvc tty until a save made it raw.
      rawOutput: (fd) => void (tty.isatty(fd) && makeRaw(fd)),
      vncInfo: () => {
        const a = vnc?.address;
        if (!a) return null;
        return { host: a.host, service: String(a.port), family: a.host.includes(':') ? 'ipv6' : 'ipv4', auth: 'none' };
      },
      // Accepted so that `xl create` with vncpasswd goes on; the server stays off (see above).
      changeVncPassword: () => {
        if (!vncPasswordWanted) log.warn('change-vnc-password: the VNC server has no password support; ignored');
      },
      // xl cd-eject / cd-insert (docs/xen-contract.md §11a).
      queryBlock: () => pc.media.query(),
      queryBlockstats: () => pc.media.blockstats(),
      queryStats: () => collectStats(statsSources()),
      eject: (device, id, force) => pc.media.eject(pc.media.find(device, id), force),
      changeMedium: (device, id, path, shownAs, format, force) => pc.media.change(pc.media.find(device, id), path, shownAs, format, force),
      // What QEMU does for a reset request under Xen: ask Xen to reboot the domain (the toolstack rebuilds it).
      systemReset: () => {
        log.info('system_reset (QMP/HMP): domain reboot requested');
        board.shutdown(SHUTDOWN_REBOOT);
      },
      // No systemWakeup: the PIIX4 PM refuses S3 (piix4-pm.ts), so no guest is ever suspended.
      sendKey: (names) => sendKey(pc.i8042, names),
      hmpInfo: {
        block: () => pc.media.hmpInfo(),
        blockstats: () => pc.media.hmpBlockstats(),
        stats: () => hmpInfoStats(collectStats(statsSources())),
        pci: () => hmpInfoPci(pc.platform),
        network: () => hmpInfoNetwork(cfg),
        restrict: () => hmpInfoRestrict(host),
        nettrace: () => (netTrace === null ? NETTRACE_OFF : formatNetTrace(netTrace)),
        disktrace: () => (diskTrace === null ? DISKTRACE_OFF : formatDiskTrace(diskTrace, undefined, host.memory.countersLine?.() ?? null)),
      },
      saveDevicesState: async (fd, live) => {
        const wasRunning = state === 'running';
        if (wasRunning) machine.stop(); // QEMU stops the vCPUs for the save and restarts them after
        try {
          const t0 = performance.now();
          const blob = await pc.save();
          // What the guest wrote reaches the images before we answer: the
          // other side may open them on another host (QEMU inactivates, that
          // is flushes, its images on a live save; docs/xen-contract.md §16).
          for (const b of pc.backends) {
            const err = await b.flush(); // IoResult: null, or what went wrong
            if (err !== null) throw new MigrationError(`flushing a disk image before the save failed: ${err}`);
          }
          // The guest's serial output up to the save reaches its backend too:
          // the UART sends at once, so every byte the guest wrote sits in the
          // chardev's batched writer, and in a stub domain the old stub (with
          // that writer) is destroyed after the save. Bounded: a stuck terminal
          // loses its bytes (as it would anyway) rather than the save.
          const unflushed = await flushAll(serials, SERIAL_FLUSH_MS);
          if (unflushed > 0) log.warn({ unflushed }, 'serial output not flushed before the save');
          const w = await writeState(fd, blob, { makeRaw });
          log.info({ bytes: blob.length, live, console: w.console, dirtyLog, ms: Math.round(performance.now() - t0), devices: recordSizes(blob) }, 'device state saved');
          return blob.length;
        } finally {
          if (wasRunning) machine.cont();
        }
      },
      loadDevicesState: async (fd) => {
        if (state === 'running') throw new MigrationError('Cannot update device state while vm is running');
        const t0 = performance.now();
        const blob = await readState(fd, { timeoutMs: INCOMING_TIMEOUT_MS, makeRaw });
        if ((state as RunState) === 'running') throw new MigrationError('the guest was started while its state was loading');
        decodeContainer(blob); // a bad container changes nothing: refused here, the machine stays usable
        try {
          pc.restore(blob);
        } catch (e) {
          // Past the container checks a refused device may leave others restored: never run this mix.
          poisoned = e instanceof Error ? e.message : String(e);
          throw e;
        }
        poisoned = null;
        log.info({ bytes: blob.length, ms: Math.round(performance.now() - t0) }, 'device state loaded (QMP)');
        if (state === 'inmigrate') {
          state = cfg.startPaused ? 'paused' : 'running';
          if (state === 'running') {
            host.channel.setEnabled(true);
            core.emit('RESUME');
          }
        }
      },
    };
    const qmpLog = log.child({ c: 'qmp' });
    const core = new QmpCore(
      machine,
      (command, err) => qmpLog.error({ command, err }, 'QMP command failed: internal error'),
      undefined,
      (command, cls, desc) => qmpLog.warn({ command: command ?? null, class: cls }, `QMP command failed: ${desc}`),
    );
    // -add-fd: descriptors we inherited, named /dev/fdset/<set> (the stub
    // domain's save console is set 1: docs/xen-contract.md §12).
    for (const a of cfg.addFds) {
      try {
        fs.fstatSync(a.fd);
        core.fdsets.add(a.fd, a.set, a.opaque, null);
      } catch (e) {
        throw new StartError(`stubdm: -add-fd fd=${a.fd},set=${a.set}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    undo.push(() => core.fdsets.closeAll());

    // libxl waits for this key (relative: works in dom0 and in a stub domain).
    const stateKey = `device-model/${cfg.domid}/state`;
    const markRunning = (): void => {
      if (restrict) return; // see below: libxl asks QMP instead
      if (host.store === null) {
        log.error('no xenstore connection: cannot write device-model state; libxl will time out');
        return;
      }
      if (!host.store.write(stateKey, 'running')) log.error({ key: stateKey }, 'writing device-model state to xenstore failed');
    };

    for (const m of cfg.monitors) {
      const srv = new QmpServer(core, log.child({ c: 'qmp' }), m.chardev);
      if (m.path !== null) await srv.listenPath(m.path);
      else await srv.listenFd(m.fd!);
      qmpServers.push(srv);
      undo.push(() => srv.close());
    }
    // Only now: libxl connects to the QMP socket as soon as it sees `running`
    // (real Xen 4.17: "Failed to connect to QMP socket ...: No such file or
    // directory" when the key came first). Restricted, like QEMU, never: the
    // xenstore handle is closed, and libxl (dm_restrict: -S and a QMP fd)
    // waits for query-status to say `prelaunch` instead (docs/xen-contract.md §17).
    if (!restrict) markRunning();

    // Everything is open (privcmd, evtchn, guest memory, images, taps, ROMs,
    // sockets, the native addons): restrict the Xen handles to the guest, then
    // -chroot (needs root), then -runas (QEMU's order: accel/xen/xen-all.c
    // xen_setup_post, then os_setup_post). Each failure stops us with one line.
    confineProcess(host, restrict, confine, log);

    const dm: Dm = {
      config: cfg,
      host,
      sim,
      board,
      pc,
      uarts,
      serials,
      qmp: core,
      ioreq: server,
      runState: () => state,
      done,
      shutdown(why: string): Promise<number> {
        if (shutdownOnce.started === null) {
          log.info({ why }, 'stopping');
          // What the guest cost us (ioreqs by type, faults): the e2e logs keep this line.
          log.info({ ...server.stats }, 'ioreq statistics');
          shutdownOnce.started = (async () => {
            core.emit('SHUTDOWN', { guest: false, reason: why.startsWith('SIG') ? 'host-signal' : 'host-qmp-quit' });
            await unwind();
            resolveDone(0);
            return 0;
          })();
        }
        return shutdownOnce.started;
      },
    };
    log.info(
      { domid: cfg.domid, sim: cfg.sim, stubdom: cfg.stubdom, vcpus: cfg.vcpus, ramMiB: cfg.ramMiB, state },
      'device model running',
    );
    return dm;
  } catch (err) {
    await unwind();
    if (err instanceof StartError) throw err;
    // Backend open failures (chardev, block, QMP socket) carry an operator message.
    if (
      err instanceof ChardevError ||
      err instanceof BlockOpenError ||
      err instanceof NetdevError ||
      err instanceof RomfileError ||
      err instanceof QmpServerError ||
      err instanceof RunasError ||
      err instanceof RestrictError
    ) {
      throw new StartError(oneLine(err.message));
    }
    throw err;
  }
}

/** The whole program: returns the exit code (the caller exits). */
export async function main(argv: readonly string[], opts: StartOptions = {}): Promise<number> {
  let parsed;
  try {
    parsed = await parseArgs(argv);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`stubdm: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (parsed.help !== null) {
    process.stdout.write(parsed.help + '\n');
    return 0;
  }
  // libxl's cap on what the guest can make us log (1 MiB): taken as the guest-triggered log budget.
  const limit = parseConsoleLimit(process.env.XEN_QEMU_CONSOLE_LIMIT);
  if (typeof limit === 'string') {
    process.stderr.write(`stubdm: ${limit}\n`);
    return 2;
  }
  if (limit !== null) setGuestLogBudget(limit);
  const netTrace = parseNetTraceEnv(process.env.STUBDM_NET_TRACE);
  if (typeof netTrace === 'string') {
    process.stderr.write(`stubdm: ${netTrace}\n`);
    return 2;
  }
  const diskTrace = parseDiskTraceEnv(process.env.STUBDM_DISK_TRACE);
  if (typeof diskTrace === 'string') {
    process.stderr.write(`stubdm: ${diskTrace}\n`);
    return 2;
  }
  const cfg = parsed.config;
  const log = opts.log ?? createLogger(cfg.logLevel, cfg.logFormat);
  for (const w of parsed.warnings) log.warn(w);

  let dm: Dm;
  try {
    dm = await start(cfg, { netTrace, diskTrace, ...opts, log });
  } catch (err) {
    if (err instanceof StartError) {
      process.stderr.write(oneLine(err.message) + '\n');
      return 1;
    }
    log.fatal({ err }, 'device model failed to start');
    return 1;
  }

  if (opts.signals !== false) {
    for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) {
      process.on(sig, () => {
        // A backend that never drains (a wedged terminal) must not keep a dying guest's DM alive.
        setTimeout(() => {
          log.error({ signal: sig }, `teardown did not finish in ${SHUTDOWN_GRACE_MS} ms; exiting anyway`);
          process.exit(1);
        }, SHUTDOWN_GRACE_MS).unref();
        void dm.shutdown(sig);
      });
    }
    // A device bug in an asynchronous callback must not kill the guest's device model
    // silently: log it and keep serving (the ioreq loop answers every request anyway).
    process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception (device model keeps running)'));
    process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection (device model keeps running)'));
  }
  return dm.done;
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`stubdm: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}

/** The host's /proc/stat (null where there is none): read only when QMP/HMP asks for stats. */
function readProc(path: string): string | null {
  try {
    return fs.readFileSync(path, 'latin1');
  } catch {
    return null;
  }
}
