/**
 * The machine's list of devices and what it does with them as a whole: save
 * every device's state into one container, and restore a container into a
 * machine built from the same configuration.
 *
 * Restore order (what the ioreq server may rely on):
 *   1. decode and check the container (magic, format, length, checksum) and
 *      that it names exactly this machine's devices;
 *   2. rebuild the device tree: `rebuild` sees every record first (the PC
 *      replays the Xen platform device's PV unplug, so the disks and NICs the
 *      guest's drivers took over before the save are gone again);
 *   3. restore every device (each validates its state before changing itself);
 *   4. `refresh`: re-derive what restored config decides (BARs moved, ranges
 *      claimed, interrupt lines driven);
 *   5. every device's resume(): requests that were in flight are issued again
 *      (a DMA needs step 4's Bus Master Enable);
 * and only then may the ioreq server run. A restore that fails part-way
 * leaves a machine that must not run: the caller refuses to start the guest
 * (`-incoming`) rather than resume it on half-loaded state.
 */
import { DEVICE_ID_RE, restoreDevice, type Device } from '../core/device.ts';
import { StateError } from '../core/state.ts';
import { decodeContainer, encodeContainer, type DeviceRecord } from './container.ts';

export interface RestoreHooks {
  /** Step 2: rebuild the device tree from the saved records (before any device restore). */
  rebuild?(records: ReadonlyMap<string, DeviceRecord>): void;
  /** Step 4: after every device restored. */
  refresh?(): void;
}

export class DeviceRegistry {
  private readonly list: Device[] = [];
  private readonly byId = new Map<string, Device>();

  constructor(private readonly hooks: RestoreHooks = {}) {}

  /** Register a device the machine built. Ids are unique and stable. */
  add<D extends Device>(dev: D): D {
    if (!DEVICE_ID_RE.test(dev.id)) throw new Error(`device id ${JSON.stringify(dev.id)} is not a valid state id`);
    if (this.byId.has(dev.id)) throw new Error(`two devices with id ${dev.id}`);
    if (!Number.isInteger(dev.stateVersion) || dev.stateVersion < 1) throw new Error(`${dev.id}: bad stateVersion ${dev.stateVersion}`);
    this.list.push(dev);
    this.byId.set(dev.id, dev);
    return dev;
  }

  get devices(): readonly Device[] {
    return this.list;
  }

  get(id: string): Device | undefined {
    return this.byId.get(id);
  }

  /** Every device's state now, in registration order (no I/O is settled: see save()). */
  records(): DeviceRecord[] {
    return this.list.map((d) => ({ id: d.id, version: d.stateVersion, state: d.snapshot() }));
  }

  /**
   * Settle backend I/O (each device's quiesce()) and encode every device's
   * state. Call with the guest's vCPUs paused (QMP stop), so no new request
   * arrives in between.
   */
  async save(): Promise<Uint8Array> {
    for (const d of this.list) if (d.quiesce) await d.quiesce();
    return encodeContainer(this.records());
  }

  /** Restore a container made by save() on a machine of the same configuration. Throws StateError. */
  restore(blob: Uint8Array): void {
    this.restoreRecords(decodeContainer(blob));
  }

  restoreRecords(records: readonly DeviceRecord[]): void {
    const map = new Map(records.map((r) => [r.id, r]));
    if (map.size !== records.length) throw new StateError('saved state names a device twice');
    const unknown = records.filter((r) => !this.byId.has(r.id)).map((r) => r.id);
    if (unknown.length) throw new StateError(`saved state has devices this machine lacks: ${unknown.join(', ')} (start stubdm with the same configuration)`);
    const missing = this.list.filter((d) => !map.has(d.id)).map((d) => d.id);
    if (missing.length) throw new StateError(`saved state lacks devices this machine has: ${missing.join(', ')} (start stubdm with the same configuration)`);
    for (const d of this.list) {
      const v = map.get(d.id)!.version;
      if (v > d.stateVersion) throw new StateError(`${d.id}: state version ${v} is newer than this stubdm reads (${d.stateVersion}); restore with a newer stubdm`);
    }
    this.hooks.rebuild?.(map);
    for (const d of this.list) {
      const r = map.get(d.id)!;
      restoreDevice(d, r.version, r.state);
    }
    this.hooks.refresh?.();
    for (const d of this.list) d.resume?.();
  }
}
