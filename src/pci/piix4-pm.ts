/**
 * 00:01.3 Intel 82371AB PIIX4 power management function (ACPI), as QEMU's
 * piix4_pm presents it, split the way Xen splits it:
 *
 * - Xen emulates PM1a_STS/PM1a_EN (base+0..3) and the PM timer (base+8..11)
 *   in the hypervisor at the ACPI "V1" location 0xB000 (xen/hvm/ioreq.h
 *   ACPI_PM1A_EVT_BLK_ADDRESS_V1; hvm/pmtimer.c), which hvmloader selects
 *   with HVM_PARAM_ACPI_IOPORTS_LOCATION=1. We never claim those ports.
 * - PM1a_CNT (base+4, 16 bits: ACPI_PM1A_CNT_BLK_ADDRESS_V1 = 0xB004) is ours:
 *   SLP_EN with SLP_TYP 0 is S5 (\_S5 in Xen's tools/libacpi/dsdt.asl, and
 *   \_S4 in ssdt_s4.asl) -> poweroff. SLP_TYP 1 is S3 (ssdt_s3.asl), which
 *   needs HVM_PARAM_ACPI_S_STATE and is not supported: logged and ignored.
 * - APM control 0xB2/0xB3: hvmloader's acpi_enable_sci() reads PM1a_CNT,
 *   writes 0xF1 to 0xB2 when SCI_EN is clear and BUG()s if SCI_EN is still
 *   clear afterwards. 0xF1 sets SCI_EN, 0xF0 clears it (QEMU hw/acpi/piix4.c).
 * - GPE0 at 0xAFE0, 4 bytes (FADT gpe0_blk, ACPI_GPE0_BLK_ADDRESS_V1): status
 *   (write 1 to clear) and enable bytes. Nothing raises GPEs yet; the block
 *   exists so the OS reads zeros instead of a floating bus full of events.
 *
 * hvmloader (tools/firmware/hvmloader/pci.c) programs PMBA (0x40) to
 * 0xB000|1 and sets PMREGMISC (0x80) bit 0 before acpi_enable_sci().
 *
 * Save/restore: the PM timer and PM1a_STS/PM1a_EN are Xen's
 * (xen/arch/x86/hvm/pmtimer.c) and travel in Xen's own HVM context (its
 * PMTIMER save record, next to the vCPU and interrupt controller records),
 * not in ours: nothing of the timer lives in stubdm. Our snapshot is the
 * config space plus the three register blocks below.
 */
import type { Board } from '../core/board.ts';
import type { Region } from '../core/bus.ts';
import { SHUTDOWN_POWEROFF } from '../core/host.ts';
import type { Device, StateObject } from '../core/device.ts';
import type { IoHandler } from '../core/io.ts';
import { logger, RateLimited, type Logger } from '../core/log.ts';
import { RegisterTable, W1C } from '../core/regs.ts';
import { StateReader } from '../core/state.ts';
import { PciConfig, readBits, STATUS_DEVSEL_MEDIUM, STATUS_FAST_BACK } from './config.ts';
import type { PciFunction } from './bus.ts';
import { CLASS_BRIDGE_OTHER, DEVICE_PIIX4_ACPI, QEMU_SUBSYSTEM_ID, QEMU_SUBSYSTEM_VENDOR, VENDOR_INTEL } from './ids.ts';

// 82371AB datasheet, function 3 (power management) configuration registers.
export const PIIX4_PMBA = 0x40; // PM base address: bits 15:6, bit 0 reads 1 (I/O space)
export const PIIX4_DEVRESA = 0x5c; // device resource A-E (0x5c-0x6f)
export const PIIX4_DEVRESB = 0x60;
export const PIIX4_DEVRESD = 0x64;
export const PIIX4_PMREGMISC = 0x80; // bit 0: PM I/O space enable
export const PIIX4_SMBBA = 0x90; // SMBus base address: bit 0 reads 1
export const PIIX4_SMBHSTCFG = 0xd2; // SMBus host configuration
export const PMBA_MASK = 0xffc0;
export const PMREGMISC_PMIOSE = 0x01;
export const PM_IO_SIZE = 64;

// ACPI 6.x §4.8.3.2.1 PM1 control register.
export const PM1_CNT_OFFSET = 4;
export const PM1_CNT_SCI_EN = 0x0001;
export const PM1_CNT_SLP_TYP_SHIFT = 10;
export const PM1_CNT_SLP_EN = 0x2000; // write-only: reads 0
/** SLP_TYP values in Xen's ACPI tables (dsdt.asl \_S5, ssdt_s4.asl \_S4, ssdt_s3.asl \_S3). */
export const SLP_TYP_S5 = 0;
export const SLP_TYP_S3 = 1;

export const APM_CNT_PORT = 0xb2;
export const APM_ACPI_ENABLE = 0xf1;
export const APM_ACPI_DISABLE = 0xf0;

export const GPE0_BASE = 0xafe0;
export const GPE0_LEN = 4;
/** GPE0_STS (write 1 to clear) and GPE0_EN (read/write), 16 bits each (ACPI §4.8.4.1). */
export const GPE0_STS_OFFSET = 0;
export const GPE0_EN_OFFSET = 2;

export interface Piix4PmOptions {
  /** Which legacy ISA devices the board decodes: reported in DEVRESx like QEMU's piix4_pm_machine_ready. */
  com1?: boolean;
  com2?: boolean;
  lpt1?: boolean;
}

/** PM1a_CNT (2 ports at PMBA + 4): SLP_EN is write-only, so it never stays in storage. */
const PM1_CNT_TABLE = new RegisterTable<Piix4Pm>('pm1a-cnt', 2, [
  { name: 'PM1_CNT', off: 0, width: 2, write: (d, v) => d.pm1CntWritten(v) },
]);
const PM1_CNT = PM1_CNT_TABLE.slot('PM1_CNT');

/** APM control (0xB2, QEMU hw/isa/apm.c) and status (0xB3, plain storage). */
const APM_TABLE = new RegisterTable<Piix4Pm>('apm', 2, [
  { name: 'APMC', off: 0, width: 1, write: (d, v) => d.apmCommand(v) },
  { name: 'APMS', off: 1, width: 1 },
]);
const APMC = APM_TABLE.slot('APMC');
const APMS = APM_TABLE.slot('APMS');

const GPE0_TABLE = new RegisterTable<Piix4Pm>('gpe0', GPE0_LEN, [
  { name: 'GPE0_STS', off: GPE0_STS_OFFSET, width: 2, flags: W1C },
  { name: 'GPE0_EN', off: GPE0_EN_OFFSET, width: 2 },
]);
const GPE0_STS = GPE0_TABLE.slot('GPE0_STS');
const GPE0_EN = GPE0_TABLE.slot('GPE0_EN');

/**
 * Device 'pci.piix4-pm'. Snapshot: `config` (256 bytes: PMBA, PMREGMISC,
 * DEVRESx), `pm1Cnt` (PM1a_CNT without SLP_EN), `apmCnt`/`apmSts` (0xB2/0xB3),
 * `gpeSts`/`gpeEn` (GPE0). The PM timer and PM1a_STS/EN are not here: Xen
 * emulates them and saves them in its own HVM context (PMTIMER record).
 */
export class Piix4Pm implements PciFunction, Device {
  readonly id = 'pci.piix4-pm';
  readonly stateVersion = 1;
  readonly name = 'piix4-pm';
  readonly config = new PciConfig({
    vendor: VENDOR_INTEL,
    device: DEVICE_PIIX4_ACPI,
    revision: 0x03, // QEMU piix4_pm_class_init; 82371AB rev "A0" power management function
    classCode: CLASS_BRIDGE_OTHER,
    subsystemVendor: QEMU_SUBSYSTEM_VENDOR,
    subsystem: QEMU_SUBSYSTEM_ID,
    status: STATUS_FAST_BACK | STATUS_DEVSEL_MEDIUM,
    pin: 1, // INTA (the SCI itself is ISA IRQ 9, raised by Xen)
  });

  private readonly pm1 = PM1_CNT_TABLE.storage();
  private readonly apm = APM_TABLE.storage();
  private readonly gpe = GPE0_TABLE.storage();
  private pmRegion: Region | null = null;
  private fixed: Region[] = [];
  private readonly warn: RateLimited;

  constructor(
    private readonly board: Board,
    opts: Piix4PmOptions = {},
    private readonly log: Logger = logger('piix4-pm'),
  ) {
    this.warn = new RateLimited(log);
    const c = this.config;
    c.set32(PIIX4_PMBA, 0x00000001);
    c.mask16(PIIX4_PMBA, PMBA_MASK);
    c.mask8(PIIX4_PMREGMISC, PMREGMISC_PMIOSE);
    // Device activity/resource registers: storage (0x58-0x6f), defaults as QEMU's machine_ready.
    for (let r = 0x58; r < 0x70; r++) c.mask8(r, 0xff);
    c.set8(PIIX4_DEVRESA + 3, 0x10 | (opts.lpt1 ? 0x80 : 0));
    c.set8(PIIX4_DEVRESB + 3, 0x60);
    c.set8(PIIX4_DEVRESD + 3, (opts.com1 ? 0x08 : 0) | (opts.com2 ? 0x90 : 0));
    // No SMBus controller is emulated: SMBBA keeps only its I/O bit and the host stays disabled.
    c.set32(PIIX4_SMBBA, 0x00000001);
    c.mask16(PIIX4_SMBBA, 0xfff0);
    c.mask8(PIIX4_SMBHSTCFG, 0x0f);
    c.watch(PIIX4_PMBA, 4, () => this.updatePmIo());
    c.watch(PIIX4_PMREGMISC, 1, () => this.updatePmIo());
  }

  barHandler(): IoHandler | null {
    return null;
  }

  /** Claim the fixed ports (APM control, GPE0). PciBus.add does not: they are not BARs. */
  attach(): void {
    if (this.fixed.length) return;
    this.fixed = [
      this.board.pio.add('apm', APM_CNT_PORT, 2, this.apmHandler),
      this.board.pio.add('acpi-gpe0', GPE0_BASE, GPE0_LEN, this.gpeHandler),
    ];
    this.updatePmIo();
  }

  configRestored(): void {
    this.updatePmIo();
  }

  /** PM1a_CNT value (without SLP_EN, which reads 0). */
  get pm1Cnt(): number {
    return this.pm1[PM1_CNT];
  }
  get apmCnt(): number {
    return this.apm[APMC];
  }
  get apmSts(): number {
    return this.apm[APMS];
  }
  get gpeSts(): number {
    return this.gpe[GPE0_STS];
  }
  /** Nothing raises GPEs yet: tests (and later event sources) set status bits here. */
  set gpeSts(v: number) {
    this.gpe[GPE0_STS] = v & 0xffff;
  }
  get gpeEn(): number {
    return this.gpe[GPE0_EN];
  }

  snapshot(): StateObject {
    return {
      config: this.config.snapshot(),
      pm1Cnt: this.pm1Cnt,
      apmCnt: this.apmCnt,
      apmSts: this.apmSts,
      gpeSts: this.gpeSts,
      gpeEn: this.gpeEn,
    };
  }

  /** Registers only: the PM1a_CNT region follows the restored PMBA in configRestored() (PciBus.refresh). */
  restore(state: StateObject): void {
    const r = new StateReader(state, this.id);
    const config = this.config.readChecked(r);
    const pm1Cnt = readBits(r, 'pm1Cnt', 0xffff & ~PM1_CNT_SLP_EN);
    const apmCnt = r.u('apmCnt', 8);
    const apmSts = r.u('apmSts', 8);
    const gpeSts = r.u('gpeSts', 16);
    const gpeEn = r.u('gpeEn', 16);
    this.config.restore(config);
    this.pm1[PM1_CNT] = pm1Cnt;
    this.apm[APMC] = apmCnt;
    this.apm[APMS] = apmSts;
    this.gpe[GPE0_STS] = gpeSts;
    this.gpe[GPE0_EN] = gpeEn;
  }

  /** Base of the PM I/O block when decoding is on, or -1. */
  pmBase(): number {
    const c = this.config;
    if (!(c.get8(PIIX4_PMREGMISC) & PMREGMISC_PMIOSE)) return -1;
    const base = c.get16(PIIX4_PMBA) & PMBA_MASK;
    return base === 0 ? -1 : base;
  }

  private updatePmIo(): void {
    if (!this.fixed.length) return; // not on a bus yet
    const base = this.pmBase();
    const want = base < 0 ? -1 : base + PM1_CNT_OFFSET;
    if (this.pmRegion && this.pmRegion.start === want) return;
    if (this.pmRegion) {
      this.board.pio.remove(this.pmRegion);
      this.pmRegion = null;
    }
    if (want < 0) return;
    try {
      this.pmRegion = this.board.pio.add('acpi-pm1a-cnt', want, 2, this.pm1CntHandler);
    } catch (e) {
      this.warn.warn({ base, err: (e as Error).message }, 'PIIX4 PM base overlaps another region: PM1a_CNT left unmapped');
    }
  }

  readonly pm1CntHandler: IoHandler = {
    read: (off, size) => PM1_CNT_TABLE.read(this, this.pm1, off, size),
    write: (off, size, v) => PM1_CNT_TABLE.write(this, this.pm1, off, size, v),
  };

  /** PM1_CNT table write hook: `v` is the merged value; SLP_EN acts now and is not kept (it reads 0). */
  pm1CntWritten(v: number): void {
    this.pm1[PM1_CNT] = v & ~PM1_CNT_SLP_EN;
    if (v & PM1_CNT_SLP_EN) this.sleep((v >>> PM1_CNT_SLP_TYP_SHIFT) & 7);
  }

  private sleep(typ: number): void {
    if (typ === SLP_TYP_S5) {
      this.warn.info({}, 'guest entered S5 through PM1a_CNT: poweroff'); // rate-limited: the guest may repeat it
      this.board.shutdown(SHUTDOWN_POWEROFF);
    } else {
      this.warn.warn({ slpTyp: typ }, typ === SLP_TYP_S3 ? 'guest asked for S3: not supported' : 'guest asked for an unknown sleep type');
    }
  }

  /** APMC table write hook: the ACPI enable/disable commands flip SCI_EN. */
  apmCommand(v: number): void {
    if (v === APM_ACPI_ENABLE) this.pm1[PM1_CNT] |= PM1_CNT_SCI_EN;
    else if (v === APM_ACPI_DISABLE) this.pm1[PM1_CNT] &= ~PM1_CNT_SCI_EN;
  }

  readonly apmHandler: IoHandler = {
    read: (off, size) => APM_TABLE.read(this, this.apm, off, size),
    write: (off, size, v) => APM_TABLE.write(this, this.apm, off, size, v),
  };

  readonly gpeHandler: IoHandler = {
    read: (off, size) => GPE0_TABLE.read(this, this.gpe, off, size),
    write: (off, size, v) => GPE0_TABLE.write(this, this.gpe, off, size, v),
  };
}
