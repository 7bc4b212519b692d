/**
 * koffi bindings to the Xen 4.17 tools libraries: libxendevicemodel,
 * libxenforeignmemory, libxenevtchn, libxenstore (docs/xen-contract.md §7) and
 * libxentoolcore (-xen-domid-restrict, §17).
 * This is the only module that imports koffi.
 *
 * The prototypes below are the C prototypes of the installed headers, with
 * koffi's `_Out_` marker on pointers that the library writes through and the
 * C typedef names registered as koffi aliases of the same width.
 * test/xen/ffi.test.ts compiles every one of them against the headers as a
 * function pointer initialised with the real function, so a width or
 * signedness slip fails the build there instead of crashing a guest here.
 *
 * Pointers are bigints (koffi 3), a C NULL comes back as null. Out-params
 * that the hot path uses are typed arrays the caller allocates once.
 *
 * Libraries load lazily on the first loadXenLibs() call; anything missing
 * becomes a XenUnavailableError with a one-line operator message.
 */
import koffi, { type KoffiFunc, type LibraryHandle } from 'koffi';
import { accessSync, constants as fsConstants } from 'node:fs';

/** A missing library, device node or failed open: one line saying what is wrong and what to do. */
export class XenUnavailableError extends Error {
  override name = 'XenUnavailableError';
}

/** An opaque C pointer as koffi 3 represents it. */
export type Ptr = bigint;

/** C typedefs the prototypes use, with their widths on x86-64 (checked by test/xen/abi.test.ts). */
export const TYPEDEFS: Readonly<Record<string, string>> = {
  domid_t: 'uint16_t',
  ioservid_t: 'uint16_t',
  evtchn_port_t: 'uint32_t',
  xenevtchn_port_or_error_t: 'int',
  xen_pfn_t: 'unsigned long',
  xs_transaction_t: 'uint32_t',
  hvmmem_type_t: 'int', // an enum: int-sized
};

/** Opaque handle types (C: incomplete structs behind typedefs). */
export const OPAQUES = [
  'xentoollog_logger',
  'xendevicemodel_handle',
  'xenforeignmemory_handle',
  'xenforeignmemory_resource_handle',
  'xenevtchn_handle',
  'xs_handle',
  'xc_interface',
] as const;

export const SONAMES = {
  devicemodel: 'libxendevicemodel.so.1',
  foreignmemory: 'libxenforeignmemory.so.1',
  evtchn: 'libxenevtchn.so.1',
  xenstore: 'libxenstore.so.4',
  /** xentoolcore_restrict_all (-xen-domid-restrict); a dependency of the others, so always there with them. */
  toolcore: 'libxentoolcore.so.1',
  /** Only for populating VRAM pages (src/xen/vram.ts); loaded on first use. */
  ctrl: 'libxenctrl.so.4.17',
} as const;

/**
 * Every C function bound, by library, in header syntax (plus `_Out_`).
 * Parameter lists follow xendevicemodel.h, xenforeignmemory.h, xenevtchn.h
 * and xenstore.h of Xen 4.17 exactly, including const.
 */
export const PROTOTYPES = {
  devicemodel: [
    'xendevicemodel_handle *xendevicemodel_open(xentoollog_logger *logger, unsigned int open_flags)',
    'int xendevicemodel_close(xendevicemodel_handle *dmod)',
    'int xendevicemodel_create_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, int handle_bufioreq, _Out_ ioservid_t *id)',
    'int xendevicemodel_get_ioreq_server_info(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id, _Out_ xen_pfn_t *ioreq_gfn, _Out_ xen_pfn_t *bufioreq_gfn, _Out_ evtchn_port_t *bufioreq_port)',
    'int xendevicemodel_map_io_range_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id, int is_mmio, uint64_t start, uint64_t end)',
    'int xendevicemodel_unmap_io_range_from_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id, int is_mmio, uint64_t start, uint64_t end)',
    'int xendevicemodel_map_pcidev_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id, uint16_t segment, uint8_t bus, uint8_t device, uint8_t function)',
    'int xendevicemodel_unmap_pcidev_from_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id, uint16_t segment, uint8_t bus, uint8_t device, uint8_t function)',
    'int xendevicemodel_destroy_ioreq_server(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id)',
    'int xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id, int enabled)',
    'int xendevicemodel_set_pci_intx_level(xendevicemodel_handle *dmod, domid_t domid, uint16_t segment, uint8_t bus, uint8_t device, uint8_t intx, unsigned int level)',
    'int xendevicemodel_set_isa_irq_level(xendevicemodel_handle *dmod, domid_t domid, uint8_t irq, unsigned int level)',
    'int xendevicemodel_set_pci_link_route(xendevicemodel_handle *dmod, domid_t domid, uint8_t link, uint8_t irq)',
    'int xendevicemodel_inject_msi(xendevicemodel_handle *dmod, domid_t domid, uint64_t msi_addr, uint32_t msi_data)',
    'int xendevicemodel_track_dirty_vram(xendevicemodel_handle *dmod, domid_t domid, uint64_t first_pfn, uint32_t nr, _Out_ unsigned long *dirty_bitmap)',
    'int xendevicemodel_modified_memory(xendevicemodel_handle *dmod, domid_t domid, uint64_t first_pfn, uint32_t nr)',
    'int xendevicemodel_set_mem_type(xendevicemodel_handle *dmod, domid_t domid, hvmmem_type_t mem_type, uint64_t first_pfn, uint32_t nr)',
    'int xendevicemodel_shutdown(xendevicemodel_handle *dmod, domid_t domid, unsigned int reason)',
    'int xendevicemodel_relocate_memory(xendevicemodel_handle *dmod, domid_t domid, uint32_t size, uint64_t src_gfn, uint64_t dst_gfn)',
    'int xendevicemodel_pin_memory_cacheattr(xendevicemodel_handle *dmod, domid_t domid, uint64_t start, uint64_t end, uint32_t type)',
    'int xendevicemodel_nr_vcpus(xendevicemodel_handle *dmod, domid_t domid, _Out_ unsigned int *vcpus)',
  ],
  foreignmemory: [
    'xenforeignmemory_handle *xenforeignmemory_open(xentoollog_logger *logger, unsigned int open_flags)',
    'int xenforeignmemory_close(xenforeignmemory_handle *fmem)',
    'void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom, int prot, size_t pages, const xen_pfn_t *arr, _Out_ int *err)',
    'int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr, size_t pages)',
    'xenforeignmemory_resource_handle *xenforeignmemory_map_resource(xenforeignmemory_handle *fmem, domid_t domid, unsigned int type, unsigned int id, unsigned long frame, unsigned long nr_frames, _Out_ void **paddr, int prot, int flags)',
    'int xenforeignmemory_unmap_resource(xenforeignmemory_handle *fmem, xenforeignmemory_resource_handle *fres)',
  ],
  evtchn: [
    'xenevtchn_handle *xenevtchn_open(xentoollog_logger *logger, unsigned int flags)',
    'int xenevtchn_close(xenevtchn_handle *xce)',
    'int xenevtchn_fd(xenevtchn_handle *xce)',
    'int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)',
    'xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid, evtchn_port_t remote_port)',
    'int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)',
    'xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)',
    'int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)',
  ],
  xenstore: [
    'xs_handle *xs_open(unsigned long flags)',
    'void xs_close(xs_handle *xsh)',
    'void *xs_read(xs_handle *h, xs_transaction_t t, const char *path, _Out_ unsigned int *len)',
    'bool xs_write(xs_handle *h, xs_transaction_t t, const char *path, const void *data, unsigned int len)',
    'char **xs_directory(xs_handle *h, xs_transaction_t t, const char *path, _Out_ unsigned int *num)',
    'bool xs_mkdir(xs_handle *h, xs_transaction_t t, const char *path)',
    'bool xs_rm(xs_handle *h, xs_transaction_t t, const char *path)',
    'bool xs_watch(xs_handle *h, const char *path, const char *token)',
    'int xs_fileno(xs_handle *h)',
    'char **xs_check_watch(xs_handle *h)',
    'char *! xs_get_domain_path(xs_handle *h, unsigned int domid)', // `!`: koffi frees the malloc'ed string,
  ],
  toolcore: [
    'int xentoolcore_restrict_all(domid_t domid)',
  ],
  ctrl: [
    'xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger, unsigned int open_flags)',
    'int xc_interface_close(xc_interface *xch)',
    // extent_start is read (and may be written back) by Xen: koffi passes a typed array by reference either way.
    'int xc_domain_populate_physmap_exact(xc_interface *xch, uint32_t domid, unsigned long nr_extents, unsigned int extent_order, unsigned int mem_flags, _Out_ xen_pfn_t *extent_start)',
  ],
  libc: [
    'void free(void *ptr)',
    'char *strerror(int errnum)',
    'int getpid(void)',
    'int abs(int j)',
  ],
} as const;

// ---------------------------------------------------------------------------
// Typed views of the bound functions. Names are the C names without the
// library prefix. Handles are Ptr; out-params are typed arrays of the C
// width (Uint16Array for ioservid_t, Uint32Array for evtchn_port_t / unsigned
// int, BigUint64Array for xen_pfn_t / unsigned long, Int32Array for int) or
// one-element arrays where koffi boxes a pointer (void **).
// ---------------------------------------------------------------------------

type U64 = number | bigint;

export interface DeviceModelApi {
  open(logger: null, flags: number): Ptr | null;
  close(h: Ptr): number;
  create_ioreq_server(h: Ptr, domid: number, handleBufioreq: number, id: Uint16Array): number;
  get_ioreq_server_info(
    h: Ptr,
    domid: number,
    id: number,
    ioreqGfn: BigUint64Array | null,
    bufioreqGfn: BigUint64Array | null,
    bufioreqPort: Uint32Array | null,
  ): number;
  map_io_range_to_ioreq_server(h: Ptr, domid: number, id: number, isMmio: number, start: U64, end: U64): number;
  unmap_io_range_from_ioreq_server(h: Ptr, domid: number, id: number, isMmio: number, start: U64, end: U64): number;
  map_pcidev_to_ioreq_server(h: Ptr, domid: number, id: number, seg: number, bus: number, dev: number, fn: number): number;
  unmap_pcidev_from_ioreq_server(h: Ptr, domid: number, id: number, seg: number, bus: number, dev: number, fn: number): number;
  destroy_ioreq_server(h: Ptr, domid: number, id: number): number;
  set_ioreq_server_state(h: Ptr, domid: number, id: number, enabled: number): number;
  set_pci_intx_level(h: Ptr, domid: number, seg: number, bus: number, dev: number, intx: number, level: number): number;
  set_isa_irq_level(h: Ptr, domid: number, irq: number, level: number): number;
  set_pci_link_route(h: Ptr, domid: number, link: number, irq: number): number;
  inject_msi(h: Ptr, domid: number, addr: U64, data: number): number;
  track_dirty_vram(h: Ptr, domid: number, firstPfn: U64, nr: number, bitmap: BigUint64Array | null): number;
  modified_memory(h: Ptr, domid: number, firstPfn: U64, nr: number): number;
  set_mem_type(h: Ptr, domid: number, memType: number, firstPfn: U64, nr: number): number;
  shutdown(h: Ptr, domid: number, reason: number): number;
  relocate_memory(h: Ptr, domid: number, size: number, srcGfn: U64, dstGfn: U64): number;
  pin_memory_cacheattr(h: Ptr, domid: number, start: U64, end: U64, type: number): number;
  nr_vcpus(h: Ptr, domid: number, vcpus: Uint32Array): number;
}

export interface ForeignMemoryApi {
  open(logger: null, flags: number): Ptr | null;
  close(h: Ptr): number;
  /** err[i] is 0 for a mapped page; arr and err have at least `pages` elements. */
  map(h: Ptr, dom: number, prot: number, pages: number, arr: BigUint64Array, err: Int32Array): Ptr | null;
  unmap(h: Ptr, addr: Ptr, pages: number): number;
  /** paddr[0] receives the mapping address. */
  map_resource(
    h: Ptr,
    domid: number,
    type: number,
    id: number,
    frame: U64,
    nrFrames: U64,
    paddr: (Ptr | null)[],
    prot: number,
    flags: number,
  ): Ptr | null;
  unmap_resource(h: Ptr, fres: Ptr): number;
}

export interface EvtchnApi {
  open(logger: null, flags: number): Ptr | null;
  close(h: Ptr): number;
  fd(h: Ptr): number;
  notify(h: Ptr, port: number): number;
  bind_interdomain(h: Ptr, domid: number, remotePort: number): number;
  unbind(h: Ptr, port: number): number;
  pending(h: Ptr): number;
  unmask(h: Ptr, port: number): number;
}

export interface XenstoreApi {
  open(flags: number): Ptr | null;
  close(h: Ptr): void;
  read(h: Ptr, t: number, path: string, len: Uint32Array): Ptr | null;
  write(h: Ptr, t: number, path: string, data: Uint8Array, len: number): boolean;
  directory(h: Ptr, t: number, path: string, num: Uint32Array): Ptr | null;
  mkdir(h: Ptr, t: number, path: string): boolean;
  rm(h: Ptr, t: number, path: string): boolean;
  watch(h: Ptr, path: string, token: string): boolean;
  fileno(h: Ptr): number;
  check_watch(h: Ptr): Ptr | null;
  get_domain_path(h: Ptr, domid: number): string | null;
}

/** libxentoolcore: restrict every handle the other libraries hold (xentoolcore.h). */
export interface ToolcoreApi {
  restrict_all(domid: number): number;
}

/** libxenctrl, the three calls VRAM population needs (unstable ABI: pinned to 4.17's soname). */
export interface CtrlApi {
  interface_open(logger: null, dombuildLogger: null, flags: number): Ptr | null;
  interface_close(h: Ptr): number;
  domain_populate_physmap_exact(h: Ptr, domid: number, nr: U64, order: number, memFlags: number, gfns: BigUint64Array): number;
}

let ctrlCached: CtrlApi | null = null;

/** libxenctrl, loaded once on first use. Throws XenUnavailableError when missing. */
export function loadXenCtrl(): CtrlApi {
  ctrlCached ??= bindLibrary('ctrl', SONAMES.ctrl) as unknown as CtrlApi;
  return ctrlCached;
}

export interface LibcApi {
  free(p: Ptr | null): void;
  strerror(errnum: number): string;
  getpid(): number;
  abs(j: number): number;
}

/** Everything host.ts needs below the FFI line; tests substitute a fake. */
export interface XenLibs {
  dm: DeviceModelApi;
  fmem: ForeignMemoryApi;
  evtchn: EvtchnApi;
  xs: XenstoreApi;
  toolcore: ToolcoreApi;
  libc: LibcApi;
  /** Foreign memory as an ArrayBuffer, no copy (koffi.view). Valid until unmapped. */
  view(ptr: Ptr, len: number): ArrayBuffer;
  /** Decoded pointer array (char ** results) and C strings. */
  readPointers(ptr: Ptr, count: number): (Ptr | null)[];
  readCString(ptr: Ptr): string;
  /** errno of the last FFI call on this thread. */
  errno(): number;
  /** Throws XenUnavailableError unless /dev/xen/privcmd is there and read-write. */
  checkPrivcmd(): void;
}

// ---------------------------------------------------------------------------

const PREFIX: Record<keyof typeof PROTOTYPES, string> = {
  devicemodel: 'xendevicemodel_',
  foreignmemory: 'xenforeignmemory_',
  evtchn: 'xenevtchn_',
  xenstore: 'xs_',
  toolcore: 'xentoolcore_',
  ctrl: 'xc_',
  libc: '',
};

export const PRIVCMD = '/dev/xen/privcmd';
const WHAT_TO_DO_LIB =
  'install the Xen 4.17 tools libraries (Debian: libxendevicemodel1 libxenforeignmemory1 libxenevtchn1 libxenstore4) or run with the simulator';

let typesRegistered = false;
function registerTypes(): void {
  if (typesRegistered) return;
  for (const [name, base] of Object.entries(TYPEDEFS)) koffi.alias(name, base);
  for (const name of OPAQUES) koffi.opaque(name);
  typesRegistered = true;
}

/** The C name a prototype declares ("int foo(...)" -> "foo"). */
export function prototypeName(proto: string): string {
  const m = /([A-Za-z_][A-Za-z0-9_]*)\s*\(/.exec(proto);
  if (!m) throw new Error(`bad prototype ${proto}`);
  return m[1];
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** Loads one library and binds its prototypes; keys are C names minus the prefix. Exported for tests. */
export function bindLibrary(which: keyof typeof PROTOTYPES, soname: string): Record<string, KoffiFunc<(...a: any[]) => any>> {
  registerTypes();
  let lib: LibraryHandle;
  try {
    lib = koffi.load(soname);
  } catch (e) {
    throw new XenUnavailableError(`stubdm: cannot load ${soname} (${oneLine((e as Error).message)}): ${WHAT_TO_DO_LIB}`);
  }
  const out: Record<string, any> = {};
  for (const proto of PROTOTYPES[which]) {
    const name = prototypeName(proto);
    try {
      out[name.slice(PREFIX[which].length)] = lib.func(proto);
    } catch (e) {
      throw new XenUnavailableError(
        `stubdm: ${soname} lacks ${name} (${oneLine((e as Error).message)}): install the Xen 4.17 tools libraries or newer`,
      );
    }
  }
  return out;
}

let cached: XenLibs | null = null;

/** The real libraries, loaded once. Throws XenUnavailableError when one is missing. */
export function loadXenLibs(): XenLibs {
  if (cached) return cached;
  const libc = bindLibrary('libc', 'libc.so.6') as unknown as LibcApi;
  const libs: XenLibs = {
    dm: bindLibrary('devicemodel', SONAMES.devicemodel) as unknown as DeviceModelApi,
    fmem: bindLibrary('foreignmemory', SONAMES.foreignmemory) as unknown as ForeignMemoryApi,
    evtchn: bindLibrary('evtchn', SONAMES.evtchn) as unknown as EvtchnApi,
    xs: bindLibrary('xenstore', SONAMES.xenstore) as unknown as XenstoreApi,
    toolcore: bindLibrary('toolcore', SONAMES.toolcore) as unknown as ToolcoreApi,
    libc,
    view: (ptr, len) => koffi.view(ptr, len),
    readPointers: (ptr, count) => (count === 0 ? [] : (koffi.decode(ptr, 'void *', count) as (Ptr | null)[])),
    readCString: (ptr) => koffi.decode(ptr, 'char', -1) as string,
    errno: () => koffi.errno(),
    checkPrivcmd: () => checkDevice(PRIVCMD, libc),
  };
  cached = libs;
  return libs;
}

function checkDevice(path: string, libc: LibcApi): void {
  try {
    accessSync(path, fsConstants.R_OK | fsConstants.W_OK);
  } catch (e) {
    const errno = -((e as NodeJS.ErrnoException).errno ?? 0);
    throw new XenUnavailableError(
      `stubdm: cannot open ${path} (${libc.strerror(errno)}): not running in a Xen domain with privcmd; load xen-privcmd or run with the simulator`,
    );
  }
}

/**
 * For benchmarks (scripts/bench.ts): trivial libc calls through koffi. abs() is
 * pure call overhead; getpid() adds one plain syscall, the floor under every
 * Xen call we make.
 */
export function koffiProbe(): () => number {
  return bindLibrary('libc', 'libc.so.6').getpid as unknown as () => number;
}

export function koffiAbsProbe(): (j: number) => number {
  return bindLibrary('libc', 'libc.so.6').abs as unknown as (j: number) => number;
}

/** The declared argument and result types of every bound function, for tests. */
export function describeBindings(): Record<string, { result: number; args: { size: number; pointee?: number; out: boolean }[] }> {
  const out: Record<string, { result: number; args: { size: number; pointee?: number; out: boolean }[] }> = {};
  const sonames: Record<keyof typeof PROTOTYPES, string> = { ...SONAMES, libc: 'libc.so.6' };
  for (const which of Object.keys(PROTOTYPES) as (keyof typeof PROTOTYPES)[]) {
    const fns = bindLibrary(which, sonames[which]);
    for (const [short, fn] of Object.entries(fns)) {
      const info = fn.info as unknown as {
        result: { size: number };
        arguments: { type: { size: number; ref?: { size: number } }; direction?: string }[];
      };
      out[PREFIX[which] + short] = {
        result: info.result.size,
        args: info.arguments.map((a) => ({
          size: a.type.size,
          pointee: a.type.ref?.size,
          out: a.direction === 'Output',
        })),
      };
    }
  }
  return out;
}

/** koffi's size of each C typedef and opaque-pointer the prototypes use, for tests. */
export function typedefSizes(): Record<string, number> {
  registerTypes();
  const out: Record<string, number> = {};
  for (const name of Object.keys(TYPEDEFS)) out[name] = koffi.sizeof(name);
  for (const name of ['unsigned long', 'unsigned int', 'size_t', 'int', 'bool', 'uint64_t', 'uint32_t', 'uint16_t', 'uint8_t']) {
    out[name] = koffi.sizeof(name);
  }
  for (const name of OPAQUES) out[`${name} *`] = koffi.sizeof(`${name} *`);
  return out;
}
