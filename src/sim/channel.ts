/**
 * The ioreq server's shared pages and event channels, simulated in process
 * with the semantics of Xen + the Linux evtchn device:
 *
 * - a raised port that is not masked gets masked and queued for pending();
 *   raised while masked it is only marked pending, and unmask() queues it
 *   again (the kernel re-delivers an event that arrived while masked);
 * - watch() stores the callback; the driver runs it synchronously after
 *   raising a port (as the Node loop would on the next poll), and through
 *   setImmediate when a port becomes deliverable outside a callback;
 * - notify() from the DM is recorded per port, with a snapshot of the vCPU's
 *   slot so the driver can tell if the DM touched it after IORESP_READY.
 */
import type { IoreqChannel } from '../core/host.ts';
import { IOREQ_OFF_FLAGS, IOREQ_OFF_VP_EPORT, IOREQ_SIZE, IOREQ_STATE_MASK, PAGE_SIZE, STATE_IORESP_READY } from '../ioreq/abi.ts';

/** Local port of the buffered ring (first bound, like QEMU binds it after the vCPUs it is arbitrary anyway). */
export const SIM_BUF_PORT = 5;
/** Local port of vCPU i: deliberately not contiguous so a DM cannot get away with `port - base`. */
export function simVcpuPort(i: number): number {
  return 7 + 3 * i;
}
/** Xen-side (remote) port of vCPU i, as Xen writes it in vp_eport. */
export function simRemotePort(i: number): number {
  return 100 + i;
}

export class SimChannel implements IoreqChannel {
  readonly ioreqPage = new ArrayBuffer(PAGE_SIZE);
  readonly bufPage: ArrayBuffer | null;
  readonly vcpuPorts: readonly number[];
  readonly bufPort: number;
  /** Server state as last set with setEnabled (history in enabledHistory). */
  enabled = false;
  readonly enabledHistory: boolean[] = [];
  /** Callbacks run so far. */
  deliveries = 0;
  /** Protocol violations the DM committed (notify without answer, notify on a foreign port...). */
  readonly violations: string[] = [];

  private watcher: (() => void) | null = null;
  private readonly masked: Uint8Array;
  private readonly pendingWhileMasked: Uint8Array;
  private readonly notifies: Uint32Array;
  private readonly queue: Int32Array;
  private qHead = 0;
  private qLen = 0;
  private inCallback = false;
  /** Events handed out by pending() so far. */
  private taken = 0;
  private scheduled = false;
  private readonly slot8: Uint8Array;
  /** Per vCPU: the slot as it was when the DM notified, and whether it did since the last post. */
  private readonly snap32: Int32Array;
  private readonly slot32: Int32Array;
  readonly answered: Uint8Array;
  private readonly portToVcpu: Int32Array;

  constructor(
    readonly vcpus: number,
    buffered: boolean,
  ) {
    if (!(Number.isInteger(vcpus) && vcpus >= 1 && vcpus * IOREQ_SIZE <= PAGE_SIZE)) {
      throw new RangeError(`vcpus must be 1..${PAGE_SIZE / IOREQ_SIZE}, got ${vcpus}`);
    }
    this.bufPage = buffered ? new ArrayBuffer(PAGE_SIZE) : null;
    this.bufPort = buffered ? SIM_BUF_PORT : -1;
    const ports: number[] = [];
    for (let i = 0; i < vcpus; i++) ports.push(simVcpuPort(i));
    this.vcpuPorts = ports;
    const nPorts = simVcpuPort(vcpus) + 1;
    this.masked = new Uint8Array(nPorts);
    this.pendingWhileMasked = new Uint8Array(nPorts);
    this.notifies = new Uint32Array(nPorts);
    this.queue = new Int32Array(2 * nPorts + 2);
    this.portToVcpu = new Int32Array(nPorts).fill(-1);
    ports.forEach((p, i) => (this.portToVcpu[p] = i));
    this.slot8 = new Uint8Array(this.ioreqPage);
    this.snap32 = new Int32Array((vcpus * IOREQ_SIZE) >> 2);
    this.slot32 = new Int32Array(this.ioreqPage);
    this.answered = new Uint8Array(vcpus);
    // Xen fills vp_eport for every vCPU when the server is created.
    const s32 = new Uint32Array(this.ioreqPage);
    for (let i = 0; i < vcpus; i++) s32[(i * IOREQ_SIZE + IOREQ_OFF_VP_EPORT) / 4] = simRemotePort(i);
  }

  // ---- IoreqChannel (what the DM calls) ----------------------------------------

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.enabledHistory.push(enabled);
  }

  watch(onEvent: () => void): void {
    this.watcher = onEvent;
  }

  pending(): number {
    if (this.qLen === 0) return -1;
    const p = this.queue[this.qHead];
    this.taken++;
    this.qHead = (this.qHead + 1) % this.queue.length;
    this.qLen--;
    return p;
  }

  unmask(port: number): void {
    if (!this.valid(port)) {
      this.violations.push(`unmask of unbound port ${port}`);
      return;
    }
    this.masked[port] = 0;
    if (this.pendingWhileMasked[port] !== 0) {
      this.pendingWhileMasked[port] = 0;
      this.enqueue(port);
      if (!this.inCallback) this.scheduleDelivery();
    }
  }

  notify(port: number): void {
    if (!this.valid(port)) {
      this.violations.push(`notify on unbound port ${port}`);
      return;
    }
    this.notifies[port]++;
    const v = this.portToVcpu[port];
    if (v < 0) {
      if (port === this.bufPort) this.violations.push('notify on the buffered port');
      return;
    }
    const base = v * IOREQ_SIZE;
    const state = this.slot8[base + IOREQ_OFF_FLAGS] & IOREQ_STATE_MASK;
    if (state !== STATE_IORESP_READY) this.violations.push(`vCPU ${v} notified with slot state ${state}`);
    const w = base >> 2;
    for (let i = 0; i < IOREQ_SIZE / 4; i++) this.snap32[w + i] = this.slot32[w + i]; // no subarray: no allocation
    this.answered[v] = 1;
  }

  // ---- hypervisor side (what the driver calls) ----------------------------------

  /** Xen's notify_via_xen_event_channel towards the DM. */
  raise(port: number): void {
    if (!this.valid(port)) throw new RangeError(`raise of unbound port ${port}`);
    if (this.masked[port] !== 0) {
      this.pendingWhileMasked[port] = 1;
      return;
    }
    this.masked[port] = 1;
    this.enqueue(port);
  }

  /** Run the DM's callback now, as the event loop would when the evtchn fd turns readable. */
  deliver(): void {
    if (this.inCallback || this.watcher === null || this.qLen === 0) return;
    this.inCallback = true;
    this.deliveries++;
    const taken = this.taken;
    try {
      this.watcher();
    } finally {
      this.inCallback = false;
    }
    // The fd stays readable while events are queued: the loop would call
    // again. Only if the callback made progress, so a DM that ignores its
    // events (stopped) does not spin the test process.
    if (this.qLen !== 0 && this.taken !== taken) this.scheduleDelivery();
  }

  get watching(): boolean {
    return this.watcher !== null;
  }

  /** Events still queued for pending(). */
  get queued(): number {
    return this.qLen;
  }

  notifyCount(port: number): number {
    return this.valid(port) ? this.notifies[port] : 0;
  }

  isMasked(port: number): boolean {
    return this.masked[port] !== 0;
  }

  /** True if the slot still equals what it was when the DM notified. */
  slotUnchangedSinceNotify(vcpu: number): boolean {
    const w = (vcpu * IOREQ_SIZE) >> 2;
    for (let i = 0; i < IOREQ_SIZE / 4; i++) if (this.slot32[w + i] !== this.snap32[w + i]) return false;
    return true;
  }

  private enqueue(port: number): void {
    if (this.qLen === this.queue.length) throw new Error('sim event queue overflow (a port queued twice?)');
    this.queue[(this.qHead + this.qLen) % this.queue.length] = port;
    this.qLen++;
  }

  private scheduleDelivery(): void {
    if (this.scheduled || this.watcher === null) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.deliver();
    });
  }

  private valid(port: number): boolean {
    return Number.isInteger(port) && port >= 0 && port < this.masked.length && (port === this.bufPort || this.portToVcpu[port] >= 0);
  }
}
