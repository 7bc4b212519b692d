/**
 * 00:01.0 Intel 82371SB PIIX3 function 0, the PCI-to-ISA bridge, plus the two
 * board-level reset ports that live next to it: the reset control register at
 * 0xCF9 (82371SB datasheet, "RC" I/O register) and system control port A at
 * 0x92 (fast A20 / fast reset, which QEMU's pc machine also provides).
 *
 * Under Xen the PIC, PIT, RTC and ELCR are in the hypervisor; what the DM owns
 * is the PIRQ routing: the guest programs PIRQRC[A-D] and we pass each link's
 * ISA IRQ to Xen (xendevicemodel_set_pci_link_route), as QEMU's PIIX3-xen does.
 */
import type { Board } from '../core/board.ts';
import { SHUTDOWN_REBOOT } from '../core/host.ts';
import type { Device, StateObject } from '../core/device.ts';
import type { IoHandler } from '../core/io.ts';
import { logger, RateLimited, type Logger } from '../core/log.ts';
import { StateReader } from '../core/state.ts';
import { PciConfig, readBits, STATUS_DEVSEL_MEDIUM } from './config.ts';
import type { PciFunction } from './bus.ts';
import { CLASS_BRIDGE_ISA, DEVICE_PIIX3_ISA, QEMU_SUBSYSTEM_ID, QEMU_SUBSYSTEM_VENDOR, VENDOR_INTEL } from './ids.ts';

// 82371SB datasheet §2.2 (function 0 configuration registers).
export const PIIX3_IORT = 0x4c; // ISA I/O recovery timer, default 0x4d
export const PIIX3_XBCS = 0x4e; // X-bus chip select, default 0x0003
export const PIIX3_PIRQRC = 0x60; // PIRQ[A-D] route control, 0x60-0x63, default 0x80 each
export const PIIX3_TOM = 0x69; // top of memory, default 0x02
export const PIIX3_MSTAT = 0x6a;
export const PIIX3_MBIRQ0 = 0x70; // motherboard IRQ route, default 0x80
export const PIIX3_MBDMA = 0x76; // 0x76-0x77, default 0x0c each
export const PIIX3_PCSC = 0x78; // PCS control, default 0x0002
export const PIIX3_APIC = 0x80;
export const PIIX3_DLC = 0x82;
export const PIIX3_SMICNTL = 0xa0; // default 0x08
export const PIIX3_SMIEN = 0xa2;
export const PIIX3_SEE = 0xa4;
export const PIIX3_FTMR = 0xa8; // fast off timer, default 0x0f
export const PIIX3_SMIREQ = 0xaa;
export const PIIX3_CTLTMR = 0xac;
export const PIIX3_CTHTMR = 0xae;

export const PIRQ_DISABLE = 0x80; // bit 7: route disabled
/** Bits 6:4 of PIRQRC are reserved (read 0). */
export const PIRQRC_MASK = 0x8f;
/** ISA IRQs a PIRQ may route to; 0-2, 8 and 13 are reserved in PIRQRC bits 3:0. */
export const PIRQ_VALID_IRQS: ReadonlySet<number> = new Set([3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15]);

/** Defaults QEMU's piix reset writes (which follow the datasheet). */
const DEFAULTS: readonly (readonly [number, number])[] = [
  [PIIX3_IORT, 0x4d],
  [PIIX3_XBCS, 0x03],
  [PIIX3_PIRQRC + 0, PIRQ_DISABLE],
  [PIIX3_PIRQRC + 1, PIRQ_DISABLE],
  [PIIX3_PIRQRC + 2, PIRQ_DISABLE],
  [PIIX3_PIRQRC + 3, PIRQ_DISABLE],
  [PIIX3_TOM, 0x02],
  [PIIX3_MBIRQ0, 0x80],
  [PIIX3_MBDMA, 0x0c],
  [PIIX3_MBDMA + 1, 0x0c],
  [PIIX3_PCSC, 0x02],
  [PIIX3_SMICNTL, 0x08],
  [PIIX3_FTMR, 0x0f],
];

/** The ISA IRQ Xen should route a link to for a PIRQRC value: 0 = disabled. */
export function pirqToIsaIrq(v: number): number {
  if (v & PIRQ_DISABLE) return 0;
  const irq = v & 0x0f;
  return PIRQ_VALID_IRQS.has(irq) ? irq : 0;
}

// Reset control register at 0xCF9 (82371SB RC): bit 1 SRST (hard/soft reset type), bit 2 RCPU (reset now).
export const RCR_PORT = 0xcf9;
export const RCR_SRST = 0x02;
export const RCR_RCPU = 0x04;

// System control port A (PS/2 "port 92"): bit 0 fast reset (on 0->1), bit 1 A20 gate.
export const PORT92 = 0x92;
export const PORT92_RESET = 0x01;
export const PORT92_A20 = 0x02;

/**
 * Device 'pci.piix3'. Snapshot: `config` (256 bytes; the PIRQ routes are
 * PIRQRC in there, sent to Xen again by PciBus.refresh), `rcr` (0xCF9: SRST
 * only, RCPU never sticks) and `port92` (A20 and fast-reset bits).
 */
export class Piix3Isa implements PciFunction, Device {
  readonly id = 'pci.piix3';
  readonly stateVersion = 1;
  readonly name = 'piix3-isa';
  readonly config = new PciConfig({
    vendor: VENDOR_INTEL,
    device: DEVICE_PIIX3_ISA,
    revision: 0x00,
    classCode: CLASS_BRIDGE_ISA,
    headerType: 0x80, // multi-function: IDE at .1, ACPI at .3
    subsystemVendor: QEMU_SUBSYSTEM_VENDOR,
    subsystem: QEMU_SUBSYSTEM_ID,
    status: STATUS_DEVSEL_MEDIUM,
  });
  /** Reset control register state (SRST kept, as QEMU does). */
  rcr = 0;
  port92 = 0;
  /** Resets are lifecycle lines (info), but the guest chooses how often it asks. */
  private readonly said: RateLimited;

  constructor(
    private readonly board: Board,
    private readonly log: Logger = logger('piix3'),
  ) {
    this.said = new RateLimited(log);
    const c = this.config;
    // The rest of function 0's registers (0x40-0xff) are plain storage as in
    // QEMU: the ISA side is Xen's, firmware only needs them to read back.
    for (let r = 0x40; r < 0x100; r++) c.mask8(r, 0xff);
    for (const [r, v] of DEFAULTS) c.set8(r, v);
    for (let i = 0; i < 4; i++) c.mask8(PIIX3_PIRQRC + i, PIRQRC_MASK);
    c.watch(PIIX3_PIRQRC, 4, (reg, size) => {
      for (let r = Math.max(reg, PIIX3_PIRQRC); r < Math.min(reg + size, PIIX3_PIRQRC + 4); r++) {
        this.board.setPciLinkRoute(r - PIIX3_PIRQRC, pirqToIsaIrq(c.get8(r)));
      }
    });
  }

  barHandler(): IoHandler | null {
    return null;
  }

  /** Xen keeps the link routes across save/restore; sending them again is harmless and keeps us honest. */
  configRestored(): void {
    for (let link = 0; link < 4; link++) this.board.setPciLinkRoute(link, pirqToIsaIrq(this.config.get8(PIIX3_PIRQRC + link)));
  }

  snapshot(): StateObject {
    return { config: this.config.snapshot(), rcr: this.rcr, port92: this.port92 };
  }

  restore(state: StateObject): void {
    const r = new StateReader(state, this.id);
    const config = this.config.readChecked(r);
    const rcr = readBits(r, 'rcr', RCR_SRST);
    const port92 = readBits(r, 'port92', PORT92_A20 | PORT92_RESET);
    this.config.restore(config);
    this.rcr = rcr;
    this.port92 = port92;
  }

  /** Byte register at 0xCF9, reached through the CF8 port handler (PciBus.setResetControl). */
  readonly resetControl: IoHandler = {
    read: () => this.rcr,
    write: (_off, _size, v) => {
      if (v & RCR_RCPU) {
        this.said.info({ rcr: v }, 'guest reset through 0xcf9');
        this.board.shutdown(SHUTDOWN_REBOOT);
        return;
      }
      this.rcr = v & RCR_SRST;
    },
  };

  /** Port 0x92. A20 cannot be masked in an HVM guest: the bit is kept, nothing else. */
  readonly port92Handler: IoHandler = {
    read: () => this.port92,
    write: (_off, _size, v) => {
      const old = this.port92;
      this.port92 = v & (PORT92_A20 | PORT92_RESET);
      if (v & PORT92_RESET && !(old & PORT92_RESET)) {
        this.said.info({}, 'guest reset through port 0x92');
        this.board.shutdown(SHUTDOWN_REBOOT);
      } else if (!(v & PORT92_A20)) {
        this.log.debug({ v }, 'guest cleared A20 through port 0x92: not emulated under Xen');
      }
    },
  };
}
