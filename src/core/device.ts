/**
 * The device contract: what every emulated device is to the machine that
 * owns it, beside the I/O handlers it puts on the board.
 *
 * - `id` is stable across runs and versions of stubdm ("ide", "uart.com1",
 *   "pci.00:01.0"): the saved-state container is keyed by it.
 * - `snapshot()` returns the device's state as plain data of the current
 *   `stateVersion`: objects, arrays, numbers, strings, booleans, null, and
 *   Uint8Array for bytes (the container encodes those). No class instances,
 *   no closures, no backends: a transfer in flight is recorded by name and
 *   position (docs/architecture.md §8), never as a callback.
 * - `restore(state)` takes data of the current version, checks all of it
 *   first (StateReader throws StateError naming the bad field) and only then
 *   changes the device: a refused state leaves the device as it was.
 * - `upgrades[v]` turns version v into v+1; restoreDevice() chains them, and
 *   refuses a newer version than this build knows or a missing step.
 * - `quiesce()` (devices with backend I/O) says what happens to requests in
 *   flight when the machine is saved: `drained` (it waited for them) or
 *   `reissued` (the snapshot names them and restore() issues them again, as
 *   IDE does: nothing they moved is visible to the guest before completion);
 *   `resume()` issues them once the whole machine is restored.
 */
import { StateError } from './state.ts';

export { StateError } from './state.ts';

/** Plain data a snapshot may hold (JSON-safe but for Uint8Array). */
export type StateValue = null | boolean | number | string | Uint8Array | readonly StateValue[] | StateObject;
export interface StateObject {
  readonly [key: string]: StateValue;
}

export type QuiesceResult = 'drained' | 'reissued';

export interface Device {
  /** Stable identity in saved state: lowercase, [a-z0-9.:_-]. */
  readonly id: string;
  /** Version of what snapshot() returns (1, 2, ...). */
  readonly stateVersion: number;
  /** State as plain data, a fresh copy (the caller may keep it). */
  snapshot(): StateObject;
  /** Load state of `stateVersion`; validates everything before changing anything; throws StateError. */
  restore(state: StateObject): void;
  /** upgrades[v] converts version v to v + 1 (only for versions this build still reads). */
  readonly upgrades?: Readonly<Record<number, (old: StateObject) => StateObject>>;
  /** Settle backend I/O in flight before a snapshot; see the file comment. */
  quiesce?(): Promise<QuiesceResult>;
  /**
   * After every device of the machine is restored and its BARs and lines are
   * re-derived: start again what the snapshot says was in flight (a device
   * whose quiesce() says 'reissued'). restore() itself starts no I/O, since
   * the machine around the device is not back yet.
   */
  resume?(): void;
}

/** Device ids: short, stable, printable. */
export const DEVICE_ID_RE = /^[a-z0-9][a-z0-9.:_-]{0,63}$/;

/**
 * Restore `dev` from state saved at `version`: upgrade step by step to the
 * device's current version, then restore. Throws StateError for a version
 * this build does not read.
 */
export function restoreDevice(dev: Device, version: number, state: StateObject): void {
  if (!Number.isInteger(version) || version < 1) throw new StateError(`${dev.id}: bad state version ${version}`);
  if (version > dev.stateVersion) {
    throw new StateError(`${dev.id}: state version ${version} is newer than this stubdm reads (${dev.stateVersion}); restore with a newer stubdm`);
  }
  let s = state;
  for (let v = version; v < dev.stateVersion; v++) {
    const up = dev.upgrades?.[v];
    if (!up) throw new StateError(`${dev.id}: state version ${v} can no longer be read (no upgrade to ${v + 1})`);
    s = up(s);
  }
  dev.restore(s);
}

/** restoreDevice, then resume: for a device restored on its own (tests, tools). */
export function restoreAndResume(dev: Device, version: number, state: StateObject): void {
  restoreDevice(dev, version, state);
  dev.resume?.();
}
