/**
 * What the device model needs from the hypervisor, split into the narrow
 * pieces the rest of the code uses. src/xen implements these over the real
 * Xen libraries (FFI); src/sim implements them in process for tests. Nothing
 * outside those two folders knows which one it has.
 */
import type { Clock } from './clock.ts';
import type { GuestMemory } from './memory.ts';
import type { VramProvider } from './vram.ts';

/** Interrupt and platform calls (libxendevicemodel). Errors are logged by the implementation, never thrown. */
export interface Interrupts {
  /** ISA IRQ 0-15 level (xendevicemodel_set_isa_irq_level). */
  setIsaIrqLevel(irq: number, level: 0 | 1): void;
  /** PCI INTx on segment 0 bus 0: device 0-31, intx 0-3 = INTA-INTD (xendevicemodel_set_pci_intx_level). */
  setPciIntxLevel(device: number, intx: number, level: 0 | 1): void;
  /** PIIX3 PIRQ link 0-3 to ISA IRQ; irq 0 disables the link (xendevicemodel_set_pci_link_route). */
  setPciLinkRoute(link: number, irq: number): void;
  /** MSI delivery (xendevicemodel_inject_msi). */
  injectMsi(addr: number, data: number): void;
}

export const SHUTDOWN_POWEROFF = 0;
export const SHUTDOWN_REBOOT = 1;

export interface Power {
  /** xendevicemodel_shutdown; reason SHUTDOWN_POWEROFF or SHUTDOWN_REBOOT. Synchronous: done before the ioreq that asked for it is answered. */
  shutdown(reason: number): void;
}

export const RANGE_PORT = 0; // XEN_DMOP_IO_RANGE_PORT
export const RANGE_MMIO = 1; // XEN_DMOP_IO_RANGE_MEMORY

/** Claims on guest accesses (which ranges and PCI functions this ioreq server serves). */
export interface IoreqRouting {
  /** Inclusive end, like the Xen call. kind RANGE_PORT or RANGE_MMIO. */
  mapIoRange(kind: number, start: number, end: number): void;
  unmapIoRange(kind: number, start: number, end: number): void;
  /** Segment 0, bus 0. */
  mapPcidev(device: number, fn: number): void;
  unmapPcidev(device: number, fn: number): void;
}

/**
 * The ioreq server's shared pages and event channels, already created,
 * mapped and bound by the implementation.
 */
export interface IoreqChannel {
  readonly vcpus: number;
  /** shared_iopage_t: vcpus * 32 bytes used, one 4096-byte page. */
  readonly ioreqPage: ArrayBuffer;
  /** buffered_iopage_t, 4096 bytes, or null when buffered ioreqs are off. */
  readonly bufPage: ArrayBuffer | null;
  /** Local event-channel port for vCPU i's ioreq slot. */
  readonly vcpuPorts: readonly number[];
  /** Local port of the buffered ring, or -1. */
  readonly bufPort: number;
  /** Enable (true) or disable the server (xendevicemodel_set_ioreq_server_state). */
  setEnabled(enabled: boolean): void;
  /**
   * Start watching for events: `onEvent` runs on the Node event loop (never
   * re-entrantly) whenever ports may be pending. The callback drains them
   * with pending() until it returns -1. Inside a callback a host may say -1
   * while more is pending (the Xen host gives one port per wake-up and saves
   * a syscall); it then runs the callback again, so nothing is left behind.
   */
  watch(onEvent: () => void): void;
  /**
   * Next pending local port, or -1 if none is pending now. Never blocks. The
   * buffered port stays masked until unmask(); a vCPU port may come back
   * already unmasked (the Xen host unmasks it as it reads it, QEMU's order:
   * unmask, then look at the slot), and unmask() of it is then free.
   */
  pending(): number;
  unmask(port: number): void;
  /**
   * Signal the vCPU that its answer is in the slot. Inside the watch
   * callback a host may make the call once the callback has returned (the
   * Xen host's addon does: no crossing per answer); the slot is not touched
   * after IORESP_READY either way.
   */
  notify(port: number): void;
  /**
   * A host that waits for a vCPU's next request right after answering
   * (the Xen host: native/fdwatch.c, "Waiting in place"): the waits made and
   * those a request ended (uint32 counters, wrapping). Off the hot path.
   */
  waitStats?(): { waits: number; inPlace: number };
}

/** Guest memory with the mapcache controls the ioreq loop needs. */
export interface HostMemory extends GuestMemory {
  /** IOREQ_TYPE_INVALIDATE: drop every cached mapping. */
  invalidate(): void;
  /**
   * Global dirty logging (QMP xen-set-global-dirty-log, on while libxl
   * copies a live guest's memory): while on, every page a successful write()
   * touches is reported to the hypervisor before write() returns
   * (xendevicemodel_modified_memory), or the copy on the other side keeps the
   * page's old contents (docs/xen-contract.md §16). Off, write() pays one
   * null check.
   */
  setDirtyLog(on: boolean): void;
  /** One line of the mapping counters since start, for diagnostics (HMP info disktrace); absent where nothing is mapped. */
  countersLine?(): string;
}

/** Xenstore, the few calls the device model makes. Paths may be relative (to /local/domain/<self>). */
export interface Store {
  read(path: string): string | null;
  write(path: string, value: string): boolean;
  directory(path: string): string[];
}

/**
 * -xen-domid-restrict (libxl's dm_restrict): every hypervisor handle the
 * device model holds is limited to its guest, as QEMU does with
 * xentoolcore_restrict_all once its machine is built (docs/xen-contract.md §17).
 */
export interface HostRestriction {
  /**
   * Restrict every handle now; close those that cannot be restricted
   * (xenstore: libxenstore turns its fd into /dev/null). Handles opened later
   * would not be restricted, so nothing opens one afterwards. Throws
   * RestrictError (one operator line). A second call is a no-op.
   */
  restrict(): void;
  readonly restricted: boolean;
  /**
   * The same harmless calls against the guest and against a domain id that
   * does not exist: unrestricted, the other domain answers ESRCH from Xen;
   * restricted, the kernel refuses it (EPERM) before Xen sees it. Errno
   * names, 'ok' for success. Not for the hot path (QMP/HMP only).
   */
  probe(): RestrictProbe;
}

export interface RestrictProbe {
  restricted: boolean;
  domid: number;
  /** nr_vcpus (a read-only dm_op) on the guest: 'ok' while the handle works. */
  guest: string;
  otherDomid: number;
  /** The same dm_op on otherDomid. */
  dmOp: string;
  /** Mapping one page of otherDomid through the foreign-memory handle. */
  map: string;
  /** Binding an event channel of otherDomid. */
  evtchn: string;
}

export class RestrictError extends Error {}

/** Everything a running device model gets from its hypervisor. */
export interface Host {
  readonly domid: number;
  readonly interrupts: Interrupts;
  readonly power: Power;
  readonly routing: IoreqRouting;
  readonly channel: IoreqChannel;
  readonly memory: HostMemory;
  readonly store: Store | null;
  /** Time for device timers: the host's clock on Xen, a virtual one in tests. */
  readonly clock: Clock;
  /** VRAM as guest pages for a display device (absent: the device keeps VRAM in its own memory and serves BAR0 by ioreqs). */
  readonly vram?: VramProvider;
  /** -xen-domid-restrict (absent: the host cannot restrict, and the option is refused). */
  readonly restriction?: HostRestriction;
  /** Disable and destroy the ioreq server, release every mapping and handle. Idempotent. */
  close(): void;
}
