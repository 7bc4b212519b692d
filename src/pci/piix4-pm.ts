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
 */
import type { Board } from '../core/board.ts';
import type { Region } from '../core/bus.ts';
import { SHUTDOWN_POWEROFF } from '../core/host.ts';
import { sizeMask, type AccessSize, type IoHandler } from '../core/io.ts';
import { logger, RateLimited, type Logger } from '../core/log.ts';
import { PciConfig, STATUS_DEVSEL_MEDIUM, STATUS_FAST_BACK } from './config.ts';
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

export interface Piix4PmOptions {
  /** Which legacy ISA devices the board decodes: reported in DEVRESx like QEMU's piix4_pm_machine_ready. */
  com1?: boolean;
  com2?: boolean;
  lpt1?: boolean;
}

export interface Piix4PmState {
  pm1Cnt: number;
  apmCnt: number;
  apmSts: number;
  gpeSts: number;
  gpeEn: number;
}

export class Piix4Pm implements PciFunction {
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

  /** PM1a_CNT value (without SLP_EN, which reads 0). */
  pm1Cnt = 0;
  apmCnt = 0;
  apmSts = 0;
  gpeSts = 0;
  gpeEn = 0;
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

  save(): Piix4PmState {
    return { pm1Cnt: this.pm1Cnt, apmCnt: this.apmCnt, apmSts: this.apmSts, gpeSts: this.gpeSts, gpeEn: this.gpeEn };
  }

  restore(s: Piix4PmState): void {
    this.pm1Cnt = s.pm1Cnt & 0xffff & ~PM1_CNT_SLP_EN;
    this.apmCnt = s.apmCnt & 0xff;
    this.apmSts = s.apmSts & 0xff;
    this.gpeSts = s.gpeSts & 0xffff;
    this.gpeEn = s.gpeEn & 0xffff;
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
    read: (off, size) => (this.pm1Cnt >>> (8 * off)) & sizeMask(size),
    write: (off, size, v) => {
      const shift = 8 * off;
      const m = (sizeMask(size) << shift) & 0xffff;
      const val = ((this.pm1Cnt & ~m) | ((v << shift) & m)) & 0xffff;
      this.pm1Cnt = val & ~PM1_CNT_SLP_EN;
      if (val & PM1_CNT_SLP_EN && m & PM1_CNT_SLP_EN) this.sleep((val >>> PM1_CNT_SLP_TYP_SHIFT) & 7);
    },
  };

  private sleep(typ: number): void {
    if (typ === SLP_TYP_S5) {
      this.log.info('guest entered S5 through PM1a_CNT: poweroff');
      this.board.shutdown(SHUTDOWN_POWEROFF);
    } else {
      this.warn.warn({ slpTyp: typ }, typ === SLP_TYP_S3 ? 'guest asked for S3: not supported' : 'guest asked for an unknown sleep type');
    }
  }

  readonly apmHandler: IoHandler = {
    read: (off, size) => this.apmRead(off, size),
    write: (off, size, v) => {
      for (let i = 0; i < size && off + i < 2; i++) {
        const b = (v >>> (8 * i)) & 0xff;
        if (off + i === 0) {
          this.apmCnt = b;
          if (b === APM_ACPI_ENABLE) this.pm1Cnt |= PM1_CNT_SCI_EN;
          else if (b === APM_ACPI_DISABLE) this.pm1Cnt &= ~PM1_CNT_SCI_EN;
        } else {
          this.apmSts = b;
        }
      }
    },
  };

  private apmRead(off: number, size: AccessSize): number {
    const v = this.apmCnt | (this.apmSts << 8);
    return (v >>> (8 * off)) & sizeMask(size);
  }

  readonly gpeHandler: IoHandler = {
    read: (off, size) => (((this.gpeSts | (this.gpeEn << 16)) >>> (8 * off)) & sizeMask(size)) >>> 0,
    write: (off, size, v) => {
      const shift = 8 * off;
      const m = (sizeMask(size) * 2 ** shift) >>> 0; // shift of 24 with a 4-byte mask cannot happen (bus bounds)
      const val = (v * 2 ** shift) >>> 0;
      this.gpeSts &= ~(val & m & 0xffff);
      const enM = m >>> 16;
      this.gpeEn = (this.gpeEn & ~enM) | ((val >>> 16) & enM);
    },
  };
}
