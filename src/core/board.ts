/**
 * The board: what every device plugs into. It owns the port and MMIO buses
 * and the PCI configuration hook, hands out interrupt lines, and is the only
 * place that turns "a region appeared/moved" into a claim on the ioreq
 * server (docs/architecture.md §5: the bus, not the device, talks to Xen).
 */
import { IoBus } from './bus.ts';
import { RealClock, type Clock } from './clock.ts';
import type { AccessSize, PciConfigHandler } from './io.ts';
import type { IrqLine } from './irq.ts';
import type { GuestMemory } from './memory.ts';
import { RANGE_MMIO, RANGE_PORT, type Interrupts, type IoreqRouting, type Power } from './host.ts';

const NO_PCI: PciConfigHandler = {
  configRead: (_d, _r, size: AccessSize) => (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1),
  configWrite: () => {},
};

export class Board {
  readonly pio = new IoBus('pio');
  readonly mmio = new IoBus('mmio');
  pci: PciConfigHandler = NO_PCI;
  private readonly isaLines: IrqLine[] = [];

  constructor(
    readonly memory: GuestMemory,
    private readonly interrupts: Interrupts,
    private readonly power: Power,
    private readonly routing: IoreqRouting,
    /** Every delay a device models goes through this clock (core/clock.ts). */
    readonly clock: Clock = new RealClock(),
  ) {
    this.pio.onChange((e, s, end) =>
      e === 'add' ? routing.mapIoRange(RANGE_PORT, s, end) : routing.unmapIoRange(RANGE_PORT, s, end),
    );
    this.mmio.onChange((e, s, end) =>
      e === 'add' ? routing.mapIoRange(RANGE_MMIO, s, end) : routing.unmapIoRange(RANGE_MMIO, s, end),
    );
    for (let i = 0; i < 16; i++) {
      let level = -1;
      this.isaLines.push({
        set: (on: boolean) => {
          const v = on ? 1 : 0;
          if (v === level) return; // a level line: only edges cost a hypercall
          level = v;
          interrupts.setIsaIrqLevel(i, v);
        },
      });
    }
  }

  /** ISA IRQ 0-15. The same line object for every caller, so the level is tracked once. */
  isaIrq(irq: number): IrqLine {
    const l = this.isaLines[irq];
    if (!l) throw new RangeError(`ISA IRQ ${irq} out of range`);
    return l;
  }

  /** INTx pin 0-3 (INTA-INTD) of a device on bus 0. */
  pciIntx(device: number, pin: number): IrqLine {
    let level = -1;
    return {
      set: (on: boolean) => {
        const v = on ? 1 : 0;
        if (v === level) return;
        level = v;
        this.interrupts.setPciIntxLevel(device, pin, v);
      },
    };
  }

  setPciLinkRoute(link: number, irq: number): void {
    this.interrupts.setPciLinkRoute(link, irq);
  }

  injectMsi(addr: number, data: number): void {
    this.interrupts.injectMsi(addr, data);
  }

  /** Poweroff/reboot: reaches the hypervisor synchronously, before the ioreq that asked is answered. */
  shutdown(reason: number): void {
    this.power.shutdown(reason);
  }

  /** A PCI function appeared at 00:dev.fn: its config accesses come to us. */
  claimPciFunction(device: number, fn: number): void {
    this.routing.mapPcidev(device, fn);
  }

  releasePciFunction(device: number, fn: number): void {
    this.routing.unmapPcidev(device, fn);
  }
}
