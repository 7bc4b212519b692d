/**
 * Recording implementations of the hypervisor calls a device model makes
 * (interrupts, power, routing, xenstore). They never throw on bad arguments,
 * like the real ones (which log and carry on): bad calls land in `errors`.
 */
import type { Interrupts, IoreqRouting, Power, Store } from '../core/host.ts';
import { RANGE_MMIO, RANGE_PORT } from '../core/host.ts';

export interface Msi {
  addr: number;
  data: number;
}

export class SimInterrupts implements Interrupts {
  /** Current level of ISA IRQ 0-15. */
  readonly isaLevels = new Uint8Array(16);
  /** Rising edges seen per ISA IRQ (pulses show up here even when the level is back to 0). */
  readonly isaRaises = new Uint32Array(16);
  /** Level per (device 0-31, INTA-INTD). */
  readonly intxLevels = new Uint8Array(32 * 4);
  readonly intxRaises = new Uint32Array(32 * 4);
  /** PIRQ link 0-3 -> ISA IRQ (0 = disabled, Xen's reset value). */
  readonly linkRoutes = [0, 0, 0, 0];
  readonly msis: Msi[] = [];
  readonly errors: string[] = [];

  setIsaIrqLevel(irq: number, level: 0 | 1): void {
    if (!(Number.isInteger(irq) && irq >= 0 && irq < 16)) {
      this.errors.push(`set_isa_irq_level(${irq})`);
      return;
    }
    if (level && !this.isaLevels[irq]) this.isaRaises[irq]++;
    this.isaLevels[irq] = level ? 1 : 0;
  }

  setPciIntxLevel(device: number, intx: number, level: 0 | 1): void {
    if (!(Number.isInteger(device) && device >= 0 && device < 32 && Number.isInteger(intx) && intx >= 0 && intx < 4)) {
      this.errors.push(`set_pci_intx_level(${device}, ${intx})`);
      return;
    }
    const i = device * 4 + intx;
    if (level && !this.intxLevels[i]) this.intxRaises[i]++;
    this.intxLevels[i] = level ? 1 : 0;
  }

  setPciLinkRoute(link: number, irq: number): void {
    if (!(Number.isInteger(link) && link >= 0 && link < 4 && Number.isInteger(irq) && irq >= 0 && irq < 16)) {
      this.errors.push(`set_pci_link_route(${link}, ${irq})`);
      return;
    }
    this.linkRoutes[link] = irq;
  }

  injectMsi(addr: number, data: number): void {
    this.msis.push({ addr, data });
  }
}

export interface ShutdownRequest {
  reason: number;
  /** State nibble of every vCPU slot at the moment of the call (INPROCESS = the asking ioreq not yet answered). */
  slotStates: number[];
}

export class SimPower implements Power {
  readonly shutdownRequests: ShutdownRequest[] = [];

  constructor(private readonly slotStates: () => number[]) {}

  shutdown(reason: number): void {
    this.shutdownRequests.push({ reason, slotStates: this.slotStates() });
  }
}

export interface IoRange {
  kind: number;
  start: number;
  /** Inclusive, like the Xen call. */
  end: number;
}

export class SimRouting implements IoreqRouting {
  /** Ranges currently claimed by the server. */
  readonly ioRanges: IoRange[] = [];
  /** PCI functions (bus 0) currently claimed, as `device << 3 | fn`. */
  readonly pciFunctions = new Set<number>();
  /** Every call in order, e.g. "map port 0x3f8-0x3ff" (debugging aid for tests). */
  readonly calls: string[] = [];
  readonly errors: string[] = [];

  mapIoRange(kind: number, start: number, end: number): void {
    const what = `${kindName(kind)} 0x${start.toString(16)}-0x${end.toString(16)}`;
    this.calls.push(`map ${what}`);
    if ((kind !== RANGE_PORT && kind !== RANGE_MMIO) || !(start <= end) || (kind === RANGE_PORT && end > 0xffff)) {
      this.errors.push(`map ${what}: bad range`);
      return;
    }
    // Xen's rangeset refuses overlaps within one server (EEXIST).
    if (this.ioRanges.some((r) => r.kind === kind && r.start <= end && start <= r.end)) {
      this.errors.push(`map ${what}: overlaps a claimed range`);
      return;
    }
    this.ioRanges.push({ kind, start, end });
  }

  unmapIoRange(kind: number, start: number, end: number): void {
    const what = `${kindName(kind)} 0x${start.toString(16)}-0x${end.toString(16)}`;
    this.calls.push(`unmap ${what}`);
    const i = this.ioRanges.findIndex((r) => r.kind === kind && r.start === start && r.end === end);
    if (i < 0) this.errors.push(`unmap ${what}: not claimed`);
    else this.ioRanges.splice(i, 1);
  }

  mapPcidev(device: number, fn: number): void {
    this.calls.push(`map pci 00:${hex2(device)}.${fn}`);
    if (!(device >= 0 && device < 32 && fn >= 0 && fn < 8)) this.errors.push(`map pci ${device}.${fn}: bad`);
    else this.pciFunctions.add((device << 3) | fn);
  }

  unmapPcidev(device: number, fn: number): void {
    this.calls.push(`unmap pci 00:${hex2(device)}.${fn}`);
    if (!this.pciFunctions.delete((device << 3) | fn)) this.errors.push(`unmap pci ${device}.${fn}: not claimed`);
  }

  /** True if [start, end] (inclusive) lies inside one claimed range of that kind: what Xen would route to us. */
  claims(kind: number, start: number, end = start): boolean {
    return this.ioRanges.some((r) => r.kind === kind && r.start <= start && end <= r.end);
  }
}

function kindName(kind: number): string {
  return kind === RANGE_PORT ? 'port' : kind === RANGE_MMIO ? 'mmio' : `kind${kind}`;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Xenstore as a flat map of absolute paths; relative paths are under /local/domain/<self>. */
export class SimStore implements Store {
  readonly data = new Map<string, string>();
  /**
   * Set by the host's restriction, as libxenstore's handle turns into
   * /dev/null: later writes fail and are counted, so a test sees a device
   * model that still writes after -xen-domid-restrict.
   */
  closed = false;
  writesAfterClose = 0;

  constructor(private readonly selfDomid: number) {}

  read(path: string): string | null {
    return this.data.get(this.abs(path)) ?? null;
  }

  write(path: string, value: string): boolean {
    if (this.closed) {
      this.writesAfterClose++;
      return false;
    }
    this.data.set(this.abs(path), value);
    return true;
  }

  directory(path: string): string[] {
    const prefix = this.abs(path).replace(/\/$/, '') + '/';
    const out = new Set<string>();
    for (const k of this.data.keys()) if (k.startsWith(prefix)) out.add(k.slice(prefix.length).split('/')[0]);
    return [...out].sort();
  }

  private abs(path: string): string {
    return path.startsWith('/') ? path : `/local/domain/${this.selfDomid}/${path}`;
  }
}
