/**
 * Host over the real Xen libraries: one ioreq server for one HVM guest.
 *
 * Registration follows QEMU's order (docs/xen-contract.md §6): open the handles,
 * create the server (buffered ioreqs, atomic pointer updates), map its two
 * pages with map_resource (frame 0 = buffered page, frame 1 = ioreq page),
 * read the buffered port, ENABLE the server, then bind one event channel per
 * vCPU plus the buffered one. Enabling comes before binding because Xen only
 * writes each vCPU's vp_eport into the shared page when the server is
 * enabled (xen/common/ioreq.c: ioreq_server_enable -> update_evtchn). The
 * guest is still paused then (libxl unpauses it once the device model
 * reports "running"), and nothing is routed to us until ranges are mapped.
 * channel.setEnabled(true) afterwards is harmless (Xen ignores a repeat);
 * setEnabled(false/true) toggles the server and pauses/resumes the fd watch.
 *
 * close() unmaps the shared pages: stop the ioreq engine first, since a
 * touch of ioreqPage/bufPage after close() is a segfault (koffi's external
 * ArrayBuffers cannot be detached).
 *
 * Everything after open() logs failures instead of throwing: a failed
 * hypercall must not kill the daemon serving a running guest.
 */
import type { Logger } from '../core/log.ts';
import { logger, RateLimited } from '../core/log.ts';
import {
  RestrictError,
  type Host,
  type HostMemory,
  type HostRestriction,
  type RestrictProbe,
  type Interrupts,
  type IoreqChannel,
  type IoreqRouting,
  type Power,
} from '../core/host.ts';
import { constants as osConstants } from 'node:os';
import {
  HVM_IOREQSRV_BUFIOREQ_ATOMIC,
  IOREQ_OFF_VP_EPORT,
  IOREQ_SIZE,
  PAGE_SIZE,
  XENMEM_RESOURCE_IOREQ_SERVER,
  XENMEM_RESOURCE_IOREQ_SERVER_FRAME_BUFIOREQ,
} from '../ioreq/abi.ts';
import { DOMID_FIRST_RESERVED, EAGAIN, HVM_BELOW_4G_RAM_END, HVM_MAX_VCPUS, PROT_READ, PROT_WRITE } from './consts.ts';
import { loadXenCtrl, loadXenLibs, XenUnavailableError, type Ptr, type XenLibs } from './ffi.ts';
import { XenVramProvider } from './vram.ts';
import type { VramProvider } from '../core/vram.ts';
import { ForeignPageMapper, MapCache } from './mapcache.ts';
import { XenStore } from './store.ts';
import { RealClock, type Clock } from '../core/clock.ts';
import {
  EVTCHN_A_COUNT,
  EVTCHN_A_ERRNO,
  EVTCHN_A_FAILED,
  EVTCHN_A_IN_PLACE,
  EVTCHN_A_PORT,
  EVTCHN_A_PORTS,
  EVTCHN_A_WAIT_US,
  EVTCHN_A_WAITS,
  EVTCHN_NOTIFY_FAILED,
  loadFdWatch,
  type FdWatch,
  type FdWatcher,
} from './native.ts';

/**
 * The domain the restriction probe aims at: the last id below the reserved
 * ones, which Xen (allocating from 1 upwards) does not reach in practice.
 */
const PROBE_DOMID = DOMID_FIRST_RESERVED - 1;

const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([k, v]) => [v, k] as const));

/** Ports one wake-up can take (more than vCPUs + the buffered port of any guest we serve). */
const EVTCHN_QUEUE = HVM_MAX_VCPUS + 1;

export interface XenHostOptions {
  domid: number;
  /** vCPUs to serve; default: ask Xen (xendevicemodel_nr_vcpus). */
  vcpus?: number;
  /** Guest RAM in bytes (the -m libxl passes). */
  ramBytes: number;
  log?: Logger;
  /** End of RAM below 4 GiB for big guests (max-ram-below-4g); default 0xF0000000. */
  lowMemLimit?: number;
  /** Mapcache bound, in 1 MiB buckets. */
  mapcacheBuckets?: number;
  /**
   * -xen-domid-restrict will follow: leave out what needs a handle opened
   * later (guest-page VRAM populates through libxenctrl on first use).
   */
  willRestrict?: boolean;
  /**
   * Keep libuv's idle-time accounting (performance.nodeTiming.idleTime: the
   * disk trace reads it). Default off: with it, every time the loop goes idle
   * (after each answer) libuv polls with a zero timeout before it blocks, one
   * epoll_pwait per ioreq that finds nothing (native/fdwatch.c says more).
   */
  loopIdleTime?: boolean;
  /**
   * How long the addon waits for a vCPU's next request right after answering
   * one, before the loop's other work (native/fdwatch.c, "Waiting in place"),
   * in microseconds; 0 turns it off. Default: $STUBDM_EVTCHN_WAIT_US, else
   * EVTCHN_WAIT_US_DEFAULT.
   */
  evtchnWaitUs?: number;
}

/**
 * Under TCG a vCPU's next access in a burst comes 0.2-0.5 ms after our
 * answer (pio_rtt_min_us, docs/benchmark.md); a wait that ends without one
 * costs one timer wake-up.
 */
export const EVTCHN_WAIT_US_DEFAULT = 1000;
/** The addon's own cap (EVTCHN_WAIT_MAX_US). */
const EVTCHN_WAIT_US_MAX = 20000;

function evtchnWaitUs(opts: XenHostOptions): number {
  const env = process.env.STUBDM_EVTCHN_WAIT_US;
  const v = opts.evtchnWaitUs ?? (env !== undefined && env !== '' ? Number(env) : EVTCHN_WAIT_US_DEFAULT);
  if (!Number.isInteger(v) || v < 0 || v > EVTCHN_WAIT_US_MAX) {
    throw new XenUnavailableError(
      `stubdm: bad STUBDM_EVTCHN_WAIT_US ${JSON.stringify(env ?? opts.evtchnWaitUs)}: give 0-${EVTCHN_WAIT_US_MAX} microseconds (0 turns waiting in place off)`,
    );
  }
  return v;
}

/** Substitutes for tests (a fake below the FFI line). */
export interface XenHostDeps {
  libs?: XenLibs;
  fdwatch?: FdWatch;
}

/** Guest RAM bound for option checking: 16 TiB, far above what Xen builds HVM guests with. */
const MAX_RAM_BYTES = 2 ** 44;

/** The Xen host, with the platform calls VGA and migration will need later. */
export interface XenHost extends Host {
  readonly ioservid: number;
  /** Xenstore with mkdir/rm/watch, or null when xs_open failed. */
  readonly store: XenStore | null;
  readonly clock: Clock;
  readonly restriction: HostRestriction;
  /** xendevicemodel_relocate_memory (VRAM BAR moves). */
  relocateMemory(pages: number, srcGfn: number, dstGfn: number): boolean;
  /** xendevicemodel_pin_memory_cacheattr (XEN_DMOP_MEM_CACHEATTR_*), inclusive gfns. */
  pinMemoryCacheattr(startGfn: number, endGfn: number, type: number): boolean;
  /** xendevicemodel_set_mem_type (HVMMEM_*). */
  setMemType(memType: number, firstPfn: number, nr: number): boolean;
  /** xendevicemodel_modified_memory (dirty log during migration). */
  modifiedMemory(firstPfn: number, nr: number): boolean;
  /** xendevicemodel_track_dirty_vram; bitmap null with nr 0 turns tracking off. */
  trackDirtyVram(firstPfn: number, nr: number, bitmap: BigUint64Array | null): boolean;
}

export function openXenHost(opts: XenHostOptions, deps: XenHostDeps = {}): XenHost {
  const { domid } = opts;
  if (!Number.isInteger(domid) || domid < 1 || domid >= DOMID_FIRST_RESERVED) {
    throw new XenUnavailableError(`stubdm: bad guest domain id ${domid}: give the HVM guest's domid (1-${DOMID_FIRST_RESERVED - 1})`);
  }
  if (!Number.isSafeInteger(opts.ramBytes) || opts.ramBytes < PAGE_SIZE || opts.ramBytes > MAX_RAM_BYTES) {
    throw new XenUnavailableError(`stubdm: bad guest RAM size ${opts.ramBytes}: give the guest's memory in bytes`);
  }
  if (opts.vcpus !== undefined && (!Number.isInteger(opts.vcpus) || opts.vcpus < 1 || opts.vcpus > HVM_MAX_VCPUS)) {
    throw new XenUnavailableError(`stubdm: bad vCPU count ${opts.vcpus}: an HVM guest has 1-${HVM_MAX_VCPUS}`);
  }
  const lowMem = opts.lowMemLimit;
  if (lowMem !== undefined && (!Number.isSafeInteger(lowMem) || lowMem <= 0 || lowMem > 2 ** 32 || lowMem % PAGE_SIZE !== 0)) {
    throw new XenUnavailableError(`stubdm: bad low-memory limit ${lowMem}: give a page-aligned address at or below 4 GiB`);
  }
  const buckets = opts.mapcacheBuckets;
  if (buckets !== undefined && (!Number.isInteger(buckets) || buckets < 1)) {
    throw new XenUnavailableError(`stubdm: bad mapcache size ${buckets}: give a positive number of 1 MiB buckets`);
  }
  const waitUs = evtchnWaitUs(opts);
  const libs = deps.libs ?? loadXenLibs();
  libs.checkPrivcmd();
  const fdwatch = deps.fdwatch ?? loadFdWatch();
  return new XenHostImpl({ ...opts, evtchnWaitUs: waitUs }, libs, fdwatch, opts.log ?? logger('xen'));
}

class XenHostImpl implements XenHost {
  readonly domid: number;
  readonly interrupts: Interrupts;
  readonly power: Power;
  readonly routing: IoreqRouting;
  readonly channel: IoreqChannel;
  readonly memory: HostMemory;
  private xs: XenStore | null;
  readonly clock: Clock = new RealClock();
  readonly restriction: HostRestriction;
  private restrictedTo = false;
  /** Guest-page VRAM, opt-in until it has run on real Xen (STUBDM_VRAM=guest; src/xen/vram.ts). */
  readonly vram?: VramProvider;
  ioservid = -1;

  private dmh: Ptr | null = null;
  private fmemh: Ptr | null = null;
  private xceh: Ptr | null = null;
  private fres: Ptr | null = null;
  private serverCreated = false;
  private enabled = false;
  private readonly bound: number[] = [];
  private mapcache: MapCache | null = null;
  private watcher: FdWatcher | null = null;
  /** The engine's callback, kept while the server is disabled so enabling resumes the watch. */
  private onEvent: (() => void) | null = null;
  /** Logs notifies of queued answers that failed since the last look (set by makeChannel). */
  private reportNotifyFailures: () => void = () => {};
  private closed = false;
  private readonly rl: RateLimited;

  constructor(
    opts: XenHostOptions,
    private readonly libs: XenLibs,
    private readonly fdwatch: FdWatch,
    private readonly log: Logger,
  ) {
    this.domid = opts.domid;
    this.rl = new RateLimited(log);
    try {
      this.channel = this.setUp(opts);
    } catch (e) {
      this.close();
      throw e;
    }
    this.memory = this.mapcache!;
    if (opts.loopIdleTime !== true && fdwatch.setLoopIdleTime(false) < 0) {
      log.info("libuv's idle-time accounting stays on (a libuv the fdwatch addon does not know): one more epoll per ioreq");
    }
    this.xs = this.openStore();
    const host = this; // the getter below has its own `this`
    this.restriction = {
      restrict: () => host.restrict(),
      get restricted() {
        return host.restrictedTo;
      },
      probe: () => host.probe(),
    };
    this.interrupts = this.makeInterrupts();
    this.power = {
      shutdown: (reason) => {
        const h = this.dmh;
        if (h === null) {
          this.log.error({ reason }, 'shutdown requested after close');
        } else if (libs.dm.shutdown(h, this.domid, reason) !== 0) {
          this.log.error({ reason, errno: libs.errno() }, 'xendevicemodel_shutdown failed');
        }
      },
    };
    this.routing = this.makeRouting();
    if (process.env.STUBDM_VRAM === 'guest' && opts.willRestrict === true) {
      // libxenctrl would be opened after the restriction (unrestricted), and its
      // populate hypercall is refused by a restricted privcmd anyway.
      log.warn('STUBDM_VRAM=guest is ignored with -xen-domid-restrict: the VGA keeps its VRAM in stubdm');
    } else if (process.env.STUBDM_VRAM === 'guest') {
      this.vram = new XenVramProvider({
        domid: this.domid,
        ramBytes: opts.ramBytes,
        lowMemLimit: opts.lowMemLimit ?? HVM_BELOW_4G_RAM_END,
        libs,
        fmemHandle: () => this.fmemh,
        ctrl: loadXenCtrl,
        platform: this,
        log: log.child({ c: 'vram' }),
      });
    }
  }

  get store(): XenStore | null {
    return this.xs;
  }

  /**
   * xentoolcore_restrict_all: the devicemodel and foreignmemory privcmd fds
   * get IOCTL_PRIVCMD_RESTRICT, the event channel fd IOCTL_EVTCHN_RESTRICT_DOMID,
   * and libxenstore's (and libxencall's) fds become /dev/null
   * (tools/libs/*: all_restrict_cb). So xenstore is closed first: its fd
   * watch would otherwise poll /dev/null, and nothing after start-up needs it
   * (QEMU skips its state writes when restricted: accel/xen/xen-all.c). koffi
   * loads libxentoolcore.so.1 by soname, the same copy the other libraries
   * registered their handles with.
   */
  private restrict(): void {
    if (this.restrictedTo) return;
    if (this.closed) throw new RestrictError('stubdm: -xen-domid-restrict: the Xen handles are already closed');
    const st = this.xs;
    this.xs = null;
    st?.close();
    if (this.libs.toolcore.restrict_all(this.domid) !== 0) {
      const errno = this.libs.errno();
      throw new RestrictError(
        `stubdm: -xen-domid-restrict: xentoolcore_restrict_all(${this.domid}) failed (${this.libs.libc.strerror(errno)}): ` +
          'needs a dom0 kernel whose privcmd and evtchn devices support restriction (Linux 4.11 or newer)',
      );
    }
    this.restrictedTo = true;
  }

  private probe(): RestrictProbe {
    const { dm, fmem, evtchn } = this.libs;
    const other = PROBE_DOMID;
    const name = (rc: number, errno: number): string => (rc === 0 ? 'ok' : (ERRNO_NAMES.get(errno) ?? `errno ${errno}`));
    const n = new Uint32Array(1);
    const result: RestrictProbe = {
      restricted: this.restrictedTo,
      domid: this.domid,
      guest: 'closed',
      otherDomid: other,
      dmOp: 'closed',
      map: 'closed',
      evtchn: 'closed',
    };
    if (this.dmh !== null) {
      result.guest = name(dm.nr_vcpus(this.dmh, this.domid, n), this.libs.errno());
      result.dmOp = name(dm.nr_vcpus(this.dmh, other, n), this.libs.errno());
    }
    if (this.fmemh !== null) {
      const gfn = new BigUint64Array(1);
      const err = new Int32Array(1);
      const p = fmem.map(this.fmemh, other, PROT_READ, 1, gfn, err);
      if (p === null) {
        result.map = name(-1, this.libs.errno());
      } else {
        // A mapping came back (unrestricted: the per-page error says why it is empty).
        result.map = err[0] === 0 ? 'ok' : name(-1, -err[0]);
        fmem.unmap(this.fmemh, p, 1);
      }
    }
    if (this.xceh !== null) {
      const port = evtchn.bind_interdomain(this.xceh, other, 1);
      if (port >= 0) {
        evtchn.unbind(this.xceh, port);
        result.evtchn = 'ok';
      } else {
        result.evtchn = name(-1, this.libs.errno());
      }
    }
    return result;
  }

  private fail(what: string, hint: string, errno = this.libs.errno()): never {
    throw new XenUnavailableError(`stubdm: ${what} failed (${this.libs.libc.strerror(errno)}): ${hint}`);
  }

  private setUp(opts: XenHostOptions): IoreqChannel {
    const { dm, fmem, evtchn } = this.libs;
    const domid = this.domid;
    const privHint = 'run as root in dom0 or in the stub domain of this guest';

    this.dmh = dm.open(null, 0);
    if (this.dmh === null) this.fail('xendevicemodel_open', privHint);
    this.fmemh = fmem.open(null, 0);
    if (this.fmemh === null) this.fail('xenforeignmemory_open', privHint);
    this.xceh = evtchn.open(null, 0);
    if (this.xceh === null) this.fail('xenevtchn_open', 'load xen-evtchn (/dev/xen/evtchn) and run as root');

    const id = new Uint16Array(1);
    if (dm.create_ioreq_server(this.dmh, domid, HVM_IOREQSRV_BUFIOREQ_ATOMIC, id) !== 0) {
      this.fail(`creating an ioreq server for domain ${domid}`, 'check the domain exists, is HVM, and this domain may serve it');
    }
    this.serverCreated = true;
    this.ioservid = id[0];

    const paddr: (Ptr | null)[] = [null];
    this.fres = fmem.map_resource(
      this.fmemh,
      domid,
      XENMEM_RESOURCE_IOREQ_SERVER,
      this.ioservid,
      XENMEM_RESOURCE_IOREQ_SERVER_FRAME_BUFIOREQ,
      2,
      paddr,
      PROT_READ | PROT_WRITE,
      0,
    );
    if (this.fres === null || paddr[0] === null) {
      this.fres = null;
      this.fail('mapping the ioreq server pages (xenforeignmemory_map_resource)', 'Xen 4.11 or newer with resource mapping is required');
    }
    const base = paddr[0];
    const bufPage = this.libs.view(base, PAGE_SIZE);
    const ioreqPage = this.libs.view(base + BigInt(PAGE_SIZE), PAGE_SIZE);

    const bufPortRemote = new Uint32Array(1);
    if (dm.get_ioreq_server_info(this.dmh, domid, this.ioservid, null, null, bufPortRemote) !== 0) {
      this.fail('xendevicemodel_get_ioreq_server_info', 'the ioreq server vanished; is the guest being destroyed?');
    }

    let vcpus = opts.vcpus;
    if (vcpus === undefined) {
      const n = new Uint32Array(1);
      if (dm.nr_vcpus(this.dmh, domid, n) !== 0) this.fail('xendevicemodel_nr_vcpus', 'pass the vCPU count explicitly');
      vcpus = n[0];
      if (vcpus < 1 || vcpus > HVM_MAX_VCPUS) {
        throw new XenUnavailableError(`stubdm: Xen reports ${vcpus} vCPUs for domain ${domid}: an HVM guest has 1-${HVM_MAX_VCPUS}`);
      }
    }

    // vp_eport is written by Xen on enable (see the file comment).
    const stateErrno = this.setState(true);
    if (!this.enabled) this.fail('enabling the ioreq server (xendevicemodel_set_ioreq_server_state)', privHint, stateErrno);

    const words = new Uint32Array(ioreqPage);
    const vcpuPorts: number[] = [];
    for (let v = 0; v < vcpus; v++) {
      const remote = words[(v * IOREQ_SIZE + IOREQ_OFF_VP_EPORT) / 4];
      if (remote === 0) {
        // Port 0 is never a valid event channel: Xen has no such vCPU (or did not publish it).
        throw new XenUnavailableError(
          `stubdm: Xen published no event channel for vCPU ${v} of domain ${domid}: the guest has fewer vCPUs than ${vcpus}; fix the vCPU count`,
        );
      }
      const local = evtchn.bind_interdomain(this.xceh, domid, remote);
      if (local < 0) this.fail(`binding vCPU ${v}'s event channel ${remote} (xenevtchn_bind_interdomain)`, 'is the domain still alive?');
      this.bound.push(local);
      vcpuPorts.push(local);
    }
    const bufPort = evtchn.bind_interdomain(this.xceh, domid, bufPortRemote[0]);
    if (bufPort < 0) this.fail(`binding the buffered ioreq event channel ${bufPortRemote[0]}`, 'is the domain still alive?');
    this.bound.push(bufPort);

    const fd = evtchn.fd(this.xceh);
    if (fd < 0) this.fail('xenevtchn_fd', 'the event channel device is unusable');

    this.mapcache = new MapCache(
      new ForeignPageMapper(this.libs, () => this.fmemh, domid, (what, errno) =>
        this.rl.warn({ errno, err: this.libs.libc.strerror(errno) }, `${what} failed`),
      ),
      {
        ramBytes: opts.ramBytes,
        lowMemLimit: opts.lowMemLimit,
        maxBuckets: opts.mapcacheBuckets,
        // Dirty logging during live migration (docs/xen-contract.md §16); failures are logged by dmCall.
        onDirty: (firstPfn, nr) => void this.modifiedMemory(firstPfn, nr),
      },
    );

    this.log.info(
      { domid, ioservid: this.ioservid, vcpus, vcpuPorts, bufPort, remoteBufPort: bufPortRemote[0] },
      'ioreq server ready',
    );
    return this.makeChannel(vcpus, ioreqPage, bufPage, vcpuPorts, bufPort, fd, opts.evtchnWaitUs ?? EVTCHN_WAIT_US_DEFAULT);
  }

  private pauseWatch(): void {
    const w = this.watcher;
    this.watcher = null;
    if (w === null) return;
    w.stop(); // notifies the answers still queued
    this.reportNotifyFailures();
  }

  /** Returns 0, or the errno of the failed call (read before logging can clobber it). */
  private setState(on: boolean): number {
    if (this.dmh === null || !this.serverCreated) return 0;
    if (this.libs.dm.set_ioreq_server_state(this.dmh, this.domid, this.ioservid, on ? 1 : 0) !== 0) {
      const errno = this.libs.errno();
      this.log.error({ enabled: on, errno }, 'xendevicemodel_set_ioreq_server_state failed');
      return errno;
    }
    this.enabled = on;
    return 0;
  }

  private makeChannel(
    vcpus: number,
    ioreqPage: ArrayBuffer,
    bufPage: ArrayBuffer,
    vcpuPorts: number[],
    bufPort: number,
    fd: number,
    waitUs: number,
  ): IoreqChannel {
    const fw = this.fdwatch;
    /*
     * The event channel goes through the fdwatch addon, not libxenevtchn
     * (native/fdwatch.c says why): on a wake-up the addon has already read
     * every pending port into `queue` and unmasked all of them but the
     * buffered port (the ioreq server unmasks that one itself once its ring
     * is empty), so pending() hands them out of the queue without a syscall,
     * unmask() of a vCPU port costs nothing. Inside a callback notify()
     * appends the port to `answers`, which the addon notifies (one ioctl
     * each) once the callback has returned: no N-API call per answer;
     * outside one (start, stop, a recheck from setImmediate) it is one
     * N-API call and the ioctl. Inside a callback, an empty queue means -1
     * (uv_poll is level-triggered: anything that arrived since calls back on
     * the next loop turn, where looking here would cost a read that almost
     * always finds nothing with a single vCPU waiting for our answer);
     * outside, pending() reads once more.
     */
    const queue = new Uint32Array(1 + EVTCHN_QUEUE);
    const answers = new Uint32Array(EVTCHN_A_PORTS + EVTCHN_QUEUE);
    answers[EVTCHN_A_WAIT_US] = waitUs;
    let head = 0;
    /** The watch whose callback is running, or null outside one. */
    let inCallback: FdWatcher | null = null;
    let failuresSeen = 0;
    this.reportNotifyFailures = () => {
      const n = answers[EVTCHN_A_FAILED];
      if (n === failuresSeen) return;
      this.rl.warn(
        { port: answers[EVTCHN_A_PORT], errno: answers[EVTCHN_A_ERRNO], failed: (n - failuresSeen) >>> 0 },
        'event channel notify failed',
      );
      failuresSeen = n;
    };
    fw.setNonblock(fd);
    const take = (): number => {
      if (head < queue[0]) return queue[1 + head++];
      queue[0] = 0;
      head = 0;
      return -1;
    };
    const startWatch = (onEvent: () => void): void => {
      const w: FdWatcher = fw.evtchnWatch(fd, queue, bufPort, answers, (status) => {
        if (status !== undefined) {
          if (status === EVTCHN_NOTIFY_FAILED) return this.reportNotifyFailures();
          this.log.error({ status }, 'event channel fd failed; no more ioreqs will be served');
          this.pauseWatch();
          this.onEvent = null;
          return;
        }
        inCallback = w;
        try {
          onEvent();
        } catch (e) {
          // A bug in the engine must not take the guest's device model down.
          this.rl.warn({ err: (e as Error).message }, 'ioreq event handler threw');
        } finally {
          inCallback = null;
        }
      });
      this.watcher = w;
    };
    // Handles are read at call time: after close() they are null and every call is a no-op.
    return {
      vcpus,
      ioreqPage,
      bufPage,
      vcpuPorts,
      bufPort,
      // The fd watch follows the server state: uv_poll is level-triggered, so
      // a port left pending while the engine is stopped would otherwise wake
      // the loop on every turn. Disabling stops it; enabling resumes it (and
      // anything still pending fires at once).
      setEnabled: (on) => {
        this.setState(on);
        if (!on) this.pauseWatch();
        else if (this.onEvent !== null && this.watcher === null) startWatch(this.onEvent);
      },
      watch: (onEvent) => {
        if (this.closed) return;
        this.onEvent = onEvent;
        this.pauseWatch();
        if (this.enabled) startWatch(onEvent);
      },
      pending: () => {
        if (this.xceh === null) return -1;
        const p = take();
        if (p !== -1 || inCallback !== null) return p;
        const n = fw.evtchnFill(fd, queue, bufPort);
        if (n < 0) {
          this.rl.warn({ errno: -n }, 'reading the event channel device failed');
          return -1;
        }
        return take();
      },
      unmask: (port) => {
        // Every port but the buffered one was unmasked when it was read.
        if (port !== bufPort || this.xceh === null) return;
        const r = fw.evtchnUnmask(fd, port);
        if (r < 0) this.rl.warn({ port, errno: -r }, 'event channel unmask failed');
      },
      waitStats: () => ({ waits: answers[EVTCHN_A_WAITS], inPlace: answers[EVTCHN_A_IN_PLACE] }),
      notify: (port) => {
        if (this.xceh === null) return;
        // In the callback of the watch that is on, the addon notifies once it returns (a
        // watch paused inside it has notified what was queued, and does nothing after).
        const n = answers[EVTCHN_A_COUNT];
        if (inCallback !== null && inCallback === this.watcher && n < EVTCHN_QUEUE) {
          answers[EVTCHN_A_PORTS + n] = port;
          answers[EVTCHN_A_COUNT] = n + 1;
          return;
        }
        const r = fw.evtchnNotify(fd, port);
        if (r < 0) this.rl.warn({ port, errno: -r }, 'event channel notify failed');
      },
    };
  }

  private makeInterrupts(): Interrupts {
    const { dm } = this.libs;
    const domid = this.domid;
    return {
      setIsaIrqLevel: (irq, level) => {
        const h = this.dmh;
        if (h !== null && dm.set_isa_irq_level(h, domid, irq, level) !== 0) {
          this.rl.warn({ irq, level, errno: this.libs.errno() }, 'xendevicemodel_set_isa_irq_level failed');
        }
      },
      setPciIntxLevel: (device, intx, level) => {
        const h = this.dmh;
        if (h !== null && dm.set_pci_intx_level(h, domid, 0, 0, device, intx, level) !== 0) {
          this.rl.warn({ device, intx, level, errno: this.libs.errno() }, 'xendevicemodel_set_pci_intx_level failed');
        }
      },
      setPciLinkRoute: (link, irq) => {
        const h = this.dmh;
        if (h !== null && dm.set_pci_link_route(h, domid, link, irq) !== 0) {
          this.rl.warn({ link, irq, errno: this.libs.errno() }, 'xendevicemodel_set_pci_link_route failed');
        }
      },
      injectMsi: (addr, data) => {
        const h = this.dmh;
        if (h !== null && dm.inject_msi(h, domid, addr, data >>> 0) !== 0) {
          this.rl.warn({ addr, data, errno: this.libs.errno() }, 'xendevicemodel_inject_msi failed');
        }
      },
    };
  }

  private makeRouting(): IoreqRouting {
    const { dm } = this.libs;
    const domid = this.domid;
    const id = this.ioservid;
    const call = (what: string, ctx: object, fn: (h: Ptr) => number): void => {
      const h = this.dmh;
      if (h === null) return;
      if (fn(h) !== 0) this.log.error({ ...ctx, errno: this.libs.errno() }, `${what} failed`);
    };
    return {
      mapIoRange: (kind, start, end) =>
        call('xendevicemodel_map_io_range_to_ioreq_server', { kind, start, end }, (h) =>
          dm.map_io_range_to_ioreq_server(h, domid, id, kind, start, end),
        ),
      unmapIoRange: (kind, start, end) =>
        call('xendevicemodel_unmap_io_range_from_ioreq_server', { kind, start, end }, (h) =>
          dm.unmap_io_range_from_ioreq_server(h, domid, id, kind, start, end),
        ),
      mapPcidev: (device, fn) =>
        call('xendevicemodel_map_pcidev_to_ioreq_server', { device, fn }, (h) =>
          dm.map_pcidev_to_ioreq_server(h, domid, id, 0, 0, device, fn),
        ),
      unmapPcidev: (device, fn) =>
        call('xendevicemodel_unmap_pcidev_from_ioreq_server', { device, fn }, (h) =>
          dm.unmap_pcidev_from_ioreq_server(h, domid, id, 0, 0, device, fn),
        ),
    };
  }

  private openStore(): XenStore | null {
    const h = this.libs.xs.open(0);
    if (h === null) {
      this.log.warn({ errno: this.libs.errno() }, 'xs_open failed: running without xenstore');
      return null;
    }
    return new XenStore(this.libs, h, this.fdwatch, this.log);
  }

  // -- platform calls -------------------------------------------------------

  private dmCall(what: string, ctx: object, fn: (h: Ptr) => number): boolean {
    const h = this.dmh;
    if (h === null) return false;
    if (fn(h) === 0) return true;
    this.log.warn({ ...ctx, errno: this.libs.errno() }, `${what} failed`);
    return false;
  }

  relocateMemory(pages: number, srcGfn: number, dstGfn: number): boolean {
    return this.dmCall('xendevicemodel_relocate_memory', { pages, srcGfn, dstGfn }, (h) =>
      this.libs.dm.relocate_memory(h, this.domid, pages, srcGfn, dstGfn),
    );
  }

  pinMemoryCacheattr(startGfn: number, endGfn: number, type: number): boolean {
    return this.dmCall('xendevicemodel_pin_memory_cacheattr', { startGfn, endGfn, type }, (h) =>
      this.libs.dm.pin_memory_cacheattr(h, this.domid, startGfn, endGfn, type),
    );
  }

  setMemType(memType: number, firstPfn: number, nr: number): boolean {
    return this.dmCall('xendevicemodel_set_mem_type', { memType, firstPfn, nr }, (h) =>
      this.libs.dm.set_mem_type(h, this.domid, memType, firstPfn, nr),
    );
  }

  modifiedMemory(firstPfn: number, nr: number): boolean {
    return this.dmCall('xendevicemodel_modified_memory', { firstPfn, nr }, (h) =>
      this.libs.dm.modified_memory(h, this.domid, firstPfn, nr),
    );
  }

  trackDirtyVram(firstPfn: number, nr: number, bitmap: BigUint64Array | null): boolean {
    // Called on every display refresh: no closure or context object unless it fails, and a
    // failure that repeats on each refresh is logged at a bounded rate.
    if (bitmap !== null && bitmap.length * 64 < nr) return false;
    const h = this.dmh;
    if (h === null) return false;
    if (this.libs.dm.track_dirty_vram(h, this.domid, firstPfn, nr, bitmap) === 0) return true;
    this.rl.warn({ firstPfn, nr, errno: this.libs.errno() }, 'xendevicemodel_track_dirty_vram failed');
    return false;
  }

  // -- teardown -------------------------------------------------------------

  /**
   * Disable and destroy the server, unmap, unbind, close. Idempotent; logs,
   * never throws. The ioreq engine must be stopped first: the shared pages
   * are unmapped here and touching them afterwards is a segfault.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const { dm, fmem, evtchn, xs } = this.libs;
    const step = (what: string, fn: () => number | void): void => {
      try {
        const rc = fn();
        if (typeof rc === 'number' && rc !== 0) this.log.warn({ errno: this.libs.errno() }, `${what} failed during close`);
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, `${what} threw during close`);
      }
    };
    this.onEvent = null;
    step('stopping the event channel watch', () => this.pauseWatch());
    if (this.dmh !== null && this.serverCreated) {
      const h = this.dmh;
      if (this.enabled) step('xendevicemodel_set_ioreq_server_state(0)', () => dm.set_ioreq_server_state(h, this.domid, this.ioservid, 0));
      this.enabled = false;
      step('xendevicemodel_destroy_ioreq_server', () => dm.destroy_ioreq_server(h, this.domid, this.ioservid));
      this.serverCreated = false;
    }
    if (this.fres !== null && this.fmemh !== null) {
      const [h, r] = [this.fmemh, this.fres];
      step('xenforeignmemory_unmap_resource', () => fmem.unmap_resource(h, r));
      this.fres = null;
    }
    if (this.xceh !== null) {
      const h = this.xceh;
      for (const port of this.bound.splice(0)) step(`xenevtchn_unbind(${port})`, () => evtchn.unbind(h, port));
    }
    if (this.mapcache !== null) {
      const mc = this.mapcache;
      this.log.info({ ...mc.stats, mapped: mc.mapped, maxBuckets: mc.maxBuckets }, 'mapcache statistics');
      step('unmapping guest memory', () => mc.invalidate());
    }
    if (this.xs) { // unset when the constructor failed, or closed by restrict()
      const st = this.xs;
      this.xs = null;
      step('xs_close', () => st.close());
    }
    if (this.xceh !== null) {
      const h = this.xceh;
      this.xceh = null;
      step('xenevtchn_close', () => evtchn.close(h));
    }
    if (this.fmemh !== null) {
      const h = this.fmemh;
      this.fmemh = null;
      step('xenforeignmemory_close', () => fmem.close(h));
    }
    if (this.dmh !== null) {
      const h = this.dmh;
      this.dmh = null;
      step('xendevicemodel_close', () => dm.close(h));
    }
  }
}
