// A fake of the Xen libraries below the FFI line (XenLibs) and of the
// fdwatch addon, for openXenHost tests: records every call, behaves like Xen
// where the host depends on it (vp_eport appears on enable, per-call errno).
import { pino } from 'pino';
import { openXenHost, XenUnavailableError } from '../../src/xen/index.ts';
import type { Ptr, XenLibs } from '../../src/xen/ffi.ts';
import { EVTCHN_A_COUNT, EVTCHN_A_ERRNO, EVTCHN_A_FAILED, EVTCHN_A_PORT, EVTCHN_A_PORTS, EVTCHN_NOTIFY_FAILED, type FdWatch } from '../../src/xen/native.ts';
import { IOREQ_OFF_VP_EPORT, IOREQ_SIZE, PAGE_SIZE } from '../../src/ioreq/abi.ts';

export const quiet = pino({ level: 'silent' });

export const DMH = 0x1000n;
const FMEMH = 0x2000n;
const XCEH = 0x3000n;
const XSH = 0x4000n;
const FRES = 0x5000n;
const RES_BASE = 0x7000_0000n;

export type Call = [string, ...unknown[]];

export class Fake {
  calls: Call[] = [];
  errno = 0;
  fail = new Set<string>();
  nrVcpus = 2;
  bufPage = new ArrayBuffer(PAGE_SIZE);
  ioreqPage = new ArrayBuffer(PAGE_SIZE);
  pendingPorts: number[] = [];
  /** errno the event channel read fails with (0: it works). */
  failRead = 0;
  /** What evtchnNotify returns (0, or -errno). */
  failNotify = 0;
  watchers: { fd: number; cb: (s: number) => void; stopped: boolean }[] = [];
  /** The answers array of the last evtchnWatch (its header carries the wait in place the host asked for). */
  answers: Uint32Array | null = null;
  private views = new Map<bigint, ArrayBuffer>();
  private strings = new Map<bigint, string>();
  private nextPtr = 0x9000_0000n;
  freed: bigint[] = [];
  xsData = new Map<string, string>([['device-model/5/state', 'running']]);
  xsDirs = new Map<string, string[]>([['device-model/5', ['state', 'command']]]);
  xsEvents: [string, string][] = [];
  /** The domain xentoolcore_restrict_all limited the handles to (null: unrestricted). */
  restrictedTo: number | null = null;
  /** Domains that exist (others answer ESRCH, as Xen does). */
  domains = new Set([0, 5, 7]);

  /**
   * The kernel's and Xen's answer for a call on `domid`: 0, or an errno
   * (privcmd/evtchn refuse another domain on a restricted fd: EPERM).
   */
  reach(domid: number): number {
    if (this.restrictedTo !== null && domid !== this.restrictedTo) return 1; // EPERM
    return this.domains.has(domid) ? 0 : 3; // ESRCH
  }

  rec(name: string, ...args: unknown[]): void {
    this.calls.push([name, ...args]);
  }
  rc(name: string): number {
    if (this.fail.has(name)) {
      this.errno = 3; // ESRCH
      return -1;
    }
    return 0;
  }
  alloc(ab: ArrayBuffer): bigint {
    const p = this.nextPtr;
    this.nextPtr += 0x10000n;
    this.views.set(p, ab);
    return p;
  }

  libs(): XenLibs {
    const f = this;
    const handle = (name: string, h: Ptr) => (): Ptr | null => {
      f.rec(name);
      if (f.fail.has(name)) {
        f.errno = 2;
        return null;
      }
      return h;
    };
    return {
      dm: {
        open: handle('xendevicemodel_open', DMH),
        close: (h) => (f.rec('xendevicemodel_close', h), 0),
        create_ioreq_server: (h, domid, mode, id) => {
          f.rec('create_ioreq_server', h, domid, mode);
          id[0] = 3;
          return f.rc('create_ioreq_server');
        },
        get_ioreq_server_info: (h, domid, id, g1, g2, port) => {
          f.rec('get_ioreq_server_info', domid, id, g1, g2);
          if (port) port[0] = 77;
          return f.rc('get_ioreq_server_info');
        },
        map_io_range_to_ioreq_server: (h, ...a) => (f.rec('map_io_range', ...a), 0),
        unmap_io_range_from_ioreq_server: (h, ...a) => (f.rec('unmap_io_range', ...a), 0),
        map_pcidev_to_ioreq_server: (h, ...a) => (f.rec('map_pcidev', ...a), 0),
        unmap_pcidev_from_ioreq_server: (h, ...a) => (f.rec('unmap_pcidev', ...a), 0),
        destroy_ioreq_server: (h, domid, id) => (f.rec('destroy_ioreq_server', domid, id), 0),
        set_ioreq_server_state: (h, domid, id, on) => {
          f.rec('set_ioreq_server_state', domid, id, on);
          const rc = f.rc('set_ioreq_server_state');
          if (rc === 0 && on) {
            // Like Xen: vp_eport appears in the shared page when the server is enabled.
            const w = new Uint32Array(f.ioreqPage);
            for (let v = 0; v < 128; v++) w[(v * IOREQ_SIZE + IOREQ_OFF_VP_EPORT) / 4] = 100 + v;
          }
          return rc;
        },
        set_pci_intx_level: (h, ...a) => (f.rec('set_pci_intx_level', ...a), f.rc('set_pci_intx_level')),
        set_isa_irq_level: (h, ...a) => (f.rec('set_isa_irq_level', ...a), f.rc('set_isa_irq_level')),
        set_pci_link_route: (h, ...a) => (f.rec('set_pci_link_route', ...a), 0),
        inject_msi: (h, ...a) => (f.rec('inject_msi', ...a), 0),
        track_dirty_vram: (h, ...a) => (f.rec('track_dirty_vram', ...a), 0),
        modified_memory: (h, ...a) => (f.rec('modified_memory', ...a), 0),
        set_mem_type: (h, ...a) => (f.rec('set_mem_type', ...a), 0),
        shutdown: (h, ...a) => (f.rec('shutdown', ...a), 0),
        relocate_memory: (h, ...a) => (f.rec('relocate_memory', ...a), 0),
        pin_memory_cacheattr: (h, ...a) => (f.rec('pin_memory_cacheattr', ...a), 0),
        nr_vcpus: (h, domid, out) => {
          f.rec('nr_vcpus', domid);
          const e = f.reach(domid);
          if (e !== 0) {
            f.errno = e;
            return -1;
          }
          out[0] = f.nrVcpus;
          return 0;
        },
      },
      fmem: {
        open: handle('xenforeignmemory_open', FMEMH),
        close: (h) => (f.rec('xenforeignmemory_close', h), 0),
        map: (h, dom, prot, pages, arr, err) => {
          f.rec('xenforeignmemory_map', dom, prot, pages, arr[0]);
          const e = f.reach(dom);
          if (e === 1) {
            f.errno = 1; // privcmd refuses the whole batch
            return null;
          }
          for (let i = 0; i < pages; i++) err[i] = -e; // Xen fails each page
          return f.alloc(new ArrayBuffer(pages * PAGE_SIZE));
        },
        unmap: (h, addr, pages) => (f.rec('xenforeignmemory_unmap', pages), 0),
        map_resource: (h, domid, type, id, frame, nr, paddr, prot, flags) => {
          f.rec('map_resource', domid, type, id, frame, nr, prot, flags);
          if (f.fail.has('map_resource')) {
            f.errno = 95; // EOPNOTSUPP
            return null;
          }
          paddr[0] = RES_BASE;
          return FRES;
        },
        unmap_resource: (h, r) => (f.rec('unmap_resource', r), 0),
      },
      evtchn: {
        open: handle('xenevtchn_open', XCEH),
        close: (h) => (f.rec('xenevtchn_close', h), 0),
        fd: () => (f.rec('xenevtchn_fd'), 42),
        notify: (h, port) => (f.rec('notify', port), 0),
        bind_interdomain: (h, domid, remote) => {
          f.rec('bind_interdomain', domid, remote);
          const e = f.reach(domid);
          if (e !== 0) {
            f.errno = e === 1 ? 13 : e; // EACCES from a restricted evtchn fd
            return -1;
          }
          return f.fail.has('bind_interdomain') ? -1 : remote + 1000;
        },
        unbind: (h, port) => (f.rec('unbind', port), 0),
        pending: () => {
          f.rec('pending');
          return f.pendingPorts.shift() ?? -1;
        },
        unmask: (h, port) => (f.rec('unmask', port), 0),
      },
      xs: {
        open: handle('xs_open', XSH),
        close: (h) => void f.rec('xs_close', h),
        read: (h, t, path, len) => {
          const v = f.xsData.get(path);
          if (v === undefined) return null;
          const b = Buffer.from(v);
          len[0] = b.length;
          return f.alloc(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
        },
        write: (h, t, path, data, len) => {
          f.xsData.set(path, Buffer.from(data.subarray(0, len)).toString());
          return true;
        },
        directory: (h, t, path, num) => {
          const d = f.xsDirs.get(path);
          if (!d) return null;
          num[0] = d.length;
          const p = f.alloc(new ArrayBuffer(8));
          d.forEach((s, i) => f.strings.set(p + BigInt(i + 1), s));
          return p;
        },
        mkdir: () => true,
        rm: () => true,
        watch: (h, path, token) => {
          f.rec('xs_watch', path, token);
          f.xsEvents.push([path, token]); // xenstored fires every new watch once
          return true;
        },
        fileno: () => 43,
        check_watch: () => {
          const ev = f.xsEvents.shift();
          if (!ev) {
            f.errno = 11; // EAGAIN
            return null;
          }
          const p = f.alloc(new ArrayBuffer(8));
          f.strings.set(p + 1n, ev[0]);
          f.strings.set(p + 2n, ev[1]);
          return p;
        },
        get_domain_path: () => '/local/domain/5',
      },
      toolcore: {
        restrict_all: (domid) => {
          f.rec('xentoolcore_restrict_all', domid);
          if (f.fail.has('xentoolcore_restrict_all') || (f.restrictedTo !== null && f.restrictedTo !== domid)) {
            f.errno = 25; // ENOTTY: a kernel without the restrict ioctls
            return -1;
          }
          f.restrictedTo = domid;
          return 0;
        },
      },
      libc: {
        free: (p) => void (p !== null && f.freed.push(p)),
        strerror: (e) => ({ 2: 'No such file or directory', 3: 'No such process', 25: 'Inappropriate ioctl for device', 95: 'Operation not supported' })[e] ?? `errno ${e}`,
        getpid: () => 1,
        abs: (j) => Math.abs(j),
      },
      view: (ptr, len) => {
        if (ptr === RES_BASE) return f.bufPage;
        if (ptr === RES_BASE + BigInt(PAGE_SIZE)) return f.ioreqPage;
        const ab = f.views.get(ptr);
        if (!ab || ab.byteLength < len) throw new Error(`fake: no memory at ${ptr}`);
        return ab;
      },
      readPointers: (ptr, count) => Array.from({ length: count }, (_, i) => ptr + BigInt(i + 1)),
      readCString: (ptr) => f.strings.get(ptr) ?? '',
      errno: () => f.errno,
      checkPrivcmd: () => {
        if (f.fail.has('privcmd')) throw new XenUnavailableError('stubdm: cannot open /dev/xen/privcmd (No such file or directory): x');
      },
    };
  }

  /**
   * The fdwatch addon. Event-channel side as the kernel device behaves: a read
   * ('read') takes every pending port into the queue, then one write unmasks
   * them all but the held port ('unmask', ...ports); a watcher's cb(0) stands
   * for libuv's wake-up, so it does that read first, as native/fdwatch.c does,
   * calls the JS callback only when a port came, and then notifies the ports
   * JS answered in it ('notify', port each: failNotify makes them fail, counted
   * in the answers and reported with a second call, status EVTCHN_NOTIFY_FAILED);
   * stop() notifies what is still queued.
   */
  fdwatch(): FdWatch {
    const f = this;
    const fill = (q: Uint32Array, hold: number): number => {
      f.rec('read');
      if (f.failRead !== 0) return -f.failRead;
      let n = 0;
      const unmasked: number[] = [];
      while (f.pendingPorts.length > 0 && q[0] < q.length - 1) {
        const p = f.pendingPorts.shift()!;
        q[1 + q[0]] = p;
        q[0]++;
        n++;
        if (p !== hold) unmasked.push(p);
      }
      if (unmasked.length > 0) f.rec('unmask', ...unmasked);
      return n;
    };
    const flush = (a: Uint32Array): boolean => {
      let failed = false;
      for (let i = 0; i < a[EVTCHN_A_COUNT]; i++) {
        const port = a[EVTCHN_A_PORTS + i];
        f.rec('notify', port);
        if (f.failNotify < 0) {
          a[EVTCHN_A_FAILED]++;
          a[EVTCHN_A_ERRNO] = -f.failNotify;
          a[EVTCHN_A_PORT] = port;
          failed = true;
        }
      }
      a[EVTCHN_A_COUNT] = 0;
      return failed;
    };
    return {
      evtchnAnswerHeader: EVTCHN_A_PORTS,
      watch(fd, cb) {
        const w = { fd, cb, stopped: false };
        f.watchers.push(w);
        return { stop: () => void (w.stopped = true) };
      },
      readable: () => {
        f.rec('poll');
        return f.pendingPorts.length > 0;
      },
      setNonblock: (fd) => f.rec('nonblock', fd),
      setLoopIdleTime: (on) => (f.rec('loop_idle_time', on), 0),
      evtchnWatch(fd, q, hold, answers, cb) {
        f.answers = answers;
        const w = {
          fd,
          stopped: false,
          cb: (status: number) => {
            if (status < 0) return cb(status);
            const n = fill(q, hold);
            if (n < 0) return cb(n);
            if (q[0] === 0) return;
            cb();
            if (!w.stopped && answers[EVTCHN_A_COUNT] > 0 && flush(answers) && !w.stopped) cb(EVTCHN_NOTIFY_FAILED);
          },
        };
        f.watchers.push(w);
        return {
          stop: () => {
            if (!w.stopped && answers[EVTCHN_A_COUNT] > 0) flush(answers);
            w.stopped = true;
          },
        };
      },
      evtchnFill: (fd, q, hold) => fill(q, hold),
      evtchnUnmask: (fd, port) => (f.rec('unmask', port), 0),
      evtchnNotify: (fd, port) => (f.rec('notify', port), f.failNotify),
    };
  }

  names(): string[] {
    return this.calls.map((c) => c[0]);
  }
}

export function open(fake: Fake, extra: { vcpus?: number } = {}) {
  return openXenHost({ domid: 5, ramBytes: 64 << 20, log: quiet, ...extra }, { libs: fake.libs(), fdwatch: fake.fdwatch() });
}
