/**
 * 00:00.0 Intel 82441FX PMC (i440FX host bridge), as QEMU's i440fx presents it.
 * Datasheet: Intel 290549-001 "82440FX PCIset" §3.2 (section numbers below).
 *
 * Under Xen the guest's memory map is Xen's business: PAM and SMRAM writes
 * change nothing here, but the values are kept so firmware reads back what it
 * wrote (SeaBIOS checks PAM after enabling shadow RAM).
 */
import type { Device, StateObject } from '../core/device.ts';
import type { IoHandler } from '../core/io.ts';
import { StateReader } from '../core/state.ts';
import { PciConfig } from './config.ts';
import type { PciFunction } from './bus.ts';
import {
  CLASS_BRIDGE_HOST,
  DEVICE_I440FX,
  QEMU_SUBSYSTEM_ID,
  QEMU_SUBSYSTEM_VENDOR,
  VENDOR_INTEL,
} from './ids.ts';

export const I440FX_PMCCFG = 0x50; // §3.2.11
export const I440FX_DRAMC = 0x57; // §3.2.16; QEMU stores RAM size / 8 MiB here (old coreboot reads it)
export const I440FX_PAM0 = 0x59; // §3.2.18 PAM0-PAM6 at 0x59-0x5f
export const I440FX_PAM_COUNT = 7;
export const I440FX_DRB0 = 0x60; // §3.2.19 DRB0-7
export const I440FX_FDHC = 0x68; // §3.2.20
export const I440FX_MTT = 0x70; // §3.2.21
export const I440FX_CLT = 0x71; // §3.2.22
export const I440FX_SMRAM = 0x72; // §3.2.23
export const I440FX_ERRCMD = 0x90; // §3.2.24
export const I440FX_ERRSTS = 0x91; // §3.2.25
export const I440FX_TRC = 0x93; // §3.2.26

/** PAM: bits 1:0 (RE, WE) for the low segment, 5:4 for the high one; 3:2, 7:6 reserved. PAM0's low nibble is reserved. */
export const PAM0_MASK = 0x30;
export const PAMN_MASK = 0x33;

// §3.2.23 SMRAM control.
export const SMRAM_C_BASE_SEG = 0x02; // bits 2:0 read-only 010: SMRAM at 0xA0000
export const SMRAM_G_SMRAME = 0x08;
export const SMRAM_D_LCK = 0x10;
export const SMRAM_D_CLS = 0x20;
export const SMRAM_D_OPEN = 0x40;
const SMRAM_WRITABLE = SMRAM_G_SMRAME | SMRAM_D_LCK | SMRAM_D_CLS | SMRAM_D_OPEN;

export interface I440fxOptions {
  /** Guest RAM in bytes: QEMU reports min(255, RAM / 8 MiB) at 0x57. */
  ramBytes?: number;
}

/** Device 'pci.i440fx': its whole state is its config space (PAM, SMRAM, DRAM controls). */
export class I440fx implements PciFunction, Device {
  readonly id = 'pci.i440fx';
  readonly stateVersion = 1;
  readonly name = 'i440fx';
  readonly config = new PciConfig({
    vendor: VENDOR_INTEL, // §3.2.2
    device: DEVICE_I440FX, // §3.2.3
    revision: 0x02, // QEMU i440fx_class_init (the PCIset's A-step revisions are 0x00-0x02)
    classCode: CLASS_BRIDGE_HOST, // §3.2.7
    subsystemVendor: QEMU_SUBSYSTEM_VENDOR,
    subsystem: QEMU_SUBSYSTEM_ID,
    // §3.2.4/3.2.5 give command 0x0006 and status 0x0280 at reset; QEMU (and so
    // every qemu-xen guest) reads 0 for both: we follow QEMU (tests/qtest/i440fx-test.c "BROKEN").
  });

  constructor(opts: I440fxOptions = {}) {
    const c = this.config;
    // Plain read/write storage for the DRAM/cache controls firmware pokes (§3.2.11-3.2.22).
    for (let r = I440FX_PMCCFG; r < I440FX_PAM0; r++) c.mask8(r, 0xff);
    for (let r = I440FX_DRB0; r <= I440FX_FDHC; r++) c.mask8(r, 0xff);
    c.mask8(I440FX_MTT, 0xff);
    c.mask8(I440FX_CLT, 0xff);
    c.mask8(I440FX_PAM0, PAM0_MASK);
    for (let i = 1; i < I440FX_PAM_COUNT; i++) c.mask8(I440FX_PAM0 + i, PAMN_MASK);
    c.set8(I440FX_SMRAM, SMRAM_C_BASE_SEG); // QEMU i440fx_realize; §3.2.23 default 0x02
    c.mask8(I440FX_SMRAM, SMRAM_WRITABLE);
    c.dynamic[I440FX_SMRAM] = SMRAM_WRITABLE; // writable until D_LCK, read-only after: any saved value is reachable
    c.mask8(I440FX_ERRCMD, 0xff);
    c.w1c[I440FX_ERRSTS] = 0xff;
    c.mask8(I440FX_TRC, 0xff);
    if (opts.ramBytes !== undefined) {
      c.set8(I440FX_DRAMC, Math.min(255, Math.floor(opts.ramBytes / (8 * 1024 * 1024))));
    }
    // §3.2.23: once D_LCK is set, D_OPEN reads 0 and D_LCK/D_OPEN/G_SMRAME are read-only until reset.
    c.watch(I440FX_SMRAM, 1, () => this.applySmramLock());
  }

  private applySmramLock(): void {
    const c = this.config;
    const v = c.get8(I440FX_SMRAM);
    if (v & SMRAM_D_LCK) {
      c.set8(I440FX_SMRAM, v & ~SMRAM_D_OPEN);
      c.mask8(I440FX_SMRAM, SMRAM_D_CLS);
    } else {
      c.mask8(I440FX_SMRAM, SMRAM_WRITABLE);
    c.dynamic[I440FX_SMRAM] = SMRAM_WRITABLE; // writable until D_LCK, read-only after: any saved value is reachable
    }
  }

  configRestored(): void {
    this.applySmramLock();
  }

  snapshot(): StateObject {
    return { config: this.config.snapshot() };
  }

  restore(state: StateObject): void {
    const config = this.config.readChecked(new StateReader(state, this.id));
    this.config.restore(config);
    this.applySmramLock(); // the lock is in the config byte; the mask follows it
  }

  barHandler(): IoHandler | null {
    return null;
  }
}
